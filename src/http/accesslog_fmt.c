/* Formatting one access log line from its entry, with the segments the
 * format was compiled into (accesslog_conf.c): a template, or the fields
 * of the JSON format. */
#include "config.h"

#include <stdarg.h>
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
static void put_esc(char **p, char *end, pt_str_t s, int json, size_t max)
{
    static const char hex[] = "0123456789abcdef";
    if (!s.p || !s.n) {
        if (!json)
            put(p, end, "-", 1);
        return;
    }
    char *stop = (size_t)(end - *p) > max + 8 ? *p + max : end - 8;
    for (size_t i = 0; i < s.n && *p + 6 <= stop; i++) {
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

static void put_fmt(char **p, char *end, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void put_fmt(char **p, char *end, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(*p, (size_t)(end - *p), fmt, ap);
    va_end(ap);
    if (n > 0)
        *p += (size_t)n < (size_t)(end - *p) ? (size_t)n : (size_t)(end - *p) - 1;
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
        put_fmt(p, end, "%.3f", (double)us / 1e6);
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
    struct tm tm;
    pt_str_t str;
    if (string_of(s->var, e, &str)) {
        put_esc(p, end, str, json, PT_ALOG_FIELD_MAX);
        return;
    }
    switch (s->var) {
    case PT_AV_TIME:
        gmtime_r(&e->start.tv_sec, &tm);
        strftime(tmp, sizeof(tmp), "%d/%b/%Y:%H:%M:%S +0000", &tm);
        put(p, end, tmp, strlen(tmp));
        break;
    case PT_AV_TIME_ISO:
        gmtime_r(&e->start.tv_sec, &tm);
        put_fmt(p, end, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(e->start.tv_usec / 1000));
        break;
    case PT_AV_REMOTE_ADDR:
        if (e->peer) {
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
        put_fmt(p, end, "%d", e->status);
        break;
    case PT_AV_BYTES_IN:
        put_fmt(p, end, "%llu", (unsigned long long)e->bytes_in);
        break;
    case PT_AV_BYTES_OUT:
        put_fmt(p, end, "%llu", (unsigned long long)e->bytes_out);
        break;
    case PT_AV_REQUEST_TIME:
        put_fmt(p, end, "%.3f", (double)e->request_us / 1e6);
        break;
    case PT_AV_UPSTREAM_STATUS:
        if (e->upstream_status)
            put_fmt(p, end, "%d", e->upstream_status);
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

static int var_is_string(int v)
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
        if (json) { /* the key is a variable's name: nothing to escape */
            put(&p, end, first ? "\"" : ",\"", first ? 1 : 2);
            put(&p, end, s->lit, s->len);
            put(&p, end, var_is_string(s->var) ? "\":\"" : "\":", var_is_string(s->var) ? 3 : 2);
            first = false;
        }
        put_var(&p, end, s, e, json);
        if (json && var_is_string(s->var))
            put(&p, end, "\"", 1);
    }
    if (json)
        put(&p, end, "}", 1);
    *p++ = '\n';
    return (size_t)(p - buf);
}
