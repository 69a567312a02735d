/* grpc-web: a browser's gRPC-Web call (application/grpc-web, +proto, or
 * -text: base64) goes to a gRPC upstream as gRPC.  The request's
 * Content-Type becomes application/grpc for the upstream; the gRPC bridge
 * (grpc.c) decodes a text body, and writes the response for the browser:
 * its Content-Type, a text body in base64, and the trailers as the body's
 * last message (grpc_web.h).  Other requests on the route pass as they are
 * (an HTTP/2 gRPC client may share it).  Only on routes to a gRPC upstream
 * (scheme grpc or grpcs). */
#include "config.h"

#include <stddef.h>
#include <string.h>

#include "portico/conn.h"
#include "portico/filter.h"
#include "portico/grpc_web.h"
#include "portico/request.h"
#include "portico/schema.h"

typedef struct conf {
    const pt_node_t *node;
} conf_t;

static const pt_directive_t keys[] = {
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL},
};
static const pt_section_t schema = {
    "grpc-web", sizeof(conf_t), keys, NULL, NULL,
    "gRPC-Web calls from browsers (Content-Type application/grpc-web, application/grpc-web+proto, or "
    "application/grpc-web-text for base64 bodies), over HTTP/1.1 or HTTP/2, go to the route's gRPC upstream "
    "(scheme grpc or grpcs; anything else is an error at load) as gRPC calls. The answer keeps the call's "
    "mode: its Content-Type is application/grpc-web+proto or application/grpc-web-text+proto, a text body is "
    "base64 (each piece padded on its own, so it can be read as it arrives), and the trailers (grpc-status, "
    "grpc-message and the rest) come as the body's last message, flag 0x80; a call answered by a status alone "
    "has it in the head. A text body with a byte that is not base64, or that ends inside a quantum, gets "
    "grpc-status 13 and never reaches the upstream. grpc-timeout is passed on and is the call's deadline: "
    "past it the call ends with DEADLINE_EXCEEDED (4). Other requests on the route pass as they are: an "
    "HTTP/2 gRPC client may share it. For browsers on another origin, add cors with expose_headers: "
    "[grpc-status, grpc-message]; a preflight allows the request headers it asks for (x-grpc-web, "
    "x-user-agent, grpc-timeout) unless cors lists its own. Takes no keys: grpc-web: {}."};

typedef struct state {
    pt_grpc_web_mode_t mode;
} state_t;

static pt_verdict_t on_request(pt_conn_t *c, const pt_h1_req_t *req, const void *vconf, pt_fx_t *fx, void *vst)
{
    state_t *st = vst;
    const pt_route_conf_t *route = c->req ? c->req->route : NULL;
    if (!route || !route->up || (route->up->scheme != PT_SCHEME_GRPC && route->up->scheme != PT_SCHEME_GRPCS))
        return PT_NEXT; /* a global setting, on a route that is not gRPC's */
    const pt_h1_header_t *ct = pt_h1_find(req, PT_STR("content-type"));
    char up[64];
    pt_grpc_web_mode_t mode = ct ? pt_grpc_web_mode(ct->value, up, sizeof(up)) : PT_GRPC_WEB_NONE;
    if (mode == PT_GRPC_WEB_NONE)
        return PT_NEXT;
    char *v = pt_arena_strndup(&c->arena, up, strlen(up));
    if (!v || !pt_fx_add(c, fx, false, PT_HDR_SET, PT_STR("content-type"), pt_str_from(v)))
        return PT_FAIL;
    st->mode = mode;
    return PT_NEXT;
}

int pt_filter_link_grpc(pt_conf_ctx_t *cc, const pt_config_t *c, const pt_node_t *node, const char *scope,
                        const char *filter)
{
    if (strncmp(scope, "route:", 6) != 0)
        return 0; /* global or a consumer's: it acts on the routes to gRPC upstreams only */
    for (size_t i = 0; i < c->routes.n; i++) {
        const pt_route_conf_t *r = PT_LIST_AT(c->routes, pt_route_conf_t, i);
        if (!r->name || strcmp(r->name, scope + 6) != 0)
            continue;
        if (r->up && (r->up->scheme == PT_SCHEME_GRPC || r->up->scheme == PT_SCHEME_GRPCS))
            return 0;
        pt_conf_error(cc, node, "%s: %s needs a route to an upstream of scheme grpc or grpcs", scope, filter);
        return -1;
    }
    return 0;
}

static int link_conf(pt_conf_ctx_t *cc, const pt_config_t *c, void *vconf, const char *scope)
{
    return pt_filter_link_grpc(cc, c, ((conf_t *)vconf)->node, scope, "grpc-web");
}

pt_grpc_web_mode_t pt_grpc_web_of(const pt_fx_t *fx)
{
    const state_t *st = fx ? fx->state[PT_FILTER_GRPC_WEB] : NULL;
    return st ? st->mode : PT_GRPC_WEB_NONE;
}

const pt_filter_t pt_filter_grpc_web = {.name = "grpc-web", .schema = &schema, .state_size = sizeof(state_t),
                                        .on_request = on_request, .link = link_conf};
