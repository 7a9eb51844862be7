// Hostile input under real workerd: signed bodies that are not what Stripe sends, and the
// admin routes against missing, wrong and almost-right tokens. The generated-input suite
// (110,000 cases) runs natively in tests/hostile_input.rs; these check the runtime path.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { adminGet, deliver, makeEvent, startWorker } from './harness.mjs';

const SECRET = 'whsec_e2e_hostile_51ad';
const ADMIN = 'e2e-hostile-admin-token-0f3e';

const ADMIN_ROUTES = [
  ['GET', '/events/evt_x'],
  ['GET', '/identity/users/u_1'],
  ['POST', '/identity/verification-sessions'],
  ['GET', '/customers/cus_1'],
  ['GET', '/charges/pi_1'],
  ['POST', '/charges'],
];

async function call(worker, method, path, token) {
  const headers = { 'content-type': 'application/json' };
  if (token !== undefined) headers.authorization = token;
  const res = await fetch(`${worker.url}${path}`, { method, headers, body: method === 'POST' ? '{}' : undefined });
  return { status: res.status, text: await res.text() };
}

/** Signs the exact bytes (the SDK signs strings, which would re-encode non-UTF-8 bytes). */
async function postSigned(worker, bytes) {
  const t = Math.floor(Date.now() / 1000);
  const v1 = createHmac('sha256', SECRET).update(`${t}.`).update(bytes).digest('hex');
  const res = await fetch(`${worker.url}/webhook`, { method: 'POST', headers: { 'stripe-signature': `t=${t},v1=${v1}`, 'content-type': 'application/json' }, body: bytes });
  return { status: res.status, body: await res.json().catch(() => null) };
}

describe('hostile input under workerd', () => {
  let worker;
  before(async () => {
    worker = await startWorker({ STRIPE_WEBHOOK_SECRET: SECRET, ADMIN_TOKEN: ADMIN, STRIPE_SECRET_KEY: 'sk_test_e2e_hostile' });
  });
  after(() => worker?.stop());

  test('signed bodies that are not Stripe events are 400 and nothing is stored', async () => {
    const cases = [
      ['not UTF-8', new Uint8Array([0x7b, 0xff, 0xfe, 0x22, 0x69, 0x64, 0x7d])],
      ['truncated JSON', new TextEncoder().encode('{"id":"evt_t1","object":"event","type":"customer.created","created":1,')],
      ['a JSON array', new TextEncoder().encode('[1,2,3]')],
      ['JSON null', new TextEncoder().encode('null')],
      ['an object that is not an event', new TextEncoder().encode('{"id":"evt_t2","hello":"world"}')],
      ['an event whose data.object is a string', new TextEncoder().encode(JSON.stringify({ ...makeEvent('customer.created', {}), data: { object: 'x' } }))],
      ['deeply nested arrays (200,000 levels)', new TextEncoder().encode('['.repeat(200_000) + ']'.repeat(200_000))],
      ['an event id that is not an event id', new TextEncoder().encode(JSON.stringify(makeEvent('customer.created', { id: 'cus_1' }, { id: 'evt_../../x' })))],
    ];
    for (const [name, bytes] of cases) {
      const res = await postSigned(worker, bytes);
      assert.equal(res.status, 400, name);
      assert.match(res.body.error.code, /^event_/, name);
    }
    const listed = await adminGet(worker, '/events/evt_t1', ADMIN);
    assert.equal(listed.status, 404);
  });

  test('a handled event type with an object of the wrong shape is 400, an unhandled one 200 ignored', async () => {
    const wrongShape = makeEvent('identity.verification_session.requires_input', { id: 'vs_1', status: { nested: true } });
    const res = await deliver(worker, wrongShape, { secret: SECRET });
    assert.equal(res.status, 400);
    assert.equal((await adminGet(worker, `/events/${wrongShape.id}`, ADMIN)).status, 404);

    const unhandled = makeEvent('invoice.paid', { id: 7, weird: [null, { deep: ['x'] }] });
    const ok = await deliver(worker, unhandled, { secret: SECRET });
    assert.equal(ok.status, 200);
    assert.equal((await adminGet(worker, `/events/${unhandled.id}`, ADMIN)).body.outcome, 'ignored');
  });

  test('an unhandled event nested 400,000 levels deep inside data.object is kept raw: 200 ignored, no crash', async () => {
    const event = makeEvent('customer.created', { id: 'cus_deep', object: 'customer', nested: null });
    const body = JSON.stringify(event).replace('"nested":null', `"nested":${'['.repeat(400_000)}${']'.repeat(400_000)}`);
    const res = await deliver(worker, body, { secret: SECRET });
    assert.equal(res.status, 200);
    assert.equal((await adminGet(worker, `/events/${event.id}`, ADMIN)).body.outcome, 'ignored');
    const handled = body.replace('customer.created', 'identity.verification_session.verified').replace(event.id, `${event.id}h`);
    const refused = await deliver(worker, handled, { secret: SECRET });
    assert.equal(refused.status, 400, 'a handled type decodes its object, and refuses this one');
    assert.equal((await fetch(`${worker.url}/health`)).status, 200, 'the worker is still up');
  });

  test('a large but valid event (900 KB) of an unhandled type is accepted', async () => {
    const event = makeEvent('customer.updated', { id: 'cus_big', object: 'customer', description: 'x'.repeat(900_000) });
    const res = await deliver(worker, event, { secret: SECRET });
    assert.equal(res.status, 200);
  });

  test('every admin route refuses missing, wrong and almost-right tokens', async () => {
    const almost = [
      undefined,
      '',
      'Bearer',
      'Bearer ',
      `Basic ${ADMIN}`,
      ADMIN,
      `Bearer ${ADMIN.slice(0, -1)}`,
      `Bearer ${ADMIN}x`,
      `Bearer ${ADMIN.slice(0, -1)}${ADMIN.endsWith('e') ? 'f' : 'e'}`,
      `Bearer ${ADMIN.toUpperCase()}`,
      `Bearer ${'x'.repeat(4096)}`,
    ];
    for (const [method, path] of ADMIN_ROUTES) {
      for (const token of almost) {
        const res = await call(worker, method, path, token);
        assert.equal(res.status, 401, `${method} ${path} with ${JSON.stringify(token?.slice(0, 20))}`);
        assert.ok(!res.text.includes(ADMIN), 'the token is never echoed');
      }
    }
  });
});

describe('admin routes without ADMIN_TOKEN', () => {
  let worker;
  before(async () => {
    worker = await startWorker({ STRIPE_WEBHOOK_SECRET: SECRET, STRIPE_SECRET_KEY: 'sk_test_e2e_hostile' });
  });
  after(() => worker?.stop());

  test('none is reachable, with any token', async () => {
    for (const [method, path] of ADMIN_ROUTES) {
      for (const token of [undefined, 'Bearer ', `Bearer ${ADMIN}`]) {
        assert.equal((await call(worker, method, path, token)).status, 404, `${method} ${path}`);
      }
    }
  });
});
