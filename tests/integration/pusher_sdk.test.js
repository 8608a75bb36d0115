// The official npm `pusher` SDK, unmodified, against sockudo-fcgi.
'use strict';

const { describe, it, before } = require('node:test');
const assert = require('node:assert/strict');
const Pusher = require('pusher');
const L = require('./lib');

let app; let pusher;
const q = L.sqlQuote;
const rows = (ch) => L.sql(`SELECT name, data FROM messages WHERE app_id = ${q(app.id)} AND channel = ${q(ch)} ORDER BY serial`);

before(() => {
  app = L.createApp('sdk');
  const u = L.baseUrl();
  pusher = new Pusher({ appId: app.id, key: app.key, secret: app.secret, host: u.hostname,
    port: u.port, useTLS: false });
});

describe('pusher SDK', () => {
  it('trigger → 200 {} and stored', async () => {
    const ch = L.uniq('sdk');
    const res = await pusher.trigger(ch, 'sdk-event', { hello: 'world' });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {});
    const r = rows(ch);
    assert.equal(r.length, 1);
    assert.equal(r[0][0], 'sdk-event');
    assert.deepEqual(JSON.parse(r[0][1]), { hello: 'world' });
  });

  it('trigger to several channels', async () => {
    const chs = [L.uniq('sdk-m1'), L.uniq('sdk-m2')];
    const res = await pusher.trigger(chs, 'multi', 'x');
    assert.equal(res.status, 200);
    for (const ch of chs) assert.equal(rows(ch).length, 1);
  });

  it('trigger with socket_id', async () => {
    const ch = L.uniq('sdk-sock');
    const res = await pusher.trigger(ch, 'e', 'x', { socket_id: '123.456' });
    assert.equal(res.status, 200);
    assert.equal(rows(ch).length, 1);
  });

  it('trigger with info → channels attributes', async () => {
    const ch = `presence-${L.uniq('sdk-info')}`;
    const res = await pusher.trigger(ch, 'e', 'x', { info: 'user_count,subscription_count' });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.channels[ch].user_count, 0);
    assert.equal(body.channels[ch].subscription_count, 0);
    assert.equal(rows(ch).length, 1);
  });

  it('triggerBatch → 200 {} and every event stored', async () => {
    const a = L.uniq('sdk-b1'); const b = L.uniq('sdk-b2');
    const res = await pusher.triggerBatch([
      { channel: a, name: 'one', data: 'd1' },
      { channel: b, name: 'two', data: { n: 2 } },
    ]);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {});
    assert.deepEqual(rows(a), [['one', 'd1']]);
    assert.equal(rows(b)[0][0], 'two');
    assert.deepEqual(JSON.parse(rows(b)[0][1]), { n: 2 });
  });

  it('triggerBatch with info → per-event attributes in order', async () => {
    const a = L.uniq('sdk-bi1'); const p = `presence-${L.uniq('sdk-bi2')}`;
    const res = await pusher.triggerBatch([
      { channel: a, name: 'one', data: 'd1', info: 'subscription_count' },
      { channel: p, name: 'two', data: 'd2', info: 'user_count' },
    ]);
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.batch.length, 2);
    assert.equal(body.batch[0].subscription_count, 0);
    assert.equal(body.batch[1].user_count, 0);
  });

  it('sendToUser → 200 and stored on #server-to-user-<id>', async () => {
    const user = `u${Date.now()}`;
    const res = await pusher.sendToUser(user, 'to-user', { msg: 'hi' });
    assert.equal(res.status, 200);
    const r = rows(`#server-to-user-${user}`);
    assert.equal(r.length, 1);
    assert.equal(r[0][0], 'to-user');
  });

  it('get /channels', async () => {
    const ch = L.uniq('sdk-occ');
    L.sql(`INSERT INTO channel_subscriptions (app_id, channel, socket_id, user_id, user_info, subscribed_at_ms)
      VALUES (${q(app.id)}, ${q(ch)}, '5.5', NULL, NULL, ${Date.now()})`);
    const res = await pusher.get({ path: '/channels', params: { info: 'subscription_count' } });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(typeof body.channels, 'object');
    assert.equal(body.channels[ch].subscription_count, 1);
  });

  it('get /channels with filter_by_prefix', async () => {
    const res = await pusher.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } });
    assert.equal(res.status, 200);
    const body = await res.json();
    for (const name of Object.keys(body.channels)) assert.ok(name.startsWith('presence-'));
  });

  it('get /channels/x', async () => {
    const res = await pusher.get({ path: `/channels/${L.uniq('sdk-x')}`, params: { info: 'subscription_count' } });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.occupied, false);
  });

  it('get /channels/presence-x/users', async () => {
    const ch = `presence-${L.uniq('sdk-u')}`;
    L.sql(`INSERT INTO channel_subscriptions (app_id, channel, socket_id, user_id, user_info, subscribed_at_ms)
      VALUES (${q(app.id)}, ${q(ch)}, '6.1', 'carol', '{}', ${Date.now()})`);
    const res = await pusher.get({ path: `/channels/${ch}/users` });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { users: [{ id: 'carol' }] });
  });

  it('get /channels/x/users on a non-presence channel rejects with RequestError 400', async () => {
    await assert.rejects(pusher.get({ path: `/channels/${L.uniq('sdk-np')}/users` }), (e) => {
      assert.ok(e instanceof Pusher.RequestError);
      assert.equal(e.status, 400);
      return true;
    });
  });

  it('terminateUserConnections → 200 {}, and carol leaves channel state', async () => {
    assert.equal(Number(L.sqlValue(`SELECT COUNT(*) FROM channel_subscriptions WHERE app_id = ${q(app.id)} AND user_id = 'carol'`)), 1);
    const res = await pusher.terminateUserConnections('carol');
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {});
    assert.equal(Number(L.sqlValue(`SELECT COUNT(*) FROM channel_subscriptions WHERE app_id = ${q(app.id)} AND user_id = 'carol'`)), 0);
  });

  it('wrong secret → RequestError 401', async () => {
    const u = L.baseUrl();
    const bad = new Pusher({ appId: app.id, key: app.key, secret: 'wrong', host: u.hostname, port: u.port, useTLS: false });
    const ch = L.uniq('sdk-bad');
    await assert.rejects(bad.trigger(ch, 'e', 'x'), (e) => {
      assert.ok(e instanceof Pusher.RequestError);
      assert.equal(e.status, 401);
      return true;
    });
    assert.equal(rows(ch).length, 0);
  });

  it('Pusher.forURL works with http://key:secret@host:port/apps/id', async () => {
    const u = L.baseUrl();
    const p = Pusher.forURL(`http://${app.key}:${app.secret}@${u.hostname}:${u.port}/apps/${app.id}`);
    const ch = L.uniq('sdk-url');
    const res = await p.trigger(ch, 'e', 'x');
    assert.equal(res.status, 200);
    assert.equal(rows(ch).length, 1);
  });
});
