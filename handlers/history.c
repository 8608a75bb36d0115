/* handlers/history.c: a channel's history, its state and purge (SPEC 5). */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "db/db.h"

#define HISTORY_STORE "the message store"
#define HISTORY_FAILED "the history could not be read"

/* What a history cursor is bound to besides the app (handlers/cursor.c). */
static void
history_scope(const struct history_page *pg, char *out, size_t len)
{
	snprintf(out, len, "history\n%s\n%s\n%lld\n%lld", pg->channel,
	    pg->newest_first ? "newest_first" : "oldest_first",
	    (long long)pg->start_ms, (long long)pg->end_ms);
}

static int
feature_check(struct req *r, struct resp *p, const char **ch)
{
	char err[160];

	if (!(r->app.flags & APP_F_HISTORY))
		return resp_error(p, 403, "feature_disabled", "history is disabled for this app");
	*ch = r->args[1];
	if (!valid_channel_name(*ch, err, sizeof(err)))
		return resp_error(p, 400, "invalid_input", "%s", err);
	return 0;
}

/*
 * GET /apps/{id}/channels/{channel}/history?limit=&direction=&cursor=&start=&end=
 * Statuses: 200, 400 (bad limit, direction, bounds or cursor), 403
 * feature_disabled, 503.
 */
int
h_history_list(struct req *r, struct resp *p)
{
	struct history_page pg = { .newest_first = 1, .start_ms = 0, .end_ms = INT64_MAX };
	const char *cursor = req_param(r, "cursor");
	long long start, end;
	char scope[320];
	int rc;

	if ((rc = feature_check(r, p, &pg.channel)) != 0 ||
	    (rc = paging_params(r, p, 1, &pg.newest_first, &pg.limit)) != 0)
		return rc;
	if (req_param_int(r, "start", 0, INT64_MAX - 1, 0, &start) != 0 ||
	    req_param_int(r, "end", 0, INT64_MAX - 1, INT64_MAX - 1, &end) != 0)
		return resp_error(p, 400, "invalid_input", "start and end are Unix milliseconds");
	if (start > end)
		return resp_error(p, 400, "invalid_input", "start is after end");
	pg.start_ms = start;
	pg.end_ms = req_param(r, "end") != NULL ? end : INT64_MAX;
	history_scope(&pg, scope, sizeof(scope));
	if (cursor != NULL && cursor_parse(r, scope, cursor, &pg.after) != 0)
		return resp_error(p, 400, "invalid_input",
		    "cursor is not one this server issued for this channel, direction and bounds");
	pg.items = json_object_new_array();
	if ((rc = db_history_page(r->w->db, r->app.id, &pg)) != 0) {
		json_object_put(pg.items);
		return store_error(p, rc, HISTORY_STORE, HISTORY_FAILED);
	}
	return page_answer(r, p, scope, pg.items, pg.has_more, pg.last_serial);
}

/*
 * GET /apps/{id}/channels/{channel}/history/state.  Statuses: 200, 400,
 * 403 feature_disabled, 503.
 */
int
h_history_state(struct req *r, struct resp *p)
{
	json_object *out;
	const char *ch;
	int rc;

	if ((rc = feature_check(r, p, &ch)) != 0)
		return rc;
	out = json_object_new_object();
	json_object_object_add(out, "channel", json_object_new_string(ch));
	if ((rc = db_history_state(r->w->db, r->app.id, ch, out)) != 0) {
		json_object_put(out);
		return store_error(p, rc, HISTORY_STORE, HISTORY_FAILED);
	}
	return resp_json(p, 200, out);
}

/* A whole number member of the body; -1 when absent or not a non-negative integer. */
static long long
body_int(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 0)
		return -1;
	return json_object_get_int64(v);
}

/*
 * POST /apps/{id}/channels/{channel}/history/purge
 * {"confirm_channel", "mode": "all"|"before_serial"|"before_time_ms",
 *  "serial"|"time_ms"} -> {"purged": n}.  Statuses: 200, 400 (no body,
 * confirmation does not match, bad mode or bound), 403, 503.
 */
int
h_history_purge(struct req *r, struct resp *p)
{
	json_object *v, *out;
	const char *ch, *confirm = NULL, *mode = NULL;
	long long serial = INT64_MAX, before = INT64_MAX, purged = 0;
	int rc;

	if ((rc = feature_check(r, p, &ch)) != 0)
		return rc;
	if (r->json == NULL)
		return resp_error(p, 400, "invalid_input", "a JSON body is required");
	if (json_object_object_get_ex(r->json, "confirm_channel", &v) &&
	    json_object_is_type(v, json_type_string))
		confirm = json_object_get_string(v);
	if (confirm == NULL || strcmp(confirm, ch) != 0)
		return resp_error(p, 400, "invalid_input",
		    "confirm_channel must repeat the channel name");
	if (json_object_object_get_ex(r->json, "mode", &v) &&
	    json_object_is_type(v, json_type_string))
		mode = json_object_get_string(v);
	if (mode != NULL && strcmp(mode, "all") == 0)
		;
	else if (mode != NULL && strcmp(mode, "before_serial") == 0) {
		if ((serial = body_int(r->json, "serial")) < 1)
			return resp_error(p, 400, "invalid_input",
			    "before_serial needs \"serial\", a positive integer");
	} else if (mode != NULL && strcmp(mode, "before_time_ms") == 0) {
		if ((before = body_int(r->json, "time_ms")) < 0)
			return resp_error(p, 400, "invalid_input",
			    "before_time_ms needs \"time_ms\", Unix milliseconds");
	} else
		return resp_error(p, 400, "invalid_input",
		    "mode must be all, before_serial or before_time_ms");
	if ((rc = db_history_purge(r->w->db, r->app.id, ch, serial, before, &purged)) != 0)
		return store_error(p, rc, HISTORY_STORE, HISTORY_FAILED);
	out = json_object_new_object();
	json_object_object_add(out, "purged", json_object_new_int64(purged));
	return resp_json(p, 200, out);
}
