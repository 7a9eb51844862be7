// The billing flow under real workerd when Stripe behaves like Stripe: deliveries repeated and
// racing, events out of order, and the API failing in the middle of a flow. Effects are counted
// at the local stand-in (`/_test/requests`, `/_test/objects`), stored state is read through the
// admin routes. The stand-in's own event deliveries go to a recorder, never to the worker: the
// tests deliver the recorded events themselves (signed by the official SDK), as often and in
// whatever order each test needs.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { adminGet, adminPost, clientIp, completeAtStandIn, createSetupSession, deliver, shuffled, startStack, stripe } from './harness.mjs';

const SECRET = 'whsec_e2e_rel_billing_41c7';
const RECORDER_SECRET = 'whsec_e2e_rel_recorder_9b02';
const ADMIN = 'e2e-rel-billing-admin-6f3a';
const STRIPE_KEY = 'sk_test_e2e_rel_billing_d28e';
const CARD_OK = '4242424242424242';
// Saves, then declines off-session (docs.stripe.com/testing); 9995 is declined while saving.
const CARD_DECLINED = '4000000000000341';

const ORDERS = {
  in_order: (events) => events,
  reversed: (events) => [...events].reverse(),
  shuffled_7: (events) => shuffled(events, 7),
  shuffled_1234: (events) => shuffled(events, 1234),
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A stored record with this run's ids named by role and its times taken out (checked apart). */
function normalised(record, names) {
  let text = JSON.stringify(record);
  for (const [id, name] of Object.entries(names)) text = text.replaceAll(id, name);
  // Times differ between the runs compared (each makes its own session and charge).
  const times = ['created_at', 'updated_at', 'saved_by_session_created'];
  return JSON.parse(text, (key, value) => (times.includes(key) ? typeof value : value));
}

/** Signs once with the official SDK: the same bytes and header can be delivered again. */
function signed(event) {
  const payload = JSON.stringify(event, null, 2);
  return { payload, header: stripe.webhooks.generateTestHeaderString({ payload, secret: SECRET }) };
}

describe('billing under duplicates, races, disorder and Stripe faults (workerd)', () => {
  let stack;
  let stripeBase;
  let worker;
  let sink;
  let recorder;

  before(async () => {
    // The stand-in delivers to the recorder only; the tests deliver to the worker themselves.
    stack = await startStack(
      { STRIPE_SECRET_KEY: STRIPE_KEY, STRIPE_WEBHOOK_SECRET: SECRET, ADMIN_TOKEN: ADMIN },
      { connect: false, recorder: RECORDER_SECRET },
    );
    ({ stripeBase, worker, sink, recorder } = stack);
  });
  after(async () => {
    await stack?.stop();
  });

  const requests = async () => (await fetch(`${stripeBase}/_test/requests`)).json();
  const objects = async () => (await fetch(`${stripeBase}/_test/objects`)).json();
  /** Waits for the stand-in's pending deliveries, then the events the recorder got. */
  const recorded = async () => {
    await fetch(`${stripeBase}/_test/deliveries`);
    return recorder.received.map((r) => r.body);
  };
  const fault = async (json) => {
    const res = await fetch(`${stripeBase}/_test/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(json) });
    assert.equal(res.status, 200);
  };
  const clearFaults = () => fetch(`${stripeBase}/_test/faults`, { method: 'DELETE' });
  /**
   * A request the stand-in carried out itself: not a replay, not answered by a fault instead
   * (a `slow` one is carried out, its answer may never arrive), and not refused (a 402 decline
   * is carried out: the PaymentIntent exists).
   */
  const ran = (c) => !c.replayed && (c.fault === 'slow' || (c.fault === null && (c.status === 200 || c.status === 402)));
  const success = (id) => fetch(`${worker.url}/success?session_id=${encodeURIComponent(id)}`, { headers: { 'cf-connecting-ip': clientIp() } });
  const charge = (body) => adminPost(worker, '/charges', ADMIN, body);

  const createSession = () => createSetupSession(worker);

  /** Completes a session at the stand-in; its events (for the recorder) are returned. */
  const complete = (id, card = CARD_OK) => completeAtStandIn(stripeBase, id, { card });

  /** A completed setup session without a customer, and the ids a fault needs. */
  async function completedSetup(card = CARD_OK) {
    const session = await createSession();
    const events = await complete(session, card);
    const completed = events.find((e) => e.type === 'checkout.session.completed');
    const setupIntent = completed.data.object.setup_intent;
    const si = (await objects()).find((o) => o.id === setupIntent);
    return { session, events, completed, setupIntent, paymentMethod: si.payment_method };
  }

  /**
   * Exactly one effect at Stripe for the session: one customer, created once, one attach
   * carried out, and one consistent customer record here. Returns the customer id.
   */
  async function assertSavedOnce(session, paymentMethod, last4 = '4242') {
    const all = await objects();
    const customers = all.filter((o) => o.object === 'customer' && o.metadata?.checkout_session === session);
    assert.equal(customers.length, 1, 'one customer for the session at Stripe');
    const customer = customers[0].id;
    const calls = await requests();
    const creates = calls.filter((c) => c.method === 'POST' && c.path === '/v1/customers' && c.idempotency_key === `checkout.${session}:customer`);
    assert.equal(creates.filter(ran).length, 1, 'one customer creation carried out');
    const attaches = calls.filter((c) => c.method === 'POST' && c.path === `/v1/payment_methods/${paymentMethod}/attach`);
    assert.equal(attaches.filter(ran).length, 1, 'one attach carried out');
    assert.ok(attaches.every((c) => c.idempotency_key === `checkout.${session}:attach`));
    assert.equal(all.find((o) => o.id === paymentMethod).customer, customer, 'the card is attached to that customer');
    const attachedEvents = (await recorded()).filter((e) => e.type === 'payment_method.attached' && e.data.object.id === paymentMethod);
    assert.equal(attachedEvents.length, 1, 'Stripe emitted one payment_method.attached');

    const record = await adminGet(worker, `/customers/${customer}`, ADMIN);
    assert.equal(record.status, 200);
    assert.equal(record.body.default_payment_method, paymentMethod);
    assert.equal(record.body.card_last4, last4);
    assert.equal(record.body.checkout_session, session);
    return customer;
  }

  /** The checkout record says complete: the success page answers from it with no Stripe call. */
  async function assertCheckoutRecorded(session, customer) {
    const before = (await requests()).length;
    const page = await success(session);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /Card saved/);
    assert.ok(!html.includes(customer), 'the page shows no customer id');
    assert.equal((await requests()).length, before, 'the success page found the recorded completion');
  }

  describe('duplicates and races', () => {
    test('50 concurrent deliveries of one checkout.session.completed: all 2xx, one customer, one attach', async () => {
      const { session, completed, paymentMethod } = await completedSetup();
      const { payload, header } = signed(completed);
      const results = await Promise.all(Array.from({ length: 50 }, () => deliver(worker, payload, { header })));
      assert.deepEqual([...new Set(results.map((r) => r.status))], [200]);
      const customer = await assertSavedOnce(session, paymentMethod);
      const event = await adminGet(worker, `/events/${completed.id}`, ADMIN);
      assert.equal(event.body.outcome, 'handled');
      assert.equal(event.body.type, 'checkout.session.completed');

      // Once recorded, a further delivery is a duplicate and calls nothing.
      const before = (await requests()).length;
      const again = await deliver(worker, payload, { header });
      assert.deepEqual(again.body, { received: true, duplicate: true });
      assert.equal((await requests()).length, before);
      await assertCheckoutRecorded(session, customer);
    });

    test('50 different event ids for the same completed session, racing the success page: one customer, one attach', async () => {
      const { session, completed, paymentMethod } = await completedSetup();
      const copies = Array.from({ length: 50 }, (_, i) => ({ ...completed, id: `${completed.id}r${i}` }));
      const [hooks, pages] = await Promise.all([
        Promise.all(copies.map((event) => deliver(worker, event, { secret: SECRET }))),
        Promise.all(Array.from({ length: 5 }, () => success(session).then(async (r) => ({ status: r.status, html: await r.text() })))),
      ]);
      assert.deepEqual([...new Set(hooks.map((r) => r.status))], [200]);
      assert.ok(hooks.every((r) => r.body.duplicate === false));
      assert.deepEqual([...new Set(pages.map((p) => p.status))], [200]);
      const customer = await assertSavedOnce(session, paymentMethod);
      for (const page of pages) assert.ok(page.html.includes('card ending in') && !page.html.includes(customer), 'every page shows the card, never the customer id');
      for (const event of [copies[0], copies[49]]) {
        assert.equal((await adminGet(worker, `/events/${event.id}`, ADMIN)).body.outcome, 'handled');
      }
      await assertCheckoutRecorded(session, customer);
    });

    test('20 concurrent POST /charges with one idempotency_key after a decline: one PaymentIntent, one recovery session', async () => {
      const setup = await completedSetup(CARD_DECLINED);
      assert.equal((await deliver(worker, setup.completed, { secret: SECRET })).status, 200);
      const customer = await assertSavedOnce(setup.session, setup.paymentMethod, '0341');
      const key = `race-${Date.now()}`;
      const body = { customer, amount: 4200, currency: 'eur', description: 'Raced order', idempotency_key: key };
      const answers = await Promise.all(Array.from({ length: 20 }, () => charge(body)));
      assert.deepEqual([...new Set(answers.map((a) => a.status))], [402]);
      const pi = answers[0].body.payment_intent;
      assert.match(pi, /^pi_/);
      assert.deepEqual([...new Set(answers.map((a) => a.body.payment_intent))], [pi]);
      assert.deepEqual([...new Set(answers.map((a) => a.body.recovery_url))], [answers[0].body.recovery_url]);

      const all = await objects();
      assert.equal(all.filter((o) => o.object === 'payment_intent' && o.customer === customer).length, 1, 'one PaymentIntent at Stripe');
      const sessions = all.filter((o) => o.object === 'checkout.session' && o.metadata?.payment_intent === pi);
      assert.equal(sessions.length, 1, 'one recovery session at Stripe');
      const calls = await requests();
      assert.equal(calls.filter((c) => c.idempotency_key === `charge:${customer}:${key}`).filter(ran).length, 1);
      assert.equal(calls.filter((c) => c.idempotency_key === `${pi}:recovery`).filter(ran).length, 1);

      const stored = (await adminGet(worker, `/charges/${pi}`, ADMIN)).body;
      assert.equal(stored.status, 'requires_payment_method');
      assert.equal(stored.paid, false);
      assert.equal(stored.recovery.checkout_session, sessions[0].id);
      assert.equal(stored.recovery.url, answers[0].body.recovery_url);
      // Notifications are at least once; every copy carries the same key for the receiver.
      const notes = sink.received.filter((n) => n.body.payload?.payment_intent === pi);
      assert.ok(notes.length >= 1);
      assert.deepEqual([...new Set(notes.map((n) => n.headers['idempotency-key']))], [`${pi}.charge.recovery`]);
    });
  });

  test('retries of a declined charge racing the paid recovery session: the charge stays recovered', async () => {
    const setup = await completedSetup(CARD_DECLINED);
    assert.equal((await deliver(worker, setup.completed, { secret: SECRET })).status, 200);
    const customer = await assertSavedOnce(setup.session, setup.paymentMethod, '0341');
    // Several charges, so that a race that one round may miss is caught.
    for (let round = 0; round < 3; round++) {
      // The declined card by name: a paid recovery makes its own card the customer's default.
      const body = { customer, amount: 3100 + round, currency: 'usd', payment_method: setup.paymentMethod, idempotency_key: `paid-race-${Date.now()}-${round}` };
      const declined = await charge(body);
      assert.equal(declined.status, 402);
      const pi = declined.body.payment_intent;
      const [, recoverySession] = declined.body.recovery_url.match(/\/c\/pay\/(cs_\w+)$/);
      const paid = await complete(recoverySession, CARD_OK);
      const completed = paid.find((e) => e.type === 'checkout.session.completed');
      // The app retries its request (same key) while Stripe delivers the completion.
      const [hook, ...retries] = await Promise.all([
        sleep(round * 4).then(() => deliver(worker, completed, { secret: SECRET })),
        ...Array.from({ length: 20 }, () => charge(body)),
      ]);
      assert.equal(hook.status, 200);
      for (const retry of retries) {
        assert.equal(retry.body.payment_intent, pi);
        assert.ok([200, 402].includes(retry.status), `retry answered ${retry.status}`);
      }
      const stored = (await adminGet(worker, `/charges/${pi}`, ADMIN)).body;
      assert.deepEqual([stored.status, stored.paid, stored.recovery.status], ['recovered', true, 'paid'], `round ${round}`);
      // A retry afterwards says it is paid.
      const after = await charge(body);
      assert.deepEqual([after.status, after.body.status], [200, 'recovered']);
    }
  });

  describe('events in any order end in the same state', () => {
    test('setup: setup_intent.succeeded and checkout.session.completed in either order', async () => {
      const states = {};
      for (const [name, order] of Object.entries({ in_order: ORDERS.in_order, reversed: ORDERS.reversed })) {
        const { session, events, paymentMethod, setupIntent } = await completedSetup();
        assert.deepEqual(events.map((e) => e.type), ['setup_intent.succeeded', 'checkout.session.completed']);
        const outcomes = {};
        for (const event of order(events)) {
          const res = await deliver(worker, event, { secret: SECRET });
          assert.equal(res.status, 200, `${name} ${event.type}`);
          outcomes[event.type] = (await adminGet(worker, `/events/${event.id}`, ADMIN)).body.outcome;
        }
        const customer = await assertSavedOnce(session, paymentMethod);
        const record = (await adminGet(worker, `/customers/${customer}`, ADMIN)).body;
        states[name] = { outcomes, customer: normalised(record, { [customer]: 'CUS', [paymentMethod]: 'PM', [session]: 'CS', [setupIntent]: 'SETI' }) };
      }
      assert.deepEqual(states.in_order.outcomes, { 'setup_intent.succeeded': 'ignored', 'checkout.session.completed': 'handled' });
      assert.equal(states.in_order.customer.card_brand, 'visa');
      assert.deepEqual(states.reversed, states.in_order);
    });

    test('declined then recovered: payment_failed, the recovery payment and its completion in order, reversed, shuffled', async () => {
      const states = {};
      for (const [name, order] of Object.entries(ORDERS)) {
        const setup = await completedSetup(CARD_DECLINED);
        assert.equal((await deliver(worker, setup.completed, { secret: SECRET })).status, 200);
        const customer = await assertSavedOnce(setup.session, setup.paymentMethod, '0341');
        const declined = await charge({ customer, amount: 1500, currency: 'usd', description: 'Ordered order', idempotency_key: `ordered-${name}-${Date.now()}` });
        assert.equal(declined.status, 402);
        const pi = declined.body.payment_intent;
        const [, recoverySession] = declined.body.recovery_url.match(/\/c\/pay\/(cs_\w+)$/);
        const paid = await complete(recoverySession, CARD_OK);
        // The story as Stripe emitted it, from the recorder and the completion.
        const story = [
          ...(await recorded()).filter((e) => e.type.startsWith('payment_intent.') && e.data.object.id === pi),
          ...paid,
        ];
        assert.deepEqual(story.map((e) => e.type), [
          'payment_intent.created', 'payment_intent.payment_failed', 'payment_intent.succeeded', 'checkout.session.completed',
        ]);
        const recoveryPi = paid[0].data.object.id;
        const outcomes = {};
        for (const event of order(story)) {
          const res = await deliver(worker, event, { secret: SECRET });
          assert.equal(res.status, 200, `${name} ${event.type}`);
          outcomes[`${event.type} ${event.data.object.id === pi ? 'declined' : 'recovery'}`] =
            (await adminGet(worker, `/events/${event.id}`, ADMIN)).body.outcome;
        }
        const record = (await adminGet(worker, `/charges/${pi}`, ADMIN)).body;
        // Times: never behind the newest event applied.
        const completedAt = paid.find((e) => e.type === 'checkout.session.completed').created;
        assert.equal(record.updated_at, Math.max(record.created_at, completedAt), `${name} updated_at`);
        states[name] = {
          outcomes,
          charge: normalised(record, {
            [pi]: 'PI', [recoveryPi]: 'RECOVERY_PI', [recoverySession]: 'RECOVERY_CS', [customer]: 'CUS',
            [setup.paymentMethod]: 'PM', [stripeBase]: 'STRIPE',
          }),
        };
      }
      const expected = states.in_order.charge;
      assert.equal(expected.status, 'recovered');
      assert.equal(expected.paid, true);
      assert.deepEqual(expected.recovery, { checkout_session: 'RECOVERY_CS', url: 'STRIPE/c/pay/RECOVERY_CS', status: 'paid', payment_intent: 'RECOVERY_PI', attempt: 1 });
      assert.equal(expected.last_error.decline_code, 'generic_decline');
      for (const name of Object.keys(ORDERS)) {
        assert.deepEqual(states[name], states.in_order, `${name} ends like in order`);
      }
    });
  });

  describe('Stripe failing during each call', () => {
    // workerd's fetch itself tries an idempotent GET again after a connection reset, how often
    // depending on its pooled connections (1 extra GET alone, more after the races above), so a
    // GET's resets last for the whole first request and are cleared once it has answered.
    const faultTimes = (call, k) => (k.kind === 'reset' && call.method === 'GET' ? 50 * k.times : k.times);

    // The setup-completion webhook's calls. The webhook policy makes 2 attempts per call, so
    // a 500, 429 or connection reset twice fails the delivery; a malformed 200 is never retried.
    const setupCalls = {
      retrieve_setup_intent: (c) => ({ method: 'GET', path: `/v1/setup_intents/${c.setupIntent}` }),
      create_customer: () => ({ method: 'POST', path: '/v1/customers' }),
      attach: (c) => ({ method: 'POST', path: `/v1/payment_methods/${c.paymentMethod}/attach` }),
    };
    const kinds = [
      { kind: '500', times: 2, status: 503, error: 'stripe_unavailable' },
      { kind: '429', times: 2, status: 503, error: 'stripe_unavailable' },
      { kind: 'malformed', times: 1, status: 502, error: 'stripe_bad_response' },
      { kind: 'reset', times: 2, status: 503, error: 'stripe_unavailable' },
    ];
    // `slow` carries the request out and answers after 7 s, past the webhook's 4 s per attempt
    // and 6 s per call; a retry meanwhile finds the key in progress (409). ~7 s each, so only
    // for the two writes.
    const slow = { kind: 'slow', times: 1, delay_ms: 7000, status: 503, error: 'stripe_unavailable' };
    const cases = [
      ...Object.keys(setupCalls).flatMap((step) => kinds.map((k) => [step, k])),
      ['create_customer', slow],
      ['attach', slow],
    ];

    for (const [step, k] of cases) {
      test(`webhook, ${k.kind} at ${step}: 5xx, nothing half done, the redelivery saves the card once`, async () => {
        const c = await completedSetup();
        await fault({ ...setupCalls[step](c), kind: k.kind, times: faultTimes(setupCalls[step](c), k), delay_ms: k.delay_ms });
        const { payload, header } = signed(c.completed);
        const started = Date.now();
        const first = await deliver(worker, payload, { header });
        await clearFaults();
        assert.equal(first.status, k.status, JSON.stringify(first.body));
        assert.ok(Date.now() - started < 9000, 'answered within Stripe’s patience');
        const event = (await adminGet(worker, `/events/${c.completed.id}`, ADMIN)).body;
        assert.deepEqual([event.outcome, event.failed_step, event.error], ['failed', step, k.error]);
        const customers = (await objects()).filter((o) => o.object === 'customer' && o.metadata?.checkout_session === c.session);
        for (const cus of customers) assert.equal((await adminGet(worker, `/customers/${cus.id}`, ADMIN)).status, 404, 'no customer record before the attach');

        if (k.kind === 'slow') {
          // Redelivered once the slow request has finished (a redelivery meanwhile is a 409, 5xx).
          const slowCall = (await requests()).find((r) => r.fault === 'slow' && r.path === setupCalls[step](c).path);
          await sleep(Math.max(0, slowCall.at + k.delay_ms + 300 - Date.now()));
        }
        const second = await deliver(worker, payload, { header });
        assert.equal(second.status, 200, JSON.stringify(second.body));
        assert.deepEqual(second.body, { received: true, duplicate: false });
        const customer = await assertSavedOnce(c.session, c.paymentMethod);
        assert.equal((await adminGet(worker, `/events/${c.completed.id}`, ADMIN)).body.outcome, 'handled');
        const third = await deliver(worker, payload, { header });
        assert.deepEqual(third.body, { received: true, duplicate: true });
        await assertCheckoutRecorded(c.session, customer);
        await assertSavedOnce(c.session, c.paymentMethod);
      });
    }

    test('webhook, one 500 at create_customer: retried within the delivery with the same key, 200', async () => {
      const c = await completedSetup();
      await fault({ method: 'POST', path: '/v1/customers', kind: '500', times: 1 });
      const res = await deliver(worker, c.completed, { secret: SECRET });
      assert.equal(res.status, 200);
      const creates = (await requests()).filter((r) => r.idempotency_key === `checkout.${c.session}:customer`);
      assert.deepEqual(creates.map((r) => r.status), [500, 200]);
      await assertSavedOnce(c.session, c.paymentMethod);
    });

    // The success page: the default policy makes 3 attempts, so 3 faults fail it. (`slow` is
    // not run here: the page's 8 s per attempt would cost ~10 s a case.)
    const pageCalls = {
      retrieve_session: (c) => ({ method: 'GET', path: `/v1/checkout/sessions/${c.session}` }),
      create_customer: () => ({ method: 'POST', path: '/v1/customers' }),
      attach: (c) => ({ method: 'POST', path: `/v1/payment_methods/${c.paymentMethod}/attach` }),
    };
    const pageKinds = [
      { kind: '500', times: 3, status: 503 },
      { kind: '429', times: 3, status: 503 },
      { kind: 'malformed', times: 1, status: 502 },
      { kind: 'reset', times: 3, status: 503 },
    ];
    for (const step of Object.keys(pageCalls)) {
      for (const k of pageKinds) {
        test(`success page, ${k.kind} at ${step}: an error page, then a reload saves the card once`, async () => {
          const c = await completedSetup();
          await fault({ ...pageCalls[step](c), kind: k.kind, times: faultTimes(pageCalls[step](c), k) });
          const first = await success(c.session);
          await clearFaults();
          assert.equal(first.status, k.status);
          const html = await first.text();
          if (k.status === 503) assert.match(html, /try again/i);
          assert.doesNotMatch(html, /Card saved/);
          const reload = await success(c.session);
          assert.equal(reload.status, 200);
          const customer = await assertSavedOnce(c.session, c.paymentMethod);
          assert.match(await reload.text(), /Card saved/);
          // The webhook arriving afterwards finds it done.
          const before = (await requests()).length;
          assert.equal((await deliver(worker, c.completed, { secret: SECRET })).status, 200);
          assert.equal((await requests()).length, before);
          await assertSavedOnce(c.session, c.paymentMethod);
        });
      }
    }

    describe('POST /charges', () => {
      let customer;
      before(async () => {
        const setup = await completedSetup(CARD_DECLINED);
        assert.equal((await deliver(worker, setup.completed, { secret: SECRET })).status, 200);
        customer = await assertSavedOnce(setup.session, setup.paymentMethod, '0341');
      });
      // Default policy for the API route: 3 attempts.
      const chargeCalls = {
        create_payment_intent: { method: 'POST', path: '/v1/payment_intents' },
        create_recovery_session: { method: 'POST', path: '/v1/checkout/sessions' },
      };
      const chargeKinds = [
        { kind: '500', times: 3, status: 503 },
        { kind: '429', times: 3, status: 503 },
        { kind: 'malformed', times: 1, status: 502 },
        { kind: 'reset', times: 3, status: 503 },
      ];
      // `slow` once, at the PaymentIntent: 9 s is past the route's 8 s per attempt, and the
      // two retries meanwhile find the key in progress (409).
      const cases = [
        ...Object.keys(chargeCalls).flatMap((step) => chargeKinds.map((k) => [step, k])),
        ['create_payment_intent', { kind: 'slow', times: 1, delay_ms: 9000, status: 503 }],
      ];
      let n = 0;
      for (const [step, k] of cases) {
        test(`${k.kind} at ${step}: 5xx, then the retry with the same key makes one PaymentIntent and one recovery session`, async () => {
          const key = `fault-${Date.now()}-${n++}`;
          const description = `Order ${key}`;
          const body = { customer, amount: 2600, currency: 'eur', description, idempotency_key: key };
          await fault({ ...chargeCalls[step], kind: k.kind, times: k.times, delay_ms: k.delay_ms });
          const first = await charge(body);
          assert.equal(first.status, k.status, JSON.stringify(first.body));
          const mine = async () => (await objects()).filter((o) => o.object === 'payment_intent' && o.description === description);
          const pis = await mine();
          if (step === 'create_recovery_session') {
            // The decline is on record, without a recovery session yet.
            assert.equal(pis.length, 1);
            const stored = await adminGet(worker, `/charges/${pis[0].id}`, ADMIN);
            assert.equal(stored.body.status, 'requires_payment_method');
            assert.equal(stored.body.recovery, null);
          } else if (k.kind === 'slow') {
            const slowCall = (await requests()).find((r) => r.fault === 'slow' && r.idempotency_key === `charge:${customer}:${key}`);
            await sleep(Math.max(0, slowCall.at + k.delay_ms + 300 - Date.now()));
          } else {
            assert.equal(pis.length, 0, 'the failed creation made nothing');
          }

          const second = await charge(body);
          assert.equal(second.status, 402, JSON.stringify(second.body));
          const pi = second.body.payment_intent;
          const third = await charge(body);
          assert.equal(third.status, 402);
          assert.equal(third.body.payment_intent, pi);
          assert.equal(third.body.recovery_url, second.body.recovery_url);

          assert.deepEqual((await mine()).map((o) => o.id), [pi], 'one PaymentIntent');
          const sessions = (await objects()).filter((o) => o.object === 'checkout.session' && o.metadata?.payment_intent === pi);
          assert.equal(sessions.length, 1, 'one recovery session');
          const calls = await requests();
          assert.equal(calls.filter((c) => c.idempotency_key === `charge:${customer}:${key}`).filter(ran).length, 1);
          assert.equal(calls.filter((c) => c.idempotency_key === `${pi}:recovery`).filter(ran).length, 1);
          const stored = (await adminGet(worker, `/charges/${pi}`, ADMIN)).body;
          assert.equal(stored.status, 'requires_payment_method');
          assert.equal(stored.recovery.checkout_session, sessions[0].id);
          assert.equal(stored.last_error.decline_code, 'generic_decline');
          const notes = sink.received.filter((x) => x.body.payload?.payment_intent === pi);
          assert.ok(notes.length >= 1, 'the customer was told');
          assert.deepEqual([...new Set(notes.map((x) => x.body.payload.recovery_url))], [second.body.recovery_url]);
        });
      }
      after(clearFaults);
    });
  });
});
