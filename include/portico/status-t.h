/* The status board: a small shared-memory page the master writes and the
 * workers read, so the admin API of any worker can tell about all of them. */
#ifndef PORTICO_STATUS_T_H
#define PORTICO_STATUS_T_H

#include <stdint.h>
#include <sys/types.h>

#define PT_STATUS_MAX_WORKERS 512

enum pt_wstate { PT_W_EMPTY, PT_W_STARTING, PT_W_RUNNING, PT_W_DRAINING };

typedef struct pt_status_worker {
    pid_t pid;
    int slot;
    uint32_t generation;
    int state;
    int64_t started_ms;
    /* Written by the worker itself, read by the master and /status: */
    int64_t heartbeat_ms;    /* CLOCK_MONOTONIC, from a timer of its loop */
    uint64_t access_log_lost; /* access-log entries it could not write */
    uint64_t auth_failures[8]; /* requests refused by the auth filters, by reason (auth.h) */
    uint64_t limit_rejected;   /* requests refused by a limit filter */
    uint64_t limit_fallbacks;  /* limit decisions made locally because Redis could not be asked */
    uint8_t redis_fallback;    /* its Redis client is in a fallback episode now */
    uint64_t trace_exported, trace_dropped, trace_failed_exports; /* spans sent, spans lost, exports failed */
    /* its connection buffers (bufpool.h) at its last heartbeat: held by
     * connections with work, and kept free for the next ones */
    uint32_t bufs_small, bufs_large, bufs_small_free, bufs_large_free;
    uint32_t h2_idle_pages; /* pages idle HTTP/2 sessions gave back, since it started */
} pt_status_worker_t;

typedef struct pt_status {
    pid_t master_pid;
    uint32_t generation;
    int nworkers; /* of the serving generation */
    int64_t started_ms;
    int64_t config_loaded_ms;
    char config_file[512];
    char config_sha256[65];
    uint32_t reloads, reload_failures;
    uint64_t access_log_lost_exited; /* the access_log_lost of workers that exited */
    uint64_t auth_failures_exited[8];
    uint64_t limit_rejected_exited, limit_fallbacks_exited;
    uint64_t trace_exported_exited, trace_dropped_exited, trace_failed_exports_exited;
    pt_status_worker_t workers[PT_STATUS_MAX_WORKERS];
} pt_status_t;

#endif
