// SPEC 5 history: GET /apps/{id}/channels/{ch}/history (paging, cursors, bounds),
// history/state, history/purge, the feature flag, and `sockudo-fcgi maintain` retention.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const {
  api, createApp, appSet, cliOk, sql, sqlQuote, uniq, assertError, assertOk, sleep,
} = require('./lib.js');

const app = createApp('hist');
const a = api(app);
const hist = (ch) => `/channels/${encodeURIComponent(ch)}/history`;

/* ---------------------------------------------------------------- helpers */

// Stored rows of a channel, oldest first: [{serial, t, data, message_serial, name}].
function rows(appId, ch) {
  return sql(`SELECT serial, published_at_ms, message_serial, name, data FROM messages` +
    ` WHERE app_id = ${sqlQuote(appId)} AND channel = ${sqlQuote(ch)} ORDER BY serial`)
    .map((r) => ({ serial: Number(r[0]), t: Number(r[1]), message_serial: r[2], name: r[3],
      data: r[4] }));
}

async function publishSeq(client, ch, n, prefix = 'm') {
  for (let i = 0; i < n; i++) {
    const r = await client.post('/events', { name: 'ev', channel: ch, data: `${prefix}${i}` });
    assert.equal(r.status, 200, r.body);
  }
}

async function publishPar(client, ch, n, prefix = 'p', chunk = 60) {
  for (let i = 0; i < n; i += chunk) {
    const res = await Promise.all(Array.from({ length: Math.min(chunk, n - i) }, (_, j) =>
      client.post('/events', { name: 'ev', channel: ch, data: `${prefix}${i + j}` })));
    for (const r of res) assert.equal(r.status, 200, r.body);
  }
}

// Walk every page; returns {items, pages}.  Asserts each page's own invariants.
async function walk(client, ch, params = {}, maxPages = 10000) {
  const items = [];
  let cursor;
  let pages = 0;
  for (;;) {
    const p = { ...params };
    if (cursor !== undefined) p.cursor = cursor;
    const r = await client.get(hist(ch), p);
    assertOk(r);
    pages += 1;
    assert.ok(Array.isArray(r.json.items), r.body);
    assert.equal(typeof r.json.has_more, 'boolean', r.body);
    if (params.limit !== undefined) assert.ok(r.json.items.length <= Number(params.limit));
    items.push(...r.json.items);
    if (!r.json.has_more) {
      assert.equal(r.json.next_cursor, null, `last page must have next_cursor null: ${r.body}`);
      break;
    }
    assert.equal(typeof r.json.next_cursor, 'string', r.body);
    assert.ok(r.json.next_cursor.length > 0);
    assert.ok(r.json.items.length > 0, 'has_more with an empty page');
    cursor = r.json.next_cursor;
    assert.ok(pages < maxPages, 'too many pages');
  }
  return { items, pages };
}

function assertOrdered(serials, newestFirst, what) {
  for (let i = 1; i < serials.length; i++) {
    if (newestFirst) {
      assert.ok(serials[i] < serials[i - 1], `${what}: not strictly decreasing at ${i}: ` +
        `${serials[i - 1]} then ${serials[i]}`);
    } else {
      assert.ok(serials[i] > serials[i - 1], `${what}: not strictly increasing at ${i}: ` +
        `${serials[i - 1]} then ${serials[i]}`);
    }
  }
}

async function state(client, ch) {
  const r = await client.get(`${hist(ch)}/state`);
  assertOk(r);
  return r.json;
}

// A cursor for ch with at least one more page (limit 1 on a channel of >= 2 messages).
async function cursorFor(client, ch, params = {}) {
  const r = await client.get(hist(ch), { limit: 1, ...params });
  assertOk(r);
  assert.equal(r.json.has_more, true, r.body);
  assert.equal(typeof r.json.next_cursor, 'string');
  return r.json.next_cursor;
}

function flipChar(s, i) {
  const c = s[i];
  let d;
  if (/[0-9]/.test(c)) d = c === '9' ? '8' : String(Number(c) + 1);
  else if (/[a-f]/.test(c)) d = c === 'f' ? 'e' : String.fromCharCode(c.charCodeAt(0) + 1);
  else d = c === 'x' ? 'y' : 'x';
  return s.slice(0, i) + d + s.slice(i + 1);
}

/* ---------------------------------------------------------------- shape */

test('item shape, default direction newest_first, next_cursor null on the last page', async () => {
  const ch = uniq('shape');
  await publishSeq(a, ch, 3, 'd');
  const stored = rows(app.id, ch);
  assert.equal(stored.length, 3);

  const r = await a.get(hist(ch));
  assertOk(r);
  assert.deepEqual(Object.keys(r.json).sort(), ['has_more', 'items', 'next_cursor']);
  assert.equal(r.json.has_more, false);
  assert.equal(r.json.next_cursor, null);
  assert.equal(r.json.items.length, 3);
  assert.deepEqual(r.json.items.map((i) => i.serial), [3, 2, 1], 'default is newest_first');
  for (const it of r.json.items) {
    const s = stored.find((x) => x.serial === it.serial);
    assert.ok(s, `no stored row for serial ${it.serial}`);
    assert.equal(typeof it.serial, 'number');
    assert.equal(typeof it.message_serial, 'string');
    assert.equal(it.message_serial, s.message_serial);
    assert.equal(it.name, 'ev');
    assert.equal(it.channel, ch);
    assert.equal(it.data, s.data);
    assert.equal(it.data, `d${it.serial - 1}`);
    assert.equal(typeof it.published_at_ms, 'number');
    assert.equal(it.published_at_ms, s.t);
    assert.ok(Math.abs(it.published_at_ms - Date.now()) < 120000, 'published_at_ms is Unix ms');
    assert.equal(it.action, 'create');
    assert.ok(it.version && typeof it.version === 'object', 'version object');
    assert.ok(it.version.serial !== undefined && it.version.serial !== null, 'version.serial');
    assert.equal(typeof it.version.timestamp_ms, 'number');
  }

  // limit 2: first page has a cursor, second page is the last one.
  const p1 = await a.get(hist(ch), { limit: 2 });
  assertOk(p1);
  assert.deepEqual(p1.json.items.map((i) => i.serial), [3, 2]);
  assert.equal(p1.json.has_more, true);
  assert.equal(typeof p1.json.next_cursor, 'string');
  const p2 = await a.get(hist(ch), { limit: 2, cursor: p1.json.next_cursor });
  assertOk(p2);
  assert.deepEqual(p2.json.items.map((i) => i.serial), [1]);
  assert.equal(p2.json.has_more, false);
  assert.equal(p2.json.next_cursor, null);

  // exactly limit items left: has_more must be false, not a dangling empty page.
  const p3 = await a.get(hist(ch), { limit: 3 });
  assertOk(p3);
  assert.equal(p3.json.items.length, 3);
  assert.equal(p3.json.has_more, false, 'exactly limit messages: no more pages');
  assert.equal(p3.json.next_cursor, null);
});

test('empty channel: no items, has_more false, next_cursor null', async () => {
  const r = await a.get(hist(uniq('empty')), { direction: 'oldest_first' });
  assertOk(r);
  assert.deepEqual(r.json, { items: [], has_more: false, next_cursor: null });
});

test('default limit is 100: 120 published, first page 100 items, second 20', async () => {
  const ch = uniq('deflimit');
  await publishPar(a, ch, 120);
  const r = await a.get(hist(ch));
  assertOk(r);
  assert.equal(r.json.items.length, 100);
  assert.equal(r.json.has_more, true);
  assert.deepEqual(r.json.items.map((i) => i.serial),
    Array.from({ length: 100 }, (_, i) => 120 - i));
  const r2 = await a.get(hist(ch), { cursor: r.json.next_cursor });
  assertOk(r2);
  assert.deepEqual(r2.json.items.map((i) => i.serial),
    Array.from({ length: 20 }, (_, i) => 20 - i));
  assert.equal(r2.json.has_more, false);
  assert.equal(r2.json.next_cursor, null);
});

/* ---------------------------------------------------------------- paging */

test('paging property: 57 messages, limits 1/7/50/1000, both directions, with and without bounds',
  async () => {
    const ch = uniq('prop');
    const N = 57;
    // A few at a time in parallel: distinct and shared milliseconds both occur.
    for (let i = 0; i < N; i += 3) {
      const res = await Promise.all(Array.from({ length: Math.min(3, N - i) }, (_, j) =>
        a.post('/events', { name: 'ev', channel: ch, data: `x${i + j}` })));
      for (const r of res) assert.equal(r.status, 200, r.body);
      if (i % 9 === 0) await sleep(3);
    }
    const stored = rows(app.id, ch);
    assert.deepEqual(stored.map((s) => s.serial), Array.from({ length: N }, (_, i) => i + 1));
    const all = stored.map((s) => s.serial);

    for (const limit of [1, 7, 50, 1000]) {
      for (const direction of ['newest_first', 'oldest_first']) {
        const { items, pages } = await walk(a, ch, { limit, direction });
        const got = items.map((i) => i.serial);
        const want = direction === 'newest_first' ? [...all].reverse() : all;
        assert.deepEqual(got, want, `limit ${limit} ${direction}`);
        assert.equal(pages, Math.max(1, Math.ceil(N / limit)), `pages for limit ${limit}`);
        assert.equal(new Set(items.map((i) => i.message_serial)).size, N);
        for (const it of items) {
          assert.equal(it.data, stored[it.serial - 1].data);
          assert.equal(it.published_at_ms, stored[it.serial - 1].t);
        }
      }
    }

    // Bounds: chosen from stored times (including shared milliseconds and
    // one-off values just inside/outside).
    const times = [...new Set(stored.map((s) => s.t))].sort((x, y) => x - y);
    const pick = (f) => times[Math.min(times.length - 1, Math.floor(f * (times.length - 1)))];
    const bounds = [
      [pick(0), pick(1)], [pick(0.2), pick(0.6)], [pick(0.5), pick(0.5)],
      [pick(0.3) + 1, pick(0.7) - 1], [pick(0.1) - 1, pick(0.9) + 1],
      [pick(0.4), undefined], [undefined, pick(0.4)], [pick(1) + 1, undefined],
      [undefined, pick(0) - 1], [pick(0.7), pick(0.7) + 1000000],
    ];
    for (const [start, end] of bounds) {
      if (start !== undefined && end !== undefined && start > end) continue;
      const want = stored.filter((s) => (start === undefined || s.t >= start) &&
        (end === undefined || s.t <= end)).map((s) => s.serial);
      for (const limit of [1, 7, 1000]) {
        for (const direction of ['newest_first', 'oldest_first']) {
          const params = { limit, direction };
          if (start !== undefined) params.start = start;
          if (end !== undefined) params.end = end;
          const { items } = await walk(a, ch, params);
          const got = items.map((i) => i.serial);
          assert.deepEqual(got, direction === 'newest_first' ? [...want].reverse() : want,
            `bounds [${start}, ${end}] limit ${limit} ${direction}`);
          for (const it of items) {
            if (start !== undefined) assert.ok(it.published_at_ms >= start);
            if (end !== undefined) assert.ok(it.published_at_ms <= end);
          }
        }
      }
    }
  });

test('bounds are exact on published_at_ms even when concurrent publishes store times out of serial order',
  async () => {
    // Concurrent publishers take their timestamp before the serial is handed out, so
    // a higher serial can carry an earlier published_at_ms.  SPEC 5: start/end are
    // inclusive bounds on the message time; the result must be exactly the messages
    // whose published_at_ms is within [start, end].
    const ch = uniq('skew');
    let stored;
    let inversions = [];
    for (let round = 0; round < 6 && inversions.length === 0; round++) {
      await publishPar(a, ch, 150, `r${round}-`, 150);
      stored = rows(app.id, ch);
      inversions = [];
      for (let i = 1; i < stored.length; i++) {
        if (stored[i].t < stored[i - 1].t) inversions.push(i);
      }
    }
    const times = [...new Set(stored.map((s) => s.t))].sort((x, y) => x - y);
    const cand = new Set();
    for (const i of inversions.slice(0, 15)) {
      cand.add(stored[i].t); cand.add(stored[i - 1].t);
      cand.add(stored[i].t + 1); cand.add(stored[i - 1].t - 1);
    }
    for (let k = 0; k < times.length; k += Math.max(1, Math.floor(times.length / 8))) {
      cand.add(times[k]);
    }
    const cs = [...cand].sort((x, y) => x - y);
    const failures = [];
    for (const start of cs) {
      for (const end of [start, start + 1, start + 3, undefined]) {
        const want = stored.filter((s) => s.t >= start && (end === undefined || s.t <= end))
          .map((s) => s.serial);
        const params = { limit: 1000, direction: 'oldest_first', start };
        if (end !== undefined) params.end = end;
        const { items } = await walk(a, ch, params);
        const got = items.map((i) => i.serial);
        if (JSON.stringify(got) !== JSON.stringify(want)) {
          const missing = want.filter((s) => !got.includes(s));
          const extra = got.filter((s) => !want.includes(s));
          failures.push(`[${start}, ${end}]: missing serials ${JSON.stringify(missing.slice(0, 10))}` +
            ` extra ${JSON.stringify(extra.slice(0, 10))}`);
        }
      }
    }
    assert.deepEqual(failures, [], `${inversions.length} time inversions among ` +
      `${stored.length} stored rows; bounded reads wrong:\n${failures.slice(0, 8).join('\n')}`);
  });

test('paging oldest_first while publishing: each once, increasing, gap-free, pre-walk set all seen',
  async () => {
    const ch = uniq('livefwd');
    await publishPar(a, ch, 40);
    const before = rows(app.id, ch).map((s) => s.serial);
    let stop = false;
    let published = 0;
    const pub = (async () => {
      while (!stop) {
        const r = await a.post('/events', { name: 'ev', channel: ch, data: `live${published}` });
        assert.equal(r.status, 200, r.body);
        published += 1;
      }
    })();
    let items;
    try {
      ({ items } = await walk(a, ch, { limit: 5, direction: 'oldest_first' }, 5000));
    } finally {
      stop = true;
      await pub;
    }
    const got = items.map((i) => i.serial);
    assert.equal(new Set(got).size, got.length, 'a message was seen twice');
    assertOrdered(got, false, 'oldest_first while publishing');
    for (const s of before) assert.ok(got.includes(s), `pre-walk serial ${s} not seen`);
    // Serials become visible in order (the channel head row lock), so what was seen is a
    // gap-free prefix 1..k.
    assert.deepEqual(got, Array.from({ length: got.length }, (_, i) => i + 1), 'gap in what was seen');
    assert.ok(published > 0, 'the publisher ran');
  });

test('paging newest_first while publishing: no duplicates, decreasing, new messages do not appear',
  async () => {
    const ch = uniq('liveback');
    await publishPar(a, ch, 40);
    const before = rows(app.id, ch).map((s) => s.serial);
    const maxBefore = Math.max(...before);
    let stop = false;
    let published = 0;
    const pub = (async () => {
      while (!stop) {
        const r = await a.post('/events', { name: 'ev', channel: ch, data: `live${published}` });
        assert.equal(r.status, 200, r.body);
        published += 1;
      }
    })();
    let items;
    try {
      await sleep(20);
      ({ items } = await walk(a, ch, { limit: 5, direction: 'newest_first' }, 5000));
    } finally {
      stop = true;
      await pub;
    }
    const got = items.map((i) => i.serial);
    assert.equal(new Set(got).size, got.length, 'a message was seen twice');
    assertOrdered(got, true, 'newest_first while publishing');
    for (const s of before) assert.ok(got.includes(s), `pre-walk serial ${s} not seen`);
    // Only messages up to the first page's top can appear: the walk is anchored there.
    const top = got[0];
    assert.ok(top >= maxBefore);
    assert.deepEqual(got, Array.from({ length: top }, (_, i) => top - i), 'gap in what was seen');
    const final = rows(app.id, ch).length;
    assert.ok(final > top || published === 0 || final >= top, 'sanity');
  });

/* ---------------------------------------------------------------- bad input */

test('bad query parameters → 400 invalid_input, nothing changed', async () => {
  const ch = uniq('badq');
  await publishSeq(a, ch, 4);
  const st0 = await state(a, ch);
  const bad = [
    { limit: 0 }, { limit: 1001 }, { limit: 'abc' }, { limit: -1 }, { limit: '1.5' },
    { limit: '' }, { direction: 'sideways' }, { direction: '' }, { direction: 'NEWEST_FIRST' },
    { start: 2000, end: 1000 }, { start: 'abc' }, { end: 'abc' }, { start: -5 },
    { start: '1e3' },
  ];
  for (const params of bad) {
    const r = await a.get(hist(ch), params);
    assertError(r, 400, 'invalid_input');
    assert.ok(!('items' in r.json), `error body has items for ${JSON.stringify(params)}`);
  }
  // edges that are valid
  for (const params of [{ limit: 1 }, { limit: 1000 }, { start: 5, end: 5 }]) {
    assertOk(await a.get(hist(ch), params));
  }
  assert.deepEqual(await state(a, ch), st0);
});

test('cursor tampering and misuse → 400 invalid_input', async () => {
  const ch = uniq('cur');
  await publishSeq(a, ch, 14);
  const good = await cursorFor(a, ch, { limit: 2 }); // position after serial 13
  const dot = good.indexOf('.');
  assert.ok(dot > 0, `cursor has no '.': ${good} (test assumes "<serial>.<mac>" only for byte flips)`);

  // the good cursor works
  const ok = await a.get(hist(ch), { limit: 2, cursor: good });
  assertOk(ok);
  assert.deepEqual(ok.json.items.map((i) => i.serial), [12, 11]);

  const cases = [];
  for (let i = 0; i < dot; i++) cases.push([`serial byte ${i}`, flipChar(good, i)]);
  for (const i of [dot + 1, dot + 10, good.length - 1]) cases.push([`mac byte ${i}`, flipChar(good, i)]);
  cases.push(['mac upper-cased', good.slice(0, dot + 1) + good.slice(dot + 1).toUpperCase()]);
  cases.push(['mac truncated', good.slice(0, -1)]);
  cases.push(['mac extended', `${good}0`]);
  cases.push(['dot replaced', good.slice(0, dot) + '-' + good.slice(dot + 1)]);
  cases.push(['empty', '']);
  cases.push(['dot only', '.']);
  cases.push(['x.y', 'x.y']);
  cases.push(['serial only', good.slice(0, dot)]);
  cases.push(['mac only', good.slice(dot)]);
  cases.push(['very long', 'A'.repeat(4000)]);
  cases.push(['very long serial', `${'9'.repeat(40)}${good.slice(dot)}`]);
  cases.push(['negative serial', `-1${good.slice(dot)}`]);
  cases.push(['zero serial', `0${good.slice(dot)}`]);
  cases.push(['space', ` ${good}`]);
  for (const [what, cur] of cases) {
    if (cur === good) continue;
    const r = await a.get(hist(ch), { limit: 2, cursor: cur });
    assertError(r, 400, 'invalid_input');
    assert.ok(r.json.error.length > 0, what);
  }
});

test('cursor bound to channel, app, direction and bounds → 400 when reused elsewhere', async () => {
  const ch = uniq('bind');
  const ch2 = uniq('bind2');
  const other = createApp('hist-other');
  const b = api(other);
  await publishSeq(a, ch, 6);
  await publishSeq(a, ch2, 6);
  await publishSeq(b, ch, 6); // same channel name in another app

  const cNewest = await cursorFor(a, ch);
  const cOldest = await cursorFor(a, ch, { direction: 'oldest_first' });
  const cOther = await cursorFor(b, ch);
  const t = rows(app.id, ch).map((s) => s.t);
  const start = t[0];
  const end = t[t.length - 1] + 10;
  const cBounded = await cursorFor(a, ch, { start, end });

  // each works where it was made
  assertOk(await a.get(hist(ch), { limit: 1, cursor: cNewest }));
  assertOk(await a.get(hist(ch), { limit: 1, direction: 'oldest_first', cursor: cOldest }));
  assertOk(await b.get(hist(ch), { limit: 1, cursor: cOther }));
  assertOk(await a.get(hist(ch), { limit: 1, start, end, cursor: cBounded }));

  const misuse = [
    ['another channel', a, ch2, { cursor: cNewest }],
    ['another app, same channel name', a, ch, { cursor: cOther }],
    ['own cursor in the other app', b, ch, { cursor: cNewest }],
    ['newest_first cursor with oldest_first', a, ch, { cursor: cNewest, direction: 'oldest_first' }],
    ['oldest_first cursor with newest_first', a, ch, { cursor: cOldest, direction: 'newest_first' }],
    ['oldest_first cursor with default direction', a, ch, { cursor: cOldest }],
    ['unbounded cursor with bounds', a, ch, { cursor: cNewest, start, end }],
    ['bounded cursor without bounds', a, ch, { cursor: cBounded }],
    ['bounded cursor, other end', a, ch, { cursor: cBounded, start, end: end + 1 }],
    ['bounded cursor, other start', a, ch, { cursor: cBounded, start: start - 1, end }],
    ['bounded cursor, start only', a, ch, { cursor: cBounded, start }],
  ];
  for (const [what, client, channel, params] of misuse) {
    const r = await client.get(hist(channel), { limit: 1, ...params });
    assert.equal(r.status, 400, `${what}: ${r.status} ${r.body}`);
    assertError(r, 400, 'invalid_input');
  }
});

test('an altered cursor that decodes to the same position (leading zero) is rejected', async () => {
  // SPEC 5: "a foreign or altered cursor → 400".  "0<serial>.<mac>" is an altered cursor.
  const ch = uniq('lz');
  await publishSeq(a, ch, 4);
  const good = await cursorFor(a, ch);
  const r = await a.get(hist(ch), { limit: 1, cursor: `0${good}` });
  assertError(r, 400, 'invalid_input');
});

test('a bad channel name → 400 invalid_input on history, state and purge', async () => {
  const bad = '/channels/bad%20name/history';
  assertError(await a.get(bad), 400, 'invalid_input');
  assertError(await a.get(`${bad}/state`), 400, 'invalid_input');
  assertError(await a.post(`${bad}/purge`, { confirm_channel: 'bad name', mode: 'all' }),
    400, 'invalid_input');
});

/* ---------------------------------------------------------------- feature flag */

test('history flag off → 403 feature_disabled on history, state and purge; nothing purged',
  async () => {
    const off = createApp('hist-off');
    const o = api(off);
    const ch = uniq('off');
    await publishSeq(o, ch, 3);
    assertOk(await o.get(hist(ch)));
    appSet(off.id, 'history', 0);
    await sleep(5500); // app records are cached up to 5 s per worker thread
    for (let i = 0; i < 4; i++) { // several requests: likely to reach several workers
      assertError(await o.get(hist(ch)), 403, 'feature_disabled');
      assertError(await o.get(hist(ch), { limit: 0 }), 403, 'feature_disabled');
      assertError(await o.get(`${hist(ch)}/state`), 403, 'feature_disabled');
      assertError(await o.post(`${hist(ch)}/purge`, { confirm_channel: ch, mode: 'all' }),
        403, 'feature_disabled');
    }
    assert.equal(rows(off.id, ch).length, 3, 'purge with the flag off deleted rows');
    // other apps are unaffected
    const ch2 = uniq('on');
    await publishSeq(a, ch2, 1);
    assertOk(await a.get(hist(ch2)));
    // and turning it back on restores access
    appSet(off.id, 'history', 1);
    await sleep(5500);
    const r = await o.get(hist(ch));
    assertOk(r);
    assert.equal(r.json.items.length, 3);
  });

/* ---------------------------------------------------------------- state */

test('history/state: count, bytes, oldest and newest serial; empty channel', async () => {
  const ch = uniq('state');
  const datas = ['a', 'héllo', '{"k":"v"}', 'x'.repeat(300), '日本'];
  for (const d of datas) {
    assert.equal((await a.post('/events', { name: 'ev', channel: ch, data: d })).status, 200);
  }
  const s = await state(a, ch);
  assert.equal(s.channel, ch);
  assert.equal(s.retained_count, 5);
  const bytes = datas.reduce((n, d) => n + Buffer.byteLength(d), 0);
  const chars = datas.reduce((n, d) => n + d.length, 0);
  assert.ok(s.bytes === bytes || s.bytes === chars, `bytes ${s.bytes}, want ${bytes}`);
  assert.equal(s.bytes, bytes, 'bytes is the sum of the data sizes in bytes');
  assert.equal(s.oldest_serial, 1);
  assert.equal(s.newest_serial, 5);

  // after purging the first two: count 3, oldest 3
  const p = await a.post(`${hist(ch)}/purge`, { confirm_channel: ch, mode: 'before_serial', serial: 3 });
  assertOk(p);
  assert.deepEqual(p.json, { purged: 2 });
  const s2 = await state(a, ch);
  assert.equal(s2.retained_count, 3);
  assert.equal(s2.oldest_serial, 3);
  assert.equal(s2.newest_serial, 5);
  assert.equal(s2.bytes, datas.slice(2).reduce((n, d) => n + Buffer.byteLength(d), 0));

  const e = await state(a, uniq('nostate'));
  assert.equal(e.retained_count, 0);
  assert.equal(e.bytes, 0);
  assert.equal(e.oldest_serial, null);
  assert.equal(e.newest_serial, null);
  assert.ok('oldest_serial' in e && 'newest_serial' in e, 'null serials must be present');
});

/* ---------------------------------------------------------------- purge */

test('purge validation → 400 invalid_input and nothing deleted', async () => {
  const ch = uniq('pv');
  await publishSeq(a, ch, 5);
  const purge = (body, opts) => a.post(`${hist(ch)}/purge`, body, opts);
  const bad = [
    { confirm_channel: `${ch}x`, mode: 'all' },
    { confirm_channel: ch.toUpperCase(), mode: 'all' },
    { confirm_channel: '', mode: 'all' },
    { mode: 'all' },
    { confirm_channel: [ch], mode: 'all' },
    { confirm_channel: ch, mode: 'everything' },
    { confirm_channel: ch },
    { confirm_channel: ch, mode: 'ALL' },
    { confirm_channel: ch, mode: 'before_serial' },
    { confirm_channel: ch, mode: 'before_serial', serial: '3' },
    { confirm_channel: ch, mode: 'before_serial', serial: -1 },
    { confirm_channel: ch, mode: 'before_serial', serial: 2.5 },
    { confirm_channel: ch, mode: 'before_time_ms' },
    { confirm_channel: ch, mode: 'before_time_ms', time_ms: 'now' },
    { confirm_channel: ch, mode: 'before_time_ms', time_ms: -1 },
  ];
  for (const body of bad) {
    const r = await purge(body);
    assert.equal(r.status, 400, `${JSON.stringify(body)} → ${r.status} ${r.body}`);
    assertError(r, 400, 'invalid_input');
    assert.equal(rows(app.id, ch).length, 5, `rows deleted by ${JSON.stringify(body)}`);
  }
  assertError(await purge('not json'), 400);
  assertError(await a.post(`${hist(ch)}/purge`, undefined), 400);
  assertError(await purge('[]'), 400);
  assert.equal(rows(app.id, ch).length, 5);
});

test('purge before_serial 10 deletes serials < 10 only', async () => {
  const ch = uniq('pbs');
  await publishPar(a, ch, 15);
  const other = uniq('pbs-other');
  await publishSeq(a, other, 3);
  const r = await a.post(`${hist(ch)}/purge`, { confirm_channel: ch, mode: 'before_serial', serial: 10 });
  assertOk(r);
  assert.deepEqual(r.json, { purged: 9 });
  assert.deepEqual(rows(app.id, ch).map((s) => s.serial), [10, 11, 12, 13, 14, 15]);
  assert.equal(rows(app.id, other).length, 3, 'another channel was touched');
  const h = await a.get(hist(ch), { direction: 'oldest_first' });
  assert.deepEqual(h.json.items.map((i) => i.serial), [10, 11, 12, 13, 14, 15]);
  // repeating it deletes nothing more
  const r2 = await a.post(`${hist(ch)}/purge`, { confirm_channel: ch, mode: 'before_serial', serial: 10 });
  assert.deepEqual(r2.json, { purged: 0 });
});

test('purge before_time_ms deletes only older messages', async () => {
  const ch = uniq('pbt');
  await publishSeq(a, ch, 6, 'old');
  await sleep(30);
  const cut = Date.now();
  await sleep(30);
  await publishSeq(a, ch, 4, 'new');
  const stored = rows(app.id, ch);
  const older = stored.filter((s) => s.t < cut);
  assert.equal(older.length, 6);
  const r = await a.post(`${hist(ch)}/purge`, { confirm_channel: ch, mode: 'before_time_ms', time_ms: cut });
  assertOk(r);
  assert.deepEqual(r.json, { purged: 6 });
  assert.deepEqual(rows(app.id, ch).map((s) => s.data), ['new0', 'new1', 'new2', 'new3']);

  // the bound is exclusive: time_ms equal to a message's time keeps that message
  const t7 = rows(app.id, ch)[0].t;
  const same = rows(app.id, ch).filter((s) => s.t < t7).length;
  const r2 = await a.post(`${hist(ch)}/purge`, { confirm_channel: ch, mode: 'before_time_ms', time_ms: t7 });
  assert.deepEqual(r2.json, { purged: same });
  assert.ok(rows(app.id, ch).some((s) => s.t === t7));
});

test('purge all deletes everything; later publishes continue the serials', async () => {
  const ch = uniq('pall');
  await publishPar(a, ch, 12);
  const keep = uniq('pall-keep');
  await publishSeq(a, keep, 2);
  const r = await a.post(`${hist(ch)}/purge`, { confirm_channel: ch, mode: 'all' });
  assertOk(r);
  assert.deepEqual(r.json, { purged: 12 });
  assert.equal(rows(app.id, ch).length, 0);
  assert.equal(rows(app.id, keep).length, 2);
  const h = await a.get(hist(ch));
  assert.deepEqual(h.json, { items: [], has_more: false, next_cursor: null });
  const s = await state(a, ch);
  assert.equal(s.retained_count, 0);
  assert.equal(s.newest_serial, null);

  await publishSeq(a, ch, 2, 'after');
  assert.deepEqual(rows(app.id, ch).map((x) => x.serial), [13, 14], 'serials reused after purge');
  const h2 = await a.get(hist(ch));
  assert.deepEqual(h2.json.items.map((i) => i.serial), [14, 13]);
  assert.deepEqual(h2.json.items.map((i) => i.data), ['after1', 'after0']);

  // purge again: purged counts what was there
  const r2 = await a.post(`${hist(ch)}/purge`, { confirm_channel: ch, mode: 'all' });
  assert.deepEqual(r2.json, { purged: 2 });
  await publishSeq(a, ch, 1, 'again');
  assert.deepEqual(rows(app.id, ch).map((x) => x.serial), [15]);
});

/* ---------------------------------------------------------------- maintain */

test('maintain: history_max_messages keeps the newest N per channel, other apps untouched',
  async () => {
    const ret = createApp('hist-ret');
    const keep = createApp('hist-keep');
    const r = api(ret);
    const k = api(keep);
    appSet(ret.id, 'history_max_messages', 5);
    const c1 = uniq('mm1');
    const c2 = uniq('mm2');
    const c3 = uniq('mm3');
    await publishPar(r, c1, 12);
    await publishSeq(r, c2, 3);
    await publishPar(r, c3, 5);
    await publishPar(k, c1, 12);
    const out = cliOk('maintain');
    assert.match(out, /maintain/);
    assert.deepEqual(rows(ret.id, c1).map((s) => s.serial), [8, 9, 10, 11, 12]);
    assert.deepEqual(rows(ret.id, c2).map((s) => s.serial), [1, 2, 3]);
    assert.deepEqual(rows(ret.id, c3).map((s) => s.serial), [1, 2, 3, 4, 5]);
    assert.equal(rows(keep.id, c1).length, 12, 'an app without retention lost messages');
    const h = await r.get(hist(c1), { direction: 'oldest_first' });
    assert.deepEqual(h.json.items.map((i) => i.serial), [8, 9, 10, 11, 12]);

    // after a purge of the newest, the count rule still keeps at most 5 and never
    // deletes newer ones; running twice changes nothing
    cliOk('maintain');
    assert.deepEqual(rows(ret.id, c1).map((s) => s.serial), [8, 9, 10, 11, 12]);
    await publishSeq(r, c1, 2, 'more');
    cliOk('maintain');
    assert.deepEqual(rows(ret.id, c1).map((s) => s.serial), [10, 11, 12, 13, 14]);
  });

test('maintain: history_max_age_s removes older messages only, other apps untouched', async () => {
  const ret = createApp('hist-age');
  const keep = createApp('hist-age-keep');
  const r = api(ret);
  const k = api(keep);
  appSet(ret.id, 'history_max_age_s', 60);
  const ch = uniq('age');
  await publishSeq(r, ch, 6);
  await publishSeq(k, ch, 6);
  // Age serials 1..3 (and the other app's) to two minutes ago.
  const old = Date.now() - 120000;
  for (const id of [ret.id, keep.id]) {
    sql(`UPDATE messages SET published_at_ms = ${old} WHERE app_id = ${sqlQuote(id)}` +
      ` AND channel = ${sqlQuote(ch)} AND serial <= 3`);
  }
  // 50 s old: inside the 60 s window, kept
  sql(`UPDATE messages SET published_at_ms = ${Date.now() - 50000} WHERE app_id = ` +
    `${sqlQuote(ret.id)} AND channel = ${sqlQuote(ch)} AND serial = 4`);
  cliOk('maintain');
  assert.deepEqual(rows(ret.id, ch).map((s) => s.serial), [4, 5, 6]);
  assert.equal(rows(keep.id, ch).length, 6, 'an app without retention lost messages');
  const s = await state(r, ch);
  assert.equal(s.retained_count, 3);
  assert.equal(s.oldest_serial, 4);
  // new publishes continue the serials
  await publishSeq(r, ch, 1);
  assert.deepEqual(rows(ret.id, ch).map((x) => x.serial), [4, 5, 6, 7]);
});

test('maintain with both limits and 0 = unlimited', async () => {
  const ret = createApp('hist-both');
  const unl = createApp('hist-zero');
  const r = api(ret);
  const u = api(unl);
  appSet(ret.id, 'history_max_messages', 4);
  appSet(ret.id, 'history_max_age_s', 60);
  appSet(unl.id, 'history_max_messages', 0);
  appSet(unl.id, 'history_max_age_s', 0);
  const ch = uniq('both');
  await publishPar(r, ch, 10);
  await publishPar(u, ch, 10);
  sql(`UPDATE messages SET published_at_ms = ${Date.now() - 3600000} WHERE app_id IN ` +
    `(${sqlQuote(ret.id)}, ${sqlQuote(unl.id)}) AND channel = ${sqlQuote(ch)} AND serial = 9`);
  cliOk('maintain');
  assert.deepEqual(rows(ret.id, ch).map((s) => s.serial), [7, 8, 10]);
  assert.equal(rows(unl.id, ch).length, 10);
});
