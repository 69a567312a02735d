#include "config.h"

#include <stdlib.h>

#include "portico/str.h"

size_t pt_str_distance(const char *a, const char *b, size_t max)
{
    size_t la = strlen(a), lb = strlen(b);
    if ((la > lb ? la - lb : lb - la) > max || lb > 63)
        return max + 1;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0], best;
        row[0] = best = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = pt_lower(a[i - 1]) == pt_lower(b[j - 1]) ? 0 : 1;
            size_t v = diag + cost;
            if (row[j - 1] + 1 < v)
                v = row[j - 1] + 1;
            if (up + 1 < v)
                v = up + 1;
            row[j] = v;
            diag = up;
            if (v < best)
                best = v;
        }
        if (best > max)
            return max + 1;
    }
    return row[lb];
}

bool pt_str_next_token(const char **pp, const char *end, pt_str_t *tok)
{
    const char *p = *pp;
    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p == end) {
            *pp = p;
            return false;
        }
        const char *s = p;
        while (p < end && *p != ',')
            p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > s) {
            *tok = (pt_str_t){s, (size_t)(e - s)};
            *pp = p;
            return true;
        }
    }
}

bool pt_str_list_has_token(pt_str_t list, pt_str_t tok)
{
    const char *p = list.p;
    pt_str_t t;
    while (pt_str_next_token(&p, list.p + list.n, &t))
        if (pt_str_caseeq(t, tok))
            return true;
    return false;
}

long pt_base64_decode(pt_str_t in, unsigned char *out, size_t cap, bool url)
{
    size_t body = in.n, pad = 0;
    while (body > 0 && pad < 2 && in.p[body - 1] == '=') {
        body--;
        pad++;
    }
    /* padded: the whole is a multiple of 4; a lone sextet is never valid */
    if (body % 4 == 1 || (pad && (in.n % 4 != 0)))
        return -1;
    size_t n = body / 4 * 3 + (body % 4 ? body % 4 - 1 : 0);
    if (n > cap)
        return -1;
    unsigned acc = 0, bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < body; i++) {
        int v = pt_base64_value((unsigned char)in.p[i], url);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return (long)o;
}
