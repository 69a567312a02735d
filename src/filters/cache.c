/* cache: answers GET and HEAD requests from a shared response cache
 * (caches:), by the shared-cache rules of RFC 9111 (cache_policy.h), and
 * stores what the upstream answers while its client gets it.
 *
 * A request's key is a template (by default the scheme, host, path and
 * query); the response's Vary adds the normalised values of the fields it
 * names.  A fresh stored response is answered at once with its Age (304
 * when the client's own conditional matches); a stale one, or one that
 * must always be validated, goes upstream with our validators, and a 304
 * refreshes the stored head (§4.3.4) and answers from it.  A miss takes
 * the key's fetch lock: requests for the same key in any worker wait for
 * that one fetch (polling the store every few milliseconds, at most
 * lock_timeout) instead of all going upstream.  Unsafe methods that
 * succeed invalidate their target (§4.4).  Cache-Status (RFC 9211) says
 * what happened. */
#include "config.h"

#include <event2/event.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "portico/cache.h"
#include "portico/cache_disk.h"
#include "portico/cache_policy.h"
#include "portico/conf.h"
#include "portico/conn.h"
#include "portico/err-t.h"
#include "portico/filter.h"
#include "portico/http.h"
#include "portico/log.h"
#include "portico/request.h"
#include "portico/schema.h"
#include "portico/worker.h"

#define DEFAULT_KEY "${scheme}://${host}${path}?${query}"
#define DISK_WAIT_MS 1000  /* the longest a miss waits for a load from the disk tier */
#define DISK_POLL_MS 1      /* ... and one waiting for a load (a file read takes about that) */
#define POLL_MS 5          /* how often a request waiting on another's fetch looks again */
#define PASS_MS 10000      /* a key whose response was not storable: requests go upstream at once for this long */

typedef struct conf {
    const pt_node_t *node;
    char *cache;
    pt_strlist_t methods;
    char *key;
    bool store_set_cookie, cache_authorized, status_header;
    int64_t default_ttl, stale_while_revalidate, stale_if_error, lock_timeout;
    /* compiled */
    pt_tpl_t *key_tpl;
    unsigned mask;
    bool default_key;
    pt_cache_rules_t rules;
} conf_t;

typedef struct state {
    pt_resp_tap_t tap; /* first: the proxy's view of it */
    pt_conn_t *c;
    const conf_t *conf;
    pt_cache_t *ch;
    pt_str_t key, host; /* host: the request's, for Location's invalidation */
    pt_cache_req_info_t qi;
    int64_t req_ms;
    pt_cache_hit_t hit;      /* the stored response found (being revalidated, or stale) */
    pt_cache_head_t head;
    bool found, head_loaded;
    bool revalidating, locked, invalidate, head_req, no_store;
    bool detached; /* a stale-while-revalidate refresh: the client was answered already */
    pt_cache_writer_t w;
    pt_cache_meta_t meta;
    const pt_h1_header_t *fields; /* the request's fields, kept for the Vary of the response */
    size_t nfields;
    /* Cache-Status */
    const char *fwd;    /* NULL: a hit */
    const char *detail;
    int fwd_status;
    bool stored, collapsed;
    const char *verdict; /* the access log's $cache_status when the client got a stored response */
    int64_t ttl_s;
    bool ttl_known;
    /* waiting on another's fetch */
    struct event timer;
    bool armed, waited;
    int64_t wait_until_ms;
    /* waiting on a load from the disk tier */
    bool disk_asked;
    uint64_t disk_ticket;
    int64_t disk_until_ms;
} state_t;

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- configuration ---- */

static int check(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    conf_t *c = obj;
    int rc = 0;
    for (size_t i = 0; i < c->methods.n; i++) {
        const char *m = c->methods.v[i] ? c->methods.v[i] : "";
        if (strcmp(m, "GET") == 0)
            c->mask |= PT_M_GET;
        else if (strcmp(m, "HEAD") == 0)
            c->mask |= PT_M_HEAD;
        else {
            pt_conf_error_key(cc, n, "methods", "methods[%zu]: \"%s\": only GET and HEAD are cached (a HEAD is "
                                                "answered from a stored GET)", i, m);
            rc = -1;
        }
    }
    if (!c->methods.n)
        c->mask = PT_M_GET | PT_M_HEAD;
    c->default_key = strcmp(c->key, DEFAULT_KEY) == 0;
    const pt_node_t *kn = pt_node_get(n, "key") ? pt_node_get(n, "key") : n;
    c->key_tpl = pt_tpl_compile(cc, kn, c->key, PT_TPL_FIELD);
    if (c->key_tpl && !pt_tpl_has_vars(c->key_tpl)) {
        pt_conf_error(cc, kn, "a key without variables would give every request the same stored response "
                              "(the default is \"%s\")", DEFAULT_KEY);
        return -1;
    }
    c->rules = (pt_cache_rules_t){c->store_set_cookie, c->cache_authorized, c->default_ttl, c->stale_while_revalidate,
                                  c->stale_if_error};
    return c->key_tpl ? rc : -1;
}

/* The cache it names must be in caches:; with one cache, naming it is optional. */
static int link_conf(pt_conf_ctx_t *cc, const pt_config_t *c, void *vconf, const char *scope)
{
    conf_t *conf = vconf;
    if (!conf->cache && c->caches.n == 1)
        conf->cache = PT_LIST_AT(c->caches, pt_cache_conf_t, 0)->name;
    for (size_t i = 0; conf->cache && i < c->caches.n; i++)
        if (strcmp(PT_LIST_AT(c->caches, pt_cache_conf_t, i)->name, conf->cache) == 0)
            return 0;
    if (!c->caches.n)
        pt_conf_error(cc, conf->node, "%s: the cache filter needs a cache: add one under caches: (name, memory)", scope);
    else if (!conf->cache)
        pt_conf_error(cc, conf->node, "%s: name the cache to use (cache: NAME): there are %zu", scope, c->caches.n);
    else
        pt_conf_error_key(cc, conf->node, "cache", "%s: no cache named \"%s\" under caches:", scope, conf->cache);
    return -1;
}

#define K(f) offsetof(conf_t, f)
static const pt_directive_t keys[] = {
    {"cache", PT_T_STR, K(cache), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, "name",
     "The cache (under caches:) to use; may be left out when there is only one."},
    {"methods", PT_T_LIST, K(methods), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem, NULL, NULL, 0, "list of methods",
     "The methods answered from the cache: GET, HEAD or both (the default). A HEAD is answered from a stored GET "
     "and never stored itself. Other methods go upstream; when one is unsafe (anything but GET, HEAD, OPTIONS "
     "and TRACE) and its response is not an error, the stored responses of its target are dropped."},
    {"key", PT_T_STR, K(key), DEFAULT_KEY, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, "template",
     "What identifies a stored response, over the same variables as the limits' keys and ${scheme} and ${query}. "
     "In the default key the host is in lower case and without the scheme's default port. A response's Vary "
     "adds the request fields it names. A key longer than 4096 bytes is not cached; a key without variables is "
     "refused."},
    {"store_set_cookie", PT_T_BOOL, K(store_set_cookie), "false", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Store responses that carry Set-Cookie (the cookie is then stored and sent with every hit). By default they "
     "are passed on and not stored."},
    {"cache_authorized", PT_T_BOOL, K(cache_authorized), "false", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Store responses to requests with Authorization. By default only those whose response says public, "
     "s-maxage or must-revalidate are, as RFC 9111 3.5 allows a shared cache."},
    {"default_ttl", PT_T_DURATION, K(default_ttl), "0s", 0, 365LL * 86400000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The freshness given to a response without explicit freshness (max-age, s-maxage, Expires) where RFC 9111 "
     "allows a heuristic: a status cacheable by default and a validator (ETag or Last-Modified). 0s: 10% of the "
     "time since Last-Modified, at most a day. A response with neither freshness nor a validator is not stored."},
    {"stale_while_revalidate", PT_T_DURATION, K(stale_while_revalidate), "0s", 0, 365LL * 86400000, NULL, NULL,
     NULL, NULL, NULL, 0, NULL,
     "How long past its freshness a stored response may still be served while it is refreshed, beyond what its "
     "own stale-while-revalidate grants. The request that gets such a response also refreshes it (once for "
     "all workers): it goes on upstream for the cache alone, and its connection's next request waits for that, "
     "as with nginx's background update. A HEAD, or a request with a body, revalidates first instead."},
    {"stale_if_error", PT_T_DURATION, K(stale_if_error), "0s", 0, 365LL * 86400000, NULL, NULL, NULL, NULL, NULL, 0,
     NULL, "Likewise for serving a stale response when the upstream fails, beyond its own stale-if-error."},
    {"status_header", PT_T_BOOL, K(status_header), "true", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Send Cache-Status (RFC 9211): hit, or fwd=uri-miss, vary-miss, stale, request or bypass, with stored, "
     "collapsed, fwd-status, ttl, key and a detail saying why a response was not stored."},
    {"lock_timeout", PT_T_DURATION, K(lock_timeout), "5s", 0, 600000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "How long a miss waits for another request's fetch of the same key (in any worker) before it goes upstream "
     "itself. 0s: misses never wait."},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL},
};
static const pt_section_t schema = {"cache", sizeof(conf_t), keys, check, NULL,
                                    "Answers GET and HEAD from a shared response cache, by the rules of RFC 9111."};

/* ---- the request's side ---- */

typedef struct vctx {
    const pt_h1_header_t *h;
    size_t n;
} vctx_t;

static long variant_of(pt_str_t names, char *out, size_t cap, void *arg)
{
    const vctx_t *v = arg;
    return pt_cache_vary_values(names, v->h, v->n, out, cap);
}

/* The request's fields, copied for the Vary of a response that comes
 * after the head is gone. */
static bool keep_fields(pt_conn_t *c, state_t *st, const pt_h1_req_t *req)
{
    size_t total = 0;
    for (size_t i = 0; i < req->nheaders; i++)
        total += req->headers[i].name.n + req->headers[i].value.n;
    pt_h1_header_t *h = pt_arena_alloc(&c->arena, (req->nheaders ? req->nheaders : 1) * sizeof(*h));
    char *b = pt_arena_alloc(&c->arena, total ? total : 1);
    if (!h || !b)
        return false;
    for (size_t i = 0; i < req->nheaders; i++) {
        const pt_h1_header_t *f = &req->headers[i];
        memcpy(b, f->name.p, f->name.n);
        h[i].name = (pt_str_t){b, f->name.n};
        b += f->name.n;
        memcpy(b, f->value.p, f->value.n);
        h[i].value = (pt_str_t){b, f->value.n};
        b += f->value.n;
    }
    st->fields = h;
    st->nfields = req->nheaders;
    return true;
}

static int64_t age_ms_of(const pt_cache_meta_t *m, int64_t now)
{
    return pt_cache_current_age_ms(m->age_s, m->date_s, m->request_time_ms, m->response_time_ms, now);
}

/* Answers from a stored response: 304 when the client's conditional
 * matches it.  False when it went away meanwhile. */
static bool answer(pt_conn_t *c, state_t *st, const pt_cache_hit_t *hit, const pt_cache_head_t *h,
                   const pt_h1_header_t *reqh, size_t nreqh, int64_t age_ms)
{
    int status = hit->meta.status;
    if (status == 200 && pt_cache_not_modified(reqh, nreqh, h->etag, h->last_modified))
        status = 304;
    int64_t left = hit->meta.lifetime_ms - age_ms; /* negative once stale: rounded away from 0 (RFC 9211 2.5) */
    st->ttl_s = left >= 0 ? left / 1000 : -((-left + 999) / 1000);
    st->ttl_known = true;
    return pt_cache_answer(c, st->ch, hit, h, status, age_ms / 1000, st->head_req, reqh, nreqh);
}

/* The validators of the stored response on the request that goes
 * upstream (ours replace the client's: the answer must select ours). */
static void ask_validation(pt_conn_t *c, pt_fx_t *fx, state_t *st)
{
    pt_fx_add(c, fx, false, st->head.etag.n ? PT_HDR_SET : PT_HDR_REMOVE, PT_STR("If-None-Match"), st->head.etag);
    pt_fx_add(c, fx, false, st->head.last_modified.n ? PT_HDR_SET : PT_HDR_REMOVE, PT_STR("If-Modified-Since"),
              st->head.last_modified);
    pt_fx_add(c, fx, false, PT_HDR_REMOVE, PT_STR("If-Match"), PT_STR_NULL);
    pt_fx_add(c, fx, false, PT_HDR_REMOVE, PT_STR("If-Unmodified-Since"), PT_STR_NULL);
    pt_fx_add(c, fx, false, PT_HDR_REMOVE, PT_STR("If-Range"), PT_STR_NULL);
    st->revalidating = true;
    st->fwd = "stale";
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    state_t *st = arg;
    st->armed = false;
    pt_req_resume(st->c);
}

/* Looks again in ms milliseconds. */
static pt_verdict_t poll_in(pt_conn_t *c, state_t *st, int ms)
{
    st->c = c;
    evtimer_assign(&st->timer, c->w->base, on_poll, st);
    struct timeval tv = {0, ms * 1000};
    evtimer_add(&st->timer, &tv);
    st->armed = true;
    return PT_SUSPEND;
}

/* Another request is fetching the key: look again in POLL_MS. */
static pt_verdict_t wait_for_fetch(pt_conn_t *c, state_t *st)
{
    if (!st->waited) {
        st->waited = true;
        st->wait_until_ms = wall_ms() + st->conf->lock_timeout;
        pt_cache_count(st->ch, PT_CST_COLLAPSED);
    }
    return poll_in(c, st, POLL_MS);
}

/* A miss in memory for a key the disk tier may have: a load is queued,
 * and the request looks again every POLL_MS until it was carried out, at
 * most DISK_WAIT_MS (then, or when it could not be queued, it goes on as
 * a miss).  True when it waits. */
static bool wait_for_disk(state_t *st)
{
    pt_cdisk_t *d = pt_cache_disk(st->ch);
    if (!d || st->revalidating || st->qi.no_cache)
        return false;
    if (!st->disk_ticket) {
        if (st->disk_asked || !pt_cdisk_maybe(d, st->key))
            return false;
        st->disk_asked = true;
        st->disk_ticket = pt_cdisk_post_load(d, st->key);
        st->disk_until_ms = wall_ms() + DISK_WAIT_MS;
        if (!st->disk_ticket)
            return false;
    } else if (pt_cdisk_done(d, st->disk_ticket) || wall_ms() >= st->disk_until_ms) {
        st->disk_ticket = 0;
        st->detail = NULL;
        return false;
    }
    st->fwd = NULL; /* a hit, if the load brings it; a miss says so after */
    st->detail = "disk";
    return true;
}

static void unlock(state_t *st, bool pass);
static bool tap_head(pt_conn_t *c, pt_resp_tap_t *t, const pt_h1_resp_t *r, const char *base);
static void tap_body(pt_resp_tap_t *t, const char *p, size_t n);
static void tap_end(pt_conn_t *c, pt_resp_tap_t *t);
static bool tap_failed(pt_conn_t *c, pt_resp_tap_t *t, int status);

/* A miss: take the key's fetch lock, or wait for whoever has it. */
static pt_verdict_t miss(pt_conn_t *c, const pt_h1_req_t *req, pt_fx_t *fx, state_t *st, int found)
{
    /* a key the disk tier may hold: its load first, before the fetch
     * lock, so that no request waits on the disk longer than DISK_WAIT_MS
     * whatever the others wait for */
    if (wait_for_disk(st))
        return poll_in(c, st, DISK_POLL_MS);
    if (st->qi.cc.flags & PT_CC_ONLY_IF_CACHED) { /* §5.2.1.7 */
        st->fwd = "miss";
        st->detail = "only-if-cached";
        pt_cache_count(st->ch, PT_CST_MISS);
        pt_req_respond(c, 504, "text/plain", "504 Gateway Timeout: not in the cache\n", 38, NULL, st->head_req);
        return PT_RESPOND;
    }
    if (!st->fwd)
        st->fwd = st->qi.no_cache ? "request" : found == PT_CACHE_VARY_MISS ? "vary-miss" : "uri-miss";
    /* one fetch (or revalidation) per key at a time; not for requests whose
     * answer is theirs alone (no-store, Authorization), which would leave a
     * pass mark that turns collapsing off for everyone */
    bool shared = !st->no_store && (!st->qi.authorization || st->conf->cache_authorized);
    if (!st->head_req && shared) {
        int64_t now = wall_ms();
        int lk = st->conf->lock_timeout && (!st->waited || now < st->wait_until_ms)
                     ? pt_cache_lock(st->ch, st->key, c->w->column, now, st->conf->lock_timeout)
                     : PT_CACHE_PASS;
        if (lk == PT_CACHE_BUSY)
            return wait_for_fetch(c, st);
        st->locked = lk == PT_CACHE_LOCKED;
    }
    if (!keep_fields(c, st, req))
        return PT_FAIL;
    if (st->qi.range && st->locked && !st->revalidating) {
        /* the whole response, to store: the client may be answered the
         * whole (RFC 9110 §14.2); a key passed (too large, not storable)
         * keeps its ranges */
        pt_fx_add(c, fx, false, PT_HDR_REMOVE, PT_STR("Range"), PT_STR_NULL);
        pt_fx_add(c, fx, false, PT_HDR_REMOVE, PT_STR("If-Range"), PT_STR_NULL);
    }
    if (!st->revalidating)
        pt_cache_count(st->ch, PT_CST_MISS); /* once, as it goes upstream (not at every look of a wait) */
    st->tap = (pt_resp_tap_t){tap_head, tap_body, tap_end, tap_failed, false};
    fx->tap = &st->tap;
    return PT_NEXT;
}

/* stale-while-revalidate: the client has the stale response; this
 * request goes on upstream to refresh it, for the cache alone, when it is
 * the one (in any worker) that takes the key's lock.  Its client's next
 * request on the connection waits for it, as with nginx's background
 * update. */
static pt_verdict_t refresh(pt_conn_t *c, const pt_h1_req_t *req, pt_fx_t *fx, state_t *st)
{
    int64_t hold = st->conf->lock_timeout ? st->conf->lock_timeout : 5000;
    if (pt_cache_lock(st->ch, st->key, c->w->column, wall_ms(), hold) != PT_CACHE_LOCKED)
        return PT_RESPOND; /* another request refreshes it */
    st->locked = true;
    if (!keep_fields(c, st, req)) {
        unlock(st, false);
        return PT_RESPOND;
    }
    ask_validation(c, fx, st);
    st->detached = fx->detached = true;
    st->tap = (pt_resp_tap_t){tap_head, tap_body, tap_end, NULL, false};
    fx->tap = &st->tap;
    return PT_NEXT;
}

static pt_verdict_t lookup(pt_conn_t *c, const pt_h1_req_t *req, pt_fx_t *fx, state_t *st)
{
    vctx_t v = {req->headers, req->nheaders};
    int found = st->qi.no_cache && !(st->qi.cc.flags & PT_CC_ONLY_IF_CACHED)
                    ? PT_CACHE_ABSENT
                    : pt_cache_lookup(st->ch, st->key, variant_of, &v, &st->hit);
    if (found == PT_CACHE_FOUND) {
        int64_t now = wall_ms(), age = age_ms_of(&st->hit.meta, now);
        int use = pt_cache_use(&st->qi, age, st->hit.meta.lifetime_ms, st->hit.meta.flags, st->hit.meta.swr_ms);
        if (use == PT_USE_SWR && (st->head_req || req->content_length > 0 || req->chunked))
            use = PT_USE_REVALIDATE; /* refreshed with a GET of its own only */
        st->found = true;
        if (use != PT_USE_MISS && (st->head_loaded = pt_cache_load_head(c, st->ch, &st->hit, &st->head))) {
            if (use == PT_USE_REVALIDATE) {
                if (!st->revalidating) /* once: a wait for another's revalidation looks again */
                    ask_validation(c, fx, st);
            } else {
                st->collapsed = st->waited;
                if (use != PT_USE_FRESH)
                    pt_cache_count(st->ch, PT_CST_STALE);
                if (answer(c, st, &st->hit, &st->head, req->headers, req->nheaders, age)) {
                    pt_cache_count(st->ch, PT_CST_HIT);
                    st->verdict = use == PT_USE_FRESH ? "hit" : "stale";
                    return use == PT_USE_SWR ? refresh(c, req, fx, st) : PT_RESPOND;
                }
            }
        }
    }
    return miss(c, req, fx, st, found);
}

/* The request's host as keys have it: lower case, without the scheme's
 * default port (so "Example.COM:80" and "example.com" are one key). */
static pt_str_t key_host(pt_conn_t *c, pt_str_t host)
{
    const char *dflt = c->ssl ? ":443" : ":80";
    size_t dl = strlen(dflt);
    if (host.n > dl && memcmp(host.p + host.n - dl, dflt, dl) == 0)
        host.n -= dl;
    char *h = pt_arena_alloc(&c->arena, host.n + 1);
    if (!h)
        return PT_STR_NULL;
    for (size_t i = 0; i < host.n; i++)
        h[i] = pt_lower(host.p[i]);
    h[host.n] = '\0';
    return (pt_str_t){h, host.n};
}

/* "scheme://host" path "?" query in the arena, NUL-terminated; PT_STR_NULL when
 * the arena is spent.  Made for every request, so without printf (it
 * cost 15% of a hit's instructions); no part holds a NUL (the parser and
 * the path's normal form leave none). */
static pt_str_t make_key(pt_conn_t *c, pt_str_t scheme, pt_str_t host, pt_str_t path, pt_str_t q)
{
    size_t n = scheme.n + 3 + host.n + path.n + 1 + q.n;
    char *k = pt_arena_alloc(&c->arena, n + 1), *p = k;
    if (!k)
        return PT_STR_NULL;
    const pt_str_t parts[] = {scheme, PT_STR("://"), host, path, PT_STR("?"), q};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        if (parts[i].n)
            memcpy(p, parts[i].p, parts[i].n);
        p += parts[i].n;
    }
    *p = '\0';
    return (pt_str_t){k, n};
}

/* The default key, ${scheme}://${host}${path}?${query}, with the host as
 * key_host makes it; 0, or the expansion's error. */
static int default_key(pt_conn_t *c, const pt_h1_req_t *req, const pt_fx_t *fx, state_t *st)
{
    pt_str_t path = fx->req_path, q = req->query;
    for (size_t i = 0; i < q.n; i++)
        if ((unsigned char)q.p[i] < 0x20 || q.p[i] == 0x7f)
            return PT_EINVAL;
    st->host = key_host(c, req->host);
    st->key = st->host.p ? make_key(c, c->ssl ? PT_STR("https") : PT_STR("http"), st->host, path, q) : PT_STR_NULL;
    return st->key.p ? 0 : PT_ENOMEM;
}

static pt_verdict_t on_request(pt_conn_t *c, const pt_h1_req_t *req, const void *vconf, pt_fx_t *fx, void *vst)
{
    const conf_t *conf = vconf;
    state_t *st = vst;
    if (!st->ch) {
        st->conf = conf;
        st->c = c;
        st->ch = pt_cache_get(conf->cache);
        bool cached = (req->method_bit & conf->mask) != 0;
        if (!st->ch || (!cached && !pt_cache_method_invalidates(req->method)))
            return PT_NEXT;
        bool missing;
        int rc = conf->default_key ? default_key(c, req, fx, st)
                                   : pt_tpl_expand_all(conf->key_tpl, c, req, &st->key, &missing);
        if (rc < 0)
            return pt_tpl_refuse(c, req, rc);
        if (st->key.n > PT_CACHE_KEY_MAX) {
            st->fwd = "bypass";
            st->detail = "key-too-long";
            return PT_NEXT;
        }
        if (!cached) { /* an unsafe method: its success drops what is stored for its target */
            st->invalidate = true;
            st->tap = (pt_resp_tap_t){tap_head, tap_body, tap_end, NULL, false};
            fx->tap = &st->tap;
            return PT_NEXT;
        }
        pt_cache_req_info(&st->qi, req->headers, req->nheaders);
        st->head_req = req->method_bit == PT_M_HEAD;
        st->no_store = (st->qi.cc.flags & PT_CC_NO_STORE) != 0;
        st->req_ms = wall_ms();
    }
    if (st->invalidate || !st->key.p || (st->fwd && !strcmp(st->fwd, "bypass")))
        return PT_NEXT;
    return lookup(c, req, fx, st);
}

/* ---- the response's side ---- */

static void unlock(state_t *st, bool pass)
{
    if (st->locked) {
        pt_cache_unlock(st->ch, st->key, st->c->w->column, pass ? wall_ms() + PASS_MS : 0);
        st->locked = false;
    }
}

/* What is kept of a response besides its bytes. */
static void make_meta(state_t *st, const pt_cache_resp_info_t *ri, int status, int64_t now, pt_cache_meta_t *m)
{
    bool heuristic = false;
    *m = (pt_cache_meta_t){
        .request_time_ms = st->req_ms,
        .response_time_ms = now,
        .date_s = ri->date_s >= 0 ? ri->date_s : now / 1000,
        .age_s = ri->age_s,
        .lifetime_ms = pt_cache_lifetime_ms(ri, &st->conf->rules, now, &heuristic),
        .status = (uint16_t)status,
    };
    m->flags = pt_cache_resp_flags(ri, &st->conf->rules, heuristic, &m->swr_ms, &m->sie_ms);
}

/* The default key of a URI reference in Location or Content-Location
 * on the request's own host (§4.4): "/path?query" or
 * "scheme://host/path?query"; empty for anything else. */
static pt_str_t key_of_uri(pt_conn_t *c, const state_t *st, pt_str_t uri)
{
    pt_str_t scheme = c->ssl ? PT_STR("https") : PT_STR("http"), path = uri;
    if (!uri.n)
        return PT_STR_NULL;
    if (uri.p[0] != '/' || (uri.n > 1 && uri.p[1] == '/')) { /* absolute: the same scheme and host only */
        size_t sl = scheme.n + 3;
        if (uri.n <= sl || memcmp(uri.p, scheme.p, scheme.n) != 0 || memcmp(uri.p + scheme.n, "://", 3) != 0)
            return PT_STR_NULL;
        const char *h = uri.p + sl, *e = memchr(h, '/', uri.n - sl);
        pt_str_t host = {h, e ? (size_t)(e - h) : uri.n - sl};
        if (!e || !pt_str_caseeq(host, st->host))
            return PT_STR_NULL;
        path = (pt_str_t){e, uri.n - (size_t)(e - uri.p)};
    }
    const char *q = memchr(path.p, '?', path.n), *hash = memchr(path.p, '#', path.n);
    size_t pl = q ? (size_t)(q - path.p) : hash ? (size_t)(hash - path.p) : path.n;
    size_t ql = q ? (hash && hash > q ? (size_t)(hash - q - 1) : path.n - pl - 1) : 0;
    return make_key(c, scheme, st->host, (pt_str_t){path.p, pl}, (pt_str_t){q ? q + 1 : "", ql});
}

/* Drops what is stored for the target of a successful unsafe request,
 * and, with the default key, for its Location and Content-Location on the
 * same host (§4.4). */
static void invalidate(pt_conn_t *c, state_t *st, const pt_h1_resp_t *r)
{
    if (r->status >= 400)
        return;
    size_t n = pt_cache_invalidate(st->ch, st->key);
    for (int i = 0; i < 2 && st->conf->default_key; i++) {
        const pt_h1_header_t *f = pt_h1_resp_find(r, i ? PT_STR("content-location") : PT_STR("location"));
        pt_str_t k = f ? key_of_uri(c, st, f->value) : PT_STR_NULL;
        if (k.n)
            n += pt_cache_invalidate(st->ch, k);
    }
    if (n)
        pt_log_debug("cache: %zu object%s dropped by an unsafe method on %.*s", n, n == 1 ? "" : "s",
                     PT_STR_FMT(st->key));
}

/* A 304 to our validation: the stored head takes the 304's fields, the
 * client is answered from it, and the object is stored again with them. */
/* A stored head parsed from bytes in the request arena. */
static bool parse_head(pt_conn_t *c, char *b, size_t n, pt_cache_head_t *h)
{
    pt_h1_header_t *fields = n ? pt_arena_alloc(&c->arena, (2 + n / 4) * sizeof(*fields)) : NULL;
    if (!fields)
        return false;
    pt_h1_limits_t lim = {n + 1, n + 1, 2 + n / 4};
    *h = (pt_cache_head_t){.r = {.headers = fields}, .base = b};
    if (pt_h1_parse_response(b, n, &lim, &h->r) != (int)n)
        return false;
    const pt_h1_header_t *e = pt_h1_resp_find(&h->r, PT_STR("etag"));
    const pt_h1_header_t *lm = pt_h1_resp_find(&h->r, PT_STR("last-modified"));
    h->etag = e ? e->value : PT_STR_NULL;
    h->last_modified = lm ? lm->value : PT_STR_NULL;
    return true;
}

/* Stores the refreshed head with the body of the object it refreshes. */
static void store_refreshed(pt_conn_t *c, state_t *st, const pt_cache_head_t *h, const char *head, size_t n,
                            const pt_cache_meta_t *m)
{
    pt_cache_writer_t w = {0};
    char names[512], values[PT_CACHE_VARIANT_MAX];
    long nl = pt_cache_vary_names(h->r.headers, h->r.nheaders, names, sizeof(names));
    long vl = nl > 0 ? pt_cache_vary_values((pt_str_t){names, (size_t)nl}, st->fields, st->nfields, values,
                                            sizeof(values))
                     : 0;
    if (nl >= 0 && vl >= 0 &&
        pt_cache_store_begin(st->ch, &w, st->key, (pt_str_t){names, (size_t)(nl > 0 ? nl : 0)},
                             (pt_str_t){values, (size_t)vl}, c->w->column, (uint64_t)n + m->body_len) &&
        pt_cache_store_append(&w, head, n) &&
        pt_cache_store_append_from(&w, &st->hit, st->hit.meta.head_len, st->hit.meta.body_len))
        pt_cache_store_commit(&w, m);
    else if (w.active)
        pt_cache_store_abort(&w);
}

/* A 304 to our validation (§4.3.4): when it selects the stored response,
 * the stored head takes its fields, the client is answered from it (with
 * the 304's Set-Cookie, for that client only), and the object is stored
 * again with them, unless the merged head may no longer be stored (a 304
 * that says private or no-store: the object is dropped).  False when it
 * selects another response, or the client could not be answered. */
static bool revalidated(pt_conn_t *c, state_t *st, const pt_h1_resp_t *r)
{
    const pt_h1_header_t *e = pt_h1_resp_find(r, PT_STR("etag")), *lm = pt_h1_resp_find(r, PT_STR("last-modified"));
    if (!pt_cache_304_selects(e ? e->value : PT_STR_NULL, lm ? lm->value : PT_STR_NULL, st->head.etag,
                              st->head.last_modified)) {
        pt_log_warn("cache: a 304 for %.*s names another response than the stored one; it is dropped, req=%s",
                    PT_STR_FMT(st->key), st->c->req->reqid);
        pt_cache_invalidate(st->ch, st->key);
        return false;
    }
    int64_t now = wall_ms();
    char *merged, *shown;
    size_t n = pt_cache_merge_head(c, &st->head, r, st->conf->store_set_cookie, now / 1000, false, &merged);
    size_t sn = pt_cache_merge_head(c, &st->head, r, st->conf->store_set_cookie, now / 1000, true, &shown);
    pt_cache_head_t h, hs;
    if (!n || !sn || !parse_head(c, merged, n, &h) || !parse_head(c, shown, sn, &hs))
        return false;
    pt_cache_resp_info_t ri;
    pt_cache_resp_info(&ri, st->hit.meta.status, h.r.headers, h.r.nheaders);
    ri.age_s = pt_cache_age_parse(r->headers, r->nheaders) > 0 ? pt_cache_age_parse(r->headers, r->nheaders) : 0;
    pt_cache_meta_t m;
    make_meta(st, &ri, st->hit.meta.status, now, &m);
    m.head_len = (uint32_t)n;
    m.body_len = st->hit.meta.body_len;
    st->fwd_status = 304;
    pt_cache_count(st->ch, PT_CST_REVALIDATED);
    pt_cache_hit_t as_new = st->hit; /* the old body, with the new head's figures */
    as_new.meta.lifetime_ms = m.lifetime_ms;
    if (!st->detached && !answer(c, st, &as_new, &hs, st->fields, st->nfields, age_ms_of(&m, now)))
        return false;
    int why = pt_cache_storable(&st->qi, &ri, &st->conf->rules);
    if (why == PT_NS_NONE) {
        store_refreshed(c, st, &h, merged, n, &m);
    } else { /* the origin says it may no longer be shared */
        st->detail = pt_cache_nostore_name(why);
        pt_cache_invalidate(st->ch, st->key);
    }
    return true;
}

/* A HEAD's response while a GET's is stored (§4.3.5): when its
 * validators select the stored response it refreshes the stored head, as
 * a 304 would; when they name another, the stored one is out of date and
 * dropped.  The HEAD's own answer goes to its client as it is. */
static void head_updates(pt_conn_t *c, state_t *st, const pt_h1_resp_t *r)
{
    const pt_h1_header_t *e = pt_h1_resp_find(r, PT_STR("etag")), *lm = pt_h1_resp_find(r, PT_STR("last-modified"));
    if (!e && !lm)
        return; /* says nothing of which response it is */
    if (!pt_cache_304_selects(e ? e->value : PT_STR_NULL, lm ? lm->value : PT_STR_NULL, st->head.etag,
                              st->head.last_modified)) {
        pt_cache_invalidate(st->ch, st->key);
        return;
    }
    int64_t now = wall_ms();
    char *merged;
    size_t n = pt_cache_merge_head(c, &st->head, r, st->conf->store_set_cookie, now / 1000, false, &merged);
    pt_cache_head_t h;
    if (!n || !parse_head(c, merged, n, &h))
        return;
    pt_cache_resp_info_t ri;
    pt_cache_resp_info(&ri, st->hit.meta.status, h.r.headers, h.r.nheaders);
    pt_cache_meta_t m;
    make_meta(st, &ri, st->hit.meta.status, now, &m);
    m.head_len = (uint32_t)n;
    m.body_len = st->hit.meta.body_len;
    if (pt_cache_storable(&st->qi, &ri, &st->conf->rules) == PT_NS_NONE)
        store_refreshed(c, st, &h, merged, n, &m);
    else
        pt_cache_invalidate(st->ch, st->key);
}

/* Our validation's 304 could not answer the client (it named another
 * response, or the object went away meanwhile: a concurrent revalidation
 * replaced it).  A client that asked nothing conditional must never get
 * that 304: it is answered from what the key holds now, or 502. */
static void answer_after_304(pt_conn_t *c, state_t *st)
{
    vctx_t v = {st->fields, st->nfields};
    pt_cache_hit_t hit;
    pt_cache_head_t h;
    if (pt_cache_lookup(st->ch, st->key, variant_of, &v, &hit) == PT_CACHE_FOUND &&
        pt_cache_load_head(c, st->ch, &hit, &h) &&
        answer(c, st, &hit, &h, st->fields, st->nfields, age_ms_of(&hit.meta, wall_ms()))) {
        st->verdict = "hit";
        return;
    }
    st->detail = "revalidation-failed";
    pt_req_respond(c, 502, "text/plain", "502 Bad Gateway\n", 16, NULL, st->head_req);
}

/* Starts storing a response that may be stored: its head now, its body
 * as the proxy reads it (tap_body), made visible at its end (tap_end). */
static void start_store(pt_conn_t *c, state_t *st, const pt_h1_resp_t *r, const char *base,
                        const pt_cache_resp_info_t *ri)
{
    const pt_cache_conf_t *cc = NULL;
    for (size_t i = 0; i < c->w->conf->caches.n && !cc; i++)
        if (strcmp(PT_LIST_AT(c->w->conf->caches, pt_cache_conf_t, i)->name, st->conf->cache) == 0)
            cc = PT_LIST_AT(c->w->conf->caches, pt_cache_conf_t, i);
    uint64_t max = cc ? (uint64_t)cc->max_object_size : 0;
    int64_t now = wall_ms();
    make_meta(st, ri, r->status, now, &st->meta);
    char *head;
    size_t hl = pt_cache_stored_head(c, r, base, st->conf->store_set_cookie, st->meta.date_s, &head);
    if (!hl || (r->content_length >= 0 && (uint64_t)r->content_length + hl > max)) {
        st->detail = "too-large";
        unlock(st, true);
        return;
    }
    char names[512], values[PT_CACHE_VARIANT_MAX];
    long nl = pt_cache_vary_names(r->headers, r->nheaders, names, sizeof(names));
    long vl = nl > 0 ? pt_cache_vary_values((pt_str_t){names, (size_t)nl}, st->fields, st->nfields, values,
                                            sizeof(values))
                     : 0;
    if (nl < 0 || vl < 0 ||
        !pt_cache_store_begin(st->ch, &st->w, st->key, (pt_str_t){names, (size_t)(nl > 0 ? nl : 0)},
                              (pt_str_t){values, (size_t)vl}, c->w->column, max) ||
        !pt_cache_store_append(&st->w, head, hl)) {
        st->detail = nl < 0 || vl < 0 ? "vary-too-long" : "no-room";
        unlock(st, true);
        return;
    }
    st->meta.head_len = (uint32_t)hl;
    st->tap.storing = true;
    st->stored = true;
}

/* stale-if-error: the upstream failed (status 500, 502, 503 or 504, its
 * own or ours) and a stale stored response may stand in for it. */
static bool serve_stale_on_error(pt_conn_t *c, state_t *st, int status)
{
    if (!st->found || st->detached || (status != 500 && status != 502 && status != 503 && status != 504))
        return false;
    int64_t now = wall_ms(), age = age_ms_of(&st->hit.meta, now);
    if (!pt_cache_stale_if_error_ok(&st->qi, age - st->hit.meta.lifetime_ms, st->hit.meta.flags,
                                    st->hit.meta.sie_ms))
        return false;
    if (!st->head_loaded && !(st->head_loaded = pt_cache_load_head(c, st->ch, &st->hit, &st->head)))
        return false;
    st->fwd = "stale";
    st->fwd_status = status;
    st->detail = "stale-if-error";
    if (!answer(c, st, &st->hit, &st->head, st->fields, st->nfields, age))
        return false;
    st->verdict = "stale";
    pt_cache_count(st->ch, PT_CST_STALE);
    unlock(st, false);
    return true;
}

static bool tap_failed(pt_conn_t *c, pt_resp_tap_t *t, int status)
{
    return serve_stale_on_error(c, (state_t *)t, status);
}

static bool tap_head(pt_conn_t *c, pt_resp_tap_t *t, const pt_h1_resp_t *r, const char *base)
{
    state_t *st = (state_t *)t;
    if (!st->invalidate && serve_stale_on_error(c, st, r->status))
        return true;
    if (st->invalidate) {
        invalidate(c, st, r);
        return false;
    }
    if (st->revalidating && r->status == 304) {
        if (revalidated(c, st, r)) {
            if (!st->detached) /* a refresh's client got the stale one */
                st->verdict = "revalidated";
        } else if (!st->detached) {
            answer_after_304(c, st);
        }
        unlock(st, false);
        return true; /* a refresh's client has its answer already */
    }
    if (r->status == 304 && st->qi.conditional) { /* the client's own conditional: says nothing of storing */
        unlock(st, false);
        return false;
    }
    if (st->head_req && st->found && r->status == st->hit.meta.status && st->head_loaded)
        head_updates(c, st, r); /* §4.3.5 */
    if (st->head_req || st->no_store) {
        st->detail = st->no_store ? "no-store" : NULL;
        unlock(st, false);
        return false;
    }
    pt_cache_resp_info_t ri;
    pt_cache_resp_info(&ri, r->status, r->headers, r->nheaders);
    int why = pt_cache_storable(&st->qi, &ri, &st->conf->rules);
    if (why != PT_NS_NONE) {
        st->detail = pt_cache_nostore_name(why);
        unlock(st, why != PT_NS_AUTHORIZATION); /* a pass mark only for what the response says of itself */
        return false;
    }
    start_store(c, st, r, base, &ri);
    return false;
}

static void tap_body(pt_resp_tap_t *t, const char *p, size_t n)
{
    state_t *st = (state_t *)t;
    if (!st->w.active)
        return;
    if (!pt_cache_store_append(&st->w, p, n)) {
        t->storing = false;
        unlock(st, true); /* too large, or no room: the waiting requests go upstream */
    }
}

static void tap_end(pt_conn_t *c, pt_resp_tap_t *t)
{
    state_t *st = (state_t *)t;
    if (!st->w.active)
        return;
    st->meta.body_len = st->w.len - st->meta.head_len;
    if (pt_cache_store_commit(&st->w, &st->meta))
        pt_cache_count(st->ch, PT_CST_STORED);
    unlock(st, false);
}

/* A bounded text being made (no printf on every hit: it cost as much as
 * the rest of the field's work). */
typedef struct text {
    char p[512];
    size_t n;
} text_t;

static void put_s(text_t *t, const char *s)
{
    size_t l = strlen(s), room = sizeof(t->p) - 1 - t->n;
    memcpy(t->p + t->n, s, l < room ? l : room);
    t->n += l < room ? l : room;
}

static void put_i(text_t *t, int64_t v)
{
    char d[24];
    size_t l = 0;
    if (v < 0)
        d[l++] = '-';
    l += pt_fmt_u64(d + l, v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v, 0);
    d[l] = '\0';
    put_s(t, d);
}

/* Cache-Status (RFC 9211) and no CDN-Cache-Control for the client. */
static pt_verdict_t on_response(pt_conn_t *c, const void *vconf, pt_fx_t *fx, void *vst, int status)
{
    const conf_t *conf = vconf;
    state_t *st = vst;
    pt_fx_add(c, fx, true, PT_HDR_REMOVE, PT_STR("CDN-Cache-Control"), PT_STR_NULL);
    if (!conf->status_header || !st || !st->ch || st->invalidate || !st->key.p)
        return PT_NEXT;
    text_t v = {.n = 0};
    put_s(&v, st->fwd ? "portico; fwd=" : "portico; hit");
    put_s(&v, st->fwd ? st->fwd : "");
    if (st->fwd_status) {
        put_s(&v, "; fwd-status=");
        put_i(&v, st->fwd_status);
    }
    if (st->stored)
        put_s(&v, "; stored");
    if (st->collapsed)
        put_s(&v, "; collapsed");
    if (st->ttl_known || st->stored) {
        put_s(&v, "; ttl=");
        put_i(&v, st->ttl_known ? st->ttl_s : st->meta.lifetime_ms / 1000);
    }
    bool printable = st->key.n < 256;
    for (size_t i = 0; i < st->key.n && printable; i++)
        printable = st->key.p[i] >= 0x20 && st->key.p[i] < 0x7f;
    if (printable && v.n < sizeof(v.p) - 16) { /* an sf-string: \ and " escaped */
        put_s(&v, "; key=\"");
        for (size_t i = 0; i < st->key.n && v.n < sizeof(v.p) - 4; i++) {
            if (st->key.p[i] == '"' || st->key.p[i] == '\\')
                v.p[v.n++] = '\\';
            v.p[v.n++] = st->key.p[i];
        }
        v.p[v.n++] = '"';
    }
    if (st->detail && v.n < sizeof(v.p) - 40) {
        put_s(&v, "; detail=");
        put_s(&v, st->detail);
    }
    char *copy = pt_arena_strndup(&c->arena, v.p, v.n);
    if (copy)
        pt_fx_add(c, fx, true, PT_HDR_SET, PT_STR("Cache-Status"), (pt_str_t){copy, v.n});
    return PT_NEXT;
}

static void on_done(pt_conn_t *c, const void *conf, pt_fx_t *fx, void *vst)
{
    state_t *st = vst;
    if (!st)
        return;
    if (st->ch && !st->invalidate && st->key.p && c->req) /* as Cache-Status says it, in a word */
        c->req->ent.cache_status = st->verdict                                   ? st->verdict
                                   : st->fwd && strcmp(st->fwd, "bypass") == 0 ? "bypass"
                                                                               : "miss";
    if (st->armed) {
        evtimer_del(&st->timer);
        st->armed = false;
    }
    if (st->w.active)
        pt_cache_store_abort(&st->w); /* the response did not come whole: nothing of it is kept */
    if (st->locked)
        unlock(st, false);
}

const pt_filter_t pt_filter_cache = {.name = "cache", .schema = &schema, .state_size = sizeof(state_t),
                                     .on_request = on_request, .on_response = on_response, .on_done = on_done,
                                     .link = link_conf};
