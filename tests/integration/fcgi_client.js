// A small FastCGI 1.0 client (responder role) for talking to sockudo-fcgi
// directly over its socket, without a web server in between.
'use strict';

const net = require('node:net');

const VERSION = 1;
const T = {
  BEGIN_REQUEST: 1, ABORT_REQUEST: 2, END_REQUEST: 3, PARAMS: 4, STDIN: 5,
  STDOUT: 6, STDERR: 7, DATA: 8, GET_VALUES: 9, GET_VALUES_RESULT: 10, UNKNOWN_TYPE: 11,
};
const ROLE_RESPONDER = 1;
const MAX_CONTENT = 65535;

function record(type, requestId, content = Buffer.alloc(0)) {
  const len = content.length;
  if (len > MAX_CONTENT) throw new Error(`record content too long: ${len}`);
  const pad = (8 - (len % 8)) % 8;
  const h = Buffer.alloc(8);
  h[0] = VERSION;
  h[1] = type;
  h.writeUInt16BE(requestId, 2);
  h.writeUInt16BE(len, 4);
  h[6] = pad;
  h[7] = 0;
  return Buffer.concat([h, content, Buffer.alloc(pad)]);
}

// One stream (PARAMS or STDIN) split into records of at most 65535 bytes (no empty terminator).
function streamRecords(type, requestId, data) {
  const out = [];
  for (let off = 0; off < data.length; off += MAX_CONTENT) {
    out.push(record(type, requestId, data.subarray(off, Math.min(off + MAX_CONTENT, data.length))));
  }
  return Buffer.concat(out);
}

function encLen(n) {
  if (n < 128) return Buffer.from([n]);
  const b = Buffer.alloc(4);
  b.writeUInt32BE((n | 0x80000000) >>> 0, 0);
  return b;
}

// Name-value pairs: 1-byte lengths below 128, else 4 bytes with the high bit set.
function encodeParams(params) {
  const parts = [];
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null) continue;
    const kb = Buffer.from(String(k), 'utf8');
    const vb = Buffer.from(String(v), 'utf8');
    parts.push(encLen(kb.length), encLen(vb.length), kb, vb);
  }
  return Buffer.concat(parts);
}

function beginRequestBody(role = ROLE_RESPONDER, flags = 0) {
  const b = Buffer.alloc(8);
  b.writeUInt16BE(role, 0);
  b[2] = flags;
  return b;
}

// Parse a CGI response: head lines up to a blank line, then the body.
function parseCgi(buf) {
  let sep = buf.indexOf('\r\n\r\n');
  let sepLen = 4;
  const lf = buf.indexOf('\n\n');
  if (sep < 0 || (lf >= 0 && lf < sep)) { sep = lf; sepLen = 2; }
  if (sep < 0) throw new Error(`no end of CGI head in response: ${JSON.stringify(buf.toString('utf8').slice(0, 300))}`);
  const head = buf.subarray(0, sep).toString('latin1');
  const body = buf.subarray(sep + sepLen).toString('utf8');
  const headers = {};
  let status = 200;
  let statusText = 'OK';
  for (const line of head.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i <= 0) throw new Error(`malformed CGI header line: ${JSON.stringify(line)}`);
    const name = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    if (name === 'status') {
      const m = /^(\d{3})\s*(.*)$/.exec(value);
      if (!m) throw new Error(`malformed Status header: ${JSON.stringify(value)}`);
      status = Number(m[1]);
      statusText = m[2];
    }
    headers[name] = headers[name] !== undefined ? `${headers[name]}, ${value}` : value;
  }
  let json;
  try { json = JSON.parse(body); } catch { json = undefined; }
  return { status, statusText, headers, body, json };
}

// The FastCGI params a web server would send for method + uri (path?query).
function cgiParams({ method = 'GET', uri = '/', body, contentType, extra = {} }) {
  const q = uri.indexOf('?');
  const path = q >= 0 ? uri.slice(0, q) : uri;
  const query = q >= 0 ? uri.slice(q + 1) : '';
  const len = body === undefined || body === null ? 0 : Buffer.byteLength(body);
  const p = {
    GATEWAY_INTERFACE: 'CGI/1.1',
    REQUEST_METHOD: method,
    REQUEST_URI: uri,
    QUERY_STRING: query,
    SCRIPT_NAME: path,
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_SOFTWARE: 'fcgi_client.js',
    REMOTE_ADDR: '127.0.0.1',
    CONTENT_LENGTH: String(len),
  };
  if (contentType !== undefined && contentType !== null) p.CONTENT_TYPE = contentType;
  else if (len > 0) p.CONTENT_TYPE = 'application/json';
  return { ...p, ...extra };
}

// One FastCGI connection carrying one request (keep-conn off: the server closes after END_REQUEST).
// Lets a test send the request piece by piece; response() settles when END_REQUEST
// arrives (resolve) or the connection ends/fails first (reject, err.code = 'FCGI_CLOSED' etc.).
class FcgiConnection {
  constructor(socketPath, { requestId = 1, timeoutMs = 15000 } = {}) {
    this.requestId = requestId;
    this.stdout = [];
    this.stderr = [];
    this.ended = false;
    this.records = 0;
    this.sock = net.createConnection(socketPath);
    this.connected = new Promise((resolve, reject) => {
      this.sock.once('connect', resolve);
      this.sock.once('error', reject);
    });
    this.connected.catch(() => {});
    this._buf = Buffer.alloc(0);
    this._done = new Promise((resolve, reject) => { this._resolve = resolve; this._reject = reject; });
    this._done.catch(() => {});
    this._timer = setTimeout(() => {
      const e = new Error(`FastCGI response timeout after ${timeoutMs} ms`);
      e.code = 'FCGI_TIMEOUT';
      this._fail(e);
    }, timeoutMs);
    this.sock.on('data', (d) => this._onData(d));
    this.sock.on('error', (e) => this._fail(e));
    this.sock.on('close', () => {
      const e = new Error('FastCGI connection closed before END_REQUEST');
      e.code = 'FCGI_CLOSED';
      this._fail(e);
    });
  }

  _fail(e) {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this._timer);
    this.sock.destroy();
    this._reject(e);
  }

  _onData(d) {
    this._buf = Buffer.concat([this._buf, d]);
    while (this._buf.length >= 8) {
      const b = this._buf;
      if (b[0] !== VERSION) {
        this._fail(new Error(`bad FastCGI version ${b[0]}`));
        return;
      }
      const type = b[1];
      const id = b.readUInt16BE(2);
      const len = b.readUInt16BE(4);
      const pad = b[6];
      if (b.length < 8 + len + pad) return;
      const content = b.subarray(8, 8 + len);
      this._buf = b.subarray(8 + len + pad);
      this.records += 1;
      if (id !== this.requestId && id !== 0) {
        this._fail(new Error(`record for request id ${id}, expected ${this.requestId}`));
        return;
      }
      if (type === T.STDOUT) this.stdout.push(Buffer.from(content));
      else if (type === T.STDERR) this.stderr.push(Buffer.from(content));
      else if (type === T.END_REQUEST) {
        if (this.ended) return;
        this.ended = true;
        clearTimeout(this._timer);
        const appStatus = content.length >= 4 ? content.readUInt32BE(0) : -1;
        const protocolStatus = content.length >= 5 ? content[4] : -1;
        this.sock.end();
        this._resolve({ appStatus, protocolStatus, stdout: Buffer.concat(this.stdout),
          stderr: Buffer.concat(this.stderr).toString('utf8') });
        return;
      } else {
        this._fail(new Error(`unexpected FastCGI record type ${type}`));
        return;
      }
    }
  }

  write(buf) {
    return new Promise((resolve, reject) => {
      this.sock.write(buf, (err) => (err ? reject(err) : resolve()));
    });
  }

  begin(flags = 0) {
    return this.write(record(T.BEGIN_REQUEST, this.requestId, beginRequestBody(ROLE_RESPONDER, flags)));
  }

  // All params, then the empty PARAMS record.
  params(p) {
    return this.write(Buffer.concat([streamRecords(T.PARAMS, this.requestId, encodeParams(p)),
      record(T.PARAMS, this.requestId)]));
  }

  stdin(data) {
    const b = Buffer.isBuffer(data) ? data : Buffer.from(String(data), 'utf8');
    if (b.length === 0) return Promise.resolve();
    return this.write(streamRecords(T.STDIN, this.requestId, b));
  }

  endStdin() {
    return this.write(record(T.STDIN, this.requestId));
  }

  // Resolves {appStatus, protocolStatus, stdout(Buffer), stderr}
  raw() {
    return this._done;
  }

  // Resolves the parsed CGI response {status, statusText, headers, body, json, appStatus, protocolStatus}
  async response() {
    const r = await this._done;
    return { ...parseCgi(r.stdout), appStatus: r.appStatus, protocolStatus: r.protocolStatus,
      stderr: r.stderr };
  }

  close() {
    if (!this.ended) {
      this.ended = true;
      clearTimeout(this._timer);
      this._resolve = () => {};
      this._reject = () => {};
    }
    this.sock.destroy();
  }
}

// One complete request.  opts: method, uri, body (string/Buffer), contentType, extra (params), timeoutMs.
async function request(socketPath, opts = {}) {
  const c = new FcgiConnection(socketPath, { timeoutMs: opts.timeoutMs });
  try {
    await c.connected;
    await c.begin();
    await c.params(cgiParams(opts));
    if (opts.body !== undefined && opts.body !== null) await c.stdin(opts.body);
    await c.endStdin();
    return await c.response();
  } finally {
    c.close();
  }
}

module.exports = {
  T, ROLE_RESPONDER, record, encodeParams, parseCgi, cgiParams, FcgiConnection, request,
};
