// POST /webhook, the admin read route and the error mapping, under real workerd.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { adminGet, deliver, makeEvent, startWorker, stripe } from './harness.mjs';

const SECRET = 'whsec_e2e_current_4f1c2b';
const OLD_SECRET = 'whsec_e2e_previous_93ad7e';
const ADMIN = 'e2e-admin-token-7c21';

describe('a configured worker', () => {
  let worker;
  before(async () => {
    worker = await startWorker({
      STRIPE_WEBHOOK_SECRET: `${SECRET},${OLD_SECRET}`,
      ADMIN_TOKEN: ADMIN,
      STRIPE_SECRET_KEY: 'sk_test_e2e_key_51b0',
    });
  });
  after(() => worker?.stop());

  test('GET /health answers ok', async () => {
    const res = await fetch(`${worker.url}/health`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'ok');
  });

  test('a signed event is accepted, recorded, and a redelivery changes nothing', async () => {
    const event = makeEvent('customer.updated', { id: 'cus_e2e1', object: 'customer' });
    const first = await deliver(worker, event, { secret: SECRET });
    assert.equal(first.status, 200);
    assert.deepEqual(first.body, { received: true, duplicate: false });

    const stored = await adminGet(worker, `/events/${event.id}`, ADMIN);
    assert.equal(stored.status, 200);
    assert.equal(stored.body.id, event.id);
    assert.equal(stored.body.type, event.type);
    assert.equal(stored.body.created, event.created);
    assert.equal(stored.body.outcome, 'ignored');

    const again = await deliver(worker, event, { secret: SECRET });
    assert.equal(again.status, 200);
    assert.deepEqual(again.body, { received: true, duplicate: true });
    const after = await adminGet(worker, `/events/${event.id}`, ADMIN);
    assert.deepEqual(after.body, stored.body);
  });

  test('an event signed with the previous secret is accepted while rolling', async () => {
    const event = makeEvent('customer.created', { id: 'cus_e2e' });
    const res = await deliver(worker, event, { secret: OLD_SECRET });
    assert.equal(res.status, 200);
    assert.equal((await adminGet(worker, `/events/${event.id}`, ADMIN)).status, 200);
  });

  const refusals = [
    ['a tampered body', (body) => ({ body: body.replace('vs_e2e2', 'vs_e2e3'), opts: { secret: SECRET, sign: body } }), 400, 'signature_mismatch'],
    ['a wrong secret', (body) => ({ body, opts: { secret: 'whsec_not_ours' } }), 400, 'signature_mismatch'],
    ['a stale timestamp', (body) => ({ body, opts: { secret: SECRET, timestamp: Math.floor(Date.now() / 1000) - 3600 } }), 400, 'signature_timestamp_outside_tolerance'],
    ['a future timestamp', (body) => ({ body, opts: { secret: SECRET, timestamp: Math.floor(Date.now() / 1000) + 3600 } }), 400, 'signature_timestamp_outside_tolerance'],
    ['no signature header', (body) => ({ body, opts: { header: null } }), 400, 'signature_header_missing'],
    ['a header without v1', (body) => ({ body, opts: { header: `t=${Math.floor(Date.now() / 1000)},v0=abc` } }), 400, 'signature_v1_missing'],
  ];
  for (const [name, build, status, code] of refusals) {
    test(`${name} is refused with ${status} ${code} and nothing is stored`, async () => {
      const event = makeEvent('identity.verification_session.verified', { id: 'vs_e2e2' });
      const raw = JSON.stringify(event);
      const { body, opts } = build(raw);
      const header =
        opts.header !== undefined
          ? opts.header
          : stripe.webhooks.generateTestHeaderString({ payload: opts.sign ?? body, secret: opts.secret, timestamp: opts.timestamp });
      const res = await deliver(worker, body, { header });
      assert.equal(res.status, status);
      assert.equal(res.body.error.code, code);
      assert.equal((await adminGet(worker, `/events/${event.id}`, ADMIN)).status, 404);
    });
  }

  test('a live-mode event at a test-key worker is refused with 400 livemode_mismatch and not stored', async () => {
    for (const type of ['identity.verification_session.verified', 'customer.updated']) {
      const event = { ...makeEvent(type, { id: 'vs_e2elive', object: 'identity.verification_session' }), livemode: true };
      const res = await deliver(worker, event, { secret: SECRET });
      assert.equal(res.status, 400, type);
      assert.equal(res.body.error.code, 'livemode_mismatch');
      assert.equal((await adminGet(worker, `/events/${event.id}`, ADMIN)).status, 404);
    }
  });

  test('a signed body that is not an event is a 400, not stored', async () => {
    const res = await deliver(worker, { hello: 'world' }, { secret: SECRET });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'event_malformed');
    const truncated = await deliver(worker, '{"id":"evt_trunc","type":', { secret: SECRET });
    assert.equal(truncated.status, 400);
    assert.equal(truncated.body.error.code, 'event_malformed');
    assert.equal((await adminGet(worker, '/events/evt_trunc', ADMIN)).status, 404);
  });

  test('a body over 1 MiB is refused with 413 before verification', async () => {
    const res = await deliver(worker, 'x'.repeat(1024 * 1024 + 1), { header: 't=1,v1=00' });
    assert.equal(res.status, 413);
    assert.equal(res.body.error.code, 'payload_too_large');
  });

  test('a chunked body over 1 MiB without Content-Length is refused with 413 too', async () => {
    const chunk = new TextEncoder().encode('x'.repeat(64 * 1024));
    let sent = 0;
    const body = new ReadableStream({
      pull(controller) {
        if (sent >= 17) return controller.close();
        sent += 1;
        controller.enqueue(chunk);
      },
    });
    const res = await fetch(`${worker.url}/webhook`, {
      method: 'POST',
      headers: { 'stripe-signature': 't=1,v1=00', 'content-type': 'application/json' },
      body,
      duplex: 'half',
    });
    assert.equal(res.status, 413);
    assert.equal((await res.json()).error.code, 'payload_too_large');
  });

  test('a signed body of exactly the cap is verified, then refused as not an event', async () => {
    const body = ' '.repeat(1024 * 1024 - 2) + '{}';
    const res = await deliver(worker, body, { secret: SECRET });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'event_malformed');
  });

  test('admin reads need the right bearer token', async () => {
    assert.equal((await adminGet(worker, '/events/evt_x')).status, 401);
    const wrong = await adminGet(worker, '/events/evt_x', 'not-the-token');
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get('www-authenticate'), 'Bearer');
    assert.equal((await adminGet(worker, '/events/evt_never_seen', ADMIN)).status, 404);
  });

  test('unknown routes are 404 and wrong methods 405 with Allow', async () => {
    assert.equal((await fetch(`${worker.url}/nope`)).status, 404);
    const res = await fetch(`${worker.url}/webhook`);
    assert.equal(res.status, 405);
    assert.equal(res.headers.get('allow'), 'POST');
  });

  test('no secret value appears in the logs', async () => {
    const logs = await worker.logged(/"path":"\/webhook"/);
    for (const secret of [SECRET, OLD_SECRET, ADMIN, 'sk_test_e2e_key_51b0']) {
      assert.ok(!logs.includes(secret), `the logs contain ${secret.slice(0, 8)}…`);
    }
  });
});

describe('a worker without secrets', () => {
  let worker;
  before(async () => {
    worker = await startWorker({ APP_BASE_URL: 'http://127.0.0.1:1' });
  });
  after(() => worker?.stop());

  test('the webhook answers 500 naming the missing setting, so Stripe keeps retrying', async () => {
    const res = await deliver(worker, makeEvent('customer.created', { id: 'cus_1' }), { secret: SECRET });
    assert.equal(res.status, 500);
    assert.equal(res.body.error.code, 'configuration_error');
    assert.match(res.body.error.message, /STRIPE_WEBHOOK_SECRET/);
  });

  test('admin routes do not exist without ADMIN_TOKEN', async () => {
    assert.equal((await adminGet(worker, '/events/evt_x', 'anything')).status, 404);
    assert.equal((await adminGet(worker, '/events/evt_x', '')).status, 404);
  });
});

describe('a worker started without LOCAL_DEV, as a deployed one is', () => {
  const WEAK = 'local-admin-token';
  const STRONG = 'k3Jq9vX2pL7mN4rT8wY1zB6cD0fG5hS2-e2e';
  let weak;
  let strong;
  before(async () => {
    const base = { LOCAL_DEV: 'false', STRIPE_WEBHOOK_SECRET: SECRET, STRIPE_SECRET_KEY: 'sk_test_e2e_nodev' };
    [weak, strong] = await Promise.all([startWorker({ ...base, ADMIN_TOKEN: WEAK }), startWorker({ ...base, ADMIN_TOKEN: STRONG })]);
  });
  after(() => Promise.all([weak?.stop(), strong?.stop()]));

  /** A request on loopback with the Host header a tunnel or a published port may carry. */
  const withHost = (worker, route, { method = 'GET', token, host, body } = {}) =>
    new Promise((resolve, reject) => {
      const url = new URL(route, worker.url);
      const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      if (host) headers.host = host;
      const req = http.request(url, { method, headers }, (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text || 'null') }));
      });
      req.on('error', reject);
      req.end(body);
    });

  test('the example admin token grants nothing, whatever the Host header says', async () => {
    for (const host of [undefined, 'localhost', 'localhost:8787', '127.0.0.1']) {
      const res = await withHost(weak, '/events/evt_x', { token: WEAK, host });
      assert.equal(res.status, 500, `Host: ${host}`);
      assert.equal(res.body.error.code, 'configuration_error');
      assert.match(res.body.error.message, /ADMIN_TOKEN/);
      assert.ok(!JSON.stringify(res.body).includes(WEAK));
    }
    // A strong token works as anywhere.
    assert.equal((await withHost(strong, '/events/evt_x', { token: STRONG, host: 'localhost' })).status, 404);
  });

  test('without APP_BASE_URL no return URL is made from the request, loopback or not', async () => {
    const res = await withHost(strong, '/setup-sessions', { method: 'POST', token: STRONG, host: 'localhost', body: JSON.stringify({ customer: 'cus_1' }) });
    assert.equal(res.status, 500);
    assert.equal(res.body.error.code, 'configuration_error');
    assert.match(res.body.error.message, /APP_BASE_URL/);
  });
});
