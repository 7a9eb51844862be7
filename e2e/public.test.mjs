// The public routes as an attacker would use them, under real workerd: no card bound to
// someone else's customer, abuse limits from Cloudflare's Rate Limiting binding, no cross-site
// form posts, headers on every page, no customer id on the success page, and notifications a
// receiver can tell from forgeries.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { NOTIFY_SECRET, adminGet, adminPost, bindSetupSession, clientIp, createSetupSession, startStack } from './harness.mjs';
import { verifyNotification } from '../tools/verify-notification.mjs';

const SECRET = 'whsec_e2e_public_3b7d2c';
const ADMIN = 'e2e-public-admin-token-0123456789abcdef';
const STRIPE_KEY = 'sk_test_e2e_public_5a9e11';

describe('public routes an attacker cannot use', () => {
  let stack;
  let stripeBase;
  let worker;
  let sink;
  let victim;

  before(async () => {
    stack = await startStack({ STRIPE_SECRET_KEY: STRIPE_KEY, STRIPE_WEBHOOK_SECRET: SECRET, ADMIN_TOKEN: ADMIN });
    ({ stripeBase, sink, worker } = stack);
    const res = await fetch(`${stripeBase}/v1/customers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${STRIPE_KEY}`, 'content-type': 'application/x-www-form-urlencoded', 'idempotency-key': 'e2e-victim' },
      body: 'email=victim%40example.com',
    });
    victim = (await res.json()).id;
  });
  after(() => stack?.stop());

  const requests = async () => (await fetch(`${stripeBase}/_test/requests`)).json();
  const post = (fields, headers = {}) =>
    fetch(`${worker.url}/create-checkout-session`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'cf-connecting-ip': clientIp(), ...headers },
      body: new URLSearchParams(fields).toString(),
    });
  const complete = async (id, card = '4242424242424242') => {
    const res = await fetch(`${stripeBase}/_test/checkout/sessions/${id}/complete`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ card, email: 'buyer@example.com' }),
    });
    assert.equal(res.status, 200);
  };

  test("an anonymous customer=cus_… binds nothing, Stripe is never asked, and the page says nothing of the customer", async () => {
    const before = (await requests()).length;
    for (const customer of [victim, 'cus_doesnotexist']) {
      const res = await post({ customer });
      assert.equal(res.status, 400);
      const html = await res.text();
      assert.ok(!html.includes(customer) && !/No such customer/.test(html), html);
    }
    assert.equal((await requests()).length, before, 'no Stripe call for either');
  });

  test("the app's route binds a session to its customer, and its card becomes that customer's default", async () => {
    const id = await bindSetupSession(worker, ADMIN, victim, { success_path: '/success' });
    const created = (await requests()).find((r) => r.method === 'POST' && r.path === '/v1/checkout/sessions' && r.params.customer === victim);
    assert.equal(created.params.metadata.bound_by, 'app');
    await complete(id);
    const record = await adminGet(worker, `/customers/${victim}`, ADMIN);
    assert.equal(record.status, 200);
    assert.equal(record.body.checkout_session, id);
    assert.equal((await adminPost(worker, '/setup-sessions', 'wrong-token', { customer: victim })).status, 401);
  });

  test('a session naming a customer that the app did not bind saves no card for it', async () => {
    // Made directly at Stripe (as another integration, or an old session) with our marker.
    const res = await fetch(`${stripeBase}/v1/checkout/sessions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${STRIPE_KEY}`, 'content-type': 'application/x-www-form-urlencoded', 'idempotency-key': `unbound-${Date.now()}` },
      body: new URLSearchParams({ mode: 'setup', currency: 'usd', customer: victim, success_url: 'https://x.test', 'metadata[created_by]': 'stripe-edge-webhooks' }).toString(),
    });
    const { id } = await res.json();
    const before = (await adminGet(worker, `/customers/${victim}`, ADMIN)).body;
    await complete(id);
    assert.deepEqual((await adminGet(worker, `/customers/${victim}`, ADMIN)).body, before, 'the default card is unchanged');
  });

  test('a cross-site form post is refused before anything is done', async () => {
    const before = (await requests()).length;
    for (const headers of [{ 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' }, { origin: 'https://evil.example' }, { 'sec-fetch-site': 'same-site' }]) {
      const res = await post({}, headers);
      assert.equal(res.status, 403, JSON.stringify(headers));
    }
    assert.equal((await requests()).length, before);
    const same = await post({}, { 'sec-fetch-site': 'same-origin', origin: worker.url });
    assert.equal(same.status, 303);
  });

  test('a burst past the limit gets 429 from the binding; normal use does not', async () => {
    const ip = clientIp();
    const statuses = [];
    for (let i = 0; i < 14; i++) statuses.push((await post({}, { 'cf-connecting-ip': ip })).status);
    assert.deepEqual(statuses.slice(0, 10), Array(10).fill(303), 'the first ten of a minute are served');
    assert.ok(statuses.slice(10).every((s) => s === 429), statuses.join());
    assert.equal((await post({})).status, 303, 'another client is not affected');

    const page = (id, client) => fetch(`${worker.url}/success?session_id=${id}`, { headers: { 'cf-connecting-ip': client } });
    const reader = clientIp();
    const seen = [];
    for (let i = 0; i < 62; i++) seen.push((await page('cs_test_unknown1', reader)).status);
    assert.ok(seen.slice(0, 60).every((s) => s !== 429));
    assert.deepEqual(seen.slice(60), [429, 429]);
  });

  test('every HTML page carries the CSP, nosniff and no-referrer; the success page shows no customer id', async () => {
    const id = await createSetupSession(worker);
    await complete(id);
    const pages = [
      await fetch(`${worker.url}/`),
      await fetch(`${worker.url}/success?session_id=${id}`, { headers: { 'cf-connecting-ip': clientIp() } }),
      await fetch(`${worker.url}/success?session_id=nope`, { headers: { 'cf-connecting-ip': clientIp() } }),
      await post({ customer: victim }),
    ];
    for (const res of pages) {
      assert.match(res.headers.get('content-type'), /text\/html/);
      const csp = res.headers.get('content-security-policy');
      assert.match(csp, /default-src 'none'/);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.ok(csp.includes(`form-action 'self' ${stripeBase}`), csp);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
    }
    const html = await (await fetch(`${worker.url}/success?session_id=${id}`, { headers: { 'cf-connecting-ip': clientIp() } })).text();
    assert.match(html, /card ending in 4242/);
    assert.doesNotMatch(html, /cus_/);
  });

  test('notifications are signed; a receiver verifies every real one and refuses a forgery', async () => {
    const created = await adminPost(worker, '/identity/verification-sessions', ADMIN, { user_id: 'signed_user', type: 'document' });
    assert.equal(created.status, 201);
    await fetch(`${stripeBase}/_test/identity/verification_sessions/${created.body.id}/verified`, { method: 'POST' });
    const real = sink.received.filter((n) => n.body?.recipient?.id === 'signed_user');
    assert.equal(real.length, 1);
    assert.ok(sink.received.length > 0 && sink.received.every((n) => n.verified), 'every notification verifies');
    const { headers } = real[0];
    assert.match(headers['notify-signature'], /^t=\d+,v1=[0-9a-f]{64}$/);

    const forged = JSON.stringify({ id: 'x', kind: 'identity.verified', recipient: { type: 'user', id: 'victim' }, payload: {}, created_at: 1 });
    const t = Math.floor(Date.now() / 1000);
    const wrongKey = `t=${t},v1=${createHmac('sha256', 'nsec_guessed').update(`${t}.${forged}`).digest('hex')}`;
    for (const header of [undefined, wrongKey, headers['notify-signature']]) {
      assert.throws(() => verifyNotification(forged, header, NOTIFY_SECRET), header ?? 'no header');
    }
  });
});
