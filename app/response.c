/* app/response.c: building responses; errors in the SPEC 2 shape. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

/* An empty answer: status 0 until something answers (router_finish checks). */
void
resp_init(struct resp *p)
{
	memset(p, 0, sizeof(*p));
}

void
resp_free(struct resp *p)
{
	if (p == NULL)
		return;
	if (p->json != NULL)
		json_object_put(p->json);
	free(p->text);
	free(p->headers);
	memset(p, 0, sizeof(*p));
}

/*
 * Whether name is an HTTP field name (RFC 9110 token) and value holds no
 * CR, LF or NUL (nor other control characters but tab): anything else
 * would end the header line and let the rest of the value become
 * headers of its own, which Pushpin would believe (Set-Meta-*).
 */
static int
header_ok(const char *name, const char *value)
{
	const unsigned char *c;

	if (*name == '\0')
		return 0;
	for (c = (const unsigned char *)name; *c != '\0'; c++)
		if (*c <= 0x20 || *c >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", *c) != NULL)
			return 0;
	for (c = (const unsigned char *)value; *c != '\0'; c++)
		if ((*c < 0x20 && *c != '\t') || *c == 0x7f)
			return 0;
	return 1;
}

/*
 * Add a response header.  A name or value that could break the header
 * block is refused (-1, logged), whoever the caller: the header is not
 * sent, the rest of the answer is.
 */
int
resp_header(struct resp *p, const char *name, const char *value)
{
	char *h = NULL;

	if (name == NULL || value == NULL || !header_ok(name, value)) {
		log_error("response header %.40s refused: a control character or a bad name",
		    name ? name : "(null)");
		return -1;
	}
	if (asprintf(&h, "%s%s: %s\r\n", p->headers ? p->headers : "", name, value) < 0)
		return -1;
	free(p->headers);
	p->headers = h;
	return 0;
}

static void
resp_clear(struct resp *p)
{
	char allow[sizeof(p->allow)], *headers = p->headers;
	int retry = p->retry_after;

	/* the headers said so far stay: only the body is replaced */
	p->headers = NULL;
	memcpy(allow, p->allow, sizeof(allow));
	resp_free(p);
	memcpy(p->allow, allow, sizeof(allow));
	p->retry_after = retry;
	p->headers = headers;
}

/* Take ownership of j and answer with it; returns status (0 for 200). */
int
resp_json(struct resp *p, int status, json_object *j)
{
	resp_clear(p);
	p->status = status;
	p->json = j;
	p->content_type = "application/json";
	return status == 200 ? 0 : status;
}

int
resp_text(struct resp *p, int status, const char *ctype, const char *text)
{
	return resp_bytes(p, status, ctype, text, strlen(text));
}

/* Answer with len bytes that may hold NULs (a WebSocket close code). */
int
resp_bytes(struct resp *p, int status, const char *ctype, const char *buf, size_t len)
{
	resp_clear(p);
	p->status = status;
	if ((p->text = malloc(len + 1)) != NULL) {
		memcpy(p->text, buf, len);
		p->text[len] = '\0';
		p->textlen = len;
	}
	p->content_type = ctype;
	return status == 200 ? 0 : status;
}

/*
 * An error as {"error", "code", "status"} (SPEC 2).  Returns the status so
 * handlers can `return resp_error(...)`.
 */
int
resp_error(struct resp *p, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	json_object *j;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	j = json_object_new_object();
	json_object_object_add(j, "error", json_object_new_string(msg));
	json_object_object_add(j, "code", json_object_new_string(code));
	json_object_object_add(j, "status", json_object_new_int(status));
	resp_json(p, status, j);
	return status;
}

/* A backend is down: 503 with Retry-After, never the internal reason. */
int
resp_unavailable(struct resp *p, const char *dependency)
{
	p->retry_after = 1;
	return resp_error(p, 503, "service_unavailable",
	    "%s is unavailable; nothing was committed, retry later", dependency);
}

const char *
resp_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

/*
 * The body to send (borrowed from p, valid until resp_free()) and its
 * length.
 */
const char *
resp_body(const struct resp *p, size_t *len)
{
	const char *b = "";

	if (p->json != NULL)
		b = json_object_to_json_string_ext(p->json, JSON_C_TO_STRING_PLAIN |
		    JSON_C_TO_STRING_NOSLASHESCAPE);
	else if (p->text != NULL) {
		*len = p->textlen;
		return p->text;
	}
	*len = strlen(b);
	return b;
}

/* The CGI response head for a body of bodylen bytes; malloc'd. */
char *
resp_head(const struct resp *p, size_t bodylen)
{
	char *head = NULL, extra[128] = "";
	size_t off = 0;

	if (p->allow[0] != '\0')
		off += snprintf(extra + off, sizeof(extra) - off, "Allow: %s\r\n", p->allow);
	if (p->retry_after > 0 && off < sizeof(extra))
		snprintf(extra + off, sizeof(extra) - off, "Retry-After: %d\r\n",
		    p->retry_after);
	if (asprintf(&head, "Status: %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\nCache-Control: no-store\r\n%s%s\r\n",
	    p->status, resp_reason(p->status),
	    p->content_type ? p->content_type : "application/json",
	    bodylen, extra, p->headers ? p->headers : "") < 0)
		return NULL;
	return head;
}
