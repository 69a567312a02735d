/* What the disk tier's files share (cache_disk.h): the layout of a
 * "cdisk:NAME" zone.
 *
 *   hdr | cell[NCELLS] | _Atomic uint32 map[nmap]
 *
 * The queue is a ring of fixed cells: many producers (workers, under the
 * zone's lock), one consumer (the disk process, without it).  A
 * producer fills cell[head % NCELLS] only while head - tail < NCELLS,
 * then publishes head + 1; the consumer carries out cell[tail % NCELLS]
 * and only then publishes tail + 1, which frees the cell.  A producer
 * that dies holding the lock has published nothing.
 *
 * The map counts the files of each key hash (SipHash with the zone's
 * seed) modulo nmap; only the disk process writes it. */
#ifndef PORTICO_CACHE_DISK_INT_H
#define PORTICO_CACHE_DISK_INT_H

#include <stdatomic.h>
#include <stdint.h>

#include "portico/cache_disk.h"
#include "portico/cache_store.h"
#include "portico/zone.h"

#define DQ_NCELLS 256u

enum { DQ_WRITE = 1, DQ_LOAD, DQ_INVALIDATE, DQ_PURGE_PREFIX, DQ_PURGE_PATH };

typedef struct dq_cell {
    uint32_t type, slot, gen, len;
    uint64_t store_id; /* DQ_WRITE: the memory store it is in */
    char text[PT_CACHE_KEY_MAX]; /* the key, or the prefix */
} dq_cell_t;

typedef struct dq_hdr {
    uint64_t magic;
    uint64_t seed[2];
    uint64_t size; /* disk.size */
    uint32_t nmap;
    uint64_t head;            /* under the lock */
    _Atomic uint64_t tail;    /* the consumer's */
    _Atomic uint32_t wipe;    /* an invalidation was lost: drop every file first */
    _Atomic uint32_t pid;     /* the disk process serving it, 0 */
    _Atomic uint32_t indexing;
    _Atomic uint32_t tombs;   /* drops were taken while indexing: a process that dies before the index is
                               * made leaves files that may hold them, which the next one must drop */
    _Atomic uint64_t files, bytes, writes, loads, evictions, dropped, errors, wipes, purged;
} dq_hdr_t;

struct pt_cdisk {
    unsigned magic;
    char name[64];
    pt_zone_t *zone;
    dq_hdr_t *h;
    dq_cell_t *cells;
    _Atomic uint32_t *map;
    int efd; /* wakes the disk process */
};

/* Are drops queued and not carried out, or taken while indexing and not
 * made good (tombs)? */
bool cdq_drops_pending(const pt_cdisk_t *d);
/* The disk tier of cache `name` (NULL: none), in this process's table. */
pt_cdisk_t *cdq_get(const char *name);
/* The hash of a key in the presence map. */
uint64_t cdq_hash(const pt_cdisk_t *d, pt_str_t key);
/* The eventfd that wakes the disk process. */
int cdq_efd(void);

/* The store's side of the disk process (store.c): object slot of
 * generation gen, if it is still that one: its metadata, the lengths of
 * its key, names and values, and its whole chain's bytes copied to buf
 * (of cap bytes; the needed size when larger, with nothing copied). */
typedef struct cs_object {
    pt_cache_hit_t hit;
    uint32_t key_len, names_len, values_len;
    uint64_t total; /* key + names + values + head + body */
} cs_object_t;
bool cs_object(pt_cache_t *ch, uint32_t slot, uint32_t gen, cs_object_t *o);
bool cs_object_read(pt_cache_t *ch, const cs_object_t *o, void *buf);
/* An identity of a memory store, which a new zone changes. */
uint64_t cs_store_id(const pt_cache_t *ch);
/* Commits w unless the key has a committed object of the same variant,
 * or objects that vary on other names (they are newer than the disk's). */
bool cs_commit_if_absent(pt_cache_writer_t *w, const pt_cache_meta_t *meta);
/* Does key, "scheme://authority/path...", have a path that starts with
 * prefix (which starts with '/')? */
bool cs_path_starts(const char *key, size_t n, pt_str_t prefix);
/* Drops from memory alone (nothing queued): key, or (prefix) a key or
 * (path) path prefix; how many objects. */
size_t cs_drop_memory(pt_cache_t *ch, int path, pt_str_t text, bool prefix);
/* The cache's disk tier, set by pt_cdisks_prepare. */
void cs_set_disk(pt_cache_t *ch, pt_cdisk_t *d);

#endif
