// Realtime helpers: unmodified pusher-js clients connected through Pushpin
// (SOCKUDO_WS_URLS, written by deploy/devstack), authorised by the npm
// `pusher` server SDK exactly as an app backend would, and event waiters.
'use strict';

const PusherJS = require('pusher-js');
const Pusher = require('pusher');
const L = require('./lib');

// The WebSocket URLs of the Pushpin instances (two in the devstack).
function wsUrls() {
  const s = (process.env.SOCKUDO_WS_URLS || process.env.SOCKUDO_WS_URL || '').trim();
  if (!s) throw new Error('SOCKUDO_WS_URLS not set: is the devstack up with Pushpin?');
  return s.split(/\s+/).map((u) => new URL(u));
}

// The server SDK for an app (also what signs channel and user auth).
function server(app, opts = {}) {
  const u = L.baseUrl();
  return new Pusher({
    appId: app.id, key: app.key, secret: app.secret, host: u.hostname, port: u.port,
    useTLS: false, ...opts,
  });
}

// A pusher-js client of app through Pushpin instance `instance` (0, 1).
// channel_data for presence comes from opts.user ({user_id, user_info});
// opts.authFails makes the auth handler sign with a wrong secret.
// Resolves once connected; .socketId is set then.
function client(app, opts = {}) {
  const url = wsUrls()[opts.instance || 0];
  const srv = server(app, opts.encryptionMasterKeyBase64 ?
    { encryptionMasterKeyBase64: opts.encryptionMasterKeyBase64 } : {});
  const bad = server({ ...app, secret: 'not-the-secret' });
  const c = new PusherJS(app.key, {
    wsHost: url.hostname, wsPort: Number(url.port), forceTLS: false, disableStats: true,
    enabledTransports: ['ws'], cluster: 'local',
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, cb) => {
        const signer = opts.authFails ? bad : srv;
        const data = channelName.startsWith('presence-') ? (opts.user || { user_id: 'anon' }) : undefined;
        cb(null, signer.authorizeChannel(socketId, channelName, data));
      },
    },
    userAuthentication: {
      customHandler: ({ socketId }, cb) => {
        const signer = opts.signinFails ? bad : srv;
        cb(null, signer.authenticateUser(socketId, opts.signin || { id: 'anon' }));
      },
    },
  });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      c.disconnect();	// else it retries forever and keeps node running
      reject(new Error(`no connection to ${url}`));
    }, 10000);
    c.connection.bind('connected', () => {
      clearTimeout(t);
      c.socketId = c.connection.socket_id;
      resolve(c);
    });
  });
}

// Resolve with the data of the next `event` on a channel (or the
// connection's user object, or anything with bind/unbind).
function next(bindable, event, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      bindable.unbind(event, fn);
      reject(new Error(`no ${event} within ${timeoutMs} ms`));
    }, timeoutMs);
    function fn(data) {
      clearTimeout(t);
      bindable.unbind(event, fn);
      resolve(data);
    }
    bindable.bind(event, fn);
  });
}

// Subscribe and wait for pusher:subscription_succeeded (its data is returned).
async function subscribe(c, channel, timeoutMs = 5000) {
  const ch = c.subscribe(channel);
  const ok = next(ch, 'pusher:subscription_succeeded', timeoutMs);
  const err = next(ch, 'pusher:subscription_error', timeoutMs).then((e) => {
    throw new Error(`subscription_error on ${channel}: ${JSON.stringify(e)}`);
  });
  err.catch(() => {});
  const data = await Promise.race([ok, err]);
  return { ch, data };
}

// Collect every event a channel receives, in order, as [name, data].
function record(ch) {
  const got = [];
  ch.bind_global((name, data) => {
    if (!name.startsWith('pusher:') && !name.startsWith('pusher_internal:')) got.push([name, data]);
  });
  return got;
}

function closeAll(...clients) {
  for (const c of clients) if (c) c.disconnect();
}

module.exports = { wsUrls, server, client, next, subscribe, record, closeAll, PusherJS };
