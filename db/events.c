/* db/events.c: storing published events and their idempotency records. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "db.h"

/*
 * A message serial: 48 bits of milliseconds and 80 random bits in
 * Crockford base32 (26 characters), so serials sort by time and two
 * publishers never collide (SPEC 6: opaque, time-ordered, unique).
 */
void
message_serial_new(char out[32], int64_t now)
{
	static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	unsigned char r[10];
	uint64_t t = (uint64_t)now;
	unsigned v;
	int i, b, pos;

	for (i = 9; i >= 0; i--) {
		out[i] = b32[t & 31];
		t >>= 5;
	}
	if (random_bytes(r, sizeof(r)) != 0)
		abort();
	for (i = 0; i < 16; i++) {
		for (v = 0, b = 0; b < 5; b++) {
			pos = i * 5 + b;
			v = v << 1 | ((r[pos / 8] >> (7 - pos % 8)) & 1);
		}
		out[10 + i] = b32[v];
	}
	out[26] = '\0';
}

static int
row_to_idem(const struct db_row *row, void *arg)
{
	struct idem_row *ir = arg;

	if (row->len[0] == 32)
		memcpy(ir->hash, row->col[0], 32);
	ir->status = (int)strtol(row->col[1], NULL, 10);
	ir->response = strndup(row->col[2], row->len[2]);
	return 1;
}

/*
 * Reserve an idempotency key inside the caller's transaction.  Returns 0
 * when the key is new (the row is held until commit), DB_CONFLICT when it
 * was used before and *out holds the first request's hash and answer.  A
 * concurrent holder of the same key makes the INSERT wait for its commit,
 * so two racing requests never both publish.
 */
int
db_idem_claim(struct db *d, const char *app_id, const char *key,
    const unsigned char hash[32], int ttl_s, int64_t now, struct idem_row *out)
{
	static const char purge[] = "DELETE FROM idempotency"
	    " WHERE app_id = ? AND idem_key = ? AND expires_at_ms < ?";
	static const char ins[] = "INSERT INTO idempotency (app_id, idem_key,"
	    " request_hash, status, response, created_at_ms, expires_at_ms)"
	    " VALUES (?, ?, ?, 0, '', ?, ?)";
	static const char get[] = "SELECT request_hash, status, response"
	    " FROM idempotency WHERE app_id = ? AND idem_key = ?";
	struct db_val pv[] = { DB_STR(app_id), DB_STR(key), DB_I64(now) };
	struct db_val iv[] = { DB_STR(app_id), DB_STR(key),
	    DB_STRN((const char *)hash, 32), DB_I64(now), DB_I64(now + (int64_t)ttl_s * 1000) };
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = db_exec(d, purge, pv, 3, NULL)) != 0)
		return rc;
	rc = db_exec(d, ins, iv, 5, NULL);
	if (rc != DB_CONFLICT)
		return rc;
	if ((rc = db_query(d, get, pv, 2, row_to_idem, out)) != 0)
		return rc;
	return out->response != NULL ? DB_CONFLICT : DB_ERROR;
}

/* Record the answer for a key claimed in this transaction. */
int
db_idem_store(struct db *d, const char *app_id, const char *key, int status,
    const char *response)
{
	static const char sql[] = "UPDATE idempotency SET status = ?, response = ?"
	    " WHERE app_id = ? AND idem_key = ?";
	struct db_val v[] = { DB_I64(status), DB_STR(response), DB_STR(app_id), DB_STR(key) };

	return db_exec(d, sql, v, 4, NULL);
}

#define APPEND_ROWS 16	/* the most rows one INSERT takes */
#define APPEND_COLS 7

static char *append_sql[APPEND_ROWS + 1];
static pthread_once_t append_once = PTHREAD_ONCE_INIT;

/*
 * INSERT statements for 1..APPEND_ROWS rows, built once (db.c caches
 * prepared statements by text address).  Every thread prepares each size
 * it uses, and a prepared statement keeps buffers for all its parameters:
 * sizes up to 16 cost a thread about 100 KiB, up to 32 four times that.
 */
static void
append_sql_init(void)
{
	static const char head[] = "INSERT INTO messages (app_id, channel,"
	    " message_serial, name, data, socket_id, published_at_ms) VALUES ";
	static const char row[] = "(?, ?, ?, ?, ?, ?, ?)";
	size_t n, i;
	char *s;

	for (n = 1; n <= APPEND_ROWS; n++) {
		if ((s = malloc(sizeof(head) + n * sizeof(row) + 1)) == NULL)
			abort();
		strcpy(s, head);
		for (i = 0; i < n; i++) {
			if (i > 0)
				strcat(s, ",");
			strcat(s, row);
		}
		append_sql[n] = s;
	}
}

/* Whether n rows are appended by a single statement. */
int
db_append_atomic(size_t n)
{
	return n >= 1 && n <= APPEND_ROWS;
}

static int
row_order(const void *a, const void *b)
{
	const struct pub_row *x = *(const struct pub_row *const *)a;
	const struct pub_row *y = *(const struct pub_row *const *)b;
	int c;

	if ((c = strcmp(x->app_id, y->app_id)) != 0 || (c = strcmp(x->channel, y->channel)) != 0)
		return c;
	return x < y ? -1 : x > y;	/* keep the given order within a channel */
}

/*
 * Append rows (possibly of several apps and channels) to their channels'
 * histories, in the given order per channel.  The messages_serial trigger
 * (004_serial_trigger.sql) gives each row its channel's next serial.
 * Rows go in (app, channel) order so that two groups lock channels in
 * the same order and cannot deadlock.  Up to APPEND_ROWS rows are one
 * statement, atomic even outside a transaction; more take several and
 * need the caller's transaction.
 */
int
db_messages_append(struct db *d, const struct pub_row *rows, size_t n)
{
	struct db_val *v;
	const struct pub_row **order;
	size_t i, k, m;
	int rc = 0;

	pthread_once(&append_once, append_sql_init);
	order = calloc(n ? n : 1, sizeof(*order));
	v = calloc(APPEND_ROWS * APPEND_COLS, sizeof(*v));
	if (order == NULL || v == NULL) {
		free(order);
		free(v);
		return DB_ERROR;
	}
	for (i = 0; i < n; i++)
		order[i] = &rows[i];
	qsort(order, n, sizeof(*order), row_order);
	for (i = 0; i < n && rc == 0; i += m) {
		m = n - i < APPEND_ROWS ? n - i : APPEND_ROWS;
		for (k = 0; k < m; k++) {
			const struct pub_row *r = order[i + k];
			struct db_val *p = &v[k * APPEND_COLS];
			p[0] = DB_STR(r->app_id);
			p[1] = DB_STR(r->channel);
			p[2] = DB_STR(r->message_serial);
			p[3] = DB_STR(r->name);
			p[4] = DB_STRN(r->data, r->datalen);
			p[5] = r->socket_id ? DB_STR(r->socket_id) : DB_NUL;
			p[6] = DB_I64(r->published_at_ms);
		}
		rc = db_exec(d, append_sql[m], v, m * APPEND_COLS, NULL);
	}
	free(order);
	free(v);
	return rc;
}

static int
row_event(const struct db_row *row, void *arg)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "event", json_object_new_string(row->col[0]));
	json_object_object_add(o, "data", json_object_new_string_len(row->col[1],
	    (int)row->len[1]));
	json_object_object_add(o, "message_serial", json_object_new_string(row->col[2]));
	json_object_object_add(o, "published_at_ms",
	    json_object_new_int64(strtoll(row->col[3], NULL, 10)));
	*(json_object **)arg = o;
	return 1;
}

/*
 * The last event published to a channel, as {event, data, message_serial,
 * published_at_ms}, or *out = NULL when there is none (a cache- channel's
 * cache, SPEC 4).
 */
int
db_channel_last_event(struct db *d, const char *app_id, const char *channel, json_object **out)
{
	static const char sql[] = "SELECT name, data, message_serial, published_at_ms"
	    " FROM messages WHERE app_id = ? AND channel = ? ORDER BY serial DESC LIMIT 1";
	struct db_val v[] = { DB_STR(app_id), DB_STR(channel) };

	*out = NULL;
	return db_query(d, sql, v, 2, row_event, out);
}

/* Drop idempotency records past their window, in bounded batches (maintenance). */
int
db_idem_expire(struct db *d, int64_t now, long long *deleted)
{
	static const char sql[] = "DELETE FROM idempotency WHERE expires_at_ms < ? LIMIT 5000";
	struct db_val v[] = { DB_I64(now) };
	unsigned long long got;
	int rc;

	*deleted = 0;
	do {
		if ((rc = db_exec(d, sql, v, 1, &got)) != 0)
			return rc;
		*deleted += (long long)got;
	} while (got == 5000);
	return 0;
}
