/* The response cache's store (cache_store.h): objects of every size across
 * block boundaries, variants, replacement, invalidation and purge, LRU
 * eviction in a cache that never grows, reads that lose a race with a
 * free, writers invisible until commit, a dead writer's blocks given back
 * (forget_column, a SIGKILLed child, a lock held by a dead process), two
 * processes writing and reading the same keys at once, fetch locks, pins
 * (a pinned object purged, replaced or evicted keeps its bytes until
 * unpinned; a dead column's pins are given back), and a zone kept across
 * a "reload". */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../src/cache/store-int.h"
#include "../unit/tap.h"
#include "portico/cache_store.h"
#include "portico/outq.h"
#include "portico/zone.h"

#define MIB (1024 * 1024)

static const char *const names[] = {"main", "lru", "race", "big"};
static const size_t sizes[] = {8 * MIB, 1 * MIB, 1 * MIB, 1 * MIB};

/* The bytes of version v of an object: its i-th byte. */
static unsigned char pat(uint32_t v, uint64_t i)
{
    return (unsigned char)(v * 31u + i * 7u + (i >> 9) + (v >> 8));
}

static unsigned char *make(uint32_t v, size_t n)
{
    unsigned char *b = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        b[i] = pat(v, i);
    return b;
}

/* The store's own accounts agree: blocks of live entries + free blocks +
 * blocks never taken = all blocks; READY entries = objects; the LRU list
 * holds exactly the READY entries. */
static bool consistent(pt_cache_t *ch)
{
    cache_hdr_t *H = ch->h;
    uint64_t live = 0, ready = 0, free_blocks = 0, lru = 0;
    for (uint32_t i = 0; i < H->fresh_entry; i++) {
        live += ch->e[i].state != ST_FREE ? ch->e[i].nblocks : 0;
        ready += ch->e[i].state == ST_READY;
    }
    for (uint32_t b = H->free_block; b != NIL && free_blocks <= ch->nblocks; b = ch->link[b])
        free_blocks++;
    for (uint32_t i = H->lru_head; i != NIL && lru <= ch->nentries; i = ch->e[i].next)
        lru += ch->e[i].state == ST_READY ? 1 : 1000000;
    return live == H->blocks_used && ready == H->objects && lru == ready &&
           live + free_blocks + (ch->nblocks - H->fresh_block) == ch->nblocks;
}

static pt_cache_meta_t meta(uint32_t head, uint64_t body)
{
    return (pt_cache_meta_t){.request_time_ms = 1000, .response_time_ms = 1001, .date_s = 1, .lifetime_ms = 60000,
                             .status = 200, .head_len = head, .body_len = body};
}

static uint64_t bytes_used(pt_cache_t *ch)
{
    pt_cache_stats_t st;
    pt_cache_stats(ch, &st);
    return st.bytes;
}

static uint64_t objects(pt_cache_t *ch)
{
    pt_cache_stats_t st;
    pt_cache_stats(ch, &st);
    return st.objects;
}

/* Stores version v of n bytes (8 of head) under key and variant, appended
 * in pieces of `piece` bytes. */
static bool store_v(pt_cache_t *ch, const char *key, const char *nm, const char *val, uint32_t v, size_t n,
                    size_t piece)
{
    pt_cache_writer_t w;
    if (!pt_cache_store_begin(ch, &w, pt_str_from(key), pt_str_from(nm), pt_str_from(val), 1, n))
        return false;
    unsigned char *b = make(v, n);
    bool ok = true;
    for (size_t at = 0; ok && at < n; at += piece)
        ok = pt_cache_store_append(&w, b + at, n - at < piece ? n - at : piece);
    free(b);
    pt_cache_meta_t m = meta(n < 8 ? (uint32_t)n : 8, n < 8 ? 0 : n - 8);
    return ok && pt_cache_store_commit(&w, &m);
}

static bool store(pt_cache_t *ch, const char *key, uint32_t v, size_t n)
{
    return store_v(ch, key, "", "", v, n, 1000);
}

/* The variant of a request: arg is "names=values;..." for each Vary. */
static long variant(pt_str_t nm, char *out, size_t cap, void *arg)
{
    const char *s = arg;
    for (const char *p = s; p && *p;) {
        const char *eq = strchr(p, '='), *end = strchr(p, ';');
        size_t vn = end ? (size_t)(end - eq - 1) : strlen(eq + 1);
        if ((size_t)(eq - p) == nm.n && memcmp(p, nm.p, nm.n) == 0) {
            if (vn > cap)
                return -1;
            memcpy(out, eq + 1, vn);
            return (long)vn;
        }
        p = end ? end + 1 : NULL;
    }
    return -1;
}

/* Looks key up and reads the whole object: is it version v of n bytes? */
static bool holds(pt_cache_t *ch, const char *key, void *varg, uint32_t v, size_t n)
{
    pt_cache_hit_t hit;
    if (pt_cache_lookup(ch, pt_str_from(key), variant, varg, &hit) != PT_CACHE_FOUND)
        return false;
    if ((uint64_t)hit.meta.head_len + hit.meta.body_len != n)
        return false;
    unsigned char *got = malloc(n ? n : 1), *want = make(v, n);
    bool same = pt_cache_read(ch, &hit, 0, got, n) && memcmp(got, want, n) == 0;
    free(got);
    free(want);
    return same;
}

static int look(pt_cache_t *ch, const char *key, void *varg)
{
    pt_cache_hit_t hit;
    return pt_cache_lookup(ch, pt_str_from(key), variant, varg, &hit);
}

static void prepare(void)
{
    size_t small = MIB - 1;
    const char *one[] = {"tiny"};
    errno = 0;
    ok(pt_caches_prepare(one, &small, 1) == -1 && errno == EINVAL, "a cache under 1 MiB is refused (EINVAL)");
    const char *dup[] = {"a", "a"};
    size_t dsz[] = {MIB, MIB};
    errno = 0;
    ok(pt_caches_prepare(dup, dsz, 2) == -1 && errno == EINVAL, "two caches of one name are refused (EINVAL)");
    ok(pt_caches_prepare(names, sizes, 4) == 0, "four caches prepared");
    pt_cache_t *ch = pt_cache_get("main");
    pt_cache_stats_t st;
    pt_cache_stats(ch, &st);
    ok(ch && !pt_cache_get("nope") && st.objects == 0 && st.bytes == 0,
       "found by name, empty; another name has none");
    ok(st.capacity > 7 * MIB && st.capacity < 8 * MIB, "its capacity is most of its memory (%llu)",
       (unsigned long long)st.capacity);
}

static void sizes_round_trip(void)
{
    pt_cache_t *ch = pt_cache_get("main");
    size_t ns[] = {0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 65536, 3 * BLOCK + 17};
    char key[64];
    for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
        snprintf(key, sizeof(key), "/size/%zu", ns[i]);
        size_t piece = i % 2 ? 1000 : 4096 + 3;
        ok(store_v(ch, key, "", "", (uint32_t)i, ns[i], piece) && holds(ch, key, NULL, (uint32_t)i, ns[i]),
           "%zu bytes, appended %zu at a time: stored, found and read back whole", ns[i], piece);
    }
    /* a key whose prefix fills its first block exactly: the body starts a new one */
    char fill[BLOCK + 1];
    memset(fill, 'k', BLOCK);
    fill[BLOCK] = 0;
    ok(store(ch, fill, 77, 5000) && holds(ch, fill, NULL, 77, 5000), "a key of exactly one block, then 5000 bytes");
    /* partial reads across block boundaries */
    pt_cache_hit_t hit;
    pt_cache_lookup(ch, PT_STR("/size/65536"), NULL, NULL, &hit);
    unsigned char buf[5000];
    bool all = true;
    for (uint64_t off = 0; off + 5000 <= 65536; off += 4093) {
        all &= pt_cache_read(ch, &hit, off, buf, 5000);
        for (size_t k = 0; k < 5000; k++)
            all &= buf[k] == pat(5, off + k);
    }
    ok(all, "reads of 5000 bytes at every 4093rd offset copy the right bytes");
    ok(pt_cache_read(ch, &hit, 65536, buf, 0) && !pt_cache_read(ch, &hit, 65530, buf, 7) &&
           !pt_cache_read(ch, &hit, 65537, buf, 0),
       "a read past the end is refused, an empty one at the end is not");
}

/* The largest object a 1 MiB cache can hold, one byte more, and max. */
static void sizes_max(void)
{
    pt_cache_t *ch = pt_cache_get("big");
    pt_cache_stats_t st;
    pt_cache_stats(ch, &st);
    ok(store(ch, "/other", 1, 100), "another object first");
    size_t max = st.capacity - strlen("/max");
    pt_cache_writer_t w;
    unsigned char *b = make(9, max + 1);
    ok(pt_cache_store_begin(ch, &w, PT_STR("/max"), PT_STR(""), PT_STR(""), 1, max + 1) &&
           !pt_cache_store_append(&w, b, max + 1) && !w.active,
       "one byte more than the cache can ever hold: append fails, the object is dropped");
    ok(holds(ch, "/other", NULL, 1, 100), "without evicting anything for it");
    ok(store(ch, "/max", 9, max) && holds(ch, "/max", NULL, 9, max),
       "an object of the whole capacity (%zu bytes) is stored and read back", max);
    ok(look(ch, "/other", NULL) == PT_CACHE_ABSENT, "the other object was evicted for it");
    free(b);

    ch = pt_cache_get("main");
    uint64_t before = bytes_used(ch);
    ok(pt_cache_store_begin(ch, &w, PT_STR("/m"), PT_STR(""), PT_STR(""), 1, 100), "begin with max 100");
    unsigned char small[64] = {0};
    bool first = pt_cache_store_append(&w, small, 60), second = pt_cache_store_append(&w, small, 41);
    pt_cache_meta_t m = meta(0, 60);
    ok(first && !second && !w.active && !pt_cache_store_commit(&w, &m), "60 bytes pass, 41 more pass max: dropped");
    ok(bytes_used(ch) == before && look(ch, "/m", NULL) == PT_CACHE_ABSENT, "its blocks are back, nothing visible");
}

static void too_long(void)
{
    pt_cache_t *ch = pt_cache_get("main");
    char *k = malloc(PT_CACHE_KEY_MAX + 2);
    memset(k, 'x', PT_CACHE_KEY_MAX + 1);
    k[PT_CACHE_KEY_MAX + 1] = 0;
    pt_cache_writer_t w;
    ok(!pt_cache_store_begin(ch, &w, pt_str_from(k), PT_STR(""), PT_STR(""), 1, 10) && !w.active,
       "a key over PT_CACHE_KEY_MAX: begin refuses");
    ok(look(ch, k, NULL) == PT_CACHE_ABSENT, "and its lookup is ABSENT");
    k[PT_CACHE_KEY_MAX] = 0;
    ok(store(ch, k, 3, 10) && holds(ch, k, NULL, 3, 10), "a key of exactly PT_CACHE_KEY_MAX is stored");
    memset(k, 'v', PT_CACHE_VARIANT_MAX + 1);
    k[PT_CACHE_VARIANT_MAX + 1] = 0;
    ok(!pt_cache_store_begin(ch, &w, PT_STR("/v"), PT_STR("accept"), pt_str_from(k), 1, 10),
       "a variant over PT_CACHE_VARIANT_MAX: begin refuses");
    free(k);
}

/* Records the names a variant function was given. */
static char seen_names[64];

static long variant_seen(pt_str_t nm, char *out, size_t cap, void *arg)
{
    snprintf(seen_names, sizeof(seen_names), "%.*s", PT_STR_FMT(nm));
    return variant(nm, out, cap, arg);
}

static void variants(void)
{
    pt_cache_t *ch = pt_cache_get("main");
    uint64_t n0 = objects(ch);
    ok(store_v(ch, "/v", "accept-encoding", "gzip", 1, 300, 1000) &&
           store_v(ch, "/v", "accept-encoding", "br", 2, 5000, 1000),
       "two variants of one key stored");
    is_int(objects(ch), n0 + 2, "two objects");
    ok(holds(ch, "/v", "accept-encoding=gzip", 1, 300) && holds(ch, "/v", "accept-encoding=br", 2, 5000),
       "each request's variant finds its own object (RFC 9111 4.1)");
    pt_cache_hit_t hit;
    is_int(pt_cache_lookup(ch, PT_STR("/v"), variant_seen, "accept-encoding=identity", &hit), PT_CACHE_VARY_MISS,
           "another variant: VARY_MISS");
    is_str(seen_names, "accept-encoding", "the variant function is given the names the key varies on");
    is_int(look(ch, "/v", "other=1"), PT_CACHE_VARY_MISS, "a variant that cannot be made: VARY_MISS");
    is_int(look(ch, "/nothing", "accept-encoding=gzip"), PT_CACHE_ABSENT, "an unknown key: ABSENT");
    ok(store_v(ch, "/v", "accept-encoding", "gzip", 3, 400, 1000) && holds(ch, "/v", "accept-encoding=gzip", 3, 400) &&
           holds(ch, "/v", "accept-encoding=br", 2, 5000),
       "the same variant again replaces only that variant");
    is_int(objects(ch), n0 + 2, "still two objects");
    ok(store_v(ch, "/v", "accept-language", "en", 4, 700, 1000), "a response that varies on other names");
    ok(holds(ch, "/v", "accept-language=en;accept-encoding=gzip", 4, 700) &&
           look(ch, "/v", "accept-encoding=br") == PT_CACHE_VARY_MISS,
       "its Vary is the key's now: the old variants are gone");
    is_int(objects(ch), n0 + 1, "one object left of the key");
    ok(store(ch, "/v", 5, 10) && holds(ch, "/v", NULL, 5, 10) && objects(ch) == n0 + 1,
       "a response without Vary replaces every variant");
    ok(store_v(ch, "/r", "", "", 1, 2000, 1000) && store_v(ch, "/r", "", "", 2, 3000, 1000) &&
           holds(ch, "/r", NULL, 2, 3000) && objects(ch) == n0 + 2,
       "a key stored again is replaced");
}

static void invalidate_and_purge(void)
{
    pt_cache_t *ch = pt_cache_get("main");
    store_v(ch, "/i", "accept", "a", 1, 100, 1000);
    store_v(ch, "/i", "accept", "b", 2, 100, 1000);
    uint64_t n0 = objects(ch);
    is_int(pt_cache_invalidate(ch, PT_STR("/i")), 2, "invalidating a key drops its two variants");
    ok(look(ch, "/i", "accept=a") == PT_CACHE_ABSENT && objects(ch) == n0 - 2, "the key is gone");
    is_int(pt_cache_invalidate(ch, PT_STR("/i")), 0, "again: nothing to drop");
    const char *keys[] = {"/api/a", "/api/b", "/api/b/c", "/apx", "/other", "/ap"};
    for (int i = 0; i < 6; i++)
        store(ch, keys[i], (uint32_t)i, 50 + i);
    is_int(pt_cache_purge_prefix(ch, PT_STR("/api/")), 3, "a purge of /api/ drops the three keys under it");
    ok(look(ch, "/api/a", NULL) == PT_CACHE_ABSENT && look(ch, "/api/b/c", NULL) == PT_CACHE_ABSENT,
       "they are gone");
    ok(holds(ch, "/apx", NULL, 3, 53) && holds(ch, "/other", NULL, 4, 54) && holds(ch, "/ap", NULL, 5, 55),
       "the others are untouched");
}

/* Objects of 3 blocks in a 1 MiB cache: the least recently used go first. */
static void lru(void)
{
    pt_cache_t *ch = pt_cache_get("lru");
    pt_cache_stats_t st;
    pt_cache_stats(ch, &st);
    size_t size = 2 * BLOCK + 100; /* with its key: 3 blocks */
    int fit = (int)(st.capacity / (3 * BLOCK));
    char key[32];
    for (int i = 0; i < fit; i++) {
        snprintf(key, sizeof(key), "/lru/%d", i);
        store(ch, key, (uint32_t)i, size);
    }
    pt_cache_stats(ch, &st);
    ok(st.objects == (uint64_t)fit && st.evictions == 0, "%d objects fill it without eviction", fit);
    look(ch, "/lru/0", NULL); /* the oldest is used again */
    for (int i = fit; i < fit + 2; i++) {
        snprintf(key, sizeof(key), "/lru/%d", i);
        store(ch, key, (uint32_t)i, size);
    }
    pt_cache_stats(ch, &st);
    ok(st.evictions == 2 && st.objects == (uint64_t)fit, "two more: two evicted, still %d objects", fit);
    ok(look(ch, "/lru/1", NULL) == PT_CACHE_ABSENT && look(ch, "/lru/2", NULL) == PT_CACHE_ABSENT,
       "the least recently used went");
    snprintf(key, sizeof(key), "/lru/%d", fit + 1);
    ok(holds(ch, "/lru/0", NULL, 0, size) && holds(ch, "/lru/3", NULL, 3, size) &&
           holds(ch, key, NULL, (uint32_t)fit + 1, size),
       "the one used again stayed, and the newest are there");
    bool bounded = true;
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof(key), "/flood/%d", i);
        store(ch, key, (uint32_t)i, (size_t)(i * 977) % 20000);
        pt_cache_stats(ch, &st);
        bounded &= st.bytes <= st.capacity && st.objects <= st.capacity / BLOCK;
    }
    ok(bounded, "500 objects of up to 20000 bytes: the memory used never passes the capacity");
    ok(st.evictions > 400, "and evictions are counted (%llu)", (unsigned long long)st.evictions);
    ok(holds(ch, "/flood/499", NULL, 499, (size_t)(499 * 977) % 20000), "the last one is there");
    ok(consistent(ch), "the blocks, the objects and the LRU list agree");
}

/* A hit whose object went meanwhile reads nothing usable. */
static void races(void)
{
    pt_cache_t *ch = pt_cache_get("main");
    pt_cache_hit_t hit;
    unsigned char buf[6000];
    store(ch, "/race", 1, 6000);
    pt_cache_lookup(ch, PT_STR("/race"), NULL, NULL, &hit);
    pt_cache_invalidate(ch, PT_STR("/race"));
    ok(!pt_cache_read(ch, &hit, 0, buf, 6000), "a read after the object was invalidated: false");
    store(ch, "/race", 2, 6000);
    ok(!pt_cache_read(ch, &hit, 0, buf, 6000), "and after its blocks were taken by another object");
    pt_cache_lookup(ch, PT_STR("/race"), NULL, NULL, &hit);
    store(ch, "/race", 3, 6000);
    ok(!pt_cache_read(ch, &hit, 0, buf, 100), "a read after the object was replaced: false");
    pt_cache_meta_t m = meta(8, 5992);
    ok(!pt_cache_update_meta(ch, &hit, &m), "update_meta of a replaced object: false");
    ok(holds(ch, "/race", NULL, 3, 6000), "the new one reads whole");
    pt_cache_t *small = pt_cache_get("lru");
    store(small, "/evicted", 4, 100);
    pt_cache_lookup(small, PT_STR("/evicted"), NULL, NULL, &hit);
    char key[32];
    pt_cache_stats_t st;
    pt_cache_stats(small, &st);
    for (int i = 0; i < (int)(st.capacity / BLOCK); i++) {
        snprintf(key, sizeof(key), "/push/%d", i);
        store(small, key, 7, 3000);
    }
    ok(look(small, "/evicted", NULL) == PT_CACHE_ABSENT && !pt_cache_read(small, &hit, 0, buf, 100),
       "a read after the object was evicted and its blocks reused: false");
    hit.slot = 1u << 30;
    ok(!pt_cache_read(small, &hit, 0, buf, 10), "a hit naming no entry: false");
}

static void update_meta(void)
{
    pt_cache_t *ch = pt_cache_get("main");
    pt_cache_hit_t hit, again;
    store(ch, "/meta", 1, 3000);
    pt_cache_lookup(ch, PT_STR("/meta"), NULL, NULL, &hit);
    pt_cache_meta_t m = hit.meta;
    m.lifetime_ms = 123456;
    m.response_time_ms = 99;
    ok(pt_cache_update_meta(ch, &hit, &m), "update_meta of a found object");
    pt_cache_lookup(ch, PT_STR("/meta"), NULL, NULL, &again);
    ok(again.meta.lifetime_ms == 123456 && again.meta.response_time_ms == 99 && again.gen == hit.gen,
       "a lookup sees the new metadata");
    ok(pt_cache_read(ch, &hit, 0, (unsigned char[3000]){0}, 3000) && holds(ch, "/meta", NULL, 1, 3000),
       "the bytes are the same, and the earlier hit still reads");
    m.body_len += 1;
    ok(!pt_cache_update_meta(ch, &hit, &m), "a meta with other lengths than the bytes: refused");
}

/* A 304 that changed the head: a new head, the old body copied over. */
static void append_from(void)
{
    pt_cache_t *ch = pt_cache_get("main");
    size_t n = 20000;
    store(ch, "/af", 5, n); /* 8 bytes of head, then the body */
    pt_cache_hit_t old;
    pt_cache_lookup(ch, PT_STR("/af"), NULL, NULL, &old);
    pt_cache_writer_t w;
    const char head[] = "HTTP/1.1 200 OK\r\nnew: head\r\n\r\n";
    size_t hl = sizeof(head) - 1;
    pt_cache_store_begin(ch, &w, PT_STR("/af"), PT_STR(""), PT_STR(""), 1, 1 << 20);
    bool ok1 = pt_cache_store_append(&w, head, hl) && pt_cache_store_append_from(&w, &old, 8, n - 8);
    pt_cache_meta_t m = meta((uint32_t)hl, n - 8);
    ok(ok1 && pt_cache_store_commit(&w, &m), "a new head and the old object's body appended from it");
    pt_cache_hit_t hit;
    pt_cache_lookup(ch, PT_STR("/af"), NULL, NULL, &hit);
    unsigned char *got = malloc(hl + n), *want = make(5, n);
    ok(pt_cache_read(ch, &hit, 0, got, hl + n - 8) && memcmp(got, head, hl) == 0 &&
           memcmp(got + hl, want + 8, n - 8) == 0,
       "the new object: the new head, then the old body, byte for byte");
    ok(!pt_cache_read(ch, &old, 0, got, 8), "the old object is gone (replaced)");
    pt_cache_store_begin(ch, &w, PT_STR("/af2"), PT_STR(""), PT_STR(""), 1, 1 << 20);
    ok(!pt_cache_store_append_from(&w, &old, 0, 100) && !w.active, "appending from a gone object fails");
    ok(look(ch, "/af2", NULL) == PT_CACHE_ABSENT, "and drops this one");
    pt_cache_store_begin(ch, &w, PT_STR("/af2"), PT_STR(""), PT_STR(""), 1, 1 << 20);
    ok(!pt_cache_store_append_from(&w, &hit, 10, hl + n), "appending past the source's end fails");
    free(got);
    free(want);
}

static void writers(void)
{
    pt_cache_t *ch = pt_cache_get("main");
    unsigned char *b = make(8, 50000);
    pt_cache_writer_t w;
    store(ch, "/w", 1, 100);
    uint64_t before = bytes_used(ch), n0 = objects(ch);
    pt_cache_store_begin(ch, &w, PT_STR("/w"), PT_STR(""), PT_STR(""), 1, 50000);
    pt_cache_store_append(&w, b, 50000);
    ok(holds(ch, "/w", NULL, 1, 100) && look(ch, "/w-new", NULL) == PT_CACHE_ABSENT,
       "while a new version is written, lookups find the old one");
    ok(bytes_used(ch) > before + 49000, "the writer's blocks are in use");
    pt_cache_store_abort(&w);
    ok(bytes_used(ch) == before && objects(ch) == n0 && holds(ch, "/w", NULL, 1, 100),
       "abort: its blocks are back, the old version stays");
    pt_cache_store_begin(ch, &w, PT_STR("/w"), PT_STR(""), PT_STR(""), 1, 50000);
    pt_cache_store_append(&w, b, 50000);
    pt_cache_meta_t m = meta(8, 50000 - 8);
    ok(pt_cache_store_commit(&w, &m) && holds(ch, "/w", NULL, 8, 50000), "committed: the new version is seen");
    ok(bytes_used(ch) - before < 50000 + 2 * BLOCK && objects(ch) == n0,
       "and the old one's blocks were given back");
    /* a purge while it is written: it never becomes visible */
    pt_cache_store_begin(ch, &w, PT_STR("/w"), PT_STR(""), PT_STR(""), 1, 50000);
    pt_cache_store_append(&w, b, 20000);
    is_int(pt_cache_invalidate(ch, PT_STR("/w")), 1, "invalidated while a new version is written (1 visible)");
    pt_cache_store_append(&w, b + 20000, 30000);
    ok(!pt_cache_store_commit(&w, &m) && look(ch, "/w", NULL) == PT_CACHE_ABSENT,
       "its commit fails, nothing is visible");
    pt_cache_store_begin(ch, &w, PT_STR("/w"), PT_STR(""), PT_STR(""), 1, 50000);
    pt_cache_store_append(&w, b, 100);
    pt_cache_invalidate(ch, PT_STR("/w"));
    m = meta(8, 100 - 8);
    ok(!pt_cache_store_commit(&w, &m) && look(ch, "/w", NULL) == PT_CACHE_ABSENT,
       "invalidated after its last append: the commit fails all the same");
    before = bytes_used(ch);
    pt_cache_store_begin(ch, &w, PT_STR("/pw/x"), PT_STR(""), PT_STR(""), 1, 50000);
    pt_cache_store_append(&w, b, 1000);
    pt_cache_purge_prefix(ch, PT_STR("/pw/"));
    ok(!pt_cache_store_append(&w, b, 2 * BLOCK) && !w.active && bytes_used(ch) == before,
       "a purged writer's next block is refused, the object dropped, its blocks back");
    m = meta(0, 0);
    uint64_t empty = bytes_used(ch);
    pt_cache_store_begin(ch, &w, PT_STR("/bad"), PT_STR(""), PT_STR(""), 1, 50000);
    pt_cache_store_append(&w, b, 10);
    ok(!pt_cache_store_commit(&w, &m) && bytes_used(ch) == empty, "a commit whose meta says other lengths fails");
    ok(consistent(ch), "the blocks, the objects and the LRU list agree");
    free(b);
}

static void forget_column(void)
{
    pt_cache_t *ch = pt_cache_get("main");
    unsigned char *b = make(2, 9000);
    uint64_t before = bytes_used(ch);
    pt_cache_writer_t w3, w4;
    pt_cache_store_begin(ch, &w3, PT_STR("/c3"), PT_STR(""), PT_STR(""), 3, 9000);
    pt_cache_store_begin(ch, &w4, PT_STR("/c4"), PT_STR(""), PT_STR(""), 4, 9000);
    pt_cache_store_append(&w3, b, 9000);
    pt_cache_store_append(&w4, b, 9000);
    pt_caches_forget_column(3);
    pt_cache_meta_t m = meta(8, 9000 - 8);
    ok(!pt_cache_store_commit(&w3, &m) && look(ch, "/c3", NULL) == PT_CACHE_ABSENT,
       "forget_column(3): column 3's object is dropped");
    ok(pt_cache_store_commit(&w4, &m) && holds(ch, "/c4", NULL, 2, 9000), "column 4's is not");
    ok(bytes_used(ch) - before == 3 * BLOCK, "only column 4's blocks are in use");
    free(b);
}

/* A child killed in the middle of a store leaves nothing visible, and the
 * master gives its blocks back. */
static void killed_writer(void)
{
    pt_cache_t *ch = pt_cache_get("main");
    uint64_t before = bytes_used(ch);
    int fds[2];
    if (pipe(fds) != 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        pt_cache_writer_t w;
        unsigned char *b = make(1, 30000);
        pt_cache_store_begin(ch, &w, PT_STR("/killed"), PT_STR(""), PT_STR(""), 7, 1 << 20);
        pt_cache_store_append(&w, b, 30000);
        (void)!write(fds[1], "S", 1);
        pause();
        _exit(0);
    }
    char c = 0;
    ok(read(fds[0], &c, 1) == 1 && c == 'S', "the child is in the middle of a store");
    ok(bytes_used(ch) > before + 29000, "its blocks are in use");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ok(look(ch, "/killed", NULL) == PT_CACHE_ABSENT, "killed: nothing of it is visible");
    pt_caches_forget_column(7);
    ok(bytes_used(ch) == before && consistent(ch), "forget_column gives its blocks back");
    close(fds[0]);
    close(fds[1]);
}

/* A child killed holding the zone's lock: the next operation empties the
 * cache and goes on. */
static void dead_lock_holder(void)
{
    pt_cache_t *ch = pt_cache_get("race");
    store(ch, "/before", 1, 5000);
    pt_cache_hit_t hit;
    pt_cache_lookup(ch, PT_STR("/before"), NULL, NULL, &hit);
    int fds[2];
    if (pipe(fds) != 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        pt_zone_lock(ch->zone);
        (void)!write(fds[1], "L", 1);
        pause();
        _exit(0);
    }
    char c = 0;
    ok(read(fds[0], &c, 1) == 1 && c == 'L', "a child holds the cache's lock");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ok(look(ch, "/before", NULL) == PT_CACHE_ABSENT, "killed: the next lookup finds the cache emptied");
    pt_cache_stats_t st;
    pt_cache_stats(ch, &st);
    ok(st.objects == 0 && st.bytes == 0 && ch->h->resets == 1, "no object, no block in use, one reset");
    ok(!pt_cache_read(ch, &hit, 0, (unsigned char[100]){0}, 100), "a hit from before reads nothing");
    ok(store(ch, "/after", 2, 5000) && holds(ch, "/after", NULL, 2, 5000), "and it works after");
    close(fds[0]);
    close(fds[1]);
}

/* Two processes store and read the same keys for a second: every read
 * that succeeds is one writer's whole object.  Version v of an object:
 * its size made from v, v stamped every 64 bytes, the bytes between all
 * one value made from v (cheap to make, so that a writer reuses freed
 * blocks soon after it freed them, while a reader may be copying them). */
static size_t race_size(uint32_t v)
{
    return 64 + (size_t)(v * 2654435761u % 30000);
}

static void race_make(unsigned char *obj, uint32_t v)
{
    size_t size = race_size(v);
    memset(obj, (int)(v * 131 % 251) + 1, size);
    for (size_t i = 0; i + 4 <= size; i += 64)
        memcpy(obj + i, &v, 4);
}

static bool race_check(const unsigned char *buf, size_t size)
{
    uint32_t v, s;
    memcpy(&v, buf, 4);
    if (size != race_size(v))
        return false;
    unsigned char fill = (unsigned char)(v * 131 % 251 + 1);
    for (size_t i = 0; i < size; i++) {
        if (i % 64 == 0 && i + 4 <= size) {
            memcpy(&s, buf + i, 4);
            if (s != v)
                return false;
            i += 3;
        } else if (buf[i] != fill) {
            return false;
        }
    }
    return true;
}

static void race_child(pt_cache_t *ch, uint32_t id, int fd)
{
    unsigned char *buf = malloc(40000), *obj = malloc(40000);
    long counts[4] = {0}; /* good reads, bad reads, commits, misses */
    srand(id * 7919 + 1);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint32_t n = 0;; n++) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >= 1000)
            break;
        char key[16];
        /* a few hot keys, replaced under their readers; many cold ones, evicted */
        snprintf(key, sizeof(key), "/k%d", rand() % 2 ? rand() % 4 : rand() % 256);
        int what = rand() % 10;
        if (what < 4) {
            uint32_t v = id << 24 | n;
            size_t size = race_size(v);
            race_make(obj, v);
            pt_cache_writer_t w;
            pt_cache_meta_t m = meta(8, size - 8);
            counts[2] += pt_cache_store_begin(ch, &w, pt_str_from(key), PT_STR(""), PT_STR(""), (int)id, size) &&
                         pt_cache_store_append(&w, obj, size / 3) &&
                         pt_cache_store_append(&w, obj + size / 3, size - size / 3) && pt_cache_store_commit(&w, &m);
        } else if (what == 4) {
            pt_cache_invalidate(ch, pt_str_from(key));
        } else {
            pt_cache_hit_t hit;
            size_t size = 0;
            if (pt_cache_lookup(ch, pt_str_from(key), NULL, NULL, &hit) != PT_CACHE_FOUND ||
                (size = hit.meta.head_len + hit.meta.body_len) > 40000 || !pt_cache_read(ch, &hit, 0, buf, size)) {
                counts[3]++;
                continue;
            }
            counts[race_check(buf, size) ? 0 : 1]++;
        }
    }
    (void)!write(fd, counts, sizeof(counts));
    free(buf);
    free(obj);
}

static void two_processes(void)
{
    pt_cache_t *ch = pt_cache_get("race");
    int fds[2];
    if (pipe(fds) != 0)
        return;
    for (uint32_t id = 1; id <= 2; id++)
        if (fork() == 0) {
            race_child(ch, id, fds[1]);
            _exit(0);
        }
    long total[4] = {0};
    for (int i = 0; i < 2; i++) {
        long c[4] = {0};
        (void)!read(fds[0], c, sizeof(c));
        for (int k = 0; k < 4; k++)
            total[k] += c[k];
    }
    while (wait(NULL) > 0)
        ;
    ok(total[0] > 100 && total[2] > 100, "two processes for a second: %ld reads of whole objects, %ld commits",
       total[0], total[2]);
    is_int(total[1], 0, "no read that succeeded returned anything but one writer's whole object");
    pt_cache_stats_t st;
    pt_cache_stats(ch, &st);
    ok(st.evictions > 0 && st.bytes <= st.capacity, "evictions happened (%llu), memory within capacity",
       (unsigned long long)st.evictions);
    pt_caches_forget_column(1);
    pt_caches_forget_column(2);
    pt_cache_stats(ch, &st);
    ok(consistent(ch) && st.bytes == bytes_used(ch), "afterwards the blocks, objects and LRU list agree");
    close(fds[0]);
    close(fds[1]);
}

static void fetch_locks(void)
{
    pt_cache_t *ch = pt_cache_get("main");
    pt_str_t k = PT_STR("/lock");
    is_int(pt_cache_lock(ch, k, 1, 1000, 500), PT_CACHE_LOCKED, "the first asker locks the key");
    is_int(pt_cache_lock(ch, k, 2, 1100, 500), PT_CACHE_BUSY, "another column: BUSY");
    is_int(pt_cache_lock(ch, k, 1, 1100, 500), PT_CACHE_BUSY, "another request of the same column: BUSY");
    is_int(pt_cache_lock(ch, PT_STR("/lock2"), 2, 1100, 500), PT_CACHE_LOCKED, "another key is its own");
    is_int(pt_cache_lock(ch, k, 2, 1500, 500), PT_CACHE_LOCKED, "once the hold is over, the lock lapses");
    pt_cache_unlock(ch, k, 1, 0);
    is_int(pt_cache_lock(ch, k, 3, 1600, 500), PT_CACHE_BUSY, "the old holder's unlock does not release it");
    pt_cache_unlock(ch, k, 2, 3000);
    is_int(pt_cache_lock(ch, k, 3, 2000, 500), PT_CACHE_PASS, "released with a pass mark: PASS");
    is_int(pt_cache_lock(ch, k, 3, 2999, 500), PT_CACHE_PASS, "until the time given");
    is_int(pt_cache_lock(ch, k, 3, 3000, 500), PT_CACHE_LOCKED, "then it is locked again");
    pt_cache_unlock(ch, k, 3, 0);
    is_int(pt_cache_lock(ch, k, 4, 3001, 500), PT_CACHE_LOCKED, "released without a mark: the next locks it");
    pt_caches_forget_column(4);
    is_int(pt_cache_lock(ch, k, 5, 3002, 500), PT_CACHE_LOCKED, "forget_column releases a dead column's locks");
    pt_cache_unlock(ch, k, 5, 0);
    int locked = 0, pass = 0, first_pass = -1;
    char key[32];
    for (int i = 0; i < 2 * (int)NLOCKS; i++) {
        snprintf(key, sizeof(key), "/many/%d", i);
        int r = pt_cache_lock(ch, pt_str_from(key), 9, 10000, 60000);
        locked += r == PT_CACHE_LOCKED;
        pass += r == PT_CACHE_PASS;
        if (r == PT_CACHE_PASS && first_pass < 0)
            first_pass = i;
    }
    ok(locked <= (int)NLOCKS && locked > (int)NLOCKS * 3 / 4 && pass == 2 * (int)NLOCKS - locked,
       "%d keys: %d locked, the rest PASS (the table is full)", 2 * NLOCKS, locked);
    ok(first_pass > (int)NLOCKS / 2, "none passed before the table was half full (first at %d)", first_pass);
    pt_caches_forget_column(9);
    is_int(pt_cache_lock(ch, PT_STR("/many/0"), 9, 10001, 100), PT_CACHE_LOCKED, "released, they lock again");
}

static void counters(void)
{
    pt_cache_t *ch = pt_cache_get("main");
    for (int i = 0; i < 3; i++)
        pt_cache_count(ch, PT_CST_HIT);
    pt_cache_count(ch, PT_CST_STORED);
    pt_cache_count(ch, PT_CST__COUNT);
    pt_cache_count(ch, -1);
    pt_cache_stats_t st;
    pt_cache_stats(ch, &st);
    ok(st.counters[PT_CST_HIT] == 3 && st.counters[PT_CST_STORED] == 1 && st.counters[PT_CST_MISS] == 0,
       "counters: 3 hits, 1 stored; out of range ignored");
}

/* A reload: the same names and sizes keep their objects; another size
 * starts empty. */
static void reload(void)
{
    store(pt_cache_get("lru"), "/kept", 3, 777);
    pt_zone_sweep();
    ok(pt_caches_prepare(names, sizes, 4) == 0, "prepared again with the same sizes");
    pt_cache_t *ch = pt_cache_get("main");
    pt_cache_stats_t st;
    pt_cache_stats(ch, &st);
    ok(holds(ch, "/c4", NULL, 2, 9000) && st.counters[PT_CST_HIT] == 3, "objects and counters are kept");
    pt_zone_sweep();
    size_t other[] = {8 * MIB + BLOCK, 1 * MIB, 1 * MIB, 1 * MIB};
    ok(pt_caches_prepare(names, other, 4) == 0, "prepared with another size for main");
    ch = pt_cache_get("main");
    pt_cache_stats(ch, &st);
    ok(look(ch, "/c4", NULL) == PT_CACHE_ABSENT && st.objects == 0 && st.counters[PT_CST_HIT] == 0,
       "that one starts empty");
    ok(holds(pt_cache_get("lru"), "/kept", NULL, 3, 777), "the others keep theirs");
    const char *one[] = {"main"};
    size_t none = 100;
    ok(pt_caches_prepare(one, &none, 1) == -1 && pt_cache_get("lru") && holds(pt_cache_get("lru"), "/kept", NULL, 3, 777),
       "a refused prepare changes nothing");
}

/* ---- pins ---- */

/* Do the spans of pinned object p, [0, n), hold version v's bytes? */
static bool pinned_holds(pt_cache_pin_t *p, uint32_t v, size_t n)
{
    struct iovec iov[64];
    int k = pt_cache_pin_spans(p, 0, n, iov, 64);
    uint64_t at = 0;
    for (int i = 0; i < k; i++)
        for (size_t j = 0; j < iov[i].iov_len; j++, at++)
            if (((unsigned char *)iov[i].iov_base)[j] != pat(v, at))
                return false;
    return k > 0 && at == n;
}

static pt_cache_pin_t *pin_key(pt_cache_t *ch, const char *key, int column)
{
    pt_cache_hit_t hit;
    if (pt_cache_lookup(ch, pt_str_from(key), variant, NULL, &hit) != PT_CACHE_FOUND)
        return NULL;
    return pt_cache_pin(ch, &hit, column);
}

/* Fills the cache with other objects: every block not pinned is reused. */
static void churn(pt_cache_t *ch, uint32_t v)
{
    char key[32];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof(key), "/churn%d", i);
        store(ch, key, v + (uint32_t)i, 60000);
    }
}

/* A purged, a replaced and an evicted object keep their blocks while
 * pinned, byte for byte; the last unpin gives them back. */
static void pins_drop(void)
{
    pt_cache_t *ch = pt_cache_get("lru");
    pt_cache_purge_prefix(ch, PT_STR(""));
    ok(store(ch, "/p1", 40, 40000) && store(ch, "/p2", 41, 40000) && store(ch, "/p3", 42, 40000), "three objects");
    pt_cache_pin_t *p1 = pin_key(ch, "/p1", 2), *p2 = pin_key(ch, "/p2", 2), *p3 = pin_key(ch, "/p3", 2);
    ok(p1 && p2 && p3 && pinned_holds(p1, 40, 40000), "pinned; its spans are its bytes");
    uint64_t used = bytes_used(ch);
    ok(pt_cache_invalidate(ch, PT_STR("/p1")) == 1 && look(ch, "/p1", NULL) == PT_CACHE_ABSENT,
       "a pinned object is purged: no lookup finds it");
    ok(bytes_used(ch) == used && pt_cache_purge_prefix(ch, PT_STR("/p1")) == 0, "its blocks stay; not purged twice");
    ok(store(ch, "/p2", 43, 40000) && holds(ch, "/p2", NULL, 43, 40000), "a pinned object is replaced");
    churn(ch, 100);
    ok(look(ch, "/p3", NULL) == PT_CACHE_ABSENT, "and one is evicted by others");
    ok(pinned_holds(p1, 40, 40000) && pinned_holds(p2, 41, 40000) && pinned_holds(p3, 42, 40000),
       "the purged, replaced and evicted objects' pinned bytes are intact after the cache was refilled");
    ok(consistent(ch), "the store's accounts agree");
    pt_cache_purge_prefix(ch, PT_STR(""));
    uint64_t pinned = bytes_used(ch);
    ok(pinned >= 3 * 40000, "only the pinned objects' blocks are in use");
    pt_cache_unpin(p1);
    pt_cache_unpin(p2);
    pt_cache_unpin(p3);
    ok(bytes_used(ch) == 0 && consistent(ch), "the last unpins give their blocks back");
    ok(store(ch, "/p4", 44, 40000), "and they are used again");
    pt_cache_pin_t *p4 = pin_key(ch, "/p4", 2);
    pt_cache_unpin(p4);
    ok(holds(ch, "/p4", NULL, 44, 40000), "an object unpinned and not dropped stays");
    pt_cache_purge_prefix(ch, PT_STR(""));
    ok(bytes_used(ch) == 0, "and is purged as any other");
}

/* Pinned objects hold a quarter of the cache at most: a client that
 * stops reading must not keep everyone's blocks; past it, pinning is
 * refused (the hit is copied) until a pin goes. */
static void pins_capped(void)
{
    pt_cache_t *ch = pt_cache_get("lru");
    pt_cache_purge_prefix(ch, PT_STR(""));
    pt_cache_stats_t st;
    pt_cache_stats(ch, &st);
    uint64_t quarter = st.capacity / 4, each = quarter / 3 - 2 * 4096; /* its key and rounding to blocks */
    ok(store(ch, "/q1", 60, each) && store(ch, "/q2", 61, each) && store(ch, "/q3", 62, each) &&
           store(ch, "/q4", 63, each),
       "four objects of a little less than a twelfth of the cache each");
    pt_cache_pin_t *a = pin_key(ch, "/q1", 2), *b = pin_key(ch, "/q2", 2), *c = pin_key(ch, "/q3", 3);
    ok(a && b && c, "three are pinned (within a quarter)");
    ok(!pin_key(ch, "/q4", 2), "the fourth is not: past a quarter");
    pt_cache_pin_t *again = pin_key(ch, "/q1", 3);
    ok(again != NULL, "a pinned object may be pinned again (it takes no more blocks)");
    pt_cache_invalidate(ch, PT_STR("/q1"));
    pt_cache_unpin(a);
    ok(!pin_key(ch, "/q4", 2), "a dropped object still pinned counts until its last pin goes");
    pt_cache_unpin(again);
    pt_cache_pin_t *d = pin_key(ch, "/q4", 2);
    ok(d != NULL, "then the fourth is pinned");
    pt_cache_unpin(b);
    pt_cache_unpin(c);
    pt_cache_unpin(d);
    pt_cache_purge_prefix(ch, PT_STR(""));
    ok(bytes_used(ch) == 0 && consistent(ch), "all given back");
}

/* Two pins of one object (two workers): its blocks go with the last. */
static void pins_shared(void)
{
    pt_cache_t *ch = pt_cache_get("lru");
    store(ch, "/s", 50, 30000);
    pt_cache_pin_t *a = pin_key(ch, "/s", 2), *b = pin_key(ch, "/s", 3);
    pt_cache_invalidate(ch, PT_STR("/s"));
    pt_cache_unpin(a);
    ok(bytes_used(ch) > 0 && pinned_holds(b, 50, 30000), "one pin of two let go: the blocks stay");
    pt_cache_unpin(b);
    ok(bytes_used(ch) == 0 && consistent(ch), "the second: given back");
}

/* A worker's row is bounded; a gone object cannot be pinned; spans. */
static void pins_limits(void)
{
    pt_cache_t *ch = pt_cache_get("lru");
    store(ch, "/l", 51, 20000);
    pt_cache_hit_t hit;
    pt_cache_lookup(ch, PT_STR("/l"), variant, NULL, &hit);
    pt_cache_pin_t *p[PINS + 1];
    int n = 0;
    while (n <= (int)PINS && (p[n] = pt_cache_pin(ch, &hit, 2)))
        n++;
    is_int(n, PINS, "a worker holds at most PINS pins (then: copy)");
    for (int i = 0; i < n; i++)
        pt_cache_unpin(p[i]);
    pt_cache_pin_t *q = pt_cache_pin(ch, &hit, 2);
    ok(q != NULL, "one let go: pinned again");
    struct iovec iov[8];
    ok(pt_cache_pin_spans(q, 19990, 11, iov, 8) < 0, "a span past the end is refused");
    int k = pt_cache_pin_spans(q, 5000, 9000, iov, 8);
    ok(k > 0 && pt_cache_pin_spans(q, 100, 10, iov, 8) > 0 && ((unsigned char *)iov[0].iov_base)[0] == pat(51, 100),
       "spans asked for out of order");
    pt_cache_unpin(q);
    pt_cache_invalidate(ch, PT_STR("/l"));
    ok(pt_cache_pin(ch, &hit, 2) == NULL, "a gone object is not pinned");
    ok(bytes_used(ch) == 0 && consistent(ch), "nothing is left");
}

/* A worker that dies with pins: the master gives them back. */
static void pins_dead_column(void)
{
    pt_cache_t *ch = pt_cache_get("lru");
    store(ch, "/d", 52, 30000);
    int fds[2];
    if (pipe(fds) != 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        pt_cache_pin_t *p = pin_key(ch, "/d", 9);
        (void)!write(fds[1], p ? "P" : "-", 1);
        pause();
        _exit(0);
    }
    char c = 0;
    ok(read(fds[0], &c, 1) == 1 && c == 'P', "a child pins an object");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    pt_cache_invalidate(ch, PT_STR("/d"));
    ok(bytes_used(ch) > 0, "purged: its blocks stay, the dead child's pin holds them");
    pt_caches_forget_column(9);
    ok(bytes_used(ch) == 0 && consistent(ch), "forget_column gives the dead column's pins back");
    store(ch, "/d2", 53, 30000);
    pt_cache_pin_t *mine = pin_key(ch, "/d2", 2);
    pt_caches_forget_column(9);
    pt_cache_invalidate(ch, PT_STR("/d2"));
    ok(bytes_used(ch) > 0 && pinned_holds(mine, 53, 30000), "another column's pins are not given back");
    pt_cache_unpin(mine);
    ok(bytes_used(ch) == 0, "until unpinned");
    close(fds[0]);
    close(fds[1]);
}

/* A large object whose blocks lie scattered goes through an output queue
 * in slices (the queue has room for a few spans at a time), byte for byte;
 * the pin goes with the last slice, or when the queue drops it. */
static void pins_slices(void)
{
    pt_cache_t *ch = pt_cache_get("lru");
    char key[32];
    for (int i = 0; i < 80; i++) { /* every other block free: the next object is in pieces */
        snprintf(key, sizeof(key), "/frag%d", i);
        store(ch, key, (uint32_t)i, 4000);
    }
    for (int i = 0; i < 80; i += 2) {
        snprintf(key, sizeof(key), "/frag%d", i);
        pt_cache_invalidate(ch, pt_str_from(key));
    }
    size_t n = 150000;
    ok(store(ch, "/sliced", 60, n), "a large object in scattered blocks");
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
        return;
    pt_outq_t q = {0};
    pt_cache_pin_t *p = pin_key(ch, "/sliced", 2);
    ok(p && pt_cache_pin_queue(p, &q, 0, n) && q.open && q.pending < n, "queued: a first slice, more to come");
    unsigned char *got = malloc(n), *want = make(60, n);
    size_t at = 0;
    int flushes = 0;
    while (at < n && flushes++ < 10000) {
        pt_outq_flush(&q, sv[0]);
        ssize_t r;
        while (at < n && (r = read(sv[1], got + at, n - at)) > 0)
            at += (size_t)r;
    }
    ok(at == n && memcmp(got, want, n) == 0 && !q.open && pt_outq_empty(&q), "all of it, in order, byte for byte");
    pt_cache_purge_prefix(ch, PT_STR(""));
    ok(bytes_used(ch) == 0 && consistent(ch), "the pin went with the last slice");
    store(ch, "/sliced", 61, n);
    p = pin_key(ch, "/sliced", 2);
    ok(p && pt_cache_pin_queue(p, &q, 8, n - 8) && !pt_cache_pin_queue(p, &q, 0, 8), "a queue takes one producer");
    pt_cache_purge_prefix(ch, PT_STR(""));
    ok(bytes_used(ch) > 0, "purged while it is queued: its blocks stay");
    pt_outq_reset(&q);
    ok(bytes_used(ch) == 0 && !q.open && consistent(ch), "dropped by the queue: unpinned");
    store(ch, "/sliced", 62, n);
    p = pin_key(ch, "/sliced", 2);
    while (pt_outq_free_segs(&q) > 2)
        pt_outq_ref(&q, "x", 1);
    ok(!pt_cache_pin_queue(p, &q, 0, n) && !q.open, "a queue without room takes nothing, and is not left open");
    pt_cache_unpin(p);
    pt_outq_reset(&q);
    pt_cache_purge_prefix(ch, PT_STR(""));
    pt_outq_free(&q);
    free(got);
    free(want);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    prepare();
    sizes_round_trip();
    sizes_max();
    too_long();
    variants();
    invalidate_and_purge();
    lru();
    races();
    update_meta();
    append_from();
    writers();
    forget_column();
    killed_writer();
    dead_lock_holder();
    two_processes();
    fetch_locks();
    counters();
    pins_drop();
    pins_capped();
    pins_shared();
    pins_limits();
    pins_dead_column();
    pins_slices();
    reload();
    pt_zone_free_all();
    return done_testing();
}
