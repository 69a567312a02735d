/* The open-files limit.  A worker at its soft RLIMIT_NOFILE fails accept(2)
 * and upstream connects with EMFILE, whatever max_connections allows, and
 * the usual soft limit (1024) is far below the default max_connections
 * (10000): the master raises it to the hard limit, which only root can
 * raise, and -t says when even the hard limit is short. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "portico/conf.h"
#include "portico/log.h"
#include "portico/rlimit.h"

static void count(const pt_config_t *c, uint64_t *clients, uint64_t *idle)
{
    *clients = *idle = 0;
    const pt_listener_conf_t *ls = c->listeners.v;
    for (size_t i = 0; i < c->listeners.n; i++)
        *clients += (uint64_t)ls[i].max_connections;
    const pt_upstream_conf_t *up = c->upstreams.v;
    for (size_t i = 0; i < c->upstreams.n; i++)
        *idle += (uint64_t)up[i].keepalive.size * up[i].targets.n;
}

uint64_t pt_rlimit_needed(const pt_config_t *c)
{
    uint64_t clients, idle;
    count(c, &clients, &idle);
    /* Without upstreams every answer is Portico's own: no second
     * descriptor per client. */
    return clients * (c->upstreams.n ? 2 : 1) + idle + PT_RLIMIT_SLACK;
}

void pt_rlimit_check(const pt_config_t *c, pt_diag_t *d)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_max == RLIM_INFINITY || !c->listeners.n)
        return;
    uint64_t need = pt_rlimit_needed(c), clients, idle;
    if (need <= (uint64_t)rl.rlim_max)
        return;
    count(c, &clients, &idle);
    const pt_listener_conf_t *ls = c->listeners.v, *most = &ls[0];
    for (size_t i = 1; i < c->listeners.n; i++)
        if (ls[i].max_connections > most->max_connections)
            most = &ls[i];
    const pt_node_t *at = most->node ? pt_node_get(most->node, "max_connections") : NULL;
    if (!at)
        at = most->node;
    char ups[128] = "";
    if (c->upstreams.n)
        snprintf(ups, sizeof(ups), ", as many upstream connections, %llu idle keep-alive ones",
                 (unsigned long long)idle);
    pt_diag_add(d, PT_DIAG_WARNING, c->file, at ? at->line : 0, at ? at->col : 0,
                "listeners[%zu].max_connections: a worker may need %llu file descriptors (%llu client connections "
                "by the listeners' max_connections%s and %d more), past the hard limit RLIMIT_NOFILE of %llu: "
                "lower max_connections or raise the limit (LimitNOFILE= in the systemd unit)",
                (size_t)(most - ls), (unsigned long long)need, (unsigned long long)clients, ups, PT_RLIMIT_SLACK,
                (unsigned long long)rl.rlim_max);
}

int pt_rlimit_raise(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -errno;
    if (rl.rlim_cur == rl.rlim_max) {
        pt_log_info("open files limit (RLIMIT_NOFILE): %llu", (unsigned long long)rl.rlim_cur);
        return 0;
    }
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        int err = errno;
        pt_log_warn("cannot raise the open files limit (RLIMIT_NOFILE) from %llu to %llu: %s",
                    (unsigned long long)old, (unsigned long long)rl.rlim_max, strerror(err));
        return -err;
    }
    pt_log_info("open files limit (RLIMIT_NOFILE) raised from %llu to the hard limit, %llu", (unsigned long long)old,
                (unsigned long long)rl.rlim_max);
    return 0;
}
