/* tests/unit/t_validate.c: channel names, socket ids, event names (SPEC 3), annotation types and version serials (SPEC 6, 7). */
#include "config.h"

#include <string.h>

#include "app/app.h"
#include "db/db.h"
#include "tap.h"

static int
chan(const char *s)
{
	char err[256];

	err[0] = '\0';
	if (valid_channel_name(s, err, sizeof(err)))
		return 1;
	return err[0] != '\0' ? 0 : -1;	/* -1: rejected without saying why */
}

static int
event(const char *s)
{
	char err[256];

	err[0] = '\0';
	if (valid_event_name(s, err, sizeof(err)))
		return 1;
	return err[0] != '\0' ? 0 : -1;
}

static void
test_channels(void)
{
	static const char punct[] = "_-=@,.;:#";
	char buf[256];
	size_t i;

	ok(chan("my-channel") == 1, "my-channel");
	ok(chan("private-encrypted-x") == 1, "private-encrypted-x");
	ok(chan("presence-room.1") == 1, "presence-room.1");
	ok(chan("cache-x") == 1, "cache-x");
	ok(chan("#server-to-user-42") == 1, "#server-to-user-42 (sendToUser)");
	ok(chan("AZaz09") == 1, "letters and digits");
	for (i = 0; punct[i] != '\0'; i++) {
		snprintf(buf, sizeof(buf), "a%cb", punct[i]);
		ok(chan(buf) == 1, "punctuation allowed: '%c'", punct[i]);
	}
	ok(chan(punct) == 1, "a name of punctuation only");

	memset(buf, 'a', 200);
	buf[200] = '\0';
	ok(chan(buf) == 1, "200 bytes ok");
	buf[200] = 'a';
	buf[201] = '\0';
	ok(chan(buf) == 0, "201 bytes rejected with a reason");

	ok(chan("") == 0, "empty rejected");
	ok(chan("a b") == 0, "space rejected");
	ok(chan("a\"b") == 0, "double quote rejected");
	ok(chan("a'b") == 0, "single quote rejected");
	ok(chan("a/b") == 0, "slash rejected");
	ok(chan("a\\b") == 0, "backslash rejected");
	ok(chan("a%b") == 0, "percent rejected");
	ok(chan("a+b") == 0, "plus rejected");
	ok(chan("a*b") == 0, "star rejected");
	ok(chan("a?b") == 0, "question mark rejected");
	ok(chan("a&b") == 0, "ampersand rejected");
	ok(chan("a!b") == 0, "bang rejected");
	ok(chan("a~b") == 0, "tilde rejected");
	ok(chan("a\nb") == 0, "newline rejected");
	ok(chan("a\tb") == 0, "tab rejected");
	ok(chan("caf\xc3\xa9") == 0, "non-ASCII (UTF-8 e-acute) rejected");
	ok(chan("\xff") == 0, "byte 0xff rejected");
	ok(chan("a\x7f") == 0, "DEL rejected");
}

static void
test_socket_ids(void)
{
	char buf[128];

	ok(valid_socket_id("1.1"), "1.1");
	ok(valid_socket_id("123.456"), "123.456");
	ok(valid_socket_id("0.0"), "0.0");
	ok(valid_socket_id("1234567890.1234567890"), "long digits");
	ok(!valid_socket_id("1."), "1. rejected");
	ok(!valid_socket_id(".1"), ".1 rejected");
	ok(!valid_socket_id("."), ". rejected");
	ok(!valid_socket_id("1.1.1"), "1.1.1 rejected");
	ok(!valid_socket_id("1..1"), "1..1 rejected");
	ok(!valid_socket_id("a.1"), "a.1 rejected");
	ok(!valid_socket_id("1.a"), "1.a rejected");
	ok(!valid_socket_id("1 .1"), "1 .1 rejected");
	ok(!valid_socket_id(" 1.1"), "leading space rejected");
	ok(!valid_socket_id("1.1 "), "trailing space rejected");
	ok(!valid_socket_id("1.1\n"), "trailing newline rejected");
	ok(!valid_socket_id("-1.1"), "sign rejected");
	ok(!valid_socket_id("11"), "no dot rejected");
	ok(!valid_socket_id(""), "empty rejected");
	ok(!valid_socket_id("\xd9\xa1.1"), "non-ASCII digit rejected");

	/* 64 bytes is the limit */
	memset(buf, '1', 64);
	buf[31] = '.';
	buf[64] = '\0';
	ok(valid_socket_id(buf), "64 bytes ok");
	memset(buf, '1', 65);
	buf[31] = '.';
	buf[65] = '\0';
	ok(!valid_socket_id(buf), "65 bytes rejected");
}

static void
test_events(void)
{
	char buf[256];

	ok(event("my-event") == 1, "my-event");
	ok(event("client-typing") == 1, "client-typing");
	ok(event("pusher:subscribe") == 1, "pusher:subscribe");
	ok(event("with space and \"quotes\"") == 1, "spaces and quotes are fine");
	ok(event("\xc3\xa9v\xc3\xa9nement") == 1, "UTF-8 is fine");
	ok(event("") == 0, "empty rejected with a reason");
	ok(event("a\nb") == 0, "newline rejected");
	ok(event("a\tb") == 0, "tab rejected");
	ok(event("\x01") == 0, "control byte rejected");
	ok(event("a\x7f") == 0, "DEL rejected");
	memset(buf, 'e', 200);
	buf[200] = '\0';
	ok(event(buf) == 1, "200 bytes ok");
	buf[200] = 'e';
	buf[201] = '\0';
	ok(event(buf) == 0, "201 bytes rejected");
}

static void
test_presence(void)
{
	ok(channel_is_presence("presence-room"), "presence-room");
	ok(channel_is_presence("presence-"), "bare presence- prefix");
	ok(!channel_is_presence("private-room"), "private-room");
	ok(!channel_is_presence("private-encrypted-presence-x"), "private-encrypted-...");
	ok(!channel_is_presence("Presence-room"), "case-sensitive");
	ok(!channel_is_presence("presence"), "no dash");
	ok(!channel_is_presence("presencex"), "presencex");
	ok(!channel_is_presence("xpresence-room"), "prefix only");
	ok(!channel_is_presence(""), "empty");
}

static void
test_annotation_types(void)
{
	char ns[80];

	ok(summarizer_of("reactions:total.v1") == SUM_TOTAL, "total.v1");
	ok(summarizer_of("r:flag.v1") == SUM_FLAG, "flag.v1");
	ok(summarizer_of("a_b-C9:distinct.v1") == SUM_DISTINCT, "distinct.v1, namespace _ - digits");
	ok(summarizer_of("r:unique.v1") == SUM_UNIQUE, "unique.v1");
	ok(summarizer_of("r:multiple.v1") == SUM_MULTIPLE, "multiple.v1");
	ok(summarizer_of("r:sum.v1") == -2, "unknown summarizer");
	ok(summarizer_of("r:total.v2") == -2, "unknown version");
	ok(summarizer_of("r:Total.v1") == -2, "summarizers are lower case");
	ok(summarizer_of("r:totalx.v1") == -2, "no prefix match");
	ok(summarizer_of("r:tota.v1") == -2, "no truncated match");
	ok(summarizer_of("total.v1") == -1, "no namespace");
	ok(summarizer_of(":total.v1") == -1, "empty namespace");
	ok(summarizer_of("a b:total.v1") == -1, "space in namespace");
	ok(summarizer_of("a.b:total.v1") == -1, "dot in namespace");
	ok(summarizer_of("r:total") == -1, "no version");
	ok(summarizer_of("r:total.") == -1, "empty version");
	ok(summarizer_of("r:total.1") == -1, "version without v");
	ok(summarizer_of("r:total.vx") == -1, "version not a number");
	ok(summarizer_of("r:.v1") == -1, "empty summarizer");
	ok(summarizer_of("") == -1, "empty type");
	memset(ns, 'n', 64);
	strcpy(ns + 64, ":total.v1");
	ok(summarizer_of(ns) == SUM_TOTAL, "64-character namespace");
	memset(ns, 'n', 65);
	strcpy(ns + 65, ":total.v1");
	ok(summarizer_of(ns) == -1, "65-character namespace");
}

static void
test_version_serials(void)
{
	char a[VERSION_SERIAL_MAX], b[VERSION_SERIAL_MAX];
	const char *m = "01M8GSM9SRFZJPPAV7PZEXKCRY";

	version_serial(a, m, 1);
	ok(strcmp(a, m) == 0, "version 1 is the message serial");
	version_serial(a, m, 2);
	ok(strcmp(a, "01M8GSM9SRFZJPPAV7PZEXKCRY:0000000002") == 0, "version 2");
	version_serial(b, m, 10);
	ok(strcmp(m, a) < 0 && strcmp(a, b) < 0, "serials sort in version order (1 < 2 < 10)");
	version_serial(a, m, 9999999999LL);
	ok(strlen(a) < VERSION_SERIAL_MAX && strcmp(b, a) < 0, "ten digits fit and sort");
}

int
main(void)
{
	test_channels();
	test_socket_ids();
	test_events();
	test_presence();
	test_annotation_types();
	test_version_serials();
	return done_testing();
}
