/* The cache disk process, as the master keeps it (cdisk_keeper.h): one,
 * for every disk tier of the serving configuration. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "portico/cache_disk.h"
#include "portico/cache_store.h"
#include "portico/cdisk_keeper.h"
#include "portico/column.h"
#include "portico/log.h"

static struct {
    pid_t pid;
    int column;
    char signature[4096]; /* of the configuration it serves */
    bool restart;         /* told to stop for a new one */
    bool stop_told;       /* told to stop with the master */
    int64_t started_ms, respawn_at, backoff;
} cd;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void spawn(const pt_cdk_ctx_t *x)
{
    cd.respawn_at = 0;
    cd.restart = false;
    if (!pt_cdisk_any(x->conf) || x->stopping)
        return;
    int column = pt_column_take();
    if (column < 0) {
        cd.respawn_at = now_ms() + 1000;
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        pt_log_error("fork: %s", strerror(errno));
        pt_column_give(column);
        cd.respawn_at = now_ms() + 1000;
        return;
    }
    if (pid == 0) {
        x->in_child();
        pt_cdisk_process(x->conf, column, x->drop, x->uid, x->gid);
    }
    cd.pid = pid;
    cd.column = column;
    cd.started_ms = now_ms();
    pt_cdisk_signature(x->conf, cd.signature, sizeof(cd.signature));
    pt_log_notice("started the cache disk process (pid %d)", (int)pid);
}

void pt_cdk_sync(const pt_cdk_ctx_t *x)
{
    char sig[sizeof(cd.signature)];
    pt_cdisk_signature(x->conf, sig, sizeof(sig));
    if (cd.pid && strcmp(sig, cd.signature) != 0) {
        kill(cd.pid, SIGTERM); /* the next starts when it has exited */
        cd.restart = true;
    } else if (!cd.pid && sig[0] && !cd.respawn_at) {
        spawn(x);
    }
}

bool pt_cdk_reaped(const pt_cdk_ctx_t *x, pid_t pid, int st)
{
    if (!cd.pid || pid != cd.pid)
        return false;
    pt_caches_forget_column(cd.column);
    pt_column_give(cd.column);
    pt_cdisks_gone();
    cd.pid = 0;
    bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    const char *how = WIFSIGNALED(st) ? "was killed by signal" : "exited with status";
    int what = WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st);
    if (x->stopping || cd.restart) {
        if (clean)
            pt_log_notice("the cache disk process (pid %d) exited", (int)pid);
        else
            pt_log_warn("the cache disk process (pid %d) %s %d", (int)pid, how, what);
        if (cd.restart)
            spawn(x);
        return true;
    }
    int64_t lived = now_ms() - cd.started_ms;
    cd.backoff = lived < 2000 ? (cd.backoff ? (cd.backoff * 2 > 30000 ? 30000 : cd.backoff * 2) : 100) : 0;
    cd.respawn_at = now_ms() + cd.backoff;
    pt_log_error("the cache disk process (pid %d) %s %d; respawning in %lld ms", (int)pid, how, what,
                 (long long)cd.backoff);
    return true;
}

void pt_cdk_due(const pt_cdk_ctx_t *x, int64_t now)
{
    if (cd.respawn_at && cd.respawn_at <= now)
        spawn(x);
}

int64_t pt_cdk_timeout(int64_t now, int64_t timeout)
{
    if (cd.respawn_at && cd.respawn_at - now < timeout)
        timeout = cd.respawn_at > now ? cd.respawn_at - now : 0;
    return timeout;
}

void pt_cdk_no_respawn(void)
{
    cd.respawn_at = 0;
}

void pt_cdk_signal(int sig)
{
    if (cd.pid)
        kill(cd.pid, sig);
}

bool pt_cdk_stopped(void)
{
    if (!cd.pid)
        return true;
    if (!cd.stop_told)
        kill(cd.pid, SIGTERM);
    cd.stop_told = true;
    return false;
}

pid_t pt_cdk_pid(void)
{
    return cd.pid;
}
