/* JOSE: the RFC 7515, 7518 and 8037 vectors, tokens signed here with keys
 * generated here for every algorithm, and what must fail (tampering, "none",
 * RS/HS confusion, wrong curves, short keys, claims at their boundaries,
 * JWK Sets with keys to skip and sets that are no sets). */
#include "config.h"

#define OPENSSL_API_COMPAT 30000
#define OPENSSL_NO_DEPRECATED 1

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdlib.h>

#include "../unit/b64url.h"
#include "../unit/tap.h"
#include "portico/arena.h"
#include "portico/jose.h"
#include "portico/json.h"

static pt_arena_t T; /* everything a test makes, freed at the end */
static char err[256];

/* ---- helpers: base64url, signing, keys as PEM and as JWK ---- */

static unsigned char *unb64url(const char *s, size_t *n)
{
    size_t len = strlen(s), pad = (4 - len % 4) % 4;
    char *in = pt_arena_alloc(&T, len + pad + 1);
    unsigned char *out = pt_arena_alloc(&T, len + 4);
    for (size_t i = 0; i < len; i++)
        in[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    memset(in + len, '=', pad);
    int got = EVP_DecodeBlock(out, (unsigned char *)in, (int)(len + pad));
    *n = got < 0 ? 0 : (size_t)got - pad;
    return out;
}

static const char *md_of(pt_jwa_t alg)
{
    const char *name = pt_jwa_name(alg);
    return alg == PT_JWA_EDDSA ? NULL : strcmp(name + 2, "256") == 0 ? "SHA256" : strcmp(name + 2, "384") == 0 ? "SHA384" : "SHA512";
}

/* Signs input as alg does, with pk or (HS) secret; returns the JOSE signature. */
static unsigned char *sign(pt_jwa_t alg, EVP_PKEY *pk, const void *secret, size_t slen, const char *input, size_t *n)
{
    unsigned char *sig = pt_arena_alloc(&T, 2048);
    const char *md = md_of(alg);
    *n = 2048;
    if (alg <= PT_JWA_HS512) {
        EVP_Q_mac(NULL, "HMAC", NULL, md, NULL, secret, slen, (const unsigned char *)input, strlen(input), sig, 2048, n);
        return sig;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    EVP_DigestSignInit_ex(ctx, &pctx, md, NULL, NULL, pk, NULL);
    if (alg >= PT_JWA_PS256 && alg <= PT_JWA_PS512) {
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, md, NULL);
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
    }
    EVP_DigestSign(ctx, sig, n, (const unsigned char *)input, strlen(input));
    EVP_MD_CTX_free(ctx);
    if (alg >= PT_JWA_ES256 && alg <= PT_JWA_ES512) { /* DER to r||s */
        size_t half = alg == PT_JWA_ES256 ? 32 : alg == PT_JWA_ES384 ? 48 : 66;
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)*n);
        BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, (int)half);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + half, (int)half);
        ECDSA_SIG_free(es);
        *n = 2 * half;
    }
    return sig;
}

/* header.payload.signature, the JSON texts given, signed as alg. */
static const char *token(pt_jwa_t alg, EVP_PKEY *pk, const void *secret, size_t slen, const char *header,
                         const char *payload)
{
    const char *input = pt_arena_printf(&T, "%s.%s", b64url(&T, header, strlen(header)), b64url(&T, payload, strlen(payload)));
    size_t n;
    unsigned char *sig = sign(alg, pk, secret, slen, input, &n);
    return pt_arena_printf(&T, "%s.%s", input, b64url(&T, sig, n));
}

static const char *pem_of(EVP_PKEY *pk)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(b, pk);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *copy = pt_arena_strndup(&T, p, (size_t)n);
    BIO_free(b);
    return copy;
}

static const char *bn_param(EVP_PKEY *pk, const char *name, int size)
{
    BIGNUM *bn = NULL;
    EVP_PKEY_get_bn_param(pk, name, &bn);
    unsigned char buf[1024];
    int n = size ? BN_bn2binpad(bn, buf, size) : BN_bn2bin(bn, buf);
    BN_free(bn);
    return b64url(&T, buf, (size_t)n);
}

/* The public JWK of pk, its members then `extra` (",\"alg\":...") if any. */
static const char *jwk_of(EVP_PKEY *pk, const char *extra)
{
    if (EVP_PKEY_is_a(pk, "RSA"))
        return pt_arena_printf(&T, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"%s}", bn_param(pk, OSSL_PKEY_PARAM_RSA_N, 0),
                               bn_param(pk, OSSL_PKEY_PARAM_RSA_E, 0), extra);
    if (EVP_PKEY_is_a(pk, "EC")) {
        int bits = EVP_PKEY_get_bits(pk), size = (bits + 7) / 8;
        return pt_arena_printf(&T, "{\"kty\":\"EC\",\"crv\":\"P-%d\",\"x\":\"%s\",\"y\":\"%s\"%s}", bits,
                               bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_X, size), bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_Y, size), extra);
    }
    unsigned char raw[64];
    size_t n = sizeof(raw);
    EVP_PKEY_get_raw_public_key(pk, raw, &n);
    return pt_arena_printf(&T, "{\"kty\":\"OKP\",\"crv\":\"%s\",\"x\":\"%s\"%s}", EVP_PKEY_is_a(pk, "ED448") ? "Ed448" : "Ed25519",
                           b64url(&T, raw, n), extra);
}

/* Parses tok and verifies it with k: pt_jws_verify's answer, or 99 when the token does not parse. */
static int check(const char *tok, const pt_jwk_t *k)
{
    pt_jws_t t;
    const char *e;
    if (pt_jws_parse(&T, tok, strlen(tok), &t, &e) < 0)
        return 99;
    return pt_jws_verify(&t, k);
}

/* tok with part `which` (0 header, 1 payload, 2 signature) replaced by `with`. */
static const char *replace_part(const char *tok, int which, const char *with)
{
    const char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
    if (which == 1)
        return pt_arena_printf(&T, "%.*s.%s%s", (int)(d1 - tok), tok, with, d2);
    return pt_arena_printf(&T, "%.*s.%s", (int)(d2 - tok), tok, with);
}

static const char *flip_sig_bit(const char *tok)
{
    size_t n;
    unsigned char *sig = unb64url(strrchr(tok, '.') + 1, &n);
    sig[n / 2] ^= 0x01;
    return replace_part(tok, 2, b64url(&T, sig, n));
}

static const char *drop_sig_byte(const char *tok)
{
    size_t n;
    unsigned char *sig = unb64url(strrchr(tok, '.') + 1, &n);
    return replace_part(tok, 2, b64url(&T, sig, n - 1));
}

static pt_jwk_t jwks_one(const char *jwk)
{
    pt_jwk_t *v = NULL, k = {0};
    size_t skipped;
    int n = pt_jwks_parse(jwk, strlen(jwk), &v, &skipped, err, sizeof(err));
    if (n == 1) {
        k = v[0];
        free(v);
    } else
        pt_jwks_free(v, n > 0 ? (size_t)n : 0);
    return k;
}

static pt_jwk_t pem_key(pt_jwa_t alg, EVP_PKEY *pk)
{
    pt_jwk_t k;
    const char *pem = pem_of(pk);
    pt_jwk_from_pem(&k, alg, pem, strlen(pem), err, sizeof(err));
    return k;
}

/* ---- RFC vectors ---- */

static const char *RFC7515_PAYLOAD = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";

static void rfc7515_a1(void)
{
    size_t n;
    unsigned char *secret = unb64url("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow", &n);
    const char *tok = pt_arena_printf(&T, "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.%s.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                                      RFC7515_PAYLOAD);
    pt_jwk_t k;
    is_int(pt_jwk_from_secret(&k, PT_JWA_HS256, secret, n, err, sizeof(err)), 0, "A.1: the 64-byte HS256 key");
    pt_jws_t t;
    const char *e = NULL;
    is_int(pt_jws_parse(&T, tok, strlen(tok), &t, &e), 0, "A.1: the token parses");
    is_str(t.alg.p, "HS256", "A.1: alg");
    ok(t.kid.n == 0 && t.kid.p && !*t.kid.p, "A.1: no kid: empty");
    const pt_json_t *exp = pt_json_get(t.payload, "exp");
    ok(exp && exp->is_int && exp->i == 1300819380, "A.1: exp 1300819380");
    ok(pt_json_get(t.payload, "http://example.com/is_root")->b, "A.1: the is_root claim");
    ok(t.signing_input.p == tok && t.signing_input.n == (size_t)(strrchr(tok, '.') - tok), "A.1: signing input points into the token");
    is_int(t.sig_len, 32, "A.1: a 32-byte MAC");
    is_int(pt_jws_verify(&t, &k), 0, "A.1: HS256 verifies");
    pt_jwt_rules_t r = {.verify_exp = true, .issuer = "joe"};
    is_int(pt_jwt_check_claims(&t, 1300819379, &r, NULL), PT_JWT_OK, "A.1: claims hold a second before exp");
    is_int(pt_jwt_check_claims(&t, 1300819380, &r, NULL), PT_JWT_EXPIRED, "A.1: and not at exp");
    is_int(check(replace_part(tok, 1, "eyJpc3MiOiJqb2UifQ"), &k), -1, "A.1: another payload: bad signature");
    is_int(check(flip_sig_bit(tok), &k), -1, "A.1: a bit of the MAC flipped: bad signature");
    pt_jwk_free(&k);
}

static void rfc7515_a2(void)
{
    const char *n = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-"
                    "pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665x"
                    "smtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
    const char *tok = pt_arena_printf(
        &T,
        "eyJhbGciOiJSUzI1NiJ9.%s.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJd"
        "bF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-"
        "eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw",
        RFC7515_PAYLOAD);
    pt_jwk_t k = jwks_one(pt_arena_printf(&T, "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"}]}", n));
    ok(k.pkey && k.alg == PT_JWA_RS256 && !k.kid, "A.2: the RSA JWK without alg is an RS256 key");
    is_int(check(tok, &k), 0, "A.2: RS256 verifies");
    is_int(check(flip_sig_bit(tok), &k), -1, "A.2: a bit flipped: bad signature");
    is_int(check(replace_part(tok, 1, "eyJpc3MiOiJqb2UifQ"), &k), -1, "A.2: another payload: bad signature");
    pt_jwk_t pem = pem_key(PT_JWA_RS256, k.pkey);
    is_int(check(tok, &pem), 0, "A.2: and with the same key read from PEM");
    pt_jwk_t ps = pem_key(PT_JWA_PS256, k.pkey);
    is_int(check(tok, &ps), -2, "A.2: the key pinned to PS256 refuses an RS256 token");
    pt_jwk_free(&ps);
    pt_jwk_free(&pem);
    pt_jwk_free(&k);
}

static void rfc7515_a3_a4(void)
{
    pt_jwk_t k = jwks_one("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
                          "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\",\"kid\":\"e9bc097a\"}]}");
    ok(k.pkey && k.alg == PT_JWA_ES256 && k.kid && strcmp(k.kid, "e9bc097a") == 0, "A.3: a P-256 JWK is an ES256 key, kid kept");
    const char *tok = pt_arena_printf(&T, "eyJhbGciOiJFUzI1NiJ9.%s.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q",
                                      RFC7515_PAYLOAD);
    is_int(check(tok, &k), 0, "A.3: ES256 verifies");
    is_int(check(flip_sig_bit(tok), &k), -1, "A.3: a bit flipped: bad signature");
    is_int(check(replace_part(tok, 1, "eyJpc3MiOiJqb2UifQ"), &k), -1, "A.3: another payload: bad signature");
    pt_jwk_free(&k);

    /* A.4: ES512 over the payload "Payload", which is not a JWT's */
    k = jwks_one("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9"
                 "tsz4qUxcWceqwQGk\",\"y\":\"ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2\"}]}");
    ok(k.pkey && k.alg == PT_JWA_ES512, "A.4: a P-521 JWK is an ES512 key");
    const char *sig = "AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZqwqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3x"
                      "KpRwcdOO8KpEHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn";
    tok = pt_arena_printf(&T, "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA.%s", sig);
    is_int(check(tok, &k), 99, "A.4: a payload that is not a JSON object does not parse");
    pt_jws_t t = {.alg = PT_STR("ES512"), .signing_input = PT_STR("eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA")};
    t.sig = unb64url(sig, &t.sig_len);
    is_int(t.sig_len, 132, "A.4: r||s of 66 bytes each");
    is_int(pt_jws_verify(&t, &k), 0, "A.4: ES512 verifies (built by hand)");
    t.sig_len--;
    is_int(pt_jws_verify(&t, &k), -1, "A.4: a byte short: bad signature");
    pt_jwk_free(&k);
}

static void rfc8037_a4(void)
{
    pt_jwk_t k = jwks_one("{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}");
    ok(k.pkey && k.alg == PT_JWA_EDDSA, "RFC 8037: an Ed25519 JWK is an EdDSA key");
    const char *sig = "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
    pt_jws_t t = {.alg = PT_STR("EdDSA"), .signing_input = PT_STR("eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc")};
    t.sig = unb64url(sig, &t.sig_len);
    is_int(pt_jws_verify(&t, &k), 0, "RFC 8037 A.4: Ed25519 verifies (built by hand: the payload is a sentence)");
    t.signing_input.n--;
    is_int(pt_jws_verify(&t, &k), -1, "RFC 8037 A.4: a byte less signed: bad signature");
    is_int(check(pt_arena_printf(&T, "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.%s", sig), &k), 99,
           "RFC 8037 A.4: as a JWT it does not parse");
    pt_jwk_free(&k);
}

/* ---- every algorithm, signed here ---- */

static struct {
    EVP_PKEY *rsa, *rsa1024, *ec256, *ec384, *ec521, *k1, *ed25519, *ed448;
    unsigned char secret[64];
} K;

static EVP_PKEY *key_for(pt_jwa_t alg)
{
    switch (alg) {
    case PT_JWA_ES256:
        return K.ec256;
    case PT_JWA_ES384:
        return K.ec384;
    case PT_JWA_ES512:
        return K.ec521;
    case PT_JWA_EDDSA:
        return K.ed25519;
    default:
        return alg <= PT_JWA_HS512 ? NULL : K.rsa;
    }
}

static pt_jwk_t verifier_for(pt_jwa_t alg)
{
    pt_jwk_t k;
    if (alg <= PT_JWA_HS512)
        pt_jwk_from_secret(&k, alg, K.secret, sizeof(K.secret), err, sizeof(err));
    else
        k = pem_key(alg, key_for(alg));
    return k;
}

static void every_algorithm(void)
{
    const char *payload = "{\"sub\":\"alice\",\"exp\":2000000000}";
    for (int i = 0; i < PT_JWA__COUNT; i++) {
        pt_jwa_t alg = (pt_jwa_t)i;
        const char *name = pt_jwa_name(alg);
        const char *header = pt_arena_printf(&T, "{\"alg\":\"%s\",\"kid\":\"k-%s\"}", name, name);
        const char *tok = token(alg, key_for(alg), K.secret, sizeof(K.secret), header, payload);
        pt_jwk_t k = verifier_for(alg);
        is_int(k.alg, alg, "%s: the key is made", name);
        is_int(check(tok, &k), 0, "%s: a token signed here verifies", name);
        const char *other = b64url(&T, "{\"sub\":\"admin\",\"exp\":2000000000}", 32);
        is_int(check(replace_part(tok, 1, other), &k), -1, "%s: tampered payload: bad signature", name);
        is_int(check(flip_sig_bit(tok), &k), -1, "%s: tampered signature: bad signature", name);
        is_int(check(drop_sig_byte(tok), &k), -1, "%s: a signature a byte short: bad signature", name);
        const char *none = pt_arena_printf(&T, "%s.%s.", b64url(&T, "{\"alg\":\"none\"}", 14), b64url(&T, payload, strlen(payload)));
        is_int(check(none, &k), -2, "%s: alg none: refused by the key", name);
        const char *lower = token(alg, key_for(alg), K.secret, sizeof(K.secret), "{\"alg\":\"hs256\"}", payload);
        is_int(check(lower, &k), -2, "%s: an alg in the wrong case is not an alg", name);
        /* the same signature under a neighbour's alg name */
        pt_jwa_t next = (pt_jwa_t)(i % 3 == 2 ? i - 2 : i + 1);
        if (alg == PT_JWA_EDDSA)
            next = PT_JWA_ES256;
        const char *renamed = pt_arena_printf(&T, "%s.%s", b64url(&T, pt_arena_printf(&T, "{\"alg\":\"%s\"}", pt_jwa_name(next)), 15),
                                              strchr(tok, '.') + 1);
        is_int(check(renamed, &k), -2, "%s: the token renamed %s: refused by the key", name, pt_jwa_name(next));
        pt_jwk_free(&k);
    }
}

/* ---- confusion, curves, key sizes ---- */

static void rs_hs_confusion(void)
{
    const char *pem = pem_of(K.rsa);
    const char *payload = "{\"sub\":\"admin\"}";
    /* the attack: sign HS256 with the public key's PEM as the secret */
    const char *forged = token(PT_JWA_HS256, NULL, pem, strlen(pem), "{\"alg\":\"HS256\"}", payload);
    pt_jwk_t rs = pem_key(PT_JWA_RS256, K.rsa), hs;
    is_int(check(forged, &rs), -2, "RS/HS: an HS256 token signed with the RS256 key's PEM fails: the key is pinned to RS256");
    is_int(pt_jwk_from_secret(&hs, PT_JWA_HS256, pem, strlen(pem), err, sizeof(err)), 0, "RS/HS: (the PEM as a secret is just bytes)");
    is_int(check(forged, &hs), 0, "RS/HS: (so only a key pinned to HS256 and made from that secret takes the token)");
    pt_jwk_free(&hs);
    const char *rs_tok = token(PT_JWA_RS256, K.rsa, NULL, 0, "{\"alg\":\"RS256\"}", payload);
    pt_jwk_from_secret(&hs, PT_JWA_HS256, K.secret, sizeof(K.secret), err, sizeof(err));
    is_int(check(rs_tok, &hs), -2, "RS/HS: an RS256 token against an HS256 key: refused");
    pt_jwk_free(&hs);
    is_int(pt_jwk_from_pem(&hs, PT_JWA_HS256, pem, strlen(pem), err, sizeof(err)), -1, "RS/HS: a PEM cannot make an HS256 key");
    is_str(err, "HS256 needs a secret, not a PEM key", "RS/HS: and says so");
    is_int(pt_jwk_from_secret(&hs, PT_JWA_RS256, K.secret, 64, err, sizeof(err)), -1, "RS/HS: a secret cannot make an RS256 key");
    is_str(err, "RS256 needs a public key, not a secret", "RS/HS: and says so");
    ok(!hs.secret && !hs.pkey, "RS/HS: a refused key is left empty");
    pt_jwk_free(&hs);
    /* the key's type is the key's: a forged jwk header is ignored */
    const char *embedded = token(PT_JWA_HS256, NULL, K.secret, 64,
                                 pt_arena_printf(&T, "{\"alg\":\"RS256\",\"jwk\":%s}", jwk_of(K.rsa1024, "")), payload);
    is_int(check(embedded, &rs), -1, "a token naming its own jwk is checked with ours only");
    pt_jwk_free(&rs);
}

static void refuses_pem(pt_jwa_t alg, EVP_PKEY *pk, const char *want)
{
    pt_jwk_t k;
    const char *pem = pem_of(pk);
    err[0] = 0;
    int rc = pt_jwk_from_pem(&k, alg, pem, strlen(pem), err, sizeof(err));
    ok(rc == -1 && strcmp(err, want) == 0 && !k.pkey, "%s refused: %s", pt_jwa_name(alg), err);
}

static void wrong_keys(void)
{
    refuses_pem(PT_JWA_ES256, K.ec384, "P-384 key for ES256");
    refuses_pem(PT_JWA_ES384, K.ec256, "P-256 key for ES384");
    refuses_pem(PT_JWA_ES512, K.ec384, "P-384 key for ES512");
    refuses_pem(PT_JWA_ES256, K.k1, "EC key on curve secp256k1: ES256 needs P-256");
    refuses_pem(PT_JWA_ES256, K.rsa, "RSA key for ES256");
    refuses_pem(PT_JWA_RS256, K.ec256, "EC key for RS256");
    refuses_pem(PT_JWA_PS256, K.ed25519, "ED25519 key for PS256");
    refuses_pem(PT_JWA_EDDSA, K.ed448, "ED448 key for EdDSA: only Ed25519 is supported");
    refuses_pem(PT_JWA_EDDSA, K.ec256, "EC key for EdDSA: only Ed25519 is supported");
    refuses_pem(PT_JWA_RS256, K.rsa1024, "RSA key of 1024 bits: RS256 needs at least 2048");
    refuses_pem(PT_JWA_PS512, K.rsa1024, "RSA key of 1024 bits: PS512 needs at least 2048");

    /* an ES384 signature is 96 bytes: an ES256 key takes 64 only */
    pt_jwk_t k = verifier_for(PT_JWA_ES256);
    const char *tok = token(PT_JWA_ES384, K.ec384, NULL, 0, "{\"alg\":\"ES256\"}", "{}");
    is_int(check(tok, &k), -1, "ES256 with a 96-byte signature: bad signature");
    pt_jwk_free(&k);

    pt_jwk_t s;
    unsigned char secret[64] = {0};
    struct {
        pt_jwa_t alg;
        size_t n;
        const char *want;
    } sizes[] = {
        {PT_JWA_HS256, 16, "HS256 secret of 16 bytes: at least 32"}, {PT_JWA_HS256, 31, "HS256 secret of 31 bytes: at least 32"},
        {PT_JWA_HS256, 32, ""},                                       {PT_JWA_HS384, 47, "HS384 secret of 47 bytes: at least 48"},
        {PT_JWA_HS384, 48, ""},                                       {PT_JWA_HS512, 63, "HS512 secret of 63 bytes: at least 64"},
        {PT_JWA_HS512, 64, ""},
    };
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        err[0] = 0;
        int rc = pt_jwk_from_secret(&s, sizes[i].alg, secret, sizes[i].n, err, sizeof(err));
        ok(rc == (*sizes[i].want ? -1 : 0) && strcmp(err, sizes[i].want) == 0, "%s secret of %zu bytes: %s",
           pt_jwa_name(sizes[i].alg), sizes[i].n, rc ? err : "made");
        pt_jwk_free(&s);
    }
}

static void pem_forms(void)
{
    pt_jwk_t k;
    is_int(pt_jwk_from_pem(&k, PT_JWA_RS256, "hello", 5, err, sizeof(err)), -1, "PEM: not PEM");
    is_str(err, "not a PEM public key or certificate", "PEM: says what it wants");
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, K.ec256, NULL, NULL, 0, NULL, NULL);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    is_int(pt_jwk_from_pem(&k, PT_JWA_ES256, p, (size_t)n, err, sizeof(err)), -1, "PEM: a private key is not taken");
    BIO_free(b);
    const char *pem = pem_of(K.ec256);
    is_int(pt_jwk_from_pem(&k, PT_JWA_ES256, pem, strlen(pem) - 30, err, sizeof(err)), -1, "PEM: a cut PEM");
    is_int(pt_jwk_from_pem(&k, PT_JWA__COUNT, pem, strlen(pem), err, sizeof(err)), -1, "PEM: an algorithm out of range");

    /* a certificate: its key is taken */
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, K.rsa);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)"issuer", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_sign(x, K.rsa, EVP_sha256());
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    n = BIO_get_mem_data(b, &p);
    is_int(pt_jwk_from_pem(&k, PT_JWA_PS384, p, (size_t)n, err, sizeof(err)), 0, "PEM: an X.509 certificate");
    const char *tok = token(PT_JWA_PS384, K.rsa, NULL, 0, "{\"alg\":\"PS384\"}", "{\"a\":1}");
    is_int(check(tok, &k), 0, "PEM: its key verifies a PS384 token");
    pt_jwk_free(&k);
    BIO_free(b);
    X509_free(x);
}

/* ---- claims ---- */

static pt_jws_t with_payload(const char *payload)
{
    pt_jws_t t = {0};
    const char *e;
    t.payload = pt_json_parse(&T, payload, strlen(payload), &e);
    return t;
}

static void claims_time(void)
{
    pt_jwt_rules_t r = {.leeway = 30, .verify_exp = true, .verify_nbf = true};
    const char *which = "x";
    pt_jws_t t = with_payload("{\"exp\":1000,\"nbf\":900}");
    is_int(pt_jwt_check_claims(&t, 1029, &r, &which), PT_JWT_OK, "exp: now = exp + leeway - 1 passes");
    ok(which == NULL, "which: NULL when all hold");
    is_int(pt_jwt_check_claims(&t, 1030, &r, &which), PT_JWT_EXPIRED, "exp: now = exp + leeway fails");
    is_str(which, "exp", "which: exp");
    is_int(pt_jwt_check_claims(&t, 870, &r, &which), PT_JWT_OK, "nbf: now = nbf - leeway passes");
    is_int(pt_jwt_check_claims(&t, 869, &r, &which), PT_JWT_NOT_YET, "nbf: now = nbf - leeway - 1 fails");
    is_str(which, "nbf", "which: nbf");
    r.leeway = 0;
    is_int(pt_jwt_check_claims(&t, 999, &r, NULL), PT_JWT_OK, "no leeway: exp - 1 passes");
    is_int(pt_jwt_check_claims(&t, 1000, &r, NULL), PT_JWT_EXPIRED, "no leeway: exp fails");
    is_int(pt_jwt_check_claims(&t, 900, &r, NULL), PT_JWT_OK, "no leeway: nbf passes");
    is_int(pt_jwt_check_claims(&t, 899, &r, NULL), PT_JWT_NOT_YET, "no leeway: nbf - 1 fails");
    t = with_payload("{\"exp\":1000.5}");
    r.verify_nbf = false;
    is_int(pt_jwt_check_claims(&t, 1000, &r, NULL), PT_JWT_OK, "exp 1000.5 at 1000: passes");
    is_int(pt_jwt_check_claims(&t, 1001, &r, NULL), PT_JWT_EXPIRED, "exp 1000.5 at 1001: expired");
    pt_jwt_rules_t none = {0};
    is_int(pt_jwt_check_claims(&t, 5000, &none, NULL), PT_JWT_OK, "expired, but exp not asked for: passes (Kong's "
                                                                   "claims_to_verify)");
    t = with_payload("{\"sub\":\"x\"}");
    r.verify_exp = r.verify_nbf = false;
    is_int(pt_jwt_check_claims(&t, 1000, &r, NULL), PT_JWT_OK, "no exp, no nbf, none asked for: passes");
    r.verify_exp = true;
    is_int(pt_jwt_check_claims(&t, 1000, &r, &which), PT_JWT_MISSING_CLAIM, "verify exp, no exp: missing");
    is_str(which, "exp", "which: exp");
    r.verify_exp = false;
    r.verify_nbf = true;
    is_int(pt_jwt_check_claims(&t, 1000, &r, &which), PT_JWT_MISSING_CLAIM, "verify nbf, no nbf: missing");
    is_str(which, "nbf", "which: nbf");
    t = with_payload("{\"exp\":\"2000000000\"}");
    r.verify_exp = true;
    is_int(pt_jwt_check_claims(&t, 1000, &r, &which), PT_JWT_BAD_CLAIM, "exp as a string: bad claim");
    is_str(which, "exp", "which: exp");
    t = with_payload("{\"nbf\":null}");
    r.verify_exp = false;
    r.verify_nbf = true;
    is_int(pt_jwt_check_claims(&t, 1000, &r, NULL), PT_JWT_BAD_CLAIM, "nbf null: bad claim");
    t = with_payload("{\"exp\":1000,\"iss\":\"eve\"}");
    pt_jwt_rules_t both = {.issuer = "joe", .verify_exp = true};
    is_int(pt_jwt_check_claims(&t, 2000, &both, &which), PT_JWT_EXPIRED, "expired and the wrong issuer: expired first");
}

static void claims_iss_aud(void)
{
    const char *auds[] = {"api", "web"}, *which;
    pt_jwt_rules_t r = {.issuer = "joe", .audiences = auds, .naud = 2};
    struct {
        const char *payload;
        pt_jwt_check_t want;
        const char *which, *what;
    } cases[] = {
        {"{\"iss\":\"joe\",\"aud\":\"web\"}", PT_JWT_OK, NULL, "iss and aud as a string"},
        {"{\"iss\":\"joe\",\"aud\":[\"x\",\"api\"]}", PT_JWT_OK, NULL, "aud an array holding one"},
        {"{\"iss\":\"joe\",\"aud\":[\"x\",\"y\"]}", PT_JWT_BAD_AUD, "aud", "aud an array holding none"},
        {"{\"iss\":\"joe\",\"aud\":[]}", PT_JWT_BAD_AUD, "aud", "aud an empty array"},
        {"{\"iss\":\"joe\",\"aud\":\"apis\"}", PT_JWT_BAD_AUD, "aud", "aud a longer string"},
        {"{\"iss\":\"joe\",\"aud\":\"ap\"}", PT_JWT_BAD_AUD, "aud", "aud a prefix"},
        {"{\"iss\":\"joe\"}", PT_JWT_BAD_AUD, "aud", "no aud"},
        {"{\"iss\":\"joe\",\"aud\":[\"api\",7]}", PT_JWT_BAD_CLAIM, "aud", "aud an array with a number"},
        {"{\"iss\":\"joe\",\"aud\":{\"api\":1}}", PT_JWT_BAD_CLAIM, "aud", "aud an object"},
        {"{\"iss\":\"jo\",\"aud\":\"api\"}", PT_JWT_BAD_ISS, "iss", "iss another"},
        {"{\"iss\":\"joe\\u0000\",\"aud\":\"api\"}", PT_JWT_BAD_ISS, "iss", "iss with a NUL after"},
        {"{\"iss\":\"JOE\",\"aud\":\"api\"}", PT_JWT_BAD_ISS, "iss", "iss in another case"},
        {"{\"aud\":\"api\"}", PT_JWT_BAD_ISS, "iss", "no iss"},
        {"{\"iss\":[\"joe\"],\"aud\":\"api\"}", PT_JWT_BAD_CLAIM, "iss", "iss an array"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pt_jws_t t = with_payload(cases[i].payload);
        which = "unset";
        pt_jwt_check_t rc = pt_jwt_check_claims(&t, 0, &r, &which);
        ok(rc == cases[i].want && (cases[i].which ? which && strcmp(which, cases[i].which) == 0 : which == NULL),
           "claims: %s (%d, %s)", cases[i].what, rc, which ? which : "NULL");
    }
    pt_jws_t t = with_payload("{\"aud\":5,\"iss\":5}");
    pt_jwt_rules_t none = {0};
    is_int(pt_jwt_check_claims(&t, 0, &none, NULL), PT_JWT_OK, "no issuer, no audiences asked: iss and aud not looked at");

    const char *req[] = {"sub", "role"};
    pt_jwt_rules_t rr = {.required = req, .nrequired = 2};
    t = with_payload("{\"sub\":\"x\",\"role\":null}");
    is_int(pt_jwt_check_claims(&t, 0, &rr, &which), PT_JWT_OK, "required: present (null counts)");
    t = with_payload("{\"sub\":\"x\"}");
    is_int(pt_jwt_check_claims(&t, 0, &rr, &which), PT_JWT_MISSING_CLAIM, "required: one missing");
    is_str(which, "role", "required: which names it");
}

/* ---- parsing refusals ---- */

static void parse_refuses(const char *tok, size_t n, const char *want)
{
    pt_jws_t t;
    const char *e = NULL;
    int rc = pt_jws_parse(&T, tok, n, &t, &e);
    ok(rc == -1 && e && strncmp(e, want, strlen(want)) == 0 && !t.header && !t.payload, "parse refuses: %s (%s)", want, e ? e : "-");
}

static const char *parts(const char *header, const char *payload, const char *sig)
{
    return pt_arena_printf(&T, "%s.%s.%s", b64url(&T, header, strlen(header)), b64url(&T, payload, strlen(payload)), sig);
}

static void jws_parsing(void)
{
    const char *ok_tok = parts("{\"alg\":\"HS256\",\"kid\":\"a\\u00e9\"}", "{}", "AAAA");
    pt_jws_t t;
    const char *e;
    is_int(pt_jws_parse(&T, ok_tok, strlen(ok_tok), &t, &e), 0, "parse: a well-formed token");
    is_str(t.kid.p, "a\xC3\xA9", "parse: kid decoded");
    is_int(t.sig_len, 3, "parse: the signature decoded");
    static const struct {
        const char *tok, *want;
    } raw[] = {
        {"", "not three dot-separated parts"},
        {"a.b", "not three dot-separated parts"},
        {"e30.e30.e30.e30", "not three dot-separated parts"},
        {"e30=.e30.", "header: not base64url"},
        {"e3+.e30.", "header: not base64url"},
        {"e3 0.e30.", "header: not base64url"},
        {"e31.e30.", "header: not base64url"},   /* "{}" with a stray low bit */
        {"e30AA.e30.", "header: not base64url"}, /* 4k + 1 characters cannot be */
        {".e30.", "header: unexpected end at 0"},
    };
    for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++)
        parse_refuses(raw[i].tok, strlen(raw[i].tok), raw[i].want);
    const char *four = pt_arena_printf(&T, "%s.", ok_tok);
    parse_refuses(four, strlen(four), "not three dot-separated parts");
    static const struct {
        const char *header, *payload, *sig, *want;
    } bad[] = {
        {"[]", "{}", "", "header: not a JSON object"},
        {"{\"alg\":1}", "{}", "", "alg is not a string"},
        {"{\"typ\":\"JWT\"}", "{}", "", "no alg in the header"},
        {"{\"alg\":\"HS256\",\"alg\":\"none\"}", "{}", "", "header: duplicate key"},
        {"{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", "{}", "", "crit header not supported"},
        {"{\"alg\":\"HS256\",\"b64\":false}", "{}", "", "b64 other than true not supported"},
        {"{\"alg\":\"HS256\",\"kid\":7}", "{}", "", "kid is not a string"},
        {"{\"alg\":\"HS256\"}", "[1]", "", "payload: not a JSON object"},
        {"{\"alg\":\"HS256\"}", "{\"a\":01}", "", "payload: leading zero at 5"},
        {"{\"alg\":\"HS256\"}", "{}", "AA=", "signature: not base64url"},
        {"{\"alg\":\"HS256\"}", "{}", "A", "signature: not base64url"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *tok = parts(bad[i].header, bad[i].payload, bad[i].sig);
        parse_refuses(tok, strlen(tok), bad[i].want);
    }

    /* 16 KiB exactly parses; a byte more does not */
    char *pad = pt_arena_alloc(&T, PT_JWS_MAX_LEN);
    const char *head;
    size_t m;
    for (size_t plen = 1000;; plen++) {
        memset(pad, 'x', plen);
        pad[plen] = 0;
        head = parts("{\"alg\":\"HS256\"}", pt_arena_printf(&T, "{\"p\":\"%s\"}", pad), "");
        if ((m = PT_JWS_MAX_LEN - strlen(head)) % 4 != 1)
            break;
    }
    char *big = pt_arena_alloc(&T, PT_JWS_MAX_LEN + 2);
    memcpy(big, head, strlen(head));
    memset(big + strlen(head), 'A', m + 1);
    is_int(pt_jws_parse(&T, big, PT_JWS_MAX_LEN, &t, &e), 0, "a token of 16384 bytes parses");
    parse_refuses(big, PT_JWS_MAX_LEN + 1, "token over 16 KiB");
}

/* A failure leaves nothing on OpenSSL's error queue for a TLS call to trip on. */
static void error_queue(void)
{
    ERR_clear_error();
    pt_jwk_t k = verifier_for(PT_JWA_RS256), bad;
    const char *tok = token(PT_JWA_RS256, K.rsa, NULL, 0, "{\"alg\":\"RS256\"}", "{}");
    is_int(check(drop_sig_byte(tok), &k), -1, "error queue: a bad RSA signature");
    is_int(ERR_peek_error(), 0, "error queue: empty after it");
    pt_jwk_free(&k);
    k = verifier_for(PT_JWA_ES256);
    tok = token(PT_JWA_ES256, K.ec256, NULL, 0, "{\"alg\":\"ES256\"}", "{}");
    is_int(check(flip_sig_bit(tok), &k), -1, "error queue: a bad ECDSA signature");
    is_int(ERR_peek_error(), 0, "error queue: empty after it");
    pt_jwk_free(&k);
    const char *broken = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
    is_int(pt_jwk_from_pem(&bad, PT_JWA_RS256, broken, strlen(broken), err, sizeof(err)), -1, "error queue: a broken PEM");
    is_int(ERR_peek_error(), 0, "error queue: empty after it");
    const char *set = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}";
    pt_jwk_t *v;
    is_int(pt_jwks_parse(set, strlen(set), &v, NULL, err, sizeof(err)), 0, "error queue: a JWKS of a bad point");
    is_int(ERR_peek_error(), 0, "error queue: empty after it");
}

static void small_arena(void)
{
    pt_arena_t small;
    pt_arena_init(&small, 128, 128);
    const char *tok = parts("{\"alg\":\"HS256\"}", "{\"sub\":\"a long enough subject to overflow\"}", "AAAA");
    pt_jws_t t;
    const char *e = NULL;
    int rc = pt_jws_parse(&small, tok, strlen(tok), &t, &e);
    ok(rc == -1 && e && strstr(e, "out of memory"), "an arena too small: %s", e ? e : "no error");
    ok(small.overflow, "and the arena says it overflowed");
    pt_arena_free(&small);
}

/* ---- JWK Sets ---- */

static void jwks_kept(void)
{
    const char *set = pt_arena_printf(
        &T, "{\"keys\":[%s,%s,%s,%s,%s,%s,%s]}", jwk_of(K.rsa, ",\"alg\":\"RS512\",\"kid\":\"r1\",\"use\":\"sig\""),
        jwk_of(K.rsa, ",\"kid\":\"r2\",\"key_ops\":[\"verify\"]"), jwk_of(K.rsa, ",\"alg\":\"PS384\",\"kid\":\"r3\""),
        jwk_of(K.ec256, ",\"kid\":\"e1\""), jwk_of(K.ec384, ",\"kid\":\"e2\",\"alg\":\"ES384\""), jwk_of(K.ec521, ",\"kid\":\"e3\""),
        jwk_of(K.ed25519, ",\"kid\":\"o1\",\"alg\":\"EdDSA\""));
    pt_jwk_t *v;
    size_t skipped = 99;
    int n = pt_jwks_parse(set, strlen(set), &v, &skipped, err, sizeof(err));
    is_int(n, 7, "JWKS: seven keys kept");
    is_int(skipped, 0, "JWKS: none skipped");
    const pt_jwa_t want[] = {PT_JWA_RS512, PT_JWA_RS256, PT_JWA_PS384, PT_JWA_ES256, PT_JWA_ES384, PT_JWA_ES512, PT_JWA_EDDSA};
    const char *kids[] = {"r1", "r2", "r3", "e1", "e2", "e3", "o1"};
    for (int i = 0; i < n && i < 7; i++) {
        ok(v[i].alg == want[i] && v[i].kid && strcmp(v[i].kid, kids[i]) == 0, "JWKS: key %s is %s", kids[i], pt_jwa_name(v[i].alg));
        pt_jwa_t alg = v[i].alg;
        const char *tok = token(alg, key_for(alg), NULL, 0, pt_arena_printf(&T, "{\"alg\":\"%s\"}", pt_jwa_name(alg)), "{}");
        is_int(check(tok, &v[i]), 0, "JWKS: key %s verifies a %s token signed here", kids[i], pt_jwa_name(alg));
    }
    pt_jwks_free(v, n > 0 ? (size_t)n : 0);
}

static void jwks_skipped(void)
{
    const char *ec = jwk_of(K.ec256, "");
    size_t len = strlen(ec);
    const char *x = strstr(ec, "\"x\":\"") + 5;
    /* the same JWK with its x one character different: a point off the curve */
    char *off = pt_arena_strndup(&T, ec, len);
    off[x - ec + 5] = off[x - ec + 5] == 'A' ? 'B' : 'A';
    size_t xn;
    unsigned char *xb = unb64url(pt_arena_strndup(&T, x, 43), &xn);
    const char *short_x = pt_arena_printf(&T, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%.43s\"}",
                                          b64url(&T, xb + 1, xn - 1), strstr(ec, "\"y\":\"") + 5);
    const struct {
        const char *jwk, *why;
    } skip[] = {
        {"{\"kty\":\"oct\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow\"}",
         "kty oct"},
        {jwk_of(K.rsa, ",\"use\":\"enc\""), "use enc"},
        {jwk_of(K.rsa, ",\"key_ops\":[\"encrypt\"]"), "key_ops without verify"},
        {jwk_of(K.rsa, ",\"key_ops\":\"verify\""), "key_ops not an array"},
        {jwk_of(K.rsa, ",\"alg\":\"ES256\""), "RSA with alg ES256"},
        {jwk_of(K.rsa, ",\"alg\":\"none\""), "alg none"},
        {jwk_of(K.rsa, ",\"alg\":\"HS256\""), "RSA with alg HS256"},
        {jwk_of(K.rsa, ",\"alg\":\"RSA-OAEP\""), "an encryption alg"},
        {jwk_of(K.rsa, ",\"kid\":17"), "kid a number"},
        {jwk_of(K.rsa, ",\"kid\":\"a\\u0000b\""), "kid with a NUL"},
        {jwk_of(K.rsa1024, ""), "RSA of 1024 bits"},
        {jwk_of(K.ec256, ",\"alg\":\"ES384\""), "P-256 with alg ES384"},
        {jwk_of(K.ed448, ""), "crv Ed448"},
        {"{\"kty\":\"EC\",\"crv\":\"P-192\",\"x\":\"AAAA\",\"y\":\"AAAA\"}", "crv P-192"},
        {"{\"kty\":\"EC\",\"crv\":\"secp256k1\",\"x\":\"AAAA\",\"y\":\"AAAA\"}", "crv secp256k1"},
        {short_x, "x of 31 bytes on P-256"},
        {off, "a point off the curve"},
        {"{\"kty\":\"RSA\",\"e\":\"AQAB\"}", "RSA without n"},
        {"{\"kty\":\"RSA\",\"n\":\"a+b\",\"e\":\"AQAB\"}", "n not base64url"},
        {"{\"kty\":\"XYZ\"}", "kty unknown"},
        {"{\"n\":\"AQAB\",\"e\":\"AQAB\"}", "no kty"},
        {"17", "a number"},
        {"[]", "an array"},
    };
    size_t nskip = sizeof(skip) / sizeof(skip[0]);
    char *set = pt_arena_printf(&T, "{\"keys\":[%s", jwk_of(K.ec384, ",\"kid\":\"good\""));
    for (size_t i = 0; i < nskip; i++) {
        set = pt_arena_printf(&T, "%s,%s", set, skip[i].jwk);
        const char *alone = pt_arena_printf(&T, "{\"keys\":[%s]}", skip[i].jwk);
        pt_jwk_t *v = (pt_jwk_t *)&v;
        size_t sk = 0;
        int n = pt_jwks_parse(alone, strlen(alone), &v, &sk, err, sizeof(err));
        ok(n == 0 && sk == 1 && v == NULL, "JWKS: skipped: %s", skip[i].why);
    }
    set = pt_arena_printf(&T, "%s],\"other\":true}", set);
    pt_jwk_t *v;
    size_t sk = 0;
    int n = pt_jwks_parse(set, strlen(set), &v, &sk, err, sizeof(err));
    ok(n == 1 && sk == nskip && strcmp(v[0].kid, "good") == 0, "JWKS: one kept among %zu skipped", nskip);
    pt_jwks_free(v, n > 0 ? (size_t)n : 0);
}

static void jwks_malformed(void)
{
    struct {
        const char *doc, *want;
    } bad[] = {
        {"", "not JSON: unexpected end at 0"},
        {"{\"keys\":[}", "not JSON: unexpected character at 9"},
        {"[]", "not a JWK Set: no \"keys\" array"},
        {"{}", "not a JWK Set: no \"keys\" array"},
        {"{\"keys\":{}}", "not a JWK Set: no \"keys\" array"},
        {"{\"keys\":[],\"keys\":[]}", "not JSON: duplicate key in the object at 0"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pt_jwk_t *v = (pt_jwk_t *)&v;
        err[0] = 0;
        int n = pt_jwks_parse(bad[i].doc, strlen(bad[i].doc), &v, NULL, err, sizeof(err));
        ok(n == -1 && v == NULL && strcmp(err, bad[i].want) == 0, "JWKS refused: %s (%s)", bad[i].want, err);
    }
    pt_jwk_t *v = (pt_jwk_t *)&v;
    size_t sk = 9;
    is_int(pt_jwks_parse("{\"keys\":[]}", 11, &v, &sk, err, sizeof(err)), 0, "JWKS: an empty set is no error");
    ok(v == NULL && sk == 0, "JWKS: and no array");
}

int main(void)
{
    pt_arena_init(&T, 1 << 16, 0);
    K.rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    K.rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    K.ec256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    K.ec384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    K.ec521 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
    K.k1 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp256k1");
    K.ed25519 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    K.ed448 = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
    RAND_bytes(K.secret, sizeof(K.secret));
    ok(K.rsa && K.rsa1024 && K.ec256 && K.ec384 && K.ec521 && K.k1 && K.ed25519 && K.ed448, "test keys generated");

    ok(pt_jwa_parse("none", 4) == -1 && pt_jwa_parse("HS256", 5) == PT_JWA_HS256 && pt_jwa_parse("EdDSA", 5) == PT_JWA_EDDSA,
       "pt_jwa_parse: none is unknown, HS256 and EdDSA known");
    ok(pt_jwa_parse("HS2566", 5) == PT_JWA_HS256 && pt_jwa_parse("HS2566", 6) == -1 && pt_jwa_parse("eddsa", 5) == -1,
       "pt_jwa_parse: exact length, exact case");
    ok(strcmp(pt_jwa_name(PT_JWA_PS384), "PS384") == 0 && strcmp(pt_jwa_name(PT_JWA__COUNT), "unknown") == 0,
       "pt_jwa_name: PS384, and unknown out of range");

    rfc7515_a1();
    rfc7515_a2();
    rfc7515_a3_a4();
    rfc8037_a4();
    every_algorithm();
    rs_hs_confusion();
    wrong_keys();
    pem_forms();
    claims_time();
    claims_iss_aud();
    jws_parsing();
    error_queue();
    small_arena();
    jwks_kept();
    jwks_skipped();
    jwks_malformed();

    EVP_PKEY_free(K.rsa);
    EVP_PKEY_free(K.rsa1024);
    EVP_PKEY_free(K.ec256);
    EVP_PKEY_free(K.ec384);
    EVP_PKEY_free(K.ec521);
    EVP_PKEY_free(K.k1);
    EVP_PKEY_free(K.ed25519);
    EVP_PKEY_free(K.ed448);
    pt_arena_free(&T);
    return done_testing();
}
