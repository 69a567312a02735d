/* The HTTP/1.1 parser: good requests, then a table of malformed ones with
 * the status each must get, then the chunked decoder. */
#include "config.h"

#include "../unit/tap.h"
#include "portico/err-t.h"
#include "portico/h1_parser.h"
#include "portico/http.h"

static pt_h1_header_t hdrs[100];
static pt_h1_limits_t lim = {8192, 32768, 100};

static int parse(const char *s, pt_h1_req_t *r, int *status)
{
    r->headers = hdrs;
    *status = 0;
    return pt_h1_parse_request(s, strlen(s), &lim, r, status);
}

static void bad(const char *what, const char *req, int want)
{
    pt_h1_req_t r;
    int status;
    int rc = parse(req, &r, &status);
    ok(rc == PT_EINVAL && status == want, "%s: %d (got rc %d, status %d)", what, want, rc, status);
}

static void good(const char *what, const char *req)
{
    pt_h1_req_t r;
    int status;
    int rc = parse(req, &r, &status);
    ok(rc == (int)strlen(req), "%s: accepted (rc %d, status %d)", what, rc, status);
}

static size_t decode_all(const char *in, size_t len, size_t step, char *out, long *err, pt_h1_chunked_t *c)
{
    size_t olen = 0, pos = 0;
    memset(c, 0, sizeof(*c));
    *err = 0;
    while (pos < len && !c->done) {
        size_t n = len - pos < step ? len - pos : step;
        size_t used_total = 0;
        while (used_total < n && !c->done) {
            const char *d;
            size_t dl;
            long used = pt_h1_chunked_decode(c, in + pos + used_total, n - used_total, &d, &dl);
            if (used < 0) {
                *err = used;
                return olen;
            }
            memcpy(out + olen, d ? d : "", dl);
            olen += dl;
            used_total += (size_t)used;
            if (used == 0)
                break;
        }
        pos += used_total;
    }
    return olen;
}

int main(void)
{
    pt_h1_req_t r;
    int status;
    const char *req = "GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent:  curl/8 \r\nAccept: */*\r\n\r\n";
    is_int(parse(req, &r, &status), strlen(req), "a simple GET is parsed whole");
    ok(pt_str_eq(r.method, PT_STR("GET")) && r.method_bit == PT_M_GET, "method");
    ok(pt_str_eq(r.path, PT_STR("/a/b")) && pt_str_eq(r.query, PT_STR("x=1")), "path and query are split");
    ok(pt_str_eq(r.host, PT_STR("example.com")), "host");
    ok(r.nheaders == 3 && pt_str_eq(hdrs[1].value, PT_STR("curl/8")), "values lose surrounding whitespace");
    ok(r.keep_alive && r.minor == 1 && r.content_length == -1 && !r.chunked, "1.1 defaults to keep-alive");

    for (size_t i = 1; i < strlen(req); i++) {
        pt_h1_req_t part = {.headers = hdrs};
        int st = 0;
        int rc = pt_h1_parse_request(req, i, &lim, &part, &st);
        if (rc != PT_EAGAIN) {
            ok(0, "a prefix of %zu bytes asks for more (rc %d)", i, rc);
            break;
        }
        if (i == strlen(req) - 1)
            ok(1, "every prefix of the request asks for more");
    }

    good("HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n");
    parse("GET / HTTP/1.0\r\n\r\n", &r, &status);
    ok(!r.keep_alive, "1.0 closes by default");
    parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r, &status);
    ok(r.keep_alive, "1.0 with Connection: keep-alive");
    parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n", &r, &status);
    ok(!r.keep_alive, "Connection: close among other tokens");
    good("leading empty line", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    parse("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", &r, &status);
    is_int(r.content_length, 5, "Content-Length");
    parse("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", &r, &status);
    is_int(r.content_length, 5, "repeated identical Content-Length is one");
    parse("POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", &r, &status);
    ok(r.chunked, "Transfer-Encoding: chunked (any case)");
    parse("PUT /u HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", &r, &status);
    ok(r.expect_continue, "Expect: 100-continue");
    parse("GET http://Example.com:8080/p?q HTTP/1.1\r\nHost: other\r\n\r\n", &r, &status);
    ok(r.form == PT_H1_ABSOLUTE && pt_str_eq(r.host, PT_STR("Example.com:8080")) && pt_str_eq(r.path, PT_STR("/p")),
       "absolute-form: the target's authority is the host");
    parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &r, &status);
    ok(r.form == PT_H1_ASTERISK, "asterisk-form for OPTIONS");
    parse("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", &r, &status);
    ok(r.upgrade, "an upgrade request");
    parse("GET /s?a=1&bb=2&flag&b=3 HTTP/1.1\r\nHost: a\r\nCookie: x=1; sid=ab\r\nCookie: uid=7\r\n\r\n", &r, &status);
    ok(pt_str_eq(pt_h1_query_arg(r.query, "b"), PT_STR("3")) && pt_str_eq(pt_h1_query_arg(r.query, "bb"), PT_STR("2")),
       "query arguments by exact name");
    ok(pt_h1_query_arg(r.query, "flag").p && !pt_h1_query_arg(r.query, "flag").n && !pt_h1_query_arg(r.query, "c").p,
       "a bare query argument is empty, a missing one absent");
    ok(pt_str_eq(pt_h1_cookie(&r, "sid"), PT_STR("ab")) && pt_str_eq(pt_h1_cookie(&r, "uid"), PT_STR("7")) &&
           !pt_h1_cookie(&r, "id").p,
       "cookies from every Cookie header, by exact name");
    good("obs-text in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n");

    /* malformed: 400 */
    bad("Content-Length and Transfer-Encoding",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    bad("differing Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        400);
    bad("differing Content-Length in a list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\n", 400);
    bad("signed Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", 400);
    bad("hex Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\n", 400);
    bad("empty Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 400);
    bad("huge Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400);
    bad("Transfer-Encoding gzip, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        400);
    bad("Transfer-Encoding chunked, identity",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400);
    bad("two Transfer-Encoding headers",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    bad("Transfer-Encoding: xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 400);
    bad("Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    bad("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n  b\r\n\r\n", 400);
    bad("whitespace before the colon", "GET / HTTP/1.1\r\nHost: a\r\nX : b\r\n\r\n", 400);
    bad("whitespace before a Transfer-Encoding colon",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 400);
    bad("a bad character in a name", "GET / HTTP/1.1\r\nHost: a\r\nX(y): b\r\n\r\n", 400);
    bad("an empty name", "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400);
    bad("bare CR in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400);
    bad("bare LF ending a line", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400);
    bad("bare LF request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400);
    {
        static const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
        pt_h1_req_t rr = {.headers = hdrs};
        int st = 0;
        int rc = pt_h1_parse_request(nul, sizeof(nul) - 1, &lim, &rr, &st);
        ok(rc == PT_EINVAL && st == 400, "NUL byte inside a value: 400");
    }
    bad("DEL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", 400);
    bad("control byte in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01\r\n\r\n", 400);
    bad("HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505);
    bad("HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505);
    bad("HTTP/0.9 style", "GET /\r\n\r\n", 400);
    bad("lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400);
    bad("missing Host in 1.1", "GET / HTTP/1.1\r\nX: a\r\n\r\n", 400);
    bad("two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    bad("a bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400);
    bad("Host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400);
    bad("two spaces in the request line", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    bad("tab in the request line", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    bad("a space in the target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    bad("a non-ASCII target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    bad("a fragment in the target", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    bad("a relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    bad("userinfo in an absolute target", "GET http://u@h/ HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    bad("* for GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    bad("a bad method character", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    bad("an unknown expectation", "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417);
    bad("too many empty lines first", "\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);

    /* A bad request line is answered as soon as it is complete, without
     * waiting for the empty line that ends the head. */
    bad("no version, head incomplete", "GET /x\r\n", 400);
    bad("HTTP/0.9 style, head incomplete", "GET /\r\n", 400);
    bad("HTTP/2.0, head incomplete", "GET /x HTTP/2.0\r\n", 505);
    bad("HTTP/1.2, head incomplete", "GET /x HTTP/1.2\r\nHost: a\r\n", 505);
    bad("a double space, head incomplete", "GET  /x HTTP/1.1\r\n", 400);
    bad("a bare LF after the request line, head incomplete", "GET /x HTTP/1.1\n", 400);
    bad("a relative target, head incomplete", "GET x HTTP/1.1\r\n", 400);
    {
        const char *waits[] = {"GET /x HTTP/1.1\r\n", "GET /x HTTP/1.1\r\nHost: a\r\n", "GET /x HTTP/1.1\r",
                               "GET /x", "\r\nGET /x HTTP/1.0\r\n"};
        for (size_t i = 0; i < sizeof(waits) / sizeof(waits[0]); i++) {
            pt_h1_req_t rw;
            int stw;
            int rc = parse(waits[i], &rw, &stw);
            ok(rc == PT_EAGAIN, "a good request line with the head incomplete waits (case %zu, rc %d)", i, rc);
        }
    }

    /* limits */
    pt_h1_limits_t small = {64, 256, 3};
    char longline[200];
    snprintf(longline, sizeof(longline), "GET /%0100d HTTP/1.1\r\n", 0);
    pt_h1_req_t rl = {.headers = hdrs};
    int st = 0;
    ok(pt_h1_parse_request(longline, strlen(longline), &small, &rl, &st) == PT_EINVAL && st == 414,
       "a request line over the limit: 414");
    ok(pt_h1_parse_request(longline, 70, &small, &rl, &st) == PT_EINVAL && st == 414,
       "known to be too long before its end arrives: 414");
    const char *many = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    ok(pt_h1_parse_request(many, strlen(many), &small, &rl, &st) == PT_EINVAL && st == 431,
       "more headers than allowed: 431");
    char bighead[400];
    snprintf(bighead, sizeof(bighead), "GET / HTTP/1.1\r\nHost: a\r\nX: %0300d\r\n\r\n", 0);
    ok(pt_h1_parse_request(bighead, strlen(bighead), &small, &rl, &st) == PT_EINVAL && st == 431,
       "a head over the limit: 431");
    ok(pt_h1_parse_request(bighead, 300, &small, &rl, &st) == PT_EINVAL && st == 431,
       "known to be too big before its end arrives: 431");

    /* chunked */
    const char *body = "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
    char out[256];
    long err;
    pt_h1_chunked_t c;
    for (size_t step = 1; step <= strlen(body); step += (step < 8 ? 1 : 17)) {
        size_t n = decode_all(body, strlen(body), step, out, &err, &c);
        if (err || !c.done || n != 11 || memcmp(out, "hello world", 11) != 0) {
            ok(0, "chunked decode in steps of %zu", step);
            goto chunked_bad;
        }
    }
    ok(1, "chunked bodies decode the same in any split");
chunked_bad:;
    struct {
        const char *what, *in;
    } cbad[] = {
        {"a non-hex size", "z\r\n"},
        {"a size with 16 hex digits", "1000000000000000\r\n"},
        {"a missing CRLF after data", "3\r\nabcX\r\n"},
        {"a bare LF after the size", "3\nabc\r\n"},
        {"a control byte in an extension", "3;\x01\r\nabc\r\n"},
        {"a bare CR in the trailers", "0\r\nX: a\rb\r\n\r\n"},
        {"an empty size", "\r\n"},
    };
    for (size_t i = 0; i < sizeof(cbad) / sizeof(cbad[0]); i++) {
        decode_all(cbad[i].in, strlen(cbad[i].in), 64, out, &err, &c);
        ok(err == PT_EINVAL, "chunked: %s is refused", cbad[i].what);
    }
    return done_testing();
}
