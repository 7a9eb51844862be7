#!/usr/bin/env node
// How a receiver of this service's notifications (NOTIFY_URL) checks that one is genuine. Each
// POST carries `Notify-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` (one v1 per signing
// secret while NOTIFY_SIGNING_SECRET is being rolled), made exactly as Stripe signs webhooks:
// HMAC-SHA256 keyed with the secret, over `${t}.${raw body}`. Verify the raw bytes before parsing
// them, accept when any v1 matches any secret you hold, compare in constant time, and refuse a
// timestamp outside your tolerance (a replay).
//
// As a module: import { verifyNotification } from './tools/verify-notification.mjs'
// As a command: node tools/verify-notification.mjs --secret nsec_… --header 't=…,v1=…' < body.json
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync, realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

export const SIGNATURE_HEADER = 'notify-signature';
export const DEFAULT_TOLERANCE_SECONDS = 300;

export class NotificationSignatureError extends Error {}

/**
 * The parsed notification when `header` is a valid signature of `body` (a Buffer or string,
 * exactly as received) by one of `secrets`; throws NotificationSignatureError otherwise.
 */
export function verifyNotification(body, header, secrets, { toleranceSeconds = DEFAULT_TOLERANCE_SECONDS, now = Date.now() / 1000 } = {}) {
  const raw = Buffer.isBuffer(body) ? body : Buffer.from(String(body), 'utf8');
  const keys = [secrets].flat().map((s) => String(s).trim()).filter(Boolean);
  if (keys.length === 0) throw new NotificationSignatureError('no signing secret configured');
  if (typeof header !== 'string' || header.length === 0 || header.length > 8192) throw new NotificationSignatureError('no Notify-Signature header');
  let timestamp = null;
  const signatures = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    const [name, value] = [part.slice(0, eq).trim(), part.slice(eq + 1).trim()];
    if (name === 't' && /^\d{1,12}$/.test(value)) timestamp = Number(value);
    if (name === 'v1' && /^[0-9a-f]{64}$/.test(value)) signatures.push(Buffer.from(value, 'hex'));
  }
  if (timestamp === null) throw new NotificationSignatureError('the header has no timestamp');
  if (signatures.length === 0) throw new NotificationSignatureError('the header has no v1 signature');
  if (Math.abs(now - timestamp) > toleranceSeconds) throw new NotificationSignatureError('the timestamp is outside the tolerance');
  const signed = Buffer.concat([Buffer.from(`${timestamp}.`, 'utf8'), raw]);
  const matches = keys.some((key) => {
    const expected = createHmac('sha256', key).update(signed).digest();
    return signatures.some((given) => timingSafeEqual(expected, given));
  });
  if (!matches) throw new NotificationSignatureError('no signature matches');
  return JSON.parse(raw.toString('utf8'));
}

// Run as a command (also through a symlink or a path with spaces), not imported.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  const { values } = parseArgs({ options: { secret: { type: 'string', multiple: true }, header: { type: 'string' }, tolerance: { type: 'string' } } });
  // Several secrets while one is being rolled: repeated --secret, or comma-separated.
  const secrets = (values.secret ?? [process.env.NOTIFY_SIGNING_SECRET ?? '']).flatMap((s) => s.split(','));
  try {
    const notification = verifyNotification(readFileSync(0), values.header, secrets, { toleranceSeconds: Number(values.tolerance ?? DEFAULT_TOLERANCE_SECONDS) });
    console.log(`valid: ${notification.id} (${notification.kind})`);
  } catch (e) {
    console.error(`invalid: ${e.message}`);
    process.exit(1);
  }
}
