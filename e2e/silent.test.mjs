// The `ops.endpoint_silent` alert under real workerd: no delivery for ENDPOINT_SILENT_AFTER_MINUTES
// while catch-up finds events Stripe did not deliver (the stand-in's outage: events are made
// and listed, their deliveries fail, as for a disabled endpoint). Time is set, never waited
// for: each scheduled run is given its time (`/cdn-cgi/local/scheduled?time=`), SETTLE seconds
// ahead of the wall clock, with CATCHUP_SETTLE_SECONDS=SETTLE, so the run lists exactly the
// events made so far while it is SETTLE seconds after the last delivery. The alert is checked
// with tools/verify-notification.mjs, as a receiver would, at the run's time (a scheduled
// run signs with its own "now").

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { NOTIFY_SECRET, adminGet, completeAtStandIn, createSetupSession, startStack } from './harness.mjs';
import { SIGNATURE_HEADER, verifyNotification } from '../tools/verify-notification.mjs';

const SECRET = 'whsec_e2e_silent_2c7a';
const ADMIN = 'e2e-silent-admin-5f1b';
/** Two hours: past the threshold (60 minutes) set below. */
const SETTLE = 7200;

const post = (base, path, body = {}) =>
  fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.json());
const nowSeconds = () => Math.floor(Date.now() / 1000);

describe('ops.endpoint_silent', () => {
  let stack;
  before(async () => {
    stack = await startStack(
      {
        STRIPE_SECRET_KEY: 'sk_test_e2e_silent_9a3d', STRIPE_WEBHOOK_SECRET: SECRET, ADMIN_TOKEN: ADMIN,
        CATCHUP_EVERY_MINUTES: '1', CATCHUP_SETTLE_SECONDS: String(SETTLE), ENDPOINT_SILENT_AFTER_MINUTES: '60',
      },
      { args: ['--test-scheduled'], ops: true },
    );
  });
  after(() => stack?.stop());

  /**
   * One scheduled run whose "now" is SETTLE seconds ahead: it lists every event made so far.
   * Each run is in a later second than the one before (a run's alert is named by its second,
   * and two runs of one second would be one), so it first lets the wall clock pass it.
   */
  let lastRun = 0;
  const run = async () => {
    while (nowSeconds() + SETTLE <= lastRun) await new Promise((r) => setTimeout(r, 100));
    const at = nowSeconds() + SETTLE;
    lastRun = at;
    const res = await fetch(`${stack.worker.url}/cdn-cgi/local/scheduled?cron=${encodeURIComponent('* * * * *')}&time=${at * 1000}`);
    assert.equal(res.status, 200, await res.text());
    return at;
  };
  const alerts = () => stack.sink.received.filter((r) => r.path === '/ops' && r.body?.kind === 'ops.endpoint_silent');
  const deliveries = async () => (await fetch(`${stack.stripeBase}/_test/deliveries`)).json();
  /** A card saved while deliveries fail: events only catch-up will find. */
  const undelivered = async () => {
    await post(stack.stripeBase, '/_test/outage', { on: true });
    await completeAtStandIn(stack.stripeBase, await createSetupSession(stack.worker));
    await deliveries();
  };
  /** A card saved and delivered: the latest `recorded_at` of the events Stripe delivered. */
  const delivered = async () => {
    await post(stack.stripeBase, '/_test/outage', { on: false });
    const start = (await deliveries()).length;
    await completeAtStandIn(stack.stripeBase, await createSetupSession(stack.worker));
    const mine = (await deliveries()).slice(start).filter((d) => d.status === 200);
    assert.ok(mine.length > 0, 'delivered');
    const times = [];
    for (const d of mine) times.push((await adminGet(stack.worker, `/events/${d.event_id}`, ADMIN)).body.recorded_at);
    return Math.max(...times);
  };

  test('raised once per silence, signed, with the console link; a delivery starts the next', async () => {
    const firstDelivery = await delivered();
    await undelivered();
    const at = await run();
    assert.equal(alerts().length, 1);
    const [alert] = alerts();
    // What a receiver does: the raw body, its Notify-Signature header, the shared secret.
    const check = (a, secret, now) => verifyNotification(Buffer.from(a.raw), a.headers[SIGNATURE_HEADER], secret, { now });
    const parsed = check(alert, NOTIFY_SECRET, at);
    assert.throws(() => check(alert, 'nsec_some_other_secret', at));
    assert.deepEqual([parsed.kind, parsed.id, parsed.recipient], ['ops.endpoint_silent', `silent.${firstDelivery}.ops.endpoint_silent`, { type: 'operator' }]);
    const { payload } = parsed;
    assert.equal(payload.last_delivery_at, firstDelivery);
    assert.equal(payload.silent_since, firstDelivery);
    assert.equal(payload.silent_seconds, at - firstDelivery);
    assert.ok(payload.found_undelivered >= 1);
    assert.equal(payload.console_path, '/admin');
    assert.equal(payload.admin_path, '/catch-up');
    assert.match(payload.action, /re-enable/);

    // Still silent, more undelivered events found: the same silence is not raised again.
    await undelivered();
    await run();
    const found = stack.sink.received.filter((r) => r.path === '/ops' && r.body?.kind === 'ops.catchup_found_undelivered');
    assert.equal(found.length, 2, 'the second run found events too');
    assert.equal(alerts().length, 1, 'once per silence');

    // Deliveries resume (in a later second than the first: the silence is named by its
    // start), then stop again: a new silence, a new alert.
    while (nowSeconds() <= firstDelivery) await new Promise((r) => setTimeout(r, 100));
    const secondDelivery = await delivered();
    assert.ok(secondDelivery > firstDelivery);
    await undelivered();
    const third = await run();
    assert.deepEqual(alerts().map((a) => a.body.id), [`silent.${firstDelivery}.ops.endpoint_silent`, `silent.${secondDelivery}.ops.endpoint_silent`]);
    assert.equal(check(alerts()[1], NOTIFY_SECRET, third).payload.last_delivery_at, secondDelivery);
  });
});
