/* The disk tier's zones and the workers' side of its queue
 * (cache_disk.h, disk-int.h). */
#include "config.h"

#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "portico/assert.h"
#include "portico/cache_disk.h"
#include "portico/digest.h"
#include "portico/log.h"
#include "portico/zone.h"

#include "disk-int.h"

#define MAGIC 0x4344495348510001ull /* "CDISHQ" v1 */
#define DISK_MAGIC 0x43444b21u
/* Counts in the presence map: a fixed number, so that the zone's size
 * does not depend on the configuration and a reload that changes the
 * tier's size or path keeps the zone, queue and all (the old workers
 * still draining post to the queue the new process takes).  A million
 * counts (4 MiB) keep false positives (a load asked for in vain) rare up
 * to about a million files. */
#define NMAP (1u << 20)

static pt_cdisk_t **disks;
static size_t ndisks;
static int efd = -1;

static size_t align64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

static size_t zone_size(void)
{
    return align64(sizeof(dq_hdr_t)) + align64(DQ_NCELLS * sizeof(dq_cell_t)) + (size_t)NMAP * 4;
}

bool pt_cdisk_any(const pt_config_t *c)
{
    for (size_t i = 0; i < c->caches.n; i++)
        if (PT_LIST_AT(c->caches, pt_cache_conf_t, i)->disk.node)
            return true;
    return false;
}

void pt_cdisk_signature(const pt_config_t *c, char *out, size_t cap)
{
    size_t off = 0;
    out[0] = 0;
    for (size_t i = 0; i < c->caches.n && off < cap; i++) {
        const pt_cache_conf_t *cc = PT_LIST_AT(c->caches, pt_cache_conf_t, i);
        if (cc->disk.node)
            off += (size_t)snprintf(out + off, cap - off, "%s\n%lld\n%s\n%lld\n%lld\n", cc->name,
                                    (long long)cc->memory, cc->disk.path, (long long)cc->disk.size,
                                    (long long)cc->max_object_size);
    }
}

/* The disk tier of cache cc, in a zone kept from before or made. */
static pt_cdisk_t *prepare_one(const pt_cache_conf_t *cc)
{
    char zname[64];
    snprintf(zname, sizeof(zname), "cdisk:%s", cc->name);
    size_t zsize = zone_size();
    pt_cdisk_t *d = calloc(1, sizeof(*d));
    pt_zone_t *z = d ? pt_zone_get(zname, zsize) : NULL;
    if (!z) {
        free(d);
        return NULL;
    }
    char *p = pt_zone_data(z);
    *d = (pt_cdisk_t){.magic = DISK_MAGIC, .zone = z, .h = (dq_hdr_t *)p, .efd = efd};
    d->cells = (dq_cell_t *)(p + align64(sizeof(dq_hdr_t)));
    d->map = (_Atomic uint32_t *)(p + align64(sizeof(dq_hdr_t)) + align64(DQ_NCELLS * sizeof(dq_cell_t)));
    snprintf(d->name, sizeof(d->name), "%s", cc->name);
    dq_hdr_t *H = d->h;
    if (pt_zone_reused(z) && H->magic == MAGIC && H->nmap == NMAP) {
        H->size = (uint64_t)cc->disk.size; /* for /status; the process serving it reads its own */
        return d;
    }
    memset(H, 0, sizeof(*H));
    if (RAND_bytes((unsigned char *)H->seed, sizeof(H->seed)) != 1) {
        free(d);
        errno = EIO;
        return NULL;
    }
    H->size = (uint64_t)cc->disk.size;
    H->nmap = NMAP;
    atomic_store_explicit(&H->indexing, 1, memory_order_relaxed); /* until a process has read the files */
    H->magic = MAGIC;
    return d;
}

int pt_cdisks_prepare(const pt_config_t *c)
{
    if (pt_cdisk_any(c) && efd < 0) {
        efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (efd < 0)
            return -1;
    }
    size_t n = c->caches.n;
    pt_cdisk_t **t = calloc(n ? n : 1, sizeof(*t));
    if (!t)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const pt_cache_conf_t *cc = PT_LIST_AT(c->caches, pt_cache_conf_t, i);
        if (cc->disk.node && !(t[i] = prepare_one(cc))) {
            int e = errno;
            for (size_t k = 0; k < i; k++)
                free(t[k]);
            free(t);
            errno = e;
            return -1;
        }
    }
    for (size_t i = 0; i < n; i++) /* the caches were made just before */
        cs_set_disk(pt_cache_get(PT_LIST_AT(c->caches, pt_cache_conf_t, i)->name), t[i]);
    for (size_t i = 0; i < ndisks; i++)
        free(disks[i]);
    free(disks);
    disks = t;
    ndisks = n;
    return 0;
}

void pt_cdisks_gone(void)
{
    for (size_t i = 0; i < ndisks; i++)
        if (disks[i])
            atomic_store_explicit(&disks[i]->h->pid, 0, memory_order_release);
}

bool cdq_drops_pending(const pt_cdisk_t *d)
{
    const dq_hdr_t *H = d->h;
    if (atomic_load_explicit(&H->tombs, memory_order_acquire) || atomic_load_explicit(&H->wipe, memory_order_acquire))
        return true;
    uint64_t head = __atomic_load_n(&H->head, __ATOMIC_ACQUIRE);
    for (uint64_t t = atomic_load_explicit(&H->tail, memory_order_acquire); t < head; t++) {
        uint32_t type = d->cells[t % DQ_NCELLS].type;
        if (type == DQ_INVALIDATE || type == DQ_PURGE_PREFIX || type == DQ_PURGE_PATH)
            return true;
    }
    return false;
}

pt_cdisk_t *cdq_get(const char *name)
{
    for (size_t i = 0; i < ndisks; i++)
        if (disks[i] && strcmp(disks[i]->name, name) == 0)
            return disks[i];
    return NULL;
}

int cdq_efd(void)
{
    return efd;
}

uint64_t cdq_hash(const pt_cdisk_t *d, pt_str_t key)
{
    return pt_siphash(d->h->seed, key.p, key.n);
}

/* Queues a command: its ticket, or 0 when the queue is full. */
static uint64_t post(pt_cdisk_t *d, uint32_t type, pt_str_t text, uint32_t slot, uint32_t gen, uint64_t store_id)
{
    PT_CHECK_MAGIC(d, DISK_MAGIC);
    if (text.n > PT_CACHE_KEY_MAX)
        return 0;
    uint64_t ticket = 0;
    pt_zone_lock(d->zone); /* a producer that died published nothing: the queue is whole */
    uint64_t head = __atomic_load_n(&d->h->head, __ATOMIC_RELAXED);
    if (head - atomic_load_explicit(&d->h->tail, memory_order_acquire) < DQ_NCELLS) {
        dq_cell_t *c = &d->cells[head % DQ_NCELLS];
        c->type = type;
        c->slot = slot;
        c->gen = gen;
        c->store_id = store_id;
        c->len = (uint32_t)text.n;
        if (text.n)
            memcpy(c->text, text.p, text.n);
        __atomic_store_n(&d->h->head, head + 1, __ATOMIC_RELEASE);
        ticket = head + 1;
    }
    pt_zone_unlock(d->zone);
    if (ticket && d->efd >= 0) {
        uint64_t one = 1;
        if (write(d->efd, &one, sizeof(one)) < 0) { /* EAGAIN: it has been woken enough */
        }
    }
    return ticket;
}

void pt_cdisk_post_write(pt_cdisk_t *d, pt_cache_t *ch, uint32_t slot, uint32_t gen)
{
    if (!post(d, DQ_WRITE, PT_STR_NULL, slot, gen, cs_store_id(ch)))
        atomic_fetch_add_explicit(&d->h->dropped, 1, memory_order_relaxed);
}

/* What cannot be queued is lost, and what it would have dropped could be
 * loaded again: the whole tier goes instead. */
static void post_or_wipe(pt_cdisk_t *d, uint32_t type, pt_str_t text)
{
    if (!post(d, type, text, 0, 0, 0) && !atomic_exchange_explicit(&d->h->wipe, 1, memory_order_acq_rel))
        pt_log_warn("cache \"%s\": the disk queue is full; its files will be dropped so that nothing invalidated "
                    "comes back",
                    d->name);
}

void pt_cdisk_post_invalidate(pt_cdisk_t *d, pt_str_t key)
{
    post_or_wipe(d, DQ_INVALIDATE, key);
}

void pt_cdisk_post_purge(pt_cdisk_t *d, pt_str_t prefix, bool path)
{
    if (prefix.n > PT_CACHE_KEY_MAX) /* no key is longer: it matches nothing */
        return;
    post_or_wipe(d, path ? DQ_PURGE_PATH : DQ_PURGE_PREFIX, prefix);
}

bool pt_cdisk_maybe(pt_cdisk_t *d, pt_str_t key)
{
    if (!d || key.n > PT_CACHE_KEY_MAX || !atomic_load_explicit(&d->h->pid, memory_order_relaxed))
        return false;
    uint64_t h = cdq_hash(d, key);
    return atomic_load_explicit(&d->map[h & (d->h->nmap - 1)], memory_order_relaxed) > 0;
}

uint64_t pt_cdisk_post_load(pt_cdisk_t *d, pt_str_t key)
{
    return d ? post(d, DQ_LOAD, key, 0, 0, 0) : 0;
}

bool pt_cdisk_done(pt_cdisk_t *d, uint64_t ticket)
{
    return atomic_load_explicit(&d->h->tail, memory_order_acquire) >= ticket;
}

void pt_cdisk_stats(pt_cdisk_t *d, pt_cdisk_stats_t *st)
{
    *st = (pt_cdisk_stats_t){0};
    if (!d)
        return;
    dq_hdr_t *H = d->h;
    st->size = H->size;
    st->pid = atomic_load_explicit(&H->pid, memory_order_relaxed);
#define RD(f) st->f = atomic_load_explicit(&H->f, memory_order_relaxed)
    RD(files);
    RD(bytes);
    RD(writes);
    RD(loads);
    RD(evictions);
    RD(dropped);
    RD(errors);
    RD(wipes);
    RD(purged);
#undef RD
    st->indexing = atomic_load_explicit(&H->indexing, memory_order_relaxed) != 0;
}
