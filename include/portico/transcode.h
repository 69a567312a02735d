/* REST/JSON to gRPC transcoding on a call of the gRPC bridge (grpc.c):
 * the grpc-transcode filter matched the request to a method's binding
 * (pt_tc_t); the call collects the JSON body, encodes the request message
 * from it, the path's variables and the query, and turns the upstream's
 * answer into JSON: one object (unary), or an array flushed as each
 * message comes (server streaming); a gRPC status that is not OK into
 * Google's HTTP status and {"code", "message", "details"}. */
#ifndef PORTICO_TRANSCODE_H
#define PORTICO_TRANSCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/http_rule.h"
#include "portico/pb_json.h"
#include "portico/str.h"

typedef struct pt_conn pt_conn_t;
struct pt_fx;

/* What the filter found for a request (in the request arena). */
typedef struct pt_tc {
    const pt_http_binding_t *b;
    const pt_pbjson_opts_t *opts;
    pt_str_t *vals; /* b->nvars, decoded */
    pt_str_t query;
} pt_tc_t;

/* The filter's match for the request, or NULL (no grpc-transcode, or a
 * gRPC client on the route). */
const pt_tc_t *pt_transcode_of(const struct pt_fx *fx);

typedef struct pt_tc_call pt_tc_call_t;

/* The call's transcoding; max_body: the JSON body's limit.  NULL when out
 * of memory. */
pt_tc_call_t *pt_tc_call_new(pt_conn_t *c, const pt_tc_t *t, int64_t max_body);
void pt_tc_call_free(pt_tc_call_t *k);
/* More JSON body: false past the limit (*err set). */
bool pt_tc_call_body(pt_tc_call_t *k, const char *p, size_t n, char *err, size_t errlen);
/* The request message, framed for gRPC (5-byte prefix), malloc'd into
 * *out: true, or false with a message for a 400 in err. */
bool pt_tc_call_encode(pt_tc_call_t *k, char **out, size_t *n, char *err, size_t errlen);
/* A field of the upstream's response head (trailer false) or trailers. */
void pt_tc_call_header(pt_tc_call_t *k, const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen,
                       bool trailer);
/* Response DATA: false when it is not gRPC messages of the method's type
 * (the response is then cut, or answered 502 if nothing was sent). */
bool pt_tc_call_data(pt_tc_call_t *k, const uint8_t *p, size_t n);
/* The upstream's answer is complete: the client's response is queued. */
void pt_tc_call_end(pt_tc_call_t *k);
/* Has the client's response head gone out (a stream under way)? */
bool pt_tc_call_started(const pt_tc_call_t *k);

/* A JSON error response of Portico's own for a gRPC status. */
void pt_tc_error(pt_conn_t *c, int code, const char *message);
/* The same with an HTTP status of the caller's (505 for a streamed answer
 * asked for over HTTP/1.0). */
void pt_tc_error_status(pt_conn_t *c, int status, int code, const char *message);
/* Google's HTTP status for a gRPC status code. */
int pt_tc_http_status(int code);

#endif
