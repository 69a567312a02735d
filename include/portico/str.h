/* pt_str_t: a pointer and a length into someone else's buffer; never
 * NUL-terminated and never owned. */
#ifndef PORTICO_STR_H
#define PORTICO_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

typedef struct pt_str {
    const char *p;
    size_t n;
} pt_str_t;

#define PT_STR(lit) ((pt_str_t){(lit), sizeof(lit) - 1})
#define PT_STR_NULL ((pt_str_t){NULL, 0})
/* printf("%.*s", PT_STR_FMT(s)) */
#define PT_STR_FMT(s) (int)(s).n, (s).p

static inline pt_str_t pt_str_from(const char *cs)
{
    return (pt_str_t){cs, cs ? strlen(cs) : 0};
}

static inline bool pt_str_eq(pt_str_t a, pt_str_t b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static inline bool pt_str_caseeq(pt_str_t a, pt_str_t b)
{
    return a.n == b.n && (a.n == 0 || strncasecmp(a.p, b.p, a.n) == 0);
}

static inline bool pt_str_caseeq_cs(pt_str_t a, const char *cs)
{
    return pt_str_caseeq(a, pt_str_from(cs));
}

static inline bool pt_str_has_prefix(pt_str_t s, pt_str_t prefix)
{
    return s.n >= prefix.n && memcmp(s.p, prefix.p, prefix.n) == 0;
}

static inline char pt_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c | 0x20) : c;
}

/* Compares s with a lower-case literal, ignoring the case of s. */
static inline bool pt_str_ieq_lower(pt_str_t s, const char *lower, size_t n)
{
    if (s.n != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((char)(s.p[i] | (char)((s.p[i] >= 'A' && s.p[i] <= 'Z') ? 0x20 : 0)) != lower[i])
            return false;
    return true;
}
#define PT_STR_IEQ(s, lit) pt_str_ieq_lower((s), (lit), sizeof(lit) - 1)

/* The value of a hex digit, or -1. */
static inline int pt_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Do two field names say the same to an application?  Case aside, '-' and
 * '_' are the same (CGI, WSGI and PHP map both to '_'): a client's
 * X_Consumer_Username must not pass where X-Consumer-Username is dropped. */
static inline bool pt_str_field_eq(pt_str_t a, pt_str_t b)
{
    if (a.n != b.n)
        return false;
    for (size_t i = 0; i < a.n; i++) {
        char x = a.p[i], y = b.p[i];
        x = x == '_' ? '-' : (x >= 'A' && x <= 'Z') ? (char)(x | 0x20) : x;
        y = y == '_' ? '-' : (y >= 'A' && y <= 'Z') ? (char)(y | 0x20) : y;
        if (x != y)
            return false;
    }
    return true;
}

/* The value of a base64 digit (RFC 4648: the standard alphabet, or with
 * url the URL-safe one), or -1. */
static inline int pt_base64_value(unsigned char c, bool url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    return c == (url ? '_' : '/') ? 63 : -1;
}

/* Decodes base64 (RFC 4648; with url the URL-safe alphabet; the padding
 * may be left out) into out, cap bytes: the length, or -1 when it is not
 * base64 or decodes to more than cap bytes. */
long pt_base64_decode(pt_str_t in, unsigned char *out, size_t cap, bool url);

/* Writes v in decimal (or hex) at p, returns the digits written (at most 20). */
static inline size_t pt_fmt_u64(char *p, unsigned long long v, int hex)
{
    char tmp[24];
    size_t n = 0;
    unsigned base = hex ? 16 : 10;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

/* Levenshtein distance, capped: returns max + 1 as soon as it is exceeded.
 * Used for "did you mean" suggestions. */
size_t pt_str_distance(const char *a, const char *b, size_t max);

/* Steps through a comma-separated header value ("keep-alive, Upgrade"):
 * puts the next element, without surrounding whitespace, in *tok.  False at
 * the end.  Empty elements are skipped. */
bool pt_str_next_token(const char **p, const char *end, pt_str_t *tok);

/* Case-insensitive search of token `tok` in a comma-separated header value
 * such as "keep-alive, Upgrade". */
bool pt_str_list_has_token(pt_str_t list, pt_str_t tok);

/* FNV-1a over n bytes, going on from h (PT_HASH_INIT to begin).  Inline: the
 * router hashes every path segment with it. */
#define PT_HASH_INIT 0xcbf29ce484222325ull
static inline uint64_t pt_hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

#endif
