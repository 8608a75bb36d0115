/* db/channels.c: channel state (SPEC 4): connections, subscriptions, presence. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "db.h"

/*
 * Record a connection, or renew it: its lease runs to expires_at_ms
 * (0: never, for tests and tools that write state directly).
 */
int
db_conn_add(struct db *d, const char *app_id, const char *socket_id, const char *user_id,
    int64_t expires_at_ms)
{
	static const char sql[] = "INSERT INTO connections (app_id, socket_id, user_id,"
	    " connected_at_ms, expires_at_ms) VALUES (?, ?, ?, ?, ?)"
	    " ON DUPLICATE KEY UPDATE user_id = VALUES(user_id),"
	    " expires_at_ms = VALUES(expires_at_ms)";
	struct db_val v[] = { DB_STR(app_id), DB_STR(socket_id),
	    user_id ? DB_STR(user_id) : DB_NUL, DB_I64(now_ms()),
	    DB_I64(expires_at_ms ? expires_at_ms : INT64_MAX) };

	return db_exec(d, sql, v, 5, NULL);
}

/*
 * Renew a live connection's lease.  DB_NOTFOUND when it is gone (swept
 * after a lease ran out, or terminated): the caller closes the socket.
 */
int
db_conn_renew(struct db *d, const char *app_id, const char *socket_id, int64_t expires_at_ms)
{
	static const char sql[] = "UPDATE connections SET expires_at_ms = ?"
	    " WHERE app_id = ? AND socket_id = ?";
	static const char there[] = "SELECT COUNT(*) FROM connections"
	    " WHERE app_id = ? AND socket_id = ?";
	struct db_val v[] = { DB_I64(expires_at_ms), DB_STR(app_id), DB_STR(socket_id) };
	unsigned long long n = 0;
	long long c = 0;
	int rc;

	if ((rc = db_exec(d, sql, v, 3, &n)) != 0)
		return rc;
	/* 0 rows changed also when the value was the same: look */
	if (n == 0 && (rc = db_query_i64(d, there, v + 1, 2, &c)) == 0 && c == 0)
		return DB_NOTFOUND;
	return rc;
}

/* Forget a connection row (its subscriptions are left one by one first). */
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

/* Counts of one channel: subscriptions, one user's sockets, members (a third column, if any). */
struct counts {
	long long	subs, users, members;
};

static int
row_counts(const struct db_row *row, void *arg)
{
	struct counts *c = arg;

	c->subs = strtoll(row->col[0], NULL, 10);
	c->users = row->col[1] ? strtoll(row->col[1], NULL, 10) : 0;	/* SUM of nothing */
	c->members = row->ncol > 2 && row->col[2] ? strtoll(row->col[2], NULL, 10) : 0;
	return 1;
}

/*
 * The channel's subscriptions, those of user_id (may be NULL) and its
 * presence members, with the channel's rows locked: joins and leaves of
 * one channel take turns, so exactly one of them sees it become occupied
 * or vacated, one sees a user's first socket arrive or last one go, and
 * the member cap is never passed.
 */
static int
occupancy(struct db *d, const char *app_id, const char *channel, const char *user_id,
    struct counts *o)
{
	static const char sql[] = "SELECT COUNT(*), SUM(user_id = ?), COUNT(DISTINCT user_id)"
	    " FROM channel_subscriptions WHERE app_id = ? AND channel = ? FOR UPDATE";
	struct db_val v[] = { user_id ? DB_STR(user_id) : DB_NUL, DB_STR(app_id),
	    DB_STR(channel) };

	o->subs = o->users = o->members = 0;
	return db_query(d, sql, v, 3, row_counts, o);
}

/*
 * Whether the socket may take one more channel: it is on fewer than max,
 * or already on this one.  A socket's requests come one at a time
 * (Pushpin waits for each answer), so its count cannot race.
 */
static int
socket_has_room(struct db *d, const char *app_id, const char *channel,
    const char *socket_id, int max, int *room)
{
	static const char sql[] = "SELECT COUNT(*), SUM(channel = ?), 0"
	    " FROM channel_subscriptions WHERE app_id = ? AND socket_id = ?";
	struct db_val v[] = { DB_STR(channel), DB_STR(app_id), DB_STR(socket_id) };
	struct counts c = { 0, 0, 0 };
	int rc;

	*room = 1;
	if (max <= 0)
		return 0;
	if ((rc = db_query(d, sql, v, 3, row_counts, &c)) == 0)
		*room = c.subs < max || c.users > 0;
	return rc;
}

/*
 * Subscribe a socket to a channel.  For presence channels user_id (and
 * the member's user_info JSON) make the socket a member; a user with
 * several sockets counts once.  Subscribing again is not an error.
 * lim (may be NULL) caps a presence channel's members and a socket's
 * channels: over either, nothing is added and chg->refused says which.
 * With chg, also say what the join changed (the caller holds a
 * transaction to make that exact).
 */
int
db_sub_add(struct db *d, const char *app_id, const char *channel, const char *socket_id,
    const char *user_id, const char *user_info, const struct sub_limits *lim,
    struct sub_change *chg)
{
	/*
	 * A socket already on the channel keeps its first membership: a
	 * second subscribe, even signed for another user, changes nothing
	 * (else a member could be swapped without anyone being told).
	 */
	static const char sql[] = "INSERT IGNORE INTO channel_subscriptions (app_id, channel,"
	    " socket_id, user_id, user_info, subscribed_at_ms) VALUES (?, ?, ?, ?, ?, ?)";
	struct db_val v[] = { DB_STR(app_id), DB_STR(channel), DB_STR(socket_id),
	    user_id ? DB_STR(user_id) : DB_NUL, user_info ? DB_STR(user_info) : DB_NUL,
	    DB_I64(now_ms()) };
	struct counts before;
	unsigned long long n = 0;
	int rc, room = 1;

	if (chg != NULL) {
		memset(chg, 0, sizeof(*chg));
		if ((rc = occupancy(d, app_id, channel, user_id, &before)) != 0)
			return rc;
	}
	if (lim != NULL && chg != NULL) {
		if ((rc = socket_has_room(d, app_id, channel, socket_id, lim->socket_channels,
		    &room)) != 0)
			return rc;
		if (!room) {
			chg->refused = SUB_FULL_SOCKET;
			return 0;
		}
		/* a new member of a full channel (a member's next socket is welcome) */
		if (user_id != NULL && lim->members > 0 && before.users == 0 &&
		    before.members >= lim->members) {
			chg->refused = SUB_FULL_CHANNEL;
			return 0;
		}
	}
	if ((rc = db_exec(d, sql, v, 6, &n)) != 0 || chg == NULL)
		return rc;
	chg->added = n == 1;	/* 0: it was there already */
	chg->occupied = chg->added && before.subs == 0;
	chg->member_added = chg->added && user_id != NULL && before.users == 0;
	return 0;
}

struct sub_get {
	int	 found;
	char	*user_id;
};

static int
row_sub(const struct db_row *row, void *arg)
{
	struct sub_get *g = arg;

	g->found = 1;
	g->user_id = row->col[0] ? strdup(row->col[0]) : NULL;
	return 1;
}

/*
 * Unsubscribe a socket from a channel; not subscribed is not an error.
 * With chg, say what the leave changed (chg->user_id, the member who
 * left, is malloc'd; sub_change_free() frees it).
 */
int
db_sub_remove(struct db *d, const char *app_id, const char *channel, const char *socket_id,
    struct sub_change *chg)
{
	static const char mine[] = "SELECT user_id FROM channel_subscriptions"
	    " WHERE app_id = ? AND channel = ? AND socket_id = ? FOR UPDATE";
	static const char sql[] = "DELETE FROM channel_subscriptions"
	    " WHERE app_id = ? AND channel = ? AND socket_id = ?";
	struct db_val v[] = { DB_STR(app_id), DB_STR(channel), DB_STR(socket_id) };
	struct counts before, after;
	struct sub_get mine_row = { 0, NULL };
	unsigned long long n = 0;
	int rc;

	if (chg == NULL)
		return db_exec(d, sql, v, 3, NULL);
	memset(chg, 0, sizeof(*chg));
	/* lock the channel first, as a join does: one order, no deadlock */
	if ((rc = occupancy(d, app_id, channel, NULL, &before)) != 0 ||
	    (rc = db_query(d, mine, v, 3, row_sub, &mine_row)) != 0 ||
	    (rc = db_exec(d, sql, v, 3, &n)) != 0)
		goto out;
	if (n == 0)
		goto out;
	chg->removed = 1;
	chg->vacated = before.subs == 1;	/* it was the last one */
	if (mine_row.user_id != NULL) {
		if ((rc = occupancy(d, app_id, channel, mine_row.user_id, &after)) != 0)
			goto out;
		chg->member_removed = after.users == 0;
		chg->user_id = mine_row.user_id;
		mine_row.user_id = NULL;
	}
out:
	free(mine_row.user_id);
	return rc;
}

void
sub_change_free(struct sub_change *chg)
{
	free(chg->user_id);
	chg->user_id = NULL;
}

/* Whether a socket is on a channel, and as which presence member (malloc'd, or NULL). */
int
db_sub_get(struct db *d, const char *app_id, const char *channel, const char *socket_id,
    int *found, char **user_id)
{
	static const char sql[] = "SELECT user_id FROM channel_subscriptions"
	    " WHERE app_id = ? AND channel = ? AND socket_id = ?";
	struct db_val v[] = { DB_STR(app_id), DB_STR(channel), DB_STR(socket_id) };
	struct sub_get g = { 0, NULL };
	int rc;

	rc = db_query(d, sql, v, 3, row_sub, &g);
	*found = g.found;
	*user_id = g.user_id;
	return rc;
}

static int
row_string(const struct db_row *row, void *arg)
{
	json_object_array_add(arg, json_object_new_string(row->col[0]));
	return 0;
}

/* The channels a socket is subscribed to, appended to arr as strings. */
int
db_conn_channels(struct db *d, const char *app_id, const char *socket_id, json_object *arr)
{
	static const char sql[] = "SELECT channel FROM channel_subscriptions"
	    " WHERE app_id = ? AND socket_id = ? ORDER BY channel";
	struct db_val v[] = { DB_STR(app_id), DB_STR(socket_id) };

	return db_query(d, sql, v, 2, row_string, arr);
}

/*
 * A user's sockets: those signed in as the user and those that are the
 * user's presence member on some channel, appended to arr.
 */
int
db_user_sockets(struct db *d, const char *app_id, const char *user_id, json_object *arr)
{
	static const char sql[] = "SELECT socket_id FROM connections"
	    " WHERE app_id = ? AND user_id = ?"
	    " UNION SELECT socket_id FROM channel_subscriptions"
	    " WHERE app_id = ? AND user_id = ?";
	struct db_val v[] = { DB_STR(app_id), DB_STR(user_id), DB_STR(app_id),
	    DB_STR(user_id) };

	return db_query(d, sql, v, 4, row_string, arr);
}

struct expired_arg {
	db_expired_fn	 fn;
	void		*arg;
};

static int
row_expired(const struct db_row *row, void *arg)
{
	struct expired_arg *e = arg;

	return e->fn(row->col[0], row->col[1], e->arg);
}

/* Up to limit connections whose lease ended before now: fn(app_id, socket_id). */
int
db_conns_expired(struct db *d, int64_t now, int limit, db_expired_fn fn, void *arg)
{
	static const char sql[] = "SELECT app_id, socket_id FROM connections"
	    " WHERE expires_at_ms < ? ORDER BY expires_at_ms LIMIT ?";
	struct db_val v[] = { DB_I64(now), DB_I64(limit) };
	struct expired_arg e = { fn, arg };

	return db_query(d, sql, v, 2, row_expired, &e);
}

static int
row_member(const struct db_row *row, void *arg)
{
	json_object *members = arg, *info = NULL;

	if (row->col[1] != NULL)
		info = json_tokener_parse(row->col[1]);
	json_object_object_add(members, row->col[0], info);
	return 0;
}

/*
 * A presence channel's members as {user_id: user_info}, at most limit
 * of them (Pusher caps presence channels at 100 members).
 */
int
db_presence_members(struct db *d, const char *app_id, const char *channel, int limit,
    json_object *members)
{
	static const char sql[] = "SELECT user_id, MIN(user_info)"
	    " FROM channel_subscriptions WHERE app_id = ? AND channel = ?"
	    " AND user_id IS NOT NULL GROUP BY user_id ORDER BY user_id LIMIT ?";
	struct db_val v[] = { DB_STR(app_id), DB_STR(channel), DB_I64(limit) };

	return db_query(d, sql, v, 3, row_member, members);
}

/* Subscription count and distinct presence users of one channel. */
int
db_channel_counts(struct db *d, const char *app_id, const char *channel,
    long long *subs, long long *users)
{
	static const char sql[] = "SELECT COUNT(*), COUNT(DISTINCT user_id)"
	    " FROM channel_subscriptions WHERE app_id = ? AND channel = ?";
	struct db_val v[] = { DB_STR(app_id), DB_STR(channel) };
	struct counts c = { 0, 0, 0 };
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
