// What tools/trigger.mjs and tools/register-webhook.mjs share: the repository's settings
// (.dev.vars, the pinned API version in wrangler.toml), the handled event types (one fixture
// per type in tools/fixtures/events; tests/trigger_fixtures.rs checks that list against
// HANDLED_EVENT_TYPES), and URL checks. Nothing here prints a secret.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
export const FIXTURES_DIR = path.join(ROOT, 'tools/fixtures/events');

/** Bad input on the command line: reported with exit status 2. */
export class UsageError extends Error {}

/** The handled event types, sorted: the fixture file names. */
export function handledEventTypes() {
  return readdirSync(FIXTURES_DIR)
    .filter((name) => name.endsWith('.json'))
    .map((name) => name.slice(0, -'.json'.length))
    .sort();
}

/**
 * The thin event types of the handled ones (`v1.` + the snapshot type), what an event
 * destination with `event_payload: thin` is registered for.
 */
export function handledThinEventTypes() {
  return handledEventTypes().map((type) => `v1.${type}`);
}

/**
 * The pinned SDK's interface of a thin event type (V2/Core/Events.d.ts):
 * v1.checkout.session.completed → V1CheckoutSessionCompletedEvent.
 */
export function thinEventTypeName(type) {
  return type.split(/[._]/).map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('') + 'Event';
}

/**
 * Where the local worker listens: 127.0.0.1 on `PORT`, as `scripts/dev.sh` starts it
 * (8787 when `PORT` is unset), so a tool run with the same `PORT` finds it.
 */
export function localWorkerOrigin(env = process.env) {
  const port = env.PORT?.trim() || '8787';
  if (!/^[0-9]{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    throw new UsageError(`PORT must be a port number (1 to 65535), not ${JSON.stringify(port)}`);
  }
  return `http://127.0.0.1:${Number(port)}`;
}

/** `NAME=value` lines of .dev.vars (or another dotenv file); {} when it does not exist. */
export function readDevVars(file = path.join(ROOT, '.dev.vars')) {
  if (!existsSync(file)) return {};
  const vars = {};
  for (const line of readFileSync(file, 'utf8').split(/\r?\n/)) {
    const m = line.match(/^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/);
    if (!m) continue;
    let value = m[2];
    if (/^(".*"|'.*')$/.test(value)) value = value.slice(1, -1);
    vars[m[1]] = value;
  }
  return vars;
}

/** STRIPE_API_VERSION of the top-level [vars] of wrangler.toml: the version the worker pins. */
export function pinnedApiVersion(file = path.join(ROOT, 'wrangler.toml')) {
  let section = '';
  for (const line of readFileSync(file, 'utf8').split(/\r?\n/)) {
    const header = line.match(/^\s*\[+\s*([^\]]+?)\s*\]+\s*(#.*)?$/);
    if (header) {
      section = header[1];
      continue;
    }
    const m = line.match(/^\s*STRIPE_API_VERSION\s*=\s*"([^"]+)"/);
    if (m && section === 'vars') return m[1];
  }
  throw new Error(`no STRIPE_API_VERSION in the [vars] of ${file}`);
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * A URL the tools may send to: https anywhere, http only to a loopback host (the events and
 * secrets must not cross a network in the clear). `what` names the option in errors.
 */
export function checkedUrl(text, what) {
  let url;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`${what} is not an absolute URL`);
  }
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && LOOPBACK.has(url.hostname)) return url;
  if (url.protocol === 'http:') {
    throw new UsageError(`${what} must be https:// (http:// only for 127.0.0.1, localhost or [::1])`);
  }
  throw new UsageError(`${what} must be an https:// URL`);
}
