/* A reload, from SIGHUP to its new generation serving or to its failure
 * (master-int.h; the master's loop is in master.c).
 *
 * A reload runs in steps, and the master's loop turns between them
 * (signals, channels, reaping, the watchdog): the new file is loaded and
 * checked; its host names are resolved by a child process
 * (resolve_async.c); its listeners and zones are prepared and its
 * generation started beside the serving one, which keeps serving; once
 * every new worker said it is ready, the old generation is asked to drain.
 * A SIGHUP during these steps is remembered, and runs once they are over. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "portico/cache.h"
#include "portico/cache_disk.h"
#include "portico/board.h"
#include "portico/cdisk_keeper.h"
#include "portico/column.h"
#include "portico/config.h"
#include "portico/err-t.h"
#include "portico/filter.h"
#include "portico/limit.h"
#include "portico/limit_filter.h"
#include "portico/listener.h"
#include "portico/log.h"
#include "portico/master.h"
#include "portico/metrics.h"
#include "portico/pidfile.h"
#include "portico/preflight.h"
#include "portico/resolve_async.h"
#include "portico/rlimit.h"
#include "portico/router.h"
#include "portico/runtime.h"
#include "portico/sdnotify.h"
#include "portico/secret.h"
#include "portico/status-t.h"
#include "portico/upstream.h"
#include "portico/tls.h"
#include "portico/zone.h"
#include "portico/worker.h"

#include "master-int.h"

static struct master *const M = &pt_master_state;

/* Resolving, or a new generation starting.  Not while the old one is
 * told to drain: a stuck old worker would hold back every later reload
 * for its shutdown_timeout. */
bool ms_reload_busy(void)
{
    return M->pending.conf || M->prev.active;
}

static void reload_failed(const char *why)
{
    M->status->reload_failures++;
    pt_log_error("reload failed: %s; still serving generation %u", why, M->gen);
    pt_sdnotify("READY=1\nSTATUS=reload failed (%s); serving generation %u", why, M->gen);
}

/* The shared zones of configuration c, kept or made.  Each module keeps a
 * pointer to its own, which the next fork hands to the workers, so this is
 * also how the serving generation gets its zones back after a reload
 * failed.  NULL when mmap failed. */
pt_zone_t *ms_prepare_zones(const pt_config_t *c)
{
    pt_zone_t *z = pt_upstreams_zone(c);
    int nworkers = M->o.workers ? M->o.workers : pt_config_workers(c);
    return z && pt_metrics_prepare(c, nworkers) == 0 && pt_filters_prepare(c) == 0 && pt_limits_prepare(c, pt_limit_used(c)) == 0 && pt_cache_prepare(c) == 0 &&
                   pt_tls_prepare(c) == 0
               ? z
               : NULL;
}

static int cmp_gen(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static bool is_dying(const proc_t *p)
{
    return p->terminated || p->killed || p->hung;
}

/* Tells every worker of generation gen to stop now: SIGTERM closes their
 * connections, SIGKILL follows if they linger.  How many were told. */
static size_t terminate_gen(uint32_t gen, int64_t now)
{
    size_t stopped = 0;
    for (size_t i = 0; i < M->nprocs; i++) {
        proc_t *p = &M->procs[i];
        if (p->gen != gen || is_dying(p))
            continue;
        kill(p->pid, SIGTERM);
        p->terminated = true;
        p->told_ms = now;
        p->stop_by = now + KILL_GRACE_MS;
        stopped++;
    }
    return stopped;
}

/* A new worker found no free column: every one is held by the generations
 * alive.  The oldest one draining (neither the new one nor the one that
 * serves until it is ready) is told to stop now, so that a reload is not
 * left waiting on connections that may never close. */
void ms_retire_for_columns(void)
{
    uint32_t oldest = 0;
    bool any = false;
    for (size_t i = 0; i < M->nprocs; i++) {
        const proc_t *p = &M->procs[i];
        if (p->gen == M->gen || (M->prev.active && p->gen == M->prev.gen) || is_dying(p))
            continue;
        if (!any || p->gen < oldest)
            oldest = p->gen;
        any = true;
    }
    if (!any)
        return;
    size_t n = terminate_gen(oldest, ms_now_ms());
    pt_log_notice("generation %u: %zu worker%s still draining hold the counter columns new workers need: stopping %s "
                  "now", oldest, n, n == 1 ? "" : "s", n == 1 ? "it" : "them");
}

/* Keeps at most max_old_generations generations of workers draining (as
 * HAProxy's mworker-max-reloads does): long-lived connections (WebSocket,
 * gRPC streams) would otherwise keep every generation of a burst of
 * reloads alive until its shutdown_timeout.  The oldest are told to stop
 * now: SIGTERM closes their connections, SIGKILL follows if they linger. */
static void retire_past_cap(void)
{
    uint32_t gens[MAX_PROCS];
    size_t n = 0;
    for (size_t i = 0; i < M->nprocs; i++) {
        const proc_t *p = &M->procs[i];
        bool seen = p->gen == M->gen || is_dying(p);
        for (size_t k = 0; k < n && !seen; k++)
            seen = gens[k] == p->gen;
        if (!seen)
            gens[n++] = p->gen;
    }
    size_t cap = (size_t)M->conf->max_old_generations;
    if (n <= cap)
        return;
    qsort(gens, n, sizeof(gens[0]), cmp_gen);
    int64_t now = ms_now_ms();
    for (size_t k = 0; k < n - cap; k++) {
        size_t stopped = terminate_gen(gens[k], now);
        pt_log_notice("generation %u: %zu worker%s still draining, past max_old_generations (%zu): stopping %s now",
                      gens[k], stopped, stopped == 1 ? "" : "s", cap, stopped == 1 ? "it" : "them");
    }
}

/* Every worker of the new generation is ready: the one that served until
 * now is asked to drain, and what the reload kept for it is let go. */
void ms_promote(void)
{
    int64_t now = ms_now_ms();
    for (size_t i = 0; i < M->nprocs; i++) {
        proc_t *p = &M->procs[i];
        if (p->gen == M->gen || p->stop_by || is_dying(p))
            continue; /* new, or told already */
        kill(p->pid, SIGQUIT);
        p->told_ms = now;
        p->stop_by = now + M->prev.conf->shutdown_timeout + KILL_GRACE_MS;
    }
    pt_lset_discard(&M->lset, &M->prev.lset); /* closes the sockets only the old generation had */
    pt_config_free(M->prev.conf);
    M->prev = (typeof(M->prev)){0};
    snprintf(M->reverted, sizeof(M->reverted), "%s", pt_runtime_reloaded(M->conf)); /* said by "reload ok" */
    M->status->reloads++;
    ms_board_config();
    retire_past_cap();
    pt_cdk_sync(ms_cdk());
}

/* The new generation cannot serve (a worker of it exited before all were
 * ready, or reload_timeout passed): the old one, which never stopped
 * serving, stays.  New workers that said they are ready drain what they
 * accepted; the others are killed, since one stuck at start acts on no
 * other signal.  The sockets only the new generation had are closed, so a
 * listener the failed file added is not left open unserved (its workers
 * hold it until they exit).  Its zones stay mapped until the sweep after
 * the next reload. */
void ms_abandon_generation(const char *why)
{
    pt_config_t *failed = M->conf;
    int64_t now = ms_now_ms();
    for (size_t i = 0; i < M->nprocs; i++) {
        proc_t *p = &M->procs[i];
        if (p->gen != M->gen)
            continue;
        if (p->chan >= 0)
            ms_read_chan(p); /* an 'R' may be on its way */
        if (p->ready) {
            kill(p->pid, SIGQUIT);
            p->told_ms = now;
            p->stop_by = now + failed->shutdown_timeout + KILL_GRACE_MS;
        } else {
            kill(p->pid, SIGKILL);
            p->killed = "as its generation failed to start";
        }
    }
    pt_lset_discard(&M->prev.lset, &M->lset);
    M->lset = M->prev.lset;
    int rc = pt_log_set_owner(M->prev.drop ? M->prev.uid : (uid_t)-1, M->prev.gid); /* the serving workers' */
    if (rc < 0)
        pt_log_warn("cannot give the error log back to user %s: %s", M->prev.conf->user, strerror(-rc));
    const char *log = ms_error_log_path(M->prev.conf, &M->o);
    if (strcmp(log, ms_error_log_path(failed, &M->o)) != 0 && pt_log_open(log) < 0)
        pt_log_error("cannot open the error log %s again: %s", log, strerror(errno));
    M->conf = M->prev.conf;
    M->gen = M->prev.gen;
    M->nworkers = M->prev.nworkers;
    M->uid = M->prev.uid;
    M->gid = M->prev.gid;
    M->drop = M->prev.drop;
    if (M->o.log_level < 0)
        pt_log_level = M->conf->error_log.level;
    pt_zone_abandon(M->zone_mark); /* the zones it made at other sizes are not the serving generation's */
    pt_metrics_abandon();
    pt_zone_t *z = ms_prepare_zones(M->conf);
    M->upzone = z ? z : M->prev.upzone;
    M->prev = (typeof(M->prev)){0};
    M->announced = true;
    M->reloading = false;
    /* A serving worker that died meanwhile was not replaced, its slot being
     * the new generation's: it is now. */
    for (int s = 0; s < M->nworkers; s++) {
        bool served = false;
        for (size_t i = 0; i < M->nprocs && !served; i++)
            served = M->procs[i].gen == M->gen && M->procs[i].slot == s;
        M->slots[s] = (typeof(M->slots[s])){.respawn_at = served ? 0 : now};
    }
    reload_failed(why);
    pt_config_free(failed);
    retire_past_cap();
}

static void start_generation(const char *changes)
{
    M->gen = ++M->last_gen;
    M->sweep_due = true;
    M->announced = false;
    M->reloading = true;
    for (int s = 0; s < 256; s++)
        M->slots[s] = (typeof(M->slots[s])){0};
    pt_log_notice("reload: generation %u (%s)", M->gen, changes);
    for (int s = 0; s < M->nworkers; s++) {
        /* without a column it waits (within reload_timeout) for an old
         * worker to exit: the oldest draining generation is told to stop */
        if (ms_spawn(s) == -1) {
            char why[64];
            snprintf(why, sizeof(why), "cannot start worker %d of generation %u", s, M->gen);
            ms_abandon_generation(why);
            return;
        }
    }
    ms_check_ready();
}

/* The new file's host names have their addresses: prepare what the new
 * generation needs beside what the serving one holds, and start it. */
static void resolved(void)
{
    pt_config_t *nc = M->pending.conf;
    pt_resolve_async_free(M->pending.job);
    M->pending.conf = NULL;
    M->pending.job = NULL;
    char err[512] = "";
    pt_lset_t next = {0};
    uid_t uid = M->uid;
    gid_t gid = M->gid;
    bool drop = M->drop;
    int nworkers = M->o.workers ? M->o.workers : pt_config_workers(nc);
    if (ms_resolve_user(nc, &uid, &gid, &drop, err, sizeof(err)) < 0 ||
        ms_prepare_access_log(nc, drop, uid, gid, err, sizeof(err)) < 0 ||
        pt_cdisk_make_dirs(nc, drop, uid, gid, err, sizeof(err)) < 0 ||
        pt_lset_prepare(&M->lset, nc, nworkers, &next, err, sizeof(err)) < 0) {
        pt_config_free(nc);
        reload_failed(err);
        return;
    }
    M->zone_mark = pt_zone_mark();
    pt_zone_t *upzone = ms_prepare_zones(nc);
    if (!upzone) {
        const char *why = pt_metrics_refusal(errno);
        snprintf(err, sizeof(err), why ? "%s" : "cannot map shared memory: %s", why ? why : strerror(errno));
        pt_zone_abandon(M->zone_mark);
        pt_metrics_abandon();
        ms_prepare_zones(M->conf); /* the modules' zones are the serving generation's again */
        pt_lset_discard(&M->lset, &next);
        pt_config_free(nc);
        reload_failed(err);
        return;
    }
    char changes[256];
    pt_config_diff(M->conf, nc, changes, sizeof(changes));
    if (!M->o.pid_file && nc->pid_file && strcmp(nc->pid_file, M->pid_path) != 0)
        pt_log_warn("pid_file changed: takes effect after a restart, not on reload");
    int rc = pt_log_set_owner(drop ? uid : (uid_t)-1, gid); /* the new workers' user */
    if (rc < 0)
        pt_log_warn("cannot give the error log to user %s: %s", nc->user, strerror(-rc));
    const char *new_log = ms_error_log_path(nc, &M->o);
    if (strcmp(new_log, ms_error_log_path(M->conf, &M->o)) != 0 && (rc = pt_log_open(new_log)) < 0)
        pt_log_error("cannot open the new error log %s: %s; keeping the old one", new_log, strerror(-rc));
    if (M->o.log_level < 0)
        pt_log_level = nc->error_log.level;
    /* The serving generation is kept aside, whole, until the new one is
     * ready or has failed; ms_spawn() builds from the master's state. */
    M->prev = (typeof(M->prev)){.active = true, .gen = M->gen, .conf = M->conf, .lset = M->lset, .upzone = M->upzone,
                              .nworkers = M->nworkers, .uid = M->uid, .gid = M->gid, .drop = M->drop,
                              .deadline = ms_now_ms() + nc->reload_timeout};
    M->lset = next;
    M->conf = nc;
    M->uid = uid;
    M->gid = gid;
    M->drop = drop;
    M->upzone = upzone;
    M->nworkers = nworkers;
    start_generation(changes);
}

static void abandon_pending(const char *why)
{
    pt_resolve_async_free(M->pending.job);
    pt_config_free(M->pending.conf);
    M->pending.conf = NULL;
    M->pending.job = NULL;
    reload_failed(why);
}

/* The resolving child wrote, or ended. */
void ms_on_resolve(void)
{
    char err[512];
    int rc = pt_resolve_async_read(M->pending.job, err, sizeof(err));
    if (rc == PT_EAGAIN)
        return;
    if (rc < 0)
        abandon_pending(err);
    else
        resolved();
}

void ms_reload(void)
{
    if (ms_reload_busy()) {
        if (!M->hup_queued)
            pt_log_notice("reload requested while another is under way: it follows once that one is over");
        M->hup_queued = true;
        return;
    }
    ms_announce(true); /* the last reload's outcome, if its old workers are still to confirm */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    pt_sdnotify("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
                (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    pt_log_notice("reloading %s", M->o.conf_path);
    pt_diag_t d;
    pt_diag_init(&d);
    char err[512] = "";
    pt_config_t *nc = pt_config_load(M->o.conf_path, &d);
    if (nc && (pt_tls_build(nc, &d) < 0 || pt_preflight_check(nc, &d) > 0)) {
        pt_diag_sort(&d);
        pt_config_free(nc);
        nc = NULL;
    }
    if (!nc) {
        pt_diag_log(&d);
        snprintf(err, sizeof(err), "%zu error%s in %s", d.errors, d.errors == 1 ? "" : "s", M->o.conf_path);
        pt_diag_free(&d);
        reload_failed(err);
        return;
    }
    pt_rlimit_check(nc, &d);
    if (d.warnings)
        pt_diag_log(&d);
    pt_diag_free(&d);
    pt_resolve_async_t *job;
    if (pt_resolve_async_start(nc, &job, err, sizeof(err)) < 0) {
        pt_config_free(nc);
        reload_failed(err);
        return;
    }
    M->pending.conf = nc;
    M->pending.job = job;
    if (!job)
        resolved(); /* no host name to resolve */
}

/* The reload's deadlines, and the workers told to stop that did not:
 * acts on those that passed; returns how long the loop may sleep before
 * the next one. */
int64_t ms_reload_timers(int64_t now)
{
    int64_t next = 60000;
    char why[512];
    if (M->pending.job && now >= pt_resolve_async_deadline(M->pending.job)) {
        pt_resolve_async_expired(M->pending.job, why, sizeof(why));
        abandon_pending(why);
    } else if (M->pending.job) {
        next = pt_resolve_async_deadline(M->pending.job) - now;
    }
    if (M->prev.active && !M->stopping && now >= M->prev.deadline) {
        size_t ready = 0;
        for (size_t i = 0; i < M->nprocs; i++)
            ready += M->procs[i].gen == M->gen && M->procs[i].ready;
        snprintf(why, sizeof(why), "generation %u not ready after reload_timeout (%lld ms): %zu of %d worker%s ready",
                 M->gen, (long long)M->conf->reload_timeout, ready, M->nworkers, M->nworkers == 1 ? "" : "s");
        ms_abandon_generation(why);
    } else if (M->prev.active && !M->stopping && M->prev.deadline - now < next) {
        next = M->prev.deadline - now;
    }
    for (size_t i = 0; i < M->nprocs; i++) {
        proc_t *p = &M->procs[i];
        if (!p->stop_by || p->stop_by > now) {
            if (p->stop_by && p->stop_by - now < next)
                next = p->stop_by - now;
            continue;
        }
        pt_log_warn("worker %d (pid %d, generation %u) still running %lld ms after %s: killing it", p->slot,
                    (int)p->pid, p->gen, (long long)(now - p->told_ms),
                    p->terminated ? "SIGTERM" : "SIGQUIT, past its shutdown_timeout");
        p->killed = p->terminated ? "after SIGTERM" : "after shutdown_timeout";
        p->stop_by = 0;
        kill(p->pid, SIGKILL);
    }
    return next;
}
