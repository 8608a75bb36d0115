/* tests/fuzz/fuzz_gripsig.c: libFuzzer harness for Pushpin's Grip-Sig tokens and base64url. */
#include "config.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "app/app.h"
#include "app/push.h"
#include "fuzz.h"

#define KEY	"fuzz-grip-key"		/* pushpin_sig_key */
#define NOW	1700000000		/* seconds; a token's exp is compared with it */
#define ISS	""			/* pushpin_sig_iss: any issuer, so validity rests on alg and exp */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level("error");
	return 0;
}

static char *
b64(const void *p, size_t len)
{
	char *s;

	if ((s = b64url_encode(p, len)) == NULL)
		abort();
	return s;
}

/*
 * A compact JWS over the given header and payload bytes, signed with
 * HMAC-SHA256 under key as Pushpin signs Grip-Sig (malloc'd).
 */
static char *
sign(const char *key, const char *hdr, size_t hlen, const char *pl, size_t plen)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char *h = b64(hdr, hlen), *p = b64(pl, plen), *s, *input = NULL, *tok = NULL;

	if (asprintf(&input, "%s.%s", h, p) < 0)
		abort();
	if (HMAC(EVP_sha256(), key, (int)strlen(key), (unsigned char *)input, strlen(input),
	    mac, &maclen) == NULL)
		abort();
	s = b64(mac, maclen);
	if (asprintf(&tok, "%s.%s", input, s) < 0)
		abort();
	free(h);
	free(p);
	free(s);
	free(input);
	return tok;
}

/*
 * base64url both ways: any bytes encode to the unpadded alphabet and
 * decode back; any text that decodes is the encoding of what it decodes
 * to, but for '=' padding (one text per byte string).
 */
static void
check_b64url(const uint8_t *data, size_t len)
{
	unsigned char *out = NULL;
	char *enc, *s, *again;
	size_t olen = 0, i, slen;

	enc = b64(data, len);
	FZ_ASSERT(strlen(enc) == (len * 4 + 2) / 3);
	FZ_ASSERT(strspn(enc, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_") == strlen(enc));
	FZ_ASSERT(b64url_decode(enc, &out, &olen) == 0);
	FZ_ASSERT(olen == len && memcmp(out, data, len) == 0 && out[olen] == '\0');
	free(out);
	free(enc);

	s = fz_strndup(data, len);
	out = NULL;
	if (b64url_decode(s, &out, &olen) == 0) {
		FZ_ASSERT(out != NULL && out[olen] == '\0');
		again = b64(out, olen);
		slen = strlen(s);
		for (i = 0; i < 2 && slen > 0 && s[slen - 1] == '='; i++)
			slen--;
		FZ_ASSERT(strlen(again) == slen && memcmp(again, s, slen) == 0);
		free(again);
		free(out);
	}
	free(s);
}

/*
 * A part of "header\npayload" as JSON: itself when it is an object,
 * else the value of the one member that matters ({"alg": part} or
 * {"exp": part}), so that mutations land on that value.  json-c is not
 * built with coverage: the fuzzer gets no guidance inside the JSON.
 */
static char *
member(const char *name, char *part)
{
	char *s;

	if (part[0] == '{')
		return part;
	if (asprintf(&s, "{\"%s\":%s}", name, part) < 0)
		abort();
	free(part);
	return s;
}

/*
 * Coverage for what json-c makes of a part, which the fuzzer cannot see
 * in json-c itself: a branch per type of the member that matters, so an
 * input reaching a new type (a null alg, a string exp) is kept.  Inlined
 * so that the header and the payload each have their own branches.
 */
static inline __attribute__((always_inline)) int
shape(const char *part, const char *name)
{
	json_object *o, *v;
	int t;

	if ((o = json_tokener_parse(part)) == NULL)
		return -1;
	if (!json_object_is_type(o, json_type_object))
		t = 10;
	else if (!json_object_object_get_ex(o, name, &v))
		t = 11;
	else switch (json_object_get_type(v)) {
	case json_type_null:	t = 0; break;
	case json_type_boolean:	t = 1; break;
	case json_type_double:	t = 2; break;
	case json_type_int:	t = 3; break;
	case json_type_object:	t = 4; break;
	case json_type_array:	t = 5; break;
	case json_type_string:	t = 6; break;
	default:		t = 7; break;
	}
	json_object_put(o);
	return t;
}

/*
 * The input as a token; then "header\npayload" signed with the key, so
 * the fuzzer gets past the MAC to the JSON checks.  Such a token is
 * only valid when its header names HS256 and its payload has an exp;
 * signed with another key, or with its signature changed, never.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	char *raw, *hdr, *pl, *tok;
	size_t n;
	int valid;

	check_b64url(data, len);

	raw = fz_strndup(data, len);
	(void)grip_sig_valid(raw, KEY, ISS, NOW);
	FZ_ASSERT(grip_sig_valid(raw, "", ISS, NOW) == 0);
	free(raw);
	FZ_ASSERT(grip_sig_valid(NULL, KEY, ISS, NOW) == 0);

	fz_split(data, len, '\n', &hdr, &pl);
	hdr = member("alg", hdr);
	pl = member("exp", pl);
	(void)shape(hdr, "alg");
	(void)shape(pl, "exp");
	tok = sign(KEY, hdr, strlen(hdr), pl, strlen(pl));
	valid = grip_sig_valid(tok, KEY, ISS, NOW);
	FZ_ASSERT(valid == 0 || valid == 1);
	if (valid)
		FZ_ASSERT(strstr(hdr, "HS256") != NULL && strstr(pl, "exp") != NULL);
	FZ_ASSERT(grip_sig_valid(tok, KEY "x", ISS, NOW) == 0);
	n = strlen(tok);
	tok[n - 1] = tok[n - 1] == 'A' ? 'B' : 'A';
	FZ_ASSERT(grip_sig_valid(tok, KEY, ISS, NOW) == 0);
	free(tok);

	tok = sign("another key", hdr, strlen(hdr), pl, strlen(pl));
	FZ_ASSERT(grip_sig_valid(tok, KEY, ISS, NOW) == 0);
	free(tok);
	free(hdr);
	free(pl);
	return 0;
}
