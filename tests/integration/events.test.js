// SPEC 3 publish: POST /apps/{id}/events — validation, storage, info, idempotency.
'use strict';

const { describe, it, before } = require('node:test');
const assert = require('node:assert/strict');
const L = require('./lib');

let app; let other; let small;
const q = L.sqlQuote;
const rowsFor = (appId, ch) => L.sql(
  `SELECT channel, name, data, message_serial FROM messages WHERE app_id = ${q(appId)} AND channel = ${q(ch)} ORDER BY serial`);
const total = () => L.countMessages(app.id);

before(() => {
  app = L.createApp('events');
  other = L.createApp('events-other');
  small = L.createApp('events-small');
  L.appSet(small.id, 'max_event_data_bytes', 100);
  L.appSet(small.id, 'max_channels_per_event', 3);
});

describe('publish: success', () => {
  it('one channel → 200 {} and one stored row, byte-exact', async () => {
    const ch = L.uniq('ev');
    const r = await L.api(app).post('/events', { name: 'my-event', channel: ch, data: 'hello "world" é' });
    L.assertOk(r);
    assert.deepEqual(r.json, {});
    const rows = rowsFor(app.id, ch);
    assert.equal(rows.length, 1);
    assert.equal(rows[0][1], 'my-event');
    assert.equal(rows[0][2], 'hello "world" é');
    assert.ok(rows[0][3].length > 0, 'message_serial empty');
  });

  it('channels array → one row per channel, distinct message_serials', async () => {
    const chs = [L.uniq('ev-a'), L.uniq('ev-b'), L.uniq('ev-c')];
    const r = await L.api(app).post('/events', { name: 'multi', channels: chs, data: 'x' });
    L.assertOk(r);
    assert.deepEqual(r.json, {});
    const serials = new Set();
    for (const ch of chs) {
      const rows = rowsFor(app.id, ch);
      assert.equal(rows.length, 1, `rows for ${ch}`);
      serials.add(rows[0][3]);
    }
    assert.equal(serials.size, 3);
  });

  it('application/json; charset=utf-8 is accepted', async () => {
    const ch = L.uniq('ev-cs');
    const r = await L.api(app).post('/events', { name: 'e', channel: ch, data: 'x' },
      { contentType: 'application/json; charset=utf-8' });
    L.assertOk(r);
    assert.equal(rowsFor(app.id, ch).length, 1);
  });

  it('data as a JSON object is accepted and stored as its JSON text', async () => {
    const ch = L.uniq('ev-obj');
    const data = { a: 1, b: [true, null, 'x'], c: { d: 'é' } };
    const r = await L.api(app).post('/events', { name: 'obj', channel: ch, data });
    L.assertOk(r);
    const rows = rowsFor(app.id, ch);
    assert.equal(rows.length, 1);
    assert.deepEqual(JSON.parse(rows[0][2]), data);
  });

  it('data as a JSON number is accepted and stored as its JSON text', async () => {
    const ch = L.uniq('ev-num');
    L.assertOk(await L.api(app).post('/events', { name: 'num', channel: ch, data: 42 }));
    assert.equal(rowsFor(app.id, ch)[0][2], '42');
  });

  it('name of exactly 200 bytes is accepted', async () => {
    const ch = L.uniq('ev-n200');
    const name = 'é'.repeat(100); // 200 bytes in UTF-8
    L.assertOk(await L.api(app).post('/events', { name, channel: ch, data: 'x' }));
    assert.equal(rowsFor(app.id, ch)[0][1], name);
  });

  it('data of exactly 10240 bytes is accepted (default limit)', async () => {
    const ch = L.uniq('ev-10k');
    L.assertOk(await L.api(app).post('/events', { name: 'e', channel: ch, data: 'a'.repeat(10240) }));
    assert.equal(rowsFor(app.id, ch)[0][2].length, 10240);
  });

  it('100 channels are accepted', async () => {
    const base = L.uniq('ev-100');
    const chs = Array.from({ length: 100 }, (_, i) => `${base}-${i}`);
    const r = await L.api(app).post('/events', { name: 'e', channels: chs, data: 'x' });
    L.assertOk(r);
    assert.equal(L.countMessages(app.id, `channel LIKE ${q(base + '-%')}`), 100);
  });

  it('valid names with every allowed punctuation are stored byte-exact', async () => {
    const u = L.uniq('p');
    const names = [
      `${u}-_=@,.;:#`,
      `private-${u}`,
      `presence-${u}`,
      `private-encrypted-${u}`,
      `cache-${u}`,
      `${u};${u}:${u}#x@y=z,w.v`,
      `${u}${'x'.repeat(200 - u.length)}`, // exactly 200 bytes
    ];
    const r = await L.api(app).post('/events', { name: 'punct', channels: names, data: 'x' });
    L.assertOk(r);
    for (const n of names) {
      const rows = rowsFor(app.id, n);
      assert.equal(rows.length, 1, `no row for ${n}`);
      assert.equal(rows[0][0], n);
    }
  });

  it('#server-to-user-42 is accepted and stored', async () => {
    const before0 = L.countMessages(app.id, "channel = '#server-to-user-42'");
    const r = await L.api(app).post('/events', { name: 'to-user', channel: '#server-to-user-42', data: 'hi' });
    L.assertOk(r);
    assert.deepEqual(r.json, {});
    assert.equal(L.countMessages(app.id, "channel = '#server-to-user-42'"), before0 + 1);
  });

  it('a valid socket_id is accepted', async () => {
    const ch = L.uniq('ev-sock');
    L.assertOk(await L.api(app).post('/events', { name: 'e', channel: ch, data: 'x', socket_id: '123.456' }));
    assert.equal(rowsFor(app.id, ch).length, 1);
  });

  it('camelCase socketId alias is accepted', async () => {
    const ch = L.uniq('ev-sockc');
    L.assertOk(await L.api(app).post('/events', { name: 'e', channel: ch, data: 'x', socketId: '1.2' }));
    assert.equal(rowsFor(app.id, ch).length, 1);
  });
});

describe('publish: info', () => {
  it('info=subscription_count → channels map with counts and message_serial', async () => {
    const ch = L.uniq('ev-info');
    const r = await L.api(app).post('/events', { name: 'e', channel: ch, data: 'x', info: 'subscription_count' });
    L.assertOk(r);
    assert.ok(r.json.channels && r.json.channels[ch], `no channels.${ch}: ${r.body}`);
    const info = r.json.channels[ch];
    assert.equal(info.subscription_count, 0);
    assert.equal(info.user_count, undefined, 'user_count given for a non-presence channel');
    assert.equal(typeof info.message_serial, 'string');
    assert.equal(info.message_serial, rowsFor(app.id, ch)[0][3]);
  });

  it('info=user_count,subscription_count on presence and public channels', async () => {
    const pres = `presence-${L.uniq('ev-info')}`;
    const pub = L.uniq('ev-info-pub');
    const r = await L.api(app).post('/events', { name: 'e', channels: [pres, pub], data: 'x',
      info: 'user_count,subscription_count' });
    L.assertOk(r);
    assert.equal(r.json.channels[pres].user_count, 0);
    assert.equal(r.json.channels[pres].subscription_count, 0);
    assert.equal(r.json.channels[pub].subscription_count, 0);
    assert.equal(r.json.channels[pub].user_count, undefined);
    assert.equal(r.json.channels[pres].message_serial, rowsFor(app.id, pres)[0][3]);
  });

  it('info counts reflect seeded subscriptions', async () => {
    const pres = `presence-${L.uniq('ev-seed')}`;
    const now = Date.now();
    L.sql(`INSERT INTO channel_subscriptions (app_id, channel, socket_id, user_id, user_info, subscribed_at_ms) VALUES
      (${q(app.id)}, ${q(pres)}, '1.1', 'u1', '{}', ${now}),
      (${q(app.id)}, ${q(pres)}, '1.2', 'u1', '{}', ${now}),
      (${q(app.id)}, ${q(pres)}, '1.3', 'u2', '{}', ${now})`);
    const r = await L.api(app).post('/events', { name: 'e', channel: pres, data: 'x',
      info: 'user_count,subscription_count' });
    L.assertOk(r);
    assert.equal(r.json.channels[pres].subscription_count, 3);
    assert.equal(r.json.channels[pres].user_count, 2);
  });
});

describe('publish: validation errors', () => {
  const expectRejected = async (body, status, code, opts = {}) => {
    const before0 = total();
    const r = await L.api(opts.app || app).post('/events', body, opts);
    L.assertError(r, status, code);
    assert.equal(total(), before0, 'something was stored');
    return r;
  };

  it('missing name → 400 invalid_input', () =>
    expectRejected({ channel: L.uniq('v'), data: 'x' }, 400, 'invalid_input'));

  it('empty name → 400', () => expectRejected({ name: '', channel: L.uniq('v'), data: 'x' }, 400));

  it('name of 201 bytes → 400', () =>
    expectRejected({ name: 'a'.repeat(201), channel: L.uniq('v'), data: 'x' }, 400));

  it('name of 101 two-byte characters (202 bytes) → 400: the limit is in bytes', () =>
    expectRejected({ name: 'é'.repeat(101), channel: L.uniq('v'), data: 'x' }, 400));

  it('name not a string → 400', () => expectRejected({ name: 5, channel: L.uniq('v'), data: 'x' }, 400));

  it('no channel and no channels → 400', () => expectRejected({ name: 'e', data: 'x' }, 400));

  it('empty channels array → 400', () => expectRejected({ name: 'e', channels: [], data: 'x' }, 400));

  it('channels not an array → 400', () => expectRejected({ name: 'e', channels: 'abc', data: 'x' }, 400));

  it('101 channels → 400', async () => {
    const base = L.uniq('v101');
    await expectRejected({ name: 'e', channels: Array.from({ length: 101 }, (_, i) => `${base}-${i}`), data: 'x' },
      400, ['limit_exceeded', 'invalid_input']);
  });

  it('per-app max_channels_per_event (3): 4 channels → 400, 3 accepted', async () => {
    const base = L.uniq('v4');
    const r = await L.api(small).post('/events', { name: 'e', channels: [1, 2, 3, 4].map((i) => `${base}-${i}`), data: 'x' });
    L.assertError(r, 400, ['limit_exceeded', 'invalid_input']);
    assert.equal(L.countMessages(small.id, `channel LIKE ${q(base + '-%')}`), 0);
    L.assertOk(await L.api(small).post('/events', { name: 'e', channels: [1, 2, 3].map((i) => `${base}-${i}`), data: 'x' }));
    assert.equal(L.countMessages(small.id, `channel LIKE ${q(base + '-%')}`), 3);
  });

  it('data of 10241 bytes → 413 payload_too_large', () =>
    expectRejected({ name: 'e', channel: L.uniq('v'), data: 'a'.repeat(10241) }, 413, 'payload_too_large'));

  it('per-app max_event_data_bytes (100): 101 bytes → 413, 100 accepted', async () => {
    const ch = L.uniq('vsmall');
    const r = await L.api(small).post('/events', { name: 'e', channel: ch, data: 'a'.repeat(101) });
    L.assertError(r, 413, 'payload_too_large');
    L.assertOk(await L.api(small).post('/events', { name: 'e', channel: ch, data: 'a'.repeat(100) }));
    assert.equal(L.countMessages(small.id, `channel = ${q(ch)}`), 1);
  });

  it('whole body over 1 MiB → 413 payload_too_large', async () => {
    const body = JSON.stringify({ name: 'e', channel: L.uniq('vbig'), data: 'a'.repeat(1024 * 1024) });
    assert.ok(body.length > 1024 * 1024);
    await expectRejected(body, 413, 'payload_too_large');
  });

  it('Content-Type text/plain → 415', () =>
    expectRejected({ name: 'e', channel: L.uniq('v'), data: 'x' }, 415, undefined, { contentType: 'text/plain' }));

  it('Content-Type application/x-www-form-urlencoded → 415', () =>
    expectRejected('name=e&channel=x&data=x', 415, undefined, { contentType: 'application/x-www-form-urlencoded' }));

  it('no Content-Type with a JSON body → 415', () =>
    expectRejected({ name: 'e', channel: L.uniq('v'), data: 'x' }, 415, undefined, { contentType: null }));

  it('malformed JSON → 400 invalid_input', () =>
    expectRejected('{"name":"e","channel":"x","data":', 400, 'invalid_input'));

  it('trailing garbage after the JSON → 400', () =>
    expectRejected('{"name":"e","channel":"x","data":"x"} {}', 400, 'invalid_input'));

  it('a JSON array body → 400', () => expectRejected('[1,2,3]', 400, 'invalid_input'));

  it('an empty body → 400', async () => {
    const r = await L.api(app).post('/events', '');
    L.assertError(r, 400);
  });

  const badNames = [
    "'; DROP TABLE messages;--",
    '"}',
    '{"a":1}',
    'a b',
    'slash/name',
    'back\\slash',
    'quote"d',
    'apos\'trophe',
    'pct%41',
    'plus+sign',
    'é',
    '<script>',
    'new\nline',
    'nul\u0000byte',
    'tab\there',
    'star*',
    '',
    'x'.repeat(201),
  ];
  for (const bad of badNames) {
    it(`bad channel name ${JSON.stringify(bad.length > 40 ? bad.slice(0, 20) + '…(' + bad.length + ')' : bad)} → 400, nothing stored`, async () => {
      await expectRejected({ name: 'e', channel: bad, data: 'x' }, 400, 'invalid_input');
      // also inside a channels list next to a valid name: all or nothing
      await expectRejected({ name: 'e', channels: [L.uniq('ok'), bad], data: 'x' }, 400, 'invalid_input');
    });
  }

  it('the messages table survived the SQL-looking names', () => {
    // a row, not COUNT(*): a table of millions (after a benchmark) counts slowly
    assert.equal(L.sqlValue('SELECT 1 FROM messages LIMIT 1'), '1');
  });

  for (const bad of ['abc', '1.', '.1', '1.2.3', '1:2', '-1.2', '1.2 ', ' 1.2', '1.a', '']) {
    it(`bad socket_id ${JSON.stringify(bad)} → 400`, () =>
      expectRejected({ name: 'e', channel: L.uniq('v'), data: 'x', socket_id: bad }, 400, 'invalid_input'));
  }

  it('socket_id not a string → 400', () =>
    expectRejected({ name: 'e', channel: L.uniq('v'), data: 'x', socket_id: 1.2 }, 400));
});

describe('publish: idempotency', () => {
  it('same idempotency_key twice → identical response, one row', async () => {
    const ch = L.uniq('idem');
    const key = L.uniq('key');
    const body = { name: 'e', channel: ch, data: 'x', idempotency_key: key, info: 'subscription_count' };
    const r1 = await L.api(app).post('/events', body);
    L.assertOk(r1);
    const r2 = await L.api(app).post('/events', body);
    assert.equal(r2.status, r1.status);
    assert.deepEqual(r2.json, r1.json);
    assert.equal(rowsFor(app.id, ch).length, 1);
    assert.equal(Number(L.sqlValue(`SELECT COUNT(*) FROM idempotency WHERE app_id = ${q(app.id)} AND idem_key = ${q(key)}`)), 1);
  });

  it('same key, different payload → 409 idempotency_conflict, still one row', async () => {
    const ch = L.uniq('idem');
    const key = L.uniq('key');
    L.assertOk(await L.api(app).post('/events', { name: 'e', channel: ch, data: 'x', idempotency_key: key }));
    const r = await L.api(app).post('/events', { name: 'e', channel: ch, data: 'DIFFERENT', idempotency_key: key });
    L.assertError(r, 409, 'idempotency_conflict');
    const rows = rowsFor(app.id, ch);
    assert.equal(rows.length, 1);
    assert.equal(rows[0][2], 'x');
  });

  it('X-Idempotency-Key header: retry → identical response, one row; different payload → 409', async () => {
    const ch = L.uniq('idemh');
    const key = L.uniq('hkey');
    const headers = { 'X-Idempotency-Key': key };
    const r1 = await L.api(app).post('/events', { name: 'e', channel: ch, data: 'x', info: 'subscription_count' }, { headers });
    L.assertOk(r1);
    const r2 = await L.api(app).post('/events', { name: 'e', channel: ch, data: 'x', info: 'subscription_count' }, { headers });
    assert.equal(r2.status, 200);
    assert.deepEqual(r2.json, r1.json);
    assert.equal(rowsFor(app.id, ch).length, 1);
    const r3 = await L.api(app).post('/events', { name: 'e', channel: ch, data: 'y' }, { headers });
    L.assertError(r3, 409, 'idempotency_conflict');
    assert.equal(rowsFor(app.id, ch).length, 1);
  });

  it('same key on another app is independent', async () => {
    const ch = L.uniq('idemx');
    const key = L.uniq('xkey');
    L.assertOk(await L.api(app).post('/events', { name: 'e', channel: ch, data: 'x', idempotency_key: key }));
    L.assertOk(await L.api(other).post('/events', { name: 'e', channel: ch, data: 'other', idempotency_key: key }));
    assert.equal(L.countMessages(other.id, `channel = ${q(ch)}`), 1);
  });

  it('a key of exactly 128 bytes is accepted; 129 bytes → 400', async () => {
    const ch = L.uniq('idemlen');
    const k128 = ('k' + Date.now() + 'x'.repeat(128)).slice(0, 128);
    L.assertOk(await L.api(app).post('/events', { name: 'e', channel: ch, data: 'x', idempotency_key: k128 }));
    const before0 = total();
    const r = await L.api(app).post('/events', { name: 'e', channel: ch, data: 'x', idempotency_key: k128 + 'y' });
    L.assertError(r, 400, ['invalid_input', 'limit_exceeded']);
    assert.equal(total(), before0);
    const h = await L.api(app).post('/events', { name: 'e', channel: ch, data: 'x' },
      { headers: { 'X-Idempotency-Key': 'h'.repeat(129) } });
    L.assertError(h, 400, ['invalid_input', 'limit_exceeded']);
    assert.equal(total(), before0);
  });

  it('concurrent retries with one key store exactly one row', async () => {
    const ch = L.uniq('idemc');
    const key = L.uniq('ckey');
    const body = { name: 'e', channel: ch, data: 'x', idempotency_key: key };
    const rs = await Promise.all(Array.from({ length: 8 }, () => L.api(app).post('/events', body)));
    for (const r of rs) assert.ok(r.status === 200 || r.status === 409,
      `unexpected ${r.status}: ${r.body}`);
    assert.ok(rs.some((r) => r.status === 200), 'no request succeeded');
    assert.equal(rowsFor(app.id, ch).length, 1);
  });
});

describe('error shape', () => {
  it('every error is {error, code, status} JSON with a matching HTTP status', async () => {
    const cases = [
      await L.api(app).post('/events', '{bad'),
      await L.api(app).post('/events', { name: 'e', channel: 'x', data: 'x' }, { contentType: 'text/plain' }),
      await L.api(app).get('/channels', {}, { secret: 'nope' }),
    ];
    for (const r of cases) {
      L.assertError(r, r.status);
      assert.deepEqual(Object.keys(r.json).sort(), ['code', 'error', 'status']);
    }
  });
});
