/* Tracing: W3C Trace Context and B3 propagation (trace.c, pure), the
 * spans of a request (span.c), and their export in batches through the
 * internal HTTP client as OTLP/HTTP JSON or Zipkin v2 JSON (export.c,
 * encode.c).  The `tracing:` block is trace_conf.c.
 *
 * Without a `tracing:` block nothing here runs: the request's trace is
 * NULL, its fields go upstream as they came, and no worker holds a queue. */
#ifndef PORTICO_TRACE_H
#define PORTICO_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/h1_parser.h"
#include "portico/sbuf.h"
#include "portico/schema-t.h"
#include "portico/str.h"
#include "portico/trace-t.h"

typedef struct pt_conn pt_conn_t;
typedef struct pt_worker pt_worker_t;
struct pt_target;
struct pt_fx;

#define PT_TRACESTATE_MAX 512 /* a longer tracestate is not passed on */
#define PT_TRACE_FIELDS_MAX (PT_TRACESTATE_MAX + 256) /* every trace field sent upstream */

/* ---- propagation (trace.c): pure functions, no I/O ---- */

enum pt_trace_source { PT_TRACE_SRC_NONE, PT_TRACE_SRC_W3C, PT_TRACE_SRC_B3, PT_TRACE_SRC_B3_MULTI };

/* What a caller's headers said of its trace. */
typedef struct pt_trace_parent {
    int source;          /* enum pt_trace_source; NONE: no usable parent (a new trace starts) */
    uint8_t trace_id[16];
    uint8_t span_id[8];  /* the caller's span: the parent of ours */
    int sampled;         /* 1, 0, or -1: not said (B3 without a sampling state) */
    char tracestate[PT_TRACESTATE_MAX];
    size_t tslen;        /* 0: none to pass on */
} pt_trace_parent_t;

/* `traceparent` strictly as W3C Trace Context level 1 says for version 00:
 * exactly "00-" 32 lowercase hex "-" 16 lowercase hex "-" 2 lowercase hex,
 * neither id all zeros.  0, or -1 (out untouched). */
int pt_trace_parse_traceparent(pt_str_t v, pt_trace_parent_t *out);
/* B3 single header: "TRACEID-SPANID[-SAMPLING[-PARENTSPANID]]" (TRACEID of
 * 16 or 32 lowercase hex, SAMPLING 0, 1 or d) or a lone SAMPLING.  A lone
 * "0"/"1"/"d" gives source NONE with sampled set.  0, or -1. */
int pt_trace_parse_b3(pt_str_t v, pt_trace_parent_t *out);
/* X-B3-TraceId, X-B3-SpanId, X-B3-Sampled (1, 0, true, false) and
 * X-B3-Flags (1: debug, sampled); absent ones are empty.  0, or -1. */
int pt_trace_parse_b3_multi(pt_str_t trace_id, pt_str_t span_id, pt_str_t sampled, pt_str_t flags,
                            pt_trace_parent_t *out);
/* Is v a tracestate list member sequence worth passing on: at most
 * PT_TRACESTATE_MAX bytes of printable ASCII (no control character)? */
bool pt_trace_tracestate_ok(pt_str_t v);
/* The parent from a request's fields: a valid traceparent (one only), else
 * B3 (the single header, else the X-B3-* ones).  tracestate (every field
 * joined by ",") only with a valid traceparent.  Never fails: out->source
 * NONE when nothing usable was found. */
void pt_trace_extract(const pt_h1_header_t *h, size_t n, pt_trace_parent_t *out);
/* Is this one of the fields tracing replaces upstream (traceparent,
 * tracestate, b3, X-B3-*)? */
bool pt_trace_is_field(pt_str_t name);
/* 2n lowercase hex digits of b[0..n) into out (no NUL). */
void pt_trace_hex(const uint8_t *b, size_t n, char *out);
/* Random ids (never all zeros) and sampling draws, from a per-process
 * generator seeded by pt_trace_seed. */
void pt_trace_seed(uint64_t a, uint64_t b);
uint64_t pt_trace_rand(void);
void pt_trace_new_id(uint8_t *id, size_t n); /* n: 8 or 16 */

/* ---- the spans of a request (span.c) ---- */

typedef struct pt_trace_req {
    uint8_t trace_id[16], span_id[8], parent_id[8];
    bool has_parent, sampled;
    int source;           /* how the caller sent its trace (B3 goes on upstream as it came) */
    char trace_hex[33];   /* $trace_id, ${trace_id} */
    char *tracestate;     /* in the request arena, or NULL */
    size_t tslen;
    int64_t start_ns;
    /* the client span of the upstream attempt under way */
    bool in_attempt;
    int attempts;
    uint8_t attempt_id[8];
    int64_t attempt_start_ns;
    const struct pt_target *target;
    const char *attempt_error; /* error.type of a failed attempt */
    char *up_ids[2];      /* in the head sent upstream: where each attempt writes its span id */
} pt_trace_req_t;

/* A request starts (req NULL: a head that could not be parsed): its trace,
 * from the caller's fields or new, in c's request arena.  NULL when
 * tracing is off, on the admin listener, or out of memory. */
pt_trace_req_t *pt_trace_req_start(pt_conn_t *c, const pt_h1_req_t *req);
/* The request ends (before its log line, after the filters' on_done): its
 * server span is queued when sampled, with what the log entry and the
 * filters (fx, may be NULL) say. */
void pt_trace_req_end(pt_conn_t *c, const struct pt_fx *fx);
/* The trace fields for the upstream written at dst (room bytes): the
 * caller's B3 fields replaced in the form they came, traceparent always,
 * the caller's tracestate when its traceparent was valid.  Returns their
 * length, or 0 when they do not fit.  Each attempt rewrites its span id
 * in them (pt_trace_attempt_start). */
size_t pt_trace_put_fields(pt_trace_req_t *t, char *dst, size_t room);
/* The next three are for a request whose trace is not NULL.
 * An upstream attempt starts towards target tg: a new client span, whose
 * id goes into the fields already written upstream. */
void pt_trace_attempt_start(pt_conn_t *c, const struct pt_target *tg);
/* Why the attempt under way fails (error.type), before it ends. */
void pt_trace_attempt_error(pt_conn_t *c, const char *type);
/* The attempt under way ends (if one is), with the upstream's status (0:
 * none came). */
void pt_trace_attempt_end(pt_conn_t *c, int status);

/* ---- spans and their export (export.c, encode.c) ---- */

enum { PT_SPAN_SERVER, PT_SPAN_CLIENT };

/* One finished span, as queued: fixed size, strings cut to their room. */
typedef struct pt_span {
    uint8_t trace_id[16], span_id[8], parent_id[8];
    bool has_parent;
    uint8_t kind;      /* PT_SPAN_SERVER or PT_SPAN_CLIENT */
    uint8_t resend;    /* client: the attempt's number less one (http.request.resend_count) */
    int status;        /* http.response.status_code; 0: none */
    int64_t start_ns, end_ns; /* unix time */
    int server_port;   /* 0: not known */
    char method[16];
    char path[256];    /* url.path */
    char route[128];   /* http.route: the route's path pattern, or its name */
    char server_address[128];
    char peer[48];     /* network.peer.address */
    char protocol[4];  /* network.protocol.version: "1.0", "1.1", "2" */
    char error_type[32];
    char consumer[64];
    char cache_status[32];
    char ratelimit[32];
} pt_span_t;

typedef struct pt_tracer pt_tracer_t;

/* In a worker, when the configuration has tracing: the span queue and the
 * batch timer.  NULL (logged) when out of memory: then nothing is traced. */
pt_tracer_t *pt_tracer_start(pt_worker_t *w);
/* Queues a finished span; counted as dropped when the queue is full. */
void pt_tracer_push(pt_tracer_t *tr, const pt_span_t *s);
/* The worker exits: what is queued is sent, waiting at most timeout_ms on
 * the loop, then everything is freed. */
void pt_tracer_stop(pt_tracer_t *tr, int64_t timeout_ms);

/* The request body of an export of spans v[0..n): OTLP/HTTP JSON
 * (ExportTraceServiceRequest) or a Zipkin v2 JSON array. */
void pt_trace_encode_otlp(pt_sbuf_t *b, const pt_trace_conf_t *tc, const pt_span_t *v, size_t n);
void pt_trace_encode_zipkin(pt_sbuf_t *b, const pt_trace_conf_t *tc, const pt_span_t *v, size_t n);

/* ---- configuration (trace_conf.c) ---- */

extern const pt_section_t pt_schema_tracing;

#endif
