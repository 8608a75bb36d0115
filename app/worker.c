/* app/worker.c: per-thread state: db and cache handles, the in-process app cache. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "db/db.h"

#define APP_CACHE_SLOTS 64
#define LOCAL_SLOTS 64
#define LOCAL_MAX_PAYLOAD 4096

/*
 * A value this thread read from the shared cache, kept with the time it
 * was read from the store (born_ms), so keeping it here never makes it
 * older than the shared cache's own bound.
 */
struct local_entry {
	char	 key[80];
	int64_t	 born_ms;
	char	*payload;
};

struct app_cache_entry {
	char		 lookup[72];	/* "k:<key>" or "i:<id>" */
	int		 found;
	struct app	 app;
	int64_t		 fetched_us;
};

struct worker *
worker_new(const struct config *c)
{
	struct worker *w;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->cfg = c;
	w->db = db_new(c);
	w->cache = cache_new(c);
	w->apps = calloc(APP_CACHE_SLOTS, sizeof(*w->apps));
	w->local = calloc(LOCAL_SLOTS, sizeof(*w->local));
	/* NULL when no pushpin_publish is configured: realtime delivery is off */
	w->grip = grip_pub_new(c->pushpin_publish, c->pushpin_timeout_ms,
	    c->pushpin_max_body);
	if (w->db == NULL || w->cache == NULL || w->apps == NULL || w->local == NULL) {
		worker_free(w);
		return NULL;
	}
	return w;
}

void
worker_free(struct worker *w)
{
	if (w == NULL)
		return;
	size_t i;

	db_free(w->db);
	cache_free(w->cache);
	grip_pub_free(w->grip);
	free(w->apps);
	for (i = 0; w->local != NULL && i < LOCAL_SLOTS; i++)
		free(w->local[i].payload);
	free(w->local);
	free(w);
}

/*
 * Look an app up through the cache.  Entries live app_cache_ttl seconds
 * (a disabled or rotated app takes effect everywhere within that time);
 * misses are remembered for one second so unknown keys cannot hammer
 * MariaDB.  Returns 0 found, 1 unknown, -1 store unavailable.
 */
static int
lookup(struct worker *w, const char *column, const char *value, struct app *out)
{
	struct app_cache_entry *e, *victim = &w->apps[0];
	int64_t now = mono_us(), ttl;
	char tag[72];
	size_t i;
	int rc;

	if (strlen(value) > 64)
		return 1;
	snprintf(tag, sizeof(tag), "%c:%s", column[0], value);
	for (i = 0; i < APP_CACHE_SLOTS; i++) {
		e = &w->apps[i];
		if (e->fetched_us < victim->fetched_us)
			victim = e;
		if (strcmp(e->lookup, tag) != 0)
			continue;
		ttl = (int64_t)w->cfg->app_cache_ttl * 1000000;
		if (!e->found && ttl > 1000000)
			ttl = 1000000;
		if (now - e->fetched_us < ttl) {
			if (!e->found)
				return 1;
			*out = e->app;
			return 0;
		}
		victim = e;
		break;
	}
	rc = db_app_get(w->db, column, value, out);
	if (rc != 0 && rc != DB_NOTFOUND)
		return -1;
	snprintf(victim->lookup, sizeof(victim->lookup), "%s", tag);
	victim->found = rc == 0;
	victim->fetched_us = now;
	if (rc == 0)
		victim->app = *out;
	return rc == 0 ? 0 : 1;
}

int
worker_app_by_key(struct worker *w, const char *key, struct app *out)
{
	return lookup(w, "app_key", key, out);
}

int
worker_app_by_id(struct worker *w, const char *id, struct app *out)
{
	return lookup(w, "id", id, out);
}

static struct local_entry *
local_slot(struct worker *w, const char *key)
{
	unsigned h = 5381;
	const char *p;

	for (p = key; *p != '\0'; p++)
		h = h * 33 + (unsigned char)*p;
	return &w->local[h % LOCAL_SLOTS];
}

/* A copy of key's payload if it was born less than max_age_ms ago; NULL otherwise. */
char *
worker_local_get(struct worker *w, const char *key, int64_t max_age_ms)
{
	struct local_entry *e = local_slot(w, key);

	if (e->payload == NULL || strcmp(e->key, key) != 0 ||
	    now_ms() - e->born_ms >= max_age_ms)
		return NULL;
	return strdup(e->payload);
}

/* Remember a payload born (read from the store) at born_ms; evicts the slot's old value. */
void
worker_local_put(struct worker *w, const char *key, int64_t born_ms, const char *payload)
{
	struct local_entry *e = local_slot(w, key);

	if (strlen(payload) > LOCAL_MAX_PAYLOAD || strlen(key) >= sizeof(e->key))
		return;
	free(e->payload);
	e->payload = strdup(payload);
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->born_ms = born_ms;
}
