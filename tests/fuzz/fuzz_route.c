/* tests/fuzz/fuzz_route.c: libFuzzer harness for matching raw request paths against the route table. */
#include "config.h"

#include "app/app.h"
#include "fuzz.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level("error");
	return 0;
}

/* The :captures of a pattern. */
static size_t
captures(const char *pattern)
{
	size_t n = 0;
	const char *p;

	for (p = pattern; (p = strstr(p, "/:")) != NULL; p += 2)
		n++;
	return n;
}

/*
 * The pattern with each capture replaced by its value percent-encoded
 * byte by byte: a path that must match again with the same values.
 */
static char *
rebuild(const char *pattern, char **args)
{
	char *out = NULL, *enc;
	size_t len = 0, k = 0;
	const char *p = pattern, *seg;
	FILE *f;

	if ((f = open_memstream(&out, &len)) == NULL)
		abort();
	while (*p != '\0') {
		if (p[0] == '/' && p[1] == ':') {
			enc = fz_pct_encode(args[k], strlen(args[k]));
			fprintf(f, "/%s", enc);
			free(enc);
			k++;
			seg = strchrnul(p + 1, '/');
			p = seg;
		} else
			fputc(*p++, f);
	}
	fclose(f);
	return out;
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

/*
 * The input as a path against every pattern.  A match has one decoded
 * value per capture, none longer than the path; a miss leaves nothing
 * to free; and a matched path rebuilt from its values (fully
 * percent-encoded) matches the same pattern with the same values.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	char *path = fz_strndup(data, len), *again;
	char *args[REQ_MAX_ROUTE_ARGS], *args2[REQ_MAX_ROUTE_ARGS];
	size_t i, k, n, n2, plen = strlen(path);
	int m;

	for (i = 0; i < router_count(); i++) {
		const char *pattern = router_get(i)->pattern;

		memset(args, 0, sizeof(args));
		m = router_match_path(pattern, path, args, &n);
		FZ_ASSERT(m == 1 || m == 0 || m == -1);
		FZ_ASSERT(n <= REQ_MAX_ROUTE_ARGS);
		if (m == 0) {
			FZ_ASSERT(n == 0);
			for (k = 0; k < REQ_MAX_ROUTE_ARGS; k++)
				FZ_ASSERT(args[k] == NULL);
			continue;
		}
		if (m == -1) {
			FZ_ASSERT(n >= 1);
			free_args(args, n);
			continue;
		}
		FZ_ASSERT(path[0] == '/');
		FZ_ASSERT(n == captures(pattern));
		/* every capture is non-empty text: UTF-8 without NUL or controls */
		for (k = 0; k < n; k++) {
			FZ_ASSERT(args[k] != NULL && strlen(args[k]) < plen);
			FZ_ASSERT(args[k][0] != '\0' && valid_text(args[k], strlen(args[k])));
		}

		again = rebuild(pattern, args);
		memset(args2, 0, sizeof(args2));
		FZ_ASSERT(router_match_path(pattern, again, args2, &n2) == 1);
		FZ_ASSERT(n2 == n);
		for (k = 0; k < n; k++)
			FZ_ASSERT(strcmp(args[k], args2[k]) == 0);
		free_args(args2, n2);
		free(again);
		free_args(args, n);
	}
	FZ_ASSERT(router_get(router_count()) == NULL);
	free(path);
	return 0;
}
