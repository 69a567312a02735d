/* The request: what one HTTP request owns from its head to its log line,
 * whichever connection it came on (an HTTP/1.1 connection, or an HTTP/2
 * stream connection).  It lives in the connection's request arena and is
 * gone when the request ends.  Everything later stages read of the head
 * (route parameters, filter edits, the log entry, the request id) is copied
 * into it before the input buffer may move (pt_req_detach): nothing here
 * points into a client or upstream buffer after the head is handed over.
 *
 * After routing and the access filters, a request is answered by one
 * content source: a respond route, the upstream proxy, a gRPC call or the
 * admin API.  Every HTTP/1.1 answer goes out through response.c. */
#ifndef PORTICO_REQUEST_H
#define PORTICO_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "portico/accesslog.h"
#include "portico/conn.h"
#include "portico/h1_parser.h"
#include "portico/router.h"

#define PT_REQID_MAX 128 /* the longest client X-Request-Id taken as it is */

typedef struct pt_req {
    pt_conn_t *c;        /* the connection it came on */
    pt_alog_entry_t ent; /* its access-log entry */
    const pt_route_conf_t *route;
    pt_route_match_t match; /* the route and its parameters */
    struct pt_fx *fx;       /* what the route's filters decided, or NULL */
    char reqid[PT_REQID_MAX + 1]; /* the request id, NUL-terminated for logs */
    uint8_t reqid_len;
    bool grpc;              /* content-type application/grpc: Portico's own errors are gRPC statuses */
    unsigned method_bit;    /* the parser's PT_M_*; 0: another method, or a head that did not parse */
    bool path_plain;        /* its path was already in normal form (routing found it so) */
    struct pt_proxy *proxy; /* the content source answering it, while it does */
    struct pt_grpc *grpc_call;
    struct pt_scrape_job *scrape; /* GET /metrics being made (admin_metrics.c) */
    struct pt_trace_req *trace; /* NULL: not traced (no tracing: block) */
    /* a body read away after the request was answered (respond routes) */
    int64_t body_left;
    bool body_chunked;
    pt_h1_chunked_t chunked;
} pt_req_t;

/* A content source: answers a routed, filtered request.  start takes the
 * head (still in the connection's input buffer, head_len bytes at ipos)
 * and either answers at once (pt_req_respond) or takes the connection
 * over (the proxy, gRPC) until it calls pt_req_source_done. */
typedef struct pt_source {
    const char *name;
    void (*start)(pt_conn_t *c, const pt_h1_req_t *req, const pt_route_conf_t *r);
} pt_source_t;

/* A new request on c, from its head (NULL: a head that could not be
 * parsed).  NULL when out of memory (c is then closing). */
pt_req_t *pt_req_start(pt_conn_t *c, const pt_h1_req_t *req);
/* Routes the request, runs its filters, and hands it to its content source. */
void pt_req_handle(pt_conn_t *c, pt_h1_req_t *req);
/* The request is over: filters' on_done, the access-log line, the arena
 * reset.  c->req is NULL afterwards. */
void pt_req_end(pt_conn_t *c);
/* Appends a complete response of Portico's own (an error, a redirect, the
 * admin API): through the one response path, with the filters' edits.
 * extra: more header lines ("Allow: GET\r\n"), or NULL. */
void pt_req_respond(pt_conn_t *c, int status, const char *ctype, const char *body, size_t len, const char *extra,
                    bool head_only);
/* The same with a body referenced, not copied: hold is released once the
 * body was sent or dropped (and at once when it is not queued). */
typedef struct pt_outq_hold pt_outq_hold_t;
void pt_req_respond_held(pt_conn_t *c, int status, const char *ctype, const char *body, size_t len,
                         const char *extra, bool head_only, pt_outq_hold_t *hold);
/* The same for a plain error: "NNN Reason\n", and the connection closes. */
void pt_req_respond_error(pt_conn_t *c, int status);
/* Copies every string of the request that later stages read (the log
 * entry, route parameters, filter edits) out of the input buffer into the
 * request arena: called when the head is handed over, after which the
 * buffer may move.  Sets closing when the arena is full. */
void pt_req_detach(pt_conn_t *c);
/* Debug builds: asserts that nothing of the request points into the input
 * buffer (the rule pt_req_detach establishes). */
void pt_req_assert_detached(const pt_conn_t *c);
/* The access log's $target with the value of every query argument `name`
 * replaced by *** (a credential read from the query never reaches a log). */
void pt_req_redact_query(pt_conn_t *c, const pt_h1_req_t *req, const char *name);
/* Takes the client's request id (at most PT_REQID_MAX bytes, checked by
 * pt_proxy_request_id) as this request's id. */
void pt_req_set_id(pt_req_t *r, pt_str_t id);
/* A filter that suspended the request is ready: the pipeline goes on from
 * the event loop (never from inside the caller's callback). */
void pt_req_resume(pt_conn_t *c);

#endif
