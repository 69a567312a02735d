/* Run-time changes to upstream targets (the admin API's PATCH, POST and
 * DELETE on /upstreams/NAME/targets), kept in the shared zone
 * "upstream-runtime" that the master maps before forking: every worker,
 * and one started later, sees the same changes.
 *
 * The zone is a fixed table of entries keyed by (upstream name, target
 * key), where a target's key is its canonical numeric address
 * ("10.0.0.1:8080", "[::1]:80") or, for a target the file gives by host
 * name, its address as written.  An entry overrides a file target's
 * weight or state, removes it, or adds a target.  Every change bumps a
 * version; a worker compares it with the one it applied (one load) on
 * every pick and on /status, and rebuilds that upstream's view when it
 * moved.  Changes are made under the zone's lock. */
#ifndef PORTICO_RUNTIME_H
#define PORTICO_RUNTIME_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/config-t.h"
#include "portico/upstream.h"

#define PT_RT_NAME_MAX 128 /* an upstream name, NUL included */
#define PT_RT_ADDR_MAX 64  /* a target key, NUL included */
#define PT_RT_ENTRIES 4096 /* entries in the zone, every upstream together */

/* The version of the changes, or NULL without a zone (tests). */
extern const _Atomic uint64_t *pt_runtime_version;

/* In the master: maps the zone, or keeps it (its size never changes, so a
 * reload keeps the changes until pt_runtime_reloaded says).  0, or -1
 * with errno. */
int pt_runtime_prepare(void);
/* In the master, once a reload's generation took over: with
 * admin.runtime_changes: revert (the default) every change is dropped;
 * with keep, those that no longer apply to c are.  Returns what went, as
 * "; runtime changes reverted: ..." for the reload's log line ("" when
 * nothing did); a static buffer. */
const char *pt_runtime_reloaded(const pt_config_t *c);

/* In a worker: applies the changes to u when they moved since it last
 * did (cheap when they did not). */
void pt_runtime_sync(pt_upstream_t *u);
static inline bool pt_runtime_stale(const pt_upstream_t *u)
{
    return pt_runtime_version && atomic_load_explicit(pt_runtime_version, memory_order_acquire) != u->rt_seen;
}

/* A target as the changes leave it, for answers and logs. */
typedef struct pt_rt_view {
    int64_t weight;
    int state; /* PT_RT_UP, _DRAIN, _DOWN; PT_RT_REMOVED: not there */
    bool added;
} pt_rt_view_t;

enum pt_rt_op { PT_RT_PATCH, PT_RT_ADD, PT_RT_DELETE };
/* Results of pt_runtime_change besides 0. */
enum pt_rt_result {
    PT_RT_NO_TARGET = 1, /* the upstream has no such target (404) */
    PT_RT_EXISTS,        /* added again (409) */
    PT_RT_TOO_MANY,      /* PT_RT_MAX_ADDED added to this upstream already (409) */
    PT_RT_ZONE_FULL,     /* no entry left in the zone (503) */
    PT_RT_NO_ZONE,       /* no zone (503) */
    PT_RT_LONG_NAME,     /* an upstream name of PT_RT_NAME_MAX bytes or more (400) */
};

/* Changes target `key` (from pt_runtime_key) of uc: op PATCH sets weight
 * (> 0) and/or state (>= 0); ADD adds it with weight (0: 100, or the
 * file's for a file target deleted earlier); DELETE
 * removes it.  *before and *after say what it was and is.  0 or an enum
 * pt_rt_result. */
int pt_runtime_change(const pt_upstream_conf_t *uc, const char *key, int op, int64_t weight, int state,
                      pt_rt_view_t *before, pt_rt_view_t *after);
/* The key of an address as written in a URL or a body: its canonical
 * form when numeric (an IP address with a port; *numeric set), else the
 * text itself.  -1 when it does not fit or has bytes an address never
 * has (control characters, spaces, '/', '"', '\\'). */
int pt_runtime_key(const char *addr, char *key, size_t size, bool *numeric);
/* The key of a target of the file. */
void pt_runtime_conf_key(const pt_target_conf_t *tc, char *key, size_t size);

/* Entries in use in the zone (read without the lock: approximate while
 * a change is made), for /status. */
size_t pt_runtime_used(void);

extern const char *const pt_rt_state_names[]; /* "up", "drain", "down", "removed", "free" */

#endif
