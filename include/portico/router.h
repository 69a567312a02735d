/* Route lookup: host, path and method to a route.  This is the simple
 * ordered matcher: entries sorted by priority, then path specificity, then
 * file order, and tried in turn. */
#ifndef PORTICO_ROUTER_H
#define PORTICO_ROUTER_H

#include "portico/config-t.h"
#include "portico/str.h"

typedef struct pt_router pt_router_t;

/* Builds the lookup structure of c's routes; NULL when out of memory. */
pt_router_t *pt_router_build(const pt_config_t *c);
void pt_router_free(pt_router_t *r);
/* The route for a request, or NULL.  When NULL and *allowed is not 0, some
 * route matched host and path but not the method: *allowed holds the
 * methods that would have matched (answer 405). */
const pt_route_conf_t *pt_router_match(const pt_router_t *r, pt_str_t host, pt_str_t path, unsigned method,
                                       unsigned *allowed);
/* Does a path pattern match a path? (Exposed for tests.) */
bool pt_router_path_match(const char *pattern, pt_str_t path);

#endif
