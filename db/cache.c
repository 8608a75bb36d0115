/* db/cache.c: libmemcached, one handle per thread; every miss is survivable. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libmemcached/memcached.h>
#include <openssl/evp.h>

#include "app/app.h"
#include "db.h"

struct cache {
	memcached_st	*mc;
};

/*
 * A handle on the configured servers ("host:port" or "/unix/path",
 * comma separated).  Binary protocol for increment-with-initial; short
 * timeouts because the cache is never worth waiting for.
 */
struct cache *
cache_new(const struct config *c)
{
	struct cache *k;
	char *list, *tok, *save = NULL, *colon;
	uint64_t to = (uint64_t)c->memcached_timeout_ms;

	if ((k = calloc(1, sizeof(*k))) == NULL)
		return NULL;
	if ((k->mc = memcached_create(NULL)) == NULL || (list = strdup(c->memcached)) == NULL) {
		cache_free(k);
		return NULL;
	}
	for (tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		if (*tok == '/')
			memcached_server_add_unix_socket(k->mc, tok);
		else if ((colon = strrchr(tok, ':')) != NULL) {
			*colon = '\0';
			memcached_server_add(k->mc, tok, (in_port_t)atoi(colon + 1));
		} else
			memcached_server_add(k->mc, tok, 11211);
	}
	free(list);
	memcached_behavior_set(k->mc, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1);
	memcached_behavior_set(k->mc, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, to);
	memcached_behavior_set(k->mc, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, to);
	memcached_behavior_set(k->mc, MEMCACHED_BEHAVIOR_RCV_TIMEOUT, to * 1000);
	memcached_behavior_set(k->mc, MEMCACHED_BEHAVIOR_SND_TIMEOUT, to * 1000);
	memcached_behavior_set(k->mc, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
	/* a dead server is retried after 1 s instead of on every request */
	memcached_behavior_set(k->mc, MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, 1);
	memcached_behavior_set(k->mc, MEMCACHED_BEHAVIOR_SERVER_FAILURE_LIMIT, 2);
	memcached_behavior_set(k->mc, MEMCACHED_BEHAVIOR_DISTRIBUTION,
	    MEMCACHED_DISTRIBUTION_CONSISTENT);
	return k;
}

void
cache_free(struct cache *k)
{
	if (k == NULL)
		return;
	if (k->mc != NULL)
		memcached_free(k->mc);
	free(k);
}

/*
 * A memcached-safe key: prefix ":" and the hex SHA-256 of the parts, so
 * channel names with any allowed punctuation and any length fit.
 */
void
cache_key(char out[80], const char *prefix, const char *a, const char *b, const char *c)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[32];
	unsigned int mdlen = 0;
	const char *parts[3] = { a, b, c };
	char hex[65];
	int i;

	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	for (i = 0; i < 3; i++)
		if (parts[i] != NULL)
			EVP_DigestUpdate(ctx, parts[i], strlen(parts[i]) + 1);
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	hex_encode(md, 24, hex);
	snprintf(out, 80, "sfc:%s:%s", prefix, hex);
}

/* 0 and a malloc'd *val on a hit, DB_NOTFOUND on a miss, -1 when unreachable. */
int
cache_get(struct cache *k, const char *key, char **val, size_t *len)
{
	memcached_return_t rc;
	uint32_t flags;
	char *v;

	v = memcached_get(k->mc, key, strlen(key), len, &flags, &rc);
	if (v != NULL) {
		*val = v;
		return 0;
	}
	if (rc == MEMCACHED_NOTFOUND)
		return DB_NOTFOUND;
	log_debug("memcached: get: %s", memcached_strerror(k->mc, rc));
	return -1;
}

int
cache_set(struct cache *k, const char *key, const char *val, size_t len, int ttl)
{
	memcached_return_t rc;

	rc = memcached_set(k->mc, key, strlen(key), val, len, (time_t)ttl, 0);
	if (rc != MEMCACHED_SUCCESS) {
		log_debug("memcached: set: %s", memcached_strerror(k->mc, rc));
		return -1;
	}
	return 0;
}

int
cache_delete(struct cache *k, const char *key)
{
	memcached_return_t rc = memcached_delete(k->mc, key, strlen(key), 0);

	return (rc == MEMCACHED_SUCCESS || rc == MEMCACHED_NOTFOUND) ? 0 : -1;
}

/* Atomically add delta, creating the counter at delta with a ttl. */
int
cache_incr(struct cache *k, const char *key, uint64_t delta, int ttl, uint64_t *out)
{
	memcached_return_t rc;

	rc = memcached_increment_with_initial(k->mc, key, strlen(key), delta, delta,
	    (time_t)ttl, out);
	if (rc != MEMCACHED_SUCCESS) {
		log_debug("memcached: incr: %s", memcached_strerror(k->mc, rc));
		return -1;
	}
	return 0;
}

/*
 * A round trip: a get of a key that is never set.  (memcached_version
 * answers from what it learnt at connect time, so it cannot tell that a
 * server went away.)
 */
int
cache_ping(struct cache *k)
{
	char *v = NULL;
	size_t len;
	int rc = cache_get(k, "sfc:ping", &v, &len);

	free(v);
	return rc == 0 || rc == DB_NOTFOUND ? 0 : -1;
}
