/* db/pushwork.c: the work queue of sockudo-pushd: expanding publishes, claiming and recording deliveries. */
#include "config.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "db.h"

#define EXPAND_CHUNK	2000	/* channel subscriptions expanded per transaction */

/*
 * A publish's final state once every delivery is settled: tried when its
 * expansion ends and when deliveries are recorded, whichever comes last.
 */
static const char settle_sql[] = "UPDATE push_publishes SET state = CASE"
    " WHEN failed = 0 THEN 'succeeded' WHEN sent = 0 THEN 'failed'"
    " ELSE 'partially_succeeded' END WHERE app_id = ? AND publish_id = ?"
    " AND state = 'dispatching' AND to_expand = 0 AND sent + failed >= planned";

/* A publish being expanded, and where its expansion stands. */
struct due {
	char		*app_id, *publish_id, *recipients;
	int64_t		 expires_at_ms;
	int		 index;			/* the recipient being expanded */
	char		 after_dev[129];	/* the last subscription of its channel done */
	char		 after_cli[201];
};

/* The due publishes taken in one pass. */
struct dues {
	struct due	*v;
	size_t		 n, max;
};

static int
row_due(const struct db_row *row, void *arg)
{
	struct dues *l = arg;
	struct due *u;

	if (l->n == l->max)
		return 1;
	u = &l->v[l->n++];
	memset(u, 0, sizeof(*u));
	u->app_id = strdup(row->col[0]);
	u->publish_id = strdup(row->col[1]);
	u->recipients = strdup(row->col[2]);
	u->expires_at_ms = row->col[3] ? strtoll(row->col[3], NULL, 10) : 0;
	u->index = (int)strtol(row->col[4], NULL, 10);
	snprintf(u->after_dev, sizeof(u->after_dev), "%s", row->col[5]);
	snprintf(u->after_cli, sizeof(u->after_cli), "%s", row->col[6]);
	if (u->app_id != NULL && u->publish_id != NULL && u->recipients != NULL)
		return 0;
	free(u->app_id);	/* out of memory: expand what was read */
	free(u->publish_id);
	free(u->recipients);
	l->n--;
	return 1;
}

#define INS "INSERT IGNORE INTO push_deliveries (app_id, publish_id, device_id, next_at_ms," \
	" claim)"
/* subscriptions of a channel after (device, client) and up to (device, client) */
#define SUB_RANGE " WHERE s.app_id = ? AND s.channel = ?" \
	" AND (s.device_id > ? OR (s.device_id = ? AND s.client_id > ?))" \
	" AND (s.device_id < ? OR (s.device_id = ? AND s.client_id <= ?))"

/* A chunk of a channel's subscriptions: how many, and the last one. */
struct chunk {
	long long	 n;
	char		 dev[129], cli[201];
};

static int
row_sub(const struct db_row *row, void *arg)
{
	struct chunk *c = arg;

	c->n++;
	snprintf(c->dev, sizeof(c->dev), "%s", row->col[0]);
	snprintf(c->cli, sizeof(c->cli), "%s", row->col[1]);
	return 0;
}

/*
 * Make the deliveries of up to budget subscriptions of a channel, those
 * after u's cursor, and move the cursor past them.  *made: deliveries
 * made; *used: subscriptions read; *done: the channel has no more.
 */
static int
expand_channel(struct db *d, struct due *u, const char *channel, int64_t next_at_ms,
    const char *claim, long long budget, long long *made, long long *used, int *done)
{
	static const char keys[] = "SELECT device_id, client_id FROM push_channel_subs"
	    " WHERE app_id = ? AND channel = ?"
	    " AND (device_id > ? OR (device_id = ? AND client_id > ?))"
	    " ORDER BY device_id, client_id LIMIT ?";
	static const char by_dev_sub[] = INS " SELECT v.app_id, ?, v.device_id, ?, ?"
	    " FROM push_channel_subs s JOIN push_devices v ON v.app_id = s.app_id"
	    " AND v.device_id = s.device_id" SUB_RANGE
	    " AND s.device_id <> '' AND v.state = 'active'";
	static const char by_client_sub[] = INS " SELECT v.app_id, ?, v.device_id, ?, ?"
	    " FROM push_channel_subs s JOIN push_devices v ON v.app_id = s.app_id"
	    " AND v.client_id = s.client_id" SUB_RANGE
	    " AND s.client_id <> '' AND v.state = 'active'";
	struct chunk c = { 0 };
	unsigned long long n1 = 0, n2 = 0;
	int rc;

	struct db_val k[] = { DB_STR(u->app_id), DB_STR(channel), DB_STR(u->after_dev),
	    DB_STR(u->after_dev), DB_STR(u->after_cli), DB_I64(budget) };
	if ((rc = db_query(d, keys, k, 6, row_sub, &c)) != 0)
		return rc;
	*done = c.n < budget;
	*used = c.n;
	*made = 0;
	if (c.n == 0)
		return 0;
	struct db_val v[] = { DB_STR(u->publish_id), DB_I64(next_at_ms),
	    claim ? DB_STR(claim) : DB_NUL, DB_STR(u->app_id), DB_STR(channel),
	    DB_STR(u->after_dev), DB_STR(u->after_dev), DB_STR(u->after_cli),
	    DB_STR(c.dev), DB_STR(c.dev), DB_STR(c.cli) };
	if ((rc = db_exec(d, by_dev_sub, v, 11, &n1)) != 0 ||
	    (rc = db_exec(d, by_client_sub, v, 11, &n2)) != 0)
		return rc;
	*made = (long long)(n1 + n2);
	memcpy(u->after_dev, c.dev, sizeof(c.dev));
	memcpy(u->after_cli, c.cli, sizeof(c.cli));
	return 0;
}

/* The deliveries of a device or client recipient.  *made: how many. */
static int
expand_one(struct db *d, const struct due *u, const char *type, const char *id,
    int64_t next_at_ms, const char *claim, long long *made)
{
	static const char by_device[] = INS " SELECT app_id, ?, device_id, ?, ?"
	    " FROM push_devices WHERE app_id = ? AND device_id = ? AND state = 'active'";
	static const char by_client[] = INS " SELECT app_id, ?, device_id, ?, ?"
	    " FROM push_devices WHERE app_id = ? AND client_id = ? AND state = 'active'";
	struct db_val v[] = { DB_STR(u->publish_id), DB_I64(next_at_ms),
	    claim ? DB_STR(claim) : DB_NUL, DB_STR(u->app_id), DB_STR(id) };
	unsigned long long n = 0;
	int rc;

	rc = db_exec(d, strcmp(type, "device") == 0 ? by_device : by_client, v, 5, &n);
	*made = (long long)n;
	return rc;
}
#undef SUB_RANGE
#undef INS

/*
 * Expand a publish the caller holds in its transaction from where it
 * stands, about budget subscriptions' worth (0: all of it), then record
 * its new planned count and where it stands.  Finished, it is
 * dispatching, or settled already if there was nothing (left) to send.
 */
static int
expand(struct db *d, struct due *u, int64_t next_at_ms, const char *claim,
    long long budget, long long *planned)
{
	static const char set[] = "UPDATE push_publishes SET planned = planned + ?,"
	    " state = 'dispatching', to_expand = ?, expand_index = ?, expand_device = ?,"
	    " expand_client = ? WHERE app_id = ? AND publish_id = ?";
	json_object *recs, *rec;
	long long made = 0, m, used, left = budget > 0 ? budget : LLONG_MAX;
	const char *type, *id;
	char errbuf[96];
	size_t n;
	int rc = 0, done;

	/*
	 * Stored validated; a list that is not one (a row written by hand)
	 * expands to nothing, rather than failing every expansion that takes
	 * it along, and a recipient that is not {type, id} is skipped.
	 */
	recs = json_parse_strict(u->recipients, strlen(u->recipients), errbuf, sizeof(errbuf));
	n = json_object_is_type(recs, json_type_array) ? json_object_array_length(recs) : 0;
	while (rc == 0 && (size_t)u->index < n && left > 0) {
		rec = json_object_array_get_idx(recs, (size_t)u->index);
		m = used = 0;
		done = 1;
		if ((type = json_str(rec, "type")) == NULL ||
		    (id = json_str(rec, strcmp(type, "channel") == 0 ? "channel" :
		    strcmp(type, "device") == 0 ? "device_id" : "client_id")) == NULL)
			;	/* skipped */
		else if (strcmp(type, "channel") == 0)
			rc = expand_channel(d, u, id, next_at_ms, claim,
			    left < EXPAND_CHUNK ? left : EXPAND_CHUNK, &m, &used, &done);
		else
			rc = expand_one(d, u, type, id, next_at_ms, claim, &m);
		made += m;
		left -= used > 0 ? used : 1;
		if (done) {
			u->index++;
			u->after_dev[0] = u->after_cli[0] = '\0';
		}
	}
	json_object_put(recs);
	int more = (size_t)u->index < n;
	struct db_val v[] = { DB_I64(made), DB_I64(more), DB_I64(u->index), DB_STR(u->after_dev),
	    DB_STR(u->after_cli), DB_STR(u->app_id), DB_STR(u->publish_id) };
	struct db_val k[] = { DB_STR(u->app_id), DB_STR(u->publish_id) };
	if (planned != NULL)
		*planned = made;
	if (rc == 0)
		rc = db_exec(d, set, v, 7, NULL);
	if (rc == 0 && !more)
		rc = db_exec(d, settle_sql, k, 2, NULL);
	return rc;
}

/*
 * Take up to max publishes due for expansion (skipping any another worker
 * holds) and expand a chunk of each, in one transaction: one commit for
 * many small publishes, and a big one goes on in the next pass.  One that
 * expired is expired.  Returns how many were taken (0: none is due), or a
 * DB_ code.
 */
int
db_pushwork_expand(struct db *d, int64_t now, int max)
{
	static const char take[] = "SELECT app_id, publish_id, recipients, expires_at_ms,"
	    " expand_index, expand_device, expand_client FROM push_publishes"
	    " WHERE to_expand = 1 AND deliver_at_ms <= ? ORDER BY deliver_at_ms LIMIT ?"
	    " FOR UPDATE SKIP LOCKED";
	static const char expire[] = "UPDATE push_publishes SET state = 'expired', to_expand = 0"
	    " WHERE app_id = ? AND publish_id = ?";
	struct db_val t[] = { DB_I64(now), DB_I64(max) };
	struct dues l = { .max = (size_t)max };
	size_t i;
	int rc;

	if ((l.v = calloc(l.max, sizeof(*l.v))) == NULL)
		return DB_ERROR;
	if ((rc = db_begin(d)) != 0)
		goto out;
	rc = db_query(d, take, t, 2, row_due, &l);
	for (i = 0; rc == 0 && i < l.n; i++) {
		struct due *u = &l.v[i];
		if (u->expires_at_ms > 0 && u->expires_at_ms <= now) {
			struct db_val k[] = { DB_STR(u->app_id), DB_STR(u->publish_id) };
			rc = db_exec(d, expire, k, 2, NULL);
		} else
			rc = expand(d, u, now, NULL, EXPAND_CHUNK, NULL);
	}
	if (rc == 0 && l.n > 0)
		rc = db_commit(d);
	else
		db_rollback(d);
out:
	for (i = 0; i < l.n; i++) {
		free(l.v[i].app_id);
		free(l.v[i].publish_id);
		free(l.v[i].recipients);
	}
	free(l.v);
	return rc != 0 ? rc : (int)l.n;
}

/*
 * Expand a publish stored in the caller's transaction right away and
 * whole, its deliveries claimed for lease_ms with claim (a sync publish,
 * sent by the request): no worker takes them unless the request dies and
 * the lease runs out.  *planned: how many deliveries it made.
 */
int
db_pushwork_expand_claimed(struct db *d, const char *app_id, const char *publish_id,
    const char *recipients, int64_t now, int64_t lease_ms, const char *claim,
    long long *planned)
{
	struct due u = { .app_id = (char *)app_id, .publish_id = (char *)publish_id,
	    .recipients = (char *)recipients };

	return expand(d, &u, now + lease_ms, claim, 0, planned);
}

static int
row_work(const struct db_row *row, void *arg)
{
	struct push_batch *b = arg;
	struct push_work *w;

	if (b->n == b->max)
		return 1;
	w = &b->items[b->n++];
	memset(w, 0, sizeof(*w));
	w->id = strtoull(row->col[0], NULL, 10);
	snprintf(w->app_id, sizeof(w->app_id), "%s", row->col[1]);
	snprintf(w->publish_id, sizeof(w->publish_id), "%s", row->col[2]);
	snprintf(w->device_id, sizeof(w->device_id), "%s", row->col[3]);
	w->attempts = (int)strtol(row->col[4], NULL, 10);
	w->platform = row->col[5] ? strdup(row->col[5]) : NULL;
	w->token = row->col[6] ? strdup(row->col[6]) : NULL;
	w->device_ok = row->col[7] != NULL && strcmp(row->col[7], "active") == 0;
	w->payload = strdup(row->col[8]);
	w->expires_at_ms = row->col[9] ? strtoll(row->col[9], NULL, 10) : 0;
	return 0;
}

#define ID_CHUNK 100	/* ids per UPDATE ... WHERE id IN (...) */

static char *claim_sql, *sent_sql;
static pthread_once_t id_sql_once = PTHREAD_ONCE_INIT;

/* head followed by "id IN (?, ... ID_CHUNK)" */
static char *
id_list_sql(const char *head)
{
	char *sql;
	size_t i;

	if ((sql = malloc(strlen(head) + 2 * ID_CHUNK + 16)) == NULL)
		abort();
	strcpy(sql, head);
	strcat(sql, " id IN (");
	for (i = 0; i < ID_CHUNK; i++)
		strcat(sql, i ? ",?" : "?");
	strcat(sql, ")");
	return sql;
}

/* Built once: prepared statements are cached by the SQL's address. */
static void
id_sql_init(void)
{
	claim_sql = id_list_sql("UPDATE push_deliveries SET claim = ?, next_at_ms = ? WHERE");
	sent_sql = id_list_sql("UPDATE push_deliveries SET state = 'sent',"
	    " attempts = attempts + 1, last_error = NULL, claim = NULL WHERE");
}

static int
cmp_id(const void *a, const void *b)
{
	unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;

	return x < y ? -1 : x > y;
}

/*
 * Run an id_list_sql statement with its nfirst leading parameters over
 * ids (sorted here, the lock order), ID_CHUNK at a time; 0 pads a short
 * chunk (no row has it).
 */
static int
exec_ids(struct db *d, const char *sql, const struct db_val *first, size_t nfirst,
    unsigned long long *ids, size_t n)
{
	struct db_val v[2 + ID_CHUNK];
	size_t i, k;
	int rc = 0;

	qsort(ids, n, sizeof(*ids), cmp_id);
	if (nfirst > 0)
		memcpy(v, first, nfirst * sizeof(*v));
	for (i = 0; i < n && rc == 0; i += ID_CHUNK) {
		for (k = 0; k < ID_CHUNK; k++)
			v[nfirst + k] = DB_I64(i + k < n ? (long long)ids[i + k] : 0);
		rc = db_exec(d, sql, v, nfirst + ID_CHUNK, NULL);
	}
	return rc;
}

static int
row_due_id(const struct db_row *row, void *arg)
{
	struct push_batch *b = arg;

	if (b->n == b->max)
		return 1;
	b->items[b->n++].id = strtoull(row->col[0], NULL, 10);
	return 0;
}

/* Hand what a claim still holds back to every worker, due now. */
int
db_pushwork_release(struct db *d, const char *claim, int64_t now)
{
	static const char sql[] = "UPDATE push_deliveries SET claim = NULL, next_at_ms = ?"
	    " WHERE claim = ? AND state = 'pending'";
	struct db_val v[] = { DB_I64(now), DB_STR(claim) };

	return db_exec(d, sql, v, 2, NULL);
}

/* Read the deliveries stamped with b->claim, with their devices and payloads. */
int
db_pushwork_claimed(struct db *d, struct push_batch *b)
{
	static const char get[] = "SELECT d.id, d.app_id, d.publish_id, d.device_id, d.attempts,"
	    " v.platform, v.token, v.state, p.payload, p.expires_at_ms"
	    " FROM push_deliveries d JOIN push_publishes p ON p.app_id = d.app_id"
	    " AND p.publish_id = d.publish_id LEFT JOIN push_devices v ON v.app_id = d.app_id"
	    " AND v.device_id = d.device_id WHERE d.claim = ?";
	struct db_val g[] = { DB_STRN(b->claim, strlen(b->claim)) };

	b->n = 0;
	return db_query(d, get, g, 1, row_work, b);
}

/*
 * Claim up to b->max due deliveries for lease_ms: in one transaction,
 * lock them (skipping rows another worker is claiming right now), stamp
 * them with a fresh claim token and move them out of the due range; then
 * read them.  A claim by id keeps the UPDATE off the due index's range,
 * which MariaDB would read whole to buffer the rows it moves.
 */
int
db_pushwork_claim(struct db *d, int64_t now, int64_t lease_ms, struct push_batch *b)
{
	static const char due[] = "SELECT id FROM push_deliveries"
	    " WHERE state = 'pending' AND next_at_ms <= ? ORDER BY next_at_ms LIMIT ?"
	    " FOR UPDATE SKIP LOCKED";
	unsigned long long *ids;
	size_t i, n;
	int rc;

	b->n = 0;
	message_serial_new(b->claim, now);
	struct db_val q[] = { DB_I64(now), DB_I64((long long)b->max) };
	struct db_val c[] = { DB_STRN(b->claim, strlen(b->claim)), DB_I64(now + lease_ms) };
	pthread_once(&id_sql_once, id_sql_init);
	if ((rc = db_begin(d)) != 0)
		return rc;
	if ((rc = db_query(d, due, q, 2, row_due_id, b)) != 0 || (n = b->n) == 0)
		goto done;
	if ((ids = calloc(n, sizeof(*ids))) == NULL) {
		rc = DB_ERROR;
		goto done;
	}
	for (i = 0; i < n; i++)
		ids[i] = b->items[i].id;
	rc = exec_ids(d, claim_sql, c, 2, ids, n);
	free(ids);
done:
	if (rc == 0 && (rc = db_commit(d)) == 0 && b->n > 0)
		return db_pushwork_claimed(d, b);
	db_rollback(d);
	b->n = 0;
	return rc;
}

static int
row_id(const struct db_row *row, void *arg)
{
	struct push_batch *b = arg;
	unsigned long long id = strtoull(row->col[0], NULL, 10);
	size_t i;

	for (i = 0; i < b->n; i++)
		if (b->items[i].id == id)
			b->items[i].counted = 1;
	return 0;
}

/* Mark the batch's rows still ours (claimed by it, not cancelled), and lock them. */
static int
owned(struct db *d, struct push_batch *b)
{
	static const char sql[] = "SELECT id FROM push_deliveries"
	    " WHERE claim = ? AND state = 'pending' FOR UPDATE";
	struct db_val v[] = { DB_STRN(b->claim, strlen(b->claim)) };
	size_t i;

	for (i = 0; i < b->n; i++)
		b->items[i].counted = 0;
	return db_query(d, sql, v, 1, row_id, b);
}

/* The delivered rows, in ID_CHUNK statements. */
static int
record_sent(struct db *d, const struct push_batch *b)
{
	unsigned long long *ids;
	size_t i, n = 0;
	int rc;

	pthread_once(&id_sql_once, id_sql_init);
	if ((ids = calloc(b->n ? b->n : 1, sizeof(*ids))) == NULL)
		return DB_ERROR;
	for (i = 0; i < b->n; i++)
		if (b->items[i].counted && b->items[i].outcome == PUSH_SENT)
			ids[n++] = b->items[i].id;
	rc = exec_ids(d, sent_sql, NULL, 0, ids, n);
	free(ids);
	return rc;
}

/*
 * Record what became of a batch, in one transaction: each delivery's new
 * state, failed devices, and each publish's counters (and its final
 * state once every delivery is settled).  Only rows the batch still owns
 * count: one cancelled while in flight keeps its state, and one whose
 * lease ran out and that another worker took is that worker's to record.
 */
static int
record(struct db *d, struct push_batch *b)
{
	static const char failed[] = "UPDATE push_deliveries SET state = ?,"
	    " attempts = attempts + ?, last_error = ?, claim = NULL WHERE id = ?";
	static const char retry[] = "UPDATE push_deliveries SET attempts = attempts + 1,"
	    " next_at_ms = ?, last_error = ?, claim = NULL WHERE id = ?";
	static const char gone[] = "UPDATE push_devices SET state = 'failed', failed_reason = ?"
	    " WHERE app_id = ? AND device_id = ?";
	static const char counters[] = "UPDATE push_publishes SET sent = sent + ?,"
	    " failed = failed + ?, retrying = retrying + ? WHERE app_id = ? AND publish_id = ?";
	size_t i, k;
	int rc;

	if ((rc = db_begin(d)) != 0)
		return rc;
	if ((rc = owned(d, b)) != 0 || (rc = record_sent(d, b)) != 0)
		goto fail;
	for (i = 0; i < b->n; i++) {
		struct push_work *w = &b->items[i];
		struct db_val id = DB_I64((long long)w->id);
		const char *err = w->error[0] ? w->error : NULL;
		if (!w->counted || w->outcome == PUSH_SENT)
			continue;
		if (w->outcome == PUSH_RETRY) {
			struct db_val v[] = { DB_I64(w->next_at_ms), DB_STR(err), id };
			rc = db_exec(d, retry, v, 3, NULL);
		} else {
			struct db_val v[] = { DB_STR(w->outcome == PUSH_EXPIRED ? "expired" : "failed"),
			    DB_I64(w->outcome == PUSH_EXPIRED ? 0 : 1), DB_STR(err), id };
			rc = db_exec(d, failed, v, 4, NULL);
		}
		if (rc == 0 && w->outcome == PUSH_GONE) {
			struct db_val v[] = { DB_STR(err), DB_STR(w->app_id), DB_STR(w->device_id) };
			rc = db_exec(d, gone, v, 3, NULL);
		}
		if (rc != 0)
			goto fail;
	}
	/* the counters, once per publish of the batch */
	for (i = 0; i < b->n; i++) {
		long long ns = 0, nf = 0, nr = 0;
		int first = 1;
		for (k = 0; k < i && first; k++)
			first = strcmp(b->items[k].app_id, b->items[i].app_id) != 0 ||
			    strcmp(b->items[k].publish_id, b->items[i].publish_id) != 0;
		if (!first)
			continue;
		for (k = i; k < b->n; k++) {
			struct push_work *w = &b->items[k];
			if (!w->counted || strcmp(w->app_id, b->items[i].app_id) != 0 ||
			    strcmp(w->publish_id, b->items[i].publish_id) != 0)
				continue;
			ns += w->outcome == PUSH_SENT;
			nf += w->outcome != PUSH_SENT && w->outcome != PUSH_RETRY;
			/* retrying: in a retry now, less those that were and are settled */
			nr += (w->outcome == PUSH_RETRY && w->attempts == 0) -
			    (w->outcome != PUSH_RETRY && w->attempts > 0);
		}
		struct db_val v[] = { DB_I64(ns), DB_I64(nf), DB_I64(nr),
		    DB_STR(b->items[i].app_id), DB_STR(b->items[i].publish_id) };
		struct db_val s[] = { DB_STR(b->items[i].app_id), DB_STR(b->items[i].publish_id) };
		if ((rc = db_exec(d, counters, v, 5, NULL)) != 0 ||
		    (rc = db_exec(d, settle_sql, s, 2, NULL)) != 0)
			goto fail;
	}
	return db_commit(d);
fail:
	db_rollback(d);
	return rc;
}

/*
 * record(), redone after a deadlock or lock wait timeout with a worker
 * claiming at the same time (nothing of the attempt was kept).
 */
int
db_pushwork_record(struct db *d, struct push_batch *b)
{
	int rc, attempt;

	for (attempt = 0; attempt < 3; attempt++) {
		rc = record(d, b);
		if (!db_retryable(d, rc))
			break;
	}
	return rc;
}

void
push_batch_clear(struct push_batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++) {
		free(b->items[i].platform);
		free(b->items[i].token);
		free(b->items[i].payload);
	}
	b->n = 0;
}
