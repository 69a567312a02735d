#include "config.h"

#include "../unit/tap.h"
#include "portico/grpc_web.h"

static pt_grpc_web_mode_t mode(const char *ct, char *up)
{
    return pt_grpc_web_mode(pt_str_from(ct), up, 64);
}

/* Decodes text cut every `step` bytes; the bytes, or "<error>". */
static const char *decode(const char *text, size_t step)
{
    static unsigned char out[256];
    pt_b64_stream_t d = {0};
    size_t n = strlen(text), o = 0;
    for (size_t i = 0; i < n; i += step) {
        size_t k = n - i < step ? n - i : step;
        long r = pt_b64_stream_decode(&d, text + i, k, out + o);
        if (r < 0)
            return "<error>";
        o += (size_t)r;
    }
    if (!pt_b64_stream_whole(&d))
        return "<partial>";
    out[o] = '\0';
    return (const char *)out;
}

int main(void)
{
    char up[64];
    ok(mode("application/grpc-web", up) == PT_GRPC_WEB_BINARY && strcmp(up, "application/grpc") == 0,
       "application/grpc-web: binary, application/grpc upstream");
    ok(mode("application/grpc-web+proto", up) == PT_GRPC_WEB_BINARY && strcmp(up, "application/grpc+proto") == 0,
       "+proto is kept");
    ok(mode("Application/GRPC-Web-Text+proto; charset=utf-8", up) == PT_GRPC_WEB_TEXT &&
           strcmp(up, "application/grpc+proto") == 0,
       "text, any case, with parameters");
    ok(mode("application/grpc-web-text", up) == PT_GRPC_WEB_TEXT && strcmp(up, "application/grpc") == 0, "text alone");
    ok(mode("application/grpc", up) == PT_GRPC_WEB_NONE && mode("application/grpc-webx", up) == PT_GRPC_WEB_NONE &&
           mode("application/grpc-web-textual", up) == PT_GRPC_WEB_NONE && mode("application/grpc-web+", up) == PT_GRPC_WEB_NONE &&
           mode("text/plain", up) == PT_GRPC_WEB_NONE,
       "anything else is not gRPC-Web");

    char out[64];
    size_t n = pt_grpc_web_response_type(PT_GRPC_WEB_BINARY, PT_STR("application/grpc"), out, sizeof(out));
    ok(n && strncmp(out, "application/grpc-web+proto", n) == 0 && n == 26, "application/grpc answers grpc-web+proto");
    n = pt_grpc_web_response_type(PT_GRPC_WEB_TEXT, PT_STR("application/grpc+json"), out, sizeof(out));
    ok(n == 30 && strncmp(out, "application/grpc-web-text+json", n) == 0, "a subtype is kept, in text mode");

    for (size_t step = 1; step <= 9; step++) {
        ok(strcmp(decode("aGVsbG8gd29ybGQ=", step), "hello world") == 0, "one padded group cut every %zu", step);
        ok(strcmp(decode("aGk=dGhlcmU=IQ==YWJj", step), "hithere!abc") == 0, "padded groups one after another, cut every %zu",
           step);
    }
    ok(strcmp(decode("aGk", 2), "<partial>") == 0, "a body that ends inside a quantum is seen");
    ok(strcmp(decode("a=Gk", 1), "<error>") == 0 && strcmp(decode("aG=k", 4), "<error>") == 0 &&
           strcmp(decode("aGk*", 4), "<error>") == 0 && strcmp(decode("aGk\n", 4), "<error>") == 0,
       "misplaced padding and foreign bytes are refused");

    char enc[32];
    ok(pt_b64_encode((const unsigned char *)"hi", 2, enc) == 4 && memcmp(enc, "aGk=", 4) == 0, "encode pads");
    ok(pt_b64_encode((const unsigned char *)"abc", 3, enc) == 4 && memcmp(enc, "YWJj", 4) == 0, "encode whole quanta");
    ok(pt_b64_encode((const unsigned char *)"", 0, enc) == 0, "encode nothing");

    nghttp2_nv nv[] = {{(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, 0},
                       {(uint8_t *)"Grpc-Message", (uint8_t *)"ok", 12, 2, 0}};
    unsigned char fr[64];
    n = pt_grpc_web_trailers(nv, 2, fr, sizeof(fr));
    ok(n == 5 + 32 && fr[0] == 0x80 && fr[1] == 0 && fr[2] == 0 && fr[3] == 0 && fr[4] == 32 &&
           memcmp(fr + 5, "grpc-status:0\r\ngrpc-message:ok\r\n", 32) == 0,
       "the trailers frame: flag 0x80, length, lower-case lines");
    ok(pt_grpc_web_trailers(nv, 2, fr, 20) == 0, "a trailers frame that does not fit is refused");
    done_testing();
}
