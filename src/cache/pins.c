/* Pins (cache_store.h): a worker that sends an object's bytes straight
 * from the cache's blocks (writev from shared memory, no copy) pins the
 * object first, and unpins it when its output queue has sent the last of
 * them.  An object evicted, purged or replaced while pinned leaves the
 * index at once (no lookup finds it) but keeps its blocks (ST_GONE,
 * store.c) until its last pin goes; so nothing can overwrite bytes a
 * queue still points to.
 *
 * Each worker has a row of PINS records in the cache's zone (its column's,
 * the same column as its counters), each naming the entry it pins; the
 * entry counts its records.  A worker that dies with pins has its row
 * given back by the master (pt_caches_forget_column).  When a worker's
 * row is full, pt_cache_pin says no and the caller copies, as without
 * pins.  Pinning and unpinning take the zone's lock, each a few loads and
 * stores under it. */
#include "config.h"

#include <string.h>
#include <sys/uio.h>

#include "portico/assert.h"
#include "portico/cache_store.h"
#include "portico/upstream.h"

#include "store-int.h"

_Static_assert(PIN_COLUMNS == PT_SHARED_COLUMNS, "a row of pins for every column");
_Static_assert(PINS == 64, "pins_busy has a bit per record");
_Static_assert((uint64_t)PIN_COLUMNS * PINS <= UINT16_MAX, "an entry's pin count cannot overflow");

#define PIN_SHARE 4 /* pinned objects hold at most 1/PIN_SHARE of the blocks */

static uint32_t *row(pt_cache_t *ch, int column)
{
    return ch->pins + (size_t)column * PINS;
}

void cs_pins_clear(pt_cache_t *ch)
{
    for (size_t i = 0; i < (size_t)PIN_COLUMNS * PINS; i++)
        ch->pins[i] = NIL;
    for (uint32_t i = 0; i < ch->nentries; i++)
        ch->e[i].pins = 0;
    ch->h->pinned_blocks = 0;
}

/* Record k of column's row lets go of its entry; the entry's last pin
 * gives a dropped object's blocks back.  Under the lock. */
static void unpin_record(pt_cache_t *ch, int column, uint32_t k)
{
    uint32_t *r = &row(ch, column)[k];
    uint32_t i = *r;
    *r = NIL;
    if (i >= ch->nentries || !ch->e[i].pins)
        return; /* the cache was emptied meanwhile (clear): nothing is pinned */
    if (--ch->e[i].pins > 0)
        return;
    ch->h->pinned_blocks -= ch->e[i].nblocks <= ch->h->pinned_blocks ? ch->e[i].nblocks : ch->h->pinned_blocks;
    if (ch->e[i].state == ST_GONE)
        cs_give_back(ch, i);
}

void cs_pins_forget(pt_cache_t *ch, int column)
{
    if (column < 0 || column >= (int)PIN_COLUMNS)
        return;
    for (uint32_t k = 0; k < PINS; k++)
        if (row(ch, column)[k] != NIL)
            unpin_record(ch, column, k);
}

static void release(pt_outq_hold_t *h, bool sent);

pt_cache_pin_t *pt_cache_pin(pt_cache_t *ch, const pt_cache_hit_t *hit, int column)
{
    if (!ch || !hit || hit->slot >= ch->nentries || column < 0 || column >= (int)PIN_COLUMNS ||
        ch->pins_busy == UINT64_MAX)
        return NULL;
    uint32_t k = (uint32_t)__builtin_ctzll(~ch->pins_busy);
    cs_lock(ch);
    entry_t *e = &ch->e[hit->slot];
    bool ok = e->gen == hit->gen && e->state == ST_READY;
    /* pinned objects may hold a quarter of the cache at most: a client
     * that stops reading (an HTTP/2 stream at window 0) must not keep the
     * blocks of dropped objects from everyone else; past it, hits are
     * copied, which costs only its own connection */
    if (ok && !e->pins && ch->h->pinned_blocks + e->nblocks > ch->nblocks / PIN_SHARE)
        ok = false;
    if (ok) {
        if (!e->pins)
            ch->h->pinned_blocks += e->nblocks;
        e->pins++;
        row(ch, column)[k] = hit->slot;
    }
    cs_unlock(ch);
    if (!ok)
        return NULL;
    ch->pins_busy |= 1ull << k;
    pt_cache_pin_t *p = &ch->pin[k];
    /* the chain of a pinned object does not change: read once */
    *p = (pt_cache_pin_t){.hold = {release},
                          .column = column,
                          .ch = ch,
                          .k = k,
                          .slot = hit->slot,
                          .first = e->first,
                          .nblocks = e->nblocks,
                          .pre = (uint64_t)e->key_len + e->names_len + e->values_len,
                          .len = e->len,
                          .cur_block = e->first,
                          .cur_pos = 0};
    return p;
}

void pt_cache_unpin(pt_cache_pin_t *p)
{
    pt_cache_t *ch = p->ch;
    PT_ASSERT(ch && (ch->pins_busy >> p->k & 1));
    cs_lock(ch);
    if (row(ch, p->column)[p->k] == p->slot)
        unpin_record(ch, p->column, p->k);
    cs_unlock(ch);
    ch->pins_busy &= ~(1ull << p->k);
    p->ch = NULL;
}

/* The block that holds byte pos of the chain (pos a multiple of BLOCK),
 * walked from the cursor when it is not past it: spans asked for in
 * order walk the chain once in all.  NIL for a broken chain. */
static uint32_t block_at(pt_cache_pin_t *p, uint64_t pos)
{
    const pt_cache_t *ch = p->ch;
    if (pos < p->cur_pos) {
        p->cur_pos = 0;
        p->cur_block = p->first;
    }
    while (p->cur_pos < pos) {
        uint32_t b = __atomic_load_n(&ch->link[p->cur_block], __ATOMIC_RELAXED);
        if (b >= ch->nblocks)
            return NIL; /* never while pinned; but a cache emptied by a crash (clear) keeps no pin */
        p->cur_block = b;
        p->cur_pos += BLOCK;
    }
    return p->cur_block;
}

int pt_cache_pin_spans(pt_cache_pin_t *p, uint64_t off, uint64_t n, struct iovec *iov, int max)
{
    const pt_cache_t *ch = p->ch;
    uint64_t pos = p->pre + off;
    if (off > p->len || n > p->len - off || pos + n > (uint64_t)p->nblocks * BLOCK)
        return -1;
    int k = 0;
    while (n && max > 0) {
        uint32_t b = block_at(p, pos - pos % BLOCK);
        if (b == NIL)
            return -1;
        size_t in = (size_t)(pos % BLOCK), c = BLOCK - in < n ? BLOCK - in : (size_t)n;
        unsigned char *at = ch->blocks + (size_t)b * BLOCK + in;
        if (k && (unsigned char *)iov[k - 1].iov_base + iov[k - 1].iov_len == at) {
            iov[k - 1].iov_len += c; /* blocks taken in order lie in order: one span */
        } else {
            if (k == max)
                break;
            iov[k++] = (struct iovec){at, c};
        }
        pos += c;
        n -= c;
    }
    return k;
}

/* Queues the next slice of what p feeds its queue: as many spans as the
 * queue has room for, the last one holding the pin.  False when none
 * could be queued. */
static bool queue_slice(pt_cache_pin_t *p)
{
    struct iovec iov[PT_OUTQ_SEGS];
    int n = pt_cache_pin_spans(p, p->next, p->end - p->next, iov, pt_outq_free_segs(p->q) - 2);
    for (int i = 0; i < n; i++) {
        pt_outq_ref_held(p->q, iov[i].iov_base, iov[i].iov_len, i == n - 1 ? &p->hold : NULL);
        p->next += iov[i].iov_len;
    }
    p->q->open = n > 0 && p->next < p->end; /* the rest comes when this slice was sent */
    return n > 0;
}

/* The queue is done with the slice that held p: sent, the next one is
 * queued (a pinned chain cannot fail); dropped, or all sent, p goes. */
static void release(pt_outq_hold_t *h, bool sent)
{
    pt_cache_pin_t *p = (pt_cache_pin_t *)h;
    if (sent && p->q && p->next < p->end && queue_slice(p))
        return;
    if (p->q)
        p->q->open = false;
    pt_cache_unpin(p);
}

bool pt_cache_pin_queue(pt_cache_pin_t *p, pt_outq_t *q, uint64_t off, uint64_t n)
{
    if (off > p->len || n > p->len - off || !n || q->open)
        return false;
    p->q = q;
    p->next = off;
    p->end = off + n;
    if (queue_slice(p))
        return true;
    p->q = NULL;
    return false;
}
