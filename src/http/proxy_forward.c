/* What a request takes upstream (proxy.h): the head the proxy and gRPC
 * calls send, and the key consistent hashing picks its target by. */
#include "config.h"

#include <string.h>

#include "portico/cidr.h"
#include "portico/conn.h"
#include "portico/filter.h"
#include "portico/path.h"
#include "portico/proxy.h"
#include "portico/request.h"
#include "portico/trace.h"
#include "portico/upstream.h"

/* The consistent-hashing key of a request, pointing into its head. */
static pt_str_t key_from(pt_conn_t *c, const pt_h1_req_t *req, int on, const char *name)
{
    pt_str_t v = PT_STR_NULL;
    switch (on) {
    case PT_HASH_HEADER: {
        const pt_h1_header_t *h = name ? pt_h1_find(req, pt_str_from(name)) : NULL;
        if (h)
            v = h->value;
        break;
    }
    case PT_HASH_COOKIE:
        if (name)
            v = pt_h1_cookie(req, name);
        break;
    case PT_HASH_QUERY:
        if (name)
            v = pt_h1_query_arg(req->query, name);
        break;
    case PT_HASH_IP:
        v = pt_conn_peer_ip(c);
        break;
    case PT_HASH_URI:
        v = req->target;
        break;
    }
    return v;
}

pt_str_t pt_proxy_hash_key(pt_conn_t *c, const pt_h1_req_t *req, const pt_upstream_conf_t *u)
{
    pt_str_t v = key_from(c, req, u->hash.on, u->hash.name);
    if (!v.n)
        v = key_from(c, req, u->hash.fallback, u->hash.name);
    char *copy = v.n ? pt_arena_strndup(&c->arena, v.p, v.n) : NULL;
    return copy ? (pt_str_t){copy, v.n} : PT_STR_NULL;
}

size_t pt_proxy_forward_head(pt_conn_t *c, const pt_h1_req_t *req, const pt_route_conf_t *r, bool grpc, char **head,
                             bool *stripped)
{
    const pt_config_t *conf = c->w->conf;
    pt_fwd_ctx_t f = {
        .req = req,
        .route = r,
        .peer = (const struct sockaddr *)&c->peer,
        .peer_ip = pt_conn_peer_ip(c),
        .peer_trusted = conf->ntrusted && pt_cidr_match(conf->trusted, conf->ntrusted, (const struct sockaddr *)&c->peer),
        .request_id = pt_proxy_request_id(req, (pt_str_t){c->req->reqid, c->req->reqid_len}),
        .body_chunked = !grpc && req->chunked,
        .body_length = grpc ? -1 : req->content_length, /* gRPC: the body is DATA */
        .upgrade = !grpc && req->upgrade,
        .tls = c->ssl != NULL,
        .fx = c->req->fx,
        .slashes = pt_path_slashes(c->acc->ls->conf),
        .path_plain = c->req->path_plain,
        .stripped = stripped,
        .trace = r->tracing ? c->req->trace : NULL,
    };
    if (f.request_id.p != c->req->reqid) /* the client's id is the one we log */
        pt_req_set_id(c->req, f.request_id);
    /* Each field may grow by a byte ("a:" becomes "a: "); the forwarding
     * fields, the route's Host and the filters' edits come on top. */
    size_t cap = req->head_len + req->nheaders + 1024 + (r->upstream_host ? strlen(r->upstream_host) : 0) +
                 pt_fx_request_bytes(c->req->fx) + (c->req->trace ? PT_TRACE_FIELDS_MAX : 0);
    *head = pt_arena_alloc(&c->arena, cap);
    return *head ? pt_proxy_request_head(&f, *head, cap) : 0;
}
