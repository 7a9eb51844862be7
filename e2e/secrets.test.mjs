// No secret leaves the worker: every flow is run with recognisable secret values, and no log
// line of wrangler dev / workerd, no response body or header, no notification, and no output of
// the tools may contain any of them.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { makeEvent, startStack, stripe } from './harness.mjs';
import { runTool } from './tools.mjs';

const STRIPE_KEY = 'sk_test_CANARYstripekey7f3a9c';
const CURRENT = 'whsec_CANARYcurrent5d2e8b';
const PREVIOUS = 'whsec_CANARYprevious1c4f6a';
const ADMIN = 'CANARY-admin-token-8e2d41';
const SECRETS = [STRIPE_KEY, CURRENT, PREVIOUS, ADMIN];

describe('secrets never leave the worker', () => {
  let stack;
  let stripeBase;
  let sink;
  let worker;
  const seen = []; // every response: status, headers and body text

  before(async () => {
    stack = await startStack({
      STRIPE_SECRET_KEY: STRIPE_KEY,
      STRIPE_WEBHOOK_SECRET: `${CURRENT},${PREVIOUS}`,
      ADMIN_TOKEN: ADMIN,
    });
    ({ stripeBase, sink, worker } = stack);
  });
  after(() => stack?.stop());

  async function call(path, { method = 'GET', json, form, headers = {}, admin = true } = {}) {
    const h = { ...headers };
    if (admin) h.authorization = `Bearer ${ADMIN}`;
    let body;
    if (json !== undefined) {
      h['content-type'] = 'application/json';
      body = JSON.stringify(json);
    }
    if (form !== undefined) {
      h['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(form).toString();
    }
    const res = await fetch(`${worker.url}${path}`, { method, headers: h, body, redirect: 'manual' });
    const text = await res.text();
    seen.push({ path, status: res.status, headers: [...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n'), text });
    return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
  }
  const standInPost = async (path, body) =>
    (await fetch(`${stripeBase}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json();

  test('every flow runs with the canary secrets', async () => {
    // Identity: create, fail, retry, verify, refuse.
    const vs = (await call('/identity/verification-sessions', { method: 'POST', json: { user_id: 'canary_user' } })).json();
    await standInPost(`/_test/identity/verification_sessions/${vs.id}/requires_input`, { code: 'document_expired' });
    const vs2 = (await call('/identity/verification-sessions', { method: 'POST', json: { user_id: 'canary_user' } })).json();
    await standInPost(`/_test/identity/verification_sessions/${vs2.id}/verified`, {});
    assert.equal((await call('/identity/verification-sessions', { method: 'POST', json: { user_id: 'canary_user' } })).status, 409);
    assert.equal((await call('/identity/users/canary_user')).json().status, 'verified');

    // Save a card: setup session, completion delivered by the stand-in, then the success page.
    const created = await call('/create-checkout-session', { method: 'POST', form: {}, admin: false });
    assert.equal(created.status, 303);
    const [, csId] = created.headers.get('location').match(/\/c\/pay\/(cs_\w+)$/);
    await standInPost(`/_test/checkout/sessions/${csId}/complete`, { card: '4242424242424242', email: 'canary@example.com' });
    assert.equal((await call(`/success?session_id=${csId}`, { admin: false })).status, 200);
    const customer = (await (await fetch(`${stripeBase}/_test/objects`)).json()).find((o) => o.object === 'customer' && o.metadata?.checkout_session === csId).id;
    assert.equal((await call(`/customers/${customer}`)).status, 200);

    // Charge it, then a declining card with its recovery session paid.
    const ok = await call('/charges', { method: 'POST', json: { customer, amount: 500, currency: 'usd', description: 'Canary order', idempotency_key: 'canary-order' } });
    assert.equal(ok.status, 200);
    const declineSession = (await call('/create-checkout-session', { method: 'POST', form: {}, admin: false })).headers.get('location').match(/\/c\/pay\/(cs_\w+)$/)[1];
    await standInPost(`/_test/checkout/sessions/${declineSession}/complete`, { card: '4000000000000341', email: 'decline@example.com' });
    assert.equal((await call(`/success?session_id=${declineSession}`, { admin: false })).status, 200);
    const decliner = (await (await fetch(`${stripeBase}/_test/objects`)).json()).find((o) => o.object === 'customer' && o.metadata?.checkout_session === declineSession).id;
    const declined = await call('/charges', { method: 'POST', json: { customer: decliner, amount: 700, currency: 'usd', description: 'Canary decline', idempotency_key: 'canary-decline' } });
    assert.equal(declined.status, 402);
    const recovery = declined.json().recovery_url.match(/\/c\/pay\/(cs_\w+)$/)[1];
    await standInPost(`/_test/checkout/sessions/${recovery}/complete`, { card: '4242424242424242' });
    assert.equal((await call(`/charges/${declined.json().payment_intent}`)).json().paid, true);

    // Every event type through the trigger command, the secret given in the environment.
    const { handledEventTypes } = await import('./tools.mjs');
    for (const type of handledEventTypes()) {
      const run = await runTool('trigger.mjs', [type, '--url', `${worker.url}/webhook`], { STRIPE_WEBHOOK_SECRET: `${CURRENT},${PREVIOUS}` });
      for (const secret of SECRETS) {
        assert.ok(!run.stdout.includes(secret) && !run.stderr.includes(secret), `trigger ${type} printed a secret`);
      }
    }

    // Refusals and errors, which echo the most: signatures made with the secrets but wrong,
    // wrong admin tokens that contain the real one, missing bodies, unknown routes.
    const event = JSON.stringify(makeEvent('customer.created', { id: 'cus_canary' }));
    const tampered = stripe.webhooks.generateTestHeaderString({ payload: `${event} `, secret: CURRENT });
    for (const header of [tampered, `t=1,v1=${CURRENT}`, CURRENT, `${ADMIN},v1=00`]) {
      const res = await call('/webhook', { method: 'POST', admin: false, headers: { 'stripe-signature': header, 'content-type': 'application/json' } });
      assert.equal(res.status, 400);
    }
    for (const token of [`${ADMIN}x`, `Bearer ${ADMIN}x`, STRIPE_KEY]) {
      assert.equal((await call('/events?limit=5', { admin: false, headers: { authorization: token } })).status, 401);
    }
    assert.equal((await call('/charges', { method: 'POST', json: { customer: STRIPE_KEY, amount: 1 } })).status, 400);
    assert.equal((await call('/identity/verification-sessions', { method: 'POST', json: { user_id: `${CURRENT}:x` } })).status, 400);
    assert.equal((await call('/events?limit=100')).status, 200);
  });

  test('no secret in any response, notification, or log line', async () => {
    assert.ok(seen.length >= 20, `${seen.length} responses checked`);
    for (const { path, headers, text } of seen) {
      for (const secret of SECRETS) {
        // A 400 for an input that was itself a secret may name the field, never echo the value.
        assert.ok(!text.includes(secret), `response to ${path} contains ${secret.slice(0, 12)}…`);
        assert.ok(!headers.includes(secret), `headers of ${path} contain ${secret.slice(0, 12)}…`);
      }
    }
    const notifications = JSON.stringify(sink.received.map((n) => [n.headers, n.body]));
    assert.ok(sink.received.length >= 3, 'notifications were sent');
    const logs = await worker.logged(/"path":"\/charges"/);
    for (const secret of SECRETS) {
      assert.ok(!notifications.includes(secret), `a notification contains ${secret.slice(0, 12)}…`);
      const line = logs.split("\n").find((l) => l.includes(secret));
      assert.ok(!line, `the logs contain ${secret.slice(0, 12)}…: ${line}`);
    }
    const deliveries = JSON.stringify(await (await fetch(`${stripeBase}/_test/deliveries`)).json());
    for (const secret of SECRETS) assert.ok(!deliveries.includes(secret), 'a webhook answer contains a secret');
  });
});
