/* The balancers, behind one pick():
 *
 *  round-robin         smooth weighted round robin, as nginx does it: every
 *                      pick adds each weight to its current value, takes the
 *                      largest and subtracts the total (5,1,1: a a b a c a a).
 *  least-connections   the fewest attempts under way relative to the weight
 *                      (counted in this worker; ties by round robin order).
 *  consistent-hashing  a ring of 640 points per 100 weight, hashed from the
 *                      target's address: a key goes to the first point at or
 *                      after its hash, so a target that leaves moves only its
 *                      own keys.
 *  random-two          two targets drawn by weight; the one with fewer
 *                      attempts under way.
 *  latency             two targets drawn by weight; the lower peak-EWMA of
 *                      response times times (attempts under way + 1), as
 *                      Kong's and APISIX's ewma balancers do. */
#include "config.h"

#include <math.h>
#include <stdatomic.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "portico/runtime.h"
#include "portico/upstream.h"

#define EWMA_TAU_US 10e6   /* the EWMA forgets with a 10 s time constant */
#define FAILURE_US 1e6     /* a failed attempt counts as a 1 s response */
/* ring points per 100 weight: 4x ketama's 160, so that shares stay within
 * 2% of the weights (the spread of arc lengths falls as 1/sqrt(points)) */
#define PT_RING_POINTS 640
#define PT_RING_MAX 65536 /* points of one ring at most */

static uint64_t hash64(const char *p, size_t n)
{
    uint64_t h = pt_hash_bytes(PT_HASH_INIT, p, n);
    /* finalizer (from MurmurHash3): FNV alone clusters similar strings */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static int cmp_point(const void *a, const void *b)
{
    const pt_ring_point_t *x = a, *y = b;
    return x->hash < y->hash ? -1 : x->hash > y->hash ? 1 : (x->target > y->target) - (x->target < y->target);
}

int pt_balancer_init(pt_upstream_t *u)
{
    u->kind = u->conf ? u->conf->balancer : PT_BAL_RR;
    if (u->conf) {
        const typeof(u->conf->healthchecks.passive.unhealthy) *th = &u->conf->healthchecks.passive.unhealthy;
        u->passive = th->http_failures || th->tcp_failures || th->timeouts;
        u->active = u->conf->healthchecks.active.node != NULL;
    }
    if (RAND_bytes((unsigned char *)&u->rng, sizeof(u->rng)) != 1 || !u->rng)
        u->rng = 0x9e3779b97f4a7c15ull;
    return pt_balancer_ring(u);
}

/* A target on the ring: not a free slot, nor one the admin API removed
 * (drained and down ones keep their points, so that their keys come back
 * to them). */
static bool on_ring(const pt_target_t *t)
{
    return t->rt_state != PT_RT_FREE && t->rt_state != PT_RT_REMOVED;
}

int pt_balancer_ring(pt_upstream_t *u)
{
    free(u->ring);
    u->ring = NULL;
    u->nring = 0;
    if (u->kind != PT_BAL_HASH)
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < u->ntargets; i++)
        if (on_ring(&u->targets[i]))
            n += (size_t)(u->targets[i].full_weight * PT_RING_POINTS / 100) + 1;
    /* at most PT_RING_MAX points: beyond, every target's are scaled down
     * alike (the shares stay), so that a rebuild (a run-time change, in the
     * worker's loop) stays short whatever the weights */
    size_t total = n;
    if (n > PT_RING_MAX)
        n = PT_RING_MAX + u->ntargets;
    u->ring = malloc((n ? n : 1) * sizeof(pt_ring_point_t));
    if (!u->ring)
        return -1;
    for (size_t i = 0; i < u->ntargets; i++) {
        const pt_target_t *t = &u->targets[i];
        if (!on_ring(t))
            continue;
        size_t points = (size_t)(t->full_weight * PT_RING_POINTS / 100) + 1;
        if (total > PT_RING_MAX)
            points = points * PT_RING_MAX / total + 1;
        for (size_t k = 0; k < points; k++) {
            char key[128];
            /* the configured address: a host name keeps its points when it re-resolves */
            int len = snprintf(key, sizeof(key), "%s#%zu", t->conf ? t->conf->address : t->name, k);
            u->ring[u->nring++] = (pt_ring_point_t){hash64(key, (size_t)len), (uint32_t)i};
        }
    }
    qsort(u->ring, u->nring, sizeof(pt_ring_point_t), cmp_point);
    return 0;
}

static uint64_t next_rand(pt_upstream_t *u)
{
    uint64_t x = u->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return u->rng = x;
}

static size_t pick_rr(pt_upstream_t *u, const bool *tried)
{
    size_t best = 0;
    int64_t total = 0;
    bool found = false;
    for (int pass = 0; pass < 2 && !found; pass++) {
        total = 0;
        for (size_t i = 0; i < u->ntargets; i++) {
            pt_target_t *t = &u->targets[i];
            if (pass == 0 && tried && tried[i])
                continue; /* first look only at targets not tried yet */
            t->current += t->weight;
            total += t->weight;
            if (!found || t->current > u->targets[best].current) {
                best = i;
                found = true;
            }
        }
    }
    u->targets[best].current -= total;
    return best;
}

/* A target drawn at random by weight, among those not tried (all, if every
 * one was). */
static size_t draw(pt_upstream_t *u, const bool *tried, size_t not)
{
    int64_t total = 0;
    bool any = false;
    for (size_t i = 0; i < u->ntargets; i++)
        if (i != not && !(tried && tried[i]))
            total += u->targets[i].weight, any = true;
    for (size_t i = 0; !any && i < u->ntargets; i++)
        if (i != not)
            total += u->targets[i].weight;
    if (total <= 0)
        return not == 0 && u->ntargets > 1 ? 1 : 0;
    int64_t r = (int64_t)(next_rand(u) % (uint64_t)total);
    for (size_t i = 0; i < u->ntargets; i++) {
        if (i == not || (any && tried && tried[i]))
            continue;
        r -= u->targets[i].weight;
        if (r < 0)
            return i;
    }
    return 0;
}

/* Lower is better.  least-connections: in-flight per unit of weight, so
 * idle targets tie and share by weight.  random-two: in-flight alone (the
 * weights already decided the draw).  latency: the decayed peak-EWMA times
 * the in-flight attempts. */
/* Attempts under way on t: in every worker when shared, else in this one. */
static int64_t inflight(const pt_target_t *t)
{
    return t->shared ? atomic_load(&t->shared->inflight) : t->inflight;
}

static double load_of(const pt_target_t *t, int kind, int64_t now_us)
{
    if (kind == PT_BAL_LATENCY) {
        double decay = t->ewma_at_us ? exp(-(double)(now_us - t->ewma_at_us) / EWMA_TAU_US) : 0;
        return (t->ewma_us * decay + 1.0) * (double)(inflight(t) + 1);
    }
    if (kind == PT_BAL_RANDOM2)
        return (double)inflight(t);
    return (double)inflight(t) / (double)t->weight;
}

static size_t pick_hash(pt_upstream_t *u, const bool *tried, pt_str_t key)
{
    uint64_t h = hash64(key.p ? key.p : "", key.n);
    size_t lo = 0, hi = u->nring;
    while (lo < hi) { /* the first point at or after h */
        size_t mid = (lo + hi) / 2;
        if (u->ring[mid].hash < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t k = 0; k < u->nring; k++) {
        uint32_t t = u->ring[(lo + k) % u->nring].target;
        if (!tried || !tried[t])
            return t; /* a retry walks on to the next target on the ring */
    }
    return u->ring[lo % u->nring].target;
}

static size_t pick_kind(pt_upstream_t *u, const bool *tried, const pt_pick_ctx_t *ctx);

/* Slow start: a target back from a cool-down gets a growing share of its
 * weight (from a tenth) for its first `slow_start`. */
static void apply_slow_start(pt_upstream_t *u, int64_t now_ms)
{
    int64_t ramp = u->conf->healthchecks.passive.slow_start;
    if (!ramp)
        return;
    for (size_t i = 0; i < u->ntargets; i++) {
        pt_target_t *t = &u->targets[i];
        int64_t full = t->full_weight, since = t->shared ? atomic_load(&t->shared->up_since_ms) : 0;
        if (since && now_ms - since < ramp) {
            int64_t w = full * (now_ms - since) / ramp;
            t->weight = w < full / 10 ? (full / 10 ? full / 10 : 1) : w;
        } else {
            t->weight = full;
        }
    }
}

/* A pick that can only land on a target in service (excluded: those the
 * admin API drained, downed or removed), when another choice said no
 * more than "not tried yet". */
static size_t pick_in_service(pt_upstream_t *u, const bool *excluded, const pt_pick_ctx_t *ctx)
{
    if (u->kind == PT_BAL_HASH && u->nring)
        return pick_hash(u, excluded, ctx ? ctx->key : PT_STR_NULL); /* the next one on the ring */
    return pick_rr(u, excluded);
}

size_t pt_balancer_pick(pt_upstream_t *u, const bool *tried, const pt_pick_ctx_t *ctx)
{
    if (pt_runtime_stale(u))
        pt_runtime_sync(u);
    bool health = (u->passive || u->active || u->unresolved) && ctx && ctx->now_us;
    if (!health && !u->rt_excluded)
        return pick_kind(u, tried, ctx);
    /* a target that is down, or has no address yet, counts as tried; one
     * out of service (run-time state) is never taken */
    int64_t now_ms = health ? ctx->now_us / 1000 : 0;
    bool skip[u->ntargets], usable_only[u->ntargets], out[u->ntargets];
    size_t up = 0, usable = 0;
    for (size_t i = 0; i < u->ntargets; i++) {
        out[i] = u->targets[i].rt_state != PT_RT_UP;
        bool res = !out[i] && (!health || u->targets[i].addrlen != 0);
        bool ok = res && (!health || pt_health_up(u, i, now_ms));
        usable += res;
        up += ok;
        skip[i] = !ok || (tried && tried[i]);
        usable_only[i] = !res || (tried && tried[i]);
    }
    size_t idx;
    if (!up) {
        if (!usable || u->conf->when_all_down == 0)
            return PT_PICK_NONE;
        idx = pick_kind(u, usable_only, ctx); /* try them anyway */
    } else {
        if (health)
            apply_slow_start(u, now_ms);
        idx = pick_kind(u, skip, ctx);
    }
    return out[idx] ? pick_in_service(u, out, ctx) : idx;
}

static size_t pick_kind(pt_upstream_t *u, const bool *tried, const pt_pick_ctx_t *ctx)
{
    if (u->ntargets == 1)
        return 0;
    switch (u->kind) {
    case PT_BAL_HASH:
        if (u->nring)
            return pick_hash(u, tried, ctx ? ctx->key : PT_STR_NULL);
        return pick_rr(u, tried);
    case PT_BAL_LEASTCONN: {
        /* the least loaded; among equals, take turns by weight */
        double min = -1;
        bool any_untried = false;
        for (size_t i = 0; i < u->ntargets; i++)
            any_untried |= !(tried && tried[i]);
        for (size_t i = 0; i < u->ntargets; i++) {
            if (any_untried && tried && tried[i])
                continue;
            double l = load_of(&u->targets[i], u->kind, 0);
            if (min < 0 || l < min)
                min = l;
        }
        bool skip[u->ntargets];
        for (size_t i = 0; i < u->ntargets; i++)
            skip[i] = (any_untried && tried && tried[i]) || load_of(&u->targets[i], u->kind, 0) > min;
        return pick_rr(u, skip);
    }
    case PT_BAL_RANDOM2:
    case PT_BAL_LATENCY: {
        size_t a = draw(u, tried, u->ntargets), b = draw(u, tried, a);
        int64_t now = ctx ? ctx->now_us : 0;
        return load_of(&u->targets[b], u->kind, now) < load_of(&u->targets[a], u->kind, now) ? b : a;
    }
    default:
        return pick_rr(u, tried);
    }
}

void pt_balancer_start(pt_upstream_t *u, size_t idx)
{
    pt_target_t *t = &u->targets[idx];
    t->inflight++;
    if (t->shared) {
        atomic_fetch_add(&t->shared->inflight, 1);
        atomic_fetch_add(&t->shared->column[u->column], 1);
    }
}

void pt_balancer_done(pt_upstream_t *u, size_t idx, int64_t latency_us, int64_t now_us)
{
    pt_target_t *t = &u->targets[idx];
    if (t->inflight > 0) {
        t->inflight--;
        if (t->shared) {
            atomic_fetch_sub(&t->shared->inflight, 1);
            atomic_fetch_sub(&t->shared->column[u->column], 1);
        }
    }
    if (latency_us == PT_NO_SAMPLE)
        return;
    double sample = latency_us < 0 ? FAILURE_US : (double)latency_us;
    double decay = t->ewma_at_us ? exp(-(double)(now_us - t->ewma_at_us) / EWMA_TAU_US) : 0;
    /* peak-EWMA: a slower answer is taken at once, a faster one gradually */
    t->ewma_us = sample > t->ewma_us ? sample : t->ewma_us * decay + sample * (1 - decay);
    t->ewma_at_us = now_us;
}
