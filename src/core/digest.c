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

/* SipHash-1-3 (Aumasson and Bernstein; the variant Rust and Python use
 * for their tables): keyed, so that a client that does not know the key
 * cannot make keys that share a bucket, and the same in every process
 * that shares the key. */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                                     \
    do {                                                                                                             \
        v0 += v1;                                                                                                    \
        v1 = ROTL(v1, 13);                                                                                           \
        v1 ^= v0;                                                                                                    \
        v0 = ROTL(v0, 32);                                                                                           \
        v2 += v3;                                                                                                    \
        v3 = ROTL(v3, 16);                                                                                           \
        v3 ^= v2;                                                                                                    \
        v0 += v3;                                                                                                    \
        v3 = ROTL(v3, 21);                                                                                           \
        v3 ^= v0;                                                                                                    \
        v2 += v1;                                                                                                    \
        v1 = ROTL(v1, 17);                                                                                           \
        v1 ^= v2;                                                                                                    \
        v2 = ROTL(v2, 32);                                                                                           \
    } while (0)

uint64_t pt_siphash(const uint64_t key[2], const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t v0 = 0x736f6d6570736575ull ^ key[0], v1 = 0x646f72616e646f6dull ^ key[1];
    uint64_t v2 = 0x6c7967656e657261ull ^ key[0], v3 = 0x7465646279746573ull ^ key[1];
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t m;
        memcpy(&m, b + i, 8); /* little-endian hosts (amd64, arm64) */
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t last = (uint64_t)n << 56;
    for (size_t k = 0; i + k < n; k++)
        last |= (uint64_t)b[i + k] << (8 * k);
    v3 ^= last;
    SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}
