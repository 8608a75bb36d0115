/*
 * handlers/socket.c: the Pusher channels protocol (version 7) for clients
 * whose WebSockets Pushpin holds.  Pushpin turns each socket's traffic
 * into WebSocket-over-HTTP requests to POST /app/{key}; nothing of a
 * socket lives in this process between requests.  Its identity travels
 * in Pushpin's connection meta (Meta-User: socket_id, Meta-Uid: the
 * signed-in user, Meta-Renew: the last lease renewal) and its channels
 * in MariaDB, so any worker on any host can take its next request.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "db/db.h"

#define WS_CONTENT_TYPE	"application/websocket-events"
#define WS_MAX_TEXTS	256	/* client messages handled in one request */
#define MAX_USER_ID	200	/* bytes of a user id (the stored column's width) */

/* Pusher's error codes (pusher.com/docs/channels/library_auth_reference/pusher-websockets-protocol) */
enum {
	E_APP_UNKNOWN	= 4001,
	E_APP_DISABLED	= 4003,
	E_VERSION	= 4007,
	E_NO_VERSION	= 4008,
	E_UNAUTHORIZED	= 4009,
	E_BACKOFF	= 4100,	/* reconnect after a while */
	E_RECONNECT	= 4200,	/* reconnect now */
	E_NO_PONG	= 4201,
	E_CLIENT_RATE	= 4301,	/* client event rejected due to rate limit */
};

/* One request's state: the socket, what to answer, what to publish after. */
struct sock {
	struct req	*r;
	struct rt	 rt;
	struct ws_out	 out;
	char		 socket_id[64];
	const char	*uid;		/* signed-in user, or NULL */
	char		 signed_in[MAX_USER_ID + 1];	/* signed in by this request */
	int		 closed;	/* the answer closes the socket */
	struct resp	*p;		/* for Set-Meta-* headers */
	struct sub_limits lim;
	/* client events in the current second, kept in Pushpin's meta (Meta-Ce) */
	long long	 ce_sec;
	long long	 ce_count;
	int		 ce_changed;
	/* meta written once, at the end: a batch of events must not repeat it */
	int		 renewed;	/* Set-Meta-Renew: the lease was renewed */
	int		 seen;		/* Set-Meta-Seen: the client spoke */
	int		 app_rc;	/* of the app lookup: 0, 1 unknown, -1 store down */
};

static void	on_gone(struct sock *);

static void
say(struct sock *s, char *msg)
{
	if (msg != NULL)
		grip_out_text(&s->out, msg);
	free(msg);
}

/* A pusher:error, and with close also the WebSocket close. */
static void
say_error(struct sock *s, int code, const char *why, int close)
{
	say(s, rt_error_message(code, why));
	if (close && !s->closed) {
		grip_out_close(&s->out, code);
		s->closed = 1;
	}
}

static void
say_event(struct sock *s, const char *event, const char *channel, json_object *data)
{
	const char *d = json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN);

	say(s, rt_message(event, channel, d, strlen(d), NULL));
	json_object_put(data);
}

static void
control(struct sock *s, const char *type, const char *k1, const char *v1,
    const char *k2, const char *v2)
{
	json_object *c = json_object_new_object();

	json_object_object_add(c, "type", json_object_new_string(type));
	if (k1 != NULL)
		json_object_object_add(c, k1, json_object_new_string(v1));
	if (k2 != NULL)
		json_object_object_add(c, k2, json_object_new_string(v2));
	grip_out_control(&s->out, c);
}

/* Subscribe the socket in Pushpin, with skip-self (SPEC 3 socket_id). */
static void
grip_subscribe(struct sock *s, const char *gch)
{
	json_object *c = json_object_new_object(), *f = json_object_new_array();

	json_object_object_add(c, "type", json_object_new_string("subscribe"));
	json_object_object_add(c, "channel", json_object_new_string(gch));
	json_object_array_add(f, json_object_new_string("skip-self"));
	json_object_object_add(c, "filters", f);
	grip_out_control(&s->out, c);
}

/*
 * The channel state store failed: the client reconnects after a backoff
 * (4100) and subscribes again, rather than believe in a subscription
 * that was not recorded.
 */
static void
store_down(struct sock *s, int rc)
{
	log_warn("socket %s of app %s: channel state store failed (%d)", s->socket_id,
	    s->r->app.id, rc);
	say_error(s, E_BACKOFF, "the channel state store is unavailable; reconnect later", 1);
}

/* ---- connection ------------------------------------------------------- */

static void
new_socket_id(char out[64])
{
	unsigned char b[16];
	unsigned long long a, c;

	random_bytes(b, sizeof(b));
	memcpy(&a, b, 8);
	memcpy(&c, b + 8, 8);
	snprintf(out, 64, "%llu.%llu", a % 10000000000ULL, c % 10000000000ULL);
}

static void
set_renewed(struct sock *s)
{
	s->renewed = 1;
}

/* The client spoke (any message, a pusher:pong included). */
static void
set_seen(struct sock *s)
{
	s->seen = 1;
}

/*
 * Have Pushpin send the client a pusher:ping every `every` seconds
 * (Pusher's activity check from the server side): a live client
 * answers pusher:pong, which is a message, so it stays seen.
 */
static void
ping_every(struct sock *s, int every)
{
	json_object *c = json_object_new_object();

	json_object_object_add(c, "type", json_object_new_string("keep-alive"));
	json_object_object_add(c, "content",
	    json_object_new_string("{\"event\":\"pusher:ping\",\"data\":\"{}\"}"));
	json_object_object_add(c, "timeout", json_object_new_int(every));
	json_object_object_add(c, "mode", json_object_new_string("interval"));
	grip_out_control(&s->out, c);
}

/*
 * A client silent for two pings and a keep-alive (it vanished, yet its
 * TCP connection looks open to Pushpin) is closed: 4201, Pusher's "pong
 * reply not received".  Returns 1 when closed.
 */
static int
gone_silent(struct sock *s)
{
	struct req *r = s->r;
	long long seen;

	if (r->meta_seen == NULL || str_to_ll(r->meta_seen, 0, INT64_MAX, &seen) != 0)
		return 0;
	if (now_ms() / 1000 - seen <= 2LL * r->cfg->ws_activity_timeout_s + r->cfg->ws_keepalive_s)
		return 0;
	say_error(s, E_NO_PONG, "Pong reply not received", 1);
	on_gone(s);
	return 1;
}

static int64_t
lease_end(const struct sock *s)
{
	return now_ms() + (int64_t)s->r->cfg->ws_lease_s * 1000;
}

/*
 * OPEN: check the protocol version, give the socket its id, record the
 * connection and announce it (pusher:connection_established).
 */
static void
on_open(struct sock *s)
{
	struct req *r = s->r;
	const char *proto = req_param(r, "protocol");
	long long v;
	char sch[200], data[160];
	int rc;

	grip_out_event(&s->out, "OPEN", NULL, 0);
	if (proto == NULL)
		return say_error(s, E_NO_VERSION, "No protocol version supplied", 1);
	if (str_to_ll(proto, 0, 1000, &v) != 0 || v < 5 || v > 7)
		return say_error(s, E_VERSION, "Unsupported protocol version", 1);
	new_socket_id(s->socket_id);
	if ((rc = db_conn_add(r->w->db, r->app.id, s->socket_id, NULL, lease_end(s))) != 0)
		return store_down(s, rc);
	/* our own record of the id (Meta-User), and the filters' (skip-self) */
	resp_header(s->p, "Set-Meta-User", s->socket_id);
	control(s, "set-meta", "name", "user", "value", s->socket_id);
	set_renewed(s);
	set_seen(s);
	ping_every(s, r->cfg->ws_activity_timeout_s);
	rt_socket_channel(sch, sizeof(sch), r->app.id, s->socket_id);
	grip_subscribe(s, sch);
	snprintf(data, sizeof(data), "{\"socket_id\":\"%s\",\"activity_timeout\":%d}",
	    s->socket_id, r->cfg->ws_activity_timeout_s);
	say(s, rt_message("pusher:connection_established", NULL, data, strlen(data), NULL));
}

/*
 * The socket is gone (CLOSE or DISCONNECT from Pushpin): leave its
 * channels and forget it.  A failure leaves it to the lease sweep.
 */
static void
on_gone(struct sock *s)
{
	int rc;

	if (s->socket_id[0] == '\0')
		return;
	if ((rc = rt_disconnect(&s->rt, s->socket_id)) != 0)
		log_warn("socket %s of app %s: cleanup failed (%d); the sweep will do it",
		    s->socket_id, s->r->app.id, rc);
}

/*
 * Renew the lease once per keep-alive interval, on whatever request
 * comes.  A connection the sweep already removed (its Pushpin was
 * unreachable too long) is told to reconnect: its state is gone.
 */
static int
renew(struct sock *s)
{
	struct req *r = s->r;
	long long last = 0;
	int rc;

	if (s->renewed)
		return 0;	/* once per request, however many events it holds */
	if (r->meta_renew != NULL)
		(void)str_to_ll(r->meta_renew, 0, INT64_MAX, &last);
	if (now_ms() / 1000 - last < r->cfg->ws_keepalive_s / 2)
		return 0;
	rc = db_conn_renew(r->w->db, r->app.id, s->socket_id, lease_end(s));
	if (rc == DB_NOTFOUND) {
		say_error(s, E_RECONNECT, "the connection expired; reconnect", 1);
		return -1;
	}
	if (rc == 0)
		set_renewed(s);
	return 0;
}

/* ---- subscriptions ---------------------------------------------------- */

static int
is_private(const char *ch)
{
	return strncmp(ch, "private-", 8) == 0 || strncmp(ch, "presence-", 9) == 0;
}

static int
is_cache(const char *ch)
{
	static const char *const pre[] = { "", "private-", "presence-", "private-encrypted-" };
	size_t i, n;

	for (i = 0; i < sizeof(pre) / sizeof(pre[0]); i++) {
		n = strlen(pre[i]);
		if (strncmp(ch, pre[i], n) == 0 && strncmp(ch + n, "cache-", 6) == 0)
			return 1;
	}
	return 0;
}

/*
 * Check "key:signature" against HMAC-SHA256(secret, msg), as Pusher's
 * libraries (authorizeChannel, authenticateUser) make it.
 */
static int
auth_ok(const struct app *a, const char *auth, const char *msg)
{
	size_t klen = strlen(a->key);

	if (auth == NULL || strncmp(auth, a->key, klen) != 0 || auth[klen] != ':')
		return 0;
	return auth_signature_ok(a->secret, msg, auth + klen + 1);
}

static void
sub_error(struct sock *s, const char *channel, const char *why, int status)
{
	json_object *d = json_object_new_object();

	json_object_object_add(d, "type", json_object_new_string("AuthError"));
	json_object_object_add(d, "error", json_object_new_string(why));
	json_object_object_add(d, "status", json_object_new_int(status));
	say_event(s, "pusher:subscription_error", channel, d);
}

/* presence: {"presence": {"ids", "hash", "count"}} */
static json_object *
presence_data(struct sock *s, const char *channel, int *rc)
{
	json_object *hash = json_object_new_object(), *ids = json_object_new_array(),
	    *p = json_object_new_object(), *d = json_object_new_object();

	*rc = db_presence_members(s->r->w->db, s->r->app.id, channel,
	    s->r->cfg->presence_max_members, hash);
	json_object_object_foreach(hash, k, v) {
		(void)v;
		json_object_array_add(ids, json_object_new_string(k));
	}
	json_object_object_add(p, "count", json_object_new_int(
	    (int)json_object_array_length(ids)));
	json_object_object_add(p, "ids", ids);
	json_object_object_add(p, "hash", hash);
	json_object_object_add(d, "presence", p);
	return d;
}

/* cache- channels: the last event at once, or pusher:cache_miss */
static void
send_cache(struct sock *s, const char *channel)
{
	json_object *last = NULL, *v;
	int rc;

	rc = db_channel_last_event(s->r->w->db, s->r->app.id, channel, &last);
	if (rc != 0 || last == NULL) {
		say_event(s, "pusher:cache_miss", channel, json_object_new_object());
		return;
	}
	json_object_object_get_ex(last, "data", &v);
	const char *ev = json_object_get_string(json_object_object_get(last, "event"));
	say(s, rt_message(ev, channel, json_object_get_string(v),
	    (size_t)json_object_get_string_len(v), NULL));
	json_object_put(last);
}

/*
 * The member a presence channel_data names: its user_id (a string, or a
 * number as Pusher allows, 1 to MAX_USER_ID bytes without control
 * characters) and its user_info as JSON text of at most max_info bytes.
 * Returns NULL, or what is wrong (the subscription is refused).
 */
static const char *
presence_member(const char *channel_data, size_t max_info, char **user_id, char **user_info)
{
	json_object *cd = json_parse_object(channel_data), *u, *info;
	const char *why = NULL, *text;

	*user_id = *user_info = NULL;
	if (cd == NULL || !json_object_object_get_ex(cd, "user_id", &u) ||
	    !(json_object_is_type(u, json_type_string) || json_object_is_type(u, json_type_int)) ||
	    !valid_text_id(json_object_get_string(u), MAX_USER_ID))
		why = "channel_data needs a user_id of 1 to 200 bytes without control characters";
	else if (json_object_object_get_ex(cd, "user_info", &info) &&
	    strlen(text = json_object_to_json_string_ext(info, JSON_C_TO_STRING_PLAIN)) > max_info)
		why = "user_info is over the size limit";
	else {
		*user_id = strdup(json_object_get_string(u));
		if (json_object_object_get_ex(cd, "user_info", &info))
			*user_info = strdup(json_object_to_json_string_ext(info,
			    JSON_C_TO_STRING_PLAIN));
	}
	json_object_put(cd);
	return why;
}

/* A subscription refused by a limit: pusher:subscription_error, the socket stays. */
static void
sub_limited(struct sock *s, const char *channel, int refused)
{
	char why[160];

	if (refused == SUB_FULL_CHANNEL)
		snprintf(why, sizeof(why), "the presence channel is full (%d members)",
		    s->lim.members);
	else
		snprintf(why, sizeof(why), "this connection is on %d channels, the most it may be on",
		    s->lim.socket_channels);
	json_object *d = json_object_new_object();
	json_object_object_add(d, "type", json_object_new_string("LimitReached"));
	json_object_object_add(d, "error", json_object_new_string(why));
	json_object_object_add(d, "status", json_object_new_int(403));
	say_event(s, "pusher:subscription_error", channel, d);
}

static void
on_subscribe(struct sock *s, json_object *data)
{
	struct req *r = s->r;
	const char *ch = body_string(body_member(data, "channel", NULL));
	const char *auth = body_string(body_member(data, "auth", NULL));
	const char *cdata = body_string(body_member(data, "channel_data", NULL));
	char err[160], gch[300], *msg = NULL, *user = NULL, *info = NULL;
	const char *bad = NULL;
	int refused = 0, rc, presence;

	if (ch == NULL || !valid_channel_name(ch, err, sizeof(err)))
		return say_error(s, 0, ch == NULL ? "pusher:subscribe needs a channel" :
		    "invalid channel name", 0);
	presence = channel_is_presence(ch);
	if (strncmp(ch, "#server-to-user-", 16) == 0) {
		/* only the signed-in user's own channel (sendToUser) */
		if (s->uid == NULL || strcmp(ch + 16, s->uid) != 0)
			return sub_error(s, ch, "sign in as this user first", 403);
	} else if (is_private(ch)) {
		if (asprintf(&msg, presence ? "%s:%s:%s" : "%s:%s", s->socket_id, ch,
		    cdata ? cdata : "") < 0)
			return;
		if (!auth_ok(&r->app, auth, msg)) {
			free(msg);
			return sub_error(s, ch, "Invalid signature: the auth does not match"
			    " the socket, channel and channel_data", 401);
		}
		free(msg);
		if (presence && (bad = cdata == NULL ? "channel_data is required" :
		    presence_member(cdata, (size_t)r->cfg->presence_max_user_info, &user,
		    &info)) != NULL)
			return sub_error(s, ch, bad, 400);
	}
	rc = rt_join(&s->rt, ch, s->socket_id, user, info, &refused);
	free(info);
	if (rc != 0 || refused) {
		free(user);
		return rc != 0 ? store_down(s, rc) : sub_limited(s, ch, refused);
	}
	/* subscribe in Pushpin before telling the client, so that what it publishes next arrives */
	rt_grip_channel(gch, sizeof(gch), r->app.id, ch);
	grip_subscribe(s, gch);
	if (presence) {
		json_object *d = presence_data(s, ch, &rc);
		if (rc != 0) {
			/* subscribed, but the member list is unknown: start over */
			json_object_put(d);
			free(user);
			return store_down(s, rc);
		}
		say_event(s, "pusher_internal:subscription_succeeded", ch, d);
	} else
		say_event(s, "pusher_internal:subscription_succeeded", ch, json_object_new_object());
	if (is_cache(ch))
		send_cache(s, ch);
	free(user);
}

static void
on_unsubscribe(struct sock *s, json_object *data)
{
	const char *ch = body_string(body_member(data, "channel", NULL));
	char gch[300], err[160];
	int rc;

	if (ch == NULL || !valid_channel_name(ch, err, sizeof(err)))
		return;
	if ((rc = rt_leave(&s->rt, ch, s->socket_id)) != 0)
		return store_down(s, rc);
	rt_grip_channel(gch, sizeof(gch), s->r->app.id, ch);
	control(s, "unsubscribe", "channel", gch, NULL, NULL);
}

/*
 * pusher:signin: user_data (JSON text with an "id") signed as
 * "socket_id::user::user_data".  A bad signature closes the socket with
 * 4009, as Pusher does.
 */
static void
on_signin(struct sock *s, json_object *data)
{
	struct req *r = s->r;
	const char *auth = body_string(body_member(data, "auth", NULL));
	const char *ud = body_string(body_member(data, "user_data", NULL));
	json_object *u = ud ? json_parse_object(ud) : NULL, *d;
	const char *id = json_str(u, "id");
	char *msg = NULL;
	int rc;

	/* the id becomes a header (Set-Meta-Uid) and a channel name: no controls */
	if (id == NULL || !valid_text_id(id, MAX_USER_ID) ||
	    asprintf(&msg, "%s::user::%s", s->socket_id, ud) < 0 || !auth_ok(&r->app, auth, msg)) {
		free(msg);
		json_object_put(u);
		return say_error(s, E_UNAUTHORIZED, "Invalid signin: the auth does not match, or"
		    " user_data has no id of 1 to 200 bytes without control characters", 1);
	}
	free(msg);
	if ((rc = db_conn_add(r->w->db, r->app.id, s->socket_id, id, lease_end(s))) != 0) {
		json_object_put(u);
		return store_down(s, rc);
	}
	/* the user from here on, and Set-Meta-Uid once the batch is done */
	snprintf(s->signed_in, sizeof(s->signed_in), "%s", id);
	s->uid = s->signed_in;
	d = json_object_new_object();
	json_object_object_add(d, "user_data", json_object_new_string(ud));
	say_event(s, "pusher:signin_success", NULL, d);
	json_object_put(u);
}

/*
 * Whether one more client event fits in this second: Pusher allows
 * ws_client_events_per_s per connection.  The count lives in Pushpin's
 * connection meta, so every worker on every host sees the same one.
 */
static int
client_event_allowed(struct sock *s)
{
	long long now = now_ms() / 1000;

	if (s->ce_sec != now) {
		s->ce_sec = now;
		s->ce_count = 0;
	}
	if (s->ce_count >= s->r->cfg->ws_client_events_per_s)
		return 0;
	s->ce_count++;
	s->ce_changed = 1;
	return 1;
}

/*
 * client-* events (Pusher: private and presence channels only, not
 * encrypted ones, from a subscribed socket) go to the channel's other
 * subscribers, with user_id on presence channels, and to the
 * client_event webhook.
 */
static void
on_client_event(struct sock *s, const char *name, json_object *msg)
{
	struct req *r = s->r;
	const char *ch = body_string(body_member(msg, "channel", NULL));
	json_object *data = body_member(msg, "data", NULL), *items, *ev, *e;
	const char *ds;
	char *member = NULL, err[160];
	int rc, found = 0;

	if (!valid_event_name(name, err, sizeof(err)))
		return say_error(s, 0, "Client event rejected: the name must be 1 to 200 bytes"
		    " without control characters", 0);
	if (ch == NULL || !is_private(ch) || strncmp(ch, "private-encrypted-", 18) == 0)
		return say_error(s, 0, "Client events are only allowed on private and presence"
		    " channels", 0);
	ds = data == NULL ? "" : json_object_is_type(data, json_type_string) ?
	    json_object_get_string(data) : json_object_to_json_string_ext(data,
	    JSON_C_TO_STRING_PLAIN);
	if (strlen(ds) > (size_t)r->app.max_event_data_bytes) {
		snprintf(err, sizeof(err), "Client event rejected: data is over %d bytes",
		    r->app.max_event_data_bytes);
		return say_error(s, 0, err, 0);
	}
	if (!client_event_allowed(s)) {
		snprintf(err, sizeof(err), "Client event rejected: only %d are accepted per second",
		    r->cfg->ws_client_events_per_s);
		return say_error(s, E_CLIENT_RATE, err, 0);
	}
	if ((rc = db_sub_get(r->w->db, r->app.id, ch, s->socket_id, &found, &member)) != 0 ||
	    !found)
		return say_error(s, 0, "Client event rejected: not subscribed to the channel", 0);
	items = json_object_new_array();
	rt_item_add(items, r->app.id, ch, rt_message(name, ch, ds, strlen(ds),
	    member), s->socket_id);
	rt_publish(r->w->grip, items);
	if (r->app.webhook_url[0] != '\0') {
		ev = json_object_new_array();
		e = json_object_new_object();
		json_object_object_add(e, "name", json_object_new_string("client_event"));
		json_object_object_add(e, "channel", json_object_new_string(ch));
		json_object_object_add(e, "event", json_object_new_string(name));
		json_object_object_add(e, "data", json_object_new_string(ds));
		json_object_object_add(e, "socket_id", json_object_new_string(s->socket_id));
		if (member != NULL)
			json_object_object_add(e, "user_id", json_object_new_string(member));
		json_object_array_add(ev, e);
		if ((rc = rt_webhook(r->w->db, &r->app, ev)) != 0)
			log_warn("client_event webhook of app %s not queued (%d)", r->app.id, rc);
	}
	free(member);
}

/* One TEXT message from the client: a Pusher protocol event. */
static void
on_text(struct sock *s, const char *text, size_t len)
{
	char err[96];
	json_object *msg = json_parse_strict(text, len, err, sizeof(err)), *data;
	const char *ev = body_string(body_member(json_object_is_type(msg, json_type_object) ?
	    msg : NULL, "event", NULL));
	const char *ds;

	if (ev == NULL) {
		say_error(s, 0, "Invalid message: a JSON object with an event is expected", 0);
		json_object_put(msg);
		return;
	}
	data = body_member(msg, "data", NULL);
	/* Pusher allows data as an object or as its JSON text */
	if ((ds = body_string(data)) != NULL)
		data = json_parse_strict(ds, strlen(ds), err, sizeof(err));
	else
		data = json_object_get(data);
	if (!json_object_is_type(data, json_type_object)) {
		json_object_put(data);
		data = NULL;	/* what follows reads members of objects only */
	}
	if (strcmp(ev, "pusher:ping") == 0)
		say_event(s, "pusher:pong", NULL, json_object_new_object());
	else if (strcmp(ev, "pusher:pong") == 0)
		;
	else if (strcmp(ev, "pusher:subscribe") == 0)
		on_subscribe(s, data);
	else if (strcmp(ev, "pusher:unsubscribe") == 0)
		on_unsubscribe(s, data);
	else if (strcmp(ev, "pusher:signin") == 0)
		on_signin(s, data);
	else if (strncmp(ev, "client-", 7) == 0)
		on_client_event(s, ev, msg);
	else
		say_error(s, 0, "Unsupported event", 0);
	json_object_put(data);
	json_object_put(msg);
}

/* Pushpin's meta of this socket, as our own requests set it. */
static void
read_meta(struct sock *s)
{
	struct req *r = s->r;
	long long sec, count;
	char tail;

	if (r->meta_user != NULL && valid_socket_id(r->meta_user))
		snprintf(s->socket_id, sizeof(s->socket_id), "%s", r->meta_user);
	if (r->meta_uid != NULL && valid_text_id(r->meta_uid, MAX_USER_ID))
		s->uid = r->meta_uid;
	if (r->meta_ce != NULL && sscanf(r->meta_ce, "%lld %lld%c", &sec, &count, &tail) == 2) {
		s->ce_sec = sec;
		s->ce_count = count;
	}
}

/*
 * Write back what changed of the socket's meta, each header once: a
 * header per event of a 256-event batch overflowed nginx's FastCGI
 * header buffer (502, and Pushpin dropped the socket).
 */
static void
write_meta(struct sock *s)
{
	char v[48];

	snprintf(v, sizeof(v), "%lld", (long long)(now_ms() / 1000));
	if (s->renewed)
		resp_header(s->p, "Set-Meta-Renew", v);
	if (s->seen)
		resp_header(s->p, "Set-Meta-Seen", v);
	if (s->signed_in[0] != '\0')
		resp_header(s->p, "Set-Meta-Uid", s->signed_in);
	if (!s->ce_changed)
		return;
	snprintf(v, sizeof(v), "%lld %lld", s->ce_sec, s->ce_count);
	resp_header(s->p, "Set-Meta-Ce", v);
}

/* One event of the request. */
static void
on_event(struct sock *s, const struct ws_event *ev, int known)
{
	if (grip_is(ev, "OPEN")) {
		if (!known) {
			grip_out_event(&s->out, "OPEN", NULL, 0);
			if (s->app_rc < 0)
				say_error(s, E_BACKOFF, "the app store is unavailable; reconnect"
				    " later", 1);
			else
				say_error(s, s->app_rc == 0 ? E_APP_DISABLED : E_APP_UNKNOWN,
				    s->app_rc == 0 ? "Application is disabled" :
				    "Application does not exist", 1);
		} else
			on_open(s);
	} else if (s->socket_id[0] == '\0' || !known) {
		/* not a socket we opened: close it */
		say_error(s, E_RECONNECT, "unknown connection; reconnect", 1);
	} else if (grip_is(ev, "TEXT")) {
		set_seen(s);
		if (renew(s) == 0)
			on_text(s, ev->content, ev->len);
	} else if (grip_is(ev, "PING"))
		grip_out_event(&s->out, "PONG", ev->content, ev->len);
	else if (grip_is(ev, "CLOSE")) {
		/* the client closed: acknowledge with the same code */
		on_gone(s);
		grip_out_event(&s->out, "CLOSE", ev->content, ev->len);
		s->closed = 1;
	} else if (grip_is(ev, "DISCONNECT")) {
		on_gone(s);
		s->closed = 1;
	}
}

/*
 * POST /app/{key}: one WebSocket-over-HTTP request from Pushpin (no
 * events: a keep-alive).  Only Pushpin may call it (Grip-Sig).  The
 * answer is 200 with the events to send back; protocol errors are
 * pusher:error messages inside it.  Statuses: 200, 401 (no valid
 * Grip-Sig), 403 (WebSockets not configured), 400 (malformed events),
 * 415.
 */
int
h_socket_events(struct req *r, struct resp *p)
{
	struct ws_event ev;
	struct sock s = { .r = r, .p = p };
	const char *body = r->body ? r->body : "";
	char ka[16], msg[96];
	size_t off = 0;
	long n, texts = 0, dropped = 0;
	int known;

	if (r->cfg->pushpin_sig_key[0] == '\0')
		return resp_error(p, 403, "feature_disabled", "WebSockets are not configured"
		    " (pushpin_sig_key)");
	if (!grip_sig_valid(r->grip_sig, r->cfg->pushpin_sig_key, r->cfg->pushpin_sig_iss,
	    now_ms() / 1000))
		return resp_error(p, 401, "auth_failed", "only Pushpin may call this route"
		    " (no valid Grip-Sig)");
	if (r->content_type == NULL || strcmp(r->content_type, WS_CONTENT_TYPE) != 0)
		return resp_error(p, 415, "unsupported_media_type", "the body must be "
		    WS_CONTENT_TYPE);
	/* the whole body is checked before any of it is acted on */
	if ((n = grip_count(body, r->bodylen)) < 0)
		return resp_error(p, 400, "invalid_input", "malformed WebSocket-over-HTTP events");
	s.lim = (struct sub_limits){ r->cfg->presence_max_members, r->cfg->ws_max_channels };
	s.rt = (struct rt){ r->w->db, r->w->grip, &r->app, &s.lim };
	read_meta(&s);
	s.app_rc = worker_app_by_key(r->w, r->args[0], &r->app);
	known = s.app_rc == 0 && r->app.enabled;
	while (!s.closed && grip_next(body, r->bodylen, &off, &ev) == 1) {
		/* a flood queued behind one request: answer it without the store */
		if (grip_is(&ev, "TEXT") && ++texts > WS_MAX_TEXTS) {
			dropped++;
			continue;
		}
		on_event(&s, &ev, known);
	}
	if (dropped > 0) {
		snprintf(msg, sizeof(msg), "%ld messages dropped: at most %d are taken at once",
		    dropped, WS_MAX_TEXTS);
		say_error(&s, E_CLIENT_RATE, msg, 0);
	}
	if (n == 0 && s.socket_id[0] != '\0' && known && !gone_silent(&s))
		(void)renew(&s);	/* a keep-alive */
	write_meta(&s);
	resp_bytes(p, 200, WS_CONTENT_TYPE, s.out.buf ? s.out.buf : "", s.out.len);
	/* grip on, without Pushpin's "m:" prefix on messages to the client */
	resp_header(p, "Sec-WebSocket-Extensions", "grip; message-prefix=\"\"");
	snprintf(ka, sizeof(ka), "%d", r->cfg->ws_keepalive_s);
	resp_header(p, "Keep-Alive-Interval", ka);
	grip_out_free(&s.out);
	return 0;
}
