/* JOSE for the jwt-auth filter: verification keys (JWK), key sets (JWKS),
 * compact JWS (a JWT) parsing and signature verification, and the
 * registered claims of RFC 7519.  Signing and encryption (JWE) are not here.
 *
 * Every key is pinned to one algorithm when it is made, and a token
 * verifies only when its "alg" names exactly that algorithm: the token
 * never chooses how it is checked (so "none", an RSA public key taken as an
 * HMAC secret, or an ES384 token against an ES256 key all fail).  The
 * header parameters that point at keys ("jku", "jwk", "x5u", "x5c") are
 * ignored: keys come from the configuration or a configured JWKS only.
 *
 * Keys are malloc'd and live across requests (config or JWKS cache); a
 * parsed token lives in a request's arena.  A function here that fails in
 * OpenSSL (a bad signature, a PEM that is not one) empties OpenSSL's error
 * queue before it returns, so that the next TLS call on this thread does
 * not find a stale error there. */
#ifndef PORTICO_JOSE_H
#define PORTICO_JOSE_H

#include <openssl/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/arena.h"
#include "portico/json.h"
#include "portico/str.h"

typedef enum {
    PT_JWA_HS256,
    PT_JWA_HS384,
    PT_JWA_HS512,
    PT_JWA_RS256,
    PT_JWA_RS384,
    PT_JWA_RS512,
    PT_JWA_PS256,
    PT_JWA_PS384,
    PT_JWA_PS512,
    PT_JWA_ES256,
    PT_JWA_ES384,
    PT_JWA_ES512,
    PT_JWA_EDDSA,
    PT_JWA__COUNT
} pt_jwa_t;

/* The algorithm named exactly (case matters) by the n bytes at name, or -1
 * when unknown; "none" is unknown. */
int pt_jwa_parse(const char *name, size_t n);
/* "HS256" ... "EdDSA"; "unknown" for a value out of the enum. */
const char *pt_jwa_name(pt_jwa_t a);

typedef struct pt_jwk { /* one verification key, pinned to one algorithm */
    pt_jwa_t alg;
    char *kid;                 /* may be NULL */
    EVP_PKEY *pkey;            /* RS/PS/ES/EdDSA (public key) */
    unsigned char *secret;     /* HS */
    size_t secret_len;
} pt_jwk_t;

/* Config-time constructors: fill *k and return 0, or return -1 with a
 * message in err (errlen bytes, always NUL-terminated when errlen > 0) and
 * *k left empty (pt_jwk_free on it is harmless).  *k is overwritten, never
 * freed: free a key before making another in its place.
 *
 * pt_jwk_from_secret: an HS* key; the secret (copied) must be at least as
 * long as the hash (RFC 7518 3.2): "HS256 secret of 16 bytes: at least 32".
 * pt_jwk_from_pem: an RS*, PS*, ES* or EdDSA key from a PEM
 * SubjectPublicKeyInfo ("BEGIN PUBLIC KEY") or an X.509 certificate
 * ("BEGIN CERTIFICATE", whose key is taken; the certificate is not
 * checked).  The key must fit the algorithm: RSA of 2048 to 16384 bits for
 * RS and PS ("RSA key of 1024 bits: RS256 needs at least 2048"), the
 * algorithm's curve for ES ("P-384 key for ES256"), Ed25519 for EdDSA,
 * and pass OpenSSL's public key check.  Neither form: "not a PEM public
 * key or certificate". */
int pt_jwk_from_secret(pt_jwk_t *k, pt_jwa_t alg, const void *secret, size_t n, char *err, size_t errlen);
int pt_jwk_from_pem(pt_jwk_t *k, pt_jwa_t alg, const char *pem, size_t n, char *err, size_t errlen);
/* Frees pkey, secret (wiped first) and kid, and empties *k. */
void pt_jwk_free(pt_jwk_t *k);

/* A JWK Set (RFC 7517 5): {"keys": [JWK, ...]} in the n bytes at json.
 * Keeps every usable key, skips (and counts in *skipped) the others.
 * Usable: kty "RSA" (n, e; 2048 to 16384 bits), "EC" (crv P-256, P-384 or
 * P-521; x and y of the curve's full size; the point on the curve) or "OKP"
 * (crv Ed25519, x); "use" absent or "sig"; "key_ops" absent or listing
 * "verify"; "kid" absent or a string.  The key's algorithm is the JWK's
 * "alg" when present (it must fit the key: RS* or PS* for RSA, the curve's
 * ES* for EC, EdDSA for OKP), else inferred: EC from its curve (P-256
 * ES256, P-384 ES384, P-521 ES512), OKP EdDSA, and an RSA JWK without
 * "alg" is kept for RS256 only (never for PS*: the issuer must say so).
 * Symmetric keys (kty "oct") are always skipped: a published set holds
 * public keys, and an HMAC secret in one is a mistake nobody should trust.
 * Returns the number of keys kept (0 is not an error: *out is then NULL),
 * with a malloc'd array in *out to free with pt_jwks_free; or -1 with err
 * when the document is not JSON or not an object with a "keys" array. */
int pt_jwks_parse(const char *json, size_t n, pt_jwk_t **out, size_t *skipped, char *err, size_t errlen);
void pt_jwks_free(pt_jwk_t *v, size_t n);

/* Tokens longer than this are refused before anything is decoded. */
#define PT_JWS_MAX_LEN 16384

typedef struct pt_jws {         /* a parsed compact JWS (a JWT) */
    pt_json_t *header, *payload;   /* payload must be a JSON object */
    pt_str_t alg, kid;             /* from the header (kid: empty if absent), NUL-terminated, in the arena */
    pt_str_t signing_input;        /* "b64header.b64payload", pointing into the token */
    unsigned char *sig;            /* decoded, in the arena */
    size_t sig_len;
} pt_jws_t;

/* Splits tok (n bytes) at its two dots, base64url-decodes the parts (no
 * padding, no whitespace, strict alphabet, unused bits zero), parses header
 * and payload as JSON objects (all in the arena; tok must outlive *out, as
 * signing_input points into it).  Refuses: not 3 parts, a header that is
 * not a JSON object or has no string "alg", a "crit" header (no extension
 * is understood), "b64" other than true (RFC 7797 unencoded payloads), a
 * "kid" that is not a string, a payload that is not a JSON object, tokens
 * over PT_JWS_MAX_LEN bytes.  0, or -1 with *err (a short phrase, static
 * or in the arena).  The signature is not checked: see pt_jws_verify.
 * Arena: a few KiB for a usual JWT, up to ~50 times the token's length for
 * a hostile one of many small values (see json.h); a bounded arena that
 * runs out gives -1 "...out of memory" with a->overflow set. */
int pt_jws_parse(pt_arena_t *a, const char *tok, size_t n, pt_jws_t *out, const char **err);

/* 0: the signature is valid and the token's alg equals k->alg exactly.
 * -2: the token's alg is not k->alg (so "none", an RS key used as an HS
 * secret, or any alg the key was not made for), or k is not a usable key.
 * -1: bad signature (wrong length included).  HS compares with
 * CRYPTO_memcmp; ES takes the JOSE signature as raw r||s of the curve's
 * size (RFC 7518 3.4); PS is RSASSA-PSS with MGF1 of the same hash and a
 * salt as long as the hash; EdDSA is Ed25519. */
int pt_jws_verify(const pt_jws_t *t, const pt_jwk_t *k);

/* Registered claims (RFC 7519 4.1) at `now` (seconds since the epoch),
 * with `leeway` seconds of clock skew allowed each way:
 * - verify_exp: exp must be present (MISSING_CLAIM), a number, and
 *   now < exp + leeway (EXPIRED);
 * - verify_nbf: nbf must be present, a number, and now >= nbf - leeway
 *   (NOT_YET);
 * - neither is looked at when not asked for, as with Kong's
 *   claims_to_verify (jwt-auth asks for exp unless told otherwise);
 * - issuer non-NULL: iss must be a string equal to it (BAD_ISS);
 * - naud > 0: aud, a string or an array of strings, must hold one of
 *   audiences (BAD_AUD; absent is BAD_AUD too);
 * - each of `required` must be present, whatever its value (MISSING_CLAIM).
 * A claim of the wrong type (exp a string, aud an object) is BAD_CLAIM.
 * Checked in that order; the first failure is returned and *which (when
 * which is not NULL) names its claim ("exp", or the required name), NULL
 * on PT_JWT_OK.  Numbers may have fractions (exp 1300819380.5). */
typedef enum {
    PT_JWT_OK,
    PT_JWT_EXPIRED,
    PT_JWT_NOT_YET,
    PT_JWT_BAD_ISS,
    PT_JWT_BAD_AUD,
    PT_JWT_MISSING_CLAIM,
    PT_JWT_BAD_CLAIM
} pt_jwt_check_t;

typedef struct pt_jwt_rules {
    bool verify_exp, verify_nbf;
    int64_t leeway;
    const char *issuer;
    const char *const *audiences;
    size_t naud;
    const char *const *required;
    size_t nrequired;
} pt_jwt_rules_t;

pt_jwt_check_t pt_jwt_check_claims(const pt_jws_t *t, int64_t now, const pt_jwt_rules_t *r, const char **which);

#endif
