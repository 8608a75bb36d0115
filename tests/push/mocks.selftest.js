'use strict';
/*
 * Self-test for tests/push/mocks.js: proves the mocks check what they claim.
 * The clients here are written independently with node:crypto (JWT signing,
 * RFC 8291 encryption with hkdfSync) so a shared bug would not hide itself.
 *
 * Run: node --test tests/push/mocks.selftest.js
 */

const test = require('node:test');
const { describe, before, after, beforeEach } = test;
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const http2 = require('node:http2');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');

const mocks = require('./mocks');

const b64url = (b) => Buffer.from(b).toString('base64url');
const nowS = () => Math.floor(Date.now() / 1000);
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/* ------------------------------------------------------------------ */
/* Independent clients                                                 */
/* ------------------------------------------------------------------ */

function signJwt(alg, header, claims, privateKey) {
	const input = `${b64url(JSON.stringify({ alg, typ: 'JWT', ...header }))}.${b64url(JSON.stringify(claims))}`;
	const key = alg === 'ES256' ? { key: privateKey, dsaEncoding: 'ieee-p1363' } : privateKey;
	return `${input}.${b64url(crypto.sign('sha256', Buffer.from(input), key))}`;
}

/* One HTTP/2 (h2c prior knowledge) request; pass a session to reuse it. */
function h2post(origin, urlPath, headers, body, session) {
	return new Promise((resolve, reject) => {
		const client = session || http2.connect(origin);
		client.on('error', reject);
		const req = client.request({ ':method': 'POST', ':path': urlPath, ...headers });
		let data = '';
		let head;
		req.on('response', (h) => { head = h; });
		req.setEncoding('utf8');
		req.on('data', (d) => { data += d; });
		req.on('end', () => {
			if (!session) client.close();
			resolve({ status: head[':status'], headers: head, json: data ? JSON.parse(data) : null });
		});
		req.on('error', reject);
		req.end(body);
	});
}

/* One HTTP/1.1 request. */
function request(url, { method = 'POST', headers = {}, body } = {}) {
	return new Promise((resolve, reject) => {
		// undefined drops a header (tests of missing headers)
		headers = Object.fromEntries(Object.entries(headers).filter(([, v]) => v !== undefined));
		const req = http.request(url, { method, headers, agent: false }, (res) => {
			const chunks = [];
			res.on('data', (c) => chunks.push(c));
			res.on('end', () => {
				const text = Buffer.concat(chunks).toString('utf8');
				let json = null;
				try { json = JSON.parse(text); } catch { /* not JSON */ }
				resolve({ status: res.statusCode, headers: res.headers, text, json });
			});
		});
		req.on('error', reject);
		req.end(body);
	});
}

const postJson = (url, obj, headers = {}) => request(url, {
	headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(obj) });

/*
 * RFC 8291 encryption (the application server's side), using hkdfSync so it
 * is independent of the mock's HMAC-by-hand decryption.  asPrivate and salt
 * may be fixed to reproduce the RFC example.
 */
function encryptWebPush(plaintext, uaPublic, authSecret, { asPrivate, salt, rs = 4096, pad = 0, delimiter = 2 } = {}) {
	const as = crypto.createECDH('prime256v1');
	if (asPrivate) as.setPrivateKey(asPrivate); else as.generateKeys();
	const asPublic = as.getPublicKey();
	salt = salt || crypto.randomBytes(16);
	const ecdhSecret = as.computeSecret(uaPublic);
	const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), uaPublic, asPublic]);
	const ikm = Buffer.from(crypto.hkdfSync('sha256', ecdhSecret, authSecret, keyInfo, 32));
	const cek = Buffer.from(crypto.hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0'), 16));
	const nonce = Buffer.from(crypto.hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0'), 12));
	const cipher = crypto.createCipheriv('aes-128-gcm', cek, nonce);
	const record = Buffer.concat([Buffer.from(plaintext), Buffer.from([delimiter]), Buffer.alloc(pad)]);
	const ct = Buffer.concat([cipher.update(record), cipher.final(), cipher.getAuthTag()]);
	const header = Buffer.alloc(21);
	salt.copy(header, 0);
	header.writeUInt32BE(rs, 16);
	header[20] = asPublic.length;
	return Buffer.concat([header, asPublic, ct]);
}

/* RFC 8291 Appendix A (section 5 message), base64url. */
const RFC8291 = {
	plaintext: 'When I grow up, I want to be a watermelon',
	asPrivate: 'yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw',
	uaPrivate: 'q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94',
	uaPublic: 'BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4',
	authSecret: 'BTBZMqHH6r4Tts7J_aSIgg',
	salt: 'DGv6ra1nlYgDCS1FRnbzlw',
	body: 'DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN',
};
const u = (s) => Buffer.from(s, 'base64url');

/* ------------------------------------------------------------------ */

let m;          // the running mocks
let dir;
let apnsKey;    // the .p8 private key
let account;    // the FCM service account
let vapid;      // {publicKey string, privateKey KeyObject}

before(async () => {
	dir = fs.mkdtempSync(path.join(os.tmpdir(), 'push-mocks-'));
	m = await mocks.start({ dir });
	apnsKey = crypto.createPrivateKey(fs.readFileSync(path.join(dir, 'apns.p8')));
	account = JSON.parse(fs.readFileSync(path.join(dir, 'fcm-service-account.json'), 'utf8'));
	const v = JSON.parse(fs.readFileSync(path.join(dir, 'vapid.json'), 'utf8'));
	const pub = u(v.public_key);
	vapid = { publicKey: v.public_key, subject: v.subject, privateKey: crypto.createPrivateKey({ format: 'jwk', key: {
		kty: 'EC', crv: 'P-256', x: b64url(pub.subarray(1, 33)), y: b64url(pub.subarray(33)), d: v.private_key } }) };
});
after(async () => {
	await m.close();
	fs.rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => m.reset());

describe('key material', () => {
	test('files have the documented shapes', () => {
		const apns = JSON.parse(fs.readFileSync(path.join(dir, 'apns.json'), 'utf8'));
		assert.deepEqual(apns, { team_id: 'TEAM123456', key_id: 'KEY1234567', topic: 'com.example.app' });
		assert.match(fs.readFileSync(path.join(dir, 'apns.p8'), 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
		assert.equal(apnsKey.asymmetricKeyDetails.namedCurve, 'prime256v1');
		assert.equal(account.type, 'service_account');
		assert.equal(account.project_id, 'mock-project');
		assert.equal(account.client_email, 'pusher@mock-project.iam.gserviceaccount.com');
		assert.equal(account.token_uri, `http://127.0.0.1:${m.ports.fcm}/token`);
		assert.equal(account.token_uri, m.urls.fcmToken);
		assert.equal(crypto.createPrivateKey(account.private_key).asymmetricKeyDetails.modulusLength, 2048);
		assert.equal(u(vapid.publicKey).length, 65);
		assert.equal(u(vapid.publicKey)[0], 4);
		assert.equal(vapid.subject, 'mailto:ops@example.com');
	});
});

/* ------------------------------------------------------------------ */
/* APNs                                                                */
/* ------------------------------------------------------------------ */

describe('APNs', () => {
	const jwt = (over = {}, key = apnsKey) => signJwt('ES256', { kid: over.kid ?? 'KEY1234567' },
		{ iss: over.iss ?? 'TEAM123456', iat: over.iat ?? nowS() }, key);
	const headers = (over = {}) => ({ authorization: `bearer ${jwt()}`, 'apns-topic': 'com.example.app',
		'apns-push-type': 'alert', 'apns-priority': '10', ...over });
	const payload = { aps: { alert: { title: 'Hi', body: 'there' } }, room: 'r1' };
	const push = (token, hdrs = headers(), body = JSON.stringify(payload), session) =>
		h2post(m.urls.apns, `/3/device/${token}`, hdrs, body, session);

	test('a correctly signed push is accepted and recorded', async () => {
		const r = await push('abcdef0123');
		assert.equal(r.status, 200);
		assert.match(r.headers['apns-id'], UUID_RE);
		const [rec] = m.requests('apns');
		assert.equal(rec.token, 'abcdef0123');
		assert.equal(rec.status, 200);
		assert.equal(rec.verified, true);
		assert.deepEqual(rec.body, payload);
		assert.equal(rec.headers['apns-topic'], 'com.example.app');
		assert.equal(rec.auth.claims.iss, 'TEAM123456');
	});

	test('a client-chosen apns-id is echoed', async () => {
		const id = crypto.randomUUID();
		const r = await push('abc', headers({ 'apns-id': id }));
		assert.equal(r.headers['apns-id'], id);
	});

	test('a JWT signed with another key is 403 InvalidProviderToken', async () => {
		const other = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
		const r = await push('abc', headers({ authorization: `bearer ${jwt({}, other)}` }));
		assert.equal(r.status, 403);
		assert.deepEqual(r.json, { reason: 'InvalidProviderToken' });
		const [rec] = m.requests('apns');
		assert.equal(rec.verified, false);
		assert.equal(rec.reason, 'InvalidProviderToken');
	});

	test('a DER-encoded ES256 signature is refused', async () => {
		const input = `${b64url(JSON.stringify({ alg: 'ES256', kid: 'KEY1234567' }))}.${b64url(JSON.stringify({ iss: 'TEAM123456', iat: nowS() }))}`;
		const der = crypto.sign('sha256', Buffer.from(input), apnsKey);   // default dsaEncoding: der
		const r = await push('abc', headers({ authorization: `bearer ${input}.${b64url(der)}` }));
		assert.equal(r.status, 403);
		assert.match(m.requests('apns')[0].detail, /DER/);
	});

	test('wrong kid, wrong iss, missing token are 403', async () => {
		for (const h of [{ authorization: `bearer ${jwt({ kid: 'OTHERKEY12' })}` },
			{ authorization: `bearer ${jwt({ iss: 'OTHERTEAM1' })}` }]) {
			const r = await push('abc', headers(h));
			assert.equal(r.status, 403);
			assert.equal(r.json.reason, 'InvalidProviderToken');
		}
		const hdr = headers();
		delete hdr.authorization;
		const r = await push('abc', hdr);
		assert.equal(r.status, 403);
		assert.equal(r.json.reason, 'MissingProviderToken');
	});

	test('an iat over an hour old is 403 ExpiredProviderToken; a future one is refused', async () => {
		let r = await push('abc', headers({ authorization: `bearer ${jwt({ iat: nowS() - 3700 })}` }));
		assert.equal(r.status, 403);
		assert.equal(r.json.reason, 'ExpiredProviderToken');
		r = await push('abc', headers({ authorization: `bearer ${jwt({ iat: nowS() + 600 })}` }));
		assert.equal(r.status, 403);
	});

	test('wrong topic is 400 BadTopic, none is MissingTopic', async () => {
		let r = await push('abc', headers({ 'apns-topic': 'com.example.other' }));
		assert.equal(r.status, 400);
		assert.equal(r.json.reason, 'BadTopic');
		const hdr = headers();
		delete hdr['apns-topic'];
		r = await push('abc', hdr);
		assert.equal(r.status, 400);
		assert.equal(r.json.reason, 'MissingTopic');
	});

	test('header and payload checks', async () => {
		const hdr = headers();
		delete hdr['apns-push-type'];
		assert.equal((await push('abc', hdr)).json.reason, 'InvalidPushType');
		assert.equal((await push('abc', headers({ 'apns-priority': '7' }))).json.reason, 'BadPriority');
		assert.equal((await push('abc', headers(), JSON.stringify({ data: 1 }))).json.reason, 'BadPayload');
		assert.equal((await push('abc', headers(), '')).json.reason, 'PayloadEmpty');
		const big = JSON.stringify({ aps: {}, x: 'y'.repeat(5000) });
		const r = await push('abc', headers(), big);
		assert.equal(r.status, 413);
		assert.equal(r.json.reason, 'PayloadTooLarge');
	});

	test('gone- is 410 Unregistered with a timestamp, bad- is 400 BadDeviceToken', async () => {
		let r = await push('gone-1');
		assert.equal(r.status, 410);
		assert.equal(r.json.reason, 'Unregistered');
		assert.ok(Math.abs(r.json.timestamp - Date.now()) < 10000);
		r = await push('bad-1');
		assert.equal(r.status, 400);
		assert.equal(r.json.reason, 'BadDeviceToken');
		assert.ok(m.requests('apns').every((rec) => rec.verified));
	});

	test('behavior [500, 200] answers 500 then 200, then keeps succeeding', async () => {
		m.behavior('apns', 'tok1', [500, 200]);
		const r1 = await push('tok1');
		assert.equal(r1.status, 500);
		assert.equal(r1.json.reason, 'InternalServerError');
		assert.equal((await push('tok1')).status, 200);
		assert.equal((await push('tok1')).status, 200);
		assert.deepEqual(m.requests('apns').map((r) => r.status), [500, 200, 200]);
	});

	test('behavior maps 410/429/503 to APNs reasons and honours delay_ms', async () => {
		m.behavior('apns', 'tok2', [410, 429, 503], { delay_ms: 150 });
		const t0 = Date.now();
		assert.equal((await push('tok2')).json.reason, 'Unregistered');
		assert.ok(Date.now() - t0 >= 140);
		assert.equal((await push('tok2')).json.reason, 'TooManyRequests');
		assert.equal((await push('tok2')).json.reason, 'ServiceUnavailable');
	});

	test("behavior '*' scripts the next request for any token", async () => {
		m.behavior('apns', '*', [503]);
		assert.equal((await push('any-1')).status, 503);
		assert.equal((await push('any-2')).status, 200);
	});

	test('several streams multiplex on one connection', async () => {
		const session = http2.connect(m.urls.apns);
		try {
			const rs = await Promise.all(['a1', 'a2', 'a3'].map((t) => push(t, headers(), undefined, session)));
			assert.deepEqual(rs.map((r) => r.status), [200, 200, 200]);
			const again = await push('a4', headers(), undefined, session);
			assert.equal(again.status, 200);
		} finally { session.close(); }
	});

	test('control endpoints answer over HTTP/1.1; pushes over HTTP/1.1 are refused', async () => {
		let r = await postJson(`${m.urls.apns}/_mock/behavior`, { token: 'h1tok', statuses: [503] });
		assert.equal(r.status, 200);
		assert.equal((await push('h1tok')).status, 503);
		r = await request(`${m.urls.apns}/_mock/requests`, { method: 'GET' });
		assert.equal(r.status, 200);
		assert.equal(r.json.length, 1);
		assert.equal(r.json[0].token, 'h1tok');
		r = await postJson(`${m.urls.apns}/3/device/abc`, payload, headers());
		assert.equal(r.status, 505);
		r = await request(`${m.urls.apns}/_mock/reset`);
		assert.equal(r.status, 200);
		assert.equal(m.requests('apns').length, 0);
	});
});

describe('APNs over TLS (opt-in)', () => {
	test('serves h2 by ALPN with a certificate valid for 127.0.0.1', async () => {
		const tlsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'push-mocks-tls-'));
		const t = await mocks.start({ dir: tlsDir, tls: true });
		try {
			assert.match(t.urls.apns, /^https:\/\/127\.0\.0\.1:\d+$/);
			const ca = fs.readFileSync(t.caFile, 'utf8');
			const cert = new crypto.X509Certificate(ca);
			assert.ok(cert.verify(cert.publicKey));
			assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
			assert.equal(cert.checkHost('localhost'), 'localhost');
			const key = crypto.createPrivateKey(fs.readFileSync(path.join(tlsDir, 'apns.p8')));
			const auth = `bearer ${signJwt('ES256', { kid: 'KEY1234567' }, { iss: 'TEAM123456', iat: nowS() }, key)}`;
			const session = http2.connect(t.urls.apns, { ca });   // verifies the certificate
			try {
				const hdr = { authorization: auth, 'apns-topic': 'com.example.app', 'apns-push-type': 'alert' };
				const rs = await Promise.all(['t1', 't2', 'gone-t3'].map((tok) =>
					h2post(t.urls.apns, `/3/device/${tok}`, hdr, '{"aps":{"alert":"x"}}', session)));
				assert.deepEqual(rs.map((r) => r.status), [200, 200, 410]);
				assert.equal(session.alpnProtocol, 'h2');
			} finally { session.close(); }
			assert.equal(t.requests('apns').length, 3);
		} finally {
			await t.close();
			fs.rmSync(tlsDir, { recursive: true, force: true });
		}
	});
});

/* ------------------------------------------------------------------ */
/* FCM                                                                 */
/* ------------------------------------------------------------------ */

describe('FCM', () => {
	const rsaKey = () => crypto.createPrivateKey(account.private_key);
	const assertion = (over = {}, key = rsaKey()) => {
		const iat = over.iat ?? nowS();
		return signJwt('RS256', { kid: account.private_key_id }, {
			iss: account.client_email, scope: over.scope ?? 'https://www.googleapis.com/auth/firebase.messaging',
			aud: over.aud ?? account.token_uri, iat, exp: over.exp ?? iat + 3600 }, key);
	};
	const tokenRequest = (jwt) => request(account.token_uri, {
		headers: { 'content-type': 'application/x-www-form-urlencoded' },
		body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: jwt }).toString() });
	const accessToken = async () => (await tokenRequest(assertion())).json.access_token;
	const sendUrl = () => `${m.urls.fcm}/v1/projects/mock-project/messages:send`;
	const send = (bearer, message) => postJson(sendUrl(), { message }, { authorization: `Bearer ${bearer}` });
	const msg = (token) => ({ token, notification: { title: 'Hi', body: 'there' }, data: { room: 'r1' } });

	test('token flow then send succeeds and is recorded', async () => {
		const tr = await tokenRequest(assertion());
		assert.equal(tr.status, 200);
		assert.equal(tr.json.token_type, 'Bearer');
		assert.equal(tr.json.expires_in, 3599);
		assert.ok(tr.json.access_token);
		const r = await send(tr.json.access_token, msg('reg-1'));
		assert.equal(r.status, 200);
		assert.match(r.json.name, /^projects\/mock-project\/messages\/.+/);
		assert.equal(m.tokenRequests(), 1);
		const [rec] = m.requests('fcm');
		assert.equal(rec.token, 'reg-1');
		assert.equal(rec.verified, true);
		assert.deepEqual(rec.body, { message: msg('reg-1') });
		// a second send with the same token does not touch the token endpoint
		assert.equal((await send(tr.json.access_token, msg('reg-2'))).status, 200);
		assert.equal(m.tokenRequests(), 1);
	});

	test('bad assertions are refused with invalid_grant', async () => {
		const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
		const cases = [
			assertion({}, other),
			assertion({ aud: 'https://oauth2.googleapis.com/token' }),
			assertion({ scope: 'https://www.googleapis.com/auth/cloud-platform' }),
			assertion({ exp: nowS() + 7200 }),
			assertion({ iat: nowS() - 7200, exp: nowS() - 3600 }),
		];
		for (const jwt of cases) {
			const r = await tokenRequest(jwt);
			assert.equal(r.status, 400);
			assert.equal(r.json.error, 'invalid_grant');
		}
		assert.equal(m.tokenRequests(), cases.length);
		assert.ok(m.tokenRequestLog().every((rec) => !rec.verified));
		const r = await request(account.token_uri, { headers: { 'content-type': 'application/x-www-form-urlencoded' },
			body: `grant_type=client_credentials&assertion=${assertion()}` });
		assert.equal(r.json.error, 'unsupported_grant_type');
	});

	test('a wrong bearer is 401 UNAUTHENTICATED', async () => {
		const r = await send('ya29.not-issued', msg('reg-1'));
		assert.equal(r.status, 401);
		assert.equal(r.json.error.status, 'UNAUTHENTICATED');
		assert.equal(r.json.error.code, 401);
		const noAuth = await postJson(sendUrl(), { message: msg('reg-1') });
		assert.equal(noAuth.status, 401);
	});

	test('gone- is 404 UNREGISTERED, bad- is 400 INVALID_ARGUMENT', async () => {
		const at = await accessToken();
		let r = await send(at, msg('gone-1'));
		assert.equal(r.status, 404);
		assert.equal(r.json.error.status, 'NOT_FOUND');
		assert.deepEqual(r.json.error.details, [{ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: 'UNREGISTERED' }]);
		r = await send(at, msg('bad-1'));
		assert.equal(r.status, 400);
		assert.equal(r.json.error.status, 'INVALID_ARGUMENT');
		assert.equal(r.json.error.details[0].errorCode, 'INVALID_ARGUMENT');
	});

	test('malformed messages are 400 INVALID_ARGUMENT', async () => {
		const at = await accessToken();
		let r = await send(at, { token: 'reg-1', data: { n: 1 } });
		assert.equal(r.status, 400);
		assert.equal(r.json.error.details[0].fieldViolations[0].field, 'message.data[n]');
		r = await send(at, { token: 'reg-1', topic: 'news' });
		assert.equal(r.status, 400);
		r = await send(at, { token: 'reg-1', colour: 'red' });
		assert.equal(r.status, 400);
		r = await send(at, { token: 'reg-1', android: { ttl: 3600 } });
		assert.equal(r.status, 400);
		r = await send(at, { token: 'reg-1', data: { from: 'me' } });
		assert.equal(r.status, 400);
		r = await request(sendUrl(), { headers: { authorization: `Bearer ${at}`, 'content-type': 'application/x-www-form-urlencoded' },
			body: JSON.stringify({ message: msg('reg-1') }) });
		assert.equal(r.status, 400);
		assert.ok(m.requests('fcm').every((rec) => !rec.verified));
	});

	test('behaviours via the HTTP control endpoint: 503, 429 with Retry-After, then success', async () => {
		const at = await accessToken();
		const c = await postJson(`${m.urls.fcm}/_mock/behavior`,
			{ token: 'reg-9', statuses: [503, { status: 429, retry_after: 7 }, 200] });
		assert.equal(c.status, 200);
		let r = await send(at, msg('reg-9'));
		assert.equal(r.status, 503);
		assert.equal(r.json.error.details[0].errorCode, 'UNAVAILABLE');
		r = await send(at, msg('reg-9'));
		assert.equal(r.status, 429);
		assert.equal(r.json.error.status, 'RESOURCE_EXHAUSTED');
		assert.equal(r.json.error.details[0].errorCode, 'QUOTA_EXCEEDED');
		assert.equal(r.headers['retry-after'], '7');
		assert.equal((await send(at, msg('reg-9'))).status, 200);
		assert.equal((await send(at, msg('reg-9'))).status, 200);
		const list = await request(`${m.urls.fcm}/_mock/requests`, { method: 'GET' });
		assert.deepEqual(list.json.map((x) => x.status), [503, 429, 200, 200]);
		const tr = await request(`${m.urls.fcm}/_mock/token_requests`, { method: 'GET' });
		assert.equal(tr.json.count, 1);
	});

	test('the token endpoint can be scripted with the _oauth key', async () => {
		m.behavior('fcm', mocks.FCM_OAUTH_KEY, [500]);
		assert.equal((await tokenRequest(assertion())).status, 500);
		assert.equal((await tokenRequest(assertion())).status, 200);
	});

	test('the token endpoint answers a scripted body: JSON, or a string as it is', async () => {
		m.behavior('fcm', mocks.FCM_OAUTH_KEY, [{ status: 200, body: { access_token: null } },
			{ status: 200, body: '{"access_token": "a\r\nb"' }]);
		let r = await tokenRequest(assertion());
		assert.equal(r.status, 200);
		assert.deepEqual(r.json, { access_token: null });
		r = await tokenRequest(assertion());
		assert.equal(r.status, 200);
		assert.equal(r.text, '{"access_token": "a\r\nb"');
		assert.deepEqual(m.tokenRequestLog().slice(-2).map((x) => x.crafted), [true, true]);
		r = await tokenRequest(assertion());
		assert.equal(r.status, 200);
		assert.match(r.json.access_token, /^ya29\.mock-/);
	});

	test('revoked tokens are 401', async () => {
		const at = await accessToken();
		m.revokeTokens();
		assert.equal((await send(at, msg('reg-1'))).status, 401);
	});
});

/* ------------------------------------------------------------------ */
/* Web Push                                                            */
/* ------------------------------------------------------------------ */

describe('Web Push', () => {
	const vapidHeader = ({ aud, exp, sub, key = vapid.privateKey, k = vapid.publicKey } = {}) =>
		`vapid t=${signJwt('ES256', {}, { aud: aud ?? m.urls.web, exp: exp ?? nowS() + 12 * 3600,
			sub: sub ?? 'mailto:ops@example.com' }, key)}, k=${k}`;
	const webPush = (sub, body, headers = {}) => request(sub.endpoint, {
		headers: { authorization: vapidHeader(), 'content-encoding': 'aes128gcm',
			'content-type': 'application/octet-stream', ttl: '60', urgency: 'normal', ...headers }, body });
	const encryptFor = (sub, text, opts) => encryptWebPush(text, u(sub.keys.p256dh), u(sub.keys.auth), opts);
	const idOf = (sub) => sub.endpoint.split('/').pop();

	test('the test encryptor reproduces the RFC 8291 Appendix A message', () => {
		const body = encryptWebPush(RFC8291.plaintext, u(RFC8291.uaPublic), u(RFC8291.authSecret),
			{ asPrivate: u(RFC8291.asPrivate), salt: u(RFC8291.salt) });
		assert.equal(b64url(body), RFC8291.body);
	});

	test('the mock decrypts the RFC 8291 Appendix A message', () => {
		const text = mocks.webpushDecrypt(u(RFC8291.body), u(RFC8291.uaPrivate), u(RFC8291.authSecret));
		assert.equal(text.toString('utf8'), 'When I grow up, I want to be a watermelon');
	});

	test('the mock decrypt refuses a tampered RFC message and a wrong auth secret', () => {
		const body = u(RFC8291.body);
		body[body.length - 20] ^= 1;
		assert.throws(() => mocks.webpushDecrypt(body, u(RFC8291.uaPrivate), u(RFC8291.authSecret)), /authentication failed/);
		assert.throws(() => mocks.webpushDecrypt(u(RFC8291.body), u(RFC8291.uaPrivate), crypto.randomBytes(16)));
	});

	test('subscriptions have the browser shape', async () => {
		const r = await postJson(`${m.urls.web}/_mock/subscribe`, {});
		assert.equal(r.status, 201);
		assert.match(r.json.endpoint, new RegExp(`^${m.urls.web}/push/[A-Za-z0-9_-]+$`));
		assert.equal(u(r.json.keys.p256dh).length, 65);
		assert.equal(u(r.json.keys.auth).length, 16);
	});

	test('an encrypted push with correct VAPID is 201 and the plaintext is recorded', async () => {
		const sub = m.subscribe();
		const text = JSON.stringify({ title: 'Hi', body: 'there', n: 'ü€' });
		const r = await webPush(sub, encryptFor(sub, text, { pad: 30 }));
		assert.equal(r.status, 201);
		assert.match(r.headers.location, new RegExp(`^${m.urls.web}/message/`));
		const [rec] = m.requests('web');
		assert.equal(rec.token, idOf(sub));
		assert.equal(rec.verified, true);
		assert.equal(rec.body, text);
		assert.equal(rec.headers.ttl, '60');
		assert.equal(rec.auth.claims.aud, m.urls.web);
	});

	test('a tampered ciphertext is 400', async () => {
		const sub = m.subscribe();
		const body = encryptFor(sub, 'hello');
		body[body.length - 1] ^= 0x80;
		const r = await webPush(sub, body);
		assert.equal(r.status, 400);
		const [rec] = m.requests('web');
		assert.equal(rec.verified, false);
		assert.match(rec.detail, /decrypt/);
	});

	test('a record without the final 0x02 delimiter is 400', async () => {
		const sub = m.subscribe();
		assert.equal((await webPush(sub, encryptFor(sub, 'hello', { delimiter: 1 }))).status, 400);
		assert.match(m.requests('web')[0].detail, /delimiter/);
	});

	test('a message longer than its record size (several records) is 400', async () => {
		const sub = m.subscribe();
		assert.equal((await webPush(sub, encryptFor(sub, 'hello world', { rs: 20 }))).status, 400);
		assert.match(m.requests('web')[0].detail, /more than one record/);
	});

	test('a body encrypted for another subscription is 400', async () => {
		const a = m.subscribe(), b = m.subscribe();
		assert.equal((await webPush(a, encryptFor(b, 'hello'))).status, 400);
	});

	test('a wrong VAPID key is 403; a JWT not signed by k is 401', async () => {
		const other = crypto.createECDH('prime256v1');
		other.generateKeys();
		const otherKey = crypto.createPrivateKey({ format: 'jwk', key: { kty: 'EC', crv: 'P-256',
			x: b64url(other.getPublicKey().subarray(1, 33)), y: b64url(other.getPublicKey().subarray(33)),
			d: b64url(other.getPrivateKey()) } });
		const sub = m.subscribe();
		let r = await webPush(sub, encryptFor(sub, 'x'), { authorization: vapidHeader({ key: otherKey, k: b64url(other.getPublicKey()) }) });
		assert.equal(r.status, 403);
		r = await webPush(sub, encryptFor(sub, 'x'), { authorization: vapidHeader({ key: otherKey }) });
		assert.equal(r.status, 401);
	});

	test('aud of another origin, a bad exp or sub, the old WebPush scheme are 401', async () => {
		const sub = m.subscribe();
		const body = encryptFor(sub, 'x');
		for (const h of [vapidHeader({ aud: 'http://127.0.0.1:1' }), vapidHeader({ aud: `${m.urls.web}/` }),
			vapidHeader({ exp: nowS() + 25 * 3600 }), vapidHeader({ exp: nowS() - 10 }),
			vapidHeader({ sub: 'ops@example.com' }), `WebPush ${vapidHeader().slice(8)}`]) {
			const r = await webPush(sub, body, { authorization: h });
			assert.equal(r.status, 401, h);
		}
		assert.ok(m.requests('web').every((rec) => !rec.verified));
	});

	test('TTL and Content-Encoding are required; over 4096 bytes is 413', async () => {
		const sub = m.subscribe();
		const body = encryptFor(sub, 'x');
		assert.equal((await webPush(sub, body, { ttl: undefined })).status, 400);
		assert.equal((await webPush(sub, body, { 'content-encoding': 'aesgcm' })).status, 400);
		assert.equal((await webPush(sub, encryptFor(sub, 'y'.repeat(4000)))).status, 413);
	});

	test('gone endpoints: behavior 410, unsubscribe, gone- id, unknown id', async () => {
		const sub = m.subscribe();
		m.behavior('web', idOf(sub), [429, 410]);
		assert.equal((await webPush(sub, encryptFor(sub, 'a'))).status, 429);
		assert.equal((await webPush(sub, encryptFor(sub, 'b'))).status, 410);
		assert.equal((await webPush(sub, encryptFor(sub, 'c'))).status, 201);
		assert.deepEqual(m.requests('web').map((r) => r.body), ['a', 'b', 'c']);
		m.unsubscribe(idOf(sub));
		assert.equal((await webPush(sub, encryptFor(sub, 'd'))).status, 410);
		const gone = m.subscribe('gone-x');
		assert.equal((await webPush(gone, encryptFor(gone, 'e'))).status, 410);
		const unknown = { ...sub, endpoint: `${m.urls.web}/push/nosuchid` };
		assert.equal((await webPush(unknown, encryptFor(sub, 'f'))).status, 404);
	});
});

/* ------------------------------------------------------------------ */
/* CLI                                                                 */
/* ------------------------------------------------------------------ */

describe('CLI', () => {
	test('writes ports.json, serves, exits 0 on SIGTERM; keys are reused', async () => {
		const cliDir = fs.mkdtempSync(path.join(os.tmpdir(), 'push-mocks-cli-'));
		try {
			const child = spawn(process.execPath, [path.join(__dirname, 'mocks.js'), '--dir', cliDir],
				{ stdio: ['ignore', 'ignore', 'pipe'] });
			const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
			const portsFile = path.join(cliDir, 'ports.json');
			const deadline = Date.now() + 10000;
			while (!fs.existsSync(portsFile) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
			const ports = JSON.parse(fs.readFileSync(portsFile, 'utf8'));
			assert.deepEqual(Object.keys(ports).sort(), ['apns', 'fcm', 'web']);
			const acct = JSON.parse(fs.readFileSync(path.join(cliDir, 'fcm-service-account.json'), 'utf8'));
			assert.equal(acct.token_uri, `http://127.0.0.1:${ports.fcm}/token`);
			const r = await request(`http://127.0.0.1:${ports.web}/_mock/requests`, { method: 'GET' });
			assert.deepEqual(r.json, []);
			const p8 = fs.readFileSync(path.join(cliDir, 'apns.p8'), 'utf8');
			child.kill('SIGTERM');
			assert.deepEqual(await exited, { code: 0, signal: null });

			const again = await mocks.start({ dir: cliDir });
			try {
				assert.equal(fs.readFileSync(path.join(cliDir, 'apns.p8'), 'utf8'), p8);
				const acct2 = JSON.parse(fs.readFileSync(path.join(cliDir, 'fcm-service-account.json'), 'utf8'));
				assert.equal(acct2.private_key, acct.private_key);
				assert.equal(acct2.token_uri, again.urls.fcmToken);
			} finally { await again.close(); }
		} finally { fs.rmSync(cliDir, { recursive: true, force: true }); }
	});
});
