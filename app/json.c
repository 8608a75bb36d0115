/*
 * app/json.c: strict JSON for untrusted input.  json-c alone accepts more
 * than RFC 8259 (NaN, Infinity, 1e400, integers it clamps, raw control
 * bytes, overlong and surrogate UTF-8, lone \u surrogates it turns into
 * U+FFFD): each would be stored changed, or refused by MariaDB as a 500.
 * So every text from outside is first checked here against the RFC's
 * grammar, and only then handed to json-c to build.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

#define JSON_MAX_DEPTH	32	/* json-c's own default */
#define JSON_MAX_NUMBER	64	/* digits of a number we are willing to read */

struct scan {
	const unsigned char	*p, *start, *end;
	int			 depth;
	const char		*why;	/* what is wrong, at p */
};

static int
fail(struct scan *s, const char *why)
{
	if (s->why == NULL)
		s->why = why;
	return -1;
}

static void
skip_ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' ||
	    *s->p == '\r'))
		s->p++;
}

static int
hex4(const unsigned char *p, unsigned *out)
{
	unsigned v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		unsigned c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* A \uXXXX escape at s->p (after the backslash and 'u'); pairs surrogates. */
static int
scan_unicode(struct scan *s)
{
	unsigned hi, lo;

	if (s->end - s->p < 4 || hex4(s->p, &hi) != 0)
		return fail(s, "bad \\u escape");
	s->p += 4;
	if (hi == 0)
		return fail(s, "\\u0000 (NUL) in a string");
	if (hi >= 0xdc00 && hi <= 0xdfff)
		return fail(s, "lone low surrogate escape");
	if (hi < 0xd800 || hi > 0xdbff)
		return 0;
	if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' ||
	    hex4(s->p + 2, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
		return fail(s, "lone high surrogate escape");
	s->p += 6;
	return 0;
}

static int
scan_string(struct scan *s)
{
	size_t n;

	s->p++;		/* the opening quote */
	while (s->p < s->end) {
		unsigned c = *s->p;
		if (c == '"') {
			s->p++;
			return 0;
		}
		if (c < 0x20)
			return fail(s, "control character in a string");
		if (c == '\\') {
			if (s->end - s->p < 2)
				break;
			c = s->p[1];
			s->p += 2;
			if (c == 'u') {
				if (scan_unicode(s) != 0)
					return -1;
			} else if (strchr("\"\\/bfnrt", (int)c) == NULL || c == '\0')
				return fail(s, "bad escape in a string");
			continue;
		}
		if ((n = utf8_char(s->p, (size_t)(s->end - s->p), NULL)) == 0)
			return fail(s, "invalid UTF-8");
		s->p += n;
	}
	return fail(s, "unterminated string");
}

static int
digits(struct scan *s)
{
	const unsigned char *from = s->p;

	while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
		s->p++;
	return s->p > from ? 0 : -1;
}

/*
 * A number: the RFC's grammar, an integer within what json-c keeps
 * exactly (int64, or uint64 when positive), any other number finite.
 */
static int
scan_number(struct scan *s)
{
	const unsigned char *from = s->p;
	char buf[JSON_MAX_NUMBER + 1], *end;
	int integer = 1;
	size_t len;

	if (*s->p == '-')
		s->p++;
	if (s->p < s->end && *s->p == '0')
		s->p++;
	else if (digits(s) != 0)
		return fail(s, "bad number");
	if (s->p < s->end && *s->p == '.') {
		s->p++;
		integer = 0;
		if (digits(s) != 0)
			return fail(s, "bad number");
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		s->p++;
		integer = 0;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (digits(s) != 0)
			return fail(s, "bad number");
	}
	if ((len = (size_t)(s->p - from)) > JSON_MAX_NUMBER)
		return fail(s, "number too long");
	memcpy(buf, from, len);
	buf[len] = '\0';
	errno = 0;
	if (!integer) {
		if (!isfinite(strtod(buf, &end)))
			return fail(s, "number out of range");
	} else if (buf[0] == '-')
		(void)strtoll(buf, &end, 10);
	else
		(void)strtoull(buf, &end, 10);
	if (integer && errno == ERANGE)
		return fail(s, "integer out of range");
	return 0;
}

static int
scan_literal(struct scan *s, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return fail(s, "unexpected character");
	s->p += n;
	return 0;
}

static int	scan_value(struct scan *);

/* An object or array at s->p ('{' or '['), up to its closing bracket. */
static int
scan_container(struct scan *s)
{
	int object = *s->p == '{';
	unsigned char close = object ? '}' : ']';

	if (++s->depth > JSON_MAX_DEPTH)
		return fail(s, "nested too deep");
	s->p++;
	skip_ws(s);
	if (s->p < s->end && *s->p == close) {
		s->p++;
		s->depth--;
		return 0;
	}
	for (;;) {
		if (object) {
			if (s->p == s->end || *s->p != '"')
				return fail(s, "expected a member name");
			if (scan_string(s) != 0)
				return -1;
			skip_ws(s);
			if (s->p == s->end || *s->p != ':')
				return fail(s, "expected ':'");
			s->p++;
			skip_ws(s);
		}
		if (scan_value(s) != 0)
			return -1;
		skip_ws(s);
		if (s->p < s->end && *s->p == ',') {
			s->p++;
			skip_ws(s);
			continue;
		}
		if (s->p < s->end && *s->p == close) {
			s->p++;
			s->depth--;
			return 0;
		}
		return fail(s, object ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

static int
scan_value(struct scan *s)
{
	if (s->p == s->end)
		return fail(s, "unexpected end");
	switch (*s->p) {
	case '{':
	case '[':
		return scan_container(s);
	case '"':
		return scan_string(s);
	case 't':
		return scan_literal(s, "true");
	case 'f':
		return scan_literal(s, "false");
	case 'n':
		return scan_literal(s, "null");
	default:
		if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
			return scan_number(s);
		return fail(s, "unexpected character");
	}
}

/*
 * Whether text[0..len) is one JSON value (RFC 8259) with only what
 * json_parse_strict() accepts.  On failure err says what and where.
 */
int
json_check(const char *text, size_t len, char *err, size_t errlen)
{
	struct scan s = { (const unsigned char *)text, (const unsigned char *)text,
	    (const unsigned char *)text + len, 0, NULL };

	skip_ws(&s);
	if (scan_value(&s) == 0) {
		skip_ws(&s);
		if (s.p == s.end)
			return 0;
		fail(&s, "trailing characters");
	}
	snprintf(err, errlen, "%s at byte %zu", s.why, (size_t)(s.p - s.start));
	return -1;
}

/*
 * Parse untrusted JSON text: json_check(), then json-c.  Returns a new
 * object (the caller puts it), or NULL with err set.  A JSON null parses
 * to NULL too: callers that take any value check err[0].
 */
json_object *
json_parse_strict(const char *text, size_t len, char *err, size_t errlen)
{
	struct json_tokener *tok;
	json_object *o;
	int trailing = 0;

	err[0] = '\0';
	if (len > INT_MAX) {
		snprintf(err, errlen, "too long");
		return NULL;
	}
	if (json_check(text, len, err, errlen) != 0)
		return NULL;
	if ((tok = json_tokener_new_ex(JSON_MAX_DEPTH + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, text, (int)len);
	/* a bare number or literal ends only where json-c sees a NUL after it */
	if (o == NULL && json_tokener_get_error(tok) == json_tokener_continue)
		o = json_tokener_parse_ex(tok, "", 1);
	else if (o != NULL && (size_t)json_tokener_get_parse_end(tok) != len)
		trailing = 1;	/* json_check says this cannot happen */
	if (json_tokener_get_error(tok) != json_tokener_success || trailing) {
		json_object_put(o);
		o = NULL;
		snprintf(err, errlen, "%s", trailing ? "trailing characters" :
		    json_tokener_error_desc(json_tokener_get_error(tok)));
	}
	json_tokener_free(tok);
	return o;
}

/* json_parse_strict() of a NUL-terminated text; NULL for anything but an object. */
json_object *
json_parse_object(const char *text)
{
	char err[96];
	json_object *o;

	if (text == NULL)
		return NULL;
	o = json_parse_strict(text, strlen(text), err, sizeof(err));
	if (o != NULL && !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		o = NULL;
	}
	return o;
}

/* ---- reading json-c values, type-checked -------------------------------- */

/* A member that is a string without NUL bytes, or NULL. */
const char *
json_str(json_object *o, const char *key)
{
	json_object *v;
	const char *s;

	if (o == NULL || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	s = json_object_get_string(v);
	return strlen(s) == (size_t)json_object_get_string_len(v) ? s : NULL;
}

/* A member that is an integer: 0 and *out, or -1 (absent or another type). */
int
json_int(json_object *o, const char *key, int64_t *out)
{
	json_object *v;

	if (o == NULL || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return -1;
	*out = json_object_get_int64(v);
	return 0;
}

/* A member that is an object, or NULL. */
json_object *
json_obj(json_object *o, const char *key)
{
	json_object *v;

	if (o == NULL || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_object))
		return NULL;
	return v;
}
