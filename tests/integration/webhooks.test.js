// Webhooks (issue 5) end to end: pusher-js clients through Pushpin change
// channel state; the pool queues Pusher webhooks in MariaDB (`webhooks`) in
// the transaction of the change; sockudo-pushd sends them, signed as Pusher
// signs them, to a receiver this file runs on 127.0.0.1, and retries failed
// ones with exponential backoff (devstack: webhook_retry_base_ms = 200).
//
// Other files may run against the same stack at the same time: everything is
// filtered by this file's own apps and unique channel names.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const http = require('node:http');
const { spawn } = require('node:child_process');
const L = require('./lib');
const R = require('./rt');

let app;			// the app with a webhook_url (this file's receiver)
let quiet;			// an app without one
let server; let hookPath;
const hooks = [];		// every webhook received: {at, method, url, headers, raw, json, status}
const plans = new Map();	// channel → {fails, holdMs}: how to answer its channel_occupied
const open = [];
const samplers = [];		// mariadb processes of sampler()

/* ----------------------------------------------------------- the receiver */

function nowMs() {
  return Number(process.hrtime.bigint()) / 1e6;
}

// The answer to one webhook: 500 while its channel's plan has failures left,
// else 200 (after holdMs, if the plan says so).
function plan(json) {
  for (const e of (json && json.events) || []) {
    const p = e.name === 'channel_occupied' && plans.get(e.channel);
    if (p) {
      if (p.fails > 0) {
        p.fails -= 1;
        return { status: 500, holdMs: 0 };
      }
      return { status: 200, holdMs: p.holdMs || 0 };
    }
  }
  return { status: 200, holdMs: 0 };
}

function startReceiver() {
  server = http.createServer((req, res) => {
    const at = nowMs();
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let json;
      try { json = JSON.parse(raw); } catch { json = undefined; }
      const { status, holdMs } = plan(json);
      hooks.push({ at, method: req.method, url: req.url, headers: req.headers, raw, json, status });
      setTimeout(() => {
        res.writeHead(status, { 'Content-Type': 'text/plain' });
        res.end(status === 200 ? 'ok' : 'try again');
      }, holdMs);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

// Every event received, with its webhook: [{hook, ev}], in arrival order.
function events(pred = () => true) {
  const out = [];
  for (const hook of hooks) {
    for (const ev of (hook.json && Array.isArray(hook.json.events)) ? hook.json.events : []) {
      if (pred(ev, hook)) out.push({ hook, ev });
    }
  }
  return out;
}

const onChannel = (channel) => events((e) => e.channel === channel);

function count(channel, name, userId) {
  return onChannel(channel).filter(({ ev }) => ev.name === name &&
    (userId === undefined || ev.user_id === userId)).length;
}

function dump(channel) {
  return JSON.stringify(onChannel(channel).map(({ ev }) => ev));
}

async function waitEvent(channel, name, userId, timeoutMs = 10000) {
  await L.waitFor(() => count(channel, name, userId) > 0, { timeoutMs, intervalMs: 25,
    what: `${name}${userId ? ' ' + userId : ''} webhook for ${channel}; got ${dump(channel)}` });
  return onChannel(channel).find(({ ev }) => ev.name === name &&
    (userId === undefined || ev.user_id === userId));
}

/* ------------------------------------------------------------------ misc */

async function client(a, opts) {
  const c = await R.client(a, opts);
  open.push(c);
  return c;
}

async function channelInfo(a, ch, info = 'subscription_count') {
  const r = await L.api(a).get(`/channels/${encodeURIComponent(ch)}`, { info });
  L.assertOk(r);
  return r.json;
}

const sign = (secret, raw) => crypto.createHmac('sha256', secret).update(raw).digest('hex');

function queued(a, extra = '') {
  return Number(L.sqlValue(`SELECT COUNT(*) FROM webhooks WHERE app_id = ${L.sqlQuote(a.id)}${extra}`));
}

// Sample the `webhooks` rows of some apps as fast as one MariaDB connection
// answers (rows of an app without a URL would live only until sockudo-pushd
// claims them, a few ms): stop() → the highest count seen per app id.
function sampler(appIds) {
  const socket = process.env.MARIADB_SOCKET;
  const args = ['--no-defaults', '--default-character-set=utf8mb4', '-u', 'root', '-N', '-B', '-r', '-n',
    process.env.SOCKUDO_DB_NAME || 'sockudo'];
  if (socket) args.splice(1, 0, `--socket=${socket}`);
  const p = spawn('mariadb', args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const cols = appIds.map((id) => `COALESCE(SUM(app_id = ${L.sqlQuote(id)}), 0)`).join(', ');
  const query = `SELECT ${cols}, 1 FROM webhooks WHERE app_id IN (${appIds.map(L.sqlQuote).join(', ')});\n`;
  const max = appIds.map(() => 0);
  let samples = 0; let buf = ''; let stopping = false;
  const exited = new Promise((resolve) => p.on('exit', resolve));
  p.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i); buf = buf.slice(i + 1);
      const v = line.split('\t').map(Number);
      v.slice(0, appIds.length).forEach((n, k) => { if (n > max[k]) max[k] = n; });
      samples += 1;
      if (!stopping) setTimeout(() => { if (!stopping) p.stdin.write(query); }, 1);
    }
  });
  p.stdin.write(query);
  const limit = setTimeout(() => { stopping = true; p.stdin.end(); }, 30000);	// never outlives a failed test long
  samplers.push(p);
  return {
    samples: () => samples,
    async stop() {
      stopping = true;
      clearTimeout(limit);
      p.stdin.end();
      await exited;
      return { samples, max: Object.fromEntries(appIds.map((id, k) => [id, max[k]])) };
    },
  };
}

/* ----------------------------------------------------------------- setup */

before(async () => {
  const port = await startReceiver();
  app = L.createApp('wh');
  quiet = L.createApp('wh-none');
  hookPath = `/hooks/${app.id}?via=sockudo`;
  L.appSet(app.id, 'webhook_url', `http://127.0.0.1:${port}${hookPath}`);
  // Until the URL is in effect in the pool (app_cache_ttl): a first webhook
  // from a throwaway channel (this app has seen no request yet, so at once).
  const c = await client(app);
  const deadline = Date.now() + 12000;
  for (;;) {
    const probe = L.uniq('probe');
    await R.subscribe(c, probe);
    const got = await L.waitFor(() => count(probe, 'channel_occupied') > 0,
      { timeoutMs: 1500, intervalMs: 25, what: 'probe' }).catch(() => false);
    c.unsubscribe(probe);
    if (got) break;
    if (Date.now() > deadline) throw new Error('no webhook arrived within 12 s: is sockudo-pushd running?');
  }
  c.disconnect();
});

after(async () => {
  R.closeAll(...open);
  for (const p of samplers) if (p.exitCode === null) p.kill();
  // what is still queued for this app is dropped (no URL) instead of retried at a closed port
  if (app) L.appSet(app.id, 'webhook_url', '');
  await L.sleep(300);
  if (server) await new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); });
});

/* ----------------------------------------------------------------- tests */

describe('webhooks', () => {
  it('the receiver records what it gets: the probe webhook of setup', () => {
    assert.ok(hooks.length >= 1);
    const h = hooks[0];
    assert.equal(h.method, 'POST');
    assert.equal(h.url, hookPath, 'the URL was not used as set');
    assert.ok(h.json && Array.isArray(h.json.events), `not Pusher's body: ${h.raw}`);
  });

  it('channel_occupied / channel_vacated once per channel, signed by the app secret', async () => {
    const a = L.uniq('occ');
    const b = L.uniq('occ-b');
    const c1 = await client(app);
    const c2 = await client(app, { instance: 1 });

    await R.subscribe(c1, a);
    const { hook, ev } = await waitEvent(a, 'channel_occupied');
    await R.subscribe(c2, a);
    c1.unsubscribe(a);				// c2 still there: not vacated
    await L.waitFor(async () => (await channelInfo(app, a)).subscription_count === 1,
      { timeoutMs: 5000, what: 'c1 left' });
    c2.disconnect();				// the last one: vacated
    await waitEvent(a, 'channel_vacated');

    await R.subscribe(c1, b);			// one socket comes and unsubscribes
    await waitEvent(b, 'channel_occupied');
    c1.unsubscribe(b);
    const vb = await waitEvent(b, 'channel_vacated');
    await L.sleep(1000);			// anything extra would have come by now

    assert.equal(count(a, 'channel_occupied'), 1, dump(a));
    assert.equal(count(a, 'channel_vacated'), 1, dump(a));
    assert.equal(onChannel(a).length, 2, dump(a));
    assert.equal(count(b, 'channel_occupied'), 1, dump(b));
    assert.equal(count(b, 'channel_vacated'), 1, dump(b));
    assert.deepEqual(ev, { name: 'channel_occupied', channel: a });
    assert.deepEqual(vb.ev, { name: 'channel_vacated', channel: b });
    const va = onChannel(a).find(({ ev: e }) => e.name === 'channel_vacated');
    assert.ok(va.hook.json.time_ms >= hook.json.time_ms, 'vacated is not later than occupied');

    for (const h of [hook, va.hook, vb.hook]) {
      assert.equal(h.method, 'POST');
      assert.equal(h.url, hookPath);
      assert.match(String(h.headers['content-type']), /^application\/json\b/);
      assert.equal(h.headers['x-pusher-key'], app.key);
      const sig = h.headers['x-pusher-signature'];
      assert.match(String(sig), /^[0-9a-f]{64}$/, 'X-Pusher-Signature: lower-case hex SHA-256');
      assert.equal(sig, sign(app.secret, h.raw), `signature of ${h.raw}`);
      assert.notEqual(sig, sign(`${app.secret}x`, h.raw));
      assert.notEqual(sig, sign(quiet.secret, h.raw));
      assert.equal(typeof h.json.time_ms, 'number');
      assert.ok(Number.isInteger(h.json.time_ms));
      assert.ok(Math.abs(h.json.time_ms - Date.now()) < 60000, `time_ms ${h.json.time_ms}`);
      assert.equal(Object.keys(h.json).sort().join(','), 'events,time_ms');
    }
  });

  it('presence: member_added / member_removed once per user, not per socket', async () => {
    const ch = `presence-${L.uniq('room')}`;
    const u1a = await client(app, { user: { user_id: 'u1', user_info: { n: 'a' } } });
    const u1b = await client(app, { user: { user_id: 'u1', user_info: { n: 'a' } }, instance: 1 });
    const u2 = await client(app, { user: { user_id: 'u2' } });

    await R.subscribe(u1a, ch);
    const first = await waitEvent(ch, 'member_added', 'u1');
    await R.subscribe(u1b, ch);		// u1's second socket: no event
    await R.subscribe(u2, ch);
    await waitEvent(ch, 'member_added', 'u2');
    await L.sleep(1000);
    assert.equal(count(ch, 'member_added', 'u1'), 1, dump(ch));
    assert.equal(count(ch, 'member_added', 'u2'), 1, dump(ch));
    assert.equal(count(ch, 'member_added'), 2, dump(ch));
    assert.equal(count(ch, 'channel_occupied'), 1, dump(ch));
    assert.equal(count(ch, 'member_removed'), 0, dump(ch));
    assert.deepEqual(first.ev, { name: 'member_added', channel: ch, user_id: 'u1' });
    // the first join: occupied and member_added in one webhook, occupied first
    assert.deepEqual(first.hook.json.events.map((e) => e.name), ['channel_occupied', 'member_added']);
    assert.equal(first.hook.headers['x-pusher-signature'], sign(app.secret, first.hook.raw));

    u1a.disconnect();			// u1 still has u1b
    await L.waitFor(async () => (await channelInfo(app, ch)).subscription_count === 2,
      { timeoutMs: 5000, what: 'u1a gone' });
    await L.sleep(1000);
    assert.equal(count(ch, 'member_removed'), 0, `u1 still has a socket: ${dump(ch)}`);

    u1b.disconnect();			// u1's last socket
    const removed = await waitEvent(ch, 'member_removed', 'u1');
    assert.deepEqual(removed.ev, { name: 'member_removed', channel: ch, user_id: 'u1' });
    u2.disconnect();
    await waitEvent(ch, 'member_removed', 'u2');
    await waitEvent(ch, 'channel_vacated');
    await L.sleep(1000);
    assert.equal(count(ch, 'member_removed', 'u1'), 1, dump(ch));
    assert.equal(count(ch, 'member_removed', 'u2'), 1, dump(ch));
    assert.equal(count(ch, 'member_added'), 2, dump(ch));
    assert.equal(count(ch, 'channel_vacated'), 1, dump(ch));
    assert.equal(count(ch, 'channel_occupied'), 1, dump(ch));
    const r2 = onChannel(ch).find(({ ev }) => ev.name === 'member_removed' && ev.user_id === 'u2');
    const vac = onChannel(ch).find(({ ev }) => ev.name === 'channel_vacated');
    assert.ok(vac.hook.json.time_ms >= r2.hook.json.time_ms, 'vacated before the last member left');
    assert.equal(vac.ev.user_id, undefined, 'channel_vacated names no user');
  });

  it('client_event: channel, event, data as JSON text, the sender\'s socket_id', async () => {
    const ch = `private-${L.uniq('ce')}`;
    const a = await client(app);
    const b = await client(app, { instance: 1 });
    const { ch: ca } = await R.subscribe(a, ch);
    const { ch: cb } = await R.subscribe(b, ch);
    const atB = R.next(cb, 'client-hello');
    const data = { x: 1, s: 'é"\\ </ok>' };
    assert.equal(ca.trigger('client-hello', data), true);
    assert.deepEqual(await atB, data, 'the other subscriber got the client event');
    const { hook, ev } = await waitEvent(ch, 'client_event');
    assert.equal(ev.channel, ch);
    assert.equal(ev.event, 'client-hello');
    assert.equal(typeof ev.data, 'string', 'data is the JSON text, not an object');
    assert.deepEqual(JSON.parse(ev.data), data);
    assert.equal(ev.socket_id, a.socketId);
    assert.equal(ev.user_id, undefined, 'a private channel has no user_id');
    assert.equal(hook.headers['x-pusher-key'], app.key);
    assert.equal(hook.headers['x-pusher-signature'], sign(app.secret, hook.raw));
    await L.sleep(500);
    assert.equal(count(ch, 'client_event'), 1, dump(ch));
  });

  it('client_event on a presence channel carries the sender\'s user_id', async () => {
    const ch = `presence-${L.uniq('cep')}`;
    const a = await client(app, { user: { user_id: 'talker' } });
    const b = await client(app, { user: { user_id: 'listener' }, instance: 1 });
    const { ch: ca } = await R.subscribe(a, ch);
    await R.subscribe(b, ch);
    ca.trigger('client-said', 'plain text');
    const { ev } = await waitEvent(ch, 'client_event');
    assert.equal(ev.event, 'client-said');
    assert.equal(ev.data, 'plain text');
    assert.equal(ev.socket_id, a.socketId);
    assert.equal(ev.user_id, 'talker');
  });

  it('a failed delivery (HTTP 500) is retried with growing gaps; delivered, its row is gone', async (t) => {
    const ch = L.uniq('retry');
    plans.set(ch, { fails: 2, holdMs: 800 });
    const c = await client(app);
    await R.subscribe(c, ch);
    const mine = () => hooks.filter((h) => h.json && h.json.events.some((e) => e.channel === ch && e.name === 'channel_occupied'));
    await L.waitFor(() => mine().length >= 3, { timeoutMs: 15000, intervalMs: 10, what: `3 deliveries of ${ch}` });
    // the third is being answered (held 800 ms): its row is still there, with its history
    const row = L.sql(`SELECT attempts, last_error FROM webhooks WHERE app_id = ${L.sqlQuote(app.id)} AND body LIKE ${L.sqlQuote(`%"${ch}"%`)}`);
    assert.deepEqual(row, [['2', 'HTTP 500']], 'the queued row during the third attempt');
    await L.waitFor(() => queued(app, ` AND body LIKE ${L.sqlQuote(`%"${ch}"%`)}`) === 0,
      { timeoutMs: 5000, what: 'the row deleted after delivery' });
    c.disconnect();
    await waitEvent(ch, 'channel_vacated');
    await L.sleep(500);

    const d = mine();
    assert.equal(d.length, 3, 'delivered after the third attempt, not again');
    assert.deepEqual(d.map((h) => h.status), [500, 500, 200]);
    assert.equal(d[1].raw, d[0].raw, 'a retry sends the same body');
    assert.equal(d[2].raw, d[0].raw, 'a retry sends the same body');
    for (const h of d) assert.equal(h.headers['x-pusher-signature'], sign(app.secret, h.raw));
    const g1 = d[1].at - d[0].at; const g2 = d[2].at - d[1].at;
    t.diagnostic(`retries after ${g1.toFixed(0)} ms and ${g2.toFixed(0)} ms`);
    assert.ok(g1 >= 190, `first retry after ${g1.toFixed(0)} ms; the base is 200 ms`);
    assert.ok(g2 >= 390, `second retry after ${g2.toFixed(0)} ms; 2 × 200 ms expected`);
    assert.ok(g2 > g1, `the backoff grows: ${g1.toFixed(0)} ms, then ${g2.toFixed(0)} ms`);
    assert.ok(g1 < 5000 && g2 < 5000, `gaps ${g1.toFixed(0)}, ${g2.toFixed(0)} ms`);
    assert.equal(count(ch, 'channel_vacated'), 1, dump(ch));
  });

  it('a receiver that answers slowly holds up no other webhook', async (t) => {
    const slow = L.uniq('slow'); const other = L.uniq('other');
    plans.set(slow, { fails: 0, holdMs: 3000 });
    const a = await client(app);
    await R.subscribe(a, slow);
    await L.waitFor(() => count(slow, 'channel_occupied') === 1, { timeoutMs: 5000, what: 'the slow one sent' });
    const b = await client(app);
    const subscribed = nowMs();
    await R.subscribe(b, other);
    await waitEvent(other, 'channel_occupied');
    const took = onChannel(other)[0].hook.at - subscribed;
    t.diagnostic(`another channel's webhook arrived ${took.toFixed(0)} ms after its subscribe`);
    assert.ok(took < 1500, `${took.toFixed(0)} ms: waited for the slow receiver (3 s)`);
    a.disconnect(); b.disconnect();
    await waitEvent(slow, 'channel_vacated');
  });

  it('an app without webhook_url queues nothing', async (t) => {
    // a sampler that sees rows of `app` (a held delivery) proves it can see rows at all
    const ctl = L.uniq('ctl');
    plans.set(ctl, { fails: 0, holdMs: 700 });
    const s = sampler([quiet.id, app.id]);
    const c = await client(quiet);
    const d = await client(quiet, { instance: 1, user: { user_id: 'q2' } });
    const e = await client(quiet, { user: { user_id: 'q1' } });
    const pub = L.uniq('quiet');
    const priv = `private-${L.uniq('quiet')}`;
    const pres = `presence-${L.uniq('quiet')}`;
    await R.subscribe(c, pub);
    const { ch: pc } = await R.subscribe(c, priv);
    const { ch: dc } = await R.subscribe(d, priv);
    await R.subscribe(d, pres);
    await R.subscribe(e, pres);
    const got = R.next(dc, 'client-q');
    pc.trigger('client-q', { q: 1 });
    assert.deepEqual(await got, { q: 1 }, 'the client event was delivered');
    c.unsubscribe(pub);
    c.disconnect(); d.disconnect(); e.disconnect();
    await L.waitFor(async () => (await channelInfo(quiet, pres)).occupied === false &&
      (await channelInfo(quiet, priv)).occupied === false, { timeoutMs: 5000, what: 'quiet channels vacated' });

    const cc = await client(app);
    await R.subscribe(cc, ctl);
    await waitEvent(ctl, 'channel_occupied');
    cc.disconnect();
    await waitEvent(ctl, 'channel_vacated');
    await L.sleep(300);
    const seen = await s.stop();
    t.diagnostic(`${seen.samples} samples of the webhooks table; most rows seen: ${JSON.stringify(seen.max)}`);
    assert.ok(seen.samples > 20, `only ${seen.samples} samples`);
    assert.ok(seen.max[app.id] >= 1, 'the sampler never saw a queued row of the app with a URL');
    assert.equal(seen.max[quiet.id], 0, 'rows were queued for the app without webhook_url');
    assert.equal(queued(quiet), 0);
    assert.equal(events((ev) => [pub, priv, pres].includes(ev.channel)).length, 0);
  });
});
