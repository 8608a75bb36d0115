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

/* A required string member, or NULL. */
static const char *
need(json_object *o, const char *key)
{
	const char *s = body_string(body_member(o, key, NULL));

	return s != NULL && *s != '\0' ? s : NULL;
}

/*
 * Check a provider's credentials by using them: a key that cannot sign
 * is refused now, not at the first delivery.  Fills summary with what
 * GET credentials may show.  Returns NULL, or what is wrong.
 */
static const char *
cred_check(const char *provider, json_object *o, json_object *summary)
{
	static const char *const apns[] = { "team_id", "key_id", "private_key", "topic" };
	static const char *const fcm[] = { "project_id", "client_email", "private_key" };
	static const char *const web[] = { "public_key", "private_key", "subject" };
	const char *const *keys = strcmp(provider, "apns") == 0 ? apns :
	    strcmp(provider, "fcm") == 0 ? fcm : web;
	size_t i, n = keys == fcm ? 3 : keys == apns ? 4 : 3;
	char *sig = NULL;

	for (i = 0; i < n; i++)
		if (need(o, keys[i]) == NULL)
			return keys[i];
	if (keys == apns)
		sig = jwt_es256(need(o, "private_key"), need(o, "key_id"), "{\"iss\":\"check\"}");
	else if (keys == fcm)
		sig = jwt_rs256(need(o, "private_key"), NULL, "{\"iss\":\"check\"}");
	else
		sig = vapid_authorization("https://push.example", need(o, "subject"),
		    need(o, "private_key"), need(o, "public_key"), 1);
	if (sig == NULL)
		return "private_key";
	free(sig);
	for (i = 0; i < n; i++)
		if (strcmp(keys[i], "private_key") != 0)
			json_object_object_add(summary, keys[i],
			    json_object_new_string(need(o, keys[i])));
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
	json_object *o = r->json, *v, *summary;
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
	if ((bad = cred_check(provider, o, summary)) != NULL) {
		json_object_put(summary);
		return resp_error(p, 400, "invalid_input", "%s credentials: %s is missing or "
		    "does not work", provider, bad);
	}
	if (config_push_key(r->cfg, key) != 0) {
		json_object_put(summary);
		return resp_error(p, 500, "internal",
		    "this server has no push_secret_key to seal credentials with");
	}
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	sealed = secret_seal(key, text, strlen(text));
	OPENSSL_cleanse(key, sizeof(key));
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
	json_object *locales, *def, *l;
	const char *d;

	if (!json_object_object_get_ex(t, "locales", &locales) ||
	    !json_object_is_type(locales, json_type_object) ||
	    json_object_object_length(locales) == 0)
		return "locales must be an object of at least one locale";
	json_object_object_foreach(locales, name, loc) {
		if (*name == '\0' || strlen(name) > 35 || !json_object_is_type(loc, json_type_object))
			return "each locale must be {title, body} under a name of 1 to 35 bytes";
		if (body_string(body_member(loc, "title", NULL)) == NULL ||
		    body_string(body_member(loc, "body", NULL)) == NULL)
			return "each locale needs title and body, strings";
	}
	if (!json_object_object_get_ex(t, "default_locale", &def) ||
	    (d = body_string(def)) == NULL || !json_object_object_get_ex(locales, d, &l))
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
	json_object_object_add(out, "locales", json_object_get(json_object_object_get(r->json,
	    "locales")));
	json_object_object_add(out, "default_locale",
	    json_object_get(json_object_object_get(r->json, "default_locale")));
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
	if ((out = json_tokener_parse(body)) == NULL)
		out = json_object_new_object();
	free(body);
	json_object_object_add(out, "template_id", json_object_new_string(r->args[1]));
	return resp_json(p, 200, out);
}
