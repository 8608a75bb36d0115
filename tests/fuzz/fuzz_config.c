/* tests/fuzz/fuzz_config.c: libFuzzer harness for the config file parser (sockudo-fcgi.conf). */
#include "config.h"

#include <sys/mman.h>

#include <unistd.h>

#include "app/app.h"
#include "fuzz.h"

static int fd = -1;		/* a memfd holding the input as a file */
static char path[64];		/* its name for fopen() */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level("error");
	if ((fd = memfd_create("fuzz-config", 0)) == -1) {
		perror("memfd_create");
		abort();
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return 0;
}

/* The input as the file's whole content. */
static void
write_file(const uint8_t *data, size_t len)
{
	size_t off = 0;
	ssize_t w;

	if (ftruncate(fd, 0) != 0)
		abort();
	while (off < len) {
		if ((w = pwrite(fd, data + off, len - off, (off_t)off)) <= 0)
			abort();
		off += (size_t)w;
	}
}

/*
 * The input line by line through config_parse_line(), stopping at the
 * first error as config_load() does.  Returns 0 when every line parsed;
 * *plain says whether config_load() reads the same lines (no NUL byte,
 * no line near its 1023-byte buffer).
 */
static int
parse_lines(struct config *c, const uint8_t *data, size_t len, int *plain)
{
	const uint8_t *p = data, *end = data + len, *nl;
	char err[256], *line;
	size_t n;
	int rc = 0;

	*plain = memchr(data, '\0', len) == NULL;
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = (size_t)((nl ? nl : end) - p);
		if (n >= 1000)
			*plain = 0;
		line = fz_strndup(p, n);
		err[0] = '\0';
		if (rc == 0 && config_parse_line(c, line, err, sizeof(err)) != 0) {
			FZ_ASSERT(err[0] != '\0');
			rc = -1;
		}
		free(line);
		p = nl ? nl + 1 : end;
	}
	return rc;
}

/*
 * The same text parsed line by line and loaded as a file: config_load()
 * succeeds exactly when every line parses and config_check() passes.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct config *byline, *loaded;
	char err[512], err2[512];
	int rc_lines, rc_load, plain;

	if ((byline = config_new()) == NULL || (loaded = config_new()) == NULL)
		abort();
	rc_lines = parse_lines(byline, data, len, &plain);
	if (rc_lines == 0) {
		err[0] = '\0';
		rc_lines = config_check(byline, err, sizeof(err));
		FZ_ASSERT(rc_lines == 0 || err[0] != '\0');
	}

	write_file(data, len);
	err2[0] = '\0';
	rc_load = config_load(loaded, path, err2, sizeof(err2));
	FZ_ASSERT(rc_load == 0 || rc_load == -1);
	FZ_ASSERT(rc_load == 0 || err2[0] != '\0');
	if (plain)
		FZ_ASSERT(rc_load == rc_lines);
	if (rc_load == 0)
		FZ_ASSERT(config_check(loaded, err2, sizeof(err2)) == 0);
	config_free(byline);
	config_free(loaded);
	return 0;
}
