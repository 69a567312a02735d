/* Protobuf descriptors from a FileDescriptorSet (pb_desc.h).
 *
 * The set is read in two steps: every file's messages, enums and services
 * are collected with their full names (package and outer messages), then
 * sorted, and every field's type_name is resolved against them.  A type
 * that is not in the set is an error: protoc leaves the imports out unless
 * it is given --include_imports. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/pb.h"
#include "portico/pb_desc.h"
#include "portico/pb_json.h"
#include "portico/sbuf.h"

#define MAX_NESTING 32

struct pt_pb_pool {
    pt_arena_t arena;
    pt_pb_msg_t **msgs;
    size_t nmsgs, capmsgs;
    pt_pb_enum_t **enums;
    size_t nenums, capenums;
    pt_pb_service_t **svcs;
    size_t nsvcs, capsvcs;
    char *err;
    size_t errlen;
    bool failed;
};

typedef struct file_ctx {
    const char *file, *package;
    bool proto3;
} file_ctx_t;

static void fail(pt_pb_pool_t *pool, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(pt_pb_pool_t *pool, const char *fmt, ...)
{
    if (pool->failed)
        return;
    pool->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pool->err, pool->errlen, fmt, ap);
    va_end(ap);
}

static bool push(void ***v, size_t *n, size_t *cap, void *x)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        void **p = realloc(*v, c * sizeof(*p));
        if (!p)
            return false;
        *v = p;
        *cap = c;
    }
    (*v)[(*n)++] = x;
    return true;
}

static char *dup(pt_pb_pool_t *pool, const uint8_t *p, size_t n)
{
    if (memchr(p, '\0', n)) {
        fail(pool, "a name holds a NUL byte");
        return NULL;
    }
    char *s = pt_arena_strndup(&pool->arena, (const char *)p, n);
    if (!s)
        fail(pool, "out of memory");
    return s;
}

static char *join(pt_pb_pool_t *pool, const char *scope, const char *name)
{
    char *s = *scope ? pt_arena_printf(&pool->arena, "%s.%s", scope, name) : pt_arena_strdup(&pool->arena, name);
    if (!s)
        fail(pool, "out of memory");
    return s;
}

/* lowerCamelCase, as protoc makes json_name: an underscore is dropped
 * and the letter after it is upper-cased. */
static char *camel(pt_pb_pool_t *pool, const char *name)
{
    size_t n = strlen(name);
    char *s = pt_arena_alloc(&pool->arena, n + 1), *o = s;
    if (!s) {
        fail(pool, "out of memory");
        return NULL;
    }
    bool up = false;
    for (; *name; name++) {
        if (*name == '_') {
            up = true;
            continue;
        }
        *o++ = up && *name >= 'a' && *name <= 'z' ? (char)(*name - 32) : *name;
        up = false;
    }
    *o = '\0';
    return s;
}

static const struct {
    const char *name;
    pt_wkt_t wkt;
} wkts[] = {
    {"google.protobuf.Any", PT_WKT_ANY},          {"google.protobuf.Timestamp", PT_WKT_TIMESTAMP},
    {"google.protobuf.Duration", PT_WKT_DURATION}, {"google.protobuf.FieldMask", PT_WKT_FIELDMASK},
    {"google.protobuf.Struct", PT_WKT_STRUCT},    {"google.protobuf.Value", PT_WKT_VALUE},
    {"google.protobuf.ListValue", PT_WKT_LISTVALUE}, {"google.protobuf.Empty", PT_WKT_EMPTY},
    {"google.protobuf.DoubleValue", PT_WKT_DOUBLE}, {"google.protobuf.FloatValue", PT_WKT_FLOAT},
    {"google.protobuf.Int64Value", PT_WKT_INT64}, {"google.protobuf.UInt64Value", PT_WKT_UINT64},
    {"google.protobuf.Int32Value", PT_WKT_INT32}, {"google.protobuf.UInt32Value", PT_WKT_UINT32},
    {"google.protobuf.BoolValue", PT_WKT_BOOL},   {"google.protobuf.StringValue", PT_WKT_STRING},
    {"google.protobuf.BytesValue", PT_WKT_BYTES},
};

/* ---- reading ---- */

/* A field's options: packed (2). */
static int field_packed(const pt_pb_field_t *opt)
{
    pt_pb_reader_t r = pt_pb_reader(opt->p, opt->n);
    pt_pb_field_t f;
    int packed = -1, k;
    while ((k = pt_pb_next(&r, &f)) > 0)
        if (f.num == 2 && f.wt == PT_PB_VARINT)
            packed = f.v != 0;
    return k < 0 ? -2 : packed;
}

/* A name as the key the JSON writer puts before a value, made once here
 * rather than escaped for every field of every message written. */
static bool json_key(pt_pb_pool_t *pool, const char *name, size_t n, const char **out, uint16_t *len)
{
    pt_sbuf_t b = {0};
    pt_json_put_str(&b, name, n);
    pt_sbuf_put(&b, ":", 1);
    if (b.failed || b.n > UINT16_MAX) {
        free(b.p);
        fail(pool, "out of memory");
        return false;
    }
    *out = pt_arena_strndup(&pool->arena, b.p, b.n);
    *len = (uint16_t)b.n;
    free(b.p);
    return true;
}

static bool read_field(pt_pb_pool_t *pool, const file_ctx_t *fc, const char *msg, const uint8_t *p, size_t n,
                       pt_pb_fdesc_t *fd)
{
    pt_pb_reader_t r = pt_pb_reader(p, n);
    pt_pb_field_t f;
    int k, label = 1, packed = -1;
    bool optional3 = false;
    memset(fd, 0, sizeof(*fd));
    fd->oneof = -1;
    while ((k = pt_pb_next(&r, &f)) > 0) {
        if (f.wt == PT_PB_LEN && f.num == 1)
            fd->name = dup(pool, f.p, f.n);
        else if (f.wt == PT_PB_VARINT && f.num == 3)
            fd->num = f.v <= PT_PB_MAX_FIELD ? (uint32_t)f.v : 0;
        else if (f.wt == PT_PB_VARINT && f.num == 4)
            label = (int)f.v;
        else if (f.wt == PT_PB_VARINT && f.num == 5)
            fd->type = f.v <= 18 ? (uint8_t)f.v : 0;
        else if (f.wt == PT_PB_LEN && f.num == 6)
            fd->type_name = dup(pool, f.p, f.n);
        else if (f.wt == PT_PB_LEN && f.num == 8 && (packed = field_packed(&f)) == -2)
            k = -1;
        else if (f.wt == PT_PB_VARINT && f.num == 9)
            fd->oneof = f.v < 1u << 30 ? (int32_t)f.v : -1;
        else if (f.wt == PT_PB_LEN && f.num == 10)
            fd->json = dup(pool, f.p, f.n);
        else if (f.wt == PT_PB_VARINT && f.num == 17)
            optional3 = f.v != 0;
        if (k < 0)
            break;
    }
    if (k < 0 || pool->failed) {
        fail(pool, "%s: message %s: a field is not a FieldDescriptorProto", fc->file, msg);
        return false;
    }
    if (!fd->name || !fd->num || !fd->type || fd->type == PT_PB_GROUP) {
        fail(pool, "%s: message %s: field %s has %s", fc->file, msg, fd->name ? fd->name : "(no name)",
             fd->type == PT_PB_GROUP ? "a group, which is not supported" : "no number or no type");
        return false;
    }
    if ((fd->type == PT_PB_MESSAGE || fd->type == PT_PB_ENUM) && !fd->type_name) {
        fail(pool, "%s: message %s: field %s has no type name", fc->file, msg, fd->name);
        return false;
    }
    if (!fd->json && !(fd->json = camel(pool, fd->name)))
        return false;
    if (strlen(fd->name) > UINT16_MAX || strlen(fd->json) > UINT16_MAX) {
        fail(pool, "%s: message %s: a field name past 65535 bytes", fc->file, msg);
        return false;
    }
    fd->name_len = (uint16_t)strlen(fd->name);
    fd->json_len = (uint16_t)strlen(fd->json);
    if (!json_key(pool, fd->name, fd->name_len, &fd->qname, &fd->qname_len) ||
        !json_key(pool, fd->json, fd->json_len, &fd->qjson, &fd->qjson_len))
        return false;
    fd->repeated = label == 3;
    bool scalar = fd->type != PT_PB_STRING && fd->type != PT_PB_BYTES && fd->type != PT_PB_MESSAGE;
    fd->packed = fd->repeated && scalar && (packed == 1 || (packed == -1 && fc->proto3));
    fd->presence = !fd->repeated && (fd->type == PT_PB_MESSAGE || fd->oneof >= 0 || optional3 || !fc->proto3);
    return true;
}

static bool read_enum(pt_pb_pool_t *pool, const file_ctx_t *fc, const char *scope, const uint8_t *p, size_t n)
{
    pt_pb_reader_t r = pt_pb_reader(p, n);
    pt_pb_field_t f;
    int k;
    pt_pb_enum_t *e = pt_arena_zalloc(&pool->arena, sizeof(*e));
    size_t cap = 0;
    if (!e) {
        fail(pool, "out of memory");
        return false;
    }
    while ((k = pt_pb_next(&r, &f)) > 0) {
        if (f.wt == PT_PB_LEN && f.num == 1) {
            char *name = dup(pool, f.p, f.n);
            e->name = name ? join(pool, scope, name) : NULL;
        } else if (f.wt == PT_PB_LEN && f.num == 2) { /* EnumValueDescriptorProto */
            pt_pb_reader_t vr = pt_pb_reader(f.p, f.n);
            pt_pb_field_t v;
            const char *vname = NULL;
            int32_t num = 0;
            while ((k = pt_pb_next(&vr, &v)) > 0) {
                if (v.wt == PT_PB_LEN && v.num == 1)
                    vname = dup(pool, v.p, v.n);
                else if (v.wt == PT_PB_VARINT && v.num == 2)
                    num = (int32_t)v.v;
            }
            if (k < 0 || !vname)
                break;
            if (e->n == cap) {
                cap = cap ? cap * 2 : 8;
                const char **names = pt_arena_alloc(&pool->arena, cap * sizeof(*names));
                int32_t *nums = pt_arena_alloc(&pool->arena, cap * sizeof(*nums));
                if (!names || !nums) {
                    fail(pool, "out of memory");
                    return false;
                }
                if (e->n) {
                    memcpy(names, e->names, e->n * sizeof(*names));
                    memcpy(nums, e->nums, e->n * sizeof(*nums));
                }
                e->names = names;
                e->nums = nums;
            }
            e->names[e->n] = vname;
            e->nums[e->n++] = num;
        }
    }
    if (k < 0 || !e->name || pool->failed) {
        fail(pool, "%s: an enum in %s is not an EnumDescriptorProto", fc->file, *scope ? scope : "the file");
        return false;
    }
    e->null_value = strcmp(e->name, "google.protobuf.NullValue") == 0;
    if (!push((void ***)&pool->enums, &pool->nenums, &pool->capenums, e)) {
        fail(pool, "out of memory");
        return false;
    }
    return true;
}

static const pt_pb_msg_t *sort_msg;
static int cmp_by_num(const void *a, const void *b)
{
    uint32_t x = sort_msg->f[*(const uint32_t *)a].num, y = sort_msg->f[*(const uint32_t *)b].num;
    return x < y ? -1 : x > y;
}

/* FNV-1a: names are short, and come from the descriptor or a client. */
static uint32_t name_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static void index_name(pt_pb_msg_t *m, const char *name, size_t len, uint32_t at)
{
    uint32_t h = name_hash(name, len) & m->name_mask;
    while (m->by_name[h] && m->by_name[h] != at)
        h = (h + 1) & m->name_mask;
    m->by_name[h] = at;
}

bool pt_pb_msg_index(pt_arena_t *a, pt_pb_msg_t *m)
{
    size_t slots = 8;
    while (slots < 4 * 2 * m->nf)
        slots *= 2;
    m->by_name = pt_arena_zalloc(a, slots * sizeof(*m->by_name));
    if (!m->by_name)
        return false;
    m->name_mask = (uint32_t)(slots - 1);
    for (size_t i = 0; i < m->nf; i++) {
        index_name(m, m->f[i].json, m->f[i].json_len, (uint32_t)i + 1);
        index_name(m, m->f[i].name, m->f[i].name_len, (uint32_t)i + 1);
    }
    return true;
}

static bool read_msg(pt_pb_pool_t *pool, const file_ctx_t *fc, const char *scope, const uint8_t *p, size_t n,
                     int depth)
{
    if (depth > MAX_NESTING) {
        fail(pool, "%s: messages nested more than %d deep", fc->file, MAX_NESTING);
        return false;
    }
    pt_pb_reader_t r = pt_pb_reader(p, n);
    pt_pb_field_t f;
    int k;
    pt_pb_msg_t *m = pt_arena_zalloc(&pool->arena, sizeof(*m));
    if (!m) {
        fail(pool, "out of memory");
        return false;
    }
    size_t nfields = 0;
    while ((k = pt_pb_next(&r, &f)) > 0) { /* the name first (protoc writes it first, but need not) */
        if (f.wt == PT_PB_LEN && f.num == 1) {
            char *name = dup(pool, f.p, f.n);
            m->name = name ? join(pool, scope, name) : NULL;
        } else if (f.wt == PT_PB_LEN && f.num == 2) {
            nfields++;
        }
    }
    if (k < 0 || !m->name) {
        fail(pool, "%s: a message in %s is not a DescriptorProto", fc->file, *scope ? scope : "the file");
        return false;
    }
    m->f = pt_arena_zalloc(&pool->arena, (nfields ? nfields : 1) * sizeof(*m->f));
    m->by_num = pt_arena_alloc(&pool->arena, (nfields ? nfields : 1) * sizeof(*m->by_num));
    if (!m->f || !m->by_num) {
        fail(pool, "out of memory");
        return false;
    }
    r = pt_pb_reader(p, n);
    while (pt_pb_next(&r, &f) > 0 && !pool->failed) {
        if (f.wt == PT_PB_LEN && f.num == 2) {
            if (read_field(pool, fc, m->name, f.p, f.n, &m->f[m->nf]))
                m->nf++;
        } else if (f.wt == PT_PB_LEN && f.num == 3) {
            read_msg(pool, fc, m->name, f.p, f.n, depth + 1);
        } else if (f.wt == PT_PB_LEN && f.num == 4) {
            read_enum(pool, fc, m->name, f.p, f.n);
        } else if (f.wt == PT_PB_LEN && f.num == 7) { /* MessageOptions: map_entry (7) */
            pt_pb_reader_t o = pt_pb_reader(f.p, f.n);
            pt_pb_field_t of;
            while (pt_pb_next(&o, &of) > 0)
                if (of.num == 7 && of.wt == PT_PB_VARINT)
                    m->map_entry = of.v != 0;
        }
    }
    if (pool->failed)
        return false;
    for (size_t i = 0; i < m->nf; i++) {
        m->by_num[i] = (uint32_t)i;
        for (size_t j = 0; j < i; j++)
            if (m->f[j].num == m->f[i].num || strcmp(m->f[j].name, m->f[i].name) == 0) {
                fail(pool, "%s: message %s has two fields %s (%u)", fc->file, m->name, m->f[i].name, m->f[i].num);
                return false;
            }
    }
    sort_msg = m;
    qsort(m->by_num, m->nf, sizeof(*m->by_num), cmp_by_num);
    if (!pt_pb_msg_index(&pool->arena, m)) {
        fail(pool, "out of memory");
        return false;
    }
    for (size_t i = 0; i < sizeof(wkts) / sizeof(wkts[0]); i++)
        if (strcmp(m->name, wkts[i].name) == 0)
            m->wkt = wkts[i].wkt;
    if (!push((void ***)&pool->msgs, &pool->nmsgs, &pool->capmsgs, m)) {
        fail(pool, "out of memory");
        return false;
    }
    return true;
}

/* MethodOptions: the google.api.http extension (72295728). */
#define HTTP_RULE_EXT 72295728u

static bool read_method(pt_pb_pool_t *pool, const file_ctx_t *fc, const pt_pb_service_t *s, const uint8_t *p,
                        size_t n, pt_pb_method_t *md)
{
    pt_pb_reader_t r = pt_pb_reader(p, n);
    pt_pb_field_t f;
    int k;
    const char *in = NULL, *out = NULL;
    memset(md, 0, sizeof(*md));
    while ((k = pt_pb_next(&r, &f)) > 0) {
        if (f.wt == PT_PB_LEN && f.num == 1)
            md->name = dup(pool, f.p, f.n);
        else if (f.wt == PT_PB_LEN && f.num == 2)
            in = dup(pool, f.p, f.n);
        else if (f.wt == PT_PB_LEN && f.num == 3)
            out = dup(pool, f.p, f.n);
        else if (f.wt == PT_PB_VARINT && f.num == 5)
            md->client_streaming = f.v != 0;
        else if (f.wt == PT_PB_VARINT && f.num == 6)
            md->server_streaming = f.v != 0;
        else if (f.wt == PT_PB_LEN && f.num == 4) {
            pt_pb_reader_t o = pt_pb_reader(f.p, f.n);
            pt_pb_field_t of;
            int ok;
            while ((ok = pt_pb_next(&o, &of)) > 0)
                if (of.num == HTTP_RULE_EXT && of.wt == PT_PB_LEN) {
                    md->http = of.p; /* copied below: the set's bytes are not kept */
                    md->http_len = of.n;
                }
            if (ok < 0)
                k = -1;
        }
        if (k < 0)
            break;
    }
    if (k < 0 || !md->name || !in || !out || pool->failed) {
        fail(pool, "%s: a method of service %s is not a MethodDescriptorProto", fc->file, s->name);
        return false;
    }
    if (md->http) {
        uint8_t *copy = pt_arena_alloc(&pool->arena, md->http_len ? md->http_len : 1);
        if (!copy) {
            fail(pool, "out of memory");
            return false;
        }
        memcpy(copy, md->http, md->http_len);
        md->http = copy;
    }
    md->path = pt_arena_printf(&pool->arena, "/%s/%s", s->name, md->name);
    /* the types are resolved with the fields: kept in the message slots for now */
    md->in = (const pt_pb_msg_t *)in;
    md->out = (const pt_pb_msg_t *)out;
    return md->path != NULL;
}

static bool read_service(pt_pb_pool_t *pool, const file_ctx_t *fc, const uint8_t *p, size_t n)
{
    pt_pb_reader_t r = pt_pb_reader(p, n);
    pt_pb_field_t f;
    int k;
    pt_pb_service_t *s = pt_arena_zalloc(&pool->arena, sizeof(*s));
    size_t nm = 0;
    if (!s) {
        fail(pool, "out of memory");
        return false;
    }
    while ((k = pt_pb_next(&r, &f)) > 0) {
        if (f.wt == PT_PB_LEN && f.num == 1) {
            char *name = dup(pool, f.p, f.n);
            s->name = name ? join(pool, fc->package, name) : NULL;
        } else if (f.wt == PT_PB_LEN && f.num == 2) {
            nm++;
        }
    }
    if (k < 0 || !s->name) {
        fail(pool, "%s: a service is not a ServiceDescriptorProto", fc->file);
        return false;
    }
    s->m = pt_arena_zalloc(&pool->arena, (nm ? nm : 1) * sizeof(*s->m));
    if (!s->m) {
        fail(pool, "out of memory");
        return false;
    }
    r = pt_pb_reader(p, n);
    while (pt_pb_next(&r, &f) > 0 && !pool->failed)
        if (f.wt == PT_PB_LEN && f.num == 2 && read_method(pool, fc, s, f.p, f.n, &s->m[s->n]))
            s->n++;
    if (pool->failed)
        return false;
    if (!push((void ***)&pool->svcs, &pool->nsvcs, &pool->capsvcs, s)) {
        fail(pool, "out of memory");
        return false;
    }
    return true;
}

static bool read_file(pt_pb_pool_t *pool, const uint8_t *p, size_t n)
{
    pt_pb_reader_t r = pt_pb_reader(p, n);
    pt_pb_field_t f;
    int k;
    file_ctx_t fc = {"(a file without a name)", "", false};
    while ((k = pt_pb_next(&r, &f)) > 0) { /* name, package and syntax first */
        if (f.wt == PT_PB_LEN && f.num == 1)
            fc.file = dup(pool, f.p, f.n);
        else if (f.wt == PT_PB_LEN && f.num == 2)
            fc.package = dup(pool, f.p, f.n);
        else if (f.wt == PT_PB_LEN && f.num == 12)
            fc.proto3 = f.n == 6 && memcmp(f.p, "proto3", 6) == 0;
    }
    if (k < 0 || !fc.file || !fc.package) {
        fail(pool, "a file of the set is not a FileDescriptorProto");
        return false;
    }
    r = pt_pb_reader(p, n);
    while (pt_pb_next(&r, &f) > 0 && !pool->failed) {
        if (f.wt != PT_PB_LEN)
            continue;
        if (f.num == 4)
            read_msg(pool, &fc, fc.package, f.p, f.n, 0);
        else if (f.num == 5)
            read_enum(pool, &fc, fc.package, f.p, f.n);
        else if (f.num == 6)
            read_service(pool, &fc, f.p, f.n);
    }
    return !pool->failed;
}

/* ---- resolving ---- */

static int cmp_msg(const void *a, const void *b)
{
    return strcmp((*(pt_pb_msg_t *const *)a)->name, (*(pt_pb_msg_t *const *)b)->name);
}
static int cmp_enum(const void *a, const void *b)
{
    return strcmp((*(pt_pb_enum_t *const *)a)->name, (*(pt_pb_enum_t *const *)b)->name);
}
static int cmp_svc(const void *a, const void *b)
{
    return strcmp((*(pt_pb_service_t *const *)a)->name, (*(pt_pb_service_t *const *)b)->name);
}

static const pt_pb_enum_t *find_enum(const pt_pb_pool_t *pool, const char *name)
{
    size_t lo = 0, hi = pool->nenums;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(pool->enums[mid]->name, name);
        if (!c)
            return pool->enums[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* A fully-qualified type name (".pkg.Msg"), as protoc writes them. */
static const char *qualified(pt_pb_pool_t *pool, const char *tn, const char *where)
{
    if (tn[0] != '.') {
        fail(pool, "%s names type %s, which is not fully qualified (make the set with protoc)", where, tn);
        return NULL;
    }
    return tn + 1;
}

static bool resolve(pt_pb_pool_t *pool)
{
    if (pool->nmsgs) /* an empty list has no array at all */
        qsort(pool->msgs, pool->nmsgs, sizeof(*pool->msgs), cmp_msg);
    if (pool->nenums)
        qsort(pool->enums, pool->nenums, sizeof(*pool->enums), cmp_enum);
    if (pool->nsvcs)
        qsort(pool->svcs, pool->nsvcs, sizeof(*pool->svcs), cmp_svc);
    for (size_t i = 0; i + 1 < pool->nmsgs; i++)
        if (strcmp(pool->msgs[i]->name, pool->msgs[i + 1]->name) == 0) {
            fail(pool, "message %s is defined twice", pool->msgs[i]->name);
            return false;
        }
    for (size_t i = 0; i < pool->nmsgs; i++) {
        pt_pb_msg_t *m = pool->msgs[i];
        for (size_t j = 0; j < m->nf; j++) {
            pt_pb_fdesc_t *fd = &m->f[j];
            if (fd->type != PT_PB_MESSAGE && fd->type != PT_PB_ENUM)
                continue;
            char where[256];
            snprintf(where, sizeof(where), "field %s of message %s", fd->name, m->name);
            const char *tn = qualified(pool, fd->type_name, where);
            if (!tn)
                return false;
            if (fd->type == PT_PB_MESSAGE)
                fd->msg = pt_pb_pool_msg(pool, tn, strlen(tn));
            else
                fd->en = find_enum(pool, tn);
            if (!fd->msg && !fd->en) {
                fail(pool, "%s has type %s, which is not in the descriptor set (was protoc given --include_imports?)",
                     where, tn);
                return false;
            }
        }
    }
    for (size_t i = 0; i < pool->nsvcs; i++) {
        pt_pb_service_t *s = pool->svcs[i];
        for (size_t j = 0; j < s->n; j++) {
            pt_pb_method_t *md = &s->m[j];
            const char *names[2] = {(const char *)md->in, (const char *)md->out};
            const pt_pb_msg_t *types[2];
            for (int t = 0; t < 2; t++) {
                char where[256];
                snprintf(where, sizeof(where), "method %s", md->path + 1);
                const char *tn = qualified(pool, names[t], where);
                if (!tn)
                    return false;
                if (!(types[t] = pt_pb_pool_msg(pool, tn, strlen(tn)))) {
                    fail(pool, "%s has type %s, which is not in the descriptor set (was protoc given --include_imports?)",
                         where, tn);
                    return false;
                }
            }
            md->in = types[0];
            md->out = types[1];
        }
    }
    return true;
}

pt_pb_pool_t *pt_pb_pool_load(const void *p, size_t n, char *err, size_t errlen)
{
    pt_pb_pool_t *pool = calloc(1, sizeof(*pool));
    if (!pool) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pt_arena_init(&pool->arena, 64 * 1024, 0);
    pool->err = err;
    pool->errlen = errlen;
    pt_pb_reader_t r = pt_pb_reader(p, n);
    pt_pb_field_t f;
    int k;
    size_t files = 0;
    while (!pool->failed && (k = pt_pb_next(&r, &f)) > 0)
        if (f.num == 1 && f.wt == PT_PB_LEN && read_file(pool, f.p, f.n))
            files++;
    if (!pool->failed && k < 0)
        fail(pool, "not a FileDescriptorSet (protoc --include_imports --descriptor_set_out=FILE)");
    if (!pool->failed && !files)
        fail(pool, "the descriptor set holds no file");
    if (!pool->failed)
        resolve(pool);
    if (pool->failed) {
        pt_pb_pool_free(pool);
        return NULL;
    }
    pool->err = NULL;
    return pool;
}

void pt_pb_pool_free(pt_pb_pool_t *pool)
{
    if (!pool)
        return;
    free(pool->msgs);
    free(pool->enums);
    free(pool->svcs);
    pt_arena_free(&pool->arena);
    free(pool);
}

/* ---- lookups ---- */

/* s against the len bytes at name (which may hold a NUL): <0, 0, >0. */
static int cmpn(const char *s, const char *name, size_t len)
{
    size_t k = strlen(s);
    int c = memcmp(s, name, k < len ? k : len);
    return c ? c : k < len ? -1 : k > len;
}

const pt_pb_msg_t *pt_pb_pool_msg(const pt_pb_pool_t *pool, const char *name, size_t len)
{
    size_t lo = 0, hi = pool->nmsgs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = cmpn(pool->msgs[mid]->name, name, len);
        if (!c)
            return pool->msgs[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const pt_pb_service_t *pt_pb_pool_service(const pt_pb_pool_t *pool, const char *name)
{
    for (size_t i = 0; i < pool->nsvcs; i++)
        if (strcmp(pool->svcs[i]->name, name) == 0)
            return pool->svcs[i];
    return NULL;
}

const pt_pb_fdesc_t *pt_pb_msg_field(const pt_pb_msg_t *m, uint32_t num)
{
    size_t lo = 0, hi = m->nf;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const pt_pb_fdesc_t *f = &m->f[m->by_num[mid]];
        if (f->num == num)
            return f;
        if (f->num < num)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const pt_pb_fdesc_t *pt_pb_msg_field_named(const pt_pb_msg_t *m, const char *name, size_t len)
{
    for (uint32_t h = name_hash(name, len) & m->name_mask;; h = (h + 1) & m->name_mask) {
        uint32_t at = m->by_name[h];
        if (!at)
            return NULL;
        const pt_pb_fdesc_t *f = &m->f[at - 1];
        if ((f->json_len == len && memcmp(f->json, name, len) == 0) ||
            (f->name_len == len && memcmp(f->name, name, len) == 0))
            return f;
    }
}

const char *pt_pb_enum_name(const pt_pb_enum_t *e, int32_t num)
{
    for (size_t i = 0; i < e->n; i++)
        if (e->nums[i] == num)
            return e->names[i];
    return NULL;
}

bool pt_pb_enum_num(const pt_pb_enum_t *e, const char *name, size_t len, int32_t *num)
{
    for (size_t i = 0; i < e->n; i++)
        if (!cmpn(e->names[i], name, len)) {
            *num = e->nums[i];
            return true;
        }
    return false;
}

int pt_pb_wire_type(uint8_t type)
{
    switch (type) {
    case PT_PB_DOUBLE: case PT_PB_FIXED64: case PT_PB_SFIXED64: return PT_PB_I64;
    case PT_PB_FLOAT: case PT_PB_FIXED32: case PT_PB_SFIXED32: return PT_PB_I32;
    case PT_PB_STRING: case PT_PB_BYTES: case PT_PB_MESSAGE: return PT_PB_LEN;
    default: return PT_PB_VARINT;
    }
}
