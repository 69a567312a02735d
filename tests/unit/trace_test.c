/* Unit tests: trace context parsing (traceparent, B3 in both forms,
 * tracestate), which fields tracing replaces, the ids, and the OTLP and
 * Zipkin encoders (their output parsed back with the strict JSON parser). */
#include "config.h"

#include <stdlib.h>

#include "../unit/tap.h"
#include "portico/arena.h"
#include "portico/config.h"
#include "portico/json.h"
#include "portico/trace.h"
#include "portico/value.h"

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"
#define SID "00f067aa0ba902b7"

static pt_trace_parent_t par;

static int tp(const char *s)
{
    memset(&par, 0, sizeof(par));
    return pt_trace_parse_traceparent(pt_str_from(s), &par);
}

static const char *hex(const uint8_t *b, size_t n)
{
    static char out[2][40];
    static int k;
    char *o = out[k++ & 1];
    pt_trace_hex(b, n, o);
    o[2 * n] = '\0';
    return o;
}

static void traceparent(void)
{
    ok(tp("00-" TID "-" SID "-01") == 0 && par.source == PT_TRACE_SRC_W3C && par.sampled == 1, "a valid traceparent");
    is_str(hex(par.trace_id, 16), TID, "its trace id");
    is_str(hex(par.span_id, 8), SID, "its parent id");
    ok(tp("00-" TID "-" SID "-00") == 0 && par.sampled == 0, "flags 00: not sampled");
    ok(tp("00-" TID "-" SID "-03") == 0 && par.sampled == 1, "other flag bits: the sampled bit alone counts");
    static const char *const bad[] = {
        "01-" TID "-" SID "-01",                                  /* another version */
        "ff-" TID "-" SID "-01",                                  /* the invalid version */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-" SID "-01",         /* uppercase */
        "00-" TID "-00F067AA0BA902B7-01",
        "00-" TID "-" SID "-0A",
        "00-00000000000000000000000000000000-" SID "-01",         /* zero trace id */
        "00-" TID "-0000000000000000-01",                         /* zero parent id */
        "00-" TID "-" SID "-01-",                                 /* too long */
        "00-" TID "-" SID "-1",                                   /* too short */
        "00-" TID "-" SID "-0g",
        "00_" TID "_" SID "_01",
        "00-" TID "-" SID "\x01" "01",
        " 00-" TID "-" SID "-0",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ok(tp(bad[i]) < 0 && par.source == PT_TRACE_SRC_NONE, "refused: \"%s\"", bad[i]);
    memset(&par, 0, sizeof(par));
    ok(pt_trace_parse_traceparent(PT_STR_NULL, &par) < 0, "refused: no value");
    /* a value cut short must not be read past its end */
    char buf[55];
    memcpy(buf, "00-" TID "-" SID "-01", 55);
    ok(pt_trace_parse_traceparent((pt_str_t){buf, 54}, &par) < 0, "refused: one byte short");
}

static int b3(const char *s)
{
    memset(&par, 0, sizeof(par));
    par.sampled = 7;
    return pt_trace_parse_b3(pt_str_from(s), &par);
}

static void b3_single(void)
{
    ok(b3("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90") == 0 && par.sampled == 1 &&
           par.source == PT_TRACE_SRC_B3, "b3: all four parts");
    is_str(hex(par.trace_id, 16), "80f198ee56343ba864fe8b2a57d3eff7", "b3: trace id");
    is_str(hex(par.span_id, 8), "e457b5a2e4d86bd1", "b3: span id");
    ok(b3("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1") == 0 && par.sampled == -1, "b3: no sampling state");
    ok(b3("463ac35c9f6413ad-e457b5a2e4d86bd1-d") == 0 && par.sampled == 1, "b3: 64-bit trace id, debug");
    is_str(hex(par.trace_id, 16), "0000000000000000463ac35c9f6413ad", "b3: a 64-bit id is left-padded");
    ok(b3("0") == 0 && par.source == PT_TRACE_SRC_NONE && par.sampled == 0, "b3: a lone 0");
    ok(b3("1") == 0 && par.source == PT_TRACE_SRC_NONE && par.sampled == 1, "b3: a lone 1");
    static const char *const bad[] = {
        "2", "x", "", "80f198ee56343ba864fe8b2a57d3eff7",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-2",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-1",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3",
        "80F198EE56343BA864FE8B2A57D3EFF7-e457b5a2e4d86bd1",
        "80f198ee56343ba864fe8b2a57d3eff-e457b5a2e4d86bd1",
        "00000000000000000000000000000000-e457b5a2e4d86bd1",
        "80f198ee56343ba864fe8b2a57d3eff7-0000000000000000",
        "80f198ee56343ba864fe8b2a57d3eff7--1",
        "-", "---",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ok(b3(bad[i]) < 0 && par.sampled == 7, "b3 refused: \"%s\"", bad[i]);
}

static int multi(const char *t, const char *s, const char *smp, const char *fl)
{
    memset(&par, 0, sizeof(par));
    par.sampled = 7;
    return pt_trace_parse_b3_multi(pt_str_from(t), pt_str_from(s), pt_str_from(smp), pt_str_from(fl), &par);
}

static void b3_multi(void)
{
    ok(multi("463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312", "1", "") == 0 && par.sampled == 1 &&
           par.source == PT_TRACE_SRC_B3_MULTI, "X-B3-*: sampled");
    ok(multi("463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312", "false", "") == 0 && par.sampled == 0,
       "X-B3-Sampled: false");
    ok(multi("463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312", "", "") == 0 && par.sampled == -1,
       "X-B3-*: no decision");
    ok(multi("463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312", "0", "1") == 0 && par.sampled == 1,
       "X-B3-Flags: 1 is debug, sampled");
    ok(multi("", "", "0", "") == 0 && par.source == PT_TRACE_SRC_NONE && par.sampled == 0, "a decision alone");
    ok(multi("463ac35c9f6413ad48485a3953bb6124", "", "1", "") < 0, "a trace id without a span id");
    ok(multi("463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312", "yes", "") < 0, "X-B3-Sampled: yes");
    ok(multi("463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312", "", "2") < 0, "X-B3-Flags: 2");
    ok(multi("", "", "", "") < 0, "nothing");
}

static void extract(void)
{
    pt_h1_header_t h[8];
    size_t n = 0;
    h[n++] = (pt_h1_header_t){PT_STR("TraceParent"), PT_STR("00-" TID "-" SID "-01")};
    h[n++] = (pt_h1_header_t){PT_STR("tracestate"), PT_STR("a=1")};
    h[n++] = (pt_h1_header_t){PT_STR("b3"), PT_STR("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1")};
    h[n++] = (pt_h1_header_t){PT_STR("Tracestate"), PT_STR("b=2")};
    pt_trace_extract(h, n, &par);
    ok(par.source == PT_TRACE_SRC_W3C && par.sampled == 1, "traceparent wins over b3");
    ok(par.tslen == 7 && memcmp(par.tracestate, "a=1,b=2", 7) == 0, "tracestate fields joined");
    h[0].value = PT_STR("00-" TID "-" SID "-0x");
    pt_trace_extract(h, n, &par);
    ok(par.source == PT_TRACE_SRC_B3 && par.tslen == 0, "an invalid traceparent: b3, and no tracestate");
    h[0].value = PT_STR("00-" TID "-" SID "-01");
    h[n++] = (pt_h1_header_t){PT_STR("traceparent"), PT_STR("00-" TID "-" SID "-01")};
    pt_trace_extract(h, n, &par);
    ok(par.source == PT_TRACE_SRC_B3, "two traceparent fields: neither");
    n = 0;
    h[n++] = (pt_h1_header_t){PT_STR("traceparent"), PT_STR("00-" TID "-" SID "-01")};
    char big[PT_TRACESTATE_MAX + 2];
    memset(big, 'v', sizeof(big));
    h[n++] = (pt_h1_header_t){PT_STR("tracestate"), {big, PT_TRACESTATE_MAX + 1}};
    pt_trace_extract(h, n, &par);
    ok(par.source == PT_TRACE_SRC_W3C && par.tslen == 0, "a tracestate too long is not passed on");
    h[1].value.n = PT_TRACESTATE_MAX;
    pt_trace_extract(h, n, &par);
    ok(par.tslen == PT_TRACESTATE_MAX, "one of the longest is");
    h[1].value = PT_STR("a=1\x01");
    pt_trace_extract(h, n, &par);
    ok(par.tslen == 0, "nor one with a control character");
    n = 0;
    h[n++] = (pt_h1_header_t){PT_STR("X-B3-TraceId"), PT_STR("463ac35c9f6413ad48485a3953bb6124")};
    h[n++] = (pt_h1_header_t){PT_STR("X-B3-SpanId"), PT_STR("a2fb4a1d1a96d312")};
    h[n++] = (pt_h1_header_t){PT_STR("X-B3-Sampled"), PT_STR("0")};
    pt_trace_extract(h, n, &par);
    ok(par.source == PT_TRACE_SRC_B3_MULTI && par.sampled == 0, "X-B3-* fields");
    h[1].value = PT_STR("A2FB4A1D1A96D312");
    pt_trace_extract(h, n, &par);
    ok(par.source == PT_TRACE_SRC_NONE && par.sampled == -1, "a bad X-B3-SpanId: nothing believed");
    pt_trace_extract(h, 0, &par);
    ok(par.source == PT_TRACE_SRC_NONE && par.sampled == -1 && par.tslen == 0, "no fields");
}

static void fields(void)
{
    static const char *const yes[] = {"traceparent", "TRACESTATE", "b3", "X-B3-TraceId", "x-b3-spanid",
                                      "X-B3-ParentSpanId", "X-B3-Sampled", "X-B3-Flags"};
    static const char *const no[] = {"b4", "x-b3", "trace", "traceparents", "x-request-id", "x-b3-traceid2"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        ok(pt_trace_is_field(pt_str_from(yes[i])), "replaced upstream: %s", yes[i]);
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        ok(!pt_trace_is_field(pt_str_from(no[i])), "passed on: %s", no[i]);
}

static void ids(void)
{
    pt_trace_seed(1, 2);
    uint8_t a[16], b[16];
    pt_trace_new_id(a, 16);
    pt_trace_new_id(b, 16);
    ok(memcmp(a, b, 16) != 0, "two ids differ");
    pt_trace_seed(1, 2);
    pt_trace_new_id(b, 16);
    ok(memcmp(a, b, 16) == 0, "the same seed draws the same");
    int low = 0;
    for (int i = 0; i < 10000; i++)
        low += pt_trace_rand() < UINT64_MAX / 10;
    ok(low > 800 && low < 1200, "draws are spread (%d of 10000 under a tenth)", low);
}

static pt_span_t span(int kind)
{
    pt_span_t s;
    memset(&s, 0, sizeof(s));
    memset(s.trace_id, 0xab, 16);
    memset(s.span_id, 0x01, 8);
    memset(s.parent_id, 0x02, 8);
    s.has_parent = kind == PT_SPAN_CLIENT;
    s.kind = (uint8_t)kind;
    s.start_ns = 1700000000123456000;
    s.end_ns = 1700000000223456000;
    s.status = 503;
    s.server_port = 8080;
    snprintf(s.method, sizeof(s.method), "GET");
    snprintf(s.path, sizeof(s.path), "/a\"b\\c\x01\xff");
    snprintf(s.route, sizeof(s.route), "/a/*");
    snprintf(s.server_address, sizeof(s.server_address), "example.com");
    snprintf(s.peer, sizeof(s.peer), "::1");
    snprintf(s.error_type, sizeof(s.error_type), "503");
    return s;
}

static const char *attr(const pt_json_t *sp, const char *key)
{
    const pt_json_t *a = pt_json_get(sp, "attributes");
    for (size_t i = 0; a && i < a->n; i++)
        if (strcmp(pt_json_get(a->items[i], "key")->s.p, key) == 0) {
            const pt_json_t *v = pt_json_get(a->items[i], "value");
            const pt_json_t *s = pt_json_get(v, "stringValue");
            return s ? s->s.p : pt_json_get(v, "intValue")->s.p;
        }
    return NULL;
}

static void encoders(void)
{
    pt_trace_conf_t tc = {.service_name = "svc\"1"};
    pt_span_t v[2] = {span(PT_SPAN_SERVER), span(PT_SPAN_CLIENT)};
    pt_sbuf_t b = {0};
    pt_trace_encode_otlp(&b, &tc, v, 2);
    pt_arena_t a;
    pt_arena_init(&a, 65536, 0);
    const char *err = NULL;
    pt_json_t *j = b.failed ? NULL : pt_json_parse(&a, b.p, b.n, &err);
    ok(j != NULL, "OTLP: valid JSON (%s)", err ? err : "ok");
    const pt_json_t *rs = j ? pt_json_get(j, "resourceSpans") : NULL;
    const pt_json_t *res = rs && rs->n ? pt_json_get(pt_json_get(rs->items[0], "resource"), "attributes") : NULL;
    ok(res && strcmp(pt_json_get(pt_json_get(res->items[0], "value"), "stringValue")->s.p, "svc\"1") == 0,
       "OTLP: service.name");
    const pt_json_t *ss = rs ? pt_json_get(rs->items[0], "scopeSpans") : NULL;
    const pt_json_t *spans = ss && ss->n ? pt_json_get(ss->items[0], "spans") : NULL;
    ok(spans && spans->n == 2, "OTLP: two spans");
    if (spans && spans->n == 2) {
        const pt_json_t *s0 = spans->items[0], *s1 = spans->items[1];
        is_str(pt_json_get(s0, "traceId")->s.p, "abababababababababababababababab", "OTLP: traceId as hex");
        is_str(pt_json_get(s0, "spanId")->s.p, "0101010101010101", "OTLP: spanId as hex");
        ok(!pt_json_get(s0, "parentSpanId"), "OTLP: a root span has no parentSpanId");
        is_str(pt_json_get(s1, "parentSpanId")->s.p, "0202020202020202", "OTLP: parentSpanId");
        is_int(pt_json_get(s0, "kind")->i, 2, "OTLP: SERVER is 2");
        is_int(pt_json_get(s1, "kind")->i, 3, "OTLP: CLIENT is 3");
        is_str(pt_json_get(s0, "startTimeUnixNano")->s.p, "1700000000123456000", "OTLP: nanoseconds as a string");
        is_str(pt_json_get(s0, "name")->s.p, "GET /a/*", "OTLP: a server span's name is method and route");
        is_str(pt_json_get(s1, "name")->s.p, "GET", "OTLP: a client span's is the method");
        is_str(attr(s0, "url.path"), "/a\"b\\c\x01\xc3\xbf", "OTLP: a path with quotes and bytes survives");
        is_str(attr(s0, "http.response.status_code"), "503", "OTLP: an int attribute");
        is_int(pt_json_get(pt_json_get(s0, "status"), "code")->i, 2, "OTLP: status ERROR");
        ok(!attr(s1, "url.path"), "OTLP: no url.path on a client span");
    }
    pt_arena_reset(&a);
    b.n = 0;
    pt_trace_encode_zipkin(&b, &tc, v, 2);
    j = pt_json_parse(&a, b.p, b.n, &err);
    ok(j && j->type == PT_JSON_ARR && j->n == 2, "Zipkin: an array of two spans");
    if (j && j->n == 2) {
        const pt_json_t *s0 = j->items[0], *s1 = j->items[1];
        is_str(pt_json_get(s0, "kind")->s.p, "SERVER", "Zipkin: kind SERVER");
        is_str(pt_json_get(s1, "kind")->s.p, "CLIENT", "Zipkin: kind CLIENT");
        ok(pt_json_get(s0, "shared")->type == PT_JSON_BOOL && !pt_json_get(s0, "shared")->b, "Zipkin: shared false");
        is_int(pt_json_get(s0, "timestamp")->i, 1700000000123456, "Zipkin: microseconds");
        is_int(pt_json_get(s0, "duration")->i, 100000, "Zipkin: duration");
        is_str(pt_json_get(pt_json_get(s0, "localEndpoint"), "serviceName")->s.p, "svc\"1", "Zipkin: serviceName");
        is_str(pt_json_get(pt_json_get(s1, "remoteEndpoint"), "ipv6")->s.p, "::1", "Zipkin: remoteEndpoint");
        is_str(pt_json_get(pt_json_get(s0, "tags"), "error")->s.p, "503", "Zipkin: the error tag");
        is_str(pt_json_get(s1, "parentId")->s.p, "0202020202020202", "Zipkin: parentId");
    }
    pt_arena_reset(&a);
    b.n = 0;
    pt_trace_encode_otlp(&b, &tc, v, 0);
    ok(pt_json_parse(&a, b.p, b.n, &err) != NULL, "OTLP: an empty batch is valid JSON");
    pt_arena_free(&a);
    free(b.p);
}

static pt_config_t *load(const char *text, char *first, size_t size)
{
    pt_diag_t d;
    pt_diag_init(&d);
    pt_config_t *c = pt_config_load_text("p.yaml", text, strlen(text), &d);
    first[0] = '\0';
    if (d.n)
        pt_diag_format(&d, 0, first, size);
    pt_diag_free(&d);
    return c;
}

#define LT "listeners: [{ address: 127.0.0.1:8080 }]\nroutes: [{ match: { paths: [/a] }, respond: {} }]\n"

static void configuration(void)
{
    char first[1024];
    pt_config_t *c = load(LT, first, sizeof(first));
    ok(c && !c->tracing.node, "no tracing block: tracing off");
    pt_config_free(c);
    c = load(LT "tracing: { endpoint: \"http://collector:4318/v1/traces\" }\n", first, sizeof(first));
    ok(c != NULL, "a tracing block loads (%s)", first);
    if (c) {
        const pt_trace_conf_t *t = &c->tracing;
        ok(t->sample == 1 && t->always && t->threshold == UINT64_MAX && t->parent_based, "sample 1, parent_based");
        is_int(t->exporter, PT_TRACE_OTLP, "otlp by default");
        is_str(t->service_name, "portico", "service_name portico");
        is_int(t->batch_size, 512, "batch_size 512");
        is_int(t->queue_size, 2048, "queue_size 2048");
        is_int(t->interval, 5000, "interval 5s");
        is_int(t->timeout, 10000, "timeout 10s");
        ok(t->uri && t->uri->port == 4318 && strcmp(t->uri->path_query, "/v1/traces") == 0, "the endpoint's parts");
        const pt_upstream_conf_t *up = t->uri ? pt_conf_uri_upstream(c, t->uri) : NULL;
        ok(up && strcmp(up->name, "http://collector:4318") == 0, "an upstream made for the endpoint");
        const pt_route_conf_t *r = PT_LIST_AT(c->routes, pt_route_conf_t, 0);
        ok(r->tracing, "a route is traced by default");
    }
    pt_config_free(c);
    c = load(LT "tracing: { endpoint: \"http://127.0.0.1:9411/api/v2/spans\", sample: 0.25, exporter: zipkin }\n",
             first, sizeof(first));
    ok(c && c->tracing.threshold == (uint64_t)1 << 62 && !c->tracing.always && c->tracing.exporter == PT_TRACE_ZIPKIN,
       "sample 0.25: a quarter of the draws");
    pt_config_free(c);
    c = load(LT "tracing: { endpoint: \"http://127.0.0.1:1/\", sample: 2 }\n", first, sizeof(first));
    ok(!c && strstr(first, "p.yaml:3:53: error: tracing.sample: expected a ratio from 0 to 1"), "sample 2: %s", first);
    pt_config_free(c);
    c = load(LT "tracing: { sample: 0 }\n", first, sizeof(first));
    ok(!c && strstr(first, "endpoint"), "the endpoint is required: %s", first);
    pt_config_free(c);
}

/* Every byte in every place of a word, against printf's digits. */
static void hex_digits(void)
{
    uint8_t b[16];
    char got[33], want[33];
    bool same = true;
    for (int v = 0; v < 256 && same; v++)
        for (int at = 0; at < 16 && same; at++) {
            for (int i = 0; i < 16; i++)
                b[i] = (uint8_t)(i == at ? v : (v * 7 + i * 31) & 0xff);
            pt_trace_hex(b, 16, got);
            got[32] = '\0';
            for (int i = 0; i < 16; i++)
                snprintf(want + 2 * i, 3, "%02x", b[i]);
            same = strcmp(got, want) == 0;
        }
    ok(same, "ids as lowercase hex, every byte in every place (%s)", got);
    pt_trace_hex(b, 3, got); /* not whole words */
    got[6] = '\0';
    snprintf(want, sizeof(want), "%02x%02x%02x", b[0], b[1], b[2]);
    is_str(got, want, "three bytes");
}

int main(void)
{
    hex_digits();
    configuration();
    traceparent();
    b3_single();
    b3_multi();
    extract();
    fields();
    ids();
    encoders();
    return done_testing();
}
