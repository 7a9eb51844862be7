#!/usr/bin/env node
// Sends the worker a realistic, signed Stripe event of a handled type, like `stripe trigger`
// but with no Stripe account and no network: the event is built from
// tools/fixtures/events/<type>.json, signed with the official SDK's
// `webhooks.generateTestHeaderString`, and POSTed to the worker's /webhook.
//
//   node tools/trigger.mjs <event type> [options]      (--help for the options)
//
// Exit status: 0 when the worker answered 2xx and did not record the event failed, 1 for
// another answer, no answer or a failed record, 2 for bad input. No secret is ever printed.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import Stripe from 'stripe';

import { FIXTURES_DIR, UsageError, checkedUrl, handledEventTypes, localWorkerOrigin, pinnedApiVersion, readDevVars } from './common.mjs';

/** The local worker's /webhook on `PORT` (8787 when unset), where `scripts/dev.sh` serves it. */
export function defaultUrl(env = process.env) {
  return `${localWorkerOrigin(env)}/webhook`;
}

const USAGE = `usage: node tools/trigger.mjs <event type> [options]

Builds a signed Stripe event of <event type> and POSTs it to the worker; prints the event id,
the HTTP status, the response body and, with ADMIN_TOKEN (environment or .dev.vars), the
outcome the worker recorded (GET /events/{id}): a 200 is also the answer to an event recorded
failed for good.

Options:
  --user u_123            metadata.user_id
  --session vs_…|cs_…     the VerificationSession or Checkout Session id (default: a new one)
  --code CODE             identity requires_input: last_error.code (default document_expired);
                          payment_intent.payment_failed: last_payment_error.code (default card_declined)
  --reason TEXT           identity requires_input: last_error.reason;
                          payment_intent.payment_failed: last_payment_error.message
  --decline-code CODE     payment_intent.payment_failed: last_payment_error.decline_code
                          (default insufficient_funds when the code is card_declined)
  --mode setup|payment    checkout.session.completed (default setup)
  --customer cus_…        checkout.session.completed, payment_intent.*
  --payment-intent pi_…   payment_intent.* (the object's id), checkout.session.completed --mode payment
  --amount N              in the smallest currency unit: payment_intent.*, checkout --mode payment
  --currency xyz          three letters: checkout.session.completed, payment_intent.*
  --created UNIX          the event's (and object's) created time (default: now)
  --id evt_…              the event id (default: a new one; reuse one to test dedupe)
  --url URL               where to POST (default http://127.0.0.1:$PORT/webhook, PORT 8787 unless set);
                          https, or http to 127.0.0.1/localhost/[::1] only
  --secret whsec_…        signing secret (default: env STRIPE_WEBHOOK_SECRET, then .dev.vars;
                          the first of a comma-separated list)
  --dry-run               print the event JSON instead of sending it
  --help                  this text
`;

const OPTIONS = {
  user: { type: 'string' },
  session: { type: 'string' },
  code: { type: 'string' },
  reason: { type: 'string' },
  'decline-code': { type: 'string' },
  mode: { type: 'string' },
  customer: { type: 'string' },
  'payment-intent': { type: 'string' },
  amount: { type: 'string' },
  currency: { type: 'string' },
  created: { type: 'string' },
  id: { type: 'string' },
  url: { type: 'string' },
  secret: { type: 'string' },
  'dry-run': { type: 'boolean' },
  help: { type: 'boolean' },
};

/** Which type-specific options each event type takes. */
function optionsFor(type) {
  if (type === 'identity.verification_session.requires_input') return ['user', 'session', 'code', 'reason'];
  // Stripe erases metadata when it redacts a session: the handler finds the user by session id.
  if (type === 'identity.verification_session.redacted') return ['session'];
  if (type.startsWith('identity.verification_session.')) return ['user', 'session'];
  if (type === 'checkout.session.completed') return ['user', 'session', 'mode', 'customer', 'payment-intent', 'amount', 'currency'];
  // A payment-mode session paid later by a delayed method, or expired (a recovery session's events).
  if (type === 'checkout.session.expired') return ['user', 'session', 'customer', 'amount', 'currency'];
  if (type.startsWith('checkout.session.')) return ['user', 'session', 'customer', 'payment-intent', 'amount', 'currency'];
  if (type === 'payment_intent.payment_failed') return ['user', 'customer', 'payment-intent', 'amount', 'currency', 'code', 'reason', 'decline-code'];
  if (type.startsWith('payment_intent.')) return ['user', 'customer', 'payment-intent', 'amount', 'currency'];
  return [];
}
const COMMON_OPTIONS = ['created', 'id', 'url', 'secret', 'dry-run', 'help'];

const ID_RE = /^[A-Za-z0-9_]+$/;
function idOption(value, prefix, name) {
  if (!value.startsWith(prefix) || value.length === prefix.length || !ID_RE.test(value) || value.length > 255) {
    throw new UsageError(`--${name} must look like ${prefix}… (letters, digits, _)`);
  }
  return value;
}
function newId(prefix) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return prefix + Array.from(randomBytes(24), (b) => alphabet[b % alphabet.length]).join('');
}
function codeOption(value, name) {
  if (!/^[a-z][a-z0-9_]{0,99}$/.test(value)) throw new UsageError(`--${name} must be a lower-case code like document_expired`);
  return value;
}

const IDENTITY_REASONS = {
  abandoned: 'The user began the verification but did not submit it.',
  consent_declined: 'The user declined to be verified by Stripe.',
  document_expired: 'The document is expired.',
  document_type_not_supported: 'The document type is not supported.',
  document_unverified_other: 'The document could not be verified.',
  selfie_face_mismatch: 'The selfie does not match the face on the document.',
  under_supported_age: 'The user is under the supported age.',
};
const CARD_ERRORS = {
  card_declined: 'Your card was declined.',
  expired_card: 'Your card has expired.',
  incorrect_cvc: "Your card's security code is incorrect.",
  authentication_required: 'Your card was declined. This transaction requires authentication.',
  processing_error: 'An error occurred while processing your card. Try again in a little bit.',
};
const DECLINE_MESSAGES = {
  insufficient_funds: 'Your card has insufficient funds.',
  generic_decline: 'Your card was declined.',
  lost_card: 'Your card was declined.',
  stolen_card: 'Your card was declined.',
};

/**
 * Parses the command line. Returns { type, opts } or throws UsageError. `--help` returns
 * { help: true }.
 */
export function parseCommandLine(argv) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError(e.message.split('. ')[0].replace(/\. To specify.*$/, ''));
  }
  const { values, positionals } = parsed;
  if (values.help) return { help: true };
  const known = handledEventTypes();
  if (positionals.length === 0) throw new UsageError('name the event type to send');
  if (positionals.length > 1) throw new UsageError(`one event type at a time (got ${positionals.length} arguments)`);
  const [type] = positionals;
  if (!known.includes(type)) throw new UsageError(`unknown event type ${JSON.stringify(type)}`);
  const allowed = new Set([...optionsFor(type), ...COMMON_OPTIONS]);
  for (const name of Object.keys(values)) {
    if (!allowed.has(name)) throw new UsageError(`--${name} does not apply to ${type}`);
  }
  return { type, opts: values };
}

/** The event (an object), built from the fixture of its type and the options. */
export function buildEvent(type, opts = {}, { now = Math.floor(Date.now() / 1000), apiVersion = pinnedApiVersion() } = {}) {
  const object = JSON.parse(readFileSync(path.join(FIXTURES_DIR, `${type}.json`), 'utf8'));
  let created = now;
  if (opts.created !== undefined) {
    if (!/^\d{1,11}$/.test(opts.created)) throw new UsageError('--created must be unix seconds');
    created = Number(opts.created);
  }
  object.created = created;
  if (opts.user !== undefined) {
    if (!/^[\w.@:-]{1,200}$/.test(opts.user)) throw new UsageError('--user must be 1-200 of letters, digits, _ . @ : -');
    object.metadata = { ...object.metadata, user_id: opts.user };
  }
  const amount = () => {
    if (!/^[1-9]\d{0,10}$/.test(opts.amount)) throw new UsageError('--amount must be a positive whole number (smallest currency unit)');
    return Number(opts.amount);
  };
  const currency = () => {
    if (!/^[A-Za-z]{3}$/.test(opts.currency)) throw new UsageError('--currency must be a three-letter code like usd');
    return opts.currency.toLowerCase();
  };

  if (type.startsWith('identity.verification_session.')) {
    object.id = opts.session !== undefined ? idOption(opts.session, 'vs_', 'session') : newId('vs_');
    if (object.client_secret) object.client_secret = `${object.id}_secret_${newId('test_')}`;
    if (type === 'identity.verification_session.requires_input') {
      const code = opts.code !== undefined ? codeOption(opts.code, 'code') : object.last_error.code;
      const reason = opts.reason ?? (opts.code !== undefined ? IDENTITY_REASONS[code] ?? `Verification failed: ${code}.` : object.last_error.reason);
      if (reason.length > 500) throw new UsageError('--reason is longer than 500 characters');
      object.last_error = { code, reason };
    }
  } else if (type === 'checkout.session.completed') {
    const mode = opts.mode ?? 'setup';
    if (!['setup', 'payment'].includes(mode)) throw new UsageError('--mode must be setup or payment');
    object.id = opts.session !== undefined ? idOption(opts.session, 'cs_', 'session') : newId('cs_test_');
    object.mode = mode;
    if (opts.customer !== undefined) object.customer = idOption(opts.customer, 'cus_', 'customer');
    if (opts.currency !== undefined) object.currency = currency();
    if (mode === 'setup') {
      for (const name of ['payment-intent', 'amount']) {
        if (opts[name] !== undefined) throw new UsageError(`--${name} needs --mode payment`);
      }
      object.setup_intent = newId('seti_');
      object.payment_intent = null;
      object.amount_total = null;
      object.amount_subtotal = null;
      object.payment_status = 'no_payment_required';
    } else {
      object.setup_intent = null;
      object.payment_intent = opts['payment-intent'] !== undefined ? idOption(opts['payment-intent'], 'pi_', 'payment-intent') : newId('pi_');
      object.amount_total = object.amount_subtotal = opts.amount !== undefined ? amount() : 2000;
      object.payment_status = 'paid';
    }
    object.expires_at = created + 24 * 60 * 60;
  } else if (type.startsWith('checkout.session.')) {
    // The fixture says the mode, status and payment_status Stripe sends with this type.
    object.id = opts.session !== undefined ? idOption(opts.session, 'cs_', 'session') : newId('cs_test_');
    if (opts.customer !== undefined) object.customer = idOption(opts.customer, 'cus_', 'customer');
    if (opts.currency !== undefined) object.currency = currency();
    if (opts['payment-intent'] !== undefined) object.payment_intent = idOption(opts['payment-intent'], 'pi_', 'payment-intent');
    if (opts.amount !== undefined) object.amount_total = object.amount_subtotal = amount();
    object.expires_at = type === 'checkout.session.expired' ? created : created + 24 * 60 * 60;
  } else if (type.startsWith('payment_intent.')) {
    object.id = opts['payment-intent'] !== undefined ? idOption(opts['payment-intent'], 'pi_', 'payment-intent') : newId('pi_');
    object.client_secret = `${object.id}_secret_${newId('test_')}`;
    if (opts.customer !== undefined) object.customer = idOption(opts.customer, 'cus_', 'customer');
    if (opts.customer !== undefined && object.last_payment_error?.payment_method) {
      object.last_payment_error.payment_method.customer = object.customer;
    }
    if (opts.amount !== undefined) object.amount = amount();
    if (opts.currency !== undefined) object.currency = currency();
    if (object.status === 'succeeded') object.amount_received = object.amount;
    if (type === 'payment_intent.payment_failed') {
      const error = object.last_payment_error;
      if (opts.code !== undefined) {
        error.code = codeOption(opts.code, 'code');
        if (error.code !== 'card_declined') error.decline_code = null;
        error.doc_url = `https://stripe.com/docs/error-codes/${error.code.replaceAll('_', '-')}`;
      }
      if (opts['decline-code'] !== undefined) {
        if (error.code !== 'card_declined') throw new UsageError('--decline-code applies only with --code card_declined');
        error.decline_code = codeOption(opts['decline-code'], 'decline-code');
      }
      error.message =
        opts.reason ?? (error.decline_code ? DECLINE_MESSAGES[error.decline_code] : undefined) ?? CARD_ERRORS[error.code] ?? 'Your card was declined.';
      if (error.message.length > 500) throw new UsageError('--reason is longer than 500 characters');
    }
  }

  const id = opts.id !== undefined ? idOption(opts.id, 'evt_', 'id') : newId('evt_');
  return {
    id,
    object: 'event',
    api_version: apiVersion,
    created,
    data: { object },
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type,
  };
}

/** --secret, else env STRIPE_WEBHOOK_SECRET, else .dev.vars; the first of a list. */
export function signingSecret(opts, env = process.env, devVars = readDevVars) {
  const [source, raw] =
    opts.secret !== undefined
      ? ['--secret', opts.secret]
      : env.STRIPE_WEBHOOK_SECRET
        ? ['STRIPE_WEBHOOK_SECRET in the environment', env.STRIPE_WEBHOOK_SECRET]
        : ['STRIPE_WEBHOOK_SECRET in .dev.vars', devVars().STRIPE_WEBHOOK_SECRET];
  if (!raw) throw new UsageError('no signing secret: pass --secret, set STRIPE_WEBHOOK_SECRET, or put it in .dev.vars');
  const secret = raw.split(',')[0].trim();
  if (!/^whsec_\S+$/.test(secret)) throw new UsageError(`the signing secret from ${source} does not start with whsec_`);
  return secret;
}

/** Signs and POSTs; resolves to { status, body }. */
export async function send(event, { url, secret }) {
  const payload = JSON.stringify(event, null, 2); // Stripe sends pretty-printed JSON
  const signer = new Stripe('sk_test_trigger_signing_only');
  const header = signer.webhooks.generateTestHeaderString({ payload, secret });
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json; charset=utf-8',
      'stripe-signature': header,
      'user-agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks) trigger.mjs',
    },
    body: payload,
    redirect: 'manual',
    signal: AbortSignal.timeout(30_000),
  });
  return { status: res.status, body: await res.text() };
}

async function main(argv) {
  const parsed = parseCommandLine(argv);
  if (parsed.help) {
    process.stdout.write(USAGE);
    process.stdout.write(`\nEvent types:\n${handledEventTypes().map((t) => `  ${t}`).join('\n')}\n`);
    return 0;
  }
  const { type, opts } = parsed;
  const event = buildEvent(type, opts);
  if (opts['dry-run']) {
    process.stdout.write(JSON.stringify(event, null, 2) + '\n');
    return 0;
  }
  const url = checkedUrl(opts.url ?? defaultUrl(), '--url').href;
  const secret = signingSecret(opts);
  let answer;
  try {
    answer = await send(event, { url, secret });
  } catch (e) {
    const cause = e.cause?.code ?? e.cause?.message ?? e.message;
    process.stderr.write(`trigger: no answer from ${url}: ${cause}\n`);
    process.stdout.write(`event  ${event.id} (${type})\n`);
    return 1;
  }
  process.stdout.write(`event  ${event.id} (${type})\nstatus ${answer.status}\nbody   ${answer.body}\n`);
  const outcome = await recordedOutcome(new URL(url).origin, event.id, adminToken());
  process.stdout.write(`outcome ${outcome.text}\n`);
  return answer.status >= 200 && answer.status < 300 && !outcome.failed ? 0 : 1;
}

/** ADMIN_TOKEN from the environment, then .dev.vars; never from the command line (shell history). */
export function adminToken(env = process.env, devVars = readDevVars) {
  return env.ADMIN_TOKEN || devVars().ADMIN_TOKEN || undefined;
}

/**
 * What the worker recorded for the event (`GET /events/{id}`): a 200 answer is not proof it was
 * handled (a request Stripe refused is recorded `failed` and answered 200, so Stripe stops).
 * Resolves to { text, failed }; the token is sent only to the worker the event went to.
 */
export async function recordedOutcome(origin, eventId, token) {
  if (!token) return { text: 'not read (export ADMIN_TOKEN to see what the worker recorded)', failed: false };
  let res;
  try {
    res = await fetch(`${origin}/events/${eventId}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(30_000) });
  } catch (e) {
    return { text: `not read: ${e.cause?.code ?? e.message}`, failed: false };
  }
  if (res.status === 404) return { text: 'not recorded (the worker refused the delivery before recording it)', failed: false };
  if (res.status !== 200) return { text: `not read: GET /events/${eventId} answered ${res.status}`, failed: false };
  return describeRecord(await res.json());
}

/** One line for an event record: its outcome, and for a failure where and what Stripe said. */
export function describeRecord(record) {
  if (record.outcome !== 'failed') return { text: record.reason ? `${record.outcome} (${record.reason})` : record.outcome, failed: false };
  const said = record.stripe_error;
  const stripe = said ? `; Stripe answered ${said.status} ${said.type}${said.code ? ` ${said.code}` : ''}${said.request_id ? `, request ${said.request_id}` : ''}` : '';
  const next = record.retryable === false ? 'failed for good: mend the cause, then POST /events/{id}/replay' : 'failed: Stripe redelivers, catch-up works it again';
  return { text: `${next} (step ${record.failed_step}, error ${record.error}${stripe})`, failed: true };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      if (e instanceof UsageError) {
        process.stderr.write(`trigger: ${e.message}\n\nEvent types:\n${handledEventTypes().map((t) => `  ${t}`).join('\n')}\n\nSee --help for the options.\n`);
        process.exit(2);
      }
      process.stderr.write(`trigger: ${e.stack ?? e}\n`);
      process.exit(1);
    },
  );
}
