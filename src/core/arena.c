#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "portico/arena.h"

struct pt_arena_chunk {
    pt_arena_chunk_t *next;
    size_t size, off;
    _Alignas(max_align_t) unsigned char data[];
};

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
    pt_arena_chunk_t *c = malloc(sizeof(*c) + size);
    if (!c)
        return NULL;
    c->size = size;
    c->off = 0;
    c->next = a->head;
    a->head = c;
    return c;
}

void *pt_arena_alloc(pt_arena_t *a, size_t n)
{
    n = ALIGN(n ? n : 1);
    if (a->budget && a->used + n > a->budget) {
        a->overflow = true;
        return NULL;
    }
    pt_arena_chunk_t *c = a->head;
    if (!c || c->size - c->off < n) {
        /* A big allocation gets its own chunk behind the current one, so the
         * free space left in the current chunk is not wasted. */
        if (c && n > a->chunk_size / 4) {
            pt_arena_chunk_t *big = malloc(sizeof(*big) + n);
            if (!big) {
                a->overflow = true;
                return NULL;
            }
            big->size = big->off = n;
            big->next = c->next;
            c->next = big;
            a->used += n;
            return big->data;
        }
        if (!(c = add_chunk(a, n))) {
            a->overflow = true;
            return NULL;
        }
    }
    void *p = c->data + c->off;
    c->off += n;
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

void pt_arena_reset(pt_arena_t *a)
{
    pt_arena_chunk_t *c = a->head;
    if (!c)
        return;
    /* Keep the oldest chunk (the last in the list): it is the usual size. */
    while (c->next) {
        pt_arena_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    c->off = 0;
    a->head = c;
    a->used = 0;
    a->overflow = false;
}

void pt_arena_free(pt_arena_t *a)
{
    pt_arena_chunk_t *c = a->head;
    while (c) {
        pt_arena_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->used = 0;
}
