// Validates the decoded form/query parameters of a /v1 request against the JSON Schema that
// tools/gen-stripe-schemas.mjs derived from the pinned SDK's parameter type for that call
// (standin/schemas/*.json), with ajv, unknown properties refused. A violation is described the
// way Stripe answers it: 400 invalid_request_error with `code`, `param` and Stripe's message
// ("Received unknown parameter: payment_method_types", "Missing required param: customer.",
// "Invalid integer: abc", …).
//
// Form values are strings, so they are first read as the schema's types, as Stripe reads them:
// "123" where the schema has a number (Stripe's integers; the SDK types them `number`),
// "true"/"false" where it has a boolean, brackets as objects, `a[]`/`a[0]` as arrays, and "" only
// where the type allows it (the SDK's `Emptyable<T>` = `null | '' | T`, or a nullable type: "" unsets); any other
// empty string is refused like Stripe refuses it (parameter_invalid_empty).

import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv from 'ajv';

const DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'schemas');

/** The SDK parameter type of each call the stand-in serves. */
export const SCHEMA_OF = {
  'POST /v1/customers': 'CustomerCreateParams',
  'GET /v1/customers/:id': 'CustomerRetrieveParams',
  'POST /v1/checkout/sessions': 'Checkout.SessionCreateParams',
  'GET /v1/checkout/sessions/:id': 'Checkout.SessionRetrieveParams',
  'GET /v1/setup_intents/:id': 'SetupIntentRetrieveParams',
  'GET /v1/payment_methods/:id': 'PaymentMethodRetrieveParams',
  'POST /v1/payment_methods/:id/attach': 'PaymentMethodAttachParams',
  'GET /v1/payment_intents/:id': 'PaymentIntentRetrieveParams',
  'POST /v1/payment_intents': 'PaymentIntentCreateParams',
  'POST /v1/identity/verification_sessions': 'Identity.VerificationSessionCreateParams',
  'GET /v1/identity/verification_sessions/:id': 'Identity.VerificationSessionRetrieveParams',
  'POST /v1/webhook_endpoints': 'WebhookEndpointCreateParams',
  'GET /v1/events': 'EventListParams',
  'GET /v1/events/:id': 'EventRetrieveParams',
  'GET /v2/core/events': 'V2.Core.EventListParams',
  'GET /v2/core/events/:id': 'V2.Core.EventRetrieveParams',
  'POST /v2/core/event_destinations': 'V2.Core.EventDestinationCreateParams',
};

/**
 * API v2 times are RFC 3339 strings (docs.stripe.com/api/v2/core/events/list: `created.gte` is a
 * "timestamp", as an event's own `created` "2024-09-17T06:20:52.246Z"), while the SDK's
 * `RangeQueryParam` types the `created` filter as a number. Stripe's docs win: the filter is
 * checked as RFC 3339 here, and read as a number of milliseconds for the SDK's schema.
 */
export const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
function v2Times(route, params) {
  // A `next_page_url` carries only its page token (Stripe's docs list `page`; the SDK follows
  // the URL and has no parameter for it): the filters it holds were checked on the first page.
  if (route === 'GET /v2/core/events' && params.page !== undefined) {
    return Object.keys(params).length === 1 ? { params: {} } : { error: { param: 'page', message: 'page is used alone' } };
  }
  if (route !== 'GET /v2/core/events' || !params.created || typeof params.created !== 'object') return { params };
  const created = {};
  for (const [k, v] of Object.entries(params.created)) {
    if (typeof v !== 'string' || !RFC3339.test(v) || Number.isNaN(Date.parse(v))) {
      return { error: { param: `created[${k}]`, message: `Invalid timestamp for created[${k}]: must be an RFC 3339 time like 2026-10-01T12:00:00.000Z` } };
    }
    created[k] = String(Date.parse(v));
  }
  return { params: { ...params, created } };
}

/**
 * Checks an object the stand-in answers or delivers in API v2 against the SDK's interface
 * `type` (standin/schemas/<type>.json): `{ ok }`, or `{ ok: false, error }` saying where it
 * differs. fixtures3.json has no v2 objects, so these are the stand-in's own check.
 */
export function validateAnswer(type, object) {
  const entry = schemas.get(type);
  if (!entry) return { ok: false, error: { message: `no schema ${type}` } };
  if (entry.check(object)) return { ok: true };
  const e = entry.check.errors[0];
  return { ok: false, error: { param: e.instancePath || '/', message: `${type}: ${e.instancePath} ${e.message} ${JSON.stringify(e.params)}` } };
}

const ajv = new Ajv({ allErrors: true, strict: false });
const schemas = new Map();
for (const file of readdirSync(DIR).filter((f) => f.endsWith('.json'))) {
  const schema = JSON.parse(readFileSync(path.join(DIR, file), 'utf8'));
  schemas.set(file.slice(0, -5), { schema, check: ajv.compile(schema) });
}

/** Stripe's bracket notation for a path of keys: line_items[0][price_data]. */
export const paramName = (keys) => keys.map((k, i) => (i === 0 ? String(k) : `[${k}]`)).join('');

const branches = (schema) => (schema.anyOf ? schema.anyOf.flatMap(branches) : [schema]);
const types = (s) => (s.type === undefined ? (s.const !== undefined ? [typeof s.const] : ['any']) : [s.type].flat());
const allows = (s, type) => types(s).includes(type) || types(s).includes('any');
// `Emptyable<string>` collapses to ["string", "null"] in the schema: on a form, "" is how null is sent.
const allowsEmpty = (s) => s.const === '' || (Array.isArray(s.enum) && s.enum.includes('')) || [s.type].flat().includes('null');

/**
 * Reads the form tree as the schema's types. Returns the typed value; pushes a Stripe-shaped
 * violation onto `errors` where a value cannot be read as any type the schema allows.
 */
function coerce(value, schema, keys, errors) {
  if (!schema || schema === true) return value;
  const options = branches(schema);
  const param = paramName(keys);
  if (typeof value === 'string') {
    if (value === '') {
      if (options.some(allowsEmpty)) return '';
      errors.push({ code: 'parameter_invalid_empty', param, message: `You passed an empty string for '${param}'. We assume empty values are an attempt to unset a parameter; however '${param}' cannot be unset. You should remove '${param}' from your request or supply a non-empty value.` });
      return value;
    }
    if (options.some((s) => allows(s, 'string'))) return value;
    if (options.some((s) => allows(s, 'number') || allows(s, 'integer'))) {
      if (/^-?\d+$/.test(value)) return Number(value);
      errors.push({ code: 'parameter_invalid_integer', param, message: `Invalid integer: ${value}` });
      return value;
    }
    if (options.some((s) => allows(s, 'boolean'))) {
      if (value === 'true' || value === 'false') return value === 'true';
      errors.push({ param, message: `Invalid boolean: ${value}` });
      return value;
    }
    if (options.some((s) => allows(s, 'array'))) errors.push({ param, message: `Invalid array` });
    else if (options.some((s) => allows(s, 'object'))) errors.push({ param, message: `Invalid hash` });
    return value;
  }
  if (Array.isArray(value)) {
    const list = options.find((s) => allows(s, 'array') && s.type !== undefined);
    if (list) return value.map((item, i) => coerce(item, list.items, [...keys, i], errors));
    const object = options.find((s) => allows(s, 'object') && s.type !== undefined);
    if (object) return coerce(Object.fromEntries(value.map((v, i) => [String(i), v])), object, keys, errors);
    errors.push({ param, message: options.some((s) => allows(s, 'string') || allows(s, 'number')) ? `Invalid ${typeName(options)}` : 'Invalid value' });
    return value;
  }
  if (value && typeof value === 'object') {
    const objects = options.filter((s) => allows(s, 'object') && s.type !== undefined);
    if (objects.length === 0) {
      errors.push({ param, message: options.some((s) => allows(s, 'array')) ? 'Invalid array' : `Invalid ${typeName(options)}` });
      return value;
    }
    const fits = objects.find((s) => Object.keys(value).every((k) => s.properties?.[k] || s.additionalProperties)) ?? objects[0];
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      const child = fits.properties?.[k] ?? (typeof fits.additionalProperties === 'object' ? fits.additionalProperties : null);
      out[k] = child ? coerce(v, child, [...keys, k], errors) : v; // an unknown key: ajv refuses it
    }
    return out;
  }
  return value;
}
const typeName = (options) => (options.some((s) => allows(s, 'number')) ? 'integer' : options.some((s) => allows(s, 'boolean')) ? 'boolean' : 'string');

/** ajv's errors as Stripe's one error: unknown parameters first, then missing ones, then the rest. */
function fromAjv(errors) {
  const keysOf = (e) => e.instancePath.split('/').slice(1).map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'));
  const unknown = errors.find((e) => e.keyword === 'additionalProperties');
  if (unknown) {
    const param = paramName([...keysOf(unknown), unknown.params.additionalProperty]);
    return { code: 'parameter_unknown', param, message: `Received unknown parameter: ${param}` };
  }
  const need = errors.find((e) => e.keyword === 'required');
  if (need) {
    const param = paramName([...keysOf(need), need.params.missingProperty]);
    return { code: 'parameter_missing', param, message: `Missing required param: ${param}.` };
  }
  const meaningful = errors.filter((e) => !['anyOf', 'const'].includes(e.keyword) && !(e.keyword === 'type' && e.params.type === 'null'));
  const e = meaningful.sort((a, b) => keysOf(b).length - keysOf(a).length)[0] ?? errors[0];
  const keys = keysOf(e);
  const param = paramName(keys);
  if (e.keyword === 'enum') return { param, message: `Invalid ${param}: must be one of ${e.params.allowedValues.filter((v) => v !== null && v !== '').join(', ')}` };
  return { param, message: `Invalid value for ${param}: ${e.message}` };
}

/**
 * Validates `params` (decoded form/query) for `route` ("POST /v1/customers"). Returns
 * `{ ok: true, value }` with the typed parameters, or `{ ok: false, error }` with Stripe's
 * error fields (code, param, message; type invalid_request_error is the caller's).
 */
export function validateParams(route, params) {
  const type = SCHEMA_OF[route];
  const entry = type && schemas.get(type);
  if (!entry) throw new Error(`no schema for ${route}`);
  const times = v2Times(route, params);
  if (times.error) return { ok: false, error: times.error, schema: type };
  const errors = [];
  const value = coerce(times.params, entry.schema, [], errors);
  if (errors.length) return { ok: false, error: errors[0], schema: type };
  if (!entry.check(value)) return { ok: false, error: fromAjv(entry.check.errors), schema: type };
  return { ok: true, value, schema: type };
}
