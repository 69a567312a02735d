/* Protobuf messages as JSON and back: the proto3 JSON mapping, with the
 * well-known types' own forms (Timestamp as RFC 3339, Duration as "1.5s",
 * FieldMask, Struct/Value/ListValue, the wrappers, Empty, Any).
 *
 * pb_json.c writes a message's wire bytes as JSON; json_pb.c encodes a
 * parsed JSON document (jansson) as a message; pb_wkt.c has the forms both
 * share (times, field-mask names, base64). */
#ifndef PORTICO_PB_JSON_H
#define PORTICO_PB_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/pb_desc.h"
#include "portico/sbuf.h"

typedef struct pt_pbjson_opts {
    const pt_pb_pool_t *pool; /* for Any's types */
    bool enums_as_ints, emit_defaults, proto_names;
} pt_pbjson_opts_t;

#define PT_PBJSON_MAX_DEPTH 64

/* The message m in the n bytes at p, as JSON appended to b: true, or
 * false with a message in err (bytes that are not m, a string that is not
 * UTF-8 is written with U+FFFD in its place, not refused). */
bool pt_pb_to_json(const pt_pbjson_opts_t *o, const pt_pb_msg_t *m, const uint8_t *p, size_t n, pt_sbuf_t *b,
                   char *err, size_t errlen);
/* One field's value (a message's field, repeated or not) given its
 * occurrences on the wire concatenated: for response_body. */
bool pt_pb_field_to_json(const pt_pbjson_opts_t *o, const pt_pb_msg_t *m, const pt_pb_fdesc_t *f, const uint8_t *p,
                         size_t n, pt_sbuf_t *b, char *err, size_t errlen);
/* A google.protobuf.Any's bytes as JSON ({"@type": ..., fields}): false
 * when its type is not in the set. */
bool pt_pb_any_to_json(const pt_pbjson_opts_t *o, const uint8_t *p, size_t n, pt_sbuf_t *b, char *err, size_t errlen);

/* JSON value j as message m, appended to out as wire bytes: true, or false
 * with a message in err that names the field ("book.tags[2]: ..."). */
bool pt_json_to_pb(const pt_pbjson_opts_t *o, const pt_pb_msg_t *m, json_t *j, pt_sbuf_t *out, char *err,
                   size_t errlen);
/* A single field of m (which may be nested: a.b.c as fs[0..nf)) from j,
 * as wire bytes appended to out: the body field of an HttpRule. */
bool pt_json_field_to_pb(const pt_pbjson_opts_t *o, const pt_pb_fdesc_t *const *fs, size_t nf, json_t *j,
                         pt_sbuf_t *out, char *err, size_t errlen);
/* A path variable's or query parameter's text as the scalar field at the
 * end of fs[0..nf), appended to out; repeated fields take one value per
 * call. */
bool pt_text_field_to_pb(const pt_pb_fdesc_t *const *fs, size_t nf, const char *v, size_t vn, pt_sbuf_t *out,
                         char *err, size_t errlen);

/* ---- pb_wkt.c ---- */

/* Timestamp and Duration text: into out (at least 40 bytes), its length,
 * 0 when out of range. */
size_t pt_wkt_timestamp_fmt(int64_t secs, int32_t nanos, char *out);
size_t pt_wkt_duration_fmt(int64_t secs, int32_t nanos, char *out);
bool pt_wkt_timestamp_parse(const char *s, size_t n, int64_t *secs, int32_t *nanos);
bool pt_wkt_duration_parse(const char *s, size_t n, int64_t *secs, int32_t *nanos);
/* A FieldMask path: "foo_bar.baz" <-> "fooBar.baz"; into out (room for
 * 2 * n + 1), NUL-terminated; false when it cannot go back and forth. */
bool pt_wkt_mask_to_json(const char *p, size_t n, char *out);
bool pt_wkt_mask_from_json(const char *p, size_t n, char *out);
/* Base64, standard or URL-safe, padded or not, into out (room for
 * 3 * n / 4 + 3): its length, or -1. */
long pt_wkt_b64_decode(const char *s, size_t n, uint8_t *out);
/* A string as JSON (quoted): UTF-8 as it is, control characters escaped,
 * bytes that are not UTF-8 as U+FFFD. */
void pt_json_put_str(pt_sbuf_t *b, const char *s, size_t n);

#endif
