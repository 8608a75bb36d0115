/* tests/unit/t_json.c: strict UTF-8 and strict JSON for untrusted input (app/json.c). */
#include "config.h"

#include <string.h>

#include "app/app.h"
#include "tap.h"

static int
valid(const char *s)
{
	char err[128];

	return json_check(s, strlen(s), err, sizeof(err)) == 0;
}

static void
test_utf8(void)
{
	ok(utf8_valid("", 0), "empty");
	ok(utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15), "2, 3 and 4-byte forms");
	ok(utf8_valid("\xf4\x8f\xbf\xbf", 4), "U+10FFFF");
	ok(!utf8_valid("\xc0\xaf", 2), "overlong '/' (C0 AF)");
	ok(!utf8_valid("\xe0\x80\xaf", 3), "overlong 3-byte");
	ok(!utf8_valid("\xf0\x80\x80\xaf", 4), "overlong 4-byte");
	ok(!utf8_valid("\xed\xa0\x80", 3), "CESU surrogate U+D800");
	ok(!utf8_valid("\xed\xbf\xbf", 3), "surrogate U+DFFF");
	ok(!utf8_valid("\xf4\x90\x80\x80", 4), "over U+10FFFF");
	ok(!utf8_valid("\xff", 1), "0xFF");
	ok(!utf8_valid("\x80", 1), "a lone continuation byte");
	ok(!utf8_valid("\xc3", 1), "a truncated sequence");
	ok(!utf8_valid("a\0b", 3), "NUL");
	ok(valid_text_id("user-42", 200), "a plain id");
	ok(valid_text_id("\xc3\xa9mile", 200), "a UTF-8 id");
	ok(!valid_text_id("eve\r\nSet-Meta-Uid: alice", 200), "CR/LF in an id");
	ok(!valid_text_id("a\x7f", 200), "DEL in an id");
	ok(!valid_text_id("a\xc2\x85", 200), "C1 NEL in an id");
	ok(!valid_text_id("", 200), "an empty id");
	ok(!valid_text_id("abc", 2), "an id over its limit");
}

static void
test_json(void)
{
	char err[128];
	json_object *o;

	ok(valid("{\"a\":[1,-2,3.5e3,true,false,null,\"x\"]}"), "a plain document");
	ok(valid(" \"str\" "), "a bare string with whitespace");
	ok(valid("{\"a\":\"\\ud83d\\ude00\"}"), "an escaped surrogate pair");
	ok(valid("{\"a\":18446744073709551615}"), "2^64-1");
	ok(valid("{\"a\":-9223372036854775808}"), "-2^63");
	ok(!valid("{\"a\":18446744073709551616}"), "2^64 (json-c would clamp it)");
	ok(!valid("{\"a\":-9223372036854775809}"), "below -2^63");
	ok(!valid("{\"a\":123456789012345678901234}"), "a 24-digit integer");
	ok(!valid("{\"a\":NaN}"), "NaN");
	ok(!valid("{\"a\":Infinity}"), "Infinity");
	ok(!valid("{\"a\":-Infinity}"), "-Infinity");
	ok(!valid("{\"a\":1e400}"), "1e400 (infinite as a double)");
	ok(valid("{\"a\":1e-400}"), "1e-400 (underflows to zero, finite)");
	ok(!valid("{\"a\":1.}"), "1. (no fraction digits)");
	ok(!valid("{\"a\":01}"), "a leading zero");
	ok(!valid("{\"a\":+1}"), "a plus sign");
	ok(!valid("{\"a\":\"x\ty\"}"), "a raw tab in a string");
	ok(!valid("{\"a\":\"x\x01y\"}"), "a raw control byte in a string");
	ok(!valid("{\"a\":\"\\u0000\"}"), "an escaped NUL");
	ok(!valid("{\"a\":\"\\ud800\"}"), "a lone high surrogate");
	ok(!valid("{\"a\":\"\\udc00\\ud800\"}"), "a reversed pair");
	ok(!valid("{\"a\":\"\\ud800\\u0041\"}"), "a high surrogate then a letter");
	ok(!valid("{\"a\":\"\xc0\xaf\"}"), "overlong UTF-8 in a string");
	ok(!valid("{\"a\":\"\xed\xa0\x80\"}"), "CESU UTF-8 in a string");
	ok(!valid("{\"a\":\"\xf4\x90\x80\x80\"}"), "UTF-8 over U+10FFFF in a string");
	ok(!valid("{\"\xff\":1}"), "a bad byte in a member name");
	ok(!valid("{\"a\":1,}"), "a trailing comma");
	ok(!valid("{'a':1}"), "single quotes");
	ok(!valid("{\"a\":1} x"), "trailing characters");
	ok(!valid("{\"a\":\"\\x\"}"), "a bad escape");
	ok(!valid("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"),
	    "33 levels of nesting");
	ok(valid("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"),
	    "32 levels of nesting");
	ok(!valid(""), "nothing");
	ok(!valid("{\"a\":1"), "unterminated");

	const char *deep = "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]";

	o = json_parse_strict(deep, strlen(deep), err, sizeof(err));
	ok(o != NULL, "json-c builds what json_check lets through (32 levels): %s", err);
	json_object_put(o);
	o = json_parse_strict("{\"a\":1e400}", 11, err, sizeof(err));
	ok(o == NULL && strstr(err, "out of range") != NULL, "the error names the reason: %s",
	    err);
	o = json_parse_object("{\"s\":\"x\",\"i\":7,\"o\":{},\"n\":null}");
	ok(o != NULL, "an object");
	is_str(json_str(o, "s"), "x", "json_str of a string");
	ok(json_str(o, "i") == NULL && json_str(o, "n") == NULL && json_str(o, "none") == NULL,
	    "json_str of a number, a null, nothing: NULL");
	int64_t i = 0;
	ok(json_int(o, "i", &i) == 0 && i == 7, "json_int of an integer");
	ok(json_int(o, "s", &i) != 0, "json_int of a string fails");
	ok(json_obj(o, "o") != NULL && json_obj(o, "s") == NULL, "json_obj");
	json_object_put(o);
	o = json_parse_strict("3", 1, err, sizeof(err));
	ok(o != NULL && json_object_get_int(o) == 3, "a bare number at the very end: %s", err);
	json_object_put(o);
	o = json_parse_strict("true", 4, err, sizeof(err));
	ok(o != NULL && json_object_get_boolean(o), "a bare literal at the very end: %s", err);
	json_object_put(o);
	o = json_parse_strict("null", 4, err, sizeof(err));
	ok(o == NULL && err[0] == '\0', "null parses to NULL without an error: %s", err);
	o = json_parse_strict("0 ", 2, err, sizeof(err));
	ok(o != NULL && json_object_get_int(o) == 0, "a number then a blank: %s", err);
	json_object_put(o);
	ok(json_parse_object("[1]") == NULL, "json_parse_object of an array: NULL");
	ok(json_str(NULL, "a") == NULL, "json_str of NULL");
}

int
main(void)
{
	test_utf8();
	test_json();
	return done_testing();
}
