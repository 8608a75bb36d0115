// Concurrent publishes through the whole stack: group commit must keep every
// request's outcome separate, serials gap-free per channel, and idempotency
// exact when many requests race with one key.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { api, createApp, sql, sqlQuote, uniq } = require('./lib.js');

const app = createApp('conc');
const a = api(app);

function serials(channel) {
  return sql(`SELECT serial FROM messages WHERE app_id = ${sqlQuote(app.id)}` +
    ` AND channel = ${sqlQuote(channel)} ORDER BY serial`).map((r) => Number(r[0]));
}

test('300 parallel publishes to one channel: all 200, serials 1..300 without gaps', async () => {
  const ch = uniq('hot');
  const res = await Promise.all(Array.from({ length: 300 }, (_, i) =>
    a.post('/events', { name: 'e', channel: ch, data: `n${i}` })));
  for (const r of res) assert.equal(r.status, 200, r.body);
  const got = serials(ch);
  assert.deepEqual(got, Array.from({ length: 300 }, (_, i) => i + 1));
  const data = sql(`SELECT data FROM messages WHERE app_id = ${sqlQuote(app.id)}` +
    ` AND channel = ${sqlQuote(ch)}`).map((r) => r[0]).sort();
  assert.deepEqual(data, Array.from({ length: 300 }, (_, i) => `n${i}`).sort(),
    'every acknowledged event is stored exactly once');
});

test('parallel publishes to many channels and batches: each channel gap-free', async () => {
  const chans = Array.from({ length: 8 }, () => uniq('multi'));
  const reqs = [];
  for (let i = 0; i < 120; i++) {
    if (i % 4 === 0) {
      reqs.push(a.post('/batch_events', { batch: chans.slice(0, 3).map((c) =>
        ({ name: 'b', channel: c, data: `b${i}` })) }));
    } else {
      reqs.push(a.post('/events', { name: 'e', channels: [chans[i % 8], chans[(i + 3) % 8]],
        data: `e${i}` }));
    }
  }
  const res = await Promise.all(reqs);
  for (const r of res) assert.equal(r.status, 200, r.body);
  let total = 0;
  for (const c of chans) {
    const got = serials(c);
    total += got.length;
    assert.deepEqual(got, Array.from({ length: got.length }, (_, i) => i + 1), `gaps on ${c}`);
  }
  assert.equal(total, 30 * 3 + 90 * 2, 'rows = batch events + two channels per event');
});

test('40 racing requests with one idempotency key and one body: one row, one answer', async () => {
  const ch = uniq('idem');
  const body = { name: 'e', channel: ch, data: 'once', idempotency_key: uniq('k'),
    info: 'subscription_count' };
  const res = await Promise.all(Array.from({ length: 40 }, () => a.post('/events', body)));
  for (const r of res) assert.equal(r.status, 200, r.body);
  const first = res[0].body;
  for (const r of res) assert.equal(r.body, first, 'every retry gets the first answer');
  assert.equal(serials(ch).length, 1, 'published once');
});

test('racing requests with one key and different bodies: one wins, the rest are 409', async () => {
  const ch = uniq('idem2');
  const key = uniq('k');
  const res = await Promise.all(Array.from({ length: 20 }, (_, i) =>
    a.post('/events', { name: 'e', channel: ch, data: `v${i}`, idempotency_key: key })));
  const ok = res.filter((r) => r.status === 200);
  const conflict = res.filter((r) => r.status === 409);
  assert.equal(ok.length, 1, res.map((r) => r.status).join(','));
  assert.equal(conflict.length, 19);
  for (const r of conflict) assert.equal(r.json.code, 'idempotency_conflict');
  assert.equal(serials(ch).length, 1);
});

test('a batch with a repeated event key among parallel batches: the repeat is not republished',
  async () => {
    const ch = uniq('bk');
    const key = uniq('ek');
    const mk = (i) => ({ batch: [
      { name: 'x', channel: ch, data: 'same', idempotency_key: key },
      { name: 'y', channel: ch, data: `fresh${i}` },
    ] });
    const res = await Promise.all(Array.from({ length: 10 }, (_, i) =>
      a.post('/batch_events', mk(i))));
    for (const r of res) assert.equal(r.status, 200, r.body);
    const names = sql(`SELECT name FROM messages WHERE app_id = ${sqlQuote(app.id)}` +
      ` AND channel = ${sqlQuote(ch)}`).map((r) => r[0]);
    assert.equal(names.filter((n) => n === 'x').length, 1, 'keyed event stored once');
    assert.equal(names.filter((n) => n === 'y').length, 10, 'unkeyed events all stored');
    assert.deepEqual(serials(ch), Array.from({ length: 11 }, (_, i) => i + 1));
  });
