/* Loading a configuration: parse, load through the schema, then the checks
 * that span sections (unique names, references).  Nothing here has side
 * effects, so a reload can load and throw away as it likes. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <unistd.h>

#include "portico/cidr.h"
#include "portico/conf.h"
#include "portico/config.h"
#include "portico/schema.h"

static const pt_node_t *key_node(const pt_node_t *n, const char *key)
{
    const pt_node_t *k = pt_node_get(n, key);
    return k ? k : n;
}

static void check_unique_names(pt_conf_ctx_t *cc, const pt_list_t *l, size_t size, size_t name_off,
                               const char *what)
{
    for (size_t i = 0; i < l->n; i++) {
        const char *obj_i = (const char *)l->v + i * size;
        const char *name_i = *(char *const *)(obj_i + name_off);
        /* An item whose own keys failed to load may lack its name. */
        for (size_t j = 0; name_i && j < i; j++) {
            const char *obj_j = (const char *)l->v + j * size;
            const char *name_j = *(char *const *)(obj_j + name_off);
            if (name_j && strcmp(name_i, name_j) == 0) {
                const pt_node_t *ni = *(const pt_node_t *const *)obj_i;
                const pt_node_t *nj = *(const pt_node_t *const *)obj_j;
                pt_conf_error(cc, key_node(ni, "name"), "duplicate %s name \"%s\"", what, name_i);
                pt_conf_note(cc, key_node(nj, "name"), "\"%s\" is first defined here", name_i);
                break;
            }
        }
    }
}

static bool same_addr(const pt_addr_t *a, const pt_addr_t *b)
{
    return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

static void check_listeners(pt_conf_ctx_t *cc, pt_config_t *c)
{
    check_unique_names(cc, &c->listeners, sizeof(pt_listener_conf_t), offsetof(pt_listener_conf_t, name),
                       "listener");
    for (size_t i = 0; i < c->listeners.n; i++) {
        pt_listener_conf_t *li = PT_LIST_AT(c->listeners, pt_listener_conf_t, i);
        if (!li->address.len || !li->name)
            continue; /* its own errors are reported already */
        bool port0 = ((struct sockaddr_in *)&li->address.ss)->sin_port == 0;
        for (size_t j = 0; j < i && !port0; j++) {
            pt_listener_conf_t *lj = PT_LIST_AT(c->listeners, pt_listener_conf_t, j);
            if (lj->address.len && lj->name && same_addr(&li->address, &lj->address)) {
                pt_conf_error(cc, key_node(li->node, "address"), "listeners[%zu]: address %s is already used",
                              i, li->address.text);
                pt_conf_note(cc, key_node(lj->node, "address"), "by listener \"%s\" here", lj->name);
            }
        }
        if (c->admin.node && c->admin.address.len && !port0 && same_addr(&li->address, &c->admin.address)) {
            pt_conf_error(cc, key_node(c->admin.node, "address"),
                          "admin.address: %s is also the address of listener \"%s\"", c->admin.address.text,
                          li->name);
            pt_conf_note(cc, key_node(li->node, "address"), "listener \"%s\" is defined here", li->name);
        }
    }
}

static void check_routes(pt_conf_ctx_t *cc, pt_config_t *c)
{
    check_unique_names(cc, &c->upstreams, sizeof(pt_upstream_conf_t), offsetof(pt_upstream_conf_t, name),
                       "upstream");
    check_unique_names(cc, &c->routes, sizeof(pt_route_conf_t), offsetof(pt_route_conf_t, name), "route");
    for (size_t i = 0; i < c->routes.n; i++) {
        pt_route_conf_t *r = PT_LIST_AT(c->routes, pt_route_conf_t, i);
        r->index = i;
        if (!r->upstream)
            continue;
        for (size_t j = 0; j < c->upstreams.n; j++) {
            pt_upstream_conf_t *u = PT_LIST_AT(c->upstreams, pt_upstream_conf_t, j);
            if (u->name && strcmp(u->name, r->upstream) == 0)
                r->up = u;
        }
        if (r->up)
            continue;
        char known[256] = "";
        size_t off = 0;
        const char *best = NULL;
        size_t best_d = 3;
        for (size_t j = 0; j < c->upstreams.n && off < sizeof(known); j++) {
            const char *name = PT_LIST_AT(c->upstreams, pt_upstream_conf_t, j)->name;
            if (!name)
                continue;
            off += (size_t)snprintf(known + off, sizeof(known) - off, "%s%s", j ? ", " : "", name);
            size_t d = pt_str_distance(r->upstream, name, 2);
            if (d < best_d) {
                best_d = d;
                best = name;
            }
        }
        const pt_node_t *un = key_node(r->node, "upstream");
        if (best)
            pt_conf_error(cc, un, "routes[%zu].upstream: unknown upstream \"%s\"; did you mean \"%s\"?", i,
                          r->upstream, best);
        else if (c->upstreams.n)
            pt_conf_error(cc, un, "routes[%zu].upstream: unknown upstream \"%s\" (known: %s)", i, r->upstream,
                          known);
        else
            pt_conf_error(cc, un, "routes[%zu].upstream: unknown upstream \"%s\" (no upstreams are defined)", i,
                          r->upstream);
    }
}

static void compile_trusted(pt_conf_ctx_t *cc, pt_config_t *c, const pt_node_t *root)
{
    if (!c->trusted_proxies.n)
        return;
    c->trusted = pt_arena_zalloc(&c->arena, c->trusted_proxies.n * sizeof(pt_cidr_t));
    if (!c->trusted)
        return;
    const pt_node_t *list = pt_node_get(root, "trusted_proxies");
    for (size_t i = 0; i < c->trusted_proxies.n; i++) {
        if (!c->trusted_proxies.v[i])
            continue; /* not a string: reported already */
        const char *err = pt_cidr_parse(c->trusted_proxies.v[i], &c->trusted[c->ntrusted]);
        if (err)
            pt_conf_error(cc, list && list->type == PT_NODE_SEQ ? list->items[i] : root,
                          "trusted_proxies[%zu]: %s, not \"%s\"", i, err, c->trusted_proxies.v[i]);
        else
            c->ntrusted++;
    }
}

static pt_config_t *finish(pt_config_t *c, const char *file, pt_node_t *root, pt_diag_t *d)
{
    pt_conf_ctx_t cc = {.arena = &c->arena, .diag = d, .file = file, .prov = &c->prov};
    size_t errors_before = d->errors;
    if (root) {
        pt_schema_load(&cc, &pt_schema_root, root, c);
        if (c->listeners.n == 0 && pt_node_get(root, "listeners"))
            pt_conf_error(&cc, pt_node_get(root, "listeners"), "listeners: at least one listener is needed");
        check_listeners(&cc, c);
        check_routes(&cc, c);
        compile_trusted(&cc, c, root);
    }
    pt_diag_sort(d);
    if (!root || d->errors > errors_before) {
        pt_config_free(c);
        return NULL;
    }
    c->file = pt_arena_strdup(&c->arena, file);
    for (int i = 0; i < 32; i++)
        snprintf(c->sha256_hex + 2 * i, 3, "%02x", c->sha256[i]);
    c->loaded_at = time(NULL);
    return c;
}

static pt_config_t *new_config(void)
{
    pt_config_t *c = calloc(1, sizeof(*c));
    if (c)
        pt_arena_init(&c->arena, 16384, 0);
    return c;
}

pt_config_t *pt_config_load(const char *path, pt_diag_t *d)
{
    pt_config_t *c = new_config();
    if (!c)
        return NULL;
    pt_node_t *root = pt_conf_parse_file(path, &c->arena, d, c->sha256);
    return finish(c, path, root, d);
}

pt_config_t *pt_config_load_text(const char *name, const char *text, size_t len, pt_diag_t *d)
{
    pt_config_t *c = new_config();
    if (!c)
        return NULL;
    pt_node_t *root = pt_conf_parse(name, text, len, &c->arena, d);
    return finish(c, name, root, d);
}

void pt_config_free(pt_config_t *c)
{
    if (!c)
        return;
    pt_arena_free(&c->arena);
    free(c);
}

void pt_config_dump(FILE *f, const pt_config_t *c)
{
    fprintf(f, "# effective configuration of %s (sha256 %s)\n", c->file, c->sha256_hex);
    pt_schema_dump(f, &pt_schema_root, c, &c->prov);
}

int pt_config_workers(const pt_config_t *c)
{
    if (c->workers > 0)
        return (int)c->workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

/* ---- what changed between two generations ---- */

static char *item_text(const pt_section_t *s, const void *obj)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    pt_schema_dump(f, s, obj, NULL);
    fclose(f);
    return buf;
}

static void diff_list(const pt_section_t *s, const pt_list_t *a, const pt_list_t *b, size_t name_off,
                      const char *what, char *out, size_t size, size_t *off)
{
    size_t added = 0, removed = 0, changed = 0;
    for (size_t i = 0; i < b->n; i++) {
        const char *ob = (const char *)b->v + i * s->size;
        const char *name = *(char *const *)(ob + name_off);
        const char *oa = NULL;
        for (size_t j = 0; j < a->n && !oa; j++) {
            const char *cand = (const char *)a->v + j * s->size;
            if (strcmp(*(char *const *)(cand + name_off), name) == 0)
                oa = cand;
        }
        if (!oa) {
            added++;
            continue;
        }
        char *ta = item_text(s, oa), *tb = item_text(s, ob);
        if (!ta || !tb || strcmp(ta, tb) != 0)
            changed++;
        free(ta);
        free(tb);
    }
    removed = a->n + added - b->n;
    const char *sign[] = {"+", "-", "~"};
    size_t counts[] = {added, removed, changed};
    for (int k = 0; k < 3; k++)
        if (counts[k] && *off < size)
            *off += (size_t)snprintf(out + *off, size - *off, "%s%s%zu %s%s", *off ? ", " : "", sign[k],
                                     counts[k], what, counts[k] == 1 ? "" : "s");
}

void pt_config_diff(const pt_config_t *a, const pt_config_t *b, char *out, size_t size)
{
    size_t off = 0;
    out[0] = '\0';
    diff_list(&pt_schema_listener, &a->listeners, &b->listeners, offsetof(pt_listener_conf_t, name), "listener",
              out, size, &off);
    diff_list(&pt_schema_upstream, &a->upstreams, &b->upstreams, offsetof(pt_upstream_conf_t, name), "upstream",
              out, size, &off);
    diff_list(&pt_schema_route, &a->routes, &b->routes, offsetof(pt_route_conf_t, name), "route", out, size,
              &off);
    /* Everything else: compare the whole files minus the lists. */
    pt_config_t ga = *a, gb = *b;
    ga.listeners = gb.listeners = ga.upstreams = gb.upstreams = ga.routes = gb.routes = (pt_list_t){0};
    char *ta = item_text(&pt_schema_root, &ga), *tb = item_text(&pt_schema_root, &gb);
    if ((!ta || !tb || strcmp(ta, tb) != 0) && off < size)
        off += (size_t)snprintf(out + off, size - off, "%s~global settings", off ? ", " : "");
    free(ta);
    free(tb);
    if (off == 0)
        snprintf(out, size, "no changes");
}
