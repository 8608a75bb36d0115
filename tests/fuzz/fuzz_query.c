/* tests/fuzz/fuzz_query.c: libFuzzer harness for the query-string parser and percent-decoding. */
#include "config.h"

#include <ctype.h>

#include "app/app.h"
#include "fuzz.h"

static struct config *cfg;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level("error");
	if ((cfg = config_new()) == NULL)
		abort();
	return 0;
}

static int
is_hex(int c)
{
	return isxdigit((unsigned char)c) != 0;
}

/*
 * pct_decode() of the raw bytes, NULs and all: it fails exactly when a
 * '%' is not followed by two hex digits or the escape is %00 (a NUL
 * would cut the string short); else each escape gives one byte, and
 * encoding every byte again decodes back to the same bytes (when none
 * is a raw NUL, which would encode as %00).  A buffer one byte short
 * must fail without writing past its end, the empty one too.
 */
static void
check_pct_decode(const char *src, size_t len)
{
	char *out, *enc, *back, *small;
	size_t i, olen = 0, blen = 0, escapes = 0;
	int bad = 0, rc;

	for (i = 0; i < len; i++)
		if (src[i] == '%') {
			if (len - i < 3 || !is_hex(src[i + 1]) || !is_hex(src[i + 2]) ||
			    (src[i + 1] == '0' && src[i + 2] == '0')) {
				bad = 1;
				break;
			}
			escapes++;
			i += 2;
		}
	if ((out = malloc(len + 1)) == NULL)
		abort();
	rc = pct_decode(src, len, out, len + 1, &olen);
	FZ_ASSERT(rc == (bad ? -1 : 0));
	if (rc == 0) {
		FZ_ASSERT(olen == len - 2 * escapes);
		FZ_ASSERT(out[olen] == '\0');

		if (memchr(out, '\0', olen) == NULL) {
			enc = fz_pct_encode(out, olen);
			if ((back = malloc(3 * olen + 1)) == NULL)
				abort();
			FZ_ASSERT(pct_decode(enc, 3 * olen, back, 3 * olen + 1, &blen) == 0);
			FZ_ASSERT(blen == olen && memcmp(back, out, olen) == 0);
			free(back);
			free(enc);
		}

		/* exactly sized: olen bytes and the NUL; one less must fail */
		if ((small = malloc(olen + 1)) == NULL)
			abort();
		FZ_ASSERT(pct_decode(src, len, small, olen + 1, NULL) == 0);
		FZ_ASSERT(memcmp(small, out, olen + 1) == 0);
		free(small);
		if ((small = malloc(olen + 1)) == NULL)
			abort();
		FZ_ASSERT(pct_decode(src, len, small, olen, NULL) == -1);
		free(small);
	}
	free(out);
}

/* Pairs the parser must find: the non-empty '&'-separated pieces of q. */
static size_t
count_pieces(const char *q)
{
	size_t n = 0, len;
	const char *amp;

	for (;;) {
		amp = strchr(q, '&');
		len = amp ? (size_t)(amp - q) : strlen(q);
		if (len > 0)
			n++;
		if (amp == NULL)
			return n;
		q = amp + 1;
	}
}

/*
 * req_parse_query() of the input as the raw query.  On success: one
 * parameter per non-empty piece, no more than max_query_params, keys
 * non-empty, lower-case and unique, and req_param() finds each value.
 */
static void
check_parse_query(const uint8_t *data, size_t len)
{
	struct req r;
	char err[256];
	size_t i, j, pieces;
	int rc;

	req_init(&r);
	r.cfg = cfg;
	r.query = fz_strndup(data, len);
	pieces = count_pieces(r.query);
	err[0] = '\0';
	rc = req_parse_query(&r, err, sizeof(err));
	FZ_ASSERT(rc == 0 || rc == -1);
	if (rc != 0) {
		FZ_ASSERT(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
		FZ_ASSERT(r.nparams <= (size_t)cfg->max_query_params);
	} else {
		FZ_ASSERT(r.nparams == pieces);
		FZ_ASSERT(r.nparams <= (size_t)cfg->max_query_params);
		for (i = 0; i < r.nparams; i++) {
			const char *k = r.params[i].key;

			FZ_ASSERT(k != NULL && r.params[i].value != NULL);
			FZ_ASSERT(k[0] != '\0');
			/* decoded keys and values are text: UTF-8, no controls */
			FZ_ASSERT(valid_text(k, strlen(k)));
			FZ_ASSERT(valid_text(r.params[i].value, strlen(r.params[i].value)));
			for (j = 0; k[j] != '\0'; j++)
				FZ_ASSERT(!isupper((unsigned char)k[j]));
			for (j = 0; j < i; j++)
				FZ_ASSERT(strcmp(r.params[j].key, k) != 0);
			FZ_ASSERT(req_param(&r, k) == r.params[i].value);
		}
	}
	req_free(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	check_pct_decode((const char *)data, len);
	check_parse_query(data, len);
	return 0;
}
