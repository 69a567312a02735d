/* Connection buffers: slabs, and two lists per size (bufpool.h).  The fast
 * paths are inline in bufpool.h; here are the slow ones (no resident free
 * block, a free list past its bound, every call under ASan) and the
 * heartbeat's trim. */
#include "config.h"

#include <malloc.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "portico/bufpool.h"

#if PT_BUF_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* What a worker keeps free and resident, at least: 1 MiB of each size.
 * Past that it keeps what it had out at its peak since the last
 * heartbeat, so that a steady load of many connections does not give
 * pages back and fault them in again for every request; a heartbeat with
 * a lower peak gives back the rest of a burst. */
#define SMALL_KEEP 256
#define LARGE_KEEP 16
#define SLAB (1024 * 1024)
#define PAGE 4096
/* Given back since the last trim before malloc is asked to give back what
 * the connections of a burst freed too. */
#define TRIM_AFTER (1024 * 1024)

pt_buf_pool_t pt_buf_pools[2] = {{.keep = SMALL_KEEP, .size = PT_BUF_SMALL},
                                 {.keep = LARGE_KEEP, .size = PT_BUF_LARGE}};
static size_t released_since_trim;
static uint64_t trims;

static size_t limit_of(const pt_buf_pool_t *p)
{
    return p->peak > p->keep ? p->peak : p->keep;
}

/* A new slab to carve blocks from (its pages come in as they are used). */
static bool new_slab(pt_buf_pool_t *p)
{
    void **slabs = realloc(p->slabs, (p->nslabs + 1) * sizeof(*slabs));
    if (!slabs)
        return false;
    p->slabs = slabs;
    void *s;
    if (posix_memalign(&s, PAGE, SLAB))
        return false;
    p->slabs[p->nslabs++] = s;
    p->bump = s;
    p->end = (char *)s + SLAB;
    return true;
}

void *pt_buf_get_slow(pt_buf_pool_t *p)
{
    void **b = p->head;
    if (b) {
        UNPOISON(b, p->size);
        p->head = *b;
        p->nfree--;
    } else if (p->ncold) {
        b = p->cold[--p->ncold];
        UNPOISON(b, p->size);
    } else {
        if (p->bump == p->end && !new_slab(p))
            return NULL;
        b = (void **)p->bump;
        p->bump += p->size;
        UNPOISON(b, p->size);
    }
    if (++p->out > p->peak)
        p->peak = p->out;
    return b;
}

/* A free block kept resident, for the next taker. */
static void push_hot(pt_buf_pool_t *p, void *b)
{
    *(void **)b = p->head;
    p->head = b;
    p->nfree++;
    POISON(b, p->size);
}

/* A free block's pages go back to the system; the block waits, cold. */
static void give_back(pt_buf_pool_t *p, void *b)
{
    if (p->ncold == p->coldcap) {
        size_t cap = p->coldcap ? p->coldcap * 2 : 1024;
        void **cold = realloc(p->cold, cap * sizeof(*cold));
        if (!cold) { /* keep it resident, then */
            push_hot(p, b);
            return;
        }
        p->cold = cold;
        p->coldcap = cap;
    }
    madvise(b, p->size, MADV_DONTNEED);
    p->cold[p->ncold++] = b;
    POISON(b, p->size);
    released_since_trim += p->size;
}

void pt_buf_put_slow(pt_buf_pool_t *p, void *b)
{
    p->out--;
    if (p->nfree + p->out + 1 > limit_of(p)) {
        give_back(p, b);
        return;
    }
    push_hot(p, b);
}

void pt_buf_free_all(void)
{
    for (size_t i = 0; i < 2; i++) {
        pt_buf_pool_t *p = &pt_buf_pools[i];
        for (size_t k = 0; k < p->nslabs; k++) {
            UNPOISON(p->slabs[k], SLAB);
            free(p->slabs[k]);
        }
        free(p->slabs);
        free(p->cold);
        *p = (pt_buf_pool_t){.keep = p->keep, .size = p->size};
    }
}

void pt_buf_trim(void)
{
    for (size_t i = 0; i < 2; i++) {
        pt_buf_pool_t *p = &pt_buf_pools[i];
        size_t limit = limit_of(p), keep = limit > p->out ? limit - p->out : 0;
        while (p->nfree > keep) {
            void **b = p->head;
            UNPOISON(b, sizeof(*b));
            p->head = *b;
            p->nfree--;
            give_back(p, b);
        }
        p->peak = p->out; /* the next interval's peak starts from now */
    }
    if (released_since_trim < TRIM_AFTER)
        return;
    released_since_trim = 0;
    trims++;
#if !PT_BUF_ASAN
    malloc_trim(0); /* what the burst's connections freed in the heap */
#endif
}

void pt_buf_stats(pt_buf_stats_t *s)
{
    const pt_buf_pool_t *sm = &pt_buf_pools[0], *lg = &pt_buf_pools[1];
    *s = (pt_buf_stats_t){sm->out, lg->out, sm->nfree, lg->nfree, sm->ncold, lg->ncold, trims};
}
