/* Listening sockets, owned by the master: one SO_REUSEPORT socket per
 * (listener, worker slot), so the kernel spreads connections over workers
 * without a shared accept lock.  A reload keeps every socket whose address
 * is still configured, so nothing queued in the kernel is lost. */
#ifndef PORTICO_LISTENER_H
#define PORTICO_LISTENER_H

#include <stddef.h>

#include "portico/config-t.h"

enum pt_lsock_kind { PT_LS_HTTP, PT_LS_ADMIN };

typedef struct pt_lsock {
    int kind;
    pt_addr_t addr;                 /* as configured */
    struct sockaddr_storage bound;  /* with the real port when configured as 0 */
    char name[64];
    const pt_listener_conf_t *conf; /* NULL for the admin socket */
    int nfds;
    int *fds; /* one per worker slot */
} pt_lsock_t;

typedef struct pt_lset {
    pt_lsock_t *v;
    size_t n;
} pt_lset_t;

/* Builds in `next` the sockets that configuration c needs with nslots
 * slots, taking over matching sockets of `cur` (which may be empty) and
 * binding the others.  On failure returns -1 with a message in err and
 * leaves cur as it was.  No socket of cur is closed here. */
int pt_lset_prepare(pt_lset_t *cur, const pt_config_t *c, int nslots, pt_lset_t *next, char *err, size_t errlen);
/* Gives up a prepared set: closes the sockets prepare opened. */
void pt_lset_discard(pt_lset_t *cur, pt_lset_t *next);
/* After a successful prepare: closes what cur has and next does not take,
 * frees cur, and moves next into cur. */
void pt_lset_commit(pt_lset_t *cur, pt_lset_t *next);
/* Closes every socket and frees the set. */
void pt_lset_close(pt_lset_t *s);
/* In a worker: closes every fd but those of `slot`. */
void pt_lset_keep_slot(pt_lset_t *s, int slot);

#endif
