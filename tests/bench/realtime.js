// realtime.js: publish→receive latency and deliveries per second of the
// realtime layer (issue 5), run by tests/bench/run (BENCH_ONLY=realtime).
//
// Unmodified pusher-js clients connect through Pushpin (every instance of
// SOCKUDO_WS_URLS, alternating), subscribe to public channels of a fresh
// app, and time the events that signed POST /apps/{id}/events (the npm
// `pusher` SDK's trigger(), over a keep-alive agent) publish at a steady
// rate.  Each event carries its sequence number and send time; every
// subscriber records when it received it.
//
//   A "rt-1ch":   REALTIME_SUBSCRIBERS (1000) sockets on one channel.
//   B "rt-100ch": REALTIME_CHANNELS (100) channels of REALTIME_PER_CHANNEL
//                 (100) subscribers each, REALTIME_SUBS_PER_SOCKET (10)
//                 subscriptions per socket (so 1,000 sockets), the
//                 publishes round-robin over the channels.
//
// Both at REALTIME_RATE (100) publishes/s for REALTIME_SECONDS (10).
// Before timing, one probe event per channel must reach every subscriber
// (Pushpin registers subscriptions asynchronously); subscribers it missed
// are reported.  Clients, Pushpin and the server share the machine's CPUs:
// the client's own CPU use and event-loop delay are reported with the
// figures, as a saturated client inflates the latency it measures.
//
// Output: progress on stderr; on stdout one line per scenario,
//   RT name=... key=value ...
// (parsed by tests/bench/run) and a readable table.
//
// Environment: the stack's (run/env: SOCKUDO_URL, SOCKUDO_CONF,
// SOCKUDO_BIN, SOCKUDO_WS_URLS); NODE_PATH with tests/integration's
// node_modules.  REALTIME_SCENARIOS ("A B"), REALTIME_SUBSCRIBERS,
// REALTIME_CHANNELS, REALTIME_PER_CHANNEL, REALTIME_SUBS_PER_SOCKET,
// REALTIME_RATE, REALTIME_SECONDS, REALTIME_BATCH (50: sockets connected
// and subscribed at once), REALTIME_DRAIN_S (5: how long to wait for
// late deliveries after the last publish), REALTIME_P99_MS (50: target),
// REALTIME_TIMELINE (1: latency by second of publishing, on stderr).
//
// Exit status: 0 when the scenarios ran (missing deliveries and missed
// targets are reported, not fatal); 1 when setup failed (app, connection,
// subscription, no publish accepted).
'use strict';

const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');
const { performance, monitorEventLoopDelay } = require('node:perf_hooks');

const integ = path.join(__dirname, '..', 'integration');
const L = require(path.join(integ, 'lib'));
const R = require(path.join(integ, 'rt'));

const env = (k, d) => {
  const v = process.env[k];
  return v === undefined || v === '' ? d : v;
};
const num = (k, d) => {
  const v = Number(env(k, d));
  if (!Number.isFinite(v) || v < 0) throw new Error(`${k}: not a number: ${process.env[k]}`);
  return v;
};

const cfg = {
  scenarios: String(env('REALTIME_SCENARIOS', 'A B')).toUpperCase().split(/[\s,]+/).filter(Boolean),
  subscribers: Math.floor(num('REALTIME_SUBSCRIBERS', 1000)),
  channels: Math.floor(num('REALTIME_CHANNELS', 100)),
  perChannel: Math.floor(num('REALTIME_PER_CHANNEL', 100)),
  subsPerSocket: Math.max(1, Math.floor(num('REALTIME_SUBS_PER_SOCKET', 10))),
  rate: num('REALTIME_RATE', 100),
  seconds: num('REALTIME_SECONDS', 10),
  batch: Math.max(1, Math.floor(num('REALTIME_BATCH', 50))),
  drainS: num('REALTIME_DRAIN_S', 5),
  p99Target: num('REALTIME_P99_MS', 50),
  timeline: env('REALTIME_TIMELINE', '0') === '1',
};

const log = (...a) => process.stderr.write(`realtime: ${a.join(' ')}\n`);
const now = () => performance.now();
const sleep = L.sleep;

class SetupError extends Error {}

// Busy and total jiffies of the whole machine (/proc/stat), for its CPU use.
function cpuTimes() {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + (f[4] || 0);
    const total = f.reduce((a, b) => a + b, 0);
    return { busy: total - idle, total };
  } catch {
    return null;
  }
}

// The q-quantile of a sorted Float64Array (nearest rank).
function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

// A failed trigger() in a line: HTTP status and body, or the cause.
function why(e) {
  if (e && e.status) return `HTTP ${e.status}: ${String(e.body || '').slice(0, 200)}`;
  const c = e && e.error;
  return `${(e && e.message) || e}${c ? `: ${c.code || ''} ${c.message || c}` : ''}`;
}

const fx = (v, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '-');

/* ----------------------------------------------------------- the scenario */

// A scenario: `sockets` lists, per socket, the channel indexes it
// subscribes to; `channels` the channel names.  Subscription ids number
// (socket, channel) pairs in order.
function layout(name, channelNames, socketChannels, note) {
  const subs = [];	// subscription id -> channel index
  const subSocket = [];	// subscription id -> socket
  const ids = [];	// socket -> [subscription id per channel of it]
  socketChannels.forEach((chans, k) => {
    ids.push(chans.map((c) => {
      subs.push(c);
      subSocket.push(k);
      return subs.length - 1;
    }));
  });
  const perChan = channelNames.map(() => 0);
  for (const c of subs) perChan[c] += 1;
  return { name, channelNames, socketChannels, ids, subs, subSocket, perChan, note };
}

function scenarioA(tag) {
  const n = cfg.subscribers;
  return layout('rt-1ch', [`bench-rt-a-${tag}`], Array.from({ length: n }, () => [0]),
    `${n} sockets on 1 channel`);
}

function scenarioB(tag) {
  const C = cfg.channels, P = cfg.perChannel, K = Math.min(cfg.subsPerSocket, C);
  const names = Array.from({ length: C }, (_, i) => `bench-rt-b-${tag}-${i}`);
  // subscription s goes to channel s % C on socket floor(s / K): every
  // channel gets P subscribers, a socket K distinct channels (K <= C)
  const sockets = [];
  for (let s = 0; s < C * P; s++) {
    const k = Math.floor(s / K);
    if (!sockets[k]) sockets[k] = [];
    sockets[k].push(s % C);
  }
  return layout('rt-100ch', names, sockets,
    `${C} channels x ${P} subscribers = ${C * P} subscriptions on ${sockets.length} sockets (${K} channels each)`);
}

// Connect and subscribe every socket of scenario sc, REALTIME_BATCH at a
// time, alternating over the Pushpin instances.  Sets up the per-
// subscription receive handlers that write into rec.
async function setUp(app, sc, rec, clients) {
  const nInst = R.wsUrls().length;
  const t0 = now();
  const errors = [];
  let reconnects = 0;
  for (let b = 0; b < sc.socketChannels.length; b += cfg.batch) {
    const part = [];
    for (let k = b; k < Math.min(b + cfg.batch, sc.socketChannels.length); k++) {
      part.push((async () => {
        const c = await R.client(app, { instance: k % nInst });
        clients[k] = c;
        c.connection.bind('state_change', (st) => {
          if (st.current !== 'connected') rec.stateChanges += 1;
        });
        c.connection.bind('connected', () => { reconnects += 1; });
        await Promise.all(sc.socketChannels[k].map(async (ci, j) => {
          const sid = sc.ids[k][j];
          const { ch } = await R.subscribe(c, sc.channelNames[ci], 15000);
          ch.bind('probe', () => { rec.probe[sid] = 1; });
          ch.bind('bench', (d) => rec.deliver(sid, d));
        }));
      })().catch((e) => errors.push(`socket ${k}: ${e.message}`)));
    }
    await Promise.all(part);
    if (errors.length) {
      throw new SetupError(`${errors.length} sockets failed to connect or subscribe; first: ${errors[0]}`);
    }
  }
  rec.reconnectsBase = reconnects;
  rec.reconnects = () => reconnects - rec.reconnectsBase;
  return (now() - t0) / 1000;
}

// The per-subscription records of one run.  Publish s goes to channel
// s % C (round-robin), so a subscription of channel c expects publishes
// c, c + C, c + 2C, ...: its k-th is s = k*C + c, and seen[] holds one
// flag per (subscription, k).  A delivery of a publish to another
// channel is counted as stray.
function recorder(sc, npubs) {
  const nsubs = sc.subs.length, C = sc.channelNames.length;
  const perSub = Math.ceil(npubs / C);
  let most = 0;	// deliveries if nothing is lost
  for (let s = 0; s < npubs; s++) most += sc.perChan[s % C];
  const rec = {
    perSub,
    probe: new Uint8Array(nsubs),
    seen: new Uint8Array(nsubs * perSub),
    lat: new Float64Array(most),
    seq: new Int32Array(most),
    sid: new Int32Array(most),
    lastSeq: new Int32Array(nsubs).fill(-1),
    n: 0, dup: 0, reordered: 0, stray: 0, stateChanges: 0,
    firstSend: Infinity, lastRecv: 0,
    deliver(sid, d) {
      const t = now();
      const s = d && d.s;
      if (!Number.isInteger(s) || s < 0 || s >= npubs || typeof d.t !== 'number' ||
          s % C !== sc.subs[sid]) {
        this.stray += 1;
        return;
      }
      const i = sid * perSub + Math.floor(s / C);
      if (this.seen[i]) {
        this.dup += 1;
        return;
      }
      this.seen[i] = 1;
      if (s < this.lastSeq[sid]) this.reordered += 1;
      else this.lastSeq[sid] = s;
      this.seq[this.n] = s;
      this.sid[this.n] = sid;
      this.lat[this.n++] = t - d.t;
      if (t > this.lastRecv) this.lastRecv = t;
    },
  };
  return rec;
}

// Publish npubs events at cfg.rate/s, round-robin over the channels, with
// each publish's send time; resolves when every request has answered.
async function publish(pusher, sc, npubs, rec, pubStats) {
  const interval = 1000 / cfg.rate;
  const inflight = [];
  const t0 = now() + 20;
  for (let i = 0; i < npubs; i++) {
    const due = t0 + i * interval;
    const wait = due - now();
    if (wait > 1) await sleep(wait);
    const ch = sc.channelNames[i % sc.channelNames.length];
    const sent = now();
    if (i === 0) rec.firstSend = sent;
    pubStats.lag.push(sent - due);
    inflight.push(pusher.trigger(ch, 'bench', { s: i, t: sent }).then((r) => {
      pubStats.ms.push(now() - sent);
      if (r.status >= 200 && r.status < 300) pubStats.ok.push(i);
      else pubStats.fail.push(`publish ${i}: HTTP ${r.status}`);
    }, (e) => {
      pubStats.ms.push(now() - sent);
      pubStats.fail.push(`publish ${i}: ${why(e)}`);
    }));
  }
  pubStats.lastSend = now();
  await Promise.all(inflight);
  pubStats.end = now();
}

// One probe event per channel; wait until every subscription has it.
// A connection-level failure (no HTTP status) is tried again, twice.
async function probe(pusher, sc, rec) {
  const t0 = now();
  await Promise.all(sc.channelNames.map(async (ch) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await pusher.trigger(ch, 'probe', { p: 1 });
      } catch (e) {
        if (e.status || attempt === 3) throw new SetupError(`probe publish to ${ch} failed: ${why(e)}`);
        log(`${sc.name}: probe publish to ${ch}: ${why(e)}; again`);
        await sleep(200);
      }
    }
  }));
  let missing = rec.probe.length;
  while (now() - t0 < 10000) {
    missing = rec.probe.length - rec.probe.reduce((a, b) => a + b, 0);
    if (missing === 0) break;
    await sleep(50);
  }
  return { missing, ms: now() - t0 };
}

async function closeClients(clients) {
  const live = clients.filter(Boolean);
  for (const c of live) c.disconnect();
  const end = Date.now() + 3000;
  while (Date.now() < end && live.some((c) => c.connection.state !== 'disconnected')) await sleep(50);
  clients.length = 0;
}

async function runScenario(app, sc) {
  // A keep-alive agent of its own, so that no connection left idle by
  // the last scenario is reused; timeout: an idle connection is dropped
  // after 4 s, before the web server's keep-alive timeout (lighttpd: 5 s,
  // not announced in a Keep-Alive header) closes it under a request
  // being sent on it (ECONNRESET).  It does not end a request waiting for
  // its answer (the SDK's own timeout, 30 s, does).
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64, timeout: 4000 });
  const pusher = R.server(app, { agent, timeout: 30000 });
  const npubs = Math.max(1, Math.round(cfg.rate * cfg.seconds));
  const rec = recorder(sc, npubs);
  const clients = [];
  try {
    log(`${sc.name}: ${sc.note}: connecting and subscribing, ${cfg.batch} sockets at a time ...`);
    const setupS = await setUp(app, sc, rec, clients);
    log(`${sc.name}: ${sc.socketChannels.length} sockets, ${sc.subs.length} subscriptions in ${fx(setupS, 1)} s`);
    await sleep(1000);
    const pr = await probe(pusher, sc, rec);
    if (pr.missing) log(`${sc.name}: WARNING: ${pr.missing} of ${sc.subs.length} subscriptions did not receive the probe event within 10 s`);
    else log(`${sc.name}: probe reached every subscription in ${fx(pr.ms, 0)} ms`);

    log(`${sc.name}: publishing ${npubs} events at ${cfg.rate}/s over ${sc.channelNames.length} channel(s) ...`);
    const pubStats = { ok: [], fail: [], ms: [], lag: [], lastSend: 0, end: 0 };
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const cpu0 = process.cpuUsage(), m0 = cpuTimes(), w0 = now();
    await publish(pusher, sc, npubs, rec, pubStats);
    // the load figures cover the publishing (drain waits would dilute them)
    const wall = (now() - w0) / 1000;
    const cpu = process.cpuUsage(cpu0), m1 = cpuTimes();
    loop.disable();
    if (pubStats.ok.length === 0) {
      throw new SetupError(`no publish accepted; first failure: ${pubStats.fail[0]}`);
    }
    // only accepted publishes are expected; one that failed (an HTTP error,
    // or no answer in time) may have been delivered all the same
    const okSet = new Uint8Array(npubs);
    for (const i of pubStats.ok) okSet[i] = 1;
    let expected = 0;
    for (const i of pubStats.ok) expected += sc.perChan[i % sc.channelNames.length];
    const deliveredOk = () => {
      let n = 0;
      for (let i = 0; i < rec.n; i++) n += okSet[rec.seq[i]];
      return n;
    };
    // late deliveries: until all arrived, or REALTIME_DRAIN_S after the last answer
    const drainEnd = now() + cfg.drainS * 1000;
    while (now() < drainEnd && (rec.n < expected || deliveredOk() < expected)) await sleep(20);
    const okDelivered = deliveredOk();

    if (cfg.timeline) timeline(sc, rec, npubs);
    const lat = rec.lat.subarray(0, rec.n).sort();
    const pms = Float64Array.from(pubStats.ms).sort();
    const window = (rec.lastRecv - rec.firstSend) / 1000;
    const pubSpan = (pubStats.lastSend - rec.firstSend) / 1000;
    const res = {
      name: sc.name,
      sockets: sc.socketChannels.length,
      channels: sc.channelNames.length,
      subs: sc.subs.length,
      setup_s: fx(setupS, 1),
      probe_missing: pr.missing,
      rate: cfg.rate,
      secs: cfg.seconds,
      pubs: npubs,
      pub_ok: pubStats.ok.length,
      pub_fail: pubStats.fail.length,
      pub_rate: fx(npubs > 1 && pubSpan > 0 ? (npubs - 1) / pubSpan : npubs, 1),
      pub_p50_ms: fx(quantile(pms, 0.5)),
      pub_p99_ms: fx(quantile(pms, 0.99)),
      send_lag_max_ms: fx(pubStats.lag.reduce((a, b) => Math.max(a, b), 0)),
      expected,
      delivered: okDelivered,
      missing: expected - okDelivered,
      delivered_failed_pubs: rec.n - okDelivered,
      dup: rec.dup,
      reordered: rec.reordered,
      stray: rec.stray,
      p50_ms: fx(quantile(lat, 0.5)),
      p99_ms: fx(quantile(lat, 0.99)),
      max_ms: fx(lat.length ? lat[lat.length - 1] : NaN),
      dps: fx(window > 0 ? rec.n / window : 0, 0),
      client_cpu_pct: fx((cpu.user + cpu.system) / 1e4 / wall, 0),
      loop_p99_ms: fx(loop.percentile(99) / 1e6),
      machine_cpu_pct: m0 && m1 && m1.total > m0.total ? fx(100 * (m1.busy - m0.busy) / (m1.total - m0.total), 0) : '-',
      state_changes: rec.stateChanges,
      reconnects: rec.reconnects(),
      p99_target_ms: cfg.p99Target,
    };
    // the same per Pushpin instance (socket k went to instance k % n)
    const nInst = R.wsUrls().length;
    const okPerChan = sc.channelNames.map(() => 0);
    for (const i of pubStats.ok) okPerChan[i % sc.channelNames.length] += 1;
    for (let inst = 0; inst < nInst; inst++) {
      let exp = 0;
      for (let sid = 0; sid < sc.subs.length; sid++) {
        if (sc.subSocket[sid] % nInst === inst) exp += okPerChan[sc.subs[sid]];
      }
      const l = [];
      let got = 0;
      for (let i = 0; i < rec.n; i++) {
        if (sc.subSocket[rec.sid[i]] % nInst === inst) {
          l.push(rec.lat[i]);
          got += okSet[rec.seq[i]];
        }
      }
      const sl = Float64Array.from(l).sort();
      res[`i${inst}_missing`] = exp - got;
      res[`i${inst}_p50_ms`] = fx(quantile(sl, 0.5));
      res[`i${inst}_p99_ms`] = fx(quantile(sl, 0.99));
    }
    if (pubStats.fail.length) log(`${sc.name}: ${pubStats.fail.length} publishes failed; first: ${pubStats.fail[0]}`);
    if (res.missing) {
      // which publishes lost deliveries, and how many subscriptions lost any
      const C = sc.channelNames.length;
      const lostByPub = new Uint8Array(npubs);
      let lostSubs = 0;
      for (let sid = 0; sid < sc.subs.length; sid++) {
        let lost = 0;
        for (let k = 0; k < rec.perSub; k++) {
          const p = k * C + sc.subs[sid];
          if (p < npubs && okSet[p] && !rec.seen[sid * rec.perSub + k]) {
            lostByPub[p] = 1;
            lost += 1;
          }
        }
        if (lost) lostSubs += 1;
      }
      const lostPubs = lostByPub.reduce((a, b) => a + b, 0);
      res.missing_pubs = lostPubs;
      res.missing_subs = lostSubs;
      log(`${sc.name}: ${res.missing} deliveries missing: ${lostPubs} publishes lost some, ${lostSubs} subscriptions lost some`);
    }
    return res;
  } finally {
    log(`${sc.name}: disconnecting ${clients.filter(Boolean).length} sockets ...`);
    await closeClients(clients);
    agent.destroy();
  }
}

// REALTIME_TIMELINE=1: latency by second of publishing, to tell a queue
// that grows (throughput short of the rate) from scattered stalls.
function timeline(sc, rec, npubs) {
  const per = Math.max(1, Math.round(cfg.rate));
  const buckets = [];
  for (let i = 0; i < rec.n; i++) {
    const b = Math.floor(rec.seq[i] / per);
    (buckets[b] || (buckets[b] = [])).push(rec.lat[i]);
  }
  buckets.forEach((a, b) => {
    const s = Float64Array.from(a).sort();
    log(`${sc.name}: second ${b}: ${s.length} deliveries, p50 ${fx(quantile(s, 0.5))} ms, p99 ${fx(quantile(s, 0.99))} ms, max ${fx(s[s.length - 1])} ms`);
  });
}

function table(results) {
  const out = [];
  out.push(`realtime: pusher-js via ${R.wsUrls().length} Pushpin instance(s), ${cfg.rate} publishes/s for ${cfg.seconds} s`);
  out.push(`${'name'.padEnd(17)} ${'subs'.padStart(6)} ${'deliv/s'.padStart(9)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'max ms'.padStart(8)} ${'missing'.padStart(8)}  targets`);
  for (const r of results) {
    const target = r.name === 'rt-1ch' ?
      `p99<=${r.p99_target_ms}ms ${Number(r.p99_ms) <= r.p99_target_ms ? 'PASS' : 'MISS'}` : '';
    out.push(`${r.name.padEnd(17)} ${String(r.subs).padStart(6)} ${String(r.dps).padStart(9)} ${String(r.p50_ms).padStart(8)} ${String(r.p99_ms).padStart(8)} ${String(r.max_ms).padStart(8)} ${String(r.missing).padStart(8)}  ${target}`);
  }
  return out.join('\n');
}

async function main() {
  const app = L.createApp('bench-rt');
  L.appSet(app.id, 'max_publish_rps', 1000000);
  L.appSet(app.id, 'max_read_rps', 1000000);
  const tag = `${process.pid}`;
  const results = [];
  for (const s of cfg.scenarios) {
    let sc;
    if (s === 'A') sc = scenarioA(tag);
    else if (s === 'B') sc = scenarioB(tag);
    else throw new SetupError(`REALTIME_SCENARIOS: unknown scenario ${s} (A, B)`);
    if (sc.subs.length === 0) continue;
    const r = await runScenario(app, sc);
    r.note = sc.note;
    results.push(r);
    const kv = Object.entries(r).filter(([k]) => k !== 'note').map(([k, v]) => `${k}=${v}`).join(' ');
    process.stdout.write(`RT ${kv}\n`);
    log(`${sc.name}: ${r.delivered}/${r.expected} delivered (+${r.delivered_failed_pubs} of failed publishes), p50 ${r.p50_ms} ms, p99 ${r.p99_ms} ms, max ${r.max_ms} ms, ${r.dps} deliveries/s; client CPU ${r.client_cpu_pct}%, machine CPU ${r.machine_cpu_pct}%, event-loop p99 ${r.loop_p99_ms} ms`);
  }
  process.stdout.write(`${table(results)}\n`);
  for (const r of results) process.stdout.write(`  ${r.name}: ${r.note}\n`);
}

main().then(() => process.exit(0), (e) => {
  log(`FAILED: ${e instanceof SetupError ? e.message : (e && e.stack) || e}`);
  process.exit(1);
});
