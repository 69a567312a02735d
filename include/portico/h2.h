/* HTTP/2 towards clients (nghttp2 server sessions).
 *
 * Each stream is served by a stream connection: a pt_conn_t with no socket
 * of its own, through which the request goes the way an HTTP/1.1 request
 * does (router, filters, proxy, pools), as Apache's mod_h2 does.  The
 * stream's request is given to it as an HTTP/1.1 head (and a chunked body
 * when no content-length was sent); what it answers is read back as an
 * HTTP/1.1 response and sent as HEADERS and DATA.  Flow control holds
 * both ways: request DATA is acknowledged (WINDOW_UPDATE) only as the
 * stream connection takes it, and a stream connection is not writable
 * while more than a window of its response waits for the client. */
#ifndef PORTICO_H2_H
#define PORTICO_H2_H

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct pt_conn pt_conn_t;
typedef struct pt_h2 pt_h2_t;
typedef struct pt_h2_stream pt_h2_stream_t;

/* The client preface, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n". */
#define PT_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define PT_H2_PREFACE_LEN 24

/* Turns connection c into an HTTP/2 connection (after ALPN h2, or a
 * preface on a plain listener with http2: true); what c->ibuf holds is
 * fed to the session.  0, or -1 (then c is to be closed). */
int pt_h2_start(pt_conn_t *c);
/* The connection's loop step: reads, feeds nghttp2, writes. */
void pt_h2_run(pt_conn_t *c);
/* Graceful GOAWAY (RFC 9113, 6.8): a shutdown notice, then after a PING
 * round trip the final GOAWAY; streams the client opened before it saw the
 * notice are served, later ones refused. */
void pt_h2_drain(pt_conn_t *c);
/* An idle connection ends: GOAWAY (NO_ERROR), then close. */
void pt_h2_goaway_close(pt_conn_t *c);
/* The connection is closing: every stream connection is closed. */
void pt_h2_free(pt_conn_t *c);
/* For the idle timer: streams open on c. */
size_t pt_h2_streams(const pt_conn_t *c);
/* Streams are open but none has a request under way: what is left waits
 * on the client (its window, the rest of a head).  *moved: response body
 * went out since the last call (the send deadline moves with it). */
bool pt_h2_waits_on_client(pt_conn_t *c, bool *moved);
/* No stream open and nothing to send: the session's idle memory may be
 * given back after a while (h2_mem.h). */
void pt_h2_idle(pt_conn_t *c);

/* Stream connections: their reads and writes, and their end. */
int pt_h2_stream_read(pt_conn_t *sc);
int pt_h2_stream_flush(pt_conn_t *sc);
/* Trailers to send after the stream's body (copied). */
void pt_h2_stream_trailers(pt_conn_t *sc, const nghttp2_nv *nv, size_t n);
/* The stream connection is done (answered, or closed): the stream ends. */
void pt_h2_stream_closed(pt_conn_t *sc);
/* Response bytes the stream still holds, not yet framed for the client. */
size_t pt_h2_stream_unsent(const pt_conn_t *sc);

#endif
