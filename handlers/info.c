/* handlers/info.c: parsing the `info` attribute list shared by publish and channel reads. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "handlers.h"

/*
 * "subscription_count,user_count[,cache]": sets the flags it names.
 * cache may be NULL where that attribute is not allowed.  Returns 0, or
 * -1 with err naming the unknown attribute.
 */
int
info_parse(const char *list, int *subs, int *users, int *cache, char *err, size_t errlen)
{
	const char *p = list, *e;
	size_t len;

	*subs = *users = 0;
	if (cache != NULL)
		*cache = 0;
	if (list == NULL)
		return 0;
	while (*p != '\0') {
		e = strchrnul(p, ',');
		len = (size_t)(e - p);
		if (len == 18 && strncmp(p, "subscription_count", len) == 0)
			*subs = 1;
		else if (len == 10 && strncmp(p, "user_count", len) == 0)
			*users = 1;
		else if (cache != NULL && len == 5 && strncmp(p, "cache", len) == 0)
			*cache = 1;
		else if (len > 0) {
			snprintf(err, errlen, "unknown info attribute \"%.*s\"",
			    (int)(len > 64 ? 64 : len), p);
			return -1;
		}
		p = *e ? e + 1 : e;
	}
	return 0;
}
