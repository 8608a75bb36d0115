/* app/util.c: small helpers: clocks, bounded number parsing, hex, randomness. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "app.h"

int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Parse a whole decimal number in [min, max] (OpenBSD strtonum without the
 * error string).  Returns 0 and sets *out, or -1 for anything else,
 * including empty input, trailing garbage and leading blanks.
 */
int
str_to_ll(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0' || isspace((unsigned char)*s) || *s == '+' ||
	    (*s == '-' && min >= 0))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Decode %XX escapes only; '+' stays '+' (SPEC 1).  A '%' not followed by
 * two hex digits is an error, and so is %00: a NUL would silently cut the
 * C string short.  dst gets a NUL; returns 0 or -1.
 */
int
pct_decode(const char *src, size_t len, char *dst, size_t dstlen, size_t *outlen)
{
	size_t i, o = 0;
	int hi, lo;

	if (dstlen == 0)
		return -1;
	for (i = 0; i < len; i++) {
		if (o + 1 >= dstlen)
			return -1;
		if (src[i] != '%') {
			dst[o++] = src[i];
			continue;
		}
		if (len - i < 3)
			return -1;
		hi = hexval((unsigned char)src[i + 1]);
		lo = hexval((unsigned char)src[i + 2]);
		if (hi < 0 || lo < 0 || (hi | lo) == 0)
			return -1;
		dst[o++] = (char)(hi << 4 | lo);
		i += 2;
	}
	dst[o] = '\0';
	if (outlen != NULL)
		*outlen = o;
	return 0;
}

void
hex_encode(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * len] = '\0';
}

int
random_bytes(unsigned char *buf, size_t len)
{
	return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

/* out must hold 2 * nbytes + 1; nbytes at most 64. */
void
random_hex(char *out, size_t nbytes)
{
	unsigned char buf[64];

	if (nbytes > sizeof(buf))
		nbytes = sizeof(buf);
	if (random_bytes(buf, nbytes) != 0)
		abort();	/* no entropy: nothing safe to hand out */
	hex_encode(buf, nbytes, out);
}

/* A libcurl write callback that drops a response body nobody reads. */
size_t
discard_body(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}
