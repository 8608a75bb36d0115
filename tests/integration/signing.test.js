// SPEC 1 signing: the signer's known answers, then every auth failure against the server.
'use strict';

const { describe, it, before } = require('node:test');
const assert = require('node:assert/strict');
const L = require('./lib');

describe('signer known answers (SPEC 1)', () => {
  it('vector 1: POST /apps/3/events', () => {
    const body = '{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}';
    const p = L.signParams({
      method: 'POST', path: '/apps/3/events', body, key: '278d425bdf160c739803',
      secret: '7ad3773142a6692b25b8', timestamp: 1353088179, version: '1.0',
    });
    assert.equal(p.body_md5, 'ec365a775a4cd0599faeb73354201b6f');
    assert.equal(p.auth_signature, 'da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c');
  });

  it('vector 2: GET /event with a body', () => {
    const p = L.signParams({
      method: 'GET', path: '/event', body: 'example body', key: 'f00d', secret: 'tofu',
      timestamp: 1234567890, version: '1.0',
    });
    assert.equal(p.body_md5, '165d5e6d7ca8f73b3853ce45addf42fc');
    assert.equal(p.auth_signature, 'a650196dc427ebe837226f8565ca9232198c6d1b9455eaa72374a9dc0b620e7b');
  });

  it('canonical query: keys lower-cased, sorted bytewise, auth_signature dropped', () => {
    assert.equal(L.canonicalQuery({ b: '1', A: '2', auth_signature: 'x', Z_: '3' }), 'a=2&b=1&z_=3');
  });

  it('percent-decoding keeps "+" as "+"', () => {
    assert.equal(L.pctDecode('a+b%2Bc%41'), 'a+b+cA');
  });
});

describe('server authentication (SPEC 1)', () => {
  let app; let other; let disabled;
  const event = (ch) => ({ name: 'sig-event', channel: ch, data: 'payload' });

  before(() => {
    app = L.createApp('sign');
    other = L.createApp('sign-other');
    disabled = L.createApp('sign-disabled');
  });

  it('a correctly signed publish is accepted with {}', async () => {
    const ch = L.uniq('sig-ok');
    const r = await L.api(app).post('/events', event(ch));
    L.assertOk(r);
    assert.deepEqual(r.json, {});
    assert.equal(L.countMessages(app.id, `channel = ${L.sqlQuote(ch)}`), 1);
  });

  it('a correctly signed GET is accepted', async () => {
    const r = await L.api(app).get('/channels');
    L.assertOk(r);
    assert.equal(typeof r.json.channels, 'object');
  });

  for (const missing of ['auth_key', 'auth_timestamp', 'auth_version', 'auth_signature']) {
    it(`missing ${missing} → 401 auth_failed`, async () => {
      const ch = L.uniq('sig-miss');
      const r = await L.api(app).post('/events', event(ch), { omit: [missing] });
      L.assertError(r, 401, 'auth_failed');
      assert.equal(L.countMessages(app.id, `channel = ${L.sqlQuote(ch)}`), 0);
    });
  }

  it('no query string at all → 401', async () => {
    const r = await L.rawRequest({ method: 'GET', path: `/apps/${app.id}/channels` });
    L.assertError(r, 401, 'auth_failed');
  });

  it('a body without body_md5 → 401', async () => {
    const ch = L.uniq('sig-nomd5');
    const r = await L.api(app).post('/events', event(ch), { noBodyMd5: true });
    L.assertError(r, 401, 'auth_failed');
    assert.equal(L.countMessages(app.id, `channel = ${L.sqlQuote(ch)}`), 0);
  });

  it('wrong signature (one hex digit changed) → 401', async () => {
    const ch = L.uniq('sig-bad');
    const good = L.signParams({ method: 'POST', path: `/apps/${app.id}/events`,
      body: JSON.stringify(event(ch)), key: app.key, secret: app.secret });
    const sig = good.auth_signature;
    const bad = sig.slice(0, -1) + (sig.endsWith('0') ? '1' : '0');
    const r = await L.api(app).post('/events', event(ch), { signature: bad });
    L.assertError(r, 401, 'auth_failed');
    assert.equal(L.countMessages(app.id, `channel = ${L.sqlQuote(ch)}`), 0);
  });

  it('signature made with a wrong secret → 401', async () => {
    const r = await L.api(app).get('/channels', {}, { secret: app.secret + 'x' });
    L.assertError(r, 401, 'auth_failed');
  });

  it('a truncated signature → 401', async () => {
    const r = await L.api(app).get('/channels', {}, { signature: 'abc' });
    L.assertError(r, 401, 'auth_failed');
  });

  it('signature over another method → 401', async () => {
    const r = await L.api(app).get('/channels', {}, { signMethod: 'POST' });
    L.assertError(r, 401, 'auth_failed');
  });

  it('timestamp 601 s in the past → 401', async () => {
    const ts = Math.floor(Date.now() / 1000) - 601;
    const r = await L.api(app).get('/channels', {}, { timestamp: ts });
    L.assertError(r, 401, 'auth_failed');
  });

  it('timestamp 602 s in the future → 401', async () => {
    // 602: should the server's clock tick into the next second after this
    // line (a loaded machine), the skew it sees is still over 600
    const ts = Math.floor(Date.now() / 1000) + 602;
    const r = await L.api(app).get('/channels', {}, { timestamp: ts });
    L.assertError(r, 401, 'auth_failed');
  });

  it('a timestamp 500 s off either way is still accepted', async () => {
    const now = Math.floor(Date.now() / 1000);
    L.assertOk(await L.api(app).get('/channels', {}, { timestamp: now - 500 }));
    L.assertOk(await L.api(app).get('/channels', {}, { timestamp: now + 500 }));
  });

  it('a non-numeric timestamp → 401', async () => {
    const r = await L.api(app).get('/channels', {}, { timestamp: 'yesterday' });
    L.assertError(r, 401, 'auth_failed');
  });

  it('body_md5 that does not match the body (validly signed) → 401, nothing stored', async () => {
    const ch = L.uniq('sig-md5');
    const signedBody = JSON.stringify(event(ch));
    const sentBody = JSON.stringify({ ...event(ch), data: 'other payload' });
    const r = await L.api(app).post('/events', signedBody, { sentBody });
    L.assertError(r, 401, 'auth_failed');
    assert.equal(L.countMessages(app.id, `channel = ${L.sqlQuote(ch)}`), 0);
  });

  it('a valid signature replayed with an altered body and a recomputed body_md5 → 401', async () => {
    const ch = L.uniq('sig-replay');
    const original = JSON.stringify(event(ch));
    const altered = JSON.stringify({ ...event(ch), data: 'tampered' });
    // First the original goes through...
    const p = L.signParams({ method: 'POST', path: `/apps/${app.id}/events`, body: original,
      key: app.key, secret: app.secret });
    const ok = await L.rawRequest({ method: 'POST', path: `/apps/${app.id}/events?${L.encodeQuery(p)}`,
      headers: { 'Content-Type': 'application/json' }, body: original });
    L.assertOk(ok);
    // ...then the same query with another body and its md5 swapped in.
    const replay = { ...p, body_md5: L.md5hex(altered) };
    const r = await L.rawRequest({ method: 'POST', path: `/apps/${app.id}/events?${L.encodeQuery(replay)}`,
      headers: { 'Content-Type': 'application/json' }, body: altered });
    L.assertError(r, 401, 'auth_failed');
    const rows = L.sql(`SELECT data FROM messages WHERE app_id = ${L.sqlQuote(app.id)} AND channel = ${L.sqlQuote(ch)}`);
    assert.deepEqual(rows, [['payload']]);
  });

  it("another app's key and secret used on this app's id → 401", async () => {
    const ch = L.uniq('sig-cross');
    const r = await L.api(app).post('/events', event(ch), { key: other.key, secret: other.secret });
    L.assertError(r, 401, 'auth_failed');
    assert.equal(L.countMessages(app.id, `channel = ${L.sqlQuote(ch)}`), 0);
    assert.equal(L.countMessages(other.id, `channel = ${L.sqlQuote(ch)}`), 0);
  });

  it("this app's key with another app's secret → 401", async () => {
    const r = await L.api(app).get('/channels', {}, { secret: other.secret });
    L.assertError(r, 401, 'auth_failed');
  });

  it('an unknown key → 401', async () => {
    const r = await L.api(app).get('/channels', {}, { key: 'no-such-key-' + Date.now() });
    L.assertError(r, 401, 'auth_failed');
  });

  it('a disabled app → 403 app_disabled; enabled again → 200', async () => {
    L.cliOk('app', 'disable', disabled.id);
    try {
      // the app record may be cached in process for app_cache_ttl (5 s)
      const r = await L.waitFor(async () => {
        const x = await L.api(disabled).get('/channels');
        return x.status === 403 ? x : null;
      }, { timeoutMs: 8000, what: 'disabled app to answer 403' });
      L.assertError(r, 403, 'app_disabled');
      const ch = L.uniq('sig-dis');
      const p = await L.api(disabled).post('/events', event(ch));
      L.assertError(p, 403, 'app_disabled');
      assert.equal(L.countMessages(disabled.id), 0);
    } finally {
      L.cliOk('app', 'enable', disabled.id);
    }
    await L.waitFor(async () => (await L.api(disabled).get('/channels')).status === 200,
      { timeoutMs: 8000, what: 're-enabled app to answer 200' });
  });

  it('"+" in a query value is a literal "+" (signed as "+")', async () => {
    const prefix = 'a+b';
    const r = await L.api(app).get('/channels', { filter_by_prefix: prefix },
      { rawQuery: (p) => L.encodeQuery(p).replace('filter_by_prefix=a%2Bb', 'filter_by_prefix=a+b') });
    L.assertOk(r);
  });

  it('"%2B" in a query value decodes to "+" (same signature as "+")', async () => {
    const r = await L.api(app).get('/channels', { filter_by_prefix: 'a+b' });
    L.assertOk(r);
  });

  it('"+" is not form-decoded to a space: signing "a b" but sending "a+b" → 401', async () => {
    const r = await L.api(app).get('/channels', { filter_by_prefix: 'a b' },
      { rawQuery: (p) => L.encodeQuery(p).replace('filter_by_prefix=a%20b', 'filter_by_prefix=a+b') });
    L.assertError(r, 401, 'auth_failed');
  });

  it('the path is signed as sent (percent-encoded, from REQUEST_URI)', async () => {
    const ch = L.uniq('sig@path');
    const enc = `/apps/${app.id}/channels/${ch.replace('@', '%40')}`;
    const ok = await L.call(app, 'GET', '', { path: enc });
    L.assertOk(ok);
    assert.equal(ok.json.occupied, false);
    const bad = await L.call(app, 'GET', '', { path: enc, signPath: `/apps/${app.id}/channels/${ch}` });
    L.assertError(bad, 401, 'auth_failed');
  });

  // Apache, lighttpd and nginx each pass REQUEST_URI, SCRIPT_NAME and
  // PATH_INFO differently (and decode them differently); the suite runs behind
  // each (deploy/devstack SOCKUDO_FRONT), and these must answer the same.
  it('every character of a channel name percent-encoded: same channel, same signature', async () => {
    const ch = L.uniq('enc-x=y@z,w.v;u');
    const pub = await L.api(app).post('/events', { name: 'e', channel: ch, data: '1' });
    L.assertOk(pub);
    const all = [...ch].map((c) => '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')).join('');
    for (const path of [`/apps/${app.id}/channels/${all}/history`,
      `/apps/${app.id}/channels/${all.toLowerCase()}/history`]) {
      const r = await L.call(app, 'GET', '', { path });
      L.assertOk(r);
      assert.equal(r.json.items.length, 1, path);
      assert.equal(r.json.items[0].channel, ch);
    }
  });

  it('an encoded slash in a channel name reaches the app: 400 JSON, not the web server\'s 404', async () => {
    const r = await L.call(app, 'GET', '', { path: `/apps/${app.id}/channels/a%2Fb` });
    L.assertError(r, 400);
  });

  it('unknown route under /apps → 404 JSON not_found', async () => {
    const r = await L.api(app).get('/no-such-route');
    L.assertError(r, 404, 'not_found');
  });

  it('unknown app id in the path with a valid key → 401 or 404, never 200', async () => {
    const r = await L.api(app).get('/channels', {}, { appId: 'no-such-app-' + Date.now() });
    assert.ok(r.status === 401 || r.status === 404, `got ${r.status}: ${r.body}`);
    L.assertError(r, r.status);
  });

  it('unknown top-level route → 404', async () => {
    const r = await L.rawRequest({ path: '/no-such-thing' });
    assert.equal(r.status, 404);
  });

  it('GET /events → 405 with Allow: POST', async () => {
    const r = await L.api(app).get('/events');
    L.assertError(r, 405);
    assert.match(String(r.headers.allow || ''), /\bPOST\b/);
  });

  it('DELETE /channels → 405 with Allow: GET', async () => {
    const r = await L.call(app, 'DELETE', '/channels', {});
    L.assertError(r, 405);
    assert.match(String(r.headers.allow || ''), /\bGET\b/);
    assert.doesNotMatch(String(r.headers.allow || ''), /\bDELETE\b/);
  });

  it('POST /batch_events with PUT → 405 with Allow: POST', async () => {
    const r = await L.call(app, 'PUT', '/batch_events', { body: { batch: [] } });
    L.assertError(r, 405);
    assert.match(String(r.headers.allow || ''), /\bPOST\b/);
  });
});
