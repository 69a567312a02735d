#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "portico/assert.h"
#include "portico/log.h"
#include "portico/str.h"
#include "portico/zone.h"

#define ZONE_MAGIC 0x5a4f4e45u

/* The head of a zone, at the start of its mapping; data follows. */
struct pt_zone {
    unsigned magic;
    char name[64];
    size_t size; /* of the data */
    size_t mapped;
    pthread_mutex_t lock;
    /* master-side bookkeeping (the same in every process, never changed by workers) */
    bool wanted, reused;
    pt_zone_t *next;
    _Alignas(64) unsigned char data[];
};

static pt_zone_t *zones; /* the master's list */

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
        /* the same name at another size: a new zone; the old one goes at
         * the next sweep, once no worker of the old generation needs it */
    }
    pt_zone_t *z = create(name, size);
    if (!z)
        return NULL;
    z->wanted = true;
    z->reused = false;
    z->next = zones;
    zones = z;
    return z;
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

void *pt_zone_slot(pt_zone_t *z, size_t slot_size, size_t key_size, const char *key, bool claim)
{
    if (!z || !key[0])
        return NULL;
    size_t kn = strnlen(key, key_size - 1), n = z->size / slot_size;
    size_t i = (size_t)pt_hash_bytes(PT_HASH_INIT, key, kn) & (n - 1);
    for (size_t k = 0; k < n; k++, i = (i + 1) & (n - 1)) {
        char *s = (char *)pt_zone_data(z) + i * slot_size;
        if (!s[0]) {
            if (!claim)
                return NULL;
            memcpy(s, key, kn);
            s[kn] = '\0';
            return s;
        }
        if (strncmp(s, key, kn) == 0 && s[kn] == '\0')
            return s;
    }
    return NULL;
}
