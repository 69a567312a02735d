/* A client connection, below HTTP: the socket (or, for an HTTP/2 stream,
 * the stream connection that stands for one), TLS, its input buffer and
 * output queue, its timer, lingering closes, and its life from accept to
 * free.  What the bytes mean is the protocol's (c->ops: the HTTP/1.1
 * server loop in http/h1_server.c); nothing here knows of requests.
 *
 * One persistent edge-triggered event covers reading and writing, so a
 * keep-alive request costs no epoll_ctl: `readable` and `writable` remember
 * what the kernel last told us.  Closed connections are freed on the next
 * loop iteration, because libevent may still hold events for them. */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "portico/assert.h"
#include "portico/bufpool.h"
#include "portico/conn.h"
#include "portico/io.h"
#include "portico/log.h"
#include "portico/metrics.h"
#include "portico/tls.h"
#include "portico/value.h"

#define LINGER_MS 2000
#define SPARE_MAX 256

/* ---- output ---- */

void pt_conn_queue(pt_conn_t *c, const void *s, size_t n)
{
    if (!pt_outq_copy(&c->out, s, n))
        c->closing = true;
}

void pt_conn_drop_output(pt_conn_t *c)
{
    c->unsent += c->out.pending;
    pt_outq_reset(&c->out);
}

int pt_conn_flush(pt_conn_t *c)
{
    if (c->ops->flush)
        return c->ops->flush(c);
    ssize_t w = pt_io_flush(&c->out, c->fd, c->ssl);
    if (w < 0) {
        pt_log_info("client write failed: %s", strerror((int)-w));
        c->eof = true;
        c->closing = true;
        pt_conn_drop_output(c);
        return -1;
    }
    if (!pt_outq_empty(&c->out))
        c->writable = false;
    return w > 0;
}

/* ---- input ---- */

bool pt_conn_ibuf_grow(pt_conn_t *c, size_t cap)
{
    if (cap <= c->icap)
        return true;
    if (cap <= PT_BUF_SMALL && !c->ibuf) {
        if (!(c->ibuf = pt_buf_get(PT_BUF_SMALL)))
            return false;
        c->icap = PT_BUF_SMALL;
        return true;
    }
    if (cap < PT_BUF_SMALL * 2)
        cap = PT_BUF_SMALL * 2; /* a block is PT_BUF_SMALL exactly, and nothing else is */
    char *b;
    if (c->icap == PT_BUF_SMALL) { /* out of the pool block */
        if (!(b = malloc(cap)))
            return false;
        memcpy(b, c->ibuf, c->ilen);
        pt_buf_put(c->ibuf, PT_BUF_SMALL);
    } else if (!(b = realloc(c->ibuf, cap))) {
        return false;
    }
    c->ibuf = b;
    c->icap = cap;
    return true;
}

/* The input buffer goes back (empty: nothing in it is needed). */
static void ibuf_release(pt_conn_t *c)
{
    if (c->icap == PT_BUF_SMALL)
        pt_buf_put(c->ibuf, PT_BUF_SMALL);
    else
        free(c->ibuf);
    c->ibuf = NULL;
    c->icap = c->ipos = c->ilen = 0;
}

/* The input buffer, the output queue's block and the arena's chunk go
 * back to the pool (nothing in them is needed any more). */
static void release_buffers(pt_conn_t *c)
{
    ibuf_release(c);
    pt_outq_release(&c->out);
    pt_arena_free(&c->arena);
}

void pt_conn_idle(pt_conn_t *c)
{
    if (c->ipos != c->ilen || !pt_outq_empty(&c->out) || c->req)
        return; /* there is work after all */
    if (c->ibuf || c->out.seg || c->arena.head)
        release_buffers(c);
}

int pt_conn_read(pt_conn_t *c)
{
    if (c->ops->read)
        return c->ops->read(c);
    if (c->ipos == c->ilen)
        c->ipos = c->ilen = 0;
    else if (c->ipos && (c->icap - c->ilen < 1024 || c->state == PT_CS_HEAD)) {
        memmove(c->ibuf, c->ibuf + c->ipos, c->ilen - c->ipos);
        c->ilen -= c->ipos;
        c->ipos = 0;
    }
    const pt_listener_conf_t *lc = c->acc->ls->conf;
    size_t max = (lc ? (size_t)lc->max_header_size : 32768) + 1024;
    if (!c->ibuf) { /* idle until now: the pool's block */
        if (!pt_conn_ibuf_grow(c, PT_BUF_SMALL)) {
            c->closing = true;
            return 1;
        }
    }
    if ((c->icap - c->ilen < 512 || c->state == PT_CS_PROXY) && c->icap < max) {
        /* a head that does not fit yet, or a body to stream: grow */
        size_t cap = c->state == PT_CS_PROXY || c->icap * 2 > max ? max : c->icap * 2;
        if (!pt_conn_ibuf_grow(c, cap)) {
            c->closing = true;
            return 1;
        }
    }
    if (c->icap == c->ilen)
        return 0; /* full: the parser will have said 431 */
    size_t got;
    int rc = pt_io_read(c->fd, c->ssl, c->ibuf + c->ilen, c->icap - c->ilen, &got, c->rdhup, &c->readable, &c->eof);
    c->ilen += got;
    return rc != 0; /* a client's reset ends it as its close does */
}

/* ---- TLS ---- */

/* The metrics row of the connection's listener. */
static uint32_t mx_row(const pt_conn_t *c)
{
    return pt_mx_listener(c->acc->ls->conf);
}

/* Do the client's first bytes look like plain HTTP (a method and a space,
 * or HTTP/2's preface) rather than a TLS record?  OpenSSL itself knows only
 * GET, POST, HEAD and PUT.  1: plain HTTP; 0: TLS (a record starts with a
 * byte that is no capital letter); -1: not known yet (nothing came, or
 * only the first capitals of a method: the rest may be in the next
 * segment, and taking them for TLS would reset the client). */
static int plain_http(pt_conn_t *c)
{
    char b[10];
    ssize_t n = recv(c->fd, b, sizeof(b), MSG_PEEK | MSG_DONTWAIT);
    if (n <= 0)
        return -1;
    for (ssize_t i = 0; i < n; i++) {
        if (b[i] == ' ')
            return i > 0;
        if (b[i] < 'A' || b[i] > 'Z')
            return 0;
    }
    return n < (ssize_t)sizeof(b) ? -1 : 0;
}

int pt_conn_tls_step(pt_conn_t *c)
{
    char why[256];
    /* before the first step: a look at what came, without taking it */
    int plain = c->tls_peeked ? 0 : plain_http(c);
    if (plain == -1) {
        c->readable = false; /* the next edge brings more */
        if (c->timer_kind != PT_TM_TLS)
            pt_conn_timer(c, PT_TM_TLS, c->acc->ls->conf->tls.handshake_timeout);
        return 0;
    }
    c->tls_peeked = true; /* the handshake reads from here on */
    int rc = plain ? PT_TLS_PLAIN_HTTP : pt_tls_handshake(c->ssl, why, sizeof(why));
    if (rc == PT_TLS_OK) {
        pt_mx_add(mx_row(c), PT_MXW_L_TLS_HANDSHAKES, 1);
        c->state = PT_CS_HEAD;
        c->readable = true; /* the request may have come with the last flight */
        pt_conn_timer(c, PT_TM_NONE, -1);
        return 1;
    }
    if (rc == PT_TLS_WANT_READ || rc == PT_TLS_WANT_WRITE) {
        if (rc == PT_TLS_WANT_READ)
            c->readable = false;
        else
            c->writable = false;
        if (c->timer_kind != PT_TM_TLS) /* a deadline for the whole handshake */
            pt_conn_timer(c, PT_TM_TLS, c->acc->ls->conf->tls.handshake_timeout);
        return 0;
    }
    char peer[80];
    pt_conn_peer_name(c, peer, sizeof(peer));
    pt_mx_add(mx_row(c), PT_MXW_L_TLS_FAILURES, 1);
    if (rc == PT_TLS_PLAIN_HTTP) {
        static const char msg[] = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 41\r\n"
                                  "Connection: close\r\n\r\nThis port speaks HTTPS: use https:// here\n";
        ssize_t ignored = send(c->fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)ignored;
        pt_log_info("plain HTTP on TLS listener %s from %s: answered 400", c->acc->ls->name, peer);
        pt_tls_close(c->ssl);
        c->ssl = NULL;
        pt_conn_start_linger(c); /* read what the client still sends, so the 400 is not lost to a reset */
        return -1;
    }
    pt_log_info("TLS handshake with %s on %s failed: %s", peer, c->acc->ls->name, why);
    pt_conn_close(c);
    return -1;
}

/* ---- timers ---- */

void pt_conn_timer(pt_conn_t *c, int kind, int64_t ms)
{
    if (ms < 0) {
        if (c->timer_kind != PT_TM_NONE)
            evtimer_del(&c->timer);
        c->timer_kind = PT_TM_NONE;
        return;
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
    case PT_TM_TLS:
        pt_log_info("TLS handshake timed out on %s", c->acc->ls->name);
        pt_mx_add(mx_row(c), PT_MXW_L_TLS_FAILURES, 1);
        pt_conn_close(c);
        return;
    case PT_TM_LINGER:
        pt_conn_close(c);
        return;
    default:
        c->ops->timeout(c);
    }
}

/* ---- lingering closes ---- */

void pt_conn_start_linger(pt_conn_t *c)
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
    c->readable = true;
    /* what still comes is read into the stack and dropped: the buffers go back */
    ibuf_release(c);
    pt_outq_release(&c->out);
    if (!c->req)
        pt_arena_free(&c->arena);
    pt_conn_timer(c, PT_TM_LINGER, LINGER_MS);
    pt_conn_reschedule(c); /* what is already there raises no new edge */
}

void pt_conn_linger(pt_conn_t *c)
{
    if (!pt_outq_empty(&c->out) && c->writable)
        pt_conn_flush(c);
    pt_conn_drop_output(c);
    pt_conn_start_linger(c);
}

/* Reads away what the client still sends, until it closes. */
static void linger_step(pt_conn_t *c)
{
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
}

/* ---- events ---- */

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
    if (c->state == PT_CS_LINGER)
        linger_step(c);
    else
        c->ops->run(c);
}

/* A look at the socket without reading: an end or an error is eof. */
static bool peek_eof(pt_conn_t *c)
{
    char b;
    ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        c->eof = true;
    if (n < 0)
        c->readable = false; /* nothing there: the next edge says more */
    /* bytes waiting (a body sent after the head) stay readable: their
     * edge has passed, and whoever reads next must know of them */
    return c->eof;
}

bool pt_conn_gone(pt_conn_t *c)
{
    if (!c->rdhup && !c->eof && c->readable && !pt_conn_is_stream(c))
        peek_eof(c);
    return c->rdhup || c->eof;
}

bool pt_conn_reset_seen(pt_conn_t *c)
{
    if (c->eof && c->reset)
        return true;
    if (c->eof || !c->readable || pt_conn_is_stream(c) || c->ssl)
        return false;
    char b;
    ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == ECONNRESET || errno == EPIPE)) {
        c->eof = c->reset = true;
        return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        c->readable = false; /* nothing there: the next edge says more */
    return false; /* bytes (pipelined), or an end: a half-close is served */
}

bool pt_conn_peek_end(pt_conn_t *c)
{
    return c->eof || (!pt_conn_is_stream(c) && peek_eof(c));
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

void pt_conn_nodelay(pt_conn_t *c)
{
    if (c->nodelay || pt_conn_is_stream(c))
        return;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->nodelay = true;
}

/* ---- life ---- */

/* A connection and its buffers, gone for good. */
static void destroy(pt_conn_t *c)
{
    release_buffers(c);
    free(c);
}

/* A connection, zeroed, with no buffers yet (they come from the pool when
 * there is work): a closed one reused (no malloc) or a new one.  NULL
 * when out of memory. */
static pt_conn_t *alloc_conn(pt_worker_t *w, const pt_listener_conf_t *lc)
{
    pt_conn_t *c = w->spare;
    if (c) {
        w->spare = c->next;
        w->nspare--;
    } else if (!(c = malloc(sizeof(*c)))) {
        return NULL;
    }
    memset(c, 0, sizeof(*c));
    /* A request's working memory: its head may be copied twice (parsed
     * fields, the head forwarded upstream), so the bound follows the
     * listener's max_header_size (a 1m head got 500, not its answer). */
    size_t mhs = lc ? (size_t)lc->max_header_size : 32768, budget = 2 * mhs + 16 * 1024;
    pt_arena_init(&c->arena, PT_ARENA_BLOCK_CHUNK, budget > 64 * 1024 ? budget : 64 * 1024);
    c->magic = PT_CONN_MAGIC;
    return c;
}

void pt_conn_accept(pt_worker_t *w, pt_acceptor_t *a, int fd, const struct sockaddr_storage *peer)
{
    pt_conn_t *c = alloc_conn(w, a->ls->conf);
    if (!c) {
        close(fd);
        pt_log_error("out of memory accepting a connection");
        return;
    }
    c->fd = fd;
    c->w = w;
    c->acc = a;
    c->ops = a->ops;
    memcpy(&c->peer, peer, peer->ss_family == AF_INET6 ? sizeof(c->peer.in6) : sizeof(c->peer.in));
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
    pt_mx_add(mx_row(c), PT_MXW_L_ACCEPTED, 1);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    a->nconns++;
    c->ops->run(c);
}

pt_conn_t *pt_conn_stream(pt_conn_t *parent, const pt_conn_ops_t *ops)
{
    pt_worker_t *w = parent->w;
    pt_conn_t *c = alloc_conn(w, parent->acc->ls->conf);
    if (!c)
        return NULL;
    c->fd = -1;
    c->ssl = parent->ssl; /* for the TLS variables and X-Forwarded-Proto; never read or written */
    c->w = w;
    c->acc = parent->acc;
    c->ops = ops;
    c->peer = parent->peer;
    c->nodelay = true;
    c->writable = true;
    event_assign(&c->ev, w->base, -1, 0, on_event, c);
    evtimer_assign(&c->timer, w->base, on_timer, c);
    return c;
}

void pt_conn_drain(pt_conn_t *c)
{
    if (!c->dead)
        c->ops->drain(c);
}

void pt_conn_close(pt_conn_t *c)
{
    if (c->dead)
        return;
    c->dead = true;
    c->ops->closed(c); /* the protocol lets go of what it holds */
    event_del(&c->ev);
    evtimer_del(&c->timer);
    if (pt_conn_is_stream(c)) {
        c->ssl = NULL;
        c->next = c->w->dead;
        c->w->dead = c;
        pt_worker_schedule_reap(c->w);
        return;
    }
    pt_mx_add(mx_row(c), c->spoke_h2 ? PT_MXW_L_CLOSED_H2 : PT_MXW_L_CLOSED_H1, 1);
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
    if (w->nspare < SPARE_MAX && !w->draining) {
        release_buffers(c); /* kept for the next accept, without buffers (the pool has them) */
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
