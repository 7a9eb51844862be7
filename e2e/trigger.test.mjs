// tools/trigger.mjs, run as an operator runs it, against the worker under real workerd: every
// handled event type is answered 2xx and recorded. Then GET /events, the page of recorded
// events, over what the triggers left.
//
// The handlers on this branch are stubs, so only "answered 2xx and recorded" is asserted here;
// each flow's outcome is asserted by that flow's own tests.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createStandIn } from '../standin/server.mjs';
import { ROOT, adminGet, startWorker } from './harness.mjs';
import { handledEventTypes, runTool } from './tools.mjs';
import { adminToken, describeRecord, recordedOutcome } from '../tools/trigger.mjs';
import { validateAnswer } from '../standin/validate.mjs';
import { thinEventTypeName } from '../tools/common.mjs';

const SECRET = 'whsec_e2e_trigger_5d0c8a';
const ADMIN = 'e2e-admin-token-trigger-19fe';
const PINNED_VERSION = readFileSync(path.join(ROOT, 'wrangler.toml'), 'utf8').match(/STRIPE_API_VERSION = "([^"]+)"/)[1];

// Every type the tool knows (the fixture directory; tests/trigger_fixtures.rs checks it equals
// HANDLED_EVENT_TYPES), and at least those the issue names.
const HANDLED = handledEventTypes();
const NAMED_IN_THE_ISSUE = [
  'identity.verification_session.created', 'identity.verification_session.processing', 'identity.verification_session.verified',
  'identity.verification_session.requires_input', 'identity.verification_session.canceled', 'identity.verification_session.redacted',
  'checkout.session.completed', 'payment_intent.succeeded', 'payment_intent.payment_failed',
];

/** `event  evt_… (type)`, `status 200`, `body   …`, `outcome …` as printed by the tool. */
function parseOutput(stdout) {
  const id = stdout.match(/^event\s+(evt_\w+) \(([\w.]+)\)$/m);
  const status = stdout.match(/^status (\d{3})$/m);
  const body = stdout.match(/^body\s+(.*)$/m);
  const outcome = stdout.match(/^outcome (.*)$/m);
  return { id: id?.[1], type: id?.[2], status: status && Number(status[1]), body: body && JSON.parse(body[1]), outcome: outcome?.[1] };
}

describe('the trigger command, offline', () => {
  test('the admin token comes from the environment, then .dev.vars; without one the outcome is not read', async () => {
    assert.equal(adminToken({ ADMIN_TOKEN: 'from-env' }, () => ({ ADMIN_TOKEN: 'from-file' })), 'from-env');
    assert.equal(adminToken({}, () => ({ ADMIN_TOKEN: 'from-file' })), 'from-file');
    assert.equal(adminToken({}, () => ({})), undefined);
    const unread = await recordedOutcome('http://127.0.0.1:9', 'evt_1', undefined);
    assert.deepEqual(unread, { text: 'not read (export ADMIN_TOKEN to see what the worker recorded)', failed: false });
    assert.deepEqual(describeRecord({ outcome: 'ignored', reason: 'not_created_by_this_deployment' }), { text: 'ignored (not_created_by_this_deployment)', failed: false });
    assert.deepEqual(
      describeRecord({ outcome: 'failed', failed_step: 'create_customer', error: 'stripe_unavailable', retryable: true }),
      { text: 'failed: Stripe redelivers, catch-up works it again (step create_customer, error stripe_unavailable)', failed: true },
    );
  });

  test('it knows every event type the issue names', () => {
    for (const type of NAMED_IN_THE_ISSUE) assert.ok(HANDLED.includes(type), type);
  });

  test('--dry-run prints a Stripe event built from the options', async () => {
    const run = await runTool('trigger.mjs', [
      'identity.verification_session.requires_input', '--dry-run', '--code', 'selfie_face_mismatch', '--reason', 'Face differs.',
      '--user', 'u_dry', '--session', 'vs_dry1', '--created', '1790000000', '--id', 'evt_dry1',
    ]);
    assert.equal(run.code, 0, run.stderr);
    const event = JSON.parse(run.stdout);
    assert.equal(event.id, 'evt_dry1');
    assert.equal(event.object, 'event');
    assert.equal(event.type, 'identity.verification_session.requires_input');
    assert.equal(event.api_version, PINNED_VERSION);
    assert.equal(event.created, 1790000000);
    assert.equal(event.livemode, false);
    const vs = event.data.object;
    assert.equal(vs.id, 'vs_dry1');
    assert.equal(vs.object, 'identity.verification_session');
    assert.equal(vs.status, 'requires_input');
    assert.equal(vs.type, 'document');
    assert.deepEqual(vs.last_error, { code: 'selfie_face_mismatch', reason: 'Face differs.' });
    assert.deepEqual(vs.metadata, { created_by: 'stripe-edge-webhooks', user_id: 'u_dry' });
    assert.ok(vs.client_secret.startsWith('vs_dry1_secret_'));
  });

  test('--thin --dry-run prints a thin event the SDK\'s v2 type accepts; snapshot-only options are refused', async () => {
    const run = await runTool('trigger.mjs', ['checkout.session.completed', '--thin', '--session', 'cs_test_thin1', '--snapshot-event', 'evt_twin1', '--created', '1790000000', '--dry-run']);
    assert.equal(run.code, 0, run.stderr);
    const event = JSON.parse(run.stdout);
    assert.deepEqual(validateAnswer(thinEventTypeName(event.type), event), { ok: true });
    assert.deepEqual(
      [event.object, event.type, event.created, event.snapshot_event, event.related_object],
      ['v2.core.event', 'v1.checkout.session.completed', '2026-09-21T14:13:20.000Z', 'evt_twin1',
        { id: 'cs_test_thin1', type: 'checkout.session', url: '/v1/checkout/sessions/cs_test_thin1' }],
    );
    const refused = await runTool('trigger.mjs', ['checkout.session.completed', '--thin', '--session', 'cs_1', '--mode', 'payment', '--dry-run']);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /--mode does not apply to a thin event/);
  });

  test('checkout and payment options shape the objects', async () => {
    const checkout = JSON.parse((await runTool('trigger.mjs', [
      'checkout.session.completed', '--dry-run', '--mode', 'payment', '--customer', 'cus_dry', '--payment-intent', 'pi_dry',
      '--amount', '4200', '--currency', 'EUR', '--session', 'cs_test_dry',
    ])).stdout).data.object;
    assert.deepEqual(
      [checkout.id, checkout.object, checkout.mode, checkout.status, checkout.customer, checkout.payment_intent, checkout.setup_intent, checkout.amount_total, checkout.currency, checkout.payment_status],
      ['cs_test_dry', 'checkout.session', 'payment', 'complete', 'cus_dry', 'pi_dry', null, 4200, 'eur', 'paid'],
    );
    assert.equal(typeof checkout.customer_details.email, 'string');
    const setup = JSON.parse((await runTool('trigger.mjs', ['checkout.session.completed', '--dry-run'])).stdout).data.object;
    assert.equal(setup.mode, 'setup');
    assert.match(setup.setup_intent, /^seti_/);
    assert.equal(setup.payment_intent, null);

    const failed = JSON.parse((await runTool('trigger.mjs', [
      'payment_intent.payment_failed', '--dry-run', '--payment-intent', 'pi_dry2', '--customer', 'cus_dry', '--decline-code', 'generic_decline',
    ])).stdout).data.object;
    assert.equal(failed.id, 'pi_dry2');
    assert.equal(failed.status, 'requires_payment_method');
    assert.equal(failed.customer, 'cus_dry');
    assert.deepEqual(
      [failed.last_payment_error.type, failed.last_payment_error.code, failed.last_payment_error.decline_code],
      ['card_error', 'card_declined', 'generic_decline'],
    );
  });

  const refusals = [
    ['an unknown type', ['customer.created'], /unknown event type "customer.created"/],
    ['no type', [], /name the event type/],
    ['an unknown option', ['payment_intent.succeeded', '--colour', 'red'], /Unknown option '--colour'/],
    ['an option of another type', ['payment_intent.succeeded', '--code', 'x'], /--code does not apply to payment_intent.succeeded/],
    ['a bad mode', ['checkout.session.completed', '--mode', 'subscription'], /--mode must be setup or payment/],
    ['an amount in setup mode', ['checkout.session.completed', '--amount', '5'], /--amount needs --mode payment/],
    ['a bad amount', ['payment_intent.succeeded', '--amount', '1.5'], /--amount must be a positive whole number/],
    ['a session id of the wrong kind', ['identity.verification_session.verified', '--session', 'cs_1'], /--session must look like vs_/],
    ['a bad event id', ['identity.verification_session.verified', '--id', 'evt_a b'], /--id must look like evt_/],
    ['a user on a redacted session', ['identity.verification_session.redacted', '--user', 'u_1'], /--user does not apply/],
    ['a plain http URL off loopback', ['payment_intent.succeeded', '--url', 'http://example.com/webhook', '--secret', SECRET], /--url must be https/],
    ['a secret that is not whsec_', ['payment_intent.succeeded', '--url', 'http://127.0.0.1:9/webhook', '--secret', 'sk_test_oops'], /does not start with whsec_/],
  ];
  for (const [name, args, message] of refusals) {
    test(`${name} exits 2 with a clear error and the known types`, async () => {
      const run = await runTool('trigger.mjs', args);
      assert.equal(run.code, 2, run.stdout + run.stderr);
      assert.match(run.stderr, message);
      for (const type of HANDLED) assert.ok(run.stderr.includes(`  ${type}\n`), type);
      assert.equal(run.stdout, '');
      assert.ok(!run.stderr.includes('sk_test_oops'));
    });
  }
});

describe('the trigger command against the worker', () => {
  let standIn;
  let worker;
  let stripeBase;
  const triggered = new Map(); // event id → type
  let failedForGood; // the id of the event the stand-in's fault made fail for good

  before(async () => {
    // Handlers that call Stripe reach the local stand-in, never the network.
    standIn = createStandIn();
    stripeBase = await standIn.listen(0);
    worker = await startWorker({
      STRIPE_WEBHOOK_SECRET: SECRET,
      ADMIN_TOKEN: ADMIN,
      STRIPE_SECRET_KEY: 'sk_test_e2e_trigger_key',
      STRIPE_API_BASE: stripeBase,
    });
  });
  after(async () => {
    await worker?.stop();
    await standIn?.close();
  });

  const trigger = (args, env = { ADMIN_TOKEN: ADMIN }) => runTool('trigger.mjs', [...args, '--url', `${worker.url}/webhook`, '--secret', SECRET], env);

  for (const type of HANDLED) {
    test(`${type} is answered 2xx and recorded`, async () => {
      const created = Math.floor(Date.now() / 1000) - 5;
      const run = await trigger([type, '--created', String(created)]);
      const out = parseOutput(run.stdout);
      // A fixture's objects are not at the stand-in: a handler that reads one from Stripe is
      // refused (404), and the tool says so and exits 1 although the answer is 200.
      assert.equal(run.code, out.outcome?.startsWith('failed') ? 1 : 0, run.stdout + run.stderr);
      assert.ok(out.status >= 200 && out.status < 300, run.stdout);
      assert.equal(out.type, type);
      assert.equal(out.body.received, true);
      assert.ok(!run.stdout.includes(SECRET) && !run.stderr.includes(SECRET), 'the secret is never printed');
      triggered.set(out.id, type);

      const stored = await adminGet(worker, `/events/${out.id}`, ADMIN);
      assert.equal(stored.status, 200);
      assert.equal(stored.body.id, out.id);
      assert.equal(stored.body.type, type);
      assert.equal(stored.body.created, created);
      assert.equal(out.outcome, describeRecord(stored.body).text, 'the tool prints the recorded outcome');
      assert.ok(out.outcome.startsWith(stored.body.outcome));
    });
  }

  test('an event recorded failed for good is answered 200, and the tool says so, with what Stripe said, and exits 1', async () => {
    const faulted = await fetch(`${stripeBase}/_test/faults`, { method: 'POST', body: JSON.stringify({ kind: '400', path: '/v1/setup_intents', times: 1 }) });
    assert.equal(faulted.status, 200);
    const run = await trigger(['checkout.session.completed', '--mode', 'setup']);
    const out = parseOutput(run.stdout);
    assert.equal(out.status, 200, run.stdout);
    assert.match(out.outcome, /^failed for good: mend the cause, then POST \/events\/\{id\}\/replay \(step retrieve_setup_intent, error stripe_invalid_request; Stripe answered 400 invalid_request_error parameter_invalid_empty, request req_\w+\)$/);
    assert.equal(run.code, 1);
    triggered.set(out.id, 'checkout.session.completed');
    failedForGood = out.id;
  });

  test('the same --id twice is a duplicate the second time', async () => {
    const id = `evt_e2e_trigger_dup${Date.now()}`;
    const first = parseOutput((await trigger(['payment_intent.succeeded', '--id', id])).stdout);
    const second = parseOutput((await trigger(['payment_intent.succeeded', '--id', id])).stdout);
    assert.deepEqual([first.status, first.body.duplicate], [200, false]);
    assert.deepEqual([second.status, second.body.duplicate], [200, true]);
    triggered.set(id, 'payment_intent.succeeded');
  });

  test('an event signed with another secret exits 1 with the 400 and is not recorded', async () => {
    const run = await runTool('trigger.mjs', ['payment_intent.succeeded', '--url', `${worker.url}/webhook`, '--secret', 'whsec_not_the_workers']);
    const out = parseOutput(run.stdout);
    assert.equal(run.code, 1);
    assert.equal(out.status, 400);
    assert.equal(out.body.error.code, 'signature_mismatch');
    assert.equal((await adminGet(worker, `/events/${out.id}`, ADMIN)).status, 404);
  });

  test('no answer (nothing listening) exits 1 and says so', async () => {
    const run = await runTool('trigger.mjs', ['payment_intent.succeeded', '--url', 'http://127.0.0.1:9/webhook', '--secret', SECRET]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /no answer from http:\/\/127\.0\.0\.1:9\/webhook/);
  });

  /** Newest first: `recorded_at` descending, then id descending (the index's order). */
  const newestFirst = (a, b) => b.recorded_at - a.recorded_at || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
  const ids = (events) => events.map((r) => r.id);
  /** Every page of `query` with `limit`, followed by its cursor. */
  async function allPages(query, limit) {
    const seen = [];
    let cursor = null;
    let pages = 0;
    do {
      const res = await adminGet(worker, `/events?limit=${limit}${query ? `&${query}` : ''}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, ADMIN);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.ok(res.body.events.length <= limit);
      seen.push(...res.body.events);
      cursor = res.body.cursor;
      pages += 1;
    } while (cursor && pages < 50);
    assert.equal(cursor, null);
    return { seen, pages };
  }

  test('GET /events lists every recorded event, newest first across pages with the cursor', async () => {
    assert.equal(triggered.size, HANDLED.length + 2);
    const all = await adminGet(worker, '/events?limit=100', ADMIN);
    assert.equal(all.status, 200);
    assert.equal(all.headers.get('cache-control'), 'no-store');
    assert.equal(all.body.cursor, null);
    const listed = new Map(all.body.events.map((r) => [r.id, r]));
    for (const [id, type] of triggered) {
      assert.equal(listed.get(id)?.type, type, id);
      assert.equal(listed.get(id).version, 1);
      assert.equal(typeof listed.get(id).outcome, 'string');
    }
    assert.deepEqual(ids(all.body.events), ids([...all.body.events].sort(newestFirst)));

    // Pages of 3 are the same list in the same order: newest first across pages, not within.
    const { seen, pages } = await allPages('', 3);
    assert.deepEqual(ids(seen), ids(all.body.events));
    assert.equal(pages, Math.ceil(listed.size / 3));

    const defaulted = await adminGet(worker, '/events', ADMIN);
    assert.equal(defaulted.status, 200);
    assert.deepEqual(ids(defaulted.body.events), ids(all.body.events).slice(0, 20));
  });

  test('GET /events filters by outcome, type and time: each finds exactly the events it names', async () => {
    const all = (await adminGet(worker, '/events?limit=100', ADMIN)).body.events;
    const expect = async (query, keep) => {
      const res = await adminGet(worker, `/events?limit=100&${query}`, ADMIN);
      assert.equal(res.status, 200, `${query}: ${JSON.stringify(res.body)}`);
      assert.deepEqual(ids(res.body.events), ids(all.filter(keep)), query);
      return res.body.events;
    };
    const forGood = await expect('outcome=failed_for_good', (r) => r.outcome === 'failed' && r.retryable === false);
    assert.ok(ids(forGood).includes(failedForGood), 'the event the fault failed is listed as failed for good');
    assert.equal(forGood.find((r) => r.id === failedForGood).stripe_error.code, 'parameter_invalid_empty');
    let counted = 0;
    for (const outcome of ['handled', 'ignored', 'failed']) {
      counted += (await expect(`outcome=${outcome}`, (r) => r.outcome === outcome)).length;
    }
    assert.equal(counted, all.length);
    for (const type of ['payment_intent.succeeded', 'checkout.session.completed']) {
      const found = await expect(`type=${type}`, (r) => r.type === type);
      assert.ok(found.length >= 1, type);
    }
    await expect('type=charge.refunded', () => false);
    await expect('outcome=failed_for_good&type=checkout.session.completed', (r) => r.outcome === 'failed' && r.retryable === false && r.type === 'checkout.session.completed');
    // A time in the middle of what was recorded: since is inclusive, until exclusive.
    const times = [...new Set(all.map((r) => r.recorded_at))].sort((a, b) => a - b);
    const middle = times[Math.floor(times.length / 2)];
    const since = await expect(`since=${middle}`, (r) => r.recorded_at >= middle);
    const until = await expect(`until=${middle}`, (r) => r.recorded_at < middle);
    assert.equal(since.length + until.length, all.length);
    await expect(`since=${times[0]}&until=${times.at(-1) + 1}`, () => true);
  });

  test('GET /events filters by customer and by user, and pages a filter with its cursor', async () => {
    const suffix = Date.now().toString(36);
    const customer = `cus_e2eq${suffix}`;
    const user = `u_e2eq_${suffix}`;
    const run = async (args) => parseOutput((await trigger(args)).stdout).id;
    const ofCustomer = [];
    for (let i = 0; i < 3; i += 1) ofCustomer.push(await run(['payment_intent.succeeded', '--customer', customer]));
    const otherCustomer = await run(['payment_intent.succeeded', '--customer', `cus_e2eqother${suffix}`]);
    const ofUser = [await run(['identity.verification_session.created', '--user', user, '--session', `vs_e2eq${suffix}`])];
    const otherUser = await run(['identity.verification_session.created', '--user', `${user}_other`, '--session', `vs_e2eqo${suffix}`]);

    const byCustomer = await adminGet(worker, `/events?customer=${customer}`, ADMIN);
    assert.equal(byCustomer.status, 200);
    assert.deepEqual(new Set(ids(byCustomer.body.events)), new Set(ofCustomer));
    assert.deepEqual(ids(byCustomer.body.events), ids([...byCustomer.body.events].sort(newestFirst)));
    assert.ok(!ids(byCustomer.body.events).includes(otherCustomer));
    const { seen, pages } = await allPages(`customer=${customer}`, 1);
    assert.deepEqual(ids(seen), ids(byCustomer.body.events));
    assert.equal(pages, 3);

    const byUser = await adminGet(worker, `/events?user=${user}`, ADMIN);
    assert.equal(byUser.status, 200);
    assert.deepEqual(ids(byUser.body.events), ofUser);
    assert.ok(!ids(byUser.body.events).includes(otherUser));
    const none = await adminGet(worker, `/events?user=u_nobody_${suffix}`, ADMIN);
    assert.deepEqual(none.body, { events: [], cursor: null });
  });

  test('an event that failed with a retry to come (answered 5xx) is listed failed, not failed for good', async () => {
    const fault = await fetch(`${stripeBase}/_test/faults`, { method: 'POST', body: JSON.stringify({ kind: '500', path: '/v1/setup_intents', times: 20 }) });
    assert.equal(fault.status, 200);
    try {
      const out = parseOutput((await trigger(['checkout.session.completed', '--mode', 'setup'])).stdout);
      assert.ok(out.status >= 500, JSON.stringify(out));
      const failed = await adminGet(worker, '/events?outcome=failed&type=checkout.session.completed&limit=1', ADMIN);
      assert.equal(failed.body.events[0]?.id, out.id, 'the newest failed one');
      assert.equal(failed.body.events[0].retryable, true);
      const forGood = await adminGet(worker, '/events?outcome=failed_for_good&limit=100', ADMIN);
      assert.ok(!ids(forGood.body.events).includes(out.id));
    } finally {
      await fetch(`${stripeBase}/_test/faults`, { method: 'DELETE' });
    }
  });

  test('a forged cursor is a 400 that never quotes it', async () => {
    const forged = Buffer.from('1700000000.evt_<script>').toString('hex');
    for (const cursor of [forged, 'not-a-cursor', Buffer.from('soon.evt_1').toString('hex')]) {
      const res = await adminGet(worker, `/events?cursor=${encodeURIComponent(cursor)}`, ADMIN);
      assert.equal(res.status, 400, cursor);
      assert.equal(res.body.error.code, 'bad_query');
      assert.match(res.body.error.message, /`cursor` is not a cursor returned by this route/);
      assert.ok(!JSON.stringify(res.body).includes(cursor));
    }
  });

  const badQueries = [
    ['limit=0', /`limit`/],
    ['limit=101', /`limit`/],
    ['limit=ten', /`limit`/],
    ['limt=5', /unknown parameter; the known ones are `outcome`, `type`, `customer`, `user`, `since`, `until`, `limit` and `cursor`/],
    ['outcome=done', /`outcome`/],
    ['type=Not%20A%20Type', /`type`/],
    ['customer=cust_1', /`customer`/],
    ['user=a%20b', /`user`/],
    ['since=yesterday', /`since`/],
    ['since=20&until=10', /`since` must be before `until`/],
    ['cursor=%3Cnot%20a%20cursor%3E', /`cursor`/],
  ];
  for (const [query, message] of badQueries) {
    test(`GET /events?${query} is a 400 bad_query`, async () => {
      const res = await adminGet(worker, `/events?${query}`, ADMIN);
      assert.equal(res.status, 400);
      assert.equal(res.body.error.code, 'bad_query');
      assert.match(res.body.error.message, message);
    });
  }

  test('the request log lines carry ids and outcomes, never a secret or personal data', async () => {
    const email = 'jane.doe@example.com';
    await adminGet(worker, `/identity/users/${encodeURIComponent(email)}`, ADMIN);
    await adminGet(worker, `/nope/${encodeURIComponent(email)}?token=${ADMIN}`, ADMIN);
    const lines = (await worker.logged(/"path":"\/\*\/\*","status":404/))
      .split('\n')
      .map((line) => line.slice(line.indexOf('{')))
      .filter((line) => line.startsWith('{"method"'))
      .map((line) => JSON.parse(line));
    const webhookLines = lines.filter((l) => l.path === '/webhook' && l.status === 200);
    assert.ok(webhookLines.length >= HANDLED.length, `${lines.length} lines`);
    for (const [id, type] of triggered) {
      const line = webhookLines.find((l) => l.event_id === id);
      assert.equal(line?.event_type, type, id);
      assert.equal(typeof line.outcome, 'string');
      assert.equal(typeof line.duration_ms, 'number');
    }
    assert.ok(lines.some((l) => l.path === '/identity/users/*'));
    assert.ok(lines.some((l) => l.path === '/*/*' && l.status === 404));
    assert.ok(lines.some((l) => l.path === '/events' && l.status === 400 && l.error === 'bad_query'));
    const text = JSON.stringify(lines);
    for (const leak of [SECRET, ADMIN, 'sk_test_e2e_trigger_key', 'jane', 'example.com', 'client_secret', '_secret_']) {
      assert.ok(!text.includes(leak), `a log line contains ${leak}`);
    }
  });

  test('GET /events needs the admin token', async () => {
    assert.equal((await adminGet(worker, '/events')).status, 401);
    assert.equal((await adminGet(worker, '/events', 'wrong-token')).status, 401);
    const post = await fetch(`${worker.url}/events`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(post.status, 405);
  });

  test('--thin sends the thin event of a type; the worker reads its object from the stand-in and records it', async () => {
    const made = await fetch(`${stripeBase}/v1/identity/verification_sessions`, {
      method: 'POST',
      headers: { authorization: 'Bearer sk_test_e2e_trigger_key', 'content-type': 'application/x-www-form-urlencoded', 'idempotency-key': `trigger-thin-${Date.now()}` },
      body: 'type=document&metadata[user_id]=u_trigger_thin',
    });
    const vs = (await made.json()).id;
    const run = await trigger(['identity.verification_session.created', '--thin', '--session', vs]);
    const out = parseOutput(run.stdout);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.equal(out.type, 'v1.identity.verification_session.created');
    const stored = (await adminGet(worker, `/events/${out.id}`, ADMIN)).body;
    // Not made by this deployment (no created_by marker): read, decided and recorded ignored.
    assert.deepEqual([stored.outcome, stored.reason], ['ignored', 'not_created_by_this_deployment']);
    const reads = (await (await fetch(`${stripeBase}/_test/requests`)).json()).filter((r) => r.path === `/v1/identity/verification_sessions/${vs}`);
    assert.deepEqual(reads.map((r) => r.method), ['GET'], 'one read of the related object');
    const missing = parseOutput((await trigger(['identity.verification_session.created', '--thin', '--session', 'vs_notatthestandin'])).stdout);
    assert.deepEqual([missing.status, missing.body.error.code], [503, 'related_object_unreadable']);
  });
});
