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

/*
 * The one call of template_render(): its signature is about to change
 * (a bound on the output), and only this wrapper should have to follow.
 */
static char *
render(const char *text, json_object *data)
{
	return template_render(text, data);
}

/*
 * The input is "data\ntext": the first line, parsed strictly, is the
 * publish's data (used when it is an object, as payload_render() takes
 * it), the rest the template text.  A text without "{{" renders as it
 * is; with no data every placeholder of data renders empty, so the
 * output is never longer than the text; and a render is deterministic.
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
