/* The local counters of the rate limits: one table in a shared-memory
 * zone (limits.memory), used by every worker under the zone's robust
 * mutex, kept across a reload while its size is unchanged.  A fixed-size
 * hash table (SipHash with a key made once by the master) with LRU
 * eviction of the keys used least recently; it never grows.  Each
 * operation below is one short critical section.
 *
 * limit-conn's requests in flight are "holds": a record per held request
 * naming the worker's column, so that the master can give back what a
 * worker that died was holding (pt_limits_forget_column).  A key with
 * holds is never evicted. */
#ifndef PORTICO_LIMIT_H
#define PORTICO_LIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/config-t.h"
#include "portico/str.h"

/* A counter's identity: the kind of limit, where it is configured (its
 * scope: "route:NAME", "global", "consumer:NAME"), its window, and the
 * expanded key.  Up to PT_LKEY_MAX bytes kept as they are; a longer one
 * by its SHA-256. */
#define PT_LKEY_MAX 63
typedef struct pt_lkey {
    uint8_t n;                   /* 0x80 | 32: the bytes are a SHA-256 */
    unsigned char b[PT_LKEY_MAX];
} pt_lkey_t;
void pt_lkey_make(pt_lkey_t *k, char kind, int64_t window_ms, const char *scope, pt_str_t key);

/* In the master, before forking: the zone of limits.memory bytes (kept when
 * its size is unchanged), when `used` (a limit filter is in the file; else
 * none).  0, or -1 with errno. */
int pt_limits_prepare(const pt_config_t *c, bool used);
/* In the master, once a worker exited: gives back its holds. */
void pt_limits_forget_column(int column);

/* The answer of a counting operation. */
typedef struct pt_lresult {
    bool allowed;
    bool failed_open;   /* no counter could be had (the table is all kept): allowed, not counted */
    bool exhausted;     /* limit-conn: no place could be had (every hold in use): refused */
    int64_t limit;      /* the quota */
    int64_t remaining;  /* what is left after this request (0 when refused) */
    int64_t reset_ms;   /* until the quota is back to full (count: window end; req: bucket empty) */
    int64_t retry_ms;   /* refused: when a request would pass again */
    int64_t delay_ms;   /* limit-req without nodelay: how long to hold this request */
} pt_lresult_t;

/* limit-count: one more request in the window of window_ms that holds now
 * (fixed: aligned on the epoch; sliding: the previous window weighted by
 * the share of it still inside the last window_ms).  Counted only when
 * allowed. */
void pt_limits_count(const pt_lkey_t *k, int64_t now_ms, int64_t window_ms, bool sliding, int64_t count,
                     pt_lresult_t *res);
/* Takes back one request counted in the window of index window_idx (a
 * later limit refused it: counted only once every limit passed). */
void pt_limits_count_refund(const pt_lkey_t *k, int64_t window_idx);
/* limit-req, a leaky bucket as GCRA: rate per second, burst requests above
 * it; with nodelay false, requests within the burst are given a delay_ms
 * that spaces them at the rate, and a request that would wait longer than
 * max_delay_ms (> 0: the time a request may wait) is refused uncounted.
 * now_us on a monotonic clock. */
void pt_limits_req(const pt_lkey_t *k, int64_t now_us, double rate, int64_t burst, bool nodelay,
                   int64_t max_delay_ms, pt_lresult_t *res);
/* limit-conn: one more request in flight, if fewer than max are.  *hold
 * gets the hold to give back with pt_limits_conn_release (-1: none taken).
 * When no place can be had at all (every hold in use), the request is
 * refused with exhausted set. */
void pt_limits_conn(const pt_lkey_t *k, int column, int64_t max, int64_t *hold, pt_lresult_t *res);
void pt_limits_conn_release(int64_t hold);
/* The requests in flight of a key (for tests and /status), 0 when absent. */
int64_t pt_limits_conn_count(const pt_lkey_t *k);

/* limit-count with policy redis and sync_interval > 0: the node's share
 * of a key.  pending: counted here, not yet sent to Redis; sent: being
 * added; remote: the cluster's total for the window as Redis last told it;
 * previous: the total of the window before (sliding).  count_synced admits
 * a request when the estimate over remote + sent + pending allows it, and
 * counts it in pending; it returns true when the key had nothing pending
 * (the caller then notes it for the next sync). */
bool pt_limits_count_synced(const pt_lkey_t *k, int64_t now_ms, int64_t window_ms, bool sliding, int64_t count,
                            pt_lresult_t *res);
/* For a sync: moves pending to sent and returns it, with the window it is
 * for; 0 when nothing is pending or the key is gone. */
int64_t pt_limits_sync_take(const pt_lkey_t *k, int64_t *window);
/* A sync's answer: the cluster's totals for that window and the one before
 * (total -1: Redis did not answer; the amount goes back to pending). */
void pt_limits_sync_done(const pt_lkey_t *k, int64_t window, int64_t amount, int64_t total, int64_t prev);

/* For /status: read without the lock. */
typedef struct pt_limits_stats {
    size_t entries, used, holds, holds_used;
    uint64_t evicted, refused, resets;
    uint64_t kept; /* entries at their limit (or held) stepped over by an eviction */
    uint64_t evicted_at_limit; /* ... evicted all the same: every one looked at was at its limit */
} pt_limits_stats_t;
void pt_limits_stats(pt_limits_stats_t *st);

#endif
