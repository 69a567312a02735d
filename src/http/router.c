#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "portico/http.h"
#include "portico/router.h"

typedef struct entry {
    const pt_route_conf_t *route;
    const char *path; /* NULL: any path */
    int specificity;
} entry_t;

struct pt_router {
    entry_t *v;
    size_t n;
};

/* exact > :param > prefix; longer patterns before shorter ones. */
static int specificity(const char *p)
{
    if (!p)
        return 0;
    int len = (int)strlen(p);
    if (strchr(p, '*'))
        return 1000000 + len;
    if (strstr(p, "/:"))
        return 2000000 + len;
    return 3000000 + len;
}

static int cmp_entry(const void *a, const void *b)
{
    const entry_t *x = a, *y = b;
    if (x->route->priority != y->route->priority)
        return x->route->priority > y->route->priority ? -1 : 1;
    if (x->specificity != y->specificity)
        return x->specificity > y->specificity ? -1 : 1;
    if (x->route->index != y->route->index)
        return x->route->index < y->route->index ? -1 : 1;
    return x < y ? -1 : 1;
}

pt_router_t *pt_router_build(const pt_config_t *c)
{
    pt_router_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < c->routes.n; i++) {
        const pt_route_conf_t *rc = PT_LIST_AT(c->routes, pt_route_conf_t, i);
        n += rc->match.paths.n ? rc->match.paths.n : 1;
    }
    r->v = calloc(n ? n : 1, sizeof(entry_t));
    if (!r->v) {
        free(r);
        return NULL;
    }
    for (size_t i = 0; i < c->routes.n; i++) {
        const pt_route_conf_t *rc = PT_LIST_AT(c->routes, pt_route_conf_t, i);
        if (!rc->match.paths.n)
            r->v[r->n++] = (entry_t){rc, NULL, 0};
        for (size_t k = 0; k < rc->match.paths.n; k++)
            r->v[r->n++] = (entry_t){rc, rc->match.paths.v[k], specificity(rc->match.paths.v[k])};
    }
    qsort(r->v, r->n, sizeof(entry_t), cmp_entry);
    return r;
}

void pt_router_free(pt_router_t *r)
{
    if (r) {
        free(r->v);
        free(r);
    }
}

bool pt_router_path_match(const char *pat, pt_str_t path)
{
    const char *s = path.p, *end = path.p + path.n;
    while (*pat) {
        if (pat[0] == '/' && pat[1] == '*') {
            /* a pattern ending in slash-star takes "/a", "/a/" and all below */
            return s == end || *s == '/';
        }
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

static bool host_match(const pt_route_conf_t *rc, pt_str_t host)
{
    if (!rc->match.hosts.n)
        return true;
    /* without the port, and without a trailing dot */
    const char *colon = host.n && host.p[0] != '[' ? memchr(host.p, ':', host.n) : NULL;
    if (colon)
        host.n = (size_t)(colon - host.p);
    if (host.n && host.p[host.n - 1] == '.')
        host.n--;
    for (size_t i = 0; i < rc->match.hosts.n; i++) {
        const char *h = rc->match.hosts.v[i];
        if (h[0] == '*' && h[1] == '.') {
            size_t sl = strlen(h + 1); /* ".example.com" */
            if (host.n > sl && strncasecmp(host.p + host.n - sl, h + 1, sl) == 0)
                return true;
        } else if (pt_str_caseeq_cs(host, h)) {
            return true;
        }
    }
    return false;
}

const pt_route_conf_t *pt_router_match(const pt_router_t *r, pt_str_t host, pt_str_t path, unsigned method,
                                       unsigned *allowed)
{
    *allowed = 0;
    for (size_t i = 0; i < r->n; i++) {
        const entry_t *e = &r->v[i];
        if (e->path && !pt_router_path_match(e->path, path))
            continue;
        if (!host_match(e->route, host))
            continue;
        unsigned mask = e->route->methods_mask;
        if (!mask || (method & mask) || (method == PT_M_HEAD && (mask & PT_M_GET)))
            return e->route;
        *allowed |= mask | ((mask & PT_M_GET) ? PT_M_HEAD : 0);
    }
    return NULL;
}
