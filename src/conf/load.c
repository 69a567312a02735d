/* The schema engine: walks a node tree with a section table, fills the
 * struct the table describes, applies defaults and reports every problem
 * with its location and key path. */
#include "config.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "portico/conf.h"
#include "portico/config-t.h"
#include "portico/habits.h"
#include "portico/schema.h"
#include "portico/secret.h"

static void vdiag(pt_conf_ctx_t *cc, int sev, const pt_node_t *n, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
static void vdiag(pt_conf_ctx_t *cc, int sev, const pt_node_t *n, const char *fmt, va_list ap)
{
    char msg[1024], shown[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    /* A message about a value from ${NAME} shows it as written, whatever
     * its length; pt_diag_add masks the longer values everywhere else. */
    if (n && n->orig) {
        pt_secret_mask_one(msg, strlen(msg), n->s, n->orig, shown, sizeof(shown));
        memcpy(msg, shown, sizeof(msg));
    }
    uint32_t line = n ? n->line : 0, col = n ? n->col : 0;
    if (cc->path_len && sev != PT_DIAG_NOTE)
        pt_diag_add(cc->diag, sev, cc->file, line, col, "%s: %s", cc->path, msg);
    else
        pt_diag_add(cc->diag, sev, cc->file, line, col, "%s", msg);
}

void pt_conf_error(pt_conf_ctx_t *cc, const pt_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vdiag(cc, PT_DIAG_ERROR, n, fmt, ap);
    va_end(ap);
}

void pt_conf_error_key(pt_conf_ctx_t *cc, const pt_node_t *n, const char *key, const char *fmt, ...)
{
    const pt_node_t *at = pt_node_get(n, key);
    size_t old = pt_conf_path_push(cc, cc->path_len ? ".%s" : "%s", key);
    va_list ap;
    va_start(ap, fmt);
    vdiag(cc, PT_DIAG_ERROR, at ? at : n, fmt, ap);
    va_end(ap);
    pt_conf_path_pop(cc, old);
}

void pt_conf_warn(pt_conf_ctx_t *cc, const pt_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vdiag(cc, PT_DIAG_WARNING, n, fmt, ap);
    va_end(ap);
}

void pt_conf_note(pt_conf_ctx_t *cc, const pt_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vdiag(cc, PT_DIAG_NOTE, n, fmt, ap);
    va_end(ap);
}

size_t pt_conf_path_push(pt_conf_ctx_t *cc, const char *fmt, ...)
{
    size_t old = cc->path_len;
    va_list ap;
    va_start(ap, fmt);
    if (old < sizeof(cc->path) - 1) {
        int n = vsnprintf(cc->path + old, sizeof(cc->path) - old, fmt, ap);
        if (n > 0)
            cc->path_len = old + (size_t)n < sizeof(cc->path) ? old + (size_t)n : sizeof(cc->path) - 1;
    }
    va_end(ap);
    return old;
}

void pt_conf_path_pop(pt_conf_ctx_t *cc, size_t len)
{
    cc->path_len = len;
    cc->path[len] = '\0';
}

static size_t push_key(pt_conf_ctx_t *cc, const char *key)
{
    return pt_conf_path_push(cc, cc->path_len ? ".%s" : "%s", key);
}

static size_t type_size(pt_type_t t)
{
    switch (t) {
    case PT_T_STR:
        return sizeof(char *);
    case PT_T_BOOL:
        return sizeof(bool);
    case PT_T_ENUM:
        return sizeof(int);
    case PT_T_ADDR:
        return sizeof(pt_addr_t);
    default:
        return sizeof(int64_t);
    }
}

static const char *suggest(const char *word, const char *const *cands, size_t stride)
{
    const char *best = NULL;
    size_t best_d = strlen(word) <= 3 ? 1 : 2;
    for (const char *const *c = cands; *c; c = (const char *const *)((const char *)c + stride)) {
        size_t d = pt_str_distance(word, *c, best_d);
        if (d <= best_d && (!best || d < best_d)) {
            best = *c;
            best_d = d;
        }
    }
    return best;
}

/* Remembers that field's value came from ${NAME}, so that -T prints it as
 * written.  The list grows by doubling: a file may have a secret per route. */
static void record_prov(pt_conf_ctx_t *cc, const pt_node_t *n, const void *field)
{
    pt_list_t *l = cc->prov;
    if (!n->orig || !l)
        return;
    if (l->n == 0 || (l->n >= 8 && (l->n & (l->n - 1)) == 0)) {
        pt_prov_t *v = pt_arena_alloc(cc->arena, (l->n ? 2 * l->n : 8) * sizeof(pt_prov_t));
        if (!v)
            return;
        if (l->n)
            memcpy(v, l->v, l->n * sizeof(pt_prov_t));
        l->v = v;
    }
    ((pt_prov_t *)l->v)[l->n++] = (pt_prov_t){field, n->orig};
}

static bool want_scalar(pt_conf_ctx_t *cc, const pt_node_t *n, const char *what)
{
    if (n->type == PT_NODE_SCALAR)
        return true;
    if (n->type == PT_NODE_NULL)
        pt_conf_error(cc, n, "missing value: expected %s", what);
    else
        pt_conf_error(cc, n, "expected %s, not %s", what, pt_node_type_name(n));
    return false;
}

static int check_range(pt_conf_ctx_t *cc, const pt_directive_t *d, const pt_node_t *n, int64_t v,
                       const char *shown)
{
    if ((d->min || d->max) && (v < d->min || (d->max && v > d->max))) {
        if (d->type == PT_T_INT)
            pt_conf_error(cc, n, "%s is out of range %lld-%lld", shown, (long long)d->min,
                          (long long)d->max);
        else if (d->max)
            pt_conf_error(cc, n, "%s is out of range (%lld to %lld %s)", shown, (long long)d->min,
                          (long long)d->max, d->type == PT_T_SIZE ? "bytes" : "ms");
        else
            pt_conf_error(cc, n, "%s is too small (at least %lld %s)", shown, (long long)d->min,
                          d->type == PT_T_SIZE ? "bytes" : "ms");
        return -1;
    }
    return 0;
}

static int load_value(pt_conf_ctx_t *cc, const pt_directive_t *d, const pt_node_t *n, void *field);

static int load_list(pt_conf_ctx_t *cc, const pt_directive_t *d, const pt_node_t *n, pt_list_t *l)
{
    if (n->type == PT_NODE_NULL) {
        l->v = NULL;
        l->n = 0;
        return 0;
    }
    if (n->type != PT_NODE_SEQ) {
        pt_conf_error(cc, n, "expected a list, not %s%s", pt_node_type_name(n),
                      n->type == PT_NODE_SCALAR ? " (write [ value ] for a list of one)" : "");
        return -1;
    }
    size_t esize = d->sub ? d->sub->size : type_size(d->elem->type);
    l->v = pt_arena_zalloc(cc->arena, (n->nitems ? n->nitems : 1) * esize);
    l->n = n->nitems;
    if (!l->v)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n->nitems; i++) {
        size_t old = pt_conf_path_push(cc, "[%zu]", i);
        void *item = (char *)l->v + i * esize;
        if (d->sub)
            rc |= pt_schema_load(cc, d->sub, n->items[i], item);
        else
            rc |= load_value(cc, d->elem, n->items[i], item);
        pt_conf_path_pop(cc, old);
    }
    return rc;
}

static int load_kvmap(pt_conf_ctx_t *cc, const pt_node_t *n, pt_kvlist_t *l)
{
    if (n->type == PT_NODE_NULL)
        return 0;
    if (n->type != PT_NODE_MAP) {
        pt_conf_error(cc, n, "expected a map, not %s", pt_node_type_name(n));
        return -1;
    }
    l->v = pt_arena_zalloc(cc->arena, (n->npairs ? n->npairs : 1) * sizeof(pt_kv_t));
    if (!l->v)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n->npairs; i++) {
        const pt_node_t *v = n->pairs[i].value;
        size_t old = push_key(cc, n->pairs[i].key->s);
        if (!want_scalar(cc, v, "a string")) {
            rc = -1;
        } else {
            pt_kv_t *kv = &l->v[l->n++];
            kv->key = n->pairs[i].key->s;
            kv->value = v->s;
            record_prov(cc, v, &kv->value);
        }
        pt_conf_path_pop(cc, old);
    }
    return rc;
}

static int load_value(pt_conf_ctx_t *cc, const pt_directive_t *d, const pt_node_t *n, void *field)
{
    const char *err;
    int64_t v;
    record_prov(cc, n, field); /* whatever the type: -T prints it as written */
    switch (d->type) {
    case PT_T_STR:
        if (!want_scalar(cc, n, "a string"))
            return -1;
        *(char **)field = n->s;
        return 0;
    case PT_T_INT:
        if (!want_scalar(cc, n, "an integer"))
            return -1;
        if ((err = pt_value_int(n->s, &v))) {
            pt_conf_error(cc, n, "%s, not \"%s\"", err, n->s);
            return -1;
        }
        if (check_range(cc, d, n, v, pt_node_text(n)))
            return -1;
        *(int64_t *)field = v;
        return 0;
    case PT_T_BOOL:
        if (!want_scalar(cc, n, "true or false"))
            return -1;
        /* "true" in quotes is a string; but -T prints a value from ${NAME}
         * quoted, as written, and it must load back */
        if ((n->plain || n->orig) && strcmp(n->s, "true") == 0)
            *(bool *)field = true;
        else if ((n->plain || n->orig) && strcmp(n->s, "false") == 0)
            *(bool *)field = false;
        else {
            pt_conf_error(cc, n, "expected true or false, not \"%s\"", n->s);
            return -1;
        }
        return 0;
    case PT_T_DURATION:
    case PT_T_SIZE:
        if (!want_scalar(cc, n, d->type == PT_T_SIZE ? "a size" : "a duration"))
            return -1;
        err = d->type == PT_T_SIZE ? pt_value_size(n->s, &v) : pt_value_duration(n->s, &v);
        if (err) {
            pt_conf_error(cc, n, "%s, not \"%s\"", err, n->s);
            return -1;
        }
        if (check_range(cc, d, n, v, pt_node_text(n)))
            return -1;
        *(int64_t *)field = v;
        return 0;
    case PT_T_ENUM:
        if (!want_scalar(cc, n, "a string"))
            return -1;
        for (int i = 0; d->enums[i]; i++)
            if (strcmp(d->enums[i], n->s) == 0) {
                *(int *)field = i;
                return 0;
            }
        {
            char known[512] = "";
            size_t off = 0;
            for (int i = 0; d->enums[i] && off < sizeof(known); i++)
                off += (size_t)snprintf(known + off, sizeof(known) - off, "%s%s", i ? ", " : "", d->enums[i]);
            const char *s = suggest(n->s, d->enums, sizeof(char *));
            if (s)
                pt_conf_error(cc, n, "unknown value \"%s\"; did you mean \"%s\"?", n->s, s);
            else
                pt_conf_error(cc, n, "unknown value \"%s\" (expected one of: %s)", n->s, known);
        }
        return -1;
    case PT_T_ADDR:
        if (!want_scalar(cc, n, "an address"))
            return -1;
        if ((err = pt_value_addr(n->s, field, (d->flags & PT_F_PORT0) != 0))) {
            pt_conf_error(cc, n, "%s, not \"%s\"", err, n->s);
            return -1;
        }
        ((pt_addr_t *)field)->text = n->s;
        return 0;
    case PT_T_SECTION:
        if (n->type == PT_NODE_NULL) {
            /* "key:" with nothing after it: the section with its defaults. */
            pt_node_t empty = *n;
            empty.type = PT_NODE_MAP;
            pt_node_t *copy = pt_arena_alloc(cc->arena, sizeof(empty));
            if (!copy)
                return -1;
            *copy = empty;
            return pt_schema_load(cc, d->sub, copy, field);
        }
        return pt_schema_load(cc, d->sub, n, field);
    case PT_T_LIST:
        return load_list(cc, d, n, field);
    case PT_T_KVMAP:
        return load_kvmap(cc, n, field);
    case PT_T_CUSTOM:
        return d->set(cc, n, field);
    }
    return -1;
}

static int apply_default(pt_conf_ctx_t *cc, const pt_directive_t *d, const pt_node_t *parent, void *field)
{
    if (d->type == PT_T_SECTION) {
        if (d->flags & PT_F_OPTIONAL)
            return 0;
        pt_node_t *empty = pt_arena_zalloc(cc->arena, sizeof(*empty));
        if (!empty)
            return -1;
        *empty = (pt_node_t){.type = PT_NODE_MAP, .line = parent->line, .col = parent->col, .file = parent->file};
        return pt_schema_load(cc, d->sub, empty, field);
    }
    if (!d->def)
        return 0;
    pt_node_t *dn = pt_arena_zalloc(cc->arena, sizeof(*dn));
    if (!dn)
        return -1;
    *dn = (pt_node_t){.type = PT_NODE_SCALAR, .line = parent->line, .col = parent->col,
                      .file = parent->file, .s = (char *)d->def, .len = strlen(d->def), .plain = true};
    return load_value(cc, d, dn, field);
}

int pt_schema_load(pt_conf_ctx_t *cc, const pt_section_t *s, const pt_node_t *n, void *obj)
{
    pt_node_t *shorthand = NULL;
    if (n->type == PT_NODE_SCALAR && s->shorthand) {
        /* "- 10.0.0.1:80" stands for "- { address: 10.0.0.1:80 }" */
        pt_node_t *key = pt_arena_zalloc(cc->arena, sizeof(*key));
        shorthand = pt_arena_zalloc(cc->arena, sizeof(*shorthand));
        pt_node_pair_t *pair = pt_arena_zalloc(cc->arena, sizeof(*pair));
        if (!key || !shorthand || !pair)
            return -1;
        *key = (pt_node_t){.type = PT_NODE_SCALAR, .line = n->line, .col = n->col, .file = n->file,
                           .s = (char *)s->shorthand, .len = strlen(s->shorthand), .plain = true};
        *pair = (pt_node_pair_t){key, (pt_node_t *)n};
        *shorthand = (pt_node_t){.type = PT_NODE_MAP, .line = n->line, .col = n->col, .file = n->file,
                                 .pairs = pair, .npairs = 1};
        n = shorthand;
    }
    if (n->type != PT_NODE_MAP) {
        pt_conf_error(cc, n, "expected a map of keys, not %s", pt_node_type_name(n));
        return -1;
    }
    *(const pt_node_t **)obj = n;
    size_t nkeys = 0;
    while (s->keys[nkeys].key)
        nkeys++;
    bool seen[64] = {false};
    if (nkeys > 64)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n->npairs; i++) {
        const pt_node_t *k = n->pairs[i].key;
        size_t j = 0;
        while (j < nkeys && strcmp(s->keys[j].key, k->s) != 0)
            j++;
        if (j == nkeys) {
            char hint[512];
            const char *best = suggest(k->s, &s->keys[0].key, sizeof(pt_directive_t));
            if (pt_habits_key(s->name, k->s, n->pairs[i].value, hint, sizeof(hint)))
                pt_conf_error(cc, k, "unknown key \"%s\"%s", k->s, hint); /* Kong's, APISIX's, nginx's name */
            else if (best)
                pt_conf_error(cc, k, "unknown key \"%s\"; did you mean \"%s\"?", k->s, best);
            else
                pt_conf_error(cc, k, "unknown key \"%s\"", k->s);
            rc = -1;
            continue;
        }
        const pt_directive_t *d = &s->keys[j];
        if (n->pairs[i].value->type == PT_NODE_NULL && !(d->flags & PT_F_REQUIRED) && d->type != PT_T_SECTION &&
            d->type != PT_T_LIST && d->type != PT_T_KVMAP)
            continue; /* "key: ~" is the same as leaving the key out */
        seen[j] = true;
        size_t old = push_key(cc, k->s);
        if (load_value(cc, &s->keys[j], n->pairs[i].value, (char *)obj + s->keys[j].offset))
            rc = -1;
        pt_conf_path_pop(cc, old);
    }
    for (size_t j = 0; j < nkeys; j++) {
        if (seen[j])
            continue;
        const pt_directive_t *d = &s->keys[j];
        if (d->flags & PT_F_REQUIRED) {
            pt_conf_error(cc, n, "missing required key \"%s\"", d->key);
            rc = -1;
            continue;
        }
        size_t old = push_key(cc, d->key);
        if (apply_default(cc, d, n, (char *)obj + d->offset))
            rc = -1;
        pt_conf_path_pop(cc, old);
    }
    if (rc == 0 && s->check)
        rc = s->check(cc, n, obj);
    return rc;
}
