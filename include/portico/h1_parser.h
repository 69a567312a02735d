/* HTTP/1.1 request parser (RFC 9112): pure, bytes in and results out; no
 * sockets, no allocation.  The request head is parsed in one pass once the
 * buffer holds all of it; names and values point into the caller's buffer.
 * It is strict about everything that could let two parties read one
 * request differently (request smuggling): see h1_parser.c. */
#ifndef PORTICO_H1_PARSER_H
#define PORTICO_H1_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/str.h"

typedef struct pt_h1_header {
    pt_str_t name, value;
} pt_h1_header_t;

typedef struct pt_h1_limits {
    size_t max_request_line; /* 414 past it */
    size_t max_head;         /* 431 past it: request line and headers */
    size_t max_headers;      /* 431 past it; also the size of headers[] */
} pt_h1_limits_t;

enum pt_h1_target_form { PT_H1_ORIGIN, PT_H1_ABSOLUTE, PT_H1_AUTHORITY, PT_H1_ASTERISK };

typedef struct pt_h1_req {
    pt_str_t method, target, path, query; /* path and query split from target */
    unsigned method_bit;                  /* PT_M_*, 0 for other methods */
    int minor;                            /* HTTP/1.minor */
    int form;                             /* enum pt_h1_target_form */
    pt_str_t abs_authority;               /* host[:port] of an absolute-form target */
    pt_h1_header_t *headers;              /* caller's array of limits.max_headers */
    size_t nheaders;
    pt_str_t host; /* Host header, or the authority of an absolute target */
    int64_t content_length; /* -1: none */
    bool chunked;
    bool keep_alive;      /* after this request, per version and Connection */
    bool expect_continue;
    bool upgrade; /* Connection: upgrade and an Upgrade header */
    size_t head_len;
    size_t leading_crlf; /* empty lines skipped before the request line */
} pt_h1_req_t;

/* Parses the head at buf[0..len).  Returns:
 *   > 0       the head is complete: its length (req filled in);
 *   PT_EAGAIN more bytes are needed (and none of the limits is passed yet);
 *   PT_EINVAL the request is bad: *status is 400, 414, 417, 431, 501 or 505.
 * req->headers must point to an array of lim->max_headers entries. */
int pt_h1_parse_request(const char *buf, size_t len, const pt_h1_limits_t *lim, pt_h1_req_t *req, int *status);

/* What the start of a request that could not be parsed says, for the
 * access log: the method (a token and a space), then the target (the bytes
 * up to the next space or line end, whatever they are: the log escapes
 * them), then the protocol when "HTTP/1.0" or "HTTP/1.1" ends the line.
 * Each is PT_STR_NULL when the request did not get that far; all point
 * into buf. */
void pt_h1_peek_request_line(const char *buf, size_t len, pt_str_t *method, pt_str_t *target, pt_str_t *protocol);

/* Finds a header by name (case-insensitive); the first one, or NULL. */
const pt_h1_header_t *pt_h1_find(const pt_h1_req_t *req, pt_str_t name);

/* Is a query argument's raw name, %-decoded ('+' a space), `name`? */
bool pt_h1_query_name_is(pt_str_t raw, const char *name);
/* The raw (not decoded) value of query argument `name` in `query`, or
 * PT_STR_NULL.p when absent; an argument without "=" has an empty value. */
pt_str_t pt_h1_query_arg(pt_str_t query, const char *name);

/* The cookies of one Cookie field value, one by one: start with *at = 0;
 * pair is "name=value" as written, value what follows '=' (PT_STR_NULL.p
 * without one).  False after the last. */
bool pt_h1_cookie_next(pt_str_t v, size_t *at, pt_str_t *pair, pt_str_t *value);
/* Is this pair (from pt_h1_cookie_next) the cookie `name` (nl bytes)? */
bool pt_h1_cookie_named(pt_str_t pair, const char *name, size_t nl);
/* The value of cookie `name` in any Cookie header, or PT_STR_NULL. */
pt_str_t pt_h1_cookie(const pt_h1_req_t *req, const char *name);

typedef struct pt_h1_resp {
    int status;
    int minor;
    pt_h1_header_t *headers; /* caller's array of limits.max_headers */
    size_t nheaders;
    int64_t content_length; /* -1: none */
    bool chunked;
    bool keep_alive; /* the upstream will keep the connection open */
    size_t head_len;
} pt_h1_resp_t;

/* Parses a response head from an upstream.  Returns its length, PT_EAGAIN,
 * PT_ETOOBIG (past lim->max_head) or PT_EINVAL (not a valid response, or
 * framing that cannot be trusted: 502). */
int pt_h1_parse_response(const char *buf, size_t len, const pt_h1_limits_t *lim, pt_h1_resp_t *r);
const pt_h1_header_t *pt_h1_resp_find(const pt_h1_resp_t *r, pt_str_t name);

/* Is h a Host value we take (reg-name, IPv4 or [IPv6], optional :port;
 * 1 to 255 bytes)?  Clients' Host fields and the routes' upstream_host
 * are held to it. */
bool pt_h1_valid_host(pt_str_t h);

/* Incremental chunked body decoder. Zero it to start. */
typedef struct pt_h1_chunked {
    int state;
    uint64_t remaining; /* bytes left in the current chunk */
    size_t line;        /* bytes of the current size line or trailer section */
    int digits;
    bool done;
} pt_h1_chunked_t;

#define PT_H1_MAX_CHUNK_LINE 4096
#define PT_H1_MAX_TRAILERS 16384

/* Decodes from buf[0..len): returns the bytes consumed (>= 0) and, when
 * *dlen > 0, the payload span *data..*data+*dlen inside them; call again
 * with the rest.  c->done is set after the last chunk and the trailers.
 * PT_EINVAL: malformed framing (400). */
long pt_h1_chunked_decode(pt_h1_chunked_t *c, const char *buf, size_t len, const char **data, size_t *dlen);

#endif
