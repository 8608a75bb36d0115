/* app/pushcheck.c: syntax checks of what tenants give for push: credential fields, tokens, Web Push endpoints and the addresses they reach. */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "push.h"

/* Whether every byte of s is in the set, and there are min to max of them. */
static int
all_of(const char *s, size_t min, size_t max, int (*in)(int))
{
	size_t n;

	if (s == NULL || (n = strlen(s)) < min || n > max)
		return 0;
	for (; *s != '\0'; s++)
		if (!in((unsigned char)*s))
			return 0;
	return 1;
}

static int
upper_alnum(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* An APNs team id or key id: Apple issues 10 upper-case letters and digits. */
int
push_apns_id_valid(const char *s)
{
	return all_of(s, 10, 10, upper_alnum);
}

static int
bundle_char(int c)
{
	return isascii(c) && (isalnum(c) || c == '-' || c == '.');
}

/*
 * An APNs topic: a bundle id (letters, digits, '-' and '.'), maybe with
 * Apple's suffixes (".voip", ".push-type.liveactivity"): dot-separated
 * non-empty parts, at most 255 bytes.
 */
int
push_topic_valid(const char *s)
{
	if (!all_of(s, 1, 255, bundle_char))
		return 0;
	return s[0] != '.' && s[strlen(s) - 1] != '.' && strstr(s, "..") == NULL;
}

static int
project_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/*
 * A Google Cloud project id: 6 to 30 lower-case letters, digits and
 * hyphens, starting with a letter and not ending with a hyphen.  It is a
 * path segment of the FCM URL, so nothing else may pass.
 */
int
push_fcm_project_valid(const char *s)
{
	if (!all_of(s, 6, 30, project_char))
		return 0;
	return s[0] >= 'a' && s[0] <= 'z' && s[strlen(s) - 1] != '-';
}

static int
local_char(int c)
{
	return isascii(c) && (isalnum(c) || strchr("._+-", c) != NULL);
}

/* A DNS name of letter-digit-hyphen labels (RFC 1123), no trailing dot. */
static int
dns_name_valid(const char *s, size_t len)
{
	size_t i, label = 0;

	if (len == 0 || len > 253)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
		} else if (isascii(c) && (isalnum(c) || c == '-')) {
			if ((label == 0 && c == '-') || ++label > 63)
				return 0;
		} else
			return 0;
	}
	return label > 0 && s[len - 1] != '-';
}

/*
 * A plain e-mail address (a service account's client_email): local part
 * of letters, digits and "._+-", one '@', a DNS name with a dot.
 */
int
push_email_valid(const char *s)
{
	const char *at;
	size_t n;

	if (s == NULL || (n = strlen(s)) < 3 || n > 254 || (at = strchr(s, '@')) == NULL ||
	    at == s || (size_t)(at - s) > 64 || strchr(at + 1, '@') != NULL)
		return 0;
	for (; s < at; s++)
		if (!local_char((unsigned char)*s))
			return 0;
	return strchr(at + 1, '.') != NULL && dns_name_valid(at + 1, strlen(at + 1));
}

/*
 * An OAuth 2 bearer token as RFC 6750 section 2.1 writes it (b64token):
 * 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=", here at
 * most max bytes.  Nothing else may go into an Authorization header.
 */
int
push_b64token_valid(const char *s, size_t max)
{
	size_t i, n;

	if (s == NULL || (n = strlen(s)) == 0 || n > max)
		return 0;
	for (i = 0; i < n && s[i] != '='; i++)
		if (!isascii((unsigned char)s[i]) || !(isalnum((unsigned char)s[i]) ||
		    strchr("-._~+/", s[i]) != NULL))
			return 0;
	if (i == 0)
		return 0;
	for (; i < n; i++)
		if (s[i] != '=')
			return 0;
	return 1;
}

/* ---- addresses ------------------------------------------------------------ */

/* An IPv4 address (host order) that is not on the public Internet. */
static int
ipv4_private(uint32_t a)
{
	static const struct { uint32_t net, mask; } ranges[] = {
		{ 0x00000000, 0xff000000 },	/* 0/8 "this network" */
		{ 0x0a000000, 0xff000000 },	/* 10/8 */
		{ 0x64400000, 0xffc00000 },	/* 100.64/10 carrier-grade NAT */
		{ 0x7f000000, 0xff000000 },	/* 127/8 loopback */
		{ 0xa9fe0000, 0xffff0000 },	/* 169.254/16 link-local, cloud metadata */
		{ 0xac100000, 0xfff00000 },	/* 172.16/12 */
		{ 0xc0000000, 0xffffff00 },	/* 192.0.0/24 IETF protocol assignments */
		{ 0xc0a80000, 0xffff0000 },	/* 192.168/16 */
		{ 0xc6120000, 0xfffe0000 },	/* 198.18/15 benchmarking */
		{ 0xe0000000, 0xf0000000 },	/* 224/4 multicast */
		{ 0xf0000000, 0xf0000000 },	/* 240/4 reserved, and 255.255.255.255 */
	};
	size_t i;

	for (i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
		if ((a & ranges[i].mask) == ranges[i].net)
			return 1;
	return 0;
}

/* An IPv6 address that is not on the public Internet (RFC 6890, RFC 4291). */
static int
ipv6_private(const unsigned char b[16])
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	static const unsigned char nat64[12] = { 0, 0x64, 0xff, 0x9b };
	static const unsigned char zero[12];
	uint32_t v4 = (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15];

	/* an IPv4 address inside (mapped, compatible, NAT64): its own ranges; ::, ::1 too */
	if (memcmp(b, mapped, 12) == 0 || memcmp(b, zero, 12) == 0 || memcmp(b, nat64, 12) == 0)
		return memcmp(b, zero, 12) == 0 && v4 <= 1 ? 1 : ipv4_private(v4);
	return (b[0] & 0xfe) == 0xfc ||			/* fc00::/7 unique local */
	    (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) ||	/* fe80::/10 link-local */
	    (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) ||	/* fec0::/10 old site-local */
	    b[0] == 0xff;				/* ff00::/8 multicast */
}

/*
 * Whether a socket address is loopback, private, link-local, multicast,
 * unspecified or otherwise not a public Internet address (IPv4-mapped
 * IPv6 forms judged by their IPv4 address).  Unknown families count as
 * private.  len is the address's size.
 */
int
push_addr_private(const struct sockaddr *sa, size_t len)
{
	const struct sockaddr_in *in4;
	const struct sockaddr_in6 *in6;

	if (sa == NULL)
		return 1;
	if (sa->sa_family == AF_INET && len >= sizeof(*in4)) {
		in4 = (const struct sockaddr_in *)sa;
		return ipv4_private(ntohl(in4->sin_addr.s_addr));
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(*in6)) {
		in6 = (const struct sockaddr_in6 *)sa;
		return ipv6_private(in6->sin6_addr.s6_addr);
	}
	return 1;
}

/* ---- Web Push endpoints --------------------------------------------------- */

/* A port of 1 to 5 digits, 1..65535; -1 otherwise. */
static long
port_number(const char *p, size_t len)
{
	long v = 0;
	size_t i;

	if (len < 1 || len > 5)
		return -1;
	for (i = 0; i < len; i++) {
		if (!isdigit((unsigned char)p[i]))
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v >= 1 && v <= 65535 ? v : -1;
}

/*
 * The host of an authority: "[IPv6]" or a DNS name or a dotted IPv4
 * address.  A name whose last label is a number must be a dotted quad:
 * URL parsers (curl's, browsers') read "2130706433" or "0x7f.1" as IPv4.
 */
static const char *
endpoint_host(struct push_endpoint *ep, const char *h, size_t len)
{
	unsigned char buf[16];
	const char *last;
	size_t i;

	if (len == 0)
		return "the endpoint has no host";
	if (h[0] == '[') {
		if (len < 4 || h[len - 1] != ']' || len - 2 >= sizeof(ep->host))
			return "the endpoint's IPv6 host is malformed";
		memcpy(ep->host, h + 1, len - 2);
		ep->host[len - 2] = '\0';
		if (inet_pton(AF_INET6, ep->host, buf) != 1)
			return "the endpoint's IPv6 host is malformed";
		ep->family = AF_INET6;
		ep->private_ip = ipv6_private(buf);
		snprintf(ep->host, sizeof(ep->host), "%.*s", (int)len, h);
		goto lower;
	}
	if (len >= sizeof(ep->host) || !dns_name_valid(h, len))
		return "the endpoint's host is not a valid name";
	memcpy(ep->host, h, len);
	ep->host[len] = '\0';
	last = strrchr(ep->host, '.') ? strrchr(ep->host, '.') + 1 : ep->host;
	if (isdigit((unsigned char)*last)) {
		if (inet_pton(AF_INET, ep->host, buf) != 1)
			return "the endpoint's host is neither a name nor an IPv4 address";
		ep->family = AF_INET;
		ep->private_ip = ipv4_private((uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
		    (uint32_t)buf[2] << 8 | buf[3]);
	}
lower:
	for (i = 0; ep->host[i] != '\0'; i++)
		ep->host[i] = (char)tolower((unsigned char)ep->host[i]);
	return NULL;
}

/*
 * Parse a Web Push endpoint: http or https, no userinfo, a valid host,
 * an optional port, then a path and query of printable ASCII (no
 * spaces).  Fills ep.  Returns NULL, or what is wrong.
 */
const char *
push_endpoint_parse(const char *url, struct push_endpoint *ep)
{
	const char *auth, *end, *colon, *why;
	size_t i, n, hostlen;
	long port;

	memset(ep, 0, sizeof(*ep));
	if (url == NULL || (n = strlen(url)) == 0 || n > PUSH_ENDPOINT_MAX)
		return "the endpoint must be a URL of at most 2048 bytes";
	for (i = 0; i < n; i++)
		if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
			return "the endpoint holds a space, a control or a non-ASCII byte";
	if (strncasecmp(url, "https://", 8) == 0) {
		ep->https = 1;
		auth = url + 8;
	} else if (strncasecmp(url, "http://", 7) == 0)
		auth = url + 7;
	else
		return "the endpoint must be an https:// URL";
	end = auth + strcspn(auth, "/?#");
	if (memchr(auth, '@', (size_t)(end - auth)) != NULL)
		return "the endpoint must not hold a user name or password";
	if (strchr(url, '#') != NULL)
		return "the endpoint must not hold a fragment";
	/* the port follows the last ':' outside brackets */
	colon = NULL;
	for (i = 0; auth + i < end; i++)
		if (auth[i] == ':')
			colon = auth + i;
		else if (auth[i] == ']')
			colon = NULL;
	hostlen = (size_t)((colon != NULL ? colon : end) - auth);
	if ((why = endpoint_host(ep, auth, hostlen)) != NULL)
		return why;
	port = ep->https ? 443 : 80;
	if (colon != NULL && (port = port_number(colon + 1, (size_t)(end - colon - 1))) < 0)
		return "the endpoint's port is not a number of 1 to 65535";
	ep->port = (int)port;
	return NULL;
}

/*
 * Whether the endpoint's "host:port" is on list (the operator's
 * webpush_allow: entries separated by spaces or commas; hosts compared
 * without case, IPv6 in brackets).
 */
int
push_endpoint_allowed(const char *list, const struct push_endpoint *ep)
{
	char want[sizeof(ep->host) + 8];
	size_t n, len;

	if (list == NULL)
		return 0;
	len = (size_t)snprintf(want, sizeof(want), "%s:%d", ep->host, ep->port);
	while (*list != '\0') {
		list += strspn(list, " \t,");
		n = strcspn(list, " \t,");
		if (n == len && strncasecmp(list, want, n) == 0)
			return 1;
		list += n;
	}
	return 0;
}

/*
 * The registration and delivery rule for a Web Push endpoint: a valid
 * URL; unless its host:port is on allow, https and not a literal
 * private address.  *allowed tells whether allow exempted it (then its
 * connections are not checked either).  Returns NULL or what is wrong.
 */
const char *
push_endpoint_check(const char *url, const char *allow, int *allowed)
{
	struct push_endpoint ep;
	const char *why;

	*allowed = 0;
	if ((why = push_endpoint_parse(url, &ep)) != NULL)
		return why;
	if (push_endpoint_allowed(allow, &ep)) {
		*allowed = 1;
		return NULL;
	}
	if (!ep.https)
		return "the endpoint must be an https:// URL";
	if (ep.private_ip)
		return "the endpoint's host is a loopback, private, link-local or multicast address";
	return NULL;
}

/*
 * Whether an operator's webpush_allow list is well formed: host:port
 * entries (a DNS name, IPv4 or [IPv6], a port), separated by spaces or
 * commas.  Returns NULL or what is wrong.
 */
const char *
push_allow_list_check(const char *list)
{
	struct push_endpoint ep;
	char url[PUSH_ENDPOINT_MAX + 16];
	size_t n;

	while (list != NULL && *list != '\0') {
		list += strspn(list, " \t,");
		if ((n = strcspn(list, " \t,")) == 0)
			break;
		if (n > 270 || memchr(list, ':', n) == NULL)
			return "each entry is host:port";
		snprintf(url, sizeof(url), "https://%.*s/", (int)n, list);
		if (push_endpoint_parse(url, &ep) != NULL || memchr(list, '/', n) != NULL ||
		    memchr(list, '@', n) != NULL)
			return "each entry is host:port";
		list += n;
	}
	return NULL;
}
