/* The access log: one line per request, formatted from a template compiled
 * at load time, buffered per worker and written at least every `flush`. */
#ifndef PORTICO_ACCESSLOG_H
#define PORTICO_ACCESSLOG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "portico/config-t.h"
#include "portico/str.h"

struct event_base;

/* How a request ended, for the log's $completion: its whole response
 * handed to the client's socket, or cut short, and by what. */
enum pt_completion {
    PT_DONE_UNSET,    /* still under way: ended whole, or cut by the client if the connection closes */
    PT_DONE_OK,       /* "ok" */
    PT_DONE_CLIENT,   /* "client_gone": it closed or reset before the end */
    PT_DONE_UPSTREAM, /* "upstream_cut": reset, short or broken after the head was sent */
    PT_DONE_TIMEOUT,  /* "timeout": a deadline passed after the head was sent */
    PT_DONE_ERROR,    /* "error": Portico could not go on (out of memory) */
};
extern const char *const pt_completion_names[];

typedef struct pt_alog_entry {
    struct timeval start;
    int64_t request_us;
    const struct sockaddr *peer;
    pt_str_t peer_ip; /* the peer's address as text, when made already (the connection's); else from peer */
    pt_str_t method, target, protocol, host, user_agent, referer, request_id;
    int status;
    uint64_t bytes_in, bytes_out; /* bytes_out: handed to the client's socket */
    int completion;               /* enum pt_completion */
    const char *route;
    const char *consumer; /* the consumer an auth filter found, or NULL */
    const char *upstream_addr;
    const char *tls_protocol, *tls_cipher; /* NULL: plain HTTP */
    int upstream_status;
    int64_t upstream_us; /* -1: no upstream */
    /* the last attempt's, from its start: until connected (0 for a kept-alive
     * connection), until its response head was read; -1: none */
    int64_t upstream_connect_us, upstream_header_us;
    const struct pt_route_match *match; /* route parameters, or NULL */
    const char *cache_status; /* the cache filter's verdict (hit, miss, stale, revalidated, bypass), or NULL */
    const char *trace_id;     /* NULL: "-" */
    const struct pt_alog_policy *policy; /* the route's sampling, or NULL: the global one */
    bool admin;               /* a request to the admin API: its own log, never sampled */
    /* the header fields the format names ($http_NAME...), copied into the
     * request arena: PT_STR_NULL until taken; hdr NULL when none is */
    pt_str_t *hdr;
    struct pt_arena *arena;
} pt_alog_entry_t;

struct pt_h1_header;

/* Which head a header variable reads. */
enum pt_alog_hdr_kind { PT_ALOG_HDR_REQ, PT_ALOG_HDR_SENT, PT_ALOG_HDR_UPSTREAM };

/* The longest value a header variable keeps (bytes of the field, several
 * fields joined with ", "); the log line escapes it. */
#define PT_ALOG_HDR_MAX 1024

/* In a worker: opens the file of `conf` (if any) and the admin API's
 * (admin_path, or NULL), and arms the flush timer.  Entries that cannot be
 * written are added to *lost (the worker's entry on the status board; may
 * be NULL).  0 or -errno. */
int pt_accesslog_start(struct event_base *base, const pt_accesslog_conf_t *conf, const char *admin_path,
                       uint64_t *lost);
/* Does any log take the lines of requests to the admin API (admin), or
 * to the traffic listeners (!admin)? */
bool pt_accesslog_on(bool admin);
/* Formats and buffers one line, unless the log is off, the route's is, or
 * sampling leaves the request out (errors are kept unless sample_errors
 * says sampled).  Requests to the admin API go to its own log, whole. */
void pt_accesslog_write(const pt_alog_entry_t *e);
/* Takes the values of the header fields of `kind` (enum pt_alog_hdr_kind)
 * the format names out of f[0..n) into e's arena (which must be set), as
 * nginx joins them: ", " (a Cookie's "; "), cut at PT_ALOG_HDR_MAX.  Values
 * that hold credentials are masked (see accesslog_fields.c).  Nothing when
 * the format names none. */
void pt_accesslog_take_fields(const pt_accesslog_conf_t *conf, pt_alog_entry_t *e, int kind,
                              const struct pt_h1_header *f, size_t n);
/* The same from a response head as written ("HTTP/1.1 200 OK\r\n" and
 * "Name: value\r\n" lines): what Portico sent ($sent_http_NAME); to an
 * HTTP/2 client, less the fields HTTP/2 does not carry (Connection...). */
void pt_accesslog_take_head(const pt_accesslog_conf_t *conf, pt_alog_entry_t *e, int kind, const char *head,
                            size_t len);
/* The same with this worker's format, when e's log is on: the request's
 * fields, the upstream's (kind), and the head sent to the client. */
void pt_accesslog_take(pt_alog_entry_t *e, int kind, const struct pt_h1_header *f, size_t n);
void pt_accesslog_take_sent(pt_alog_entry_t *e, const char *head, size_t len);
/* Does e's log want the fields of the head sent ($sent_http_NAME)? */
bool pt_accesslog_wants_sent(const pt_alog_entry_t *e);
/* Does the format name a header of `kind`? */
bool pt_accesslog_wants(const pt_accesslog_conf_t *conf, int kind);
/* Writes out what is buffered; what the file does not take is dropped,
 * counted, and reported at most once a minute. */
void pt_accesslog_flush(void);
/* Flushes, then reopens the file by its path (SIGUSR1). 0 or -errno. */
int pt_accesslog_reopen(void);
/* Flushes, reports lost entries not reported yet, and closes. */
void pt_accesslog_stop(void);
/* Formats e with conf's format into buf; returns the length (for tests). */
size_t pt_accesslog_format(const pt_accesslog_conf_t *conf, const pt_alog_entry_t *e, char *buf, size_t size);

#endif
