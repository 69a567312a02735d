/* base64url without padding (RFC 7515 2), for the tests and fuzz targets
 * that make tokens: the encoding lives in the arena, NUL-terminated. */
#ifndef PORTICO_TEST_B64URL_H
#define PORTICO_TEST_B64URL_H

#include <openssl/evp.h>

#include "portico/arena.h"

static char *__attribute__((unused)) b64url(pt_arena_t *a, const void *p, size_t n)
{
    char *out = pt_arena_alloc(a, n / 3 * 4 + 5);
    if (!out)
        return NULL;
    int len = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = 0;
    for (char *c = out; *c; c++)
        *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
    return out;
}

#endif
