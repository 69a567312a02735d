/* The client side of a connection.
 *
 * One persistent edge-triggered event covers reading and writing, so a
 * keep-alive request costs no epoll_ctl: `readable` and `writable` remember
 * what the kernel last told us, and the loop in run() reads until EAGAIN,
 * answers every complete request in the buffer (pipelining), and writes
 * all the answers with one write.  Closed connections are freed on the
 * next loop iteration, because libevent may still hold events for them. */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "portico/accesslog.h"
#include "portico/admin.h"
#include "portico/assert.h"
#include "portico/conn.h"
#include "portico/err-t.h"
#include "portico/filter.h"
#include "portico/grpc.h"
#include "portico/h2.h"
#include "portico/head.h"
#include "portico/response.h"
#include "portico/http.h"
#include "portico/io.h"
#include "portico/log.h"
#include "portico/path.h"
#include "portico/proxy.h"
#include "portico/router.h"
#include "portico/tls.h"
#include "portico/value.h"

#define IBUF_MIN 4096
#define OBUF_MIN 4096
#define OUT_HIGH (256 * 1024) /* stop answering pipelined requests above this */
#define LINGER_MS 2000

enum { TM_NONE, TM_IDLE, TM_HEAD, TM_BODY, TM_SEND, TM_LINGER, TM_DRAIN, TM_PROXY, TM_TLS, TM_FILTERS };

static void run(pt_conn_t *c);

/* The proxy or a gRPC call owns the connection until its exchange ends. */
static bool handed_over(const pt_conn_t *c)
{
    return c->state == PT_CS_PROXY || c->state == PT_CS_GRPC;
}

/* ---- output ---- */

static void out(pt_conn_t *c, const char *s, size_t n)
{
    if (!pt_outq_copy(&c->out, s, n))
        c->closing = true;
}

#define OUT_LIT(c, lit) out((c), (lit), sizeof(lit) - 1)

static void out_head_end(pt_conn_t *c, bool keep_alive, int minor)
{
    const char *d = pt_worker_date(c->w);
    out(c, d, strlen(d));
    if (!keep_alive)
        OUT_LIT(c, "Connection: close\r\n\r\n");
    else if (minor == 0)
        OUT_LIT(c, "Connection: keep-alive\r\n\r\n");
    else
        OUT_LIT(c, "\r\n");
}

void pt_conn_respond(pt_conn_t *c, int status, const char *ctype, const char *body, size_t len,
                     const char *extra, bool head_only)
{
    size_t start = c->out.pending;
    if (c->grpc_request && status >= 300) { /* a gRPC client reads statuses, not pages */
        char msg[128];
        size_t m = len < sizeof(msg) - 1 ? len : sizeof(msg) - 1;
        memcpy(msg, body, m);
        while (m && (msg[m - 1] == '\n' || msg[m - 1] == '\r'))
            m--;
        msg[m] = '\0';
        pt_grpc_error(c, pt_grpc_status_of(status), msg);
        c->ent.status = status;
        c->ent.bytes_out += c->out.pending - start;
        return;
    }
    if (c->fx)
        pt_filters_response(c, c->fx, status); /* the same edits as any other answer */
    pt_h1_header_t ct = {PT_STR("Content-Type"), pt_str_from(ctype)};
    int minor = c->ent.protocol.n == 8 && c->ent.protocol.p[7] == '0' ? 0 : 1;
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
    };
    if (!pt_resp_write_head(&c->out, &h, c->fx, pt_worker_date(c->w))) {
        c->closing = true;
        return;
    }
    if (!head_only)
        out(c, body, len);
    c->ent.status = status;
    c->ent.bytes_out += c->out.pending - start;
}

static void respond_error(pt_conn_t *c, int status)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "%d %s\n", status, pt_http_reason(status));
    c->closing = true;
    pt_conn_respond(c, status, "text/plain", body, (size_t)n, NULL, false);
}

/* Writes what is queued: 1 if it wrote something, 0 if not, -1 when the
 * client is gone (then nothing more will be sent). */
int pt_conn_flush(pt_conn_t *c)
{
    if (pt_conn_is_stream(c))
        return pt_h2_stream_flush(c);
    ssize_t w = pt_io_flush(&c->out, c->fd, c->ssl);
    if (w < 0) {
        pt_log_info("client write failed: %s", strerror((int)-w));
        c->eof = true;
        c->closing = true;
        pt_outq_reset(&c->out);
        return -1;
    }
    if (!pt_outq_empty(&c->out))
        c->writable = false;
    return w > 0;
}

/* ---- the request cycle ---- */

static void make_reqid(pt_conn_t *c)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t a = c->w->reqid_seed, b = ++c->w->reqid_seq;
    for (int i = 15; i >= 0; i--, a >>= 4)
        c->reqid[i] = hex[a & 15];
    for (int i = 31; i >= 16; i--, b >>= 4)
        c->reqid[i] = hex[b & 15];
    c->reqid[32] = '\0';
    c->reqid_len = 32;
}

void pt_conn_set_reqid(pt_conn_t *c, pt_str_t id)
{
    size_t n = id.n < PT_REQID_MAX ? id.n : PT_REQID_MAX;
    memmove(c->reqid, id.p, n);
    c->reqid[n] = '\0';
    c->reqid_len = (uint8_t)n;
}

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

/* Every string of the request that later stages read, out of the input
 * buffer (which may move or be reused once the head is handed over): the
 * log entry, the route parameters, the filters' edits and copies.  The
 * pointers into the head itself (pt_h1_req_t) are not touched: nothing
 * reads them after this. */
void pt_conn_stash(pt_conn_t *c)
{
    bool ok = true;
    pt_str_t *fields[] = {&c->ent.method, &c->ent.target, &c->ent.protocol, &c->ent.host, &c->ent.user_agent,
                          &c->ent.referer};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        stash(c, fields[i], 2048); /* the log keeps a prefix of a long field */
    for (size_t i = 0; i < c->match.nparams; i++) {
        ok &= stash(c, &c->match.params[i].name, 0);
        ok &= stash(c, &c->match.params[i].value, 0);
    }
    pt_fx_t *fx = c->fx;
    if (fx) {
        for (size_t i = 0; i < fx->nreq; i++)
            ok &= stash(c, &fx->req[i].name, 0) & stash(c, &fx->req[i].value, 0);
        for (size_t i = 0; i < fx->nresp; i++)
            ok &= stash(c, &fx->resp[i].name, 0) & stash(c, &fx->resp[i].value, 0);
        ok &= stash(c, &fx->path, 0) & stash(c, &fx->host, 0) & stash(c, &fx->req_path, 0);
    }
    if (!ok)
        c->closing = true; /* the arena is full: this request cannot go on safely */
    pt_conn_assert_detached(c);
}

void pt_conn_assert_detached(const pt_conn_t *c)
{
#ifdef PT_DEBUG
    for (size_t i = 0; i < c->match.nparams; i++)
        PT_ASSERT(!in_ibuf(c, c->match.params[i].name) && !in_ibuf(c, c->match.params[i].value));
    PT_ASSERT(!in_ibuf(c, c->ent.target) && !in_ibuf(c, c->ent.host));
    for (size_t i = 0; c->fx && i < c->fx->nresp; i++)
        PT_ASSERT(!in_ibuf(c, c->fx->resp[i].name) && !in_ibuf(c, c->fx->resp[i].value));
    for (size_t i = 0; c->fx && i < c->fx->nreq; i++)
        PT_ASSERT(!in_ibuf(c, c->fx->req[i].name) && !in_ibuf(c, c->fx->req[i].value));
#else
    (void)c;
#endif
}

static void end_request(pt_conn_t *c)
{
    if (pt_conn_is_stream(c))
        c->closing = true; /* it serves one request */
    if (!c->nodelay && !c->closing) {
        /* Kept alive: small answers must not wait for Nagle.  A one-shot
         * connection never needs it, so the syscall is saved there. */
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->nodelay = true;
    }
    struct timeval now;
    event_base_gettimeofday_cached(c->w->base, &now);
    c->ent.request_us = (int64_t)(now.tv_sec - c->ent.start.tv_sec) * 1000000 + (now.tv_usec - c->ent.start.tv_usec);
    if (c->fx) {
        pt_filters_done(c, c->fx); /* before the arena that holds their state is reset */
        c->fx = NULL;
    }
    c->ent.route = c->route ? c->route->name : NULL;
    c->ent.match = c->route ? &c->match : NULL;
    c->ent.request_id = (pt_str_t){c->reqid, c->reqid_len};
    pt_accesslog_write(&c->ent);
    c->requests++;
    c->in_request = false;
    c->state = PT_CS_HEAD;
    c->route = NULL;
    pt_arena_reset(&c->arena);
}

static void start_entry(pt_conn_t *c, const pt_h1_req_t *req)
{
    memset(&c->ent, 0, sizeof(c->ent));
    c->ent.start = c->head_start;
    c->ent.peer = (const struct sockaddr *)&c->peer;
    c->ent.upstream_us = -1;
    if (c->ssl) {
        c->ent.tls_protocol = pt_tls_protocol(c->ssl);
        c->ent.tls_cipher = pt_tls_cipher(c->ssl);
    }
    if (req) {
        c->ent.method = req->method;
        c->ent.target = req->target;
        c->ent.protocol = pt_conn_is_stream(c) ? PT_STR("HTTP/2.0") : (pt_str_t){req->minor ? "HTTP/1.1" : "HTTP/1.0", 8};
        c->ent.host = req->host;
        if (c->w->conf->access_log.path) { /* looked up only for the log */
            const pt_h1_header_t *h = pt_h1_find(req, PT_STR("user-agent"));
            c->ent.user_agent = h ? h->value : PT_STR_NULL;
            h = pt_h1_find(req, PT_STR("referer"));
            c->ent.referer = h ? h->value : PT_STR_NULL;
        }
    }
    make_reqid(c);
}

/* A respond route whose response headers filters change: the head goes
 * the common way instead of the one prebuilt at load. */
static void respond_with_edits(pt_conn_t *c, const pt_route_conf_t *r, const pt_fx_t *fx, int minor)
{
    size_t n = r->respond.headers.n;
    pt_h1_header_t fields[n ? n : 1];
    bool ctype = false;
    for (size_t i = 0; i < n; i++) {
        fields[i] = (pt_h1_header_t){pt_str_from(r->respond.headers.v[i].key),
                                     pt_str_from(r->respond.headers.v[i].value)};
        ctype |= PT_STR_IEQ(fields[i].name, "content-type");
    }
    pt_resp_head_t h = {
        .status = (int)r->respond.status,
        .fields = fields,
        .nfields = n,
        .extra = ctype || pt_fx_overrides(fx->resp, fx->nresp, PT_STR("content-type"))
                     ? PT_STR_NULL
                     : PT_STR("Content-Type: text/plain\r\n"),
        .server = true,
        .date = true,
        .content_length = (int64_t)strlen(r->respond.body),
        .close = c->closing,
        .keep_alive_1_0 = !c->closing && minor == 0,
    };
    if (!pt_resp_write_head(&c->out, &h, fx, pt_worker_date(c->w)))
        c->closing = true;
}

static void handle_request(pt_conn_t *c, pt_h1_req_t *req)
{
    bool head_only = req->method_bit == PT_M_HEAD;
    /* A final answer to "Expect: 100-continue" leaves the client free not
     * to send the body, so we cannot tell what follows: close after it. */
    if (!req->keep_alive || c->w->draining || req->expect_continue)
        c->closing = true;
    if (req->method_bit == PT_M_CONNECT)
        c->closing = true; /* no tunnels to arbitrary hosts */
    if (req->upgrade && (req->content_length > 0 || req->chunked)) {
        /* An upgrade goes upstream without framing (the exchange may become
         * a tunnel), so a body would reach the upstream as bytes it parses
         * as another request that was never routed or filtered. */
        c->closing = true;
        pt_conn_respond(c, 400, "text/plain", "400 Bad Request: an upgrade request has no body\n", 48, NULL,
                        head_only);
        return;
    }
    if (pt_conn_is_stream(c)) {
        const pt_h1_header_t *ct = pt_h1_find(req, PT_STR("content-type"));
        c->grpc_request = ct && ct->value.n >= 16 && strncasecmp(ct->value.p, "application/grpc", 16) == 0;
    }
    if (c->acc->ls->kind == PT_LS_ADMIN) {
        pt_admin_handle(c, req);
        return;
    }
    const pt_route_conf_t *r;
    unsigned allowed = 0;
    if (c->resuming) {
        /* the same head again: routing and the filters that ran stand */
        c->resuming = false;
        r = c->match.route;
    } else {
        /* Route on the normal form of the path; it is what goes upstream
         * too (proxy_headers.c). */
        pt_str_t path = req->path;
        /* Most paths have no escape and no dot-segment: they are already in
         * normal form, and need no copy. */
        bool plain = pt_path_is_plain(path);
        if (!plain && (req->form == PT_H1_ORIGIN || req->form == PT_H1_ABSOLUTE)) {
            char *norm = pt_arena_alloc(&c->arena, req->path.n + 2);
            long nl = norm ? pt_path_normalize(req->path, norm, pt_path_slashes(c->acc->ls->conf)) : -1;
            if (nl < 0) {
                c->closing = true;
                pt_conn_respond(c, 400, "text/plain", "400 Bad Request\n", 16, NULL, head_only);
                return;
            }
            path = (pt_str_t){norm, (size_t)nl};
        }
        pt_route_match_t *m = &c->match;
        pt_router_lookup(c->w->router, req->host, path, req->method_bit, req, m);
        r = m->route;
        allowed = m->allowed;
        c->route = r;
        c->fx = NULL;
        if (r && r->fconf) {
            pt_fx_t *fx = pt_arena_zalloc(&c->arena, sizeof(*fx));
            if (!fx) {
                c->closing = true;
                pt_conn_respond(c, 500, "text/plain", "500 Internal Server Error\n", 26, NULL, head_only);
                return;
            }
            fx->confs = r->fconf;
            c->fx = fx;
        }
    }
    if (c->fx) {
        pt_verdict_t v = pt_filters_request(c, req, c->fx);
        if (v == PT_RESPOND)
            return;
        if (v == PT_SUSPEND) {
            c->state = PT_CS_FILTER; /* the head stays in ibuf, to be parsed again */
            if (c->timer_kind != TM_FILTERS) { /* one deadline for all the waits of a request */
                int64_t ms = c->acc->ls->conf ? c->acc->ls->conf->timeouts.filters : 30000;
                struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
                c->timer_kind = TM_FILTERS;
                evtimer_add(&c->timer, &tv);
            }
            return;
        }
        if (v != PT_NEXT) {
            pt_log_error("route \"%s\": a filter failed, req=%s", r->name, c->reqid);
            c->closing = true;
            pt_conn_respond(c, 500, "text/plain", "500 Internal Server Error\n", 26, NULL, head_only);
            return;
        }
    }
    if (!r) {
        if (allowed) {
            char extra[160] = "Allow: ";
            pt_http_methods_format(allowed, extra + 7, sizeof(extra) - 10);
            strcat(extra, "\r\n");
            pt_conn_respond(c, 405, "text/plain", "405 Method Not Allowed\n", 23, extra, head_only);
        } else {
            pt_conn_respond(c, 404, "text/plain", "404 Not Found\n", 14, NULL, head_only);
        }
        return;
    }
    if (r->up) {
        if (r->up->scheme == PT_SCHEME_GRPC || r->up->scheme == PT_SCHEME_GRPCS)
            pt_grpc_start(c, req, r);
        else
            pt_proxy_start(c, req, r);
        return;
    }
    if (req->upgrade)
        c->closing = true; /* nothing to upgrade to without an upstream */
    if (r->respond.node) {
        size_t start = c->out.pending;
        if (c->fx)
            pt_filters_response(c, c->fx, (int)r->respond.status);
        if (c->fx && c->fx->nresp) {
            respond_with_edits(c, r, c->fx, req->minor);
        } else {
            out(c, r->resp_head, r->resp_head_len);
            out_head_end(c, !c->closing, req->minor);
        }
        if (!head_only)
            out(c, r->respond.body, strlen(r->respond.body));
        c->ent.status = (int)r->respond.status;
        c->ent.bytes_out += c->out.pending - start;
    }
}

/* Discards the body of the current request from the input buffer.
 * Returns false when more input is needed. */
static bool consume_body(pt_conn_t *c)
{
    size_t avail = c->ilen - c->ipos;
    if (!c->body_chunked) {
        size_t n = (int64_t)avail < c->body_left ? avail : (size_t)c->body_left;
        c->ipos += n;
        c->body_left -= (int64_t)n;
        c->ent.bytes_in += n;
        if (c->body_left > 0)
            return false;
        end_request(c);
        return true;
    }
    while (c->ipos < c->ilen && !c->chunked.done) {
        const char *data;
        size_t dlen;
        long used = pt_h1_chunked_decode(&c->chunked, c->ibuf + c->ipos, c->ilen - c->ipos, &data, &dlen);
        if (used < 0) {
            c->ent.status = 400;
            c->closing = true;
            c->ipos = c->ilen;
            end_request(c);
            return false;
        }
        c->ipos += (size_t)used;
        c->ent.bytes_in += (uint64_t)used;
    }
    if (!c->chunked.done)
        return false;
    end_request(c);
    return true;
}

/* Answers every complete request in the input buffer. 1 on progress. */
static int handle_input(pt_conn_t *c)
{
    int progress = 0;
    const pt_listener_conf_t *lc = c->acc->ls->conf;
    pt_h1_limits_t lim = {lc ? (size_t)lc->max_request_line : 8192, lc ? (size_t)lc->max_header_size : 32768,
                          lc ? (size_t)lc->max_headers : 100};
    pt_h1_header_t headers[lim.max_headers];
    while (!c->closing && c->state != PT_CS_LINGER) {
        if (c->state == PT_CS_BODY) {
            if (!consume_body(c))
                break;
            progress = 1;
            continue;
        }
        if (c->out.pending > OUT_HIGH || c->ipos == c->ilen || handed_over(c) || c->state == PT_CS_FILTER)
            break;
        if (!c->requests && !c->in_request && lc && lc->http2 && !pt_conn_is_stream(c)) {
            size_t have = c->ilen - c->ipos, n = have < PT_H2_PREFACE_LEN ? have : PT_H2_PREFACE_LEN;
            if (memcmp(c->ibuf + c->ipos, PT_H2_PREFACE, n) == 0) {
                if (n < PT_H2_PREFACE_LEN)
                    break; /* the rest of the preface is on its way */
                if (pt_h2_start(c) < 0)
                    c->closing = true;
                return 1;
            }
        }
        if (!c->in_request) {
            c->in_request = true;
            event_base_gettimeofday_cached(c->w->base, &c->head_start);
        }
        pt_h1_req_t req = {.headers = headers};
        int status = 0;
        int rc = pt_h1_parse_request(c->ibuf + c->ipos, c->ilen - c->ipos, &lim, &req, &status);
        if (rc == PT_EAGAIN)
            break;
        progress = 1;
        if (rc < 0) {
            start_entry(c, NULL);
            c->ent.bytes_in = c->ilen - c->ipos;
            c->ipos = c->ilen;
            respond_error(c, status);
            end_request(c);
            break;
        }
        if (!c->resuming)
            start_entry(c, &req);
        c->ent.bytes_in = (uint64_t)rc;
        handle_request(c, &req);
        if (handed_over(c))
            break; /* the proxy (or the gRPC call) took the head and owns the body */
        if (c->state == PT_CS_FILTER)
            break; /* a filter waits; the head stays where it is */
        c->ipos += (size_t)rc;
        if ((req.content_length > 0 || req.chunked) && !c->closing) {
            c->state = PT_CS_BODY; /* discarded, to reach the next request */
            c->body_chunked = req.chunked;
            c->body_left = req.content_length;
            memset(&c->chunked, 0, sizeof(c->chunked));
            pt_conn_stash(c);
            continue;
        }
        /* Closing: a body is not waited for (the linger reads it away), and
         * the request is logged now. */
        end_request(c);
    }
    return progress;
}

/* ---- reading ---- */

static void start_linger(pt_conn_t *c);

/* One step of the handshake: true when the connection may go on. */
static bool tls_step(pt_conn_t *c)
{
    char why[256];
    int rc = pt_tls_handshake(c->ssl, why, sizeof(why));
    if (rc == PT_TLS_OK) {
        c->state = PT_CS_HEAD;
        c->readable = true; /* the request may have come with the last flight */
        c->timer_kind = TM_NONE;
        evtimer_del(&c->timer);
        if (pt_tls_alpn_h2(c->ssl) && pt_h2_start(c) < 0) {
            pt_conn_close(c);
            return false;
        }
        return true;
    }
    if (rc == PT_TLS_WANT_READ || rc == PT_TLS_WANT_WRITE) {
        if (rc == PT_TLS_WANT_READ)
            c->readable = false;
        else
            c->writable = false;
        if (c->timer_kind != TM_TLS) { /* a deadline for the whole handshake */
            int64_t ms = c->acc->ls->conf->tls.handshake_timeout;
            struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
            c->timer_kind = TM_TLS;
            evtimer_add(&c->timer, &tv);
        }
        return false;
    }
    char peer[80];
    pt_conn_peer_name(c, peer, sizeof(peer));
    if (rc == PT_TLS_PLAIN_HTTP) {
        static const char msg[] = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 41\r\n"
                                  "Connection: close\r\n\r\nThis port speaks HTTPS: use https:// here\n";
        ssize_t ignored = send(c->fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)ignored;
        pt_log_info("plain HTTP on TLS listener %s from %s: answered 400", c->acc->ls->name, peer);
        pt_tls_close(c->ssl);
        c->ssl = NULL;
        start_linger(c); /* read what the client still sends, so the 400 is not lost to a reset */
        c->readable = true;
        return true;
    } else {
        pt_log_info("TLS handshake with %s on %s failed: %s", peer, c->acc->ls->name, why);
    }
    pt_conn_close(c);
    return false;
}

int pt_conn_read(pt_conn_t *c)
{
    if (pt_conn_is_stream(c))
        return pt_h2_stream_read(c);
    if (c->ipos == c->ilen)
        c->ipos = c->ilen = 0;
    else if (c->ipos && (c->icap - c->ilen < 1024 || c->state == PT_CS_HEAD)) {
        memmove(c->ibuf, c->ibuf + c->ipos, c->ilen - c->ipos);
        c->ilen -= c->ipos;
        c->ipos = 0;
    }
    const pt_listener_conf_t *lc = c->acc->ls->conf;
    size_t max = (lc ? (size_t)lc->max_header_size : 32768) + 1024;
    if ((c->icap - c->ilen < 512 || c->state == PT_CS_PROXY) && c->icap < max) {
        /* a head that does not fit yet, or a body to stream: grow */
        size_t cap = c->state == PT_CS_PROXY || c->icap * 2 > max ? max : c->icap * 2;
        char *b = realloc(c->ibuf, cap);
        if (!b) {
            c->closing = true;
            return 1;
        }
        c->ibuf = b;
        c->icap = cap;
    }
    if (c->icap == c->ilen)
        return 0; /* full: the parser will have said 431 */
    size_t got;
    int rc = pt_io_read(c->fd, c->ssl, c->ibuf + c->ilen, c->icap - c->ilen, &got, c->rdhup, &c->readable, &c->eof);
    c->ilen += got;
    return rc;
}

/* ---- timers ---- */

static void arm_timer(pt_conn_t *c)
{
    const pt_listener_conf_t *lc = c->acc->ls->conf;
    int64_t ms;
    int kind;
    if (c->state == PT_CS_LINGER) {
        kind = TM_LINGER;
        ms = LINGER_MS;
    } else if (c->state == PT_CS_H2 && pt_outq_empty(&c->out) && pt_h2_streams(c)) {
        if (c->timer_kind != TM_NONE) /* streams open: each has its own timers */
            evtimer_del(&c->timer);
        c->timer_kind = TM_NONE;
        return;
    } else if (!pt_outq_empty(&c->out)) {
        kind = TM_SEND;
        ms = lc ? lc->timeouts.send : 30000;
    } else if (c->state == PT_CS_BODY) {
        kind = TM_BODY;
        ms = lc ? lc->timeouts.body : 30000;
    } else if (c->in_request) {
        kind = TM_HEAD;
        struct timeval now;
        event_base_gettimeofday_cached(c->w->base, &now);
        int64_t spent = (now.tv_sec - c->head_start.tv_sec) * 1000 + (now.tv_usec - c->head_start.tv_usec) / 1000;
        ms = (lc ? lc->timeouts.header : 10000) - spent;
        if (ms < 1)
            ms = 1;
        if (c->timer_kind == TM_HEAD)
            return; /* a deadline, not reset by reads */
    } else if (c->w->draining) {
        kind = TM_DRAIN;
        ms = 1000;
        if (c->timer_kind == TM_DRAIN)
            return;
    } else {
        kind = TM_IDLE;
        ms = lc ? lc->timeouts.idle : 60000;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    c->timer_kind = kind;
    evtimer_add(&c->timer, &tv);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    pt_conn_t *c = arg;
    PT_CHECK_MAGIC(c, PT_CONN_MAGIC);
    switch (c->timer_kind) {
    case TM_BODY:
        /* The request was answered (a respond route, an error) and its body
         * is being read away: it stopped coming.  Nothing may follow the
         * answer that was sent: log the request and close. */
        pt_log_info("client timed out while sending a request body after its answer, req=%s", c->reqid);
        c->state = PT_CS_HEAD;
        end_request(c);
        c->closing = true;
        c->timer_kind = TM_NONE;
        run(c);
        return;
    case TM_HEAD:
        pt_log_info("client timed out while sending the request head");
        pt_outq_reset(&c->out);
        start_entry(c, NULL);
        respond_error(c, 408);
        end_request(c);
        c->timer_kind = TM_NONE;
        run(c);
        return;
    case TM_PROXY:
        pt_proxy_client_timeout(c->proxy);
        return;
    case TM_FILTERS:
        pt_log_error("the request waited on its filters longer than timeouts.filters, route=%s req=%s",
                     c->route ? c->route->name : "-", c->reqid);
        c->timer_kind = TM_NONE;
        c->state = PT_CS_HEAD;
        c->resume_pending = false;
        c->closing = true; /* the head is left unread in the buffer */
        pt_conn_respond(c, 504, "text/plain", "504 Gateway Timeout\n", 20, NULL, false);
        end_request(c);
        run(c);
        return;
    case TM_TLS:
        pt_log_info("TLS handshake timed out on %s", c->acc->ls->name);
        pt_conn_close(c);
        return;
    case TM_IDLE:
    case TM_DRAIN:
        if (c->state == PT_CS_H2) {
            pt_h2_goaway_close(c); /* say goodbye (NO_ERROR) before closing */
            return;
        }
        pt_conn_close(c);
        return;
    default:
        pt_conn_close(c);
    }
}

void pt_conn_timer(pt_conn_t *c, int64_t ms)
{
    if (ms < 0) {
        if (c->timer_kind != TM_NONE)
            evtimer_del(&c->timer);
        c->timer_kind = TM_NONE;
        return;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    c->timer_kind = TM_PROXY;
    evtimer_add(&c->timer, &tv);
}

/* ---- the loop ---- */

static void start_linger(pt_conn_t *c)
{
    /* Shut our side and read what the client still sends, so the kernel
     * does not answer unread data with a reset that could destroy the
     * response we just sent. */
    if (c->ssl) {
        pt_tls_close(c->ssl); /* close_notify first */
        c->ssl = NULL;
    }
    shutdown(c->fd, SHUT_WR);
    c->state = PT_CS_LINGER;
    c->timer_kind = TM_NONE;
    c->ipos = c->ilen = 0;
}

static void run(pt_conn_t *c)
{
    if (c->state == PT_CS_TLS && !tls_step(c))
        return;
    for (int rounds = 0; rounds < 64; rounds++) {
        int progress = 0;
        if (c->state == PT_CS_H2) {
            pt_h2_run(c);
            if (!c->dead)
                arm_timer(c);
            return;
        }
        if (c->state == PT_CS_PROXY) {
            pt_proxy_run(c->proxy); /* it hands back with pt_conn_proxy_done */
            return;
        }
        if (c->state == PT_CS_GRPC) {
            pt_grpc_run(c->grpc); /* the same */
            if (!c->dead && c->state == PT_CS_GRPC)
                arm_timer(c);
            return;
        }
        if (c->state == PT_CS_FILTER && !c->resume_pending) {
            if (!pt_outq_empty(&c->out) && c->writable && pt_conn_flush(c) < 0) {
                pt_conn_close(c);
                return;
            }
            if (c->rdhup || c->eof) {
                /* The client left while its request waited: nothing will
                 * read the answer.  Logged as nginx does (499). */
                pt_log_info("client closed the connection while its request waited, req=%s", c->reqid);
                c->ent.status = 499;
                c->state = PT_CS_HEAD;
                end_request(c); /* the filters' on_done drops what they wait for */
                pt_conn_close(c);
            }
            return; /* waiting for pt_conn_filters_resume */
        }
        if (c->state == PT_CS_FILTER) { /* resumed: the head is parsed again */
            c->resume_pending = false;
            c->state = PT_CS_HEAD;
            c->resuming = true;
        }
        if (c->state == PT_CS_LINGER) {
            while (c->readable) {
                char junk[4096];
                ssize_t r = recv(c->fd, junk, sizeof(junk), 0);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                    pt_conn_close(c);
                    return;
                }
                if (r < 0 && errno == EAGAIN)
                    c->readable = false;
            }
            arm_timer(c);
            return;
        }
        if (c->ipos < c->ilen || c->state == PT_CS_BODY)
            progress |= handle_input(c);
        if (handed_over(c))
            continue; /* the proxy (or the gRPC call) decides when the exchange ends */
        if (!pt_outq_empty(&c->out) && c->writable)
            progress |= pt_conn_flush(c) != 0;
        if (pt_outq_empty(&c->out) && (c->closing || (c->eof && c->state != PT_CS_LINGER))) {
            if (c->eof || pt_conn_is_stream(c)) { /* a stream connection ends with its response */
                pt_conn_close(c);
                return;
            }
            start_linger(c);
            continue;
        }
        if (c->readable && !c->closing && c->out.pending <= OUT_HIGH)
            progress |= pt_conn_read(c);
        if (c->eof && !c->closing) {
            /* The client is done sending: answer what is complete, then go. */
            if (c->in_request && c->ipos < c->ilen)
                pt_log_info("client closed with an incomplete request");
            c->closing = true;
            progress = 1;
        }
        if (!progress) {
            arm_timer(c);
            return;
        }
    }
    /* Still busy after a fair share of the loop: come back next iteration.
     * No new edge would come for what is already in the buffers. */
    pt_conn_reschedule(c);
    arm_timer(c);
}

const char *pt_conn_peer_name(const pt_conn_t *c, char *buf, size_t size)
{
    pt_addr_format((const struct sockaddr *)&c->peer, buf, size);
    return buf;
}

pt_str_t pt_conn_peer_ip(pt_conn_t *c)
{
    if (!c->peer_ip_len) {
        pt_addr_format_ip((const struct sockaddr *)&c->peer, c->peer_ip, sizeof(c->peer_ip));
        c->peer_ip_len = (uint8_t)strlen(c->peer_ip);
    }
    return (pt_str_t){c->peer_ip, c->peer_ip_len};
}

void pt_conn_reschedule(pt_conn_t *c)
{
    if (!c->dead) /* a closed one may be freed before the event would run */
        event_active(&c->ev, EV_TIMEOUT, 0);
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    pt_conn_t *c = arg;
    PT_CHECK_MAGIC(c, PT_CONN_MAGIC);
    if (c->dead)
        return;
    if (what & EV_READ)
        c->readable = true; /* EV_TIMEOUT alone: pt_conn_reschedule */
    if (what & EV_WRITE)
        c->writable = true;
    if (what & EV_CLOSED)
        c->rdhup = c->readable = true;
    run(c);
}

#define SPARE_MAX 256

/* A connection and its buffers, gone for good. */
static void destroy(pt_conn_t *c)
{
    pt_arena_free(&c->arena);
    free(c->ibuf);
    pt_outq_free(&c->out);
    free(c);
}

/* A connection with its buffers, zeroed: a closed one reused (no malloc)
 * or a new one.  NULL when out of memory. */
static pt_conn_t *alloc_conn(pt_worker_t *w)
{
    pt_conn_t *c = w->spare;
    char *ibuf;
    pt_arena_t arena;
    pt_outq_t outq = {0};
    size_t icap = IBUF_MIN;
    if (c) {
        w->spare = c->next;
        w->nspare--;
        ibuf = c->ibuf;
        icap = c->icap;
        arena = c->arena;
        outq = c->out;
    } else {
        c = malloc(sizeof(*c));
        ibuf = malloc(IBUF_MIN);
        pt_arena_init(&arena, 2048, 64 * 1024);
        if (!c || !ibuf) {
            free(c);
            free(ibuf);
            pt_arena_free(&arena);
            return NULL;
        }
    }
    memset(c, 0, sizeof(*c));
    c->arena = arena;
    c->out = outq;
    c->icap = icap;
    c->ibuf = ibuf;
    c->magic = PT_CONN_MAGIC;
    return c;
}

void pt_conn_accept(pt_worker_t *w, pt_acceptor_t *a, int fd, const struct sockaddr_storage *peer)
{
    pt_conn_t *c = alloc_conn(w);
    if (!c) {
        close(fd);
        pt_log_error("out of memory accepting a connection");
        return;
    }
    c->fd = fd;
    c->w = w;
    c->acc = a;
    c->peer = *peer;
    c->writable = true;
    c->readable = true; /* try at once: the request often arrived with the connection */
    const pt_tls_conf_t *tls = a->ls->conf ? &a->ls->conf->tls : NULL;
    if (tls && tls->server) {
        c->ssl = pt_tls_accept(tls->server, fd);
        c->state = PT_CS_TLS;
        if (!c->ssl) {
            pt_log_error("out of memory starting a TLS connection");
            close(fd);
            destroy(c);
            return;
        }
    }
    event_assign(&c->ev, w->base, fd, EV_READ | EV_WRITE | EV_ET | EV_PERSIST | EV_CLOSED, on_event, c);
    evtimer_assign(&c->timer, w->base, on_timer, c);
    event_add(&c->ev, NULL);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    a->nconns++;
    run(c);
}

void pt_conn_linger(pt_conn_t *c)
{
    if (!pt_outq_empty(&c->out) && c->writable)
        pt_conn_flush(c);
    pt_h2_free(c);
    pt_outq_reset(&c->out);
    start_linger(c);
    c->readable = true;
    pt_conn_reschedule(c);
}

pt_conn_t *pt_conn_stream(pt_conn_t *parent)
{
    pt_worker_t *w = parent->w;
    pt_conn_t *c = alloc_conn(w);
    if (!c)
        return NULL;
    c->fd = -1;
    c->ssl = parent->ssl; /* for the TLS variables and X-Forwarded-Proto; never read or written */
    c->w = w;
    c->acc = parent->acc;
    c->peer = parent->peer;
    c->nodelay = true;
    c->writable = true;
    event_assign(&c->ev, w->base, -1, 0, on_event, c);
    evtimer_assign(&c->timer, w->base, on_timer, c);
    return c;
}

void pt_conn_filters_resume(pt_conn_t *c)
{
    if (c->dead || c->state != PT_CS_FILTER)
        return;
    c->resume_pending = true;
    pt_conn_reschedule(c);
}

void pt_conn_proxy_done(pt_conn_t *c)
{
    c->proxy = NULL;
    c->state = PT_CS_HEAD;
    c->timer_kind = TM_NONE;
    evtimer_del(&c->timer);
    end_request(c);
    run(c);
}

void pt_conn_drain(pt_conn_t *c)
{
    if (c->dead)
        return;
    /* An idle connection gets a short grace (TM_DRAIN): a request already on
     * its way is answered, with Connection: close, instead of meeting a
     * closed socket.  Busy ones close after their current response. */
    if (c->state == PT_CS_H2) {
        pt_h2_drain(c); /* GOAWAY: open streams finish, new ones are refused */
        return;
    }
    arm_timer(c);
}

void pt_conn_close(pt_conn_t *c)
{
    if (c->dead)
        return;
    c->dead = true;
    if (c->proxy) {
        pt_proxy_abort(c->proxy);
        c->proxy = NULL;
    }
    if (c->grpc) {
        pt_grpc_abort(c->grpc);
        c->grpc = NULL;
    }
    if (c->fx) {
        pt_filters_done(c, c->fx);
        c->fx = NULL;
    }
    event_del(&c->ev);
    evtimer_del(&c->timer);
    if (pt_conn_is_stream(c)) {
        pt_h2_stream_closed(c);
        c->ssl = NULL;
        c->next = c->w->dead;
        c->w->dead = c;
        pt_worker_schedule_reap(c->w);
        return;
    }
    pt_h2_free(c);
    pt_tls_close(c->ssl);
    c->ssl = NULL;
    close(c->fd);
    c->fd = -1;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->w->nconns--;
    /* freed on the next loop iteration: see the note at the top */
    c->next = c->w->dead;
    c->w->dead = c;
    pt_worker_conn_closed(c->w, c->acc);
}

void pt_conn_free(pt_conn_t *c)
{
    pt_worker_t *w = c->w;
    c->magic = 0;
    if (w->nspare < SPARE_MAX && !w->draining && c->icap <= 64 * 1024) {
        pt_arena_reset(&c->arena);
        pt_outq_reset(&c->out);
        c->next = w->spare;
        w->spare = c;
        w->nspare++;
        return;
    }
    destroy(c);
}

void pt_conn_pool_drain(pt_worker_t *w)
{
    while (w->spare) {
        pt_conn_t *c = w->spare;
        w->spare = c->next;
        destroy(c);
    }
    w->nspare = 0;
}
