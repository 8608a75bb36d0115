/* db/mariadb.c: one MariaDB connection per thread, prepared once, reconnected. */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mysql.h>
#include <errmsg.h>
#include <mysqld_error.h>

#include "app/app.h"
#include "db.h"

#define MAX_STMTS 128
#define MAX_PARAMS 128	/* a 16-row INSERT of 7 columns */

/*
 * A prepared statement, found again by its text: by hash, then compared
 * whole against our own copy, so SQL built in a buffer (whose address is
 * reused for other text) can never run a statement prepared for another.
 */
struct stmt_slot {
	uint64_t	 hash;
	char		*sql;		/* owned copy */
	MYSQL_STMT	*stmt;
};

struct db {
	const struct config	*cfg;
	MYSQL			*my;
	int			 in_tx;
	int			 last_errno;
	struct stmt_slot	 stmts[MAX_STMTS];
	size_t			 nstmts;
};

static void
db_disconnect(struct db *d)
{
	size_t i;

	for (i = 0; i < d->nstmts; i++) {
		mysql_stmt_close(d->stmts[i].stmt);
		free(d->stmts[i].sql);
	}
	d->nstmts = 0;
	if (d->my != NULL)
		mysql_close(d->my);
	d->my = NULL;
	d->in_tx = 0;
}

/* Errors that mean the connection, not the statement, failed. */
static int
is_conn_error(unsigned int e)
{
	return e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST ||
	    e == CR_CONNECTION_ERROR || e == CR_CONN_HOST_ERROR ||
	    e == CR_SERVER_LOST_EXTENDED || e == ER_CONNECTION_KILLED ||
	    e == ER_SERVER_SHUTDOWN || e == CR_COMMANDS_OUT_OF_SYNC ||
	    e == ER_QUERY_INTERRUPTED || e == CR_UNKNOWN_ERROR;
}

static int
db_connect(struct db *d)
{
	const struct config *c = d->cfg;
	unsigned int ct = (unsigned)c->db_connect_timeout, rw = (unsigned)c->db_rw_timeout;
	my_bool off = 0;

	if (d->my != NULL)
		return 0;
	if ((d->my = mysql_init(NULL)) == NULL)
		return DB_ERROR;
	mysql_options(d->my, MYSQL_OPT_CONNECT_TIMEOUT, &ct);
	mysql_options(d->my, MYSQL_OPT_READ_TIMEOUT, &rw);
	mysql_options(d->my, MYSQL_OPT_WRITE_TIMEOUT, &rw);
	mysql_options(d->my, MYSQL_OPT_RECONNECT, &off);	/* we re-prepare ourselves */
	mysql_options(d->my, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	mysql_options(d->my, MYSQL_INIT_COMMAND,
	    "SET SESSION sql_mode='STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'");
	mysql_options(d->my, MYSQL_INIT_COMMAND,
	    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED");
	if (mysql_real_connect(d->my, *c->db_socket ? NULL : c->db_host,
	    c->db_user, c->db_password, c->db_name,
	    *c->db_socket ? 0 : (unsigned)c->db_port,
	    *c->db_socket ? c->db_socket : NULL, 0) == NULL) {
		d->last_errno = (int)mysql_errno(d->my);
		log_warn("mariadb: connect: %s", mysql_error(d->my));
		db_disconnect(d);
		return DB_UNAVAILABLE;
	}
	return 0;
}

/* A handle for this thread; connects lazily, so it never fails for a down server. */
struct db *
db_new(const struct config *c)
{
	struct db *d;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	d->cfg = c;
	(void)db_connect(d);
	return d;
}

void
db_free(struct db *d)
{
	if (d == NULL)
		return;
	db_disconnect(d);
	free(d);
}

int
db_last_errno(const struct db *d)
{
	return d->last_errno;
}

/*
 * Whether a failed transaction may simply be run again: it lost a
 * deadlock or waited too long for a lock (1213, 1205), so nothing of it
 * was committed.
 */
int
db_retryable(const struct db *d, int rc)
{
	return rc == DB_ERROR && (d->last_errno == 1213 || d->last_errno == 1205);
}

/*
 * For a listing's row callback: whether the page in items is full before
 * row, by count (limit) or by size (DB_PAGE_MAX_BYTES of column data,
 * counted in *bytes; the first row always fits).  Listings ask for
 * limit + 1 rows; a row that does not fit only says there is more
 * (*has_more), and stops the fetch.
 */
int
db_page_full(json_object *items, size_t limit, const struct db_row *row, size_t *bytes,
    int *has_more)
{
	size_t n = (size_t)json_object_array_length(items), add = 0;
	unsigned i;

	for (i = 0; i < row->ncol; i++)
		add += row->col[i] != NULL ? row->len[i] : 0;
	if (n < limit && (n == 0 || add <= DB_PAGE_MAX_BYTES - *bytes)) {
		*bytes += add;
		return 0;
	}
	*has_more = 1;
	return 1;
}

static int
row_size(const struct db_row *row, void *arg)
{
	size_t *fit = arg;

	if (fit[1] > 0 && (size_t)strtoull(row->col[0], NULL, 10) > DB_PAGE_MAX_BYTES - fit[1])
		return 1;
	fit[1] += (size_t)strtoull(row->col[0], NULL, 10);
	fit[0]++;
	return 0;
}

/*
 * Before a page of rows that may each be large (a message grown to a
 * MiB by appends): sizes_sql gives each candidate row's size, in the
 * page's order, up to *limit rows; *limit becomes how many fit
 * DB_PAGE_MAX_BYTES (at least one), so the page's query never makes the
 * client library hold more than that.
 */
int
db_page_fit(struct db *d, const char *sizes_sql, const struct db_val *v, size_t n,
    size_t *limit)
{
	size_t fit[2] = { 0, 0 };	/* rows, bytes */
	int rc;

	if ((rc = db_query(d, sizes_sql, v, n, row_size, fit)) != 0)
		return rc;
	if (fit[0] > 0 && fit[0] < *limit)
		*limit = fit[0];
	return 0;
}

/* Map a failure to the directory's codes, dropping a broken connection. */
static int
db_fail(struct db *d, unsigned int e, const char *what, const char *msg)
{
	d->last_errno = (int)e;
	if (is_conn_error(e)) {
		log_warn("mariadb: %s: connection lost: %s", what, msg);
		db_disconnect(d);
		return DB_UNAVAILABLE;
	}
	if (e == ER_DUP_ENTRY)
		return DB_CONFLICT;
	if (e == ER_LOCK_DEADLOCK || e == ER_LOCK_WAIT_TIMEOUT)
		log_info("mariadb: %s: %s", what, msg);
	else
		log_error("mariadb: %s: %s", what, msg);
	return DB_ERROR;
}

/* FNV-1a: cheap, and the full compare after it settles any collision */
static uint64_t
sql_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static MYSQL_STMT *
db_stmt(struct db *d, const char *sql, int *rc)
{
	uint64_t h = sql_hash(sql);
	MYSQL_STMT *st;
	char *copy;
	size_t i;

	for (i = 0; i < d->nstmts; i++)
		if (d->stmts[i].hash == h && strcmp(d->stmts[i].sql, sql) == 0)
			return d->stmts[i].stmt;
	if ((st = mysql_stmt_init(d->my)) == NULL) {
		*rc = DB_ERROR;
		return NULL;
	}
	if (mysql_stmt_prepare(st, sql, strlen(sql)) != 0) {
		*rc = db_fail(d, mysql_stmt_errno(st), "prepare", mysql_stmt_error(st));
		mysql_stmt_close(st);
		return NULL;
	}
	if (d->nstmts == MAX_STMTS || (copy = strdup(sql)) == NULL) {
		log_error("mariadb: more than %d distinct statements, or out of memory",
		    MAX_STMTS);
		mysql_stmt_close(st);
		*rc = DB_ERROR;
		return NULL;
	}
	d->stmts[d->nstmts].hash = h;
	d->stmts[d->nstmts].sql = copy;
	d->stmts[d->nstmts++].stmt = st;
	return st;
}

static void
bind_params(MYSQL_BIND *b, const struct db_val *v, size_t n)
{
	size_t i;

	memset(b, 0, sizeof(*b) * n);
	for (i = 0; i < n; i++) {
		switch (v[i].type) {
		case DBT_NULL:
			b[i].buffer_type = MYSQL_TYPE_NULL;
			break;
		case DBT_STR:
			b[i].buffer_type = MYSQL_TYPE_STRING;
			b[i].buffer = (void *)(v[i].s ? v[i].s : "");
			b[i].buffer_length = v[i].len;
			b[i].length_value = v[i].len;
			b[i].length = &b[i].length_value;
			break;
		case DBT_I64:
			b[i].buffer_type = MYSQL_TYPE_LONGLONG;
			b[i].buffer = (void *)&v[i].i;
			break;
		}
	}
}

/* Prepare (once), bind and execute; the statement is left for fetching. */
static int
db_run(struct db *d, const char *sql, const struct db_val *v, size_t n,
    MYSQL_STMT **out)
{
	MYSQL_BIND b[MAX_PARAMS];	/* 14 KiB: thread stacks are 8 MiB */
	MYSQL_STMT *st;
	int rc = DB_ERROR, attempt;

	if (n > MAX_PARAMS)
		return DB_ERROR;
	/*
	 * Outside a transaction a lost connection is retried once on a new
	 * one: the server may simply have restarted since our last request.
	 */
	for (attempt = 0; attempt < 2; attempt++) {
		if ((rc = db_connect(d)) != 0)
			return rc;
		if ((st = db_stmt(d, sql, &rc)) == NULL)
			goto retry;
		bind_params(b, v, n);
		if (mysql_stmt_bind_param(st, b) != 0) {
			rc = db_fail(d, mysql_stmt_errno(st), "bind", mysql_stmt_error(st));
			return rc;
		}
		if (mysql_stmt_execute(st) != 0) {
			rc = db_fail(d, mysql_stmt_errno(st), "execute", mysql_stmt_error(st));
			goto retry;
		}
		*out = st;
		return 0;
retry:
		if (rc != DB_UNAVAILABLE || d->in_tx)
			return rc;
	}
	return rc;
}

/* Execute a statement that returns no rows. */
int
db_exec(struct db *d, const char *sql, const struct db_val *v, size_t n,
    unsigned long long *affected)
{
	MYSQL_STMT *st;
	int rc;

	if ((rc = db_run(d, sql, v, n, &st)) != 0)
		return rc;
	if (affected != NULL)
		*affected = mysql_stmt_affected_rows(st);
	return 0;
}

/* Execute and report the statement's LAST_INSERT_ID. */
int
db_exec_id(struct db *d, const char *sql, const struct db_val *v, size_t n,
    unsigned long long *id)
{
	MYSQL_STMT *st;
	int rc;

	if ((rc = db_run(d, sql, v, n, &st)) != 0)
		return rc;
	*id = mysql_stmt_insert_id(st);
	return 0;
}

/*
 * Execute a query and call fn for each row (columns as NUL-terminated
 * strings, NULL for SQL NULL).  fn returning non-zero stops early.
 */
int
db_query(struct db *d, const char *sql, const struct db_val *v, size_t n,
    db_row_fn fn, void *arg)
{
	MYSQL_STMT *st;
	MYSQL_RES *meta = NULL;
	MYSQL_BIND *rb = NULL;
	MYSQL_FIELD *f;
	struct db_row row = { 0 };
	my_bool *nulls = NULL, upd = 1;
	unsigned i, ncol;
	int rc, frc;

	if ((rc = db_run(d, sql, v, n, &st)) != 0)
		return rc;
	rc = DB_ERROR;
	mysql_stmt_attr_set(st, STMT_ATTR_UPDATE_MAX_LENGTH, &upd);
	if (mysql_stmt_store_result(st) != 0) {
		rc = db_fail(d, mysql_stmt_errno(st), "store", mysql_stmt_error(st));
		goto out;
	}
	if ((meta = mysql_stmt_result_metadata(st)) == NULL)
		goto out;
	ncol = mysql_num_fields(meta);
	f = mysql_fetch_fields(meta);
	rb = calloc(ncol, sizeof(*rb));
	nulls = calloc(ncol, sizeof(*nulls));
	row.col = calloc(ncol, sizeof(*row.col));
	row.len = calloc(ncol, sizeof(*row.len));
	row.ncol = ncol;
	if (rb == NULL || nulls == NULL || row.col == NULL || row.len == NULL)
		goto out;
	for (i = 0; i < ncol; i++) {
		rb[i].buffer_type = MYSQL_TYPE_STRING;
		rb[i].buffer_length = f[i].max_length + 1;
		if ((rb[i].buffer = malloc(rb[i].buffer_length)) == NULL)
			goto out;
		rb[i].length = &row.len[i];
		rb[i].is_null = &nulls[i];
	}
	if (mysql_stmt_bind_result(st, rb) != 0)
		goto out;
	rc = 0;
	while ((frc = mysql_stmt_fetch(st)) == 0 || frc == MYSQL_DATA_TRUNCATED) {
		/*
		 * Buffers are sized from the result's max_length, so nothing
		 * should be truncated; if a column still is, len is its full
		 * length, past the buffer: fail rather than cut or overrun.
		 */
		for (i = 0; i < ncol; i++)
			if (!nulls[i] && row.len[i] >= rb[i].buffer_length) {
				log_error("mariadb: fetch: column %u truncated (%lu bytes)", i,
				    row.len[i]);
				rc = DB_ERROR;
				goto out;
			}
		for (i = 0; i < ncol; i++) {
			row.col[i] = nulls[i] ? NULL : rb[i].buffer;
			if (!nulls[i])
				((char *)rb[i].buffer)[row.len[i]] = '\0';
		}
		if (fn != NULL && fn(&row, arg) != 0)
			break;
	}
	if (frc == 1)
		rc = db_fail(d, mysql_stmt_errno(st), "fetch", mysql_stmt_error(st));
out:
	if (rb != NULL)
		for (i = 0; i < row.ncol; i++)
			free(rb[i].buffer);
	free(rb);
	free(nulls);
	free(row.col);
	free(row.len);
	if (meta != NULL)
		mysql_free_result(meta);
	if (d->my != NULL)
		mysql_stmt_free_result(st);
	return rc;
}

static int
first_i64(const struct db_row *row, void *arg)
{
	long long *out = arg;

	*out = row->col[0] ? strtoll(row->col[0], NULL, 10) : 0;
	return 1;
}

/* A single integer (the first column of the first row); DB_NOTFOUND if no row. */
int
db_query_i64(struct db *d, const char *sql, const struct db_val *v, size_t n,
    long long *out)
{
	long long val = LLONG_MIN;
	int rc;

	if ((rc = db_query(d, sql, v, n, first_i64, &val)) != 0)
		return rc;
	if (val == LLONG_MIN)
		return DB_NOTFOUND;
	*out = val;
	return 0;
}

static int
db_simple(struct db *d, const char *sql)
{
	int rc;

	if ((rc = db_connect(d)) != 0)
		return rc;
	if (mysql_query(d->my, sql) != 0)
		return db_fail(d, mysql_errno(d->my), sql, mysql_error(d->my));
	return 0;
}

/* A round trip; a connection lost since the last use is replaced once. */
int
db_ping(struct db *d)
{
	int rc, attempt;

	for (attempt = 0; attempt < 2; attempt++) {
		if ((rc = db_connect(d)) != 0)
			return rc;
		if (mysql_ping(d->my) == 0)
			return 0;
		rc = db_fail(d, mysql_errno(d->my), "ping", mysql_error(d->my));
		if (rc != DB_UNAVAILABLE)
			return rc;
	}
	return rc;
}

/* Start a transaction; a stale connection is replaced first (nothing to lose yet). */
int
db_begin(struct db *d)
{
	int rc;

	d->in_tx = 0;
	if ((rc = db_simple(d, "START TRANSACTION")) == DB_UNAVAILABLE)
		rc = db_simple(d, "START TRANSACTION");
	if (rc == 0)
		d->in_tx = 1;
	return rc;
}

int
db_commit(struct db *d)
{
	int rc = db_simple(d, "COMMIT");

	d->in_tx = 0;
	return rc;
}

void
db_rollback(struct db *d)
{
	if (d->my != NULL && mysql_rollback(d->my) != 0)
		db_fail(d, mysql_errno(d->my), "rollback", mysql_error(d->my));
	d->in_tx = 0;
}

/* Savepoint names are fixed words of ours, never request data. */
int
db_savepoint(struct db *d, const char *name)
{
	char sql[64];

	snprintf(sql, sizeof(sql), "SAVEPOINT %s", name);
	return db_simple(d, sql);
}

int
db_rollback_to(struct db *d, const char *name)
{
	char sql[64];

	snprintf(sql, sizeof(sql), "ROLLBACK TO SAVEPOINT %s", name);
	return db_simple(d, sql);
}

/*
 * Run a schema file the way the mariadb client would: a statement ends
 * with the delimiter (";" unless a "DELIMITER x" line changes it) at the
 * end of a line; lines that are blank or "--" comments between statements
 * are skipped.
 */
int
db_run_script(struct db *d, const char *sql)
{
	char delim[16] = ";", *buf, *line, *save = NULL, *stmt = NULL;
	size_t len = 0, dl, ll;
	int rc = 0;

	if ((buf = strdup(sql)) == NULL)
		return DB_ERROR;
	for (line = strtok_r(buf, "\n", &save); line != NULL && rc == 0;
	    line = strtok_r(NULL, "\n", &save)) {
		ll = strlen(line);
		while (ll > 0 && (line[ll - 1] == ' ' || line[ll - 1] == '\r' ||
		    line[ll - 1] == '\t'))
			line[--ll] = '\0';
		if (len == 0 && (ll == 0 || strncmp(line + strspn(line, " \t"), "--", 2) == 0))
			continue;
		if (len == 0 && strncasecmp(line, "DELIMITER ", 10) == 0) {
			snprintf(delim, sizeof(delim), "%s", line + 10);
			continue;
		}
		char *grown = realloc(stmt, len + ll + 2);
		if (grown == NULL) {
			rc = DB_ERROR;
			break;
		}
		stmt = grown;
		memcpy(stmt + len, line, ll);
		len += ll;
		stmt[len++] = '\n';
		stmt[len] = '\0';
		dl = strlen(delim);
		if (ll >= dl && strcmp(line + ll - dl, delim) == 0) {
			stmt[len - 1 - dl] = '\0';	/* drop the delimiter */
			rc = db_simple(d, stmt);
			len = 0;
		}
	}
	if (rc == 0 && len > 0 && stmt[strspn(stmt, " \t\n")] != '\0')
		rc = db_simple(d, stmt);		/* a last statement without delimiter */
	free(stmt);
	free(buf);
	return rc;
}
