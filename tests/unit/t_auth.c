/* tests/unit/t_auth.c: SPEC 1 signing known answers and the query decoding they rest on. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "tap.h"

/* A request as the FastCGI layer builds it: method, raw path, raw query. */
static void
req_setup(struct req *r, const struct config *cfg, const char *method,
    const char *path, const char *query)
{
	req_init(r);
	r->cfg = cfg;
	r->method = strdup(method);
	r->path = strdup(path);
	r->query = strdup(query);
}

/* Parse query, then return the string to sign (malloc'd) or NULL. */
static char *
parsed_to_sign(const struct config *cfg, const char *method, const char *path,
    const char *query, int *prc)
{
	struct req r;
	char err[256], *s = NULL;

	req_setup(&r, cfg, method, path, query);
	*prc = req_parse_query(&r, err, sizeof(err));
	if (*prc == 0)
		s = auth_string_to_sign(r.method, r.path, r.params, r.nparams);
	req_free(&r);
	return s;
}

static void
test_md5(void)
{
	static const char body1[] =
	    "{\"name\":\"foo\",\"channels\":[\"project-3\"],\"data\":\"{\\\"some\\\":\\\"data\\\"}\"}";
	char out[33];

	auth_md5_hex(body1, strlen(body1), out);
	is_str(out, "ec365a775a4cd0599faeb73354201b6f", "SPEC 1 vector 1: body_md5");
	auth_md5_hex("example body", 12, out);
	is_str(out, "165d5e6d7ca8f73b3853ce45addf42fc", "SPEC 1 vector 2: body_md5");
	auth_md5_hex("", 0, out);
	is_str(out, "d41d8cd98f00b204e9800998ecf8427e", "md5 of the empty body");
	/* the length is honoured, not strlen: a NUL inside the body counts */
	auth_md5_hex("a\0b", 3, out);
	ok(strcmp(out, "0cc175b9c0f1b6a831c399e269772661") != 0,
	    "md5 covers bytes after an embedded NUL");
}

static void
test_vector1(void)
{
	/* Unsorted, as a client may send them, with auth_signature present. */
	struct qparam p[] = {
		{ "body_md5", "ec365a775a4cd0599faeb73354201b6f" },
		{ "auth_version", "1.0" },
		{ "auth_signature",
		    "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c" },
		{ "auth_timestamp", "1353088179" },
		{ "auth_key", "278d425bdf160c739803" },
	};
	char mac[65], *s;

	s = auth_string_to_sign("POST", "/apps/3/events", p, 5);
	is_str(s, "POST\n/apps/3/events\nauth_key=278d425bdf160c739803"
	    "&auth_timestamp=1353088179&auth_version=1.0"
	    "&body_md5=ec365a775a4cd0599faeb73354201b6f",
	    "vector 1: string to sign sorted, auth_signature excluded");
	if (s != NULL) {
		auth_hmac_hex("7ad3773142a6692b25b8", s, mac);
		is_str(mac, "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c",
		    "vector 1: auth_signature");
	} else
		ok(0, "vector 1: auth_signature (no string to sign)");
	free(s);

	/* The same without auth_signature gives the same string. */
	s = auth_string_to_sign("POST", "/apps/3/events", p, 2);
	is_str(s, "POST\n/apps/3/events\nauth_version=1.0"
	    "&body_md5=ec365a775a4cd0599faeb73354201b6f", "subset of parameters");
	free(s);
}

static void
test_vector2(void)
{
	struct qparam p[] = {
		{ "auth_timestamp", "1234567890" },
		{ "auth_signature", "ignored-whatever-it-is" },
		{ "body_md5", "165d5e6d7ca8f73b3853ce45addf42fc" },
		{ "auth_key", "f00d" },
		{ "auth_version", "1.0" },
	};
	char mac[65], *s;

	s = auth_string_to_sign("GET", "/event", p, 5);
	is_str(s, "GET\n/event\nauth_key=f00d&auth_timestamp=1234567890"
	    "&auth_version=1.0&body_md5=165d5e6d7ca8f73b3853ce45addf42fc",
	    "vector 2: string to sign");
	if (s != NULL) {
		auth_hmac_hex("tofu", s, mac);
		is_str(mac, "a650196dc427ebe837226f8565ca9232198c6d1b9455eaa72374a9dc0b620e7b",
		    "vector 2: auth_signature");
		auth_hmac_hex("tofv", s, mac);
		ok(strcmp(mac, "a650196dc427ebe837226f8565ca9232198c6d1b9455eaa72374a9dc0b620e7b")
		    != 0, "vector 2: another secret gives another signature");
	} else {
		ok(0, "vector 2: auth_signature (no string to sign)");
		ok(0, "vector 2: other secret (no string to sign)");
	}
	free(s);

	s = auth_string_to_sign("GET", "/event", p, 0);
	is_str(s, "GET\n/event\n", "no parameters: empty QUERY line");
	free(s);
}

/* Vector 1 end to end: raw query string -> parser -> signature. */
static void
test_vector1_parsed(const struct config *cfg)
{
	char mac[65], *s;
	int rc;

	s = parsed_to_sign(cfg, "POST", "/apps/3/events",
	    "auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
	    "&body_md5=ec365a775a4cd0599faeb73354201b6f&AUTH_VERSION=1.0"
	    "&auth_timestamp=1353088179&auth_key=278d425bdf160c739803", &rc);
	ok(rc == 0, "vector 1 query parses");
	if (s != NULL) {
		auth_hmac_hex("7ad3773142a6692b25b8", s, mac);
		is_str(mac, "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c",
		    "vector 1 from a raw, unsorted, mixed-case query");
	} else
		ok(0, "vector 1 from a raw query (no string to sign)");
	free(s);
}

static void
test_decoding(struct config *cfg)
{
	struct req r;
	char err[256], *s;
	int rc;

	req_setup(&r, cfg, "GET", "/apps/1/channels", "auth_key=k&b=a%2Bb&c=a+b&A=%41");
	rc = req_parse_query(&r, err, sizeof(err));
	ok(rc == 0, "query with escapes and '+' parses");
	ok(r.nparams == 4, "four parameters (got %zu)", r.nparams);
	is_str(req_param(&r, "b"), "a+b", "%%2B decodes to '+'");
	is_str(req_param(&r, "c"), "a+b", "'+' stays '+', not a space");
	is_str(req_param(&r, "a"), "A", "key lower-cased, value %%41 decoded");
	ok(req_param(&r, "A") == NULL, "no upper-case key survives");
	is_str(req_param(&r, "auth_key"), "k", "plain value");
	s = auth_string_to_sign(r.method, r.path, r.params, r.nparams);
	is_str(s, "GET\n/apps/1/channels\na=A&auth_key=k&b=a+b&c=a+b",
	    "string to sign uses decoded values and lower-cased sorted keys");
	free(s);
	req_free(&r);

	/* Percent-encoded key, and a path that stays raw. */
	req_setup(&r, cfg, "GET", "/apps/1/channels/a%3Ab", "%41uth_key=k&filter_by_prefix=presence%2D");
	ok(req_parse_query(&r, err, sizeof(err)) == 0, "encoded key parses");
	is_str(req_param(&r, "auth_key"), "k", "key %%41uth_key decodes and lower-cases");
	s = auth_string_to_sign(r.method, r.path, r.params, r.nparams);
	is_str(s, "GET\n/apps/1/channels/a%3Ab\nauth_key=k&filter_by_prefix=presence-",
	    "path stays percent-encoded in the string to sign");
	free(s);
	req_free(&r);

	/* Byte order sort: '_' (0x5f) sorts before 'a' (0x61) and after digits. */
	s = parsed_to_sign(cfg, "GET", "/x", "ab=1&a_b=2&a0=3&a=4", &rc);
	is_str(s, "GET\n/x\na=4&a0=3&a_b=2&ab=1", "keys sorted in byte order");
	free(s);

	/* Malformed escapes. */
	static const char *const bad[] = {
		"a=%4", "a=%zz", "a=%", "a=b%4g", "a=%g1", "%4=1", "%zz=1", "a=1&b=%",
	};
	size_t i;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		req_setup(&r, cfg, "GET", "/x", bad[i]);
		err[0] = '\0';
		rc = req_parse_query(&r, err, sizeof(err));
		ok(rc != 0 && err[0] != '\0', "malformed escape rejected: %s", bad[i]);
		req_free(&r);
	}

	/* Duplicates, also after lower-casing or decoding. */
	static const char *const dup[] = {
		"a=1&a=2", "a=1&A=1", "auth_key=x&%61uth_key=x", "a=1&b=2&a=",
	};
	for (i = 0; i < sizeof(dup) / sizeof(dup[0]); i++) {
		req_setup(&r, cfg, "GET", "/x", dup[i]);
		err[0] = '\0';
		rc = req_parse_query(&r, err, sizeof(err));
		ok(rc != 0 && err[0] != '\0', "duplicate key rejected: %s", dup[i]);
		req_free(&r);
	}

	/* An empty key. */
	req_setup(&r, cfg, "GET", "/x", "=v");
	ok(req_parse_query(&r, err, sizeof(err)) != 0, "empty key rejected");
	req_free(&r);

	/* max_query_params: exactly the limit passes, one more fails. */
	ok(config_set(cfg, "max_query_params", "8", err, sizeof(err)) == 0,
	    "max_query_params = 8");
	req_setup(&r, cfg, "GET", "/x", "a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8");
	ok(req_parse_query(&r, err, sizeof(err)) == 0 && r.nparams == 8,
	    "8 parameters with max_query_params = 8");
	req_free(&r);
	req_setup(&r, cfg, "GET", "/x", "a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9");
	err[0] = '\0';
	ok(req_parse_query(&r, err, sizeof(err)) != 0 && err[0] != '\0',
	    "9 parameters with max_query_params = 8 rejected");
	req_free(&r);
	/* empty segments do not count */
	req_setup(&r, cfg, "GET", "/x", "&a=1&&b=2&c=3&d=4&e=5&f=6&g=7&h=8&");
	ok(req_parse_query(&r, err, sizeof(err)) == 0 && r.nparams == 8,
	    "empty '&&' segments are skipped, not counted");
	req_free(&r);
	config_set(cfg, "max_query_params", "64", err, sizeof(err));
}

int
main(void)
{
	struct config *cfg;

	if ((cfg = config_new()) == NULL) {
		printf("Bail out! config_new failed\n");
		return 1;
	}
	test_md5();
	test_vector1();
	test_vector2();
	test_vector1_parsed(cfg);
	test_decoding(cfg);
	config_free(cfg);
	return done_testing();
}
