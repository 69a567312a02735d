/* Protobuf wire bytes as proto3 JSON (pb_json.h).
 *
 * A message's fields are gathered in one pass over its bytes, then sorted
 * by declaration: the JSON has them in the order of the .proto, whatever
 * order the wire had.  A singular scalar's last value wins; a singular
 * message's occurrences are merged (their bytes are read as one); a
 * repeated scalar may come packed, unpacked, or both.  Unknown fields are
 * left out, as the proto3 JSON mapping says. */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/grpc_web.h"
#include "portico/pb.h"
#include "portico/pb_json.h"
#include "portico/str.h"

typedef struct w {
    const pt_pbjson_opts_t *o;
    pt_sbuf_t *b;
    char *err;
    size_t errlen;
    int depth;
    bool failed;
} w_t;

static bool fail(w_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(w_t *w, const char *fmt, ...)
{
    if (!w->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->err, w->errlen, fmt, ap);
        va_end(ap);
    }
    w->failed = true;
    return false;
}

#define put(w, lit) pt_sbuf_put((w)->b, (lit), sizeof(lit) - 1)

static bool write_msg(w_t *w, const pt_pb_msg_t *m, const uint8_t *p, size_t n, const char *type_url);

static void put_double(w_t *w, double d, bool is_float)
{
    if (isnan(d)) {
        put(w, "\"NaN\"");
        return;
    }
    if (isinf(d)) {
        pt_sbuf_puts(w->b, d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        return;
    }
    if (d == 0 && signbit(d)) {
        put(w, "-0.0"); /* not "-0": a reader that takes it for the integer 0 would lose the sign */
        return;
    }
    char buf[40];
    for (int prec = is_float ? 6 : 15; prec <= 17; prec++) { /* the shortest that reads back the same */
        snprintf(buf, sizeof(buf), "%.*g", prec, d);
        double back = strtod(buf, NULL);
        if (is_float ? (float)back == (float)d : back == d)
            break;
    }
    pt_sbuf_puts(w->b, buf);
}

static void put_b64(w_t *w, const uint8_t *p, size_t n)
{
    pt_sbuf_put(w->b, "\"", 1);
    char text[4 * 1024];
    for (size_t i = 0; i < n; i += 3 * 256) {
        size_t k = n - i < 3 * 256 ? n - i : 3 * 256;
        pt_sbuf_put(w->b, text, pt_b64_encode(p + i, k, text));
    }
    pt_sbuf_put(w->b, "\"", 1);
}

static void put_enum(w_t *w, const pt_pb_fdesc_t *f, int32_t v)
{
    const char *name = w->o->enums_as_ints ? NULL : pt_pb_enum_name(f->en, v);
    if (f->en->null_value) {
        put(w, "null");
    } else if (name) {
        pt_json_put_str(w->b, name, strlen(name));
    } else {
        char d[16];
        snprintf(d, sizeof(d), "%d", v);
        pt_sbuf_puts(w->b, d);
    }
}

/* One value of field f (not repeated, or one element). */
static bool write_value(w_t *w, const pt_pb_fdesc_t *f, const pt_pb_field_t *v)
{
    if (v->wt != pt_pb_wire_type(f->type))
        return fail(w, "field %s has wire type %d", f->name, v->wt);
    char d[32];
    size_t n = 0;
    uint64_t u = v->v;
    bool quote = false, neg = false;
    switch (f->type) { /* the integers by hand: snprintf was a tenth of a call's cost */
    case PT_PB_DOUBLE: {
        double x;
        memcpy(&x, &v->v, 8);
        put_double(w, x, false);
        return true;
    }
    case PT_PB_FLOAT: {
        uint32_t b = (uint32_t)v->v;
        float x;
        memcpy(&x, &b, 4);
        put_double(w, x, true);
        return true;
    }
    case PT_PB_INT64: case PT_PB_SFIXED64: quote = true, neg = (int64_t)u < 0; break;
    case PT_PB_SINT64: u = (uint64_t)pt_pb_unzigzag(u), quote = true, neg = (int64_t)u < 0; break;
    case PT_PB_UINT64: case PT_PB_FIXED64: quote = true; break;
    case PT_PB_INT32: case PT_PB_SFIXED32: u = (uint64_t)(int64_t)(int32_t)(uint32_t)u, neg = (int64_t)u < 0; break;
    case PT_PB_SINT32: u = (uint64_t)(int64_t)(int32_t)pt_pb_unzigzag((uint32_t)u), neg = (int64_t)u < 0; break;
    case PT_PB_UINT32: case PT_PB_FIXED32: u = (uint32_t)u; break;
    case PT_PB_BOOL: pt_sbuf_puts(w->b, v->v ? "true" : "false"); return true;
    case PT_PB_ENUM: put_enum(w, f, (int32_t)(uint32_t)v->v); return true;
    case PT_PB_STRING: pt_json_put_str(w->b, (const char *)v->p, v->n); return true;
    case PT_PB_BYTES: put_b64(w, v->p, v->n); return true;
    case PT_PB_MESSAGE: return write_msg(w, f->msg, v->p, v->n, NULL);
    default: return fail(w, "field %s has an unknown type", f->name);
    }
    if (quote)
        d[n++] = '"';
    if (neg) {
        d[n++] = '-';
        u = (uint64_t)0 - u;
    }
    n += pt_fmt_u64(d + n, u, 0);
    if (quote)
        d[n++] = '"';
    pt_sbuf_put(w->b, d, n);
    return true;
}

/* The default of a field not on the wire (emit_defaults). */
static void write_default(w_t *w, const pt_pb_fdesc_t *f)
{
    if (f->repeated) {
        pt_sbuf_puts(w->b, f->type == PT_PB_MESSAGE && f->msg->map_entry ? "{}" : "[]");
        return;
    }
    pt_pb_field_t zero = {.num = f->num, .wt = pt_pb_wire_type(f->type), .p = (const uint8_t *)""};
    write_value(w, f, &zero);
}

/* At its default, as the field's type reads it: a 32-bit field's varint
 * may carry high bits that it drops. */
static bool is_default(const pt_pb_fdesc_t *f, const pt_pb_field_t *v)
{
    if (v->wt == PT_PB_LEN)
        return v->n == 0;
    switch (f->type) {
    case PT_PB_INT32: case PT_PB_SINT32: case PT_PB_UINT32: case PT_PB_FIXED32: case PT_PB_SFIXED32: case PT_PB_ENUM:
    case PT_PB_FLOAT:
        return (uint32_t)v->v == 0;
    default:
        return v->v == 0;
    }
}

typedef struct occ {
    uint32_t fi, seq;
    pt_pb_field_t v;
} occ_t;

static int cmp_occ(const void *a, const void *b)
{
    const occ_t *x = a, *y = b;
    if (x->fi != y->fi)
        return x->fi < y->fi ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The elements of a repeated field's occurrences: packed ones unpacked. */
static bool write_repeated(w_t *w, const pt_pb_fdesc_t *f, const occ_t *o, size_t k)
{
    put(w, "[");
    bool first = true;
    int wt = pt_pb_wire_type(f->type);
    for (size_t i = 0; i < k; i++) {
        if (o[i].v.wt == PT_PB_LEN && wt != PT_PB_LEN) { /* packed */
            const uint8_t *p = o[i].v.p, *end = p + o[i].v.n;
            while (p < end) {
                pt_pb_field_t e = {.num = f->num, .wt = wt};
                if (wt == PT_PB_VARINT) {
                    if (!pt_pb_varint(&p, end, &e.v))
                        return fail(w, "field %s: a packed value is cut", f->name);
                } else {
                    size_t bytes = wt == PT_PB_I64 ? 8 : 4;
                    if ((size_t)(end - p) < bytes)
                        return fail(w, "field %s: a packed value is cut", f->name);
                    for (size_t j = 0; j < bytes; j++)
                        e.v |= (uint64_t)p[j] << (8 * j);
                    p += bytes;
                }
                if (!first)
                    put(w, ",");
                first = false;
                if (!write_value(w, f, &e))
                    return false;
            }
            continue;
        }
        if (!first)
            put(w, ",");
        first = false;
        if (!write_value(w, f, &o[i].v))
            return false;
    }
    put(w, "]");
    return true;
}

/* A map: its entries (messages of key 1 and value 2) as a JSON object. */
static bool write_map(w_t *w, const pt_pb_fdesc_t *f, const occ_t *o, size_t k)
{
    const pt_pb_fdesc_t *kf = pt_pb_msg_field(f->msg, 1), *vf = pt_pb_msg_field(f->msg, 2);
    if (!kf || !vf)
        return fail(w, "map %s has no key or no value", f->name);
    put(w, "{");
    for (size_t i = 0; i < k; i++) {
        if (o[i].v.wt != PT_PB_LEN)
            return fail(w, "map %s: an entry is not a message", f->name);
        pt_pb_reader_t r = pt_pb_reader(o[i].v.p, o[i].v.n);
        pt_pb_field_t e, key = {.wt = pt_pb_wire_type(kf->type), .p = (const uint8_t *)""},
                         val = {.wt = pt_pb_wire_type(vf->type), .p = (const uint8_t *)""};
        int rc;
        bool has_val = false;
        while ((rc = pt_pb_next(&r, &e)) > 0) {
            if (e.num == 1) {
                key = e;
            } else if (e.num == 2) {
                val = e; /* a message value given twice would merge: rare enough to take the last */
                has_val = true;
            }
        }
        if (rc < 0 || key.wt != pt_pb_wire_type(kf->type))
            return fail(w, "map %s: an entry is not protobuf", f->name);
        if (i)
            put(w, ",");
        if (kf->type == PT_PB_STRING) {
            pt_json_put_str(w->b, (const char *)key.p, key.n);
        } else {
            pt_sbuf_t kb = {0};
            pt_sbuf_t *save = w->b;
            w->b = &kb;
            bool ok = write_value(w, kf, &key);
            w->b = save;
            if (!ok || kb.failed) {
                free(kb.p);
                return ok ? fail(w, "out of memory") : false;
            }
            bool quoted = kb.n && kb.p[0] == '"';
            pt_sbuf_put(w->b, "\"", !quoted);
            pt_sbuf_put(w->b, kb.p, kb.n);
            pt_sbuf_put(w->b, "\"", !quoted);
            free(kb.p);
        }
        put(w, ":");
        if (vf->type == PT_PB_MESSAGE && !has_val && vf->msg->wkt == PT_WKT_VALUE)
            put(w, "null");
        else if (!write_value(w, vf, &val))
            return false;
    }
    put(w, "}");
    return true;
}

static void put_key(w_t *w, const pt_pb_fdesc_t *f, bool *first)
{
    if (!*first)
        put(w, ",");
    *first = false;
    if (w->o->proto_names)
        pt_sbuf_put(w->b, f->qname, f->qname_len);
    else
        pt_sbuf_put(w->b, f->qjson, f->qjson_len);
}

/* A field's occurrences o[0..k) (k > 0) as its JSON value. */
static bool write_field(w_t *w, const pt_pb_fdesc_t *f, const occ_t *o, size_t k)
{
    if (f->repeated)
        return f->type == PT_PB_MESSAGE && f->msg->map_entry ? write_map(w, f, o, k) : write_repeated(w, f, o, k);
    if (f->type != PT_PB_MESSAGE || k == 1)
        return write_value(w, f, &o[k - 1].v);
    size_t total = 0; /* a message given more than once: its pieces merge */
    for (size_t i = 0; i < k; i++) {
        if (o[i].v.wt != PT_PB_LEN)
            return fail(w, "field %s has wire type %d", f->name, o[i].v.wt);
        total += o[i].v.n;
    }
    uint8_t *cat = malloc(total ? total : 1);
    if (!cat)
        return fail(w, "out of memory");
    for (size_t i = 0, at = 0; i < k; at += o[i].v.n, i++)
        memcpy(cat + at, o[i].v.p, o[i].v.n);
    bool ok = write_msg(w, f->msg, cat, total, NULL);
    free(cat);
    return ok;
}

/* The occurrences of m's known fields in p, sorted by declaration: *out
 * (malloc'd, NULL when none), how many; -1 when p is not protobuf. */
static long gather(w_t *w, const pt_pb_msg_t *m, const uint8_t *p, size_t n, occ_t **out, occ_t *local,
                   size_t nlocal)
{
    pt_pb_reader_t r = pt_pb_reader(p, n);
    pt_pb_field_t f;
    size_t k = 0;
    int rc;
    while ((rc = pt_pb_next(&r, &f)) > 0)
        k++;
    *out = NULL;
    if (rc < 0) {
        fail(w, "the bytes are not a %s", m->name);
        return -1;
    }
    if (!k)
        return 0;
    occ_t *o = k <= nlocal ? local : malloc(k * sizeof(*o));
    if (!o) {
        fail(w, "out of memory");
        return -1;
    }
    size_t j = 0;
    bool sorted = true;
    r = pt_pb_reader(p, n);
    while (pt_pb_next(&r, &f) > 0) {
        const pt_pb_fdesc_t *fd = pt_pb_msg_field(m, f.num);
        if (!fd)
            continue; /* unknown: not in the JSON */
        o[j] = (occ_t){(uint32_t)(fd - m->f), (uint32_t)j, f};
        sorted &= !j || o[j - 1].fi <= o[j].fi;
        j++;
    }
    if (!sorted) /* a writer's order is usually the declaration's */
        qsort(o, j, sizeof(*o), cmp_occ);
    *out = o;
    return (long)j;
}

static void ungather(occ_t *o, const occ_t *local)
{
    if (o != local)
        free(o);
}

/* Timestamp and Duration: seconds (1) and nanos (2) as text. */
static bool write_time(w_t *w, const pt_pb_msg_t *m, const uint8_t *p, size_t n)
{
    pt_pb_reader_t r = pt_pb_reader(p, n);
    pt_pb_field_t f, last[3] = {{0}};
    int rc;
    while ((rc = pt_pb_next(&r, &f)) > 0)
        if ((f.num == 1 || f.num == 2) && f.wt == PT_PB_VARINT)
            last[f.num] = f;
    if (rc < 0)
        return fail(w, "the bytes are not a %s", m->name);
    char text[48];
    size_t tn = m->wkt == PT_WKT_TIMESTAMP ? pt_wkt_timestamp_fmt((int64_t)last[1].v, (int32_t)(uint32_t)last[2].v, text)
                                           : pt_wkt_duration_fmt((int64_t)last[1].v, (int32_t)(uint32_t)last[2].v, text);
    if (!tn)
        return fail(w, "a %s out of range", m->name);
    pt_json_put_str(w->b, text, tn);
    return true;
}

/* FieldMask: its paths (1) in lowerCamelCase, joined by commas. */
static bool write_mask(w_t *w, const pt_pb_msg_t *m, const uint8_t *p, size_t n)
{
    pt_pb_reader_t r = pt_pb_reader(p, n);
    pt_pb_field_t f;
    int rc;
    pt_sbuf_t mask = {0};
    while ((rc = pt_pb_next(&r, &f)) > 0) {
        if (f.num != 1 || f.wt != PT_PB_LEN)
            continue;
        char *c = malloc(2 * f.n + 1);
        if (!c || !pt_wkt_mask_to_json((const char *)f.p, f.n, c)) {
            free(c);
            free(mask.p);
            return fail(w, "a FieldMask path cannot be written in lowerCamelCase");
        }
        if (mask.n)
            pt_sbuf_put(&mask, ",", 1);
        pt_sbuf_puts(&mask, c);
        free(c);
    }
    if (rc >= 0)
        pt_json_put_str(w->b, mask.p ? mask.p : "", mask.n);
    free(mask.p);
    return rc >= 0 ? true : fail(w, "the bytes are not a %s", m->name);
}

/* Value: whichever of its kinds (1 to 6) came last; none is null. */
static bool write_value_wkt(w_t *w, const pt_pb_msg_t *m, const uint8_t *p, size_t n)
{
    pt_pb_reader_t r = pt_pb_reader(p, n);
    pt_pb_field_t f, last = {0};
    int rc, kind = 0;
    while ((rc = pt_pb_next(&r, &f)) > 0)
        if (f.num >= 1 && f.num <= 6) {
            last = f;
            kind = (int)f.num;
        }
    if (rc < 0)
        return fail(w, "the bytes are not a %s", m->name);
    if (kind == 2 && last.wt == PT_PB_I64) {
        double d;
        memcpy(&d, &last.v, 8);
        if (!isfinite(d))
            return fail(w, "a Value holds %s, which JSON cannot", isnan(d) ? "NaN" : "an infinity");
    }
    if (!kind || kind == 1) {
        put(w, "null");
        return true;
    }
    const pt_pb_fdesc_t *fd = pt_pb_msg_field(m, (uint32_t)kind);
    return fd ? write_value(w, fd, &last) : fail(w, "google.protobuf.Value has no field %d", kind);
}

/* A message of one field (1) whose JSON is that field's: Struct (a map),
 * ListValue (a repeated), the wrappers (a scalar). */
static bool write_field1(w_t *w, const pt_pb_msg_t *m, const uint8_t *p, size_t n)
{
    const pt_pb_fdesc_t *fd = pt_pb_msg_field(m, 1);
    if (!fd)
        return fail(w, "%s has no field 1", m->name);
    occ_t *o, local[16];
    long k = gather(w, m, p, n, &o, local, 16);
    if (k < 0)
        return false;
    bool ok = true;
    if (k)
        ok = write_field(w, fd, o, (size_t)k);
    else if (m->wkt == PT_WKT_STRUCT || m->wkt == PT_WKT_LISTVALUE)
        pt_sbuf_puts(w->b, m->wkt == PT_WKT_STRUCT ? "{}" : "[]");
    else
        write_default(w, fd), ok = !w->failed;
    ungather(o, local);
    return ok;
}

/* The well-known types with their own JSON. */
static bool write_wkt(w_t *w, const pt_pb_msg_t *m, const uint8_t *p, size_t n)
{
    switch (m->wkt) {
    case PT_WKT_TIMESTAMP:
    case PT_WKT_DURATION: return write_time(w, m, p, n);
    case PT_WKT_FIELDMASK: return write_mask(w, m, p, n);
    case PT_WKT_VALUE: return write_value_wkt(w, m, p, n);
    case PT_WKT_EMPTY: put(w, "{}"); return true;
    default: return write_field1(w, m, p, n); /* Struct, ListValue, the wrappers */
    }
}

static bool write_any(w_t *w, const uint8_t *p, size_t n)
{
    pt_pb_reader_t r = pt_pb_reader(p, n);
    pt_pb_field_t f, url = {0}, val = {.p = (const uint8_t *)""};
    int rc;
    while ((rc = pt_pb_next(&r, &f)) > 0) {
        if (f.num == 1 && f.wt == PT_PB_LEN)
            url = f;
        else if (f.num == 2 && f.wt == PT_PB_LEN)
            val = f;
    }
    if (rc < 0)
        return fail(w, "the bytes are not a google.protobuf.Any");
    if (!url.p && !val.n) {
        put(w, "{}");
        return true;
    }
    const char *u = (const char *)url.p, *slash = u ? memrchr(u, '/', url.n) : NULL;
    const pt_pb_msg_t *t = slash && w->o->pool ? pt_pb_pool_msg(w->o->pool, slash + 1, url.n - (size_t)(slash + 1 - u)) : NULL;
    if (!t)
        return fail(w, "an Any holds type %.*s, which is not in the descriptor set", (int)(url.n > 200 ? 200 : url.n),
                    u ? u : "");
    char *tu = strndup(u, url.n);
    if (!tu || memchr(u, '\0', url.n)) {
        free(tu);
        return fail(w, "an Any's type URL holds a NUL byte");
    }
    bool ok;
    if (t->wkt != PT_WKT_NONE) { /* a well-known type, an Any too: its JSON under "value" */
        put(w, "{\"@type\":");
        pt_json_put_str(w->b, tu, url.n);
        put(w, ",\"value\":");
        ok = write_msg(w, t, val.p, val.n, NULL);
        put(w, "}");
    } else {
        ok = write_msg(w, t, val.p, val.n, tu);
    }
    free(tu);
    return ok;
}

/* Occurrences of a packed scalar field that hold no element at all. */
static bool no_elements(const pt_pb_fdesc_t *f, const occ_t *o, size_t k)
{
    if (pt_pb_wire_type(f->type) == PT_PB_LEN)
        return false;
    for (size_t i = 0; i < k; i++)
        if (o[i].v.wt != PT_PB_LEN || o[i].v.n)
            return false;
    return true;
}

static bool write_msg(w_t *w, const pt_pb_msg_t *m, const uint8_t *p, size_t n, const char *type_url)
{
    if (++w->depth > PT_PBJSON_MAX_DEPTH) {
        w->depth--;
        return fail(w, "messages nested more than %d deep", PT_PBJSON_MAX_DEPTH);
    }
    bool ok;
    if (m->wkt == PT_WKT_ANY && !type_url) {
        ok = write_any(w, p, n);
    } else if (m->wkt != PT_WKT_NONE && m->wkt != PT_WKT_ANY && !type_url) {
        ok = write_wkt(w, m, p, n);
    } else {
        occ_t *o, local[32];
        long k = gather(w, m, p, n, &o, local, 32);
        ok = k >= 0;
        put(w, "{");
        bool first = true;
        if (type_url) {
            put(w, "\"@type\":");
            pt_json_put_str(w->b, type_url, strlen(type_url));
            first = false;
        }
        /* a oneof's members: the one last on the wire is the one set */
        int64_t latest[64];
        for (size_t i = 0; i < 64; i++)
            latest[i] = -1;
        for (long i = 0; ok && i < k; i++) {
            int32_t of = m->f[o[i].fi].oneof;
            if (of >= 0 && of < 64 && (int64_t)o[i].seq > latest[of])
                latest[of] = o[i].seq;
        }
        size_t at = 0;
        for (size_t fi = 0; ok && fi < m->nf; fi++) {
            const pt_pb_fdesc_t *f = &m->f[fi];
            size_t start = at;
            while (at < (size_t)k && o[at].fi == fi)
                at++;
            size_t cnt = at - start;
            if (!cnt) {
                if (w->o->emit_defaults && !f->presence) {
                    put_key(w, f, &first);
                    write_default(w, f);
                }
                continue;
            }
            if (!f->repeated && !f->presence && !w->o->emit_defaults && f->type != PT_PB_MESSAGE &&
                o[at - 1].v.wt == pt_pb_wire_type(f->type) && is_default(f, &o[at - 1].v))
                continue;
            if (f->repeated && !w->o->emit_defaults && no_elements(f, o + start, cnt))
                continue; /* empty packed runs only: as absent */
            if (f->oneof >= 0 && f->oneof < 64 && (int64_t)o[at - 1].seq != latest[f->oneof])
                continue; /* another member of its oneof came later */
            put_key(w, f, &first);
            ok = write_field(w, f, o + start, cnt);
        }
        put(w, "}");
        ungather(o, local);
    }
    w->depth--;
    return ok && !w->failed;
}

bool pt_pb_to_json(const pt_pbjson_opts_t *o, const pt_pb_msg_t *m, const uint8_t *p, size_t n, pt_sbuf_t *b,
                   char *err, size_t errlen)
{
    w_t w = {o, b, err, errlen, 0, false};
    bool ok = write_msg(&w, m, p, n, NULL);
    if (ok && b->failed)
        return fail(&w, "out of memory");
    return ok;
}

bool pt_pb_field_to_json(const pt_pbjson_opts_t *o, const pt_pb_msg_t *m, const pt_pb_fdesc_t *f, const uint8_t *p,
                         size_t n, pt_sbuf_t *b, char *err, size_t errlen)
{
    w_t w = {o, b, err, errlen, 0, false};
    occ_t *oc, local[32];
    long k = gather(&w, m, p, n, &oc, local, 32);
    if (k < 0)
        return false;
    size_t start = 0, cnt = 0;
    uint32_t fi = (uint32_t)(f - m->f);
    for (size_t i = 0; i < (size_t)k; i++)
        if (oc[i].fi == fi) {
            if (!cnt)
                start = i;
            cnt++;
        }
    bool ok;
    if (cnt)
        ok = write_field(&w, f, oc + start, cnt);
    else if (f->type == PT_PB_MESSAGE && !f->repeated)
        ok = write_msg(&w, f->msg, (const uint8_t *)"", 0, NULL);
    else
        write_default(&w, f), ok = !w.failed;
    ungather(oc, local);
    if (ok && b->failed)
        return fail(&w, "out of memory");
    return ok;
}

bool pt_pb_any_to_json(const pt_pbjson_opts_t *o, const uint8_t *p, size_t n, pt_sbuf_t *b, char *err, size_t errlen)
{
    w_t w = {o, b, err, errlen, 0, false};
    bool ok = write_any(&w, p, n);
    if (ok && b->failed)
        return fail(&w, "out of memory");
    return ok;
}
