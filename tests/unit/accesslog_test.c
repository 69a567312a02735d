#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "../unit/tap.h"
/* the writer's statics: its sampling */
#include "../../src/http/accesslog.c"
#include "portico/accesslog.h"
#include "portico/config.h"
#include "portico/h1_parser.h"

static pt_config_t *load_with(const char *fmt, const char *more)
{
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "listeners: [{ address: 127.0.0.1:1 }]\naccess_log: { path: /dev/null, format: '%s'%s }\n", fmt, more);
    pt_diag_t d;
    pt_diag_init(&d);
    pt_config_t *c = pt_config_load_text("a.yaml", yaml, strlen(yaml), &d);
    pt_diag_print(&d, stdout);
    pt_diag_free(&d);
    return c;
}

static pt_config_t *load(const char *fmt)
{
    return load_with(fmt, "");
}

/* The header variables: taken from a request's fields and a head we
 * wrote, joined, masked, cut; formatted in text and JSON. */
static void test_fields(pt_alog_entry_t e)
{
    static char buf[1 << 16];
    pt_arena_t a;
    pt_arena_init(&a, 1 << 16, 0);
    pt_config_t *c = load("[$http_x_tag] [$sent_http_x_up] [$upstream_http_x_up] [$http_cookie] [$http_authorization] "
                          "[$http_x_long] [$sent_http_connection]");
    ok(c && c->access_log.nhdrs == 7, "seven header variables");
    ok(pt_accesslog_wants(&c->access_log, PT_ALOG_HDR_REQ) && pt_accesslog_wants(&c->access_log, PT_ALOG_HDR_SENT) &&
           pt_accesslog_wants(&c->access_log, PT_ALOG_HDR_UPSTREAM),
       "it wants all three heads");
    static char long_value[3000];
    memset(long_value, 'v', sizeof(long_value));
    pt_h1_header_t f[] = {{PT_STR("X-Tag"), PT_STR("a")},          {PT_STR("Cookie"), PT_STR("s=1; t=2")},
                          {PT_STR("x-TAG"), PT_STR("b\"c")},       {PT_STR("Cookie"), PT_STR("u=3")},
                          {PT_STR("Authorization"), PT_STR("Basic Zm9vOmJhcg==")},
                          {PT_STR("X_Long"), {long_value, sizeof(long_value)}}};
    e.arena = &a;
    pt_accesslog_take_fields(&c->access_log, &e, PT_ALOG_HDR_REQ, f, 6);
    const char head[] = "HTTP/1.1 200 OK\r\nX-Up: one\r\nx-up:  two \r\nConnection: close\r\n\r\n";
    pt_accesslog_take_head(&c->access_log, &e, PT_ALOG_HDR_SENT, head, sizeof(head) - 1);
    size_t n = pt_accesslog_format(&c->access_log, &e, buf, sizeof(buf));
    buf[n] = '\0';
    char want[4096];
    snprintf(want, sizeof(want), "[a, b\\x22c] [one, two] [-] [s=***; t=***; u=***] [Basic ***] [%.*s] [close]\n",
             PT_ALOG_HDR_MAX, long_value);
    is_str(buf, want, "joined, escaped, masked, cut at PT_ALOG_HDR_MAX");
    ok(n <= c->access_log.line_max, "within line_max (%zu <= %zu)", n, c->access_log.line_max);
    e.protocol = PT_STR("HTTP/2.0"); /* an HTTP/2 stream sends no Connection */
    pt_accesslog_take_head(&c->access_log, &e, PT_ALOG_HDR_SENT, head, sizeof(head) - 1);
    n = pt_accesslog_format(&c->access_log, &e, buf, sizeof(buf));
    buf[n] = '\0';
    ok(strstr(buf, "[one, two] [-] [s=") && strstr(buf, "[-]\n"), "HTTP/2: no hop-by-hop field sent: %s", buf);
    pt_config_free(c);

    c = load_with("json", ", fields: [status, http_x_tag, upstream_header_time, sent_http_x_up, param_id]");
    e.upstream_us = 5000;
    e.upstream_header_us = 4000;
    e.hdr = NULL;
    pt_accesslog_take_fields(&c->access_log, &e, PT_ALOG_HDR_REQ, f, 6);
    n = pt_accesslog_format(&c->access_log, &e, buf, sizeof(buf));
    buf[n] = '\0';
    is_str(buf, "{\"status\":200,\"http_x_tag\":\"a, b\\\"c\",\"upstream_header_time\":0.004,\"sent_http_x_up\":\"\","
                "\"param_id\":\"\"}\n",
           "json fields, in order");
    pt_config_free(c);
    pt_arena_free(&a);
}

/* A ratio is kept at that rate: within 5 sd of a binomial over 10^6 draws. */
static void test_sampling(void)
{
    pt_accesslog_conf_t conf = {.policy = {.sample = 0.1, .cut = pt_accesslog_cut(0.1)}};
    alog.conf = &conf;
    alog.rng = 12345;
    pt_alog_entry_t e = {.status = 200};
    long kept_n = 0, n = 1000000;
    for (long i = 0; i < n; i++)
        kept_n += kept(&e);
    ok(kept_n > 100000 - 1500 && kept_n < 100000 + 1500, "sample 0.1 keeps %ld of 10^6", kept_n);
    e.status = 503;
    long errors = 0;
    for (int i = 0; i < 1000; i++)
        errors += kept(&e);
    is_int(errors, 1000, "errors are all kept (sample_errors: always)");
    conf.policy.sample_errors = PT_ALOG_ERRORS_SAMPLED;
    errors = 0;
    for (int i = 0; i < 10000; i++)
        errors += kept(&e);
    ok(errors > 700 && errors < 1300, "sampled errors: %ld of 10^4", errors);
    pt_alog_policy_t route = {.off = true};
    e.policy = &route;
    e.status = 500;
    ok(!kept(&e), "a route's access_log: false drops even errors");
    route = (pt_alog_policy_t){.sample = 1, .cut = pt_accesslog_cut(1), .sample_errors = -1};
    e.status = 200;
    ok(kept(&e), "a route's sample 1 over the global 0.1");
    route = (pt_alog_policy_t){.sample = 0, .cut = 0, .sample_errors = -1};
    e.status = 404;
    ok(!kept(&e), "a route's sample 0 with the global sample_errors: sampled");
    is_int(pt_accesslog_cut(0), 0, "cut(0)");
    ok(pt_accesslog_cut(1) == UINT64_MAX && pt_accesslog_cut(0.5) == (uint64_t)1 << 63, "cut(1), cut(0.5)");
    alog.conf = NULL;
}

static void test_peek(void)
{
    pt_str_t m, t, p;
    const char bad[] = "\r\nGET /a\x01b HTTP/1.1\r\nHost: x\r\n";
    pt_h1_peek_request_line(bad, sizeof(bad) - 1, &m, &t, &p);
    ok(pt_str_eq(m, PT_STR("GET")) && pt_str_eq(t, PT_STR("/a\x01b")) && pt_str_eq(p, PT_STR("HTTP/1.1")),
       "peek: method, target and protocol of a bad line");
    pt_h1_peek_request_line("GET /x", 6, &m, &t, &p);
    ok(pt_str_eq(m, PT_STR("GET")) && pt_str_eq(t, PT_STR("/x")) && !p.p, "peek: a line cut short");
    pt_h1_peek_request_line("G\x01T / HTTP/1.1\r\n", 17, &m, &t, &p);
    ok(!m.p && !t.p && !p.p, "peek: no method, nothing");
    pt_h1_peek_request_line("GET  HTTP/1.1\r\n", 15, &m, &t, &p);
    ok(pt_str_eq(m, PT_STR("GET")) && !t.p && !p.p, "peek: no target");
}

int main(void)
{
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(5555)};
    inet_pton(AF_INET, "192.0.2.7", &peer.sin_addr);
    pt_alog_entry_t e = {
        .start = {1795654481, 123000}, /* 2026-11-26T00:54:41.123Z */
        .request_us = 1500,
        .peer = (struct sockaddr *)&peer,
        .method = PT_STR("GET"),
        .target = PT_STR("/a?b=\"c\""),
        .protocol = PT_STR("HTTP/1.1"),
        .host = PT_STR("example.com"),
        .user_agent = PT_STR("evil\nagent"),
        .request_id = PT_STR("abc"),
        .status = 200,
        .bytes_in = 10,
        .bytes_out = 20,
        .route = "hello",
        .upstream_us = -1,
    };
    static char buf[1 << 16];
    pt_config_t *c = load("combined");
    size_t n = pt_accesslog_format(&c->access_log, &e, buf, sizeof(buf));
    buf[n] = '\0';
    is_str(buf,
           "192.0.2.7 - - [26/Nov/2026:00:54:41 +0000] \"GET /a?b=\\x22c\\x22 HTTP/1.1\" 200 20 \"-\" \"evil\\x0aagent\"\n",
           "combined format, with quotes and newlines escaped");
    pt_config_free(c);

    c = load("json");
    n = pt_accesslog_format(&c->access_log, &e, buf, sizeof(buf));
    buf[n] = '\0';
    ok(strstr(buf, "\"time\":\"2026-11-26T00:54:41.123Z\"") != NULL, "json time");
    ok(strstr(buf, "\"target\":\"/a?b=\\\"c\\\"\"") != NULL, "json escapes quotes");
    ok(strstr(buf, "\"user_agent\":\"evil\\u000aagent\"") != NULL, "json escapes control bytes");
    ok(strstr(buf, "\"status\":200,") && strstr(buf, "\"request_time\":0.002") &&
           strstr(buf, "\"upstream_status\":null"),
       "json numbers and nulls: %s", buf);
    ok(buf[0] == '{' && buf[n - 2] == '}' && buf[n - 1] == '\n', "one JSON object per line");
    pt_config_free(c);

    c = load("$remote_addr $status $request_time $route $request_id $upstream_time");
    n = pt_accesslog_format(&c->access_log, &e, buf, sizeof(buf));
    buf[n] = '\0';
    is_str(buf, "192.0.2.7 200 0.002 hello abc -\n", "a custom template");
    pt_config_free(c);

    c = load("$cache_status $trace_id $upstream_connect_time $upstream_header_time $consumer");
    n = pt_accesslog_format(&c->access_log, &e, buf, sizeof(buf));
    buf[n] = '\0';
    is_str(buf, "- - - - -\n", "no cache, trace, upstream or consumer: dashes");
    pt_alog_entry_t e2 = e;
    e2.cache_status = "hit";
    e2.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    e2.upstream_us = 2500;
    e2.upstream_connect_us = 0;
    e2.upstream_header_us = 2000;
    e2.consumer = "acme";
    n = pt_accesslog_format(&c->access_log, &e2, buf, sizeof(buf));
    buf[n] = '\0';
    is_str(buf, "hit 4bf92f3577b34da6a3ce929d0e0e4736 0.000 0.002 acme\n", "the new variables");
    pt_config_free(c);

    test_fields(e);
    test_sampling();
    test_peek();
    return done_testing();
}
