/* Protobuf descriptors, read from a binary FileDescriptorSet (protoc
 * --include_imports --descriptor_set_out) at configuration load: the
 * messages, enums and services the transcoder needs, with every type name
 * resolved.  Immutable once loaded; freed with the configuration. */
#ifndef PORTICO_PB_DESC_H
#define PORTICO_PB_DESC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/arena.h"

/* FieldDescriptorProto.Type */
enum {
    PT_PB_DOUBLE = 1, PT_PB_FLOAT, PT_PB_INT64, PT_PB_UINT64, PT_PB_INT32, PT_PB_FIXED64, PT_PB_FIXED32, PT_PB_BOOL,
    PT_PB_STRING, PT_PB_GROUP, PT_PB_MESSAGE, PT_PB_BYTES, PT_PB_UINT32, PT_PB_ENUM, PT_PB_SFIXED32, PT_PB_SFIXED64,
    PT_PB_SINT32, PT_PB_SINT64
};

/* The well-known types whose JSON is their own. */
typedef enum {
    PT_WKT_NONE, PT_WKT_ANY, PT_WKT_TIMESTAMP, PT_WKT_DURATION, PT_WKT_FIELDMASK, PT_WKT_STRUCT, PT_WKT_VALUE,
    PT_WKT_LISTVALUE, PT_WKT_EMPTY, PT_WKT_DOUBLE, PT_WKT_FLOAT, PT_WKT_INT64, PT_WKT_UINT64, PT_WKT_INT32,
    PT_WKT_UINT32, PT_WKT_BOOL, PT_WKT_STRING, PT_WKT_BYTES
} pt_wkt_t;

typedef struct pt_pb_msg pt_pb_msg_t;

typedef struct pt_pb_enum {
    const char *name; /* full, without the leading dot */
    size_t n;
    const char **names;
    int32_t *nums;
    bool null_value; /* google.protobuf.NullValue: JSON null */
} pt_pb_enum_t;

typedef struct pt_pb_fdesc {
    const char *name, *json; /* json: json_name, or lowerCamelCase of name */
    uint16_t name_len, json_len;
    const char *qname, *qjson; /* as a JSON object's key: `"fString":`, escaped as needed */
    uint16_t qname_len, qjson_len;
    uint32_t num;
    uint8_t type;
    bool repeated, packed;
    bool presence; /* set or not, rather than at its default: messages, oneof members, proto3 optional, proto2 */
    int32_t oneof; /* -1: none */
    const char *type_name;   /* MESSAGE, ENUM: as the descriptor has it */
    const pt_pb_msg_t *msg;  /* MESSAGE */
    const pt_pb_enum_t *en;  /* ENUM */
} pt_pb_fdesc_t;

struct pt_pb_msg {
    const char *name; /* full */
    pt_pb_fdesc_t *f; /* in declaration order */
    size_t nf;
    uint32_t *by_num; /* indices into f, by field number */
    uint32_t *by_name; /* open addressing over both names of each field: index into f + 1, 0 empty */
    uint32_t name_mask; /* slots - 1 */
    bool map_entry;
    pt_wkt_t wkt;
};

typedef struct pt_pb_method {
    const char *name;    /* "GetBook" */
    const char *path;    /* "/library.v1.Library/GetBook" */
    const pt_pb_msg_t *in, *out;
    bool client_streaming, server_streaming;
    const uint8_t *http; /* the google.api.http option (an HttpRule), or NULL */
    size_t http_len;
} pt_pb_method_t;

typedef struct pt_pb_service {
    const char *name; /* full */
    pt_pb_method_t *m;
    size_t n;
} pt_pb_service_t;

typedef struct pt_pb_pool pt_pb_pool_t;

/* Reads a FileDescriptorSet: the pool, or NULL with a message in err. */
pt_pb_pool_t *pt_pb_pool_load(const void *p, size_t n, char *err, size_t errlen);
void pt_pb_pool_free(pt_pb_pool_t *pool);

/* By full name, without the leading dot; NULL when not in the set. */
const pt_pb_msg_t *pt_pb_pool_msg(const pt_pb_pool_t *pool, const char *name, size_t len);
const pt_pb_service_t *pt_pb_pool_service(const pt_pb_pool_t *pool, const char *name);

/* A message's field by number, or by JSON or proto name; NULL. */
const pt_pb_fdesc_t *pt_pb_msg_field(const pt_pb_msg_t *m, uint32_t num);
/* Builds m's table of field names (by_name), in a: the pool does it for
 * every message it reads; a message made by hand needs it before
 * pt_pb_msg_field_named.  false when out of memory. */
bool pt_pb_msg_index(pt_arena_t *a, pt_pb_msg_t *m);
const pt_pb_fdesc_t *pt_pb_msg_field_named(const pt_pb_msg_t *m, const char *name, size_t len);
/* An enum value's name, or NULL; a name's number (false when none). */
const char *pt_pb_enum_name(const pt_pb_enum_t *e, int32_t num);
bool pt_pb_enum_num(const pt_pb_enum_t *e, const char *name, size_t len, int32_t *num);

/* The wire type a field's values have (not packed). */
int pt_pb_wire_type(uint8_t type);

#endif
