/* Passive health: failures seen in real traffic, counted in the shared
 * zone so that every worker agrees.  Enough failures in a row mark a
 * target down for `cooldown`; then it is tried again, with its weight
 * ramping up over `slow_start`.  Transitions are logged once across all
 * workers: the process that wins the compare-and-swap logs. */
#include "config.h"

#include <stdatomic.h>

#include "portico/log.h"
#include "portico/upstream.h"

bool pt_health_bad_status(const pt_upstream_t *u, int status)
{
    const pt_list_t *l = &u->conf->healthchecks.passive.unhealthy.http_statuses;
    if (!l->n)
        return status == 502 || status == 503 || status == 504;
    for (size_t i = 0; i < l->n; i++)
        if (((const int64_t *)l->v)[i] == status)
            return true;
    return false;
}

void pt_health_report(pt_upstream_t *u, size_t idx, int outcome, int64_t now_ms)
{
    pt_target_shared_t *s = u->targets[idx].shared;
    if (!s)
        return;
    const typeof(u->conf->healthchecks.passive.unhealthy) *th = &u->conf->healthchecks.passive.unhealthy;
    if (outcome == PT_OUT_OK) {
        atomic_store(&s->http_failures, 0);
        atomic_store(&s->tcp_failures, 0);
        atomic_store(&s->timeouts, 0);
        return;
    }
    _Atomic int32_t *counter = outcome == PT_OUT_HTTP_FAIL ? &s->http_failures
                               : outcome == PT_OUT_TCP_FAIL ? &s->tcp_failures
                                                            : &s->timeouts;
    int64_t limit = outcome == PT_OUT_HTTP_FAIL ? th->http_failures
                    : outcome == PT_OUT_TCP_FAIL ? th->tcp_failures
                                                 : th->timeouts;
    int32_t n = atomic_fetch_add(counter, 1) + 1;
    if (!limit || n < limit)
        return;
    int64_t until = now_ms + u->conf->healthchecks.passive.cooldown, zero = 0;
    if (atomic_compare_exchange_strong(&s->down_until_ms, &zero, until)) {
        static const char *const what[] = {"", "failing responses", "failed connections", "timeouts"};
        pt_log_warn("upstream \"%s\" target %s marked down after %d %s in a row; tried again in %lld ms",
                    u->conf->name, u->targets[idx].name, n, what[outcome],
                    (long long)u->conf->healthchecks.passive.cooldown);
    }
    atomic_store(counter, 0);
}

bool pt_health_up(pt_upstream_t *u, size_t idx, int64_t now_ms)
{
    pt_target_shared_t *s = u->targets[idx].shared;
    if (!s)
        return true;
    int64_t until = atomic_load(&s->down_until_ms);
    if (!until)
        return true;
    if (now_ms < until)
        return false;
    if (atomic_compare_exchange_strong(&s->down_until_ms, &until, 0)) {
        atomic_store(&s->up_since_ms, now_ms);
        pt_log_warn("upstream \"%s\" target %s: cool-down over, trying it again", u->conf->name,
                    u->targets[idx].name);
    }
    return true;
}
