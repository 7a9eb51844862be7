// Produces standin/schemas/*.json: one JSON Schema per Stripe API call the worker or the tools
// make, derived from the parameter types of the pinned official SDK (`stripe` in package.json,
// whose .d.ts files are generated from Stripe's OpenAPI spec for the API version it pins) with
// ts-json-schema-generator. Never edit the output by hand: the stand-in validates every /v1
// request against it (standin/validate.mjs), and the test command regenerates it and fails on
// any difference, so a new SDK version shows up as a diff.
//
// Usage: node tools/gen-stripe-schemas.mjs [output directory]   (default: standin/schemas)
//
// Strictness: `additionalProperties: false` on every object the types declare, as Stripe
// refuses a parameter it does not know (400 parameter_unknown). Index signatures (metadata)
// stay open, as in the types. One TypeScript program serves every type (about 6 s for the
// program, well under 1 s a type after that).
//
// One rewrite after generation: the SDK's `Decimal` is a branded class (unique-symbol brand
// properties, esm/Decimal.d.ts) that the SDK sends as its decimal string; the generator would
// turn it into an object with symbol-numbered keys, so it becomes a decimal string here.

import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createGenerator } from 'ts-json-schema-generator';
import { handledThinEventTypes, thinEventTypeName } from './common.mjs';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const output = path.resolve(process.argv[2] ?? path.join(root, 'standin/schemas'));
const sdk = path.join(root, 'node_modules/stripe');
const sdkVersion = JSON.parse(readFileSync(path.join(sdk, 'package.json'), 'utf8')).version;

/** The SDK type of each call, and the .d.ts that declares it (under esm/resources). */
export const CALLS = [
  ['Checkout.SessionCreateParams', 'Checkout/Sessions', 'POST /v1/checkout/sessions'],
  ['Checkout.SessionRetrieveParams', 'Checkout/Sessions', 'GET /v1/checkout/sessions/:id'],
  ['SetupIntentRetrieveParams', 'SetupIntents', 'GET /v1/setup_intents/:id'],
  ['CustomerCreateParams', 'Customers', 'POST /v1/customers'],
  ['CustomerRetrieveParams', 'Customers', 'GET /v1/customers/:id'],
  ['PaymentMethodAttachParams', 'PaymentMethods', 'POST /v1/payment_methods/:id/attach'],
  ['PaymentMethodRetrieveParams', 'PaymentMethods', 'GET /v1/payment_methods/:id'],
  ['PaymentIntentCreateParams', 'PaymentIntents', 'POST /v1/payment_intents'],
  ['PaymentIntentRetrieveParams', 'PaymentIntents', 'GET /v1/payment_intents/:id'],
  ['Identity.VerificationSessionCreateParams', 'Identity/VerificationSessions', 'POST /v1/identity/verification_sessions'],
  ['Identity.VerificationSessionRetrieveParams', 'Identity/VerificationSessions', 'GET /v1/identity/verification_sessions/:id'],
  ['WebhookEndpointCreateParams', 'WebhookEndpoints', 'POST /v1/webhook_endpoints'],
  ['EventListParams', 'Events', 'GET /v1/events'],
  ['EventRetrieveParams', 'Events', 'GET /v1/events/:id'],
  // API v2: thin events and event destinations (JSON bodies; v2 resources live under V2/).
  ['V2.Core.EventListParams', 'V2/Core/Events', 'GET /v2/core/events'],
  ['V2.Core.EventRetrieveParams', 'V2/Core/Events', 'GET /v2/core/events/:id'],
  ['V2.Core.EventDestinationCreateParams', 'V2/Core/EventDestinations', 'POST /v2/core/event_destinations'],
  // What the stand-in answers and delivers in v2 (fixtures3.json has no v2 objects): the
  // destination, and the thin event of each type the worker handles (the SDK's
  // V1…Event interfaces; their fetch methods are not data and are left out).
  ['EventDestination', 'V2/Core/EventDestinations', 'the answer of POST /v2/core/event_destinations'],
  ...handledThinEventTypes().map((type) => [thinEventTypeName(type), 'V2/Core/Events', `a thin ${type}`]),
];

const started = Date.now();
const files = [...new Set(CALLS.map(([, file]) => file))];
const generator = createGenerator({
  path: path.join(sdk, `esm/resources/{${files.join(',')}}.d.ts`),
  skipTypeCheck: true,
  additionalProperties: false,
  expose: 'none',
  topRef: false,
  jsDoc: 'none',
  sortProps: true,
});

const isBrandedDecimal = (node) =>
  node && node.type === 'object' && Object.keys(node.properties ?? {}).some((k) => k.startsWith('__@___brand@'));
function rewrite(node) {
  if (Array.isArray(node)) return node.map(rewrite);
  if (!node || typeof node !== 'object') return node;
  if (isBrandedDecimal(node)) return { type: 'string', pattern: '^-?\\d+(\\.\\d+)?$', $comment: 'stripe Decimal' };
  return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, rewrite(v)]));
}

mkdirSync(output, { recursive: true });
for (const name of readdirSync(output)) if (name.endsWith('.json')) rmSync(path.join(output, name));
for (const [type, file, call] of CALLS) {
  const schema = rewrite(generator.createSchema(type));
  const out = {
    $comment: `Generated by tools/gen-stripe-schemas.mjs from stripe@${sdkVersion} esm/resources/${file}.d.ts (${type}) for ${call}. Do not edit.`,
    ...schema,
  };
  writeFileSync(path.join(output, `${type}.json`), JSON.stringify(out, null, 2) + '\n');
}
console.log(`${CALLS.length} schemas from stripe@${sdkVersion} in ${((Date.now() - started) / 1000).toFixed(1)} s → ${path.relative(process.cwd(), output) || '.'}`);
