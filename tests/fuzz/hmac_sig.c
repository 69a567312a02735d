/* libFuzzer target: an Authorization value through the signature parser,
 * then the signing string for a fixed fake request, and the same bytes as
 * a Digest header, one-shot and in pieces.
 * Invariants checked: no crash; a parse that succeeds has a key id, 1 to
 * 32 lower-case header names and a signature of its algorithm's MAC length,
 * with every string inside the input or the arena's copy; a failure says
 * why; the signing string has exactly the length its parts make; the Digest
 * decision is the same one-shot and in pieces. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "portico/arena.h"
#include "portico/assert.h"
#include "portico/hmac_sig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static pt_str_t fake_header(void *ctx, pt_str_t lname)
{
    (void)ctx;
    if (pt_str_eq(lname, PT_STR("date")))
        return PT_STR("Thu, 22 Jun 2017 17:15:21 GMT");
    if (pt_str_eq(lname, PT_STR("host")))
        return PT_STR("example.com");
    if (pt_str_eq(lname, PT_STR("digest")))
        return PT_STR("SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=");
    if (pt_str_eq(lname, PT_STR("x-empty")))
        return PT_STR("");
    return PT_STR_NULL;
}

static const pt_hmac_req_t req = {PT_STR("GET"), PT_STR("/a?b=c"), PT_STR("HTTP/1.1"), fake_header, NULL};

/* The length the signing string must have: its parts, plus newlines. */
static size_t expected_len(const pt_hmac_sig_t *s)
{
    size_t n = s->nheaders - 1;
    for (size_t i = 0; i < s->nheaders; i++) {
        pt_str_t h = s->headers[i];
        if (pt_str_eq(h, PT_STR("request-line")))
            n += req.method.n + req.target.n + req.version.n + 2;
        else if (pt_str_eq(h, PT_STR("(request-target)")) || pt_str_eq(h, PT_STR("@request-target")))
            n += req.method.n + req.target.n + 1;
        else
            n += h.n + 2 + fake_header(NULL, h).n;
    }
    return n;
}

static void check_sig(const pt_hmac_sig_t *s, const char *in, size_t size)
{
    PT_ASSERT(s->key_id.n > 0 && s->key_id.p != NULL);
    PT_ASSERT(s->sig_len == pt_hmac_alg_mac_len(s->alg));
    PT_ASSERT(s->nheaders >= 1 && s->nheaders <= PT_HMAC_MAX_HEADERS);
    if (s->key_id.p >= in && s->key_id.p < in + size)
        PT_ASSERT(s->key_id.p + s->key_id.n <= in + size);
    for (size_t i = 0; i < s->nheaders; i++) {
        PT_ASSERT(s->headers[i].n > 0);
        for (size_t j = 0; j < s->headers[i].n; j++)
            PT_ASSERT(!(s->headers[i].p[j] >= 'A' && s->headers[i].p[j] <= 'Z') && s->headers[i].p[j] != ' ');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pt_arena_t a;
    static bool init;
    if (!init) {
        pt_arena_init(&a, 4096, 1 << 20);
        init = true;
    }
    const char *in = (const char *)data;
    pt_hmac_sig_t s;
    const char *err = NULL;
    if (pt_hmac_sig_parse(&a, (pt_str_t){in, size}, &s, &err) == 0) {
        check_sig(&s, in, size);
        pt_str_t ss;
        err = NULL;
        if (pt_hmac_signing_string(&a, &s, &req, &ss, &err) == 0) {
            PT_ASSERT(ss.n == expected_len(&s));
            (void)pt_hmac_sig_verify(&s, ss, "secret", 6);
        } else {
            PT_ASSERT(err != NULL && err[0] != '\0');
        }
    } else {
        PT_ASSERT(err != NULL && err[0] != '\0');
    }

    /* the same bytes as a Digest header over a body of the first few bytes */
    size_t body = size < 16 ? size : 16;
    bool one = pt_hmac_digest_ok((pt_str_t){in, size}, data, body);
    pt_digest_ctx_t *d = pt_digest_start();
    PT_ASSERT(d != NULL);
    for (size_t o = 0; o < body; o += 3)
        pt_digest_update(d, data + o, body - o < 3 ? body - o : 3);
    PT_ASSERT(pt_digest_finish_ok(d, (pt_str_t){in, size}) == one);
    pt_arena_reset(&a);
    return 0;
}
