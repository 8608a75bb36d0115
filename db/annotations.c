/* db/annotations.c: annotations and their incrementally kept summaries (SPEC 7). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "db.h"

static const char *const summarizers[] = { "total", "flag", "distinct", "unique", "multiple" };

/*
 * The summarizer of an annotation type "namespace:summarizer.v1": SUM_*,
 * or -1 when the type is malformed, -2 when it is well formed but names
 * a summarizer (or version) this server does not have.
 */
int
summarizer_of(const char *type)
{
	const char *colon = strchr(type, ':'), *dot, *p;
	size_t i, n;

	if (colon == NULL || colon == type || colon - type > 64)
		return -1;
	for (p = type; p < colon; p++)
		if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
		    !(*p >= '0' && *p <= '9') && *p != '_' && *p != '-')
			return -1;
	if ((dot = strrchr(colon + 1, '.')) == NULL || dot == colon + 1 || dot[1] != 'v' ||
	    dot[2] < '0' || dot[2] > '9' || strspn(dot + 2, "0123456789") != strlen(dot + 2))
		return -1;
	if (strcmp(dot, ".v1") != 0)
		return -2;
	n = (size_t)(dot - colon - 1);
	for (i = 0; i < sizeof(summarizers) / sizeof(summarizers[0]); i++)
		if (strlen(summarizers[i]) == n && strncmp(colon + 1, summarizers[i], n) == 0)
			return (int)i;
	return -2;
}

/*
 * The counter an annotation adds to, and by how much: `total` counts
 * annotations, `flag` clients, `distinct` and `unique` clients per name,
 * `multiple` the counts per name and client ('' for no client).
 */
static void
counter_of(const struct annotation *a, const char **name, const char **client, long long *by)
{
	*name = "";
	*client = "";
	*by = 1;
	switch (a->summarizer) {
	case SUM_TOTAL:
		break;
	case SUM_FLAG:
		*client = a->client_id;
		break;
	case SUM_MULTIPLE:
		*by = a->count;
		/* FALLTHROUGH */
	default:
		*name = a->name;
		*client = a->client_id ? a->client_id : "";
	}
}

static int
count_add(struct db *d, const char *app_id, const char *serial, const struct annotation *a,
    int sign)
{
	static const char add[] = "INSERT INTO annotation_counts (app_id, message_serial, type,"
	    " name, client_id, n) VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE n = n + VALUES(n)";
	static const char drop[] = "DELETE FROM annotation_counts WHERE app_id = ?"
	    " AND message_serial = ? AND type = ? AND name = ? AND client_id = ? AND n <= 0";
	const char *name, *client;
	long long by;
	int rc;

	counter_of(a, &name, &client, &by);
	struct db_val v[] = { DB_STR(app_id), DB_STR(serial), DB_STR(a->type), DB_STR(name),
	    DB_STR(client), DB_I64(sign * by) };
	if ((rc = db_exec(d, add, v, 6, NULL)) != 0 || sign > 0)
		return rc;
	return db_exec(d, drop, v, 5, NULL);
}

/*
 * A `unique` client holds one name per type: its annotations of this type
 * under other names are deleted (with their counters) before the new one.
 */
static int
unique_supersede(struct db *d, const char *app_id, const char *serial,
    const struct annotation *a)
{
	static const char gone[] = "UPDATE annotations SET deleted = 1 WHERE app_id = ?"
	    " AND message_serial = ? AND client_id = ? AND type = ? AND name <> ? AND deleted = 0";
	static const char counts[] = "DELETE FROM annotation_counts WHERE app_id = ?"
	    " AND message_serial = ? AND client_id = ? AND type = ? AND name <> ?";
	struct db_val v[] = { DB_STR(app_id), DB_STR(serial), DB_STR(a->client_id),
	    DB_STR(a->type), DB_STR(a->name) };
	int rc;

	if ((rc = db_exec(d, gone, v, 5, NULL)) != 0)
		return rc;
	return db_exec(d, counts, v, 5, NULL);
}

/*
 * Add an annotation to a message whose head the caller locked in this
 * transaction (h), and count it in the summary.  aserial receives its
 * annotation_serial.
 */
int
db_annotation_add(struct db *d, const char *app_id, const char *serial,
    const struct msg_head *h, const struct annotation *a, char aserial[32])
{
	static const char seq[] = "UPDATE messages SET annotation_seq = annotation_seq + 1"
	    " WHERE app_id = ? AND message_serial = ?";
	static const char ins[] = "INSERT INTO annotations (app_id, message_serial, seq,"
	    " annotation_serial, type, name, client_id, count, data, timestamp_ms)"
	    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
	struct db_val key[] = { DB_STR(app_id), DB_STR(serial) };
	int rc;

	message_serial_new(aserial, a->now);
	struct db_val v[] = { DB_STR(app_id), DB_STR(serial), DB_I64(h->annotation_seq + 1),
	    DB_STR(aserial), DB_STR(a->type), a->name ? DB_STR(a->name) : DB_NUL,
	    a->client_id ? DB_STR(a->client_id) : DB_NUL,
	    a->summarizer == SUM_MULTIPLE ? DB_I64(a->count) : DB_NUL,
	    a->data ? DB_STRN(a->data, a->datalen) : DB_NUL, DB_I64(a->now) };
	if (a->summarizer == SUM_UNIQUE && (rc = unique_supersede(d, app_id, serial, a)) != 0)
		return rc;
	if ((rc = db_exec(d, seq, key, 2, NULL)) != 0 || (rc = db_exec(d, ins, v, 10, NULL)) != 0)
		return rc;
	return count_add(d, app_id, serial, a, 1);
}

struct ann_row {
	struct annotation a;
	char		 *type, *name, *client_id;
	int		  deleted;
	int		  found;
};

static int
row_ann(const struct db_row *row, void *arg)
{
	struct ann_row *r = arg;

	r->type = strdup(row->col[0]);
	r->name = row->col[1] ? strdup(row->col[1]) : NULL;
	r->client_id = row->col[2] ? strdup(row->col[2]) : NULL;
	r->a.count = row->col[3] ? strtoll(row->col[3], NULL, 10) : 1;
	r->deleted = row->col[4][0] != '0';
	r->found = 1;
	return 1;
}

/*
 * Delete an annotation of a message whose head the caller locked, and
 * take it out of the summary.  Deleting it again changes nothing and is
 * not an error; DB_NOTFOUND when the message has no such annotation.
 */
int
db_annotation_delete(struct db *d, const char *app_id, const char *serial, const char *aserial)
{
	static const char get[] = "SELECT type, name, client_id, count, deleted FROM annotations"
	    " WHERE app_id = ? AND annotation_serial = ? AND message_serial = ?";
	static const char del[] = "UPDATE annotations SET deleted = 1"
	    " WHERE app_id = ? AND annotation_serial = ?";
	struct db_val v[] = { DB_STR(app_id), DB_STR(aserial), DB_STR(serial) };
	struct ann_row r = { .found = 0 };
	int rc;

	if ((rc = db_query(d, get, v, 3, row_ann, &r)) != 0)
		goto out;
	if (!r.found) {
		rc = DB_NOTFOUND;
		goto out;
	}
	if (r.deleted || r.type == NULL)
		goto out;
	r.a.type = r.type;
	r.a.name = r.name;
	r.a.client_id = r.client_id;
	r.a.summarizer = summarizer_of(r.type);
	if ((rc = db_exec(d, del, v, 2, NULL)) == 0)
		rc = count_add(d, app_id, serial, &r.a, -1);
out:
	free(r.type);
	free(r.name);
	free(r.client_id);
	return rc;
}

/* Fold one counter into its type's summary (SPEC 7 shapes). */
static int
row_summary(const struct db_row *row, void *arg)
{
	json_object *summary = arg, *t, *o, *v;
	const char *type = row->col[0], *name = row->col[1], *client = row->col[2];
	long long n = strtoll(row->col[3], NULL, 10);
	int sum = summarizer_of(type);

	if (sum < 0)
		return 0;
	if (!json_object_object_get_ex(summary, type, &t)) {
		t = json_object_new_object();
		json_object_object_add(summary, type, t);
	}
	if (sum == SUM_TOTAL) {
		json_object_object_add(t, "total", json_object_new_int64(n));
		return 0;
	}
	o = t;
	if (sum != SUM_FLAG && !json_object_object_get_ex(t, name, &o)) {
		o = json_object_new_object();
		json_object_object_add(o, "total", json_object_new_int64(0));
		if (sum == SUM_MULTIPLE) {
			json_object_object_add(o, "client_counts", json_object_new_object());
			json_object_object_add(o, "total_unidentified", json_object_new_int64(0));
		} else
			json_object_object_add(o, "client_ids", json_object_new_array());
		json_object_object_add(t, name, o);
	} else if (sum == SUM_FLAG && !json_object_object_get_ex(t, "total", NULL)) {
		json_object_object_add(t, "total", json_object_new_int64(0));
		json_object_object_add(t, "client_ids", json_object_new_array());
	}
	json_object_object_get_ex(o, "total", &v);
	if (sum != SUM_MULTIPLE) {
		json_object_set_int64(v, json_object_get_int64(v) + 1);
		json_object_object_get_ex(o, "client_ids", &v);
		json_object_array_add(v, json_object_new_string(client));
		return 0;
	}
	json_object_set_int64(v, json_object_get_int64(v) + n);
	if (client[0] == '\0') {
		json_object_object_get_ex(o, "total_unidentified", &v);
		json_object_set_int64(v, json_object_get_int64(v) + n);
	} else {
		json_object_object_get_ex(o, "client_counts", &v);
		json_object_object_add(v, client, json_object_new_int64(n));
	}
	return 0;
}

/*
 * A message's summary, {"<type>": {...}} added to `summary`, read from
 * the counters alone: its cost follows the names and clients it holds,
 * not the number of annotations.
 */
int
db_annotation_summary(struct db *d, const char *app_id, const char *serial,
    json_object *summary)
{
	static const char sql[] = "SELECT type, name, client_id, n FROM annotation_counts"
	    " WHERE app_id = ? AND message_serial = ?";
	struct db_val v[] = { DB_STR(app_id), DB_STR(serial) };

	return db_query(d, sql, v, 2, row_summary, summary);
}

static int
row_list(const struct db_row *row, void *arg)
{
	struct annotation_page *pg = arg;
	json_object *o;

	if (db_page_full(pg->items, pg->limit, row, &pg->bytes, &pg->has_more))
		return 1;
	o = json_object_new_object();
	json_object_object_add(o, "annotation_serial", json_object_new_string(row->col[0]));
	json_object_object_add(o, "message_serial", json_object_new_string(pg->serial));
	json_object_object_add(o, "type", json_object_new_string(row->col[1]));
	if (row->col[2] != NULL)
		json_object_object_add(o, "name", json_object_new_string(row->col[2]));
	if (row->col[3] != NULL)
		json_object_object_add(o, "client_id", json_object_new_string(row->col[3]));
	if (row->col[4] != NULL)
		json_object_object_add(o, "count",
		    json_object_new_int64(strtoll(row->col[4], NULL, 10)));
	if (row->col[5] != NULL)
		json_object_object_add(o, "data", json_object_new_string_len(row->col[5],
		    (int)row->len[5]));
	json_object_object_add(o, "timestamp_ms",
	    json_object_new_int64(strtoll(row->col[6], NULL, 10)));
	json_object_array_add(pg->items, o);
	pg->last_seq = strtoll(row->col[7], NULL, 10);
	return 0;
}

/*
 * One page of a message's live annotations, oldest first, after
 * annotation number `after`, filtered by type and/or client_id (NULL:
 * any).  Each filter combination has its own statement, so each uses
 * its index.
 */
int
db_annotation_list(struct db *d, const char *app_id, struct annotation_page *pg)
{
#define LIST_SQL(filter) "SELECT annotation_serial, type, name, client_id, count, data," \
	" timestamp_ms, seq FROM annotations WHERE app_id = ? AND message_serial = ?" \
	filter " AND seq > ? AND deleted = 0 ORDER BY seq LIMIT ?"
	static const char any[] = LIST_SQL("");
	static const char by_type[] = LIST_SQL(" AND type = ?");
	static const char by_client[] = LIST_SQL(" AND client_id = ?");
	static const char by_both[] = LIST_SQL(" AND type = ? AND client_id = ?");
#undef LIST_SQL
	struct db_val v[6];
	const char *sql = pg->type ? (pg->client_id ? by_both : by_type) :
	    pg->client_id ? by_client : any;
	size_t n = 0;

	pg->has_more = 0;
	pg->last_seq = 0;
	v[n++] = DB_STR(app_id);
	v[n++] = DB_STR(pg->serial);
	if (pg->type != NULL)
		v[n++] = DB_STR(pg->type);
	if (pg->client_id != NULL)
		v[n++] = DB_STR(pg->client_id);
	v[n++] = DB_I64(pg->after);
	v[n++] = DB_I64((long long)pg->limit + 1);
	return db_query(d, sql, v, n, row_list, pg);
}
