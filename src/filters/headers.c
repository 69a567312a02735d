/* request-headers and response-headers: set, add and remove header fields
 * on the way to the upstream or back to the client.  Values are templates:
 * ${route}, ${param.NAME}, ${client_ip}, ${request_id}, ${trace_id}, ${host}, ${path}
 * and the ${tls_*} ones (filter.c). */
#include "config.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "portico/conf.h"
#include "portico/conn.h"
#include "portico/filter.h"
#include "portico/http.h"
#include "portico/schema.h"

typedef struct conf {
    const pt_node_t *node;
    pt_kvlist_t set, add;
    pt_strlist_t remove;
    pt_list_t statuses; /* int64_t: response-headers only */
    pt_tpl_t **set_tpl, **add_tpl;
} conf_t;

static int check_name(pt_conf_ctx_t *cc, const pt_node_t *n, const char *name)
{
    static const char *const ours[] = {"host", "content-length", "transfer-encoding", "connection", "upgrade",
                                       "keep-alive", "te", "trailer", NULL};
    for (const char *p = name; *p; p++)
        if (!pt_http_is_tchar((unsigned char)*p)) {
            pt_conf_error(cc, n, "invalid character in header name \"%s\"", name);
            return -1;
        }
    for (int i = 0; ours[i]; i++)
        if (strcasecmp(name, ours[i]) == 0) {
            pt_conf_error(cc, n, "header \"%s\" is set by Portico%s", name,
                          i == 0 ? "; use the route's upstream_host" : "");
            return -1;
        }
    return 0;
}

static int compile_map(pt_conf_ctx_t *cc, const pt_node_t *n, const char *key, const pt_kvlist_t *l, pt_tpl_t ***out)
{
    const pt_node_t *map = pt_node_get(n, key);
    *out = pt_arena_zalloc(cc->arena, (l->n + 1) * sizeof(pt_tpl_t *));
    if (!*out)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < l->n; i++) {
        const pt_node_t *at = map && map->type == PT_NODE_MAP && i < map->npairs ? map->pairs[i].key : n;
        if (check_name(cc, at, l->v[i].key) < 0 || !((*out)[i] = pt_tpl_compile(cc, at, l->v[i].value, PT_TPL_FIELD)))
            rc = -1;
    }
    return rc;
}

static int check(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    conf_t *c = obj;
    int rc = compile_map(cc, n, "set", &c->set, &c->set_tpl) | compile_map(cc, n, "add", &c->add, &c->add_tpl);
    const pt_node_t *rl = pt_node_get(n, "remove");
    for (size_t i = 0; i < c->remove.n; i++)
        if (!c->remove.v[i] || check_name(cc, rl && rl->type == PT_NODE_SEQ ? rl->items[i] : n, c->remove.v[i]) < 0)
            rc = -1;
    return rc;
}

/* The keys both header filters have. */
#define EDIT_KEYS \
    {"set", PT_T_KVMAP, offsetof(conf_t, set), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, \
     "Fields set to these values, replacing any of the same name."}, \
    {"add", PT_T_KVMAP, offsetof(conf_t, add), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, \
     "Fields added, next to any of the same name."}, \
    {"remove", PT_T_LIST, offsetof(conf_t, remove), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem, NULL, NULL, 0, \
     "list of strings", "Fields removed."}, \

static const pt_directive_t resp_keys[] = {
    EDIT_KEYS
    {"statuses", PT_T_LIST, offsetof(conf_t, statuses), NULL, 0, 0, NULL, NULL, &pt_schema_status_elem, NULL, NULL, 0,
     "list of integers", "Only for responses with one of these statuses. Empty: every response."},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL},
};

static const pt_directive_t keys[] = {
    EDIT_KEYS
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL},
};
static const pt_section_t req_schema = {"request-headers", sizeof(conf_t), keys, check, NULL,
                                        "Changes the request headers sent upstream."};
static const pt_section_t resp_schema = {"response-headers", sizeof(conf_t), resp_keys, check, NULL,
                                         "Changes the response headers sent to the client."};

/* Appends the edits of conf to v.  0, or the first failed expansion's
 * code; on the response side a value that cannot be used is no edit but a
 * removal, so neither it nor the upstream's field of that name is sent. */
static int edits(pt_conn_t *c, const pt_h1_req_t *req, const conf_t *conf, pt_fx_t *fx, bool resp)
{
    int rc = 0;
    for (size_t i = 0; i < conf->remove.n; i++)
        pt_fx_add(c, fx, resp, PT_HDR_REMOVE, pt_str_from(conf->remove.v[i]), PT_STR_NULL);
    for (size_t k = 0; k < 2; k++) {
        const pt_kvlist_t *l = k ? &conf->add : &conf->set;
        pt_tpl_t *const *tpl = k ? conf->add_tpl : conf->set_tpl;
        for (size_t i = 0; i < l->n; i++) {
            pt_str_t val;
            int e = pt_tpl_expand(tpl[i], c, req, &val);
            if (e < 0 && !rc)
                rc = e;
            pt_fx_add(c, fx, resp, e < 0 ? PT_HDR_REMOVE : k ? PT_HDR_ADD : PT_HDR_SET, pt_str_from(l->v[i].key), val);
        }
    }
    return rc;
}

static pt_verdict_t on_request_side(pt_conn_t *c, const pt_h1_req_t *req, const void *conf, pt_fx_t *fx, void *st)
{
    int rc = edits(c, req, conf, fx, false);
    return rc < 0 ? pt_tpl_refuse(c, req, rc) : PT_NEXT;
}

static pt_verdict_t on_response_side(pt_conn_t *c, const void *vconf, pt_fx_t *fx, void *st, int status)
{
    const conf_t *conf = vconf;
    if (conf->statuses.n) {
        bool hit = false;
        for (size_t i = 0; i < conf->statuses.n; i++)
            hit |= ((const int64_t *)conf->statuses.v)[i] == status;
        if (!hit)
            return PT_NEXT;
    }
    edits(c, NULL, conf, fx, true);
    return PT_NEXT;
}

const pt_filter_t pt_filter_request_headers = {.name = "request-headers", .schema = &req_schema,
                                               .on_request = on_request_side};
const pt_filter_t pt_filter_response_headers = {.name = "response-headers", .schema = &resp_schema,
                                                .on_response = on_response_side};

/* Does an edit list drop or replace this field? */
bool pt_fx_add(pt_conn_t *c, pt_fx_t *fx, bool resp, int op, pt_str_t name, pt_str_t value)
{
    pt_hdr_edit_t **v = resp ? &fx->resp : &fx->req;
    size_t *n = resp ? &fx->nresp : &fx->nreq, *cap = resp ? &fx->capresp : &fx->capreq;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        pt_hdr_edit_t *nv = *n < PT_FX_MAX_EDITS ? pt_arena_alloc(&c->arena, nc * sizeof(*nv)) : NULL;
        if (!nv)
            return false;
        if (*n)
            memcpy(nv, *v, *n * sizeof(*nv));
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = (pt_hdr_edit_t){op, name, value};
    return true;
}

bool pt_fx_overrides(const pt_hdr_edit_t *v, size_t n, pt_str_t name)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].op != PT_HDR_ADD && pt_str_field_eq(v[i].name, name))
            return true;
    return false;
}

size_t pt_fx_request_bytes(const pt_fx_t *fx)
{
    size_t n = fx ? fx->path.n : 0;
    for (size_t i = 0; fx && i < fx->nreq; i++)
        n += fx->req[i].name.n + fx->req[i].value.n + 4;
    return n;
}
