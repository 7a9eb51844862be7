// Thin events end to end under real workerd (issue 26): every user flow through a thin event
// destination only, and through both kinds at once (e2e/stripe-flows and e2e/identity run again
// with E2E_DESTINATIONS=thin and =both); with both, each change is acted on once; racing thin
// events of one user, each delivered twice and all at once, end in the state Stripe holds now;
// a thin event whose related object cannot be read is answered 503 (Stripe redelivers) and
// recorded with the failed step.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { ROOT, adminGet, adminPost, addStandInEndpoint, createSetupSession, completeAtStandIn, deliver, moveIdentitySession, shuffled, startSink, startStack, stripe } from './harness.mjs';

const SECRET = 'whsec_e2e_thin_3f9a61';
const RECORDER_SECRET = 'whsec_e2e_thin_recorder_77c2';
const ADMIN = 'e2e-thin-admin-token-51d0';
const STRIPE_KEY = 'sk_test_e2e_thin_0b7e';

/** Runs e2e files in a child `node --test` with E2E_DESTINATIONS; its exit status and output. */
function runFiles(files, destinations) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--test', '--test-concurrency=1', ...files], {
      cwd: ROOT,
      // Without the parent's NODE_TEST_CONTEXT, which makes a nested `node --test` skip its files.
      env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT')), E2E_DESTINATIONS: destinations },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c) => (output += c));
    child.stderr.on('data', (c) => (output += c));
    child.on('exit', (code) => resolve({ code, output }));
  });
}

describe('every user flow through thin destinations', () => {
  for (const destinations of ['thin', 'both']) {
    test(`stripe-flows and identity pass with E2E_DESTINATIONS=${destinations}`, async () => {
      const { code, output } = await runFiles(['e2e/stripe-flows.test.mjs', 'e2e/identity.test.mjs'], destinations);
      const summary = output.split('\n').filter((l) => /^ℹ (tests|pass|fail)|^# Stripe schema violations|✖/.test(l)).join('\n');
      console.log(`# ${destinations}:\n${summary}`);
      assert.equal(code, 0, output.slice(-4000));
      assert.match(output, /^ℹ fail 0$/m);
    });
  }
});

describe('both destinations at once: each change acted on once', () => {
  let stack;
  before(async () => {
    stack = await startStack({ STRIPE_SECRET_KEY: STRIPE_KEY, STRIPE_WEBHOOK_SECRET: SECRET, ADMIN_TOKEN: ADMIN }, { destinations: 'both' });
  });
  after(() => stack?.stop());

  test('a saved card: one customer, one attach, and of each snapshot/thin pair one delivery acted', async () => {
    const { stripeBase, worker } = stack;
    const id = await createSetupSession(worker);
    await completeAtStandIn(stripeBase, id);
    const deliveries = await (await fetch(`${stripeBase}/_test/deliveries`)).json();
    const counts = await (await fetch(`${stripeBase}/_test/counts`)).json();
    assert.deepEqual([counts.customers, counts.attaches], [1, 1]);
    const thin = deliveries.filter((d) => d.type.startsWith('v1.'));
    assert.ok(thin.length >= 1, 'thin events were delivered');
    for (const d of thin) {
      const twin = (await (await fetch(`${stripeBase}/v2/core/events/${d.event_id}`, { headers: { authorization: `Bearer ${STRIPE_KEY}` } })).json()).snapshot_event;
      const pair = deliveries.filter((x) => x.event_id === twin || x.event_id === d.event_id);
      assert.equal(pair.length, 2, `${d.type}: both kinds delivered`);
      assert.deepEqual(pair.map((x) => x.status), [200, 200]);
      const acted = pair.filter((x) => JSON.parse(x.body).duplicate === false);
      assert.equal(acted.length, 1, `${d.type}: acted once (${pair.map((x) => x.body).join(' ')})`);
      const record = (await adminGet(worker, `/events/${d.event_id}`, ADMIN)).body;
      assert.equal(record.snapshot_event, twin);
      assert.equal((await adminGet(worker, `/events/${twin}`, ADMIN)).body.outcome, record.outcome);
    }
  });

  test('an event Stripe never generated: its alert is read, recorded and raised in the log line', async () => {
    const { stripeBase, worker } = stack;
    const res = await fetch(`${stripeBase}/_test/events/generation_failure`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ event_type: 'checkout.session.completed', object_id: 'cs_never_announced' }),
    });
    const { event, deliveries } = await res.json();
    assert.deepEqual(deliveries.map((d) => d.status), [200], JSON.stringify(deliveries));
    const record = (await adminGet(worker, `/events/${event.id}`, ADMIN)).body;
    assert.deepEqual([record.outcome, record.reason, record.type], ['handled', 'event_generation_failure', 'v2.core.health.event_generation_failure.resolved']);
    // It is in the event list too, under its own type.
    const listed = await adminGet(worker, '/events?type=v2.core.health.event_generation_failure.resolved&outcome=handled', ADMIN);
    assert.ok(listed.body.events.some((r) => r.id === event.id), JSON.stringify(listed.body));
    const reads = (await (await fetch(`${stripeBase}/_test/requests`)).json()).filter((r) => r.path === `/v2/core/events/${event.id}`);
    assert.equal(reads.length, 1);
    const deadline = Date.now() + 5000;
    while (!worker.logs().includes('ALERT event_generation_failure') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const line = worker.logs().split('\n').find((l) => l.includes('ALERT event_generation_failure'));
    assert.ok(line, 'the alert is in the log line');
    assert.match(line, /cs_never_announced/);
    assert.match(line, /checkout\.session\.completed/);
  });

  test('an Identity verification notifies the user once', async () => {
    const { stripeBase, worker, sink } = stack;
    const user = `user_thin_both_${Date.now()}`;
    const created = await adminPost(worker, '/identity/verification-sessions', ADMIN, { user_id: user });
    assert.equal(created.status, 201);
    await fetch(`${stripeBase}/_test/deliveries`);
    for (const status of ['processing', 'verified']) {
      await moveIdentitySession(stripeBase, created.body.id, status);
    }
    await fetch(`${stripeBase}/_test/deliveries`);
    assert.equal((await adminGet(worker, `/identity/users/${user}`, ADMIN)).body.status, 'verified');
    const mine = sink.received.filter((n) => n.body.recipient?.id === user).map((n) => n.body.kind);
    assert.deepEqual(mine, ['identity.verified']);
  });
});

describe('thin events delivered by the test', () => {
  let stack;
  before(async () => {
    // The stand-in's thin events go to a recorder; the test delivers them itself.
    stack = await startStack({ STRIPE_SECRET_KEY: STRIPE_KEY, STRIPE_WEBHOOK_SECRET: SECRET, ADMIN_TOKEN: ADMIN }, { connect: false });
    stack.thinRecorder = await startSink({ secret: RECORDER_SECRET });
    await addStandInEndpoint(stack.stripeBase, stack.thinRecorder.url, RECORDER_SECRET, 'thin');
  });
  after(async () => {
    await stack?.thinRecorder?.close();
    await stack?.stop();
  });

  const signed = (event) => {
    const payload = JSON.stringify(event);
    return { payload, header: stripe.webhooks.generateTestHeaderString({ payload, secret: SECRET }) };
  };
  const move = async (id, status, body = {}) => {
    const res = await fetch(`${stack.stripeBase}/_test/identity/verification_sessions/${id}/${status}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(res.status, 200);
  };

  test('racing thin events of one user, each twice and all at once, end in the state Stripe holds now', async () => {
    const { worker, stripeBase, thinRecorder } = stack;
    const user = `user_thin_race_${Date.now()}`;
    const created = await adminPost(worker, '/identity/verification-sessions', ADMIN, { user_id: user });
    assert.equal(created.status, 201);
    const vs = created.body.id;
    await move(vs, 'processing');
    await move(vs, 'requires_input', { code: 'document_expired', reason: 'The document is expired.' });
    await move(vs, 'processing');
    await move(vs, 'verified');
    await fetch(`${stripeBase}/_test/deliveries`);
    const events = thinRecorder.received.map((r) => r.body).filter((e) => e.related_object?.id === vs);
    assert.equal(events.length, 5, events.map((e) => e.type).join());
    const burst = shuffled(events.flatMap((e) => [signed(e), signed(e)]), 26);
    const answers = await Promise.all(burst.map(({ payload, header }) => deliver(worker, payload, { header })));
    assert.deepEqual([...new Set(answers.map((a) => a.status))], [200], JSON.stringify(answers.find((a) => a.status !== 200)?.body));
    const stripeNow = await (await fetch(`${stripeBase}/v1/identity/verification_sessions/${vs}`, { headers: { authorization: `Bearer ${STRIPE_KEY}` } })).json();
    const state = (await adminGet(worker, `/identity/users/${user}`, ADMIN)).body;
    assert.equal(stripeNow.status, 'verified');
    assert.equal(state.status, stripeNow.status, JSON.stringify(state));
    for (const e of events) {
      assert.equal((await adminGet(worker, `/events/${e.id}`, ADMIN)).body.outcome, 'handled', e.type);
    }
  });

  test('a related object that cannot be read (404, 500) is answered 503 and recorded with the failed step; a redelivery handles it', async () => {
    const { worker, stripeBase } = stack;
    const user = `user_thin_unreadable_${Date.now()}`;
    const created = await adminPost(worker, '/identity/verification-sessions', ADMIN, { user_id: user });
    const vs = created.body.id;
    await fetch(`${stripeBase}/_test/deliveries`);
    const at = new Date().toISOString();
    const thinEvent = (id, objectId) => ({
      id, object: 'v2.core.event', type: 'v1.identity.verification_session.processing', created: at, livemode: false,
      related_object: { id: objectId, type: 'identity.verification_session', url: `/v1/identity/verification_sessions/${objectId}` },
    });
    const check = async (event, what) => {
      const answer = await deliver(worker, event, { secret: SECRET });
      assert.equal(answer.status, 503, `${what}: ${JSON.stringify(answer.body)}`);
      assert.equal(answer.body.error.code, 'related_object_unreadable');
      const record = (await adminGet(worker, `/events/${event.id}`, ADMIN)).body;
      assert.deepEqual([record.outcome, record.failed_step, record.retryable], ['failed', 'read_related_object', true], what);
    };
    const unreadable = thinEvent(`evt_thin404${Date.now()}`, 'vs_doesnotexist');
    await check(unreadable, '404');
    const listed = async (outcome, type = 'v1.identity.verification_session.processing') => (await adminGet(worker, `/events?outcome=${outcome}&type=${type}&limit=100`, ADMIN)).body.events.map((r) => r.id);
    assert.ok((await listed('failed')).includes(unreadable.id), 'a failed read is listed failed');
    const failing = thinEvent(`evt_thin500${Date.now()}`, vs);
    const fault = await fetch(`${stripeBase}/_test/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: '500', path: `/v1/identity/verification_sessions/${vs}`, times: 10 }) });
    assert.equal(fault.status, 200);
    await check(failing, '500');
    await fetch(`${stripeBase}/_test/faults`, { method: 'DELETE' });
    const again = await deliver(worker, failing, { secret: SECRET });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal((await adminGet(worker, `/events/${failing.id}`, ADMIN)).body.outcome, 'handled');
    // Handled as the snapshot event it stands for (its own id, the v1 type): its row is replaced.
    assert.ok((await listed('handled', 'identity.verification_session.processing')).includes(failing.id), 'listed handled once handled');
    assert.ok(!(await listed('failed')).includes(failing.id));
  });
});

describe('catch-up from GET /v2/core/events (CATCHUP_THIN_EVENTS=true)', () => {
  let stack;
  before(async () => {
    stack = await startStack(
      { STRIPE_SECRET_KEY: STRIPE_KEY, STRIPE_WEBHOOK_SECRET: SECRET, ADMIN_TOKEN: ADMIN, CATCHUP_EVERY_MINUTES: '10', CATCHUP_SETTLE_SECONDS: '0', CATCHUP_THIN_EVENTS: 'true' },
      { destinations: 'thin', args: ['--test-scheduled'] },
    );
  });
  after(() => stack?.stop());

  test('a card saved while thin deliveries failed is saved by the thin catch-up, the minute after the v1 one', async () => {
    const { stripeBase, worker } = stack;
    const post = (path, body) => fetch(`${stripeBase}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    await post('/_test/outage', { on: true });
    const cs = await createSetupSession(worker);
    await completeAtStandIn(stripeBase, cs);
    await fetch(`${stripeBase}/_test/deliveries`);
    await post('/_test/outage', { on: false });
    const customerOf = async () => (await (await fetch(`${stripeBase}/_test/objects`)).json()).find((o) => o.object === 'customer' && o.metadata?.checkout_session === cs)?.id;
    assert.equal(await customerOf(), undefined, 'nothing saved while deliveries failed');

    // A run whose minute is 1 past a multiple of CATCHUP_EVERY_MINUTES: the thin catch-up's, not the v1 one's.
    let minute = Math.ceil(Date.now() / 60_000) + 1;
    while (minute % 10 !== 1) minute += 1;
    const res = await fetch(`${worker.url}/cdn-cgi/local/scheduled?cron=${encodeURIComponent('* * * * *')}&time=${minute * 60_000}`);
    assert.equal(res.status, 200, await res.text());
    const catchUp = (await adminGet(worker, '/catch-up', ADMIN)).body;
    assert.equal(catchUp.state, null, 'the v1 catch-up was not due');
    const run = catchUp.thin_events.state.last_run;
    assert.ok(run.handled >= 1 && run.retry_later.length === 0, JSON.stringify(run));
    assert.equal(catchUp.thin_events.state.since, minute * 60);
    const customer = await customerOf();
    assert.ok(customer, 'card saved by the catch-up');
    const record = (await adminGet(worker, `/customers/${customer}`, ADMIN)).body;
    assert.equal(record.card_last4, '4242');
    const requests = await (await fetch(`${stripeBase}/_test/requests`)).json();
    const list = requests.find((r) => r.path === '/v2/core/events');
    assert.match(list.query, /created\[gte\]=\d{4}-\d{2}-\d{2}T\d{2}%3A\d{2}%3A\d{2}Z/);
    assert.equal(list.status, 200);
  });
});
