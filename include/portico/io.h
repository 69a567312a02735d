/* Reads and writes of a socket, plain or through TLS, as the client side
 * (conn.c), the HTTP/1.1 upstream side (proxy.c) and the gRPC upstream
 * side (grpc.c) all do them, with edge-triggered events. */
#ifndef PORTICO_IO_H
#define PORTICO_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "portico/outq.h"

struct ssl_st;

/* Reads into buf (at most want bytes), through ssl when it is set.
 * Returns 1 on progress (*got bytes, or the orderly end: then *eof), 0
 * when there is nothing now, -1 when the connection ended in an error (a
 * reset, a TLS failure: *eof too).  A reset is not an end of data: a body
 * delimited by the close is cut, not complete.  *readable turns false once the socket is drained: on
 * EAGAIN, on a short plain read (unless rdhup: the peer shut its side and
 * the rest must be read to the end), or on TLS WANT_READ (a TLS read
 * returns a record at a time, so a short one says nothing). */
int pt_io_read(int fd, struct ssl_st *ssl, char *buf, size_t want, size_t *got, bool rdhup, bool *readable,
               bool *eof);
/* Writes what q holds, through ssl when it is set: the bytes written (0
 * when the socket is full), or -errno. */
ssize_t pt_io_flush(pt_outq_t *q, int fd, struct ssl_st *ssl);

#endif
