// The process model: private pools (standalone, spawn-fcgi) on the devstack's MariaDB
// and memcached, spoken to directly over FastCGI: drain on SIGTERM, reload on SIGHUP,
// worker restart, -t and migrate.  The shared devstack pool is never touched.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const L = require('./lib');
const F = require('./fcgi_client');

const BIN = process.env.SOCKUDO_BIN || './sockudo-fcgi';
const CONF = process.env.SOCKUDO_CONF;
const app = {
  id: process.env.SOCKUDO_APP_ID, key: process.env.SOCKUDO_APP_KEY,
  secret: process.env.SOCKUDO_APP_SECRET,
};

const tmpDirs = [];
const procs = [];   // every process we started: killed -9 in the after hook if still there

function mkTmp() {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'skpool-'));
  tmpDirs.push(d);
  return d;
}

// A copy of the devstack config with some keys replaced (value null: key dropped).
// extraLines are appended verbatim.
function confText(set = {}, extraLines = []) {
  const drop = new Set(Object.keys(set));
  const lines = fs.readFileSync(CONF, 'utf8').split('\n')
    .filter((l) => { const m = /^\s*([a-z_]+)\s*=/.exec(l); return !(m && drop.has(m[1])); });
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  for (const [k, v] of Object.entries(set)) if (v !== null) lines.push(`${k} = ${v}`);
  return lines.concat(extraLines).join('\n') + '\n';
}

function writeConf(file, set, extraLines) {
  fs.writeFileSync(file, confText(set, extraLines));
  return file;
}

function alive(pid) {
  try { process.kill(pid, 0); } catch { return false; }
  try { return !/\) [ZX] /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; }
}

function children(pid) {
  const r = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' });
  return (r.stdout || '').split('\n').filter(Boolean).map(Number).filter(alive).sort((a, b) => a - b);
}

// Start a process; keeps stderr for diagnostics; .exited resolves {code, signal}.
function startProc(cmd, args) {
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
  p.out = '';
  p.err = '';
  p.stdout.on('data', (d) => { p.out += d; });
  p.stderr.on('data', (d) => { p.err += d; });
  p.exited = new Promise((resolve) => p.on('exit', (code, signal) => resolve({ code, signal })));
  procs.push(p);
  return p;
}

function startPool(conf, extraArgs = []) {
  return startProc(BIN, ['-c', conf, ...extraArgs]);
}

const live = (sock, timeoutMs = 5000) => F.request(sock, { uri: '/live', timeoutMs });

async function waitLive(sock, p) {
  await L.waitFor(async () => {
    if (p && p.exitCode !== null) throw new Error(`pool exited ${p.exitCode}: ${p.err}`);
    const r = await live(sock, 2000);
    return r.status === 200;
  }, { timeoutMs: 10000, intervalMs: 100, what: `GET /live on ${sock}` });
}

function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`timeout after ${ms} ms: ${what}`)), ms); }),
  ]).finally(() => clearTimeout(t));
}

// Signed request pieces for /apps/{id}{sub}.
function signedUri(method, sub, { params = {}, body } = {}) {
  const p = `/apps/${app.id}${sub}`;
  const q = L.encodeQuery(L.signParams({ method, path: p, params, body: body ?? '', key: app.key, secret: app.secret }));
  return `${p}?${q}`;
}

// A background loop of GET /live; stop() returns {ok, bad: [descriptions]}.
function liveLoop(sock, intervalMs = 40) {
  let stop = false;
  const res = { ok: 0, bad: [] };
  const done = (async () => {
    while (!stop) {
      try {
        const r = await live(sock, 5000);
        if (r.status === 200 && r.body.trim() === 'OK') res.ok += 1;
        else res.bad.push(`${r.status} ${r.body}`);
      } catch (e) { res.bad.push(String(e.message || e)); }
      await L.sleep(intervalMs);
    }
  })();
  return { res, stop: async () => { stop = true; await done; return res; } };
}

before(() => {
  assert.ok(CONF && fs.existsSync(CONF), 'SOCKUDO_CONF must name the devstack config');
  assert.ok(app.id && app.key && app.secret, 'SOCKUDO_APP_ID/KEY/SECRET must be set');
});

after(() => {
  for (const p of procs) {
    if (p.exitCode === null && p.signalCode === null) {
      // the supervisor first, so that it cannot restart what we kill next
      const kids = children(p.pid);
      try { p.kill('SIGKILL'); } catch { /* gone */ }
      for (const c of kids) { try { process.kill(c, 'SIGKILL'); } catch { /* gone */ } }
    }
  }
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('standalone pool', () => {
  let dir, conf, sock, pidfile, pool;

  before(async () => {
    dir = mkTmp();
    // the file says something else: the command line must win
    conf = writeConf(path.join(dir, 'tmp.conf'), { listen: `unix:${dir}/other.sock`, pidfile: `${dir}/other.pid`, workers: 3, threads: 4 });
    sock = path.join(dir, 'p.sock');
    pidfile = path.join(dir, 'p.pid');
    pool = startPool(conf, ['--listen', `unix:${sock}`, '--workers', '2', '--threads', '2', '--pidfile', pidfile]);
    await waitLive(sock, pool);
  });

  after(async () => {
    if (pool.exitCode === null) {
      pool.kill('SIGTERM');
      await withTimeout(pool.exited, 8000, 'standalone pool exit').catch(() => pool.kill('SIGKILL'));
    }
  });

  it('GET /live → 200 OK over FastCGI', async () => {
    const r = await live(sock);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.body.trim(), 'OK');
    assert.equal(r.protocolStatus, 0, 'FCGI_REQUEST_COMPLETE');
    assert.ok(!fs.existsSync(path.join(dir, 'other.sock')), 'the config file listen address must be overridden');
  });

  it('the pidfile holds the supervisor pid; exactly 2 workers', async () => {
    assert.equal(fs.readFileSync(pidfile, 'utf8').trim(), String(pool.pid));
    assert.ok(!fs.existsSync(path.join(dir, 'other.pid')));
    // children appear right after start; give a moment for a stray extra one to show up
    await L.sleep(200);
    const kids = children(pool.pid);
    assert.equal(kids.length, 2, `workers: ${kids.join(',')}`);
  });

  it('a signed GET /apps/{id}/channels → 200 JSON', async () => {
    const r = await F.request(sock, { uri: signedUri('GET', '/channels') });
    L.assertOk(r);
    assert.equal(typeof r.json.channels, 'object', r.body);
    assert.match(String(r.headers['content-type']), /application\/json/);
  });

  it('crash: kill -9 a worker → a replacement within 2 s; requests keep succeeding', async () => {
    const before0 = children(pool.pid);
    assert.equal(before0.length, 2);
    const victim = before0[0];
    process.kill(victim, 'SIGKILL');
    const t0 = Date.now();
    // a request that the victim itself had accepted dies with it (nothing can save that);
    // every request from the moment it is gone must be answered by the pool
    await L.waitFor(() => !alive(victim), { timeoutMs: 1000, intervalMs: 5, what: `worker ${victim} to die` });
    const loop = liveLoop(sock, 20);
    const kids = await L.waitFor(() => {
      const k = children(pool.pid);
      return k.length === 2 && !k.includes(victim) ? k : null;
    }, { timeoutMs: 2000, intervalMs: 50, what: `a replacement for worker ${victim}` });
    const ms = Date.now() - t0;
    assert.ok(kids.includes(before0[1]), 'the other worker is untouched');
    await L.sleep(300);
    const res = await loop.stop();
    assert.deepEqual(res.bad, [], `failed requests around the crash (${ms} ms to replace)`);
    assert.ok(res.ok >= 3, `only ${res.ok} requests answered`);
    for (let i = 0; i < 6; i++) assert.equal((await live(sock)).status, 200);
    assert.equal(pool.exitCode, null, 'the supervisor survives a worker crash');
  });
});

describe('drain on SIGTERM', () => {
  let dir, conf, sock, pidfile, pool;

  before(async () => {
    dir = mkTmp();
    sock = path.join(dir, 'p.sock');
    pidfile = path.join(dir, 'p.pid');
    conf = writeConf(path.join(dir, 'tmp.conf'), { listen: `unix:${sock}`, pidfile, workers: 2, threads: 2 });
    pool = startPool(conf);
    await waitLive(sock, pool);
  });

  it('an in-flight POST completes with 200, then the supervisor exits 0 and cleans up', async () => {
    const ch = L.uniq('drain');
    const body = JSON.stringify({ name: 'drain-ev', channel: ch, data: JSON.stringify({ n: 1, pad: 'x'.repeat(200) }) });
    const uri = signedUri('POST', '/events', { body });
    const half = Math.floor(Buffer.byteLength(body) / 2);
    const bodyBuf = Buffer.from(body);

    const c = new F.FcgiConnection(sock, { timeoutMs: 15000 });
    await c.connected;
    await c.begin();
    await c.params(F.cgiParams({ method: 'POST', uri, body, contentType: 'application/json' }));
    await c.stdin(bodyBuf.subarray(0, half));
    await L.sleep(300);   // a worker has accepted it and is reading the body
    assert.equal(c.ended, false, 'no answer before the body is complete');

    pool.kill('SIGTERM');
    await L.sleep(500);
    assert.equal(pool.exitCode, null, 'the supervisor waits for the in-flight request');

    // a new connection made during the drain must not be served
    const late = F.request(sock, { uri: '/live', timeoutMs: 10000 })
      .then((r) => ({ served: true, r }), (e) => ({ served: false, e }));

    await c.stdin(bodyBuf.subarray(half));
    await c.endStdin();
    const r = await c.response();
    assert.equal(r.status, 200, `in-flight publish after SIGTERM: ${r.status} ${r.body}\nserver log:\n${pool.err}`);
    assert.deepEqual(r.json, {});

    const ex = await withTimeout(pool.exited, 5000, 'supervisor exit after SIGTERM');
    assert.deepEqual(ex, { code: 0, signal: null }, `exit: ${JSON.stringify(ex)}\n${pool.err}`);
    assert.ok(!fs.existsSync(pidfile), 'pidfile removed');
    assert.ok(!fs.existsSync(sock), 'socket removed');

    const l = await withTimeout(late, 5000, 'the connection made during the drain is settled');
    assert.equal(l.served, false, `a connection made after SIGTERM was served: ${l.r && l.r.status}`);

    // the socket file is gone: connecting fails outright
    await assert.rejects(F.request(sock, { uri: '/live', timeoutMs: 3000 }), /ENOENT|ECONNREFUSED/);

    assert.equal(L.countMessages(app.id, `channel = ${L.sqlQuote(ch)}`), 1, 'the drained publish is in MariaDB');
  });
});

describe('SIGHUP reload', () => {
  let dir;

  before(() => { dir = mkTmp(); });

  describe('workers from the file', () => {
    let conf, sock, pidfile, pool, oldKids;

    before(async () => {
      sock = path.join(dir, 'h.sock');
      pidfile = path.join(dir, 'h.pid');
      conf = path.join(dir, 'h.conf');
      writeConf(conf, { listen: `unix:${sock}`, pidfile, workers: 1, threads: 2 });
      pool = startPool(conf);
      await waitLive(sock, pool);
      oldKids = children(pool.pid);
    });

    after(async () => {
      if (pool.exitCode === null) {
        pool.kill('SIGTERM');
        await withTimeout(pool.exited, 8000, 'reload pool exit').catch(() => pool.kill('SIGKILL'));
      }
    });

    it('workers 1 → 3: three new workers within 3 s, the old one gone, 200s throughout', async () => {
      assert.equal(oldKids.length, 1, `workers before reload: ${oldKids}`);
      const loop = liveLoop(sock, 20);
      await L.sleep(150);
      writeConf(conf, { listen: `unix:${sock}`, pidfile, workers: 3, threads: 2 });
      pool.kill('SIGHUP');
      const kids = await L.waitFor(() => {
        const k = children(pool.pid);
        return k.length === 3 && !k.some((p) => oldKids.includes(p)) ? k : null;
      }, { timeoutMs: 3000, intervalMs: 50, what: `3 new workers (old ${oldKids}; now ${children(pool.pid)})` });
      await L.sleep(500);
      const res = await loop.stop();
      assert.deepEqual(res.bad, [], 'requests failed during the reload');
      assert.ok(res.ok >= 5, `only ${res.ok} requests answered during the reload`);
      assert.deepEqual(children(pool.pid), kids, 'the worker set is stable after the reload');
      for (let i = 0; i < 6; i++) assert.equal((await live(sock)).status, 200);
      assert.equal(fs.readFileSync(pidfile, 'utf8').trim(), String(pool.pid));
      assert.equal(pool.exitCode, null);
    });

    it('a config with a syntax error: the pool keeps its workers and answers', async () => {
      const kids = children(pool.pid);
      assert.equal(kids.length, 3);
      writeConf(conf, { listen: `unix:${sock}`, pidfile, workers: 1, threads: 2 }, ['this is not a key value line']);
      pool.kill('SIGHUP');
      await L.sleep(800);
      assert.equal(pool.exitCode, null, `the pool exited on a bad reload: ${pool.err}`);
      assert.deepEqual(children(pool.pid), kids, 'workers replaced although the new config is broken');
      for (let i = 0; i < 6; i++) {
        const r = await live(sock);
        assert.equal(r.status, 200);
      }
      const r = await F.request(sock, { uri: signedUri('GET', '/channels') });
      L.assertOk(r);
      assert.match(pool.err, /h\.conf:\d+/, 'the reload error names the file and line');
    });
  });

  describe('command-line overrides survive a reload', () => {
    let conf, sock, pool;

    before(async () => {
      sock = path.join(dir, 'o.sock');
      conf = path.join(dir, 'o.conf');
      writeConf(conf, { listen: `unix:${sock}`, pidfile: '', workers: 3, threads: 2 });
      pool = startPool(conf, ['--workers', '1']);
      await waitLive(sock, pool);
    });

    after(async () => {
      if (pool.exitCode === null) {
        pool.kill('SIGTERM');
        await withTimeout(pool.exited, 8000, 'override pool exit').catch(() => pool.kill('SIGKILL'));
      }
    });

    it('--workers 1 with workers = 3 in the file: 1 worker before and after SIGHUP', async () => {
      const old = children(pool.pid);
      assert.equal(old.length, 1, `workers at start: ${old}`);
      writeConf(conf, { listen: `unix:${sock}`, pidfile: '', workers: 3, threads: 3 });
      pool.kill('SIGHUP');
      // the reload replaces the worker: wait for the old one to go
      await L.waitFor(() => !alive(old[0]) && children(pool.pid).length >= 1,
        { timeoutMs: 3000, intervalMs: 50, what: `worker ${old[0]} replaced after SIGHUP` });
      await L.sleep(500);
      const kids = children(pool.pid);
      assert.equal(kids.length, 1, `workers after reload: ${kids}`);
      assert.notEqual(kids[0], old[0]);
      for (let i = 0; i < 4; i++) assert.equal((await live(sock)).status, 200);
    });
  });
});

describe('spawn-fcgi mode', () => {
  let dir, conf, sock, sp;

  before(async () => {
    dir = mkTmp();
    sock = path.join(dir, 's.sock');
    conf = writeConf(path.join(dir, 'tmp.conf'), { listen: '', pidfile: '', workers: 2, threads: 2 });
    sp = startProc('spawn-fcgi', ['-n', '-s', sock, '--', BIN, '-c', conf]);
    await waitLive(sock, sp);
  });

  after(async () => {
    if (sp.exitCode === null) {
      sp.kill('SIGKILL');
      await sp.exited;
    }
  });

  it('serves the socket handed over on fd 0', async () => {
    const r = await live(sock);
    assert.equal(r.status, 200);
    assert.equal(r.body.trim(), 'OK');
    const kids = children(sp.pid);
    assert.equal(kids.length, 2, `workers under spawn-fcgi: ${kids}`);
  });

  it('a signed GET /apps/{id}/channels → 200 JSON', async () => {
    const r = await F.request(sock, { uri: signedUri('GET', '/channels') });
    L.assertOk(r);
    assert.equal(typeof r.json.channels, 'object', r.body);
  });

  it('stops on SIGTERM with exit 0', async () => {
    sp.kill('SIGTERM');
    const ex = await withTimeout(sp.exited, 5000, 'spawn-fcgi child exit');
    assert.deepEqual(ex, { code: 0, signal: null }, sp.err);
  });
});

describe('-t and migrate', () => {
  let dir;

  before(() => { dir = mkTmp(); });

  const run = (...args) => {
    const r = spawnSync(BIN, args, { encoding: 'utf8', timeout: 20000, env: process.env });
    return { status: r.status, stdout: r.stdout || '', stderr: r.stderr || '' };
  };

  it('a good config: "configuration OK", exit 0', () => {
    const conf = writeConf(path.join(dir, 'good.conf'), { listen: `unix:${dir}/x.sock`, pidfile: '', workers: 2, threads: 2 });
    const r = run('-c', conf, '-t');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /configuration OK/);
  });

  for (const [name, bad] of [['unknown key', 'no_such_key = 1'], ['workers = 0', 'workers = 0']]) {
    it(`a bad config (${name}): exit 1, file and line on stderr`, () => {
      const file = path.join(dir, `bad-${name.replace(/\W+/g, '_')}.conf`);
      const text = confText({ workers: null }) + '# a comment\n\n' + bad + '\nthreads = 2\n';
      fs.writeFileSync(file, text);
      const line = text.split('\n').indexOf(bad) + 1;
      const r = run('-c', file, '-t');
      assert.equal(r.status, 1, `exit ${r.status}; stdout ${r.stdout}; stderr ${r.stderr}`);
      assert.doesNotMatch(r.stdout, /configuration OK/);
      assert.ok(r.stderr.includes(`${file}:${line}`), `stderr should name ${file}:${line}: ${r.stderr}`);
    });
  }

  it('migrate again on the devstack config applies nothing', () => {
    const r = run('-c', CONF, 'migrate');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /\b0 migration\(s\) applied/);
  });
});

describe('supervisor duties', () => {
  it('runs maintain every maintain_interval seconds, applying retention', async () => {
    const dir = mkTmp();
    const sock = path.join(dir, 'm.sock');
    const conf = writeConf(path.join(dir, 'm.conf'), { listen: `unix:${sock}`, pidfile: null,
      workers: 1, threads: 1, maintain_interval: 1 });
    const keep = L.createApp('maint');
    L.appSet(keep.id, 'history_max_messages', 2);
    const ch = L.uniq('maint');
    for (let i = 0; i < 5; i++) {
      L.assertOk(await L.api(keep).post('/events', { name: 'e', channel: ch, data: `d${i}` }));
    }
    assert.equal(L.countMessages(keep.id), 5);
    const pool = startPool(conf);
    await waitLive(sock, pool);
    // (another test may run `maintain` meanwhile: wait for our supervisor's own run)
    await L.waitFor(async () => /maintain: \d+ messages past retention removed/.test(pool.err),
      { timeoutMs: 8000, intervalMs: 200, what: 'a maintain run by the supervisor' });
    assert.equal(L.countMessages(keep.id), 2, 'retention applied');
    const left = L.sql(`SELECT serial FROM messages WHERE app_id = ${L.sqlQuote(keep.id)} ORDER BY serial`)
      .map((r) => Number(r[0]));
    assert.deepEqual(left, [4, 5], 'the newest two are kept');
    pool.kill('SIGTERM');
    assert.deepEqual(await withTimeout(pool.exited, 5000, 'pool exit'), { code: 0, signal: null });
  });

  it('workers of a supervisor killed with -9 stop by themselves', async () => {
    const dir = mkTmp();
    const sock = path.join(dir, 'k.sock');
    const conf = writeConf(path.join(dir, 'k.conf'), { listen: `unix:${sock}`, pidfile: null,
      workers: 2, threads: 1 });
    const pool = startPool(conf);
    await waitLive(sock, pool);
    const kids = children(pool.pid);
    assert.equal(kids.length, 2);
    pool.kill('SIGKILL');
    await L.waitFor(async () => kids.every((k) => !alive(k)),
      { timeoutMs: 5000, intervalMs: 100, what: 'orphaned workers to exit' });
  });

  it('a stopping pool leaves alone the socket and pidfile a newer pool took over', async () => {
    const dir = mkTmp();
    const sock = path.join(dir, 's.sock');
    const pidfile = path.join(dir, 's.pid');
    const conf = writeConf(path.join(dir, 's.conf'), { listen: `unix:${sock}`, pidfile,
      workers: 1, threads: 1 });
    const old = startPool(conf);
    await waitLive(sock, old);
    const fresh = startPool(conf);		// replaces the socket file and the pidfile
    await L.waitFor(() => fs.existsSync(pidfile) &&
      Number(fs.readFileSync(pidfile, 'utf8')) === fresh.pid,
    { timeoutMs: 5000, intervalMs: 50, what: 'the new pidfile' });
    await waitLive(sock, fresh);
    old.kill('SIGTERM');
    assert.deepEqual(await withTimeout(old.exited, 5000, 'old pool exit'), { code: 0, signal: null });
    assert.ok(fs.existsSync(sock), 'the newer pool\'s socket is still there');
    assert.equal(Number(fs.readFileSync(pidfile, 'utf8')), fresh.pid, 'the pidfile is the newer pool\'s');
    assert.equal((await live(sock)).status, 200, 'the newer pool still answers');
    fresh.kill('SIGTERM');
    assert.deepEqual(await withTimeout(fresh.exited, 5000, 'new pool exit'), { code: 0, signal: null });
    assert.ok(!fs.existsSync(sock) && !fs.existsSync(pidfile), 'the owner removed both');
  });
});
