/* HTTP/2 towards clients: nghttp2 server sessions, and the stream
 * connections that serve their streams (see h2.h for the design).
 *
 * Defences, all from nghttp2 options and settings: at most
 * `max_concurrent_streams` streams (a client that opens more gets
 * RST_STREAM REFUSED_STREAM), a header list larger than the listener's
 * max_header_size gets 431, CONTINUATION floods and SETTINGS/PING floods
 * end the connection, and streams reset faster than `reset_rate` per
 * second (after a burst of `reset_burst`) end it with GOAWAY
 * ENHANCE_YOUR_CALM: the rapid-reset attack.  Connection-specific headers
 * and malformed pseudo-headers are refused by nghttp2's HTTP checks (RFC
 * 9113, section 8.2.2). */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "portico/accesslog.h"
#include "portico/bufpool.h"
#include "portico/conn.h"
#include "portico/err-t.h"
#include "portico/h1_parser.h"
#include "portico/h1_server.h"
#include "portico/h2.h"
#include "portico/h2_mem.h"
#include "portico/http.h"
#include "portico/listener.h"
#include "portico/log.h"
#include "portico/metrics.h"
#include "portico/proxy.h"
#include "portico/tls.h"
#include "portico/worker.h"

#define STREAM_BUFFER (256 * 1024) /* response bytes a stream may hold for a slow client */
#define STREAM_MIN (16 * 1024)     /* ... of which it may always hold this much */
#define UPSTREAM_RESERVE (64 * 1024)  /* counted for each stream under way: its upstream buffer */
#define HEAD_FREE (16 * 1024)         /* request head copies up to this are part of that reserve */
/* A running stream's head lives three times (the stream's buffer, its
 * connection's input, the upstream head): what of that the reserve does
 * not cover. */
#define HEAD_EXTRA(len) (3 * (len) > HEAD_FREE ? 3 * (len) - HEAD_FREE : 0)
#define SEND_HIGH (256 * 1024)     /* frames queued on the socket before we stop making more */
#define RECENT_IDS 64              /* stream ids remembered for trailers that race a reset */
#define DRAIN_PING ((const uint8_t *)"ptdrain!") /* the PING that times the final GOAWAY */

typedef struct buf {
    char *p;
    size_t len, pos, cap;
} buf_t;

struct pt_h2_stream {
    pt_h2_t *h2;
    int32_t id;
    pt_conn_t *sc; /* the stream connection, once the request head is complete */
    pt_h2_stream_t *next;

    /* the request */
    buf_t fields;    /* the regular header fields */
    buf_t cookie;    /* cookie crumbs, joined with "; " (RFC 9113, 8.2.3) */
    char *method, *path, *authority;
    size_t list_size;
    bool too_big, has_length, chunked, ended;
    buf_t in;        /* the HTTP/1.1 head built from the HEADERS, then the body
                      * (chunk-framed when chunked): what sc has not taken yet */
    size_t unacked;  /* DATA bytes received and not yet acknowledged */
    size_t early;    /* of them, bytes whose connection window was given back
                      * while the stream waited (so one waiting stream cannot
                      * hold the whole connection window) */
    size_t head_len;  /* its request head's length */
    size_t head_size; /* what of it is counted against the connection */
    int counted;     /* where head_size is counted: 0 nowhere, 1 waiting, 2 running */

    /* the response, read back from the stream connection */
    buf_t resp;      /* the head while it is incomplete */
    bool head_done, submitted, no_body, body_chunked, body_done, deferred;
    bool waiting; /* the head is complete; the connection's budget holds the stream back */
    int64_t body_left; /* -1: until the stream connection closes */
    pt_h1_chunked_t chunk;
    buf_t body;      /* decoded body bytes for DATA frames */
    nghttp2_nv *trailers; /* sent after the body (gRPC's grpc-status) */
    size_t ntrailers;
    buf_t trailer_text;   /* the names and values they point into */
};

struct pt_h2 {
    nghttp2_session *s;
    pt_conn_t *c;
    pt_h2_stream_t *streams;
    size_t nstreams;
    /* The response memory budget: decoded body bytes waiting for the
     * client's window, plus UPSTREAM_RESERVE for each stream connection
     * under way (what its upstream connection may buffer).  A stream starts
     * only within the budget (http2_settings.connection_buffer), and takes
     * body bytes past STREAM_MIN only while the total is under it; so a
     * client that never opens its windows pins at most the budget +
     * STREAM_MIN per stream under way (budget / UPSTREAM_RESERVE of them). */
    size_t budget, body_bytes, running;
    /* Request heads: those of running streams count in the budget; those
     * of waiting streams may take a quarter of it more, then a new stream
     * is refused (REFUSED_STREAM: the client may retry it). */
    size_t running_heads, waiting_heads;
    bool squeezed; /* a stream waits for the budget */
    uint64_t body_out, body_out_seen; /* response body bytes framed, and as of the last
                                       * pt_h2_waits_on_client (the send deadline moves with them) */
    bool goaway;      /* draining: the shutdown notice went out */
    bool goaway_last; /* and the final GOAWAY, after a PING round trip */
    double reset_tokens; /* resets the client may still send (a token bucket) */
    int64_t reset_at_ms;
    int32_t last_id;            /* the highest stream the client opened */
    int32_t opened[RECENT_IDS]; /* the last streams it opened (a ring) */
    unsigned nopened;
    pt_h2_mem_t mem; /* nghttp2's allocations, and the idle list (h2_mem.c) */
};

/* The rapid-reset defence: RST_STREAM from the client spends a token; the
 * bucket holds reset_burst and refills at reset_rate per second.  Empty:
 * GOAWAY ENHANCE_YOUR_CALM, and the connection ends. */
static bool reset_allowed(pt_h2_t *h)
{
    const pt_listener_conf_t *lc = h->c->acc->ls->conf;
    int64_t now = pt_worker_now_us(h->c->w) / 1000;
    double burst = (double)lc->http2_settings.reset_burst;
    h->reset_tokens += (double)(now - h->reset_at_ms) * (double)lc->http2_settings.reset_rate / 1000.0;
    if (h->reset_tokens > burst)
        h->reset_tokens = burst;
    h->reset_at_ms = now;
    if (h->reset_tokens < 1)
        return false;
    h->reset_tokens -= 1;
    return true;
}

/* ---- buffers ---- */

static bool buf_add(buf_t *b, const void *p, size_t n)
{
    if (!n)
        return true;
    if (b->len + n > b->cap && b->pos) {
        /* what was taken goes first: a body that is sent as it comes
         * keeps the capacity of what it holds, not of what passed */
        memmove(b->p, b->p + b->pos, b->len - b->pos);
        b->len -= b->pos;
        b->pos = 0;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np)
            return false;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return true;
}

#define BUF_LIT(b, lit) buf_add((b), (lit), sizeof(lit) - 1)

static void buf_free(buf_t *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

static void buf_compact(buf_t *b)
{
    if (b->pos == b->len)
        b->pos = b->len = 0;
}

/* ---- streams ---- */

static size_t used(const pt_h2_t *h)
{
    return h->body_bytes + h->running * UPSTREAM_RESERVE + h->running_heads;
}

/* Counts a stream's head where it is now: 0 nowhere, 1 waiting (all of
 * it), 2 running (what the stream's reserve does not cover). */
static void count_head(pt_h2_stream_t *st, int where)
{
    pt_h2_t *h = st->h2;
    if (st->counted == 1)
        h->waiting_heads -= st->head_size;
    else if (st->counted == 2)
        h->running_heads -= st->head_size;
    size_t head = st->head_len;
    st->head_size = where == 1 ? head : where == 2 ? HEAD_EXTRA(head) : 0;
    if (where == 1)
        h->waiting_heads += st->head_size;
    else if (where == 2)
        h->running_heads += st->head_size;
    st->counted = where;
}

static size_t body_held(const pt_h2_stream_t *st)
{
    return st->body.len - st->body.pos;
}

static bool body_add(pt_h2_stream_t *st, const void *p, size_t n)
{
    if (!buf_add(&st->body, p, n))
        return false;
    st->h2->body_bytes += n;
    return true;
}

static void stream_free(pt_h2_stream_t *st)
{
    st->h2->body_bytes -= body_held(st);
    count_head(st, 0);
    buf_free(&st->fields);
    buf_free(&st->cookie);
    buf_free(&st->in);
    buf_free(&st->resp);
    buf_free(&st->body);
    buf_free(&st->trailer_text);
    free(st->trailers);
    free(st->method);
    free(st->path);
    free(st->authority);
    free(st);
}

static void stream_unlink(pt_h2_t *h, pt_h2_stream_t *st)
{
    for (pt_h2_stream_t **pp = &h->streams; *pp; pp = &(*pp)->next)
        if (*pp == st) {
            *pp = st->next;
            h->nstreams--;
            return;
        }
}

/* The stream connection starts on the request head built in st->in. */
static int launch(pt_h2_t *h, pt_h2_stream_t *st)
{
    pt_conn_t *sc = pt_conn_stream(h->c, &pt_h1_stream_ops);
    st->waiting = false;
    if (!sc)
        return nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
    sc->h2s = st;
    st->sc = sc;
    h->running++;
    count_head(st, 2);
    sc->readable = true;
    pt_conn_reschedule(sc);
    return 0;
}

/* Room in the connection's budget again: streams held back by it go on,
 * and waiting ones start, while it lasts. */
static void relieve(pt_h2_t *h)
{
    if (!h->squeezed || used(h) >= h->budget)
        return;
    h->squeezed = false;
    for (pt_h2_stream_t *st = h->streams; st; st = st->next) {
        if (st->sc && !st->sc->writable && body_held(st) < STREAM_BUFFER / 2) {
            st->sc->writable = true;
            pt_conn_reschedule(st->sc);
        } else if (st->waiting) {
            if (h->running && used(h) + UPSTREAM_RESERVE + HEAD_EXTRA(st->head_len) > h->budget)
                h->squeezed = true;
            else
                launch(h, st);
        }
    }
    pt_conn_reschedule(h->c);
}

/* The stream connection is gone: its reserve returns to the budget. */
static void detach(pt_h2_stream_t *st)
{
    st->sc = NULL;
    st->h2->running--;
    count_head(st, 0);
    relieve(st->h2);
}

/* ---- the response, from HTTP/1.1 to HEADERS and DATA ---- */

static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *out, size_t length, uint32_t *flags,
                         nghttp2_data_source *source, void *user)
{
    pt_h2_stream_t *st = source->ptr;
    size_t avail = st->body.len - st->body.pos;
    if (!avail && !st->body_done) {
        st->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = avail < length ? avail : length;
    if (n) /* an empty body has no buffer at all */
        memcpy(out, st->body.p + st->body.pos, n);
    st->body.pos += n;
    st->h2->body_bytes -= n;
    st->h2->body_out += n;
    buf_compact(&st->body);
    if (st->body_done && st->body.len == st->body.pos) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (st->ntrailers && nghttp2_submit_trailer(s, id, st->trailers, st->ntrailers) == 0)
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM; /* the trailers end the stream */
    }
    if (st->sc && !st->sc->writable && st->body.len - st->body.pos < STREAM_BUFFER / 2) {
        st->sc->writable = true; /* room again: the stream connection may go on */
        pt_conn_reschedule(st->sc);
    } else if (n && st->sc && !st->sc->writable && st->sc->timer_kind == PT_TM_SOURCE) {
        /* bytes went to the client while its stream connection sleeps on
         * a full buffer: its send timeout starts again */
        pt_conn_timer(st->sc, PT_TM_SOURCE, st->h2->c->acc->ls->conf->timeouts.send);
    }
    relieve(st->h2);
    return (ssize_t)n;
}

/* The response head in st->resp: once it is complete, HEADERS (and DATA to
 * come).  Returns its length, 0 while incomplete, -1 when it is not HTTP.
 * The head may hold as many fields as the proxy let through (the
 * listener's max_headers, and what filters added): the field arrays are
 * sized by its line count. */
static int submit_head(pt_h2_stream_t *st)
{
    size_t lines = 0;
    bool complete = false;
    const char *stop = st->resp.p + st->resp.len;
    for (const char *p = st->resp.p; !complete && (p = memchr(p, '\n', (size_t)(stop - p))) != NULL; p++) {
        lines++;
        complete = (p + 1 < stop && p[1] == '\n') || (p + 2 < stop && p[1] == '\r' && p[2] == '\n');
    }
    if (!complete)
        return st->resp.len >= STREAM_BUFFER ? -1 : 0;
    pt_h1_header_t *headers = malloc(lines * (sizeof(pt_h1_header_t) + sizeof(nghttp2_nv)) + sizeof(nghttp2_nv));
    if (!headers)
        return -1;
    nghttp2_nv *nv = (nghttp2_nv *)(headers + lines);
    pt_h1_limits_t lim = {8192, STREAM_BUFFER, lines};
    pt_h1_resp_t r = {.headers = headers};
    int rc = pt_h1_parse_response(st->resp.p, st->resp.len, &lim, &r);
    if (rc < 0 || rc == PT_EAGAIN) {
        free(headers);
        return rc == PT_EAGAIN ? 0 : -1;
    }
    if (r.status < 200) { /* 100 Continue: not forwarded */
        free(headers);
        memmove(st->resp.p, st->resp.p + rc, st->resp.len - (size_t)rc);
        st->resp.len -= (size_t)rc;
        return submit_head(st);
    }
    char status[4] = {(char)('0' + r.status / 100 % 10), (char)('0' + r.status / 10 % 10), (char)('0' + r.status % 10),
                      0};
    size_t n = 0;
    nv[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE};
    for (size_t i = 0; i < r.nheaders; i++) {
        pt_str_t name = r.headers[i].name;
        if (pt_proxy_hop_by_hop(name))
            continue;
        char *lower = (char *)name.p; /* st->resp is our copy: lower-cased in place, as HTTP/2 wants */
        for (size_t k = 0; k < name.n; k++)
            lower[k] = pt_lower(lower[k]);
        nv[n++] = (nghttp2_nv){(uint8_t *)lower, (uint8_t *)r.headers[i].value.p, name.n, r.headers[i].value.n,
                               NGHTTP2_NV_FLAG_NONE};
    }
    bool head_method = st->method && strcmp(st->method, "HEAD") == 0;
    /* nothing to send after the head: HEADERS ends the stream (a gRPC
     * trailers-only response must be one frame) */
    st->no_body = head_method || r.status == 204 || r.status == 304 || (!r.chunked && r.content_length == 0);
    st->body_chunked = r.chunked;
    st->body_left = r.chunked ? 0 : r.content_length;
    st->head_done = true;
    st->body_done = st->no_body;
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = read_body};
    st->submitted = nghttp2_submit_response(st->h2->s, st->id, nv, n, st->no_body ? NULL : &dp) == 0; /* nv copied */
    free(headers);
    return st->submitted ? rc : -1;
}

/* Body bytes of the HTTP/1.1 response: decoded into st->body. */
static int take_body(pt_h2_stream_t *st, const char *p, size_t n)
{
    if (st->no_body || st->body_done)
        return 0; /* nothing more is expected: ignore */
    if (st->body_chunked) {
        while (n && !st->chunk.done) {
            const char *data;
            size_t dlen;
            long used = pt_h1_chunked_decode(&st->chunk, p, n, &data, &dlen);
            if (used < 0)
                return -1;
            if (dlen && !body_add(st, data, dlen))
                return -1;
            p += used;
            n -= (size_t)used;
        }
        st->body_done = st->chunk.done;
        return 0;
    }
    if (st->body_left >= 0 && (int64_t)n > st->body_left)
        n = (size_t)st->body_left;
    if (n && !body_add(st, p, n))
        return -1;
    if (st->body_left >= 0) {
        st->body_left -= (int64_t)n;
        st->body_done = st->body_left == 0;
    }
    return 0;
}

static void resume(pt_h2_stream_t *st)
{
    if (st->submitted && st->deferred) {
        st->deferred = false;
        nghttp2_session_resume_data(st->h2->s, st->id);
    }
    pt_conn_reschedule(st->h2->c);
}

/* The outq writer of a stream connection. */
static ssize_t stream_write(void *ctx, const void *p, size_t n)
{
    pt_h2_stream_t *st = ctx;
    pt_h2_t *h = st->h2;
    if (st->head_done) { /* back-pressure: the client is slow, or the connection holds its budget */
        size_t held = body_held(st), room = held < STREAM_MIN ? STREAM_MIN - held : 0;
        if (used(h) < h->budget && held < STREAM_BUFFER) {
            size_t shared = h->budget - used(h) < STREAM_BUFFER - held ? h->budget - used(h) : STREAM_BUFFER - held;
            room = shared > room ? shared : room;
        }
        if (!room) {
            h->squeezed = h->squeezed || held < STREAM_BUFFER;
            return 0;
        }
        n = n < room ? n : room;
    }
    int rc = 0;
    if (st->head_done) {
        rc = take_body(st, p, n);
    } else if (!buf_add(&st->resp, p, n)) {
        return -ENOMEM;
    } else if ((rc = submit_head(st)) > 0) { /* body bytes that came with the head */
        rc = take_body(st, st->resp.p + rc, st->resp.len - (size_t)rc);
        buf_free(&st->resp);
    }
    if (rc < 0)
        return -EPROTO; /* what the stream connection wrote is not HTTP */
    resume(st);
    return (ssize_t)n;
}

int pt_h2_stream_flush(pt_conn_t *sc)
{
    pt_h2_stream_t *st = sc->h2s;
    if (!st)
        return -1;
    ssize_t w = pt_outq_flush_fn(&sc->out, stream_write, st);
    if (w < 0) {
        sc->eof = true;
        sc->closing = true;
        pt_conn_drop_output(sc);
        return -1;
    }
    if (!pt_outq_empty(&sc->out))
        sc->writable = false;
    return w > 0;
}

int pt_h2_stream_read(pt_conn_t *sc)
{
    pt_h2_stream_t *st = sc->h2s;
    if (!st) {
        sc->eof = true;
        return 1;
    }
    size_t avail = st->in.len - st->in.pos;
    if (!avail) {
        sc->readable = false;
        return 0;
    }
    if (sc->ipos == sc->ilen)
        sc->ipos = sc->ilen = 0;
    else if (sc->ipos && sc->icap - sc->ilen < avail && sc->out.refs == 0) {
        memmove(sc->ibuf, sc->ibuf + sc->ipos, sc->ilen - sc->ipos);
        sc->ilen -= sc->ipos;
        sc->ipos = 0;
    }
    /* the head built from a header list of max_header_size must fit whole
     * (its fields lose their 32 bytes of HPACK overhead and gain 4) */
    size_t max = (size_t)st->h2->c->acc->ls->conf->max_header_size + 4096;
    max = max > 256 * 1024 ? max : 256 * 1024;
    if (sc->icap - sc->ilen < avail && sc->icap < max) {
        size_t cap = sc->icap ? sc->icap : PT_BUF_SMALL;
        while (cap < sc->ilen + avail && cap < max)
            cap *= 2;
        pt_conn_ibuf_grow(sc, cap < max ? cap : max); /* out of memory: what fits */
    }
    size_t room = sc->icap - sc->ilen, n = avail < room ? avail : room;
    if (!n)
        return 0;
    memcpy(sc->ibuf + sc->ilen, st->in.p + st->in.pos, n);
    sc->ilen += n;
    st->in.pos += n;
    if (st->in.pos == st->in.len) {
        st->in.pos = st->in.len = 0;
        if (st->unacked) { /* all of it taken: the client may send more */
            size_t early = st->early < st->unacked ? st->early : st->unacked;
            if (early) /* the connection's share went back already */
                nghttp2_session_consume_stream(st->h2->s, st->id, early);
            if (st->unacked > early)
                nghttp2_session_consume(st->h2->s, st->id, st->unacked - early);
            st->early -= early;
            st->unacked = 0;
            pt_conn_reschedule(st->h2->c);
        }
        sc->readable = false;
    }
    return 1;
}

void pt_h2_stream_trailers(pt_conn_t *sc, const nghttp2_nv *nv, size_t n)
{
    pt_h2_stream_t *st = sc->h2s;
    if (!st || st->trailers || !n)
        return;
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += nv[i].namelen + nv[i].valuelen;
    st->trailers = calloc(n, sizeof(nghttp2_nv));
    st->trailer_text.p = malloc(total ? total : 1);
    if (!st->trailers || !st->trailer_text.p)
        return;
    char *p = st->trailer_text.p;
    for (size_t i = 0; i < n; i++) {
        st->trailers[i] = (nghttp2_nv){(uint8_t *)p, (uint8_t *)p + nv[i].namelen, nv[i].namelen, nv[i].valuelen,
                                       NGHTTP2_NV_FLAG_NONE};
        memcpy(p, nv[i].name, nv[i].namelen);
        memcpy(p + nv[i].namelen, nv[i].value, nv[i].valuelen);
        p += nv[i].namelen + nv[i].valuelen;
    }
    st->ntrailers = n;
}

size_t pt_h2_stream_unsent(const pt_conn_t *sc)
{
    return sc->h2s ? body_held(sc->h2s) : 0;
}

void pt_h2_stream_closed(pt_conn_t *sc)
{
    pt_h2_stream_t *st = sc->h2s;
    sc->h2s = NULL;
    if (!st)
        return;
    detach(st);
    if (!st->head_done) {
        /* closed without an answer: the stream is reset */
        nghttp2_submit_rst_stream(st->h2->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
    } else if (!st->body_done) {
        if (st->body_left < 0 && !st->body_chunked) {
            st->body_done = true; /* a close-delimited body ends here */
        } else {
            nghttp2_submit_rst_stream(st->h2->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        }
    }
    resume(st);
}

/* ---- the request, from HEADERS to HTTP/1.1 ---- */

static pt_h2_stream_t *stream_of(pt_h2_t *h, int32_t id)
{
    return nghttp2_session_get_stream_user_data(h->s, id);
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    pt_h2_t *h = user;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    pt_h2_stream_t *st = calloc(1, sizeof(*st));
    if (!st)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    pt_h2_mem_busy(&h->mem);
    st->h2 = h;
    st->id = f->hd.stream_id;
    st->body_left = -1;
    st->next = h->streams;
    h->streams = st;
    h->nstreams++;
    nghttp2_session_set_stream_user_data(s, st->id, st);
    return 0;
}

static char *dup_n(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    pt_h2_t *h = user;
    pt_h2_stream_t *st = stream_of(h, f->hd.stream_id);
    if (!st || f->hd.type != NGHTTP2_HEADERS || st->sc)
        return 0; /* trailers: not passed on */
    const pt_listener_conf_t *lc = h->c->acc->ls->conf;
    st->list_size += nlen + vlen + 32;
    if (st->list_size > (size_t)(lc ? lc->max_header_size : 32768))
        st->too_big = true;
    if (st->too_big)
        return 0;
    pt_str_t n = {(const char *)name, nlen};
    if (nlen && name[0] == ':') {
        char **slot = pt_str_eq(n, PT_STR(":method")) ? &st->method
                      : pt_str_eq(n, PT_STR(":path")) ? &st->path
                      : pt_str_eq(n, PT_STR(":authority")) ? &st->authority
                                                  : NULL;
        if (slot && !*slot)
            *slot = dup_n(value, vlen);
        return 0;
    }
    if (pt_str_eq(n, PT_STR("cookie"))) {
        if ((st->cookie.len && !BUF_LIT(&st->cookie, "; ")) || !buf_add(&st->cookie, value, vlen))
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        return 0;
    }
    if (pt_str_eq(n, PT_STR("host")) && st->authority)
        return 0; /* :authority wins (RFC 9113, 8.3.1) */
    if (pt_str_eq(n, PT_STR("content-length")))
        st->has_length = true;
    if (!buf_add(&st->fields, name, nlen) || !BUF_LIT(&st->fields, ": ") || !buf_add(&st->fields, value, vlen) ||
        !BUF_LIT(&st->fields, "\r\n"))
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static void respond_now(pt_h2_stream_t *st, const char *status, const char *body)
{
    static nghttp2_nv ct = {(uint8_t *)"content-type", (uint8_t *)"text/plain", 12, 10, NGHTTP2_NV_FLAG_NONE};
    nghttp2_nv nv[2] = {{(uint8_t *)":status", (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE}, ct};
    body_add(st, body, strlen(body));
    st->head_done = st->body_done = true;
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = read_body};
    st->submitted = nghttp2_submit_response(st->h2->s, st->id, nv, 2, &dp) == 0;
    /* no stream connection, so no request: its log line is written here */
    pt_conn_t *c = st->h2->c;
    pt_alog_entry_t e = {.peer = (const struct sockaddr *)&c->peer,
                         .upstream_us = -1,
                         .upstream_connect_us = -1,
                         .upstream_header_us = -1};
    event_base_gettimeofday_cached(c->w->base, &e.start);
    e.method = st->method ? pt_str_from(st->method) : PT_STR_NULL;
    e.target = st->path ? pt_str_from(st->path) : PT_STR_NULL;
    e.host = st->authority ? pt_str_from(st->authority) : PT_STR_NULL;
    e.protocol = PT_STR("HTTP/2.0");
    e.status = atoi(status);
    e.bytes_out = strlen(body);
    if (c->ssl) {
        e.tls_protocol = pt_tls_protocol(c->ssl);
        e.tls_cipher = pt_tls_cipher(c->ssl);
    }
    pt_accesslog_write(&e);
    if (c->acc->ls->kind != PT_LS_ADMIN) /* counted as the log has it: no route took it */
        pt_metrics_request(pt_mx_route(c->w->conf->routes.n), pt_http_method(e.method), e.status, 0, 0, e.bytes_out,
                           PT_MX_NONE, -1);
}

/* The request head is complete: the stream connection starts on it. */
static int start_request(pt_h2_t *h, pt_h2_stream_t *st, bool end_stream)
{
    if (st->too_big) {
        respond_now(st, "431", "431 Request Header Fields Too Large\n");
        return 0;
    }
    if (!st->method || !st->path) /* CONNECT without :path, which we do not do */
        return nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_PROTOCOL_ERROR);
    st->ended = end_stream;
    st->chunked = !end_stream && !st->has_length;
    bool ok = buf_add(&st->in, st->method, strlen(st->method)) && BUF_LIT(&st->in, " ") &&
              buf_add(&st->in, st->path, strlen(st->path)) && BUF_LIT(&st->in, " HTTP/1.1\r\n");
    if (st->authority)
        ok = ok && BUF_LIT(&st->in, "Host: ") && buf_add(&st->in, st->authority, strlen(st->authority)) &&
             BUF_LIT(&st->in, "\r\n");
    ok = ok && buf_add(&st->in, st->fields.p, st->fields.len);
    if (st->cookie.len)
        ok = ok && BUF_LIT(&st->in, "Cookie: ") && buf_add(&st->in, st->cookie.p, st->cookie.len) &&
             BUF_LIT(&st->in, "\r\n");
    if (st->chunked)
        ok = ok && BUF_LIT(&st->in, "Transfer-Encoding: chunked\r\n");
    ok = ok && BUF_LIT(&st->in, "\r\n");
    buf_free(&st->fields); /* in the head now */
    buf_free(&st->cookie);
    if (!ok)
        return nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
    st->head_len = st->in.len;
    if (h->running && used(h) + UPSTREAM_RESERVE + HEAD_EXTRA(st->head_len) > h->budget) {
        if (h->waiting_heads + st->head_len > h->budget / 4) {
            /* Waiting heads are the client's lever on our memory (a few
             * bytes of HPACK each): past a quarter of the budget, refused,
             * which RFC 9113 8.7 makes safe to retry. */
            return nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_REFUSED_STREAM);
        }
        st->waiting = h->squeezed = true; /* started by relieve() once the client reads */
        count_head(st, 1);
        return 0;
    }
    return launch(h, st);
}

/* RFC 9113, 5.1.1: a new stream's id is above every id the client used
 * before; a HEADERS frame below that is a connection error PROTOCOL_ERROR.
 * libnghttp2 ignores such a frame unless it still holds the stream, so it
 * is checked here: a lower id is accepted only for a stream nghttp2 knows
 * (trailers) or one of the last RECENT_IDS opened (trailers sent before
 * our RST_STREAM reached the client). */
static bool stream_id_allowed(pt_h2_t *h, int32_t id)
{
    if (id > h->last_id) {
        h->last_id = id;
        h->opened[h->nopened++ % RECENT_IDS] = id;
        return true;
    }
    if (nghttp2_session_find_stream(h->s, id))
        return true;
    for (unsigned i = 0; i < RECENT_IDS && i < h->nopened; i++)
        if (h->opened[i] == id)
            return true;
    return false;
}

static int on_begin_frame(nghttp2_session *s, const nghttp2_frame_hd *hd, void *user)
{
    pt_h2_t *h = user;
    if (hd->type == NGHTTP2_PRIORITY && hd->stream_id == 0 && !h->c->eof) {
        /* skipped unread (SETTINGS_NO_RFC7540_PRIORITIES), but still a
         * connection error (RFC 9113, 6.3) */
        nghttp2_session_terminate_session(s, NGHTTP2_PROTOCOL_ERROR);
        h->c->eof = true; /* read no more */
        return 0;
    }
    if (hd->type != NGHTTP2_HEADERS || !(hd->stream_id & 1) || h->c->eof || stream_id_allowed(h, hd->stream_id))
        return 0;
    char peer[80];
    pt_conn_peer_name(h->c, peer, sizeof(peer));
    pt_log_info("HTTP/2 client %s opens stream %d after stream %d: GOAWAY PROTOCOL_ERROR, closing", peer,
                (int)hd->stream_id, (int)h->last_id);
    nghttp2_session_terminate_session(s, NGHTTP2_PROTOCOL_ERROR);
    h->c->eof = true; /* read no more */
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    pt_h2_t *h = user;
    if (f->hd.type == NGHTTP2_RST_STREAM && !reset_allowed(h)) {
        char peer[80];
        pt_conn_peer_name(h->c, peer, sizeof(peer));
        pt_log_warn("HTTP/2 client %s resets streams too fast: GOAWAY ENHANCE_YOUR_CALM", peer);
        nghttp2_session_terminate_session(s, NGHTTP2_ENHANCE_YOUR_CALM);
        h->c->eof = true; /* read no more */
        return 0;
    }
    if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK) && h->goaway && !h->goaway_last &&
        memcmp(f->ping.opaque_data, DRAIN_PING, 8) == 0) {
        /* every stream the client opened before it saw the notice is in */
        h->goaway_last = true;
        nghttp2_submit_goaway(s, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s), NGHTTP2_NO_ERROR,
                              NULL, 0);
        return 0;
    }
    pt_h2_stream_t *st = f->hd.stream_id ? stream_of(h, f->hd.stream_id) : NULL;
    if (!st)
        return 0;
    bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
        return start_request(h, st, end);
    if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) && end && !st->ended) {
        st->ended = true; /* the end of the body (or trailers) */
        if (st->chunked)
            BUF_LIT(&st->in, "0\r\n\r\n");
        if (st->sc) {
            st->sc->readable = true;
            pt_conn_reschedule(st->sc);
        }
    }
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user)
{
    pt_h2_t *h = user;
    pt_h2_stream_t *st = stream_of(h, id);
    if (!st || (!st->sc && !st->waiting)) { /* nobody will read it (a 431, or a stream already answered) */
        nghttp2_session_consume(s, id, len);
        return 0;
    }
    char size[24];
    int sl = snprintf(size, sizeof(size), "%zx\r\n", len);
    if ((st->chunked && !buf_add(&st->in, size, (size_t)sl)) || !buf_add(&st->in, data, len) ||
        (st->chunked && !BUF_LIT(&st->in, "\r\n")))
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    st->unacked += len;
    if (st->waiting) {
        /* Held back by the budget, it must not hold the connection's window
         * too, or the running streams' bodies could never arrive: the
         * connection's share is given back now, the stream's (its window
         * bounds what it buffers) once it runs and takes the bytes. */
        nghttp2_session_consume_connection(s, len);
        st->early += len;
    }
    if (st->sc) {
        st->sc->readable = true;
        pt_conn_reschedule(st->sc);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t error, void *user)
{
    pt_h2_t *h = user;
    pt_h2_stream_t *st = stream_of(h, id);
    if (!st)
        return 0;
    nghttp2_session_set_stream_user_data(s, id, NULL);
    stream_unlink(h, st);
    if (st->unacked > st->early) /* bytes nobody will take: the connection's window gets them back */
        nghttp2_session_consume_connection(s, st->unacked - st->early);
    pt_conn_t *sc = st->sc;
    if (sc) { /* reset by the client, or ended before its connection did */
        sc->h2s = NULL;
        st->sc = NULL;
        h->running--;
        pt_conn_close(sc);
    }
    stream_free(st);
    relieve(h);
    return 0;
}

/* ---- the connection ---- */

int pt_h2_start(pt_conn_t *c)
{
    const pt_listener_conf_t *lc = c->acc->ls->conf;
    pt_h2_t *h = calloc(1, sizeof(*h));
    nghttp2_session_callbacks *cb = NULL;
    nghttp2_option *opt = NULL;
    if (!h || nghttp2_session_callbacks_new(&cb) || nghttp2_option_new(&opt)) {
        free(h);
        nghttp2_session_callbacks_del(cb);
        return -1;
    }
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    /* CONTINUATION floods end the connection; a header list as large as
     * max_header_size still fits, in frames of 16 KiB (SETTINGS_MAX_FRAME_SIZE) */
    size_t continuations = (size_t)lc->max_header_size / 16384 + 2;
    nghttp2_option_set_max_continuations(opt, continuations > 8 ? continuations : 8);
    /* nghttp2's own limit, above ours (which says ENHANCE_YOUR_CALM) */
    nghttp2_option_set_stream_reset_rate_limit(opt, 2 * (uint64_t)lc->http2_settings.reset_burst,
                                               2 * (uint64_t)lc->http2_settings.reset_rate);
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_max_settings(opt, 32);
    /* responses are not indexed (as nginx): no table of ours kept per connection */
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 0);
    /* a stream is forgotten when it closes (no RFC 7540 priority tree of
     * closed streams): the stream table of an idle session is empty */
    nghttp2_option_set_no_closed_streams(opt, 1);
    nghttp2_option_set_max_send_header_block_length(opt, STREAM_BUFFER); /* max_headers fields (64 KiB by default) */
    nghttp2_mem mem = pt_h2_mem_allocator(&h->mem); /* copied into the session */
    int rc = nghttp2_session_server_new3(&h->s, cb, h, opt, &mem);
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    if (rc) {
        free(h);
        return -1;
    }
    h->c = c;
    h->budget = (size_t)lc->http2_settings.connection_buffer;
    h->reset_tokens = (double)lc->http2_settings.reset_burst;
    h->reset_at_ms = pt_worker_now_us(c->w) / 1000;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)lc->http2_settings.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (uint32_t)lc->http2_settings.initial_window_size},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)lc->max_header_size},
        /* RFC 9218: no RFC 7540 priority tree (responses go in the order
         * they come); nghttp2 then skips PRIORITY frames instead of keeping
         * an idle stream for each id they name */
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    };
    nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    c->h2 = h;
    c->state = PT_CS_H2;
    c->spoke_h2 = true;
    pt_mx_add(pt_mx_listener(c->acc->ls->conf), PT_MXW_L_H2, 1);
    return 0;
}

size_t pt_h2_streams(const pt_conn_t *c)
{
    return c->h2 ? c->h2->nstreams : 0;
}

/* No stream has a request under way (or none is open). */
static bool none_under_way(const pt_h2_t *h)
{
    for (const pt_h2_stream_t *st = h->streams; st; st = st->next)
        if (st->sc)
            return false; /* a request under way: its own timers */
    return true;
}

bool pt_h2_waits_on_client(pt_conn_t *c, bool *moved)
{
    pt_h2_t *h = c->h2;
    if (!h || !h->nstreams || !none_under_way(h))
        return false;
    *moved = h->body_out != h->body_out_seen;
    h->body_out_seen = h->body_out;
    return true;
}

/* Moves what nghttp2 has to send onto the socket's queue, up to `high`
 * bytes queued.  -1 when out of memory, else whether anything moved. */
static int queue_frames(pt_h2_t *h, size_t high)
{
    int moved = 0;
    while (h->c->out.pending < high) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(h->s, &data);
        if (n <= 0)
            break;
        if (!pt_outq_copy(&h->c->out, data, (size_t)n))
            return -1;
        moved = 1;
    }
    if (moved)
        pt_h2_mem_busy(&h->mem); /* the frame buffer is in use until nghttp2 is asked again */
    return moved;
}

void pt_h2_idle(pt_conn_t *c)
{
    pt_h2_t *h = c->h2;
    if (h && !h->nstreams && pt_outq_empty(&c->out) && !nghttp2_session_want_write(h->s))
        pt_h2_mem_idle(&h->mem, pt_worker_now_us(c->w) / 1000);
}

/* The end: GOAWAY with this code (and whatever else is queued) goes out if
 * the socket takes it, then the connection lingers so a reset does not
 * destroy it. */
static void goodbye(pt_conn_t *c, uint32_t code)
{
    nghttp2_session_terminate_session(c->h2->s, code);
    queue_frames(c->h2, SIZE_MAX);
    pt_conn_linger(c);
}

void pt_h2_run(pt_conn_t *c)
{
    pt_h2_t *h = c->h2;
    for (int rounds = 0; rounds < 64 && !c->dead; rounds++) {
        int progress = 0;
        if (c->ipos < c->ilen) {
            ssize_t n = nghttp2_session_mem_recv(h->s, (const uint8_t *)c->ibuf + c->ipos, c->ilen - c->ipos);
            if (n < 0) {
                /* a protocol error, or a flood of frames that need answers
                 * (SETTINGS, PING) from a client that does not read them:
                 * say GOAWAY if the socket takes it, and close */
                char peer[80];
                pt_conn_peer_name(c, peer, sizeof(peer));
                if (n == NGHTTP2_ERR_FLOODED)
                    pt_log_warn("HTTP/2 client %s sends frames that need answers (SETTINGS, PING) and does not "
                                "read them: GOAWAY ENHANCE_YOUR_CALM, closing",
                                peer);
                else
                    pt_log_info("HTTP/2 client %s: %s; closing", peer, nghttp2_strerror((int)n));
                goodbye(c, n == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR);
                return;
            }
            c->ipos += (size_t)n;
            progress = 1;
        }
        int moved = queue_frames(h, SEND_HIGH);
        if (moved < 0) {
            pt_conn_close(c);
            return;
        }
        progress |= moved;
        if (!pt_outq_empty(&c->out) && c->writable) {
            int r = pt_conn_flush(c);
            if (r < 0) {
                pt_conn_close(c);
                return;
            }
            progress |= r;
        }
        bool done = !nghttp2_session_want_read(h->s) && !nghttp2_session_want_write(h->s);
        if ((done || c->eof) && pt_outq_empty(&c->out)) {
            pt_conn_linger(c); /* GOAWAY is out: read what still comes, so it is not lost to a reset */
            return;
        }
        /* read on even when the socket is full: nghttp2 bounds what it
         * queues (flow control, max_outbound_ack) and spots floods */
        if (c->readable && !c->eof)
            progress |= pt_conn_read(c);
        /* A short read took the last bytes, and a reset (or end) that came
         * on the same edge brings no new one: with no request under way
         * (every stream waiting on the client, or none open) nothing else
         * would look before a timeout, so the socket is asked. */
        if (!progress && !c->readable && !c->eof && none_under_way(h) && pt_conn_peek_end(c))
            progress = 1;
        if (!progress)
            return;
    }
    pt_conn_reschedule(c);
}

void pt_h2_drain(pt_conn_t *c)
{
    pt_h2_t *h = c->h2;
    if (!h || h->goaway)
        return;
    h->goaway = true;
    /* RFC 9113, 6.8: GOAWAY with the highest stream id first, so that
     * streams the client sent before it reads it (in flight, or still in
     * our socket buffer) are served, not refused; the final GOAWAY, with
     * the last stream we took, follows the PING's answer.  A client that
     * does not answer gets it when its last stream ends (TM_DRAIN). */
    nghttp2_submit_shutdown_notice(h->s);
    nghttp2_submit_ping(h->s, NGHTTP2_FLAG_NONE, DRAIN_PING);
    pt_conn_reschedule(c);
}

void pt_h2_goaway_close(pt_conn_t *c)
{
    if (c->h2)
        goodbye(c, NGHTTP2_NO_ERROR);
    else
        pt_conn_close(c);
}

void pt_h2_free(pt_conn_t *c)
{
    pt_h2_t *h = c->h2;
    if (!h)
        return;
    c->h2 = NULL;
    while (h->streams) {
        pt_h2_stream_t *st = h->streams;
        h->streams = st->next;
        if (st->sc) {
            st->sc->h2s = NULL;
            pt_conn_close(st->sc);
        }
        stream_free(st);
    }
    nghttp2_session_del(h->s);
    pt_h2_mem_busy(&h->mem); /* off the idle list */
    free(h);
}
