/* Active and passive health thresholds on a shared slot, without sockets. */
#include "config.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "../unit/tap.h"
#include "portico/upstream.h"

int main(void)
{
    pt_upstream_conf_t conf = {.name = "api"};
    pt_active_conf_t *a = &conf.healthchecks.active;
    a->node = (const pt_node_t *)&conf; /* present */
    a->healthy.successes = 2;
    a->unhealthy.http_failures = 3;
    a->unhealthy.tcp_failures = 2;
    a->unhealthy.timeouts = 0;
    conf.healthchecks.passive.unhealthy.http_failures = 2;
    pt_target_shared_t slot = {0};
    pt_target_t t = {.shared = &slot, .name = "10.0.0.1:80"};
    pt_upstream_t u = {.conf = &conf, .targets = &t, .ntargets = 1};
    pt_balancer_init(&u);
    ok(u.active && u.passive, "active and passive are both on");
    pt_streak_t st = {.kind = -1};

    /* failures must be of one kind and in a row */
    pt_health_probed(&u, 0, 500, &st, 1000);
    pt_health_probed(&u, 0, 500, &st, 1000);
    pt_health_probed(&u, 0, PT_PROBE_FAILED, &st, 1000);
    pt_health_probed(&u, 0, 200, &st, 1000);
    pt_health_probed(&u, 0, 500, &st, 1000);
    pt_health_probed(&u, 0, 418, &st, 1000); /* in neither list: counts for nothing */
    ok(pt_health_up(&u, 0, 1000), "two 500s, a failed connect, a 200, a 500, a 418: still up");
    ok(!pt_health_probed(&u, 0, 503, &st, 1000) && pt_health_probed(&u, 0, 502, &st, 1000),
       "the third unhealthy status in a row marks it down");
    ok(!pt_health_up(&u, 0, 1000) && atomic_load(&slot.marked_down) == 1, "down, and counted once");
    for (int i = 0; i < 10; i++)
        pt_health_probed(&u, 0, PT_PROBE_TIMEOUT, &st, 1000);
    ok(!pt_health_up(&u, 0, 1000), "timeouts: 0 never marks (nor clears)");
    ok(!pt_health_probed(&u, 0, 302, &st, 2000) && pt_health_probed(&u, 0, 200, &st, 2000),
       "two successes bring it back");
    ok(pt_health_up(&u, 0, 2000) && atomic_load(&slot.up_since_ms) == 2000, "up, with slow start from now");

    /* passive marks it down: with active checks only probes bring it back */
    pt_health_report(&u, 0, PT_OUT_HTTP_FAIL, 3000);
    pt_health_report(&u, 0, PT_OUT_HTTP_FAIL, 3000);
    ok(!pt_health_up(&u, 0, 3000) && !pt_health_up(&u, 0, 3000 + 86400000), "passive: down, no cool-down");
    ok(!pt_health_probed(&u, 0, 200, &st, 4000), "a change made elsewhere restarts the prober's count");
    ok(pt_health_probed(&u, 0, 200, &st, 4000) && pt_health_up(&u, 0, 4000), "then two successes");

    /* tcp probes: any answer is a success; a failed connect is not */
    a->type = PT_PROBE_TCP;
    pt_health_probed(&u, 0, PT_PROBE_FAILED, &st, 5000);
    ok(pt_health_probed(&u, 0, PT_PROBE_FAILED, &st, 5000), "tcp: two failed connects mark it down");
    pt_health_probed(&u, 0, 0, &st, 5000);
    ok(pt_health_probed(&u, 0, 0, &st, 5000), "tcp: two connects bring it back");
    ok(atomic_load(&slot.probes_ok) >= 6 && atomic_load(&slot.probes_failed) >= 10, "probe counters");

    /* without active checks: passive marks for the cool-down */
    conf.healthchecks.active.node = NULL;
    conf.healthchecks.passive.cooldown = 500;
    pt_balancer_init(&u);
    pt_health_report(&u, 0, PT_OUT_HTTP_FAIL, 10000);
    pt_health_report(&u, 0, PT_OUT_HTTP_FAIL, 10000);
    ok(!pt_health_up(&u, 0, 10499) && pt_health_up(&u, 0, 10500), "passive alone: back after the cool-down");
    free(u.ring);
    return done_testing();
}
