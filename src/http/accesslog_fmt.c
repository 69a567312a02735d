/* Formatting one access log line from its entry, with the segments the
 * format was compiled into (accesslog_conf.c): a template, or the fields
 * of the JSON format. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "portico/accesslog.h"
#include "portico/accesslog_conf.h"
#include "portico/router.h"
#include "portico/value.h"

static void put(char **p, char *end, const char *s, size_t n)
{
    if ((size_t)(end - *p) < n)
        n = (size_t)(end - *p);
    memcpy(*p, s, n);
    *p += n;
}

/* Text formats escape quotes, backslashes and control bytes as \xHH, as
 * nginx does, so a hostile header cannot forge a log line.  JSON escapes
 * them as \u00HH, and bytes past 0x7e too (header bytes are not UTF-8:
 * each is taken as Latin-1), so every line is valid UTF-8 and JSON.  A
 * field stops at a whole escape once it has taken max bytes of the line,
 * so the fields after it and the line's end always fit. */
/* The bytes a log line takes as they are: printable ASCII but " and \. */
static unsigned char plain[256];

static void plain_init(void)
{
    for (int c = 0x20; c < 0x7f; c++)
        plain[c] = c != '"' && c != '\\';
}

static void put_esc(char **p, char *end, pt_str_t s, int json, size_t max)
{
    static const char hex[] = "0123456789abcdef";
    if (!s.p || !s.n) {
        if (!json)
            put(p, end, "-", 1);
        return;
    }
    if (!plain['a'])
        plain_init();
    char *stop = (size_t)(end - *p) > max + 8 ? *p + max : end - 8;
    for (size_t i = 0; i < s.n && *p + 6 <= stop; i++) {
        /* a run of bytes that need no escape, copied at once */
        size_t run = i;
        while (run < s.n && plain[(unsigned char)s.p[run]])
            run++;
        if (run > i) {
            size_t room = (size_t)(stop - 6 - *p) + 1, n = run - i < room ? run - i : room;
            memcpy(*p, s.p + i, n);
            *p += n;
            i += n - 1;
            continue;
        }
        unsigned char c = (unsigned char)s.p[i];
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x7f) {
            if (json) {
                char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                if (c == '"' || c == '\\') {
                    esc[1] = (char)c;
                    put(p, end, esc, 2);
                } else {
                    put(p, end, esc, 6);
                }
            } else {
                char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
                put(p, end, esc, 4);
            }
        } else {
            *(*p)++ = (char)c;
        }
    }
}

static void put_u64(char **p, char *end, unsigned long long v)
{
    char d[24];
    put(p, end, d, pt_fmt_u64(d, v, 0));
}

/* us as seconds with milliseconds ("0.042"), rounded as %.3f does, without
 * printf: a line has several. */
static void put_ms(char **p, char *end, int64_t us)
{
    uint64_t ms = ((uint64_t)(us > 0 ? us : 0) + 500) / 1000;
    put_u64(p, end, ms / 1000);
    char f[4] = {'.', (char)('0' + ms % 1000 / 100), (char)('0' + ms % 100 / 10), (char)('0' + ms % 10)};
    put(p, end, f, 4);
}

/* The time of a request in the log's two forms, made once a second: the
 * part up to the seconds (and the ISO form's milliseconds added). */
static const char *clock_text(time_t sec, bool iso)
{
    static time_t at[2] = {-1, -1};
    static char text[2][40];
    if (at[iso] != sec) {
        struct tm tm;
        gmtime_r(&sec, &tm);
        strftime(text[iso], sizeof(text[iso]), iso ? "%Y-%m-%dT%H:%M:%S" : "%d/%b/%Y:%H:%M:%S +0000", &tm);
        at[iso] = sec;
    }
    return text[iso];
}

static void put_param(char **p, char *end, const pt_alog_seg_t *s, const pt_alog_entry_t *e, int json)
{
    pt_str_t v = PT_STR_NULL;
    for (size_t i = 0; e->match && i < e->match->nparams; i++)
        if (pt_str_eq(e->match->params[i].name, (pt_str_t){s->name, s->nlen}))
            v = e->match->params[i].value;
    put_esc(p, end, v, json, PT_ALOG_FIELD_MAX);
}

/* Seconds with milliseconds, as nginx's $upstream_response_time; "-"
 * (null in JSON) when there is no such time. */
static void put_secs(char **p, char *end, int64_t us, int json)
{
    if (us >= 0)
        put_ms(p, end, us);
    else
        put(p, end, json ? "null" : "-", json ? 4 : 1);
}

/* A variable that is one of the entry's strings, as it is: true and *s. */
static bool string_of(int var, const pt_alog_entry_t *e, pt_str_t *s)
{
    const char *cs;
    switch (var) {
    case PT_AV_METHOD: *s = e->method; return true;
    case PT_AV_PROTOCOL: *s = e->protocol; return true;
    case PT_AV_REQUEST_ID: *s = e->request_id; return true;
    case PT_AV_HOST: *s = e->host; return true;
    case PT_AV_USER_AGENT: *s = e->user_agent; return true;
    case PT_AV_REFERER: *s = e->referer; return true;
    case PT_AV_ROUTE: cs = e->route; break;
    case PT_AV_UPSTREAM_ADDR: cs = e->upstream_addr; break;
    case PT_AV_TLS_PROTOCOL: cs = e->tls_protocol; break;
    case PT_AV_TLS_CIPHER: cs = e->tls_cipher; break;
    case PT_AV_COMPLETION: cs = pt_completion_names[e->completion]; break;
    case PT_AV_CONSUMER: cs = e->consumer; break;
    case PT_AV_CACHE_STATUS: cs = e->cache_status; break;
    case PT_AV_TRACE_ID: cs = e->trace_id; break;
    default: return false;
    }
    *s = pt_str_from(cs);
    return true;
}

static void put_var(char **p, char *end, const pt_alog_seg_t *s, const pt_alog_entry_t *e, int json)
{
    char tmp[64];
    pt_str_t str;
    if (string_of(s->var, e, &str)) {
        put_esc(p, end, str, json, PT_ALOG_FIELD_MAX);
        return;
    }
    switch (s->var) {
    case PT_AV_TIME: {
        const char *t = clock_text(e->start.tv_sec, false);
        put(p, end, t, strlen(t));
        break;
    }
    case PT_AV_TIME_ISO: {
        const char *t = clock_text(e->start.tv_sec, true);
        int ms = (int)(e->start.tv_usec / 1000);
        char f[5] = {'.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z'};
        put(p, end, t, strlen(t));
        put(p, end, f, 5);
        break;
    }
    case PT_AV_REMOTE_ADDR:
        if (e->peer_ip.n) {
            put(p, end, e->peer_ip.p, e->peer_ip.n);
        } else if (e->peer) {
            pt_addr_format_ip(e->peer, tmp, sizeof(tmp));
            put(p, end, tmp, strlen(tmp));
        } else {
            put(p, end, "-", json ? 0 : 1);
        }
        break;
    case PT_AV_TARGET:
        put_esc(p, end, e->target, json, PT_ALOG_TARGET_MAX);
        break;
    case PT_AV_STATUS:
        put_u64(p, end, (unsigned)(e->status > 0 ? e->status : 0));
        break;
    case PT_AV_BYTES_IN:
        put_u64(p, end, e->bytes_in);
        break;
    case PT_AV_BYTES_OUT:
        put_u64(p, end, e->bytes_out);
        break;
    case PT_AV_REQUEST_TIME:
        put_ms(p, end, e->request_us);
        break;
    case PT_AV_UPSTREAM_STATUS:
        if (e->upstream_status)
            put_u64(p, end, (unsigned)(e->upstream_status > 0 ? e->upstream_status : 0));
        else
            put(p, end, json ? "null" : "-", json ? 4 : 1);
        break;
    case PT_AV_UPSTREAM_TIME:
        put_secs(p, end, e->upstream_us, json);
        break;
    case PT_AV_UPSTREAM_CONNECT_TIME:
        put_secs(p, end, e->upstream_us >= 0 ? e->upstream_connect_us : -1, json);
        break;
    case PT_AV_UPSTREAM_HEADER_TIME:
        put_secs(p, end, e->upstream_us >= 0 ? e->upstream_header_us : -1, json);
        break;
    case PT_AV_PARAM:
        put_param(p, end, s, e, json);
        break;
    case PT_AV_HTTP:
    case PT_AV_SENT_HTTP:
    case PT_AV_UPSTREAM_HTTP:
        put_esc(p, end, e->hdr ? e->hdr[s->slot] : PT_STR_NULL, json, PT_ALOG_HDR_OUT_MAX);
        break;
    }
}

bool pt_alog_var_is_string(int v)
{
    return v != PT_AV_STATUS && v != PT_AV_BYTES_IN && v != PT_AV_BYTES_OUT && v != PT_AV_REQUEST_TIME &&
           v != PT_AV_UPSTREAM_STATUS && v != PT_AV_UPSTREAM_TIME && v != PT_AV_UPSTREAM_CONNECT_TIME &&
           v != PT_AV_UPSTREAM_HEADER_TIME;
}

size_t pt_accesslog_format(const pt_accesslog_conf_t *conf, const pt_alog_entry_t *e, char *buf, size_t size)
{
    char *p = buf, *end = buf + size - 1;
    bool json = conf->kind == PT_ALOG_JSON;
    if (json)
        put(&p, end, "{", 1);
    bool first = true;
    for (const pt_alog_seg_t *s = conf->compiled; s && s->var != -2; s++) {
        if (s->var == -1) {
            put(&p, end, s->lit, s->len);
            continue;
        }
        if (json) { /* the key, made at load: a variable's name, nothing to escape */
            put(&p, end, s->key + first, s->klen - first);
            first = false;
        }
        put_var(&p, end, s, e, json);
        if (json && s->str)
            put(&p, end, "\"", 1);
    }
    if (json)
        put(&p, end, "}", 1);
    *p++ = '\n';
    return (size_t)(p - buf);
}
