/* handlers/pushcred.c: push provider credentials and notification templates (SPEC 8). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "handlers.h"
#include "app/push.h"
#include "db/db.h"

#define MAX_TEMPLATE_ID 128
#define TEMPLATE_MAX_LOCALES	100
#define TEMPLATE_MAX_TEXT	4096	/* a notification is at most 3000 bytes */
#define STR_(x)	#x
#define STR(x)	STR_(x)
#define MAX_PRIVATE_KEY 16384	/* bytes of PEM: a 4096-bit RSA key is about 3,300 */

/* A required string member, or NULL. */
static const char *
need(json_object *o, const char *key)
{
	const char *s = body_string(body_member(o, key, NULL));

	return s != NULL && *s != '\0' ? s : NULL;
}

/* A key id as a JWT's kid: 1 to 128 letters, digits, '-' and '_'. */
static int
kid_valid(const char *s)
{
	size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");

	return n > 0 && n <= 128 && s[n] == '\0';
}

/* A VAPID subject (RFC 8292 section 2.1): a mailto: or https: URI of printable ASCII. */
static int
subject_valid(const char *s)
{
	size_t i, n = strlen(s);

	if (n > 256 || (strncmp(s, "mailto:", 7) != 0 && strncmp(s, "https://", 8) != 0))
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

/*
 * What is wrong with APNs credentials {team_id, key_id, private_key,
 * topic}, or NULL.  The ids go into the JWT, the topic into a header.
 */
static const char *
apns_check(json_object *o)
{
	if (!push_apns_id_valid(need(o, "team_id")))
		return "team_id must be the 10 upper-case letters and digits Apple issued";
	if (!push_apns_id_valid(need(o, "key_id")))
		return "key_id must be the 10 upper-case letters and digits Apple issued";
	if (!push_topic_valid(need(o, "topic")))
		return "topic must be the app's bundle id (letters, digits, '-' and '.')";
	return NULL;
}

/*
 * What is wrong with an FCM service account, or NULL.  The project id is
 * a path segment of the FCM URL, the e-mail the JWT's issuer.
 */
static const char *
fcm_check(json_object *o)
{
	json_object *v;

	if (!push_fcm_project_valid(need(o, "project_id")))
		return "project_id must be a Google Cloud project id: 6 to 30 lower-case "
		    "letters, digits and hyphens, starting with a letter";
	if (!push_email_valid(need(o, "client_email")))
		return "client_email must be a plain e-mail address";
	if ((v = body_member(o, "private_key_id", NULL)) != NULL &&
	    (body_string(v) == NULL || !kid_valid(body_string(v))))
		return "private_key_id must be a key id of letters and digits";
	return NULL;
}

/* What is wrong with VAPID credentials {public_key, private_key, subject}, or NULL. */
static const char *
web_check(json_object *o)
{
	if (need(o, "public_key") == NULL)
		return "public_key is missing";
	if (need(o, "subject") == NULL || !subject_valid(need(o, "subject")))
		return "subject must be a mailto: or https: URI";
	return NULL;
}

/*
 * Check a provider's credentials: each field's syntax, then the key by
 * using it (a key that cannot sign is refused now, not at the first
 * delivery).  Fills kept with the fields to seal (only those a delivery
 * uses: a service account's token_uri, say, is dropped) and summary with
 * what GET credentials may show.  Returns NULL, or what is wrong.
 */
static const char *
cred_check(const char *provider, json_object *o, json_object *kept, json_object *summary)
{
	static const char *const apns[] = { "team_id", "key_id", "topic", NULL };
	static const char *const fcm[] = { "project_id", "client_email", "private_key_id", NULL };
	static const char *const web[] = { "public_key", "subject", NULL };
	const char *const *keys;
	const char *why, *pem = need(o, "private_key");
	char *sig = NULL;
	size_t i;

	if (strcmp(provider, "apns") == 0) {
		keys = apns;
		why = apns_check(o);
	} else if (strcmp(provider, "fcm") == 0) {
		keys = fcm;
		why = fcm_check(o);
	} else {
		keys = web;
		why = web_check(o);
	}
	if (why != NULL)
		return why;
	if (pem == NULL || strlen(pem) > MAX_PRIVATE_KEY)
		return "private_key is missing or too long";
	if (keys == apns)
		sig = jwt_es256(pem, need(o, "key_id"), "{\"iss\":\"check\"}");
	else if (keys == fcm)
		sig = jwt_rs256(pem, NULL, "{\"iss\":\"check\"}");
	else
		sig = vapid_authorization("https://push.example", need(o, "subject"), pem,
		    need(o, "public_key"), 1);
	if (sig == NULL)
		return keys == apns ? "private_key must be an EC P-256 key in PEM (the .p8)" :
		    keys == fcm ? "private_key must be an RSA key of 2048 to 4096 bits in PEM" :
		    "private_key and public_key must be a P-256 key pair in base64url";
	free(sig);
	json_object_object_add(kept, "private_key", json_object_new_string(pem));
	for (i = 0; keys[i] != NULL; i++) {
		if (need(o, keys[i]) == NULL)
			continue;	/* an optional one (private_key_id) */
		json_object_object_add(kept, keys[i], json_object_new_string(need(o, keys[i])));
		if (strcmp(keys[i], "private_key_id") != 0)
			json_object_object_add(summary, keys[i],
			    json_object_new_string(need(o, keys[i])));
	}
	return NULL;
}

/*
 * PUT /push/credentials/{apns|fcm|web}: APNs {team_id, key_id,
 * private_key (the .p8), topic}; FCM the service-account JSON (or
 * {service_account: ...}); Web Push {public_key, private_key, subject}
 * (VAPID, base64url).  Sealed with AES-256-GCM under push_secret_key
 * before it is stored.  Statuses: 200, 400, 403, 404 (provider), 503.
 */
int
h_push_cred_put(struct req *r, struct resp *p)
{
	const char *provider = r->args[1], *bad;
	json_object *o = r->json, *v, *summary, *kept;
	unsigned char key[32];
	char *sealed;
	const char *text;
	int rc;

	if ((rc = push_check(r, p)) != 0)
		return rc;
	if (strcmp(provider, "apns") != 0 && strcmp(provider, "fcm") != 0 &&
	    strcmp(provider, "web") != 0)
		return resp_error(p, 404, "not_found", "providers are apns, fcm and web");
	if (o == NULL)
		return resp_error(p, 400, "invalid_input", "a JSON body is required");
	if (strcmp(provider, "fcm") == 0 && (v = body_member(o, "service_account",
	    "serviceAccount")) != NULL && json_object_is_type(v, json_type_object))
		o = v;
	summary = json_object_new_object();
	kept = json_object_new_object();
	if ((bad = cred_check(provider, o, kept, summary)) != NULL) {
		json_object_put(summary);
		json_object_put(kept);
		return resp_error(p, 400, "invalid_input", "%s credentials: %s", provider, bad);
	}
	if (config_push_key(r->cfg, key) != 0) {
		json_object_put(summary);
		json_object_put(kept);
		return resp_error(p, 500, "internal",
		    "this server has no push_secret_key to seal credentials with");
	}
	text = json_object_to_json_string_ext(kept, JSON_C_TO_STRING_PLAIN);
	sealed = secret_seal(key, r->app.id, provider, text, strlen(text));
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse((char *)text, strlen(text));
	json_object_put(kept);
	rc = sealed == NULL ? DB_ERROR : db_push_cred_put(r->w->db, r->app.id, provider, sealed,
	    json_object_to_json_string_ext(summary, JSON_C_TO_STRING_PLAIN), now_ms());
	free(sealed);
	if (rc != 0) {
		json_object_put(summary);
		return push_store_error(p, rc);
	}
	json_object_object_add(summary, "provider", json_object_new_string(provider));
	return resp_json(p, 200, summary);
}

/* GET /push/credentials: {"<provider>": {...}} without secrets. */
int
h_push_cred_list(struct req *r, struct resp *p)
{
	json_object *out;
	int rc;

	if ((rc = push_check(r, p)) != 0)
		return rc;
	out = json_object_new_object();
	if ((rc = db_push_cred_list(r->w->db, r->app.id, out)) != 0) {
		json_object_put(out);
		return push_store_error(p, rc);
	}
	return resp_json(p, 200, out);
}

/* DELETE /push/credentials/{provider} and /push/templates/{id}: {"deleted": n}. */
static int
named_delete(struct req *r, struct resp *p, int what)
{
	json_object *out;
	long long n = 0;
	int rc;

	if ((rc = push_check(r, p)) != 0)
		return rc;
	if ((rc = db_push_delete(r->w->db, r->app.id, what, r->args[1], &n)) != 0)
		return push_store_error(p, rc);
	out = json_object_new_object();
	json_object_object_add(out, "deleted", json_object_new_int64(n));
	return resp_json(p, 200, out);
}

int
h_push_cred_delete(struct req *r, struct resp *p)
{
	return named_delete(r, p, PUSH_CREDENTIALS);
}

int
h_push_template_delete(struct req *r, struct resp *p)
{
	return named_delete(r, p, PUSH_TEMPLATE);
}

/*
 * A template is {locales: {"<locale>": {title, body}}, default_locale}
 * with a locale for default_locale; title and body are strings that may
 * hold {{data.path}} placeholders.  Returns NULL or what is wrong.
 */
const char *
template_check(json_object *t)
{
	json_object *locales;
	const char *d;

	if ((locales = json_obj(t, "locales")) == NULL || json_object_object_length(locales) == 0 ||
	    json_object_object_length(locales) > TEMPLATE_MAX_LOCALES)
		return "locales must be an object of 1 to " STR(TEMPLATE_MAX_LOCALES) " locales";
	json_object_object_foreach(locales, name, loc) {
		if (*name == '\0' || strlen(name) > 35 || !json_object_is_type(loc, json_type_object))
			return "each locale must be {title, body} under a name of 1 to 35 bytes";
		if (body_string(body_member(loc, "title", NULL)) == NULL ||
		    body_string(body_member(loc, "body", NULL)) == NULL)
			return "each locale needs title and body, strings";
		/* what is rendered from it is bounded the same way (pushpub.c) */
		if (strlen(json_str(loc, "title")) + strlen(json_str(loc, "body")) >
		    TEMPLATE_MAX_TEXT)
			return "a locale's title and body are at most " STR(TEMPLATE_MAX_TEXT)
			    " bytes together";
	}
	if ((d = json_str(t, "default_locale")) == NULL || json_obj(locales, d) == NULL)
		return "default_locale must name one of the locales";
	return NULL;
}

/* PUT /push/templates/{id} -> 201 (new) / 200 with the template. */
int
h_push_template_put(struct req *r, struct resp *p)
{
	const char *id = r->args[1], *bad;
	json_object *out;
	int created, rc;

	if ((rc = push_check(r, p)) != 0)
		return rc;
	if (strlen(id) > MAX_TEMPLATE_ID || strpbrk(id, " \t\r\n") != NULL)
		return resp_error(p, 400, "invalid_input",
		    "template ids are 1 to %d bytes without spaces", MAX_TEMPLATE_ID);
	if (r->json == NULL)
		return resp_error(p, 400, "invalid_input", "a JSON body is required");
	if ((bad = template_check(r->json)) != NULL)
		return resp_error(p, 400, "invalid_input", "%s", bad);
	out = json_object_new_object();
	/* template_check() made sure of both */
	json_object_object_add(out, "locales", json_object_get(json_obj(r->json, "locales")));
	json_object_object_add(out, "default_locale",
	    json_object_new_string(json_str(r->json, "default_locale")));
	rc = db_push_template_put(r->w->db, r->app.id, id,
	    json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN), now_ms(), &created);
	if (rc != 0) {
		json_object_put(out);
		return push_store_error(p, rc);
	}
	json_object_object_add(out, "template_id", json_object_new_string(id));
	return resp_json(p, created ? 201 : 200, out);
}

/* GET /push/templates/{id}.  Statuses: 200, 403, 404, 503. */
int
h_push_template_get(struct req *r, struct resp *p)
{
	json_object *out;
	char *body;
	int rc;

	if ((rc = push_check(r, p)) != 0)
		return rc;
	rc = db_push_template_get(r->w->db, r->app.id, r->args[1], &body);
	if (rc == DB_NOTFOUND)
		return resp_error(p, 404, "not_found", "no template %s", r->args[1]);
	if (rc != 0)
		return push_store_error(p, rc);
	if ((out = json_parse_object(body)) == NULL)
		out = json_object_new_object();
	free(body);
	json_object_object_add(out, "template_id", json_object_new_string(r->args[1]));
	return resp_json(p, 200, out);
}
