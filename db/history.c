/* db/history.c: a channel's history (SPEC 5): pages, state, purge, retention. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "db.h"

static int
row_item(const struct db_row *row, void *arg)
{
	struct history_page *pg = arg;

	if (db_page_full(pg->items, pg->limit, row, &pg->bytes, &pg->has_more))
		return 1;
	json_object_array_add(pg->items, msg_row_json(pg->channel, row));
	pg->last_serial = strtoll(row->col[1], NULL, 10);
	return 0;
}

static int
first_i64(const struct db_row *row, void *arg)
{
	*(long long *)arg = strtoll(row->col[0], NULL, 10);
	return 1;
}

/*
 * The serial range [lo, hi] holding the channel's messages published in
 * [start_ms, end_ms], found with two lookups in the time index.  The
 * messages_serial trigger (006_monotonic_time.sql) keeps a channel's
 * times non-decreasing in serial order, so the range is exact.  Sets an
 * empty range (lo > hi) when there is none.
 */
static int
serial_range(struct db *d, const char *app_id, const struct history_page *pg,
    long long *lo, long long *hi)
{
	static const char first[] = "SELECT serial FROM messages WHERE app_id = ?"
	    " AND channel = ? AND published_at_ms >= ?"
	    " ORDER BY published_at_ms ASC, serial ASC LIMIT 1";
	static const char last[] = "SELECT serial FROM messages WHERE app_id = ?"
	    " AND channel = ? AND published_at_ms <= ?"
	    " ORDER BY published_at_ms DESC, serial DESC LIMIT 1";
	struct db_val a[] = { DB_STR(app_id), DB_STR(pg->channel), DB_I64(pg->start_ms) };
	struct db_val b[] = { DB_STR(app_id), DB_STR(pg->channel), DB_I64(pg->end_ms) };
	int rc;

	*lo = INT64_MAX;
	*hi = 0;
	if ((rc = db_query(d, first, a, 3, first_i64, lo)) != 0)
		return rc;
	return db_query(d, last, b, 3, first_i64, hi);
}

/*
 * One page of a channel's history after position `after` (a serial,
 * exclusive; 0 = from the start in that direction), newest or oldest
 * first, of the messages published in [start_ms, end_ms].  History is in
 * serial order; paging is by serial on the primary key (the time bounds
 * first become a serial range), so a page costs the same however long the
 * channel is, and messages published meanwhile never shift a page.  Fills
 * pg->items (up to limit), has_more and last_serial.
 */
int
db_history_page(struct db *d, const char *app_id, struct history_page *pg)
{
	static const char newest[] = "SELECT " MSG_ROW_COLS " FROM messages"
	    " WHERE app_id = ? AND channel = ? AND serial BETWEEN ? AND ?"
	    " AND published_at_ms BETWEEN ? AND ? ORDER BY serial DESC LIMIT ?";
	static const char oldest[] = "SELECT " MSG_ROW_COLS " FROM messages"
	    " WHERE app_id = ? AND channel = ? AND serial BETWEEN ? AND ?"
	    " AND published_at_ms BETWEEN ? AND ? ORDER BY serial ASC LIMIT ?";
#define SIZE "SELECT LENGTH(data) + LENGTH(name) + COALESCE(LENGTH(version_description), 0)"
	static const char newest_sizes[] = SIZE " FROM messages"
	    " WHERE app_id = ? AND channel = ? AND serial BETWEEN ? AND ?"
	    " AND published_at_ms BETWEEN ? AND ? ORDER BY serial DESC LIMIT ?";
	static const char oldest_sizes[] = SIZE " FROM messages"
	    " WHERE app_id = ? AND channel = ? AND serial BETWEEN ? AND ?"
	    " AND published_at_ms BETWEEN ? AND ? ORDER BY serial ASC LIMIT ?";
#undef SIZE
	long long lo = 1, hi = INT64_MAX;
	size_t fit = pg->limit;
	int rc;

	pg->has_more = 0;
	pg->last_serial = 0;
	if ((pg->start_ms > 0 || pg->end_ms < INT64_MAX) &&
	    (rc = serial_range(d, app_id, pg, &lo, &hi)) != 0)
		return rc;
	if (pg->after > 0) {
		if (pg->newest_first && pg->after - 1 < hi)
			hi = pg->after - 1;
		else if (!pg->newest_first && pg->after + 1 > lo)
			lo = pg->after + 1;
	}
	if (lo > hi)
		return 0;
	struct db_val v[] = { DB_STR(app_id), DB_STR(pg->channel), DB_I64(lo), DB_I64(hi),
	    DB_I64(pg->start_ms), DB_I64(pg->end_ms), DB_I64((long long)pg->limit) };
	/*
	 * Messages grow to a MiB by appends: a page holds what fits
	 * DB_PAGE_MAX_BYTES, learnt first from the sizes alone, so that the
	 * rows fetched never add up to more (1,000 of them would be a GB).
	 */
	if ((rc = db_page_fit(d, pg->newest_first ? newest_sizes : oldest_sizes, v, 7,
	    &fit)) != 0)
		return rc;
	v[6] = DB_I64((long long)fit + 1);
	return db_query(d, pg->newest_first ? newest : oldest, v, 7, row_item, pg);
}

static int
row_state(const struct db_row *row, void *arg)
{
	json_object *o = arg;
	const char *names[] = { "retained_count", "bytes", "oldest_serial", "newest_serial" };
	int i;

	for (i = 0; i < 4; i++)
		json_object_object_add(o, names[i], row->col[i] ?
		    json_object_new_int64(strtoll(row->col[i], NULL, 10)) : NULL);
	return 1;
}

/* retained_count, bytes, oldest_serial, newest_serial of a channel, added to out. */
int
db_history_state(struct db *d, const char *app_id, const char *channel, json_object *out)
{
	static const char sql[] = "SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0),"
	    " MIN(serial), MAX(serial) FROM messages WHERE app_id = ? AND channel = ?";
	struct db_val v[] = { DB_STR(app_id), DB_STR(channel) };

	return db_query(d, sql, v, 2, row_state, out);
}

/*
 * Delete a channel's messages with serial < before_serial and published
 * before before_ms (pass INT64_MAX to ignore either).  The channel's
 * serial counter is kept: new messages never reuse a purged serial.
 */
int
db_history_purge(struct db *d, const char *app_id, const char *channel,
    long long before_serial, long long before_ms, long long *purged)
{
	static const char sql[] = "DELETE FROM messages WHERE app_id = ? AND channel = ?"
	    " AND serial < ? AND published_at_ms < ?";
	struct db_val v[] = { DB_STR(app_id), DB_STR(channel), DB_I64(before_serial),
	    DB_I64(before_ms) };
	unsigned long long n = 0;
	int rc;

	if ((rc = db_exec(d, sql, v, 4, &n)) != 0)
		return rc;
	*purged = (long long)n;
	return 0;
}

struct chan_list {
	char	**names;
	size_t	  n;
	long long *last;
};

static int
row_chan(const struct db_row *row, void *arg)
{
	struct chan_list *l = arg;

	l->names[l->n] = strdup(row->col[0]);
	l->last[l->n] = strtoll(row->col[1], NULL, 10);
	if (l->names[l->n] != NULL)
		l->n++;
	return 0;
}

#define RETAIN_BATCH 500	/* channels per listing */
#define DELETE_BATCH 5000	/* rows per DELETE: short locks, bounded undo */

/* Delete in bounded batches until a batch comes back short. */
static int
delete_all(struct db *d, const char *sql, const struct db_val *v, size_t n,
    long long *deleted)
{
	unsigned long long got;
	int rc;

	do {
		if ((rc = db_exec(d, sql, v, n, &got)) != 0)
			return rc;
		*deleted += (long long)got;
	} while (got == DELETE_BATCH);
	return 0;
}

/*
 * Apply an app's retention (history_max_age_s, history_max_messages; 0 =
 * unlimited) to every channel it has published to, in bounded batches:
 * this runs from `sockudo-fcgi maintain`, never on the request path.
 */
int
db_history_retain(struct db *d, const struct app *a, int64_t now, long long *deleted)
{
	static const char list[] = "SELECT channel, last_serial FROM channel_heads"
	    " WHERE app_id = ? AND channel > ? ORDER BY channel LIMIT 500";
	static const char by_age[] = "DELETE FROM messages WHERE app_id = ? AND channel = ?"
	    " AND published_at_ms < ? LIMIT 5000";
	static const char by_count[] = "DELETE FROM messages WHERE app_id = ? AND channel = ?"
	    " AND serial <= ? LIMIT 5000";
	struct chan_list l;
	char *after;
	size_t i;
	int rc = 0;

	*deleted = 0;
	if (a->history_max_age_s <= 0 && a->history_max_messages <= 0)
		return 0;
	after = strdup("");
	l.names = calloc(RETAIN_BATCH, sizeof(*l.names));
	l.last = calloc(RETAIN_BATCH, sizeof(*l.last));
	if (after == NULL || l.names == NULL || l.last == NULL) {
		rc = DB_ERROR;
		goto out;
	}
	do {
		struct db_val lv[] = { DB_STR(a->id), DB_STR(after) };
		l.n = 0;
		if ((rc = db_query(d, list, lv, 2, row_chan, &l)) != 0)
			break;
		for (i = 0; i < l.n && rc == 0; i++) {
			if (a->history_max_age_s > 0) {
				struct db_val v[] = { DB_STR(a->id), DB_STR(l.names[i]),
				    DB_I64(now - (int64_t)a->history_max_age_s * 1000) };
				rc = delete_all(d, by_age, v, 3, deleted);
			}
			if (rc == 0 && a->history_max_messages > 0 &&
			    l.last[i] > a->history_max_messages) {
				struct db_val v[] = { DB_STR(a->id), DB_STR(l.names[i]),
				    DB_I64(l.last[i] - a->history_max_messages) };
				rc = delete_all(d, by_count, v, 3, deleted);
			}
		}
		if (l.n > 0) {
			free(after);
			after = l.names[l.n - 1];
			l.names[l.n - 1] = NULL;
		}
		for (i = 0; i < l.n; i++)
			free(l.names[i]);
	} while (rc == 0 && l.n == RETAIN_BATCH);
out:
	free(after);
	free(l.names);
	free(l.last);
	return rc;
}
