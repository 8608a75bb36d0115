/* db/apps.c: the apps table (tenants, credentials, flags, limits). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "db.h"

#define APP_COLUMNS "id, app_key, secret, name, enabled, flags, max_event_data_bytes," \
	" max_channels_per_event, max_batch_size, max_publish_rps, max_read_rps," \
	" idempotency_ttl_s, history_max_age_s, history_max_messages, webhook_url"

void
app_defaults(struct app *a)
{
	memset(a, 0, sizeof(*a));
	a->enabled = 1;
	a->flags = APP_F_DEFAULT;
	a->max_event_data_bytes = 10240;
	a->max_channels_per_event = 100;
	a->max_batch_size = 10;
	a->max_publish_rps = 100000;
	a->max_read_rps = 100000;
	a->idempotency_ttl_s = 86400;
}

static void
copy(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src ? src : "");
}

static int
row_to_app(const struct db_row *row, void *arg)
{
	struct app *a = arg;
	int *ints[] = { &a->enabled, NULL, &a->max_event_data_bytes,
	    &a->max_channels_per_event, &a->max_batch_size, &a->max_publish_rps,
	    &a->max_read_rps, &a->idempotency_ttl_s, &a->history_max_age_s,
	    &a->history_max_messages };
	unsigned i;

	copy(a->id, sizeof(a->id), row->col[0]);
	copy(a->key, sizeof(a->key), row->col[1]);
	copy(a->secret, sizeof(a->secret), row->col[2]);
	copy(a->name, sizeof(a->name), row->col[3]);
	copy(a->webhook_url, sizeof(a->webhook_url), row->col[14]);
	for (i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		long v = row->col[4 + i] ? strtol(row->col[4 + i], NULL, 10) : 0;
		if (ints[i] != NULL)
			*ints[i] = (int)v;
		else
			a->flags = (unsigned)v;
	}
	return 1;
}

/*
 * Look an app up by "id" or "app_key"; DB_NOTFOUND when absent.  The
 * columns' collation pads with spaces ("k" = "k "), so what was found
 * must also be byte for byte what was asked.
 */
int
db_app_get(struct db *d, const char *column, const char *value, struct app *a)
{
	static const char by_id[] = "SELECT " APP_COLUMNS " FROM apps WHERE id = ?";
	static const char by_key[] = "SELECT " APP_COLUMNS " FROM apps WHERE app_key = ?";
	struct db_val v[] = { DB_STR(value) };
	int by_app_id = strcmp(column, "id") == 0, rc;

	a->id[0] = '\0';
	rc = db_query(d, by_app_id ? by_id : by_key, v, 1, row_to_app, a);
	if (rc != 0)
		return rc;
	if (a->id[0] == '\0' || strcmp(by_app_id ? a->id : a->key, value) != 0)
		return DB_NOTFOUND;
	return 0;
}

int
db_app_create(struct db *d, const struct app *a)
{
	static const char sql[] = "INSERT INTO apps (" APP_COLUMNS ")"
	    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
	struct db_val v[] = { DB_STR(a->id), DB_STR(a->key), DB_STR(a->secret),
	    DB_STR(a->name), DB_I64(a->enabled), DB_I64(a->flags),
	    DB_I64(a->max_event_data_bytes), DB_I64(a->max_channels_per_event),
	    DB_I64(a->max_batch_size), DB_I64(a->max_publish_rps),
	    DB_I64(a->max_read_rps), DB_I64(a->idempotency_ttl_s),
	    DB_I64(a->history_max_age_s), DB_I64(a->history_max_messages),
	    DB_STR(a->webhook_url) };

	return db_exec(d, sql, v, sizeof(v) / sizeof(v[0]), NULL);
}

int
db_app_list(struct db *d, db_row_fn fn, void *arg)
{
	static const char sql[] = "SELECT " APP_COLUMNS " FROM apps ORDER BY id";

	return db_query(d, sql, NULL, 0, fn, arg);
}

int
db_app_count(struct db *d, long long *n)
{
	static const char sql[] = "SELECT COUNT(*) FROM apps";

	return db_query_i64(d, sql, NULL, 0, n);
}

/*
 * Set one field of an app the caller knows exists.  The column name comes
 * from this fixed list, never from the caller's text, so it can be
 * spliced into the statement.
 */
int
db_app_set(struct db *d, const char *id, const char *field, const char *value)
{
	static const char *const columns[] = { "name", "secret", "enabled", "flags",
	    "max_event_data_bytes", "max_channels_per_event", "max_batch_size",
	    "max_publish_rps", "max_read_rps", "idempotency_ttl_s",
	    "history_max_age_s", "history_max_messages", "webhook_url" };
	char sql[96];
	struct db_val v[] = { DB_STR(value), DB_STR(id) };
	size_t i;

	for (i = 0; i < sizeof(columns) / sizeof(columns[0]); i++)
		if (strcmp(columns[i], field) == 0)
			break;
	if (i == sizeof(columns) / sizeof(columns[0]))
		return DB_ERROR;
	snprintf(sql, sizeof(sql), "UPDATE apps SET %s = ? WHERE id = ?", columns[i]);
	return db_exec(d, sql, v, 2, NULL);
}
