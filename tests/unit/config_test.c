/* Configuration errors: one case per kind, each asserting the exact
 * file:line:col and message; then defaults, -T output and reload diffs. */
#include "config.h"

#include <stdlib.h>

#include "../unit/tap.h"
#include "portico/config.h"
#include "portico/filter.h"

static pt_diag_t diag;
static char lines[PT_DIAG_MAX + 8][1024];

static pt_config_t *load(const char *text)
{
    pt_diag_free(&diag);
    pt_diag_init(&diag);
    pt_config_t *c = pt_config_load_text("p.yaml", text, strlen(text), &diag);
    memset(lines, 0, sizeof(lines));
    for (size_t i = 0; i < diag.n; i++)
        pt_diag_format(&diag, i, lines[i], sizeof(lines[i]));
    return c;
}

/* The file must fail with `want` as its first diagnostic. */
static void fails(const char *what, const char *text, const char *want)
{
    pt_config_t *c = load(text);
    ok(c == NULL, "%s: refused", what);
    is_str(lines[0], want, "%s: message", what);
    pt_config_free(c);
}

#define L "listeners:\n  - address: 127.0.0.1:8080\n"

int main(void)
{
    pt_config_t *c = load(L "routes:\n  - match: { paths: [/a] }\n    respond: { body: hi }\n");
    ok(c != NULL, "a minimal configuration loads");
    if (c) {
        pt_listener_conf_t *l = PT_LIST_AT(c->listeners, pt_listener_conf_t, 0);
        is_int(l->timeouts.header, 10000, "default header timeout 10s");
        is_int(l->timeouts.idle, 60000, "default idle timeout 60s");
        is_int(l->max_header_size, 32768, "default max_header_size 32k");
        is_str(l->name, "127.0.0.1:8080", "a listener is named after its address by default");
        is_int(c->workers, 0, "workers: auto");
        is_int(c->shutdown_timeout, 30000, "default shutdown_timeout");
        is_int(c->worker_watchdog, 10000, "default worker_watchdog");
        is_int(c->reload_timeout, 60000, "default reload_timeout");
        is_int(c->max_old_generations, 3, "default max_old_generations");
        pt_route_conf_t *r = PT_LIST_AT(c->routes, pt_route_conf_t, 0);
        is_str(r->name, "routes[0]", "a route is named after its index by default");
        is_int(r->respond.status, 200, "respond status defaults to 200");
        ok(r->resp_head && strstr(r->resp_head, "HTTP/1.1 200 OK\r\n") == r->resp_head &&
               strstr(r->resp_head, "Content-Length: 2\r\n") && strstr(r->resp_head, "Content-Type: text/plain\r\n"),
           "the response head is prebuilt");
    }
    pt_config_free(c);

    fails("unknown key with a suggestion", L "upstream: []\n",
          "p.yaml:3:1: error: unknown key \"upstream\"; did you mean \"upstreams\"?");
    fails("unknown key without a suggestion", L "frobnicate: 1\n", "p.yaml:3:1: error: unknown key \"frobnicate\"");
    fails("unknown nested key", "listeners:\n  - address: 127.0.0.1:8080\n    timeouts: { hedaer: 5s }\n",
          "p.yaml:3:17: error: listeners[0].timeouts: unknown key \"hedaer\"; did you mean \"header\"?");
    fails("wrong type: map for a scalar", L "user: { a: 1 }\n", "p.yaml:3:7: error: user: expected a string, not a map");
    fails("wrong type: scalar for a list", "listeners: 127.0.0.1:80\n",
          "p.yaml:1:12: error: listeners: expected a list, not a scalar (write [ value ] for a list of one)");
    fails("wrong type: string for an integer", L "version: one\n",
          "p.yaml:3:10: error: version: expected an integer, not \"one\"");
    fails("out of range", L "version: 2\n", "p.yaml:3:10: error: version: 2 is out of range 1-1");
    fails("workers out of range", L "workers: 0\n",
          "p.yaml:3:10: error: workers: expected \"auto\" or a number of workers from 1 to 256, not \"0\"");
    fails("bad duration", "listeners:\n  - address: 127.0.0.1:8080\n    timeouts: { idle: 10 }\n",
          "p.yaml:3:23: error: listeners[0].timeouts.idle: a duration needs a unit: ms, s, m, h or d (10s, not 10), not \"10\"");
    fails("duration out of range", "listeners:\n  - address: 127.0.0.1:8080\n    timeouts: { header: 2h }\n",
          "p.yaml:3:25: error: listeners[0].timeouts.header: 2h is out of range (1 to 3600000 ms)");
    c = load(L "worker_watchdog: 0s\n");
    ok(c && c->worker_watchdog == 0, "worker_watchdog: 0s turns it off");
    pt_config_free(c);
    fails("worker_watchdog under 1s", L "worker_watchdog: 999ms\n",
          "p.yaml:3:18: error: worker_watchdog: 999ms is out of range (0s, which turns it off, or 1000 to 3600000 ms)");
    fails("worker_watchdog without a unit", L "worker_watchdog: 0\n",
          "p.yaml:3:18: error: worker_watchdog: a duration needs a unit: ms, s, m, h or d (10s, not 10), not \"0\"");
    fails("reload_timeout under 1s", L "reload_timeout: 500ms\n",
          "p.yaml:3:17: error: reload_timeout: 500ms is out of range (1000 to 3600000 ms)");
    fails("max_old_generations over 100", L "max_old_generations: 101\n",
          "p.yaml:3:22: error: max_old_generations: 101 is out of range 0-100");
    c = load(L "max_old_generations: 0\n");
    ok(c && c->max_old_generations == 0, "max_old_generations: 0, no generation left draining");
    pt_config_free(c);
    fails("bad size", "listeners:\n  - address: 127.0.0.1:8080\n    max_header_size: 12q\n",
          "p.yaml:3:22: error: listeners[0].max_header_size: unknown size unit (use k, m or g), not \"12q\"");
    fails("bad address", "listeners:\n  - address: localhost:80\n",
          "p.yaml:2:14: error: listeners[0].address: expected a numeric IP address and port, such as 127.0.0.1:8080, not \"localhost:80\"");
    fails("port out of range", "listeners:\n  - address: 127.0.0.1:70000\n",
          "p.yaml:2:14: error: listeners[0].address: port out of range 1-65535, not \"127.0.0.1:70000\"");
    fails("bad boolean", L "admin: { allow_remote: yes }\n",
          "p.yaml:3:24: error: admin.allow_remote: expected true or false, not \"yes\"");
    fails("bad enum with a suggestion",
          L "upstreams:\n  - name: u\n    balancer: round-robbin\n    targets: [127.0.0.1:1]\n",
          "p.yaml:5:15: error: upstreams[0].balancer: unknown value \"round-robbin\"; did you mean \"round-robin\"?");
    fails("missing required key", "listeners:\n  - name: x\n",
          "p.yaml:2:5: error: listeners[0]: missing required key \"address\"");
    fails("no listeners key", "routes: []\n", "p.yaml:1:1: error: missing required key \"listeners\"");
    fails("empty listeners", "listeners: []\n", "p.yaml:1:12: error: listeners: at least one listener is needed");
    fails("duplicate listener names",
          "listeners:\n  - { name: a, address: 127.0.0.1:1 }\n  - { name: a, address: 127.0.0.1:2 }\n",
          "p.yaml:3:13: error: duplicate listener name \"a\"");
    is_str(lines[1], "p.yaml:2:13: note: \"a\" is first defined here", "the note points at the first one");
    fails("duplicate listener addresses",
          "listeners:\n  - { name: a, address: 127.0.0.1:1 }\n  - { name: b, address: 127.0.0.1:1 }\n",
          "p.yaml:3:25: error: listeners[1]: address 127.0.0.1:1 is already used");
    fails("a route path not in normal form",
          L "routes:\n  - { match: { paths: [\"/a/%7euser/../b\"] }, respond: {} }\n",
          "p.yaml:4:24: error: routes[0]: \"/a/%7euser/../b\" never matches: request paths are "
          "matched in normal form, so write \"/a/b\"");
    fails("a route path with a lower-case escape",
          L "routes:\n  - { match: { paths: [\"/a%2fb\"] }, respond: {} }\n",
          "p.yaml:4:24: error: routes[0]: \"/a%2fb\" never matches: request paths are matched in "
          "normal form, so write \"/a%2Fb\"");
    fails("a route path that climbs above the root",
          L "routes:\n  - { match: { paths: [\"/../a\"] }, respond: {} }\n",
          "p.yaml:4:24: error: routes[0]: \"/../a\" is no request path (a bad %-escape, %00, or "
          "\"..\" above the root)");
    fails("an escaped slash in a route path with no listener that keeps one",
          L "routes:\n  - { match: { paths: [\"/a%2Fb/*\"] }, respond: {} }\n",
          "p.yaml:4:24: error: routes[0]: \"/a%2Fb/*\" never matches: every listener refuses or decodes an "
          "escaped slash in a request path (escaped_slashes: keep keeps it)");
    c = load("listeners:\n  - { address: 127.0.0.1:1, escaped_slashes: keep }\n"
             "routes:\n  - { match: { paths: [\"/a%2Fb/*\", \"/:id/x\", \"/c/*rest\", \"~^/%2f\"] }, respond: {} }\n");
    ok(c != NULL, "an escaped slash in a route path loads where a listener keeps it; params and regexes are left alone");
    pt_config_free(c);
    fails("duplicate route names",
          L "routes:\n  - { name: r, respond: {} }\n  - { name: r, match: { paths: [/o] }, respond: {} }\n",
          "p.yaml:5:13: error: duplicate route name \"r\"");
    fails("dangling upstream reference",
          L "upstreams:\n  - { name: api, targets: [127.0.0.1:1] }\n  - { name: web, targets: [127.0.0.1:2] }\n"
            "routes:\n  - { upstream: billing }\n",
          "p.yaml:7:17: error: routes[0].upstream: unknown upstream \"billing\" (known: api, web)");
    fails("dangling reference with a suggestion",
          L "upstreams:\n  - { name: orders, targets: [127.0.0.1:1] }\nroutes:\n  - { upstream: order }\n",
          "p.yaml:6:17: error: routes[0].upstream: unknown upstream \"order\"; did you mean \"orders\"?");
    unsetenv("PT_UNSET_FOR_TEST");
    fails("unset ${VAR}", L "user: ${PT_UNSET_FOR_TEST}\n",
          "p.yaml:3:7: error: environment variable PT_UNSET_FOR_TEST is not set");
    fails("route without an action", L "routes:\n  - match: { paths: [/x] }\n",
          "p.yaml:4:5: error: routes[0]: a route needs upstream or respond");
    fails("lower-case method", L "routes:\n  - match: { methods: [get] }\n    respond: {}\n",
          "p.yaml:4:24: error: routes[0]: unknown method \"get\"; did you mean \"GET\"?");
    fails("path without a slash", L "routes:\n  - match: { paths: [api] }\n    respond: {}\n",
          "p.yaml:4:22: error: routes[0]: a path starts with /, not \"api\"");
    fails("reserved response header", L "routes:\n  - respond: { headers: { Content-Length: 5 } }\n",
          "p.yaml:4:27: error: routes[0]: header \"Content-Length\" is set by Portico and cannot be configured");
    fails("admin on a public address", L "admin: { address: 0.0.0.0:9180 }\n",
          "p.yaml:3:19: error: admin.address: 0.0.0.0:9180 is not a loopback address; set allow_remote: true to "
          "expose the admin API");
    c = load(L "admin: { address: 0.0.0.0:9180, allow_remote: true }\n");
    ok(c != NULL, "allow_remote: true permits a public admin address");
    pt_config_free(c);
    fails("unknown access log variable", L "access_log: { path: /tmp/x, format: \"$remote_addr $nope\" }\n",
          "p.yaml:3:37: error: access_log: unknown variable $nope in the access log format");

    /* every error at once, in file order */
    c = load("listeners:\n  - address: nowhere\nworkers: lots\nbogus: 1\nroutes:\n  - { upstream: x }\n");
    ok(c == NULL && diag.errors == 4, "four errors reported at once (got %zu)", diag.errors);
    ok(strstr(lines[0], "p.yaml:2:14:") && strstr(lines[1], "p.yaml:3:10:") && strstr(lines[2], "p.yaml:4:1:") &&
           strstr(lines[3], "p.yaml:6:17:"),
       "each with its own location");

    /* r2: a route whose own keys fail is still checked against the others
     * without crashing, and the errors come out in file order */
    c = load(L "routes:\n  - respond: { status: 999 }\n  - { upstream: nope }\nbogus: true\n");
    ok(c == NULL && diag.errors == 3, "r2: three errors (got %zu)", diag.errors);
    is_str(lines[0], "p.yaml:4:24: error: routes[0].respond.status: 999 is out of range 200-599", "r2: first");
    is_str(lines[1], "p.yaml:5:17: error: routes[1].upstream: unknown upstream \"nope\" (no upstreams are defined)",
           "r2: second");
    is_str(lines[2], "p.yaml:6:1: error: unknown key \"bogus\"", "r2: third, in file order");

    /* r3: a list element of the wrong type is reported, and the checks
     * that run after the schema skip it (found by the config fuzzer) */
    fails("a map inside trusted_proxies", L "trusted_proxies: [addresw: 1]\n",
          "p.yaml:3:19: error: trusted_proxies[0]: expected a string, not a map");
    fails("a bad range in trusted_proxies", L "trusted_proxies: [10.1.2.3/8]\n",
          "p.yaml:3:19: error: trusted_proxies[0]: the address has bits set past the prefix length, not \"10.1.2.3/8\"");

    fails("routes that can never be told apart",
          L "routes:\n  - { name: a, match: { paths: [/x], hosts: [b.test, a.test] }, respond: {} }\n"
            "  - { name: b, match: { paths: [/x], hosts: [a.test, b.test] }, respond: {} }\n",
          "p.yaml:5:23: error: routes[1] (\"b\") can never be chosen: routes[0] (\"a\") has the same hosts, path, "
          "methods, predicates and priority");
    is_str(lines[1], "p.yaml:4:23: note: \"a\" is defined here", "the note names the first route");
    c = load(L "routes:\n  - { name: a, match: { paths: [/x] }, respond: {} }\n"
               "  - { name: b, match: { paths: [/x], methods: [GET] }, respond: {} }\n"
               "  - { name: c, match: { paths: [/x], headers: { x: y } }, respond: {} }\n"
               "  - { name: d, match: { paths: [/x] }, priority: 2, respond: {} }\n");
    ok(c != NULL, "routes that differ in methods, predicates or priority are fine");
    pt_config_free(c);
    /* strip_prefix must be able to begin some path of the route */
    fails("strip_prefix that no path begins with",
          L "routes:\n  - { match: { paths: [\"/api/*\", /v1/x] }, respond: {}, strip_prefix: /apis }\n",
          "p.yaml:4:71: error: routes[0].strip_prefix: \"/apis\" can never be stripped: no path of the route "
          "(/api/*, /v1/x) begins with it");
    fails("strip_prefix with a slash after an exact path",
          L "routes:\n  - { match: { paths: [/api] }, respond: {}, strip_prefix: /api/ }\n",
          "p.yaml:4:60: error: routes[0].strip_prefix: \"/api/\" can never be stripped: no path of the route "
          "(/api) begins with it");
    static const char *const strippable[][2] = {
        {"/api/*", "/api"}, {"/api/*", "/api/"}, {"/api", "/api"}, {"/api/v1/x", "/api/v1"}, {"/:t/api", "/acme"},
        {"/:t/api/*", "/acme/api/"}, {"/*rest", "/anything/at/all"}, {"/a/*", "/a/b/c"}, {"~^/x", "/y"},
        {"/x", "/"},
    };
    for (size_t i = 0; i < sizeof(strippable) / sizeof(strippable[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text), L "routes:\n  - { match: { paths: [\"%s\"] }, respond: {}, strip_prefix: %s }\n",
                 strippable[i][0], strippable[i][1]);
        c = load(text);
        ok(c != NULL, "strip_prefix %s may begin path %s", strippable[i][1], strippable[i][0]);
        pt_config_free(c);
    }
    static const char *const never[][2] = {
        {"/apiary/*", "/api"}, {"/api", "/api/v1"}, {"/a/:id", "/a/b/c"}, {"/b/*", "/a"}, {"/API/*", "/api"},
    };
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text), L "routes:\n  - { match: { paths: [\"%s\"] }, respond: {}, strip_prefix: %s }\n",
                 never[i][0], never[i][1]);
        c = load(text);
        ok(c == NULL, "strip_prefix %s can never begin path %s", never[i][1], never[i][0]);
        pt_config_free(c);
    }
    fails("an invalid regex path", L "routes:\n  - { match: { paths: [\"~^/a(b\"] }, respond: {} }\n",
          "p.yaml:4:24: error: routes[0]: invalid regex \"^/a(b\": missing closing parenthesis at offset 5");
    fails("an invalid regex predicate", L "routes:\n  - { match: { headers: { x: \"~[\" } }, respond: {} }\n",
          "p.yaml:4:30: error: routes[0]: invalid regex \"[\": missing terminating ] for character class at offset 1");

    /* filters */
    fails("an unknown filter", L "routes:\n  - { respond: {}, filters: { cros: {} } }\n",
          "p.yaml:4:31: error: routes[0].filters: unknown filter \"cros\"; did you mean \"cors\"? (the filters are: "
          "ip-restriction, circuit-breaker, fault-injection, request-size, cors, tls-auth, key-auth, basic-auth, jwt-auth, hmac-auth, forward-auth, acl, limit-conn, limit-count, limit-req, redirect, path-rewrite, "
          "request-headers, response-headers, grpc-transcode, grpc-web, cache)");
    fails("a plugin of APISIX's", L "routes:\n  - { respond: {}, filters: { api-breaker: {} } }\n",
          "p.yaml:4:31: error: routes[0].filters: unknown filter \"api-breaker\": APISIX's name for what Portico "
          "calls \"circuit-breaker\" (the filters are: ip-restriction, circuit-breaker, fault-injection, "
          "request-size, cors, tls-auth, key-auth, basic-auth, jwt-auth, hmac-auth, forward-auth, acl, limit-conn, limit-count, limit-req, redirect, path-rewrite, request-headers, response-headers, grpc-transcode, grpc-web, cache)");

    /* names users bring from Kong, APISIX and nginx */
    fails("Kong's plugins", L "routes:\n  - { respond: {}, plugins: {} }\n",
          "p.yaml:4:20: error: routes[0]: unknown key \"plugins\": Kong's and APISIX's name for what Portico calls "
          "\"filters\"");
    fails("APISIX's upstream type, by its value", L "upstreams:\n  - { name: u, targets: [a:1], type: chash }\n",
          "p.yaml:4:32: error: upstreams[0]: unknown key \"type\": APISIX's name for what Portico calls "
          "\"balancer\" (write balancer: consistent-hashing)");
    fails("APISIX's nodes, a map", L "upstreams:\n  - { name: u, targets: [a:1], nodes: { \"10.0.0.1:80\": 3 } }\n",
          "p.yaml:4:32: error: upstreams[0]: unknown key \"nodes\": APISIX's name for what Portico calls "
          "\"targets\" (write targets: [{ address: \"10.0.0.1:80\", weight: 3 }])");
    fails("nginx's worker_processes", L "worker_processes: 4\n",
          "p.yaml:3:1: error: unknown key \"worker_processes\": nginx's name for what Portico calls \"workers\"");
    fails("a habit with no Portico name", L "routes:\n  - { respond: {}, preserve_host: true }\n",
          "p.yaml:4:20: error: routes[0]: unknown key \"preserve_host\" (Kong's): Portico passes the client's Host "
          "on, unless the route's upstream_host sets another");
    fails("a bad range in ip-restriction", L "routes:\n  - { respond: {}, filters: { ip-restriction: { allow: [10.0.0.1/8] } } }\n",
          "p.yaml:4:57: error: routes[0].filters.ip-restriction: allow[0]: the address has bits set past the prefix length");
    fails("ip-restriction with no list", L "global_filters: { ip-restriction: {} }\n",
          "p.yaml:3:35: error: global_filters.ip-restriction: ip-restriction needs an allow or a deny list");
    fails("redirect with both", L "routes:\n  - { respond: {}, filters: { redirect: { location: /a, https: true } } }\n",
          "p.yaml:4:41: error: routes[0].filters.redirect: redirect needs either location or https: true");
    fails("an unknown template variable",
          L "routes:\n  - { respond: {}, filters: { request-headers: { set: { x-a: \"${nope}\" } } } }\n",
          "p.yaml:4:57: error: routes[0].filters.request-headers: unknown variable ${nope} (use route, param.NAME, "
          "header.NAME, query.NAME, client_ip, request_id, trace_id, host, path, scheme, query, consumer, tls_protocol, tls_client_subject, tls_client_san, tls_client_verify)");
    fails("setting Host with request-headers",
          L "routes:\n  - { respond: {}, filters: { request-headers: { set: { host: x } } } }\n",
          "p.yaml:4:57: error: routes[0].filters.request-headers: header \"host\" is set by Portico; use the route's "
          "upstream_host");
    fails("request-size without max", L "routes:\n  - { respond: {}, filters: { request-size: {} } }\n",
          "p.yaml:4:45: error: routes[0].filters.request-size: missing required key \"max\"");
    c = load(L "global_filters: { cors: { origins: [\"https://a.example\"] }, response-headers: { set: { x: \"${route}\" } } }\n"
               "routes:\n  - { name: r, respond: {}, filters: { cors: false, request-size: { max: 1m } } }\n");
    ok(c != NULL, "filters load");
    if (c) {
        const pt_route_conf_t *r = PT_LIST_AT(c->routes, pt_route_conf_t, 0);
        ok(r->fconf && !r->fconf[PT_FILTER_CORS] && r->fconf[PT_FILTER_REQUEST_SIZE] &&
               r->fconf[PT_FILTER_RESPONSE_HEADERS],
           "false turns a global filter off; the route's own and the other global ones stay");
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        pt_config_dump(f, c);
        fclose(f);
        ok(strstr(out, "filters: { request-size: { max: 1m }, cors: false }") != NULL, "-T prints filters: %s",
           strstr(out, "filters: {") ? strstr(out, "filters: {") : "(none)");
        pt_diag_t d2;
        pt_diag_init(&d2);
        pt_config_t *again = pt_config_load_text("dump.yaml", out, len, &d2);
        ok(again != NULL, "and loads them back");
        pt_config_free(again);
        pt_diag_free(&d2);
        free(out);
    }
    pt_config_free(c);

    c = load(L "global_filters: { request-size: { max: 1k } }\n"
               "consumers:\n  - { name: big, filters: { request-size: { max: 1g } } }\n"
               "  - { name: none, filters: { request-size: false } }\n  - { name: plain }\n"
               "routes:\n  - { name: r, respond: {}, filters: { request-size: { max: 1m } } }\n"
               "  - { name: s, match: { paths: [/s] }, respond: {} }\n");
    ok(c != NULL, "consumers with filter settings load");
    if (c) {
        const pt_route_conf_t *r = PT_LIST_AT(c->routes, pt_route_conf_t, 0), *s2 = PT_LIST_AT(c->routes, pt_route_conf_t, 1);
        const pt_consumer_conf_t *big = PT_LIST_AT(c->consumers, pt_consumer_conf_t, 0),
                                 *none = PT_LIST_AT(c->consumers, pt_consumer_conf_t, 1),
                                 *plain = PT_LIST_AT(c->consumers, pt_consumer_conf_t, 2);
        const int64_t *max_of;
#define MAX(cons, route) ((max_of = pt_filters_conf_for(c, route, cons, PT_FILTER_REQUEST_SIZE)) ? max_of[1] : -1)
        is_int(MAX(big, r), 1LL << 30, "a consumer's setting wins over the route's");
        is_int(MAX(none, r), -1, "a consumer can turn a filter off");
        is_int(MAX(plain, r), 1 << 20, "a consumer without a setting gets the route's");
        is_int(MAX(plain, s2), 1024, "and without the route's, the global one");
        is_int(MAX(NULL, s2), 1024, "no consumer: route, then global");
#undef MAX
    }
    pt_config_free(c);
    fails("duplicate consumers", L "consumers: [{ name: a }, { name: a }]\n",
          "p.yaml:3:34: error: duplicate consumer name \"a\"");

    /* the cap */
    char many[8192] = L;
    for (int i = 0; i < 30; i++) {
        char k[32];
        snprintf(k, sizeof(k), "bad_key_%d: 1\n", i);
        strcat(many, k);
    }
    c = load(many);
    ok(c == NULL && diag.errors == 30 && diag.n == PT_DIAG_MAX && diag.dropped == 10,
       "errors are capped at %d with the rest counted (kept %zu, dropped %zu)", PT_DIAG_MAX, diag.n, diag.dropped);

    /* -T: defaults filled in, ${VAR} shown as written, never its value */
    setenv("PT_TEST_TOKEN", "topsecret", 1);
    c = load(L "routes:\n  - respond: { body: \"${PT_TEST_TOKEN}\", headers: { x-token: \"${PT_TEST_TOKEN}\" } }\n");
    ok(c != NULL, "a configuration with ${VAR} loads");
    if (c) {
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        pt_config_dump(f, c);
        fclose(f);
        ok(strstr(out, "body: \"${PT_TEST_TOKEN}\"") != NULL, "-T shows the reference, not the value");
        ok(strstr(out, "\"x-token\": \"${PT_TEST_TOKEN}\"") != NULL, "also in header maps");
        ok(strstr(out, "topsecret") == NULL, "-T never prints the secret");
        ok(strstr(out, "max_headers: 100") != NULL, "-T prints defaults");
        /* the dump is itself a valid configuration that loads to the same */
        pt_diag_t d2;
        pt_diag_init(&d2);
        pt_config_t *again = pt_config_load_text("dump.yaml", out, len, &d2);
        ok(again != NULL, "the -T output loads again");
        char diff[256] = "";
        if (again)
            pt_config_diff(c, again, diff, sizeof(diff));
        is_str(diff, "no changes", "and is the same configuration");
        pt_config_free(again);
        pt_diag_free(&d2);
        free(out);
    }
    pt_config_free(c);

    /* reload summaries */
    pt_config_t *a = load(L "routes:\n  - { name: a, respond: {} }\n  - { name: b, match: { paths: [/b] }, respond: {} }\n");
    pt_config_t *b = load(L "workers: 3\nroutes:\n  - { name: a, respond: { status: 204 } }\n"
                            "  - { name: c, match: { paths: [/c] }, respond: {} }\n"
                            "  - { name: d, match: { paths: [/d] }, respond: {} }\n");
    char diff[256] = "";
    if (a && b)
        pt_config_diff(a, b, diff, sizeof(diff));
    is_str(diff, "+2 routes, -1 route, ~1 route, ~global settings", "the diff summary");
    pt_config_free(a);
    pt_config_free(b);

    pt_diag_free(&diag);
    return done_testing();
}
