// SPEC 10 rate limits: per-app publish and read requests per second, 429 + Retry-After,
// counted across all workers (memcached).
'use strict';

const { describe, it, before } = require('node:test');
const assert = require('node:assert/strict');
const L = require('./lib');

let pubApp; let readApp; let bystander;

before(() => {
  pubApp = L.createApp('rl-pub');
  readApp = L.createApp('rl-read');
  bystander = L.createApp('rl-other');
  L.appSet(pubApp.id, 'max_publish_rps', 5);
  L.appSet(readApp.id, 'max_read_rps', 5);
});

// Wait until just after a wall-clock second starts, so that a burst falls into one window.
async function alignToSecond() {
  const ms = Date.now() % 1000;
  await L.sleep(1000 - ms + 5);
}

async function waitConfigApplied(fn) {
  // limits are read from the app record, which every worker thread may cache
  // for app_cache_ttl (5 s): after that the new limit holds everywhere
  await L.sleep(5500);
  const rs = await Promise.all(Array.from({ length: 20 }, fn));
  assert.ok(rs.some((r) => r.status === 429), 'the new rate limit applies after app_cache_ttl');
  await L.sleep(1000);
}

function check429(r) {
  L.assertError(r, 429, 'rate_limited');
  const ra = r.headers['retry-after'];
  assert.ok(ra !== undefined, 'no Retry-After header');
  assert.match(String(ra), /^\d+$/, `Retry-After not delta-seconds: ${ra}`);
  assert.ok(Number(ra) >= 1 && Number(ra) <= 60, `Retry-After out of range: ${ra}`);
}

describe('publish rate limit (max_publish_rps 5)', () => {
  const publish = (app, ch, i) => L.api(app).post('/events', { name: 'rl', channel: ch, data: `d${i}` });

  it('a burst of 20 → some 429 rate_limited with Retry-After; no more than the limit stored', async () => {
    await waitConfigApplied(() => publish(pubApp, L.uniq('rl-warm'), 0));
    const ch = L.uniq('rl');
    await alignToSecond();
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => publish(pubApp, ch, i)));
    const ok = rs.filter((r) => r.status === 200);
    const limited = rs.filter((r) => r.status === 429);
    assert.equal(ok.length + limited.length, 20, `other statuses: ${rs.map((r) => r.status)}`);
    assert.ok(limited.length > 0, 'no 429 in a burst of 20 at 5 rps');
    assert.ok(ok.length >= 1, 'nothing allowed');
    // 5 per second, counted across workers; 7 allows for a window edge
    assert.ok(ok.length <= 7, `${ok.length} of 20 allowed at 5 rps (per-worker counting?)`);
    for (const r of limited) check429(r);
    assert.equal(L.countMessages(pubApp.id, `channel = ${L.sqlQuote(ch)}`), ok.length,
      'rows stored differ from 200 responses');
  });

  it('after Retry-After, publishing works again', async () => {
    const ch = L.uniq('rl-again');
    const rs = await Promise.all(Array.from({ length: 12 }, (_, i) => publish(pubApp, ch, i)));
    const limited = rs.find((r) => r.status === 429);
    assert.ok(limited, 'expected a 429 to read Retry-After from');
    await L.sleep(Number(limited.headers['retry-after']) * 1000 + 100);
    const r = await publish(pubApp, ch, 99);
    L.assertOk(r);
  });

  it('batch_events counts against the publish limit', async () => {
    await alignToSecond();
    const rs = await Promise.all(Array.from({ length: 12 }, () =>
      L.api(pubApp).post('/batch_events', { batch: [{ name: 'b', channel: L.uniq('rlb'), data: 'x' }] })));
    assert.ok(rs.some((r) => r.status === 429), `statuses: ${rs.map((r) => r.status)}`);
  });

  it('reads are not limited by the publish limit', async () => {
    await alignToSecond();
    await Promise.all(Array.from({ length: 15 }, (_, i) => publish(pubApp, L.uniq('rl-x'), i)));
    const r = await L.api(pubApp).get('/channels');
    L.assertOk(r);
  });

  it('another app is not limited by this app', async () => {
    await alignToSecond();
    await Promise.all(Array.from({ length: 15 }, (_, i) => publish(pubApp, L.uniq('rl-y'), i)));
    const rs = await Promise.all(Array.from({ length: 10 }, (_, i) => publish(bystander, L.uniq('rl-b'), i)));
    for (const r of rs) L.assertOk(r);
  });
});

describe('read rate limit (max_read_rps 5)', () => {
  const read = (app) => L.api(app).get('/channels');

  it('a burst of 20 reads → some 429 rate_limited with Retry-After', async () => {
    await waitConfigApplied(() => read(readApp));
    await alignToSecond();
    const rs = await Promise.all(Array.from({ length: 20 }, () => read(readApp)));
    const ok = rs.filter((r) => r.status === 200);
    const limited = rs.filter((r) => r.status === 429);
    assert.equal(ok.length + limited.length, 20, `other statuses: ${rs.map((r) => r.status)}`);
    assert.ok(limited.length > 0, 'no 429 in a burst of 20 reads at 5 rps');
    assert.ok(ok.length >= 1 && ok.length <= 7, `${ok.length} of 20 reads allowed at 5 rps`);
    for (const r of limited) check429(r);
  });

  it('channel and users reads count too', async () => {
    await alignToSecond();
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) =>
      (i % 2 ? L.api(readApp).get('/channels/x') : L.api(readApp).get('/channels/presence-x/users'))));
    assert.ok(rs.some((r) => r.status === 429), `statuses: ${rs.map((r) => r.status)}`);
  });

  it('publishes are not limited by the read limit', async () => {
    await alignToSecond();
    await Promise.all(Array.from({ length: 15 }, () => read(readApp)));
    L.assertOk(await L.api(readApp).post('/events', { name: 'e', channel: L.uniq('rlr'), data: 'x' }));
  });

  it('limits recover: one read per 300 ms is never limited', async () => {
    await L.sleep(2000);
    for (let i = 0; i < 6; i++) {
      L.assertOk(await read(readApp));
      await L.sleep(300);
    }
  });
});
