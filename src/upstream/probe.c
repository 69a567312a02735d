/* Active health checks: the prober.  It runs in the first worker of the
 * current generation only (one prober per node, not one per worker), and
 * writes what it learns to the shared zone, where every worker's balancer
 * reads it.  A draining worker stops probing; its successor (a respawn or
 * the next generation's first worker) starts again, and the health state
 * itself, kept in the zone by address, is not lost on the way.
 *
 * A probe is one request of the internal HTTP client on a fresh
 * connection: connect, for scheme: https the TLS handshake (verified like
 * the proxy's), a GET (type http) whose status is the result, or nothing
 * more (type tcp).  A failed connect or handshake, a reset or a reply that
 * is not HTTP counts as a TCP failure; no answer within `timeout` as a
 * timeout.  The next probe of a target is `healthy.interval` or
 * `unhealthy.interval` after the last one ended, by its state then. */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/client.h"
#include "portico/log.h"
#include "portico/upstream.h"
#include "portico/worker.h"

#define LOOK_MS 1000 /* when the interval of a state is 0: look again this often */

typedef struct probe {
    pt_prober_t *pr;
    pt_upstream_t *u;
    size_t idx;
    pt_client_t *cl; /* the probe under way, or NULL */
    struct event timer;
    pt_streak_t streak;
} probe_t;

struct pt_prober {
    pt_worker_t *w;
    probe_t *v;
    size_t n;
};

static void arm(probe_t *pb, int64_t ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(&pb->timer, &tv);
}

static int64_t interval(const probe_t *pb)
{
    const pt_active_conf_t *a = &pb->u->conf->healthchecks.active;
    const pt_target_shared_t *s = pb->u->targets[pb->idx].shared;
    return s && atomic_load(&s->active_down) ? a->unhealthy.interval : a->healthy.interval;
}

static void end_probe(probe_t *pb, int status)
{
    pb->cl = NULL;
    pt_health_probed(pb->u, pb->idx, status, &pb->streak, pt_worker_now_us(pb->pr->w) / 1000);
    int64_t ms = interval(pb);
    arm(pb, ms ? ms : LOOK_MS);
}

static void on_result(void *arg, const pt_client_resp_t *r)
{
    probe_t *pb = arg;
    if (r->error)
        pt_log_debug("health check of %s: %s", pb->u->targets[pb->idx].name, r->error);
    end_probe(pb, r->status == PT_CLIENT_TIMEOUT ? PT_PROBE_TIMEOUT
                  : r->status < 0                ? PT_PROBE_FAILED
                                                 : r->status);
}

static void start_probe(probe_t *pb)
{
    const pt_active_conf_t *a = &pb->u->conf->healthchecks.active;
    const pt_target_t *t = &pb->u->targets[pb->idx];
    const char *host = a->host ? a->host : t->conf ? t->conf->address : t->name;
    pt_client_req_t rq = {
        .target = pt_str_from(a->http_path),
        .host = pt_str_from(host),
        .headers = PT_STR("User-Agent: portico/" PACKAGE_VERSION " health-check\r\n"),
        .timeout_ms = a->timeout,
        .fresh = true,
        .connect_only = a->type == PT_PROBE_TCP,
    };
    pb->cl = pt_client_start(pb->pr->w, pb->u, pb->idx, &rq, on_result, pb);
    if (!pb->cl) {
        pt_log_error("health check of %s: %s", t->name, strerror(errno));
        end_probe(pb, PT_PROBE_FAILED);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    probe_t *pb = arg;
    if (!interval(pb))
        arm(pb, LOOK_MS); /* not probed in this state */
    else if (pb->u->targets[pb->idx].addrlen)
        start_probe(pb);
    else
        arm(pb, LOOK_MS); /* not resolved yet */
}

pt_prober_t *pt_prober_start(pt_worker_t *w)
{
    size_t n = 0;
    for (size_t i = 0; i < w->conf->upstreams.n; i++)
        if (w->upstreams[i].active)
            n += w->upstreams[i].ntargets;
    if (!n)
        return NULL;
    pt_prober_t *pr = calloc(1, sizeof(*pr));
    probe_t *v = calloc(n, sizeof(*v));
    if (!pr || !v) {
        free(pr);
        free(v);
        pt_log_error("cannot start the health checks: out of memory");
        return NULL;
    }
    pr->w = w;
    pr->v = v;
    for (size_t i = 0; i < w->conf->upstreams.n; i++) {
        pt_upstream_t *u = &w->upstreams[i];
        for (size_t k = 0; u->active && k < u->ntargets; k++) {
            probe_t *pb = &v[pr->n++];
            *pb = (probe_t){.pr = pr, .u = u, .idx = k, .streak = {.kind = -1}};
            if (u->targets[k].shared)
                pb->streak.seen_down = atomic_load(&u->targets[k].shared->active_down);
            evtimer_assign(&pb->timer, w->base, on_timer, pb);
            arm(pb, 0);
        }
    }
    pt_log_info("health checks: probing %zu targets", pr->n);
    return pr;
}

void pt_prober_stop(pt_prober_t *pr)
{
    if (!pr)
        return;
    for (size_t i = 0; i < pr->n; i++) {
        pt_client_cancel(pr->v[i].cl);
        evtimer_del(&pr->v[i].timer);
    }
    free(pr->v);
    free(pr);
}
