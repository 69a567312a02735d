/* ip-restriction: allow and deny lists of addresses and ranges (IPv4 and
 * IPv6).  A client in `deny` is refused; with an `allow` list, a client
 * outside it is refused too. */
#include "config.h"

#include <stddef.h>
#include <string.h>

#include "portico/cidr.h"
#include "portico/conf.h"
#include "portico/conn.h"
#include "portico/filter.h"
#include "portico/http.h"
#include "portico/request.h"
#include "portico/schema.h"

typedef struct conf {
    const pt_node_t *node;
    pt_strlist_t allow, deny;
    int64_t status;
    char *message;
    pt_cidr_t *callow, *cdeny;
    size_t nallow, ndeny;
} conf_t;

static int compile_list(pt_conf_ctx_t *cc, const pt_node_t *n, const char *key, const pt_strlist_t *l,
                        pt_cidr_t **out, size_t *nout)
{
    const pt_node_t *list = pt_node_get(n, key);
    *out = pt_arena_zalloc(cc->arena, (l->n + 1) * sizeof(pt_cidr_t));
    if (!*out)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < l->n; i++) {
        const char *err = l->v[i] ? pt_cidr_parse(l->v[i], &(*out)[*nout]) : "not a string";
        if (err) {
            pt_conf_error(cc, list && list->type == PT_NODE_SEQ ? list->items[i] : n, "%s[%zu]: %s", key, i, err);
            rc = -1;
        } else {
            (*nout)++;
        }
    }
    return rc;
}

static int check(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    conf_t *c = obj;
    if (!c->allow.n && !c->deny.n) {
        pt_conf_error(cc, n, "ip-restriction needs an allow or a deny list");
        return -1;
    }
    return compile_list(cc, n, "allow", &c->allow, &c->callow, &c->nallow) |
           compile_list(cc, n, "deny", &c->deny, &c->cdeny, &c->ndeny);
}

static const pt_directive_t keys[] = {
    {"allow", PT_T_LIST, offsetof(conf_t, allow), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem, NULL, NULL, 0,
     "list of addresses", "Addresses and ranges (10.0.0.0/8, 2001:db8::/32) that may pass; empty: any."},
    {"deny", PT_T_LIST, offsetof(conf_t, deny), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem, NULL, NULL, 0,
     "list of addresses", "Addresses and ranges refused, even when in allow."},
    {"status", PT_T_INT, offsetof(conf_t, status), "403", 400, 499, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The status of the refusal."},
    {"message", PT_T_STR, offsetof(conf_t, message), "403 Forbidden", 0, 0, NULL, NULL, NULL, NULL, NULL, 0,
     NULL, "The body of the refusal."},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL},
};
static const pt_section_t schema = {"ip-restriction", sizeof(conf_t), keys, check, NULL,
                                    "Allows or refuses clients by address (the connection's peer)."};

static pt_verdict_t on_request(pt_conn_t *c, const pt_h1_req_t *req, const void *vconf, pt_fx_t *fx, void *st)
{
    const conf_t *conf = vconf;
    const struct sockaddr *peer = (const struct sockaddr *)&c->peer;
    if (pt_cidr_match(conf->cdeny, conf->ndeny, peer) ||
        (conf->nallow && !pt_cidr_match(conf->callow, conf->nallow, peer))) {
        pt_req_respond(c, (int)conf->status, "text/plain", conf->message, strlen(conf->message), NULL,
                        req->method_bit == PT_M_HEAD);
        return PT_RESPOND;
    }
    return PT_NEXT;
}

const pt_filter_t pt_filter_ip_restriction = {.name = "ip-restriction", .schema = &schema, .on_request = on_request};
