// Starts the built worker under real workerd (`wrangler dev`) on a free loopback port with its
// own settings file and KV directory, waits until it answers, and stops it with its whole
// process group, also when a test fails or the runner is interrupted.

import { spawn } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Stripe from 'stripe';
import { after } from 'node:test';
import { createStandIn, violationLedger } from '../standin/server.mjs';
import { SIGNATURE_HEADER, verifyNotification } from '../tools/verify-notification.mjs';
import { handledThinEventTypes } from '../tools/common.mjs';

// The handled thin types and the alert of an event Stripe never generated.
const THIN_TYPES = [...handledThinEventTypes(), 'v2.core.health.event_generation_failure.resolved'];

/**
 * Every e2e file imports this harness, so every file ends with this check: no stand-in of this
 * process (started through startStack or directly) refused a request for breaking Stripe's
 * definitions of its parameters (standin/validate.mjs), except requests a test made on purpose
 * with the header `Standin-Expected-Violation: <reason>` (see `expectViolation`).
 */
after(() => {
  const unexpected = violationLedger.filter((v) => !v.expected);
  const expected = violationLedger.length - unexpected.length;
  console.log(`# Stripe schema violations: ${unexpected.length} (and ${expected} caused on purpose)`);
  if (unexpected.length) {
    const list = unexpected.map((v) => `${v.method} ${v.path}: ${v.code ?? 'invalid'} ${v.param}: ${v.message}`).join('\n  ');
    throw new Error(`the worker sent what Stripe's definitions refuse (${unexpected.length}):\n  ${list}`);
  }
});

/** The header with which a test marks a request it sends with bad parameters on purpose. */
export const expectViolation = (reason) => ({ 'standin-expected-violation': reason });

export const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const WRANGLER = path.join(ROOT, 'node_modules/wrangler/bin/wrangler.js');
const READY_TIMEOUT_MS = 120_000;

/** The official SDK, used only for its webhook signing helper. */
export const stripe = new Stripe('sk_test_e2e_unused');

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const running = new Set();
function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}
process.on('exit', () => running.forEach((child) => killGroup(child, 'SIGKILL')));
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(130));
}

/**
 * @param {Record<string,string>} settings  secrets and var overrides, written to an env file
 * @param {object} [options]
 * @param {string} [options.config]   another wrangler.toml (the bench's reference and floors)
 * @param {string} [options.logFile]  write wrangler's output there instead of keeping it in
 *   memory (under load that keeps this process out of the way of what it measures)
 * @param {string[]} [options.args]   more `wrangler dev` arguments
 * @param {number} [options.port]     listen there (a restart on the same address) instead of a free port
 * @param {string} [options.persistTo]  keep the local state there (kept when the worker stops)
 *   instead of in a folder of its own that stop() removes
 * @returns the worker: `url`, `logs()`, `logged(pattern)`, `stop()`, and its process group `pgid` and `inspectorPort`
 */
export async function startWorker(settings, { config, logFile, args: extraArgs = [], port: fixedPort, persistTo } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stripe-edge-e2e-'));
  const envFile = path.join(dir, 'settings.env');
  const port = fixedPort ?? (await freePort());
  // As scripts/dev.sh starts it (LOCAL_DEV=true: short admin tokens, loopback return URLs;
  // APP_BASE_URL this worker, where recovery sessions made by events return), unless a test
  // says otherwise.
  // The global ceiling on anonymous setup sessions is set far above what any test opens,
  // unless a test sets it (e2e/bounded.test.mjs).
  const all = { LOCAL_DEV: 'true', PUBLIC_SETUP_PER_DAY: '1000000', PUBLIC_SETUP_PER_MINUTE: '10000', ...settings };
  if (!config && all.LOCAL_DEV === 'true' && !('APP_BASE_URL' in all)) all.APP_BASE_URL = `http://127.0.0.1:${port}`;
  writeFileSync(envFile, Object.entries(all).map(([k, v]) => `${k}=${v}`).join('\n') + '\n');
  const inspectorPort = await freePort();
  const args = [
    WRANGLER, 'dev', ...(config ? ['--config', config] : []), '--local', '--ip', '127.0.0.1', '--port', String(port),
    '--inspector-port', String(inspectorPort), '--persist-to', persistTo ?? path.join(dir, 'state'),
    '--env-file', envFile, '--show-interactive-dev-session=false', ...extraArgs,
  ];
  const out = logFile ? openSync(logFile, 'w') : 'pipe';
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, SKIP_WORKER_BUILD: '1', WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1' },
    detached: true,
    stdio: ['ignore', out, out],
  });
  running.add(child);
  let output = '';
  if (!logFile) {
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
  }
  const logs = () => (logFile ? readFileSync(logFile, 'utf8') : output);
  const exited = new Promise((resolve) => child.on('exit', resolve));

  const url = `http://127.0.0.1:${port}`;
  const worker = {
    url,
    logs,
    /**
     * The logs once `pattern` is in them: wrangler dev passes the worker's output on a little
     * later, more so on a busy machine, so a test waits for the line of its last request.
     */
    async logged(pattern) {
      for (let waited = 0; !pattern.test(logs()); waited += 50) {
        if (waited > 120_000) throw new Error(`${pattern} never reached the logs:\n${logs().slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return logs();
    },
    pgid: child.pid,
    inspectorPort,
    async stop() {
      if (!running.has(child)) return;
      killGroup(child, 'SIGTERM');
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      killGroup(child, 'SIGKILL'); // workerd children that outlived wrangler
      running.delete(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  let exitCode;
  exited.then((code) => (exitCode = code ?? 'signal'));
  while (Date.now() < deadline && exitCode === undefined) {
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return worker;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  await worker.stop();
  throw new Error(`wrangler dev did not become ready (exit: ${exitCode ?? 'timeout'}):\n${logs()}`);
}

/** An event shaped like Stripe's, with a fresh id unless one is given. */
export function makeEvent(type, object, overrides = {}) {
  return {
    id: overrides.id ?? `evt_e2e${Date.now()}${Math.random().toString(36).slice(2, 10)}`,
    object: 'event',
    api_version: '2026-10-28.endive',
    created: overrides.created ?? Math.floor(Date.now() / 1000),
    data: { object },
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type,
  };
}

/** Signs with the official SDK and POSTs to /webhook. */
export async function deliver(worker, payload, { secret, timestamp, header } = {}) {
  const body = typeof payload === 'string' ? payload : JSON.stringify(payload);
  // header: a ready header, or null to send none; otherwise the SDK signs the body.
  const signature =
    header !== undefined ? header : stripe.webhooks.generateTestHeaderString({ payload: body, secret, timestamp });
  const headers = { 'content-type': 'application/json; charset=utf-8' };
  if (signature !== null) headers['stripe-signature'] = signature;
  const res = await fetch(`${worker.url}/webhook`, { method: 'POST', headers, body });
  return { status: res.status, headers: res.headers, body: await res.json().catch(() => null) };
}

export async function adminGet(worker, route, token) {
  const headers = token === undefined ? {} : { authorization: `Bearer ${token}` };
  const res = await fetch(`${worker.url}${route}`, { headers });
  return { status: res.status, headers: res.headers, body: await res.json().catch(() => null) };
}

/** What the e2e stacks sign notifications with (NOTIFY_SIGNING_SECRET). */
export const NOTIFY_SECRET = 'nsec_e2e_notifications_6f2a';

let clients = 0;
/**
 * A client address of its own (`CF-Connecting-IP`, which `wrangler dev` passes through): the
 * rate limits count per client, and tests are many clients, not one flooding the worker.
 */
export function clientIp() {
  clients += 1;
  return `198.18.${(clients >> 8) & 255}.${clients & 255}`;
}

/**
 * A notification sink on loopback: records every JSON POST (NOTIFY_URL points here), whether
 * its Notify-Signature verifies with `secret` (as a receiver would check it), and answers
 * `status()` (200 unless told otherwise). `refuse(true)` makes it drop every connection
 * without an answer (a sink that is down) until `refuse(false)`; each entry says what it was
 * answered (`answered`: the status, or null when dropped).
 */
export async function startSink({ secret = NOTIFY_SECRET } = {}) {
  const received = [];
  let answer = 200;
  let refusing = false;
  const server = http.createServer((req, res) => {
    if (refusing) {
      received.push({ method: req.method, path: req.url, headers: req.headers, body: null, verified: false, answered: null });
      req.socket.destroy();
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body = null;
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
      let verified = false;
      try {
        verifyNotification(Buffer.concat(chunks), req.headers[SIGNATURE_HEADER], secret);
        verified = true;
      } catch {
        // recorded as unverified
      }
      received.push({ method: req.method, path: req.url, headers: req.headers, body, raw: text, verified, answered: answer });
      res.writeHead(answer, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/notify`,
    received,
    answerWith: (status) => (answer = status),
    refuse: (on) => (refusing = on),
    close: () => new Promise((resolve) => {
      server.closeAllConnections?.();
      server.close(resolve);
    }),
  };
}

/**
 * Which destinations the stand-in delivers to the worker through (startStack): `snapshot` (a
 * webhook endpoint, the default), `thin` (an event destination with `event_payload: thin`
 * only) or `both` (each with its own secret, both in STRIPE_WEBHOOK_SECRET). E2E_DESTINATIONS
 * chooses it for a whole run; e2e/thin.test.mjs runs the flows files under `thin` and `both`.
 */
export const DESTINATIONS = process.env.E2E_DESTINATIONS ?? 'snapshot';
if (!['snapshot', 'thin', 'both'].includes(DESTINATIONS)) throw new Error(`E2E_DESTINATIONS must be snapshot, thin or both, not ${DESTINATIONS}`);

/** The secret of the thin destination beside a snapshot one signed with `secret`. */
export const thinSecretFor = (secret) => `${secret}_thin`;

/**
 * Points the stand-in's event deliveries at the worker, signed with `secret`: through the
 * destinations `destinations` names (see DESTINATIONS).
 */
export async function connectStandIn(stripeBase, worker, secret, destinations = 'snapshot') {
  if (destinations !== 'both') {
    await addStandInEndpoint(stripeBase, `${worker.url}/webhook`, secret, destinations);
    return;
  }
  await addStandInEndpoint(stripeBase, `${worker.url}/webhook`, secret, 'snapshot');
  await addStandInEndpoint(stripeBase, `${worker.url}/webhook`, thinSecretFor(secret), 'thin');
}

/** Registers `url` as one of the stand-in's webhook endpoints, signed with `secret`. */
export async function addStandInEndpoint(stripeBase, url, secret, payload = 'snapshot') {
  const res = await fetch(`${stripeBase}/_test/endpoints`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ url, secret, event_payload: payload, enabled_events: payload === 'thin' ? THIN_TYPES : ['*'] }),
  });
  if (res.status !== 200) throw new Error(`stand-in endpoint: ${res.status} ${await res.text()}`);
}

/** POSTs JSON to an admin route. */
export async function adminPost(worker, route, token, body) {
  const headers = { 'content-type': 'application/json' };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${worker.url}${route}`, { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: res.status, headers: res.headers, body: await res.json().catch(() => null) };
}

/** A deterministic shuffle (so a failure can be replayed from its seed). */
export function shuffled(items, seed) {
  const out = [...items];
  let state = seed;
  for (let i = out.length - 1; i > 0; i--) {
    state = (state * 1103515245 + 12345) % 2147483648;
    const j = state % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/**
 * The usual end-to-end setup: the Stripe stand-in, a notification sink, and the worker with
 * `settings` plus STRIPE_API_BASE and NOTIFY_URL pointing at them; the stand-in delivers its
 * events to the worker signed with `settings.STRIPE_WEBHOOK_SECRET` unless `connect` is false;
 * `args`: more `wrangler dev` arguments (e.g. `--test-scheduled`). With `recorder` (a signing
 * secret), the stand-in also delivers its events to a sink of their own (`recorder`), for tests
 * that deliver to the worker themselves (`connect: false`) and read what Stripe emitted there.
 * With `ops`, OPS_NOTIFY_URL is the same sink's `/ops` path (the operator's alerts).
 * `persistTo`: keep the worker's local state there (a test that looks at it; the caller removes it).
 */
export async function startStack(settings, { connect = true, args = [], recorder: recorderSecret, ops = false, destinations: chosen, persistTo } = {}) {
  const destinations = chosen ?? DESTINATIONS;
  const standIn = createStandIn();
  const stripeBase = await standIn.listen(0);
  const sink = await startSink();
  const recorder = recorderSecret ? await startSink({ secret: recorderSecret }) : undefined;
  const opsUrl = ops ? { OPS_NOTIFY_URL: sink.url.replace(/\/notify$/, '/ops') } : {};
  const secret = settings.STRIPE_WEBHOOK_SECRET.split(',')[0];
  // Both destinations' secrets go in the one list, as the README's deploy steps say.
  const secrets = connect && destinations === 'both' ? { STRIPE_WEBHOOK_SECRET: `${settings.STRIPE_WEBHOOK_SECRET},${thinSecretFor(secret)}` } : {};
  const worker = await startWorker({ STRIPE_API_BASE: stripeBase, NOTIFY_URL: sink.url, NOTIFY_SIGNING_SECRET: NOTIFY_SECRET, ...opsUrl, ...settings, ...secrets }, { args, persistTo });
  if (connect) await connectStandIn(stripeBase, worker, secret, destinations);
  if (recorder) await addStandInEndpoint(stripeBase, recorder.url, recorderSecret);
  return {
    standIn,
    stripeBase,
    sink,
    recorder,
    worker,
    async stop() {
      // A run made to go through thin destinations (E2E_DESTINATIONS) must have gone through them.
      const thinRun = connect && chosen === undefined && destinations !== 'snapshot';
      const thinDelivered = thinRun && (await (await fetch(`${stripeBase}/_test/deliveries`)).json()).some((d) => d.type.startsWith('v1.') && d.status === 200);
      await worker.stop();
      await standIn.close();
      await sink.close();
      await recorder?.close();
      if (thinRun && !thinDelivered) throw new Error(`E2E_DESTINATIONS=${destinations}, but no thin event was delivered to the worker`);
    },
  };
}

/**
 * `POST /create-checkout-session` (the anonymous form, setup mode, from a client of its own):
 * the id of the Checkout Session it sent to.
 */
export async function createSetupSession(worker, fields = {}) {
  const res = await fetch(`${worker.url}/create-checkout-session`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'cf-connecting-ip': clientIp() },
    body: new URLSearchParams(fields).toString(),
  });
  const location = res.headers.get('location') ?? '';
  const id = location.match(/\/c\/pay\/(cs_\w+)$/)?.[1];
  if (res.status !== 303 || !id) {
    // The page's text says which failure it was (the ceiling, Stripe, the store).
    const text = (await res.text()).replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').slice(0, 300);
    throw new Error(`create-checkout-session: ${res.status} ${location} ${text}`);
  }
  return id;
}

/** Completes a Checkout Session at the stand-in (its test API); the events it emitted. */
export async function completeAtStandIn(stripeBase, id, { card = '4242424242424242', email = 'buyer@example.com' } = {}) {
  const res = await fetch(`${stripeBase}/_test/checkout/sessions/${id}/complete`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ card, email }),
  });
  if (res.status !== 200) throw new Error(`complete ${id}: ${res.status} ${await res.text()}`);
  const { events } = await res.json();
  return events.map((e) => e.event);
}

/** Moves an Identity VerificationSession at the stand-in (its test API) to `status`, with
 * `body` (e.g. a `last_error`); the events it emitted, each with its deliveries. */
export async function moveIdentitySession(stripeBase, id, status, body = {}) {
  const res = await fetch(`${stripeBase}/_test/identity/verification_sessions/${id}/${status}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (res.status !== 200) throw new Error(`move ${id} to ${status}: ${res.status} ${await res.text()}`);
  return (await res.json()).events;
}

/** `POST /setup-sessions` (admin): a setup session bound to `customer`; its id. */
export async function bindSetupSession(worker, token, customer, extra = {}) {
  const res = await adminPost(worker, '/setup-sessions', token, { customer, ...extra });
  if (res.status !== 201) throw new Error(`setup-sessions: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.id;
}
