/* Run-time changes to upstream targets: the shared table (made by the
 * master), the changes the admin API makes to it, how a worker applies
 * them to its view of an upstream, and what a reload does with them.
 *
 * A worker's view keeps its indexes: the file's targets stay at
 * targets[0..nconf) (a removed one is only marked), and one added takes
 * a slot after them, kept while attempts on it are under way once it is
 * deleted.  So the indexes that attempts, retries' `tried` arrays and
 * connections hold stay valid. */
#include "config.h"

#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/log.h"
#include "portico/runtime.h"
#include "portico/upstream.h"
#include "portico/value.h"
#include "portico/zone.h"

typedef struct entry {
    char upstream[PT_RT_NAME_MAX]; /* "": a free entry */
    char key[PT_RT_ADDR_MAX];
    int32_t weight; /* 0: the file's (a target of the file) */
    uint8_t state;  /* PT_RT_UP, _DRAIN, _DOWN */
    uint8_t added;  /* not in the file: added through the API */
    uint8_t removed; /* a target of the file, deleted through the API */
} entry_t;

typedef struct table {
    _Atomic uint64_t version;
    uint32_t n; /* entries [0, n) may be in use */
    entry_t e[PT_RT_ENTRIES];
} table_t;

const char *const pt_rt_state_names[] = {"up", "drain", "down", "removed", "free"};
const _Atomic uint64_t *pt_runtime_version;
static pt_zone_t *zone;

static table_t *table(void)
{
    return zone ? pt_zone_data(zone) : NULL;
}

int pt_runtime_prepare(void)
{
    pt_zone_t *z = pt_zone_get("upstream-runtime", sizeof(table_t));
    if (!z)
        return -1;
    zone = z;
    pt_runtime_version = &((table_t *)pt_zone_data(z))->version;
    return 0;
}

/* ---- keys ---- */

int pt_runtime_key(const char *addr, char *key, size_t size, bool *numeric)
{
    size_t n = strlen(addr);
    *numeric = false;
    if (!n || n >= size || n >= PT_RT_ADDR_MAX)
        return -1;
    for (const char *p = addr; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '/' || *p == '"' || *p == '\\')
            return -1;
    pt_addr_t a;
    /* an IP address with its port: not "*:80", ":80" nor "80", which
     * pt_value_addr takes for a listener's wildcard */
    if ((addr[0] == '[' || (addr[0] >= '0' && addr[0] <= '9')) && strchr(addr, ':') &&
        pt_value_addr(addr, &a, 0) == NULL) {
        pt_addr_format((const struct sockaddr *)&a.ss, key, size);
        *numeric = true;
        return 0;
    }
    memcpy(key, addr, n + 1);
    return 0;
}

void pt_runtime_conf_key(const pt_target_conf_t *tc, char *key, size_t size)
{
    if (tc->addr.text) /* numeric (a host name's addr is what it resolved to at load) */
        pt_addr_format((const struct sockaddr *)&tc->addr.ss, key, size);
    else
        snprintf(key, size, "%s", tc->address);
}

static const pt_target_conf_t *conf_target(const pt_upstream_conf_t *uc, const char *key)
{
    for (size_t k = 0; k < uc->targets.n; k++) {
        char ck[PT_RT_ADDR_MAX];
        const pt_target_conf_t *tc = PT_LIST_AT(uc->targets, pt_target_conf_t, k);
        pt_runtime_conf_key(tc, ck, sizeof(ck));
        if (strcmp(ck, key) == 0)
            return tc;
    }
    return NULL;
}

/* ---- the table, under the zone's lock ---- */

static entry_t *find(table_t *tb, const char *up, const char *key)
{
    for (uint32_t i = 0; i < tb->n; i++)
        if (tb->e[i].upstream[0] && strcmp(tb->e[i].upstream, up) == 0 && strcmp(tb->e[i].key, key) == 0)
            return &tb->e[i];
    return NULL;
}

static entry_t *new_entry(table_t *tb, const char *up, const char *key)
{
    entry_t *e = NULL;
    for (uint32_t i = 0; i < tb->n && !e; i++)
        if (!tb->e[i].upstream[0])
            e = &tb->e[i];
    if (!e && tb->n < PT_RT_ENTRIES)
        e = &tb->e[tb->n++];
    if (!e)
        return NULL;
    *e = (entry_t){.state = PT_RT_UP};
    snprintf(e->upstream, sizeof(e->upstream), "%s", up);
    snprintf(e->key, sizeof(e->key), "%s", key);
    return e;
}

static size_t count_added(const table_t *tb, const char *up)
{
    size_t n = 0;
    for (uint32_t i = 0; i < tb->n; i++)
        n += tb->e[i].upstream[0] && tb->e[i].added && strcmp(tb->e[i].upstream, up) == 0;
    return n;
}

/* What target key of uc is now (tc: the file's target, or NULL). */
static pt_rt_view_t view(const pt_target_conf_t *tc, const entry_t *e)
{
    if (tc)
        return (pt_rt_view_t){e && e->weight ? e->weight : tc->weight,
                              e && e->removed ? PT_RT_REMOVED : e ? e->state : PT_RT_UP, false};
    if (e && e->added)
        return (pt_rt_view_t){e->weight, e->state, true};
    return (pt_rt_view_t){0, PT_RT_REMOVED, false};
}

/* An entry of a file target that changes nothing goes. */
static void tidy_entry(const pt_target_conf_t *tc, entry_t *e)
{
    if (tc && e->weight == tc->weight)
        e->weight = 0;
    if (tc && !e->weight && e->state == PT_RT_UP && !e->removed)
        e->upstream[0] = '\0';
}

static int apply_op(table_t *tb, const pt_upstream_conf_t *uc, const pt_target_conf_t *tc, const char *key, int op,
                    int64_t weight, int state)
{
    entry_t *e = find(tb, uc->name, key);
    bool there = view(tc, e).state != PT_RT_REMOVED;
    if (op == PT_RT_ADD && there)
        return PT_RT_EXISTS;
    if (op != PT_RT_ADD && !there)
        return PT_RT_NO_TARGET;
    if (op == PT_RT_DELETE && !tc) {
        e->upstream[0] = '\0';
        return 0;
    }
    if (op == PT_RT_ADD && !tc && count_added(tb, uc->name) >= PT_RT_MAX_ADDED)
        return PT_RT_TOO_MANY;
    if (!e && !(e = new_entry(tb, uc->name, key)))
        return PT_RT_ZONE_FULL;
    if (op != PT_RT_PATCH) { /* a deletion, or a target (back) in service */
        e->removed = op == PT_RT_DELETE;
        e->added = op == PT_RT_ADD && !tc;
        e->state = PT_RT_UP;
        /* no weight: 100 for a new target, the file's for one put back */
        e->weight = op == PT_RT_DELETE ? 0 : weight ? (int32_t)weight : tc ? 0 : 100;
    } else {
        if (weight > 0)
            e->weight = (int32_t)weight;
        if (state >= 0)
            e->state = (uint8_t)state;
    }
    tidy_entry(tc, e);
    return 0;
}

int pt_runtime_change(const pt_upstream_conf_t *uc, const char *key, int op, int64_t weight, int state,
                      pt_rt_view_t *before, pt_rt_view_t *after)
{
    table_t *tb = table();
    if (!tb)
        return PT_RT_NO_ZONE;
    if (strlen(uc->name) >= PT_RT_NAME_MAX)
        return PT_RT_LONG_NAME;
    const pt_target_conf_t *tc = conf_target(uc, key);
    pt_zone_lock(zone);
    *before = view(tc, find(tb, uc->name, key));
    int rc = apply_op(tb, uc, tc, key, op, weight, state);
    *after = view(tc, find(tb, uc->name, key));
    if (!rc)
        atomic_fetch_add_explicit(&tb->version, 1, memory_order_release);
    pt_zone_unlock(zone);
    return rc;
}

size_t pt_runtime_used(void)
{
    table_t *tb = table();
    size_t n = 0;
    for (uint32_t i = 0; tb && i < tb->n && i < PT_RT_ENTRIES; i++)
        n += tb->e[i].upstream[0] != '\0';
    return n;
}

/* ---- a worker's view ---- */

/* Sets t's weight and state; one out of service keeps no idle connection
 * when it is down or gone (a drained one finishes what it has). */
static void set_target(pt_target_t *t, int64_t weight, int state)
{
    t->full_weight = weight;
    t->weight = weight; /* slow start, when on, ramps it again at the next pick */
    t->rt_state = state;
    if (state == PT_RT_DOWN || state == PT_RT_REMOVED)
        while (t->idle)
            pt_upconn_close(t->idle);
}

/* A slot for the added target `key`: the one that has it, or a free one
 * (one deleted earlier whose attempts are over is freed first).  NULL
 * when every slot holds a target with attempts under way. */
static pt_target_t *slot_for(pt_upstream_t *u, const char *key, bool *fresh)
{
    pt_target_t *spare = NULL;
    *fresh = false;
    for (size_t k = u->nconf; k < u->ntargets; k++) {
        pt_target_t *t = &u->targets[k];
        if (t->rt_state != PT_RT_FREE && strcmp(t->name, key) == 0)
            return t;
        if (!spare && (t->rt_state == PT_RT_FREE || (t->rt_state == PT_RT_REMOVED && !t->inflight)))
            spare = t;
    }
    if (!spare && u->ntargets < u->cap) {
        spare = &u->targets[u->ntargets++];
        *spare = (pt_target_t){.weight = 1, .full_weight = 1, .rt_state = PT_RT_FREE, .rt_added = true};
    }
    if (!spare)
        return NULL;
    if (spare->rt_state != PT_RT_FREE)
        pt_upstreams_unbind(u, spare);
    *fresh = true;
    return spare;
}

/* False when it has no slot yet. */
static bool add_target(pt_upstream_t *u, const entry_t *e, bool *seen)
{
    bool fresh;
    pt_target_t *t = slot_for(u, e->key, &fresh);
    if (!t)
        return false;
    if (fresh) {
        pt_addr_t a;
        if (pt_value_addr(e->key, &a, 0) != NULL)
            return true; /* the API only adds numeric addresses */
        t->rt_added = true;
        t->inflight = 0;
        t->current = 0;
        pt_upstreams_readdress(NULL, u, t, (const struct sockaddr *)&a.ss, a.len);
        snprintf(t->name, sizeof(t->name), "%s", e->key);
    }
    seen[t - u->targets] = true;
    set_target(t, e->weight, e->state);
    return true;
}

/* Applies the entries of u (n of them) to u's targets.  False when an
 * added target found no slot: every spare one holds a deleted target
 * with attempts under way. */
static bool apply(pt_upstream_t *u, const entry_t *es, size_t n)
{
    bool placed = true;
    bool seen[u->cap];
    memset(seen, 0, sizeof(seen));
    for (size_t k = 0; k < u->nconf; k++) {
        pt_target_t *t = &u->targets[k];
        char key[PT_RT_ADDR_MAX];
        pt_runtime_conf_key(t->conf, key, sizeof(key));
        /* an entry added while an older file did not list the target (a
         * change that straddled a reload) is this target's change too */
        const entry_t *e = NULL;
        for (size_t i = 0; i < n; i++)
            if (strcmp(es[i].key, key) == 0 && (!e || e->added))
                e = &es[i];
        pt_rt_view_t v = view(t->conf, e);
        set_target(t, v.weight, v.state);
    }
    for (size_t i = 0; i < n; i++)
        if (es[i].added && !conf_target(u->conf, es[i].key))
            placed &= add_target(u, &es[i], seen);
    for (size_t k = u->nconf; k < u->ntargets; k++) {
        pt_target_t *t = &u->targets[k];
        if (seen[k] || t->rt_state == PT_RT_FREE)
            continue;
        if (t->inflight) {
            set_target(t, t->full_weight, PT_RT_REMOVED); /* freed once its attempts are over */
        } else {
            pt_upstreams_unbind(u, t);
            set_target(t, 1, PT_RT_FREE);
        }
    }
    u->rt_excluded = 0;
    for (size_t k = 0; k < u->ntargets; k++) {
        u->rt_excluded += u->targets[k].rt_state != PT_RT_UP;
        u->targets[k].current = 0; /* round robin starts afresh over the new set */
    }
    if (pt_balancer_ring(u) < 0)
        pt_log_error("upstream \"%s\": out of memory for the hashing ring", u->conf->name);
    return placed;
}

void pt_runtime_sync(pt_upstream_t *u)
{
    table_t *tb = table();
    if (!tb || !pt_runtime_stale(u))
        return;
    pt_zone_lock(zone);
    size_t n = 0;
    for (uint32_t i = 0; i < tb->n; i++)
        n += tb->e[i].upstream[0] && strcmp(tb->e[i].upstream, u->conf->name) == 0;
    entry_t *es = n ? malloc(n * sizeof(*es)) : NULL;
    if (n && !es) {
        pt_zone_unlock(zone);
        return; /* tried again at the next pick */
    }
    n = 0;
    for (uint32_t i = 0; i < tb->n; i++)
        if (tb->e[i].upstream[0] && strcmp(tb->e[i].upstream, u->conf->name) == 0)
            es[n++] = tb->e[i];
    u->rt_seen = atomic_load_explicit(&tb->version, memory_order_acquire);
    pt_zone_unlock(zone);
    uint64_t digest = 1469598103934665603ull ^ n; /* FNV-1a over the entries: the same ones, nothing to do */
    for (size_t i = 0; i < n * sizeof(*es); i++)
        digest = (digest ^ ((const uint8_t *)es)[i]) * 1099511628211ull;
    if (digest != u->rt_digest || !digest) {
        u->rt_digest = digest;
        if (!apply(u, es, n)) {
            u->rt_seen = UINT64_MAX; /* again at the next pick, until a slot is free */
            u->rt_digest = 0;
        }
    }
    free(es);
}

/* ---- reloads ---- */

static void describe(char *buf, size_t size, size_t *len, const entry_t *e)
{
    if (*len >= size)
        return;
    int w;
    if (e->added)
        w = snprintf(buf + *len, size - *len, "%s%s %s added", *len ? ", " : "", e->upstream, e->key);
    else if (e->removed)
        w = snprintf(buf + *len, size - *len, "%s%s %s removed", *len ? ", " : "", e->upstream, e->key);
    else if (e->weight && e->state != PT_RT_UP)
        w = snprintf(buf + *len, size - *len, "%s%s %s weight %d, %s", *len ? ", " : "", e->upstream, e->key,
                     (int)e->weight, pt_rt_state_names[e->state]);
    else if (e->weight)
        w = snprintf(buf + *len, size - *len, "%s%s %s weight %d", *len ? ", " : "", e->upstream, e->key,
                     (int)e->weight);
    else
        w = snprintf(buf + *len, size - *len, "%s%s %s %s", *len ? ", " : "", e->upstream, e->key,
                     pt_rt_state_names[e->state]);
    *len += w > 0 ? (size_t)w : 0;
}

static const pt_upstream_conf_t *conf_upstream(const pt_config_t *c, const char *name)
{
    for (size_t i = 0; i < c->upstreams.n; i++) {
        const pt_upstream_conf_t *uc = PT_LIST_AT(c->upstreams, pt_upstream_conf_t, i);
        if (strcmp(uc->name, name) == 0)
            return uc;
    }
    return NULL;
}

/* With runtime_changes: keep, does entry e still apply to c?  Its
 * upstream must still be there; a weight, a state or a removal needs the
 * target in the file; an added target stays added (the file's own when
 * the file now lists it: then its weight and state carry over to it). */
static bool still_applies(const pt_config_t *c, entry_t *e)
{
    const pt_upstream_conf_t *uc = conf_upstream(c, e->upstream);
    if (!uc)
        return false;
    const pt_target_conf_t *tc = conf_target(uc, e->key);
    if (e->added) {
        if (tc) {
            e->added = 0;
            tidy_entry(tc, e);
        }
        return true;
    }
    if (!tc)
        return false;
    tidy_entry(tc, e);
    return e->upstream[0] != '\0';
}

const char *pt_runtime_reloaded(const pt_config_t *c)
{
    static char note[512];
    table_t *tb = table();
    note[0] = '\0';
    if (!tb)
        return note;
    bool keep = c->admin.runtime_changes == PT_RTC_KEEP;
    char list[400] = "";
    size_t len = 0, n = 0;
    pt_zone_lock(zone);
    for (uint32_t i = 0; i < tb->n; i++) {
        entry_t *e = &tb->e[i];
        if (!e->upstream[0])
            continue;
        entry_t was = *e;
        if (keep && still_applies(c, e))
            continue;
        describe(list, sizeof(list), &len, &was);
        n++;
        e->upstream[0] = '\0';
    }
    if (n) {
        tb->n = 0;
        for (uint32_t i = 0; i < PT_RT_ENTRIES; i++) /* the last in use ends the table */
            if (tb->e[i].upstream[0])
                tb->n = i + 1;
    }
    atomic_fetch_add_explicit(&tb->version, 1, memory_order_release);
    pt_zone_unlock(zone);
    if (n)
        snprintf(note, sizeof(note), "; %zu runtime change%s %s: %s%s", n, n == 1 ? "" : "s",
                 keep ? "dropped (no longer in the file)" : "reverted", list, len >= sizeof(list) ? "..." : "");
    return note;
}
