// The Identity flow under real workerd: sessions created through the worker at the local
// Stripe stand-in, the stand-in's events delivered to /webhook signed with the official SDK,
// user records read back through the admin route, notifications caught by a loopback sink.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { adminGet, adminPost, deliver, makeEvent, moveIdentitySession, startStack } from './harness.mjs';

const SECRET = 'whsec_e2e_identity';
const ADMIN = 'e2e-identity-admin';

describe('Identity verification under workerd', () => {
  let stack;
  let stripeBase;
  let sink;
  let worker;

  before(async () => {
    stack = await startStack({
      STRIPE_SECRET_KEY: 'sk_test_e2e_identity',
      STRIPE_WEBHOOK_SECRET: SECRET,
      ADMIN_TOKEN: ADMIN,
      IDENTITY_MAX_ATTEMPTS: '3',
    });
    ({ stripeBase, sink, worker } = stack);
  });
  after(() => stack?.stop());

  const create = (body) => adminPost(worker, '/identity/verification-sessions', ADMIN, body);
  const user = async (id) => (await adminGet(worker, `/identity/users/${id}`, ADMIN)).body;
  /** Moves a session at the stand-in; returns the event(s) and their deliveries to the worker. */
  const move = async (id, status, body = {}) => {
    const events = await moveIdentitySession(stripeBase, id, status, body);
    for (const { deliveries } of events) {
      for (const d of deliveries) assert.equal(d.status, 200, `delivery of ${d.type}: ${d.body}`);
    }
    return events.map((e) => e.event);
  };
  const createdDelivered = async () => {
    // The created event is delivered in the background; wait for it before the next step.
    const res = await fetch(`${stripeBase}/_test/deliveries`);
    const all = await res.json();
    // (A delivery failed on purpose by an outage is retried by its own test.)
    for (const d of all.filter((d) => d.error !== 'outage')) assert.equal(d.status, 200, `${d.type}: ${d.body}`);
  };

  test('create → requires_input (document_expired) → retry → verified → a fourth attempt is refused', async () => {
    const first = await create({ user_id: 'user_e2e_1', type: 'document', return_url: 'https://app.example.test/back' });
    assert.equal(first.status, 201, JSON.stringify(first.body));
    assert.match(first.body.id, /^vs_/);
    assert.match(first.body.url, /\/_test\/identity\/vs_/);
    assert.match(first.body.client_secret, /^vs_\w+_secret_/);
    assert.equal(first.body.attempts, 1);
    await createdDelivered();

    const requests = await (await fetch(`${stripeBase}/_test/requests`)).json();
    const call = requests.find((r) => r.path === '/v1/identity/verification_sessions');
    // This deployment's marker (DEPLOYMENT_ID, wrangler.toml) on the session it creates.
    assert.deepEqual(call.params, { type: 'document', metadata: { user_id: 'user_e2e_1', created_by: 'stripe-edge-webhooks' }, return_url: 'https://app.example.test/back' });
    assert.equal(call.idempotency_key, 'identity.user_e2e_1:1');

    await move(first.body.id, 'requires_input', { code: 'document_expired', reason: 'The document is expired.' });
    let state = await user('user_e2e_1');
    assert.equal(state.status, 'requires_input');
    assert.deepEqual(state.last_error, { code: 'document_expired', reason: 'The document is expired.' });
    assert.equal(state.may_retry, true);
    assert.equal(state.attempts, 1);
    assert.equal(state.remaining_attempts, 2);

    assert.equal(state.retry_with, 'reopen_session');
    // The retry re-opens the failed session (Stripe lets a requires_input session be submitted
    // again): the same session, retrieved, no new one; it counts when the user submits it.
    const beforeRetry = (await (await fetch(`${stripeBase}/_test/requests`)).json()).length;
    const second = await create({ user_id: 'user_e2e_1' });
    assert.equal(second.status, 201);
    assert.deepEqual([second.body.id, second.body.reopened, second.body.attempts, second.body.remaining_attempts], [first.body.id, true, 1, 2]);
    assert.match(second.body.url, /\/_test\/identity\/vs_/);
    const retryCalls = (await (await fetch(`${stripeBase}/_test/requests`)).json()).slice(beforeRetry);
    assert.deepEqual(retryCalls.map((r) => [r.method, r.path]), [['GET', `/v1/identity/verification_sessions/${first.body.id}`]]);
    // The user submits again, two seconds later: events are ordered by their second, and the
    // late failure below (created a second before the verification) must fall on another
    // second than the first failure whatever the machine's speed (checks of one session are
    // told apart by their second).
    await new Promise((r) => setTimeout(r, 2100));
    await move(second.body.id, 'processing');
    assert.equal((await user('user_e2e_1')).attempts, 2, 'the re-submission counts when the user submits');
    const [verifiedEvent] = await move(second.body.id, 'verified');
    state = await user('user_e2e_1');
    assert.equal(state.status, 'verified');
    assert.equal(state.verified_at, verifiedEvent.created);
    assert.equal(state.latest_session, first.body.id);
    assert.equal(state.last_error, undefined);

    const refused = await create({ user_id: 'user_e2e_1' });
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error.code, 'already_verified');

    // A requires_input for the verified session, older than the verified event, with a new
    // event id (so dedupe does not hide it), signed by the official SDK.
    const stale = makeEvent(
      'identity.verification_session.requires_input',
      { id: second.body.id, object: 'identity.verification_session', status: 'requires_input', created: verifiedEvent.created - 5, last_error: { code: 'selfie_face_mismatch', reason: 'x' }, metadata: { user_id: 'user_e2e_1' } },
      { created: verifiedEvent.created - 1 },
    );
    const res = await deliver(worker, stale, { secret: SECRET });
    assert.equal(res.status, 200);
    state = await user('user_e2e_1');
    assert.equal(state.status, 'verified');
    // The late failure is a check Stripe made of a submission: it still counts.
    assert.equal(state.attempts, 3);
    assert.deepEqual(state.sessions, [first.body.id]);

    const mine = sink.received.filter((n) => n.body.recipient?.id === 'user_e2e_1');
    assert.deepEqual(mine.map((n) => n.body.kind), ['identity.requires_input', 'identity.verified']);
    const [failed, verified] = mine.map((n) => n.body);
    assert.deepEqual(
      { status: failed.payload.status, code: failed.payload.code, reason: failed.payload.reason, may_retry: failed.payload.may_retry, next: failed.payload.next, retry_with: failed.payload.retry_with },
      { status: 'requires_input', code: 'document_expired', reason: 'The document is expired.', may_retry: true, next: 'retry', retry_with: 'reopen_session' },
    );
    assert.equal(verified.payload.status, 'verified');
    assert.equal(verified.payload.may_retry, false);
    assert.equal(typeof verified.payload.created_at, 'number');
    assert.equal(mine[0].headers['content-type'], 'application/json');
    assert.equal(mine[0].headers['idempotency-key'], failed.id);
  });

  test('three failed attempts use up the limit; the fourth is refused with 409', async () => {
    for (let n = 1; n <= 3; n++) {
      // A new session each time (not a re-opened one).
      const created = await create({ user_id: 'user_e2e_2', new_session: true });
      assert.equal(created.body.reopened, false);
      assert.equal(created.status, 201);
      await createdDelivered();
      await move(created.body.id, 'requires_input', { code: 'document_unverified_other' });
    }
    const state = await user('user_e2e_2');
    assert.equal(state.attempts, 3);
    assert.equal(state.may_retry, false);
    const refused = await create({ user_id: 'user_e2e_2' });
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error.code, 'attempts_exhausted');
    const last = sink.received.filter((n) => n.body.recipient?.id === 'user_e2e_2').at(-1).body;
    assert.equal(last.payload.may_retry, false);
    assert.equal(last.payload.remaining_attempts, 0);
  });

  test('final codes and consent_declined refuse another session', async () => {
    for (const [code, refusal] of [['under_supported_age', 'not_retryable'], ['consent_declined', 'manual_review_required']]) {
      const userId = `user_e2e_${code}`;
      const created = await create({ user_id: userId });
      await createdDelivered();
      await move(created.body.id, 'requires_input', { code });
      const refused = await create({ user_id: userId });
      assert.equal(refused.status, 409, code);
      assert.equal(refused.body.error.code, refusal);
    }
  });

  test('a session another integration made for our user leaves the user untouched, recorded ignored with the reason', async () => {
    const victim = 'user_e2e_victim';
    const mine = await create({ user_id: victim });
    assert.equal(mine.status, 201);
    await createdDelivered();
    await move(mine.body.id, 'requires_input', { code: 'document_expired' });
    const before = await user(victim);
    const notified = sink.received.length;
    // Another integration on the same account (its own key), and a second deployment of this
    // service (staging on the same test account): each names our user in its metadata.
    for (const marker of [undefined, 'stripe-edge-webhooks-staging']) {
      const metadata = { 'metadata[user_id]': victim, ...(marker ? { 'metadata[created_by]': marker } : {}) };
      const res = await fetch(`${stripeBase}/v1/identity/verification_sessions`, {
        method: 'POST',
        headers: { authorization: 'Bearer sk_test_another_integration', 'idempotency-key': `other-${marker}-${Date.now()}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ type: 'document', ...metadata }).toString(),
      });
      assert.equal(res.status, 200);
      const foreign = await res.json();
      await createdDelivered();
      const [verified] = await move(foreign.id, 'verified');
      const record = await adminGet(worker, `/events/${verified.id}`, ADMIN);
      assert.equal(record.body.outcome, 'ignored');
      assert.equal(record.body.reason, 'not_created_by_this_deployment');
    }
    assert.deepEqual(await user(victim), before);
    assert.equal((await user(victim)).status, 'requires_input');
    assert.equal(sink.received.length, notified, 'no notification for the victim');
    await worker.logged(/was not created by this deployment; ignored/);
  });

  test('a redaction (metadata erased) runs in the user\'s queue, and the reason it removed never comes back', async () => {
    const post = (route, body = {}) => fetch(`${stripeBase}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const who = 'user_e2e_redacted';
    const first = await create({ user_id: who });
    await createdDelivered();
    // The check fails while the endpoint is unreachable: its event waits for Stripe's retry.
    await post('/_test/outage', { on: true });
    const failed = await (await post(`/_test/identity/verification_sessions/${first.body.id}/requires_input`, { code: 'document_expired', reason: 'The document is expired.' })).json();
    await post('/_test/outage', { on: false });
    const [late] = failed.events.map((e) => e.event);
    // Stripe erases metadata when it redacts: the event names no user, only the session.
    const [redacted] = await move(first.body.id, 'redacted');
    assert.deepEqual(redacted.data.object.metadata, {});
    assert.equal((await adminGet(worker, `/events/${redacted.id}`, ADMIN)).body.outcome, 'handled');
    // Stripe's retry of the older event arrives after the redaction: it must not bring the
    // reason (which the redaction removed, or would have) into the user's record.
    const retried = await (await post(`/_test/events/${late.id}/redeliver`)).json();
    assert.equal(retried.deliveries[0].status, 200);
    const state = await user(who);
    assert.equal(state.last_error, undefined, JSON.stringify(state));
    assert.ok(!JSON.stringify(state).includes('The document is expired.'), JSON.stringify(state));
    // And the user's next session starts clean.
    const second = await create({ user_id: who });
    assert.equal(second.status, 201);
    await createdDelivered();
    await move(second.body.id, 'processing');
    const after = await user(who);
    assert.deepEqual([after.status, after.last_error, after.attempts], ['processing', undefined, 2]);
  });

  test('an event in another API version is handled on the session read at the pinned version', async () => {
    const post = (route, body = {}) => fetch(`${stripeBase}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const who = 'user_e2e_versions';
    const created = await create({ user_id: who });
    await createdDelivered();
    // Stripe's session now: the check failed with document_expired (its own event held back).
    await post('/_test/outage', { on: true });
    await post(`/_test/identity/verification_sessions/${created.body.id}/requires_input`, { code: 'document_expired', reason: 'The document is expired.' });
    await post('/_test/outage', { on: false });
    // The event as an endpoint of another API version (or the Events API, in the account's
    // default version) renders it: here its payload would stop the user for a manual review.
    const start = (await (await fetch(`${stripeBase}/_test/requests`)).json()).length;
    const event = makeEvent(
      'identity.verification_session.requires_input',
      { id: created.body.id, object: 'identity.verification_session', status: 'requires_input', created: 1, last_error: { code: 'selfie_manipulated', reason: 'x' }, metadata: { user_id: who, created_by: 'stripe-edge-webhooks' } },
    );
    event.api_version = '2020-08-27';
    const res = await deliver(worker, event, { secret: SECRET });
    assert.equal(res.status, 200);
    const state = await user(who);
    assert.deepEqual([state.last_error?.code, state.next], ['document_expired', 'retry']);
    const reads = (await (await fetch(`${stripeBase}/_test/requests`)).json()).slice(start);
    assert.deepEqual(reads.map((r) => [r.method, r.path, r.stripe_version]), [['GET', `/v1/identity/verification_sessions/${created.body.id}`, '2026-10-28.endive']]);
  });

  test('a verified Identity event whose object has the wrong shape is 400 and not recorded', async () => {
    const event = makeEvent('identity.verification_session.verified', { id: 'vs_e2e_shape', object: 'identity.verification_session', status: ['not', 'a', 'string'] });
    const res = await deliver(worker, event, { secret: SECRET });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'event_malformed');
    assert.equal((await adminGet(worker, `/events/${event.id}`, ADMIN)).status, 404);
  });

  test('Stripe faults during session creation: retried with the same key, never a second attempt', async () => {
    // Faults of the creation only (POST): with a thin destination (E2E_DESTINATIONS), the
    // worker also reads sessions (GET, the same path prefix) for the thin events it receives.
    const fault = (json) => fetch(`${stripeBase}/_test/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ method: 'POST', ...json }) });
    const path = '/v1/identity/verification_sessions';
    const calls = async () => (await (await fetch(`${stripeBase}/_test/requests`)).json()).filter((r) => r.path === path);
    await fetch(`${stripeBase}/_test/reset`, { method: 'POST' });

    // A 500 then success inside one request: retried with the same key.
    await fault({ kind: '500', path });
    const retried = await create({ user_id: 'user_fault_1' });
    assert.equal(retried.status, 201, JSON.stringify(retried.body));
    const [failedCall, okCall] = await calls();
    assert.deepEqual([failedCall.status, okCall.status], [500, 200]);
    assert.equal(failedCall.idempotency_key, okCall.idempotency_key);

    // Malformed JSON from Stripe: 502, nothing stored, no attempt used.
    await fault({ kind: 'malformed', path });
    const malformed = await create({ user_id: 'user_fault_2' });
    assert.equal(malformed.status, 502);
    assert.equal((await adminGet(worker, '/identity/users/user_fault_2', ADMIN)).status, 404);

    // 429 three times: 503 (retry later); nothing stored.
    await fault({ kind: '429', path, times: 3 });
    const limited = await create({ user_id: 'user_fault_2' });
    assert.equal(limited.status, 503);
    assert.equal((await adminGet(worker, '/identity/users/user_fault_2', ADMIN)).status, 404);

    // Slow: Stripe creates the session but answers after the client gave up (the key stays
    // in progress meanwhile): 503. The app's retry gets the same session back, one attempt.
    await fault({ kind: 'slow', path, delay_ms: 9000 });
    const slow = await create({ user_id: 'user_fault_3' });
    assert.equal(slow.status, 503);
    // The retry comes once Stripe has finished the slow request (its key no longer in
    // progress), whatever the machine's speed: it gets the saved session back.
    const slowCall = (await calls()).find((r) => r.fault === 'slow');
    for (let i = 0; i < 600 && !(await calls()).find((r) => r.request_id === slowCall.request_id).settled; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const again = await create({ user_id: 'user_fault_3' });
    assert.equal(again.status, 201, JSON.stringify(again.body));
    const state = await user('user_fault_3');
    assert.equal(state.attempts, 1);
    assert.equal(state.latest_session, again.body.id);
    const objects = await (await fetch(`${stripeBase}/_test/objects`)).json();
    const sessions = objects.filter((o) => o.object === 'identity.verification_session' && o.metadata.user_id === 'user_fault_3');
    assert.deepEqual(sessions.map((o) => o.id), [again.body.id], 'Stripe holds one session for user_fault_3');
  });

  test('bad creation requests are 400, admin token required, unknown users 404', async () => {
    assert.equal((await create({ user_id: 'bad:id' })).status, 400);
    assert.equal((await create({ user_id: 'u', extra: 1 })).body.error.code, 'bad_json');
    // A missing or mistyped field is that field's code, with the field named.
    for (const [body, code, field] of [
      [{ user_id: 'bad:id' }, 'invalid_user_id', 'user_id'],
      [{ type: 'document' }, 'invalid_user_id', 'user_id'],
      [{ user_id: 'u', type: 'selfie' }, 'invalid_type', 'type'],
      [{ user_id: 'u', return_url: 5 }, 'invalid_return_url', 'return_url'],
    ]) {
      const res = await create(body);
      assert.deepEqual([res.status, res.body.error.code, res.body.error.field], [400, code, field], JSON.stringify(body));
    }
    const nobody = await adminGet(worker, '/identity/users/nobody', ADMIN);
    assert.deepEqual([nobody.status, nobody.body.error.code, nobody.body.error.record], [404, 'not_found', 'identity_user']);
    assert.equal((await adminPost(worker, '/identity/verification-sessions', 'wrong', { user_id: 'u' })).status, 401);
    assert.equal((await adminPost(worker, '/identity/verification-sessions', undefined, { user_id: 'u' })).status, 401);
    assert.equal((await adminGet(worker, '/identity/users/nobody', ADMIN)).status, 404);
    assert.equal((await adminGet(worker, '/identity/users/user_e2e_1')).status, 401);
  });
});
