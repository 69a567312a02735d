/* The protobuf wire format: a reader for bytes nobody vouches for (a
 * descriptor set, an upstream's message, grpc-status-details-bin) and
 * the few writers the JSON encoder needs.  Groups (wire types 3 and 4)
 * are refused: no proto3 message has them. */
#ifndef PORTICO_PB_H
#define PORTICO_PB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/sbuf.h"

enum { PT_PB_VARINT = 0, PT_PB_I64 = 1, PT_PB_LEN = 2, PT_PB_I32 = 5 };

#define PT_PB_MAX_FIELD 536870911u /* 2^29 - 1 */

typedef struct pt_pb_reader {
    const uint8_t *p, *end;
} pt_pb_reader_t;

/* One field: its number and wire type; v for VARINT, I64 and I32 (the
 * fixed ones little-endian, as unsigned); p and n for LEN. */
typedef struct pt_pb_field {
    uint32_t num;
    int wt;
    uint64_t v;
    const uint8_t *p;
    size_t n;
} pt_pb_field_t;

static inline pt_pb_reader_t pt_pb_reader(const void *p, size_t n)
{
    const uint8_t *b = p ? (const uint8_t *)p : (const uint8_t *)""; /* an empty field may have no bytes at all */
    return (pt_pb_reader_t){b, b + n};
}

/* The next field into f: 1, 0 at the end, -1 when the bytes are not
 * protobuf (a varint past 10 bytes or 64 bits, a length past the end,
 * field number 0 or past 2^29-1, a group or an unknown wire type). */
int pt_pb_next(pt_pb_reader_t *r, pt_pb_field_t *f);
/* A varint at *p (before end): true and *p past it. */
bool pt_pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v);

/* Zigzag (sint32, sint64). */
static inline int64_t pt_pb_unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}
static inline uint64_t pt_pb_zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

/* v as a varint into out: its length (1 to 10). */
size_t pt_pb_varint_enc(uint8_t out[10], uint64_t v);
void pt_pb_put_varint(pt_sbuf_t *b, uint64_t v);
void pt_pb_put_tag(pt_sbuf_t *b, uint32_t num, int wt);
void pt_pb_put_fixed(pt_sbuf_t *b, uint64_t v, int bytes); /* 4 or 8, little-endian */
/* A LEN field: tag, length, bytes. */
void pt_pb_put_bytes(pt_sbuf_t *b, uint32_t num, const void *p, size_t n);

#endif
