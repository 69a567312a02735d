/* gRPC towards upstreams (scheme: grpc or grpcs): HTTP/2 client sessions,
 * pooled per worker and target, many calls on each; and gRPC statuses for
 * what Portico itself answers to a gRPC request. */
#ifndef PORTICO_GRPC_H
#define PORTICO_GRPC_H

#include "portico/config-t.h"
#include "portico/h1_parser.h"

typedef struct pt_conn pt_conn_t;
typedef struct pt_grpc pt_grpc_t;
typedef struct pt_upstream pt_upstream_t;
typedef struct pt_target pt_target_t;

/* Starts a call for the request c has just routed to r. */
void pt_grpc_start(pt_conn_t *c, const pt_h1_req_t *req, const pt_route_conf_t *r);
/* The connection's loop step while the call is under way. */
void pt_grpc_run(pt_grpc_t *g);
/* The client went away: the upstream stream is cancelled. */
void pt_grpc_abort(pt_grpc_t *g);
/* At worker exit: closes the target's HTTP/2 connections. */
void pt_grpc_close_target(pt_target_t *t);

/* A trailers-only gRPC response with this status and message, queued on c. */
void pt_grpc_error(pt_conn_t *c, int code, const char *message);
/* The same with more header lines ("name: value\r\n"...), or NULL. */
void pt_grpc_error_extra(pt_conn_t *c, int code, const char *message, const char *extra);
/* grpc-message as the protocol has it: '%' and every byte outside
 * printable ASCII percent-encoded, into out (cap bytes, NUL-terminated,
 * cut to fit): its length. */
size_t pt_grpc_message_encode(const char *s, size_t n, char *out, size_t cap);
/* The gRPC status for an HTTP status Portico would have answered. */
int pt_grpc_status_of(int http_status);

#endif
