/* Active health checks: the prober.  It runs in the first worker of the
 * current generation only (one prober per node, not one per worker), and
 * writes what it learns to the shared zone, where every worker's balancer
 * reads it.  A draining worker stops probing; its successor (a respawn or
 * the next generation's first worker) starts again, and the health state
 * itself, kept in the zone by address, is not lost on the way.
 *
 * A probe is one connection: connect, for scheme: https the TLS handshake
 * (verified like the proxy's), send a GET (type http), read the status
 * line, close.  A failed handshake counts as a TCP failure.  A failed connect, a reset or a reply that is not
 * HTTP counts as a TCP failure; no status line within `timeout` as a
 * timeout.  The next probe of a target is `healthy.interval` or
 * `unhealthy.interval` after the last one ended, by its state then. */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "portico/io.h"
#include "portico/log.h"
#include "portico/tls.h"
#include "portico/upstream.h"
#include "portico/worker.h"

#define LOOK_MS 1000 /* when the interval of a state is 0: look again this often */

typedef struct probe {
    pt_prober_t *pr;
    pt_upstream_t *u;
    size_t idx;
    int fd; /* -1 between probes */
    struct event ev, timer;
    SSL *ssl; /* scheme https */
    bool connected, tls_done, sent;
    char buf[64];
    size_t len;
    pt_streak_t streak;
} probe_t;

struct pt_prober {
    pt_worker_t *w;
    probe_t *v;
    size_t n;
};

static void arm(probe_t *pb, int64_t ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(&pb->timer, &tv);
}

static int64_t interval(const probe_t *pb)
{
    const pt_active_conf_t *a = &pb->u->conf->healthchecks.active;
    const pt_target_shared_t *s = pb->u->targets[pb->idx].shared;
    return s && atomic_load(&s->active_down) ? a->unhealthy.interval : a->healthy.interval;
}

static void end_probe(probe_t *pb, int status)
{
    if (pb->fd >= 0) {
        event_del(&pb->ev);
        pt_tls_close(pb->ssl);
        pb->ssl = NULL;
        close(pb->fd);
        pb->fd = -1;
    }
    evtimer_del(&pb->timer);
    pt_health_probed(pb->u, pb->idx, status, &pb->streak, pt_worker_now_us(pb->pr->w) / 1000);
    int64_t ms = interval(pb);
    arm(pb, ms ? ms : LOOK_MS);
}

/* "HTTP/1.x NNN": the status, or PT_PROBE_FAILED when it is not HTTP. */
static int status_of(const char *b, size_t n)
{
    if (n < 12 || memcmp(b, "HTTP/1.", 7) != 0 || (b[7] != '0' && b[7] != '1') || b[8] != ' ')
        return PT_PROBE_FAILED;
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (b[i] < '0' || b[i] > '9')
            return PT_PROBE_FAILED;
        st = st * 10 + (b[i] - '0');
    }
    return st >= 100 ? st : PT_PROBE_FAILED;
}

static int send_request(probe_t *pb)
{
    const pt_active_conf_t *a = &pb->u->conf->healthchecks.active;
    const pt_target_t *t = &pb->u->targets[pb->idx];
    const char *host = a->host ? a->host : t->conf ? t->conf->address : t->name;
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: portico/" PACKAGE_VERSION
                     " health-check\r\nConnection: close\r\n\r\n",
                     a->http_path, host);
    if (n < 0 || (size_t)n >= sizeof(req))
        return -1;
    /* small enough for any socket buffer: one send or a failure */
    if (pb->ssl)
        return pt_tls_write(pb->ssl, req, (size_t)n) == n ? 0 : -1;
    return send(pb->fd, req, (size_t)n, MSG_NOSIGNAL) == n ? 0 : -1;
}

/* Waits for what (EV_READ or EV_WRITE) on the probe's socket. */
static void wait_for(probe_t *pb, short what);

/* Connected: the TLS handshake (https), then the request.  false when the
 * probe ended or waits. */
static bool start_exchange(probe_t *pb)
{
    if (pb->ssl && !pb->tls_done) {
        char why[160];
        int rc = pt_tls_handshake(pb->ssl, why, sizeof(why));
        if (rc == PT_TLS_WANT_READ || rc == PT_TLS_WANT_WRITE) {
            wait_for(pb, rc == PT_TLS_WANT_READ ? EV_READ : EV_WRITE);
            return false;
        }
        if (rc != PT_TLS_OK) {
            end_probe(pb, PT_PROBE_FAILED);
            return false;
        }
        pb->tls_done = true;
    }
    if (!pb->sent) {
        if (send_request(pb) < 0) {
            end_probe(pb, PT_PROBE_FAILED);
            return false;
        }
        pb->sent = true;
        wait_for(pb, EV_READ);
    }
    return true;
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
    probe_t *pb = arg;
    if (!pb->connected) {
        if (!(what & EV_WRITE))
            return;
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
            end_probe(pb, PT_PROBE_FAILED);
            return;
        }
        pb->connected = true;
        if (pb->u->conf->healthchecks.active.type == PT_PROBE_TCP) {
            end_probe(pb, 0);
            return;
        }
        if (pb->u->conf->scheme == PT_SCHEME_HTTPS &&
            !(pb->ssl = pt_upstream_tls_new(pb->u, &pb->u->targets[pb->idx], fd))) {
            end_probe(pb, PT_PROBE_FAILED);
            return;
        }
    }
    if (!pb->sent || (pb->ssl && !pb->tls_done)) {
        start_exchange(pb);
        return;
    }
    for (bool readable = true; readable;) { /* level-triggered: what is left comes with the next event */
        size_t got;
        bool eof = false;
        pt_io_read(fd, pb->ssl, pb->buf + pb->len, sizeof(pb->buf) - pb->len, &got, true, &readable, &eof);
        pb->len += got;
        if (eof || pb->len >= 12) { /* the end (or an error) decides as much as a status line */
            end_probe(pb, status_of(pb->buf, pb->len));
            return;
        }
    }
}

static void wait_for(probe_t *pb, short what)
{
    event_del(&pb->ev);
    event_assign(&pb->ev, pb->pr->w->base, pb->fd, what | EV_PERSIST, on_io, pb);
    event_add(&pb->ev, NULL);
}

static void start_probe(probe_t *pb)
{
    const pt_target_t *t = &pb->u->targets[pb->idx];
    pb->connected = pb->tls_done = pb->sent = false;
    pb->len = 0;
    pb->fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (pb->fd < 0) {
        pt_log_error("health check of %s: socket: %s", t->name, strerror(errno));
        end_probe(pb, PT_PROBE_FAILED);
        return;
    }
    if (connect(pb->fd, (const struct sockaddr *)&t->addr, t->addrlen) < 0 && errno != EINPROGRESS) {
        end_probe(pb, PT_PROBE_FAILED);
        return;
    }
    event_assign(&pb->ev, pb->pr->w->base, pb->fd, EV_WRITE | EV_PERSIST, on_io, pb);
    event_add(&pb->ev, NULL);
    arm(pb, pb->u->conf->healthchecks.active.timeout);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    probe_t *pb = arg;
    if (pb->fd >= 0)
        end_probe(pb, PT_PROBE_TIMEOUT);
    else if (!interval(pb))
        arm(pb, LOOK_MS); /* not probed in this state */
    else if (pb->u->targets[pb->idx].addrlen)
        start_probe(pb);
    else
        arm(pb, LOOK_MS); /* not resolved yet */
}

pt_prober_t *pt_prober_start(pt_worker_t *w)
{
    size_t n = 0;
    for (size_t i = 0; i < w->conf->upstreams.n; i++)
        if (w->upstreams[i].active)
            n += w->upstreams[i].ntargets;
    if (!n)
        return NULL;
    pt_prober_t *pr = calloc(1, sizeof(*pr));
    probe_t *v = calloc(n, sizeof(*v));
    if (!pr || !v) {
        free(pr);
        free(v);
        pt_log_error("cannot start the health checks: out of memory");
        return NULL;
    }
    pr->w = w;
    pr->v = v;
    for (size_t i = 0; i < w->conf->upstreams.n; i++) {
        pt_upstream_t *u = &w->upstreams[i];
        for (size_t k = 0; u->active && k < u->ntargets; k++) {
            probe_t *pb = &v[pr->n++];
            *pb = (probe_t){.pr = pr, .u = u, .idx = k, .fd = -1, .streak = {.kind = -1}};
            if (u->targets[k].shared)
                pb->streak.seen_down = atomic_load(&u->targets[k].shared->active_down);
            evtimer_assign(&pb->timer, w->base, on_timer, pb);
            arm(pb, 0);
        }
    }
    pt_log_info("health checks: probing %zu targets", pr->n);
    return pr;
}

void pt_prober_stop(pt_prober_t *pr)
{
    if (!pr)
        return;
    for (size_t i = 0; i < pr->n; i++) {
        probe_t *pb = &pr->v[i];
        if (pb->fd >= 0) {
            event_del(&pb->ev);
            pt_tls_close(pb->ssl);
            close(pb->fd);
        }
        evtimer_del(&pb->timer);
    }
    free(pr->v);
    free(pr);
}
