'use strict';
/*
 * Local mock push providers for the sockudo-fcgi test suite: APNs (HTTP/2),
 * FCM HTTP v1 with its OAuth2 token endpoint, and a Web Push push service.
 *
 * The mocks speak each provider's wire protocol and CHECK what they receive
 * (JWT signatures and claims, VAPID, RFC 8291 encryption), so a client that
 * passes them should work against the real services.  Every request, accepted
 * or refused, is recorded for inspection.
 *
 * Module:  const m = await require('./mocks').start({ dir, host, ports })
 * CLI:     node tests/push/mocks.js --dir DIR [--host 127.0.0.1]
 *              [--apns-port N] [--fcm-port N] [--web-port N] [--apns-tls] [--verbose]
 *          writes DIR/ports.json once listening; exits 0 on SIGTERM/SIGINT.
 *
 * APNs is h2c (HTTP/2 prior knowledge) by default.  libcurl before 8.0
 * (curl#10634, fixed by curl PR #10643) breaks when it REUSES or multiplexes
 * an h2c prior-knowledge connection ("Error in the HTTP2 framing layer");
 * --apns-tls serves APNs over TLS with h2 by ALPN, the production path,
 * which that libcurl handles (CA file: DIR/apns-tls.crt).
 *
 * Only Node built-ins are used.
 */

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const http2 = require('http2');
const net = require('net');
const path = require('path');

/* ------------------------------------------------------------------ */
/* Fixed identities written into the key material files.              */
/* ------------------------------------------------------------------ */

const APNS_IDENTITY = { team_id: 'TEAM123456', key_id: 'KEY1234567', topic: 'com.example.app' };
const FCM_PROJECT = 'mock-project';
const FCM_EMAIL = 'pusher@mock-project.iam.gserviceaccount.com';
const FCM_SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const VAPID_SUBJECT = 'mailto:ops@example.com';

const MAX_REQUEST_BODY = 1 << 20;      // refuse to buffer more than this
const APNS_MAX_PAYLOAD = 4096;         // Apple's limit (5120 for voip)
const WEB_MAX_BODY = 4096;             // RFC 8030 §7.2: services must take 4096
const CLOCK_SKEW_S = 60;               // tolerated "iat in the future"

/* Behaviour key for FCM's OAuth token endpoint (it has no device token). */
const FCM_OAUTH_KEY = '_oauth';

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

const nowS = () => Math.floor(Date.now() / 1000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const b64url = (buf) => Buffer.from(buf).toString('base64url');

/* Buffer.from(x, 'base64url') silently skips bad characters; real JWT and
 * Web Push parsers do not, so padding or '+/' from the client must fail. */
function b64urlDecode(s, what) {
	if (typeof s !== 'string' || !/^[A-Za-z0-9_-]*$/.test(s))
		throw new Error(`${what} is not unpadded base64url`);
	return Buffer.from(s, 'base64url');
}

/* A refused request: the HTTP status, the provider's error code (APNs
 * reason, FCM errorCode, OAuth error, ...) and a human detail for the log. */
class Refusal extends Error {
	constructor(status, code, detail, extra = {}) {
		super(detail || code);
		this.status = status;
		this.code = code;
		this.detail = detail || code;
		this.extra = extra;
	}
}

function parseJsonOr(buf, fallback) {
	try { return JSON.parse(buf.toString('utf8')); } catch { return fallback; }
}

function pick(headers, names) {
	const out = {};
	for (const n of names)
		if (headers[n] !== undefined) out[n] = headers[n];
	return out;
}

function isPlainObject(v) {
	return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/* ------------------------------------------------------------------ */
/* JWT (compact JWS) parsing and verification                          */
/* ------------------------------------------------------------------ */

function parseJwt(token) {
	const parts = String(token).split('.');
	if (parts.length !== 3) throw new Error('JWT must have three dot-separated parts');
	const json = (s, what) => {
		const v = parseJsonOr(b64urlDecode(s, what), undefined);
		if (!isPlainObject(v)) throw new Error(`JWT ${what} is not a JSON object`);
		return v;
	};
	return {
		header: json(parts[0], 'header'),
		claims: json(parts[1], 'claims'),
		signingInput: Buffer.from(`${parts[0]}.${parts[1]}`, 'ascii'),
		signature: b64urlDecode(parts[2], 'signature'),
	};
}

/* ES256 per RFC 7518 §3.4: the signature is raw R||S, 64 bytes.  An ASN.1
 * DER signature (what OpenSSL's ECDSA_sign gives) is a common client bug. */
function es256Problem(jwt, publicKey) {
	if (jwt.header.alg !== 'ES256') return `alg is ${JSON.stringify(jwt.header.alg)}, not ES256`;
	if (jwt.signature.length !== 64)
		return `ES256 signature is ${jwt.signature.length} bytes, not 64-byte raw R||S (DER-encoded?)`;
	return verifiedOnce(publicKey, jwt, () => crypto.verify('sha256', jwt.signingInput,
		{ key: publicKey, dsaEncoding: 'ieee-p1363' }, jwt.signature)) ? null :
		'ES256 signature does not verify with the expected key';
}

/* A provider token rides on every request for up to an hour, and the real
 * provider checks it on its own machines: remember each (key, token)
 * verdict so that a fan-out benchmark measures the client, not this
 * mock's ECDSA on the same 2 cores.  Bounded: forgotten wholesale past
 * 10,000 tokens. */
const verdicts = new WeakMap();
function verifiedOnce(publicKey, jwt, verify) {
	let m = verdicts.get(publicKey);
	if (!m || m.size > 10000) verdicts.set(publicKey, m = new Map());
	const k = jwt.signingInput.toString('latin1') + '.' + jwt.signature.toString('base64');
	if (!m.has(k)) m.set(k, verify());
	return m.get(k);
}

function rs256Problem(jwt, publicKey) {
	if (jwt.header.alg !== 'RS256') return `alg is ${JSON.stringify(jwt.header.alg)}, not RS256`;
	const ok = crypto.verify('sha256', jwt.signingInput, publicKey, jwt.signature);
	return ok ? null : 'RS256 signature does not verify with the service account key';
}

/* A short id for a JWT so tests can see whether the client reuses it. */
const jwtId = (token) => crypto.createHash('sha256').update(token).digest('hex').slice(0, 16);

/* parseJwt of a provider token, which comes back on every request for up
 * to an hour: parsed once, with what a request record shows of it
 * (frozen: the records share it). */
let parsedJwts = new Map();
function parseJwtOnce(token) {
	let jwt = parsedJwts.get(token);
	if (jwt) return jwt;
	jwt = parseJwt(token);
	jwt.auth = Object.freeze({ jwt_id: jwtId(token), header: jwt.header, claims: jwt.claims });
	if (parsedJwts.size >= 10000) parsedJwts = new Map();
	parsedJwts.set(token, jwt);
	return jwt;
}

/* ------------------------------------------------------------------ */
/* P-256 raw <-> KeyObject                                             */
/* ------------------------------------------------------------------ */

function p256PublicFromRaw(raw) {
	if (raw.length !== 65 || raw[0] !== 0x04)
		throw new Error('not a 65-byte uncompressed P-256 point');
	return crypto.createPublicKey({ format: 'jwk', key: {
		kty: 'EC', crv: 'P-256', x: b64url(raw.subarray(1, 33)), y: b64url(raw.subarray(33)) } });
}

function p256Raw(privateKey) {
	const jwk = privateKey.export({ format: 'jwk' });
	return {
		publicRaw: Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x, 'base64url'),
			Buffer.from(jwk.y, 'base64url')]),
		privateRaw: Buffer.from(jwk.d, 'base64url'),
	};
}

/* ------------------------------------------------------------------ */
/* Key material in DIR (created once, reused afterwards)               */
/* ------------------------------------------------------------------ */

function readJson(file) { return JSON.parse(fs.readFileSync(file, 'utf8')); }

function writeFileAtomic(file, text, mode = 0o600) {
	const tmp = `${file}.${process.pid}.tmp`;
	fs.writeFileSync(tmp, text, { mode });
	fs.renameSync(tmp, file);
}

function loadApnsKeys(dir) {
	const p8 = path.join(dir, 'apns.p8'), meta = path.join(dir, 'apns.json');
	if (!fs.existsSync(p8)) {
		const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
		writeFileAtomic(p8, privateKey.export({ format: 'pem', type: 'pkcs8' }));
	}
	if (!fs.existsSync(meta)) writeFileAtomic(meta, JSON.stringify(APNS_IDENTITY, null, 2) + '\n');
	const id = readJson(meta);
	return { ...id, publicKey: crypto.createPublicKey(crypto.createPrivateKey(fs.readFileSync(p8))) };
}

function loadFcmKeys(dir) {
	const file = path.join(dir, 'fcm-service-account.json');
	if (!fs.existsSync(file)) {
		const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
		const account = {
			type: 'service_account',
			project_id: FCM_PROJECT,
			private_key_id: crypto.randomBytes(20).toString('hex'),
			private_key: privateKey.export({ format: 'pem', type: 'pkcs8' }),
			client_email: FCM_EMAIL,
			client_id: '100000000000000000001',
			auth_uri: 'https://accounts.google.com/o/oauth2/auth',
			token_uri: '',   // filled in once the port is known
		};
		writeFileAtomic(file, JSON.stringify(account, null, 2) + '\n');
	}
	const account = readJson(file);
	return { file, account, publicKey: crypto.createPublicKey(account.private_key) };
}

/* The token_uri depends on the port chosen at start, so rewrite it. */
function setFcmTokenUri(fcm, uri) {
	fcm.account.token_uri = uri;
	writeFileAtomic(fcm.file, JSON.stringify(fcm.account, null, 2) + '\n');
}

function loadVapidKeys(dir) {
	const file = path.join(dir, 'vapid.json');
	if (!fs.existsSync(file)) {
		const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
		const { publicRaw, privateRaw } = p256Raw(privateKey);
		writeFileAtomic(file, JSON.stringify({ public_key: b64url(publicRaw),
			private_key: b64url(privateRaw), subject: VAPID_SUBJECT }, null, 2) + '\n');
	}
	const v = readJson(file);
	const publicRaw = Buffer.from(v.public_key, 'base64url');
	return { ...v, publicRaw, publicKey: p256PublicFromRaw(publicRaw) };
}

/* ------------------------------------------------------------------ */
/* Self-signed TLS certificate for the optional APNs-over-TLS mode     */
/* ------------------------------------------------------------------ */

/* Just enough DER to write one X.509 v3 certificate (RFC 5280). */
const der = {
	len(n) {
		if (n < 0x80) return Buffer.from([n]);
		const b = [];
		for (; n; n >>= 8) b.unshift(n & 0xff);
		return Buffer.from([0x80 | b.length, ...b]);
	},
	tlv: (tag, ...parts) => {
		const body = Buffer.concat(parts);
		return Buffer.concat([Buffer.from([tag]), der.len(body.length), body]);
	},
	seq: (...p) => der.tlv(0x30, ...p),
	set: (...p) => der.tlv(0x31, ...p),
	int: (buf) => der.tlv(0x02, buf[0] & 0x80 ? Buffer.concat([Buffer.from([0]), buf]) : buf),
	oid(dotted) {
		const [a, b, ...rest] = dotted.split('.').map(Number);
		const out = [40 * a + b];
		for (let n of rest) {
			const chunk = [n & 0x7f];
			while ((n >>= 7)) chunk.unshift(0x80 | (n & 0x7f));
			out.push(...chunk);
		}
		return der.tlv(0x06, Buffer.from(out));
	},
	time(d) {   // RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime after
		const g = d.toISOString().replace(/[-:T]|\.\d+/g, '');   // YYYYMMDDHHMMSSZ
		return d.getUTCFullYear() < 2050 ? der.tlv(0x17, Buffer.from(g.slice(2))) : der.tlv(0x18, Buffer.from(g));
	},
	bits: (buf) => der.tlv(0x03, Buffer.from([0]), buf),
	octets: (buf) => der.tlv(0x04, buf),
	explicit: (n, ...p) => der.tlv(0xa0 + n, ...p),
	TRUE: Buffer.from([0x01, 0x01, 0xff]),
};

/* A self-signed P-256 certificate, usable as its own CA file (libcurl's
 * CURLOPT_CAINFO), valid for 127.0.0.1, ::1, localhost and `host`. */
function makeCertificate(privateKey, host) {
	const ecdsaSha256 = der.seq(der.oid('1.2.840.10045.4.3.2'));
	const name = der.seq(der.set(der.seq(der.oid('2.5.4.3'), der.tlv(0x0c, Buffer.from('sockudo push mock')))));
	const san = [der.tlv(0x87, Buffer.from([127, 0, 0, 1])),                    // IP 127.0.0.1
		der.tlv(0x87, Buffer.concat([Buffer.alloc(15), Buffer.from([1])])),  // IP ::1
		der.tlv(0x82, Buffer.from('localhost'))];                            // DNS localhost
	// Another listen address: an IPv4 address or a DNS name (not other IPv6).
	if (net.isIPv4(host) && host !== '127.0.0.1' && host !== '0.0.0.0')
		san.push(der.tlv(0x87, Buffer.from(host.split('.').map(Number))));
	else if (host && !net.isIP(host) && host !== 'localhost')
		san.push(der.tlv(0x82, Buffer.from(host)));
	const serial = crypto.randomBytes(16);
	serial[0] = (serial[0] & 0x7f) | 0x40;   // positive, and minimal DER (no leading zero)
	const tbs = der.seq(
		der.explicit(0, der.int(Buffer.from([2]))),                      // v3
		der.int(serial),
		ecdsaSha256,
		name,
		der.seq(der.time(new Date(Date.now() - 86400e3)), der.time(new Date(Date.now() + 3650 * 86400e3))),
		name,
		crypto.createPublicKey(privateKey).export({ type: 'spki', format: 'der' }),
		der.explicit(3, der.seq(
			der.seq(der.oid('2.5.29.17'), der.octets(der.seq(...san))),  // subjectAltName
			der.seq(der.oid('2.5.29.19'), der.TRUE, der.octets(der.seq(der.TRUE))))));  // CA:TRUE, critical
	const cert = der.seq(tbs, ecdsaSha256, der.bits(crypto.sign('sha256', tbs, privateKey)));
	const lines = cert.toString('base64').match(/.{1,64}/g).join('\n');
	return `-----BEGIN CERTIFICATE-----\n${lines}\n-----END CERTIFICATE-----\n`;
}

/* DIR/apns-tls.key and DIR/apns-tls.crt, created once. */
function loadTlsMaterial(dir, host) {
	const keyFile = path.join(dir, 'apns-tls.key'), certFile = path.join(dir, 'apns-tls.crt');
	if (!fs.existsSync(keyFile) || !fs.existsSync(certFile)) {
		const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
		writeFileAtomic(keyFile, privateKey.export({ format: 'pem', type: 'pkcs8' }));
		writeFileAtomic(certFile, makeCertificate(privateKey, host), 0o644);
	}
	return { key: fs.readFileSync(keyFile), cert: fs.readFileSync(certFile), certFile };
}

/* ------------------------------------------------------------------ */
/* RFC 8291 / RFC 8188 decryption (the user agent's side)              */
/* ------------------------------------------------------------------ */

const hmac = (key, ...data) => {
	const h = crypto.createHmac('sha256', key);
	for (const d of data) h.update(d);
	return h.digest();
};

/*
 * Decrypts an aes128gcm Web Push body for the subscription whose private key
 * is uaPrivate (32 bytes) and auth secret authSecret (16 bytes).  Written out
 * step by step after RFC 8291 §3.3-3.4 and RFC 8188 §2, with HMAC instead of
 * a HKDF helper, so the test's encryptor (hkdfSync) is an independent check.
 * Throws an Error saying what is wrong.
 */
function webpushDecrypt(body, uaPrivate, authSecret) {
	body = Buffer.from(body);
	if (body.length < 21) throw new Error('body shorter than the 21-byte aes128gcm header');
	const salt = body.subarray(0, 16);
	const rs = body.readUInt32BE(16);
	const idlen = body[20];
	if (idlen !== 65) throw new Error(`keyid length is ${idlen}; RFC 8291 puts the 65-byte sender key there`);
	if (body.length < 21 + idlen) throw new Error('body ends inside the keyid');
	const asPublic = body.subarray(21, 21 + idlen);
	const records = body.subarray(21 + idlen);
	if (rs < 18) throw new Error(`record size ${rs} is below the minimum 18`);
	// RFC 8291 §4: the push message is a single record.
	if (records.length > rs) throw new Error(`ciphertext (${records.length}) exceeds rs ${rs}: more than one record`);
	if (records.length < 17) throw new Error('ciphertext shorter than a delimiter and a 16-byte tag');

	const ua = crypto.createECDH('prime256v1');
	ua.setPrivateKey(uaPrivate);
	const uaPublic = ua.getPublicKey();
	let ecdhSecret;
	try { ecdhSecret = ua.computeSecret(asPublic); }
	catch { throw new Error('keyid is not a valid P-256 public key'); }

	// RFC 8291 §3.4
	const prkKey = hmac(authSecret, ecdhSecret);
	const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), uaPublic, asPublic]);
	const ikm = hmac(prkKey, keyInfo, Buffer.from([1]));
	// RFC 8188 §2.2-2.3
	const prk = hmac(salt, ikm);
	const cek = hmac(prk, Buffer.from('Content-Encoding: aes128gcm\0\x01')).subarray(0, 16);
	const nonce = hmac(prk, Buffer.from('Content-Encoding: nonce\0\x01')).subarray(0, 12);

	// One record, sequence number 0, so the nonce is used as is.
	const decipher = crypto.createDecipheriv('aes-128-gcm', cek, nonce);
	decipher.setAuthTag(records.subarray(-16));
	let padded;
	try { padded = Buffer.concat([decipher.update(records.subarray(0, -16)), decipher.final()]); }
	catch { throw new Error('AES-128-GCM authentication failed (wrong keys or tampered body)'); }

	// RFC 8188 §2: data, then a delimiter (0x02 in the last record), then zeros.
	let i = padded.length - 1;
	while (i >= 0 && padded[i] === 0) i--;
	if (i < 0) throw new Error('record is all padding, no delimiter');
	if (padded[i] !== 2) throw new Error(`last record delimiter is 0x${padded[i].toString(16)}, not 0x02`);
	return padded.subarray(0, i);
}

/* ------------------------------------------------------------------ */
/* Per-provider state: the request log and the scripted behaviours     */
/* ------------------------------------------------------------------ */

const LOG_MAX = 200000;   /* requests kept per log */

class ProviderState {
	constructor(name) {
		this.name = name;
		this.log = [];
		this.scripts = new Map();
	}

	/* statuses: numbers or {status, delay_ms, reason, retry_after, body}; body
	 * (FCM's token endpoint only): answer 200 with it instead of a token, sent
	 * as JSON, or as it is when a string (a client must survive any answer). */
	script(token, statuses, delayMs) {
		if (statuses === undefined || statuses === null) statuses = [0];   // 0: plain success
		if (!Array.isArray(statuses)) throw new Error('statuses must be an array');
		const steps = statuses.map((s) => {
			const step = typeof s === 'object' && s !== null ? { ...s } : { status: s };
			step.status = Number(step.status) || 0;
			if (step.delay_ms === undefined && delayMs) step.delay_ms = Number(delayMs);
			return step;
		});
		this.scripts.set(String(token), steps);
	}

	/* The next scripted step for a token; '*' scripts any device token. */
	take(token, wildcard = true) {
		for (const key of wildcard ? [String(token), '*'] : [String(token)]) {
			const steps = this.scripts.get(key);
			if (steps && steps.length) {
				const step = steps.shift();
				if (!steps.length) this.scripts.delete(key);
				return step;
			}
		}
		return null;
	}

	begin(path, headers, log = this.log) {
		const rec = { at_ms: Date.now(), path, token: null, status: null,
			headers, body: null, verified: false, reason: null };
		// Bounded, oldest first out: a fan-out benchmark sends hundreds of
		// thousands, and a heap that only grows makes every request slower.
		if (log.length >= LOG_MAX) log.splice(0, LOG_MAX / 2);
		log.push(rec);
		return rec;
	}

	reset() {
		this.log = [];
		this.scripts.clear();
	}
}

/* Applies a scripted step: waits, then either lets the success through
 * (status 0 or 2xx; resolves to the step) or throws the provider's error
 * for that status. */
async function runStep(step, refusalFor) {
	if (!step) return null;
	if (step.delay_ms > 0) await sleep(step.delay_ms);
	if (step.status === 0 || (step.status >= 200 && step.status < 300)) return step;
	const r = refusalFor(step.status, step.reason);
	r.detail = `scripted by /_mock/behavior (${r.detail})`;
	if (step.retry_after !== undefined) r.extra.retryAfter = step.retry_after;
	throw r;
}

/* Tokens that fail without setup. */
function prefixKind(token) {
	if (typeof token !== 'string') return null;
	if (token.startsWith('gone-')) return 'gone';
	if (token.startsWith('bad-')) return 'bad';
	return null;
}

/* ------------------------------------------------------------------ */
/* Shared HTTP plumbing                                                */
/* ------------------------------------------------------------------ */

/* Reads the body; over the limit it keeps draining so we can still answer. */
function readBody(req, limit = MAX_REQUEST_BODY) {
	return new Promise((resolve, reject) => {
		const chunks = [];
		let size = 0;
		req.on('data', (c) => {
			size += c.length;
			if (size <= limit) chunks.push(c);
		});
		req.on('end', () => resolve({ buf: Buffer.concat(chunks), size }));
		req.on('error', reject);
	});
}

function send(res, status, headers, body) {
	if (res.headersSent || res.destroyed || (res.stream && res.stream.destroyed)) return;
	const payload = body === undefined || body === null ? '' :
		Buffer.isBuffer(body) ? body : typeof body === 'string' ? body : JSON.stringify(body);
	const h = {};
	for (const [k, v] of Object.entries(headers)) if (v !== undefined) h[k] = v;
	if (payload.length && !h['content-type']) h['content-type'] = 'application/json';
	h['content-length'] = Buffer.byteLength(payload);
	try {
		res.writeHead(status, h);
		res.end(payload);
	} catch (e) {
		// Usually the client went away (timeout tests).  Otherwise reset the
		// stream rather than leave the client waiting forever.
		process.stderr.write(`push mocks: cannot answer: ${e.message}\n`);
		try { res.destroy(); } catch { /* already gone */ }
	}
}

/*
 * The control endpoints every mock shares:
 *   GET  /_mock/requests            the log (?token=T, ?prefix=P filter)
 *   POST /_mock/reset               clears log and behaviours
 *   POST /_mock/behavior            {token, statuses, delay_ms}
 * Provider-specific extras are passed in `extra` as {'METHOD /path': fn}.
 */
function handleControl(state, req, res, url, body, extra = {}) {
	const key = `${req.method} ${url.pathname}`;
	const json = parseJsonOr(body, {});
	if (key === 'GET /_mock/requests') {
		const token = url.searchParams.get('token');
		const prefix = url.searchParams.get('prefix');
		return send(res, 200, {}, state.log.filter((r) => (token === null || r.token === token) &&
			(prefix === null || (typeof r.token === 'string' && r.token.startsWith(prefix)))));
	}
	if (key === 'POST /_mock/reset') {
		state.reset();
		if (extra.onReset) extra.onReset();
		return send(res, 200, {}, { ok: true });
	}
	if (key === 'POST /_mock/behavior') {
		if (json.token === undefined) return send(res, 400, {}, { error: 'token is required' });
		try { state.script(json.token, json.statuses, json.delay_ms); }
		catch (e) { return send(res, 400, {}, { error: e.message }); }
		return send(res, 200, {}, { ok: true });
	}
	if (extra[key]) return extra[key](json, res, url);
	return send(res, 404, {}, { error: `no control endpoint ${key}` });
}

/*
 * Runs one provider request: records it, calls the handler, turns a thrown
 * Refusal into the provider's error format, and fills in the record.
 * handler(req, url, body, rec) resolves to {status, headers, body}.
 */
async function runRequest(mock, req, res, url, body, rec) {
	let result;
	try {
		result = await mock.handle(req, url, body, rec);
		rec.verified = true;
	} catch (e) {
		const r = e instanceof Refusal ? e : new Refusal(500, 'MockBug', `mock error: ${e.stack || e}`);
		if (!(e instanceof Refusal)) process.stderr.write(`${mock.state.name} mock: ${e.stack || e}\n`);
		result = mock.render(r, rec);
		rec.reason = r.code;
		rec.detail = r.detail;
	}
	rec.status = result.status;
	if (mock.log) mock.log(mock.state.name, rec);
	send(res, result.status, result.headers || {}, result.body);
}

function makeDispatcher(mock) {
	return async (req, res) => {
		const url = new URL(req.url, 'http://mock.invalid');
		let body;
		try { body = await readBody(req); } catch { return; }
		// A stream reset before its body came (e.g. REFUSED_STREAM, which a
		// client retries elsewhere) was never received: no record, no answer.
		if (req.aborted) return;
		if (url.pathname.startsWith('/_mock/'))
			return handleControl(mock.state, req, res, url, body.buf, mock.control);
		const log = mock.logFor ? mock.logFor(url.pathname) : undefined;
		const rec = mock.state.begin(url.pathname, pick(req.headers, mock.recordHeaders), log);
		rec.body_bytes = body.size;
		return runRequest(mock, req, res, url, body, rec);
	};
}

/* ------------------------------------------------------------------ */
/* APNs                                                                */
/* ------------------------------------------------------------------ */

const APNS_PUSH_TYPES = ['alert', 'background', 'voip', 'complication', 'fileprovider',
	'mdm', 'liveactivity', 'location', 'pushtotalk', 'widgets', 'controls'];
const APNS_STATUS_REASON = { 400: 'BadDeviceToken', 403: 'ExpiredProviderToken', 404: 'BadPath',
	405: 'MethodNotAllowed', 410: 'Unregistered', 413: 'PayloadTooLarge', 429: 'TooManyRequests',
	500: 'InternalServerError', 503: 'ServiceUnavailable' };
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const apnsRefusal = (status, reason) =>
	new Refusal(status, reason || APNS_STATUS_REASON[status] || 'InternalServerError');

/* Apple's provider token: ES256, kid = key id, iss = team id, iat within
 * the last hour (older is ExpiredProviderToken). */
function checkApnsJwt(keys, authorization, rec) {
	if (!authorization) throw new Refusal(403, 'MissingProviderToken', 'no authorization header');
	const m = /^bearer\s+(\S+)$/i.exec(authorization);
	if (!m) throw new Refusal(403, 'InvalidProviderToken', 'authorization is not "bearer <JWT>"');
	let jwt;
	try { jwt = parseJwtOnce(m[1]); } catch (e) { throw new Refusal(403, 'InvalidProviderToken', e.message); }
	rec.auth = jwt.auth;
	if (jwt.header.kid !== keys.key_id)
		throw new Refusal(403, 'InvalidProviderToken', `kid ${JSON.stringify(jwt.header.kid)} is not ${keys.key_id}`);
	const problem = es256Problem(jwt, keys.publicKey);
	if (problem) throw new Refusal(403, 'InvalidProviderToken', problem);
	const { iss, iat } = jwt.claims;
	if (iss !== keys.team_id) throw new Refusal(403, 'InvalidProviderToken', `iss ${JSON.stringify(iss)} is not ${keys.team_id}`);
	if (!Number.isInteger(iat)) throw new Refusal(403, 'InvalidProviderToken', 'iat is not an integer (seconds)');
	if (iat > nowS() + CLOCK_SKEW_S) throw new Refusal(403, 'InvalidProviderToken', 'iat is in the future');
	if (iat < nowS() - 3600) throw new Refusal(403, 'ExpiredProviderToken', 'iat is more than an hour old');
}

function checkApnsHeaders(keys, h) {
	const topic = h['apns-topic'];
	if (topic === undefined || topic === '') throw new Refusal(400, 'MissingTopic');
	if (topic !== keys.topic) throw new Refusal(400, 'BadTopic', `apns-topic ${topic} is not ${keys.topic}`);
	const type = h['apns-push-type'];
	if (!APNS_PUSH_TYPES.includes(type))
		throw new Refusal(400, 'InvalidPushType', `apns-push-type ${JSON.stringify(type)}`);
	if (h['apns-priority'] !== undefined && !['1', '5', '10'].includes(h['apns-priority']))
		throw new Refusal(400, 'BadPriority', `apns-priority ${h['apns-priority']}`);
	if (h['apns-expiration'] !== undefined && !/^\d+$/.test(h['apns-expiration']))
		throw new Refusal(400, 'BadExpirationDate', `apns-expiration ${h['apns-expiration']}`);
	if (h['apns-id'] !== undefined && !UUID_RE.test(h['apns-id']))
		throw new Refusal(400, 'BadMessageId', `apns-id ${h['apns-id']}`);
	if (h['apns-collapse-id'] !== undefined && Buffer.byteLength(h['apns-collapse-id']) > 64)
		throw new Refusal(400, 'BadCollapseId');
}

function checkApnsPayload(body, pushType) {
	if (body.size === 0) throw new Refusal(400, 'PayloadEmpty');
	const limit = pushType === 'voip' ? 5120 : APNS_MAX_PAYLOAD;
	if (body.size > limit) throw new Refusal(413, 'PayloadTooLarge', `${body.size} bytes > ${limit}`);
	const payload = parseJsonOr(body.buf, undefined);
	// Apple documents no reason code for malformed JSON; the mock refuses it
	// anyway with a distinct code so a client bug cannot pass unnoticed.
	if (!isPlainObject(payload)) throw new Refusal(400, 'BadPayload', 'body is not a JSON object');
	if (!isPlainObject(payload.aps)) throw new Refusal(400, 'BadPayload', 'payload has no "aps" object');
	return payload;
}

function apnsMock(keys, state) {
	return {
		state,
		recordHeaders: ['apns-topic', 'apns-push-type', 'apns-priority', 'apns-expiration',
			'apns-collapse-id', 'apns-id', 'content-type'],
		async handle(req, url, body, rec) {
			// Echo the client's apns-id, or make one up as APNs does.
			const asked = req.headers['apns-id'];
			rec.apns_id = asked && UUID_RE.test(asked) ? asked : crypto.randomUUID();
			// The sniffing listener also serves HTTP/1.1 (for the control
			// endpoints); APNs itself only speaks HTTP/2.
			if (req.httpVersionMajor < 2)
				throw new Refusal(505, 'HTTP2Required', 'APNs accepts HTTP/2 only');
			const m = /^\/3\/device\/([^/]*)$/.exec(url.pathname);
			if (!m) throw new Refusal(404, 'BadPath', `path ${url.pathname}`);
			rec.token = decodeURIComponent(m[1]);
			if (req.method !== 'POST') throw new Refusal(405, 'MethodNotAllowed');
			checkApnsJwt(keys, req.headers.authorization, rec);
			checkApnsHeaders(keys, req.headers);
			if (rec.token === '') throw new Refusal(400, 'MissingDeviceToken');
			rec.body = checkApnsPayload(body, req.headers['apns-push-type']);
			rec.verified = true;   // a real APNs would accept this request
			await runStep(state.take(rec.token), apnsRefusal);
			const kind = prefixKind(rec.token);
			if (kind === 'gone') throw apnsRefusal(410);
			if (kind === 'bad') throw apnsRefusal(400);
			return { status: 200, headers: { 'apns-id': rec.apns_id } };
		},
		render(r, rec) {
			const body = { reason: r.code };
			// 410 carries the time (ms) APNs learned the token went stale.
			if (r.status === 410) body.timestamp = Date.now();
			const headers = { 'apns-id': rec.apns_id || crypto.randomUUID() };
			if (r.extra.retryAfter !== undefined) headers['retry-after'] = String(r.extra.retryAfter);
			return { status: r.status, headers, body };
		},
	};
}

/* ------------------------------------------------------------------ */
/* FCM HTTP v1 and its OAuth2 token endpoint                           */
/* ------------------------------------------------------------------ */

const FCM_ERRORS = {
	400: ['INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'The registration token is not a valid FCM registration token'],
	401: ['UNAUTHENTICATED', null, 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.'],
	403: ['PERMISSION_DENIED', 'SENDER_ID_MISMATCH', 'SenderId mismatch'],
	404: ['NOT_FOUND', 'UNREGISTERED', 'Requested entity was not found.'],
	429: ['RESOURCE_EXHAUSTED', 'QUOTA_EXCEEDED', 'Quota exceeded for quota metric \'Send requests\'.'],
	500: ['INTERNAL', 'INTERNAL', 'Internal error encountered.'],
	503: ['UNAVAILABLE', 'UNAVAILABLE', 'The service is currently unavailable.'],
};

function fcmRefusal(status, errorCode, message) {
	const [st, code, msg] = FCM_ERRORS[status] || ['UNKNOWN', 'UNSPECIFIED_ERROR', 'Unknown error'];
	return new Refusal(status, errorCode === undefined ? code : errorCode, message || msg, { status: st });
}

/* A 400 for a malformed message, as Google reports a field violation. */
const fcmBadField = (field, description) => new Refusal(400, 'INVALID_ARGUMENT',
	`Invalid value at '${field}': ${description}`, { status: 'INVALID_ARGUMENT', field, description });

/* The OAuth 2 JWT-bearer grant (RFC 7523) as Google runs it. */
function checkFcmAssertion(fcm, form) {
	const bad = (desc) => new Refusal(400, 'invalid_grant', desc);
	if (form.get('grant_type') !== JWT_BEARER)
		throw new Refusal(400, 'unsupported_grant_type', `Invalid grant_type: ${form.get('grant_type')}`);
	const assertion = form.get('assertion');
	if (!assertion) throw new Refusal(400, 'invalid_request', 'Missing required parameter: assertion');
	let jwt;
	try { jwt = parseJwt(assertion); } catch (e) { throw bad(`Invalid JWT: ${e.message}`); }
	if (jwt.header.kid !== undefined && jwt.header.kid !== fcm.account.private_key_id)
		throw bad('Invalid JWT Signature. (kid is not the private_key_id)');
	const problem = rs256Problem(jwt, fcm.publicKey);
	if (problem) throw bad(`Invalid JWT Signature. (${problem})`);
	const c = jwt.claims;
	if (c.iss !== fcm.account.client_email) throw bad(`Invalid JWT: iss ${JSON.stringify(c.iss)} is not the client_email`);
	if (c.aud !== fcm.account.token_uri) throw bad(`Invalid JWT: aud ${JSON.stringify(c.aud)} is not ${fcm.account.token_uri}`);
	if (typeof c.scope !== 'string' || !c.scope.split(' ').includes(FCM_SCOPE))
		throw bad(`Invalid JWT: scope ${JSON.stringify(c.scope)} lacks ${FCM_SCOPE}`);
	const now = nowS();
	if (!Number.isInteger(c.iat) || !Number.isInteger(c.exp) || c.exp <= c.iat || c.exp - c.iat > 3600 ||
	    c.iat > now + CLOCK_SKEW_S || c.exp < now)
		throw bad('Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.');
	return jwt;
}

const FCM_MESSAGE_FIELDS = ['name', 'data', 'notification', 'android', 'webpush', 'apns',
	'fcm_options', 'token', 'topic', 'condition'];

/* Checks the parts of a v1 message that Google's JSON parser enforces and
 * that a C client can plausibly get wrong (maps must hold strings, exactly
 * one target, no unknown fields, durations as "123s"). */
function checkFcmMessage(req) {
	if (!isPlainObject(req)) throw fcmBadField('', 'body is not a JSON object');
	for (const k of Object.keys(req))
		if (k !== 'message' && k !== 'validate_only') throw fcmBadField(k, 'Unknown name');
	const msg = req.message;
	if (!isPlainObject(msg)) throw fcmBadField('message', 'message is required');
	for (const k of Object.keys(msg))
		if (!FCM_MESSAGE_FIELDS.includes(k)) throw fcmBadField(`message.${k}`, 'Unknown name');
	const targets = ['token', 'topic', 'condition'].filter((k) => msg[k] !== undefined);
	if (targets.length !== 1) throw fcmBadField('message', 'exactly one of token, topic, condition is required');
	if (typeof msg[targets[0]] !== 'string') throw fcmBadField(`message.${targets[0]}`, 'must be a string');
	checkStringMap(msg.data, 'message.data');
	// FCM refuses these data keys (its documentation calls them reserved).
	for (const k of Object.keys(msg.data || {}))
		if (k === 'from' || k === 'message_type' || /^(google|gcm)/i.test(k))
			throw fcmBadField(`message.data[${k}]`, 'reserved key');
	if (msg.notification !== undefined) {
		if (!isPlainObject(msg.notification)) throw fcmBadField('message.notification', 'must be an object');
		for (const [k, v] of Object.entries(msg.notification)) {
			if (!['title', 'body', 'image'].includes(k)) throw fcmBadField(`message.notification.${k}`, 'Unknown name');
			if (typeof v !== 'string') throw fcmBadField(`message.notification.${k}`, 'must be a string');
		}
	}
	for (const k of ['android', 'webpush', 'apns', 'fcm_options'])
		if (msg[k] !== undefined && !isPlainObject(msg[k])) throw fcmBadField(`message.${k}`, 'must be an object');
	if (msg.android) {
		checkStringMap(msg.android.data, 'message.android.data');
		if (msg.android.ttl !== undefined && !/^\d+(\.\d{1,9})?s$/.test(msg.android.ttl))
			throw fcmBadField('message.android.ttl', 'Duration must be a string like "3600s"');
		if (msg.android.priority !== undefined && !/^(normal|high)$/i.test(msg.android.priority))
			throw fcmBadField('message.android.priority', 'must be NORMAL or HIGH');
	}
	if (msg.apns) checkStringMap(msg.apns.headers, 'message.apns.headers');
	if (msg.webpush) checkStringMap(msg.webpush.headers, 'message.webpush.headers');
	return msg;
}

function checkStringMap(v, field) {
	if (v === undefined) return;
	if (!isPlainObject(v)) throw fcmBadField(field, 'must be an object of strings');
	for (const [k, x] of Object.entries(v))
		if (typeof x !== 'string') throw fcmBadField(`${field}[${k}]`, `map values must be strings, got ${typeof x}`);
}

function fcmMock(fcm, state) {
	const issued = new Map();    // access token -> expiry (ms)
	const tokenLog = [];
	const mock = {
		state,
		issued,
		tokenLog,
		recordHeaders: ['content-type', 'user-agent'],
		// Token exchanges are kept apart from sends: tokenRequests() counts them.
		logFor: (pathname) => (pathname === '/token' ? tokenLog : undefined),
		control: {
			onReset: () => { tokenLog.length = 0; },
			'GET /_mock/token_requests': (_, res) => send(res, 200, {}, { count: tokenLog.length, requests: tokenLog }),
			'POST /_mock/revoke_tokens': (_, res) => { issued.clear(); send(res, 200, {}, { ok: true }); },
		},
		async handle(req, url, body, rec) {
			if (url.pathname === '/token') return tokenEndpoint(req, body, rec);
			const m = /^\/v1\/projects\/([^/]+)\/messages:send$/.exec(url.pathname);
			if (!m) throw fcmRefusal(404, null, `The requested URL ${url.pathname} was not found.`);
			if (req.method !== 'POST') throw fcmRefusal(404, null, `Method ${req.method} not found`);
			checkBearer(req.headers.authorization);
			if (m[1] !== fcm.account.project_id)
				throw fcmRefusal(403, null, `Permission denied on project ${m[1]}`);
			// Google parses a form-encoded body as query parameters and fails;
			// libcurl sends form-encoded unless the client sets the type.
			if (!/^application\/json\s*(;|$)/i.test(req.headers['content-type'] || ''))
				throw fcmBadField('', `Content-Type ${req.headers['content-type']} is not application/json`);
			const parsed = parseJsonOr(body.buf, undefined);
			rec.body = parsed === undefined ? body.buf.toString('utf8') : parsed;
			if (parsed === undefined) throw fcmBadField('', 'Invalid JSON payload received.');
			if (isPlainObject(parsed.message)) rec.token = parsed.message.token ?? null;
			const msg = checkFcmMessage(parsed);
			rec.token = msg.token ?? msg.topic ?? msg.condition;
			rec.verified = true;
			const id = parsed.validate_only ? 'fake_message_id' : `0:${Date.now()}%${crypto.randomBytes(8).toString('hex')}`;
			await runStep(state.take(rec.token), (s, reason) => fcmRefusal(s, reason));
			const kind = prefixKind(msg.token);
			if (kind === 'gone') throw fcmRefusal(404);
			if (kind === 'bad') throw fcmRefusal(400);
			return { status: 200, body: { name: `projects/${fcm.account.project_id}/messages/${id}` } };
		},
		render(r, rec) {
			if (rec.path === '/token') return { status: r.status, body: { error: r.code, error_description: r.detail } };
			const error = { code: r.status, message: r.detail, status: r.extra.status || 'UNKNOWN' };
			if (r.extra.field !== undefined) {
				error.details = [{ '@type': 'type.googleapis.com/google.rpc.BadRequest',
					fieldViolations: [{ field: r.extra.field, description: r.extra.description }] }];
			} else if (r.code) {
				error.details = [{ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: r.code }];
			}
			const headers = { 'content-type': 'application/json; charset=UTF-8' };
			if (r.extra.retryAfter !== undefined) headers['retry-after'] = String(r.extra.retryAfter);
			return { status: r.status, headers, body: { error } };
		},
	};

	function checkBearer(authorization) {
		const m = /^Bearer\s+(\S+)$/i.exec(authorization || '');
		const exp = m && issued.get(m[1]);
		if (!exp || exp < Date.now())
			throw fcmRefusal(401, null, m ? undefined : 'Request is missing required authentication credential.');
	}

	async function tokenEndpoint(req, body, rec) {
		if (req.method !== 'POST') throw new Refusal(405, 'invalid_request', 'POST required');
		if (!/^application\/x-www-form-urlencoded/i.test(req.headers['content-type'] || ''))
			throw new Refusal(400, 'invalid_request', 'body must be application/x-www-form-urlencoded');
		const form = new URLSearchParams(body.buf.toString('utf8'));
		rec.body = Object.fromEntries(form);
		const jwt = checkFcmAssertion(fcm, form);
		rec.auth = { header: jwt.header, claims: jwt.claims };
		rec.verified = true;
		const step = await runStep(state.take(FCM_OAUTH_KEY, false),
			(s, reason) => new Refusal(s, reason || 'internal_failure', `status ${s}`));
		if (step && step.body !== undefined) {
			rec.crafted = true;   // what a broken or hostile token endpoint might answer
			return { status: step.status || 200, headers: { 'content-type': 'application/json' }, body: step.body };
		}
		const token = `ya29.mock-${crypto.randomBytes(24).toString('base64url')}`;
		issued.set(token, Date.now() + 3599 * 1000);
		return { status: 200, headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
			body: { access_token: token, expires_in: 3599, token_type: 'Bearer' } };
	}

	return mock;
}

/* ------------------------------------------------------------------ */
/* Web Push push service (RFC 8030, 8291, 8292)                        */
/* ------------------------------------------------------------------ */

const WEB_ERROR_TEXT = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found',
	410: 'Gone', 413: 'Payload Too Large', 429: 'Too Many Requests', 500: 'Internal Server Error',
	503: 'Service Unavailable' };
const webRefusal = (status, reason, detail) =>
	new Refusal(status, reason || WEB_ERROR_TEXT[status] || 'Error', detail);

/* RFC 8292 §3: Authorization: vapid t=<JWT>, k=<base64url P-256 point>. */
function parseVapidHeader(value) {
	const m = /^vapid\s+(.*)$/i.exec(value || '');
	if (!m) throw webRefusal(401, 'Unauthorized', 'Authorization is not the RFC 8292 "vapid" scheme');
	const params = {};
	for (const part of m[1].split(',')) {
		const eq = part.indexOf('=');
		if (eq < 0) continue;
		params[part.slice(0, eq).trim().toLowerCase()] = part.slice(eq + 1).trim();
	}
	if (!params.t || !params.k) throw webRefusal(401, 'Unauthorized', 'vapid needs both t= and k=');
	return params;
}

function checkVapid(vapid, authorization, origin, rec) {
	const { t, k } = parseVapidHeader(authorization);
	let key;
	try { key = b64urlDecode(k, 'k'); } catch (e) { throw webRefusal(401, 'Unauthorized', e.message); }
	// The subscription is bound to the application server key in vapid.json.
	if (!key.equals(vapid.publicRaw)) throw webRefusal(403, 'Forbidden', 'k is not the VAPID public key');
	let jwt;
	try { jwt = parseJwt(t); } catch (e) { throw webRefusal(401, 'Unauthorized', e.message); }
	rec.auth = { jwt_id: jwtId(t), header: jwt.header, claims: jwt.claims };
	const problem = es256Problem(jwt, vapid.publicKey);
	if (problem) throw webRefusal(401, 'Unauthorized', problem);
	const { aud, exp, sub } = jwt.claims;
	if (aud !== origin) throw webRefusal(401, 'Unauthorized', `aud ${JSON.stringify(aud)} is not ${origin}`);
	if (!Number.isInteger(exp) || exp <= nowS()) throw webRefusal(401, 'Unauthorized', 'exp is missing or past');
	if (exp > nowS() + 24 * 3600) throw webRefusal(401, 'Unauthorized', 'exp is more than 24 hours ahead');
	if (typeof sub !== 'string' || !/^(mailto:|https:)/.test(sub))
		throw webRefusal(401, 'Unauthorized', 'sub must be a mailto: or https: URI');
}

/* RFC 8030 headers: TTL required; Urgency and Topic constrained. */
function checkWebHeaders(h) {
	if (h.ttl === undefined || !/^\d+$/.test(h.ttl)) throw webRefusal(400, 'Bad Request', 'TTL header missing or not a non-negative integer');
	if (h.urgency !== undefined && !['very-low', 'low', 'normal', 'high'].includes(h.urgency))
		throw webRefusal(400, 'Bad Request', `Urgency ${h.urgency}`);
	if (h.topic !== undefined && !/^[A-Za-z0-9_-]{1,32}$/.test(h.topic))
		throw webRefusal(400, 'Bad Request', 'Topic must be at most 32 base64url characters');
}

function webMock(vapid, state, origin) {
	const subs = new Map();   // id -> {ecdh, auth, endpoint, gone}
	let messages = 0;
	const mock = {
		state,
		subs,
		recordHeaders: ['ttl', 'urgency', 'topic', 'content-encoding', 'content-type', 'content-length'],
		subscribe(id) {
			id = id ? String(id) : crypto.randomBytes(12).toString('base64url');
			const ecdh = crypto.createECDH('prime256v1');
			ecdh.generateKeys();
			const sub = { ecdh, auth: crypto.randomBytes(16), endpoint: `${origin()}/push/${id}`, gone: false };
			subs.set(id, sub);
			return { endpoint: sub.endpoint, expirationTime: null,
				keys: { p256dh: b64url(ecdh.getPublicKey()), auth: b64url(sub.auth) } };
		},
		control: {
			'POST /_mock/subscribe': (json, res) => send(res, 201, {}, mock.subscribe(json.id)),
			'POST /_mock/unsubscribe': (json, res) => {
				const sub = subs.get(String(json.id));
				if (sub) sub.gone = true;
				send(res, sub ? 200 : 404, {}, { ok: !!sub });
			},
		},
		async handle(req, url, body, rec) {
			const m = /^\/push\/([^/]+)$/.exec(url.pathname);
			if (!m) throw webRefusal(404);
			rec.token = decodeURIComponent(m[1]);
			if (req.method !== 'POST') throw webRefusal(405, 'Method Not Allowed');
			checkVapid(vapid, req.headers.authorization, origin(), rec);
			// gone-/bad- endpoints are answered on the VAPID check alone, before
			// the body is looked at, as a push service does for dead endpoints.
			const kind = prefixKind(rec.token);
			if (kind) rec.verified = true;
			if (kind === 'gone') throw webRefusal(410);
			if (kind === 'bad') throw webRefusal(404);
			const sub = subs.get(rec.token);
			if (!sub) throw webRefusal(404, 'Not Found', 'no such subscription');
			if (sub.gone) throw webRefusal(410, 'Gone', 'unsubscribed');
			checkWebHeaders(req.headers);
			if (body.size > WEB_MAX_BODY) throw webRefusal(413, 'Payload Too Large', `${body.size} bytes > ${WEB_MAX_BODY}`);
			rec.body = decryptWebBody(req.headers, body.buf, sub);
			rec.verified = true;
			await runStep(state.take(rec.token), (s, reason) => webRefusal(s, reason));
			const location = `${origin()}/message/${++messages}`;
			return { status: 201, headers: { location, ttl: req.headers.ttl } };
		},
		render(r) {
			const headers = {};
			if (r.extra.retryAfter !== undefined) headers['retry-after'] = String(r.extra.retryAfter);
			return { status: r.status, headers, body: { code: r.status, error: r.code, message: r.detail } };
		},
	};
	return mock;
}

/* An empty push (no body) is legal in RFC 8030; a body must be aes128gcm. */
function decryptWebBody(headers, buf, sub) {
	if (buf.length === 0) return '';
	if ((headers['content-encoding'] || '').toLowerCase() !== 'aes128gcm')
		throw webRefusal(400, 'Bad Request', `Content-Encoding ${headers['content-encoding']} is not aes128gcm`);
	try {
		return webpushDecrypt(buf, sub.ecdh.getPrivateKey(), sub.auth).toString('utf8');
	} catch (e) {
		throw webRefusal(400, 'Bad Request', `cannot decrypt: ${e.message}`);
	}
}

/* ------------------------------------------------------------------ */
/* Listeners                                                           */
/* ------------------------------------------------------------------ */

function listen(server, port, host) {
	return new Promise((resolve, reject) => {
		server.once('error', reject);
		server.listen(port, host, () => { server.off('error', reject); resolve(server.address().port); });
	});
}

/* Tracks sockets so close() does not wait for keep-alive clients. */
function trackSockets(server) {
	const sockets = new Set();
	server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
	return () => { for (const s of sockets) s.destroy(); };
}

/*
 * APNs listener: h2c with prior knowledge, as libcurl uses for http:// URLs.
 * It peeks at the first bytes so plain HTTP/1.1 clients (curl without flags,
 * fetch) can still reach /_mock/*; pushes over HTTP/1.1 are refused.
 */
function apnsListener(handler, tls) {
	// Optional TLS mode: h2 via ALPN as the real APNs, plus HTTP/1.1 for /_mock/*.
	if (tls) return http2.createSecureServer({ key: tls.key, cert: tls.cert, allowHTTP1: true,
		settings: { maxConcurrentStreams: 1000 } }, handler);
	const h2 = http2.createServer({ settings: { maxConcurrentStreams: 1000 } }, handler);
	const h1 = http.createServer(handler);
	const server = net.createServer((socket) => {
		socket.once('data', (chunk) => {
			socket.pause();
			socket.unshift(chunk);
			if (chunk.subarray(0, 4).toString('latin1') === 'PRI ') {
				h2.emit('connection', socket);
			} else {
				h1.emit('connection', socket);
				socket.resume();   // http's parser reads the socket handle; flush the peeked bytes
			}
		});
		socket.on('error', () => {});
	});
	return server;
}

/* ------------------------------------------------------------------ */
/* start()                                                             */
/* ------------------------------------------------------------------ */

/*
 * opts: {dir (required), host = '127.0.0.1', ports: {apns, fcm, web} (0 = any),
 *        tls: serve APNs over TLS (https, h2 by ALPN) instead of h2c, with
 *             DIR/apns-tls.crt as the CA file,
 *        log: fn(provider, record) called after each provider request}
 */
async function start(opts = {}) {
	if (!opts.dir) throw new Error('start(): opts.dir is required');
	const dir = path.resolve(opts.dir);
	fs.mkdirSync(dir, { recursive: true });
	const host = opts.host || '127.0.0.1';
	const urlHost = ['0.0.0.0', '::'].includes(host) ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
	const want = { apns: 0, fcm: 0, web: 0, ...(opts.ports || {}) };

	const keys = { apns: loadApnsKeys(dir), fcm: loadFcmKeys(dir), vapid: loadVapidKeys(dir) };
	const tls = opts.tls ? loadTlsMaterial(dir, host) : null;
	const states = { apns: new ProviderState('apns'), fcm: new ProviderState('fcm'), web: new ProviderState('web') };
	let webOrigin = '';
	const mocks = {
		apns: apnsMock(keys.apns, states.apns),
		fcm: fcmMock(keys.fcm, states.fcm),
		web: webMock(keys.vapid, states.web, () => webOrigin),
	};
	for (const m of Object.values(mocks)) m.log = opts.log;

	const servers = {
		apns: apnsListener(makeDispatcher(mocks.apns), tls),
		fcm: http.createServer(makeDispatcher(mocks.fcm)),
		web: http.createServer(makeDispatcher(mocks.web)),
	};
	const killers = Object.values(servers).map(trackSockets);
	const ports = {};
	try {
		for (const name of ['apns', 'fcm', 'web']) ports[name] = await listen(servers[name], want[name], host);
	} catch (e) {
		for (const s of Object.values(servers)) s.close();
		throw e;
	}

	const base = (p, scheme = 'http') => `${scheme}://${urlHost}:${p}`;
	webOrigin = base(ports.web);
	const urls = { apns: base(ports.apns, tls ? 'https' : 'http'), fcm: base(ports.fcm), fcmToken: `${base(ports.fcm)}/token`, web: base(ports.web) };
	setFcmTokenUri(keys.fcm, urls.fcmToken);

	const provider = (name) => {
		if (!states[name]) throw new Error(`unknown provider ${name} (apns, fcm, web)`);
		return states[name];
	};
	return {
		dir, ports, urls, keys,
		caFile: tls ? tls.certFile : null,
		requests: (name) => provider(name).log.slice(),
		reset: () => { for (const s of Object.values(states)) s.reset(); mocks.fcm.tokenLog.length = 0; },
		behavior: (name, token, statuses, { delay_ms } = {}) => provider(name).script(token, statuses, delay_ms),
		subscribe: (id) => mocks.web.subscribe(id),
		unsubscribe: (id) => { const s = mocks.web.subs.get(String(id)); if (s) s.gone = true; return !!s; },
		tokenRequests: () => mocks.fcm.tokenLog.length,
		tokenRequestLog: () => mocks.fcm.tokenLog.slice(),
		revokeTokens: () => mocks.fcm.issued.clear(),
		close: () => Promise.all(Object.values(servers).map((s, i) =>
			new Promise((resolve) => { s.close(() => resolve()); killers[i](); }))),
	};
}

/* ------------------------------------------------------------------ */
/* CLI                                                                 */
/* ------------------------------------------------------------------ */

function parseArgs(argv) {
	const opts = { host: '127.0.0.1', ports: { apns: 0, fcm: 0, web: 0 }, verbose: false };
	const portFlag = { '--apns-port': 'apns', '--fcm-port': 'fcm', '--web-port': 'web' };
	for (let i = 0; i < argv.length; i++) {
		const a = argv[i];
		const value = () => {
			if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
			return argv[++i];
		};
		if (a === '--dir') opts.dir = value();
		else if (a === '--host') opts.host = value();
		else if (portFlag[a]) opts.ports[portFlag[a]] = Number(value());
		else if (a === '--apns-tls') opts.tls = true;
		else if (a === '--verbose' || a === '-v') opts.verbose = true;
		else throw new Error(`unknown argument ${a}`);
	}
	if (!opts.dir) throw new Error('--dir DIR is required');
	for (const [k, v] of Object.entries(opts.ports))
		if (!Number.isInteger(v) || v < 0 || v > 65535) throw new Error(`bad --${k}-port`);
	return opts;
}

async function main() {
	let opts;
	try { opts = parseArgs(process.argv.slice(2)); } catch (e) {
		process.stderr.write(`${e.message}\nusage: node mocks.js --dir DIR [--host H] [--apns-port N] [--fcm-port N] [--web-port N] [--apns-tls] [--verbose]\n`);
		process.exit(2);
	}
	const portsFile = path.join(path.resolve(opts.dir), 'ports.json');
	fs.rmSync(portsFile, { force: true });   // never let a harness read a stale file
	if (opts.verbose) opts.log = (p, r) => process.stdout.write(`${JSON.stringify({ provider: p, ...r })}\n`);
	const m = await start(opts);
	writeFileAtomic(portsFile, JSON.stringify(m.ports) + '\n', 0o644);
	process.stderr.write(`push mocks: apns ${m.urls.apns} fcm ${m.urls.fcm} web ${m.urls.web}\n`);
	let stopping = false;
	const stop = () => {
		if (stopping) return;
		stopping = true;
		m.close().then(() => process.exit(0));
		setTimeout(() => process.exit(0), 2000).unref();
	};
	process.on('SIGTERM', stop);
	process.on('SIGINT', stop);
}

module.exports = { start, webpushDecrypt, parseJwt, APNS_IDENTITY, FCM_SCOPE, FCM_OAUTH_KEY };

if (require.main === module) {
	main().catch((e) => { process.stderr.write(`push mocks: ${e.stack || e}\n`); process.exit(1); });
}
