/* The metrics zone: rows of counters, a block of them per worker (see
 * metrics.h).  The master owns the table of rows (which series each row
 * is) and copies it into the zone for the scrapes; the workers only add.
 *
 * The zone: a header, the rows' names, then blocks of rows.  Block 0 is
 * shared by workers that have none of their own (atomic adds make that
 * exact), block 1 is "retired" (what exited workers counted, folded in by
 * the master), blocks 2.. are the workers' own. */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "portico/assert.h"
#include "portico/filter.h"
#include "portico/http.h"
#include "portico/log.h"
#include "portico/metrics.h"
#include "portico/secret.h"
#include "portico/upstream.h"
#include "portico/zone.h"

#define LABEL_MAX PT_MX_LABEL_MAX /* bytes of a row's labels together; longer names are cut */
#define MAX_BLOCKS 1024
#define RETIRED 1
#define MAX_OLDER 4

typedef struct row_name {
    uint8_t kind;
    uint8_t n1, n2;
    char text[LABEL_MAX]; /* the first label, then the second */
} row_name_t;

struct pt_mx_zone {
    char name[32]; /* "metrics.N": each zone made has a name of its own */
    uint32_t cap, width, nblocks, nbuckets;
    double bounds[PT_MX_MAX_BUCKETS];
    _Atomic uint64_t seq;               /* odd while the master folds a block */
    _Atomic uint8_t live[MAX_BLOCKS];   /* a block a worker counts into (0 and 1 always) */
    struct pt_mx_zone *_Atomic older[MAX_OLDER]; /* zones replaced while workers still count into them */
    row_name_t *names;                  /* cap of them, in the zone */
    uint64_t *data;                     /* nblocks * cap * width words, in the zone */
};

pt_mx_t pt_mx;

/* ---- the master's table of rows ---- */

static struct {
    row_name_t *rows; /* cap of them */
    uint32_t *mark;   /* the preparation that last used each row */
    uint32_t cap, hw; /* rows in use are below hw */
    uint32_t need;    /* the rows of the configuration being prepared are below need */
    uint32_t marks;
    uint32_t serving_mark; /* the configuration that serves now */
    uint32_t *hash;    /* open addressing over rows: row + 1, 0 = empty */
    uint32_t hcap;
    pt_mx_zone_t *zone;   /* the zone of the configuration prepared last */
    pt_mx_zone_t *before; /* the one before, for a failed reload to go back to */
    pt_mx_zone_t *all[MAX_OLDER]; /* replaced zones not folded in yet */
    int nall;
    /* the map of the configuration prepared last, for the next forks */
    uint32_t *route, *upstream, *listener, *filter, **target;
    size_t nupstreams;
} t;

static uint64_t hash_name(const row_name_t *n)
{
    uint64_t h = 1469598103934665603ull ^ n->kind;
    for (size_t i = 0; i < (size_t)n->n1 + n->n2; i++)
        h = (h ^ (uint8_t)n->text[i]) * 1099511628211ull;
    return (h ^ n->n1) * 1099511628211ull;
}

static bool same(const row_name_t *a, const row_name_t *b)
{
    return a->kind == b->kind && a->n1 == b->n1 && a->n2 == b->n2 && memcmp(a->text, b->text, a->n1 + a->n2) == 0;
}

static int rehash(uint32_t hcap)
{
    uint32_t *h = calloc(hcap, sizeof(*h));
    if (!h)
        return -1;
    for (uint32_t r = 0; r < t.hw; r++) {
        if (t.rows[r].kind == PT_MXK_FREE)
            continue;
        uint32_t i = (uint32_t)hash_name(&t.rows[r]) & (hcap - 1);
        while (h[i])
            i = (i + 1) & (hcap - 1);
        h[i] = r + 1;
    }
    free(t.hash);
    t.hash = h;
    t.hcap = hcap;
    return 0;
}

static uint32_t find_row(const row_name_t *n)
{
    if (!t.hcap)
        return PT_MX_NONE;
    for (uint32_t i = (uint32_t)hash_name(n) & (t.hcap - 1); t.hash[i]; i = (i + 1) & (t.hcap - 1))
        if (same(&t.rows[t.hash[i] - 1], n))
            return t.hash[i] - 1;
    return PT_MX_NONE;
}

/* A label of at most max bytes into out: the name as it is, or cut at a
 * character boundary (a label must be UTF-8) with "~" and 8 hex digits of
 * a hash of the whole name, so that two long names stay two series.
 * Returns the length. */
static size_t label_fit(const char *s, size_t max, char *out)
{
    size_t n = strlen(s);
    if (n <= max) {
        memcpy(out, s, n);
        return n;
    }
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    size_t cut = max - 9;
    while (cut && ((uint8_t)s[cut] & 0xc0) == 0x80)
        cut--; /* not inside a character */
    memcpy(out, s, cut);
    char tail[10];
    snprintf(tail, sizeof(tail), "~%08x", h);
    memcpy(out + cut, tail, 9);
    return cut + 9;
}

/* s with every secret's value masked (a ${NAME} in a name is no label),
 * whole whatever its length (cut, two long names would be one), in
 * memory of its own; "" when out of memory. */
static char *masked(const char *s)
{
    size_t n = strlen(s), cap = n + 64;
    for (;;) {
        char *b = malloc(cap);
        if (!b)
            return NULL;
        if (pt_secret_mask(s, n, b, cap) + 1 < cap)
            return b;
        free(b);
        cap *= 4;
    }
}

/* The labels of a series named l1 and l2 (NULL: none): masked, then each
 * fitted (label_fit), the second taking up to half of LABEL_MAX. */
static void label_pair(const char *l1, const char *l2, char *out, size_t *n1, size_t *n2)
{
    char *m1 = masked(l1), *m2 = l2 ? masked(l2) : NULL;
    const char *a1 = m1 ? m1 : "", *a2 = m2 ? m2 : "";
    size_t b = strlen(a2);
    size_t max1 = b < LABEL_MAX / 2 ? LABEL_MAX - b : LABEL_MAX / 2;
    *n1 = label_fit(a1, max1, out);
    *n2 = label_fit(a2, LABEL_MAX - *n1, out + *n1);
    free(m1);
    free(m2);
}

void pt_mx_labels(const char *l1, const char *l2, char *o1, char *o2)
{
    char text[LABEL_MAX];
    size_t n1, n2;
    label_pair(l1, l2, text, &n1, &n2);
    memcpy(o1, text, n1);
    o1[n1] = '\0';
    if (o2) {
        memcpy(o2, text + n1, n2);
        o2[n2] = '\0';
    }
}

/* The row of a series, found or taken; PT_MX_NONE when out of memory. */
static uint32_t row_of(int kind, const char *l1, const char *l2)
{
    row_name_t n = {.kind = (uint8_t)kind};
    size_t a, b;
    label_pair(l1, l2, n.text, &a, &b);
    n.n1 = (uint8_t)a;
    n.n2 = (uint8_t)b;
    uint32_t r = find_row(&n);
    if (r == PT_MX_NONE) {
        for (r = 0; r < t.hw && t.rows[r].kind != PT_MXK_FREE; r++)
            ;
        if (r == t.cap) {
            uint32_t cap = t.cap ? t.cap * 2 : 256;
            row_name_t *rows = realloc(t.rows, cap * sizeof(*rows));
            uint32_t *mark = rows ? realloc(t.mark, cap * sizeof(*mark)) : NULL;
            if (rows)
                t.rows = rows;
            if (!mark)
                return PT_MX_NONE;
            t.mark = mark;
            memset(t.rows + t.cap, 0, (cap - t.cap) * sizeof(*rows));
            memset(t.mark + t.cap, 0, (cap - t.cap) * sizeof(*mark));
            t.cap = cap;
        }
        if ((r + 1) * 2 > t.hcap && rehash(t.hcap ? t.hcap * 2 : 512) < 0)
            return PT_MX_NONE;
        t.rows[r] = n;
        if (r == t.hw)
            t.hw++;
        uint32_t i = (uint32_t)hash_name(&n) & (t.hcap - 1);
        while (t.hash[i])
            i = (i + 1) & (t.hcap - 1);
        t.hash[i] = r + 1;
    }
    t.mark[r] = t.marks;
    if (r + 1 > t.need)
        t.need = r + 1;
    return r;
}

/* ---- the zone ---- */

static size_t zone_bytes(uint32_t cap, uint32_t width, uint32_t nblocks)
{
    size_t head = (sizeof(pt_mx_zone_t) + 63) & ~(size_t)63;
    return head + (size_t)cap * sizeof(row_name_t) + (size_t)nblocks * cap * width * sizeof(uint64_t);
}

static uint64_t *block_of(const pt_mx_zone_t *z, uint32_t b)
{
    return z->data + (size_t)b * z->cap * z->width;
}

/* Adds row r of block `from` (of zone zf) into row r of the retired block
 * of z: the code pairs by key, the rest word by word (the histogram only
 * when both zones have the same buckets). */
static void fold_row(pt_mx_zone_t *z, const pt_mx_zone_t *zf, const uint64_t *from, uint32_t r)
{
    uint64_t *to = block_of(z, RETIRED) + (size_t)r * z->width;
    from += (size_t)r * zf->width;
    if (t.rows[r].kind == PT_MXK_ROUTE) {
        for (int i = 0; i < PT_MX_CODES; i++) {
            uint64_t key = from[2 * i], n = from[2 * i + 1];
            if (!key || !n)
                continue;
            /* a named pair's slot, or the last, which is "other" only here:
             * a name put there would become "other" at the next fold */
            int k = 0;
            while (key != UINT32_MAX && k < PT_MX_CODES - 1 && to[2 * k] && to[2 * k] != key)
                k++;
            if (key == UINT32_MAX || k == PT_MX_CODES - 1)
                to[2 * (k = PT_MX_CODES - 1)] = UINT32_MAX;
            else if (!to[2 * k])
                to[2 * k] = key;
            to[2 * k + 1] += n;
        }
        to[PT_MXW_BYTES_IN] += from[PT_MXW_BYTES_IN];
        to[PT_MXW_BYTES_OUT] += from[PT_MXW_BYTES_OUT];
    } else {
        for (unsigned w = 0; w < PT_MXW_HIST; w++)
            to[w] += from[w];
        if (t.rows[r].kind == PT_MXK_LISTENER) {
            /* the worker is gone, and its connections with it (a SIGKILL
             * left them open in its counts): closed, or they would stay
             * active for ever */
            uint64_t h2 = from[PT_MXW_L_H2], h1 = from[PT_MXW_L_ACCEPTED] - h2;
            if (h1 > from[PT_MXW_L_CLOSED_H1])
                to[PT_MXW_L_CLOSED_H1] += h1 - from[PT_MXW_L_CLOSED_H1];
            if (h2 > from[PT_MXW_L_CLOSED_H2])
                to[PT_MXW_L_CLOSED_H2] += h2 - from[PT_MXW_L_CLOSED_H2];
        }
    }
    if (z->nbuckets == zf->nbuckets && !memcmp(z->bounds, zf->bounds, sizeof(z->bounds))) {
        for (unsigned w = PT_MXW_HIST; w < PT_MXW_HIST + z->nbuckets + 2; w++)
            to[w] += from[w];
    } else { /* other buckets: the count and the sum carry over (+Inf is the count), the buckets do not */
        to[PT_MXW_HIST + z->nbuckets] += from[PT_MXW_HIST + zf->nbuckets];
        to[PT_MXW_HIST + z->nbuckets + 1] += from[PT_MXW_HIST + zf->nbuckets + 1];
    }
}

static void fold_block(pt_mx_zone_t *z, pt_mx_zone_t *zf, uint32_t b)
{
    uint64_t *from = block_of(zf, b);
    atomic_fetch_add(&z->seq, 1);
    if (z != zf)
        atomic_fetch_add(&zf->seq, 1);
    uint32_t n = zf->cap < z->cap ? zf->cap : z->cap;
    for (uint32_t r = 0; r < n && r < t.hw; r++)
        if (t.rows[r].kind != PT_MXK_FREE)
            fold_row(z, zf, from, r);
    memset(from, 0, (size_t)zf->cap * zf->width * sizeof(uint64_t));
    if (z != zf)
        atomic_fetch_add(&zf->seq, 1);
    atomic_fetch_add(&z->seq, 1);
}

static void set_older(void)
{
    for (int i = 0; i < MAX_OLDER; i++)
        atomic_store(&t.zone->older[i], i < t.nall ? t.all[i] : NULL);
}

/* The zone for at least `rows` rows and `nblocks` blocks: the one in use
 * when it is big enough, else a new one.  A replaced zone is kept (its
 * workers count on in it, and scrapes add it in) until pt_metrics_tidy
 * folds it into the new one. */
static int grow(uint32_t rows, uint32_t nblocks, const pt_metrics_conf_t *mc)
{
    uint32_t width = PT_MXW_HIST + (uint32_t)mc->nbuckets + 2;
    pt_mx_zone_t *old = t.zone;
    t.before = old;
    if (old && old->cap >= rows && old->nblocks >= nblocks && old->width == width &&
        !memcmp(old->bounds, mc->buckets, sizeof(old->bounds))) {
        pt_zone_get(old->name, zone_bytes(old->cap, old->width, old->nblocks)); /* kept at the next sweep */
        return 0;
    }
    if (old && t.nall == MAX_OLDER) {
        errno = EBUSY; /* so many replaced zones still in use: the reload fails (master.c says why) */
        return -1;
    }
    uint32_t cap = old && old->cap >= rows ? old->cap : 256;
    while (cap < rows * 2)
        cap *= 2;
    if (old && old->nblocks > nblocks)
        nblocks = old->nblocks;
    /* a name of its own: a zone of the same size is a new one all the same,
     * never the one in use (its workers count on in it) */
    static unsigned made;
    char name[32];
    snprintf(name, sizeof(name), "metrics.%u", made++);
    pt_zone_t *shm = pt_zone_get(name, zone_bytes(cap, width, nblocks));
    if (!shm)
        return -1;
    pt_mx_zone_t *z = pt_zone_data(shm);
    *z = (pt_mx_zone_t){.cap = cap, .width = width, .nblocks = nblocks, .nbuckets = (uint32_t)mc->nbuckets};
    memcpy(z->name, name, sizeof(name));
    memcpy(z->bounds, mc->buckets, sizeof(z->bounds));
    size_t head = (sizeof(pt_mx_zone_t) + 63) & ~(size_t)63;
    z->names = (row_name_t *)((char *)z + head);
    z->data = (uint64_t *)(z->names + cap);
    atomic_store(&z->live[0], 1);
    atomic_store(&z->live[RETIRED], 1);
    if (old)
        t.all[t.nall++] = old;
    t.zone = z;
    return 0;
}

const char *pt_metrics_refusal(int err)
{
    return err == EBUSY ? "the metrics of four earlier reloads that changed the metrics zone (more routes, other "
                          "latency_buckets) are still counted into by old workers: reload again once they have "
                          "exited (shutdown_timeout bounds it)"
                        : NULL;
}

void pt_metrics_abandon(void)
{
    if (!t.before || t.before == t.zone)
        return;
    for (int i = 0; i < t.nall; i++)
        if (t.all[i] == t.before)
            t.all[i] = t.zone; /* the failed configuration's, folded in at the next tidy */
    t.zone = t.before;
    set_older();
}

static void publish_names(void)
{
    pt_mx_zone_t *z = t.zone;
    for (uint32_t r = 0; r < z->cap; r++) {
        row_name_t *n = &z->names[r];
        if (r < t.hw && t.rows[r].kind != PT_MXK_FREE) {
            if (!same(n, &t.rows[r])) {
                n->kind = PT_MXK_FREE; /* a scrape meanwhile skips it */
                __atomic_thread_fence(__ATOMIC_RELEASE);
                memcpy(n->text, t.rows[r].text, sizeof(n->text));
                n->n1 = t.rows[r].n1;
                n->n2 = t.rows[r].n2;
                __atomic_store_n(&n->kind, t.rows[r].kind, __ATOMIC_RELEASE);
            }
        } else if (n->kind != PT_MXK_FREE) {
            __atomic_store_n(&n->kind, PT_MXK_FREE, __ATOMIC_RELEASE);
        }
    }
}

static void free_map(void)
{
    free(t.route);
    free(t.upstream);
    free(t.listener);
    free(t.filter);
    for (size_t i = 0; i < t.nupstreams; i++)
        free(t.target[i]);
    free(t.target);
    t.route = t.upstream = t.listener = t.filter = NULL;
    t.target = NULL;
    t.nupstreams = 0;
}

/* The rows of every series of c, in the map the next forks take. */
static int map_config(const pt_config_t *c)
{
    free_map();
    size_t nr = c->routes.n ? c->routes.n : 1, nu = c->upstreams.n ? c->upstreams.n : 1;
    t.route = malloc((nr + 1) * sizeof(uint32_t));
    t.filter = malloc(nr * PT_FILTER__COUNT * sizeof(uint32_t));
    t.upstream = malloc(nu * sizeof(uint32_t));
    t.target = calloc(nu, sizeof(uint32_t *));
    t.listener = malloc((c->listeners.n + 1) * sizeof(uint32_t));
    if (!t.route || !t.filter || !t.upstream || !t.target || !t.listener)
        return -1;
    t.nupstreams = c->upstreams.n;
    for (size_t i = 0; i < c->routes.n; i++) {
        const pt_route_conf_t *r = PT_LIST_AT(c->routes, pt_route_conf_t, i);
        t.route[i] = r->metrics ? row_of(PT_MXK_ROUTE, r->name, NULL) : PT_MX_NONE;
        for (int f = 0; f < PT_FILTER__COUNT; f++) {
            uint32_t *fr = &t.filter[i * PT_FILTER__COUNT + f];
            *fr = PT_MX_NONE;
            bool counted = (f >= PT_FILTER_TLS_AUTH && f <= PT_FILTER_ACL) ||
                           (f >= PT_FILTER_LIMIT_CONN && f <= PT_FILTER_LIMIT_REQ);
            if (r->metrics && counted && r->fconf && r->fconf[f])
                *fr = row_of(PT_MXK_FILTER, r->name, pt_filters[f]->name);
        }
    }
    t.route[c->routes.n] = row_of(PT_MXK_ROUTE, "", NULL); /* requests no route took (404, 400) */
    for (size_t i = 0; i < c->upstreams.n; i++) {
        const pt_upstream_conf_t *u = PT_LIST_AT(c->upstreams, pt_upstream_conf_t, i);
        t.upstream[i] = row_of(PT_MXK_UPSTREAM, u->name, NULL);
        t.target[i] = malloc((u->targets.n ? u->targets.n : 1) * sizeof(uint32_t));
        if (!t.target[i])
            return -1;
        for (size_t k = 0; k < u->targets.n; k++)
            t.target[i][k] = row_of(PT_MXK_TARGET, u->name, PT_LIST_AT(u->targets, pt_target_conf_t, k)->address);
    }
    for (size_t i = 0; i < c->listeners.n; i++) {
        const pt_listener_conf_t *l = PT_LIST_AT(c->listeners, pt_listener_conf_t, i);
        t.listener[i] = row_of(PT_MXK_LISTENER, l->name, NULL);
    }
    t.listener[c->listeners.n] = c->admin.node ? row_of(PT_MXK_LISTENER, "admin", NULL) : PT_MX_NONE;
    return 0;
}

int pt_metrics_prepare(const pt_config_t *c, int nworkers)
{
    t.marks++;
    t.need = 0;
    if (map_config(c) < 0) {
        errno = ENOMEM;
        return -1;
    }
    /* its own block for every worker of this generation and of those that
     * may drain beside it; more share block 0 */
    uint32_t nblocks = 2 + (uint32_t)nworkers * 2;
    if (nblocks > MAX_BLOCKS)
        nblocks = MAX_BLOCKS;
    if (grow(t.need, nblocks, &c->metrics) < 0)
        return -1;
    set_older();
    publish_names();
    t.serving_mark = t.marks;
    pt_mx = (pt_mx_t){.conf = c, .block = NULL, .width = t.zone->width, .nbuckets = t.zone->nbuckets, .bounds = t.zone->bounds,
                      .route = t.route, .upstream = t.upstream, .listener = t.listener, .filter = t.filter,
                      .target = (const uint32_t *const *)t.target};
    return 0;
}

int pt_metrics_take_block(void **zone)
{
    pt_mx_zone_t *z = t.zone;
    *zone = z;
    if (!z)
        return -1;
    for (uint32_t b = RETIRED + 1; b < z->nblocks; b++) {
        uint8_t no = 0;
        if (atomic_compare_exchange_strong(&z->live[b], &no, 1))
            return (int)b;
    }
    return 0;
}

void pt_metrics_fold(void *zone, int block)
{
    pt_mx_zone_t *zf = zone;
    if (!zf || block <= RETIRED)
        return;
    fold_block(zf, zf, (uint32_t)block); /* into its own zone: a replaced one is folded in whole later */
    atomic_store(&zf->live[block], 0);
}

void pt_metrics_tidy(void)
{
    pt_mx_zone_t *z = t.zone;
    if (!z)
        return;
    /* the zones replaced, which no worker counts into any more, come in
     * whole: no scrape looks at them again, and the next sweep unmaps them */
    for (int i = 0; i < t.nall; i++) {
        pt_mx_zone_t *o = t.all[i];
        for (uint32_t b = 0; b < o->nblocks; b++)
            if (atomic_load(&o->live[b]))
                fold_block(z, o, b);
    }
    t.nall = 0;
    t.before = NULL;
    set_older();
    /* the rows only older configurations had */
    atomic_fetch_add(&z->seq, 1);
    for (uint32_t r = 0; r < t.hw; r++) {
        if (t.rows[r].kind == PT_MXK_FREE || t.mark[r] == t.serving_mark)
            continue;
        t.rows[r].kind = PT_MXK_FREE;
        if (r < z->cap)
            for (uint32_t b = 0; b < z->nblocks; b++)
                memset(block_of(z, b) + (size_t)r * z->width, 0, z->width * sizeof(uint64_t));
    }
    while (t.hw && t.rows[t.hw - 1].kind == PT_MXK_FREE)
        t.hw--;
    atomic_fetch_add(&z->seq, 1);
    rehash(t.hcap ? t.hcap : 512);
    publish_names();
}

/* ---- in a worker ---- */

void pt_metrics_attach(int block)
{
    if (t.zone && block >= 0 && (uint32_t)block < t.zone->nblocks)
        pt_mx.block = block_of(t.zone, (uint32_t)block);
}

static size_t index_in(const pt_list_t *l, const void *item, size_t size)
{
    return (size_t)((const char *)item - (const char *)l->v) / size;
}

uint32_t pt_mx_upstream(const pt_upstream_conf_t *u)
{
    const pt_config_t *c = pt_mx.conf;
    if (!c || !u)
        return PT_MX_NONE;
    size_t i = index_in(&c->upstreams, u, sizeof(*u));
    return i < c->upstreams.n ? pt_mx.upstream[i] : PT_MX_NONE;
}

uint32_t pt_mx_target(const pt_upstream_conf_t *u, const pt_target_conf_t *tc)
{
    const pt_config_t *c = pt_mx.conf;
    if (!c || !u || !tc)
        return PT_MX_NONE;
    size_t i = index_in(&c->upstreams, u, sizeof(*u));
    if (i >= c->upstreams.n || (const char *)tc < (const char *)u->targets.v)
        return PT_MX_NONE; /* a target added at run time has no row */
    size_t k = index_in(&u->targets, tc, sizeof(*tc));
    return k < u->targets.n ? pt_mx.target[i][k] : PT_MX_NONE;
}

void pt_mx_target_add(const pt_upstream_t *u, const pt_target_t *tg, unsigned word, uint64_t n)
{
    _Static_assert(PT_MXW_T_REUSES < sizeof(((pt_target_shared_t *)0)->mx) / sizeof(uint64_t), "a word for each");
    uint32_t row = pt_mx_target(u->conf, tg->conf);
    if (row != PT_MX_NONE)
        pt_mx_add(row, word, n);
    else if (tg->rt_added && tg->shared)
        atomic_fetch_add_explicit(&tg->shared->mx[word], n, memory_order_relaxed);
}

uint32_t pt_mx_listener(const pt_listener_conf_t *l)
{
    const pt_config_t *c = pt_mx.conf;
    if (!c)
        return PT_MX_NONE;
    if (!l)
        return pt_mx.listener[c->listeners.n]; /* the admin listener */
    size_t i = index_in(&c->listeners, l, sizeof(*l));
    return i < c->listeners.n ? pt_mx.listener[i] : PT_MX_NONE;
}

uint32_t pt_mx_filter(size_t route, int filter)
{
    if (!pt_mx.filter || filter < 0 || filter >= PT_FILTER__COUNT || route >= pt_mx.conf->routes.n)
        return PT_MX_NONE;
    return pt_mx.filter[route * PT_FILTER__COUNT + (size_t)filter];
}

static unsigned method_index(unsigned bit)
{
    return bit ? (unsigned)__builtin_ctz(bit) + 1 : 0;
}

void pt_metrics_observe(uint32_t row, int64_t us)
{
    if (row == PT_MX_NONE || !pt_mx.block)
        return;
    uint64_t *h = pt_mx.block + (size_t)row * pt_mx.width + PT_MXW_HIST;
    double s = (double)(us > 0 ? us : 0) / 1e6;
    unsigned b = 0;
    while (b < pt_mx.nbuckets && s > pt_mx.bounds[b])
        b++;
    if (b < pt_mx.nbuckets)
        __atomic_fetch_add(&h[b], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h[pt_mx.nbuckets], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h[pt_mx.nbuckets + 1], (uint64_t)(us > 0 ? us : 0), __ATOMIC_RELAXED);
}

void pt_metrics_request(uint32_t route_row, unsigned method_bit, int status, int64_t us, uint64_t in, uint64_t out,
                        uint32_t upstream_row, int64_t upstream_us)
{
    if (!pt_mx.block)
        return;
    if (upstream_us >= 0)
        pt_metrics_observe(upstream_row, upstream_us);
    if (route_row == PT_MX_NONE)
        return;
    uint64_t *row = pt_mx.block + (size_t)route_row * pt_mx.width;
    uint64_t key = (uint64_t)method_index(method_bit) << 16 | (uint64_t)(status > 0 && status < 1000 ? status : 0);
    key |= 1ull << 32; /* never 0: 0 is a free pair */
    int k = 0;
    for (; k < PT_MX_CODES - 1; k++) {
        uint64_t have = __atomic_load_n(&row[2 * k], __ATOMIC_ACQUIRE);
        if (have == key)
            break;
        if (!have) {
            /* block 0 is shared: two workers may claim the same pair */
            if (__atomic_compare_exchange_n(&row[2 * k], &have, key, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) ||
                have == key)
                break;
        }
    }
    if (k == PT_MX_CODES - 1) {
        uint64_t have = 0;
        __atomic_compare_exchange_n(&row[2 * k], &have, UINT32_MAX, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
        if (have && have != UINT32_MAX && have != key)
            __atomic_store_n(&row[2 * k], UINT32_MAX, __ATOMIC_RELEASE); /* "other" from now on */
    }
    __atomic_fetch_add(&row[2 * k + 1], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&row[PT_MXW_BYTES_IN], in, __ATOMIC_RELAXED);
    __atomic_fetch_add(&row[PT_MXW_BYTES_OUT], out, __ATOMIC_RELAXED);
    pt_metrics_observe(route_row, us);
}

/* ---- the scrape ---- */

pt_mx_zone_t *pt_metrics_zone(void)
{
    return t.zone;
}

uint32_t pt_metrics_rows(const pt_mx_zone_t *z)
{
    return z->cap;
}

unsigned pt_metrics_buckets(const pt_mx_zone_t *z, const double **bounds)
{
    *bounds = z->bounds;
    return z->nbuckets;
}

int pt_metrics_kind(const pt_mx_zone_t *z, uint32_t r)
{
    return __atomic_load_n(&z->names[r].kind, __ATOMIC_ACQUIRE);
}

int pt_metrics_row(const pt_mx_zone_t *z, uint32_t r, char *l1, size_t n1, char *l2, size_t n2)
{
    const row_name_t *n = &z->names[r];
    int kind = __atomic_load_n(&n->kind, __ATOMIC_ACQUIRE);
    if (kind == PT_MXK_FREE)
        return kind;
    size_t a = n->n1 < n1 - 1 ? n->n1 : n1 - 1, b = n->n2 < n2 - 1 ? n->n2 : n2 - 1;
    memcpy(l1, n->text, a);
    l1[a] = '\0';
    memcpy(l2, n->text + n->n1, b);
    l2[b] = '\0';
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return __atomic_load_n(&n->kind, __ATOMIC_ACQUIRE) == kind ? kind : PT_MXK_FREE;
}

/* Adds words [word, word + n) of row r of z's live blocks into out. */
static void add_zone(const pt_mx_zone_t *z, uint32_t r, unsigned word, unsigned n, uint64_t *out)
{
    if (r >= z->cap || word + n > z->width)
        return;
    for (uint32_t b = 0; b < z->nblocks; b++) {
        if (!atomic_load_explicit(&z->live[b], memory_order_acquire))
            continue;
        const uint64_t *v = block_of(z, b) + (size_t)r * z->width + word;
        for (unsigned i = 0; i < n; i++)
            out[i] += __atomic_load_n(&v[i], __ATOMIC_RELAXED);
    }
}

/* The fold counters of z and of the zones it adds in: a scrape that saw
 * them change read a block while it was being folded, and reads again. */
static int seqs(const pt_mx_zone_t *z, uint64_t *s)
{
    pt_mx_zone_t *zz = (pt_mx_zone_t *)z;
    int n = 0;
    s[n++] = atomic_load(&zz->seq);
    for (int i = 0; i < MAX_OLDER; i++) {
        pt_mx_zone_t *o = atomic_load(&zz->older[i]);
        s[n++] = o ? atomic_load(&o->seq) : 0;
    }
    for (int i = 0; i < n; i++)
        if (s[i] & 1)
            return -1;
    return n;
}

static bool still(const pt_mx_zone_t *z, const uint64_t *s0)
{
    uint64_t s[MAX_OLDER + 1];
    return seqs(z, s) > 0 && !memcmp(s, s0, sizeof(s));
}

void pt_metrics_sum(const pt_mx_zone_t *z, uint32_t r, unsigned word, unsigned n, uint64_t *out)
{
    uint64_t s[MAX_OLDER + 1];
    do {
        while (seqs(z, s) < 0)
            ; /* the master is folding a block: microseconds */
        memset(out, 0, n * sizeof(*out));
        add_zone(z, r, word, n, out);
        for (int i = 0; i < MAX_OLDER; i++) {
            const pt_mx_zone_t *o = atomic_load(&((pt_mx_zone_t *)z)->older[i]);
            if (!o)
                continue;
            if (o->nbuckets == z->nbuckets && !memcmp(o->bounds, z->bounds, sizeof(o->bounds))) {
                add_zone(o, r, word, n, out);
                continue;
            }
            for (unsigned k = 0; k < n; k++) { /* other buckets: what carries over (fold_row) */
                unsigned w = word + k, from = w;
                if (w >= PT_MXW_HIST)
                    from = w == PT_MXW_HIST + z->nbuckets       ? PT_MXW_HIST + o->nbuckets
                           : w == PT_MXW_HIST + z->nbuckets + 1 ? PT_MXW_HIST + o->nbuckets + 1
                                                                : UINT32_MAX;
                if (from != UINT32_MAX)
                    add_zone(o, r, from, 1, out + k);
            }
        }
    } while (!still(z, s));
}

/* Adds the (method, status) pairs of row r of z's blocks to keys/counts
 * (n of them, at most max - 1 named) and to *other (what is "other"
 * already, and what does not fit). */
static int add_codes(const pt_mx_zone_t *z, uint32_t r, uint64_t *keys, uint64_t *counts, int n, int max,
                     uint64_t *other)
{
    if (r >= z->cap)
        return n;
    for (uint32_t b = 0; b < z->nblocks; b++) {
        if (!atomic_load_explicit(&z->live[b], memory_order_acquire))
            continue;
        const uint64_t *v = block_of(z, b) + (size_t)r * z->width;
        for (int i = 0; i < PT_MX_CODES; i++) {
            uint64_t key = __atomic_load_n(&v[2 * i], __ATOMIC_ACQUIRE), c = __atomic_load_n(&v[2 * i + 1], __ATOMIC_RELAXED);
            if (!key || !c)
                continue;
            int k = 0;
            while (k < n && keys[k] != key)
                k++;
            if (key == UINT32_MAX || (k == n && n == max - 1)) {
                *other += c;
                continue;
            }
            if (k == n) {
                keys[n++] = key;
                counts[k] = 0;
            }
            counts[k] += c;
        }
    }
    return n;
}

int pt_metrics_codes(const pt_mx_zone_t *z, uint32_t r, uint64_t *keys, uint64_t *counts, int max)
{
    uint64_t s[MAX_OLDER + 1], other;
    int n;
    do {
        while (seqs(z, s) < 0)
            ;
        other = 0;
        n = add_codes(z, r, keys, counts, 0, max, &other);
        for (int i = 0; i < MAX_OLDER; i++) {
            const pt_mx_zone_t *o = atomic_load(&((pt_mx_zone_t *)z)->older[i]);
            if (o)
                n = add_codes(o, r, keys, counts, n, max, &other);
        }
    } while (!still(z, s));
    if (other) { /* one "other", last */
        keys[n] = UINT32_MAX;
        counts[n++] = other;
    }
    return n;
}

void pt_metrics_totals(const pt_mx_zone_t *z, pt_mx_totals_t *tot)
{
    *tot = (pt_mx_totals_t){0};
    uint32_t admin = pt_mx_listener(NULL);
    for (uint32_t r = 0; r < z->cap; r++) {
        int kind = __atomic_load_n(&z->names[r].kind, __ATOMIC_ACQUIRE);
        if (kind == PT_MXK_ROUTE) {
            uint64_t n;
            pt_metrics_sum(z, r, PT_MXW_HIST + z->nbuckets, 1, &n); /* the histogram's count */
            tot->requests += n;
        } else if (kind == PT_MXK_LISTENER && r != admin) {
            uint64_t v[3];
            pt_metrics_sum(z, r, PT_MXW_L_ACCEPTED, 3, v);
            tot->accepted += v[0];
            tot->active += v[0] > v[1] + v[2] ? v[0] - v[1] - v[2] : 0;
        }
    }
}
