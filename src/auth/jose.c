#include "config.h"

/* Only OpenSSL 3.0's EVP interfaces: a deprecated call does not compile. */
#define OPENSSL_API_COMPAT 30000
#define OPENSSL_NO_DEPRECATED 1

#include <limits.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/arena.h"
#include "portico/jose.h"
#include "portico/json.h"
#include "portico/str.h"

enum kind { KIND_HMAC, KIND_RSA, KIND_PSS, KIND_EC, KIND_ED };

static const struct jwa {
    const char *name;
    enum kind kind;
    const char *md; /* the hash; NULL for EdDSA, which hashes for itself */
    size_t size;    /* HS: the least secret, the hash's length; ES: r's length, and s's */
} jwas[PT_JWA__COUNT] = {
    [PT_JWA_HS256] = {"HS256", KIND_HMAC, "SHA256", 32}, [PT_JWA_HS384] = {"HS384", KIND_HMAC, "SHA384", 48},
    [PT_JWA_HS512] = {"HS512", KIND_HMAC, "SHA512", 64}, [PT_JWA_RS256] = {"RS256", KIND_RSA, "SHA256", 0},
    [PT_JWA_RS384] = {"RS384", KIND_RSA, "SHA384", 0},   [PT_JWA_RS512] = {"RS512", KIND_RSA, "SHA512", 0},
    [PT_JWA_PS256] = {"PS256", KIND_PSS, "SHA256", 0},   [PT_JWA_PS384] = {"PS384", KIND_PSS, "SHA384", 0},
    [PT_JWA_PS512] = {"PS512", KIND_PSS, "SHA512", 0},   [PT_JWA_ES256] = {"ES256", KIND_EC, "SHA256", 32},
    [PT_JWA_ES384] = {"ES384", KIND_EC, "SHA384", 48},   [PT_JWA_ES512] = {"ES512", KIND_EC, "SHA512", 66},
    [PT_JWA_EDDSA] = {"EdDSA", KIND_ED, NULL, 64},
};

static const struct curve {
    const char *crv, *group; /* JOSE's name, OpenSSL's */
    pt_jwa_t alg;
    size_t size; /* bytes of a coordinate */
} curves[] = {
    {"P-256", "prime256v1", PT_JWA_ES256, 32},
    {"P-384", "secp384r1", PT_JWA_ES384, 48},
    {"P-521", "secp521r1", PT_JWA_ES512, 66},
};

#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 16384

int pt_jwa_parse(const char *name, size_t n)
{
    for (int i = 0; i < PT_JWA__COUNT; i++)
        if (strlen(jwas[i].name) == n && memcmp(jwas[i].name, name, n) == 0)
            return i;
    return -1;
}

const char *pt_jwa_name(pt_jwa_t a)
{
    return (unsigned)a < PT_JWA__COUNT ? jwas[a].name : "unknown";
}

static int errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ---- base64url (RFC 7515 2: no padding) ---- */

/* Decodes n characters into out (room for n * 3 / 4 bytes).  Refuses what
 * another encoder would not have written: padding, whitespace, a length of
 * 4k + 1, and unused low bits that are not zero (so one signature has one
 * spelling).  The decoded length, or -1. */
static long b64url_decode(const char *in, size_t n, unsigned char *out)
{
    if (n % 4 == 1)
        return -1;
    size_t o = 0;
    unsigned acc = 0, bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = pt_base64_value((unsigned char)in[i], true);
        if (v < 0)
            return -1;
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return acc ? -1 : (long)o;
}

/* Decodes into the arena, NUL-terminated. 0, -1 (not base64url) or -2 (memory). */
static int b64url_decode_arena(pt_arena_t *a, const char *in, size_t n, unsigned char **out, size_t *outn)
{
    unsigned char *buf = pt_arena_alloc(a, n / 4 * 3 + 3);
    if (!buf)
        return -2;
    long got = b64url_decode(in, n, buf);
    if (got < 0)
        return -1;
    buf[got] = 0;
    *out = buf;
    *outn = (size_t)got;
    return 0;
}

/* ---- keys ---- */

static const struct curve *curve_of(EVP_PKEY *pk, char *group, size_t n)
{
    group[0] = 0;
    if (!EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, n, NULL))
        return NULL;
    for (size_t i = 0; i < sizeof(curves) / sizeof(curves[0]); i++)
        if (strcmp(curves[i].group, group) == 0)
            return &curves[i];
    return NULL;
}

static int public_check(EVP_PKEY *pk)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    int ok = ctx && EVP_PKEY_public_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok ? 0 : -1;
}

/* Whether the public key pk may be pinned to alg. */
static int check_key(EVP_PKEY *pk, pt_jwa_t alg, char *err, size_t errlen)
{
    const struct jwa *j = &jwas[alg];
    const char *type = EVP_PKEY_get0_type_name(pk);
    char group[64];
    const struct curve *c;
    int bits;
    if (!type)
        type = "unknown";
    switch (j->kind) {
    case KIND_HMAC:
        return errf(err, errlen, "%s needs a secret, not a public key", j->name);
    case KIND_RSA:
    case KIND_PSS:
        if (!EVP_PKEY_is_a(pk, "RSA"))
            return errf(err, errlen, "%s key for %s", type, j->name);
        if ((bits = EVP_PKEY_get_bits(pk)) < RSA_MIN_BITS)
            return errf(err, errlen, "RSA key of %d bits: %s needs at least %d", bits, j->name, RSA_MIN_BITS);
        if (bits > RSA_MAX_BITS)
            return errf(err, errlen, "RSA key of %d bits: at most %d", bits, RSA_MAX_BITS);
        break;
    case KIND_EC:
        if (!EVP_PKEY_is_a(pk, "EC"))
            return errf(err, errlen, "%s key for %s", type, j->name);
        if (!(c = curve_of(pk, group, sizeof(group))))
            return errf(err, errlen, "EC key on curve %s: %s needs %s", group[0] ? group : "(unnamed)", j->name,
                        curves[alg - PT_JWA_ES256].crv);
        if (c->alg != alg)
            return errf(err, errlen, "%s key for %s", c->crv, j->name);
        break;
    case KIND_ED:
        if (!EVP_PKEY_is_a(pk, "ED25519"))
            return errf(err, errlen, "%s key for EdDSA: only Ed25519 is supported", type);
        break;
    }
    if (public_check(pk) < 0)
        return errf(err, errlen, "the %s public key is not valid", type);
    return 0;
}

static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

static EVP_PKEY *read_pem(const char *pem, size_t n)
{
    if (n > INT_MAX)
        return NULL;
    BIO *b = BIO_new_mem_buf(pem, (int)n);
    EVP_PKEY *pk = b ? PEM_read_bio_PUBKEY(b, NULL, no_password, NULL) : NULL;
    BIO_free(b);
    if (!pk && (b = BIO_new_mem_buf(pem, (int)n))) {
        X509 *x = PEM_read_bio_X509(b, NULL, no_password, NULL);
        pk = x ? X509_get_pubkey(x) : NULL;
        X509_free(x);
        BIO_free(b);
    }
    return pk;
}

int pt_jwk_from_pem(pt_jwk_t *k, pt_jwa_t alg, const char *pem, size_t n, char *err, size_t errlen)
{
    memset(k, 0, sizeof(*k));
    if ((unsigned)alg >= PT_JWA__COUNT)
        return errf(err, errlen, "unknown algorithm");
    if (jwas[alg].kind == KIND_HMAC)
        return errf(err, errlen, "%s needs a secret, not a PEM key", jwas[alg].name);
    EVP_PKEY *pk = read_pem(pem, n);
    int rc = pk ? check_key(pk, alg, err, errlen) : errf(err, errlen, "not a PEM public key or certificate");
    ERR_clear_error();
    if (rc < 0) {
        EVP_PKEY_free(pk);
        return -1;
    }
    k->alg = alg;
    k->pkey = pk;
    return 0;
}

int pt_jwk_from_secret(pt_jwk_t *k, pt_jwa_t alg, const void *secret, size_t n, char *err, size_t errlen)
{
    memset(k, 0, sizeof(*k));
    if ((unsigned)alg >= PT_JWA__COUNT)
        return errf(err, errlen, "unknown algorithm");
    const struct jwa *j = &jwas[alg];
    if (j->kind != KIND_HMAC)
        return errf(err, errlen, "%s needs a public key, not a secret", j->name);
    if (n < j->size)
        return errf(err, errlen, "%s secret of %zu bytes: at least %zu", j->name, n, j->size);
    if (n > INT_MAX || !(k->secret = malloc(n)))
        return errf(err, errlen, "%s secret of %zu bytes: out of memory", j->name, n);
    memcpy(k->secret, secret, n);
    k->secret_len = n;
    k->alg = alg;
    return 0;
}

void pt_jwk_free(pt_jwk_t *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey);
    if (k->secret) {
        OPENSSL_cleanse(k->secret, k->secret_len);
        free(k->secret);
    }
    free(k->kid);
    memset(k, 0, sizeof(*k));
}

/* ---- JWK Sets ---- */

static bool is_str(const pt_json_t *v, const char *s)
{
    return v && v->type == PT_JSON_STR && pt_str_eq(v->s, pt_str_from(s));
}

/* The base64url member `name` of the JWK j, decoded into the arena; NULL
 * when absent, not a string, not base64url or empty. */
static const unsigned char *jwk_bytes(pt_arena_t *a, const pt_json_t *j, const char *name, size_t *n)
{
    const pt_json_t *v = pt_json_get(j, name);
    unsigned char *out;
    if (!v || v->type != PT_JSON_STR || b64url_decode_arena(a, v->s.p, v->s.n, &out, n) < 0 || !*n)
        return NULL;
    return out;
}

static EVP_PKEY *pkey_from_params(const char *type, const OSSL_PARAM *params)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pk = NULL;
    if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, (OSSL_PARAM *)params) <= 0)
        pk = NULL;
    EVP_PKEY_CTX_free(ctx);
    return pk;
}

static EVP_PKEY *rsa_from_jwk(pt_arena_t *a, const pt_json_t *j)
{
    size_t nn, en;
    const unsigned char *nb = jwk_bytes(a, j, "n", &nn), *eb = jwk_bytes(a, j, "e", &en);
    /* a huge exponent would make each verification slow: real ones are 65537 */
    if (!nb || !eb || nn > RSA_MAX_BITS / 8 || en > 8)
        return NULL;
    BIGNUM *n = BN_bin2bn(nb, (int)nn, NULL), *e = BN_bin2bn(eb, (int)en, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    if (n && e && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
        params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY *pk = params ? pkey_from_params("RSA", params) : NULL;
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return pk;
}

static EVP_PKEY *ec_from_jwk(pt_arena_t *a, const pt_json_t *j, pt_jwa_t *alg)
{
    const pt_json_t *crv = pt_json_get(j, "crv");
    const struct curve *c = NULL;
    for (size_t i = 0; i < sizeof(curves) / sizeof(curves[0]); i++)
        if (is_str(crv, curves[i].crv))
            c = &curves[i];
    size_t xn, yn;
    const unsigned char *x = jwk_bytes(a, j, "x", &xn), *y = jwk_bytes(a, j, "y", &yn);
    /* RFC 7518 6.2.1.2: each coordinate is the full size of the curve */
    if (!c || !x || !y || xn != c->size || yn != c->size)
        return NULL;
    unsigned char point[1 + 2 * 66];
    point[0] = 0x04; /* uncompressed */
    memcpy(point + 1, x, xn);
    memcpy(point + 1 + xn, y, yn);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)c->group, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * c->size),
        OSSL_PARAM_construct_end(),
    };
    *alg = c->alg;
    return pkey_from_params("EC", params);
}

static EVP_PKEY *okp_from_jwk(pt_arena_t *a, const pt_json_t *j)
{
    size_t xn;
    const unsigned char *x = jwk_bytes(a, j, "x", &xn);
    if (!is_str(pt_json_get(j, "crv"), "Ed25519") || !x || xn != 32)
        return NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)x, xn),
        OSSL_PARAM_construct_end(),
    };
    return pkey_from_params("ED25519", params);
}

/* Whether the JWK j is for verifying signatures ("use", "key_ops"). */
static bool jwk_is_for_verifying(const pt_json_t *j)
{
    const pt_json_t *use = pt_json_get(j, "use"), *ops = pt_json_get(j, "key_ops");
    if (use && !is_str(use, "sig"))
        return false;
    if (!ops)
        return true;
    if (ops->type != PT_JSON_ARR)
        return false;
    for (size_t i = 0; i < ops->n; i++)
        if (is_str(ops->items[i], "verify"))
            return true;
    return false;
}

/* One JWK: 0 with *k filled, or -1 (skipped). */
static int jwk_from_json(pt_arena_t *a, const pt_json_t *j, pt_jwk_t *k)
{
    memset(k, 0, sizeof(*k));
    if (!j || j->type != PT_JSON_OBJ || !jwk_is_for_verifying(j))
        return -1;
    const pt_json_t *kty = pt_json_get(j, "kty"), *alg = pt_json_get(j, "alg"), *kid = pt_json_get(j, "kid");
    if (kid && (kid->type != PT_JSON_STR || memchr(kid->s.p, 0, kid->s.n)))
        return -1;
    int named = -1;
    if (alg && (alg->type != PT_JSON_STR || (named = pt_jwa_parse(alg->s.p, alg->s.n)) < 0))
        return -1;
    EVP_PKEY *pk = NULL;
    pt_jwa_t inferred = PT_JWA_RS256; /* an RSA JWK without "alg": RS256 only */
    if (is_str(kty, "RSA"))
        pk = rsa_from_jwk(a, j);
    else if (is_str(kty, "EC"))
        pk = ec_from_jwk(a, j, &inferred);
    else if (is_str(kty, "OKP")) {
        pk = okp_from_jwk(a, j);
        inferred = PT_JWA_EDDSA;
    }
    pt_jwa_t use = named >= 0 ? (pt_jwa_t)named : inferred;
    if (!pk || check_key(pk, use, NULL, 0) < 0 || (kid && !(k->kid = strdup(kid->s.p)))) {
        EVP_PKEY_free(pk);
        return -1;
    }
    k->alg = use;
    k->pkey = pk;
    return 0;
}

int pt_jwks_parse(const char *json, size_t n, pt_jwk_t **out, size_t *skipped, char *err, size_t errlen)
{
    pt_arena_t a;
    pt_arena_init(&a, 8192, 0);
    const char *jerr = NULL;
    const pt_json_t *doc = pt_json_parse(&a, json, n, &jerr);
    const pt_json_t *keys = pt_json_get(doc, "keys");
    pt_jwk_t *v = NULL;
    size_t got = 0, bad = 0;
    int rc = 0;
    *out = NULL;
    if (!doc)
        rc = errf(err, errlen, "not JSON: %s", jerr);
    else if (!keys || keys->type != PT_JSON_ARR)
        rc = errf(err, errlen, "not a JWK Set: no \"keys\" array");
    else if (keys->n > INT_MAX || (keys->n && !(v = calloc(keys->n, sizeof(*v)))))
        rc = errf(err, errlen, "out of memory");
    for (size_t i = 0; rc == 0 && i < keys->n; i++) {
        if (jwk_from_json(&a, keys->items[i], &v[got]) == 0)
            got++;
        else
            bad++;
    }
    ERR_clear_error();
    pt_arena_free(&a);
    if (skipped)
        *skipped = bad;
    if (rc < 0 || !got) {
        free(v);
        return rc;
    }
    *out = v;
    return (int)got;
}

void pt_jwks_free(pt_jwk_t *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        pt_jwk_free(&v[i]);
    free(v);
}

/* ---- compact JWS ---- */

/* The part [p, p + n) of the token, base64url-decoded and parsed as a JSON
 * object.  NULL with *err ("header: ...") when it is not one. */
static pt_json_t *decode_json_part(pt_arena_t *a, const char *what, const char *p, size_t n, const char **err)
{
    unsigned char *raw;
    size_t rawn;
    int rc = b64url_decode_arena(a, p, n, &raw, &rawn);
    const char *jerr = NULL, *why;
    pt_json_t *v = rc == 0 ? pt_json_parse(a, (const char *)raw, rawn, &jerr) : NULL;
    if (v && v->type == PT_JSON_OBJ)
        return v;
    why = rc == -2 ? "out of memory" : rc < 0 ? "not base64url" : v ? "not a JSON object" : jerr;
    *err = pt_arena_printf(a, "%s: %s", what, why);
    if (!*err)
        *err = rc < 0 ? why : "out of memory";
    return NULL;
}

/* The header parameters this verifier must understand or refuse. */
static const char *read_header(pt_jws_t *out)
{
    const pt_json_t *h = out->header, *alg = pt_json_get(h, "alg"), *kid = pt_json_get(h, "kid");
    const pt_json_t *b64 = pt_json_get(h, "b64");
    if (!alg)
        return "no alg in the header";
    if (alg->type != PT_JSON_STR)
        return "alg is not a string";
    /* RFC 7515 4.1.11: an extension named in crit must be understood, and
     * none is here */
    if (pt_json_get(h, "crit"))
        return "crit header not supported";
    if (b64 && !(b64->type == PT_JSON_BOOL && b64->b))
        return "b64 other than true not supported";
    if (kid && kid->type != PT_JSON_STR)
        return "kid is not a string";
    out->alg = alg->s;
    out->kid = kid ? kid->s : (pt_str_t){"", 0};
    return NULL;
}

/* NULL when tok is a JWS we take, else why not. */
static const char *parse_parts(pt_arena_t *a, const char *tok, size_t n, pt_jws_t *out)
{
    const char *why = NULL, *end = tok + n;
    if (n > PT_JWS_MAX_LEN)
        return "token over 16 KiB";
    const char *d1 = n ? memchr(tok, '.', n) : NULL;
    const char *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(end - d1 - 1)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)))
        return "not three dot-separated parts";
    if (!(out->header = decode_json_part(a, "header", tok, (size_t)(d1 - tok), &why)) || (why = read_header(out)))
        return why;
    if (!(out->payload = decode_json_part(a, "payload", d1 + 1, (size_t)(d2 - d1 - 1), &why)))
        return why;
    int rc = b64url_decode_arena(a, d2 + 1, (size_t)(end - d2 - 1), &out->sig, &out->sig_len);
    if (rc < 0)
        return rc == -2 ? "out of memory" : "signature: not base64url";
    out->signing_input = (pt_str_t){tok, (size_t)(d2 - tok)};
    return NULL;
}

int pt_jws_parse(pt_arena_t *a, const char *tok, size_t n, pt_jws_t *out, const char **err)
{
    memset(out, 0, sizeof(*out));
    const char *why = parse_parts(a, tok ? tok : "", tok ? n : 0, out);
    if (!why)
        return 0;
    memset(out, 0, sizeof(*out));
    if (err)
        *err = why;
    return -1;
}

/* The JOSE ECDSA signature r||s (RFC 7518 3.4) as the DER OpenSSL takes. */
static int ecdsa_der(const unsigned char *rs, size_t half, unsigned char **der)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(rs, (int)half, NULL), *s = BN_bin2bn(rs + half, (int)half, NULL);
    int len = -1;
    if (sig && r && s && ECDSA_SIG_set0(sig, r, s)) {
        r = s = NULL; /* sig owns them */
        len = i2d_ECDSA_SIG(sig, der);
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return len;
}

static int verify_hmac(const pt_jws_t *t, const pt_jwk_t *k, const struct jwa *j)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t len = 0;
    if (!EVP_Q_mac(NULL, "HMAC", NULL, j->md, NULL, k->secret, k->secret_len,
                   (const unsigned char *)t->signing_input.p, t->signing_input.n, mac, sizeof(mac), &len))
        return -1;
    return t->sig_len == len && CRYPTO_memcmp(mac, t->sig, len) == 0 ? 0 : -1;
}

static int verify_pkey(const pt_jws_t *t, const pt_jwk_t *k, const struct jwa *j)
{
    const unsigned char *sig = t->sig;
    size_t sig_len = t->sig_len;
    unsigned char *der = NULL;
    EVP_MD_CTX *ctx = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    int ok = 0;
    if (j->kind == KIND_EC) {
        int der_len = sig_len == 2 * j->size ? ecdsa_der(t->sig, j->size, &der) : -1;
        if (der_len <= 0)
            goto out;
        sig = der;
        sig_len = (size_t)der_len;
    } else if (j->kind == KIND_ED && sig_len != j->size)
        goto out;
    if (!(ctx = EVP_MD_CTX_new()) || EVP_DigestVerifyInit_ex(ctx, &pctx, j->md, NULL, NULL, k->pkey, NULL) != 1)
        goto out;
    if (j->kind == KIND_PSS && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
                                EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, j->md, NULL) <= 0 ||
                                EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0))
        goto out;
    if (j->kind == KIND_RSA && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0)
        goto out;
    ok = EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)t->signing_input.p, t->signing_input.n) == 1;
out:
    OPENSSL_free(der);
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

int pt_jws_verify(const pt_jws_t *t, const pt_jwk_t *k)
{
    if (!t || !k || !t->alg.p || (unsigned)k->alg >= PT_JWA__COUNT)
        return -2;
    int alg = pt_jwa_parse(t->alg.p, t->alg.n);
    if (alg < 0 || alg != (int)k->alg)
        return -2;
    const struct jwa *j = &jwas[alg];
    bool hmac = j->kind == KIND_HMAC;
    if (hmac ? !k->secret || k->pkey : !k->pkey || k->secret)
        return -2;
    int rc = hmac ? verify_hmac(t, k, j) : verify_pkey(t, k, j);
    if (rc < 0)
        ERR_clear_error(); /* a bad token must not leave errors for the next TLS call to find */
    return rc;
}

/* ---- registered claims ---- */

/* exp or nbf.  In doubles: a time is an integer far below 2^53, so the
 * comparisons are exact, and a claim with a fraction compares as written. */
static pt_jwt_check_t check_time(const pt_jws_t *t, const char *name, bool required, int64_t now, int64_t leeway)
{
    const pt_json_t *v = required ? pt_json_get(t->payload, name) : NULL;
    if (!required)
        return PT_JWT_OK; /* as Kong's claims_to_verify: what is not listed is not looked at */
    if (!v)
        return PT_JWT_MISSING_CLAIM;
    if (v->type != PT_JSON_NUM)
        return PT_JWT_BAD_CLAIM;
    if (strcmp(name, "exp") == 0)
        return (double)now < v->num + (double)leeway ? PT_JWT_OK : PT_JWT_EXPIRED;
    return (double)now >= v->num - (double)leeway ? PT_JWT_OK : PT_JWT_NOT_YET;
}

static bool is_audience(pt_str_t s, const pt_jwt_rules_t *r)
{
    for (size_t i = 0; i < r->naud; i++)
        if (pt_str_eq(s, pt_str_from(r->audiences[i])))
            return true;
    return false;
}

static pt_jwt_check_t check_aud(const pt_json_t *aud, const pt_jwt_rules_t *r)
{
    if (!aud)
        return PT_JWT_BAD_AUD;
    if (aud->type == PT_JSON_STR)
        return is_audience(aud->s, r) ? PT_JWT_OK : PT_JWT_BAD_AUD;
    if (aud->type != PT_JSON_ARR)
        return PT_JWT_BAD_CLAIM;
    pt_jwt_check_t rc = PT_JWT_BAD_AUD;
    for (size_t i = 0; i < aud->n; i++) {
        if (aud->items[i]->type != PT_JSON_STR)
            return PT_JWT_BAD_CLAIM;
        if (is_audience(aud->items[i]->s, r))
            rc = PT_JWT_OK;
    }
    return rc;
}

pt_jwt_check_t pt_jwt_check_claims(const pt_jws_t *t, int64_t now, const pt_jwt_rules_t *r, const char **which)
{
    const char *name = "exp";
    pt_jwt_check_t rc = check_time(t, name, r->verify_exp, now, r->leeway);
    if (rc == PT_JWT_OK)
        rc = check_time(t, name = "nbf", r->verify_nbf, now, r->leeway);
    if (rc == PT_JWT_OK && r->issuer) {
        const pt_json_t *iss = pt_json_get(t->payload, name = "iss");
        rc = iss && iss->type != PT_JSON_STR ? PT_JWT_BAD_CLAIM
             : is_str(iss, r->issuer)        ? PT_JWT_OK
                                             : PT_JWT_BAD_ISS;
    }
    if (rc == PT_JWT_OK && r->naud)
        rc = check_aud(pt_json_get(t->payload, name = "aud"), r);
    for (size_t i = 0; rc == PT_JWT_OK && i < r->nrequired; i++)
        if (!pt_json_get(t->payload, name = r->required[i]))
            rc = PT_JWT_MISSING_CLAIM;
    if (which)
        *which = rc == PT_JWT_OK ? NULL : name;
    return rc;
}
