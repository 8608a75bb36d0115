/* app/cli.c: the admin subcommands: migrate and app create|list|show|enable|disable|... */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "app.h"
#include "push.h"
#include "db/db.h"

#ifndef SCHEMA_DIR
#define SCHEMA_DIR "/usr/share/sockudo-fcgi/schema"
#endif

static struct db *
open_db(const struct config *cfg)
{
	struct db *d = db_new(cfg);

	if (d == NULL || db_ping(d) != 0) {
		fprintf(stderr, "sockudo-fcgi: cannot reach MariaDB\n");
		db_free(d);
		return NULL;
	}
	return d;
}

/* sockudo-fcgi migrate: apply pending schema files.  Exit 0 or 1. */
int
cli_migrate(const struct config *cfg)
{
	const char *dir = getenv("SOCKUDO_SCHEMA_DIR");
	struct config slow = *cfg;	/* borrows cfg's strings */
	struct db *d;
	int rc;

	/* a migration may rebuild a big table: no request-sized timeout */
	slow.db_rw_timeout = 24 * 3600;
	if ((d = open_db(&slow)) == NULL)
		return 1;
	rc = db_migrate(d, dir ? dir : SCHEMA_DIR, 1);
	db_free(d);
	return rc == 0 ? 0 : 1;
}

static void
print_app(const struct app *a, int with_secret)
{
	printf("id=%s\nkey=%s\n", a->id, a->key);
	if (with_secret)
		printf("secret=%s\n", a->secret);
	else
		printf("name=%s\nenabled=%d\nflags=%s%s%s%s\nmax_event_data_bytes=%d\n"
		    "max_channels_per_event=%d\nmax_batch_size=%d\nmax_publish_rps=%d\n"
		    "max_read_rps=%d\nidempotency_ttl_s=%d\nhistory_max_age_s=%d\n"
		    "history_max_messages=%d\nwebhook_url=%s\n", a->name, a->enabled,
		    a->flags & APP_F_HISTORY ? "history," : "",
		    a->flags & APP_F_MESSAGES ? "messages," : "",
		    a->flags & APP_F_ANNOTATIONS ? "annotations," : "",
		    a->flags & APP_F_PUSH ? "push" : "",
		    a->max_event_data_bytes, a->max_channels_per_event, a->max_batch_size,
		    a->max_publish_rps, a->max_read_rps, a->idempotency_ttl_s,
		    a->history_max_age_s, a->history_max_messages, a->webhook_url);
}

static int
list_row(const struct db_row *row, void *arg)
{
	printf("%s\t%s\t%s\t%s\n", row->col[0], row->col[1], row->col[4][0] == '1' ?
	    "enabled" : "disabled", row->col[3]);
	return 0;
}

static int
app_create(struct db *d, int argc, char **argv)
{
	struct app a;
	unsigned char r[4];
	int i;

	app_defaults(&a);
	for (i = 0; i + 1 < argc; i += 2) {
		char *dst = NULL;
		size_t len = 0;
		if (strcmp(argv[i], "--id") == 0)
			dst = a.id, len = sizeof(a.id);
		else if (strcmp(argv[i], "--key") == 0)
			dst = a.key, len = sizeof(a.key);
		else if (strcmp(argv[i], "--secret") == 0)
			dst = a.secret, len = sizeof(a.secret);
		else if (strcmp(argv[i], "--name") == 0)
			dst = a.name, len = sizeof(a.name);
		/* ids, keys and secrets go into URLs and signatures: no spaces or controls */
		if (dst == NULL || strlen(argv[i + 1]) >= len || *argv[i + 1] == '\0' ||
		    !valid_text(argv[i + 1], strlen(argv[i + 1])) ||
		    (dst != a.name && strpbrk(argv[i + 1], " /?#%&+") != NULL)) {
			fprintf(stderr, "sockudo-fcgi: app create: bad option %s\n", argv[i]);
			return 1;
		}
		strcpy(dst, argv[i + 1]);
	}
	if (i != argc) {
		fprintf(stderr, "sockudo-fcgi: app create: %s needs a value\n", argv[i]);
		return 1;
	}
	if (a.id[0] == '\0') {
		/* Pusher app ids are numeric strings */
		random_bytes(r, sizeof(r));
		snprintf(a.id, sizeof(a.id), "%u",
		    1000000 + ((unsigned)r[0] << 24 | r[1] << 16 | r[2] << 8 | r[3]) % 9000000);
	}
	if (a.key[0] == '\0')
		random_hex(a.key, 10);
	if (a.secret[0] == '\0')
		random_hex(a.secret, 16);
	if (db_app_create(d, &a) != 0) {
		fprintf(stderr, "sockudo-fcgi: app create: id or key already exists\n");
		return 1;
	}
	print_app(&a, 1);
	return 0;
}

/* Flag names accepted by `app set ID <flag> 0|1`. */
static const struct { const char *name; unsigned bit; } flagnames[] = {
	{ "history", APP_F_HISTORY }, { "messages", APP_F_MESSAGES },
	{ "annotations", APP_F_ANNOTATIONS }, { "push", APP_F_PUSH },
};

static int
app_set(struct db *d, struct app *a, const char *field, const char *value)
{
	char buf[32];
	long long v;
	size_t i;

	for (i = 0; i < sizeof(flagnames) / sizeof(flagnames[0]); i++) {
		if (strcmp(field, flagnames[i].name) != 0)
			continue;
		if (str_to_ll(value, 0, 1, &v) != 0)
			return fprintf(stderr, "sockudo-fcgi: %s takes 0 or 1\n", field), 1;
		snprintf(buf, sizeof(buf), "%u", v ? a->flags | flagnames[i].bit :
		    a->flags & ~flagnames[i].bit);
		return db_app_set(d, a->id, "flags", buf) == 0 ? 0 : 1;
	}
	if (strcmp(field, "webhook_url") == 0 && *value != '\0' &&
	    ((strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0) ||
	    strlen(value) > 500 || strpbrk(value, " \t\r\n") != NULL))
		return fprintf(stderr, "sockudo-fcgi: webhook_url: an http(s) URL of at most 500"
		    " bytes, or \"\"\n"), 1;
	if (strcmp(field, "name") == 0 && (strlen(value) > 128 || !valid_text(value,
	    strlen(value))))
		return fprintf(stderr, "sockudo-fcgi: name: at most 128 bytes of text\n"), 1;
	if (strcmp(field, "name") != 0 && strcmp(field, "webhook_url") != 0 &&
	    str_to_ll(value, 0, 1000000000, &v) != 0)
		return fprintf(stderr, "sockudo-fcgi: %s takes a number\n", field), 1;
	if (strcmp(field, "secret") == 0 || strcmp(field, "enabled") == 0 ||
	    strcmp(field, "flags") == 0 || db_app_set(d, a->id, field, value) != 0) {
		fprintf(stderr, "sockudo-fcgi: cannot set \"%s\"\n", field);
		return 1;
	}
	return 0;
}

/* sockudo-fcgi app ...: exit 0 on success, 1 on any error. */
int
cli_app(const struct config *cfg, int argc, char **argv)
{
	struct db *d;
	struct app a;
	char secret[33];
	int rc = 1;

	if (argc < 1)
		return fprintf(stderr, "sockudo-fcgi: app: missing command\n"), 1;
	if ((d = open_db(cfg)) == NULL)
		return 1;
	if (strcmp(argv[0], "create") == 0)
		rc = app_create(d, argc - 1, argv + 1);
	else if (strcmp(argv[0], "list") == 0 && argc == 1)
		rc = db_app_list(d, list_row, NULL) == 0 ? 0 : 1;
	else if (argc < 2)
		fprintf(stderr, "sockudo-fcgi: app %s: missing app id\n", argv[0]);
	else if (db_app_get(d, "id", argv[1], &a) != 0)
		fprintf(stderr, "sockudo-fcgi: no app \"%s\"\n", argv[1]);
	else if (strcmp(argv[0], "show") == 0 && argc == 2) {
		print_app(&a, 0);
		rc = 0;
	} else if (strcmp(argv[0], "enable") == 0 && argc == 2)
		rc = db_app_set(d, a.id, "enabled", "1") == 0 ? 0 : 1;
	else if (strcmp(argv[0], "disable") == 0 && argc == 2)
		rc = db_app_set(d, a.id, "enabled", "0") == 0 ? 0 : 1;
	else if (strcmp(argv[0], "rotate-secret") == 0 && argc == 2) {
		random_hex(secret, 16);
		if (db_app_set(d, a.id, "secret", secret) == 0) {
			printf("id=%s\nkey=%s\nsecret=%s\n", a.id, a.key, secret);
			rc = 0;
		}
	} else if (strcmp(argv[0], "set") == 0 && argc == 4)
		rc = app_set(d, &a, argv[2], argv[3]);
	else
		fprintf(stderr, "sockudo-fcgi: app: bad command\n");
	db_free(d);
	return rc;
}

struct id_list {
	char	**ids;
	size_t	  n, cap;
};

static int
collect_id(const struct db_row *row, void *arg)
{
	struct id_list *l = arg;
	char **grown;

	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		if ((grown = realloc(l->ids, l->cap * sizeof(*grown))) == NULL)
			return 1;
		l->ids = grown;
	}
	if ((l->ids[l->n] = strdup(row->col[0])) != NULL)
		l->n++;
	return 0;
}

/* A credentials row sealed in the old format, read by reseal_one(). */
struct v1_row {
	char		*app_id, *provider, *sealed;
	struct v1_row	*next;
};

static int
collect_v1(const struct db_row *row, void *arg)
{
	struct v1_row **head = arg, *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return 1;
	r->app_id = strdup(row->col[0]);
	r->provider = strdup(row->col[1]);
	r->sealed = strdup(row->col[2]);
	r->next = *head;
	*head = r;
	return r->app_id == NULL || r->provider == NULL || r->sealed == NULL;
}

/* Seal one old record again for its app and provider.  Returns 1 if replaced, 0, -1. */
static int
reseal_one(struct db *d, const unsigned char key[32], const struct v1_row *r)
{
	char *plain = NULL, *sealed = NULL;
	size_t len = 0;
	long long n = 0;
	int rc = -1;

	if (r->app_id == NULL || r->provider == NULL || r->sealed == NULL)
		return -1;
	if (secret_open(key, r->app_id, r->provider, r->sealed, &plain, &len) != 0) {
		fprintf(stderr, "sockudo-fcgi: maintain: the %s credentials of app %s do not "
		    "open under push_secret_key; left as they are\n", r->provider, r->app_id);
		return 0;
	}
	if ((sealed = secret_seal(key, r->app_id, r->provider, plain, len)) != NULL &&
	    db_push_cred_reseal(d, r->app_id, r->provider, r->sealed, sealed, &n) == 0)
		rc = n > 0;
	OPENSSL_cleanse(plain, len);
	free(plain);
	free(sealed);
	return rc;
}

/*
 * Seal again, in the "v2." format bound to their app and provider, the
 * push credentials still in the "v1." format, which opens for any row
 * (secret_open()).  *n: records re-sealed.  Returns 0 or -1.
 */
static int
reseal_v1(struct db *d, const struct config *cfg, long long *n)
{
	struct v1_row *rows = NULL, *r;
	unsigned char key[32];
	int rc = 0, one;

	*n = 0;
	if (config_push_key(cfg, key) != 0)
		return 0;	/* no key: nothing can be opened, nor sealed */
	if (db_push_cred_v1(d, collect_v1, &rows) != 0)
		rc = -1;
	for (r = rows; rc == 0 && r != NULL; r = r->next)
		if ((one = reseal_one(d, key, r)) < 0)
			rc = -1;
		else
			*n += one;
	OPENSSL_cleanse(key, sizeof(key));
	while (rows != NULL) {
		r = rows->next;
		free(rows->app_id);
		free(rows->provider);
		if (rows->sealed != NULL)
			OPENSSL_cleanse(rows->sealed, strlen(rows->sealed));
		free(rows->sealed);
		free(rows);
		rows = r;
	}
	return rc;
}

/*
 * sockudo-fcgi maintain: apply every app's history retention, drop
 * expired idempotency records and seal old-format push credentials
 * again (reseal_v1).  Safe to run anywhere, any number of times,
 * also at once on several hosts (every step is an idempotent delete).
 * Exit 0 or 1.
 */
int
cli_maintain(const struct config *cfg)
{
	struct config slow = *cfg;	/* borrows cfg's strings */
	struct id_list l = { 0 };
	struct app a;
	struct db *d;
	long long n, msgs = 0, idem = 0, resealed = 0;
	int64_t now = now_ms();
	size_t i;
	int rc = 1;

	slow.db_rw_timeout = 3600;	/* a first run may have a backlog */
	if ((d = open_db(&slow)) == NULL)
		return 1;
	if (db_app_list(d, collect_id, &l) != 0)
		goto out;
	for (i = 0; i < l.n; i++) {
		if (db_app_get(d, "id", l.ids[i], &a) != 0)
			continue;	/* deleted meanwhile */
		if (db_history_retain(d, &a, now, &n) != 0) {
			fprintf(stderr, "sockudo-fcgi: maintain: app %s failed\n", a.id);
			goto out;
		}
		msgs += n;
	}
	if (db_idem_expire(d, now, &idem) != 0)
		goto out;
	if (reseal_v1(d, cfg, &resealed) != 0) {
		fprintf(stderr, "sockudo-fcgi: maintain: push credentials could not be re-sealed\n");
		goto out;
	}
	printf("maintain: %lld messages past retention removed from %zu apps, "
	    "%lld idempotency records expired, %lld push credentials re-sealed\n", msgs, l.n,
	    idem, resealed);
	rc = 0;
out:
	for (i = 0; i < l.n; i++)
		free(l.ids[i]);
	free(l.ids);
	db_free(d);
	return rc;
}
