/* tests/fuzz/fuzz_websub.c: libFuzzer harness for browser push subscriptions and their endpoints. */
#include "config.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include "app/app.h"
#include "app/push.h"
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
 * An endpoint URL on its own: what push_endpoint_parse() accepts has a
 * lower-case host and a port in range, and push_endpoint_check() never
 * accepts a literal private address unless the allow list names it.
 */
static void
check_endpoint(const char *url, const char *allow)
{
	struct push_endpoint ep;
	const char *why;
	int allowed = 0;
	size_t i;

	if (push_endpoint_parse(url, &ep) == NULL) {
		FZ_ASSERT(ep.port >= 1 && ep.port <= 65535);
		for (i = 0; ep.host[i] != '\0'; i++)
			FZ_ASSERT(ep.host[i] < 'A' || ep.host[i] > 'Z');
	}
	why = push_endpoint_check(url, allow, &allowed);
	if (why == NULL && !allowed) {
		FZ_ASSERT(push_endpoint_parse(url, &ep) == NULL);
		FZ_ASSERT(ep.https && !ep.private_ip);
	}
}

/* The bytes as a socket address: whatever they hold, a yes or a no. */
static void
check_addr(const uint8_t *data, size_t len)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };
	struct sockaddr_in a4 = { .sin_family = AF_INET };

	if (len >= 16) {
		memcpy(&a6.sin6_addr, data, 16);
		FZ_ASSERT(push_addr_private((struct sockaddr *)&a6, sizeof(a6)) >= 0);
	}
	if (len >= 4) {
		memcpy(&a4.sin_addr, data, 4);
		FZ_ASSERT(push_addr_private((struct sockaddr *)&a4, sizeof(a4)) >= 0);
	}
}

/*
 * The input is "allow\nsubscription": an operator's webpush_allow list
 * and a device's provider_token (JSON text, as the API takes it).  What
 * push_web_subscription() accepts is canonical: taken again, it gives
 * itself back; its endpoint passes the endpoint check.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	char *allow, *text, *out, *again = NULL;
	const char *why = NULL, *why2 = NULL;
	json_object *v, *o;

	fz_split(data, len, '\n', &allow, &text);
	if (push_allow_list_check(allow) != NULL)
		allow[0] = '\0';	/* config_check would refuse it */
	check_addr(data, len);
	check_endpoint(text, allow);
	v = json_object_new_string(text);
	out = push_web_subscription(v, allow, &why);
	FZ_ASSERT((out == NULL) == (why != NULL));
	if (out != NULL) {
		o = json_parse_object(out);
		FZ_ASSERT(o != NULL);
		FZ_ASSERT(push_endpoint_check(json_str(o, "endpoint"), allow, &(int){ 0 }) == NULL);
		again = push_web_subscription(o, allow, &why2);
		FZ_ASSERT(again != NULL && strcmp(again, out) == 0);
		json_object_put(o);
	}
	free(again);
	free(out);
	json_object_put(v);
	free(allow);
	free(text);
	return 0;
}
