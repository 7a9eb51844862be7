// A charge is made once, and no failed payment goes unnoticed: POST /charges answered from our
// own records. The worker under real workerd against the strict stand-in, which delivers its
// events. Each test is one of the ways a careful caller could charge twice or fail silently:
// a repeat after Stripe forgot its key, one key sent for two customers, a request without a
// key, a bank debit that is `processing` and fails days later, and a saved method Stripe
// refuses for the charge's currency.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { adminGet, adminPost, createSetupSession, startStack } from './harness.mjs';

const SECRET = 'whsec_e2e_once_4b7d21';
const ADMIN = 'e2e-once-admin-8c3e';
const STRIPE_KEY = 'sk_test_e2e_once_5d2a71';

describe('a charge is made once', () => {
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
  const counts = async () => (await fetch(`${stripeBase}/_test/counts`)).json();
  const standInPost = async (path, body = {}) => {
    const res = await fetch(`${stripeBase}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: await res.json().catch(() => null) };
  };
  const charge = (body) => adminPost(worker, '/charges', ADMIN, { currency: 'usd', ...body });
  const chargeRecord = async (pi) => (await adminGet(worker, `/charges/${pi}`, ADMIN)).body;
  const recoveryNotes = (pi) => sink.received.filter((n) => n.body?.kind === 'charge.recovery' && n.body.payload.payment_intent === pi);
  const recoverySessions = async (pi) => (await objects()).filter((o) => o.object === 'checkout.session' && o.metadata?.payment_intent === pi);
  let next = 0;
  const key = (name) => `once-${name}-${Date.now()}-${next++}`;

  /** A customer with a saved `card`, through Checkout (the stand-in delivers the events). */
  async function customerWith(card) {
    const id = await createSetupSession(worker);
    const done = await standInPost(`/_test/checkout/sessions/${id}/complete`, { card, email: 'once@example.com' });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    return (await objects()).find((o) => o.object === 'customer' && o.metadata?.checkout_session === id).id;
  }

  test('a repeat after Stripe forgot the key (24 h) makes no second PaymentIntent', async () => {
    const paid = await customerWith('4242424242424242');
    const declined = await customerWith('4000000000000341');
    const requestPaid = { customer: paid, amount: 1200, idempotency_key: key('paid') };
    const requestDeclined = { customer: declined, amount: 1300, idempotency_key: key('declined') };
    const first = [await charge(requestPaid), await charge(requestDeclined)];
    assert.deepEqual(first.map((r) => r.status), [200, 402]);
    const before = await counts();
    // Stripe prunes keys at least 24 h old and makes a new object for a pruned key.
    assert.equal((await standInPost('/_test/idempotency/forget')).status, 200);
    const repeats = [await charge(requestPaid), await charge(requestDeclined)];
    assert.deepEqual(repeats.map((r) => r.status), [200, 402]);
    assert.deepEqual(repeats.map((r) => r.body), first.map((r) => r.body), 'the same answers');
    const now = await counts();
    assert.equal(now.payment_intents, before.payment_intents, 'no PaymentIntent made');
    assert.equal(now.checkout_sessions, before.checkout_sessions, 'no recovery session made');
    assert.equal(recoveryNotes(first[1].body.payment_intent).length, 1, 'notified once');
  });

  test("the same key for another customer is 409, and the first customer's records and notifications are untouched", async () => {
    const a = await customerWith('4000000000000341');
    const b = await customerWith('4242424242424242');
    const shared = key('shared');
    const declined = await charge({ customer: a, amount: 2500, idempotency_key: shared });
    assert.equal(declined.status, 402);
    const pi = declined.body.payment_intent;
    const recovery = declined.body.recovery_url.match(/\/c\/pay\/(cs_\w+)$/)[1];
    // A's recovery expires: a repeat of A's request would renew it.
    assert.equal((await standInPost(`/_test/checkout/sessions/${recovery}/expire`)).status, 200);
    const recordBefore = await chargeRecord(pi);
    const notesBefore = sink.received.length;
    const stripeBefore = (await requests()).length;
    for (const [body, field] of [
      [{ customer: b, amount: 999, idempotency_key: shared }, 'customer'],
      [{ customer: a, amount: 999, idempotency_key: shared }, 'amount'],
      [{ customer: a, amount: 2500, currency: 'eur', idempotency_key: shared }, 'currency'],
    ]) {
      const res = await charge(body);
      assert.equal(res.status, 409, JSON.stringify(res.body));
      assert.deepEqual([res.body.error.code, res.body.error.field], ['idempotency_key_reused', field]);
      assert.match(res.body.error.message, /new key/);
    }
    assert.equal((await requests()).length, stripeBefore, 'no Stripe call');
    assert.deepEqual(await chargeRecord(pi), recordBefore, "A's charge untouched");
    assert.equal(sink.received.length, notesBefore, 'nobody notified');
    assert.equal((await objects()).filter((o) => o.object === 'payment_intent' && o.customer === b).length, 0);
  });

  test('no key: 400 missing_idempotency_key, before any Stripe call', async () => {
    const customer = await customerWith('4242424242424242');
    const stripeBefore = (await requests()).length;
    const res = await charge({ customer, amount: 500 });
    assert.equal(res.status, 400);
    assert.deepEqual([res.body.error.code, res.body.error.field], ['missing_idempotency_key', 'idempotency_key']);
    assert.equal((await requests()).length, stripeBefore);
  });

  test('a bank debit is 202 processing, not paid; its failure days later makes one recovery session and one notification', async () => {
    const customer = await customerWith('4242424242424242');
    const bank = await standInPost(`/_test/customers/${customer}/bank_accounts`, { type: 'us_bank_account' });
    assert.equal(bank.status, 200, JSON.stringify(bank.body));
    const request = { customer, amount: 4000, payment_method: bank.body.id, description: 'Bank order', idempotency_key: key('bank') };
    const res = await charge(request);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.deepEqual([res.body.status, res.body.paid], ['processing', false]);
    assert.match(res.body.message, /GET \/charges\//);
    const pi = res.body.payment_intent;
    assert.equal((await chargeRecord(pi)).status, 'processing');
    assert.deepEqual(recoveryNotes(pi), []);

    // The bank refuses (payment_intent.payment_failed, delivered by the stand-in).
    const settled = await standInPost(`/_test/payment_intents/${pi}/settle`, { outcome: 'failed' });
    assert.equal(settled.status, 200, JSON.stringify(settled.body));
    const record = await chargeRecord(pi);
    assert.deepEqual([record.status, record.paid, record.recovery?.status], ['requires_payment_method', false, 'open']);
    assert.equal(record.last_error.code, 'payment_method_provider_decline');
    assert.equal((await recoverySessions(pi)).length, 1);
    assert.equal(recoveryNotes(pi).length, 1);
    assert.equal(recoveryNotes(pi)[0].body.payload.recovery_url, record.recovery.url);

    // The failure delivered again (Stripe's retry, or catch-up): nothing new.
    const failedEvent = settled.body.events.map((e) => e.event).find((e) => e.type === 'payment_intent.payment_failed');
    assert.equal((await standInPost(`/_test/events/${failedEvent.id}/redeliver`)).status, 200);
    assert.equal((await recoverySessions(pi)).length, 1);
    assert.equal(recoveryNotes(pi).length, 1);
    // The caller's repeat learns the failure and the link, without a second charge.
    const repeat = await charge(request);
    assert.equal(repeat.status, 402);
    assert.deepEqual([repeat.body.paid, repeat.body.recovery_url], [false, record.recovery.url]);
    assert.equal((await objects()).filter((o) => o.object === 'payment_intent' && o.description === 'Bank order').length, 1);
  });

  test('a bank debit that succeeds later: 202, then the record and a repeat say paid', async () => {
    const customer = await customerWith('4242424242424242');
    const bank = await standInPost(`/_test/customers/${customer}/bank_accounts`, { type: 'us_bank_account' });
    const request = { customer, amount: 4100, payment_method: bank.body.id, idempotency_key: key('bank-ok') };
    const res = await charge(request);
    assert.equal(res.status, 202);
    const pi = res.body.payment_intent;
    assert.equal((await standInPost(`/_test/payment_intents/${pi}/settle`, { outcome: 'succeeded' })).status, 200);
    const record = await chargeRecord(pi);
    assert.deepEqual([record.status, record.paid], ['succeeded', true]);
    const repeat = await charge(request);
    assert.deepEqual([repeat.status, repeat.body.paid, repeat.body.status], [200, true, 'succeeded']);
  });

  test('a saved method Stripe refuses for the currency ends in a recovery session and a notification, not a bare 400', async () => {
    const customer = await customerWith('4242424242424242');
    const sepa = await standInPost(`/_test/customers/${customer}/bank_accounts`, { type: 'sepa_debit' });
    assert.equal(sepa.status, 200, JSON.stringify(sepa.body));
    const request = { customer, amount: 1900, currency: 'usd', payment_method: sepa.body.id, description: 'SEPA in dollars', idempotency_key: key('sepa') };
    const res = await charge(request);
    assert.equal(res.status, 402, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'payment_method_currency_mismatch');
    assert.match(res.body.recovery_url, /\/c\/pay\/cs_/);
    const pi = res.body.payment_intent;
    assert.equal(recoveryNotes(pi).length, 1);
    const [session] = await recoverySessions(pi);
    assert.deepEqual([session.amount_total, session.currency], [1900, 'usd']);
    // The customer pays with a card through the link: the charge is recovered.
    assert.equal((await standInPost(`/_test/checkout/sessions/${session.id}/complete`, { card: '4242424242424242' })).status, 200);
    assert.deepEqual([(await chargeRecord(pi)).status, (await chargeRecord(pi)).paid], ['recovered', true]);
    const repeat = await charge(request);
    assert.deepEqual([repeat.status, repeat.body.paid], [200, true]);
  });
});
