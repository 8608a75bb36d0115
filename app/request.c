/* app/request.c: the request object and its query-string parser. */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

void
req_init(struct req *r)
{
	memset(r, 0, sizeof(*r));
	r->route = -1;
}

void
req_free(struct req *r)
{
	size_t i;

	if (r == NULL)
		return;
	free(r->method);
	free(r->uri);
	free(r->path);
	free(r->query);
	free(r->content_type);
	free(r->idem_header);
	free(r->remote_addr);
	free(r->grip_sig);
	free(r->meta_user);
	free(r->meta_uid);
	free(r->meta_renew);
	free(r->meta_seen);
	free(r->meta_ce);
	free(r->body);
	for (i = 0; i < r->nparams; i++) {
		free(r->params[i].key);
		free(r->params[i].value);
	}
	free(r->params);
	for (i = 0; i < r->nargs; i++)
		free(r->args[i]);
	if (r->json != NULL)
		json_object_put(r->json);
	memset(r, 0, sizeof(*r));
	r->route = -1;
}

/*
 * Decode one key or value into a fresh string; NULL on a bad escape or
 * when it is not text (valid_text: strict UTF-8, no control characters).
 */
static char *
decode(const char *s, size_t len)
{
	size_t n;
	char *out;

	if ((out = malloc(len + 1)) == NULL)
		return NULL;
	if (pct_decode(s, len, out, len + 1, &n) != 0 || !valid_text(out, n)) {
		free(out);
		return NULL;
	}
	return out;
}

/*
 * Split r->query into r->params: keys lower-cased, both sides
 * percent-decoded with '+' kept as '+' (SPEC 1).  A repeated key, a bad
 * escape or more than max_query_params pairs is an error.
 */
int
req_parse_query(struct req *r, char *err, size_t errlen)
{
	const char *p, *amp, *eq;
	size_t n = 0, cap, i, j;
	char *k;

	if (r->query == NULL || *r->query == '\0')
		return 0;
	cap = (size_t)r->cfg->max_query_params;
	if ((r->params = calloc(cap, sizeof(*r->params))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (p = r->query; p != NULL; p = amp ? amp + 1 : NULL) {
		amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		if (len == 0)
			continue;
		if (n == cap) {
			snprintf(err, errlen, "too many query parameters (at most %zu)", cap);
			return -1;
		}
		eq = memchr(p, '=', len);
		size_t klen = eq ? (size_t)(eq - p) : len;
		k = decode(p, klen);
		r->params[n].value = eq ? decode(eq + 1, len - klen - 1) : strdup("");
		r->params[n].key = k;
		r->nparams = ++n;
		if (k == NULL || r->params[n - 1].value == NULL || *k == '\0') {
			snprintf(err, errlen, "malformed query string (a bad escape, %%00, a control"
			    " character or invalid UTF-8)");
			return -1;
		}
		for (j = 0; k[j] != '\0'; j++)
			k[j] = (char)tolower((unsigned char)k[j]);
		for (i = 0; i + 1 < n; i++)
			if (strcmp(r->params[i].key, k) == 0) {
				snprintf(err, errlen, "query parameter \"%.64s\" given twice", k);
				return -1;
			}
	}
	return 0;
}

/* The decoded value of a query parameter, or NULL; valid until req_free(). */
const char *
req_param(const struct req *r, const char *key)
{
	size_t i;

	for (i = 0; i < r->nparams; i++)
		if (strcmp(r->params[i].key, key) == 0)
			return r->params[i].value;
	return NULL;
}

/* An integer parameter in [min, max], def when absent; -1 when malformed. */
int
req_param_int(const struct req *r, const char *key, long long min, long long max,
    long long def, long long *out)
{
	const char *v = req_param(r, key);

	if (v == NULL) {
		*out = def;
		return 0;
	}
	return str_to_ll(v, min, max, out);
}
