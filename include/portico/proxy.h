/* Reverse proxying one request of a client connection to an upstream. */
#ifndef PORTICO_PROXY_H
#define PORTICO_PROXY_H

#include <stdbool.h>
#include <stdint.h>

#include "portico/config-t.h"
#include "portico/h1_parser.h"
#include "portico/outq.h"
#include "portico/path.h"

typedef struct pt_conn pt_conn_t;
typedef struct pt_proxy pt_proxy_t;
struct pt_location_ctx;

/* Starts proxying req (whose head is at c->ibuf + c->ipos, req->head_len
 * bytes) along route r.  The connection is in PT_CS_PROXY until the proxy
 * calls pt_conn_proxy_done. */
void pt_proxy_start(pt_conn_t *c, const pt_h1_req_t *req, const pt_route_conf_t *r);
/* The head to send upstream for req along route r: the route's and the
 * filters' rewrites and the forwarding fields, with the client's request
 * id adopted as this request's; grpc: no framing fields (the body is
 * HTTP/2 DATA).  Written into the request arena (*head); *stripped (may
 * be NULL) tells whether strip_prefix cut the path.  Returns its length;
 * 0 when it does not fit (431), or, with *head NULL, when memory ran out.
 * The proxy and gRPC calls both send this head. */
size_t pt_proxy_forward_head(pt_conn_t *c, const pt_h1_req_t *req, const pt_route_conf_t *r, bool grpc, char **head,
                             bool *stripped);
/* The consistent-hashing key of a request (its upstream's hash settings),
 * copied into the request arena; empty when the request has none. */
pt_str_t pt_proxy_hash_key(pt_conn_t *c, const pt_h1_req_t *req, const pt_upstream_conf_t *u);
/* Drives the proxy after an event on the client side. */
void pt_proxy_run(pt_proxy_t *p);
/* The client timer fired while proxying. */
void pt_proxy_client_timeout(pt_proxy_t *p);
/* The client connection is closing: release the upstream side. */
void pt_proxy_abort(pt_proxy_t *p);

/* ---- header rewriting (proxy_headers.c) ---- */

typedef struct pt_fwd_ctx {
    const pt_h1_req_t *req;
    const pt_route_conf_t *route;
    const struct sockaddr *peer;
    pt_str_t peer_ip; /* the same, as text */
    bool peer_trusted;    /* the client is one of trusted_proxies */
    pt_str_t request_id;
    bool body_chunked;    /* send Transfer-Encoding: chunked */
    int64_t body_length;  /* else Content-Length, when >= 0 */
    bool upgrade;
    bool tls;             /* the client came over TLS: X-Forwarded-Proto https */
    const struct pt_fx *fx; /* filter edits and a rewritten path, or NULL */
    bool path_plain;        /* the path is known to be in normal form (else it is normalised here) */
    int slashes;            /* the listener's escaped_slashes: the path sent is normalised as routed */
    bool *stripped;         /* out, or NULL: set when strip_prefix cut the path */
    struct pt_trace_req *trace; /* the request's trace: its fields replace the client's, or NULL */
} pt_fwd_ctx_t;

/* Writes the request head to send upstream into buf (size bytes).
 * Returns its length, or 0 when it does not fit. */
size_t pt_proxy_request_head(const pt_fwd_ctx_t *f, char *buf, size_t size);
/* What the proxy decided of a response's framing towards the client. */
typedef struct pt_proxy_framing {
    bool tunnel;  /* a 101: the head as it is, no framing of ours */
    bool length;  /* the upstream's Content-Length goes on */
    bool chunked; /* Transfer-Encoding: chunked (a length unknown to an HTTP/1.1 client) */
    bool close;   /* Connection: close */
    bool http10;  /* the client speaks HTTP/1.0 (kept alive: Connection: keep-alive) */
    struct pt_alog_entry *log; /* the access log entry that takes the fields sent, or NULL */
} pt_proxy_framing_t;
/* Queues the client's head for the upstream's response head r (parsed at
 * base): its status line and reason, its fields less the hop-by-hop ones,
 * the filters' edits (fx, may be NULL), Date, and the framing fr says;
 * with loc (may be NULL), strip_prefix put back into Location and
 * Content-Location (location.h).  Returns its length, 0 when memory ran
 * out (nothing queued). */
size_t pt_proxy_response_head(pt_outq_t *q, const pt_h1_resp_t *r, const char *base, const pt_proxy_framing_t *fr,
                              const struct pt_fx *fx, const struct pt_location_ctx *loc, const char *date);
/* Is this header hop-by-hop (Connection, Keep-Alive, Proxy-Connection, TE,
 * Trailer, Transfer-Encoding, Upgrade)?  None of them crosses a proxy, nor
 * may any appear in HTTP/2 (RFC 9113, 8.2.2). */
bool pt_proxy_hop_by_hop(pt_str_t name);
/* Is this response header hop-by-hop (or one we set ourselves)? */
bool pt_proxy_drop_response_header(pt_str_t name, pt_str_t connection_tokens, bool upgrade);
/* The Connection value if it names fields to drop, else an empty string. */
pt_str_t pt_proxy_connection_names(pt_str_t connection);
/* The request id to use: the client's X-Request-Id when it is sane, else
 * `generated`. */
pt_str_t pt_proxy_request_id(const pt_h1_req_t *req, pt_str_t generated);

#endif
