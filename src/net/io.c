/* Socket reads and writes, plain or TLS (see io.h). */
#include "config.h"

#include <errno.h>
#include <sys/socket.h>

#include "portico/io.h"
#include "portico/tls.h"

int pt_io_read(int fd, struct ssl_st *ssl, char *buf, size_t want, size_t *got, bool rdhup, bool *readable,
               bool *eof)
{
    *got = 0;
    if (ssl) {
        ssize_t t = pt_tls_read(ssl, buf, want);
        if (t > 0) {
            *got = (size_t)t;
            return 1;
        }
        *readable = false;
        if (t == PT_TLS_WANT_READ || t == PT_TLS_WANT_WRITE)
            return 0;
        *eof = true;
        return t == PT_TLS_EOF ? 1 : -1;
    }
    ssize_t r = recv(fd, buf, want, 0);
    if (r > 0) {
        *got = (size_t)r;
        /* A short read drained the socket: with edge-triggered events the
         * next byte brings a new event, so asking again would only cost an
         * EAGAIN (nginx does the same). */
        if ((size_t)r < want && !rdhup)
            *readable = false;
        return 1;
    }
    if (r < 0 && errno == EINTR)
        return 1;
    *readable = false;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    *eof = true;
    return r == 0 ? 1 : -1; /* ECONNRESET, ETIMEDOUT...: not an end of data */
}

ssize_t pt_io_flush(pt_outq_t *q, int fd, struct ssl_st *ssl)
{
    return ssl ? pt_outq_flush_fn(q, pt_tls_write, ssl) : pt_outq_flush(q, fd);
}
