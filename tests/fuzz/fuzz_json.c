/* tests/fuzz/fuzz_json.c: libFuzzer harness for the strict JSON checker, json-c behind it, and the body readers. */
#include "config.h"

#include "app/app.h"
#include "handlers/handlers.h"
#include "fuzz.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level("error");
	return 0;
}

/* A key no document has, so that only an alias can find a member. */
#define NO_KEY "\x01no such key"

/*
 * The type-checked readers against what json-c says of one member k
 * (value v) of object o: each accepts exactly its own type, and the
 * body readers find it by its name or by an alias.
 */
static void
check_member(json_object *o, const char *k, json_object *v)
{
	const char *s, *data;
	char *owned;
	int64_t i;
	size_t len;
	int rc;

	FZ_ASSERT(body_member(o, k, NULL) == v);
	FZ_ASSERT(body_member(o, NO_KEY, k) == v);
	FZ_ASSERT(body_member(o, k, NO_KEY) == v);

	s = json_str(o, k);
	FZ_ASSERT((s != NULL) == json_object_is_type(v, json_type_string));
	FZ_ASSERT(body_string(v) == s);
	if (s != NULL)
		FZ_ASSERT(strlen(s) == (size_t)json_object_get_string_len(v));

	rc = json_int(o, k, &i);
	FZ_ASSERT((rc == 0) == json_object_is_type(v, json_type_int));
	if (rc == 0)
		FZ_ASSERT(i == json_object_get_int64(v));
	FZ_ASSERT((json_obj(o, k) != NULL) == json_object_is_type(v, json_type_object));
	if (json_obj(o, k) != NULL)
		FZ_ASSERT(json_obj(o, k) == v);

	/* a null member is as good as absent */
	rc = body_opt_string(o, k, NULL, 200, &s);
	FZ_ASSERT(rc == 0 || rc == -1);
	if (rc == 0 && v == NULL)
		FZ_ASSERT(s == NULL);
	else if (rc == 0)
		FZ_ASSERT(s != NULL && *s != '\0' && strlen(s) <= 200 &&
		    s == json_object_get_string(v));
	else
		FZ_ASSERT(v != NULL && (s == NULL || *s == '\0' || strlen(s) > 200));

	if (v != NULL) {
		body_data(v, &owned, &data, &len);
		FZ_ASSERT(data != NULL);
		if (json_object_is_type(v, json_type_string))
			FZ_ASSERT(owned == NULL && data == json_object_get_string(v));
		else
			FZ_ASSERT(owned != NULL && strlen(owned) == len);
		free(owned);
	}
}

/*
 * Every object of the tree (depth bounded by the checker), each member
 * through check_member(); an absent key is absent to every reader.
 */
static void
walk(json_object *o)
{
	const char *s;
	int64_t i;
	size_t n, k;

	if (json_object_is_type(o, json_type_array)) {
		n = json_object_array_length(o);
		for (k = 0; k < n; k++)
			walk(json_object_array_get_idx(o, k));
		return;
	}
	if (!json_object_is_type(o, json_type_object))
		return;
	FZ_ASSERT(body_member(o, NO_KEY, NULL) == NULL);
	FZ_ASSERT(json_str(o, NO_KEY) == NULL && json_int(o, NO_KEY, &i) == -1 &&
	    json_obj(o, NO_KEY) == NULL);
	FZ_ASSERT(body_opt_string(o, NO_KEY, NULL, 200, &s) == 0 && s == NULL);
	json_object_object_foreach(o, key, val) {
		check_member(o, key, val);
		walk(val);
	}
}

/*
 * What json_parse_strict() accepts json-c serializes into text that
 * json_parse_strict() accepts again, the same value, serialized the
 * same way (a fixed point).
 */
static void
check_round_trip(json_object *o)
{
	const char *text, *text2;
	char err[128];
	json_object *o2;

	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	FZ_ASSERT(text != NULL);
	o2 = json_parse_strict(text, strlen(text), err, sizeof(err));
	if (o2 == NULL)
		fprintf(stderr, "note: json-c wrote %s, refused: %s\n", text, err);
	FZ_ASSERT(o2 != NULL);
	FZ_ASSERT(json_object_equal(o, o2));
	text2 = json_object_to_json_string_ext(o2, JSON_C_TO_STRING_PLAIN);
	FZ_ASSERT(strcmp(text, text2) == 0);
	json_object_put(o2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	const char *text = (const char *)data;
	char err[128], err2[128], *copy;
	unsigned char hash[32];
	json_object *o, *obj;
	int checked;

	err[0] = '\0';
	checked = json_check(text, len, err, sizeof(err)) == 0;
	FZ_ASSERT(checked || (err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL));

	/* json_check() accepting means json-c takes it too, and only then */
	o = json_parse_strict(text, len, err2, sizeof(err2));
	if (o == NULL && err2[0] != '\0' && checked)
		fprintf(stderr, "note: json_check took it, json-c refused: %s\n", err2);
	FZ_ASSERT(checked == (o != NULL || err2[0] == '\0'));
	/* the checker refuses NUL anywhere: a C string sees all of the text */
	if (checked)
		FZ_ASSERT(memchr(text, '\0', len) == NULL);

	copy = fz_strndup(data, len);
	obj = json_parse_object(copy);
	if (checked && memchr(text, '\0', len) == NULL)
		FZ_ASSERT((obj != NULL) == json_object_is_type(o, json_type_object));
	if (obj != NULL) {
		FZ_ASSERT(json_object_is_type(obj, json_type_object));
		FZ_ASSERT(json_check(copy, strlen(copy), err, sizeof(err)) == 0);
	}

	if (o != NULL) {
		check_round_trip(o);
		walk(o);
		/* a body is an object (parse_body() in app/router.c) */
		if (json_object_is_type(o, json_type_object))
			idem_hash(o, "fuzz", hash);
	}
	json_object_put(obj);
	json_object_put(o);
	free(copy);
	return 0;
}
