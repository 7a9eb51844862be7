// Event catch-up and replay under real workerd: the stand-in stops delivering webhooks (an
// outage), the scheduled handler is driven through `wrangler dev --test-scheduled` and its
// `/__scheduled` route, and the records end as a run without the outage leaves them, with
// every effect at Stripe counted once (`/_test/counts`, `/_test/requests`).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { adminGet, adminPost, completeAtStandIn, createSetupSession, startStack } from './harness.mjs';

const SECRET = 'whsec_e2e_catchup_8a31c2';
const ADMIN = 'e2e-catchup-admin-5d0e';
const STRIPE_KEY = 'sk_test_e2e_catchup_71b4';
const CARD_OK = '4242424242424242';
const CARD_DECLINED_LATER = '4000000000000341';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe('catch-up from the Events API and replay', () => {
  let stack;
  let stripeBase;
  let worker;

  before(async () => {
    stack = await startStack(
      {
        STRIPE_SECRET_KEY: STRIPE_KEY,
        STRIPE_WEBHOOK_SECRET: SECRET,
        ADMIN_TOKEN: ADMIN,
        // Every scheduled event runs catch-up, and events count from their first second.
        CATCHUP_EVERY_MINUTES: '1',
        CATCHUP_SETTLE_SECONDS: '0',
      },
      { args: ['--test-scheduled'] },
    );
    ({ stripeBase, worker } = stack);
  });
  after(() => stack?.stop());

  const testPost = async (path, json = {}) => {
    const res = await fetch(`${stripeBase}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(json) });
    assert.equal(res.status, 200, `${path}: ${res.status}`);
    return res.json();
  };
  const counts = async () => (await fetch(`${stripeBase}/_test/counts`)).json();
  const objects = async () => (await fetch(`${stripeBase}/_test/objects`)).json();
  const deliveries = async () => (await fetch(`${stripeBase}/_test/deliveries`)).json();
  const outage = (on) => testPost('/_test/outage', { on });
  const diff = (a, b) => Object.fromEntries(Object.keys(b).map((k) => [k, b[k] - a[k]]));

  /** One scheduled event, through wrangler's `/__scheduled`; then the catch-up state. */
  async function scheduled() {
    const res = await fetch(`${worker.url}/__scheduled?cron=${encodeURIComponent('* * * * *')}`);
    assert.equal(res.status, 200, await res.text());
    const state = await adminGet(worker, '/catch-up', ADMIN);
    assert.equal(state.status, 200);
    return state.body;
  }
  /** Scheduled runs until a scan ends; the reports of the runs; then a second passes so later
   * events are created after the window the scan covered (settle is 0 here). */
  async function catchUp() {
    const reports = [];
    for (let i = 0; i < 10; i++) {
      const { state } = await scheduled();
      reports.push(state.last_run);
      if (!state.scan) break;
    }
    await sleep(1100);
    return reports;
  }

  const customersOf = async (sessionId) => (await objects()).filter((o) => o.object === 'customer' && o.metadata?.checkout_session === sessionId);

  /** A card saved through the worker's public form and Checkout, delivered as it happens. */
  async function saveCard(card) {
    const id = await createSetupSession(worker, {});
    await completeAtStandIn(stripeBase, id, { card });
    await deliveries();
    const [customer] = await customersOf(id);
    assert.ok(customer, 'saved');
    return customer.id;
  }

  /**
   * The three steps of the outage: a card saved, a charge declined (a card saved before, that
   * declines off-session) and a user verified. Returns what to read the state of afterwards.
   */
  async function steps(tag, declining) {
    const session = await createSetupSession(worker, {});
    await completeAtStandIn(stripeBase, session, { card: CARD_OK });
    const charge = await adminPost(worker, '/charges', ADMIN, { customer: declining, amount: 1500, currency: 'usd', description: `Order ${tag}` });
    assert.equal(charge.status, 402, JSON.stringify(charge.body));
    const user = `user_catchup_${tag}`;
    const created = await adminPost(worker, '/identity/verification-sessions', ADMIN, { user_id: user, type: 'document' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    await deliveries();
    const moved = await testPost(`/_test/identity/verification_sessions/${created.body.id}/verified`);
    await deliveries();
    return { session, pi: charge.body.payment_intent, user, verifiedAt: moved.events[0].event.created };
  }

  /** The records of the three steps, without ids and times that differ from run to run. */
  async function stateOf({ session, pi, user, verifiedAt }) {
    const customers = await customersOf(session);
    let card = null;
    if (customers.length) {
      const record = await adminGet(worker, `/customers/${customers[0].id}`, ADMIN);
      card = record.status === 200 ? { last4: record.body.card_last4, brand: record.body.card_brand, default: Boolean(record.body.default_payment_method) } : record.status;
    }
    const charge = (await adminGet(worker, `/charges/${pi}`, ADMIN)).body;
    const identity = (await adminGet(worker, `/identity/users/${user}`, ADMIN)).body;
    return {
      customers: customers.length,
      card,
      charge: { status: charge.status, paid: charge.paid, error: charge.last_error?.code, recovery: charge.recovery?.status ?? null, recovery_session: Boolean(charge.recovery?.checkout_session) },
      user: { status: identity.status, verified_at_event: identity.verified_at === verifiedAt, attempts: identity.attempts },
    };
  }

  let reference;
  let declining;

  test('without an outage: the reference state and what it costs at Stripe', async () => {
    declining = await saveCard(CARD_DECLINED_LATER);
    const start = await counts();
    const run = await steps('reference', declining);
    reference = { state: await stateOf(run), spent: diff(start, await counts()) };
    assert.deepEqual(reference.state.card, { last4: '4242', brand: 'visa', default: true });
    assert.equal(reference.state.user.status, 'verified');
    assert.equal(reference.spent.customers, 1);
    assert.equal(reference.spent.attaches, 1);
    // The first catch-up finds everything handled already and processes nothing.
    const reports = await catchUp();
    assert.equal(reports.reduce((n, r) => n + r.processed, 0), 0, JSON.stringify(reports));
    assert.ok(reports.reduce((n, r) => n + r.already_done, 0) > 0);
  });

  test('an outage while a card is saved, a charge declined and a user verified: catch-up brings every record to the reference state, each effect once', async () => {
    const start = await counts();
    await outage(true);
    const run = await steps('outage', declining);
    await outage(false);
    const lost = (await deliveries()).filter((d) => d.error === 'outage').map((d) => d.event_id);
    assert.ok(lost.length >= 3, `deliveries lost: ${lost.length}`);
    const missed = await stateOf(run);
    assert.equal(missed.customers, 0, 'no card saved before catch-up');
    assert.notEqual(missed.user.status, 'verified');

    const reports = await catchUp();
    assert.ok(reports.reduce((n, r) => n + r.handled, 0) >= 3, JSON.stringify(reports));
    assert.equal(reports.at(-1).stopped, 'caught_up');
    assert.deepEqual(await stateOf(run), reference.state);
    assert.deepEqual(diff(start, await counts()), reference.spent, 'no second customer, attach, PaymentIntent or recovery session');
    for (const id of lost) {
      const record = await adminGet(worker, `/events/${id}`, ADMIN);
      if (record.status === 200) assert.notEqual(record.body.outcome, 'failed', id);
    }

    // The late deliveries of the same events afterwards change nothing: duplicates.
    const late = await testPost('/_test/redeliver-failed');
    assert.ok(late.redelivered.length >= 3);
    for (const d of late.deliveries) assert.equal(d.status, 200, `${d.type}: ${d.body}`);
    assert.deepEqual(diff(start, await counts()), reference.spent);
    assert.deepEqual(await stateOf(run), reference.state);

    const shown = await adminGet(worker, '/catch-up', ADMIN);
    assert.equal(shown.body.started, true);
    assert.equal(shown.body.state.scan, undefined);
    assert.ok(shown.body.state.since > run.verifiedAt, 'the cursor passed the handled events');
    assert.equal((await adminGet(worker, '/catch-up')).status, 401);
  });

  test('a catch-up racing the late deliveries of the same events changes nothing more', async () => {
    const start = await counts();
    await outage(true);
    const run = await steps('race', declining);
    await outage(false);
    // Stripe's retries and the scheduled run at once.
    const [late] = await Promise.all([testPost('/_test/redeliver-failed'), scheduled()]);
    assert.ok(late.redelivered.length >= 3);
    await catchUp(); // whatever the race left retryable is worked again
    assert.deepEqual(await stateOf(run), reference.state);
    assert.deepEqual(diff(start, await counts()), reference.spent, 'no second customer, attach, PaymentIntent or recovery session');
  });

  test('an event failed for good (Stripe refused with a 4xx) is skipped by catch-up, and handled once when replayed after the cause is fixed', async () => {
    const start = await counts();
    // Stripe refuses the customer the card save needs (e.g. a misconfigured key): a 400.
    await testPost('/_test/faults', { kind: '400', path: '/v1/customers', times: 1 });
    const session = await createSetupSession(worker, {});
    const events = await completeAtStandIn(stripeBase, session, { card: CARD_OK });
    await deliveries();
    const completed = events.find((e) => e.type === 'checkout.session.completed');
    const failed = await adminGet(worker, `/events/${completed.id}`, ADMIN);
    assert.equal(failed.body.outcome, 'failed');
    assert.equal(failed.body.retryable, false);
    assert.equal((await customersOf(session)).length, 0);

    const reports = await catchUp();
    assert.ok(reports.some((r) => r.failed_for_good.includes(completed.id)), JSON.stringify(reports));
    assert.equal((await customersOf(session)).length, 0, 'catch-up leaves it to a replay');

    // The fault was for one request: the cause is fixed. The replay fetches it from Stripe.
    const replay = await adminPost(worker, `/events/${completed.id}/replay`, ADMIN, {});
    assert.equal(replay.status, 200, JSON.stringify(replay.body));
    assert.equal(replay.body.replayed, true);
    assert.equal(replay.body.outcome, 'handled');
    assert.equal((await customersOf(session)).length, 1);
    assert.equal((await adminGet(worker, `/events/${completed.id}`, ADMIN)).body.outcome, 'handled');

    const again = await adminPost(worker, `/events/${completed.id}/replay`, ADMIN, {});
    assert.equal(again.status, 200);
    assert.equal(again.body.replayed, false);
    assert.match(again.body.message, /changes nothing/);
    assert.equal((await customersOf(session)).length, 1);
    const spent = diff(start, await counts());
    assert.deepEqual([spent.customers, spent.attaches], [1, 1], 'handled once');

    const requests = await (await fetch(`${stripeBase}/_test/requests`)).json();
    const retrieved = requests.filter((r) => r.method === 'GET' && r.path === `/v1/events/${completed.id}`);
    assert.equal(retrieved.length, 1, 'a handled event is not fetched again');
    assert.equal((await adminPost(worker, '/events/evt_nothere/replay', ADMIN, {})).status, 404);
    assert.equal((await adminPost(worker, `/events/${completed.id}/replay`, undefined, {})).status, 401);
  });

  test('the scheduled runs logged their reports', async () => {
    assert.match(worker.logs(), /"scheduled":"catch_up"/);
  });
});
