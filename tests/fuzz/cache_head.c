/* libFuzzer target: the heads the cache writes (serve.c).
 *
 * The input is an upstream's response head, then (after a NUL) a 304's
 * head, then (after another NUL) a Range value.  Invariants checked:
 *  - the stored head made of the response (pt_cache_stored_head) parses
 *    again whole, with the same status, a Date (ours when the upstream's
 *    is not kept), every field the
 *    upstream sent that a cache keeps, in order, and none that it never
 *    keeps (hop-by-hop, those Connection names, framing, Age,
 *    CDN-Cache-Control, Set-Cookie unless kept);
 *  - the head merged with a 304 (pt_cache_merge_head) parses again whole,
 *    keeps the stored status line, has every field of the 304 that may
 *    update and every stored field the 304 does not replace;
 *  - pt_cache_range answers 200, 206 with first <= last < total, or 416,
 *    for any Range and If-Range. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "portico/assert.h"
#include "portico/cache.h"
#include "portico/cache_policy.h"
#include "portico/conn.h"
#include "portico/h1_parser.h"
#include "portico/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HEADERS 100

static bool never_kept(pt_str_t name, pt_str_t tokens, bool keep_cookies)
{
    return pt_proxy_drop_response_header(name, tokens, false) || pt_str_caseeq_cs(name, "content-length") ||
           pt_str_caseeq_cs(name, "age") || pt_str_caseeq_cs(name, "cdn-cache-control") ||
           (!keep_cookies && pt_str_caseeq_cs(name, "set-cookie"));
}

static int parse_whole(const char *p, size_t n, pt_h1_resp_t *r, pt_h1_header_t *h, size_t cap)
{
    pt_h1_limits_t lim = {n + 1, n + 1, cap};
    *r = (pt_h1_resp_t){.headers = h};
    return pt_h1_parse_response(p, n, &lim, r);
}

/* The stored head of r: checked, and parsed into *s. */
static void check_stored(pt_conn_t *c, const pt_h1_resp_t *r, const char *base, bool keep, pt_cache_head_t *s,
                         pt_h1_header_t *sh, size_t scap)
{
    char *out;
    size_t n = pt_cache_stored_head(c, r, base, keep, 1700000000, &out);
    PT_ASSERT(n > 0);
    PT_ASSERT(parse_whole(out, n, &s->r, sh, scap) == (int)n);
    s->base = out;
    PT_ASSERT(s->r.status == r->status);
    const pt_h1_header_t *ch = pt_h1_resp_find(r, PT_STR("connection"));
    pt_str_t tokens = ch ? pt_proxy_connection_names(ch->value) : PT_STR_NULL;
    size_t j = 0, dates = 0;
    for (size_t i = 0; i < s->r.nheaders; i++) {
        bool date = pt_str_caseeq_cs(s->r.headers[i].name, "date");
        dates += date;
        /* a Date is ours when the upstream's was not kept (Connection may name it) */
        PT_ASSERT(date || !never_kept(s->r.headers[i].name, tokens, keep));
    }
    PT_ASSERT(dates >= 1);
    for (size_t i = 0; i < r->nheaders; i++) { /* what is kept comes in the upstream's order */
        if (never_kept(r->headers[i].name, tokens, keep))
            continue;
        PT_ASSERT(j < s->r.nheaders && pt_str_eq(s->r.headers[j].name, r->headers[i].name) &&
                  pt_str_eq(s->r.headers[j].value, r->headers[i].value));
        j++;
    }
}

static void check_merge(pt_conn_t *c, const pt_cache_head_t *s, const pt_h1_resp_t *r304)
{
    char *out;
    size_t n = pt_cache_merge_head(c, s, r304, false, 1700000100, false, &out);
    PT_ASSERT(n > 0);
    static pt_h1_header_t mh[4 * MAX_HEADERS];
    pt_h1_resp_t m;
    PT_ASSERT(parse_whole(out, n, &m, mh, 4 * MAX_HEADERS) == (int)n);
    PT_ASSERT(m.status == s->r.status);
    const pt_h1_header_t *ch = pt_h1_resp_find(r304, PT_STR("connection"));
    pt_str_t tokens = ch ? pt_proxy_connection_names(ch->value) : PT_STR_NULL;
    for (size_t i = 0; i < r304->nheaders; i++) {
        const pt_h1_header_t *f = &r304->headers[i];
        if (pt_cache_update_skips(f->name) || never_kept(f->name, tokens, false))
            continue;
        bool found = false;
        for (size_t k = 0; k < m.nheaders && !found; k++)
            found = pt_str_eq(m.headers[k].name, f->name) && pt_str_eq(m.headers[k].value, f->value);
        PT_ASSERT(found);
    }
    for (size_t i = 0; i < s->r.nheaders; i++) {
        const pt_h1_header_t *f = &s->r.headers[i];
        if (pt_h1_resp_find(r304, f->name) && !pt_cache_update_skips(f->name) && !never_kept(f->name, tokens, false))
            continue; /* replaced */
        if (pt_str_caseeq_cs(f->name, "date") && !pt_h1_resp_find(r304, PT_STR("date")))
            continue; /* replaced by the 304's time */
        bool found = false;
        for (size_t k = 0; k < m.nheaders && !found; k++)
            found = pt_str_eq(m.headers[k].name, f->name) && pt_str_eq(m.headers[k].value, f->value);
        PT_ASSERT(found);
    }
}

static void check_range(pt_str_t value, pt_str_t if_range)
{
    pt_h1_header_t h[2] = {{PT_STR("Range"), value}, {PT_STR("If-Range"), if_range}};
    for (uint64_t total = 0; total < 2000; total = total * 3 + 1) {
        uint64_t first = 7, last = 7;
        int st = pt_cache_range(h, if_range.n ? 2 : 1, total, PT_STR("\"e\""), PT_STR("x"), &first, &last);
        PT_ASSERT(st == 200 || st == 206 || st == 416);
        if (st == 206)
            PT_ASSERT(first <= last && last < total);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    const char *z1 = memchr(p, '\0', size);
    const char *p2 = z1 ? z1 + 1 : end;
    const char *z2 = z1 ? memchr(p2, '\0', (size_t)(end - p2)) : NULL;
    const char *p3 = z2 ? z2 + 1 : end;
    size_t n1 = (size_t)((z1 ? z1 : end) - p), n2 = (size_t)((z2 ? z2 : end) - p2), n3 = (size_t)(end - p3);
    const char *comma = memchr(p3, '|', n3);
    check_range((pt_str_t){p3, comma ? (size_t)(comma - p3) : n3},
                comma ? (pt_str_t){comma + 1, (size_t)(end - comma - 1)} : PT_STR_NULL);

    static pt_h1_header_t rh[MAX_HEADERS], sh[2 * MAX_HEADERS], h304[MAX_HEADERS];
    pt_h1_resp_t r = {.headers = rh};
    pt_h1_limits_t lim = {8192, 65536, MAX_HEADERS};
    if (pt_h1_parse_response(p, n1, &lim, &r) <= 0 || r.status < 200)
        return 0;
    static pt_conn_t c;
    memset(&c, 0, sizeof(c));
    pt_arena_init(&c.arena, 4096, 0);
    pt_cache_head_t s;
    check_stored(&c, &r, p, size & 1, &s, sh, 2 * MAX_HEADERS);
    pt_h1_resp_t r304 = {.headers = h304};
    if (pt_h1_parse_response(p2, n2, &lim, &r304) > 0)
        check_merge(&c, &s, &r304);
    pt_arena_free(&c.arena);
    return 0;
}
