/* A worker process: one libevent loop, no threads, no locks. */
#ifndef PORTICO_WORKER_H
#define PORTICO_WORKER_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "portico/config-t.h"
#include "portico/listener.h"
#include "portico/status-t.h"

#define PT_WORKER_MAGIC 0x57524b52u

typedef struct pt_conn pt_conn_t;
typedef struct pt_conn_ops pt_conn_ops_t;
typedef struct pt_router pt_router_t;
typedef struct pt_upconn pt_upconn_t;
typedef struct pt_worker pt_worker_t;

typedef struct pt_acceptor {
    pt_worker_t *w;
    pt_lsock_t *ls;
    int fd;
    struct event ev;
    size_t nconns;
    bool paused;
    const pt_conn_ops_t *ops; /* the protocol its connections run */
} pt_acceptor_t;

struct pt_worker {
    unsigned magic;
    struct event_base *base;
    const pt_config_t *conf;
    pt_router_t *router;
    pt_lset_t *lset;
    int slot;
    uint32_t generation;
    int chan; /* to the master */
    pt_status_t *status;
    int board; /* its entry in status->workers, or -1 */
    int column; /* its column of the shared counters (column.h) */
    uid_t uid;
    gid_t gid;
    bool drop_privileges;

    pt_acceptor_t *acceptors;
    size_t nacceptors;
    pt_conn_t *conns; /* every open connection, for drain and stop */
    size_t nconns;
    pt_conn_t *dead;  /* closed, freed on the next loop iteration */
    pt_upconn_t *dead_up;
    size_t nupconns;
    struct pt_upstream *upstreams; /* one per configured upstream, same order */
    struct pt_prober *prober;      /* active health checks: slot 0 only */
    struct pt_resolver *resolver;  /* targets given by host name */
    struct pt_redis *redis;        /* the limits' Redis client, when the file has redis: */
    struct pt_tracer *tracer;      /* span export, when the file has tracing: */
    struct event reaper;
    bool reap_pending;
    pt_conn_t *spare; /* closed connections kept for reuse, with their buffers */
    size_t nspare;

    /* Out of descriptors (accept failed with EMFILE or ENFILE): every
     * acceptor stops until a connection closes or the timer fires, and an
     * episode is logged once when it starts and once when it ends. */
    struct {
        bool paused;        /* the acceptors are off for want of descriptors */
        bool active;        /* an episode is under way */
        uint64_t failures;  /* accept failures in this episode */
        uint64_t recent;    /* ... since the timer last fired */
        int64_t since_us;
        struct event timer;
    } nofd;

    bool draining;
    bool ready_told; /* 'R' sent */
    int exit_code;
    struct event sig_quit, sig_term, sig_int, sig_usr1, sig_hup, drain_timer;
    struct event heartbeat; /* proves to the master's watchdog that the loop turns */

    /* "Date: Thu, 26 Nov 2026 00:34:41 GMT\r\n", refreshed once a second */
    char date[48];
    time_t date_sec;
    uint64_t reqid_seed, reqid_seq;
};

/* Runs the worker until it is told to stop; returns the exit status.
 * Called in the child right after fork. */
int pt_worker_run(pt_worker_t *w);
/* The loop's cached clock (read once per loop iteration), in microseconds.
 * Inline: the proxy reads it a few times per request. */
static inline int64_t pt_worker_now_us(pt_worker_t *w)
{
    struct timeval tv;
    event_base_gettimeofday_cached(w->base, &tv);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}
/* The Date header line for now. */
const char *pt_worker_date(pt_worker_t *w);
/* Frees closed connections on the next loop iteration. */
void pt_worker_schedule_reap(pt_worker_t *w);
/* Tells the master the worker is ready, once (the resolver calls it when
 * its names settle after start). */
void pt_worker_ready(pt_worker_t *w);
/* A connection closed: bookkeeping, accept resume, drain completion. */
void pt_worker_conn_closed(pt_worker_t *w, pt_acceptor_t *a);

#endif
