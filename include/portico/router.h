/* The router: host + path + method + predicates -> route.
 *
 * A trie over path segments per host (exact hosts in a hash, *.wildcards
 * looked up by suffix, plus one tree for routes without hosts).  Literal
 * edges live in one hash table keyed by (node, segment), so a lookup costs
 * the same with 10 routes or 100,000.  `:name` segments and `*`/`*rest`
 * catch-alls hang off each node; regex paths (~re) are tried last.
 * Among the routes that match: higher priority, then the more specific
 * path (exact > :param > prefix, longer > shorter), then the more specific
 * host (exact > wildcard > none), then file order. */
#ifndef PORTICO_ROUTER_H
#define PORTICO_ROUTER_H

#include <stdbool.h>

#include "portico/config-t.h"
#include "portico/h1_parser.h"
#include "portico/str.h"

#define PT_ROUTER_MAX_PARAMS 16

typedef struct pt_router pt_router_t;

typedef struct pt_route_param {
    pt_str_t name, value;
} pt_route_param_t;

typedef struct pt_route_match {
    const pt_route_conf_t *route; /* NULL: no route */
    unsigned allowed;             /* when NULL: methods of routes that matched all but the method (405) */
    size_t nparams;
    pt_route_param_t params[PT_ROUTER_MAX_PARAMS]; /* values point into the path given */
} pt_route_match_t;

/* Builds the lookup structure of c's routes (in each worker: it owns
 * PCRE2 match data).  NULL when out of memory. */
pt_router_t *pt_router_build(const pt_config_t *c);
void pt_router_free(pt_router_t *r);
/* Finds the route for a request.  path must be normalised (pt_path_normalize);
 * req gives headers, query and cookies for predicates (may be NULL when no
 * route has predicates).  Returns m->route != NULL. */
bool pt_router_lookup(pt_router_t *r, pt_str_t host, pt_str_t path, unsigned method, const pt_h1_req_t *req,
                      pt_route_match_t *m);
/* The same answer the slow way, trying every route: for tests and the fuzzer. */
bool pt_router_lookup_brute(pt_router_t *r, pt_str_t host, pt_str_t path, unsigned method, const pt_h1_req_t *req,
                            pt_route_match_t *m);
/* Does a path pattern match a path? (One pattern, for tests.) */
bool pt_router_path_match(const char *pattern, pt_str_t path);

#endif
