/* handlers/store.c: how a handler answers when the durable store fails. */
#include "config.h"

#include "handlers.h"
#include "db/db.h"

/*
 * Answer a failed store call: 503 (with Retry-After) when the store is
 * unreachable, else 500 saying what could not be done.  Never the
 * internal reason (SPEC 2).  Returns the status.
 */
int
store_error(struct resp *p, int rc, const char *store, const char *what)
{
	if (rc == DB_UNAVAILABLE)
		return resp_unavailable(p, store);
	return resp_error(p, 500, "internal", "%s", what);
}
