/* Span export: each worker queues its finished spans in a ring of
 * `queue_size` and sends them in batches of at most `batch_size`, every
 * `interval` or as soon as a batch is full, through the internal HTTP
 * client (POST to the endpoint's upstream).  One export is in flight at a
 * time; while it is, spans queue up, and past the ring's size they are
 * dropped and counted: a slow or dead collector never holds a request.
 * A failed export drops its spans (counted) and is logged at most once a
 * minute.  A worker that exits sends what it holds, waiting a bounded
 * time.  Counts go to the worker's entry on the status board (/status). */
#include "config.h"

#include <event2/event.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "portico/assert.h"
#include "portico/client.h"
#include "portico/config.h"
#include "portico/log.h"
#include "portico/trace.h"
#include "portico/upstream.h"
#include "portico/value.h"
#include "portico/worker.h"

#define PT_TRACER_MAGIC 0x54524352u
#define LOG_EVERY_MS 60000

struct pt_tracer {
    unsigned magic;
    pt_worker_t *w;
    const pt_trace_conf_t *tc;
    pt_upstream_t *up;
    pt_span_t *ring;
    size_t cap, head, count;
    pt_client_t *cl;   /* the export under way, or NULL */
    size_t sending;    /* its spans */
    pt_sbuf_t body;
    struct event tick; /* every interval */
    struct event kick; /* a batch is full: sent from the loop, not from the request's end */
    bool kick_pending;
    char host[300];
    char *target;
    char *fields;      /* Content-Type, User-Agent and the configured headers */
    char *log_url;     /* the endpoint without its query (it may hold a key) */
    /* failures since the last report */
    int64_t last_log_ms;
    uint64_t failures_unreported, dropped_unreported;
};

static pt_status_worker_t *board(pt_tracer_t *tr)
{
    return tr->w->board >= 0 ? &tr->w->status->workers[tr->w->board] : NULL;
}

static void count(pt_tracer_t *tr, size_t off, uint64_t n)
{
    pt_status_worker_t *b = board(tr);
    if (b && n)
        __atomic_add_fetch((uint64_t *)((char *)b + off), n, __ATOMIC_RELAXED);
}

#define COUNT(tr, field, n) count((tr), offsetof(pt_status_worker_t, field), (n))

/* A failed export, said at most once a minute with what failed since. */
static void report_failure(pt_tracer_t *tr, const char *why, size_t spans)
{
    COUNT(tr, trace_failed_exports, 1);
    COUNT(tr, trace_dropped, spans);
    tr->failures_unreported++;
    tr->dropped_unreported += spans;
    int64_t now = pt_worker_now_us(tr->w) / 1000;
    if (tr->last_log_ms && now - tr->last_log_ms < LOG_EVERY_MS)
        return;
    pt_log_warn("tracing: export to %s failed: %s; %llu export%s failed and %llu spans were dropped since the last "
                "report",
                tr->log_url, why, (unsigned long long)tr->failures_unreported,
                tr->failures_unreported == 1 ? "" : "s", (unsigned long long)tr->dropped_unreported);
    tr->last_log_ms = now;
    tr->failures_unreported = tr->dropped_unreported = 0;
}

static void export_batch(pt_tracer_t *tr);

static void on_exported(void *arg, const pt_client_resp_t *r)
{
    pt_tracer_t *tr = arg;
    PT_CHECK_MAGIC(tr, PT_TRACER_MAGIC);
    size_t n = tr->sending;
    tr->cl = NULL;
    tr->sending = 0;
    if (r->status >= 200 && r->status < 300) {
        COUNT(tr, trace_exported, n);
    } else {
        char why[160];
        if (r->status > 0)
            snprintf(why, sizeof(why), "the collector answered %d", r->status);
        else
            snprintf(why, sizeof(why), "%s", r->status == PT_CLIENT_TIMEOUT ? "timed out" : r->error ? r->error : "failed");
        report_failure(tr, why, n);
    }
    if (tr->count >= (size_t)tr->tc->batch_size && !tr->kick_pending) {
        tr->kick_pending = true;
        event_active(&tr->kick, EV_TIMEOUT, 0);
    }
}

/* Sends the oldest spans, at most a batch and at most up to the ring's
 * end (the rest go next). */
static void export_batch(pt_tracer_t *tr)
{
    if (tr->cl || !tr->count)
        return;
    size_t n = tr->count < (size_t)tr->tc->batch_size ? tr->count : (size_t)tr->tc->batch_size;
    if (n > tr->cap - tr->head)
        n = tr->cap - tr->head;
    tr->body.n = 0;
    tr->body.failed = false;
    if (tr->tc->exporter == PT_TRACE_ZIPKIN)
        pt_trace_encode_zipkin(&tr->body, tr->tc, tr->ring + tr->head, n);
    else
        pt_trace_encode_otlp(&tr->body, tr->tc, tr->ring + tr->head, n);
    tr->head = (tr->head + n) % tr->cap;
    tr->count -= n;
    if (tr->body.failed) {
        report_failure(tr, "out of memory", n);
        return;
    }
    pt_pick_ctx_t ctx = {PT_STR_NULL, pt_worker_now_us(tr->w)};
    size_t idx = pt_balancer_pick(tr->up, NULL, &ctx);
    if (idx == PT_PICK_NONE || !tr->up->targets[idx].addrlen) {
        report_failure(tr, idx == PT_PICK_NONE ? "no target is up" : "the collector's name is not resolved", n);
        return;
    }
    pt_client_req_t rq = {
        .method = "POST",
        .target = pt_str_from(tr->target),
        .host = pt_str_from(tr->host),
        .headers = pt_str_from(tr->fields),
        .body = {tr->body.p, tr->body.n},
        .timeout_ms = tr->tc->timeout,
    };
    tr->sending = n;
    tr->cl = pt_client_start(tr->w, tr->up, idx, &rq, on_exported, tr);
    if (!tr->cl) {
        tr->sending = 0;
        report_failure(tr, "cannot connect", n);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    pt_tracer_t *tr = arg;
    PT_CHECK_MAGIC(tr, PT_TRACER_MAGIC);
    export_batch(tr);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    pt_tracer_t *tr = arg;
    PT_CHECK_MAGIC(tr, PT_TRACER_MAGIC);
    tr->kick_pending = false;
    export_batch(tr);
}

void pt_tracer_push(pt_tracer_t *tr, const pt_span_t *s)
{
    if (tr->count == tr->cap) {
        COUNT(tr, trace_dropped, 1);
        return;
    }
    tr->ring[(tr->head + tr->count) % tr->cap] = *s;
    tr->count++;
    if (tr->count >= (size_t)tr->tc->batch_size && !tr->cl && !tr->kick_pending) {
        tr->kick_pending = true;
        event_active(&tr->kick, EV_TIMEOUT, 0);
    }
}

/* The fields of every export: ours, then the configured ones. */
static char *collector_fields(const pt_trace_conf_t *tc)
{
    static const char ours[] = "Content-Type: application/json\r\nUser-Agent: portico/" PACKAGE_VERSION "\r\n";
    size_t n = sizeof(ours);
    for (size_t i = 0; i < tc->headers.n; i++)
        n += strlen(tc->headers.v[i].key) + strlen(tc->headers.v[i].value) + 4;
    char *s = malloc(n), *p = s;
    if (!s)
        return NULL;
    p += sprintf(p, "%s", ours);
    for (size_t i = 0; i < tc->headers.n; i++)
        p += sprintf(p, "%s: %s\r\n", tc->headers.v[i].key, tc->headers.v[i].value);
    return s;
}

pt_tracer_t *pt_tracer_start(pt_worker_t *w)
{
    const pt_trace_conf_t *tc = &w->conf->tracing;
    pt_tracer_t *tr = calloc(1, sizeof(*tr));
    pt_span_t *ring = calloc((size_t)tc->queue_size, sizeof(*ring));
    const pt_uri_t *u = tc->uri;
    char *target = u ? malloc(strlen(u->path_query) + 2) : NULL;
    char *fields = collector_fields(tc), *log_url = strndup(tc->endpoint, strcspn(tc->endpoint, "?"));
    const pt_upstream_conf_t *uc = u ? pt_conf_uri_upstream(w->conf, u) : NULL; /* synth.c made it */
    if (!tr || !ring || !target || !fields || !log_url || !uc) {
        free(tr);
        free(ring);
        free(target);
        free(fields);
        free(log_url);
        pt_log_error("cannot start tracing: %s", uc || !u ? "out of memory" : "no upstream for the endpoint");
        return NULL;
    }
    sprintf(target, "%s%s", u->path_query[0] == '?' ? "/" : "", u->path_query);
    tr->fields = fields;
    tr->log_url = log_url;
    bool dflt = u->port == (u->https ? 443 : 80);
    snprintf(tr->host, sizeof(tr->host), dflt ? "%s" : "%s:%d", u->host, u->port);
    tr->magic = PT_TRACER_MAGIC;
    tr->w = w;
    tr->tc = tc;
    tr->up = pt_worker_upstream(w, uc);
    tr->ring = ring;
    tr->cap = (size_t)tc->queue_size;
    tr->target = target;
    uint64_t seed[2];
    if (RAND_bytes((unsigned char *)seed, sizeof(seed)) != 1) {
        seed[0] = (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL);
        seed[1] = (uint64_t)(uintptr_t)tr;
    }
    pt_trace_seed(seed[0], seed[1]);
    event_assign(&tr->tick, w->base, -1, EV_PERSIST, on_tick, tr);
    event_assign(&tr->kick, w->base, -1, 0, on_kick, tr);
    struct timeval tv = {tc->interval / 1000, (tc->interval % 1000) * 1000};
    evtimer_add(&tr->tick, &tv);
    return tr;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    *(bool *)arg = true;
}

void pt_tracer_stop(pt_tracer_t *tr, int64_t timeout_ms)
{
    if (!tr)
        return;
    evtimer_del(&tr->tick);
    event_del(&tr->kick);
    /* what is held goes out, one batch after another, within timeout_ms */
    bool expired = false;
    struct event deadline;
    evtimer_assign(&deadline, tr->w->base, on_deadline, &expired);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(&deadline, &tv);
    while ((tr->count || tr->cl) && !expired) {
        export_batch(tr);
        if (tr->cl)
            event_base_loop(tr->w->base, EVLOOP_ONCE);
    }
    evtimer_del(&deadline);
    if (tr->cl) {
        pt_client_cancel(tr->cl);
        tr->cl = NULL;
        report_failure(tr, "the worker exits", tr->sending);
    }
    COUNT(tr, trace_dropped, tr->count);
    evtimer_del(&tr->tick); /* an export that ended in the loop above may have armed them again */
    event_del(&tr->kick);
    free(tr->ring);
    free(tr->target);
    free(tr->fields);
    free(tr->log_url);
    free(tr->body.p);
    tr->magic = 0;
    free(tr);
}
