/* Giving up root: what a worker and the cache disk process do first. */
#ifndef PORTICO_PRIVILEGES_H
#define PORTICO_PRIVILEGES_H

#include <stdbool.h>
#include <sys/types.h>

/* Becomes user (uid, gid, and the user's groups) when drop; 0, or -1
 * (logged). */
int pt_drop_privileges(bool drop, const char *user, uid_t uid, gid_t gid);

#endif
