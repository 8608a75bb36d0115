/* tests/fuzz/fuzz.h: what the libFuzzer harnesses share: entry points, input slicing, invariants. */
#ifndef SOCKUDO_FUZZ_H
#define SOCKUDO_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);
int	LLVMFuzzerInitialize(int *, char ***);

/*
 * An invariant of the code under test.  A failure aborts, which libFuzzer
 * reports as a crash and saves the input: an assert() would vanish under
 * -DNDEBUG and say less.
 */
#define FZ_ASSERT(c) do {						\
	if (!(c)) {							\
		fprintf(stderr, "%s:%d: invariant failed: %s\n",	\
		    __FILE__, __LINE__, #c);				\
		abort();						\
	}								\
} while (0)

/*
 * Bytes as a malloc'd C string.  libFuzzer's data is not NUL-terminated;
 * a parser of C strings sees it cut at its first NUL, as it would a
 * string that came from a request.
 */
static inline char *
fz_strndup(const uint8_t *data, size_t len)
{
	char *s;

	if ((s = malloc(len + 1)) == NULL)
		abort();
	memcpy(s, data, len);
	s[len] = '\0';
	return s;
}

/*
 * Split the input at the first sep into two C strings (malloc'd, the
 * caller frees both); without sep the whole input is the second part and
 * the first is "".  Lets one input carry two fields, as "scope\ncursor".
 */
static inline void
fz_split(const uint8_t *data, size_t len, int sep, char **first, char **rest)
{
	const uint8_t *at = memchr(data, sep, len);

	if (at == NULL) {
		*first = fz_strndup(data, 0);
		*rest = fz_strndup(data, len);
		return;
	}
	*first = fz_strndup(data, (size_t)(at - data));
	*rest = fz_strndup(at + 1, len - (size_t)(at - data) - 1);
}

/* Every byte as %XX, which any percent-decoder must take back (malloc'd). */
static inline char *
fz_pct_encode(const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out, *p;
	size_t i;

	if ((out = p = malloc(3 * len + 1)) == NULL)
		abort();
	for (i = 0; i < len; i++) {
		*p++ = '%';
		*p++ = hex[(unsigned char)s[i] >> 4];
		*p++ = hex[(unsigned char)s[i] & 0xf];
	}
	*p = '\0';
	return out;
}

#endif
