/* A strict RFC 8259 JSON parser: bytes in, a tree in an arena out.
 *
 * Made for input nobody vouches for (a JWT's header and payload, a JWK
 * Set fetched over HTTP), so it refuses what RFC 8259 leaves to
 * implementations rather than guessing: duplicate keys in an object (a
 * JOSE header with two "alg" must not mean either), invalid UTF-8, lone
 * surrogates (\ud800), leading zeros, NaN and Infinity, numbers out of the
 * range of a double (1e400), raw control characters in strings, trailing
 * characters after the value, and nesting deeper than PT_JSON_MAX_DEPTH.
 *
 * Every node, string and array lives in the arena given to pt_json_parse and
 * dies with it.  A value costs about 120 bytes of arena (the node, its
 * place in its parent's arrays, a list cell while its parent is parsed),
 * plus its decoded text for strings and keys: a 12 KiB array of zeros
 * takes some 730 KiB.  Parse input nobody vouches for into an arena with a
 * budget; past it, the parse fails with "out of memory". */
#ifndef PORTICO_JSON_H
#define PORTICO_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/arena.h"
#include "portico/str.h"

/* `[[...]]` nested 32 deep parses, 33 deep does not. */
#define PT_JSON_MAX_DEPTH 32

typedef enum { PT_JSON_NULL, PT_JSON_BOOL, PT_JSON_NUM, PT_JSON_STR, PT_JSON_ARR, PT_JSON_OBJ } pt_json_type_t;

typedef struct pt_json pt_json_t;
struct pt_json {
    pt_json_type_t type;
    bool b;                 /* BOOL */
    double num;             /* NUM (also set when is_int) */
    bool is_int;            /* NUM written as an integer (no fraction, no exponent) within int64 */
    int64_t i;              /* NUM when is_int */
    pt_str_t s;             /* STR: decoded UTF-8, NUL-terminated (s.p[s.n] == 0); may contain NUL (\u0000) */
    size_t n;               /* ARR/OBJ: number of items */
    pt_json_t **items;      /* ARR/OBJ values, in document order (NULL when n == 0) */
    pt_str_t *keys;         /* OBJ keys, decoded and NUL-terminated like s, keys[i] names items[i] */
};

/* Parses the n bytes at p (not NUL-terminated; any JSON value may be at the
 * top, with whitespace around it).  Returns the root, or NULL with *err (if
 * err is not NULL) set to a short phrase with a byte offset, such as
 * "unexpected character at 12", "duplicate key in the object at 0" or
 * "out of memory" when the arena is exhausted.  The phrase is in the arena
 * when it has an offset, else a static string: either way it lives as
 * long as the arena. */
pt_json_t *pt_json_parse(pt_arena_t *a, const char *p, size_t n, const char **err);

/* The value of `key` in obj: NULL if obj is NULL or not an object, or has
 * no such key.  A key with a NUL in it never matches. */
const pt_json_t *pt_json_get(const pt_json_t *obj, const char *key);

#endif
