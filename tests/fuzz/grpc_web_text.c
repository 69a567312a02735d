/* libFuzzer target: gRPC-Web's base64 stream decoder and encoder.  The
 * first byte says where the input is cut into pieces (as a body's chunks
 * cut it); the rest is the text.
 * Invariants checked: the pieces decode to exactly what the whole decodes
 * to, or both fail; the output fits pt_b64_stream_room; any bytes
 * encode and decode back to themselves. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "portico/assert.h"
#include "portico/grpc_web.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size)
        return 0;
    unsigned step = data[0] % 7 + 1;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    unsigned char *whole = malloc(pt_b64_stream_room(n) + 1), *cut = malloc(pt_b64_stream_room(n) + 8);
    PT_ASSERT(whole && cut);
    pt_b64_stream_t d = {0};
    long w = pt_b64_stream_decode(&d, in, n, whole);
    bool w_whole = pt_b64_stream_whole(&d);
    PT_ASSERT(w <= (long)pt_b64_stream_room(n));
    pt_b64_stream_t e = {0};
    long c = 0;
    for (size_t i = 0; i < n && c >= 0; i += step) {
        size_t k = n - i < step ? n - i : step;
        char *piece = malloc(k); /* its own size: ASan sees a read past it */
        PT_ASSERT(piece);
        memcpy(piece, in + i, k);
        long r = pt_b64_stream_decode(&e, piece, k, cut + c);
        free(piece);
        c = r < 0 ? -1 : c + r;
    }
    PT_ASSERT((w < 0) == (c < 0));
    if (w >= 0) {
        PT_ASSERT(c == w && memcmp(whole, cut, (size_t)w) == 0 && w_whole == pt_b64_stream_whole(&e));
    }
    /* any bytes, encoded, decode back */
    char *enc = malloc(4 * (n + 2) / 3 + 4);
    unsigned char *dec = malloc(n + 8);
    PT_ASSERT(enc && dec);
    size_t el = pt_b64_encode((const unsigned char *)in, n, enc);
    PT_ASSERT(el == 4 * ((n + 2) / 3));
    pt_b64_stream_t f = {0};
    long dl = pt_b64_stream_decode(&f, enc, el, dec);
    PT_ASSERT(dl == (long)n && memcmp(dec, in, n) == 0 && pt_b64_stream_whole(&f));
    free(enc);
    free(dec);
    free(whole);
    free(cut);
    return 0;
}
