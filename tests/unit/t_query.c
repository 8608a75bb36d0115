/* tests/unit/t_query.c: query parameters, number parsing, percent-decoding, path matching. */
#include "config.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "handlers/handlers.h"
#include "tap.h"

static int
parse(struct req *r, const struct config *cfg, const char *query)
{
	char err[256];

	req_init(r);
	r->cfg = cfg;
	r->method = strdup("GET");
	r->path = strdup("/x");
	r->query = query ? strdup(query) : NULL;
	return req_parse_query(r, err, sizeof(err));
}

static void
test_params(const struct config *cfg)
{
	struct req r;
	long long v;

	ok(parse(&r, cfg, "") == 0 && r.nparams == 0, "empty query: no parameters");
	ok(req_param(&r, "a") == NULL, "req_param on no parameters is NULL");
	req_free(&r);
	ok(parse(&r, cfg, NULL) == 0 && r.nparams == 0, "NULL query: no parameters");
	req_free(&r);

	ok(parse(&r, cfg, "flag&limit=50&empty=&Dir=Newest_First") == 0,
	    "mixed query parses");
	ok(r.nparams == 4, "four parameters");
	is_str(req_param(&r, "flag"), "", "a key without '=' has the empty value");
	is_str(req_param(&r, "empty"), "", "key= has the empty value");
	is_str(req_param(&r, "dir"), "Newest_First", "values keep their case");
	ok(req_param(&r, "Dir") == NULL, "lookup is by the lower-cased key");
	ok(req_param(&r, "missing") == NULL, "absent key is NULL");
	ok(req_param(&r, "lim") == NULL, "no prefix match");

	ok(req_param_int(&r, "limit", 1, 1000, 100, &v) == 0 && v == 50,
	    "req_param_int in range");
	v = -7;
	ok(req_param_int(&r, "nope", 1, 1000, 100, &v) == 0 && v == 100,
	    "req_param_int absent gives the default");
	ok(req_param_int(&r, "limit", 1, 49, 100, &v) != 0, "req_param_int above max");
	ok(req_param_int(&r, "limit", 51, 1000, 100, &v) != 0, "req_param_int below min");
	ok(req_param_int(&r, "limit", 50, 50, 1, &v) == 0 && v == 50,
	    "req_param_int at min == max");
	ok(req_param_int(&r, "empty", 0, 10, 5, &v) != 0,
	    "req_param_int: empty value is malformed, not the default");
	ok(req_param_int(&r, "dir", 0, 10, 5, &v) != 0, "req_param_int: words rejected");
	req_free(&r);

	ok(parse(&r, cfg, "limit=0&neg=-5&plus=%2B5&sp=%205&big=1001") == 0,
	    "numbers parse");
	ok(req_param_int(&r, "limit", 1, 1000, 100, &v) != 0, "limit=0 below 1 rejected");
	ok(req_param_int(&r, "neg", 0, 1000, 100, &v) != 0, "negative with min 0 rejected");
	ok(req_param_int(&r, "neg", -10, 10, 0, &v) == 0 && v == -5, "negative in range");
	ok(req_param_int(&r, "plus", 0, 10, 0, &v) != 0, "decoded '+5' rejected");
	ok(req_param_int(&r, "sp", 0, 10, 0, &v) != 0, "decoded ' 5' rejected");
	ok(req_param_int(&r, "big", 1, 1000, 100, &v) != 0, "1001 above 1000 rejected");
	req_free(&r);

	/* what a value may not hold once decoded: the query is malformed (400) */
	ok(parse(&r, cfg, "tab=%095") != 0, "a decoded tab rejected");
	req_free(&r);
	ok(parse(&r, cfg, "a=x%00y") != 0, "%%00 rejected (it would cut the value to \"x\")");
	req_free(&r);
	ok(parse(&r, cfg, "a=%0D%0AX-Injected:%201") != 0, "decoded CR/LF rejected");
	req_free(&r);
	ok(parse(&r, cfg, "a=%C0%AF") != 0, "overlong UTF-8 rejected");
	req_free(&r);
	ok(parse(&r, cfg, "a=%FF") != 0, "a byte that is never UTF-8 rejected");
	req_free(&r);
	ok(parse(&r, cfg, "a=%ED%A0%80") != 0, "a UTF-8 surrogate rejected");
	req_free(&r);
	ok(parse(&r, cfg, "%00=1") != 0, "%%00 in a key rejected");
	req_free(&r);
	ok(parse(&r, cfg, "a=%C3%A9t%C3%A9") == 0, "UTF-8 text accepted");
	is_str(req_param(&r, "a"), "\xc3\xa9t\xc3\xa9", "and decoded");
	req_free(&r);
}

static void
test_str_to_ll(void)
{
	long long v;

	v = 42;
	ok(str_to_ll("", 0, 10, &v) != 0 && v == 42, "empty rejected, out untouched");
	ok(str_to_ll(NULL, 0, 10, &v) != 0, "NULL rejected");
	ok(str_to_ll("+1", 0, 10, &v) != 0, "\"+1\" rejected");
	ok(str_to_ll(" 1", 0, 10, &v) != 0, "\" 1\" rejected");
	ok(str_to_ll("\t1", 0, 10, &v) != 0, "\"\\t1\" rejected (leading blank)");
	ok(str_to_ll("\n1", 0, 10, &v) != 0, "\"\\n1\" rejected (leading blank)");
	ok(str_to_ll("1 ", 0, 10, &v) != 0, "\"1 \" rejected");
	ok(str_to_ll("1x", 0, 10, &v) != 0, "\"1x\" rejected");
	ok(str_to_ll("0x1", 0, 10, &v) != 0, "\"0x1\" rejected");
	ok(str_to_ll("1.0", 0, 10, &v) != 0, "\"1.0\" rejected");
	ok(str_to_ll("-", -10, 10, &v) != 0, "\"-\" rejected");
	ok(str_to_ll("-1", 0, 10, &v) != 0, "\"-1\" with min 0 rejected");
	ok(str_to_ll("-1", -1, 10, &v) == 0 && v == -1, "\"-1\" with min -1");
	ok(str_to_ll("0", 0, 0, &v) == 0 && v == 0, "\"0\"");
	ok(str_to_ll("10", 0, 10, &v) == 0 && v == 10, "max inclusive");
	ok(str_to_ll("11", 0, 10, &v) != 0, "max + 1 rejected");
	ok(str_to_ll("4", 5, 10, &v) != 0, "min - 1 rejected");
	ok(str_to_ll("9223372036854775807", LLONG_MIN, LLONG_MAX, &v) == 0 && v == LLONG_MAX,
	    "LLONG_MAX");
	ok(str_to_ll("-9223372036854775808", LLONG_MIN, LLONG_MAX, &v) == 0 && v == LLONG_MIN,
	    "LLONG_MIN");
	ok(str_to_ll("9223372036854775808", LLONG_MIN, LLONG_MAX, &v) != 0,
	    "LLONG_MAX + 1 overflows");
	ok(str_to_ll("-9223372036854775809", LLONG_MIN, LLONG_MAX, &v) != 0,
	    "LLONG_MIN - 1 overflows");
	ok(str_to_ll("99999999999999999999999", LLONG_MIN, LLONG_MAX, &v) != 0,
	    "far overflow");
	ok(str_to_ll("1353088179", 0, 99999999999LL, &v) == 0 && v == 1353088179LL,
	    "a timestamp");
}

static void
test_pct_decode(void)
{
	char out[64];
	size_t n;

	n = 99;
	ok(pct_decode("", 0, out, sizeof(out), &n) == 0 && n == 0 && out[0] == '\0',
	    "empty input");
	ok(pct_decode("abc", 3, out, sizeof(out), &n) == 0 && n == 3, "plain text");
	is_str(out, "abc", "plain text copied");
	ok(pct_decode("%41%62%2f%2F", 12, out, sizeof(out), &n) == 0 && n == 4,
	    "upper and lower hex digits");
	is_str(out, "Ab//", "decoded");
	ok(pct_decode("a+b%20c", 7, out, sizeof(out), NULL) == 0, "outlen may be NULL");
	is_str(out, "a+b c", "'+' stays '+', %%20 is the space");
	ok(pct_decode("%25%32%35", 9, out, sizeof(out), &n) == 0, "%%25 decodes once");
	is_str(out, "%25", "no double decoding");
	ok(pct_decode("%00", 3, out, sizeof(out), &n) != 0,
	    "%%00 rejected: a NUL would cut the string short");
	ok(pct_decode("", 0, out, 0, &n) != 0, "no room even for the NUL: rejected");
	ok(pct_decode("%C3%A9", 6, out, sizeof(out), &n) == 0 && n == 2 &&
	    (unsigned char)out[0] == 0xc3 && (unsigned char)out[1] == 0xa9, "UTF-8 bytes");
	ok(pct_decode("%", 1, out, sizeof(out), &n) != 0, "lone '%%' rejected");
	ok(pct_decode("a%4", 3, out, sizeof(out), &n) != 0, "truncated escape rejected");
	ok(pct_decode("%zz", 3, out, sizeof(out), &n) != 0, "non-hex escape rejected");
	ok(pct_decode("%4g", 3, out, sizeof(out), &n) != 0, "half-hex escape rejected");
	ok(pct_decode("% 41", 4, out, sizeof(out), &n) != 0, "'%% 4' rejected");
	/* len bounds the input: an escape cut by len is an error, bytes past it are ignored */
	ok(pct_decode("%41", 2, out, sizeof(out), &n) != 0, "escape cut by len rejected");
	ok(pct_decode("abXYZ", 2, out, sizeof(out), &n) == 0 && n == 2 &&
	    strcmp(out, "ab") == 0, "bytes past len ignored");
	/* dst bounds */
	ok(pct_decode("abc", 3, out, 3, &n) != 0, "dst one byte short (no room for NUL)");
	ok(pct_decode("abc", 3, out, 4, &n) == 0 && n == 3, "dst exactly len + 1");
	ok(pct_decode("%41%41", 6, out, 3, &n) == 0 && strcmp(out, "AA") == 0,
	    "decoded output needs less room than input");
	ok(pct_decode("a", 1, out, 0, &n) != 0, "dstlen 0 rejected");
}

static void
free_args(char **args, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(args[i]);
		args[i] = NULL;
	}
}

static void
test_router(void)
{
	static const char pat[] = "/apps/:app/channels/:channel";
	char *args[REQ_MAX_ROUTE_ARGS] = { NULL };
	size_t n;
	int m;

	m = router_match_path(pat, "/apps/42/channels/presence-x", args, &n);
	ok(m == 1 && n == 2, "two captures");
	if (m == 1 && n == 2) {
		is_str(args[0], "42", "first capture");
		is_str(args[1], "presence-x", "second capture");
	} else {
		ok(0, "first capture");
		ok(0, "second capture");
	}
	free_args(args, n);

	m = router_match_path(pat, "/apps/a%2Fb/channels/c%3Ad%23", args, &n);
	ok(m == 1 && n == 2, "%%2F inside a segment does not split it");
	if (m == 1 && n == 2) {
		is_str(args[0], "a/b", "capture decoded: a/b");
		is_str(args[1], "c:d#", "capture decoded: c:d#");
	} else {
		ok(0, "capture decoded: a/b");
		ok(0, "capture decoded: c:d#");
	}
	free_args(args, n);

	m = router_match_path(pat, "/apps/42/channels/x/", args, &n);
	ok(m == 0 && n == 0, "trailing slash: no match");
	free_args(args, n);
	m = router_match_path(pat, "/apps/42/channels/x/users", args, &n);
	ok(m == 0 && n == 0, "extra segment: no match");
	free_args(args, n);
	m = router_match_path(pat, "/apps/42/channels", args, &n);
	ok(m == 0 && n == 0, "missing segment: no match");
	free_args(args, n);
	m = router_match_path(pat, "/apps//channels/x", args, &n);
	ok(m == 0 && n == 0, "empty capture: no match");
	free_args(args, n);
	m = router_match_path(pat, "/apps/42/channel/x", args, &n);
	ok(m == 0 && n == 0, "literal segment differs: no match");
	free_args(args, n);
	m = router_match_path(pat, "/apps/42/channelsx/x", args, &n);
	ok(m == 0 && n == 0, "literal segment longer: no match");
	free_args(args, n);
	m = router_match_path(pat, "/apps/42/Channels/x", args, &n);
	ok(m == 0, "literal segments are case-sensitive");
	free_args(args, n);
	m = router_match_path(pat, "apps/42/channels/x", args, &n);
	ok(m == 0, "no leading slash: no match");
	free_args(args, n);
	m = router_match_path(pat, "/apps%2F42/channels/x", args, &n);
	ok(m == 0, "an encoded slash never matches a literal '/'");
	free_args(args, n);

	n = 99;
	m = router_match_path(pat, "/apps/4%2/channels/x", args, &n);
	ok(m == -1, "bad escape in a capture: -1");
	free_args(args, n);
	{
		static const char *const bad[] = { "%00", "x%00y", "a%0D%0Ab", "%C0%AF", "%FF",
		    "%ED%A0%80", "%F4%90%80%80", "%7F", "%C2%85" };
		char path[64];
		size_t i;

		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			snprintf(path, sizeof(path), "/apps/42/channels/%s", bad[i]);
			m = router_match_path(pat, path, args, &n);
			ok(m == -1, "a capture decoding to no valid text (%s): -1", bad[i]);
			free_args(args, n);
		}
		m = router_match_path(pat, "/apps/42/channels/%C3%A9", args, &n);
		ok(m == 1, "a capture of UTF-8 text matches");
		free_args(args, n);
	}
	m = router_match_path(pat, "/apps/42/channels/%zz", args, &n);
	ok(m == -1, "non-hex escape in a capture: -1");
	free_args(args, n);

	m = router_match_path("/up", "/up", args, &n);
	ok(m == 1 && n == 0, "no captures");
	m = router_match_path("/up", "/upx", args, &n);
	ok(m == 0, "/up does not match /upx");
	m = router_match_path("/up", "/up/", args, &n);
	ok(m == 0, "/up does not match /up/");
	m = router_match_path("/up/:app", "/up/", args, &n);
	ok(m == 0 && n == 0, "/up/:app does not match /up/");
	free_args(args, n);
	m = router_match_path("/up/:app", "/up/7", args, &n);
	ok(m == 1 && n == 1 && strcmp(args[0], "7") == 0, "/up/:app matches /up/7");
	free_args(args, n);
	m = router_match_path("/apps/:app/events", "/apps/3/events?x=1", args, &n);
	ok(m == 0, "a path with a query part is not a route path");
	free_args(args, n);
}

static void
test_info(void)
{
	int s = 9, u = 9, c = 9;
	char err[128];

	ok(info_parse(NULL, &s, &u, &c, err, sizeof(err)) == 0 && s == 0 && u == 0 && c == 0,
	    "NULL list: nothing, flags cleared");
	s = u = c = 9;
	ok(info_parse("", &s, &u, &c, err, sizeof(err)) == 0 && s == 0 && u == 0 && c == 0,
	    "empty list: nothing");
	ok(info_parse("subscription_count", &s, &u, &c, err, sizeof(err)) == 0 &&
	    s == 1 && u == 0 && c == 0, "subscription_count");
	ok(info_parse("user_count", &s, &u, &c, err, sizeof(err)) == 0 &&
	    s == 0 && u == 1 && c == 0, "user_count");
	ok(info_parse("user_count,subscription_count", &s, &u, NULL, err, sizeof(err)) == 0 &&
	    s == 1 && u == 1, "both, any order, cache NULL");
	ok(info_parse("subscription_count,user_count,cache", &s, &u, &c, err,
	    sizeof(err)) == 0 && s == 1 && u == 1 && c == 1, "cache where allowed");
	err[0] = '\0';
	ok(info_parse("cache", &s, &u, NULL, err, sizeof(err)) != 0 && strstr(err, "cache"),
	    "cache where not allowed is an error naming it");
	err[0] = '\0';
	ok(info_parse("subscription_count,bogus", &s, &u, &c, err, sizeof(err)) != 0 &&
	    strstr(err, "bogus") != NULL, "unknown attribute named in the error");
	ok(info_parse("subscription_count,", &s, &u, &c, err, sizeof(err)) == 0 && s == 1,
	    "trailing comma tolerated");
	ok(info_parse("user_count,,subscription_count", &s, &u, &c, err, sizeof(err)) == 0 &&
	    s == 1 && u == 1, "empty item tolerated");
	ok(info_parse("user_count ", &s, &u, &c, err, sizeof(err)) != 0,
	    "trailing space is not user_count");
	ok(info_parse("USER_COUNT", &s, &u, &c, err, sizeof(err)) != 0,
	    "attributes are case-sensitive");
	ok(info_parse("user_counts", &s, &u, &c, err, sizeof(err)) != 0, "no prefix match");
	ok(info_parse("user", &s, &u, &c, err, sizeof(err)) != 0, "no partial match");
}

/*
 * A handler that answers nothing, or fails while its answer says
 * otherwise, gets a 500: never an empty or misleading 200.
 */
static void
test_router_finish(void)
{
	struct req r;
	struct resp p;

	req_init(&r);
	resp_init(&p);
	ok(p.status == 0, "a new answer has no status");
	router_finish(&r, &p, 0);
	ok(p.status == 500 && p.json != NULL, "no answer, rc 0: 500 with a JSON error");
	resp_free(&p);

	resp_init(&p);
	resp_json(&p, 200, json_object_new_object());
	router_finish(&r, &p, 503);
	ok(p.status == 500, "rc 503 with a 200 answer: 500");
	resp_free(&p);

	resp_init(&p);
	resp_json(&p, 200, json_object_new_object());
	router_finish(&r, &p, 0);
	ok(p.status == 200, "rc 0 with a 200 answer: kept");
	resp_free(&p);

	resp_init(&p);
	resp_error(&p, 404, "not_found", "x");
	router_finish(&r, &p, 404);
	ok(p.status == 404, "an error answered: kept");
	resp_free(&p);

	resp_init(&p);
	ok(resp_header(&p, "Set-Meta-Uid", "eve\r\nSet-Meta-Uid: alice") != 0 &&
	    p.headers == NULL, "a header value with CR/LF is refused");
	ok(resp_header(&p, "Bad Name", "v") != 0 && resp_header(&p, "X:Y", "v") != 0 &&
	    p.headers == NULL, "a header name that is not a token is refused");
	ok(resp_header(&p, "X-Ok", "a\tb c") == 0 && p.headers != NULL &&
	    strcmp(p.headers, "X-Ok: a\tb c\r\n") == 0, "a plain header is kept");
	resp_free(&p);
	req_free(&r);
}

int
main(void)
{
	struct config *cfg;

	if ((cfg = config_new()) == NULL) {
		printf("Bail out! config_new failed\n");
		return 1;
	}
	test_params(cfg);
	test_str_to_ll();
	test_pct_decode();
	test_router();
	test_router_finish();
	test_info();
	config_free(cfg);
	return done_testing();
}
