/* Loading a configuration: parse, load through the schema, then the checks
 * that span sections (unique names, references).  Nothing here has side
 * effects, so a reload can load and throw away as it likes. */
#include "config.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <unistd.h>

#include "portico/cidr.h"
#include "portico/conf.h"
#include "portico/filter.h"
#include "portico/location.h"
#include "portico/config.h"
#include "portico/credentials.h"
#include "portico/schema.h"
#include "portico/secret.h"

static const pt_node_t *key_node(const pt_node_t *n, const char *key)
{
    const pt_node_t *k = pt_node_get(n, key);
    return k ? k : n;
}

typedef struct named {
    const char *name;
    size_t index;
    const pt_node_t *node;
} named_t;

static int cmp_named(const void *a, const void *b)
{
    const named_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : x->index < y->index ? -1 : x->index > y->index;
}

/* Sorted, so 100,000 routes are checked in n log n, not n squared. */
static void check_unique_names(pt_conf_ctx_t *cc, const pt_list_t *l, size_t size, size_t name_off,
                               const char *what)
{
    named_t *v = malloc((l->n ? l->n : 1) * sizeof(named_t));
    if (!v)
        return;
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++) {
        const char *obj = (const char *)l->v + i * size;
        const char *name = *(char *const *)(obj + name_off);
        if (name && !*name) /* the metrics' route="" is the requests no route took */
            pt_conf_error(cc, key_node(*(const pt_node_t *const *)obj, "name"), "a %s name may not be empty", what);
        else if (name) /* an item whose own keys failed to load may lack its name */
            v[n++] = (named_t){name, i, *(const pt_node_t *const *)obj};
    }
    qsort(v, n, sizeof(named_t), cmp_named);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(v[i].name, v[i - 1].name) != 0)
            continue;
        size_t first = i - 1;
        while (first > 0 && strcmp(v[first - 1].name, v[i].name) == 0)
            first--;
        pt_conf_error(cc, key_node(v[i].node, "name"), "duplicate %s name \"%s\"", what, v[i].name);
        pt_conf_note(cc, key_node(v[first].node, "name"), "\"%s\" is first defined here", v[i].name);
    }
    free(v);
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

/* Two disk tiers in one directory would index and remove each other's
 * files. */
static bool same_dir(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    while (na > 1 && a[na - 1] == '/')
        na--;
    while (nb > 1 && b[nb - 1] == '/')
        nb--;
    return na == nb && memcmp(a, b, na) == 0;
}

static void check_cache_paths(pt_conf_ctx_t *cc, const pt_config_t *c)
{
    for (size_t i = 0; i < c->caches.n; i++) {
        const pt_cache_conf_t *a = PT_LIST_AT(c->caches, pt_cache_conf_t, i);
        for (size_t j = 0; a->disk.node && a->disk.path && j < i; j++) {
            const pt_cache_conf_t *b = PT_LIST_AT(c->caches, pt_cache_conf_t, j);
            if (b->disk.node && b->disk.path && same_dir(a->disk.path, b->disk.path)) {
                pt_conf_error(cc, key_node(a->disk.node, "path"), "caches \"%s\" and \"%s\" have the same disk path %s",
                              b->name ? b->name : "", a->name ? a->name : "", a->disk.path);
                pt_conf_note(cc, key_node(b->disk.node, "path"), "\"%s\"'s is here", b->name ? b->name : "");
            }
        }
    }
}

static void check_routes(pt_conf_ctx_t *cc, pt_config_t *c)
{
    check_cache_paths(cc, c);
    check_unique_names(cc, &c->upstreams, sizeof(pt_upstream_conf_t), offsetof(pt_upstream_conf_t, name),
                       "upstream");
    check_unique_names(cc, &c->routes, sizeof(pt_route_conf_t), offsetof(pt_route_conf_t, name), "route");
    check_unique_names(cc, &c->caches, sizeof(pt_cache_conf_t), offsetof(pt_cache_conf_t, name), "cache");
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
        if (r->up) {
            if (pt_location_compile(cc, r) < 0)
                pt_conf_error(cc, r->node, "routes[%zu]: out of memory", i);
            continue;
        }
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

/* A path with an escaped slash (normal form: %2F or %5C) is matched only
 * where escaped_slashes keeps it; every other listener refuses or decodes
 * it before routing. */
static void check_escaped_slashes(pt_conf_ctx_t *cc, const pt_config_t *c)
{
    for (size_t i = 0; i < c->listeners.n; i++)
        if (PT_LIST_AT(c->listeners, pt_listener_conf_t, i)->escaped_slashes == PT_SLASHES_KEEP)
            return;
    for (size_t i = 0; i < c->routes.n; i++) {
        const pt_route_conf_t *r = PT_LIST_AT(c->routes, pt_route_conf_t, i);
        const pt_node_t *paths = r->match.node ? pt_node_get(r->match.node, "paths") : NULL;
        for (size_t k = 0; k < r->match.paths.n; k++) {
            const char *p = r->match.paths.v[k];
            if (!p || p[0] != '/' || (!strstr(p, "%2F") && !strstr(p, "%5C")))
                continue;
            pt_conf_error(cc, paths && paths->type == PT_NODE_SEQ && k < paths->nitems ? paths->items[k] : r->node,
                          "routes[%zu]: \"%s\" never matches: every listener refuses or decodes an escaped slash "
                          "in a request path (escaped_slashes: keep keeps it)",
                          i, p);
        }
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

/* Two routes with the same hosts, path, methods, predicates and priority
 * can never be told apart: the second would never be chosen. */
typedef struct sig {
    char *text;
    const pt_route_conf_t *route;
    size_t path;
} sig_t;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_sig(const void *a, const void *b)
{
    const sig_t *x = a, *y = b;
    int c = strcmp(x->text, y->text);
    return c ? c : x->route->index < y->route->index ? -1 : x->route->index > y->route->index;
}

static char *route_signature(pt_arena_t *a, const pt_route_conf_t *r, const char *path)
{
    char *parts[64];
    size_t n = 0, len = 64 + strlen(path);
    for (size_t i = 0; i < r->match.hosts.n && n < 32; i++)
        parts[n++] = r->match.hosts.v[i];
    qsort(parts, n, sizeof(char *), cmp_str);
    size_t hosts = n;
    for (size_t i = 0; i < r->npreds && n < 64; i++)
        parts[n++] = pt_arena_printf(a, "%d:%s=%s", r->preds[i].kind, r->preds[i].name, r->preds[i].value);
    qsort(parts + hosts, n - hosts, sizeof(char *), cmp_str);
    for (size_t i = 0; i < n; i++)
        len += strlen(parts[i]) + 1;
    char *sig = pt_arena_alloc(a, len), *p = sig;
    p += sprintf(p, "%lld|%u|%s|", (long long)r->priority, r->methods_mask, path);
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s%c", parts[i], i + 1 == hosts ? '|' : ',');
    return sig;
}

static bool all_set(const pt_strlist_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        if (!l->v[i])
            return false;
    return true;
}

static void check_indistinguishable(pt_conf_ctx_t *cc, pt_config_t *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->routes.n; i++) {
        const pt_route_conf_t *r = PT_LIST_AT(c->routes, pt_route_conf_t, i);
        n += r->match.paths.n ? r->match.paths.n : 1;
    }
    sig_t *v = malloc((n ? n : 1) * sizeof(sig_t));
    if (!v)
        return;
    size_t k = 0;
    for (size_t i = 0; i < c->routes.n; i++) {
        const pt_route_conf_t *r = PT_LIST_AT(c->routes, pt_route_conf_t, i);
        if (!r->name || !r->path_re || !all_set(&r->match.hosts))
            continue; /* not compiled: its own errors are reported already */
        for (size_t p = 0; p < (r->match.paths.n ? r->match.paths.n : 1); p++) {
            const char *path = r->match.paths.n ? r->match.paths.v[p] : "/*";
            if (!path)
                continue;
            v[k++] = (sig_t){route_signature(cc->arena, r, path), r, p};
        }
    }
    qsort(v, k, sizeof(sig_t), cmp_sig);
    for (size_t i = 1; i < k; i++) {
        if (strcmp(v[i].text, v[i - 1].text) != 0 || v[i].route == v[i - 1].route)
            continue;
        const pt_node_t *at = key_node(v[i].route->node, "match");
        pt_conf_error(cc, at, "routes[%zu] (\"%s\") can never be chosen: routes[%zu] (\"%s\") has the same hosts, "
                      "path, methods, predicates and priority", v[i].route->index, v[i].route->name,
                      v[i - 1].route->index, v[i - 1].route->name);
        pt_conf_note(cc, key_node(v[i - 1].route->node, "match"), "\"%s\" is defined here", v[i - 1].route->name);
    }
    free(v);
}

static int cmp_prov(const void *a, const void *b)
{
    const void *f = ((const pt_prov_t *)a)->field, *g = ((const pt_prov_t *)b)->field;
    return f < g ? -1 : f > g;
}

static pt_config_t *finish(pt_config_t *c, const char *file, pt_node_t *root, pt_diag_t *d)
{
    pt_conf_ctx_t cc = {.arena = &c->arena, .diag = d, .file = file, .prov = &c->prov, .config = c};
    size_t errors_before = d->errors;
    if (root) {
        pt_conf_synth_upstreams(&cc, root);
        pt_schema_load(&cc, &pt_schema_root, root, c);
        if (c->listeners.n == 0 && pt_node_get(root, "listeners"))
            pt_conf_error(&cc, pt_node_get(root, "listeners"), "listeners: at least one listener is needed");
        check_listeners(&cc, c);
        check_routes(&cc, c);
        check_escaped_slashes(&cc, c);
        check_indistinguishable(&cc, c);
        compile_trusted(&cc, c, root);
        check_unique_names(&cc, &c->consumers, sizeof(pt_consumer_conf_t), offsetof(pt_consumer_conf_t, name),
                           "consumer");
        if (d->errors == errors_before)
            pt_creds_index(&cc, c);
        if (d->errors == errors_before)
            pt_filters_resolve(&cc, c);
    }
    pt_diag_sort(d);
    if (!root || d->errors > errors_before) {
        pt_config_free(c);
        return NULL;
    }
    c->file = pt_arena_strdup(&c->arena, file);
    /* The access log prints route names: masked once here, not per request */
    for (size_t i = 0; i < c->routes.n; i++) {
        pt_route_conf_t *r = PT_LIST_AT(c->routes, pt_route_conf_t, i);
        char buf[1024];
        if (!r->name)
            continue;
        r->log_name = pt_secret_masked(r->name, buf, sizeof(buf));
        if (r->log_name == buf)
            r->log_name = pt_arena_strdup(&c->arena, buf);
    }
    for (size_t i = 0; i < c->consumers.n; i++) {
        pt_consumer_conf_t *co = PT_LIST_AT(c->consumers, pt_consumer_conf_t, i);
        char buf[1024];
        co->log_name = pt_secret_masked(co->name, buf, sizeof(buf));
        if (co->log_name == buf)
            co->log_name = pt_arena_strdup(&c->arena, buf);
    }
    /* -T looks each printed field up: by address, in n log n */
    if (c->prov.n)
        qsort(c->prov.v, c->prov.n, sizeof(pt_prov_t), cmp_prov);
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
    for (size_t i = 0; i < c->nregexes; i++)
        pcre2_code_free(c->regexes[i]);
    free(c->regexes);
    while (c->owned) {
        struct pt_owned *o = c->owned;
        c->owned = o->next;
        o->free(o->p);
        free(o);
    }
    pt_arena_free(&c->arena);
    free(c);
}

int pt_config_own(pt_conf_ctx_t *cc, void *p, void (*fn)(void *))
{
    struct pt_owned *o = malloc(sizeof(*o));
    if (!o) {
        fn(p);
        return -1;
    }
    *o = (struct pt_owned){p, fn, cc->config->owned};
    cc->config->owned = o;
    return 0;
}

void *pt_config_regex(pt_conf_ctx_t *cc, const pt_node_t *n, const char *pattern)
{
    pt_config_t *c = cc->config;
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0,
                                   &err, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof(msg));
        pt_conf_error(cc, n, "invalid regex \"%s\": %s at offset %zu", pattern, (char *)msg, (size_t)off);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* without JIT it still works, slower */
    if (c->nregexes == c->capregexes) {
        size_t cap = c->capregexes ? c->capregexes * 2 : 16;
        void **v = realloc(c->regexes, cap * sizeof(void *));
        if (!v) {
            pcre2_code_free(re);
            return NULL;
        }
        c->regexes = v;
        c->capregexes = cap;
    }
    c->regexes[c->nregexes++] = re;
    return re;
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
