// SPEC 4 channel state: /channels, /channels/{name}, /users, terminate_connections,
// seeded straight into MariaDB (db/schema/003_channel_state.sql) as the realtime layer would.
'use strict';

const { describe, it, before } = require('node:test');
const assert = require('node:assert/strict');
const L = require('./lib');

let app; let b; let pub; let pres; let priv; let unocc; let cache;
const q = L.sqlQuote;

function subscribe(ch, socketId, userId = null, userInfo = null) {
  L.sql(`INSERT INTO channel_subscriptions (app_id, channel, socket_id, user_id, user_info, subscribed_at_ms)
    VALUES (${q(app.id)}, ${q(ch)}, ${q(socketId)}, ${q(userId)}, ${q(userInfo)}, ${Date.now()})`);
}

before(() => {
  app = L.createApp('channels');
  b = L.uniq('c');
  pub = `${b}-pub`;
  pres = `presence-${b}`;
  priv = `private-${b}`;
  unocc = `${b}-empty`;
  cache = `cache-${b}`;
  const now = Date.now();
  for (const [sock, user] of [['10.1', 'alice'], ['10.2', 'alice'], ['10.3', 'bob'], ['10.4', null], ['10.5', null]]) {
    // a lease an hour long: sockudo-pushd sweeps connections whose lease ran out
    L.sql(`INSERT INTO connections (app_id, socket_id, user_id, connected_at_ms, expires_at_ms) VALUES (${q(app.id)}, ${q(sock)}, ${q(user)}, ${now}, ${now + 3600e3})`);
  }
  subscribe(pub, '10.4');
  subscribe(pub, '10.5');
  subscribe(pres, '10.1', 'alice', '{"name":"Alice"}');
  subscribe(pres, '10.2', 'alice', '{"name":"Alice"}');
  subscribe(pres, '10.3', 'bob', '{"name":"Bob"}');
  subscribe(priv, '10.4');
});

describe('GET /channels', () => {
  it('lists occupied channels only', async () => {
    const r = await L.api(app).get('/channels');
    L.assertOk(r);
    assert.deepEqual(Object.keys(r.json.channels).sort(), [pres, priv, pub].sort());
  });

  it('info=subscription_count gives the counts', async () => {
    const r = await L.api(app).get('/channels', { info: 'subscription_count' });
    L.assertOk(r);
    assert.equal(r.json.channels[pub].subscription_count, 2);
    assert.equal(r.json.channels[pres].subscription_count, 3);
    assert.equal(r.json.channels[priv].subscription_count, 1);
  });

  it('filter_by_prefix=private- filters', async () => {
    const r = await L.api(app).get('/channels', { filter_by_prefix: 'private-' });
    L.assertOk(r);
    assert.deepEqual(Object.keys(r.json.channels), [priv]);
  });

  it('filter_by_prefix=presence- with info=user_count gives distinct users', async () => {
    const r = await L.api(app).get('/channels', { filter_by_prefix: 'presence-', info: 'user_count' });
    L.assertOk(r);
    assert.deepEqual(Object.keys(r.json.channels), [pres]);
    assert.equal(r.json.channels[pres].user_count, 2);
  });

  it('info=user_count without filter_by_prefix → 400', async () => {
    const r = await L.api(app).get('/channels', { info: 'user_count' });
    L.assertError(r, 400, 'invalid_input');
  });

  it('info=user_count with filter_by_prefix=private- → 400', async () => {
    const r = await L.api(app).get('/channels', { filter_by_prefix: 'private-', info: 'user_count' });
    L.assertError(r, 400, 'invalid_input');
  });

  it('an unknown info attribute → 400', async () => {
    const r = await L.api(app).get('/channels', { info: 'bogus' });
    L.assertError(r, 400);
  });

  it('another app sees none of these channels', async () => {
    const other = L.createApp('channels-other');
    const r = await L.api(other).get('/channels');
    L.assertOk(r);
    assert.deepEqual(r.json.channels, {});
  });
});

describe('GET /channels/{name}', () => {
  it('occupied public channel with subscription_count', async () => {
    const r = await L.api(app).get(`/channels/${pub}`, { info: 'subscription_count' });
    L.assertOk(r);
    assert.deepEqual(r.json, { occupied: true, subscription_count: 2 });
  });

  it('without info → {occupied}', async () => {
    const r = await L.api(app).get(`/channels/${pub}`);
    L.assertOk(r);
    assert.equal(r.json.occupied, true);
    assert.equal(r.json.user_count, undefined);
  });

  it('unoccupied channel → occupied false', async () => {
    const r = await L.api(app).get(`/channels/${unocc}`, { info: 'subscription_count' });
    L.assertOk(r);
    assert.equal(r.json.occupied, false);
    assert.ok(r.json.subscription_count === undefined || r.json.subscription_count === 0);
  });

  it('presence channel with user_count,subscription_count', async () => {
    const r = await L.api(app).get(`/channels/${pres}`, { info: 'user_count,subscription_count' });
    L.assertOk(r);
    assert.deepEqual(r.json, { occupied: true, user_count: 2, subscription_count: 3 });
  });

  it('user_count on a non-presence channel → 400', async () => {
    const r = await L.api(app).get(`/channels/${pub}`, { info: 'user_count' });
    L.assertError(r, 400, 'invalid_input');
  });

  it('an invalid channel name in the path → 400', async () => {
    const r = await L.call(app, 'GET', '/channels/bad%20name', {});
    L.assertError(r, 400, 'invalid_input');
  });

  it('a channel name of 201 bytes → 400', async () => {
    const r = await L.api(app).get(`/channels/${'x'.repeat(201)}`);
    L.assertError(r, 400);
  });

  it('cache channel: info=cache returns the last event', async () => {
    const marker = L.uniq('cached-data');
    L.assertOk(await L.api(app).post('/events', { name: 'first', channel: cache, data: 'old' }));
    L.assertOk(await L.api(app).post('/events', { name: 'last-event', channel: cache, data: marker }));
    const r = await L.api(app).get(`/channels/${cache}`, { info: 'cache' });
    L.assertOk(r);
    assert.equal(typeof r.json.occupied, 'boolean');
    assert.ok(r.json.cache, `no cache field: ${r.body}`);
    const s = JSON.stringify(r.json.cache);
    assert.ok(s.includes(marker), `cache does not hold the last event: ${s}`);
    assert.ok(!s.includes('"old"'), `cache holds an older event: ${s}`);
  });

  it('state changes show within 2 s (cache at most 2 s stale)', async () => {
    const ch = `${b}-changing`;
    subscribe(ch, '10.5');
    const r1 = await L.api(app).get(`/channels/${ch}`, { info: 'subscription_count' });
    L.assertOk(r1);
    assert.equal(r1.json.occupied, true);
    L.sql(`DELETE FROM channel_subscriptions WHERE app_id = ${q(app.id)} AND channel = ${q(ch)}`);
    await L.sleep(2100);
    // several requests, so that every worker's view is checked
    for (let i = 0; i < 6; i++) {
      const r = await L.api(app).get(`/channels/${ch}`);
      L.assertOk(r);
      assert.equal(r.json.occupied, false, `request ${i}: still occupied 2.1 s after the last unsubscribe`);
    }
  });
});

describe('GET /channels/{name}/users', () => {
  it('presence channel → the distinct users', async () => {
    const r = await L.api(app).get(`/channels/${pres}/users`);
    L.assertOk(r);
    assert.ok(Array.isArray(r.json.users));
    assert.deepEqual(r.json.users.map((u) => u.id).sort(), ['alice', 'bob']);
  });

  it('empty presence channel → {users: []}', async () => {
    const r = await L.api(app).get(`/channels/presence-${b}-nobody/users`);
    L.assertOk(r);
    assert.deepEqual(r.json, { users: [] });
  });

  it('non-presence channel → 400', async () => {
    const r = await L.api(app).get(`/channels/${pub}/users`);
    L.assertError(r, 400, 'invalid_input');
  });

  it('private channel → 400', async () => {
    const r = await L.api(app).get(`/channels/${priv}/users`);
    L.assertError(r, 400, 'invalid_input');
  });
});

describe('POST /users/{id}/terminate_connections', () => {
  it("→ 200 {}, and the user's sockets leave channel state at once", async () => {
    const before = Number(L.sqlValue(`SELECT COUNT(*) FROM connections WHERE app_id = ${q(app.id)} AND user_id = 'alice'`));
    assert.equal(before, 2, 'alice should have two sockets to terminate');
    const r = await L.api(app).post('/users/alice/terminate_connections', {});
    L.assertOk(r);
    assert.deepEqual(r.json, {});
    const conns = Number(L.sqlValue(`SELECT COUNT(*) FROM connections WHERE app_id = ${q(app.id)} AND user_id = 'alice'`));
    const subs = Number(L.sqlValue(`SELECT COUNT(*) FROM channel_subscriptions WHERE app_id = ${q(app.id)} AND socket_id IN ('10.1', '10.2')`));
    assert.equal(conns, 0, "alice's connections remain");
    assert.equal(subs, 0, "alice's subscriptions remain");
  });

  it('with an empty body → 200 {}', async () => {
    const r = await L.call(app, 'POST', '/users/bob/terminate_connections', {});
    L.assertOk(r);
    assert.deepEqual(r.json, {});
  });

  it('GET on terminate_connections → 405 with Allow: POST', async () => {
    const r = await L.api(app).get('/users/alice/terminate_connections');
    L.assertError(r, 405);
    assert.match(String(r.headers.allow || ''), /POST/);
  });
});
