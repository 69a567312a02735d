/* The request: its object, its id, its log entry, its way through the
 * router and the filters to a content source, and Portico's own answers
 * (see request.h). */
#include "config.h"

#include <event2/event.h>
#include <string.h>
#include <strings.h>

#include "portico/admin.h"
#include "portico/assert.h"
#include "portico/filter.h"
#include "portico/grpc.h"
#include "portico/http.h"
#include "portico/log.h"
#include "portico/metrics.h"
#include "portico/path.h"
#include "portico/proxy.h"
#include "portico/request.h"
#include "portico/response.h"
#include "portico/tls.h"
#include "portico/trace.h"

/* ---- the request's id ---- */

static void make_id(pt_req_t *r)
{
    static const char hex[] = "0123456789abcdef";
    pt_worker_t *w = r->c->w;
    uint64_t a = w->reqid_seed, b = ++w->reqid_seq;
    for (int i = 15; i >= 0; i--, a >>= 4)
        r->reqid[i] = hex[a & 15];
    for (int i = 31; i >= 16; i--, b >>= 4)
        r->reqid[i] = hex[b & 15];
    r->reqid[32] = '\0';
    r->reqid_len = 32;
}

void pt_req_redact_query(pt_conn_t *c, const pt_h1_req_t *req, const char *name)
{
    pt_str_t t = c->req->ent.target;
    const char *q = t.p ? memchr(t.p, '?', t.n) : NULL;
    bool any = false;
    for (const char *p = q ? q + 1 : NULL, *end = t.p + t.n; p && p < end && !any;) {
        const char *amp = memchr(p, '&', (size_t)(end - p)), *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        any = eq && pt_h1_query_name_is((pt_str_t){p, (size_t)(eq - p)}, name) && !(e - eq == 4 && !memcmp(eq, "=***", 4));
        p = amp ? amp + 1 : NULL;
    }
    if (!any)
        return;
    size_t max = 4 * t.n + 4; /* each value may become *** */
    char *out = pt_arena_alloc(&c->arena, max + 1);
    if (!out) {
        c->req->ent.target = PT_STR("-"); /* rather than the secret */
        return;
    }
    size_t n = (size_t)(q + 1 - t.p);
    memcpy(out, t.p, n);
    const char *p = q + 1, *end = t.p + t.n;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p)), *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p)), *ke = eq ? eq : e;
        bool secret = eq && pt_h1_query_name_is((pt_str_t){p, (size_t)(ke - p)}, name);
        size_t keep = secret ? (size_t)(eq + 1 - p) : (size_t)(e - p);
        memcpy(out + n, p, keep);
        n += keep;
        if (secret) {
            memcpy(out + n, "***", 3);
            n += 3;
        }
        if (amp)
            out[n++] = '&';
        p = amp ? amp + 1 : end;
    }
    out[n] = '\0';
    c->req->ent.target = (pt_str_t){out, n};
    (void)req;
}

void pt_req_set_id(pt_req_t *r, pt_str_t id)
{
    size_t n = id.n < PT_REQID_MAX ? id.n : PT_REQID_MAX;
    memmove(r->reqid, id.p, n);
    r->reqid[n] = '\0';
    r->reqid_len = (uint8_t)n;
}

/* ---- nothing points into the input buffer ---- */

static bool in_ibuf(const pt_conn_t *c, pt_str_t s)
{
    return s.n && s.p >= c->ibuf && s.p < c->ibuf + c->icap;
}

/* One string into the request arena if it points into the input buffer;
 * `max` caps what is kept (0: all).  False when the arena is full. */
static bool stash(pt_conn_t *c, pt_str_t *f, size_t max)
{
    if (!in_ibuf(c, *f))
        return true;
    size_t n = max && f->n > max ? max : f->n;
    char *copy = pt_arena_strndup(&c->arena, f->p, n);
    *f = copy ? (pt_str_t){copy, n} : PT_STR_NULL;
    return copy != NULL;
}

void pt_req_detach(pt_conn_t *c)
{
    pt_req_t *r = c->req;
    bool ok = true;
    pt_str_t *fields[] = {&r->ent.method, &r->ent.target, &r->ent.protocol, &r->ent.host, &r->ent.user_agent,
                          &r->ent.referer};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        stash(c, fields[i], 2048); /* the log keeps a prefix of a long field */
    for (size_t i = 0; i < r->match.nparams; i++) {
        ok &= stash(c, &r->match.params[i].name, 0);
        ok &= stash(c, &r->match.params[i].value, 0);
    }
    pt_fx_t *fx = r->fx;
    for (size_t i = 0; fx && i < fx->nreq; i++) {
        ok &= stash(c, &fx->req[i].name, 0);
        ok &= stash(c, &fx->req[i].value, 0);
    }
    for (size_t i = 0; fx && i < fx->nresp; i++) {
        ok &= stash(c, &fx->resp[i].name, 0);
        ok &= stash(c, &fx->resp[i].value, 0);
    }
    if (fx) {
        ok &= stash(c, &fx->path, 0);
        ok &= stash(c, &fx->query, 0);
        if (fx->confs[PT_FILTER_RESPONSE_HEADERS]) { /* its templates may want ${host} and ${path} later */
            ok &= stash(c, &fx->host, 0);
            ok &= stash(c, &fx->req_path, 0);
        } else { /* no one will: not copied (a filter that runs again sets them again) */
            fx->host = fx->req_path = PT_STR_NULL;
        }
    }
    if (!ok)
        c->closing = true; /* the arena is full: this request cannot go on safely */
    pt_req_assert_detached(c);
}

void pt_req_assert_detached(const pt_conn_t *c)
{
#ifdef PT_DEBUG
    const pt_req_t *r = c->req;
    for (size_t i = 0; i < r->match.nparams; i++)
        PT_ASSERT(!in_ibuf(c, r->match.params[i].name) && !in_ibuf(c, r->match.params[i].value));
    PT_ASSERT(!in_ibuf(c, r->ent.target) && !in_ibuf(c, r->ent.host) && !in_ibuf(c, r->ent.method));
    for (size_t i = 0; r->fx && i < r->fx->nresp; i++)
        PT_ASSERT(!in_ibuf(c, r->fx->resp[i].name) && !in_ibuf(c, r->fx->resp[i].value));
    for (size_t i = 0; r->fx && i < r->fx->nreq; i++)
        PT_ASSERT(!in_ibuf(c, r->fx->req[i].name) && !in_ibuf(c, r->fx->req[i].value));
#else
    (void)c;
#endif
}

/* ---- start and end ---- */

pt_req_t *pt_req_start(pt_conn_t *c, const pt_h1_req_t *req)
{
    pt_req_t *r = pt_arena_alloc(&c->arena, sizeof(*r));
    if (!r) {
        c->closing = true;
        return NULL;
    }
    /* What a request starts with; the rest (the route's parameters, the
     * body state) is set before it is read.  Not zeroed whole: the
     * parameters alone are half a kilobyte, on every request. */
    r->c = c;
    memset(&r->ent, 0, sizeof(r->ent));
    c->unsent = 0;
    r->route = NULL;
    r->match.route = NULL;
    r->match.allowed = 0;
    r->match.nparams = 0;
    r->fx = NULL;
    r->grpc = false;
    r->method_bit = req ? req->method_bit : 0;
    r->proxy = NULL;
    r->grpc_call = NULL;
    r->scrape = NULL;
    r->body_left = 0;
    r->body_chunked = false;
    c->req = r;
    pt_alog_entry_t *e = &r->ent;
    e->start = c->head_start;
    e->peer = (const struct sockaddr *)&c->peer;
    e->peer_ip = pt_conn_peer_ip(c); /* made once a connection, kept alive or not */
    e->upstream_us = e->upstream_connect_us = e->upstream_header_us = -1;
    e->admin = c->acc->ls->kind == PT_LS_ADMIN;
    e->arena = &c->arena;
    if (c->ssl) {
        e->tls_protocol = pt_tls_protocol(c->ssl);
        e->tls_cipher = pt_tls_cipher(c->ssl);
    }
    if (req) {
        e->method = req->method;
        e->target = req->target;
        e->protocol = pt_conn_is_stream(c) ? PT_STR("HTTP/2.0") : (pt_str_t){req->minor ? "HTTP/1.1" : "HTTP/1.0", 8};
        e->host = req->host;
        if (pt_accesslog_on(e->admin)) { /* looked up only for the log */
            const pt_h1_header_t *h = pt_h1_find(req, PT_STR("user-agent"));
            e->user_agent = h ? h->value : PT_STR_NULL;
            h = pt_h1_find(req, PT_STR("referer"));
            e->referer = h ? h->value : PT_STR_NULL;
            /* copied now: the head's buffer moves before the line is written */
            pt_accesslog_take(e, PT_ALOG_HDR_REQ, req->headers, req->nheaders);
        }
    }
    make_id(r);
    r->trace = pt_trace_req_start(c, req);
    if (r->trace)
        e->trace_id = r->trace->trace_hex;
    return r;
}

void pt_req_end(pt_conn_t *c)
{
    pt_req_t *r = c->req;
    if (!r)
        return;
    struct timeval now;
    event_base_gettimeofday_cached(c->w->base, &now);
    r->ent.request_us = (int64_t)(now.tv_sec - r->ent.start.tv_sec) * 1000000 + (now.tv_usec - r->ent.start.tv_usec);
    pt_fx_t *fx = r->fx;
    if (r->fx) {
        pt_filters_done(c, r->fx); /* before the arena that holds their state is reset */
        r->fx = NULL;
    }
    if (r->trace) /* after on_done (the cache's verdict), while the filters' state is still there */
        pt_trace_req_end(c, fx);
    if (r->scrape)
        pt_admin_scrape_end(r);
    r->ent.route = r->route ? r->route->log_name : NULL;
    r->ent.match = r->route ? &r->match : NULL;
    r->ent.policy = r->route && r->route->access_log.node ? &r->route->access_log : NULL;
    r->ent.request_id = (pt_str_t){r->reqid, r->reqid_len};
    const pt_config_t *cf = c->w->conf;
    if (cf->nsecret_args && r->ent.target.p && memchr(r->ent.target.p, '?', r->ent.target.n))
        for (size_t i = 0; i < cf->nsecret_args; i++) /* on any route, read or not: no log line holds a key */
            pt_req_redact_query(c, NULL, cf->secret_args[i]);
    pt_accesslog_write(&r->ent);
    if (c->acc->ls->kind != PT_LS_ADMIN) /* the admin API's requests are not traffic */
        pt_metrics_request(pt_mx_route(r->route ? r->route->index : cf->routes.n),
                           r->method_bit ? r->method_bit : pt_http_method(r->ent.method), /* parsed once */
                           r->ent.status, r->ent.request_us, r->ent.bytes_in, r->ent.bytes_out,
                           r->route ? pt_mx_upstream(r->route->up) : PT_MX_NONE, r->ent.upstream_us);
    c->req = NULL;
    pt_arena_reset(&c->arena);
}

/* ---- Portico's own answers ---- */

void pt_req_respond(pt_conn_t *c, int status, const char *ctype, const char *body, size_t len, const char *extra,
                    bool head_only)
{
    pt_req_respond_held(c, status, ctype, body, len, extra, head_only, NULL);
}

void pt_req_respond_held(pt_conn_t *c, int status, const char *ctype, const char *body, size_t len,
                         const char *extra, bool head_only, pt_outq_hold_t *hold)
{
    pt_req_t *r = c->req;
    PT_ASSERT(r != NULL);
    size_t start = c->out.pending;
    if (r->grpc && status >= 300) { /* a gRPC client reads statuses, not pages */
        char msg[128];
        size_t m = len < sizeof(msg) - 1 ? len : sizeof(msg) - 1;
        memcpy(msg, body, m);
        while (m && (msg[m - 1] == '\n' || msg[m - 1] == '\r'))
            m--;
        msg[m] = '\0';
        /* the filters' fields (a limit's RateLimit) and the extra lines
         * (Retry-After) go on the trailers-only answer too */
        char more[1024];
        size_t k = 0;
        more[0] = '\0';
        if (extra)
            k = (size_t)snprintf(more, sizeof(more), "%s", extra);
        if (r->fx) {
            pt_filters_response(c, r->fx, status, false);
            for (size_t i = 0; i < r->fx->nresp && k < sizeof(more); i++) {
                const pt_hdr_edit_t *e = &r->fx->resp[i];
                if (e->op != PT_HDR_REMOVE)
                    k += (size_t)snprintf(more + k, sizeof(more) - k, "%.*s: %.*s\r\n", PT_STR_FMT(e->name),
                                          PT_STR_FMT(e->value));
            }
        }
        if (k >= sizeof(more)) /* never cut a line: without them rather */
            more[0] = '\0';
        pt_grpc_error_extra(c, pt_grpc_status_of(status), msg, more);
        r->ent.status = status;
        r->ent.bytes_out += c->out.pending - start;
        if (hold)
            hold->release(hold, false);
        return;
    }
    if (r->fx)
        pt_filters_response(c, r->fx, status, false); /* the same edits as any other answer */
    pt_h1_header_t ct = {PT_STR("Content-Type"), pt_str_from(ctype)};
    int minor = r->ent.protocol.n == 8 && r->ent.protocol.p[7] == '0' ? 0 : 1;
    pt_resp_head_t h = {
        .status = status,
        .fields = &ct,
        .nfields = 1,
        .extra = extra ? pt_str_from(extra) : PT_STR_NULL,
        .server = true,
        .date = true,
        .content_length = (int64_t)len,
        .close = c->closing,
        .keep_alive_1_0 = !c->closing && minor == 0,
        .log = &r->ent,
    };
    if (!pt_resp_write_head(&c->out, &h, r->fx, pt_worker_date(c->w))) {
        c->closing = true;
        if (hold)
            hold->release(hold, false);
        return;
    }
    if (!head_only && !hold)
        pt_conn_queue(c, body, len);
    else if (!head_only && len && pt_outq_ref_held(&c->out, body, len, hold))
        hold = NULL; /* the queue releases it */
    else if (!head_only && len)
        c->closing = true; /* out of segments: cut short (never with a fresh response queue) */
    if (hold)
        hold->release(hold, false);
    r->ent.status = status;
    r->ent.bytes_out += c->out.pending - start;
}

void pt_req_respond_error(pt_conn_t *c, int status)
{
    char body[64];
    size_t n = pt_fmt_u64(body, (unsigned)status, 0);
    body[n++] = ' ';
    const char *reason = pt_http_reason(status);
    size_t rl = strlen(reason) < sizeof(body) - n - 2 ? strlen(reason) : sizeof(body) - n - 2;
    memcpy(body + n, reason, rl);
    n += rl;
    body[n++] = '\n';
    c->closing = true;
    pt_req_respond(c, status, "text/plain", body, n, NULL, false);
}

/* ---- content sources ---- */

/* A respond route: its answer, from the configuration. */
static void respond_start(pt_conn_t *c, const pt_h1_req_t *req, const pt_route_conf_t *rc)
{
    pt_req_t *r = c->req;
    if (req->upgrade)
        c->closing = true; /* nothing to upgrade to without an upstream */
    size_t start = c->out.pending;
    const pt_fx_t *fx = r->fx;
    if (fx)
        pt_filters_response(c, r->fx, (int)rc->respond.status, false);
    if ((fx && fx->nresp) || pt_accesslog_wants_sent(&r->ent)) {
        /* response headers edited (or logged): the head goes the common
         * way instead of the one prebuilt at load */
        size_t n = rc->respond.headers.n;
        pt_h1_header_t fields[n ? n : 1];
        bool ctype = false;
        for (size_t i = 0; i < n; i++) {
            fields[i] = (pt_h1_header_t){pt_str_from(rc->respond.headers.v[i].key),
                                         pt_str_from(rc->respond.headers.v[i].value)};
            ctype |= PT_STR_IEQ(fields[i].name, "content-type");
        }
        pt_resp_head_t h = {
            .status = (int)rc->respond.status,
            .fields = fields,
            .nfields = n,
            .extra = ctype || (fx && pt_fx_overrides(fx->resp, fx->nresp, PT_STR("content-type")))
                         ? PT_STR_NULL
                         : PT_STR("Content-Type: text/plain\r\n"),
            .server = true,
            .date = true,
            .content_length = (int64_t)strlen(rc->respond.body),
            .close = c->closing,
            .keep_alive_1_0 = !c->closing && req->minor == 0,
            .log = &r->ent,
        };
        if (!pt_resp_write_head(&c->out, &h, fx, pt_worker_date(c->w)))
            c->closing = true;
    } else {
        pt_conn_queue(c, rc->resp_head, rc->resp_head_len);
        const char *d = pt_worker_date(c->w);
        pt_conn_queue(c, d, strlen(d));
        if (c->closing)
            pt_conn_queue(c, "Connection: close\r\n\r\n", 21);
        else if (req->minor == 0)
            pt_conn_queue(c, "Connection: keep-alive\r\n\r\n", 26);
        else
            pt_conn_queue(c, "\r\n", 2);
    }
    if (req->method_bit != PT_M_HEAD)
        pt_conn_queue(c, rc->respond.body, strlen(rc->respond.body));
    r->ent.status = (int)rc->respond.status;
    r->ent.bytes_out += c->out.pending - start;
}

static const pt_source_t respond_source = {"respond", respond_start};
static const pt_source_t proxy_source = {"proxy", pt_proxy_start};
static const pt_source_t grpc_source = {"grpc", pt_grpc_start};

static const pt_source_t *source_of(const pt_route_conf_t *rc)
{
    if (!rc->up)
        return &respond_source;
    return rc->up->scheme == PT_SCHEME_GRPC || rc->up->scheme == PT_SCHEME_GRPCS ? &grpc_source : &proxy_source;
}

/* ---- routing and filters ---- */

/* Routes on the normal form of the path (it is what goes upstream too,
 * proxy_headers.c), and prepares the filters' state.  False when it was
 * answered (400, 500). */
static bool route(pt_conn_t *c, const pt_h1_req_t *req)
{
    pt_req_t *r = c->req;
    bool head_only = req->method_bit == PT_M_HEAD;
    pt_str_t path = req->path;
    /* Most paths have no escape and no dot-segment: they are already in
     * normal form, and need no copy. */
    r->path_plain = pt_path_is_plain(path);
    if (!r->path_plain && (req->form == PT_H1_ORIGIN || req->form == PT_H1_ABSOLUTE)) {
        char *norm = pt_arena_alloc(&c->arena, req->path.n + 2);
        long nl = norm ? pt_path_normalize(req->path, norm, pt_path_slashes(c->acc->ls->conf)) : -1;
        if (nl < 0) {
            c->closing = true;
            pt_req_respond(c, 400, "text/plain", "400 Bad Request\n", 16, NULL, head_only);
            return false;
        }
        path = (pt_str_t){norm, (size_t)nl};
    }
    pt_router_lookup(c->w->router, req->host, path, req->method_bit, req, &r->match);
    r->route = r->match.route;
    if (r->route && r->route->fconf) {
        pt_fx_t *fx = pt_arena_zalloc(&c->arena, sizeof(*fx));
        if (!fx) {
            c->closing = true;
            pt_req_respond(c, 500, "text/plain", "500 Internal Server Error\n", 26, NULL, head_only);
            return false;
        }
        fx->confs = r->route->fconf;
        r->fx = fx;
    }
    return true;
}

void pt_req_handle(pt_conn_t *c, pt_h1_req_t *req)
{
    pt_req_t *r = c->req;
    bool head_only = req->method_bit == PT_M_HEAD;
    /* A final answer to "Expect: 100-continue" leaves the client free not
     * to send the body, so we cannot tell what follows: close after it. */
    if (!req->keep_alive || c->w->draining || req->expect_continue)
        c->closing = true;
    if (req->method_bit == PT_M_CONNECT) {
        /* No tunnels to arbitrary hosts, and a CONNECT has no path to route
         * or forward: refused whatever the routes say.  501, not 405: no
         * route allows it, so there is no Allow list to send. */
        c->closing = true;
        pt_req_respond(c, 501, "text/plain", "501 Not Implemented: no CONNECT tunnels\n", 40, NULL, false);
        return;
    }
    if (req->upgrade && (req->content_length > 0 || req->chunked)) {
        /* An upgrade goes upstream without framing (the exchange may become
         * a tunnel), so a body would reach the upstream as bytes it parses
         * as another request that was never routed or filtered. */
        c->closing = true;
        pt_req_respond(c, 400, "text/plain", "400 Bad Request: an upgrade request has no body\n", 48, NULL,
                       head_only);
        return;
    }
    if (pt_conn_is_stream(c)) {
        const pt_h1_header_t *ct = pt_h1_find(req, PT_STR("content-type"));
        r->grpc = ct && ct->value.n >= 16 && strncasecmp(ct->value.p, "application/grpc", 16) == 0;
    }
    if (c->acc->ls->kind == PT_LS_ADMIN) {
        c->resuming = false; /* a resumed admin request (GET /metrics) finds its own state */
        pt_admin_handle(c, req);
        return;
    }
    if (c->resuming)
        c->resuming = false; /* the same head again: routing and the filters that ran stand */
    else if (!route(c, req))
        return;
    if (r->fx) {
        pt_verdict_t v = pt_filters_request(c, req, r->fx);
        if (v == PT_RESPOND)
            return;
        if (v == PT_SUSPEND) {
            c->state = PT_CS_FILTER; /* the head stays in ibuf, to be parsed again */
            return;
        }
        if (v != PT_NEXT) {
            pt_log_error("route \"%s\": a filter failed, req=%s", r->route->name, r->reqid);
            c->closing = true;
            pt_req_respond(c, 500, "text/plain", "500 Internal Server Error\n", 26, NULL, head_only);
            return;
        }
    }
    if (!r->route) {
        if (r->match.allowed) {
            char extra[160] = "Allow: ";
            pt_http_methods_format(r->match.allowed, extra + 7, sizeof(extra) - 10);
            strcat(extra, "\r\n");
            pt_req_respond(c, 405, "text/plain", "405 Method Not Allowed\n", 23, extra, head_only);
        } else {
            pt_req_respond(c, 404, "text/plain", "404 Not Found\n", 14, NULL, head_only);
        }
        return;
    }
    source_of(r->route)->start(c, req, r->route);
}

void pt_req_resume(pt_conn_t *c)
{
    /* waiting in the pipeline of its head, or on its body or response in the proxy */
    if (c->dead || !c->req || (c->state != PT_CS_FILTER && !(c->state == PT_CS_PROXY && c->req->proxy)))
        return;
    c->resume_pending = true;
    pt_conn_reschedule(c);
}
