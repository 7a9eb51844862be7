// Produces tests/fixtures/signature_vectors.json: Stripe-Signature cases signed with the
// official `stripe` SDK's webhooks.generateTestHeaderString, each with the SDK's own verdict
// (webhooks.constructEvent) and this service's expected result.
//
// Usage: node tools/gen-signature-vectors.mjs [output path]   (default: the committed fixture)
// The output is deterministic; the test command regenerates it and fails if it differs.
//
// Where this service deliberately differs from the SDK (both tolerance directions, strict
// header syntax, several secrets), the case says so in `deviation`, and the native test checks
// that the two verdicts really differ there and agree everywhere else.

import { writeFileSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import Stripe from 'stripe';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const output = process.argv[2] ?? path.join(root, 'tests/fixtures/signature_vectors.json');
const sdkVersion = JSON.parse(readFileSync(path.join(root, 'node_modules/stripe/package.json'), 'utf8')).version;

const stripe = new Stripe('sk_test_unused_for_signing');
const NOW = 1763900000;
const TOLERANCE = 300;
const SECRET = 'whsec_test_primary_0123456789abcdef';
const OLD_SECRET = 'whsec_test_previous_fedcba9876543210';
const OTHER_SECRET = 'whsec_test_unrelated_000000000000000';

const event = (id, type, object) =>
  JSON.stringify({
    id,
    object: 'event',
    api_version: '2026-10-28.endive',
    created: NOW - 2,
    data: { object },
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type,
  });
const VERIFIED = event('evt_1SigVectorVerified', 'identity.verification_session.verified', {
  id: 'vs_1SigVector', object: 'identity.verification_session', status: 'verified', metadata: { user_id: 'user_42' },
});
const PRETTY = JSON.stringify(JSON.parse(VERIFIED), null, 2) + '\n';
const UNICODE = event('evt_1SigVectorUnicode', 'customer.created', { id: 'cus_1', name: 'Zoë Ünlü 山田 🚀' });

const sign = (payload, secret = SECRET, timestamp = NOW) =>
  stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp });
const v1Of = (header) => header.split(',').find((p) => p.startsWith('v1=')).slice(3);
const flipHex = (hex) => hex.slice(0, -1) + (hex.endsWith('0') ? '1' : '0');
const fill = (char, len) => char.repeat(len);

/** The SDK's verdict: accepted if constructEvent accepts it with any of the secrets. */
function sdkVerdict(payload, header, secrets) {
  const errors = [];
  for (const secret of secrets) {
    try {
      // constructEvent parses JSON after verifying; only the signature verdict is wanted.
      stripe.webhooks.signature.verifyHeader(payload, header, secret, TOLERANCE, undefined, NOW * 1000);
      return { sdk_accepts: true };
    } catch (e) {
      errors.push(e.message.split('\n')[0]);
    }
  }
  return { sdk_accepts: false, sdk_error: errors[0] };
}

const cases = [];
function add(name, { payload, payloadFill, header, secrets = [SECRET], expected, deviation, sdkPlain = false }) {
  const body = payloadFill ? fill(payloadFill.char, payloadFill.len) : payload;
  const c = { name };
  if (payloadFill) c.payload_fill = payloadFill;
  else c.payload = payload;
  Object.assign(c, { header, secrets, expected }, sdkVerdict(body, header, secrets));
  if (deviation) c.deviation = deviation;
  if (sdkPlain) c.sdk_plain_header = true;
  cases.push(c);
}

const good = sign(VERIFIED);
add('valid event', { payload: VERIFIED, header: good, expected: 'ok', sdkPlain: true });
add('valid pretty-printed event with trailing newline', { payload: PRETTY, header: sign(PRETTY), expected: 'ok', sdkPlain: true });
add('valid event with non-ASCII text', { payload: UNICODE, header: sign(UNICODE), expected: 'ok', sdkPlain: true });
add('tampered body byte', { payload: VERIFIED.replace('user_42', 'user_43'), header: good, expected: 'signature_mismatch' });
add('body with one trailing space', { payload: VERIFIED + ' ', header: good, expected: 'signature_mismatch' });
add('tampered signature', { payload: VERIFIED, header: `t=${NOW},v1=${flipHex(v1Of(good))}`, expected: 'signature_mismatch' });
add('truncated signature', { payload: VERIFIED, header: `t=${NOW},v1=${v1Of(good).slice(0, 63)}`, expected: 'signature_mismatch' });
add('wrong secret', { payload: VERIFIED, header: sign(VERIFIED, OTHER_SECRET), expected: 'signature_mismatch' });
add('signed with a different timestamp than the header says', {
  payload: VERIFIED, header: `t=${NOW - 1},v1=${v1Of(good)}`, expected: 'signature_mismatch',
});
add('old timestamp at the tolerance', { payload: VERIFIED, header: sign(VERIFIED, SECRET, NOW - TOLERANCE), expected: 'ok', sdkPlain: true });
add('old timestamp beyond the tolerance', {
  payload: VERIFIED, header: sign(VERIFIED, SECRET, NOW - TOLERANCE - 1), expected: 'signature_timestamp_outside_tolerance',
});
add('very old timestamp (replay)', { payload: VERIFIED, header: sign(VERIFIED, SECRET, NOW - 86400 * 30), expected: 'signature_timestamp_outside_tolerance' });
add('future timestamp at the tolerance', { payload: VERIFIED, header: sign(VERIFIED, SECRET, NOW + TOLERANCE), expected: 'ok', sdkPlain: true });
add('future timestamp beyond the tolerance', {
  payload: VERIFIED, header: sign(VERIFIED, SECRET, NOW + TOLERANCE + 1), expected: 'signature_timestamp_outside_tolerance',
  deviation: 'the SDK checks only the age; the tolerance is enforced in both directions here',
});
add('missing t', { payload: VERIFIED, header: `v1=${v1Of(good)}`, expected: 'signature_timestamp_missing' });
add('missing v1', { payload: VERIFIED, header: `t=${NOW}`, expected: 'signature_v1_missing' });
add('v0 only', { payload: VERIFIED, header: `t=${NOW},v0=${v1Of(good)}`, expected: 'signature_v1_missing' });
add('v0 and unknown keys beside a valid v1', { payload: VERIFIED, header: `t=${NOW},v0=abc,v1=${v1Of(good)},x=1`, expected: 'ok' });
add('several v1, one valid', {
  payload: VERIFIED, header: `t=${NOW},v1=${v1Of(sign(VERIFIED, OTHER_SECRET))},v1=${v1Of(good)},v1=${flipHex(v1Of(good))}`, expected: 'ok',
});
add('several v1, none valid', {
  payload: VERIFIED, header: `t=${NOW},v1=${v1Of(sign(VERIFIED, OTHER_SECRET))},v1=${flipHex(v1Of(good))}`, expected: 'signature_mismatch',
});
add('two secrets configured, the second one valid (rolling)', {
  payload: VERIFIED, header: sign(VERIFIED, OLD_SECRET), secrets: [SECRET, OLD_SECRET], expected: 'ok',
});
add('two secrets configured, neither valid', {
  payload: VERIFIED, header: sign(VERIFIED, OTHER_SECRET), secrets: [SECRET, OLD_SECRET], expected: 'signature_mismatch',
});
add('header with one v1 per secret during rolling', {
  payload: VERIFIED, header: `${sign(VERIFIED, OLD_SECRET)},v1=${v1Of(good)}`, secrets: [SECRET], expected: 'ok',
});
add('duplicated v1 key with the same value', { payload: VERIFIED, header: `${good},v1=${v1Of(good)}`, expected: 'ok' });
add('duplicated t key', {
  payload: VERIFIED, header: `t=${NOW},${good}`, expected: 'signature_header_malformed',
  deviation: 'the SDK keeps the last t; a second t is ambiguous and refused here',
});
add('non-numeric t', { payload: VERIFIED, header: `t=abc,v1=${v1Of(good)}`, expected: 'signature_header_malformed' });
add('t with trailing garbage', {
  payload: VERIFIED, header: `t=${NOW}abc,v1=${v1Of(good)}`, expected: 'signature_header_malformed',
  deviation: "the SDK's parseInt reads the leading digits; only digits are accepted here",
});
add('element without =', { payload: VERIFIED, header: `t=${NOW},v1`, expected: 'signature_header_malformed' });
add('spaces after commas', {
  payload: VERIFIED, header: `t=${NOW}, v1=${v1Of(good)}`, expected: 'ok',
  deviation: 'the SDK does not trim header elements; spaces are tolerated here',
});
add('empty header', { payload: VERIFIED, header: '', expected: 'signature_header_missing' });
add('empty body', {
  payload: '', header: sign(''), expected: 'ok',
  deviation: 'the SDK refuses an empty payload before verifying; here the signature holds and the body is refused as not an event',
});
add('1 MiB body', { payloadFill: { char: 'a', len: 1024 * 1024 }, header: sign(fill('a', 1024 * 1024)), expected: 'ok', sdkPlain: true });
add('1 MiB body with its last byte changed', {
  payloadFill: { char: 'b', len: 1024 * 1024 }, header: sign(fill('b', 1024 * 1024 - 1) + 'c'), expected: 'signature_mismatch',
});

const fixture = {
  generator: 'tools/gen-signature-vectors.mjs',
  stripe_sdk: sdkVersion,
  now: NOW,
  tolerance: TOLERANCE,
  cases,
};
writeFileSync(output, JSON.stringify(fixture, null, 2) + '\n');
console.log(`wrote ${cases.length} cases to ${path.relative(process.cwd(), output) || output}`);
