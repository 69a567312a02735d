/* libFuzzer target: the protobuf wire reader, as the descriptor-set loader
 * and as the JSON writer of upstream messages.  The first byte picks: even,
 * the rest is loaded as a FileDescriptorSet (any outcome, no crash, no
 * leak); odd, the rest is a message of the type byte 1 picks, written as
 * JSON.  Invariants when it is written: the JSON parses (jansson), reads
 * back as the same type, and that message writes the same JSON again. */
#include "config.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pb_pool.h"
#include "portico/pb_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    char err[256];
    if (!(data[0] & 1)) {
        pt_pb_pool_free(pt_pb_pool_load(data + 1, size - 1, err, sizeof(err)));
        return 0;
    }
    const pt_pb_msg_t *m = fuzz_type(data[1]);
    pt_pbjson_opts_t o = {fuzz_pool(), (data[0] & 2) != 0, (data[0] & 4) != 0, (data[0] & 8) != 0};
    pt_sbuf_t j1 = {0}, pb = {0}, j2 = {0};
    if (pt_pb_to_json(&o, m, data + 2, size - 2, &j1, err, sizeof(err))) {
        json_error_t je;
        json_t *doc = json_loadb(j1.p, j1.n, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &je);
        if (!doc && (strstr(je.text, "duplicate") || strstr(je.text, "NUL byte in object key")))
            goto out; /* a map key twice on the wire (JSON cannot say it), or a key jansson does not take */
        if (!doc)
            fprintf(stderr, "not JSON (%s): %.*s\n", je.text, (int)j1.n, j1.p);
        PT_ASSERT(doc);
        bool back = pt_json_to_pb(&o, m, doc, &pb, err, sizeof(err));
        if (!back)
            fprintf(stderr, "does not read back (%s): %.*s\n", err, (int)j1.n, j1.p);
        PT_ASSERT(back);
        PT_ASSERT(pt_pb_to_json(&o, m, (const uint8_t *)pb.p, pb.n, &j2, err, sizeof(err)));
        if (j1.n != j2.n || memcmp(j1.p, j2.p, j1.n) != 0)
            fprintf(stderr, "not the same:\n%.*s\n%.*s\n", (int)j1.n, j1.p, (int)j2.n, j2.p);
        PT_ASSERT(j1.n == j2.n && memcmp(j1.p, j2.p, j1.n) == 0);
        json_decref(doc);
    }
out:
    free(j1.p);
    free(pb.p);
    free(j2.p);
    return 0;
}
