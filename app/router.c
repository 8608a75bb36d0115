/* app/router.c: the route table, and what every route gets before its handler. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "db/db.h"
#include "handlers/handlers.h"

/* The only place routes exist.  Patterns match the raw path; :x captures a segment. */
static const struct route routes[] = {
	{ "GET",  "/live",		h_ops_live,	R_OPS, "live" },
	{ "GET",  "/up",		h_ops_up,	R_OPS, "up" },
	{ "GET",  "/up/:app",		h_ops_up_app,	R_OPS, "up_app" },
	{ "GET",  "/stats",		h_ops_stats,	R_OPS, "stats" },
	{ "GET",  "/metrics",		h_ops_metrics,	R_OPS, "metrics" },
	/* WebSocket-over-HTTP from Pushpin, signed with Grip-Sig */
	{ "POST", "/app/:key",		h_socket_events, 0, "socket" },
	{ "POST", "/apps/:app/events",	h_events_publish, R_SIGNED | R_BODY | R_PUBLISH, "events" },
	{ "POST", "/apps/:app/batch_events", h_events_batch, R_SIGNED | R_BODY | R_PUBLISH,
	    "batch_events" },
	{ "GET",  "/apps/:app/channels", h_channels_list, R_SIGNED | R_READ, "channels" },
	{ "GET",  "/apps/:app/channels/:channel", h_channels_show, R_SIGNED | R_READ, "channel" },
	{ "GET",  "/apps/:app/channels/:channel/users", h_channels_users, R_SIGNED | R_READ,
	    "channel_users" },
	{ "GET",  "/apps/:app/channels/:channel/history", h_history_list, R_SIGNED | R_READ,
	    "history" },
	{ "GET",  "/apps/:app/channels/:channel/history/state", h_history_state,
	    R_SIGNED | R_READ, "history_state" },
	{ "POST", "/apps/:app/channels/:channel/history/purge", h_history_purge,
	    R_SIGNED | R_BODY | R_PUBLISH, "history_purge" },
#define MESSAGE "/apps/:app/channels/:channel/messages/:serial"
	{ "GET",  MESSAGE,		h_message_get,	R_SIGNED | R_READ, "message" },
	{ "GET",  MESSAGE "/versions",	h_message_versions, R_SIGNED | R_READ, "message_versions" },
	{ "POST", MESSAGE "/update",	h_message_update, R_SIGNED | R_BODY | R_PUBLISH,
	    "message_update" },
	{ "POST", MESSAGE "/delete",	h_message_delete, R_SIGNED | R_BODY | R_PUBLISH,
	    "message_delete" },
	{ "POST", MESSAGE "/append",	h_message_append, R_SIGNED | R_BODY | R_PUBLISH,
	    "message_append" },
	{ "POST", MESSAGE "/annotations", h_annotation_add, R_SIGNED | R_BODY | R_PUBLISH,
	    "annotation_add" },
	{ "GET",  MESSAGE "/annotations", h_annotation_list, R_SIGNED | R_READ,
	    "annotation_list" },
	{ "DELETE", MESSAGE "/annotations/:annotation", h_annotation_delete,
	    R_SIGNED | R_PUBLISH, "annotation_delete" },
#undef MESSAGE
#define PUSH "/apps/:app/push"
#define W (R_SIGNED | R_BODY | R_PUBLISH)
#define RD (R_SIGNED | R_READ)
	{ "POST", PUSH "/deviceRegistrations", h_push_device_add, W, "push_device_add" },
	{ "GET",  PUSH "/deviceRegistrations", h_push_device_list, RD, "push_device_list" },
	{ "DELETE", PUSH "/deviceRegistrations", h_push_device_delete_client, W,
	    "push_device_delete_client" },
	{ "GET",  PUSH "/deviceRegistrations/:device", h_push_device_get, RD, "push_device" },
	{ "PUT",  PUSH "/deviceRegistrations/:device", h_push_device_put, W, "push_device_put" },
	{ "DELETE", PUSH "/deviceRegistrations/:device", h_push_device_delete, W,
	    "push_device_delete" },
	{ "POST", PUSH "/channelSubscriptions", h_push_sub_add, W, "push_sub_add" },
	{ "GET",  PUSH "/channelSubscriptions", h_push_sub_list, RD, "push_sub_list" },
	{ "DELETE", PUSH "/channelSubscriptions", h_push_sub_delete, W, "push_sub_delete" },
	{ "GET",  PUSH "/channels",	h_push_channels, RD, "push_channels" },
	{ "GET",  PUSH "/credentials",	h_push_cred_list, RD, "push_credentials" },
	{ "PUT",  PUSH "/credentials/:provider", h_push_cred_put, W, "push_credentials_put" },
	{ "DELETE", PUSH "/credentials/:provider", h_push_cred_delete, W,
	    "push_credentials_delete" },
	{ "GET",  PUSH "/templates",	h_push_template_list, RD, "push_templates" },
	{ "GET",  PUSH "/templates/:template", h_push_template_get, RD, "push_template" },
	{ "PUT",  PUSH "/templates/:template", h_push_template_put, W, "push_template_put" },
	{ "DELETE", PUSH "/templates/:template", h_push_template_delete, W,
	    "push_template_delete" },
	{ "POST", PUSH "/publish",	h_push_publish,	W, "push_publish" },
	{ "GET",  PUSH "/publish/:publish/status", h_push_status, RD, "push_status" },
	{ "POST", PUSH "/publish/:publish/cancel", h_push_cancel, W, "push_cancel" },
	{ "POST", PUSH "/callbacks/:provider", h_push_callback, W, "push_callback" },
#undef PUSH
#undef W
#undef RD
	{ "POST", "/apps/:app/users/:user/terminate_connections", h_users_terminate,
	    R_SIGNED | R_BODY | R_PUBLISH, "terminate_connections" },
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

size_t
router_count(void)
{
	return NROUTES;
}

const struct route *
router_get(size_t i)
{
	return i < NROUTES ? &routes[i] : NULL;
}

/*
 * Match a raw path against a pattern.  Captured segments are
 * percent-decoded into malloc'd strings in args (the caller frees them,
 * also on failure).  Returns 1 on a match, 0 otherwise, -1 when a
 * captured segment is not valid percent-encoding of text (valid_text:
 * strict UTF-8, no NUL or other control characters).
 */
int
router_match_path(const char *pattern, const char *path, char **args, size_t *nargs)
{
	const char *pp = pattern, *sp = path, *pe, *se;
	size_t n = 0, i, len;

	*nargs = 0;
	while (*pp == '/' && *sp == '/') {
		pp++;
		sp++;
		pe = strchrnul(pp, '/');
		se = strchrnul(sp, '/');
		if (*pp == ':') {
			if (se == sp || n == REQ_MAX_ROUTE_ARGS)
				goto nomatch;
			if ((args[n] = malloc((size_t)(se - sp) + 1)) == NULL)
				goto nomatch;
			*nargs = ++n;
			if (pct_decode(sp, (size_t)(se - sp), args[n - 1],
			    (size_t)(se - sp) + 1, &len) != 0 || !valid_text(args[n - 1], len))
				return -1;
		} else if (pe - pp != se - sp || strncmp(pp, sp, (size_t)(pe - pp)) != 0)
			goto nomatch;
		pp = pe;
		sp = se;
	}
	if (*pp == '\0' && *sp == '\0')
		return 1;
nomatch:
	for (i = 0; i < n; i++) {
		free(args[i]);
		args[i] = NULL;
	}
	*nargs = 0;
	return 0;
}

/* Find the route; on a known path with another method, fill Allow. */
static int
route_find(struct req *r, struct resp *p)
{
	char *args[REQ_MAX_ROUTE_ARGS];
	size_t i, n, k;
	int m, found = -1, bad = 0;

	p->allow[0] = '\0';
	for (i = 0; i < NROUTES; i++) {
		m = router_match_path(routes[i].pattern, r->path, args, &n);
		if (m < 0)
			bad = 1;
		if (m != 1) {
			for (k = 0; k < n; k++)
				free(args[k]);
			continue;
		}
		if (strcmp(routes[i].method, r->method) == 0 && found < 0) {
			found = (int)i;
			memcpy(r->args, args, sizeof(args));
			r->nargs = n;
			continue;
		}
		for (k = 0; k < n; k++)
			free(args[k]);
		size_t off = strlen(p->allow);
		if (strstr(p->allow, routes[i].method) == NULL)
			snprintf(p->allow + off, sizeof(p->allow) - off, "%s%s",
			    off ? ", " : "", routes[i].method);
	}
	if (found >= 0) {
		p->allow[0] = '\0';
		return found;
	}
	if (bad)
		return resp_error(p, 400, "invalid_input", "the path is not percent-encoded UTF-8"
		    " text (a bad escape, %%00, a control character or invalid UTF-8)"), -1;
	if (p->allow[0] != '\0')
		return resp_error(p, 405, "method_not_allowed", "%s is not allowed here; use %s",
		    r->method, p->allow), -1;
	return resp_error(p, 404, "not_found", "no such route"), -1;
}

/*
 * Per-app request rate per second, counted in memcached so the limit
 * holds across every worker and host (SPEC 10).  A window is one wall
 * clock second.  Each thread takes a share of the budget at once (a
 * lease of up to 1/64 of the limit, so one round trip serves many
 * requests) and never admits more than memcached granted it: the total
 * across the pool stays within the limit.  Small limits lease one
 * request at a time and so are exact.  If memcached is down the request
 * is let through: the limit protects the service, it must not take it
 * down.
 */
static int
rate_limit(struct req *r, struct resp *p, unsigned flags)
{
	int cls = (flags & R_PUBLISH) ? R_PUBLISH : R_READ;
	int limit = cls == R_PUBLISH ? r->app.max_publish_rps : r->app.max_read_rps;
	int64_t sec = now_ms() / 1000;
	struct rate_lease *l = NULL;
	char key[80], secs[24];
	uint64_t n, chunk, before;
	size_t i;

	if (!(flags & (R_PUBLISH | R_READ)) || limit <= 0)
		return 0;
	for (i = 0; i < WORKER_LEASES; i++) {
		l = &r->w->leases[i];
		if (l->cls == cls && strcmp(l->app, r->app.id) == 0)
			break;
		l = NULL;
	}
	if (l != NULL && l->sec == sec && l->left > 0) {
		l->left--;
		return 0;
	}
	if (l == NULL) {
		/* replace the lease least likely to be in use: the oldest */
		l = &r->w->leases[0];
		for (i = 1; i < WORKER_LEASES; i++)
			if (r->w->leases[i].sec < l->sec)
				l = &r->w->leases[i];
		snprintf(l->app, sizeof(l->app), "%s", r->app.id);
		l->cls = cls;
	}
	l->sec = sec;
	l->left = 0;
	chunk = (uint64_t)limit / 64;
	chunk = chunk < 1 ? 1 : chunk > 64 ? 64 : chunk;
	snprintf(secs, sizeof(secs), "%lld", (long long)sec);
	cache_key(key, "rl", r->app.id, cls == R_PUBLISH ? "p" : "r", secs);
	if (cache_incr(r->w->cache, key, chunk, 2, &n) != 0) {
		log_warn("rate limit of app %s not enforced: memcached unavailable", r->app.id);
		return 0;
	}
	before = n - chunk;
	if (before < (uint64_t)limit) {
		/* this request uses one of the granted slots */
		l->left = (int)((uint64_t)limit - before < chunk ? (uint64_t)limit - before : chunk) - 1;
		return 0;
	}
	p->retry_after = 1;
	return resp_error(p, 429, "rate_limited", "more than %d %s requests per second",
	    limit, cls == R_PUBLISH ? "publish" : "read");
}

/* A JSON media type: application/json with optional parameters. */
static int
is_json_type(const char *ct)
{
	size_t n = strlen("application/json");

	if (ct == NULL || strncasecmp(ct, "application/json", n) != 0)
		return 0;
	return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

/*
 * Parse the body: strict JSON (app/json.c), so nothing json-c would
 * change or MariaDB would refuse gets past here, and an object.
 */
static int
parse_body(struct req *r, struct resp *p)
{
	char err[96];

	if (r->bodylen == 0)
		return 0;
	if (!is_json_type(r->content_type))
		return resp_error(p, 415, "unsupported_media_type",
		    "the body must be application/json");
	if ((r->json = json_parse_strict(r->body, r->bodylen, err, sizeof(err))) == NULL)
		return resp_error(p, 400, "invalid_input", "the body is not valid JSON: %s",
		    err[0] ? err : "null");
	if (!json_object_is_type(r->json, json_type_object))
		return resp_error(p, 400, "invalid_input", "the body must be a JSON object");
	return 0;
}

/*
 * Route one request: match, then (from the route's flags) check the
 * signature, the rate limit and the body, then run the handler.  p holds
 * the answer afterwards whatever happened.
 */
void
router_handle(struct req *r, struct resp *p)
{
	const struct route *rt;
	char err[160];

	if ((r->route = route_find(r, p)) < 0)
		return;
	rt = &routes[r->route];
	/*
	 * Pushpin signs what it proxies (Grip-Sig) and reaches the web server
	 * from 127.0.0.1, where the operator endpoints are open: whatever its
	 * routes, they are not served through it.
	 */
	if ((rt->flags & R_OPS) && r->grip_sig != NULL) {
		resp_error(p, 404, "not_found", "no such route");
		return;
	}
	if (req_parse_query(r, err, sizeof(err)) != 0) {
		resp_error(p, 400, "invalid_input", "%s", err);
		return;
	}
	if ((rt->flags & R_SIGNED) && auth_check(r, p) != 0)
		return;
	if ((rt->flags & R_SIGNED) && rate_limit(r, p, rt->flags) != 0)
		return;
	if ((rt->flags & R_BODY) && parse_body(r, p) != 0)
		return;
	router_finish(r, p, rt->fn(r, p));
}

/*
 * After a handler returned rc: a handler that answered nothing, or that
 * says it failed while its answer says otherwise, gets a 500 instead of
 * an empty or misleading 200.
 */
void
router_finish(const struct req *r, struct resp *p, int rc)
{
	if (p->status != 0 && !(rc >= 400 && p->status < 400))
		return;
	log_error("%s %s: handler returned %d with %s", r->method ? r->method : "-",
	    r->path ? r->path : "-", rc, p->status ? "a success answer" : "no answer");
	resp_error(p, 500, "internal", "the request could not be carried out");
}
