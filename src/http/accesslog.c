/* The access log writer: lines go into a per-worker buffer that is written
 * with one write(2) when it fills or when the flush timer fires, so the hot
 * path costs no system call per request.  What the file does not take
 * (a full disk) is dropped, never retried: the loop must not wait on a
 * disk.  Lost entries are counted on the status board and reported at
 * most once a minute, as nginx does, so a full disk under the access log
 * does not fill the error log's too. */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "portico/accesslog.h"
#include "portico/accesslog_conf.h"
#include "portico/log.h"
#include "portico/router.h"
#include "portico/value.h"

#define REPORT_EVERY_MS 60000

static struct {
    const pt_accesslog_conf_t *conf;
    int fd;
    char *buf;
    size_t len, cap;
    size_t lead;  /* 1: buf starts with the newline that ends a torn line */
    bool torn;    /* the file ends in a line written in part */
    struct event *timer;
    uint64_t *lost;      /* the worker's entry on the status board, or NULL */
    uint64_t unreported; /* entries lost since the last report */
    int err;             /* of the last failed write */
    int64_t reported_ms; /* CLOCK_MONOTONIC; 0: never */
} alog = {.fd = -1};

const char *const pt_completion_names[] = {"ok", "ok", "client_gone", "upstream_cut", "timeout", "error"};

static void put(char **p, char *end, const char *s, size_t n)
{
    if ((size_t)(end - *p) < n)
        n = (size_t)(end - *p);
    memcpy(*p, s, n);
    *p += n;
}

#define FIELD_MAX 512   /* what one logged string may take of a line, escaped */
#define TARGET_MAX 2048 /* the target may take more */

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

static void put_param(char **p, char *end, const pt_alog_seg_t *s, const pt_alog_entry_t *e)
{
    pt_str_t v = PT_STR_NULL;
    for (size_t i = 0; e->match && i < e->match->nparams; i++)
        if (pt_str_eq(e->match->params[i].name, (pt_str_t){s->lit, s->len}))
            v = e->match->params[i].value;
    put_esc(p, end, v, 0, FIELD_MAX);
}

static void put_var(char **p, char *end, int var, const pt_alog_entry_t *e, int json)
{
    char tmp[64];
    struct tm tm;
    switch (var) {
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
    case PT_AV_METHOD:
        put_esc(p, end, e->method, json, FIELD_MAX);
        break;
    case PT_AV_TARGET:
        put_esc(p, end, e->target, json, TARGET_MAX);
        break;
    case PT_AV_PROTOCOL:
        put_esc(p, end, e->protocol, json, FIELD_MAX);
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
    case PT_AV_ROUTE:
        put_esc(p, end, pt_str_from(e->route), json, FIELD_MAX);
        break;
    case PT_AV_REQUEST_ID:
        put_esc(p, end, e->request_id, json, FIELD_MAX);
        break;
    case PT_AV_HOST:
        put_esc(p, end, e->host, json, FIELD_MAX);
        break;
    case PT_AV_USER_AGENT:
        put_esc(p, end, e->user_agent, json, FIELD_MAX);
        break;
    case PT_AV_REFERER:
        put_esc(p, end, e->referer, json, FIELD_MAX);
        break;
    case PT_AV_UPSTREAM_ADDR:
        put_esc(p, end, pt_str_from(e->upstream_addr), json, FIELD_MAX);
        break;
    case PT_AV_TLS_PROTOCOL:
        put_esc(p, end, pt_str_from(e->tls_protocol), json, FIELD_MAX);
        break;
    case PT_AV_TLS_CIPHER:
        put_esc(p, end, pt_str_from(e->tls_cipher), json, FIELD_MAX);
        break;
    case PT_AV_COMPLETION:
        put_esc(p, end, pt_str_from(pt_completion_names[e->completion]), json, FIELD_MAX);
        break;
    case PT_AV_CONSUMER:
        if (e->consumer)
            put_esc(p, end, pt_str_from(e->consumer), json, FIELD_MAX);
        else if (!json)
            put(p, end, "-", 1);
        break;
    case PT_AV_UPSTREAM_STATUS:
        if (e->upstream_status)
            put_fmt(p, end, "%d", e->upstream_status);
        else
            put(p, end, json ? "null" : "-", json ? 4 : 1);
        break;
    case PT_AV_UPSTREAM_TIME:
        if (e->upstream_us >= 0)
            put_fmt(p, end, "%.3f", (double)e->upstream_us / 1e6);
        else
            put(p, end, json ? "null" : "-", json ? 4 : 1);
        break;
    }
}

static int var_is_string(int v)
{
    return v != PT_AV_STATUS && v != PT_AV_BYTES_IN && v != PT_AV_BYTES_OUT && v != PT_AV_REQUEST_TIME &&
           v != PT_AV_UPSTREAM_STATUS && v != PT_AV_UPSTREAM_TIME;
}

size_t pt_accesslog_format(const pt_accesslog_conf_t *conf, const pt_alog_entry_t *e, char *buf, size_t size)
{
    char *p = buf, *end = buf + size - 1;
    if (conf->kind == PT_ALOG_JSON) {
        static const int order[] = {PT_AV_TIME_ISO, PT_AV_REMOTE_ADDR, PT_AV_METHOD, PT_AV_TARGET,
                                    PT_AV_PROTOCOL, PT_AV_STATUS, PT_AV_BYTES_IN, PT_AV_BYTES_OUT,
                                    PT_AV_REQUEST_TIME, PT_AV_ROUTE, PT_AV_REQUEST_ID, PT_AV_HOST,
                                    PT_AV_USER_AGENT, PT_AV_REFERER, PT_AV_UPSTREAM_ADDR,
                                    PT_AV_UPSTREAM_STATUS, PT_AV_UPSTREAM_TIME, PT_AV_TLS_PROTOCOL,
                                    PT_AV_TLS_CIPHER, PT_AV_COMPLETION, PT_AV_CONSUMER};
        put(&p, end, "{", 1);
        for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
            int v = order[i];
            const char *name = v == PT_AV_TIME_ISO ? "time" : pt_alog_var_names[v];
            put_fmt(&p, end, "%s\"%s\":", i ? "," : "", name);
            if (var_is_string(v))
                put(&p, end, "\"", 1);
            put_var(&p, end, v, e, 1);
            if (var_is_string(v))
                put(&p, end, "\"", 1);
        }
        put(&p, end, "}", 1);
    } else {
        for (const pt_alog_seg_t *s = conf->compiled; s && s->var != -2; s++) {
            if (s->var == -1)
                put(&p, end, s->lit, s->len);
            else if (s->var == PT_AV_PARAM)
                put_param(&p, end, s, e);
            else
                put_var(&p, end, s->var, e, 0);
        }
    }
    *p++ = '\n';
    return (size_t)(p - buf);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One error line for what was lost since the last one, unless one was
 * written less than a minute ago (`now`: whatever the time). */
static void report(bool now)
{
    int64_t t = mono_ms();
    if (!alog.unreported || (!now && alog.reported_ms && t - alog.reported_ms < REPORT_EVERY_MS))
        return;
    pt_log_error("access log write failed: %s: %s; %llu entr%s lost%s (reported at most once a minute)",
                 alog.conf->path, strerror(alog.err), (unsigned long long)alog.unreported,
                 alog.unreported == 1 ? "y" : "ies", alog.reported_ms ? " since the last report" : "");
    alog.reported_ms = t;
    alog.unreported = 0;
}

/* The entries of buf[off, len) are lost, and so is the one that off cuts:
 * every newline not written is an entry lost, but the leading one. */
static void count_lost(size_t off)
{
    uint64_t n = 0;
    for (const char *p = alog.buf + off, *end = alog.buf + alog.len; (p = memchr(p, '\n', (size_t)(end - p))); p++)
        n++;
    if (off < alog.lead)
        n--;
    if (alog.lost)
        __atomic_fetch_add(alog.lost, n, __ATOMIC_RELAXED);
    alog.unreported += n;
}

void pt_accesslog_flush(void)
{
    size_t off = 0;
    while (off < alog.len && alog.fd >= 0) {
        ssize_t w = write(alog.fd, alog.buf + off, alog.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            alog.err = w < 0 ? errno : EIO;
            count_lost(off);
            break;
        }
        off += (size_t)w;
    }
    if (off)
        alog.torn = alog.buf[off - 1] != '\n';
    alog.len = alog.lead = 0;
    if (alog.unreported)
        report(false);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    pt_accesslog_flush();
}

static int open_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    return fd < 0 ? -errno : fd;
}

int pt_accesslog_start(struct event_base *base, const pt_accesslog_conf_t *conf, uint64_t *lost)
{
    alog.conf = conf;
    alog.lost = lost;
    if (!conf->path)
        return 0;
    int fd = open_file(conf->path);
    if (fd < 0)
        return fd;
    alog.fd = fd;
    alog.cap = conf->buffer > 4096 ? (size_t)conf->buffer : 4096;
    alog.buf = malloc(alog.cap);
    alog.len = 0;
    if (!alog.buf)
        return -ENOMEM;
    alog.timer = event_new(base, -1, EV_PERSIST, on_flush, NULL);
    struct timeval tv = {conf->flush / 1000, (conf->flush % 1000) * 1000};
    if (!alog.timer || event_add(alog.timer, &tv) < 0)
        return -ENOMEM;
    return 0;
}

void pt_accesslog_write(const pt_alog_entry_t *e)
{
    if (alog.fd < 0)
        return;
    if (alog.cap - alog.len < 8192)
        pt_accesslog_flush();
    if (alog.torn && alog.len == 0) {
        /* Half a line ends the file: end it, rather than glue this entry
         * to it.  One byte, only after a write that failed midway. */
        alog.buf[0] = '\n';
        alog.len = alog.lead = 1;
    }
    alog.len += pt_accesslog_format(alog.conf, e, alog.buf + alog.len, alog.cap - alog.len);
    if (alog.conf->buffer == 0)
        pt_accesslog_flush();
}

int pt_accesslog_reopen(void)
{
    if (alog.fd < 0 || !alog.conf->path)
        return 0;
    pt_accesslog_flush();
    int fd = open_file(alog.conf->path);
    if (fd < 0)
        return fd;
    close(alog.fd);
    alog.fd = fd;
    if (lseek(fd, 0, SEEK_END) == 0)
        alog.torn = false; /* a new file (rotated): no torn line to end */
    return 0;
}

void pt_accesslog_stop(void)
{
    pt_accesslog_flush();
    report(true); /* what is still untold, whatever the minute */
    if (alog.timer)
        event_free(alog.timer);
    alog.timer = NULL;
    if (alog.fd >= 0)
        close(alog.fd);
    alog.fd = -1;
    free(alog.buf);
    alog.buf = NULL;
}
