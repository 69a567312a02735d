/* `tracing:`: sampling, the exporter and its endpoint, the batches and the
 * queue.  The endpoint's host:port is an upstream, as forward-auth's uri
 * is (synth.c): the internal client reaches it with name resolution,
 * keep-alive and TLS like any other. */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "portico/accesslog_conf.h"
#include "portico/conf.h"
#include "portico/config.h"
#include "portico/http.h"
#include "portico/schema.h"
#include "portico/trace.h"
#include "portico/value.h"

static int set_endpoint(pt_conf_ctx_t *cc, const pt_node_t *n, void *field)
{
    if (n->type != PT_NODE_SCALAR) {
        pt_conf_error(cc, n, "expected a URL, not %s", pt_node_type_name(n));
        return -1;
    }
    *(char **)field = n->s;
    return 0;
}

/* -T and /config show the endpoint with its query's values masked: a
 * collector's key may be there (?api_key=...). */
static void print_endpoint(FILE *f, const void *field, const pt_list_t *prov)
{
    (void)prov;
    const char *u = *(char *const *)field;
    if (!u)
        return;
    size_t q = strcspn(u, "?");
    fwrite(u, 1, q, f);
    for (const char *p = u + q; *p;) { /* at a ? or & */
        fputc(*p++, f);
        size_t name = strcspn(p, "=&");
        fwrite(p, 1, name, f);
        p += name;
        if (*p == '=')
            fputs("=***", f);
        p += strcspn(p, "&");
    }
}

static int check_tracing(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    pt_trace_conf_t *tc = obj;
    if (tc->queue_size < tc->batch_size) {
        pt_conf_error_key(cc, n, "queue_size", "queue_size (%lld) must be at least batch_size (%lld)",
                          (long long)tc->queue_size, (long long)tc->batch_size);
        return -1;
    }
    for (size_t i = 0; i < tc->headers.n; i++) {
        const char *name = tc->headers.v[i].key, *why = pt_value_field_text(tc->headers.v[i].value, false);
        bool token = name[0] != '\0';
        for (const char *q = name; *q; q++)
            token &= pt_http_is_tchar((unsigned char)*q) != 0;
        if (!token || why) {
            pt_conf_error_key(cc, n, "headers", "\"%s\": %s", name, !token ? "not a field name" : why);
            return -1;
        }
        static const char *const ours[] = {"host", "content-length", "content-type", "transfer-encoding",
                                           "connection", "user-agent"};
        for (size_t k = 0; k < sizeof(ours) / sizeof(ours[0]); k++)
            if (strcasecmp(name, ours[k]) == 0) {
                pt_conf_error_key(cc, n, "headers", "\"%s\" is set by Portico", name);
                return -1;
            }
    }
    tc->always = tc->sample >= 1;
    tc->threshold = pt_accesslog_cut(tc->sample); /* the same draw as the access log's sampling */
    if (!tc->endpoint)
        return -1; /* reported: it is required */
    pt_uri_t *u = pt_arena_zalloc(cc->arena, sizeof(*u));
    if (!u)
        return -1;
    const char *err = pt_value_uri(tc->endpoint, u);
    if (err) {
        pt_conf_error_key(cc, n, "endpoint", "%s, not \"%s\"", err, tc->endpoint);
        return -1;
    }
    tc->uri = u; /* its upstream (synth.c made one) is looked up by the worker */
    return 0;
}

static const char *const exporter_names[] = {"otlp", "zipkin", NULL};

#define T(f) offsetof(pt_trace_conf_t, f)
#define END {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL}
static const pt_directive_t tracing_keys[] = {
    {"sample", PT_T_CUSTOM, T(sample), "1", 0, 0, NULL, NULL, NULL, pt_accesslog_set_ratio,
     pt_accesslog_print_ratio, 0, "ratio",
     "The share of new traces that are recorded, from 0 to 1: a request that starts a trace is sampled with this "
     "probability. Whether or not a request is sampled, its trace is propagated upstream (traceparent with the "
     "sampled flag 00 or 01) and its trace id is in $trace_id and ${trace_id}."},
    {"parent_based", PT_T_BOOL, T(parent_based), "true", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "A request whose caller sent a trace (a valid traceparent, else B3) follows the caller's sampling decision "
     "(the traceparent's sampled flag, X-B3-Sampled, the b3 sampling state); false: sample decides for it too. "
     "The trace id is the caller's either way."},
    {"exporter", PT_T_ENUM, T(exporter), "otlp", 0, 0, exporter_names, NULL, NULL, NULL, NULL, 0, "otlp | zipkin",
     "otlp: OTLP/HTTP with the JSON encoding (an ExportTraceServiceRequest, ids as hex strings); zipkin: the Zipkin "
     "v2 JSON array of spans (timestamps in microseconds, as Zipkin has them)."},
    {"endpoint", PT_T_CUSTOM, T(endpoint), NULL, 0, 0, NULL, NULL, NULL, set_endpoint, print_endpoint,
     PT_F_REQUIRED, "URL",
     "Where batches are POSTed: http:// or https:// (verified against the system's CAs), e.g. "
     "http://collector:4318/v1/traces or http://zipkin:9411/api/v2/spans. A host that is the name of an upstream "
     "goes to that upstream; any other host gets an upstream of its own, named by scheme, host and port. -T and "
     "the admin API's /config show the values of its query as ***: a collector's key may be there."},
    {"headers", PT_T_KVMAP, T(headers), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, PT_F_SECRET, NULL,
     "More header fields for the collector, such as an API key (Authorization: \"Bearer ${OTLP_TOKEN}\"). "
     "Content-Type, Content-Length, Host, User-Agent and Connection are Portico's."},
    {"service_name", PT_T_STR, T(service_name), "portico", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The service.name of the spans (Zipkin's localEndpoint.serviceName)."},
    {"batch_size", PT_T_INT, T(batch_size), "512", 1, 8192, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The most spans one export carries. A worker sends as soon as it holds this many, and at least every "
     "interval otherwise; one export is in flight at a time per worker."},
    {"interval", PT_T_DURATION, T(interval), "5s", 10, 3600000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "How often a worker sends the spans it holds when fewer than batch_size."},
    {"queue_size", PT_T_INT, T(queue_size), "2048", 1, 65536, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The most finished spans a worker holds while an export is in flight or the collector is slow or down "
     "(about 800 bytes each, allocated when the worker starts). A span past it is dropped and counted "
     "(tracing.dropped in /status), as are the spans of a failed export (tracing.failed_exports): a request never "
     "waits for the collector. Failures are logged at most once a minute. At least batch_size."},
    {"timeout", PT_T_DURATION, T(timeout), "10s", 100, 300000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "One export, from the connect to the collector's answer; past it the export fails. A worker that exits "
     "(a reload, a stop) sends what it holds, waiting at most this or 3s, whichever is less."},
    END,
};

const pt_section_t pt_schema_tracing = {"tracing", sizeof(pt_trace_conf_t), tracing_keys, check_tracing, NULL,
                                        NULL};
