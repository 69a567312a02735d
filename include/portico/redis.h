/* The Redis client of a worker, for the limits with `policy: redis`: one
 * connection per Redis node, hiredis' async API on the worker's libevent
 * loop, commands pipelined.  Modes single, sentinel (the master's address
 * from the sentinels, asked again after a failover) and cluster (a slot
 * map from CLUSTER SLOTS, CRC16 slots, MOVED and ASK followed; hiredis
 * 0.14 has no cluster support, so this is the minimal client).
 *
 * Scripts are sent with EVALSHA (loaded once per connection; NOSCRIPT
 * loads them again).  Every call ends in one callback, never from inside
 * the call itself, and never later than redis.timeout: a Redis that is
 * slow, down or refusing gives PT_REDIS_FALLBACK, and the caller counts
 * locally.  After a failure the worker stops asking (pt_redis_ready is
 * false) until a probe (PING, every redis.probe_interval) is answered in
 * time; each such episode is logged once when it starts and once when it
 * ends. */
#ifndef PORTICO_REDIS_H
#define PORTICO_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/config-t.h"

struct event_base;
typedef struct pt_redis pt_redis_t;
typedef struct pt_redis_call pt_redis_call_t;

/* A Lua script; sha is filled in (hex SHA-1 of lua) on first use. */
typedef struct pt_redis_script {
    const char *name; /* for the log */
    const char *lua;
    char sha[41];
} pt_redis_script_t;

enum {
    PT_REDIS_OK,       /* vals[0..n) are the script's reply: an array of integers (or one integer, n = 1) */
    PT_REDIS_FALLBACK, /* no answer in time, no connection, or an error: count locally */
};

/* status, and the reply's integers (valid during the call only). */
typedef void (*pt_redis_cb)(void *arg, int status, const long long *vals, size_t n);

/* In a worker, once its loop exists: the client for conf (conf->node must
 * be set; conf is kept, and must outlive the client).  Connects at once,
 * in the background.  NULL on ENOMEM. */
pt_redis_t *pt_redis_new(struct event_base *base, const pt_redis_conf_t *conf);
/* Closes every connection; pending calls are not called back.  A host
 * name still being resolved has its query cancelled, and libevent ends it
 * on later turns of the loop: run it twice more (EVLOOP_NONBLOCK) before
 * event_base_free, or that query's few bytes are never freed. */
void pt_redis_free(pt_redis_t *r);

/* Is Redis usable now?  false while a fallback episode lasts (or before the
 * first connection is up, for at most redis.timeout): pt_redis_eval then
 * returns NULL at once. */
bool pt_redis_ready(const pt_redis_t *r);

/* Runs the script on the node that holds key (whose slot is that of its
 * {hash tag}), with KEYS = {key} and ARGV = args as decimal integers
 * (at most PT_REDIS_MAX_ARGS).  key and args are copied; s is not (it
 * must outlive the client: EVAL after NOSCRIPT sends s->lua).  cb is called
 * once, later, within redis.timeout; the handle is invalid from then on.
 * Returns a handle for pt_redis_cancel, or NULL, without calling cb, when
 * it is not sent: not pt_redis_ready, too many args, or out of memory
 * (counted in fallbacks: count locally). */
#define PT_REDIS_MAX_ARGS 16
pt_redis_call_t *pt_redis_eval(pt_redis_t *r, pt_redis_script_t *s, const char *key, size_t keylen,
                               const long long *args, size_t nargs, pt_redis_cb cb, void *arg);
/* The caller no longer wants the answer (its request ended): cb will not
 * be called.  The handle is invalid afterwards. */
void pt_redis_cancel(pt_redis_call_t *call);

/* The cluster slot of a key (CRC16-XMODEM of the key, or of its first
 * non-empty {hash tag}, mod 16384). */
unsigned pt_redis_slot(const char *key, size_t n);

/* What /status shows of this worker's client. */
typedef struct pt_redis_stats {
    bool fallback;            /* an episode is under way */
    uint64_t fallbacks;       /* calls answered PT_REDIS_FALLBACK, and calls not made while in fallback */
    uint64_t episodes;        /* fallback episodes started */
    uint64_t calls, answers;  /* scripts sent, and answered in time */
    uint64_t moved, asked;    /* cluster redirections followed */
    uint64_t failovers;       /* sentinel: the master's address changed */
    uint64_t loads;           /* NOSCRIPT answered: the script sent again with EVAL */
    uint64_t connects;        /* connections opened (to nodes and sentinels) */
} pt_redis_stats_t;
void pt_redis_stats(const pt_redis_t *r, pt_redis_stats_t *st);

#endif
