/* The internal HTTP/1.1 client: one request to one target of an upstream,
 * over a pooled keep-alive connection (or a fresh one), plain or TLS as the
 * upstream's scheme says, with no client connection behind it.  Health
 * probes use it; forward auth, JWKS fetches, trace export and cache
 * revalidation are its next users.  Everything runs on the worker's loop:
 * the request starts on the next loop iteration (never inside the
 * caller's stack), and `done` is called once, from the client's own I/O
 * or timer callback, unless the request is cancelled first. */
#ifndef PORTICO_CLIENT_H
#define PORTICO_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/h1_parser.h"
#include "portico/str.h"

typedef struct pt_worker pt_worker_t;
typedef struct pt_upstream pt_upstream_t;
typedef struct pt_client pt_client_t;

typedef struct pt_client_req {
    const char *method; /* "GET" when NULL */
    pt_str_t target;    /* origin form, with its query */
    pt_str_t host;      /* the Host field */
    pt_str_t headers;   /* more fields, each line ending in CRLF, or empty */
    pt_str_t body;      /* sent with a Content-Length when not empty */
    int64_t timeout_ms; /* the whole exchange, from connect to the end of the body */
    size_t max_body;    /* a longer response body fails the request (0: any length, not kept) */
    bool fresh;         /* a new connection, closed after (health probes), never a pooled one */
    bool connect_only;  /* done once connected (and the TLS handshake is over): status 0 */
} pt_client_req_t;

enum { PT_CLIENT_FAILED = -1, PT_CLIENT_TIMEOUT = -2 };

typedef struct pt_client_resp {
    int status;            /* the HTTP status; 0 for connect_only; PT_CLIENT_FAILED or PT_CLIENT_TIMEOUT */
    const char *error;     /* what failed, for a log line; NULL on success */
    const pt_h1_resp_t *head; /* the response head (NULL on failure) */
    pt_str_t body;         /* the body, when max_body > 0 */
} pt_client_resp_t;

/* What the response (or the failure) came to.  head, body and error are
 * valid during the call only; the client is gone when it returns. */
typedef void (*pt_client_fn)(void *arg, const pt_client_resp_t *r);

/* Starts a request to target idx of u.  The request's strings are copied.
 * NULL with errno set (and done is never called) when it cannot start: out
 * of memory, or no socket could be made (EMFILE, an unreachable family). */
pt_client_t *pt_client_start(pt_worker_t *w, pt_upstream_t *u, size_t idx, const pt_client_req_t *rq,
                             pt_client_fn done, void *arg);
/* Abandons a request: its connection is closed, done is not called. */
void pt_client_cancel(pt_client_t *cl);

#endif
