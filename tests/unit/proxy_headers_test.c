/* The request head that goes upstream, from a parsed request. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "../unit/tap.h"
#include "portico/config.h"
#include "portico/proxy.h"

static pt_h1_header_t hdrs[64];
static pt_h1_limits_t lim = {8192, 32768, 64};

static size_t build(const char *raw, const pt_route_conf_t *r, bool trusted, char *out, size_t cap)
{
    pt_h1_req_t req = {.headers = hdrs};
    int st;
    if (pt_h1_parse_request(raw, strlen(raw), &lim, &req, &st) <= 0)
        return 0;
    struct sockaddr_in peer = {.sin_family = AF_INET};
    inet_pton(AF_INET, "192.0.2.50", &peer.sin_addr);
    pt_fwd_ctx_t f = {.req = &req, .route = r, .peer = (struct sockaddr *)&peer, .peer_ip = PT_STR("192.0.2.50"),
                      .peer_trusted = trusted, .request_id = pt_proxy_request_id(&req, PT_STR("gen-id")),
                      .body_chunked = req.chunked, .body_length = req.content_length, .upgrade = req.upgrade};
    size_t n = pt_proxy_request_head(&f, out, cap);
    out[n] = '\0';
    return n;
}

int main(void)
{
    pt_route_conf_t plain = {.name = "r"}, strip = {.name = "s", .strip_prefix = "/api"},
                    strip_slash = {.name = "t", .strip_prefix = "/api/"}, host = {.name = "h", .upstream_host = "in.svc"};
    char out[4096];
    build("GET /a?b=1 HTTP/1.1\r\nHost: ex.com\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\nKeep-Alive: 5\r\n"
          "TE: trailers\r\nX-Keep: yes\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n", &plain, false, out, sizeof(out));
    is_str(out,
           "GET /a?b=1 HTTP/1.1\r\nHost: ex.com\r\nX-Keep: yes\r\nX-Forwarded-For: 192.0.2.50\r\n"
           "X-Forwarded-Proto: http\r\nX-Forwarded-Host: ex.com\r\nX-Real-IP: 192.0.2.50\r\nX-Request-Id: gen-id\r\n\r\n",
           "hop-by-hop fields go, forwarding fields are ours");
    build("POST /x HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nX-Request-Id: r-1\r\n"
          "Content-Length: 3\r\n\r\n", &plain, true, out, sizeof(out));
    ok(strstr(out, "X-Forwarded-For: 10.0.0.1, 192.0.2.50\r\n") && strstr(out, "X-Forwarded-Proto: https\r\n") &&
           strstr(out, "X-Request-Id: r-1\r\n") && strstr(out, "Content-Length: 3\r\n"),
       "a trusted peer's forwarding fields are kept and extended: %s", out);
    build("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n", &plain, false,
          out, sizeof(out));
    ok(strstr(out, "Transfer-Encoding: chunked\r\n") && !strstr(out, "Expect") && !strstr(out, "Content-Length"),
       "chunked stays chunked; Expect is ours");
    build("GET /api/users/1 HTTP/1.1\r\nHost: h\r\n\r\n", &strip, false, out, sizeof(out));
    ok(strncmp(out, "GET /users/1 HTTP/1.1\r\n", 23) == 0, "strip_prefix");
    build("GET /api HTTP/1.1\r\nHost: h\r\n\r\n", &strip, false, out, sizeof(out));
    ok(strncmp(out, "GET / HTTP/1.1\r\n", 16) == 0, "strip_prefix of the whole path leaves /");
    build("GET /apiary HTTP/1.1\r\nHost: h\r\n\r\n", &strip, false, out, sizeof(out));
    ok(strncmp(out, "GET /apiary HTTP/1.1\r\n", 22) == 0, "strip_prefix stops at segment boundaries");
    build("GET /api/v/x HTTP/1.1\r\nHost: h\r\n\r\n", &strip_slash, false, out, sizeof(out));
    ok(strncmp(out, "GET /v/x HTTP/1.1\r\n", 19) == 0, "a prefix ending in / keeps the path absolute");
    build("GET / HTTP/1.1\r\nHost: public.example\r\n\r\n", &host, false, out, sizeof(out));
    ok(strstr(out, "\r\nHost: in.svc\r\n") && strstr(out, "X-Forwarded-Host: public.example\r\n"), "upstream_host");
    build("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", &plain, false, out,
          sizeof(out));
    ok(strstr(out, "Connection: upgrade\r\nUpgrade: websocket\r\n") != NULL, "an upgrade asks for the upgrade");
    build("GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: bad id with spaces\r\n\r\n", &plain, false, out, sizeof(out));
    ok(strstr(out, "X-Request-Id: gen-id\r\n") != NULL, "an insane incoming request id is replaced");
    char tiny[64];
    ok(build("GET / HTTP/1.1\r\nHost: h\r\nX-Long: 0123456789012345678901234567890123456789\r\n\r\n", &plain, false,
             tiny, sizeof(tiny) - 1) == 0, "a head that does not fit says so");
    ok(pt_proxy_drop_response_header(PT_STR("Transfer-Encoding"), PT_STR_NULL, false) &&
           pt_proxy_drop_response_header(PT_STR("X-Gone"), PT_STR("x-gone"), false) &&
           !pt_proxy_drop_response_header(PT_STR("Content-Type"), PT_STR_NULL, false) &&
           !pt_proxy_drop_response_header(PT_STR("Upgrade"), PT_STR_NULL, true),
       "response header rules");
    return done_testing();
}
