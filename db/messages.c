/* db/messages.c: versioned messages (SPEC 6). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "db.h"

static const char *const actions[] = { "create", "update", "delete", "append" };

/*
 * A version's serial.  The create version is the message itself; later
 * ones number on from it, zero-padded so that they sort as they were made.
 */
void
version_serial(char out[VERSION_SERIAL_MAX], const char *message_serial, long long seq)
{
	if (seq <= 1)
		snprintf(out, VERSION_SERIAL_MAX, "%s", message_serial);
	else
		snprintf(out, VERSION_SERIAL_MAX, "%s:%010lld", message_serial, seq);
}

int
msg_action(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
		if (s != NULL && strcmp(s, actions[i]) == 0)
			return (int)i;
	return MSG_CREATE;
}

/*
 * A message as one of its versions left it, from the VERSION_COLS columns
 * of row starting at column c: {message_serial, channel, name, data,
 * action, version: {serial, timestamp_ms, client_id?, description?}}.
 */
json_object *
msg_version_json(const char *channel, const char *message_serial, const struct db_row *row,
    unsigned c)
{
	json_object *o = json_object_new_object(), *v = json_object_new_object();
	char vs[VERSION_SERIAL_MAX];

	version_serial(vs, message_serial, strtoll(row->col[c + 3], NULL, 10));
	json_object_object_add(o, "message_serial", json_object_new_string(message_serial));
	json_object_object_add(o, "channel", json_object_new_string(channel));
	json_object_object_add(o, "name", json_object_new_string(row->col[c]));
	json_object_object_add(o, "data", json_object_new_string_len(row->col[c + 1],
	    (int)row->len[c + 1]));
	json_object_object_add(o, "action", json_object_new_string(row->col[c + 2]));
	json_object_object_add(v, "serial", json_object_new_string(vs));
	json_object_object_add(v, "timestamp_ms",
	    json_object_new_int64(strtoll(row->col[c + 4], NULL, 10)));
	if (row->col[c + 5] != NULL)
		json_object_object_add(v, "client_id", json_object_new_string(row->col[c + 5]));
	if (row->col[c + 6] != NULL)
		json_object_object_add(v, "description", json_object_new_string(row->col[c + 6]));
	json_object_object_add(o, "version", v);
	return o;
}

static int
row_head(const struct db_row *row, void *arg)
{
	struct msg_head *h = arg;

	h->action = msg_action(row->col[0]);
	h->version_seq = strtoll(row->col[1], NULL, 10);
	h->datalen = (size_t)strtoull(row->col[2], NULL, 10);
	h->annotation_seq = strtoll(row->col[3], NULL, 10);
	h->found = 1;
	return 1;
}

/*
 * The head of a channel's message: DB_NOTFOUND when the app has no such
 * message on that channel.  With lock, the row stays locked until the
 * caller's transaction ends: every change of one message (its versions
 * and its annotations) takes this lock first, so changes are serialised
 * across all workers and hosts.
 */
int
db_message_head(struct db *d, const char *app_id, const char *channel, const char *serial,
    int lock, struct msg_head *h)
{
	static const char plain[] = "SELECT action, version_seq, LENGTH(data), annotation_seq"
	    " FROM messages WHERE app_id = ? AND message_serial = ? AND channel = ?";
	static const char locked[] = "SELECT action, version_seq, LENGTH(data), annotation_seq"
	    " FROM messages WHERE app_id = ? AND message_serial = ? AND channel = ? FOR UPDATE";
	struct db_val v[] = { DB_STR(app_id), DB_STR(serial), DB_STR(channel) };
	int rc;

	memset(h, 0, sizeof(*h));
	if ((rc = db_query(d, lock ? locked : plain, v, 3, row_head, h)) != 0)
		return rc;
	return h->found ? 0 : DB_NOTFOUND;
}

struct msg_get {
	const char	*channel;
	json_object	*out;
};

/* A message from a row of MSG_ROW_COLS: its latest version, serial and publish time. */
static int
row_message(const struct db_row *row, void *arg)
{
	struct msg_get *g = arg;

	g->out = msg_version_json(g->channel, row->col[0], row, 3);
	json_object_object_add(g->out, "serial",
	    json_object_new_int64(strtoll(row->col[1], NULL, 10)));
	json_object_object_add(g->out, "published_at_ms",
	    json_object_new_int64(strtoll(row->col[2], NULL, 10)));
	return 1;
}

/* A message's latest visible state (history items have the same shape). */
int
db_message_get(struct db *d, const char *app_id, const char *channel, const char *serial,
    json_object **out)
{
	static const char sql[] = "SELECT " MSG_ROW_COLS " FROM messages"
	    " WHERE app_id = ? AND message_serial = ? AND channel = ?";
	struct db_val v[] = { DB_STR(app_id), DB_STR(serial), DB_STR(channel) };
	struct msg_get g = { .channel = channel };
	int rc;

	*out = NULL;
	if ((rc = db_query(d, sql, v, 3, row_message, &g)) != 0)
		return rc;
	*out = g.out;
	return g.out != NULL ? 0 : DB_NOTFOUND;
}

/* A message from a row of MSG_ROW_COLS, as history and GET show it. */
json_object *
msg_row_json(const char *channel, const struct db_row *row)
{
	struct msg_get g = { .channel = channel };

	row_message(row, &g);
	return g.out;
}

/*
 * Apply a change to a message whose head the caller locked in this
 * transaction (h).  Its first change copies the create version into
 * message_versions; then the messages row takes the new state and the
 * new version is recorded from it (an append records only the appended
 * text).  The version's time never goes backwards.  *seq is the new
 * version's number.
 */
int
db_message_change(struct db *d, const char *app_id, const char *serial,
    const struct msg_head *h, const struct msg_change *c, long long *seq)
{
	static const char first[] = "INSERT INTO message_versions (app_id, message_serial, seq,"
	    " action, name, data, client_id, description, timestamp_ms)"
	    " SELECT app_id, message_serial, 1, 'create', name, data, NULL, NULL, published_at_ms"
	    " FROM messages WHERE app_id = ? AND message_serial = ?";
#define SET_VERSION " action = ?, version_seq = version_seq + 1," \
	" version_ms = GREATEST(?, COALESCE(version_ms, published_at_ms))," \
	" version_client_id = ?, version_description = ? WHERE app_id = ? AND message_serial = ?"
	static const char update[] = "UPDATE messages SET name = COALESCE(?, name),"
	    " data = COALESCE(?, data)," SET_VERSION;
	static const char append[] = "UPDATE messages SET name = COALESCE(?, name),"
	    " data = CONCAT(data, ?)," SET_VERSION;
	static const char delete[] = "UPDATE messages SET name = COALESCE(?, name),"
	    " data = ?," SET_VERSION;
#undef SET_VERSION
	static const char record[] = "INSERT INTO message_versions (app_id, message_serial, seq,"
	    " action, name, data, client_id, description, timestamp_ms)"
	    " SELECT app_id, message_serial, version_seq, action, name, data, version_client_id,"
	    " version_description, version_ms FROM messages WHERE app_id = ? AND message_serial = ?";
	static const char record_text[] = "INSERT INTO message_versions (app_id, message_serial,"
	    " seq, action, name, data, client_id, description, timestamp_ms)"
	    " SELECT app_id, message_serial, version_seq, action, name, ?, version_client_id,"
	    " version_description, version_ms FROM messages WHERE app_id = ? AND message_serial = ?";
	struct db_val key[] = { DB_STR(app_id), DB_STR(serial) };
	struct db_val data = c->data != NULL ? DB_STRN(c->data, c->datalen) : DB_NUL;
	struct db_val set[] = { c->name ? DB_STR(c->name) : DB_NUL, data,
	    DB_STR(actions[c->action]), DB_I64(c->now),
	    c->client_id ? DB_STR(c->client_id) : DB_NUL,
	    c->description ? DB_STR(c->description) : DB_NUL, DB_STR(app_id), DB_STR(serial) };
	struct db_val text[] = { data, DB_STR(app_id), DB_STR(serial) };
	const char *sql = c->action == MSG_APPEND ? append :
	    c->action == MSG_DELETE ? delete : update;
	int rc;

	if (c->action == MSG_DELETE)
		set[1] = DB_STRN("", 0);	/* a deleted message shows no data */
	if (h->version_seq == 1 && (rc = db_exec(d, first, key, 2, NULL)) != 0)
		return rc;
	if ((rc = db_exec(d, sql, set, 8, NULL)) != 0)
		return rc;
	rc = c->action == MSG_APPEND ? db_exec(d, record_text, text, 3, NULL) :
	    db_exec(d, record, key, 2, NULL);
	if (rc == 0)
		*seq = h->version_seq + 1;
	return rc;
}

static int
row_version(const struct db_row *row, void *arg)
{
	struct version_page *pg = arg;

	if (db_page_full(pg->items, pg->limit, row, &pg->bytes, &pg->has_more))
		return 1;
	json_object_array_add(pg->items, msg_version_json(pg->channel, pg->serial, row, 0));
	pg->last_seq = strtoll(row->col[3], NULL, 10);
	return 0;
}

/*
 * One page of a message's versions after version `after` (0: from the
 * start in that direction).  A message never changed has no
 * message_versions rows: its one version is the messages row.  Both are
 * read in one transaction, so a first change made meanwhile is seen
 * wholly or not at all.  DB_NOTFOUND when there is no such message.
 */
int
db_message_versions(struct db *d, const char *app_id, struct version_page *pg)
{
	static const char only[] = "SELECT " MSG_VERSION_COLS " FROM messages"
	    " WHERE app_id = ? AND message_serial = ? AND channel = ? AND version_seq = 1";
	static const char newest[] = "SELECT name, data, action, seq, timestamp_ms, client_id,"
	    " description FROM message_versions WHERE app_id = ? AND message_serial = ?"
	    " AND seq < ? ORDER BY seq DESC LIMIT ?";
	static const char oldest[] = "SELECT name, data, action, seq, timestamp_ms, client_id,"
	    " description FROM message_versions WHERE app_id = ? AND message_serial = ?"
	    " AND seq > ? ORDER BY seq ASC LIMIT ?";
	struct db_val ov[] = { DB_STR(app_id), DB_STR(pg->serial), DB_STR(pg->channel) };
	static const char newest_sizes[] = "SELECT LENGTH(data) + LENGTH(name)"
	    " + COALESCE(LENGTH(description), 0) FROM message_versions WHERE app_id = ?"
	    " AND message_serial = ? AND seq < ? ORDER BY seq DESC LIMIT ?";
	static const char oldest_sizes[] = "SELECT LENGTH(data) + LENGTH(name)"
	    " + COALESCE(LENGTH(description), 0) FROM message_versions WHERE app_id = ?"
	    " AND message_serial = ? AND seq > ? ORDER BY seq ASC LIMIT ?";
	size_t fit = pg->limit;
	struct db_val v[] = { DB_STR(app_id), DB_STR(pg->serial),
	    DB_I64(pg->after > 0 ? pg->after : pg->newest_first ? INT64_MAX : 0),
	    DB_I64((long long)pg->limit) };
	struct msg_head h;
	int rc;

	pg->has_more = 0;
	pg->last_seq = 0;
	if ((rc = db_begin(d)) != 0)
		return rc;
	if ((rc = db_message_head(d, app_id, pg->channel, pg->serial, 0, &h)) != 0)
		goto out;
	if (h.version_seq > 1) {
		/* versions of a large message are large: a page holds what fits */
		if ((rc = db_page_fit(d, pg->newest_first ? newest_sizes : oldest_sizes, v, 4,
		    &fit)) != 0)
			goto out;
		v[3] = DB_I64((long long)fit + 1);
		rc = db_query(d, pg->newest_first ? newest : oldest, v, 4, row_version, pg);
	}
	else if (pg->after == 0)
		rc = db_query(d, only, ov, 3, row_version, pg);
out:
	if (rc == 0)
		return db_commit(d);
	db_rollback(d);
	return rc;
}
