/* The access log writer: lines go into a per-worker buffer that is written
 * with one write(2) when it fills or when the flush timer fires, so the hot
 * path costs no system call per request.  What the file does not take
 * (a full disk) is dropped, never retried: the loop must not wait on a
 * disk.  Lost entries are counted on the status board and reported at
 * most once a minute, as nginx does, so a full disk under the access log
 * does not fill the error log's too.
 *
 * Two files: the traffic's (access_log.path) and the admin API's
 * (admin.access_log), so that probes and scrapes never mix with traffic.
 * Which requests the traffic log keeps is sampled here (access_log.sample,
 * a route's access_log), with this worker's own generator: no lock, no
 * system call. */
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

#define REPORT_EVERY_MS 60000

/* One file and its buffer. */
typedef struct sink {
    const char *path;
    int fd;
    char *buf;
    size_t len, cap;
    size_t lead;  /* 1: buf starts with the newline that ends a torn line */
    bool torn;    /* the file ends in a line written in part */
    uint64_t unreported; /* entries lost since the last report */
    int err;             /* of the last failed write */
    int64_t reported_ms; /* CLOCK_MONOTONIC; 0: never */
} sink_t;

static struct {
    const pt_accesslog_conf_t *conf;
    sink_t traffic, admin;
    struct event *timer;
    uint64_t *lost; /* the worker's entry on the status board, or NULL */
    uint64_t rng;   /* splitmix64 state, seeded per worker */
} alog = {.traffic = {.fd = -1}, .admin = {.fd = -1}};

const char *const pt_completion_names[] = {"ok", "ok", "client_gone", "upstream_cut", "timeout", "error"};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One error line for what was lost since the last one, unless one was
 * written less than a minute ago (`now`: whatever the time). */
static void report(sink_t *k, bool now)
{
    int64_t t = mono_ms();
    if (!k->unreported || (!now && k->reported_ms && t - k->reported_ms < REPORT_EVERY_MS))
        return;
    pt_log_error("access log write failed: %s: %s; %llu entr%s lost%s (reported at most once a minute)", k->path,
                 strerror(k->err), (unsigned long long)k->unreported, k->unreported == 1 ? "y" : "ies",
                 k->reported_ms ? " since the last report" : "");
    k->reported_ms = t;
    k->unreported = 0;
}

/* The entries of buf[off, len) are lost, and so is the one that off cuts:
 * every newline not written is an entry lost, but the leading one. */
static void count_lost(sink_t *k, size_t off)
{
    uint64_t n = 0;
    for (const char *p = k->buf + off, *end = k->buf + k->len; (p = memchr(p, '\n', (size_t)(end - p))); p++)
        n++;
    if (off < k->lead)
        n--;
    if (alog.lost)
        __atomic_fetch_add(alog.lost, n, __ATOMIC_RELAXED);
    k->unreported += n;
}

static void flush_sink(sink_t *k)
{
    size_t off = 0;
    while (off < k->len && k->fd >= 0) {
        ssize_t w = write(k->fd, k->buf + off, k->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            k->err = w < 0 ? errno : EIO;
            count_lost(k, off);
            break;
        }
        off += (size_t)w;
    }
    if (off)
        k->torn = k->buf[off - 1] != '\n';
    k->len = k->lead = 0;
    if (k->unreported)
        report(k, false);
}

void pt_accesslog_flush(void)
{
    flush_sink(&alog.traffic);
    flush_sink(&alog.admin);
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

/* Room for lines of up to line_max bytes, whatever the buffer setting. */
static int open_sink(sink_t *k, const char *path, const pt_accesslog_conf_t *conf)
{
    k->path = path;
    if (!path)
        return 0;
    int fd = open_file(path);
    if (fd < 0)
        return fd;
    k->fd = fd;
    k->cap = conf->buffer > 4096 ? (size_t)conf->buffer : 4096;
    if (k->cap < 2 * conf->line_max)
        k->cap = 2 * conf->line_max;
    k->buf = malloc(k->cap);
    k->len = 0;
    return k->buf ? 0 : -ENOMEM;
}

static uint64_t seed(void)
{
    uint64_t s = 0;
    if (getentropy(&s, sizeof(s)) < 0 || !s) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid() << 32;
    }
    return s;
}

int pt_accesslog_start(struct event_base *base, const pt_accesslog_conf_t *conf, const char *admin_path,
                       uint64_t *lost)
{
    alog.conf = conf;
    alog.lost = lost;
    alog.rng = seed(); /* after fork: every worker draws its own */
    int rc = open_sink(&alog.traffic, conf->path, conf);
    if (rc == 0)
        rc = open_sink(&alog.admin, admin_path, conf);
    if (rc < 0 || (!conf->path && !admin_path))
        return rc;
    alog.timer = event_new(base, -1, EV_PERSIST, on_flush, NULL);
    struct timeval tv = {conf->flush / 1000, (conf->flush % 1000) * 1000};
    if (!alog.timer || event_add(alog.timer, &tv) < 0)
        return -ENOMEM;
    return 0;
}

bool pt_accesslog_on(bool admin)
{
    return (admin ? alog.admin.fd : alog.traffic.fd) >= 0;
}

void pt_accesslog_take(pt_alog_entry_t *e, int kind, const struct pt_h1_header *f, size_t n)
{
    if (alog.conf && alog.conf->nhdrs && pt_accesslog_on(e->admin))
        pt_accesslog_take_fields(alog.conf, e, kind, f, n);
}

bool pt_accesslog_wants_sent(const pt_alog_entry_t *e)
{
    return alog.conf && alog.conf->nhdrs && pt_accesslog_on(e->admin) &&
           pt_accesslog_wants(alog.conf, PT_ALOG_HDR_SENT);
}

void pt_accesslog_take_sent(pt_alog_entry_t *e, const char *head, size_t len)
{
    if (pt_accesslog_wants_sent(e))
        pt_accesslog_take_head(alog.conf, e, PT_ALOG_HDR_SENT, head, len);
}

/* splitmix64 (Steele, Lea, Flood 2014): equidistributed 64-bit outputs
 * from a counter, two multiplies per draw. */
static uint64_t draw(void)
{
    uint64_t z = (alog.rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* An error: a 4xx or 5xx (499: the client left), or a response cut short. */
static bool is_error(const pt_alog_entry_t *e)
{
    return e->status >= 400 || (e->completion != PT_DONE_UNSET && e->completion != PT_DONE_OK);
}

/* Is this request's line kept?  The route's policy over the global one. */
static bool kept(const pt_alog_entry_t *e)
{
    const pt_alog_policy_t *g = &alog.conf->policy, *r = e->policy;
    if (r && r->off)
        return false;
    bool own = r && r->sample >= 0;
    uint64_t cut = own ? r->cut : g->cut;
    int errors = r && r->sample_errors >= 0 ? r->sample_errors : g->sample_errors;
    if (cut == UINT64_MAX || (errors == PT_ALOG_ERRORS_ALWAYS && is_error(e)))
        return true;
    return cut && draw() < cut;
}

void pt_accesslog_write(const pt_alog_entry_t *e)
{
    sink_t *k = e->admin ? &alog.admin : &alog.traffic;
    if (k->fd < 0 || (!e->admin && !kept(e)))
        return;
    if (k->cap - k->len < alog.conf->line_max + 2)
        flush_sink(k);
    if (k->torn && k->len == 0) {
        /* Half a line ends the file: end it, rather than glue this entry
         * to it.  One byte, only after a write that failed midway. */
        k->buf[0] = '\n';
        k->len = k->lead = 1;
    }
    k->len += pt_accesslog_format(alog.conf, e, k->buf + k->len, k->cap - k->len);
    if (alog.conf->buffer == 0)
        flush_sink(k);
}

static int reopen_sink(sink_t *k)
{
    if (k->fd < 0 || !k->path)
        return 0;
    flush_sink(k);
    int fd = open_file(k->path);
    if (fd < 0)
        return fd;
    close(k->fd);
    k->fd = fd;
    if (lseek(fd, 0, SEEK_END) == 0)
        k->torn = false; /* a new file (rotated): no torn line to end */
    return 0;
}

int pt_accesslog_reopen(void)
{
    int rc = reopen_sink(&alog.traffic), arc = reopen_sink(&alog.admin);
    return rc < 0 ? rc : arc;
}

static void close_sink(sink_t *k)
{
    flush_sink(k);
    report(k, true); /* what is still untold, whatever the minute */
    if (k->fd >= 0)
        close(k->fd);
    k->fd = -1;
    free(k->buf);
    k->buf = NULL;
}

void pt_accesslog_stop(void)
{
    if (alog.timer)
        event_free(alog.timer);
    alog.timer = NULL;
    close_sink(&alog.traffic);
    close_sink(&alog.admin);
}
