/* gRPC: routes whose upstream has scheme grpc (HTTP/2 with prior knowledge)
 * or grpcs (HTTP/2 over TLS, ALPN h2).
 *
 * A call arrives on a stream connection (h2.c), its head already routed and
 * filtered like any request.  Its HEADERS are the head the HTTP/1.1 proxy
 * would send (pt_proxy_request_head: strip_prefix and path-rewrite,
 * upstream_host as :authority, request-headers, X-Forwarded-* and
 * X-Request-Id), and the response head gets what the proxy gives one
 * (response-headers and CORS edits; passive health by its :status).  It becomes a stream of an HTTP/2 client
 * session to the chosen target: sessions are per worker and per target,
 * carry many calls at once (up to the target's SETTINGS_MAX_CONCURRENT_
 * STREAMS), and stay open for `keepalive.idle_timeout` when idle.  The
 * request body (chunked in the stream connection) goes out as DATA as it
 * comes; the response comes back into the stream connection as an
 * HTTP/1.1 response with a chunked body, and its trailers (grpc-status,
 * grpc-message and the rest) are handed to the client stream directly, so
 * they reach the client as HTTP/2 trailers.  Upstream DATA is acknowledged
 * only as the client side takes it.
 *
 * Errors of Portico's own (no target up, connect failure, timeout) are
 * answered as gRPC statuses in a trailers-only response (pt_grpc_error). */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "portico/conn.h"
#include "portico/filter.h"
#include "portico/grpc.h"
#include "portico/grpc_web.h"
#include "portico/http.h"
#include "portico/h1_server.h"
#include "portico/h2.h"
#include "portico/io.h"
#include "portico/log.h"
#include "portico/proxy.h"
#include "portico/request.h"
#include "portico/tls.h"
#include "portico/transcode.h"
#include "portico/upstream.h"

#define CLIENT_HIGH (64 * 1024) /* response bytes queued for the client before upstream DATA waits (h2.c counts
                                 * 64 KiB per stream for it) */

typedef struct h2up h2up_t;

struct pt_grpc {
    pt_conn_t *c;
    pt_upstream_t *up;
    size_t target;
    h2up_t *h;
    int32_t id;
    nghttp2_nv *nv;
    size_t nnv;
    pt_h1_chunked_t chunk;
    char *rq; /* decoded request body not yet sent */
    size_t rq_len, rq_pos, rq_cap;
    bool req_done, deferred, head_sent, resp_done, counted, failed;
    bool raw_body;      /* the body comes as it is (Content-Length), not in chunks */
    int64_t body_left;  /* of a raw body, the bytes still to come */
    pt_grpc_web_mode_t web; /* a gRPC-Web call (grpc_web.h) */
    pt_b64_stream_t b64;    /* its text body's decoder */
    pt_tc_call_t *tc;       /* a REST/JSON call (transcode.h) */
    bool hold;              /* not submitted until its JSON body is encoded */
    bool interim;           /* the HEADERS frame being read is a 1xx response: not the head, skipped */
    int64_t start_us, deadline_us; /* deadline_us: from grpc-timeout, 0 without */
    size_t unacked;
    struct event timer;
    pt_grpc_t *next; /* waiting for h, or on h */
    /* the response head, as HTTP/1.1; from here on, not zeroed by
     * pt_grpc_start: keep other members above */
    char head[8192];
    size_t head_len;
    nghttp2_nv trailers[32];
    size_t ntrailers;
};

struct h2up {
    pt_worker_t *w;
    pt_upstream_t *up;
    pt_target_t *t;
    int fd;
    SSL *ssl;
    struct event ev, timer;
    nghttp2_session *s;
    bool connected, ready, dead, readable, writable;
    size_t nstreams;
    pt_outq_t out;
    pt_grpc_t *calls; /* on this connection, or waiting for it */
    h2up_t *next;     /* the target's connections */
};

/* ---- answering with a gRPC status ---- */

int pt_grpc_status_of(int http_status)
{
    switch (http_status) {
    case 400: return 13; /* INTERNAL */
    case 401: return 16; /* UNAUTHENTICATED */
    case 403: return 7;  /* PERMISSION_DENIED */
    case 404: return 12; /* UNIMPLEMENTED */
    case 413: case 429: return 8; /* RESOURCE_EXHAUSTED */
    case 504: return 4;  /* DEADLINE_EXCEEDED */
    case 502: case 503: return 14; /* UNAVAILABLE */
    default: return http_status >= 500 ? 13 : 2; /* INTERNAL, UNKNOWN */
    }
}

void pt_grpc_error(pt_conn_t *c, int code, const char *message)
{
    pt_grpc_error_extra(c, code, message, NULL);
}

size_t pt_grpc_message_encode(const char *s, size_t n, char *out, size_t cap)
{
    size_t m = 0;
    for (size_t i = 0; i < n && m + 3 < cap; i++) { /* room for an escape and the NUL */
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch > 0x7e || ch == '%')
            m += (size_t)snprintf(out + m, cap - m, "%%%02X", ch);
        else
            out[m++] = (char)ch;
    }
    out[m] = '\0';
    return m;
}

void pt_grpc_error_extra(pt_conn_t *c, int code, const char *message, const char *extra)
{
    if (c->req && pt_transcode_of(c->req->fx)) { /* a REST client: JSON, and the HTTP status of the code */
        pt_tc_error(c, code, message);
        return;
    }
    char msg[3 * 128 + 1];
    pt_grpc_message_encode(message, strlen(message), msg, sizeof(msg));
    char head[2048], type[64] = "application/grpc";
    pt_grpc_web_mode_t web = c->req ? pt_grpc_web_of(c->req->fx) : PT_GRPC_WEB_NONE;
    if (web != PT_GRPC_WEB_NONE) {
        size_t tn = pt_grpc_web_response_type(web, PT_STR("application/grpc"), type, sizeof(type) - 1);
        type[tn] = '\0';
    }
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 200 OK\r\ncontent-type: %s\r\ngrpc-status: %d\r\n"
                     "grpc-message: %s\r\n%scontent-length: 0\r\n\r\n",
                     type, code, msg, extra ? extra : "");
    if (n > 0 && (size_t)n < sizeof(head) && !pt_outq_copy(&c->out, head, (size_t)n))
        c->closing = true;
    c->req->ent.status = 200;
}

/* ---- the upstream connection ---- */

static void h2up_run(h2up_t *h);
static void call_fail(pt_grpc_t *g, int code, const char *message);
static void cancel_stream(pt_grpc_t *g);

static void h2up_close(h2up_t *h, const char *why)
{
    if (h->dead)
        return;
    h->dead = true;
    for (h2up_t **pp = (h2up_t **)&h->t->grpc_conns; *pp; pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    while (h->calls) {
        pt_grpc_t *g = h->calls;
        h->calls = g->next;
        g->h = NULL;
        call_fail(g, 14, why);
    }
    event_del(&h->ev);
    evtimer_del(&h->timer);
    if (h->s)
        nghttp2_session_del(h->s);
    pt_tls_close(h->ssl);
    close(h->fd);
    pt_outq_free(&h->out);
    free(h);
}

static void on_h2up_timer(evutil_socket_t fd, short what, void *arg)
{
    h2up_t *h = arg;
    h2up_close(h, h->ready ? "idle" : "upstream timed out connecting");
}

static void h2up_timer(h2up_t *h, int64_t ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(&h->timer, &tv);
}

static void on_h2up_event(evutil_socket_t fd, short what, void *arg)
{
    h2up_t *h = arg;
    if (what & (EV_READ | EV_CLOSED))
        h->readable = true;
    if (what & EV_WRITE)
        h->writable = true;
    h2up_run(h);
}

static void unlink_call(h2up_t *h, pt_grpc_t *g)
{
    for (pt_grpc_t **pp = &h->calls; *pp; pp = &(*pp)->next)
        if (*pp == g) {
            *pp = g->next;
            return;
        }
}

/* ---- the response ---- */

static void out(pt_grpc_t *g, const void *p, size_t n)
{
    if (!pt_outq_copy(&g->c->out, p, n))
        g->c->closing = true;
}

static void head_add(pt_grpc_t *g, const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen)
{
    if (g->head_len + nlen + vlen + 4 < sizeof(g->head)) {
        memcpy(g->head + g->head_len, name, nlen);
        g->head_len += nlen;
        memcpy(g->head + g->head_len, ": ", 2);
        memcpy(g->head + g->head_len + 2, value, vlen);
        memcpy(g->head + g->head_len + 2 + vlen, "\r\n", 2);
        g->head_len += vlen + 4;
    }
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    pt_grpc_t *g = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!g || f->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (!g->head_sent) { /* the response head */
        pt_conn_t *c = g->c;
        if (g->interim)
            return 0;
        if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
            int status = atoi((const char *)value);
            if (status >= 100 && status < 200) { /* 103 Early Hints and friends: the head is still to come */
                g->interim = true;
                return 0;
            }
            g->head_len = (size_t)snprintf(g->head, sizeof(g->head), "HTTP/1.1 %.*s %s\r\n", (int)vlen, value,
                                           pt_http_reason(status));
            c->req->ent.upstream_status = status;
            if (g->up->passive)
                pt_health_report(g->up, g->target,
                                 pt_health_bad_status(g->up, status) ? PT_OUT_HTTP_FAIL : PT_OUT_OK,
                                 pt_worker_now_us(c->w) / 1000);
            if (c->req->fx)
                pt_filters_response(c, c->req->fx, status, false); /* response-headers, CORS */
        } else if (g->tc) {
            if (nlen && name[0] != ':')
                pt_tc_call_header(g->tc, name, nlen, value, vlen, false);
        } else if (g->web && nlen == 12 && memcmp(name, "content-type", 12) == 0) {
            char type[96];
            size_t tn = pt_grpc_web_response_type(g->web, (pt_str_t){(const char *)value, vlen}, type, sizeof(type));
            head_add(g, name, nlen, (const uint8_t *)type, tn);
        } else if (nlen && name[0] != ':' &&
                   !(c->req->fx && pt_fx_overrides(c->req->fx->resp, c->req->fx->nresp, (pt_str_t){(const char *)name, nlen}))) {
            head_add(g, name, nlen, value, vlen);
        }
        return 0;
    }
    if (g->tc) {
        if (nlen && name[0] != ':')
            pt_tc_call_header(g->tc, name, nlen, value, vlen, true);
        return 0;
    }
    if (g->ntrailers < 32 && nlen && name[0] != ':') { /* trailers */
        char *n = pt_arena_strndup(&g->c->arena, (const char *)name, nlen);
        char *v = pt_arena_strndup(&g->c->arena, (const char *)value, vlen);
        if (n && v)
            g->trailers[g->ntrailers++] = (nghttp2_nv){(uint8_t *)n, (uint8_t *)v, nlen, vlen, NGHTTP2_NV_FLAG_NONE};
    }
    return 0;
}

/* A piece of response body as one chunk; a gRPC-Web text call's in
 * base64, each piece padded on its own (it is readable as it arrives). */
static void body_chunk(pt_grpc_t *g, const uint8_t *data, size_t len)
{
    char size[24];
    if (g->web != PT_GRPC_WEB_TEXT) {
        int n = snprintf(size, sizeof(size), "%zx\r\n", len);
        out(g, size, (size_t)n);
        out(g, data, len);
        out(g, "\r\n", 2);
        return;
    }
    char text[4 * 4096];
    for (size_t i = 0; i < len; i += 3 * 4096) { /* whole quanta but for the last */
        size_t k = len - i < 3 * 4096 ? len - i : 3 * 4096, tn = pt_b64_encode(data + i, k, text);
        int n = snprintf(size, sizeof(size), "%zx\r\n", tn);
        out(g, size, (size_t)n);
        out(g, text, tn);
        out(g, "\r\n", 2);
    }
}

static void end_response(pt_grpc_t *g)
{
    if (g->tc) { /* the JSON answer, whole (or the end of a stream) */
        pt_tc_call_end(g->tc);
        g->resp_done = true;
        return;
    }
    if (g->web) { /* the trailers: the body's last message, flag 0x80 */
        size_t cap = 5;
        for (size_t i = 0; i < g->ntrailers; i++)
            cap += g->trailers[i].namelen + g->trailers[i].valuelen + 3;
        uint8_t *fr = pt_arena_alloc(&g->c->arena, cap);
        size_t n = fr ? pt_grpc_web_trailers(g->trailers, g->ntrailers, fr, cap) : 0;
        if (!n)
            g->c->closing = true; /* cut: the client sees no status */
        else
            body_chunk(g, fr, n);
    } else if (g->ntrailers) {
        pt_h2_stream_trailers(g->c, g->trailers, g->ntrailers);
    }
    out(g, "0\r\n\r\n", 5);
    g->resp_done = true;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    pt_grpc_t *g = f->hd.stream_id ? nghttp2_session_get_stream_user_data(s, f->hd.stream_id) : NULL;
    if (!g)
        return 0;
    bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
    if (f->hd.type == NGHTTP2_HEADERS && !g->head_sent && g->interim) {
        g->interim = false; /* a 1xx response, passed over (nghttp2 refuses one that ends the stream) */
        return 0;
    }
    if (f->hd.type == NGHTTP2_HEADERS && !g->head_sent && g->tc) {
        g->head_sent = true; /* the client's head waits for the first message, or the status */
        if (end)
            end_response(g);
        pt_conn_reschedule(g->c);
    } else if (f->hd.type == NGHTTP2_HEADERS && !g->head_sent) {
        if (!g->head_len)
            return 0;
        for (size_t i = 0; g->c->req->fx && i < g->c->req->fx->nresp; i++) {
            const pt_hdr_edit_t *e = &g->c->req->fx->resp[i];
            if (e->op != PT_HDR_REMOVE)
                head_add(g, (const uint8_t *)e->name.p, e->name.n, (const uint8_t *)e->value.p, e->value.n);
        }
        out(g, g->head, g->head_len);
        if (end) { /* trailers-only: the status is in the head */
            out(g, "content-length: 0\r\n\r\n", 21);
            g->resp_done = true;
        } else {
            out(g, "transfer-encoding: chunked\r\n\r\n", 30);
        }
        g->head_sent = true;
        g->c->req->ent.status = g->c->req->ent.upstream_status; /* what the client got (gRPC says more in its trailers) */
        pt_conn_reschedule(g->c);
    } else if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) && end && !g->resp_done) {
        end_response(g);
        pt_conn_reschedule(g->c);
    }
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user)
{
    pt_grpc_t *g = nghttp2_session_get_stream_user_data(s, id);
    if (!g) {
        nghttp2_session_consume(s, id, len);
        return 0;
    }
    if (g->tc) {
        if (!pt_tc_call_data(g->tc, data, len) && !g->resp_done) {
            /* not the method's messages: 502 when nothing went out yet, else the response is cut */
            nghttp2_session_consume(s, id, len);
            if (pt_tc_call_started(g->tc)) {
                cancel_stream(g);
                g->c->req->ent.completion = PT_DONE_UPSTREAM;
                pt_conn_close(g->c);
                return 0;
            }
            cancel_stream(g);
            end_response(g);
            pt_conn_reschedule(g->c);
            return 0;
        }
    } else {
        body_chunk(g, data, len);
    }
    g->c->req->ent.bytes_out += len;
    g->unacked += len;
    pt_conn_reschedule(g->c);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t error, void *user)
{
    h2up_t *h = user;
    pt_grpc_t *g = nghttp2_session_get_stream_user_data(s, id);
    if (h->nstreams)
        h->nstreams--;
    if (!g)
        return 0;
    if (g->unacked) { /* the stream is gone, its bytes are the client's: the connection's window gets them back */
        nghttp2_session_consume_connection(s, g->unacked);
        g->unacked = 0;
    }
    unlink_call(h, g);
    g->h = NULL;
    if (!g->resp_done) {
        char why[64];
        snprintf(why, sizeof(why), "upstream reset the stream (%s)", nghttp2_http2_strerror(error));
        call_fail(g, 14, why);
    }
    if (!h->nstreams && h->ready)
        h2up_timer(h, h->up->conf->keepalive.idle_timeout);
    return 0;
}

/* ---- the request ---- */

static ssize_t read_request(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                            nghttp2_data_source *source, void *user)
{
    pt_grpc_t *g = source->ptr;
    size_t avail = g->rq_len - g->rq_pos;
    if (!avail && !g->req_done) {
        g->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = avail < length ? avail : length;
    if (n) /* an empty body has no buffer at all */
        memcpy(buf, g->rq + g->rq_pos, n);
    g->rq_pos += n;
    if (g->rq_pos == g->rq_len)
        g->rq_pos = g->rq_len = 0;
    if (g->req_done && !g->rq_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    pt_conn_reschedule(g->c); /* room: read more of the body */
    return (ssize_t)n;
}

static void submit(pt_grpc_t *g)
{
    h2up_t *h = g->h;
    nghttp2_data_provider dp = {.source.ptr = g, .read_callback = read_request};
    g->id = nghttp2_submit_request(h->s, NULL, g->nv, g->nnv, &dp, g);
    if (g->id < 0) {
        unlink_call(h, g);
        g->h = NULL;
        call_fail(g, 14, "cannot open a stream to the upstream");
        return;
    }
    h->nstreams++;
    evtimer_del(&h->timer);
}

/* ---- driving the upstream connection ---- */

static int session_start(h2up_t *h);

/* Connect, then TLS (grpcs), then the session: true once ready. */
static bool h2up_connect_step(h2up_t *h)
{
    if (!h->connected) {
        if (!h->writable && !h->readable)
            return false;
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            pt_log_error("connect() failed: %s while connecting to gRPC upstream \"%s\" target %s", strerror(err),
                         h->up->conf->name, h->t->name);
            h2up_close(h, "connect() to the upstream failed");
            return false;
        }
        h->connected = true;
    }
    if (h->ssl) {
        char why[160];
        int rc = pt_tls_handshake(h->ssl, why, sizeof(why));
        if (rc == PT_TLS_WANT_READ || rc == PT_TLS_WANT_WRITE) {
            h->readable = h->writable = false;
            return false;
        }
        if (rc != PT_TLS_OK || !pt_tls_alpn_h2(h->ssl)) {
            pt_log_error("TLS handshake with gRPC upstream \"%s\" target %s failed: %s", h->up->conf->name,
                         h->t->name, rc == PT_TLS_OK ? "h2 was not agreed by ALPN" : why);
            h2up_close(h, "TLS handshake with the upstream failed");
            return false;
        }
    }
    if (session_start(h) < 0) {
        h2up_close(h, "out of memory");
        return false;
    }
    h->ready = true;
    evtimer_del(&h->timer);
    for (pt_grpc_t *g = h->calls; g; g = g->next)
        if (g->id == 0 && !g->hold)
            submit(g);
    return true;
}

static void h2up_run(h2up_t *h)
{
    if (!h->ready && !h2up_connect_step(h))
        return;
    for (int rounds = 0; rounds < 64 && !h->dead; rounds++) {
        bool progress = false;
        while (h->out.pending < 256 * 1024) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(h->s, &data);
            if (n <= 0)
                break;
            pt_outq_copy(&h->out, data, (size_t)n);
            progress = true;
        }
        if (!pt_outq_empty(&h->out) && h->writable) {
            ssize_t w = pt_io_flush(&h->out, h->fd, h->ssl);
            if (w < 0) {
                h2up_close(h, "the upstream connection failed");
                return;
            }
            if (!pt_outq_empty(&h->out))
                h->writable = false;
            progress |= w > 0;
        }
        if (h->readable) {
            char buf[16384];
            size_t got;
            bool eof = false;
            progress |= pt_io_read(h->fd, h->ssl, buf, sizeof(buf), &got, false, &h->readable, &eof) != 0;
            if (got && nghttp2_session_mem_recv(h->s, (const uint8_t *)buf, got) < 0) {
                h2up_close(h, "the upstream broke the HTTP/2 protocol");
                return;
            }
            if (eof) {
                h2up_close(h, "the upstream closed the connection");
                return;
            }
        }
        if (!nghttp2_session_want_read(h->s) && !nghttp2_session_want_write(h->s) && pt_outq_empty(&h->out)) {
            h2up_close(h, "the upstream ended the session");
            return;
        }
        if (!progress)
            return;
    }
    event_active(&h->ev, EV_TIMEOUT, 0);
}

static int session_start(h2up_t *h)
{
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb))
        return -1;
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_option *opt;
    if (nghttp2_option_new(&opt)) {
        nghttp2_session_callbacks_del(cb);
        return -1;
    }
    nghttp2_option_set_no_auto_window_update(opt, 1);
    int rc = nghttp2_session_client_new2(&h->s, cb, h, opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    if (rc)
        return -1;
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                   {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
    nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, 2);
    return 0;
}

static h2up_t *h2up_new(pt_worker_t *w, pt_upstream_t *up, pt_target_t *t)
{
    int fd = pt_upstream_socket(t);
    if (fd < 0)
        return NULL;
    h2up_t *h = calloc(1, sizeof(*h));
    if (!h) {
        close(fd);
        return NULL;
    }
    *h = (h2up_t){.w = w, .up = up, .t = t, .fd = fd};
    if (up->conf->scheme == PT_SCHEME_GRPCS && !(h->ssl = pt_upstream_tls_new(up, t, fd))) {
        close(fd);
        free(h);
        return NULL;
    }
    if (h->ssl)
        SSL_set_alpn_protos(h->ssl, (const unsigned char *)"\x02h2", 3);
    event_assign(&h->ev, w->base, fd, EV_READ | EV_WRITE | EV_ET | EV_PERSIST | EV_CLOSED, on_h2up_event, h);
    evtimer_assign(&h->timer, w->base, on_h2up_timer, h);
    event_add(&h->ev, NULL);
    h2up_timer(h, up->conf->timeouts.connect);
    h->next = t->grpc_conns;
    t->grpc_conns = h;
    return h;
}

/* A connection to t with room for one more stream, or a new one. */
static h2up_t *h2up_for(pt_worker_t *w, pt_upstream_t *up, pt_target_t *t)
{
    for (h2up_t *h = t->grpc_conns; h; h = h->next) {
        if (h->dead)
            continue;
        if (!h->s)
            return h; /* still connecting: the call waits on it */
        uint32_t max = nghttp2_session_get_remote_settings(h->s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
        if (h->nstreams < max && nghttp2_session_want_read(h->s))
            return h;
    }
    return h2up_new(w, up, t);
}

/* ---- the call ---- */

/* Off the upstream connection: its stream (if it has one yet) is reset. */
static void cancel_stream(pt_grpc_t *g)
{
    h2up_t *h = g->h;
    if (!h)
        return;
    if (h->s && g->id > 0) {
        if (g->unacked) /* what DATA the call got and did not give back */
            nghttp2_session_consume_connection(h->s, g->unacked);
        g->unacked = 0;
        nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, g->id, NGHTTP2_CANCEL);
        nghttp2_session_set_stream_user_data(h->s, g->id, NULL);
    }
    unlink_call(h, g);
    event_active(&h->ev, EV_TIMEOUT, 0);
    g->h = NULL;
}

/* The call's memory is the client stream's arena, reset once the call is
 * done: nghttp2 must not hold it any more.  An upstream that answered in
 * full while the request stream is still open (a server that ends the call
 * before the client half-closes) leaves that stream half-closed, still
 * pointing at g; it is reset here, and its user data cleared. */
static void call_free(pt_grpc_t *g)
{
    cancel_stream(g);
    evtimer_del(&g->timer);
    if (g->counted) { /* the call's duration feeds the latency balancer; a failure counts as one */
        int64_t now = pt_worker_now_us(g->c->w);
        pt_balancer_done(g->up, g->target, g->resp_done && !g->failed ? now - g->start_us : -1, now);
        g->counted = false;
    }
    free(g->rq);
    g->rq = NULL;
    pt_tc_call_free(g->tc);
    g->tc = NULL;
}

/* The call cannot go on: a gRPC status when nothing was answered yet, else
 * the client stream is cut. */
static void call_fail(pt_grpc_t *g, int code, const char *message)
{
    pt_conn_t *c = g->c;
    cancel_stream(g);
    pt_log_error("gRPC call failed: %s, route=%s upstream=%s req=%s", message, c->req->route ? c->req->route->name : "-",
                 g->up->conf->name, c->req->reqid);
    if (g->tc ? pt_tc_call_started(g->tc) : g->head_sent) { /* the client has a head: only a cut tells it */
        c->req->ent.completion = PT_DONE_UPSTREAM;
        pt_conn_close(c);
        return;
    }
    pt_outq_reset(&c->out);
    pt_grpc_error(c, code, message);
    g->head_sent = g->resp_done = g->failed = true;
    pt_conn_reschedule(c);
}

/* The client's request cannot be a call (a REST body that is not the
 * method's message): its error, logged as the client's. */
static void reject(pt_grpc_t *g, int code, const char *message)
{
    pt_conn_t *c = g->c;
    cancel_stream(g);
    pt_log_info("gRPC call refused: %s, route=%s req=%s", message, c->req->route ? c->req->route->name : "-",
                c->req->reqid);
    pt_outq_reset(&c->out);
    pt_grpc_error(c, code, message);
    g->head_sent = g->resp_done = true;
    pt_conn_reschedule(c);
}

static void on_call_timer(evutil_socket_t fd, short what, void *arg)
{
    pt_grpc_t *g = arg;
    if (g->deadline_us && pt_worker_now_us(g->c->w) >= g->deadline_us - 1000)
        call_fail(g, 4, "deadline exceeded (grpc-timeout)");
    else
        call_fail(g, 4, "upstream timed out");
}

/* grpc-timeout: 1 to 8 digits and a unit (H M S m u n); 0 when absent or
 * not that. */
static int64_t grpc_timeout_us(const pt_h1_req_t *req)
{
    const pt_h1_header_t *h = pt_h1_find(req, PT_STR("grpc-timeout"));
    if (!h || h->value.n < 2 || h->value.n > 9)
        return 0;
    int64_t v = 0;
    for (size_t i = 0; i + 1 < h->value.n; i++) {
        if (h->value.p[i] < '0' || h->value.p[i] > '9')
            return 0;
        v = v * 10 + (h->value.p[i] - '0');
    }
    switch (h->value.p[h->value.n - 1]) {
    case 'H': return v * 3600 * 1000000;
    case 'M': return v * 60 * 1000000;
    case 'S': return v * 1000000;
    case 'm': return v * 1000;
    case 'u': return v;
    case 'n': return v / 1000 ? v / 1000 : 1;
    default: return 0;
    }
}

/* Appends n bytes of request body to what goes upstream (a gRPC-Web
 * text body decoded first).  false when the call failed. */
static bool body_add(pt_grpc_t *g, const char *data, size_t n)
{
    if (g->tc) {
        char err[128];
        if (pt_tc_call_body(g->tc, data, n, err, sizeof(err)))
            return true;
        reject(g, 3, err);
        return false;
    }
    size_t room = g->web == PT_GRPC_WEB_TEXT ? pt_b64_stream_room(n) : n;
    if (g->rq_len + room > g->rq_cap) {
        size_t cap = g->rq_cap ? g->rq_cap * 2 : 16384;
        while (cap < g->rq_len + room)
            cap *= 2;
        char *p = realloc(g->rq, cap);
        if (!p) {
            call_fail(g, 8, "out of memory");
            return false;
        }
        g->rq = p;
        g->rq_cap = cap;
    }
    if (g->web != PT_GRPC_WEB_TEXT) {
        memcpy(g->rq + g->rq_len, data, n);
        g->rq_len += n;
        return true;
    }
    long d = pt_b64_stream_decode(&g->b64, data, n, (unsigned char *)g->rq + g->rq_len);
    if (d < 0) {
        call_fail(g, 13, "invalid base64 in the gRPC-Web text request body");
        return false;
    }
    g->rq_len += (size_t)d;
    return true;
}

/* Takes the request body that has come into c->ibuf: chunked (from an
 * HTTP/2 stream without a length, or an HTTP/1.1 client) or as it is. */
static void take_request_body(pt_grpc_t *g)
{
    pt_conn_t *c = g->c;
    while (!g->req_done && c->ipos < c->ilen && g->rq_len < 1 << 20) {
        const char *data = c->ibuf + c->ipos;
        size_t dlen = c->ilen - c->ipos;
        long used;
        if (g->raw_body) {
            dlen = (int64_t)dlen < g->body_left ? dlen : (size_t)g->body_left;
            used = (long)dlen;
            g->body_left -= (int64_t)dlen;
        } else if ((used = pt_h1_chunked_decode(&g->chunk, c->ibuf + c->ipos, c->ilen - c->ipos, &data, &dlen)) < 0) {
            call_fail(g, 13, "invalid request body");
            return;
        }
        if (dlen && !body_add(g, data, dlen))
            return;
        c->ipos += (size_t)used;
        c->req->ent.bytes_in += (uint64_t)used;
        g->req_done = g->raw_body ? g->body_left == 0 : g->chunk.done;
    }
    if (g->req_done && g->web == PT_GRPC_WEB_TEXT && !pt_b64_stream_whole(&g->b64) && !g->resp_done) {
        call_fail(g, 13, "the gRPC-Web text request body ends inside a base64 quantum");
        return;
    }
    if (g->tc && g->hold && g->req_done && !g->resp_done) { /* the JSON body, whole: the message */
        char err[512], *msg;
        size_t n;
        if (!pt_tc_call_encode(g->tc, &msg, &n, err, sizeof(err))) {
            reject(g, 3, err);
            return;
        }
        free(g->rq);
        g->rq = msg;
        g->rq_len = g->rq_cap = n;
        g->rq_pos = 0;
        g->hold = false;
        if (g->h && g->h->ready && g->id == 0)
            submit(g);
        if (g->h)
            event_active(&g->h->ev, EV_TIMEOUT, 0);
    }
    if (g->h && g->deferred && (g->rq_len || g->req_done)) {
        g->deferred = false;
        nghttp2_session_resume_data(g->h->s, g->id);
        event_active(&g->h->ev, EV_TIMEOUT, 0);
    }
}

void pt_grpc_run(pt_grpc_t *g)
{
    pt_conn_t *c = g->c;
    if (!pt_outq_empty(&c->out) && c->writable && pt_conn_flush(c) < 0) {
        pt_conn_close(c);
        return;
    }
    if (!g->resp_done) {
        if (c->readable && c->ipos == c->ilen)
            pt_conn_read(c);
        take_request_body(g);
        if (c->dead || g->resp_done)
            goto done;
        if (g->hold && !g->req_done && c->readable && c->ipos == c->ilen)
            pt_conn_reschedule(c); /* a JSON body is taken whole before the call: nothing else asks for more */
        if (g->h && g->unacked && c->out.pending < CLIENT_HIGH) { /* the client took it: more may come */
            nghttp2_session_consume(g->h->s, g->id, g->unacked);
            g->unacked = 0;
            event_active(&g->h->ev, EV_TIMEOUT, 0);
        }
        if (!pt_conn_is_stream(c) && c->eof && !g->req_done) {
            /* an HTTP/1.1 client (gRPC-Web) left before its request ended */
            pt_log_info("client closed the connection during a gRPC-Web call, req=%s", c->req->reqid);
            c->req->ent.status = 499;
            c->req->ent.completion = PT_DONE_CLIENT;
            call_free(g);
            pt_conn_close(c);
            return;
        }
        if (g->h || g->deadline_us) {
            /* silence for timeouts.read, renewed by every step; no later than the call's deadline */
            int64_t us = g->up->conf->timeouts.read * 1000;
            if (g->deadline_us && g->deadline_us - pt_worker_now_us(c->w) < us)
                us = g->deadline_us - pt_worker_now_us(c->w);
            us = us < 1000 ? 1000 : us;
            struct timeval tv = {us / 1000000, us % 1000000};
            evtimer_add(&g->timer, &tv);
        }
    }
done:
    if (!c->dead && g->resp_done && pt_outq_empty(&c->out)) {
        if (!g->req_done) { /* what is left of the body is not needed, and where it ends is unknown */
            c->ipos = c->ilen;
            if (!pt_conn_is_stream(c))
                c->closing = true;
        } /* else a pipelined request may follow it in the buffer */
        call_free(g);
        c->req->grpc_call = NULL;
        pt_h1_source_done(c);
    }
}

void pt_grpc_abort(pt_grpc_t *g)
{
    call_free(g);
}

/* Not passed to the upstream as they are: the hop-by-hop ones (TE is
 * added back as "trailers"), and what the pseudo-headers and DATA say. */
static bool hop(pt_str_t n)
{
    return pt_proxy_hop_by_hop(n) || PT_STR_IEQ(n, "host") || PT_STR_IEQ(n, "content-length");
}

static uint8_t *copy_lower(pt_arena_t *a, pt_str_t s)
{
    char *p = pt_arena_strndup(a, s.p, s.n);
    for (size_t i = 0; p && i < s.n; i++)
        if (p[i] >= 'A' && p[i] <= 'Z')
            p[i] = (char)(p[i] + 32);
    return (uint8_t *)p;
}

/* The call's HEADERS: the head the HTTP/1.1 proxy would send (the route's
 * and the filters' rewrites, forwarding fields), as HTTP/2 fields. */
static bool upstream_head(pt_conn_t *c, const pt_h1_req_t *req, const pt_route_conf_t *r, pt_h1_header_t *fields,
                          size_t nfields, pt_grpc_t *g, nghttp2_nv *nv)
{
    pt_upstream_t *up = pt_worker_upstream(c->w, r->up);
    char *head;
    size_t len = pt_proxy_forward_head(c, req, r, true, &head, NULL);
    pt_h1_limits_t lim = {len, len, nfields};
    pt_h1_req_t out = {.headers = fields};
    int status = 0;
    if (!len || pt_h1_parse_request(head, len, &lim, &out, &status) <= 0)
        return false;
    const char *scheme = up->conf->scheme == PT_SCHEME_GRPCS ? "https" : "http";
    const pt_tc_t *tc = pt_transcode_of(c->req->fx);
    pt_str_t method = tc ? PT_STR("POST") : out.method, path = tc ? pt_str_from(tc->b->m->path) : out.target;
    nv[g->nnv++] = (nghttp2_nv){(uint8_t *)":method", (uint8_t *)method.p, 7, method.n, 0};
    nv[g->nnv++] = (nghttp2_nv){(uint8_t *)":scheme", (uint8_t *)scheme, 7, strlen(scheme), 0};
    nv[g->nnv++] = (nghttp2_nv){(uint8_t *)":authority", (uint8_t *)out.host.p, 10, out.host.n, 0};
    nv[g->nnv++] = (nghttp2_nv){(uint8_t *)":path", (uint8_t *)path.p, 5, path.n, 0};
    nv[g->nnv++] = (nghttp2_nv){(uint8_t *)"te", (uint8_t *)"trailers", 2, 8, 0};
    if (tc)
        nv[g->nnv++] = (nghttp2_nv){(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, 0};
    for (size_t i = 0; i < out.nheaders; i++) {
        pt_str_t name = out.headers[i].name;
        if (hop(name) || (tc && (PT_STR_IEQ(name, "content-type") || PT_STR_IEQ(name, "accept-encoding") ||
                                 (name.n > 5 && strncasecmp(name.p, "grpc-", 5) == 0 && !PT_STR_IEQ(name, "grpc-timeout")))))
            continue;
        nv[g->nnv++] = (nghttp2_nv){copy_lower(&c->arena, out.headers[i].name), (uint8_t *)out.headers[i].value.p,
                                    out.headers[i].name.n, out.headers[i].value.n, 0};
    }
    return true;
}

void pt_grpc_start(pt_conn_t *c, const pt_h1_req_t *req, const pt_route_conf_t *r)
{
    pt_upstream_t *up = pt_worker_upstream(c->w, r->up);
    pt_grpc_web_mode_t web = pt_grpc_web_of(c->req->fx);
    const pt_tc_t *tc = pt_transcode_of(c->req->fx);
    if (!pt_conn_is_stream(c)) {
        /* gRPC is HTTP/2 only; gRPC-Web and REST also HTTP/1.1; a REST call
         * whose answer is not streamed also HTTP/1.0 (no chunks), closed after */
        bool ok = req->minor >= 1 ? web || tc : tc && !tc->b->m->server_streaming;
        if (req->minor < 1 || !ok)
            c->closing = true;
        if (!ok && tc) {
            pt_tc_error_status(c, 505, 12, "this method's answer is streamed, which needs HTTP/1.1 or HTTP/2");
            return;
        }
        if (!ok) {
            pt_req_respond(c, 505, "text/plain", "505 HTTP Version Not Supported: gRPC needs HTTP/2\n", 50, NULL, false);
            return;
        }
    }
    /* the response head's and the trailers' room (some 9 KiB) is not
     * zeroed: head_len and ntrailers say what of it holds anything */
    pt_grpc_t *g = pt_arena_alloc(&c->arena, sizeof(*g));
    if (g) {
        memset(g, 0, offsetof(pt_grpc_t, head));
        g->head_len = g->ntrailers = 0;
    }
    size_t nfields = req->nheaders + (c->req->fx ? c->req->fx->nreq : 0) + 9;
    nghttp2_nv *nv = pt_arena_alloc(&c->arena, (nfields + 6) * sizeof(nghttp2_nv));
    pt_h1_header_t *fields = pt_arena_alloc(&c->arena, nfields * sizeof(pt_h1_header_t));
    if (!g || !nv || !fields || !upstream_head(c, req, r, fields, nfields, g, nv)) {
        pt_grpc_error(c, 8, "out of memory");
        return;
    }
    for (size_t i = 0; i < g->nnv; i++)
        if (!nv[i].name || !nv[i].value) {
            pt_grpc_error(c, 8, "out of memory");
            return;
        }
    g->c = c;
    g->up = up;
    g->nv = nv;
    g->web = web;
    g->start_us = pt_worker_now_us(c->w);
    int64_t timeout = grpc_timeout_us(req);
    g->deadline_us = timeout ? g->start_us + timeout : 0;
    pt_pick_ctx_t ctx = {PT_STR_NULL, g->start_us};
    size_t idx = pt_balancer_pick(up, NULL, &ctx);
    if (idx == PT_PICK_NONE) {
        pt_grpc_error(c, 14, "no healthy upstream");
        return;
    }
    pt_target_t *t = &up->targets[idx];
    h2up_t *h = h2up_for(c->w, up, t);
    if (!h) {
        pt_grpc_error(c, 14, "cannot connect to the upstream");
        return;
    }
    if (tc && !(g->tc = pt_tc_call_new(c, tc, r->max_body_size > 0 ? r->max_body_size : 1 << 20))) {
        pt_grpc_error(c, 8, "out of memory");
        return;
    }
    g->hold = tc != NULL;
    g->target = idx;
    pt_balancer_start(up, idx);
    g->counted = true;
    c->req->ent.upstream_addr = t->log_name ? t->log_name : t->name;
    evtimer_assign(&g->timer, c->w->base, on_call_timer, g);
    c->ipos += req->head_len; /* the body follows the head */
    if (req->expect_continue && !pt_conn_is_stream(c) && (req->chunked || req->content_length > 0) &&
        !pt_outq_copy(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25))
        c->closing = true;
    c->req->ent.bytes_in = req->head_len;
    pt_req_detach(c);
    g->raw_body = !req->chunked;
    g->body_left = req->content_length > 0 ? req->content_length : 0;
    g->req_done = g->raw_body && !g->body_left;
    g->h = h;
    g->next = h->calls;
    h->calls = g;
    c->req->grpc_call = g;
    c->state = PT_CS_GRPC;
    if (h->ready && !g->hold)
        submit(g);
    event_active(&h->ev, EV_TIMEOUT, 0);
    pt_conn_reschedule(c);
}

void pt_grpc_close_target(pt_target_t *t)
{
    while (t->grpc_conns)
        h2up_close(t->grpc_conns, "worker stopping");
}
