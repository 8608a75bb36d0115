/* app/auth.c: Pusher request signing (SPEC 1). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "app.h"

static int
param_cmp(const void *a, const void *b)
{
	const struct qparam *x = *(const struct qparam *const *)a;
	const struct qparam *y = *(const struct qparam *const *)b;

	return strcmp(x->key, y->key);
}

/*
 * METHOD "\n" PATH "\n" QUERY, QUERY being every parameter but
 * auth_signature, sorted by key in byte order, joined as k=v with '&'.
 * Returns a malloc'd string or NULL.
 */
char *
auth_string_to_sign(const char *method, const char *path,
    const struct qparam *params, size_t n)
{
	const struct qparam **sorted;
	size_t i, len, m = 0;
	char *out, *p;

	if ((sorted = calloc(n + 1, sizeof(*sorted))) == NULL)
		return NULL;
	len = strlen(method) + strlen(path) + 3;
	for (i = 0; i < n; i++) {
		if (strcmp(params[i].key, "auth_signature") == 0)
			continue;
		sorted[m++] = &params[i];
		len += strlen(params[i].key) + strlen(params[i].value) + 2;
	}
	qsort(sorted, m, sizeof(*sorted), param_cmp);
	if ((out = malloc(len)) == NULL) {
		free(sorted);
		return NULL;
	}
	p = out + sprintf(out, "%s\n%s\n", method, path);
	for (i = 0; i < m; i++)
		p += sprintf(p, "%s%s=%s", i ? "&" : "", sorted[i]->key, sorted[i]->value);
	free(sorted);
	return out;
}

void
auth_hmac_hex(const char *secret, const char *msg, char out[65])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;

	HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg,
	    strlen(msg), mac, &maclen);
	hex_encode(mac, maclen, out);
}

void
auth_md5_hex(const char *buf, size_t len, char out[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	EVP_Digest(buf, len, md, &mdlen, EVP_md5(), NULL);
	hex_encode(md, mdlen, out);
}

/* Constant-time equality of two hex strings of possibly different length. */
static int
hex_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la != lb)
		return 0;
	return CRYPTO_memcmp(a, b, la) == 0;
}

/*
 * Whether sig is the lower-case hex HMAC-SHA256 of msg with secret,
 * compared in constant time (request signatures, channel and user auth).
 */
int
auth_signature_ok(const char *secret, const char *msg, const char *sig)
{
	char want[65];

	auth_hmac_hex(secret, msg, want);
	return hex_equal(want, sig);
}

/*
 * Authenticate a signed request and load r->app.  Statuses: 401
 * auth_failed (missing or bad parameters, unknown key, key of another
 * app, stale timestamp, body_md5 mismatch, bad signature), 403
 * app_disabled, 503 when the app store is down.
 */
int
auth_check(struct req *r, struct resp *p)
{
	const char *key, *ts, *sig, *ver, *md5;
	char md5hex[33], *tosign;
	long long t, skew;
	int rc, ok;

	key = req_param(r, "auth_key");
	ts = req_param(r, "auth_timestamp");
	sig = req_param(r, "auth_signature");
	ver = req_param(r, "auth_version");
	md5 = req_param(r, "body_md5");
	if (key == NULL || ts == NULL || sig == NULL)
		return resp_error(p, 401, "auth_failed",
		    "auth_key, auth_timestamp and auth_signature are required");
	if (ver != NULL && strcmp(ver, "1.0") != 0)
		return resp_error(p, 401, "auth_failed", "auth_version must be 1.0");
	if (str_to_ll(ts, 0, 99999999999LL, &t) != 0)
		return resp_error(p, 401, "auth_failed", "auth_timestamp is not a number");
	skew = t - now_ms() / 1000;
	if (skew < -r->cfg->auth_timestamp_skew || skew > r->cfg->auth_timestamp_skew)
		return resp_error(p, 401, "auth_failed",
		    "auth_timestamp is more than %d seconds from the server clock",
		    r->cfg->auth_timestamp_skew);

	rc = worker_app_by_key(r->w, key, &r->app);
	if (rc < 0)
		return resp_unavailable(p, "the app store");
	if (rc > 0)
		return resp_error(p, 401, "auth_failed", "unknown auth_key");
	if (r->nargs == 0 || strcmp(r->app.id, r->args[0]) != 0)
		return resp_error(p, 401, "auth_failed",
		    "auth_key does not belong to this app");

	if (r->bodylen > 0 && md5 == NULL)
		return resp_error(p, 401, "auth_failed",
		    "body_md5 is required when the request has a body");
	if (md5 != NULL) {
		auth_md5_hex(r->body ? r->body : "", r->bodylen, md5hex);
		if (!hex_equal(md5hex, md5))
			return resp_error(p, 401, "auth_failed",
			    "body_md5 does not match the body");
	}

	if ((tosign = auth_string_to_sign(r->method, r->path, r->params,
	    r->nparams)) == NULL)
		return resp_error(p, 500, "internal", "out of memory");
	ok = auth_signature_ok(r->app.secret, tosign, sig);
	free(tosign);
	if (!ok)
		return resp_error(p, 401, "auth_failed", "invalid signature");

	/* Only a correctly signed caller learns that the app is disabled. */
	if (!r->app.enabled)
		return resp_error(p, 403, "app_disabled", "this app is disabled");
	return 0;
}
