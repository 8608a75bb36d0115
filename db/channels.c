/* db/channels.c: channel state (SPEC 4): connections, subscriptions, presence. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "db.h"

/* Record a new connection (the realtime layer calls this on connect). */
int
db_conn_add(struct db *d, const char *app_id, const char *socket_id, const char *user_id)
{
	static const char sql[] = "INSERT INTO connections (app_id, socket_id, user_id,"
	    " connected_at_ms) VALUES (?, ?, ?, ?)"
	    " ON DUPLICATE KEY UPDATE user_id = VALUES(user_id)";
	struct db_val v[] = { DB_STR(app_id), DB_STR(socket_id),
	    user_id ? DB_STR(user_id) : DB_NUL, DB_I64(now_ms()) };

	return db_exec(d, sql, v, 4, NULL);
}

/* Forget a connection and every subscription it held. */
int
db_conn_remove(struct db *d, const char *app_id, const char *socket_id)
{
	static const char subs[] = "DELETE FROM channel_subscriptions"
	    " WHERE app_id = ? AND socket_id = ?";
	static const char conn[] = "DELETE FROM connections WHERE app_id = ? AND socket_id = ?";
	struct db_val v[] = { DB_STR(app_id), DB_STR(socket_id) };
	int rc;

	if ((rc = db_begin(d)) != 0)
		return rc;
	if ((rc = db_exec(d, subs, v, 2, NULL)) != 0 ||
	    (rc = db_exec(d, conn, v, 2, NULL)) != 0) {
		db_rollback(d);
		return rc;
	}
	return db_commit(d);
}

/*
 * Subscribe a socket to a channel.  For presence channels user_id (and
 * the member's user_info JSON) make the socket a member; a user with
 * several sockets counts once.
 */
int
db_sub_add(struct db *d, const char *app_id, const char *channel, const char *socket_id,
    const char *user_id, const char *user_info)
{
	static const char sql[] = "INSERT INTO channel_subscriptions (app_id, channel,"
	    " socket_id, user_id, user_info, subscribed_at_ms) VALUES (?, ?, ?, ?, ?, ?)"
	    " ON DUPLICATE KEY UPDATE user_id = VALUES(user_id), user_info = VALUES(user_info)";
	struct db_val v[] = { DB_STR(app_id), DB_STR(channel), DB_STR(socket_id),
	    user_id ? DB_STR(user_id) : DB_NUL, user_info ? DB_STR(user_info) : DB_NUL,
	    DB_I64(now_ms()) };

	return db_exec(d, sql, v, 6, NULL);
}

int
db_sub_remove(struct db *d, const char *app_id, const char *channel, const char *socket_id)
{
	static const char sql[] = "DELETE FROM channel_subscriptions"
	    " WHERE app_id = ? AND channel = ? AND socket_id = ?";
	struct db_val v[] = { DB_STR(app_id), DB_STR(channel), DB_STR(socket_id) };

	return db_exec(d, sql, v, 3, NULL);
}

struct counts {
	long long subs, users;
};

static int
row_counts(const struct db_row *row, void *arg)
{
	struct counts *c = arg;

	c->subs = strtoll(row->col[0], NULL, 10);
	c->users = strtoll(row->col[1], NULL, 10);
	return 1;
}

/* Subscription count and distinct presence users of one channel. */
int
db_channel_counts(struct db *d, const char *app_id, const char *channel,
    long long *subs, long long *users)
{
	static const char sql[] = "SELECT COUNT(*), COUNT(DISTINCT user_id)"
	    " FROM channel_subscriptions WHERE app_id = ? AND channel = ?";
	struct db_val v[] = { DB_STR(app_id), DB_STR(channel) };
	struct counts c = { 0, 0 };
	int rc;

	if ((rc = db_query(d, sql, v, 2, row_counts, &c)) != 0)
		return rc;
	*subs = c.subs;
	*users = c.users;
	return 0;
}

struct list_arg {
	json_object	*out;
	int		 subs, users;
};

static int
row_channel(const struct db_row *row, void *arg)
{
	struct list_arg *la = arg;
	json_object *o = json_object_new_object();

	if (la->subs)
		json_object_object_add(o, "subscription_count",
		    json_object_new_int64(strtoll(row->col[1], NULL, 10)));
	if (la->users)
		json_object_object_add(o, "user_count",
		    json_object_new_int64(strtoll(row->col[2], NULL, 10)));
	json_object_object_add(la->out, row->col[0], o);
	return 0;
}

/*
 * Occupied channels whose name starts with prefix (may be ""), added to
 * out as name -> {subscription_count?, user_count?}.
 */
int
db_channels_list(struct db *d, const char *app_id, const char *prefix, int want_subs,
    int want_users, json_object *out)
{
	static const char sql[] = "SELECT channel, COUNT(*), COUNT(DISTINCT user_id)"
	    " FROM channel_subscriptions WHERE app_id = ? AND channel LIKE ?"
	    " GROUP BY channel ORDER BY channel LIMIT 10000";
	struct list_arg la = { out, want_subs, want_users };
	char like[2 * 200 + 2], *p = like;
	const char *s;

	/* escape LIKE metacharacters: the prefix is data, not a pattern */
	for (s = prefix; *s != '\0' && p < like + sizeof(like) - 3; s++) {
		if (*s == '%' || *s == '_' || *s == '\\')
			*p++ = '\\';
		*p++ = *s;
	}
	*p++ = '%';
	*p = '\0';
	struct db_val v[] = { DB_STR(app_id), DB_STRN(like, strlen(like)) };
	return db_query(d, sql, v, 2, row_channel, &la);
}

static int
row_user(const struct db_row *row, void *arg)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_string(row->col[0]));
	json_object_array_add(arg, o);
	return 0;
}

/* Distinct presence members of a channel as [{"id": ...}]. */
int
db_channel_users(struct db *d, const char *app_id, const char *channel, json_object *arr)
{
	static const char sql[] = "SELECT DISTINCT user_id FROM channel_subscriptions"
	    " WHERE app_id = ? AND channel = ? AND user_id IS NOT NULL ORDER BY user_id"
	    " LIMIT 10000";
	struct db_val v[] = { DB_STR(app_id), DB_STR(channel) };

	return db_query(d, sql, v, 2, row_user, arr);
}

/*
 * Ask the realtime layer to close every socket of a user: the request is
 * recorded durably, and the user's connections leave channel state now so
 * that reads stop counting them.
 */
int
db_user_terminate(struct db *d, const char *app_id, const char *user_id, long long *nconns)
{
	static const char req[] = "INSERT INTO user_terminations (app_id, user_id,"
	    " requested_at_ms) VALUES (?, ?, ?)";
	static const char subs[] = "DELETE FROM channel_subscriptions"
	    " WHERE app_id = ? AND user_id = ?";
	/* the user's sockets on channels where they are not a presence member */
	static const char socks[] = "DELETE s FROM channel_subscriptions s"
	    " JOIN connections c ON c.app_id = s.app_id AND c.socket_id = s.socket_id"
	    " WHERE c.app_id = ? AND c.user_id = ?";
	static const char conns[] = "DELETE FROM connections WHERE app_id = ? AND user_id = ?";
	struct db_val rv[] = { DB_STR(app_id), DB_STR(user_id), DB_I64(now_ms()) };
	unsigned long long n = 0;
	int rc;

	if ((rc = db_begin(d)) != 0)
		return rc;
	if ((rc = db_exec(d, req, rv, 3, NULL)) != 0 ||
	    (rc = db_exec(d, subs, rv, 2, NULL)) != 0 ||
	    (rc = db_exec(d, socks, rv, 2, NULL)) != 0 ||
	    (rc = db_exec(d, conns, rv, 2, &n)) != 0) {
		db_rollback(d);
		return rc;
	}
	if (nconns != NULL)
		*nconns = (long long)n;
	return db_commit(d);
}
