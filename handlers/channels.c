/* handlers/channels.c: channel state reads and terminate_connections (SPEC 4). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "db/db.h"

#define STATE_STORE "the channel state store"

/*
 * GET /apps/{id}/channels?filter_by_prefix=&info=.  Statuses: 200, 400
 * (unknown info, user_count without the presence- prefix), 503.
 */
int
h_channels_list(struct req *r, struct resp *p)
{
	const char *prefix = req_param(r, "filter_by_prefix");
	json_object *chans, *out;
	char err[128];
	int subs, users, rc;

	if (info_parse(req_param(r, "info"), &subs, &users, NULL, err, sizeof(err)) != 0)
		return resp_error(p, 400, "invalid_input", "%s", err);
	if (prefix == NULL)
		prefix = "";
	if (strlen(prefix) > 200)
		return resp_error(p, 400, "invalid_input", "filter_by_prefix is too long");
	if (users && !channel_is_presence(prefix))
		return resp_error(p, 400, "invalid_input",
		    "user_count needs filter_by_prefix=presence-");
	if ((chans = channel_state_list(r, prefix, subs, users, &rc)) == NULL)
		return store_error(p, rc, STATE_STORE, "channel state read failed");
	out = json_object_new_object();
	json_object_object_add(out, "channels", chans);
	return resp_json(p, 200, out);
}

/* The :channel argument, validated; 400 otherwise. */
static int
channel_arg(struct req *r, struct resp *p, const char **ch)
{
	char err[160];

	*ch = r->args[1];
	if (!valid_channel_name(*ch, err, sizeof(err)))
		return resp_error(p, 400, "invalid_input", "%s", err);
	return 0;
}

/*
 * GET /apps/{id}/channels/{channel}?info=subscription_count,user_count,cache.
 * Statuses: 200, 400 (bad name, unknown info, user_count or cache on the
 * wrong kind of channel), 503.
 */
int
h_channels_show(struct req *r, struct resp *p)
{
	const char *ch;
	json_object *out;
	long long nsubs, nusers;
	char err[128];
	int subs, users, cache, rc;

	if ((rc = channel_arg(r, p, &ch)) != 0)
		return rc;
	if (info_parse(req_param(r, "info"), &subs, &users, &cache, err, sizeof(err)) != 0)
		return resp_error(p, 400, "invalid_input", "%s", err);
	if (users && !channel_is_presence(ch))
		return resp_error(p, 400, "invalid_input",
		    "user_count is only available for presence channels");
	if (cache && strncmp(ch, "cache-", 6) != 0)
		return resp_error(p, 400, "invalid_input",
		    "cache is only available for cache- channels");
	if ((rc = channel_state_counts(r, ch, &nsubs, &nusers)) != 0)
		return store_error(p, rc, STATE_STORE, "channel state read failed");
	out = json_object_new_object();
	json_object_object_add(out, "occupied", json_object_new_boolean(nsubs > 0));
	if (subs)
		json_object_object_add(out, "subscription_count", json_object_new_int64(nsubs));
	if (users)
		json_object_object_add(out, "user_count", json_object_new_int64(nusers));
	if (cache) {
		json_object *last;
		if ((rc = db_channel_last_event(r->w->db, r->app.id, ch, &last)) != 0) {
			json_object_put(out);
			return store_error(p, rc, STATE_STORE, "channel state read failed");
		}
		json_object_object_add(out, "cache", last);
	}
	return resp_json(p, 200, out);
}

/* GET /apps/{id}/channels/{channel}/users.  Statuses: 200, 400 (not presence), 503. */
int
h_channels_users(struct req *r, struct resp *p)
{
	const char *ch;
	json_object *arr, *out;
	int rc;

	if ((rc = channel_arg(r, p, &ch)) != 0)
		return rc;
	if (!channel_is_presence(ch))
		return resp_error(p, 400, "invalid_input", "users are only listed for presence channels");
	arr = json_object_new_array();
	if ((rc = db_channel_users(r->w->db, r->app.id, ch, arr)) != 0) {
		json_object_put(arr);
		return store_error(p, rc, STATE_STORE, "channel state read failed");
	}
	out = json_object_new_object();
	json_object_object_add(out, "users", arr);
	return resp_json(p, 200, out);
}

/*
 * POST /apps/{id}/users/{user_id}/terminate_connections: each of the
 * user's sockets leaves channel state now (so reads stop counting it, and
 * member_removed / channel_vacated go out) and is closed through Pushpin
 * with 4009, as Pusher does.  Statuses: 200, 400, 503.
 */
int
h_users_terminate(struct req *r, struct resp *p)
{
	const char *user = r->args[1], *sock;
	struct rt t = { r->w->db, r->w->grip, &r->app, NULL };
	json_object *socks;
	size_t len = strlen(user), i;
	int rc;

	if (len == 0 || len > 200)
		return resp_error(p, 400, "invalid_input", "user ids are 1 to 200 bytes");
	socks = json_object_new_array();
	rc = db_user_sockets(r->w->db, r->app.id, user, socks);
	for (i = 0; rc == 0 && i < json_object_array_length(socks); i++) {
		sock = json_object_get_string(json_object_array_get_idx(socks, i));
		if ((rc = rt_disconnect(&t, sock)) == 0)
			rt_close_socket(r->w->grip, r->app.id, sock, 4009,
			    "You got disconnected by the app");
	}
	json_object_put(socks);
	if (rc != 0)
		return store_error(p, rc, STATE_STORE, "could not terminate the connections");
	return resp_json(p, 200, json_object_new_object());
}
