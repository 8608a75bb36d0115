/* handlers/events.c: POST /events and /batch_events (SPEC 3). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "db/db.h"

#define TX_ATTEMPTS 3

/* One validated event.  Strings are borrowed from the request's JSON. */
struct ev {
	const char	 *name;
	const char	**channels;
	size_t		  nchannels;
	char		 *data;		/* owned: JSON text of non-string data */
	const char	 *datap;
	size_t		  datalen;
	const char	 *socket_id;
	const char	 *idem_key;	/* event-level key (batch only) */
	unsigned char	  hash[32];
	int		  info_subs, info_users;
	char		(*serials)[32];	/* one message_serial per channel */
	json_object	 *info;		/* per-channel info, owned, or NULL */
	int		  dup;		/* its key was seen: not published again */
	json_object	 *stored;	/* with dup: the first answer's info, owned */
};

static void
ev_free(struct ev *e)
{
	free(e->channels);
	free(e->data);
	free(e->serials);
	if (e->info != NULL)
		json_object_put(e->info);
	if (e->stored != NULL)
		json_object_put(e->stored);
}

/*
 * Validate one event object against SPEC 3 and the app's limits.  On
 * failure returns 400 or 413 with msg set; nothing is stored.
 */
static int
ev_parse(json_object *o, const struct app *a, struct ev *e, char *msg, size_t msglen)
{
	json_object *v, *chs;
	const char *s, *info;
	char err[160];
	size_t i, k, n;

	memset(e, 0, sizeof(*e));
	if (!json_object_is_type(o, json_type_object))
		return snprintf(msg, msglen, "an event must be a JSON object"), 400;
	if ((e->name = body_string(body_member(o, "name", NULL))) == NULL)
		return snprintf(msg, msglen, "name is required and must be a string"), 400;
	if (!valid_event_name(e->name, err, sizeof(err)))
		return snprintf(msg, msglen, "%s", err), 400;

	if ((v = body_member(o, "data", NULL)) == NULL)
		return snprintf(msg, msglen, "data is required"), 400;
	body_data(v, &e->data, &e->datap, &e->datalen);
	if (e->datalen > (size_t)a->max_event_data_bytes)
		return snprintf(msg, msglen, "data is %zu bytes, over this app's limit of %d",
		    e->datalen, a->max_event_data_bytes), 413;

	v = body_member(o, "channel", NULL);
	chs = body_member(o, "channels", NULL);
	if ((v == NULL) == (chs == NULL))
		return snprintf(msg, msglen, "give exactly one of channel or channels"), 400;
	if (chs != NULL && !json_object_is_type(chs, json_type_array))
		return snprintf(msg, msglen, "channels must be an array of strings"), 400;
	n = chs != NULL ? json_object_array_length(chs) : 1;
	if (n == 0)
		return snprintf(msg, msglen, "channels must not be empty"), 400;
	if (n > (size_t)a->max_channels_per_event)
		return snprintf(msg, msglen, "%zu channels, over the limit of %d", n,
		    a->max_channels_per_event), 400;
	e->channels = calloc(n, sizeof(*e->channels));
	e->serials = calloc(n, sizeof(*e->serials));
	if (e->channels == NULL || e->serials == NULL)
		return snprintf(msg, msglen, "out of memory"), 500;
	for (i = 0; i < n; i++) {
		s = body_string(chs != NULL ? json_object_array_get_idx(chs, i) : v);
		if (s == NULL)
			return snprintf(msg, msglen, "channel names must be strings"), 400;
		if (!valid_channel_name(s, err, sizeof(err)))
			return snprintf(msg, msglen, "channel %zu: %s", i, err), 400;
		for (k = 0; k < i; k++)
			if (strcmp(e->channels[k], s) == 0)
				return snprintf(msg, msglen, "channel \"%s\" is listed twice", s), 400;
		e->channels[i] = s;
	}
	e->nchannels = n;

	if ((v = body_member(o, "socket_id", "socketId")) != NULL &&
	    ((e->socket_id = body_string(v)) == NULL || !valid_socket_id(e->socket_id)))
		return snprintf(msg, msglen, "socket_id must look like \"123.456\""), 400;
	if ((v = body_member(o, "info", NULL)) != NULL) {
		if ((info = body_string(v)) == NULL)
			return snprintf(msg, msglen, "info must be a string"), 400;
		if (info_parse(info, &e->info_subs, &e->info_users, NULL, err, sizeof(err)) != 0)
			return snprintf(msg, msglen, "%s", err), 400;
	}
	if ((v = body_member(o, "idempotency_key", "idempotencyKey")) != NULL &&
	    ((e->idem_key = body_string(v)) == NULL || !idem_key_valid(e->idem_key)))
		return snprintf(msg, msglen, "idempotency_key must be 1 to %d printable bytes",
		    MAX_IDEM_KEY), 400;
	if (e->idem_key != NULL)
		idem_hash(o, NULL, e->hash);
	return 0;
}

/* Fill e->info from channel state: {"<ch>": {subscription_count, user_count?, message_serial}}. */
static int
ev_info(struct req *r, struct ev *e)
{
	long long subs, users;
	json_object *o;
	size_t i;
	int rc;

	if (!e->info_subs && !e->info_users)
		return 0;
	e->info = json_object_new_object();
	for (i = 0; i < e->nchannels; i++) {
		if ((rc = channel_state_counts(r, e->channels[i], &subs, &users)) != 0)
			return rc;
		o = json_object_new_object();
		if (e->info_users && channel_is_presence(e->channels[i]))
			json_object_object_add(o, "user_count", json_object_new_int64(users));
		if (e->info_subs)
			json_object_object_add(o, "subscription_count", json_object_new_int64(subs));
		json_object_object_add(o, "message_serial",
		    json_object_new_string(e->serials[i]));
		json_object_object_add(e->info, e->channels[i], o);
	}
	return 0;
}

/* The memcached fast path of a request-level key: "<hash hex> <status> <body>". */
static void
idem_cache_key(struct req *r, const char *key, char out[80])
{
	cache_key(out, "idem", r->app.id, key, NULL);
}

static int
idem_from_cache(struct req *r, struct resp *p, const char *key, const unsigned char hash[32])
{
	char ck[80], *val = NULL, hex[65];
	size_t len;
	unsigned char stored[32];
	int status, rc = -1;
	size_t i;

	idem_cache_key(r, key, ck);
	if (cache_get(r->w->cache, ck, &val, &len) != 0)
		return -1;
	if (len > 68 && val[64] == ' ') {
		memcpy(hex, val, 64);
		hex[64] = '\0';
		for (i = 0; i < 32; i++)
			sscanf(hex + 2 * i, "%2hhx", &stored[i]);
		status = atoi(val + 65);
		char *body = strchr(val + 65, ' ');
		if (body != NULL)
			rc = idem_replay(p, stored, hash, status, body + 1, 0);
	}
	free(val);
	return rc;
}

static void
idem_to_cache(struct req *r, const char *key, const unsigned char hash[32], int status,
    const char *body, int ttl)
{
	char ck[80], hex[65], *v = NULL;
	int n;

	idem_cache_key(r, key, ck);
	hex_encode(hash, 32, hex);
	if ((n = asprintf(&v, "%s %d %s", hex, status, body)) > 0)
		(void)cache_set(r->w->cache, ck, v, (size_t)n, ttl > 86400 * 30 ? 86400 * 30 : ttl);
	free(v);
}

/*
 * The answer to a batch event's info: Pusher puts the attributes of the
 * event's channel directly in its batch element; an event sent to several
 * channels (our extension) gets them per channel under "channels".
 */
static json_object *
batch_element(const struct ev *e)
{
	json_object *el = json_object_new_object(), *info = e->dup ? e->stored : e->info;

	if (info == NULL)
		return el;
	if (e->nchannels != 1) {
		json_object_object_add(el, "channels", json_object_get(info));
		return el;
	}
	json_object_object_foreach(info, ch, attrs) {
		(void)ch;
		json_object_put(el);
		return json_object_get(attrs);
	}
	return el;
}

/* The response body: {} or {"channels": ...} / {"batch": [...]} when info was asked. */
static json_object *
build_response(struct ev *evs, size_t n, int batch)
{
	json_object *out = json_object_new_object(), *arr;
	size_t i;
	int any = 0;

	for (i = 0; i < n; i++)
		any |= (evs[i].dup ? evs[i].stored : evs[i].info) != NULL;
	if (!any)
		return out;
	if (!batch) {
		json_object_object_add(out, "channels", json_object_get(evs[0].info));
		return out;
	}
	arr = json_object_new_array();
	for (i = 0; i < n; i++)
		json_object_array_add(arr, batch_element(&evs[i]));
	json_object_object_add(out, "batch", arr);
	return out;
}

/*
 * A request's publish as queued for group commit (app/groupcommit.c):
 * the leader thread runs it, on its own connection, in one transaction
 * with other requests' publishes.
 */
struct pub {
	struct req		*r;
	struct resp		*p;
	struct ev		*evs;
	size_t			 n;
	const char		*req_key;	/* request-level key or NULL */
	const unsigned char	*req_hash;
	int			 batch;
	int64_t			 now;
	int			 answered;	/* p holds a stored answer or a 409 */
	json_object		*out;		/* the answer once committed */
};

/* Forget what an earlier attempt at the transaction decided. */
static void
pub_reset(struct pub *u)
{
	size_t i;

	u->answered = 0;
	if (u->out != NULL)
		json_object_put(u->out);
	u->out = NULL;
	for (i = 0; i < u->n; i++) {
		u->evs[i].dup = 0;
		if (u->evs[i].stored != NULL)
			json_object_put(u->evs[i].stored);
		u->evs[i].stored = NULL;
	}
}

static int
pub_has_keys(const struct pub *u)
{
	size_t i;

	for (i = 0; i < u->n; i++)
		if (u->evs[i].idem_key != NULL)
			return 1;
	return u->req_key != NULL;
}

/*
 * Claim a publish's idempotency keys.  Returns 0 to go on publishing,
 * 1 when the publish is answered (a repeat, or a 409: its claims are
 * undone to the savepoint), or a DB_* code.
 */
static int
pub_claim(struct db *d, struct pub *u)
{
	const char *app = u->r->app.id;
	int ttl = u->r->app.idempotency_ttl_s, rc;
	struct idem_row ir;
	size_t i;

	if (u->req_key != NULL) {
		rc = db_idem_claim(d, app, u->req_key, u->req_hash, ttl, u->now, &ir);
		if (rc == DB_CONFLICT) {
			idem_replay(u->p, ir.hash, u->req_hash, ir.status, ir.response, 0);
			free(ir.response);
			u->answered = 1;
			return 1;
		}
		if (rc != 0)
			return rc;
	}
	for (i = 0; i < u->n; i++) {
		struct ev *e = &u->evs[i];
		if (e->idem_key == NULL)
			continue;
		rc = db_idem_claim(d, app, e->idem_key, e->hash, ttl, u->now, &ir);
		if (rc != DB_CONFLICT) {
			if (rc != 0)
				return rc;
			continue;
		}
		if (memcmp(ir.hash, e->hash, 32) != 0) {
			free(ir.response);
			if ((rc = db_rollback_to(d, "pub")) != 0)
				return rc;
			resp_error(u->p, 409, "idempotency_conflict", "batch[%zu]: this "
			    "idempotency key was used with a different payload", i);
			u->answered = 1;
			return 1;
		}
		e->dup = 1;
		e->stored = *ir.response ? json_tokener_parse(ir.response) : NULL;
		free(ir.response);
	}
	return 0;
}

/* Record the answers under the keys this publish claimed. */
static int
pub_store_answers(struct db *d, struct pub *u)
{
	const char *app = u->r->app.id, *body;
	size_t i;
	int rc;

	for (i = 0; i < u->n; i++) {
		if (u->evs[i].idem_key == NULL || u->evs[i].dup)
			continue;
		body = u->evs[i].info ? json_object_to_json_string_ext(u->evs[i].info,
		    JSON_C_TO_STRING_PLAIN) : "";
		if ((rc = db_idem_store(d, app, u->evs[i].idem_key, 200, body)) != 0)
			return rc;
	}
	if (u->req_key != NULL)
		return db_idem_store(d, app, u->req_key, 200,
		    json_object_to_json_string_ext(u->out, JSON_C_TO_STRING_PLAIN));
	return 0;
}

/*
 * One transaction for a group of publishes: claims, then every new event
 * row in one append, then the answers.  A group without idempotency keys
 * whose rows go in one INSERT needs no explicit transaction: that single
 * statement is atomic.  Returns 0 (each publish then has out or is
 * answered) or a DB_* code with everything rolled back.
 */
static int
group_tx(struct db *d, struct pub **g, size_t n)
{
	struct pub_row *rows = NULL;
	size_t i, k, c, nrows = 0;
	int rc, tx;

	for (i = 0; i < n; i++) {
		pub_reset(g[i]);
		for (k = 0; k < g[i]->n; k++)
			nrows += g[i]->evs[k].nchannels;
	}
	tx = nrows > 0 && !db_append_atomic(nrows);
	for (i = 0; i < n; i++)
		tx |= pub_has_keys(g[i]);
	if ((rows = calloc(nrows ? nrows : 1, sizeof(*rows))) == NULL)
		return DB_ERROR;
	if (tx && (rc = db_begin(d)) != 0)
		goto out;
	nrows = 0;
	for (i = 0; i < n; i++) {
		struct pub *u = g[i];
		if (pub_has_keys(u) && (rc = db_savepoint(d, "pub")) != 0)
			goto fail;
		if ((rc = pub_claim(d, u)) < 0)
			goto fail;
		if (rc == 1)
			continue;
		for (k = 0; k < u->n; k++) {
			struct ev *e = &u->evs[k];
			for (c = 0; !e->dup && c < e->nchannels; c++)
				rows[nrows++] = (struct pub_row){ .app_id = u->r->app.id,
				    .channel = e->channels[c], .name = e->name, .data = e->datap,
				    .datalen = e->datalen, .socket_id = e->socket_id,
				    .message_serial = e->serials[c], .published_at_ms = u->now };
		}
	}
	if (nrows > 0 && (rc = db_messages_append(d, rows, nrows)) != 0)
		goto fail;
	for (i = 0; i < n; i++) {
		if (g[i]->answered)
			continue;
		g[i]->out = build_response(g[i]->evs, g[i]->n, g[i]->batch);
		if ((rc = pub_store_answers(d, g[i])) != 0)
			goto fail;
	}
	if (!tx || (rc = db_commit(d)) == 0)
		goto out;
fail:
	if (tx)
		db_rollback(d);
	for (i = 0; i < n; i++)
		pub_reset(g[i]);
out:
	free(rows);
	return rc;
}

/* group_tx, redone on a deadlock or lock-wait timeout (nothing was committed). */
static int
group_tx_retry(struct db *d, struct pub **g, size_t n)
{
	int rc, attempt;

	for (attempt = 0; attempt < TX_ATTEMPTS; attempt++) {
		rc = group_tx(d, g, n);
		if (!db_retryable(d, rc))
			break;
	}
	return rc;
}

/*
 * Hand what a group just stored to the subscribers, through every
 * Pushpin instance, in one request for the whole group: each new event
 * on each of its channels, except to the socket_id that sent it (SPEC 3).
 * After the commit and before any answer: a client that publishes twice
 * in a row is delivered in that order.  A Pushpin that is down costs its
 * clients the live copy, not the event.
 */
static void
deliver(struct grip_pub *grip, struct pub *const *g, size_t n)
{
	json_object *items;
	const struct ev *e;
	size_t i, k, c;

	if (grip == NULL)
		return;
	items = json_object_new_array();
	for (i = 0; i < n; i++)
		for (k = 0; k < g[i]->n; k++)
			for (e = &g[i]->evs[k], c = 0; !e->dup && c < e->nchannels; c++)
				rt_item_add(items, g[i]->r->app.id, e->channels[c],
				    rt_message(e->name, e->channels[c], e->datap, e->datalen,
				    NULL), e->socket_id);
	rt_publish(grip, items);
}

/* gc_ops.run: commit a group; if it fails for a reason of its own, each publish alone. */
static void
pub_run(struct gc_item **items, size_t n, void *ctx)
{
	struct worker *w = ctx;
	struct pub *g[GC_MAX_GROUP], *stored[GC_MAX_GROUP];
	size_t i, k = 0;
	int rc;

	for (i = 0; i < n; i++)
		g[i] = items[i]->arg;
	rc = group_tx_retry(w->db, g, n);
	for (i = 0; i < n; i++)
		items[i]->rc = rc;
	if (rc == DB_ERROR && n > 1) {
		/* one publish's failure must not fail the others */
		for (i = 0; i < n; i++)
			items[i]->rc = group_tx_retry(w->db, &g[i], 1);
	}
	for (i = 0; i < n; i++)
		if (items[i]->rc == 0 && !g[i]->answered)
			stored[k++] = g[i];
	deliver(w->grip, stored, k);
}

static int
same_key(const struct pub *a, const char *key)
{
	size_t i;

	if (key == NULL)
		return 0;
	if (a->req_key != NULL && strcmp(a->req_key, key) == 0)
		return 1;
	for (i = 0; i < a->n; i++)
		if (a->evs[i].idem_key != NULL && strcmp(a->evs[i].idem_key, key) == 0)
			return 1;
	return 0;
}

/*
 * gc_ops.conflicts: two publishes of one app with a key in common must
 * not share a transaction: the second must see the first one committed.
 */
static int
pub_conflicts(const struct gc_item *cand, struct gc_item *const *group, size_t n)
{
	const struct pub *u = cand->arg;
	size_t i, k;

	if (!pub_has_keys(u))
		return 0;
	for (i = 0; i < n; i++) {
		const struct pub *o = group[i]->arg;
		if (strcmp(o->r->app.id, u->r->app.id) != 0)
			continue;
		if (same_key(o, u->req_key))
			return 1;
		for (k = 0; k < u->n; k++)
			if (same_key(o, u->evs[k].idem_key))
				return 1;
	}
	return 0;
}

static const struct gc_ops pub_ops = { pub_conflicts, pub_run };

/*
 * Store a validated set of events durably, with request-level (req_key)
 * and event-level idempotency, and answer.  Statuses: 200, 409
 * idempotency_conflict, 503 (MariaDB down; nothing committed), 500.
 */
static int
publish(struct req *r, struct resp *p, struct ev *evs, size_t n, const char *req_key,
    const unsigned char req_hash[32], int batch)
{
	struct pub u = { .r = r, .p = p, .evs = evs, .n = n, .req_key = req_key,
	    .req_hash = req_hash, .batch = batch, .now = now_ms() };
	struct gc_item item = { .arg = &u };
	size_t i, c;
	unsigned events = 0;
	int rc;

	if (req_key != NULL && (rc = idem_from_cache(r, p, req_key, req_hash)) >= 0)
		return rc;
	for (i = 0; i < n; i++) {
		for (c = 0; c < evs[i].nchannels; c++)
			message_serial_new(evs[i].serials[c], u.now);
		if ((rc = ev_info(r, &evs[i])) != 0)
			return store_error(p, rc, "the channel state store",
			    "channel state read failed");
	}
	if (r->w->publishes != NULL)
		rc = gc_submit(r->w->publishes, &item, &pub_ops, r->w);
	else if ((rc = group_tx_retry(r->w->db, (struct pub *[]){ &u }, 1)) == 0 && !u.answered)
		deliver(r->w->grip, (struct pub *[]){ &u }, 1);
	if (rc != 0)
		return store_error(p, rc, "the message store", "the events could not be stored");
	if (u.answered)
		return p->status == 200 ? 0 : p->status;
	for (i = 0; i < n; i++)
		events += evs[i].dup ? 0 : (unsigned)evs[i].nchannels;
	metrics_count_publish(events);
	if (req_key != NULL)
		idem_to_cache(r, req_key, req_hash, 200,
		    json_object_to_json_string_ext(u.out, JSON_C_TO_STRING_PLAIN),
		    r->app.idempotency_ttl_s);
	return resp_json(p, 200, u.out);
}

/*
 * POST /apps/{id}/events.  Statuses: 200, 400 invalid_input, 409
 * idempotency_conflict, 413 payload_too_large, 503, 500.
 */
int
h_events_publish(struct req *r, struct resp *p)
{
	struct ev e;
	char msg[256];
	const char *key;
	int rc;

	if (r->json == NULL)
		return resp_error(p, 400, "invalid_input", "a JSON body is required");
	if ((rc = ev_parse(r->json, &r->app, &e, msg, sizeof(msg))) != 0) {
		ev_free(&e);
		return resp_error(p, rc, rc == 413 ? "payload_too_large" :
		    rc == 400 ? "invalid_input" : "internal", "%s", msg);
	}
	key = e.idem_key;
	if (r->idem_header != NULL) {
		if (!idem_key_valid(r->idem_header) || (key != NULL && strcmp(key, r->idem_header))) {
			ev_free(&e);
			return resp_error(p, 400, "invalid_input", "X-Idempotency-Key must be 1 to "
			    "%d printable bytes and agree with idempotency_key", MAX_IDEM_KEY);
		}
		key = r->idem_header;
	}
	if (key != NULL && e.idem_key == NULL)
		idem_hash(r->json, NULL, e.hash);
	e.idem_key = NULL;	/* for a single event the key is the request's */
	rc = publish(r, p, &e, 1, key, e.hash, 0);
	ev_free(&e);
	return rc;
}

/*
 * POST /apps/{id}/batch_events: every event is validated before any is
 * stored, and all are stored in one transaction.  Statuses as for
 * /events; 400 names the failing event's index.
 */
int
h_events_batch(struct req *r, struct resp *p)
{
	json_object *batch = NULL;
	struct ev *evs;
	unsigned char hash[32];
	char msg[256];
	size_t n, i, parsed = 0;
	int rc = 0;

	if (r->json == NULL || !json_object_object_get_ex(r->json, "batch", &batch) ||
	    !json_object_is_type(batch, json_type_array))
		return resp_error(p, 400, "invalid_input", "the body must be {\"batch\": [events]}");
	n = json_object_array_length(batch);
	if (n == 0)
		return resp_error(p, 400, "invalid_input", "batch must not be empty");
	if (n > (size_t)r->app.max_batch_size)
		return resp_error(p, 400, "limit_exceeded", "%zu events, over the batch limit of %d",
		    n, r->app.max_batch_size);
	if (r->idem_header != NULL && !idem_key_valid(r->idem_header))
		return resp_error(p, 400, "invalid_input",
		    "X-Idempotency-Key must be 1 to %d printable bytes", MAX_IDEM_KEY);
	if ((evs = calloc(n, sizeof(*evs))) == NULL)
		return resp_error(p, 500, "internal", "out of memory");
	for (i = 0; i < n; i++, parsed++) {
		rc = ev_parse(json_object_array_get_idx(batch, i), &r->app, &evs[i], msg, sizeof(msg));
		if (rc != 0) {
			parsed++;
			rc = resp_error(p, rc, rc == 413 ? "payload_too_large" : rc == 400 ?
			    "invalid_input" : "internal", "batch[%zu]: %s", i, msg);
			goto out;
		}
	}
	if (r->idem_header != NULL)
		idem_hash(r->json, NULL, hash);
	rc = publish(r, p, evs, n, r->idem_header, hash, 1);
out:
	for (i = 0; i < parsed; i++)
		ev_free(&evs[i]);
	free(evs);
	return rc;
}
