// SPEC 6 versioned messages: GET /apps/{id}/channels/{ch}/messages/{serial},
// .../versions (paging, cursors), POST .../update, .../delete, .../append,
// idempotency, limits, the `messages` feature flag and concurrent mutations.
// The README's API section ("Versioned messages") holds the decisions tested here.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const {
  api, createApp, appSet, sql, sqlValue, sqlQuote, uniq, assertError, assertOk, sleep,
} = require('./lib.js');

const app = createApp('msg');
const a = api(app);
const other = createApp('msg-other');
const b = api(other);
// max_event_data_bytes 100: per-request data limit of update/append.
const small = createApp('msg-small');
appSet(small.id, 'max_event_data_bytes', 100);
const s = api(small);
// max_event_data_bytes 600000: one append may be big, the 1 MiB total applies.
const big = createApp('msg-big');
appSet(big.id, 'max_event_data_bytes', 600000);
const g = api(big);

const MiB = 1024 * 1024;
const MS_RE = /^[0-9A-Za-z]{26}$/;

/* ---------------------------------------------------------------- helpers */

const enc = encodeURIComponent;
const msgPath = (ch, ms) => `/channels/${enc(ch)}/messages/${enc(ms)}`;
const histPath = (ch) => `/channels/${enc(ch)}/history`;

// Publish one event; returns {ms, serial, published_at_ms} (serial, time from the DB).
async function publish(client, appId, ch, data = 'd0', name = 'ev') {
  const r = await client.post('/events', { name, channel: ch, data, info: 'subscription_count' });
  assertOk(r);
  const ms = r.json.channels[ch].message_serial;
  assert.match(ms, MS_RE, `message_serial: ${r.body}`);
  const row = sql(`SELECT serial, published_at_ms FROM messages WHERE app_id = ${sqlQuote(appId)}` +
    ` AND message_serial = ${sqlQuote(ms)}`);
  assert.equal(row.length, 1, `stored row for ${ms}`);
  return { ms, serial: Number(row[0][0]), published_at_ms: Number(row[0][1]) };
}

async function getMsg(client, ch, ms) {
  const r = await client.get(msgPath(ch, ms));
  assertOk(r);
  return r.json;
}

// Mutation helpers: POST and return the raw response.
const update = (client, ch, ms, body, opts) => client.post(`${msgPath(ch, ms)}/update`, body, opts);
const append = (client, ch, ms, body, opts) => client.post(`${msgPath(ch, ms)}/append`, body, opts);
const del = (client, ch, ms, body = {}, opts) => client.post(`${msgPath(ch, ms)}/delete`, body, opts);

// Assert a mutation response: {message_serial, version_serial, action, status}.
function assertMut(r, ms, action, status = 'applied') {
  assertOk(r);
  assert.equal(r.json.message_serial, ms, `message_serial: ${r.body}`);
  assert.equal(r.json.action, action, `action: ${r.body}`);
  assert.equal(r.json.status, status, `status: ${r.body}`);
  assert.equal(typeof r.json.version_serial, 'string', `version_serial: ${r.body}`);
  assert.match(r.json.version_serial, versionRe(ms), `version_serial format: ${r.body}`);
  return r.json.version_serial;
}

function escapeRe(x) { return x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'); }
// `<message_serial>:<n>`, n zero-padded to 10 digits.
function versionRe(ms) { return new RegExp(`^${escapeRe(ms)}:[0-9]{10}$`); }

// Version number of a version serial: the create (== message_serial) is 1.
function seqOf(ms, vs) {
  if (vs === ms) return 1;
  assert.match(vs, versionRe(ms), `version serial ${vs} of ${ms}`);
  return Number(vs.slice(ms.length + 1));
}
const vsOf = (ms, n) => (n === 1 ? ms : `${ms}:${String(n).padStart(10, '0')}`);

// The version serial of an item of the versions list.
const itemVs = (it) => it.version.serial;

// Walk every page of versions; asserts each page's invariants; returns {items, pages}.
async function walkVersions(client, ch, ms, params = {}, maxPages = 5000) {
  const items = [];
  let cursor;
  let pages = 0;
  for (;;) {
    const p = { ...params };
    if (cursor !== undefined) p.cursor = cursor;
    const r = await client.get(`${msgPath(ch, ms)}/versions`, p);
    assertOk(r);
    pages += 1;
    assert.ok(Array.isArray(r.json.items), r.body);
    assert.equal(typeof r.json.has_more, 'boolean', r.body);
    if (params.limit !== undefined) {
      assert.ok(r.json.items.length <= Number(params.limit), `page over limit: ${r.json.items.length}`);
    }
    items.push(...r.json.items);
    if (!r.json.has_more) {
      assert.equal(r.json.next_cursor, null, `last page must have next_cursor null: ${r.body}`);
      break;
    }
    assert.equal(typeof r.json.next_cursor, 'string', r.body);
    assert.ok(r.json.next_cursor.length > 0);
    assert.ok(r.json.items.length > 0, 'has_more with an empty page');
    if (params.limit !== undefined) {
      assert.equal(r.json.items.length, Number(params.limit), 'a page before the last must be full');
    }
    cursor = r.json.next_cursor;
    assert.ok(pages < maxPages, 'too many pages');
  }
  return { items, pages };
}

async function allVersions(client, ch, ms) {
  return (await walkVersions(client, ch, ms, { limit: 1000, direction: 'oldest_first' })).items;
}

// A versions cursor with at least one more page.
async function versionsCursor(client, ch, ms, params = {}) {
  const r = await client.get(`${msgPath(ch, ms)}/versions`, { limit: 1, ...params });
  assertOk(r);
  assert.equal(r.json.has_more, true, r.body);
  assert.equal(typeof r.json.next_cursor, 'string', r.body);
  return r.json.next_cursor;
}

function flipChar(str, i) {
  const c = str[i];
  let d;
  if (/[0-9]/.test(c)) d = c === '9' ? '8' : String(Number(c) + 1);
  else if (/[a-f]/.test(c)) d = c === 'f' ? 'e' : String.fromCharCode(c.charCodeAt(0) + 1);
  else if (/[A-F]/.test(c)) d = c === 'F' ? 'E' : String.fromCharCode(c.charCodeAt(0) + 1);
  else d = c === 'x' ? 'y' : 'x';
  return str.slice(0, i) + d + str.slice(i + 1);
}

// The stored row of a message: {name, data}.
function stored(appId, ms) {
  const r = sql(`SELECT name, data FROM messages WHERE app_id = ${sqlQuote(appId)}` +
    ` AND message_serial = ${sqlQuote(ms)}`);
  assert.equal(r.length, 1, `stored row for ${ms}`);
  return { name: r[0][0], data: r[0][1] };
}

// A message's observable state: GET message and its versions; for "nothing changed" checks.
async function snapshot(client, ch, ms) {
  const m = await getMsg(client, ch, ms);
  const v = await allVersions(client, ch, ms);
  return { m, v };
}

// 404 from a route that exists (the router's "no such route" would also be 404).
function assertNotFound(r) {
  assertError(r, 404, 'not_found');
  assert.notEqual(r.json.error, 'no such route', `route missing: ${r.body}`);
}

// Replay a versions list (oldest first) to the state it must leave.
function replay(versions) {
  let name;
  let data;
  let action;
  for (const v of versions) {
    switch (v.action) {
      case 'create': case 'update': name = v.name; data = v.data; break;
      case 'append': data += v.data; break;
      case 'delete': data = ''; break;
      default: assert.fail(`unknown action ${v.action}`);
    }
    action = v.action;
  }
  return { name, data, action };
}

/* ---------------------------------------------------------------- GET message */

test('GET message after publish: create version, serial, published_at_ms, empty summary',
  async () => {
    const ch = uniq('get');
    const p = await publish(a, app.id, ch, 'hello "world" é', 'my-event');
    const m = await getMsg(a, ch, p.ms);
    assert.equal(m.message_serial, p.ms);
    assert.equal(m.channel, ch);
    assert.equal(m.name, 'my-event');
    assert.equal(m.data, 'hello "world" é');
    assert.equal(m.action, 'create');
    assert.equal(m.serial, p.serial, 'serial is the history serial');
    assert.equal(typeof m.serial, 'number');
    assert.equal(m.published_at_ms, p.published_at_ms);
    assert.equal(typeof m.published_at_ms, 'number');
    assert.ok(m.version && typeof m.version === 'object', 'version object');
    assert.equal(m.version.serial, p.ms, 'create version serial = message_serial');
    assert.equal(m.version.timestamp_ms, p.published_at_ms, 'create version time = publish time');
    assert.equal(m.version.client_id ?? null, null, 'no client_id on a plain publish');
    assert.equal(m.version.description ?? null, null, 'no description on a plain publish');
    assert.ok(m.annotations && typeof m.annotations === 'object', 'annotations object');
    assert.deepEqual(m.annotations.summary, {});

    // the history item agrees
    const h = await a.get(histPath(ch));
    assertOk(h);
    assert.equal(h.json.items.length, 1);
    const it = h.json.items[0];
    assert.equal(it.message_serial, p.ms);
    assert.equal(it.serial, m.serial);
    assert.equal(it.action, 'create');
    assert.equal(it.version.serial, p.ms);

    // non-string publish data is shown as its JSON text
    const p2 = await publish(a, app.id, ch, { k: [1, 'x'] });
    const m2 = await getMsg(a, ch, p2.ms);
    assert.equal(typeof m2.data, 'string');
    assert.deepEqual(JSON.parse(m2.data), { k: [1, 'x'] });
  });

test('GET message: unknown serial, another channel, another app → 404; bad channel → 400',
  async () => {
    const ch = uniq('get404');
    const ch2 = uniq('get404b');
    const p = await publish(a, app.id, ch, 'orig');
    await publish(a, app.id, ch2, 'other');
    const before = await snapshot(a, ch, p.ms);

    const unknown = '01ZZZZZZZZZZZZZZZZZZZZZZZZ';
    for (const [what, client, c, ms] of [
      ['unknown serial', a, ch, unknown],
      ['real serial under another channel', a, ch2, p.ms],
      ['real serial under an unused channel', a, uniq('nochan'), p.ms],
      ['real serial and channel of another app', b, ch, p.ms],
    ]) {
      const base = msgPath(c, ms);
      assertNotFound(await client.get(base));
      assertNotFound(await client.get(`${base}/versions`));
      assertNotFound(await client.post(`${base}/update`, { data: 'hijack' }));
      assertNotFound(await client.post(`${base}/append`, { data: 'hijack' }));
      assertNotFound(await client.post(`${base}/delete`, {}));
    }

    // bad channel names → 400 invalid_input on every route
    for (const badCh of ['bad%20name', 'x'.repeat(201), 'a%2Fb', 'bad*star']) {
      const base = `/channels/${badCh}/messages/${p.ms}`;
      assertError(await a.get(base), 400, 'invalid_input');
      assertError(await a.get(`${base}/versions`), 400, 'invalid_input');
      assertError(await a.post(`${base}/update`, { data: 'x' }), 400, 'invalid_input');
      assertError(await a.post(`${base}/append`, { data: 'x' }), 400, 'invalid_input');
      assertError(await a.post(`${base}/delete`, {}), 400, 'invalid_input');
    }

    // nothing changed
    const after = await snapshot(a, ch, p.ms);
    assert.deepEqual(after, before);
    assert.equal(stored(app.id, p.ms).data, 'orig');
  });

test('wrong method → 405 with Allow; wrong content type → 415', async () => {
  const ch = uniq('meth');
  const p = await publish(a, app.id, ch, 'orig');
  const base = msgPath(ch, p.ms);
  for (const [method, sub, allow] of [
    ['POST', '', 'GET'], ['DELETE', '', 'GET'], ['POST', '/versions', 'GET'],
    ['GET', '/update', 'POST'], ['GET', '/append', 'POST'], ['GET', '/delete', 'POST'],
    ['PUT', '/update', 'POST'],
  ]) {
    const opts = method === 'GET' || method === 'DELETE' ? {} : { body: { data: 'x' } };
    const r = await a.call(method, base + sub, opts);
    assertError(r, 405);
    assert.match(String(r.headers.allow || ''), new RegExp(allow), `Allow for ${method} ${sub}: ${r.headers.allow}`);
  }
  const r = await update(a, ch, p.ms, JSON.stringify({ data: 'x' }), { contentType: 'text/plain' });
  assertError(r, 415);
  assert.equal((await getMsg(a, ch, p.ms)).data, 'orig');
});

test('channel names with reserved characters are percent-decoded in the path', async () => {
  for (const ch of [`private-x=y@z,w.v;u:t#s-${process.pid}-${Date.now()}`,
    `#server-to-user-${process.pid}-${Date.now()}`, `presence-${uniq('p')}`]) {
    const p = await publish(a, app.id, ch, 'd0');
    const m = await getMsg(a, ch, p.ms);
    assert.equal(m.channel, ch);
    assert.equal(m.data, 'd0');
    assertMut(await update(a, ch, p.ms, { data: 'd1' }), p.ms, 'update');
    assertMut(await append(a, ch, p.ms, { data: '+' }), p.ms, 'append');
    assert.equal((await getMsg(a, ch, p.ms)).data, 'd1+');
    assert.equal((await allVersions(a, ch, p.ms)).length, 3);
    assert.equal(stored(app.id, p.ms).data, 'd1+');
  }
});

/* ---------------------------------------------------------------- feature flag */

test('messages flag off → 403 feature_disabled on every message route, nothing changed',
  async () => {
    const off = createApp('msg-off');
    const o = api(off);
    const ch = uniq('off');
    const p = await publish(o, off.id, ch, 'orig', 'nm');
    assertOk(await o.get(msgPath(ch, p.ms)));
    appSet(off.id, 'messages', 0);
    await sleep(5500); // app records are cached up to 5 s per worker thread
    const base = msgPath(ch, p.ms);
    for (let i = 0; i < 4; i++) { // several requests: likely to reach several workers
      assertError(await o.get(base), 403, 'feature_disabled');
      assertError(await o.get(`${base}/versions`), 403, 'feature_disabled');
      assertError(await o.get(`${base}/versions`, { limit: 1, direction: 'oldest_first' }),
        403, 'feature_disabled');
      assertError(await o.post(`${base}/update`, { name: 'new', data: 'changed' }), 403, 'feature_disabled');
      assertError(await o.post(`${base}/append`, { data: '+more' }), 403, 'feature_disabled');
      assertError(await o.post(`${base}/delete`, {}), 403, 'feature_disabled');
    }
    // publishing still works with the flag off
    assertOk(await o.post('/events', { name: 'ev', channel: ch, data: 'still' }));
    // nothing changed
    assert.deepEqual(stored(off.id, p.ms), { name: 'nm', data: 'orig' });
    appSet(off.id, 'messages', 1);
    await sleep(5500);
    const m = await getMsg(o, ch, p.ms);
    assert.equal(m.action, 'create');
    assert.equal(m.data, 'orig');
    assert.equal(m.name, 'nm');
    assert.equal(m.version.serial, p.ms);
    const v = await allVersions(o, ch, p.ms);
    assert.equal(v.length, 1, 'no version was added while the flag was off');
    // other apps were not affected meanwhile
    const ch2 = uniq('on');
    const p2 = await publish(a, app.id, ch2, 'x');
    assertOk(await a.get(msgPath(ch2, p2.ms)));
  });

/* ---------------------------------------------------------------- update */

test('update: name only, data only, both; version serials <ms>:<n> increasing from 2',
  async () => {
    const ch = uniq('upd');
    const p = await publish(a, app.id, ch, 'd0', 'n0');

    const v2 = assertMut(await update(a, ch, p.ms, { name: 'n1' }), p.ms, 'update');
    assert.equal(v2, vsOf(p.ms, 2));
    let m = await getMsg(a, ch, p.ms);
    assert.equal(m.name, 'n1');
    assert.equal(m.data, 'd0', 'update of name only keeps data');
    assert.equal(m.action, 'update');
    assert.equal(m.version.serial, v2);
    assert.deepEqual(stored(app.id, p.ms), { name: 'n1', data: 'd0' });

    const v3 = assertMut(await update(a, ch, p.ms, { data: 'd1' }), p.ms, 'update');
    assert.equal(v3, vsOf(p.ms, 3));
    m = await getMsg(a, ch, p.ms);
    assert.equal(m.name, 'n1', 'update of data only keeps name');
    assert.equal(m.data, 'd1');
    assert.equal(m.version.serial, v3);

    const v4 = assertMut(await update(a, ch, p.ms, { name: 'n2', data: 'd2' }), p.ms, 'update');
    assert.equal(v4, vsOf(p.ms, 4));
    m = await getMsg(a, ch, p.ms);
    assert.equal(m.name, 'n2');
    assert.equal(m.data, 'd2');
    assert.equal(m.version.serial, v4);
    assert.deepEqual(stored(app.id, p.ms), { name: 'n2', data: 'd2' });

    // serial strings sort in version order
    const serials = [p.ms, v2, v3, v4];
    assert.deepEqual([...serials].sort(), serials);

    // the message keeps its identity
    assert.equal(m.message_serial, p.ms);
    assert.equal(m.channel, ch);
    assert.equal(m.serial, p.serial);
    assert.equal(m.published_at_ms, p.published_at_ms);
    assert.ok(m.version.timestamp_ms >= p.published_at_ms, 'version time before the publish');
    assert.ok(Math.abs(m.version.timestamp_ms - Date.now()) < 120000, 'version time is Unix ms');
    assert.deepEqual(m.annotations.summary, {});

    // versions show each update as it left the message (name-only keeps the data)
    const vl = await allVersions(a, ch, p.ms);
    assert.deepEqual(vl.map((x) => [x.action, x.name, x.data, itemVs(x)]), [
      ['create', 'n0', 'd0', p.ms], ['update', 'n1', 'd0', v2], ['update', 'n1', 'd1', v3],
      ['update', 'n2', 'd2', v4]]);

    // data '' is a string like any other
    const v5 = assertMut(await update(a, ch, p.ms, { data: '' }), p.ms, 'update');
    assert.equal(v5, vsOf(p.ms, 5));
    assert.equal((await getMsg(a, ch, p.ms)).data, '');
  });

test('update: description and client_id (and clientId) are shown in version', async () => {
  const ch = uniq('upd-desc');
  const p = await publish(a, app.id, ch, 'd0');
  const vs = assertMut(await update(a, ch, p.ms,
    { data: 'd1', description: 'fix typo é', client_id: 'user-1' }), p.ms, 'update');
  let m = await getMsg(a, ch, p.ms);
  assert.equal(m.version.serial, vs);
  assert.equal(m.version.description, 'fix typo é');
  assert.equal(m.version.client_id, 'user-1');

  // the next version without them does not inherit them
  const vs2 = assertMut(await update(a, ch, p.ms, { data: 'd2' }), p.ms, 'update');
  m = await getMsg(a, ch, p.ms);
  assert.equal(m.version.serial, vs2);
  assert.equal(m.version.description ?? null, null, 'description inherited by the next version');
  assert.equal(m.version.client_id ?? null, null, 'client_id inherited by the next version');

  // the alias clientId
  assertMut(await update(a, ch, p.ms, { data: 'd3', clientId: 'user-2' }), p.ms, 'update');
  m = await getMsg(a, ch, p.ms);
  assert.equal(m.version.client_id, 'user-2');

  // limits: description 1000 bytes, client_id 200 bytes
  const d1000 = 'é'.repeat(500);
  assertMut(await update(a, ch, p.ms, { data: 'd4', description: d1000, client_id: 'c'.repeat(200) }),
    p.ms, 'update');
  m = await getMsg(a, ch, p.ms);
  assert.equal(m.version.description, d1000);
  assert.equal(m.version.client_id, 'c'.repeat(200));

  // the versions list keeps each version's own description/client_id
  const v = await allVersions(a, ch, p.ms);
  assert.equal(v.length, 5);
  assert.equal(v[1].version.description, 'fix typo é');
  assert.equal(v[1].version.client_id, 'user-1');
  assert.equal(v[2].version.description ?? null, null);
  assert.equal(v[3].version.client_id, 'user-2');
});

test('update: non-string data is stored as its JSON text', async () => {
  const ch = uniq('upd-json');
  const p = await publish(a, app.id, ch, 'd0');
  for (const data of [{ a: 1, b: [true, null, 'é'] }, [1, 2, 3], 42, true]) {
    assertMut(await update(a, ch, p.ms, { data }), p.ms, 'update');
    const m = await getMsg(a, ch, p.ms);
    assert.equal(typeof m.data, 'string', `data for ${JSON.stringify(data)} is not a string`);
    assert.deepEqual(JSON.parse(m.data), data);
    assert.deepEqual(JSON.parse(stored(app.id, p.ms).data), data);
  }
});

test('update: invalid bodies → 400, nothing changed', async () => {
  const ch = uniq('upd-bad');
  const p = await publish(a, app.id, ch, 'd0', 'n0');
  const before = await snapshot(a, ch, p.ms);
  const cases = [
    ['empty body', ''],
    ['empty object', {}],
    ['neither name nor data', { description: 'only a description' }],
    ['neither name nor data, client_id', { client_id: 'c1' }],
    ['not JSON', '{"data": '],
    ['JSON array', [{ data: 'x' }]],
    ['JSON string', '"x"'],
    ['description a number', { data: 'x', description: 5 }],
    ['description an object', { data: 'x', description: { a: 1 } }],
    ['description over 1000 bytes', { data: 'x', description: 'é'.repeat(500) + 'x' }],
    ['client_id a number', { data: 'x', client_id: 7 }],
    ['client_id over 200 bytes', { data: 'x', client_id: 'c'.repeat(201) }],
    ['name a number', { name: 5 }],
    ['name null and no data', { name: null }],
    ['name an object', { name: { a: 1 }, data: 'x' }],
    ['name over 200 bytes', { name: 'é'.repeat(100) + 'x' }],
  ];
  for (const [what, body] of cases) {
    const r = await update(a, ch, p.ms, body);
    assert.equal(r.status, 400, `${what}: expected 400, got ${r.status}: ${r.body}`);
    assertError(r, 400, ['invalid_input', 'limit_exceeded']);
  }
  const after = await snapshot(a, ch, p.ms);
  assert.deepEqual(after, before, 'a rejected update changed the message');
  assert.deepEqual(stored(app.id, p.ms), { name: 'n0', data: 'd0' });
  // a name of exactly 200 bytes is fine
  assertMut(await update(a, ch, p.ms, { name: 'é'.repeat(100) }), p.ms, 'update');
  assert.equal((await getMsg(a, ch, p.ms)).name, 'é'.repeat(100));
});

test('update/append: data over max_event_data_bytes → 413 payload_too_large, nothing changed',
  async () => {
    const ch = uniq('upd-413');
    const p = await publish(s, small.id, ch, 'd0');
    const before = await snapshot(s, ch, p.ms);
    // 51 characters, 102 bytes: the limit is in bytes
    assertError(await update(s, ch, p.ms, { data: 'é'.repeat(51) }), 413, 'payload_too_large');
    assertError(await update(s, ch, p.ms, { data: 'x'.repeat(101) }), 413, 'payload_too_large');
    // non-string data counts as its JSON text: {"k":"x...x"} over 100 bytes
    assertError(await update(s, ch, p.ms, { data: { k: 'x'.repeat(95) } }), 413, 'payload_too_large');
    assertError(await append(s, ch, p.ms, { data: 'x'.repeat(101) }), 413, 'payload_too_large');
    assertError(await append(s, ch, p.ms, { data: 'é'.repeat(51) }), 413, 'payload_too_large');
    assert.deepEqual(await snapshot(s, ch, p.ms), before, 'a 413 changed the message');

    // exactly 100 bytes is accepted, by update and by append
    assertMut(await update(s, ch, p.ms, { data: 'é'.repeat(50) }), p.ms, 'update');
    assert.equal((await getMsg(s, ch, p.ms)).data, 'é'.repeat(50));
    assertMut(await append(s, ch, p.ms, { data: 'y'.repeat(100) }), p.ms, 'append');
    // the limit is per request: the message may grow over it by appends
    assertMut(await append(s, ch, p.ms, { data: 'z'.repeat(100) }), p.ms, 'append');
    const m = await getMsg(s, ch, p.ms);
    assert.equal(m.data, 'é'.repeat(50) + 'y'.repeat(100) + 'z'.repeat(100));
  });

test('update: the history item shows the latest version; other messages unaffected',
  async () => {
    const ch = uniq('upd-hist');
    const p1 = await publish(a, app.id, ch, 'one', 'e1');
    const p2 = await publish(a, app.id, ch, 'two', 'e2');
    const p3 = await publish(a, app.id, ch, 'three', 'e3');
    const vs = assertMut(await update(a, ch, p2.ms, { name: 'e2b', data: 'TWO', client_id: 'cx' }),
      p2.ms, 'update');
    const h = await a.get(histPath(ch), { direction: 'oldest_first' });
    assertOk(h);
    assert.equal(h.json.items.length, 3);
    const [i1, i2, i3] = h.json.items;
    assert.equal(i2.message_serial, p2.ms);
    assert.equal(i2.serial, p2.serial, 'history serial unchanged by an update');
    assert.equal(i2.published_at_ms, p2.published_at_ms);
    assert.equal(i2.action, 'update');
    assert.equal(i2.data, 'TWO');
    assert.equal(i2.name, 'e2b');
    assert.equal(i2.version.serial, vs);
    for (const [it, p, data, name] of [[i1, p1, 'one', 'e1'], [i3, p3, 'three', 'e3']]) {
      assert.equal(it.message_serial, p.ms);
      assert.equal(it.action, 'create');
      assert.equal(it.data, data);
      assert.equal(it.name, name);
      assert.equal(it.version.serial, p.ms);
      const m = await getMsg(a, ch, p.ms);
      assert.equal(m.action, 'create');
      assert.equal(m.data, data);
      assert.equal((await allVersions(a, ch, p.ms)).length, 1);
    }
    // the appended form shows in history too
    const va = assertMut(await append(a, ch, p2.ms, { data: '+app' }), p2.ms, 'append');
    const h2 = await a.get(histPath(ch), { direction: 'oldest_first' });
    assertOk(h2);
    assert.equal(h2.json.items[1].action, 'append');
    assert.equal(h2.json.items[1].data, 'TWO+app');
    assert.equal(h2.json.items[1].version.serial, va);
  });

/* ---------------------------------------------------------------- append */

test('append: several appends concatenate in order; versions carry the fragments', async () => {
  const ch = uniq('app');
  const p = await publish(a, app.id, ch, 'base', 'nm');
  const frags = ['-one', '-two é', '-three', '', '-"q"'];
  const vss = [];
  for (const f of frags) {
    if (f === '') continue; // an empty fragment's treatment is not specified
    vss.push(assertMut(await append(a, ch, p.ms, { data: f, description: `add ${f}` }), p.ms, 'append'));
  }
  assert.deepEqual(vss.map((v) => seqOf(p.ms, v)), [2, 3, 4, 5]);
  const want = 'base' + frags.join('');
  const m = await getMsg(a, ch, p.ms);
  assert.equal(m.data, want);
  assert.equal(m.name, 'nm');
  assert.equal(m.action, 'append');
  assert.equal(m.version.serial, vss[3]);
  assert.equal(m.version.description, 'add -"q"');
  assert.equal(stored(app.id, p.ms).data, want);

  const v = await allVersions(a, ch, p.ms);
  assert.equal(v.length, 5);
  assert.equal(v[0].action, 'create');
  assert.equal(v[0].data, 'base');
  assert.deepEqual(v.slice(1).map((x) => x.action), ['append', 'append', 'append', 'append']);
  assert.deepEqual(v.slice(1).map((x) => x.data), ['-one', '-two é', '-three', '-"q"']);
  assert.deepEqual(v.map(itemVs), [p.ms, ...vss]);
  assert.equal(replay(v).data, want);

  // append after an update appends to the updated data
  assertMut(await update(a, ch, p.ms, { data: 'NEW' }), p.ms, 'update');
  assertMut(await append(a, ch, p.ms, { data: '+x' }), p.ms, 'append');
  assert.equal((await getMsg(a, ch, p.ms)).data, 'NEW+x');
});

test('append: missing or non-string data → 400, nothing changed', async () => {
  const ch = uniq('app-bad');
  const p = await publish(a, app.id, ch, 'base');
  const before = await snapshot(a, ch, p.ms);
  for (const [what, body] of [
    ['empty body', ''], ['empty object', {}], ['only a description', { description: 'd' }],
    ['only a name', { name: 'n' }],
    ['number', { data: 5 }], ['object', { data: { a: 1 } }], ['array', { data: ['x'] }],
    ['null', { data: null }], ['boolean', { data: true }],
    ['description a number', { data: 'x', description: 1 }],
    ['not JSON', 'data=x'],
  ]) {
    const r = await append(a, ch, p.ms, body);
    assert.equal(r.status, 400, `${what}: expected 400, got ${r.status}: ${r.body}`);
    assertError(r, 400, ['invalid_input', 'limit_exceeded']);
  }
  assert.deepEqual(await snapshot(a, ch, p.ms), before);
});

test('append: the resulting data over 1 MiB → 413, exactly 1 MiB is fine', async () => {
  const ch = uniq('app-mib');
  const p = await publish(g, big.id, ch, 'a'.repeat(500000));
  assertMut(await append(g, ch, p.ms, { data: 'b'.repeat(500000) }), p.ms, 'append');
  assertMut(await append(g, ch, p.ms, { data: 'c'.repeat(MiB - 1000000) }), p.ms, 'append');
  assert.equal(Number(sqlValue(`SELECT LENGTH(data) FROM messages WHERE app_id = ${sqlQuote(big.id)}` +
    ` AND message_serial = ${sqlQuote(p.ms)}`)), MiB, 'exactly 1 MiB stored');
  // one more byte, or one more multi-byte character, is over
  assertError(await append(g, ch, p.ms, { data: 'd' }), 413, 'payload_too_large');
  assertError(await append(g, ch, p.ms, { data: 'é' }), 413, 'payload_too_large');
  assertError(await append(g, ch, p.ms, { data: 'd'.repeat(100000) }), 413, 'payload_too_large');
  const v = await allVersions(g, ch, p.ms);
  assert.equal(v.length, 3, 'a rejected append added a version');
  const m = await getMsg(g, ch, p.ms);
  assert.equal(m.data.length, MiB);
  assert.ok(m.data.endsWith('c'), 'data changed by a rejected append');
  assert.equal(m.version.serial, vsOf(p.ms, 3));

  // below the limit again after an update; a big append that crosses 1 MiB is refused
  const ch2 = uniq('app-mib2');
  const p2 = await publish(g, big.id, ch2, 'x');
  assertMut(await update(g, ch2, p2.ms, { data: 'u'.repeat(590000) }), p2.ms, 'update');
  assertError(await append(g, ch2, p2.ms, { data: 'v'.repeat(590000) }), 413, 'payload_too_large');
  assert.equal(stored(big.id, p2.ms).data, 'u'.repeat(590000));
});

/* ---------------------------------------------------------------- delete */

test('delete: soft, versions kept; update/append → 409 message_deleted; delete again → duplicate',
  async () => {
    const ch = uniq('del');
    const p = await publish(a, app.id, ch, 'orig', 'nm');
    const vu = assertMut(await update(a, ch, p.ms, { data: 'edited' }), p.ms, 'update');
    const vd = assertMut(await del(a, ch, p.ms, { description: 'spam' }),
      p.ms, 'delete');
    assert.equal(seqOf(p.ms, vd), 3);

    const m = await getMsg(a, ch, p.ms);
    assert.equal(m.action, 'delete');
    assert.equal(m.data, '');
    assert.equal(m.message_serial, p.ms);
    assert.equal(m.channel, ch);
    assert.equal(m.version.serial, vd);
    assert.equal(m.version.description, 'spam');
    assert.equal(m.serial, p.serial);
    assert.equal(m.published_at_ms, p.published_at_ms);
    // the row is still there (soft delete)
    assert.equal(Number(sqlValue(`SELECT COUNT(*) FROM messages WHERE app_id = ${sqlQuote(app.id)}` +
      ` AND message_serial = ${sqlQuote(p.ms)}`)), 1);

    const v = await allVersions(a, ch, p.ms);
    assert.deepEqual(v.map((x) => x.action), ['create', 'update', 'delete']);
    assert.deepEqual(v.map(itemVs), [p.ms, vu, vd]);
    assert.equal(v[0].data, 'orig', 'the create version keeps its data');
    assert.equal(v[1].data, 'edited', 'the update version keeps its data');
    assert.equal(v[2].data, '');

    // update/append of a deleted message → 409 message_deleted
    assertError(await update(a, ch, p.ms, { data: 'revive' }), 409, 'message_deleted');
    assertError(await update(a, ch, p.ms, { name: 'rename' }), 409, 'message_deleted');
    assertError(await append(a, ch, p.ms, { data: '+x' }), 409, 'message_deleted');

    // delete again → 200, the first delete's result with status duplicate
    const r2 = await del(a, ch, p.ms, {});
    assert.equal(assertMut(r2, p.ms, 'delete', 'duplicate'), vd);
    const r3 = await del(a, ch, p.ms, { description: 'another reason' });
    assert.equal(assertMut(r3, p.ms, 'delete', 'duplicate'), vd);

    // nothing was added by any of that
    const v2 = await allVersions(a, ch, p.ms);
    assert.deepEqual(v2, v);
    const m2 = await getMsg(a, ch, p.ms);
    assert.deepEqual(m2, m);
  });

test('delete: the history item shows the delete', async () => {
  const ch = uniq('del-hist');
  const p1 = await publish(a, app.id, ch, 'keep');
  const p2 = await publish(a, app.id, ch, 'drop');
  const vd = assertMut(await del(a, ch, p2.ms), p2.ms, 'delete');
  const h = await a.get(histPath(ch), { direction: 'oldest_first' });
  assertOk(h);
  const byMs = Object.fromEntries(h.json.items.map((it) => [it.message_serial, it]));
  assert.equal(byMs[p1.ms].data, 'keep');
  assert.equal(byMs[p1.ms].action, 'create');
  // README: history items show the latest version; for a soft delete that is the delete
  assert.ok(byMs[p2.ms], 'the deleted message vanished from history');
  assert.equal(byMs[p2.ms].action, 'delete');
  assert.equal(byMs[p2.ms].data, '');
  assert.equal(byMs[p2.ms].version.serial, vd);
  assert.equal(byMs[p2.ms].serial, p2.serial);
});

test('delete: a request with no body is accepted (every field is optional)', async () => {
  const ch = uniq('del-nobody');
  const p = await publish(a, app.id, ch, 'x');
  const r = await a.call('POST', `${msgPath(ch, p.ms)}/delete`, {});
  assertMut(r, p.ms, 'delete');
  assert.equal((await getMsg(a, ch, p.ms)).action, 'delete');
});

/* ---------------------------------------------------------------- versions */

// A message with 12 versions: create, then update/append mutations.
async function twelveVersions(client, appId, ch) {
  const p = await publish(client, appId, ch, 'v1', 'n1');
  const expect = [{ action: 'create', name: 'n1', data: 'v1', vs: p.ms }];
  for (let i = 2; i <= 12; i++) {
    let r;
    if (i % 3 === 0) {
      r = await append(client, ch, p.ms, { data: `+a${i}` });
      expect.push({ action: 'append', data: `+a${i}`, vs: assertMut(r, p.ms, 'append') });
    } else {
      r = await update(client, ch, p.ms, { name: `n${i}`, data: `v${i}` });
      expect.push({ action: 'update', name: `n${i}`, data: `v${i}`, vs: assertMut(r, p.ms, 'update') });
    }
  }
  return { p, expect };
}

test('versions: default newest_first, oldest_first, every limit walks every version once',
  async () => {
    const ch = uniq('ver');
    const { p, expect } = await twelveVersions(a, app.id, ch);
    assert.deepEqual(expect.map((e) => seqOf(p.ms, e.vs)), Array.from({ length: 12 }, (_, i) => i + 1));

    // one page, default parameters: newest first
    const r = await a.get(`${msgPath(ch, p.ms)}/versions`);
    assertOk(r);
    assert.equal(r.json.has_more, false);
    assert.equal(r.json.next_cursor, null);
    assert.deepEqual(r.json.items.map(itemVs), expect.map((e) => e.vs).reverse(),
      'default direction is newest_first');

    const oldest = expect.map((e) => e.vs);
    const newest = [...oldest].reverse();
    for (const limit of [1, 2, 5, 11, 12, 13, 1000]) {
      for (const [direction, want] of [['newest_first', newest], ['oldest_first', oldest],
        [undefined, newest]]) {
        const params = { limit };
        if (direction) params.direction = direction;
        const { items, pages } = await walkVersions(a, ch, p.ms, params);
        assert.deepEqual(items.map(itemVs), want, `limit ${limit} direction ${direction}`);
        assert.equal(pages, Math.max(1, Math.ceil(12 / limit)), `pages for limit ${limit}`);
      }
    }

    // contents: version 1 is the create with the original data; appends carry the fragment;
    // updates show the message as they left it
    const v = await allVersions(a, ch, p.ms);
    assert.equal(v.length, 12);
    let ts = 0;
    for (let i = 0; i < 12; i++) {
      const e = expect[i];
      assert.equal(v[i].action, e.action, `version ${i + 1} action`);
      assert.equal(v[i].data, e.data, `version ${i + 1} data`);
      if (e.name !== undefined) assert.equal(v[i].name, e.name, `version ${i + 1} name`);
      assert.equal(v[i].version.serial, e.vs);
      assert.equal(typeof v[i].version.timestamp_ms, 'number');
      assert.ok(v[i].version.timestamp_ms >= ts, `version ${i + 1} time goes backwards`);
      ts = v[i].version.timestamp_ms;
    }
    assert.equal(v[0].version.timestamp_ms, p.published_at_ms);
    // the latest version is what GET shows
    const m = await getMsg(a, ch, p.ms);
    const fin = replay(v);
    assert.equal(m.data, fin.data);
    assert.equal(m.name, fin.name);
    assert.equal(m.data, 'v11+a12');
    assert.equal(m.version.serial, expect[11].vs);
    assert.equal(m.version.timestamp_ms, v[11].version.timestamp_ms);
  });

test('versions: an unchanged message has exactly its create version', async () => {
  const ch = uniq('ver-one');
  const p = await publish(a, app.id, ch, 'only', 'nm');
  const r = await a.get(`${msgPath(ch, p.ms)}/versions`);
  assertOk(r);
  assert.equal(r.json.has_more, false);
  assert.equal(r.json.next_cursor, null);
  assert.equal(r.json.items.length, 1);
  const it = r.json.items[0];
  assert.equal(it.action, 'create');
  assert.equal(it.data, 'only');
  assert.equal(it.name, 'nm');
  assert.equal(it.version.serial, p.ms);
  assert.equal(it.version.timestamp_ms, p.published_at_ms);
});

test('versions: limit defaults to 100 and accepts 1..1000', async () => {
  const ch = uniq('ver-100');
  const p = await publish(a, app.id, ch, 'x');
  for (let i = 0; i < 104; i++) {
    assertMut(await append(a, ch, p.ms, { data: `.${i}` }), p.ms, 'append');
  }
  const r = await a.get(`${msgPath(ch, p.ms)}/versions`);
  assertOk(r);
  assert.equal(r.json.items.length, 100, 'default limit is 100');
  assert.equal(r.json.has_more, true);
  assert.equal(itemVs(r.json.items[0]), vsOf(p.ms, 105));
  const r2 = await a.get(`${msgPath(ch, p.ms)}/versions`, { cursor: r.json.next_cursor });
  assertOk(r2);
  assert.deepEqual(r2.json.items.map(itemVs), [5, 4, 3, 2, 1].map((n) => vsOf(p.ms, n)));
  assert.equal(r2.json.has_more, false);
  const all = await walkVersions(a, ch, p.ms, { limit: 1000, direction: 'oldest_first' });
  assert.equal(all.pages, 1);
  assert.deepEqual(all.items.map(itemVs), Array.from({ length: 105 }, (_, i) => vsOf(p.ms, i + 1)));
  assert.equal((await getMsg(a, ch, p.ms)).data,
    'x' + Array.from({ length: 104 }, (_, i) => `.${i}`).join(''));
});

test('versions: bad limit or direction → 400 invalid_input', async () => {
  const ch = uniq('ver-bad');
  const p = await publish(a, app.id, ch, 'x');
  const sub = `${msgPath(ch, p.ms)}/versions`;
  for (const limit of ['0', '1001', '-1', 'abc', '1.5', '', ' 5', '5x', '99999999999999999999']) {
    assertError(await a.get(sub, { limit }), 400, ['invalid_input', 'limit_exceeded']);
  }
  for (const direction of ['sideways', 'NEWEST_FIRST', '', 'forwards']) {
    assertError(await a.get(sub, { direction }), 400, 'invalid_input');
  }
  assertOk(await a.get(sub, { limit: '1' }));
  assertOk(await a.get(sub, { limit: '1000' }));
  assertOk(await a.get(sub, { direction: 'oldest_first' }));
  assertOk(await a.get(sub, { direction: 'newest_first' }));
});

test('versions cursors: tampered, another message, another direction, history → 400',
  async () => {
    const ch = uniq('ver-cur');
    const { p } = await twelveVersions(a, app.id, ch);
    const q = await publish(a, app.id, ch, 'other message');
    for (let i = 0; i < 3; i++) assertMut(await append(a, ch, q.ms, { data: `+${i}` }), q.ms, 'append');
    const sub = `${msgPath(ch, p.ms)}/versions`;

    const good = await versionsCursor(a, ch, p.ms, { limit: 2 });
    const r = await a.get(sub, { limit: 2, cursor: good });
    assertOk(r);
    assert.deepEqual(r.json.items.map(itemVs), [vsOf(p.ms, 10), vsOf(p.ms, 9)]);

    const goodOld = await versionsCursor(a, ch, p.ms, { limit: 2, direction: 'oldest_first' });
    const ro = await a.get(sub, { limit: 2, direction: 'oldest_first', cursor: goodOld });
    assertOk(ro);
    assert.deepEqual(ro.json.items.map(itemVs), [vsOf(p.ms, 3), vsOf(p.ms, 4)]);

    // altered cursors: every single-character change, a prefix, a suffix, garbage
    const cases = [];
    for (let i = 0; i < good.length; i++) cases.push([`char ${i}`, flipChar(good, i)]);
    cases.push(['leading 0', `0${good}`], ['trailing x', `${good}x`],
      ['truncated', good.slice(0, -1)], ['garbage', 'not-a-cursor'],
      ['dot only', '.']);
    for (const [what, cur] of cases) {
      const x = await a.get(sub, { limit: 2, cursor: cur });
      assert.equal(x.status, 400, `${what} (${cur}): expected 400, got ${x.status}: ${x.body}`);
      assertError(x, 400, 'invalid_input');
    }

    // a cursor from another message, another direction, history, another app
    const otherMsg = await versionsCursor(a, ch, q.ms, { limit: 2 });
    assertOk(await a.get(`${msgPath(ch, q.ms)}/versions`, { limit: 2, cursor: otherMsg }));
    const histCur = await (async () => {
      await publish(a, app.id, ch, 'third');
      const h = await a.get(histPath(ch), { limit: 1 });
      assertOk(h);
      assert.equal(typeof h.json.next_cursor, 'string');
      return h.json.next_cursor;
    })();
    const histCurOld = await (async () => {
      const h = await a.get(histPath(ch), { limit: 1, direction: 'oldest_first' });
      assertOk(h);
      return h.json.next_cursor;
    })();
    // the same message in another app, same channel name (published with the same data)
    const ob = await publish(b, other.id, ch, 'v1');
    for (let i = 0; i < 3; i++) assertMut(await update(b, ch, ob.ms, { data: `o${i}` }), ob.ms, 'update');
    const otherApp = await versionsCursor(b, ch, ob.ms, { limit: 2 });

    for (const [what, client, c, ms, params] of [
      ['cursor of another message', a, ch, p.ms, { limit: 2, cursor: otherMsg }],
      ['own cursor used on another message', a, ch, q.ms, { limit: 2, cursor: good }],
      ['newest_first cursor with oldest_first', a, ch, p.ms,
        { limit: 2, cursor: good, direction: 'oldest_first' }],
      ['oldest_first cursor with newest_first', a, ch, p.ms,
        { limit: 2, cursor: goodOld, direction: 'newest_first' }],
      ['oldest_first cursor with the default direction', a, ch, p.ms, { limit: 2, cursor: goodOld }],
      ['history cursor', a, ch, p.ms, { limit: 2, cursor: histCur }],
      ['history cursor, oldest_first', a, ch, p.ms,
        { limit: 2, cursor: histCurOld, direction: 'oldest_first' }],
      ['cursor of another app', a, ch, p.ms, { limit: 2, cursor: otherApp }],
      ['own cursor in another app', b, ch, ob.ms, { limit: 2, cursor: good }],
    ]) {
      const x = await client.get(`${msgPath(c, ms)}/versions`, params);
      assert.equal(x.status, 400, `${what}: expected 400, got ${x.status}: ${x.body}`);
      assertError(x, 400, 'invalid_input');
    }
    // and a versions cursor is no history cursor
    const hx = await a.get(histPath(ch), { limit: 1, cursor: good });
    assertError(hx, 400, 'invalid_input');
  });

/* ---------------------------------------------------------------- idempotency */

test('idempotency: same key + same body → duplicate with the same version, nothing added',
  async () => {
    const ch = uniq('idem');
    const p = await publish(a, app.id, ch, 'd0');
    const key = uniq('k');
    const body = { data: 'd1', description: 'once', idempotency_key: key };
    const v1 = assertMut(await update(a, ch, p.ms, body), p.ms, 'update');
    const r2 = await update(a, ch, p.ms, body);
    assert.equal(assertMut(r2, p.ms, 'update', 'duplicate'), v1);
    // the alias idempotencyKey is the same key
    const r3 = await update(a, ch, p.ms, { data: 'd1', description: 'once', idempotencyKey: key });
    assert.equal(assertMut(r3, p.ms, 'update', 'duplicate'), v1);
    let v = await allVersions(a, ch, p.ms);
    assert.equal(v.length, 2, 'a duplicate added a version');

    // a later change, then the retry still answers the first result and changes nothing
    const vx = assertMut(await update(a, ch, p.ms, { data: 'd2' }), p.ms, 'update');
    const r4 = await update(a, ch, p.ms, body);
    assert.equal(assertMut(r4, p.ms, 'update', 'duplicate'), v1);
    const m = await getMsg(a, ch, p.ms);
    assert.equal(m.data, 'd2', 'a duplicate re-applied its update');
    assert.equal(m.version.serial, vx);
    v = await allVersions(a, ch, p.ms);
    assert.equal(v.length, 3);

    // appends: the retry does not append again
    const ka = uniq('ka');
    const va = assertMut(await append(a, ch, p.ms, { data: '+a', idempotency_key: ka }), p.ms, 'append');
    for (let i = 0; i < 3; i++) {
      assert.equal(assertMut(await append(a, ch, p.ms, { data: '+a', idempotency_key: ka }),
        p.ms, 'append', 'duplicate'), va);
    }
    assert.equal((await getMsg(a, ch, p.ms)).data, 'd2+a');
    assert.equal(stored(app.id, p.ms).data, 'd2+a');
    assert.equal((await allVersions(a, ch, p.ms)).length, 4);

    // delete with a key, then retry
    const kd = uniq('kd');
    const vd = assertMut(await del(a, ch, p.ms, { idempotency_key: kd }), p.ms, 'delete');
    assert.equal(assertMut(await del(a, ch, p.ms, { idempotency_key: kd }), p.ms, 'delete',
      'duplicate'), vd);
    assert.equal((await allVersions(a, ch, p.ms)).length, 5);

    // the update's retry after the delete still answers its first result
    const r5 = await update(a, ch, p.ms, body);
    assert.equal(assertMut(r5, p.ms, 'update', 'duplicate'), v1);
    assert.equal((await getMsg(a, ch, p.ms)).action, 'delete');
  });

test('idempotency: same key + different body → 409 idempotency_conflict, nothing changed',
  async () => {
    const ch = uniq('idem-409');
    const p = await publish(a, app.id, ch, 'd0', 'n0');
    const key = uniq('k');
    const v1 = assertMut(await update(a, ch, p.ms, { data: 'd1', idempotency_key: key }), p.ms, 'update');
    const before = await snapshot(a, ch, p.ms);
    for (const body of [
      { data: 'DIFFERENT', idempotency_key: key },
      { data: 'd1', name: 'n9', idempotency_key: key },
      { data: 'd1', description: 'x', idempotency_key: key },
      { data: 'd1', client_id: 'c', idempotency_key: key },
    ]) {
      assertError(await update(a, ch, p.ms, body), 409, 'idempotency_conflict');
    }
    // the same key on another kind of mutation of the same message
    assertError(await append(a, ch, p.ms, { data: 'd1', idempotency_key: key }), 409,
      'idempotency_conflict');
    assertError(await del(a, ch, p.ms, { idempotency_key: key }), 409, 'idempotency_conflict');
    assert.deepEqual(await snapshot(a, ch, p.ms), before);
    assert.equal(before.m.version.serial, v1);
    assert.equal(before.m.action, 'update');
  });

test('idempotency: the same key on another message, or used by a publish → 409', async () => {
  const ch = uniq('idem-other');
  const p = await publish(a, app.id, ch, 'same');
  const q = await publish(a, app.id, ch, 'same');
  const key = uniq('k');
  assertMut(await update(a, ch, p.ms, { data: 'new', idempotency_key: key }), p.ms, 'update');
  const qBefore = await snapshot(a, ch, q.ms);
  assertError(await update(a, ch, q.ms, { data: 'new', idempotency_key: key }), 409,
    'idempotency_conflict');
  assert.deepEqual(await snapshot(a, ch, q.ms), qBefore);

  // a key used by a publish (same per-app key space)
  const kp = uniq('kp');
  assertOk(await a.post('/events', { name: 'ev', channel: ch, data: 'pub', idempotency_key: kp }));
  assertError(await update(a, ch, q.ms, { data: 'pub', idempotency_key: kp }), 409,
    'idempotency_conflict');
  // and the other way round: a mutation's key used by a publish
  const km = uniq('km');
  assertMut(await append(a, ch, q.ms, { data: '+m', idempotency_key: km }), q.ms, 'append');
  assertError(await a.post('/events', { name: 'ev', channel: ch, data: '+m', idempotency_key: km }),
    409, 'idempotency_conflict');
  assert.equal((await getMsg(a, ch, q.ms)).data, 'same+m');

  // the same key in another app is independent
  const ob = await publish(b, other.id, ch, 'same');
  assertMut(await update(b, ch, ob.ms, { data: 'new', idempotency_key: key }), ob.ms, 'update');
  assert.equal((await getMsg(b, ch, ob.ms)).data, 'new');
});

test('idempotency: X-Idempotency-Key header; body and header must agree; 128 bytes max',
  async () => {
    const ch = uniq('idem-hdr');
    const p = await publish(a, app.id, ch, 'base');
    const key = uniq('kh');
    const headers = { 'X-Idempotency-Key': key };
    const va = assertMut(await append(a, ch, p.ms, { data: '+h' }, { headers }), p.ms, 'append');
    assert.equal(assertMut(await append(a, ch, p.ms, { data: '+h' }, { headers }), p.ms, 'append',
      'duplicate'), va);
    // the body's key and the header's key are the same key
    assert.equal(assertMut(await append(a, ch, p.ms, { data: '+h', idempotency_key: key }), p.ms,
      'append', 'duplicate'), va);
    assertError(await append(a, ch, p.ms, { data: '+OTHER' }, { headers }), 409, 'idempotency_conflict');
    assert.equal((await getMsg(a, ch, p.ms)).data, 'base+h');
    assert.equal((await allVersions(a, ch, p.ms)).length, 2);

    // header and body disagree → 400, nothing applied
    const r = await update(a, ch, p.ms, { data: 'x', idempotency_key: uniq('k1') },
      { headers: { 'X-Idempotency-Key': uniq('k2') } });
    assertError(r, 400, 'invalid_input');
    // a key over 128 bytes → 400, in the body or the header
    assertError(await update(a, ch, p.ms, { data: 'x', idempotency_key: 'k'.repeat(129) }), 400,
      ['invalid_input', 'limit_exceeded']);
    assertError(await update(a, ch, p.ms, { data: 'x' }, { headers: { 'X-Idempotency-Key': 'k'.repeat(129) } }),
      400, ['invalid_input', 'limit_exceeded']);
    assert.equal((await getMsg(a, ch, p.ms)).data, 'base+h');
    // exactly 128 bytes is fine
    const k128 = `${uniq('k')}-`.padEnd(128, 'z');
    assertMut(await update(a, ch, p.ms, { data: 'y', idempotency_key: k128 }), p.ms, 'update');
    assertMut(await update(a, ch, p.ms, { data: 'y', idempotency_key: k128 }), p.ms, 'update', 'duplicate');
    assert.equal((await allVersions(a, ch, p.ms)).length, 3);
  });

test('idempotency: parallel retries of one keyed append apply it once', async () => {
  const ch = uniq('idem-par');
  const p = await publish(a, app.id, ch, 'base');
  const key = uniq('kpar');
  const res = await Promise.all(Array.from({ length: 12 }, () =>
    append(a, ch, p.ms, { data: '+once', idempotency_key: key })));
  const applied = res.filter((r) => r.status === 200 && r.json.status === 'applied');
  assert.equal(applied.length, 1, `applied ${applied.length} times: ${res.map((r) => r.body).join('\n')}`);
  const vs = applied[0].json.version_serial;
  for (const r of res) {
    // every racing retry answers the one applied result
    assert.equal(assertMut(r, p.ms, 'append', r === applied[0] ? 'applied' : 'duplicate'), vs);
  }
  assert.equal((await getMsg(a, ch, p.ms)).data, 'base+once');
  assert.equal((await allVersions(a, ch, p.ms)).length, 2);
});

/* ---------------------------------------------------------------- concurrency */

test('concurrency: 40 parallel appends are all applied, serialised, none lost', async () => {
  const ch = uniq('conc-app');
  const p = await publish(a, app.id, ch, 'base');
  const N = 40;
  const frags = Array.from({ length: N }, (_, i) => `<a${i}>`);
  const res = await Promise.all(frags.map((f) => append(a, ch, p.ms, { data: f })));
  const vsByFrag = new Map();
  for (let i = 0; i < N; i++) {
    vsByFrag.set(frags[i], assertMut(res[i], p.ms, 'append', 'applied'));
  }
  const serials = [...vsByFrag.values()];
  assert.equal(new Set(serials).size, N, 'version serials are not unique');
  const seqs = serials.map((v) => seqOf(p.ms, v)).sort((x, y) => x - y);
  assert.deepEqual(seqs, Array.from({ length: N }, (_, i) => i + 2), 'version numbers 2..41, no gaps');

  const v = await allVersions(a, ch, p.ms);
  assert.equal(v.length, N + 1);
  assert.deepEqual(v.map(itemVs), Array.from({ length: N + 1 }, (_, i) => vsOf(p.ms, i + 1)));
  for (let i = 1; i < v.length; i++) {
    assert.equal(v[i].action, 'append');
    assert.equal(vsByFrag.get(v[i].data), itemVs(v[i]),
      `version ${i + 1} carries ${v[i].data} but that append was answered with another serial`);
    assert.ok(v[i].version.timestamp_ms >= v[i - 1].version.timestamp_ms, 'version time backwards');
  }
  const m = await getMsg(a, ch, p.ms);
  for (const f of frags) {
    assert.equal(m.data.split(f).length - 1, 1, `fragment ${f} not exactly once in ${m.data}`);
  }
  assert.equal(m.data, 'base' + v.slice(1).map((x) => x.data).join(''),
    'fragment order differs from version order');
  assert.equal(m.data.length, 'base'.length + frags.join('').length);
  assert.equal(stored(app.id, p.ms).data, m.data);
  assert.equal(m.version.serial, vsOf(p.ms, N + 1));
});

test('concurrency: 20 parallel updates; the final state is the last version (no lost update)',
  async () => {
    const ch = uniq('conc-upd');
    const p = await publish(a, app.id, ch, 'base', 'n');
    const N = 20;
    const res = await Promise.all(Array.from({ length: N }, (_, i) =>
      update(a, ch, p.ms, { name: `n${i}`, data: `u${i}` })));
    const vsByData = new Map();
    for (let i = 0; i < N; i++) vsByData.set(`u${i}`, assertMut(res[i], p.ms, 'update'));
    assert.deepEqual([...vsByData.values()].map((x) => seqOf(p.ms, x)).sort((x, y) => x - y),
      Array.from({ length: N }, (_, i) => i + 2));
    const v = await allVersions(a, ch, p.ms);
    assert.equal(v.length, N + 1);
    for (let i = 1; i < v.length; i++) {
      assert.equal(v[i].action, 'update');
      assert.equal(vsByData.get(v[i].data), itemVs(v[i]), `version ${i + 1} data/serial mismatch`);
      assert.equal(v[i].name, `n${v[i].data.slice(1)}`, 'name and data of one update split');
    }
    const last = v[v.length - 1];
    const m = await getMsg(a, ch, p.ms);
    assert.equal(m.data, last.data, 'final data is not the last version (lost update)');
    assert.equal(m.name, last.name);
    assert.equal(m.version.serial, itemVs(last));
    assert.deepEqual(stored(app.id, p.ms), { name: last.name, data: last.data });
  });

test('concurrency: mixed parallel updates and appends replay to the final state', async () => {
  const ch = uniq('conc-mix');
  const p = await publish(a, app.id, ch, 'base', 'n');
  const N = 30;
  const res = await Promise.all(Array.from({ length: N }, (_, i) => (i % 3 === 0
    ? update(a, ch, p.ms, { data: `[u${i}]` })
    : append(a, ch, p.ms, { data: `<a${i}>` }))));
  for (let i = 0; i < N; i++) assertMut(res[i], p.ms, i % 3 === 0 ? 'update' : 'append');
  const v = await allVersions(a, ch, p.ms);
  assert.equal(v.length, N + 1);
  assert.deepEqual(v.map(itemVs), Array.from({ length: N + 1 }, (_, i) => vsOf(p.ms, i + 1)));
  // each update version shows the whole data as it left it: its own text
  for (const x of v.slice(1)) {
    if (x.action === 'update') assert.match(x.data, /^\[u\d+\]$/);
    else assert.match(x.data, /^<a\d+>$/);
  }
  const m = await getMsg(a, ch, p.ms);
  assert.equal(m.data, replay(v).data, 'final state is not the replay of the versions');
  assert.equal(m.action, v[N].action);
  assert.equal(m.version.serial, itemVs(v[N]));
});

test('concurrency: parallel deletes → one applied, the rest duplicate of it', async () => {
  const ch = uniq('conc-del');
  const p = await publish(a, app.id, ch, 'base');
  const res = await Promise.all(Array.from({ length: 10 }, (_, i) =>
    del(a, ch, p.ms, { description: `d${i}` })));
  const applied = res.filter((r) => r.status === 200 && r.json.status === 'applied');
  assert.equal(applied.length, 1, `applied ${applied.length} deletes:\n${res.map((r) => r.body).join('\n')}`);
  const vd = applied[0].json.version_serial;
  assert.equal(vd, vsOf(p.ms, 2));
  for (const r of res) {
    assert.equal(assertMut(r, p.ms, 'delete', r === applied[0] ? 'applied' : 'duplicate'), vd);
  }
  const v = await allVersions(a, ch, p.ms);
  assert.deepEqual(v.map((x) => x.action), ['create', 'delete']);
});

test('concurrency: a delete racing appends: appends before it applied, after it 409', async () => {
  const ch = uniq('conc-delapp');
  const p = await publish(a, app.id, ch, 'base');
  const N = 24;
  const reqs = [];
  for (let i = 0; i < N; i++) {
    if (i === N / 2) reqs.push(del(a, ch, p.ms));
    reqs.push(append(a, ch, p.ms, { data: `<a${i}>` }));
  }
  const res = await Promise.all(reqs);
  const dres = res[N / 2];
  const vd = assertMut(dres, p.ms, 'delete');
  const appliedFr = new Map();
  res.forEach((r, k) => {
    if (k === N / 2) return;
    if (r.status === 409) {
      assertError(r, 409, 'message_deleted');
    } else {
      const vs = assertMut(r, p.ms, 'append');
      assert.ok(seqOf(p.ms, vs) < seqOf(p.ms, vd), `append ${vs} applied after the delete ${vd}`);
      appliedFr.set(vs, k < N / 2 ? `<a${k}>` : `<a${k - 1}>`);
    }
  });
  const v = await allVersions(a, ch, p.ms);
  assert.equal(v.length, 1 + appliedFr.size + 1, 'versions = create + applied appends + delete');
  assert.deepEqual(v.map(itemVs), Array.from({ length: v.length }, (_, i) => vsOf(p.ms, i + 1)));
  assert.equal(itemVs(v[v.length - 1]), vd);
  assert.equal(v[v.length - 1].action, 'delete');
  for (const x of v.slice(1, -1)) {
    assert.equal(x.action, 'append');
    assert.equal(appliedFr.get(itemVs(x)), x.data);
  }
  const m = await getMsg(a, ch, p.ms);
  assert.equal(m.action, 'delete');
  assert.equal(m.data, '');
  assert.equal(m.version.serial, vd);
});

test('a purge removes the message with its versions', async () => {
  const ch = uniq('purge');
  const p = await publish(a, app.id, ch, 'base');
  assertMut(await update(a, ch, p.ms, { data: 'u' }), p.ms, 'update');
  assertMut(await append(a, ch, p.ms, { data: '+a' }), p.ms, 'append');
  const nver = () => Number(sqlValue(`SELECT COUNT(*) FROM message_versions WHERE app_id = ` +
    `${sqlQuote(app.id)} AND message_serial = ${sqlQuote(p.ms)}`));
  assert.ok(nver() > 0, 'no stored versions before the purge');
  assertOk(await a.post(`${histPath(ch)}/purge`, { confirm_channel: ch, mode: 'all' }));
  assertNotFound(await a.get(msgPath(ch, p.ms)));
  assertNotFound(await a.get(`${msgPath(ch, p.ms)}/versions`));
  assertNotFound(await update(a, ch, p.ms, { data: 'x' }));
  assert.equal(nver(), 0, 'versions left behind by the purge');
});
