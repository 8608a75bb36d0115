/* handlers/cursor.c: paging (SPEC 5-7): limits, directions, and opaque authenticated cursors. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "handlers.h"

#define MAC_HEX 32	/* 128 bits of HMAC-SHA256 */
#define MAX_PAGE 1000
#define DEFAULT_PAGE 100

/*
 * A cursor is "<position>.<mac>": where to continue, and an HMAC keyed
 * with the app's secret over the position and a scope naming everything
 * the position is only meaningful with (the app, the channel or message,
 * the direction, the bounds and filters).  A cursor that was altered, or
 * made for another scope, fails the check.
 */
static void
cursor_mac(const struct req *r, const char *scope, long long pos, char out[MAC_HEX + 1])
{
	char *msg = NULL, mac[65];

	if (asprintf(&msg, "%s\n%s\n%lld", r->app.id, scope, pos) < 0)
		abort();
	auth_hmac_hex(r->app.secret, msg, mac);
	free(msg);
	memcpy(out, mac, MAC_HEX);
	out[MAC_HEX] = '\0';
}

void
cursor_make(const struct req *r, const char *scope, long long pos, char out[CURSOR_MAX])
{
	char mac[MAC_HEX + 1];

	cursor_mac(r, scope, pos, mac);
	snprintf(out, CURSOR_MAX, "%lld.%s", pos, mac);
}

/*
 * The position of a cursor this server made for this scope; -1 for any
 * other string.  The whole cursor is made again and compared, so a
 * position written another way (a sign, a leading zero) fails too: one
 * position has exactly one cursor.
 */
int
cursor_parse(const struct req *r, const char *scope, const char *cursor, long long *pos)
{
	char num[24], want[CURSOR_MAX];
	const char *dot = strchr(cursor, '.');
	size_t n;
	long long v;

	if (dot == NULL || (n = (size_t)(dot - cursor)) == 0 || n >= sizeof(num))
		return -1;
	memcpy(num, cursor, n);
	num[n] = '\0';
	if (str_to_ll(num, 1, INT64_MAX - 1, &v) != 0)
		return -1;
	cursor_make(r, scope, v, want);
	if (strlen(cursor) != strlen(want) || CRYPTO_memcmp(want, cursor, strlen(want)) != 0)
		return -1;
	*pos = v;
	return 0;
}

/*
 * The limit (1 to 1000, default 100) and, when the route has one, the
 * direction (newest_first, the default, or oldest_first) of a paged
 * read.  Returns 0, or the 400 it answered.
 */
int
paging_params(struct req *r, struct resp *p, int with_direction, int *newest_first,
    size_t *limit)
{
	const char *dir = req_param(r, "direction");
	long long n;

	if (req_param_int(r, "limit", 1, MAX_PAGE, DEFAULT_PAGE, &n) != 0)
		return resp_error(p, 400, "invalid_input", "limit must be 1 to %d", MAX_PAGE);
	*limit = (size_t)n;
	if (!with_direction)
		return 0;
	*newest_first = 1;
	if (dir != NULL && strcmp(dir, "oldest_first") == 0)
		*newest_first = 0;
	else if (dir != NULL && strcmp(dir, "newest_first") != 0)
		return resp_error(p, 400, "invalid_input",
		    "direction must be newest_first or oldest_first");
	return 0;
}

/*
 * Answer a page: {"items", "has_more", "next_cursor"}, the cursor
 * continuing after position `last` in scope when there is more.
 */
int
page_answer(struct req *r, struct resp *p, const char *scope, json_object *items,
    int has_more, long long last)
{
	json_object *out = json_object_new_object();
	char next[CURSOR_MAX];

	json_object_object_add(out, "items", items);
	json_object_object_add(out, "has_more", json_object_new_boolean(has_more));
	if (has_more) {
		cursor_make(r, scope, last, next);
		json_object_object_add(out, "next_cursor", json_object_new_string(next));
	} else
		json_object_object_add(out, "next_cursor", NULL);
	return resp_json(p, 200, out);
}

/*
 * Cursors whose position is text (a channel or template name): "t",
 * the position in hex, ".", and the HMAC as above.  Malloc'd.
 */
char *
cursor_make_text(const struct req *r, const char *scope, const char *pos)
{
	char *msg = NULL, *out = NULL, *hex, mac[65];
	size_t n = strlen(pos);

	if ((hex = malloc(2 * n + 1)) == NULL ||
	    asprintf(&msg, "%s\nt\n%s", scope, pos) < 0) {
		free(hex);
		return NULL;
	}
	hex_encode((const unsigned char *)pos, n, hex);
	cursor_mac(r, msg, 0, mac);
	if (asprintf(&out, "t%s.%s", hex, mac) < 0)
		out = NULL;
	free(msg);
	free(hex);
	return out;
}

/* The position of a text cursor made for this scope (malloc'd), or -1. */
int
cursor_parse_text(const struct req *r, const char *scope, const char *cursor, char **pos)
{
	const char *dot = strchr(cursor, '.');
	char *p, *want;
	size_t n, i;
	unsigned v;
	int ok;

	*pos = NULL;
	if (cursor[0] != 't' || dot == NULL || (n = (size_t)(dot - cursor - 1)) % 2 != 0 ||
	    (p = malloc(n / 2 + 1)) == NULL)
		return -1;
	for (i = 0; i < n / 2; i++) {
		if (sscanf(cursor + 1 + 2 * i, "%2x", &v) != 1) {
			free(p);
			return -1;
		}
		p[i] = (char)v;
	}
	p[n / 2] = '\0';
	want = strlen(p) == n / 2 ? cursor_make_text(r, scope, p) : NULL;
	ok = want != NULL && strlen(want) == strlen(cursor) &&
	    CRYPTO_memcmp(want, cursor, strlen(want)) == 0;
	free(want);
	if (!ok) {
		free(p);
		return -1;
	}
	*pos = p;
	return 0;
}

/* page_answer for pages whose position is text: the last item's name. */
int
page_answer_text(struct req *r, struct resp *p, const char *scope, json_object *items,
    int has_more, const char *last)
{
	json_object *out = json_object_new_object();
	char *next = has_more && last != NULL ? cursor_make_text(r, scope, last) : NULL;

	json_object_object_add(out, "items", items);
	json_object_object_add(out, "has_more", json_object_new_boolean(next != NULL));
	json_object_object_add(out, "next_cursor", next ? json_object_new_string(next) : NULL);
	free(next);
	return resp_json(p, 200, out);
}
