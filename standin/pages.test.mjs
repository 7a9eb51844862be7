// The stand-in's pages as a browser uses them: a payment-mode Checkout page lists what is paid
// for (the recovery session's description, as Stripe's Checkout shows the product name), and
// the hosted Identity page has buttons that move the session and return to the app.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createStandIn } from './server.mjs';

let standIn;
let base;
before(async () => {
  standIn = createStandIn();
  base = await standIn.listen(0);
});
after(() => standIn.close());

async function create(route, params) {
  const res = await fetch(`${base}${route}`, {
    method: 'POST',
    headers: { authorization: 'Bearer sk_test_pages', 'stripe-version': '2026-10-28.endive', 'content-type': 'application/x-www-form-urlencoded', 'idempotency-key': `k-${Math.random()}` },
    body: new URLSearchParams(params).toString(),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return res.json();
}

test("a payment-mode Checkout page shows each line item's name and amount", async () => {
  const session = await create('/v1/checkout/sessions', {
    mode: 'payment',
    'line_items[0][price_data][currency]': 'usd',
    'line_items[0][price_data][unit_amount]': '2500',
    'line_items[0][price_data][product_data][name]': 'Order <2>',
    'line_items[0][quantity]': '1',
    success_url: 'https://app.example/success?session_id={CHECKOUT_SESSION_ID}',
  });
  const page = await (await fetch(session.url)).text();
  assert.match(page, /<p>Order &#60;2&#62;: 25\.00 USD<\/p>/);
});

test('the hosted Identity page has a button per outcome; pressing one moves the session and returns to the app', async () => {
  const withReturn = await create('/v1/identity/verification_sessions', { type: 'document', return_url: 'https://app.example/verified' });
  const page = await (await fetch(withReturn.url)).text();
  for (const status of ['verified', 'processing', 'requires_input', 'canceled']) {
    assert.ok(page.includes(`action="/_test/identity/verification_sessions/${withReturn.id}/${status}"`), `no ${status} button:\n${page}`);
  }
  assert.match(page, /name="code" value="document_expired"/);
  const pressed = await fetch(`${base}/_test/identity/verification_sessions/${withReturn.id}/requires_input`, {
    method: 'POST', redirect: 'manual', headers: { accept: 'text/html', 'content-type': 'application/x-www-form-urlencoded' }, body: 'code=document_expired&reason=The+document+is+expired.',
  });
  assert.equal(pressed.status, 303);
  assert.equal(pressed.headers.get('location'), 'https://app.example/verified');
  const after = await (await fetch(withReturn.url)).text();
  assert.match(after, /<strong>requires_input<\/strong> \(document_expired\)/);

  const noReturn = await create('/v1/identity/verification_sessions', { type: 'document' });
  const verified = await fetch(`${base}/_test/identity/verification_sessions/${noReturn.id}/verified`, { method: 'POST', headers: { accept: 'text/html' } });
  assert.equal(verified.status, 200);
  const shown = await verified.text();
  assert.match(shown, /<strong>verified<\/strong>/);
  assert.match(shown, /no longer open/);
});
