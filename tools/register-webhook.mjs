#!/usr/bin/env node
// Registers the worker's /webhook with Stripe through the official SDK, as one of two kinds of
// destination:
// - snapshot (the default): a webhook endpoint, POST /v1/webhook_endpoints with the URL, every
//   event type the service handles (tools/fixtures/events; tests/trigger_fixtures.rs checks
//   the list against HANDLED_EVENT_TYPES) and the API version pinned in wrangler.toml;
// - thin (--payload thin): an event destination, POST /v2/core/event_destinations (JSON) with
//   `event_payload: thin`, the thin type of each handled one (`v1.` + the type), the URL and
//   `include: ["webhook_endpoint.signing_secret"]`: the secret is returned only in that answer
//   (V2/Core/EventDestinations.d.ts).
// Prints the signing secret exactly once, with the command that hands it to the worker.
//
//   node tools/register-webhook.mjs --url https://<worker>/webhook [--payload snapshot|thin] [--api-base URL]
//
// The API key comes from STRIPE_SECRET_KEY in the environment, else from .dev.vars; the API
// base from --api-base, else STRIPE_API_BASE from the same place as the key, else
// https://api.stripe.com. The key is never printed. Exit status: 0 created, 1 Stripe or the
// network failed, 2 bad input.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Stripe from 'stripe';

import { UsageError, checkedUrl, handledEventTypes, handledThinEventTypes, pinnedApiVersion, readDevVars } from './common.mjs';

const USAGE = `usage: node tools/register-webhook.mjs --url https://<worker>/webhook [--payload snapshot|thin] [--api-base URL]

Creates a Stripe destination for the URL with every event type the service handles, and prints
its signing secret once: a webhook endpoint at the API version pinned in wrangler.toml
(snapshot events, the default), or an event destination for thin events (--payload thin).

  --url URL        the worker's webhook URL: https, or http to 127.0.0.1/localhost/[::1]
  --payload KIND   snapshot (a webhook endpoint) or thin (an event destination); default snapshot
  --api-base URL   the Stripe API origin (default: STRIPE_API_BASE, else https://api.stripe.com)
  --help           this text

The API key is read from STRIPE_SECRET_KEY in the environment, else from .dev.vars.
`;

/** Where the key and API base come from: the environment first, then .dev.vars. */
export function settings(values, env = process.env, devVars = readDevVars) {
  if (!values.url) throw new UsageError('--url is required (the worker URL ending in /webhook)');
  const url = checkedUrl(values.url, '--url');
  if (url.username || url.password) throw new UsageError('--url must not carry credentials');

  let key = env.STRIPE_SECRET_KEY;
  let apiBase = env.STRIPE_API_BASE;
  let source = 'the environment';
  if (!key) {
    const file = devVars();
    key = file.STRIPE_SECRET_KEY;
    apiBase = env.STRIPE_API_BASE ?? file.STRIPE_API_BASE;
    source = '.dev.vars';
  }
  if (!key) throw new UsageError('no API key: set STRIPE_SECRET_KEY in the environment (or in .dev.vars)');
  if (!/^(sk|rk)_(test|live)_[A-Za-z0-9_]+$/.test(key)) {
    throw new UsageError(`STRIPE_SECRET_KEY from ${source} is not a Stripe secret key (sk_test_…, sk_live_…, rk_…)`);
  }
  const base = checkedUrl(values['api-base'] ?? apiBase ?? 'https://api.stripe.com', '--api-base / STRIPE_API_BASE');
  if ((base.pathname !== '/' && base.pathname !== '') || base.search || base.hash || base.username) {
    throw new UsageError('--api-base / STRIPE_API_BASE must be an origin only, like https://api.stripe.com');
  }
  const payload = values.payload ?? 'snapshot';
  if (!['snapshot', 'thin'].includes(payload)) throw new UsageError('--payload must be snapshot or thin');
  return { url: url.href, key, base, payload };
}

/** The parameters of POST /v1/webhook_endpoints. */
export function endpointParams(url) {
  return {
    url,
    enabled_events: handledEventTypes(),
    api_version: pinnedApiVersion(),
    description: 'stripe-edge-webhooks (tools/register-webhook.mjs)',
  };
}

/** Stripe's alert that it failed to generate an event (docs.stripe.com/webhooks/handle-irrecoverable-events). */
export const EVENT_GENERATION_FAILURE_RESOLVED = 'v2.core.health.event_generation_failure.resolved';

/** The body of POST /v2/core/event_destinations for thin events. */
export function destinationParams(url) {
  return {
    name: 'stripe-edge-webhooks',
    description: 'stripe-edge-webhooks (tools/register-webhook.mjs)',
    type: 'webhook_endpoint',
    event_payload: 'thin',
    // And the alert of an event Stripe never generated (public preview; not in the SDK's types).
    enabled_events: [...handledThinEventTypes(), EVENT_GENERATION_FAILURE_RESOLVED],
    webhook_endpoint: { url },
    include: ['webhook_endpoint.signing_secret'],
  };
}

/** Creates the destination; what to print about it, its secret last. */
async function create(stripe, url, payload) {
  if (payload === 'thin') {
    const destination = await stripe.v2.core.eventDestinations.create(destinationParams(url));
    return {
      id: destination.id,
      secret: destination.webhook_endpoint?.signing_secret,
      lines: [
        `Created event destination ${destination.id} (thin events)`,
        `  url:         ${destination.webhook_endpoint?.url ?? url}`,
        `  events (${destination.enabled_events.length}): ${destination.enabled_events.join(', ')}`,
      ],
    };
  }
  const params = endpointParams(url);
  const endpoint = await stripe.webhookEndpoints.create(params);
  return {
    id: endpoint.id,
    secret: endpoint.secret,
    lines: [
      `Created webhook endpoint ${endpoint.id}`,
      `  url:         ${endpoint.url}`,
      `  api_version: ${endpoint.api_version ?? params.api_version}`,
      `  events (${endpoint.enabled_events.length}): ${endpoint.enabled_events.join(', ')}`,
    ],
  };
}

async function main(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { url: { type: 'string' }, payload: { type: 'string' }, 'api-base': { type: 'string' }, help: { type: 'boolean' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new UsageError(e.message.replace(/\. To specify.*$/s, ''));
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const { url, key, base, payload } = settings(values);
  const stripe = new Stripe(key, {
    apiVersion: pinnedApiVersion(),
    host: base.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: base.port || (base.protocol === 'https:' ? 443 : 80),
    protocol: base.protocol.slice(0, -1),
    // The SDK adds an Idempotency-Key to POSTs it may retry, so a retry cannot make two endpoints.
    maxNetworkRetries: 2,
    telemetry: false,
  });

  let made;
  try {
    made = await create(stripe, url, payload);
  } catch (e) {
    const where = `${base.origin}`;
    if (e.type === 'StripeConnectionError') {
      process.stderr.write(`register-webhook: could not reach the Stripe API at ${where}: ${e.message}\n`);
    } else {
      const what = [e.statusCode, e.rawType ?? e.type, e.code].filter(Boolean).join(' ');
      const request = e.requestId ? ` (request ${e.requestId})` : '';
      process.stderr.write(`register-webhook: Stripe refused the ${payload === 'thin' ? 'event destination' : 'endpoint'} (${what}): ${e.message}${request}\n`);
    }
    return 1;
  }
  if (typeof made.secret !== 'string' || !made.secret.startsWith('whsec_')) {
    process.stderr.write(`register-webhook: ${made.id} was created but Stripe returned no signing secret; reveal it in the dashboard\n`);
    return 1;
  }

  process.stdout.write(
    [
      ...made.lines,
      '',
      'Its signing secret, shown this once (as the .dev.vars line for local use):',
      '',
      `  STRIPE_WEBHOOK_SECRET=${made.secret}`,
      '',
      'Next step: give the secret (the part after "=") to the deployed worker:',
      '',
      '  npx wrangler secret put STRIPE_WEBHOOK_SECRET            # add --env staging|production for an environment',
      '',
      'While rolling from an older endpoint secret, enter "<new secret>,<old secret>" instead,',
      'and remove the old one once Stripe no longer signs with it. With both a snapshot and a',
      'thin destination (while moving from one to the other), enter both secrets the same way.',
      '',
    ].join('\n'),
  );
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      if (e instanceof UsageError) {
        process.stderr.write(`register-webhook: ${e.message}\n\n${USAGE}`);
        process.exit(2);
      }
      process.stderr.write(`register-webhook: ${e.stack ?? e}\n`);
      process.exit(1);
    },
  );
}
