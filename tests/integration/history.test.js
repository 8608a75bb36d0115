// History (SPEC 5): pages in both directions, bounds, authenticated cursors,
// state, purge and retention, through lighttpd against the real MariaDB.
'use strict';

const { describe, it, before } = require('node:test');
const assert = require('node:assert/strict');
const L = require('./lib.js');

const app = L.createApp('hist');
const other = L.createApp('hist-other');
const a = L.api(app);

async function publishN(appX, ch, n, prefix = 'm') {
  for (let i = 0; i < n; i++) {
    L.assertOk(await L.api(appX).post('/events', { name: 'e', channel: ch, data: `${prefix}${i}` }));
  }
}

const hist = (ch, params = {}, appX = app) => L.api(appX).get(`/channels/${ch}/history`, params);

// Walk every page; returns the items in the order served.
async function walk(ch, params) {
  const out = [];
  let cursor;
  for (let pages = 0; pages < 500; pages++) {
    const r = await hist(ch, cursor ? { ...params, cursor } : params);
    L.assertOk(r);
    out.push(...r.json.items);
    if (!r.json.has_more) {
      assert.equal(r.json.next_cursor, null, 'the last page has no cursor');
      return out;
    }
    assert.equal(typeof r.json.next_cursor, 'string');
    cursor = r.json.next_cursor;
  }
  throw new Error('too many pages');
}

describe('history pages', () => {
  const ch = L.uniq('h');
  before(async () => { await publishN(app, ch, 57); });

  it('items have the SPEC 5 shape, newest first by default', async () => {
    const r = await hist(ch, { limit: 3 });
    L.assertOk(r);
    assert.equal(r.json.items.length, 3);
    assert.equal(r.json.has_more, true);
    const it0 = r.json.items[0];
    assert.equal(it0.serial, 57);
    assert.equal(it0.data, 'm56');
    assert.equal(it0.name, 'e');
    assert.equal(it0.channel, ch);
    assert.equal(it0.action, 'create');
    assert.match(it0.message_serial, /^[0-9A-Z]{26}$/);
    assert.equal(typeof it0.published_at_ms, 'number');
    assert.equal(it0.version.serial, it0.message_serial);
    assert.equal(it0.version.timestamp_ms, it0.published_at_ms);
    assert.deepEqual(r.json.items.map((x) => x.serial), [57, 56, 55]);
  });

  for (const limit of [1, 7, 50, 1000]) {
    for (const direction of ['newest_first', 'oldest_first']) {
      it(`limit ${limit}, ${direction}: every message exactly once, in order`, async () => {
        const items = await walk(ch, { limit, direction });
        const serials = items.map((x) => x.serial);
        const want = Array.from({ length: 57 }, (_, i) => i + 1);
        assert.deepEqual(serials, direction === 'oldest_first' ? want : want.reverse());
        assert.deepEqual(items.map((x) => x.data).sort(),
          Array.from({ length: 57 }, (_, i) => `m${i}`).sort());
      });
    }
  }

  it('default limit is 100', async () => {
    const big = L.uniq('h100');
    await publishN(app, big, 120);
    const r = await hist(big);
    assert.equal(r.json.items.length, 100);
    assert.equal(r.json.has_more, true);
  });

  it('start/end select by published_at_ms, inclusive, in both directions', async () => {
    const all = await walk(ch, { limit: 1000, direction: 'oldest_first' });
    const times = all.map((x) => x.published_at_ms);
    const start = times[10];
    const end = times[40];
    const want = all.filter((x) => x.published_at_ms >= start && x.published_at_ms <= end)
      .map((x) => x.serial);
    for (const direction of ['oldest_first', 'newest_first']) {
      const got = (await walk(ch, { limit: 4, direction, start, end })).map((x) => x.serial);
      assert.deepEqual(got, direction === 'oldest_first' ? want : [...want].reverse());
    }
    const none = await hist(ch, { start: times[56] + 100000, end: times[56] + 200000 });
    assert.deepEqual(none.json.items, []);
    assert.equal(none.json.has_more, false);
  });
});

describe('paging while publishing', () => {
  it('oldest_first and newest_first walks see each message at most once, in order', async () => {
    const ch = L.uniq('live');
    await publishN(app, ch, 30, 'pre');
    let stop = false;
    const writer = (async () => {
      let i = 0;
      while (!stop && i < 200) {
        await a.post('/events', { name: 'e', channel: ch, data: `live${i++}` });
      }
    })();
    const up = await walk(ch, { limit: 5, direction: 'oldest_first' });
    const down = await walk(ch, { limit: 5, direction: 'newest_first' });
    stop = true;
    await writer;
    const us = up.map((x) => x.serial);
    const ds = down.map((x) => x.serial);
    assert.equal(new Set(us).size, us.length, 'no duplicates going up');
    assert.equal(new Set(ds).size, ds.length, 'no duplicates going down');
    for (let i = 1; i < us.length; i++) assert.ok(us[i] === us[i - 1] + 1, 'gap-free going up');
    for (let i = 1; i < ds.length; i++) assert.ok(ds[i] === ds[i - 1] - 1, 'gap-free going down');
    for (let s = 1; s <= 30; s++) {
      assert.ok(us.includes(s), `serial ${s} published before the walk is seen`);
      assert.ok(ds.includes(s), `serial ${s} seen going down`);
    }
  });
});

describe('bad input', () => {
  const ch = L.uniq('bad');
  let cursor;
  before(async () => {
    await publishN(app, ch, 5);
    cursor = (await hist(ch, { limit: 2 })).json.next_cursor;
    assert.ok(cursor);
  });

  for (const [what, params] of [
    ['limit 0', { limit: 0 }], ['limit 1001', { limit: 1001 }], ['limit abc', { limit: 'abc' }],
    ['direction sideways', { direction: 'sideways' }], ['start > end', { start: 10, end: 5 }],
    ['start abc', { start: 'abc' }], ['garbage cursor', { cursor: 'x.y' }],
    ['empty cursor', { cursor: '' }], ['dot cursor', { cursor: '.' }],
    ['long cursor', { cursor: '9'.repeat(40) + '.' + 'a'.repeat(32) }],
  ]) {
    it(`${what} → 400`, async () => {
      L.assertError(await hist(ch, params), 400, 'invalid_input');
    });
  }

  it('a cursor with one byte changed → 400', async () => {
    const [num, mac] = cursor.split('.');
    const flip = (c) => (c === '0' ? '1' : '0');
    L.assertError(await hist(ch, { limit: 2, cursor: `${Number(num) - 1}.${mac}` }), 400,
      'invalid_input');
    L.assertError(await hist(ch, { limit: 2, cursor: `${num}.${flip(mac[0])}${mac.slice(1)}` }),
      400, 'invalid_input');
    L.assertOk(await hist(ch, { limit: 2, cursor }));
  });

  it('a cursor of another channel, app, direction or bounds → 400', async () => {
    const ch2 = L.uniq('bad2');
    await publishN(app, ch2, 5);
    L.assertError(await hist(ch2, { limit: 2, cursor }), 400, 'invalid_input');
    await publishN(other, ch, 5);
    L.assertError(await hist(ch, { limit: 2, cursor }, other), 400, 'invalid_input');
    L.assertError(await hist(ch, { limit: 2, cursor, direction: 'oldest_first' }), 400,
      'invalid_input');
    L.assertError(await hist(ch, { limit: 2, cursor, start: 1 }), 400, 'invalid_input');
  });

  it('a bad channel name → 400', async () => {
    L.assertError(await a.get('/channels/bad%20name/history'), 400, 'invalid_input');
  });
});

describe('state and purge', () => {
  it('state counts the retained messages', async () => {
    const ch = L.uniq('st');
    const empty = await a.get(`/channels/${ch}/history/state`);
    L.assertOk(empty);
    assert.equal(empty.json.retained_count, 0);
    assert.equal(empty.json.oldest_serial, null);
    await publishN(app, ch, 4, 'xy');
    const r = await a.get(`/channels/${ch}/history/state`);
    assert.deepEqual(r.json, { channel: ch, retained_count: 4, bytes: 4 * 3, oldest_serial: 1,
      newest_serial: 4 });
  });

  it('purge validates its body and deletes only what it is asked to', async () => {
    const ch = L.uniq('pg');
    await publishN(app, ch, 20);
    const purge = (body) => a.post(`/channels/${ch}/history/purge`, body);
    L.assertError(await purge({ confirm_channel: 'other', mode: 'all' }), 400, 'invalid_input');
    L.assertError(await purge({ confirm_channel: ch, mode: 'some' }), 400, 'invalid_input');
    L.assertError(await purge({ confirm_channel: ch, mode: 'before_serial' }), 400,
      'invalid_input');
    L.assertError(await purge({ confirm_channel: ch, mode: 'before_time_ms', time_ms: -1 }), 400,
      'invalid_input');
    assert.equal(L.countMessages(app.id, `channel = ${L.sqlQuote(ch)}`), 20, 'nothing deleted');

    let r = await purge({ confirm_channel: ch, mode: 'before_serial', serial: 10 });
    L.assertOk(r);
    assert.deepEqual(r.json, { purged: 9 });
    const items = await walk(ch, { limit: 100, direction: 'oldest_first' });
    assert.deepEqual(items.map((x) => x.serial), Array.from({ length: 11 }, (_, i) => i + 10));

    const t = items[5].published_at_ms;
    r = await purge({ confirm_channel: ch, mode: 'before_time_ms', time_ms: t });
    L.assertOk(r);
    const left = (await walk(ch, { limit: 100 })).map((x) => x.published_at_ms);
    assert.ok(left.every((x) => x >= t), 'only older messages were purged');
    assert.equal(r.json.purged, 11 - left.length);

    r = await purge({ confirm_channel: ch, mode: 'all' });
    assert.deepEqual(r.json, { purged: left.length });
    L.assertOk(await a.post('/events', { name: 'e', channel: ch, data: 'after' }));
    const after = await hist(ch);
    assert.deepEqual(after.json.items.map((x) => x.serial), [21], 'serials are not reused');
  });
});

describe('feature flag and retention', () => {
  it('history disabled → 403 feature_disabled', async () => {
    const off = L.createApp('hist-off');
    L.appSet(off.id, 'history', 0);
    await L.sleep(5500);	// app records are cached up to app_cache_ttl (5 s)
    const r = await L.api(off).get('/channels/x/history');
    L.assertError(r, 403, 'feature_disabled');
  });

  it('maintain keeps the newest history_max_messages per channel and nothing else changes',
    async () => {
      const keep = L.createApp('retain');
      const bystander = L.createApp('retain-by');
      L.appSet(keep.id, 'history_max_messages', 5);
      const c1 = L.uniq('r1');
      const c2 = L.uniq('r2');
      await publishN(keep, c1, 12);
      await publishN(keep, c2, 3);
      await publishN(bystander, c1, 12);
      L.cliOk('maintain');
      const serials = (appX, ch) => L.sql(`SELECT serial FROM messages WHERE app_id = ` +
        `${L.sqlQuote(appX.id)} AND channel = ${L.sqlQuote(ch)} ORDER BY serial`).map((x) => Number(x[0]));
      assert.deepEqual(serials(keep, c1), [8, 9, 10, 11, 12]);
      assert.deepEqual(serials(keep, c2), [1, 2, 3]);
      assert.equal(serials(bystander, c1).length, 12, 'other apps untouched');
    });

  it('maintain removes messages older than history_max_age_s', async () => {
    const aged = L.createApp('aged');
    L.appSet(aged.id, 'history_max_age_s', 2);
    const ch = L.uniq('age');
    await publishN(aged, ch, 3, 'old');
    await L.sleep(2500);
    await publishN(aged, ch, 2, 'new');
    L.cliOk('maintain');
    const data = L.sql(`SELECT data FROM messages WHERE app_id = ${L.sqlQuote(aged.id)} ORDER BY serial`)
      .map((x) => x[0]);
    assert.deepEqual(data, ['new0', 'new1']);
  });
});
