/* Keep-alive pools, per worker and per target, and the life of an
 * upstream connection.  An idle pooled connection keeps its persistent
 * edge-triggered event: if it becomes readable while idle, the upstream
 * closed it (or sent garbage), and it is dropped from the pool before a
 * request can be written into it.  An edge that came while the connection
 * had an owner that did not read (its bytes still queued to a slow
 * client) does not come again, so the socket itself is asked, with a
 * non-blocking peek, when a connection enters the pool and when it leaves
 * it: bytes past the end of a response must never become the answer to
 * the next request.  The pool is LIFO, so the connection most likely to
 * be alive is reused first, and the rest age out. */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "portico/assert.h"
#include "portico/bufpool.h"
#include "portico/log.h"
#include "portico/metrics.h"
#include "portico/tls.h"
#include "portico/upstream.h"
#include "portico/worker.h"

static void pool_remove(pt_upconn_t *uc)
{
    pt_target_t *t = uc->t;
    for (pt_upconn_t **pp = &t->idle; *pp; pp = &(*pp)->next)
        if (*pp == uc) {
            *pp = uc->next;
            t->nidle--;
            uc->next = NULL;
            return;
        }
}

enum { IDLE_QUIET, IDLE_CLOSED, IDLE_DATA };

/* What an idle connection's socket holds: nothing (it may be reused), the
 * upstream's close, or bytes nobody asked for.  TLS: a session ticket or a
 * key update is fine (consumed here); data, an alert or the end is not. */
static int idle_state(pt_upconn_t *uc)
{
    char b[64];
    if (uc->ssl) {
        ssize_t r = pt_tls_read(uc->ssl, b, sizeof(b));
        return r == PT_TLS_WANT_READ ? IDLE_QUIET : r > 0 ? IDLE_DATA : IDLE_CLOSED;
    }
    ssize_t r = recv(uc->fd, b, sizeof(b), MSG_PEEK | MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return IDLE_QUIET;
    return r > 0 ? IDLE_DATA : IDLE_CLOSED;
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    pt_upconn_t *uc = arg;
    PT_CHECK_MAGIC(uc, PT_UPCONN_MAGIC);
    if (uc->dead)
        return;
    if (what & EV_READ)
        uc->readable = true;
    if (what & EV_WRITE)
        uc->writable = true;
    if (what & EV_CLOSED)
        uc->rdhup = uc->readable = true;
    if (uc->owner) {
        uc->on_io(uc->owner, uc);
        return;
    }
    if (what & (EV_READ | EV_CLOSED)) {
        /* Idle and readable: closed by the upstream, or it spoke out of turn. */
        int st = idle_state(uc);
        if (st == IDLE_QUIET) {
            uc->readable = false;
            return;
        }
        if (st == IDLE_DATA)
            pt_log_warn("upstream %s target %s sent bytes on an idle connection: closed", uc->up->conf->name,
                        uc->t->name);
        else
            pt_log_debug("pooled connection to %s closed by the upstream", uc->t->name);
        pt_upconn_close(uc);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    pt_upconn_t *uc = arg;
    PT_CHECK_MAGIC(uc, PT_UPCONN_MAGIC);
    if (uc->dead)
        return;
    if (uc->owner)
        uc->on_timeout(uc->owner, uc);
    else
        pt_upconn_close(uc); /* idle_timeout */
}

void pt_upconn_timer(pt_upconn_t *uc, int64_t ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(&uc->timer, &tv);
}

/* The TLS side of a new connection: SNI and verification by the tls.sni
 * name, else the target's host name, else its address. */
SSL *pt_upstream_tls_new(pt_upstream_t *u, pt_target_t *t, int fd)
{
    const pt_upstream_tls_t *tc = &u->conf->tls;
    char host[256], ip[INET6_ADDRSTRLEN];
    const char *name = tc->sni, *addr = NULL;
    if (!name && t->conf && !t->conf->addr.text) { /* given by host name */
        pt_value_host_port(t->conf->address, host, sizeof(host));
        name = host;
    }
    if (!name) {
        pt_addr_format_ip((const struct sockaddr *)&t->addr, ip, sizeof(ip));
        addr = ip;
    }
    return pt_tls_connect(tc->client, fd, name, addr, &t->tls_session);
}

int pt_upstream_socket(const pt_target_t *t)
{
    int fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&t->addr, t->addrlen) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

pt_upconn_t *pt_pool_connect(pt_worker_t *w, pt_upstream_t *u, pt_target_t *t)
{
    int fd = pt_upstream_socket(t);
    if (fd < 0)
        return NULL;
    pt_upconn_t *uc = calloc(1, sizeof(*uc));
    char *ibuf = uc ? pt_buf_get(PT_UPCONN_IBUF) : NULL;
    if (!ibuf) {
        free(uc);
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    uc->magic = PT_UPCONN_MAGIC;
    uc->fd = fd;
    uc->ssl = NULL;
    uc->w = w;
    uc->up = u;
    uc->t = t;
    uc->ibuf = ibuf;
    uc->icap = PT_UPCONN_IBUF;
    uc->connecting = true;
    if (u->conf->scheme == PT_SCHEME_HTTPS && !(uc->ssl = pt_upstream_tls_new(u, t, fd))) {
        free(uc);
        pt_buf_put(ibuf, PT_UPCONN_IBUF);
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    event_assign(&uc->ev, w->base, fd, EV_READ | EV_WRITE | EV_ET | EV_PERSIST | EV_CLOSED, on_event, uc);
    evtimer_assign(&uc->timer, w->base, on_timer, uc);
    event_add(&uc->ev, NULL);
    t->connects++;
    pt_mx_target_add(u, t, PT_MXW_T_CONNECTS, 1);
    w->nupconns++;
    return uc;
}

pt_upconn_t *pt_pool_acquire(pt_worker_t *w, pt_upstream_t *u, pt_target_t *t)
{
    pt_upconn_t *uc;
    while ((uc = t->idle)) {
        pool_remove(uc);
        evtimer_del(&uc->timer);
        int st = idle_state(uc);
        if (st != IDLE_QUIET) { /* its event has not run yet: it is not ours to write to */
            if (st == IDLE_DATA)
                pt_log_warn("upstream %s target %s sent bytes on an idle connection: closed", u->conf->name,
                            t->name);
            pt_upconn_close(uc);
            continue;
        }
        if (!(uc->ibuf = pt_buf_get(PT_UPCONN_IBUF))) { /* idle, it held none */
            pt_upconn_close(uc);
            errno = ENOMEM;
            return NULL;
        }
        uc->readable = false;
        uc->reused = true;
        t->reuses++;
        pt_mx_target_add(u, t, PT_MXW_T_REUSES, 1);
        return uc;
    }
    return pt_pool_connect(w, u, t);
}

void pt_pool_release(pt_upconn_t *uc, bool reusable)
{
    const pt_upstream_conf_t *conf = uc->up->conf;
    uc->owner = NULL;
    uc->requests++;
    if (!reusable || uc->eof || !pt_outq_empty(&uc->out) || (int64_t)uc->t->nidle >= conf->keepalive.size ||
        uc->requests >= (uint32_t)conf->keepalive.requests || uc->w->draining) {
        pt_upconn_close(uc);
        return;
    }
    /* Bytes past the end of the response, buffered or still in the
     * socket: a broken or hostile upstream, and never the next answer. */
    int st = uc->ipos != uc->ilen ? IDLE_DATA : idle_state(uc);
    if (st != IDLE_QUIET) {
        if (st == IDLE_DATA)
            pt_log_warn("upstream %s target %s sent more than its response: connection not reused",
                        conf->name, uc->t->name);
        pt_upconn_close(uc);
        return;
    }
    uc->readable = false;
    uc->ipos = uc->ilen = 0;
    /* idle: its buffers go back to the pool until it is taken again */
    pt_buf_put(uc->ibuf, PT_UPCONN_IBUF);
    uc->ibuf = NULL;
    pt_outq_release(&uc->out);
    uc->next = uc->t->idle;
    uc->t->idle = uc;
    uc->t->nidle++;
    pt_upconn_timer(uc, conf->keepalive.idle_timeout);
}

void pt_upconn_close(pt_upconn_t *uc)
{
    if (uc->dead)
        return;
    if (!uc->owner)
        pool_remove(uc);
    uc->dead = true;
    event_del(&uc->ev);
    evtimer_del(&uc->timer);
    pt_tls_close(uc->ssl);
    uc->ssl = NULL;
    close(uc->fd);
    uc->fd = -1;
    uc->owner = NULL;
    uc->next = uc->w->dead_up;
    uc->w->dead_up = uc;
    uc->w->nupconns--;
    pt_worker_schedule_reap(uc->w);
}

void pt_upconn_free(pt_upconn_t *uc)
{
    pt_outq_free(&uc->out);
    pt_buf_put(uc->ibuf, PT_UPCONN_IBUF);
    uc->magic = 0;
    free(uc);
}
