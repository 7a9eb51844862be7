// The stand-in's own tests: Stripe's shapes and statuses for the calls the worker makes,
// test-card outcomes, idempotency, faults, and webhook deliveries that the official SDK's
// constructEvent accepts.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, beforeEach, describe, test } from 'node:test';
import Stripe from 'stripe';
import { createStandIn, parseForm } from './server.mjs';

const KEY = 'sk_test_standin_tests_1a2b';
const WEBHOOK_SECRET = 'whsec_standin_tests_secret';
const sdk = new Stripe('sk_test_sdk_for_verification_only');

let standIn;
let base;
let receiver;
let received = [];

async function call(method, path, params = {}, { key = KEY, idempotencyKey, version = '2026-10-28.endive' } = {}) {
  const body = new URLSearchParams(Object.entries(params)).toString();
  const headers = { 'stripe-version': version };
  if (key) headers.authorization = `Bearer ${key}`;
  if (idempotencyKey) headers['idempotency-key'] = idempotencyKey;
  let url = `${base}${path}`;
  const init = { method, headers };
  if (method === 'POST') {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    init.body = body;
  } else if (body) {
    url += `?${body}`;
  }
  const res = await fetch(url, init);
  return { status: res.status, headers: res.headers, body: await res.json() };
}

async function testPost(path, json = {}) {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(json) });
  return { status: res.status, body: await res.json() };
}

const key = () => `k-${Math.random().toString(36).slice(2)}`;

async function customerWithCard(card) {
  const customer = (await call('POST', '/v1/customers', { email: 'c@example.com' }, { idempotencyKey: key() })).body;
  const session = (await call('POST', '/v1/checkout/sessions', { mode: 'setup', currency: 'usd', customer: customer.id, success_url: 'https://x.test/ok' }, { idempotencyKey: key() })).body;
  await testPost(`/_test/checkout/sessions/${session.id}/complete`, { card });
  const expanded = (await call('GET', `/v1/checkout/sessions/${session.id}`, { 'expand[]': 'setup_intent' })).body;
  return { customer, paymentMethod: expanded.setup_intent.payment_method };
}

before(async () => {
  receiver = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"received":true}');
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  standIn = createStandIn({ webhookUrl: `http://127.0.0.1:${receiver.address().port}/webhook`, webhookSecret: WEBHOOK_SECRET });
  base = await standIn.listen(0);
});
after(async () => {
  await standIn?.close();
  receiver?.closeAllConnections();
  await new Promise((r) => receiver?.close(r));
});
beforeEach(async () => {
  await fetch(`${base}/_test/reset`, { method: 'POST' });
  received = [];
});

describe('form parsing', () => {
  test('nested keys, indices and [] become objects and arrays', () => {
    assert.deepEqual(
      parseForm('metadata[user_id]=u1&line_items[0][price_data][currency]=usd&line_items[0][quantity]=1&expand[]=a&expand[]=b&off_session=true'),
      { metadata: { user_id: 'u1' }, line_items: [{ price_data: { currency: 'usd' }, quantity: '1' }], expand: ['a', 'b'], off_session: 'true' },
    );
    assert.deepEqual(parseForm('a%5Bb%5D=c+d%26e'), { a: { b: 'c d&e' } });
    assert.throws(() => parseForm('a[b=1'));
  });
});

describe('the API', () => {
  test('requests without a test secret key are 401', async () => {
    const res = await call('POST', '/v1/customers', {}, { key: null });
    assert.equal(res.status, 401);
    assert.equal(res.body.error.type, 'invalid_request_error');
    assert.equal((await call('GET', '/v1/customers/cus_1', {}, { key: 'sk_live_nope' })).status, 401);
  });

  test('customers are created and retrieved; unknown ids are 404 resource_missing', async () => {
    const created = await call('POST', '/v1/customers', { email: 'a@example.com', 'metadata[source]': 'test' }, { idempotencyKey: key() });
    assert.equal(created.status, 200);
    assert.match(created.body.id, /^cus_/);
    assert.match(created.headers.get('request-id'), /^req_/);
    assert.deepEqual(created.body.metadata, { source: 'test' });
    assert.equal((await call('GET', `/v1/customers/${created.body.id}`)).body.email, 'a@example.com');
    const unknown = await call('GET', '/v1/customers/cus_missing');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, 'resource_missing');
    assert.equal(unknown.body.error.param, 'id');
  });

  test('an unknown route is a 404 and a bad Stripe-Version a 400', async () => {
    assert.equal((await call('GET', '/v1/nothing_here')).status, 404);
    assert.equal((await call('GET', '/v1/customers/cus_1', {}, { version: 'latest' })).status, 400);
  });

  test('an idempotency key replays the same response for the same parameters', async () => {
    const k = key();
    const first = await call('POST', '/v1/customers', { email: 'same@example.com' }, { idempotencyKey: k });
    const second = await call('POST', '/v1/customers', { email: 'same@example.com' }, { idempotencyKey: k });
    assert.deepEqual(second.body, first.body);
    assert.equal(second.headers.get('idempotent-replayed'), 'true');
    assert.equal(first.headers.get('idempotent-replayed'), null);
    const other = await call('POST', '/v1/customers', { email: 'same@example.com' }, { idempotencyKey: key() });
    assert.notEqual(other.body.id, first.body.id);
    const customers = (await (await fetch(`${base}/_test/objects`)).json()).filter((o) => o.email === 'same@example.com');
    assert.equal(customers.length, 2);
  });

  test('the same key with other parameters is a 400 idempotency_error', async () => {
    const k = key();
    await call('POST', '/v1/customers', { email: 'one@example.com' }, { idempotencyKey: k });
    const res = await call('POST', '/v1/customers', { email: 'two@example.com' }, { idempotencyKey: k });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.type, 'idempotency_error');
  });

  test('a failed validation and a 5xx are not saved under their key; a result of the endpoint is', async () => {
    const k = key();
    const bad = await call('POST', '/v1/payment_intents', { amount: '-5', currency: 'usd' }, { idempotencyKey: k });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'parameter_invalid_integer');
    const again = await call('POST', '/v1/payment_intents', { amount: '-5', currency: 'usd' }, { idempotencyKey: k });
    assert.equal(again.status, 400);
    assert.equal(again.headers.get('idempotent-replayed'), null, 'nothing was saved, so it ran again');

    const k404 = key();
    const missing = await call('POST', '/v1/payment_methods/pm_missing/attach', { customer: 'cus_missing' }, { idempotencyKey: k404 });
    assert.equal(missing.status, 404);
    const replayed = await call('POST', '/v1/payment_methods/pm_missing/attach', { customer: 'cus_missing' }, { idempotencyKey: k404 });
    assert.equal(replayed.headers.get('idempotent-replayed'), 'true');

    const k2 = key();
    await testPost('/_test/faults', { kind: '500', path: '/v1/customers' });
    assert.equal((await call('POST', '/v1/customers', { email: 'r@example.com' }, { idempotencyKey: k2 })).status, 500);
    const retried = await call('POST', '/v1/customers', { email: 'r@example.com' }, { idempotencyKey: k2 });
    assert.equal(retried.status, 200);
    assert.equal(retried.headers.get('idempotent-replayed'), null);
  });

  test('setup mode: completing the session yields a SetupIntent with a card, expandable', async () => {
    const created = await call('POST', '/v1/checkout/sessions', { mode: 'setup', currency: 'usd', success_url: 'https://x.test/s?session_id={CHECKOUT_SESSION_ID}', cancel_url: 'https://x.test/c' }, { idempotencyKey: key() });
    assert.equal(created.status, 200);
    assert.match(created.body.id, /^cs_test_/);
    assert.equal(created.body.url, `${base}/c/pay/${created.body.id}`);
    assert.equal(created.body.status, 'open');

    const done = await testPost(`/_test/checkout/sessions/${created.body.id}/complete`, { card: '4242424242424242', email: 'buyer@example.com' });
    assert.equal(done.status, 200);
    const plain = (await call('GET', `/v1/checkout/sessions/${created.body.id}`)).body;
    assert.equal(plain.status, 'complete');
    assert.equal(plain.customer, null);
    assert.equal(plain.customer_details.email, 'buyer@example.com');
    assert.match(plain.setup_intent, /^seti_/);
    const expanded = (await call('GET', `/v1/checkout/sessions/${created.body.id}`, { 'expand[]': 'setup_intent' })).body;
    assert.equal(expanded.setup_intent.id, plain.setup_intent);
    assert.equal(expanded.setup_intent.status, 'succeeded');
    const pm = (await call('GET', `/v1/payment_methods/${expanded.setup_intent.payment_method}`)).body;
    assert.deepEqual([pm.card.brand, pm.card.last4, pm.customer], ['visa', '4242', null]);
  });

  test('attach binds a payment method to a customer once', async () => {
    const created = (await call('POST', '/v1/checkout/sessions', { mode: 'setup', currency: 'usd', success_url: 'https://x.test/s' }, { idempotencyKey: key() })).body;
    await testPost(`/_test/checkout/sessions/${created.id}/complete`, { card: '4000000000000341' });
    const si = (await call('GET', `/v1/checkout/sessions/${created.id}`, { 'expand[]': 'setup_intent' })).body.setup_intent;
    const a = (await call('POST', '/v1/customers', {}, { idempotencyKey: key() })).body;
    const b = (await call('POST', '/v1/customers', {}, { idempotencyKey: key() })).body;
    const attached = await call('POST', `/v1/payment_methods/${si.payment_method}/attach`, { customer: a.id }, { idempotencyKey: key() });
    assert.equal(attached.status, 200);
    assert.equal(attached.body.customer, a.id);
    const again = await call('POST', `/v1/payment_methods/${si.payment_method}/attach`, { customer: b.id }, { idempotencyKey: key() });
    assert.equal(again.status, 400);
    const nobody = await call('POST', `/v1/payment_methods/${si.payment_method}/attach`, { customer: 'cus_nobody' }, { idempotencyKey: key() });
    assert.equal(nobody.status, 404);
    assert.equal(nobody.body.error.param, 'customer');
  });

  test('off-session charges: test cards decide, declines are 402 with the PaymentIntent embedded', async () => {
    const cases = [
      ['4242424242424242', 200, null, null],
      ['4000000000000341', 402, 'card_declined', 'generic_decline'],
      ['4000002760003184', 402, 'authentication_required', 'authentication_required'],
    ];
    for (const [card, status, code, declineCode] of cases) {
      const { customer, paymentMethod } = await customerWithCard(card);
      const res = await call('POST', '/v1/payment_intents', {
        amount: '1099', currency: 'usd', customer: customer.id, payment_method: paymentMethod, off_session: 'true', confirm: 'true', description: 'Order', 'allowed_payment_method_types[0]': 'card',
      }, { idempotencyKey: key() });
      assert.equal(res.status, status, card);
      if (status === 200) {
        assert.equal(res.body.status, 'succeeded');
        assert.equal(res.body.amount_received, 1099);
      } else {
        const e = res.body.error;
        assert.deepEqual([e.type, e.code, e.decline_code], ['card_error', code, declineCode], card);
        assert.equal(e.payment_intent.status, 'requires_payment_method');
        assert.equal(e.payment_intent.amount, 1099);
        assert.equal(e.payment_intent.last_payment_error.code, code);
        const stored = (await call('GET', `/v1/payment_intents/${e.payment_intent.id}`)).body;
        assert.equal(stored.status, 'requires_payment_method');
      }
    }
  });

  test('bank debits off-session: processing, then settled either way; refused at once in another currency', async () => {
    const { customer } = await customerWithCard('4242424242424242');
    const ach = await testPost(`/_test/customers/${customer.id}/bank_accounts`, { type: 'us_bank_account' });
    const sepa = await testPost(`/_test/customers/${customer.id}/bank_accounts`, { type: 'sepa_debit' });
    assert.deepEqual([ach.body.type, ach.body.customer, sepa.body.type], ['us_bank_account', customer.id, 'sepa_debit']);
    const charge = (pm, currency) => call('POST', '/v1/payment_intents', {
      amount: '1500', currency, customer: customer.id, payment_method: pm, off_session: 'true', confirm: 'true',
      'automatic_payment_methods[enabled]': 'true', 'automatic_payment_methods[allow_redirects]': 'never',
    }, { idempotencyKey: key() });
    for (const outcome of ['succeeded', 'failed']) {
      const res = await charge(ach.body.id, 'usd');
      assert.deepEqual([res.status, res.body.status], [200, 'processing']);
      const settled = await testPost(`/_test/payment_intents/${res.body.id}/settle`, { outcome });
      assert.equal(settled.status, 200);
      const types = settled.body.events.map((e) => e.event.type);
      if (outcome === 'succeeded') {
        assert.deepEqual([settled.body.payment_intent.status, types], ['succeeded', ['payment_intent.succeeded']]);
      } else {
        assert.deepEqual([settled.body.payment_intent.status, types], ['requires_payment_method', ['payment_intent.payment_failed']]);
        assert.equal(settled.body.payment_intent.last_payment_error.code, 'payment_method_provider_decline');
      }
      assert.equal((await testPost(`/_test/payment_intents/${res.body.id}/settle`, { outcome })).status, 400, 'settles once');
    }
    const refused = await charge(sepa.body.id, 'usd');
    assert.equal(refused.status, 400);
    assert.deepEqual([refused.body.error.type, refused.body.error.code], ['invalid_request_error', 'payment_method_currency_mismatch']);
    assert.equal((await charge(sepa.body.id, 'eur')).body.status, 'processing');
  });

  test('forgetting idempotency keys (Stripe prunes them after 24 h): a reused key makes a new object', async () => {
    const k = key();
    const first = await call('POST', '/v1/customers', { email: 'f@example.com' }, { idempotencyKey: k });
    assert.equal((await call('POST', '/v1/customers', { email: 'f@example.com' }, { idempotencyKey: k })).body.id, first.body.id);
    const forgot = await testPost('/_test/idempotency/forget');
    assert.equal(forgot.status, 200);
    assert.ok(forgot.body.forgotten >= 1);
    assert.notEqual((await call('POST', '/v1/customers', { email: 'f@example.com' }, { idempotencyKey: k })).body.id, first.body.id);
  });

  test("a payment method of another customer is refused", async () => {
    const { paymentMethod } = await customerWithCard('4242424242424242');
    const other = (await call('POST', '/v1/customers', {}, { idempotencyKey: key() })).body;
    const res = await call('POST', '/v1/payment_intents', { amount: '500', currency: 'usd', customer: other.id, payment_method: paymentMethod, off_session: 'true', confirm: 'true', 'allowed_payment_method_types[0]': 'card' }, { idempotencyKey: key() });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.param, 'payment_method');
  });

  test('payment mode sessions need line items and sum them', async () => {
    const customer = (await call('POST', '/v1/customers', {}, { idempotencyKey: key() })).body;
    const missingItems = await call('POST', '/v1/checkout/sessions', { mode: 'payment', customer: customer.id, success_url: 'https://x.test' }, { idempotencyKey: key() });
    assert.equal(missingItems.status, 400);
    const res = await call('POST', '/v1/checkout/sessions', {
      mode: 'payment', customer: customer.id, success_url: 'https://x.test', 'line_items[0][quantity]': '2',
      'line_items[0][price_data][currency]': 'eur', 'line_items[0][price_data][unit_amount]': '1099', 'line_items[0][price_data][product_data][name]': 'Order',
    }, { idempotencyKey: key() });
    assert.equal(res.status, 200);
    assert.deepEqual([res.body.amount_total, res.body.currency, res.body.payment_status], [2198, 'eur', 'unpaid']);
    const paid = await testPost(`/_test/checkout/sessions/${res.body.id}/complete`, {});
    assert.equal(paid.body.session.payment_status, 'paid');
    assert.match(paid.body.session.payment_intent, /^pi_/);
  });

  test('Identity sessions are created with metadata and moved by the test route', async () => {
    const created = await call('POST', '/v1/identity/verification_sessions', { type: 'document', 'metadata[user_id]': 'user_7', return_url: 'https://x.test/back' }, { idempotencyKey: key() });
    assert.equal(created.status, 200);
    assert.match(created.body.id, /^vs_/);
    assert.match(created.body.client_secret, new RegExp(`^${created.body.id}_secret_`));
    assert.equal(created.body.metadata.user_id, 'user_7');
    const moved = await testPost(`/_test/identity/verification_sessions/${created.body.id}/requires_input`, { code: 'document_expired', reason: 'The document is expired.' });
    assert.equal(moved.body.session.status, 'requires_input');
    assert.deepEqual(moved.body.session.last_error, { code: 'document_expired', reason: 'The document is expired.' });
    const event = moved.body.events[0].event;
    assert.equal(event.type, 'identity.verification_session.requires_input');
    assert.equal(event.data.object.last_error.code, 'document_expired');
    const verified = await testPost(`/_test/identity/verification_sessions/${created.body.id}/verified`);
    assert.equal(verified.body.session.status, 'verified');
    assert.equal(verified.body.session.last_error, null);
  });
});

describe('webhook deliveries', () => {
  test('events are delivered signed so that the official SDK accepts them', async () => {
    const created = (await call('POST', '/v1/checkout/sessions', { mode: 'setup', currency: 'usd', success_url: 'https://x.test/s' }, { idempotencyKey: key() })).body;
    const done = await testPost(`/_test/checkout/sessions/${created.id}/complete`, {});
    const types = done.body.events.map((e) => e.event.type);
    assert.deepEqual(types, ['setup_intent.succeeded', 'checkout.session.completed']);
    assert.ok(done.body.events.every((e) => e.deliveries[0].status === 200));
    const completed = received.find((r) => JSON.parse(r.body).type === 'checkout.session.completed');
    const event = sdk.webhooks.constructEvent(completed.body, completed.headers['stripe-signature'], WEBHOOK_SECRET);
    assert.equal(event.data.object.id, created.id);
    assert.equal(event.data.object.status, 'complete');
    assert.throws(() => sdk.webhooks.constructEvent(completed.body, completed.headers['stripe-signature'], 'whsec_other'));
  });

  test('registering an endpoint returns its secret once and events go to it too', async () => {
    const res = await call('POST', '/v1/webhook_endpoints', {
      url: `http://127.0.0.1:${receiver.address().port}/second`, 'enabled_events[0]': 'identity.verification_session.verified', api_version: '2026-10-28.endive',
    }, { idempotencyKey: key() });
    assert.equal(res.status, 200);
    assert.match(res.body.secret, /^whsec_/);
    assert.deepEqual(res.body.enabled_events, ['identity.verification_session.verified']);
    const listed = await (await fetch(`${base}/_test/endpoints`)).json();
    assert.ok(listed.every((e) => e.secret === undefined));

    const vs = (await call('POST', '/v1/identity/verification_sessions', { type: 'document' }, { idempotencyKey: key() })).body;
    received = [];
    await testPost(`/_test/identity/verification_sessions/${vs.id}/verified`);
    const second = received.find((r) => JSON.parse(r.body).type === 'identity.verification_session.verified' && r.headers['stripe-signature'] && (() => {
      try {
        sdk.webhooks.constructEvent(r.body, r.headers['stripe-signature'], res.body.secret);
        return true;
      } catch {
        return false;
      }
    })());
    assert.ok(second, 'the new endpoint received the event signed with its own secret');
  });
});

describe('fault injection and the request record', () => {
  test('each fault kind happens once, then the API behaves again', async () => {
    for (const [kind, expectStatus] of [['500', 500], ['429', 429], ['400', 400]]) {
      await testPost('/_test/faults', { kind, path: '/v1/customers' });
      assert.equal((await call('POST', '/v1/customers', {}, { idempotencyKey: key() })).status, expectStatus, kind);
      assert.equal((await call('POST', '/v1/customers', {}, { idempotencyKey: key() })).status, 200, kind);
    }
    await testPost('/_test/faults', { kind: 'malformed', path: '/v1/customers' });
    const res = await fetch(`${base}/v1/customers`, { method: 'POST', headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(res.status, 200);
    await assert.rejects(res.json());

    await testPost('/_test/faults', { kind: 'reset', path: '/v1/customers' });
    await assert.rejects(fetch(`${base}/v1/customers`, { method: 'POST', headers: { authorization: `Bearer ${KEY}` } }));
  });

  test('a slow response is late but carried out, so a retry with its key replays it', async () => {
    await testPost('/_test/faults', { kind: 'slow', path: '/v1/customers', delay_ms: 300 });
    const k = key();
    const started = Date.now();
    const slow = await call('POST', '/v1/customers', { email: 'slow@example.com' }, { idempotencyKey: k });
    assert.ok(Date.now() - started >= 290);
    const retry = await call('POST', '/v1/customers', { email: 'slow@example.com' }, { idempotencyKey: k });
    assert.equal(retry.body.id, slow.body.id);
    assert.equal(retry.headers.get('idempotent-replayed'), 'true');
  });

  test('the same key while the first request is still in progress is a 409', async () => {
    await testPost('/_test/faults', { kind: 'slow', path: '/v1/customers', delay_ms: 300 });
    const k = key();
    const first = call('POST', '/v1/customers', { email: 'busy@example.com' }, { idempotencyKey: k });
    await new Promise((r) => setTimeout(r, 50));
    const second = await call('POST', '/v1/customers', { email: 'busy@example.com' }, { idempotencyKey: k });
    assert.equal(second.status, 409);
    assert.equal(second.body.error.code, 'idempotency_key_in_use');
    assert.equal((await first).status, 200);
    const third = await call('POST', '/v1/customers', { email: 'busy@example.com' }, { idempotencyKey: k });
    assert.equal(third.body.id, (await first).body.id);
  });

  test('a malformed query is a 400, not a stand-in failure', async () => {
    const res = await fetch(`${base}/v1/customers/cus_x?expand[=1`, { headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(res.status, 400);
  });

  test('every API request is recorded with its key, version and parameters', async () => {
    const k = key();
    await call('POST', '/v1/customers', { email: 'rec@example.com', 'metadata[a]': 'b' }, { idempotencyKey: k });
    const log = await (await fetch(`${base}/_test/requests`)).json();
    const entry = log.find((r) => r.idempotency_key === k);
    assert.deepEqual(
      [entry.method, entry.path, entry.status, entry.stripe_version, entry.authorized, entry.params],
      ['POST', '/v1/customers', 200, '2026-10-28.endive', true, { email: 'rec@example.com', metadata: { a: 'b' } }],
    );
    assert.ok(!JSON.stringify(log).includes(KEY), 'the API key is not kept in the record');
  });
});

describe('the Checkout pages a browser sees', () => {
  const page = async (path, init = {}) => {
    const res = await fetch(`${base}${path}`, { ...init, redirect: 'manual', headers: { accept: 'text/html', ...(init.headers ?? {}) } });
    return { status: res.status, type: res.headers.get('content-type'), html: await res.text(), location: res.headers.get('location') };
  };
  const form = (fields) => ({ method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() });

  test('amounts in the major unit, a viewport tag, and a paid session reopens as a completed page', async () => {
    const { formatAmount } = await import('./server.mjs');
    assert.equal(formatAmount(1099, 'usd'), '10.99 USD');
    assert.equal(formatAmount(1000, 'jpy'), '1,000 JPY');
    assert.equal(formatAmount(1500, 'kwd'), '1.500 KWD');
    const session = (await call('POST', '/v1/checkout/sessions', {
      mode: 'payment', success_url: 'https://x.test/ok?session_id={CHECKOUT_SESSION_ID}',
      'line_items[0][quantity]': '1', 'line_items[0][price_data][currency]': 'usd',
      'line_items[0][price_data][unit_amount]': '1099', 'line_items[0][price_data][product_data][name]': 'Order',
    }, { idempotencyKey: key() })).body;
    const open = await page(`/c/pay/${session.id}`);
    assert.equal(open.status, 200);
    assert.match(open.html, /name="viewport" content="width=device-width/);
    assert.match(open.html, /Amount: 10\.99 USD/);
    assert.match(open.html, />Pay</);
    // A declining card in payment mode: the page again with the decline, not JSON.
    const declined = await page(`/_test/checkout/sessions/${session.id}/complete`, form({ card: '4000000000000341' }));
    assert.equal(declined.status, 200);
    assert.match(declined.type, /text\/html/);
    assert.match(declined.html, /Your card was declined/);
    const paid = await page(`/_test/checkout/sessions/${session.id}/complete`, form({ card: '4242424242424242' }));
    assert.equal(paid.status, 303);
    for (const again of [await page(`/c/pay/${session.id}`), await page(`/_test/checkout/sessions/${session.id}/complete`, form({ card: '4242424242424242' }))]) {
      assert.equal(again.status, 200);
      assert.match(again.type, /text\/html/);
      assert.match(again.html, /Payment complete/);
      assert.match(again.html, /10\.99 USD/);
      assert.doesNotMatch(again.html, />Pay</);
      assert.ok(again.html.includes(`href="https://x.test/ok?session_id=${session.id}"`), again.html);
    }
    const missing = await page('/c/pay/cs_test_nothere');
    assert.equal(missing.status, 404);
    assert.match(missing.type, /text\/html/);
  });
});
