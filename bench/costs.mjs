// What each flow costs, counted in a run (not reasoned): the built worker under `wrangler dev`
// against the Stripe stand-in and a notification sink, with COST_METER=true so the worker logs
// one `[meter]` line per KV operation and Durable Object request. Per flow it counts KV reads,
// writes, deletes and lists, Durable Object requests and alarms, worker invocations, and
// subrequests to Stripe (the stand-in's request log) and to the sink (what it received); then a
// day of the flows against Cloudflare's Free and Paid plan limits.
//
//   source scripts/env.sh && bash scripts/build.sh && node bench/costs.mjs [--markdown]
//
// --markdown prints only the tables, as README.md and docs/OPERATIONS.md hold them.

import { clientIp, startStack } from '../e2e/harness.mjs';
import { handledEventTypes } from '../tools/common.mjs';

const SECRET = 'whsec_costs_5e0c7a';
const ADMIN = 'costs-admin-token-0123456789abcdef0123';
const STRIPE_KEY = 'sk_test_costs_2b8f41';
/** The shipped defaults (src/config.rs): the ceiling the day below is sized with. */
const PER_DAY = 100;
const PER_MINUTE = 10;
const CATCHUP_EVERY_MINUTES = 10;
const markdown = process.argv.includes('--markdown');

/**
 * Cloudflare's plan limits, as its docs give them (December 2026):
 * KV https://developers.cloudflare.com/kv/platform/limits/ and /kv/platform/pricing/
 *   (Free: 100,000 reads, 1,000 writes, 1,000 deletes, 1,000 lists a day; Paid: 10 million
 *   reads and 1 million each of writes, deletes and lists a month included);
 * Durable Objects https://developers.cloudflare.com/durable-objects/platform/pricing
 *   (requests, alarm invocations included: Free 100,000 a day; Paid 1 million a month included);
 * Workers https://developers.cloudflare.com/workers/platform/limits/
 *   (requests: Free 100,000 a day; subrequests: Free 50 an invocation, Paid 10,000).
 * A Paid month's inclusion is shown per day (/30).
 */
const LIMITS = {
  kvRead: { free: 100_000, paid: 10_000_000 / 30 },
  kvWrite: { free: 1_000, paid: 1_000_000 / 30 },
  kvDelete: { free: 1_000, paid: 1_000_000 / 30 },
  kvList: { free: 1_000, paid: 1_000_000 / 30 },
  doRequest: { free: 100_000, paid: 1_000_000 / 30 },
  invocation: { free: 100_000, paid: 10_000_000 / 30 },
};

const stack = await startStack(
  // EPHEMERAL_GRACE_SECONDS: a public session's object deletes its storage 2 s after its work
  // (120 by default): the same operations, counted sooner.
  { STRIPE_SECRET_KEY: STRIPE_KEY, STRIPE_WEBHOOK_SECRET: SECRET, ADMIN_TOKEN: ADMIN, COST_METER: 'true', CATCHUP_EVERY_MINUTES: String(CATCHUP_EVERY_MINUTES), EPHEMERAL_GRACE_SECONDS: '2' },
  { connect: false },
);
const { worker, stripeBase, sink } = stack;
// As tools/register-webhook.mjs subscribes a real endpoint: the handled types only.
await post(`${stripeBase}/_test/endpoints`, { url: `${worker.url}/webhook`, secret: SECRET, enabled_events: handledEventTypes() });

async function post(url, body, headers = {}) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${url}: ${res.status} ${text}`);
  return JSON.parse(text || 'null');
}
const admin = (route, body) => post(`${worker.url}${route}`, body, { authorization: `Bearer ${ADMIN}` });
const json = async (url) => (await fetch(url)).json();
const json2 = (res) => res.json();

/** Lines of the worker's log: one JSON line per request and per scheduled run, and the meter's. */
function logState() {
  const logs = worker.logs();
  return {
    length: logs.length,
    invocations: (logs.match(/\{"method":"/g) ?? []).length + (logs.match(/\{"scheduled":"/g) ?? []).length,
    alarms: (logs.match(/\[meter\] do\.alarm/g) ?? []).length,
  };
}

async function snapshot() {
  return { ...logState(), stripe: (await json(`${stripeBase}/_test/requests`)).length, sink: sink.received.length };
}

/**
 * Waits until every delivery the stand-in started has its answer and the worker has logged
 * one line for each invocation the flow made (its own requests and those deliveries) and
 * each alarm it expects: workerd writes its log in order, so the meter's lines are in.
 */
async function settle(before, direct, alarms) {
  const giveUp = Date.now() + 120_000;
  while (Date.now() < giveUp) {
    const deliveries = await json(`${stripeBase}/_test/deliveries`);
    const done = deliveries.every((d) => d.status !== null || d.error !== null);
    const now = logState();
    if (done && now.invocations >= before.invocations + direct + (deliveries.length - before.deliveries) && now.alarms >= before.alarms + alarms) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the flow did not settle');
}

function count(lines) {
  const c = { kvRead: 0, kvWrite: 0, kvDelete: 0, kvList: 0, doRequest: 0, doAlarm: 0 };
  for (const m of lines.matchAll(/\[meter\] (\S+)/g)) {
    const key = { 'kv.read': 'kvRead', 'kv.write': 'kvWrite', 'kv.delete': 'kvDelete', 'kv.list': 'kvList', 'do.request': 'doRequest', 'do.alarm': 'doAlarm' }[m[1]];
    if (key) c[key] += 1;
  }
  return c;
}

const rows = [];
/** Runs `flow` (which answers how many requests it sent the worker itself) and counts it. */
async function measure(key, label, flow, { alarms = 0 } = {}) {
  const before = { ...(await snapshot()), deliveries: (await json(`${stripeBase}/_test/deliveries`)).length };
  const direct = await flow();
  await settle(before, direct, alarms);
  const after = await snapshot();
  const c = count(worker.logs().slice(before.length));
  const deliveries = (await json(`${stripeBase}/_test/deliveries`)).length - before.deliveries;
  rows.push({
    key, label, ...c,
    invocations: direct + deliveries,
    stripe: after.stripe - before.stripe,
    sink: after.sink - before.sink,
  });
}

async function formPost() {
  const res = await fetch(`${worker.url}/create-checkout-session`, {
    method: 'POST', redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'cf-connecting-ip': clientIp() },
    body: '',
  });
  const id = (res.headers.get('location') ?? '').match(/(cs_\w+)$/)?.[1];
  if (res.status !== 303 || !id) throw new Error(`form: ${res.status}`);
  return id;
}
const successPage = (id) => fetch(`${worker.url}/success?session_id=${id}`, { headers: { 'cf-connecting-ip': clientIp() } }).then((r) => r.text());
const complete = (id, card = '4242424242424242') => post(`${stripeBase}/_test/checkout/sessions/${id}/complete`, { card, email: 'buyer@example.com' });

let open;
await measure('form', 'anonymous form post (opens a setup session)', async () => {
  open = await formPost();
  return 1;
});
// Another session to abandon: counted like the first (so its log lines stay out of the next
// flow's count), then dropped from the table.
let abandoned;
await measure('form-again', '', async () => {
  abandoned = await formPost();
  return 1;
});
rows.pop();
await measure('expired', 'an abandoned session expires (its webhook)', async () => {
  await post(`${stripeBase}/_test/checkout/sessions/${abandoned}/expire`, {});
  return 0;
});
await measure('success-open', 'success page, session not finished', async () => {
  await successPage(open);
  return 1;
});
await measure('completed', 'public session completed (webhook saves the card; its object deleted)', async () => {
  await complete(open);
  return 0;
}, { alarms: 1 });
await measure('success-done', 'success page, card saved', async () => {
  await successPage(open);
  return 1;
});

// The app's own customer (made at Stripe directly, before the next flow is counted).
const customer = (await json2(await fetch(`${stripeBase}/v1/customers`, {
  method: 'POST',
  headers: { authorization: `Bearer ${STRIPE_KEY}`, 'content-type': 'application/x-www-form-urlencoded', 'idempotency-key': 'costs-customer' },
  body: 'email=app%40example.com',
}))).id;
await measure('bound', 'app binds a setup session and the customer completes it', async () => {
  const { id } = await admin('/setup-sessions', { customer });
  await complete(id);
  return 1;
});
await measure('charge', 'charge succeeds (POST /charges and its webhook)', async () => {
  await admin('/charges', { customer, amount: 1099, currency: 'usd', idempotency_key: 'costs-order-1' });
  return 1;
});
await measure('identity', 'Identity: session created, then verified (webhooks, notification)', async () => {
  const session = await admin('/identity/verification-sessions', { user_id: 'user_costs', type: 'document' });
  await post(`${stripeBase}/_test/identity/verification_sessions/${session.id}/verified`, {});
  return 1;
});
const cron = (minute) => fetch(`${worker.url}/cdn-cgi/local/scheduled?cron=${encodeURIComponent('* * * * *')}&time=${(Math.floor(Date.now() / 3_600_000) * 3600 + minute * 60) * 1000}`);
// A scheduled run is one invocation, logged as one line.
await measure('cron', 'scheduled run, idle (not a catch-up minute)', async () => {
  await cron(7);
  return 1;
});
await measure('cron-catchup', 'scheduled run, idle, catch-up minute (every 10)', async () => {
  await cron(20);
  return 1;
});
await stack.stop();

// ------------------------------------------------------------------ a day
const by = Object.fromEntries(rows.map((r) => [r.key, r]));
const FIELDS = ['kvRead', 'kvWrite', 'kvDelete', 'kvList', 'doRequest', 'invocations', 'stripe', 'sink'];
// Cloudflare bills an alarm invocation as a Durable Object request.
const times = (row, n) => Object.fromEntries(FIELDS.map((f) => [f, ((row[f] ?? 0) + (f === 'doRequest' ? row.doAlarm : 0)) * n]));
const sum = (...parts) => Object.fromEntries(FIELDS.map((f) => [f, parts.reduce((t, p) => t + (p[f] ?? 0), 0)]));
const runs = 1440;
const catchupRuns = runs / CATCHUP_EVERY_MINUTES;
const idle = sum(times(by.cron, runs - catchupRuns), times(by['cron-catchup'], catchupRuns));
const publicDay = sum(times(by.form, PER_DAY), times(by.completed, PER_DAY), times(by['success-done'], PER_DAY));
const abandonedDay = sum(times(by.form, PER_DAY), times(by.expired, PER_DAY));
const days = [
  ['idle: 1,440 scheduled runs (144 with catch-up)', idle],
  [`the form at its ceiling, every session abandoned (${PER_DAY} opened and expired)`, abandonedDay],
  [`the form at its ceiling, every session completed (${PER_DAY} cards saved, success pages)`, publicDay],
  ['both together: idle + the ceiling completed', sum(idle, publicDay)],
];
const pct = (value, limit) => `${((100 * value) / limit).toFixed(value && value < limit / 1000 ? 2 : 1)}%`;

const fmt = (n) => n.toLocaleString('en-US');
const perFlow = [
  '| flow | KV reads | KV writes | KV deletes | KV lists | DO requests | invocations | Stripe calls | sink POSTs |',
  '|---|---|---|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.label} | ${r.kvRead} | ${r.kvWrite} | ${r.kvDelete} | ${r.kvList} | ${r.doRequest}${r.doAlarm ? ` + ${r.doAlarm} alarm` : ''} | ${r.invocations} | ${r.stripe} | ${r.sink} |`),
];
const perDay = [
  '| a day of | KV reads | KV writes | KV deletes | KV lists | DO requests | invocations | subrequests |',
  '|---|---|---|---|---|---|---|---|',
  ...days.map(([label, d]) => `| ${label} | ${fmt(d.kvRead)} | ${fmt(d.kvWrite)} | ${fmt(d.kvDelete)} | ${fmt(d.kvList)} | ${fmt(d.doRequest)} | ${fmt(d.invocations)} | ${fmt(d.stripe + d.sink)} |`),
  `| Free plan, a day | ${fmt(LIMITS.kvRead.free)} | ${fmt(LIMITS.kvWrite.free)} | ${fmt(LIMITS.kvDelete.free)} | ${fmt(LIMITS.kvList.free)} | ${fmt(LIMITS.doRequest.free)} | ${fmt(LIMITS.invocation.free)} | 50 an invocation |`,
  `| Paid plan, included a month / 30 | ${fmt(Math.round(LIMITS.kvRead.paid))} | ${fmt(Math.round(LIMITS.kvWrite.paid))} | ${fmt(Math.round(LIMITS.kvDelete.paid))} | ${fmt(Math.round(LIMITS.kvList.paid))} | ${fmt(Math.round(LIMITS.doRequest.paid))} | ${fmt(Math.round(LIMITS.invocation.paid))} | 10,000 an invocation |`,
  `| both together, share of the Free plan | ${pct(sum(idle, publicDay).kvRead, LIMITS.kvRead.free)} | ${pct(sum(idle, publicDay).kvWrite, LIMITS.kvWrite.free)} | ${pct(sum(idle, publicDay).kvDelete, LIMITS.kvDelete.free)} | ${pct(sum(idle, publicDay).kvList, LIMITS.kvList.free)} | ${pct(sum(idle, publicDay).doRequest, LIMITS.doRequest.free)} | ${pct(sum(idle, publicDay).invocations, LIMITS.invocation.free)} | |`,
];
const maxSub = Math.max(...rows.map((r) => r.stripe + r.sink));

if (!markdown) {
  console.log(`Counted under wrangler dev with the stand-in; the form's ceiling: PUBLIC_SETUP_PER_DAY=${PER_DAY}, PUBLIC_SETUP_PER_MINUTE=${PER_MINUTE}.\n`);
}
console.log(perFlow.join('\n'));
console.log('');
console.log(perDay.join('\n'));
console.log('');
console.log(`Most subrequests in one flow: ${maxSub} (Free plan: 50 an invocation); a flow's count is over all its invocations (each webhook delivery is one). Not forced here: the notification outbox's hourly sweep (one KV list in the first minute of each hour of the scheduled time, 24 a day; src/notify.rs) and any retries of a failing sink (docs/OPERATIONS.md, Notifications).`);
