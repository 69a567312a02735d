/* libFuzzer target: the HTTP/1.1 request and response head parsers, the
 * chunked decoder, and the access log's look at a request line that did
 * not parse.
 * Invariants checked: no crash, a complete head never claims more bytes
 * than it was given, and a parse is the same whatever the buffer holds
 * after the head. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "portico/assert.h"
#include "portico/err-t.h"
#include "portico/h1_parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pt_h1_header_t headers[64];
    pt_h1_limits_t lim = {1024, 8192, 64};
    pt_h1_req_t req = {.headers = headers};
    int status = 0;
    int rc = pt_h1_parse_request((const char *)data, size, &lim, &req, &status);
    if (rc > 0) {
        PT_ASSERT((size_t)rc <= size);
        PT_ASSERT(req.nheaders <= lim.max_headers);
        for (size_t i = 0; i < req.nheaders; i++) {
            PT_ASSERT(req.headers[i].name.p >= (const char *)data);
            PT_ASSERT(req.headers[i].value.p + req.headers[i].value.n <= (const char *)data + size);
        }
        /* the rest of the input is a body: run it through the decoder */
        pt_h1_chunked_t c = {0};
        size_t pos = (size_t)rc;
        while (pos < size && !c.done) {
            const char *d;
            size_t dl;
            long used = pt_h1_chunked_decode(&c, (const char *)data + pos, size - pos, &d, &dl);
            if (used <= 0)
                break;
            PT_ASSERT((size_t)used <= size - pos);
            PT_ASSERT(!dl || (d >= (const char *)data + pos && d + dl <= (const char *)data + pos + (size_t)used));
            pos += (size_t)used;
        }
    } else {
        PT_ASSERT(rc == PT_EAGAIN || (rc == PT_EINVAL && status >= 400 && status < 600));
    }
    /* what a 400's log line says of it: within the input, in order */
    pt_str_t m, t, pr;
    pt_h1_peek_request_line((const char *)data, size, &m, &t, &pr);
    const pt_str_t parts[] = {m, t, pr};
    const char *after = (const char *)data;
    for (size_t i = 0; i < 3; i++) {
        if (!parts[i].p)
            continue;
        PT_ASSERT(parts[i].p >= after && parts[i].p + parts[i].n <= (const char *)data + size);
        after = parts[i].p + parts[i].n;
    }
    PT_ASSERT(!t.p || m.p);  /* no target without a method */
    PT_ASSERT(!pr.p || t.p); /* no protocol without a target */
    /* the same bytes as an upstream's response */
    pt_h1_resp_t resp = {.headers = headers};
    int rr = pt_h1_parse_response((const char *)data, size, &lim, &resp);
    if (rr > 0) {
        PT_ASSERT((size_t)rr <= size && resp.status >= 100 && resp.status <= 599);
        PT_ASSERT(!(resp.chunked && resp.content_length >= 0));
    } else {
        PT_ASSERT(rr == PT_EAGAIN || rr == PT_EINVAL || rr == PT_ETOOBIG);
    }
    return 0;
}
