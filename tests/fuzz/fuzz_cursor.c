/* tests/fuzz/fuzz_cursor.c: libFuzzer harness for the authenticated paging cursors (SPEC 5-7). */
#include "config.h"

#include <limits.h>

#include "app/app.h"
#include "handlers/handlers.h"
#include "fuzz.h"

static struct req r;

/* A fixed app: a cursor's MAC is keyed with its secret. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level("error");
	req_init(&r);
	app_defaults(&r.app);
	snprintf(r.app.id, sizeof(r.app.id), "%s", "fuzz-app");
	snprintf(r.app.key, sizeof(r.app.key), "%s", "fuzz-key");
	snprintf(r.app.secret, sizeof(r.app.secret), "%s", "fuzz-secret-0123456789");
	return 0;
}

/*
 * What the parsers accept is exactly what the server made: the cursor
 * made again from the parsed position is the cursor given, byte for
 * byte.  Anything else (a forged MAC, another scope, a position written
 * another way) must be refused.
 */
static void
check_parse(const char *scope, const char *cursor)
{
	char again[CURSOR_MAX], *pos = NULL, *text;
	long long v = 0;

	if (cursor_parse(&r, scope, cursor, &v) == 0) {
		FZ_ASSERT(v >= 1 && v < LLONG_MAX);
		cursor_make(&r, scope, v, again);
		FZ_ASSERT(strcmp(again, cursor) == 0);
	}
	if (cursor_parse_text(&r, scope, cursor, &pos) == 0) {
		FZ_ASSERT(pos != NULL);
		text = cursor_make_text(&r, scope, pos);
		FZ_ASSERT(text != NULL && strcmp(text, cursor) == 0);
		free(text);
		free(pos);
	} else
		FZ_ASSERT(pos == NULL);
}

/*
 * A cursor made here parses back to its position, and the same cursor
 * changed in any one byte, or read in another scope, does not.
 */
static void
check_round_trip(const char *scope, long long pos, size_t at, unsigned char to)
{
	char c[CURSOR_MAX], other[CURSOR_MAX];
	long long v = -1;
	size_t n;

	cursor_make(&r, scope, pos, c);
	FZ_ASSERT(cursor_parse(&r, scope, c, &v) == 0 && v == pos);
	n = strlen(c);
	memcpy(other, c, n + 1);
	if ((unsigned char)other[at % n] != to) {
		other[at % n] = (char)to;
		FZ_ASSERT(cursor_parse(&r, scope, other, &v) != 0);
	}
	if (strcmp(scope, "x") != 0)
		FZ_ASSERT(cursor_parse(&r, "x", c, &v) != 0);
}

/* The same for text positions (channel and template names). */
static void
check_text_round_trip(const char *scope, const char *pos, size_t at, unsigned char to)
{
	char *c, *back = NULL;
	size_t n;

	if ((c = cursor_make_text(&r, scope, pos)) == NULL)
		abort();
	FZ_ASSERT(cursor_parse_text(&r, scope, c, &back) == 0);
	FZ_ASSERT(back != NULL && strcmp(back, pos) == 0);
	free(back);
	n = strlen(c);
	if ((unsigned char)c[at % n] != to) {
		c[at % n] = (char)to;
		back = NULL;
		FZ_ASSERT(cursor_parse_text(&r, scope, c, &back) != 0 && back == NULL);
	}
	free(c);
}

/*
 * The input is "scope\ncursor", split at its last newline: the cursor
 * is parsed in the scope.  The same bytes also give a position (the
 * cursor's first 8 bytes) and a text position (the cursor) for round
 * trips, and the last two bytes a byte to change and what to change it
 * to.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	const uint8_t *nl;
	char *scope, *cursor;
	unsigned long long u = 0;
	long long pos;
	size_t at = 0;
	unsigned char to = 'x';

	/* scopes hold newlines ("versions\nchannel\nserial"), cursors never */
	nl = memrchr(data, '\n', len);
	scope = fz_strndup(data, nl ? (size_t)(nl - data) : 0);
	cursor = nl ? fz_strndup(nl + 1, len - (size_t)(nl - data) - 1) : fz_strndup(data, len);
	check_parse(scope, cursor);

	memcpy(&u, cursor, strlen(cursor) < sizeof(u) ? strlen(cursor) : sizeof(u));
	/* positions are 1 to INT64_MAX - 1 (serials); str_to_ll() bounds them */
	pos = (long long)(u % (unsigned long long)(LLONG_MAX - 1)) + 1;
	if (len >= 2) {
		at = data[len - 2];
		to = data[len - 1];
	}
	check_round_trip(scope, pos, at, to);
	check_text_round_trip(scope, cursor, at, to);
	free(scope);
	free(cursor);
	return 0;
}
