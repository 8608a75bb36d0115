/* tests/fuzz/fuzz_template.c: libFuzzer harness for push template rendering ({{data.path}}). */
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

#define BIG	(1 << 20)	/* more than a fuzz input can render to */
#define SMALL	64

/* template_render() with room for anything the input can make. */
static char *
render(const char *text, json_object *data)
{
	int over = 0;
	char *out = template_render(text, data, BIG, &over);

	FZ_ASSERT(!over);
	return out;
}

/*
 * With little room it stops: the same text when it fits, else NULL
 * with over set, never a longer one.
 */
static void
check_bound(const char *text, json_object *data, const char *full)
{
	int over = 0;
	char *out = template_render(text, data, SMALL, &over);

	if (strlen(full) <= SMALL)
		FZ_ASSERT(out != NULL && !over && strcmp(out, full) == 0);
	else
		FZ_ASSERT(out == NULL && over);
	free(out);
}

/*
 * The input is "data\ntext": the first line, parsed strictly, is the
 * publish's data (used when it is an object, as payload_render() takes
 * it), the rest the template text.  A text without "{{" renders as it
 * is; with no data every placeholder of data renders empty, so the
 * output is never longer than the text; a render is deterministic, and
 * bounded (check_bound).
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	char *json, *text, *out, *out2, *bare, err[128];
	json_object *d;

	fz_split(data, len, '\n', &json, &text);
	d = json_parse_strict(json, strlen(json), err, sizeof(err));
	if (d != NULL && !json_object_is_type(d, json_type_object)) {
		json_object_put(d);
		d = NULL;
	}

	out = render(text, d);
	FZ_ASSERT(out != NULL);
	if (strstr(text, "{{") == NULL)
		FZ_ASSERT(strcmp(out, text) == 0);
	out2 = render(text, d);
	FZ_ASSERT(out2 != NULL && strcmp(out, out2) == 0);
	check_bound(text, d, out);

	bare = render(text, NULL);
	FZ_ASSERT(bare != NULL && strlen(bare) <= strlen(text));
	if (d == NULL)
		FZ_ASSERT(strcmp(bare, out) == 0);

	free(bare);
	free(out2);
	free(out);
	json_object_put(d);
	free(json);
	free(text);
	return 0;
}
