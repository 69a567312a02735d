/* The router: see router.h for the structure and the order of precedence. */
#include "config.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "portico/http.h"
#include "portico/router.h"

enum { K_REGEX, K_PREFIX, K_PARAM, K_EXACT }; /* path kinds, least specific first */
enum { H_ANY, H_WILDCARD, H_EXACT };         /* host kinds, least specific first */

typedef struct entry {
    const pt_route_conf_t *route;
    int64_t priority; /* copied from the route: comparing entries must not chase it */
    size_t index;
    unsigned methods_mask;
    bool has_preds;
    uint32_t path_index;
    int kind, host_kind;
    uint32_t length; /* of the pattern: longer is more specific */
    uint8_t nnames;
    const char *names[PT_ROUTER_MAX_PARAMS]; /* of :params and a named *rest, in order */
    uint8_t name_len[PT_ROUTER_MAX_PARAMS];
} entry_t;

typedef struct rnode rnode_t;
struct rnode {
    rnode_t *param; /* the :name child */
    entry_t **exact, **rest;
    size_t nexact, nrest, capexact, caprest;
};

/* 32 bytes: the table of 100,000 routes stays small.  The hash is compared
 * first, so a probe reads the segment only when it is (almost) certainly
 * the one. */
typedef struct edge {
    const rnode_t *parent;
    uint64_t hash;
    rnode_t *child;
    const char *seg; /* in the configuration, which outlives the router */
} edge_t;

#define SEG_LEN(h) ((size_t)((h) >> 48)) /* the top 16 bits of the hash hold the length */

typedef struct hostent {
    pt_str_t name; /* "api.example.com", or ".example.com" for a wildcard */
    rnode_t *root;
} hostent_t;

struct pt_router {
    const pt_config_t *conf;
    rnode_t *any;
    edge_t *edges;
    size_t nedges, capedges;
    hostent_t *hosts, *wild;
    size_t caphosts, capwild, nhosts, nwild;
    entry_t **regex;
    size_t nregex;
    entry_t *entries; /* all of them */
    size_t nentries;
    bool has_preds;
    pcre2_match_data *md;
    /* every node, for freeing */
    rnode_t **nodes;
    size_t nnodes, capnodes;
};

/* ---- hashing ---- */

static uint64_t edge_hash(const rnode_t *parent, pt_str_t seg)
{
    uint64_t h = PT_HASH_INIT ^ ((uint64_t)(uintptr_t)parent * 0x9e3779b97f4a7c15ull);
    h = pt_hash_bytes(h, seg.p, seg.n);
    return (h & 0x0000ffffffffffffull) | ((uint64_t)(seg.n < 0xffff ? seg.n : 0xffff) << 48);
}

static rnode_t *edge_find(const pt_router_t *r, const rnode_t *parent, pt_str_t seg)
{
    if (!r->capedges)
        return NULL;
    uint64_t h = edge_hash(parent, seg);
    if (seg.n >= 0xffff)
        return NULL; /* no route has such a segment */
    size_t mask = r->capedges - 1, i = (size_t)h & mask;
    for (;; i = (i + 1) & mask) {
        const edge_t *e = &r->edges[i];
        if (!e->parent)
            return NULL;
        if (e->hash == h && e->parent == parent && memcmp(e->seg, seg.p, seg.n) == 0)
            return e->child;
    }
}

static bool edge_grow(pt_router_t *r)
{
    size_t cap = r->capedges ? r->capedges * 2 : 64;
    edge_t *v = calloc(cap, sizeof(edge_t));
    if (!v)
        return false;
    for (size_t i = 0; i < r->capedges; i++) {
        edge_t *e = &r->edges[i];
        if (!e->parent)
            continue;
        size_t k = (size_t)e->hash & (cap - 1);
        while (v[k].parent)
            k = (k + 1) & (cap - 1);
        v[k] = *e;
    }
    free(r->edges);
    r->edges = v;
    r->capedges = cap;
    return true;
}

static rnode_t *new_node(pt_router_t *r)
{
    if (r->nnodes == r->capnodes) {
        size_t cap = r->capnodes ? r->capnodes * 2 : 64;
        rnode_t **v = realloc(r->nodes, cap * sizeof(*v));
        if (!v)
            return NULL;
        r->nodes = v;
        r->capnodes = cap;
    }
    rnode_t *n = calloc(1, sizeof(*n));
    if (n)
        r->nodes[r->nnodes++] = n;
    return n;
}

static rnode_t *edge_child(pt_router_t *r, rnode_t *parent, pt_str_t seg)
{
    rnode_t *c = edge_find(r, parent, seg);
    if (c)
        return c;
    if ((r->nedges + 1) * 2 > r->capedges && !edge_grow(r))
        return NULL;
    if (!(c = new_node(r)))
        return NULL;
    uint64_t h = edge_hash(parent, seg);
    size_t mask = r->capedges - 1, i = (size_t)h & mask;
    while (r->edges[i].parent)
        i = (i + 1) & mask;
    r->edges[i] = (edge_t){parent, h, c, seg.p};
    r->nedges++;
    return c;
}

static hostent_t *host_find(hostent_t *v, size_t cap, pt_str_t name)
{
    if (!cap)
        return NULL;
    size_t mask = cap - 1, i = (size_t)pt_hash_bytes(PT_HASH_INIT, name.p, name.n) & mask;
    for (;; i = (i + 1) & mask) {
        if (!v[i].root)
            return NULL;
        if (pt_str_eq(v[i].name, name))
            return &v[i];
    }
}

static rnode_t *host_root(pt_router_t *r, bool wild, pt_str_t name)
{
    hostent_t **v = wild ? &r->wild : &r->hosts;
    size_t *cap = wild ? &r->capwild : &r->caphosts, *n = wild ? &r->nwild : &r->nhosts;
    hostent_t *h = host_find(*v, *cap, name);
    if (h)
        return h->root;
    if ((*n + 1) * 2 > *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        hostent_t *nv = calloc(ncap, sizeof(hostent_t));
        if (!nv)
            return NULL;
        for (size_t i = 0; i < *cap; i++) {
            if (!(*v)[i].root)
                continue;
            size_t k = (size_t)pt_hash_bytes(PT_HASH_INIT, (*v)[i].name.p, (*v)[i].name.n) & (ncap - 1);
            while (nv[k].root)
                k = (k + 1) & (ncap - 1);
            nv[k] = (*v)[i];
        }
        free(*v);
        *v = nv;
        *cap = ncap;
    }
    rnode_t *root = new_node(r);
    if (!root)
        return NULL;
    size_t mask = *cap - 1, i = (size_t)pt_hash_bytes(PT_HASH_INIT, name.p, name.n) & mask;
    while ((*v)[i].root)
        i = (i + 1) & mask;
    (*v)[i] = (hostent_t){name, root};
    (*n)++;
    return root;
}

/* ---- precedence ---- */

/* Is a more specific or earlier than b? */
static bool better(const entry_t *a, const entry_t *b)
{
    if (!b)
        return true;
    if (a->priority != b->priority)
        return a->priority > b->priority;
    if (a->kind != b->kind)
        return a->kind > b->kind;
    if (a->length != b->length)
        return a->length > b->length;
    if (a->host_kind != b->host_kind)
        return a->host_kind > b->host_kind;
    if (a->index != b->index)
        return a->index < b->index;
    return a->path_index < b->path_index;
}

static int cmp_entries(const void *x, const void *y)
{
    const entry_t *a = *(entry_t *const *)x, *b = *(entry_t *const *)y;
    return a == b ? 0 : better(a, b) ? -1 : 1;
}

static bool push(entry_t ***v, size_t *n, size_t *cap, entry_t *e)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 2;
        entry_t **nv = realloc(*v, nc * sizeof(*nv));
        if (!nv)
            return false;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = e;
    return true;
}

/* ---- building ---- */

static void describe(entry_t *e, const char *pat)
{
    e->length = (uint32_t)strlen(pat);
    if (pat[0] == '~') {
        e->kind = K_REGEX;
        return;
    }
    e->kind = strchr(pat, '*') ? K_PREFIX : strstr(pat, "/:") ? K_PARAM : K_EXACT;
    for (const char *p = pat; *p; p++) {
        if (p[0] == '/' && (p[1] == ':' || (p[1] == '*' && p[2])) && e->nnames < PT_ROUTER_MAX_PARAMS) {
            const char *s = p + 2, *q = s;
            while (*q && *q != '/')
                q++;
            e->names[e->nnames] = s;
            e->name_len[e->nnames++] = (uint8_t)(q - s);
        }
    }
}

static bool insert(pt_router_t *r, rnode_t *root, entry_t *e, const char *pat)
{
    rnode_t *n = root;
    const char *p = pat + 1; /* after the leading / */
    for (;;) {
        const char *s = p;
        while (*p && *p != '/')
            p++;
        pt_str_t seg = {s, (size_t)(p - s)};
        if (seg.n && seg.p[0] == '*') /* the rest, from this node on */
            return push(&n->rest, &n->nrest, &n->caprest, e);
        if (seg.n && seg.p[0] == ':') {
            if (!n->param && !(n->param = new_node(r)))
                return false;
            n = n->param;
        } else if (!(n = edge_child(r, n, seg))) {
            return false;
        }
        if (!*p)
            return push(&n->exact, &n->nexact, &n->capexact, e);
        p++;
    }
}

static void sort_lists(pt_router_t *r)
{
    /* qsort must not see a NULL array, even of no elements */
    for (size_t i = 0; i < r->nnodes; i++) {
        rnode_t *n = r->nodes[i];
        if (n->nexact > 1)
            qsort(n->exact, n->nexact, sizeof(entry_t *), cmp_entries);
        if (n->nrest > 1)
            qsort(n->rest, n->nrest, sizeof(entry_t *), cmp_entries);
    }
    if (r->nregex > 1)
        qsort(r->regex, r->nregex, sizeof(entry_t *), cmp_entries);
}

pt_router_t *pt_router_build(const pt_config_t *c)
{
    pt_router_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->conf = c;
    size_t n = 0;
    for (size_t i = 0; i < c->routes.n; i++) {
        const pt_route_conf_t *rc = PT_LIST_AT(c->routes, pt_route_conf_t, i);
        n += (rc->match.paths.n ? rc->match.paths.n : 1) * (rc->match.hosts.n ? rc->match.hosts.n : 1);
        r->has_preds |= rc->npreds > 0;
    }
    r->entries = calloc(n ? n : 1, sizeof(entry_t));
    r->any = new_node(r);
    r->regex = calloc(n ? n : 1, sizeof(entry_t *));
    r->md = pcre2_match_data_create(32, NULL);
    if (!r->entries || !r->any || !r->regex || !r->md) {
        pt_router_free(r);
        return NULL;
    }
    for (size_t i = 0; i < c->routes.n; i++) {
        const pt_route_conf_t *rc = PT_LIST_AT(c->routes, pt_route_conf_t, i);
        size_t np = rc->match.paths.n ? rc->match.paths.n : 1, nh = rc->match.hosts.n ? rc->match.hosts.n : 1;
        for (size_t k = 0; k < np; k++) {
            const char *pat = rc->match.paths.n ? rc->match.paths.v[k] : "/*";
            for (size_t h = 0; h < nh; h++) {
                entry_t *e = &r->entries[r->nentries++];
                e->route = rc;
                e->priority = rc->priority;
                e->index = rc->index;
                e->methods_mask = rc->methods_mask;
                e->has_preds = rc->npreds > 0;
                e->path_index = (uint32_t)k;
                describe(e, pat);
                if (!rc->match.paths.n)
                    e->length = 0; /* no path at all is the least specific prefix */
                rnode_t *root = r->any;
                e->host_kind = H_ANY;
                if (rc->match.hosts.n) {
                    const char *host = rc->match.hosts.v[h];
                    bool wild = host[0] == '*';
                    e->host_kind = wild ? H_WILDCARD : H_EXACT;
                    root = host_root(r, wild, pt_str_from(wild ? host + 1 : host));
                }
                if (!root) {
                    pt_router_free(r);
                    return NULL;
                }
                if (e->kind == K_REGEX) {
                    r->regex[r->nregex++] = e;
                    e->route = rc;
                    continue;
                }
                if (!insert(r, root, e, pat)) {
                    pt_router_free(r);
                    return NULL;
                }
            }
        }
    }
    sort_lists(r);
    return r;
}

void pt_router_free(pt_router_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nnodes; i++) {
        free(r->nodes[i]->exact);
        free(r->nodes[i]->rest);
        free(r->nodes[i]);
    }
    free(r->nodes);
    free(r->edges);
    free(r->hosts);
    free(r->wild);
    free(r->regex);
    free(r->entries);
    if (r->md)
        pcre2_match_data_free(r->md);
    free(r);
}

/* ---- predicates ---- */

static bool value_matches(pt_router_t *r, const pt_predicate_t *p, pt_str_t v)
{
    if (!p->re)
        return pt_str_eq(v, pt_str_from(p->value));
    return pcre2_match(p->re, (PCRE2_SPTR)v.p, v.n, 0, 0, r->md, NULL) >= 0;
}

static bool predicates_hold(pt_router_t *r, const pt_route_conf_t *rc, const pt_h1_req_t *req)
{
    for (size_t i = 0; i < rc->npreds; i++) {
        const pt_predicate_t *p = &rc->preds[i];
        pt_str_t v = PT_STR_NULL;
        if (!req)
            return false;
        if (p->kind == PT_PRED_HEADER) {
            const pt_h1_header_t *h = pt_h1_find(req, pt_str_from(p->name));
            if (h)
                v = h->value;
        } else if (p->kind == PT_PRED_QUERY) {
            v = pt_h1_query_arg(req->query, p->name);
        } else {
            v = pt_h1_cookie(req, p->name);
        }
        if (!v.p || !value_matches(r, p, v))
            return false;
    }
    return true;
}

/* ---- lookup ---- */

typedef struct walk {
    pt_router_t *r;
    unsigned method;
    const pt_h1_req_t *req;
    pt_str_t path;
    const entry_t *best;
    unsigned allowed;
    size_t nvals;
    pt_str_t vals[PT_ROUTER_MAX_PARAMS]; /* :param values on the way down */
    pt_route_match_t *m;
} walk_t;

static bool method_ok(const pt_route_conf_t *rc, unsigned method)
{
    unsigned mask = rc->methods_mask;
    return !mask || (method & mask) || (method == PT_M_HEAD && (mask & PT_M_GET));
}

/* Considers the entries of one list (sorted best first); rest is the path
 * a catch-all takes, or NULL for exact entries. */
static void consider(walk_t *w, entry_t *const *v, size_t n, const char *rest)
{
    for (size_t i = 0; i < n; i++) {
        const entry_t *e = v[i];
        if (!better(e, w->best))
            return; /* sorted: nothing after it can win */
        if (e->has_preds && !predicates_hold(w->r, e->route, w->req))
            continue;
        unsigned mask = e->methods_mask;
        if (mask && !(w->method & mask) && !(w->method == PT_M_HEAD && (mask & PT_M_GET))) {
            w->allowed |= mask | ((mask & PT_M_GET) ? PT_M_HEAD : 0);
            continue;
        }
        w->best = e;
        pt_route_match_t *m = w->m;
        m->nparams = 0;
        for (size_t k = 0; k < e->nnames && k < w->nvals + (rest ? 1 : 0); k++) {
            m->params[k].name = (pt_str_t){e->names[k], e->name_len[k]};
            m->params[k].value = k < w->nvals ? w->vals[k]
                                              : (pt_str_t){rest, (size_t)(w->path.p + w->path.n - rest)};
            m->nparams++;
        }
        return;
    }
}

static void walk_node(walk_t *w, const rnode_t *n, const char *p)
{
    const char *end = w->path.p + w->path.n;
    /* a catch-all here takes what is left: a/ star takes "/a", "/a/" and "/a/x/y" */
    if (n->nrest)
        consider(w, n->rest, n->nrest, p < end ? p + 1 : p);
    if (p == end) {
        consider(w, n->exact, n->nexact, NULL);
        return;
    }
    const char *s = p + 1, *e = s; /* p is at a '/' */
    while (e < end && *e != '/')
        e++;
    pt_str_t seg = {s, (size_t)(e - s)};
    const rnode_t *c = edge_find(w->r, n, seg);
    if (c)
        walk_node(w, c, e);
    if (n->param && seg.n && w->nvals < PT_ROUTER_MAX_PARAMS) {
        w->vals[w->nvals++] = seg;
        walk_node(w, n->param, e);
        w->nvals--;
    }
}

static void try_regex(walk_t *w)
{
    for (size_t i = 0; i < w->r->nregex; i++) {
        const entry_t *e = w->r->regex[i];
        if (!better(e, w->best))
            return;
        const pt_route_conf_t *rc = e->route;
        pcre2_code *re = rc->path_re[e->path_index];
        /* host first: cheap */
        if (e->host_kind != H_ANY)
            continue; /* regex routes with hosts are checked in lookup() */
        if (pcre2_match(re, (PCRE2_SPTR)w->path.p, w->path.n, 0, 0, w->r->md, NULL) < 0)
            continue;
        if (rc->npreds && !predicates_hold(w->r, rc, w->req))
            continue;
        if (!method_ok(rc, w->method)) {
            w->allowed |= rc->methods_mask | ((rc->methods_mask & PT_M_GET) ? PT_M_HEAD : 0);
            continue;
        }
        w->best = e;
        /* named groups become parameters */
        uint32_t count = 0, size = 0;
        PCRE2_SPTR table;
        pcre2_pattern_info(re, PCRE2_INFO_NAMECOUNT, &count);
        pcre2_pattern_info(re, PCRE2_INFO_NAMEENTRYSIZE, &size);
        pcre2_pattern_info(re, PCRE2_INFO_NAMETABLE, &table);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(w->r->md);
        w->m->nparams = 0;
        for (uint32_t k = 0; k < count && k < PT_ROUTER_MAX_PARAMS; k++) {
            const unsigned char *ent = table + k * size;
            int g = (ent[0] << 8) | ent[1];
            if (ov[2 * g] == PCRE2_UNSET)
                continue;
            pt_route_param_t *prm = &w->m->params[w->m->nparams++];
            prm->name = pt_str_from((const char *)ent + 2);
            prm->value = (pt_str_t){w->path.p + ov[2 * g], ov[2 * g + 1] - ov[2 * g]};
        }
        return;
    }
}

static pt_str_t bare_host(pt_str_t host, char *buf, size_t size)
{
    /* lower case, no port, no trailing dot */
    if (host.n && host.p[0] != '[') {
        const char *colon = memchr(host.p, ':', host.n);
        if (colon)
            host.n = (size_t)(colon - host.p);
    }
    if (host.n && host.p[host.n - 1] == '.')
        host.n--;
    if (host.n > size)
        return PT_STR_NULL;
    for (size_t i = 0; i < host.n; i++)
        buf[i] = pt_lower(host.p[i]);
    return (pt_str_t){buf, host.n};
}

bool pt_router_lookup(pt_router_t *r, pt_str_t host, pt_str_t path, unsigned method, const pt_h1_req_t *req,
                      pt_route_match_t *m)
{
    walk_t w = {.r = r, .method = method, .req = req, .path = path, .m = m};
    char hb[256];
    pt_str_t h = bare_host(host, hb, sizeof(hb));
    m->nparams = 0;
    if (h.n) {
        hostent_t *he = host_find(r->hosts, r->caphosts, h);
        if (he)
            walk_node(&w, he->root, path.p);
        /* wildcards by suffix, longest first: a.b.example.com tries
         * .b.example.com, then .example.com, then .com */
        /* the wildcard needs a label before its suffix: ".w.test" is not
         * in *.w.test, hence the search from the second byte */
        for (const char *dot = h.n > 1 ? memchr(h.p + 1, '.', h.n - 1) : NULL; dot && r->nwild;
             dot = memchr(dot + 1, '.', (size_t)(h.p + h.n - dot - 1))) {
            hostent_t *we = host_find(r->wild, r->capwild, (pt_str_t){dot, (size_t)(h.p + h.n - dot)});
            if (we)
                walk_node(&w, we->root, path.p);
            if (dot + 1 >= h.p + h.n)
                break;
        }
    }
    walk_node(&w, r->any, path.p);
    if (r->nregex)
        try_regex(&w);
    /* regex routes limited to hosts: few; checked one by one */
    for (size_t i = 0; i < r->nregex; i++) {
        const entry_t *e = r->regex[i];
        if (e->host_kind == H_ANY || !better(e, w.best))
            continue;
        const char *hn = e->route->match.hosts.v[0];
        bool host_ok = false;
        for (size_t k = 0; k < e->route->match.hosts.n && !host_ok; k++) {
            hn = e->route->match.hosts.v[k];
            if (hn[0] == '*') {
                size_t sl = strlen(hn + 1);
                host_ok = h.n > sl && memcmp(h.p + h.n - sl, hn + 1, sl) == 0;
            } else {
                host_ok = pt_str_eq(h, pt_str_from(hn));
            }
        }
        if (!host_ok || pcre2_match(e->route->path_re[e->path_index], (PCRE2_SPTR)path.p, path.n, 0, 0, r->md,
                                    NULL) < 0)
            continue;
        if (e->route->npreds && !predicates_hold(r, e->route, req))
            continue;
        if (!method_ok(e->route, method)) {
            w.allowed |= e->route->methods_mask;
            continue;
        }
        w.best = e;
        m->nparams = 0;
    }
    m->route = w.best ? w.best->route : NULL;
    m->allowed = w.best ? 0 : w.allowed;
    return m->route != NULL;
}

/* ---- the reference: every entry, one by one ---- */

bool pt_router_path_match(const char *pat, pt_str_t path)
{
    const char *s = path.p, *end = path.p + path.n;
    while (*pat) {
        if (pat[0] == '/' && pat[1] == '*')
            return s == end || *s == '/'; /* a/ star takes "/a", "/a/" and everything below */
        if (s == end || *s != *pat)
            return false;
        if (pat[0] == '/' && pat[1] == ':') {
            s++;
            pat += 2;
            while (*pat && *pat != '/')
                pat++;
            const char *seg = s;
            while (s < end && *s != '/')
                s++;
            if (s == seg)
                return false;
            continue;
        }
        pat++;
        s++;
    }
    return s == end;
}

bool pt_router_lookup_brute(pt_router_t *r, pt_str_t host, pt_str_t path, unsigned method, const pt_h1_req_t *req,
                            pt_route_match_t *m)
{
    char hb[256];
    pt_str_t h = bare_host(host, hb, sizeof(hb));
    const entry_t *best = NULL;
    unsigned allowed = 0;
    for (size_t i = 0; i < r->nentries; i++) {
        const entry_t *e = &r->entries[i];
        const pt_route_conf_t *rc = e->route;
        if (rc->match.hosts.n) {
            const char *hn = rc->match.hosts.v[0];
            /* the entry stands for one host: find which by its kind and index */
            size_t idx = (size_t)(e - r->entries);
            size_t first = idx;
            while (first > 0 && r->entries[first - 1].route == rc)
                first--;
            hn = rc->match.hosts.v[(idx - first) % rc->match.hosts.n];
            bool ok;
            if (hn[0] == '*') {
                size_t sl = strlen(hn + 1);
                ok = h.n > sl && memcmp(h.p + h.n - sl, hn + 1, sl) == 0;
            } else {
                ok = pt_str_eq(h, pt_str_from(hn));
            }
            if (!ok)
                continue;
        }
        const char *pat = rc->match.paths.n ? rc->match.paths.v[e->path_index] : "/*";
        bool pm = e->kind == K_REGEX
                      ? pcre2_match(rc->path_re[e->path_index], (PCRE2_SPTR)path.p, path.n, 0, 0, r->md, NULL) >= 0
                      : pt_router_path_match(pat, path);
        if (!pm || !better(e, best))
            continue;
        if (rc->npreds && !predicates_hold(r, rc, req))
            continue;
        if (!method_ok(rc, method)) {
            allowed |= rc->methods_mask | ((rc->methods_mask & PT_M_GET) ? PT_M_HEAD : 0);
            continue;
        }
        best = e;
    }
    m->route = best ? best->route : NULL;
    m->allowed = best ? 0 : allowed;
    m->nparams = 0;
    return m->route != NULL;
}
