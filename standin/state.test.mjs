// The stand-in with a state file (scripts/dev.sh keeps it beside wrangler's local state): what
// it created, its idempotency keys and its events outlive a restart, and no API key is written.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { createStandIn } from './server.mjs';

const KEY = 'sk_test_state_file_never_written_7f3e';

async function call(base, method, route, params = {}, idempotencyKey) {
  const headers = { authorization: `Bearer ${KEY}`, 'stripe-version': '2026-10-28.endive', connection: 'close' };
  if (idempotencyKey) headers['idempotency-key'] = idempotencyKey;
  const body = new URLSearchParams(params).toString();
  const init = { method, headers };
  if (method === 'POST') Object.assign(headers, { 'content-type': 'application/x-www-form-urlencoded' }) && (init.body = body);
  const res = await fetch(`${base}${route}${method === 'GET' && body ? `?${body}` : ''}`, init);
  return { status: res.status, replayed: res.headers.get('idempotent-replayed'), body: await res.json() };
}

test('objects, idempotency keys and events outlive a restart on the same state file; without one nothing does', async () => {
  const stateFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'standin-state-')), 'state', 'standin.json');
  let standIn = createStandIn({ stateFile });
  let base = await standIn.listen(0);
  const port = Number(new URL(base).port);
  const customer = await call(base, 'POST', '/v1/customers', { email: 'kept@example.com' }, 'order-kept');
  assert.equal(customer.status, 200);
  const session = await call(base, 'POST', '/v1/checkout/sessions', { mode: 'setup', currency: 'usd', customer: customer.body.id, success_url: 'https://x.test/ok' }, 'session-kept');
  const completed = await fetch(`${base}/_test/checkout/sessions/${session.body.id}/complete`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"card":"4242424242424242"}' });
  assert.equal(completed.status, 200);
  await standIn.close();

  assert.ok(!readFileSync(stateFile, 'utf8').includes(KEY), 'the API key is written to the state file');

  standIn = createStandIn({ stateFile });
  base = await standIn.listen(port);
  try {
    assert.equal((await call(base, 'GET', `/v1/customers/${customer.body.id}`)).status, 200);
    const again = await call(base, 'POST', '/v1/customers', { email: 'kept@example.com' }, 'order-kept');
    assert.equal(again.replayed, 'true');
    assert.equal(again.body.id, customer.body.id);
    const other = await call(base, 'POST', '/v1/customers', { email: 'other@example.com' }, 'order-kept');
    assert.equal(other.status, 400);
    assert.equal(other.body.error.type, 'idempotency_error');
    const expanded = await call(base, 'GET', `/v1/checkout/sessions/${session.body.id}`, { 'expand[]': 'setup_intent' });
    assert.equal(expanded.body.status, 'complete');
    const events = await call(base, 'GET', '/v1/events', { type: 'checkout.session.completed' });
    assert.ok(events.body.data.some((e) => e.data.object.id === session.body.id), 'the event is listed after the restart');
  } finally {
    await standIn.close();
  }

  const inMemory = createStandIn();
  const memoryBase = await inMemory.listen(0);
  try {
    assert.equal((await call(memoryBase, 'GET', `/v1/customers/${customer.body.id}`)).status, 404);
  } finally {
    await inMemory.close();
  }
});
