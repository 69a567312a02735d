/* Location and Content-Location through a route with strip_prefix: the
 * upstream answers in its own paths (/orders/7), which the client knows
 * under the prefix (/api/orders/7).  As nginx's `proxy_redirect default`
 * does, the prefix is put back into:
 *  - an absolute path, /orders/7;
 *  - an absolute URL (or a //authority reference) whose authority is the
 *    upstream's own: the Host the request was sent with, or a target's
 *    address (host:port, the port optional when it is the scheme's
 *    default), http://10.0.1.10:8080/orders/7.  It becomes the absolute
 *    path /api/orders/7, so no internal address reaches the client.
 * Anything else is left as it is: a relative reference (orders/7) is
 * resolved by the client against a URL that has the prefix already, and
 * other hosts are not the upstream's to speak for.  Only requests whose
 * path strip_prefix did cut are rewritten (not one a path-rewrite filter
 * rewrote, nor a path of the route outside the prefix). */
#ifndef PORTICO_LOCATION_H
#define PORTICO_LOCATION_H

#include <stdbool.h>

#include "portico/config-t.h"
#include "portico/h1_parser.h"
#include "portico/str.h"

/* A route's rewriting, compiled at load (route->location). */
typedef struct pt_location {
    pt_str_t prefix; /* strip_prefix without its trailing slash */
    pt_str_t *own;   /* the targets' addresses, host:port */
    size_t nown;
} pt_location_t;

/* One response's: the route's, and the Host its request went upstream
 * with (in the request arena). */
typedef struct pt_location_ctx {
    const pt_location_t *loc;
    pt_str_t host;
} pt_location_ctx_t;

/* Sets r->location for a route with strip_prefix, rewrite_location and an
 * upstream (r->up resolved); leaves it NULL otherwise.  0, or -1 when
 * memory ran out. */
int pt_location_compile(pt_conf_ctx_t *cc, pt_route_conf_t *r);
/* Does the prefix go back into value?  Then *keep is what follows it (a
 * part of value, or "/"), never longer than value. */
bool pt_location_rewrite(const pt_location_ctx_t *lc, pt_str_t value, pt_str_t *keep);
/* The same for a response field: false unless it is a Location or a
 * Content-Location (the rewrite hook of pt_resp_head_t; arg is a
 * pt_location_ctx_t). */
bool pt_location_field(const pt_h1_header_t *f, const void *arg, pt_str_t *keep);

#endif
