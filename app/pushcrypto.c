/* app/pushcrypto.c: push crypto: base64url, JWS, RFC 8291, RFC 8292, sealed secrets. */
#include "config.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "push.h"

#define P256_PRIV_LEN	32
#define P256_PUB_LEN	65	/* 0x04 || X || Y */
#define ES256_SIG_LEN	64	/* R || S, RFC 7518 section 3.4 */
#define RSA_MIN_BITS	2048	/* RFC 7518 section 3.3 */
#define RSA_MAX_BITS	4096	/* a bigger key makes every signature costly */
#define PEM_MAX		16384	/* bytes of a PEM key we read: RSA-4096 is ~3,300 */
#define WP_SALT_LEN	16
#define WP_AUTH_LEN	16
#define WP_HEADER_LEN	(WP_SALT_LEN + 4 + 1 + P256_PUB_LEN)
#define GCM_NONCE_LEN	12
#define GCM_TAG_LEN	16
#define SEAL_PREFIX	"v2."	/* AAD: prefix || app id || NUL || provider */
#define SEAL_PREFIX_V1	"v1."	/* AAD: the prefix alone; still opened */
#define SEAL_SCOPE_MAX	128	/* bytes of app id and provider together */

static char p256_group[] = SN_X9_62_prime256v1;
static char sha256_name[] = "SHA256";

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Base64url without '=' (RFC 7515 section 2); malloc'd or NULL. */
char *
b64url_encode(const unsigned char *in, size_t len)
{
	const char *a = b64url_alphabet;
	char *out, *p;
	size_t i;
	unsigned long v;

	if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
		return NULL;
	if ((out = malloc((len + 2) / 3 * 4 + 1)) == NULL)
		return NULL;
	p = out;
	for (i = 0; len - i >= 3; i += 3) {
		v = (unsigned long)in[i] << 16 | in[i + 1] << 8 | in[i + 2];
		*p++ = a[v >> 18 & 63];
		*p++ = a[v >> 12 & 63];
		*p++ = a[v >> 6 & 63];
		*p++ = a[v & 63];
	}
	if (len - i > 0) {
		v = (unsigned long)in[i] << 16;
		if (len - i == 2)
			v |= in[i + 1] << 8;
		*p++ = a[v >> 18 & 63];
		*p++ = a[v >> 12 & 63];
		if (len - i == 2)
			*p++ = a[v >> 6 & 63];
	}
	*p = '\0';
	return out;
}

static int
b64url_value(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/*
 * Padding, when present, must be complete ("Zg==", not "Zg=").  Unused
 * low bits of the last character must be zero, so that every byte
 * string has exactly one text form.  *out is malloc'd.  Returns 0 or -1.
 */
int
b64url_decode(const char *s, unsigned char **out, size_t *outlen)
{
	unsigned char *buf;
	size_t len, pad = 0, i, o = 0;
	unsigned int v = 0, bits = 0;
	int d;

	if (s == NULL || out == NULL || outlen == NULL)
		return -1;
	len = strlen(s);
	while (len > 0 && s[len - 1] == '=' && pad < 2) {
		len--;
		pad++;
	}
	if ((pad > 0 && (len + pad) % 4 != 0) || len % 4 == 1)
		return -1;
	if ((buf = malloc(len / 4 * 3 + 3)) == NULL)
		return -1;
	for (i = 0; i < len; i++) {
		if ((d = b64url_value((unsigned char)s[i])) < 0)
			goto fail;
		v = (v << 6 | (unsigned int)d) & 0xffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = v >> bits & 0xff;
		}
	}
	if ((v & ((1U << bits) - 1)) != 0)
		goto fail;
	buf[o] = '\0';		/* room is left for it: o <= len / 4 * 3 + 2 */
	*out = buf;
	*outlen = o;
	return 0;
fail:
	free(buf);
	return -1;
}

/*
 * A server has no one to ask for a passphrase: an encrypted key fails
 * rather than prompting on the terminal.
 */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static EVP_PKEY *
pem_private_key(const char *pem)
{
	BIO *bio;
	EVP_PKEY *pkey;

	if (pem == NULL || strlen(pem) > PEM_MAX)
		return NULL;
	if ((bio = BIO_new_mem_buf(pem, (int)strlen(pem))) == NULL)
		return NULL;
	pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	return pkey;
}

static int
is_p256(const EVP_PKEY *pkey)
{
	char name[64];

	if (!EVP_PKEY_is_a(pkey, "EC") ||
	    EVP_PKEY_get_group_name(pkey, name, sizeof(name), NULL) != 1)
		return 0;
	return strcmp(name, SN_X9_62_prime256v1) == 0 || strcmp(name, "P-256") == 0;
}

/*
 * An EC P-256 public key from its uncompressed point.  Decoding the
 * point checks it lies on the curve, so a hostile p256dh cannot steer
 * ECDH into a small subgroup.
 */
static EVP_PKEY *
p256_public(const unsigned char *pt, size_t len)
{
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *pkey = NULL;

	if (len != P256_PUB_LEN || pt[0] != 0x04)
		return NULL;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
	    p256_group, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
	    (void *)pt, len);
	params[2] = OSSL_PARAM_construct_end();
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL)
		return NULL;
	if (EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	return pkey;
}

/*
 * An EC P-256 key pair from a raw private scalar, which must lie in
 * [1, n-1].  OpenSSL 3.0's EVP_PKEY_fromdata() does not derive the
 * public point, so it is computed here (d * G) and also written to pub.
 */
static EVP_PKEY *
p256_private(const unsigned char d[P256_PRIV_LEN], unsigned char pub[P256_PUB_LEN])
{
	EC_GROUP *group = NULL;
	EC_POINT *pt = NULL;
	BIGNUM *priv = NULL;
	BN_CTX *bn = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;

	if ((group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1)) == NULL ||
	    (bn = BN_CTX_secure_new()) == NULL ||
	    (priv = BN_secure_new()) == NULL ||
	    BN_bin2bn(d, P256_PRIV_LEN, priv) == NULL ||
	    (pt = EC_POINT_new(group)) == NULL)
		goto out;
	BN_set_flags(priv, BN_FLG_CONSTTIME);
	if (BN_is_zero(priv) || BN_cmp(priv, EC_GROUP_get0_order(group)) >= 0)
		goto out;
	if (EC_POINT_mul(group, pt, priv, NULL, NULL, bn) != 1 ||
	    EC_POINT_point2oct(group, pt, POINT_CONVERSION_UNCOMPRESSED, pub,
	    P256_PUB_LEN, bn) != P256_PUB_LEN)
		goto out;
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
	    p256_group, 0) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub,
	    P256_PUB_LEN) != 1 ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
		goto out;
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params) != 1)
		pkey = NULL;
out:
	EVP_PKEY_CTX_free(ctx);
	/* priv is a secure BIGNUM: its copy is in secure memory, cleared on free */
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EC_POINT_free(pt);
	BN_clear_free(priv);
	BN_CTX_free(bn);
	EC_GROUP_free(group);
	return pkey;
}

/* A fresh P-256 private scalar, big endian.  Returns 0 or -1. */
static int
p256_generate(unsigned char d[P256_PRIV_LEN])
{
	EVP_PKEY *pkey;
	BIGNUM *priv = NULL;
	int rc = -1;

	if ((pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", p256_group)) == NULL)
		return -1;
	if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &priv) == 1 &&
	    BN_bn2binpad(priv, d, P256_PRIV_LEN) == P256_PRIV_LEN)
		rc = 0;
	BN_clear_free(priv);
	EVP_PKEY_free(pkey);
	return rc;
}

/* No NaN or Infinity anywhere: json-c takes and prints them, JSON has none. */
static int
json_finite(json_object *o)
{
	size_t i, n;

	switch (json_object_get_type(o)) {
	case json_type_double:
		return isfinite(json_object_get_double(o));
	case json_type_array:
		n = json_object_array_length(o);
		for (i = 0; i < n; i++)
			if (!json_finite(json_object_array_get_idx(o, i)))
				return 0;
		return 1;
	case json_type_object: {
		json_object_object_foreach(o, k, v) {
			(void)k;
			if (!json_finite(v))
				return 0;
		}
		return 1;
	}
	default:
		return 1;
	}
}

/* A quote character outside "strings": json-c would take 'this' as a string. */
static int
has_single_quote(const char *s)
{
	int instr = 0;

	for (; *s != '\0'; s++) {
		if (instr && *s == '\\' && s[1] != '\0')
			s++;
		else if (*s == '"')
			instr = !instr;
		else if (!instr && *s == '\'')
			return 1;
	}
	return 0;
}

/*
 * The claims as compact JSON text, malloc'd, or NULL unless s is exactly
 * one JSON object (blanks around it allowed).  The text is printed anew
 * from the parse: json-c's strict mode still takes 'single quotes' and
 * NaN, which must not reach a token.
 */
static char *
claims_text(const char *s)
{
	json_tokener *tok;
	json_object *o;
	const char *text;
	size_t len, end;
	char *out = NULL;

	if (s == NULL || (len = strlen(s)) > INT_MAX || has_single_quote(s))
		return NULL;
	if ((tok = json_tokener_new()) == NULL)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, s, (int)len);
	if (o != NULL && json_tokener_get_error(tok) == json_tokener_success &&
	    json_object_is_type(o, json_type_object) && json_finite(o)) {
		end = json_tokener_get_parse_end(tok);
		while (end < len && isspace((unsigned char)s[end]))
			end++;
		text = json_object_to_json_string_ext(o,
		    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		if (end == len && text != NULL)
			out = strdup(text);
	}
	json_object_put(o);
	json_tokener_free(tok);
	return out;
}

static int
json_add_string(json_object *o, const char *key, const char *value)
{
	json_object *v;

	if ((v = json_object_new_string(value)) == NULL)
		return -1;
	if (json_object_object_add(o, key, v) != 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

/* DER ECDSA-Sig-Value to the fixed-size R || S of JWS (RFC 7518 3.4). */
static int
ecdsa_der_to_raw(const unsigned char *der, size_t len, unsigned char raw[ES256_SIG_LEN])
{
	ECDSA_SIG *sig;
	const BIGNUM *r, *s;
	const unsigned char *p = der;
	int rc = -1;

	if (len > LONG_MAX || (sig = d2i_ECDSA_SIG(NULL, &p, (long)len)) == NULL)
		return -1;
	ECDSA_SIG_get0(sig, &r, &s);
	if (BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32)
		rc = 0;
	ECDSA_SIG_free(sig);
	return rc;
}

/*
 * Sign msg with SHA-256 under pkey.  RSA keys get PKCS#1 v1.5, OpenSSL's
 * default for them; EC signatures are converted to R || S.  *sig is
 * malloc'd.  Returns 0 or -1.
 */
static int
jws_sign(EVP_PKEY *pkey, int ec, const char *msg, unsigned char **sig, size_t *siglen)
{
	EVP_MD_CTX *md;
	unsigned char *der = NULL, *raw = NULL;
	size_t len = 0;
	int rc = -1;

	if ((md = EVP_MD_CTX_new()) == NULL)
		return -1;
	if (EVP_DigestSignInit_ex(md, NULL, sha256_name, NULL, NULL, pkey, NULL) != 1 ||
	    EVP_DigestSign(md, NULL, &len, (const unsigned char *)msg, strlen(msg)) != 1 ||
	    (der = malloc(len)) == NULL ||
	    EVP_DigestSign(md, der, &len, (const unsigned char *)msg, strlen(msg)) != 1)
		goto out;
	if (ec) {
		if ((raw = malloc(ES256_SIG_LEN)) == NULL ||
		    ecdsa_der_to_raw(der, len, raw) != 0)
			goto out;
		*sig = raw;
		*siglen = ES256_SIG_LEN;
		raw = NULL;
	} else {
		*sig = der;
		*siglen = len;
		der = NULL;
	}
	rc = 0;
out:
	free(raw);
	free(der);
	EVP_MD_CTX_free(md);
	return rc;
}

/*
 * header "." claims "." signature, each base64url.  ec selects ES256
 * (else RS256).  The header is built here: ES256 with a kid is Apple's
 * {"alg","kid"}; without one it is VAPID's {"typ","alg"} (RFC 8292
 * section 2); RS256 is {"alg","typ"[,"kid"]}.  Returns a malloc'd token
 * or NULL.
 */
static char *
jws_compact(EVP_PKEY *pkey, int ec, const char *kid, const char *claims)
{
	json_object *h = NULL;
	const char *htext;
	char *ctext, *h64 = NULL, *c64 = NULL, *s64 = NULL, *input = NULL, *out = NULL;
	unsigned char *sig = NULL;
	size_t siglen, n;

	if ((ctext = claims_text(claims)) == NULL)
		return NULL;
	if ((h = json_object_new_object()) == NULL)
		goto out;
	if (ec && kid == NULL && json_add_string(h, "typ", "JWT") != 0)
		goto out;
	if (json_add_string(h, "alg", ec ? "ES256" : "RS256") != 0 ||
	    (!ec && json_add_string(h, "typ", "JWT") != 0) ||
	    (kid != NULL && json_add_string(h, "kid", kid) != 0))
		goto out;
	htext = json_object_to_json_string_ext(h,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (htext == NULL ||
	    (h64 = b64url_encode((const unsigned char *)htext, strlen(htext))) == NULL ||
	    (c64 = b64url_encode((const unsigned char *)ctext, strlen(ctext))) == NULL)
		goto out;
	n = strlen(h64) + 1 + strlen(c64) + 1;
	if ((input = malloc(n)) == NULL)
		goto out;
	snprintf(input, n, "%s.%s", h64, c64);
	if (jws_sign(pkey, ec, input, &sig, &siglen) != 0 ||
	    (s64 = b64url_encode(sig, siglen)) == NULL)
		goto out;
	n += 1 + strlen(s64);
	if ((out = malloc(n)) != NULL)
		snprintf(out, n, "%s.%s", input, s64);
out:
	free(sig);
	free(s64);
	free(input);
	free(c64);
	free(h64);
	free(ctext);
	json_object_put(h);
	return out;
}

/* ES256 (RFC 7518 section 3.4) with a P-256 key in PEM; malloc'd or NULL. */
char *
jwt_es256(const char *pem_key, const char *kid, const char *claims_json)
{
	EVP_PKEY *pkey;
	char *jwt = NULL;

	if ((pkey = pem_private_key(pem_key)) != NULL && is_p256(pkey))
		jwt = jws_compact(pkey, 1, kid, claims_json);
	EVP_PKEY_free(pkey);
	if (jwt == NULL)
		ERR_clear_error();	/* no stale errors for the next OpenSSL user */
	return jwt;
}

/*
 * RS256 (RFC 7518 section 3.3) with an RSA key of RSA_MIN_BITS to
 * RSA_MAX_BITS in PEM; malloc'd or NULL.  The key is a tenant's: one of
 * 16384 bits would make every token exchange cost a CPU second.
 */
char *
jwt_rs256(const char *pem_key, const char *kid, const char *claims_json)
{
	EVP_PKEY *pkey;
	char *jwt = NULL;

	if ((pkey = pem_private_key(pem_key)) != NULL && EVP_PKEY_is_a(pkey, "RSA") &&
	    EVP_PKEY_get_bits(pkey) >= RSA_MIN_BITS && EVP_PKEY_get_bits(pkey) <= RSA_MAX_BITS)
		jwt = jws_compact(pkey, 0, kid, claims_json);
	EVP_PKEY_free(pkey);
	if (jwt == NULL)
		ERR_clear_error();
	return jwt;
}

/* The shared secret of ECDH on P-256 (the X coordinate, 32 bytes). */
static int
p256_ecdh(EVP_PKEY *priv, EVP_PKEY *peer, unsigned char secret[32])
{
	EVP_PKEY_CTX *ctx;
	size_t len = 32;
	int rc = -1;

	if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL)) == NULL)
		return -1;
	if (EVP_PKEY_derive_init(ctx) == 1 &&
	    EVP_PKEY_derive_set_peer_ex(ctx, peer, 1) == 1 &&
	    EVP_PKEY_derive(ctx, secret, &len) == 1 && len == 32)
		rc = 0;
	EVP_PKEY_CTX_free(ctx);
	return rc;
}

/* HKDF-SHA-256 (RFC 5869), extract and expand. */
static int
hkdf_sha256(const unsigned char *salt, size_t saltlen, const unsigned char *ikm,
    size_t ikmlen, const unsigned char *info, size_t infolen, unsigned char *out,
    size_t outlen)
{
	EVP_KDF *kdf;
	EVP_KDF_CTX *kctx = NULL;
	OSSL_PARAM params[5];
	int rc = -1;

	if ((kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) == NULL)
		return -1;
	if ((kctx = EVP_KDF_CTX_new(kdf)) == NULL)
		goto out;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
	    sha256_name, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
	    (void *)ikm, ikmlen);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
	    (void *)salt, saltlen);
	params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
	    (void *)info, infolen);
	params[4] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, out, outlen, params) == 1)
		rc = 0;
out:
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return rc;
}

/*
 * AES-GCM encryption of p1 || p2 (the second part saves copying a
 * plaintext to append one byte), ciphertext then tag written to out.
 */
static int
gcm_seal(const EVP_CIPHER *cipher, const unsigned char *key,
    const unsigned char nonce[GCM_NONCE_LEN], const unsigned char *aad,
    size_t aadlen, const unsigned char *p1, size_t len1,
    const unsigned char *p2, size_t len2, unsigned char *out)
{
	EVP_CIPHER_CTX *c;
	int n, rc = -1;

	if (aadlen > INT_MAX || len1 > INT_MAX || len2 > INT_MAX)
		return -1;
	if ((c = EVP_CIPHER_CTX_new()) == NULL)
		return -1;
	if (EVP_EncryptInit_ex2(c, cipher, key, nonce, NULL) != 1 ||
	    (aadlen > 0 && EVP_EncryptUpdate(c, NULL, &n, aad, (int)aadlen) != 1) ||
	    (len1 > 0 && EVP_EncryptUpdate(c, out, &n, p1, (int)len1) != 1) ||
	    (len2 > 0 && EVP_EncryptUpdate(c, out + len1, &n, p2, (int)len2) != 1) ||
	    EVP_EncryptFinal_ex(c, out + len1 + len2, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LEN,
	    out + len1 + len2) != 1)
		goto out;
	rc = 0;
out:
	EVP_CIPHER_CTX_free(c);
	return rc;
}

/* AES-GCM decryption of ct, checking tag; out gets ctlen bytes. */
static int
gcm_open(const EVP_CIPHER *cipher, const unsigned char *key,
    const unsigned char nonce[GCM_NONCE_LEN], const unsigned char *aad,
    size_t aadlen, const unsigned char *ct, size_t ctlen,
    const unsigned char tag[GCM_TAG_LEN], unsigned char *out)
{
	EVP_CIPHER_CTX *c;
	unsigned char t[GCM_TAG_LEN];
	int n, rc = -1;

	if (aadlen > INT_MAX || ctlen > INT_MAX)
		return -1;
	if ((c = EVP_CIPHER_CTX_new()) == NULL)
		return -1;
	memcpy(t, tag, sizeof(t));
	if (EVP_DecryptInit_ex2(c, cipher, key, nonce, NULL) != 1 ||
	    (aadlen > 0 && EVP_DecryptUpdate(c, NULL, &n, aad, (int)aadlen) != 1) ||
	    (ctlen > 0 && EVP_DecryptUpdate(c, out, &n, ct, (int)ctlen) != 1) ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LEN, t) != 1 ||
	    EVP_DecryptFinal_ex(c, out + ctlen, &n) != 1)
		goto out;
	rc = 0;
out:
	EVP_CIPHER_CTX_free(c);
	return rc;
}

/*
 * RFC 8291 section 3.4 then RFC 8188 section 2.2/2.3: from the ECDH
 * secret and the auth secret derive IKM, then the content encryption
 * key and the nonce (record 0, so the nonce is used as derived).
 */
static int
webpush_keys(const unsigned char secret[32], const unsigned char auth[WP_AUTH_LEN],
    const unsigned char ua_pub[P256_PUB_LEN], const unsigned char as_pub[P256_PUB_LEN],
    const unsigned char salt[WP_SALT_LEN], unsigned char cek[16],
    unsigned char nonce[GCM_NONCE_LEN])
{
	static const unsigned char info[] = "WebPush: info";
	static const unsigned char cek_info[] = "Content-Encoding: aes128gcm";
	static const unsigned char nonce_info[] = "Content-Encoding: nonce";
	unsigned char key_info[sizeof(info) + 2 * P256_PUB_LEN], ikm[32];
	int rc = -1;

	/* key_info = "WebPush: info" || 0x00 || ua_public || as_public */
	memcpy(key_info, info, sizeof(info));
	memcpy(key_info + sizeof(info), ua_pub, P256_PUB_LEN);
	memcpy(key_info + sizeof(info) + P256_PUB_LEN, as_pub, P256_PUB_LEN);
	/* The info strings of RFC 8188 end in 0x00: sizeof keeps the NUL. */
	if (hkdf_sha256(auth, WP_AUTH_LEN, secret, 32, key_info, sizeof(key_info),
	    ikm, sizeof(ikm)) == 0 &&
	    hkdf_sha256(salt, WP_SALT_LEN, ikm, sizeof(ikm), cek_info,
	    sizeof(cek_info), cek, 16) == 0 &&
	    hkdf_sha256(salt, WP_SALT_LEN, ikm, sizeof(ikm), nonce_info,
	    sizeof(nonce_info), nonce, GCM_NONCE_LEN) == 0)
		rc = 0;
	OPENSSL_cleanse(ikm, sizeof(ikm));
	return rc;
}

/*
 * The body is one RFC 8188 record: the header (salt, rs, idlen, keyid =
 * the ephemeral public key, RFC 8291 section 4), then the plaintext
 * with the last-record delimiter 0x02 and no further padding, sealed.
 */
int
webpush_encrypt_with(const char *p256dh_b64url, const char *auth_b64url,
    const unsigned char *plain, size_t len, const unsigned char salt[16],
    const unsigned char as_private[32], unsigned char **out, size_t *outlen)
{
	static const unsigned char delim = 0x02;
	unsigned char *ua = NULL, *auth = NULL, *body = NULL;
	unsigned char as_pub[P256_PUB_LEN], secret[32], cek[16], nonce[GCM_NONCE_LEN];
	size_t ualen = 0, authlen = 0, bodylen;
	EVP_PKEY *peer = NULL, *as = NULL;
	int rc = -1;

	if ((plain == NULL && len > 0) || len > WEBPUSH_MAX_PLAIN || salt == NULL ||
	    as_private == NULL || out == NULL || outlen == NULL)
		return -1;
	if (b64url_decode(p256dh_b64url, &ua, &ualen) != 0 ||
	    b64url_decode(auth_b64url, &auth, &authlen) != 0 ||
	    authlen != WP_AUTH_LEN)
		goto out;
	if ((peer = p256_public(ua, ualen)) == NULL ||
	    (as = p256_private(as_private, as_pub)) == NULL ||
	    p256_ecdh(as, peer, secret) != 0 ||
	    webpush_keys(secret, auth, ua, as_pub, salt, cek, nonce) != 0)
		goto out;
	bodylen = WP_HEADER_LEN + len + 1 + GCM_TAG_LEN;
	if ((body = malloc(bodylen)) == NULL)
		goto out;
	memcpy(body, salt, WP_SALT_LEN);
	body[16] = WEBPUSH_RECORD_SIZE >> 24 & 0xff;
	body[17] = WEBPUSH_RECORD_SIZE >> 16 & 0xff;
	body[18] = WEBPUSH_RECORD_SIZE >> 8 & 0xff;
	body[19] = WEBPUSH_RECORD_SIZE & 0xff;
	body[20] = P256_PUB_LEN;
	memcpy(body + 21, as_pub, P256_PUB_LEN);
	if (gcm_seal(EVP_aes_128_gcm(), cek, nonce, NULL, 0, plain, len, &delim, 1,
	    body + WP_HEADER_LEN) != 0)
		goto out;
	*out = body;
	*outlen = bodylen;
	body = NULL;
	rc = 0;
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(cek, sizeof(cek));
	OPENSSL_cleanse(nonce, sizeof(nonce));
	free(body);
	free(auth);
	free(ua);
	EVP_PKEY_free(as);
	EVP_PKEY_free(peer);
	if (rc != 0)
		ERR_clear_error();
	return rc;
}

/*
 * Whether a subscription's p256dh (base64url) is an uncompressed P-256
 * point that lies on the curve (p256_public() decodes it, which checks):
 * 65 bytes starting 0x04 are not enough.
 */
int
webpush_p256dh_valid(const char *p256dh_b64url)
{
	unsigned char *pt = NULL;
	size_t len = 0;
	EVP_PKEY *pkey = NULL;
	int valid;

	if (p256dh_b64url != NULL && strlen(p256dh_b64url) <= 2 * P256_PUB_LEN &&
	    b64url_decode(p256dh_b64url, &pt, &len) == 0)
		pkey = p256_public(pt, len);
	valid = pkey != NULL;
	free(pt);
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return valid;
}

/* webpush_encrypt_with() with a fresh salt and ephemeral key. */
int
webpush_encrypt(const char *p256dh_b64url, const char *auth_b64url,
    const unsigned char *plain, size_t len, unsigned char **out, size_t *outlen)
{
	unsigned char salt[WP_SALT_LEN], d[P256_PRIV_LEN];
	int rc = -1;

	if (RAND_bytes(salt, sizeof(salt)) == 1 && p256_generate(d) == 0)
		rc = webpush_encrypt_with(p256dh_b64url, auth_b64url, plain, len,
		    salt, d, out, outlen);
	OPENSSL_cleanse(d, sizeof(d));
	if (rc != 0)
		ERR_clear_error();
	return rc;
}

/* Host characters we accept: a DNS name, IPv4, or the inside of [IPv6]. */
static int
host_ok(const char *h, size_t len, int bracketed)
{
	size_t i;
	int c;

	if (len == 0)
		return 0;
	for (i = 0; i < len; i++) {
		c = (unsigned char)h[i];
		if (!(isalnum(c) || c == '-' || c == '.' || c == '_' ||
		    (bracketed && c == ':')))
			return 0;
	}
	return 1;
}

/*
 * The ASCII serialization of an http(s) URL's origin (RFC 6454 section
 * 6.2), which RFC 8292 section 2 makes the JWT audience: lower-case
 * scheme and host, the port only when it is not the scheme's default.
 * A URL with userinfo or an odd authority fails.  Returns malloc'd or NULL.
 */
static char *
endpoint_origin(const char *url)
{
	const char *scheme, *host, *end, *port = NULL, *p;
	size_t hostlen, i, n;
	long portnum = -1, defport;
	char *out;

	if (url == NULL)
		return NULL;
	if (strncasecmp(url, "https://", 8) == 0) {
		scheme = "https";
		defport = 443;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		scheme = "http";
		defport = 80;
	} else
		return NULL;
	host = url + strlen(scheme) + 3;
	end = host + strcspn(host, "/?#");
	if (*host == '[') {
		if ((p = memchr(host, ']', end - host)) == NULL ||
		    !host_ok(host + 1, p - host - 1, 1))
			return NULL;
		hostlen = p - host + 1;
		if (p + 1 < end && p[1] != ':')
			return NULL;
	} else {
		p = memchr(host, ':', end - host);
		hostlen = (p != NULL ? p : end) - host;
		if (!host_ok(host, hostlen, 0))
			return NULL;
	}
	if (host + hostlen < end) {
		port = host + hostlen + 1;
		if (end - port < 1 || end - port > 5)
			return NULL;
		for (portnum = 0, p = port; p < end; p++) {
			if (!isdigit((unsigned char)*p))
				return NULL;
			portnum = portnum * 10 + (*p - '0');
		}
		if (portnum < 1 || portnum > 65535)
			return NULL;
	}
	n = strlen(scheme) + 3 + hostlen + 7;
	if ((out = malloc(n)) == NULL)
		return NULL;
	i = (size_t)snprintf(out, n, "%s://", scheme);
	for (p = host; p < host + hostlen; p++)
		out[i++] = (char)tolower((unsigned char)*p);
	out[i] = '\0';
	if (portnum != -1 && portnum != defport)
		snprintf(out + i, n - i, ":%ld", portnum);
	return out;
}

/*
 * The VAPID claims {"aud","exp"[,"sub"]} (RFC 8292 section 2) as JSON
 * text; malloc'd or NULL.
 */
static char *
vapid_claims(const char *aud, const char *subject, int64_t expires_s)
{
	json_object *c, *exp;
	const char *text;
	char *out = NULL;

	if ((c = json_object_new_object()) == NULL)
		return NULL;
	if (json_add_string(c, "aud", aud) != 0 ||
	    (exp = json_object_new_int64(expires_s)) == NULL)
		goto out;
	if (json_object_object_add(c, "exp", exp) != 0) {
		json_object_put(exp);
		goto out;
	}
	if (subject != NULL && json_add_string(c, "sub", subject) != 0)
		goto out;
	text = json_object_to_json_string_ext(c,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (text != NULL)
		out = strdup(text);
out:
	json_object_put(c);
	return out;
}

/*
 * "vapid t=<ES256 JWT>, k=<public key>" (RFC 8292 section 3).  The
 * public key must be the private key's.  Returns malloc'd or NULL.
 */
char *
vapid_authorization(const char *endpoint, const char *subject,
    const char *private_b64url, const char *public_b64url, int64_t expires_s)
{
	unsigned char *d = NULL, *pub = NULL, derived[P256_PUB_LEN];
	char *aud = NULL, *claims = NULL, *jwt = NULL, *k = NULL, *out = NULL;
	size_t dlen = 0, publen = 0, n;
	EVP_PKEY *pkey = NULL;

	if (expires_s < 0 || (aud = endpoint_origin(endpoint)) == NULL)
		goto out;
	if (b64url_decode(private_b64url, &d, &dlen) != 0 || dlen != P256_PRIV_LEN ||
	    b64url_decode(public_b64url, &pub, &publen) != 0 || publen != P256_PUB_LEN)
		goto out;
	/* A k= not matching the key would fail only at the push service. */
	if ((pkey = p256_private(d, derived)) == NULL ||
	    CRYPTO_memcmp(derived, pub, P256_PUB_LEN) != 0)
		goto out;
	if ((claims = vapid_claims(aud, subject, expires_s)) == NULL ||
	    (jwt = jws_compact(pkey, 1, NULL, claims)) == NULL ||
	    (k = b64url_encode(pub, publen)) == NULL)
		goto out;
	n = strlen("vapid t=, k=") + strlen(jwt) + strlen(k) + 1;
	if ((out = malloc(n)) != NULL)
		snprintf(out, n, "vapid t=%s, k=%s", jwt, k);
out:
	if (d != NULL)
		OPENSSL_cleanse(d, dlen);
	free(d);
	free(pub);
	free(aud);
	free(claims);
	free(jwt);
	free(k);
	EVP_PKEY_free(pkey);
	if (out == NULL)
		ERR_clear_error();
	return out;
}

/* A fresh P-256 pair as base64url raw scalar and point; 0 or -1. */
int
vapid_keypair(char **private_b64url, char **public_b64url)
{
	unsigned char d[P256_PRIV_LEN], pub[P256_PUB_LEN];
	char *a = NULL, *b = NULL;
	EVP_PKEY *pkey = NULL;
	int rc = -1;

	if (private_b64url == NULL || public_b64url == NULL)
		return -1;
	if (p256_generate(d) != 0 || (pkey = p256_private(d, pub)) == NULL ||
	    (a = b64url_encode(d, sizeof(d))) == NULL ||
	    (b = b64url_encode(pub, sizeof(pub))) == NULL)
		goto out;
	*private_b64url = a;
	*public_b64url = b;
	a = b = NULL;
	rc = 0;
out:
	OPENSSL_cleanse(d, sizeof(d));
	if (a != NULL)
		OPENSSL_cleanse(a, strlen(a));
	free(a);
	free(b);
	EVP_PKEY_free(pkey);
	if (rc != 0)
		ERR_clear_error();
	return rc;
}

/*
 * The AAD of a "v2." seal: the prefix, the app id, a NUL, the provider.
 * Neither holds a NUL, so no two (app, provider) pairs share an AAD, and
 * a record copied to another app's or provider's row does not open.
 * Returns its length, or 0 when they do not fit.
 */
static size_t
seal_aad(unsigned char *aad, size_t size, const char *app_id, const char *provider)
{
	size_t a, p, pre = strlen(SEAL_PREFIX);

	if (app_id == NULL || provider == NULL || (a = strlen(app_id)) == 0 ||
	    (p = strlen(provider)) == 0 || pre + a + 1 + p > size)
		return 0;
	memcpy(aad, SEAL_PREFIX, pre);
	memcpy(aad + pre, app_id, a);
	aad[pre + a] = '\0';
	memcpy(aad + pre + a + 1, provider, p);
	return pre + a + 1 + p;
}

/*
 * Seal a secret for an app's provider: "v2." || base64url(nonce ||
 * ciphertext || tag), AES-256-GCM with a fresh nonce, the AAD binding it
 * to app_id and provider (seal_aad).
 */
char *
secret_seal(const unsigned char key[32], const char *app_id, const char *provider,
    const char *plain, size_t len)
{
	unsigned char *buf, aad[3 + SEAL_SCOPE_MAX + 1];
	char *b64 = NULL, *out = NULL;
	size_t n, aadlen;

	if (key == NULL || (plain == NULL && len > 0) ||
	    len > INT_MAX - GCM_NONCE_LEN - GCM_TAG_LEN ||
	    (aadlen = seal_aad(aad, sizeof(aad), app_id, provider)) == 0)
		return NULL;
	n = GCM_NONCE_LEN + len + GCM_TAG_LEN;
	if ((buf = malloc(n)) == NULL)
		return NULL;
	if (RAND_bytes(buf, GCM_NONCE_LEN) != 1 ||
	    gcm_seal(EVP_aes_256_gcm(), key, buf, aad, aadlen, (const unsigned char *)plain,
	    len, NULL, 0, buf + GCM_NONCE_LEN) != 0 ||
	    (b64 = b64url_encode(buf, n)) == NULL)
		goto out;
	n = strlen(SEAL_PREFIX) + strlen(b64) + 1;
	if ((out = malloc(n)) != NULL)
		snprintf(out, n, "%s%s", SEAL_PREFIX, b64);
out:
	free(b64);
	free(buf);
	if (out == NULL)
		ERR_clear_error();
	return out;
}

/* Whether a sealed record is of the old "v1." format (see secret_open()). */
int
secret_is_v1(const char *sealed)
{
	return sealed != NULL && strncmp(sealed, SEAL_PREFIX_V1, strlen(SEAL_PREFIX_V1)) == 0;
}

/*
 * Open a "v2." record sealed for app_id and provider, or an old "v1."
 * one (its AAD is "v1." alone: it opens for any app; records already
 * stored must keep working until they are sealed again, by the next PUT
 * of the credentials or by sockudo-fcgi maintain).  *plain is malloc'd
 * and NUL-terminated.  Returns 0, or -1 on any failure, with nothing to
 * free.
 */
int
secret_open(const unsigned char key[32], const char *app_id, const char *provider,
    const char *sealed, char **plain, size_t *len)
{
	unsigned char *buf = NULL, aad[3 + SEAL_SCOPE_MAX + 1];
	char *out = NULL;
	size_t n = 0, ctlen = 0, aadlen, pre = strlen(SEAL_PREFIX);
	int rc = -1;

	if (key == NULL || sealed == NULL || plain == NULL || len == NULL)
		return -1;
	if (secret_is_v1(sealed)) {
		memcpy(aad, SEAL_PREFIX_V1, pre);
		aadlen = pre;
	} else if (strncmp(sealed, SEAL_PREFIX, pre) != 0 ||
	    (aadlen = seal_aad(aad, sizeof(aad), app_id, provider)) == 0)
		return -1;
	if (b64url_decode(sealed + pre, &buf, &n) != 0 || n < GCM_NONCE_LEN + GCM_TAG_LEN)
		goto out;
	ctlen = n - GCM_NONCE_LEN - GCM_TAG_LEN;
	if ((out = malloc(ctlen + 1)) == NULL)
		goto out;
	if (gcm_open(EVP_aes_256_gcm(), key, buf, aad, aadlen, buf + GCM_NONCE_LEN, ctlen,
	    buf + GCM_NONCE_LEN + ctlen, (unsigned char *)out) != 0)
		goto out;
	out[ctlen] = '\0';
	*plain = out;
	*len = ctlen;
	out = NULL;
	rc = 0;
out:
	/* GCM hands out plaintext before the tag is checked: wipe it. */
	if (out != NULL)
		OPENSSL_cleanse(out, ctlen);
	free(out);
	free(buf);
	if (rc != 0)
		ERR_clear_error();
	return rc;
}
