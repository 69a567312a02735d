/* libFuzzer target: the response cache's rules (cache_policy.h) and
 * HTTP-dates (httpdate.h) over hostile header fields.  The input is split
 * into lines, each "name: value" (value trimmed of OWS, as the parser
 * hands it over), and every line set is read both as a response's and as
 * a request's fields; a hash of the input picks the status, the rules and
 * the times, so that the seeds stay readable text.
 * Invariants checked: no crash; every parsed number is in its range (delta
 * seconds 0..2^31, dates 1970..9999, lifetimes and ages >= 0); any date
 * accepted formats to one that parses back to it, and an IMF-fixdate
 * formats back to itself; Vary names are sorted, unique, lower-case
 * tokens within the cap, and the same with a small cap or -1; Vary values
 * are within the cap, one line a name, the same with a small cap or -1;
 * decisions agree with the facts they rest on (nothing stored with
 * Vary: *, private or a non-final status; no revalidation without a
 * validator; nothing served stale with must-revalidate or no-cache). */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "portico/assert.h"
#include "portico/cache_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXH 64
#define ALL_CC ((1u << 10) - 1)
#define CAP 4096 /* PT_CACHE_VARIANT_MAX */

static size_t split(const char *p, size_t size, pt_h1_header_t *h)
{
    size_t n = 0;
    const char *end = p + size;
    while (p < end && n < MAXH) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        e = e ? e : end;
        const char *c = memchr(p, ':', (size_t)(e - p));
        if (c) {
            const char *v = c + 1, *ve = e;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            h[n++] = (pt_h1_header_t){{p, (size_t)(c - p)}, {v, (size_t)(ve - v)}};
        }
        p = e < end ? e + 1 : end;
    }
    return n;
}

static bool delta_ok(int64_t v)
{
    return v == PT_CC_ABSENT || (v >= 0 && v <= PT_CC_DELTA_MAX);
}

static void check_cc(const pt_cc_t *cc)
{
    PT_ASSERT((cc->flags & ~ALL_CC) == 0);
    PT_ASSERT(delta_ok(cc->max_age) && delta_ok(cc->s_maxage) && delta_ok(cc->max_stale) &&
              delta_ok(cc->min_fresh) && delta_ok(cc->stale_while_revalidate) && delta_ok(cc->stale_if_error));
    PT_ASSERT(cc->present || (cc->flags == 0 && cc->max_age == PT_CC_ABSENT && !cc->invalid_age));
}

static void check_date(pt_str_t v, int64_t now_s)
{
    int64_t ts[2] = {pt_http_date_parse(v), pt_http_date_parse_at(v, now_s)};
    for (int i = 0; i < 2; i++) {
        if (ts[i] < 0) {
            PT_ASSERT(ts[i] == -1);
            continue;
        }
        PT_ASSERT(ts[i] <= PT_HTTP_DATE_MAX);
        char out[29];
        pt_http_date_format(ts[i], out);
        PT_ASSERT(pt_http_date_parse_at((pt_str_t){out, 29}, now_s) == ts[i]);
        if (v.n == 29 && v.p[3] == ',')
            PT_ASSERT(memcmp(out, v.p, 29) == 0);
    }
}

static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Sorted, unique, lower-case tokens joined by ','. */
static void check_names(const char *s, long n)
{
    long prev = -1, prev_len = 0;
    for (long i = 0, start = 0; i <= n; i++) {
        if (i < n && s[i] != ',') {
            PT_ASSERT(is_tchar(s[i]));
            continue;
        }
        long len = i - start;
        PT_ASSERT(len > 0);
        if (prev >= 0) {
            long m = prev_len < len ? prev_len : len;
            int c = memcmp(s + prev, s + start, (size_t)m);
            PT_ASSERT(c < 0 || (c == 0 && prev_len < len));
        }
        prev = start, prev_len = len, start = i + 1;
    }
}

static void check_vary(const pt_h1_header_t *h, size_t n, const pt_cache_resp_info_t *ri, pt_str_t other)
{
    static char big[CAP], small[CAP], vbig[CAP], vsmall[CAP];
    long nb = pt_cache_vary_names(h, n, big, sizeof(big));
    PT_ASSERT(nb >= -1 && nb <= (long)sizeof(big));
    PT_ASSERT(!ri->vary_star || nb == -1);
    PT_ASSERT(ri->has_vary || ri->vary_star || nb <= 0);
    if (nb > 0)
        check_names(big, nb);
    for (size_t cap = 0; cap <= 16; cap += 7) {
        long ns = pt_cache_vary_names(h, n, small, cap);
        PT_ASSERT(ns >= -1 && ns <= (long)cap);
        PT_ASSERT(ns == -1 ? (nb == -1 || nb > (long)cap) : (ns == nb && memcmp(small, big, (size_t)ns) == 0));
    }
    pt_str_t names[2] = {{big, nb > 0 ? (size_t)nb : 0}, other};
    for (int k = 0; k < 2; k++) {
        long vb = pt_cache_vary_values(names[k], h, n, vbig, sizeof(vbig));
        PT_ASSERT(vb >= -1 && vb <= (long)sizeof(vbig));
        long vs = pt_cache_vary_values(names[k], h, n, vsmall, 24);
        PT_ASSERT(vs >= -1 && vs <= 24);
        PT_ASSERT(vs == -1 || (vs == vb && memcmp(vsmall, vbig, (size_t)vs) == 0));
        if (vb >= 0 && k == 0) {
            size_t lines = 0, members = nb > 0 ? 1 : 0;
            for (long i = 0; i < vb; i++)
                lines += vbig[i] == '\n';
            for (long i = 0; i < nb; i++)
                members += big[i] == ',';
            PT_ASSERT(lines == members);
        }
    }
}

/* The first line of that name's value, or an empty string. */
static pt_str_t value_of(const pt_h1_header_t *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (pt_str_caseeq_cs(h[i].name, name))
            return h[i].value;
    return PT_STR("");
}

static void check_storing(const pt_cache_req_info_t *qi, const pt_cache_resp_info_t *ri, const pt_cache_rules_t *rules,
                          int64_t now_ms, uint64_t hash)
{
    int why = pt_cache_storable(qi, ri, rules);
    PT_ASSERT(why >= PT_NS_NONE && why <= PT_NS_NOT_CACHEABLE && why != PT_NS_METHOD);
    PT_ASSERT(strcmp(pt_cache_nostore_name(why), "unknown") != 0);
    if (why == PT_NS_NONE)
        PT_ASSERT(!ri->vary_star && !(ri->cc.flags & PT_CC_PRIVATE) && ri->status >= 200 && ri->status <= 599 &&
                  ri->status != 206 && ri->status != 304 && !(qi->cc.flags & PT_CC_NO_STORE));
    bool heuristic;
    int64_t lifetime = pt_cache_lifetime_ms(ri, rules, now_ms, &heuristic);
    PT_ASSERT(lifetime >= 0 && lifetime <= PT_HTTP_DATE_MAX * 1000);
    PT_ASSERT(!heuristic || lifetime <= (rules->default_ttl_ms > 0 ? rules->default_ttl_ms : 86400000));
    PT_ASSERT(!heuristic || ri->has_etag || ri->has_last_modified);
    int64_t swr, sie;
    unsigned flags = pt_cache_resp_flags(ri, rules, heuristic, &swr, &sie);
    PT_ASSERT(swr >= 0 && sie >= 0);
    PT_ASSERT(!(flags & (PT_CM_NO_CACHE | PT_CM_MUST_REVALIDATE)) || (swr == 0 && sie == 0));
    int64_t date_s = ri->date_s, t0 = now_ms - (int64_t)(hash % 5000);
    for (int64_t later = 0; later <= 3; later++) {
        int64_t now = now_ms + later * (int64_t)(hash >> 20 & 0xffffff);
        int64_t age = pt_cache_current_age_ms(ri->age_s, date_s, t0, now_ms, now);
        PT_ASSERT(age >= 0);
        int use = pt_cache_use(qi, age, lifetime, flags, swr);
        PT_ASSERT(use >= PT_USE_FRESH && use <= PT_USE_MISS);
        if (use == PT_USE_REVALIDATE)
            PT_ASSERT(flags & (PT_CM_HAS_ETAG | PT_CM_HAS_LAST_MODIFIED));
        if (flags & PT_CM_NO_CACHE || qi->no_cache)
            PT_ASSERT(use == PT_USE_REVALIDATE || use == PT_USE_MISS);
        if (use == PT_USE_FRESH)
            PT_ASSERT(lifetime > age);
        if (age >= lifetime && (flags & PT_CM_MUST_REVALIDATE))
            PT_ASSERT(use == PT_USE_REVALIDATE || use == PT_USE_MISS);
        bool sie_ok = pt_cache_stale_if_error_ok(qi, age - lifetime, flags, sie);
        PT_ASSERT(!sie_ok || !(flags & (PT_CM_NO_CACHE | PT_CM_MUST_REVALIDATE)));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int statuses[] = {200, 203, 204, 206, 300, 301, 302, 304, 308, 404, 410, 500, 501, 599, 100, 299};
    pt_h1_header_t h[MAXH];
    size_t n = split((const char *)data, size, h);
    uint64_t hash = pt_hash_bytes(PT_HASH_INIT, data, size);
    int64_t now_ms = 1000000000000LL + (int64_t)(hash % 4000000000000ULL); /* 2001 .. 2128 */

    pt_cc_t cc;
    pt_cc_parse(&cc, h, n, PT_STR("cache-control"));
    check_cc(&cc);
    pt_cc_parse(&cc, h, n, PT_STR("cdn-cache-control"));
    check_cc(&cc);
    int64_t age = pt_cache_age_parse(h, n);
    PT_ASSERT(age == -1 || (age >= 0 && age <= PT_CC_DELTA_MAX));

    pt_cache_resp_info_t ri;
    pt_cache_resp_info(&ri, statuses[hash % 16], h, n);
    check_cc(&ri.cc);
    check_cc(&ri.cc_plain);
    PT_ASSERT(ri.date_s >= -1 && ri.date_s <= PT_HTTP_DATE_MAX && ri.last_modified_s >= -1);
    PT_ASSERT(ri.expires_s >= -2 && ri.expires_s <= PT_HTTP_DATE_MAX);
    PT_ASSERT(ri.age_s >= 0 && ri.age_s <= PT_CC_DELTA_MAX);
    PT_ASSERT(ri.cdn || (ri.cc.flags == ri.cc_plain.flags && ri.cc.max_age == ri.cc_plain.max_age));
    PT_ASSERT(!ri.vary_star || ri.has_vary);
    pt_cache_req_info_t qi;
    pt_cache_req_info(&qi, h, n);
    check_cc(&qi.cc);
    PT_ASSERT(!(qi.cc.flags & PT_CC_NO_CACHE) || qi.no_cache);

    pt_cache_rules_t rules = {.store_set_cookie = hash >> 8 & 1, .cache_authorized = hash >> 9 & 1,
                              .default_ttl_ms = (hash >> 10 & 1) ? (int64_t)(hash >> 40) : 0,
                              .swr_ms = (hash >> 11 & 1) ? 30000 : 0, .sie_ms = (hash >> 12 & 1) ? 60000 : 0};
    check_storing(&qi, &ri, &rules, now_ms, hash);

    pt_str_t etag = value_of(h, n, "etag"), lm = value_of(h, n, "last-modified");
    if (pt_cache_not_modified(h, n, etag, lm))
        PT_ASSERT(qi.conditional);
    for (size_t i = 0; i < n; i++) {
        check_date(h[i].value, now_ms / 1000);
        pt_cache_update_skips(h[i].name);
        pt_cache_method_invalidates(h[i].value);
        bool strong = h[i].value.n && !(h[i].value.n >= 2 && h[i].value.p[0] == 'W' && h[i].value.p[1] == '/');
        PT_ASSERT(!strong || pt_cache_304_selects(h[i].value, PT_STR(""), h[i].value, PT_STR("")));
        (void)pt_cache_304_selects(etag, lm, h[i].value, h[i].name);
    }
    PT_ASSERT(!pt_cache_method_invalidates(PT_STR("GET")));
    check_vary(h, n, &ri, n ? h[0].value : PT_STR(""));
    return 0;
}
