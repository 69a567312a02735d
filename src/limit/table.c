/* The local counters of the rate limits (limit.h): a hash table in one
 * shared-memory zone, chained by index, with an LRU list through its
 * entries and a pool of holds for limit-conn.  Layout of the zone:
 *
 *   hdr | int32 bucket[nbuckets] | entry[nentries] | hold[nholds]
 *
 * Indexes, not pointers: the zone may sit at another address in a process
 * that mapped it again (it does not today, but nothing here depends on
 * it).  Every operation takes the zone's robust mutex; when a process died
 * holding it, the table may be half-updated, so it is emptied (counted in
 * resets, logged): limits start again from zero rather than trust broken
 * chains. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "portico/digest.h"
#include "portico/limit.h"
#include "portico/log.h"
#include "portico/zone.h"

#define MAGIC 0x4c494d4954530003ull /* "LIMITS" v3 */
#define EVICT_TRIES 16 /* entries kept (held, or at their limit) stepped over at the LRU's end before a claim fails */

typedef struct entry {
    int32_t chain;            /* next in its bucket, -1 */
    int32_t prev, next;       /* LRU: prev is more recent; -1 at the ends; next is also the free list */
    uint32_t holds;           /* limit-conn: requests in flight; never evicted while > 0 */
    uint64_t hash;
    int64_t keep_until;       /* CLOCK_MONOTONIC ms: at its limit until then; not evicted before */
    pt_lkey_t key;            /* key.n == 0: free */
    int64_t v[5];             /* the counters, by kind (see each operation) */
} entry_t;
_Static_assert(sizeof(entry_t) == 136, "the layout the zone is sized for");

typedef struct hold {
    int32_t entry; /* -1: free */
    int32_t column;
    int32_t next_free;
    uint32_t gen;  /* the table's generation when taken: a hold from before a reset is not given back twice */
} hold_t;

typedef struct hdr {
    uint64_t magic;
    uint64_t seed[2];
    uint32_t nentries, nbuckets, nholds, used;
    int32_t head, tail; /* LRU: head most recent */
    int32_t free_hold;  /* given-back holds; then fresh ones from fresh_hold */
    uint32_t fresh_hold;
    uint32_t holds_used, gen;
    _Atomic uint64_t evicted, refused, resets, kept, evicted_at_limit;
} hdr_t;

static pt_zone_t *zone;
static hdr_t *H;
static int32_t *buckets;
static entry_t *E;
static hold_t *HO;

static void layout(void *data, size_t size, uint32_t *ne, uint32_t *nb, uint32_t *nh)
{
    size_t hsize = (sizeof(hdr_t) + 63) & ~(size_t)63;
    size_t hold_bytes = size / 16;
    *nh = (uint32_t)(hold_bytes / sizeof(hold_t));
    size_t rest = size - hsize - (size_t)*nh * sizeof(hold_t);
    uint32_t n = (uint32_t)(rest / (sizeof(entry_t) + sizeof(int32_t)));
    uint32_t b = 1;
    while (b * 2 <= n)
        b *= 2;
    *nb = b;
    *ne = (uint32_t)((rest - (size_t)b * sizeof(int32_t)) / sizeof(entry_t));
    H = data;
    buckets = (int32_t *)((char *)data + hsize);
    E = (entry_t *)(buckets + b);
    HO = (hold_t *)(E + *ne);
}

/* Empties the table (the master at first use; anyone after a crash under
 * the lock).  The seed stays: every process hashes with it.  Entries and
 * holds are taken fresh in order (used counts them), so only the buckets
 * are written here: a large table costs its pages only as it fills. */
static void clear(void)
{
    for (uint32_t i = 0; i < H->nbuckets; i++)
        buckets[i] = -1;
    H->free_hold = -1;
    H->fresh_hold = 0;
    H->head = H->tail = -1;
    H->used = H->holds_used = 0;
    H->gen++; /* the holds taken before are void */
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int pt_limits_prepare(const pt_config_t *c, bool used)
{
    if (!used) { /* no limit filter in the file: no table */
        zone = NULL;
        H = NULL;
        return 0;
    }
    size_t size = (size_t)c->limits.memory;
    pt_zone_t *z = pt_zone_get("limits", size);
    if (!z)
        return -1;
    zone = z;
    uint32_t ne, nb, nh;
    layout(pt_zone_data(z), size, &ne, &nb, &nh);
    if (pt_zone_reused(z) && H->magic == MAGIC && H->nentries == ne)
        return 0;
    memset(H, 0, sizeof(*H));
    H->nentries = ne;
    H->nbuckets = nb;
    H->nholds = nh;
    if (RAND_bytes((unsigned char *)H->seed, sizeof(H->seed)) != 1) {
        errno = EIO;
        return -1;
    }
    clear();
    H->magic = MAGIC;
    return 0;
}

static bool lock(void)
{
    if (!zone)
        return false;
    if (pt_zone_lock(zone) == 1) {
        atomic_fetch_add(&H->resets, 1);
        pt_log_error("limits: a process died while changing the counters; they start again from zero");
        clear();
    }
    return true;
}

static void unlock(void)
{
    pt_zone_unlock(zone);
}

void pt_lkey_make(pt_lkey_t *k, char kind, int64_t window_ms, const char *scope, pt_str_t key)
{
    unsigned char buf[512], *big = NULL;
    size_t sl = strlen(scope), n = 1 + 8 + sl + 1 + key.n;
    unsigned char *b = n <= sizeof(buf) ? buf : (big = malloc(n));
    if (!b) { /* no memory for a long key: its prefix stands for it */
        b = buf;
        key.n = sizeof(buf) - 10 - sl < key.n ? sizeof(buf) - 10 - sl : key.n;
        n = 1 + 8 + sl + 1 + key.n;
    }
    b[0] = (unsigned char)kind;
    memcpy(b + 1, &window_ms, 8);
    memcpy(b + 9, scope, sl);
    b[9 + sl] = 0;
    if (key.n)
        memcpy(b + 10 + sl, key.p, key.n);
    if (n <= PT_LKEY_MAX) {
        k->n = (uint8_t)n;
        memcpy(k->b, b, n);
    } else {
        k->n = 0x80 | 32;
        pt_sha256(b, n, k->b);
    }
    free(big);
}

static size_t key_bytes(const pt_lkey_t *k)
{
    return k->n & 0x80 ? 32 : k->n;
}

static void lru_unlink(int32_t i)
{
    entry_t *e = &E[i];
    if (e->prev >= 0)
        E[e->prev].next = e->next;
    else
        H->head = e->next;
    if (e->next >= 0)
        E[e->next].prev = e->prev;
    else
        H->tail = e->prev;
    e->prev = e->next = -1;
}

static void lru_front(int32_t i)
{
    entry_t *e = &E[i];
    e->prev = -1;
    e->next = H->head;
    if (H->head >= 0)
        E[H->head].prev = i;
    H->head = i;
    if (H->tail < 0)
        H->tail = i;
}

static void bucket_unlink(int32_t i)
{
    int32_t *p = &buckets[E[i].hash & (H->nbuckets - 1)];
    while (*p >= 0 && *p != i)
        p = &E[*p].chain;
    if (*p == i)
        *p = E[i].chain;
}

/* A fresh entry, or the least recently used one that nothing holds and
 * that is not at its limit: a flood of new keys must not give an
 * exhausted quota back.  When the last EVICT_TRIES are all at their limit
 * (the flood's own keys, say), the oldest of them goes all the same
 * (counted in evicted_at_limit): new keys are still counted.  Held entries
 * (limit-conn) never go. */
static int32_t take_entry(void)
{
    if (H->used < H->nentries)
        return (int32_t)H->used++;
    int64_t now = mono_ms();
    int32_t i, oldest = -1;
    for (int t = 0; t < EVICT_TRIES && H->tail >= 0; t++) {
        i = H->tail;
        lru_unlink(i);
        if (E[i].holds || E[i].keep_until > now) { /* it stays; look at the next */
            if (!E[i].holds && oldest < 0)
                oldest = i;
            lru_front(i);
            atomic_fetch_add(&H->kept, 1);
            continue;
        }
        bucket_unlink(i);
        atomic_fetch_add(&H->evicted, 1);
        return i;
    }
    if (oldest < 0)
        return -1;
    lru_unlink(oldest);
    bucket_unlink(oldest);
    atomic_fetch_add(&H->evicted, 1);
    atomic_fetch_add(&H->evicted_at_limit, 1);
    return oldest;
}

/* The entry of k, made (zeroed) when absent, at the front of the LRU; -1
 * when the table is full of held entries (counted in refused). */
static int32_t find(const pt_lkey_t *k, bool make)
{
    size_t kb = key_bytes(k);
    uint64_t h = pt_siphash(H->seed, k->b, kb) ^ k->n;
    int32_t *b = &buckets[h & (H->nbuckets - 1)];
    for (int32_t i = *b; i >= 0; i = E[i].chain)
        if (E[i].hash == h && E[i].key.n == k->n && memcmp(E[i].key.b, k->b, kb) == 0) {
            if (H->head != i) {
                lru_unlink(i);
                lru_front(i);
            }
            return i;
        }
    if (!make)
        return -1;
    int32_t i = take_entry();
    if (i < 0) {
        atomic_fetch_add(&H->refused, 1);
        return -1;
    }
    E[i] = (entry_t){.chain = *b, .prev = -1, .next = -1, .hash = h, .key = *k};
    *b = i;
    lru_front(i);
    return i;
}

static void fail_open(pt_lresult_t *res, int64_t limit)
{
    *res = (pt_lresult_t){.allowed = true, .failed_open = true, .limit = limit, .remaining = limit};
}

/* A key with nothing left is kept from eviction until it has some again;
 * and a refusal's reset is never before its retry (the fields agree). */
static void at_limit(entry_t *e, pt_lresult_t *res)
{
    if (!res->allowed && res->reset_ms < res->retry_ms)
        res->reset_ms = res->retry_ms;
    e->keep_until = res->remaining > 0 ? 0 : mono_ms() + (res->allowed ? res->reset_ms : res->retry_ms) + 1;
}

/* ---- limit-count: v[0] window index, v[1] this window, v[2] the one before ---- */

/* The sliding estimate times W: prev * (W - elapsed) + cur * W. */
static int64_t slide_weight(int64_t prev, int64_t cur, int64_t w, int64_t el)
{
    return prev * (w - el) + cur * w;
}

/* The window of now, with the counts of the one before carried over. */
static void roll(int64_t *v, int64_t idx)
{
    if (v[0] == idx)
        return;
    v[2] = v[0] == idx - 1 ? v[1] : 0;
    v[1] = 0;
    v[0] = idx;
}

void pt_limits_count(const pt_lkey_t *k, int64_t now_ms, int64_t window_ms, bool sliding, int64_t count,
                     pt_lresult_t *res)
{
    if (!lock()) {
        fail_open(res, count);
        return;
    }
    int32_t i = find(k, true);
    if (i < 0) {
        unlock();
        fail_open(res, count);
        return;
    }
    int64_t *v = E[i].v, idx = now_ms / window_ms, el = now_ms - idx * window_ms;
    roll(v, idx);
    *res = (pt_lresult_t){.limit = count, .reset_ms = window_ms - el};
    if (!sliding) {
        res->allowed = v[1] < count;
        v[1] += res->allowed;
        res->remaining = count - v[1];
        res->retry_ms = res->allowed ? 0 : window_ms - el;
    } else {
        int64_t wt = slide_weight(v[2], v[1] + 1, window_ms, el);
        res->allowed = wt <= count * window_ms;
        v[1] += res->allowed;
        wt = slide_weight(v[2], v[1], window_ms, el);
        res->remaining = (count * window_ms - wt) / window_ms;
        if (!res->allowed) {
            /* when the previous window's share has shrunk enough, or, when
             * this window alone is over, once it is the previous one */
            if (v[1] + 1 <= count && v[2] > 0)
                res->retry_ms = (window_ms - el) - (count - v[1] - 1) * window_ms / v[2];
            else
                res->retry_ms = (window_ms - el) + (v[1] ? window_ms * (v[1] - count + 1) / v[1] : 0);
            if (res->retry_ms < 1)
                res->retry_ms = 1;
        }
    }
    if (res->remaining < 0)
        res->remaining = 0;
    at_limit(&E[i], res);
    unlock();
}

void pt_limits_count_refund(const pt_lkey_t *k, int64_t window_idx)
{
    if (!lock())
        return;
    int32_t i = find(k, false);
    /* v[0] the window and v[1] this window's (or pending) count, in both
     * the plain and the synced layouts */
    if (i >= 0 && E[i].v[0] == window_idx && E[i].v[1] > 0) {
        E[i].v[1]--;
        E[i].keep_until = 0;
    }
    unlock();
}

/* ---- limit-req: v[0] the theoretical arrival time (us) ---- */

void pt_limits_req(const pt_lkey_t *k, int64_t now_us, double rate, int64_t burst, bool nodelay,
                   int64_t max_delay_ms, pt_lresult_t *res)
{
    int64_t t = (int64_t)llround(1e6 / rate); /* the emission interval */
    if (t < 1)
        t = 1;
    if (!lock()) {
        fail_open(res, burst + 1);
        return;
    }
    int32_t i = find(k, true);
    if (i < 0) {
        unlock();
        fail_open(res, burst + 1);
        return;
    }
    int64_t *v = E[i].v, room = (burst + 1) * t;
    /* never further ahead than a full bucket: a clock that went back (the
     * caller's is monotonic; Redis's are the nodes' wall clocks) cannot
     * shut a key out for longer than that */
    if (v[0] > now_us + room)
        v[0] = now_us + room;
    int64_t tat = v[0] > now_us ? v[0] : now_us, next = tat + t;
    *res = (pt_lresult_t){.limit = burst + 1};
    res->allowed = next - now_us <= room;
    if (res->allowed && !nodelay && max_delay_ms > 0 && tat - now_us > max_delay_ms * 1000) {
        /* it could only be held past the time it may wait (and then be
         * answered 504): refused now, when its turn would come */
        res->allowed = false;
        res->retry_ms = (tat - now_us - max_delay_ms * 1000 + 999) / 1000;
        res->reset_ms = (tat - now_us + 999) / 1000;
        at_limit(&E[i], res);
        unlock();
        return;
    }
    if (res->allowed) {
        v[0] = next;
        res->delay_ms = nodelay ? 0 : (tat - now_us + 999) / 1000;
        res->remaining = (room - (next - now_us)) / t;
        res->reset_ms = (next - now_us + 999) / 1000;
    } else {
        res->retry_ms = (next - now_us - room + 999) / 1000;
        res->reset_ms = (tat - now_us + 999) / 1000;
    }
    at_limit(&E[i], res);
    unlock();
}

/* ---- limit-conn: holds ---- */

/* No place could be had (the pool of holds, or the table, is all in
 * use): refused, so that a flood of keys cannot turn every limit-conn
 * off; counted, and said by the caller. */
static void exhausted(pt_lresult_t *res, int64_t max)
{
    atomic_fetch_add(&H->refused, 1);
    *res = (pt_lresult_t){.exhausted = true, .limit = max, .retry_ms = 1000};
}

void pt_limits_conn(const pt_lkey_t *k, int column, int64_t max, int64_t *hold, pt_lresult_t *res)
{
    *hold = -1;
    if (!lock()) {
        fail_open(res, max);
        return;
    }
    int32_t i = find(k, true);
    int32_t h = H->free_hold >= 0 ? H->free_hold : H->fresh_hold < H->nholds ? (int32_t)H->fresh_hold : -1;
    if (i < 0 || h < 0) {
        unlock();
        exhausted(res, max);
        return;
    }
    *res = (pt_lresult_t){.limit = max};
    res->allowed = (int64_t)E[i].holds < max;
    if (res->allowed) {
        if (h == H->free_hold)
            H->free_hold = HO[h].next_free;
        else
            H->fresh_hold++;
        HO[h] = (hold_t){.entry = i, .column = column, .next_free = -1, .gen = H->gen};
        H->holds_used++;
        E[i].holds++;
        *hold = (int64_t)H->gen << 32 | (uint32_t)h;
    }
    res->remaining = max - (int64_t)E[i].holds;
    if (res->remaining < 0)
        res->remaining = 0;
    unlock();
}

static void give_back(int32_t h)
{
    hold_t *ho = &HO[h];
    if (ho->entry >= 0 && E[ho->entry].holds)
        E[ho->entry].holds--;
    *ho = (hold_t){.entry = -1, .next_free = H->free_hold};
    H->free_hold = h;
    H->holds_used--;
}

void pt_limits_conn_release(int64_t hold)
{
    if (hold < 0 || !lock())
        return;
    uint32_t h = (uint32_t)hold, gen = (uint32_t)(hold >> 32);
    /* a hold from before a reset (a crash under the lock) is void: its
     * record may be another request's now */
    if (h < H->fresh_hold && HO[h].entry >= 0 && HO[h].gen == gen)
        give_back((int32_t)h);
    unlock();
}

int64_t pt_limits_conn_count(const pt_lkey_t *k)
{
    if (!lock())
        return 0;
    int32_t i = find(k, false);
    int64_t n = i >= 0 ? E[i].holds : 0;
    unlock();
    return n;
}

void pt_limits_forget_column(int column)
{
    if (!lock())
        return;
    for (uint32_t h = 0; h < H->fresh_hold; h++)
        if (HO[h].entry >= 0 && HO[h].column == column)
            give_back((int32_t)h);
    unlock();
}

/* ---- limit-count synced with Redis: v[0] window, v[1] pending, v[2] sent,
 * v[3] remote total of this window, v[4] total of the window before ---- */

static void roll_synced(int64_t *v, int64_t idx)
{
    if (v[0] == idx)
        return;
    /* what is still pending for the old window is not sent: it stays in
     * the local estimate of the previous window (and in the error bound) */
    v[4] = v[0] == idx - 1 ? v[1] + v[2] + v[3] : 0;
    v[1] = v[2] = v[3] = 0;
    v[0] = idx;
}

bool pt_limits_count_synced(const pt_lkey_t *k, int64_t now_ms, int64_t window_ms, bool sliding, int64_t count,
                            pt_lresult_t *res)
{
    if (!lock()) {
        fail_open(res, count);
        return false;
    }
    int32_t i = find(k, true);
    if (i < 0) {
        unlock();
        fail_open(res, count);
        return false;
    }
    int64_t *v = E[i].v, idx = now_ms / window_ms, el = now_ms - idx * window_ms;
    roll_synced(v, idx);
    bool first = v[1] == 0;
    int64_t cur = v[1] + v[2] + v[3], prev = sliding ? v[4] : 0;
    *res = (pt_lresult_t){.limit = count, .reset_ms = window_ms - el};
    res->allowed = slide_weight(prev, cur + 1, window_ms, el) <= count * window_ms;
    v[1] += res->allowed;
    res->remaining = (count * window_ms - slide_weight(prev, cur + res->allowed, window_ms, el)) / window_ms;
    if (res->remaining < 0)
        res->remaining = 0;
    res->retry_ms = res->allowed ? 0 : window_ms - el;
    at_limit(&E[i], res);
    unlock();
    return res->allowed && first;
}

int64_t pt_limits_sync_take(const pt_lkey_t *k, int64_t *window)
{
    if (!lock())
        return 0;
    int32_t i = find(k, false);
    int64_t n = 0;
    if (i >= 0) {
        int64_t *v = E[i].v;
        n = v[1];
        v[2] += n;
        v[1] = 0;
        *window = v[0];
    }
    unlock();
    return n;
}

void pt_limits_sync_done(const pt_lkey_t *k, int64_t window, int64_t amount, int64_t total, int64_t prev)
{
    if (!lock())
        return;
    int32_t i = find(k, false);
    if (i >= 0 && E[i].v[0] == window) {
        int64_t *v = E[i].v;
        v[2] -= amount;
        if (v[2] < 0)
            v[2] = 0;
        if (total < 0) {
            v[1] += amount; /* not added: sent again next time */
        } else {
            if (total > v[3])
                v[3] = total;
            if (prev > v[4])
                v[4] = prev;
        }
    }
    unlock();
}

void pt_limits_stats(pt_limits_stats_t *st)
{
    *st = (pt_limits_stats_t){0};
    if (!H)
        return;
    st->entries = H->nentries;
    st->used = H->used;
    st->holds = H->nholds;
    st->holds_used = H->holds_used;
    st->evicted = atomic_load(&H->evicted);
    st->kept = atomic_load(&H->kept);
    st->evicted_at_limit = atomic_load(&H->evicted_at_limit);
    st->refused = atomic_load(&H->refused);
    st->resets = atomic_load(&H->resets);
}
