#include "config.h"

#include "../unit/tap.h"
#include "portico/config.h"
#include "portico/http.h"
#include "portico/router.h"

static const char *match(pt_router_t *r, const char *host, const char *path, unsigned m, unsigned *allowed)
{
    const pt_route_conf_t *rc = pt_router_match(r, pt_str_from(host), pt_str_from(path), m, allowed);
    return rc ? rc->name : NULL;
}

int main(void)
{
    ok(pt_router_path_match("/a", PT_STR("/a")), "exact");
    ok(!pt_router_path_match("/a", PT_STR("/ab")), "exact is not a prefix");
    ok(pt_router_path_match("/a/*", PT_STR("/a/b/c")), "prefix takes deeper paths");
    ok(pt_router_path_match("/a/*", PT_STR("/a")), "prefix takes the bare prefix");
    ok(!pt_router_path_match("/a/*", PT_STR("/ab")), "prefix stops at a segment boundary");
    ok(pt_router_path_match("/u/:id/x", PT_STR("/u/42/x")), ":param takes one segment");
    ok(!pt_router_path_match("/u/:id/x", PT_STR("/u//x")), ":param is never empty");
    ok(!pt_router_path_match("/u/:id", PT_STR("/u/1/2")), ":param takes only one segment");
    ok(pt_router_path_match("/f/*rest", PT_STR("/f/a/b")), "*rest takes the rest");
    ok(pt_router_path_match("/*", PT_STR("/anything")), "/* takes everything");

    const char *yaml = "listeners: [{ address: 127.0.0.1:1 }]\n"
                       "routes:\n"
                       "  - { name: any, respond: {} , priority: -1 }\n"
                       "  - { name: api-prefix, match: { paths: [/api/*] }, respond: {} }\n"
                       "  - { name: api-exact, match: { paths: [/api/v1] }, respond: {} }\n"
                       "  - { name: api-param, match: { paths: [/api/:v] }, respond: {} }\n"
                       "  - { name: hosted, match: { hosts: [Example.COM], paths: [/h] }, respond: {} }\n"
                       "  - { name: wild, match: { hosts: [\"*.example.org\"], paths: [/h] }, respond: {} }\n"
                       "  - { name: get-only, match: { paths: [/m], methods: [GET] }, respond: {} }\n"
                       "  - { name: post-only, match: { paths: [/m], methods: [POST] }, respond: {} }\n"
                       "  - { name: low, match: { paths: [/p] }, respond: {} }\n"
                       "  - { name: high, match: { paths: [/p] }, priority: 5, respond: {} }\n";
    pt_diag_t d;
    pt_diag_init(&d);
    pt_config_t *c = pt_config_load_text("r.yaml", yaml, strlen(yaml), &d);
    pt_diag_print(&d, stdout);
    ok(c != NULL, "the route table loads");
    if (!c)
        return done_testing();
    pt_router_t *r = pt_router_build(c);
    unsigned allowed;
    is_str(match(r, "x", "/api/v1", PT_M_GET, &allowed), "api-exact", "exact beats param and prefix");
    is_str(match(r, "x", "/api/v2", PT_M_GET, &allowed), "api-param", "param beats prefix");
    is_str(match(r, "x", "/api/v2/x", PT_M_GET, &allowed), "api-prefix", "prefix takes the rest");
    is_str(match(r, "example.com:8080", "/h", PT_M_GET, &allowed), "hosted", "hosts ignore case and port");
    is_str(match(r, "a.b.example.org", "/h", PT_M_GET, &allowed), "wild", "wildcard hosts take subdomains");
    is_str(match(r, "example.org", "/h", PT_M_GET, &allowed), "any", "but not the bare domain");
    is_str(match(r, "x", "/m", PT_M_POST, &allowed), "post-only", "method selects");
    is_str(match(r, "x", "/m", PT_M_HEAD, &allowed), "get-only", "HEAD goes where GET goes");
    is_str(match(r, "x", "/p", PT_M_GET, &allowed), "high", "higher priority wins");
    is_str(match(r, "x", "/zzz", PT_M_GET, &allowed), "any", "the catch-all");
    pt_router_free(r);
    pt_config_free(c);

    const char *y2 = "listeners: [{ address: 127.0.0.1:1 }]\n"
                     "routes:\n  - { name: g, match: { paths: [/m], methods: [GET, PUT] }, respond: {} }\n";
    c = pt_config_load_text("r.yaml", y2, strlen(y2), &d);
    r = pt_router_build(c);
    ok(match(r, "x", "/m", PT_M_DELETE, &allowed) == NULL && allowed == (PT_M_GET | PT_M_PUT | PT_M_HEAD),
       "no method matches: the allowed ones are reported");
    ok(match(r, "x", "/n", PT_M_DELETE, &allowed) == NULL && allowed == 0, "no path matches: nothing allowed");
    char buf[64];
    pt_http_methods_format(allowed | PT_M_GET | PT_M_HEAD, buf, sizeof(buf));
    is_str(buf, "GET, HEAD", "Allow header text");
    pt_router_free(r);
    pt_config_free(c);
    pt_diag_free(&d);
    return done_testing();
}
