// Cloudflare Access as the admin check, under real workerd: a local key server on 127.0.0.1
// publishes the team's keys as Access does (`/cdn-cgi/access/certs`, JWKs), tokens are signed
// RS256 with node:crypto, and the worker verifies them with its runtime's WebCrypto. The
// deployment has no ADMIN_TOKEN: Access alone lets admins in.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { generateKeyPairSync, sign } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startStack } from './harness.mjs';

const TEAM = 'e2e-team.cloudflareaccess.com';
const AUD = 'e2eaud4f6c0b1d9a7e3c5b2a8f1d0e9c7b6a5d4c3b2a1f0e9d8c7b6a5f4e3d2c1';
const b64url = (data) => Buffer.from(data).toString('base64url');

function keyPair(kid) {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, privateKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' } };
}

/** A token as Access makes it: RS256, the key's id, the application's claims. */
function token(key, claims = {}, header = {}) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url(JSON.stringify({ alg: 'RS256', kid: key.kid, typ: 'JWT', ...header }));
  const body = b64url(JSON.stringify({
    aud: [AUD], email: 'ops@example.com', exp: now + 600, iat: now, nbf: now,
    iss: `https://${TEAM}`, type: 'app', sub: 'e2e-user', ...claims,
  }));
  const signature = sign('sha256', Buffer.from(`${head}.${body}`), key.privateKey);
  return `${head}.${body}.${b64url(signature)}`;
}

describe('Cloudflare Access for the admin routes', () => {
  const current = keyPair('kid-current');
  const previous = keyPair('kid-previous');
  // A key the team never published, once under a published id and once under its own.
  const forged = { ...keyPair('kid-current') };
  const stranger = keyPair('kid-stranger');
  let keyServer;
  let hits = 0;
  let stack;

  before(async () => {
    keyServer = createServer((req, res) => {
      if (req.url !== '/cdn-cgi/access/certs') {
        res.writeHead(404).end();
        return;
      }
      hits += 1;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [current.jwk, previous.jwk], public_cert: { kid: current.kid, cert: '-----BEGIN CERTIFICATE-----' } }));
    });
    await new Promise((resolve) => keyServer.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${keyServer.address().port}`;
    stack = await startStack(
      { STRIPE_SECRET_KEY: 'sk_test_e2e_access_1b2c', STRIPE_WEBHOOK_SECRET: 'whsec_e2e_access_3d4e', ACCESS_TEAM_DOMAIN: TEAM, ACCESS_AUD: AUD, ACCESS_CERTS_BASE: base },
      { connect: false },
    );
  });
  after(async () => {
    await stack?.stop();
    await new Promise((resolve) => keyServer?.close(resolve));
  });

  const sent = [];
  const get = (jwt, extra = {}) => (jwt && sent.push(jwt), fetch(`${stack.worker.url}/events?limit=1`, { headers: { ...(jwt === undefined ? {} : { 'cf-access-jwt-assertion': jwt }), ...extra } }));

  test('a token signed by the team for this application is an admin; keys are fetched once', async () => {
    const res = await get(token(current));
    assert.equal(res.status, 200, await res.clone().text());
    assert.ok(Array.isArray((await res.json()).events));
    // The previous key stays valid while Access publishes it (7 days after a rotation).
    assert.equal((await get(token(previous))).status, 200);
    for (let i = 0; i < 3; i += 1) assert.equal((await get(token(current))).status, 200);
    assert.equal(hits, 1, 'the keys are kept in the isolate');
    // The same check guards every admin route.
    const charges = await fetch(`${stack.worker.url}/charges`, { headers: { 'cf-access-jwt-assertion': token(current) } });
    assert.equal(charges.status, 200);
  });

  test('wrong audience, other team, expired, not yet valid, wrong key, unknown key, missing or malformed: 401', async () => {
    const now = Math.floor(Date.now() / 1000);
    const refused = {
      'wrong aud': token(current, { aud: ['another-application-aud'] }),
      'other team': token(current, { iss: 'https://other-team.cloudflareaccess.com' }),
      expired: token(current, { exp: now - 3600, iat: now - 7200, nbf: now - 7200 }),
      'not yet valid': token(current, { nbf: now + 3600 }),
      'wrong key, published id': token(forged),
      'HS256': token(current, {}, { alg: 'HS256' }),
      malformed: 'not.a.jwt',
      empty: '',
    };
    for (const [why, jwt] of Object.entries(refused)) {
      const res = await get(jwt);
      assert.equal(res.status, 401, why);
      const body = await res.json();
      assert.equal(body.error.code, 'unauthorized', why);
      assert.ok(!JSON.stringify(body).includes(jwt.slice(0, 20)) || jwt === '', `${why}: the token is not echoed`);
    }
    assert.equal((await get(undefined)).status, 401, 'missing');
    assert.equal(hits, 1, 'a refused token fetches no keys');
    // A key id the team does not publish: refused. The keys were fetched less than a minute
    // ago, so it fetches nothing (an unknown id refetches at most once a minute: a flood of
    // made-up ids is not a flood of requests to the team domain).
    assert.equal((await get(token(stranger))).status, 401);
    assert.equal((await get(token(stranger))).status, 401);
    assert.equal(hits, 1, 'no refetch within the minute');
    // No ADMIN_TOKEN: a bearer token is no way in.
    assert.equal((await get(undefined, { authorization: 'Bearer anything-at-all-that-is-long-enough' })).status, 401);
  });

  test('another site\'s form cannot use the Access token on a state-changing admin route', async () => {
    const jwt = token(current);
    sent.push(jwt);
    const replay = (headers) => fetch(`${stack.worker.url}/events/evt_1AccessCsrfProbe/replay`, {
      method: 'POST', headers: { 'cf-access-jwt-assertion': jwt, ...headers },
    });
    // A browser on another site: Access's cookie rides along, but that is not enough.
    assert.equal((await replay({ 'sec-fetch-site': 'cross-site' })).status, 401);
    assert.equal((await replay({ origin: 'https://evil.example' })).status, 401);
    // The console's own page, or no browser at all (curl, a service token): let in (the
    // event is unknown, so the route answers for itself).
    for (const headers of [{ 'sec-fetch-site': 'same-origin' }, {}]) {
      const res = await replay(headers);
      assert.notEqual(res.status, 401, JSON.stringify(headers));
      assert.notEqual(res.status, 403, JSON.stringify(headers));
    }
    // Reads are not state-changing: a cross-site GET is let in (its answer is not readable
    // by the other site anyway).
    assert.equal((await get(jwt, { 'sec-fetch-site': 'cross-site' })).status, 200);
  });

  test('the console: an Access token is the session (no sign-in), its CSRF tokens are bound to it, sign-out is Access\'s logout', async () => {
    const alice = token(current, { sub: 'alice' });
    const bob = token(current, { sub: 'bob', email: 'bob@example.com' });
    sent.push(alice, bob);
    const open = (path, jwt) => fetch(`${stack.worker.url}${path}`, { redirect: 'manual', headers: jwt ? { 'cf-access-jwt-assertion': jwt } : {} });
    const post = (path, jwt, body) => fetch(`${stack.worker.url}${path}`, {
      method: 'POST', redirect: 'manual', body,
      headers: { 'cf-access-jwt-assertion': jwt, 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin', origin: stack.worker.url },
    });
    const overview = await open('/admin', alice);
    assert.equal(overview.status, 200);
    const page = await overview.text();
    assert.match(page, /Sign out/);
    const csrf = page.match(/name="csrf" value="([0-9a-f]+)"/)[1];
    const bobs = (await (await open('/admin', bob)).text()).match(/name="csrf" value="([0-9a-f]+)"/)[1];
    assert.notEqual(bobs, csrf);
    // Signed in already: the sign-in page goes to the overview.
    const signIn = await open('/admin/sign-in', alice);
    assert.equal(signIn.status, 303);
    assert.equal(signIn.headers.get('location'), '/admin');
    // No ADMIN_TOKEN here: without a valid Access token there is no way in, and no redirect to a form.
    assert.equal((await open('/admin')).status, 401);
    assert.equal((await open('/admin', token(current, { aud: ['another-application-aud'] }))).status, 401);
    assert.equal((await open('/admin/sign-in')).status, 401);
    // A POST carries the CSRF token of the Access token it comes with.
    for (const body of ['', 'csrf=', `csrf=${bobs}`]) {
      assert.equal((await post('/admin/sign-out', alice, body)).status, 403, body);
    }
    const out = await post('/admin/sign-out', alice, `csrf=${csrf}`);
    assert.equal(out.status, 303);
    assert.equal(out.headers.get('location'), '/cdn-cgi/access/logout');
    assert.equal(out.headers.get('set-cookie'), null);
  });

  test('no token reaches the logs; a refusal logs its reason', async () => {
    const logs = await stack.worker.logged(/Access token refused/);
    assert.match(logs, /Cloudflare Access token refused: (audience is not this application|expired)/);
    for (const jwt of sent.filter((t) => t.split('.').length === 3)) {
      for (const part of jwt.split('.').filter((p) => p.length >= 24)) assert.ok(!logs.includes(part.slice(0, 24)), 'a token part in the logs');
    }
  });
});
