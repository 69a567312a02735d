/* libFuzzer target: the disk tier's file header (cache_disk_file.h) over
 * any bytes, as a file read back from a disk that may hold anything.
 * Invariants checked: no crash; a header accepted has lengths within what
 * the store takes and a head within its data, and writing it again gives
 * a header that reads back to the same fields (a round trip); the file
 * size it names is at least its parts. */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "portico/assert.h"
#include "portico/cache_disk_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t max = size ? (uint64_t)data[size - 1] << 16 : 0; /* the last byte picks max_object_size */
    pt_cdf_t f, g;
    if (!pt_cdf_decode(data, size, max, &f))
        return 0;
    PT_ASSERT(f.key_len >= 1 && f.key_len <= PT_CACHE_KEY_MAX);
    PT_ASSERT(f.names_len <= PT_CACHE_VARIANT_MAX && f.values_len <= PT_CACHE_VARIANT_MAX);
    PT_ASSERT(f.meta.head_len >= 1 && f.meta.head_len <= f.data_len && f.data_len <= max);
    PT_ASSERT(f.meta.body_len == f.data_len - f.meta.head_len);
    PT_ASSERT(f.meta.status >= 200 && f.meta.status <= 599);
    PT_ASSERT(pt_cdf_file_size(&f) >= PT_CDF_HEADER + f.data_len);
    unsigned char h[PT_CDF_HEADER];
    pt_cdf_encode(&f, h);
    PT_ASSERT(pt_cdf_decode(h, sizeof(h), max, &g));
    PT_ASSERT(g.key_len == f.key_len && g.data_len == f.data_len && g.names_len == f.names_len);
    PT_ASSERT(g.meta.lifetime_ms == f.meta.lifetime_ms && g.meta.head_len == f.meta.head_len &&
              g.meta.flags == f.meta.flags && g.meta.request_time_ms == f.meta.request_time_ms &&
              g.meta.response_time_ms == f.meta.response_time_ms && g.meta.date_s == f.meta.date_s &&
              g.meta.age_s == f.meta.age_s && g.meta.swr_ms == f.meta.swr_ms && g.meta.sie_ms == f.meta.sie_ms &&
              g.meta.status == f.meta.status && g.values_len == f.values_len);
    return 0;
}
