// The deploy preflight (scripts/preflight.sh → tools/preflight.mjs), offline: one test per
// refusal, the committed wrangler.toml refused as it stands (all-zeros ids), and a ready
// configuration accepted, through the command as an operator runs it.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from './common.mjs';
import { parseSecretList, preflight } from './preflight.mjs';

const committed = readFileSync(path.join(ROOT, 'wrangler.toml'), 'utf8');
const ID = '0123456789abcdef0123456789abcdef';
/** The committed config with real-looking KV ids, and APP_BASE_URL for staging. */
const ready = committed
  .replaceAll('id = "00000000000000000000000000000000"', `id = "${ID}"`)
  .replace('[env.staging.vars]\n', '[env.staging.vars]\nAPP_BASE_URL = "https://hooks.example.com"\n');
const ALL = ['STRIPE_SECRET_KEY', 'STRIPE_WEBHOOK_SECRET', 'ADMIN_TOKEN'];
const STRONG = 'a3f1c9e07b5d42c8a3f1c9e07b5d42c8';

test('a ready configuration passes and names the environment and its worker', () => {
  const r = preflight(ready, 'staging', ALL, STRONG);
  assert.deepEqual(r.refusals, []);
  assert.equal(r.env, 'staging');
  assert.equal(r.worker, 'stripe-edge-webhooks-staging');
});

test('refused: no environment named, or one wrangler.toml does not define', () => {
  assert.match(preflight(ready, undefined, ALL, STRONG).refusals.join(), /name the environment: --env staging or --env production/);
  assert.match(preflight(ready, 'prod', ALL, STRONG).refusals.join(), /no environment "prod" \(it has: staging, production\)/);
});

test('refused: the all-zeros KV id (the committed placeholder), a non-id, and no KV namespace', () => {
  assert.match(preflight(committed, 'staging', ALL, STRONG).refusals.join(), /kv_namespaces\]\] STATE id is the all-zeros placeholder/);
  assert.match(preflight(committed, 'production', ALL, STRONG).refusals.join(), /env\.production\.kv_namespaces.*all-zeros/);
  const placeholder = ready.replace(`[[env.staging.kv_namespaces]]\nbinding = "STATE"\nid = "${ID}"`, '[[env.staging.kv_namespaces]]\nbinding = "STATE"\nid = "<your-namespace-id>"');
  assert.notEqual(placeholder, ready);
  assert.match(preflight(placeholder, 'staging', ALL, STRONG).refusals.join(), /id "<your-namespace-id>" is not a namespace id/);
  const none = ready.replace(`[[env.staging.kv_namespaces]]\nbinding = "STATE"\nid = "${ID}"`, '');
  assert.match(preflight(none, 'staging', ALL, STRONG).refusals.join(), /\[\[env\.staging\.kv_namespaces\]\] is missing/);
});

test('refused: each required secret not set, and NOTIFY_SIGNING_SECRET once NOTIFY_URL or OPS_NOTIFY_URL is set', () => {
  for (const name of ALL) {
    const r = preflight(ready, 'staging', ALL.filter((n) => n !== name), STRONG);
    assert.deepEqual(r.refusals, [`secret ${name} is not set on stripe-edge-webhooks-staging: npx wrangler secret put ${name} --env staging`]);
  }
  const notifying = ready.replace('[env.staging.vars]\n', '[env.staging.vars]\nNOTIFY_URL = "https://app.example.com/hooks"\n');
  assert.match(preflight(notifying, 'staging', ALL, STRONG).refusals.join(), /secret NOTIFY_SIGNING_SECRET is not set/);
  assert.deepEqual(preflight(notifying, 'staging', [...ALL, 'NOTIFY_SIGNING_SECRET'], STRONG).refusals, []);
  const alerting = ready.replace('[env.staging.vars]\n', '[env.staging.vars]\nOPS_NOTIFY_URL = "https://ops.example.com/alerts"\n');
  assert.match(preflight(alerting, 'staging', ALL, STRONG).refusals.join(), /secret NOTIFY_SIGNING_SECRET is not set/);
});

test('refused: a secret written among the vars', () => {
  const leaked = ready.replace('[env.staging.vars]\n', '[env.staging.vars]\nADMIN_TOKEN = "in plain text"\n');
  assert.match(preflight(leaked, 'staging', ALL, STRONG).refusals.join(), /ADMIN_TOKEN is in \[env\.staging\.vars\], in plain text/);
});

test('refused: a weak admin token (short, the example, one character repeated), its value never shown', () => {
  for (const [token, why] of [['short-token', /11 characters, fewer than 32/], ['local-admin-token', /the example's local-admin-token/], ['x'.repeat(40), /one character repeated/]]) {
    const r = preflight(ready, 'staging', ALL, token);
    assert.equal(r.refusals.length, 1);
    assert.match(r.refusals[0], why);
    if (token !== 'local-admin-token') assert.ok(!r.refusals[0].includes(token), 'the token is printed');
  }
  assert.match(preflight(ready, 'staging', ALL, undefined).warnings.join(), /ADMIN_TOKEN's strength not checked/);
});

test('refused: APP_BASE_URL that is not https; a missing one is only a warning', () => {
  const plain = ready.replace('APP_BASE_URL = "https://hooks.example.com"', 'APP_BASE_URL = "http://hooks.example.com"');
  assert.match(preflight(plain, 'staging', ALL, STRONG).refusals.join(), /APP_BASE_URL "http:\/\/hooks\.example\.com" .* is not https/);
  const r = preflight(ready, 'production', ALL, STRONG);
  assert.deepEqual(r.refusals, []);
  assert.match(r.warnings.join(), /APP_BASE_URL is not set in \[env\.production\.vars\]/);
});

test("the secret list is wrangler's JSON or one name a line", () => {
  assert.deepEqual(parseSecretList('[{"name":"ADMIN_TOKEN","type":"secret_text"},{"name":"STRIPE_SECRET_KEY","type":"secret_text"}]'), ['ADMIN_TOKEN', 'STRIPE_SECRET_KEY']);
  assert.deepEqual(parseSecretList('# set\nADMIN_TOKEN\n\nSTRIPE_SECRET_KEY\n'), ['ADMIN_TOKEN', 'STRIPE_SECRET_KEY']);
});

test('scripts/preflight.sh: exit 1 with the reasons on the committed config, exit 0 on a ready one, never printing the token', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'preflight-'));
  writeFileSync(path.join(dir, 'secrets.json'), JSON.stringify(ALL.map((name) => ({ name, type: 'secret_text' }))));
  writeFileSync(path.join(dir, 'wrangler.toml'), ready);
  const run = (config, token) => spawnSync('bash', ['scripts/preflight.sh', '--env', 'staging', '--config', config, '--secret-list', path.join(dir, 'secrets.json')], {
    cwd: ROOT, encoding: 'utf8', env: { ...process.env, ADMIN_TOKEN: token },
  });
  const refused = run(path.join(ROOT, 'wrangler.toml'), STRONG);
  assert.equal(refused.status, 1, refused.stdout + refused.stderr);
  assert.match(refused.stdout, /environment "staging": worker stripe-edge-webhooks-staging/);
  assert.match(refused.stderr, /refused: .*all-zeros placeholder/);
  const ok = run(path.join(dir, 'wrangler.toml'), STRONG);
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /ready: npx wrangler deploy --env staging/);
  const short = run(path.join(dir, 'wrangler.toml'), 'too-short-a-token');
  assert.equal(short.status, 1);
  assert.match(short.stderr, /ADMIN_TOKEN \(from this shell\) is weak: it has 17 characters/);
  for (const out of [refused, ok, short]) assert.ok(!(out.stdout + out.stderr).includes(STRONG) && !(out.stdout + out.stderr).includes('too-short-a-token'), 'the token is printed');
});
