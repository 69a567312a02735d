/* The response cache's disk tier (`caches[].disk`): a second tier under
 * the memory store, in files under `path`, bounded by `size`, that
 * survives a restart.
 *
 * Workers never touch the files: their loops must not wait on a disk.
 * One process of its own, the cache disk process (forked and respawned by
 * the master, with the workers' user), does every file operation.
 * Workers talk to it through one shared-memory zone per cache,
 * "cdisk:NAME": a queue of commands, taken in order, and a presence map.
 *
 * - A committed object, and one whose metadata a 304 changed, is queued
 *   to be written: the process copies it out of the memory store and
 *   writes its file (aside, then renamed).
 * - A miss in memory, for a key the presence map says may be on disk
 *   (counts by the key's hash, kept by the process), queues a load and
 *   waits for it, bounded: the process puts the key's objects back into
 *   memory, unless memory has a newer one meanwhile.
 * - Invalidations and purges are queued too.  Commands are taken in
 *   order, so no load can bring back what was dropped before it; an
 *   invalidation that finds the queue full drops the whole disk tier (it
 *   is a cache).
 * - At start the process indexes the directory, a slice at a time
 *   between commands; the files beyond `size` are removed least
 *   recently used first.
 *
 * The store (store.c) queues writes, invalidations and purges itself;
 * the cache filter asks for loads. */
#ifndef PORTICO_CACHE_DISK_H
#define PORTICO_CACHE_DISK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "portico/cache_store.h"
#include "portico/config-t.h"
#include "portico/str.h"

typedef struct pt_cdisk pt_cdisk_t;

/* ---- in the master ---- */

/* The zones of the configuration's disk tiers, each given to its cache
 * (pt_cache_prepare calls it after the memory stores).  0, or -1 with
 * errno. */
int pt_cdisks_prepare(const pt_config_t *c);
/* Does the configuration have a disk tier? */
bool pt_cdisk_any(const pt_config_t *c);
/* What a disk process serves: two configurations of the same signature
 * are served by the same process (their stores and zones are the same). */
void pt_cdisk_signature(const pt_config_t *c, char *out, size_t cap);
/* Makes each disk tier's directory (and its parents) and gives it to the
 * workers' user.  0, or -1 with the reason in err. */
int pt_cdisk_make_dirs(const pt_config_t *c, bool drop, uid_t uid, gid_t gid, char *err, size_t errlen);
/* The disk process died: until another serves them, no miss waits for a
 * load (pt_cdisk_maybe says no). */
void pt_cdisks_gone(void);
/* In the master as it exits: a disk tier whose process did not carry
 * out every drop (killed, stuck) is marked (data/wipe) to be dropped
 * whole at the next start, so that nothing dropped comes back. */
void pt_cdisks_at_exit(const pt_config_t *c);
/* The disk process's life, in the forked child: never returns. */
_Noreturn void pt_cdisk_process(const pt_config_t *c, int column, bool drop, uid_t uid, gid_t gid);

/* ---- in a worker (and the store) ---- */

/* The disk tier of a cache, or NULL (memory only). */
pt_cdisk_t *pt_cache_disk(pt_cache_t *ch);
/* Queues the object of hit (just committed, or its metadata changed) to
 * be written.  Dropped (counted) when the queue is full. */
void pt_cdisk_post_write(pt_cdisk_t *d, pt_cache_t *ch, uint32_t slot, uint32_t gen);
/* Queues the invalidation of every object of key. */
void pt_cdisk_post_invalidate(pt_cdisk_t *d, pt_str_t key);
/* Queues a purge by key prefix, or (path) by path prefix. */
void pt_cdisk_post_purge(pt_cdisk_t *d, pt_str_t prefix, bool path);
/* May key be on disk?  (A lock-free read of the presence map.) */
bool pt_cdisk_maybe(pt_cdisk_t *d, pt_str_t key);
/* Queues a load of key's objects into memory: a ticket for
 * pt_cdisk_done, or 0 when it could not be queued (go on as a miss). */
uint64_t pt_cdisk_post_load(pt_cdisk_t *d, pt_str_t key);
/* Was the command of that ticket carried out? */
bool pt_cdisk_done(pt_cdisk_t *d, uint64_t ticket);

typedef struct pt_cdisk_stats {
    uint64_t files, bytes, size;
    uint64_t writes, loads, evictions, dropped, errors, wipes, purged;
    bool indexing; /* the start's index is still being made */
    unsigned pid;  /* the disk process's, 0 while none serves it */
} pt_cdisk_stats_t;
void pt_cdisk_stats(pt_cdisk_t *d, pt_cdisk_stats_t *st);

#endif
