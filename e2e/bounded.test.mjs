// Bounded under abuse, under real workerd: anonymous traffic costs no KV write, and a global
// ceiling (a Durable Object's count, not KV) holds across client addresses. The worker runs
// with COST_METER=true, so it logs one `[meter]` line per KV operation and Durable Object
// request (src/store/kv.rs, src/routes/entity.rs); the test counts them in wrangler's output.

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import { DatabaseSync } from 'node:sqlite';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { adminGet, adminPost, bindSetupSession, clientIp, completeAtStandIn, createSetupSession, moveIdentitySession, startStack } from './harness.mjs';

const SECRET = 'whsec_e2e_bounded_7c1f0a';
const ADMIN = 'e2e-bounded-admin-token-0123456789abcdef';
const STRIPE_KEY = 'sk_test_e2e_bounded_41d9be';

/** The `[meter]` lines in `logs` from `from` on, counted by what they say (`kv.write checkout`). */
export function meterCounts(logs, from = 0) {
  const counts = {};
  for (const line of logs.slice(from).split('\n')) {
    const m = line.match(/\[meter\] (\S+)(?: (\S+))?/);
    if (!m) continue;
    const [op] = m[1].split(' ');
    counts[op] = (counts[op] ?? 0) + 1;
    if (m[2]) counts[`${op} ${m[2]}`] = (counts[`${op} ${m[2]}`] ?? 0) + 1;
  }
  return counts;
}

/**
 * The worker's log once it holds a `[meter]` line for `marker` after `from` (the harness's
 * `logged`): workerd writes its log in order, so every line of the work before the marker is
 * in by then (no sleep).
 */
export function settledLogs(worker, from, marker) {
  return worker.logged({ test: (logs) => logs.slice(from).includes(`[meter] ${marker}`) });
}

const MANY = 300;
const EXPIRED = 60;

describe('anonymous traffic costs no KV write', () => {
  let stack;

  before(async () => {
    stack = await startStack({ STRIPE_SECRET_KEY: STRIPE_KEY, STRIPE_WEBHOOK_SECRET: SECRET, ADMIN_TOKEN: ADMIN, COST_METER: 'true' });
  });
  after(() => stack?.stop());

  test(`${MANY} anonymous setup sessions, ${EXPIRED} of them expired at Stripe, write nothing; a completion afterwards is recorded`, async () => {
    const { worker, stripeBase } = stack;
    const from = worker.logs().length;
    const ids = [];
    // In batches (each its own client address): the per-address limit is not what is tested.
    for (let i = 0; i < MANY; i += 20) {
      ids.push(...(await Promise.all(Array.from({ length: Math.min(20, MANY - i) }, () => createSetupSession(worker)))));
    }
    assert.equal(new Set(ids).size, MANY);
    for (const id of ids.slice(0, EXPIRED)) {
      const res = await fetch(`${stripeBase}/_test/checkout/sessions/${id}/expire`, { method: 'POST' });
      assert.equal(res.status, 200);
      const { events } = await res.json();
      assert.deepEqual(events.map((e) => [e.event.type, e.deliveries.map((d) => d.status)]), [['checkout.session.expired', [200]]]);
    }
    // The success page of a session still open reads what it needs from Stripe (it says "not
    // finished" with the link back to Checkout): its one KV read (a `checkout:` record it does not find) is the marker that the log is complete.
    const open = ids[EXPIRED];
    const page = await fetch(`${worker.url}/success?session_id=${open}`, { headers: { 'cf-connecting-ip': clientIp() } });
    assert.equal(page.status, 409, 'not finished yet');
    assert.match(await page.text(), new RegExp(`/c/pay/${open}`));
    const logs = await settledLogs(worker, from, 'kv.read checkout');
    const counts = meterCounts(logs, from);
    assert.equal(counts['kv.write'] ?? 0, 0, JSON.stringify(counts));
    assert.equal(counts['kv.delete'] ?? 0, 0, JSON.stringify(counts));
    assert.equal(counts['do.request entity'] ?? 0, 0, 'no Durable Object for any of them');
    assert.equal(counts['kv.read'], 1, JSON.stringify(counts));

    // The webhook works as before for a session someone completes.
    const completedFrom = worker.logs().length;
    const events = await completeAtStandIn(stripeBase, ids[EXPIRED + 1]);
    const completed = events.find((e) => e.type === 'checkout.session.completed');
    assert.ok(completed);
    const recorded = await adminGet(worker, `/events/${completed.id}`, ADMIN);
    assert.equal(recorded.status, 200);
    assert.equal(recorded.body.outcome, 'handled');
    const done = await fetch(`${worker.url}/success?session_id=${ids[EXPIRED + 1]}`, { headers: { 'cf-connecting-ip': clientIp() } });
    assert.match(await done.text(), /Card saved/);
    const after = meterCounts(await settledLogs(worker, completedFrom, 'kv.write checkout'), completedFrom);
    assert.ok(after['kv.write checkout'] >= 1 && after['kv.write customer'] >= 1, JSON.stringify(after));
  });
});

const PER_DAY = 12;

describe('the global ceiling on anonymous setup sessions', () => {
  let stack;

  before(async () => {
    // A minute's limit far above the day's: what is tested is the day's count, whatever minute
    // each post falls in (the per-minute window is covered by src/ceiling.rs's tests).
    stack = await startStack({
      STRIPE_SECRET_KEY: STRIPE_KEY, STRIPE_WEBHOOK_SECRET: SECRET, ADMIN_TOKEN: ADMIN, COST_METER: 'true',
      PUBLIC_SETUP_PER_DAY: String(PER_DAY), PUBLIC_SETUP_PER_MINUTE: '10000',
    });
  });
  after(() => stack?.stop());

  const post = (ip) =>
    fetch(`${stack.worker.url}/create-checkout-session`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'cf-connecting-ip': ip },
      body: '',
    });

  test('every /64 of one /48 is one client for the per-address limit; the day ceiling holds across many addresses; the rest keeps working', async () => {
    const { worker, stripeBase } = stack;
    const creates = async () => (await (await fetch(`${stripeBase}/_test/requests`)).json()).filter((r) => r.method === 'POST' && r.path === '/v1/checkout/sessions').length;
    // 12 /64s of 2001:db8:25::/48: one client, so the per-address limit (10 a minute) refuses
    // the last two whichever /64 they come from.
    const sameSite = [];
    for (let i = 0; i < 12; i++) sameSite.push((await post(`2001:db8:25:${(i + 1).toString(16)}::1`)).status);
    assert.deepEqual(sameSite.slice(0, 10), Array(10).fill(303), sameSite.join());
    assert.deepEqual(sameSite.slice(10), [429, 429], sameSite.join());
    assert.equal(await creates(), 10);

    // Then clients that never posted: IPv4 addresses, other /48s. The day has room for two more.
    const others = [...Array.from({ length: 10 }, () => clientIp()), ...Array.from({ length: 10 }, (_, i) => `2001:db8:${(0x100 + i).toString(16)}::7`)];
    const answers = [];
    for (const ip of others) {
      const res = await post(ip);
      answers.push({ status: res.status, retryAfter: res.headers.get('retry-after'), text: await res.text() });
    }
    assert.deepEqual(answers.slice(0, 2).map((a) => a.status), [303, 303]);
    for (const refused of answers.slice(2)) {
      assert.equal(refused.status, 503, refused.text);
      const seconds = Number(refused.retryAfter);
      assert.ok(Number.isInteger(seconds) && seconds > 0 && seconds <= 86400, refused.retryAfter);
      assert.match(refused.text, /Please come back later/);
      assert.match(refused.text, /try again in (a minute|\d+ minutes|an hour|\d+ hours)/);
    }
    assert.equal(await creates(), PER_DAY, 'Stripe was asked exactly the ceiling\'s number of times');

    // Webhooks, admin routes and charges are not behind the ceiling.
    const customerRes = await fetch(`${stripeBase}/v1/customers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${STRIPE_KEY}`, 'content-type': 'application/x-www-form-urlencoded', 'idempotency-key': 'e2e-bounded-customer' },
      body: 'email=app%40example.com',
    });
    const customer = (await customerRes.json()).id;
    const bound = await bindSetupSession(worker, ADMIN, customer);
    const events = await completeAtStandIn(stripeBase, bound);
    const completed = events.find((e) => e.type === 'checkout.session.completed');
    assert.equal((await adminGet(worker, `/events/${completed.id}`, ADMIN)).body.outcome, 'handled');
    const saved = await adminGet(worker, `/customers/${customer}`, ADMIN);
    assert.equal(saved.status, 200);
    assert.match(saved.body.default_payment_method, /^pm_/);
    const charge = await adminPost(worker, '/charges', ADMIN, { customer, amount: 1099, currency: 'usd', idempotency_key: 'bounded-order-1' });
    assert.equal(charge.status, 200, JSON.stringify(charge.body));
    assert.equal(charge.body.paid, true);
    // Still full for the public.
    assert.equal((await post(clientIp())).status, 503);
  });
});

/**
 * The rows of each Durable Object of one class under a `--persist-to` folder, read from its
 * SQLite file as workerd keeps it: `{ file: rows of its records table }`, and `null` for an
 * object whose storage holds no table at all (deleted).
 */
function objectRecords(state, className) {
  const base = path.join(state, 'v3', 'do');
  const dirs = readdirSync(base).filter((d) => d.endsWith(`-${className}`));
  const out = {};
  for (const dir of dirs) {
    for (const file of readdirSync(path.join(base, dir)).filter((f) => f.endsWith('.sqlite') && f !== 'metadata.sqlite')) {
      const db = new DatabaseSync(path.join(base, dir, file), { readOnly: true });
      try {
        const table = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'records'").get();
        out[file] = table ? db.prepare('SELECT key FROM records').all().map((r) => r.key.split(':')[0]) : null;
      } finally {
        db.close();
      }
    }
  }
  return out;
}

describe('retention: a finished public session leaves no Durable Object storage', () => {
  let stack;
  let state;

  before(async () => {
    // A fresh wrangler dev (Cloudflare: alarms may be missed after a hot reload).
    state = mkdtempSync(path.join(os.tmpdir(), 'stripe-edge-retention-'));
    // EPHEMERAL_GRACE_SECONDS: the session's object keeps its rows 2 s after its work (120 by
    // default, for redeliveries while KV's caches catch up), then its alarm deletes them.
    stack = await startStack({ STRIPE_SECRET_KEY: STRIPE_KEY, STRIPE_WEBHOOK_SECRET: SECRET, ADMIN_TOKEN: ADMIN, COST_METER: 'true', EPHEMERAL_GRACE_SECONDS: '2' }, { persistTo: state });
  });
  after(async () => {
    await stack?.stop();
    rmSync(state, { recursive: true, force: true });
  });

  test("the session's queue runs its completion, then its alarm deletes all its storage; the records stay in KV", async () => {
    const { worker, stripeBase } = stack;
    const from = worker.logs().length;
    const id = await createSetupSession(worker);
    const events = await completeAtStandIn(stripeBase, id);
    const completed = events.find((e) => e.type === 'checkout.session.completed');
    assert.equal((await adminGet(worker, `/events/${completed.id}`, ADMIN)).body.outcome, 'handled');
    // Its own queue ran the completion (a Durable Object request), then its alarm fired.
    const logs = await settledLogs(worker, from, 'do.alarm delete_all');
    const counts = meterCounts(logs, from);
    assert.equal(counts['do.request entity'], 1, JSON.stringify(counts));
    assert.equal(counts['do.alarm'], 1, JSON.stringify(counts));
    // What the success page and the admin routes read is in KV.
    const page = await fetch(`${worker.url}/success?session_id=${id}`, { headers: { 'cf-connecting-ip': clientIp() } });
    assert.match(await page.text(), /Card saved/);
    const afterSession = objectRecords(state, 'EntityQueue');
    assert.deepEqual(Object.values(afterSession), [null], JSON.stringify(afterSession));
    // A customer's queue keeps its records (the card on file): its object keeps its storage.
    const customerRes = await fetch(`${stripeBase}/v1/customers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${STRIPE_KEY}`, 'content-type': 'application/x-www-form-urlencoded', 'idempotency-key': 'e2e-retention-customer' },
      body: 'email=kept%40example.com',
    });
    const customer = (await customerRes.json()).id;
    await completeAtStandIn(stripeBase, await bindSetupSession(worker, ADMIN, customer));
    assert.equal((await adminGet(worker, `/customers/${customer}`, ADMIN)).status, 200);
    const kept = Object.entries(objectRecords(state, 'EntityQueue')).filter(([file]) => !(file in afterSession));
    assert.equal(kept.length, 1);
    assert.deepEqual(kept[0][1].sort(), ['checkout', 'customer', 'event'], JSON.stringify(kept));
  });
});

/**
 * A notification sink that answers `status()` with a body streamed without end (256 MB in
 * 64 KiB chunks, written as fast as the reader takes them): what it managed to send before the
 * reader hung up is recorded per request.
 */
async function startStreamingSink() {
  const TOTAL = 256 * 1024 * 1024;
  const chunk = Buffer.alloc(64 * 1024, 'x');
  const answers = [];
  let status = 200;
  const server = http.createServer((req, res) => {
    const parts = [];
    req.on('data', (c) => parts.push(c));
    req.on('end', () => {
      const entry = { id: JSON.parse(Buffer.concat(parts).toString('utf8')).id, status, sent: 0, finished: false, closed: false };
      answers.push(entry);
      res.writeHead(status, { 'content-type': 'application/octet-stream' });
      res.on('close', () => (entry.closed = true));
      const pump = () => {
        while (entry.sent < TOTAL && !entry.closed) {
          entry.sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        if (!entry.closed) res.end(() => (entry.finished = true));
      };
      pump();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/notify`,
    answers,
    answerWith: (s) => (status = s),
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(resolve);
    }),
  };
}

describe('a notification sink that streams a huge body', () => {
  let stack;
  let sink;

  before(async () => {
    sink = await startStreamingSink();
    stack = await startStack({ STRIPE_SECRET_KEY: STRIPE_KEY, STRIPE_WEBHOOK_SECRET: SECRET, ADMIN_TOKEN: ADMIN, NOTIFY_URL: sink.url });
  });
  after(async () => {
    await stack?.stop();
    await sink?.close();
  });

  test('is read only up to the cap, and the notification is recorded by its status alone', async () => {
    const { worker, stripeBase } = stack;
    const verify = async (user) => {
      const created = await adminPost(worker, '/identity/verification-sessions', ADMIN, { user_id: user, type: 'document' });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      await moveIdentitySession(stripeBase, created.body.id, 'verified');
    };
    for (const [user, status, state] of [['user_stream_ok', 200, 'delivered'], ['user_stream_500', 500, 'pending']]) {
      sink.answerWith(status);
      const before = sink.answers.length;
      await verify(user);
      const answer = sink.answers[before];
      assert.ok(answer, 'the sink was called');
      const record = await adminGet(worker, `/notifications/${answer.id}`, ADMIN);
      assert.equal(record.status, 200);
      assert.equal(record.body.state, state, JSON.stringify(record.body));
      assert.equal(record.body.attempts.at(-1).status, status);
      // The worker stopped reading at its cap and hung up: the sink could not push the 256 MB
      // (only what loopback socket buffers hold beyond the 4 KiB read).
      for (let i = 0; !answer.closed && i < 100; i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(answer.closed && !answer.finished, JSON.stringify(answer));
      assert.ok(answer.sent < 32 * 1024 * 1024, `the sink sent ${answer.sent} bytes`);
      console.log(`# sink answering ${status}: ${answer.sent} bytes written before the worker hung up`);
    }
  });
});
