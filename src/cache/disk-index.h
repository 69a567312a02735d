/* The cache disk process's index of its files (disk_proc.c), in its own
 * memory: each file's name, key, size and the hashes that find it, in a
 * table by the key's hash (every variant of a key in one chain) and a
 * list from the most to the least recently used.  About 100 bytes and
 * the key per file. */
#ifndef PORTICO_CACHE_DISK_INDEX_H
#define PORTICO_CACHE_DISK_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/cache_disk_file.h"
#include "portico/str.h"

typedef struct dent {
    struct dent *chain;       /* the same bucket */
    struct dent *prev, *next; /* prev: more recently used */
    uint64_t khash;           /* of the key (the presence map's) */
    uint64_t nhash;           /* of the Vary names */
    uint64_t size;            /* of the file */
    uint64_t used;            /* the index's tick when it was last added or used */
    char name[PT_CDF_NAME_LEN + 1];
    uint32_t key_len;
    char key[];
} dent_t;

typedef struct dindex {
    dent_t **buckets;
    size_t nbuckets, n;
    dent_t *mru, *lru;
    uint64_t bytes;
    uint64_t tick;
} dindex_t;

/* A new entry (not in the index yet); NULL when memory ran out. */
dent_t *dx_new(const char *name, pt_str_t key, uint64_t khash, uint64_t nhash, uint64_t size);
/* Adds e, the most recently used (or, tail, the least). */
bool dx_add(dindex_t *x, dent_t *e, bool tail);
/* The entry of that file name among the key hash's; NULL. */
dent_t *dx_find(dindex_t *x, uint64_t khash, const char *name);
/* The first entry of key hash khash after `after` (NULL: the first). */
dent_t *dx_next_of(dindex_t *x, uint64_t khash, dent_t *after);
/* Takes e out (the caller frees it). */
void dx_remove(dindex_t *x, dent_t *e);
/* Makes e the most recently used. */
void dx_touch(dindex_t *x, dent_t *e);
/* Is e's key this one? */
bool dx_is_key(const dent_t *e, pt_str_t key);
/* Empties the index, freeing every entry. */
void dx_clear(dindex_t *x);

#endif
