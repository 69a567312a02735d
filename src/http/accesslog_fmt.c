/* Formatting one access log line from its entry, with the segments the
 * format was compiled into (accesslog_conf.c): a template, or the fields
 * of the JSON format.  Each segment is the glue before a value (the
 * template's literal text, or a JSON key with its quotes and comma) and
 * the value.  The line's room is known at load (line_max, which counts
 * PT_ALOG_PAD bytes more), so nothing here checks it again: a value
 * stops at its own bound, and glue is copied by whole PT_ALOG_PAD blocks. */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "portico/accesslog.h"
#include "portico/accesslog_conf.h"
#include "portico/assert.h"
#include "portico/router.h"
#include "portico/value.h"

static inline char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* Glue made at load has PT_ALOG_PAD readable bytes: a short one is copied
 * whole, in two moves, and the bytes past it are written over next. */
static inline char *put_glue(char *p, const char *g, size_t n)
{
    if (n <= PT_ALOG_PAD)
        memcpy(p, g, PT_ALOG_PAD);
    else
        memcpy(p, g, n);
    return p + n;
}

/* Text formats escape quotes, backslashes and control bytes as \xHH, as
 * nginx does, so a hostile header cannot forge a log line.  JSON escapes
 * them as \u00HH, and bytes past 0x7e too (header bytes are not UTF-8:
 * each is taken as Latin-1), so every line is valid UTF-8 and JSON.  A
 * field stops at a whole escape once it has taken max bytes: a byte goes
 * out only while 6 bytes of the field are left. */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Does any of the 8 bytes of w need an escape (< 0x20, >= 0x7f, ", \)? */
static inline bool word_needs_escape(uint64_t w)
{
    uint64_t q = w ^ (ONES * '"'), b = w ^ (ONES * '\\'), d = w ^ (ONES * 0x7f);
    uint64_t any = w | ((w - ONES * 0x20) & ~w) | ((q - ONES) & ~q) | ((b - ONES) & ~b) | ((d - ONES) & ~d);
    return (any & HIGHS) != 0;
}

/* The bytes a line takes as they are: printable ASCII but " and \. */
static const unsigned char plain[256] = {
    [0x20 ... 0x21] = 1, [0x23 ... 0x5b] = 1, [0x5d ... 0x7e] = 1, /* not " (0x22) nor \\ (0x5c) */
};

static inline char *esc_byte(char *p, unsigned char c, int json)
{
    static const char hex[] = "0123456789abcdef";
    if (plain[c]) {
        *p = (char)c;
        return p + 1;
    }
    if (!json) {
        p[0] = '\\', p[1] = 'x', p[2] = hex[c >> 4], p[3] = hex[c & 15];
        return p + 4;
    }
    if (c == '"' || c == '\\') {
        p[0] = '\\', p[1] = (char)c;
        return p + 2;
    }
    p[0] = '\\', p[1] = 'u', p[2] = '0', p[3] = '0', p[4] = hex[c >> 4], p[5] = hex[c & 15];
    return p + 6;
}

/* All of in[0..n), escaped: the caller knows that it fits. */
static char *esc_all(char *p, const unsigned char *in, size_t n, int json)
{
    const unsigned char *e = in + n;
    bool copied = false; /* the last 8 bytes went out as they are */
    while (e - in >= 8) {
        uint64_t w;
        memcpy(&w, in, 8);
        copied = !word_needs_escape(w);
        if (copied) {
            memcpy(p, &w, 8);
            p += 8;
        } else {
            for (int k = 0; k < 8; k++)
                p = esc_byte(p, in[k], json);
        }
        in += 8;
    }
    size_t r = (size_t)(e - in);
    if (r && copied) { /* the tail as the last 8 bytes, over the ones that went out as they are */
        uint64_t w;
        memcpy(&w, e - 8, 8);
        if (!word_needs_escape(w)) {
            memcpy(p - (8 - r), &w, 8);
            return p + r;
        }
    }
    while (in < e)
        p = esc_byte(p, *in++, json);
    return p;
}

static char *put_esc(char *p, pt_str_t s, int json, size_t max)
{
    if (!s.n) {
        if (!json)
            *p++ = '-';
        return p;
    }
    const unsigned char *in = (const unsigned char *)s.p, *e = in + s.n;
    if (s.n <= (max - 6) / 6) /* all of it, even escaped */
        return esc_all(p, in, s.n, json);
    char *last = p + max - 6; /* the last place a byte may start */
    while (in < e && p <= last) {
        if (e - in >= 8 && p + 7 <= last) { /* 8 bytes that need nothing: at once */
            uint64_t w;
            memcpy(&w, in, 8);
            if (!word_needs_escape(w)) {
                memcpy(p, &w, 8);
                p += 8;
                in += 8;
                continue;
            }
        }
        p = esc_byte(p, *in++, json);
    }
    return p;
}

static inline char *put_u64(char *p, unsigned long long v)
{
    return p + pt_fmt_u64(p, v, 0);
}

/* us as seconds with milliseconds ("0.042"), rounded as %.3f does, without
 * printf: a line has several. */
static char *put_ms(char *p, int64_t us)
{
    uint64_t ms = ((uint64_t)(us > 0 ? us : 0) + 500) / 1000;
    p = put_u64(p, ms / 1000);
    p[0] = '.', p[1] = (char)('0' + ms % 1000 / 100), p[2] = (char)('0' + ms % 100 / 10), p[3] = (char)('0' + ms % 10);
    return p + 4;
}

/* The time of a request in the log's two forms, made once a second: the
 * part up to the seconds (the ISO form's milliseconds are added). */
static pt_str_t clock_text(time_t sec, bool iso)
{
    static time_t at[2] = {-1, -1};
    static char text[2][40];
    static size_t len[2];
    if (at[iso] != sec) {
        struct tm tm;
        gmtime_r(&sec, &tm);
        len[iso] = strftime(text[iso], sizeof(text[iso]), iso ? "%Y-%m-%dT%H:%M:%S" : "%d/%b/%Y:%H:%M:%S +0000", &tm);
        at[iso] = sec;
    }
    return (pt_str_t){text[iso], len[iso]};
}

static char *put_param(char *p, const pt_alog_seg_t *s, const pt_alog_entry_t *e, int json)
{
    pt_str_t v = PT_STR_NULL;
    for (size_t i = 0; e->match && i < e->match->nparams; i++)
        if (pt_str_eq(e->match->params[i].name, (pt_str_t){s->name, s->nlen}))
            v = e->match->params[i].value;
    return put_esc(p, v, json, PT_ALOG_FIELD_MAX);
}

/* Seconds with milliseconds, as nginx's $upstream_response_time; "-"
 * (null in JSON) when there is no such time. */
static char *put_secs(char *p, int64_t us, int json)
{
    if (us >= 0)
        return put_ms(p, us);
    return json ? put(p, "null", 4) : put(p, "-", 1);
}

static char *put_addr(char *p, const pt_alog_entry_t *e, int json)
{
    char tmp[64];
    pt_str_t a = e->peer_ip;
    if (!a.n && e->peer) {
        pt_addr_format_ip(e->peer, tmp, sizeof(tmp));
        a = pt_str_from(tmp);
    }
    if (!a.n)
        return json ? p : put(p, "-", 1);
    return put(p, a.p, a.n < 64 ? a.n : 64);
}

static char *put_var(char *p, const pt_alog_seg_t *s, const pt_alog_entry_t *e, int json)
{
    const size_t F = PT_ALOG_FIELD_MAX;
    switch (s->var) {
    case PT_AV_METHOD: return put_esc(p, e->method, json, F);
    case PT_AV_PROTOCOL: return put_esc(p, e->protocol, json, F);
    case PT_AV_REQUEST_ID: return put_esc(p, e->request_id, json, F);
    case PT_AV_HOST: return put_esc(p, e->host, json, F);
    case PT_AV_USER_AGENT: return put_esc(p, e->user_agent, json, F);
    case PT_AV_REFERER: return put_esc(p, e->referer, json, F);
    case PT_AV_ROUTE: return put_esc(p, pt_str_from(e->route), json, F);
    case PT_AV_UPSTREAM_ADDR: return put_esc(p, pt_str_from(e->upstream_addr), json, F);
    case PT_AV_TLS_PROTOCOL: return put_esc(p, pt_str_from(e->tls_protocol), json, F);
    case PT_AV_TLS_CIPHER: return put_esc(p, pt_str_from(e->tls_cipher), json, F);
    case PT_AV_COMPLETION: return put_esc(p, pt_str_from(pt_completion_names[e->completion]), json, F);
    case PT_AV_CONSUMER: return put_esc(p, pt_str_from(e->consumer), json, F);
    case PT_AV_CACHE_STATUS: return put_esc(p, pt_str_from(e->cache_status), json, F);
    case PT_AV_TRACE_ID: return put_esc(p, pt_str_from(e->trace_id), json, F);
    case PT_AV_TARGET: return put_esc(p, e->target, json, PT_ALOG_TARGET_MAX);
    case PT_AV_TIME: {
        pt_str_t t = clock_text(e->start.tv_sec, false);
        memcpy(p, t.p, PT_ALOG_PAD); /* 26 bytes, of a 40-byte buffer, where 72 are kept */
        return p + t.n;
    }
    case PT_AV_TIME_ISO: {
        pt_str_t t = clock_text(e->start.tv_sec, true);
        int ms = (int)(e->start.tv_usec / 1000);
        memcpy(p, t.p, PT_ALOG_PAD); /* 19 bytes */
        p += t.n;
        p[0] = '.', p[1] = (char)('0' + ms / 100), p[2] = (char)('0' + ms / 10 % 10), p[3] = (char)('0' + ms % 10);
        p[4] = 'Z';
        return p + 5;
    }
    case PT_AV_REMOTE_ADDR: return put_addr(p, e, json);
    case PT_AV_STATUS: return put_u64(p, (unsigned)(e->status > 0 ? e->status : 0));
    case PT_AV_BYTES_IN: return put_u64(p, e->bytes_in);
    case PT_AV_BYTES_OUT: return put_u64(p, e->bytes_out);
    case PT_AV_REQUEST_TIME: return put_ms(p, e->request_us);
    case PT_AV_UPSTREAM_STATUS:
        if (e->upstream_status)
            return put_u64(p, (unsigned)(e->upstream_status > 0 ? e->upstream_status : 0));
        return json ? put(p, "null", 4) : put(p, "-", 1);
    case PT_AV_UPSTREAM_TIME: return put_secs(p, e->upstream_us, json);
    case PT_AV_UPSTREAM_CONNECT_TIME: return put_secs(p, e->upstream_us >= 0 ? e->upstream_connect_us : -1, json);
    case PT_AV_UPSTREAM_HEADER_TIME: return put_secs(p, e->upstream_us >= 0 ? e->upstream_header_us : -1, json);
    case PT_AV_PARAM: return put_param(p, s, e, json);
    case PT_AV_HTTP:
    case PT_AV_SENT_HTTP:
    case PT_AV_UPSTREAM_HTTP: return put_esc(p, e->hdr ? e->hdr[s->slot] : PT_STR_NULL, json, PT_ALOG_HDR_OUT_MAX);
    }
    return p;
}

bool pt_alog_var_is_string(int v)
{
    return v != PT_AV_STATUS && v != PT_AV_BYTES_IN && v != PT_AV_BYTES_OUT && v != PT_AV_REQUEST_TIME &&
           v != PT_AV_UPSTREAM_STATUS && v != PT_AV_UPSTREAM_TIME && v != PT_AV_UPSTREAM_CONNECT_TIME &&
           v != PT_AV_UPSTREAM_HEADER_TIME;
}

size_t pt_accesslog_format(const pt_accesslog_conf_t *conf, const pt_alog_entry_t *e, char *buf, size_t size)
{
    PT_ASSERT(size >= conf->line_max);
    (void)size;
    char *p = buf;
    int json = conf->kind == PT_ALOG_JSON;
    for (const pt_alog_seg_t *s = conf->compiled;; s++) {
        p = put_glue(p, s->glue, s->glen);
        if (s->var < 0) /* the end: its glue ended the line */
            break;
        p = put_var(p, s, e, json);
    }
    return (size_t)(p - buf);
}
