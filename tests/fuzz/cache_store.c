/* libFuzzer target: the response cache's store (cache_store.h) driven by
 * a program of operations read from the bytes: four writers beginning,
 * appending (their own bytes, or another object's), committing and
 * aborting objects of a few keys and variants; lookups and reads;
 * invalidations, purges, metadata updates, fetch locks; pins and unpins;
 * in a 1 MiB cache, so that eviction runs all the time.
 * Invariants checked: no crash; after every operation the blocks of the
 * live objects, the free blocks and the blocks never taken add up to all
 * of them, and the LRU list holds exactly the committed objects; what a
 * lookup finds is an object of that key and variant, whose bytes read
 * back as written; a commit is seen by the next lookup, an invalidation
 * too; a pinned object's bytes stay as written, whatever was evicted,
 * purged or replaced meanwhile, until it is unpinned; and when every
 * writer has stopped, every pin is let go and everything is purged, no
 * block is left in use. */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include "../../src/cache/store-int.h"
#include "portico/assert.h"
#include "portico/cache_store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WRITERS 4
#define KEYS 6
#define IDS 4096

static const char *const keys[KEYS] = {"/a", "/a/b", "/a/bc", "/b", "/long/key/that/goes/on/and/on", ""};
static const char *const vnames[] = {"", "accept", "accept-language"};
static const char *const vvalues[] = {"x", "yy", ""};

typedef struct prog {
    const uint8_t *p;
    size_t n;
} prog_t;

typedef struct writer {
    pt_cache_writer_t w;
    uint32_t id;
    unsigned key, var;
} writer_t;

/* A pin held, and what its object must read as. */
typedef struct held {
    pt_cache_pin_t *p;
    uint32_t id;
    uint64_t len;
    bool mixed;
    int column;
} held_t;

#define HELD 8

static writer_t writers[WRITERS];
static held_t held[HELD];
static bool mixed[IDS]; /* objects that copied bytes from another */
static uint32_t next_id;

static unsigned take(prog_t *g)
{
    if (!g->n)
        return 0;
    g->n--;
    return *g->p++;
}

/* The byte at i of object id (past its 8-byte stamp). */
static unsigned char pat(uint32_t id, uint64_t i)
{
    return (unsigned char)(id * 13u + i * 7u + (i >> 12));
}

/* The request's variant: values of `var` for whatever names. */
static long variant(pt_str_t names, char *out, size_t cap, void *arg)
{
    (void)names;
    const char *v = vvalues[*(unsigned *)arg % 3];
    size_t n = strlen(v);
    if (n > cap)
        return -1;
    memcpy(out, v, n);
    return (long)n;
}

static void consistent(pt_cache_t *ch)
{
    cache_hdr_t *H = ch->h;
    uint64_t live = 0, ready = 0, free_blocks = 0, lru = 0;
    for (uint32_t i = 0; i < H->fresh_entry; i++) {
        live += ch->e[i].state != ST_FREE ? ch->e[i].nblocks : 0;
        ready += ch->e[i].state == ST_READY;
    }
    for (uint32_t b = H->free_block; b != NIL && free_blocks <= ch->nblocks; b = ch->link[b])
        free_blocks++;
    for (uint32_t i = H->lru_head; i != NIL && lru <= ch->nentries; i = ch->e[i].next) {
        PT_ASSERT(ch->e[i].state == ST_READY);
        lru++;
    }
    PT_ASSERT(live == H->blocks_used && ready == H->objects && lru == ready);
    PT_ASSERT(live + free_blocks + (ch->nblocks - H->fresh_block) == ch->nblocks);
}

/* Looks key k up as a request of variant var; a hit must be an object of
 * that key (and variant, when it varies) whose bytes are as written.
 * Returns its id, or -1. */
static long check_lookup(pt_cache_t *ch, unsigned k, unsigned var, pt_cache_hit_t *hit)
{
    if (pt_cache_lookup(ch, pt_str_from(keys[k]), variant, &var, hit) != PT_CACHE_FOUND)
        return -1;
    uint64_t len = (uint64_t)hit->meta.head_len + hit->meta.body_len;
    unsigned char stamp[8], buf[512];
    PT_ASSERT(hit->meta.head_len == 8 && len >= 8);
    PT_ASSERT(pt_cache_read(ch, hit, 0, stamp, 8)); /* one process: nothing can free it meanwhile */
    uint32_t id;
    memcpy(&id, stamp, 4);
    PT_ASSERT(id < IDS && stamp[4] == k && (stamp[6] == 0 || stamp[5] % 3 == var % 3));
    if (!mixed[id]) {
        uint64_t off = 8 + (len - 8) / 3, n = len - off < sizeof(buf) ? len - off : sizeof(buf);
        PT_ASSERT(pt_cache_read(ch, hit, off, buf, n));
        for (uint64_t i = 0; i < n; i++)
            PT_ASSERT(buf[i] == pat(id, off + i));
    }
    return id;
}

static void op_begin(pt_cache_t *ch, prog_t *g)
{
    writer_t *w = &writers[take(g) % WRITERS];
    pt_cache_store_abort(&w->w);
    w->key = take(g) % KEYS;
    w->var = take(g);
    unsigned nm = take(g) % 3;
    w->id = next_id++ % IDS;
    mixed[w->id] = false;
    uint64_t max = 8 + (uint64_t)take(g) * 1024;
    if (!pt_cache_store_begin(ch, &w->w, pt_str_from(keys[w->key]), pt_str_from(vnames[nm]),
                              pt_str_from(vvalues[w->var % 3]), (int)(w - writers), max))
        return;
    unsigned char stamp[8] = {0};
    memcpy(stamp, &w->id, 4);
    stamp[4] = (unsigned char)w->key;
    stamp[5] = (unsigned char)(w->var % 3);
    stamp[6] = nm != 0;
    pt_cache_store_append(&w->w, stamp, 8);
}

static void op_append(prog_t *g)
{
    writer_t *w = &writers[take(g) % WRITERS];
    size_t n = (size_t)take(g) * 97 + take(g);
    unsigned char buf[256 * 97 + 256];
    for (size_t i = 0; i < n; i++)
        buf[i] = pat(w->id, w->w.len + i);
    pt_cache_store_append(&w->w, buf, n);
}

static void op_append_from(pt_cache_t *ch, prog_t *g)
{
    writer_t *w = &writers[take(g) % WRITERS];
    unsigned k = take(g) % KEYS, var = take(g);
    pt_cache_hit_t hit;
    if (!w->w.active || check_lookup(ch, k, var, &hit) < 0)
        return;
    uint64_t len = (uint64_t)hit.meta.head_len + hit.meta.body_len;
    mixed[w->id] = true;
    PT_ASSERT(pt_cache_store_append_from(&w->w, &hit, 8, len - 8) || !w->w.active);
}

static void op_commit(pt_cache_t *ch, prog_t *g)
{
    writer_t *w = &writers[take(g) % WRITERS];
    if (!w->w.active || w->w.len < 8)
        return;
    pt_cache_meta_t m = {.status = 200, .head_len = 8, .body_len = w->w.len - 8, .lifetime_ms = take(g)};
    if (!pt_cache_store_commit(&w->w, &m))
        return;
    pt_cache_hit_t hit;
    PT_ASSERT(check_lookup(ch, w->key, w->var, &hit) == (long)w->id); /* seen at once */
}

/* Pins what a lookup finds, in place h (one held there is let go). */
static void op_pin(pt_cache_t *ch, held_t *h, unsigned k, unsigned var)
{
    pt_cache_hit_t hit;
    if (h->p)
        pt_cache_unpin(h->p);
    h->p = NULL;
    long id = check_lookup(ch, k, var, &hit);
    if (id < 0)
        return;
    h->column = (int)(var % WRITERS);
    h->p = pt_cache_pin(ch, &hit, h->column);
    if (!h->p) /* a quarter of the cache pinned already (pins.c): the hit would be copied */
        return;
    h->id = (uint32_t)id;
    h->len = (uint64_t)hit.meta.head_len + hit.meta.body_len;
    h->mixed = mixed[id];
}

/* A pinned object reads as it was written, then is unpinned. */
static void op_unpin(held_t *h)
{
    if (!h->p)
        return;
    struct iovec iov[64];
    int n = pt_cache_pin_spans(h->p, 0, h->len, iov, 64);
    PT_ASSERT(n > 0); /* as much of it as 64 spans hold */
    uint64_t at = 0;
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < iov[i].iov_len; j++, at++) {
            unsigned char b = ((unsigned char *)iov[i].iov_base)[j];
            PT_ASSERT(at < 4 ? b == (unsigned char)(h->id >> (8 * at)) : at < 8 || h->mixed || b == pat(h->id, at));
        }
    PT_ASSERT(at <= h->len && (n < 64 || at == h->len || n == 64));
    pt_cache_unpin(h->p);
    h->p = NULL;
}

/* A column forgotten (its worker died): its pins are not ours any more. */
static void forget(int column)
{
    pt_caches_forget_column(column);
    for (int i = 0; i < HELD; i++)
        if (held[i].p && held[i].column == column) {
            pt_cache_unpin(held[i].p); /* its record is gone: only ours is let go */
            held[i].p = NULL;
        }
}

static void op_misc(pt_cache_t *ch, prog_t *g, unsigned op)
{
    unsigned k = take(g) % KEYS, var = take(g);
    pt_cache_hit_t hit;
    if (op == 0) {
        check_lookup(ch, k, var, &hit);
    } else if (op == 1) {
        pt_cache_invalidate(ch, pt_str_from(keys[k]));
        PT_ASSERT(check_lookup(ch, k, var, &hit) < 0);
    } else if (op == 2) {
        pt_str_t key = pt_str_from(keys[k]);
        key.n = var % (key.n + 1);
        pt_cache_purge_prefix(ch, key);
        PT_ASSERT(check_lookup(ch, k, var, &hit) < 0);
    } else if (op == 3 && check_lookup(ch, k, var, &hit) >= 0) {
        pt_cache_meta_t m = hit.meta;
        m.lifetime_ms = take(g);
        PT_ASSERT(pt_cache_update_meta(ch, &hit, &m));
    } else if (op == 4) {
        int r = pt_cache_lock(ch, pt_str_from(keys[k]), var % WRITERS, take(g), take(g));
        PT_ASSERT(r == PT_CACHE_LOCKED || r == PT_CACHE_BUSY || r == PT_CACHE_PASS);
    } else if (op == 5) {
        pt_cache_unlock(ch, pt_str_from(keys[k]), var % WRITERS, take(g));
    } else if (op == 6) {
        forget((int)(var % WRITERS));
    } else if (op == 7) {
        op_pin(ch, &held[take(g) % HELD], k, var);
    } else if (op == 8) {
        op_unpin(&held[take(g) % HELD]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pt_cache_t *ch;
    if (!ch) {
        const char *name = "fuzz";
        size_t mem = 1 << 20;
        PT_ASSERT(pt_caches_prepare(&name, &mem, 1) == 0);
        ch = pt_cache_get("fuzz");
    }
    prog_t g = {data, size};
    next_id = 0;
    while (g.n) {
        unsigned op = take(&g) % 15;
        if (op == 0)
            op_begin(ch, &g);
        else if (op <= 2)
            op_append(&g);
        else if (op == 3)
            op_append_from(ch, &g);
        else if (op == 4)
            op_commit(ch, &g);
        else if (op == 5)
            pt_cache_store_abort(&writers[take(&g) % WRITERS].w);
        else
            op_misc(ch, &g, op - 6);
        consistent(ch);
    }
    /* everything stopped and purged: nothing is left in use */
    for (int i = 0; i < WRITERS; i++)
        pt_cache_store_abort(&writers[i].w);
    for (int i = 0; i < HELD; i++)
        op_unpin(&held[i]);
    pt_cache_purge_prefix(ch, PT_STR(""));
    for (int i = 0; i < WRITERS; i++)
        pt_caches_forget_column(i);
    pt_cache_stats_t st;
    pt_cache_stats(ch, &st);
    PT_ASSERT(st.objects == 0 && st.bytes == 0);
    consistent(ch);
    return 0;
}
