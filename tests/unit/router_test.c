/* The router: precedence, parameters, hosts, predicates, regexes,
 * normalisation, and a property test against the brute-force matcher
 * over thousands of random routes and paths. */
#include "config.h"

#include <stdlib.h>

#include "../unit/tap.h"
#include "portico/config.h"
#include "portico/http.h"
#include "portico/path.h"
#include "portico/router.h"

static pt_h1_header_t hdrs[32];

static const char *match_req(pt_router_t *r, const char *raw, pt_route_match_t *m)
{
    pt_h1_limits_t lim = {8192, 32768, 32};
    pt_h1_req_t req = {.headers = hdrs};
    int st;
    if (pt_h1_parse_request(raw, strlen(raw), &lim, &req, &st) <= 0)
        return "(bad request)";
    char norm[1024];
    long n = pt_path_normalize(req.path, norm, PT_SLASHES_KEEP);
    if (n < 0)
        return "(400)";
    pt_router_lookup(r, req.host, (pt_str_t){norm, (size_t)n}, req.method_bit, &req, m);
    return m->route ? m->route->name : NULL;
}

static const char *match(pt_router_t *r, const char *host, const char *path, unsigned method, pt_route_match_t *m)
{
    pt_router_lookup(r, pt_str_from(host), pt_str_from(path), method, NULL, m);
    return m->route ? m->route->name : NULL;
}

static pt_config_t *load(const char *yaml)
{
    pt_diag_t d;
    pt_diag_init(&d);
    pt_config_t *c = pt_config_load_text("r.yaml", yaml, strlen(yaml), &d);
    pt_diag_print(&d, stdout);
    pt_diag_free(&d);
    return c;
}

static void normal_with(int slashes, const char *in, const char *want)
{
    char out[256];
    long n = pt_path_normalize(pt_str_from(in), out, slashes);
    if (n >= 0)
        out[n] = '\0';
    is_str(n < 0 ? "(400)" : out, want, "normalise %s (escaped_slashes %d)", in, slashes);
}

static void normal(const char *in, const char *want)
{
    normal_with(PT_SLASHES_KEEP, in, want);
}

static uint64_t rng = 42;
static unsigned rnd(unsigned n)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)((rng >> 33) % n);
}

int main(void)
{
    normal("/a/b", "/a/b");
    normal("/a/./b/", "/a/b/");
    normal("/a/b/../c", "/a/c");
    normal("/a/..", "/");
    normal("/%61%62c", "/abc");
    normal("/a%2Fb", "/a%2Fb");
    normal("/a%2fb", "/a%2Fb");
    normal("/a/%2e%2e/b", "/b");
    normal("/..", "(400)");
    normal("/a/../../b", "(400)");
    normal("/%2e%2e/etc", "(400)");
    normal("/a%zz", "(400)");
    normal("/a%4", "(400)");
    normal("/a%00b", "(400)");
    normal("/a//b", "/a//b");
    /* escaped_slashes: refused, or a separator before the dot-segments go */
    normal_with(PT_SLASHES_REJECT, "/a%2Fb", "(400)");
    normal_with(PT_SLASHES_REJECT, "/a%5cb", "(400)");
    normal_with(PT_SLASHES_REJECT, "/a%2e%2e/b%25", "/a../b%25");
    normal_with(PT_SLASHES_DECODE, "/api/..%2fsecret", "/secret");
    normal_with(PT_SLASHES_DECODE, "/api/x/..%2F..%5Csecret", "/secret");
    normal_with(PT_SLASHES_DECODE, "/a%2Fb", "/a/b");
    normal_with(PT_SLASHES_DECODE, "/..%2f", "(400)");
    normal_with(PT_SLASHES_KEEP, "/api/..%2fsecret", "/api/..%2Fsecret");

    ok(pt_router_path_match("/a/*", PT_STR("/a")), "prefix takes the bare prefix");
    ok(!pt_router_path_match("/a/*", PT_STR("/ab")), "prefix stops at a segment boundary");
    ok(!pt_router_path_match("/u/:id", PT_STR("/u/1/2")), ":param takes only one segment");

    pt_config_t *c = load("listeners: [{ address: 127.0.0.1:1 }]\n"
                          "routes:\n"
                          "  - { name: any, respond: {}, priority: -1 }\n"
                          "  - { name: api-prefix, match: { paths: [/api/*] }, respond: {} }\n"
                          "  - { name: api-exact, match: { paths: [/api/v1] }, respond: {} }\n"
                          "  - { name: api-param, match: { paths: [/api/:v] }, respond: {} }\n"
                          "  - { name: user-item, match: { paths: [/u/:uid/items/:iid] }, respond: {} }\n"
                          "  - { name: files, match: { paths: [/files/*rest] }, respond: {} }\n"
                          "  - { name: hosted, match: { hosts: [Example.COM], paths: [/h] }, respond: {} }\n"
                          "  - { name: wild, match: { hosts: [\"*.example.org\"], paths: [/h] }, respond: {} }\n"
                          "  - { name: get-only, match: { paths: [/m], methods: [GET] }, respond: {} }\n"
                          "  - { name: post-only, match: { paths: [/m], methods: [POST] }, respond: {} }\n"
                          "  - { name: low, match: { paths: [/p] }, respond: {} }\n"
                          "  - { name: high, match: { paths: [/p] }, priority: 5, respond: {} }\n"
                          "  - { name: canary, match: { paths: [/c], headers: { x-canary: \"1\" } }, respond: {} }\n"
                          "  - { name: beta, match: { paths: [/c], query: { beta: \"~^(yes|1)$\" } }, respond: {} }\n"
                          "  - { name: cookie, match: { paths: [/c], cookies: { tier: gold } }, respond: {} }\n"
                          "  - { name: plain-c, match: { paths: [/c] }, respond: {} }\n"
                          "  - { name: re, match: { paths: [\"~^/re/(?<num>[0-9]+)$\"] }, respond: {} }\n");
    ok(c != NULL, "the route table loads");
    if (!c)
        return done_testing();
    pt_router_t *r = pt_router_build(c);
    pt_route_match_t m;
    is_str(match(r, "x", "/api/v1", PT_M_GET, &m), "api-exact", "exact beats param and prefix");
    is_str(match(r, "x", "/api/v2", PT_M_GET, &m), "api-param", "param beats prefix");
    ok(m.nparams == 1 && pt_str_eq(m.params[0].name, PT_STR("v")) && pt_str_eq(m.params[0].value, PT_STR("v2")),
       "the :v parameter");
    is_str(match(r, "x", "/api/v2/x", PT_M_GET, &m), "api-prefix", "prefix takes the rest");
    is_str(match(r, "x", "/api", PT_M_GET, &m), "api-prefix", "and the bare prefix");
    is_str(match(r, "x", "/u/7/items/9", PT_M_GET, &m), "user-item", "two parameters");
    ok(m.nparams == 2 && pt_str_eq(m.params[0].value, PT_STR("7")) && pt_str_eq(m.params[1].name, PT_STR("iid")) &&
           pt_str_eq(m.params[1].value, PT_STR("9")),
       "uid=7 iid=9");
    is_str(match(r, "x", "/files/a/b/c.txt", PT_M_GET, &m), "files", "a named catch-all");
    ok(m.nparams == 1 && pt_str_eq(m.params[0].name, PT_STR("rest")) &&
           pt_str_eq(m.params[0].value, PT_STR("a/b/c.txt")),
       "rest=a/b/c.txt");
    is_str(match(r, "example.com:8080", "/h", PT_M_GET, &m), "hosted", "hosts ignore case and port");
    is_str(match(r, "EXAMPLE.com.", "/h", PT_M_GET, &m), "hosted", "and a trailing dot");
    is_str(match(r, "a.b.example.org", "/h", PT_M_GET, &m), "wild", "wildcards take subdomains");
    is_str(match(r, "example.org", "/h", PT_M_GET, &m), "any", "but not the bare domain");
    is_str(match(r, "x", "/m", PT_M_POST, &m), "post-only", "method selects");
    is_str(match(r, "x", "/m", PT_M_HEAD, &m), "get-only", "HEAD goes where GET goes");
    is_str(match(r, "x", "/p", PT_M_GET, &m), "high", "higher priority wins");
    is_str(match(r, "x", "/zzz", PT_M_GET, &m), "any", "the catch-all");
    is_str(match(r, "x", "/re/123", PT_M_GET, &m), "re", "a regex route, tried last");
    ok(m.nparams == 1 && pt_str_eq(m.params[0].name, PT_STR("num")) && pt_str_eq(m.params[0].value, PT_STR("123")),
       "named groups become parameters");
    is_str(match(r, "x", "/re/12a", PT_M_GET, &m), "any", "a regex that does not match");
    is_str(match_req(r, "GET /c HTTP/1.1\r\nHost: x\r\nX-Canary: 1\r\n\r\n", &m), "canary", "a header predicate");
    is_str(match_req(r, "GET /c?a=1&beta=yes HTTP/1.1\r\nHost: x\r\n\r\n", &m), "beta", "a query regex predicate");
    is_str(match_req(r, "GET /c?beta=no HTTP/1.1\r\nHost: x\r\n\r\n", &m), "plain-c", "a failing regex");
    is_str(match_req(r, "GET /c HTTP/1.1\r\nHost: x\r\nCookie: a=b; tier=gold\r\n\r\n", &m), "cookie",
           "a cookie predicate");
    is_str(match_req(r, "GET /c HTTP/1.1\r\nHost: x\r\nX-Canary: 2\r\n\r\n", &m), "plain-c", "no predicate holds");
    is_str(match_req(r, "GET /api/%76%31 HTTP/1.1\r\nHost: x\r\n\r\n", &m), "api-exact", "matched after decoding");
    is_str(match_req(r, "GET /api/x/../v1 HTTP/1.1\r\nHost: x\r\n\r\n", &m), "api-exact", "after dot-segments");
    is_str(match_req(r, "GET /api%2Fv1 HTTP/1.1\r\nHost: x\r\n\r\n", &m), "any", "an encoded slash does not split a segment");
    is_str(match_req(r, "GET /../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", &m), "(400)", "climbing above the root");
    pt_router_free(r);
    pt_config_free(c);

    c = load("listeners: [{ address: 127.0.0.1:1 }]\n"
             "routes:\n  - { name: g, match: { paths: [/m], methods: [GET, PUT] }, respond: {} }\n");
    r = pt_router_build(c);
    ok(match(r, "x", "/m", PT_M_DELETE, &m) == NULL && m.allowed == (PT_M_GET | PT_M_PUT | PT_M_HEAD),
       "no method matches: the allowed ones are reported");
    ok(match(r, "x", "/n", PT_M_DELETE, &m) == NULL && m.allowed == 0, "no path matches: nothing allowed");
    pt_router_free(r);
    pt_config_free(c);

    /* property test: the tree and the brute-force matcher agree */
    static const char *const segs[] = {"a", "b", "api", "v1", "x", ""};
    static const char *const hosts[] = {"one.test", "*.w.test", "two.test"};
    int disagreements = 0, matched = 0, checks = 0;
    for (int round = 0; round < 20; round++) {
        size_t cap = 1 << 16, len = 0;
        char *y = malloc(cap);
        len += (size_t)snprintf(y, cap, "listeners: [{ address: 127.0.0.1:1 }]\nroutes:\n");
        int nroutes = 50 + (int)rnd(150);
        static char seen[256][192];
        int nseen = 0;
        for (int i = 0; i < nroutes; i++) {
            char path[128] = "";
            int depth = 1 + (int)rnd(4);
            for (int d = 0; d < depth; d++) {
                unsigned k = rnd(10);
                strcat(path, "/");
                if (k < 6)
                    strcat(path, segs[k]);
                else if (k < 8)
                    strcat(path, d == 0 ? "p" : ":id");
                else if (d == depth - 1)
                    strcat(path, k == 8 ? "*" : "*rest");
                else
                    strcat(path, "a");
            }
            char hostpart[64] = "";
            if (rnd(3) == 0)
                snprintf(hostpart, sizeof(hostpart), "hosts: [\"%s\"], ", hosts[rnd(3)]);
            const char *meth = rnd(3) == 0 ? "methods: [POST], " : "";
            unsigned prio = rnd(3);
            /* routes that can never be told apart are a configuration
             * error: generate only distinguishable ones */
            char key[192];
            snprintf(key, sizeof(key), "%u|%s|%s|%s", prio, hostpart, meth, path);
            bool dup = false;
            for (int k = 0; k < nseen && !dup; k++)
                dup = strcmp(seen[k], key) == 0;
            if (dup || nseen == 256)
                continue;
            strcpy(seen[nseen++], key);
            len += (size_t)snprintf(y + len, cap - len,
                                    "  - { name: r%d, priority: %u, match: { %s%spaths: [\"%s\"] }, respond: {} }\n", i,
                                    prio, hostpart, meth, path);
        }
        pt_diag_t d;
        pt_diag_init(&d);
        c = pt_config_load_text("p.yaml", y, len, &d);
        pt_diag_free(&d);
        free(y);
        if (!c) {
            disagreements++; /* the generator made an invalid file */
            continue;
        }
        r = pt_router_build(c);
        for (int q = 0; q < 500; q++) {
            char path[128] = "";
            int depth = (int)rnd(6);
            for (int dd = 0; dd < depth; dd++) {
                strcat(path, "/");
                strcat(path, segs[rnd(6)]);
            }
            if (!*path)
                strcpy(path, "/");
            const char *host = rnd(2) ? "one.test" : rnd(2) ? "q.w.test" : "other.test";
            unsigned meth = rnd(2) ? PT_M_GET : PT_M_POST;
            pt_route_match_t a, b;
            pt_router_lookup(r, pt_str_from(host), pt_str_from(path), meth, NULL, &a);
            pt_router_lookup_brute(r, pt_str_from(host), pt_str_from(path), meth, NULL, &b);
            checks++;
            matched += a.route != NULL;
            if (a.route != b.route || a.allowed != b.allowed) {
                if (disagreements++ < 5)
                    printf("# %s %s: tree %s, brute %s\n", host, path, a.route ? a.route->name : "-",
                           b.route ? b.route->name : "-");
            }
        }
        pt_router_free(r);
        pt_config_free(c);
    }
    ok(checks > 5000 && disagreements == 0, "tree and brute force agree on %d lookups (%d matched)", checks, matched);
    return done_testing();
}
