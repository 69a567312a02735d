/* acl: allows or denies the consumer an auth filter found, by its groups
 * (Kong's and APISIX's acl / consumer-restriction).  A consumer in a
 * `deny` group is refused; with an `allow` list, one in none of its groups
 * is refused too (403).  A request no auth filter named a consumer for is
 * refused with 401. */
#include "config.h"

#include <string.h>

#include "portico/auth.h"
#include "portico/conf.h"
#include "portico/config.h"
#include "portico/conn.h"
#include "portico/filter.h"
#include "portico/schema.h"

typedef struct conf {
    const pt_node_t *node;
    pt_strlist_t allow, deny;
} conf_t;

static int check(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    conf_t *c = obj;
    if (!c->allow.n == !c->deny.n) {
        pt_conf_error(cc, n, "acl has an allow list or a deny list (one of them)");
        return -1;
    }
    return 0;
}

static const pt_directive_t keys[] = {
    {"allow", PT_T_LIST, offsetof(conf_t, allow), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem, NULL, NULL, 0,
     "list of groups", "Only consumers in one of these groups pass."},
    {"deny", PT_T_LIST, offsetof(conf_t, deny), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem, NULL, NULL, 0,
     "list of groups", "Consumers in any of these groups are refused."},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL},
};
static const pt_section_t schema = {
    "acl", sizeof(conf_t), keys, check, NULL,
    "Allows or refuses consumers by their groups, after the auth filters: 403 for a consumer refused, 401 "
    "when no consumer was found. Example: acl: { allow: [partners] }."};

static bool in_any(const pt_consumer_conf_t *co, const pt_strlist_t *l)
{
    for (size_t i = 0; i < co->groups.n; i++)
        for (size_t k = 0; k < l->n; k++)
            if (strcmp(co->groups.v[i], l->v[k]) == 0)
                return true;
    return false;
}

static pt_verdict_t on_request(pt_conn_t *c, const pt_h1_req_t *req, const void *vconf, pt_fx_t *fx, void *st)
{
    const conf_t *conf = vconf;
    const pt_consumer_conf_t *co = fx->auth.consumer;
    if (!co)
        return pt_auth_refuse(c, req, 401, PT_AUTH_MISSING, "No consumer: this route needs an authenticated one",
                              NULL);
    if (in_any(co, &conf->deny) || (conf->allow.n && !in_any(co, &conf->allow)))
        return pt_auth_refuse(c, req, 403, PT_AUTH_DENIED, "You cannot consume this service", NULL);
    return PT_NEXT;
}

/* A group no consumer has is a typo more often than a plan. */
static int link_conf(pt_conf_ctx_t *cc, const pt_config_t *c, void *vconf, const char *scope)
{
    const conf_t *conf = vconf;
    for (int k = 0; k < 2; k++) {
        const pt_strlist_t *l = k ? &conf->deny : &conf->allow;
        for (size_t i = 0; i < l->n; i++) {
            bool known = false;
            for (size_t j = 0; j < c->consumers.n && !known; j++) {
                const pt_consumer_conf_t *co = PT_LIST_AT(c->consumers, pt_consumer_conf_t, j);
                for (size_t g = 0; g < co->groups.n && !known; g++)
                    known = l->v[i] && co->groups.v[g] && strcmp(l->v[i], co->groups.v[g]) == 0;
            }
            if (!known)
                pt_conf_warn(cc, pt_node_get(conf->node, k ? "deny" : "allow"), "acl: no consumer is in group \"%s\"",
                             l->v[i] ? l->v[i] : "");
        }
    }
    return 0;
}

const pt_filter_t pt_filter_acl = {.name = "acl", .schema = &schema, .on_request = on_request, .link = link_conf};
