/* app/worker.c: per-thread state: db and cache handles, the in-process app cache. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "db/db.h"

#define APP_CACHE_SLOTS 64
#define MISS_SLOTS 64		/* lookups that found nothing, kept apart */
#define MISS_TTL_US 1000000	/* how long a miss is believed */
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
	struct app	 app;
	int64_t		 fetched_us;
};

/* A lookup that found no app: its own ring, so misses never evict apps. */
struct app_miss {
	char		 lookup[72];
	int64_t		 at_us;
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
	w->misses = calloc(MISS_SLOTS, sizeof(*w->misses));
	w->local = calloc(LOCAL_SLOTS, sizeof(*w->local));
	/* NULL when no pushpin_publish is configured: realtime delivery is off */
	w->grip = grip_pub_new(c->pushpin_publish, c->pushpin_timeout_ms,
	    c->pushpin_max_body);
	if (w->db == NULL || w->cache == NULL || w->apps == NULL || w->misses == NULL ||
	    w->local == NULL) {
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
	free(w->misses);
	for (i = 0; w->local != NULL && i < LOCAL_SLOTS; i++)
		free(w->local[i].payload);
	free(w->local);
	free(w);
}

/* Whether tag missed less than MISS_TTL_US ago. */
static int
missed(struct worker *w, const char *tag, int64_t now)
{
	size_t i;

	for (i = 0; i < MISS_SLOTS; i++)
		if (now - w->misses[i].at_us < MISS_TTL_US &&
		    strcmp(w->misses[i].lookup, tag) == 0)
			return 1;
	return 0;
}

static void
remember_miss(struct worker *w, const char *tag, int64_t now)
{
	struct app_miss *m = &w->misses[w->next_miss++ % MISS_SLOTS];

	snprintf(m->lookup, sizeof(m->lookup), "%s", tag);
	m->at_us = now;
}

/*
 * Look an app up through the cache.  Entries live app_cache_ttl seconds
 * (a disabled or rotated app takes effect everywhere within that time).
 * Misses are remembered for a second in a ring of their own, so an
 * unknown key asked again costs no query, and a stream of unknown keys
 * can only push out other misses, never a real app.  Returns 0 found,
 * 1 unknown, -1 store unavailable.
 */
static int
lookup(struct worker *w, const char *column, const char *value, struct app *out)
{
	struct app_cache_entry *e, *victim = &w->apps[0];
	int64_t now = mono_us(), ttl = (int64_t)w->cfg->app_cache_ttl * 1000000;
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
		if (now - e->fetched_us < ttl) {
			*out = e->app;
			return 0;
		}
		victim = e;
		break;
	}
	if (missed(w, tag, now))
		return 1;
	rc = db_app_get(w->db, column, value, out);
	if (rc != 0 && rc != DB_NOTFOUND)
		return -1;
	if (rc == DB_NOTFOUND) {
		remember_miss(w, tag, now);
		if (strcmp(victim->lookup, tag) == 0)
			victim->lookup[0] = '\0';	/* the app is gone */
		return 1;
	}
	snprintf(victim->lookup, sizeof(victim->lookup), "%s", tag);
	victim->fetched_us = now;
	victim->app = *out;
	return 0;
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
