/*
 * app/pushd.c: sockudo-pushd, the push delivery worker (SPEC 8).  It
 * expands due publishes into deliveries, claims batches of them from
 * MariaDB, sends each batch concurrently over libcurl (HTTP/2 to APNs)
 * and records the outcome: any number of these processes on any number
 * of hosts share the work.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "app.h"
#include "push.h"
#include "db/db.h"

#define APNS_JWT_TTL_MS	(40 * 60 * 1000)	/* Apple wants 20 to 60 minutes */
#define CREDS_TTL_MS	(60 * 1000)		/* credentials changed via the API show up */
#define FCM_SCOPE	"https://www.googleapis.com/auth/firebase.messaging"
#define FCM_TOKEN_MAX	4096	/* bytes of an access token we put in a header */
#define FCM_TTL_DEFAULT	3600	/* s: an answer without a usable expires_in */
#define FCM_TTL_MIN	120	/* s: kept a minute less than it lives */
#define FCM_TTL_MAX	43200	/* s: Google's longest, 12 hours */
#define OPENING_WAIT_MS	100	/* see pushd_send */

/* Where an app's credentials for a provider stand. */
enum creds_state {
	CREDS_OK,	/* opened: c */
	CREDS_NONE,	/* none stored */
	CREDS_NOKEY,	/* no push_secret_key to open them with */
	CREDS_SEALED,	/* they do not open: another app's, provider's or key's */
	CREDS_DB,	/* the database could not be asked: try again */
};

/* One app's opened credentials for one provider, with the auth made from them. */
struct creds {
	char		 app_id[65];
	char		 provider[8];
	enum creds_state state;
	json_object	*c;		/* CREDS_OK: the credentials object */
	char		*auth;		/* APNs: JWT; FCM: OAuth2 access token */
	int64_t		 auth_until;
	int64_t		 auth_failed_at;	/* the last failed FCM exchange */
	char		 auth_error[200];	/* ... and why (as push_work.error) */
	int64_t		 loaded_at;
	struct creds	*next;
};

struct pushd {
	const struct config	*cfg;
	struct db		*db;
	CURLM			*multi;
	struct creds		*creds;
	unsigned char		 key[32];
	int			 have_key;
	int			 timeout_ms;
	long			 connects;	/* connections opened, for the debug log */
};

/* A request in flight, one per delivery. */
struct call {
	struct push_work	*w;
	struct creds		*cr;
	CURL			*easy;
	struct curl_slist	*headers;
	char			*body;
	size_t			 bodylen;
	char			*resp;		/* the answer's body */
	size_t			 resplen;
	long			 status;
	CURLcode		 result;
	int			 done;		/* answered, or failed by libcurl */
	const char		*bad_header;	/* a header refused (see header()) */
	int			 web_allowed;	/* on webpush_allow: not checked */
	int			 addr_refused;	/* open_public() refused an address */
};

static size_t
collect(char *data, size_t size, size_t n, void *arg)
{
	struct call *c = arg;
	size_t len = size * n;
	char *p;

	if (c->resplen + len > 16384)	/* an error reason, never more */
		return len;
	/*
	 * A Web Push endpoint is any server the app's owner names: what it
	 * answers is not kept (it would show in the publish status), only
	 * known providers' (APNs, FCM at the operator's URLs) are.
	 */
	if (c->w != NULL && strcmp(c->w->platform, "web") == 0)
		return len;
	if ((p = realloc(c->resp, c->resplen + len + 1)) == NULL)
		return 0;
	memcpy(p + c->resplen, data, len);
	c->resplen += len;
	p[c->resplen] = '\0';
	c->resp = p;
	return len;
}

/* A string member of the credentials, or NULL (absent, another type). */
static const char *
cred_str(const struct creds *cr, const char *key)
{
	return json_str(cr->c, key);
}

/* The credentials of an app for a provider, opened and cached for a minute. */
static struct creds *
creds_get(struct pushd *pd, const char *app_id, const char *provider, int64_t now)
{
	struct creds *cr;
	char *sealed = NULL, *plain = NULL;
	size_t len = 0;
	int rc;

	for (cr = pd->creds; cr != NULL; cr = cr->next)
		if (strcmp(cr->app_id, app_id) == 0 && strcmp(cr->provider, provider) == 0)
			break;
	if (cr != NULL && now - cr->loaded_at < CREDS_TTL_MS)
		return cr;
	if (cr == NULL) {
		if ((cr = calloc(1, sizeof(*cr))) == NULL)
			return NULL;
		snprintf(cr->app_id, sizeof(cr->app_id), "%s", app_id);
		snprintf(cr->provider, sizeof(cr->provider), "%s", provider);
		cr->next = pd->creds;
		pd->creds = cr;
	}
	json_object_put(cr->c);
	cr->c = NULL;
	free(cr->auth);
	cr->auth = NULL;
	cr->loaded_at = now;
	if (!pd->have_key)
		cr->state = CREDS_NOKEY;
	else if ((rc = db_push_cred_sealed(pd->db, app_id, provider, &sealed)) == DB_NOTFOUND)
		cr->state = CREDS_NONE;
	else if (rc != 0) {
		cr->state = CREDS_DB;
		cr->loaded_at = now - CREDS_TTL_MS;	/* asked again next time */
	} else if (secret_open(pd->key, app_id, provider, sealed, &plain, &len) != 0 ||
	    (cr->c = json_parse_object(plain)) == NULL)
		cr->state = CREDS_SEALED;
	else
		cr->state = CREDS_OK;
	if (plain != NULL)
		OPENSSL_cleanse(plain, len);
	free(plain);
	free(sealed);
	return cr;
}

/*
 * The APNs provider token: an ES256 JWT {iss: team id, iat}, remade every
 * 40 minutes.  NULL when the key cannot sign.
 */
static const char *
apns_auth(struct creds *cr, int64_t now)
{
	json_object *claims;

	if (cr->auth != NULL && now < cr->auth_until)
		return cr->auth;
	free(cr->auth);
	claims = json_object_new_object();
	json_object_object_add(claims, "iss", json_object_new_string(cred_str(cr, "team_id")));
	json_object_object_add(claims, "iat", json_object_new_int64(now / 1000));
	cr->auth = jwt_es256(cred_str(cr, "private_key"), cred_str(cr, "key_id"),
	    json_object_to_json_string_ext(claims, JSON_C_TO_STRING_PLAIN));
	json_object_put(claims);
	cr->auth_until = now + APNS_JWT_TTL_MS;
	return cr->auth;
}

/*
 * Take the token endpoint's answer (RFC 6749 section 5.1), which is
 * untrusted text: an access_token that is not an RFC 6750 bearer token
 * of at most FCM_TOKEN_MAX bytes is refused (it goes into a header), and
 * an expires_in that is not a number in FCM_TTL_MIN..FCM_TTL_MAX is
 * brought into that range (FCM_TTL_DEFAULT when there is none).  Sets
 * cr->auth, or err.
 */
static void
fcm_token_answer(struct creds *cr, const char *body, int64_t now, char *err, size_t errlen)
{
	json_object *answer = json_parse_object(body);
	const char *token = json_str(answer, "access_token");
	int64_t ttl;

	if (answer == NULL)
		snprintf(err, errlen, "fcm token endpoint: the answer is not a JSON object");
	else if (token == NULL || !push_b64token_valid(token, FCM_TOKEN_MAX))
		snprintf(err, errlen, "fcm token endpoint: the answer's access_token is not a "
		    "bearer token of 1 to %d characters (RFC 6750)", FCM_TOKEN_MAX);
	else if ((cr->auth = strdup(token)) == NULL)
		snprintf(err, errlen, "out of memory");
	else {
		if (json_int(answer, "expires_in", &ttl) != 0)
			ttl = FCM_TTL_DEFAULT;
		ttl = ttl < FCM_TTL_MIN ? FCM_TTL_MIN : ttl > FCM_TTL_MAX ? FCM_TTL_MAX : ttl;
		cr->auth_until = now + (ttl - 60) * 1000;
	}
	json_object_put(answer);
}

/*
 * The FCM access token: the service account's RS256 JWT exchanged at the
 * operator's token endpoint (fcm_token_url; OAuth2 JWT bearer grant),
 * kept until a minute before it expires.  NULL when the exchange fails.
 * The service account's own token_uri is never used: it is tenant data,
 * and would send a signed request wherever the tenant points it.
 */
static const char *
fcm_auth(struct pushd *pd, struct creds *cr, int64_t now, char *err, size_t errlen)
{
	const char *uri = pd->cfg->fcm_token_url;
	struct call c = { 0 };
	json_object *claims;
	char *jwt, *form = NULL, *enc;
	long long s = now / 1000;

	if (cr->auth != NULL && now < cr->auth_until)
		return cr->auth;
	free(cr->auth);
	cr->auth = NULL;
	if (cr->auth_failed_at == now) {	/* the rest of a batch: not one exchange each */
		snprintf(err, errlen, "%s", cr->auth_error);
		return NULL;
	}
	if (cred_str(cr, "client_email") == NULL || cred_str(cr, "private_key") == NULL) {
		snprintf(err, errlen, "fcm credentials: client_email and private_key are needed");
		return NULL;
	}
	claims = json_object_new_object();
	json_object_object_add(claims, "iss", json_object_new_string(cred_str(cr, "client_email")));
	json_object_object_add(claims, "scope", json_object_new_string(FCM_SCOPE));
	json_object_object_add(claims, "aud", json_object_new_string(uri));
	json_object_object_add(claims, "iat", json_object_new_int64(s));
	json_object_object_add(claims, "exp", json_object_new_int64(s + 3600));
	jwt = jwt_rs256(cred_str(cr, "private_key"), cred_str(cr, "private_key_id"),
	    json_object_to_json_string_ext(claims, JSON_C_TO_STRING_PLAIN));
	json_object_put(claims);
	if (jwt == NULL || (c.easy = curl_easy_init()) == NULL) {
		snprintf(err, errlen, "fcm: the service account's key cannot sign");
		free(jwt);
		return NULL;
	}
	enc = curl_easy_escape(c.easy, jwt, 0);
	if (enc != NULL && asprintf(&form, "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3A"
	    "grant-type%%3Ajwt-bearer&assertion=%s", enc) < 0)
		form = NULL;
	curl_free(enc);
	free(jwt);
	curl_easy_setopt(c.easy, CURLOPT_URL, uri);
	curl_easy_setopt(c.easy, CURLOPT_POSTFIELDS, form ? form : "");
	curl_easy_setopt(c.easy, CURLOPT_TIMEOUT_MS, (long)pd->timeout_ms);
	curl_easy_setopt(c.easy, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c.easy, CURLOPT_WRITEDATA, &c);
	curl_easy_setopt(c.easy, CURLOPT_NOSIGNAL, 1L);
	if (*pd->cfg->push_ca_file)
		curl_easy_setopt(c.easy, CURLOPT_CAINFO, pd->cfg->push_ca_file);
	c.result = curl_easy_perform(c.easy);
	curl_easy_getinfo(c.easy, CURLINFO_RESPONSE_CODE, &c.status);
	if (c.result != CURLE_OK)
		snprintf(err, errlen, "fcm token endpoint: %s", curl_easy_strerror(c.result));
	else if (c.status != 200)
		snprintf(err, errlen, "fcm token endpoint: %ld, the service account was refused",
		    c.status);
	else
		fcm_token_answer(cr, c.resp, now, err, errlen);
	if (cr->auth == NULL) {
		cr->auth_failed_at = now;
		snprintf(cr->auth_error, sizeof(cr->auth_error), "%s", err);
	}
	curl_easy_cleanup(c.easy);
	free(form);
	free(c.resp);
	return cr->auth;
}

/*
 * Add a header line.  Values come from tenants (a topic, a token): a CR
 * or LF would end the line and start another of the tenant's choosing,
 * so such a header is not added and build() refuses the request.  (A NUL
 * cannot get here: json_str() refuses strings that hold one.)
 * Returns 0 or -1.
 */
static int
header(struct call *c, const char *name, const char *value)
{
	struct curl_slist *l;
	char *h = NULL;

	if (value == NULL || strpbrk(name, "\r\n:") != NULL || strpbrk(value, "\r\n") != NULL) {
		if (c->bad_header == NULL)
			c->bad_header = name;
		return -1;
	}
	if (asprintf(&h, "%s: %s", name, value) < 0)
		h = NULL;
	if (h == NULL || (l = curl_slist_append(c->headers, h)) == NULL) {
		if (c->bad_header == NULL)
			c->bad_header = name;
		free(h);
		return -1;
	}
	c->headers = l;
	free(h);
	return 0;
}

/* An Authorization header with a token of a scheme ("bearer ..."). */
static void
authorization(struct call *c, const char *scheme, const char *token)
{
	char *v = NULL;

	if (asprintf(&v, "%s %s", scheme, token) < 0)
		v = NULL;
	header(c, "authorization", v);
	free(v);
}

/* The payload's data as FCM wants it: every value a string. */
static json_object *
string_map(json_object *data)
{
	json_object *out = json_object_new_object();

	if (data == NULL)
		return out;
	json_object_object_foreach(data, k, v)
		json_object_object_add(out, k, json_object_new_string(
		    json_object_is_type(v, json_type_string) ? json_object_get_string(v) :
		    json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN)));
	return out;
}

/* A member that is a string, as its json-c value (borrowed), or NULL. */
static json_object *
str_value(json_object *o, const char *key)
{
	return json_str(o, key) != NULL ? json_object_object_get(o, key) : NULL;
}

/* s percent-encoded but for RFC 3986's unreserved characters; malloc'd or NULL. */
static char *
pct_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out, *p;

	if (n > (SIZE_MAX - 1) / 3 || (out = malloc(3 * n + 1)) == NULL)
		return NULL;
	for (p = out; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~')
			*p++ = (char)ch;
		else {
			*p++ = '%';
			*p++ = hex[ch >> 4];
			*p++ = hex[ch & 15];
		}
	}
	*p = '\0';
	return out;
}

/* The body of a request as JSON text (c->body); -1 when out of memory. */
static int
json_body(struct call *c, json_object *o)
{
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);

	if (text == NULL || (c->body = strdup(text)) == NULL)
		return -1;
	c->bodylen = strlen(c->body);
	header(c, "Content-Type", "application/json");
	return 0;
}

/*
 * What is wrong with stored APNs credentials, or NULL.  They were
 * checked when they were stored, but rows older than those checks, or
 * written by hand, must not put a line break into a header either.
 */
static const char *
apns_creds_problem(const struct creds *cr)
{
	if (!push_apns_id_valid(cred_str(cr, "team_id")))
		return "team_id is not a 10-character Apple team id";
	if (!push_apns_id_valid(cred_str(cr, "key_id")))
		return "key_id is not a 10-character Apple key id";
	if (!push_topic_valid(cred_str(cr, "topic")))
		return "topic is not a bundle id";
	return NULL;
}

/*
 * The APNs request of a delivery: *url (malloc'd) and c's headers and
 * body.  The device token is percent-encoded into the path.  Returns 0,
 * -1 (failed, w->error says why) or -2 (try again later).
 */
static int
build_apns(struct pushd *pd, struct call *c, json_object *payload, int64_t now, char **url)
{
	struct push_work *w = c->w;
	json_object *title = str_value(payload, "title"), *body = str_value(payload, "body");
	json_object *data = json_obj(payload, "data"), *o, *n, *alert;
	const char *auth, *why;
	char tmp[64], *tok;
	int rc;

	if ((why = apns_creds_problem(c->cr)) != NULL)
		return snprintf(w->error, sizeof(w->error), "apns credentials: %s", why), -1;
	if ((auth = apns_auth(c->cr, now)) == NULL)
		return snprintf(w->error, sizeof(w->error), "apns credentials cannot sign"), -1;
	if ((tok = pct_encode(w->token)) == NULL ||
	    asprintf(url, "%s/3/device/%s", pd->cfg->apns_url, tok) < 0) {
		*url = NULL;
		free(tok);
		return snprintf(w->error, sizeof(w->error), "out of memory"), -2;
	}
	free(tok);
	o = json_object_new_object();
	n = json_object_new_object();
	if (title != NULL || body != NULL) {
		alert = json_object_new_object();
		if (title != NULL)
			json_object_object_add(alert, "title", json_object_get(title));
		if (body != NULL)
			json_object_object_add(alert, "body", json_object_get(body));
		json_object_object_add(n, "alert", alert);
	} else
		json_object_object_add(n, "content-available", json_object_new_int(1));
	json_object_object_add(o, "aps", n);
	if (data != NULL) {
		json_object_object_foreach(data, k, v)
			if (strcmp(k, "aps") != 0)
				json_object_object_add(o, k, json_object_get(v));
	}
	rc = json_body(c, o);
	json_object_put(o);
	if (rc != 0)
		return snprintf(w->error, sizeof(w->error), "out of memory"), -2;
	authorization(c, "bearer", auth);
	header(c, "apns-topic", cred_str(c->cr, "topic"));
	header(c, "apns-push-type", title || body ? "alert" : "background");
	header(c, "apns-priority", title || body ? "10" : "5");
	snprintf(tmp, sizeof(tmp), "%lld", (long long)(w->expires_at_ms / 1000));
	header(c, "apns-expiration", tmp);
	return 0;
}

/*
 * The FCM HTTP v1 request of a delivery, like build_apns().  The project
 * id is a path segment: anything but a Google project id is refused.
 */
static int
build_fcm(struct pushd *pd, struct call *c, json_object *payload, int64_t now, char **url)
{
	struct push_work *w = c->w;
	json_object *title = str_value(payload, "title"), *body = str_value(payload, "body");
	json_object *data = json_obj(payload, "data"), *o, *m, *n;
	const char *auth, *project = cred_str(c->cr, "project_id");
	int rc;

	if (!push_fcm_project_valid(project))
		return snprintf(w->error, sizeof(w->error),
		    "fcm credentials: project_id is not a Google Cloud project id"), -1;
	if (!push_email_valid(cred_str(c->cr, "client_email")) ||
	    cred_str(c->cr, "private_key") == NULL)
		return snprintf(w->error, sizeof(w->error),
		    "fcm credentials: client_email and private_key are needed"), -1;
	if ((auth = fcm_auth(pd, c->cr, now, w->error, sizeof(w->error))) == NULL)
		return -2;	/* the token endpoint: try again later */
	if (asprintf(url, "%s/v1/projects/%s/messages:send", pd->cfg->fcm_url, project) < 0) {
		*url = NULL;
		return snprintf(w->error, sizeof(w->error), "out of memory"), -2;
	}
	o = json_object_new_object();
	m = json_object_new_object();
	json_object_object_add(m, "token", json_object_new_string(w->token));
	if (title != NULL || body != NULL) {
		n = json_object_new_object();
		if (title != NULL)
			json_object_object_add(n, "title", json_object_get(title));
		if (body != NULL)
			json_object_object_add(n, "body", json_object_get(body));
		json_object_object_add(m, "notification", n);
	}
	if (data != NULL)
		json_object_object_add(m, "data", string_map(data));
	json_object_object_add(o, "message", m);
	rc = json_body(c, o);
	json_object_put(o);
	if (rc != 0)
		return snprintf(w->error, sizeof(w->error), "out of memory"), -2;
	authorization(c, "Bearer", auth);
	return 0;
}

/*
 * The Web Push request of a delivery (RFC 8030, 8291, 8292), like
 * build_apns(): the payload encrypted for the subscription, VAPID.
 */
static int
build_web(struct pushd *pd, struct call *c, json_object *payload, int64_t now, char **url)
{
	struct push_work *w = c->w;
	json_object *sub = json_parse_object(w->token), *keys = json_obj(sub, "keys");
	const char *ep = json_str(sub, "endpoint"), *why = NULL;
	const char *text = json_object_to_json_string_ext(payload, JSON_C_TO_STRING_PLAIN);
	unsigned char *enc = NULL;
	size_t enclen = 0;
	char *vapid = NULL, tmp[64];
	int rc = -1;

	if (ep == NULL || keys == NULL)
		why = "the subscription is unusable";
	else if ((why = push_endpoint_check(ep, pd->cfg->webpush_allow, &c->web_allowed)) != NULL)
		;	/* stored before the endpoint rules, or by hand */
	else if ((vapid = vapid_authorization(ep, cred_str(c->cr, "subject"),
	    cred_str(c->cr, "private_key"), cred_str(c->cr, "public_key"),
	    now / 1000 + 12 * 3600)) == NULL)
		why = "the VAPID keys cannot sign";
	else if (webpush_encrypt(json_str(keys, "p256dh"), json_str(keys, "auth"),
	    (const unsigned char *)text, strlen(text), &enc, &enclen) != 0)
		why = "the subscription's keys are unusable";
	else if ((*url = strdup(ep)) == NULL) {
		snprintf(w->error, sizeof(w->error), "out of memory");
		rc = -2;
		goto out;
	}
	if (why != NULL) {
		snprintf(w->error, sizeof(w->error), "web push: %s", why);
		goto out;
	}
	header(c, "authorization", vapid);
	header(c, "Content-Encoding", "aes128gcm");
	header(c, "Content-Type", "application/octet-stream");
	snprintf(tmp, sizeof(tmp), "%lld", w->expires_at_ms > now ?
	    (long long)((w->expires_at_ms - now) / 1000) : 86400LL);
	header(c, "TTL", tmp);
	header(c, "Urgency", "normal");
	c->body = (char *)enc;
	c->bodylen = enclen;
	enc = NULL;
	rc = 0;
out:
	free(enc);
	free(vapid);
	json_object_put(sub);
	return rc;
}

/*
 * libcurl's socket opener for Web Push endpoints: the address a name
 * resolved to is judged where it is used, so a name that resolves to
 * loopback or a private network (now, or by the time of the request) is
 * caught.  A refused address fails the connection and marks the call.
 */
static curl_socket_t
open_public(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct call *c = arg;
	int type = a->socktype;

	if (purpose != CURLSOCKTYPE_IPCXN || push_addr_private(&a->addr, a->addrlen)) {
		c->addr_refused = 1;
		return CURL_SOCKET_BAD;
	}
#ifdef SOCK_CLOEXEC
	type |= SOCK_CLOEXEC;
#endif
	return socket(a->family, type, a->protocol);
}

/*
 * The rules of a request to a Web Push endpoint, which the app's owner
 * names (see push_endpoint_check()): https only, no redirect, no proxy
 * from the environment (the address checked must be the endpoint's), and
 * unless the operator's webpush_allow names it, every address it
 * connects to checked by open_public().
 */
static void
easy_web(struct call *c)
{
	curl_easy_setopt(c->easy, CURLOPT_PROXY, "");
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS_STR, c->web_allowed ? "http,https" : "https");
#else
	curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS, c->web_allowed ?
	    (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS) : (long)CURLPROTO_HTTPS);
#endif
	if (c->web_allowed)
		return;
	curl_easy_setopt(c->easy, CURLOPT_OPENSOCKETFUNCTION, open_public);
	curl_easy_setopt(c->easy, CURLOPT_OPENSOCKETDATA, c);
	/*
	 * libcurl reuses a connection only for the same TLS settings: asking
	 * for TLS 1.2 at least keeps these requests off the connections opened
	 * for APNs and FCM, which are not checked (an operator's provider URL
	 * may name a host on a private network, and an endpoint on that host
	 * must not ride its connection).
	 */
	curl_easy_setopt(c->easy, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
}

/* The libcurl handle of a built request (c->easy, to url). */
static void
easy_setup(struct pushd *pd, struct call *c, const char *url)
{
	curl_easy_setopt(c->easy, CURLOPT_URL, url);
	curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->body);
	curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE, (long)c->bodylen);
	/*
	 * The whole request's limit is kept by pushd_send: with CURLOPT_TIMEOUT_MS
	 * set, libcurl 7.88 opens a connection for each of a batch's first
	 * hundred requests instead of waiting to multiplex them on one.
	 */
	curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)pd->timeout_ms);
	curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
	curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->easy, CURLOPT_FOLLOWLOCATION, 0L);
	/* over TLS, wait to learn by ALPN whether a connection can carry many at once */
	if (strncmp(url, "https://", 8) == 0)
		curl_easy_setopt(c->easy, CURLOPT_PIPEWAIT, 1L);
	/* a batch holds hundreds of handles: small buffers for small requests and answers */
	curl_easy_setopt(c->easy, CURLOPT_BUFFERSIZE, 4096L);
	curl_easy_setopt(c->easy, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
	if (*pd->cfg->push_ca_file)
		curl_easy_setopt(c->easy, CURLOPT_CAINFO, pd->cfg->push_ca_file);
	/* APNs speaks only HTTP/2: over TLS by ALPN, in the clear (a test) by prior knowledge */
	if (strcmp(c->w->platform, "apns") == 0)
		curl_easy_setopt(c->easy, CURLOPT_HTTP_VERSION, strncmp(url, "http://", 7) == 0 ?
		    (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE : (long)CURL_HTTP_VERSION_2TLS);
	if (strcmp(c->w->platform, "web") == 0)
		easy_web(c);
}

/*
 * The credentials of a delivery (c->cr).  Returns 0, -1 (none that can
 * be used: the delivery fails) or -2 (the database: try again), with
 * w->error saying why.
 */
static int
creds_usable(struct pushd *pd, struct call *c, int64_t now)
{
	struct push_work *w = c->w;

	if ((c->cr = creds_get(pd, w->app_id, w->platform, now)) == NULL)
		return snprintf(w->error, sizeof(w->error), "out of memory"), -2;
	switch (c->cr->state) {
	case CREDS_OK:
		return 0;
	case CREDS_NONE:
		return snprintf(w->error, sizeof(w->error), "no %s credentials", w->platform), -1;
	case CREDS_NOKEY:
		return snprintf(w->error, sizeof(w->error), "no push_secret_key to open the %s "
		    "credentials with", w->platform), -1;
	case CREDS_SEALED:
		return snprintf(w->error, sizeof(w->error), "the stored %s credentials do not "
		    "open: sealed for another app or provider, or under another push_secret_key",
		    w->platform), -1;
	default:
		return snprintf(w->error, sizeof(w->error), "the database is unavailable: the %s "
		    "credentials could not be read", w->platform), -2;
	}
}

/*
 * Build the provider request of a delivery.  Returns 0, -1 (failed,
 * w->error says why) or -2 (not sent now, w->error says why: try again).
 */
static int
build(struct pushd *pd, struct call *c, json_object *payload, int64_t now)
{
	struct push_work *w = c->w;
	char *url = NULL;
	int rc;

	if ((rc = creds_usable(pd, c, now)) != 0)
		return rc;
	if (strcmp(w->platform, "apns") == 0)
		rc = build_apns(pd, c, payload, now, &url);
	else if (strcmp(w->platform, "fcm") == 0)
		rc = build_fcm(pd, c, payload, now, &url);
	else
		rc = build_web(pd, c, payload, now, &url);
	if (rc == 0 && c->bad_header != NULL) {
		snprintf(w->error, sizeof(w->error), "%s: the %s header would hold a line "
		    "break, or no memory was left for it: not sent", w->platform, c->bad_header);
		rc = -1;
	}
	if (rc == 0 && (c->easy = curl_easy_init()) == NULL) {
		snprintf(w->error, sizeof(w->error), "out of memory");
		rc = -2;
	}
	if (rc == 0)
		easy_setup(pd, c, url);
	free(url);
	return rc;
}

/* Whether the answer's body names reason (an APNs reason, an FCM error code). */
static int
says(const struct call *c, const char *reason)
{
	return c->resp != NULL && strstr(c->resp, reason) != NULL;
}

/*
 * A provider's answer as an error reason: up to size - 1 bytes of its
 * first line, anything but printable ASCII made '?' (it is stored, and
 * shown in the publish status).
 */
static void
printable(char *out, size_t size, const char *text)
{
	size_t i;

	for (i = 0; text != NULL && i + 1 < size && text[i] != '\0' && text[i] != '\r' &&
	    text[i] != '\n'; i++)
		out[i] = (unsigned char)text[i] >= 0x20 && (unsigned char)text[i] < 0x7f ?
		    text[i] : '?';
	out[i] = '\0';
}

/*
 * A delivery to try again (w->error says why): after a backoff, or
 * failed when its attempts are used up.
 */
static void
retry_later(struct pushd *pd, struct push_work *w, int64_t now)
{
	int64_t delay;
	unsigned char r;

	w->outcome = PUSH_RETRY;
	if (w->attempts + 1 >= pd->cfg->push_max_attempts) {
		w->outcome = PUSH_FAILED;
		return;
	}
	/* exponential backoff with jitter: base * 2^attempts * [0.5, 1.5) */
	random_bytes(&r, 1);
	delay = (int64_t)pd->cfg->push_retry_base_ms << (w->attempts < 20 ? w->attempts : 20);
	delay = delay / 2 + delay * r / 256;
	w->next_at_ms = now + (delay < 3600000 ? delay : 3600000);
}

/* Decide what an answer means for the delivery and the device. */
static void
classify(struct pushd *pd, struct call *c, int64_t now)
{
	struct push_work *w = c->w;
	const char *p = w->platform;
	long s = c->status;
	char reason[120];

	printable(reason, sizeof(reason), c->resp);
	if (c->addr_refused) {
		/* no request went out: another try would resolve to the same */
		snprintf(w->error, sizeof(w->error), "web push endpoint resolves to a private address");
		w->outcome = PUSH_FAILED;
		return;
	}
	if (c->result != CURLE_OK) {
		snprintf(w->error, sizeof(w->error), "%s: %s", p, curl_easy_strerror(c->result));
		w->outcome = PUSH_RETRY;
	} else if (s >= 200 && s < 300) {
		w->outcome = PUSH_SENT;
		return;
	} else {
		if (strcmp(p, "web") == 0)	/* no body was kept: see collect() */
			snprintf(w->error, sizeof(w->error), "%s %ld", p, s);
		else
			snprintf(w->error, sizeof(w->error), "%s %ld %s", p, s, reason);
		if ((strcmp(p, "apns") == 0 && (s == 410 || says(c, "BadDeviceToken") ||
		    says(c, "Unregistered"))) || (strcmp(p, "fcm") == 0 && (s == 404 ||
		    says(c, "UNREGISTERED"))) || (strcmp(p, "web") == 0 && (s == 404 || s == 410)))
			w->outcome = PUSH_GONE;
		else if (s == 429 || s >= 500)
			w->outcome = PUSH_RETRY;
		else if ((strcmp(p, "apns") == 0 && s == 403 && says(c, "ExpiredProviderToken")) ||
		    (strcmp(p, "fcm") == 0 && s == 401)) {
			free(c->cr->auth);	/* a stale token: make a new one and retry */
			c->cr->auth = NULL;
			w->outcome = PUSH_RETRY;
		} else
			w->outcome = PUSH_FAILED;
	}
	if (w->outcome == PUSH_RETRY)
		retry_later(pd, w, now);
}

/*
 * Run the multi handle's requests, classifying each as it is answered,
 * until none is left or the deadline passes; with opening, only until
 * that request has gone out (see pushd_send).
 */
static void
perform(struct pushd *pd, int64_t deadline, struct call *opening)
{
	curl_off_t ready = 0, fresh = 0;
	int64_t ready_at = 0;
	CURLMsg *m;
	int running, left;

	do {
		curl_multi_perform(pd->multi, &running);
		while ((m = curl_multi_info_read(pd->multi, &left)) != NULL) {
			struct call *c;
			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
			c->result = m->data.result;
			curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &c->status);
			c->done = 1;
			classify(pd, c, now_ms());
		}
		if (opening != NULL) {
			if (opening->done)
				return;
			curl_easy_getinfo(opening->easy, CURLINFO_PRETRANSFER_TIME_T, &ready);
			curl_easy_getinfo(opening->easy, CURLINFO_APPCONNECT_TIME_T, &fresh);
			if (ready > 0 && ready_at == 0)
				ready_at = now_ms();
			/* on a new connection, its answer (the SETTINGS come first), for a while */
			if (ready > 0 && (fresh == 0 || now_ms() - ready_at >= OPENING_WAIT_MS))
				return;
		}
		if (running > 0)
			curl_multi_poll(pd->multi, NULL, 0, opening != NULL ? 5 : 100, NULL);
	} while (running > 0 && now_ms() < deadline);
}

/* Send a claimed batch, all at once, and fill in each outcome. */
void
pushd_send(struct pushd *pd, struct push_batch *b)
{
	struct call *calls = calloc(b->n, sizeof(*calls));
	int64_t now = now_ms();
	json_object *payload;
	struct call *first = NULL;
	int64_t deadline;
	size_t i;
	int rc;

	if (calls == NULL)
		return;
	for (i = 0; i < b->n; i++) {
		struct push_work *w = &b->items[i];
		calls[i].w = w;
		w->outcome = PUSH_FAILED;
		if (w->expires_at_ms > 0 && w->expires_at_ms <= now) {
			w->outcome = PUSH_EXPIRED;
			snprintf(w->error, sizeof(w->error), "expired before it could be sent");
			continue;
		}
		if (!w->device_ok || w->platform == NULL) {
			snprintf(w->error, sizeof(w->error), "the device is not active");
			continue;
		}
		if ((payload = json_parse_object(w->payload)) == NULL) {
			snprintf(w->error, sizeof(w->error), "the stored payload is not a JSON object");
			continue;
		}
		rc = build(pd, &calls[i], payload, now);
		json_object_put(payload);
		if (rc == -2)	/* not sent (the token endpoint): w->error says why */
			retry_later(pd, w, now);
		if (rc == 0 && first == NULL && strcmp(w->platform, "apns") == 0)
			first = &calls[i];
	}
	/*
	 * One APNs request goes first.  Until a new HTTP/2 connection's
	 * SETTINGS are read, libcurl assumes it allows 100 streams and opens
	 * another connection for each request beyond them; so on a new
	 * connection the rest wait for the first answer, up to OPENING_WAIT_MS
	 * (a slow device must not hold up its batch).  On a connection already
	 * open they go at once.
	 */
	deadline = now_ms() + pd->timeout_ms;
	if (first != NULL) {
		curl_multi_add_handle(pd->multi, first->easy);
		perform(pd, deadline, first);
	}
	for (i = 0; i < b->n; i++)
		if (calls[i].easy != NULL && &calls[i] != first)
			curl_multi_add_handle(pd->multi, calls[i].easy);
	perform(pd, deadline, NULL);
	for (i = 0; i < b->n; i++) {
		if (calls[i].easy != NULL && !calls[i].done) {	/* out of time: retried */
			calls[i].result = CURLE_OPERATION_TIMEDOUT;
			classify(pd, &calls[i], now_ms());
		}
		if (calls[i].easy != NULL) {
			long nc = 0;
			curl_easy_getinfo(calls[i].easy, CURLINFO_NUM_CONNECTS, &nc);
			pd->connects += nc;
			curl_multi_remove_handle(pd->multi, calls[i].easy);
			curl_easy_cleanup(calls[i].easy);
		}
		curl_slist_free_all(calls[i].headers);
		free(calls[i].body);
		free(calls[i].resp);
	}
	free(calls);
}

static volatile sig_atomic_t stopping;

static void
on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

static void
nap(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/*
 * A sender on db: the credentials it opens are cached in it, its
 * connections to providers kept open between batches.  timeout_ms
 * bounds each request (0: push_timeout_ms).
 */
struct pushd *
pushd_new(const struct config *cfg, struct db *db, int timeout_ms)
{
	struct pushd *pd;

	if ((pd = calloc(1, sizeof(*pd))) == NULL)
		return NULL;
	pd->cfg = cfg;
	pd->db = db;
	pd->timeout_ms = timeout_ms > 0 ? timeout_ms : cfg->push_timeout_ms;
	pd->have_key = config_push_key(cfg, pd->key) == 0;
	if ((pd->multi = curl_multi_init()) == NULL) {
		free(pd);
		return NULL;
	}
	curl_multi_setopt(pd->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	/* a whole batch on one HTTP/2 connection, as far as the server allows (curl: 100) */
	curl_multi_setopt(pd->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, (long)cfg->push_batch);
	curl_multi_setopt(pd->multi, CURLMOPT_MAXCONNECTS, 32L);	/* idle ones kept */
	return pd;
}

void
pushd_free(struct pushd *pd)
{
	if (pd == NULL)
		return;
	OPENSSL_cleanse(pd->key, sizeof(pd->key));
	while (pd->creds != NULL) {
		struct creds *next = pd->creds->next;
		json_object_put(pd->creds->c);
		free(pd->creds->auth);
		free(pd->creds);
		pd->creds = next;
	}
	curl_multi_cleanup(pd->multi);
	free(pd);
}

#define EXPAND_MAX 50	/* publishes expanded in one transaction */

/* One sender thread: its own database connection, providers' connections and batch. */
struct lane {
	const struct config	*cfg;
	int			 once;
	pthread_t		 tid;
	int			 failed;	/* could not start */
};

/* Claim a batch, send it, record it.  Returns 1 if there was one, 0, or a DB_ code. */
static int
one_batch(struct pushd *pd, struct push_batch *b)
{
	const struct config *cfg = pd->cfg;
	int64_t t0 = now_ms(), t1, t2;
	int rc;

	if ((rc = db_pushwork_claim(pd->db, t0, (int64_t)cfg->push_lease_s * 1000, b)) != 0 ||
	    b->n == 0)
		return rc;
	t1 = now_ms();
	pushd_send(pd, b);
	t2 = now_ms();
	if ((rc = db_pushwork_record(pd->db, b)) != 0)
		log_warn("pushd: a batch of %zu could not be recorded; it is sent again when "
		    "its lease ends", b->n);
	log_debug("pushd: batch of %zu: claim %lld ms, send %lld ms (%ld new connections), "
	    "record %lld ms", b->n, (long long)(t1 - t0), (long long)(t2 - t1), pd->connects,
	    (long long)(now_ms() - t2));
	pd->connects = 0;
	push_batch_clear(b);
	return rc < 0 ? rc : 1;
}

/*
 * A sender's loop: expand what is due, claim and send a batch, record
 * it; rest for push_poll_ms when there is nothing to do.  Senders skip
 * the rows others hold, so they share the work like separate processes
 * do, and one's database round trips overlap another's sending.  With
 * once, a sender stops when nothing is left to do now (tests, cron).
 * SIGTERM stops it after the batch in hand is recorded.
 */
static void *
lane_run(void *arg)
{
	struct lane *l = arg;
	const struct config *cfg = l->cfg;
	struct push_batch b = { .max = (size_t)cfg->push_batch };
	struct pushd *pd = NULL;
	struct db *db;
	int rc, sent;

	if ((db = db_new(cfg)) == NULL || (pd = pushd_new(cfg, db, 0)) == NULL ||
	    (b.items = calloc(b.max, sizeof(*b.items))) == NULL) {
		log_error("pushd: a sender thread cannot start: out of memory");
		l->failed = 1;
		goto out;
	}
	while (!stopping) {
		if ((rc = db_pushwork_expand(db, now_ms(), EXPAND_MAX)) >= 0)
			rc = (sent = one_batch(pd, &b)) < 0 ? sent : rc + sent;
		if (rc < 0) {
			log_warn("pushd: the database is unavailable; retrying");
			nap(1000);
		} else if (rc == 0) {
			if (l->once)
				break;
			nap(cfg->push_poll_ms);
		}
	}
out:
	pushd_free(pd);
	free(b.items);
	db_free(db);
	return NULL;
}

int
pushd_run(const struct config *cfg, int once)
{
	struct sigaction sa = { .sa_handler = on_stop };
	struct lane *lanes;
	struct webhookd wd = { .cfg = cfg, .stop = &stopping, .once = once };
	int i, n = cfg->push_threads, started = 0, failed = 0, hooks = 0;
	unsigned char key[32];

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 ||
	    (lanes = calloc((size_t)n, sizeof(*lanes))) == NULL) {
		log_error("pushd: cannot start");
		return 1;
	}
	if (config_push_key(cfg, key) != 0)
		log_warn("pushd: no push_secret_key: credentials cannot be opened");
	OPENSSL_cleanse(key, sizeof(key));
	for (i = 0; i < n; i++) {
		lanes[i].cfg = cfg;
		lanes[i].once = once;
		if (pthread_create(&lanes[i].tid, NULL, lane_run, &lanes[i]) != 0)
			break;
	}
	hooks = pthread_create(&wd.tid, NULL, webhookd_run, &wd) == 0;
	if ((started = i) < n || !hooks) {
		log_error("pushd: cannot start its threads");
		stopping = 1;
	} else
		log_info("pushd: started (%d threads, batch %d, lease %d s)", started,
		    cfg->push_batch, cfg->push_lease_s);
	for (i = 0; i < started; i++) {
		pthread_join(lanes[i].tid, NULL);
		failed |= lanes[i].failed;
	}
	if (hooks) {
		pthread_join(wd.tid, NULL);
		failed |= wd.failed;
	}
	free(lanes);
	curl_global_cleanup();
	log_info("pushd: stopped");
	return started == n && !failed ? 0 : 1;
}
