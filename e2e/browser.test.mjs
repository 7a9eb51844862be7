// A real browser through the pages: Debian's chromium (scripts/bootstrap.sh installs it)
// driven by playwright-core, which downloads no browser. On a desktop and a 375 px phone
// viewport, with the pages' CSP in force, it walks home → Checkout → success, a declined
// charge → its recovery link → paid, and the error pages, and asserts on every page what the
// user sees, no horizontal overflow, no console errors and no raw JSON.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { assertUsable as usable, launch, open as openIn, VIEWPORTS } from './browser-helpers.mjs';
import { adminPost, startStack } from './harness.mjs';

const SECRET = 'whsec_e2e_browser_7a1c';
const ADMIN = 'e2e-browser-admin-4d2e';

describe('the pages in a real browser', () => {
  let stack;
  let browser;

  before(async () => {
    stack = await startStack({ STRIPE_SECRET_KEY: 'sk_test_e2e_browser_1f', STRIPE_WEBHOOK_SECRET: SECRET, ADMIN_TOKEN: ADMIN });
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  const open = (viewport) => openIn(browser, viewport);
  const assertUsable = (tab, response, expected) => usable(stack.worker.url, tab, response, expected);

  for (const viewport of Object.keys(VIEWPORTS)) {
    test(`${viewport}: home → Checkout → card saved`, async () => {
      const tab = await open(viewport);
      try {
        const { page } = tab;
        let res = await page.goto(`${stack.worker.url}/`);
        await assertUsable(tab, res, { status: 200, title: 'Save a card for later', text: 'Nothing is charged now' });
        [res] = await Promise.all([page.waitForNavigation(), page.click('button:text-is("Save a card")')]);
        await assertUsable(tab, res, { status: 200, title: 'Checkout (setup mode)' });
        await page.selectOption('select[name=card]', '4242424242424242');
        [res] = await Promise.all([page.waitForURL(/\/success\?session_id=cs_/), page.click('button:text-is("Save card")')]);
        res = await page.reload();
        await assertUsable(tab, res, { status: 200, title: 'Card saved', text: 'visa card ending in 4242' });
        // The paid session reopened at Checkout: what became of it, no button.
        const session = new URL(page.url()).searchParams.get('session_id');
        res = await page.goto(`${stack.stripeBase}/c/pay/${session}`);
        await assertUsable(tab, res, { status: 200, title: 'Card saved' });
        assert.equal(await page.locator('button').count(), 0);
      } finally {
        await tab.close();
      }
    });

    test(`${viewport}: a declining card → charge → recovery link → paid`, async () => {
      const tab = await open(viewport);
      try {
        const { page } = tab;
        await page.goto(`${stack.worker.url}/`);
        await Promise.all([page.waitForNavigation(), page.click('button:text-is("Save a card")')]);
        await page.selectOption('select[name=card]', '4000000000000341');
        await Promise.all([page.waitForURL(/\/success\?session_id=cs_/), page.click('button:text-is("Save card")')]);
        assert.match(await page.textContent('h1'), /Card saved/);
        const session = new URL(page.url()).searchParams.get('session_id');
        const customer = (await (await fetch(`${stack.stripeBase}/_test/objects`)).json())
          .find((o) => o.object === 'customer' && o.metadata?.checkout_session === session).id;
        const charge = await adminPost(stack.worker, '/charges', ADMIN, { customer, amount: 2500, currency: 'eur', description: 'Order 12', idempotency_key: `browser-order-12-${Date.now()}` });
        assert.equal(charge.status, 402);
        const note = stack.sink.received.find((n) => n.body?.payload?.payment_intent === charge.body.payment_intent);
        assert.equal(note.body.payload.recovery_url, charge.body.recovery_url);

        let res = await page.goto(note.body.payload.recovery_url);
        await assertUsable(tab, res, { status: 200, title: 'Checkout (payment mode)', text: 'Amount: 25.00 EUR' });
        // Before paying, the success page is "not finished" and links back to this Checkout page.
        const recovery = note.body.payload.recovery_url.match(/(cs_\w+)$/)[1];
        res = await page.goto(`${stack.worker.url}/success?session_id=${recovery}`);
        await assertUsable(tab, res, { status: 409, title: 'Not finished yet' });
        [res] = await Promise.all([page.waitForNavigation(), page.click('a:text-is("Back to Checkout")')]);
        await assertUsable(tab, res, { status: 200, title: 'Checkout (payment mode)' });
        // The same declining card again: the decline on the page, not JSON.
        await page.selectOption('select[name=card]', '4000000000000341');
        [res] = await Promise.all([page.waitForNavigation(), page.click('button:text-is("Pay")')]);
        await assertUsable(tab, res, { status: 200, text: 'Your card was declined.' });
        await page.selectOption('select[name=card]', '4242424242424242');
        await Promise.all([page.waitForURL(/\/success\?session_id=cs_/), page.click('button:text-is("Pay")')]);
        res = await page.reload();
        await assertUsable(tab, res, { status: 200, title: 'Payment received', text: ['25.00 EUR', recovery] });
        res = await page.goto(note.body.payload.recovery_url);
        await assertUsable(tab, res, { status: 200, title: 'Payment complete', text: '25.00 EUR' });
        assert.equal(await page.locator('button').count(), 0);
      } finally {
        await tab.close();
      }
    });

    test(`${viewport}: error pages, never JSON`, async () => {
      const tab = await open(viewport);
      try {
        const { page } = tab;
        let res = await page.goto(`${stack.worker.url}/no/such/page`);
        await assertUsable(tab, res, { status: 404, title: 'Not here' });
        res = await page.goto(`${stack.worker.url}/create-checkout-session`);
        await assertUsable(tab, res, { status: 405, title: 'Method not allowed' });
        res = await page.goto(`${stack.worker.url}/success?session_id=cs_test_${'x'.repeat(58)}`);
        await assertUsable(tab, res, { status: 404, title: 'Unknown session' });
        // An expired session.
        const created = await fetch(`${stack.worker.url}/create-checkout-session`, {
          method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'currency=',
        });
        const expired = created.headers.get('location').match(/(cs_\w+)$/)[1];
        await fetch(`${stack.stripeBase}/_test/checkout/sessions/${expired}/expire`, { method: 'POST' });
        res = await page.goto(`${stack.worker.url}/success?session_id=${expired}`);
        await assertUsable(tab, res, { status: 409, title: 'Session expired' });
        // The home form refused: a customer field is never accepted from the public form.
        await page.goto(`${stack.worker.url}/`);
        await page.evaluate(() => {
          const field = Object.assign(document.createElement('input'), { type: 'hidden', name: 'customer', value: 'cus_VICTIM' });
          document.querySelector('form').append(field);
        });
        [res] = await Promise.all([page.waitForNavigation(), page.click('button:text-is("Save a card")')]);
        await assertUsable(tab, res, { status: 400, title: 'Invalid request' });
        const favicon = await page.request.get(`${stack.worker.url}/favicon.ico`);
        assert.equal(favicon.status(), 200);
        assert.equal(favicon.headers()['content-type'], 'image/x-icon');
      } finally {
        await tab.close();
      }
    });
  }

  test('no Stripe schema violations and no secrets in the logs', async () => {
    const { count } = await (await fetch(`${stack.stripeBase}/_test/violations`)).json();
    assert.equal(count, 0);
    assert.ok(!stack.worker.logs().includes(ADMIN));
  });
});
