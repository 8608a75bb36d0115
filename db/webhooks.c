/* db/webhooks.c: the queue of webhooks waiting to be sent (issue 5). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "db.h"

/* Queue one webhook body for an app, in the caller's transaction. */
int
db_webhook_add(struct db *d, const char *app_id, const char *body)
{
	static const char sql[] = "INSERT INTO webhooks (app_id, body, next_at_ms,"
	    " created_at_ms) VALUES (?, ?, ?, ?)";
	int64_t now = now_ms();
	struct db_val v[] = { DB_STR(app_id), DB_STR(body), DB_I64(now), DB_I64(now) };

	return db_exec(d, sql, v, 4, NULL);
}

struct claim_arg {
	struct webhook	*out;
	size_t		 n, max;
};

static int
row_webhook(const struct db_row *row, void *arg)
{
	struct claim_arg *c = arg;
	struct webhook *h = &c->out[c->n];

	if (c->n == c->max)
		return 1;
	h->id = strtoll(row->col[0], NULL, 10);
	snprintf(h->app_id, sizeof(h->app_id), "%s", row->col[1]);
	h->body = strdup(row->col[2]);
	h->attempts = (int)strtol(row->col[3], NULL, 10);
	if (h->body != NULL)
		c->n++;
	return 0;
}

/*
 * Claim up to max due webhooks into out (bodies malloc'd: free with
 * webhook_free()) for lease_ms: another sender skips them meanwhile, and
 * takes them over if this one dies.  *n is how many were claimed.
 */
int
db_webhook_claim(struct db *d, int64_t now, int64_t lease_ms, struct webhook *out,
    size_t max, size_t *n)
{
	static const char pick[] = "SELECT id, app_id, body, attempts FROM webhooks"
	    " WHERE next_at_ms <= ? ORDER BY next_at_ms, id LIMIT ? FOR UPDATE SKIP LOCKED";
	static const char lease[] = "UPDATE webhooks SET next_at_ms = ? WHERE id = ?";
	struct db_val v[] = { DB_I64(now), DB_I64((long long)max) };
	struct claim_arg c = { out, 0, max };
	size_t i;
	int rc;

	*n = 0;
	if ((rc = db_begin(d)) != 0)
		return rc;
	if ((rc = db_query(d, pick, v, 2, row_webhook, &c)) != 0)
		goto fail;
	for (i = 0; i < c.n; i++) {
		struct db_val u[] = { DB_I64(now + lease_ms), DB_I64(out[i].id) };
		if ((rc = db_exec(d, lease, u, 2, NULL)) != 0)
			goto fail;
	}
	if ((rc = db_commit(d)) != 0)
		goto fail_free;
	*n = c.n;
	return 0;
fail:
	db_rollback(d);
fail_free:
	for (i = 0; i < c.n; i++)
		webhook_free(&out[i]);
	return rc;
}

/* A webhook was delivered, or given up: forget it. */
int
db_webhook_done(struct db *d, long long id)
{
	static const char sql[] = "DELETE FROM webhooks WHERE id = ?";
	struct db_val v[] = { DB_I64(id) };

	return db_exec(d, sql, v, 1, NULL);
}

/* A webhook failed: try again at next_at_ms, remembering why. */
int
db_webhook_retry(struct db *d, long long id, int attempts, int64_t next_at_ms,
    const char *error)
{
	static const char sql[] = "UPDATE webhooks SET attempts = ?, next_at_ms = ?,"
	    " last_error = LEFT(?, 200) WHERE id = ?";
	struct db_val v[] = { DB_I64(attempts), DB_I64(next_at_ms), DB_STR(error),
	    DB_I64(id) };

	return db_exec(d, sql, v, 4, NULL);
}

void
webhook_free(struct webhook *h)
{
	free(h->body);
	h->body = NULL;
}
