// Racing events converge, under real workerd: the events of one user, one customer's cards and
// one charge, each delivered twice and all at once (as Stripe redelivers after an outage), end
// in exactly the records that one-by-one delivery of the same story gives, in every round.
// What makes it hold is each entity's queue (a Durable Object per user or customer,
// src/routes/entity.rs); without it, read-modify-writes of one record interleave and the
// newest state is lost.
//
// The stand-in's own event deliveries go to a recorder, never to the worker: the test delivers
// the recorded events itself, signed by the official SDK, as often and as concurrently as it
// needs.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { adminGet, adminPost, bindSetupSession, completeAtStandIn, createSetupSession, deliver, makeEvent, startStack, stripe } from './harness.mjs';

const SECRET = 'whsec_e2e_converge_5b8d';
const RECORDER_SECRET = 'whsec_e2e_converge_recorder_2c61';
const ADMIN = 'e2e-converge-admin-token-8e4f';
const STRIPE_KEY = 'sk_test_e2e_converge_71aa';
const ROUNDS = Number(process.env.CONVERGE_ROUNDS ?? 10);
const CARD_OK = '4242424242424242';
// Saves, then declines off-session (docs.stripe.com/testing).
const CARD_DECLINED = '4000000000000341';

/** Signs once: the same bytes and header are delivered again, as Stripe redelivers. */
function signed(event) {
  const payload = JSON.stringify(event);
  return { payload, header: stripe.webhooks.generateTestHeaderString({ payload, secret: SECRET }) };
}

/**
 * Records with this story's ids replaced by their order of first appearance (the stories
 * compared have the same shape but their own ids) and times replaced by their type.
 */
function normalised(records, extra = {}) {
  let text = JSON.stringify(records);
  for (const [id, name] of Object.entries(extra)) text = text.replaceAll(id, name);
  const names = new Map();
  text = text.replace(/\b(?:cus|pm|pi|cs|seti|py|vs|evt|ba)_[A-Za-z0-9_]+\b/g, (id) => {
    if (!names.has(id)) names.set(id, `ID${names.size}`);
    return names.get(id);
  });
  const times = ['created_at', 'updated_at', 'verified_at', 'saved_by_session_created', 'session_created'];
  return JSON.parse(text, (key, value) => (times.includes(key) ? typeof value : value));
}

describe('racing events converge (workerd)', () => {
  let stack;
  let stripeBase;
  let worker;
  let sink;
  let recorder;

  before(async () => {
    // The stand-in delivers to the recorder only; the tests deliver to the worker themselves.
    stack = await startStack(
      { STRIPE_SECRET_KEY: STRIPE_KEY, STRIPE_WEBHOOK_SECRET: SECRET, ADMIN_TOKEN: ADMIN },
      { connect: false, recorder: RECORDER_SECRET },
    );
    ({ stripeBase, worker, sink, recorder } = stack);
  });
  after(async () => {
    await stack?.stop();
  });

  /** Each event twice, all at once; every delivery must be answered 200. */
  async function burst(events) {
    const deliveries = events.flatMap((event) => [signed(event), signed(event)]);
    const answers = await Promise.all(deliveries.map(({ payload, header }) => deliver(worker, payload, { header })));
    assert.deepEqual([...new Set(answers.map((a) => a.status))], [200], JSON.stringify(answers.find((a) => a.status !== 200)?.body));
  }

  async function oneByOne(events) {
    for (const event of events) {
      const answer = await deliver(worker, event, { secret: SECRET });
      assert.equal(answer.status, 200, `${event.type}: ${JSON.stringify(answer.body)}`);
    }
  }

  /**
   * Runs `story(name)` once delivered one by one, then ROUNDS times in bursts, and compares
   * each round's records with the one-by-one ones. Returns the reference and the rounds that
   * differed (the assertion is the caller's, after it has looked at the reference).
   */
  async function compareRounds(story, read) {
    const reference = await story('ref');
    await oneByOne(reference.events);
    const expected = await read(reference);
    const failed = [];
    for (let round = 0; round < ROUNDS; round++) {
      const raced = await story(`r${round}`);
      await burst(raced.events);
      const got = await read(raced);
      try {
        assert.deepEqual(got, expected);
      } catch (error) {
        failed.push({ round, got });
      }
    }
    console.log(`# ${failed.length} of ${ROUNDS} rounds ended unlike one-by-one delivery`);
    if (failed.length) console.log(`# one by one: ${JSON.stringify(expected)}\n# round ${failed[0].round}: ${JSON.stringify(failed[0].got)}`);
    return { expected, failed };
  }

  test('a user with an older failed session and a newer verified one ends verified, every round', async () => {
    const base = Math.floor(Date.now() / 1000) - 3000;
    const vs = (id, user, status, code, created) => ({
      id, object: 'identity.verification_session', type: 'document', status, created,
      last_error: code ? { code, reason: `reason: ${code}` } : null, metadata: { user_id: user, created_by: 'stripe-edge-webhooks' },
    });
    const story = async (name) => {
      const user = `user_converge_${name}_${Date.now()}`;
      const older = `vs_${name}older${Date.now()}`;
      const newer = `vs_${name}newer${Date.now()}`;
      const events = [
        makeEvent('identity.verification_session.created', vs(older, user, 'requires_input', null, base), { created: base }),
        makeEvent('identity.verification_session.processing', vs(older, user, 'processing', null, base), { created: base + 10 }),
        makeEvent('identity.verification_session.requires_input', vs(older, user, 'requires_input', 'document_expired', base), { created: base + 20 }),
        makeEvent('identity.verification_session.created', vs(newer, user, 'requires_input', null, base + 30), { created: base + 30 }),
        makeEvent('identity.verification_session.processing', vs(newer, user, 'processing', null, base + 30), { created: base + 40 }),
        makeEvent('identity.verification_session.verified', vs(newer, user, 'verified', null, base + 30), { created: base + 50 }),
      ];
      return { user, events };
    };
    const read = async ({ user }) => {
      const record = await adminGet(worker, `/identity/users/${user}`, ADMIN);
      assert.equal(record.status, 200);
      return normalised(record.body, { [user]: 'USER' });
    };
    const { expected, failed } = await compareRounds(story, read);
    assert.equal(expected.status, 'verified');
    assert.equal(expected.attempts, 2);
    assert.deepEqual(failed.map((f) => [f.round, f.got.status]), [], 'every round ends as one-by-one delivery does');
  });

  test('one customer’s two setup sessions completing at once: the newer card stays the default, every round', async () => {
    let n = 0;
    const story = async () => {
      const res = await fetch(`${stripeBase}/v1/customers`, {
        method: 'POST',
        headers: { authorization: `Bearer ${STRIPE_KEY}`, 'content-type': 'application/x-www-form-urlencoded', 'idempotency-key': `converge-${Date.now()}-${n++}` },
        body: 'email=converge%40example.com',
      });
      const { id: customer } = await res.json();
      const completions = [];
      for (const card of [CARD_DECLINED, CARD_OK]) {
        const session = await bindSetupSession(worker, ADMIN, customer);
        const events = await completeAtStandIn(stripeBase, session, { card });
        completions.push(...events);
      }
      // Both sessions are made within a second; the newer one is the later by `created` in
      // Stripe's terms only once they differ, so the older one is put 100 s back.
      const completed = completions.filter((e) => e.type === 'checkout.session.completed');
      completed[0].data.object.created -= 100;
      assert.equal(completed.length, 2, completions.map((e) => e.type).join());
      return { customer, events: completions };
    };
    const read = async ({ customer }) => {
      const record = await adminGet(worker, `/customers/${customer}`, ADMIN);
      assert.equal(record.status, 200);
      return normalised(record.body);
    };
    const { expected, failed } = await compareRounds(story, read);
    assert.equal(expected.card_last4, '4242', 'one by one, the newer session’s card is the default');
    assert.deepEqual(failed.map((f) => [f.round, f.got.card_last4]), [], 'every round ends as one-by-one delivery does');
  });

  test('one charge: its decline and its recovery paid by a delayed method, racing: recovered, every round', async () => {
    const recorded = async () => {
      await fetch(`${stripeBase}/_test/deliveries`);
      return recorder.received.map((r) => r.body);
    };
    const setupEvents = async (customerCard) => {
      const session = await createSetupSession(worker);
      const events = await completeAtStandIn(stripeBase, session, { card: customerCard });
      return events.find((e) => e.type === 'checkout.session.completed');
    };
    const story = async (name) => {
      // A customer with a card that declines off-session, saved through the webhook.
      const completed = await setupEvents(CARD_DECLINED);
      assert.equal((await deliver(worker, completed, { secret: SECRET })).status, 200);
      const customerId = (await (await fetch(`${stripeBase}/_test/objects`)).json())
        .find((o) => o.object === 'customer' && o.metadata?.checkout_session === completed.data.object.id)?.id;
      assert.match(customerId ?? '', /^cus_/);
      const declined = await adminPost(worker, '/charges', ADMIN, { customer: customerId, amount: 2500, currency: 'usd', description: 'Converge', idempotency_key: `converge-${name}-${Date.now()}` });
      assert.equal(declined.status, 402, JSON.stringify(declined.body));
      const pi = declined.body.payment_intent;
      const [, recovery] = declined.body.recovery_url.match(/\/c\/pay\/(cs_\w+)$/);
      const paid = await fetch(`${stripeBase}/_test/checkout/sessions/${recovery}/complete`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ method: 'delayed', email: 'converge@example.com' }),
      });
      assert.equal(paid.status, 200);
      const settled = await fetch(`${stripeBase}/_test/checkout/sessions/${recovery}/settle`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ outcome: 'succeeded' }),
      });
      assert.equal(settled.status, 200);
      const all = await recorded();
      const mine = (e) => e.data.object.id === pi || e.data.object.id === recovery || e.data.object.metadata?.payment_intent === pi
        || (e.type.startsWith('payment_intent.') && e.data.object.customer === customerId);
      const events = all.filter((e) => mine(e) && (e.type.startsWith('payment_intent.') || e.type.startsWith('checkout.session.')));
      const types = events.map((e) => e.type);
      for (const type of ['payment_intent.payment_failed', 'checkout.session.completed', 'checkout.session.async_payment_succeeded']) {
        assert.ok(types.includes(type), `${type} in ${types.join()}`);
      }
      return { customer: customerId, pi, events };
    };
    const read = async ({ customer, pi }) => {
      const charge = await adminGet(worker, `/charges/${pi}`, ADMIN);
      const record = await adminGet(worker, `/customers/${customer}`, ADMIN);
      assert.equal(charge.status, 200);
      return normalised({ charge: charge.body, customer: record.body }, { [stripeBase]: 'STRIPE' });
    };
    const { expected, failed } = await compareRounds(story, read);
    assert.deepEqual([expected.charge.status, expected.charge.paid, expected.charge.recovery.status], ['recovered', true, 'paid']);
    assert.deepEqual(failed.map((f) => [f.round, f.got.charge.status, f.got.charge.recovery?.status]), [], 'every round ends as one-by-one delivery does');
  });
});
