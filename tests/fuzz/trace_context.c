/* libFuzzer target: the trace context parsers (traceparent, B3 single and
 * multi, tracestate joining).  The input is header lines "name: value\n";
 * each value also goes through every parser on its own.
 * Invariants checked: no crash and no read past a value; a parse that
 * succeeds gives ids that are not all zeros and, written out again in the
 * canonical form, parse to the same ids and decision; a tracestate passed
 * on is at most PT_TRACESTATE_MAX bytes of printable ASCII. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/assert.h"
#include "portico/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

/* Each value in a buffer of its own size, so that ASan sees a read past it. */
static pt_str_t own(const char *p, size_t n)
{
    char *c = malloc(n ? n : 1);
    PT_ASSERT(c);
    memcpy(c, p, n);
    return (pt_str_t){c, n};
}

static void round_trip(const pt_trace_parent_t *p)
{
    char tid[33], sid[17], text[64];
    pt_trace_hex(p->trace_id, 16, tid);
    pt_trace_hex(p->span_id, 8, sid);
    tid[32] = sid[16] = '\0';
    PT_ASSERT(!zero(p->trace_id, 16) && !zero(p->span_id, 8));
    pt_trace_parent_t q;
    memset(&q, 0, sizeof(q));
    snprintf(text, sizeof(text), "00-%s-%s-%s", tid, sid, p->sampled == 1 ? "01" : "00");
    PT_ASSERT(pt_trace_parse_traceparent(pt_str_from(text), &q) == 0);
    PT_ASSERT(memcmp(q.trace_id, p->trace_id, 16) == 0 && memcmp(q.span_id, p->span_id, 8) == 0);
    PT_ASSERT(q.sampled == (p->sampled == 1));
    memset(&q, 0, sizeof(q));
    snprintf(text, sizeof(text), "%s-%s%s", tid, sid, p->sampled < 0 ? "" : p->sampled ? "-1" : "-0");
    PT_ASSERT(pt_trace_parse_b3(pt_str_from(text), &q) == 0);
    PT_ASSERT(memcmp(q.trace_id, p->trace_id, 16) == 0 && q.sampled == p->sampled);
}

static void each_parser(pt_str_t v)
{
    pt_trace_parent_t p;
    memset(&p, 0, sizeof(p));
    if (pt_trace_parse_traceparent(v, &p) == 0) {
        PT_ASSERT(v.n == 55 && p.source == PT_TRACE_SRC_W3C);
        round_trip(&p);
    }
    memset(&p, 0, sizeof(p));
    if (pt_trace_parse_b3(v, &p) == 0 && p.source != PT_TRACE_SRC_NONE)
        round_trip(&p);
    memset(&p, 0, sizeof(p));
    size_t half = v.n / 2;
    if (pt_trace_parse_b3_multi((pt_str_t){v.p, half}, (pt_str_t){v.p + half, v.n - half}, PT_STR_NULL,
                                PT_STR_NULL, &p) == 0 &&
        p.source != PT_TRACE_SRC_NONE)
        round_trip(&p);
    (void)pt_trace_is_field(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pt_h1_header_t h[32];
    size_t n = 0;
    const char *p = (const char *)data, *end = p + size;
    while (p < end && n < 32) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *e = nl ? nl : end;
        const char *colon = memchr(p, ':', (size_t)(e - p));
        if (colon) {
            const char *v = colon + 1;
            while (v < e && *v == ' ')
                v++;
            h[n].name = own(p, (size_t)(colon - p));
            h[n].value = own(v, (size_t)(e - v));
            each_parser(h[n].value);
            n++;
        }
        p = nl ? nl + 1 : end;
    }
    pt_trace_parent_t out;
    pt_trace_extract(h, n, &out);
    if (out.source != PT_TRACE_SRC_NONE)
        round_trip(&out);
    PT_ASSERT(out.tslen <= PT_TRACESTATE_MAX);
    PT_ASSERT(out.tslen == 0 || out.source == PT_TRACE_SRC_W3C);
    for (size_t i = 0; i < out.tslen; i++)
        PT_ASSERT(out.tracestate[i] >= 0x20 && out.tracestate[i] <= 0x7e);
    for (size_t i = 0; i < n; i++) {
        free((void *)h[i].name.p);
        free((void *)h[i].value.p);
    }
    return 0;
}
