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
