/* Target health, in the shared zone so that every worker agrees.
 *
 * Passive: failures seen in real traffic.  Enough in a row mark a target
 * down: for `cooldown` when there are no active checks (then it is tried
 * again, its weight ramping up over `slow_start`), or until the probes
 * succeed when there are.
 *
 * Active: the prober's results (probe.c sends them); thresholds of
 * results in a row mark a target down or bring it back.
 *
 * Transitions are logged once across all workers: the process that wins
 * the compare-and-swap logs. */
#include "config.h"

#include <stdatomic.h>

#include "portico/log.h"
#include "portico/upstream.h"

bool pt_health_bad_status(const pt_upstream_t *u, int status)
{
    const pt_list_t *l = &u->conf->healthchecks.passive.unhealthy.http_statuses;
    if (!l->n)
        return status == 502 || status == 503 || status == 504;
    return pt_list_has_int(l, status);
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
    atomic_fetch_add(&s->passive_failures, 1);
    int32_t n = atomic_fetch_add(counter, 1) + 1;
    if (!limit || n < limit)
        return;
    static const char *const what[] = {"", "failing responses", "failed connections", "timeouts"};
    if (u->active) {
        int32_t up = 0;
        if (atomic_compare_exchange_strong(&s->active_down, &up, 1)) {
            atomic_fetch_add(&s->marked_down, 1);
            pt_log_warn("upstream \"%s\" target %s marked down after %d %s in a row; back when probes succeed",
                        u->conf->name, u->targets[idx].name, n, what[outcome]);
        }
        atomic_store(counter, 0);
        return;
    }
    int64_t until = now_ms + u->conf->healthchecks.passive.cooldown, zero = 0;
    if (atomic_compare_exchange_strong(&s->down_until_ms, &zero, until)) {
        atomic_fetch_add(&s->marked_down, 1);
        pt_log_warn("upstream \"%s\" target %s marked down after %d %s in a row; tried again in %lld ms",
                    u->conf->name, u->targets[idx].name, n, what[outcome],
                    (long long)u->conf->healthchecks.passive.cooldown);
    }
    atomic_store(counter, 0);
}

bool pt_health_down(const pt_target_shared_t *s, int64_t now_ms)
{
    if (atomic_load_explicit(&s->active_down, memory_order_relaxed))
        return true;
    int64_t until = atomic_load(&s->down_until_ms);
    return until && now_ms < until;
}

bool pt_health_up(pt_upstream_t *u, size_t idx, int64_t now_ms)
{
    pt_target_shared_t *s = u->targets[idx].shared;
    if (!s)
        return true;
    if (pt_health_down(s, now_ms))
        return false;
    int64_t until = atomic_load(&s->down_until_ms);
    if (!until)
        return true;
    if (atomic_compare_exchange_strong(&s->down_until_ms, &until, 0)) {
        atomic_store(&s->up_since_ms, now_ms);
        pt_log_warn("upstream \"%s\" target %s: cool-down over, trying it again", u->conf->name,
                    u->targets[idx].name);
    }
    return true;
}

static bool status_in(const pt_list_t *l, int status, const int *defaults, size_t ndefaults)
{
    if (l->n)
        return pt_list_has_int(l, status);
    for (size_t i = 0; i < ndefaults; i++)
        if (defaults[i] == status)
            return true;
    return false;
}

/* What a probe's result counts as: enum pt_outcome, or -1 for nothing. */
static int probe_outcome(const pt_active_conf_t *a, int status)
{
    static const int good[] = {200, 302}, bad[] = {404, 429, 500, 501, 502, 503, 504, 505};
    if (status == PT_PROBE_FAILED)
        return PT_OUT_TCP_FAIL;
    if (status == PT_PROBE_TIMEOUT)
        return PT_OUT_TIMEOUT;
    if (a->type == PT_PROBE_TCP || status_in(&a->healthy.http_statuses, status, good, 2))
        return PT_OUT_OK;
    if (status_in(&a->unhealthy.http_statuses, status, bad, 8))
        return PT_OUT_HTTP_FAIL;
    return -1;
}

bool pt_health_probed(pt_upstream_t *u, size_t idx, int status, pt_streak_t *st, int64_t now_ms)
{
    pt_target_shared_t *s = u->targets[idx].shared;
    if (!s)
        return false;
    const pt_active_conf_t *a = &u->conf->healthchecks.active;
    int kind = probe_outcome(a, status);
    atomic_store(&s->last_probe_status, status);
    atomic_fetch_add(kind == PT_OUT_OK ? &s->probes_ok : &s->probes_failed, 1);
    int down = atomic_load(&s->active_down);
    if (down != st->seen_down) { /* changed by passive checks: count afresh */
        st->seen_down = down;
        st->kind = -1;
        st->n = 0;
    }
    if (kind < 0)
        return false;
    if (kind != st->kind) {
        st->kind = kind;
        st->n = 0;
    }
    st->n++;
    if (down && kind == PT_OUT_OK) {
        if (!a->healthy.successes || st->n < a->healthy.successes)
            return false;
        atomic_store(&s->http_failures, 0);
        atomic_store(&s->tcp_failures, 0);
        atomic_store(&s->timeouts, 0);
        atomic_store(&s->down_until_ms, 0);
        atomic_store(&s->up_since_ms, now_ms);
        atomic_store(&s->active_down, 0);
        pt_log_warn("upstream \"%s\" target %s is healthy again after %d successful probes", u->conf->name,
                    u->targets[idx].name, st->n);
    } else if (!down && kind != PT_OUT_OK) {
        int64_t limit = kind == PT_OUT_HTTP_FAIL ? a->unhealthy.http_failures
                        : kind == PT_OUT_TCP_FAIL ? a->unhealthy.tcp_failures
                                                  : a->unhealthy.timeouts;
        if (!limit || st->n < limit)
            return false;
        int32_t up = 0;
        if (!atomic_compare_exchange_strong(&s->active_down, &up, 1)) {
            st->seen_down = 1; /* passive checks were quicker */
            st->n = 0;
            return false;
        }
        atomic_fetch_add(&s->marked_down, 1);
        static const char *const what[] = {"", "probes answered with an unhealthy status", "probes that could not connect",
                                           "probes that timed out"};
        pt_log_warn("upstream \"%s\" target %s marked down by active checks after %d %s in a row", u->conf->name,
                    u->targets[idx].name, st->n, what[kind]);
    } else {
        return false;
    }
    st->seen_down = !down;
    st->kind = -1;
    st->n = 0;
    return true;
}
