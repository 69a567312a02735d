/* gRPC-Web (the gRPC protocol for browsers): what a call of
 * application/grpc-web or application/grpc-web-text changes on the gRPC
 * bridge (grpc.c).  The request body is gRPC's length-prefixed messages as
 * they are (binary) or in base64 (text), which may come in padded groups
 * and in pieces that split a quantum; the response's trailers go at the
 * end of its body as one more message whose flag byte is 0x80, holding
 * "name:value\r\n" lines; in text mode the whole response body is base64,
 * each piece padded on its own (as each piece must be readable when it
 * arrives: a server stream's messages are not held back). */
#ifndef PORTICO_GRPC_WEB_H
#define PORTICO_GRPC_WEB_H

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stddef.h>

#include "portico/str.h"

/* The mode of a call, from its Content-Type. */
typedef enum { PT_GRPC_WEB_NONE, PT_GRPC_WEB_BINARY, PT_GRPC_WEB_TEXT } pt_grpc_web_mode_t;

/* application/grpc-web[-text][+subtype][;params]: which mode, and the
 * Content-Type the upstream gets (application/grpc[+subtype]) in up,
 * at most 64 bytes; NONE for anything else. */
pt_grpc_web_mode_t pt_grpc_web_mode(pt_str_t content_type, char *up, size_t cap);

/* The response's Content-Type for the client: application/grpc[+x] from
 * the upstream becomes application/grpc-web[-text][+x]; into out (cap
 * bytes), its length (0 when it does not fit). */
size_t pt_grpc_web_response_type(pt_grpc_web_mode_t mode, pt_str_t upstream_type, char *out, size_t cap);

/* A base64 stream decoder: quanta may be split between calls, and a
 * padded quantum ends a group (the next one starts afresh). */
typedef struct {
    unsigned char q[4];
    unsigned nq;   /* characters of the quantum under way */
    unsigned pads; /* of them, '=' */
} pt_b64_stream_t;

/* Decodes n bytes of in into out (room for pt_b64_stream_room(n)): the
 * bytes written, or -1 when in is not base64. */
long pt_b64_stream_decode(pt_b64_stream_t *d, const char *in, size_t n, unsigned char *out);
static inline size_t pt_b64_stream_room(size_t n)
{
    return (n + 4) / 4 * 3;
}
/* Does the stream end on a whole quantum (a body may not end inside one)? */
static inline bool pt_b64_stream_whole(const pt_b64_stream_t *d)
{
    return d->nq == 0;
}

/* Base64 of n bytes, padded, into out (room for 4 * ((n + 2) / 3)):
 * its length. */
size_t pt_b64_encode(const unsigned char *in, size_t n, char *out);

/* The trailers as the last message of the body: 0x80, a 4-byte length,
 * then "name:value\r\n" for each (names in lower case, as HTTP/2 has
 * them).  Into out (cap bytes): its length, 0 when it does not fit. */
size_t pt_grpc_web_trailers(const nghttp2_nv *nv, size_t n, unsigned char *out, size_t cap);

/* The mode the grpc-web filter found for a request (NONE without it). */
struct pt_fx;
pt_grpc_web_mode_t pt_grpc_web_of(const struct pt_fx *fx);

#endif
