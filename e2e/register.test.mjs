// tools/register-webhook.mjs against the local Stripe stand-in: the request it makes (url,
// every enabled_events[], the pinned api_version), the signing secret printed exactly once
// (and really the endpoint's: the stand-in's deliveries verify with it), and its refusals.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import Stripe from 'stripe';
import { createStandIn } from '../standin/server.mjs';
import { ROOT } from './harness.mjs';
import { handledEventTypes, runTool } from './tools.mjs';

const KEY = 'sk_test_e2e_register_3e9d';
const PINNED_VERSION = readFileSync(path.join(ROOT, 'wrangler.toml'), 'utf8').match(/STRIPE_API_VERSION = "([^"]+)"/)[1];
const verifier = new Stripe('sk_test_e2e_unused');

/** A loopback receiver that keeps the raw bodies and signature headers of deliveries. */
async function startReceiver() {
  const received = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      received.push({ signature: req.headers['stripe-signature'], raw: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"received":true}');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/webhook`,
    received,
    close: () => new Promise((resolve) => (server.closeAllConnections?.(), server.close(resolve))),
  };
}

describe('the webhook registration command', () => {
  let standIn;
  let stripeBase;
  before(async () => {
    standIn = createStandIn();
    stripeBase = await standIn.listen(0);
  });
  after(() => standIn?.close());
  beforeEach(() => fetch(`${stripeBase}/_test/reset`, { method: 'POST' }));

  const requests = async () => (await fetch(`${stripeBase}/_test/requests`)).json();
  const register = (args, env = { STRIPE_SECRET_KEY: KEY }) => runTool('register-webhook.mjs', args, env);

  test('it creates the endpoint with the url, every handled event and the pinned version, and prints the secret once', async () => {
    const run = await register(['--url', 'https://stripe-edge.example.workers.dev/webhook', '--api-base', stripeBase]);
    assert.equal(run.code, 0, run.stderr);

    const calls = await requests();
    assert.equal(calls.length, 1);
    const [call] = calls;
    assert.equal(call.method, 'POST');
    assert.equal(call.path, '/v1/webhook_endpoints');
    assert.equal(call.status, 200);
    assert.equal(call.authorized, true);
    assert.equal(call.stripe_version, PINNED_VERSION);
    assert.equal(call.params.url, 'https://stripe-edge.example.workers.dev/webhook');
    assert.equal(call.params.api_version, PINNED_VERSION);
    assert.deepEqual([...call.params.enabled_events].sort(), handledEventTypes());
    assert.ok(call.params.enabled_events.length >= 9);
    for (const type of ['identity.verification_session.verified', 'checkout.session.completed', 'payment_intent.payment_failed']) {
      assert.ok(call.params.enabled_events.includes(type), type);
    }

    const secrets = [...(run.stdout + run.stderr).matchAll(/whsec_\w+/g)].map((m) => m[0]);
    assert.equal(secrets.length, 1, 'the signing secret is printed exactly once');
    assert.ok(secrets[0].length > 'whsec_'.length + 20);
    assert.match(run.stdout, new RegExp(`^  STRIPE_WEBHOOK_SECRET=${secrets[0]}$`, 'm'));
    assert.match(run.stdout, /npx wrangler secret put STRIPE_WEBHOOK_SECRET/);
    assert.ok(!(run.stdout + run.stderr).includes(KEY), 'the API key is never printed');
    assert.equal(run.stderr, '');
  });

  test('the printed secret is the one Stripe signs that endpoint\'s deliveries with', async () => {
    const receiver = await startReceiver();
    try {
      const run = await register(['--url', receiver.url, '--api-base', stripeBase]);
      assert.equal(run.code, 0, run.stderr);
      const secret = run.stdout.match(/STRIPE_WEBHOOK_SECRET=(whsec_\w+)/)[1];
      // A new VerificationSession makes the stand-in emit identity.verification_session.created.
      const created = await fetch(`${stripeBase}/v1/identity/verification_sessions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/x-www-form-urlencoded', 'idempotency-key': `reg-${Date.now()}` },
        body: 'type=document',
      });
      assert.equal(created.status, 200);
      await (await fetch(`${stripeBase}/_test/deliveries`)).json();
      assert.equal(receiver.received.length, 1);
      const [delivery] = receiver.received;
      const event = verifier.webhooks.constructEvent(delivery.raw, delivery.signature, secret);
      assert.equal(event.type, 'identity.verification_session.created');
      assert.throws(() => verifier.webhooks.constructEvent(delivery.raw, delivery.signature, 'whsec_other'));
    } finally {
      await receiver.close();
    }
  });

  test('--payload thin creates an event destination for the thin types, whose printed secret signs its thin deliveries', async () => {
    const receiver = await startReceiver();
    try {
      const run = await register(['--url', receiver.url, '--payload', 'thin', '--api-base', stripeBase]);
      assert.equal(run.code, 0, run.stderr);
      const [call] = await requests();
      assert.deepEqual([call.method, call.path, call.status], ['POST', '/v2/core/event_destinations', 200]);
      assert.match(call.content_type, /application\/json/);
      assert.deepEqual(
        { ...call.params, enabled_events: [...call.params.enabled_events].sort() },
        {
          name: 'stripe-edge-webhooks', description: 'stripe-edge-webhooks (tools/register-webhook.mjs)', type: 'webhook_endpoint',
          event_payload: 'thin', enabled_events: [...handledEventTypes().map((t) => `v1.${t}`), 'v2.core.health.event_generation_failure.resolved'].sort(),
          webhook_endpoint: { url: receiver.url }, include: ['webhook_endpoint.signing_secret'],
        },
      );
      assert.match(run.stdout, /^Created event destination ed_\w+ \(thin events\)$/m);
      const secrets = [...(run.stdout + run.stderr).matchAll(/whsec_\w+/g)].map((m) => m[0]);
      assert.equal(secrets.length, 1, 'the signing secret is printed exactly once');
      assert.match(run.stdout, /npx wrangler secret put STRIPE_WEBHOOK_SECRET/);
      const created = await fetch(`${stripeBase}/v1/identity/verification_sessions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/x-www-form-urlencoded', 'idempotency-key': `reg-thin-${Date.now()}` },
        body: 'type=document',
      });
      assert.equal(created.status, 200);
      await (await fetch(`${stripeBase}/_test/deliveries`)).json();
      assert.equal(receiver.received.length, 1);
      const [delivery] = receiver.received;
      const notification = await verifier.parseEventNotificationAsync(delivery.raw, delivery.signature, secrets[0]);
      assert.equal(notification.type, 'v1.identity.verification_session.created');
      assert.equal(notification.related_object.type, 'identity.verification_session');
    } finally {
      await receiver.close();
    }
  });

  test('--payload other than snapshot or thin exits 2 before calling Stripe', async () => {
    const run = await register(['--url', 'https://x.example/webhook', '--payload', 'fat', '--api-base', stripeBase]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /--payload must be snapshot or thin/);
    assert.deepEqual(await requests(), []);
  });

  const refusals = [
    ['no --url', [], /--url is required/],
    ['a plain http URL off loopback', ['--url', 'http://stripe-edge.example.com/webhook'], /--url must be https:\/\//],
    ['a URL that is not one', ['--url', 'stripe-edge/webhook'], /--url is not an absolute URL/],
    ['an API base with a path', ['--url', 'https://x.example/webhook', '--api-base', 'https://api.stripe.com/v1'], /origin only/],
    ['a stray argument', ['--url', 'https://x.example/webhook', 'extra'], /Unexpected argument/],
  ];
  for (const [name, args, message] of refusals) {
    test(`${name} exits 2 before calling Stripe`, async () => {
      const run = await register(args.includes('--api-base') ? args : [...args, '--api-base', stripeBase]);
      assert.equal(run.code, 2, run.stdout + run.stderr);
      assert.match(run.stderr, message);
      assert.equal(run.stdout, '');
      assert.deepEqual(await requests(), []);
    });
  }

  test('a key that is not a Stripe secret key exits 2 without echoing it', async () => {
    const run = await register(['--url', 'https://x.example/webhook', '--api-base', stripeBase], { STRIPE_SECRET_KEY: 'pk_test_publishable_91c' });
    assert.equal(run.code, 2);
    assert.match(run.stderr, /not a Stripe secret key/);
    assert.ok(!run.stderr.includes('pk_test_publishable_91c'));
    assert.deepEqual(await requests(), []);
  });

  test('Stripe refusing the endpoint exits 1 with its error and prints no secret', async () => {
    await fetch(`${stripeBase}/_test/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ kind: '400', path: '/v1/webhook_endpoints' }),
    });
    const run = await register(['--url', 'https://x.example/webhook', '--api-base', stripeBase]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /Stripe refused the endpoint \(400 /);
    assert.match(run.stderr, /request req_\w+/);
    assert.doesNotMatch(run.stdout + run.stderr, /whsec_/);
    assert.ok(!(run.stdout + run.stderr).includes(KEY));
  });
});
