/* libFuzzer target: JWK Set parsing.
 * Invariants checked: no crash, no leak; a refused document says why; every
 * key kept is a public key pinned to an algorithm that fits it, and kept
 * plus skipped is the number of entries in "keys". */
#include "config.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "portico/arena.h"
#include "portico/assert.h"
#include "portico/jose.h"
#include "portico/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *type_for(pt_jwa_t alg)
{
    if (alg >= PT_JWA_RS256 && alg <= PT_JWA_PS512)
        return "RSA";
    if (alg >= PT_JWA_ES256 && alg <= PT_JWA_ES512)
        return "EC";
    PT_ASSERT(alg == PT_JWA_EDDSA); /* never an HMAC key from a set */
    return "ED25519";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pt_jwk_t *keys = NULL;
    size_t skipped = 0;
    char err[256] = "";
    int n = pt_jwks_parse((const char *)data, size, &keys, &skipped, err, sizeof(err));
    if (n < 0) {
        PT_ASSERT(n == -1 && err[0] && !keys);
        return 0;
    }
    PT_ASSERT((n == 0) == (keys == NULL));
    for (int i = 0; i < n; i++) {
        PT_ASSERT(keys[i].pkey && !keys[i].secret && (unsigned)keys[i].alg < PT_JWA__COUNT);
        PT_ASSERT(EVP_PKEY_is_a(keys[i].pkey, type_for(keys[i].alg)));
    }
    /* the same document's "keys", counted by the JSON parser */
    pt_arena_t a;
    pt_arena_init(&a, 4096, 0);
    const pt_json_t *doc = pt_json_parse(&a, (const char *)data, size, NULL);
    const pt_json_t *arr = pt_json_get(doc, "keys");
    PT_ASSERT(arr && arr->type == PT_JSON_ARR && arr->n == (size_t)n + skipped);
    pt_arena_free(&a);
    pt_jwks_free(keys, (size_t)n);
    return 0;
}
