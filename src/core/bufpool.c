/* Connection buffers: two free lists per process (bufpool.h).  The fast
 * paths are inline in bufpool.h; here are the slow ones (an empty list, a
 * list past its bound, every call under ASan) and the heartbeat's trim. */
#include "config.h"

#include <malloc.h>
#include <stdlib.h>

#include "portico/bufpool.h"

#if PT_BUF_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* What a worker keeps free, at least: 1 MiB of each size.  Past that it
 * keeps what it had out at its peak since the last heartbeat, so that a
 * steady load of many connections does not free and take again a block
 * for every request (a 64 KiB block freed at the heap's top goes back to
 * the system and faults in again); a heartbeat with a lower peak frees
 * the rest of a burst. */
#define SMALL_KEEP 256
#define LARGE_KEEP 16
/* Freed since the last trim before the next one is worth its walk of the
 * allocator's free lists. */
#define TRIM_AFTER (1024 * 1024)

pt_buf_pool_t pt_buf_pools[2] = {{.keep = SMALL_KEEP, .size = PT_BUF_SMALL},
                                 {.keep = LARGE_KEEP, .size = PT_BUF_LARGE}};
static size_t freed_since_trim;
static uint64_t trims;

static size_t limit_of(const pt_buf_pool_t *p)
{
    return p->peak > p->keep ? p->peak : p->keep;
}

void *pt_buf_get_slow(pt_buf_pool_t *p)
{
    void **b = p->head;
    if (b) {
        UNPOISON(b, p->size);
        p->head = *b;
        p->nfree--;
    } else if (!(b = malloc(p->size))) {
        return NULL;
    }
    if (++p->out > p->peak)
        p->peak = p->out;
    return b;
}

void pt_buf_put_slow(pt_buf_pool_t *p, void *b)
{
    p->out--;
    if (p->nfree + p->out + 1 > limit_of(p)) {
        free(b);
        freed_since_trim += p->size;
        return;
    }
    *(void **)b = p->head;
    p->head = b;
    p->nfree++;
    POISON(b, p->size);
}

/* Frees free blocks until `keep` are left. */
static void drop_free(pt_buf_pool_t *p, size_t keep)
{
    while (p->nfree > keep) {
        void **b = p->head;
        UNPOISON(b, p->size);
        p->head = *b;
        p->nfree--;
        free(b);
        freed_since_trim += p->size;
    }
}

void pt_buf_free_all(void)
{
    drop_free(&pt_buf_pools[0], 0);
    drop_free(&pt_buf_pools[1], 0);
}

void pt_buf_trim(void)
{
    for (size_t i = 0; i < 2; i++) {
        pt_buf_pool_t *p = &pt_buf_pools[i];
        size_t limit = limit_of(p);
        drop_free(p, limit > p->out ? limit - p->out : 0);
        p->peak = p->out; /* the next interval's peak starts from now */
    }
    if (freed_since_trim < TRIM_AFTER)
        return;
    freed_since_trim = 0;
    trims++;
#if !PT_BUF_ASAN
    malloc_trim(0);
#endif
}

void pt_buf_stats(pt_buf_stats_t *s)
{
    const pt_buf_pool_t *sm = &pt_buf_pools[0], *lg = &pt_buf_pools[1];
    *s = (pt_buf_stats_t){sm->out, lg->out, sm->nfree, lg->nfree, trims};
}
