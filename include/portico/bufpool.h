/* Connection buffers, in two sizes, held only while there is work.
 *
 * PT_BUF_SMALL blocks are a client connection's first input buffer, its
 * request arena's chunk and its output queue's segments (with their first
 * copied bytes); PT_BUF_LARGE ones are an upstream connection's input
 * buffer.  A connection with nothing to do (an idle keep-alive client, a
 * pooled upstream connection) gives them back, and takes them again when
 * bytes arrive, as nginx's keep-alive handler does.
 *
 * Blocks are carved from slabs of 1 MiB (so they never sit between the
 * small objects of the heap, where a freed block's pages could not go
 * back to the system while a neighbour lives).  Each process keeps a free
 * list of each size (a worker is a process: no locks), bounded by the
 * most blocks it had out at once since its last heartbeat (and at least
 * 1 MiB of each), so a steady load takes and gives back without a system
 * call.  Past the bound a block's pages go back to the system
 * (MADV_DONTNEED) and the block waits, cold, on a second list: a burst of
 * connections leaves no resident memory once it is over.  pt_buf_trim
 * (the heartbeat) does that for what a past burst left free, and asks
 * malloc to give back what the burst's connections freed.  In an
 * AddressSanitizer build a free block is poisoned: a pointer kept into a
 * released buffer is reported. */
#ifndef PORTICO_BUFPOOL_H
#define PORTICO_BUFPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PT_BUF_SMALL 4096
#define PT_BUF_LARGE (64 * 1024)

#if defined(__SANITIZE_ADDRESS__)
#define PT_BUF_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PT_BUF_ASAN 1
#endif
#endif
#ifndef PT_BUF_ASAN
#define PT_BUF_ASAN 0 /* with ASan every block goes through bufpool.c, which poisons free ones */
#endif

/* A size's blocks (the two are bufpool.c's; inline below for the fast
 * path). */
typedef struct pt_buf_pool {
    void *head; /* free blocks, resident: each starts with the next one's address */
    size_t nfree, out, keep, size;
    size_t peak;     /* the most handed out at once since the last heartbeat */
    char *bump, *end; /* the newest slab's blocks not handed out yet */
    void **cold;     /* free blocks whose pages went back to the system */
    size_t ncold, coldcap;
    void **slabs;
    size_t nslabs;
} pt_buf_pool_t;
extern pt_buf_pool_t pt_buf_pools[2];
void *pt_buf_get_slow(pt_buf_pool_t *p);
void pt_buf_put_slow(pt_buf_pool_t *p, void *b);

static inline pt_buf_pool_t *pt_buf_pool(size_t size)
{
    return &pt_buf_pools[size != PT_BUF_SMALL];
}

/* A block of `size` (PT_BUF_SMALL or PT_BUF_LARGE), or NULL when out of
 * memory. */
static inline void *pt_buf_get(size_t size)
{
    pt_buf_pool_t *p = pt_buf_pool(size);
    void **b = (void **)p->head;
    if (!b || PT_BUF_ASAN)
        return pt_buf_get_slow(p);
    p->head = *b;
    p->nfree--;
    if (++p->out > p->peak)
        p->peak = p->out;
    return b;
}

/* Gives back a block pt_buf_get(size) returned; NULL is ignored. */
static inline void pt_buf_put(void *b, size_t size)
{
    if (!b)
        return;
    pt_buf_pool_t *p = pt_buf_pool(size);
    size_t limit = p->peak > p->keep ? p->peak : p->keep;
    if (PT_BUF_ASAN || p->nfree + p->out > limit) {
        pt_buf_put_slow(p, b);
        return;
    }
    *(void **)b = p->head;
    p->head = b;
    p->nfree++;
    p->out--;
}
/* Frees every slab (a worker's exit: no block may be in use). */
void pt_buf_free_all(void);
/* The heartbeat: frees the free blocks past the last interval's peak,
 * and returns free memory to the system when enough was freed since the
 * last time it did (cheap otherwise). */
void pt_buf_trim(void);

typedef struct pt_buf_stats {
    uint64_t small_out, large_out;   /* blocks handed out now */
    uint64_t small_free, large_free; /* free and resident */
    uint64_t small_cold, large_cold; /* free, their pages given back */
    uint64_t trims;                  /* heartbeats that gave memory back */
} pt_buf_stats_t;
void pt_buf_stats(pt_buf_stats_t *s);

#endif
