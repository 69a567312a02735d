/* The response cache's storage: one shared-memory zone per cache
 * (`caches[].memory` bytes, "cache:NAME"), made by the master before it
 * forks, used by every worker, kept across a reload while its name and
 * size are unchanged.  It holds an index (a hash table of objects by
 * their key, variants chained under it) and the objects' bytes in
 * fixed-size blocks, evicted least recently used first.  It knows nothing
 * of HTTP: an object is a key, a variant (the normalised values of the
 * request fields its Vary names), metadata, and bytes (the stored head,
 * then the body), written by one worker while others may read older
 * objects.
 *
 * Concurrency: short critical sections under the zone's robust mutex
 * (index, LRU, block lists); the bytes are read without the lock and
 * checked afterwards (an object's generation changes before its blocks
 * may be reused), so a reader never holds the lock while it copies.  An
 * object being written is invisible until it is committed; a worker that
 * dies while writing leaves nothing anybody could read (the master gives
 * back its blocks: pt_caches_forget_column).  A lock found abandoned in
 * the middle of an update (the robust mutex's EOWNERDEAD) empties the
 * cache: it is a cache. */
#ifndef PORTICO_CACHE_STORE_H
#define PORTICO_CACHE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/str.h"

typedef struct pt_cache pt_cache_t;

#define PT_CACHE_KEY_MAX 4096    /* longer keys are not cached (the request goes on uncached) */
#define PT_CACHE_VARIANT_MAX 4096 /* likewise for the variant (names and values) */

/* ---- in the master ---- */

/* The caches a configuration asks for: names[i] of memory[i] bytes.  A
 * cache of the same name and size as before is kept, objects and all;
 * any other is made empty.  0, or -1 with errno (and nothing changed).
 * Workers forked afterwards find them with pt_cache_get. */
int pt_caches_prepare(const char *const *names, const size_t *memory, size_t n);
/* A worker that used `column` exited: what it was writing is dropped and
 * the fetch locks it held are released. */
void pt_caches_forget_column(int column);

/* ---- in a worker ---- */

/* The cache of that name (NULL when the configuration has none). */
pt_cache_t *pt_cache_get(const char *name);

/* What is kept of a response besides its bytes; the store keeps it as it
 * is (the filter fills it, cache_policy.h decides it). */
typedef struct pt_cache_meta {
    int64_t request_time_ms;  /* wall clock: when the request that fetched it went */
    int64_t response_time_ms; /* ... and when its response came */
    int64_t date_s;           /* the response's Date (response_time when absent) */
    int64_t age_s;            /* the response's Age (0) */
    int64_t lifetime_ms;      /* freshness lifetime */
    int64_t swr_ms, sie_ms;   /* stale-while-revalidate and stale-if-error granted */
    uint32_t flags;           /* PT_CM_* (cache_policy.h) */
    uint16_t status;
    uint32_t head_len;        /* the stored head's bytes, at the start of the object */
    uint64_t body_len;        /* the body's, after it */
} pt_cache_meta_t;

/* A found object: where it is, its generation then, and a copy of its
 * metadata.  Valid until pt_cache_read says the object is gone. */
typedef struct pt_cache_hit {
    uint32_t slot, gen;
    pt_cache_meta_t meta;
} pt_cache_hit_t;

/* Makes the request's variant for a key whose objects vary on the field
 * names `names` (comma-joined, as cache_policy.h makes them): writes it to
 * out[cap] and returns its length, or -1 when it does not fit (a miss). */
typedef long (*pt_cache_variant_fn)(pt_str_t names, char *out, size_t cap, void *arg);

enum { PT_CACHE_ABSENT, PT_CACHE_FOUND, PT_CACHE_VARY_MISS };

/* Looks up key: PT_CACHE_FOUND with *hit (the object is made the most
 * recently used); PT_CACHE_VARY_MISS when the key has objects but none of
 * this request's variant; PT_CACHE_ABSENT. */
int pt_cache_lookup(pt_cache_t *ch, pt_str_t key, pt_cache_variant_fn variant, void *arg, pt_cache_hit_t *hit);
/* Copies bytes [off, off + n) of the object (head, then body) to out.
 * False when the object was dropped or replaced meanwhile: what was
 * copied must not be used (answer as a miss). */
bool pt_cache_read(pt_cache_t *ch, const pt_cache_hit_t *hit, uint64_t off, void *out, size_t n);
/* ---- pins: sending an object's bytes from where they are ---- */

/* A pin keeps a found object's bytes in place: evicted, purged or
 * replaced meanwhile, it is gone for every lookup, but its blocks are not
 * reused until it is unpinned.  Pins are few per worker (pins.c); a worker
 * that dies with pins has them given back by pt_caches_forget_column. */
typedef struct pt_cache_pin pt_cache_pin_t;
/* Pins hit's object for worker column: NULL when it is gone (answer as a
 * miss) or the worker holds as many pins as it may (copy it then: the
 * caller's choice).  The pin is the worker's until pt_cache_unpin. */
pt_cache_pin_t *pt_cache_pin(pt_cache_t *ch, const pt_cache_hit_t *hit, int column);
void pt_cache_unpin(pt_cache_pin_t *p);
/* Bytes [off, off + n) of the pinned object (head, then body), or as
 * many of them as max spans in shared memory hold (blocks that follow
 * each other make one), valid until it is unpinned: the spans' count, or
 * -1 when the range is past the object.  Ranges asked for in increasing
 * order walk the block chain once in all. */
struct iovec;
int pt_cache_pin_spans(pt_cache_pin_t *p, uint64_t off, uint64_t n, struct iovec *iov, int max);
/* Sends bytes [off, off + n) of the pinned object through q, in slices:
 * the spans q has room for now, the next slice when that one was sent
 * (q->open meanwhile: nothing else may be queued), so a large object
 * takes a few of q's segments however it lies, and its chain is walked
 * once.  The pin is then q's: released with the last slice, or when q
 * drops what it holds.  False (nothing queued, the pin still the
 * caller's) when q is another producer's or has no room. */
struct pt_outq;
bool pt_cache_pin_queue(pt_cache_pin_t *p, struct pt_outq *q, uint64_t off, uint64_t n);

/* Replaces the metadata of a found object (a 304 that changed only its
 * freshness).  False when it is gone. */
bool pt_cache_update_meta(pt_cache_t *ch, const pt_cache_hit_t *hit, const pt_cache_meta_t *meta);

/* Writing an object: begin, append its bytes (the head, then the body, as
 * they come), then commit or abort.  The writer lives in the caller's
 * memory; its fields are the store's. */
typedef struct pt_cache_writer {
    pt_cache_t *ch;
    uint32_t slot, gen;
    uint64_t len, max;
    uint32_t tail;   /* the block being filled */
    uint32_t used;   /* bytes used in it */
    bool active;
} pt_cache_writer_t;

/* Starts an object for key and variant (names: the field names it varies
 * on, or empty; values: the request's variant made from them) by worker
 * column, of at most max bytes.  False (nothing started) when the key or
 * variant is too long or no memory can be had even by evicting. */
bool pt_cache_store_begin(pt_cache_t *ch, pt_cache_writer_t *w, pt_str_t key, pt_str_t names, pt_str_t values,
                          int column, uint64_t max);
/* Appends n bytes.  False when that would pass max or no block can be had
 * even by evicting: the object is then dropped (the writer inactive). */
bool pt_cache_store_append(pt_cache_writer_t *w, const void *p, size_t n);
/* Appends n bytes of a stored object from off (a 304 that changed the
 * head keeps the body).  False as for append, or when that object is
 * gone (this one is then dropped too). */
bool pt_cache_store_append_from(pt_cache_writer_t *w, const pt_cache_hit_t *from, uint64_t off, uint64_t n);
/* Makes the object visible with meta (head_len + body_len must be what
 * was appended).  It replaces the key's object of the same variant, and
 * every object of the key that varies on other names.  False when it was
 * dropped meanwhile (a purge of the key while it was written: it is not
 * made visible then). */
bool pt_cache_store_commit(pt_cache_writer_t *w, const pt_cache_meta_t *meta);
void pt_cache_store_abort(pt_cache_writer_t *w);

/* ---- collapsed forwarding: one fetch per key at a time, in any worker ---- */

enum { PT_CACHE_LOCKED, PT_CACHE_BUSY, PT_CACHE_PASS };
/* Asks to fetch key: PT_CACHE_LOCKED (the caller fetches; the lock lapses
 * after hold_ms if never released), PT_CACHE_BUSY (another request holds
 * it: look again a little later), or PT_CACHE_PASS (the last fetch of the
 * key found it not storable, until a time given to pt_cache_unlock: go to
 * the origin without waiting).  Locks are few (a small table); when it is
 * full the answer is PT_CACHE_PASS. */
int pt_cache_lock(pt_cache_t *ch, pt_str_t key, int column, int64_t now_ms, int64_t hold_ms);
/* Releases the lock on key (held by column); pass_until_ms > 0 leaves a
 * pass mark until then (the response was not storable). */
void pt_cache_unlock(pt_cache_t *ch, pt_str_t key, int column, int64_t pass_until_ms);

/* ---- invalidation and purge ---- */

/* Drops every variant of key; returns how many objects were dropped. */
size_t pt_cache_invalidate(pt_cache_t *ch, pt_str_t key);
/* Drops every object whose key starts with prefix; returns how many. */
size_t pt_cache_purge_prefix(pt_cache_t *ch, pt_str_t prefix);
/* Drops every object whose key is a URI ("scheme://authority/path...")
 * whose path starts with prefix ("/catalog/"); returns how many. */
size_t pt_cache_purge_path_prefix(pt_cache_t *ch, pt_str_t prefix);

/* ---- figures, for /status and the metrics ---- */

enum pt_cache_counter {
    PT_CST_HIT,
    PT_CST_MISS,
    PT_CST_STALE,        /* served stale (max-stale, stale-while-revalidate, stale-if-error) */
    PT_CST_REVALIDATED,  /* a revalidation answered 304 */
    PT_CST_COLLAPSED,    /* a miss that waited for another's fetch */
    PT_CST_STORED,
    PT_CST__COUNT
};
/* Counts one event (a relaxed atomic add, no lock). */
void pt_cache_count(pt_cache_t *ch, int counter);

typedef struct pt_cache_stats {
    uint64_t objects, bytes, capacity; /* bytes: of objects' blocks; capacity: of all blocks */
    uint64_t evictions;                /* objects dropped to make room */
    uint64_t counters[PT_CST__COUNT];
} pt_cache_stats_t;
/* Read without the lock: approximate while others write. */
void pt_cache_stats(pt_cache_t *ch, pt_cache_stats_t *st);

#endif
