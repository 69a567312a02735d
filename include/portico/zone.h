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
 * a char[key_size] ("" = free).  Returns the slot of `key` (cut to
 * key_size - 1 bytes), claiming a free one when `claim` (in the master,
 * under the lock), or NULL when absent or the table is full. */
void *pt_zone_slot(pt_zone_t *z, size_t slot_size, size_t key_size, const char *key, bool claim);

#endif
