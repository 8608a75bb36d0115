/* tests/unit/t_push_crypto.c: base64url, JWS, RFC 8291, RFC 8292, sealed secrets. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "app/push.h"
#include "tap.h"

/* RFC 8291 Appendix A, line breaks removed. */
#define RFC_PLAIN	"When I grow up, I want to be a watermelon"
#define RFC_AS_PRIVATE	"yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
#define RFC_AS_PUBLIC	"BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
#define RFC_UA_PRIVATE	"q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
#define RFC_UA_PUBLIC	"BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
#define RFC_SALT	"DGv6ra1nlYgDCS1FRnbzlw"
#define RFC_AUTH	"BTBZMqHH6r4Tts7J_aSIgg"
#define RFC_BODY	"DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml" \
			"mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPT" \
			"pK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"

static char sha256_name[] = "SHA256";
static char p256_name[] = "prime256v1";

/* Decode or die: for constants of the test itself. */
static unsigned char *
b64(const char *s, size_t *len)
{
	unsigned char *buf;
	size_t n;

	if (b64url_decode(s, &buf, &n) != 0) {
		printf("Bail out! cannot decode test constant %s\n", s);
		exit(1);
	}
	if (len != NULL)
		*len = n;
	return buf;
}

/* Decode s and compare with want (NUL-terminated text). */
static int
b64_is(const char *s, const char *want)
{
	unsigned char *buf;
	size_t n;
	int eq;

	if (b64url_decode(s, &buf, &n) != 0)
		return 0;
	eq = n == strlen(want) && memcmp(buf, want, n) == 0;
	free(buf);
	return eq;
}

static int
b64_rejects(const char *s)
{
	unsigned char *buf = NULL;
	size_t n;

	if (b64url_decode(s, &buf, &n) == 0) {
		free(buf);
		return 0;
	}
	return 1;
}

static void
test_b64url(void)
{
	static const char *rfc4648[][2] = {
		{ "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" },
	};
	static const unsigned char urlchars[] = { 0xfb, 0xff, 0xfe };
	unsigned char buf[64], *dec;
	size_t i, n, bad = 0;
	char *s;

	for (i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
		s = b64url_encode((const unsigned char *)rfc4648[i][0],
		    strlen(rfc4648[i][0]));
		is_str(s, rfc4648[i][1], "b64url_encode(\"%s\") (RFC 4648 section 10)",
		    rfc4648[i][0]);
		free(s);
		ok(b64_is(rfc4648[i][1], rfc4648[i][0]), "b64url_decode(\"%s\")",
		    rfc4648[i][1]);
	}
	s = b64url_encode(urlchars, sizeof(urlchars));
	is_str(s, "-__-", "the URL-safe alphabet: - and _, not + and /");
	free(s);
	ok(b64_is("Zg==", "f") && b64_is("Zm8=", "fo"), "padding accepted");

	for (n = 0; n <= sizeof(buf); n++) {
		RAND_bytes(buf, (int)sizeof(buf));
		dec = NULL;
		if ((s = b64url_encode(buf, n)) == NULL || strchr(s, '=') != NULL ||
		    b64url_decode(s, &dec, &i) != 0 || i != n || memcmp(dec, buf, n) != 0)
			bad++;
		free(s);
		free(dec);
	}
	ok(bad == 0, "random round trips of 0..64 bytes (%zu failed)", bad);

	ok(b64url_decode("", &dec, &n) == 0 && dec != NULL && n == 0,
	    "empty input decodes to zero bytes");
	free(dec);
	ok(b64_rejects("Zm9v+g"), "'+' rejected");
	ok(b64_rejects("Zm9/"), "'/' rejected");
	ok(b64_rejects("Zm9v Zm9v"), "blank rejected");
	ok(b64_rejects("Zm9v\n"), "newline rejected");
	ok(b64_rejects("Zm9v\xc3\xa9"), "non-ASCII rejected");
	ok(b64_rejects("Z"), "a lone sextet rejected");
	ok(b64_rejects("Zg=") && b64_rejects("Zg===") && b64_rejects("Zm9v="),
	    "incomplete or excess padding rejected");
	ok(b64_rejects("=Zg") && b64_rejects("Z=g="), "'=' before the end rejected");
	ok(b64_rejects("Zh"), "non-zero unused bits rejected");
	ok(b64url_decode(NULL, &dec, &n) == -1, "NULL rejected");
}

/* An EC P-256 key from raw parts; d may be NULL for a public key only. */
static EVP_PKEY *
t_p256_key(const unsigned char *d, const unsigned char *pub, size_t publen)
{
	OSSL_PARAM_BLD *bld;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	BIGNUM *priv = NULL;

	if ((bld = OSSL_PARAM_BLD_new()) == NULL)
		return NULL;
	OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, p256_name, 0);
	OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, publen);
	if (d != NULL) {
		priv = BN_bin2bn(d, 32, NULL);
		OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv);
	}
	if ((params = OSSL_PARAM_BLD_to_param(bld)) != NULL &&
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) != NULL &&
	    EVP_PKEY_fromdata_init(ctx) == 1)
		EVP_PKEY_fromdata(ctx, &pkey,
		    d != NULL ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(priv);
	return pkey;
}

/* HKDF-SHA-256 with one output block, from HMAC alone (RFC 5869). */
static void
t_hkdf(const unsigned char *salt, size_t saltlen, const unsigned char *ikm,
    size_t ikmlen, const unsigned char *info, size_t infolen, unsigned char *out,
    size_t outlen)
{
	unsigned char prk[32], t[32], msg[256];
	unsigned int n;

	HMAC(EVP_sha256(), salt, (int)saltlen, ikm, ikmlen, prk, &n);
	memcpy(msg, info, infolen);
	msg[infolen] = 0x01;
	HMAC(EVP_sha256(), prk, 32, msg, infolen + 1, t, &n);
	memcpy(out, t, outlen);
}

/*
 * The user agent's side of RFC 8291, written apart from the code under
 * test: parse the header, ECDH with the UA key, HKDF from HMAC, AES-GCM
 * open, strip the padding and the 0x02 delimiter.  *plain is malloc'd.
 */
static int
t_decrypt(const unsigned char *body, size_t len, EVP_PKEY *ua,
    const unsigned char ua_pub[65], const unsigned char auth[16],
    unsigned char **plain, size_t *plainlen)
{
	static const char wp_info[] = "WebPush: info";
	static const char cek_info[] = "Content-Encoding: aes128gcm";
	static const char nonce_info[] = "Content-Encoding: nonce";
	unsigned char secret[32], ikm[32], cek[16], nonce[12], info[144], *pt = NULL;
	const unsigned char *salt, *keyid, *ct;
	uint32_t rs;
	size_t ctlen, slen = sizeof(secret), n;
	EVP_PKEY *as = NULL;
	EVP_PKEY_CTX *dctx = NULL;
	EVP_CIPHER_CTX *c = NULL;
	int outl, rc = -1;

	if (len < 86)
		return -1;
	salt = body;
	rs = (uint32_t)body[16] << 24 | body[17] << 16 | body[18] << 8 | body[19];
	if (body[20] != 65 || rs < 18)
		return -1;
	keyid = body + 21;
	ct = body + 86;
	ctlen = len - 86;
	if (ctlen < 17 || ctlen > rs)
		return -1;
	if ((as = t_p256_key(NULL, keyid, 65)) == NULL ||
	    (dctx = EVP_PKEY_CTX_new(ua, NULL)) == NULL ||
	    EVP_PKEY_derive_init(dctx) != 1 || EVP_PKEY_derive_set_peer(dctx, as) != 1 ||
	    EVP_PKEY_derive(dctx, secret, &slen) != 1 || slen != 32)
		goto out;
	memcpy(info, wp_info, sizeof(wp_info));
	memcpy(info + 14, ua_pub, 65);
	memcpy(info + 79, keyid, 65);
	t_hkdf(auth, 16, secret, 32, info, 144, ikm, 32);
	t_hkdf(salt, 16, ikm, 32, (const unsigned char *)cek_info, sizeof(cek_info), cek, 16);
	t_hkdf(salt, 16, ikm, 32, (const unsigned char *)nonce_info, sizeof(nonce_info),
	    nonce, 12);
	n = ctlen - 16;
	if ((pt = malloc(n + 1)) == NULL || (c = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_DecryptInit_ex(c, EVP_aes_128_gcm(), NULL, cek, nonce) != 1 ||
	    EVP_DecryptUpdate(c, pt, &outl, ct, (int)n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, (void *)(ct + n)) != 1 ||
	    EVP_DecryptFinal_ex(c, pt + outl, &outl) != 1)
		goto out;
	while (n > 0 && pt[n - 1] == 0)
		n--;
	if (n == 0 || pt[n - 1] != 0x02)	/* last record: delimiter 2 */
		goto out;
	*plain = pt;
	*plainlen = n - 1;
	pt = NULL;
	rc = 0;
out:
	free(pt);
	EVP_CIPHER_CTX_free(c);
	EVP_PKEY_CTX_free(dctx);
	EVP_PKEY_free(as);
	return rc;
}

static int
t_decrypt_is(const unsigned char *body, size_t len, EVP_PKEY *ua,
    const unsigned char ua_pub[65], const unsigned char auth[16],
    const unsigned char *want, size_t wantlen)
{
	unsigned char *pt = NULL;
	size_t n;
	int eq;

	if (t_decrypt(body, len, ua, ua_pub, auth, &pt, &n) != 0)
		return 0;
	eq = n == wantlen && (n == 0 || memcmp(pt, want, n) == 0);
	free(pt);
	return eq;
}

static void
test_rfc8291(void)
{
	unsigned char *salt, *asd, *uad, *uapub, *auth, *want, *out = NULL;
	size_t n, wantlen, outlen = 0;
	EVP_PKEY *ua;
	char *s;
	int rc;

	salt = b64(RFC_SALT, &n);
	asd = b64(RFC_AS_PRIVATE, NULL);
	uad = b64(RFC_UA_PRIVATE, NULL);
	uapub = b64(RFC_UA_PUBLIC, NULL);
	auth = b64(RFC_AUTH, NULL);
	want = b64(RFC_BODY, &wantlen);
	ua = t_p256_key(uad, uapub, 65);
	ok(ua != NULL, "RFC 8291 A: user agent key loads");

	rc = webpush_encrypt_with(RFC_UA_PUBLIC, RFC_AUTH,
	    (const unsigned char *)RFC_PLAIN, strlen(RFC_PLAIN), salt, asd, &out, &outlen);
	ok(rc == 0, "RFC 8291 A: webpush_encrypt_with succeeds");
	ok(rc == 0 && outlen == 144 && wantlen == 144,
	    "RFC 8291 A: 86 header + 41 plain + 1 delimiter + 16 tag = 144 bytes");
	ok(rc == 0 && outlen == wantlen && memcmp(out, want, wantlen) == 0,
	    "RFC 8291 A: the body matches the RFC byte for byte");
	s = rc == 0 ? b64url_encode(out, outlen) : NULL;
	is_str(s, RFC_BODY, "RFC 8291 A: the body in base64url");
	free(s);
	s = rc == 0 ? b64url_encode(out + 21, 65) : NULL;
	is_str(s, RFC_AS_PUBLIC, "RFC 8291 A: keyid is the AS public key of its private key");
	free(s);
	ok(t_decrypt_is(want, wantlen, ua, uapub, auth, (const unsigned char *)RFC_PLAIN,
	    strlen(RFC_PLAIN)), "RFC 8291 A: the test's decrypter opens the RFC's body");
	ok(rc == 0 && t_decrypt_is(out, outlen, ua, uapub, auth,
	    (const unsigned char *)RFC_PLAIN, strlen(RFC_PLAIN)),
	    "RFC 8291 A: our body decrypts with the UA private key");
	if (rc == 0)
		out[100] ^= 0x01;
	ok(rc == 0 && t_decrypt_is(out, outlen, ua, uapub, auth,
	    (const unsigned char *)RFC_PLAIN, strlen(RFC_PLAIN)) == 0,
	    "a flipped ciphertext bit fails to decrypt");
	free(out);
	EVP_PKEY_free(ua);
	free(salt);
	free(asd);
	free(uad);
	free(uapub);
	free(auth);
	free(want);
}

static void
test_webpush_random(void)
{
	static const char msg[] = "{\"title\":\"hello\",\"body\":\"from sockudo\"}";
	unsigned char pub[65], authraw[16], zero[32] = { 0 }, big[32], salt[16];
	unsigned char *out = NULL, *out2 = NULL, *plain;
	char *p256dh = NULL, *auth = NULL, *bad = NULL, *short_auth = NULL;
	size_t publen = 0, outlen = 0, outlen2 = 0, i;
	EVP_PKEY *ua;
	int rc, rc2;

	ua = EVP_PKEY_Q_keygen(NULL, NULL, "EC", p256_name);
	ok(ua != NULL && EVP_PKEY_get_octet_string_param(ua,
	    OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub, sizeof(pub), &publen) == 1 &&
	    publen == 65, "a fresh user agent key");
	RAND_bytes(authraw, sizeof(authraw));
	p256dh = b64url_encode(pub, sizeof(pub));
	auth = b64url_encode(authraw, sizeof(authraw));

	rc = webpush_encrypt(p256dh, auth, (const unsigned char *)msg, strlen(msg),
	    &out, &outlen);
	ok(rc == 0 && outlen == 86 + strlen(msg) + 17, "webpush_encrypt: body length");
	ok(rc == 0 && out[16] == 0 && out[17] == 0 && out[18] == 0x10 && out[19] == 0 &&
	    out[20] == 65 && out[21] == 0x04,
	    "webpush_encrypt: rs 4096, idlen 65, an uncompressed keyid");
	ok(rc == 0 && t_decrypt_is(out, outlen, ua, pub, authraw,
	    (const unsigned char *)msg, strlen(msg)),
	    "webpush_encrypt: decrypts with the UA private key");
	rc2 = webpush_encrypt(p256dh, auth, (const unsigned char *)msg, strlen(msg),
	    &out2, &outlen2);
	ok(rc == 0 && rc2 == 0 && memcmp(out, out2, 16) != 0 &&
	    memcmp(out + 21, out2 + 21, 65) != 0,
	    "webpush_encrypt: a fresh salt and ephemeral key each time");
	free(out);
	free(out2);
	out = out2 = NULL;

	rc = webpush_encrypt(p256dh, auth, (const unsigned char *)"", 0, &out, &outlen);
	ok(rc == 0 && outlen == 86 + 17 && t_decrypt_is(out, outlen, ua, pub, authraw,
	    (const unsigned char *)"", 0), "an empty message");
	free(out);
	out = NULL;

	if ((plain = malloc(WEBPUSH_MAX_PLAIN + 1)) == NULL)
		exit(1);
	for (i = 0; i < WEBPUSH_MAX_PLAIN + 1; i++)
		plain[i] = (unsigned char)i;
	rc = webpush_encrypt(p256dh, auth, plain, 3993, &out, &outlen);
	ok(WEBPUSH_MAX_PLAIN == 3993 && rc == 0 && outlen == 4096 &&
	    t_decrypt_is(out, outlen, ua, pub, authraw, plain, 3993),
	    "3993 bytes fill a 4096-byte body and decrypt");
	free(out);
	out = NULL;
	ok(webpush_encrypt(p256dh, auth, plain, 3994, &out, &outlen) == -1,
	    "3994 bytes are refused");
	free(plain);

	/* Flip a bit of Y: the point leaves the curve. */
	pub[64] ^= 0x01;
	bad = b64url_encode(pub, sizeof(pub));
	pub[64] ^= 0x01;
	ok(webpush_encrypt(bad, auth, (const unsigned char *)msg, 3, &out, &outlen) == -1,
	    "a p256dh off the curve is refused");
	free(bad);
	bad = b64url_encode(pub, 33);
	ok(webpush_encrypt(bad, auth, (const unsigned char *)msg, 3, &out, &outlen) == -1,
	    "a short p256dh is refused");
	free(bad);
	short_auth = b64url_encode(authraw, 15);
	ok(webpush_encrypt(p256dh, short_auth, (const unsigned char *)msg, 3, &out,
	    &outlen) == -1, "a 15-byte auth secret is refused");
	free(short_auth);
	ok(webpush_encrypt("B!!!", auth, (const unsigned char *)msg, 3, &out, &outlen) == -1 &&
	    webpush_encrypt(p256dh, "a+b/", (const unsigned char *)msg, 3, &out, &outlen) == -1 &&
	    webpush_encrypt(NULL, auth, (const unsigned char *)msg, 3, &out, &outlen) == -1,
	    "bad base64 or NULL keys are refused");
	memset(big, 0xff, sizeof(big));
	RAND_bytes(salt, sizeof(salt));
	ok(webpush_encrypt_with(p256dh, auth, (const unsigned char *)msg, 3, salt, zero,
	    &out, &outlen) == -1 &&
	    webpush_encrypt_with(p256dh, auth, (const unsigned char *)msg, 3, salt, big,
	    &out, &outlen) == -1, "AS scalars 0 and >= n are refused");
	free(p256dh);
	free(auth);
	EVP_PKEY_free(ua);
}

static char *
t_pem(EVP_PKEY *pkey, int which)
{
	BIO *bio;
	BUF_MEM *mem;
	char *s = NULL;
	int rc;

	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		return NULL;
	switch (which) {
	case 0:		/* PKCS#8, as Apple's .p8 */
		rc = PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL);
		break;
	case 1:		/* "EC PRIVATE KEY" / "RSA PRIVATE KEY" */
		rc = PEM_write_bio_PrivateKey_traditional(bio, pkey, NULL, NULL, 0,
		    NULL, NULL);
		break;
	case 2:		/* encrypted PKCS#8 */
		rc = PEM_write_bio_PrivateKey(bio, pkey, EVP_aes_256_cbc(), NULL, 0,
		    NULL, (void *)"passphrase");
		break;
	default:
		rc = PEM_write_bio_PUBKEY(bio, pkey);
		break;
	}
	BIO_get_mem_ptr(bio, &mem);
	if (rc == 1 && (s = malloc(mem->length + 1)) != NULL) {
		memcpy(s, mem->data, mem->length);
		s[mem->length] = '\0';
	}
	BIO_free(bio);
	return s;
}

/* The public half of pkey, through PEM, so the check uses no private part. */
static EVP_PKEY *
t_public(EVP_PKEY *pkey)
{
	char *pem = t_pem(pkey, 3);
	EVP_PKEY *pub = NULL;
	BIO *bio;

	if (pem != NULL && (bio = BIO_new_mem_buf(pem, -1)) != NULL) {
		pub = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
		BIO_free(bio);
	}
	free(pem);
	return pub;
}

struct t_jwt {
	json_object	*header;
	json_object	*claims;
	unsigned char	*sig;
	size_t		 siglen;
	char		*input;		/* header.claims, as signed */
};

static void
t_jwt_free(struct t_jwt *j)
{
	json_object_put(j->header);
	json_object_put(j->claims);
	free(j->sig);
	free(j->input);
	memset(j, 0, sizeof(*j));
}

static json_object *
t_b64_json(const char *s, size_t len)
{
	char *part;
	unsigned char *raw = NULL;
	size_t n;
	json_object *o = NULL;
	char *text;

	if ((part = strndup(s, len)) == NULL)
		return NULL;
	if (b64url_decode(part, &raw, &n) == 0 && (text = strndup((char *)raw, n)) != NULL) {
		o = json_tokener_parse(text);
		free(text);
	}
	free(raw);
	free(part);
	return o;
}

/* Split a compact JWS into its decoded parts.  Returns 0 or -1. */
static int
t_jwt_split(const char *jwt, struct t_jwt *j)
{
	const char *d1, *d2;

	memset(j, 0, sizeof(*j));
	if (jwt == NULL || (d1 = strchr(jwt, '.')) == NULL ||
	    (d2 = strchr(d1 + 1, '.')) == NULL || strchr(d2 + 1, '.') != NULL)
		return -1;
	j->header = t_b64_json(jwt, d1 - jwt);
	j->claims = t_b64_json(d1 + 1, d2 - d1 - 1);
	j->input = strndup(jwt, d2 - jwt);
	if (j->header == NULL || j->claims == NULL || j->input == NULL ||
	    b64url_decode(d2 + 1, &j->sig, &j->siglen) != 0) {
		t_jwt_free(j);
		return -1;
	}
	return 0;
}

static const char *
t_str(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int
t_has(json_object *o, const char *key)
{
	return json_object_object_get_ex(o, key, NULL);
}

/* Verify a JWS signature; ES256's R || S goes back to DER first. */
static int
t_verify(EVP_PKEY *pub, const struct t_jwt *j, int es256)
{
	EVP_MD_CTX *md;
	ECDSA_SIG *es = NULL;
	BIGNUM *r, *s;
	unsigned char *der = NULL;
	const unsigned char *sig = j->sig;
	size_t siglen = j->siglen;
	int len, good = 0;

	if (es256) {
		if (j->siglen != 64 || (es = ECDSA_SIG_new()) == NULL)
			return 0;
		r = BN_bin2bn(j->sig, 32, NULL);
		s = BN_bin2bn(j->sig + 32, 32, NULL);
		if (ECDSA_SIG_set0(es, r, s) != 1 || (len = i2d_ECDSA_SIG(es, &der)) <= 0) {
			ECDSA_SIG_free(es);
			return 0;
		}
		sig = der;
		siglen = (size_t)len;
	}
	if ((md = EVP_MD_CTX_new()) != NULL &&
	    EVP_DigestVerifyInit_ex(md, NULL, sha256_name, NULL, NULL, pub, NULL) == 1 &&
	    EVP_DigestVerify(md, sig, siglen, (const unsigned char *)j->input,
	    strlen(j->input)) == 1)
		good = 1;
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	return good;
}

static void
test_jwt_es256(void)
{
	static const char claims[] = "{\"iss\":\"DEF123GHIJ\",\"iat\":1437179036}";
	static const char *badclaims[] = { "not json", "[1]", "\"s\"", "{} {}", "{}x",
	    "{\"a\":1", "{'a':1}", "{\"a\":NaN}", "", NULL };
	size_t i;
	EVP_PKEY *key, *pub, *other, *otherpub, *p384, *rsa;
	char *pem8, *pemtrad, *pemenc, *pemp384, *pemrsa, *jwt, *trunc;
	struct t_jwt j;
	json_object *v;

	key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", p256_name);
	other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", p256_name);
	p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp384r1");
	rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	pub = t_public(key);
	otherpub = t_public(other);
	pem8 = t_pem(key, 0);
	pemtrad = t_pem(key, 1);
	pemenc = t_pem(key, 2);
	pemp384 = t_pem(p384, 0);
	pemrsa = t_pem(rsa, 0);
	ok(pub != NULL && otherpub != NULL && pem8 != NULL && pemtrad != NULL &&
	    pemenc != NULL && pemp384 != NULL && pemrsa != NULL &&
	    strstr(pem8, "-----BEGIN PRIVATE KEY-----") != NULL &&
	    strstr(pemtrad, "-----BEGIN EC PRIVATE KEY-----") != NULL,
	    "ES256 test keys in PKCS#8 and traditional PEM");

	jwt = jwt_es256(pem8, "ABC123DEFG", claims);
	ok(jwt != NULL && t_jwt_split(jwt, &j) == 0, "ES256 (PKCS#8): three parts");
	if (jwt != NULL && j.header != NULL) {
		is_str(t_str(j.header, "alg"), "ES256", "ES256 header alg");
		is_str(t_str(j.header, "kid"), "ABC123DEFG", "ES256 header kid");
		ok(!t_has(j.header, "typ") && json_object_object_length(j.header) == 2,
		    "ES256 with kid: no typ");
		is_str(t_str(j.claims, "iss"), "DEF123GHIJ", "claims iss");
		ok(json_object_object_get_ex(j.claims, "iat", &v) &&
		    json_object_get_int64(v) == 1437179036, "claims iat");
		ok(j.siglen == 64, "ES256 signature is 64-byte R || S");
		ok(t_verify(pub, &j, 1), "ES256 signature verifies with the public key");
		ok(!t_verify(otherpub, &j, 1), "and not with another key");
		j.sig[10] ^= 0x80;
		ok(!t_verify(pub, &j, 1), "a flipped signature bit fails");
		t_jwt_free(&j);
	} else
		for (int k = 0; k < 9; k++)
			ok(0, "ES256 token checks (no token)");
	free(jwt);

	jwt = jwt_es256(pemtrad, NULL, claims);
	ok(jwt != NULL && t_jwt_split(jwt, &j) == 0, "ES256 (EC PRIVATE KEY), no kid");
	if (jwt != NULL && j.header != NULL) {
		is_str(t_str(j.header, "typ"), "JWT", "no kid: typ JWT");
		is_str(t_str(j.header, "alg"), "ES256", "no kid: alg ES256");
		ok(!t_has(j.header, "kid"), "no kid: kid omitted");
		ok(t_verify(pub, &j, 1), "signature verifies");
		t_jwt_free(&j);
	} else
		for (int k = 0; k < 4; k++)
			ok(0, "ES256 no-kid checks (no token)");
	free(jwt);

	trunc = strndup(pem8, strlen(pem8) / 2);
	ok(jwt_es256("not a key", "k", claims) == NULL &&
	    jwt_es256("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
	    "k", claims) == NULL && jwt_es256(trunc, "k", claims) == NULL &&
	    jwt_es256(NULL, "k", claims) == NULL, "bad or truncated PEM gives NULL");
	free(trunc);
	ok(jwt_es256(pemenc, "k", claims) == NULL, "an encrypted key gives NULL, no prompt");
	ok(jwt_es256(pemp384, "k", claims) == NULL, "a P-384 key is refused");
	ok(jwt_es256(pemrsa, "k", claims) == NULL, "an RSA key is refused");
	for (i = 0; i < sizeof(badclaims) / sizeof(badclaims[0]); i++) {
		jwt = jwt_es256(pem8, "k", badclaims[i]);
		ok(jwt == NULL, "claims %s refused", badclaims[i] ? badclaims[i] : "NULL");
		free(jwt);
	}
	jwt = jwt_es256(pem8, "k", " {\"a\":[1.5,{}],\"b\":\"it's \\\"q\\\"\"}\n");
	ok(jwt != NULL && t_jwt_split(jwt, &j) == 0, "claims with blanks and quotes in strings");
	if (jwt != NULL && j.claims != NULL) {
		is_str(t_str(j.claims, "b"), "it's \"q\"", "string with quotes kept");
		t_jwt_free(&j);
	} else
		ok(0, "string with quotes kept (no token)");
	free(jwt);

	free(pem8);
	free(pemtrad);
	free(pemenc);
	free(pemp384);
	free(pemrsa);
	EVP_PKEY_free(key);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(other);
	EVP_PKEY_free(otherpub);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(rsa);
}

/* A file's text, malloc'd, or NULL. */
static char *
slurp(const char *path)
{
	FILE *f;
	char *buf;
	long n;

	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
	    (buf = calloc(1, (size_t)n + 1)) == NULL) {
		fclose(f);
		return NULL;
	}
	if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/*
 * RSA keys of at most 4096 bits: a bigger one makes every signature
 * (one per token exchange) expensive.  The 8192-bit key is a fixture
 * (its generation takes seconds), found under $srcdir.
 */
static void
test_rsa_bound(const char *claims)
{
	const char *srcdir = getenv("srcdir") != NULL ? getenv("srcdir") : ".";
	EVP_PKEY *k4096;
	char path[1024], *pem4096, *pem8192, *jwt;

	k4096 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096);
	pem4096 = k4096 != NULL ? t_pem(k4096, 0) : NULL;
	jwt = pem4096 != NULL ? jwt_rs256(pem4096, "k", claims) : NULL;
	ok(jwt != NULL, "RSA-4096 signs");
	free(jwt);
	snprintf(path, sizeof(path), "%s/tests/push/fixtures/rsa-8192.pem", srcdir);
	pem8192 = slurp(path);
	ok(pem8192 != NULL, "the 8192-bit fixture %s", path);
	ok(pem8192 != NULL && jwt_rs256(pem8192, "k", claims) == NULL, "RSA-8192 is refused");
	free(pem4096);
	free(pem8192);
	EVP_PKEY_free(k4096);
}

static void
test_jwt_rs256(void)
{
	static const char claims[] =
	    "{\"iss\":\"fcm@example.iam.gserviceaccount.com\",\"scope\":"
	    "\"https://www.googleapis.com/auth/firebase.messaging\",\"iat\":1700000000}";
	EVP_PKEY *key, *pub, *small, *ec;
	char *pem, *pemsmall, *pemec, *jwt;
	struct t_jwt j;

	key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", p256_name);
	pub = t_public(key);
	pem = t_pem(key, 0);
	pemsmall = t_pem(small, 0);
	pemec = t_pem(ec, 0);
	ok(pub != NULL && pem != NULL && pemsmall != NULL && pemec != NULL,
	    "RS256 test keys");

	jwt = jwt_rs256(pem, "key-1", claims);
	ok(jwt != NULL && t_jwt_split(jwt, &j) == 0, "RS256: three parts");
	if (jwt != NULL && j.header != NULL) {
		is_str(t_str(j.header, "alg"), "RS256", "RS256 header alg");
		is_str(t_str(j.header, "typ"), "JWT", "RS256 header typ");
		is_str(t_str(j.header, "kid"), "key-1", "RS256 header kid");
		is_str(t_str(j.claims, "scope"),
		    "https://www.googleapis.com/auth/firebase.messaging", "RS256 claims");
		ok(j.siglen == 256, "RS256 signature is 256 bytes for RSA-2048");
		ok(t_verify(pub, &j, 0), "RS256 signature verifies with the public key");
		j.sig[0] ^= 0x01;
		ok(!t_verify(pub, &j, 0), "a flipped signature bit fails");
		t_jwt_free(&j);
	} else
		for (int k = 0; k < 7; k++)
			ok(0, "RS256 token checks (no token)");
	free(jwt);

	jwt = jwt_rs256(pem, NULL, claims);
	ok(jwt != NULL && t_jwt_split(jwt, &j) == 0 && !t_has(j.header, "kid") &&
	    t_verify(pub, &j, 0), "RS256 without kid: no kid, verifies");
	if (jwt != NULL)
		t_jwt_free(&j);
	free(jwt);

	ok(jwt_rs256("garbage", "k", claims) == NULL, "bad PEM gives NULL");
	ok(jwt_rs256(pemec, "k", claims) == NULL, "an EC key is refused for RS256");
	ok(jwt_rs256(pemsmall, "k", claims) == NULL, "RSA-1024 is refused");
	ok(jwt_rs256(pem, "k", "nope") == NULL, "bad claims give NULL");
	test_rsa_bound(claims);

	free(pem);
	free(pemsmall);
	free(pemec);
	EVP_PKEY_free(key);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(small);
	EVP_PKEY_free(ec);
}

/* Split "vapid t=<jwt>, k=<key>"; both malloc'd.  Returns 0 or -1. */
static int
t_vapid_split(const char *v, char **t, char **k)
{
	const char *sep;

	if (v == NULL || strncmp(v, "vapid t=", 8) != 0 ||
	    (sep = strstr(v, ", k=")) == NULL)
		return -1;
	*t = strndup(v + 8, sep - v - 8);
	*k = strdup(sep + 4);
	return 0;
}

/* The aud of the VAPID JWT made for endpoint, malloc'd, or NULL. */
static char *
t_vapid_aud(const char *endpoint, const char *priv, const char *pub)
{
	char *v, *t = NULL, *k = NULL, *aud = NULL;
	const char *a;
	struct t_jwt j;

	v = vapid_authorization(endpoint, "mailto:ops@example.com", priv, pub, 1);
	if (t_vapid_split(v, &t, &k) == 0 && t_jwt_split(t, &j) == 0) {
		if ((a = t_str(j.claims, "aud")) != NULL)
			aud = strdup(a);
		t_jwt_free(&j);
	}
	free(t);
	free(k);
	free(v);
	return aud;
}

static void
t_origin_is(const char *endpoint, const char *priv, const char *pub, const char *want,
    const char *desc)
{
	char *aud = t_vapid_aud(endpoint, priv, pub);

	is_str(aud, want, "%s", desc);
	free(aud);
}

static void
test_vapid(void)
{
	char *priv = NULL, *pub = NULL, *priv2 = NULL, *pub2 = NULL, *v, *t = NULL, *k = NULL;
	char *bad;
	unsigned char *raw = NULL, zero[32] = { 0 };
	size_t n = 0;
	EVP_PKEY *pk = NULL;
	struct t_jwt j;
	json_object *e;

	ok(vapid_keypair(&priv, &pub) == 0 && vapid_keypair(&priv2, &pub2) == 0,
	    "vapid_keypair");
	ok(b64url_decode(priv, &raw, &n) == 0 && n == 32, "private key is 32 bytes");
	free(raw);
	raw = NULL;
	ok(b64url_decode(pub, &raw, &n) == 0 && n == 65 && raw[0] == 0x04,
	    "public key is a 65-byte uncompressed point");
	if (raw != NULL && n == 65)
		pk = t_p256_key(NULL, raw, n);
	free(raw);
	ok(pk != NULL, "the public key is a point on P-256");
	ok(strcmp(priv, priv2) != 0 && strcmp(pub, pub2) != 0, "two pairs differ");

	v = vapid_authorization("https://push.example.net:8443/wpush/abc",
	    "mailto:ops@example.com", priv, pub, 1700000000);
	ok(t_vapid_split(v, &t, &k) == 0, "value is \"vapid t=..., k=...\"");
	is_str(k, pub, "k= is the public key");
	ok(t != NULL && t_jwt_split(t, &j) == 0, "t= is a JWT");
	if (t != NULL && j.header != NULL) {
		is_str(t_str(j.header, "typ"), "JWT", "VAPID header typ");
		is_str(t_str(j.header, "alg"), "ES256", "VAPID header alg");
		ok(json_object_object_length(j.header) == 2, "VAPID header has typ and alg only");
		is_str(t_str(j.claims, "aud"), "https://push.example.net:8443",
		    "aud is the endpoint's origin");
		is_str(t_str(j.claims, "sub"), "mailto:ops@example.com", "sub");
		ok(json_object_object_get_ex(j.claims, "exp", &e) &&
		    json_object_is_type(e, json_type_int) &&
		    json_object_get_int64(e) == 1700000000, "exp");
		ok(t_verify(pk, &j, 1), "the VAPID JWT verifies with the k= key");
		t_jwt_free(&j);
	} else
		for (int i = 0; i < 7; i++)
			ok(0, "VAPID JWT checks (no token)");
	free(t);
	free(k);
	free(v);

	v = vapid_authorization("https://fcm.googleapis.com/fcm/send/x", NULL, priv, pub,
	    1700000000);
	ok(t_vapid_split(v, &t, &k) == 0 && t_jwt_split(t, &j) == 0 &&
	    !t_has(j.claims, "sub") && t_verify(pk, &j, 1), "no subject: sub omitted");
	if (v != NULL)
		t_jwt_free(&j);
	free(t);
	free(k);
	free(v);

	t_origin_is("https://fcm.googleapis.com/fcm/send/dQw4w9", priv, pub,
	    "https://fcm.googleapis.com", "origin drops the path");
	t_origin_is("HTTPS://Updates.Push.Services.Mozilla.COM:443/wpush/v2/x", priv, pub,
	    "https://updates.push.services.mozilla.com",
	    "origin: lower case, default port dropped");
	t_origin_is("https://web.push.apple.com", priv, pub, "https://web.push.apple.com",
	    "origin of a URL without a path");
	t_origin_is("https://h.example?x=1", priv, pub, "https://h.example",
	    "origin drops the query");
	t_origin_is("http://127.0.0.1:8080/p", priv, pub, "http://127.0.0.1:8080",
	    "http origin keeps its port");
	t_origin_is("https://[::1]:8443/p", priv, pub, "https://[::1]:8443",
	    "IPv6 literal origin");

	ok(vapid_authorization("ftp://x.example/y", NULL, priv, pub, 1) == NULL &&
	    vapid_authorization("https:///path", NULL, priv, pub, 1) == NULL &&
	    vapid_authorization("https://user@host.example/", NULL, priv, pub, 1) == NULL &&
	    vapid_authorization("https://host.example:99999/", NULL, priv, pub, 1) == NULL &&
	    vapid_authorization("https://host.example:/", NULL, priv, pub, 1) == NULL &&
	    vapid_authorization("push.example.net/x", NULL, priv, pub, 1) == NULL &&
	    vapid_authorization(NULL, NULL, priv, pub, 1) == NULL,
	    "bad endpoints give NULL");
	ok(vapid_authorization("https://p.example/", NULL, priv, pub2, 1) == NULL,
	    "a public key of another pair gives NULL");
	ok(vapid_authorization("https://p.example/", NULL, "!!", pub, 1) == NULL &&
	    vapid_authorization("https://p.example/", NULL, pub, pub, 1) == NULL &&
	    vapid_authorization("https://p.example/", NULL, priv, priv, 1) == NULL,
	    "bad key encodings give NULL");
	bad = b64url_encode(zero, sizeof(zero));
	ok(vapid_authorization("https://p.example/", NULL, bad, pub, 1) == NULL,
	    "a zero private scalar gives NULL");
	free(bad);

	EVP_PKEY_free(pk);
	free(priv);
	free(pub);
	free(priv2);
	free(pub2);
}

/* A record of the old format: "v1." || b64url(nonce || ct || tag), AAD "v1." alone. */
static char *
seal_v1(const unsigned char key[32], const char *plain)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	unsigned char buf[12 + 256 + 16];
	size_t len = strlen(plain);
	char *b64, *out = NULL;
	int n;

	if (c == NULL || len > 256 || RAND_bytes(buf, 12) != 1 ||
	    EVP_EncryptInit_ex2(c, EVP_aes_256_gcm(), key, buf, NULL) != 1 ||
	    EVP_EncryptUpdate(c, NULL, &n, (const unsigned char *)"v1.", 3) != 1 ||
	    EVP_EncryptUpdate(c, buf + 12, &n, (const unsigned char *)plain, (int)len) != 1 ||
	    EVP_EncryptFinal_ex(c, buf + 12 + len, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, buf + 12 + len) != 1) {
		EVP_CIPHER_CTX_free(c);
		return NULL;
	}
	EVP_CIPHER_CTX_free(c);
	if ((b64 = b64url_encode(buf, 12 + len + 16)) != NULL &&
	    (out = malloc(strlen(b64) + 4)) != NULL)
		snprintf(out, strlen(b64) + 4, "v1.%s", b64);
	free(b64);
	return out;
}

/* Whether sealed opens for app and provider to exactly text. */
static int
opens_to(const unsigned char key[32], const char *app, const char *provider,
    const char *sealed, const char *text)
{
	char *plain = NULL;
	size_t n = 0;
	int eq;

	if (secret_open(key, app, provider, sealed, &plain, &n) != 0)
		return 0;
	eq = n == strlen(text) && strcmp(plain, text) == 0;
	free(plain);
	return eq;
}

static void
test_secret(void)
{
	static const char text[] = "hunter2: an APNs key id and team id";
	static const char bin[] = "a\0b\0c";
	unsigned char key[32], key2[32], *raw = NULL;
	char *s1, *s2, *plain = NULL, *b, *t, *v1;
	size_t n = 0, rawlen = 0, i, accepted = 0;

	RAND_bytes(key, sizeof(key));
	memcpy(key2, key, sizeof(key2));
	key2[31] ^= 0x01;
	s1 = secret_seal(key, "1234567", "apns", text, strlen(text));
	s2 = secret_seal(key, "1234567", "apns", text, strlen(text));
	ok(s1 != NULL && strncmp(s1, "v2.", 3) == 0, "sealed text starts v2.");
	ok(s1 != NULL && secret_open(key, "1234567", "apns", s1, &plain, &n) == 0 &&
	    n == strlen(text) && strcmp(plain, text) == 0, "seal/open round trip, NUL-terminated");
	free(plain);
	plain = NULL;
	ok(s1 != NULL && s2 != NULL && strcmp(s1, s2) != 0,
	    "two seals of the same text differ");
	ok(s1 != NULL && b64url_decode(s1 + 3, &raw, &rawlen) == 0 &&
	    rawlen == 12 + strlen(text) + 16, "nonce || ciphertext || tag");
	ok(s1 != NULL && secret_open(key2, "1234567", "apns", s1, &plain, &n) == -1,
	    "the wrong key fails");

	/* bound to the app and the provider: a record copied to another row does not open */
	ok(!opens_to(key, "1234568", "apns", s1, text), "another app id fails");
	ok(!opens_to(key, "123456", "apns", s1, text), "a prefix of the app id fails");
	ok(!opens_to(key, "12345678", "apns", s1, text), "a longer app id fails");
	ok(!opens_to(key, "1234567", "fcm", s1, text), "another provider fails");
	ok(!opens_to(key, "1234567", "web", s1, text), "another provider (web) fails");
	ok(!opens_to(key, "apns", "1234567", s1, text), "app id and provider swapped fail");
	ok(!opens_to(key, "", "apns", s1, text) && !opens_to(key, NULL, "apns", s1, text) &&
	    !opens_to(key, "1234567", NULL, s1, text), "no app id or provider fails");
	t = secret_seal(key, "12345", "67apns", text, strlen(text));
	ok(t != NULL && !opens_to(key, "1234567", "apns", t, text) &&
	    opens_to(key, "12345", "67apns", t, text),
	    "the app id and provider are kept apart (12345|67apns is not 1234567|apns)");
	free(t);
	ok(secret_seal(key, NULL, "apns", text, strlen(text)) == NULL &&
	    secret_seal(key, "1", "", text, strlen(text)) == NULL,
	    "sealing needs an app id and a provider");

	/* every flipped bit, in nonce, ciphertext and tag, must be caught */
	for (i = 0; raw != NULL && i < rawlen * 8; i++) {
		raw[i / 8] ^= 1 << (i % 8);
		b = b64url_encode(raw, rawlen);
		raw[i / 8] ^= 1 << (i % 8);
		if ((t = malloc(strlen(b) + 4)) == NULL)
			exit(1);
		snprintf(t, strlen(b) + 4, "v2.%s", b);
		if (secret_open(key, "1234567", "apns", t, &plain, &n) == 0) {
			accepted++;
			free(plain);
		}
		/* and the same bytes under the old prefix (AAD "v1.") do not open either */
		t[1] = '1';
		if (secret_open(key, "1234567", "apns", t, &plain, &n) == 0) {
			accepted++;
			free(plain);
		}
		free(t);
		free(b);
	}
	ok(raw != NULL && accepted == 0, "each of %zu flipped bits fails (%zu accepted)",
	    rawlen * 8, accepted);
	free(raw);

	ok(secret_open(key, "1", "apns", "v2.", &plain, &n) == -1 &&
	    secret_open(key, "1", "apns", "v3.AAAA", &plain, &n) == -1 &&
	    secret_open(key, "1", "apns", "v2.!!!", &plain, &n) == -1 &&
	    secret_open(key, "1234567", "apns", s1 + 3, &plain, &n) == -1,
	    "truncated, unversioned or garbage input fails");
	t = strndup(s1, strlen(s1) - 4);
	ok(secret_open(key, "1234567", "apns", t, &plain, &n) == -1, "a truncated seal fails");
	free(t);

	/* records stored by earlier versions ("v1.", bound to nothing) still open */
	v1 = seal_v1(key, text);
	ok(v1 != NULL && secret_is_v1(v1) && !secret_is_v1(s1), "secret_is_v1 tells the formats apart");
	ok(v1 != NULL && opens_to(key, "1234567", "apns", v1, text) &&
	    opens_to(key, "7654321", "fcm", v1, text), "a v1 record opens (for any app: re-seal it)");
	ok(v1 != NULL && !opens_to(key2, "1234567", "apns", v1, text), "a v1 record under another key fails");
	if (v1 != NULL) {
		v1[1] = '2';	/* v1 bytes presented as v2: the AAD differs */
		ok(!opens_to(key, "1234567", "apns", v1, text), "a v1 record relabelled v2. fails");
	}
	free(v1);
	free(s1);
	free(s2);

	s1 = secret_seal(key, "1", "web", "", 0);
	ok(s1 != NULL && secret_open(key, "1", "web", s1, &plain, &n) == 0 && n == 0 &&
	    plain[0] == '\0', "an empty secret round trips");
	free(plain);
	free(s1);
	plain = NULL;
	s1 = secret_seal(key, "1", "web", bin, sizeof(bin));
	ok(s1 != NULL && secret_open(key, "1", "web", s1, &plain, &n) == 0 && n == sizeof(bin) &&
	    memcmp(plain, bin, n) == 0, "embedded NULs round trip");
	free(plain);
	free(s1);
}

/* p256dh must be a point on P-256, not any 65 bytes starting 0x04. */
static void
test_p256dh(void)
{
	unsigned char pt[65], *ua;
	char *s;
	size_t n;

	ok(webpush_p256dh_valid(RFC_UA_PUBLIC), "RFC 8291's p256dh is on the curve");
	ua = b64(RFC_UA_PUBLIC, &n);
	memcpy(pt, ua, sizeof(pt));
	pt[64] ^= 0x01;			/* Y off by one: not on the curve */
	s = b64url_encode(pt, sizeof(pt));
	ok(s != NULL && !webpush_p256dh_valid(s), "Y changed: refused");
	free(s);
	memset(pt + 1, 0, 64);
	pt[32] = 1;
	pt[64] = 1;			/* (1, 1) */
	s = b64url_encode(pt, sizeof(pt));
	ok(s != NULL && !webpush_p256dh_valid(s), "(1, 1): refused");
	free(s);
	memset(pt + 1, 0xff, 64);	/* coordinates beyond the field */
	s = b64url_encode(pt, sizeof(pt));
	ok(s != NULL && !webpush_p256dh_valid(s), "coordinates over p: refused");
	free(s);
	memcpy(pt, ua, sizeof(pt));
	pt[0] = 0x02;			/* a compressed-point tag on 65 bytes */
	s = b64url_encode(pt, sizeof(pt));
	ok(s != NULL && !webpush_p256dh_valid(s), "not 0x04: refused");
	free(s);
	s = b64url_encode(ua, 64);
	ok(s != NULL && !webpush_p256dh_valid(s), "64 bytes: refused");
	free(s);
	ok(!webpush_p256dh_valid("!!!") && !webpush_p256dh_valid(NULL), "garbage, NULL: refused");
	free(ua);
}

int
main(void)
{
	test_b64url();
	test_rfc8291();
	test_webpush_random();
	test_jwt_es256();
	test_jwt_rs256();
	test_vapid();
	test_secret();
	test_p256dh();
	return done_testing();
}
