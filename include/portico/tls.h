/* TLS with OpenSSL 3: listeners' server contexts (certificates chosen by
 * SNI, protocols, ciphers, ALPN, client certificates, session tickets whose
 * keys every worker derives from one secret in shared memory), and the
 * reads and writes of a TLS connection. */
#ifndef PORTICO_TLS_H
#define PORTICO_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "portico/config-t.h"
#include "portico/diag.h"
#include "portico/outq.h"

typedef struct pt_tls_server pt_tls_server_t;
typedef struct pt_conf_ctx pt_conf_ctx_t;

/* Builds the TLS contexts of a loaded configuration, where sockets live
 * (the loader only describes them): every listener's `tls:` (certificates
 * and keys loaded, names for SNI, h2 offered by ALPN with http2: true) and
 * every https/grpcs upstream's client context, owned by c.  Every problem
 * is reported in d at its key's file:line:col, as the loader's are.  The
 * master does it after each load, `-t` too.  0, or -1 on an error (then c
 * is to be freed, and a running gateway keeps its configuration). */
int pt_tls_build(pt_config_t *c, pt_diag_t *d);

/* In the master, before forking: the shared secret the session-ticket keys
 * are derived from (kept across reloads).  0, or -1 when no zone. */
int pt_tls_prepare(const pt_config_t *c);

/* ---- upstreams (scheme: https) ---- */

typedef struct pt_tls_client pt_tls_client_t;
/* A new client-side TLS connection on fd (connected or not yet): SNI and
 * the name verified are `name` (a host name; NULL: no SNI, and the
 * certificate must name the address `ip`).  A session stored in *session
 * is offered, and new ones are stored there.  NULL when out of memory. */
SSL *pt_tls_connect(pt_tls_client_t *cl, int fd, const char *name, const char *ip, SSL_SESSION **session);

/* A new server-side TLS connection on fd, or NULL. */
SSL *pt_tls_accept(pt_tls_server_t *s, int fd);

/* What an operation is waiting for. */
enum {
    PT_TLS_OK = 1,
    PT_TLS_EOF = 0,
    PT_TLS_ERROR = -1,
    PT_TLS_WANT_READ = -2,
    PT_TLS_WANT_WRITE = -3,
    PT_TLS_PLAIN_HTTP = -4, /* the handshake got an HTTP request */
};

/* One step of the handshake: PT_TLS_OK when done, a WANT, PT_TLS_ERROR
 * (why is in `why`, for the log) or PT_TLS_PLAIN_HTTP. */
int pt_tls_handshake(SSL *ssl, char *why, size_t whylen);
/* Reads: bytes > 0, PT_TLS_EOF, a WANT, or PT_TLS_ERROR. */
ssize_t pt_tls_read(SSL *ssl, void *buf, size_t n);
/* A pt_write_fn for outq: the queue's spans through SSL_write. */
ssize_t pt_tls_write(void *ssl, const void *p, size_t n);
/* Sends close_notify (best effort) and frees. */
void pt_tls_close(SSL *ssl);

/* After the handshake: "TLSv1.3", the cipher, the client certificate's
 * subject and SANs ("" when none), and whether it was verified. */
const char *pt_tls_protocol(SSL *ssl);
/* Did ALPN choose h2? */
bool pt_tls_alpn_h2(SSL *ssl);
const char *pt_tls_cipher(SSL *ssl);
/* The client certificate's subject (RFC 2253) and its DNS, email and URI
 * SANs joined by ",", their bytes as they are: at most size bytes are
 * written (not NUL-terminated); returns the whole length, so a caller
 * sizes its buffer with a first call of size 0 and never uses a cut copy. */
size_t pt_tls_client_subject(SSL *ssl, char *buf, size_t size);
size_t pt_tls_client_san(SSL *ssl, char *buf, size_t size);
bool pt_tls_client_verified(SSL *ssl);
/* Calls fn with each DNS, email, URI and IP address SAN of the client
 * certificate (the bytes as they are; an IP as text) until fn returns
 * true; returns whether one did. */
bool pt_tls_client_each_san(SSL *ssl, bool (*fn)(void *arg, const char *name, size_t n), void *arg);

#endif
