/* The master: owns the listening sockets, the shared status board and the
 * configuration; forks a generation of workers and watches them.
 *
 * Its loop is poll(2) over a signalfd and the workers' channels, with no
 * event library: a forked child must not inherit an epoll instance that
 * its parent still uses.  Reload follows nginx: load and check the new
 * file with no side effects, then bind what is new, fork the new
 * generation on the same sockets, and ask the old one to drain once every
 * new worker said it is ready.  "reload ok" and READY=1 are sent only once
 * the new workers said they are ready and the old ones that they stopped
 * accepting, so a client that waits for them is served by the new
 * configuration (or when the next reload starts first: each RELOADING=1
 * gets its READY=1).  Until the new generation is ready the old one serves on:
 * a new generation that fails to start is stopped and forgotten. */
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

static struct master {
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
} m;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *error_log_path(const pt_config_t *c, const pt_opts_t *o)
{
    if (c->error_log.path)
        return c->error_log.path;
    return o->foreground ? "stderr" : PT_ERROR_LOG_PATH;
}

static int resolve_user(const pt_config_t *c, uid_t *uid, gid_t *gid, bool *drop, char *err, size_t errlen)
{
    *drop = false;
    if (!c->user)
        return 0;
    errno = 0;
    struct passwd *pw = getpwnam(c->user);
    if (!pw) {
        snprintf(err, errlen, "unknown user \"%s\"%s%s", c->user, errno ? ": " : "", errno ? strerror(errno) : "");
        return -1;
    }
    if (geteuid() != 0)
        return 0; /* not root: nothing to drop; said once at start */
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    *drop = pw->pw_uid != 0;
    return 0;
}

/* The access logs (the traffic's, the admin API's) are created by the
 * master, owned by the workers' user, so that workers can reopen them
 * after logrotate moved them. */
static int prepare_log_file(const pt_config_t *c, const char *path, bool drop, uid_t uid, gid_t gid, char *err,
                            size_t errlen)
{
    if (!path)
        return 0;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open the access log %s: %s", path, strerror(errno));
        return -1;
    }
    /* one already theirs keeps its group (logrotate's create 0640 portico adm) */
    struct stat st;
    if (drop && (fstat(fd, &st) < 0 || st.st_uid != uid) && fchown(fd, uid, gid) < 0)
        pt_log_warn("cannot give %s to user %s: %s", path, c->user, strerror(errno));
    close(fd);
    return 0;
}

static int prepare_access_log(const pt_config_t *c, bool drop, uid_t uid, gid_t gid, char *err, size_t errlen)
{
    if (prepare_log_file(c, c->access_log.path, drop, uid, gid, err, errlen) < 0)
        return -1;
    return prepare_log_file(c, c->admin.access_log, drop, uid, gid, err, errlen);
}

/* ---- the status board ---- */

static void board_config(void)
{
    m.status->generation = m.gen;
    m.status->nworkers = m.nworkers;
    m.status->config_loaded_ms = wall_ms();
    snprintf(m.status->config_file, sizeof(m.status->config_file), "%s", m.conf->file);
    memcpy(m.status->config_sha256, m.conf->sha256_hex, sizeof(m.status->config_sha256));
}

/* ---- workers ---- */


static proc_t *find_proc(pid_t pid)
{
    for (size_t i = 0; i < m.nprocs; i++)
        if (m.procs[i].pid == pid)
            return &m.procs[i];
    return NULL;
}

static void remove_proc(proc_t *p)
{
    if (p->chan >= 0)
        close(p->chan);
    if (p->board >= 0)
        pt_board_retire(m.status, p->board);
    *p = m.procs[--m.nprocs];
}

/* No column is free: every one is held by a live worker (old generations
 * draining and the new one).  Said at most every 10 s: each waiting slot
 * is tried again every second. */
static void short_of_columns(int slot)
{
    static int64_t told;
    int64_t now = now_ms();
    if (told && now - told < 10000)
        return;
    told = now;
    pt_log_error("worker %d (generation %u) not started: all %d columns of the shared counters are held by live "
                 "workers; tried again every second until one exits",
                 slot, m.gen, pt_column_held());
}

/* In a new worker: what the master holds for a reload under way is not
 * its to keep: the sockets that only the serving generation has (a
 * listener the new file removed would stay open as long as the worker
 * lives), the resolving child's pipe. */
static void close_reload_fds(void)
{
    if (m.prev.active)
        pt_lset_discard(&m.lset, &m.prev.lset);
    if (m.pending.job)
        close(pt_resolve_async_fd(m.pending.job));
}

static void retire_for_columns(void);

/* 0, -1 when it failed (tried again in a second), -2 when no counter
 * column is free (tried again too, once an old worker exits). */
static int spawn(int slot)
{
    /* Whatever fails is tried again later, as respawn_due does, also for
     * the workers a start or a reload forks. */
    m.slots[slot].respawn_at = now_ms() + 1000;
    if (m.nprocs == MAX_PROCS)
        return -1;
    int column = pt_column_take();
    if (column < 0) {
        short_of_columns(slot);
        retire_for_columns();
        return -2;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        pt_log_error("socketpair: %s", strerror(errno));
        pt_column_give(column);
        return -1;
    }
    int board = pt_board_slot(m.status);
    void *mx_zone;
    int mx_block = pt_metrics_take_block(&mx_zone);
    pid_t pid = fork();
    if (pid < 0) {
        pt_log_error("fork: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        pt_column_give(column);
        pt_metrics_fold(mx_zone, mx_block);
        return -1;
    }
    if (pid == 0) {
        close(sv[0]);
        close(m.sigfd);
        for (size_t i = 0; i < m.nprocs; i++)
            close(m.procs[i].chan);
        close_reload_fds();
        pt_metrics_attach(mx_block);
        pt_router_t *router = pt_router_build(m.conf);
        pt_upstream_t *ups = pt_upstreams_build(m.conf, m.upzone, column);
        pt_worker_t w = {.magic = PT_WORKER_MAGIC, .conf = m.conf, .router = router, .upstreams = ups,
                         .lset = &m.lset, .slot = slot, .generation = m.gen, .chan = sv[1], .status = m.status,
                         .board = board, .column = column, .uid = m.uid, .gid = m.gid, .drop_privileges = m.drop};
        int rc = router && ups ? pt_worker_run(&w) : 2;
        pt_upstreams_free(ups, m.conf->upstreams.n);
        pt_router_free(router);
        pt_lset_close(&m.lset);
        pt_config_free(m.conf);
        close(sv[1]);
        exit(rc);
    }
    close(sv[1]);
    m.slots[slot].respawn_at = 0;
    proc_t *p = &m.procs[m.nprocs++];
    *p = (proc_t){.pid = pid, .slot = slot, .gen = m.gen, .chan = sv[0], .started_ms = now_ms(),
                  .watchdog = m.conf->worker_watchdog, .board = board, .column = column, .upzone = m.upzone,
                  .mx_zone = mx_zone, .mx_block = mx_block};
    if (board >= 0)
        m.status->workers[board] = (pt_status_worker_t){
            .pid = pid, .slot = slot, .generation = m.gen, .state = PT_W_STARTING, .started_ms = wall_ms(), .heartbeat_ms = now_ms()};
    pt_log_info("started worker %d (pid %d, generation %u)", slot, (int)pid, m.gen);
    return 0;
}

/* ---- the cache disk process (cdisk_keeper.c) ---- */

/* In the disk process: what only the master may hold. */
static void cdk_in_child(void)
{
    close(m.sigfd);
    for (size_t i = 0; i < m.nprocs; i++)
        close(m.procs[i].chan);
    close_reload_fds();
    pt_lset_close(&m.lset);
}

static const pt_cdk_ctx_t *cdk(void)
{
    static pt_cdk_ctx_t x;
    x = (pt_cdk_ctx_t){.conf = m.conf, .stopping = m.stopping, .drop = m.drop, .uid = m.uid, .gid = m.gid,
                       .in_child = cdk_in_child};
    return &x;
}

static void promote(void);
static void abandon_generation(const char *why);

/* Announces the current generation once all of it is ready and every old
 * worker said it stopped accepting.  `now` (a reload is about to start)
 * does not wait for the old workers' word: they were told, and this
 * reload's outcome must be said before the next one's RELOADING=1. */
static void announce(bool now)
{
    if (m.announced || m.stopping)
        return;
    size_t ready = 0;
    for (size_t i = 0; i < m.nprocs; i++)
        ready += m.procs[i].gen == m.gen && m.procs[i].ready;
    if (ready < (size_t)m.nworkers)
        return;
    if (m.prev.active)
        promote(); /* the new generation is complete: the old one may stop now */
    for (size_t i = 0; i < m.nprocs && !now; i++)
        if (m.procs[i].gen != m.gen && !m.procs[i].draining)
            return; /* an old worker may still accept */
    m.announced = true;
    char status[256];
    snprintf(status, sizeof(status), "generation %u, %d worker%s", m.gen, m.nworkers, m.nworkers == 1 ? "" : "s");
    if (m.reloading) {
        m.reloading = false;
        pt_log_notice("reload ok: %s%s", status, m.reverted);
    } else {
        pt_log_notice("ready: %s", status);
    }
    pt_sdnotify("READY=1\nSTATUS=serving: %s\nMAINPID=%d", status, (int)getpid());
}

static void check_ready(void)
{
    announce(false);
}

/* Takes what the worker said: 'R' ready, 'D' draining. */
static void read_chan(proc_t *p)
{
    char msg[16];
    ssize_t n = recv(p->chan, msg, sizeof(msg), MSG_DONTWAIT);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            close(p->chan); /* the worker is gone; SIGCHLD tells the rest */
            p->chan = -1;
        }
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (msg[i] == 'R') {
            p->ready = true;
            if (p->board >= 0)
                m.status->workers[p->board].state = PT_W_RUNNING;
            m.slots[p->slot].backoff = p->gen == m.gen ? m.slots[p->slot].backoff : 0;
        } else if (msg[i] == 'D') {
            p->draining = true;
            if (p->board >= 0)
                m.status->workers[p->board].state = PT_W_DRAINING;
        }
    }
}

static void on_chan(proc_t *p)
{
    read_chan(p);
    check_ready();
}

static void reap(void)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        proc_t *p = find_proc(pid);
        if (!p) {
            pt_cdk_reaped(cdk(), pid, st);
            continue;
        }
        char how[96], why[192];
        if (WIFSIGNALED(st))
            snprintf(how, sizeof(how), "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
        else
            snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(st));
        if (p->hung && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
            snprintf(how, sizeof(how), "killed by the watchdog");
        else if (p->killed && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
            snprintf(how, sizeof(how), "killed %s", p->killed);
        /* a worker of a reload's new generation, before all of it was ready */
        bool starting = m.prev.active && p->gen == m.gen && !m.stopping;
        bool current = p->gen == m.gen && !m.stopping;
        bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0 && (p->draining || p->told_ms || m.stopping);
        if (starting) {
            snprintf(why, sizeof(why), "worker %d (pid %d) of generation %u %s before the generation was ready",
                     p->slot, (int)pid, p->gen, how);
        } else if (current && !p->draining) {
            int slot = p->slot;
            int64_t lived = now_ms() - p->started_ms;
            /* Dying soon after start again and again: back off, up to 30s.
             * A hung worker lived at least the watchdog, so its age says
             * nothing: one that served is replaced at once (its slot's
             * queue is waiting), one that hung before it was ready is a
             * crash at start. */
            bool early = p->hung ? !p->ready : lived < 2000;
            int64_t *b = &m.slots[slot].backoff;
            *b = early ? (*b ? (*b * 2 > 30000 ? 30000 : *b * 2) : 100) : 0;
            m.slots[slot].respawn_at = now_ms() + *b;
            if (*b)
                pt_log_error("worker %d (pid %d) %s; respawning in %lld ms", slot, (int)pid, how, (long long)*b);
            else
                pt_log_error("worker %d (pid %d) %s; respawning now", slot, (int)pid, how);
        } else if (clean) {
            pt_log_info("worker %d (pid %d, generation %u) exited", p->slot, (int)pid, p->gen);
        } else {
            pt_log_warn("worker %d (pid %d, generation %u) %s", p->slot, (int)pid, p->gen, how);
        }
        /* what it counted as under way is over now; its column is free
         * once that is cleared */
        pt_upstreams_forget_column(p->upzone, p->column);
        pt_limits_forget_column(p->column);
        pt_caches_forget_column(p->column);
        pt_column_give(p->column);
        pt_metrics_fold(p->mx_zone, p->mx_block); /* what it counted stays in the sums */
        remove_proc(p);
        if (starting)
            abandon_generation(why);
    }
    if (m.sweep_due) {
        bool old_left = false;
        for (size_t i = 0; i < m.nprocs; i++)
            old_left |= m.procs[i].gen != m.gen; /* older, or a generation that failed to start */
        if (!old_left) {
            pt_metrics_tidy(); /* before the zones it folds in are unmapped */
            pt_zone_sweep();
            pt_upstreams_tidy(m.upzone); /* what only the old generation used */
            m.sweep_due = false;
        }
    }
    check_ready();
}

static void respawn_due(void)
{
    int64_t now = now_ms();
    pt_cdk_due(cdk(), now);
    for (int s = 0; s < m.nworkers; s++) {
        if (!m.slots[s].respawn_at || m.slots[s].respawn_at > now)
            continue;
        m.slots[s].respawn_at = 0;
        if (spawn(s) < 0)
            m.slots[s].respawn_at = now + 1000;
    }
}

/* ---- the watchdog ---- */

/* Kills the workers whose loop stopped turning: their heartbeat on the
 * board is older than the watchdog.  Each is judged by the watchdog of its
 * own generation, since that set how often it beats.  SIGKILL, because a
 * stopped or stuck process acts on nothing else; reap() then respawns a
 * current worker, and a reload stops waiting for an old one's 'D' or a new
 * one's 'R'.  Returns how long the loop may sleep before a worker that is
 * fine now could be overdue. */
static int64_t watchdog(int64_t now)
{
    int64_t next = 1000;
    for (size_t i = 0; i < m.nprocs; i++) {
        proc_t *p = &m.procs[i];
        if (!p->watchdog || p->board < 0 || p->hung)
            continue;
        const pt_status_worker_t *sw = &m.status->workers[p->board];
        int64_t silent = now - __atomic_load_n(&sw->heartbeat_ms, __ATOMIC_RELAXED);
        if (silent <= p->watchdog) {
            if (p->watchdog - silent + 1 < next)
                next = p->watchdog - silent + 1;
            continue;
        }
        pt_log_error("worker %d (pid %d, generation %u, %s) silent for %lld ms, more than worker_watchdog (%lld ms): "
                     "killing it",
                     p->slot, (int)p->pid, p->gen, p->draining ? "draining" : p->ready ? "running" : "starting",
                     (long long)silent, (long long)p->watchdog);
        p->hung = true;
        kill(p->pid, SIGKILL);
    }
    return next;
}

/* ---- reload ---- */

/* A reload runs in steps, and the master's loop turns between them
 * (signals, channels, reaping, the watchdog): the new file is loaded and
 * checked; its host names are resolved by a child process
 * (resolve_async.c); its listeners and zones are prepared and its
 * generation started beside the serving one, which keeps serving; once
 * every new worker said it is ready, the old generation is asked to drain.
 * A SIGHUP during these steps is remembered, and runs once they are over. */

/* Resolving, or a new generation starting.  Not while the old one is
 * told to drain: a stuck old worker would hold back every later reload
 * for its shutdown_timeout. */
static bool reload_busy(void)
{
    return m.pending.conf || m.prev.active;
}

static void reload_failed(const char *why)
{
    m.status->reload_failures++;
    pt_log_error("reload failed: %s; still serving generation %u", why, m.gen);
    pt_sdnotify("READY=1\nSTATUS=reload failed (%s); serving generation %u", why, m.gen);
}

/* The shared zones of configuration c, kept or made.  Each module keeps a
 * pointer to its own, which the next fork hands to the workers, so this is
 * also how the serving generation gets its zones back after a reload
 * failed.  NULL when mmap failed. */
static pt_zone_t *prepare_zones(const pt_config_t *c)
{
    pt_zone_t *z = pt_upstreams_zone(c);
    int nworkers = m.o.workers ? m.o.workers : pt_config_workers(c);
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
    for (size_t i = 0; i < m.nprocs; i++) {
        proc_t *p = &m.procs[i];
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
static void retire_for_columns(void)
{
    uint32_t oldest = 0;
    bool any = false;
    for (size_t i = 0; i < m.nprocs; i++) {
        const proc_t *p = &m.procs[i];
        if (p->gen == m.gen || (m.prev.active && p->gen == m.prev.gen) || is_dying(p))
            continue;
        if (!any || p->gen < oldest)
            oldest = p->gen;
        any = true;
    }
    if (!any)
        return;
    size_t n = terminate_gen(oldest, now_ms());
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
    for (size_t i = 0; i < m.nprocs; i++) {
        const proc_t *p = &m.procs[i];
        bool seen = p->gen == m.gen || is_dying(p);
        for (size_t k = 0; k < n && !seen; k++)
            seen = gens[k] == p->gen;
        if (!seen)
            gens[n++] = p->gen;
    }
    size_t cap = (size_t)m.conf->max_old_generations;
    if (n <= cap)
        return;
    qsort(gens, n, sizeof(gens[0]), cmp_gen);
    int64_t now = now_ms();
    for (size_t k = 0; k < n - cap; k++) {
        size_t stopped = terminate_gen(gens[k], now);
        pt_log_notice("generation %u: %zu worker%s still draining, past max_old_generations (%zu): stopping %s now",
                      gens[k], stopped, stopped == 1 ? "" : "s", cap, stopped == 1 ? "it" : "them");
    }
}

/* Every worker of the new generation is ready: the one that served until
 * now is asked to drain, and what the reload kept for it is let go. */
static void promote(void)
{
    int64_t now = now_ms();
    for (size_t i = 0; i < m.nprocs; i++) {
        proc_t *p = &m.procs[i];
        if (p->gen == m.gen || p->stop_by || is_dying(p))
            continue; /* new, or told already */
        kill(p->pid, SIGQUIT);
        p->told_ms = now;
        p->stop_by = now + m.prev.conf->shutdown_timeout + KILL_GRACE_MS;
    }
    pt_lset_discard(&m.lset, &m.prev.lset); /* closes the sockets only the old generation had */
    pt_config_free(m.prev.conf);
    m.prev = (typeof(m.prev)){0};
    snprintf(m.reverted, sizeof(m.reverted), "%s", pt_runtime_reloaded(m.conf)); /* said by "reload ok" */
    m.status->reloads++;
    board_config();
    retire_past_cap();
    pt_cdk_sync(cdk());
}

/* The new generation cannot serve (a worker of it exited before all were
 * ready, or reload_timeout passed): the old one, which never stopped
 * serving, stays.  New workers that said they are ready drain what they
 * accepted; the others are killed, since one stuck at start acts on no
 * other signal.  The sockets only the new generation had are closed, so a
 * listener the failed file added is not left open unserved (its workers
 * hold it until they exit).  Its zones stay mapped until the sweep after
 * the next reload. */
static void abandon_generation(const char *why)
{
    pt_config_t *failed = m.conf;
    int64_t now = now_ms();
    for (size_t i = 0; i < m.nprocs; i++) {
        proc_t *p = &m.procs[i];
        if (p->gen != m.gen)
            continue;
        if (p->chan >= 0)
            read_chan(p); /* an 'R' may be on its way */
        if (p->ready) {
            kill(p->pid, SIGQUIT);
            p->told_ms = now;
            p->stop_by = now + failed->shutdown_timeout + KILL_GRACE_MS;
        } else {
            kill(p->pid, SIGKILL);
            p->killed = "as its generation failed to start";
        }
    }
    pt_lset_discard(&m.prev.lset, &m.lset);
    m.lset = m.prev.lset;
    int rc = pt_log_set_owner(m.prev.drop ? m.prev.uid : (uid_t)-1, m.prev.gid); /* the serving workers' */
    if (rc < 0)
        pt_log_warn("cannot give the error log back to user %s: %s", m.prev.conf->user, strerror(-rc));
    const char *log = error_log_path(m.prev.conf, &m.o);
    if (strcmp(log, error_log_path(failed, &m.o)) != 0 && pt_log_open(log) < 0)
        pt_log_error("cannot open the error log %s again: %s", log, strerror(errno));
    m.conf = m.prev.conf;
    m.gen = m.prev.gen;
    m.nworkers = m.prev.nworkers;
    m.uid = m.prev.uid;
    m.gid = m.prev.gid;
    m.drop = m.prev.drop;
    if (m.o.log_level < 0)
        pt_log_level = m.conf->error_log.level;
    pt_zone_abandon(m.zone_mark); /* the zones it made at other sizes are not the serving generation's */
    pt_metrics_abandon();
    pt_zone_t *z = prepare_zones(m.conf);
    m.upzone = z ? z : m.prev.upzone;
    m.prev = (typeof(m.prev)){0};
    m.announced = true;
    m.reloading = false;
    /* A serving worker that died meanwhile was not replaced, its slot being
     * the new generation's: it is now. */
    for (int s = 0; s < m.nworkers; s++) {
        bool served = false;
        for (size_t i = 0; i < m.nprocs && !served; i++)
            served = m.procs[i].gen == m.gen && m.procs[i].slot == s;
        m.slots[s] = (typeof(m.slots[s])){.respawn_at = served ? 0 : now};
    }
    reload_failed(why);
    pt_config_free(failed);
    retire_past_cap();
}

static void start_generation(const char *changes)
{
    m.gen = ++m.last_gen;
    m.sweep_due = true;
    m.announced = false;
    m.reloading = true;
    for (int s = 0; s < 256; s++)
        m.slots[s] = (typeof(m.slots[s])){0};
    pt_log_notice("reload: generation %u (%s)", m.gen, changes);
    for (int s = 0; s < m.nworkers; s++) {
        /* without a column it waits (within reload_timeout) for an old
         * worker to exit: the oldest draining generation is told to stop */
        if (spawn(s) == -1) {
            char why[64];
            snprintf(why, sizeof(why), "cannot start worker %d of generation %u", s, m.gen);
            abandon_generation(why);
            return;
        }
    }
    check_ready();
}

/* The new file's host names have their addresses: prepare what the new
 * generation needs beside what the serving one holds, and start it. */
static void resolved(void)
{
    pt_config_t *nc = m.pending.conf;
    pt_resolve_async_free(m.pending.job);
    m.pending.conf = NULL;
    m.pending.job = NULL;
    char err[512] = "";
    pt_lset_t next = {0};
    uid_t uid = m.uid;
    gid_t gid = m.gid;
    bool drop = m.drop;
    int nworkers = m.o.workers ? m.o.workers : pt_config_workers(nc);
    if (resolve_user(nc, &uid, &gid, &drop, err, sizeof(err)) < 0 ||
        prepare_access_log(nc, drop, uid, gid, err, sizeof(err)) < 0 ||
        pt_cdisk_make_dirs(nc, drop, uid, gid, err, sizeof(err)) < 0 ||
        pt_lset_prepare(&m.lset, nc, nworkers, &next, err, sizeof(err)) < 0) {
        pt_config_free(nc);
        reload_failed(err);
        return;
    }
    m.zone_mark = pt_zone_mark();
    pt_zone_t *upzone = prepare_zones(nc);
    if (!upzone) {
        const char *why = pt_metrics_refusal(errno);
        snprintf(err, sizeof(err), why ? "%s" : "cannot map shared memory: %s", why ? why : strerror(errno));
        pt_zone_abandon(m.zone_mark);
        pt_metrics_abandon();
        prepare_zones(m.conf); /* the modules' zones are the serving generation's again */
        pt_lset_discard(&m.lset, &next);
        pt_config_free(nc);
        reload_failed(err);
        return;
    }
    char changes[256];
    pt_config_diff(m.conf, nc, changes, sizeof(changes));
    if (!m.o.pid_file && nc->pid_file && strcmp(nc->pid_file, m.pid_path) != 0)
        pt_log_warn("pid_file changed: takes effect after a restart, not on reload");
    int rc = pt_log_set_owner(drop ? uid : (uid_t)-1, gid); /* the new workers' user */
    if (rc < 0)
        pt_log_warn("cannot give the error log to user %s: %s", nc->user, strerror(-rc));
    const char *new_log = error_log_path(nc, &m.o);
    if (strcmp(new_log, error_log_path(m.conf, &m.o)) != 0 && (rc = pt_log_open(new_log)) < 0)
        pt_log_error("cannot open the new error log %s: %s; keeping the old one", new_log, strerror(-rc));
    if (m.o.log_level < 0)
        pt_log_level = nc->error_log.level;
    /* The serving generation is kept aside, whole, until the new one is
     * ready or has failed; spawn() builds from m. */
    m.prev = (typeof(m.prev)){.active = true, .gen = m.gen, .conf = m.conf, .lset = m.lset, .upzone = m.upzone,
                              .nworkers = m.nworkers, .uid = m.uid, .gid = m.gid, .drop = m.drop,
                              .deadline = now_ms() + nc->reload_timeout};
    m.lset = next;
    m.conf = nc;
    m.uid = uid;
    m.gid = gid;
    m.drop = drop;
    m.upzone = upzone;
    m.nworkers = nworkers;
    start_generation(changes);
}

static void abandon_pending(const char *why)
{
    pt_resolve_async_free(m.pending.job);
    pt_config_free(m.pending.conf);
    m.pending.conf = NULL;
    m.pending.job = NULL;
    reload_failed(why);
}

/* The resolving child wrote, or ended. */
static void on_resolve(void)
{
    char err[512];
    int rc = pt_resolve_async_read(m.pending.job, err, sizeof(err));
    if (rc == PT_EAGAIN)
        return;
    if (rc < 0)
        abandon_pending(err);
    else
        resolved();
}

static void reload(void)
{
    if (reload_busy()) {
        if (!m.hup_queued)
            pt_log_notice("reload requested while another is under way: it follows once that one is over");
        m.hup_queued = true;
        return;
    }
    announce(true); /* the last reload's outcome, if its old workers are still to confirm */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    pt_sdnotify("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
                (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    pt_log_notice("reloading %s", m.o.conf_path);
    pt_diag_t d;
    pt_diag_init(&d);
    char err[512] = "";
    pt_config_t *nc = pt_config_load(m.o.conf_path, &d);
    if (nc && (pt_tls_build(nc, &d) < 0 || pt_preflight_check(nc, &d) > 0)) {
        pt_diag_sort(&d);
        pt_config_free(nc);
        nc = NULL;
    }
    if (!nc) {
        pt_diag_log(&d);
        snprintf(err, sizeof(err), "%zu error%s in %s", d.errors, d.errors == 1 ? "" : "s", m.o.conf_path);
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
    m.pending.conf = nc;
    m.pending.job = job;
    if (!job)
        resolved(); /* no host name to resolve */
}

/* The reload's deadlines, and the workers told to stop that did not:
 * acts on those that passed; returns how long the loop may sleep before
 * the next one. */
static int64_t reload_timers(int64_t now)
{
    int64_t next = 60000;
    char why[512];
    if (m.pending.job && now >= pt_resolve_async_deadline(m.pending.job)) {
        pt_resolve_async_expired(m.pending.job, why, sizeof(why));
        abandon_pending(why);
    } else if (m.pending.job) {
        next = pt_resolve_async_deadline(m.pending.job) - now;
    }
    if (m.prev.active && !m.stopping && now >= m.prev.deadline) {
        size_t ready = 0;
        for (size_t i = 0; i < m.nprocs; i++)
            ready += m.procs[i].gen == m.gen && m.procs[i].ready;
        snprintf(why, sizeof(why), "generation %u not ready after reload_timeout (%lld ms): %zu of %d worker%s ready",
                 m.gen, (long long)m.conf->reload_timeout, ready, m.nworkers, m.nworkers == 1 ? "" : "s");
        abandon_generation(why);
    } else if (m.prev.active && !m.stopping && m.prev.deadline - now < next) {
        next = m.prev.deadline - now;
    }
    for (size_t i = 0; i < m.nprocs; i++) {
        proc_t *p = &m.procs[i];
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

/* ---- start and stop ---- */

static void stop(bool graceful)
{
    if (m.terminating || (m.stopping && graceful))
        return;
    m.stopping = true;
    m.terminating = !graceful;
    if (m.pending.conf) {
        pt_log_notice("the reload under way is abandoned");
        pt_resolve_async_free(m.pending.job);
        pt_config_free(m.pending.conf);
        m.pending.conf = NULL;
        m.pending.job = NULL;
    }
    pt_sdnotify("STOPPING=1\nSTATUS=stopping");
    pt_log_notice("%s stop: %zu worker%s", graceful ? "graceful" : "fast", m.nprocs, m.nprocs == 1 ? "" : "s");
    for (int s = 0; s < 256; s++)
        m.slots[s].respawn_at = 0;
    /* A worker not ready yet has taken no connection (it arms its
     * listeners when it says it is ready), and one stuck at start acts on
     * no other signal: SIGKILL at once. */
    for (size_t i = 0; i < m.nprocs; i++) {
        if (m.procs[i].chan >= 0)
            read_chan(&m.procs[i]); /* an 'R' may be on its way */
        kill(m.procs[i].pid, !m.procs[i].ready ? SIGKILL : graceful ? SIGQUIT : SIGTERM);
    }
    pt_cdk_no_respawn(); /* the disk process stops after the last worker: a worker draining may still invalidate */
    m.kill_at = now_ms() + (graceful ? m.conf->shutdown_timeout : 0) + KILL_GRACE_MS;
}

static void on_signal(int sig)
{
    switch (sig) {
    case SIGCHLD:
        reap();
        break;
    case SIGHUP:
        if (!m.stopping)
            reload();
        break;
    case SIGQUIT:
        stop(true);
        break;
    case SIGTERM:
    case SIGINT:
        stop(false);
        break;
    case SIGUSR1: {
        /* The master makes the new files, given to the workers' user, and
         * only then tells the workers to open them. */
        int rc = pt_log_reopen();
        if (rc < 0)
            pt_log_error("cannot reopen the error log: %s", strerror(-rc));
        char err[256];
        if (prepare_access_log(m.conf, m.drop, m.uid, m.gid, err, sizeof(err)) < 0)
            pt_log_error("%s", err);
        else if (rc == 0)
            pt_log_notice("logs reopened");
        for (size_t i = 0; i < m.nprocs; i++)
            kill(m.procs[i].pid, SIGUSR1);
        pt_cdk_signal(SIGUSR1);
        break;
    }
    }
}

static int loop(void)
{
    struct pollfd pfd[MAX_PROCS + 2];
    proc_t *who[MAX_PROCS + 2];
    for (;;) {
        if (m.stopping && m.nprocs == 0 && pt_cdk_stopped())
            return 0;
        if (m.hup_queued && !m.stopping && !reload_busy()) {
            m.hup_queued = false;
            reload();
        }
        respawn_due();
        int64_t now = now_ms(), timeout = watchdog(now), later = reload_timers(now);
        if (later < timeout)
            timeout = later;
        if (m.hup_queued && !m.stopping && !reload_busy())
            timeout = 0; /* the reload under way just ended: the next one goes now */
        for (int s = 0; s < m.nworkers; s++)
            if (m.slots[s].respawn_at && m.slots[s].respawn_at - now < timeout)
                timeout = m.slots[s].respawn_at > now ? m.slots[s].respawn_at - now : 0;
        timeout = pt_cdk_timeout(now, timeout);
        if (m.stopping && now >= m.kill_at) {
            if (m.nprocs)
                pt_log_warn("%zu workers did not stop in time: killing them", m.nprocs);
            else
                pt_log_warn("the cache disk process (pid %d) did not stop in time: killing it", (int)pt_cdk_pid());
            for (size_t i = 0; i < m.nprocs; i++)
                kill(m.procs[i].pid, SIGKILL);
            pt_cdk_signal(SIGKILL);
            m.kill_at = now + 1000;
        }
        nfds_t n = 0, job = 0;
        pfd[n++] = (struct pollfd){.fd = m.sigfd, .events = POLLIN};
        if (m.pending.job) {
            job = n;
            pfd[n++] = (struct pollfd){.fd = pt_resolve_async_fd(m.pending.job), .events = POLLIN};
        }
        for (size_t i = 0; i < m.nprocs; i++) {
            if (m.procs[i].chan < 0)
                continue;
            who[n] = &m.procs[i];
            pfd[n++] = (struct pollfd){.fd = m.procs[i].chan, .events = POLLIN};
        }
        int r = poll(pfd, n, (int)timeout);
        if (r < 0 && errno != EINTR) {
            pt_log_crit("poll: %s", strerror(errno));
            return 1;
        }
        if (r <= 0)
            continue;
        /* Channels first: procs[] may be reordered by a reap. */
        pid_t ready_pids[MAX_PROCS + 2];
        for (nfds_t i = 1; i < n; i++)
            ready_pids[i] = i != job && (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) ? who[i]->pid : 0;
        for (nfds_t i = 1; i < n; i++) {
            proc_t *p = ready_pids[i] ? find_proc(ready_pids[i]) : NULL;
            if (p && p->chan >= 0)
                on_chan(p);
        }
        /* Before the signals: a SIGTERM among them ends the job. */
        if (job && m.pending.job && (pfd[job].revents & (POLLIN | POLLHUP | POLLERR)))
            on_resolve();
        if (pfd[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(m.sigfd, &si, sizeof(si)) == sizeof(si))
                on_signal((int)si.ssi_signo);
        }
    }
}

static int daemonize(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        /* The parent writes the pid file, so that when it exits 0 the
         * file already names the running master. */
        const char *pf = m.pid_file;
        int rc = pf ? pt_pidfile_write(pf, pid) : 0;
        if (rc < 0) {
            char shown[4096];
            fprintf(stderr, "portico: cannot write the pid file %s: %s\n", pt_secret_masked(pf, shown, sizeof(shown)),
                    strerror(-rc));
            kill(pid, SIGKILL);
            _exit(1);
        }
        _exit(0);
    }
    setsid();
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        if (pt_log_fd() != STDERR_FILENO)
            dup2(fd, STDERR_FILENO);
        if (fd > STDERR_FILENO)
            close(fd);
    }
    return 0;
}

int pt_master_run(const pt_opts_t *o, pt_config_t *c)
{
    char err[512];
    m.o = *o;
    m.conf = c;
    const char *pf = o->pid_file ? o->pid_file : c->pid_file;
    if (pf && *pf) {
        snprintf(m.pid_path, sizeof(m.pid_path), "%s", pf);
        m.pid_file = m.pid_path;
    }
    pt_log_set_role("master");
    if (o->log_level < 0)
        pt_log_level = c->error_log.level;
    const char *elog = error_log_path(c, o);
    if (pt_log_open(elog) < 0) {
        char shown[4096];
        fprintf(stderr, "portico: cannot open the error log %s: %s\n", pt_secret_masked(elog, shown, sizeof(shown)),
                strerror(errno));
        return 1;
    }
    pt_rlimit_raise(); /* before any worker is forked: they inherit it */
    pid_t running = m.pid_file ? pt_pidfile_read(m.pid_file) : 0;
    if (running > 0 && running != getpid() && kill(running, 0) == 0) {
        pt_log_crit("already running as pid %d (pid file %s)", (int)running, m.pid_file);
        return 1;
    }
    if (pt_resolve_async_run(c, err, sizeof(err)) < 0 || resolve_user(c, &m.uid, &m.gid, &m.drop, err, sizeof(err)) < 0) {
        pt_log_crit("%s", err);
        return 1;
    }
    if (c->user && geteuid() != 0)
        pt_log_notice("user \"%s\" ignored: not started as root", c->user);
    int given = m.drop ? pt_log_set_owner(m.uid, m.gid) : 0;
    if (given < 0)
        pt_log_warn("cannot give the error log to user %s: %s", c->user, strerror(-given));
    m.nworkers = o->workers ? o->workers : pt_config_workers(c);
    pt_lset_t next = {0};
    if (pt_lset_prepare(&m.lset, c, m.nworkers, &next, err, sizeof(err)) < 0) {
        pt_log_crit("%s", err);
        return 1;
    }
    if (prepare_access_log(c, m.drop, m.uid, m.gid, err, sizeof(err)) < 0 ||
        pt_cdisk_make_dirs(c, m.drop, m.uid, m.gid, err, sizeof(err)) < 0) {
        pt_log_crit("%s", err);
        pt_lset_discard(&m.lset, &next);
        return 1;
    }
    pt_lset_commit(&m.lset, &next);
    m.upzone = prepare_zones(c);
    if (!m.upzone) {
        pt_log_crit("cannot map shared memory: %s", strerror(errno));
        return 1;
    }
    m.status = mmap(NULL, sizeof(pt_status_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m.status == MAP_FAILED) {
        pt_log_crit("mmap of the status board: %s", strerror(errno));
        return 1;
    }
    if (!o->foreground && daemonize() < 0) {
        pt_log_crit("fork: %s", strerror(errno));
        return 1;
    }
    if (o->foreground && m.pid_file) {
        int rc = pt_pidfile_write(m.pid_file, getpid());
        if (rc < 0) {
            pt_log_crit("cannot write the pid file %s: %s", m.pid_file, strerror(-rc));
            return 1;
        }
    }
    sigset_t set;
    sigemptyset(&set);
    int sigs[] = {SIGCHLD, SIGHUP, SIGQUIT, SIGTERM, SIGINT, SIGUSR1};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaddset(&set, sigs[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* a file past RLIMIT_FSIZE: its write fails (EFBIG), counted as lost, no kill */
    m.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (m.sigfd < 0) {
        pt_log_crit("signalfd: %s", strerror(errno));
        return 1;
    }
    m.gen = m.last_gen = 1;
    m.status->master_pid = getpid();
    m.status->started_ms = wall_ms();
    board_config();
    char where[1024] = "";
    size_t off = 0;
    for (size_t i = 0; i < m.lset.n && off < sizeof(where); i++) {
        char a[80];
        pt_addr_format((struct sockaddr *)&m.lset.v[i].bound, a, sizeof(a));
        off += (size_t)snprintf(where + off, sizeof(where) - off, "%s%s %s", i ? ", " : "", m.lset.v[i].name, a);
    }
    pt_log_notice("portico %s starting: %d worker%s, listening on %s", PACKAGE_VERSION, m.nworkers,
                  m.nworkers == 1 ? "" : "s", where);
    for (int s = 0; s < m.nworkers; s++)
        spawn(s);
    pt_cdk_sync(cdk());
    int rc = loop();
    pt_cdisks_at_exit(m.conf);
    pt_log_notice("stopped");
    if (m.pid_file)
        pt_pidfile_remove(m.pid_file, getpid());
    if (m.prev.active) { /* stopped while a reload's generation was starting */
        pt_lset_discard(&m.lset, &m.prev.lset);
        pt_config_free(m.prev.conf);
    }
    pt_lset_close(&m.lset);
    pt_config_free(m.conf);
    pt_zone_free_all();
    munmap(m.status, sizeof(pt_status_t));
    close(m.sigfd);
    return rc;
}
