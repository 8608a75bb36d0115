// Issue 13: a hostile tenant against the real stack (the web server, the
// pool, MariaDB, Pushpin): bad text never reaches MariaDB, nothing from
// outside becomes a header, limits hold, operator routes stay private.
// Each test failed against the code before its fix.
'use strict';

const { describe, it, before } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const WebSocket = require('ws');
const L = require('./lib');
const R = require('./rt');
const F = require('./fcgi_client');

let app;
before(() => { app = L.createApp('hostile'); });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A raw WebSocket client through Pushpin: every message kept in order.
async function ws(instance = 0) {
  const s = new WebSocket(`ws://${R.wsUrls()[instance].host}/app/${app.key}?protocol=7`);
  const c = { s, msgs: [], closed: null };
  s.on('message', (m) => c.msgs.push(JSON.parse(m.toString())));
  s.on('close', (code) => { c.closed = code; });
  s.on('error', () => {});
  c.send = (event, data) => s.send(JSON.stringify({ event, data }));
  c.wait = (pred, what, timeoutMs = 5000) => L.waitFor(() => c.msgs.find(pred),
    { timeoutMs, intervalMs: 20, what });
  c.close = () => { try { s.close(); } catch { /* gone already */ } };
  const est = await c.wait((m) => m.event === 'pusher:connection_established', 'connected');
  c.socketId = JSON.parse(est.data).socket_id;
  return c;
}

const parsed = (m) => (typeof m.data === 'string' ? JSON.parse(m.data) : m.data);

describe('bad text is refused before MariaDB (400, nothing stored)', () => {
  const cases = [
    ['NaN', '{"name":"e","channel":"c","data":NaN}'],
    ['Infinity', '{"name":"e","channel":"c","data":{"x":Infinity}}'],
    ['1e400', '{"name":"e","channel":"c","data":{"x":1e400}}'],
    ['an integer over 2^64', '{"name":"e","channel":"c","data":{"x":123456789012345678901234}}'],
    ['a raw tab in a string', '{"name":"e","channel":"c","data":"a\tb"}'],
    ['an escaped NUL', '{"name":"e","channel":"c","data":"a\\u0000b"}'],
    ['a lone surrogate escape', '{"name":"e","channel":"c","data":"a\\ud800b"}'],
  ];
  const rawCases = [
    ['overlong UTF-8', Buffer.from([0xc0, 0xaf])],
    ['CESU (a surrogate in UTF-8)', Buffer.from([0xed, 0xa0, 0x80])],
    ['over U+10FFFF', Buffer.from([0xf4, 0x90, 0x80, 0x80])],
    ['a 0xFF byte', Buffer.from([0xff])],
  ];

  for (const [what, body] of cases) {
    it(`publish with ${what} → 400`, async () => {
      const ch = L.uniq('bad');
      const r = await L.call(app, 'POST', '/events', { body: body.replace('"c"', `"${ch}"`) });
      L.assertError(r, 400, 'invalid_input');
      assert.equal(L.countMessages(app.id, `channel = ${L.sqlQuote(ch)}`), 0);
    });
  }
  for (const [what, bytes] of rawCases) {
    it(`publish with ${what} in a string → 400`, async () => {
      const ch = L.uniq('bad');
      const body = Buffer.concat([Buffer.from(`{"name":"e","channel":"${ch}","data":"a`), bytes,
        Buffer.from('b"}')]);
      const r = await L.call(app, 'POST', '/events', { body });
      L.assertError(r, 400, 'invalid_input');
      assert.equal(L.countMessages(app.id, `channel = ${L.sqlQuote(ch)}`), 0);
    });
  }

  it('a device whose id holds a lone surrogate escape → 400, not stored as U+FFFD', async () => {
    const r = await L.call(app, 'POST', '/push/deviceRegistrations', { body:
      '{"device_id":"dev-\\udcff","platform":"fcm","provider_token":"tok"}' });
    L.assertError(r, 400, 'invalid_input');
    assert.equal(L.sqlValue(`SELECT COUNT(*) FROM push_devices WHERE app_id = ${L.sqlQuote(app.id)}`), '0');
  });

  it('X-Idempotency-Key that is not UTF-8 → 400', async () => {
    const ch = L.uniq('idem');
    const body = JSON.stringify({ name: 'e', channel: ch, data: 'x' });
    const p = `/apps/${app.id}/events`;
    const q = L.encodeQuery(L.signParams({ method: 'POST', path: p, body, key: app.key,
      secret: app.secret }));
    for (const bad of [[0xff, 0xfe], [0xc0, 0xaf]]) {
      // the header's bytes exactly as sent (Node would re-encode a string)
      const head = Buffer.concat([Buffer.from(`POST ${p}?${q} HTTP/1.0\r\nHost: 127.0.0.1\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\nX-Idempotency-Key: k`),
      Buffer.from(bad), Buffer.from(`\r\n\r\n${body}`)]);
      const answer = await new Promise((resolve, reject) => {
        const u = L.baseUrl();
        // not end(): nginx takes a half-close for a client gone and answers nothing
        const s = net.connect(Number(u.port), u.hostname, () => s.write(head));
        const chunks = [];
        s.on('data', (c) => chunks.push(c));
        s.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        s.on('error', reject);
      });
      assert.match(answer, /^HTTP\/1\.\d 400/, answer);
      assert.match(answer, /X-Idempotency-Key/);
    }
    assert.equal(L.countMessages(app.id, `channel = ${L.sqlQuote(ch)}`), 0);
  });

  // Straight to the pool over FastCGI: every web server passes these on
  // differently (lighttpd refuses %FF itself), the pool must not need it to.
  // Arguments no charset rule guards (a template id, a user id) reached
  // MariaDB, which refused them: a 500.
  const template = { locales: { en: { title: 't', body: 'b' } }, default_locale: 'en' };
  for (const seg of ['%C0%AF', '%FF', '%ED%A0%80', 'a%00b', 'a%0Ab']) {
    it(`a path argument ${seg} → 400 JSON from the pool, nothing stored`, async () => {
      for (const [method, sub, body] of [['PUT', `/push/templates/${seg}`, JSON.stringify(template)],
        ['POST', `/users/${seg}/terminate_connections`, '{}']]) {
        const p = `/apps/${app.id}${sub}`;
        const q = L.encodeQuery(L.signParams({ method, path: p, body, key: app.key,
          secret: app.secret }));
        const r = await F.request(process.env.SOCKUDO_POOL_SOCKET, { method, uri: `${p}?${q}`, body });
        assert.equal(r.status, 400, `${method} ${sub}: ${r.body}`);
        assert.equal(r.json.code, 'invalid_input');
      }
      assert.equal(L.sqlValue(`SELECT COUNT(*) FROM push_templates WHERE app_id = ${L.sqlQuote(app.id)}`), '0');
    });
  }

  it('a path argument %C0%AF through the web server → 400, never a 5xx', async () => {
    for (const [method, path] of [['PUT', `/apps/${app.id}/push/templates/%C0%AF`],
      ['POST', `/apps/${app.id}/users/%C0%AF/terminate_connections`]]) {
      const r = await L.call(app, method, '', { path, body: method === 'PUT' ? template : {} });
      assert.equal(r.status, 400, `${path}: ${r.body}`);
    }
  });

  it('%00 in a query value → 400 (it used to cut the value short)', async () => {
    // through the web server (lighttpd refuses it itself) and straight to the pool
    const r = await L.call(app, 'GET', '/channels', { params: { filter_by_prefix: 'pre\0x' } });
    assert.equal(r.status, 400, r.body);
    const p = `/apps/${app.id}/channels`;
    const q = L.encodeQuery(L.signParams({ method: 'GET', path: p, params: { filter_by_prefix: 'pre\0x' },
      key: app.key, secret: app.secret }));
    const f = await F.request(process.env.SOCKUDO_POOL_SOCKET, { uri: `${p}?${q}` });
    assert.equal(f.status, 400, f.body);
    assert.equal(f.json.code, 'invalid_input');
  });

  it('an app key with a trailing space is not the app\'s key → 401', async () => {
    const r = await L.call(app, 'GET', '/channels', { key: `${app.key} ` });
    L.assertError(r, 401, 'auth_failed');
  });
});

describe('nothing from outside becomes a header', () => {
  it('a signin id with CR/LF is refused (4009); it reads no one else\'s messages', async () => {
    const srv = R.server(app);
    const eve = await ws();
    const userData = JSON.stringify({ id: 'eve\r\nSet-Meta-Uid: alice' });
    const { auth } = srv.authenticateUser(eve.socketId, { id: 'eve\r\nSet-Meta-Uid: alice' });
    eve.send('pusher:signin', { auth, user_data: userData });
    const err = await eve.wait((m) => m.event === 'pusher:error', 'pusher:error');
    assert.equal(parsed(err).code, 4009);
    await L.waitFor(() => eve.closed === 4009, { timeoutMs: 5000, what: 'closed with 4009' });
    assert.equal(eve.msgs.some((m) => m.event === 'pusher:signin_success'), false);
  });

  it('a presence user_id with CR/LF is refused; the socket is no member', async () => {
    const srv = R.server(app);
    const c = await ws();
    const ch = L.uniq('presence-crlf');
    const cd = { user_id: 'mallory\r\nSet-Meta-User: 1.1', user_info: {} };
    const a = srv.authorizeChannel(c.socketId, ch, cd);
    c.send('pusher:subscribe', { channel: ch, auth: a.auth, channel_data: a.channel_data });
    await c.wait((m) => m.event === 'pusher:subscription_error' && m.channel === ch, 'subscription_error');
    assert.equal(L.sqlValue(`SELECT COUNT(*) FROM channel_subscriptions WHERE app_id = ${L.sqlQuote(app.id)} AND channel = ${L.sqlQuote(ch)}`), '0');
    c.close();
  });

  it('a Grip-Sig whose alg is null → 401, and the pool goes on', async () => {
    const key = L.confValue('pushpin_sig_key');
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const unsigned = `${b64({ alg: null })}.${b64({ iss: 'pushpin', exp: Math.floor(Date.now() / 1000) + 60 })}`;
    const sig = crypto.createHmac('sha256', key).update(unsigned).digest('base64url');
    const r = await L.rawRequest({ method: 'POST', path: `/app/${app.key}?protocol=7`,
      headers: { 'Content-Type': 'application/websocket-events', 'Grip-Sig': `${unsigned}.${sig}` },
      body: 'OPEN\r\n' });
    L.assertError(r, 401, 'auth_failed');
    const other = `${b64({ alg: 'HS256' })}.${b64({ iss: 'someone-else', exp: Math.floor(Date.now() / 1000) + 60 })}`;
    const r2 = await L.rawRequest({ method: 'POST', path: `/app/${app.key}?protocol=7`,
      headers: { 'Content-Type': 'application/websocket-events',
        'Grip-Sig': `${other}.${crypto.createHmac('sha256', key).update(other).digest('base64url')}` },
      body: 'OPEN\r\n' });
    L.assertError(r2, 401, 'auth_failed');
    assert.equal((await L.rawRequest({ path: '/live' })).status, 200);
  });

  // One header per event overflowed nginx's 4 KB FastCGI header buffer:
  // 502, and Pushpin dropped the socket.
  it('a batch of 256 events (pings, signins) answers each Set-Meta header once', async () => {
    const key = L.confValue('pushpin_sig_key');
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const grip = () => {
      const u = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ iss: 'pushpin', exp: Math.floor(Date.now() / 1000) + 60 })}`;
      return `${u}.${crypto.createHmac('sha256', key).update(u).digest('base64url')}`;
    };
    const text = (o) => { const t = JSON.stringify(o); return `TEXT ${Buffer.byteLength(t).toString(16)}\r\n${t}\r\n`; };
    const path = `/app/${app.key}?protocol=7`;
    const open = await L.rawRequest({ method: 'POST', path,
      headers: { 'Content-Type': 'application/websocket-events', 'Grip-Sig': grip() }, body: 'OPEN\r\n' });
    assert.equal(open.status, 200, open.body);
    const socketId = open.headers['set-meta-user'];
    assert.match(socketId, /^\d+\.\d+$/);
    const srv = R.server(app);
    let body = '';
    for (let i = 0; i < 200; i++) body += text({ event: 'pusher:ping', data: {} });
    for (let i = 0; i < 56; i++) {
      const user = { id: `u${i}-${'x'.repeat(150)}` };
      const { auth, user_data: userData } = srv.authenticateUser(socketId, user);
      body += text({ event: 'pusher:signin', data: { auth, user_data: userData } });
    }
    const r = await L.rawRequest({ method: 'POST', path, body,
      headers: { 'Content-Type': 'application/websocket-events', 'Grip-Sig': grip(),
        'Meta-User': socketId, 'Meta-Renew': '0' } });
    assert.equal(r.status, 200, r.body);
    for (const h of ['set-meta-seen', 'set-meta-renew', 'set-meta-uid']) {
      // Node joins a repeated header with ", "
      assert.equal(typeof r.headers[h], 'string', h);
      assert.doesNotMatch(r.headers[h], /,/, `${h} once`);
    }
    assert.equal(r.headers['set-meta-uid'], `u55-${'x'.repeat(150)}`, 'the last signin wins');
    assert.equal((r.body.match(/pusher:pong/g) || []).length, 200);
    assert.equal((r.body.match(/pusher:signin_success/g) || []).length, 56);
  });
});

describe('operator endpoints are not served through Pushpin', () => {
  for (const path of ['/stats', '/metrics', '/up', '/live']) {
    it(`GET ${path} on Pushpin's port is not answered by the pool`, async () => {
      const u = R.wsUrls()[0];
      const r = await L.sendRequest({ host: u.hostname, port: Number(u.port), path });
      assert.notEqual(r.status, 200, `${path}: ${r.body}`);
      assert.equal(/"uptime|sockudo_|"status":"ok"/.test(r.body || ''), false, r.body);
    });
  }
  it('GET /up/{app} on Pushpin\'s port does not tell which apps exist', async () => {
    const u = R.wsUrls()[0];
    const known = await L.sendRequest({ host: u.hostname, port: Number(u.port), path: `/up/${app.id}` });
    const unknown = await L.sendRequest({ host: u.hostname, port: Number(u.port), path: '/up/no-such-app' });
    assert.notEqual(known.status, 200);
    assert.equal(known.status, unknown.status);
  });
  it('whatever Pushpin\'s routes, the pool refuses them with a Grip-Sig: 404', async () => {
    for (const path of ['/stats', '/metrics', '/up', `/up/${app.id}`, '/live']) {
      const r = await L.rawRequest({ path, headers: { 'Grip-Sig': 'anything' } });
      L.assertError(r, 404, 'not_found');
    }
  });
});

describe('client events within Pusher\'s limits', () => {
  async function pair() {
    const srv = R.server(app);
    const ch = L.uniq('private-ce');
    const a = await ws();
    const b = await ws();
    for (const c of [a, b]) {
      c.send('pusher:subscribe', { channel: ch, auth: srv.authorizeChannel(c.socketId, ch).auth });
      await c.wait((m) => m.event === 'pusher_internal:subscription_succeeded' && m.channel === ch, 'subscribed');
    }
    return { a, b, ch };
  }

  it('data over 10 KB and a name over 200 bytes are rejected, not delivered', async () => {
    const { a, b, ch } = await pair();
    a.msgs.length = 0;
    a.s.send(JSON.stringify({ event: 'client-big', channel: ch, data: 'x'.repeat(10241) }));
    a.s.send(JSON.stringify({ event: `client-${'n'.repeat(200)}`, channel: ch, data: '{}' }));
    a.s.send(JSON.stringify({ event: 'client-ok', channel: ch, data: '{}' }));
    await a.wait((m) => m.event === 'pusher:error' && /over 10240 bytes/.test(parsed(m).message), 'size error');
    await a.wait((m) => m.event === 'pusher:error' && /name/.test(parsed(m).message), 'name error');
    await b.wait((m) => m.event === 'client-ok', 'the good one');
    await sleep(300);
    assert.deepEqual(b.msgs.filter((m) => m.event.startsWith('client-')).map((m) => m.event), ['client-ok']);
    a.close();
    b.close();
  });

  it('more than 10 a second per socket → 4301 for the rest; the socket stays', async () => {
    const { a, b, ch } = await pair();
    // in one burst, all within the same second or two: at most 20 pass
    for (let i = 0; i < 40; i++) a.s.send(JSON.stringify({ event: 'client-tick', channel: ch, data: String(i) }));
    await a.wait((m) => m.event === 'pusher:error' && parsed(m).code === 4301, '4301');
    await sleep(1000);
    const got = b.msgs.filter((m) => m.event === 'client-tick').length;
    assert.ok(got >= 10 && got <= 20, `${got} delivered`);
    assert.equal(a.closed, null, 'the sender is still connected');
    a.msgs.length = 0;
    a.send('pusher:ping', {});
    await a.wait((m) => m.event === 'pusher:pong', 'pong after the burst');
    a.close();
    b.close();
  });

  it('a burst of 300 messages does not drop the socket', async () => {
    const c = await ws();
    for (let i = 0; i < 300; i++) c.send('pusher:ping', {});
    await L.waitFor(() => c.msgs.filter((m) => m.event === 'pusher:pong' || m.event === 'pusher:error').length >= 1,
      { timeoutMs: 10000, what: 'answers' });
    await sleep(1000);
    assert.equal(c.closed, null, 'still connected');
    c.msgs.length = 0;
    c.send('pusher:ping', {});
    await c.wait((m) => m.event === 'pusher:pong', 'pong');
    c.close();
  });
});

describe('presence and subscription caps', () => {
  it('a presence channel takes 100 members; the 101st is refused, a member\'s next socket is not', async () => {
    const srv = R.server(app);
    const ch = L.uniq('presence-full');
    const socks = [];
    const join = async (c, user) => {
      const a = srv.authorizeChannel(c.socketId, ch, { user_id: user, user_info: {} });
      c.send('pusher:subscribe', { channel: ch, auth: a.auth, channel_data: a.channel_data });
      return c.wait((m) => m.channel === ch && (m.event === 'pusher_internal:subscription_succeeded' ||
        m.event === 'pusher:subscription_error'), `answer for ${user}`, 10000);
    };
    try {
      for (let i = 0; i < 100; i++) {
        const c = await ws(i % 2);
        socks.push(c);
        const m = await join(c, `user-${i}`);
        assert.equal(m.event, 'pusher_internal:subscription_succeeded', `user-${i}`);
      }
      const late = await ws();
      socks.push(late);
      const m = await join(late, 'user-100');
      assert.equal(m.event, 'pusher:subscription_error');
      assert.equal(parsed(m).type, 'LimitReached');
      const again = await ws();
      socks.push(again);
      assert.equal((await join(again, 'user-7')).event, 'pusher_internal:subscription_succeeded');
      const users = await L.call(app, 'GET', `/channels/${ch}/users`);
      assert.equal(users.json.users.length, 100);
    } finally {
      for (const c of socks) c.close();
    }
  });

  it('one socket takes ws_max_channels (100) channels; the next is refused', async () => {
    const c = await ws();
    const base = L.uniq('many');
    for (let i = 0; i < 101; i++) c.send('pusher:subscribe', { channel: `${base}-${i}` });
    const last = await c.wait((m) => m.channel === `${base}-100` && m.event !== undefined, 'the 101st', 10000);
    assert.equal(last.event, 'pusher:subscription_error');
    assert.equal(parsed(last).type, 'LimitReached');
    const ok = c.msgs.filter((m) => m.event === 'pusher_internal:subscription_succeeded').length;
    assert.equal(ok, 100);
    assert.equal(L.sqlValue(`SELECT COUNT(*) FROM channel_subscriptions WHERE app_id = ${L.sqlQuote(app.id)} AND socket_id = ${L.sqlQuote(c.socketId)}`), '100');
    c.close();
  });

  it('a presence member\'s user_info over 2048 bytes is refused', async () => {
    const srv = R.server(app);
    const c = await ws();
    const ch = L.uniq('presence-info');
    const a = srv.authorizeChannel(c.socketId, ch, { user_id: 'u', user_info: { bio: 'b'.repeat(70000) } });
    c.send('pusher:subscribe', { channel: ch, auth: a.auth, channel_data: a.channel_data });
    const m = await c.wait((x) => x.channel === ch, 'answer');
    assert.equal(m.event, 'pusher:subscription_error');
    assert.match(parsed(m).error, /user_info/);
    c.close();
  });
});

describe('sizes are bounded before they are built or stored', () => {
  // The peak memory (VmHWM) of the pool's worker processes, in kB.
  function poolPeakKb() {
    const master = fs.readFileSync(`${process.env.SOCKUDO_RUN_DIR}/sockudo-fcgi.pid`, 'utf8').trim();
    let peak = 0;
    for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
      let st;
      try { st = fs.readFileSync(`/proc/${pid}/status`, 'utf8'); } catch { continue; }
      if (new RegExp(`^PPid:\\s*${master}$`, 'm').test(st)) {
        const m = /^VmHWM:\s*(\d+)/m.exec(st);
        if (m) peak = Math.max(peak, Number(m[1]));
      }
    }
    return peak;
  }

  it('a push title of 2,000 placeholders of a 100 KB value → 413 at once, no GB built', async () => {
    const before = poolPeakKb();
    const t0 = Date.now();
    const r = await L.call(app, 'POST', '/push/publish', { body: {
      recipients: [{ type: 'channel', channel: L.uniq('push') }],
      payload: { title: '{{data.a}}'.repeat(2000), data: { a: 'x'.repeat(100000) } } } });
    const ms = Date.now() - t0;
    L.assertError(r, 413, 'payload_too_large');
    assert.ok(ms < 1500, `${ms} ms`);
    // a worker's peak grows by what it built (417 MB before rendering was bounded)
    const after = poolPeakKb();
    assert.ok(after - before < 100 * 1024, `a worker's peak went from ${before} to ${after} kB`);
  });

  it('a stored template over 4096 bytes of text → 400', async () => {
    const r = await L.call(app, 'PUT', '/push/templates/huge', { body: {
      locales: { en: { title: 't', body: '{{data.a}}'.repeat(500) } }, default_locale: 'en' } });
    L.assertError(r, 400, 'invalid_input');
  });

  it('device metadata over 4096 bytes → 413, nothing stored (it used to be a 500 over 64 KiB)', async () => {
    for (const n of [5000, 70000]) {
      const id = L.uniq('dev');
      const r = await L.call(app, 'POST', '/push/deviceRegistrations', { body: {
        device_id: id, platform: 'fcm', provider_token: 'tok', metadata: { m: 'x'.repeat(n) } } });
      L.assertError(r, 413, 'payload_too_large');
      assert.equal(L.sqlValue(`SELECT COUNT(*) FROM push_devices WHERE app_id = ${L.sqlQuote(app.id)} AND device_id = ${L.sqlQuote(id)}`), '0');
    }
  });

  it('a history page holds at most 4 MiB of messages; has_more and the cursor go on', async () => {
    const big = L.createApp('hostile-big');
    L.appSet(big.id, 'max_event_data_bytes', 1000000);
    const ch = L.uniq('big');
    for (let i = 0; i < 6; i++) {
      L.assertOk(await L.call(big, 'POST', '/events', { body: { name: 'e', channel: ch, data: String(i).repeat(900000) } }));
    }
    const p1 = await L.call(big, 'GET', `/channels/${ch}/history`, { params: { limit: 100 } });
    L.assertOk(p1);
    assert.ok(p1.body.length < 5 * 1024 * 1024, `${p1.body.length} bytes`);
    assert.equal(p1.json.items.length, 4);
    assert.equal(p1.json.has_more, true);
    const cursor = p1.json.next_cursor ?? p1.json.cursor;
    assert.ok(cursor, JSON.stringify(Object.keys(p1.json)));
    const p2 = await L.call(big, 'GET', `/channels/${ch}/history`, { params: { limit: 100, cursor } });
    L.assertOk(p2);
    assert.equal(p2.json.items.length, 2);
    assert.equal(p2.json.has_more, false);
  });
});
