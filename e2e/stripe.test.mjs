// The worker's Stripe client under real workerd, talking to the local stand-in through
// STRIPE_API_BASE: the request it sends, and what it retries.

import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { createStandIn } from '../standin/server.mjs';
import { clientIp, startWorker } from './harness.mjs';

const STRIPE_KEY = 'sk_test_e2e_stripe_client_77aa';
const APP = 'https://shop.example.test';

describe('the Stripe client under workerd', () => {
  let standIn;
  let stripeBase;
  let worker;

  before(async () => {
    standIn = createStandIn();
    stripeBase = await standIn.listen(0);
    worker = await startWorker({
      STRIPE_API_BASE: stripeBase,
      STRIPE_SECRET_KEY: STRIPE_KEY,
      STRIPE_WEBHOOK_SECRET: 'whsec_e2e_stripe_client',
      APP_BASE_URL: APP,
      ADMIN_TOKEN: 'e2e-admin',
    });
  });
  after(async () => {
    await worker?.stop();
    await standIn?.close();
  });
  before(async () => {
    const res = await fetch(`${stripeBase}/v1/customers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${STRIPE_KEY}`, 'content-type': 'application/x-www-form-urlencoded', 'idempotency-key': 'e2e-known-customer' },
      body: 'email=known%40example.com',
    });
    knownCustomer = (await res.json()).id;
  });
  beforeEach(() => fetch(`${stripeBase}/_test/reset`, { method: 'POST' }));

  const requests = async () => (await fetch(`${stripeBase}/_test/requests`)).json();
  const fault = (json) =>
    fetch(`${stripeBase}/_test/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(json) });
  const createSession = (fields = {}) =>
    fetch(`${worker.url}/create-checkout-session`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'cf-connecting-ip': clientIp() },
      body: new URLSearchParams(fields).toString(),
    });
  // The app's route answers JSON with Stripe's error codes (the public form's pages never
  // quote Stripe), so the client's error mapping is checked through it.
  let knownCustomer;
  const bindSession = (customer = knownCustomer) =>
    fetch(`${worker.url}/setup-sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer e2e-admin' },
      body: JSON.stringify({ customer }),
    });

  test('GET / serves the Save a card form', async () => {
    const res = await fetch(`${worker.url}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /text\/html/);
    assert.match(await res.text(), /<form method="post" action="\/create-checkout-session">/);
  });

  test('a setup session is created with the pinned version, a key, and form parameters, then 303', async () => {
    const res = await createSession();
    assert.equal(res.status, 303);
    const location = res.headers.get('location');
    assert.match(location, new RegExp(`^${stripeBase}/c/pay/cs_test_`));

    const [call] = await requests();
    assert.equal(call.method, 'POST');
    assert.equal(call.path, '/v1/checkout/sessions');
    assert.equal(call.status, 200);
    assert.equal(call.authorized, true);
    assert.equal(call.stripe_version, '2026-10-28.endive');
    assert.equal(call.content_type, 'application/x-www-form-urlencoded');
    assert.match(call.idempotency_key, /^[0-9a-f]{32}$/);
    assert.deepEqual(call.params, {
      mode: 'setup',
      currency: 'usd',
      allowed_payment_method_types: ['card'],
      success_url: `${APP}/success?session_id={CHECKOUT_SESSION_ID}`,
      cancel_url: `${APP}/`,
      metadata: { created_by: 'stripe-edge-webhooks' },
    });
    const second = await createSession();
    assert.equal(second.status, 303);
    const [, again] = await requests();
    assert.notEqual(again.idempotency_key, call.idempotency_key, 'each browser request is its own write');
  });

  test('a 500 then success is retried once with the same Idempotency-Key', async () => {
    await fault({ kind: '500', path: '/v1/checkout/sessions' });
    const res = await createSession({ currency: 'eur' });
    assert.equal(res.status, 303);
    const calls = await requests();
    assert.deepEqual(calls.map((c) => c.status), [500, 200]);
    assert.equal(calls[1].idempotency_key, calls[0].idempotency_key);
    assert.deepEqual(calls[1].params, calls[0].params);
    assert.equal(calls[1].params.currency, 'eur');
  });

  test('a 429 is retried too', async () => {
    await fault({ kind: '429', path: '/v1/checkout/sessions' });
    assert.equal((await createSession()).status, 303);
    assert.deepEqual((await requests()).map((c) => c.status), [429, 200]);
  });

  test('a 500 with Stripe-Should-Retry: false is not retried, and is final for the caller too', async () => {
    await fault({ kind: '500', path: '/v1/checkout/sessions', should_retry: false });
    const res = await bindSession();
    assert.equal(res.status, 502);
    assert.equal((await res.json()).error.code, 'stripe_failed');
    assert.equal((await requests()).length, 1);
  });

  test('a 400 is not retried, and the caller is told what Stripe refused', async () => {
    await fault({ kind: '400', path: '/v1/checkout/sessions' });
    const res = await bindSession();
    assert.equal(res.status, 400);
    const body = await res.json();
    assert.equal(body.error.code, 'stripe_invalid_request');
    assert.equal(body.error.message, 'Injected 400.');
    assert.equal((await requests()).length, 1);
  });

  test('an unknown customer (through the app\'s route) is a 400 from Stripe (404 resource_missing), not retried', async () => {
    const res = await bindSession('cus_doesnotexist');
    assert.equal(res.status, 400);
    assert.match((await res.json()).error.message, /No such customer/);
    assert.equal((await requests()).length, 1);
  });

  test('invalid form input is refused before Stripe is called, with a page', async () => {
    for (const fields of [{ customer: 'pm_123' }, { customer: 'cus_doesnotexist' }, { currency: 'dollars' }]) {
      const res = await createSession(fields);
      assert.equal(res.status, 400);
      assert.match(res.headers.get('content-type'), /text\/html/);
      assert.doesNotMatch(await res.text(), /No such customer/);
    }
    assert.equal((await requests()).length, 0);
  });

  test('a body that is not a URL-encoded form, or is over 16 KiB, is refused before Stripe is called', async () => {
    const post = (body, contentType) =>
      fetch(`${worker.url}/create-checkout-session`, { method: 'POST', redirect: 'manual', headers: { 'cf-connecting-ip': clientIp(), ...(contentType ? { 'content-type': contentType } : {}) }, body });
    const json = await post('{"currency":"eur"}', 'application/json');
    assert.equal(json.status, 400);
    assert.match(await json.text(), /Invalid request/);
    const multipart = new FormData();
    multipart.set('currency', 'eur');
    assert.equal((await post(multipart)).status, 400);
    const huge = await post(`currency=usd&pad=${'x'.repeat(17 * 1024)}`, 'application/x-www-form-urlencoded');
    assert.equal(huge.status, 413);
    assert.match(huge.headers.get('content-type'), /text\/html/);
    assert.equal((await requests()).length, 0);
  });

  test('a malformed success body is a 502 and is not retried', async () => {
    await fault({ kind: 'malformed', path: '/v1/checkout/sessions' });
    const res = await bindSession();
    assert.equal(res.status, 502);
    assert.equal((await res.json()).error.code, 'stripe_bad_response');
    assert.equal((await requests()).length, 1);
  });

  test('a dropped connection is retried with the same key', async () => {
    await fault({ kind: 'reset', path: '/v1/checkout/sessions' });
    assert.equal((await createSession()).status, 303);
    const calls = await requests();
    assert.equal(calls.length, 2);
    assert.equal(calls[0].idempotency_key, calls[1].idempotency_key);
  });

  test('the secret key never reaches the logs', async () => {
    const logs = await worker.logged(/"path":"\/create-checkout-session"/);
    assert.ok(!logs.includes(STRIPE_KEY));
  });
});
