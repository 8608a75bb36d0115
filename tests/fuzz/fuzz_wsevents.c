/* tests/fuzz/fuzz_wsevents.c: libFuzzer harness for Pushpin's WebSocket-over-HTTP event framing. */
#include "config.h"

#include "app/app.h"
#include "fuzz.h"

#define MAX_EVENTS 4096	/* more than a fuzz input can hold */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level("error");
	return 0;
}

/* Every event of body into ev (up to max): how many, or -1 when malformed. */
static long
parse_all(const char *body, size_t len, struct ws_event *ev, size_t max)
{
	size_t off = 0, n = 0;
	int rc;

	while (n < max && (rc = grip_next(body, len, &off, &ev[n])) == 1)
		n++;
	if (n == max)
		return -1;
	return rc == 0 ? (long)n : -1;
}

/*
 * Events written again with grip_out_event() (the writer of our
 * answers) parse back to the same events: types and contents equal.
 * Types holding a NUL are left out: the writer takes C strings.
 */
static void
check_rewrite(const struct ws_event *ev, size_t n)
{
	struct ws_out o = { NULL, 0, 0 };
	static struct ws_event ev2[MAX_EVENTS];
	size_t i;
	long n2;
	char *type;

	for (i = 0; i < n; i++)
		if (memchr(ev[i].type, '\0', ev[i].typelen) != NULL)
			return;
	for (i = 0; i < n; i++) {
		type = fz_strndup((const uint8_t *)ev[i].type, ev[i].typelen);
		FZ_ASSERT(grip_out_event(&o, type, ev[i].content, ev[i].len) == 0);
		free(type);
	}
	n2 = parse_all(o.buf ? o.buf : "", o.len, ev2, MAX_EVENTS);
	FZ_ASSERT(n2 >= 0 && (size_t)n2 == n);
	for (i = 0; i < n; i++) {
		FZ_ASSERT(ev2[i].typelen == ev[i].typelen &&
		    memcmp(ev2[i].type, ev[i].type, ev[i].typelen) == 0);
		FZ_ASSERT((ev2[i].content == NULL) == (ev[i].content == NULL));
		FZ_ASSERT(ev2[i].len == ev[i].len &&
		    (ev[i].len == 0 || memcmp(ev2[i].content, ev[i].content, ev[i].len) == 0));
	}
	grip_out_free(&o);
}

/*
 * The input as a request body (a NUL-terminated copy of len bytes, as
 * r->body is).  Parsed events lie inside the body, in order, without
 * overlapping, and cover it to its end; one event fewer than it holds
 * is too few.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static struct ws_event ev[MAX_EVENTS];
	char *body = fz_strndup(data, len);
	const char *end = body + len, *at = body;
	long got = parse_all(body, len, ev, MAX_EVENTS);
	size_t n, i;

	/* grip_count, which the handler checks a whole body with, agrees */
	FZ_ASSERT(grip_count(body, len) == got);
	if (got < 0) {
		free(body);
		return 0;
	}
	n = (size_t)got;
	FZ_ASSERT((n == 0) == (len == 0));
	for (i = 0; i < n; i++) {
		/* "TYPE[ hexlen]\r\n[content\r\n]" */
		FZ_ASSERT(ev[i].type == at);
		FZ_ASSERT(ev[i].typelen <= (size_t)(end - at));
		FZ_ASSERT(memchr(ev[i].type, ' ', ev[i].typelen) == NULL);
		if (ev[i].content == NULL) {
			FZ_ASSERT(ev[i].len == 0);
			FZ_ASSERT((size_t)(end - at) >= ev[i].typelen + 2 &&
			    memcmp(at + ev[i].typelen, "\r\n", 2) == 0);
			at += ev[i].typelen + 2;
			continue;
		}
		FZ_ASSERT(ev[i].content > at + ev[i].typelen && ev[i].content <= end);
		FZ_ASSERT(ev[i].len <= (size_t)(end - ev[i].content));
		FZ_ASSERT((size_t)(end - ev[i].content) - ev[i].len >= 2);
		FZ_ASSERT(memcmp(ev[i].content - 2, "\r\n", 2) == 0);
		FZ_ASSERT(memcmp(ev[i].content + ev[i].len, "\r\n", 2) == 0);
		at = ev[i].content + ev[i].len + 2;
	}
	FZ_ASSERT(at == end);
	check_rewrite(ev, n);
	free(body);
	return 0;
}
