/* Upstreams for the URLs filters fetch from (forward-auth's uri, jwt-auth's
 * jwks.uri): each gets an upstream, so the internal client reaches it with
 * what every upstream has (name resolution, keep-alive pools, TLS with
 * verification, /status).  Like nginx's proxy_pass, a URL whose host is
 * the name of an upstream of the file goes to that upstream; any other is
 * given one named by its scheme, host and port ("https://idp.example:443"),
 * made before the file is loaded, as if it had been written in it.  -T
 * prints it, and loading -T's output finds it by that name. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "portico/conf.h"
#include "portico/config.h"
#include "portico/schema.h"
#include "portico/value.h"

/* Where filters keep a URL: the filter's name, then the keys down to it. */
static const char *const url_keys[][3] = {
    {"forward-auth", "uri", NULL},
    {"jwt-auth", "jwks", "uri"},
};

void pt_uri_upstream_name(const pt_uri_t *u, char *buf, size_t size)
{
    snprintf(buf, size, "%s://%s:%d", u->https ? "https" : "http", u->host, u->port);
}

static pt_node_t *scalar(pt_arena_t *a, const pt_node_t *at, const char *s)
{
    pt_node_t *n = pt_arena_zalloc(a, sizeof(*n));
    char *copy = pt_arena_strdup(a, s);
    if (!n || !copy)
        return NULL;
    *n = (pt_node_t){.type = PT_NODE_SCALAR, .line = at->line, .col = at->col, .file = at->file, .s = copy,
                     .len = strlen(copy), .plain = false};
    return n;
}

static bool seq_push(pt_arena_t *a, pt_node_t *seq, pt_node_t *item)
{
    pt_node_t **v = pt_arena_alloc(a, (seq->nitems + 1) * sizeof(*v));
    if (!v || !item)
        return false;
    if (seq->nitems)
        memcpy(v, seq->items, seq->nitems * sizeof(*v));
    v[seq->nitems++] = item;
    seq->items = v;
    return true;
}

static bool map_put(pt_arena_t *a, pt_node_t *map, pt_node_t *key, pt_node_t *value)
{
    pt_node_pair_t *v = pt_arena_alloc(a, (map->npairs + 1) * sizeof(*v));
    if (!v || !key || !value)
        return false;
    if (map->npairs)
        memcpy(v, map->pairs, map->npairs * sizeof(*v));
    v[map->npairs++] = (pt_node_pair_t){key, value};
    map->pairs = v;
    return true;
}

static bool has_upstream(const pt_node_t *ups, const char *name)
{
    for (size_t i = 0; ups && ups->type == PT_NODE_SEQ && i < ups->nitems; i++) {
        const pt_node_t *n = pt_node_get(ups->items[i], "name");
        if (n && n->type == PT_NODE_SCALAR && strcmp(n->s, name) == 0)
            return true;
    }
    return false;
}

/* { name: NAME, scheme: S, targets: [ "HOST:PORT" ] }, at the URL's node */
static pt_node_t *upstream_node(pt_arena_t *a, const pt_node_t *at, const pt_uri_t *u, const char *name)
{
    char target[300];
    snprintf(target, sizeof(target), "%s:%d", u->host, u->port);
    pt_node_t *m = pt_arena_zalloc(a, sizeof(*m)), *targets = pt_arena_zalloc(a, sizeof(*targets));
    if (!m || !targets)
        return NULL;
    *m = (pt_node_t){.type = PT_NODE_MAP, .line = at->line, .col = at->col, .file = at->file};
    *targets = (pt_node_t){.type = PT_NODE_SEQ, .line = at->line, .col = at->col, .file = at->file};
    bool ok = seq_push(a, targets, scalar(a, at, target)) &&
              map_put(a, m, scalar(a, at, "name"), scalar(a, at, name)) &&
              map_put(a, m, scalar(a, at, "scheme"), scalar(a, at, u->https ? "https" : "http")) &&
              map_put(a, m, scalar(a, at, "targets"), targets);
    return ok ? m : NULL;
}

static void synth_one(pt_conf_ctx_t *cc, pt_node_t *root, const pt_node_t *url)
{
    pt_uri_t u;
    if (!url || url->type != PT_NODE_SCALAR || pt_value_uri(url->s, &u))
        return; /* the filter reports it */
    pt_node_t *ups = pt_node_get(root, "upstreams");
    if (ups && ups->type != PT_NODE_SEQ)
        return; /* reported by the loader */
    char name[300];
    pt_uri_upstream_name(&u, name, sizeof(name));
    if ((!u.port_given && has_upstream(ups, u.host)) || has_upstream(ups, name))
        return;
    if (!ups) {
        ups = pt_arena_zalloc(cc->arena, sizeof(*ups));
        if (!ups || !map_put(cc->arena, root, scalar(cc->arena, root, "upstreams"), ups))
            return;
        *ups = (pt_node_t){.type = PT_NODE_SEQ, .line = url->line, .col = url->col, .file = url->file};
    }
    seq_push(cc->arena, ups, upstream_node(cc->arena, url, &u, name));
}

static void synth_filters(pt_conf_ctx_t *cc, pt_node_t *root, const pt_node_t *filters)
{
    for (size_t k = 0; k < sizeof(url_keys) / sizeof(url_keys[0]); k++) {
        const pt_node_t *n = pt_node_get(filters, url_keys[k][0]);
        for (size_t d = 1; d < 3 && url_keys[k][d] && n; d++)
            if (!(n->type == PT_NODE_SCALAR && strcmp(url_keys[k][d], "uri") == 0)) /* jwks: URL, uri's shorthand */
                n = pt_node_get(n, url_keys[k][d]);
        synth_one(cc, root, n);
    }
}

void pt_conf_synth_upstreams(pt_conf_ctx_t *cc, pt_node_t *root)
{
    if (!root || root->type != PT_NODE_MAP)
        return;
    synth_filters(cc, root, pt_node_get(root, "global_filters"));
    synth_one(cc, root, pt_node_get(pt_node_get(root, "tracing"), "endpoint")); /* span export */
    static const char *const lists[] = {"routes", "consumers"};
    for (size_t l = 0; l < 2; l++) {
        const pt_node_t *seq = pt_node_get(root, lists[l]);
        for (size_t i = 0; seq && seq->type == PT_NODE_SEQ && i < seq->nitems; i++)
            synth_filters(cc, root, pt_node_get(seq->items[i], "filters"));
    }
}

const pt_upstream_conf_t *pt_conf_uri_upstream(const pt_config_t *c, const pt_uri_t *u)
{
    char name[300];
    pt_uri_upstream_name(u, name, sizeof(name));
    const pt_upstream_conf_t *by_host = NULL, *by_name = NULL;
    for (size_t i = 0; i < c->upstreams.n; i++) {
        const pt_upstream_conf_t *up = PT_LIST_AT(c->upstreams, pt_upstream_conf_t, i);
        if (!up->name)
            continue;
        if (!u->port_given && strcmp(up->name, u->host) == 0)
            by_host = up;
        if (strcmp(up->name, name) == 0)
            by_name = up;
    }
    return by_host ? by_host : by_name;
}
