// Every flow end to end as Stripe defines it: the worker under real workerd against the strict
// stand-in (parameters checked against the pinned SDK's types, objects from Stripe's fixtures,
// test cards as Stripe documents them), with the stand-in delivering its events. Saving a card
// (success, declined while saving, 3D Secure while saving), charging it, a decline with its
// recovery paid at once, paid later by a delayed method, failed, and expired then renewed, and
// the Identity flow with events of the same second in both orders.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { adminGet, adminPost, clientIp, createSetupSession, deliver, makeEvent, startStack } from './harness.mjs';

const SECRET = 'whsec_e2e_flows_7c2e91';
const ADMIN = 'e2e-flows-admin-4d1b';
const STRIPE_KEY = 'sk_test_e2e_flows_9a3f20';

describe('the flows against the strict stand-in', () => {
  let stack;
  let stripeBase;
  let worker;
  let sink;

  before(async () => {
    stack = await startStack({ STRIPE_SECRET_KEY: STRIPE_KEY, STRIPE_WEBHOOK_SECRET: SECRET, ADMIN_TOKEN: ADMIN });
    ({ stripeBase, sink, worker } = stack);
  });
  after(() => stack?.stop());

  const objects = async () => (await fetch(`${stripeBase}/_test/objects`)).json();
  const requests = async () => (await fetch(`${stripeBase}/_test/requests`)).json();
  const standInPost = async (path, body = {}) => {
    const res = await fetch(`${stripeBase}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: await res.json().catch(() => null) };
  };
  const success = async (id) => {
    const res = await fetch(`${worker.url}/success?session_id=${encodeURIComponent(id)}`, { headers: { 'cf-connecting-ip': clientIp() } });
    return { status: res.status, html: await res.text() };
  };
  const customerOf = async (sessionId) => (await objects()).find((o) => o.object === 'customer' && o.metadata?.checkout_session === sessionId);
  const charge = (body) => adminPost(worker, '/charges', ADMIN, { currency: 'usd', ...body });
  const chargeRecord = async (pi) => (await adminGet(worker, `/charges/${pi}`, ADMIN)).body;
  const customerRecord = async (cus) => adminGet(worker, `/customers/${cus}`, ADMIN);
  const sessionIdOf = (url) => url.match(/\/c\/pay\/(cs_\w+)$/)[1];

  /** Saves `card` through Checkout; the stand-in delivers the events. Its customer, or null. */
  async function saveCard(card, extra = {}) {
    const id = await createSetupSession(worker);
    const completed = await standInPost(`/_test/checkout/sessions/${id}/complete`, { card, email: 'flows@example.com', ...extra });
    return { id, completed, customer: (await customerOf(id))?.id ?? null };
  }

  describe('saving a card', () => {
    test('4242: saved with its brand and last4 by the webhook; the success page agrees', async () => {
      const { id, completed, customer } = await saveCard('4242424242424242');
      assert.equal(completed.status, 200);
      assert.ok(customer, 'a customer was created');
      const record = await customerRecord(customer);
      assert.equal(record.status, 200);
      assert.deepEqual([record.body.card_brand, record.body.card_last4], ['visa', '4242']);
      const page = await success(id);
      assert.equal(page.status, 200);
      assert.match(page.html, /visa card ending in 4242/);
      // The session asked for cards the way endive allows (no payment_method_types).
      const create = (await requests()).find((r) => r.method === 'POST' && r.path === '/v1/checkout/sessions' && r.params.mode === 'setup');
      assert.deepEqual(create.params.allowed_payment_method_types, ['card']);
      assert.equal(create.params.payment_method_types, undefined);
    });

    for (const [card, decline] of [['4000000000009995', 'insufficient_funds'], ['4000000000000002', 'generic_decline']]) {
      test(`${card}: declined while saving, so no customer and no card; the session stays open`, async () => {
        const { id, completed, customer } = await saveCard(card);
        assert.equal(completed.status, 402, JSON.stringify(completed.body));
        assert.equal(completed.body.error.decline_code, decline);
        assert.equal(customer, null);
        const page = await success(id);
        assert.equal(page.status, 409);
        assert.match(page.html, /Not finished yet/);
      });
    }

    test('4000002760003184: 3D Secure while saving; completed, the card is saved; failed, nothing is', async () => {
      const done = await saveCard('4000002760003184', { three_d_secure: 'complete' });
      assert.equal(done.completed.status, 200, JSON.stringify(done.completed.body));
      assert.ok(done.customer);
      assert.equal((await customerRecord(done.customer)).body.card_last4, '3184');

      const failed = await saveCard('4000002760003184', { three_d_secure: 'fail' });
      assert.equal(failed.customer, null);
      assert.equal((await success(failed.id)).status, 409);
    });
  });

  describe('charging it later, and the recovery after a decline', () => {
    let next = 0;
    const key = (name) => `flows-${name}-${Date.now()}-${next++}`;

    test('a saved 4242 is charged off-session: succeeded, and the request never redirects', async () => {
      const { customer } = await saveCard('4242424242424242');
      const res = await charge({ customer, amount: 1500, idempotency_key: key('ok') });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.status, 'succeeded');
      const sent = (await requests()).filter((r) => r.method === 'POST' && r.path === '/v1/payment_intents').at(-1);
      assert.equal(sent.params.off_session, 'true');
      assert.equal(sent.params.confirm, 'true');
      assert.deepEqual(sent.params.automatic_payment_methods, { enabled: 'true', allow_redirects: 'never' });
    });

    test('3184 saved with 3D Secure is declined off-session with authentication_required', async () => {
      const { customer } = await saveCard('4000002760003184', { three_d_secure: 'complete' });
      const res = await charge({ customer, amount: 1500, idempotency_key: key('3ds') });
      assert.equal(res.status, 402, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'authentication_required');
      assert.match(res.body.recovery_url, /\/c\/pay\/cs_/);
    });

    test('declined (0341), recovery paid at once: recovered, and the new card is the default from then on', async () => {
      const { customer } = await saveCard('4000000000000341');
      const declined = await charge({ customer, amount: 2500, idempotency_key: key('paid') });
      assert.equal(declined.status, 402, JSON.stringify(declined.body));
      assert.equal(declined.body.error.code, 'card_declined');
      const recovery = sessionIdOf(declined.body.recovery_url);
      const created = (await requests()).find((r) => r.method === 'POST' && r.path === '/v1/checkout/sessions' && r.params.mode === 'payment' && r.idempotency_key === `${declined.body.payment_intent}:recovery`);
      // Only a card is kept for later off-session charges (a bank debit never becomes the default).
      assert.deepEqual(created.params.payment_method_options, { card: { setup_future_usage: 'off_session' } });
      assert.equal(created.params.payment_intent_data, undefined);

      const paid = await standInPost(`/_test/checkout/sessions/${recovery}/complete`, { card: '4242424242424242' });
      assert.equal(paid.status, 200, JSON.stringify(paid.body));
      const record = await chargeRecord(declined.body.payment_intent);
      assert.deepEqual([record.status, record.paid, record.recovery.status], ['recovered', true, 'paid']);
      const page = await success(recovery);
      assert.equal(page.status, 200);
      assert.match(page.html, /Payment received/);

      const saved = (await customerRecord(customer)).body;
      assert.equal(saved.card_last4, '4242', 'the card the recovery was paid with');
      assert.equal(saved.checkout_session, recovery);
      const again = await charge({ customer, amount: 700, idempotency_key: key('after') });
      assert.equal(again.status, 200, 'the next charge goes to the new card');
    });

    test('declined, recovery paid later by a delayed method: processing, then recovered', async () => {
      const { customer } = await saveCard('4000000000000341');
      const declined = await charge({ customer, amount: 3100, idempotency_key: key('delayed') });
      const pi = declined.body.payment_intent;
      const recovery = sessionIdOf(declined.body.recovery_url);
      const completed = await standInPost(`/_test/checkout/sessions/${recovery}/complete`, { method: 'delayed' });
      assert.equal(completed.status, 200, JSON.stringify(completed.body));
      let record = await chargeRecord(pi);
      assert.deepEqual([record.paid, record.recovery.status], [false, 'processing']);
      const page = await success(recovery);
      assert.equal(page.status, 200);
      assert.match(page.html, /Payment processing/);

      const settled = await standInPost(`/_test/checkout/sessions/${recovery}/settle`, { outcome: 'succeeded' });
      assert.equal(settled.status, 200, JSON.stringify(settled.body));
      record = await chargeRecord(pi);
      assert.deepEqual([record.status, record.paid, record.recovery.status], ['recovered', true, 'paid']);
      // Paid by a bank debit: the customer's default stays the card it had.
      const saved = (await customerRecord(customer)).body;
      assert.equal(saved.card_last4, '0341');
    });

    test('declined, the delayed payment fails: a new recovery session at once, notified; the repeat answers it', async () => {
      const { customer } = await saveCard('4000000000000341');
      const request = { customer, amount: 1800, idempotency_key: key('failed') };
      const declined = await charge(request);
      const pi = declined.body.payment_intent;
      const recovery = sessionIdOf(declined.body.recovery_url);
      await standInPost(`/_test/checkout/sessions/${recovery}/complete`, { method: 'delayed' });
      await standInPost(`/_test/checkout/sessions/${recovery}/settle`, { outcome: 'failed' });
      const record = await chargeRecord(pi);
      const second = record.recovery.checkout_session;
      assert.notEqual(second, recovery);
      assert.deepEqual([record.recovery.attempt, record.recovery.status, record.paid], [2, 'open', false]);
      const notified = sink.received.filter((n) => n.body?.kind === 'charge.recovery' && n.body.payload.payment_intent === pi);
      assert.deepEqual(notified.map((n) => sessionIdOf(n.body.payload.recovery_url)), [recovery, second]);

      const renewed = await charge(request);
      assert.equal(renewed.status, 402);
      assert.equal(sessionIdOf(renewed.body.recovery_url), second, 'the open recovery, nothing new');
    });

    test('declined, the recovery link expires, the charge is repeated: a new link, notified, then paid', async () => {
      const { customer } = await saveCard('4000000000000341');
      const request = { customer, amount: 2200, idempotency_key: key('expired') };
      const declined = await charge(request);
      const pi = declined.body.payment_intent;
      const recovery = sessionIdOf(declined.body.recovery_url);
      const expired = await standInPost(`/_test/checkout/sessions/${recovery}/expire`);
      assert.equal(expired.status, 200, JSON.stringify(expired.body));
      assert.equal((await chargeRecord(pi)).recovery.status, 'expired');

      // Repeated while the first link was open, nothing new; after the expiry, a second session.
      const renewed = await charge(request);
      const second = sessionIdOf(renewed.body.recovery_url);
      assert.notEqual(second, recovery);
      const keys = (await requests()).filter((r) => r.method === 'POST' && r.path === '/v1/checkout/sessions' && r.idempotency_key?.startsWith(`${pi}:recovery`)).map((r) => r.idempotency_key);
      assert.deepEqual([...new Set(keys)], [`${pi}:recovery`, `${pi}:recovery.2`]);
      const notified = sink.received.filter((n) => n.body?.kind === 'charge.recovery' && n.body.payload.payment_intent === pi);
      assert.deepEqual(notified.map((n) => n.body.payload.recovery_url), [declined.body.recovery_url, renewed.body.recovery_url]);
      const repeat = await charge(request);
      assert.equal(repeat.body.recovery_url, renewed.body.recovery_url, 'an open recovery is replayed');

      await standInPost(`/_test/checkout/sessions/${second}/complete`, { card: '4242424242424242' });
      const record = await chargeRecord(pi);
      assert.deepEqual([record.status, record.paid, record.recovery.checkout_session], ['recovered', true, second]);
    });
  });

  describe('Identity, events of the same second in both orders', () => {
    for (const order of [['processing', 'requires_input'], ['requires_input', 'processing']]) {
      test(`${order.join(' then ')}: the user ends requires_input with the code`, async () => {
        const user = `flows_${order[0]}_${Date.now()}`;
        const created = await adminPost(worker, '/identity/verification-sessions', ADMIN, { user_id: user, type: 'document' });
        assert.equal(created.status, 201, JSON.stringify(created.body));
        const session = (await objects()).find((o) => o.id === created.body.id);
        const at = Math.floor(Date.now() / 1000) + 5;
        const objectFor = (status) => ({
          ...session,
          status,
          last_error: status === 'requires_input' ? { code: 'document_expired', reason: 'The document is expired.' } : null,
        });
        for (const status of order) {
          const event = makeEvent(`identity.verification_session.${status}`, objectFor(status), { created: at });
          assert.equal((await deliver(worker, event, { secret: SECRET })).status, 200);
        }
        const record = (await adminGet(worker, `/identity/users/${user}`, ADMIN)).body;
        assert.equal(record.status, 'requires_input', JSON.stringify(record));
        assert.equal(record.last_error.code, 'document_expired');
        const notice = sink.received.find((n) => n.body?.recipient?.id === user && n.body.kind === 'identity.requires_input');
        assert.equal(notice.body.payload.user_action, 'use_another_document');
      });
    }
  });
});
