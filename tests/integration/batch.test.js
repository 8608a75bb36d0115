// SPEC 3 batch publish: POST /apps/{id}/batch_events — limits, all-or-nothing, per-event info.
'use strict';

const { describe, it, before } = require('node:test');
const assert = require('node:assert/strict');
const L = require('./lib');

let app; let small;
const q = L.sqlQuote;

before(() => {
  app = L.createApp('batch');
  small = L.createApp('batch-small');
  L.appSet(small.id, 'max_batch_size', 3);
});

const ev = (ch, extra = {}) => ({ name: 'b-event', channel: ch, data: 'd', ...extra });

describe('batch_events', () => {
  it('10 events → 200 {} and 10 rows in request order', async () => {
    const base = L.uniq('b10');
    const batch = Array.from({ length: 10 }, (_, i) => ev(`${base}-${i}`, { data: `d${i}` }));
    const r = await L.api(app).post('/batch_events', { batch });
    L.assertOk(r);
    assert.deepEqual(r.json, {});
    const rows = L.sql(`SELECT channel, data FROM messages WHERE app_id = ${q(app.id)} AND channel LIKE ${q(base + '-%')} ORDER BY channel, serial`);
    assert.equal(rows.length, 10);
    for (let i = 0; i < 10; i++) assert.equal(rows.find((x) => x[0] === `${base}-${i}`)[1], `d${i}`);
  });

  it('11 events → 400, nothing stored', async () => {
    const base = L.uniq('b11');
    const batch = Array.from({ length: 11 }, (_, i) => ev(`${base}-${i}`));
    const r = await L.api(app).post('/batch_events', { batch });
    L.assertError(r, 400, ['limit_exceeded', 'invalid_input']);
    assert.equal(L.countMessages(app.id, `channel LIKE ${q(base + '-%')}`), 0);
  });

  it('per-app max_batch_size (3): 4 → 400, 3 accepted', async () => {
    const base = L.uniq('bs');
    const r = await L.api(small).post('/batch_events', { batch: [0, 1, 2, 3].map((i) => ev(`${base}-${i}`)) });
    L.assertError(r, 400, ['limit_exceeded', 'invalid_input']);
    assert.equal(L.countMessages(small.id), 0);
    L.assertOk(await L.api(small).post('/batch_events', { batch: [0, 1, 2].map((i) => ev(`${base}-${i}`)) }));
    assert.equal(L.countMessages(small.id), 3);
  });

  it('one bad event (index 3) → 400 naming index 3, nothing stored', async () => {
    const base = L.uniq('bbad');
    const batch = Array.from({ length: 6 }, (_, i) => ev(`${base}-${i}`));
    batch[3] = ev("bad channel'; DROP TABLE messages;--");
    const r = await L.api(app).post('/batch_events', { batch });
    L.assertError(r, 400, 'invalid_input');
    assert.match(r.json.error, /\b3\b/, `error does not name index 3: ${r.json.error}`);
    assert.equal(L.countMessages(app.id, `channel LIKE ${q(base + '-%')}`), 0);
  });

  it('a bad event at index 0 (missing name) → 400 naming index 0', async () => {
    const base = L.uniq('bbad0');
    const batch = [{ channel: `${base}-0`, data: 'x' }, ev(`${base}-1`)];
    const r = await L.api(app).post('/batch_events', { batch });
    L.assertError(r, 400, 'invalid_input');
    assert.match(r.json.error, /\b0\b/);
    assert.equal(L.countMessages(app.id, `channel LIKE ${q(base + '-%')}`), 0);
  });

  it('an over-limit data at index 2 → 413 or 400, nothing stored', async () => {
    const base = L.uniq('bbig');
    const batch = [ev(`${base}-0`), ev(`${base}-1`), ev(`${base}-2`, { data: 'a'.repeat(10241) })];
    const r = await L.api(app).post('/batch_events', { batch });
    assert.ok(r.status === 413 || r.status === 400, `got ${r.status}`);
    L.assertError(r, r.status);
    assert.match(r.json.error, /\b2\b/);
    assert.equal(L.countMessages(app.id, `channel LIKE ${q(base + '-%')}`), 0);
  });

  it('info per event, in request order', async () => {
    const base = L.uniq('binfo');
    const pres = `presence-${base}-p`;
    const now = Date.now();
    L.sql(`INSERT INTO channel_subscriptions (app_id, channel, socket_id, user_id, user_info, subscribed_at_ms) VALUES
      (${q(app.id)}, ${q(`${base}-s`)}, '7.1', NULL, NULL, ${now}),
      (${q(app.id)}, ${q(`${base}-s`)}, '7.2', NULL, NULL, ${now}),
      (${q(app.id)}, ${q(pres)}, '7.3', 'ua', '{}', ${now})`);
    const batch = [
      ev(`${base}-s`, { info: 'subscription_count' }),
      ev(`${base}-none`),
      ev(pres, { info: 'user_count,subscription_count' }),
      ev(`${base}-zero`, { info: 'subscription_count' }),
    ];
    const r = await L.api(app).post('/batch_events', { batch });
    L.assertOk(r);
    assert.ok(Array.isArray(r.json.batch), `no batch array: ${r.body}`);
    assert.equal(r.json.batch.length, 4);
    assert.equal(r.json.batch[0].subscription_count, 2);
    assert.equal(r.json.batch[0].user_count, undefined);
    assert.equal(r.json.batch[1].subscription_count, undefined);
    assert.equal(r.json.batch[2].subscription_count, 1);
    assert.equal(r.json.batch[2].user_count, 1);
    assert.equal(r.json.batch[3].subscription_count, 0);
  });

  it('batch not an array → 400', async () => {
    const r = await L.api(app).post('/batch_events', { batch: ev('x') });
    L.assertError(r, 400, 'invalid_input');
  });

  it('missing batch → 400', async () => {
    const r = await L.api(app).post('/batch_events', { events: [] });
    L.assertError(r, 400, 'invalid_input');
  });

  it('batch with a wrong content type → 415', async () => {
    const r = await L.api(app).post('/batch_events', { batch: [ev(L.uniq('bct'))] }, { contentType: 'text/plain' });
    L.assertError(r, 415);
  });
});
