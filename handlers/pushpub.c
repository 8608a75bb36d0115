/* handlers/pushpub.c: push publishes, their status, cancel, and provider callbacks (SPEC 8). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "db/db.h"

#define MAX_PAYLOAD 3000	/* fits a Web Push record and an APNs payload */

/* The value of data at a dotted path ("a.b.c"), or NULL when there is none. */
static json_object *
data_path(json_object *data, const char *path, size_t len)
{
	json_object *v = data;
	const char *p = path, *end = path + len, *dot;
	char key[128];
	size_t n;

	while (v != NULL && p < end) {
		dot = memchr(p, '.', (size_t)(end - p));
		n = (size_t)((dot ? dot : end) - p);
		if (n == 0 || n >= sizeof(key) || !json_object_is_type(v, json_type_object))
			return NULL;
		memcpy(key, p, n);
		key[n] = '\0';
		if (!json_object_object_get_ex(v, key, &v))
			return NULL;
		p += n + (dot != NULL);
	}
	return v;
}

/* Text rendered so far, never more than max bytes (then over is set). */
struct render {
	char	*buf;
	size_t	 len, max;
	int	 over;
};

static void
render_put(struct render *o, const char *s, size_t n)
{
	if (o->over || n > o->max - o->len) {
		o->over = 1;
		return;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

/*
 * A template text with each {{data.path}} replaced from data (a string
 * as it is, any other value as its JSON text): malloc'd, or NULL when
 * the result would be over max bytes (*over set) or memory is short.
 * It stops at the limit, so no text and data can make it build more: a
 * thousand placeholders of a 100 KB value cost nothing past max.
 */
char *
template_render(const char *text, json_object *data, size_t max, int *over)
{
	struct render o = { NULL, 0, max, 0 };
	const char *p = text, *open, *close, *name, *s;
	json_object *v;
	size_t n;

	*over = 0;
	if ((o.buf = malloc(max + 1)) == NULL)
		return NULL;
	while (!o.over && (open = strstr(p, "{{")) != NULL && (close = strstr(open, "}}")) != NULL) {
		render_put(&o, p, (size_t)(open - p));
		for (name = open + 2; *name == ' '; name++)
			;
		for (n = (size_t)(close - name); n > 0 && name[n - 1] == ' '; n--)
			;
		if (n > 5 && strncmp(name, "data.", 5) == 0) {
			if ((v = data_path(data, name + 5, n - 5)) != NULL) {
				s = json_object_is_type(v, json_type_string) ?
				    json_object_get_string(v) :
				    json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
				render_put(&o, s, strlen(s));
			}
		} else
			render_put(&o, open, (size_t)(close + 2 - open));
		p = close + 2;
	}
	render_put(&o, p, strlen(p));
	if (o.over) {
		free(o.buf);
		*over = 1;
		return NULL;
	}
	o.buf[o.len] = '\0';
	return o.buf;
}

/*
 * The recipients array as stored: [{type, channel|device_id|client_id}].
 * Returns NULL with msg set when it is not valid.
 */
static json_object *
recipients_parse(struct req *r, json_object *v, char *msg, size_t msglen, int *status)
{
	json_object *out, *rec;
	const char *type, *id, *key;
	char err[160];
	size_t i, n;

	*status = 400;
	if (v == NULL || !json_object_is_type(v, json_type_array) ||
	    (n = json_object_array_length(v)) == 0)
		return snprintf(msg, msglen, "recipients must be a non-empty array"), NULL;
	if (n > (size_t)r->cfg->push_max_recipients)
		return *status = 413, snprintf(msg, msglen, "%zu recipients, over the limit of %d",
		    n, r->cfg->push_max_recipients), NULL;
	out = json_object_new_array();
	for (i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(v, i);
		type = json_object_is_type(o, json_type_object) ?
		    body_string(body_member(o, "type", NULL)) : NULL;
		key = type == NULL ? NULL : strcmp(type, "channel") == 0 ? "channel" :
		    strcmp(type, "device") == 0 ? "device_id" :
		    strcmp(type, "client") == 0 ? "client_id" : NULL;
		if (key == NULL) {
			snprintf(msg, msglen, "recipients[%zu]: type must be channel, device or "
			    "client", i);
			goto bad;
		}
		id = body_string(body_member(o, key, strcmp(key, "device_id") == 0 ? "deviceId" :
		    strcmp(key, "client_id") == 0 ? "clientId" : NULL));
		if (id == NULL || *id == '\0' || strlen(id) > 200 ||
		    (strcmp(key, "channel") == 0 && !valid_channel_name(id, err, sizeof(err)))) {
			snprintf(msg, msglen, "recipients[%zu]: %s is required and must be valid",
			    i, key);
			goto bad;
		}
		rec = json_object_new_object();
		json_object_object_add(rec, "type", json_object_new_string(type));
		json_object_object_add(rec, key, json_object_new_string(id));
		json_object_array_add(out, rec);
	}
	return out;
bad:
	json_object_put(out);
	return NULL;
}

/*
 * The notification to send, {title?, body?, data?}: the payload as given,
 * or rendered from its template in its locale.  Returns NULL with msg
 * and *status (400, 404 for an unknown template, 503) when it cannot be.
 */
static json_object *
payload_render(struct req *r, json_object *v, char *msg, size_t msglen, int *status)
{
	json_object *out, *data = NULL, *t = NULL, *loc;
	const char *tid, *locale, *title, *body;
	char *text = NULL, *rt, *rb;
	int rc, over = 0;

	*status = 400;
	if (v == NULL || !json_object_is_type(v, json_type_object))
		return snprintf(msg, msglen, "payload must be an object"), NULL;
	if (json_object_object_get_ex(v, "data", &data) && !json_object_is_type(data,
	    json_type_object))
		return snprintf(msg, msglen, "payload.data must be an object"), NULL;
	title = body_string(body_member(v, "title", NULL));
	body = body_string(body_member(v, "body", NULL));
	if ((body_member(v, "title", NULL) && title == NULL) ||
	    (body_member(v, "body", NULL) && body == NULL))
		return snprintf(msg, msglen, "payload.title and payload.body are strings"), NULL;
	if ((tid = body_string(body_member(v, "template_id", "templateId"))) != NULL) {
		rc = db_push_template_get(r->w->db, r->app.id, tid, &text);
		if (rc == DB_NOTFOUND)
			return *status = 400, snprintf(msg, msglen, "unknown template %s", tid), NULL;
		if (rc != 0)
			return *status = 503, snprintf(msg, msglen, "%s", PUSH_STORE), NULL;
		t = json_parse_object(text);
		free(text);
		if (t == NULL)
			return *status = 500, snprintf(msg, msglen, "template unreadable"), NULL;
		if ((locale = body_string(body_member(v, "locale", NULL))) == NULL)
			locale = json_str(t, "default_locale");
		if (locale == NULL || (loc = json_obj(json_obj(t, "locales"), locale)) == NULL) {
			snprintf(msg, msglen, "template %s has no locale %.40s", tid,
			    locale ? locale : "(none)");
			json_object_put(t);
			return NULL;
		}
		title = json_str(loc, "title");
		body = json_str(loc, "body");
	} else if (title == NULL && body == NULL && data == NULL) {
		return snprintf(msg, msglen, "payload needs title, body, data or template_id"), NULL;
	}
	out = json_object_new_object();
	/* the notification as a whole must fit MAX_PAYLOAD: so must each part */
	rt = title ? template_render(title, data, MAX_PAYLOAD, &over) : NULL;
	rb = body && !over ? template_render(body, data, MAX_PAYLOAD, &over) : NULL;
	if (over || (title != NULL && rt == NULL) || (body != NULL && rb == NULL)) {
		free(rt);
		free(rb);
		json_object_put(t);
		json_object_put(out);
		return *status = over ? 413 : 500, snprintf(msg, msglen, over ?
		    "the notification is over %d bytes" : "out of memory", MAX_PAYLOAD), NULL;
	}
	if (rt != NULL)
		json_object_object_add(out, "title", json_object_new_string(rt));
	if (rb != NULL)
		json_object_object_add(out, "body", json_object_new_string(rb));
	if (data != NULL)
		json_object_object_add(out, "data", json_object_get(data));
	free(rt);
	free(rb);
	json_object_put(t);
	if (strlen(json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN)) > MAX_PAYLOAD) {
		json_object_put(out);
		return *status = 413, snprintf(msg, msglen, "the notification is over %d bytes",
		    MAX_PAYLOAD), NULL;
	}
	return out;
}

/* An optional non-negative integer member; -1 when present but not one. */
static int
opt_ms(json_object *o, const char *key, const char *alias, int64_t *out)
{
	json_object *v = body_member(o, key, alias);

	*out = 0;
	if (v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
		return -1;
	*out = json_object_get_int64(v);
	return 0;
}

/*
 * Store a publish with its idempotency key.  A sync publish is expanded
 * in the same transaction, its deliveries claimed with claim, so that no
 * worker takes it from the request.  Returns 0 when it is new, else the
 * status answered (the first answer of a repeated key, 409, 503).
 */
static int
publish_store(struct req *r, struct resp *p, struct push_publish *pub, const char *key,
    const unsigned char hash[32], json_object *answer, const char *claim,
    long long *planned)
{
	struct db *d = r->w->db;
	struct idem_row ir;
	const char *text = json_object_to_json_string_ext(answer, JSON_C_TO_STRING_PLAIN);
	int rc;

	if ((rc = db_begin(d)) != 0)
		return push_store_error(p, rc);
	if (key != NULL) {
		rc = db_idem_claim(d, r->app.id, key, hash, r->app.idempotency_ttl_s, pub->now, &ir);
		if (rc == DB_CONFLICT) {
			db_rollback(d);
			rc = idem_replay(p, ir.hash, hash, ir.status, ir.response, 0);
			free(ir.response);
			return rc;
		}
		if (rc != 0)
			goto fail;
	}
	if ((rc = db_push_publish_add(d, r->app.id, pub)) != 0 ||
	    (claim != NULL && (rc = db_pushwork_expand_claimed(d, r->app.id, pub->publish_id,
	    pub->recipients, pub->now, (int64_t)r->cfg->push_lease_s * 1000, claim,
	    planned)) != 0) ||
	    (key != NULL && (rc = db_idem_store(d, r->app.id, key, 202, text)) != 0) ||
	    (rc = db_commit(d)) != 0)
		goto fail;
	return 0;
fail:
	db_rollback(d);
	return push_store_error(p, rc);
}

static const char *const outcomes[] = { [PUSH_SENT] = "sent", [PUSH_RETRY] = "retrying",
    [PUSH_FAILED] = "failed", [PUSH_GONE] = "failed", [PUSH_EXPIRED] = "expired" };

/*
 * Deliver a stored sync publish within the request: send the deliveries
 * publish_store claimed for it, as sockudo-pushd would, each provider
 * request bounded by push_timeout_ms.  What is not settled (a retry) is
 * left to sockudo-pushd.  Answers 200 with the status and a result per
 * device; if anything fails now, the publish is stored all the same:
 * 202, and sockudo-pushd delivers it when the claim's lease ends.
 */
static int
publish_sync(struct req *r, struct resp *p, const struct push_publish *pub,
    const char *claim, long long planned, json_object *answer)
{
	struct push_batch b = { 0 };
	struct db *d = r->w->db;
	struct pushd *pd = NULL;
	json_object *out = NULL, *results, *o;
	size_t i;
	int rc = 0;

	snprintf(b.claim, sizeof(b.claim), "%s", claim);
	b.max = planned < r->cfg->push_batch ? (size_t)planned : (size_t)r->cfg->push_batch;
	if (b.max > 0 && (b.items = calloc(b.max, sizeof(*b.items))) == NULL)
		rc = DB_ERROR;
	if (rc == 0 && b.max > 0 && (rc = db_pushwork_claimed(d, &b)) == 0 && b.n > 0) {
		if ((pd = pushd_new(r->cfg, d, 0)) == NULL)
			rc = DB_ERROR;
		else {
			pushd_send(pd, &b);
			rc = db_pushwork_record(d, &b);
		}
	}
	if (rc >= 0)
		rc = db_push_publish_status(d, r->app.id, pub->publish_id, &out);
	if (rc == 0) {
		results = json_object_new_array();
		for (i = 0; i < b.n; i++) {
			o = json_object_new_object();
			json_object_object_add(o, "device_id",
			    json_object_new_string(b.items[i].device_id));
			if (b.items[i].platform != NULL)
				json_object_object_add(o, "platform",
				    json_object_new_string(b.items[i].platform));
			json_object_object_add(o, "status",
			    json_object_new_string(outcomes[b.items[i].outcome]));
			if (b.items[i].outcome != PUSH_SENT && b.items[i].error[0])
				json_object_object_add(o, "error",
				    json_object_new_string(b.items[i].error));
			json_object_array_add(results, o);
		}
		json_object_object_add(out, "results", results);
	}
	pushd_free(pd);
	push_batch_clear(&b);
	free(b.items);
	if (rc == 0 && planned > r->cfg->push_batch)	/* the rest is sockudo-pushd's */
		rc = db_pushwork_release(d, claim, now_ms());
	if (rc != 0) {
		log_warn("push: sync publish %s left to sockudo-pushd", pub->publish_id);
		json_object_object_add(answer, "status", json_object_new_string("dispatching"));
		return resp_json(p, 202, json_object_get(answer));
	}
	return resp_json(p, 200, out);
}

/*
 * POST /push/publish {recipients, payload, sync?, idempotency_key?,
 * deliver_at_ms?, expires_at_ms?} -> 202 {"publish_id", "status"}: one
 * row, whatever the number of devices; sockudo-pushd expands and
 * delivers it.  With sync: true, 200 after delivering it here
 * (publish_sync).  Statuses: 200, 202, 400, 403, 409, 413, 503.
 */
int
h_push_publish(struct req *r, struct resp *p)
{
	struct push_publish pub = { .now = now_ms() };
	json_object *recips = NULL, *payload = NULL, *answer, *v;
	unsigned char hash[32];
	const char *key;
	char msg[256], claim[32];
	long long planned = 0;
	int status, rc, sync = 0;

	if ((rc = push_check(r, p)) != 0 || (rc = idem_key_of(r, p, &key)) != 0)
		return rc;
	if (r->json == NULL)
		return resp_error(p, 400, "invalid_input", "a JSON body is required");
	if ((v = body_member(r->json, "sync", NULL)) != NULL) {
		if (!json_object_is_type(v, json_type_boolean))
			return resp_error(p, 400, "invalid_input", "sync must be true or false");
		sync = json_object_get_boolean(v);
	}
	if (opt_ms(r->json, "deliver_at_ms", "deliverAtMs", &pub.deliver_at_ms) != 0 ||
	    opt_ms(r->json, "expires_at_ms", "expiresAtMs", &pub.expires_at_ms) != 0)
		return resp_error(p, 400, "invalid_input",
		    "deliver_at_ms and expires_at_ms are Unix milliseconds");
	if (pub.deliver_at_ms < pub.now)
		pub.deliver_at_ms = pub.now;
	if (pub.expires_at_ms > 0 && pub.expires_at_ms <= pub.deliver_at_ms)
		return resp_error(p, 400, "invalid_input",
		    "expires_at_ms must be after the delivery time");
	if ((recips = recipients_parse(r, body_member(r->json, "recipients", NULL), msg,
	    sizeof(msg), &status)) == NULL)
		return resp_error(p, status, status == 413 ? "limit_exceeded" : "invalid_input",
		    "%s", msg);
	if ((payload = payload_render(r, body_member(r->json, "payload", NULL), msg, sizeof(msg),
	    &status)) == NULL) {
		json_object_put(recips);
		if (status == 503)
			return resp_unavailable(p, PUSH_STORE);
		return resp_error(p, status, status == 413 ? "payload_too_large" :
		    status == 400 ? "invalid_input" : "internal", "%s", msg);
	}
	message_serial_new(pub.publish_id, pub.now);
	pub.recipients = json_object_to_json_string_ext(recips, JSON_C_TO_STRING_PLAIN);
	pub.payload = json_object_to_json_string_ext(payload, JSON_C_TO_STRING_PLAIN);
	if (key != NULL)
		idem_hash(r->json, "push/publish", hash);
	answer = json_object_new_object();
	json_object_object_add(answer, "publish_id", json_object_new_string(pub.publish_id));
	json_object_object_add(answer, "status", json_object_new_string(
	    pub.deliver_at_ms > pub.now ? "scheduled" : "queued"));
	sync = sync && pub.deliver_at_ms <= pub.now;
	if (sync)
		message_serial_new(claim, pub.now);
	if ((rc = publish_store(r, p, &pub, key, hash, answer, sync ? claim : NULL,
	    &planned)) == 0)
		rc = sync ? publish_sync(r, p, &pub, claim, planned, answer) :
		    resp_json(p, 202, json_object_get(answer));
	json_object_put(answer);
	json_object_put(recips);
	json_object_put(payload);
	return rc;
}

/* GET /push/publish/{id}/status.  Statuses: 200, 403, 404, 503. */
int
h_push_status(struct req *r, struct resp *p)
{
	json_object *out;
	int rc;

	if ((rc = push_check(r, p)) != 0)
		return rc;
	rc = db_push_publish_status(r->w->db, r->app.id, r->args[1], &out);
	if (rc == DB_NOTFOUND)
		return resp_error(p, 404, "not_found", "no publish %s", r->args[1]);
	if (rc != 0)
		return push_store_error(p, rc);
	return resp_json(p, 200, out);
}

/* POST /push/publish/{id}/cancel -> {"publish_id", "state"}.  Statuses: 200, 403, 404, 503. */
int
h_push_cancel(struct req *r, struct resp *p)
{
	json_object *out;
	char state[32];
	int rc;

	if ((rc = push_check(r, p)) != 0)
		return rc;
	rc = db_push_publish_cancel(r->w->db, r->app.id, r->args[1], state);
	if (rc == DB_NOTFOUND)
		return resp_error(p, 404, "not_found", "no publish %s", r->args[1]);
	if (rc != 0)
		return push_store_error(p, rc);
	out = json_object_new_object();
	json_object_object_add(out, "publish_id", json_object_new_string(r->args[1]));
	json_object_object_add(out, "state", json_object_new_string(state));
	return resp_json(p, 200, out);
}

/*
 * POST /push/callbacks/{apns|fcm|web} {"events": [{"token", "type":
 * "invalid_token"|"delivered", "reason"?}]}: a provider's receipts and
 * token invalidations, relayed by the app.  An invalid token fails its
 * devices, which are not sent to again.  -> {"devices_failed": n}.
 */
int
h_push_callback(struct req *r, struct resp *p)
{
	const char *provider = r->args[1], *token, *type, *reason;
	json_object *events, *out;
	long long n, total = 0;
	size_t i;
	int rc;

	if ((rc = push_check(r, p)) != 0)
		return rc;
	if (strcmp(provider, "apns") != 0 && strcmp(provider, "fcm") != 0 &&
	    strcmp(provider, "web") != 0)
		return resp_error(p, 404, "not_found", "providers are apns, fcm and web");
	if (r->json == NULL || !json_object_object_get_ex(r->json, "events", &events) ||
	    !json_object_is_type(events, json_type_array) ||
	    json_object_array_length(events) > 1000)
		return resp_error(p, 400, "invalid_input",
		    "the body is {\"events\": [{token, type, reason?}]}, at most 1000");
	for (i = 0; i < json_object_array_length(events); i++) {
		json_object *e = json_object_array_get_idx(events, i);
		token = body_string(body_member(e, "token", NULL));
		type = body_string(body_member(e, "type", NULL));
		if (token == NULL || *token == '\0' || type == NULL ||
		    (strcmp(type, "invalid_token") != 0 && strcmp(type, "delivered") != 0))
			return resp_error(p, 400, "invalid_input", "events[%zu]: token and type "
			    "(invalid_token or delivered) are required", i);
	}
	for (i = 0; i < json_object_array_length(events); i++) {
		json_object *e = json_object_array_get_idx(events, i);
		if (strcmp(body_string(body_member(e, "type", NULL)), "invalid_token") != 0)
			continue;
		token = body_string(body_member(e, "token", NULL));
		reason = body_string(body_member(e, "reason", NULL));
		if ((rc = db_push_token_gone(r->w->db, r->app.id, provider, token,
		    reason ? reason : "invalid token (callback)", &n)) != 0)
			return push_store_error(p, rc);
		total += n;
	}
	out = json_object_new_object();
	json_object_object_add(out, "devices_failed", json_object_new_int64(total));
	return resp_json(p, 200, out);
}
