/* SHA-256 for request paths (an API key, a cache key): OpenSSL's, with the
 * algorithm fetched and the context made once per process, since a fetch
 * costs more than hashing a short string. */
#ifndef PORTICO_DIGEST_H
#define PORTICO_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

/* out gets the 32 bytes; false when OpenSSL failed (out is zeroed). */
bool pt_sha256(const void *p, size_t n, unsigned char out[32]);

#endif
