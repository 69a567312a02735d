/* The memory of an idle HTTP/2 session (h2_mem.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "portico/h2_mem.h"

/* nghttp2 asks for its frame buffer (NGHTTP2_FRAMEBUF_CHUNKLEN: 9 + 1 +
 * 16384 bytes) with realloc(NULL, n), first of the blocks that big; its
 * stream table (256 buckets of 16 bytes) with calloc. */
#define FBUF_MIN 16384
#define PAGE 4096

/* Per process (a worker): the idle sessions, oldest first. */
static pt_h2_mem_t *first, *last;

static int find(const pt_h2_mem_t *m, const void *p)
{
    for (int i = 0; p && i < PT_H2_MEM_BLOCKS; i++)
        if (m->blk[i].p == p)
            return i;
    return -1;
}

/* A block on whole pages, remembered in a free slot; NULL when there is
 * none (the caller allocates as usual) or out of memory. */
static void *paged(pt_h2_mem_t *m, size_t n, bool zero)
{
    int i = 0;
    while (i < PT_H2_MEM_BLOCKS && m->blk[i].p)
        i++;
    void *p;
    if (i == PT_H2_MEM_BLOCKS || posix_memalign(&p, PAGE, n))
        return NULL;
    if (zero)
        memset(p, 0, n);
    m->blk[i].p = p;
    m->blk[i].n = n;
    return p;
}

static void *mem_malloc(size_t n, void *u)
{
    (void)u;
    return malloc(n);
}

static void mem_free(void *p, void *u)
{
    pt_h2_mem_t *m = u;
    int i = find(m, p);
    if (i >= 0) {
        m->blk[i].p = NULL;
        if (m->fbuf == i)
            m->fbuf = -1;
    }
    free(p);
}

static void *mem_calloc(size_t n, size_t size, void *u)
{
    pt_h2_mem_t *m = u;
    void *p = n && size <= SIZE_MAX / n && n * size >= PAGE ? paged(m, n * size, true) : NULL;
    return p ? p : calloc(n, size);
}

static void *mem_realloc(void *p, size_t n, void *u)
{
    pt_h2_mem_t *m = u;
    if (!p && n >= FBUF_MIN && m->fbuf < 0) {
        void *q = paged(m, n, false);
        if (q) {
            m->fbuf = find(m, q);
            return q;
        }
    }
    int i = find(m, p);
    void *q = realloc(p, n);
    if (q && i >= 0) { /* moved or grown: whole pages inside it are still found */
        m->blk[i].p = q;
        m->blk[i].n = n;
    }
    return q;
}

nghttp2_mem pt_h2_mem_allocator(pt_h2_mem_t *m)
{
    *m = (pt_h2_mem_t){.fbuf = -1};
    return (nghttp2_mem){m, mem_malloc, mem_free, mem_calloc, mem_realloc};
}

void pt_h2_mem_idle(pt_h2_mem_t *m, int64_t now_ms)
{
    if (m->listed)
        return;
    m->listed = true;
    m->idle_since_ms = now_ms;
    m->next = NULL;
    m->prev = last;
    if (last)
        last->next = m;
    else
        first = m;
    last = m;
}

void pt_h2_mem_busy(pt_h2_mem_t *m)
{
    if (!m->listed)
        return;
    if (m->prev)
        m->prev->next = m->next;
    else
        first = m->next;
    if (m->next)
        m->next->prev = m->prev;
    else
        last = m->prev;
    m->prev = m->next = NULL;
    m->listed = false;
}

/* Is p[0..PAGE) all zeros? */
static bool zero_page(const unsigned char *p)
{
    const uint64_t *w = (const uint64_t *)p;
    uint64_t any = 0;
    for (size_t i = 0; i < PAGE / sizeof(*w); i++)
        any |= w[i];
    return !any;
}

/* The whole pages of block i that may go: all of the frame buffer's (its
 * bytes are dead while the session is idle), those of another that read
 * all zeros (nothing changes when they come back as zeros). */
static size_t give_back(pt_h2_mem_t *m, int i)
{
    uintptr_t from = ((uintptr_t)m->blk[i].p + PAGE - 1) & ~(uintptr_t)(PAGE - 1);
    uintptr_t to = ((uintptr_t)m->blk[i].p + m->blk[i].n) & ~(uintptr_t)(PAGE - 1);
    size_t n = 0;
    uintptr_t run = from; /* the start of the pages that may go, one madvise for them */
    for (uintptr_t pg = from; pg <= to; pg += PAGE) {
        if (pg < to && (i == m->fbuf || zero_page((const unsigned char *)pg)))
            continue;
        if (pg > run && madvise((void *)run, pg - run, MADV_DONTNEED) == 0)
            n += (pg - run) / PAGE;
        run = pg + PAGE;
    }
    return n;
}

size_t pt_h2_mem_trim(int64_t now_ms)
{
    size_t n = 0;
    while (first && now_ms - first->idle_since_ms >= PT_H2_MEM_IDLE_MS) {
        pt_h2_mem_t *m = first;
        pt_h2_mem_busy(m);
        for (int i = 0; i < PT_H2_MEM_BLOCKS; i++)
            if (m->blk[i].p)
                n += give_back(m, i);
    }
    return n;
}
