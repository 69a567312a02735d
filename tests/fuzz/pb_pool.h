/* The descriptor set the transcoder's fuzz targets use: library.proto of
 * the integration tests (tests/integ/protos), made with
 *   protoc -Itests/integ/protos -I/usr/include --include_imports \
 *     --descriptor_set_out=tests/fuzz/corpus/transcode.pb \
 *     library.proto google/api/http.proto google/api/annotations.proto
 * and the message a fuzz input picks by its first byte. */
#ifndef PT_FUZZ_PB_POOL_H
#define PT_FUZZ_PB_POOL_H

#include <stdio.h>
#include <stdlib.h>

#include "portico/assert.h"
#include "portico/pb_desc.h"

static const char *const fuzz_types[] = {
    "library.v1.Everything", "library.v1.Book", "library.v1.ListBooksRequest", "library.v1.UpdateBookRequest",
    "google.protobuf.Struct", "google.protobuf.Any", "google.protobuf.Value", "google.protobuf.Timestamp",
};

static const pt_pb_pool_t *fuzz_pool(void)
{
    static pt_pb_pool_t *pool;
    if (pool)
        return pool;
    FILE *f = fopen(PT_FUZZ_DESCRIPTOR, "rb");
    PT_ASSERT(f);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    char err[256];
    pool = pt_pb_pool_load(buf, n, err, sizeof(err));
    if (!pool)
        fprintf(stderr, "%s: %s\n", PT_FUZZ_DESCRIPTOR, err);
    PT_ASSERT(pool);
    return pool;
}

static const pt_pb_msg_t *fuzz_type(unsigned char pick)
{
    const char *name = fuzz_types[pick % (sizeof(fuzz_types) / sizeof(fuzz_types[0]))];
    const pt_pb_msg_t *m = pt_pb_pool_msg(fuzz_pool(), name, strlen(name));
    PT_ASSERT(m);
    return m;
}

#endif
