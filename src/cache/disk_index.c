/* The cache disk process's index of its files (disk-index.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "disk-index.h"

dent_t *dx_new(const char *name, pt_str_t key, uint64_t khash, uint64_t nhash, uint64_t size)
{
    dent_t *e = malloc(sizeof(*e) + key.n);
    if (!e)
        return NULL;
    *e = (dent_t){.khash = khash, .nhash = nhash, .size = size, .key_len = (uint32_t)key.n};
    memcpy(e->name, name, sizeof(e->name));
    memcpy(e->key, key.p, key.n);
    return e;
}

static dent_t **bucket(dindex_t *x, uint64_t khash)
{
    return &x->buckets[khash & (x->nbuckets - 1)];
}

/* Doubles the table once it has more entries than buckets. */
static bool grow(dindex_t *x)
{
    size_t n = x->nbuckets ? x->nbuckets * 2 : 1024;
    dent_t **b = calloc(n, sizeof(*b));
    if (!b)
        return false;
    for (size_t i = 0; i < x->nbuckets; i++)
        for (dent_t *e = x->buckets[i], *next; e; e = next) {
            next = e->chain;
            e->chain = b[e->khash & (n - 1)];
            b[e->khash & (n - 1)] = e;
        }
    free(x->buckets);
    x->buckets = b;
    x->nbuckets = n;
    return true;
}

static void link_front(dindex_t *x, dent_t *e)
{
    e->prev = NULL;
    e->next = x->mru;
    if (x->mru)
        x->mru->prev = e;
    x->mru = e;
    if (!x->lru)
        x->lru = e;
}

static void link_back(dindex_t *x, dent_t *e)
{
    e->next = NULL;
    e->prev = x->lru;
    if (x->lru)
        x->lru->next = e;
    x->lru = e;
    if (!x->mru)
        x->mru = e;
}

static void unlink_lru(dindex_t *x, dent_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        x->mru = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        x->lru = e->prev;
    e->prev = e->next = NULL;
}

bool dx_add(dindex_t *x, dent_t *e, bool tail)
{
    if (x->n >= x->nbuckets && !grow(x))
        return false;
    dent_t **b = bucket(x, e->khash);
    e->chain = *b;
    *b = e;
    if (tail)
        link_back(x, e);
    else
        link_front(x, e);
    e->used = tail ? 0 : ++x->tick;
    x->n++;
    x->bytes += e->size;
    return true;
}

dent_t *dx_find(dindex_t *x, uint64_t khash, const char *name)
{
    for (dent_t *e = x->nbuckets ? *bucket(x, khash) : NULL; e; e = e->chain)
        if (e->khash == khash && strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

dent_t *dx_next_of(dindex_t *x, uint64_t khash, dent_t *after)
{
    dent_t *e = after ? after->chain : x->nbuckets ? *bucket(x, khash) : NULL;
    while (e && e->khash != khash)
        e = e->chain;
    return e;
}

void dx_remove(dindex_t *x, dent_t *e)
{
    for (dent_t **p = bucket(x, e->khash); *p; p = &(*p)->chain)
        if (*p == e) {
            *p = e->chain;
            break;
        }
    unlink_lru(x, e);
    x->n--;
    x->bytes -= e->size;
}

void dx_touch(dindex_t *x, dent_t *e)
{
    e->used = ++x->tick;
    if (x->mru != e) {
        unlink_lru(x, e);
        link_front(x, e);
    }
}

bool dx_is_key(const dent_t *e, pt_str_t key)
{
    return e->key_len == key.n && memcmp(e->key, key.p, key.n) == 0;
}

void dx_clear(dindex_t *x)
{
    for (dent_t *e = x->mru, *next; e; e = next) {
        next = e->next;
        free(e);
    }
    free(x->buckets);
    *x = (dindex_t){0};
}
