// Realtime (issue 5): unmodified pusher-js clients through Pushpin and the
// web server to sockudo-fcgi; publishes of the HTTP API reach them; channel
// state (SPEC 4) comes from their connections.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { spawn } = require('node:child_process');
const L = require('./lib');
const R = require('./rt');

let app; let srv;
const open = [];

// a client that after() closes
async function client(opts) {
  const c = await R.client(app, opts);
  open.push(c);
  return c;
}

async function channelInfo(ch, info = 'subscription_count') {
  const r = await L.api(app).get(`/channels/${encodeURIComponent(ch)}`, { info });
  L.assertOk(r);
  return r.json;
}

before(() => {
  app = L.createApp('rt');
  srv = R.server(app);
});

after(() => R.closeAll(...open));

describe('connection', () => {
  it('pusher:connection_established gives a socket_id of Pusher\'s form', async () => {
    const c = await client();
    assert.match(c.socketId, /^\d+\.\d+$/);
    assert.equal(Number(L.sqlValue(`SELECT COUNT(*) FROM connections WHERE app_id = ${L.sqlQuote(app.id)} AND socket_id = ${L.sqlQuote(c.socketId)}`)), 1);
  });

  it('pusher:ping → pusher:pong', async () => {
    const c = await client();
    const pong = R.next(c.connection, 'message');
    c.send_event('pusher:ping', {});
    const m = await pong;
    assert.equal(m.event, 'pusher:pong');
  });

  it('an unknown app key → pusher:error 4001 and the socket is closed with 4001', async () => {
    const WebSocket = require('ws');
    const url = R.wsUrls()[0];
    const ws = new WebSocket(`ws://${url.host}/app/no-such-key?protocol=7&client=js&version=8`);
    const msgs = [];
    ws.on('message', (m) => msgs.push(JSON.parse(m.toString())));
    const code = await new Promise((resolve) => ws.on('close', (c) => resolve(c)));
    assert.equal(code, 4001);
    assert.equal(msgs[0].event, 'pusher:error');
    assert.equal(msgs[0].data.code, 4001);
  });

  it('no protocol version → 4008; an unsupported one → 4007', async () => {
    const WebSocket = require('ws');
    const url = R.wsUrls()[0];
    for (const [q, want] of [['', 4008], ['?protocol=2', 4007]]) {
      const ws = new WebSocket(`ws://${url.host}/app/${app.key}${q}`);
      const code = await new Promise((resolve) => ws.on('close', (c) => resolve(c)));
      assert.equal(code, want, `query "${q}"`);
    }
  });

  it('a client\'s close is acknowledged with its code (also 4096, a zero byte) and it leaves', async () => {
    const WebSocket = require('ws');
    const name = L.uniq('bye');
    const ws = new WebSocket(`ws://${R.wsUrls()[0].host}/app/${app.key}?protocol=7`);
    const msgs = [];
    ws.on('message', (m) => msgs.push(JSON.parse(m.toString())));
    await L.waitFor(() => msgs.length >= 1, { timeoutMs: 5000, what: 'connection_established' });
    ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: name } }));
    await L.waitFor(() => msgs.length >= 2, { timeoutMs: 5000, what: 'subscribed' });
    const closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
    ws.close(4096, 'bye');
    assert.equal(await closed, 4096);
    await L.waitFor(async () => (await channelInfo(name)).occupied === false,
      { timeoutMs: 2000, what: 'left its channel' });
  });

  it('a request to the socket route that does not come from Pushpin → 401 JSON', async () => {
    const r = await L.rawRequest({ method: 'POST', path: `/app/${app.key}?protocol=7`,
      headers: { 'Content-Type': 'application/websocket-events' }, body: 'OPEN\r\n' });
    L.assertError(r, 401, 'auth_failed');
    const forged = await L.rawRequest({ method: 'POST', path: `/app/${app.key}?protocol=7`,
      headers: { 'Content-Type': 'application/websocket-events', 'Grip-Sig': 'eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjk5OTk5OTk5OTl9.AAAA' }, body: 'OPEN\r\n' });
    L.assertError(forged, 401, 'auth_failed');
  });
});

describe('publish → subscribers', () => {
  it('a public channel receives HTTP-API publishes in order, data intact', async () => {
    const c = await client();
    const name = L.uniq('pub');
    const { ch } = await R.subscribe(c, name);
    const got = R.record(ch);
    for (let i = 0; i < 20; i++) await srv.trigger(name, 'seq', { i, s: 'é"\\' });
    await L.waitFor(() => got.length >= 20, { timeoutMs: 5000, what: '20 events' });
    assert.deepEqual(got.map(([, d]) => d.i), [...Array(20).keys()]);
    assert.equal(got[0][0], 'seq');
    assert.equal(got[0][1].s, 'é"\\');
  });

  it('batch_events reach each channel; one event to several channels reaches each', async () => {
    const c = await client();
    const a = L.uniq('ba'); const b = L.uniq('bb');
    const ra = R.record((await R.subscribe(c, a)).ch);
    const rb = R.record((await R.subscribe(c, b)).ch);
    await srv.triggerBatch([{ channel: a, name: 'x', data: '1' }, { channel: b, name: 'y', data: '2' }]);
    await srv.trigger([a, b], 'both', 'z');
    await L.waitFor(() => ra.length >= 2 && rb.length >= 2, { timeoutMs: 5000, what: 'events' });
    assert.deepEqual(ra, [['x', 1], ['both', 'z']]);
    assert.deepEqual(rb, [['y', 2], ['both', 'z']]);
  });

  it('a publish too big for one Pushpin request (1,000,000 bytes) is split, and all of it arrives', async () => {
    // eight events of 35,000 quotes to channels nobody holds: 560 kB of
    // request, but escaped twice in Pushpin's items (the message, then the
    // item) 1.1 MB; in one request Pushpin would refuse all of it, the two
    // small events around them too
    const big = L.createApp('rt-big');
    L.appSet(big.id, 'max_event_data_bytes', 35000);
    const c = await R.client(big);
    open.push(c);
    const ch = L.uniq('big');
    const got = R.record((await R.subscribe(c, ch)).ch);
    const data = '"'.repeat(35000);
    const batch = [{ channel: ch, name: 'first', data: '1' },
      ...Array.from({ length: 8 }, (_, i) => ({ channel: `${ch}-${i}`, name: 'big', data })),
      { channel: ch, name: 'last', data: '2' }];
    L.assertOk(await L.api(big).post('/batch_events', { batch }));
    await L.waitFor(() => got.length >= 2, { timeoutMs: 5000, what: 'the events around the big ones' });
    assert.deepEqual(got, [['first', 1], ['last', 2]]);
  });

  it('a burst of ten events of 10 kB to one client arrives whole (Pushpin client_buffer_size)', async () => {
    const c = await client();
    const ch = L.uniq('burst');
    const got = R.record((await R.subscribe(c, ch)).ch);
    const data = 'x'.repeat(10000);
    const batch = Array.from({ length: 10 }, (_, i) => ({ channel: ch, name: `e${i}`, data }));
    L.assertOk(await L.api(app).post('/batch_events', { batch }));
    await L.waitFor(() => got.length >= 10, { timeoutMs: 5000, what: 'ten events' });
    assert.deepEqual(got.map(([n]) => n), batch.map((e) => e.name));
  });

  it('socket_id excludes the sender; the others still get it', async () => {
    const a = await client(); const b = await client({ instance: 1 });
    const name = L.uniq('ex');
    const ga = R.record((await R.subscribe(a, name)).ch);
    const gb = R.record((await R.subscribe(b, name)).ch);
    await srv.trigger(name, 'not-for-a', 'x', { socket_id: a.socketId });
    await srv.trigger(name, 'sentinel', 'y');
    await L.waitFor(() => ga.length >= 1 && gb.length >= 2, { timeoutMs: 5000, what: 'sentinel' });
    assert.deepEqual(ga.map(([n]) => n), ['sentinel'], 'the excluded socket got the event');
    assert.deepEqual(gb.map(([n]) => n), ['not-for-a', 'sentinel']);
  });

  it('every Pushpin instance gets every publish', async () => {
    const urls = R.wsUrls();
    assert.ok(urls.length >= 2, 'the devstack runs two Pushpin instances');
    const name = L.uniq('multi');
    const clients = await Promise.all(urls.map((_, i) => client({ instance: i })));
    const recs = [];
    for (const c of clients) recs.push(R.record((await R.subscribe(c, name)).ch));
    await srv.trigger(name, 'to-all', 'v');
    await L.waitFor(() => recs.every((r) => r.length === 1), { timeoutMs: 5000, what: 'both instances' });
  });

  it('private channel: authorised by authorizeChannel; publishes arrive', async () => {
    const c = await client();
    const name = `private-${L.uniq('p')}`;
    const { ch } = await R.subscribe(c, name);
    const got = R.record(ch);
    await srv.trigger(name, 'secret', { ok: true });
    await L.waitFor(() => got.length === 1, { timeoutMs: 5000, what: 'private event' });
    assert.deepEqual(got[0], ['secret', { ok: true }]);
  });

  it('a wrong channel auth → pusher:subscription_error, no subscription', async () => {
    const c = await client({ authFails: true });
    const name = `private-${L.uniq('bad')}`;
    const ch = c.subscribe(name);
    const e = await R.next(ch, 'pusher:subscription_error');
    assert.equal(e.status, 401);
    assert.equal(ch.subscribed, false);
    assert.equal((await channelInfo(name)).occupied, false);
  });

  it('private-encrypted: the SDK encrypts, pusher-js decrypts; the server only relays', async () => {
    const key = crypto.randomBytes(32).toString('base64');
    const enc = R.server(app, { encryptionMasterKeyBase64: key });
    const c = await client({ encryptionMasterKeyBase64: key });
    const name = `private-encrypted-${L.uniq('e')}`;
    const { ch } = await R.subscribe(c, name);
    const got = R.record(ch);
    await enc.trigger(name, 'sealed', { msg: 'hidden' });
    await L.waitFor(() => got.length === 1, { timeoutMs: 5000, what: 'encrypted event' });
    assert.deepEqual(got[0], ['sealed', { msg: 'hidden' }]);
    const stored = L.sqlValue(`SELECT data FROM messages WHERE app_id = ${L.sqlQuote(app.id)} AND channel = ${L.sqlQuote(name)}`);
    assert.ok(!stored.includes('hidden'), 'the stored data is not ciphertext');
  });

  it('cache- channel: the last event on subscribe; pusher:cache_miss when there is none', async () => {
    const name = `cache-${L.uniq('c')}`;
    const empty = `cache-${L.uniq('c0')}`;
    await srv.trigger(name, 'first', 1);
    await srv.trigger(name, 'last', 2);
    const c = await client();
    const ch = c.subscribe(name);
    const last = await R.next(ch, 'last');
    assert.equal(last, 2);
    const e = c.subscribe(empty);
    await R.next(e, 'pusher:cache_miss');
  });

  it('message updates and annotation summaries are delivered (SPEC 6, 7)', async () => {
    const c = await client();
    const name = L.uniq('msg');
    const got = R.record((await R.subscribe(c, name)).ch);
    const pub = await L.api(app).post('/events', { name: 'm', channel: name, data: 'hello', info: 'subscription_count' });
    L.assertOk(pub);
    const serial = pub.json.channels[name].message_serial;
    const base = `/channels/${name}/messages/${serial}`;
    L.assertOk(await L.api(app).post(`${base}/update`, { data: 'hello, world' }));
    L.assertOk(await L.api(app).post(`${base}/annotations`, { type: 'reactions:total.v1' }), 201);
    await L.waitFor(() => got.length >= 3, { timeoutMs: 5000, what: 'three events' });
    assert.deepEqual(got.map(([n]) => n), ['m', 'sockudo:message.update', 'sockudo:annotation.summary']);
    assert.equal(got[1][1].message_serial, serial);
    assert.equal(got[1][1].data, 'hello, world');
    assert.equal(got[1][1].action, 'update');
    assert.deepEqual(got[2][1], { message_serial: serial, summary: { 'reactions:total.v1': { total: 1 } } });
  });
});

describe('presence', () => {
  it('subscription_succeeded lists members; member_added/removed once per user, not per socket', async () => {
    const name = `presence-${L.uniq('room')}`;
    const a = await client({ user: { user_id: 'alice', user_info: { name: 'Alice' } } });
    const { ch: ca, data: m0 } = await R.subscribe(a, name);
    assert.equal(m0.count, 1);
    assert.deepEqual(m0.members, { alice: { name: 'Alice' } });
    const added = []; const removed = [];
    ca.bind('pusher:member_added', (m) => added.push(m.id));
    ca.bind('pusher:member_removed', (m) => removed.push(m.id));

    const b1 = await client({ user: { user_id: 'bob', user_info: { n: 1 } }, instance: 1 });
    const { data: mb } = await R.subscribe(b1, name);
    assert.deepEqual(Object.keys(mb.members).sort(), ['alice', 'bob']);
    await L.waitFor(() => added.length === 1, { timeoutMs: 5000, what: 'member_added bob' });
    const b2 = await client({ user: { user_id: 'bob', user_info: { n: 1 } } });
    await R.subscribe(b2, name);
    const info = await channelInfo(name, 'subscription_count,user_count');
    assert.deepEqual(info, { occupied: true, subscription_count: 3, user_count: 2 });
    const users = await L.api(app).get(`/channels/${name}/users`);
    assert.deepEqual(users.json.users.map((u) => u.id), ['alice', 'bob']);

    b1.disconnect();
    await L.waitFor(async () => (await channelInfo(name)).subscription_count === 2, { timeoutMs: 5000, what: 'b1 gone' });
    assert.deepEqual(removed, [], 'bob still has a socket');
    b2.disconnect();
    await L.waitFor(() => removed.length === 1, { timeoutMs: 5000, what: 'member_removed bob' });
    assert.deepEqual(added, ['bob']);
    assert.deepEqual(removed, ['bob']);
  });

  it('presence without channel_data signed → subscription_error', async () => {
    const name = `presence-${L.uniq('bad')}`;
    const c = await client({ authFails: true, user: { user_id: 'x' } });
    const e = await R.next(c.subscribe(name), 'pusher:subscription_error');
    assert.equal(e.status, 401);
  });
});

describe('client events', () => {
  it('client-* on a private channel reach the others, not the sender', async () => {
    const name = `private-${L.uniq('ce')}`;
    const a = await client(); const b = await client({ instance: 1 });
    const { ch: ca } = await R.subscribe(a, name);
    const { ch: cb } = await R.subscribe(b, name);
    const ga = R.record(ca); const gb = R.record(cb);
    assert.equal(ca.trigger('client-typing', { who: 'a' }), true);
    await L.waitFor(() => gb.length === 1, { timeoutMs: 5000, what: 'client event at b' });
    assert.deepEqual(gb[0], ['client-typing', { who: 'a' }]);
    await srv.trigger(name, 'sentinel', 1);
    await L.waitFor(() => ga.length >= 1, { timeoutMs: 5000, what: 'sentinel at a' });
    assert.deepEqual(ga.map(([n]) => n), ['sentinel'], 'the sender got its own client event');
  });

  it('client events on a presence channel carry user_id', async () => {
    const name = `presence-${L.uniq('cu')}`;
    const a = await client({ user: { user_id: 'ann' } }); const b = await client({ user: { user_id: 'ben' } });
    const { ch: ca } = await R.subscribe(a, name);
    const { ch: cb } = await R.subscribe(b, name);
    const meta = new Promise((resolve) => cb.bind('client-hi', (d, m) => resolve([d, m])));
    ca.trigger('client-hi', 'x');
    const [d, m] = await meta;
    assert.equal(d, 'x');
    assert.equal(m.user_id, 'ann');
  });

  it('client events on a public channel → pusher:error, not delivered', async () => {
    const name = L.uniq('pubce');
    const a = await client();
    await R.subscribe(a, name);
    const err = new Promise((resolve) => a.connection.bind('message', (m) => {
      if (m.event === 'pusher:error') resolve(m.data);
    }));
    a.send_event('client-nope', { x: 1 }, name);
    const e = await err;
    assert.match(e.message, /private and presence/);
  });
});

describe('users', () => {
  it('signin, then sendToUser reaches the user; a wrong signin closes with 4009', async () => {
    const id = 'u-' + L.uniq('s');
    const c = await client({ signin: { id } });
    c.signin();
    await L.waitFor(() => c.user.user_data && c.user.user_data.id === id, { timeoutMs: 5000, what: 'signin' });
    await L.waitFor(() => c.user.serverToUserChannel && c.user.serverToUserChannel.subscribed,
      { timeoutMs: 5000, what: '#server-to-user channel' });
    const got = R.next(c.user, 'private-note');
    await srv.sendToUser(id, 'private-note', { hi: id });
    assert.deepEqual(await got, { hi: id });

    const bad = await client({ signinFails: true });
    const refused = new Promise((resolve) => bad.connection.bind('message', (m) => {
      if (m.event === 'pusher:error') resolve(m.data);
    }));
    bad.signin();
    assert.equal((await refused).code, 4009);
    await L.waitFor(() => bad.connection.state !== 'connected', { timeoutMs: 5000, what: 'closed' });
  });

  it('#server-to-user-X cannot be subscribed without signing in as X', async () => {
    // pusher-js itself refuses the name: speak the protocol directly
    const WebSocket = require('ws');
    const ws = new WebSocket(`ws://${R.wsUrls()[0].host}/app/${app.key}?protocol=7`);
    const msgs = [];
    ws.on('message', (m) => msgs.push(JSON.parse(m.toString())));
    await L.waitFor(() => msgs.length >= 1, { timeoutMs: 5000, what: 'connection_established' });
    ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: '#server-to-user-someone' } }));
    await L.waitFor(() => msgs.length >= 2, { timeoutMs: 5000, what: 'an answer' });
    ws.close();
    assert.equal(msgs[1].event, 'pusher:subscription_error');
    assert.equal(msgs[1].channel, '#server-to-user-someone');
    // Pusher sends event data as a JSON string
    assert.equal(JSON.parse(msgs[1].data).status, 403);
  });

  it('terminate_connections closes the user\'s sockets and they leave channel state', async () => {
    const uid = 'term-' + L.uniq('t');
    const c = await client({ signin: { id: uid } });
    c.signin();
    await L.waitFor(() => c.user.user_data, { timeoutMs: 5000, what: 'signin' });
    const name = L.uniq('term');
    await R.subscribe(c, name);
    assert.equal((await channelInfo(name)).subscription_count, 1);
    const state = new Promise((resolve) => c.connection.bind('state_change', (s) => {
      if (s.current === 'disconnected' || s.current === 'failed' || s.current === 'unavailable') resolve(s.current);
    }));
    const res = await srv.terminateUserConnections(uid);
    assert.equal(res.status, 200);
    await state;
    // at once in MariaDB; through the channel cache within 2 s (SPEC 4)
    await L.waitFor(async () => (await channelInfo(name)).occupied === false,
      { timeoutMs: 2000, what: 'vacated' });
  });
});

describe('channel state from connections', () => {
  it('subscription_count follows subscribes and unsubscribes within 2 s', async () => {
    const name = L.uniq('count');
    const cs = await Promise.all([0, 1, 0].map((i) => client({ instance: i })));
    for (const c of cs) await R.subscribe(c, name);
    await L.waitFor(async () => (await channelInfo(name)).subscription_count === 3, { timeoutMs: 2000, what: '3' });
    const list = await L.api(app).get('/channels', { filter_by_prefix: name, info: 'subscription_count' });
    assert.deepEqual(list.json.channels[name], { subscription_count: 3 });
    cs[0].unsubscribe(name);
    await L.waitFor(async () => (await channelInfo(name)).subscription_count === 2, { timeoutMs: 2000, what: '2' });
    cs[1].disconnect(); cs[2].disconnect();
    await L.waitFor(async () => (await channelInfo(name)).occupied === false, { timeoutMs: 2000, what: 'vacated' });
  });

  it('a client killed without a close frame is removed, and members see it leave', async () => {
    const name = `presence-${L.uniq('kill')}`;
    const watcher = await client({ user: { user_id: 'watcher' } });
    const { ch } = await R.subscribe(watcher, name);
    const left = R.next(ch, 'pusher:member_removed', 15000);
    // a separate process, killed with SIGKILL: no close frame, no goodbye
    const child = spawn(process.execPath, ['-e', `
      const R = require(${JSON.stringify(require.resolve('./rt'))});
      (async () => {
        const c = await R.client(${JSON.stringify(app)}, { user: { user_id: 'doomed' } });
        await R.subscribe(c, ${JSON.stringify(name)});
        console.log('ready');
      })();`], { env: process.env, stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((resolve) => child.stdout.on('data', (d) => { if (String(d).includes('ready')) resolve(); }));
    assert.equal((await channelInfo(name, 'user_count')).user_count, 2);
    child.kill('SIGKILL');
    const m = await left;
    assert.equal(m.id, 'doomed');
    await L.waitFor(async () => (await channelInfo(name, 'user_count')).user_count === 1, { timeoutMs: 3000, what: 'user_count 1' });
  });
});
