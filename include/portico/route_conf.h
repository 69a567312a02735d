/* Compiling a route at load time (the check of the route schema section). */
#ifndef PORTICO_ROUTE_CONF_H
#define PORTICO_ROUTE_CONF_H

#include "portico/schema-t.h"

int pt_route_compile(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj);

#endif
