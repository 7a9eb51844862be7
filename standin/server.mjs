// A local stand-in for the parts of the Stripe API this service calls, for end-to-end tests
// and for the README's local run. It listens on 127.0.0.1 only.
//
// What it does like Stripe: the endpoints and object shapes the worker uses; errors as
// {"error":{type, code, decline_code, message, param, payment_intent, …}} with Stripe's
// statuses; test cards deciding off-session outcomes; Idempotency-Key replay (same key and
// parameters → the saved response, with Idempotent-Replayed: true; other parameters → 400
// idempotency_error; a key still in progress → 409; every result of an executed request saved,
// a 500 included, nothing for a validation error or an injected fault); Request-Id on every response; events
// delivered to registered webhook endpoints, signed with the official SDK's header generator.
//
// What it adds for tests (under /_test, never under /v1): a record of every API request,
// fault injection (500, 429, slow, malformed JSON, connection reset), completing a Checkout
// Session with a test card, moving an Identity session, and waiting for deliveries; an outage
// of webhook deliveries (POST /_test/outage {on}) and the late deliveries after it
// (POST /_test/redeliver-failed), and counts of objects created (GET /_test/counts).
//
// Run: node standin/server.mjs [--port 12111] [--webhook-url URL] [--state FILE] with the signing
// secret in STANDIN_WEBHOOK_SECRET (or --webhook-secret whsec_…, which `ps` shows).
//
// State: in memory, or with --state (createStandIn's `stateFile`) kept in that JSON file across
// restarts: objects, events, idempotency keys and what each delivered, written after every
// request and delivery. scripts/dev.sh keeps it beside wrangler's local state
// (.wrangler/state/standin.json), so the two are kept, and wiped (`--reset`), together. Not kept:
// webhook endpoints (their secrets; dev.sh registers its one again from --webhook-url), the
// request log, faults, violations and an outage. API keys are kept only as a hash.

import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Stripe from 'stripe';
import { validateAnswer, validateParams } from './validate.mjs';
import { thinEventTypeName } from '../tools/common.mjs';

const DEFAULT_API_VERSION = '2026-10-28.endive';
const signer = new Stripe('sk_test_standin_signing_only');

/**
 * Test card numbers (docs.stripe.com/testing): what saving them in setup mode does (`setup`:
 * declined, or 3D Secure required; otherwise saved) and what a later off-session charge does
 * (`outcome`). 0341 saves and declines later; 3184 needs authentication when saved and fails
 * off-session with authentication_required.
 */
export const TEST_CARDS = {
  '4242424242424242': { brand: 'visa', outcome: 'succeeded' },
  '5555555555554444': { brand: 'mastercard', outcome: 'succeeded' },
  '4000000000009995': { brand: 'visa', setup: 'declined', outcome: 'declined', code: 'card_declined', decline_code: 'insufficient_funds', message: 'Your card has insufficient funds.' },
  '4000000000000341': { brand: 'visa', outcome: 'declined', code: 'card_declined', decline_code: 'generic_decline', message: 'Your card was declined.' },
  '4000000000000002': { brand: 'visa', setup: 'declined', outcome: 'declined', code: 'card_declined', decline_code: 'generic_decline', message: 'Your card was declined.' },
  '4000002760003184': { brand: 'visa', setup: '3ds', outcome: 'declined', code: 'authentication_required', decline_code: 'authentication_required', message: 'Your card was declined. This transaction requires authentication.' },
};

/**
 * An amount in the currency's smallest unit as a person reads it, in the major unit
 * (docs.stripe.com/currencies: zero-decimal and three-decimal currencies; ISK, HUF and TWD
 * keep two decimals in the API): 1099 usd is "10.99 USD", 1000 jpy "1,000 JPY".
 */
export function formatAmount(amount, currency) {
  const code = String(currency ?? '').toLowerCase();
  const zero = ['bif', 'clp', 'djf', 'gnf', 'jpy', 'kmf', 'krw', 'mga', 'pyg', 'rwf', 'ugx', 'vnd', 'vuv', 'xaf', 'xof', 'xpf'];
  const three = ['bhd', 'jod', 'kwd', 'omr', 'tnd'];
  const exponent = zero.includes(code) ? 0 : three.includes(code) ? 3 : 2;
  const magnitude = BigInt(Math.abs(Math.trunc(Number(amount))));
  const unit = 10n ** BigInt(exponent);
  const major = (magnitude / unit).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const minor = exponent ? `.${(magnitude % unit).toString().padStart(exponent, '0')}` : '';
  return `${Number(amount) < 0 ? '-' : ''}${major}${minor} ${code.toUpperCase()}`;
}

/**
 * Every parameter violation any stand-in in this process answered (append-only; /_test/reset
 * clears only one stand-in's own list). The e2e harness asserts after each file that none but
 * the ones a test caused on purpose (header `Standin-Expected-Violation: <reason>`) happened.
 */
export const violationLedger = [];

/**
 * Stripe's example object of every resource (stripe/openapi fixtures3.json, what stripe-mock
 * serves; vendor/stripe/README.md). Every object the stand-in answers or sends in an event
 * starts as a copy of the one for its resource, so every field Stripe sends is there with
 * Stripe's type, the null ones included; the stand-in changes only the fields the call decides,
 * and sets to null the ones that in the example describe something that has not happened to a
 * new object (an error, a next action, a cancellation, a redaction). STRIPE_FIXTURES may point
 * elsewhere.
 */
const FIXTURES_PATH = process.env.STRIPE_FIXTURES
  ?? path.join(path.dirname(path.dirname(fileURLToPath(import.meta.url))), 'vendor/stripe/fixtures3.json');
const FIXTURES = JSON.parse(readFileSync(FIXTURES_PATH, 'utf8')).resources;
const FRESH = {
  'checkout.session': {
    after_expiration: null, client_secret: null, customer_details: null, collected_information: null, currency_conversion: null,
    invoice: null, invoice_creation: null, payment_intent: null, payment_link: null, recovered_from: null, setup_intent: null,
    shipping_address_collection: null, shipping_cost: null, subscription: null, total_details: null, payment_method_types: ['card'],
  },
  setup_intent: { last_setup_error: null, next_action: null, latest_attempt: null, mandate: null, payment_method_configuration_details: null },
  payment_method: { metadata: {}, billing_details: { address: { city: null, country: null, line1: null, line2: null, postal_code: null, state: null }, email: null, name: null, phone: null, tax_id: null } },
  customer: { discount: null, currency: null, shipping: null, invoice_prefix: null },
  payment_intent: {
    canceled_at: null, last_payment_error: null, next_action: null, processing: null, shipping: null, transfer_data: null,
    payment_method_configuration_details: null, automatic_payment_methods: null, latest_charge: null, client_secret: null,
  },
  'identity.verification_session': { last_error: null, last_verification_report: null, redaction: null, status: 'requires_input' },
  webhook_endpoint: { description: null, metadata: {} },
  event: {},
};
/** A new object of `resource`, from Stripe's example, with the fields the call decides. */
export function fromFixture(resource, fields) {
  const base = FIXTURES[resource];
  if (!base) throw new Error(`no fixture for ${resource}`);
  return { ...structuredClone(base), ...structuredClone(FRESH[resource] ?? {}), ...fields };
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
export function newId(prefix, length = 24) {
  const bytes = randomBytes(length);
  let id = `${prefix}_`;
  for (const b of bytes) id += ALNUM[b % ALNUM.length];
  return id;
}

class ApiError extends Error {
  constructor(status, fields, headers = {}) {
    super(fields.message);
    this.status = status;
    this.fields = fields;
    this.headers = headers;
  }
}
const invalid = (message, extra = {}) => new ApiError(400, { type: 'invalid_request_error', message, ...extra });
const missing = (kind, id, param = 'id') =>
  new ApiError(404, { type: 'invalid_request_error', code: 'resource_missing', param, message: `No such ${kind}: '${id}'` });

/** Stripe's form encoding back into nested objects: a[b][0][c]=v, a[]=v. */
export function parseForm(text) {
  const root = {};
  for (const [key, value] of new URLSearchParams(text)) {
    const parts = key.match(/^[^[]+|\[[^\]]*\]/g);
    if (!parts || parts.join('') !== key) throw invalid(`Invalid parameter name: ${key}`);
    const path = parts.map((p, i) => (i === 0 ? p : p.slice(1, -1)));
    let node = root;
    path.forEach((segment, i) => {
      const last = i === path.length - 1;
      const next = path[i + 1];
      const container = () => (next === '' || /^\d+$/.test(next ?? '') ? [] : {});
      if (segment === '') {
        if (!Array.isArray(node)) throw invalid(`Invalid array parameter: ${key}`);
        if (last) {
          node.push(value);
        } else {
          const child = container();
          node.push(child);
          node = child;
        }
        return;
      }
      if (last) {
        node[segment] = value;
      } else {
        node[segment] ??= container();
        node = node[segment];
      }
    });
  }
  return root;
}

const stableJson = (value) =>
  JSON.stringify(value, (_, v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort()) : v));

function positiveInteger(value, param) {
  if (value === undefined) throw invalid(`Missing required param: ${param}.`, { code: 'parameter_missing', param });
  if (!/^\d+$/.test(String(value)) || Number(value) <= 0) {
    throw invalid(`Invalid integer: ${value}`, { code: 'parameter_invalid_integer', param });
  }
  return Number(value);
}
function required(params, param) {
  const value = params[param];
  if (value === undefined || value === '') throw invalid(`Missing required param: ${param}.`, { code: 'parameter_missing', param });
  return value;
}
function currency(value, param = 'currency') {
  if (!/^[a-zA-Z]{3}$/.test(value ?? '')) throw invalid(`Invalid currency: ${value}`, { code: 'parameter_invalid_string', param });
  return value.toLowerCase();
}
/** The one currency each bank debit the stand-in models can be charged in. */
const DEBIT_CURRENCY = { us_bank_account: 'usd', sepa_debit: 'eur' };

/** Payment method types that never send the customer elsewhere to pay or authenticate. */
const NON_REDIRECTING = new Set(['card', 'us_bank_account', 'sepa_debit', 'bacs_debit', 'au_becs_debit', 'acss_debit', 'customer_balance']);
function mayRedirect(params) {
  const allowed = params.allowed_payment_method_types;
  if (Array.isArray(allowed) && allowed.length > 0) return !allowed.every((t) => NON_REDIRECTING.has(t));
  return params.automatic_payment_methods?.allow_redirects !== 'never';
}
const bool = (value) => value === 'true' || value === true;
const now = () => Math.floor(Date.now() / 1000);

export function createStandIn({ webhookUrl, webhookSecret, apiVersion = DEFAULT_API_VERSION, stateFile } = {}) {
  const objects = new Map(); // id → object
  const cards = new Map(); // payment method id → card number (never exposed)
  const idempotency = new Map(); // `${sha256(apiKey)} ${key}` → { fingerprint, status, body }
  const inFlight = new Set();
  const requests = [];
  const violations = []; // this stand-in's, since its last /_test/reset
  const faults = [];
  const endpoints = [];
  const deliveries = [];
  const pending = new Set();
  let publicBase = '';
  // An outage (POST /_test/outage): events are still created and listed, but their deliveries
  // fail (recorded with error 'outage') until it ends, as when the endpoint is down or disabled.
  let outage = false;
  // Objects created by executed requests (an idempotent replay executes nothing), for tests
  // that count effects at Stripe.
  const counts = { customers: 0, attaches: 0, payment_intents: 0, checkout_sessions: 0 };
  const delivered = new Map(); // event id → whether every endpoint answered it 2xx

  if (webhookUrl) {
    endpoints.push({ id: newId('we'), object: 'webhook_endpoint', url: webhookUrl, secret: webhookSecret, enabled_events: ['*'], api_version: apiVersion, status: 'enabled' });
  }

  const store = (object) => (objects.set(object.id, object), object);
  const get = (kind, id, object, param) => {
    const found = objects.get(id);
    if (!found || found.object !== object) throw missing(kind, id, param);
    return found;
  };

  // ------------------------------------------------------------------ events and deliveries
  function emit(type, object, request) {
    const event = fromFixture('event', {
      id: newId('evt'),
      object: 'event',
      api_version: apiVersion,
      created: now(),
      data: { object: structuredClone(object) },
      livemode: false,
      pending_webhooks: endpoints.length,
      request: { id: request?.requestId ?? null, idempotency_key: request?.idempotencyKey ?? null },
      type,
    });
    const wants = (e, t) => e.enabled_events.includes('*') || e.enabled_events.includes(t);
    const targets = endpoints.filter((e) => e.event_payload !== 'thin' && wants(e, type));
    const thinTargets = endpoints.filter((e) => e.event_payload === 'thin' && wants(e, `v1.${type}`));
    const thin = thinTargets.length ? thinEventOf(event, object, request) : null;
    const work = Promise.all([
      ...targets.map((endpoint) => deliver(event, endpoint)),
      ...thinTargets.map((endpoint) => deliver(thin, endpoint)),
    ]);
    pending.add(work);
    work.finally(() => {
      pending.delete(work);
      save();
    });
    return { event, delivered: work };
  }

  // ------------------------------------------------------------------ thin events (API v2)
  // A thin event (`object: "v2.core.event"`, V2/Core/Events.d.ts) names the object of a v1
  // change (`related_object`, with the path that retrieves it) and the snapshot event of the
  // same change (`snapshot_event`), and carries no object. Made only when a thin destination
  // wants its type; kept for GET /v2/core/events.
  const thinEvents = new Map(); // event id → thin event
  const RESOURCE_PATHS = {
    'checkout.session': 'checkout/sessions', payment_intent: 'payment_intents', setup_intent: 'setup_intents',
    'identity.verification_session': 'identity/verification_sessions', customer: 'customers', payment_method: 'payment_methods',
  };
  function thinEventOf(snapshot, object, request) {
    const thin = {
      id: newId('evt'),
      object: 'v2.core.event',
      type: `v1.${snapshot.type}`,
      // Milliseconds within the snapshot's second: v2 times are RFC 3339 strings.
      created: new Date(snapshot.created * 1000 + (Date.now() % 1000)).toISOString(),
      livemode: false,
      related_object: { id: object.id, type: object.object, url: `/v1/${RESOURCE_PATHS[object.object]}/${object.id}` },
      snapshot_event: snapshot.id,
    };
    if (request?.requestId) {
      thin.reason = request.idempotencyKey
        ? { type: 'request', request: { id: request.requestId, idempotency_key: request.idempotencyKey } }
        : { type: 'request' };
    }
    checkAnswer(thinEventTypeName(thin.type), thin, `deliver ${thin.type}`);
    thinEvents.set(thin.id, thin);
    return thin;
  }
  /** The thin twin of a snapshot event, when a thin destination got one. */
  const thinTwinOf = (id) => [...thinEvents.values()].find((t) => t.snapshot_event === id);
  /**
   * Delivers a change again (Stripe's retry), to each endpoint in the form it takes: the
   * snapshot event, or its thin twin to a thin destination that got one.
   */
  function redeliver(event) {
    const twin = thinTwinOf(event.id);
    return endpoints.flatMap((endpoint) => {
      if (endpoint.event_payload !== 'thin') return [deliver(event, endpoint, 2)];
      return twin ? [deliver(twin, endpoint, 2)] : [];
    });
  }
  /** An object the stand-in itself answers or delivers in v2 that the SDK's type refuses: a violation of the stand-in's. */
  function checkAnswer(type, object, where) {
    const checked = validateAnswer(type, object);
    if (checked.ok) return;
    const violation = { method: 'ANSWER', path: where, schema: type, ...checked.error, expected: null, at: Date.now() };
    violations.push(violation);
    violationLedger.push(violation);
  }
  /** The RFC 3339 `created` of a thin event as unix milliseconds. */
  const thinCreated = (event) => Date.parse(event.created);

  async function deliver(event, endpoint, attempt = 1) {
    const payload = JSON.stringify(event, null, 2);
    const header = signer.webhooks.generateTestHeaderString({ payload, secret: endpoint.secret });
    const record = { event_id: event.id, type: event.type, endpoint: endpoint.id, attempt, status: null, body: null, error: null };
    deliveries.push(record);
    if (outage) {
      record.error = 'outage';
      if (!delivered.get(event.id)) delivered.set(event.id, false);
      return record;
    }
    try {
      const res = await fetch(endpoint.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json; charset=utf-8', 'stripe-signature': header, 'user-agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)' },
        body: payload,
        signal: AbortSignal.timeout(20_000),
      });
      record.status = res.status;
      record.body = await res.text();
      delivered.set(event.id, res.status >= 200 && res.status < 300);
    } catch (e) {
      record.error = String(e.message ?? e);
    }
    return record;
  }

  const events = new Map(); // event id → event, for redelivery
  function emitAndKeep(type, object, request) {
    const emitted = emit(type, object, request);
    events.set(emitted.event.id, emitted.event);
    return emitted;
  }

  // ------------------------------------------------------------------ API handlers
  function checkoutUrl(id) {
    return `${publicBase}/c/pay/${id}`;
  }

  // Expandable fields as the SDK types them (`string | Customer`, …); a dotted path goes one
  // level further, e.g. setup_intent.payment_method.
  const EXPANDABLE = {
    'checkout.session': ['setup_intent', 'payment_intent', 'customer'],
    setup_intent: ['payment_method', 'customer'],
    payment_intent: ['payment_method', 'customer'],
    payment_method: ['customer'],
  };
  /** A copy of `object` with the `expand[]` paths of `query` replaced by their objects. */
  function expanded(object, query) {
    const copy = structuredClone(object);
    for (const path of [query.expand ?? []].flat()) {
      let node = copy;
      for (const field of path.split('.')) {
        if (!node || typeof node !== 'object' || !(EXPANDABLE[node.object] ?? []).includes(field)) {
          throw invalid(`This property cannot be expanded (${path}).`, { param: 'expand' });
        }
        if (typeof node[field] === 'string') node[field] = structuredClone(objects.get(node[field]) ?? node[field]);
        // Stripe expands a null field to null, and a path through it stops there.
        if (node[field] === null) break;
        node = node[field];
      }
    }
    return copy;
  }
  // What a Checkout Session was created with that its object does not show.
  const sessionOptions = new Map(); // session id → { setup_future_usage, by_type }
  /** How a payment session saves a payment method of `type` for later: null when it does not. */
  const futureUsageOf = (sessionId, type) => {
    const options = sessionOptions.get(sessionId);
    return options?.by_type?.[type] ?? options?.setup_future_usage ?? null;
  };

  // ------------------------------------------------------------------ state kept in stateFile
  const kept = { objects, cards, idempotency, events, thinEvents, delivered, sessionOptions };
  if (stateFile && existsSync(stateFile)) {
    const saved = JSON.parse(readFileSync(stateFile, 'utf8'));
    for (const [name, map] of Object.entries(kept)) for (const [k, v] of saved[name] ?? []) map.set(k, v);
    Object.assign(counts, saved.counts ?? {});
  }
  function save() {
    if (!stateFile) return;
    const snapshot = Object.fromEntries(Object.entries(kept).map(([name, map]) => [name, [...map]]));
    mkdirSync(path.dirname(stateFile), { recursive: true });
    writeFileSync(`${stateFile}.tmp`, JSON.stringify({ version: 1, ...snapshot, counts }));
    renameSync(`${stateFile}.tmp`, stateFile);
  }

  const api = {
    'POST /v1/customers': (params) =>
      (counts.customers += 1) && store(fromFixture('customer', {
        id: newId('cus', 14), created: now(), email: params.email ?? null, name: params.name ?? null, description: params.description ?? null,
        phone: params.phone ?? null, metadata: params.metadata ?? {}, livemode: false,
        invoice_settings: { ...FIXTURES.customer.invoice_settings, default_payment_method: params.invoice_settings?.default_payment_method ?? null },
      })),
    'GET /v1/customers/:id': (_, [id]) => get('customer', id, 'customer'),

    'POST /v1/checkout/sessions': (params) => {
      const mode = required(params, 'mode');
      if (!['setup', 'payment'].includes(mode)) throw invalid(`Invalid mode: ${mode}`, { param: 'mode' });
      required(params, 'success_url');
      // SDK 23.1.0, Checkout/Sessions.d.ts, SessionCreateParams.currency: "Required in `setup`
      // mode when `allowed_payment_method_types` is not set."
      if (mode === 'setup' && !params.currency && !params.allowed_payment_method_types) {
        throw invalid('Missing required param: currency.', { code: 'parameter_missing', param: 'currency' });
      }
      if (params.customer) get('customer', params.customer, 'customer', 'customer');
      const session = fromFixture('checkout.session', {
        id: newId(mode === 'setup' ? 'cs_test_c1' : 'cs_test_a1', 40),
        object: 'checkout.session',
        mode,
        status: 'open',
        payment_status: mode === 'setup' ? 'no_payment_required' : 'unpaid',
        customer: params.customer ?? null,
        customer_details: null,
        currency: null,
        amount_total: null,
        setup_intent: null,
        payment_intent: null,
        allowed_payment_method_types: params.allowed_payment_method_types ?? null,
        success_url: params.success_url,
        cancel_url: params.cancel_url ?? null,
        metadata: params.metadata ?? {},
        created: now(),
        expires_at: now() + 86400,
        livemode: false,
        url: null,
        client_reference_id: params.client_reference_id ?? null,
        customer_email: params.customer_email ?? null,
        locale: params.locale ?? null,
        amount_subtotal: null,
      });
      if (mode === 'setup') {
        session.currency = params.currency ? currency(params.currency) : null;
      } else {
        const items = params.line_items;
        if (!Array.isArray(items) || items.length === 0) throw invalid('Missing required param: line_items.', { code: 'parameter_missing', param: 'line_items' });
        let total = 0;
        items.forEach((item, i) => {
          const price = item.price_data ?? {};
          const amount = positiveInteger(price.unit_amount, `line_items[${i}][price_data][unit_amount]`);
          session.currency = currency(price.currency, `line_items[${i}][price_data][currency]`);
          if (!price.product_data?.name) throw invalid('Missing required param: name.', { code: 'parameter_missing', param: `line_items[${i}][price_data][product_data][name]` });
          total += amount * positiveInteger(item.quantity ?? '1', `line_items[${i}][quantity]`);
        });
        session.amount_total = total;
        session.amount_subtotal = total;
        session.total_details = { amount_discount: 0, amount_shipping: 0, amount_tax: 0 };
      }
      session.url = checkoutUrl(session.id);
      counts.checkout_sessions += 1;
      // What the payment is saved for: for every method (payment_intent_data), or per method
      // type (payment_method_options[<type>][setup_future_usage], which overrides it for
      // that type; Checkout/Sessions.d.ts).
      sessionOptions.set(session.id, {
        setup_future_usage: params.payment_intent_data?.setup_future_usage ?? null,
        by_type: Object.fromEntries(Object.entries(params.payment_method_options ?? {}).map(([type, o]) => [type, o?.setup_future_usage ?? null])),
        // What Stripe's Checkout page lists: each line item's product name, amount and quantity.
        items: mode === 'payment' ? params.line_items.map((item) => ({ name: item.price_data.product_data.name, unit_amount: Number(item.price_data.unit_amount), quantity: Number(item.quantity ?? 1) })) : [],
      });
      return store(session);
    },
    'GET /v1/checkout/sessions/:id': (_, [id], query) => expanded(get('checkout session', id, 'checkout.session'), query),
    'GET /v1/setup_intents/:id': (_, [id], query) => expanded(get('setup_intent', id, 'setup_intent'), query),
    'GET /v1/payment_methods/:id': (_, [id], query) => expanded(get('payment_method', id, 'payment_method'), query),
    'POST /v1/payment_methods/:id/attach': (params, [id], _q, request) => {
      const pm = get('payment_method', id, 'payment_method');
      const customer = required(params, 'customer');
      get('customer', customer, 'customer', 'customer');
      if (pm.customer && pm.customer !== customer) {
        // No `code`: the SDK's Code enum (PaymentIntents.d.ts LastPaymentError.Code) has none for it.
        throw invalid('The payment method you provided has already been attached to a customer.', { param: 'payment_method' });
      }
      pm.customer = customer;
      counts.attaches += 1;
      emitAndKeep('payment_method.attached', pm, request);
      return pm;
    },
    'GET /v1/payment_intents/:id': (_, [id], query) => expanded(get('payment_intent', id, 'payment_intent'), query),
    'POST /v1/payment_intents': (params, _p, _q, request) => {
      const amount = positiveInteger(params.amount, 'amount');
      const cur = currency(required(params, 'currency'));
      if (params.customer) get('customer', params.customer, 'customer', 'customer');
      const confirm = bool(params.confirm);
      // SDK 23.1.0, PaymentIntents.d.ts, PaymentIntentCreateParams.off_session (and return_url,
      // error_on_requires_action): "This parameter can only be used with `confirm=true`."
      for (const param of ['off_session', 'return_url', 'error_on_requires_action']) {
        if (params[param] !== undefined && !confirm) {
          throw invalid(`You can only pass \`${param}\` when \`confirm\` is \`true\`.`, { param });
        }
      }
      // automatic_payment_methods[allow_redirects] (AutomaticPaymentMethods.allow_redirects):
      // confirming a PaymentIntent whose methods may redirect needs a return_url, unless the
      // methods are limited to ones that never redirect (allowed_payment_method_types, which
      // replaced payment_method_types in 23.0.0 / endive, see the CHANGELOG) or redirects are off.
      if (confirm && !params.return_url && mayRedirect(params)) {
        throw invalid(
          'This PaymentIntent is configured to accept payment methods enabled in your Dashboard. Because some of these payment methods might redirect your customer off of your page, you must provide a `return_url`. If you don\'t want to accept redirect-based payment methods, set `automatic_payment_methods[enabled]` to `true` and `automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents and Payment Intents.',
          { param: 'return_url' },
        );
      }
      const pi = fromFixture('payment_intent', {
        id: newId('pi'),
        object: 'payment_intent',
        amount,
        amount_received: 0,
        currency: cur,
        customer: params.customer ?? null,
        payment_method: params.payment_method ?? null,
        description: params.description ?? null,
        metadata: params.metadata ?? {},
        status: 'requires_payment_method',
        last_payment_error: null,
        created: now(),
        livemode: false,
        payment_method_types: params.allowed_payment_method_types ?? ['card'],
        allowed_payment_method_types: params.allowed_payment_method_types ?? null,
        automatic_payment_methods: params.automatic_payment_methods ? { enabled: bool(params.automatic_payment_methods.enabled), allow_redirects: params.automatic_payment_methods.allow_redirects ?? 'always' } : null,
        setup_future_usage: params.setup_future_usage ?? null,
        receipt_email: params.receipt_email ?? null,
        statement_descriptor: params.statement_descriptor ?? null,
      });
      pi.client_secret = `${pi.id}_secret_${newId('x', 25).slice(2)}`;
      counts.payment_intents += 1;
      if (pi.payment_method) {
        const pm = get('payment_method', pi.payment_method, 'payment_method', 'payment_method');
        if (pi.customer && pm.customer !== pi.customer) {
          throw invalid(`The provided PaymentMethod ${pm.id} does not belong to the Customer ${pi.customer}.`, { param: 'payment_method' });
        }
        pi.status = 'requires_confirmation';
      }
      store(pi);
      emitAndKeep('payment_intent.created', pi, request);
      if (!bool(params.confirm)) return pi;
      if (!pi.payment_method) throw invalid('You must provide a payment_method to confirm.', { code: 'parameter_missing', param: 'payment_method' });
      const method = objects.get(pi.payment_method);
      if (DEBIT_CURRENCY[method?.type]) return confirmDebit(pi, method, request);
      const card = TEST_CARDS[cards.get(pi.payment_method)] ?? TEST_CARDS['4242424242424242'];
      if (card.outcome === 'succeeded') {
        Object.assign(pi, { status: 'succeeded', amount_received: amount, latest_charge: newId('ch') });
        emitAndKeep('payment_intent.succeeded', pi, request);
        return pi;
      }
      const error = { type: 'card_error', code: card.code, decline_code: card.decline_code, message: card.message, payment_method: objects.get(pi.payment_method) };
      Object.assign(pi, { status: 'requires_payment_method', last_payment_error: error });
      emitAndKeep('payment_intent.payment_failed', pi, request);
      throw new ApiError(402, { ...error, doc_url: `https://docs.stripe.com/error-codes/${error.code.replace(/_/g, '-')}`, payment_intent: structuredClone(pi) });
    },

    'POST /v1/identity/verification_sessions': (params, _p, _q, request) => {
      const type = required(params, 'type');
      if (!['document', 'id_number'].includes(type)) throw invalid(`Invalid type: ${type}`, { param: 'type' });
      const id = newId('vs');
      const session = store(fromFixture('identity.verification_session', {
        id,
        object: 'identity.verification_session',
        type,
        status: 'requires_input',
        client_secret: `${id}_secret_${newId('x', 24).slice(2)}`,
        url: `${publicBase}/_test/identity/${id}`,
        return_url: params.return_url ?? null,
        last_error: null,
        metadata: params.metadata ?? {},
        created: now(),
        livemode: false,
        client_reference_id: params.client_reference_id ?? null,
        options: params.options ?? {},
        related_customer: params.related_customer ?? null,
      }));
      emitAndKeep('identity.verification_session.created', session, request);
      return session;
    },
    'GET /v1/identity/verification_sessions/:id': (_, [id]) => get('verification session', id, 'identity.verification_session'),

    // Events (EventListParams): newest first, `types[]` or `type` (a * wildcard allowed, as
    // Stripe does), `created` exact or [gt|gte|lt|lte], `limit` 1..100 (default 10),
    // `starting_after` / `ending_before` paging; a list object with has_more and url.
    'GET /v1/events': (_p, _a, query) => {
      const limit = query.limit === undefined ? 10 : Number(query.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
        throw invalid(`Invalid limit: must be between 1 and 100`, { param: 'limit' });
      }
      const wanted = query.types ?? (query.type ? [query.type] : null);
      const matchType = (type) => !wanted || wanted.some((w) => (w.endsWith('*') ? type.startsWith(w.slice(0, -1)) : type === w));
      const created = query.created;
      const matchCreated = (t) => {
        if (created === undefined) return true;
        if (typeof created !== 'object') return t === Number(created);
        const { gt, gte, lt, lte } = Object.fromEntries(Object.entries(created).map(([k, v]) => [k, Number(v)]));
        return (gt === undefined || t > gt) && (gte === undefined || t >= gte) && (lt === undefined || t < lt) && (lte === undefined || t <= lte);
      };
      // delivery_success=false: events still pending or not delivered to some endpoint.
      const matchDelivery = (e) => query.delivery_success === undefined || (delivered.get(e.id) === true) === bool(query.delivery_success);
      let list = [...events.values()].reverse().filter((e) => matchType(e.type) && matchCreated(e.created) && matchDelivery(e));
      if (query.starting_after) {
        const i = list.findIndex((e) => e.id === query.starting_after);
        if (i === -1 && !events.has(query.starting_after)) throw missing('event', query.starting_after, 'starting_after');
        list = list.slice(i + 1);
      } else if (query.ending_before) {
        const i = list.findIndex((e) => e.id === query.ending_before);
        if (i === -1 && !events.has(query.ending_before)) throw missing('event', query.ending_before, 'ending_before');
        list = list.slice(Math.max(0, i - limit), Math.max(0, i));
        return { object: 'list', data: structuredClone(list), has_more: i - limit > 0, url: '/v1/events' };
      }
      return { object: 'list', data: structuredClone(list.slice(0, limit)), has_more: list.length > limit, url: '/v1/events' };
    },
    'GET /v1/events/:id': (_p, [id]) => {
      const event = events.get(id);
      if (!event) throw missing('event', id);
      return structuredClone(event);
    },

    'POST /v1/webhook_endpoints': (params) => {
      const url = required(params, 'url');
      if (!/^https?:\/\//.test(url)) throw invalid('Invalid URL: must be http(s).', { param: 'url' });
      const enabled = params.enabled_events;
      if (!Array.isArray(enabled) || enabled.length === 0) throw invalid('Missing required param: enabled_events.', { code: 'parameter_missing', param: 'enabled_events' });
      const endpoint = fromFixture('webhook_endpoint', { id: newId('we'), object: 'webhook_endpoint', url, enabled_events: enabled, api_version: params.api_version ?? null, description: params.description ?? null, metadata: params.metadata ?? {}, status: 'enabled', secret: `whsec_${randomBytes(24).toString('hex')}`, created: now(), livemode: false });
      endpoints.push(endpoint);
      return { ...endpoint };
    },

    // API v2 (JSON bodies). GET /v2/core/events/{id}: for a v1 type no object, only
    // related_object, reason and snapshot_event (`changes` is not modelled).
    'GET /v2/core/events/:id': (_p, [id]) => {
      const event = thinEvents.get(id);
      if (!event) throw missing('event', id);
      return structuredClone(event);
    },
    // GET /v2/core/events (V2.Core.EventListParams): newest first, `types` (up to 20),
    // `object_id` (the related object), `created[gt|gte|lt|lte]` as RFC 3339, `limit` (default
    // 20, at most 100); pages by `next_page_url`, whose `page` token carries the filters.
    'GET /v2/core/events': (_p, _a, query) => {
      const filters = query.page ? readPage(query.page) : { ...query };
      const limit = filters.limit === undefined ? 20 : Number(filters.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw invalid('Invalid limit: must be between 1 and 100', { param: 'limit' });
      const types = filters.types ? [filters.types].flat() : null;
      if (types && types.length > 20) throw invalid('types: at most 20', { param: 'types' });
      const bound = (k) => (filters.created?.[k] === undefined ? undefined : Date.parse(filters.created[k]));
      const [gt, gte, lt, lte] = ['gt', 'gte', 'lt', 'lte'].map(bound);
      const match = (e) => {
        const t = thinCreated(e);
        return (!types || types.includes(e.type)) && (!filters.object_id || e.related_object?.id === filters.object_id)
          && (gt === undefined || t > gt) && (gte === undefined || t >= gte) && (lt === undefined || t < lt) && (lte === undefined || t <= lte);
      };
      const list = [...thinEvents.values()].reverse().filter(match);
      const offset = Number(filters.offset ?? 0);
      const data = list.slice(offset, offset + limit);
      const more = list.length > offset + limit;
      const page = more ? Buffer.from(JSON.stringify({ ...filters, offset: offset + limit })).toString('base64url') : null;
      return { data: structuredClone(data), next_page_url: page && `/v2/core/events?page=${page}`, previous_page_url: null };
    },
    // POST /v2/core/event_destinations (V2.Core.EventDestinationCreateParams): a webhook
    // destination for snapshot or thin events; the signing secret is in the answer only when
    // `include` asks for `webhook_endpoint.signing_secret`.
    'POST /v2/core/event_destinations': (params) => {
      if (params.type !== 'webhook_endpoint') throw invalid('Only webhook_endpoint destinations are modelled by the stand-in.', { param: 'type' });
      const url = params.webhook_endpoint?.url;
      if (!/^https?:\/\//.test(url ?? '')) throw invalid('webhook_endpoint.url: must be http(s).', { param: 'webhook_endpoint.url' });
      if (params.event_payload === 'thin' && params.snapshot_api_version !== undefined) {
        throw invalid('snapshot_api_version is for snapshot events only.', { param: 'snapshot_api_version' });
      }
      if (params.event_payload === 'thin' && params.enabled_events.some((t) => !t.startsWith('v1.') && !t.startsWith('v2.'))) {
        throw invalid('A thin destination takes thin event types (v1.…, v2.…).', { param: 'enabled_events' });
      }
      const secret = `whsec_${randomBytes(24).toString('hex')}`;
      const at = new Date().toISOString();
      const destination = {
        id: newId('ed'), object: 'v2.core.event_destination', created: at, updated: at, description: params.description ?? '',
        enabled_events: params.enabled_events, event_payload: params.event_payload, events_from: params.events_from ?? ['@self'],
        livemode: false, metadata: params.metadata ?? {}, name: params.name, status: 'enabled', type: 'webhook_endpoint',
        ...(params.event_payload === 'snapshot' ? { snapshot_api_version: params.snapshot_api_version ?? apiVersion } : {}),
        webhook_endpoint: { url, ...((params.include ?? []).includes('webhook_endpoint.signing_secret') ? { signing_secret: secret } : {}) },
      };
      checkAnswer('EventDestination', destination, 'POST /v2/core/event_destinations');
      endpoints.push({
        id: destination.id, object: 'webhook_endpoint', url, secret, enabled_events: destination.enabled_events,
        event_payload: destination.event_payload, api_version: destination.snapshot_api_version ?? apiVersion, status: 'enabled',
      });
      return destination;
    },
  };
  function readPage(token) {
    try {
      return JSON.parse(Buffer.from(String(token), 'base64url').toString('utf8'));
    } catch {
      throw invalid('Invalid page token.', { param: 'page' });
    }
  }

  const routes = Object.entries(api).map(([key, handler]) => {
    const [method, pattern] = key.split(' ');
    const regex = new RegExp('^' + pattern.replace(/:id/g, '([A-Za-z0-9_]+)') + '$');
    return { method, regex, handler, pattern, key };
  });

  // ------------------------------------------------------------------ test-only actions
  function newCardMethod(card, test, email) {
    const pm = store(fromFixture('payment_method', {
      id: newId('pm'), object: 'payment_method', type: 'card', customer: null, created: now(), livemode: false,
      billing_details: { ...FRESH.payment_method.billing_details, email },
      card: { ...FIXTURES.payment_method.card, brand: test.brand, display_brand: test.brand, last4: card.slice(-4), exp_month: 12, exp_year: new Date().getFullYear() + 3, fingerprint: newId('fp', 16).slice(3), networks: { available: [test.brand], preferred: null }, wallet: null },
    }));
    cards.set(pm.id, card);
    return pm;
  }
  function newBankMethod(email) {
    // A delayed method (ACH Direct Debit): Stripe's test account 000123456789, routing 110000000.
    return store(fromFixture('payment_method', {
      id: newId('pm'), object: 'payment_method', type: 'us_bank_account', customer: null, created: now(), livemode: false, card: null,
      billing_details: { ...FRESH.payment_method.billing_details, email, name: 'Jenny Rosen' },
      us_bank_account: { account_holder_type: 'individual', account_type: 'checking', bank_name: 'STRIPE TEST BANK', financial_connections_account: null, fingerprint: newId('fp', 16).slice(3), last4: '6789', networks: { preferred: 'ach', supported: ['ach'] }, routing_number: '110000000', status_details: null },
    }));
  }

  /**
   * Completes an open Checkout Session as a customer would. `card`: a test card (TEST_CARDS);
   * in setup mode 9995 and 0002 are declined while saving (the SetupIntent fails with
   * last_setup_error, the session stays open, 402), and 3184 needs 3D Secure: `three_d_secure`
   * 'complete' (the default of this JSON route, so older callers keep working) or 'fail', or
   * 'pending' to leave the SetupIntent in requires_action. `method: 'delayed'` pays a
   * payment-mode session by a delayed method (ACH): complete but unpaid until /settle.
   */
  function completeCheckout(id, { card = '4242424242424242', email = 'customer@example.com', three_d_secure: threeDS = 'complete', method = 'card' } = {}) {
    const session = get('checkout session', id, 'checkout.session');
    if (session.status !== 'open') throw invalid(`This Checkout Session is no longer open (${session.status}).`);
    const emitted = [];
    if (method === 'delayed') {
      if (session.mode !== 'payment') throw invalid('A delayed payment method completes payment-mode sessions only.', { param: 'method' });
      const pm = newBankMethod(email);
      const futureUsage = futureUsageOf(session.id, pm.type);
      const pi = store(fromFixture('payment_intent', { id: newId('pi'), object: 'payment_intent', amount: session.amount_total, amount_received: 0, currency: session.currency, customer: session.customer, payment_method: pm.id, description: null, metadata: {}, status: 'processing', payment_method_types: ['us_bank_account'], setup_future_usage: futureUsage, created: now(), livemode: false }));
      if (session.customer && futureUsage) pm.customer = session.customer;
      Object.assign(session, { status: 'complete', payment_status: 'unpaid', payment_intent: pi.id, customer_details: { ...FIXTURES['checkout.session'].customer_details, email } });
      emitted.push(emitAndKeep('payment_intent.processing', pi));
      emitted.push(emitAndKeep('checkout.session.completed', session));
      return { session, emitted };
    }
    const test = TEST_CARDS[card];
    if (!test) throw invalid(`Unknown test card ${card}.`, { param: 'card' });
    if (session.mode === 'payment' && test.outcome !== 'succeeded') {
      throw new ApiError(402, { type: 'card_error', code: test.code, decline_code: test.decline_code, message: test.message });
    }
    const pm = newCardMethod(card, test, email);
    if (session.mode === 'setup') {
      const siId = session.setup_intent ?? newId('seti');
      const si = objects.get(siId) ?? store(fromFixture('setup_intent', { id: siId, object: 'setup_intent', client_secret: `${siId}_secret_${newId('x', 30).slice(2)}`, customer: session.customer, usage: 'off_session', created: now(), livemode: false }));
      session.setup_intent = si.id;
      const failSetup = (error) => {
        Object.assign(si, { status: 'requires_payment_method', payment_method: null, next_action: null, last_setup_error: { ...error, payment_method: structuredClone(pm) } });
        emitted.push(emitAndKeep('setup_intent.setup_failed', si));
        return { session, emitted, setupIntent: si, declined: error };
      };
      if (test.setup === 'declined') {
        return failSetup({ type: 'card_error', code: 'card_declined', decline_code: test.decline_code, message: test.message, doc_url: 'https://docs.stripe.com/error-codes/card-declined' });
      }
      if (test.setup === '3ds' && threeDS !== 'complete') {
        if (threeDS === 'fail') {
          return failSetup({ type: 'invalid_request_error', code: 'setup_intent_authentication_failure', message: 'The latest attempt to set up the payment method has failed because authentication failed.', doc_url: 'https://docs.stripe.com/error-codes/setup-intent-authentication-failure' });
        }
        Object.assign(si, { status: 'requires_action', payment_method: pm.id, last_setup_error: null, next_action: { type: 'use_stripe_sdk', use_stripe_sdk: { type: 'three_d_secure_redirect', stripe_js: `${publicBase}/c/3ds/${si.id}` } } });
        emitted.push(emitAndKeep('setup_intent.requires_action', si));
        return { session, emitted, setupIntent: si, requiresAction: true };
      }
      if (session.customer) pm.customer = session.customer;
      Object.assign(si, { status: 'succeeded', payment_method: pm.id, last_setup_error: null, next_action: null });
      emitted.push(emitAndKeep('setup_intent.succeeded', si));
    } else {
      const futureUsage = futureUsageOf(session.id, pm.type);
      const pi = store(fromFixture('payment_intent', { id: newId('pi'), object: 'payment_intent', amount: session.amount_total, amount_received: session.amount_total, currency: session.currency, customer: session.customer, payment_method: pm.id, description: null, metadata: {}, status: 'succeeded', last_payment_error: null, latest_charge: newId('ch'), setup_future_usage: futureUsage, created: now(), livemode: false }));
      // Stripe keeps (attaches) the payment method only when the session asked for it with
      // payment_intent_data[setup_future_usage] (docs: "Save payment details during payment").
      if (session.customer && futureUsage) pm.customer = session.customer;
      session.payment_intent = pi.id;
      session.payment_status = 'paid';
      emitted.push(emitAndKeep('payment_intent.succeeded', pi));
    }
    session.customer_details = { ...FIXTURES['checkout.session'].customer_details, email };
    session.status = 'complete';
    emitted.push(emitAndKeep('checkout.session.completed', session));
    return { session, emitted };
  }

  /**
   * A bank debit confirmed off-session: refused at once when the charge's currency is not the
   * debit's own (SEPA Direct Debit debits "EUR-denominated" accounts only, Stripe's SEPA docs;
   * ACH Direct Debit is USD), with the SDK's code for a method whose currency does not match
   * (`payment_method_currency_mismatch`, PaymentIntents.d.ts LastPaymentError.Code); else
   * `processing` (a delayed notification method: the outcome comes days later, as
   * `payment_intent.succeeded` or `payment_intent.payment_failed`; POST
   * /_test/payment_intents/{id}/settle here).
   */
  function confirmDebit(pi, method, request) {
    if (pi.currency !== DEBIT_CURRENCY[method.type]) {
      throw new ApiError(400, {
        type: 'invalid_request_error',
        code: 'payment_method_currency_mismatch',
        param: 'currency',
        message: `The currency provided (${pi.currency}) is not supported by the ${method.type} PaymentMethod ${method.id}, which supports ${DEBIT_CURRENCY[method.type]} only.`,
        doc_url: 'https://docs.stripe.com/error-codes/payment-method-currency-mismatch',
      });
    }
    Object.assign(pi, { status: 'processing', payment_method_types: [method.type] });
    emitAndKeep('payment_intent.processing', pi, request);
    return pi;
  }

  /** A bank debit that was `processing` succeeds or fails, as the bank answers days later. */
  function settleDebit(id, { outcome = 'succeeded' } = {}) {
    const pi = get('payment intent', id, 'payment_intent');
    if (pi.status !== 'processing') throw invalid(`This PaymentIntent is not processing (${pi.status}).`);
    if (outcome === 'succeeded') {
      Object.assign(pi, { status: 'succeeded', amount_received: pi.amount, latest_charge: newId('py') });
      return { payment_intent: pi, emitted: [emitAndKeep('payment_intent.succeeded', pi)] };
    }
    if (outcome !== 'failed') throw invalid('outcome must be succeeded or failed', { param: 'outcome' });
    const error = { type: 'card_error', code: 'payment_method_provider_decline', message: 'The payment was declined by the bank.', payment_method: structuredClone(objects.get(pi.payment_method)) };
    Object.assign(pi, { status: 'requires_payment_method', last_payment_error: error });
    return { payment_intent: pi, emitted: [emitAndKeep('payment_intent.payment_failed', pi)] };
  }

  /**
   * A bank account the customer gave elsewhere (the Dashboard, another integration), attached
   * to `customer`: `us_bank_account` (ACH, Stripe's test account 000123456789) or
   * `sepa_debit` (Stripe's test IBAN DE89370400440532013000).
   */
  function attachDebit(customerId, { type = 'us_bank_account', email = 'customer@example.com' } = {}) {
    get('customer', customerId, 'customer');
    let pm;
    if (type === 'us_bank_account') pm = newBankMethod(email);
    else if (type === 'sepa_debit') {
      pm = store(fromFixture('payment_method', {
        id: newId('pm'), object: 'payment_method', type: 'sepa_debit', customer: null, created: now(), livemode: false, card: null,
        billing_details: { ...FRESH.payment_method.billing_details, email, name: 'Jenny Rosen' },
        sepa_debit: { bank_code: '37040044', branch_code: null, country: 'DE', fingerprint: newId('fp', 16).slice(3), generated_from: null, last4: '3000' },
      }));
    } else throw invalid('type must be us_bank_account or sepa_debit', { param: 'type' });
    pm.customer = customerId;
    return pm;
  }

  /** A delayed payment of a completed, unpaid payment-mode session succeeds or fails. */
  function settleCheckout(id, { outcome = 'succeeded' } = {}) {
    const session = get('checkout session', id, 'checkout.session');
    const pi = session.payment_intent && objects.get(session.payment_intent);
    if (session.status !== 'complete' || session.payment_status !== 'unpaid' || pi?.status !== 'processing') {
      throw invalid(`This Checkout Session has no delayed payment in progress (${session.status}, ${session.payment_status}).`);
    }
    const emitted = [];
    if (outcome === 'succeeded') {
      Object.assign(pi, { status: 'succeeded', amount_received: pi.amount, latest_charge: newId('py') });
      session.payment_status = 'paid';
      emitted.push(emitAndKeep('payment_intent.succeeded', pi));
      emitted.push(emitAndKeep('checkout.session.async_payment_succeeded', session));
    } else if (outcome === 'failed') {
      const error = { type: 'card_error', code: 'payment_method_provider_decline', message: 'The payment was declined by the bank.', payment_method: structuredClone(objects.get(pi.payment_method)) };
      Object.assign(pi, { status: 'requires_payment_method', last_payment_error: error });
      emitted.push(emitAndKeep('payment_intent.payment_failed', pi));
      emitted.push(emitAndKeep('checkout.session.async_payment_failed', session));
    } else throw invalid('outcome must be succeeded or failed', { param: 'outcome' });
    return { session, emitted };
  }

  /** An open session expires (Stripe: after expires_at, or POST /v1/checkout/sessions/{id}/expire). */
  function expireCheckout(id) {
    const session = get('checkout session', id, 'checkout.session');
    if (session.status !== 'open') throw invalid(`Only Checkout Sessions with a status in ["open"] can be expired (this one is ${session.status}).`);
    Object.assign(session, { status: 'expired', url: null });
    return { session, emitted: [emitAndKeep('checkout.session.expired', session)] };
  }

  function moveIdentity(id, status, { code, reason } = {}) {
    const session = get('verification session', id, 'identity.verification_session');
    const allowed = ['verified', 'requires_input', 'processing', 'canceled', 'redacted'];
    if (!allowed.includes(status)) throw invalid(`Unknown status ${status}; one of ${allowed.join(', ')}.`);
    session.status = status === 'redacted' ? session.status : status;
    session.last_error = status === 'requires_input' ? { code: code ?? 'document_unverified_other', reason: reason ?? 'The document could not be verified.' } : null;
    // Stripe's redaction (VerificationSessions.d.ts, `redact`): personal data replaced, and
    // "The metadata field will also be erased".
    if (status === 'redacted') Object.assign(session, { redaction: { status: 'redacted' }, metadata: {} });
    if (status === 'verified') session.last_verification_report = newId('vr');
    const type = `identity.verification_session.${status}`;
    return { session, emitted: [emitAndKeep(type, session)] };
  }

  async function settle(emitted) {
    const results = await Promise.all(emitted.map((e) => e.delivered));
    return emitted.map((e, i) => ({ event: e.event, deliveries: results[i] }));
  }

  // ------------------------------------------------------------------ HTTP plumbing
  function send(res, status, body, headers = {}) {
    const text = typeof body === 'string' ? body : JSON.stringify(body, null, 2);
    res.writeHead(status, { 'content-type': 'application/json', 'request-id': headers['request-id'] ?? newId('req', 14), 'stripe-version': apiVersion, ...headers });
    res.end(text);
  }

  function takeFault(method, path) {
    const index = faults.findIndex((f) => (!f.method || f.method === method) && path.startsWith(f.path));
    if (index === -1) return null;
    const fault = faults[index];
    if (--fault.times <= 0) faults.splice(index, 1);
    return fault;
  }

  async function readBody(req) {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    return Buffer.concat(chunks).toString('utf8');
  }

  /** An API v2 request body: a JSON object. */
  function parseJsonBody(text) {
    let body;
    try {
      body = text ? JSON.parse(text) : {};
    } catch {
      throw invalid('The request body is not valid JSON.');
    }
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw invalid('The request body must be a JSON object.');
    return body;
  }

  async function handleApi(req, res, url, bodyText) {
    const method = req.method;
    const path = url.pathname;
    const requestId = newId('req', 14);
    const idempotencyKey = req.headers['idempotency-key'] ?? null;
    const auth = req.headers.authorization ?? '';
    const record = {
      method, path, query: url.search, request_id: requestId, idempotency_key: idempotencyKey,
      stripe_version: req.headers['stripe-version'] ?? null, content_type: req.headers['content-type'] ?? null,
      authorized: /^Bearer sk_test_\w+$/.test(auth), params: null, status: null, replayed: false, fault: null, at: Date.now(), settled: false,
    };
    requests.push(record);
    const reply = (status, body, headers = {}) => {
      record.status = status;
      send(res, status, body, { 'request-id': requestId, ...headers });
    };
    const fail = (e) => {
      if (e instanceof ApiError) {
        const error = { ...e.fields, request_log_url: `https://dashboard.stripe.com/test/logs/${requestId}` };
        return { status: e.status, body: { error }, headers: e.headers };
      }
      console.error(e);
      return { status: 500, body: { error: { type: 'api_error', message: 'An unknown error occurred in the stand-in.' } }, headers: {} };
    };

    // Parameters are recorded even for requests a fault then answers; a malformed body or
    // query is a 400 once the fault and authorization checks are passed.
    let params = {};
    let query = {};
    let paramsError = null;
    try {
      params = method === 'POST' ? (path.startsWith('/v2/') ? parseJsonBody(bodyText) : parseForm(bodyText)) : {};
      record.params = params;
      query = parseForm(url.search.slice(1));
    } catch (e) {
      paramsError = e;
    }

    const fault = takeFault(method, path);
    if (fault) {
      record.fault = fault.kind;
      if (fault.kind === 'reset') return req.socket.destroy();
      if (fault.kind === '500') return reply(500, { error: { type: 'api_error', message: 'An unknown error occurred' } }, fault.should_retry === undefined ? {} : { 'stripe-should-retry': String(fault.should_retry) });
      if (fault.kind === '429') return reply(429, { error: { type: 'invalid_request_error', code: 'rate_limit', message: 'Too many requests hit the API too quickly.' } });
      if (fault.kind === 'malformed') return reply(200, '{"id": "cus_trunc', {});
      if (fault.kind === '400') return reply(400, { error: { type: 'invalid_request_error', code: 'parameter_invalid_empty', message: 'Injected 400.' } });
      // 'slow': the request is carried out now and answered late, like a Stripe response that
      // outlives the client's timeout; a retry with the same key then gets the saved result.
    }

    if (!record.authorized) {
      return reply(401, { error: { type: 'invalid_request_error', message: 'Invalid API Key provided. Use a test-mode secret key (sk_test_…).' } });
    }
    const version = req.headers['stripe-version'];
    if (version !== undefined && !/^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$/.test(version)) {
      return reply(400, { error: { type: 'invalid_request_error', message: `Invalid Stripe API version: ${version}` } });
    }

    if (paramsError) {
      const { status, body } = fail(paramsError);
      return reply(status, body);
    }

    const route = routes.find((r) => r.method === method && r.regex.test(path));
    if (!route) {
      return reply(404, { error: { type: 'invalid_request_error', message: `Unrecognized request URL (${method}: ${path}).` } });
    }
    const args = path.match(route.regex).slice(1);

    const scope = idempotencyKey && method === 'POST' ? `${createHash('sha256').update(String(auth)).digest('hex')} ${idempotencyKey}` : null;
    const fingerprint = stableJson({ method, path, params });
    if (scope) {
      const saved = idempotency.get(scope);
      if (saved) {
        record.replayed = true;
        if (saved.fingerprint !== fingerprint) {
          return reply(400, { error: { type: 'idempotency_error', message: `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${idempotencyKey}' if you meant to execute a different request.` } });
        }
        return reply(saved.status, saved.body, { 'idempotent-replayed': 'true', 'original-request': saved.requestId });
      }
      if (inFlight.has(scope)) {
        return reply(409, { error: { type: 'idempotency_error', code: 'idempotency_key_in_use', message: 'There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through): ' + idempotencyKey + '. Please try again later.' } });
      }
      inFlight.add(scope);
    }
    // Stripe's definitions judge the parameters: the pinned SDK's type for this call, as JSON
    // Schema (standin/schemas, tools/gen-stripe-schemas.mjs). A violation is not executed, so
    // nothing is saved under its idempotency key (below).
    const checked = validateParams(route.key, method === 'POST' ? params : query);
    if (!checked.ok) {
      const violation = {
        method, path, schema: checked.schema, ...checked.error, request_id: requestId, idempotency_key: idempotencyKey,
        expected: req.headers['standin-expected-violation'] ?? null, at: Date.now(),
      };
      violations.push(violation);
      violationLedger.push(violation);
      record.violation = violation;
      if (scope) inFlight.delete(scope);
      return reply(400, { error: { type: 'invalid_request_error', ...checked.error, doc_url: checked.error.code ? `https://docs.stripe.com/error-codes/${checked.error.code.replace(/_/g, '-')}` : undefined, request_log_url: `https://dashboard.stripe.com/test/logs/${requestId}` } });
    }
    let outcome;
    try {
      outcome = { status: 200, body: await route.handler(params, args, query, { requestId, idempotencyKey }), headers: {} };
    } catch (e) {
      outcome = fail(e);
    }
    // 'crash': the endpoint ran, then Stripe failed: a 500 that is saved under the key like any
    // result of an executed request (below), so a retry with that key gets the same 500.
    if (fault?.kind === 'crash') outcome = { status: 500, body: { error: { type: 'api_error', message: 'An unknown error occurred' } }, headers: {} };
    // 'slow': the request stays in progress until it answers, so the same key meanwhile is a 409.
    if (fault?.kind === 'slow') await new Promise((r) => setTimeout(r, fault.delay_ms ?? 30_000));
    if (scope) {
      inFlight.delete(scope);
      // Like Stripe ("results are only saved if an API endpoint started executing … including
      // 500 errors"; not when the parameters failed validation, or the request conflicted with
      // one in progress, the 409 above): a 402 decline, a 404 of an object it looked up and a
      // 500 of an executed request are saved and replayed. The injected faults 500, 429, 400,
      // malformed and reset answered before anything ran (above): they model a request that
      // never reached Stripe or never executed, so nothing is saved for them.
      const failedValidation = outcome.status === 400 && outcome.body?.error?.type === 'invalid_request_error';
      if (!failedValidation) idempotency.set(scope, { fingerprint, status: outcome.status, body: outcome.body, requestId });
    }
    // Executed, its key free again: a test waits for this, not for a time, before a retry.
    record.settled = true;
    if (res.destroyed) return;
    reply(outcome.status, outcome.body, outcome.headers);
  }

  async function handleTest(req, res, url, bodyText) {
    // A test route's body: JSON when it is sent as JSON or looks like a JSON object (`curl -d
    // '{"code":…}'` says application/x-www-form-urlencoded), else the Checkout page's form.
    const json = () => {
      if (!bodyText) return {};
      const isJson = (req.headers['content-type'] ?? '').includes('json') || bodyText.trimStart().startsWith('{');
      return isJson ? JSON.parse(bodyText) : Object.fromEntries(new URLSearchParams(bodyText));
    };
    const p = url.pathname;
    let m;
    try {
      if (p === '/_test/requests' && req.method === 'GET') return send(res, 200, requests);
      if (p === '/_test/violations' && req.method === 'GET') {
        const unexpected = violations.filter((v) => !v.expected);
        return send(res, 200, { count: unexpected.length, expected: violations.length - unexpected.length, violations });
      }
      if (p === '/_test/reset' && req.method === 'POST') {
        requests.length = 0;
        violations.length = 0;
        faults.length = 0;
        deliveries.length = 0;
        outage = false;
        for (const k of Object.keys(counts)) counts[k] = 0;
        return send(res, 200, { reset: true });
      }
      if (p === '/_test/faults' && req.method === 'POST') {
        const fault = { times: 1, ...json() };
        if (!['500', '429', '400', 'slow', 'malformed', 'reset', 'crash'].includes(String(fault.kind))) throw invalid('kind must be one of 500, 429, 400, slow, malformed, reset, crash');
        if (!fault.path?.startsWith('/v1/')) throw invalid('path must be a /v1/ prefix');
        faults.push({ ...fault, kind: String(fault.kind) });
        return send(res, 200, faults);
      }
      if (p === '/_test/faults' && req.method === 'DELETE') {
        faults.length = 0;
        return send(res, 200, faults);
      }
      if (p === '/_test/deliveries' && req.method === 'GET') {
        await Promise.all([...pending]);
        return send(res, 200, deliveries);
      }
      if (p === '/_test/objects' && req.method === 'GET') return send(res, 200, [...objects.values()]);
      if (p === '/_test/endpoints' && req.method === 'GET') return send(res, 200, endpoints.map((e) => ({ ...e, secret: undefined })));
      if (p === '/_test/endpoints' && req.method === 'POST') {
        // Where the stand-in delivers its events, signed with `secret`: lets a test start the
        // stand-in first (for STRIPE_API_BASE) and point it at the worker once that is up.
        const { url: target, secret, enabled_events: enabled = ['*'], event_payload: payload = 'snapshot' } = json();
        if (!['snapshot', 'thin'].includes(payload)) throw invalid('event_payload must be snapshot or thin');
        if (!/^http:\/\/127\.0\.0\.1:\d+\//.test(target ?? '')) throw invalid('url must be http://127.0.0.1:PORT/…');
        if (!/^whsec_\w+$/.test(secret ?? '')) throw invalid('secret must be a whsec_ string');
        const endpoint = { id: newId(payload === 'thin' ? 'ed' : 'we'), object: 'webhook_endpoint', url: target, secret, enabled_events: [enabled].flat(), event_payload: payload, api_version: apiVersion, status: 'enabled' };
        endpoints.push(endpoint);
        return send(res, 200, { ...endpoint, secret: undefined });
      }
      if ((m = p.match(/^\/_test\/checkout\/sessions\/([\w]+)\/complete$/)) && req.method === 'POST') {
        const browser = (req.headers.accept ?? '').includes('text/html');
        const input = json();
        if (browser) {
          // A browser's form answers a page, never JSON: a session no longer open (paid in
          // another tab, reloaded after paying) shows what became of it, a declined payment
          // the Checkout page again with the decline.
          const session = objects.get(m[1]);
          if (session?.object !== 'checkout.session') return html(res, missingSessionPage(), 404);
          if (session.status !== 'open') return html(res, closedSessionPage(session));
          // The Checkout page asks for 3D Secure first: a browser's form without an answer
          // gets the authentication page (a JSON caller's default is to complete it).
          if (TEST_CARDS[input.card]?.setup === '3ds' && !input.three_d_secure && session.mode === 'setup') {
            return html(res, threeDSPage(session, input));
          }
          if (session.mode === 'payment' && TEST_CARDS[input.card] && TEST_CARDS[input.card].outcome !== 'succeeded' && input.method !== 'delayed') {
            return html(res, checkoutPage(session, TEST_CARDS[input.card].message));
          }
        }
        const { session, emitted, declined, setupIntent, requiresAction } = completeCheckout(m[1], input);
        const events = await settle(emitted);
        if (browser && declined) return html(res, checkoutPage(session, declined.message));
        if (browser && session.status === 'complete' && session.success_url) {
          res.writeHead(303, { location: session.success_url.replace('{CHECKOUT_SESSION_ID}', session.id) });
          return res.end();
        }
        if (declined) return send(res, 402, { error: declined, session, setup_intent: setupIntent, events });
        return send(res, 200, { session, events, ...(requiresAction ? { setup_intent: setupIntent } : {}) });
      }
      if ((m = p.match(/^\/_test\/checkout\/sessions\/([\w]+)\/settle$/)) && req.method === 'POST') {
        const { session, emitted } = settleCheckout(m[1], json());
        return send(res, 200, { session, events: await settle(emitted) });
      }
      if ((m = p.match(/^\/_test\/checkout\/sessions\/([\w]+)\/expire$/)) && req.method === 'POST') {
        const { session, emitted } = expireCheckout(m[1]);
        return send(res, 200, { session, events: await settle(emitted) });
      }
      if ((m = p.match(/^\/_test\/identity\/verification_sessions\/([\w]+)\/(\w+)$/)) && req.method === 'POST') {
        const { session, emitted } = moveIdentity(m[1], m[2], json());
        const events = await settle(emitted);
        // A browser's button on the hosted page: back to the app, as Stripe's page returns there.
        if ((req.headers.accept ?? '').includes('text/html')) {
          if (session.return_url) {
            res.writeHead(303, { location: session.return_url });
            return res.end();
          }
          return html(res, identityPage(session));
        }
        return send(res, 200, { session, events });
      }
      if ((m = p.match(/^\/_test\/payment_intents\/(pi_\w+)\/settle$/)) && req.method === 'POST') {
        const { payment_intent: pi, emitted } = settleDebit(m[1], json());
        return send(res, 200, { payment_intent: pi, events: await settle(emitted) });
      }
      if ((m = p.match(/^\/_test\/customers\/(cus_\w+)\/bank_accounts$/)) && req.method === 'POST') {
        return send(res, 200, attachDebit(m[1], json()));
      }
      if (p === '/_test/idempotency/forget' && req.method === 'POST') {
        // Stripe may prune a key once it is at least 24 hours old, and then executes a reused
        // key as a new request (docs.stripe.com/idempotency): every key is forgotten now.
        const forgotten = idempotency.size;
        idempotency.clear();
        return send(res, 200, { forgotten });
      }
      if (p === '/_test/outage' && req.method === 'POST') {
        outage = Boolean(json().on);
        return send(res, 200, { outage });
      }
      if (p === '/_test/counts' && req.method === 'GET') return send(res, 200, counts);
      if (p === '/_test/events/generation_failure' && req.method === 'POST') {
        // Stripe could not generate an event for `object` (of `event_type`): the alert it sends
        // once resolved, v2.core.health.event_generation_failure.resolved (public preview, not in
        // the SDK's types; shaped from docs.stripe.com/webhooks/handle-irrecoverable-events). The
        // thin event carries no data; GET /v2/core/events/{id} answers it with `data`.
        const { event_type: eventType = 'payment_intent.requires_action', object_id: objectId = newId('pi') } = json();
        const type = 'v2.core.health.event_generation_failure.resolved';
        const thin = { id: newId('evt'), object: 'v2.core.event', type, created: new Date().toISOString(), livemode: false };
        const data = {
          alert_id: newId('halert'), grouping_key: newId('_grouping'), impact: { event_type: eventType, related_object_id: objectId },
          resolved_at: new Date().toISOString(), summary: 'Stripe failed to generate an event', severity: 'critical',
        };
        thinEvents.set(thin.id, { ...thin, data });
        const results = await Promise.all(endpoints.filter((e) => e.event_payload === 'thin' && e.enabled_events.includes(type)).map((e) => deliver(thin, e)));
        return send(res, 200, { event: thin, deliveries: results });
      }
      if (p === '/_test/redeliver-failed' && req.method === 'POST') {
        // Late deliveries (Stripe's retries after an outage): every event not yet delivered 2xx.
        const late = [...events.values()].filter((e) => delivered.get(e.id) === false || delivered.get(thinTwinOf(e.id)?.id) === false);
        const results = await Promise.all(late.flatMap(redeliver));
        return send(res, 200, { redelivered: late.map((e) => e.id), deliveries: results });
      }
      if ((m = p.match(/^\/_test\/events\/(evt_\w+)\/redeliver$/)) && req.method === 'POST') {
        const event = events.get(m[1]);
        if (!event) throw missing('event', m[1]);
        const results = await Promise.all(redeliver(event));
        return send(res, 200, { event, deliveries: results });
      }
      if ((m = p.match(/^\/_test\/identity\/(vs_\w+)$/)) && req.method === 'GET') {
        return html(res, identityPage(get('verification session', m[1], 'identity.verification_session')));
      }
      return send(res, 404, { error: { type: 'invalid_request_error', message: `No test route ${req.method} ${p}` } });
    } catch (e) {
      if (e instanceof ApiError) return send(res, e.status, { error: e.fields });
      if (e instanceof SyntaxError) return send(res, 400, { error: { type: 'invalid_request_error', message: 'Body is not JSON.' } });
      throw e;
    }
  }

  // Pages that fit a phone: the viewport tag, one narrow column, long ids wrapped.
  function html(res, body, status = 200) {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>Stripe stand-in</title><body style="font-family:sans-serif;max-width:32em;margin:2em auto;padding:0 1em;overflow-wrap:anywhere">${body}</body></html>`);
  }
  const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const successUrl = (session) => session.success_url?.replace('{CHECKOUT_SESSION_ID}', session.id);

  function missingSessionPage() {
    return '<h1>Checkout Session not found</h1><p>This Checkout link is not known here.</p>';
  }
  /** A session that is no longer open: what became of it, and where to go on. */
  function closedSessionPage(session) {
    const back = successUrl(session);
    if (session.status === 'complete') {
      const what = session.mode === 'setup'
        ? '<h1>Card saved</h1><p>This Checkout Session is complete: the card is saved.</p>'
        : session.payment_status === 'paid'
          ? `<h1>Payment complete</h1><p>This Checkout Session is paid${session.amount_total == null ? '' : `: ${escape(formatAmount(session.amount_total, session.currency))}`}.</p>`
          : '<h1>Payment processing</h1><p>This Checkout Session is complete; its payment is on its way.</p>';
      return `${what}${back ? `<p><a href="${escape(back)}">Return to the merchant</a></p>` : ''}`;
    }
    return '<h1>Checkout Session expired</h1><p>This Checkout Session has expired and can no longer be completed.</p>';
  }

  function threeDSPage(session, { card, email = '' }) {
    const hidden = `<input type="hidden" name="card" value="${escape(card)}"><input type="hidden" name="email" value="${escape(email)}">`;
    const action = `/_test/checkout/sessions/${escape(session.id)}/complete`;
    return `<h1>3D Secure authentication</h1><p>Your bank asks you to confirm card ending in ${escape(card.slice(-4))} (test).</p>
      <form method="post" action="${action}">${hidden}<input type="hidden" name="three_d_secure" value="complete"><button type="submit">Complete authentication</button></form><br>
      <form method="post" action="${action}">${hidden}<input type="hidden" name="three_d_secure" value="fail"><button type="submit">Fail authentication</button></form>`;
  }
  function checkoutPage(session, declineMessage) {
    const describe = (c) => (c.setup === 'declined' ? `declined when saved: ${c.decline_code}` : c.setup === '3ds' ? '3D Secure when saved, then authentication_required' : c.outcome === 'succeeded' ? 'succeeds' : `saved, then declined: ${c.decline_code}`);
    const options = Object.entries(TEST_CARDS).map(([n, c]) => `<option value="${n}">${n} (${c.brand}, ${session.mode === 'setup' ? describe(c) : c.outcome})</option>`).join('');
    const delayed = session.mode === 'payment'
      ? `<form method="post" action="/_test/checkout/sessions/${escape(session.id)}/complete"><input type="hidden" name="method" value="delayed"><button type="submit">Pay by bank debit (delayed)</button></form>`
      : '';
    return `<h1>Checkout (${escape(session.mode)} mode)</h1><p>Local Stripe stand-in: no card data leaves this machine.</p>
      ${declineMessage ? `<p role="alert" style="color:#b00">${escape(declineMessage)}</p>` : ''}
      ${(sessionOptions.get(session.id)?.items ?? []).map((item) => `<p>${escape(item.name)}${item.quantity > 1 ? ` × ${item.quantity}` : ''}: ${escape(formatAmount(item.unit_amount * item.quantity, session.currency))}</p>`).join('')}
      ${session.amount_total ? `<p>Amount: ${escape(formatAmount(session.amount_total, session.currency))}</p>` : ''}
      <form method="post" action="/_test/checkout/sessions/${escape(session.id)}/complete">
      <label>Test card <select name="card" style="max-width:100%">${options}</select></label><br><br>
      <label>Email <input name="email" value="customer@example.com"></label><br><br>
      <button type="submit">${session.mode === 'setup' ? 'Save card' : 'Pay'}</button></form>${delayed}`;
  }
  /**
   * The hosted verification page: in test mode Stripe lets the user choose the outcome; here each
   * button moves the session (and delivers its event) as the test route does, then returns to the
   * session's return_url, or to this page showing the new status.
   */
  function identityPage(session) {
    const action = (status) => `/_test/identity/verification_sessions/${escape(session.id)}/${status}`;
    const button = (status, label, fields = {}) => `<form method="post" action="${action(status)}">${Object.entries(fields).map(([k, v]) => `<input type="hidden" name="${k}" value="${escape(v)}">`).join('')}<button type="submit">${escape(label)}</button></form><br>`;
    const open = session.status === 'requires_input' || session.status === 'processing';
    return `<h1>Identity verification</h1><p>Local Stripe stand-in: no document leaves this machine.</p>
      <p>Session ${escape(session.id)}: <strong>${escape(session.status)}</strong>${session.last_error ? ` (${escape(session.last_error.code)})` : ''}</p>
      ${open ? `${button('verified', 'Verify')}${button('processing', 'Submit for checking (processing)')}${button('requires_input', 'Fail: document expired', { code: 'document_expired', reason: 'The document is expired.' })}${button('requires_input', 'Fail: selfie does not match', { code: 'selfie_face_mismatch', reason: 'The selfie does not match the document.' })}${button('canceled', 'Cancel')}` : '<p>This session is no longer open.</p>'}
      ${session.return_url ? `<p><a href="${escape(session.return_url)}">Return to the app</a></p>` : ''}`;
  }

  const server = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url, 'http://127.0.0.1');
      const bodyText = await readBody(req);
      if (url.pathname.startsWith('/v1/') || url.pathname.startsWith('/v2/')) return await handleApi(req, res, url, bodyText);
      if (url.pathname.startsWith('/_test/')) return await handleTest(req, res, url, bodyText);
      let m;
      if ((m = url.pathname.match(/^\/c\/pay\/(cs_\w+)$/)) && req.method === 'GET') {
        const session = objects.get(m[1]);
        if (session?.object !== 'checkout.session') return html(res, missingSessionPage(), 404);
        return html(res, session.status === 'open' ? checkoutPage(session) : closedSessionPage(session));
      }
      return send(res, 404, { error: { type: 'invalid_request_error', message: `Unrecognized request URL (${req.method}: ${url.pathname}).` } });
    } catch (e) {
      console.error(e);
      if (!res.headersSent) send(res, 500, { error: { type: 'api_error', message: 'stand-in failure' } });
    } finally {
      save();
    }
  });

  return {
    server,
    violations: () => violations.slice(),
    async listen(port = 0) {
      await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', resolve);
      });
      publicBase = `http://127.0.0.1:${server.address().port}`;
      return publicBase;
    },
    close: () => new Promise((resolve) => {
      server.closeAllConnections?.();
      server.close(() => {
        save();
        resolve();
      });
    }),
  };
}

// CLI
if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name, fallback) => {
    const i = process.argv.indexOf(`--${name}`);
    return i === -1 ? fallback : process.argv[i + 1];
  };
  const standIn = createStandIn({ webhookUrl: arg('webhook-url'), webhookSecret: process.env.STANDIN_WEBHOOK_SECRET || arg('webhook-secret'), stateFile: arg('state') });
  const url = await standIn.listen(Number(arg('port', '12111')));
  console.log(`Stripe stand-in listening on ${url}`);
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => standIn.close().then(() => process.exit(0)));
}
