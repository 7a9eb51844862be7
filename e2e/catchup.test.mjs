// Event catch-up and replay under real workerd: the scheduled handler driven through
// `wrangler dev --test-scheduled` and its `/__scheduled` route, the stand-in stopping its
// deliveries for a while (an outage). Effects are counted at the stand-in (`/_test/counts`).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { adminGet, adminPost, completeAtStandIn, createSetupSession, startStack } from './harness.mjs';

const SECRET = 'whsec_e2e_catchup_8d1f';
const ADMIN = 'e2e-catchup-admin-71ac';
const STRIPE_KEY = 'sk_test_e2e_catchup_4b2e';
const SETTINGS = {
  STRIPE_SECRET_KEY: STRIPE_KEY, STRIPE_WEBHOOK_SECRET: SECRET, ADMIN_TOKEN: ADMIN,
  CATCHUP_EVERY_MINUTES: '1', CATCHUP_SETTLE_SECONDS: '0',
};

const post = (base, path, body = {}) =>
  fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.json());
const get = (base, path) => fetch(`${base}${path}`).then((r) => r.json());
const scheduled = async (worker) => {
  const res = await fetch(`${worker.url}/__scheduled?cron=*+*+*+*+*`);
  assert.equal(res.status, 200, await res.text());
};
const customerOf = async (base, cs) => (await get(base, '/_test/objects')).find((o) => o.object === 'customer' && o.metadata?.checkout_session === cs)?.id;

/** Catch-up runs until a run ends caught up with nothing left to retry. */
async function catchUp(worker) {
  for (let i = 0; i < 6; i++) {
    await scheduled(worker);
    const run = (await adminGet(worker, '/catch-up', ADMIN)).body.state?.last_run;
    if (run?.stopped === 'caught_up' && run.retry_later.length === 0) return run;
  }
  throw new Error('catch-up did not catch up in 6 runs');
}

/**
 * A card saved (A) before; then, with deliveries stopped when `outage`: a card saved (B), a
 * charge of A declined, a user verified. What the worker records of them, without ids.
 */
async function scenario({ stripeBase, worker }, { outage }) {
  const csA = await createSetupSession(worker);
  await completeAtStandIn(stripeBase, csA, { card: '4000000000000341' });
  await get(stripeBase, '/_test/deliveries');
  const customerA = await customerOf(stripeBase, csA);
  assert.ok(customerA, 'card A saved by its delivery');

  if (outage) await post(stripeBase, '/_test/outage', { on: true });
  const csB = await createSetupSession(worker);
  await completeAtStandIn(stripeBase, csB, { card: '4242424242424242' });
  const charge = await adminPost(worker, '/charges', ADMIN, { customer: customerA, amount: 1500, currency: 'usd', description: 'Order 7', idempotency_key: 'order-7' });
  assert.equal(charge.status, 402);
  const vs = await adminPost(worker, '/identity/verification-sessions', ADMIN, { user_id: 'user_7', type: 'document' });
  assert.equal(vs.status, 201);
  await post(stripeBase, `/_test/identity/verification_sessions/${vs.body.id}/verified`);
  await get(stripeBase, '/_test/deliveries');
  if (outage) {
    await post(stripeBase, '/_test/outage', { on: false });
    const customerB = await customerOf(stripeBase, csB);
    assert.equal(customerB, undefined, 'nothing saved card B while deliveries were stopped');
    const run = await catchUp(worker);
    assert.ok(run.handled >= 3, JSON.stringify(run));
  }
  return state(stripeBase, worker, csB, charge.body.payment_intent);
}

async function state(stripeBase, worker, csB, pi) {
  const customerB = await customerOf(stripeBase, csB);
  assert.ok(customerB, 'card B saved');
  const strip = (record) => JSON.parse(JSON.stringify(record, (k, v) => (/(^id$|_at$|^customer$|payment_method|session|payment_intent|^url$|recovery_url|checkout_session)/.test(k) ? undefined : v)));
  return {
    customer: strip((await adminGet(worker, `/customers/${customerB}`, ADMIN)).body),
    charge: strip((await adminGet(worker, `/charges/${pi}`, ADMIN)).body),
    user: strip((await adminGet(worker, '/identity/users/user_7', ADMIN)).body),
    counts: await get(stripeBase, '/_test/counts'),
  };
}

describe('event catch-up and replay', () => {
  let reference;
  let stack;
  before(async () => {
    [reference, stack] = await Promise.all([
      startStack(SETTINGS, { args: ['--test-scheduled'] }),
      startStack(SETTINGS, { args: ['--test-scheduled'], ops: true }),
    ]);
  });
  after(async () => {
    await reference?.stop();
    await stack?.stop();
  });

  test('after an outage, catch-up brings every record to the state of a run without it, with no second effect', async () => {
    const expected = await scenario(reference, { outage: false });
    const caughtUp = await scenario(stack, { outage: true });
    assert.deepEqual(caughtUp, expected);
    assert.deepEqual(caughtUp.counts, { customers: 2, attaches: 2, payment_intents: 1, checkout_sessions: 3 });
    // Stripe's late deliveries of the same events then change nothing.
    const late = await post(stack.stripeBase, '/_test/redeliver-failed');
    assert.ok(late.redelivered.length >= 3);
    // Every handled type was caught up: its late delivery is a duplicate (the types catch-up
    // does not list, such as setup_intent.succeeded, are ignored either way).
    const handledTypes = late.deliveries.filter((d) => /^(checkout\.session|payment_intent\.pay|identity)/.test(d.type));
    assert.ok(handledTypes.length >= 4);
    assert.ok(late.deliveries.every((d) => d.status === 200), JSON.stringify(late.deliveries));
    assert.ok(handledTypes.every((d) => JSON.parse(d.body).duplicate === true), JSON.stringify(handledTypes));
    assert.deepEqual(await get(stack.stripeBase, '/_test/counts'), caughtUp.counts);
    // The operator heard of it: each run that processed undelivered events raised one alert.
    const found = stack.sink.received.filter((r) => r.path === '/ops' && r.body.kind === 'ops.catchup_found_undelivered');
    assert.ok(found.length >= 1 && found.every((r) => r.verified), JSON.stringify(found.map((r) => r.body)));
    assert.equal(found.reduce((n, r) => n + r.body.payload.run.processed, 0) >= 3, true);
    assert.equal(found[0].body.payload.admin_path, '/catch-up');
    assert.equal(found[0].body.payload.console_path, '/admin');
    assert.equal(reference.sink.received.filter((r) => r.path === '/ops').length, 0, 'no alert without OPS_NOTIFY_URL');
  });

  test('a catch-up racing the late deliveries of the same events makes each effect once', async () => {
    const { stripeBase, worker } = stack;
    const before = await get(stripeBase, '/_test/counts');
    await post(stripeBase, '/_test/outage', { on: true });
    const cs = await createSetupSession(worker);
    await completeAtStandIn(stripeBase, cs);
    await post(stripeBase, '/_test/outage', { on: false });
    const [late] = await Promise.all([post(stripeBase, '/_test/redeliver-failed'), scheduled(worker), scheduled(worker)]);
    assert.ok(late.deliveries.every((d) => d.status === 200), JSON.stringify(late.deliveries));
    await catchUp(worker);
    const customer = await customerOf(stripeBase, cs);
    assert.ok(customer);
    assert.equal((await adminGet(worker, `/customers/${customer}`, ADMIN)).status, 200);
    const now = await get(stripeBase, '/_test/counts');
    assert.deepEqual(now, { ...before, customers: before.customers + 1, attaches: before.attaches + 1, checkout_sessions: before.checkout_sessions + 1 });
  });

  test('an event failed for good is skipped by catch-up, and a replay after the fix handles it once', async () => {
    const { stripeBase, worker } = stack;
    // The previous test's last run scanned up to its second (settle 0 here): an event made in
    // that same second could be listed by it, mid-delivery, and the cursor would pass it
    // before this test's own run. Its events start in the next second.
    await new Promise((r) => setTimeout(r, 1_100));
    const before = await get(stripeBase, '/_test/counts');
    // Stripe refuses the SetupIntent retrieval (a 4xx, as with a misconfigured key's account).
    await post(stripeBase, '/_test/faults', { kind: '400', path: '/v1/setup_intents', times: 1 });
    const cs = await createSetupSession(worker);
    const events = await completeAtStandIn(stripeBase, cs);
    await get(stripeBase, '/_test/deliveries');
    const completed = events.find((e) => e.type === 'checkout.session.completed').id;
    const failed = (await adminGet(worker, `/events/${completed}`, ADMIN)).body;
    assert.equal(failed.outcome, 'failed');
    assert.equal(failed.retryable, false);
    // The record says what Stripe said, with the request id to look up in its Dashboard.
    const { request_id: requestId, ...said } = failed.stripe_error ?? {};
    assert.deepEqual(said, { status: 400, type: 'invalid_request_error', code: 'parameter_invalid_empty', message: 'Injected 400.' });
    assert.match(requestId, /^req_/);
    // The operator is told, once, signed, with what Stripe said and where to look.
    const alerts = () => stack.sink.received.filter((r) => r.path === '/ops' && r.body.kind === 'ops.event_failed_for_good');
    assert.equal(alerts().length, 1);
    const [alert] = alerts();
    assert.ok(alert.verified, 'signed with NOTIFY_SIGNING_SECRET');
    assert.deepEqual([alert.body.kind, alert.body.recipient, alert.body.id], ['ops.event_failed_for_good', { type: 'operator' }, `${completed}.ops.event_failed_for_good`]);
    assert.deepEqual(
      [alert.body.payload.event_id, alert.body.payload.failed_step, alert.body.payload.stripe_error.code, alert.body.payload.admin_path, alert.body.payload.console_path],
      [completed, 'retrieve_setup_intent', 'parameter_invalid_empty', `/events/${completed}`, `/admin/events/${completed}`],
    );

    // Workers KV may serve a read from its cache for up to 60 s (a key read absent by the
    // delivery just before it was written): a deployed catch-up waits CATCHUP_SETTLE_SECONDS
    // (300) anyway, so the test waits the cache out too.
    await new Promise((r) => setTimeout(r, 61_000));
    const start = (await get(stripeBase, '/_test/requests')).length;
    const run = await catchUp(worker);
    assert.ok(run.failed_for_good.includes(completed), JSON.stringify(run));
    const during = (await get(stripeBase, '/_test/requests')).slice(start);
    assert.deepEqual(during.filter((r) => r.path.startsWith('/v1/setup_intents')), [], 'catch-up leaves it to replay');

    const replayed = await adminPost(worker, `/events/${completed}/replay`, ADMIN, {});
    assert.equal(replayed.status, 200, JSON.stringify(replayed.body));
    assert.equal(replayed.body.replayed, true);
    assert.equal(replayed.body.outcome, 'handled');
    assert.equal((await adminGet(worker, `/events/${completed}`, ADMIN)).body.outcome, 'handled');
    const again = await adminPost(worker, `/events/${completed}/replay`, ADMIN, {});
    assert.equal(again.body.replayed, false);
    assert.equal(alerts().length, 1, 'the alert was raised once, through catch-up and replays');
    assert.match(again.body.message, /changes nothing/);
    const now = await get(stripeBase, '/_test/counts');
    assert.deepEqual(now, { ...before, customers: before.customers + 1, attaches: before.attaches + 1, checkout_sessions: before.checkout_sessions + 1 });
    assert.equal((await adminPost(worker, '/events/evt_unknown1/replay', ADMIN, {})).status, 404);
  });
});
