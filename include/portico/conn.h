/* A client connection: our own input and output buffers, one persistent
 * edge-triggered event for both directions (no epoll_ctl per request), a
 * timer, and the HTTP/1.1 request loop. */
#ifndef PORTICO_CONN_H
#define PORTICO_CONN_H

#include <event2/event_struct.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "portico/accesslog.h"
#include "portico/arena.h"
#include "portico/h1_parser.h"
#include "portico/outq.h"
#include "portico/router.h"
#include "portico/worker.h"

#define PT_CONN_MAGIC 0x434f4e4eu
#define PT_REQID_MAX 128 /* the longest client X-Request-Id taken as it is */

enum pt_conn_state {
    PT_CS_HEAD,   /* waiting for (more of) a request head */
    PT_CS_BODY,   /* reading the body of the current request */
    PT_CS_LINGER, /* response sent, write side shut, draining input */
    PT_CS_PROXY,  /* the proxy owns the connection until pt_conn_proxy_done */
    PT_CS_FILTER, /* a filter suspended the request until pt_conn_filters_resume */
    PT_CS_TLS,    /* the TLS handshake */
    PT_CS_H2,     /* an HTTP/2 connection: its streams are stream connections */
    PT_CS_GRPC,   /* a stream connection whose gRPC call is under way (grpc.c) */
};

struct pt_conn {
    unsigned magic;
    int fd;
    struct ssl_st *ssl; /* NULL on a plain listener; a stream connection's is its parent's */
    struct pt_h2 *h2;   /* PT_CS_H2: the nghttp2 session */
    struct pt_h2_stream *h2s; /* a stream connection: its stream (no socket of its own) */
    pt_worker_t *w;
    pt_acceptor_t *acc;
    pt_conn_t *next, *prev;
    struct event ev, timer;
    struct sockaddr_storage peer;
    char peer_ip[48]; /* the client's address as text, made once when needed */
    uint8_t peer_ip_len;

    char *ibuf;
    size_t ipos, ilen, icap;
    pt_outq_t out;

    int state;
    bool readable, writable, eof;
    bool rdhup; /* the client shut its side: read on to the EOF */
    bool nodelay; /* TCP_NODELAY is set (once the connection is kept alive) */
    bool resuming; /* the head in ibuf is a suspended request's, parsed again */
    bool resume_pending; /* a filter said go on: the next run of the loop resumes */
    bool closing;      /* close once the output is flushed */
    bool dead;
    bool in_request;   /* between the first byte of a head and the end of its body */
    int timer_kind;
    struct timeval head_start;

    /* body of the current request, discarded by respond routes */
    int64_t body_left;
    bool body_chunked;
    pt_h1_chunked_t chunked;

    struct pt_proxy *proxy; /* while in PT_CS_PROXY */
    struct pt_grpc *grpc;   /* while in PT_CS_GRPC */
    bool grpc_request;      /* content-type application/grpc: Portico's own errors are gRPC statuses */

    /* the current request, for the access log */
    pt_arena_t arena;
    pt_alog_entry_t ent;
    const pt_route_conf_t *route;
    pt_route_match_t match; /* the route and its parameters */
    struct pt_fx *fx;       /* what the route's filters decided, or NULL */
    char reqid[PT_REQID_MAX + 1]; /* the request id, NUL-terminated for logs */
    uint8_t reqid_len;
    uint64_t requests;
};

/* A stream connection (one stream of an HTTP/2 connection) has no socket. */
static inline bool pt_conn_is_stream(const pt_conn_t *c)
{
    return c->fd < 0;
}
/* Sends what it can of the output, shuts the write side and reads what
 * the client still sends until it closes (or 2 s pass): used after a
 * GOAWAY, so that a reset does not destroy it. */
void pt_conn_linger(pt_conn_t *c);
/* A stream connection for a stream of HTTP/2 connection parent: no socket,
 * reads and writes go through the stream (h2.c).  NULL when out of memory. */
pt_conn_t *pt_conn_stream(pt_conn_t *parent);
/* Takes over an accepted socket and starts reading from it. */
void pt_conn_accept(pt_worker_t *w, pt_acceptor_t *a, int fd, const struct sockaddr_storage *peer);
/* Appends a complete response; keep_alive false closes afterwards.
 * extra: more header lines ("Allow: GET\r\n"), or NULL. */
void pt_conn_respond(pt_conn_t *c, int status, const char *ctype, const char *body, size_t len,
                     const char *extra, bool head_only);
/* For the proxy: read from the client (1 on progress, 0 when nothing was
 * read), write what is queued (1 on progress; -1 when the client is gone),
 * and hand the connection back when the request is over. */
int pt_conn_read(pt_conn_t *c);
int pt_conn_flush(pt_conn_t *c);
void pt_conn_proxy_done(pt_conn_t *c);
/* Copies every string of the request that later stages read (the log
 * entry, route parameters, filter edits) out of the input buffer into the
 * request arena: called when the head is handed over, after which the
 * buffer may move.  Sets closing when the arena is full. */
void pt_conn_stash(pt_conn_t *c);
/* Debug builds: asserts that nothing of the request points into the input
 * buffer (the rule pt_conn_stash establishes). */
void pt_conn_assert_detached(const pt_conn_t *c);
/* Takes the client's request id (at most PT_REQID_MAX bytes, checked by
 * pt_proxy_request_id) as this request's id. */
void pt_conn_set_reqid(pt_conn_t *c, pt_str_t id);
/* The client's IP address as text (formatted once per connection). */
pt_str_t pt_conn_peer_ip(pt_conn_t *c);
/* The client's address and port, for logs ("10.0.0.1:51234"), in buf. */
const char *pt_conn_peer_name(const pt_conn_t *c, char *buf, size_t size);
/* A filter that suspended the request is ready: the pipeline goes on from
 * the event loop (never from inside the caller's callback). */
void pt_conn_filters_resume(pt_conn_t *c);
/* Runs the connection again on the next loop iteration (after a loop that
 * stopped for fairness with work left). */
void pt_conn_reschedule(pt_conn_t *c);
/* Re-arms the client's timer for ms, or clears it (ms < 0). */
void pt_conn_timer(pt_conn_t *c, int64_t ms);

/* Graceful stop: finish what is in flight, then close. */
void pt_conn_drain(pt_conn_t *c);
/* Closes now. */
void pt_conn_close(pt_conn_t *c);
/* Frees a closed connection (the worker does it after the callbacks of the
 * loop iteration), or keeps it, buffers and all, for the next accept. */
void pt_conn_free(pt_conn_t *c);
/* Frees the kept ones (worker exit). */
void pt_conn_pool_drain(pt_worker_t *w);

#endif
