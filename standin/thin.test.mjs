// The stand-in's thin events (API v2), checked with the official SDK: an event destination
// made with POST /v2/core/event_destinations gets the thin event of each v1 change it wants,
// signed with its own secret, which stripe-node's parseEventNotificationAsync accepts; the
// event is readable at GET /v2/core/events/{id} and listed by GET /v2/core/events (RFC 3339
// `created` filters, `next_page_url`); what the SDK's v2 types refuse is refused.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import Stripe from 'stripe';
import { createStandIn } from './server.mjs';

const KEY = 'sk_test_thin_standin';
const sdk = new Stripe(KEY);
let standIn;
let base;
let sink;
const received = [];

before(async () => {
  sink = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push({ header: req.headers['stripe-signature'], body });
      res.end('{}');
    });
  });
  await new Promise((r) => sink.listen(0, '127.0.0.1', r));
  standIn = createStandIn();
  base = await standIn.listen(0);
});
after(async () => {
  await standIn.close();
  sink.close();
});

const api = async (method, path, body, headers = {}) => {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${KEY}`, 'content-type': body === undefined || typeof body === 'string' ? 'application/x-www-form-urlencoded' : 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
};

test('a thin destination gets the thin event of a v1 change, signed with its secret, naming its snapshot twin', async () => {
  const made = await api('POST', '/v2/core/event_destinations', {
    name: 'thin', type: 'webhook_endpoint', event_payload: 'thin', include: ['webhook_endpoint.signing_secret'],
    enabled_events: ['v1.identity.verification_session.created'], webhook_endpoint: { url: `http://127.0.0.1:${sink.address().port}/webhook` },
  });
  assert.equal(made.status, 200, JSON.stringify(made.body));
  assert.equal(made.body.object, 'v2.core.event_destination');
  const secret = made.body.webhook_endpoint.signing_secret;
  assert.match(secret, /^whsec_/);

  const vs = await api('POST', '/v1/identity/verification_sessions', 'type=document&metadata[user_id]=u1', { 'idempotency-key': 'thin-1' });
  assert.equal(vs.status, 200);
  await fetch(`${base}/_test/deliveries`);
  assert.equal(received.length, 1, 'one thin event, nothing else');
  const notification = await sdk.parseEventNotificationAsync(received[0].body, received[0].header, secret);
  assert.equal(notification.type, 'v1.identity.verification_session.created');
  assert.deepEqual(notification.related_object, { id: vs.body.id, type: 'identity.verification_session', url: `/v1/identity/verification_sessions/${vs.body.id}` });
  assert.match(notification.created, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  const snapshot = await api('GET', `/v1/events/${notification.snapshot_event}`);
  assert.equal(snapshot.body.type, 'identity.verification_session.created');
  assert.equal(snapshot.body.data.object.id, vs.body.id);

  const fetched = await api('GET', `/v2/core/events/${notification.id}`);
  assert.equal(fetched.status, 200);
  assert.equal(fetched.body.data, undefined, 'a v1 type carries no object');
  assert.equal(fetched.body.snapshot_event, notification.snapshot_event);
});

test('GET /v2/core/events filters by type, object and RFC 3339 created, and pages by next_page_url', async () => {
  for (const n of [2, 3]) {
    await api('POST', '/v1/identity/verification_sessions', `type=document&metadata[user_id]=u${n}`, { 'idempotency-key': `thin-${n}` });
  }
  await fetch(`${base}/_test/deliveries`);
  const since = new Date(Date.now() - 60_000).toISOString();
  const first = await api('GET', `/v2/core/events?types[0]=v1.identity.verification_session.created&created[gte]=${since}&limit=2`);
  assert.equal(first.status, 200, JSON.stringify(first.body));
  assert.equal(first.body.data.length, 2);
  assert.ok(first.body.next_page_url.startsWith('/v2/core/events?page='));
  const second = await api('GET', first.body.next_page_url);
  assert.equal(second.body.data.length, 1);
  assert.equal(second.body.next_page_url, null);
  const ids = [...first.body.data, ...second.body.data].map((e) => e.id);
  assert.equal(new Set(ids).size, 3);
  const one = await api('GET', `/v2/core/events?object_id=${first.body.data[0].related_object.id}`);
  assert.deepEqual(one.body.data.map((e) => e.id), [first.body.data[0].id]);
  const future = await api('GET', `/v2/core/events?created[gt]=${new Date(Date.now() + 60_000).toISOString()}`);
  assert.deepEqual(future.body.data, []);
});

test('what the SDK v2 types and Stripe docs refuse is refused', async () => {
  const expected = { 'standin-expected-violation': 'v2 parameters' };
  const unixTime = await api('GET', '/v2/core/events?created[gte]=1700000000', undefined, expected);
  assert.equal(unixTime.status, 400);
  assert.equal(unixTime.body.error.param, 'created[gte]');
  const noName = await api('POST', '/v2/core/event_destinations', { type: 'webhook_endpoint', event_payload: 'thin', enabled_events: ['v1.x'] }, expected);
  assert.equal(noName.status, 400);
  assert.equal(noName.body.error.param, 'name');
  const unknown = await api('POST', '/v2/core/event_destinations', { name: 'n', type: 'webhook_endpoint', event_payload: 'thin', enabled_events: ['v1.x'], webhook_endpoint: { url: 'http://127.0.0.1:1/' }, api_version: 'x' }, expected);
  assert.equal(unknown.body.error.code, 'parameter_unknown');
  const snapshotTypes = await api('POST', '/v2/core/event_destinations', { name: 'n', type: 'webhook_endpoint', event_payload: 'thin', enabled_events: ['checkout.session.completed'], webhook_endpoint: { url: 'http://127.0.0.1:1/' } });
  assert.equal(snapshotTypes.status, 400);
  const missingEvent = await api('GET', '/v2/core/events/evt_nope');
  assert.equal(missingEvent.status, 404);
  const unexpected = standIn.violations().filter((v) => !v.expected);
  assert.deepEqual(unexpected, [], 'the stand-in sent nothing its v2 types refuse');
});
