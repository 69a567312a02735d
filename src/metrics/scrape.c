/* GET /metrics: the Prometheus text format (version 0.0.4), made in
 * slices so that a scrape of many thousands of routes never holds the
 * worker's loop for long.  Each slice renders rows until its time budget
 * is spent; the body grows in one buffer (doubling: linear in its size). */
#include "config.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "portico/auth.h"
#include "portico/cache_disk.h"
#include "portico/cache_store.h"
#include "portico/filter.h"
#include "portico/http.h"
#include "portico/limit.h"
#include "portico/metrics.h"
#include "portico/scrape.h"
#include "portico/runtime.h"
#include "portico/sbuf.h"
#include "portico/secret.h"
#include "portico/status-t.h"
#include "portico/str.h"
#include "portico/upstream.h"
#include "portico/worker.h"
#include "portico/zone.h"

#define LBL 512

struct pt_scrape {
    pt_worker_t *w;
    pt_mx_zone_t *z;
    pt_sbuf_t out;
    int family;   /* the next to render */
    uint32_t row; /* within a family of rows: the next row */
    char le[PT_MX_MAX_BUCKETS + 1][40]; /* the buckets' bounds as written: ,le="0.005"} */
    /* the rows of each kind, found once (in slices: a row's kind is on a
     * cache line of its own), so that a family walks its own rows only */
    uint32_t nrows, scanned;
    uint8_t *kinds;                    /* the kind of each row scanned */
    uint32_t *order;                   /* the rows, by kind */
    uint32_t kstart[PT_MXK_FILTER + 2]; /* kind k's rows: order[kstart[k] .. kstart[k + 1]) */
    unsigned slices;
    int64_t longest_us; /* of the slices, for the X-Scrape-Slices answer field */
};

/* ---- the buffer ---- */

static void put(pt_scrape_t *s, const char *p, size_t n)
{
    pt_sbuf_put(&s->out, p, n);
}

static void puts_(pt_scrape_t *s, const char *p)
{
    pt_sbuf_puts(&s->out, p);
}

static void put_u64(pt_scrape_t *s, uint64_t v)
{
    pt_sbuf_u64(&s->out, v);
}

static void putf(pt_scrape_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(pt_scrape_t *s, const char *fmt, ...)
{
    char b[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b, sizeof(b), fmt, ap);
    va_end(ap);
    if (n > 0)
        put(s, b, (size_t)n < sizeof(b) ? (size_t)n : sizeof(b) - 1);
}

/* Appends name="value" (after a comma unless first) to out, a string of
 * cap bytes: backslash, double quote and line feed escaped as the format
 * says, every other byte as it is.  A value that does not fit is cut
 * (the rows' names are within LBL already). */
static void add_label(char *out, size_t cap, const char *name, const char *v, bool first)
{
    size_t n = strlen(out);
    n += (size_t)snprintf(out + n, cap - n, "%s%s=\"", first ? "" : ",", name);
    size_t start = n;
    const char *p = v;
    for (; *p && n + 4 < cap; p++) {
        if (*p == '\\' || *p == '"')
            out[n++] = '\\', out[n++] = *p;
        else if (*p == '\n')
            out[n++] = '\\', out[n++] = 'n';
        else
            out[n++] = *p; /* any other byte as it is: names that differ stay apart */
    }
    if (*p) /* cut (the buffers hold two fitted labels, so never): not inside a character */
        while (n > start && ((uint8_t)out[n - 1] & 0x80))
            n--;
    if (n + 2 > cap)
        n = cap - 2;
    out[n++] = '"';
    out[n] = '\0';
}

/* The shortest plain decimal that reads back as v (0.005, 10, 0.044),
 * or the exponent form for what has none within 9 decimals. */
static void put_double(pt_scrape_t *s, double v)
{
    char b[48];
    int n = 0;
    for (int d = 0; d <= 9; d++) {
        n = snprintf(b, sizeof(b), "%.*f", d, v);
        if (n > 0 && (size_t)n < sizeof(b) && strtod(b, NULL) == v) {
            put(s, b, (size_t)n);
            return;
        }
    }
    n = snprintf(b, sizeof(b), "%.17g", v);
    put(s, b, (size_t)n);
}

static void family(pt_scrape_t *s, const char *name, const char *type, const char *help)
{
    puts_(s, "# HELP ");
    puts_(s, name);
    put(s, " ", 1);
    puts_(s, help);
    puts_(s, "\n# TYPE ");
    puts_(s, name);
    put(s, " ", 1);
    puts_(s, type);
    put(s, "\n", 1);
}

/* name{labels} value */
static void sample(pt_scrape_t *s, const char *name, const char *labels, uint64_t v)
{
    puts_(s, name);
    if (labels && *labels) {
        put(s, "{", 1);
        puts_(s, labels);
        put(s, "}", 1);
    }
    put(s, " ", 1);
    put_u64(s, v);
    put(s, "\n", 1);
}

/* ---- families of rows ---- */

typedef struct rowctx {
    pt_scrape_t *s;
    uint32_t r;
    char l1[LBL], l2[LBL];
    char labels[3 * LBL]; /* rendered: route="x",upstream="y" */
} rowctx_t;

/* Renders the labels of a row under the given names into x->labels. */
static void labels_of(rowctx_t *x, const char *n1, const char *n2)
{
    x->labels[0] = '\0';
    add_label(x->labels, sizeof(x->labels), n1, x->l1, true);
    if (n2)
        add_label(x->labels, sizeof(x->labels), n2, x->l2, false);
}

static const char *const method_names[] = {"OTHER", "GET",     "HEAD",    "POST",  "PUT",
                                           "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"};

typedef struct rowfam rowfam_t;

static void codes(rowctx_t *x, const rowfam_t *f)
{
    (void)f;
    uint64_t keys[64], counts[64];
    int n = pt_metrics_codes(x->s->z, x->r, keys, counts, 64);
    labels_of(x, "route", NULL);
    for (int i = 0; i < n; i++) {
        unsigned m = (unsigned)(keys[i] >> 16 & 0xffff), code = (unsigned)(keys[i] & 0xffff);
        puts_(x->s, "portico_requests_total{");
        puts_(x->s, x->labels);
        if (keys[i] == UINT32_MAX) {
            puts_(x->s, ",method=\"other\",code=\"other\"} ");
        } else {
            puts_(x->s, ",method=\"");
            puts_(x->s, m < sizeof(method_names) / sizeof(method_names[0]) ? method_names[m] : "OTHER");
            putf(x->s, "\",code=\"%03u\"} ", code);
        }
        put_u64(x->s, counts[i]);
        put(x->s, "\n", 1);
    }
}

static void histogram(rowctx_t *x, const char *name)
{
    const double *bounds;
    unsigned nb = pt_metrics_buckets(x->s->z, &bounds);
    uint64_t v[PT_MX_MAX_BUCKETS + 2];
    pt_metrics_sum(x->s->z, x->r, PT_MXW_HIST, nb + 2, v);
    (void)bounds;
    size_t nl = strlen(name), ll = strlen(x->labels);
    uint64_t cum = 0;
    for (unsigned i = 0; i <= nb; i++) {
        cum += i < nb ? v[i] : 0;
        put(x->s, name, nl);
        put(x->s, "_bucket{", 8);
        put(x->s, x->labels, ll);
        puts_(x->s, x->s->le[i]);
        put_u64(x->s, i < nb ? cum : v[nb]); /* +Inf: every observation, the count */
        put(x->s, "\n", 1);
    }
    put(x->s, name, nl);
    put(x->s, "_sum{", 5);
    put(x->s, x->labels, ll);
    put(x->s, "} ", 2);
    if (v[nb + 1] % 1000000 == 0) /* whole seconds, the common case of 0 */
        put_u64(x->s, v[nb + 1] / 1000000);
    else
        put_double(x->s, (double)v[nb + 1] / 1e6);
    put(x->s, "\n", 1);
    put(x->s, name, nl);
    put(x->s, "_count{", 7);
    put(x->s, x->labels, ll);
    put(x->s, "} ", 2);
    put_u64(x->s, v[nb]);
    put(x->s, "\n", 1);
}

struct rowfam {
    int kind;
    void (*render)(rowctx_t *x, const rowfam_t *f);
    const char *name, *type, *help;
    const char *l1, *l2; /* the labels' names */
    unsigned word;       /* of a family of one counter a row */
};

static void one(rowctx_t *x, const char *name, unsigned word)
{
    uint64_t v;
    pt_metrics_sum(x->s->z, x->r, word, 1, &v);
    sample(x->s, name, x->labels, v);
}

/* A family of one counter a row: word of the row. */
static void single(rowctx_t *x, const rowfam_t *f)
{
    labels_of(x, f->l1, f->l2);
    one(x, f->name, f->word);
}

static void hist(rowctx_t *x, const rowfam_t *f)
{
    labels_of(x, f->l1, NULL);
    histogram(x, f->name);
}

static void listener_closed(rowctx_t *x, const rowfam_t *f)
{
    uint64_t v[2];
    labels_of(x, f->l1, NULL);
    pt_metrics_sum(x->s->z, x->r, PT_MXW_L_CLOSED_H1, 2, v);
    char l[sizeof(x->labels) + 32];
    snprintf(l, sizeof(l), "%s,protocol=\"http/1.1\"", x->labels);
    sample(x->s, f->name, l, v[0]);
    snprintf(l, sizeof(l), "%s,protocol=\"h2\"", x->labels);
    sample(x->s, f->name, l, v[1]);
}

static void listener_active(rowctx_t *x, const rowfam_t *f)
{
    uint64_t v[PT_MXW_L_H2 + 1];
    labels_of(x, f->l1, NULL);
    pt_metrics_sum(x->s->z, x->r, 0, PT_MXW_L_H2 + 1, v);
    uint64_t h1 = v[PT_MXW_L_ACCEPTED] - v[PT_MXW_L_H2], h2 = v[PT_MXW_L_H2];
    char l[sizeof(x->labels) + 32];
    snprintf(l, sizeof(l), "%s,protocol=\"http/1.1\"", x->labels);
    sample(x->s, f->name, l, h1 > v[PT_MXW_L_CLOSED_H1] ? h1 - v[PT_MXW_L_CLOSED_H1] : 0);
    snprintf(l, sizeof(l), "%s,protocol=\"h2\"", x->labels);
    sample(x->s, f->name, l, h2 > v[PT_MXW_L_CLOSED_H2] ? h2 - v[PT_MXW_L_CLOSED_H2] : 0);
}

static bool is_limit(const char *f)
{
    return strncmp(f, "limit-", 6) == 0;
}

static void limit_single(rowctx_t *x, const rowfam_t *f)
{
    if (is_limit(x->l2))
        single(x, f);
}

static void filter_auth(rowctx_t *x, const rowfam_t *f)
{
    if (is_limit(x->l2))
        return;
    uint64_t v[PT_AUTH__REASONS];
    labels_of(x, f->l1, f->l2);
    pt_metrics_sum(x->s->z, x->r, PT_MXW_F_AUTH, PT_AUTH__REASONS, v);
    for (int i = 0; i < PT_AUTH__REASONS; i++) {
        char l[sizeof(x->labels) + 40];
        snprintf(l, sizeof(l), "%s,reason=\"%s\"", x->labels, pt_auth_reason_names[i]);
        sample(x->s, f->name, l, v[i]);
    }
}

static const rowfam_t rowfams[] = {
    {PT_MXK_ROUTE, codes, "portico_requests_total", "counter", "Requests answered, by route, method and status code.",
     "route", NULL, 0},
    {PT_MXK_ROUTE, hist, "portico_request_duration_seconds", "histogram",
     "Time from the first byte of the request head to the end of the response, by route.", "route", NULL, 0},
    {PT_MXK_ROUTE, single, "portico_request_bytes_total", "counter",
     "Bytes received from clients (heads and bodies), by route.", "route", NULL, PT_MXW_BYTES_IN},
    {PT_MXK_ROUTE, single, "portico_response_bytes_total", "counter", "Bytes handed to clients' sockets, by route.",
     "route", NULL, PT_MXW_BYTES_OUT},
    {PT_MXK_UPSTREAM, hist, "portico_upstream_duration_seconds", "histogram",
     "Time the upstream took to answer (all attempts of a request), by upstream.", "upstream", NULL, 0},
    {PT_MXK_UPSTREAM, single, "portico_upstream_retry_budget_refusals_total", "counter",
     "Retries the upstream's retry budget refused.", "upstream", NULL, PT_MXW_UP_REFUSED},
    {PT_MXK_TARGET, single, "portico_upstream_attempts_total", "counter", "Attempts sent to a target, retries included.",
     "upstream", "target", PT_MXW_T_ATTEMPTS},
    {PT_MXK_TARGET, single, "portico_upstream_retries_total", "counter", "Attempts that were retries of a failed one.",
     "upstream", "target", PT_MXW_T_RETRIES},
    {PT_MXK_TARGET, single, "portico_upstream_connect_failures_total", "counter",
     "Connections to a target that failed.", "upstream", "target", PT_MXW_T_CONNECT_FAILURES},
    {PT_MXK_TARGET, single, "portico_upstream_timeouts_total", "counter",
     "Attempts that timed out (connect, send or read).", "upstream", "target", PT_MXW_T_TIMEOUTS},
    {PT_MXK_TARGET, single, "portico_upstream_connects_total", "counter",
     "Connections opened to a target (health probes' included).", "upstream", "target", PT_MXW_T_CONNECTS},
    {PT_MXK_TARGET, single, "portico_upstream_connection_reuses_total", "counter",
     "Attempts sent on a kept-alive connection to a target.", "upstream", "target", PT_MXW_T_REUSES},
    {PT_MXK_LISTENER, single, "portico_connections_accepted_total", "counter",
     "Client connections accepted, by listener.", "listener", NULL, PT_MXW_L_ACCEPTED},
    {PT_MXK_LISTENER, listener_active, "portico_connections_active", "gauge", "Client connections open now, by the protocol they speak (until HTTP/2 starts on one, http/1.1).",
     "listener", NULL, 0},
    {PT_MXK_LISTENER, listener_closed, "portico_connections_closed_total", "counter",
     "Client connections closed, by listener and the protocol they spoke.", "listener", NULL, 0},
    {PT_MXK_LISTENER, single, "portico_tls_handshakes_total", "counter", "TLS handshakes completed.", "listener",
     NULL, PT_MXW_L_TLS_HANDSHAKES},
    {PT_MXK_LISTENER, single, "portico_tls_handshake_failures_total", "counter",
     "TLS handshakes that failed or timed out.", "listener", NULL, PT_MXW_L_TLS_FAILURES},
    {PT_MXK_FILTER, limit_single, "portico_ratelimit_rejections_total", "counter",
     "Requests a limit filter refused, by route and filter.", "route", "filter", PT_MXW_F_REJECTED},
    {PT_MXK_FILTER, limit_single, "portico_ratelimit_redis_fallbacks_total", "counter",
     "Limit decisions made locally because Redis could not be asked.", "route", "filter", PT_MXW_F_FALLBACKS},
    {PT_MXK_FILTER, filter_auth, "portico_auth_failures_total", "counter",
     "Requests an auth filter refused, by route, filter and reason.", "route", "filter", 0},
};
#define NROWFAMS (int)(sizeof(rowfams) / sizeof(rowfams[0]))

/* ---- the rest: from the status board, the target zone, the caches ---- */

static uint64_t status_sum(const pt_status_t *st, size_t off)
{
    uint64_t n = 0;
    for (int i = 0; i < PT_STATUS_MAX_WORKERS; i++)
        if (st->workers[i].state != PT_W_EMPTY)
            n += __atomic_load_n((const uint64_t *)((const char *)&st->workers[i] + off), __ATOMIC_RELAXED);
    return n;
}

static void process_families(pt_scrape_t *s)
{
    const pt_status_t *st = s->w->status;
    family(s, "portico_build_info", "gauge", "The version of Portico running.");
    putf(s, "portico_build_info{version=\"%s\"} 1\n", PACKAGE_VERSION);
    family(s, "portico_start_time_seconds", "gauge", "When the master process started, in Unix time.");
    putf(s, "portico_start_time_seconds %.3f\n", (double)st->started_ms / 1000);
    family(s, "portico_reloads_total", "counter", "Reloads that took effect.");
    sample(s, "portico_reloads_total", NULL, st->reloads);
    family(s, "portico_reload_failures_total", "counter", "Reloads that failed (the old configuration serves on).");
    sample(s, "portico_reload_failures_total", NULL, st->reload_failures);
    family(s, "portico_config_generation", "gauge", "The generation of the configuration serving now.");
    sample(s, "portico_config_generation", NULL, st->generation);
    family(s, "portico_config_info", "gauge", "The configuration file serving now, by its SHA-256.");
    putf(s, "portico_config_info{sha256=\"%.64s\"} 1\n", st->config_sha256);
    family(s, "portico_config_load_time_seconds", "gauge", "When the serving configuration was loaded, in Unix time.");
    putf(s, "portico_config_load_time_seconds %.3f\n", (double)st->config_loaded_ms / 1000);
    static const char *const states[] = {"empty", "starting", "running", "draining"};
    int n[4] = {0};
    for (int i = 0; i < PT_STATUS_MAX_WORKERS; i++)
        if (st->workers[i].state > PT_W_EMPTY && st->workers[i].state <= PT_W_DRAINING)
            n[st->workers[i].state]++;
    family(s, "portico_workers", "gauge", "Worker processes, by state.");
    for (int k = 1; k < 4; k++)
        putf(s, "portico_workers{state=\"%s\"} %d\n", states[k], n[k]);
    family(s, "portico_access_log_lost_total", "counter", "Access-log entries that could not be written.");
    sample(s, "portico_access_log_lost_total", NULL,
           st->access_log_lost_exited + status_sum(st, offsetof(pt_status_worker_t, access_log_lost)));
}

static void target_families(pt_scrape_t *s)
{
    pt_worker_t *w = s->w;
    int64_t now_ms = pt_worker_now_us(w) / 1000;
    static const char *const names[] = {"portico_upstream_target_up", "portico_upstream_health_probes_total",
                                        "portico_upstream_target_marked_down_total",
                                        "portico_upstream_target_weight"};
    static const char *const types[] = {"gauge", "counter", "counter", "gauge"};
    static const char *const helps[] = {"1 when the target takes requests, 0 when health checks marked it down.",
                                        "Active health probes, by result.",
                                        "Times the target was marked down (active or passive checks).",
                                        "The target's weight now."};
    for (int f = 0; f < 4; f++) {
        family(s, names[f], types[f], helps[f]);
        for (size_t i = 0; i < w->conf->upstreams.n; i++) {
            pt_upstream_t *u = &w->upstreams[i];
            pt_runtime_sync(u); /* the admin API's last changes, even with no request since */
            for (size_t k = 0; k < u->ntargets; k++) {
                const pt_target_t *t = &u->targets[k];
                if (t->rt_state == PT_RT_FREE || t->rt_state == PT_RT_REMOVED)
                    continue; /* removed through the admin API */
                const pt_target_shared_t *sh = t->shared;
                char l[3 * LBL] = "", ul[PT_MX_LABEL_MAX + 1], tl[PT_MX_LABEL_MAX + 1];
                /* as the per-target counters name it: the address as written in the file */
                pt_mx_labels(u->conf->name, t->conf && t->conf->address ? t->conf->address : t->name, ul, tl);
                add_label(l, sizeof(l), "upstream", ul, true);
                add_label(l, sizeof(l), "target", tl, false);
                if (f == 0)
                    sample(s, names[f], l, sh ? !pt_health_down(sh, now_ms) : 1);
                else if (f == 1) {
                    char m[sizeof(l) + 20];
                    snprintf(m, sizeof(m), "%s,result=\"ok\"", l);
                    sample(s, names[f], m, sh ? atomic_load(&sh->probes_ok) : 0);
                    snprintf(m, sizeof(m), "%s,result=\"failed\"", l);
                    sample(s, names[f], m, sh ? atomic_load(&sh->probes_failed) : 0);
                } else if (f == 2)
                    sample(s, names[f], l, sh ? atomic_load(&sh->marked_down) : 0);
                else
                    sample(s, names[f], l, (uint64_t)(t->weight > 0 ? t->weight : 0));
            }
        }
    }
    family(s, "portico_circuit_breaker_state", "gauge",
           "A route's circuit: 0 closed, 1 open, 2 half-open (routes with a circuit-breaker).");
    for (size_t i = 0; i < w->conf->routes.n; i++) {
        const pt_route_conf_t *r = PT_LIST_AT(w->conf->routes, pt_route_conf_t, i);
        int state = r->fconf && r->fconf[PT_FILTER_CIRCUIT_BREAKER] ? pt_circuit_breaker_state(r->name) : -1;
        if (state < 0)
            continue;
        char l[3 * LBL] = "", rl[PT_MX_LABEL_MAX + 1];
        pt_mx_labels(r->name, NULL, rl, NULL); /* as the route's rows name it */
        add_label(l, sizeof(l), "route", rl, true);
        sample(s, "portico_circuit_breaker_state", l, (uint64_t)state);
    }
}

static void cache_families(pt_scrape_t *s)
{
    const pt_config_t *c = s->w->conf;
    static const char *const ev[] = {"hit", "miss", "stale", "revalidated", "collapsed", "stored"};
    _Static_assert(sizeof(ev) / sizeof(ev[0]) == PT_CST__COUNT, "a name for every cache counter");
    family(s, "portico_cache_requests_total", "counter",
           "Cache lookups by result (hit, miss, stale: served stale), revalidations that got 304 "
           "(revalidated), misses that waited for another's fetch (collapsed), responses stored.");
    for (size_t i = 0; i < c->caches.n; i++) {
        pt_cache_t *ch = pt_cache_get(PT_LIST_AT(c->caches, pt_cache_conf_t, i)->name);
        pt_cache_stats_t st = {0};
        if (ch)
            pt_cache_stats(ch, &st);
        for (int k = 0; k < PT_CST__COUNT; k++) {
            char l[3 * LBL] = "";
            add_label(l, sizeof(l), "cache", PT_LIST_AT(c->caches, pt_cache_conf_t, i)->name, true);
            add_label(l, sizeof(l), "result", ev[k], false);
            sample(s, "portico_cache_requests_total", l, st.counters[k]);
        }
    }
    static const char *const names[] = {"portico_cache_evictions_total", "portico_cache_objects",
                                        "portico_cache_bytes", "portico_cache_capacity_bytes"};
    static const char *const types[] = {"counter", "gauge", "gauge", "gauge"};
    static const char *const helps[] = {"Objects dropped from memory to make room.", "Objects in memory.",
                                        "Bytes of the objects in memory.", "Bytes of memory the cache has."};
    for (int f = 0; f < 4; f++) {
        family(s, names[f], types[f], helps[f]);
        for (size_t i = 0; i < c->caches.n; i++) {
            pt_cache_t *ch = pt_cache_get(PT_LIST_AT(c->caches, pt_cache_conf_t, i)->name);
            pt_cache_stats_t st = {0};
            if (ch)
                pt_cache_stats(ch, &st);
            uint64_t v[] = {st.evictions, st.objects, st.bytes, st.capacity};
            putf(s, "%s{cache=\"%s\"} %llu\n", names[f], PT_LIST_AT(c->caches, pt_cache_conf_t, i)->name,
                 (unsigned long long)v[f]);
        }
    }
    family(s, "portico_cache_disk_bytes", "gauge", "Bytes of the objects of a cache's disk tier.");
    for (size_t i = 0; i < c->caches.n; i++) {
        pt_cache_t *ch = pt_cache_get(PT_LIST_AT(c->caches, pt_cache_conf_t, i)->name);
        pt_cdisk_t *d = ch ? pt_cache_disk(ch) : NULL;
        if (!d)
            continue;
        pt_cdisk_stats_t ds;
        pt_cdisk_stats(d, &ds);
        putf(s, "portico_cache_disk_bytes{cache=\"%s\"} %llu\n", PT_LIST_AT(c->caches, pt_cache_conf_t, i)->name,
             (unsigned long long)ds.bytes);
    }
}

static void zone_families(pt_scrape_t *s)
{
    pt_worker_t *w = s->w;
    family(s, "portico_shm_zone_slots", "gauge", "Slots of a shared-memory table.");
    pt_zone_t *z = w->conf->upstreams.n ? w->upstreams[0].zone : NULL;
    pt_zone_stats_t st = {0};
    if (z)
        pt_zone_stats(z, sizeof(pt_target_shared_t), &st);
    if (z)
        putf(s, "portico_shm_zone_slots{zone=\"%s\"} %zu\n", pt_zone_name(z), st.slots);
    pt_limits_stats_t ls;
    pt_limits_stats(&ls);
    putf(s, "portico_shm_zone_slots{zone=\"limits\"} %zu\n", ls.entries);
    family(s, "portico_shm_zone_used_slots", "gauge", "Slots in use in a shared-memory table.");
    if (z)
        putf(s, "portico_shm_zone_used_slots{zone=\"%s\"} %zu\n", pt_zone_name(z), st.used);
    putf(s, "portico_shm_zone_used_slots{zone=\"limits\"} %zu\n", ls.used);
    family(s, "portico_shm_zone_evictions_total", "counter", "Entries a full shared-memory table evicted.");
    if (z)
        putf(s, "portico_shm_zone_evictions_total{zone=\"%s\"} %llu\n", pt_zone_name(z), st.evicted);
    putf(s, "portico_shm_zone_evictions_total{zone=\"limits\"} %llu\n", (unsigned long long)ls.evicted);
    family(s, "portico_metrics_series_rows", "gauge", "Rows of series the metrics zone holds, and its capacity.");
    uint32_t used = s->kstart[PT_MXK_FILTER + 1] - s->kstart[PT_MXK_FREE + 1]; /* as the scrape found them */
    putf(s, "portico_metrics_series_rows{state=\"used\"} %u\n", used);
    putf(s, "portico_metrics_series_rows{state=\"capacity\"} %u\n", pt_metrics_rows(s->z));
}

/* ---- the slices ---- */

static size_t last_len; /* of this worker's last scrape */

pt_scrape_t *pt_scrape_new(pt_worker_t *w)
{
    pt_scrape_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->w = w;
    s->z = pt_metrics_zone();
    /* room for what the last scrape made, and some: growing a body of
     * megabytes by realloc may copy it whole, in one slice */
    if (last_len) {
        s->out.cap = last_len + last_len / 8;
        s->out.p = malloc(s->out.cap);
        if (!s->out.p)
            s->out.cap = 0;
    }
    if (s->z) { /* the bounds as written, once */
        const double *bounds;
        unsigned nb = pt_metrics_buckets(s->z, &bounds);
        for (unsigned i = 0; i <= nb; i++) {
            pt_scrape_t tmp = {0};
            puts_(&tmp, ",le=\"");
            if (i < nb)
                put_double(&tmp, bounds[i]);
            else
                puts_(&tmp, "+Inf");
            puts_(&tmp, "\"} ");
            snprintf(s->le[i], sizeof(s->le[i]), "%.*s", (int)tmp.out.n, tmp.out.p ? tmp.out.p : "");
            free(tmp.out.p);
        }
    }
    return s;
}

/* Targets added through the admin API have no rows: what this worker
 * sees of them, with their counters from the shared target slots. */
static void added_targets(pt_scrape_t *s, const rowfam_t *f)
{
    pt_worker_t *w = s->w;
    for (size_t i = 0; i < w->conf->upstreams.n; i++) {
        pt_upstream_t *u = &w->upstreams[i];
        pt_runtime_sync(u);
        for (size_t k = 0; k < u->ntargets; k++) {
            const pt_target_t *t = &u->targets[k];
            if (!t->rt_added || !t->shared || t->rt_state == PT_RT_FREE || t->rt_state == PT_RT_REMOVED)
                continue;
            char l[3 * LBL] = "", ul[PT_MX_LABEL_MAX + 1], tl[PT_MX_LABEL_MAX + 1];
            pt_mx_labels(u->conf->name, t->name, ul, tl);
            add_label(l, sizeof(l), "upstream", ul, true);
            add_label(l, sizeof(l), "target", tl, false);
            sample(s, f->name, l, atomic_load_explicit(&t->shared->mx[f->word], memory_order_relaxed));
        }
    }
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int step(pt_scrape_t *s, int64_t budget_us);

/* CPU time: a slice that the kernel preempted did not hold the loop for
 * longer than it ran (the budget itself is in wall time, so a slice that
 * was preempted ends sooner). */
static int64_t cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int pt_scrape_step(pt_scrape_t *s, int64_t budget_us)
{
    int64_t t0 = cpu_us();
    int rc = step(s, budget_us);
    int64_t took = cpu_us() - t0;
    s->slices++;
    if (took > s->longest_us)
        s->longest_us = took;
    return rc;
}

void pt_scrape_slices(const pt_scrape_t *s, unsigned *slices, int64_t *longest_us)
{
    *slices = s->slices;
    *longest_us = s->longest_us;
}

/* Looks at the kind of rows until `until`: false when time is up first.
 * Then sorts them by kind (a pass over a byte a row). */
static bool index_rows(pt_scrape_t *s, int64_t until)
{
    if (!s->kinds) {
        s->nrows = pt_metrics_rows(s->z);
        s->kinds = malloc(s->nrows ? s->nrows : 1);
        s->order = malloc((s->nrows ? s->nrows : 1) * sizeof(*s->order));
        if (!s->kinds || !s->order) {
            s->out.failed = true;
            return false;
        }
    }
    for (; s->scanned < s->nrows; s->scanned++) {
        if ((s->scanned & 63) == 63 && mono_us() >= until)
            return false;
        int k = pt_metrics_kind(s->z, s->scanned);
        s->kinds[s->scanned] = (uint8_t)(k >= PT_MXK_FREE && k <= PT_MXK_FILTER ? k : PT_MXK_FREE);
    }
    uint32_t at[PT_MXK_FILTER + 1] = {0};
    for (uint32_t r = 0; r < s->nrows; r++)
        at[s->kinds[r]]++;
    for (int k = 0, sum = 0; k <= PT_MXK_FILTER + 1; k++) {
        s->kstart[k] = (uint32_t)sum;
        if (k <= PT_MXK_FILTER) {
            sum += (int)at[k];
            at[k] = s->kstart[k];
        }
    }
    for (uint32_t r = 0; r < s->nrows; r++)
        s->order[at[s->kinds[r]]++] = r;
    return true;
}

/* The families after the rows' (process, targets added at run time,
 * caches, zones): one a slice. */
enum { TAIL_FAMILIES = 4 };

static int step(pt_scrape_t *s, int64_t budget_us)
{
    int64_t until = mono_us() + budget_us;
    rowctx_t x = {.s = s};
    if (s->z && s->scanned < pt_metrics_rows(s->z) + 1) {
        if (!index_rows(s, until))
            return s->out.failed ? -1 : 0;
        s->scanned = s->nrows + 1; /* sorted */
        if (mono_us() >= until)
            return 0;
    }
    while (s->family < NROWFAMS + TAIL_FAMILIES && !s->out.failed) {
        if (s->family >= NROWFAMS || !s->z) { /* the small ones, one a slice */
            int tail = s->z ? s->family - NROWFAMS : -1;
            if (tail <= 0)
                process_families(s);
            if (tail < 0 || tail == 1)
                target_families(s);
            if (tail < 0 || tail == 2)
                cache_families(s);
            if (tail == 3)
                zone_families(s);
            s->family = tail < 0 ? NROWFAMS + TAIL_FAMILIES : s->family + 1;
            if (s->family < NROWFAMS + TAIL_FAMILIES && mono_us() >= until)
                return s->out.failed ? -1 : 0;
            continue;
        }
        const rowfam_t *f = &rowfams[s->family];
        if (s->row == 0)
            family(s, f->name, f->type, f->help);
        const uint32_t *rows = s->order + s->kstart[f->kind];
        uint32_t n = s->kstart[f->kind + 1] - s->kstart[f->kind];
        for (unsigned k = 0; s->row < n; s->row++, k++) {
            if ((k & 7) == 7 && mono_us() >= until)
                return s->out.failed ? -1 : 0;
            x.r = rows[s->row];
            if (pt_metrics_row(s->z, x.r, x.l1, sizeof(x.l1), x.l2, sizeof(x.l2)) == f->kind)
                f->render(&x, f);
        }
        if (f->kind == PT_MXK_TARGET)
            added_targets(s, f);
        s->family++;
        s->row = 0;
    }
    return s->out.failed ? -1 : 1;
}

char *pt_scrape_body(pt_scrape_t *s, size_t *len)
{
    *len = s->out.n;
    last_len = s->out.n;
    char *b = s->out.p;
    s->out = (pt_sbuf_t){0}; /* the caller's now */
    return b;
}

void pt_scrape_free(pt_scrape_t *s)
{
    if (!s)
        return;
    free(s->out.p);
    free(s->kinds);
    free(s->order);
    free(s);
}
