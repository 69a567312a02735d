/* The spans of a request: its server span, from its head to its log line,
 * and one client span per upstream attempt, so that retries show as
 * several.  The trace continues the caller's (traceparent, else B3) or
 * starts; the upstream gets a traceparent in the same trace whose parent
 * is the attempt's client span, sampled or not.  Only sampled spans are
 * queued (export.c). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "portico/assert.h"
#include "portico/conn.h"
#include "portico/filter.h"
#include "portico/listener.h"
#include "portico/request.h"
#include "portico/trace.h"
#include "portico/upstream.h"
#include "portico/value.h"
#include "portico/worker.h"

static void span_str(char *dst, size_t size, pt_str_t s)
{
    size_t n = s.p ? (s.n < size - 1 ? s.n : size - 1) : 0;
    if (n)
        memcpy(dst, s.p, n);
    dst[n] = '\0';
}

static void span_cs(char *dst, size_t size, const char *s)
{
    span_str(dst, size, pt_str_from(s ? s : ""));
}

/* A status as error.type: "503". */
static void span_status(char *dst, int status)
{
    dst[pt_fmt_u64(dst, (unsigned)status, 0)] = '\0';
}

static int64_t now_ns(pt_worker_t *w)
{
    return pt_worker_now_us(w) * 1000;
}

pt_trace_req_t *pt_trace_req_start(pt_conn_t *c, const pt_h1_req_t *req)
{
    pt_worker_t *w = c->w;
    if (!w->tracer || c->acc->ls->kind == PT_LS_ADMIN)
        return NULL;
    const pt_trace_conf_t *tc = &w->conf->tracing;
    pt_trace_req_t *t = pt_arena_zalloc(&c->arena, sizeof(*t));
    if (!t)
        return NULL;
    pt_trace_parent_t par;
    if (req) {
        pt_trace_extract(req->headers, req->nheaders, &par);
    } else {
        par.source = PT_TRACE_SRC_NONE;
        par.sampled = -1;
        par.tslen = 0;
    }
    t->source = par.source;
    if (par.source != PT_TRACE_SRC_NONE) {
        memcpy(t->trace_id, par.trace_id, 16);
        memcpy(t->parent_id, par.span_id, 8);
        t->has_parent = true;
    } else {
        pt_trace_new_id(t->trace_id, 16);
    }
    pt_trace_new_id(t->span_id, 8);
    if (tc->parent_based && par.sampled >= 0)
        t->sampled = par.sampled == 1;
    else
        t->sampled = tc->always || pt_trace_rand() < tc->threshold;
    if (par.tslen) {
        t->tracestate = pt_arena_strndup(&c->arena, par.tracestate, par.tslen); /* par is on the stack */
        t->tslen = t->tracestate ? par.tslen : 0;
    }
    pt_trace_hex(t->trace_id, 16, t->trace_hex);
    t->trace_hex[32] = '\0';
    const struct timeval *st = &c->req->ent.start;
    t->start_ns = ((int64_t)st->tv_sec * 1000000 + st->tv_usec) * 1000;
    return t;
}

/* ---- the fields the upstream gets ---- */

/* Appends n bytes at *p (the caller has checked the room). */
static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

size_t pt_trace_put_fields(pt_trace_req_t *t, char *dst, size_t room)
{
    /* on every traced request, sampled or not: plain copies, no printf */
    const char *tid = t->trace_hex;
    char sid[16];
    pt_trace_hex(t->span_id, 8, sid);
    size_t need = 70 + (t->tslen ? 14 + t->tslen : 0) + (t->source == PT_TRACE_SRC_B3 ? 74 : 0) +
                  (t->source == PT_TRACE_SRC_B3_MULTI ? 133 : 0);
    if (need > room)
        return 0;
    char *p = dst, *ids[2] = {NULL, NULL};
    /* until an attempt says otherwise (gRPC), the parent upstream is the server span */
    p = PUT_LIT(p, "traceparent: 00-");
    p = put(p, tid, 32);
    *p++ = '-';
    ids[0] = p;
    p = put(p, sid, 16);
    p = put(p, t->sampled ? "-01\r\n" : "-00\r\n", 5);
    if (t->tslen) {
        p = PUT_LIT(p, "tracestate: ");
        p = put(p, t->tracestate, t->tslen);
        p = PUT_LIT(p, "\r\n");
    }
    if (t->source == PT_TRACE_SRC_B3) { /* b3: TRACE-SPAN-SAMPLED-PARENT */
        p = PUT_LIT(p, "b3: ");
        p = put(p, tid, 32);
        *p++ = '-';
        ids[1] = p;
        p = put(p, sid, 16);
        p = put(p, t->sampled ? "-1-" : "-0-", 3);
        p = put(p, sid, 16);
        p = PUT_LIT(p, "\r\n");
    } else if (t->source == PT_TRACE_SRC_B3_MULTI) {
        p = PUT_LIT(p, "X-B3-TraceId: ");
        p = put(p, tid, 32);
        p = PUT_LIT(p, "\r\nX-B3-SpanId: ");
        ids[1] = p;
        p = put(p, sid, 16);
        p = PUT_LIT(p, "\r\nX-B3-ParentSpanId: ");
        p = put(p, sid, 16);
        p = put(p, t->sampled ? "\r\nX-B3-Sampled: 1\r\n" : "\r\nX-B3-Sampled: 0\r\n", 19);
    }
    PT_ASSERT((size_t)(p - dst) <= need);
    t->up_ids[0] = ids[0];
    t->up_ids[1] = ids[1];
    return (size_t)(p - dst);
}

/* ---- client spans ---- */

void pt_trace_attempt_start(pt_conn_t *c, const struct pt_target *tg)
{
    pt_trace_req_t *t = c->req->trace;
    if (t->in_attempt)
        pt_trace_attempt_end(c, 0);
    pt_trace_new_id(t->attempt_id, 8);
    for (int i = 0; i < 2; i++)
        if (t->up_ids[i]) /* each attempt is the upstream's parent in turn */
            pt_trace_hex(t->attempt_id, 8, t->up_ids[i]);
    t->attempts++;
    t->target = tg;
    t->attempt_error = NULL;
    t->attempt_start_ns = now_ns(c->w);
    t->in_attempt = true;
}

void pt_trace_attempt_error(pt_conn_t *c, const char *type)
{
    pt_trace_req_t *t = c->req->trace;
    if (t->in_attempt && !t->attempt_error)
        t->attempt_error = type;
}

/* "host" and port of "host:port" or "[v6]:port" (as a target is written). */
static void split_host_port(const char *hp, char *host, size_t size, int *port)
{
    const char *colon = strrchr(hp, ':');
    const char *close = strrchr(hp, ']');
    *port = 0;
    if (colon && (!close || colon > close)) {
        char *end;
        long v = strtol(colon + 1, &end, 10);
        *port = colon[1] >= '0' && colon[1] <= '9' && !*end && v > 0 && v <= 65535 ? (int)v : 0; /* else none */
        span_str(host, size, (pt_str_t){hp, (size_t)(colon - hp)});
    } else {
        span_str(host, size, pt_str_from(hp));
    }
}

/* Are t's spans queued: sampled, and not on a route with tracing: false? */
static bool recorded(const pt_conn_t *c, const pt_trace_req_t *t)
{
    return t->sampled && c->w->tracer && !(c->req->route && !c->req->route->tracing);
}

/* A target's address as text, formatted again only when the target or
 * its address (a new resolution) changes: most spans go to the same. */
static void target_ip(const pt_target_t *tg, char *dst, size_t size)
{
    static const pt_target_t *last;
    static struct sockaddr_storage last_addr;
    static char text[48];
    if (tg != last || memcmp(&last_addr, &tg->addr, sizeof(last_addr)) != 0) {
        pt_addr_format_ip((const struct sockaddr *)&tg->addr, text, sizeof(text));
        last = tg;
        memcpy(&last_addr, &tg->addr, sizeof(last_addr));
    }
    span_cs(dst, size, text);
}

/* A span of t's trace, zeroed but for its ids and kind. */
static void span_init(pt_span_t *s, const pt_trace_req_t *t, int kind, const uint8_t *id, const uint8_t *parent)
{
    memset(s, 0, sizeof(*s));
    memcpy(s->trace_id, t->trace_id, 16);
    memcpy(s->span_id, id, 8);
    if (parent)
        memcpy(s->parent_id, parent, 8);
    s->has_parent = parent != NULL;
    s->kind = (uint8_t)kind;
}

void pt_trace_attempt_end(pt_conn_t *c, int status)
{
    pt_trace_req_t *t = c->req->trace;
    if (!t->in_attempt)
        return;
    t->in_attempt = false;
    if (!recorded(c, t))
        return;
    pt_span_t s;
    span_init(&s, t, PT_SPAN_CLIENT, t->attempt_id, t->span_id);
    s.resend = (uint8_t)(t->attempts > 256 ? 255 : t->attempts - 1);
    s.status = status;
    s.start_ns = t->attempt_start_ns;
    s.end_ns = now_ns(c->w);
    span_str(s.method, sizeof(s.method), c->req->ent.method);
    const pt_target_t *tg = t->target;
    if (tg) {
        const char *hp = tg->log_name ? tg->log_name : tg->conf ? tg->conf->address : tg->name;
        split_host_port(hp, s.server_address, sizeof(s.server_address), &s.server_port);
        if (tg->addrlen)
            target_ip(tg, s.peer, sizeof(s.peer));
    }
    if (t->attempt_error)
        span_cs(s.error_type, sizeof(s.error_type), t->attempt_error);
    else if (status >= 400 || status == 0) /* a client span fails with a 4xx too (semantic conventions) */
        status ? span_status(s.error_type, status) : span_cs(s.error_type, sizeof(s.error_type), "aborted");
    pt_tracer_push(c->w->tracer, &s);
}

/* ---- the server span ---- */

static void ratelimit(const pt_fx_t *fx, char *dst, size_t size)
{
    if (!fx)
        return;
    switch (fx->limit_refused) {
    case 'r':
        span_cs(dst, size, "rejected: limit-req");
        return;
    case 'n':
        span_cs(dst, size, "rejected: limit-conn");
        return;
    case 0:
        if (fx->confs[PT_FILTER_LIMIT_REQ] || fx->confs[PT_FILTER_LIMIT_COUNT] || fx->confs[PT_FILTER_LIMIT_CONN])
            span_cs(dst, size, "allowed");
        return;
    default:
        span_cs(dst, size, "rejected: limit-count");
        return;
    }
}

static void server_attrs(pt_span_t *s, const pt_req_t *r, const pt_fx_t *fx)
{
    const pt_alog_entry_t *e = &r->ent;
    span_str(s->method, sizeof(s->method), e->method);
    pt_str_t path = e->target;
    for (size_t i = 0; i < path.n; i++)
        if (path.p[i] == '?' || path.p[i] == '#') { /* the query (and a fragment) left out: it may carry a credential */
            path.n = i;
            break;
        }
    const char *scheme = path.n && path.p[0] != '/' ? memmem(path.p, path.n, "://", 3) : NULL;
    if (scheme) { /* an absolute-form target: its path alone */
        const char *slash = memchr(scheme + 3, '/', (size_t)(path.p + path.n - scheme - 3));
        path = slash ? (pt_str_t){slash, (size_t)(path.p + path.n - slash)} : PT_STR("/");
    }
    span_str(s->path, sizeof(s->path), path);
    if (r->route) {
        const pt_route_conf_t *rc = r->route;
        const char *rt = rc->match.paths.n == 1 && rc->match.paths.v[0] ? rc->match.paths.v[0]
                         : rc->log_name                                 ? rc->log_name
                                                                        : rc->name;
        span_cs(s->route, sizeof(s->route), rt);
    }
    char host[sizeof(s->server_address)];
    span_str(host, sizeof(host), e->host);
    split_host_port(host, s->server_address, sizeof(s->server_address), &s->server_port);
    span_str(s->peer, sizeof(s->peer), pt_conn_peer_ip(r->c)); /* formatted once per connection */
    if (e->protocol.n == 8) /* HTTP/1.0, HTTP/1.1, HTTP/2.0 */
        span_cs(s->protocol, sizeof(s->protocol),
                e->protocol.p[5] == '2' ? "2" : e->protocol.p[7] == '0' ? "1.0" : "1.1");
    s->status = e->status;
    if (e->status >= 500)
        span_status(s->error_type, e->status);
    if (e->consumer)
        span_cs(s->consumer, sizeof(s->consumer), e->consumer);
    span_cs(s->cache_status, sizeof(s->cache_status), e->cache_status); /* as $cache_status: hit, miss, ... */
    ratelimit(fx, s->ratelimit, sizeof(s->ratelimit));
}

void pt_trace_req_end(pt_conn_t *c, const pt_fx_t *fx)
{
    pt_req_t *r = c->req;
    pt_trace_req_t *t = r->trace;
    if (t->in_attempt) { /* never left open by the proxy; a safety net */
        pt_trace_attempt_error(c, "aborted");
        pt_trace_attempt_end(c, 0);
    }
    if (!recorded(c, t))
        return;
    pt_span_t s;
    span_init(&s, t, PT_SPAN_SERVER, t->span_id, t->has_parent ? t->parent_id : NULL);
    s.start_ns = t->start_ns;
    s.end_ns = now_ns(c->w);
    server_attrs(&s, r, fx);
    pt_tracer_push(c->w->tracer, &s);
}
