/* What master.c and master_reload.c share, and nothing outside them sees:
 * the master's processes and state (one, pt_master_state), and the steps
 * each file calls of the other.  master.c starts, watches and stops the
 * workers; master_reload.c carries a reload from SIGHUP to its new
 * generation serving, or to its failure. */
#ifndef PORTICO_PROC_MASTER_INT_H
#define PORTICO_PROC_MASTER_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "portico/cdisk_keeper.h"
#include "portico/config.h"
#include "portico/listener.h"
#include "portico/master.h"
#include "portico/resolve_async.h"
#include "portico/status-t.h"
#include "portico/zone.h"

#define MAX_PROCS 1024
#define KILL_GRACE_MS 5000

typedef struct proc {
    pid_t pid;
    int slot;
    uint32_t gen;
    int chan;
    bool ready, draining;
    bool hung; /* killed by the watchdog; not reaped yet */
    const char *killed; /* why the master killed it with SIGKILL otherwise, for the log; NULL */
    int64_t stop_by; /* told to stop: killed if still alive then (0: not told) */
    int64_t told_ms; /* when it was told */
    bool terminated; /* told to stop at once (SIGTERM), past max_old_generations */
    int64_t started_ms;
    int64_t watchdog; /* worker_watchdog of its generation, which set its heartbeat */
    int board; /* index in the status board */
    int column; /* in the shared per-target counters: its own (column.h) */
    pt_zone_t *upzone; /* the shared target zone of its generation */
    void *mx_zone;     /* the metrics zone its block is in (metrics.h) */
    int mx_block;
} proc_t;

struct master {
    pt_opts_t o;
    pt_config_t *conf;
    const char *pid_file; /* fixed at start: points to pid_path, or NULL */
    char pid_path[4096];
    pt_lset_t lset;
    int nworkers;
    uint32_t gen;
    proc_t procs[MAX_PROCS];
    size_t nprocs;
    int sigfd;
    pt_status_t *status;
    uid_t uid;
    gid_t gid;
    bool drop;
    bool announced; /* READY sent for the current generation */
    bool reloading;
    bool sweep_due; /* zones of an old generation can go once it has exited */
    unsigned long zone_mark; /* pt_zone_mark() before the zones of the reload under way */
    pt_zone_t *upzone;
    char reverted[512]; /* the admin API's target changes the last reload dropped */
    /* A reload under way: the new file's host names are being resolved
     * (pending), then its generation starts beside the serving one, which
     * is kept in prev until every new worker is ready. */
    struct {
        pt_config_t *conf;
        pt_resolve_async_t *job;
    } pending;
    struct {
        bool active;
        uint32_t gen;
        pt_config_t *conf;
        pt_lset_t lset;
        pt_zone_t *upzone;
        int nworkers;
        uid_t uid;
        gid_t gid;
        bool drop;
        int64_t deadline; /* reload_timeout */
    } prev;
    bool hup_queued;   /* a SIGHUP came during a reload: another follows it */
    uint32_t last_gen; /* the last generation number given, failed ones included */
    bool stopping, terminating;
    int64_t kill_at;
    struct {
        int64_t respawn_at; /* 0: nothing pending */
        int64_t backoff;
    } slots[256];
};

extern struct master pt_master_state;

int64_t ms_now_ms(void);
const char *ms_error_log_path(const pt_config_t *c, const pt_opts_t *o);
int ms_resolve_user(const pt_config_t *c, uid_t *uid, gid_t *gid, bool *drop, char *err, size_t errlen);
int ms_prepare_access_log(const pt_config_t *c, bool drop, uid_t uid, gid_t gid, char *err, size_t errlen);
void ms_board_config(void);
int ms_spawn(int slot);
const pt_cdk_ctx_t *ms_cdk(void);
void ms_announce(bool now);
void ms_check_ready(void);
void ms_read_chan(proc_t *p);
bool ms_reload_busy(void);
pt_zone_t *ms_prepare_zones(const pt_config_t *c);
void ms_retire_for_columns(void);
void ms_promote(void);
void ms_abandon_generation(const char *why);
void ms_on_resolve(void);
void ms_reload(void);
int64_t ms_reload_timers(int64_t now);

#endif
