/* app/push.h: push crypto: base64url, JWTs, Web Push, VAPID, sealed secrets. */
#ifndef SOCKUDO_PUSH_H
#define SOCKUDO_PUSH_H

#include <stddef.h>
#include <stdint.h>

/*
 * Largest plaintext webpush_encrypt() takes: a push service need not
 * accept a body over 4096 octets, which leaves 4096 - 86 (header) - 1
 * (delimiter) - 16 (tag) octets (RFC 8291 section 4).
 */
#define WEBPUSH_MAX_PLAIN	3993
#define WEBPUSH_RECORD_SIZE	4096

/*
 * Base64url without padding (RFC 4648 section 5).  Returns a malloc'd
 * NUL-terminated string or NULL.
 */
char	*b64url_encode(const unsigned char *, size_t);

/*
 * Decode base64url, with or without '=' padding; any character outside
 * the alphabet fails.  *out is malloc'd and NUL-terminated (freed by the
 * caller, never NULL on success, even for empty input).  Returns 0 or -1.
 */
int	 b64url_decode(const char *, unsigned char **out, size_t *outlen);

/*
 * A compact JWS signed with ES256 by an EC P-256 private key in PEM
 * (PKCS#8, as Apple's .p8 files, or "EC PRIVATE KEY").  The header is
 * {"alg":"ES256","kid":kid}, or {"typ":"JWT","alg":"ES256"} when kid is
 * NULL.  claims_json must be one strict JSON object (no NaN, no 'quotes');
 * it is signed as printed compactly by json-c.
 * Returns a malloc'd string or NULL on any error.
 */
char	*jwt_es256(const char *pem_key, const char *kid, const char *claims_json);

/*
 * The same with RS256 (RSA PKCS#1 v1.5, SHA-256, a key of 2048 to 4096
 * bits); header {"alg":"RS256","typ":"JWT","kid":kid}, kid optional.
 * Keys are read from at most 16384 bytes of PEM.
 */
char	*jwt_rs256(const char *pem_key, const char *kid, const char *claims_json);

/*
 * Encrypt a push message for a subscription (RFC 8291, aes128gcm of
 * RFC 8188, one record of WEBPUSH_RECORD_SIZE) with a fresh salt and
 * ephemeral key.  p256dh and auth are the subscription's keys in
 * base64url (65 and 16 bytes).  *out (malloc'd) is the whole request
 * body: salt(16) || rs(4) || idlen(1) || keyid(65) || ciphertext || tag.
 * Returns 0, or -1 on bad keys, plaintext over WEBPUSH_MAX_PLAIN or any
 * other error.
 */
int	 webpush_encrypt(const char *p256dh_b64url, const char *auth_b64url,
	    const unsigned char *plain, size_t len, unsigned char **out,
	    size_t *outlen);

/*
 * Whether a subscription's p256dh (base64url) is an uncompressed P-256
 * point on the curve.  Returns 1 or 0.
 */
int	 webpush_p256dh_valid(const char *p256dh_b64url);

/*
 * webpush_encrypt() with the salt and the application server's
 * ephemeral private scalar given, for known-answer tests.
 */
int	 webpush_encrypt_with(const char *p256dh_b64url, const char *auth_b64url,
	    const unsigned char *plain, size_t len, const unsigned char salt[16],
	    const unsigned char as_private[32], unsigned char **out,
	    size_t *outlen);

/*
 * The Authorization header value "vapid t=<jwt>, k=<public>" (RFC 8292)
 * for a push endpoint: aud is the endpoint's origin, exp expires_s
 * (seconds since the epoch), sub the subject (a mailto: or https: URI;
 * omitted when NULL).  The keys are base64url of the raw 32-byte private
 * scalar and the 65-byte uncompressed public point; they must match.
 * Returns a malloc'd string or NULL.
 */
char	*vapid_authorization(const char *endpoint, const char *subject,
	    const char *private_b64url, const char *public_b64url,
	    int64_t expires_s);

/*
 * A fresh VAPID key pair in the format vapid_authorization() takes.
 * Both strings are malloc'd.  Returns 0 or -1 (nothing to free).
 */
int	 vapid_keypair(char **private_b64url, char **public_b64url);

/*
 * Seal a secret for storage with AES-256-GCM under key, bound to an app
 * and a provider: "v2." followed by base64url(nonce(12) || ciphertext ||
 * tag(16)), a fresh nonce each time; the AAD is "v2.", the app id, a NUL
 * and the provider.  Returns a malloc'd string or NULL.
 */
char	*secret_seal(const unsigned char key[32], const char *app_id,
	    const char *provider, const char *plain, size_t len);

/*
 * Open what secret_seal() made for the same app id and provider, or a
 * record of the old "v1." format (AAD "v1." alone, bound to nothing).
 * *plain is malloc'd and NUL-terminated, *len its length without the
 * NUL.  Returns 0, or -1 on a wrong key, another app or provider, any
 * tampering or malformed input.
 */
int	 secret_open(const unsigned char key[32], const char *app_id,
	    const char *provider, const char *sealed, char **plain, size_t *len);

/* Whether a sealed record is of the old "v1." format, to be sealed again. */
int	 secret_is_v1(const char *sealed);

/* ---- pushcheck.c: what tenants give, checked ------------------------- */

#define PUSH_ENDPOINT_MAX	2048	/* bytes of a Web Push endpoint URL */

/* A Web Push endpoint, parsed by push_endpoint_parse(). */
struct push_endpoint {
	int	 https;		/* else http */
	char	 host[256];	/* lower case; IPv6 in brackets */
	int	 port;		/* given, or the scheme's */
	int	 family;	/* AF_INET, AF_INET6 for a literal address; else 0 */
	int	 private_ip;	/* a literal address that is not public */
};

struct sockaddr;

int	 push_apns_id_valid(const char *);
int	 push_topic_valid(const char *);
int	 push_fcm_project_valid(const char *);
int	 push_email_valid(const char *);
int	 push_b64token_valid(const char *, size_t max);
int	 push_addr_private(const struct sockaddr *, size_t len);
const char *push_endpoint_parse(const char *url, struct push_endpoint *);
int	 push_endpoint_allowed(const char *list, const struct push_endpoint *);
const char *push_endpoint_check(const char *url, const char *allow, int *allowed);
const char *push_allow_list_check(const char *list);

#endif
