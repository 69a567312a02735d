/* Proxying one request: the state machine between a client connection
 * and an upstream connection.
 *
 * Bodies are never copied: a span of one side's input buffer is queued by
 * reference on the other side's output queue, and neither side reads into
 * a buffer while the other still references it (outq.refs != 0).  That is
 * also the back-pressure: a slow reader stops the reads of the other side.
 * Only the little framing of a re-chunked body is copied.
 *
 * Retries: a failed connect always goes to another target (within
 * `retries`, `retry_timeout` and the retry budget); a failure before any
 * response byte, or a status in `retry_statuses`, is retried for
 * idempotent requests whose body is still whole in the client buffer; a
 * pooled connection that turns out closed is retried once on a new one
 * (never from the pool: the upstream may have closed them all at once)
 * as long as nothing of the response came back. */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "portico/cidr.h"
#include "portico/conn.h"
#include "portico/h1_server.h"
#include "portico/err-t.h"
#include "portico/filter.h"
#include "portico/head.h"
#include "portico/response.h"
#include "portico/http.h"
#include "portico/io.h"
#include "portico/location.h"
#include "portico/log.h"
#include "portico/metrics.h"
#include "portico/proxy.h"
#include "portico/request.h"
#include "portico/tls.h"
#include "portico/trace.h"
#include "portico/upstream.h"

enum body_mode { BODY_NONE, BODY_LENGTH, BODY_CHUNKED, BODY_RAW };
enum { W_NONE, W_BODY, W_RESPONSE };
enum fail_kind { F_CONNECT, F_CONNECT_TIMEOUT, F_SEND, F_READ_TIMEOUT, F_RESET, F_BAD_RESPONSE, F_CLIENT_BODY, F_TLS };

struct pt_proxy {
    pt_conn_t *c;
    const pt_route_conf_t *route;
    pt_upstream_t *up;
    pt_upconn_t *uc;
    bool *tried;
    size_t target; /* of the current attempt */
    bool counted;  /* the balancer knows an attempt is under way */
    int attempts, stale_retries;
    char why[160]; /* a failed upstream TLS handshake: OpenSSL's reason */
    pt_str_t hash_key;
    bool idempotent, head_method;
    int client_minor;
    bool client_keep_alive;

    /* request */
    char *head;
    size_t head_len;
    bool head_queued;
    int req_mode;
    int64_t req_length, req_left, req_received;
    pt_h1_chunked_t req_chunk;
    size_t bcur;      /* bytes of the body past c->ipos already taken */
    bool body_done;
    bool replayable;  /* the whole body is still in c->ibuf */
    bool expect_continue;
    bool upgrade;
    int64_t max_body; /* 0: no limit */
    struct timeval body_start;

    bool location; /* strip_prefix cut the path, and goes back into Location (route->location) */

    /* response */
    bool head_done;
    int status;
    int resp_mode;
    bool resp_no_body, resp_keep_alive, client_chunked, close_client;
    int64_t resp_left;
    pt_h1_chunked_t resp_chunk;
    size_t rcur; /* bytes past uc->ipos queued to the client */
    bool resp_done;
    bool tunnel;
    bool broken; /* an output queue refused a segment: the exchange cannot go on whole */
    int waiting;    /* a filter holds the body (W_BODY) or the response head (W_RESPONSE) */
    int64_t wait_deadline_us; /* the request's timeouts.filters deadline, from its first wait */
    bool head_seen; /* the response head's status was taken (health, retries): not again on resume */
    bool tapped;    /* the tap (fx->tap) saw the head */
    bool detached;  /* the client was answered already (fx->detached): nothing of the response goes to it */
    pt_resp_tap_t *tap; /* storing: the tap gets the body */
    struct timeval up_start;
    int64_t attempt_us; /* when the last attempt started (the log's upstream times) */
};

static bool start_attempt(pt_proxy_t *p);
static void finish(pt_proxy_t *p, bool upstream_reusable);
static void attempt_over(pt_proxy_t *p, int64_t latency_us);
static bool retry_status(pt_proxy_t *p, int status);
static int64_t now_us(pt_conn_t *c);

static int64_t since_us(pt_conn_t *c, const struct timeval *t0)
{
    return now_us(c) - ((int64_t)t0->tv_sec * 1000000 + t0->tv_usec);
}

static void log_failure(pt_proxy_t *p, const char *what, int err)
{
    char ca[80];
    const char *detail = err ? strerror(err) : p->why[0] ? p->why : NULL;
    pt_log_error("%s%s%s while %s, client=%s route=%s upstream=%s target=%s req=%s", what, detail ? ": " : "",
                 detail ? detail : "",
                 !p->uc || p->uc->connecting ? "connecting to upstream" : p->head_done ? "reading the response body"
                                                                                      : "proxying the request",
                 pt_conn_peer_name(p->c, ca, sizeof(ca)), p->route->name, p->up->conf->name,
                 p->uc ? p->uc->t->name : "-", p->c->req->reqid);
}

/* Queues one chunk of a chunked body: its size line, a reference to the
 * data, the CRLF.  Returns the bytes queued. */
static size_t queue_chunk(pt_proxy_t *p, pt_outq_t *q, const char *data, size_t n)
{
    char sz[24];
    size_t k = pt_fmt_u64(sz, n, 1);
    sz[k++] = '\r';
    sz[k++] = '\n';
    if (!pt_outq_copy(q, sz, k) || !pt_outq_ref(q, data, n) || !pt_outq_copy(q, "\r\n", 2))
        p->broken = true;
    return k + n + 2;
}

/* A body span referenced on an output queue; a refusal breaks the exchange. */
static void ref(pt_proxy_t *p, pt_outq_t *q, const char *data, size_t n)
{
    if (!pt_outq_ref(q, data, n))
        p->broken = true;
}

/* ---- the request side ---- */

static void reset_request(pt_proxy_t *p)
{
    p->head_queued = false;
    p->bcur = 0;
    p->req_left = p->req_length;
    p->req_received = 0;
    memset(&p->req_chunk, 0, sizeof(p->req_chunk));
    p->body_done = p->req_mode == BODY_NONE;
}

/* The body hooks over the next n bytes (before they go upstream):
 * PT_NEXT, PT_SUSPEND (a filter holds the body: p->waiting), or a refusal. */
static int body_hooks(pt_proxy_t *p, const char *data, size_t n, bool last)
{
    pt_fx_t *fx = p->c->req->fx;
    if (!fx)
        return PT_NEXT;
    pt_verdict_t v = pt_filters_body(p->c, fx, data, n, last);
    if (v == PT_SUSPEND)
        p->waiting = W_BODY;
    return v;
}

/* Queues what the client has sent of the body on the upstream side. */
static int pump_request(pt_proxy_t *p)
{
    pt_conn_t *c = p->c;
    pt_upconn_t *uc = p->uc;
    int progress = 0;
    if (p->waiting == W_BODY)
        return 0; /* a filter holds the body */
    if (!p->head_queued) {
        ref(p, &uc->out, p->head, p->head_len);
        p->head_queued = true;
        progress = 1;
    }
    while (!p->body_done && pt_outq_has_room(&uc->out)) {
        const char *data = c->ibuf + c->ipos + p->bcur;
        size_t avail = c->ilen - c->ipos - p->bcur;
        if (!avail)
            break;
        if (p->req_mode == BODY_RAW) {
            ref(p, &uc->out, data, avail);
            p->bcur += avail;
        } else if (p->req_mode == BODY_LENGTH) {
            size_t n = (int64_t)avail < p->req_left ? avail : (size_t)p->req_left;
            int v = body_hooks(p, data, n, (int64_t)n == p->req_left);
            if (v != PT_NEXT)
                return v == PT_SUSPEND ? progress : -2;
            ref(p, &uc->out, data, n);
            p->bcur += n;
            p->req_left -= (int64_t)n;
            p->req_received += (int64_t)n;
            p->body_done = p->req_left == 0;
        } else {
            const char *d;
            size_t dl;
            pt_h1_chunked_t before = p->req_chunk; /* a hook that waits sees the same chunk again */
            long used = pt_h1_chunked_decode(&p->req_chunk, data, avail, &d, &dl);
            if (used < 0)
                return -1;
            if (dl && p->max_body && p->req_received + (int64_t)dl > p->max_body)
                return -2;
            int v = dl || p->req_chunk.done ? body_hooks(p, d, dl, p->req_chunk.done) : PT_NEXT;
            if (v != PT_NEXT) {
                p->req_chunk = before;
                return v == PT_SUSPEND ? progress : -2;
            }
            p->bcur += (size_t)used;
            if (dl) {
                queue_chunk(p, &uc->out, d, dl);
                p->req_received += (int64_t)dl;
            }
            if (p->req_chunk.done) {
                if (!pt_outq_copy(&uc->out, "0\r\n\r\n", 5))
                    p->broken = true;
                p->body_done = true;
            }
        }
        progress = 1;
    }
    return progress;
}

/* The client bytes queued upstream are sent: let the client buffer move. */
static void release_client_bytes(pt_proxy_t *p)
{
    pt_conn_t *c = p->c;
    if (!p->replayable && p->bcur) {
        c->ipos += p->bcur;
        c->req->ent.bytes_in += p->bcur;
        p->bcur = 0;
    }
}

/* ---- the response side ---- */

static void out_copy(pt_proxy_t *p, const void *s, size_t n)
{
    if (!pt_outq_copy(&p->c->out, s, n))
        p->broken = true;
    p->c->req->ent.bytes_out += n;
}

static void out_ref(pt_proxy_t *p, const void *s, size_t n)
{
    ref(p, &p->c->out, s, n);
    p->c->req->ent.bytes_out += n;
}

/* The client's head, through the one response path (proxy_headers.c):
 * the upstream's status line and fields, the filters' edits, our framing.
 * False when memory ran out (nothing was queued). */
static bool queue_response_head(pt_proxy_t *p, const pt_h1_resp_t *r, const char *base)
{
    pt_conn_t *c = p->c;
    pt_proxy_framing_t fr = {
        .tunnel = p->tunnel,
        .length = r->content_length >= 0 && (p->resp_mode == BODY_LENGTH || p->resp_no_body),
        .chunked = !p->resp_no_body && p->client_chunked,
        .close = p->close_client,
        .http10 = p->client_minor == 0,
        .log = &c->req->ent,
    };
    pt_location_ctx_t loc;
    if (p->location) /* the Host it went with, as put_request_line wrote it; the log's copy of the client's */
        loc = (pt_location_ctx_t){p->route->location, p->route->upstream_host ? pt_str_from(p->route->upstream_host)
                                                      : c->req->ent.host.n    ? c->req->ent.host
                                                                              : pt_str_from(p->route->up->name)};
    size_t n = pt_proxy_response_head(&c->out, r, base, &fr, c->req->fx, p->location ? &loc : NULL,
                                      pt_worker_date(c->w));
    c->req->ent.bytes_out += n;
    return n > 0;
}

/* Parses the response head once it is all there, and decides the framing
 * towards the client.  1 on progress, 0 waiting, -1 a bad response, 2 the
 * response was dropped for a retry (p may be gone), 3 the cache answered
 * the client instead (fx->tap). */
static int take_response_head(pt_proxy_t *p)
{
    pt_conn_t *c = p->c;
    pt_upconn_t *uc = p->uc;
    const pt_listener_conf_t *lc = c->acc->ls->conf;
    pt_h1_header_t headers[lc ? lc->max_headers : 100];
    pt_h1_limits_t lim = {8192, PT_UPCONN_IBUF, lc ? (size_t)lc->max_headers : 100};
    pt_h1_resp_t r = {.headers = headers};
    for (;;) {
        const char *base = uc->ibuf + uc->ipos;
        int rc = pt_h1_parse_response(base, uc->ilen - uc->ipos, &lim, &r);
        if (rc == PT_EAGAIN)
            return 0;
        if (rc < 0)
            return -1;
        if (r.status >= 100 && r.status < 200 && r.status != 101) {
            uc->ipos += (size_t)rc; /* 100 Continue and friends: ours to swallow */
            continue;
        }
        if (!p->head_seen) { /* once, even when a filter holds the head and it is parsed again */
            p->head_seen = true;
            p->status = r.status;
            c->req->ent.upstream_status = r.status;
            c->req->ent.upstream_header_us = now_us(c) - p->attempt_us;
            pt_accesslog_take(&c->req->ent, PT_ALOG_HDR_UPSTREAM, r.headers, r.nheaders); /* before ibuf moves */
            if (p->up->passive)
                pt_health_report(p->up, p->target,
                                 pt_health_bad_status(p->up, r.status) ? PT_OUT_HTTP_FAIL : PT_OUT_OK, now_us(c) / 1000);
            if (p->up->conf->retry_statuses.n && retry_status(p, r.status))
                return 2; /* dropped, and retried */
        }
        if (r.status == 101) {
            if (!p->upgrade)
                return -1; /* switching protocols nobody asked for */
            p->tunnel = true;
            p->resp_no_body = true;
        }
        p->resp_no_body |= p->head_method || r.status == 204 || r.status == 304;
        p->resp_keep_alive = r.keep_alive;
        if (p->resp_no_body)
            p->resp_mode = BODY_NONE;
        else if (r.chunked)
            p->resp_mode = BODY_CHUNKED;
        else if (r.content_length >= 0)
            p->resp_mode = BODY_LENGTH;
        else
            p->resp_mode = BODY_RAW; /* until the upstream closes */
        p->resp_left = r.content_length;
        if (p->resp_mode == BODY_LENGTH && p->resp_left == 0)
            p->resp_done = true; /* Content-Length: 0: the head is the whole answer */
        if (p->resp_mode == BODY_RAW)
            p->resp_keep_alive = false;
        /* towards the client: chunked when the length is unknown and the
         * client speaks 1.1; a 1.0 client learns the end by the close */
        if (p->resp_mode == BODY_CHUNKED || p->resp_mode == BODY_RAW) {
            if (p->client_minor == 1)
                p->client_chunked = true;
            else
                p->close_client = true;
        }
        if (!p->client_keep_alive || c->w->draining || !p->body_done)
            p->close_client = true;
        pt_resp_tap_t *tap = c->req->fx && !p->tunnel ? c->req->fx->tap : NULL;
        if (tap && !p->tapped) {
            p->tapped = true;
            if (tap->head(c, tap, &r, base)) { /* answered from the cache: the upstream's response is dropped */
                uc->ipos += (size_t)rc;
                p->head_done = true;
                c->req->ent.upstream_us = since_us(c, &p->up_start);
                return 3;
            }
            p->tap = tap->storing ? tap : NULL;
        }
        if (p->detached) { /* a refresh: the response is the cache's alone */
            uc->ipos += (size_t)rc;
            p->head_done = true;
            p->client_chunked = false;
            c->req->ent.upstream_us = since_us(c, &p->up_start);
            return 1;
        }
        if (c->req->fx && pt_filters_response(c, c->req->fx, r.status, !p->tunnel) == PT_SUSPEND) {
            p->waiting = W_RESPONSE; /* the head stays in the upstream's buffer until the filter resumes */
            return 0;
        }
        c->req->ent.status = r.status; /* the client's, once its head is on its way */
        if (!queue_response_head(p, &r, base))
            return -1;
        uc->ipos += (size_t)rc;
        p->head_done = true;
        c->req->ent.upstream_us = since_us(c, &p->up_start);
        if (p->tunnel) {
            p->req_mode = BODY_RAW;
            p->body_done = false;
            p->replayable = false;
            p->resp_mode = BODY_RAW;
            p->resp_no_body = false;
            p->client_chunked = false;
        }
        return 1;
    }
}

/* Body bytes for the client: as they are, or as one chunk. */
static void out_body(pt_proxy_t *p, const char *data, size_t n)
{
    if (p->tap)
        p->tap->body(p->tap, data, n);
    if (p->detached)
        return;
    if (p->client_chunked)
        p->c->req->ent.bytes_out += queue_chunk(p, &p->c->out, data, n);
    else
        out_ref(p, data, n);
}

/* Queues what the upstream has sent of the body on the client side. */
static int pump_response(pt_proxy_t *p)
{
    pt_upconn_t *uc = p->uc;
    int progress = 0;
    if (p->resp_mode == BODY_NONE) {
        p->resp_done = true;
        return 0;
    }
    while (!p->resp_done && pt_outq_has_room(&p->c->out)) {
        const char *data = uc->ibuf + uc->ipos + p->rcur;
        size_t avail = uc->ilen - uc->ipos - p->rcur;
        if (!avail) {
            if (uc->eof && !uc->reset && p->resp_mode == BODY_RAW && !p->tunnel) {
                if (p->client_chunked)
                    out_copy(p, "0\r\n\r\n", 5);
                p->resp_done = true;
                progress = 1;
            } else if (uc->eof && !p->tunnel) {
                return -1; /* closed before the end of the body */
            }
            break;
        }
        if (p->resp_mode == BODY_LENGTH) {
            size_t n = (int64_t)avail < p->resp_left ? avail : (size_t)p->resp_left;
            if (p->tap)
                p->tap->body(p->tap, data, n);
            if (!p->detached)
                out_ref(p, data, n);
            p->rcur += n;
            p->resp_left -= (int64_t)n;
            p->resp_done = p->resp_left == 0;
        } else if (p->resp_mode == BODY_RAW) {
            out_body(p, data, avail);
            p->rcur += avail;
        } else {
            const char *d;
            size_t dl;
            long used = pt_h1_chunked_decode(&p->resp_chunk, data, avail, &d, &dl);
            if (used < 0)
                return -1;
            p->rcur += (size_t)used;
            if (dl)
                out_body(p, d, dl);
            if (p->resp_chunk.done) {
                if (p->client_chunked)
                    out_copy(p, "0\r\n\r\n", 5);
                p->resp_done = true;
            }
        }
        progress = 1;
    }
    return progress;
}

static void release_upstream_bytes(pt_proxy_t *p)
{
    pt_upconn_t *uc = p->uc;
    uc->ipos += p->rcur;
    p->rcur = 0;
    if (uc->ipos == uc->ilen)
        uc->ipos = uc->ilen = 0;
}

/* 1 when something was read, 0 when not; sets uc->eof (and uc->reset). */
static int read_upstream(pt_proxy_t *p)
{
    pt_upconn_t *uc = p->uc;
    if (uc->ipos && uc->ipos + p->rcur == uc->ilen && !p->rcur) {
        uc->ipos = uc->ilen = 0;
    } else if (uc->ipos && uc->icap - uc->ilen < 4096 && p->c->out.refs == 0) {
        memmove(uc->ibuf, uc->ibuf + uc->ipos, uc->ilen - uc->ipos);
        uc->ilen -= uc->ipos;
        uc->ipos = 0;
    }
    size_t want = uc->icap - uc->ilen, got;
    if (!want)
        return 0;
    int rc = pt_io_read(uc->fd, uc->ssl, uc->ibuf + uc->ilen, want, &got, uc->rdhup, &uc->readable, &uc->eof);
    uc->ilen += got;
    if (rc < 0) {
        uc->reset = true;
        return 1;
    }
    return rc;
}

/* ---- failures and retries ---- */

/* May another attempt start: within `retries`, `retry_timeout` and the
 * retry budget, and not while draining? */
static bool retry_allowed(pt_proxy_t *p)
{
    pt_conn_t *c = p->c;
    const pt_upstream_conf_t *u = p->up->conf;
    if (p->attempts > u->retries || c->w->draining)
        return false;
    if (u->retry_timeout && since_us(c, &p->up_start) / 1000 >= u->retry_timeout) {
        pt_log_notice("retry_timeout of upstream \"%s\" passed: no retry, req=%s", u->name, c->req->reqid);
        return false;
    }
    return pt_budget_retry(p->up, now_us(c) / 1000);
}

/* Nothing of the last attempt's answer carries over to the next one (it
 * may have come whole, or in part while a filter held its head).  A store
 * it fed (the cache's) is not fed the next one's body: the filter drops it
 * at the end of the exchange, and the next answer is passed on unstored. */
static void reset_response(pt_proxy_t *p)
{
    p->tap = NULL;
    p->head_done = false;
    p->status = 0;
    p->resp_mode = BODY_NONE;
    p->resp_no_body = p->resp_keep_alive = p->client_chunked = p->close_client = false;
    p->resp_left = 0;
    memset(&p->resp_chunk, 0, sizeof(p->resp_chunk));
    p->rcur = 0;
    p->resp_done = false;
}

/* The next attempt, after the last one was closed. */
static void retry(pt_proxy_t *p)
{
    reset_request(p);
    reset_response(p);
    p->head_seen = false; /* a new attempt, a new response */
    if (start_attempt(p))
        pt_proxy_run(p);
}

/* A response head whose status is in retry_statuses: a retry when one is
 * allowed (true: the response was dropped and p may be gone). */
static bool retry_status(pt_proxy_t *p, int status)
{
    if (!pt_list_has_int(&p->up->conf->retry_statuses, status) || !p->idempotent || !p->replayable || p->upgrade || !retry_allowed(p))
        return false;
    pt_log_info("upstream \"%s\" target %s answered %d: retrying, req=%s", p->up->conf->name, p->uc->t->name,
                status, p->c->req->reqid);
    attempt_over(p, since_us(p->c, &p->up_start));
    pt_upconn_close(p->uc);
    p->uc = NULL;
    retry(p);
    return true;
}

/* Is a target other than the one just tried there to retry on (resolved,
 * and not marked down)? */
static bool another_target(pt_proxy_t *p)
{
    int64_t now = now_us(p->c) / 1000;
    for (size_t i = 0; i < p->up->ntargets; i++) {
        const pt_target_t *t = &p->up->targets[i];
        if (i != p->target && t->addrlen && t->rt_state == PT_RT_UP && !(t->shared && pt_health_down(t->shared, now)))
            return true;
    }
    return false;
}

/* The upstream failed before the client got anything: may the cache
 * answer instead (stale-if-error)?  True when it did (p is gone). */
static bool answered_by_tap(pt_proxy_t *p, int status)
{
    pt_conn_t *c = p->c;
    pt_resp_tap_t *tap = c->req->fx ? c->req->fx->tap : NULL;
    if (!tap || !tap->failed || p->tunnel || !tap->failed(c, tap, status))
        return false;
    p->tap = NULL;
    c->req->ent.upstream_us = since_us(c, &p->up_start);
    finish(p, false);
    return true;
}

static void fail(pt_proxy_t *p, int kind, int err)
{
    pt_conn_t *c = p->c;
    pt_upconn_t *uc = p->uc;
    bool reused = uc && uc->reused;
    bool got_bytes = uc && (uc->ilen > 0 || p->head_done);
    /* a pooled connection the upstream had closed before we wrote */
    bool stale = reused && !got_bytes && (kind == F_RESET || kind == F_SEND);
    /* retried once, on a new connection (not the target's fault, not news) */
    bool stale_retry = stale && p->replayable && p->stale_retries < 1 && !c->w->draining;
    if (p->counted && kind != F_CLIENT_BODY && !stale) {
        const pt_target_t *t = &p->up->targets[p->target];
        if (kind == F_CONNECT || kind == F_TLS)
            pt_mx_target_add(p->up, t, PT_MXW_T_CONNECT_FAILURES, 1);
        else if (kind == F_CONNECT_TIMEOUT || kind == F_READ_TIMEOUT)
            pt_mx_target_add(p->up, t, PT_MXW_T_TIMEOUTS, 1);
    }
    if (p->counted && p->up->passive && kind != F_CLIENT_BODY && !stale) {
        int outcome = kind == F_CONNECT || kind == F_TLS ? PT_OUT_TCP_FAIL
                      : (kind == F_CONNECT_TIMEOUT || kind == F_READ_TIMEOUT) ? PT_OUT_TIMEOUT
                      : kind == F_BAD_RESPONSE ? PT_OUT_HTTP_FAIL
                                               : PT_OUT_TCP_FAIL;
        pt_health_report(p->up, p->target, outcome, now_us(c) / 1000);
    }
    static const char *const what[] = {"connect() failed", "upstream timed out connecting", "send() failed",
                                       "upstream timed out", "upstream closed the connection",
                                       "upstream sent an invalid response", "client sent an invalid body",
                                       "TLS handshake with the upstream failed"};
    static const char *const error_type[] = {"connect_failed", "connect_timeout", "send_failed", "timeout",
                                             "connection_reset", "invalid_response", "client_invalid_body",
                                             "tls_failed"};
    if (c->req->trace)
        pt_trace_attempt_error(c, error_type[kind]);
    if (kind == F_CLIENT_BODY) {
        pt_log_info("client sent an invalid chunked body, req=%s", c->req->reqid);
    } else if (!stale_retry) {
        log_failure(p, what[kind], err);
    }
    attempt_over(p, -1);
    if (uc) {
        pt_upconn_close(uc);
        p->uc = NULL;
    }
    if (p->detached) { /* a refresh that failed: its client has its answer already */
        p->tap = NULL;
        finish(p, false);
        return;
    }
    if (p->head_done && c->out.pending >= c->req->ent.bytes_out) {
        /* Queued, but none of it reached the client yet (a filter held the
         * head, or it all came in one read): still time for an answer of
         * ours instead. */
        pt_outq_reset(&c->out);
        c->req->ent.bytes_out = 0;
        p->head_done = false;
    } else if (p->head_done) {
        /* The client has part of it: the only way left to say "broken" is
         * to close without the end of the body.  What is queued goes first
         * if the socket takes it (it points into the upstream's buffer,
         * which goes with it); the log counts what was sent. */
        if (c->writable)
            pt_conn_flush(c);
        pt_conn_drop_output(c);
        c->req->ent.completion = kind == F_READ_TIMEOUT ? PT_DONE_TIMEOUT : PT_DONE_UPSTREAM;
        pt_conn_close(c);
        return;
    }
    bool may_retry = false;
    p->why[0] = '\0';
    if (kind == F_CONNECT || kind == F_CONNECT_TIMEOUT || kind == F_TLS)
        may_retry = retry_allowed(p);
    else if (stale_retry) {
        p->stale_retries++;
        p->attempts--; /* a stale keep-alive connection is not the target's fault */
        may_retry = true;
    } else if ((kind == F_READ_TIMEOUT || kind == F_RESET) && p->idempotent && p->replayable && !p->tunnel) {
        /* a timeout again on the same target would only double the wait */
        if (kind != F_READ_TIMEOUT || p->up->conf->retry_same_target || another_target(p))
            may_retry = retry_allowed(p);
    }
    if (may_retry) {
        retry(p);
        return;
    }
    int status = kind == F_CLIENT_BODY ? 400 : (kind == F_CONNECT_TIMEOUT || kind == F_READ_TIMEOUT) ? 504 : 502;
    if (!p->body_done)
        c->closing = true; /* the rest of the body is still coming: close after answering */
    if (status != 400 && answered_by_tap(p, status))
        return;
    char body[64];
    int n = snprintf(body, sizeof(body), "%d %s\n", status, pt_http_reason(status));
    pt_req_respond(c, status, "text/plain", body, (size_t)n, NULL, p->head_method);
    c->req->ent.upstream_us = since_us(c, &p->up_start);
    finish(p, false);
}

/* ---- the driver ---- */

static void arm_timers(pt_proxy_t *p)
{
    pt_conn_t *c = p->c;
    pt_upconn_t *uc = p->uc;
    const pt_upstream_conf_t *u = p->up->conf;
    const pt_listener_conf_t *lc = c->acc->ls->conf;
    if (p->waiting) {
        /* A filter holds the exchange: its deadline on both sides, instead
         * of the upstream's read timeout (it may well be done) */
        if (!p->wait_deadline_us)
            p->wait_deadline_us = now_us(c) + (lc ? lc->timeouts.filters : 30000) * 1000;
        int64_t ms = (p->wait_deadline_us - now_us(c)) / 1000;
        ms = ms < 1 ? 1 : ms;
        pt_conn_timer(c, PT_TM_SOURCE, ms);
        if (uc && !uc->connecting)
            pt_upconn_timer(uc, ms + 1000);
        return;
    }
    if (uc) {
        if (uc->connecting)
            ; /* armed once when the attempt started: a deadline */
        else if (p->tunnel)
            pt_upconn_timer(uc, lc ? lc->timeouts.idle : 60000);
        else if (!pt_outq_empty(&uc->out) && !uc->writable)
            pt_upconn_timer(uc, u->timeouts.send);
        else
            pt_upconn_timer(uc, u->timeouts.read);
    }
    if (!pt_outq_empty(&c->out) && !c->writable) {
        pt_conn_timer(c, PT_TM_SOURCE, lc ? lc->timeouts.send : 30000);
    } else if (!p->body_done && !p->tunnel && c->ipos + p->bcur == c->ilen) {
        /* Waiting for body bytes: the gap may not pass timeouts.body, and
         * the whole body must keep min_body_rate on average. */
        int64_t body_ms = lc ? lc->timeouts.body : 30000, rate = lc ? lc->min_body_rate : 0;
        int64_t ms = body_ms;
        if (rate) {
            int64_t elapsed = since_us(c, &p->body_start) / 1000;
            int64_t allowed = body_ms + p->req_received * 1000 / rate;
            if (allowed - elapsed < ms)
                ms = allowed - elapsed < 1 ? 1 : allowed - elapsed;
        }
        pt_conn_timer(c, PT_TM_SOURCE, ms);
    } else {
        pt_conn_timer(c, PT_TM_NONE, -1);
    }
}

static void on_upstream_io(void *owner, pt_upconn_t *uc)
{
    pt_proxy_run(owner);
}

/* A filter held the body or the response past timeouts.filters. */
static void waited_too_long(pt_proxy_t *p)
{
    pt_conn_t *c = p->c;
    pt_log_error("the request waited on its filters longer than timeouts.filters, route=%s req=%s",
                 p->route->name, c->req->reqid);
    attempt_over(p, -1);
    if (p->uc) { /* a body cut short, or a response not read: never reused */
        pt_upconn_close(p->uc);
        p->uc = NULL;
    }
    if (p->head_done) {
        pt_conn_drop_output(c);
        c->req->ent.completion = PT_DONE_TIMEOUT;
        pt_conn_close(c);
        return;
    }
    c->closing = true;
    pt_req_respond(c, 504, "text/plain", "504 Gateway Timeout\n", 20, NULL, p->head_method);
    finish(p, false);
}

static void on_upstream_timeout(void *owner, pt_upconn_t *uc)
{
    pt_proxy_t *p = owner;
    if (p->waiting) {
        waited_too_long(p);
        return;
    }
    if (p->tunnel) {
        p->c->req->ent.completion = PT_DONE_OK; /* an idle tunnel ends so */
        pt_conn_close(p->c);
        return;
    }
    fail(p, uc->connecting ? F_CONNECT_TIMEOUT : F_READ_TIMEOUT, 0);
}

void pt_proxy_client_timeout(pt_proxy_t *p)
{
    pt_conn_t *c = p->c;
    if (p->waiting) {
        waited_too_long(p);
        return;
    }
    if (p->tunnel || !pt_outq_empty(&c->out) || p->head_done) {
        /* an idle tunnel ends so; anything else was cut: the client did
         * not read in time */
        c->req->ent.completion = p->tunnel ? PT_DONE_OK : PT_DONE_TIMEOUT;
        pt_conn_close(c);
        return;
    }
    /* the client did not send its body in time */
    pt_log_info("client timed out sending the request body (%lld bytes received), req=%s",
                (long long)p->req_received, c->req->reqid);
    if (p->uc) {
        pt_upconn_close(p->uc);
        p->uc = NULL;
    }
    c->closing = true;
    pt_req_respond(c, 408, "text/plain", "408 Request Timeout\n", 20, NULL, false);
    finish(p, false);
}

void pt_proxy_abort(pt_proxy_t *p)
{
    attempt_over(p, -1);
    if (p->uc) {
        pt_upconn_close(p->uc);
        p->uc = NULL;
    }
}

static void finish(pt_proxy_t *p, bool reusable)
{
    pt_conn_t *c = p->c;
    attempt_over(p, p->head_done ? c->req->ent.upstream_us : -1);
    if (p->tap && p->resp_done) /* the whole body came: the cache may keep it */
        p->tap->end(c, p->tap);
    p->tap = NULL;
    if (p->uc) {
        if (!p->body_done)
            reusable = false;
        pt_pool_release(p->uc, reusable && p->resp_keep_alive && !p->tunnel);
        p->uc = NULL;
    }
    /* what is left of the request is consumed */
    c->ipos += p->bcur;
    c->req->ent.bytes_in += p->bcur;
    p->bcur = 0;
    if (!p->body_done || p->close_client)
        c->closing = true;
    pt_h1_source_done(c); /* p is gone after this */
}

/* What a step of the driver left: some progress, none, or the proxy is
 * over (finished or failed: p is gone and must not be touched). */
enum { STEP_IDLE = 0, STEP_PROGRESS = 1, STEP_GONE = -1 };

/* The connect, then for https the handshake.  STEP_PROGRESS when the
 * connection is ready, STEP_IDLE while waiting, STEP_GONE after a failure. */
static int connect_step(pt_proxy_t *p, pt_upconn_t *uc)
{
    if (!uc->tcp_up) {
        if (!uc->writable && !uc->eof)
            return STEP_IDLE; /* the connect is still under way */
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(uc->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            fail(p, F_CONNECT, err);
            return STEP_GONE;
        }
        uc->tcp_up = true;
    }
    if (uc->ssl) {
        int rc = pt_tls_handshake(uc->ssl, p->why, sizeof(p->why));
        if (rc == PT_TLS_WANT_READ || rc == PT_TLS_WANT_WRITE) {
            if (rc == PT_TLS_WANT_READ)
                uc->readable = false;
            else
                uc->writable = false;
            return STEP_IDLE;
        }
        if (rc != PT_TLS_OK) {
            if (rc == PT_TLS_PLAIN_HTTP || !p->why[0])
                snprintf(p->why, sizeof(p->why), "the upstream closed the connection");
            fail(p, F_TLS, 0);
            return STEP_GONE;
        }
    }
    uc->connecting = false;
    p->c->req->ent.upstream_connect_us = now_us(p->c) - p->attempt_us;
    return STEP_PROGRESS;
}

/* The upstream side: the connect, the request out, the response in. */
static int upstream_step(pt_proxy_t *p, pt_upconn_t *uc)
{
    pt_conn_t *c = p->c;
    int progress = STEP_IDLE;
    if (uc->connecting) {
        int rc = connect_step(p, uc);
        if (rc != STEP_PROGRESS)
            return rc;
        progress = STEP_PROGRESS;
    }
    int rc = pump_request(p);
    if (rc == -2) { /* over max_body_size, or a body filter said stop */
        int st = c->req->fx && c->req->fx->reject ? c->req->fx->reject : 413;
        char msg[64];
        int ml = snprintf(msg, sizeof(msg), "%d %s\n", st, pt_http_reason(st));
        pt_upconn_close(uc);
        p->uc = NULL;
        c->closing = true;
        pt_req_respond(c, st, "text/plain", msg, (size_t)ml, NULL, false);
        finish(p, false);
        return STEP_GONE;
    }
    if (rc < 0) {
        fail(p, F_CLIENT_BODY, 0);
        return STEP_GONE;
    }
    progress |= rc;
    if (!pt_outq_empty(&uc->out) && uc->writable) {
        ssize_t w = pt_io_flush(&uc->out, uc->fd, uc->ssl);
        if (w < 0) {
            fail(p, F_SEND, (int)-w);
            return STEP_GONE;
        }
        if (!pt_outq_empty(&uc->out))
            uc->writable = false;
        progress |= w > 0;
    }
    if (uc->out.refs == 0)
        release_client_bytes(p);
    if (uc->readable && c->out.refs == 0)
        progress |= read_upstream(p);
    if (!p->head_done && p->waiting != W_RESPONSE) {
        int r = take_response_head(p);
        if (r == 2)
            return STEP_GONE;
        if (r == 3) { /* the cache answered: the upstream's body, if any, is not read */
            finish(p, p->resp_no_body);
            return STEP_GONE;
        }
        if (p->waiting == W_RESPONSE)
            return progress | STEP_PROGRESS; /* a filter holds the head */
        if (r < 0 || (r == 0 && uc->eof)) {
            fail(p, r < 0 ? F_BAD_RESPONSE : F_RESET, 0);
            return STEP_GONE;
        }
        progress |= r;
    }
    if (p->head_done) {
        int r = pump_response(p);
        if (r < 0) {
            fail(p, F_RESET, 0);
            return STEP_GONE;
        }
        progress |= r;
    }
    if (p->resp_done && p->tap) {
        /* the cache's copy is whole: committed now, before the client can
         * have the last byte, so that its next request finds it whichever
         * worker takes it */
        p->tap->end(c, p->tap);
        p->tap = NULL;
    }
    return progress;
}

/* The client side: the response out, the end of the exchange, and more of
 * the request body (or the tunnel) in. */
static int client_step(pt_proxy_t *p, pt_upconn_t *uc)
{
    pt_conn_t *c = p->c;
    int progress = STEP_IDLE;
    if (!pt_outq_empty(&c->out) && c->writable) {
        int r = pt_conn_flush(c);
        if (r < 0) {
            pt_conn_close(c); /* the client went away */
            return STEP_GONE;
        }
        progress |= r;
    }
    if (uc && c->out.refs == 0 && p->rcur)
        release_upstream_bytes(p);
    if (p->tunnel && uc && ((uc->eof && pt_outq_empty(&c->out)) || (c->eof && pt_outq_empty(&uc->out)))) {
        /* one side of the tunnel closed and all it sent was delivered */
        c->req->ent.completion = uc->reset ? PT_DONE_UPSTREAM : PT_DONE_OK;
        pt_conn_close(c);
        return STEP_GONE;
    }
    if (p->resp_done && uc && c->out.refs == 0) {
        finish(p, true);
        return STEP_GONE;
    }
    if (p->waiting && p->body_done && pt_conn_gone(c)) {
        pt_log_info("client closed the connection while a filter held its request, req=%s", c->req->reqid);
        pt_conn_close(c); /* logged 499 (or the status it had); the filters' on_done drop their waits */
        return STEP_GONE;
    }
    if (p->body_done && !p->head_done && !p->tunnel && c->readable && pt_conn_reset_seen(c)) {
        /* a reset while the upstream thinks: nothing will read the answer
         * (nginx ends the upstream request too); what the request holds
         * (a limit-conn place) is given back now, not at the read timeout */
        pt_log_info("client reset the connection while the upstream had not answered, req=%s", c->req->reqid);
        c->req->ent.completion = PT_DONE_CLIENT;
        pt_conn_close(c);
        return STEP_GONE;
    }
    if ((!p->body_done || p->tunnel) && c->readable && (!uc || uc->out.refs == 0)) {
        if (p->replayable && c->icap - c->ilen < 1024) {
            p->replayable = false; /* no room to keep it all: it cannot be sent twice */
            release_client_bytes(p);
        }
        progress |= pt_conn_read(c);
        if (c->eof && !p->tunnel && !p->body_done) {
            pt_log_info("client closed before the end of the request body, req=%s", c->req->reqid);
            pt_conn_close(c);
            return STEP_GONE;
        }
    }
    return progress;
}

/* An output queue refused a piece (out of memory): what was queued is not
 * the whole message, so neither side may take it as one. */
static void give_up(pt_proxy_t *p)
{
    pt_conn_t *c = p->c;
    pt_log_error("out of memory queueing output while proxying, route=%s req=%s", p->route->name, c->req->reqid);
    attempt_over(p, -1);
    if (p->uc) {
        pt_upconn_close(p->uc);
        p->uc = NULL;
    }
    pt_conn_drop_output(c);
    c->req->ent.completion = PT_DONE_ERROR;
    pt_conn_close(c);
}

void pt_proxy_run(pt_proxy_t *p)
{
    pt_conn_t *c = p->c;
    if (c->resume_pending) { /* pt_req_resume: the filter that held the body or the head is done */
        c->resume_pending = false;
        p->waiting = W_NONE;
    }
    if (!p->uc && !p->head_done && !start_attempt(p))
        return;
    for (int rounds = 0; rounds < 64; rounds++) {
        pt_upconn_t *uc = p->uc;
        int up = uc ? upstream_step(p, uc) : STEP_IDLE;
        if (up == STEP_GONE)
            return;
        if (p->broken) {
            give_up(p);
            return;
        }
        if (uc && uc->connecting) {
            arm_timers(p);
            return;
        }
        int down = client_step(p, uc);
        if (down == STEP_GONE)
            return;
        if (!(up | down)) {
            arm_timers(p);
            return;
        }
    }
    pt_conn_reschedule(c); /* fairness: the rest next iteration */
    arm_timers(p);
}

static int64_t now_us(pt_conn_t *c)
{
    return pt_worker_now_us(c->w);
}

/* The balancer learns how an attempt ended (latency < 0: it failed). */
static void attempt_over(pt_proxy_t *p, int64_t latency_us)
{
    if (p->c->req && p->c->req->trace)
        pt_trace_attempt_end(p->c, p->head_seen ? p->status : 0);
    if (p->counted) {
        pt_balancer_done(p->up, p->target, latency_us, now_us(p->c));
        p->counted = false;
    }
}

/* No socket for the upstream: this worker is out of descriptors (or
 * memory), which says nothing of the target.  503 at once, without a
 * retry, a health report or a latency sample; logged at most once a
 * second, with how many were refused meanwhile, as the accept side does. */
static void local_shortage(pt_proxy_t *p, int err)
{
    pt_conn_t *c = p->c;
    static int64_t last_ms;
    static uint64_t refused;
    int64_t now = now_us(c) / 1000;
    refused++;
    if (now - last_ms >= 1000) {
        pt_log_error("no socket for upstream \"%s\": %s; %llu request%s answered 503 since the last report, req=%s",
                     p->up->conf->name, strerror(err), (unsigned long long)refused, refused == 1 ? "" : "s",
                     c->req->reqid);
        last_ms = now;
        refused = 0;
    }
    if (p->counted) {
        pt_balancer_done(p->up, p->target, PT_NO_SAMPLE, now_us(c));
        p->counted = false;
    }
    if (!p->body_done)
        c->closing = true;
    if (!p->detached) /* a refresh's client has its answer already */
        pt_req_respond(c, 503, "text/plain", "503 Service Unavailable\n", 24, NULL, p->head_method);
    finish(p, false);
}

/* Picks a target and takes a connection to it.  False when that failed
 * and fail() took over (p may be gone). */
static bool start_attempt(pt_proxy_t *p)
{
    pt_conn_t *c = p->c;
    pt_pick_ctx_t ctx = {p->hash_key, now_us(c)};
    if (p->attempts) {
        /* every target tried: the round starts again, but never with the
         * one that just failed while another is up */
        bool all = true;
        for (size_t i = 0; i < p->up->ntargets && all; i++)
            all = p->tried[i];
        if (all) {
            memset(p->tried, 0, p->up->ntargets);
            p->tried[p->target] = true;
        }
    } else {
        pt_budget_request(p->up, ctx.now_us / 1000);
    }
    size_t idx = pt_balancer_pick(p->up, p->tried, &ctx);
    if (idx == PT_PICK_NONE) {
        /* every target is marked down: say so now rather than time out */
        char ca[80];
        pt_log_error("no healthy target while connecting to upstream, client=%s route=%s upstream=%s req=%s",
                     pt_conn_peer_name(c, ca, sizeof(ca)), p->route->name, p->up->conf->name, c->req->reqid);
        if (!p->body_done)
            c->closing = true;
        if (p->detached || answered_by_tap(p, 503)) {
            if (p->detached) /* a refresh: its client has its answer already */
                finish(p, false);
            return false;
        }
        pt_req_respond(c, 503, "text/plain", "503 Service Unavailable\n", 24, NULL, p->head_method);
        finish(p, false);
        return false;
    }
    p->target = idx;
    pt_balancer_start(p->up, idx);
    p->counted = true;
    p->tried[idx] = true;
    p->attempts++;
    p->attempt_us = ctx.now_us;
    c->req->ent.upstream_connect_us = c->req->ent.upstream_header_us = -1;
    pt_target_t *t = &p->up->targets[idx];
    pt_mx_target_add(p->up, t, PT_MXW_T_ATTEMPTS, 1);
    if (p->attempts > 1)
        pt_mx_target_add(p->up, t, PT_MXW_T_RETRIES, 1);
    c->req->ent.upstream_addr = t->log_name ? t->log_name : t->name;
    if (c->req->trace) /* a client span, whose id the head upstream now carries */
        pt_trace_attempt_start(c, t);
    /* after a stale pooled connection, a new one: the upstream may have
     * closed the others it had with us at the same moment */
    pt_upconn_t *uc = p->stale_retries ? pt_pool_connect(c->w, p->up, t) : pt_pool_acquire(c->w, p->up, t);
    if (!uc) {
        int err = errno;
        p->uc = NULL;
        if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
            local_shortage(p, err);
        else
            fail(p, F_CONNECT, err);
        return false;
    }
    p->uc = uc;
    uc->owner = p;
    uc->on_io = on_upstream_io;
    uc->on_timeout = on_upstream_timeout;
    uc->eof = uc->reset = false;
    if (uc->connecting)
        pt_upconn_timer(uc, p->up->conf->timeouts.connect);
    else
        c->req->ent.upstream_connect_us = 0; /* kept alive, as nginx logs it */
    return true;
}

void pt_proxy_start(pt_conn_t *c, const pt_h1_req_t *req, const pt_route_conf_t *r)
{
    pt_worker_t *w = c->w;
    int64_t limit = r->max_body_size;
    if (limit && req->content_length > limit) {
        c->closing = true; /* the body is not read: nothing can follow it */
        pt_req_respond(c, 413, "text/plain", "413 Content Too Large\n", 22, NULL, false);
        return;
    }
    pt_proxy_t *p = pt_arena_zalloc(&c->arena, sizeof(*p));
    pt_upstream_t *up = pt_worker_upstream(w, r->up);
    bool *tried = pt_arena_zalloc(&c->arena, up->cap); /* targets added at run time during the request */
    char *head = NULL;
    bool stripped = false;
    size_t head_len = p && tried ? pt_proxy_forward_head(c, req, r, false, &head, &stripped) : 0;
    if (!head_len) {
        c->closing = true;
        if (c->req->fx && c->req->fx->detached)
            return; /* a refresh: its client has its answer already */
        if (head) {
            pt_req_respond(c, 431, "text/plain", "431 Request Header Fields Too Large\n", 36, NULL, false);
        } else {
            /* the request's working memory (twice max_header_size) ran out:
             * filters that copy the path or the head into fields */
            pt_log_error("the head for the upstream did not fit in the request's working memory (%zu bytes of "
                         "head, filters' edits included), route=%s req=%s",
                         req->head_len, r->name, c->req->reqid);
            pt_req_respond(c, 500, "text/plain", "500 Internal Server Error\n", 26, NULL, false);
        }
        return;
    }
    p->c = c;
    p->route = r;
    p->max_body = limit;
    p->up = up;
    p->tried = tried;
    p->idempotent = (req->method_bit & (PT_M_GET | PT_M_HEAD | PT_M_PUT | PT_M_DELETE | PT_M_OPTIONS | PT_M_TRACE)) != 0;
    p->head_method = req->method_bit == PT_M_HEAD;
    p->client_minor = req->minor;
    /* Expect: 100-continue closes a connection whose request Portico
     * answers itself (the client may never send the body); the proxy reads
     * the body it says Continue to, so the connection may go on. */
    if (req->expect_continue && req->keep_alive && !w->draining)
        c->closing = false;
    p->client_keep_alive = !c->closing;
    p->upgrade = req->upgrade;
    p->expect_continue = req->expect_continue;
    p->replayable = true;
    p->req_mode = req->chunked ? BODY_CHUNKED : req->content_length > 0 ? BODY_LENGTH : BODY_NONE;
    p->req_length = req->content_length;
    if (up->kind == PT_BAL_HASH)
        p->hash_key = pt_proxy_hash_key(c, req, r->up);
    p->head = head;
    p->head_len = head_len;
    p->location = r->location && stripped; /* the prefix goes back into its Location */
    p->detached = c->req->fx && c->req->fx->detached;
    pt_req_detach(c);
    c->ipos += req->head_len; /* the head is ours now; the body follows it */
    c->req->ent.bytes_in = req->head_len;
    reset_request(p);
    event_base_gettimeofday_cached(w->base, &p->body_start);
    p->up_start = p->body_start;
    if (p->expect_continue && !p->body_done && c->ilen == c->ipos)
        out_copy(p, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    c->req->proxy = p;
    c->state = PT_CS_PROXY; /* run() starts the first attempt: never from inside the parser's loop */
}
