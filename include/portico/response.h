/* The one path every HTTP/1.1 response head takes, whatever answered the
 * request (a respond route, the upstream, the admin API, Portico's own
 * errors): the status line, the source's fields (less those it says to
 * skip, and those the filters replace or remove), the filters' edits, the
 * framing and the connection fields, written through the bounded head
 * writer straight into the client's output queue. */
#ifndef PORTICO_RESPONSE_H
#define PORTICO_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/h1_parser.h"
#include "portico/outq.h"
#include "portico/str.h"

struct pt_fx;

/* Fields whose value is rewritten on the way (a Location under a stripped
 * prefix): field() says whether f is one, and what of its value follows
 * prefix (never longer than the value). */
typedef struct pt_resp_rewrite {
    bool (*field)(const pt_h1_header_t *f, const void *arg, pt_str_t *keep);
    const void *arg;
    pt_str_t prefix;
} pt_resp_rewrite_t;

typedef struct pt_resp_head {
    int status;
    pt_str_t reason;                /* empty: the standard phrase for status */
    const pt_h1_header_t *fields;   /* the source's own fields, in order (may be NULL) */
    size_t nfields;
    /* a field of the source's not to pass on (hop-by-hop, framing), or NULL */
    bool (*skip)(const pt_h1_header_t *f, const void *arg);
    const void *skip_arg;
    pt_str_t extra;                 /* more lines as they are ("Allow: GET\r\n"), or empty */
    bool server;                    /* add "Server: portico" unless a field or an edit has one */
    bool date;                      /* add Date unless the source's fields have one */
    int64_t content_length;         /* >= 0: Content-Length (never on a 1xx or 204) */
    bool chunked;                   /* Transfer-Encoding: chunked */
    bool close;                     /* Connection: close */
    bool keep_alive_1_0;            /* Connection: keep-alive (an HTTP/1.0 client kept) */
    size_t fields_size;             /* the fields' size as the source had them (the upstream's head
                                       length), or 0: counted here; each may grow by 1 byte */
    const pt_resp_rewrite_t *rewrite; /* NULL: every field as it is */
    struct pt_alog_entry *log;        /* the access log entry that takes the fields sent, or NULL */
} pt_resp_head_t;

/* "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n": the Date line's length. */
#define PT_DATE_LEN 37

/* Writes the head, with fx's response edits applied (fx may be NULL), into
 * q; date is the Date line (PT_DATE_LEN bytes, pt_worker_date) or NULL.  Returns its length, or 0 when memory ran out (nothing queued). */
size_t pt_resp_write_head(pt_outq_t *q, const pt_resp_head_t *h, const struct pt_fx *fx, const char *date);

#endif
