// Bounded under abuse, under real workerd: anonymous traffic costs no KV write. The worker runs
// with COST_METER=true, so it logs one `[meter]` line per KV operation and Durable Object
// request (src/store/kv.rs, src/routes/entity.rs); the test counts them in wrangler's output.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { adminGet, clientIp, completeAtStandIn, createSetupSession, startStack } from './harness.mjs';

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
 * Waits until the worker has logged a `[meter]` line for `marker` after `from`: workerd writes
 * its log in order, so every line of the work before the marker is in by then (no sleep).
 */
export async function settledLogs(worker, from, marker) {
  for (;;) {
    const logs = worker.logs();
    if (logs.slice(from).includes(`[meter] ${marker}`)) return logs;
    await new Promise((r) => setTimeout(r, 50));
  }
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
