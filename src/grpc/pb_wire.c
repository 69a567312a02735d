/* The protobuf wire format (pb.h). */
#include "config.h"

#include "portico/pb.h"

bool pt_pb_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    const uint8_t *p = *pp;
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (p == end)
            return false;
        uint8_t b = *p++;
        if (shift == 63 && (b & 0x7e))
            return false; /* past 64 bits */
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            *pp = p;
            return true;
        }
    }
    return false;
}

int pt_pb_next(pt_pb_reader_t *r, pt_pb_field_t *f)
{
    if (r->p == r->end)
        return 0;
    uint64_t tag;
    if (!pt_pb_varint(&r->p, r->end, &tag) || tag >> 3 == 0 || tag >> 3 > PT_PB_MAX_FIELD)
        return -1;
    f->num = (uint32_t)(tag >> 3);
    f->wt = (int)(tag & 7);
    f->p = NULL;
    f->n = 0;
    f->v = 0;
    switch (f->wt) {
    case PT_PB_VARINT:
        return pt_pb_varint(&r->p, r->end, &f->v) ? 1 : -1;
    case PT_PB_I64:
    case PT_PB_I32: {
        size_t k = f->wt == PT_PB_I64 ? 8 : 4;
        if ((size_t)(r->end - r->p) < k)
            return -1;
        for (size_t i = 0; i < k; i++)
            f->v |= (uint64_t)r->p[i] << (8 * i);
        r->p += k;
        return 1;
    }
    case PT_PB_LEN: {
        uint64_t n;
        if (!pt_pb_varint(&r->p, r->end, &n) || n > (uint64_t)(r->end - r->p))
            return -1;
        f->p = r->p;
        f->n = (size_t)n;
        r->p += n;
        return 1;
    }
    default:
        return -1;
    }
}

size_t pt_pb_varint_enc(uint8_t out[10], uint64_t v)
{
    size_t n = 0;
    do {
        out[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            out[n] |= 0x80;
        n++;
    } while (v);
    return n;
}

void pt_pb_put_varint(pt_sbuf_t *b, uint64_t v)
{
    uint8_t d[10];
    pt_sbuf_put(b, (const char *)d, pt_pb_varint_enc(d, v));
}

void pt_pb_put_tag(pt_sbuf_t *b, uint32_t num, int wt)
{
    pt_pb_put_varint(b, (uint64_t)num << 3 | (uint64_t)wt);
}

void pt_pb_put_fixed(pt_sbuf_t *b, uint64_t v, int bytes)
{
    char d[8];
    for (int i = 0; i < bytes; i++)
        d[i] = (char)(v >> (8 * i));
    pt_sbuf_put(b, d, (size_t)bytes);
}

void pt_pb_put_bytes(pt_sbuf_t *b, uint32_t num, const void *p, size_t n)
{
    pt_pb_put_tag(b, num, PT_PB_LEN);
    pt_pb_put_varint(b, n);
    pt_sbuf_put(b, p, n);
}
