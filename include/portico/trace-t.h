/* Tracing: the types the configuration and the request carry (trace.h
 * has the functions). */
#ifndef PORTICO_TRACE_T_H
#define PORTICO_TRACE_T_H

#include <stdbool.h>
#include <stdint.h>

#include "portico/schema-t.h"

struct pt_uri;

enum pt_trace_exporter { PT_TRACE_OTLP, PT_TRACE_ZIPKIN };

/* `tracing:` (trace_conf.c).  node NULL: no tracing, and nothing of it
 * runs on any request. */
typedef struct pt_trace_conf {
    const pt_node_t *node;
    double sample;         /* 0..1: the share of new traces recorded */
    bool parent_based;     /* a caller's sampled flag decides for its trace */
    int exporter;          /* enum pt_trace_exporter */
    char *endpoint;        /* http:// or https:// URL the batches are POSTed to */
    char *service_name;
    pt_kvlist_t headers;   /* more fields for the collector (an API key): secrets */
    int64_t batch_size;    /* spans per export at most */
    int64_t queue_size;    /* spans a worker holds at most; more are dropped */
    int64_t interval;      /* ms: a batch goes out at least this often */
    int64_t timeout;       /* ms: one export, from connect to the collector's answer */
    /* compiled */
    uint64_t threshold;    /* a new trace is sampled when a random 64-bit number is below it */
    bool always;           /* sample: 1 */
    struct pt_uri *uri;    /* the endpoint's parts; its upstream is the one pt_conf_uri_upstream finds */
} pt_trace_conf_t;

#endif
