// What bench.mjs and profile.mjs share: the three workers, the events, starting a worker under
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

export const WORKERS = [
  { name: 'this', label: 'this worker (Rust/wasm)', config: 'wrangler.toml' },
  { name: 'reference', label: 'reference (JS, stripe SDK)', config: 'bench/reference/wrangler.toml' },
  { name: 'floor', label: 'floor (JS, 200 "ok")', config: 'bench/floor/wrangler.toml', floor: true },
  { name: 'floor-log', label: 'floor + one log line (JS)', config: 'bench/floor-log/wrangler.toml', floor: true },
];
// BENCH_EXTRA=name=path/to/wrangler.toml,… adds workers (e.g. another build of this one) for A/B
// experiments.
for (const extra of (process.env.BENCH_EXTRA ?? '').split(',').filter(Boolean)) {
  const [name, config] = extra.split('=');
  WORKERS.push({ name, label: name, config: path.resolve(config) });
}
// BENCH_PATHS / BENCH_WORKERS (comma-separated) narrow a run for quick experiments.
export const PATHS = ['health', 'reject', 'accept'].filter((p) => !process.env.BENCH_PATHS || process.env.BENCH_PATHS.split(',').includes(p));
export const EXPECTED = { health: 200, reject: 400, accept: 200 };
export const profileTargets = Object.fromEntries(WORKERS.map((w) => [w.name, w]));
export const RUN_WORKERS = WORKERS.filter((w) => !process.env.BENCH_WORKERS || process.env.BENCH_WORKERS.split(',').includes(w.name));

// ---------------------------------------------------------------- events

/** A `customer.updated` event of about 3 KB: a type the service records as ignored. */
let sequence = 0;
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
    { STRIPE_WEBHOOK_SECRET: SECRET },
    { config: worker.config, logFile: path.join(dir, `${worker.name}.log`), args: ['--log-level', 'log'] },
  ).catch((e) => {
    throw new Error(`${worker.name}: ${e.message}`);
  });
  return { ...worker, ...handle };
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

/**
 * CPU seconds used so far by every process of a worker's process group (wrangler's Node, the
 * dev proxy's workerd, and the workerd running the worker itself), from /proc.
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
  return { health: [health.status, healthBody], accept: [first.status, first.body], redelivery: [again.status, again.body], reject: [reject.status, reject.body] };
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

/** Requests for one trial; accept gets a pool of distinct events signed just now. */
export function requestsFor(pathName, expectedRps, seconds) {
  if (pathName === 'health') return { pool: 0, requests: [{ method: 'GET', path: '/health' }], stats: {} };
  if (pathName === 'reject') {
    return { pool: 0, requests: [signedRequest(makeEvent('reject'), WRONG_SECRET)], stats: {} };
  }
  const size = Math.ceil(Math.max(expectedRps, 500) * seconds * 1.5) + CONNECTIONS + 10;
  const pool = Array.from({ length: size }, () => signedRequest(makeEvent('a'), SECRET));
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
            item = signedRequest(makeEvent('late'), SECRET);
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
    // CPU milliseconds per request: the workerd running the worker, and everything the worker
    // needs under wrangler dev (that, the dev proxy's workerd, wrangler's Node printing logs).
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
