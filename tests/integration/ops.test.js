// SPEC 9 operations routes: /live, /up, /up/{app}, /stats, /metrics (unsigned).
'use strict';

const { describe, it, before } = require('node:test');
const assert = require('node:assert/strict');
const L = require('./lib');

let app; let off;

before(() => {
  app = L.createApp('ops');
  off = L.createApp('ops-off');
  L.cliOk('app', 'disable', off.id);
});

// Sum every sample of a metric family whose labels match `labelRe`.
function sumMetric(text, name, labelRe = /.*/) {
  let sum = 0; let found = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    if (!labelRe.test(m[2] || '')) continue;
    sum += Number(m[3]);
    found = true;
  }
  return found ? sum : undefined;
}

// "errors by status" (SPEC 9): an object keyed by HTTP status, under errors or errors_by_status.
const errorsOf = (s) => (s && (s.errors_by_status || s.errors)) || undefined;

describe('operations', () => {
  it('GET /live → 200', async () => {
    const r = await L.rawRequest({ path: '/live' });
    assert.equal(r.status, 200);
  });

  it('GET /up → 200 OK with every dependency up', async () => {
    const r = await L.rawRequest({ path: '/up' });
    assert.equal(r.status, 200, r.body);
    assert.match(r.body, /OK/);
  });

  it('GET /up/{app} → 200 for an enabled app', async () => {
    const r = await L.rawRequest({ path: `/up/${app.id}` });
    assert.equal(r.status, 200, r.body);
  });

  it('GET /up/{app} → 503 for a disabled app', async () => {
    const r = await L.waitFor(async () => {
      const x = await L.rawRequest({ path: `/up/${off.id}` });
      return x.status === 503 ? x : null;
    }, { timeoutMs: 8000, what: '/up/{disabled app} to answer 503' });
    assert.equal(r.status, 503);
  });

  it('GET /up/{unknown app} is not 200', async () => {
    const r = await L.rawRequest({ path: `/up/no-such-app-${Date.now()}` });
    assert.notEqual(r.status, 200);
    assert.ok(r.status === 404 || r.status === 503, `got ${r.status}`);
  });

  it('GET /stats → JSON with apps, requests, publishes, errors, dependency latencies', async () => {
    const r = await L.rawRequest({ path: '/stats' });
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /application\/json/);
    assert.ok(r.json && typeof r.json === 'object', r.body);
    for (const k of ['apps', 'requests', 'publishes']) {
      assert.ok(k in r.json, `/stats has no "${k}": ${r.body}`);
    }
    assert.ok(errorsOf(r.json), `/stats has no errors by status: ${r.body}`);
    assert.ok(/latenc/i.test(r.body), `/stats names no dependency latencies: ${r.body}`);
  });

  it('/stats publishes counter grows with publishes (shared by all workers)', async () => {
    const read = async () => {
      const s = (await L.rawRequest({ path: '/stats' })).json;
      return typeof s.publishes === 'number' ? s.publishes
        : Object.values(s.publishes).reduce((a, v) => a + (typeof v === 'number' ? v : 0), 0);
    };
    const before0 = await read();
    for (let i = 0; i < 8; i++) {
      L.assertOk(await L.api(app).post('/events', { name: 'e', channel: L.uniq('ops'), data: 'x' }));
    }
    const after = await read();
    assert.ok(after >= before0 + 8, `publishes went from ${before0} to ${after} after 8 publishes`);
  });

  it('/stats counts errors by status', async () => {
    const before0 = Number((errorsOf((await L.rawRequest({ path: '/stats' })).json) || {})['400'] || 0);
    for (let i = 0; i < 3; i++) L.assertError(await L.api(app).post('/events', '{bad json'), 400);
    const errs = errorsOf((await L.rawRequest({ path: '/stats' })).json);
    assert.ok(errs && typeof errs === 'object', 'no errors by status');
    assert.ok(Number(errs['400']) >= before0 + 3, `errors["400"] went from ${before0} to ${errs['400']}`);
  });

  it('GET /metrics → Prometheus text with per-route counters and histograms', async () => {
    L.assertOk(await L.api(app).post('/events', { name: 'e', channel: L.uniq('m'), data: 'x' }));
    L.assertOk(await L.api(app).get('/channels'));
    const r = await L.rawRequest({ path: '/metrics' });
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/plain/);
    const t = r.body;
    assert.match(t, /^# TYPE \S+ counter$/m, 'no counter');
    assert.match(t, /^# TYPE \S+ histogram$/m, 'no histogram');
    assert.match(t, /^# HELP \S+ .+$/m, 'no HELP lines');
    const hist = /^# TYPE (\S+) histogram$/m.exec(t)[1];
    assert.match(t, new RegExp(`^${hist}_bucket\\{[^}]*le="\\+Inf"[^}]*\\} \\d`, 'm'), 'no +Inf bucket');
    assert.match(t, new RegExp(`^${hist}_bucket\\{[^}]*le="[0-9.e+-]+"`, 'm'), 'no finite buckets');
    assert.match(t, new RegExp(`^${hist}_sum(\\{[^}]*\\})? `, 'm'), 'no _sum');
    assert.match(t, new RegExp(`^${hist}_count(\\{[^}]*\\})? `, 'm'), 'no _count');
    assert.match(t, /\{[^}]*="[^"]*events[^"]*"/, 'no per-route label naming the events route');
    assert.match(t, /\{[^}]*="[^"]*channels[^"]*"/, 'no per-route label naming the channels route');
    // every sample line is well formed
    for (const line of t.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      assert.match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? [-+0-9.eEInfa]+( \d+)?$/,
        `bad sample line: ${line}`);
    }
  });

  it('/metrics bucket counts are cumulative and end in _count', async () => {
    const t = (await L.rawRequest({ path: '/metrics' })).body;
    const hist = /^# TYPE (\S+) histogram$/m.exec(t)[1];
    const series = new Map();
    for (const line of t.split('\n')) {
      const m = new RegExp(`^${hist}_bucket\\{(.*)\\} (\\S+)`).exec(line);
      if (!m) continue;
      const labels = m[1].replace(/,?le="[^"]*"/, '');
      if (!series.has(labels)) series.set(labels, []);
      series.get(labels).push(Number(m[2]));
    }
    assert.ok(series.size > 0);
    for (const [labels, vals] of series) {
      for (let i = 1; i < vals.length; i++) assert.ok(vals[i] >= vals[i - 1], `non-cumulative buckets for ${labels}`);
      const count = sumMetric(t, `${hist}_count`, new RegExp(labels.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
      if (labels !== '' && count !== undefined) assert.ok(count >= vals[vals.length - 1]);
    }
  });

  it('/metrics request counter for the events route grows by the number of publishes', async () => {
    const scrape = async () => (await L.rawRequest({ path: '/metrics' })).body;
    const counterName = (t) => {
      const names = [...t.matchAll(/^# TYPE (\S+) counter$/mg)].map((m) => m[1]);
      return names.find((n) => new RegExp(`^${n}\\{[^}]*events`, 'm').test(t));
    };
    const t0 = await scrape();
    const name = counterName(t0);
    assert.ok(name, 'no counter with a label naming the events route');
    const v0 = sumMetric(t0, name, /events/);
    for (let i = 0; i < 10; i++) {
      L.assertOk(await L.api(app).post('/events', { name: 'e', channel: L.uniq('mc'), data: 'x' }));
    }
    const v1 = sumMetric(await scrape(), name, /events/);
    assert.ok(v1 >= v0 + 10, `${name}{events} went from ${v0} to ${v1} after 10 publishes`);
  });
});
