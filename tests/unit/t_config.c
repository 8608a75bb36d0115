/* tests/unit/t_config.c: config defaults, the line parser, files and cross-key checks. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/app.h"
#include "tap.h"

static char tmpdir[] = "/tmp/t_config.XXXXXX";

/* Write text to a fresh file in tmpdir; returns its path (static buffer). */
static const char *
write_file(const char *name, const char *text)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	if ((f = fopen(path, "w")) == NULL)
		return NULL;
	fputs(text, f);
	fclose(f);
	return path;
}

static void
test_defaults(void)
{
	struct config *c = config_new();
	char err[256];

	ok(c != NULL, "config_new");
	if (c == NULL)
		return;
	is_str(c->listen, "", "listen default empty (fd 0)");
	ok(c->workers == 2, "workers = 2");
	ok(c->threads == 12, "threads = 12");
	is_str(c->pidfile, "", "pidfile default empty");
	is_str(c->log_level, "info", "log_level = info");
	is_str(c->db_host, "localhost", "db_host = localhost");
	ok(c->db_port == 3306, "db_port = 3306");
	is_str(c->db_socket, "", "db_socket default empty");
	is_str(c->db_user, "sockudo", "db_user = sockudo");
	is_str(c->db_password, "", "db_password default empty");
	is_str(c->db_name, "sockudo", "db_name = sockudo");
	ok(c->db_connect_timeout == 2, "db_connect_timeout = 2");
	ok(c->db_rw_timeout == 2, "db_rw_timeout = 2");
	is_str(c->memcached, "127.0.0.1:11211", "memcached = 127.0.0.1:11211");
	ok(c->memcached_timeout_ms == 200, "memcached_timeout_ms = 200");
	ok(c->auth_timestamp_skew == 600, "auth_timestamp_skew = 600");
	ok(c->max_body_bytes == 1048576, "max_body_bytes = 1 MiB");
	ok(c->max_query_params == 64, "max_query_params = 64");
	ok(c->request_timeout == 10, "request_timeout = 10");
	ok(c->app_cache_ttl == 5, "app_cache_ttl = 5");
	ok(c->channel_cache_ttl_ms == 1000, "channel_cache_ttl_ms = 1000");
	/* never a service account's token_uri: tenants write those */
	is_str(c->fcm_token_url, "https://oauth2.googleapis.com/token",
	    "fcm_token_url = Google's token endpoint");
	ok(config_check(c, err, sizeof(err)) == 0, "defaults pass config_check");
	config_free(c);
	config_free(NULL);
	ok(1, "config_free(NULL) is a no-op");
}

static void
test_lines(void)
{
	struct config *c = config_new();
	char err[256];

	if (c == NULL) {
		ok(0, "config_new");
		return;
	}
	ok(config_parse_line(c, "", err, sizeof(err)) == 0, "empty line");
	ok(config_parse_line(c, "   \t \n", err, sizeof(err)) == 0, "blank line");
	ok(config_parse_line(c, "# workers = 99", err, sizeof(err)) == 0 && c->workers == 2,
	    "comment line ignored");
	ok(config_parse_line(c, "   # indented comment", err, sizeof(err)) == 0,
	    "indented comment");
	ok(config_parse_line(c, "workers=3", err, sizeof(err)) == 0 && c->workers == 3,
	    "key=value without spaces");
	ok(config_parse_line(c, "  workers   =   5  \n", err, sizeof(err)) == 0 &&
	    c->workers == 5, "spaces around key, '=' and value");
	ok(config_parse_line(c, "\tthreads\t=\t7\r\n", err, sizeof(err)) == 0 &&
	    c->threads == 7, "tabs and CRLF");
	ok(config_parse_line(c, "workers = 6 # six", err, sizeof(err)) == 0 &&
	    c->workers == 6, "trailing comment");
	ok(config_parse_line(c, "listen = unix:/run/sockudo/x.sock", err, sizeof(err)) == 0,
	    "string value");
	is_str(c->listen, "unix:/run/sockudo/x.sock", "listen set, ':' and '/' kept");
	ok(config_parse_line(c, "db_password = a=b", err, sizeof(err)) == 0, "value with '='");
	is_str(c->db_password, "a=b", "only the first '=' separates");
	ok(config_parse_line(c, "db_host =", err, sizeof(err)) == 0, "empty value");
	is_str(c->db_host, "", "empty string value set");
	ok(config_parse_line(c, "log_level = debug", err, sizeof(err)) == 0, "log_level");
	is_str(c->log_level, "debug", "log_level = debug");

	err[0] = '\0';
	ok(config_parse_line(c, "bogus = 1", err, sizeof(err)) != 0 &&
	    strstr(err, "bogus") != NULL, "unknown key rejected, named in the error");
	ok(config_parse_line(c, "Workers = 1", err, sizeof(err)) != 0,
	    "keys are case-sensitive");
	err[0] = '\0';
	ok(config_parse_line(c, "workers", err, sizeof(err)) != 0 && err[0] != '\0',
	    "a line without '=' rejected");
	ok(config_parse_line(c, "= 3", err, sizeof(err)) != 0, "empty key rejected");
	err[0] = '\0';
	ok(config_parse_line(c, "workers = 0", err, sizeof(err)) != 0 &&
	    strstr(err, "workers") != NULL, "workers = 0 below 1 rejected");
	ok(config_parse_line(c, "workers = 257", err, sizeof(err)) != 0,
	    "workers = 257 above 256 rejected");
	ok(config_parse_line(c, "workers = 256", err, sizeof(err)) == 0 && c->workers == 256,
	    "workers = 256 accepted");
	ok(config_parse_line(c, "db_port = 65536", err, sizeof(err)) != 0, "db_port 65536");
	ok(config_parse_line(c, "channel_cache_ttl_ms = 2001", err, sizeof(err)) != 0,
	    "channel_cache_ttl_ms over 2000 rejected (SPEC 4: at most 2 s stale)");
	ok(config_parse_line(c, "channel_cache_ttl_ms = 2000", err, sizeof(err)) == 0,
	    "channel_cache_ttl_ms = 2000 accepted");
	ok(config_parse_line(c, "max_query_params = 7", err, sizeof(err)) != 0,
	    "max_query_params below 8 rejected");
	ok(config_parse_line(c, "workers = abc", err, sizeof(err)) != 0, "non-number rejected");
	ok(config_parse_line(c, "workers = 3x", err, sizeof(err)) != 0, "3x rejected");
	ok(config_parse_line(c, "workers = -1", err, sizeof(err)) != 0, "-1 rejected");
	ok(config_parse_line(c, "workers = +3", err, sizeof(err)) != 0, "+3 rejected");
	ok(config_parse_line(c, "workers =", err, sizeof(err)) != 0, "empty number rejected");
	ok(config_parse_line(c, "workers = 99999999999999999999", err, sizeof(err)) != 0,
	    "overflowing number rejected");
	ok(c->workers == 256, "failed lines left workers unchanged");
	config_free(c);
}

static void
test_files(void)
{
	struct config *c;
	const char *path;
	char err[512], want[300];

	path = write_file("good.conf",
	    "# sockudo-fcgi test config\n"
	    "\n"
	    "listen = 127.0.0.1:9000\n"
	    "workers = 3\n"
	    "threads=8\n"
	    "  db_socket = /run/mysqld/mysqld.sock  \n"
	    "db_password = s3cret\n"
	    "memcached = /run/memcached.sock,127.0.0.1:11211\n"
	    "log_level = warn\n"
	    "channel_cache_ttl_ms = 500");		/* no final newline */
	c = config_new();
	ok(path != NULL && c != NULL, "good file written");
	if (path == NULL || c == NULL)
		return;
	err[0] = '\0';
	ok(config_load(c, path, err, sizeof(err)) == 0, "good file loads (%s)", err);
	is_str(c->listen, "127.0.0.1:9000", "listen from file");
	ok(c->workers == 3 && c->threads == 8, "workers and threads from file");
	is_str(c->db_socket, "/run/mysqld/mysqld.sock", "db_socket trimmed");
	is_str(c->db_password, "s3cret", "db_password");
	is_str(c->memcached, "/run/memcached.sock,127.0.0.1:11211", "memcached list");
	is_str(c->log_level, "warn", "log_level");
	ok(c->channel_cache_ttl_ms == 500, "last line without a newline is read");
	ok(c->db_port == 3306 && c->request_timeout == 10, "unset keys keep defaults");
	config_free(c);

	path = write_file("badline.conf",
	    "workers = 2\n"
	    "# comment\n"
	    "threads = many\n"
	    "bogus = 1\n");
	c = config_new();
	err[0] = '\0';
	ok(config_load(c, path, err, sizeof(err)) != 0, "bad value fails the load");
	snprintf(want, sizeof(want), "%s:3:", path);
	ok(strstr(err, want) != NULL, "error names file and line 3: %s", err);
	ok(strstr(err, "threads") != NULL, "error names the key");
	config_free(c);

	path = write_file("unknown.conf", "\n\n\n\nnot_a_key = 1\n");
	c = config_new();
	err[0] = '\0';
	ok(config_load(c, path, err, sizeof(err)) != 0, "unknown key fails the load");
	snprintf(want, sizeof(want), "%s:5:", path);
	ok(strstr(err, want) != NULL && strstr(err, "not_a_key") != NULL,
	    "error names line 5 and the key: %s", err);
	config_free(c);

	path = write_file("level.conf", "log_level = loud\n");
	c = config_new();
	err[0] = '\0';
	ok(config_load(c, path, err, sizeof(err)) != 0 && strstr(err, "log_level") != NULL,
	    "config_load runs config_check: %s", err);
	config_free(c);

	{
		char *big = malloc(3000);
		memset(big, 'x', 2999);
		memcpy(big, "db_password = ", 14);
		big[2998] = '\n';
		big[2999] = '\0';
		path = write_file("long.conf", big);
		free(big);
	}
	c = config_new();
	err[0] = '\0';
	ok(config_load(c, path, err, sizeof(err)) != 0 && strstr(err, ":1:") != NULL,
	    "an over-long line is an error on line 1: %s", err);
	config_free(c);

	c = config_new();
	snprintf(want, sizeof(want), "%s/does-not-exist.conf", tmpdir);
	err[0] = '\0';
	ok(config_load(c, want, err, sizeof(err)) != 0 && strstr(err, want) != NULL,
	    "a missing file is an error naming it");
	config_free(c);
}

static void
test_check(void)
{
	struct config *c = config_new();
	char err[256];
	static const char *const levels[] = { "error", "warn", "info", "debug" };
	size_t i;

	if (c == NULL) {
		ok(0, "config_new");
		return;
	}
	for (i = 0; i < 4; i++) {
		config_set(c, "log_level", levels[i], err, sizeof(err));
		ok(config_check(c, err, sizeof(err)) == 0, "log_level %s ok", levels[i]);
	}
	config_set(c, "log_level", "verbose", err, sizeof(err));
	err[0] = '\0';
	ok(config_check(c, err, sizeof(err)) != 0 && strstr(err, "log_level") != NULL,
	    "log_level verbose rejected: %s", err);
	config_set(c, "log_level", "INFO", err, sizeof(err));
	ok(config_check(c, err, sizeof(err)) != 0, "log_level is case-sensitive");
	config_set(c, "log_level", "info", err, sizeof(err));
	config_set(c, "memcached", "", err, sizeof(err));
	ok(config_check(c, err, sizeof(err)) != 0, "empty memcached rejected");
	config_set(c, "memcached", "127.0.0.1:11211", err, sizeof(err));
	config_set(c, "db_name", "", err, sizeof(err));
	ok(config_check(c, err, sizeof(err)) != 0, "empty db_name rejected");
	config_set(c, "db_name", "sockudo", err, sizeof(err));
	config_set(c, "db_user", "", err, sizeof(err));
	ok(config_check(c, err, sizeof(err)) != 0, "empty db_user rejected");
	config_set(c, "db_user", "sockudo", err, sizeof(err));
	ok(config_set(c, "ws_keepalive_s", "19", err, sizeof(err)) != 0,
	    "ws_keepalive_s under Pushpin's floor of 20 s rejected");
	config_set(c, "ws_keepalive_s", "30", err, sizeof(err));
	config_set(c, "ws_lease_s", "34", err, sizeof(err));
	ok(config_check(c, err, sizeof(err)) != 0 && strstr(err, "ws_lease_s") != NULL,
	    "a lease shorter than a keep-alive + 5 s rejected: %s", err);
	config_set(c, "ws_lease_s", "35", err, sizeof(err));
	ok(config_check(c, err, sizeof(err)) == 0, "keep-alive 30 s, lease 35 s pass");
	is_str(c->webpush_allow, "", "webpush_allow default empty: no endpoint exempt");
	config_set(c, "webpush_allow", "127.0.0.1:9000, [::1]:9001", err, sizeof(err));
	ok(config_check(c, err, sizeof(err)) == 0, "webpush_allow of two host:port entries");
	config_set(c, "webpush_allow", "http://127.0.0.1:9000/", err, sizeof(err));
	ok(config_check(c, err, sizeof(err)) != 0 && strstr(err, "webpush_allow") != NULL,
	    "webpush_allow holding a URL rejected: %s", err);
	config_set(c, "webpush_allow", "", err, sizeof(err));
	config_set(c, "fcm_token_url", "/token", err, sizeof(err));
	ok(config_check(c, err, sizeof(err)) != 0 && strstr(err, "fcm_token_url") != NULL,
	    "fcm_token_url that is not an http(s) URL rejected: %s", err);
	config_set(c, "fcm_token_url", "https://oauth2.googleapis.com/token", err, sizeof(err));
	ok(config_check(c, err, sizeof(err)) == 0, "restored config passes");
	config_free(c);
}

int
main(void)
{
	int rc;

	if (mkdtemp(tmpdir) == NULL) {
		printf("Bail out! mkdtemp failed\n");
		return 1;
	}
	test_defaults();
	test_lines();
	test_files();
	test_check();
	rc = done_testing();
	{
		static const char *const names[] = { "good.conf", "badline.conf",
		    "unknown.conf", "level.conf", "long.conf" };
		char p[256];
		size_t i;

		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			snprintf(p, sizeof(p), "%s/%s", tmpdir, names[i]);
			unlink(p);
		}
		rmdir(tmpdir);
	}
	return rc;
}
