/* The HTTP/1.1 server loop of a client connection (and of each HTTP/2
 * stream connection, which is fed an HTTP/1.1 head by h2.c).
 *
 * run() reads until EAGAIN, answers every complete request in the buffer
 * (pipelining), and writes all the answers with one write.  A request is
 * made (request.c) for each head, routed and filtered, and handed to its
 * content source; a source that takes the connection over (the proxy, a
 * gRPC call) hands it back with pt_h1_source_done.  A body that follows a
 * request answered here is read away to reach the next request.  The
 * HTTP timeouts (head, body, idle, send, filters) are this loop's. */
#include "config.h"

#include <event2/event.h>
#include <string.h>

#include "portico/admin.h"
#include "portico/assert.h"
#include "portico/err-t.h"
#include "portico/grpc.h"
#include "portico/h1_server.h"
#include "portico/h2.h"
#include "portico/listener.h"
#include "portico/log.h"
#include "portico/proxy.h"
#include "portico/request.h"
#include "portico/tls.h"

#define OUT_HIGH (256 * 1024) /* stop answering pipelined requests above this */

enum { TM_IDLE = PT_TM_PROTO, TM_HEAD, TM_BODY, TM_SEND, TM_DRAIN, TM_FILTERS };

static void run(pt_conn_t *c);

/* The proxy or a gRPC call owns the connection until its exchange ends. */
static bool handed_over(const pt_conn_t *c)
{
    return c->state == PT_CS_PROXY || c->state == PT_CS_GRPC;
}

/* The request is over: logged, and the connection ready for the next. */
static void end_request(pt_conn_t *c)
{
    if (pt_conn_is_stream(c))
        c->closing = true; /* it serves one request */
    if (!c->closing)
        pt_conn_nodelay(c); /* kept alive: small answers must not wait for Nagle */
    pt_req_end(c);
    c->requests++;
    c->in_request = false;
    c->state = PT_CS_HEAD;
}

/* Discards the body of the current request from the input buffer.
 * Returns false when more input is needed. */
static bool consume_body(pt_conn_t *c)
{
    pt_req_t *r = c->req;
    size_t avail = c->ilen - c->ipos;
    if (!r->body_chunked) {
        size_t n = (int64_t)avail < r->body_left ? avail : (size_t)r->body_left;
        c->ipos += n;
        r->body_left -= (int64_t)n;
        r->ent.bytes_in += n;
        if (r->body_left > 0)
            return false;
        end_request(c);
        return true;
    }
    while (c->ipos < c->ilen && !r->chunked.done) {
        const char *data;
        size_t dlen;
        long used = pt_h1_chunked_decode(&r->chunked, c->ibuf + c->ipos, c->ilen - c->ipos, &data, &dlen);
        if (used < 0) {
            r->ent.status = 400;
            c->closing = true;
            c->ipos = c->ilen;
            end_request(c);
            return false;
        }
        c->ipos += (size_t)used;
        r->ent.bytes_in += (uint64_t)used;
    }
    if (!r->chunked.done)
        return false;
    end_request(c);
    return true;
}

/* A head that could not be parsed (or did not come whole) still logs its
 * method, target and protocol as far as its request line got, copied
 * out of the input buffer. */
static void log_what_came(pt_conn_t *c)
{
    pt_alog_entry_t *e = &c->req->ent;
    pt_h1_peek_request_line(c->ibuf + c->ipos, c->ilen - c->ipos, &e->method, &e->target, &e->protocol);
    if (pt_conn_is_stream(c)) /* the head was made from an HTTP/2 stream's fields: its line says HTTP/1.1 */
        e->protocol = PT_STR("HTTP/2.0");
    pt_req_detach(c);
}

/* The client's first bytes are HTTP/2's preface (prior knowledge):
 * 1 switched, 0 not, -1 wait for the rest of it. */
static int h2_preface(pt_conn_t *c)
{
    size_t have = c->ilen - c->ipos, n = have < PT_H2_PREFACE_LEN ? have : PT_H2_PREFACE_LEN;
    if (memcmp(c->ibuf + c->ipos, PT_H2_PREFACE, n) != 0)
        return 0;
    if (n < PT_H2_PREFACE_LEN)
        return -1;
    if (pt_h2_start(c) < 0)
        c->closing = true;
    return 1;
}

/* One request head parsed: answered, handed over, or suspended. */
static void take_request(pt_conn_t *c, pt_h1_req_t *req, size_t head_len)
{
    if (!c->resuming && !pt_req_start(c, req))
        return;
    c->req->ent.bytes_in = head_len;
    pt_req_handle(c, req);
    if (handed_over(c))
        return; /* the proxy (or the gRPC call) took the head and owns the body */
    if (c->state == PT_CS_FILTER) {
        /* A filter waits; the head stays where it is, and nothing is read
         * meanwhile, so the buffer does not move under it.  The log entry
         * and the filters' edits are copied out all the same.  One deadline
         * for all the waits of a request. */
        pt_req_detach(c);
        if (c->timer_kind != TM_FILTERS)
            pt_conn_timer(c, TM_FILTERS, c->acc->ls->conf ? c->acc->ls->conf->timeouts.filters : 30000);
        return;
    }
    c->ipos += head_len;
    if ((req->content_length > 0 || req->chunked) && !c->closing) {
        c->state = PT_CS_BODY; /* read away, to reach the next request */
        c->req->body_chunked = req->chunked;
        c->req->body_left = req->content_length;
        memset(&c->req->chunked, 0, sizeof(c->req->chunked));
        pt_req_detach(c);
        return;
    }
    /* Closing: a body is not waited for (the linger reads it away), and
     * the request is logged now. */
    end_request(c);
}

/* Answers every complete request in the input buffer. 1 on progress. */
static int handle_input(pt_conn_t *c)
{
    int progress = 0;
    const pt_listener_conf_t *lc = c->acc->ls->conf;
    pt_h1_limits_t lim = {lc ? (size_t)lc->max_request_line : 8192, lc ? (size_t)lc->max_header_size : 32768,
                          lc ? (size_t)lc->max_headers : 100};
    pt_h1_header_t headers[lim.max_headers];
    /* closing: no more requests, but a suspended one resumed is still this
     * connection's last, and is answered */
    while ((!c->closing || c->resuming) && c->state != PT_CS_LINGER) {
        if (c->state == PT_CS_BODY) {
            if (!consume_body(c))
                break;
            progress = 1;
            continue;
        }
        /* out.open: an answer still queues its body in slices (a cache hit):
         * the next one waits for its end */
        if (c->out.pending > OUT_HIGH || c->out.open || c->ipos == c->ilen || handed_over(c) ||
            c->state == PT_CS_FILTER)
            break;
        if (!c->requests && !c->in_request && lc && lc->http2 && !pt_conn_is_stream(c)) {
            int h2 = h2_preface(c);
            if (h2 > 0)
                return 1;
            if (h2 < 0)
                break; /* the rest of the preface is on its way */
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
        if (rc > 0 && c->acc->ls->kind == PT_LS_ADMIN && !pt_admin_body_ready(c, &req, (size_t)rc))
            break; /* the admin API answers with the body at hand: the head is parsed again then */
        progress = 1;
        if (rc < 0) {
            if (pt_req_start(c, NULL)) {
                c->req->ent.bytes_in = c->ilen - c->ipos;
                log_what_came(c);
                pt_req_respond_error(c, status);
            }
            c->ipos = c->ilen;
            end_request(c);
            break;
        }
        take_request(c, &req, (size_t)rc);
    }
    return progress;
}

/* ---- timers ---- */

static void arm_timer(pt_conn_t *c)
{
    const pt_listener_conf_t *lc = c->acc->ls->conf;
    int64_t ms;
    int kind;
    if (c->state == PT_CS_LINGER || c->state == PT_CS_FILTER) {
        return; /* the linger's own, or the filters' deadline */
    } else if (c->state == PT_CS_H2 && pt_outq_empty(&c->out) && pt_h2_streams(c)) {
        bool moved = false;
        if (!pt_h2_waits_on_client(c, &moved)) {
            pt_conn_timer(c, PT_TM_NONE, -1); /* requests under way: each has its own timers */
            return;
        }
        /* Answers wait on the client's window (or heads it never
         * finished): timeouts.send between two sends, as nginx's
         * send_timeout; its PINGs and SETTINGS do not move it. */
        if (c->timer_kind == TM_SEND && !moved)
            return;
        kind = TM_SEND;
        ms = lc ? lc->timeouts.send : 30000;
    } else if (!pt_outq_empty(&c->out)) {
        kind = TM_SEND;
        ms = lc ? lc->timeouts.send : 30000;
    } else if (c->state == PT_CS_GRPC) {
        pt_conn_timer(c, PT_TM_NONE, -1); /* the call has its own timer; the head's deadline is past concern */
        return;
    } else if (c->state == PT_CS_BODY) {
        kind = TM_BODY;
        ms = lc ? lc->timeouts.body : 30000;
    } else if (c->in_request) {
        if (c->timer_kind == TM_HEAD)
            return; /* a deadline, not reset by reads */
        kind = TM_HEAD;
        struct timeval now;
        event_base_gettimeofday_cached(c->w->base, &now);
        int64_t spent = (now.tv_sec - c->head_start.tv_sec) * 1000 + (now.tv_usec - c->head_start.tv_usec) / 1000;
        ms = (lc ? lc->timeouts.header : 10000) - spent;
        if (ms < 1)
            ms = 1;
    } else if (c->w->draining) {
        if (c->timer_kind == TM_DRAIN)
            return;
        kind = TM_DRAIN;
        ms = 1000;
    } else {
        kind = TM_IDLE;
        ms = lc ? lc->timeouts.idle : 60000;
    }
    pt_conn_timer(c, kind, ms);
}

static void on_timeout(pt_conn_t *c)
{
    switch (c->timer_kind) {
    case TM_BODY:
        /* The request was answered (a respond route, an error) and its body
         * is being read away: it stopped coming.  Nothing may follow the
         * answer that was sent: log the request and close. */
        pt_log_info("client timed out while sending a request body after its answer, req=%s",
                    c->req ? c->req->reqid : "-");
        c->timer_kind = PT_TM_NONE;
        end_request(c);
        c->closing = true;
        run(c);
        return;
    case TM_HEAD:
        pt_log_info("client timed out while sending the request head");
        c->timer_kind = PT_TM_NONE;
        pt_outq_reset(&c->out);
        if (pt_req_start(c, NULL)) {
            log_what_came(c);
            pt_req_respond_error(c, 408);
        }
        end_request(c);
        run(c);
        return;
    case PT_TM_SOURCE:
        if (c->req && c->req->proxy)
            pt_proxy_client_timeout(c->req->proxy);
        else
            pt_conn_close(c);
        return;
    case TM_FILTERS:
        pt_log_error("the request waited on its filters longer than timeouts.filters, route=%s req=%s",
                     c->req && c->req->route ? c->req->route->name : "-", c->req ? c->req->reqid : "-");
        c->timer_kind = PT_TM_NONE;
        c->state = PT_CS_HEAD;
        c->resume_pending = false;
        c->closing = true; /* the head is left unread in the buffer */
        pt_req_respond(c, 504, "text/plain", "504 Gateway Timeout\n", 20, NULL, false);
        end_request(c);
        run(c);
        return;
    case TM_SEND:
        if (c->req) /* the client stopped reading its response */
            c->req->ent.completion = PT_DONE_TIMEOUT;
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

/* ---- the loop ---- */

/* A request suspended by a filter: false while it waits (the client may
 * leave meanwhile), true when it resumes. */
static bool waiting(pt_conn_t *c)
{
    if (c->resume_pending) { /* resumed: the head is parsed again */
        c->resume_pending = false;
        c->state = PT_CS_HEAD;
        c->resuming = true;
        return false;
    }
    if (!pt_outq_empty(&c->out) && c->writable && pt_conn_flush(c) < 0) {
        pt_conn_close(c);
        return true;
    }
    /* an end or a reset, seen without reading (the buffer must not move) */
    if (pt_conn_gone(c)) {
        /* The client left while its request waited: nothing will read the
         * answer.  Logged as nginx does (499). */
        pt_log_info("client closed the connection while its request waited, req=%s", c->req->reqid);
        c->req->ent.status = 499;
        c->req->ent.completion = PT_DONE_CLIENT;
        end_request(c); /* the filters' on_done drops what they wait for */
        pt_conn_close(c);
    }
    return true;
}

static void run(pt_conn_t *c)
{
    if (c->state == PT_CS_TLS) {
        int rc = pt_conn_tls_step(c);
        if (rc <= 0)
            return;
        if (pt_tls_alpn_h2(c->ssl) && pt_h2_start(c) < 0) {
            pt_conn_close(c);
            return;
        }
    }
    for (int rounds = 0; rounds < 64; rounds++) {
        int progress = 0;
        switch (c->state) {
        case PT_CS_H2:
            pt_h2_run(c);
            if (c->dead)
                return;
            if (!pt_h2_streams(c)) { /* no stream open: the session alone is kept */
                pt_conn_idle(c);
                pt_h2_idle(c);
            }
            arm_timer(c);
            return;
        case PT_CS_PROXY:
            pt_proxy_run(c->req->proxy); /* it hands back with pt_h1_source_done */
            return;
        case PT_CS_GRPC:
            pt_grpc_run(c->req->grpc_call); /* the same */
            if (!c->dead && c->state == PT_CS_GRPC)
                arm_timer(c);
            return;
        case PT_CS_FILTER:
            if (waiting(c))
                return;
            break;
        case PT_CS_LINGER:
            return;
        }
        if (c->ipos < c->ilen || c->state == PT_CS_BODY)
            progress |= handle_input(c);
        if (handed_over(c))
            continue; /* the proxy (or the gRPC call) decides when the exchange ends */
        if (!pt_outq_empty(&c->out) && c->writable)
            progress |= pt_conn_flush(c) != 0;
        if (c->state == PT_CS_FILTER) {
            arm_timer(c); /* a request waits: not closed, not read; waiting() watches the client */
            return;
        }
        if (pt_outq_empty(&c->out) && (c->closing || c->eof)) {
            if (c->eof || pt_conn_is_stream(c)) { /* a stream connection ends with its response */
                pt_conn_close(c);
                return;
            }
            pt_conn_start_linger(c);
            return;
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
            if (c->state == PT_CS_HEAD && !c->in_request)
                pt_conn_idle(c); /* waiting for the next request: no buffers held meanwhile */
            arm_timer(c);
            return;
        }
    }
    /* Still busy after a fair share of the loop: come back next iteration.
     * No new edge would come for what is already in the buffers. */
    pt_conn_reschedule(c);
    arm_timer(c);
}

void pt_h1_source_done(pt_conn_t *c)
{
    c->req->proxy = NULL;
    c->req->grpc_call = NULL;
    c->state = PT_CS_HEAD;
    pt_conn_timer(c, PT_TM_NONE, -1);
    end_request(c);
    run(c);
}

static void drain(pt_conn_t *c)
{
    /* An idle connection gets a short grace (TM_DRAIN): a request already on
     * its way is answered, with Connection: close, instead of meeting a
     * closed socket.  Busy ones close after their current response. */
    if (c->state == PT_CS_H2) {
        pt_h2_drain(c); /* GOAWAY: open streams finish, new ones are refused */
        return;
    }
    if (handed_over(c))
        return; /* the exchange under way keeps its own timers; its end closes (the worker drains) */
    arm_timer(c);
}

/* Closing: the content source, the filters and HTTP/2 let go. */
static void closed(pt_conn_t *c)
{
    if (!c->req && c->in_request && c->acc->ls->kind == PT_LS_ADMIN && c->ilen > c->ipos && pt_req_start(c, NULL)) {
        /* the admin API starts a request once its body is in: one whose
         * client left before is logged as a traffic request is (499) */
        c->req->ent.bytes_in = c->ilen - c->ipos;
        log_what_came(c);
    }
    pt_req_t *r = c->req;
    if (r && r->proxy) {
        pt_proxy_abort(r->proxy);
        r->proxy = NULL;
    }
    if (r && r->grpc_call) {
        pt_grpc_abort(r->grpc_call);
        r->grpc_call = NULL;
    }
    if (r) {
        /* A request cut short (the client left, or a failure closed the
         * connection) still gets its log line: 499 when nothing was
         * answered, as nginx logs it.  pt_req_end runs the filters'
         * on_done too.  (A head that could not be parsed was answered and
         * ended at once: c->req is NULL then.) */
        if (r->ent.completion == PT_DONE_UNSET)
            r->ent.completion = PT_DONE_CLIENT;
        /* what is still queued, or was dropped, never reached the client */
        uint64_t unsent = c->out.pending + c->unsent + (pt_conn_is_stream(c) ? pt_h2_stream_unsent(c) : 0);
        r->ent.bytes_out = r->ent.bytes_out > unsent ? r->ent.bytes_out - unsent : 0;
        if (!r->ent.status || !r->ent.bytes_out)
            r->ent.status = 499; /* nothing of an answer reached the client */
        pt_req_end(c);
    }
    if (pt_conn_is_stream(c))
        pt_h2_stream_closed(c);
    else
        pt_h2_free(c);
}

const pt_conn_ops_t pt_h1_server_ops = {
    .run = run, .timeout = on_timeout, .drain = drain, .closed = closed};
const pt_conn_ops_t pt_h1_stream_ops = {.run = run,
                                        .timeout = on_timeout,
                                        .drain = drain,
                                        .closed = closed,
                                        .read = pt_h2_stream_read,
                                        .flush = pt_h2_stream_flush};
