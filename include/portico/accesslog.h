/* The access log: one line per request, formatted from a template compiled
 * at load time, buffered per worker and written at least every `flush`. */
#ifndef PORTICO_ACCESSLOG_H
#define PORTICO_ACCESSLOG_H

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
    pt_str_t method, target, protocol, host, user_agent, referer, request_id;
    int status;
    uint64_t bytes_in, bytes_out; /* bytes_out: handed to the client's socket */
    int completion;               /* enum pt_completion */
    const char *route;
    const char *consumer; /* the consumer an auth filter found, or NULL */
    const char *trace_id;
    const char *upstream_addr;
    const char *tls_protocol, *tls_cipher; /* NULL: plain HTTP */
    int upstream_status;
    int64_t upstream_us; /* -1: no upstream */
    const struct pt_route_match *match; /* route parameters, or NULL */
} pt_alog_entry_t;

/* In a worker: opens the file of `conf` (if any) and arms the flush timer.
 * Entries that cannot be written are added to *lost (the worker's entry on
 * the status board; may be NULL).  0 or -errno. */
int pt_accesslog_start(struct event_base *base, const pt_accesslog_conf_t *conf, uint64_t *lost);
/* Formats and buffers one line (no-op when the log is off). */
void pt_accesslog_write(const pt_alog_entry_t *e);
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
