/* Collapsed forwarding (cache_store.h): one fetch of a key at a time,
 * across the workers.  A small table in the cache's zone (NLOCKS places,
 * store-int.h), under the zone's lock: a key's place is among the PROBES
 * after its home, found by two independent 64-bit hashes and the key's
 * length (a false match would need both to collide), so no key bytes are
 * kept.  Places are never marked deleted: a lock whose time is over, like
 * a pass mark whose time is over, is simply free again, and a lookup
 * always looks at all PROBES places, so nothing is lost behind a freed
 * one.  When all of a key's places are in use the answer is PASS: the
 * request goes to the origin, as it would without the cache. */
#include "config.h"

#include <stdint.h>

#include "portico/cache_store.h"
#include "portico/digest.h"

#include "store-int.h"

#define PROBES 32 /* places a key may take, from its home on */

typedef struct lkey {
    uint64_t h1, h2;
    uint32_t n;
} lkey_t;

static lkey_t lkey(const pt_cache_t *ch, pt_str_t key)
{
    return (lkey_t){.h1 = cs_hash(ch, key), .h2 = pt_siphash(ch->h->seed2, key.p ? key.p : "", key.n),
                    .n = (uint32_t)key.n};
}

static flock_t *place(pt_cache_t *ch, const lkey_t *k, unsigned probe)
{
    return &ch->locks[(k->h1 + probe) & (NLOCKS - 1)];
}

static bool is_key(const flock_t *l, const lkey_t *k)
{
    return l->h1 == k->h1 && l->h2 == k->h2 && l->key_len == k->n;
}

/* Neither held nor marked at now. */
static bool is_free(const flock_t *l, int64_t now_ms)
{
    return l->expires_ms <= now_ms && l->pass_until_ms <= now_ms;
}

int pt_cache_lock(pt_cache_t *ch, pt_str_t key, int column, int64_t now_ms, int64_t hold_ms)
{
    if (!ch || key.n > PT_CACHE_KEY_MAX)
        return PT_CACHE_PASS;
    lkey_t k = lkey(ch, key);
    flock_t *found = NULL, *free = NULL;
    cs_lock(ch);
    for (unsigned p = 0; p < PROBES; p++) {
        flock_t *l = place(ch, &k, p);
        if (is_free(l, now_ms)) {
            if (!free)
                free = l;
        } else if (is_key(l, &k)) {
            found = l;
            break;
        }
    }
    int r = PT_CACHE_PASS;
    if (found)
        r = found->expires_ms > now_ms ? PT_CACHE_BUSY : PT_CACHE_PASS;
    else if (free) {
        *free = (flock_t){.h1 = k.h1, .h2 = k.h2, .key_len = k.n, .holder = column,
                          .expires_ms = now_ms + hold_ms};
        r = PT_CACHE_LOCKED;
    }
    cs_unlock(ch);
    return r;
}

void pt_cache_unlock(pt_cache_t *ch, pt_str_t key, int column, int64_t pass_until_ms)
{
    if (!ch || key.n > PT_CACHE_KEY_MAX)
        return;
    lkey_t k = lkey(ch, key);
    cs_lock(ch);
    /* every place of the key the column holds: one whose time ran out may
     * have been left behind when the column locked the key again */
    for (unsigned p = 0; p < PROBES; p++) {
        flock_t *l = place(ch, &k, p);
        if (is_key(l, &k) && l->holder == column) {
            l->holder = -1;
            l->expires_ms = 0;
            l->pass_until_ms = pass_until_ms > 0 ? pass_until_ms : 0;
        }
    }
    cs_unlock(ch);
}

void cs_locks_forget(pt_cache_t *ch, int column)
{
    for (unsigned i = 0; i < NLOCKS; i++) {
        flock_t *l = &ch->locks[i];
        if (l->holder == column && l->expires_ms) {
            l->holder = -1;
            l->expires_ms = 0;
        }
    }
}
