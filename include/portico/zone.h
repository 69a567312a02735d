/* Named shared-memory zones: made by the master before forking (mmap of
 * shared anonymous memory), inherited by every worker, and kept across a
 * reload when a zone of the same name and size is asked for again, so
 * counters and health state survive `systemctl reload`.
 *
 * Each zone has a process-shared robust mutex: a worker killed while
 * holding it does not wedge the others; the next locker is told, and takes
 * the lock over.  Prefer atomics on the data; lock only what needs it. */
#ifndef PORTICO_ZONE_H
#define PORTICO_ZONE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct pt_zone pt_zone_t;

/* In the master: the zone `name` of `size` bytes of data.  An existing zone
 * of the same name and size is returned as it is (its data kept); a zone of
 * that name with another size is replaced.  NULL with errno when mmap fails. */
pt_zone_t *pt_zone_get(const char *name, size_t size);
/* In the master, after a reload: unmaps the zones not asked for since the
 * last call (pt_zone_get marks them), keeping the others. */
void pt_zone_sweep(void);
/* A reload that fails: pt_zone_abandon(mark) with the pt_zone_mark() taken
 * before its zones were asked for puts the zones it made behind the older
 * ones of the same names, so that asking again for the serving
 * generation's sizes finds their zones, state and all; the next sweep
 * unmaps them. */
unsigned long pt_zone_mark(void);
void pt_zone_abandon(unsigned long mark);
/* Unmaps every zone (at exit). */
void pt_zone_free_all(void);

void *pt_zone_data(pt_zone_t *z);
size_t pt_zone_size(const pt_zone_t *z);
const char *pt_zone_name(const pt_zone_t *z);
/* Was the zone kept from an earlier generation? */
bool pt_zone_reused(const pt_zone_t *z);

/* Locks the zone.  Returns 0, or 1 when the last owner died holding the lock
 * (the lock is now held and consistent again, but the data it guarded may be
 * half-updated). */
int pt_zone_lock(pt_zone_t *z);
void pt_zone_unlock(pt_zone_t *z);

/* A zone used as an open-addressing table of slots of slot_size bytes (a
 * power-of-two count of them), each starting with a NUL-terminated key in
 * a char[key_size] ("" = never used).  A freed slot keeps a mark that
 * lookups step over, so that the keys placed after it stay reachable, and
 * is claimed again by the next new key that passes it.  Processes may
 * hold pointers to slots: a slot is freed or taken over only when its
 * owner says no process points to it.
 *
 * pt_zone_slot: the slot of `key` (cut to key_size - 1 bytes), claiming a
 * free one when `claim` (under the lock), or NULL when absent or the table
 * is full.  A claimed slot is all zero but for its key. */
void *pt_zone_slot(pt_zone_t *z, size_t slot_size, size_t key_size, const char *key, bool claim);
/* Tells whether a slot that holds a key may be taken over by another key
 * (nothing points to it any more). */
typedef bool (*pt_zone_idle_fn)(const void *slot);
/* As pt_zone_slot claiming (under the lock), but when the table is full a
 * slot that `idle` says is unused is taken over for `key` (counted as
 * evicted).  When none is, the claim is refused, counted, and logged at
 * most once a minute per zone; NULL then. */
void *pt_zone_claim(pt_zone_t *z, size_t slot_size, size_t key_size, const char *key, pt_zone_idle_fn idle);
/* Frees a slot that nothing points to any more (under the lock). */
void pt_zone_release(pt_zone_t *z, void *slot, size_t slot_size);
/* Slot i of the table (0 <= i < size / slot_size) when it holds a key,
 * else NULL: for walks over every key. */
void *pt_zone_slot_at(pt_zone_t *z, size_t slot_size, size_t i);

/* A table's figures, for /status: read without the lock, so approximate
 * while another process changes the table. */
typedef struct pt_zone_stats {
    size_t slots, used;
    unsigned long long evicted, refused;
} pt_zone_stats_t;
void pt_zone_stats(pt_zone_t *z, size_t slot_size, pt_zone_stats_t *st);

/* In the master: the zone of the same name that `z` replaced (another
 * size), while it is still mapped, or NULL.  Its data can be carried over
 * before the old generation's workers, its last users, exit. */
pt_zone_t *pt_zone_replaced(const pt_zone_t *z);

#endif
