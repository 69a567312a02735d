/* libFuzzer target: a client's request head forwarded to an upstream.
 *
 * The input is a flags byte, the route's strip_prefix, a NUL, its
 * upstream_host, a NUL, then the request head as a client sends it.  Flags:
 * 1 the client is a trusted proxy, 2 it came over TLS, 4 its address is
 * IPv6, 8 strip_prefix is set, 16 upstream_host is set ('@' is none, 'X'
 * both).  The head is parsed with a listener's default limits, then
 * pt_proxy_request_head writes the upstream head into a buffer of the
 * capacity proxy.c gives it (an exact-size allocation: a write past it is
 * an ASan report).
 * Invariants checked:
 *  - a request the parser accepted always fits (else the proxy answers 431
 *    to a good request), and the length returned is within the capacity;
 *  - what is written is one request head that pt_h1_parse_request accepts
 *    whole, with the same method, query and framing;
 *  - Host, X-Forwarded-* and X-Request-Id are exactly what they should be:
 *    no value carries a CR or LF that would start a field of its own. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "portico/assert.h"
#include "portico/config-t.h"
#include "portico/err-t.h"
#include "portico/h1_parser.h"
#include "portico/http.h"
#include "portico/path.h"
#include "portico/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HEADERS 100 /* the listener defaults conn.c parses with */
#define ADDED 8         /* fields pt_proxy_request_head may add */

enum { F_TRUSTED = 1, F_TLS = 2, F_IPV6 = 4, F_STRIP = 8, F_HOST = 16 };

/* The next NUL-terminated piece of the input, as its own allocation. */
static char *take(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *z = memchr(*p, '\0', (size_t)(end - *p));
    if (!z)
        return NULL;
    size_t n = (size_t)(z - *p);
    char *s = malloc(n + 1);
    PT_ASSERT(s);
    memcpy(s, *p, n + 1);
    *p = z + 1;
    return s;
}

static pt_str_t field(const pt_h1_req_t *r, const char *name)
{
    const pt_h1_header_t *h = pt_h1_find(r, pt_str_from(name));
    return h ? h->value : PT_STR_NULL;
}

static void check(const pt_h1_req_t *req, const pt_route_conf_t *route, const pt_fwd_ctx_t *f)
{
    static pt_h1_header_t out_headers[MAX_HEADERS + ADDED];
    /* the capacity pt_proxy_forward_head gives it (proxy.c) */
    size_t cap = req->head_len + req->nheaders + 1024 + (route->upstream_host ? strlen(route->upstream_host) : 0);
    char *buf = malloc(cap);
    PT_ASSERT(buf);
    size_t n = pt_proxy_request_head(f, buf, cap);
    PT_ASSERT(n > 0 && n <= cap);

    pt_h1_req_t r2 = {.headers = out_headers};
    pt_h1_limits_t lim = {cap, cap + 1, MAX_HEADERS + ADDED};
    int st = 0;
    int rc = pt_h1_parse_request(buf, n, &lim, &r2, &st);
    PT_ASSERT(rc > 0 && (size_t)rc == n);
    PT_ASSERT(pt_str_eq(r2.method, req->method) && r2.minor == 1);
    PT_ASSERT(pt_str_eq(r2.query, req->query) && !r2.query.p == !req->query.p);
    PT_ASSERT(r2.nheaders >= 5 && r2.nheaders <= req->nheaders + ADDED);
    /* a request without Host (HTTP/1.0) gets the upstream's name (here none: "localhost") */
    PT_ASSERT(pt_str_eq(r2.host, route->upstream_host ? pt_str_from(route->upstream_host)
                                 : req->host.n    ? req->host
                                                  : PT_STR("localhost")));
    PT_ASSERT(pt_str_eq(field(&r2, "x-request-id"), f->request_id));
    if (!f->peer_trusted) {
        PT_ASSERT(pt_str_eq(field(&r2, "x-forwarded-for"), f->peer_ip));
        PT_ASSERT(pt_str_eq(field(&r2, "x-real-ip"), f->peer_ip));
        PT_ASSERT(pt_str_eq(field(&r2, "x-forwarded-proto"), f->tls ? PT_STR("https") : PT_STR("http")));
        PT_ASSERT(pt_str_eq(field(&r2, "x-forwarded-host"), req->host)); /* absent without a Host */
    }
    /* the body is framed upstream as it was by the client */
    PT_ASSERT(r2.chunked == req->chunked);
    PT_ASSERT((r2.content_length > 0 ? r2.content_length : 0) == (req->content_length > 0 ? req->content_length : 0));
    PT_ASSERT(r2.upgrade == req->upgrade);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pt_h1_header_t headers[MAX_HEADERS];
    if (size < 1)
        return 0;
    const uint8_t *p = data + 1, *end = data + size;
    unsigned flags = data[0];
    char *strip = take(&p, end), *host = strip ? take(&p, end) : NULL;
    if (!host) {
        free(strip);
        return 0;
    }
    /* What the configuration lets through (route_conf.c): strip_prefix
     * starts with "/", upstream_host is a valid Host value. */
    if (((flags & F_STRIP) && strip[0] != '/') || ((flags & F_HOST) && !pt_h1_valid_host(pt_str_from(host))))
        goto out;
    pt_route_conf_t route = {
        .strip_prefix = flags & F_STRIP ? strip : NULL,
        .upstream_host = flags & F_HOST ? host : NULL,
    };
    pt_h1_limits_t lim = {8192, 32768, MAX_HEADERS};
    pt_h1_req_t req = {.headers = headers};
    int status = 0;
    int rc = pt_h1_parse_request((const char *)p, (size_t)(end - p), &lim, &req, &status);
    /* What never reaches the proxy (request.c answers it first): CONNECT
     * (405) and an upgrade request with a body (400). */
    if (rc > 0 && (req.form == PT_H1_AUTHORITY || req.method_bit == PT_M_CONNECT ||
                   (req.upgrade && (req.chunked || req.content_length > 0))))
        rc = 0;
    /* Nor a path that does not normalise (a bad escape, %2F with the
     * default escaped_slashes: reject): routing answers it 400. */
    int slashes = pt_path_slashes(NULL);
    if (rc > 0 && req.form != PT_H1_ASTERISK && !pt_path_is_plain(req.path)) {
        char *norm = malloc(req.path.n + 2);
        PT_ASSERT(norm);
        if (pt_path_normalize(req.path, norm, slashes) < 0)
            rc = 0;
        free(norm);
    }
    if (rc > 0) {
        struct sockaddr_storage peer = {0};
        bool v6 = flags & F_IPV6;
        const char *ip = v6 ? "2001:db8::1" : "192.0.2.1";
        if (v6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&peer;
            s6->sin6_family = AF_INET6;
            inet_pton(AF_INET6, ip, &s6->sin6_addr);
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&peer;
            s4->sin_family = AF_INET;
            inet_pton(AF_INET, ip, &s4->sin_addr);
        }
        pt_fwd_ctx_t f = {
            .req = &req,
            .route = &route,
            .peer = (const struct sockaddr *)&peer,
            .peer_ip = pt_str_from(ip),
            .peer_trusted = flags & F_TRUSTED,
            .request_id = pt_proxy_request_id(&req, PT_STR("0123456789abcdef0123456789abcdef")),
            .body_chunked = req.chunked,
            .body_length = req.content_length,
            .upgrade = req.upgrade,
            .tls = flags & F_TLS,
            .fx = NULL,
            .slashes = slashes,
        };
        check(&req, &route, &f);
    } else if (rc < 0) {
        PT_ASSERT(rc == PT_EAGAIN || (rc == PT_EINVAL && status >= 400 && status < 600));
    }
out:
    free(strip);
    free(host);
    return 0;
}
