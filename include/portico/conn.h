/* A client connection, below HTTP: our own input buffer and output queue,
 * one persistent edge-triggered event for both directions (no epoll_ctl
 * per request), a timer, TLS, lingering closes.  A connection runs a
 * protocol (ops): the HTTP/1.1 server loop (http/h1_server.c), which also
 * serves each HTTP/2 stream through a socketless stream connection.  This
 * layer knows nothing of requests: c->req is the protocol's. */
#ifndef PORTICO_CONN_H
#define PORTICO_CONN_H

#include <event2/event_struct.h>
#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "portico/arena.h"
#include "portico/outq.h"
#include "portico/str.h"
#include "portico/worker.h"

#define PT_CONN_MAGIC 0x434f4e4eu

enum pt_conn_state {
    PT_CS_HEAD,   /* waiting for (more of) a request head */
    PT_CS_BODY,   /* reading the body of the current request */
    PT_CS_LINGER, /* response sent, write side shut, draining input (this layer's) */
    PT_CS_PROXY,  /* a content source owns the connection until it is done (the buffer may grow at once) */
    PT_CS_FILTER, /* a filter suspended the request until pt_req_resume */
    PT_CS_TLS,    /* the TLS handshake (this layer's) */
    PT_CS_H2,     /* an HTTP/2 connection: its streams are stream connections */
    PT_CS_GRPC,   /* a stream connection whose gRPC call is under way (grpc.c) */
};

/* Timer kinds: this layer's, then the protocol's own from PT_TM_PROTO on. */
enum { PT_TM_NONE, PT_TM_TLS, PT_TM_LINGER, PT_TM_SOURCE, PT_TM_PROTO };

/* What runs on a connection. */
typedef struct pt_conn_ops {
    void (*run)(pt_conn_t *c);     /* after an event, or pt_conn_reschedule */
    void (*timeout)(pt_conn_t *c); /* the timer fired, of a kind this layer does not handle */
    void (*drain)(pt_conn_t *c);   /* graceful stop: finish what is in flight */
    void (*closed)(pt_conn_t *c);  /* closing now: let go of what the protocol holds */
    /* a stream connection's reads and writes (NULL: the socket's) */
    int (*read)(pt_conn_t *c);
    int (*flush)(pt_conn_t *c);
} pt_conn_ops_t;

struct pt_conn {
    unsigned magic;
    int fd;
    struct ssl_st *ssl; /* NULL on a plain listener; a stream connection's is its parent's */
    const pt_conn_ops_t *ops;
    struct pt_h2 *h2;   /* PT_CS_H2: the nghttp2 session */
    struct pt_h2_stream *h2s; /* a stream connection: its stream (no socket of its own) */
    struct pt_req *req; /* the request being served (http/request.c), in the arena; NULL between requests */
    pt_worker_t *w;
    pt_acceptor_t *acc;
    pt_conn_t *next, *prev;
    struct event ev, timer;
    union { /* read it as (const struct sockaddr *)&c->peer */
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } peer; /* not a sockaddr_storage: 100 bytes less on every idle connection */
    char peer_ip[48]; /* the client's address as text, made once when needed */
    uint8_t peer_ip_len;

    char *ibuf; /* NULL while idle; a pool block (icap PT_BUF_SMALL), or grown past it */
    size_t ipos, ilen, icap;
    pt_outq_t out;
    pt_arena_t arena; /* the current request's: reset when it ends */

    int state;
    bool readable, writable, eof;
    bool reset; /* the end (eof) was a reset, seen by pt_conn_reset_seen */
    uint64_t unsent; /* output dropped at a failure, never sent: the log's bytes_out leaves it out */
    bool rdhup; /* the client shut its side: read on to the EOF */
    bool nodelay; /* TCP_NODELAY is set (once the connection is kept alive) */
    bool closing;      /* close once the output is flushed */
    bool dead;
    bool spoke_h2;     /* HTTP/2 ran on it (for the metrics, once it closes) */
    bool tls_peeked;   /* the first bytes were looked at: plain HTTP on a TLS port? */
    /* the protocol's loop */
    bool in_request;   /* between the first byte of a head and the end of its body */
    bool resuming;     /* the head in ibuf is a suspended request's, parsed again */
    bool resume_pending; /* a filter said go on: the next run of the loop resumes */
    int timer_kind;
    struct timeval head_start;
    uint64_t requests;
};

/* A stream connection (one stream of an HTTP/2 connection) has no socket. */
static inline bool pt_conn_is_stream(const pt_conn_t *c)
{
    return c->fd < 0;
}
/* Takes over an accepted socket and runs the acceptor's protocol on it. */
void pt_conn_accept(pt_worker_t *w, pt_acceptor_t *a, int fd, const struct sockaddr_storage *peer);
/* A stream connection for a stream of HTTP/2 connection parent: no socket,
 * reads and writes go through ops.  NULL when out of memory. */
pt_conn_t *pt_conn_stream(pt_conn_t *parent, const pt_conn_ops_t *ops);
/* Queues a copy of s; out of memory: the connection closes. */
void pt_conn_queue(pt_conn_t *c, const void *s, size_t n);
/* Grows the input buffer to at least cap bytes (an idle connection has
 * none: its first is a pool block).  False when out of memory. */
bool pt_conn_ibuf_grow(pt_conn_t *c, size_t cap);
/* Nothing to do (no request, nothing buffered or queued): the input
 * buffer, the output queue's block and the arena's chunk go back to the
 * pool, to be taken again when bytes arrive.  Does nothing otherwise. */
void pt_conn_idle(pt_conn_t *c);
/* Reads from the client: 1 on progress, 0 when nothing was read. */
int pt_conn_read(pt_conn_t *c);
/* Writes what is queued: 1 if it wrote something, 0 if not, -1 when the
 * client is gone (then nothing more will be sent). */
int pt_conn_flush(pt_conn_t *c);
/* Drops what is queued and not sent (a failure: it never will be), and
 * counts it in c->unsent. */
void pt_conn_drop_output(pt_conn_t *c);
/* One step of the TLS handshake: 1 done, 0 waiting, -1 the connection was
 * closed or answered (a plain-HTTP client) and lingers. */
int pt_conn_tls_step(pt_conn_t *c);
/* TCP_NODELAY once a connection is kept alive (a one-shot one never needs
 * it, so the syscall is saved there). */
void pt_conn_nodelay(pt_conn_t *c);
/* Arms the timer: kind, in ms; ms < 0 clears it. */
void pt_conn_timer(pt_conn_t *c, int kind, int64_t ms);
/* Shuts the write side and reads what the client still sends until it
 * closes (or 2 s pass), so that a reset does not destroy what was sent. */
void pt_conn_start_linger(pt_conn_t *c);
/* The same after sending what it can (used after a GOAWAY). */
void pt_conn_linger(pt_conn_t *c);
/* Has the client closed or reset its side?  Looks without reading (a peek)
 * when there is something to read: what is there stays for later. */
bool pt_conn_gone(pt_conn_t *c);
/* Did the client reset the connection (not a half-close, which is
 * served)?  A peek, when the socket said it is readable; plain TCP only. */
bool pt_conn_reset_seen(pt_conn_t *c);
/* Has the socket ended (a FIN or a reset) although no edge said so?  The
 * peek of pt_conn_gone, for a connection marked not readable by a short
 * read; sets eof.  Bytes waiting are left for their edge. */
bool pt_conn_peek_end(pt_conn_t *c);
/* The client's IP address as text (formatted once per connection). */
pt_str_t pt_conn_peer_ip(pt_conn_t *c);
/* The client's address and port, for logs ("10.0.0.1:51234"), in buf. */
const char *pt_conn_peer_name(const pt_conn_t *c, char *buf, size_t size);
/* Runs the connection again on the next loop iteration. */
void pt_conn_reschedule(pt_conn_t *c);
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
