/* Matching a stored response against what comes later: the request's
 * variant under the response's Vary (RFC 9111 §4.1), a client's
 * conditional answered from the cache (RFC 9110 §13.1.1, §13.1.3), a 304
 * picking the stored response it updates and the fields it may update
 * (RFC 9111 §3.2, §4.3.4), and the methods that invalidate (§4.4).
 * Like policy.c: pure, and when a field is malformed the answer is the one
 * that sends the request on (no match, no 304). */
#include "config.h"

#include <string.h>

#include "portico/cache_policy.h"
#include "portico/http.h"

/* ---- Vary (§4.1) ---- */

static bool is_token(pt_str_t s)
{
    for (size_t i = 0; i < s.n; i++)
        if (!pt_http_is_tchar((unsigned char)s.p[i]))
            return false;
    return s.n > 0;
}

/* Compares name (any case) with a lower-case stored one, bytewise. */
static int cmp_lower(pt_str_t name, const char *stored, size_t n)
{
    size_t m = name.n < n ? name.n : n;
    for (size_t i = 0; i < m; i++) {
        unsigned char a = (unsigned char)pt_lower(name.p[i]), b = (unsigned char)stored[i];
        if (a != b)
            return a < b ? -1 : 1;
    }
    return name.n < n ? -1 : name.n > n ? 1 : 0;
}

/* Inserts name, lower-cased, into the sorted comma-joined list out[0..*len)
 * unless it is there: false when it does not fit in cap. */
static bool insert_name(char *out, size_t cap, size_t *len, pt_str_t name)
{
    size_t pos = 0;
    while (pos < *len) {
        const char *e = memchr(out + pos, ',', *len - pos);
        size_t n = e ? (size_t)(e - (out + pos)) : *len - pos;
        int c = cmp_lower(name, out + pos, n);
        if (c == 0)
            return true;
        if (c < 0)
            break;
        pos += n + 1;
    }
    size_t need = name.n + (*len ? 1 : 0);
    if (need > cap - *len)
        return false;
    size_t at = 0;
    if (pos < *len) { /* before the member at pos: "name," */
        memmove(out + pos + need, out + pos, *len - pos);
        out[pos + name.n] = ',';
        at = pos;
    } else if (*len) { /* after the last one: ",name" */
        out[*len] = ',';
        at = *len + 1;
    }
    for (size_t i = 0; i < name.n; i++)
        out[at + i] = pt_lower(name.p[i]);
    *len += need;
    return true;
}

/* A member that is not a field name ("Accept-Encoding;", a quoted name, a
 * control byte) is -1 like "*": no request can carry such a field, so
 * taken literally the response would vary on nothing, and be served to
 * every client whatever the origin meant. */
long pt_cache_vary_names(const pt_h1_header_t *h, size_t n, char *out, size_t cap)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (!PT_STR_IEQ(h[i].name, "vary"))
            continue;
        const char *p = h[i].value.p;
        pt_str_t t;
        while (pt_str_next_token(&p, h[i].value.p + h[i].value.n, &t))
            if (!is_token(t) || (t.n == 1 && t.p[0] == '*') || !insert_name(out, cap, &len, t))
                return -1;
    }
    return (long)len;
}

/* An output buffer that remembers running out. */
typedef struct out {
    char *p;
    size_t len, cap;
    bool full;
} out_t;

static void put(out_t *o, char c)
{
    if (o->len < o->cap)
        o->p[o->len++] = c;
    else
        o->full = true;
}

static void put_str(out_t *o, pt_str_t s, bool lower)
{
    for (size_t i = 0; i < s.n; i++)
        put(o, lower ? pt_lower(s.p[i]) : s.p[i]);
}

/* Fields whose values compare without case (outside quoted strings):
 * content codings, media types and their parameter names, charsets,
 * language tags (RFC 9110 §8.4.1, §8.3.1, §12.5.2, §8.5.1).  A parameter
 * value in a quoted string keeps its case. */
static bool folds_case(pt_str_t name)
{
    return PT_STR_IEQ(name, "accept-encoding") || PT_STR_IEQ(name, "accept") || PT_STR_IEQ(name, "accept-charset") ||
           PT_STR_IEQ(name, "accept-language");
}

/* Appends the members of one field line: each trimmed, runs of OWS made
 * one space, empty members dropped, joined by ',' (also to the members of
 * the lines before: *any).  A quoted string is copied as it is, commas
 * and spaces included. */
static void put_members(out_t *o, pt_str_t v, bool fold, bool *any)
{
    size_t i = 0;
    while (i < v.n) {
        while (i < v.n && (v.p[i] == ' ' || v.p[i] == '\t' || v.p[i] == ','))
            i++;
        if (i == v.n)
            break;
        if (*any)
            put(o, ',');
        *any = true;
        bool space = false;
        while (i < v.n && v.p[i] != ',') {
            char c = v.p[i++];
            if (c == ' ' || c == '\t') {
                space = true;
                continue;
            }
            if (space)
                put(o, ' ');
            space = false;
            if (c != '"') {
                put(o, fold ? pt_lower(c) : c);
                continue;
            }
            put(o, c);
            while (i < v.n) {
                c = v.p[i++];
                put(o, c);
                if (c == '\\' && i < v.n)
                    put(o, v.p[i++]);
                else if (c == '"')
                    break;
            }
        }
    }
}

long pt_cache_vary_values(pt_str_t names, const pt_h1_header_t *h, size_t n, char *out, size_t cap)
{
    out_t o = {out, 0, cap, false};
    const char *p = names.p;
    pt_str_t name;
    while (pt_str_next_token(&p, names.p + names.n, &name)) {
        put_str(&o, name, true);
        bool found = false, any = false, fold = folds_case(name);
        for (size_t i = 0; i < n; i++) {
            if (!pt_str_caseeq(h[i].name, name))
                continue;
            if (!found)
                put(&o, ':');
            found = true;
            put_members(&o, h[i].value, fold, &any);
        }
        put(&o, '\n');
        if (o.full)
            return -1;
    }
    return (long)o.len;
}

/* ---- updating a stored response (§3.2, §4.3.4) ---- */

/* Kept from the stored response whatever a 304 or HEAD says: the framing
 * (Content-Length, Transfer-Encoding, Content-Range: they describe the
 * bytes we hold, not the 304's), the hop-by-hop fields (§3.1: never
 * stored), Content-Encoding (§3.2 lets a cache keep the fields its stored
 * bytes depend on: ours are in the stored coding; Content-Type, which
 * describes no transformation of ours, is updated), and Set-Cookie: a
 * cookie given to the one client whose request revalidated must not be
 * handed to every later one (we do not store Set-Cookie by default,
 * §3.2 would add it). */
bool pt_cache_update_skips(pt_str_t name)
{
    static const char *const skip[] = {
        "content-length", "transfer-encoding", "content-range", "content-encoding", "connection", "keep-alive",
        "proxy-connection", "te", "trailer", "upgrade", "set-cookie",
    };
    for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
        if (pt_str_caseeq_cs(name, skip[i]))
            return true;
    return false;
}

/* An entity-tag's weakness and opaque-tag (the quoted part; a tag without
 * quotes, which some servers send, is taken as it is). */
static pt_str_t opaque_tag(pt_str_t e, bool *weak)
{
    *weak = e.n >= 2 && e.p[0] == 'W' && e.p[1] == '/';
    return *weak ? (pt_str_t){e.p + 2, e.n - 2} : e;
}

/* RFC 9110 §8.8.3.2: strong when both are strong and equal; weak when the
 * opaque-tags are equal. */
static bool etag_match(pt_str_t a, pt_str_t b, bool strong)
{
    bool wa, wb;
    pt_str_t oa = opaque_tag(a, &wa), ob = opaque_tag(b, &wb);
    if (strong && (wa || wb))
        return false;
    return oa.n > 0 && pt_str_eq(oa, ob);
}

/* Two Last-Modified values say the same date: compared as dates when both
 * are, else byte for byte. */
static bool same_date(pt_str_t a, pt_str_t b)
{
    int64_t ta = pt_http_date_parse(a), tb = pt_http_date_parse(b);
    return ta >= 0 && tb >= 0 ? ta == tb : pt_str_eq(a, b);
}

/* §4.3.4: a strong ETag in the 304 selects a stored response with that
 * strong ETag; a weak one, a stored response whose ETag matches it
 * weakly; without ETag, a Last-Modified selects one with the same date;
 * a 304 with neither selects only a stored response that has neither. */
bool pt_cache_304_selects(pt_str_t etag304, pt_str_t lm304, pt_str_t etag_stored, pt_str_t lm_stored)
{
    if (etag304.n) {
        bool weak;
        opaque_tag(etag304, &weak);
        return etag_stored.n && etag_match(etag304, etag_stored, !weak);
    }
    if (lm304.n)
        return lm_stored.n && same_date(lm304, lm_stored);
    return etag_stored.n == 0 && lm_stored.n == 0;
}

/* ---- conditional requests (RFC 9110 §13.1) ---- */

/* Does one If-None-Match line name etag (weak comparison)?  "*" alone
 * matches any stored response.  The list is read as entity-tags
 * ([W/]"..." separated by commas, which may appear inside the quotes);
 * it stops at the first member that is not one: no match. */
static bool inm_matches(pt_str_t v, pt_str_t etag)
{
    if (v.n == 1 && v.p[0] == '*')
        return true;
    const char *p = v.p, *end = v.p + v.n;
    while (p < end) {
        if (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
            continue;
        }
        const char *s = p;
        if (end - p >= 2 && p[0] == 'W' && p[1] == '/')
            p += 2;
        if (p == end || *p != '"')
            return false;
        const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));
        if (!q)
            return false;
        p = q + 1;
        if (etag.n && etag_match((pt_str_t){s, (size_t)(p - s)}, etag, false))
            return true;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p < end && *p != ',')
            return false;
    }
    return false;
}

/* If-None-Match first (§13.1.2; when present, If-Modified-Since is
 * ignored: §13.1.3); If-Modified-Since only with one line holding a valid
 * date, and a stored Last-Modified (not Date: our rule) not after it. */
bool pt_cache_not_modified(const pt_h1_header_t *req, size_t nreq, pt_str_t etag, pt_str_t last_modified)
{
    bool inm = false;
    const pt_h1_header_t *ims = NULL;
    size_t nims = 0;
    for (size_t i = 0; i < nreq; i++) {
        if (PT_STR_IEQ(req[i].name, "if-none-match")) {
            inm = true;
            if (inm_matches(req[i].value, etag))
                return true;
        } else if (PT_STR_IEQ(req[i].name, "if-modified-since")) {
            ims = &req[i];
            nims++;
        }
    }
    if (inm || nims != 1 || last_modified.n == 0)
        return false;
    int64_t since = pt_http_date_parse(ims->value), lm = pt_http_date_parse(last_modified);
    return since >= 0 && lm >= 0 && lm <= since;
}

/* ---- invalidation (§4.4) ---- */

/* Method tokens are case-sensitive (RFC 9110 §9.1): "get" is some other,
 * unknown method, and unknown methods are not safe. */
bool pt_cache_method_invalidates(pt_str_t method)
{
    return !(pt_http_method(method) & (PT_M_GET | PT_M_HEAD | PT_M_OPTIONS | PT_M_TRACE));
}
