/*
 * tests/integration/t_store.c: channel state and event storage (db/channels.c,
 * db/events.c) against the real MariaDB named by $SOCKUDO_CONF.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "db/db.h"
#include "tests/unit/tap.h"

static char app_id_buf[40];	/* fresh per run: reruns never see old rows */
static const char *app_id = app_id_buf;

/* ---- helpers ------------------------------------------------------- */

/* db_channel_counts for app_id, -2 on a database error. */
static long long
subs_of(struct db *d, const char *ch, long long *users)
{
	long long s = -1, u = -1;

	if (db_channel_counts(d, app_id, ch, &s, &u) != 0)
		return -2;
	if (users != NULL)
		*users = u;
	return s;
}

static long long
count_rows(struct db *d, const char *sql, const char *a, const char *b)
{
	struct db_val v[] = { DB_STR(app_id), DB_STR(a), DB_STR(b) };
	long long n = -1;

	if (db_query_i64(d, sql, v, b ? 3 : 2, &n) != 0)
		return -2;
	return n;
}

static const char sql_conn_count[] =
    "SELECT COUNT(*) FROM connections WHERE app_id = ? AND socket_id = ?";
static const char sql_sock_subs[] =
    "SELECT COUNT(*) FROM channel_subscriptions WHERE app_id = ? AND socket_id = ?";
static const char sql_msg_count[] =
    "SELECT COUNT(*) FROM messages WHERE app_id = ? AND channel = ?";
static const char sql_msg_max[] =
    "SELECT MAX(serial) FROM messages WHERE app_id = ? AND channel = ?";
static const char sql_serial_of[] =
    "SELECT serial FROM messages WHERE app_id = ? AND message_serial = ?";

/* The channel list as a JSON string ("{...}"), malloc'd; NULL on error. */
static char *
list(struct db *d, const char *prefix, int subs, int users)
{
	json_object *o = json_object_new_object();
	char *s = NULL;

	if (db_channels_list(d, app_id, prefix, subs, users, o) == 0)
		s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

static char *
users_of(struct db *d, const char *ch)
{
	json_object *a = json_object_new_array();
	char *s = NULL;

	if (db_channel_users(d, app_id, ch, a) == 0)
		s = strdup(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN));
	json_object_put(a);
	return s;
}

#define IS_JSON(expr, want, ...) do {					\
	char *j_ = (expr);						\
	is_str(j_, want, __VA_ARGS__);					\
	free(j_);							\
} while (0)

/* ---- channel state -------------------------------------------------- */

static void
test_membership(struct db *d)
{
	long long s, u, n;

	ok(db_conn_add(d, app_id, "1.1", NULL, 0) == 0, "conn 1.1 without a user");
	ok(db_conn_add(d, app_id, "2.2", "alice", 0) == 0, "conn 2.2 alice");
	ok(db_conn_add(d, app_id, "3.3", "alice", 0) == 0, "conn 3.3 alice (second socket)");
	ok(db_conn_add(d, app_id, "4.4", "bob", 0) == 0, "conn 4.4 bob");
	ok(db_conn_add(d, app_id, "4.4", "bob", 0) == 0, "conn_add twice is not an error");
	ok(count_rows(d, sql_conn_count, "4.4", NULL) == 1, "one row for 4.4");

	s = subs_of(d, "presence-room", &u);
	ok(s == 0 && u == 0, "empty channel counts 0/0 (got %lld/%lld)", s, u);

	ok(db_sub_add(d, app_id, "presence-room", "2.2", "alice", "{\"name\":\"A\"}", NULL, NULL) == 0,
	    "alice 2.2 joins presence-room");
	ok(db_sub_add(d, app_id, "presence-room", "3.3", "alice", "{\"name\":\"A\"}", NULL, NULL) == 0,
	    "alice 3.3 joins presence-room");
	ok(db_sub_add(d, app_id, "presence-room", "4.4", "bob", NULL, NULL, NULL) == 0,
	    "bob 4.4 joins presence-room (no user_info)");
	ok(db_sub_add(d, app_id, "presence-room", "4.4", "mallory", "{}", NULL, NULL) == 0,
	    "subscribing again is not an error");
	s = subs_of(d, "presence-room", &u);
	ok(s == 3, "3 subscriptions (got %lld)", s);
	ok(u == 2, "2 users: alice's two sockets count once, and 4.4 is still bob's "
	    "(got %lld)", u);

	ok(db_sub_add(d, app_id, "private-a", "1.1", NULL, NULL, NULL, NULL) == 0, "1.1 -> private-a");
	ok(db_sub_add(d, app_id, "private-ab", "1.1", NULL, NULL, NULL, NULL) == 0, "1.1 -> private-ab");
	ok(db_sub_add(d, app_id, "private-ab", "2.2", NULL, NULL, NULL, NULL) == 0, "2.2 -> private-ab");
	ok(db_sub_add(d, app_id, "privatex", "1.1", NULL, NULL, NULL, NULL) == 0, "1.1 -> privatex");
	s = subs_of(d, "private-ab", &u);
	ok(s == 2 && u == 0, "private-ab: 2 subscriptions, 0 users (got %lld/%lld)", s, u);

	IS_JSON(list(d, "private-", 1, 0),
	    "{\"private-a\":{\"subscription_count\":1},\"private-ab\":{\"subscription_count\":2}}",
	    "list prefix private-: counts, privatex excluded");
	IS_JSON(list(d, "private-", 0, 0), "{\"private-a\":{},\"private-ab\":{}}",
	    "list without info attributes");
	IS_JSON(list(d, "presence-", 1, 1),
	    "{\"presence-room\":{\"subscription_count\":3,\"user_count\":2}}",
	    "list presence- with user_count");
	IS_JSON(list(d, "", 0, 0),
	    "{\"presence-room\":{},\"private-a\":{},\"private-ab\":{},\"privatex\":{}}",
	    "list with the empty prefix: every occupied channel");
	IS_JSON(list(d, "nothing-", 1, 0), "{}", "list with no match is empty");
	IS_JSON(list(d, "PRIVATE-", 0, 0), "{}", "prefix is case-sensitive (binary collation)");

	IS_JSON(users_of(d, "presence-room"), "[{\"id\":\"alice\"},{\"id\":\"bob\"}]",
	    "presence users, distinct and sorted");
	IS_JSON(users_of(d, "private-ab"), "[]", "no users on a channel without members");
	IS_JSON(users_of(d, "presence-empty"), "[]", "no users on an empty channel");

	ok(db_sub_remove(d, app_id, "presence-room", "3.3", NULL) == 0, "alice leaves from 3.3");
	s = subs_of(d, "presence-room", &u);
	ok(s == 2 && u == 2, "alice still present through 2.2 (got %lld/%lld)", s, u);
	ok(db_sub_remove(d, app_id, "presence-room", "2.2", NULL) == 0, "alice leaves from 2.2");
	s = subs_of(d, "presence-room", &u);
	ok(s == 1 && u == 1, "only bob left (got %lld/%lld)", s, u);
	IS_JSON(users_of(d, "presence-room"), "[{\"id\":\"bob\"}]", "users: bob");
	ok(db_sub_remove(d, app_id, "presence-room", "9.9", NULL) == 0,
	    "removing an absent subscription is not an error");

	ok(db_conn_remove(d, app_id, "1.1") == 0, "socket 1.1 disconnects");
	ok(count_rows(d, sql_conn_count, "1.1", NULL) == 0, "connection row gone");
	ok(count_rows(d, sql_sock_subs, "1.1", NULL) == 0, "its subscriptions gone");
	s = subs_of(d, "private-ab", &u);
	ok(s == 1, "private-ab keeps 2.2 (got %lld)", s);
	IS_JSON(list(d, "private", 1, 0), "{\"private-ab\":{\"subscription_count\":1}}",
	    "private-a and privatex no longer occupied");
	ok(db_conn_remove(d, app_id, "1.1") == 0, "removing again is not an error");

	/* bob has 4.4 and is a member: his sockets are found by either way */
	json_object *socks = json_object_new_array();
	ok(db_user_sockets(d, app_id, "bob", socks) == 0 &&
	    json_object_array_length(socks) == 1 &&
	    strcmp(json_object_get_string(json_object_array_get_idx(socks, 0)), "4.4") == 0,
	    "bob's sockets: 4.4");
	json_object_put(socks);
	socks = json_object_new_array();
	ok(db_user_sockets(d, app_id, "nobody", socks) == 0 &&
	    json_object_array_length(socks) == 0, "an unknown user has no sockets");
	json_object_put(socks);
	ok(db_conn_remove(d, app_id, "4.4") == 0, "4.4 disconnects");
	s = subs_of(d, "presence-room", &u);
	ok(s == 0 && u == 0, "presence-room empty (got %lld/%lld)", s, u);
	(void)n;
}

/*
 * What a join or leave changed: exactly one join sees a channel become
 * occupied, one leave sees it vacated, and presence members come and go
 * once per user, not per socket (the webhooks and member events).
 */
static void
test_changes(struct db *d)
{
	struct sub_change c;

	ok(db_sub_add(d, app_id, "presence-c", "5.5", "carol", "{}", NULL, &c) == 0 &&
	    c.added && c.occupied && c.member_added, "first join: occupied, member_added");
	ok(db_sub_add(d, app_id, "presence-c", "5.6", "carol", "{}", NULL, &c) == 0 &&
	    c.added && !c.occupied && !c.member_added,
	    "carol's second socket: neither occupied nor member_added");
	ok(db_sub_add(d, app_id, "presence-c", "5.6", "carol", "{}", NULL, &c) == 0 &&
	    !c.added, "the same join again changes nothing");
	ok(db_sub_add(d, app_id, "presence-c", "6.6", "dave", "{}", NULL, &c) == 0 &&
	    c.member_added, "dave: member_added");
	ok(db_sub_remove(d, app_id, "presence-c", "5.5", &c) == 0 && c.removed &&
	    !c.member_removed && !c.vacated, "carol leaves one socket: still a member");
	sub_change_free(&c);
	ok(db_sub_remove(d, app_id, "presence-c", "5.6", &c) == 0 && c.member_removed &&
	    c.user_id != NULL && strcmp(c.user_id, "carol") == 0 && !c.vacated,
	    "carol's last socket: member_removed carol");
	sub_change_free(&c);
	ok(db_sub_remove(d, app_id, "presence-c", "5.6", &c) == 0 && !c.removed &&
	    !c.member_removed, "leaving again changes nothing");
	sub_change_free(&c);
	ok(db_sub_remove(d, app_id, "presence-c", "6.6", &c) == 0 && c.member_removed &&
	    c.vacated, "dave, the last one: member_removed and vacated");
	sub_change_free(&c);

	/* user ids are compared byte for byte: "bob" and "bob " are two users */
	ok(db_sub_add(d, app_id, "presence-s", "7.1", "bob", NULL, NULL, &c) == 0 && c.member_added,
	    "bob joins");
	ok(db_sub_add(d, app_id, "presence-s", "7.2", "bob ", NULL, NULL, &c) == 0 && c.member_added,
	    "\"bob \" is another member");
	ok(db_sub_remove(d, app_id, "presence-s", "7.2", &c) == 0 && c.member_removed &&
	    strcmp(c.user_id, "bob ") == 0, "\"bob \" leaves: member_removed");
	sub_change_free(&c);
	ok(db_sub_remove(d, app_id, "presence-s", "7.1", &c) == 0 && c.member_removed &&
	    strcmp(c.user_id, "bob") == 0, "bob leaves: member_removed");
	sub_change_free(&c);
}

static void
test_like_escape(struct db *d)
{
	static const char *const chans[] = { "a_b-1", "axb-1", "a%z", "abz", "a\\q", "aXq" };
	size_t i;

	for (i = 0; i < sizeof(chans) / sizeof(chans[0]); i++)
		db_sub_add(d, app_id, chans[i], "7.7", NULL, NULL, NULL, NULL);
	IS_JSON(list(d, "a_", 0, 0), "{\"a_b-1\":{}}", "'_' in the prefix is literal");
	IS_JSON(list(d, "a%", 0, 0), "{\"a%z\":{}}", "'%%' in the prefix is literal");
	IS_JSON(list(d, "a\\", 0, 0), "{\"a\\\\q\":{}}", "'\\' in the prefix is literal");
	IS_JSON(list(d, "a", 1, 0),
	    "{\"a%z\":{\"subscription_count\":1},\"aXq\":{\"subscription_count\":1},"
	    "\"a\\\\q\":{\"subscription_count\":1},\"a_b-1\":{\"subscription_count\":1},"
	    "\"abz\":{\"subscription_count\":1},\"axb-1\":{\"subscription_count\":1}}",
	    "plain prefix matches all six, in byte order");
	ok(db_conn_remove(d, app_id, "7.7") == 0, "7.7 cleaned up");
	IS_JSON(list(d, "a", 0, 0), "{}", "nothing left under a");
}

static void
test_apps_isolated(struct db *d)
{
	char other[64];
	long long s, u;

	snprintf(other, sizeof(other), "%s-other", app_id);
	ok(db_sub_add(d, other, "shared-ch", "1.2", NULL, NULL, NULL, NULL) == 0, "other app subscribes");
	s = subs_of(d, "shared-ch", &u);
	ok(s == 0, "another app's subscriptions are not counted (got %lld)", s);
	db_conn_remove(d, other, "1.2");
}

/* ---- events --------------------------------------------------------- */

static int
b32_index(char c)
{
	static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	const char *p = c ? strchr(b32, c) : NULL;

	return p ? (int)(p - b32) : -1;
}

static void
test_message_serial(void)
{
	char a[32], b[32], prev[32];
	int64_t t = 1700000000123LL, dec;
	size_t i;
	int bad = 0, dup = 0, order = 0;
	static char seen[2000][32];

	message_serial_new(a, t);
	ok(strlen(a) == 26, "26 characters (got %zu: %s)", strlen(a), a);
	for (i = 0; i < 26; i++)
		if (b32_index(a[i]) < 0)
			bad++;
	ok(bad == 0, "Crockford base32 alphabet only (no I, L, O, U, lower case)");
	for (dec = 0, i = 0; i < 10; i++)
		dec = dec * 32 + b32_index(a[i]);
	ok(dec == t, "first 10 characters encode the time (%lld)", (long long)dec);
	message_serial_new(b, t);
	ok(strncmp(a, b, 10) == 0 && strcmp(a, b) != 0,
	    "same millisecond: same time prefix, different serial");

	for (i = 0; i < 2000; i++) {
		message_serial_new(seen[i], t + (int64_t)i / 3);
		if (i > 0 && strncmp(seen[i - 1], seen[i], 10) > 0)
			order++;
	}
	for (i = 0; i < 2000 && dup == 0; i++) {
		size_t j;
		for (j = i + 1; j < 2000; j++)
			if (strcmp(seen[i], seen[j]) == 0) {
				dup++;
				break;
			}
	}
	ok(dup == 0, "2000 serials are unique");
	ok(order == 0, "serials sort by time");

	strcpy(prev, "");
	order = 0;
	{
		static const int64_t times[] = { 0, 1, 31, 32, 1000, 1353088179000LL,
		    1700000000000LL, 1700000000001LL, 4102444800000LL, (1LL << 48) - 1 };
		for (i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
			message_serial_new(a, times[i]);
			if (strlen(a) != 26 || strcmp(prev, a) >= 0)
				order++;
			strcpy(prev, a);
		}
	}
	ok(order == 0, "strictly increasing across 0 .. 2^48-1 ms");
	message_serial_new(a, now_ms());
	ok(a[0] == '0' || a[0] == '1', "a current time starts with 0 or 1 (%s)", a);
}

/* One event on one channel through db_messages_append. */
static int
insert1(struct db *d, const char *channel, const char *data, size_t len,
    const char *socket_id, const char *ms, int64_t t, long long *serial)
{
	struct pub_row row = { .app_id = app_id, .channel = channel, .name = "ev",
	    .data = data, .datalen = len, .socket_id = socket_id, .message_serial = ms,
	    .published_at_ms = t };
	int rc = db_messages_append(d, &row, 1);

	*serial = rc == 0 ? count_rows(d, sql_serial_of, ms, NULL) : -1;
	return rc;
}

/*
 * A group append: rows of several channels interleaved, more than one
 * multi-row INSERT's worth, get consecutive serials per channel in the
 * order given.
 */
static void
test_append_group(struct db *d)
{
	struct pub_row rows[40];
	char ms[40][32];
	const char *chans[3] = { "group-a", "group-b", "group-c" };
	long long next[3] = { 1, 1, 1 };
	int64_t t = now_ms();
	int i, inorder = 1;

	for (i = 0; i < 40; i++) {
		message_serial_new(ms[i], t + i);
		rows[i] = (struct pub_row){ .app_id = app_id, .channel = chans[i % 3],
		    .name = "ev", .data = "x", .datalen = 1, .message_serial = ms[i],
		    .published_at_ms = t };
	}
	ok(db_begin(d) == 0, "begin group append");
	ok(db_messages_append(d, rows, 40) == 0, "append 40 rows over 3 channels");
	ok(db_commit(d) == 0, "commit group append");
	for (i = 0; i < 40; i++)
		if (count_rows(d, sql_serial_of, ms[i], NULL) != next[i % 3]++)
			inorder = 0;
	ok(inorder, "each channel's rows got 1, 2, 3, ... in the order given");
	ok(count_rows(d, sql_msg_count, "group-a", NULL) == 14, "14 rows on group-a");
	ok(count_rows(d, sql_msg_max, "group-c", NULL) == 13, "group-c ends at serial 13");
}

static void
test_messages(struct db *d)
{
	char ms[32];
	long long serial, n;
	int64_t t = now_ms();
	int i, rc;

	ok(db_begin(d) == 0, "begin");
	for (i = 1; i <= 3; i++) {
		message_serial_new(ms, t + i);
		serial = -1;
		rc = insert1(d, "history-1", "{\"n\":1}", 7, NULL, ms,
		    t + i, &serial);
		ok(rc == 0 && serial == i, "insert %d on a fresh channel -> serial %lld", i,
		    serial);
	}
	ok(db_commit(d) == 0, "commit");
	ok(count_rows(d, sql_msg_count, "history-1", NULL) == 3, "3 rows stored");
	n = -1;
	ok((n = count_rows(d, sql_msg_max, "history-1", NULL)) == 3, "max serial 3 (%lld)", n);

	ok(db_begin(d) == 0, "begin on another channel");
	message_serial_new(ms, t);
	ok(insert1(d, "history-2", "x", 1, "1.2", ms, t, &serial) == 0
	    && serial == 1, "another channel starts at 1 (got %lld)", serial);
	message_serial_new(ms, t + 10);
	ok(insert1(d, "history-1", "x", 1, NULL, ms, t, &serial) == 0
	    && serial == 4, "history-1 continues at 4 (got %lld)", serial);
	db_rollback(d);
	ok(count_rows(d, sql_msg_count, "history-2", NULL) == 0, "rollback stores nothing");

	ok(db_begin(d) == 0, "begin after rollback");
	message_serial_new(ms, t + 11);
	ok(insert1(d, "history-1", "x", 1, NULL, ms, t, &serial) == 0
	    && serial == 4, "a rolled-back serial is reused: no gap (got %lld)", serial);
	ok(db_commit(d) == 0, "commit");

	/* binary data with a NUL goes in by length */
	ok(db_begin(d) == 0, "begin");
	message_serial_new(ms, t + 12);
	ok(insert1(d, "history-1", "a\0b", 3, NULL, ms, t, &serial)
	    == 0 && serial == 5, "data with an embedded NUL stored by length");
	/* the same message_serial twice in one app is a conflict */
	rc = insert1(d, "history-3", "x", 1, NULL, ms, t, &serial);
	ok(rc == DB_CONFLICT, "duplicate message_serial -> DB_CONFLICT (got %d)", rc);
	db_rollback(d);
}

static void
test_idempotency(struct db *d)
{
	unsigned char h1[32], h2[32];
	struct idem_row ir;
	int64_t t = now_ms();
	int rc;

	memset(h1, 0xa1, sizeof(h1));
	memset(h2, 0xb2, sizeof(h2));
	h1[0] = 0;	/* a NUL inside the binary hash must survive */

	ok(db_begin(d) == 0, "begin");
	rc = db_idem_claim(d, app_id, "key-1", h1, 60, t, &ir);
	ok(rc == 0, "a new key is claimed (rc %d)", rc);
	free(ir.response);
	ok(db_idem_store(d, app_id, "key-1", 200, "{\"ok\":1}") == 0, "store the answer");
	ok(db_commit(d) == 0, "commit");

	ok(db_begin(d) == 0, "begin");
	rc = db_idem_claim(d, app_id, "key-1", h1, 60, t + 1000, &ir);
	ok(rc == DB_CONFLICT, "same key again -> DB_CONFLICT (rc %d)", rc);
	ok(memcmp(ir.hash, h1, 32) == 0, "stored hash returned");
	ok(ir.status == 200, "stored status returned (%d)", ir.status);
	is_str(ir.response, "{\"ok\":1}", "stored response returned");
	free(ir.response);
	rc = db_idem_claim(d, app_id, "key-1", h2, 60, t + 2000, &ir);
	ok(rc == DB_CONFLICT && memcmp(ir.hash, h1, 32) == 0 && memcmp(ir.hash, h2, 32) != 0,
	    "a different payload sees the first hash (caller answers 409)");
	free(ir.response);
	db_rollback(d);

	rc = db_idem_claim(d, app_id, "key-2", h2, 60, t, &ir);
	ok(rc == 0, "another key is independent (rc %d)", rc);
	free(ir.response);

	{
		char other[64];
		snprintf(other, sizeof(other), "%s-o", app_id);
		rc = db_idem_claim(d, other, "key-1", h1, 60, t, &ir);
		ok(rc == 0, "the same key in another app is new (rc %d)", rc);
		free(ir.response);
	}

	/* past its window the key is free again */
	ok(db_begin(d) == 0, "begin");
	rc = db_idem_claim(d, app_id, "key-1", h2, 60, t + 61 * 1000, &ir);
	ok(rc == 0, "an expired key is claimed anew (rc %d)", rc);
	free(ir.response);
	ok(db_idem_store(d, app_id, "key-1", 201, "{}") == 0, "store the new answer");
	ok(db_commit(d) == 0, "commit");
	rc = db_idem_claim(d, app_id, "key-1", h1, 60, t + 62 * 1000, &ir);
	ok(rc == DB_CONFLICT && memcmp(ir.hash, h2, 32) == 0 && ir.status == 201,
	    "the new record replaced the expired one");
	free(ir.response);
}

/* Remove every row of this run's app ids. */
/*
 * Statements are found again by their text, not its address: two texts
 * built one after the other in the same buffer each run as themselves.
 */
static void
test_stmt_by_text(struct db *d)
{
	char sql[64];
	long long a = -1, b = -1;
	int i;

	for (i = 0; i < 2; i++) {
		snprintf(sql, sizeof(sql), "SELECT %d + ?", i ? 1000 : 1);
		if (db_query_i64(d, sql, (struct db_val[]){ DB_I64(1) }, 1, i ? &b : &a) != 0)
			break;
	}
	ok(a == 2 && b == 1001, "SQL built in one buffer: each text runs itself (%lld, %lld)",
	    a, b);
}

/*
 * App lookups: exact keys (the column's collation pads with spaces), and
 * unknown keys never push a real app out of a worker's cache.
 */
static void
test_app_lookup(struct db *d, const struct config *cfg)
{
	struct worker *w = worker_new(cfg);
	struct app a, got;
	char key[80];
	int i, rc = 0;

	app_defaults(&a);
	snprintf(a.id, sizeof(a.id), "%s-app", app_id);
	snprintf(a.key, sizeof(a.key), "%.40s-key", app_id);
	snprintf(a.secret, sizeof(a.secret), "secret");
	ok(w != NULL && db_app_create(d, &a) == 0, "an app");
	if (w == NULL)
		return;
	snprintf(key, sizeof(key), "%s ", a.key);
	ok(db_app_get(d, "app_key", key, &got) == DB_NOTFOUND, "its key with a trailing"
	    " space is not its key (db)");
	ok(worker_app_by_key(w, key, &got) == 1, "nor through a worker");
	ok(worker_app_by_key(w, a.key, &got) == 0 && strcmp(got.id, a.id) == 0,
	    "its key finds it");
	/* gone from the store: only the worker's cache still knows it */
	(void)db_exec(d, "DELETE FROM apps WHERE id = ?", (struct db_val[]){ DB_STR(a.id) },
	    1, NULL);
	for (i = 0; i < 200 && rc != -1; i++) {
		snprintf(key, sizeof(key), "unknown-%d", i);
		rc = worker_app_by_key(w, key, &got);
	}
	ok(rc == 1, "200 unknown keys are unknown");
	ok(worker_app_by_key(w, a.key, &got) == 0, "the app is still cached after them");
	worker_free(w);
}

/* The caps a join respects: a presence channel's members, a socket's channels. */
static void
test_limits(struct db *d)
{
	struct sub_limits lim = { 2, 3 };
	struct sub_change c;
	char ch[32];
	int i, rc;

	ok(db_begin(d) == 0 && db_sub_add(d, app_id, "presence-cap", "8.1", "ann", "{}", &lim,
	    &c) == 0 && !c.refused && c.member_added && db_commit(d) == 0, "ann joins");
	ok(db_begin(d) == 0 && db_sub_add(d, app_id, "presence-cap", "8.2", "ben", "{}", &lim,
	    &c) == 0 && !c.refused && c.member_added && db_commit(d) == 0, "ben joins: 2 of 2");
	ok(db_begin(d) == 0 && db_sub_add(d, app_id, "presence-cap", "8.3", "cat", "{}", &lim,
	    &c) == 0 && c.refused == SUB_FULL_CHANNEL && !c.added && db_commit(d) == 0,
	    "cat is refused: the channel is full");
	ok(db_begin(d) == 0 && db_sub_add(d, app_id, "presence-cap", "8.4", "ann", "{}", &lim,
	    &c) == 0 && !c.refused && c.added && !c.member_added && db_commit(d) == 0,
	    "ann's second socket is welcome: she is a member already");
	ok(count_rows(d, "SELECT COUNT(DISTINCT user_id) FROM channel_subscriptions"
	    " WHERE app_id = ? AND channel = ?", "presence-cap", NULL) == 2, "two members");

	for (i = 0, rc = 0; i < 3 && rc == 0; i++) {
		snprintf(ch, sizeof(ch), "cap-%d", i);
		rc = db_begin(d) || db_sub_add(d, app_id, ch, "8.9", NULL, NULL, &lim, &c) ||
		    c.refused || db_commit(d);
	}
	ok(rc == 0, "a socket takes 3 channels");
	ok(db_begin(d) == 0 && db_sub_add(d, app_id, "cap-3", "8.9", NULL, NULL, &lim, &c) == 0 &&
	    c.refused == SUB_FULL_SOCKET && db_commit(d) == 0, "its 4th is refused");
	ok(db_begin(d) == 0 && db_sub_add(d, app_id, "cap-1", "8.9", NULL, NULL, &lim, &c) == 0 &&
	    !c.refused && !c.added && db_commit(d) == 0, "one it is on already: not refused");
	ok(count_rows(d, sql_sock_subs, "8.9", NULL) == 3, "it is on 3");
}

static void
cleanup(struct db *d)
{
	static const char *const sql[] = {
		"DELETE FROM channel_subscriptions WHERE app_id LIKE CONCAT(?, '%')",
		"DELETE FROM connections WHERE app_id LIKE CONCAT(?, '%')",
		"DELETE FROM user_terminations WHERE app_id LIKE CONCAT(?, '%')",
		"DELETE FROM messages WHERE app_id LIKE CONCAT(?, '%')",
		"DELETE FROM channel_heads WHERE app_id LIKE CONCAT(?, '%')",
		"DELETE FROM idempotency WHERE app_id LIKE CONCAT(?, '%')",
	};
	struct db_val v[] = { DB_STR(app_id) };
	size_t i;

	for (i = 0; i < sizeof(sql) / sizeof(sql[0]); i++)
		(void)db_exec(d, sql[i], v, 1, NULL);
}

int
main(void)
{
	const char *path = getenv("SOCKUDO_CONF");
	struct config *cfg;
	struct db *d;
	char err[512], hex[17];
	int rc;

	if (path == NULL || *path == '\0') {
		printf("Bail out! SOCKUDO_CONF is not set (run through store.sh)\n");
		return 1;
	}
	if ((cfg = config_new()) == NULL) {
		printf("Bail out! config_new failed\n");
		return 1;
	}
	if (config_load(cfg, path, err, sizeof(err)) != 0) {
		printf("Bail out! %s\n", err);
		config_free(cfg);
		return 1;
	}
	log_set_level("warn");
	if ((d = db_new(cfg)) == NULL || (rc = db_ping(d)) != 0) {
		printf("Bail out! MariaDB does not answer (config %s)\n", path);
		db_free(d);
		config_free(cfg);
		return 1;
	}
	random_hex(hex, 8);
	snprintf(app_id_buf, sizeof(app_id_buf), "t-store-%s", hex);
	printf("# app_id %s\n", app_id);

	test_membership(d);
	test_changes(d);
	test_stmt_by_text(d);
	test_app_lookup(d, cfg);
	test_limits(d);
	test_like_escape(d);
	test_apps_isolated(d);
	test_message_serial();
	test_messages(d);
	test_append_group(d);
	test_idempotency(d);

	if (getenv("T_STORE_KEEP") == NULL)
		cleanup(d);
	db_free(d);
	config_free(cfg);
	return done_testing();
}
