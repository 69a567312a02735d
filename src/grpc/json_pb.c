/* A JSON document (jansson) as protobuf wire bytes (pb_json.h), by the
 * proto3 JSON mapping: a field is named by its JSON name or its proto
 * name; null is the field's default (but for google.protobuf.Value and
 * NullValue); 64-bit integers come as strings or numbers; enums as names
 * or numbers; bytes in base64, standard or URL-safe.  Anything else is
 * refused with a message that names the field, and nothing is written. */
#include "config.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/pb.h"
#include "portico/pb_json.h"

/* Where the encoder is, for a message: kept as pointers and formatted
 * only when something fails (formatting it at each field cost more than
 * the encoding). */
typedef struct step {
    const char *key; /* a field's or a map's key; NULL: an index */
    size_t n;        /* the key's length, or the index */
    bool map;
} step_t;

#define MAX_STEPS 24 /* deeper steps are counted, not kept: a message names the first ones */

typedef struct e {
    const pt_pbjson_opts_t *o;
    char *err;
    size_t errlen;
    step_t steps[MAX_STEPS];
    size_t nsteps; /* may be past MAX_STEPS */
    int depth;
    bool failed;
} e_t;

static bool fail(e_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(e_t *e, const char *fmt, ...)
{
    if (e->failed)
        return false;
    e->failed = true;
    char msg[256], path[200];
    size_t pn = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    path[0] = '\0';
    for (size_t i = 0; i < e->nsteps && i < MAX_STEPS && pn < sizeof(path); i++) {
        const step_t *st = &e->steps[i];
        int k = !st->key ? snprintf(path + pn, sizeof(path) - pn, "[%zu]", st->n)
                : st->map ? snprintf(path + pn, sizeof(path) - pn, "[\"%.*s\"]", (int)(st->n > 40 ? 40 : st->n), st->key)
                          : snprintf(path + pn, sizeof(path) - pn, "%s%.*s", pn ? "." : "", (int)(st->n > 40 ? 40 : st->n),
                                     st->key);
        pn = k > 0 && pn + (size_t)k < sizeof(path) ? pn + (size_t)k : sizeof(path) - 1;
    }
    if (e->nsteps > MAX_STEPS && pn + 4 < sizeof(path))
        memcpy(path + pn, "...", 4);
    if (e->nsteps)
        snprintf(e->err, e->errlen, "%s: %s", path, msg);
    else
        snprintf(e->err, e->errlen, "%s", msg);
    return false;
}

static void push_key(e_t *e, const char *key, size_t n, bool map)
{
    if (e->nsteps < MAX_STEPS)
        e->steps[e->nsteps] = (step_t){key, n, map};
    e->nsteps++;
}

static void push_index(e_t *e, size_t i)
{
    if (e->nsteps < MAX_STEPS)
        e->steps[e->nsteps] = (step_t){NULL, i, false};
    e->nsteps++;
}

static void pop(e_t *e)
{
    e->nsteps--;
}

/* A LEN field written in place: its tag and five bytes for its length,
 * which close_len shrinks to the varint it needs once the value is
 * written (no buffer of its own for each message). */
static size_t open_len(pt_sbuf_t *out, uint32_t num)
{
    pt_pb_put_tag(out, num, PT_PB_LEN);
    size_t at = out->n;
    pt_sbuf_put(out, "\0\0\0\0\0", 5);
    return at;
}

static bool close_len(e_t *e, pt_sbuf_t *out, size_t at)
{
    if (out->failed)
        return fail(e, "out of memory");
    size_t len = out->n - at - 5;
    if (len > UINT32_MAX)
        return fail(e, "a message past 4 GiB");
    uint8_t v[10];
    size_t k = pt_pb_varint_enc(v, len); /* at most 5 bytes: len fits 32 bits */
    memmove(out->p + at + k, out->p + at + 5, len);
    memcpy(out->p + at, v, k);
    out->n -= 5 - k;
    return true;
}

static const char *kind(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

static bool enc_msg(e_t *e, const pt_pb_msg_t *m, json_t *j, pt_sbuf_t *out, bool any_body);

/* ---- scalars ---- */

/* A whole number within [min, max] from an integer, an integral real, or
 * a string of either. */
static bool get_int(e_t *e, json_t *j, int64_t min, uint64_t max, bool is_unsigned, uint64_t *out)
{
    if (json_is_integer(j)) {
        json_int_t v = json_integer_value(j);
        if ((is_unsigned && v < 0) || (!is_unsigned && v < min) || (v >= 0 && (uint64_t)v > max))
            return fail(e, "%lld is out of range", (long long)v);
        *out = (uint64_t)v;
        return true;
    }
    if (json_is_real(j)) {
        double d = json_real_value(j);
        if (d != floor(d) || d < (is_unsigned ? 0 : (double)min) || d >= ldexp(1.0, 64) || d > (double)max ||
            (!is_unsigned && d >= ldexp(1.0, 63)))
            return fail(e, "%g is not a whole number in range", d);
        *out = is_unsigned ? (uint64_t)d : (uint64_t)(int64_t)d;
        return true;
    }
    if (!json_is_string(j))
        return fail(e, "expected a number, got %s", kind(j));
    const char *s = json_string_value(j);
    size_t n = json_string_length(j);
    if (!n || n > 40 || strlen(s) != n || !(s[0] == '-' ? !is_unsigned && s[1] >= '0' && s[1] <= '9' : s[0] >= '0' && s[0] <= '9'))
        return fail(e, "\"%.40s\" is not a whole number", s);
    char *end;
    errno = 0;
    if (is_unsigned) {
        unsigned long long v = strtoull(s, &end, 10);
        if (*end || errno || v > max)
            return fail(e, "\"%s\" is not a whole number in range", s);
        *out = v;
    } else {
        long long v = strtoll(s, &end, 10);
        if (*end || errno || v < min || (v >= 0 && (uint64_t)v > max))
            return fail(e, "\"%s\" is not a whole number in range", s);
        *out = (uint64_t)v;
    }
    return true;
}

static bool get_double(e_t *e, json_t *j, bool is_float, double *out)
{
    if (json_is_integer(j)) {
        *out = (double)json_integer_value(j);
    } else if (json_is_real(j)) {
        *out = json_real_value(j);
    } else if (json_is_string(j)) {
        const char *s = json_string_value(j);
        if (strcmp(s, "NaN") == 0) {
            *out = NAN;
            return true;
        }
        if (strcmp(s, "Infinity") == 0 || strcmp(s, "-Infinity") == 0) {
            *out = s[0] == '-' ? -INFINITY : INFINITY;
            return true;
        }
        char *end;
        errno = 0;
        *out = strtod(s, &end);
        if (!*s || *end || errno || !isfinite(*out) || s[0] == ' ' || s[0] == '+' || strlen(s) != json_string_length(j) ||
            strpbrk(s, "xXnNiI"))
            return fail(e, "\"%.40s\" is not a number", s);
    } else {
        return fail(e, "expected a number, got %s", kind(j));
    }
    if (is_float && isfinite(*out) && fabs(*out) > FLT_MAX)
        return fail(e, "%g is out of range for a float", *out);
    return true;
}

static bool enc_enum(e_t *e, const pt_pb_fdesc_t *f, json_t *j, pt_sbuf_t *out)
{
    int32_t v;
    uint64_t u;
    if (json_is_null(j) && f->en->null_value) {
        pt_pb_put_varint(out, 0);
        return true;
    }
    if (json_is_string(j)) {
        if (!pt_pb_enum_num(f->en, json_string_value(j), json_string_length(j), &v))
            return fail(e, "\"%.64s\" is not a value of %s", json_string_value(j), f->en->name);
    } else {
        if (!json_is_integer(j) || !get_int(e, j, INT32_MIN, INT32_MAX, false, &u))
            return e->failed ? false : fail(e, "expected a name of %s, got %s", f->en->name, kind(j));
        v = (int32_t)(int64_t)u;
    }
    pt_pb_put_varint(out, (uint64_t)(int64_t)v);
    return true;
}

static bool enc_bytes(e_t *e, json_t *j, pt_sbuf_t *out)
{
    if (!json_is_string(j))
        return fail(e, "expected base64 in a string, got %s", kind(j));
    size_t n = json_string_length(j);
    uint8_t *bin = malloc(n / 4 * 3 + 3);
    long k = bin ? pt_wkt_b64_decode(json_string_value(j), n, bin) : -1;
    if (k < 0) {
        free(bin);
        return fail(e, "not base64");
    }
    pt_pb_put_varint(out, (uint64_t)k);
    pt_sbuf_put(out, (const char *)bin, (size_t)k);
    free(bin);
    return true;
}

/* One value of a scalar field (not MESSAGE): its bytes after the tag. */
static bool enc_scalar(e_t *e, const pt_pb_fdesc_t *f, json_t *j, pt_sbuf_t *out)
{
    uint64_t u;
    double d;
    switch (f->type) {
    case PT_PB_DOUBLE:
        if (!get_double(e, j, false, &d))
            return false;
        memcpy(&u, &d, 8);
        pt_pb_put_fixed(out, u, 8);
        return true;
    case PT_PB_FLOAT: {
        if (!get_double(e, j, true, &d))
            return false;
        float x = (float)d;
        uint32_t b;
        memcpy(&b, &x, 4);
        pt_pb_put_fixed(out, b, 4);
        return true;
    }
    case PT_PB_INT64: case PT_PB_SINT64: case PT_PB_SFIXED64:
        if (!get_int(e, j, INT64_MIN, INT64_MAX, false, &u))
            return false;
        if (f->type == PT_PB_SFIXED64)
            pt_pb_put_fixed(out, u, 8);
        else
            pt_pb_put_varint(out, f->type == PT_PB_SINT64 ? pt_pb_zigzag((int64_t)u) : u);
        return true;
    case PT_PB_UINT64: case PT_PB_FIXED64:
        if (!get_int(e, j, 0, UINT64_MAX, true, &u))
            return false;
        if (f->type == PT_PB_FIXED64)
            pt_pb_put_fixed(out, u, 8);
        else
            pt_pb_put_varint(out, u);
        return true;
    case PT_PB_INT32: case PT_PB_SINT32: case PT_PB_SFIXED32:
        if (!get_int(e, j, INT32_MIN, INT32_MAX, false, &u))
            return false;
        if (f->type == PT_PB_SFIXED32)
            pt_pb_put_fixed(out, (uint32_t)(int32_t)(int64_t)u, 4);
        else
            pt_pb_put_varint(out, f->type == PT_PB_SINT32 ? pt_pb_zigzag((int64_t)u) : u);
        return true;
    case PT_PB_UINT32: case PT_PB_FIXED32:
        if (!get_int(e, j, 0, UINT32_MAX, true, &u))
            return false;
        if (f->type == PT_PB_FIXED32)
            pt_pb_put_fixed(out, u, 4);
        else
            pt_pb_put_varint(out, u);
        return true;
    case PT_PB_BOOL:
        if (!json_is_boolean(j))
            return fail(e, "expected true or false, got %s", kind(j));
        pt_pb_put_varint(out, json_is_true(j));
        return true;
    case PT_PB_ENUM:
        return enc_enum(e, f, j, out);
    case PT_PB_STRING:
        if (!json_is_string(j))
            return fail(e, "expected a string, got %s", kind(j));
        pt_pb_put_varint(out, json_string_length(j));
        pt_sbuf_put(out, json_string_value(j), json_string_length(j));
        return true;
    case PT_PB_BYTES:
        return enc_bytes(e, j, out);
    default:
        return fail(e, "a field of an unknown type");
    }
}

/* ---- fields ---- */

/* A message value as a LEN field. */
static bool enc_sub(e_t *e, uint32_t num, const pt_pb_msg_t *m, json_t *j, pt_sbuf_t *out)
{
    size_t at = open_len(out, num);
    return enc_msg(e, m, j, out, false) && close_len(e, out, at);
}

/* One element of field f (a value of a singular field, or an element of
 * a repeated one) with its tag. */
static bool enc_one(e_t *e, const pt_pb_fdesc_t *f, json_t *j, pt_sbuf_t *out)
{
    if (f->type == PT_PB_MESSAGE)
        return enc_sub(e, f->num, f->msg, j, out);
    int wt = pt_pb_wire_type(f->type);
    pt_pb_put_tag(out, f->num, wt);
    return enc_scalar(e, f, j, out);
}

/* A map key (a JSON object's key) as the entry's key field. */
static bool enc_map_key(e_t *e, const pt_pb_fdesc_t *kf, const char *key, size_t klen, pt_sbuf_t *out)
{
    if (kf->type == PT_PB_STRING) {
        pt_pb_put_bytes(out, 1, key, klen);
        return true;
    }
    json_t *k;
    if (kf->type == PT_PB_BOOL) {
        if (!(klen == 4 && !memcmp(key, "true", 4)) && !(klen == 5 && !memcmp(key, "false", 5)))
            return fail(e, "map key \"%.40s\" is not true or false", key);
        k = json_boolean(klen == 4);
    } else {
        k = json_stringn(key, klen); /* an integer key, in a string */
    }
    if (!k)
        return fail(e, "out of memory");
    bool ok = enc_one(e, kf, k, out);
    json_decref(k);
    return ok;
}

static bool enc_map(e_t *e, const pt_pb_fdesc_t *f, json_t *j, pt_sbuf_t *out)
{
    if (!json_is_object(j))
        return fail(e, "expected an object (a map), got %s", kind(j));
    const pt_pb_fdesc_t *kf = pt_pb_msg_field(f->msg, 1), *vf = pt_pb_msg_field(f->msg, 2);
    if (!kf || !vf)
        return fail(e, "map %s has no key or no value", f->name);
    const char *key;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach(j, key, klen, v)
    {
        push_key(e, key, klen, true);
        size_t at = open_len(out, f->num);
        bool ok = enc_map_key(e, kf, key, klen, out);
        if (ok && json_is_null(v) && !(vf->type == PT_PB_MESSAGE && vf->msg->wkt == PT_WKT_VALUE))
            ok = fail(e, "a map value may not be null");
        ok = ok && enc_one(e, vf, v, out) && close_len(e, out, at);
        pop(e);
        if (!ok)
            return false;
    }
    return true;
}

static bool enc_repeated(e_t *e, const pt_pb_fdesc_t *f, json_t *j, pt_sbuf_t *out)
{
    if (!json_is_array(j))
        return fail(e, "expected an array, got %s", kind(j));
    if (!json_array_size(j))
        return true;
    size_t i, at = f->packed ? open_len(out, f->num) : 0;
    json_t *v;
    bool ok = true;
    json_array_foreach(j, i, v)
    {
        push_index(e, i);
        if (json_is_null(v) && !(f->type == PT_PB_MESSAGE && f->msg->wkt == PT_WKT_VALUE))
            ok = fail(e, "an element may not be null");
        else if (f->packed)
            ok = enc_scalar(e, f, v, out);
        else
            ok = enc_one(e, f, v, out);
        pop(e);
        if (!ok)
            return false;
    }
    return !f->packed || close_len(e, out, at);
}

/* Field f from j: null is its default (nothing written), but for Value
 * and NullValue. */
static bool enc_field(e_t *e, const pt_pb_fdesc_t *f, json_t *j, pt_sbuf_t *out)
{
    if (json_is_null(j) && !(f->type == PT_PB_MESSAGE && f->msg->wkt == PT_WKT_VALUE && !f->repeated) &&
        !(f->type == PT_PB_ENUM && f->en->null_value && !f->repeated))
        return true;
    if (f->repeated)
        return f->type == PT_PB_MESSAGE && f->msg->map_entry ? enc_map(e, f, j, out) : enc_repeated(e, f, j, out);
    return enc_one(e, f, j, out);
}

/* ---- the well-known types ---- */

static bool enc_value(e_t *e, json_t *j, pt_sbuf_t *out);

/* Messages nested: Value, Struct, a map's entry and ListValue count as
 * the writer counts them, so that what is encoded can be written back. */
static bool deeper(e_t *e, int by)
{
    if (e->depth + by > PT_PBJSON_MAX_DEPTH)
        return fail(e, "nested more than %d deep", PT_PBJSON_MAX_DEPTH);
    e->depth += by; /* the caller takes it back when it returns */
    return true;
}

static bool enc_struct(e_t *e, json_t *j, pt_sbuf_t *out)
{
    if (!json_is_object(j))
        return fail(e, "expected an object (a Struct), got %s", kind(j));
    if (!deeper(e, 2)) /* the Struct, and its entries */
        return false;
    const char *key;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach(j, key, klen, v)
    {
        push_key(e, key, klen, false);
        size_t at = open_len(out, 1);
        pt_pb_put_bytes(out, 1, key, klen);
        size_t vat = open_len(out, 2);
        bool ok = enc_value(e, v, out) && close_len(e, out, vat) && close_len(e, out, at);
        pop(e);
        if (!ok) {
            e->depth -= 2;
            return false;
        }
    }
    e->depth -= 2;
    return true;
}

static bool enc_list(e_t *e, json_t *j, pt_sbuf_t *out)
{
    if (!json_is_array(j))
        return fail(e, "expected an array (a ListValue), got %s", kind(j));
    if (!deeper(e, 1))
        return false;
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v)
    {
        push_index(e, i);
        size_t at = open_len(out, 1);
        bool ok = enc_value(e, v, out) && close_len(e, out, at);
        pop(e);
        if (!ok) {
            e->depth--;
            return false;
        }
    }
    e->depth--;
    return true;
}

/* google.protobuf.Value: any JSON. */
static bool enc_value(e_t *e, json_t *j, pt_sbuf_t *out)
{
    if (!deeper(e, 1))
        return false;
    bool ok = true;
    size_t at;
    switch (json_typeof(j)) {
    case JSON_NULL:
        pt_pb_put_tag(out, 1, PT_PB_VARINT);
        pt_pb_put_varint(out, 0);
        break;
    case JSON_INTEGER:
    case JSON_REAL: {
        double d = json_is_integer(j) ? (double)json_integer_value(j) : json_real_value(j);
        uint64_t u;
        memcpy(&u, &d, 8);
        pt_pb_put_tag(out, 2, PT_PB_I64);
        pt_pb_put_fixed(out, u, 8);
        break;
    }
    case JSON_STRING:
        pt_pb_put_bytes(out, 3, json_string_value(j), json_string_length(j));
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        pt_pb_put_tag(out, 4, PT_PB_VARINT);
        pt_pb_put_varint(out, json_is_true(j));
        break;
    case JSON_OBJECT:
        at = open_len(out, 5);
        ok = enc_struct(e, j, out) && close_len(e, out, at);
        break;
    case JSON_ARRAY:
        at = open_len(out, 6);
        ok = enc_list(e, j, out) && close_len(e, out, at);
        break;
    }
    e->depth--;
    return ok;
}

static bool enc_time(e_t *e, const pt_pb_msg_t *m, json_t *j, pt_sbuf_t *out)
{
    int64_t secs;
    int32_t nanos;
    bool ts = m->wkt == PT_WKT_TIMESTAMP;
    if (!json_is_string(j))
        return fail(e, "expected a %s in a string, got %s", ts ? "timestamp" : "duration", kind(j));
    const char *s = json_string_value(j);
    size_t n = json_string_length(j);
    if (!(ts ? pt_wkt_timestamp_parse(s, n, &secs, &nanos) : pt_wkt_duration_parse(s, n, &secs, &nanos)))
        return fail(e, ts ? "\"%.40s\" is not an RFC 3339 time from year 1 to 9999"
                          : "\"%.40s\" is not a duration such as \"1.5s\" within 10,000 years", s);
    if (secs) {
        pt_pb_put_tag(out, 1, PT_PB_VARINT);
        pt_pb_put_varint(out, (uint64_t)secs);
    }
    if (nanos) {
        pt_pb_put_tag(out, 2, PT_PB_VARINT);
        pt_pb_put_varint(out, (uint64_t)(int64_t)nanos);
    }
    return true;
}

static bool enc_mask(e_t *e, json_t *j, pt_sbuf_t *out)
{
    if (!json_is_string(j))
        return fail(e, "expected a field mask in a string, got %s", kind(j));
    const char *s = json_string_value(j);
    size_t n = json_string_length(j);
    char *path = malloc(2 * n + 1);
    if (!path)
        return fail(e, "out of memory");
    for (size_t i = 0; n && i <= n;) {
        size_t k = i;
        while (k < n && s[k] != ',')
            k++;
        if (k == i || !pt_wkt_mask_from_json(s + i, k - i, path)) {
            free(path);
            return fail(e, "\"%.40s\" is not a list of lowerCamelCase paths", s);
        }
        pt_pb_put_bytes(out, 1, path, strlen(path));
        i = k + 1;
    }
    free(path);
    return true;
}

static bool enc_any(e_t *e, json_t *j, pt_sbuf_t *out)
{
    if (!json_is_object(j))
        return fail(e, "expected an object (an Any), got %s", kind(j));
    if (!json_object_size(j))
        return true;
    json_t *t = json_object_get(j, "@type");
    if (!json_is_string(t))
        return fail(e, "an Any needs \"@type\"");
    const char *url = json_string_value(t), *slash = strrchr(url, '/');
    const pt_pb_msg_t *m = slash && e->o->pool ? pt_pb_pool_msg(e->o->pool, slash + 1, strlen(slash + 1)) : NULL;
    if (!m)
        return fail(e, "an Any's type %.100s is not in the descriptor set", url);
    pt_pb_put_bytes(out, 1, url, strlen(url));
    size_t at = open_len(out, 2);
    bool ok;
    if (m->wkt != PT_WKT_NONE) { /* a well-known type, an Any too: its JSON under "value" */
        json_t *v = json_object_get(j, "value");
        if (!v || json_object_size(j) != 2)
            ok = fail(e, "an Any of a well-known type has \"@type\" and \"value\" only");
        else
            ok = enc_msg(e, m, v, out, false);
    } else {
        ok = enc_msg(e, m, j, out, true);
    }
    return ok && close_len(e, out, at);
}

static bool enc_wkt(e_t *e, const pt_pb_msg_t *m, json_t *j, pt_sbuf_t *out)
{
    switch (m->wkt) {
    case PT_WKT_ANY: return enc_any(e, j, out);
    case PT_WKT_TIMESTAMP:
    case PT_WKT_DURATION: return enc_time(e, m, j, out);
    case PT_WKT_FIELDMASK: return enc_mask(e, j, out);
    case PT_WKT_STRUCT: return enc_struct(e, j, out);
    case PT_WKT_VALUE: return enc_value(e, j, out);
    case PT_WKT_LISTVALUE: return enc_list(e, j, out);
    case PT_WKT_EMPTY:
        if (!json_is_object(j) || json_object_size(j))
            return fail(e, "expected {} (google.protobuf.Empty), got %s", kind(j));
        return true;
    default: { /* a wrapper: its value, as field 1 */
        const pt_pb_fdesc_t *f = pt_pb_msg_field(m, 1);
        if (!f)
            return fail(e, "%s has no field 1", m->name);
        return enc_one(e, f, j, out);
    }
    }
}

static bool enc_msg(e_t *e, const pt_pb_msg_t *m, json_t *j, pt_sbuf_t *out, bool any_body)
{
    if (!deeper(e, 1))
        return false;
    bool ok = true;
    if (m->wkt != PT_WKT_NONE && !any_body) {
        ok = enc_wkt(e, m, j, out);
    } else if (!json_is_object(j)) {
        ok = fail(e, "expected an object (%s), got %s", m->name, kind(j));
    } else {
        const char *key;
        size_t klen;
        json_t *v;
        uint64_t oneofs = 0, seen[8] = {0}; /* fields past the 512th are not checked for twice */
        json_object_keylen_foreach(j, key, klen, v)
        {
            if (any_body && strcmp(key, "@type") == 0)
                continue;
            const pt_pb_fdesc_t *f = pt_pb_msg_field_named(m, key, klen);
            size_t fi = f ? (size_t)(f - m->f) : 0;
            push_key(e, key, klen, false);
            if (!f) {
                ok = fail(e, "no such field in %s", m->name);
            } else if (fi < 512 && (seen[fi / 64] & (1ull << (fi % 64)))) {
                ok = fail(e, "the field is given twice (by its JSON name and its proto name)");
            } else if (f->oneof >= 0 && f->oneof < 64 && !json_is_null(v)) {
                if (oneofs & (1ull << f->oneof))
                    ok = fail(e, "a second field of the same oneof");
                oneofs |= 1ull << f->oneof;
            }
            if (ok && fi < 512)
                seen[fi / 64] |= 1ull << (fi % 64);
            ok = ok && enc_field(e, f, v, out);
            pop(e);
            if (!ok)
                break;
        }
    }
    e->depth--;
    return ok;
}

bool pt_json_to_pb(const pt_pbjson_opts_t *o, const pt_pb_msg_t *m, json_t *j, pt_sbuf_t *out, char *err,
                   size_t errlen)
{
    e_t e = {.o = o, .err = err, .errlen = errlen};
    bool ok = enc_msg(&e, m, j, out, false);
    return ok && out->failed ? fail(&e, "out of memory") : ok;
}

/* The fields before the last are messages: each wraps what follows. */
static bool enc_nested(e_t *e, const pt_pb_fdesc_t *const *fs, size_t nf, json_t *j, const char *text, size_t tn,
                       pt_sbuf_t *out)
{
    const pt_pb_fdesc_t *f = fs[0];
    push_key(e, f->name, strlen(f->name), false);
    bool ok;
    if (nf > 1) {
        size_t at = open_len(out, f->num);
        ok = enc_nested(e, fs + 1, nf - 1, j, text, tn, out) && close_len(e, out, at);
    } else if (j) {
        ok = enc_field(e, f, j, out);
    } else {
        /* text: a string field takes it as it is; others read it as JSON
         * would have it (a number, true, an enum's name, a time) */
        const pt_pb_msg_t *wm = f->type == PT_PB_MESSAGE ? f->msg : NULL;
        json_t *v;
        char *end = NULL;
        long long num = tn && tn < 12 && (text[0] == '-' || (text[0] >= '0' && text[0] <= '9')) ? strtoll(text, &end, 10) : 0;
        if (f->type == PT_PB_ENUM && tn && tn < 12 && end == text + tn)
            v = json_integer(num); /* an enum by its number */
        else if (f->type == PT_PB_BOOL || (wm && wm->wkt == PT_WKT_BOOL))
            v = tn == 4 && !memcmp(text, "true", 4)    ? json_true()
                : tn == 5 && !memcmp(text, "false", 5) ? json_false()
                                                       : json_stringn(text, tn);
        else
            v = json_stringn(text, tn);
        ok = v ? enc_one(e, f, v, out) : fail(e, "not UTF-8");
        json_decref(v);
    }
    pop(e);
    return ok;
}

bool pt_json_field_to_pb(const pt_pbjson_opts_t *o, const pt_pb_fdesc_t *const *fs, size_t nf, json_t *j,
                         pt_sbuf_t *out, char *err, size_t errlen)
{
    e_t e = {.o = o, .err = err, .errlen = errlen};
    return enc_nested(&e, fs, nf, j, NULL, 0, out);
}

bool pt_text_field_to_pb(const pt_pb_fdesc_t *const *fs, size_t nf, const char *v, size_t vn, pt_sbuf_t *out,
                         char *err, size_t errlen)
{
    pt_pbjson_opts_t o = {0};
    e_t e = {.o = &o, .err = err, .errlen = errlen};
    return enc_nested(&e, fs, nf, NULL, v, vn, out);
}
