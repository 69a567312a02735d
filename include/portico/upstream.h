/* Upstreams at run time, per worker: targets with their balancer state
 * and keep-alive pools, and the connections to them. */
#ifndef PORTICO_UPSTREAM_H
#define PORTICO_UPSTREAM_H

#include <event2/event_struct.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "portico/bufpool.h"
#include "portico/config-t.h"
#include "portico/outq.h"
#include "portico/str.h"

#define PT_UPCONN_MAGIC 0x5550434eu
#define PT_UPCONN_IBUF PT_BUF_LARGE /* from the pool (bufpool.h), held only while in use */

typedef struct pt_worker pt_worker_t;
typedef struct pt_upconn pt_upconn_t;
typedef struct pt_zone pt_zone_t;

/* Per-target state shared by every worker, in the "upstream-targets" zone,
 * keyed by address so that it survives reloads and edits to target lists.
 * `inflight` is the sum of the columns; each process adds to its own column
 * too, so the master can take back the share of a worker that died.
 *
 * A slot is in use while a worker points a target to it (its bit in
 * `users`, by column) or the current configuration names its address
 * (`pinned`); both change under the zone's lock.  One in use by neither
 * is freed when its last user moves on (a name that resolves elsewhere)
 * or once an old generation is gone, and may be taken over when the zone
 * is full: so the addresses a name goes through do not fill the zone.
 *
 * Columns: one per live worker (column.h), PT_SHARED_COLUMNS of them, two
 * generations of the most workers (256); 32 bits each, since they count
 * one worker's attempts under way on one target. */
#define PT_SHARED_COLUMNS 512
typedef struct pt_target_shared {
    char addr[80]; /* "" or freed (zone.h): a free slot */
    _Atomic uint64_t users[PT_SHARED_COLUMNS / 64]; /* bit c: the worker of column c */
    int32_t pinned; /* named by the current configuration; under the lock */
    _Atomic int64_t inflight;
    /* passive health: failures in a row, and when a down target comes back */
    _Atomic int32_t http_failures, tcp_failures, timeouts;
    _Atomic int64_t down_until_ms; /* 0: up */
    _Atomic int64_t up_since_ms;   /* for slow start */
    /* active health: 1 while down (set by the prober, or by passive checks
     * when the upstream has active ones: then only probes bring it back) */
    _Atomic int32_t active_down;
    _Atomic int32_t last_probe_status; /* 0: none yet; -1 connect failed; -2 timeout */
    /* counters, for /status */
    _Atomic uint64_t probes_ok, probes_failed, passive_failures, marked_down;
    /* a target added through the admin API has no row in the metrics zone:
     * its PT_MXW_T_* counters (metrics.h) are kept here */
    _Atomic uint64_t mx[6];
    _Atomic int32_t column[PT_SHARED_COLUMNS];
} pt_target_shared_t;
_Static_assert(offsetof(pt_target_shared_t, addr) == 0, "pt_zone_slot keys come first");

typedef struct pt_target {
    const pt_target_conf_t *conf;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char name[80]; /* "10.0.0.1:8080", for logs */
    char *log_name; /* name with ${NAME} values masked, for the access log; NULL: name */
    int64_t weight, current; /* smooth weighted round robin */
    int64_t inflight;        /* attempts under way, in this worker */
    pt_target_shared_t *shared; /* the same across workers, or NULL */
    double ewma_us;          /* peak-EWMA of response times, for `latency` */
    int64_t ewma_at_us;      /* when it was last updated */
    pt_upconn_t *idle;       /* the keep-alive pool, most recently used first */
    size_t nidle;
    struct ssl_session_st *tls_session; /* scheme https: offered on the next connect */
    void *grpc_conns;        /* scheme grpc(s): this worker's HTTP/2 connections (grpc.c) */
    uint64_t connects, reuses;
    /* run-time changes (runtime.c): the weight in force (the file's or the
     * admin API's; slow start ramps t->weight up to it), the state, and
     * whether the admin API added it (conf is NULL then) */
    int64_t full_weight;
    int rt_state; /* enum pt_rt_state */
    bool rt_added;
} pt_target_t;

/* A target's state set through the admin API.  DRAIN and DOWN take no new
 * attempts (DOWN also closes its idle connections); REMOVED is a target
 * the API deleted, kept while attempts on it are under way; FREE a slot
 * for targets added at run time, unused. */
enum pt_rt_state { PT_RT_UP, PT_RT_DRAIN, PT_RT_DOWN, PT_RT_REMOVED, PT_RT_FREE };
/* Targets the admin API may add to one upstream; and the slots beyond
 * them a worker has for deleted ones that still have attempts under way
 * (when those are taken too, an addition waits for one to end). */
#define PT_RT_MAX_ADDED 32
#define PT_RT_SPARE_SLOTS 8

typedef struct pt_ring_point {
    uint64_t hash;
    uint32_t target;
} pt_ring_point_t;

typedef struct pt_upstream {
    const pt_upstream_conf_t *conf;
    pt_target_t *targets;
    size_t ntargets;        /* in use: the file's, then those added at run
                             * time; grows (never past cap), never shrinks,
                             * so that indexes held by attempts stay valid */
    size_t cap;             /* room in targets[]: size per-target arrays by it */
    size_t nconf;           /* the file's targets: targets[0..nconf) */
    size_t rt_excluded;     /* targets no new attempt may go to (run-time state) */
    uint64_t rt_seen;       /* the run-time changes' version last applied */
    uint64_t rt_digest;     /* of this upstream's entries then: a change elsewhere rebuilds nothing here */
    struct pt_upstream *all; /* the worker's upstreams (this one among them) */
    size_t nall;
    int kind;               /* enum pt_balancer_kind */
    pt_ring_point_t *ring;  /* consistent-hashing: sorted by hash */
    size_t nring;
    uint64_t rng;           /* xorshift state for the random choices */
    int column;             /* this process's column in pt_target_shared_t */
    bool passive;           /* a passive-health threshold is set: responses
                             * are reported to the shared health state */
    bool active;            /* healthchecks.active is set */
    size_t unresolved;      /* targets whose host name has no address yet */
    pt_zone_t *zone;        /* where the shared target slots are, or NULL */
    struct pt_budget {      /* this worker's requests and retries, by second */
        int64_t sec;
        uint32_t requests[10], retries[10];
        uint64_t retried, refused;
    } budget;
} pt_upstream_t;

/* What a pick may look at: the hash key (consistent-hashing) and the time. */
typedef struct pt_pick_ctx {
    pt_str_t key;
    int64_t now_us; /* 0: health is not looked at */
} pt_pick_ctx_t;

/* Called on an upstream connection's events while it serves a request. */
typedef void (*pt_upconn_fn)(void *owner, pt_upconn_t *uc);

struct pt_upconn {
    unsigned magic;
    int fd;
    struct event ev, timer;
    pt_worker_t *w;
    pt_upstream_t *up;
    pt_target_t *t;
    void *owner; /* NULL while idle in the pool */
    pt_upconn_fn on_io, on_timeout;
    char *ibuf; /* NULL while idle in the pool */
    size_t ipos, ilen, icap;
    pt_outq_t out;
    bool readable, writable, eof;
    bool reset; /* the end (eof) was an error: a reset, a TLS failure */
    bool rdhup; /* the peer shut its side: read on to the EOF */
    bool connecting; /* until connected, and for https until the handshake is done */
    bool tcp_up;     /* connected (the TLS handshake may still be under way) */
    struct ssl_st *ssl; /* scheme https */
    bool reused; /* taken from the pool */
    bool dead;
    uint32_t requests;
    pt_upconn_t *next; /* in the pool, or in the worker's list of dead ones */
};

/* Builds the worker's upstreams (one per c->upstreams item, same order),
 * their targets bound to their slots in the shared zone z (may be NULL)
 * as the worker of `column`.  NULL when out of memory. */
pt_upstream_t *pt_upstreams_build(const pt_config_t *c, pt_zone_t *z, int column);
/* In the master: the shared zone for c's targets, sized from c, the slots
 * of the addresses c names claimed and pinned (those of the last
 * configuration unpinned).  A zone of the same size is kept; a new one
 * (another size) gets the health of every address still in use in the
 * one it replaces.  NULL with errno when it cannot be mapped. */
pt_zone_t *pt_upstreams_zone(const pt_config_t *c);
/* In the master, when the worker of `column` died: take back what its
 * column held, and its claims on slots. */
void pt_upstreams_forget_column(pt_zone_t *z, int column);
/* In the master, once no worker of an older generation is left: frees the
 * slots of z that no worker uses and the configuration does not name. */
void pt_upstreams_tidy(pt_zone_t *z);
/* The shared slot of an address in z, or NULL. */
pt_target_shared_t *pt_upstreams_slot(pt_zone_t *z, const char *addr, bool claim);
void pt_upstreams_free(pt_upstream_t *u, size_t n);
/* Worker w's run-time state of the configured upstream uc. */
pt_upstream_t *pt_worker_upstream(pt_worker_t *w, const pt_upstream_conf_t *uc);
/* Target t of u (upstreams of worker w) resolves to sa: when that is a new
 * address, the target moves to its shared slot (leaving the old one, freed
 * when no worker uses it any more) and drops its idle connections; returns
 * whether it moved.  The same address again binds a target that found the
 * zone full to its slot, if there is room now. */
bool pt_upstreams_readdress(pt_worker_t *w, pt_upstream_t *u, pt_target_t *t, const struct sockaddr *sa,
                            socklen_t len);

/* A target added at run time (runtime.c) leaves its address: its idle
 * connections closed, its shared slot left; the slot is free for another.
 * Only with no attempt under way on it.  pt_upstreams_readdress() gives
 * such a slot its address (t->rt_added set: named as given). */
void pt_upstreams_unbind(pt_upstream_t *u, pt_target_t *t);

/* Asynchronous DNS (evdns) in each worker: every target given by host
 * name is resolved at start and again when its answer expires. */
typedef struct pt_resolver pt_resolver_t;
pt_resolver_t *pt_resolver_start(pt_worker_t *w);
void pt_resolver_stop(pt_resolver_t *r);
/* Has every name had its first outcome: an address, or (in the first
 * generation only) a failure?  A worker says it is ready only then, so a
 * reload's new workers do not serve before their targets have addresses
 * (the old generation serves meanwhile, within reload_timeout).  When it
 * becomes true later, pt_worker_ready() is called. */
bool pt_resolver_settled(const pt_resolver_t *r);

/* Prepares the balancer of u (the consistent-hashing ring). 0 or -1. */
int pt_balancer_init(pt_upstream_t *u);
/* (Re)builds the consistent-hashing ring of u from its targets' weights
 * (nothing for the other balancers).  0 or -1 (out of memory). */
int pt_balancer_ring(pt_upstream_t *u);
/* Chooses a target with u's balancer, avoiding those marked in tried[] when
 * another exists.  ctx may be NULL.  Returns its index. */
size_t pt_balancer_pick(pt_upstream_t *u, const bool *tried, const pt_pick_ctx_t *ctx);
#define PT_PICK_NONE ((size_t)-1) /* every target is down and when_all_down is fail */

/* What an attempt on a target came to, for passive health. */
enum pt_outcome { PT_OUT_OK, PT_OUT_HTTP_FAIL, PT_OUT_TCP_FAIL, PT_OUT_TIMEOUT };
/* Records it; marks the target down (and logs it, once across workers)
 * when a threshold is reached, or clears the counts on success.  Only for
 * an upstream with u->passive set: callers skip it (and the clock) else. */
void pt_health_report(pt_upstream_t *u, size_t idx, int outcome, int64_t now_ms);
/* Is the target marked down (by probes, or for a cool-down) right now? */
bool pt_health_down(const pt_target_shared_t *s, int64_t now_ms);
/* Is the target up (or back from its cool-down)?  Logs the return once. */
bool pt_health_up(pt_upstream_t *u, size_t idx, int64_t now_ms);
/* Does this status count as a failure for u's passive checks? */
bool pt_health_bad_status(const pt_upstream_t *u, int status);

/* Retry budget: a request to u starts; may a retry start (counted when so)? */
void pt_budget_request(pt_upstream_t *u, int64_t now_ms);
bool pt_budget_retry(pt_upstream_t *u, int64_t now_ms);

/* The prober, in the first worker only: probes every target of every
 * upstream with healthchecks.active and writes the results to the shared
 * zone.  start: 0 or -1; stop: when the worker starts to drain. */
typedef struct pt_prober pt_prober_t;
pt_prober_t *pt_prober_start(pt_worker_t *w);
void pt_prober_stop(pt_prober_t *pr);
/* The prober's memory of one target: results of one kind in a row, and
 * the state it last saw (a change made elsewhere restarts the count). */
typedef struct pt_streak {
    int kind; /* enum pt_outcome, or -1 */
    int n;
    int seen_down;
} pt_streak_t;
#define PT_PROBE_FAILED (-1)
#define PT_PROBE_TIMEOUT (-2)
/* A probe's result reaches the shared state: status > 0 an HTTP status
 * (any, for a tcp probe that connected), PT_PROBE_FAILED or
 * PT_PROBE_TIMEOUT.  Marks the target down or up (and logs it) when a
 * threshold is reached; returns true then. */
bool pt_health_probed(pt_upstream_t *u, size_t idx, int status, pt_streak_t *st, int64_t now_ms);

/* An attempt on target idx starts / ends (latency_us < 0: it failed). */
void pt_balancer_start(pt_upstream_t *u, size_t idx);
void pt_balancer_done(pt_upstream_t *u, size_t idx, int64_t latency_us, int64_t now_us);
/* latency_us for an attempt that says nothing of the target (Portico ran
 * out of descriptors or memory before it could try): no sample. */
#define PT_NO_SAMPLE INT64_MIN

/* An idle pooled connection to t, or a new one being connected.  NULL with
 * errno set when a socket cannot even be started. */
pt_upconn_t *pt_pool_acquire(pt_worker_t *w, pt_upstream_t *u, pt_target_t *t);
/* A new connection to t, never an idle one (health probes).  NULL with
 * errno set as pt_pool_acquire. */
pt_upconn_t *pt_pool_connect(pt_worker_t *w, pt_upstream_t *u, pt_target_t *t);
/* A non-blocking socket connecting to t (TCP_NODELAY): fd, or -1 with errno. */
int pt_upstream_socket(const pt_target_t *t);
/* scheme https: a TLS client on fd for target t (SNI, verified name). */
struct ssl_st *pt_upstream_tls_new(pt_upstream_t *u, pt_target_t *t, int fd);
/* Done with a connection: back to the pool when `reusable` and the pool
 * has room and it has served fewer than keepalive.requests; else closed. */
void pt_pool_release(pt_upconn_t *uc, bool reusable);
/* Closes now (freed one loop iteration later). */
void pt_upconn_close(pt_upconn_t *uc);
void pt_upconn_free(pt_upconn_t *uc);
/* Arms the connection's timer for ms milliseconds. */
void pt_upconn_timer(pt_upconn_t *uc, int64_t ms);

#endif
