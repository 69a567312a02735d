/* libFuzzer target: compact JWS parsing, verification against a fixed
 * HS256 key (RFC 7515 A.1's) and ES256 key (A.3's), and the claim checks.
 * Invariants checked: no crash; a parsed token's parts point where they
 * should; verification answers 0, -1 or -2, and -2 exactly when the
 * token's alg is not the key's; a token that verifies stops verifying when
 * one bit of its signature changes; a claim check names the failed claim.
 *
 * Mutating base64url rarely makes JSON, so input that begins with '{' is
 * taken as "header\npayload\nsignature" and base64url-encoded here into a
 * token; an empty signature there is replaced by the HS256 MAC, so that
 * mutated headers and claims also reach the checks after a good signature.
 * Anything else is a token as it is. */
#include "config.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "portico/arena.h"
#include "portico/assert.h"
#include "portico/jose.h"
#include "portico/json.h"
#include "../unit/b64url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char rfc7515_a1_key[64] = {
    0x03, 0x23, 0x35, 0x4b, 0x2b, 0x0f, 0xa5, 0xbc, 0x83, 0x7e, 0x06, 0x65, 0x77, 0x7b, 0xa6, 0x8f,
    0x5a, 0xb3, 0x28, 0xe6, 0xf0, 0x54, 0xc9, 0x28, 0xa9, 0x0f, 0x84, 0xb2, 0xd2, 0x50, 0x2e, 0xbf,
    0xd3, 0xfb, 0x5a, 0x92, 0xd2, 0x06, 0x47, 0xef, 0x96, 0x8a, 0xb4, 0xc3, 0x77, 0x62, 0x3d, 0x22,
    0x3d, 0x2e, 0x21, 0x72, 0x05, 0x2e, 0x4f, 0x08, 0xc0, 0xcd, 0x9a, 0xf5, 0x67, 0xd0, 0x80, 0xa3,
};
static const char rfc7515_a3_jwks[] =
    "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
    "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";

static pt_jwk_t hs, *es;

static void init_keys(void)
{
    char err[128];
    size_t skipped;
    PT_ASSERT(pt_jwk_from_secret(&hs, PT_JWA_HS256, rfc7515_a1_key, sizeof(rfc7515_a1_key), err, sizeof(err)) == 0);
    PT_ASSERT(pt_jwks_parse(rfc7515_a3_jwks, sizeof(rfc7515_a3_jwks) - 1, &es, &skipped, err, sizeof(err)) == 1);
}

/* "header\npayload\nsignature" as a token (see the top). */
static const char *assemble(pt_arena_t *a, const char *d, size_t n)
{
    const char *nl1 = memchr(d, '\n', n), *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(d + n - nl1 - 1)) : NULL;
    if (!nl2)
        return pt_arena_printf(a, "%s", b64url(a, d, n));
    const char *input = pt_arena_printf(a, "%s.%s", b64url(a, d, (size_t)(nl1 - d)), b64url(a, nl1 + 1, (size_t)(nl2 - nl1 - 1)));
    unsigned char mac[64];
    size_t maclen = 0;
    const void *sig = nl2 + 1;
    size_t siglen = (size_t)(d + n - nl2 - 1);
    if (!siglen) {
        PT_ASSERT(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, rfc7515_a1_key, sizeof(rfc7515_a1_key),
                            (const unsigned char *)input, strlen(input), mac, sizeof(mac), &maclen));
        sig = mac;
        siglen = maclen;
    }
    const char *enc = b64url(a, sig, siglen);
    PT_ASSERT(enc);
    return pt_arena_printf(a, "%s.%s", input, enc);
}

static void verify_with(pt_arena_t *a, const pt_jws_t *t, const pt_jwk_t *k)
{
    int rc = pt_jws_verify(t, k);
    const char *name = pt_jwa_name(k->alg);
    bool same_alg = t->alg.n == strlen(name) && memcmp(t->alg.p, name, t->alg.n) == 0;
    PT_ASSERT(rc == 0 || rc == -1 || rc == -2);
    PT_ASSERT((rc == -2) == !same_alg);
    if (rc == 0 && t->sig_len) {
        pt_jws_t bent = *t;
        bent.sig = pt_arena_alloc(a, t->sig_len);
        PT_ASSERT(bent.sig);
        memcpy(bent.sig, t->sig, t->sig_len);
        bent.sig[t->sig_len - 1] ^= 0x80;
        PT_ASSERT(pt_jws_verify(&bent, k) == -1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!es)
        init_keys();
    pt_arena_t a;
    pt_arena_init(&a, 4096, 0);
    pt_jws_t t;
    const char *err = NULL, *tok = (const char *)data;
    if (size && data[0] == '{') {
        tok = assemble(&a, tok, size);
        size = strlen(tok);
    }
    if (pt_jws_parse(&a, tok, size, &t, &err) < 0) {
        PT_ASSERT(err && *err && !t.header && !t.payload);
    } else {
        PT_ASSERT(size <= PT_JWS_MAX_LEN);
        PT_ASSERT(t.header->type == PT_JSON_OBJ && t.payload->type == PT_JSON_OBJ);
        PT_ASSERT(t.alg.p && t.alg.p[t.alg.n] == 0 && t.kid.p && t.kid.p[t.kid.n] == 0);
        PT_ASSERT(t.signing_input.p == tok && t.signing_input.n < size && tok[t.signing_input.n] == '.');
        PT_ASSERT(t.sig_len <= (size - t.signing_input.n) * 3 / 4);
        verify_with(&a, &t, &hs);
        verify_with(&a, &t, &es[0]);
        static const char *const auds[] = {"api", "web"}, *const req[] = {"sub"};
        pt_jwt_rules_t r = {.verify_exp = true, .leeway = 60, .issuer = "joe", .audiences = auds, .naud = 2,
                            .required = req, .nrequired = 1};
        const char *which = "unset";
        pt_jwt_check_t c = pt_jwt_check_claims(&t, 1300819000, &r, &which);
        PT_ASSERT(c >= PT_JWT_OK && c <= PT_JWT_BAD_CLAIM);
        PT_ASSERT((c == PT_JWT_OK) == (which == NULL));
        PT_ASSERT(c == PT_JWT_OK || pt_json_get(t.payload, which) || c == PT_JWT_MISSING_CLAIM || c == PT_JWT_BAD_ISS ||
                  c == PT_JWT_BAD_AUD);
    }
    pt_arena_free(&a);
    return 0;
}
