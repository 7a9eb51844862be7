// The stand-in's outage of webhook deliveries, the late deliveries after it, `GET /v1/events`
// with `delivery_success`, and the counts of what executed requests created.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { createStandIn } from './server.mjs';

const KEY = 'sk_test_standin_outage_4d1c';
let standIn;
let base;
let receiver;
const received = [];

before(async () => {
  standIn = createStandIn();
  base = await standIn.listen(0);
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push(JSON.parse(body).id);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  const res = await testPost('/_test/endpoints', { url: `http://127.0.0.1:${receiver.address().port}/webhook`, secret: 'whsec_outage_test' });
  assert.equal(res.status, 200);
});
after(async () => {
  await standIn.close();
  await new Promise((r) => receiver.close(r));
});

async function call(method, path, params = {}, idempotencyKey = `k-${Math.random().toString(36).slice(2)}`) {
  const body = new URLSearchParams(Object.entries(params)).toString();
  const headers = { authorization: `Bearer ${KEY}`, 'stripe-version': '2026-10-28.endive' };
  if (method === 'POST') {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    headers['idempotency-key'] = idempotencyKey;
  }
  const res = await fetch(method === 'POST' || !body ? `${base}${path}` : `${base}${path}?${body}`, { method, headers, body: method === 'POST' ? body : undefined });
  return { status: res.status, body: await res.json() };
}
async function testPost(path, json = {}) {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(json) });
  return { status: res.status, body: await res.json() };
}
const undelivered = async () => (await call('GET', '/v1/events', { delivery_success: 'false' })).body.data.map((e) => e.id);

test('an outage holds deliveries back; the events are listed as not delivered until delivered late', async () => {
  const before = (await call('POST', '/v1/identity/verification_sessions', { type: 'document' })).body;
  await fetch(`${base}/_test/deliveries`); // the created event, delivered
  assert.deepEqual(await undelivered(), []);

  assert.deepEqual((await testPost('/_test/outage', { on: true })).body, { outage: true });
  const moved = await testPost(`/_test/identity/verification_sessions/${before.id}/verified`);
  const [{ event, deliveries }] = moved.body.events;
  assert.deepEqual(deliveries.map((d) => [d.status, d.error]), [[null, 'outage']]);
  assert.ok(!received.includes(event.id), 'nothing reached the endpoint');
  assert.deepEqual(await undelivered(), [event.id]);
  const delivered = (await call('GET', '/v1/events', { delivery_success: 'true' })).body.data.map((e) => e.id);
  assert.ok(!delivered.includes(event.id));
  // Still listed and retrievable as Stripe keeps it.
  assert.equal((await call('GET', `/v1/events/${event.id}`)).body.id, event.id);
  // While the outage lasts, a late delivery fails too.
  assert.deepEqual((await testPost('/_test/redeliver-failed')).body.deliveries.map((d) => d.error), ['outage']);

  assert.deepEqual((await testPost('/_test/outage', { on: false })).body, { outage: false });
  const late = await testPost('/_test/redeliver-failed');
  assert.deepEqual(late.body.redelivered, [event.id]);
  assert.deepEqual(late.body.deliveries.map((d) => [d.status, d.attempt]), [[200, 2]]);
  assert.ok(received.includes(event.id));
  assert.deepEqual(await undelivered(), []);
  assert.deepEqual((await testPost('/_test/redeliver-failed')).body.redelivered, []);
});

test('counts are of executed requests: an idempotent replay creates nothing more', async () => {
  await fetch(`${base}/_test/reset`, { method: 'POST' });
  await call('POST', '/v1/customers', { email: 'a@example.com' }, 'same-key');
  await call('POST', '/v1/customers', { email: 'a@example.com' }, 'same-key');
  await call('POST', '/v1/customers', { email: 'b@example.com' });
  await call('POST', '/v1/checkout/sessions', { mode: 'setup', currency: 'usd', success_url: 'https://x.test/ok' }, 'cs-key');
  await call('POST', '/v1/checkout/sessions', { mode: 'setup', currency: 'usd', success_url: 'https://x.test/ok' }, 'cs-key');
  const counts = await (await fetch(`${base}/_test/counts`)).json();
  assert.deepEqual(counts, { customers: 2, attaches: 0, payment_intents: 0, checkout_sessions: 1 });
  const violations = await (await fetch(`${base}/_test/violations`)).json();
  assert.equal(violations.count, 0);
});
