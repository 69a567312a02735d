/* SHA-256 for request paths (an API key, a cache key): OpenSSL's, with the
 * algorithm fetched and the context made once per process, since a fetch
 * costs more than hashing a short string. */
#ifndef PORTICO_DIGEST_H
#define PORTICO_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* out gets the 32 bytes; false when OpenSSL failed (out is zeroed). */
bool pt_sha256(const void *p, size_t n, unsigned char out[32]);

/* A fast hash for an index (FNV-1a), keyed with a random seed made once
 * per process: a client cannot aim its keys or tokens at one slot.  Not
 * for comparing: a hit is always checked against the whole value. */
uint64_t pt_keyed_hash(const void *p, size_t n);

/* SipHash-1-3 of p with a 128-bit key: for tables shared by processes
 * (the limits' counters), where every process must hash alike. */
uint64_t pt_siphash(const uint64_t key[2], const void *p, size_t n);

#endif
