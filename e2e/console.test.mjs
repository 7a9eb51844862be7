// The admin console at /admin under real workerd. Over HTTP: the session cookie (its flags, a
// tampered one, one past its expiry, one made under another admin token), no page without a
// session, CSRF and cross-site POSTs refused. In a real browser (desktop and a 375 px phone,
// the CSP in force): sign in, find an event the stand-in made fail for good by filter, preview
// its replay, replay it and see it handled, resend a dead notification, sign out.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { assertUsable as usable, launch, open as openIn, VIEWPORTS } from './browser-helpers.mjs';
import { adminGet, completeAtStandIn, createSetupSession, deliver, makeEvent, startStack } from './harness.mjs';

const SECRET = 'whsec_e2e_console_5b1d';
const ADMIN = 'e2e-console-admin-8c3f';
const CRON = '* * * * *';

/** A session cookie as the worker signs one (src/console.rs), under `token`, expiring at `expires`. */
function sessionCookie(token, expires, nonce = 'ab'.repeat(16)) {
  const key = createHmac('sha256', token).update('admin console session v1').digest();
  const tag = createHmac('sha256', key).update(`s.${expires}.${nonce}`).digest('hex');
  return `admin_session=${expires}.${nonce}.${tag}`;
}

function verified(user) {
  const session = {
    id: `vs_${user}`, object: 'identity.verification_session', type: 'document', status: 'verified',
    created: Math.floor(Date.now() / 1000) - 5, last_error: null, metadata: { user_id: user, created_by: 'stripe-edge-webhooks' },
  };
  return makeEvent('identity.verification_session.verified', session);
}

describe('the admin console', () => {
  let stack;
  let browser;
  const failed = {}; // viewport → the id of an event recorded failed for good
  const dead = {}; // viewport → the id of a dead notification
  const url = (path) => `${stack.worker.url}${path}`;
  const now = () => Math.floor(Date.now() / 1000);

  before(async () => {
    stack = await startStack(
      { STRIPE_SECRET_KEY: 'sk_test_e2e_console_2a', STRIPE_WEBHOOK_SECRET: SECRET, ADMIN_TOKEN: ADMIN, CATCHUP_EVERY_MINUTES: '0' },
      { args: ['--test-scheduled'] },
    );
    browser = await launch();
    for (const viewport of Object.keys(VIEWPORTS)) {
      // Stripe refuses the worker's next SetupIntent read once: the completion fails for good.
      await fetch(`${stack.stripeBase}/_test/faults`, { method: 'POST', body: JSON.stringify({ kind: '400', path: '/v1/setup_intents', times: 1 }) });
      const events = await completeAtStandIn(stack.stripeBase, await createSetupSession(stack.worker));
      failed[viewport] = events.find((e) => e.type === 'checkout.session.completed').id;
      const record = await adminGet(stack.worker, `/events/${failed[viewport]}`, ADMIN);
      assert.deepEqual([record.body.outcome, record.body.retryable], ['failed', false], JSON.stringify(record.body));
    }
    // Notifications the sink never takes, until each is dead (the retry schedule's runs at
    // their due times, as e2e/notifications.test.mjs drives them).
    stack.sink.answerWith(500);
    for (const viewport of Object.keys(VIEWPORTS)) {
      const event = verified(`console_${viewport}`);
      assert.equal((await deliver(stack.worker, event, { secret: SECRET })).status, 200);
      dead[viewport] = `${event.id}.identity.verified`;
    }
    for (let runs = 0; ; runs += 1) {
      const pending = (await adminGet(stack.worker, '/notifications?state=pending&limit=100', ADMIN)).body.notifications
        .filter((n) => Object.values(dead).includes(n.id));
      if (pending.length === 0) break;
      assert.ok(runs < 40, 'the retries end');
      const at = Math.max(...pending.map((n) => n.next_attempt_at));
      await fetch(url(`/cdn-cgi/local/scheduled?cron=${encodeURIComponent(CRON)}&time=${at * 1000}`));
    }
    stack.sink.answerWith(200);
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  /** A form POST as a browser on the console's own page sends it. */
  const post = (path, { cookie, body = '', site = 'same-origin' } = {}) => fetch(url(path), {
    method: 'POST', redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': site, origin: stack.worker.url, ...(cookie ? { cookie } : {}) },
    body,
  });
  const get = (path, cookie) => fetch(url(path), { redirect: 'manual', headers: cookie ? { cookie } : {} });

  async function signIn() {
    const res = await post('/admin/sign-in', { body: `token=${ADMIN}` });
    assert.equal(res.status, 303);
    return res.headers.get('set-cookie').split(';')[0];
  }

  test('sign-in gives an HttpOnly, SameSite=Strict cookie for /admin with an expiry; a wrong token is 401', async () => {
    const wrong = await post('/admin/sign-in', { body: 'token=not-the-token' });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get('set-cookie'), null);
    assert.match(await wrong.text(), /That is not the admin token/);
    const res = await post('/admin/sign-in', { body: `token=${ADMIN}` });
    assert.equal(res.status, 303);
    assert.equal(res.headers.get('location'), '/admin');
    const cookie = res.headers.get('set-cookie');
    assert.match(cookie, /^admin_session=\d+\.[0-9a-f]{32}\.[0-9a-f]{64}; Path=\/admin; Max-Age=28800; HttpOnly; SameSite=Strict$/);
    // Loopback with LOCAL_DEV=true is the one case without Secure (the native test covers the rest).
    assert.ok(!/Secure/.test(cookie));
    const overview = await get('/admin', cookie.split(';')[0]);
    assert.equal(overview.status, 200);
    assert.match(overview.headers.get('content-security-policy'), /default-src 'none'/);
  });

  test('nothing works without a session: GETs go to sign-in, POSTs are 401', async () => {
    for (const path of ['/admin', '/admin/events', `/admin/events/${failed.desktop}`, `/admin/events/${failed.desktop}/replay`, '/admin/notifications', '/admin/users?id=x']) {
      const res = await get(path);
      assert.equal(res.status, 303, path);
      assert.equal(res.headers.get('location'), '/admin/sign-in', path);
    }
    for (const path of [`/admin/events/${failed.desktop}/replay`, `/admin/notifications/${dead.desktop}/resend`, '/admin/sign-out']) {
      assert.equal((await post(path, { body: 'csrf=x' })).status, 401, path);
    }
    // The JSON admin routes still want the bearer token, whatever cookie comes along.
    const cookie = await signIn();
    assert.equal((await get(`/events/${failed.desktop}`, cookie)).status, 401);
    const record = await adminGet(stack.worker, `/events/${failed.desktop}`, ADMIN);
    assert.equal(record.body.outcome, 'failed', 'nothing was replayed');
  });

  test('a tampered cookie, one past its expiry, and one made under another admin token open nothing', async () => {
    const later = now() + 600;
    // The test signs as the worker does: this one opens the console, so the refusals below are
    // refusals of what was changed, not of the test's signing.
    assert.equal((await get('/admin', sessionCookie(ADMIN, later))).status, 200);
    const refused = [
      sessionCookie(ADMIN, now() - 1), // expired
      sessionCookie('a-rotated-admin-token', later), // the token changed since it was made
      sessionCookie(ADMIN, later).replace(/^admin_session=\d+/, `admin_session=${later + 86400}`), // expiry pushed out, same MAC
      ((c) => c.slice(0, -1) + (c.endsWith('0') ? '1' : '0'))(sessionCookie(ADMIN, later)), // MAC altered
      'admin_session=garbage',
    ];
    for (const cookie of refused) {
      const res = await get('/admin', cookie);
      assert.equal(res.status, 303, cookie);
      assert.equal(res.headers.get('location'), '/admin/sign-in');
    }
  });

  test('a POST without its session\'s CSRF token, or from another site, is refused and does nothing', async () => {
    const cookie = await signIn();
    const page = await (await get(`/admin/events/${failed.desktop}/replay`, cookie)).text();
    const csrf = page.match(/name="csrf" value="([0-9a-f]+)"/)[1];
    const other = await (await get('/admin', await signIn())).text();
    const otherCsrf = other.match(/name="csrf" value="([0-9a-f]+)"/)[1];
    assert.notEqual(otherCsrf, csrf);
    for (const body of ['', 'csrf=', `csrf=${otherCsrf}`]) {
      assert.equal((await post(`/admin/events/${failed.desktop}/replay`, { cookie, body })).status, 403, body);
    }
    for (const site of ['cross-site', 'same-site']) {
      assert.equal((await post(`/admin/events/${failed.desktop}/replay`, { cookie, body: `csrf=${csrf}`, site })).status, 403, site);
    }
    const sneaky = await fetch(url(`/admin/events/${failed.desktop}/replay`), {
      method: 'POST', redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example', cookie },
      body: `csrf=${csrf}`,
    });
    assert.equal(sneaky.status, 403);
    const record = await adminGet(stack.worker, `/events/${failed.desktop}`, ADMIN);
    assert.equal(record.body.outcome, 'failed', 'nothing was replayed');
  });

  for (const viewport of Object.keys(VIEWPORTS)) {
    test(`${viewport}: sign in, find the failed event by filter, preview and replay it, resend a dead notification`, async () => {
      const tab = await openIn(browser, viewport);
      const assertUsable = (response, expected) => usable(stack.worker.url, tab, response, expected);
      const click = async (selector) => (await Promise.all([tab.page.waitForNavigation(), tab.page.click(selector)]))[0];
      try {
        const { page } = tab;
        let res = await page.goto(url('/admin'));
        assert.equal(new URL(page.url()).pathname, '/admin/sign-in');
        await assertUsable(res, { status: 200, title: 'Admin console' });
        await page.fill('input[name=token]', 'wrong-token');
        res = await click('button:text-is("Sign in")');
        await assertUsable(res, { status: 401, title: 'Admin console', text: 'That is not the admin token' });
        await page.fill('input[name=token]', ADMIN);
        res = await click('button:text-is("Sign in")');
        await assertUsable(res, { status: 200, title: 'Overview', text: ['Last 24 hours', 'failed for good: ', 'dead: '] });

        res = await click('a:text-is("Events")');
        await assertUsable(res, { status: 200, title: 'Events' });
        await page.selectOption('select[name=outcome]', 'failed_for_good');
        await page.fill('input[name=type]', 'checkout.session.completed');
        res = await click('button:text-is("Filter")');
        await assertUsable(res, { status: 200, title: 'Events', text: failed[viewport] });
        assert.match(page.url(), /[?]outcome=failed_for_good&type=checkout.session.completed&/);
        res = await click(`a:text-is("${failed[viewport]}")`);
        await assertUsable(res, { status: 200, title: 'Event', text: ['failed for good', 'retrieve_setup_intent', 'parameter_invalid_empty'] });

        res = await click('a:text-is("Preview a replay")');
        await assertUsable(res, { status: 200, title: 'Replay preview', text: ['Would send', '/v1/customers', 'the preview stops there', `/v1/events/${failed[viewport]}`] });
        const before = await adminGet(stack.worker, `/events/${failed[viewport]}`, ADMIN);
        assert.equal(before.body.outcome, 'failed', 'the preview carried nothing out');
        res = await click('button:text-is("Replay for real")');
        await assertUsable(res, { status: 200, title: 'Replayed', text: ['handled', 'processed'] });
        res = await click('a:text-is("Back")');
        await assertUsable(res, { status: 200, title: 'Event', text: 'handled' });
        assert.equal(await page.locator('a:text-is("Preview a replay")').count(), 0);

        res = await click('a:text-is("Notifications")');
        await assertUsable(res, { status: 200, title: 'Notifications' });
        res = await click('a:text-is("Dead")');
        await assertUsable(res, { status: 200, title: 'Notifications', text: dead[viewport] });
        res = await click(`a:text-is("${dead[viewport]}")`);
        await assertUsable(res, { status: 200, title: 'Notification', text: ['dead', 'identity.verified'] });
        res = await click('button:text-is("Resend")');
        await assertUsable(res, { status: 200, title: 'Resent', text: 'delivered' });
        res = await click('a:text-is("Back")');
        await assertUsable(res, { status: 200, title: 'Notifications' });
        assert.match(page.url(), /state=dead$/);
        assert.ok(!(await page.textContent('body')).includes(dead[viewport]), 'no longer dead');

        // The users' index, filtered, and one user with their sessions.
        res = await click('a:text-is("Users")');
        await assertUsable(res, { status: 200, title: 'Identity users' });
        await page.fill('input[name=status]', 'verified');
        res = await click('button:text-is("Filter")');
        await assertUsable(res, { status: 200, title: 'Identity users', text: `console_${viewport}` });
        res = await click(`a:text-is("console_${viewport}")`);
        await assertUsable(res, { status: 200, title: 'Identity users', text: ['verified', `vs_console_${viewport}`] });
        res = await click('a:text-is("Charges")');
        await assertUsable(res, { status: 200, title: 'Charges' });
        res = await page.goto(url('/admin/charges?id=pi_unknown'));
        await assertUsable(res, { status: 200, title: 'Charges', text: 'Nothing is recorded under this id.' });

        res = await click('button:text-is("Sign out")');
        await assertUsable(res, { status: 200, title: 'Admin console' });
        res = await page.goto(url('/admin'));
        assert.equal(new URL(page.url()).pathname, '/admin/sign-in', 'signed out');
      } finally {
        await tab.close();
      }
    });
  }

  test('the replayed events are handled, the resent notifications delivered, and no secret is logged', async () => {
    for (const id of Object.values(failed)) assert.equal((await adminGet(stack.worker, `/events/${id}`, ADMIN)).body.outcome, 'handled');
    for (const id of Object.values(dead)) assert.equal((await adminGet(stack.worker, `/notifications/${id}`, ADMIN)).body.state, 'delivered');
    assert.ok(!stack.worker.logs().includes(ADMIN));
    const { count } = await (await fetch(`${stack.stripeBase}/_test/violations`)).json();
    assert.equal(count, 0);
  });
});
