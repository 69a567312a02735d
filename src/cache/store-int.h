/* What the files of src/cache/ that make the store share, and nothing
 * outside them sees: the zone's layout (store.c says why it is so), its
 * lock, and the key hash.  store.c keeps the objects; locks.c the fetch
 * locks of collapsed forwarding, in the same zone under the same lock. */
#ifndef PORTICO_CACHE_STORE_INT_H
#define PORTICO_CACHE_STORE_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "portico/cache_disk.h"
#include "portico/cache_store.h"
#include "portico/outq.h"
#include "portico/str.h"
#include "portico/zone.h"

#define BLOCK 4096u        /* bytes of a block */
#define NLOCKS 1024u       /* fetch locks (a power of two) */
#define NIL 0xffffffffu    /* no block, no entry */
#define PINS 64u           /* pins a worker (a column) may hold at once, per cache (pins.c) */
#define PIN_COLUMNS 512u   /* columns of the pin table: PT_SHARED_COLUMNS (upstream.h) */

/* ST_GONE: dropped (evicted, purged, replaced) while pinned: out of the
 * index, its blocks kept until its last pin goes (pins.c). */
enum { ST_FREE, ST_STORING, ST_READY, ST_GONE };
enum { IO_OUT, IO_IN, IO_CMP };

/* An object.  gen, first, nblocks and the three lengths are read without
 * the lock by pt_cache_read (atomically, relaxed); the rest only under it. */
typedef struct entry {
    uint32_t gen;                  /* changed when the object is freed, before its blocks may be reused */
    uint8_t state;                 /* ST_* */
    uint8_t dropped;               /* STORING: purged meanwhile; its commit fails */
    uint16_t pins;                 /* pin records (any column) that name it: its blocks stay while > 0 */
    int32_t column;                /* the writer's (STORING) */
    uint32_t chain;                /* next in its bucket */
    uint32_t prev, next;           /* LRU (READY; prev more recent); next is also the free list */
    uint32_t first, last, nblocks; /* its block chain */
    uint32_t key_len, names_len, values_len; /* the chain's prefix, before the head and body */
    uint64_t hash, nhash, vhash;   /* SipHash of the key, the names, the values */
    uint64_t len;                  /* head + body bytes (READY) */
    pt_cache_meta_t meta;
} entry_t;

/* A fetch lock: held while expires_ms is ahead, a pass mark while
 * pass_until_ms is; otherwise the place is free. */
typedef struct flock {
    uint64_t h1, h2;   /* two independent hashes of the key */
    uint32_t key_len;
    int32_t holder;    /* column, or -1 */
    int64_t expires_ms, pass_until_ms;
} flock_t;

/* The start of the zone.  The counts are written under the lock and read
 * by pt_cache_stats without it. */
typedef struct cache_hdr {
    uint64_t magic;
    uint64_t seed[2], seed2[2];
    uint64_t size;
    uint32_t nentries, nblocks;
    uint32_t free_block, fresh_block; /* given back blocks (chained by link[]); then fresh ones in order */
    uint32_t free_entry, fresh_entry; /* likewise, entries (chained by next) */
    uint32_t lru_head, lru_tail;      /* head: most recently used */
    _Atomic uint32_t blocks_used, objects;
    _Atomic uint64_t evictions, resets;
    _Atomic uint64_t counters[PT_CST__COUNT];
    uint32_t pinned_blocks; /* blocks of pinned objects (under the lock; pins.c caps them) */
} cache_hdr_t;

/* A pin as the worker that holds it sees it (in its own memory): which
 * record of its column's row it is, and a cursor into the object's chain,
 * so that spans asked for in order cost no walk from the start.  The hold
 * comes first: an output queue releases it (outq.h). */
struct pt_cache_pin {
    pt_outq_hold_t hold;
    pt_cache_t *ch;
    int column;                /* the row: the worker's column */
    uint32_t k, slot;          /* its record in the row; the object's entry */
    uint32_t first, nblocks;   /* the object's chain (stable while pinned) */
    uint64_t pre, len;         /* bytes of the chain before the head; of the head and body */
    uint32_t cur_block;        /* the block that holds byte cur_pos of the chain */
    uint64_t cur_pos;          /* a multiple of BLOCK */
    pt_outq_t *q;              /* pt_cache_pin_queue: the queue it feeds, */
    uint64_t next, end;        /* and the object's bytes still to queue */
};

/* A cache as a process sees it: made by the master, inherited by workers. */
struct pt_cache {
    unsigned magic;
    char name[64];
    pt_zone_t *zone;
    cache_hdr_t *h;
    flock_t *locks;
    uint32_t *buckets;
    entry_t *e;
    uint32_t *link;         /* link[b]: the block after b in its chain */
    unsigned char *blocks;
    uint32_t nentries, nblocks, nbuckets;
    pt_cdisk_t *disk; /* its disk tier (cache_disk.h), NULL */
    uint32_t *pins;         /* [PIN_COLUMNS][PINS]: the entry each pin record names, or NIL */
    uint64_t pins_busy;     /* this process's records in use (a bit per record of its column) */
    struct pt_cache_pin pin[PINS];
};

/* Takes the zone's lock; when its last holder died holding it, the cache
 * is emptied first (logged). */
void cs_lock(pt_cache_t *ch);
void cs_unlock(pt_cache_t *ch);
/* SipHash of s with the cache's key (the same in every process). */
uint64_t cs_hash(const pt_cache_t *ch, pt_str_t s);
/* Releases the fetch locks column holds (under the lock). */
void cs_locks_forget(pt_cache_t *ch, int column);
/* Gives entry i's blocks and the entry back; it is off every list
 * (store.c, under the lock). */
void cs_give_back(pt_cache_t *ch, uint32_t i);
/* Bytes of the pin table (pins.c). */
#define PIN_TABLE_SIZE ((size_t)PIN_COLUMNS * PINS * sizeof(uint32_t))
/* Empties the pin table (a cache made empty; under the lock). */
void cs_pins_clear(pt_cache_t *ch);
/* Gives back the pins column holds (it died; under the lock). */
void cs_pins_forget(pt_cache_t *ch, int column);

#endif
