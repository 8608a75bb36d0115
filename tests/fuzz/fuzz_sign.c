/* tests/fuzz/fuzz_sign.c: libFuzzer harness for the SPEC 1 string to sign over parsed query parameters. */
#include "config.h"

#include "app/app.h"
#include "fuzz.h"

/* The example app of SPEC 1 / Pusher's docs: its seeds verify. */
#define SECRET "7ad3773142a6692b25b8"

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
param_cmp(const void *a, const void *b)
{
	const struct qparam *x = a, *y = b;

	return strcmp(x->key, y->key);
}

/*
 * The string to sign built another way: sort a copy of the parameters,
 * drop auth_signature, join.  What auth_string_to_sign() must give.
 */
static char *
expected(const char *method, const char *path, const struct qparam *params, size_t n)
{
	struct qparam *sorted;
	char *out = NULL;
	size_t i, len = 0;
	FILE *f;
	int first = 1;

	if ((sorted = calloc(n + 1, sizeof(*sorted))) == NULL)
		abort();
	if (n > 0)
		memcpy(sorted, params, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), param_cmp);
	if ((f = open_memstream(&out, &len)) == NULL)
		abort();
	fprintf(f, "%s\n%s\n", method, path);
	for (i = 0; i < n; i++) {
		if (strcmp(sorted[i].key, "auth_signature") == 0)
			continue;
		fprintf(f, "%s%s=%s", first ? "" : "&", sorted[i].key, sorted[i].value);
		first = 0;
	}
	fclose(f);
	free(sorted);
	return out;
}

/*
 * The signature over s: 64 lower-case hex digits that auth_signature_ok()
 * takes, and that it refuses once any one digit is changed.
 */
static void
check_signature(const char *s, size_t flip)
{
	char mac[65];
	size_t i;

	auth_hmac_hex(SECRET, s, mac);
	FZ_ASSERT(strlen(mac) == 64);
	for (i = 0; i < 64; i++)
		FZ_ASSERT((mac[i] >= '0' && mac[i] <= '9') || (mac[i] >= 'a' && mac[i] <= 'f'));
	FZ_ASSERT(auth_signature_ok(SECRET, s, mac));
	mac[flip % 64] = mac[flip % 64] == '0' ? '1' : '0';
	FZ_ASSERT(!auth_signature_ok(SECRET, s, mac));
	mac[63] = '\0';
	FZ_ASSERT(!auth_signature_ok(SECRET, s, mac));
}

/*
 * The input is a request line, "METHOD PATH?QUERY": the query is parsed
 * as a request's would be, and the string to sign is built from its
 * parameters, in the order given and reversed (the order must not
 * matter), and compared with one built here.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct req r;
	struct qparam *rev;
	char err[256], *line, *path, *q, *s, *s2, *want;
	const char *sig;
	size_t i;

	line = fz_strndup(data, len);
	req_init(&r);
	r.cfg = cfg;
	if ((path = strchr(line, ' ')) != NULL)
		*path++ = '\0';
	else
		path = line + strlen(line);
	if ((q = strchr(path, '?')) != NULL)
		*q++ = '\0';
	else
		q = path + strlen(path);
	r.method = strdup(line);
	r.path = strdup(path);
	r.query = strdup(q);
	free(line);
	if (r.method == NULL || r.path == NULL || r.query == NULL)
		abort();
	if (req_parse_query(&r, err, sizeof(err)) != 0)
		goto out;

	s = auth_string_to_sign(r.method, r.path, r.params, r.nparams);
	FZ_ASSERT(s != NULL);
	want = expected(r.method, r.path, r.params, r.nparams);
	FZ_ASSERT(strcmp(s, want) == 0);

	if ((rev = calloc(r.nparams + 1, sizeof(*rev))) == NULL)
		abort();
	for (i = 0; i < r.nparams; i++)
		rev[i] = r.params[r.nparams - 1 - i];
	s2 = auth_string_to_sign(r.method, r.path, rev, r.nparams);
	FZ_ASSERT(s2 != NULL && strcmp(s, s2) == 0);

	check_signature(s, len);
	/* whatever a client sent as its signature, checking it is safe */
	if ((sig = req_param(&r, "auth_signature")) != NULL)
		(void)auth_signature_ok(SECRET, s, sig);
	free(rev);
	free(s2);
	free(want);
	free(s);
out:
	req_free(&r);
	return 0;
}
