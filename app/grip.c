/*
 * app/grip.c: Pushpin's side of the realtime layer, the only file that
 * knows its wire formats: WebSocket-over-HTTP events in and out, the
 * Grip-Sig token on its requests, and publishing to every instance.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "app.h"
#include "push.h"

/*
 * The next WebSocket-over-HTTP event of body at *off: "TYPE\r\n" or
 * "TYPE <hex length>\r\n<content>\r\n".  Its content points into body;
 * *off moves past it.  Returns 1 for an event, 0 at the end, -1 when the
 * body is malformed there.
 */
int
grip_next(const char *body, size_t len, size_t *off, struct ws_event *ev)
{
	const char *p = body + *off, *end = body + len, *eol, *sp, *h;
	unsigned long long clen = 0;

	if (*off >= len)
		return 0;
	if ((eol = memmem(p, (size_t)(end - p), "\r\n", 2)) == NULL)
		return -1;
	sp = memchr(p, ' ', (size_t)(eol - p));
	ev->type = p;
	ev->typelen = (size_t)((sp ? sp : eol) - p);
	ev->content = NULL;
	ev->len = 0;
	if (ev->typelen == 0)
		return -1;
	if (sp == NULL) {
		*off = (size_t)(eol + 2 - body);
		return 1;
	}
	/* hex digits only (strtoull would take blanks, signs and "0x") */
	if (sp + 1 == eol || eol - sp - 1 > 16)
		return -1;
	for (h = sp + 1; h < eol; h++) {
		int c = (unsigned char)*h;
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return -1;
		clen = clen << 4 | (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
	}
	if (clen > (size_t)(end - eol - 2) || (size_t)(end - eol - 2) - clen < 2 ||
	    memcmp(eol + 2 + clen, "\r\n", 2) != 0)
		return -1;
	ev->content = eol + 2;
	ev->len = (size_t)clen;
	*off = (size_t)(eol + 2 + clen + 2 - body);
	return 1;
}

/* How many events body holds, or -1 when any of it is malformed. */
long
grip_count(const char *body, size_t len)
{
	struct ws_event ev;
	size_t off = 0;
	long n = 0;
	int rc;

	while ((rc = grip_next(body, len, &off, &ev)) == 1)
		n++;
	return rc == 0 ? n : -1;
}

/* Whether an event is of the given type ("OPEN", "TEXT", ...). */
int
grip_is(const struct ws_event *ev, const char *type)
{
	return ev->typelen == strlen(type) && memcmp(ev->type, type, ev->typelen) == 0;
}

static int
out_grow(struct ws_out *o, size_t more)
{
	size_t cap = o->cap ? o->cap : 256;
	char *nb;

	while (cap < o->len + more + 1)
		cap *= 2;
	if (cap == o->cap)
		return 0;
	if ((nb = realloc(o->buf, cap)) == NULL)
		return -1;
	o->buf = nb;
	o->cap = cap;
	return 0;
}

/* Append one event, with content when len > 0 or content != NULL. */
int
grip_out_event(struct ws_out *o, const char *type, const char *content, size_t len)
{
	int n;

	if (out_grow(o, strlen(type) + len + 24) != 0)
		return -1;
	if (content == NULL)
		n = snprintf(o->buf + o->len, o->cap - o->len, "%s\r\n", type);
	else
		n = snprintf(o->buf + o->len, o->cap - o->len, "%s %zx\r\n", type, len);
	o->len += (size_t)n;
	if (content != NULL) {
		memcpy(o->buf + o->len, content, len);
		memcpy(o->buf + o->len + len, "\r\n", 2);
		o->len += len + 2;
	}
	o->buf[o->len] = '\0';
	return 0;
}

/* Append a text message to the client. */
int
grip_out_text(struct ws_out *o, const char *text)
{
	return grip_out_event(o, "TEXT", text, strlen(text));
}

/* Append a GRIP control message ("c:" + JSON) for Pushpin itself. */
int
grip_out_control(struct ws_out *o, json_object *msg)
{
	const char *js = json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN);
	char *s = NULL;
	int rc = -1;

	if (asprintf(&s, "c:%s", js) >= 0)
		rc = grip_out_text(o, s);
	free(s);
	json_object_put(msg);
	return rc;
}

/* Append a close of the WebSocket with a status code (RFC 6455 7.4). */
int
grip_out_close(struct ws_out *o, int code)
{
	unsigned char c[2] = { (unsigned char)(code >> 8), (unsigned char)code };

	return grip_out_event(o, "CLOSE", (const char *)c, 2);
}

void
grip_out_free(struct ws_out *o)
{
	free(o->buf);
	memset(o, 0, sizeof(*o));
}

/*
 * Check Pushpin's Grip-Sig header: a JWT (HS256) signed with the shared
 * key, issued by iss (Pushpin's sig_iss), whose exp is still ahead.  It
 * proves the request came through Pushpin, so its Connection-Id and
 * Meta-* headers can be believed.  Every part is untrusted until the
 * signature is checked, and type-checked after.  Returns 1 when valid.
 */
int
grip_sig_valid(const char *token, const char *key, const char *iss, int64_t now_s)
{
	const char *dot1, *dot2, *alg, *who;
	unsigned char mac[EVP_MAX_MD_SIZE], *sig = NULL, *hdr = NULL, *pl = NULL;
	unsigned int maclen = 0;
	size_t siglen = 0, hlen = 0, plen = 0;
	json_object *h = NULL, *p = NULL;
	char *hs = NULL, *ps = NULL;
	int64_t exp;
	int ok = 0;

	if (token == NULL || *key == '\0' || strlen(token) > GRIP_SIG_MAX ||
	    (dot1 = strchr(token, '.')) == NULL || (dot2 = strchr(dot1 + 1, '.')) == NULL)
		return 0;
	if (HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)token,
	    (size_t)(dot2 - token), mac, &maclen) == NULL ||
	    b64url_decode(dot2 + 1, &sig, &siglen) != 0 || siglen != maclen ||
	    CRYPTO_memcmp(sig, mac, maclen) != 0)
		goto out;
	hs = strndup(token, (size_t)(dot1 - token));
	ps = strndup(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	if (hs == NULL || ps == NULL || b64url_decode(hs, &hdr, &hlen) != 0 ||
	    b64url_decode(ps, &pl, &plen) != 0)
		goto out;
	h = json_parse_object((char *)hdr);
	p = json_parse_object((char *)pl);
	if ((alg = json_str(h, "alg")) == NULL || strcmp(alg, "HS256") != 0)
		goto out;
	/* the issuer Pushpin was told to sign as, when one is configured */
	if (*iss != '\0' && ((who = json_str(p, "iss")) == NULL || strcmp(who, iss) != 0))
		goto out;
	/* exp is required: a token that never expires could be replayed forever */
	ok = json_int(p, "exp", &exp) == 0 && exp > now_s;
out:
	json_object_put(h);
	json_object_put(p);
	free(hs);
	free(ps);
	free(hdr);
	free(pl);
	free(sig);
	return ok;
}

/* ---- publishing -------------------------------------------------------- */

/*
 * Add one item to a publish (items, an array): a text message for the
 * subscribers of channel, or with content NULL the close of their
 * sockets with code.  sender (may be NULL) is the item's meta "sender",
 * which Pushpin's skip-self filter compares with each subscriber's meta
 * "user".
 */
void
grip_item(json_object *items, const char *channel, const char *content, const char *sender,
    int code)
{
	json_object *it = json_object_new_object(), *fmt = json_object_new_object(),
	    *ws = json_object_new_object(), *meta;

	json_object_object_add(it, "channel", json_object_new_string(channel));
	if (content != NULL)
		json_object_object_add(ws, "content", json_object_new_string(content));
	else {
		json_object_object_add(ws, "action", json_object_new_string("close"));
		json_object_object_add(ws, "code", json_object_new_int(code));
	}
	json_object_object_add(fmt, "ws-message", ws);
	json_object_object_add(it, "formats", fmt);
	if (sender != NULL) {
		meta = json_object_new_object();
		json_object_object_add(meta, "sender", json_object_new_string(sender));
		json_object_object_add(it, "meta", meta);
	}
	json_object_array_add(items, it);
}

/* Once per process, before any thread publishes (libcurl's global state). */
int
grip_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

#define GRIP_MAX_TARGETS 16

struct grip_pub {
	CURLM		*multi;
	CURL		*easy[GRIP_MAX_TARGETS];
	char		*url[GRIP_MAX_TARGETS];
	size_t		 n;
	int		 timeout_ms;
	size_t		 max_body;	/* bytes per POST */
};

/*
 * A publisher to every Pushpin instance listed in urls (space or comma
 * separated), with a kept-alive connection to each.  NULL when urls is
 * empty (realtime delivery is off) or on failure.
 */
struct grip_pub *
grip_pub_new(const char *urls, int timeout_ms, int max_body)
{
	struct grip_pub *g;
	char *list, *tok, *save = NULL;

	if (urls == NULL || strspn(urls, " ,") == strlen(urls))
		return NULL;
	if ((g = calloc(1, sizeof(*g))) == NULL || (list = strdup(urls)) == NULL) {
		free(g);
		return NULL;
	}
	g->timeout_ms = timeout_ms;
	g->max_body = (size_t)max_body;
	g->multi = curl_multi_init();
	for (tok = strtok_r(list, " ,", &save); tok != NULL && g->n < GRIP_MAX_TARGETS;
	    tok = strtok_r(NULL, " ,", &save)) {
		g->url[g->n] = strdup(tok);
		g->easy[g->n] = curl_easy_init();
		if (g->url[g->n] == NULL || g->easy[g->n] == NULL)
			break;
		g->n++;
	}
	free(list);
	if (g->multi == NULL || g->n == 0) {
		grip_pub_free(g);
		return NULL;
	}
	return g;
}

void
grip_pub_free(struct grip_pub *g)
{
	size_t i;

	if (g == NULL)
		return;
	for (i = 0; i < GRIP_MAX_TARGETS; i++) {
		if (g->easy[i] != NULL)
			curl_easy_cleanup(g->easy[i]);
		free(g->url[i]);
	}
	if (g->multi != NULL)
		curl_multi_cleanup(g->multi);
	free(g);
}

/*
 * POST one body to every instance at once and wait for their answers, up
 * to pushpin_timeout_ms.  Returns how many instances did not take it.
 */
static int
post_all(struct grip_pub *g, const char *body, size_t len)
{
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	int running = 0, failed = 0, left;
	long code;
	size_t i;
	CURLMsg *m;

	for (i = 0; i < g->n; i++) {
		CURL *e = g->easy[i];
		curl_easy_setopt(e, CURLOPT_URL, g->url[i]);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)len);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdr);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_body);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)g->timeout_ms);
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)g->timeout_ms);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_multi_add_handle(g->multi, e);
	}
	do {
		if (curl_multi_perform(g->multi, &running) != CURLM_OK)
			break;
		if (running > 0)
			curl_multi_poll(g->multi, NULL, 0, 100, NULL);
	} while (running > 0);
	while ((m = curl_multi_info_read(g->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		code = 0;
		curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
		if (m->data.result != CURLE_OK || code / 100 != 2) {
			char *url = NULL;
			curl_easy_getinfo(m->easy_handle, CURLINFO_EFFECTIVE_URL, &url);
			log_warn("publish to Pushpin at %s failed: %s (HTTP %ld, %zu bytes)",
			    url ? url : "?", curl_easy_strerror(m->data.result), code, len);
			failed++;
		}
	}
	for (i = 0; i < g->n; i++)
		curl_multi_remove_handle(g->multi, g->easy[i]);
	curl_slist_free_all(hdr);
	return failed;
}

/* Append len bytes of s to o. */
static int
out_append(struct ws_out *o, const char *s, size_t len)
{
	if (out_grow(o, len) != 0)
		return -1;
	memcpy(o->buf + o->len, s, len);
	o->len += len;
	o->buf[o->len] = '\0';
	return 0;
}

/* Close the body in o ({"items":[...) and POST it; o is emptied. */
static int
post_items(struct grip_pub *g, struct ws_out *o)
{
	int failed;

	if (out_append(o, "]}", 2) != 0)
		return (int)g->n;
	failed = post_all(g, o->buf, o->len);
	o->len = 0;
	return failed;
}

/*
 * Publish items (an array in Pushpin's item format) to every instance, as
 * {"items": [...]} bodies of at most pushpin_max_body bytes: Pushpin
 * answers 400 to a larger one (push_in_http_max_body_size), and a group
 * commit's publishes can add up to more.  An item larger than that alone
 * is still sent, alone, and refused.  Returns how many POSTs some instance
 * did not take, counted per instance (0: all did).  The caller has
 * committed what it publishes: an instance that is down only costs its
 * clients this delivery (history still has it).
 */
int
grip_publish(struct grip_pub *g, json_object *items)
{
	struct ws_out b = { 0 };
	size_t i, n = json_object_array_length(items), len;
	const char *it;
	int failed = 0;

	for (i = 0; i < n; i++) {
		it = json_object_to_json_string_ext(json_object_array_get_idx(items, i),
		    JSON_C_TO_STRING_PLAIN);
		len = strlen(it);
		/* the body so far, a comma, this item and "]}" */
		if (b.len > 0 && b.len + 1 + len + 2 > g->max_body)
			failed += post_items(g, &b);
		if (out_append(&b, b.len == 0 ? "{\"items\":[" : ",", b.len == 0 ? 10 : 1) != 0 ||
		    out_append(&b, it, len) != 0) {
			grip_out_free(&b);
			return failed + (int)g->n;
		}
	}
	if (b.len > 0)
		failed += post_items(g, &b);
	grip_out_free(&b);
	return failed;
}
