#include "config.h"

#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/assert.h"
#include "portico/log.h"
#include "portico/runtime.h"
#include "portico/secret.h"
#include "portico/upstream.h"
#include "portico/worker.h"
#include "portico/zone.h"

#define SLOT sizeof(pt_target_shared_t), sizeof(((pt_target_shared_t *)0)->addr)

static size_t zone_slots(pt_zone_t *z)
{
    return pt_zone_size(z) / sizeof(pt_target_shared_t);
}

static bool has_users(const pt_target_shared_t *s)
{
    for (size_t i = 0; i < PT_SHARED_COLUMNS / 64; i++)
        if (atomic_load(&s->users[i]))
            return true;
    return false;
}

/* No worker points to it and the configuration does not name it. */
static bool is_idle(const void *slot)
{
    const pt_target_shared_t *s = slot;
    return !s->pinned && !has_users(s);
}

pt_target_shared_t *pt_upstreams_slot(pt_zone_t *z, const char *addr, bool claim)
{
    return pt_zone_slot(z, SLOT, addr, claim);
}

/* Under the lock: the worker of `column` points a target to addr's slot,
 * claimed when new.  NULL when the zone is full. */
static pt_target_shared_t *claim_for(pt_zone_t *z, const char *addr, int column)
{
    pt_target_shared_t *s = pt_zone_claim(z, SLOT, addr, is_idle);
    if (s)
        atomic_fetch_or(&s->users[column / 64], 1ull << (column % 64));
    return s;
}

/* Under the lock: the worker of `column` no longer points any target to s. */
static void leave(pt_zone_t *z, pt_target_shared_t *s, int column)
{
    atomic_fetch_and(&s->users[column / 64], ~(1ull << (column % 64)));
    if (is_idle(s))
        pt_zone_release(z, s, sizeof(*s));
}

/* Slots for a configuration: twice what may be in use at once, so that
 * runs stay short.  A numeric target needs one; a host name one for its
 * address at load, and two for the addresses the workers hold, which
 * differ for a while when it resolves elsewhere (each worker asks on its
 * own). */
static size_t zone_size(const pt_config_t *c)
{
    size_t need = 0;
    for (size_t i = 0; i < c->upstreams.n; i++) {
        const pt_upstream_conf_t *u = PT_LIST_AT(c->upstreams, pt_upstream_conf_t, i);
        for (size_t k = 0; k < u->targets.n; k++)
            need += PT_LIST_AT(u->targets, pt_target_conf_t, k)->addr.text ? 1 : 3;
    }
    size_t slots = 64;
    while (slots < need * 2)
        slots *= 2;
    return slots * sizeof(pt_target_shared_t);
}

/* What a target's health is made of; not its attempts under way, which
 * the workers of each generation count in their own zone. */
static void carry_health(pt_target_shared_t *to, const pt_target_shared_t *from)
{
    atomic_store(&to->http_failures, atomic_load(&from->http_failures));
    atomic_store(&to->tcp_failures, atomic_load(&from->tcp_failures));
    atomic_store(&to->timeouts, atomic_load(&from->timeouts));
    atomic_store(&to->down_until_ms, atomic_load(&from->down_until_ms));
    atomic_store(&to->up_since_ms, atomic_load(&from->up_since_ms));
    atomic_store(&to->active_down, atomic_load(&from->active_down));
    atomic_store(&to->last_probe_status, atomic_load(&from->last_probe_status));
    atomic_store(&to->probes_ok, atomic_load(&from->probes_ok));
    atomic_store(&to->probes_failed, atomic_load(&from->probes_failed));
    atomic_store(&to->passive_failures, atomic_load(&from->passive_failures));
    atomic_store(&to->marked_down, atomic_load(&from->marked_down));
}

/* Under z's lock: the health of every address in use in the zone z
 * replaces goes into z, by address.  The addresses z's configuration names
 * have their slots already; the others (what names resolved to) are
 * carried while z stays at most half full, to be freed once the old
 * generation is gone if no new worker took them up. */
static void carry(pt_zone_t *z, pt_zone_t *old)
{
    pt_zone_lock(old);
    for (size_t i = 0; i < zone_slots(old); i++) {
        const pt_target_shared_t *from = pt_zone_slot_at(old, sizeof(pt_target_shared_t), i);
        if (!from || is_idle(from))
            continue;
        pt_target_shared_t *to = pt_upstreams_slot(z, from->addr, false);
        pt_zone_stats_t st;
        pt_zone_stats(z, sizeof(pt_target_shared_t), &st);
        if (!to && st.used * 2 < st.slots)
            to = pt_upstreams_slot(z, from->addr, true);
        if (to)
            carry_health(to, from);
    }
    pt_zone_unlock(old);
}

pt_zone_t *pt_upstreams_zone(const pt_config_t *c)
{
    pt_zone_t *z = pt_zone_get("upstream-targets", zone_size(c));
    if (!z || pt_runtime_prepare() < 0) /* the admin API's changes: one zone, kept */
        return NULL;
    pt_zone_lock(z);
    for (size_t i = 0; i < zone_slots(z); i++) { /* the last configuration's */
        pt_target_shared_t *s = pt_zone_slot_at(z, sizeof(pt_target_shared_t), i);
        if (s)
            s->pinned = 0;
    }
    for (size_t i = 0; i < c->upstreams.n; i++) {
        const pt_upstream_conf_t *u = PT_LIST_AT(c->upstreams, pt_upstream_conf_t, i);
        for (size_t k = 0; k < u->targets.n; k++) {
            char name[80];
            const pt_target_conf_t *t = PT_LIST_AT(u->targets, pt_target_conf_t, k);
            if (!t->addr.len)
                continue; /* resolved by the workers: they claim its slot */
            pt_addr_format((const struct sockaddr *)&t->addr.ss, name, sizeof(name));
            pt_target_shared_t *s = pt_zone_claim(z, SLOT, name, is_idle);
            if (s)
                s->pinned = 1;
        }
    }
    pt_zone_t *old = pt_zone_reused(z) ? NULL : pt_zone_replaced(z);
    if (old)
        carry(z, old);
    pt_zone_unlock(z);
    return z;
}

void pt_upstreams_forget_column(pt_zone_t *z, int column)
{
    if (!z || column < 0)
        return;
    PT_ASSERT(column < PT_SHARED_COLUMNS);
    /* Without the lock, which a stopped worker may hold: atomics only, and
     * freeing is left to those who take it.  The bit goes last, so the
     * slot is not freed under the counts being taken back.  Loads first:
     * writing to every slot would touch every page of the zone. */
    uint64_t bit = 1ull << (column % 64);
    for (size_t i = 0; i < zone_slots(z); i++) {
        pt_target_shared_t *s = (pt_target_shared_t *)((char *)pt_zone_data(z) + i * sizeof(*s));
        if (atomic_load(&s->column[column])) {
            int64_t mine = atomic_exchange(&s->column[column], 0);
            atomic_fetch_sub(&s->inflight, mine);
        }
        if (atomic_load(&s->users[column / 64]) & bit)
            atomic_fetch_and(&s->users[column / 64], ~bit);
    }
}

void pt_upstreams_tidy(pt_zone_t *z)
{
    if (!z)
        return;
    pt_zone_lock(z);
    size_t freed = 0;
    for (size_t i = 0; i < zone_slots(z); i++) {
        pt_target_shared_t *s = pt_zone_slot_at(z, sizeof(pt_target_shared_t), i);
        if (s && is_idle(s)) {
            pt_zone_release(z, s, sizeof(*s));
            freed++;
        }
    }
    pt_zone_unlock(z);
    if (freed)
        pt_log_info("shared zone \"upstream-targets\": %zu slot%s no worker uses freed", freed, freed == 1 ? "" : "s");
}

/* Sets t->name and, when a value from ${NAME} shows in it, the masked
 * copy that the access log prints (error lines and /status mask their
 * own); worked out here, once, rather than on every request. */
static void name_target(pt_target_t *t, const char *name)
{
    snprintf(t->name, sizeof(t->name), "%s", name);
    free(t->log_name);
    t->log_name = NULL;
    if (pt_secret_count()) {
        char buf[sizeof(t->name) + 64];
        pt_secret_mask(t->name, strlen(t->name), buf, sizeof(buf));
        if (strcmp(buf, t->name) != 0)
            t->log_name = strdup(buf); /* out of memory: the name itself */
    }
}

pt_upstream_t *pt_upstreams_build(const pt_config_t *c, pt_zone_t *z, int column)
{
    PT_ASSERT(!z || (column >= 0 && column < PT_SHARED_COLUMNS));
    pt_upstream_t *v = calloc(c->upstreams.n ? c->upstreams.n : 1, sizeof(*v));
    if (!v)
        return NULL;
    for (size_t i = 0; i < c->upstreams.n; i++) {
        const pt_upstream_conf_t *uc = PT_LIST_AT(c->upstreams, pt_upstream_conf_t, i);
        pt_upstream_t *u = &v[i];
        u->conf = uc;
        u->ntargets = u->nconf = uc->targets.n;
        /* room for the targets the admin API may add, and a few more: one
         * removed keeps its slot while attempts on it finish.  Slots past
         * ntargets are set up when taken (runtime.c), so calloc's pages
         * of the unused ones need not be touched. */
        u->cap = u->nconf + PT_RT_MAX_ADDED + PT_RT_SPARE_SLOTS;
        u->rt_seen = UINT64_MAX; /* the run-time changes are applied on the first pick */
        u->all = v;
        u->nall = c->upstreams.n;
        u->targets = calloc(u->cap, sizeof(pt_target_t));
        if (!u->targets) {
            pt_upstreams_free(v, i);
            return NULL;
        }
        for (size_t k = 0; k < u->ntargets; k++) {
            const pt_target_conf_t *tc = PT_LIST_AT(uc->targets, pt_target_conf_t, k);
            pt_target_t *t = &u->targets[k];
            t->conf = tc;
            t->weight = t->full_weight = tc->weight;
            memcpy(&t->addr, &tc->addr.ss, sizeof(t->addr));
            t->addrlen = tc->addr.len;
            if (t->addrlen) {
                char name[sizeof(t->name)];
                pt_addr_format((const struct sockaddr *)&t->addr, name, sizeof(name));
                name_target(t, name);
                if (z) {
                    pt_zone_lock(z);
                    t->shared = claim_for(z, t->name, column);
                    pt_zone_unlock(z);
                }
            } else {
                name_target(t, tc->address); /* until it resolves */
                u->unresolved++;
            }
        }
        u->column = column;
        u->zone = z;
        if (pt_balancer_init(u) < 0) {
            pt_upstreams_free(v, i + 1);
            return NULL;
        }
    }
    return v;
}

/* Does another target of the worker (its upstreams: all[0..n)) point to s? */
static bool other_points_to(const pt_upstream_t *all, size_t n, const pt_target_t *t, const pt_target_shared_t *s)
{
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < all[i].ntargets; k++)
            if (&all[i].targets[k] != t && all[i].targets[k].shared == s)
                return true;
    return false;
}

bool pt_upstreams_readdress(pt_worker_t *w, pt_upstream_t *u, pt_target_t *t, const struct sockaddr *sa,
                            socklen_t len)
{
    (void)w; /* u->all: the worker's upstreams */
    bool same = t->addrlen == len && memcmp(&t->addr, sa, len) == 0;
    if (same && (t->shared || !u->zone))
        return false;
    char name[80];
    pt_addr_format(sa, name, sizeof(name));
    pt_target_shared_t *old = t->shared, *now = NULL;
    if (u->zone) {
        pt_zone_lock(u->zone);
        now = claim_for(u->zone, name, u->column);
        if (t->inflight && old != now) { /* this worker's attempts under way move with the target */
            if (old) {
                atomic_fetch_sub(&old->inflight, t->inflight);
                atomic_fetch_sub(&old->column[u->column], (int32_t)t->inflight);
            }
            if (now) {
                atomic_fetch_add(&now->inflight, t->inflight);
                atomic_fetch_add(&now->column[u->column], (int32_t)t->inflight);
            }
        }
        t->shared = now; /* before the look at the worker's other targets */
        if (old && old != now && !other_points_to(u->all, u->nall, t, old))
            leave(u->zone, old, u->column);
        pt_zone_unlock(u->zone);
    }
    t->shared = now;
    if (same)
        return false; /* bound again after the zone was full: no move */
    if (!t->addrlen && u->unresolved && !t->rt_added)
        u->unresolved--;
    memcpy(&t->addr, sa, len);
    t->addrlen = len;
    if (t->rt_added) /* its name is the key the API gave: no ${NAME} in it to mask */
        snprintf(t->name, sizeof(t->name), "%s", name);
    else
        name_target(t, name);
    while (t->idle) /* connections to the old address */
        pt_upconn_close(t->idle);
    return true;
}

void pt_upstreams_unbind(pt_upstream_t *u, pt_target_t *t)
{
    while (t->idle)
        pt_upconn_close(t->idle);
    if (t->tls_session)
        SSL_SESSION_free(t->tls_session);
    t->tls_session = NULL;
    if (u->zone && t->shared) {
        pt_zone_lock(u->zone);
        pt_target_shared_t *s = t->shared;
        t->shared = NULL;
        if (!other_points_to(u->all, u->nall, t, s))
            leave(u->zone, s, u->column);
        pt_zone_unlock(u->zone);
    }
    t->shared = NULL;
    t->addrlen = 0;
    t->name[0] = '\0';
    t->ewma_us = 0;
    t->ewma_at_us = 0;
    t->connects = t->reuses = 0;
}

pt_upstream_t *pt_worker_upstream(pt_worker_t *w, const pt_upstream_conf_t *uc)
{
    return &w->upstreams[uc - (const pt_upstream_conf_t *)w->conf->upstreams.v];
}

void pt_upstreams_free(pt_upstream_t *v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < v[i].ntargets; k++) {
            while (v[i].targets[k].idle)
                pt_upconn_close(v[i].targets[k].idle);
            if (v[i].targets[k].tls_session)
                SSL_SESSION_free(v[i].targets[k].tls_session);
            free(v[i].targets[k].log_name);
        }
        free(v[i].targets);
        free(v[i].ring);
    }
    free(v);
}
