/* Arenas: allocation bumps a pointer, everything is freed at once.
 *
 * A growable arena (pt_arena_init with budget 0) chains new chunks as
 * needed: the configuration of one generation lives in one.  A bounded arena
 * (budget > 0) never grows past its budget: allocation past it returns NULL
 * and sets `overflow`, so a request cannot take more memory than its budget.
 *
 * In an AddressSanitizer build the arena poisons every byte it has not handed
 * out: the slack of a chunk, a redzone after each allocation (so reading one
 * byte past an allocation is reported) and, after pt_arena_reset, everything
 * (so a pointer kept across a reset is reported as a use after free).  The
 * redzones use chunk room but no budget. */
#ifndef PORTICO_ARENA_H
#define PORTICO_ARENA_H

#include <stdbool.h>
#include <stddef.h>

#include "portico/str.h"

typedef struct pt_arena_chunk pt_arena_chunk_t;

/* A chunk's own bookkeeping; an arena with chunk size PT_ARENA_BLOCK_CHUNK
 * takes its chunks from the connection buffer pool (bufpool.h) and gives
 * them back there. */
#define PT_ARENA_CHUNK_HDR 32
#define PT_ARENA_BLOCK_CHUNK (4096 - PT_ARENA_CHUNK_HDR)

typedef struct pt_arena {
    pt_arena_chunk_t *head;
    size_t chunk_size;
    size_t budget; /* 0: unbounded */
    size_t used;   /* bytes handed out, for the budget */
    bool overflow;
} pt_arena_t;

void pt_arena_init(pt_arena_t *a, size_t chunk_size, size_t budget);
/* Returns `n` bytes aligned for any type, or NULL (overflow set). */
void *pt_arena_alloc(pt_arena_t *a, size_t n);
void *pt_arena_zalloc(pt_arena_t *a, size_t n);
char *pt_arena_strndup(pt_arena_t *a, const char *s, size_t n);
char *pt_arena_strdup(pt_arena_t *a, const char *s);
char *pt_arena_printf(pt_arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Frees every chunk but the first and rewinds it: cheap reuse. */
void pt_arena_reset(pt_arena_t *a);
/* Frees everything. */
void pt_arena_free(pt_arena_t *a);

#endif
