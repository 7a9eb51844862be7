// What bench.mjs and profile.mjs share: the workers, the events, starting a worker under
// `wrangler dev` on free loopback ports, and one bounded load trial with autocannon.

import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import Stripe from 'stripe';
import { startWorker as startHarnessWorker } from '../e2e/harness.mjs';

export const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
export const WRANGLER = path.join(ROOT, 'node_modules/wrangler/bin/wrangler.js');
export const CONNECTIONS = Number(process.env.CONNECTIONS ?? 8);

export const SECRET = 'whsec_bench_secret_0123456789abcdef';
export const WRONG_SECRET = 'whsec_bench_not_the_secret';
const stripe = new Stripe('sk_test_bench_unused');
/** Every worker gets these: the Rust worker needs a secret key to know its mode (test), and the
 * admin token lets the check read back what it stored (GET /identity/users/{id}). */
export const ADMIN_TOKEN = 'bench-admin-token-0123456789abcdef0123';
const SETTINGS = { STRIPE_WEBHOOK_SECRET: SECRET, STRIPE_SECRET_KEY: 'sk_test_bench_unused', ADMIN_TOKEN };
/**
 * The mark the Rust worker's Identity events must carry (`metadata.created_by`, src/provenance.rs):
 * wrangler.toml's top-level `DEPLOYMENT_ID`, else its default. bench/reference/wrangler.toml
 * sets the same value.
 */
export const DEPLOYMENT_ID =
  readFileSync(path.join(ROOT, 'wrangler.toml'), 'utf8').match(/^DEPLOYMENT_ID\s*=\s*"([^"]+)"/m)?.[1] ?? 'stripe-edge-webhooks';

export const WORKERS = [
  { name: 'this', label: 'this worker (Rust/wasm)', config: 'wrangler.toml', rust: true },
  { name: 'reference', label: 'reference (JS, stripe SDK)', config: 'bench/reference/wrangler.toml' },
  { name: 'floor', label: 'floor (JS, 200 "ok")', config: 'bench/floor/wrangler.toml', floor: true },
  { name: 'floor-log', label: 'floor + one log line (JS)', config: 'bench/floor-log/wrangler.toml', floor: true },
  // Only a floor of the handled path: the others cross no Durable Object.
  { name: 'floor-do', label: 'floor + one Durable Object hop (JS)', config: 'bench/floor-do/wrangler.toml', floor: true, paths: ['handled'] },
];
// BENCH_EXTRA=name=path/to/wrangler.toml,… adds workers (another build of this one, checked as
// this one is) for A/B experiments.
for (const extra of (process.env.BENCH_EXTRA ?? '').split(',').filter(Boolean)) {
  const [name, config] = extra.split('=');
  WORKERS.push({ name, label: name, config: path.resolve(config), rust: true });
}
// BENCH_PATHS / BENCH_WORKERS (comma-separated) narrow a run for quick experiments.
export const PATHS = ['health', 'reject', 'accept', 'handled'].filter((p) => !process.env.BENCH_PATHS || process.env.BENCH_PATHS.split(',').includes(p));
export const EXPECTED = { health: 200, reject: 400, accept: 200, handled: 200 };
/** Whether the bench times `worker` on path `p` (a worker may be a floor of some paths only). */
export const measures = (worker, p) => !worker.paths || worker.paths.includes(p);
export const profileTargets = Object.fromEntries(WORKERS.map((w) => [w.name, w]));
export const RUN_WORKERS = WORKERS.filter((w) => !process.env.BENCH_WORKERS || process.env.BENCH_WORKERS.split(',').includes(w.name));

// ---------------------------------------------------------------- events

/** A `customer.updated` event of about 3 KB: a type the service records as ignored. */
let sequence = 0;
const RUN = Date.now().toString(36);
export function makeEvent(tag) {
  const n = ++sequence;
  const id = `evt_bench${tag}${Date.now().toString(36)}${n}`;
  const customer = {
    id: `cus_bench${n}`,
    object: 'customer',
    address: { city: 'San Francisco', country: 'US', line1: '510 Townsend Street', line2: null, postal_code: '94103', state: 'CA' },
    balance: 0,
    created: 1_790_000_000,
    currency: 'usd',
    default_source: null,
    delinquent: false,
    description: 'Benchmark customer with a realistic amount of data on it',
    discount: null,
    email: `jenny.rosen+${n}@example.com`,
    invoice_prefix: 'B3NCH' + (n % 1000),
    invoice_settings: { custom_fields: null, default_payment_method: `pm_bench${n}`, footer: null, rendering_options: null },
    livemode: false,
    metadata: Object.fromEntries(Array.from({ length: 46 }, (_, i) => [`key_${i}`, `value number ${i} for customer ${n}`])),
    name: 'Jenny Rosen',
    next_invoice_sequence: 1,
    phone: '+14155550100',
    preferred_locales: ['en-US'],
    shipping: { address: { city: 'San Francisco', country: 'US', line1: '510 Townsend Street', line2: null, postal_code: '94103', state: 'CA' }, name: 'Jenny Rosen', phone: '+14155550100' },
    tax_exempt: 'none',
    test_clock: null,
  };
  const event = {
    id,
    object: 'event',
    api_version: '2026-10-28.endive',
    created: Math.floor(Date.now() / 1000),
    data: { object: customer, previous_attributes: { email: 'old@example.com', metadata: { key_0: 'previous' } } },
    livemode: false,
    pending_webhooks: 1,
    request: { id: `req_bench${n}`, idempotency_key: `idem-${n}` },
    type: 'customer.updated',
  };
  return JSON.stringify(event);
}

/**
 * An `identity.verification_session.processing` event (the user submitted) of a session this
 * deployment made (`metadata.created_by`), for a user never seen before: a type the service
 * handles without calling Stripe, through the user's queue (a Durable Object per user), where
 * it writes the session, user and event records to the queue's table and then to KV. The
 * session is shaped as Stripe's (the SDK's `Identity.VerificationSession`, the example object in
 * vendor/stripe/fixtures3.json) as it is while processing.
 */
export function makeHandledEvent(tag) {
  const stamp = `${tag}${RUN}x${++sequence}`;
  const created = Math.floor(Date.now() / 1000);
  const session = {
    id: `vs_bench${stamp}`,
    object: 'identity.verification_session',
    client_reference_id: null,
    client_secret: null,
    created: created - 120,
    last_error: null,
    last_verification_report: null,
    livemode: false,
    metadata: { user_id: `bench_user_${stamp}`, created_by: DEPLOYMENT_ID },
    options: { document: { require_matching_selfie: true } },
    provided_details: null,
    redaction: null,
    related_customer: null,
    related_customer_account: null,
    status: 'processing',
    type: 'document',
    url: null,
  };
  const event = {
    id: `evt_bench${stamp}`,
    object: 'event',
    api_version: '2026-10-28.endive',
    created,
    data: { object: session },
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type: 'identity.verification_session.processing',
  };
  return JSON.stringify(event);
}

export function signedRequest(body, secret) {
  return {
    method: 'POST',
    path: '/webhook',
    headers: {
      'content-type': 'application/json; charset=utf-8',
      'stripe-signature': stripe.webhooks.generateTestHeaderString({ payload: body, secret }),
    },
    body,
  };
}

// ---------------------------------------------------------------- workers

/** A bench worker under `wrangler dev`, its output in `dir` (the harness's startWorker). */
export async function startWorker(worker, dir) {
  const handle = await startHarnessWorker(
    SETTINGS,
    { config: worker.config, logFile: path.join(dir, `${worker.name}.log`), args: ['--log-level', 'log'] },
  ).catch((e) => {
    throw new Error(`${worker.name}: ${e.message}`);
  });
  return { ...worker, ...handle };
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

/**
 * CPU seconds used so far by every process of a worker's process group (wrangler's Node, the
 * dev proxy's workerd, and the workerd running the worker itself), from /proc. The worker's
 * workerd also runs its Durable Objects (their isolates are in that process): a Durable Object
 * that spins 20 ms per request added 21 ms per request to `worker` and nothing to the others
 * (docs/PERFORMANCE.md).
 */
export function groupCpu(pgid) {
  const cpu = { worker: 0, proxy: 0, wrangler: 0 };
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let stat, cmdline;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) !== pgid) continue;
    const seconds = (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
    const kind = !cmdline.includes('workerd') ? 'wrangler' : cmdline.includes('--inspector-addr') ? 'worker' : 'proxy';
    cpu[kind] += seconds;
  }
  return cpu;
}

/** One request through fetch: what the worker answers for each path, checked before timing. */
export async function check(worker) {
  const post = async (req) => {
    const res = await fetch(`${worker.url}${req.path}`, { method: 'POST', headers: req.headers, body: req.body });
    return { status: res.status, body: await res.text() };
  };
  const health = await fetch(`${worker.url}/health`);
  const healthBody = await health.text();
  const body = makeEvent('check');
  const first = await post(signedRequest(body, SECRET));
  const again = await post(signedRequest(body, SECRET));
  const reject = await post(signedRequest(body, WRONG_SECRET));
  const answers = { health: [health.status, healthBody], accept: [first.status, first.body], redelivery: [again.status, again.body], reject: [reject.status, reject.body] };
  const handled = await checkHandled(worker, post);
  if (worker.floor) return { ...answers, ...handled };
  return { ...answers, ...handled, indexed: await checkIndexed(worker, JSON.parse(body).id, handled.handledIds) };
}

/**
 * The event index both workers keep for the console's lists: the accepted event's row, the
 * handled event's row and its user's list row, read back through each worker's list routes
 * (`GET /events`, `GET /identity/users?status=processing`; the Rust worker's with the admin
 * token). Whether every one was there.
 */
async function checkIndexed(worker, acceptedId, handled) {
  const read = async (path) => {
    const res = await fetch(`${worker.url}${path}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    return res.status === 200 ? await res.text() : '';
  };
  const events = await read('/events');
  const users = await read('/identity/users?status=processing');
  return events.includes(`"${acceptedId}"`) && events.includes(`"${handled.event}"`) &&
    users.includes(`"${handled.user}"`);
}

/**
 * The handled path: a fresh Identity event answered as new, then as a duplicate, and what the
 * worker logged for it (`outcome` must be `handled`, not `ignored`). For the Rust worker (which
 * has the read route), the user record it stored, read back with the admin token.
 */
async function checkHandled(worker, post) {
  const body = makeHandledEvent('check');
  const event = JSON.parse(body);
  const first = await post(signedRequest(body, SECRET));
  const again = await post(signedRequest(body, SECRET));
  const result = { handled: [first.status, first.body], handledRedelivery: [again.status, again.body], handledIds: { event: event.id, user: event.data.object.metadata.user_id } };
  if (worker.floor || first.status !== 200 || again.status !== 200) return result;
  // The redelivery's line comes after the first delivery's.
  const logs = await worker.logged(new RegExp(`"event_id":"${event.id}"[^\n]*"outcome":"duplicate"`));
  const line = logs.split('\n').find((l) => l.includes(`"event_id":"${event.id}"`));
  result.handledOutcome = line?.match(/"outcome":"(\w+)"/)?.[1] ?? null;
  if (!worker.rust) return result;
  const user = await fetch(`${worker.url}/identity/users/${event.data.object.metadata.user_id}`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  result.handledUser = [user.status, await user.text()];
  return result;
}

/** Whether a non-floor worker answered every path as it should (`check`'s answers). */
export function checkPassed(worker, c) {
  const handledUserOk = !worker.rust || (c.handledUser?.[0] === 200 && c.handledUser[1].includes('"status":"processing"'));
  return c.health[0] === 200 && c.accept[0] === 200 && c.accept[1].includes('"duplicate":false') &&
    c.redelivery[0] === 200 && c.redelivery[1].includes('"duplicate":true') && c.reject[0] === 400 &&
    c.handled[0] === 200 && c.handled[1].includes('"duplicate":false') && c.handledRedelivery[0] === 200 &&
    c.handledRedelivery[1].includes('"duplicate":true') && c.handledOutcome === 'handled' && handledUserOk &&
    c.indexed === true;
}

// ---------------------------------------------------------------- load

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}
export const median = (values) => {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/** Requests for one trial; accept and handled get a pool of distinct events signed just now. */
export function requestsFor(pathName, expectedRps, seconds) {
  if (pathName === 'health') return { pool: 0, requests: [{ method: 'GET', path: '/health' }], stats: {} };
  if (pathName === 'reject') {
    return { pool: 0, requests: [signedRequest(makeEvent('reject'), WRONG_SECRET)], stats: {} };
  }
  const make = pathName === 'handled' ? () => makeHandledEvent('h') : () => makeEvent('a');
  const size = Math.ceil(Math.max(expectedRps, 500) * seconds * 1.5) + CONNECTIONS + 10;
  const pool = Array.from({ length: size }, () => signedRequest(make(), SECRET));
  const stats = { pool: size, signedLate: 0 };
  let next = 0;
  return {
    pool: size,
    stats,
    requests: [
      {
        method: 'POST',
        path: '/webhook',
        setupRequest(req) {
          let item = pool[next++];
          if (!item) {
            stats.signedLate++;
            item = signedRequest(make(), SECRET);
          }
          return { ...req, headers: item.headers, body: item.body };
        },
      },
    ],
  };
}

export async function trial(worker, pathName, seconds, expectedRps) {
  const { requests, stats } = requestsFor(pathName, expectedRps, seconds);
  const latencies = [];
  const statuses = {};
  const load = os.loadavg()[0];
  const cpuBefore = groupCpu(worker.pgid);
  const loadgenBefore = process.cpuUsage();
  const started = process.hrtime.bigint();
  const instance = autocannon({
    url: worker.url,
    connections: CONNECTIONS,
    pipelining: 1,
    duration: seconds,
    timeout: 10,
    requests,
  });
  instance.on('response', (_client, status, _bytes, responseTime) => {
    latencies.push(responseTime);
    statuses[status] = (statuses[status] ?? 0) + 1;
  });
  const result = await instance;
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  const cpuAfter = groupCpu(worker.pgid);
  const loadgen = process.cpuUsage(loadgenBefore);
  const perRequest = (seconds) => (latencies.length ? (1000 * seconds) / latencies.length : NaN);
  latencies.sort((a, b) => a - b);
  const expected = worker.floor ? 200 : EXPECTED[pathName];
  const unexpected = Object.entries(statuses).filter(([s]) => Number(s) !== expected).reduce((n, [, c]) => n + c, 0);
  return {
    rps: latencies.length / elapsed,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    n: latencies.length,
    unexpected: unexpected + result.errors + result.timeouts,
    statuses,
    load,
    // CPU milliseconds per request: the workerd running the worker (and its Durable Objects),
    // and everything the worker needs under wrangler dev (that, the dev proxy's workerd,
    // wrangler's Node printing logs).
    cpuWorker: perRequest(cpuAfter.worker - cpuBefore.worker),
    cpuAll: perRequest(cpuAfter.worker + cpuAfter.proxy + cpuAfter.wrangler - cpuBefore.worker - cpuBefore.proxy - cpuBefore.wrangler),
    cpuLoadgen: perRequest((loadgen.user + loadgen.system) / 1e6),
    ...stats,
  };
}


/** For profile.mjs: one worker in its own temporary directory, removed even on an early exit. */
const dirs = [];
process.on('exit', () => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const started = [];
export async function startBenchWorker(worker) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stripe-edge-bench-'));
  dirs.push(dir);
  const handle = await startWorker(worker, dir);
  started.push(handle);
  return handle;
}

export async function runLoad(worker, pathName, seconds) {
  return trial(worker, pathName, seconds, 3000);
}

export async function stopAll() {
  for (const w of started.splice(0)) await w.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}
