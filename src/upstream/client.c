/* The internal HTTP/1.1 client (see client.h).
 *
 * A request is written once into the connection's output queue and sent
 * with the same plain/TLS writes as the proxy's.  The response head is
 * parsed in the connection's input buffer; its body, whatever its framing
 * (length, chunked, or until the close), is decoded into a buffer of at
 * most max_body bytes.  A pooled connection goes back to the pool only
 * when its response ended cleanly by its own framing. */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "portico/assert.h"
#include "portico/client.h"
#include "portico/err-t.h"
#include "portico/head.h"
#include "portico/io.h"
#include "portico/tls.h"
#include "portico/upstream.h"
#include "portico/worker.h"

#define PT_CLIENT_MAGIC 0x434c4e54u
#define MAX_FIELDS 100

enum { BODY_NONE, BODY_LENGTH, BODY_CHUNKED, BODY_EOF };

struct pt_client {
    unsigned magic;
    pt_worker_t *w;
    pt_upstream_t *u;
    pt_upconn_t *uc;
    pt_client_fn done;
    void *arg;
    char *req; /* the request bytes */
    size_t req_len;
    bool head_method, fresh, connect_only, queued;
    size_t max_body;
    /* the response */
    pt_h1_header_t fields[MAX_FIELDS];
    pt_h1_resp_t head;
    bool have_head;
    char *head_copy; /* the head's bytes, which its fields point into */
    int mode;
    int64_t left;
    pt_h1_chunked_t chunk;
    char *body;
    size_t body_len;
    char why[160];
};

static void release(pt_client_t *cl)
{
    cl->magic = 0;
    free(cl->head_copy);
    free(cl->body);
    free(cl->req);
    free(cl);
}

static void finish(pt_client_t *cl, int status, const char *error, bool reusable)
{
    pt_client_resp_t r = {status, error, status >= 0 && cl->have_head ? &cl->head : NULL,
                          {cl->body, cl->body_len}};
    if (cl->uc) {
        if (reusable && !cl->fresh && cl->head.keep_alive)
            pt_pool_release(cl->uc, true);
        else
            pt_upconn_close(cl->uc);
        cl->uc = NULL;
    }
    cl->done(cl->arg, &r);
    release(cl);
}

/* The connect, then for https the handshake: 1 ready, 0 waiting, -1 failed. */
static int connect_step(pt_client_t *cl, pt_upconn_t *uc)
{
    if (!uc->tcp_up) {
        if (!uc->writable && !uc->eof)
            return 0;
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(uc->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            snprintf(cl->why, sizeof(cl->why), "connect() failed: %s", strerror(err));
            return -1;
        }
        uc->tcp_up = true;
    }
    if (uc->ssl) {
        char why[128] = "";
        int rc = pt_tls_handshake(uc->ssl, why, sizeof(why));
        if (rc == PT_TLS_WANT_READ || rc == PT_TLS_WANT_WRITE) {
            if (rc == PT_TLS_WANT_READ)
                uc->readable = false;
            else
                uc->writable = false;
            return 0;
        }
        if (rc != PT_TLS_OK) {
            snprintf(cl->why, sizeof(cl->why), "TLS handshake failed: %s", why[0] ? why : "closed");
            return -1;
        }
    }
    uc->connecting = false;
    return 1;
}

/* Takes n body bytes. false when over max_body. */
static bool take(pt_client_t *cl, const char *d, size_t n)
{
    if (!cl->max_body || !n)
        return true;
    if (cl->body_len + n > cl->max_body)
        return false;
    if (!cl->body && !(cl->body = malloc(cl->max_body)))
        return false;
    memcpy(cl->body + cl->body_len, d, n);
    cl->body_len += n;
    return true;
}

/* The head, once it is all there: 1 parsed, 0 waiting, -1 not HTTP. */
static int parse_head(pt_client_t *cl, pt_upconn_t *uc)
{
    pt_h1_limits_t lim = {8192, PT_UPCONN_IBUF, MAX_FIELDS};
    for (;;) {
        cl->head = (pt_h1_resp_t){.headers = cl->fields};
        int rc = pt_h1_parse_response(uc->ibuf + uc->ipos, uc->ilen - uc->ipos, &lim, &cl->head);
        if (rc == PT_EAGAIN)
            return 0;
        if (rc < 0)
            return -1;
        if (cl->head.status < 200) { /* 100 Continue and friends */
            uc->ipos += (size_t)rc;
            continue;
        }
        /* The head is copied and parsed again there: its fields must
         * outlive the input buffer, which the body goes through. */
        if (!(cl->head_copy = malloc((size_t)rc)))
            return -1;
        memcpy(cl->head_copy, uc->ibuf + uc->ipos, (size_t)rc);
        cl->head = (pt_h1_resp_t){.headers = cl->fields};
        if (pt_h1_parse_response(cl->head_copy, (size_t)rc, &lim, &cl->head) != rc)
            return -1;
        cl->have_head = true;
        if (cl->head_method || cl->head.status == 204 || cl->head.status == 304)
            cl->mode = BODY_NONE;
        else if (cl->head.chunked)
            cl->mode = BODY_CHUNKED;
        else if (cl->head.content_length >= 0)
            cl->mode = BODY_LENGTH;
        else
            cl->mode = BODY_EOF;
        cl->left = cl->head.content_length;
        uc->ipos += (size_t)rc;
        return 1;
    }
}

/* Decodes what the buffer holds of the body: 1 complete, 0 more to come,
 * -1 broken or too long. */
static int read_body(pt_client_t *cl, pt_upconn_t *uc)
{
    const char *data = uc->ibuf + uc->ipos;
    size_t avail = uc->ilen - uc->ipos;
    switch (cl->mode) {
    case BODY_NONE:
        return 1;
    case BODY_LENGTH: {
        size_t n = (int64_t)avail < cl->left ? avail : (size_t)cl->left;
        if (!take(cl, data, n))
            return -1;
        uc->ipos += n;
        cl->left -= (int64_t)n;
        return cl->left == 0 ? 1 : uc->eof ? -1 : 0;
    }
    case BODY_CHUNKED:
        while (avail && !cl->chunk.done) {
            const char *d;
            size_t dl;
            long used = pt_h1_chunked_decode(&cl->chunk, data, avail, &d, &dl);
            if (used < 0 || !take(cl, d, dl))
                return -1;
            uc->ipos += (size_t)used;
            data += used;
            avail -= (size_t)used;
        }
        return cl->chunk.done ? 1 : uc->eof ? -1 : 0;
    default:
        if (!take(cl, data, avail))
            return -1;
        uc->ipos += avail;
        return uc->reset ? -1 : uc->eof ? 1 : 0; /* a reset cuts a body that ends with the close */
    }
}

/* Room in the input buffer: what was decoded is dropped from it. */
static void make_room(pt_upconn_t *uc)
{
    if (uc->ipos == uc->ilen) {
        uc->ipos = uc->ilen = 0;
    } else if (uc->ipos) {
        memmove(uc->ibuf, uc->ibuf + uc->ipos, uc->ilen - uc->ipos);
        uc->ilen -= uc->ipos;
        uc->ipos = 0;
    }
}

static void step(pt_client_t *cl)
{
    pt_upconn_t *uc = cl->uc;
    if (uc->connecting) {
        int rc = connect_step(cl, uc);
        if (rc < 0) {
            finish(cl, PT_CLIENT_FAILED, cl->why, false);
            return;
        }
        if (rc == 0)
            return;
        if (cl->connect_only) {
            finish(cl, 0, NULL, false);
            return;
        }
    }
    if (!cl->queued) {
        if (!pt_outq_copy(&uc->out, cl->req, cl->req_len)) {
            finish(cl, PT_CLIENT_FAILED, "out of memory", false);
            return;
        }
        cl->queued = true;
    }
    if (!pt_outq_empty(&uc->out) && uc->writable) {
        ssize_t w = pt_io_flush(&uc->out, uc->fd, uc->ssl);
        if (w < 0) {
            snprintf(cl->why, sizeof(cl->why), "send() failed: %s", strerror((int)-w));
            finish(cl, PT_CLIENT_FAILED, cl->why, false);
            return;
        }
        if (!pt_outq_empty(&uc->out))
            uc->writable = false;
    }
    while (uc->readable) {
        make_room(uc);
        size_t got;
        if (pt_io_read(uc->fd, uc->ssl, uc->ibuf + uc->ilen, uc->icap - uc->ilen, &got, uc->rdhup, &uc->readable,
                       &uc->eof) < 0)
            uc->reset = true;
        uc->ilen += got;
        if (!cl->have_head) {
            int rc = parse_head(cl, uc);
            if (rc < 0 || (rc == 0 && (uc->eof || uc->ilen == uc->icap))) {
                finish(cl, PT_CLIENT_FAILED, rc < 0 ? "not an HTTP response" : "closed before a response",
                       false);
                return;
            }
            if (rc == 0)
                continue;
        }
        int rc = read_body(cl, uc);
        if (rc < 0) {
            finish(cl, PT_CLIENT_FAILED, uc->eof ? "closed in the body" : "bad or too long body", false);
            return;
        }
        if (rc > 0) {
            bool clean = cl->mode != BODY_EOF && uc->ipos == uc->ilen && !uc->eof;
            if (clean)
                uc->ipos = uc->ilen = 0;
            finish(cl, cl->head.status, NULL, clean);
            return;
        }
    }
    if (uc->eof && !cl->have_head) {
        finish(cl, PT_CLIENT_FAILED, "closed before a response", false);
        return;
    }
}

static void on_io(void *owner, pt_upconn_t *uc)
{
    pt_client_t *cl = owner;
    PT_CHECK_MAGIC(cl, PT_CLIENT_MAGIC);
    step(cl);
}

static void on_timeout(void *owner, pt_upconn_t *uc)
{
    pt_client_t *cl = owner;
    PT_CHECK_MAGIC(cl, PT_CLIENT_MAGIC);
    finish(cl, PT_CLIENT_TIMEOUT, uc->connecting ? "timed out connecting" : "timed out", false);
}

/* The request's bytes, written once with the bounded writer. */
static bool build(pt_client_t *cl, const pt_client_req_t *rq)
{
    const char *method = rq->method ? rq->method : "GET";
    size_t cap = strlen(method) + rq->target.n + rq->host.n + rq->headers.n + rq->body.n + 128;
    if (!(cl->req = malloc(cap)))
        return false;
    pt_head_t h;
    pt_head_init(&h, cl->req, cap);
    pt_head_cs(&h, method);
    PT_HEAD_LIT(&h, " ");
    pt_head_str(&h, rq->target.n ? rq->target : PT_STR("/"));
    PT_HEAD_LIT(&h, " HTTP/1.1\r\nHost: ");
    pt_head_str(&h, rq->host);
    PT_HEAD_LIT(&h, "\r\n");
    pt_head_str(&h, rq->headers);
    if (rq->body.n) {
        PT_HEAD_LIT(&h, "Content-Length: ");
        pt_head_u64(&h, rq->body.n);
        PT_HEAD_LIT(&h, "\r\n");
    }
    if (rq->fresh)
        PT_HEAD_LIT(&h, "Connection: close\r\n");
    PT_HEAD_LIT(&h, "\r\n");
    pt_head_str(&h, rq->body);
    cl->req_len = pt_head_len(&h);
    return cl->req_len > 0;
}

pt_client_t *pt_client_start(pt_worker_t *w, pt_upstream_t *u, size_t idx, const pt_client_req_t *rq,
                             pt_client_fn done, void *arg)
{
    pt_client_t *cl = calloc(1, sizeof(*cl));
    if (!cl)
        return NULL;
    cl->magic = PT_CLIENT_MAGIC;
    cl->w = w;
    cl->u = u;
    cl->done = done;
    cl->arg = arg;
    cl->fresh = rq->fresh || rq->connect_only;
    cl->connect_only = rq->connect_only;
    cl->max_body = rq->max_body;
    cl->head_method = rq->method && strcmp(rq->method, "HEAD") == 0;
    if (!rq->connect_only && !build(cl, rq)) {
        release(cl);
        errno = ENOMEM;
        return NULL;
    }
    pt_target_t *t = &u->targets[idx];
    pt_upconn_t *uc = cl->fresh ? pt_pool_connect(w, u, t) : pt_pool_acquire(w, u, t);
    if (!uc) {
        int err = errno;
        release(cl);
        errno = err;
        return NULL;
    }
    cl->uc = uc;
    uc->owner = cl;
    uc->on_io = on_io;
    uc->on_timeout = on_timeout;
    uc->eof = uc->reset = false;
    pt_upconn_timer(uc, rq->timeout_ms > 0 ? rq->timeout_ms : 10000);
    /* The first step runs from the loop, not from the caller's stack.  A
     * bare wake-up: the connection's state is what the kernel last said. */
    event_active(&uc->ev, EV_TIMEOUT, 0);
    return cl;
}

void pt_client_cancel(pt_client_t *cl)
{
    if (!cl)
        return;
    PT_CHECK_MAGIC(cl, PT_CLIENT_MAGIC);
    if (cl->uc)
        pt_upconn_close(cl->uc);
    release(cl);
}
