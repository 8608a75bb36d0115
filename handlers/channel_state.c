/* handlers/channel_state.c: channel state reads through a short memcached cache (SPEC 4). */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "db/db.h"

/*
 * A cached value is "<unix ms> <payload>", the time being when it was read
 * from MariaDB; it is used while younger than channel_cache_ttl_ms (at
 * most 2 s, SPEC 4).  Checking the age here, not with memcached's
 * whole-second expiry, keeps the staleness bound; a hot value is also
 * kept by this thread with the same birth time, which saves the memcached
 * round trip without making it any staler.
 */
static char *
cache_fresh(struct req *r, const char *key)
{
	int64_t ttl = r->cfg->channel_cache_ttl_ms;
	char *val = NULL, *sp, *payload = NULL;
	size_t len;
	long long at;

	if (ttl == 0)
		return NULL;
	if ((payload = worker_local_get(r->w, key, ttl)) != NULL)
		return payload;
	if (cache_get(r->w->cache, key, &val, &len) != 0)
		return NULL;
	if ((sp = memchr(val, ' ', len)) != NULL) {
		*sp = '\0';
		if (str_to_ll(val, 0, INT64_MAX, &at) == 0 && now_ms() - at < ttl) {
			payload = strndup(sp + 1, len - (size_t)(sp + 1 - val));
			if (payload != NULL)
				worker_local_put(r->w, key, at, payload);
		}
	}
	free(val);
	return payload;
}

static void
cache_store(struct req *r, const char *key, const char *payload)
{
	int64_t born = now_ms();
	char *v = NULL;
	int n;

	if (r->cfg->channel_cache_ttl_ms == 0)
		return;
	if ((n = asprintf(&v, "%lld %s", (long long)born, payload)) > 0)
		(void)cache_set(r->w->cache, key, v, (size_t)n, 2);
	free(v);
	worker_local_put(r->w, key, born, payload);
}

/* Subscription and presence-user counts of one channel; DB_* on failure. */
int
channel_state_counts(struct req *r, const char *channel, long long *subs, long long *users)
{
	char key[80], *hit, buf[64];
	int rc;

	cache_key(key, "cs", r->app.id, channel, NULL);
	if ((hit = cache_fresh(r, key)) != NULL) {
		rc = sscanf(hit, "%lld %lld", subs, users);
		free(hit);
		if (rc == 2)
			return 0;
	}
	if ((rc = db_channel_counts(r->w->db, r->app.id, channel, subs, users)) != 0)
		return rc;
	snprintf(buf, sizeof(buf), "%lld %lld", *subs, *users);
	cache_store(r, key, buf);
	return 0;
}

/* The channel list for a prefix and info set, as a JSON object; NULL on failure. */
json_object *
channel_state_list(struct req *r, const char *prefix, int subs, int users, int *rc)
{
	char key[80], flags[8], *hit;
	json_object *out;

	snprintf(flags, sizeof(flags), "%d%d", subs, users);
	cache_key(key, "cl", r->app.id, prefix, flags);
	if ((hit = cache_fresh(r, key)) != NULL) {
		out = json_tokener_parse(hit);
		free(hit);
		if (out != NULL) {
			*rc = 0;
			return out;
		}
	}
	out = json_object_new_object();
	if ((*rc = db_channels_list(r->w->db, r->app.id, prefix, subs, users, out)) != 0) {
		json_object_put(out);
		return NULL;
	}
	cache_store(r, key, json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN));
	return out;
}
