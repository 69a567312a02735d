/* The bodies of span exports: OTLP/HTTP with the JSON encoding (an
 * ExportTraceServiceRequest: resourceSpans, scopeSpans, spans; ids as hex
 * strings, 64-bit integers as decimal strings, as the OTLP JSON mapping
 * says) and Zipkin v2 JSON (an array of spans; timestamps in
 * microseconds, as Zipkin has them). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/str.h"
#include "portico/trace.h"

static void put_cs(pt_sbuf_t *b, const char *s)
{
    pt_sbuf_put(b, s, strlen(s));
}

static void put_hex(pt_sbuf_t *b, const uint8_t *id, size_t n)
{
    char h[40];
    pt_trace_hex(id, n, h);
    pt_sbuf_put(b, "\"", 1);
    pt_sbuf_put(b, h, 2 * n);
    pt_sbuf_put(b, "\"", 1);
}

/* Every number here is a count, a port or a time: never negative. */
static void put_i64(pt_sbuf_t *b, long long v, bool quoted)
{
    char t[32];
    size_t n = 0;
    if (quoted)
        t[n++] = '"';
    n += pt_fmt_u64(t + n, v > 0 ? (unsigned long long)v : 0, 0);
    if (quoted)
        t[n++] = '"';
    pt_sbuf_put(b, t, n);
}

/* The span's attributes, each given to `put` once: a string, or an int
 * (s NULL).  Keys are JSON strings already, quotes and all: written as
 * they are. */
typedef void (*attr_fn)(pt_sbuf_t *b, const char *key, const char *s, long long i, bool *first);

static void str_attr(pt_sbuf_t *b, attr_fn put, const char *key, const char *v, bool *first)
{
    if (v[0])
        put(b, key, v, 0, first);
}

static void each_attr(pt_sbuf_t *b, const pt_span_t *s, attr_fn put, bool *firstp)
{
    bool first = *firstp;
    str_attr(b, put, "\"http.request.method\"", s->method, &first);
    if (s->kind == PT_SPAN_SERVER) {
        str_attr(b, put, "\"url.path\"", s->path, &first);
        str_attr(b, put, "\"http.route\"", s->route, &first);
        str_attr(b, put, "\"network.protocol.version\"", s->protocol, &first);
    }
    str_attr(b, put, "\"server.address\"", s->server_address, &first);
    if (s->server_port)
        put(b, "\"server.port\"", NULL, s->server_port, &first);
    str_attr(b, put, "\"network.peer.address\"", s->peer, &first);
    if (s->status)
        put(b, "\"http.response.status_code\"", NULL, s->status, &first);
    if (s->kind == PT_SPAN_CLIENT && s->resend)
        put(b, "\"http.request.resend_count\"", NULL, s->resend, &first);
    str_attr(b, put, "\"error.type\"", s->error_type, &first);
    str_attr(b, put, "\"portico.consumer\"", s->consumer, &first);
    str_attr(b, put, "\"portico.cache_status\"", s->cache_status, &first);
    str_attr(b, put, "\"portico.ratelimit\"", s->ratelimit, &first);
    *firstp = first;
}

/* "GET /users/:id" for a server span with a route, else the method. */
static void put_name(pt_sbuf_t *b, const pt_span_t *s)
{
    char name[sizeof(s->method) + 1 + sizeof(s->route)];
    size_t m = strlen(s->method[0] ? s->method : "HTTP"), n = m;
    memcpy(name, s->method[0] ? s->method : "HTTP", m);
    if (s->kind == PT_SPAN_SERVER && s->route[0]) {
        size_t r = strlen(s->route);
        name[n++] = ' ';
        memcpy(name + n, s->route, r);
        n += r;
    }
    name[n] = '\0';
    pt_sbuf_json_str(b, name);
}

/* ---- OTLP ---- */

static void otlp_attr(pt_sbuf_t *b, const char *key, const char *s, long long i, bool *first)
{
    put_cs(b, *first ? "{\"key\":" : ",{\"key\":");
    *first = false;
    put_cs(b, key);
    if (s) {
        put_cs(b, ",\"value\":{\"stringValue\":");
        pt_sbuf_json_str(b, s);
    } else {
        put_cs(b, ",\"value\":{\"intValue\":");
        put_i64(b, i, true);
    }
    put_cs(b, "}}");
}

static bool is_error(const pt_span_t *s)
{
    return s->error_type[0] != '\0';
}

static void otlp_span(pt_sbuf_t *b, const pt_span_t *s)
{
    put_cs(b, "{\"traceId\":");
    put_hex(b, s->trace_id, 16);
    put_cs(b, ",\"spanId\":");
    put_hex(b, s->span_id, 8);
    if (s->has_parent) {
        put_cs(b, ",\"parentSpanId\":");
        put_hex(b, s->parent_id, 8);
    }
    put_cs(b, ",\"name\":");
    put_name(b, s);
    put_cs(b, s->kind == PT_SPAN_SERVER ? ",\"kind\":2" : ",\"kind\":3"); /* SPAN_KIND_SERVER, SPAN_KIND_CLIENT */
    put_cs(b, ",\"startTimeUnixNano\":");
    put_i64(b, s->start_ns, true);
    put_cs(b, ",\"endTimeUnixNano\":");
    put_i64(b, s->end_ns, true);
    put_cs(b, ",\"attributes\":[");
    bool first = true;
    each_attr(b, s, otlp_attr, &first);
    put_cs(b, "]");
    if (is_error(s))
        put_cs(b, ",\"status\":{\"code\":2}"); /* STATUS_CODE_ERROR */
    put_cs(b, "}");
}

void pt_trace_encode_otlp(pt_sbuf_t *b, const pt_trace_conf_t *tc, const pt_span_t *v, size_t n)
{
    put_cs(b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":");
    pt_sbuf_json_str(b, tc->service_name ? tc->service_name : "portico");
    put_cs(b, "}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"portico\",\"version\":\"" PACKAGE_VERSION "\"},\"spans\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            put_cs(b, ",");
        otlp_span(b, &v[i]);
    }
    put_cs(b, "]}]}]}");
}

/* ---- Zipkin ---- */

static void zipkin_tag(pt_sbuf_t *b, const char *key, const char *s, long long i, bool *first)
{
    put_cs(b, *first ? "" : ",");
    *first = false;
    put_cs(b, key);
    put_cs(b, ":");
    if (s) {
        pt_sbuf_json_str(b, s);
    } else {
        put_i64(b, i, true); /* Zipkin's tags are strings */
    }
}

static void zipkin_span(pt_sbuf_t *b, const pt_trace_conf_t *tc, const pt_span_t *s)
{
    put_cs(b, "{\"traceId\":");
    put_hex(b, s->trace_id, 16);
    put_cs(b, ",\"id\":");
    put_hex(b, s->span_id, 8);
    if (s->has_parent) {
        put_cs(b, ",\"parentId\":");
        put_hex(b, s->parent_id, 8);
    }
    put_cs(b, s->kind == PT_SPAN_SERVER ? ",\"kind\":\"SERVER\",\"name\":" : ",\"kind\":\"CLIENT\",\"name\":");
    put_name(b, s);
    int64_t us = s->start_ns / 1000, dur = (s->end_ns - s->start_ns) / 1000;
    put_cs(b, ",\"timestamp\":");
    put_i64(b, us, false);
    put_cs(b, ",\"duration\":");
    put_i64(b, dur > 0 ? dur : 1, false); /* Zipkin wants at least 1 */
    put_cs(b, ",\"shared\":false,\"localEndpoint\":{\"serviceName\":");
    pt_sbuf_json_str(b, tc->service_name ? tc->service_name : "portico");
    put_cs(b, "}");
    if (s->peer[0]) {
        put_cs(b, strchr(s->peer, ':') ? ",\"remoteEndpoint\":{\"ipv6\":" : ",\"remoteEndpoint\":{\"ipv4\":");
        pt_sbuf_json_str(b, s->peer);
        if (s->kind == PT_SPAN_CLIENT && s->server_port) {
            put_cs(b, ",\"port\":");
            put_i64(b, s->server_port, false);
        }
        put_cs(b, "}");
    }
    put_cs(b, ",\"tags\":{");
    bool first = true;
    each_attr(b, s, zipkin_tag, &first);
    if (is_error(s))
        zipkin_tag(b, "\"error\"", s->error_type, 0, &first); /* Zipkin's mark of a failed span */
    put_cs(b, "}}");
}

void pt_trace_encode_zipkin(pt_sbuf_t *b, const pt_trace_conf_t *tc, const pt_span_t *v, size_t n)
{
    put_cs(b, "[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            put_cs(b, ",");
        zipkin_span(b, tc, &v[i]);
    }
    put_cs(b, "]");
}
