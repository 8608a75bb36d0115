/* handlers/body.c: reading JSON request bodies, shared by every handler that takes one. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "handlers.h"

/* A member (also under its camelCase alias); NULL when absent. */
json_object *
body_member(json_object *o, const char *key, const char *alias)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v) && alias != NULL)
		json_object_object_get_ex(o, alias, &v);
	return v;
}

/* A JSON string as a C string, NULL when not a string or it holds a NUL byte. */
const char *
body_string(json_object *v)
{
	const char *s;

	if (v == NULL || !json_object_is_type(v, json_type_string))
		return NULL;
	s = json_object_get_string(v);
	return strlen(s) == (size_t)json_object_get_string_len(v) ? s : NULL;
}

/*
 * Event or message data as stored: a string as it is, any other JSON
 * value as its JSON text (then *owned holds it for the caller to free).
 */
void
body_data(json_object *v, char **owned, const char **data, size_t *len)
{
	*owned = NULL;
	if (json_object_is_type(v, json_type_string)) {
		*data = json_object_get_string(v);
		*len = (size_t)json_object_get_string_len(v);
		return;
	}
	if ((*owned = strdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN))) == NULL)
		abort();
	*data = *owned;
	*len = strlen(*owned);
}

/* 1 to MAX_IDEM_KEY bytes of UTF-8 text without spaces or control characters. */
int
idem_key_valid(const char *k)
{
	size_t i, len = strlen(k);

	if (len == 0 || len > MAX_IDEM_KEY || !valid_text(k, len))
		return 0;
	for (i = 0; i < len; i++)
		if (k[i] == ' ')
			return 0;
	return 1;
}

/*
 * The request's idempotency key: the body's idempotency_key or the
 * X-Idempotency-Key header, which must agree when both are given.  *key
 * is NULL when there is none.  Returns 0, or the 400 it answered.
 */
int
idem_key_of(struct req *r, struct resp *p, const char **key)
{
	json_object *v;

	*key = NULL;
	if (r->json != NULL && (v = body_member(r->json, "idempotency_key",
	    "idempotencyKey")) != NULL && ((*key = body_string(v)) == NULL ||
	    !idem_key_valid(*key)))
		return resp_error(p, 400, "invalid_input",
		    "idempotency_key must be 1 to %d printable bytes", MAX_IDEM_KEY);
	if (r->idem_header == NULL)
		return 0;
	if (!idem_key_valid(r->idem_header) || (*key != NULL && strcmp(*key, r->idem_header)))
		return resp_error(p, 400, "invalid_input", "X-Idempotency-Key must be 1 to "
		    "%d printable bytes and agree with idempotency_key", MAX_IDEM_KEY);
	*key = r->idem_header;
	return 0;
}

/*
 * SHA-256 of what a request asks, to tell a retry from another request
 * under the same key: the scope (NULL for a publish; else the route and
 * its target) and the body's canonical JSON without its key.
 */
void
idem_hash(json_object *o, const char *scope, unsigned char out[32])
{
	json_object *copy = NULL;
	const char *txt;
	unsigned int len = 0;
	EVP_MD_CTX *ctx;

	if (o != NULL)
		json_object_deep_copy(o, &copy, NULL);
	else
		copy = json_object_new_object();
	json_object_object_del(copy, "idempotency_key");
	json_object_object_del(copy, "idempotencyKey");
	txt = json_object_to_json_string_ext(copy, JSON_C_TO_STRING_PLAIN);
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		abort();
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	if (scope != NULL) {
		EVP_DigestUpdate(ctx, scope, strlen(scope));
		EVP_DigestUpdate(ctx, "\n", 1);
	}
	EVP_DigestUpdate(ctx, txt, strlen(txt));
	EVP_DigestFinal_ex(ctx, out, &len);
	EVP_MD_CTX_free(ctx);
	json_object_put(copy);
}

/*
 * An optional string member of 1 to max bytes: *out is NULL when it is
 * absent.  Returns -1 when it is there but not such a string.
 */
int
body_opt_string(json_object *o, const char *key, const char *alias, size_t max,
    const char **out)
{
	json_object *v;

	*out = NULL;
	if (o == NULL || (v = body_member(o, key, alias)) == NULL)
		return 0;
	if ((*out = body_string(v)) == NULL || **out == '\0' || strlen(*out) > max)
		return -1;
	return 0;
}

/*
 * Answer a request whose idempotency key was used before: with the first
 * answer (status and body as stored; with mark_duplicate its "status"
 * member says "duplicate"), or 409 when the first request was another
 * (its hash differs).  Returns the status answered.
 */
int
idem_replay(struct resp *p, const unsigned char stored[32], const unsigned char hash[32],
    int status, const char *body, int mark_duplicate)
{
	json_object *j;

	if (memcmp(stored, hash, 32) != 0)
		return resp_error(p, 409, "idempotency_conflict",
		    "this idempotency key was used with a different payload");
	if ((j = json_tokener_parse(body)) == NULL)
		return resp_error(p, 500, "internal", "stored response unreadable");
	if (mark_duplicate)
		json_object_object_add(j, "status", json_object_new_string("duplicate"));
	return resp_json(p, status ? status : 200, j);
}
