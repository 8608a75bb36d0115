/* db/db.h: durable store (MariaDB) and shared cache (memcached) APIs. */
#ifndef SOCKUDO_DB_H
#define SOCKUDO_DB_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

struct config;
struct app;

/*
 * Return convention for the whole directory: 0 success, DB_NOTFOUND when
 * the row is not there, DB_UNAVAILABLE when the server cannot be reached
 * (the caller answers 503 and nothing was committed), DB_ERROR for any
 * other failure, DB_CONFLICT for a uniqueness clash the caller handles.
 */
enum {
	DB_OK		= 0,
	DB_NOTFOUND	= 1,
	DB_CONFLICT	= 2,
	DB_UNAVAILABLE	= -2,
	DB_ERROR	= -1,
};

/* ---- mariadb.c: one connection per thread -------------------------- */

struct db;

struct db	*db_new(const struct config *);
void		 db_free(struct db *);
int		 db_ping(struct db *);
int		 db_begin(struct db *);
int		 db_commit(struct db *);
void		 db_rollback(struct db *);
int		 db_savepoint(struct db *, const char *name);
int		 db_rollback_to(struct db *, const char *name);

/* Statement parameters and result columns. */
enum db_type { DBT_NULL, DBT_STR, DBT_I64 };

struct db_val {
	enum db_type	 type;
	const char	*s;		/* DBT_STR: not necessarily NUL-terminated */
	size_t		 len;
	long long	 i;
};

#define DB_STR(x)	((struct db_val){ .type = DBT_STR, .s = (x), .len = (x) ? strlen(x) : 0 })
#define DB_STRN(x, n)	((struct db_val){ .type = DBT_STR, .s = (x), .len = (n) })
#define DB_I64(x)	((struct db_val){ .type = DBT_I64, .i = (x) })
#define DB_NUL		((struct db_val){ .type = DBT_NULL })

/* A result row: columns as strings (NULL for SQL NULL), valid until the next fetch. */
struct db_row {
	char		**col;
	unsigned long	 *len;
	unsigned	  ncol;
};

typedef int (*db_row_fn)(const struct db_row *, void *arg);

/*
 * Each connection prepares a statement once and finds it again by its
 * SQL text (hashed, then compared whole), never by the text's address:
 * SQL may be built in a buffer.  Results are always complete: a column
 * that would not fit its buffer fails the query (DB_ERROR).
 */

int	db_exec(struct db *, const char *sql, const struct db_val *, size_t nparams,
	    unsigned long long *affected);
int	db_exec_id(struct db *, const char *sql, const struct db_val *, size_t nparams,
	    unsigned long long *insert_id);
int	db_query(struct db *, const char *sql, const struct db_val *, size_t nparams,
	    db_row_fn, void *arg);
int	db_query_i64(struct db *, const char *sql, const struct db_val *, size_t,
	    long long *out);
int	db_last_errno(const struct db *);
int	db_retryable(const struct db *, int rc);
/* Column bytes in one page of a listing; the rest is on the next page. */
#define DB_PAGE_MAX_BYTES	(4u << 20)
int	db_page_full(json_object *items, size_t limit, const struct db_row *, size_t *bytes,
	    int *has_more);
int	db_page_fit(struct db *, const char *sizes_sql, const struct db_val *, size_t,
	    size_t *limit);
int	db_run_script(struct db *, const char *sql);

/* ---- apps.c ------------------------------------------------------ */

int	db_app_get(struct db *, const char *column, const char *value, struct app *);
int	db_app_create(struct db *, const struct app *);
int	db_app_list(struct db *, db_row_fn, void *);
int	db_app_set(struct db *, const char *id, const char *field, const char *value);
int	db_app_count(struct db *, long long *);

/* ---- events.c: publish (SPEC 3) and idempotency ------------------ */

/* An idempotency record as first stored. */
struct idem_row {
	unsigned char	 hash[32];
	int		 status;
	char		*response;	/* malloc'd */
};

int	db_idem_claim(struct db *, const char *app_id, const char *key,
	    const unsigned char hash[32], int ttl_s, int64_t now, struct idem_row *);
int	db_idem_store(struct db *, const char *app_id, const char *key, int status,
	    const char *response);
/* One event on one channel, to append to that channel's history. */
struct pub_row {
	const char	*app_id;
	const char	*channel;
	const char	*name;
	const char	*data;
	size_t		 datalen;
	const char	*socket_id;	/* or NULL */
	const char	*message_serial;
	int64_t		 published_at_ms;
};

int	db_messages_append(struct db *, const struct pub_row *, size_t n);
int	db_append_atomic(size_t n);
void	message_serial_new(char out[32], int64_t now);
int	db_idem_expire(struct db *, int64_t now, long long *deleted);
int	db_channel_last_event(struct db *, const char *app_id, const char *channel,
	    json_object **out);

/* ---- history.c (SPEC 5) ----------------------------------------- */

struct history_page {
	const char	*channel;
	int		 newest_first;
	long long	 after;		/* serial to continue after; 0: the start */
	int64_t		 start_ms, end_ms;	/* inclusive; 0 and INT64_MAX: none */
	size_t		 limit;
	json_object	*items;		/* caller's array, filled */
	size_t		 bytes;		/* of column data in it */
	int		 has_more;
	long long	 last_serial;	/* of the last item */
};

int	db_history_page(struct db *, const char *app_id, struct history_page *);
int	db_history_state(struct db *, const char *app_id, const char *channel,
	    json_object *out);
int	db_history_purge(struct db *, const char *app_id, const char *channel,
	    long long before_serial, long long before_ms, long long *purged);
int	db_history_retain(struct db *, const struct app *, int64_t now, long long *deleted);

/* ---- messages.c: versioned messages (SPEC 6) ------------------- */

enum { MSG_CREATE, MSG_UPDATE, MSG_DELETE, MSG_APPEND };

#define VERSION_SERIAL_MAX 48

/* What a change needs to know of a message, read (and locked) first. */
struct msg_head {
	int		 found;
	int		 action;	/* MSG_* of its latest version */
	long long	 version_seq;	/* its latest version's number, from 1 */
	size_t		 datalen;
	long long	 annotation_seq; /* its last annotation's number */
};

/* One mutation: fields left NULL keep their value. */
struct msg_change {
	int		 action;	/* MSG_UPDATE, MSG_DELETE or MSG_APPEND */
	const char	*name;
	const char	*data;		/* append: the text to append */
	size_t		 datalen;
	const char	*client_id;
	const char	*description;
	int64_t		 now;
};

struct version_page {
	const char	*channel;
	const char	*serial;
	int		 newest_first;
	long long	 after;		/* version to continue after; 0: the start */
	size_t		 limit;
	json_object	*items;		/* caller's array, filled */
	size_t		 bytes;		/* of column data in it */
	int		 has_more;
	long long	 last_seq;	/* of the last item */
};

/* A version's columns as msg_version_json reads them, from a messages row... */
#define MSG_VERSION_COLS "name, data, action, version_seq," \
	" COALESCE(version_ms, published_at_ms), version_client_id, version_description"
/* ...and a whole message, as msg_row_json reads it. */
#define MSG_ROW_COLS "message_serial, serial, published_at_ms, " MSG_VERSION_COLS

void	version_serial(char out[VERSION_SERIAL_MAX], const char *message_serial,
	    long long seq);
int	msg_action(const char *);
json_object *msg_version_json(const char *channel, const char *message_serial,
	    const struct db_row *, unsigned col);
json_object *msg_row_json(const char *channel, const struct db_row *);
int	db_message_head(struct db *, const char *app_id, const char *channel,
	    const char *serial, int lock, struct msg_head *);
int	db_message_get(struct db *, const char *app_id, const char *channel,
	    const char *serial, json_object **out);
int	db_message_change(struct db *, const char *app_id, const char *serial,
	    const struct msg_head *, const struct msg_change *, long long *seq);
int	db_message_versions(struct db *, const char *app_id, struct version_page *);

/* ---- annotations.c (SPEC 7) ------------------------------------- */

enum { SUM_TOTAL, SUM_FLAG, SUM_DISTINCT, SUM_UNIQUE, SUM_MULTIPLE };

struct annotation {
	const char	*type;
	int		 summarizer;	/* SUM_* */
	const char	*name;		/* or NULL */
	const char	*client_id;	/* or NULL */
	long long	 count;		/* multiple: 1 or more */
	const char	*data;		/* or NULL */
	size_t		 datalen;
	int64_t		 now;
};

struct annotation_page {
	const char	*serial;	/* the message */
	const char	*type;		/* filters, or NULL */
	const char	*client_id;
	long long	 after;		/* annotation number to continue after */
	size_t		 limit;
	json_object	*items;		/* caller's array, filled */
	size_t		 bytes;		/* of column data in it */
	int		 has_more;
	long long	 last_seq;
};

int	summarizer_of(const char *type);
int	db_annotation_add(struct db *, const char *app_id, const char *serial,
	    const struct msg_head *, const struct annotation *, char aserial[32]);
int	db_annotation_delete(struct db *, const char *app_id, const char *serial,
	    const char *aserial);
int	db_annotation_summary(struct db *, const char *app_id, const char *serial,
	    json_object *summary);
int	db_annotation_list(struct db *, const char *app_id, struct annotation_page *);

/* ---- push.c: push notification records (SPEC 8) ----------------- */

/* A column of db_row_json: its JSON key (NULL: skip) and type 's', 'i' or 'j'. */
struct db_col {
	const char	*key;
	char		 type;
};

json_object *db_row_json(const struct db_row *, const struct db_col *, size_t n);

struct push_device {
	const char	*device_id;
	const char	*client_id;	/* or NULL */
	const char	*platform;	/* apns, fcm, web */
	const char	*token;		/* web: the subscription's JSON */
	const char	*metadata;	/* JSON text or NULL */
};

/* A page of a push listing; a, b, c are the route's filters (NULL: any). */
struct push_page {
	const char	*a, *b, *c;
	long long	 after;
	size_t		 limit;
	json_object	*items;		/* caller's array, filled */
	size_t		 bytes;		/* of column data in it */
	int		 has_more;
	long long	 last;
};

struct push_publish {
	char		 publish_id[32];
	const char	*recipients;	/* JSON text */
	const char	*payload;	/* JSON text: {title, body, data} */
	int64_t		 deliver_at_ms;
	int64_t		 expires_at_ms;	/* 0: never */
	int64_t		 now;
};

enum { PUSH_CREDENTIALS, PUSH_TEMPLATE };

int	db_push_device_put(struct db *, const char *app_id, const struct push_device *,
	    int64_t now, int *created);
int	db_push_device_get(struct db *, const char *app_id, const char *device_id,
	    json_object **out);
int	db_push_device_list(struct db *, const char *app_id, struct push_page *);
int	db_push_device_delete(struct db *, const char *app_id, const char *device_id,
	    const char *client_id, long long *n);
int	db_push_sub_add(struct db *, const char *app_id, const char *channel,
	    const char *device_id, const char *client_id, int64_t now);
int	db_push_sub_list(struct db *, const char *app_id, struct push_page *);
int	db_push_sub_delete(struct db *, const char *app_id, const struct push_page *,
	    long long *deleted);
int	db_push_channels(struct db *, const char *app_id, struct push_page *);
int	db_push_cred_put(struct db *, const char *app_id, const char *provider,
	    const char *sealed, const char *summary, int64_t now);
int	db_push_cred_list(struct db *, const char *app_id, json_object *out);
int	db_push_cred_sealed(struct db *, const char *app_id, const char *provider,
	    char **sealed);
int	db_push_cred_v1(struct db *, db_row_fn, void *arg);
int	db_push_cred_reseal(struct db *, const char *app_id, const char *provider,
	    const char *old, const char *sealed, long long *n);
int	db_push_delete(struct db *, const char *app_id, int what, const char *name,
	    long long *n);
int	db_push_template_put(struct db *, const char *app_id, const char *id,
	    const char *body, int64_t now, int *created);
int	db_push_template_get(struct db *, const char *app_id, const char *id, char **body);
int	db_push_template_list(struct db *, const char *app_id, struct push_page *);
int	db_push_publish_add(struct db *, const char *app_id, const struct push_publish *);
int	db_push_publish_status(struct db *, const char *app_id, const char *publish_id,
	    json_object **out);
int	db_push_publish_cancel(struct db *, const char *app_id, const char *publish_id,
	    char state[32]);
int	db_push_token_gone(struct db *, const char *app_id, const char *platform,
	    const char *token, const char *reason, long long *n);

/* ---- pushwork.c: sockudo-pushd's queue ------------------------- */

enum push_outcome { PUSH_SENT, PUSH_RETRY, PUSH_FAILED, PUSH_GONE, PUSH_EXPIRED };

/* One claimed delivery and, once tried, what became of it. */
struct push_work {
	unsigned long long id;
	char		 app_id[65];
	char		 publish_id[32];
	char		 device_id[129];
	int		 attempts;	/* before this one */
	char		*platform;	/* NULL: the device is gone */
	char		*token;
	int		 device_ok;	/* active */
	char		*payload;
	int64_t		 expires_at_ms;	/* 0: never */
	/* the result */
	enum push_outcome outcome;
	int64_t		 next_at_ms;	/* PUSH_RETRY */
	char		 error[200];
	int		 counted;
};

struct push_batch {
	struct push_work *items;
	size_t		  n, max;
	char		  claim[32];	/* the claim token of its rows */
};

int	db_pushwork_expand(struct db *, int64_t now, int max);
int	db_pushwork_expand_claimed(struct db *, const char *app_id, const char *publish_id,
	    const char *recipients, int64_t now, int64_t lease_ms, const char *claim,
	    long long *planned);
int	db_pushwork_claim(struct db *, int64_t now, int64_t lease_ms, struct push_batch *);
int	db_pushwork_claimed(struct db *, struct push_batch *);
int	db_pushwork_release(struct db *, const char *claim, int64_t now);
int	db_pushwork_record(struct db *, struct push_batch *);
void	push_batch_clear(struct push_batch *);

/* ---- channels.c: channel state (SPEC 4), written by the realtime layer */

/* What a join must respect (0: no limit). */
struct sub_limits {
	int	 members;		/* presence members of a channel */
	int	 socket_channels;	/* channels of one socket */
};

enum { SUB_FULL_CHANNEL = 1, SUB_FULL_SOCKET };

/* What a join or leave changed (for webhooks and presence events). */
struct sub_change {
	int	 refused;		/* a join over a limit: SUB_FULL_*, nothing added */
	int	 added, removed;	/* the socket's subscription came or went */
	int	 occupied, vacated;	/* the channel's first / last subscription */
	int	 member_added;		/* presence: the user's first socket */
	int	 member_removed;	/* presence: the user's last socket left */
	char	*user_id;		/* leave: the member who left, or NULL */
};
typedef int (*db_expired_fn)(const char *app_id, const char *socket_id, void *arg);

int	db_conn_add(struct db *, const char *app_id, const char *socket_id,
	    const char *user_id, int64_t expires_at_ms);
int	db_conn_renew(struct db *, const char *app_id, const char *socket_id,
	    int64_t expires_at_ms);
int	db_conn_remove(struct db *, const char *app_id, const char *socket_id);
int	db_sub_add(struct db *, const char *app_id, const char *channel,
	    const char *socket_id, const char *user_id, const char *user_info,
	    const struct sub_limits *, struct sub_change *);
int	db_sub_remove(struct db *, const char *app_id, const char *channel,
	    const char *socket_id, struct sub_change *);
void	sub_change_free(struct sub_change *);
int	db_sub_get(struct db *, const char *app_id, const char *channel,
	    const char *socket_id, int *found, char **user_id);
int	db_conn_channels(struct db *, const char *app_id, const char *socket_id,
	    json_object *arr);
int	db_user_sockets(struct db *, const char *app_id, const char *user_id,
	    json_object *arr);
int	db_conns_expired(struct db *, int64_t now, int limit, db_expired_fn, void *);
int	db_presence_members(struct db *, const char *app_id, const char *channel,
	    int limit, json_object *members);
int	db_channel_counts(struct db *, const char *app_id, const char *channel,
	    long long *subscriptions, long long *users);
int	db_channels_list(struct db *, const char *app_id, const char *prefix,
	    int want_subs, int want_users, json_object *out);
int	db_channel_users(struct db *, const char *app_id, const char *channel,
	    json_object *out_array);

/* ---- webhooks.c: the webhook queue (issue 5) ------------------------ */

struct webhook {
	long long	 id;
	char		 app_id[65];
	char		*body;		/* malloc'd */
	int		 attempts;	/* failed sends so far */
};

int	db_webhook_add(struct db *, const char *app_id, const char *body);
int	db_webhook_claim(struct db *, int64_t now, int64_t lease_ms, struct webhook *out,
	    size_t max, size_t *n);
int	db_webhook_done(struct db *, long long id);
int	db_webhook_retry(struct db *, long long id, int attempts, int64_t next_at_ms,
	    const char *error);
void	webhook_free(struct webhook *);

/* ---- cache.c: libmemcached, one handle per thread -------------------- */

struct cache;

struct cache	*cache_new(const struct config *);
void		 cache_free(struct cache *);
int		 cache_get(struct cache *, const char *key, char **val, size_t *len);
int		 cache_set(struct cache *, const char *key, const char *val, size_t len,
		    int ttl_s);
int		 cache_delete(struct cache *, const char *key);
int		 cache_incr(struct cache *, const char *key, uint64_t delta, int ttl_s,
		    uint64_t *out);
int		 cache_ping(struct cache *);
void		 cache_key(char out[80], const char *prefix, const char *a,
		    const char *b, const char *c);

/* ---- migrate.c ------------------------------------------------------ */

int	db_migrate(struct db *, const char *schema_dir, int verbose);

#endif
