/* The disk tier's file header (cache_disk_file.h): a header read back is
 * the one written, every field that cannot be is refused, and file names
 * tell apart the ways to split the same bytes into key and variant. */
#include "config.h"

#include <string.h>

#include "../unit/tap.h"
#include "portico/cache_disk_file.h"

#define MAX (8u << 20)

static pt_cdf_t sample(void)
{
    return (pt_cdf_t){.key_len = 24, .names_len = 15, .values_len = 6, .data_len = 1000,
                      .meta = {.request_time_ms = 1796169600123, .response_time_ms = 1796169600456,
                               .date_s = 1796169600, .age_s = 7, .lifetime_ms = 3600000, .swr_ms = 60000,
                               .sie_ms = 1, .flags = 0x2a5, .status = 200, .head_len = 300, .body_len = 700}};
}

/* A header written from f, with one change made by fn, read back. */
static bool reads(pt_cdf_t f, uint64_t max, pt_cdf_t *out)
{
    unsigned char h[PT_CDF_HEADER];
    pt_cdf_encode(&f, h);
    return pt_cdf_decode(h, sizeof(h), max, out);
}

static void round_trip(void)
{
    pt_cdf_t f = sample(), g;
    ok(reads(f, MAX, &g), "a header written is read back");
    const pt_cache_meta_t *a = &f.meta, *b = &g.meta;
    ok(a->request_time_ms == b->request_time_ms && a->response_time_ms == b->response_time_ms &&
           a->date_s == b->date_s && a->age_s == b->age_s && a->lifetime_ms == b->lifetime_ms &&
           a->swr_ms == b->swr_ms && a->sie_ms == b->sie_ms && a->flags == b->flags && a->status == b->status &&
           a->head_len == b->head_len && a->body_len == b->body_len,
       "its metadata is the same, field by field");
    is_int(g.key_len, 24, "key length");
    is_int(g.names_len, 15, "names length");
    is_int(g.values_len, 6, "values length");
    is_int(g.data_len, 1000, "data length");
    is_int(pt_cdf_file_size(&g), PT_CDF_HEADER + 24 + 15 + 6 + 1000, "the file's size adds the parts");
    f.names_len = f.values_len = 0;
    ok(reads(f, MAX, &g) && g.names_len == 0, "an object that does not vary");
    f = sample();
    f.data_len = f.meta.head_len = 1;
    f.meta.body_len = 0;
    ok(reads(f, MAX, &g) && g.meta.body_len == 0, "an empty body");
    f = sample();
    f.data_len = MAX;
    f.meta.body_len = MAX - f.meta.head_len;
    ok(reads(f, MAX, &g), "a body of max_object_size");
}

static void refused(void)
{
    pt_cdf_t f, g;
    unsigned char h[PT_CDF_HEADER];
    f = sample();
    pt_cdf_encode(&f, h);
    ok(!pt_cdf_decode(h, PT_CDF_HEADER - 1, MAX, &g), "a header cut short");
    h[0] = 'X';
    ok(!pt_cdf_decode(h, sizeof(h), MAX, &g), "another magic");
    pt_cdf_encode(&f, h);
    h[4] = 2;
    ok(!pt_cdf_decode(h, sizeof(h), MAX, &g), "another version");
    f = sample(); f.key_len = 0;
    ok(!reads(f, MAX, &g), "an empty key");
    f = sample(); f.key_len = PT_CACHE_KEY_MAX + 1;
    ok(!reads(f, MAX, &g), "a key longer than the store takes");
    f = sample(); f.names_len = PT_CACHE_VARIANT_MAX + 1;
    ok(!reads(f, MAX, &g), "Vary names longer than the store takes");
    f = sample(); f.values_len = 0;
    ok(!reads(f, MAX, &g), "names without a variant");
    f = sample(); f.names_len = 0;
    ok(!reads(f, MAX, &g), "a variant without names");
    f = sample(); f.meta.status = 199;
    ok(!reads(f, MAX, &g), "a 1xx status");
    f = sample(); f.meta.status = 600;
    ok(!reads(f, MAX, &g), "a status past 599");
    f = sample(); f.meta.head_len = 0;
    ok(!reads(f, MAX, &g), "no head");
    f = sample(); f.meta.head_len = 1001;
    ok(!reads(f, MAX, &g), "a head longer than the data");
    f = sample(); f.data_len = MAX + 1;
    ok(!reads(f, MAX, &g), "data past max_object_size");
    f = sample(); f.meta.lifetime_ms = -1;
    ok(!reads(f, MAX, &g), "a negative lifetime");
    f = sample(); f.meta.age_s = -5;
    ok(!reads(f, MAX, &g), "a negative age");
    f = sample(); f.meta.swr_ms = -1;
    ok(!reads(f, MAX, &g), "a negative stale-while-revalidate");
}

static void names(void)
{
    char a[PT_CDF_NAME_LEN + 1], b[PT_CDF_NAME_LEN + 1];
    ok(pt_cdf_name(PT_STR("http://e/a?"), PT_STR(""), PT_STR(""), a), "a name is made");
    is_int(strlen(a), PT_CDF_NAME_LEN, "of 32 characters");
    is_int(strspn(a, "0123456789abcdef"), PT_CDF_NAME_LEN, "in lowercase hex");
    ok(pt_cdf_name(PT_STR("http://e/a?"), PT_STR(""), PT_STR(""), b) && !strcmp(a, b), "the same object, the same name");
    ok(pt_cdf_name(PT_STR("http://e/a"), PT_STR("?"), PT_STR(""), b) && strcmp(a, b) != 0,
       "the same bytes split otherwise, another name");
    ok(pt_cdf_name(PT_STR("k"), PT_STR("accept"), PT_STR("en"), a) &&
           pt_cdf_name(PT_STR("k"), PT_STR("accept"), PT_STR("fr"), b) && strcmp(a, b) != 0,
       "each variant its own name");
    char big[5000];
    memset(big, 'k', sizeof(big));
    ok(pt_cdf_name((pt_str_t){big, sizeof(big)}, PT_STR(""), PT_STR(""), a), "a long key (past the stack buffer)");
}

int main(void)
{
    round_trip();
    refused();
    names();
    printf("1..%d\n", tap_n);
    return tap_failed != 0;
}
