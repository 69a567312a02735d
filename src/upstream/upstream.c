#include "config.h"

#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/upstream.h"
#include "portico/worker.h"
#include "portico/zone.h"

static size_t zone_slots(pt_zone_t *z)
{
    return pt_zone_size(z) / sizeof(pt_target_shared_t);
}

pt_target_shared_t *pt_upstreams_slot(pt_zone_t *z, const char *addr, bool claim)
{
    return pt_zone_slot(z, sizeof(pt_target_shared_t), sizeof(((pt_target_shared_t *)0)->addr), addr, claim);
}

pt_zone_t *pt_upstreams_zone(const pt_config_t *c)
{
    size_t targets = 0;
    for (size_t i = 0; i < c->upstreams.n; i++)
        targets += PT_LIST_AT(c->upstreams, pt_upstream_conf_t, i)->targets.n;
    size_t slots = 64;
    while (slots < targets * 2)
        slots *= 2;
    pt_zone_t *z = pt_zone_get("upstream-targets", slots * sizeof(pt_target_shared_t));
    if (!z)
        return NULL;
    pt_zone_lock(z);
    for (size_t i = 0; i < c->upstreams.n; i++) {
        const pt_upstream_conf_t *u = PT_LIST_AT(c->upstreams, pt_upstream_conf_t, i);
        for (size_t k = 0; k < u->targets.n; k++) {
            char name[80];
            const pt_target_conf_t *t = PT_LIST_AT(u->targets, pt_target_conf_t, k);
            if (!t->addr.len)
                continue; /* resolved by the workers: they claim its slot */
            pt_addr_format((const struct sockaddr *)&t->addr.ss, name, sizeof(name));
            pt_upstreams_slot(z, name, true);
        }
    }
    pt_zone_unlock(z);
    return z;
}

void pt_upstreams_forget_column(pt_zone_t *z, int column)
{
    if (!z || column < 0)
        return;
    pt_target_shared_t *v = pt_zone_data(z);
    for (size_t i = 0; i < zone_slots(z); i++) {
        int64_t mine = atomic_exchange(&v[i].column[column % PT_SHARED_COLUMNS], 0);
        if (mine)
            atomic_fetch_sub(&v[i].inflight, mine);
    }
}

pt_upstream_t *pt_upstreams_build(const pt_config_t *c, pt_zone_t *z, int column)
{
    pt_upstream_t *v = calloc(c->upstreams.n ? c->upstreams.n : 1, sizeof(*v));
    if (!v)
        return NULL;
    for (size_t i = 0; i < c->upstreams.n; i++) {
        const pt_upstream_conf_t *uc = PT_LIST_AT(c->upstreams, pt_upstream_conf_t, i);
        pt_upstream_t *u = &v[i];
        u->conf = uc;
        u->ntargets = uc->targets.n;
        u->targets = calloc(u->ntargets, sizeof(pt_target_t));
        if (!u->targets) {
            pt_upstreams_free(v, i);
            return NULL;
        }
        for (size_t k = 0; k < u->ntargets; k++) {
            const pt_target_conf_t *tc = PT_LIST_AT(uc->targets, pt_target_conf_t, k);
            pt_target_t *t = &u->targets[k];
            t->conf = tc;
            t->weight = tc->weight;
            memcpy(&t->addr, &tc->addr.ss, sizeof(t->addr));
            t->addrlen = tc->addr.len;
            if (t->addrlen) {
                pt_addr_format((const struct sockaddr *)&t->addr, t->name, sizeof(t->name));
                t->shared = pt_upstreams_slot(z, t->name, false);
            } else {
                snprintf(t->name, sizeof(t->name), "%s", tc->address); /* until it resolves */
                u->unresolved++;
            }
        }
        u->column = column % PT_SHARED_COLUMNS;
        u->zone = z;
        if (pt_balancer_init(u) < 0) {
            pt_upstreams_free(v, i + 1);
            return NULL;
        }
    }
    return v;
}

bool pt_upstreams_readdress(pt_upstream_t *u, pt_target_t *t, const struct sockaddr *sa, socklen_t len)
{
    if (t->addrlen == len && memcmp(&t->addr, sa, len) == 0)
        return false;
    char name[80];
    pt_addr_format(sa, name, sizeof(name));
    pt_target_shared_t *old = t->shared, *now = NULL;
    if (u->zone) {
        pt_zone_lock(u->zone);
        now = pt_upstreams_slot(u->zone, name, true);
        pt_zone_unlock(u->zone);
    }
    if (t->inflight && old != now) { /* this worker's attempts under way move with the target */
        if (old) {
            atomic_fetch_sub(&old->inflight, t->inflight);
            atomic_fetch_sub(&old->column[u->column], t->inflight);
        }
        if (now) {
            atomic_fetch_add(&now->inflight, t->inflight);
            atomic_fetch_add(&now->column[u->column], t->inflight);
        }
    }
    if (!t->addrlen && u->unresolved)
        u->unresolved--;
    t->shared = now;
    memcpy(&t->addr, sa, len);
    t->addrlen = len;
    snprintf(t->name, sizeof(t->name), "%s", name);
    while (t->idle) /* connections to the old address */
        pt_upconn_close(t->idle);
    return true;
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
        }
        free(v[i].targets);
        free(v[i].ring);
    }
    free(v);
}
