/* The response cache as the gateway uses it: the caches made ready in the
 * master, the stored form of a response, and answers made from it.
 *
 * A stored object is the head a client may be given ("HTTP/1.1 200 OK",
 * the upstream's fields less what never crosses a cache, a Date), then
 * the body as the client got it (decoded from chunks).  A hit parses that
 * head again and writes it through the one response path (response.c),
 * so the filters' edits, the framing and the connection fields are made
 * as for any other answer; its Age is computed then. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "portico/cache.h"
#include "portico/cache_policy.h"
#include "portico/cache_store.h"
#include "portico/conn.h"
#include "portico/cache_disk.h"
#include "portico/filter.h"
#include "portico/http.h"
#include "portico/proxy.h"
#include "portico/request.h"
#include "portico/response.h"
#include "portico/worker.h"

int pt_cache_prepare(const pt_config_t *c)
{
    size_t n = c->caches.n;
    const char **names = calloc(n ? n : 1, sizeof(*names));
    size_t *memory = calloc(n ? n : 1, sizeof(*memory));
    int rc = -1;
    if (names && memory) {
        for (size_t i = 0; i < n; i++) {
            const pt_cache_conf_t *cc = PT_LIST_AT(c->caches, pt_cache_conf_t, i);
            names[i] = cc->name;
            memory[i] = (size_t)cc->memory;
        }
        rc = pt_caches_prepare(names, memory, n);
        if (rc == 0)
            rc = pt_cdisks_prepare(c);
    } else {
        errno = ENOMEM;
    }
    free(names);
    free(memory);
    return rc;
}

/* A field that a cache never hands on as stored: what proxies drop
 * (hop-by-hop, the names Connection lists), the framing (made for each
 * answer), Age (computed for each hit), CDN-Cache-Control (for this cache
 * only, RFC 9213), and Set-Cookie unless the operator keeps it. */
static bool not_stored(pt_str_t name, pt_str_t tokens, bool keep_cookies)
{
    return pt_proxy_drop_response_header(name, tokens, false) || pt_str_caseeq_cs(name, "content-length") ||
           pt_str_caseeq_cs(name, "age") || pt_str_caseeq_cs(name, "cdn-cache-control") ||
           (!keep_cookies && pt_str_caseeq_cs(name, "set-cookie"));
}

static char *put(char *o, pt_str_t s)
{
    memcpy(o, s.p, s.n);
    return o + s.n;
}

static char *put_field(char *p, const pt_h1_header_t *f)
{
    p = put(p, f->name);
    p = put(p, PT_STR(": "));
    p = put(p, f->value);
    return put(p, PT_STR("\r\n"));
}

/* "Date: <IMF-fixdate of t>\r\n" */
static char *put_date(char *p, int64_t t)
{
    char d[29];
    pt_http_date_format(t, d);
    p = put(p, PT_STR("Date: "));
    p = put(p, (pt_str_t){d, 29});
    return put(p, PT_STR("\r\n"));
}

size_t pt_cache_stored_head(pt_conn_t *c, const pt_h1_resp_t *r, const char *base, bool keep_cookies, int64_t date_s,
                            char **out)
{
    const pt_h1_header_t *ch = pt_h1_resp_find(r, PT_STR("connection"));
    pt_str_t tokens = ch ? pt_proxy_connection_names(ch->value) : PT_STR_NULL;
    const char *eol = base;
    while (eol < base + r->head_len && *eol != '\r' && *eol != '\n')
        eol++;
    pt_str_t reason = eol - base > 13 ? (pt_str_t){base + 13, (size_t)(eol - base - 13)} : PT_STR_NULL;
    if (!reason.n)
        reason = pt_str_from(pt_http_reason(r->status));
    size_t cap = r->head_len + 4 * r->nheaders + reason.n + 96;
    char *o = pt_arena_alloc(&c->arena, cap), *p = o;
    if (!o)
        return 0;
    p += snprintf(p, 32, "HTTP/1.1 %03d ", r->status);
    p = put(p, reason);
    p = put(p, PT_STR("\r\n"));
    bool date = false;
    for (size_t i = 0; i < r->nheaders; i++) {
        const pt_h1_header_t *f = &r->headers[i];
        if (not_stored(f->name, tokens, keep_cookies))
            continue;
        date |= pt_str_caseeq_cs(f->name, "date");
        p = put_field(p, f);
    }
    if (!date) /* the Date the client got from us (response.c adds one): the same on every hit */
        p = put_date(p, date_s);
    p = put(p, PT_STR("\r\n"));
    *out = o;
    return (size_t)(p - o);
}

bool pt_cache_load_head(pt_conn_t *c, pt_cache_t *ch, const pt_cache_hit_t *hit, pt_cache_head_t *h)
{
    size_t n = hit->meta.head_len;
    char *b = pt_arena_alloc(&c->arena, n + 1);
    size_t maxh = 2 + n / 4;
    pt_h1_header_t *fields = pt_arena_alloc(&c->arena, maxh * sizeof(*fields));
    if (!b || !fields || !pt_cache_read(ch, hit, 0, b, n))
        return false;
    pt_h1_limits_t lim = {n + 1, n + 1, maxh};
    *h = (pt_cache_head_t){.r = {.headers = fields}, .base = b};
    if (pt_h1_parse_response(b, n, &lim, &h->r) != (int)n)
        return false; /* never: we wrote it */
    const pt_h1_header_t *e = pt_h1_resp_find(&h->r, PT_STR("etag"));
    const pt_h1_header_t *lm = pt_h1_resp_find(&h->r, PT_STR("last-modified"));
    h->etag = e ? e->value : PT_STR_NULL;
    h->last_modified = lm ? lm->value : PT_STR_NULL;
    return true;
}

static bool digits(pt_str_t s, uint64_t *v)
{
    if (!s.n || s.n > 18)
        return false;
    *v = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return false;
        *v = *v * 10 + (uint64_t)(s.p[i] - '0');
    }
    return true;
}

int pt_cache_range(const pt_h1_header_t *reqh, size_t n, uint64_t total, pt_str_t etag, pt_str_t last_modified,
                   uint64_t *first, uint64_t *last)
{
    const pt_h1_header_t *range = NULL, *if_range = NULL;
    int nranges = 0;
    for (size_t i = 0; i < n; i++) {
        if (pt_str_caseeq_cs(reqh[i].name, "range")) {
            range = &reqh[i];
            nranges++;
        } else if (pt_str_caseeq_cs(reqh[i].name, "if-range")) {
            if_range = &reqh[i];
        }
    }
    if (nranges != 1) /* none, or two Range fields: the whole */
        return 200;
    if (if_range) {
        pt_str_t v = if_range->value;
        bool tag = v.n && (v.p[0] == '"' || (v.n > 2 && v.p[0] == 'W' && v.p[1] == '/'));
        if (tag ? (v.p[0] == 'W' || !pt_str_eq(v, etag)) : !pt_str_eq(v, last_modified))
            return 200; /* changed since the client's copy: the whole thing */
    }
    pt_str_t v = range->value;
    if (v.n < 7 || strncasecmp(v.p, "bytes=", 6) != 0 || memchr(v.p, ',', v.n))
        return 200;
    pt_str_t spec = {v.p + 6, v.n - 6};
    const char *dash = memchr(spec.p, '-', spec.n);
    if (!dash)
        return 200;
    pt_str_t a = {spec.p, (size_t)(dash - spec.p)}, b = {dash + 1, spec.n - a.n - 1};
    uint64_t x, y;
    if (!a.n) { /* the last y bytes */
        if (!digits(b, &y))
            return 200;
        if (!y || !total)
            return 416;
        *first = y >= total ? 0 : total - y;
        *last = total - 1;
        return 206;
    }
    if (!digits(a, &x) || (b.n && (!digits(b, &y) || y < x)))
        return 200;
    if (x >= total)
        return 416;
    *first = x;
    *last = b.n && y < total ? y : total - 1;
    return 206;
}

/* Takes back an answer given up halfway: what it queued, and the
 * filters' response edits (their hooks run again for the next answer). */
static void give_up(pt_conn_t *c, size_t pending, size_t nresp)
{
    pt_outq_truncate(&c->out, pending);
    if (c->req->fx) {
        c->req->fx->nresp = nresp;
        c->req->fx->responded = c->req->fx->resp_started = false;
    }
}

/* Bodies from this size on are sent from the cache's blocks, pinned; a
 * smaller one costs less to copy than to pin and unpin. */
#define PIN_MIN (16 * 1024)

/* Queues bytes [off, off + len) of hit's object: pinned, as slices of
 * spans of its blocks (the queue unpins it once they are sent), or else
 * copied whole.  False when the object went away before it was copied. */
static bool queue_body(pt_conn_t *c, pt_cache_t *ch, const pt_cache_hit_t *hit, pt_cache_pin_t *pin, uint64_t off,
                       uint64_t len)
{
    if (pin) {
        if (pt_cache_pin_queue(pin, &c->out, off, len))
            return true;
        pt_cache_unpin(pin); /* the queue is full: copied */
    }
    char *dst = pt_outq_reserve(&c->out, len);
    if (!dst || !pt_cache_read(ch, hit, off, dst, len))
        return false;
    pt_outq_commit(&c->out, len);
    return true;
}

bool pt_cache_answer(pt_conn_t *c, pt_cache_t *ch, const pt_cache_hit_t *hit, const pt_cache_head_t *h, int status,
                     int64_t age_s, bool head_only, const pt_h1_header_t *reqh, size_t nreqh)
{
    pt_req_t *r = c->req;
    uint64_t total = hit->meta.body_len, first = 0, last = total ? total - 1 : 0;
    if (status == 200 && total && !head_only)
        status = pt_cache_range(reqh, nreqh, total, h->etag, h->last_modified, &first, &last);
    uint64_t len = status == 206 ? last - first + 1 : status == 416 ? 0 : total;
    bool body = !head_only && status != 304 && len;
    size_t start = c->out.pending, nresp = r->fx ? r->fx->nresp : 0;
    pt_cache_pin_t *pin = body && len >= PIN_MIN ? pt_cache_pin(ch, hit, c->w->column) : NULL;
    /* room for the head and a copied body at once: the body is copied
     * once, straight from the store into the queue, and the buffer grows
     * once */
    if (!pt_outq_reserve(&c->out, hit->meta.head_len + 1024 + (body && !pin ? len : 0))) {
        if (pin)
            pt_cache_unpin(pin);
        return false;
    }
    if (r->fx)
        pt_filters_response(c, r->fx, status, false);
    char extra[128] = "Age: ";
    int el = 5 + (int)pt_fmt_u64(extra + 5, age_s > 0 ? (unsigned long long)age_s : 0, 0); /* no printf per hit */
    extra[el++] = '\r';
    extra[el++] = '\n';
    if (status == 206)
        el += snprintf(extra + el, sizeof(extra) - (size_t)el, "Content-Range: bytes %llu-%llu/%llu\r\n",
                       (unsigned long long)first, (unsigned long long)last, (unsigned long long)total);
    else if (status == 416)
        el += snprintf(extra + el, sizeof(extra) - (size_t)el, "Content-Range: bytes */%llu\r\n",
                       (unsigned long long)total);
    const char *eol = h->base;
    while (*eol != '\r' && *eol != '\n')
        eol++;
    int minor = r->ent.protocol.n == 8 && r->ent.protocol.p[7] == '0' ? 0 : 1;
    pt_resp_head_t rh = {
        .status = status,
        .reason = status != (int)hit->meta.status ? PT_STR_NULL : (pt_str_t){h->base + 13, (size_t)(eol - h->base - 13)},
        .fields = h->r.headers,
        .nfields = h->r.nheaders,
        .extra = {extra, (size_t)el},
        .date = false,
        .content_length = status == 304 || status == 204 ? -1 : (int64_t)len,
        .close = c->closing,
        .keep_alive_1_0 = !c->closing && minor == 0,
        .fields_size = hit->meta.head_len,
        .log = &r->ent,
    };
    if (!pt_resp_write_head(&c->out, &rh, r->fx, NULL)) {
        if (pin)
            pt_cache_unpin(pin);
        give_up(c, start, nresp);
        return false;
    }
    size_t head = c->out.pending - start;
    if (body && !queue_body(c, ch, hit, pin, hit->meta.head_len + first, len)) {
        give_up(c, start, nresp); /* dropped while we copied: answered as a miss */
        return false;
    }
    r->ent.status = status;
    r->ent.bytes_out += head + (body ? len : 0); /* a sliced body is not all queued yet */
    return true;
}

size_t pt_cache_merge_head(pt_conn_t *c, const pt_cache_head_t *stored, const pt_h1_resp_t *r304, bool keep_cookies,
                           int64_t now_s, bool add_cookies, char **out)
{
    const pt_h1_resp_t *s = &stored->r;
    size_t cap = s->head_len + r304->head_len + 4 * (s->nheaders + r304->nheaders) + 64;
    char *o = pt_arena_alloc(&c->arena, cap), *p = o;
    if (!o)
        return 0;
    const char *eol = stored->base;
    while (*eol != '\r' && *eol != '\n')
        eol++;
    p = put(p, (pt_str_t){stored->base, (size_t)(eol - stored->base)});
    p = put(p, PT_STR("\r\n"));
    const pt_h1_header_t *ch = pt_h1_resp_find(r304, PT_STR("connection"));
    pt_str_t tokens = ch ? pt_proxy_connection_names(ch->value) : PT_STR_NULL;
    bool dated = pt_h1_resp_find(r304, PT_STR("date")) != NULL;
    for (size_t i = 0; i < s->nheaders; i++) { /* the stored fields the 304 does not replace */
        const pt_h1_header_t *f = &s->headers[i];
        const pt_h1_header_t *nf = pt_h1_resp_find(r304, f->name);
        if (nf && !pt_cache_update_skips(f->name) && !not_stored(f->name, tokens, keep_cookies))
            continue;
        if (!dated && pt_str_caseeq_cs(f->name, "date"))
            continue; /* a 304 without Date was generated when it came (RFC 9110 6.6.1) */
        p = put_field(p, f);
    }
    for (size_t i = 0; i < r304->nheaders; i++) { /* then the 304's, in its order */
        const pt_h1_header_t *f = &r304->headers[i];
        bool cookie = add_cookies && pt_str_caseeq_cs(f->name, "set-cookie");
        if (!cookie && (pt_cache_update_skips(f->name) || not_stored(f->name, tokens, keep_cookies)))
            continue;
        p = put_field(p, f);
    }
    if (!dated)
        p = put_date(p, now_s);
    p = put(p, PT_STR("\r\n"));
    *out = o;
    return (size_t)(p - o);
}
