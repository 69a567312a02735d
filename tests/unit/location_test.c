/* strip_prefix put back into Location: which values are the upstream's
 * own (and get the prefix), which are left alone, and the route's
 * compiled rewriting. */
#include "config.h"

#include "../unit/tap.h"
#include "portico/config.h"
#include "portico/location.h"
#include "portico/outq.h"
#include "portico/response.h"

static pt_str_t own[] = {PT_STR("10.0.1.10:8080"), PT_STR("backend.svc:80"), PT_STR("secure.svc:443")};
static pt_location_t loc = {PT_STR("/api"), own, 3};

/* The value the client gets: "-" when it is left as it is. */
static const char *rewritten(const char *host, const char *value)
{
    static char out[512];
    pt_location_ctx_t lc = {&loc, pt_str_from(host)};
    pt_str_t keep;
    if (!pt_location_rewrite(&lc, pt_str_from(value), &keep))
        return "-";
    snprintf(out, sizeof(out), "%.*s%.*s", PT_STR_FMT(loc.prefix), PT_STR_FMT(keep));
    return out;
}

int main(void)
{
    /* an absolute path is the upstream's own */
    is_str(rewritten("api.example", "/orders/7"), "/api/orders/7", "an absolute path");
    is_str(rewritten("api.example", "/"), "/api/", "the root");
    is_str(rewritten("api.example", "/x?a=/b#c"), "/api/x?a=/b#c", "query and fragment stay");
    /* an absolute URL to the upstream's own authority becomes a path */
    is_str(rewritten("api.example", "http://10.0.1.10:8080/orders/7"), "/api/orders/7", "a target's address");
    is_str(rewritten("api.example", "http://api.example/orders/7"), "/api/orders/7", "the Host it was sent with");
    is_str(rewritten("API.example", "https://api.EXAMPLE/x"), "/api/x", "host names ignore case, so do schemes");
    is_str(rewritten("api.example", "HTTP://10.0.1.10:8080/q"), "/api/q", "the scheme ignores case");
    is_str(rewritten("api.example", "http://backend.svc/x"), "/api/x", "port 80 is http's default");
    is_str(rewritten("api.example", "https://secure.svc/x"), "/api/x", "port 443 is https's default");
    is_str(rewritten("api.example", "https://backend.svc/x"), "-", "but not https's");
    is_str(rewritten("api.example:80", "http://api.example/x"), "/api/x", "the same with the port on the Host");
    is_str(rewritten("api.example", "http://api.example:80/x"), "/api/x", "or on the URL");
    is_str(rewritten("api.example", "http://api.example:8080/x"), "-", "another port is another authority");
    is_str(rewritten("api.example", "http://10.0.1.10:8080"), "/api/", "no path: the root");
    is_str(rewritten("api.example", "http://10.0.1.10:8080?q"), "/api?q", "a query right after the authority: the root's");
    is_str(rewritten("api.example", "http://10.0.1.10:8080#f"), "/api#f", "a fragment right after it too");
    is_str(rewritten("api.example", "//10.0.1.10:8080/n"), "/api/n", "a network-path reference");
    /* anything else is left alone */
    is_str(rewritten("api.example", "http://other.example/x"), "-", "another host");
    is_str(rewritten("api.example", "http://api.example.evil/x"), "-", "a longer host");
    is_str(rewritten("api.example", "http://user:pw@api.example/x"), "/api/x", "userinfo: the host follows it");
    is_str(rewritten("api.example", "http://api.example@other.example/x"), "-", "userinfo naming our host");
    is_str(rewritten("api.example", "orders/7"), "-", "a relative path");
    is_str(rewritten("api.example", "?page=2"), "-", "a query alone");
    is_str(rewritten("api.example", "ftp://api.example/x"), "-", "another scheme");
    is_str(rewritten("api.example", ""), "-", "an empty value");
    is_str(rewritten("", "http:///x"), "-", "an empty authority");

    /* only Location and Content-Location */
    pt_location_ctx_t lc = {&loc, PT_STR("api.example")};
    pt_str_t keep;
    pt_h1_header_t f = {PT_STR("Location"), PT_STR("/a")};
    ok(pt_location_field(&f, &lc, &keep), "Location");
    f.name = PT_STR("content-location");
    ok(pt_location_field(&f, &lc, &keep), "Content-Location");
    f.name = PT_STR("Refresh");
    ok(!pt_location_field(&f, &lc, &keep), "not another field");

    /* through the response head writer, which sizes the head for it */
    pt_h1_header_t fields[] = {{PT_STR("Location"), PT_STR("/o")}, {PT_STR("X"), PT_STR("/o")}};
    pt_resp_rewrite_t rw = {pt_location_field, &lc, loc.prefix};
    pt_resp_head_t h = {.status = 302, .fields = fields, .nfields = 2, .content_length = 0, .rewrite = &rw};
    pt_outq_t q = {0};
    size_t n = pt_resp_write_head(&q, &h, NULL, NULL);
    ok(n && memmem(q.buf, n, "\r\nLocation: /api/o\r\nX: /o\r\n", 27), "the writer puts the prefix back");
    pt_outq_free(&q);

    /* compiled from a route: strip_prefix less its slash, the targets */
    const char *text = "listeners: [{ address: 127.0.0.1:8080 }]\n"
                       "upstreams: [{ name: u, targets: [10.0.0.1:81, \"b.svc:82\"] }]\n"
                       "routes:\n"
                       "  - { match: { paths: [\"/v1/*\"] }, upstream: u, strip_prefix: /v1/ }\n"
                       "  - { match: { paths: [\"/v2/*\"] }, upstream: u, strip_prefix: /v2, rewrite_location: false }\n"
                       "  - { match: { paths: [\"/v3/*\"] }, upstream: u }\n"
                       "  - { match: { paths: [\"/*\"] }, upstream: u, strip_prefix: / }\n";
    pt_diag_t d;
    pt_diag_init(&d);
    pt_config_t *c = pt_config_load_text("p.yaml", text, strlen(text), &d);
    ok(c != NULL, "loads");
    if (c) {
        const pt_location_t *l = PT_LIST_AT(c->routes, pt_route_conf_t, 0)->location;
        ok(l && pt_str_eq(l->prefix, PT_STR("/v1")), "the prefix, less its trailing slash");
        ok(l && l->nown == 2 && pt_str_eq(l->own[0], PT_STR("10.0.0.1:81")) && pt_str_eq(l->own[1], PT_STR("b.svc:82")),
           "the targets' addresses");
        ok(!PT_LIST_AT(c->routes, pt_route_conf_t, 1)->location, "rewrite_location: false");
        ok(!PT_LIST_AT(c->routes, pt_route_conf_t, 2)->location, "no strip_prefix");
        ok(!PT_LIST_AT(c->routes, pt_route_conf_t, 3)->location, "strip_prefix: / strips nothing");
    }
    pt_config_free(c);
    pt_diag_free(&d);
    return done_testing();
}
