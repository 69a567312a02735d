#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "portico/assert.h"
#include "portico/log.h"
#include "portico/str.h"
#include "portico/zone.h"

#define ZONE_MAGIC 0x5a4f4e45u
/* The first byte of a freed slot's key.  libyaml hands out UTF-8 only and
 * addresses are ours, so no key starts with it. */
#define FREED '\xff'
#define FULL_REPORT_MS 60000

/* The head of a zone, at the start of its mapping; data follows. */
struct pt_zone {
    unsigned magic;
    char name[64];
    size_t size; /* of the data */
    size_t mapped;
    pthread_mutex_t lock;
    /* a slot table's figures: changed under the lock, read by /status without it */
    _Atomic size_t used;
    _Atomic unsigned long long evicted, refused;
    unsigned long long refused_told; /* refused when a full table was last logged */
    int64_t full_told_ms;
    /* master-side bookkeeping (the same in every process, never changed by workers) */
    bool wanted, reused;
    unsigned long born; /* the count of zones made before it (pt_zone_mark) */
    pt_zone_t *next;
    _Alignas(64) unsigned char data[];
};

static pt_zone_t *zones; /* the master's list, newest first */
static unsigned long made;

static pt_zone_t *create(const char *name, size_t size)
{
    size_t mapped = sizeof(pt_zone_t) + size;
    void *m = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    pt_zone_t *z = m;
    z->magic = ZONE_MAGIC;
    snprintf(z->name, sizeof(z->name), "%s", name);
    z->size = size;
    z->mapped = mapped;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    int rc = pthread_mutex_init(&z->lock, &a);
    pthread_mutexattr_destroy(&a);
    if (rc != 0) {
        munmap(m, mapped);
        errno = rc;
        return NULL;
    }
    return z;
}

pt_zone_t *pt_zone_get(const char *name, size_t size)
{
    for (pt_zone_t **pz = &zones; *pz; pz = &(*pz)->next) {
        pt_zone_t *z = *pz;
        if (strcmp(z->name, name) != 0)
            continue;
        if (z->size == size) {
            z->wanted = true;
            z->reused = true;
            return z;
        }
        /* The same name at another size: a new zone; the old one goes at
         * a sweep, once no worker of the old generation needs it.  Only
         * the newest of a name is reused: an older one still mapped holds
         * state from before the newest took over. */
        break;
    }
    pt_zone_t *z = create(name, size);
    if (!z)
        return NULL;
    z->wanted = true;
    z->reused = false;
    z->born = ++made;
    z->next = zones;
    zones = z;
    return z;
}

unsigned long pt_zone_mark(void)
{
    return made;
}

void pt_zone_abandon(unsigned long mark)
{
    /* Those made since the mark go to the end of the list, unwanted: a
     * lookup finds the older zone of the name first, and the next sweep
     * unmaps them (the failed generation's workers keep their own maps). */
    pt_zone_t *moved = NULL, **tail = &moved;
    for (pt_zone_t **pz = &zones; *pz;) {
        pt_zone_t *z = *pz;
        if (z->born > mark && !z->reused) {
            *pz = z->next;
            z->wanted = false;
            z->next = NULL;
            *tail = z;
            tail = &z->next;
            continue;
        }
        pz = &z->next;
    }
    pt_zone_t **end = &zones;
    while (*end)
        end = &(*end)->next;
    *end = moved;
}

void pt_zone_sweep(void)
{
    /* Keep the newest zone of each name that is wanted; unmap the rest. */
    for (pt_zone_t **pz = &zones; *pz;) {
        pt_zone_t *z = *pz;
        if (!z->wanted) {
            *pz = z->next;
            pt_log_info("shared zone \"%s\" (%zu bytes) released", z->name, z->size);
            munmap(z, z->mapped);
            continue;
        }
        z->wanted = false; /* to be asked for again by the next generation */
        pz = &z->next;
    }
}

void pt_zone_free_all(void)
{
    while (zones) {
        pt_zone_t *z = zones;
        zones = z->next;
        munmap(z, z->mapped);
    }
}

void *pt_zone_data(pt_zone_t *z)
{
    return z->data;
}

size_t pt_zone_size(const pt_zone_t *z)
{
    return z->size;
}

const char *pt_zone_name(const pt_zone_t *z)
{
    return z->name;
}

bool pt_zone_reused(const pt_zone_t *z)
{
    return z->reused;
}

int pt_zone_lock(pt_zone_t *z)
{
    PT_CHECK_MAGIC(z, ZONE_MAGIC);
    int rc = pthread_mutex_lock(&z->lock);
    if (rc == EOWNERDEAD) {
        /* Its owner died holding it: take it over.  The caller is told so
         * it can treat the data as suspect. */
        pthread_mutex_consistent(&z->lock);
        pt_log_warn("shared zone \"%s\": a process died holding its lock; recovered", z->name);
        return 1;
    }
    PT_ASSERT(rc == 0);
    return 0;
}

void pt_zone_unlock(pt_zone_t *z)
{
    pthread_mutex_unlock(&z->lock);
}

static void *slot_at(pt_zone_t *z, size_t slot_size, size_t i)
{
    return (char *)z->data + i * slot_size;
}

/* A claim was refused: counted, and logged at most once a minute per zone
 * (a zone fills once, and then every claim of every worker would log). */
static void tell_full(pt_zone_t *z, size_t n, const char *key)
{
    unsigned long long refused = atomic_fetch_add(&z->refused, 1) + 1;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (z->full_told_ms && now - z->full_told_ms < FULL_REPORT_MS)
        return;
    pt_log_warn("shared zone \"%s\" is full: all %zu slots are in use, none for \"%s\" (%llu claim%s refused "
                "since the last report); what that key would share stays in each worker",
                z->name, n, key, refused - z->refused_told, refused - z->refused_told == 1 ? "" : "s");
    z->full_told_ms = now;
    z->refused_told = refused;
}

/* Zeroes a slot and gives it `key`. */
static void *take(pt_zone_t *z, char *s, size_t slot_size, const char *key, size_t kn, bool fresh)
{
    memset(s, 0, slot_size);
    memcpy(s, key, kn);
    if (fresh)
        atomic_fetch_add(&z->used, 1);
    return s;
}

static void *find(pt_zone_t *z, size_t slot_size, size_t key_size, const char *key, bool claim, pt_zone_idle_fn idle)
{
    if (!z || !key[0])
        return NULL;
    size_t kn = strnlen(key, key_size - 1), n = z->size / slot_size;
    size_t i = (size_t)pt_hash_bytes(PT_HASH_INIT, key, kn) & (n - 1);
    char *freed = NULL;
    for (size_t k = 0; k < n; k++, i = (i + 1) & (n - 1)) {
        char *s = slot_at(z, slot_size, i);
        if (!s[0]) { /* the end of this key's run: it is not in the table */
            if (!claim)
                return NULL;
            return take(z, freed ? freed : s, slot_size, key, kn, true);
        }
        if (s[0] == FREED) {
            freed = freed ? freed : s;
            continue;
        }
        if (strncmp(s, key, kn) == 0 && s[kn] == '\0')
            return s;
    }
    if (!claim)
        return NULL;
    if (freed)
        return take(z, freed, slot_size, key, kn, true);
    /* Full, with no slot ever left empty, so any slot is on this key's
     * way: one that nothing points to any more can be taken over. */
    for (size_t k = 0; idle && k < n; k++, i = (i + 1) & (n - 1)) {
        char *s = slot_at(z, slot_size, i);
        if (idle(s)) {
            atomic_fetch_add(&z->evicted, 1);
            return take(z, s, slot_size, key, kn, false);
        }
    }
    tell_full(z, n, key);
    return NULL;
}

void *pt_zone_slot(pt_zone_t *z, size_t slot_size, size_t key_size, const char *key, bool claim)
{
    return find(z, slot_size, key_size, key, claim, NULL);
}

void *pt_zone_claim(pt_zone_t *z, size_t slot_size, size_t key_size, const char *key, pt_zone_idle_fn idle)
{
    return find(z, slot_size, key_size, key, true, idle);
}

void pt_zone_release(pt_zone_t *z, void *slot, size_t slot_size)
{
    char *s = slot;
    PT_ASSERT(s[0] && s[0] != FREED);
    /* Never back to "": a key placed further along its run would be lost. */
    memset(s, 0, slot_size);
    s[0] = FREED;
    atomic_fetch_sub(&z->used, 1);
}

void *pt_zone_slot_at(pt_zone_t *z, size_t slot_size, size_t i)
{
    char *s = slot_at(z, slot_size, i);
    return s[0] && s[0] != FREED ? s : NULL;
}

void pt_zone_stats(pt_zone_t *z, size_t slot_size, pt_zone_stats_t *st)
{
    *st = (pt_zone_stats_t){.slots = z->size / slot_size, .used = atomic_load(&z->used),
                            .evicted = atomic_load(&z->evicted), .refused = atomic_load(&z->refused)};
}

pt_zone_t *pt_zone_replaced(const pt_zone_t *z)
{
    /* the list is newest first: the next one of that name came before */
    for (pt_zone_t *o = z->next; o; o = o->next)
        if (strcmp(o->name, z->name) == 0)
            return o;
    return NULL;
}
