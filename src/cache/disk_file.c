/* The disk tier's file header (cache_disk_file.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "portico/cache_disk_file.h"
#include "portico/digest.h"

static const unsigned char MAGIC[4] = {'P', 'T', 'C', 'D'};

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* The header's fields: magic 0, version 4, key 8, names 12, values 16,
 * data 20, then the metadata: request_time 28, response_time 36, date 44,
 * age 52, lifetime 60, swr 68, sie 76, flags 84, status 88 (32 bits),
 * head_len 92; the body's length is data - head_len. */
void pt_cdf_encode(const pt_cdf_t *f, unsigned char out[PT_CDF_HEADER])
{
    const pt_cache_meta_t *m = &f->meta;
    memcpy(out, MAGIC, 4);
    put32(out + 4, PT_CDF_VERSION);
    put32(out + 8, f->key_len);
    put32(out + 12, f->names_len);
    put32(out + 16, f->values_len);
    put64(out + 20, f->data_len);
    put64(out + 28, (uint64_t)m->request_time_ms);
    put64(out + 36, (uint64_t)m->response_time_ms);
    put64(out + 44, (uint64_t)m->date_s);
    put64(out + 52, (uint64_t)m->age_s);
    put64(out + 60, (uint64_t)m->lifetime_ms);
    put64(out + 68, (uint64_t)m->swr_ms);
    put64(out + 76, (uint64_t)m->sie_ms);
    put32(out + 84, m->flags);
    put32(out + 88, m->status);
    put32(out + 92, m->head_len);
}

bool pt_cdf_decode(const unsigned char *p, size_t n, uint64_t max_size, pt_cdf_t *f)
{
    if (n < PT_CDF_HEADER || memcmp(p, MAGIC, 4) != 0 || get32(p + 4) != PT_CDF_VERSION)
        return false;
    *f = (pt_cdf_t){.key_len = get32(p + 8), .names_len = get32(p + 12), .values_len = get32(p + 16),
                    .data_len = get64(p + 20)};
    pt_cache_meta_t *m = &f->meta;
    m->request_time_ms = (int64_t)get64(p + 28);
    m->response_time_ms = (int64_t)get64(p + 36);
    m->date_s = (int64_t)get64(p + 44);
    m->age_s = (int64_t)get64(p + 52);
    m->lifetime_ms = (int64_t)get64(p + 60);
    m->swr_ms = (int64_t)get64(p + 68);
    m->sie_ms = (int64_t)get64(p + 76);
    m->flags = get32(p + 84);
    uint32_t status = get32(p + 88);
    m->head_len = get32(p + 92);
    if (!f->key_len || f->key_len > PT_CACHE_KEY_MAX || f->names_len > PT_CACHE_VARIANT_MAX ||
        f->values_len > PT_CACHE_VARIANT_MAX || (f->names_len == 0) != (f->values_len == 0) || status < 200 ||
        status > 599 || m->head_len == 0 || m->head_len > f->data_len || f->data_len > max_size ||
        m->age_s < 0 || m->lifetime_ms < 0 || m->swr_ms < 0 || m->sie_ms < 0)
        return false;
    m->status = (uint16_t)status;
    m->body_len = f->data_len - m->head_len;
    return pt_cdf_file_size(f) <= max_size + PT_CDF_HEADER + 3 * (uint64_t)PT_CACHE_KEY_MAX;
}

uint64_t pt_cdf_file_size(const pt_cdf_t *f)
{
    return PT_CDF_HEADER + (uint64_t)f->key_len + f->names_len + f->values_len + f->data_len;
}

bool pt_cdf_name(pt_str_t key, pt_str_t names, pt_str_t values, char out[PT_CDF_NAME_LEN + 1])
{
    /* the three parts with their lengths, so that no two splits of the
     * same bytes make the same name */
    size_t n = 24 + key.n + names.n + values.n;
    unsigned char stack[512], *buf = n <= sizeof(stack) ? stack : malloc(n);
    unsigned char d[32];
    if (!buf)
        return false;
    put64(buf, key.n);
    put64(buf + 8, names.n);
    put64(buf + 16, values.n);
    memcpy(buf + 24, key.p, key.n);
    if (names.n)
        memcpy(buf + 24 + key.n, names.p, names.n);
    if (values.n)
        memcpy(buf + 24 + key.n + names.n, values.p, values.n);
    bool ok = pt_sha256(buf, n, d);
    if (buf != stack)
        free(buf);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < PT_CDF_NAME_LEN / 2; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[PT_CDF_NAME_LEN] = 0;
    return ok;
}
