/* What `portico -t` says of a valid configuration that may not do what
 * was meant (see config.h).  Hints are notes, not warnings: they are
 * printed by -t and -T only, never logged at start-up or reload, where the
 * same notes would come back with every reload of a file that means them. */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "portico/conf.h"
#include "portico/config.h"
#include "portico/diag.h"

#define MAX_NOTES 8 /* then one line for the rest: -t stays readable with 10,000 routes */

typedef struct path_ref {
    const char *path;
    const pt_route_conf_t *route;
} path_ref_t;

static int cmp_ref(const void *a, const void *b)
{
    return strcmp(((const path_ref_t *)a)->path, ((const path_ref_t *)b)->path);
}

/* "/a/b" exact: no :param, no * or *rest, not a ~regex. */
static bool is_exact(const char *p)
{
    if (p[0] != '/')
        return false;
    for (; *p; p++)
        if (p[0] == '/' && (p[1] == ':' || p[1] == '*'))
            return false;
    return true;
}

/* A path of another route under exact path e ("/a/..." for "/a"), found
 * in the sorted list v, or NULL.  Every path is under "/": that says
 * nothing, so none is reported for it. */
static const path_ref_t *under(const path_ref_t *v, size_t n, const char *e, const pt_route_conf_t *self)
{
    size_t len = strlen(e), lo = 0, hi = n;
    if (len == 1)
        return NULL;
    while (lo < hi) { /* the first path after e */
        size_t mid = (lo + hi) / 2;
        if (strcmp(v[mid].path, e) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < n && strncmp(v[i].path, e, len) == 0; i++)
        if (v[i].path[len] == '/' && v[i].route != self)
            return &v[i];
    return NULL;
}

static const pt_node_t *path_node(const pt_route_conf_t *r, size_t i)
{
    const pt_node_t *l = pt_node_get(r->match.node, "paths");
    return l && l->type == PT_NODE_SEQ && i < l->nitems ? l->items[i] : r->node;
}

/* Kong matches a path as a prefix, and so do nginx's locations: someone
 * used to them writes paths: [/api/orders] for /api/orders/7 too. */
static void note_exact(const pt_config_t *c, pt_diag_t *d, const pt_route_conf_t *r, size_t i,
                       const path_ref_t *other)
{
    const char *p = r->match.paths.v[i];
    size_t len = strlen(p);
    bool slash = p[len - 1] == '/';
    const pt_node_t *at = path_node(r, i);
    char also[384] = "", name[160] = "";
    if (other)
        snprintf(also, sizeof(also), "; route \"%s\" has \"%s\" under it", other->route->name, other->path);
    if (pt_node_get(r->node, "name"))
        snprintf(name, sizeof(name), " (\"%s\")", r->name);
    pt_diag_add(d, PT_DIAG_NOTE, c->file, at->line, at->col,
                "routes[%zu]%s: path \"%s\" is exact: it matches %s only, not what is under it as a Kong path or "
                "an nginx location would%s; write \"%s%s*\" to match %s%s",
                r->index, name, p, p, also, p, slash ? "" : "/", len == 1 ? "every path" : p,
                len == 1 ? "" : " and every path under it");
}

void pt_config_hints(const pt_config_t *c, pt_diag_t *d)
{
    size_t n = 0;
    for (size_t i = 0; i < c->routes.n; i++)
        n += PT_LIST_AT(c->routes, pt_route_conf_t, i)->match.paths.n;
    path_ref_t *v = malloc((n ? n : 1) * sizeof(*v));
    if (!v)
        return;
    n = 0;
    for (size_t i = 0; i < c->routes.n; i++) {
        const pt_route_conf_t *r = PT_LIST_AT(c->routes, pt_route_conf_t, i);
        for (size_t k = 0; k < r->match.paths.n; k++)
            v[n++] = (path_ref_t){r->match.paths.v[k], r};
    }
    qsort(v, n, sizeof(*v), cmp_ref);
    size_t notes = 0, more = 0;
    const pt_node_t *first_more = NULL;
    for (size_t i = 0; i < c->routes.n; i++) {
        const pt_route_conf_t *r = PT_LIST_AT(c->routes, pt_route_conf_t, i);
        for (size_t k = 0; k < r->match.paths.n; k++) {
            if (!is_exact(r->match.paths.v[k]))
                continue;
            /* A route that answers by itself serves that one path, which
             * is what exact means; one to an upstream, or one with another
             * route under it, is where a prefix was likely meant. */
            const path_ref_t *other = under(v, n, r->match.paths.v[k], r);
            if (!r->upstream && !other)
                continue;
            if (notes < MAX_NOTES) {
                note_exact(c, d, r, k, other);
                notes++;
            } else if (!more++) {
                first_more = path_node(r, k);
            }
        }
    }
    if (more)
        pt_diag_add(d, PT_DIAG_NOTE, c->file, first_more->line, first_more->col,
                    "%zu more exact path%s like these, from here on (a path ending in /* matches a prefix)", more,
                    more == 1 ? "" : "s");
    free(v);
}
