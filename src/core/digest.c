/* SHA-256 with a fetched EVP_MD and one reused context: each worker is one
 * thread, and EVP_Digest(..., EVP_sha256()) fetches the implementation
 * again on every call (OpenSSL 3), which cost key-auth most of its time. */
#include "config.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

#include "portico/digest.h"

bool pt_sha256(const void *p, size_t n, unsigned char out[32])
{
    static EVP_MD *md;
    static EVP_MD_CTX *ctx;
    if (!md)
        md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!ctx)
        ctx = EVP_MD_CTX_new();
    if (!md || !ctx || !EVP_DigestInit_ex2(ctx, md, NULL) || !EVP_DigestUpdate(ctx, p, n) ||
        !EVP_DigestFinal_ex(ctx, out, NULL)) {
        memset(out, 0, 32);
        return false;
    }
    return true;
}

uint64_t pt_keyed_hash(const void *p, size_t n)
{
    static uint64_t seed;
    static bool seeded;
    if (!seeded) /* in the worker, after the fork: each has its own */
        seeded = RAND_bytes((unsigned char *)&seed, sizeof(seed)) == 1;
    const unsigned char *b = p;
    uint64_t h = 14695981039346656037ull ^ seed;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h ^ h >> 29;
}
