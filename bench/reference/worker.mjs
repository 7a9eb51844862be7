// The reference: the same webhook endpoint written the way Stripe's docs recommend for
// Cloudflare Workers, with the official SDK (`stripe`, pinned in package.json):
// `constructEventAsync` with the SubtleCrypto provider, then
// - for an Identity event (`identity.verification_session.*`) naming its user: that user's
//   Durable Object (`EntityQueue`, SQLite-backed, one per user by `idFromName`, called over
//   RPC), which dedupes by event id in its own storage, applies the event, writes the session,
//   user and event records in one `storage.put({...})` and then the same three records to KV
//   (same keys, values and TTL as the Rust worker), and answers the outcome;
// - for any other event: a KV dedupe by event id with the same key (`event:{id}`), TTL
//   (30 days) and record shape as the Rust worker, recorded `ignored`;
// - and, as the Rust worker does for its console's lists, every recorded event's row in an
//   event index (`EventIndex`: one SQLite-backed Durable Object, the same tables and indexes
//   as src/event_log.rs and src/record_index.rs, called over RPC): from the worker for an
//   event that crossed no user's queue, from the user's queue (with the user's list row, in
//   one call) for one that did. `GET /events` and `GET /identity/users?status=` read it back
//   for the bench's check (no token: benchmark only).
// The same responses and the same one JSON log line per request. Benchmark only; never
// deployed. Of the Identity events it applies `processing` (the bench's handled path) as the
// Rust worker does (src/identity.rs, checked record for record against it on a sequence of
// such events); the others are recorded `ignored`, which the bench never sends.
import { DurableObject } from 'cloudflare:workers';
import Stripe from 'stripe';

const EVENT_TTL_SECONDS = 30 * 24 * 60 * 60;
const IDENTITY_PREFIX = 'identity.verification_session.';
const USER_ID = /^[A-Za-z0-9_.@-]{1,128}$/;
// As in Stripe's Workers example: one SubtleCrypto provider and one client per isolate.
const cryptoProvider = Stripe.createSubtleCryptoProvider();
let stripe;
function client(env) {
  stripe ??= new Stripe(env.STRIPE_SECRET_KEY || 'sk_test_unused', {
    httpClient: Stripe.createFetchHttpClient(),
  });
  return stripe;
}

function json(status, body) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
  });
}

function error(status, code, message) {
  return json(status, { error: { code, message } });
}

/** The value under `event:{id}`, field for field as the Rust worker's `EventRecord`. */
function eventRecord(event, outcome, reason) {
  return {
    version: 1,
    id: event.id,
    type: event.type,
    created: event.created,
    livemode: event.livemode,
    outcome,
    ...(reason ? { reason } : {}),
    recorded_at: Math.floor(Date.now() / 1000),
  };
}

async function webhook(request, env, log) {
  const signature = request.headers.get('stripe-signature');
  const body = await request.text();
  let event;
  try {
    event = await client(env).webhooks.constructEventAsync(
      body,
      signature,
      env.STRIPE_WEBHOOK_SECRET,
      undefined,
      cryptoProvider,
    );
  } catch (err) {
    log.error = 'signature_mismatch';
    return error(400, 'signature_mismatch', 'no v1 signature matches the payload');
  }
  log.event_id = event.id;
  log.event_type = event.type;
  const userId = event.type.startsWith(IDENTITY_PREFIX) ? event.data.object?.metadata?.user_id?.trim() : undefined;
  if (userId && USER_ID.test(userId)) {
    // The user's queue: one piece of work at a time per user, strongly consistent storage.
    const stub = env.ENTITIES.get(env.ENTITIES.idFromName(`user:${userId}`));
    const { outcome, duplicate } = await stub.identityEvent(event, userId);
    log.outcome = duplicate ? 'duplicate' : outcome;
    return json(200, { received: true, duplicate });
  }
  const key = `event:${event.id}`;
  if ((await env.STATE.get(key)) !== null) {
    log.outcome = 'duplicate';
    return json(200, { received: true, duplicate: true });
  }
  const record = eventRecord(event, 'ignored');
  await env.STATE.put(key, JSON.stringify(record), { expirationTtl: EVENT_TTL_SECONDS });
  await eventIndex(env).put(indexEntry(record, null));
  log.outcome = 'ignored';
  return json(200, { received: true, duplicate: false });
}

export default {
  async fetch(request, env) {
    const started = Date.now();
    const { pathname } = new URL(request.url);
    const log = { method: request.method, path: pathname, status: 0 };
    let response;
    try {
      if (pathname === '/health' && request.method === 'GET') {
        response = new Response('ok', { headers: { 'cache-control': 'no-store' } });
      } else if (pathname === '/webhook' && request.method === 'POST') {
        response = await webhook(request, env, log);
      } else if (pathname === '/events' && request.method === 'GET') {
        response = json(200, { events: await eventIndex(env).list('events', null) });
      } else if (pathname === '/identity/users' && request.method === 'GET') {
        const status = new URL(request.url).searchParams.get('status');
        response = json(200, { users: await eventIndex(env).list('users', status) });
      } else {
        response = error(404, 'not_found', 'no such route');
      }
    } catch (err) {
      console.error(JSON.stringify({ error: String(err) }));
      log.error = 'store_unavailable';
      response = error(503, 'store_unavailable', 'the store is unavailable');
    }
    log.status = response.status;
    log.duration_ms = Date.now() - started;
    console.log(JSON.stringify(log));
    return response;
  },
};

// ---------------------------------------------------------------- the user's queue

/** Within one second, the order in which Stripe emits a session's events. */
const RANK = { created: 0, processing: 1, requires_input: 2, verified: 3, canceled: 3, redacted: 4 };

/** Checks that ended a submission, plus one still being checked (src/identity.rs). */
function resubmissions(session) {
  if (!session) return 0;
  const checked = session.checked_at ?? [];
  const last = checked.length ? Math.max(...checked) : -Infinity;
  const open = (session.submitted_at ?? []).some((t) => t > last);
  return Math.max(0, checked.length + (open ? 1 : 0) - 1);
}

/** Whether a `processing` event created at `created` changes nothing for the stored session. */
function isStale(stored, created) {
  const older = created < stored.event_created || (created === stored.event_created && RANK.processing < (RANK[stored.last_event] ?? 0));
  const terminal = stored.status === 'verified' || stored.status === 'canceled';
  const repeat = stored.last_event === 'processing' && stored.event_created === created;
  return older || terminal || repeat || stored.redacted;
}

/** The session record after a `processing` event, keys in the Rust worker's order. */
function processedSession(stored, session, userId, created) {
  const submitted = [...(stored?.submitted_at ?? [])];
  if (!submitted.includes(created)) submitted.push(created);
  submitted.sort((a, b) => a - b);
  return {
    version: 1,
    id: session.id,
    user_id: userId,
    status: 'processing',
    session_created: Math.max(stored?.session_created ?? session.created, session.created),
    event_created: created,
    last_event: 'processing',
    redacted: false,
    made_here: true,
    submitted_at: submitted,
    ...(stored?.checked_at?.length ? { checked_at: stored.checked_at } : {}),
  };
}

/**
 * A `processing` event older than what is stored changes no state, but the submission happened:
 * it is counted in the session's `submitted_at`, and a further one is an attempt of the user's.
 */
function lateSubmission(stored, storedUser, userId, created, writes, keys) {
  if (stored.redacted || stored.submitted_at?.includes(created)) return;
  const { checked_at: checked, ...rest } = stored;
  const submitted = [...(stored.submitted_at ?? []), created].sort((a, b) => a - b);
  // Keys in the Rust worker's order: `submitted_at` before `checked_at`.
  const record = { ...rest, submitted_at: submitted, ...(checked?.length ? { checked_at: checked } : {}) };
  writes[keys.session] = record;
  const more = resubmissions(record) - resubmissions(stored);
  if (more > 0) {
    const user = storedUser ? structuredClone(storedUser) : newUser(userId);
    user.resubmissions = (user.resubmissions ?? 0) + more;
    writes[keys.user] = userValue(user);
  }
}

function newUser(userId) {
  return { user_id: userId, status: 'none', next: 'retry', sessions: [], sessions_created: [], latest_session: null, latest_session_created: 0, updated_at: 0, created_here: 0 };
}

/** The user record after a `processing` event of `record`'s session. */
function processedUser(stored, userId, record, resubmitted, created) {
  const user = stored ? structuredClone(stored) : newUser(userId);
  // A record whose sessions were stored before `sessions_created`: those count as created at 0.
  user.sessions_created = user.sessions.map((_, i) => user.sessions_created?.[i] ?? 0);
  const id = record.id;
  const at = record.session_created;
  if (!user.sessions.includes(id)) {
    // Oldest first by (created, id), as racing events would list them one by one.
    const place = user.sessions.findIndex((s, i) => user.sessions_created[i] > at || (user.sessions_created[i] === at && s > id));
    const i = place < 0 ? user.sessions.length : place;
    user.sessions.splice(i, 0, id);
    user.sessions_created.splice(i, 0, at);
  }
  const latest = user.latest_session === id || at >= user.latest_session_created;
  if (latest && user.latest_session !== id) {
    user.latest_session = id;
    user.latest_session_created = at;
    user.last_error = null;
  }
  user.resubmissions = (user.resubmissions ?? 0) + resubmitted;
  if (latest && !user.verified_at) {
    user.status = 'processing';
    user.last_error = null;
    user.next = 'none';
    user.updated_at = Math.max(user.updated_at, created);
  }
  return user;
}

/** The user record as the Rust worker serialises it: its key order, empty optionals left out. */
function userValue(u) {
  return {
    version: 1,
    user_id: u.user_id,
    status: u.status,
    ...(u.last_error ? { last_error: u.last_error } : {}),
    next: u.next,
    sessions: u.sessions,
    ...(u.sessions_created.length ? { sessions_created: u.sessions_created } : {}),
    latest_session: u.latest_session,
    latest_session_created: u.latest_session_created,
    ...(u.verified_at ? { verified_at: u.verified_at } : {}),
    updated_at: u.updated_at,
    created_here: u.created_here,
    ...(u.resubmissions ? { resubmissions: u.resubmissions } : {}),
  };
}

/**
 * One user's queue. Its storage holds the user's records under the KV keys (the truth: read
 * first, written first) and every write goes on to KV, which a read route would read. Unlike
 * the Rust worker it does not re-copy to KV a write KV refused (the delivery is answered 503;
 * a redelivery finds the event recorded), nor read KV for records written before the queue
 * existed, nor purge event records after 30 days: none of that is on the measured path.
 */
export class EntityQueue extends DurableObject {
  async identityEvent(event, userId) {
    const session = event.data.object;
    const keys = { event: `event:${event.id}`, session: `identity:session:${session.id}`, user: `identity:user:${userId}` };
    const stored = await this.ctx.storage.get([keys.event, keys.session, keys.user]);
    if (stored.has(keys.event)) return { outcome: stored.get(keys.event).outcome, duplicate: true };
    const storedSession = stored.get(keys.session);
    const writes = {};
    let outcome = 'handled';
    let reason;
    if (!storedSession?.made_here && session.metadata?.created_by !== this.env.DEPLOYMENT_ID) {
      [outcome, reason] = ['ignored', 'not_created_by_this_deployment'];
    } else if (storedSession?.user_id && storedSession.user_id !== userId) {
      [outcome, reason] = ['ignored', 'session_recorded_for_another_user'];
    } else if (event.type !== `${IDENTITY_PREFIX}processing`) {
      [outcome, reason] = ['ignored', 'not_applied_by_the_reference'];
    } else if (storedSession && isStale(storedSession, event.created)) {
      lateSubmission(storedSession, stored.get(keys.user), userId, event.created, writes, keys);
    } else {
      const record = processedSession(storedSession, session, userId, event.created);
      const resubmitted = resubmissions(record) - resubmissions(storedSession);
      const storedUser = stored.get(keys.user);
      const user = userValue(processedUser(storedUser, userId, record, resubmitted, event.created));
      if (JSON.stringify(user) !== JSON.stringify(storedUser)) writes[keys.user] = user;
      writes[keys.session] = record;
    }
    writes[keys.event] = eventRecord(event, outcome, reason);
    await this.ctx.storage.put(writes);
    await Promise.all(
      Object.entries(writes).map(([key, value]) =>
        this.env.STATE.put(key, JSON.stringify(value), key === keys.event ? { expirationTtl: EVENT_TTL_SECONDS } : undefined),
      ),
    );
    // The user's list row (when the user was written) with the event's row, in one call.
    const user = writes[keys.user];
    const users = user ? [{ id: userId, at: user.updated_at, status: user.status, record: JSON.stringify(user) }] : [];
    await eventIndex(this.env).batch(indexEntry(writes[keys.event], `user:${userId}`), users);
    return { outcome, duplicate: false };
  }
}

// ---------------------------------------------------------------- the event index

/** The one event index (`idFromName`, as the Rust worker's `EventLog`). */
function eventIndex(env) {
  return env.INDEX.get(env.INDEX.idFromName('events'));
}

/** An event's row: the record's filter columns and its JSON, as src/event_log.rs binds them. */
function indexEntry(record, entity) {
  return {
    id: record.id,
    type: record.type,
    outcome: record.outcome,
    entity,
    created: record.created,
    recorded_at: record.recorded_at,
    record: JSON.stringify(record),
    delivered: true,
  };
}

// The Rust worker's schema (src/event_log.rs SCHEMA; src/record_index.rs for `users`).
const INDEX_SCHEMA = `CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY,
  type TEXT NOT NULL, outcome TEXT NOT NULL, retryable INTEGER, entity TEXT,
  created INTEGER NOT NULL, recorded_at INTEGER NOT NULL, record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_recent ON events (recorded_at, id);
CREATE INDEX IF NOT EXISTS events_outcome ON events (outcome, recorded_at, id);
CREATE INDEX IF NOT EXISTS events_type ON events (type, recorded_at, id);
CREATE INDEX IF NOT EXISTS events_entity ON events (entity, recorded_at, id);
CREATE TABLE IF NOT EXISTS marks (name TEXT PRIMARY KEY, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, at INTEGER NOT NULL, status TEXT,
  expires_at INTEGER, record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS users_recent ON users (at, id);
CREATE INDEX IF NOT EXISTS users_expiry ON users (expires_at);
CREATE INDEX IF NOT EXISTS users_status ON users (status, at, id)`;

/**
 * The console's lists: one row per recorded event, one per user, each written (or rewritten)
 * as its record is; the marks the silence alert reads; an alarm purging rows past the event
 * records' 30 days. Unlike the Rust worker's it keeps no charges or notifications table (not
 * on the measured paths).
 */
export class EventIndex extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(INDEX_SCHEMA);
    this.alarmSet = false;
  }

  put(entry) {
    this.writeEvent(entry);
    return this.ensurePurge(entry.recorded_at + EVENT_TTL_SECONDS);
  }

  batch(entry, users) {
    this.writeEvent(entry);
    for (const u of users) {
      this.sql.exec('INSERT OR REPLACE INTO users (id, at, status, expires_at, record) VALUES (?, ?, ?, ?, ?)', u.id, u.at, u.status, null, u.record);
    }
    return this.ensurePurge(entry.recorded_at + EVENT_TTL_SECONDS);
  }

  writeEvent(e) {
    this.sql.exec(
      'INSERT OR REPLACE INTO events (id, type, outcome, retryable, entity, created, recorded_at, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      e.id, e.type, e.outcome, null, e.entity, e.created, e.recorded_at, e.record,
    );
    const now = Math.floor(Date.now() / 1000);
    this.sql.exec("INSERT OR IGNORE INTO marks (name, at) VALUES ('started', ?)", now);
    if (e.delivered) {
      this.sql.exec("INSERT INTO marks (name, at) VALUES ('last_delivery', ?) ON CONFLICT (name) DO UPDATE SET at = MAX(at, excluded.at)", e.recorded_at);
    }
  }

  /** The purge alarm, read once per instance and set when there is none. */
  async ensurePurge(dueSeconds) {
    if (this.alarmSet) return;
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(dueSeconds * 1000);
    this.alarmSet = true;
  }

  async alarm() {
    this.alarmSet = false;
    const keepFrom = Math.floor(Date.now() / 1000) - EVENT_TTL_SECONDS;
    this.sql.exec('DELETE FROM events WHERE recorded_at < ?', keepFrom);
    const [{ oldest }] = this.sql.exec('SELECT MIN(recorded_at) AS oldest FROM events').toArray();
    if (oldest !== null) await this.ctx.storage.setAlarm((oldest + EVENT_TTL_SECONDS) * 1000);
    this.alarmSet = true;
  }

  /** Newest first, for the bench's check. */
  list(table, status) {
    const rows = table === 'events'
      ? this.sql.exec('SELECT record FROM events ORDER BY recorded_at DESC, id DESC LIMIT 100').toArray()
      : this.sql.exec('SELECT record FROM users WHERE status IS ? ORDER BY at DESC, id DESC LIMIT 100', status).toArray();
    return rows.map((r) => JSON.parse(r.record));
  }
}
