#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "../unit/tap.h"
#include "portico/accesslog.h"
#include "portico/config.h"

static pt_config_t *load(const char *fmt)
{
    char yaml[512];
    snprintf(yaml, sizeof(yaml), "listeners: [{ address: 127.0.0.1:1 }]\naccess_log: { path: /dev/null, format: '%s' }\n",
             fmt);
    pt_diag_t d;
    pt_diag_init(&d);
    pt_config_t *c = pt_config_load_text("a.yaml", yaml, strlen(yaml), &d);
    pt_diag_print(&d, stdout);
    pt_diag_free(&d);
    return c;
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
    char buf[2048];
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
    return done_testing();
}
