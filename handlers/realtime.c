/*
 * handlers/realtime.c: what reaches subscribers, and channel state changes
 * with their consequences (presence events, webhooks) -- shared by the
 * WebSocket protocol (socket.c), the HTTP API and sockudo-pushd's sweeper.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "db/db.h"

#define TX_ATTEMPTS 3

/* Pushpin channel of an app's channel; one namespace per app. */
void
rt_grip_channel(char *out, size_t len, const char *app_id, const char *channel)
{
	snprintf(out, len, "a:%s:%s", app_id, channel);
}

/* Pushpin channel of one socket (to close it, or talk to it alone). */
void
rt_socket_channel(char *out, size_t len, const char *app_id, const char *socket_id)
{
	snprintf(out, len, "s:%s:%s", app_id, socket_id);
}

/*
 * A Pusher protocol message as JSON text: {"event", "channel"?, "data",
 * "user_id"?}.  data is sent as the string it is (Pusher sends event
 * data as a string; pusher-js parses it if it is JSON).
 */
char *
rt_message(const char *event, const char *channel, const char *data, size_t datalen,
    const char *user_id)
{
	json_object *m = json_object_new_object();
	char *s;

	json_object_object_add(m, "event", json_object_new_string(event));
	if (channel != NULL)
		json_object_object_add(m, "channel", json_object_new_string(channel));
	json_object_object_add(m, "data", json_object_new_string_len(data ? data : "",
	    data ? (int)datalen : 0));
	if (user_id != NULL)
		json_object_object_add(m, "user_id", json_object_new_string(user_id));
	s = strdup(json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN));
	json_object_put(m);
	return s;
}

/*
 * Add one item for Pushpin to items (an array): content for everyone on
 * the app's channel, except the socket except_socket (NULL: none; SPEC 3
 * socket_id).  Takes ownership of content.
 */
void
rt_item_add(json_object *items, const char *app_id, const char *channel, char *content,
    const char *except_socket)
{
	char gch[300];

	/* every subscription has skip-self: the sender's socket is skipped */
	rt_grip_channel(gch, sizeof(gch), app_id, channel);
	grip_item(items, gch, content ? content : "", except_socket, 0);
	free(content);
}

/*
 * Hand items to every Pushpin instance, if realtime delivery is on and
 * there is anything to send.  Consumes items.
 */
void
rt_publish(struct grip_pub *g, json_object *items)
{
	if (g != NULL && items != NULL && json_object_array_length(items) > 0)
		(void)grip_publish(g, items);
	json_object_put(items);
}

/* Deliver one event to a channel's subscribers (a convenience for one item). */
void
rt_deliver(struct grip_pub *g, const char *app_id, const char *channel, const char *event,
    const char *data, const char *except_socket)
{
	json_object *items;

	if (g == NULL)
		return;
	items = json_object_new_array();
	rt_item_add(items, app_id, channel, rt_message(event, channel, data,
	    data ? strlen(data) : 0, NULL), except_socket);
	rt_publish(g, items);
}

/* ---- state changes ------------------------------------------------------ */

/* One webhook event object: {"name", "channel", ...more}. */
static json_object *
hook_event(const char *name, const char *channel, const char *user_id)
{
	json_object *e = json_object_new_object();

	json_object_object_add(e, "name", json_object_new_string(name));
	json_object_object_add(e, "channel", json_object_new_string(channel));
	if (user_id != NULL)
		json_object_object_add(e, "user_id", json_object_new_string(user_id));
	return e;
}

/*
 * Queue a webhook of events (consumed) for the app, in the caller's
 * transaction: Pusher's body {"time_ms", "events": [...]}.  Nothing when
 * the app has no webhook URL or there are no events.
 */
int
rt_webhook(struct db *d, const struct app *a, json_object *events)
{
	json_object *body;
	int rc;

	if (a->webhook_url[0] == '\0' || json_object_array_length(events) == 0) {
		json_object_put(events);
		return 0;
	}
	body = json_object_new_object();
	json_object_object_add(body, "time_ms", json_object_new_int64(now_ms()));
	json_object_object_add(body, "events", events);
	rc = db_webhook_add(d, a->id, json_object_to_json_string_ext(body,
	    JSON_C_TO_STRING_PLAIN));
	json_object_put(body);
	return rc;
}

/* The webhook events of a change, in Pusher's order. */
static json_object *
change_events(const char *channel, const struct sub_change *c, const char *user_id)
{
	json_object *ev = json_object_new_array();

	if (c->occupied)
		json_object_array_add(ev, hook_event("channel_occupied", channel, NULL));
	if (c->member_added)
		json_object_array_add(ev, hook_event("member_added", channel, user_id));
	if (c->member_removed)
		json_object_array_add(ev, hook_event("member_removed", channel, c->user_id));
	if (c->vacated)
		json_object_array_add(ev, hook_event("channel_vacated", channel, NULL));
	return ev;
}

/*
 * A join (leave = 0; user_id and user_info for presence) or a leave, and
 * the webhooks it causes, in one transaction, redone after a deadlock
 * (joins and leaves of one channel lock its rows).  chg says what changed.
 */
static int
change_tx(struct rt *t, int leave, const char *channel, const char *socket_id,
    const char *user_id, const char *user_info, struct sub_change *chg)
{
	const struct sub_limits *lim = t->limits;
	int rc = DB_ERROR, attempt;

	for (attempt = 0; attempt < TX_ATTEMPTS; attempt++) {
		if ((rc = db_begin(t->db)) != 0)
			return rc;
		sub_change_free(chg);
		rc = leave ? db_sub_remove(t->db, t->app->id, channel, socket_id, chg) :
		    db_sub_add(t->db, t->app->id, channel, socket_id, user_id, user_info, lim, chg);
		if (rc == 0 && chg->refused) {
			db_rollback(t->db);
			return 0;
		}
		if (rc == 0)
			rc = rt_webhook(t->db, t->app, change_events(channel, chg, user_id));
		if (rc == 0 && (rc = db_commit(t->db)) == 0)
			return 0;
		db_rollback(t->db);
		if (!db_retryable(t->db, rc))
			break;
	}
	return rc;
}

/*
 * Subscribe socket_id to channel, with user_id/user_info for presence:
 * the subscription and its webhooks (channel_occupied, member_added),
 * then a new member is announced to the channel's other subscribers.
 * Over t->limits nothing happens and *refused says which (SUB_FULL_*;
 * else 0).  Returns 0 or DB_*.
 */
int
rt_join(struct rt *t, const char *channel, const char *socket_id, const char *user_id,
    const char *user_info, int *refused)
{
	struct sub_change chg = { 0 };
	json_object *d;
	int rc;

	if ((rc = change_tx(t, 0, channel, socket_id, user_id, user_info, &chg)) != 0)
		return rc;
	*refused = chg.refused;
	if (chg.member_added && t->grip != NULL) {
		d = json_object_new_object();
		json_object_object_add(d, "user_id", json_object_new_string(user_id));
		/* user_info was checked as strict JSON before it was stored */
		json_object_object_add(d, "user_info", user_info ?
		    json_tokener_parse(user_info) : NULL);
		rt_deliver(t->grip, t->app->id, channel, "pusher_internal:member_added",
		    json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN), socket_id);
		json_object_put(d);
	}
	return 0;
}

/*
 * Unsubscribe socket_id from channel: its webhooks (member_removed,
 * channel_vacated), then member_removed to the channel when the user's
 * last socket left.  Not subscribed: 0, nothing happens.
 */
int
rt_leave(struct rt *t, const char *channel, const char *socket_id)
{
	struct sub_change chg = { 0 };
	json_object *d;
	int rc;

	rc = change_tx(t, 1, channel, socket_id, NULL, NULL, &chg);
	if (rc == 0 && chg.member_removed && !chg.vacated && t->grip != NULL) {
		d = json_object_new_object();
		json_object_object_add(d, "user_id", json_object_new_string(chg.user_id));
		rt_deliver(t->grip, t->app->id, channel, "pusher_internal:member_removed",
		    json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN), NULL);
		json_object_put(d);
	}
	sub_change_free(&chg);
	return rc;
}

/*
 * A socket is gone (closed, lost, terminated, or its lease ran out):
 * leave every channel it was on, one by one so that each change gets
 * its events, then forget the connection.
 */
int
rt_disconnect(struct rt *t, const char *socket_id)
{
	json_object *chans = json_object_new_array();
	size_t i;
	int rc;

	rc = db_conn_channels(t->db, t->app->id, socket_id, chans);
	for (i = 0; rc == 0 && i < json_object_array_length(chans); i++)
		rc = rt_leave(t, json_object_get_string(json_object_array_get_idx(chans, i)),
		    socket_id);
	json_object_put(chans);
	if (rc == 0)
		rc = db_conn_remove(t->db, t->app->id, socket_id);
	return rc;
}

/* A pusher:error message: {"event": "pusher:error", "data": {"code", "message"}}. */
char *
rt_error_message(int code, const char *why)
{
	json_object *m = json_object_new_object(), *d = json_object_new_object();
	char *s;

	json_object_object_add(d, "code", code ? json_object_new_int(code) : NULL);
	json_object_object_add(d, "message", json_object_new_string(why));
	json_object_object_add(m, "event", json_object_new_string("pusher:error"));
	json_object_object_add(m, "data", d);
	s = strdup(json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN));
	json_object_put(m);
	return s;
}

/*
 * Close a socket through Pushpin, wherever it is connected: a
 * pusher:error with code, then the WebSocket close with the same code
 * (Pusher's 4000-4299 codes).
 */
void
rt_close_socket(struct grip_pub *g, const char *app_id, const char *socket_id, int code,
    const char *why)
{
	json_object *items;
	char sch[200], *msg;

	if (g == NULL)
		return;
	rt_socket_channel(sch, sizeof(sch), app_id, socket_id);
	items = json_object_new_array();
	msg = rt_error_message(code, why);
	grip_item(items, sch, msg ? msg : "", NULL, 0);
	grip_item(items, sch, NULL, NULL, code);
	free(msg);
	rt_publish(g, items);
}
