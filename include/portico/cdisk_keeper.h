/* The master's keeping of the cache disk process (cache_disk.h): started
 * for the disk tiers of the serving configuration, restarted when a reload
 * changes them, respawned with a back-off when it dies, stopped after the
 * last worker (proc/cdisk_keeper.c). */
#ifndef PORTICO_CDISK_KEEPER_H
#define PORTICO_CDISK_KEEPER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "portico/config-t.h"

/* What a start needs from the master. */
typedef struct pt_cdk_ctx {
    const pt_config_t *conf; /* the serving configuration */
    bool stopping;           /* the master stops: nothing starts */
    bool drop;               /* the process drops to uid:gid */
    uid_t uid;
    gid_t gid;
    void (*in_child)(void); /* in the new process: closes what only the master may hold */
} pt_cdk_ctx_t;

/* After a start or a reload: the process serving the configuration's disk
 * tiers, kept when they are the same, else restarted. */
void pt_cdk_sync(const pt_cdk_ctx_t *x);
/* A child was reaped: true when it was the disk process (then handled). */
bool pt_cdk_reaped(const pt_cdk_ctx_t *x, pid_t pid, int status);
/* Starts it again when its back-off is over (now in CLOCK_MONOTONIC ms). */
void pt_cdk_due(const pt_cdk_ctx_t *x, int64_t now);
/* The poll timeout, shortened to the next respawn. */
int64_t pt_cdk_timeout(int64_t now, int64_t timeout);
/* The master stops: no respawn from now on. */
void pt_cdk_no_respawn(void);
/* Sends sig to the process, if it runs. */
void pt_cdk_signal(int sig);
/* The master stopped its workers: asks the process to stop (once);
 * true when it has exited. */
bool pt_cdk_stopped(void);
/* Its pid, 0 when none runs. */
pid_t pt_cdk_pid(void);

#endif
