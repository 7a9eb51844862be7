// A bounded load test of signed deliveries on loopback: N distinct events, signed in advance
// with the official SDK, POSTed to a worker under wrangler dev over C connections. It stops by
// itself, prints throughput and latency, and checks that every delivery was answered 2xx and
// every event id was recorded (GET /events, paged). Not a timed test: it prints figures.
//
//   node bench/load.mjs [--events 20000] [--connections 16] [--url http://127.0.0.1:PORT]
//
// Without --url it builds nothing and starts its own worker (wrangler dev, a fresh local KV)
// from the current build/ (run scripts/build.sh first, or use bench/run.sh).

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { makeEvent, startWorker, stripe } from '../e2e/harness.mjs';

const { values: opts } = parseArgs({
  options: {
    events: { type: 'string', default: '20000' },
    connections: { type: 'string', default: '16' },
    url: { type: 'string' },
    secret: { type: 'string', default: 'whsec_bench_load_1f2e3d' },
    admin: { type: 'string', default: 'bench-load-admin' },
    'append-results': { type: 'string' },
  },
});
const total = Number(opts.events);
const connections = Number(opts.connections);
if (!Number.isInteger(total) || total < 1 || !Number.isInteger(connections) || connections < 1) {
  console.error('--events and --connections must be positive integers');
  process.exit(2);
}

let worker;
if (opts.url) {
  worker = { url: opts.url, stop: async () => {} };
} else {
  worker = await startWorker({ STRIPE_WEBHOOK_SECRET: opts.secret, ADMIN_TOKEN: opts.admin, STRIPE_SECRET_KEY: 'sk_test_bench_load' });
}

try {
  // Half Identity events (handled: user and session records written), half an ignored type.
  const now = Math.floor(Date.now() / 1000);
  console.log(`signing ${total} events…`);
  const bodies = Array.from({ length: total }, (_, i) => {
    const event =
      i % 2 === 0
        ? makeEvent('identity.verification_session.requires_input', {
            id: `vs_load${i}`, object: 'identity.verification_session', status: 'requires_input', created: now,
            last_error: { code: 'document_expired', reason: 'The document is expired.' },
            // Made by this deployment (`DEPLOYMENT_ID` of wrangler.toml): acted on, not ignored.
            metadata: { user_id: `load_user_${i % 500}`, created_by: 'stripe-edge-webhooks' },
          }, { id: `evt_load${now}x${i}`, created: now })
        : makeEvent('customer.updated', { id: `cus_load${i}`, object: 'customer', email: `c${i}@example.com` }, { id: `evt_load${now}x${i}`, created: now });
    const body = JSON.stringify(event);
    return { id: event.id, body, header: stripe.webhooks.generateTestHeaderString({ payload: body, secret: opts.secret }) };
  });

  const latencies = new Float64Array(total);
  const statuses = new Map();
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (next < total) {
        const i = next++;
        const t0 = performance.now();
        let status;
        try {
          const res = await fetch(`${worker.url}/webhook`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'stripe-signature': bodies[i].header },
            body: bodies[i].body,
          });
          await res.arrayBuffer();
          status = res.status;
        } catch (e) {
          status = `error ${e.cause?.code ?? e.message}`;
        }
        latencies[i] = performance.now() - t0;
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const sorted = [...latencies].sort((a, b) => a - b);
  const pct = (p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
  const non2xx = [...statuses].filter(([s]) => !(s >= 200 && s < 300)).reduce((n, [, c]) => n + c, 0);

  // Every id recorded, with its outcome: page through GET /events (the event index, 100 a page).
  const recorded = new Map();
  let cursor = null;
  do {
    const q = new URLSearchParams({ limit: '100', ...(cursor ? { cursor } : {}) });
    const res = await fetch(`${worker.url}/events?${q}`, { headers: { authorization: `Bearer ${opts.admin}` } });
    if (res.status !== 200) throw new Error(`GET /events: ${res.status} ${await res.text()}`);
    const page = await res.json();
    for (const e of page.events) recorded.set(e.id, e.outcome);
    cursor = page.cursor;
  } while (cursor);
  const missing = bodies.filter((b) => !recorded.has(b.id)).length;
  // The Identity half is acted on (even indexes), the customer.updated half ignored.
  const unexpected = bodies.filter((b, i) => recorded.has(b.id) && recorded.get(b.id) !== (i % 2 === 0 ? 'handled' : 'ignored')).length;

  console.log(JSON.stringify({ statuses: Object.fromEntries(statuses) }));
  console.log(`events ${total}, connections ${connections}, ${seconds.toFixed(1)} s, ${(total / seconds).toFixed(0)} req/s`);
  console.log(`latency ms: p50 ${pct(50).toFixed(1)}, p90 ${pct(90).toFixed(1)}, p99 ${pct(99).toFixed(1)}, max ${sorted.at(-1).toFixed(1)}`);
  console.log(`non-2xx: ${non2xx}; recorded: ${total - missing} of ${total}; missing: ${missing}; with another outcome than expected: ${unexpected}`);
  if (opts['append-results']) {
    const [load1] = os.loadavg();
    // The load section is the file's last: replaced by each run, the rest kept.
    const file = opts['append-results'];
    const before = existsSync(file) ? readFileSync(file, 'utf8') : '';
    const cut = before.indexOf('\n## Load: ');
    writeFileSync(file, (cut === -1 ? before : before.slice(0, cut)).trimEnd() + '\n' + [
      '',
      '## Load: signed deliveries until every event is recorded',
      '',
      `\`node bench/load.mjs --events ${total} --connections ${connections}\` (part of \`bash bench/run.sh\`), ${new Date().toISOString()}, load average ${load1.toFixed(2)} at the end.`,
      'Half `identity.verification_session.requires_input` (handled: session, user and outbox records written), half `customer.updated` (ignored: the event record only); each signed with the SDK beforehand; one local workerd (`wrangler dev`, local KV).',
      '',
      '| events | connections | seconds | requests/s | p50 ms | p90 ms | p99 ms | max ms | non-2xx | recorded |',
      '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      `| ${total} | ${connections} | ${seconds.toFixed(1)} | ${(total / seconds).toFixed(0)} | ${pct(50).toFixed(1)} | ${pct(90).toFixed(1)} | ${pct(99).toFixed(1)} | ${sorted.at(-1).toFixed(1)} | ${non2xx} | ${total - missing} of ${total} |`,
      '',
    ].join('\n'));
  }
  process.exitCode = non2xx === 0 && missing === 0 && unexpected === 0 ? 0 : 1;
} finally {
  await worker.stop();
}
