/* A worker: after fork it drops privileges, builds its own event loop over
 * the sockets of its slot, and serves until told to stop.  Messages to the
 * master are single bytes on the channel: 'R' ready, 'D' draining. */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <grp.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "portico/accesslog.h"
#include "portico/assert.h"
#include "portico/bufpool.h"
#include "portico/conn.h"
#include "portico/h1_server.h"
#include "portico/grpc.h"
#include "portico/h2_mem.h"
#include "portico/limit_filter.h"
#include "portico/log.h"
#include "portico/privileges.h"
#include "portico/trace.h"
#include "portico/upstream.h"
#include "portico/worker.h"

static void tell_master(pt_worker_t *w, char msg)
{
    if (w->chan >= 0 && send(w->chan, &msg, 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        pt_log_warn("cannot tell the master '%c': %s", msg, strerror(errno));
}

const char *pt_worker_date(pt_worker_t *w)
{
    struct timeval tv;
    event_base_gettimeofday_cached(w->base, &tv);
    if (tv.tv_sec != w->date_sec) {
        struct tm tm;
        w->date_sec = tv.tv_sec;
        gmtime_r(&w->date_sec, &tm);
        strftime(w->date, sizeof(w->date), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    }
    return w->date;
}

/* An acceptor listens once the worker is ready (its targets' names
 * settled: pt_worker_ready), unless max_connections paused it,
 * descriptors ran out, or the worker drains. */
static void arm(pt_acceptor_t *a)
{
    if (a->w->ready_told && !a->paused && !a->w->nofd.paused && !a->w->draining)
        event_add(&a->ev, NULL);
}

#define NOFD_RETRY_MS 500 /* nginx's accept_mutex_delay */

static void nofd_retry_later(pt_worker_t *w)
{
    struct timeval tv = {0, NOFD_RETRY_MS * 1000};
    evtimer_add(&w->nofd.timer, &tv);
}

static void nofd_resume(pt_worker_t *w)
{
    if (!w->nofd.paused)
        return;
    w->nofd.paused = false;
    for (size_t i = 0; i < w->nacceptors; i++)
        arm(&w->acceptors[i]);
}

/* Every NOFD_RETRY_MS of an episode: accept again; a period without a
 * failure ends the episode.  Ending it on the first accept that works
 * instead would log two lines per closed connection while the worker
 * stays at its limit. */
static void on_nofd_timer(evutil_socket_t fd, short what, void *arg)
{
    pt_worker_t *w = arg;
    PT_CHECK_MAGIC(w, PT_WORKER_MAGIC);
    if (w->nofd.recent && !w->draining) {
        w->nofd.recent = 0;
        nofd_resume(w);
        nofd_retry_later(w);
        return;
    }
    double s = (double)(pt_worker_now_us(w) - w->nofd.since_us) / 1e6;
    pt_log_warn("%s: %llu accept failure%s for want of descriptors in %.1f s",
                w->draining ? "draining" : "accepting again", (unsigned long long)w->nofd.failures,
                w->nofd.failures == 1 ? "" : "s", s);
    w->nofd.active = false;
    w->nofd.paused = false;
}

/* accept(2) failed for want of descriptors or memory: the connection stays
 * queued and the level-triggered listener would wake the loop again at
 * once (a spinning worker, an error line per try).  Stop every acceptor
 * (any accept would fail the same way) until a connection closes or the
 * timer fires, as nginx does. */
static void nofd_pause(pt_acceptor_t *a, int err)
{
    pt_worker_t *w = a->w;
    w->nofd.failures++;
    w->nofd.recent++;
    if (!w->nofd.active) {
        char limit[96] = "the system-wide limit, fs.file-max";
        struct rlimit rl;
        if (err == EMFILE && getrlimit(RLIMIT_NOFILE, &rl) == 0)
            snprintf(limit, sizeof(limit), "RLIMIT_NOFILE %llu", (unsigned long long)rl.rlim_cur);
        else if (err != ENFILE)
            snprintf(limit, sizeof(limit), "out of kernel memory");
        pt_log_error("accept on %s: %s (%s): accepting paused on every listener, tried again every %d ms and "
                     "when a connection closes",
                     a->ls->name, strerror(err), limit, NOFD_RETRY_MS);
        w->nofd.active = true;
        w->nofd.failures = w->nofd.recent = 1;
        w->nofd.since_us = pt_worker_now_us(w);
        nofd_retry_later(w);
    }
    if (!w->nofd.paused) {
        w->nofd.paused = true;
        for (size_t i = 0; i < w->nacceptors; i++)
            event_del(&w->acceptors[i].ev);
    }
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    pt_acceptor_t *a = arg;
    pt_worker_t *w = a->w;
    PT_CHECK_MAGIC(w, PT_WORKER_MAGIC);
    for (int i = 0; i < 64 && !w->draining; i++) {
        if (a->ls->conf && a->nconns >= (size_t)a->ls->conf->max_connections) {
            event_del(&a->ev);
            a->paused = true;
            pt_log_warn("listener %s: %zu connections, the per-worker limit: accepting paused", a->ls->name,
                        a->nconns);
            return;
        }
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        int cfd = accept4(fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                nofd_pause(a, errno);
            else if (errno != EAGAIN && errno != EWOULDBLOCK)
                pt_log_error("accept on %s: %s", a->ls->name, strerror(errno));
            return;
        }
        pt_conn_accept(w, a, cfd, &peer);
    }
}

static void maybe_exit(pt_worker_t *w)
{
    if (w->draining && w->nconns == 0)
        event_base_loopexit(w->base, NULL);
}

void pt_worker_ready(pt_worker_t *w)
{
    if (w->ready_told)
        return;
    w->ready_told = true;
    for (size_t i = 0; i < w->nacceptors; i++)
        arm(&w->acceptors[i]);
    tell_master(w, 'R');
}

void pt_worker_conn_closed(pt_worker_t *w, pt_acceptor_t *a)
{
    a->nconns--;
    if (a->paused && !w->draining) {
        a->paused = false;
        arm(a);
    }
    nofd_resume(w); /* a descriptor is free again */
    pt_worker_schedule_reap(w);
    maybe_exit(w);
}

void pt_worker_schedule_reap(pt_worker_t *w)
{
    /* Activated, not a zero timer: it runs after the current callbacks in
     * this same loop iteration, without another epoll_wait. */
    if (!w->reap_pending) {
        w->reap_pending = true;
        event_active(&w->reaper, EV_TIMEOUT, 0);
    }
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    pt_worker_t *w = arg;
    w->reap_pending = false;
    while (w->dead) {
        pt_conn_t *c = w->dead;
        w->dead = c->next;
        pt_conn_free(c);
    }
    while (w->dead_up) {
        pt_upconn_t *uc = w->dead_up;
        w->dead_up = uc->next;
        pt_upconn_free(uc);
    }
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    pt_worker_t *w = arg;
    if (w->nconns)
        pt_log_warn("shutdown_timeout passed with %zu connections still open: closing them", w->nconns);
    while (w->conns)
        pt_conn_close(w->conns);
    event_base_loopexit(w->base, NULL);
}

static void start_drain(pt_worker_t *w)
{
    if (w->draining)
        return;
    w->draining = true;
    pt_prober_stop(w->prober); /* the next generation's first worker probes */
    w->prober = NULL;
    for (size_t i = 0; i < w->nacceptors; i++)
        if (!w->acceptors[i].paused)
            event_del(&w->acceptors[i].ev);
    tell_master(w, 'D');
    pt_log_info("draining %zu connections", w->nconns);
    for (pt_conn_t *c = w->conns, *next; c; c = next) {
        next = c->next;
        pt_conn_drain(c);
    }
    int64_t ms = w->conf->shutdown_timeout;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_assign(&w->drain_timer, w->base, on_drain_timeout, w);
    evtimer_add(&w->drain_timer, &tv);
    maybe_exit(w);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    pt_worker_t *w = arg;
    switch (sig) {
    case SIGQUIT:
        start_drain(w);
        break;
    case SIGTERM:
    case SIGINT:
        w->draining = true;
        while (w->conns)
            pt_conn_close(w->conns);
        event_base_loopexit(w->base, NULL);
        break;
    case SIGUSR1: {
        int rc = pt_log_reopen(), arc = pt_accesslog_reopen();
        if (rc < 0)
            pt_log_error("cannot reopen the error log: %s", strerror(-rc));
        if (arc < 0)
            pt_log_error("cannot reopen the access log %s: %s", w->conf->access_log.path, strerror(-arc));
        if (rc == 0 && arc == 0)
            pt_log_notice("logs reopened"); /* in the new file: says this worker writes there */
        break;
    }
    default:
        break; /* SIGHUP goes to the master only */
    }
}

/* The heartbeat is a timer of the loop, not a thread or a signal: it stops
 * when the loop stops turning, which is what the master's watchdog is
 * for.  It is CLOCK_MONOTONIC, the master's clock; the loop's cached time
 * is the wall clock, which may jump. */
static void beat(pt_worker_t *w)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    __atomic_store_n(&w->status->workers[w->board].heartbeat_ms, ms, __ATOMIC_RELAXED);
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    pt_worker_t *w = arg;
    PT_CHECK_MAGIC(w, PT_WORKER_MAGIC);
    beat(w);
    pt_buf_trim(); /* what a burst of connections took goes back to the system */
    size_t pages = pt_h2_mem_trim(pt_worker_now_us(w) / 1000); /* and what idle HTTP/2 sessions hold */
    pt_buf_stats_t bs;
    pt_buf_stats(&bs);
    pt_status_worker_t *sw = &w->status->workers[w->board];
    __atomic_store_n(&sw->bufs_small, (uint32_t)bs.small_out, __ATOMIC_RELAXED);
    __atomic_store_n(&sw->bufs_large, (uint32_t)bs.large_out, __ATOMIC_RELAXED);
    __atomic_store_n(&sw->bufs_small_free, (uint32_t)bs.small_free, __ATOMIC_RELAXED);
    __atomic_store_n(&sw->bufs_large_free, (uint32_t)bs.large_free, __ATOMIC_RELAXED);
    __atomic_add_fetch(&sw->h2_idle_pages, (uint32_t)pages, __ATOMIC_RELAXED);
    if (w->redis) { /* for /status: is this worker counting locally for want of Redis? */
        pt_redis_stats_t st;
        pt_redis_stats(w->redis, &st);
        __atomic_store_n(&w->status->workers[w->board].redis_fallback, st.fallback, __ATOMIC_RELAXED);
    }
}

/* Every third of the watchdog, so that a beat or two may come late (a
 * long callback) before it fires; at most a second apart, also when the
 * watchdog is off, for /status; never under 100 ms. */
static void start_heartbeat(pt_worker_t *w)
{
    if (w->board < 0)
        return; /* no entry on the board: nobody to tell */
    int64_t ms = w->conf->worker_watchdog / 3;
    ms = ms <= 0 || ms > 1000 ? 1000 : ms < 100 ? 100 : ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_assign(&w->heartbeat, w->base, -1, EV_PERSIST, on_heartbeat, w);
    evtimer_add(&w->heartbeat, &tv);
    beat(w);
}

static int setup(pt_worker_t *w)
{
    struct event_config *cfg = event_config_new();
    if (!cfg)
        return -1;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    w->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (!w->base)
        return -1;
    w->acceptors = calloc(w->lset->n ? w->lset->n : 1, sizeof(pt_acceptor_t));
    if (!w->acceptors)
        return -1;
    for (size_t i = 0; i < w->lset->n; i++) {
        pt_acceptor_t *a = &w->acceptors[w->nacceptors++];
        a->w = w;
        a->ls = &w->lset->v[i];
        a->ops = &pt_h1_server_ops; /* every listener speaks HTTP (HTTP/2 by ALPN or preface) */
        a->fd = a->ls->fds[w->slot];
        event_assign(&a->ev, w->base, a->fd, EV_READ | EV_PERSIST, on_accept, a); /* armed once ready */
    }
    event_assign(&w->reaper, w->base, -1, 0, on_reap, w);
    evtimer_assign(&w->nofd.timer, w->base, on_nofd_timer, w);
    struct {
        struct event *ev;
        int sig;
    } sigs[] = {{&w->sig_quit, SIGQUIT}, {&w->sig_term, SIGTERM}, {&w->sig_int, SIGINT},
                {&w->sig_usr1, SIGUSR1}, {&w->sig_hup, SIGHUP}};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        evsignal_assign(sigs[i].ev, w->base, sigs[i].sig, on_signal, w);
        evsignal_add(sigs[i].ev, NULL);
    }
    uint64_t *lost = w->board >= 0 ? &w->status->workers[w->board].access_log_lost : NULL;
    int rc = pt_accesslog_start(w->base, &w->conf->access_log, w->conf->admin.access_log, lost);
    if (rc < 0) {
        pt_log_crit("cannot open the access log %s%s%s: %s", w->conf->access_log.path ? w->conf->access_log.path : "",
                    w->conf->access_log.path && w->conf->admin.access_log ? " or " : "",
                    w->conf->admin.access_log ? w->conf->admin.access_log : "", strerror(-rc));
        return -1;
    }
    if (w->conf->redis.node) { /* the limits with policy redis; connects in the background */
        if (!(w->redis = pt_redis_new(w->base, &w->conf->redis)))
            return -1;
        pt_limit_redis_set(w->redis);
    }
    start_heartbeat(w);
    w->resolver = pt_resolver_start(w);
    if (w->slot == 0)
        w->prober = pt_prober_start(w);
    if (w->conf->tracing.node)
        w->tracer = pt_tracer_start(w);
    if (RAND_bytes((unsigned char *)&w->reqid_seed, sizeof(w->reqid_seed)) != 1)
        w->reqid_seed = (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL);
    return 0;
}

static void teardown(pt_worker_t *w)
{
    /* no more accepts: a client knocking while the spans are flushed below
     * would leave the listening socket readable, and the loop spinning */
    for (size_t i = 0; i < w->nacceptors; i++)
        event_del(&w->acceptors[i].ev);
    while (w->conns)
        pt_conn_close(w->conns);
    /* the spans it holds go out before the pools close (bounded) */
    pt_tracer_stop(w->tracer, w->conf->tracing.timeout < 3000 ? w->conf->tracing.timeout : 3000);
    w->tracer = NULL;
    pt_limit_redis_set(NULL); /* after the requests that may have waited for it */
    pt_redis_free(w->redis);
    w->redis = NULL;
    pt_prober_stop(w->prober);
    w->prober = NULL;
    pt_resolver_stop(w->resolver);
    w->resolver = NULL;
    for (size_t i = 0; i < w->conf->upstreams.n; i++)
        for (size_t k = 0; k < w->upstreams[i].ntargets; k++) {
            while (w->upstreams[i].targets[k].idle)
                pt_upconn_close(w->upstreams[i].targets[k].idle);
            pt_grpc_close_target(&w->upstreams[i].targets[k]);
        }
    on_reap(-1, 0, w);
    pt_accesslog_stop();
    struct event *evs[] = {&w->sig_quit, &w->sig_term, &w->sig_int, &w->sig_usr1, &w->sig_hup};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        event_del(evs[i]);
    for (size_t i = 0; i < w->nacceptors; i++)
        event_del(&w->acceptors[i].ev);
    if (event_initialized(&w->drain_timer))
        evtimer_del(&w->drain_timer);
    if (event_initialized(&w->heartbeat))
        evtimer_del(&w->heartbeat);
    event_del(&w->reaper);
    evtimer_del(&w->nofd.timer);
    pt_conn_pool_drain(w);
    free(w->acceptors);
    /* a Redis host name still resolving ends on later turns (redis.h) */
    event_base_loop(w->base, EVLOOP_NONBLOCK);
    event_base_loop(w->base, EVLOOP_NONBLOCK);
    event_base_free(w->base);
    pt_buf_free_all(); /* the pool's free blocks: every connection is gone */
}

int pt_worker_run(pt_worker_t *w)
{
    char role[32];
    snprintf(role, sizeof(role), "worker %d", w->slot);
    pt_log_set_role(role);
    /* If the master dies, stop gracefully rather than serve unsupervised. */
    prctl(PR_SET_PDEATHSIG, SIGQUIT);
    pt_lset_keep_slot(w->lset, w->slot);
    if (pt_drop_privileges(w->drop_privileges, w->conf->user, w->uid, w->gid) < 0 || setup(w) < 0) {
        pt_log_crit("worker failed to start");
        return 2;
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (getppid() == 1) /* the master died before we could ask for PDEATHSIG */
        return 1;
    if (!w->resolver || pt_resolver_settled(w->resolver))
        pt_worker_ready(w);
    event_base_dispatch(w->base);
    teardown(w);
    return w->exit_code;
}
