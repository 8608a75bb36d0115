// Shared helpers for the integration suite: Pusher signing, a raw HTTP client,
// the sockudo-fcgi CLI, and direct MariaDB access (run under tests/integration/run-test).
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const nodePath = require('node:path');
const { spawnSync } = require('node:child_process');
const assert = require('node:assert/strict');

/* ---------------------------------------------------------------- signing */

function md5hex(body) {
  return crypto.createHash('md5').update(body ?? '').digest('hex');
}

function hmacHex(secret, str) {
  return crypto.createHmac('sha256', secret).update(str).digest('hex');
}

// SPEC 1: values are percent-decoded for %XX only; a '+' stays a '+'.
function pctDecode(s) {
  const bytes = [];
  const src = Buffer.from(s, 'utf8');
  for (let i = 0; i < src.length; i++) {
    if (src[i] === 0x25 && i + 2 < src.length &&
        /^[0-9a-fA-F]{2}$/.test(String.fromCharCode(src[i + 1], src[i + 2]))) {
      bytes.push(parseInt(String.fromCharCode(src[i + 1], src[i + 2]), 16));
      i += 2;
    } else {
      bytes.push(src[i]);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

// Percent-encode everything outside RFC 3986 unreserved characters.
function pctEncode(s) {
  return encodeURIComponent(String(s)).replace(/[!'()*]/g,
    (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

// params: object or array of [key, decodedValue].  Returns the canonical
// QUERY part of the string to sign: keys lower-cased, auth_signature dropped,
// sorted by key in byte order, joined key=value with '&'.
function canonicalQuery(params) {
  const pairs = (Array.isArray(params) ? params : Object.entries(params))
    .map(([k, v]) => [String(k).toLowerCase(), String(v)])
    .filter(([k]) => k !== 'auth_signature');
  pairs.sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])) ||
    Buffer.compare(Buffer.from(a[1]), Buffer.from(b[1])));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

function stringToSign(method, path, params) {
  return `${method.toUpperCase()}\n${path}\n${canonicalQuery(params)}`;
}

// Compute the auth parameters for a request.  Returns an object with
// auth_key, auth_timestamp, auth_version, [body_md5,] auth_signature plus the
// caller's params (all decoded values).
function signParams({ method, path, params = {}, body = '', key, secret,
  timestamp, version = '1.0' }) {
  const all = { ...params };
  all.auth_key = key;
  all.auth_timestamp = String(timestamp ?? Math.floor(Date.now() / 1000));
  all.auth_version = version;
  if (body !== undefined && body !== null && body.length > 0) all.body_md5 = md5hex(body);
  all.auth_signature = hmacHex(secret, stringToSign(method, path, all));
  return all;
}

function encodeQuery(params) {
  return Object.entries(params).map(([k, v]) => `${pctEncode(k)}=${pctEncode(v)}`).join('&');
}

/* ------------------------------------------------------------ HTTP client */

function baseUrl() {
  const u = process.env.SOCKUDO_URL;
  if (!u) throw new Error('SOCKUDO_URL not set: run through tests/integration/run-test');
  return new URL(u);
}

// One HTTP request, over TLS with tls (ca: the CA to trust).  path is sent
// exactly as given (already encoded, may include a query string).  body:
// string or Buffer.  agent: false (a fresh connection) or a keep-alive one.
// Resolves to {status, headers, body, json, ms}; json is undefined when the
// body is not JSON.
function sendRequest({ tls = false, ca, host, port, agent = false, method = 'GET', path = '/',
  headers = {}, body, timeoutMs = 15000 }) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const h = { ...headers };
    if (body !== undefined && body !== null && h['Content-Length'] === undefined) {
      h['Content-Length'] = Buffer.byteLength(body);
    }
    const req = (tls ? https : http).request({
      host, port, method, path, headers: h, agent, timeout: timeoutMs, ...(ca ? { ca } : {}),
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({
          status: res.statusCode, headers: res.headers, body: text, json,
          ms: Number(process.hrtime.bigint() - started) / 1e6,
        });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${method} ${path}`)));
    req.on('error', reject);
    if (body !== undefined && body !== null) req.write(body);
    req.end();
  });
}

// Send one raw request to the server under test (see sendRequest).
function rawRequest({ method = 'GET', path = '/', headers = {}, body, timeoutMs = 15000 }) {
  const u = baseUrl();
  return sendRequest({ host: u.hostname, port: u.port || 80, method, path, headers, body, timeoutMs });
}

/* ------------------------------------------ the push stand-ins (mocks.js) */

// A value of the stack's configuration file ('' when it is not set).
function confValue(key) {
  const conf = process.env.SOCKUDO_CONF ? fs.readFileSync(process.env.SOCKUDO_CONF, 'utf8') : '';
  const m = new RegExp(`^\\s*${key}\\s*=\\s*(.*?)\\s*$`, 'm').exec(conf);
  return m ? m[1] : '';
}

// Where the stand-ins listen, and whether APNs is served over TLS (mocks.js
// --apns-tls): then its control endpoints are HTTPS too, with the CA the
// server is configured with.  Read once.
let mocks;
function pushMocks() {
  if (mocks) return mocks;
  const dir = process.env.SOCKUDO_PUSH_MOCKS;
  if (!dir) throw new Error('SOCKUDO_PUSH_MOCKS is not set: run through tests/integration/run-test');
  const tls = /^https:/.test(confValue('apns_url'));
  mocks = {
    dir,
    ports: JSON.parse(fs.readFileSync(nodePath.join(dir, 'ports.json'), 'utf8')),
    apnsTls: tls,
    apnsCa: tls ? fs.readFileSync(confValue('push_ca_file') || nodePath.join(dir, 'apns-tls.crt')) : null,
  };
  return mocks;
}

// A request to a stand-in (provider: apns, fcm or web), body sent as JSON.
// opts: agent (default: a fresh connection), timeoutMs (10000).
function mockCall(provider, method, path, body, { agent = false, timeoutMs = 10000 } = {}) {
  const m = pushMocks();
  const tls = provider === 'apns' && m.apnsTls;
  const data = body === undefined ? undefined : JSON.stringify(body);
  return sendRequest({ tls, ca: tls ? m.apnsCa : undefined, host: '127.0.0.1',
    port: m.ports[provider], agent, method, path, body: data, timeoutMs,
    headers: data ? { 'Content-Type': 'application/json' } : {} });
}

// A signed request to /apps/{app.id}{sub}.
// opts: params (decoded query values to sign and send), body (object → JSON, or
// string), contentType, headers, and tampering knobs:
//   key, secret, timestamp    override what is signed/sent
//   appId                     another app id in the path
//   sentBody                  bytes actually sent (signature computed over body)
//   bodyMd5                   body_md5 value sent (after signing, signature not recomputed)
//   noBodyMd5                 sign and send no body_md5 although a body is sent
//   signMethod, signPath      what goes into the string to sign, if not what is sent
//   omit: ['auth_key', ...]   parameters to drop from the sent query
//   signature                 auth_signature value sent
//   rawQuery                  a function(params) → query string to send
//   path                      a literal path to sign and send instead of /apps/id+sub
async function call(app, method, sub, opts = {}) {
  const path = opts.path ?? `/apps/${opts.appId ?? app.id}${sub}`;
  let body = opts.body;
  if (body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body)) {
    body = JSON.stringify(body);
  }
  const p = signParams({
    method: opts.signMethod ?? method, path: opts.signPath ?? path, params: opts.params || {},
    body: opts.noBodyMd5 ? '' : body,
    key: opts.key ?? app.key, secret: opts.secret ?? app.secret, timestamp: opts.timestamp,
  });
  if (opts.bodyMd5 !== undefined) p.body_md5 = opts.bodyMd5;
  if (opts.signature !== undefined) p.auth_signature = opts.signature;
  for (const k of opts.omit || []) delete p[k];
  const q = opts.rawQuery ? opts.rawQuery(p) : encodeQuery(p);
  const headers = { ...(opts.headers || {}) };
  const sent = opts.sentBody !== undefined ? opts.sentBody : body;
  if (sent !== undefined && headers['Content-Type'] === undefined && opts.contentType !== null) {
    headers['Content-Type'] = opts.contentType ?? 'application/json';
  }
  return rawRequest({ method, path: q ? `${path}?${q}` : path, headers, body: sent,
    timeoutMs: opts.timeoutMs });
}

const api = (app) => ({
  get: (sub, params, opts = {}) => call(app, 'GET', sub, { ...opts, params }),
  post: (sub, body, opts = {}) => call(app, 'POST', sub, { ...opts, body }),
  call: (method, sub, opts) => call(app, method, sub, opts),
});

/* ------------------------------------------------------------------- CLI */

function cli(...args) {
  const bin = process.env.SOCKUDO_BIN || './sockudo-fcgi';
  const conf = process.env.SOCKUDO_CONF;
  const argv = conf ? ['-c', conf, ...args] : args;
  const r = spawnSync(bin, argv, { encoding: 'utf8', timeout: 30000 });
  return { status: r.status, stdout: r.stdout || '', stderr: r.stderr || '', error: r.error };
}

function cliOk(...args) {
  const r = cli(...args);
  assert.equal(r.status, 0, `sockudo-fcgi ${args.join(' ')} failed: ${r.stderr}${r.error || ''}`);
  return r.stdout;
}

let appSeq = 0;
// Create a fresh app for one test file; returns {id, key, secret, name}.
function createApp(prefix = 'it') {
  appSeq += 1;
  const name = `${prefix}-${process.pid}-${Date.now()}-${appSeq}`;
  const out = cliOk('app', 'create', '--name', name);
  const app = { name };
  for (const line of out.split('\n')) {
    const m = /^(id|key|secret)=(.*)$/.exec(line.trim());
    if (m) app[m[1]] = m[2];
  }
  assert.ok(app.id && app.key && app.secret, `app create printed: ${out}`);
  return app;
}

function appSet(id, field, value) {
  return cliOk('app', 'set', String(id), field, String(value));
}

/* ------------------------------------------------------------- MariaDB */

function sqlQuote(s) {
  if (s === null || s === undefined) return 'NULL';
  if (typeof s === 'number') return String(s);
  return "'" + String(s).replace(/\\/g, '\\\\').replace(/'/g, "\\'")
    .replace(/\0/g, '\\0').replace(/\n/g, '\\n').replace(/\r/g, '\\r') + "'";
}

// Run SQL as root on the sockudo database; returns rows as arrays of strings.
// The statement is passed on stdin so that no shell or argv quoting applies.
function sql(statement) {
  const socket = process.env.MARIADB_SOCKET;
  const db = process.env.SOCKUDO_DB_NAME || 'sockudo';
  // utf8mb4 whatever the locale: under LANG=C the client would talk latin1
  const args = ['--no-defaults', '--default-character-set=utf8mb4', '-u', 'root', '-N', '-B', '-r', db];
  if (socket) args.splice(1, 0, `--socket=${socket}`);
  const r = spawnSync('mariadb', args, { input: statement, encoding: 'utf8', timeout: 30000 });
  if (r.status !== 0) throw new Error(`mariadb failed (${r.status}): ${r.stderr}\nSQL: ${statement}`);
  return r.stdout.split('\n').filter((l) => l.length > 0).map((l) => l.split('\t'));
}

function sqlValue(statement) {
  const rows = sql(statement);
  return rows.length ? rows[0][0] : undefined;
}

function countMessages(appId, extraWhere = '') {
  return Number(sqlValue(`SELECT COUNT(*) FROM messages WHERE app_id = ${sqlQuote(appId)}${extraWhere ? ' AND ' + extraWhere : ''}`));
}

/* ------------------------------------------------------------- misc */

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function uniq(prefix = 'ch') {
  return `${prefix}-${process.pid}-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;
}

// Assert the SPEC 2 error shape and the status.
function assertError(res, status, code) {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.body}`);
  assert.ok(res.json && typeof res.json === 'object', `error body is not JSON: ${res.body}`);
  assert.equal(typeof res.json.error, 'string', `error.error not a string: ${res.body}`);
  assert.ok(res.json.error.length > 0, 'empty error sentence');
  assert.equal(typeof res.json.code, 'string', `error.code not a string: ${res.body}`);
  assert.equal(res.json.status, status, `error.status mismatch: ${res.body}`);
  if (code !== undefined) {
    if (Array.isArray(code)) assert.ok(code.includes(res.json.code), `code ${res.json.code} not in ${code}`);
    else assert.equal(res.json.code, code, `code: ${res.body}`);
  }
  assert.match(String(res.headers['content-type'] || ''), /application\/json/);
}

function assertOk(res, status = 200) {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.body}`);
  assert.ok(res.json !== undefined, `body is not JSON: ${res.body}`);
}

// Poll fn until it returns truthy or the deadline passes.
async function waitFor(fn, { timeoutMs = 20000, intervalMs = 200, what = 'condition' } = {}) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) { last = e; }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${last && last.message ? last.message : last}`);
    await sleep(intervalMs);
  }
}

module.exports = {
  md5hex, hmacHex, pctDecode, pctEncode, canonicalQuery, stringToSign, signParams,
  encodeQuery, baseUrl, sendRequest, rawRequest, confValue, pushMocks, mockCall, call, api, cli, cliOk, createApp, appSet,
  sql, sqlValue, sqlQuote, countMessages, sleep, uniq, assertError, assertOk, waitFor,
};
