// Notifications delivered at least once, under real workerd: the sink fails for a while
// (503s, then dropped connections) and recovers, or never recovers. The Cron Trigger's
// scheduled handler is driven through `wrangler dev --test-scheduled` (`/__scheduled`, at
// the real time) and Miniflare's `/cdn-cgi/local/scheduled?cron=&time=<ms>` (at a chosen
// scheduled time, so the test need not wait for the backoff).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { adminGet, deliver, makeEvent, startSink, startWorker, NOTIFY_SECRET } from './harness.mjs';

const SECRET = 'whsec_e2e_notifications_41c2';
const ADMIN = 'e2e-notifications-admin';
const CRON = '* * * * *';

function verified(user) {
  const session = {
    id: `vs_${user}`, object: 'identity.verification_session', type: 'document', status: 'verified',
    created: Math.floor(Date.now() / 1000) - 5, last_error: null, metadata: { user_id: user, created_by: 'stripe-edge-webhooks' },
  };
  return makeEvent('identity.verification_session.verified', session);
}

describe('notifications under workerd', () => {
  let worker;
  let sink;
  before(async () => {
    sink = await startSink();
    // Catch-up off: every run gives the notifications the whole budget, whatever minute the
    // test's times fall on (a run on a catch-up minute has less; tested below on its own).
    worker = await startWorker(
      { STRIPE_WEBHOOK_SECRET: SECRET, ADMIN_TOKEN: ADMIN, STRIPE_SECRET_KEY: 'sk_test_e2e_notifications', NOTIFY_URL: sink.url, NOTIFY_SIGNING_SECRET: NOTIFY_SECRET, CATCHUP_EVERY_MINUTES: '0' },
      { args: ['--test-scheduled'] },
    );
  });
  after(async () => {
    await worker?.stop();
    await sink?.close();
  });

  /** One scheduled run at `seconds` (unix): the run's "now". */
  async function runAt(seconds) {
    const res = await fetch(`${worker.url}/cdn-cgi/local/scheduled?cron=${encodeURIComponent(CRON)}&time=${seconds * 1000}`);
    assert.equal(res.status, 200, await res.text());
  }
  const pending = async () => (await adminGet(worker, '/notifications?state=pending&limit=100', ADMIN)).body.notifications;
  const record = async (id) => (await adminGet(worker, `/notifications/${id}`, ADMIN)).body;
  const arrivals = (ids) => sink.received.filter((r) => r.body && ids.includes(r.body.id));

  test('a sink down for a while: every notification of that window arrives exactly once, after the backoff', async () => {
    const users = ['n_user_a', 'n_user_b', 'n_user_c', 'n_user_d', 'n_user_e', 'n_user_f'];
    const events = users.map(verified);
    const ids = events.map((e) => `${e.id}.identity.verified`);
    sink.answerWith(503);
    for (const [i, event] of events.entries()) {
      if (i === 3) sink.refuse(true); // the second half finds the sink gone altogether
      const res = await deliver(worker, event, { secret: SECRET });
      assert.equal(res.status, 200, 'a failed notification never fails the webhook');
    }
    const first = await pending();
    assert.deepEqual(first.map((n) => n.id).sort(), [...ids].sort());
    for (const n of first) {
      assert.equal(n.state, 'pending');
      assert.equal(n.attempts.length, 1);
      assert.equal(n.next_attempt_at, n.attempts[0].at + 60, 'one minute after the first attempt');
    }
    assert.deepEqual(first.filter((n) => n.attempts[0].status === 503).length, 3);
    assert.deepEqual(first.filter((n) => n.attempts[0].error === 'network').length, 3);
    const due = Math.max(...first.map((n) => n.next_attempt_at));

    // `/__scheduled` runs at the real time, before anything is due: nothing is sent.
    const before = sink.received.length;
    const res = await fetch(`${worker.url}/__scheduled?cron=${encodeURIComponent(CRON)}`);
    assert.equal(res.status, 200);
    assert.equal(sink.received.length, before, 'not due yet');

    // Still down a minute later: tried again (four per run, then the rest), due 5 minutes on.
    await runAt(due);
    assert.equal((await pending()).filter((n) => n.attempts.length === 2).length, 4, 'bounded per run');
    await runAt(due);
    const second = await pending();
    assert.ok(second.every((n) => n.attempts.length === 2 && n.next_attempt_at === n.attempts[1].at + 300));

    // The sink recovers: nothing before the due time, then each arrives.
    sink.refuse(false);
    sink.answerWith(200);
    const next = Math.max(...second.map((n) => n.next_attempt_at));
    await runAt(next - 301);
    assert.equal(arrivals(ids).filter((r) => r.answered === 200).length, 0);
    for (let i = 0; i < 3; i++) await runAt(next + i);
    assert.deepEqual(await pending(), []);
    // Later runs and a redelivered event add nothing.
    await runAt(next + 3600);
    await runAt(next + 5 * 86400);
    assert.equal((await deliver(worker, events[0], { secret: SECRET })).status, 200);

    const delivered = arrivals(ids).filter((r) => r.answered === 200);
    const perId = Object.groupBy(delivered, (r) => r.body.id);
    assert.deepEqual(Object.keys(perId).sort(), [...ids].sort());
    for (const id of ids) assert.equal(perId[id].length, 1, `${id} arrived exactly once`);
    assert.ok(delivered.every((r) => r.verified), 'signed, with the wall clock');
    for (const id of ids) {
      const n = await record(id);
      assert.equal(n.state, 'delivered');
      assert.equal(n.attempts.length, 3);
      assert.ok(n.delivered_at >= next);
    }
    // A delivered one is not resent.
    const again = await fetch(`${worker.url}/notifications/${ids[0]}/resend`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(again.status, 200);
    assert.equal((await again.json()).resent, false);
    assert.equal(arrivals([ids[0]]).filter((r) => r.answered === 200).length, 1);
  });

  test('a sink that never recovers leaves each notification dead, with its attempts on record', async () => {
    sink.answerWith(500);
    const events = ['n_dead_a', 'n_dead_b'].map(verified);
    const ids = events.map((e) => `${e.id}.identity.verified`);
    for (const event of events) assert.equal((await deliver(worker, event, { secret: SECRET })).status, 200);
    let runs = 0;
    for (;;) {
      const mine = (await pending()).filter((n) => ids.includes(n.id));
      if (mine.length === 0) break;
      await runAt(Math.max(...mine.map((n) => n.next_attempt_at)));
      runs += 1;
      assert.ok(runs < 40, 'it ends');
    }
    const dead = (await adminGet(worker, '/notifications?state=dead', ADMIN)).body.notifications;
    assert.deepEqual(dead.map((n) => n.id).filter((id) => ids.includes(id)).sort(), [...ids].sort());
    for (const n of dead.filter((d) => ids.includes(d.id))) {
      assert.equal(n.state, 'dead');
      assert.equal(n.attempts.length, 16, 'one inline attempt and 15 retries');
      assert.ok(n.attempts.every((a) => a.status === 500 && typeof a.at === 'number'));
      assert.ok(n.dead_at - n.window_started_at <= 3 * 86400, 'within three days');
    }
    assert.equal(arrivals(ids).length, 32);

    // A resend revives one: it arrives, and leaves the dead list.
    sink.answerWith(200);
    const res = await fetch(`${worker.url}/notifications/${ids[0]}/resend`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
    const body = await res.json();
    assert.equal(res.status, 200);
    assert.equal(body.resent, true);
    assert.equal(body.notification.state, 'delivered');
    const still = (await adminGet(worker, '/notifications?state=dead', ADMIN)).body.notifications.map((n) => n.id);
    assert.ok(!still.includes(ids[0]) && still.includes(ids[1]));
  });

  test('the outbox routes are admin routes and refuse a bad query', async () => {
    assert.equal((await adminGet(worker, '/notifications?state=pending')).status, 401);
    assert.equal((await adminGet(worker, '/notifications?state=sent', ADMIN)).body.error.code, 'bad_query');
    // Without a state: every notification, newest first.
    assert.ok((await adminGet(worker, '/notifications', ADMIN)).body.notifications.length > 0);
    assert.equal((await adminGet(worker, '/notifications/evt_nope.identity.verified', ADMIN)).status, 404);
  });
});

describe("a scheduled run's budget follows from its scheduled time", () => {
  let worker;
  let sink;
  before(async () => {
    sink = await startSink();
    // Catch-up every 10 minutes, against a Stripe that refuses at once (a closed loopback port).
    worker = await startWorker(
      { STRIPE_WEBHOOK_SECRET: SECRET, ADMIN_TOKEN: ADMIN, STRIPE_SECRET_KEY: 'sk_test_e2e_budget', STRIPE_API_BASE: 'http://127.0.0.1:9', NOTIFY_URL: sink.url, NOTIFY_SIGNING_SECRET: NOTIFY_SECRET, CATCHUP_EVERY_MINUTES: '10' },
      { args: ['--test-scheduled'] },
    );
  });
  after(async () => {
    await worker?.stop();
    await sink?.close();
  });

  test('on a catch-up minute the notifications get what catch-up leaves (one), on the next minute four', async () => {
    sink.answerWith(503);
    const events = ['b_user_a', 'b_user_b', 'b_user_c', 'b_user_d', 'b_user_e'].map(verified);
    for (const event of events) assert.equal((await deliver(worker, event, { secret: SECRET })).status, 200);
    const pending = async () => (await adminGet(worker, '/notifications?state=pending&limit=100', ADMIN)).body.notifications;
    const due = Math.max(...(await pending()).map((n) => n.next_attempt_at));
    // The first minute at or after `due` that is a catch-up minute (every 10th), and the one after.
    const catchUpMinute = Math.ceil(due / 600) * 600;
    const run = async (seconds) => {
      const res = await fetch(`${worker.url}/cdn-cgi/local/scheduled?cron=${encodeURIComponent(CRON)}&time=${seconds * 1000}`);
      assert.equal(res.status, 200);
    };
    const retried = async () => (await pending()).filter((n) => n.attempts.length === 2).length;
    await run(catchUpMinute);
    assert.equal(await retried(), 1, 'catch-up is due: its bound first, one notification after it');
    await run(catchUpMinute + 60);
    assert.equal(await retried(), 5, 'no catch-up: four more');
  });
});
