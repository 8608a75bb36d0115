/* handlers/push.c: the push API (SPEC 8): devices, subscriptions, credentials, templates. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "app/push.h"
#include "db/db.h"

#define MAX_DEVICE_ID 128
#define MAX_TOKEN 4096
#define MAX_METADATA 4096	/* bytes of a device's metadata JSON (Sockudo's limit) */

int
push_check(struct req *r, struct resp *p)
{
	if (!(r->app.flags & APP_F_PUSH))
		return resp_error(p, 403, "feature_disabled", "push is disabled for this app");
	return 0;
}

/* store_error() for the push routes. */
int
push_store_error(struct resp *p, int rc)
{
	return store_error(p, rc, PUSH_STORE, "the push request could not be carried out");
}

/* An identifier: 1 to max printable bytes, no spaces. */
static int
valid_id(const char *s, size_t max)
{
	size_t i, n = s ? strlen(s) : 0;

	if (n == 0 || n > max)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

/* A base64url string member that decodes to exactly n bytes. */
static int
b64url_bytes(json_object *o, const char *key, size_t n)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	const char *s = json_str(o, key);
	int ok;

	ok = s != NULL && strlen(s) <= 4 * n && b64url_decode(s, &buf, &len) == 0 && len == n;
	free(buf);
	return ok;
}

/*
 * A browser's push subscription {endpoint, keys: {p256dh, auth}} (an
 * object or its JSON text), as its canonical JSON text (malloc'd), or
 * NULL with *why.  The endpoint is named by the app's owner: it must
 * pass push_endpoint_check() (https, no userinfo, not a private address
 * unless the operator's webpush_allow names it).
 */
char *
push_web_subscription(json_object *v, const char *allow, const char **why)
{
	json_object *o = v, *keys, *out, *k;
	const char *endpoint, *text;
	char *canonical = NULL;
	int allowed;

	*why = "a web provider_token is the subscription {endpoint, keys: {p256dh, auth}}";
	if (json_object_is_type(v, json_type_string) &&
	    (text = body_string(v)) != NULL && (o = json_parse_object(text)) == NULL)
		return NULL;
	if (!json_object_is_type(o, json_type_object))
		goto out;
	endpoint = json_str(o, "endpoint");
	if (endpoint == NULL || (keys = json_obj(o, "keys")) == NULL)
		goto out;
	if ((*why = push_endpoint_check(endpoint, allow, &allowed)) != NULL)
		goto out;
	if (!b64url_bytes(keys, "p256dh", 65) || !b64url_bytes(keys, "auth", 16)) {
		*why = "keys.p256dh and keys.auth must be base64url of 65 and 16 bytes";
		goto out;
	}
	/* the ECDH of every delivery takes it: off the curve, it is refused now */
	if (!webpush_p256dh_valid(json_str(keys, "p256dh"))) {
		*why = "keys.p256dh must be an uncompressed P-256 point on the curve";
		goto out;
	}
	out = json_object_new_object();
	k = json_object_new_object();
	json_object_object_add(out, "endpoint", json_object_new_string(endpoint));
	json_object_object_add(k, "p256dh", json_object_new_string(json_str(keys, "p256dh")));
	json_object_object_add(k, "auth", json_object_new_string(json_str(keys, "auth")));
	json_object_object_add(out, "keys", k);
	canonical = strdup(json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN));
	json_object_put(out);
	*why = canonical != NULL ? NULL : "out of memory";
out:
	if (o != v)
		json_object_put(o);
	return canonical;
}

/*
 * Provider tokens are never shown whole: the last six characters of a
 * device token, the origin of a web push endpoint.  A row whose token is
 * not what it should be shows none of it.
 */
static void
redact(json_object *dev)
{
	const char *platform = json_str(dev, "platform"), *s = json_str(dev, "provider_token");
	const char *e, *host, *slash;
	json_object *sub;
	char buf[160];
	size_t n;

	if (s == NULL) {
		json_object_object_del(dev, "provider_token");
		return;
	}
	if (platform != NULL && strcmp(platform, "web") == 0) {
		sub = json_parse_object(s);
		if ((e = json_str(sub, "endpoint")) == NULL)
			e = "";
		host = strstr(e, "//") != NULL ? strstr(e, "//") + 2 : e;
		slash = strchr(host, '/');
		n = slash != NULL ? (size_t)(slash - e) : strlen(e);
		snprintf(buf, sizeof(buf), "%.*s/...", (int)(n < 120 ? n : 120), e);
		json_object_put(sub);
	} else {
		n = strlen(s);
		snprintf(buf, sizeof(buf), "...%s", n > 6 ? s + n - 6 : "");
	}
	json_object_object_add(dev, "provider_token", json_object_new_string(buf));
}

/*
 * POST /push/deviceRegistrations and PUT /push/deviceRegistrations/{id}:
 * {device_id, client_id?, platform, provider_token, metadata?} -> 201
 * (new) or 200 (updated) with the device.  Statuses: 200, 201, 400, 403,
 * 503.
 */
static int
device_put(struct req *r, struct resp *p, const char *path_id)
{
	struct push_device dev = { 0 };
	json_object *o = r->json, *v, *out;
	char *token = NULL, *meta = NULL;
	const char *why;
	int created, rc;

	if (o == NULL)
		return resp_error(p, 400, "invalid_input", "a JSON body is required");
	dev.device_id = body_string(body_member(o, "device_id", "deviceId"));
	if (path_id != NULL && dev.device_id != NULL && strcmp(path_id, dev.device_id) != 0)
		return resp_error(p, 400, "invalid_input", "device_id differs from the path's");
	if (path_id != NULL)
		dev.device_id = path_id;
	if (!valid_id(dev.device_id, MAX_DEVICE_ID))
		return resp_error(p, 400, "invalid_input",
		    "device_id must be 1 to %d printable bytes", MAX_DEVICE_ID);
	if (body_opt_string(o, "client_id", "clientId", MAX_CLIENT_ID, &dev.client_id) != 0)
		return resp_error(p, 400, "invalid_input",
		    "client_id must be a string of 1 to %d bytes", MAX_CLIENT_ID);
	dev.platform = body_string(body_member(o, "platform", NULL));
	if (dev.platform == NULL || (strcmp(dev.platform, "apns") != 0 &&
	    strcmp(dev.platform, "fcm") != 0 && strcmp(dev.platform, "web") != 0))
		return resp_error(p, 400, "invalid_input", "platform must be apns, fcm or web");
	v = body_member(o, "provider_token", "providerToken");
	if (v == NULL)
		return resp_error(p, 400, "invalid_input", "provider_token is required");
	if (strcmp(dev.platform, "web") == 0) {
		if ((dev.token = token = push_web_subscription(v, r->cfg->webpush_allow, &why)) == NULL)
			return resp_error(p, 400, "invalid_input", "provider_token: %s", why);
	} else if (!valid_id(dev.token = body_string(v), MAX_TOKEN))
		return resp_error(p, 400, "invalid_input",
		    "provider_token must be 1 to %d printable bytes", MAX_TOKEN);
	if ((v = body_member(o, "metadata", NULL)) != NULL) {
		if (!json_object_is_type(v, json_type_object)) {
			free(token);
			return resp_error(p, 400, "invalid_input", "metadata must be an object");
		}
		dev.metadata = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
		if (strlen(dev.metadata) > MAX_METADATA) {
			free(token);
			return resp_error(p, 413, "payload_too_large", "metadata is over %d bytes"
			    " of JSON", MAX_METADATA);
		}
		dev.metadata = meta = strdup(dev.metadata);
	}
	rc = db_push_device_put(r->w->db, r->app.id, &dev, now_ms(), &created);
	if (rc == 0)
		rc = db_push_device_get(r->w->db, r->app.id, dev.device_id, &out);
	free(token);
	free(meta);
	if (rc != 0)
		return push_store_error(p, rc);
	redact(out);
	return resp_json(p, created ? 201 : 200, out);
}

int
h_push_device_add(struct req *r, struct resp *p)
{
	int rc;

	return (rc = push_check(r, p)) != 0 ? rc : device_put(r, p, NULL);
}

int
h_push_device_put(struct req *r, struct resp *p)
{
	int rc;

	return (rc = push_check(r, p)) != 0 ? rc : device_put(r, p, r->args[1]);
}

/* GET /push/deviceRegistrations/{id}.  Statuses: 200, 403, 404, 503. */
int
h_push_device_get(struct req *r, struct resp *p)
{
	json_object *out;
	int rc;

	if ((rc = push_check(r, p)) != 0)
		return rc;
	rc = db_push_device_get(r->w->db, r->app.id, r->args[1], &out);
	if (rc == DB_NOTFOUND)
		return resp_error(p, 404, "not_found", "no device %s", r->args[1]);
	if (rc != 0)
		return push_store_error(p, rc);
	redact(out);
	return resp_json(p, 200, out);
}

/*
 * DELETE /push/deviceRegistrations/{id}, and DELETE
 * /push/deviceRegistrations?client_id= (every device of a client): 200
 * {"deleted": n}, also when there was nothing to delete.
 */
static int
device_delete(struct req *r, struct resp *p, const char *device_id, const char *client_id)
{
	json_object *out;
	long long n = 0;
	int rc;

	if ((rc = db_push_device_delete(r->w->db, r->app.id, device_id, client_id, &n)) != 0)
		return push_store_error(p, rc);
	out = json_object_new_object();
	json_object_object_add(out, "deleted", json_object_new_int64(n));
	return resp_json(p, 200, out);
}

int
h_push_device_delete(struct req *r, struct resp *p)
{
	int rc;

	return (rc = push_check(r, p)) != 0 ? rc : device_delete(r, p, r->args[1], NULL);
}

/*
 * The value of a query filter, also under its camelCase alias (query
 * keys arrive lower-cased, as SPEC 1 signs them: "clientId" is "clientid").
 */
static const char *
filter(struct req *r, const char *key, const char *alias)
{
	const char *v = req_param(r, key);

	return v != NULL ? v : alias ? req_param(r, alias) : NULL;
}

int
h_push_device_delete_client(struct req *r, struct resp *p)
{
	const char *client = filter(r, "client_id", "clientid");
	int rc;

	if ((rc = push_check(r, p)) != 0)
		return rc;
	if (!valid_id(client, MAX_CLIENT_ID))
		return resp_error(p, 400, "invalid_input", "client_id is required");
	return device_delete(r, p, NULL, client);
}

/* A paged listing: limit, cursor in scope (numeric positions). */
static int
list_page(struct req *r, struct resp *p, const char *scope, struct push_page *pg,
    int (*fn)(struct db *, const char *, struct push_page *), int redact_items)
{
	const char *cursor = req_param(r, "cursor");
	size_t i;
	int rc;

	if ((rc = paging_params(r, p, 0, NULL, &pg->limit)) != 0)
		return rc;
	if (cursor != NULL && cursor_parse(r, scope, cursor, &pg->after) != 0)
		return resp_error(p, 400, "invalid_input",
		    "cursor is not one this server issued for this listing");
	pg->items = json_object_new_array();
	if ((rc = fn(r->w->db, r->app.id, pg)) != 0) {
		json_object_put(pg->items);
		return push_store_error(p, rc);
	}
	for (i = 0; redact_items && i < json_object_array_length(pg->items); i++)
		redact(json_object_array_get_idx(pg->items, i));
	return page_answer(r, p, scope, pg->items, pg->has_more, pg->last);
}

/* GET /push/deviceRegistrations?client_id=&platform=&limit=&cursor= */
int
h_push_device_list(struct req *r, struct resp *p)
{
	struct push_page pg = { .a = filter(r, "client_id", "clientid"),
	    .b = filter(r, "platform", NULL) };
	char scope[512];
	int rc;

	if ((rc = push_check(r, p)) != 0)
		return rc;
	snprintf(scope, sizeof(scope), "devices\n%s\n%s", pg.a ? pg.a : "", pg.b ? pg.b : "");
	return list_page(r, p, scope, &pg, db_push_device_list, 1);
}

/*
 * POST /push/channelSubscriptions {channel, device_id | client_id} -> 201
 * with the subscription.  Statuses: 201, 400, 403, 404 (unknown device), 503.
 */
int
h_push_sub_add(struct req *r, struct resp *p)
{
	const char *ch, *dev = NULL, *client = NULL;
	char err[160];
	json_object *out;
	int rc;

	if ((rc = push_check(r, p)) != 0)
		return rc;
	if (r->json == NULL)
		return resp_error(p, 400, "invalid_input", "a JSON body is required");
	ch = body_string(body_member(r->json, "channel", NULL));
	if (ch == NULL || !valid_channel_name(ch, err, sizeof(err)))
		return resp_error(p, 400, "invalid_input", "channel: %s",
		    ch ? err : "required, a string");
	if (body_opt_string(r->json, "device_id", "deviceId", MAX_DEVICE_ID, &dev) != 0 ||
	    body_opt_string(r->json, "client_id", "clientId", MAX_CLIENT_ID, &client) != 0 ||
	    (dev == NULL) == (client == NULL))
		return resp_error(p, 400, "invalid_input",
		    "give exactly one of device_id and client_id, a non-empty string");
	rc = db_push_sub_add(r->w->db, r->app.id, ch, dev, client, now_ms());
	if (rc == DB_NOTFOUND)
		return resp_error(p, 404, "not_found", "no device %s", dev);
	if (rc != 0)
		return push_store_error(p, rc);
	out = json_object_new_object();
	json_object_object_add(out, "channel", json_object_new_string(ch));
	json_object_object_add(out, dev ? "device_id" : "client_id",
	    json_object_new_string(dev ? dev : client));
	return resp_json(p, 201, out);
}

/* GET /push/channelSubscriptions?channel=&device_id=&client_id=&limit=&cursor= */
int
h_push_sub_list(struct req *r, struct resp *p)
{
	struct push_page pg = { .a = filter(r, "channel", NULL),
	    .b = filter(r, "device_id", "deviceid"), .c = filter(r, "client_id", "clientid") };
	char scope[640];
	int rc;

	if ((rc = push_check(r, p)) != 0)
		return rc;
	snprintf(scope, sizeof(scope), "subscriptions\n%s\n%s\n%s", pg.a ? pg.a : "",
	    pg.b ? pg.b : "", pg.c ? pg.c : "");
	return list_page(r, p, scope, &pg, db_push_sub_list, 0);
}

/* DELETE /push/channelSubscriptions?channel=&device_id=&client_id= -> {"deleted": n} */
int
h_push_sub_delete(struct req *r, struct resp *p)
{
	struct push_page pg = { .a = filter(r, "channel", NULL),
	    .b = filter(r, "device_id", "deviceid"), .c = filter(r, "client_id", "clientid") };
	json_object *out;
	long long n = 0;
	int rc;

	if ((rc = push_check(r, p)) != 0)
		return rc;
	if (pg.a == NULL && pg.b == NULL && pg.c == NULL)
		return resp_error(p, 400, "invalid_input",
		    "give channel, device_id or client_id to say what to delete");
	if ((rc = db_push_sub_delete(r->w->db, r->app.id, &pg, &n)) != 0)
		return push_store_error(p, rc);
	out = json_object_new_object();
	json_object_object_add(out, "deleted", json_object_new_int64(n));
	return resp_json(p, 200, out);
}

/* A listing by name: limit and a text cursor. */
static int
name_page(struct req *r, struct resp *p, const char *scope,
    int (*fn)(struct db *, const char *, struct push_page *))
{
	struct push_page pg = { 0 };
	const char *cursor = req_param(r, "cursor");
	char *after = NULL, *last = NULL;
	const char *name;
	json_object *it;
	size_t n;
	int rc;

	if ((rc = push_check(r, p)) != 0 || (rc = paging_params(r, p, 0, NULL, &pg.limit)) != 0)
		return rc;
	if (cursor != NULL && cursor_parse_text(r, scope, cursor, &after) != 0)
		return resp_error(p, 400, "invalid_input",
		    "cursor is not one this server issued for this listing");
	pg.a = after;
	pg.items = json_object_new_array();
	rc = fn(r->w->db, r->app.id, &pg);
	free(after);
	if (rc != 0) {
		json_object_put(pg.items);
		return push_store_error(p, rc);
	}
	if ((n = json_object_array_length(pg.items)) > 0) {
		/* a channel name, or a template {template_id, ...} */
		it = json_object_array_get_idx(pg.items, n - 1);
		name = json_object_is_type(it, json_type_string) ? json_object_get_string(it) :
		    json_str(it, "template_id");
		if (name != NULL && (last = strdup(name)) == NULL) {
			json_object_put(pg.items);
			return push_store_error(p, DB_ERROR);
		}
	}
	rc = page_answer_text(r, p, scope, pg.items, pg.has_more, last);
	free(last);
	return rc;
}

/* GET /push/channels: channels with subscribers, by name. */
int
h_push_channels(struct req *r, struct resp *p)
{
	return name_page(r, p, "push-channels", db_push_channels);
}

/* GET /push/templates */
int
h_push_template_list(struct req *r, struct resp *p)
{
	return name_page(r, p, "templates", db_push_template_list);
}
