/* db/push.c: push notification records (SPEC 8): devices, subscriptions, credentials, templates, publishes. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "db.h"

/*
 * A row as a JSON object, column i under cols[i].key: 's' a string, 'i'
 * an integer, 'j' JSON text (kept as text if it does not parse).  SQL
 * NULLs are left out.
 */
json_object *
db_row_json(const struct db_row *row, const struct db_col *cols, size_t n)
{
	json_object *o = json_object_new_object(), *v;
	size_t i;

	for (i = 0; i < n && i < row->ncol; i++) {
		if (row->col[i] == NULL || cols[i].key == NULL)
			continue;
		switch (cols[i].type) {
		case 'i':
			v = json_object_new_int64(strtoll(row->col[i], NULL, 10));
			break;
		case 'j':
			if ((v = json_tokener_parse(row->col[i])) != NULL)
				break;
			/* FALLTHROUGH */
		default:
			v = json_object_new_string_len(row->col[i], (int)row->len[i]);
		}
		json_object_object_add(o, cols[i].key, v);
	}
	return o;
}

/* ---- devices ---------------------------------------------------------- */

/*
 * Register or update a device (a failed one becomes active again).
 * *created is 1 when it is new.
 */
int
db_push_device_put(struct db *d, const char *app_id, const struct push_device *dev,
    int64_t now, int *created)
{
	static const char sql[] = "INSERT INTO push_devices (app_id, device_id, client_id,"
	    " platform, token, metadata, created_at_ms, updated_at_ms)"
	    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE"
	    " client_id = VALUES(client_id), platform = VALUES(platform), token = VALUES(token),"
	    " metadata = VALUES(metadata), state = 'active', failed_reason = NULL,"
	    " updated_at_ms = VALUES(updated_at_ms)";
	struct db_val v[] = { DB_STR(app_id), DB_STR(dev->device_id),
	    dev->client_id ? DB_STR(dev->client_id) : DB_NUL, DB_STR(dev->platform),
	    DB_STR(dev->token), dev->metadata ? DB_STR(dev->metadata) : DB_NUL,
	    DB_I64(now), DB_I64(now) };
	unsigned long long n = 0;
	int rc;

	if ((rc = db_exec(d, sql, v, 8, &n)) != 0)
		return rc;
	*created = n == 1;
	return 0;
}

/* What a device looks like to the API; the token is redacted by the handler. */
#define DEVICE_COLS "device_id, client_id, platform, token, metadata, state," \
	" failed_reason, created_at_ms, updated_at_ms, seq"
static const struct db_col device_cols[] = { { "device_id", 's' }, { "client_id", 's' },
    { "platform", 's' }, { "provider_token", 's' }, { "metadata", 'j' }, { "state", 's' },
    { "failed_reason", 's' }, { "created_at_ms", 'i' }, { "updated_at_ms", 'i' },
    { NULL, 'i' } };

static int
row_device(const struct db_row *row, void *arg)
{
	struct push_page *pg = arg;

	if (db_page_full(pg->items, pg->limit, row, &pg->bytes, &pg->has_more))
		return 1;
	json_object_array_add(pg->items, db_row_json(row, device_cols, 10));
	pg->last = strtoll(row->col[9], NULL, 10);
	return 0;
}

int
db_push_device_get(struct db *d, const char *app_id, const char *device_id,
    json_object **out)
{
	static const char sql[] = "SELECT " DEVICE_COLS " FROM push_devices"
	    " WHERE app_id = ? AND device_id = ?";
	struct db_val v[] = { DB_STR(app_id), DB_STR(device_id) };
	struct push_page pg = { .limit = 1 };
	int rc;

	*out = NULL;
	pg.items = json_object_new_array();
	if ((rc = db_query(d, sql, v, 2, row_device, &pg)) == 0 &&
	    json_object_array_length(pg.items) == 1)
		*out = json_object_get(json_object_array_get_idx(pg.items, 0));
	json_object_put(pg.items);
	return rc != 0 ? rc : *out != NULL ? 0 : DB_NOTFOUND;
}

/* A page of devices, filtered by client_id and/or platform (pg->a, pg->b). */
int
db_push_device_list(struct db *d, const char *app_id, struct push_page *pg)
{
#define LIST(filter) "SELECT " DEVICE_COLS " FROM push_devices WHERE app_id = ?" \
	filter " AND seq > ? ORDER BY seq LIMIT ?"
	static const char any[] = LIST("");
	static const char by_client[] = LIST(" AND client_id = ?");
	static const char by_platform[] = LIST(" AND platform = ?");
	static const char by_both[] = LIST(" AND client_id = ? AND platform = ?");
#undef LIST
	const char *sql = pg->a ? (pg->b ? by_both : by_client) : pg->b ? by_platform : any;
	struct db_val v[5];
	size_t n = 0;

	pg->has_more = 0;
	v[n++] = DB_STR(app_id);
	if (pg->a != NULL)
		v[n++] = DB_STR(pg->a);
	if (pg->b != NULL)
		v[n++] = DB_STR(pg->b);
	v[n++] = DB_I64(pg->after);
	v[n++] = DB_I64((long long)pg->limit + 1);
	return db_query(d, sql, v, n, row_device, pg);
}

/*
 * Delete one device (device_id) or every device of a client (client_id),
 * with their own channel subscriptions.  *n: devices deleted.
 */
int
db_push_device_delete(struct db *d, const char *app_id, const char *device_id,
    const char *client_id, long long *n)
{
	static const char one[] = "DELETE FROM push_devices WHERE app_id = ? AND device_id = ?";
	static const char subs[] = "DELETE FROM push_channel_subs"
	    " WHERE app_id = ? AND device_id = ?";
	static const char all[] = "DELETE FROM push_devices WHERE app_id = ? AND client_id = ?";
	static const char all_subs[] = "DELETE s FROM push_channel_subs s JOIN push_devices v"
	    " ON v.app_id = s.app_id AND v.device_id = s.device_id"
	    " WHERE s.app_id = ? AND v.client_id = ?";
	struct db_val v[] = { DB_STR(app_id), DB_STR(device_id ? device_id : client_id) };
	unsigned long long got = 0;
	int rc;

	if ((rc = db_begin(d)) != 0)
		return rc;
	if ((rc = db_exec(d, device_id ? subs : all_subs, v, 2, NULL)) == 0 &&
	    (rc = db_exec(d, device_id ? one : all, v, 2, &got)) == 0 &&
	    (rc = db_commit(d)) == 0) {
		*n = (long long)got;
		return 0;
	}
	db_rollback(d);
	return rc;
}

/* ---- channel subscriptions ------------------------------------------ */

/* Subscribe a device or a client to a channel; DB_NOTFOUND for an unknown device. */
int
db_push_sub_add(struct db *d, const char *app_id, const char *channel,
    const char *device_id, const char *client_id, int64_t now)
{
	static const char known[] = "SELECT 1 FROM push_devices WHERE app_id = ? AND device_id = ?";
	static const char ins[] = "INSERT IGNORE INTO push_channel_subs (app_id, channel,"
	    " device_id, client_id, created_at_ms) VALUES (?, ?, ?, ?, ?)";
	struct db_val k[] = { DB_STR(app_id), DB_STR(device_id) };
	struct db_val v[] = { DB_STR(app_id), DB_STR(channel), DB_STR(device_id ? device_id : ""),
	    DB_STR(client_id ? client_id : ""), DB_I64(now) };
	long long one;
	int rc;

	if (device_id != NULL && (rc = db_query_i64(d, known, k, 2, &one)) != 0)
		return rc;
	return db_exec(d, ins, v, 5, NULL);
}

static const struct db_col sub_cols[] = { { "channel", 's' }, { "device_id", 's' },
    { "client_id", 's' }, { "created_at_ms", 'i' }, { NULL, 'i' } };

static int
row_sub(const struct db_row *row, void *arg)
{
	struct push_page *pg = arg;
	json_object *o;

	if (db_page_full(pg->items, pg->limit, row, &pg->bytes, &pg->has_more))
		return 1;
	o = db_row_json(row, sub_cols, 5);
	/* '' marks the column a subscription does not use */
	if (row->len[1] == 0)
		json_object_object_del(o, "device_id");
	if (row->len[2] == 0)
		json_object_object_del(o, "client_id");
	json_object_array_add(pg->items, o);
	pg->last = strtoll(row->col[4], NULL, 10);
	return 0;
}

/*
 * The WHERE clause of a subscription query from the filters channel,
 * device_id, client_id (NULL: any); fills v after app_id.
 */
static size_t
sub_filter(const struct push_page *pg, char *where, size_t len, struct db_val *v)
{
	size_t n = 0;

	snprintf(where, len, "%s%s%s", pg->a ? " AND channel = ?" : "",
	    pg->b ? " AND device_id = ?" : "", pg->c ? " AND client_id = ?" : "");
	if (pg->a != NULL)
		v[n++] = DB_STR(pg->a);
	if (pg->b != NULL)
		v[n++] = DB_STR(pg->b);
	if (pg->c != NULL)
		v[n++] = DB_STR(pg->c);
	return n;
}

/*
 * The statements below are made from the filters present; each of the
 * eight texts is built once and kept, since the statement cache keys on
 * the text's address.
 */
static const char *
sub_sql(const char *head, const char *tail, const struct push_page *pg, char **cache)
{
	int k = (pg->a != NULL) | (pg->b != NULL) << 1 | (pg->c != NULL) << 2;
	char where[80];
	struct db_val unused[3];

	if (cache[k] == NULL) {
		sub_filter(pg, where, sizeof(where), unused);
		if (asprintf(&cache[k], "%s%s%s", head, where, tail) < 0)
			cache[k] = NULL;
	}
	return cache[k];
}

static pthread_mutex_t sub_sql_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *
sub_sql_locked(const char *head, const char *tail, const struct push_page *pg, char **cache)
{
	const char *s;

	pthread_mutex_lock(&sub_sql_lock);
	s = sub_sql(head, tail, pg, cache);
	pthread_mutex_unlock(&sub_sql_lock);
	return s;
}

/* A page of subscriptions filtered by channel (a), device_id (b), client_id (c). */
int
db_push_sub_list(struct db *d, const char *app_id, struct push_page *pg)
{
	static char *cache[8];
	const char *sql = sub_sql_locked("SELECT channel, device_id, client_id, created_at_ms,"
	    " seq FROM push_channel_subs WHERE app_id = ?", " AND seq > ? ORDER BY seq LIMIT ?",
	    pg, cache);
	struct db_val v[6];
	char where[80];
	size_t n = 1;

	if (sql == NULL)
		return DB_ERROR;
	pg->has_more = 0;
	v[0] = DB_STR(app_id);
	n += sub_filter(pg, where, sizeof(where), v + 1);
	v[n++] = DB_I64(pg->after);
	v[n++] = DB_I64((long long)pg->limit + 1);
	return db_query(d, sql, v, n, row_sub, pg);
}

/* Delete the subscriptions the filters select (at least one is given). */
int
db_push_sub_delete(struct db *d, const char *app_id, const struct push_page *pg,
    long long *deleted)
{
	static char *cache[8];
	const char *sql = sub_sql_locked("DELETE FROM push_channel_subs WHERE app_id = ?", "",
	    pg, cache);
	struct db_val v[4];
	char where[80];
	unsigned long long got = 0;
	size_t n = 1;
	int rc;

	if (sql == NULL)
		return DB_ERROR;
	v[0] = DB_STR(app_id);
	n += sub_filter(pg, where, sizeof(where), v + 1);
	if ((rc = db_exec(d, sql, v, n, &got)) == 0)
		*deleted = (long long)got;
	return rc;
}

static int
row_channel(const struct db_row *row, void *arg)
{
	struct push_page *pg = arg;

	if (db_page_full(pg->items, pg->limit, row, &pg->bytes, &pg->has_more))
		return 1;
	json_object_array_add(pg->items, json_object_new_string(row->col[0]));
	return 0;
}

/* Channels with at least one subscriber, by name, after pg->a (or from the start). */
int
db_push_channels(struct db *d, const char *app_id, struct push_page *pg)
{
	static const char sql[] = "SELECT DISTINCT channel FROM push_channel_subs"
	    " WHERE app_id = ? AND channel > ? ORDER BY channel LIMIT ?";
	struct db_val v[] = { DB_STR(app_id), DB_STR(pg->a ? pg->a : ""),
	    DB_I64((long long)pg->limit + 1) };

	pg->has_more = 0;
	return db_query(d, sql, v, 3, row_channel, pg);
}

/* ---- credentials and templates --------------------------------------- */

int
db_push_cred_put(struct db *d, const char *app_id, const char *provider, const char *sealed,
    const char *summary, int64_t now)
{
	static const char sql[] = "REPLACE INTO push_credentials (app_id, provider, sealed,"
	    " summary, updated_at_ms) VALUES (?, ?, ?, ?, ?)";
	struct db_val v[] = { DB_STR(app_id), DB_STR(provider), DB_STR(sealed), DB_STR(summary),
	    DB_I64(now) };

	return db_exec(d, sql, v, 5, NULL);
}

static int
row_cred(const struct db_row *row, void *arg)
{
	static const struct db_col cols[] = { { "provider", 's' }, { NULL, 's' },
	    { "updated_at_ms", 'i' } };
	json_object *o = db_row_json(row, cols, 3), *summary;

	if ((summary = json_parse_object(row->col[1])) != NULL) {
		json_object_object_foreach(summary, k, val)
			json_object_object_add(o, k, json_object_get(val));
		json_object_put(summary);
	}
	json_object_object_add(arg, row->col[0], o);
	return 0;
}

/* {"<provider>": {provider, updated_at_ms, ...summary}}: never a secret. */
int
db_push_cred_list(struct db *d, const char *app_id, json_object *out)
{
	static const char sql[] = "SELECT provider, summary, updated_at_ms FROM push_credentials"
	    " WHERE app_id = ? ORDER BY provider";
	struct db_val v[] = { DB_STR(app_id) };

	return db_query(d, sql, v, 1, row_cred, out);
}

static int
row_string(const struct db_row *row, void *arg)
{
	*(char **)arg = strndup(row->col[0], row->len[0]);
	return 1;
}

/* The sealed credentials of a provider (malloc'd); DB_NOTFOUND when there are none. */
int
db_push_cred_sealed(struct db *d, const char *app_id, const char *provider, char **sealed)
{
	static const char sql[] = "SELECT sealed FROM push_credentials"
	    " WHERE app_id = ? AND provider = ?";
	struct db_val v[] = { DB_STR(app_id), DB_STR(provider) };
	int rc;

	*sealed = NULL;
	if ((rc = db_query(d, sql, v, 2, row_string, sealed)) != 0)
		return rc;
	return *sealed != NULL ? 0 : DB_NOTFOUND;
}

/*
 * The credentials still sealed in the old "v1." format (bound to no app
 * or provider), to be sealed again: fn gets rows (app_id, provider,
 * sealed).
 */
int
db_push_cred_v1(struct db *d, db_row_fn fn, void *arg)
{
	static const char sql[] = "SELECT app_id, provider, sealed FROM push_credentials"
	    " WHERE sealed LIKE 'v1.%' ORDER BY app_id, provider";

	return db_query(d, sql, NULL, 0, fn, arg);
}

/*
 * Replace the sealed value of a row, if it is still old (a PUT meanwhile
 * wins).  *n: 1 when it was replaced, else 0.
 */
int
db_push_cred_reseal(struct db *d, const char *app_id, const char *provider, const char *old,
    const char *sealed, long long *n)
{
	static const char sql[] = "UPDATE push_credentials SET sealed = ?"
	    " WHERE app_id = ? AND provider = ? AND sealed = ?";
	struct db_val v[] = { DB_STR(sealed), DB_STR(app_id), DB_STR(provider), DB_STR(old) };
	unsigned long long got = 0;
	int rc;

	if ((rc = db_exec(d, sql, v, 4, &got)) == 0)
		*n = (long long)got;
	return rc;
}

/* Delete a named row of a push table: credentials or a template.  *n: rows deleted. */
int
db_push_delete(struct db *d, const char *app_id, int what, const char *name, long long *n)
{
	static const char cred[] = "DELETE FROM push_credentials WHERE app_id = ? AND provider = ?";
	static const char tmpl[] = "DELETE FROM push_templates WHERE app_id = ? AND template_id = ?";
	struct db_val v[] = { DB_STR(app_id), DB_STR(name) };
	unsigned long long got = 0;
	int rc;

	if ((rc = db_exec(d, what == PUSH_CREDENTIALS ? cred : tmpl, v, 2, &got)) == 0)
		*n = (long long)got;
	return rc;
}

int
db_push_template_put(struct db *d, const char *app_id, const char *id, const char *body,
    int64_t now, int *created)
{
	static const char sql[] = "INSERT INTO push_templates (app_id, template_id, body,"
	    " updated_at_ms) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE body = VALUES(body),"
	    " updated_at_ms = VALUES(updated_at_ms)";
	struct db_val v[] = { DB_STR(app_id), DB_STR(id), DB_STR(body), DB_I64(now) };
	unsigned long long n = 0;
	int rc;

	if ((rc = db_exec(d, sql, v, 4, &n)) == 0)
		*created = n == 1;
	return rc;
}

/* A template's JSON text (malloc'd); DB_NOTFOUND when there is none. */
int
db_push_template_get(struct db *d, const char *app_id, const char *id, char **body)
{
	static const char sql[] = "SELECT body FROM push_templates"
	    " WHERE app_id = ? AND template_id = ?";
	struct db_val v[] = { DB_STR(app_id), DB_STR(id) };
	int rc;

	*body = NULL;
	if ((rc = db_query(d, sql, v, 2, row_string, body)) != 0)
		return rc;
	return *body != NULL ? 0 : DB_NOTFOUND;
}

static int
row_template(const struct db_row *row, void *arg)
{
	struct push_page *pg = arg;
	json_object *o;

	if (db_page_full(pg->items, pg->limit, row, &pg->bytes, &pg->has_more))
		return 1;
	if ((o = json_parse_object(row->col[1])) == NULL)
		o = json_object_new_object();
	json_object_object_add(o, "template_id", json_object_new_string(row->col[0]));
	json_object_object_add(o, "updated_at_ms",
	    json_object_new_int64(strtoll(row->col[2], NULL, 10)));
	json_object_array_add(pg->items, o);
	return 0;
}

/* Templates by id, after pg->a. */
int
db_push_template_list(struct db *d, const char *app_id, struct push_page *pg)
{
	static const char sql[] = "SELECT template_id, body, updated_at_ms FROM push_templates"
	    " WHERE app_id = ? AND template_id > ? ORDER BY template_id LIMIT ?";
	struct db_val v[] = { DB_STR(app_id), DB_STR(pg->a ? pg->a : ""),
	    DB_I64((long long)pg->limit + 1) };

	pg->has_more = 0;
	return db_query(d, sql, v, 3, row_template, pg);
}

/* ---- publishes -------------------------------------------------------- */

int
db_push_publish_add(struct db *d, const char *app_id, const struct push_publish *p)
{
	static const char sql[] = "INSERT INTO push_publishes (app_id, publish_id, state,"
	    " recipients, payload, deliver_at_ms, expires_at_ms, created_at_ms, to_expand)"
	    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)";
	struct db_val v[] = { DB_STR(app_id), DB_STR(p->publish_id),
	    DB_STR(p->deliver_at_ms > p->now ? "scheduled" : "queued"), DB_STR(p->recipients),
	    DB_STR(p->payload), DB_I64(p->deliver_at_ms), p->expires_at_ms > 0 ?
	    DB_I64(p->expires_at_ms) : DB_NUL, DB_I64(p->now) };

	return db_exec(d, sql, v, 8, NULL);
}

static int
row_status(const struct db_row *row, void *arg)
{
	static const struct db_col cols[] = { { "publish_id", 's' }, { "state", 's' },
	    { "planned", 'i' }, { "sent", 'i' }, { "failed", 'i' }, { "retrying", 'i' },
	    { "deliver_at_ms", 'i' }, { "expires_at_ms", 'i' }, { "created_at_ms", 'i' } };
	json_object **out = arg, *o = db_row_json(row, cols, 9), *c = json_object_new_object();
	static const char *const counters[] = { "planned", "sent", "failed", "retrying" };
	json_object *v;
	size_t i;

	for (i = 0; i < 4; i++) {
		json_object_object_get_ex(o, counters[i], &v);
		json_object_object_add(c, counters[i], json_object_get(v));
		json_object_object_del(o, counters[i]);
	}
	json_object_object_add(o, "counters", c);
	*out = o;
	return 1;
}

static int
row_error(const struct db_row *row, void *arg)
{
	json_object *e = json_object_new_object();

	json_object_object_add(e, "device_id", json_object_new_string(row->col[0]));
	json_object_object_add(e, "error", json_object_new_string(row->col[1] ? row->col[1] : ""));
	json_object_array_add(arg, e);
	return 0;
}

/* A publish's state, counters and (up to 20) errors; DB_NOTFOUND when unknown. */
int
db_push_publish_status(struct db *d, const char *app_id, const char *publish_id,
    json_object **out)
{
	static const char sql[] = "SELECT publish_id, state, planned, sent, failed, retrying,"
	    " deliver_at_ms, expires_at_ms, created_at_ms FROM push_publishes"
	    " WHERE app_id = ? AND publish_id = ?";
	static const char errs[] = "SELECT device_id, last_error FROM push_deliveries"
	    " WHERE app_id = ? AND publish_id = ? AND state IN ('failed', 'expired')"
	    " ORDER BY device_id LIMIT 20";
	struct db_val v[] = { DB_STR(app_id), DB_STR(publish_id) };
	json_object *errors;
	int rc;

	*out = NULL;
	if ((rc = db_query(d, sql, v, 2, row_status, out)) != 0 || *out == NULL)
		return rc != 0 ? rc : DB_NOTFOUND;
	errors = json_object_new_array();
	json_object_object_add(*out, "errors", errors);
	if ((rc = db_query(d, errs, v, 2, row_error, errors)) != 0) {
		json_object_put(*out);
		*out = NULL;
	}
	return rc;
}

/*
 * Cancel what a publish has not sent: its pending deliveries, and the
 * publish unless it has finished.  Deliveries a worker holds right now
 * may still go out.  DB_NOTFOUND when unknown; *state: its state after.
 */
int
db_push_publish_cancel(struct db *d, const char *app_id, const char *publish_id,
    char state[32])
{
	static const char pub[] = "UPDATE push_publishes SET state = 'cancelled', to_expand = 0"
	    " WHERE app_id = ?"
	    " AND publish_id = ? AND state IN ('queued', 'scheduled', 'dispatching')";
	static const char dels[] = "UPDATE push_deliveries SET state = 'cancelled'"
	    " WHERE app_id = ? AND publish_id = ? AND state = 'pending'";
	static const char get[] = "SELECT state FROM push_publishes"
	    " WHERE app_id = ? AND publish_id = ?";
	struct db_val v[] = { DB_STR(app_id), DB_STR(publish_id) };
	char *s = NULL;
	int rc;

	if ((rc = db_begin(d)) != 0)
		return rc;
	if ((rc = db_exec(d, pub, v, 2, NULL)) != 0 || (rc = db_exec(d, dels, v, 2, NULL)) != 0 ||
	    (rc = db_query(d, get, v, 2, row_string, &s)) != 0 || (rc = db_commit(d)) != 0) {
		db_rollback(d);
		free(s);
		return rc;
	}
	if (s == NULL)
		return DB_NOTFOUND;
	snprintf(state, 32, "%s", s);
	free(s);
	return 0;
}

/*
 * A provider said a token is gone (callbacks/{provider}): the devices of
 * this app with that token are failed and never sent to again.
 */
int
db_push_token_gone(struct db *d, const char *app_id, const char *platform, const char *token,
    const char *reason, long long *n)
{
	/* a web device's token is its subscription: the endpoint identifies it */
	static const char sql[] = "UPDATE push_devices SET state = 'failed', failed_reason = ?"
	    " WHERE app_id = ? AND platform = ? AND state = 'active' AND"
	    " IF(platform = 'web', JSON_VALUE(token, '$.endpoint'), token) = ?";
	struct db_val v[] = { DB_STR(reason), DB_STR(app_id), DB_STR(platform), DB_STR(token) };
	unsigned long long got = 0;
	int rc;

	if ((rc = db_exec(d, sql, v, 4, &got)) == 0)
		*n = (long long)got;
	return rc;
}
