// The reference: the same webhook endpoint written the way Stripe's docs recommend for
// Cloudflare Workers, with the official SDK (`stripe`, pinned in package.json):
// `constructEventAsync` with the SubtleCrypto provider, then a KV dedupe by event id with the
// same key (`event:{id}`), TTL (30 days) and record shape as the Rust worker, the same
// responses, and the same one JSON log line per request. Benchmark only; never deployed.
import Stripe from 'stripe';

const EVENT_TTL_SECONDS = 30 * 24 * 60 * 60;
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
  const key = `event:${event.id}`;
  if ((await env.STATE.get(key)) !== null) {
    log.outcome = 'duplicate';
    return json(200, { received: true, duplicate: true });
  }
  const record = {
    version: 1,
    id: event.id,
    type: event.type,
    created: event.created,
    livemode: event.livemode,
    outcome: 'ignored',
    recorded_at: Math.floor(Date.now() / 1000),
  };
  await env.STATE.put(key, JSON.stringify(record), { expirationTtl: EVENT_TTL_SECONDS });
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
