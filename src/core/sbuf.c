/* A growing output buffer (sbuf.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/sbuf.h"
#include "portico/str.h"

void pt_sbuf_put(pt_sbuf_t *b, const char *s, size_t n)
{
    if (b->failed || !n) /* s may be NULL when n is 0 */
        return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

void pt_sbuf_puts(pt_sbuf_t *b, const char *s)
{
    pt_sbuf_put(b, s, strlen(s));
}

void pt_sbuf_u64(pt_sbuf_t *b, uint64_t v)
{
    char d[24];
    pt_sbuf_put(b, d, pt_fmt_u64(d, v, 0));
}

void pt_sbuf_json_str(pt_sbuf_t *b, const char *s)
{
    pt_sbuf_put(b, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
            continue;
        pt_sbuf_put(b, run, (size_t)(s - run));
        char esc[8];
        /* a byte past 0x7f may not be UTF-8: written as the code point of
         * its value, so that the body is valid JSON whatever came in */
        int n = ch == '"' ? snprintf(esc, sizeof(esc), "\\\"") : ch == '\\' ? snprintf(esc, sizeof(esc), "\\\\")
                                                                             : snprintf(esc, sizeof(esc), "\\u%04x", ch);
        pt_sbuf_put(b, esc, (size_t)n);
        run = s + 1;
    }
    pt_sbuf_put(b, run, (size_t)(s - run));
    pt_sbuf_put(b, "\"", 1);
}
