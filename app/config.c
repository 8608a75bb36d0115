/* app/config.c: the one table of configuration keys, and the file parser. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "push.h"

enum ctype { C_STR, C_INT };

struct cdef {
	const char	*key;
	enum ctype	 type;
	size_t		 off;
	const char	*def;
	long long	 min, max;	/* C_INT bounds */
};

#define S(k, d)		{ #k, C_STR, offsetof(struct config, k), d, 0, 0 }
#define I(k, d, lo, hi)	{ #k, C_INT, offsetof(struct config, k), d, lo, hi }

/* Every key, its default and bounds; sockudo-fcgi.conf(5) documents them. */
static const struct cdef defs[] = {
	S(listen, ""),
	I(workers, "2", 1, 256),
	I(threads, "12", 1, 256),
	S(pidfile, ""),
	S(log_level, "info"),
	S(db_host, "localhost"),
	I(db_port, "3306", 1, 65535),
	S(db_socket, ""),
	S(db_user, "sockudo"),
	S(db_password, ""),
	S(db_name, "sockudo"),
	I(db_connect_timeout, "2", 1, 60),
	I(db_rw_timeout, "2", 1, 600),
	S(memcached, "127.0.0.1:11211"),
	I(memcached_timeout_ms, "200", 10, 10000),
	I(auth_timestamp_skew, "600", 1, 86400),
	I(max_body_bytes, "1048576", 1024, 64 * 1024 * 1024),
	I(max_query_params, "64", 8, 1024),
	I(request_timeout, "10", 1, 600),
	I(app_cache_ttl, "5", 0, 3600),
	I(channel_cache_ttl_ms, "1000", 0, 2000),
	I(maintain_interval, "300", 0, 86400),
	S(push_secret_key, ""),
	S(apns_url, "https://api.push.apple.com"),
	S(fcm_url, "https://fcm.googleapis.com"),
	S(fcm_token_url, "https://oauth2.googleapis.com/token"),
	S(push_ca_file, ""),
	S(webpush_allow, ""),
	I(push_batch, "200", 1, 10000),
	I(push_lease_s, "30", 1, 3600),
	I(push_max_attempts, "5", 1, 100),
	I(push_retry_base_ms, "1000", 1, 3600000),
	I(push_timeout_ms, "10000", 100, 600000),
	I(push_poll_ms, "200", 1, 60000),
	I(push_threads, "4", 1, 64),
	I(push_max_recipients, "1000", 1, 100000),
	/* realtime through Pushpin (README "Realtime") */
	S(pushpin_publish, ""),
	S(pushpin_sig_key, ""),
	S(pushpin_sig_iss, "pushpin"),	/* Pushpin's own default */
	I(pushpin_timeout_ms, "1000", 10, 60000),
	I(pushpin_max_body, "1000000", 4096, 67108864),	/* Pushpin's default */
	I(ws_keepalive_s, "20", 20, 3600),	/* Pushpin's floor is 20 s */
	I(ws_lease_s, "60", 25, 86400),
	I(ws_activity_timeout_s, "120", 5, 3600),
	I(ws_client_events_per_s, "10", 1, 10000),	/* Pusher's limit */
	I(ws_max_channels, "100", 1, 100000),
	I(presence_max_members, "100", 1, 100000),	/* Pusher's limit */
	I(presence_max_user_info, "2048", 64, 65535),	/* Sockudo's (Pusher: 1 KB) */
	I(webhook_timeout_ms, "5000", 100, 600000),
	I(webhook_retry_base_ms, "1000", 1, 3600000),
	I(webhook_max_attempts, "8", 1, 100),
};

#define NDEFS (sizeof(defs) / sizeof(defs[0]))

static const struct cdef *
find(const char *key)
{
	size_t i;

	for (i = 0; i < NDEFS; i++)
		if (strcmp(defs[i].key, key) == 0)
			return &defs[i];
	return NULL;
}

/* Set one key from its text form; err gets a sentence on failure. */
int
config_set(struct config *c, const char *key, const char *value, char *err,
    size_t errlen)
{
	const struct cdef *d;
	long long v;
	char *copy;

	if ((d = find(key)) == NULL) {
		snprintf(err, errlen, "unknown key \"%s\"", key);
		return -1;
	}
	if (d->type == C_INT) {
		if (str_to_ll(value, d->min, d->max, &v) != 0) {
			snprintf(err, errlen, "%s: \"%s\" is not a number in %lld..%lld",
			    key, value, d->min, d->max);
			return -1;
		}
		*(int *)((char *)c + d->off) = (int)v;
		return 0;
	}
	if ((copy = strdup(value)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	free(*(char **)((char *)c + d->off));
	*(char **)((char *)c + d->off) = copy;
	return 0;
}

struct config *
config_new(void)
{
	struct config *c;
	char err[128];
	size_t i;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	for (i = 0; i < NDEFS; i++)
		if (config_set(c, defs[i].key, defs[i].def, err, sizeof(err)) != 0) {
			config_free(c);
			return NULL;
		}
	return c;
}

void
config_free(struct config *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < NDEFS; i++)
		if (defs[i].type == C_STR)
			free(*(char **)((char *)c + defs[i].off));
	free(c);
}

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* One line of `key = value`; blank lines and `#` comments are fine. */
int
config_parse_line(struct config *c, const char *line, char *err, size_t errlen)
{
	char buf[1024], *p, *eq, *key, *val;

	if (strlen(line) >= sizeof(buf)) {
		snprintf(err, errlen, "line too long");
		return -1;
	}
	strcpy(buf, line);
	if ((p = strchr(buf, '#')) != NULL)
		*p = '\0';
	p = trim(buf);
	if (*p == '\0')
		return 0;
	if ((eq = strchr(p, '=')) == NULL) {
		snprintf(err, errlen, "expected \"key = value\"");
		return -1;
	}
	*eq = '\0';
	key = trim(p);
	val = trim(eq + 1);
	return config_set(c, key, val, err, errlen);
}

/* Load a file over the defaults already in c.  err names the line. */
int
config_load(struct config *c, const char *path, char *err, size_t errlen)
{
	FILE *f;
	char line[1024], msg[256];
	int lineno = 0, rc = -1;

	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			snprintf(err, errlen, "%s:%d: line too long", path, lineno);
			goto out;
		}
		if (config_parse_line(c, line, msg, sizeof(msg)) != 0) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, msg);
			goto out;
		}
	}
	rc = config_check(c, err, errlen);
out:
	fclose(f);
	return rc;
}

/* Apply command-line overrides; err names the option that failed. */
int
config_apply(struct config *c, const struct config_override *o, size_t n, char *err,
    size_t errlen)
{
	char msg[256];
	size_t i;

	for (i = 0; i < n; i++)
		if (o[i].value != NULL &&
		    config_set(c, o[i].key, o[i].value, msg, sizeof(msg)) != 0) {
			snprintf(err, errlen, "--%s: %s", o[i].key, msg);
			return -1;
		}
	return 0;
}

/* Cross-key checks that a single key's bounds cannot express. */
int
config_check(const struct config *c, char *err, size_t errlen)
{
	static const char *const levels[] = { "error", "warn", "info", "debug" };
	const char *why;
	size_t i;

	for (i = 0; i < 4; i++)
		if (strcmp(c->log_level, levels[i]) == 0)
			break;
	if (i == 4) {
		snprintf(err, errlen, "log_level: \"%s\" is not one of error, warn, info, debug",
		    c->log_level);
		return -1;
	}
	if (*c->memcached == '\0') {
		snprintf(err, errlen, "memcached: at least one server is needed");
		return -1;
	}
	if (*c->db_name == '\0' || *c->db_user == '\0') {
		snprintf(err, errlen, "db_name and db_user must be set");
		return -1;
	}
	if (c->ws_lease_s < c->ws_keepalive_s + 5) {
		/* a connection renews its lease once per keep-alive at least */
		snprintf(err, errlen, "ws_lease_s (%d) must be at least ws_keepalive_s (%d) + 5",
		    c->ws_lease_s, c->ws_keepalive_s);
		return -1;
	}
	if (strncmp(c->fcm_token_url, "https://", 8) != 0 &&
	    strncmp(c->fcm_token_url, "http://", 7) != 0) {
		snprintf(err, errlen, "fcm_token_url: an http(s) URL is needed");
		return -1;
	}
	if ((why = push_allow_list_check(c->webpush_allow)) != NULL) {
		snprintf(err, errlen, "webpush_allow: %s", why);
		return -1;
	}
	if (*c->push_secret_key != '\0' && config_push_key(c, NULL) != 0) {
		snprintf(err, errlen, "push_secret_key: 64 hex digits (32 bytes) are needed");
		return -1;
	}
	return 0;
}

/*
 * The key that seals push credentials, from push_secret_key (64 hex
 * digits).  Returns -1 when it is not set or not such a key.
 */
int
config_push_key(const struct config *c, unsigned char key[32])
{
	unsigned char k[32];
	unsigned v;
	size_t i;

	if (strlen(c->push_secret_key) != 64)
		return -1;
	for (i = 0; i < 32; i++) {
		if (!isxdigit((unsigned char)c->push_secret_key[2 * i]) ||
		    !isxdigit((unsigned char)c->push_secret_key[2 * i + 1]) ||
		    sscanf(c->push_secret_key + 2 * i, "%2x", &v) != 1)
			return -1;
		k[i] = (unsigned char)v;
	}
	if (key != NULL)
		memcpy(key, k, 32);
	return 0;
}
