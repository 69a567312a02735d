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
 * a new generation that fails to start is stopped and forgotten.  The reload
 * itself is in master_reload.c. */
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

/* The master's state (master-int.h), and how this file names it. */
struct master pt_master_state;
static struct master *const M = &pt_master_state;

int64_t ms_now_ms(void)
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

const char *ms_error_log_path(const pt_config_t *c, const pt_opts_t *o)
{
    if (c->error_log.path)
        return c->error_log.path;
    return o->foreground ? "stderr" : PT_ERROR_LOG_PATH;
}

int ms_resolve_user(const pt_config_t *c, uid_t *uid, gid_t *gid, bool *drop, char *err, size_t errlen)
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

int ms_prepare_access_log(const pt_config_t *c, bool drop, uid_t uid, gid_t gid, char *err, size_t errlen)
{
    if (prepare_log_file(c, c->access_log.path, drop, uid, gid, err, errlen) < 0)
        return -1;
    return prepare_log_file(c, c->admin.access_log, drop, uid, gid, err, errlen);
}

/* ---- the status board ---- */

void ms_board_config(void)
{
    M->status->generation = M->gen;
    M->status->nworkers = M->nworkers;
    M->status->config_loaded_ms = wall_ms();
    snprintf(M->status->config_file, sizeof(M->status->config_file), "%s", M->conf->file);
    memcpy(M->status->config_sha256, M->conf->sha256_hex, sizeof(M->status->config_sha256));
}

/* ---- workers ---- */


static proc_t *find_proc(pid_t pid)
{
    for (size_t i = 0; i < M->nprocs; i++)
        if (M->procs[i].pid == pid)
            return &M->procs[i];
    return NULL;
}

static void remove_proc(proc_t *p)
{
    if (p->chan >= 0)
        close(p->chan);
    if (p->board >= 0)
        pt_board_retire(M->status, p->board);
    *p = M->procs[--M->nprocs];
}

/* No column is free: every one is held by a live worker (old generations
 * draining and the new one).  Said at most every 10 s: each waiting slot
 * is tried again every second. */
static void short_of_columns(int slot)
{
    static int64_t told;
    int64_t now = ms_now_ms();
    if (told && now - told < 10000)
        return;
    told = now;
    pt_log_error("worker %d (generation %u) not started: all %d columns of the shared counters are held by live "
                 "workers; tried again every second until one exits",
                 slot, M->gen, pt_column_held());
}

/* In a new worker: what the master holds for a reload under way is not
 * its to keep: the sockets that only the serving generation has (a
 * listener the new file removed would stay open as long as the worker
 * lives), the resolving child's pipe. */
static void close_reload_fds(void)
{
    if (M->prev.active)
        pt_lset_discard(&M->lset, &M->prev.lset);
    if (M->pending.job)
        close(pt_resolve_async_fd(M->pending.job));
}


/* 0, -1 when it failed (tried again in a second), -2 when no counter
 * column is free (tried again too, once an old worker exits). */
int ms_spawn(int slot)
{
    /* Whatever fails is tried again later, as respawn_due does, also for
     * the workers a start or a reload forks. */
    M->slots[slot].respawn_at = ms_now_ms() + 1000;
    if (M->nprocs == MAX_PROCS)
        return -1;
    int column = pt_column_take();
    if (column < 0) {
        short_of_columns(slot);
        ms_retire_for_columns();
        return -2;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        pt_log_error("socketpair: %s", strerror(errno));
        pt_column_give(column);
        return -1;
    }
    int board = pt_board_slot(M->status);
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
        close(M->sigfd);
        for (size_t i = 0; i < M->nprocs; i++)
            close(M->procs[i].chan);
        close_reload_fds();
        pt_metrics_attach(mx_block);
        pt_router_t *router = pt_router_build(M->conf);
        pt_upstream_t *ups = pt_upstreams_build(M->conf, M->upzone, column);
        pt_worker_t w = {.magic = PT_WORKER_MAGIC, .conf = M->conf, .router = router, .upstreams = ups,
                         .lset = &M->lset, .slot = slot, .generation = M->gen, .chan = sv[1], .status = M->status,
                         .board = board, .column = column, .uid = M->uid, .gid = M->gid, .drop_privileges = M->drop};
        int rc = router && ups ? pt_worker_run(&w) : 2;
        pt_upstreams_free(ups, M->conf->upstreams.n);
        pt_router_free(router);
        pt_lset_close(&M->lset);
        pt_config_free(M->conf);
        close(sv[1]);
        exit(rc);
    }
    close(sv[1]);
    M->slots[slot].respawn_at = 0;
    proc_t *p = &M->procs[M->nprocs++];
    *p = (proc_t){.pid = pid, .slot = slot, .gen = M->gen, .chan = sv[0], .started_ms = ms_now_ms(),
                  .watchdog = M->conf->worker_watchdog, .board = board, .column = column, .upzone = M->upzone,
                  .mx_zone = mx_zone, .mx_block = mx_block};
    if (board >= 0)
        M->status->workers[board] = (pt_status_worker_t){
            .pid = pid, .slot = slot, .generation = M->gen, .state = PT_W_STARTING, .started_ms = wall_ms(), .heartbeat_ms = ms_now_ms()};
    pt_log_info("started worker %d (pid %d, generation %u)", slot, (int)pid, M->gen);
    return 0;
}

/* ---- the cache disk process (cdisk_keeper.c) ---- */

/* In the disk process: what only the master may hold. */
static void cdk_in_child(void)
{
    close(M->sigfd);
    for (size_t i = 0; i < M->nprocs; i++)
        close(M->procs[i].chan);
    close_reload_fds();
    pt_lset_close(&M->lset);
}

const pt_cdk_ctx_t *ms_cdk(void)
{
    static pt_cdk_ctx_t x;
    x = (pt_cdk_ctx_t){.conf = M->conf, .stopping = M->stopping, .drop = M->drop, .uid = M->uid, .gid = M->gid,
                       .in_child = cdk_in_child};
    return &x;
}


/* Announces the current generation once all of it is ready and every old
 * worker said it stopped accepting.  `now` (a reload is about to start)
 * does not wait for the old workers' word: they were told, and this
 * reload's outcome must be said before the next one's RELOADING=1. */
void ms_announce(bool now)
{
    if (M->announced || M->stopping)
        return;
    size_t ready = 0;
    for (size_t i = 0; i < M->nprocs; i++)
        ready += M->procs[i].gen == M->gen && M->procs[i].ready;
    if (ready < (size_t)M->nworkers)
        return;
    if (M->prev.active)
        ms_promote(); /* the new generation is complete: the old one may stop now */
    for (size_t i = 0; i < M->nprocs && !now; i++)
        if (M->procs[i].gen != M->gen && !M->procs[i].draining)
            return; /* an old worker may still accept */
    M->announced = true;
    char status[256];
    snprintf(status, sizeof(status), "generation %u, %d worker%s", M->gen, M->nworkers, M->nworkers == 1 ? "" : "s");
    if (M->reloading) {
        M->reloading = false;
        pt_log_notice("reload ok: %s%s", status, M->reverted);
    } else {
        pt_log_notice("ready: %s", status);
    }
    pt_sdnotify("READY=1\nSTATUS=serving: %s\nMAINPID=%d", status, (int)getpid());
}

void ms_check_ready(void)
{
    ms_announce(false);
}

/* Takes what the worker said: 'R' ready, 'D' draining. */
void ms_read_chan(proc_t *p)
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
                M->status->workers[p->board].state = PT_W_RUNNING;
            M->slots[p->slot].backoff = p->gen == M->gen ? M->slots[p->slot].backoff : 0;
        } else if (msg[i] == 'D') {
            p->draining = true;
            if (p->board >= 0)
                M->status->workers[p->board].state = PT_W_DRAINING;
        }
    }
}

static void on_chan(proc_t *p)
{
    ms_read_chan(p);
    ms_check_ready();
}

static void reap(void)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        proc_t *p = find_proc(pid);
        if (!p) {
            pt_cdk_reaped(ms_cdk(), pid, st);
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
        bool starting = M->prev.active && p->gen == M->gen && !M->stopping;
        bool current = p->gen == M->gen && !M->stopping;
        bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0 && (p->draining || p->told_ms || M->stopping);
        if (starting) {
            snprintf(why, sizeof(why), "worker %d (pid %d) of generation %u %s before the generation was ready",
                     p->slot, (int)pid, p->gen, how);
        } else if (current && !p->draining) {
            int slot = p->slot;
            int64_t lived = ms_now_ms() - p->started_ms;
            /* Dying soon after start again and again: back off, up to 30s.
             * A hung worker lived at least the watchdog, so its age says
             * nothing: one that served is replaced at once (its slot's
             * queue is waiting), one that hung before it was ready is a
             * crash at start. */
            bool early = p->hung ? !p->ready : lived < 2000;
            int64_t *b = &M->slots[slot].backoff;
            *b = early ? (*b ? (*b * 2 > 30000 ? 30000 : *b * 2) : 100) : 0;
            M->slots[slot].respawn_at = ms_now_ms() + *b;
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
            ms_abandon_generation(why);
    }
    if (M->sweep_due) {
        bool old_left = false;
        for (size_t i = 0; i < M->nprocs; i++)
            old_left |= M->procs[i].gen != M->gen; /* older, or a generation that failed to start */
        if (!old_left) {
            pt_metrics_tidy(); /* before the zones it folds in are unmapped */
            pt_zone_sweep();
            pt_upstreams_tidy(M->upzone); /* what only the old generation used */
            M->sweep_due = false;
        }
    }
    ms_check_ready();
}

static void respawn_due(void)
{
    int64_t now = ms_now_ms();
    pt_cdk_due(ms_cdk(), now);
    for (int s = 0; s < M->nworkers; s++) {
        if (!M->slots[s].respawn_at || M->slots[s].respawn_at > now)
            continue;
        M->slots[s].respawn_at = 0;
        if (ms_spawn(s) < 0)
            M->slots[s].respawn_at = now + 1000;
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
    for (size_t i = 0; i < M->nprocs; i++) {
        proc_t *p = &M->procs[i];
        if (!p->watchdog || p->board < 0 || p->hung)
            continue;
        const pt_status_worker_t *sw = &M->status->workers[p->board];
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

/* ---- start and stop ---- */

static void stop(bool graceful)
{
    if (M->terminating || (M->stopping && graceful))
        return;
    M->stopping = true;
    M->terminating = !graceful;
    if (M->pending.conf) {
        pt_log_notice("the reload under way is abandoned");
        pt_resolve_async_free(M->pending.job);
        pt_config_free(M->pending.conf);
        M->pending.conf = NULL;
        M->pending.job = NULL;
    }
    pt_sdnotify("STOPPING=1\nSTATUS=stopping");
    pt_log_notice("%s stop: %zu worker%s", graceful ? "graceful" : "fast", M->nprocs, M->nprocs == 1 ? "" : "s");
    for (int s = 0; s < 256; s++)
        M->slots[s].respawn_at = 0;
    /* A worker not ready yet has taken no connection (it arms its
     * listeners when it says it is ready), and one stuck at start acts on
     * no other signal: SIGKILL at once. */
    for (size_t i = 0; i < M->nprocs; i++) {
        if (M->procs[i].chan >= 0)
            ms_read_chan(&M->procs[i]); /* an 'R' may be on its way */
        kill(M->procs[i].pid, !M->procs[i].ready ? SIGKILL : graceful ? SIGQUIT : SIGTERM);
    }
    pt_cdk_no_respawn(); /* the disk process stops after the last worker: a worker draining may still invalidate */
    M->kill_at = ms_now_ms() + (graceful ? M->conf->shutdown_timeout : 0) + KILL_GRACE_MS;
}

static void on_signal(int sig)
{
    switch (sig) {
    case SIGCHLD:
        reap();
        break;
    case SIGHUP:
        if (!M->stopping)
            ms_reload();
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
        if (ms_prepare_access_log(M->conf, M->drop, M->uid, M->gid, err, sizeof(err)) < 0)
            pt_log_error("%s", err);
        else if (rc == 0)
            pt_log_notice("logs reopened");
        for (size_t i = 0; i < M->nprocs; i++)
            kill(M->procs[i].pid, SIGUSR1);
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
        if (M->stopping && M->nprocs == 0 && pt_cdk_stopped())
            return 0;
        if (M->hup_queued && !M->stopping && !ms_reload_busy()) {
            M->hup_queued = false;
            ms_reload();
        }
        respawn_due();
        int64_t now = ms_now_ms(), timeout = watchdog(now), later = ms_reload_timers(now);
        if (later < timeout)
            timeout = later;
        if (M->hup_queued && !M->stopping && !ms_reload_busy())
            timeout = 0; /* the reload under way just ended: the next one goes now */
        for (int s = 0; s < M->nworkers; s++)
            if (M->slots[s].respawn_at && M->slots[s].respawn_at - now < timeout)
                timeout = M->slots[s].respawn_at > now ? M->slots[s].respawn_at - now : 0;
        timeout = pt_cdk_timeout(now, timeout);
        if (M->stopping && now >= M->kill_at) {
            if (M->nprocs)
                pt_log_warn("%zu workers did not stop in time: killing them", M->nprocs);
            else
                pt_log_warn("the cache disk process (pid %d) did not stop in time: killing it", (int)pt_cdk_pid());
            for (size_t i = 0; i < M->nprocs; i++)
                kill(M->procs[i].pid, SIGKILL);
            pt_cdk_signal(SIGKILL);
            M->kill_at = now + 1000;
        }
        nfds_t n = 0, job = 0;
        pfd[n++] = (struct pollfd){.fd = M->sigfd, .events = POLLIN};
        if (M->pending.job) {
            job = n;
            pfd[n++] = (struct pollfd){.fd = pt_resolve_async_fd(M->pending.job), .events = POLLIN};
        }
        for (size_t i = 0; i < M->nprocs; i++) {
            if (M->procs[i].chan < 0)
                continue;
            who[n] = &M->procs[i];
            pfd[n++] = (struct pollfd){.fd = M->procs[i].chan, .events = POLLIN};
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
        if (job && M->pending.job && (pfd[job].revents & (POLLIN | POLLHUP | POLLERR)))
            ms_on_resolve();
        if (pfd[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(M->sigfd, &si, sizeof(si)) == sizeof(si))
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
        const char *pf = M->pid_file;
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
    M->o = *o;
    M->conf = c;
    const char *pf = o->pid_file ? o->pid_file : c->pid_file;
    if (pf && *pf) {
        snprintf(M->pid_path, sizeof(M->pid_path), "%s", pf);
        M->pid_file = M->pid_path;
    }
    pt_log_set_role("master");
    if (o->log_level < 0)
        pt_log_level = c->error_log.level;
    const char *elog = ms_error_log_path(c, o);
    if (pt_log_open(elog) < 0) {
        char shown[4096];
        fprintf(stderr, "portico: cannot open the error log %s: %s\n", pt_secret_masked(elog, shown, sizeof(shown)),
                strerror(errno));
        return 1;
    }
    pt_rlimit_raise(); /* before any worker is forked: they inherit it */
    pid_t running = M->pid_file ? pt_pidfile_read(M->pid_file) : 0;
    if (running > 0 && running != getpid() && kill(running, 0) == 0) {
        pt_log_crit("already running as pid %d (pid file %s)", (int)running, M->pid_file);
        return 1;
    }
    if (pt_resolve_async_run(c, err, sizeof(err)) < 0 || ms_resolve_user(c, &M->uid, &M->gid, &M->drop, err, sizeof(err)) < 0) {
        pt_log_crit("%s", err);
        return 1;
    }
    if (c->user && geteuid() != 0)
        pt_log_notice("user \"%s\" ignored: not started as root", c->user);
    int given = M->drop ? pt_log_set_owner(M->uid, M->gid) : 0;
    if (given < 0)
        pt_log_warn("cannot give the error log to user %s: %s", c->user, strerror(-given));
    M->nworkers = o->workers ? o->workers : pt_config_workers(c);
    pt_lset_t next = {0};
    if (pt_lset_prepare(&M->lset, c, M->nworkers, &next, err, sizeof(err)) < 0) {
        pt_log_crit("%s", err);
        return 1;
    }
    if (ms_prepare_access_log(c, M->drop, M->uid, M->gid, err, sizeof(err)) < 0 ||
        pt_cdisk_make_dirs(c, M->drop, M->uid, M->gid, err, sizeof(err)) < 0) {
        pt_log_crit("%s", err);
        pt_lset_discard(&M->lset, &next);
        return 1;
    }
    pt_lset_commit(&M->lset, &next);
    M->upzone = ms_prepare_zones(c);
    if (!M->upzone) {
        pt_log_crit("cannot map shared memory: %s", strerror(errno));
        return 1;
    }
    M->status = mmap(NULL, sizeof(pt_status_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (M->status == MAP_FAILED) {
        pt_log_crit("mmap of the status board: %s", strerror(errno));
        return 1;
    }
    if (!o->foreground && daemonize() < 0) {
        pt_log_crit("fork: %s", strerror(errno));
        return 1;
    }
    if (o->foreground && M->pid_file) {
        int rc = pt_pidfile_write(M->pid_file, getpid());
        if (rc < 0) {
            pt_log_crit("cannot write the pid file %s: %s", M->pid_file, strerror(-rc));
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
    M->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (M->sigfd < 0) {
        pt_log_crit("signalfd: %s", strerror(errno));
        return 1;
    }
    M->gen = M->last_gen = 1;
    M->status->master_pid = getpid();
    M->status->started_ms = wall_ms();
    ms_board_config();
    char where[1024] = "";
    size_t off = 0;
    for (size_t i = 0; i < M->lset.n && off < sizeof(where); i++) {
        char a[80];
        pt_addr_format((struct sockaddr *)&M->lset.v[i].bound, a, sizeof(a));
        off += (size_t)snprintf(where + off, sizeof(where) - off, "%s%s %s", i ? ", " : "", M->lset.v[i].name, a);
    }
    pt_log_notice("portico %s starting: %d worker%s, listening on %s", PACKAGE_VERSION, M->nworkers,
                  M->nworkers == 1 ? "" : "s", where);
    for (int s = 0; s < M->nworkers; s++)
        ms_spawn(s);
    pt_cdk_sync(ms_cdk());
    int rc = loop();
    pt_cdisks_at_exit(M->conf);
    pt_log_notice("stopped");
    if (M->pid_file)
        pt_pidfile_remove(M->pid_file, getpid());
    if (M->prev.active) { /* stopped while a reload's generation was starting */
        pt_lset_discard(&M->lset, &M->prev.lset);
        pt_config_free(M->prev.conf);
    }
    pt_lset_close(&M->lset);
    pt_config_free(M->conf);
    pt_zone_free_all();
    munmap(M->status, sizeof(pt_status_t));
    close(M->sigfd);
    return rc;
}
