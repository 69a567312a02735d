#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "portico/arena.h"
#include "portico/bufpool.h"

/* Under AddressSanitizer the arena poisons what it has not handed out, as
 * varnish's workspace emulator does: a chunk's slack is poisoned, each
 * allocation is unpoisoned to its exact size and followed by a poisoned
 * redzone, and a reset poisons the whole kept chunk.  So reading past an
 * allocation, or through a pointer kept across a reset, is reported as
 * any heap overflow or use after free is. */
#if defined(__SANITIZE_ADDRESS__)
#define ARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_ASAN 1
#endif
#endif

#ifdef ARENA_ASAN
#include <sanitizer/asan_interface.h>
#define REDZONE _Alignof(max_align_t)
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define REDZONE 0
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

struct pt_arena_chunk {
    pt_arena_chunk_t *next;
    size_t size, off;
    _Alignas(max_align_t) unsigned char data[];
};

_Static_assert(sizeof(pt_arena_chunk_t) == PT_ARENA_CHUNK_HDR, "PT_ARENA_BLOCK_CHUNK makes one PT_BUF_SMALL block");

/* A chunk of the size of a pool block comes from the pool (a connection's
 * request arena, given back when the connection is idle). */
static pt_arena_chunk_t *chunk_mem(size_t size)
{
    size_t total = sizeof(pt_arena_chunk_t) + size;
    return total == PT_BUF_SMALL ? pt_buf_get(PT_BUF_SMALL) : malloc(total);
}

#define ALIGN(n) (((n) + _Alignof(max_align_t) - 1) & ~(size_t)(_Alignof(max_align_t) - 1))

void pt_arena_init(pt_arena_t *a, size_t chunk_size, size_t budget)
{
    a->head = NULL;
    a->chunk_size = chunk_size ? chunk_size : 4096;
    a->budget = budget;
    a->used = 0;
    a->overflow = false;
}

static pt_arena_chunk_t *add_chunk(pt_arena_t *a, size_t need)
{
    size_t size = need > a->chunk_size ? need : a->chunk_size;
    pt_arena_chunk_t *c = chunk_mem(size);
    if (!c)
        return NULL;
    POISON(c->data, size);
    c->size = size;
    c->off = 0;
    c->next = a->head;
    a->head = c;
    return c;
}

void *pt_arena_alloc(pt_arena_t *a, size_t n)
{
    size_t want = n; /* what the caller may touch; the rest stays poisoned */
    n = ALIGN(n ? n : 1);
    if (a->budget && a->used + n > a->budget) {
        a->overflow = true;
        return NULL;
    }
    /* The redzone takes room in the chunk but not in the budget, so that a
     * request overflows at the same point with and without ASan. */
    size_t take = n + REDZONE;
    pt_arena_chunk_t *c = a->head;
    if (!c || c->size - c->off < take) {
        /* A big allocation gets its own chunk behind the current one, so the
         * free space left in the current chunk is not wasted. */
        if (c && take > a->chunk_size / 4) {
            pt_arena_chunk_t *big = chunk_mem(take);
            if (!big) {
                a->overflow = true;
                return NULL;
            }
            POISON(big->data, take);
            UNPOISON(big->data, want);
            big->size = big->off = take;
            big->next = c->next;
            c->next = big;
            a->used += n;
            return big->data;
        }
        if (!(c = add_chunk(a, take))) {
            a->overflow = true;
            return NULL;
        }
    }
    void *p = c->data + c->off;
    UNPOISON(p, want);
    c->off += take;
    a->used += n;
    return p;
}

void *pt_arena_zalloc(pt_arena_t *a, size_t n)
{
    void *p = pt_arena_alloc(a, n);
    if (p)
        memset(p, 0, n);
    return p;
}

char *pt_arena_strndup(pt_arena_t *a, const char *s, size_t n)
{
    char *p = pt_arena_alloc(a, n + 1);
    if (p) {
        if (n)
            memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

char *pt_arena_strdup(pt_arena_t *a, const char *s)
{
    return pt_arena_strndup(a, s, strlen(s));
}

char *pt_arena_printf(pt_arena_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = pt_arena_alloc(a, (size_t)n + 1);
    if (p) {
        va_start(ap, fmt);
        vsnprintf(p, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return p;
}

/* Hands a chunk back to malloc clean: the allocator poisons freed memory
 * its own way and should not find ours on memory it gives out again. */
static void free_chunk(pt_arena_chunk_t *c)
{
    UNPOISON(c->data, c->size);
    if (sizeof(*c) + c->size == PT_BUF_SMALL)
        pt_buf_put(c, PT_BUF_SMALL);
    else
        free(c);
}

void pt_arena_reset(pt_arena_t *a)
{
    /* Keep one chunk of the usual size, the oldest.  Not simply the last in
     * the list: a big allocation's own chunk is linked behind the head, so
     * with one usual chunk the last is the big one, and keeping it would
     * hold that much memory for the arena's life. */
    pt_arena_chunk_t *keep = NULL;
    for (pt_arena_chunk_t *c = a->head; c; c = c->next)
        if (c->size == a->chunk_size)
            keep = c;
    for (pt_arena_chunk_t *c = a->head, *next; c; c = next) {
        next = c->next;
        if (c != keep)
            free_chunk(c);
    }
    if (keep) {
        POISON(keep->data, keep->size);
        keep->off = 0;
        keep->next = NULL;
    }
    a->head = keep;
    a->used = 0;
    a->overflow = false;
}

void pt_arena_free(pt_arena_t *a)
{
    pt_arena_chunk_t *c = a->head;
    while (c) {
        pt_arena_chunk_t *next = c->next;
        free_chunk(c);
        c = next;
    }
    a->head = NULL;
    a->used = 0;
}
