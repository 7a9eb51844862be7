// Deploy preflight: what must hold before `wrangler deploy --env <name>`, checked without
// deploying. Run through scripts/preflight.sh:
//
//   scripts/preflight.sh --env staging [--config wrangler.toml] [--secret-list FILE]
//
// It names the environment and its worker, then refuses (exit 1, one line per reason):
// - no --env, or an environment wrangler.toml does not define (the top level is for wrangler dev);
// - a KV namespace id that is missing, all zeros (the committed placeholder) or not 32 hex digits;
// - a required secret that is not set on that environment's worker (STRIPE_SECRET_KEY,
//   STRIPE_WEBHOOK_SECRET, ADMIN_TOKEN; NOTIFY_SIGNING_SECRET when NOTIFY_URL or OPS_NOTIFY_URL is set);
// - a secret's name among the environment's [vars] (plain text in the config and the dashboard);
// - a weak admin token: with ADMIN_TOKEN in this shell's environment (the value you put, or are
//   about to put, with `wrangler secret put`), fewer than 32 characters, the example's
//   `local-admin-token`, or one character repeated. Its value is never printed.
// It warns (exit 0) when APP_BASE_URL is not set yet: the first deploy prints the address.
//
// The names of the secrets set come from `wrangler secret list --env <name> --format json` (which
// needs the network and a login), or from --secret-list FILE: that command's output saved, or a
// list of names one per line, so every check also runs offline (tools/preflight.test.mjs).

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './common.mjs';

export const REQUIRED_SECRETS = ['STRIPE_SECRET_KEY', 'STRIPE_WEBHOOK_SECRET', 'ADMIN_TOKEN'];
const ALL_SECRETS = [...REQUIRED_SECRETS, 'NOTIFY_SIGNING_SECRET'];
const EXAMPLE_ADMIN_TOKEN = 'local-admin-token';

/**
 * The parts of a wrangler.toml the checks read: top-level keys, `[table]` and `[[array]]`
 * sections (`env.staging.vars`, `env.staging.kv_namespaces`, …) with their `key = "string"` or
 * bare values. Comments and other value types are kept as text, never interpreted.
 */
export function readWranglerToml(text) {
  const sections = new Map([['', [{}]]]);
  let current = sections.get('')[0];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/^\s+/, '');
    if (!line || line.startsWith('#')) continue;
    let m;
    if ((m = line.match(/^\[\[\s*([^\]]+?)\s*\]\]/))) {
      if (!sections.has(m[1])) sections.set(m[1], []);
      current = {};
      sections.get(m[1]).push(current);
    } else if ((m = line.match(/^\[\s*([^\]]+?)\s*\]/))) {
      current = {};
      sections.set(m[1], [current]);
    } else if ((m = line.match(/^([A-Za-z0-9_-]+)\s*=\s*(.*)$/))) {
      const value = m[2].trim();
      const quoted = value.match(/^"((?:[^"\\]|\\.)*)"/) ?? value.match(/^'([^']*)'/);
      current[m[1]] = quoted ? quoted[1] : value.replace(/\s+#.*$/, '');
    }
  }
  return sections;
}

/** Names of the secrets set: `wrangler secret list --format json` output, or one name a line. */
export function parseSecretList(text) {
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) return JSON.parse(trimmed).map((s) => s.name);
  return trimmed.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
}

/** Why a token is weak, or null. */
export function weakAdminToken(token) {
  if (token === EXAMPLE_ADMIN_TOKEN) return `it is the example's ${EXAMPLE_ADMIN_TOKEN}`;
  if (token.length < 32) return `it has ${token.length} characters, fewer than 32`;
  if (new Set(token).size === 1) return 'it is one character repeated';
  return null;
}

/**
 * The checks, pure: `{ env, worker, refusals: [...], warnings: [...] }`.
 * @param {string} configText  wrangler.toml
 * @param {string|undefined} env
 * @param {string[]} secretNames  the secrets set on that environment's worker
 * @param {string|undefined} adminToken  ADMIN_TOKEN from the caller's environment, if any
 */
export function preflight(configText, env, secretNames, adminToken) {
  const config = readWranglerToml(configText);
  const refusals = [];
  const warnings = [];
  const environments = [...new Set([...config.keys()].map((k) => k.match(/^env\.([^.]+)/)?.[1]).filter(Boolean))];
  if (!env) {
    return { env, worker: null, refusals: [`name the environment: --env ${environments.join(' or --env ') || '<name>'} (the top level is for wrangler dev)`], warnings };
  }
  if (!environments.includes(env)) {
    return { env, worker: null, refusals: [`wrangler.toml defines no environment "${env}" (it has: ${environments.join(', ') || 'none'})`], warnings };
  }
  const top = config.get('')[0];
  const worker = config.get(`env.${env}`)?.[0]?.name ?? `${top.name}-${env}`;
  const vars = config.get(`env.${env}.vars`)?.[0] ?? {};

  const namespaces = config.get(`env.${env}.kv_namespaces`) ?? [];
  if (!namespaces.length) refusals.push(`[[env.${env}.kv_namespaces]] is missing: create one with npx wrangler kv namespace create STATE --env ${env}`);
  for (const ns of namespaces) {
    const where = `[[env.${env}.kv_namespaces]] ${ns.binding ?? '(no binding)'}`;
    if (!ns.id) refusals.push(`${where} has no id`);
    else if (/^0+$/.test(ns.id)) refusals.push(`${where} id is the all-zeros placeholder: put the id printed by npx wrangler kv namespace create STATE --env ${env}`);
    else if (!/^[0-9a-f]{32}$/.test(ns.id)) refusals.push(`${where} id "${ns.id}" is not a namespace id (32 hex digits)`);
  }

  const required = [...REQUIRED_SECRETS, ...(vars.NOTIFY_URL || vars.OPS_NOTIFY_URL ? ['NOTIFY_SIGNING_SECRET'] : [])];
  for (const name of required) {
    if (!secretNames.includes(name)) refusals.push(`secret ${name} is not set on ${worker}: npx wrangler secret put ${name} --env ${env}`);
  }
  for (const name of ALL_SECRETS) {
    if (name in vars) refusals.push(`${name} is in [env.${env}.vars], in plain text: remove it and use npx wrangler secret put ${name} --env ${env}`);
  }
  if (adminToken !== undefined) {
    const weak = weakAdminToken(adminToken);
    if (weak) refusals.push(`ADMIN_TOKEN (from this shell) is weak: ${weak}; the worker would refuse every admin request. Make one with: openssl rand -hex 32`);
  } else {
    warnings.push("ADMIN_TOKEN's strength not checked: export ADMIN_TOKEN (the value you put) to check it; a deployed worker answers 500 configuration_error to admin requests with a weak one");
  }
  if (!vars.APP_BASE_URL) {
    warnings.push(`APP_BASE_URL is not set in [env.${env}.vars]: Checkout return URLs fail until it is (set it to the address the first deploy prints, then deploy again)`);
  } else if (!vars.APP_BASE_URL.startsWith('https://')) {
    refusals.push(`APP_BASE_URL "${vars.APP_BASE_URL}" in [env.${env}.vars] is not https://`);
  }
  return { env, worker, refusals, warnings };
}

function option(args, name) {
  const i = args.indexOf(`--${name}`);
  if (i !== -1) return args[i + 1];
  const inline = args.find((a) => a.startsWith(`--${name}=`));
  return inline?.slice(name.length + 3);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  if (args.includes('--help')) {
    console.log('scripts/preflight.sh --env <staging|production> [--config wrangler.toml] [--secret-list FILE]');
    process.exit(0);
  }
  const env = option(args, 'env');
  const configFile = path.resolve(option(args, 'config') ?? path.join(ROOT, 'wrangler.toml'));
  const listFile = option(args, 'secret-list');
  let secretNames = [];
  if (env) {
    try {
      secretNames = parseSecretList(listFile
        ? readFileSync(listFile === '-' ? 0 : listFile, 'utf8')
        : execFileSync('wrangler', ['secret', 'list', '--env', env, '--config', configFile, '--format', 'json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }));
    } catch (e) {
      console.error(`[preflight] could not list the secrets of environment "${env}" (${e.message.split('\n')[0]}); pass --secret-list FILE to check offline`);
      process.exit(1);
    }
  }
  const result = preflight(readFileSync(configFile, 'utf8'), env, secretNames, process.env.ADMIN_TOKEN);
  if (result.worker) console.log(`[preflight] environment "${result.env}": worker ${result.worker} (${path.relative(process.cwd(), configFile) || configFile})`);
  for (const w of result.warnings) console.log(`[preflight] warning: ${w}`);
  for (const r of result.refusals) console.error(`[preflight] refused: ${r}`);
  if (result.refusals.length) {
    console.error(`[preflight] not ready to deploy${result.env ? ` environment "${result.env}"` : ''}: ${result.refusals.length} problem(s)`);
    process.exit(1);
  }
  console.log(`[preflight] ready: npx wrangler deploy --env ${result.env}`);
}
