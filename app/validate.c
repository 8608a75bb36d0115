/* app/validate.c: channel, event and socket-id rules of SPEC 3. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "app.h"

#define MAX_NAME 200

/* [A-Za-z0-9_\-=@,.;:#], 1..200 bytes (SPEC 3). */
int
valid_channel_name(const char *s, char *err, size_t errlen)
{
	size_t i, len = strlen(s);

	if (len == 0 || len > MAX_NAME) {
		snprintf(err, errlen, "channel names must be 1 to %d bytes", MAX_NAME);
		return 0;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr("_-=@,.;:#", c) != NULL)
			continue;
		snprintf(err, errlen, "channel name has a character outside "
		    "[A-Za-z0-9_-=@,.;:#] at byte %zu", i);
		return 0;
	}
	return 1;
}

/* An event name is 1..200 bytes with no control characters. */
int
valid_event_name(const char *s, char *err, size_t errlen)
{
	size_t i, len = strlen(s);

	if (len == 0 || len > MAX_NAME) {
		snprintf(err, errlen, "event name must be 1 to %d bytes", MAX_NAME);
		return 0;
	}
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			snprintf(err, errlen, "event name has a control character");
			return 0;
		}
	return 1;
}

/* ^\d+\.\d+$, at most 64 bytes. */
int
valid_socket_id(const char *s)
{
	size_t i, len = strlen(s), dots = 0, digits = 0;

	if (len == 0 || len > 64)
		return 0;
	for (i = 0; i < len; i++) {
		if (s[i] >= '0' && s[i] <= '9') {
			digits++;
			continue;
		}
		if (s[i] != '.' || digits == 0 || dots++ > 0)
			return 0;
		digits = 0;
	}
	return dots == 1 && digits > 0;
}

int
channel_is_presence(const char *s)
{
	return strncmp(s, "presence-", 9) == 0;
}

/*
 * The length of the UTF-8 character at s (at most n bytes), or 0 when it
 * is not one: shortest form only, no surrogates (U+D800..DFFF), nothing
 * over U+10FFFF (RFC 3629 section 4).  *cp gets its code point.
 */
size_t
utf8_char(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned c = s[0], lo = 0x80, hi = 0xbf;
	size_t len, i;
	uint32_t v;

	if (c < 0x80) {
		len = 1;
		v = c;
	} else if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		v = c & 0x0f;
		if (c == 0xe0)
			lo = 0xa0;	/* overlong */
		else if (c == 0xed)
			hi = 0x9f;	/* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		v = c & 0x07;
		if (c == 0xf0)
			lo = 0x90;	/* overlong */
		else if (c == 0xf4)
			hi = 0x8f;	/* over U+10FFFF */
	} else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		unsigned b = s[i];
		if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xbf))
			return 0;
		v = v << 6 | (b & 0x3f);
	}
	if (cp != NULL)
		*cp = v;
	return len;
}

/* Whether s[0..len) is strict UTF-8 (utf8_char) without a NUL byte. */
int
utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	size_t n;

	while (p < end) {
		if (*p == '\0' || (n = utf8_char(p, (size_t)(end - p), NULL)) == 0)
			return 0;
		p += n;
	}
	return 1;
}

/*
 * Whether s[0..len) is text from outside we can keep and echo: strict
 * UTF-8 (utf8_char) without control characters (C0, DEL, C1), which
 * could end a header line or a log line, or cut a C string short.
 */
int
valid_text(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	size_t n;
	uint32_t cp;

	while (p < end) {
		if ((n = utf8_char(p, (size_t)(end - p), &cp)) == 0 || cp < 0x20 ||
		    (cp >= 0x7f && cp <= 0x9f))
			return 0;
		p += n;
	}
	return 1;
}

/* An identifier from outside (a user id, a client id): 1 to max bytes of valid_text(). */
int
valid_text_id(const char *s, size_t max)
{
	size_t len;

	return s != NULL && (len = strlen(s)) > 0 && len <= max && valid_text(s, len);
}
