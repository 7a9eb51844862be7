// The list routes backed by the index Durable Object: `GET /charges`, `GET /identity/users`
// and `GET /notifications`, each filter against records made through the real
// flows (cards saved and charged at the stand-in, Identity sessions moved there), newest
// first, paged by cursor, and the same 400 `bad_query` rules as `GET /events`.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { adminGet, adminPost, completeAtStandIn, createSetupSession, moveIdentitySession, startStack } from './harness.mjs';

const SECRET = 'whsec_e2e_lists_4b1c';
const ADMIN = 'e2e-lists-admin-7d3e';
const CARD_OK = '4242424242424242';
const CARD_DECLINED = '4000000000000341';

/** Every page of a list route, following the cursor; the records in order. */
async function allPages(worker, route, field, limit) {
  const out = [];
  let cursor = '';
  for (let pages = 0; pages < 50; pages += 1) {
    const sep = route.includes('?') ? '&' : '?';
    const res = await adminGet(worker, `${route}${sep}limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`, ADMIN);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    out.push(...res.body[field]);
    if (res.body.cursor === null) return out;
    cursor = res.body.cursor;
  }
  throw new Error('too many pages');
}

describe('list routes over the index', () => {
  let stack;
  let stripeBase;
  let worker;

  before(async () => {
    stack = await startStack({ STRIPE_SECRET_KEY: 'sk_test_e2e_lists_1a2b', STRIPE_WEBHOOK_SECRET: SECRET, ADMIN_TOKEN: ADMIN });
    ({ stripeBase, worker } = stack);
  });
  after(() => stack?.stop());

  const objects = async () => (await fetch(`${stripeBase}/_test/objects`)).json();
  const list = async (route) => {
    const res = await adminGet(worker, route, ADMIN);
    assert.equal(res.status, 200, `${route}: ${JSON.stringify(res.body)}`);
    return res.body;
  };

  /** A card saved through Checkout (events delivered by the stand-in): its customer. */
  async function savedCustomer(card) {
    const session = await createSetupSession(worker);
    await completeAtStandIn(stripeBase, session, { card });
    const customer = (await objects()).find((o) => o.object === 'customer' && o.metadata?.checkout_session === session)?.id;
    assert.ok(customer, 'a customer for the session');
    const record = await adminGet(worker, `/customers/${customer}`, ADMIN);
    assert.equal(record.status, 200, 'the card is saved');
    return customer;
  }

  let good;
  let declined;

  describe('GET /charges', () => {
    const ids = {};

    before(async () => {
      good = await savedCustomer(CARD_OK);
      declined = await savedCustomer(CARD_DECLINED);
      const charge = (customer, key) => adminPost(worker, '/charges', ADMIN, { customer, amount: 1500, currency: 'usd', description: key, idempotency_key: key });
      const ok = await charge(good, 'lists-ok');
      assert.equal(ok.status, 200);
      ids.succeeded = ok.body.payment_intent;
      const open = await charge(declined, 'lists-open');
      assert.equal(open.status, 402);
      ids.open = open.body.payment_intent;
      const paid = await charge(declined, 'lists-paid');
      assert.equal(paid.status, 402);
      ids.recovered = paid.body.payment_intent;
      const [, session] = paid.body.recovery_url.match(/\/c\/pay\/(cs_\w+)$/);
      await completeAtStandIn(stripeBase, session, { card: CARD_OK });
      const recovered = await adminGet(worker, `/charges/${ids.recovered}`, ADMIN);
      assert.equal(recovered.body.status, 'recovered');
    });

    test('all charges, newest first; pages of one give the same order', async () => {
      const all = (await list('/charges?limit=100')).charges;
      assert.deepEqual(new Set(all.map((c) => c.id)), new Set(Object.values(ids)));
      for (let i = 1; i < all.length; i += 1) {
        const [a, b] = [all[i - 1], all[i]];
        assert.ok(a.created_at > b.created_at || (a.created_at === b.created_at && a.id > b.id), 'newest first');
      }
      const paged = await allPages(worker, '/charges', 'charges', 1);
      assert.deepEqual(paged.map((c) => c.id), all.map((c) => c.id));
      // The rows are the records GET /charges/{id} answers, as they stand now.
      const one = await adminGet(worker, `/charges/${ids.recovered}`, ADMIN);
      assert.deepEqual(all.find((c) => c.id === ids.recovered), one.body);
    });

    test('status, recovery and customer each give exactly their charges', async () => {
      const ids_of = async (query) => (await list(`/charges?${query}&limit=100`)).charges.map((c) => c.id);
      assert.deepEqual(await ids_of('status=succeeded'), [ids.succeeded]);
      assert.deepEqual(await ids_of('status=recovered'), [ids.recovered]);
      assert.deepEqual(await ids_of('status=requires_payment_method'), [ids.open]);
      assert.deepEqual(await ids_of('recovery=open'), [ids.open]);
      assert.deepEqual(await ids_of('recovery=paid'), [ids.recovered]);
      assert.deepEqual(await ids_of('recovery=none'), [ids.succeeded]);
      assert.deepEqual(await ids_of('recovery=expired'), []);
      assert.deepEqual(await ids_of('status=succeeded&recovery=open'), []);
      assert.deepEqual(await ids_of(`customer=${good}`), [ids.succeeded]);
      assert.deepEqual(new Set(await ids_of(`customer=${declined}`)), new Set([ids.open, ids.recovered]));
      assert.deepEqual(await ids_of(`customer=${declined}&recovery=paid`), [ids.recovered]);
      const paged = await allPages(worker, `/charges?customer=${declined}`, 'charges', 1);
      assert.equal(paged.length, 2);
    });

    test('since and until split the charges by created_at', async () => {
      const all = (await list('/charges?limit=100')).charges;
      const times = all.map((c) => c.created_at);
      const newest = Math.max(...times);
      const oldest = Math.min(...times);
      const since = (await list(`/charges?since=${newest}&limit=100`)).charges.map((c) => c.id);
      const until = (await list(`/charges?until=${newest}&limit=100`)).charges.map((c) => c.id);
      assert.deepEqual(since, all.filter((c) => c.created_at >= newest).map((c) => c.id));
      assert.deepEqual(until, all.filter((c) => c.created_at < newest).map((c) => c.id));
      assert.ok(since.length >= 1);
      assert.deepEqual((await list(`/charges?since=${newest + 1}`)).charges, []);
      assert.deepEqual((await list(`/charges?until=${oldest}`)).charges, []);
      assert.equal((await list(`/charges?since=${oldest}&until=${newest + 1}&limit=100`)).charges.length, all.length);
    });

    test('bad queries are 400 bad_query naming the parameter, never quoting the value; admin only', async () => {
      for (const [query, name] of [
        ['status=Paid%3Cb%3E', '`status`'],
        ['recovery=', '`recovery`'],
        ['customer=cust_<b>', '`customer`'],
        ['since=yesterday', '`since`'],
        ['since=20&until=10', '`since`'],
        ['limit=1000', '`limit`'],
        ['status=succeeded&status=canceled', 'given twice'],
        ['cursor=%3Cscript%3E', '`cursor`'],
        ['outcome=failed', 'unknown parameter'],
      ]) {
        const res = await adminGet(worker, `/charges?${query}`, ADMIN);
        assert.equal(res.status, 400, query);
        assert.equal(res.body.error.code, 'bad_query');
        assert.ok(res.body.error.message.includes(name), `${query}: ${res.body.error.message}`);
        assert.ok(!/Paid|<b>|script|yesterday/.test(res.body.error.message), res.body.error.message);
      }
      const unknown = await adminGet(worker, '/charges?outcome=failed', ADMIN);
      for (const known of ['`status`', '`recovery`', '`customer`', '`since`', '`until`', '`limit`', '`cursor`']) {
        assert.ok(unknown.body.error.message.includes(known), known);
      }
      assert.equal((await adminGet(worker, '/charges')).status, 401);
      // The path's other method still creates, and a third is 405 naming both.
      const res = await fetch(`${worker.url}/charges`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN}` } });
      assert.equal(res.status, 405);
      assert.equal(res.headers.get('allow'), 'GET, HEAD, POST');
    });
  });

  describe('GET /identity/users', () => {
    const move = (id, status, body) => moveIdentitySession(stripeBase, id, status, body);
    const start = async (user) => {
      const res = await adminPost(worker, '/identity/verification-sessions', ADMIN, { user_id: user, type: 'document' });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return res.body.id;
    };

    before(async () => {
      await move(await start('lists_verified'), 'verified');
      await move(await start('lists_input'), 'requires_input', { code: 'document_expired', reason: 'The document is expired.' });
      await move(await start('lists_canceled'), 'canceled');
      // Every user's record says what it should before the lists are read.
      for (const [user, status] of [['lists_verified', 'verified'], ['lists_input', 'requires_input'], ['lists_canceled', 'canceled']]) {
        assert.equal((await adminGet(worker, `/identity/users/${user}`, ADMIN)).body.status, status, user);
      }
    });

    test('status gives exactly its users; all of them newest first, paged by cursor', async () => {
      const users = async (query) => (await list(`/identity/users?${query}`)).users.map((u) => u.user_id);
      assert.deepEqual(await users('status=verified'), ['lists_verified']);
      assert.deepEqual(await users('status=requires_input'), ['lists_input']);
      assert.deepEqual(await users('status=canceled'), ['lists_canceled']);
      assert.deepEqual(await users('status=processing'), []);
      const all = (await list('/identity/users?limit=100')).users;
      assert.deepEqual(new Set(all.map((u) => u.user_id)), new Set(['lists_verified', 'lists_input', 'lists_canceled']));
      for (let i = 1; i < all.length; i += 1) assert.ok(all[i - 1].updated_at >= all[i].updated_at, 'newest first');
      const paged = await allPages(worker, '/identity/users', 'users', 1);
      assert.deepEqual(paged.map((u) => u.user_id), all.map((u) => u.user_id));
      const newest = Math.max(...all.map((u) => u.updated_at));
      const since = (await list(`/identity/users?since=${newest}&limit=100`)).users.map((u) => u.user_id);
      assert.deepEqual(since, all.filter((u) => u.updated_at >= newest).map((u) => u.user_id));
      const until = (await list(`/identity/users?until=${newest}&limit=100`)).users.map((u) => u.user_id);
      assert.deepEqual(until, all.filter((u) => u.updated_at < newest).map((u) => u.user_id));
    });

    test('bad queries are 400 bad_query; admin only', async () => {
      for (const [query, name] of [['status=Verified', '`status`'], ['customer=cus_1', 'unknown parameter'], ['status=verified&status=canceled', 'given twice'], ['until=x', '`until`']]) {
        const res = await adminGet(worker, `/identity/users?${query}`, ADMIN);
        assert.equal(res.status, 400, query);
        assert.equal(res.body.error.code, 'bad_query');
        assert.ok(res.body.error.message.includes(name), res.body.error.message);
        assert.ok(!res.body.error.message.includes('Verified'));
      }
      assert.equal((await adminGet(worker, '/identity/users')).status, 401);
    });
  });

  describe('GET /notifications', () => {
    // The flows above notified: a recovery link per declined charge (to the customer), and
    // each user's Identity outcome (to the user); the sink answered 200 to each.
    const notes = async (query) => {
      const all = await allPages(worker, `/notifications?${query}`, 'notifications', 100);
      return all.filter((n) => !n.kind.startsWith('ops.'));
    };

    test('kind, customer and user give exactly their notifications; state too', async () => {
      const recovery = await notes('kind=charge.recovery');
      assert.equal(recovery.length, 2);
      assert.ok(recovery.every((n) => n.recipient.type === 'customer' && n.recipient.id === declined));
      assert.deepEqual((await notes(`customer=${declined}`)).map((n) => n.id), recovery.map((n) => n.id));
      assert.deepEqual(await notes(`customer=${good}`), []);
      const verified = await notes('user=lists_verified');
      assert.deepEqual(verified.map((n) => n.kind), ['identity.verified']);
      assert.deepEqual(verified[0].recipient, { type: 'user', id: 'lists_verified' });
      assert.deepEqual((await notes('user=lists_input&kind=identity.requires_input')).map((n) => n.recipient.id), ['lists_input']);
      assert.deepEqual(await notes('user=lists_input&kind=charge.recovery'), []);
      const delivered = await notes('state=delivered');
      for (const n of [...recovery, ...verified]) assert.ok(delivered.some((d) => d.id === n.id), n.id);
      assert.ok(delivered.every((n) => n.state === 'delivered'));
      assert.deepEqual(await notes('state=dead'), []);
      assert.deepEqual(await notes('state=pending'), []);
    });

    test('newest first, paged by cursor, split by since and until', async () => {
      const all = (await list('/notifications?limit=100')).notifications;
      assert.ok(all.length >= 4);
      for (let i = 1; i < all.length; i += 1) {
        const [a, b] = [all[i - 1], all[i]];
        assert.ok(a.created_at > b.created_at || (a.created_at === b.created_at && a.id > b.id), 'newest first');
      }
      const paged = await allPages(worker, '/notifications', 'notifications', 1);
      assert.deepEqual(paged.map((n) => n.id), all.map((n) => n.id));
      const newest = Math.max(...all.map((n) => n.created_at));
      const since = (await list(`/notifications?since=${newest}&limit=100`)).notifications.map((n) => n.id);
      const until = (await list(`/notifications?until=${newest}&limit=100`)).notifications.map((n) => n.id);
      assert.deepEqual(since, all.filter((n) => n.created_at >= newest).map((n) => n.id));
      assert.deepEqual(until, all.filter((n) => n.created_at < newest).map((n) => n.id));
    });

    test('bad queries are 400 bad_query naming the parameter; admin only', async () => {
      for (const [query, name] of [
        ['state=sent', '`state`'],
        ['kind=Charge.Recovery', '`kind`'],
        ['user=a%20b', '`user`'],
        ['customer=cust_1', '`customer`'],
        ['user=u_1&customer=cus_1', '`customer` or `user`'],
        ['state=dead&state=pending', 'given twice'],
        ['outcome=failed', 'unknown parameter'],
      ]) {
        const res = await adminGet(worker, `/notifications?${query}`, ADMIN);
        assert.equal(res.status, 400, query);
        assert.equal(res.body.error.code, 'bad_query');
        assert.ok(res.body.error.message.includes(name), `${query}: ${res.body.error.message}`);
        assert.ok(!/sent|Recovery|a b|cust_1/.test(res.body.error.message), res.body.error.message);
      }
      assert.equal((await adminGet(worker, '/notifications')).status, 401);
    });
  });
});
