// SPEC 7 annotations: POST/GET .../messages/{serial}/annotations and
// DELETE .../annotations/{annotation_serial}; the five summarizers as shown in
// the message's annotations.summary, listing and paging, validation, idempotency,
// the feature flag, concurrency (summary == recomputation from the live list) and
// the purge of a message taking its annotations with it.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const {
  api, createApp, appSet, cliOk, sqlValue, sqlQuote, uniq, assertError, assertOk, sleep,
} = require('./lib.js');

const app = createApp('ann');
const a = api(app);

/* ---------------------------------------------------------------- helpers */

const enc = encodeURIComponent;
const msgPath = (ch, ms) => `/channels/${enc(ch)}/messages/${enc(ms)}`;
const annPath = (ch, ms) => `${msgPath(ch, ms)}/annotations`;
const annItemPath = (ch, ms, as) => `${annPath(ch, ms)}/${enc(as)}`;

const ITEM_KEYS = ['annotation_serial', 'message_serial', 'type', 'name', 'client_id', 'count',
  'data', 'timestamp_ms'];

// Publish one event to ch; returns its message_serial.
async function publish(client, ch, data = 'm') {
  const r = await client.post('/events', { name: 'ev', channel: ch, data, info: 'subscription_count' });
  assertOk(r);
  const ms = r.json.channels && r.json.channels[ch] && r.json.channels[ch].message_serial;
  assert.equal(typeof ms, 'string', `no message_serial in ${r.body}`);
  return ms;
}

const annotate = (client, ch, ms, body, opts) => client.post(annPath(ch, ms), body, opts);

// Create one annotation, asserting 201 {annotation_serial}; returns the serial.
async function create(client, ch, ms, body, opts) {
  const r = await annotate(client, ch, ms, body, opts);
  assert.equal(r.status, 201, `create ${JSON.stringify(body)}: ${r.status} ${r.body}`);
  assert.ok(r.json && typeof r.json === 'object', r.body);
  assert.deepEqual(Object.keys(r.json), ['annotation_serial'], r.body);
  assert.equal(typeof r.json.annotation_serial, 'string', r.body);
  assert.ok(r.json.annotation_serial.length > 0);
  return r.json.annotation_serial;
}

const del = (client, ch, ms, as) => client.call('DELETE', annItemPath(ch, ms, as));

async function delOk(client, ch, ms, as) {
  const r = await del(client, ch, ms, as);
  assertOk(r, 200);
  return r;
}

// The message's annotations.summary (asserting the message answers 200).
async function summary(client, ch, ms) {
  const r = await client.get(msgPath(ch, ms));
  assertOk(r);
  assert.ok(r.json.annotations && typeof r.json.annotations === 'object',
    `message has no annotations object: ${r.body}`);
  const s = r.json.annotations.summary;
  assert.ok(s && typeof s === 'object' && !Array.isArray(s), `annotations.summary: ${r.body}`);
  return s;
}

function checkItem(it, ms) {
  for (const k of Object.keys(it)) assert.ok(ITEM_KEYS.includes(k), `unexpected field ${k}: ${JSON.stringify(it)}`);
  assert.equal(typeof it.annotation_serial, 'string');
  assert.equal(it.message_serial, ms);
  assert.equal(typeof it.type, 'string');
  assert.equal(typeof it.timestamp_ms, 'number');
  assert.ok(Math.abs(it.timestamp_ms - Date.now()) < 300000, `timestamp_ms is Unix ms: ${it.timestamp_ms}`);
  for (const k of ['name', 'client_id']) {
    if (it[k] !== undefined && it[k] !== null) assert.equal(typeof it[k], 'string', `${k}: ${JSON.stringify(it)}`);
  }
  if (it.type.endsWith(':multiple.v1')) {
    assert.equal(typeof it.count, 'number', `multiple annotation without count: ${JSON.stringify(it)}`);
  } else {
    assert.ok(it.count === undefined || it.count === null, `count on a ${it.type}: ${JSON.stringify(it)}`);
  }
}

const present = (v) => v !== undefined && v !== null;

// One page of the list.  Asserts the envelope.
async function listPage(client, ch, ms, params = {}) {
  const r = await client.get(annPath(ch, ms), params);
  assertOk(r);
  assert.ok(Array.isArray(r.json.items), `list has no items array: ${r.body}`);
  assert.equal(typeof r.json.has_more, 'boolean', r.body);
  if (r.json.has_more) {
    assert.equal(typeof r.json.next_cursor, 'string', r.body);
    assert.ok(r.json.next_cursor.length > 0);
  } else {
    assert.equal(r.json.next_cursor, null, `last page must have next_cursor null: ${r.body}`);
  }
  for (const it of r.json.items) checkItem(it, ms);
  return r.json;
}

// Every page; returns {items, pages}.
async function listAll(client, ch, ms, params = {}) {
  const items = [];
  let cursor;
  let pages = 0;
  for (;;) {
    const p = { ...params };
    if (cursor !== undefined) p.cursor = cursor;
    const page = await listPage(client, ch, ms, p);
    pages += 1;
    if (params.limit !== undefined) assert.ok(page.items.length <= Number(params.limit), 'page over limit');
    items.push(...page.items);
    if (!page.has_more) break;
    assert.ok(page.items.length > 0, 'has_more with an empty page');
    cursor = page.next_cursor;
    assert.ok(pages < 10000, 'too many pages');
  }
  return { items, pages };
}

const serialsOf = (items) => items.map((i) => i.annotation_serial);

function dbCount(appId, ms, extra = '') {
  return Number(sqlValue(`SELECT COUNT(*) FROM annotations WHERE app_id = ${sqlQuote(appId)}` +
    ` AND message_serial = ${sqlQuote(ms)}${extra}`));
}

function dbCountsRows(appId, ms) {
  return Number(sqlValue(`SELECT COUNT(*) FROM annotation_counts WHERE app_id = ${sqlQuote(appId)}` +
    ` AND message_serial = ${sqlQuote(ms)}`));
}

// Our own implementation of the five summarizers over a list of live annotations.
function computeSummary(items) {
  const out = {};
  for (const it of items) {
    const m = /^[A-Za-z0-9_-]{1,64}:(total|flag|distinct|unique|multiple)\.v1$/.exec(it.type);
    assert.ok(m, `listed annotation of an invalid type: ${it.type}`);
    const kind = m[1];
    const cid = present(it.client_id) ? it.client_id : null;
    switch (kind) {
      case 'total':
        out[it.type] = out[it.type] || { total: 0 };
        out[it.type].total += 1;
        break;
      case 'flag': {
        const s = out[it.type] = out[it.type] || { total: 0, client_ids: [] };
        if (!s.client_ids.includes(cid)) { s.client_ids.push(cid); s.total += 1; }
        break;
      }
      case 'distinct':
      case 'unique': {
        const s = out[it.type] = out[it.type] || {};
        const e = s[it.name] = s[it.name] || { total: 0, client_ids: [] };
        if (!e.client_ids.includes(cid)) { e.client_ids.push(cid); e.total += 1; }
        break;
      }
      case 'multiple': {
        const s = out[it.type] = out[it.type] || {};
        const e = s[it.name] = s[it.name] || { total: 0, client_counts: {}, total_unidentified: 0 };
        const n = present(it.count) ? it.count : 1;
        e.total += n;
        if (cid === null) e.total_unidentified += n;
        else e.client_counts[cid] = (e.client_counts[cid] || 0) + n;
        break;
      }
      default:
        assert.fail(kind);
    }
  }
  return normSummary(out);
}

// SPEC 7 leaves the order of client_ids and whether an emptied entry stays
// (all zero) or goes open: sort client_ids, drop entries that are entirely
// zero.  A non-zero entry is compared exactly.
function isZeroEntry(e) {
  if (!e || typeof e !== 'object') return false;
  if (e.total !== 0) return false;
  if ('client_ids' in e && !(Array.isArray(e.client_ids) && e.client_ids.length === 0)) return false;
  if ('client_counts' in e && !(e.client_counts && Object.keys(e.client_counts).length === 0)) return false;
  if ('total_unidentified' in e && e.total_unidentified !== 0) return false;
  return true;
}

function normEntry(e) {
  if (!e || typeof e !== 'object' || Array.isArray(e)) return e;
  const o = { ...e };
  if (Array.isArray(o.client_ids)) o.client_ids = [...o.client_ids].sort();
  return o;
}

function normSummary(s) {
  const out = {};
  for (const type of Object.keys(s).sort()) {
    const v = s[type];
    if (/:(total|flag)\.v1$/.test(type)) {
      if (isZeroEntry(v)) continue;
      out[type] = normEntry(v);
    } else {
      const names = {};
      if (v && typeof v === 'object' && !Array.isArray(v)) {
        for (const n of Object.keys(v).sort()) {
          if (isZeroEntry(v[n])) continue;
          names[n] = normEntry(v[n]);
        }
        if (Object.keys(names).length === 0) continue;
        out[type] = names;
      } else {
        out[type] = v; // not an object: compared as is, so it fails
      }
    }
  }
  return out;
}

async function assertSummary(client, ch, ms, expected, what = '') {
  const got = normSummary(await summary(client, ch, ms));
  assert.deepEqual(got, normSummary(expected), `summary ${what}`);
}

// Summary equals the recomputation from the full live list; returns the list.
async function assertConsistent(client, ch, ms, what = '') {
  const { items } = await listAll(client, ch, ms, { limit: 1000 });
  const got = normSummary(await summary(client, ch, ms));
  assert.deepEqual(got, computeSummary(items), `summary vs live list ${what}`);
  return items;
}

// Deterministic pseudo-random numbers (the failing case can be replayed).
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

function flipChar(s, i) {
  const c = s[i];
  let d;
  if (/[0-9]/.test(c)) d = c === '9' ? '8' : String(Number(c) + 1);
  else if (/[a-f]/.test(c)) d = c === 'f' ? 'e' : String.fromCharCode(c.charCodeAt(0) + 1);
  else d = c === 'x' ? 'y' : 'x';
  return s.slice(0, i) + d + s.slice(i + 1);
}

/* ---------------------------------------------------------------- basics */

test('create → 201 {annotation_serial}; list item fields; empty summary before any', async () => {
  const ch = uniq('basic');
  const ms = await publish(a, ch);
  assert.deepEqual(await summary(a, ch, ms), {}, 'a message without annotations has summary {}');
  const empty = await listPage(a, ch, ms);
  assert.deepEqual(empty, { items: [], has_more: false, next_cursor: null });

  const before = Date.now();
  const s1 = await create(a, ch, ms, { type: 'basic:total.v1' });
  const s2 = await create(a, ch, ms, { type: 'basic:multiple.v1', name: 'cheer', client_id: 'alice',
    count: 3, data: { note: 'hi', n: [1, 2] } });
  const s3 = await create(a, ch, ms, { type: 'basic:multiple.v1', name: 'cheer' });
  const s4 = await create(a, ch, ms, { type: 'basic:flag.v1', clientId: 'bob', data: 'plain' });
  const after = Date.now();
  assert.equal(new Set([s1, s2, s3, s4]).size, 4, 'annotation serials are distinct');

  const { items } = await listAll(a, ch, ms);
  assert.deepEqual(serialsOf(items), [s1, s2, s3, s4], 'oldest first');
  const [i1, i2, i3, i4] = items;
  assert.equal(i1.type, 'basic:total.v1');
  assert.ok(!present(i1.name) && !present(i1.client_id) && !present(i1.count) && !present(i1.data),
    `absent fields stay absent: ${JSON.stringify(i1)}`);
  assert.equal(i2.type, 'basic:multiple.v1');
  assert.equal(i2.name, 'cheer');
  assert.equal(i2.client_id, 'alice');
  assert.equal(i2.count, 3);
  const d2 = typeof i2.data === 'string' ? JSON.parse(i2.data) : i2.data;
  assert.deepEqual(d2, { note: 'hi', n: [1, 2] }, 'data is stored and listed');
  assert.equal(i3.count, 1, 'multiple without count: default 1');
  assert.ok(!present(i3.client_id));
  assert.equal(i4.type, 'basic:flag.v1');
  assert.equal(i4.client_id, 'bob', 'clientId is an alias of client_id');
  assert.equal(i4.data, 'plain');
  for (const it of items) {
    assert.ok(it.timestamp_ms >= before - 5000 && it.timestamp_ms <= after + 5000,
      `timestamp_ms ${it.timestamp_ms} not within [${before}, ${after}]`);
  }
  for (let i = 1; i < items.length; i++) {
    assert.ok(items[i].timestamp_ms >= items[i - 1].timestamp_ms, 'sequential creates: time does not go back');
  }

  await assertSummary(a, ch, ms, {
    'basic:total.v1': { total: 1 },
    'basic:multiple.v1': { cheer: { total: 4, client_counts: { alice: 3 }, total_unidentified: 1 } },
    'basic:flag.v1': { total: 1, client_ids: ['bob'] },
  });
  assert.equal(dbCount(app.id, ms), 4);
});

test('total: counts annotations, any client or none; per type; follows deletes', async () => {
  const ch = uniq('total');
  const ms = await publish(a, ch);
  const x1 = await create(a, ch, ms, { type: 'likes:total.v1' });
  const x2 = await create(a, ch, ms, { type: 'likes:total.v1', client_id: 'c1' });
  const x3 = await create(a, ch, ms, { type: 'likes:total.v1', client_id: 'c1' });
  await create(a, ch, ms, { type: 'likes:total.v1', client_id: 'c2', name: 'whatever' });
  await create(a, ch, ms, { type: 'other_ns-2:total.v1' });
  await assertSummary(a, ch, ms, { 'likes:total.v1': { total: 4 }, 'other_ns-2:total.v1': { total: 1 } });
  await delOk(a, ch, ms, x2);
  await assertSummary(a, ch, ms, { 'likes:total.v1': { total: 3 }, 'other_ns-2:total.v1': { total: 1 } });
  await delOk(a, ch, ms, x2); // again: still 200, nothing changes
  await assertSummary(a, ch, ms, { 'likes:total.v1': { total: 3 }, 'other_ns-2:total.v1': { total: 1 } });
  await delOk(a, ch, ms, x1);
  await delOk(a, ch, ms, x3);
  await assertSummary(a, ch, ms, { 'likes:total.v1': { total: 1 }, 'other_ns-2:total.v1': { total: 1 } });
  await assertConsistent(a, ch, ms);
});

test('flag: a client counts once until all of its annotations are deleted', async () => {
  const ch = uniq('flag');
  const ms = await publish(a, ch);
  const T = 'mod:flag.v1';
  const a1 = await create(a, ch, ms, { type: T, client_id: 'alice' });
  const a2 = await create(a, ch, ms, { type: T, client_id: 'alice' });
  const b1 = await create(a, ch, ms, { type: T, client_id: 'bob' });
  await assertSummary(a, ch, ms, { [T]: { total: 2, client_ids: ['alice', 'bob'] } }, 'alice twice counts once');
  const raw = await summary(a, ch, ms);
  assert.equal(raw[T].client_ids.length, 2, `client_ids has one entry per client: ${JSON.stringify(raw)}`);
  assert.deepEqual(Object.keys(raw[T]).sort(), ['client_ids', 'total']);

  await delOk(a, ch, ms, a1);
  await assertSummary(a, ch, ms, { [T]: { total: 2, client_ids: ['alice', 'bob'] } },
    'alice still has one flag');
  await delOk(a, ch, ms, a2);
  await assertSummary(a, ch, ms, { [T]: { total: 1, client_ids: ['bob'] } }, 'both of alice deleted');
  await delOk(a, ch, ms, a2);
  await assertSummary(a, ch, ms, { [T]: { total: 1, client_ids: ['bob'] } }, 'deleting again changes nothing');
  await delOk(a, ch, ms, b1);
  await assertSummary(a, ch, ms, {}, 'all flags deleted');
  const { items } = await listAll(a, ch, ms);
  assert.deepEqual(items, []);
});

test('distinct: one client on several names, each once', async () => {
  const ch = uniq('distinct');
  const ms = await publish(a, ch);
  const T = 'reactions:distinct.v1';
  const u1 = await create(a, ch, ms, { type: T, name: 'like', client_id: 'u1' });
  const u1b = await create(a, ch, ms, { type: T, name: 'love', client_id: 'u1' });
  const u1c = await create(a, ch, ms, { type: T, name: 'wow', client_id: 'u1' });
  const u2 = await create(a, ch, ms, { type: T, name: 'like', client_id: 'u2' });
  const u1dup = await create(a, ch, ms, { type: T, name: 'like', client_id: 'u1' });
  await assertSummary(a, ch, ms, { [T]: {
    like: { total: 2, client_ids: ['u1', 'u2'] },
    love: { total: 1, client_ids: ['u1'] },
    wow: { total: 1, client_ids: ['u1'] },
  } }, 'u1 on three names; u1 twice on like counts once');
  const raw = await summary(a, ch, ms);
  assert.deepEqual(Object.keys(raw[T].like).sort(), ['client_ids', 'total']);
  // the earlier annotations of u1 are all still listed (distinct supersedes nothing)
  const { items } = await listAll(a, ch, ms);
  assert.deepEqual(serialsOf(items), [u1, u1b, u1c, u2, u1dup]);

  await delOk(a, ch, ms, u1);
  await assertSummary(a, ch, ms, { [T]: {
    like: { total: 2, client_ids: ['u1', 'u2'] },
    love: { total: 1, client_ids: ['u1'] },
    wow: { total: 1, client_ids: ['u1'] },
  } }, 'u1 still likes through its second annotation');
  await delOk(a, ch, ms, u1dup);
  await delOk(a, ch, ms, u1c);
  await assertSummary(a, ch, ms, { [T]: {
    like: { total: 1, client_ids: ['u2'] },
    love: { total: 1, client_ids: ['u1'] },
  } });
  await assertConsistent(a, ch, ms);
});

test('unique: a new name moves the client; the earlier annotation leaves list and summary', async () => {
  const ch = uniq('unique');
  const ms = await publish(a, ch);
  const T = 'poll:unique.v1';
  const T2 = 'poll2:unique.v1';
  const aYes = await create(a, ch, ms, { type: T, name: 'yes', client_id: 'ann' });
  const bYes = await create(a, ch, ms, { type: T, name: 'yes', client_id: 'ben' });
  const other = await create(a, ch, ms, { type: T2, name: 'yes', client_id: 'ann' });
  await assertSummary(a, ch, ms, {
    [T]: { yes: { total: 2, client_ids: ['ann', 'ben'] } },
    [T2]: { yes: { total: 1, client_ids: ['ann'] } },
  });

  const aNo = await create(a, ch, ms, { type: T, name: 'no', client_id: 'ann' });
  await assertSummary(a, ch, ms, {
    [T]: { yes: { total: 1, client_ids: ['ben'] }, no: { total: 1, client_ids: ['ann'] } },
    [T2]: { yes: { total: 1, client_ids: ['ann'] } },
  }, 'ann moved from yes to no; other type untouched');
  let { items } = await listAll(a, ch, ms);
  assert.deepEqual(serialsOf(items), [bYes, other, aNo], 'the superseded annotation is gone from the list');
  assert.equal(dbCount(app.id, ms, ' AND deleted = 0'), 3);

  // the same name again: nothing is superseded, still counted once
  const aNo2 = await create(a, ch, ms, { type: T, name: 'no', client_id: 'ann' });
  await assertSummary(a, ch, ms, {
    [T]: { yes: { total: 1, client_ids: ['ben'] }, no: { total: 1, client_ids: ['ann'] } },
    [T2]: { yes: { total: 1, client_ids: ['ann'] } },
  });
  ({ items } = await listAll(a, ch, ms));
  assert.deepEqual(serialsOf(items), [bYes, other, aNo, aNo2]);

  // moving again supersedes both "no" annotations
  const aMaybe = await create(a, ch, ms, { type: T, name: 'maybe', client_id: 'ann' });
  ({ items } = await listAll(a, ch, ms));
  assert.deepEqual(serialsOf(items), [bYes, other, aMaybe]);
  await assertSummary(a, ch, ms, {
    [T]: { yes: { total: 1, client_ids: ['ben'] }, maybe: { total: 1, client_ids: ['ann'] } },
    [T2]: { yes: { total: 1, client_ids: ['ann'] } },
  });

  // deleting a superseded annotation: 200, nothing changes (no resurrection)
  await delOk(a, ch, ms, aYes);
  await delOk(a, ch, ms, aNo);
  ({ items } = await listAll(a, ch, ms));
  assert.deepEqual(serialsOf(items), [bYes, other, aMaybe]);
  await delOk(a, ch, ms, aMaybe);
  await assertSummary(a, ch, ms, {
    [T]: { yes: { total: 1, client_ids: ['ben'] } },
    [T2]: { yes: { total: 1, client_ids: ['ann'] } },
  }, 'deleting the live one does not bring back an older one');
  ({ items } = await listAll(a, ch, ms));
  assert.deepEqual(serialsOf(items), [bYes, other]);
  await assertConsistent(a, ch, ms);
});

test('multiple: counts per name and client, several clients, unidentified ones', async () => {
  const ch = uniq('multi');
  const ms = await publish(a, ch);
  const T = 'votes:multiple.v1';
  const c1 = await create(a, ch, ms, { type: T, name: 'up', client_id: 'c1', count: 3 });
  await create(a, ch, ms, { type: T, name: 'up', client_id: 'c1', count: 2 });
  const c2 = await create(a, ch, ms, { type: T, name: 'up', client_id: 'c2' });
  const u1 = await create(a, ch, ms, { type: T, name: 'up', count: 10 });
  await create(a, ch, ms, { type: T, name: 'up' });
  await create(a, ch, ms, { type: T, name: 'down', client_id: 'c1', count: 1000000 });
  await assertSummary(a, ch, ms, { [T]: {
    up: { total: 17, client_counts: { c1: 5, c2: 1 }, total_unidentified: 11 },
    down: { total: 1000000, client_counts: { c1: 1000000 }, total_unidentified: 0 },
  } });
  const raw = await summary(a, ch, ms);
  assert.deepEqual(Object.keys(raw[T].up).sort(), ['client_counts', 'total', 'total_unidentified']);

  await delOk(a, ch, ms, c1);
  await delOk(a, ch, ms, u1);
  await delOk(a, ch, ms, c2);
  await assertSummary(a, ch, ms, { [T]: {
    up: { total: 3, client_counts: { c1: 2 }, total_unidentified: 1 },
    down: { total: 1000000, client_counts: { c1: 1000000 }, total_unidentified: 0 },
  } });
  await assertConsistent(a, ch, ms);
});

test('all five summarizers on one message through creates and deletes', async () => {
  const ch = uniq('five');
  const ms = await publish(a, ch);
  const made = [];
  const mk = async (body) => { const s = await create(a, ch, ms, body); made.push(s); return s; };
  await mk({ type: 'f:total.v1' });
  const fl = await mk({ type: 'f:flag.v1', client_id: 'x' });
  await mk({ type: 'f:distinct.v1', name: 'n1', client_id: 'x' });
  await mk({ type: 'f:distinct.v1', name: 'n2', client_id: 'x' });
  await mk({ type: 'f:unique.v1', name: 'n1', client_id: 'x' });
  await mk({ type: 'f:unique.v1', name: 'n2', client_id: 'x' });
  await mk({ type: 'f:multiple.v1', name: 'n1', client_id: 'x', count: 4 });
  await mk({ type: 'f:multiple.v1', name: 'n1', count: 2 });
  await assertSummary(a, ch, ms, {
    'f:total.v1': { total: 1 },
    'f:flag.v1': { total: 1, client_ids: ['x'] },
    'f:distinct.v1': { n1: { total: 1, client_ids: ['x'] }, n2: { total: 1, client_ids: ['x'] } },
    'f:unique.v1': { n2: { total: 1, client_ids: ['x'] } },
    'f:multiple.v1': { n1: { total: 6, client_counts: { x: 4 }, total_unidentified: 2 } },
  });
  await delOk(a, ch, ms, fl);
  await assertSummary(a, ch, ms, {
    'f:total.v1': { total: 1 },
    'f:distinct.v1': { n1: { total: 1, client_ids: ['x'] }, n2: { total: 1, client_ids: ['x'] } },
    'f:unique.v1': { n2: { total: 1, client_ids: ['x'] } },
    'f:multiple.v1': { n1: { total: 6, client_counts: { x: 4 }, total_unidentified: 2 } },
  });
  await assertConsistent(a, ch, ms);
});

/* ---------------------------------------------------------------- list */

test('list: oldest first; type, client_id and both filters', async () => {
  const ch = uniq('filt');
  const ms = await publish(a, ch);
  const bodies = [
    { type: 'l:total.v1', client_id: 'p' },
    { type: 'l:flag.v1', client_id: 'q' },
    { type: 'l:total.v1' },
    { type: 'l:flag.v1', client_id: 'p' },
    { type: 'l:multiple.v1', name: 'k', client_id: 'p', count: 2 },
    { type: 'l:total.v1', client_id: 'q' },
    { type: 'l:total.v1', client_id: 'p' },
  ];
  const serials = [];
  for (const b of bodies) serials.push(await create(a, ch, ms, b));
  const pick = (f) => serials.filter((_, i) => f(bodies[i]));

  const all = await listAll(a, ch, ms);
  assert.deepEqual(serialsOf(all.items), serials);
  all.items.forEach((it, i) => {
    assert.equal(it.type, bodies[i].type);
    assert.equal(present(it.client_id) ? it.client_id : undefined, bodies[i].client_id);
  });

  assert.deepEqual(serialsOf((await listAll(a, ch, ms, { type: 'l:total.v1' })).items),
    pick((b) => b.type === 'l:total.v1'));
  assert.deepEqual(serialsOf((await listAll(a, ch, ms, { client_id: 'p' })).items),
    pick((b) => b.client_id === 'p'));
  assert.deepEqual(serialsOf((await listAll(a, ch, ms, { type: 'l:total.v1', client_id: 'p' })).items),
    pick((b) => b.type === 'l:total.v1' && b.client_id === 'p'));
  assert.deepEqual(serialsOf((await listAll(a, ch, ms, { type: 'l:flag.v1', client_id: 'q' })).items),
    pick((b) => b.type === 'l:flag.v1' && b.client_id === 'q'));
  assert.deepEqual((await listAll(a, ch, ms, { type: 'l:unique.v1' })).items, []);
  assert.deepEqual((await listAll(a, ch, ms, { client_id: 'nobody' })).items, []);
  assert.deepEqual((await listAll(a, ch, ms, { type: 'l:multiple.v1', client_id: 'q' })).items, []);

  // a deleted annotation leaves every filtered view
  await delOk(a, ch, ms, serials[0]);
  assert.deepEqual(serialsOf((await listAll(a, ch, ms, { type: 'l:total.v1', client_id: 'p' })).items),
    [serials[6]]);
  assert.deepEqual(serialsOf((await listAll(a, ch, ms)).items), serials.slice(1));
});

test('list paging: every limit walks every live annotation exactly once, with and without filters',
  async () => {
    const ch = uniq('page');
    const ms = await publish(a, ch);
    const bodies = [];
    const serials = [];
    for (let i = 0; i < 23; i++) {
      const b = i % 3 === 0 ? { type: 'pg:total.v1', client_id: `c${i % 4}` }
        : i % 3 === 1 ? { type: 'pg:flag.v1', client_id: `c${i % 4}` }
        : { type: 'pg:multiple.v1', name: 'n', client_id: `c${i % 4}`, count: i + 1 };
      bodies.push(b);
      serials.push(await create(a, ch, ms, b));
    }
    // delete a few in the middle
    const gone = new Set([serials[4], serials[5], serials[17]]);
    for (const s of gone) await delOk(a, ch, ms, s);
    const live = serials.filter((s) => !gone.has(s));
    const liveBy = (f) => serials.filter((s, i) => !gone.has(s) && f(bodies[i]));

    for (const limit of [1, 2, 7, 20, 1000]) {
      const { items, pages } = await listAll(a, ch, ms, { limit });
      assert.deepEqual(serialsOf(items), live, `limit ${limit}`);
      assert.equal(pages, Math.max(1, Math.ceil(live.length / limit)), `pages for limit ${limit}`);
    }
    for (const limit of [1, 3]) {
      assert.deepEqual(serialsOf((await listAll(a, ch, ms, { limit, type: 'pg:flag.v1' })).items),
        liveBy((b) => b.type === 'pg:flag.v1'), `type filter limit ${limit}`);
      assert.deepEqual(serialsOf((await listAll(a, ch, ms, { limit, client_id: 'c1' })).items),
        liveBy((b) => b.client_id === 'c1'), `client filter limit ${limit}`);
      assert.deepEqual(serialsOf((await listAll(a, ch, ms, { limit, type: 'pg:total.v1', client_id: 'c0' }))
        .items), liveBy((b) => b.type === 'pg:total.v1' && b.client_id === 'c0'), `both filters limit ${limit}`);
    }

    // exactly limit items: no dangling empty page
    const p = await listPage(a, ch, ms, { limit: live.length });
    assert.equal(p.items.length, live.length);
    assert.equal(p.has_more, false);
    assert.equal(p.next_cursor, null);

    // an annotation deleted between two pages is not shown later, one created is
    const first = await listPage(a, ch, ms, { limit: 5 });
    assert.deepEqual(serialsOf(first.items), live.slice(0, 5));
    await delOk(a, ch, ms, live[10]);
    const fresh = await create(a, ch, ms, { type: 'pg:total.v1' });
    const rest = [];
    let cur = first.next_cursor;
    while (cur) {
      const pg = await listPage(a, ch, ms, { limit: 5, cursor: cur });
      rest.push(...serialsOf(pg.items));
      cur = pg.has_more ? pg.next_cursor : null;
    }
    assert.deepEqual(rest, [...live.slice(5).filter((s) => s !== live[10]), fresh]);
  });

test('list: bad limit → 400; tampered or foreign cursors → 400', async () => {
  const ch = uniq('cur');
  const ms = await publish(a, ch);
  const ms2 = await publish(a, ch);
  for (let i = 0; i < 4; i++) {
    await create(a, ch, ms, { type: i % 2 ? 'cu:flag.v1' : 'cu:total.v1', client_id: `k${i % 2}` });
    await create(a, ch, ms2, { type: 'cu:total.v1', client_id: `k${i % 2}` });
  }
  for (const limit of ['0', '-1', 'abc', '1.5', '', '99999999999999999999']) {
    assertError(await a.get(annPath(ch, ms), { limit }), 400);
  }
  assertOk(await a.get(annPath(ch, ms), { limit: 1 }));
  assertOk(await a.get(annPath(ch, ms), { limit: 1000 }));

  const p = await listPage(a, ch, ms, { limit: 1 });
  assert.equal(p.has_more, true);
  const cur = p.next_cursor;
  assertOk(await a.get(annPath(ch, ms), { limit: 1, cursor: cur }), 200);

  // altered: every position of the cursor, a sample of them
  const positions = new Set([0, cur.length - 1, Math.floor(cur.length / 2)]);
  for (let i = 0; i < cur.length; i += Math.max(1, Math.floor(cur.length / 8))) positions.add(i);
  for (const i of positions) {
    assertError(await a.get(annPath(ch, ms), { limit: 1, cursor: flipChar(cur, i) }), 400, 'invalid_input');
  }
  for (const bad of ['', 'garbage', cur + 'x', cur.slice(0, -1), `${cur}.${cur}`]) {
    if (bad === '') continue;
    assertError(await a.get(annPath(ch, ms), { limit: 1, cursor: bad }), 400, 'invalid_input');
  }

  // another message of the same channel
  assertError(await a.get(annPath(ch, ms2), { limit: 1, cursor: cur }), 400, 'invalid_input');
  // other filters than those it was made with
  assertError(await a.get(annPath(ch, ms), { limit: 1, cursor: cur, type: 'cu:total.v1' }), 400, 'invalid_input');
  assertError(await a.get(annPath(ch, ms), { limit: 1, cursor: cur, client_id: 'k0' }), 400, 'invalid_input');
  const pf = await listPage(a, ch, ms, { limit: 1, type: 'cu:total.v1' });
  assert.equal(pf.has_more, true);
  assertError(await a.get(annPath(ch, ms), { limit: 1, cursor: pf.next_cursor }), 400, 'invalid_input');
  assertError(await a.get(annPath(ch, ms), { limit: 1, cursor: pf.next_cursor, type: 'cu:flag.v1' }),
    400, 'invalid_input');
  assertError(await a.get(annPath(ch, ms), { limit: 1, cursor: pf.next_cursor, type: 'cu:total.v1',
    client_id: 'k0' }), 400, 'invalid_input');
  assertOk(await a.get(annPath(ch, ms), { limit: 1, cursor: pf.next_cursor, type: 'cu:total.v1' }));

  // another app's cursor (same channel name and message serial cannot exist there:
  // use its own message) and a history cursor of the same channel
  const other = createApp('ann-cur');
  const o = api(other);
  const oms = await publish(o, ch);
  await create(o, ch, oms, { type: 'cu:total.v1' });
  await create(o, ch, oms, { type: 'cu:total.v1' });
  const op = await listPage(o, ch, oms, { limit: 1 });
  assert.equal(op.has_more, true);
  assertError(await a.get(annPath(ch, ms), { limit: 1, cursor: op.next_cursor }), 400, 'invalid_input');
  const h = await a.get(`/channels/${enc(ch)}/history`, { limit: 1 });
  assertOk(h);
  assert.equal(typeof h.json.next_cursor, 'string', h.body);
  assertError(await a.get(annPath(ch, ms), { limit: 1, cursor: h.json.next_cursor }), 400, 'invalid_input');
});

/* ---------------------------------------------------------------- delete */

test('delete: 200, summary updated, again 200, unknown serial 404, another message’s serial 404',
  async () => {
    const ch = uniq('del');
    const ms = await publish(a, ch);
    const ms2 = await publish(a, ch);
    const x = await create(a, ch, ms, { type: 'd:total.v1' });
    const y = await create(a, ch, ms, { type: 'd:total.v1' });
    const z = await create(a, ch, ms2, { type: 'd:total.v1' });
    await assertSummary(a, ch, ms, { 'd:total.v1': { total: 2 } });

    const r = await delOk(a, ch, ms, x);
    assert.ok(r.json && typeof r.json === 'object' && !Array.isArray(r.json), r.body);
    await assertSummary(a, ch, ms, { 'd:total.v1': { total: 1 } });
    assert.deepEqual(serialsOf((await listAll(a, ch, ms)).items), [y]);

    await delOk(a, ch, ms, x);
    await assertSummary(a, ch, ms, { 'd:total.v1': { total: 1 } }, 'second delete changes nothing');

    // unknown annotation serials
    assertError(await del(a, ch, ms, '01AAAAAAAAAAAAAAAAAAAAAAAA'), 404, 'not_found');
    assertError(await del(a, ch, ms, 'nope'), 404, 'not_found');
    // an annotation of another message (same channel)
    assertError(await del(a, ch, ms, z), 404, 'not_found');
    assertError(await del(a, ch, ms2, y), 404, 'not_found');
    await assertSummary(a, ch, ms2, { 'd:total.v1': { total: 1 } }, 'z untouched');
    await assertSummary(a, ch, ms, { 'd:total.v1': { total: 1 } }, 'y untouched');
    assert.deepEqual(serialsOf((await listAll(a, ch, ms2)).items), [z]);
    // unknown message, message of another channel, annotation through the wrong channel
    assertError(await del(a, ch, '01AAAAAAAAAAAAAAAAAAAAAAAA', y), 404, 'not_found');
    const ch2 = uniq('del2');
    await publish(a, ch2);
    assertError(await del(a, ch2, ms, y), 404, 'not_found');
    // another app cannot delete it
    const other = createApp('ann-del');
    assertError(await del(api(other), ch, ms, y), 404, 'not_found');
    assert.deepEqual(serialsOf((await listAll(a, ch, ms)).items), [y]);
    assert.equal(dbCount(app.id, ms, ' AND deleted = 0'), 1);

    await delOk(a, ch, ms, y);
    await assertSummary(a, ch, ms, {});
  });

test('wrong methods → 405 with Allow', async () => {
  const ch = uniq('meth');
  const ms = await publish(a, ch);
  const s = await create(a, ch, ms, { type: 'm:total.v1' });
  const r1 = await a.call('PUT', annPath(ch, ms), { body: { type: 'm:total.v1' } });
  assertError(r1, 405);
  assert.match(String(r1.headers.allow || ''), /GET/);
  assert.match(String(r1.headers.allow || ''), /POST/);
  const r2 = await a.call('GET', annItemPath(ch, ms, s));
  assertError(r2, 405);
  assert.match(String(r2.headers.allow || ''), /DELETE/);
  assert.deepEqual(serialsOf((await listAll(a, ch, ms)).items), [s]);
});

/* ---------------------------------------------------------------- validation */

test('validation: every bad create is a clear 4xx and stores nothing', async () => {
  const ch = uniq('val');
  const ms = await publish(a, ch);
  const long = (n) => 'x'.repeat(n);
  const cases = [
    // [body, status, code]
    [{}, 400, 'invalid_input'],
    [{ name: 'n', client_id: 'c' }, 400, 'invalid_input'],
    [{ type: '' }, 400, 'invalid_input'],
    [{ type: 123 }, 400, 'invalid_input'],
    [{ type: null }, 400, 'invalid_input'],
    [{ type: ['v:total.v1'] }, 400, 'invalid_input'],
    [{ type: 'total.v1' }, 400, 'invalid_input'],
    [{ type: 'vtotal.v1' }, 400, 'invalid_input'],
    [{ type: ':total.v1' }, 400, 'invalid_input'],
    [{ type: 'a b:total.v1' }, 400, 'invalid_input'],
    [{ type: 'a.b:total.v1' }, 400, 'invalid_input'],
    [{ type: 'a:b:total.v1' }, 400, 'invalid_input'],
    [{ type: 'é:total.v1' }, 400, 'invalid_input'],
    [{ type: `${long(65)}:total.v1` }, 400, 'invalid_input'],
    [{ type: 'v:total' }, 400, 'invalid_input'],
    [{ type: 'v:total.' }, 400, 'invalid_input'],
    [{ type: 'v:total.v' }, 400, 'invalid_input'],
    [{ type: 'v:total.v1 ' }, 400, 'invalid_input'],
    [{ type: ' v:total.v1' }, 400, 'invalid_input'],
    [{ type: 'v:total.v1.v1' }, 400, 'invalid_input'],
    [{ type: 'v:' }, 400, 'invalid_input'],
    [{ type: 'v:.v1' }, 400, 'invalid_input'],
    [{ type: 'x:sum.v1' }, 400, 'invalid_input'],
    [{ type: 'x:TOTAL.v1' }, 400, 'invalid_input'],
    [{ type: 'x:total.v2' }, 400, 'invalid_input'],
    [{ type: 'x:total.v0' }, 400, 'invalid_input'],
    [{ type: 'x:total.V1' }, 400, 'invalid_input'],
    [{ type: 'x:total.v10' }, 400, 'invalid_input'],
    [{ type: 'x:flag.v2', client_id: 'c' }, 400, 'invalid_input'],
    // name required for distinct / unique / multiple
    [{ type: 'v:distinct.v1', client_id: 'c' }, 400, 'invalid_input'],
    [{ type: 'v:unique.v1', client_id: 'c' }, 400, 'invalid_input'],
    [{ type: 'v:multiple.v1', client_id: 'c' }, 400, 'invalid_input'],
    [{ type: 'v:multiple.v1' }, 400, 'invalid_input'],
    // client_id required for flag / distinct / unique
    [{ type: 'v:flag.v1' }, 400, 'invalid_input'],
    [{ type: 'v:flag.v1', name: 'n' }, 400, 'invalid_input'],
    [{ type: 'v:distinct.v1', name: 'n' }, 400, 'invalid_input'],
    [{ type: 'v:unique.v1', name: 'n' }, 400, 'invalid_input'],
    // count
    [{ type: 'v:multiple.v1', name: 'n', count: 0 }, 400, 'invalid_input'],
    [{ type: 'v:multiple.v1', name: 'n', count: -1 }, 400, 'invalid_input'],
    [{ type: 'v:multiple.v1', name: 'n', count: 1.5 }, 400, 'invalid_input'],
    [{ type: 'v:multiple.v1', name: 'n', count: '3' }, 400, 'invalid_input'],
    [{ type: 'v:multiple.v1', name: 'n', count: true }, 400, 'invalid_input'],
    [{ type: 'v:multiple.v1', name: 'n', count: 1000001 }, 400, 'invalid_input'],
    [{ type: 'v:multiple.v1', name: 'n', count: 1e300 }, 400, 'invalid_input'],
    [{ type: 'v:multiple.v1', name: 'n', count: [2] }, 400, 'invalid_input'],
    [{ type: 'v:total.v1', count: 2 }, 400, 'invalid_input'],
    [{ type: 'v:flag.v1', client_id: 'c', count: 2 }, 400, 'invalid_input'],
    [{ type: 'v:distinct.v1', name: 'n', client_id: 'c', count: 2 }, 400, 'invalid_input'],
    [{ type: 'v:unique.v1', name: 'n', client_id: 'c', count: 2 }, 400, 'invalid_input'],
    // name / client_id not strings, too long
    [{ type: 'v:distinct.v1', name: 5, client_id: 'c' }, 400, 'invalid_input'],
    [{ type: 'v:distinct.v1', name: { a: 1 }, client_id: 'c' }, 400, 'invalid_input'],
    [{ type: 'v:distinct.v1', name: 'n', client_id: 7 }, 400, 'invalid_input'],
    [{ type: 'v:flag.v1', client_id: ['c'] }, 400, 'invalid_input'],
    [{ type: 'v:flag.v1', clientId: 7 }, 400, 'invalid_input'],
    [{ type: 'v:multiple.v1', name: true }, 400, 'invalid_input'],
    [{ type: 'v:total.v1', name: 5 }, 400, 'invalid_input'],
    [{ type: 'v:total.v1', client_id: false }, 400, 'invalid_input'],
    [{ type: 'v:distinct.v1', name: long(201), client_id: 'c' }, 400, 'invalid_input'],
    [{ type: 'v:flag.v1', client_id: long(201) }, 400, 'invalid_input'],
    // data over the app's max_event_data_bytes (10 KiB by default)
    [{ type: 'v:total.v1', data: long(20000) }, 413, 'payload_too_large'],
    [{ type: 'v:total.v1', data: { big: long(20000) } }, 413, 'payload_too_large'],
  ];
  for (const [body, status, code] of cases) {
    const r = await annotate(a, ch, ms, body);
    assert.equal(r.status, status, `${JSON.stringify(body).slice(0, 120)} → ${r.status} ${r.body}`);
    assertError(r, status, code);
  }
  // bodies that are not a JSON object
  for (const raw of ['not json', '[]', '"v:total.v1"', '42', 'null', '{"type":"v:total.v1"', '']) {
    const r = await annotate(a, ch, ms, raw);
    assertError(r, 400);
  }
  // whole body over 1 MiB
  assertError(await annotate(a, ch, ms, { type: 'v:total.v1', data: long(1100000) }), 413);

  assert.deepEqual((await listAll(a, ch, ms)).items, [], 'nothing listed');
  assert.equal(dbCount(app.id, ms), 0, 'nothing stored');
  assert.equal(dbCountsRows(app.id, ms), 0, 'no summary counters');
  assert.deepEqual(await summary(a, ch, ms), {});

  // the limits themselves are accepted
  await create(a, ch, ms, { type: `${long(64)}:total.v1` });
  await create(a, ch, ms, { type: 'A-z_0-9:total.v1' });
  await create(a, ch, ms, { type: 'v:distinct.v1', name: long(200), client_id: long(200) });
  await create(a, ch, ms, { type: 'v:multiple.v1', name: 'n', count: 1000000 });
  await create(a, ch, ms, { type: 'v:total.v1', data: long(5000) });
  await create(a, ch, ms, { type: 'v:total.v1', data: [1, 'two', { three: 3 }, null, true] });
  assert.equal(dbCount(app.id, ms), 6);
});

test('names and client ids with JSON/SQL metacharacters and UTF-8: byte limits, summary keys, filters',
  async () => {
    const ch = uniq('esc');
    const ms = await publish(a, ch);
    const weird = 'he said "hi" \\ \n\t\' ; -- % + & = ü 😀 \u0001';
    const cid = "o'brien \"x\" + 100% & é=1";
    const e200 = 'é'.repeat(100); // 200 bytes
    const e201 = 'é'.repeat(100) + 'a'; // 201 bytes, 101 characters
    assertError(await annotate(a, ch, ms, { type: 'w:distinct.v1', name: e201, client_id: 'c' }), 400,
      'invalid_input');
    assertError(await annotate(a, ch, ms, { type: 'w:flag.v1', client_id: e201 }), 400, 'invalid_input');
    assert.equal(dbCount(app.id, ms), 0);
    const s1 = await create(a, ch, ms, { type: 'w:distinct.v1', name: weird, client_id: cid });
    const s2 = await create(a, ch, ms, { type: 'w:multiple.v1', name: e200, client_id: e200, count: 2 });
    const s3 = await create(a, ch, ms, { type: 'w:flag.v1', client_id: cid });
    await create(a, ch, ms, { type: 'w:flag.v1', client_id: 'plain' });
    await assertSummary(a, ch, ms, {
      'w:distinct.v1': { [weird]: { total: 1, client_ids: [cid] } },
      'w:multiple.v1': { [e200]: { total: 2, client_counts: { [e200]: 2 }, total_unidentified: 0 } },
      'w:flag.v1': { total: 2, client_ids: [cid, 'plain'] },
    });
    const { items } = await listAll(a, ch, ms);
    assert.equal(items[0].name, weird);
    assert.equal(items[0].client_id, cid);
    assert.equal(items[1].name, e200);
    assert.deepEqual(serialsOf((await listAll(a, ch, ms, { client_id: cid })).items), [s1, s3]);
    assert.deepEqual(serialsOf((await listAll(a, ch, ms, { client_id: e200, limit: 1 })).items), [s2]);
    assert.deepEqual(serialsOf((await listAll(a, ch, ms, { client_id: cid, type: 'w:flag.v1', limit: 1 }))
      .items), [s3]);
    assert.deepEqual((await listAll(a, ch, ms, { client_id: cid.toUpperCase() })).items, [],
      'client_id filter is exact (case-sensitive)');
    await assertConsistent(a, ch, ms);
  });

test('content type, idempotency key length and header/body disagreement → 4xx, nothing stored',
  async () => {
    const ch = uniq('ct');
    const ms = await publish(a, ch);
    const body = { type: 'c:total.v1' };
    assertError(await annotate(a, ch, ms, body, { contentType: 'text/plain' }), 415);
    assertError(await annotate(a, ch, ms, body, { contentType: null }), 415);
    const k129 = 'k'.repeat(129);
    assertError(await annotate(a, ch, ms, { ...body, idempotency_key: k129 }), 400, 'invalid_input');
    assertError(await annotate(a, ch, ms, body, { headers: { 'X-Idempotency-Key': k129 } }), 400,
      'invalid_input');
    assertError(await annotate(a, ch, ms, { ...body, idempotency_key: uniq('b') },
      { headers: { 'X-Idempotency-Key': uniq('h') } }), 400, 'invalid_input');
    assertError(await annotate(a, ch, ms, { ...body, idempotency_key: 5 }), 400, 'invalid_input');
    assert.equal(dbCount(app.id, ms), 0);
    assert.deepEqual(await summary(a, ch, ms), {});
    const k128 = (uniq('k') + 'x'.repeat(128)).slice(0, 128);
    const first = await create(a, ch, ms, { ...body, idempotency_key: k128 });
    const again = await create(a, ch, ms, body, { headers: { 'X-Idempotency-Key': k128 } });
    assert.equal(again, first);
    assert.equal(dbCount(app.id, ms), 1);
  });

test('data over a small max_event_data_bytes → 413, nothing stored', async () => {
  const small = createApp('ann-small');
  appSet(small.id, 'max_event_data_bytes', 100);
  await sleep(100);
  const s = api(small);
  const ch = uniq('small');
  const ms = await publish(s, ch);
  assertError(await annotate(s, ch, ms, { type: 'v:total.v1', data: 'y'.repeat(300) }), 413, 'payload_too_large');
  assertError(await annotate(s, ch, ms, { type: 'v:total.v1', data: { k: 'y'.repeat(300) } }), 413,
    'payload_too_large');
  assert.equal(dbCount(small.id, ms), 0);
  await create(s, ch, ms, { type: 'v:total.v1', data: 'y'.repeat(50) });
  assert.equal(dbCount(small.id, ms), 1);
});

test('unknown message, message of another channel or app → 404 on all three routes; nothing stored',
  async () => {
    const ch = uniq('unk');
    const ch2 = uniq('unk2');
    const ms = await publish(a, ch);
    await publish(a, ch2);
    const real = await create(a, ch, ms, { type: 'u:total.v1' });
    const nosuch = '01AAAAAAAAAAAAAAAAAAAAAAAA';
    const body = { type: 'u:total.v1' };
    for (const [c, m] of [[ch, nosuch], [ch, 'garbage'], [ch2, ms], [uniq('never'), ms]]) {
      assertError(await annotate(a, c, m, body), 404, 'not_found');
      assertError(await a.get(annPath(c, m)), 404, 'not_found');
      assertError(await del(a, c, m, real), 404, 'not_found');
    }
    const other = createApp('ann-unk');
    const o = api(other);
    assertError(await annotate(o, ch, ms, body), 404, 'not_found');
    assertError(await o.get(annPath(ch, ms)), 404, 'not_found');
    assertError(await del(o, ch, ms, real), 404, 'not_found');
    assert.equal(Number(sqlValue(`SELECT COUNT(*) FROM annotations WHERE app_id = ${sqlQuote(other.id)}`)), 0);
    assert.equal(dbCount(app.id, ms), 1);
    assert.equal(Number(sqlValue(`SELECT COUNT(*) FROM annotations WHERE app_id = ${sqlQuote(app.id)}` +
      ` AND message_serial = ${sqlQuote(nosuch)}`)), 0);
    assert.deepEqual(serialsOf((await listAll(a, ch, ms)).items), [real]);
  });

test('annotations flag off → 403 feature_disabled on create, list and delete; nothing changes',
  async () => {
    const off = createApp('ann-off');
    const o = api(off);
    const ch = uniq('off');
    const ms = await publish(o, ch);
    const keep = await create(o, ch, ms, { type: 'o:total.v1' });
    appSet(off.id, 'annotations', 0);
    await sleep(5500); // app records are cached up to 5 s per worker thread
    for (let i = 0; i < 4; i++) {
      assertError(await annotate(o, ch, ms, { type: 'o:total.v1' }), 403, 'feature_disabled');
      assertError(await o.get(annPath(ch, ms)), 403, 'feature_disabled');
      assertError(await del(o, ch, ms, keep), 403, 'feature_disabled');
    }
    assert.equal(dbCount(off.id, ms), 1);
    assert.equal(dbCount(off.id, ms, ' AND deleted = 0'), 1, 'delete with the flag off deleted');
    // other apps are unaffected
    const ch2 = uniq('on');
    const ms2 = await publish(a, ch2);
    await create(a, ch2, ms2, { type: 'o:total.v1' });
    appSet(off.id, 'annotations', 1);
    await sleep(5500);
    assert.deepEqual(serialsOf((await listAll(o, ch, ms)).items), [keep]);
    await assertSummary(o, ch, ms, { 'o:total.v1': { total: 1 } });
    await create(o, ch, ms, { type: 'o:total.v1' });
  });

/* ---------------------------------------------------------------- idempotency */

test('idempotency: a retry answers the first 201 and stores nothing; other body → 409', async () => {
  const ch = uniq('idem');
  const ms = await publish(a, ch);
  const ms2 = await publish(a, ch);
  const key = uniq('k');
  const body = { type: 'i:multiple.v1', name: 'n', client_id: 'c', count: 2, idempotency_key: key };
  const r1 = await annotate(a, ch, ms, body);
  assert.equal(r1.status, 201, r1.body);
  const first = r1.json.annotation_serial;
  for (let i = 0; i < 3; i++) {
    const r = await annotate(a, ch, ms, body);
    assert.equal(r.status, 201, r.body);
    assert.deepEqual(r.json, { annotation_serial: first });
  }
  // the header carries the same key
  const rh = await annotate(a, ch, ms, { type: 'i:multiple.v1', name: 'n', client_id: 'c', count: 2 },
    { headers: { 'X-Idempotency-Key': key } });
  assert.equal(rh.status, 201, rh.body);
  assert.deepEqual(rh.json, { annotation_serial: first });
  assert.equal(dbCount(app.id, ms), 1, 'retries stored nothing');
  await assertSummary(a, ch, ms, { 'i:multiple.v1': { n: { total: 2, client_counts: { c: 2 },
    total_unidentified: 0 } } }, 'retries counted once');

  // same key, another body / another message / the idempotencyKey alias
  assertError(await annotate(a, ch, ms, { ...body, count: 3 }), 409, 'idempotency_conflict');
  assertError(await annotate(a, ch, ms, { ...body, data: 'x' }), 409, 'idempotency_conflict');
  assertError(await annotate(a, ch, ms, { ...body, type: 'i:total.v1', name: undefined, client_id: undefined,
    count: undefined }), 409, 'idempotency_conflict');
  assertError(await annotate(a, ch, ms2, body), 409, 'idempotency_conflict');
  const { idempotency_key: _k, ...noKey } = body;
  assertError(await annotate(a, ch, ms, { ...noKey, count: 5, idempotencyKey: key }), 409,
    'idempotency_conflict');
  assert.equal(dbCount(app.id, ms), 1);
  assert.equal(dbCount(app.id, ms2), 0);

  // the key space is shared with publishes (as for mutations)
  const pk = uniq('pk');
  const pr = await a.post('/events', { name: 'ev', channel: ch, data: 'z', idempotency_key: pk });
  assertOk(pr);
  assertError(await annotate(a, ch, ms, { type: 'i:total.v1', idempotency_key: pk }), 409,
    'idempotency_conflict');
  assert.equal(dbCount(app.id, ms), 1);

  // 20 racing requests with one new key: one annotation, one answer
  const k2 = uniq('race');
  const res = await Promise.all(Array.from({ length: 20 }, () =>
    annotate(a, ch, ms2, { type: 'i:total.v1', idempotency_key: k2 })));
  for (const r of res) assert.equal(r.status, 201, r.body);
  assert.equal(new Set(res.map((r) => r.json.annotation_serial)).size, 1, 'one annotation_serial');
  assert.equal(dbCount(app.id, ms2), 1);
  await assertSummary(a, ch, ms2, { 'i:total.v1': { total: 1 } });

  // a retry after the annotation was deleted still answers the first 201 and adds nothing
  await delOk(a, ch, ms, first);
  const r5 = await annotate(a, ch, ms, body);
  assert.equal(r5.status, 201, r5.body);
  assert.deepEqual(r5.json, { annotation_serial: first });
  assert.deepEqual((await listAll(a, ch, ms)).items, []);
  assert.equal(dbCount(app.id, ms), 1);
});

/* ---------------------------------------------------------------- concurrency */

test('200 concurrent annotations by 20 clients over every summarizer, then concurrent deletes: ' +
  'summary == recomputation from the live list', async () => {
  const ch = uniq('conc');
  const ms = await publish(a, ch);
  const rand = rng(20240611);
  const types = ['cc:total.v1', 'cc:flag.v1', 'cc:distinct.v1', 'cc:unique.v1', 'cc:multiple.v1',
    'dd:unique.v1', 'dd:multiple.v1', 'dd:flag.v1'];
  const names = ['like', 'love', 'wow', 'sad'];
  const clients = Array.from({ length: 20 }, (_, i) => `client-${String(i).padStart(2, '0')}`);
  const bodies = [];
  for (let i = 0; i < 200; i++) {
    const type = types[i % types.length];
    const kind = type.split(':')[1].split('.')[0];
    const client = clients[Math.floor(rand() * clients.length)];
    const name = names[Math.floor(rand() * names.length)];
    const b = { type };
    if (kind === 'total') { if (rand() < 0.5) b.client_id = client; }
    else if (kind === 'flag') b.client_id = client;
    else if (kind === 'distinct' || kind === 'unique') { b.client_id = client; b.name = name; }
    else {
      b.name = name;
      if (rand() < 0.75) b.client_id = client;
      if (rand() < 0.7) b.count = 1 + Math.floor(rand() * 9);
    }
    if (rand() < 0.2) b.data = { i };
    bodies.push(b);
  }
  const created = new Map(); // serial → body
  for (let i = 0; i < bodies.length; i += 50) {
    const chunk = bodies.slice(i, i + 50);
    const res = await Promise.all(chunk.map((b) => annotate(a, ch, ms, b)));
    res.forEach((r, j) => {
      assert.equal(r.status, 201, `${JSON.stringify(chunk[j])}: ${r.status} ${r.body}`);
      assert.equal(typeof r.json.annotation_serial, 'string');
      assert.ok(!created.has(r.json.annotation_serial), 'duplicate annotation_serial');
      created.set(r.json.annotation_serial, chunk[j]);
    });
  }
  assert.equal(created.size, 200);
  assert.equal(dbCount(app.id, ms), 200, 'every acknowledged annotation is stored once');
  await assertConsistent(a, ch, ms, 'after the creates');

  // concurrent deletes: 70 picks (some twice, concurrently) among all created
  const serials = [...created.keys()];
  const deleted = new Set();
  const dels = [];
  for (let i = 0; i < 70; i++) {
    const s = serials[Math.floor(rand() * serials.length)];
    deleted.add(s);
    dels.push(s);
    if (i % 10 === 0) dels.push(s);
  }
  for (let i = 0; i < dels.length; i += 50) {
    const res = await Promise.all(dels.slice(i, i + 50).map((s) => del(a, ch, ms, s)));
    for (const r of res) assertOk(r, 200);
  }
  // and a mixed wave: creates and deletes racing
  const wave = [];
  const more = [];
  for (let i = 0; i < 40; i++) {
    if (i % 2 === 0) {
      const b = i % 4 === 0
        ? { type: 'cc:unique.v1', name: names[i % names.length], client_id: clients[i % 5] }
        : { type: 'cc:multiple.v1', name: 'like', client_id: clients[i % 3], count: 2 };
      more.push(b);
      wave.push(annotate(a, ch, ms, b).then((r) => ({ kind: 'create', r, b })));
    } else {
      const s = serials[(i * 13) % serials.length];
      deleted.add(s);
      wave.push(del(a, ch, ms, s).then((r) => ({ kind: 'delete', r })));
    }
  }
  for (const { kind, r, b } of await Promise.all(wave)) {
    if (kind === 'create') {
      assert.equal(r.status, 201, r.body);
      created.set(r.json.annotation_serial, b);
    } else {
      assertOk(r, 200);
    }
  }

  const items = await assertConsistent(a, ch, ms, 'after the deletes');
  const { items: paged } = await listAll(a, ch, ms, { limit: 17 });
  assert.deepEqual(serialsOf(paged), serialsOf(items), 'paging walks the same list');
  assert.equal(new Set(serialsOf(items)).size, items.length, 'no annotation listed twice');

  // every listed annotation is one we created and did not delete, listed as sent
  const live = new Set();
  for (const it of items) {
    const b = created.get(it.annotation_serial);
    assert.ok(b, `listed annotation ${it.annotation_serial} was never created`);
    assert.ok(!deleted.has(it.annotation_serial), `deleted annotation ${it.annotation_serial} listed`);
    assert.equal(it.type, b.type);
    assert.equal(present(it.name) ? it.name : undefined, b.name);
    assert.equal(present(it.client_id) ? it.client_id : undefined, b.client_id);
    if (b.type.endsWith(':multiple.v1')) assert.equal(it.count, b.count ?? 1);
    live.add(it.annotation_serial);
  }
  // every created, undeleted annotation of a non-unique type is listed
  for (const [s, b] of created) {
    if (!b.type.endsWith(':unique.v1') && !deleted.has(s)) {
      assert.ok(live.has(s), `created ${s} ${JSON.stringify(b)} missing from the list`);
    }
  }
  // unique: a client has live annotations under at most one name per type
  const byClient = new Map();
  for (const it of items.filter((x) => x.type.endsWith(':unique.v1'))) {
    const k = `${it.type}\u0000${it.client_id}`;
    if (!byClient.has(k)) byClient.set(k, new Set());
    byClient.get(k).add(it.name);
  }
  for (const [k, set] of byClient) assert.equal(set.size, 1, `${k.replace('\u0000', ' ')} live under ${[...set]}`);
  const sum = await summary(a, ch, ms);
  for (const t of ['cc:unique.v1', 'dd:unique.v1']) {
    const seen = new Map();
    for (const [n, e] of Object.entries(sum[t] || {})) {
      for (const c of e.client_ids) {
        assert.ok(!seen.has(c), `${t}: ${c} under both ${seen.get(c)} and ${n}`);
        seen.set(c, n);
      }
    }
  }
  assert.equal(dbCount(app.id, ms, ' AND deleted = 0'), items.length, 'live rows == listed');
});

test('racing unique annotations of one client with alternating names leave it under one name', async () => {
  const ch = uniq('uq');
  const ms = await publish(a, ch);
  const T = 'race:unique.v1';
  for (let round = 0; round < 3; round++) {
    const res = await Promise.all(Array.from({ length: 30 }, (_, i) =>
      annotate(a, ch, ms, { type: T, name: ['a', 'b', 'c'][i % 3], client_id: 'solo' })));
    for (const r of res) assert.equal(r.status, 201, r.body);
    await Promise.all(Array.from({ length: 10 }, (_, i) =>
      annotate(a, ch, ms, { type: T, name: `x${i % 2}`, client_id: `other${i % 4}` })
        .then((r) => assert.equal(r.status, 201, r.body))));
    const items = await assertConsistent(a, ch, ms, `round ${round}`);
    const solo = items.filter((it) => it.client_id === 'solo');
    assert.ok(solo.length >= 1, 'the last committed annotation of solo is live');
    assert.equal(new Set(solo.map((it) => it.name)).size, 1, `solo under ${solo.map((it) => it.name)}`);
    const sum = await summary(a, ch, ms);
    const soloNames = Object.entries(sum[T]).filter(([, e]) => e.client_ids.includes('solo'));
    assert.equal(soloNames.length, 1, `solo in the summary under ${JSON.stringify(sum[T])}`);
    for (let i = 0; i < 4; i++) {
      const names = Object.entries(sum[T]).filter(([, e]) => e.client_ids.includes(`other${i}`));
      assert.equal(names.length, 1);
    }
  }
});

test('racing flags and deletes of one client: counted once while any is live', async () => {
  const ch = uniq('fr');
  const ms = await publish(a, ch);
  const T = 'race:flag.v1';
  const res = await Promise.all(Array.from({ length: 25 }, () =>
    annotate(a, ch, ms, { type: T, client_id: 'same' })));
  for (const r of res) assert.equal(r.status, 201, r.body);
  const serials = res.map((r) => r.json.annotation_serial);
  await assertSummary(a, ch, ms, { [T]: { total: 1, client_ids: ['same'] } });
  const d = await Promise.all(serials.slice(1).map((s) => del(a, ch, ms, s)));
  for (const r of d) assertOk(r, 200);
  await assertSummary(a, ch, ms, { [T]: { total: 1, client_ids: ['same'] } });
  await delOk(a, ch, ms, serials[0]);
  await assertSummary(a, ch, ms, {});
  assert.deepEqual((await listAll(a, ch, ms)).items, []);
});

/* ---------------------------------------------------------------- purge */

test('purge all: the message is 404 and its annotations and counters are gone from MariaDB',
  async () => {
    const ch = uniq('purge');
    const keepCh = uniq('keep');
    const ms1 = await publish(a, ch);
    const ms2 = await publish(a, ch);
    const msKeep = await publish(a, keepCh);
    for (const ms of [ms1, ms2]) {
      await create(a, ch, ms, { type: 'p:total.v1' });
      await create(a, ch, ms, { type: 'p:flag.v1', client_id: 'c' });
      await create(a, ch, ms, { type: 'p:multiple.v1', name: 'n', client_id: 'c', count: 2 });
      const gone = await create(a, ch, ms, { type: 'p:unique.v1', name: 'n', client_id: 'c' });
      await create(a, ch, ms, { type: 'p:unique.v1', name: 'm', client_id: 'c' });
      await delOk(a, ch, ms, gone);
    }
    await create(a, keepCh, msKeep, { type: 'p:total.v1' });
    for (const ms of [ms1, ms2]) {
      assert.ok(dbCount(app.id, ms) >= 4, 'annotation rows before the purge');
      assert.ok(dbCountsRows(app.id, ms) > 0, 'counter rows before the purge');
    }
    const keepRows = dbCount(app.id, msKeep);
    const keepCounts = dbCountsRows(app.id, msKeep);
    assert.ok(keepCounts > 0);

    const r = await a.post(`/channels/${enc(ch)}/history/purge`, { confirm_channel: ch, mode: 'all' });
    assertOk(r);
    for (const ms of [ms1, ms2]) {
      assertError(await a.get(msgPath(ch, ms)), 404, 'not_found');
      assertError(await a.get(annPath(ch, ms)), 404, 'not_found');
      assertError(await annotate(a, ch, ms, { type: 'p:total.v1' }), 404, 'not_found');
      assert.equal(dbCount(app.id, ms), 0, 'annotations rows left after the purge');
      assert.equal(dbCountsRows(app.id, ms), 0, 'annotation_counts rows left after the purge');
    }
    // another channel's message keeps its annotations
    assert.equal(dbCount(app.id, msKeep), keepRows);
    assert.equal(dbCountsRows(app.id, msKeep), keepCounts);
    await assertSummary(a, keepCh, msKeep, { 'p:total.v1': { total: 1 } });
  });

test('purge before_serial takes only the older messages’ annotations', async () => {
  const ch = uniq('pbs');
  const ms1 = await publish(a, ch);
  const ms2 = await publish(a, ch);
  await create(a, ch, ms1, { type: 'q:flag.v1', client_id: 'c' });
  await create(a, ch, ms2, { type: 'q:flag.v1', client_id: 'c' });
  const r = await a.post(`/channels/${enc(ch)}/history/purge`, { confirm_channel: ch, mode: 'before_serial',
    serial: 2 });
  assertOk(r);
  assertError(await a.get(msgPath(ch, ms1)), 404, 'not_found');
  assert.equal(dbCount(app.id, ms1), 0);
  assert.equal(dbCountsRows(app.id, ms1), 0);
  assert.equal(dbCount(app.id, ms2), 1);
  assert.ok(dbCountsRows(app.id, ms2) > 0);
  await assertSummary(a, ch, ms2, { 'q:flag.v1': { total: 1, client_ids: ['c'] } });
});

test('retention (maintain, history_max_messages) removes a message with its annotations', async () => {
  const ret = createApp('ann-ret');
  appSet(ret.id, 'history_max_messages', 1);
  const r = api(ret);
  const ch = uniq('ret');
  const ms1 = await publish(r, ch);
  await create(r, ch, ms1, { type: 'r:multiple.v1', name: 'n', client_id: 'c', count: 4 });
  await create(r, ch, ms1, { type: 'r:total.v1' });
  const ms2 = await publish(r, ch);
  await create(r, ch, ms2, { type: 'r:total.v1' });
  assert.equal(dbCount(ret.id, ms1), 2);
  cliOk('maintain');
  assertError(await r.get(msgPath(ch, ms1)), 404, 'not_found');
  assertError(await r.get(annPath(ch, ms1)), 404, 'not_found');
  assert.equal(dbCount(ret.id, ms1), 0, 'annotations rows left after retention');
  assert.equal(dbCountsRows(ret.id, ms1), 0, 'annotation_counts rows left after retention');
  assert.equal(dbCount(ret.id, ms2), 1);
  await assertSummary(r, ch, ms2, { 'r:total.v1': { total: 1 } });
});
