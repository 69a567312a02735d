/* Trace context propagation: W3C `traceparent`/`tracestate` and B3, read
 * strictly (a value that is not exactly what the specification says is
 * ignored, and a new trace starts), and the random ids.  Pure: no I/O, no
 * allocation; the fuzz target tests/fuzz/trace_context.c drives it. */
#include "config.h"

#include <string.h>

#include "portico/trace.h"

/* Two digits per byte from one table: ids are written on every traced
 * request, sampled or not. */
static const char hexpairs[513] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f"
    "303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f"
    "909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef"
    "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

void pt_trace_hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        memcpy(out + 2 * i, hexpairs + 2 * b[i], 2);
}

/* Lowercase hex only: the specifications say so, and an uppercase id is
 * how a broken propagator shows itself. */
static int lhex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* n bytes from 2n lowercase hex digits at s; false on any other byte. */
static bool unhex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = lhex(s[2 * i]), lo = lhex(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

static void set_parent(pt_trace_parent_t *out, int source, const uint8_t tid[16], const uint8_t sid[8], int sampled)
{
    out->source = source;
    memcpy(out->trace_id, tid, 16);
    memcpy(out->span_id, sid, 8);
    out->sampled = sampled;
}

int pt_trace_parse_traceparent(pt_str_t v, pt_trace_parent_t *out)
{
    /* 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 */
    uint8_t tid[16], sid[8], flags, ver;
    if (v.n != 55 || !v.p || v.p[2] != '-' || v.p[35] != '-' || v.p[52] != '-')
        return -1;
    if (!unhex(v.p, &ver, 1) || ver != 0 || !unhex(v.p + 3, tid, 16) || !unhex(v.p + 36, sid, 8) ||
        !unhex(v.p + 53, &flags, 1))
        return -1;
    if (all_zero(tid, 16) || all_zero(sid, 8))
        return -1;
    set_parent(out, PT_TRACE_SRC_W3C, tid, sid, flags & 1);
    return 0;
}

/* A B3 trace id: 16 or 32 lowercase hex, a 64-bit one left-padded. */
static bool b3_trace_id(pt_str_t s, uint8_t tid[16])
{
    memset(tid, 0, 16);
    if (s.n == 32)
        return unhex(s.p, tid, 16) && !all_zero(tid, 16);
    if (s.n == 16)
        return unhex(s.p, tid + 8, 8) && !all_zero(tid, 16);
    return false;
}

static bool b3_span_id(pt_str_t s, uint8_t sid[8])
{
    return s.n == 16 && unhex(s.p, sid, 8) && !all_zero(sid, 8);
}

/* "0", "1" or "d" (debug: sampled); -1 for anything else. */
static int b3_sampling(pt_str_t s)
{
    if (s.n != 1)
        return -1;
    return s.p[0] == '0' ? 0 : s.p[0] == '1' || s.p[0] == 'd' ? 1 : -1;
}

int pt_trace_parse_b3(pt_str_t v, pt_trace_parent_t *out)
{
    if (!v.p || v.n == 0)
        return -1;
    if (v.n == 1) { /* a sampling decision alone: no ids to continue */
        int s = b3_sampling(v);
        if (s < 0)
            return -1;
        out->source = PT_TRACE_SRC_NONE;
        out->sampled = s;
        return 0;
    }
    pt_str_t part[4];
    size_t np = 0;
    const char *p = v.p, *end = v.p + v.n;
    while (np < 4) {
        const char *dash = memchr(p, '-', (size_t)(end - p));
        part[np++] = (pt_str_t){p, (size_t)((dash ? dash : end) - p)};
        if (!dash)
            break;
        p = dash + 1;
        if (np == 4)
            return -1; /* a fifth part */
    }
    uint8_t tid[16], sid[8], pid[8];
    int sampled = -1;
    if (np < 2 || !b3_trace_id(part[0], tid) || !b3_span_id(part[1], sid))
        return -1;
    if (np >= 3 && (sampled = b3_sampling(part[2])) < 0)
        return -1;
    if (np == 4 && !b3_span_id(part[3], pid))
        return -1;
    set_parent(out, PT_TRACE_SRC_B3, tid, sid, sampled);
    return 0;
}

int pt_trace_parse_b3_multi(pt_str_t trace_id, pt_str_t span_id, pt_str_t sampled, pt_str_t flags,
                            pt_trace_parent_t *out)
{
    int s = -1;
    if (sampled.n) {
        if (PT_STR_IEQ(sampled, "1") || PT_STR_IEQ(sampled, "true"))
            s = 1;
        else if (PT_STR_IEQ(sampled, "0") || PT_STR_IEQ(sampled, "false"))
            s = 0;
        else
            return -1;
    }
    if (flags.n) {
        if (!PT_STR_IEQ(flags, "1") && !PT_STR_IEQ(flags, "0"))
            return -1;
        if (flags.p[0] == '1')
            s = 1; /* debug implies sampled */
    }
    if (!trace_id.n && !span_id.n) {
        if (s < 0)
            return -1;
        out->source = PT_TRACE_SRC_NONE; /* a decision without ids */
        out->sampled = s;
        return 0;
    }
    uint8_t tid[16], sid[8];
    if (!b3_trace_id(trace_id, tid) || !b3_span_id(span_id, sid))
        return -1;
    set_parent(out, PT_TRACE_SRC_B3_MULTI, tid, sid, s);
    return 0;
}

bool pt_trace_tracestate_ok(pt_str_t v)
{
    if (v.n > PT_TRACESTATE_MAX)
        return false;
    for (size_t i = 0; i < v.n; i++)
        if ((unsigned char)v.p[i] < 0x20 || (unsigned char)v.p[i] > 0x7e)
            return false;
    return true;
}

bool pt_trace_is_field(pt_str_t n)
{
    switch (n.n) {
    case 2:
        return PT_STR_IEQ(n, "b3");
    case 10:
        return PT_STR_IEQ(n, "tracestate") || PT_STR_IEQ(n, "x-b3-flags");
    case 11:
        return PT_STR_IEQ(n, "traceparent") || PT_STR_IEQ(n, "x-b3-spanid");
    case 12:
        return PT_STR_IEQ(n, "x-b3-traceid") || PT_STR_IEQ(n, "x-b3-sampled");
    case 17:
        return PT_STR_IEQ(n, "x-b3-parentspanid");
    default:
        return false;
    }
}

/* The fields tracing reads, found in one pass. */
typedef struct found {
    pt_str_t traceparent, b3, b3_trace, b3_span, b3_sampled, b3_flags;
    int ntraceparent;
} found_t;

static void note_field(found_t *f, pt_str_t n, pt_str_t v)
{
    switch (n.n) {
    case 2:
        if (PT_STR_IEQ(n, "b3") && !f->b3.p)
            f->b3 = v;
        break;
    case 10: /* the first of each, as b3: a later one may be injected */
        if (PT_STR_IEQ(n, "x-b3-flags") && !f->b3_flags.p)
            f->b3_flags = v;
        break;
    case 11:
        if (PT_STR_IEQ(n, "traceparent")) {
            f->traceparent = v;
            f->ntraceparent++;
        } else if (PT_STR_IEQ(n, "x-b3-spanid") && !f->b3_span.p) {
            f->b3_span = v;
        }
        break;
    case 12:
        if (PT_STR_IEQ(n, "x-b3-traceid") && !f->b3_trace.p)
            f->b3_trace = v;
        else if (PT_STR_IEQ(n, "x-b3-sampled") && !f->b3_sampled.p)
            f->b3_sampled = v;
        break;
    }
}

/* Every tracestate field joined with ",", as RFC 9110 combines a list
 * field; none when the whole is too long or has a byte it may not. */
static void join_tracestate(const pt_h1_header_t *h, size_t n, pt_trace_parent_t *out)
{
    size_t len = 0;
    out->tslen = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(h[i].name.n == 10 && PT_STR_IEQ(h[i].name, "tracestate")) || !h[i].value.n)
            continue;
        size_t need = h[i].value.n + (len ? 1 : 0);
        if (len + need > PT_TRACESTATE_MAX || !pt_trace_tracestate_ok(h[i].value))
            return;
        if (len)
            out->tracestate[len++] = ',';
        memcpy(out->tracestate + len, h[i].value.p, h[i].value.n);
        len += h[i].value.n;
    }
    out->tslen = len;
}

void pt_trace_extract(const pt_h1_header_t *h, size_t n, pt_trace_parent_t *out)
{
    found_t f;
    memset(&f, 0, sizeof(f));
    out->source = PT_TRACE_SRC_NONE;
    out->sampled = -1;
    out->tslen = 0;
    for (size_t i = 0; i < n; i++)
        if (h[i].name.n == 2 || (h[i].name.n >= 10 && h[i].name.n <= 12))
            note_field(&f, h[i].name, h[i].value);
    /* two traceparent fields cannot be told apart: neither is believed */
    if (f.ntraceparent == 1 && pt_trace_parse_traceparent(f.traceparent, out) == 0) {
        join_tracestate(h, n, out);
        return;
    }
    if (f.b3.p && pt_trace_parse_b3(f.b3, out) == 0)
        return;
    if (f.b3_trace.p || f.b3_span.p || f.b3_sampled.p || f.b3_flags.p) {
        if (pt_trace_parse_b3_multi(f.b3_trace, f.b3_span, f.b3_sampled, f.b3_flags, out) < 0) {
            out->source = PT_TRACE_SRC_NONE;
            out->sampled = -1;
        }
    }
}

/* ---- random ids: xoshiro128+-like, per process (each worker seeds its
 * own after fork, so no two workers draw the same ids) ---- */

static uint64_t rng_s[2] = {0x9e3779b97f4a7c15ull, 0xbf58476d1ce4e5b9ull};

void pt_trace_seed(uint64_t a, uint64_t b)
{
    rng_s[0] = a | 1;
    rng_s[1] = b ? b : 0x94d049bb133111ebull;
}

uint64_t pt_trace_rand(void)
{
    /* xorshift128+ (Vigna): fast, and good enough for ids and draws */
    uint64_t s1 = rng_s[0];
    const uint64_t s0 = rng_s[1];
    rng_s[0] = s0;
    s1 ^= s1 << 23;
    rng_s[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return rng_s[1] + s0;
}

void pt_trace_new_id(uint8_t *id, size_t n)
{
    /* n is 8 or 16: whole words; all zeros (one draw in 2^64) is redrawn */
    uint64_t any;
    do {
        any = 0;
        for (size_t i = 0; i + 8 <= n; i += 8) {
            uint64_t r = pt_trace_rand();
            memcpy(id + i, &r, 8);
            any |= r;
        }
    } while (!any);
}
