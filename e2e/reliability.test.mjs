// Duplicates, races and ordering under real workerd: the same event delivered 50 times at
// once, and every flow's events delivered in order, reversed and shuffled, must end in one
// consistent stored state.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { adminGet, deliver, makeEvent, startSink, startWorker, shuffled, NOTIFY_SECRET } from './harness.mjs';

const SECRET = 'whsec_e2e_reliability_7d1e';
const ADMIN = 'e2e-reliability-admin';

function vs(id, user, status, code, created) {
  return {
    id, object: 'identity.verification_session', type: 'document', status, created,
    last_error: code ? { code, reason: `reason: ${code}` } : null,
    metadata: { user_id: user, created_by: 'stripe-edge-webhooks' },
  };
}

/** The Identity events of one user's two sessions: the first fails, the second verifies. */
function identityStory(user, base) {
  const first = `vs_${user}_1`;
  const second = `vs_${user}_2`;
  return [
    makeEvent('identity.verification_session.created', vs(first, user, 'requires_input', null, base), { created: base }),
    makeEvent('identity.verification_session.processing', vs(first, user, 'processing', null, base), { created: base + 10 }),
    makeEvent('identity.verification_session.requires_input', vs(first, user, 'requires_input', 'document_expired', base), { created: base + 20 }),
    makeEvent('identity.verification_session.created', vs(second, user, 'requires_input', null, base + 30), { created: base + 30 }),
    makeEvent('identity.verification_session.processing', vs(second, user, 'processing', null, base + 30), { created: base + 40 }),
    makeEvent('identity.verification_session.verified', vs(second, user, 'verified', null, base + 30), { created: base + 50 }),
    makeEvent('identity.verification_session.redacted', vs(first, user, 'requires_input', null, base), { created: base + 60 }),
  ];
}

/** A user record with the user's own name taken out, for comparing users. */
function normalised(record, user) {
  return JSON.parse(JSON.stringify(record).replaceAll(user, 'USER'));
}

describe('duplicates, races and ordering under workerd', () => {
  let worker;
  let sink;
  before(async () => {
    sink = await startSink();
    worker = await startWorker({ STRIPE_WEBHOOK_SECRET: SECRET, ADMIN_TOKEN: ADMIN, STRIPE_SECRET_KEY: 'sk_test_e2e_reliability', NOTIFY_URL: sink.url, NOTIFY_SIGNING_SECRET: NOTIFY_SECRET });
  });
  after(async () => {
    await worker?.stop();
    await sink?.close();
  });

  test('50 concurrent deliveries of the same requires_input: all 2xx, one consistent record', async () => {
    const base = Math.floor(Date.now() / 1000) - 1000;
    const created = makeEvent('identity.verification_session.created', vs('vs_race_1', 'user_race', 'requires_input', null, base), { created: base });
    assert.equal((await deliver(worker, created, { secret: SECRET })).status, 200);
    const event = makeEvent('identity.verification_session.requires_input', vs('vs_race_1', 'user_race', 'requires_input', 'document_expired', base), { created: base + 5 });
    const results = await Promise.all(Array.from({ length: 50 }, () => deliver(worker, event, { secret: SECRET })));
    assert.deepEqual([...new Set(results.map((r) => r.status))], [200]);
    const user = (await adminGet(worker, '/identity/users/user_race', ADMIN)).body;
    assert.equal(user.status, 'requires_input');
    assert.equal(user.attempts, 1);
    assert.deepEqual(user.last_error, { code: 'document_expired', reason: 'reason: document_expired' });
    assert.equal((await adminGet(worker, `/events/${event.id}`, ADMIN)).body.outcome, 'handled');
    // Notifications are at least once: racing deliveries may each send one, all with the same
    // id and Idempotency-Key, so the receiver can drop repeats.
    const sent = sink.received.filter((n) => n.body.recipient?.id === 'user_race');
    assert.ok(sent.length >= 1);
    assert.deepEqual([...new Set(sent.map((n) => n.headers['idempotency-key']))], [`${event.id}.identity.requires_input`]);
  });

  test('Identity events in order, reversed and shuffled end in the same state', async () => {
    const base = Math.floor(Date.now() / 1000) - 5000;
    const orders = {
      user_in_order: (events) => events,
      user_reversed: (events) => [...events].reverse(),
      user_shuffled_a: (events) => shuffled(events, 7),
      user_shuffled_b: (events) => shuffled(events, 1234),
    };
    const states = {};
    for (const [user, order] of Object.entries(orders)) {
      for (const event of order(identityStory(user, base))) {
        const res = await deliver(worker, event, { secret: SECRET });
        assert.equal(res.status, 200, `${user} ${event.type}`);
      }
      const record = (await adminGet(worker, `/identity/users/${user}`, ADMIN)).body;
      states[user] = normalised(record, user);
    }
    assert.equal(states.user_in_order.status, 'verified');
    assert.equal(states.user_in_order.attempts, 2);
    for (const user of Object.keys(orders)) {
      assert.deepEqual(states[user], states.user_in_order, `${user} ends like in order`);
    }
  });
});
