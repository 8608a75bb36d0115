/* app/log.c: leveled logging to stderr, one line per message. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app.h"

static enum log_level threshold = LOG_LVL_INFO;

static const char *const names[] = { "error", "warn", "info", "debug" };

void
log_set_level(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (name != NULL && strcmp(name, names[i]) == 0)
			threshold = (enum log_level)i;
}

/* One write(2) per line so lines from workers and threads do not interleave. */
void
log_msg(enum log_level lvl, const char *fmt, ...)
{
	char line[1024];
	struct tm tm;
	time_t t;
	va_list ap;
	int n, m;

	if (lvl > threshold)
		return;
	t = time(NULL);
	gmtime_r(&t, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02dZ [%d] %s: ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, (int)getpid(), names[lvl]);
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	n += m;
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	(void)write(STDERR_FILENO, line, n);
}
