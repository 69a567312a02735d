/* libFuzzer target: the JSON-to-protobuf encoder.  The first byte picks
 * the message type; the rest is JSON (parsed by jansson as the transcoder
 * parses a request body).  Invariants when it encodes: the bytes are
 * protobuf the reader takes whole, they write as JSON, and that JSON
 * encodes and writes again to the same JSON. */
#include "config.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pb_pool.h"
#include "portico/pb.h"
#include "portico/pb_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const pt_pb_msg_t *m = fuzz_type(data[0]);
    pt_pbjson_opts_t o = {fuzz_pool(), false, false, false};
    json_error_t je;
    json_t *doc = json_loadb((const char *)data + 1, size - 1,
                             JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &je);
    if (!doc)
        return 0;
    char err[256];
    pt_sbuf_t pb = {0}, j2 = {0}, pb2 = {0}, j3 = {0};
    if (pt_json_to_pb(&o, m, doc, &pb, err, sizeof(err))) {
        pt_pb_reader_t r = pt_pb_reader(pb.p, pb.n);
        pt_pb_field_t f;
        int k;
        while ((k = pt_pb_next(&r, &f)) > 0)
            ;
        PT_ASSERT(k == 0);
        bool w = pt_pb_to_json(&o, m, (const uint8_t *)pb.p, pb.n, &j2, err, sizeof(err));
        if (!w)
            fprintf(stderr, "encoded, but does not write (%s): %.*s\n", err, (int)size - 1, (const char *)data + 1);
        PT_ASSERT(w);
        json_t *d2 = json_loadb(j2.p, j2.n, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &je);
        if (!d2)
            fprintf(stderr, "not JSON (%s): %.*s\n", je.text, (int)j2.n, j2.p);
        PT_ASSERT(d2);
        PT_ASSERT(pt_json_to_pb(&o, m, d2, &pb2, err, sizeof(err)));
        PT_ASSERT(pt_pb_to_json(&o, m, (const uint8_t *)pb2.p, pb2.n, &j3, err, sizeof(err)));
        if (j2.n != j3.n || memcmp(j2.p, j3.p, j2.n) != 0)
            fprintf(stderr, "not the same:\n%.*s\n%.*s\n", (int)j2.n, j2.p, (int)j3.n, j3.p);
        PT_ASSERT(j2.n == j3.n && memcmp(j2.p, j3.p, j2.n) == 0);
        json_decref(d2);
    }
    json_decref(doc);
    free(pb.p);
    free(j2.p);
    free(pb2.p);
    free(j3.p);
    return 0;
}
