/* Prometheus metrics at a fixed cost.  Every series is a row of counters
 * in one shared zone ("metrics"), made by the master when a configuration
 * loads: a row per route, upstream, target, listener, and auth or limit
 * filter of a route.  Each worker counts into a block of its own (one
 * column of every row), with relaxed atomic adds and no lock; a scrape
 * sums the blocks and what the workers that exited left (folded by the
 * master into the "retired" block).  Rows are found by name, so the
 * series of a route or upstream that a reload keeps keep their values.
 *
 * A worker beyond the blocks made for it (more generations draining than
 * the zone was sized for) counts into a block all such workers share,
 * with the same atomic adds: nothing is lost. */
#ifndef PORTICO_METRICS_H
#define PORTICO_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/config-t.h"

#define PT_MX_NONE UINT32_MAX
#define PT_MX_MAX_BUCKETS 32
#define PT_MX_CODES 24 /* (method, status) pairs counted apart per route and worker */

/* The kinds of rows, and the words each uses.  Every row has the same
 * width; a histogram (routes, upstreams) starts at PT_MXW_HIST. */
enum pt_mx_kind { PT_MXK_FREE, PT_MXK_ROUTE, PT_MXK_UPSTREAM, PT_MXK_TARGET, PT_MXK_LISTENER, PT_MXK_FILTER };
enum {
    /* route: (method << 16 | status, count) pairs, then the bytes */
    PT_MXW_CODES = 0,
    PT_MXW_BYTES_IN = 2 * PT_MX_CODES,
    PT_MXW_BYTES_OUT,
    PT_MXW_HIST, /* buckets (not cumulative), then the count and the sum in microseconds */
    /* upstream */
    PT_MXW_UP_REFUSED = 0, /* retries the retry budget refused */
    /* target */
    PT_MXW_T_ATTEMPTS = 0,
    PT_MXW_T_RETRIES,
    PT_MXW_T_CONNECT_FAILURES,
    PT_MXW_T_TIMEOUTS,
    PT_MXW_T_CONNECTS, /* connections opened */
    PT_MXW_T_REUSES,   /* attempts on a kept-alive connection */
    /* listener */
    PT_MXW_L_ACCEPTED = 0,
    PT_MXW_L_CLOSED_H1,
    PT_MXW_L_CLOSED_H2,
    PT_MXW_L_TLS_HANDSHAKES,
    PT_MXW_L_TLS_FAILURES,
    PT_MXW_L_H2, /* connections that went on in HTTP/2 */
    /* filter: a limit's refusals and Redis fallbacks, an auth filter's failures by reason */
    PT_MXW_F_REJECTED = 0,
    PT_MXW_F_FALLBACKS,
    PT_MXW_F_AUTH,
};

/* ---- in the master ---- */

/* Makes (or keeps, or grows) the zone for configuration c and finds the
 * rows of its series, kept for the workers forked next.  0, or -1 with
 * errno when the zone cannot be mapped. */
int pt_metrics_prepare(const pt_config_t *c, int nworkers);
/* A reload failed (after pt_zone_abandon): the zone of the serving
 * configuration is the one in use again. */
void pt_metrics_abandon(void);
/* Why a load failed with errno err, when it is the metrics' own refusal
 * (EBUSY: four replaced zones still counted into); else NULL. */
const char *pt_metrics_refusal(int err);
/* A block for a new worker (its own, or 0: the shared one), and the zone
 * it is in, to be handed back with pt_metrics_fold when it exits. */
int pt_metrics_take_block(void **zone);
/* A worker exited: what its block counted goes to the retired block of
 * the zone in use, and the block is free again. */
void pt_metrics_fold(void *zone, int block);
/* No worker of an older generation is left: the rows only older
 * configurations had are freed. */
void pt_metrics_tidy(void);

/* ---- in a worker ---- */

/* The worker counts into `block` (from pt_metrics_take_block). */
void pt_metrics_attach(int block);

typedef struct pt_mx {
    const pt_config_t *conf; /* the configuration the rows are of */
    uint64_t *block; /* this worker's: row r is at block + r * width; NULL: no metrics */
    uint32_t width;
    uint32_t nbuckets;
    const double *bounds; /* the buckets' upper bounds, in seconds */
    const uint32_t *route, *upstream, *listener, *filter; /* rows by index (filter: route * PT_FILTER__COUNT + id) */
    const uint32_t *const *target;                        /* [upstream][target] */
} pt_mx_t;
extern pt_mx_t pt_mx;

static inline void pt_mx_add(uint32_t row, unsigned word, uint64_t n)
{
    if (row != PT_MX_NONE && pt_mx.block)
        __atomic_fetch_add(&pt_mx.block[(size_t)row * pt_mx.width + word], n, __ATOMIC_RELAXED);
}

/* Rows of the configuration this process serves, or PT_MX_NONE.  A route
 * index equal to the count of routes: requests no route took. */
static inline uint32_t pt_mx_route(size_t route)
{
    return pt_mx.route ? pt_mx.route[route] : PT_MX_NONE;
}
uint32_t pt_mx_upstream(const pt_upstream_conf_t *u);
uint32_t pt_mx_target(const pt_upstream_conf_t *u, const pt_target_conf_t *t);
uint32_t pt_mx_listener(const pt_listener_conf_t *l); /* NULL: the admin listener */
uint32_t pt_mx_filter(size_t route, int filter);

/* Counts n on word (PT_MXW_T_*) of target t of upstream u: in its row, or
 * for a target added through the admin API (no row) in its shared slot. */
struct pt_upstream;
struct pt_target;
/* The label values the series of names l1 and l2 (l2 and o2 may be NULL)
 * are shown with, as every family shows them: secrets masked, a long
 * name cut with a hash of the whole (decision 109).  o1 and o2 hold
 * PT_MX_LABEL_MAX + 1 bytes. */
#define PT_MX_LABEL_MAX 200
void pt_mx_labels(const char *l1, const char *l2, char *o1, char *o2);
void pt_mx_target_add(const struct pt_upstream *u, const struct pt_target *t, unsigned word, uint64_t n);

/* One request's end: its route's counters and histogram, and the
 * upstream's response time (upstream_us < 0: none). */
void pt_metrics_request(uint32_t route_row, unsigned method_bit, int status, int64_t us, uint64_t in, uint64_t out,
                        uint32_t upstream_row, int64_t upstream_us);
/* One event of a histogram row (route or upstream). */
void pt_metrics_observe(uint32_t row, int64_t us);

/* ---- the scrape (any process that has the zone) ---- */

typedef struct pt_mx_zone pt_mx_zone_t;
/* The zone of the configuration this process serves, or NULL. */
pt_mx_zone_t *pt_metrics_zone(void);
/* Row r's kind, and its labels (NUL-terminated copies; l2 empty when none). */
int pt_metrics_row(const pt_mx_zone_t *z, uint32_t r, char *l1, size_t n1, char *l2, size_t n2);
/* Row r's kind alone (a cheap look before pt_metrics_row). */
int pt_metrics_kind(const pt_mx_zone_t *z, uint32_t r);
/* How many rows may hold series (a bound on row numbers). */
uint32_t pt_metrics_rows(const pt_mx_zone_t *z);
/* Sums word `word` .. word + n - 1 of row r over every block, retired
 * included, into out[] (consistent with a fold running meanwhile). */
void pt_metrics_sum(const pt_mx_zone_t *z, uint32_t r, unsigned word, unsigned n, uint64_t *out);
/* The (method << 16 | status | 1 << 32) keys of row r's requests, and
 * their counts, merged over the blocks: at most max (the last one is
 * UINT32_MAX, "other", when more were seen).  Returns how many. */
int pt_metrics_codes(const pt_mx_zone_t *z, uint32_t r, uint64_t *keys, uint64_t *counts, int max);
/* Requests answered and client connections accepted and open, summed
 * over every route and listener (the admin listener left out), for /status. */
typedef struct pt_mx_totals {
    uint64_t requests, accepted, active;
} pt_mx_totals_t;
void pt_metrics_totals(const pt_mx_zone_t *z, pt_mx_totals_t *t);
/* The zone's histogram buckets (upper bounds in seconds). */
unsigned pt_metrics_buckets(const pt_mx_zone_t *z, const double **bounds);

#endif
