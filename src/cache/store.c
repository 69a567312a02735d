/* The response cache's store (cache_store.h): one shared-memory zone per
 * cache, "cache:NAME".  Layout of the zone:
 *
 *   hdr | flock[NLOCKS] | uint32 bucket[nbuckets] | entry[nentries]
 *       | uint32 link[nblocks] | block[nblocks] of BLOCK bytes
 *
 * Why this shape:
 * - Fixed-size blocks of 4 KiB, chained by index (link[b] is the block
 *   after b): any object fits in any free blocks, so memory never
 *   fragments and never grows; a typical object (a ~300 B head and a
 *   small body) is one block, a 64 KiB body seventeen.  Smaller blocks
 *   would waste less on tiny objects but make longer chains to walk.
 * - One entry per block (an entry is ~1/25 of a block): every object takes
 *   at least one block, so entries never run out before blocks do, and
 *   eviction has one measure, blocks.
 * - An object's block chain starts with its key, the field names it
 *   varies on and its variant (lengths in the entry), then the stored head
 *   and body: the entry stays small whatever the key, and keys are only
 *   compared under the lock, after their 64-bit hashes matched.
 * - Buckets (a power of two, about one per entry) chain entries by the
 *   SipHash of the key alone: every variant of a key is in one chain.
 * - Free lists of blocks and entries; fresh ones are taken in order
 *   first, so a large cache costs its pages only as it fills.  An LRU
 *   list runs through the committed (READY) objects only: an object being
 *   written (STORING) is never evicted.
 * - Links are indexes, not pointers, as in the limits' table.
 *
 * Readers copy an object's bytes without the lock, seqlock-style: the
 * entry's generation is bumped (then a release fence) by whoever frees
 * it, under the lock, before any of its blocks can be taken again; a
 * reader copies, fences (acquire) and compares the generation with the
 * one its lookup saw.  A walk over blocks being reused is bounded by the
 * object's block count and checks every index, so it can only copy
 * garbage, which the generation check then refuses.
 *
 * The fetch locks of collapsed forwarding are a small open-addressed
 * table in the same zone, under the same lock (locks.c). */
#include "config.h"

#include <errno.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/assert.h"
#include "portico/cache_disk.h"
#include "portico/cache_store.h"
#include "portico/digest.h"
#include "portico/log.h"
#include "portico/zone.h"

#include "disk-int.h"
#include "store-int.h"

#define MAGIC 0x4341434845530002ull /* "CACHES" v2: with the pin table */
#define CACHE_MAGIC 0x43414348u      /* pt_cache_t, in process memory */
#define MIN_MEMORY (1u << 20)
#define NAME_MAX_LEN 57 /* "cache:" + name fits a zone's name[64] */
#define GROW_MAX 64     /* blocks a writer takes under one hold of the lock */

_Static_assert(sizeof(entry_t) == 160, "an entry is about 1/25 of a block, as the layout says");
_Static_assert((NLOCKS & (NLOCKS - 1)) == 0, "the fetch locks' table is a power of two");

/* What a process knows of the caches of its configuration. */
static pt_cache_t **caches;
static size_t ncaches;

/* n rounded up to a cache line. */
static size_t align64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

/* Places the zone's parts for a zone of `size` bytes; false when it is
 * too small for the least cache (64 entries) or too large for 32-bit
 * indexes. */
static bool layout(pt_cache_t *ch, void *data, size_t size)
{
    size_t hsize = align64(sizeof(cache_hdr_t)), lsize = align64(NLOCKS * sizeof(flock_t));
    size_t fixed = hsize + lsize + 4 * 64 + PIN_TABLE_SIZE; /* and the alignment of the parts after */
    if (size < fixed)
        return false;
    size_t per = BLOCK + sizeof(uint32_t) + sizeof(entry_t) + sizeof(uint32_t);
    size_t n = (size - fixed) / per;
    if (n < 64 || n >= NIL)
        return false;
    uint32_t b = 1;
    while ((size_t)b * 2 <= n)
        b *= 2;
    char *p = data;
    ch->h = (cache_hdr_t *)p;
    ch->locks = (flock_t *)(p + hsize);
    ch->buckets = (uint32_t *)(p + hsize + lsize);
    ch->e = (entry_t *)(p + align64(hsize + lsize + (size_t)b * sizeof(uint32_t)));
    ch->link = (uint32_t *)((char *)ch->e + align64(n * sizeof(entry_t)));
    ch->blocks = (unsigned char *)ch->link + align64(n * sizeof(uint32_t));
    ch->pins = (uint32_t *)(ch->blocks + n * BLOCK); /* at the end: the pin table (pins.c) */
    PT_ASSERT((size_t)((char *)ch->pins + PIN_TABLE_SIZE - p) <= size);
    ch->nentries = ch->nblocks = (uint32_t)n;
    ch->nbuckets = b;
    return true;
}

/* Empties the cache: at first use, or under the lock after a process died
 * holding it.  The seeds stay: every process hashes with them.  Entries
 * handed out before get a new generation, so that no reader takes the
 * bytes of an object from before for good, and no writer of one commits
 * it; fresh entries and blocks are taken in order again. */
static void clear(pt_cache_t *ch)
{
    cache_hdr_t *H = ch->h;
    uint32_t used = H->fresh_entry < ch->nentries ? H->fresh_entry : ch->nentries;
    for (uint32_t i = 0; i < used; i++) {
        __atomic_store_n(&ch->e[i].gen, ch->e[i].gen + 1, __ATOMIC_RELAXED);
        ch->e[i].state = ST_FREE;
    }
    atomic_thread_fence(memory_order_release);
    cs_pins_clear(ch);
    for (uint32_t i = 0; i < ch->nbuckets; i++)
        ch->buckets[i] = NIL;
    memset(ch->locks, 0, NLOCKS * sizeof(flock_t));
    H->free_block = H->free_entry = NIL;
    H->fresh_block = H->fresh_entry = 0;
    H->lru_head = H->lru_tail = NIL;
    atomic_store_explicit(&H->blocks_used, 0, memory_order_relaxed);
    atomic_store_explicit(&H->objects, 0, memory_order_relaxed);
}

/* A new zone, or one laid out by another version: made empty. */
static int init(pt_cache_t *ch, size_t size)
{
    cache_hdr_t *H = ch->h;
    memset(H, 0, sizeof(*H));
    H->size = size;
    H->nentries = ch->nentries;
    H->nblocks = ch->nblocks;
    if (RAND_bytes((unsigned char *)H->seed, sizeof(H->seed)) != 1 ||
        RAND_bytes((unsigned char *)H->seed2, sizeof(H->seed2)) != 1) {
        errno = EIO;
        return -1;
    }
    clear(ch);
    H->magic = MAGIC;
    return 0;
}

/* Is the zone laid out as this process would lay it out? */
static bool kept(const pt_cache_t *ch, size_t size)
{
    const cache_hdr_t *H = ch->h;
    return H->magic == MAGIC && H->size == size && H->nentries == ch->nentries && H->nblocks == ch->nblocks;
}

/* Frees a process's view of caches (the zones stay: they are the zone
 * module's, swept by the caller). */
static void free_table(pt_cache_t **t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(t[i]);
    free(t);
}

/* Names present, unique and short enough for a zone's name; at least
 * MIN_MEMORY each. */
static bool valid_request(const char *const *names, const size_t *memory, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!names[i] || !names[i][0] || strlen(names[i]) > NAME_MAX_LEN || memory[i] < MIN_MEMORY)
            return false;
        for (size_t k = 0; k < i; k++)
            if (strcmp(names[i], names[k]) == 0)
                return false;
    }
    return true;
}

/* The cache `name` of `size` bytes, in a zone kept from before or made. */
static pt_cache_t *prepare_one(const char *name, size_t size)
{
    char zname[64];
    snprintf(zname, sizeof(zname), "cache:%s", name);
    pt_cache_t *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return NULL;
    pt_zone_t *z = pt_zone_get(zname, size);
    if (!z || !layout(ch, pt_zone_data(z), size)) {
        if (z)
            errno = EINVAL;
        free(ch);
        return NULL;
    }
    ch->magic = CACHE_MAGIC;
    ch->zone = z;
    snprintf(ch->name, sizeof(ch->name), "%s", name);
    if (pt_zone_reused(z) && kept(ch, size))
        return ch;
    if (init(ch, size) < 0) {
        free(ch);
        return NULL;
    }
    return ch;
}

/* Every cache is made before the table is swapped, so a failure leaves
 * the process's table as it was (the zones made meanwhile are the
 * caller's to abandon). */
int pt_caches_prepare(const char *const *names, const size_t *memory, size_t n)
{
    if (!valid_request(names, memory, n)) {
        errno = EINVAL;
        return -1;
    }
    pt_cache_t **t = n ? calloc(n, sizeof(*t)) : NULL;
    if (n && !t)
        return -1;
    for (size_t i = 0; i < n; i++) {
        t[i] = prepare_one(names[i], memory[i]);
        if (!t[i]) {
            int e = errno;
            free_table(t, i);
            errno = e;
            return -1;
        }
    }
    free_table(caches, ncaches);
    caches = t;
    ncaches = n;
    return 0;
}

pt_cache_t *pt_cache_get(const char *name)
{
    for (size_t i = 0; name && i < ncaches; i++)
        if (strcmp(caches[i]->name, name) == 0)
            return caches[i];
    return NULL;
}

/* ---- the lock ---- */

void cs_lock(pt_cache_t *ch)
{
    PT_CHECK_MAGIC(ch, CACHE_MAGIC);
    if (pt_zone_lock(ch->zone) == 1) {
        /* its chains and lists may be half-updated: nothing in it can be
         * trusted, and it is only a cache */
        atomic_fetch_add_explicit(&ch->h->resets, 1, memory_order_relaxed);
        pt_log_warn("cache \"%s\": a process died while changing it; it starts again empty", ch->name);
        clear(ch);
    }
}

void cs_unlock(pt_cache_t *ch)
{
    pt_zone_unlock(ch->zone);
}

/* ---- lists (under the lock) ---- */

/* A figure read by pt_cache_stats without the lock: changed under the
 * lock, so a plain load and store suffice, atomically for the reader. */
static void stat_add(_Atomic uint32_t *v, int32_t d)
{
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + (uint32_t)d, memory_order_relaxed);
}

/* Takes committed object i off the LRU list. */
static void lru_unlink(pt_cache_t *ch, uint32_t i)
{
    entry_t *e = &ch->e[i];
    if (e->prev != NIL)
        ch->e[e->prev].next = e->next;
    else
        ch->h->lru_head = e->next;
    if (e->next != NIL)
        ch->e[e->next].prev = e->prev;
    else
        ch->h->lru_tail = e->prev;
    e->prev = e->next = NIL;
}

/* Puts object i at the most recently used end. */
static void lru_front(pt_cache_t *ch, uint32_t i)
{
    entry_t *e = &ch->e[i];
    e->prev = NIL;
    e->next = ch->h->lru_head;
    if (ch->h->lru_head != NIL)
        ch->e[ch->h->lru_head].prev = i;
    ch->h->lru_head = i;
    if (ch->h->lru_tail == NIL)
        ch->h->lru_tail = i;
}

/* The bucket of a key's hash. */
static uint32_t *bucket_of(pt_cache_t *ch, uint64_t hash)
{
    return &ch->buckets[hash & (ch->nbuckets - 1)];
}

/* Takes entry i out of its bucket's chain (nothing when it is not in it);
 * the walk is bounded, in case of a chain broken by a crash. */
static void bucket_unlink(pt_cache_t *ch, uint32_t i)
{
    uint32_t *p = bucket_of(ch, ch->e[i].hash);
    for (uint32_t n = 0; *p != NIL && *p != i && n < ch->nentries; n++)
        p = &ch->e[*p].chain;
    if (*p == i)
        *p = ch->e[i].chain;
}

void cs_give_back(pt_cache_t *ch, uint32_t i)
{
    entry_t *e = &ch->e[i];
    if (e->nblocks) {
        __atomic_store_n(&ch->link[e->last], ch->h->free_block, __ATOMIC_RELAXED);
        ch->h->free_block = e->first;
        stat_add(&ch->h->blocks_used, -(int32_t)e->nblocks);
    }
    e->state = ST_FREE;
    e->dropped = 0;
    __atomic_store_n(&e->nblocks, 0, __ATOMIC_RELAXED);
    e->first = e->last = NIL;
    e->next = ch->h->free_entry;
    ch->h->free_entry = i;
}

/* Frees entry i and gives its blocks back.  Its generation changes first
 * (and a release fence follows): a reader that copied bytes written after
 * this sees it changed.  A pinned object leaves the index now and keeps
 * its blocks (ST_GONE) until its last pin goes: they are being sent. */
static void free_entry(pt_cache_t *ch, uint32_t i)
{
    entry_t *e = &ch->e[i];
    if (e->state == ST_GONE)
        return; /* out of the index already; its last unpin gives it back */
    __atomic_store_n(&e->gen, e->gen + 1, __ATOMIC_RELAXED);
    atomic_thread_fence(memory_order_release);
    if (e->state == ST_READY) {
        lru_unlink(ch, i);
        stat_add(&ch->h->objects, -1);
    }
    if (e->state != ST_FREE)
        bucket_unlink(ch, i);
    if (e->pins) {
        e->state = ST_GONE;
        return;
    }
    cs_give_back(ch, i);
}

/* Drops the least recently used committed object; false when none is. */
static bool evict_one(pt_cache_t *ch)
{
    uint32_t i = ch->h->lru_tail;
    if (i == NIL)
        return false;
    free_entry(ch, i);
    atomic_fetch_add_explicit(&ch->h->evictions, 1, memory_order_relaxed);
    return true;
}

/* A free block, evicting for it when none is; NIL when nothing is left to
 * evict (everything is being written). */
static uint32_t take_block(pt_cache_t *ch)
{
    cache_hdr_t *H = ch->h;
    for (;;) {
        uint32_t b = H->free_block;
        if (b != NIL && b < ch->nblocks) {
            H->free_block = __atomic_load_n(&ch->link[b], __ATOMIC_RELAXED);
            return b;
        }
        if (H->fresh_block < ch->nblocks)
            return H->fresh_block++;
        if (!evict_one(ch))
            return NIL;
    }
}

/* A free entry, likewise. */
static uint32_t take_entry(pt_cache_t *ch)
{
    cache_hdr_t *H = ch->h;
    for (;;) {
        uint32_t i = H->free_entry;
        if (i != NIL && i < ch->nentries) {
            H->free_entry = ch->e[i].next;
            return i;
        }
        if (H->fresh_entry < ch->nentries)
            return H->fresh_entry++;
        if (!evict_one(ch))
            return NIL;
    }
}

/* Adds a block to the end of entry i's chain (evicting for it); false
 * when none can be had. */
static bool add_block(pt_cache_t *ch, uint32_t i)
{
    uint32_t b = take_block(ch);
    if (b == NIL)
        return false;
    entry_t *e = &ch->e[i];
    __atomic_store_n(&ch->link[b], NIL, __ATOMIC_RELAXED);
    if (e->nblocks == 0)
        __atomic_store_n(&e->first, b, __ATOMIC_RELAXED);
    else
        __atomic_store_n(&ch->link[e->last], b, __ATOMIC_RELAXED);
    __atomic_store_n(&e->last, b, __ATOMIC_RELAXED);
    __atomic_store_n(&e->nblocks, e->nblocks + 1, __ATOMIC_RELAXED);
    stat_add(&ch->h->blocks_used, 1);
    return true;
}

/* ---- bytes in a chain ---- */

/* Copies [pos, pos + n) of the chain that starts at block `first` and has
 * nb blocks out to buf (IO_OUT), in from buf (IO_IN), or compares it with
 * buf (IO_CMP: true when equal).  Safe on a chain being reused under it:
 * at most nb blocks are walked and every index is checked; false then. */
static bool chain_io(const pt_cache_t *ch, uint32_t first, uint32_t nb, uint64_t pos, void *buf, size_t n,
                       int op)
{
    uint64_t k = pos / BLOCK;
    if (n == 0)
        return true;
    if (k >= nb || first >= ch->nblocks)
        return false;
    uint32_t b = first;
    for (uint64_t s = 0; s < k; s++) {
        b = __atomic_load_n(&ch->link[b], __ATOMIC_RELAXED);
        if (b >= ch->nblocks)
            return false;
    }
    size_t in = (size_t)(pos % BLOCK);
    unsigned char *p = buf;
    for (;;) {
        size_t c = BLOCK - in < n ? BLOCK - in : n;
        unsigned char *at = ch->blocks + (size_t)b * BLOCK + in;
        if (op == IO_OUT)
            memcpy(p, at, c);
        else if (op == IO_IN)
            memcpy(at, p, c);
        else if (memcmp(p, at, c) != 0)
            return false;
        p += c;
        n -= c;
        if (n == 0)
            return true;
        in = 0;
        if (++k >= nb)
            return false;
        b = __atomic_load_n(&ch->link[b], __ATOMIC_RELAXED);
        if (b >= ch->nblocks)
            return false;
    }
}

/* Are [pa, pa + n) of entry a's chain and [pb, pb + n) of b's the same? */
static bool same_bytes(pt_cache_t *ch, const entry_t *a, uint64_t pa, const entry_t *b, uint64_t pb, size_t n)
{
    unsigned char tmp[512];
    while (n) {
        size_t c = n < sizeof(tmp) ? n : sizeof(tmp);
        if (!chain_io(ch, a->first, a->nblocks, pa, tmp, c, IO_OUT) ||
            !chain_io(ch, b->first, b->nblocks, pb, tmp, c, IO_CMP))
            return false;
        pa += c;
        pb += c;
        n -= c;
    }
    return true;
}

/* Bytes of the chain before the head and body: key, names, values. */
static uint64_t prefix_len(const entry_t *e)
{
    return (uint64_t)e->key_len + e->names_len + e->values_len;
}

/* Is entry i (not free) an object of key? */
static bool has_key(pt_cache_t *ch, const entry_t *e, pt_str_t key, uint64_t hash)
{
    return e->hash == hash && e->key_len == key.n &&
           chain_io(ch, e->first, e->nblocks, 0, (void *)key.p, key.n, IO_CMP);
}

/* Two entries of the same key, variant names, variant values. */
static bool same_key(pt_cache_t *ch, const entry_t *a, const entry_t *b)
{
    return a->hash == b->hash && a->key_len == b->key_len && same_bytes(ch, a, 0, b, 0, a->key_len);
}

static bool same_names(pt_cache_t *ch, const entry_t *a, const entry_t *b)
{
    return a->nhash == b->nhash && a->names_len == b->names_len &&
           same_bytes(ch, a, a->key_len, b, b->key_len, a->names_len);
}

static bool same_values(pt_cache_t *ch, const entry_t *a, const entry_t *b)
{
    return a->vhash == b->vhash && a->values_len == b->values_len &&
           same_bytes(ch, a, a->key_len + a->names_len, b, b->key_len + b->names_len, a->values_len);
}

uint64_t cs_hash(const pt_cache_t *ch, pt_str_t s)
{
    return pt_siphash(ch->h->seed, s.p ? s.p : "", s.n);
}

/* ---- looking up and reading ---- */

/* A request's variant, hashed before the lock is taken. */
typedef struct variant {
    pt_str_t names, values;
    uint64_t nhash, vhash;
} variant_t;

/* The first committed object of key, or, given v, the one of that
 * variant; NIL. */
static uint32_t find(pt_cache_t *ch, pt_str_t key, uint64_t hash, const variant_t *v)
{
    uint32_t n = 0;
    for (uint32_t i = *bucket_of(ch, hash); i != NIL && n++ < ch->nentries; i = ch->e[i].chain) {
        const entry_t *e = &ch->e[i];
        if (e->state != ST_READY || !has_key(ch, e, key, hash))
            continue;
        if (!v)
            return i;
        if (e->nhash == v->nhash && e->names_len == v->names.n && e->vhash == v->vhash &&
            e->values_len == v->values.n &&
            chain_io(ch, e->first, e->nblocks, e->key_len, (void *)v->names.p, v->names.n, IO_CMP) &&
            chain_io(ch, e->first, e->nblocks, e->key_len + v->names.n, (void *)v->values.p, v->values.n, IO_CMP))
            return i;
    }
    return NIL;
}

/* Object i found: *hit made, and i made the most recently used. */
static int found(pt_cache_t *ch, uint32_t i, pt_cache_hit_t *hit)
{
    entry_t *e = &ch->e[i];
    *hit = (pt_cache_hit_t){.slot = i, .gen = e->gen, .meta = e->meta};
    if (ch->h->lru_head != i) {
        lru_unlink(ch, i);
        lru_front(ch, i);
    }
    return PT_CACHE_FOUND;
}

/* A key without Vary is found under one hold of the lock.  A key that
 * varies takes two: the names come out under the first, the request's
 * variant is made without the lock (the caller's function may take its
 * time), and the object of that variant is looked for under the second
 * (VARY_MISS when the key's objects changed meanwhile and none is it). */
int pt_cache_lookup(pt_cache_t *ch, pt_str_t key, pt_cache_variant_fn variant, void *arg, pt_cache_hit_t *hit)
{
    if (!ch || key.n > PT_CACHE_KEY_MAX)
        return PT_CACHE_ABSENT;
    uint64_t hash = cs_hash(ch, key);
    char names[PT_CACHE_VARIANT_MAX], values[PT_CACHE_VARIANT_MAX];
    pt_str_t nm = {names, 0};
    cs_lock(ch);
    uint32_t i = find(ch, key, hash, NULL);
    bool varies = i != NIL && ch->e[i].names_len > 0;
    int r = i == NIL ? PT_CACHE_ABSENT : PT_CACHE_VARY_MISS;
    if (i != NIL && !varies) {
        r = found(ch, i, hit);
    } else if (varies) {
        /* the key varies: its names out (the same for all its objects, as
         * commits make them), to make the request's variant without the
         * lock */
        const entry_t *e = &ch->e[i];
        nm.n = e->names_len;
        varies = chain_io(ch, e->first, e->nblocks, e->key_len, names, nm.n, IO_OUT);
    }
    cs_unlock(ch);
    if (!varies)
        return r;
    long vn = variant ? variant(nm, values, sizeof(values), arg) : -1;
    if (vn < 0 || vn > PT_CACHE_VARIANT_MAX)
        return PT_CACHE_VARY_MISS;
    variant_t v = {.names = nm, .values = {values, (size_t)vn}};
    v.nhash = cs_hash(ch, v.names);
    v.vhash = cs_hash(ch, v.values);
    cs_lock(ch);
    i = find(ch, key, hash, &v);
    if (i != NIL)
        r = found(ch, i, hit);
    else
        r = find(ch, key, hash, NULL) != NIL ? PT_CACHE_VARY_MISS : PT_CACHE_ABSENT;
    cs_unlock(ch);
    return r;
}

/* Is the object of hit still what the lookup found?  After the bytes were
 * copied: the fence orders their reads before the generation's. */
static bool still(const pt_cache_t *ch, const pt_cache_hit_t *hit)
{
    atomic_thread_fence(memory_order_acquire);
    return __atomic_load_n(&ch->e[hit->slot].gen, __ATOMIC_RELAXED) == hit->gen;
}

bool pt_cache_read(pt_cache_t *ch, const pt_cache_hit_t *hit, uint64_t off, void *out, size_t n)
{
    if (!ch || !hit || hit->slot >= ch->nentries)
        return false;
    uint64_t total = (uint64_t)hit->meta.head_len + hit->meta.body_len;
    if (off > total || n > total - off)
        return false;
    const entry_t *e = &ch->e[hit->slot];
    /* read without the lock: whatever they are, the walk is bounded and
     * the generation check below refuses them if they changed */
    uint32_t first = __atomic_load_n(&e->first, __ATOMIC_RELAXED);
    uint32_t nb = __atomic_load_n(&e->nblocks, __ATOMIC_RELAXED);
    uint64_t pre = (uint64_t)__atomic_load_n(&e->key_len, __ATOMIC_RELAXED) +
                   __atomic_load_n(&e->names_len, __ATOMIC_RELAXED) +
                   __atomic_load_n(&e->values_len, __ATOMIC_RELAXED);
    if (!chain_io(ch, first, nb, pre + off, out, n, IO_OUT))
        return false;
    return still(ch, hit);
}

/* The lengths must stay those of the stored bytes (a 304 changes the
 * freshness, not the bytes). */
bool pt_cache_update_meta(pt_cache_t *ch, const pt_cache_hit_t *hit, const pt_cache_meta_t *meta)
{
    if (!ch || !hit || hit->slot >= ch->nentries)
        return false;
    cs_lock(ch);
    entry_t *e = &ch->e[hit->slot];
    bool ok = e->gen == hit->gen && e->state == ST_READY && (uint64_t)meta->head_len + meta->body_len == e->len;
    if (ok)
        e->meta = *meta;
    cs_unlock(ch);
    if (ok && ch->disk)
        pt_cdisk_post_write(ch->disk, ch, hit->slot, hit->gen);
    return ok;
}

/* ---- writing ---- */

/* Is the writer's entry still its own (not freed by a purge at commit, a
 * reset, or the master)?  Under the lock. */
static bool mine(const pt_cache_writer_t *w)
{
    const entry_t *e = &w->ch->e[w->slot];
    return e->gen == w->gen && e->state == ST_STORING;
}

/* A new entry for key and variant v by column, its prefix written,
 * linked in its bucket, and w made its writer; false when no memory can
 * be had.  Under the lock. */
static bool start(pt_cache_t *ch, pt_cache_writer_t *w, pt_str_t key, uint64_t hash, const variant_t *v, int column)
{
    uint32_t i = take_entry(ch);
    if (i == NIL)
        return false;
    entry_t *e = &ch->e[i];
    e->state = ST_STORING;
    e->dropped = 0;
    e->column = column;
    e->hash = hash;
    e->nhash = v->nhash;
    e->vhash = v->vhash;
    e->len = 0;
    e->first = e->last = NIL;
    e->prev = e->next = NIL;
    __atomic_store_n(&e->nblocks, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&e->key_len, (uint32_t)key.n, __ATOMIC_RELAXED);
    __atomic_store_n(&e->names_len, (uint32_t)v->names.n, __ATOMIC_RELAXED);
    __atomic_store_n(&e->values_len, (uint32_t)v->values.n, __ATOMIC_RELAXED);
    uint64_t pre = prefix_len(e);
    uint32_t need = pre ? (uint32_t)((pre + BLOCK - 1) / BLOCK) : 1;
    for (uint32_t k = 0; k < need; k++)
        if (!add_block(ch, i)) {
            free_entry(ch, i); /* not in its bucket yet: unlinking finds nothing */
            return false;
        }
    chain_io(ch, e->first, e->nblocks, 0, (void *)key.p, key.n, IO_IN);
    chain_io(ch, e->first, e->nblocks, key.n, (void *)v->names.p, v->names.n, IO_IN);
    chain_io(ch, e->first, e->nblocks, key.n + v->names.n, (void *)v->values.p, v->values.n, IO_IN);
    uint32_t *b = bucket_of(ch, hash);
    e->chain = *b;
    *b = i;
    w->slot = i;
    w->gen = e->gen;
    w->tail = e->last;
    w->used = (uint32_t)(pre - (uint64_t)(need - 1) * BLOCK);
    w->active = true;
    return true;
}

bool pt_cache_store_begin(pt_cache_t *ch, pt_cache_writer_t *w, pt_str_t key, pt_str_t names, pt_str_t values,
                          int column, uint64_t max)
{
    *w = (pt_cache_writer_t){.ch = ch, .max = max, .active = false};
    if (!ch || key.n > PT_CACHE_KEY_MAX || names.n > PT_CACHE_VARIANT_MAX || values.n > PT_CACHE_VARIANT_MAX)
        return false;
    variant_t v = {.names = names, .values = names.n ? values : (pt_str_t){"", 0}}; /* no names, no variant */
    v.nhash = cs_hash(ch, v.names);
    v.vhash = cs_hash(ch, v.values);
    uint64_t hash = cs_hash(ch, key);
    cs_lock(ch);
    bool ok = start(ch, w, key, hash, &v, column);
    cs_unlock(ch);
    /* the blocks taken may have been another object's: written only after
     * this fence, so a reader of that object sees its generation changed */
    atomic_thread_fence(memory_order_release);
    return ok;
}

void pt_cache_store_abort(pt_cache_writer_t *w)
{
    if (!w->active)
        return;
    w->active = false;
    cs_lock(w->ch);
    if (mine(w))
        free_entry(w->ch, w->slot);
    cs_unlock(w->ch);
}

/* Can n more bytes be appended: within max, and within what the whole
 * cache could ever hold? */
static bool room_for(const pt_cache_writer_t *w, uint64_t n)
{
    if (__atomic_load_n(&w->ch->e[w->slot].gen, __ATOMIC_ACQUIRE) != w->gen)
        return false; /* freed under it (a reset): its blocks are not its own any more */
    const entry_t *e = &w->ch->e[w->slot];
    uint64_t pre = prefix_len(e);
    return n <= w->max - w->len && pre + w->len + n <= (uint64_t)w->ch->nblocks * BLOCK;
}

/* Moves the writer to its next block, taking enough blocks for `rest`
 * more bytes when its chain has none left.  False (the object dropped,
 * the writer inactive) when it was dropped meanwhile or no block can be
 * had even by evicting. */
static bool next_block(pt_cache_writer_t *w, uint64_t rest)
{
    pt_cache_t *ch = w->ch;
    entry_t *e = &ch->e[w->slot];
    if (__atomic_load_n(&e->gen, __ATOMIC_ACQUIRE) != w->gen) { /* freed under it: nothing is its own */
        w->active = false;
        return false;
    }
    if (w->tail != __atomic_load_n(&e->last, __ATOMIC_RELAXED)) {
        w->tail = __atomic_load_n(&ch->link[w->tail], __ATOMIC_RELAXED);
        w->used = 0;
        return true;
    }
    uint64_t want = (rest + BLOCK - 1) / BLOCK;
    if (want > GROW_MAX)
        want = GROW_MAX;
    cs_lock(ch);
    bool ok = mine(w) && !e->dropped;
    for (uint64_t k = 0; ok && k < want; k++)
        ok = add_block(ch, w->slot);
    if (!ok) {
        if (mine(w))
            free_entry(ch, w->slot);
        cs_unlock(ch);
        w->active = false;
        return false;
    }
    cs_unlock(ch);
    atomic_thread_fence(memory_order_release);
    w->tail = __atomic_load_n(&ch->link[w->tail], __ATOMIC_RELAXED);
    w->used = 0;
    return true;
}

bool pt_cache_store_append(pt_cache_writer_t *w, const void *p, size_t n)
{
    if (!w->active)
        return false;
    if (!room_for(w, n)) {
        pt_cache_store_abort(w);
        return false;
    }
    const unsigned char *s = p;
    while (n) {
        if (w->used == BLOCK && !next_block(w, n))
            return false;
        size_t c = BLOCK - w->used < n ? BLOCK - w->used : n;
        memcpy(w->ch->blocks + (size_t)w->tail * BLOCK + w->used, s, c);
        w->used += (uint32_t)c;
        w->len += c;
        s += c;
        n -= c;
    }
    return true;
}

bool pt_cache_store_append_from(pt_cache_writer_t *w, const pt_cache_hit_t *from, uint64_t off, uint64_t n)
{
    if (!w->active)
        return false;
    uint64_t total = (uint64_t)from->meta.head_len + from->meta.body_len;
    if (off > total || n > total - off || !room_for(w, n)) {
        pt_cache_store_abort(w);
        return false;
    }
    while (n) {
        if (w->used == BLOCK && !next_block(w, n))
            return false;
        size_t c = BLOCK - w->used < n ? BLOCK - w->used : (size_t)n;
        /* straight into this object's block; checked like any read */
        if (!pt_cache_read(w->ch, from, off, w->ch->blocks + (size_t)w->tail * BLOCK + w->used, c)) {
            pt_cache_store_abort(w);
            return false;
        }
        w->used += (uint32_t)c;
        w->len += c;
        off += c;
        n -= c;
    }
    return true;
}

/* The key's committed objects that object i replaces: those of the same
 * variant, and those that vary on other names (i's Vary is the key's
 * now).  Under the lock. */
static void replace_others(pt_cache_t *ch, uint32_t i)
{
    const entry_t *e = &ch->e[i];
    uint32_t n = 0;
    for (uint32_t j = *bucket_of(ch, e->hash), next; j != NIL && n++ < ch->nentries; j = next) {
        next = ch->e[j].chain;
        const entry_t *o = &ch->e[j];
        if (j == i || o->state != ST_READY || !same_key(ch, e, o))
            continue;
        if (!same_names(ch, e, o) || same_values(ch, e, o))
            free_entry(ch, j);
    }
}

/* Has the key of object i a committed object that a disk object of i's
 * variant must not replace: one of the same variant, or ones that vary
 * on other names?  Under the lock. */
static bool newer_in_memory(pt_cache_t *ch, uint32_t i)
{
    const entry_t *e = &ch->e[i];
    uint32_t n = 0;
    for (uint32_t j = *bucket_of(ch, e->hash); j != NIL && n++ < ch->nentries; j = ch->e[j].chain) {
        const entry_t *o = &ch->e[j];
        if (j != i && o->state == ST_READY && same_key(ch, e, o) && (!same_names(ch, e, o) || same_values(ch, e, o)))
            return true;
    }
    return false;
}

static bool commit(pt_cache_writer_t *w, const pt_cache_meta_t *meta, bool if_absent)
{
    if (!w->active)
        return false;
    w->active = false;
    pt_cache_t *ch = w->ch;
    cs_lock(ch);
    if (!mine(w)) {
        cs_unlock(ch);
        return false;
    }
    entry_t *e = &ch->e[w->slot];
    if (e->dropped || (uint64_t)meta->head_len + meta->body_len != w->len || (if_absent && newer_in_memory(ch, w->slot))) {
        free_entry(ch, w->slot);
        cs_unlock(ch);
        return false;
    }
    replace_others(ch, w->slot);
    e->meta = *meta;
    e->len = w->len;
    e->state = ST_READY;
    lru_front(ch, w->slot);
    stat_add(&ch->h->objects, 1);
    cs_unlock(ch);
    return true;
}

bool pt_cache_store_commit(pt_cache_writer_t *w, const pt_cache_meta_t *meta)
{
    if (!commit(w, meta, false))
        return false;
    if (w->ch->disk)
        pt_cdisk_post_write(w->ch->disk, w->ch, w->slot, w->gen);
    return true;
}

bool cs_commit_if_absent(pt_cache_writer_t *w, const pt_cache_meta_t *meta)
{
    return commit(w, meta, true);
}

/* ---- invalidation ---- */

/* Drops object i: a committed one now (counted), one being written at its
 * commit (a purge must not be undone by a write that was under way). */
static size_t drop(pt_cache_t *ch, uint32_t i)
{
    if (ch->e[i].state == ST_GONE)
        return 0; /* dropped before, still pinned */
    if (ch->e[i].state == ST_STORING) {
        ch->e[i].dropped = 1;
        return 0;
    }
    free_entry(ch, i);
    return 1;
}

static size_t invalidate_memory(pt_cache_t *ch, pt_str_t key)
{
    uint64_t hash = cs_hash(ch, key);
    size_t dropped = 0;
    cs_lock(ch);
    uint32_t n = 0;
    for (uint32_t i = *bucket_of(ch, hash), next; i != NIL && n++ < ch->nentries; i = next) {
        next = ch->e[i].chain;
        if (ch->e[i].state != ST_FREE && has_key(ch, &ch->e[i], key, hash))
            dropped += drop(ch, i);
    }
    cs_unlock(ch);
    return dropped;
}

size_t pt_cache_invalidate(pt_cache_t *ch, pt_str_t key)
{
    if (!ch || key.n > PT_CACHE_KEY_MAX)
        return 0;
    /* memory first, then the disk's queue: a load queued between the two
     * may put the object back, but the disk process drops it from memory
     * again when it takes this drop, right after that load */
    size_t n = invalidate_memory(ch, key);
    if (ch->disk)
        pt_cdisk_post_invalidate(ch->disk, key);
    return n;
}

static size_t purge_prefix_memory(pt_cache_t *ch, pt_str_t prefix)
{
    size_t dropped = 0;
    cs_lock(ch);
    /* every entry ever handed out: a purge is rare, and keys are only
     * hashed whole */
    for (uint32_t i = 0; i < ch->h->fresh_entry && i < ch->nentries; i++) {
        const entry_t *e = &ch->e[i];
        if (e->state != ST_FREE && e->key_len >= prefix.n &&
            chain_io(ch, e->first, e->nblocks, 0, (void *)prefix.p, prefix.n, IO_CMP))
            dropped += drop(ch, i);
    }
    cs_unlock(ch);
    return dropped;
}

size_t pt_cache_purge_prefix(pt_cache_t *ch, pt_str_t prefix)
{
    if (!ch)
        return 0;
    size_t n = purge_prefix_memory(ch, prefix);
    if (ch->disk)
        pt_cdisk_post_purge(ch->disk, prefix, false);
    return n;
}

/* Does key, "scheme://authority/path...", have a path that starts with
 * prefix (which starts with '/')? */
bool cs_path_starts(const char *key, size_t n, pt_str_t prefix)
{
    const char *sep = n > 3 ? memmem(key, n, "://", 3) : NULL;
    const char *path = sep ? memchr(sep + 3, '/', (size_t)(key + n - sep - 3)) : NULL;
    return path && (size_t)(key + n - path) >= prefix.n && memcmp(path, prefix.p, prefix.n) == 0;
}

static size_t purge_path_memory(pt_cache_t *ch, pt_str_t prefix)
{
    size_t dropped = 0;
    char *key = malloc(PT_CACHE_KEY_MAX);
    if (!key)
        return 0;
    cs_lock(ch);
    for (uint32_t i = 0; i < ch->h->fresh_entry && i < ch->nentries; i++) {
        const entry_t *e = &ch->e[i];
        if (e->state != ST_FREE && e->key_len <= PT_CACHE_KEY_MAX &&
            chain_io(ch, e->first, e->nblocks, 0, key, e->key_len, IO_OUT) && cs_path_starts(key, e->key_len, prefix))
            dropped += drop(ch, i);
    }
    cs_unlock(ch);
    free(key);
    return dropped;
}

size_t pt_cache_purge_path_prefix(pt_cache_t *ch, pt_str_t prefix)
{
    if (!ch || !prefix.n || prefix.p[0] != '/')
        return 0;
    size_t n = purge_path_memory(ch, prefix);
    if (ch->disk)
        pt_cdisk_post_purge(ch->disk, prefix, true);
    return n;
}

/* The disk process carries out a drop: memory is dropped again, since a
 * load queued before the drop may have put the object back after the
 * worker dropped it (disk-int.h). */
size_t cs_drop_memory(pt_cache_t *ch, int path, pt_str_t text, bool prefix)
{
    if (!ch || text.n > PT_CACHE_KEY_MAX)
        return 0;
    return !prefix ? invalidate_memory(ch, text) : path ? purge_path_memory(ch, text) : purge_prefix_memory(ch, text);
}

/* ---- a dead worker ---- */

/* The caches of this process's table: a cache dropped or resized by a
 * reload is the old generation's zone, unmapped by the next sweep. */
void pt_caches_forget_column(int column)
{
    for (size_t c = 0; c < ncaches; c++) {
        pt_cache_t *ch = caches[c];
        cs_lock(ch);
        for (uint32_t i = 0; i < ch->h->fresh_entry && i < ch->nentries; i++)
            if (ch->e[i].state == ST_STORING && ch->e[i].column == column)
                free_entry(ch, i);
        cs_locks_forget(ch, column);
        cs_pins_forget(ch, column);
        cs_unlock(ch);
    }
}

/* ---- the disk tier's side (disk-int.h) ---- */

void cs_set_disk(pt_cache_t *ch, pt_cdisk_t *d)
{
    ch->disk = d;
}

pt_cdisk_t *pt_cache_disk(pt_cache_t *ch)
{
    return ch ? ch->disk : NULL;
}

uint64_t cs_store_id(const pt_cache_t *ch)
{
    return ch->h->seed[0] ^ ch->h->seed2[1];
}

bool cs_object(pt_cache_t *ch, uint32_t slot, uint32_t gen, cs_object_t *o)
{
    if (!ch || slot >= ch->nentries)
        return false;
    cs_lock(ch);
    const entry_t *e = &ch->e[slot];
    bool ok = e->gen == gen && e->state == ST_READY;
    if (ok)
        *o = (cs_object_t){.hit = {.slot = slot, .gen = gen, .meta = e->meta},
                           .key_len = e->key_len,
                           .names_len = e->names_len,
                           .values_len = e->values_len,
                           .total = prefix_len(e) + e->len};
    cs_unlock(ch);
    return ok;
}

bool cs_object_read(pt_cache_t *ch, const cs_object_t *o, void *buf)
{
    const entry_t *e = &ch->e[o->hit.slot];
    uint32_t first = __atomic_load_n(&e->first, __ATOMIC_RELAXED);
    uint32_t nb = __atomic_load_n(&e->nblocks, __ATOMIC_RELAXED);
    return chain_io(ch, first, nb, 0, buf, o->total, IO_OUT) && still(ch, &o->hit);
}

/* ---- figures ---- */

void pt_cache_count(pt_cache_t *ch, int counter)
{
    if (ch && counter >= 0 && counter < PT_CST__COUNT)
        atomic_fetch_add_explicit(&ch->h->counters[counter], 1, memory_order_relaxed);
}

void pt_cache_stats(pt_cache_t *ch, pt_cache_stats_t *st)
{
    *st = (pt_cache_stats_t){0};
    if (!ch)
        return;
    cache_hdr_t *H = ch->h;
    st->objects = atomic_load_explicit(&H->objects, memory_order_relaxed);
    st->bytes = (uint64_t)atomic_load_explicit(&H->blocks_used, memory_order_relaxed) * BLOCK;
    st->capacity = (uint64_t)ch->nblocks * BLOCK;
    st->evictions = atomic_load_explicit(&H->evictions, memory_order_relaxed);
    for (int i = 0; i < PT_CST__COUNT; i++)
        st->counters[i] = atomic_load_explicit(&H->counters[i], memory_order_relaxed);
}
