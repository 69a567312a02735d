/* THE configuration schema.  Every key Portico accepts is defined here and
 * nowhere else: the loader, `portico -T` and portico.yaml(5) read these
 * tables.  Cross-field checks of one section sit next to its table; checks
 * across sections (names, references) are in config.c. */
#include "config.h"

#include <event2/util.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "portico/accesslog_conf.h"
#include "portico/conf.h"
#include "portico/credentials.h"
#include "portico/filter.h"
#include "portico/config-t.h"
#include "portico/http.h"
#include "portico/log.h"
#include "portico/route_conf.h"
#include "portico/schema.h"
#include "portico/trace.h"
#include "portico/value.h"

#define END {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL}
#define F(type, field) offsetof(type, field)

static const char *const balancer_names[] = {"round-robin", "least-connections", "consistent-hashing",
                                             "latency", "random-two", NULL};
static const char *const hash_on_names[] = {"none", "header", "cookie", "query", "ip", "uri", NULL};

/* ---- workers: "auto" or a number ---- */

static int set_workers(pt_conf_ctx_t *cc, const pt_node_t *n, void *field)
{
    int64_t v;
    if (n->type == PT_NODE_SCALAR && strcmp(n->s, "auto") == 0) {
        *(int64_t *)field = 0;
        return 0;
    }
    if (n->type != PT_NODE_SCALAR || pt_value_int(n->s, &v) || v < 1 || v > 256) {
        pt_conf_error(cc, n, "expected \"auto\" or a number of workers from 1 to 256, not %s%s%s",
                      n->type == PT_NODE_SCALAR ? "\"" : "", n->type == PT_NODE_SCALAR ? n->s : pt_node_type_name(n),
                      n->type == PT_NODE_SCALAR ? "\"" : "");
        return -1;
    }
    *(int64_t *)field = v;
    return 0;
}

static void print_workers(FILE *f, const void *field, const pt_list_t *prov)
{
    int64_t v = *(const int64_t *)field;
    if (v)
        fprintf(f, "%lld", (long long)v);
    else
        fputs("auto", f);
}

/* ---- worker_watchdog: 0 (off), or a duration from 1s ---- */

/* Workers beat at least every second, and every third of the watchdog: a
 * watchdog shorter than 1s would leave too little room above the beat for
 * a loop that is busy but alive (a large reply, a slow disk), so the
 * master would kill healthy workers.  0 must stay possible, which a plain
 * min/max range cannot say. */
#define WATCHDOG_MIN 1000
#define WATCHDOG_MAX 3600000

static int set_watchdog(pt_conf_ctx_t *cc, const pt_node_t *n, void *field)
{
    int64_t v;
    const char *err;
    if (n->type != PT_NODE_SCALAR) {
        pt_conf_error(cc, n, "expected a duration, not %s", pt_node_type_name(n));
        return -1;
    }
    if ((err = pt_value_duration(n->s, &v))) {
        pt_conf_error(cc, n, "%s, not \"%s\"", err, n->s);
        return -1;
    }
    if (v != 0 && (v < WATCHDOG_MIN || v > WATCHDOG_MAX)) {
        pt_conf_error(cc, n, "%s is out of range (0s, which turns it off, or %d to %d ms)", pt_node_text(n),
                      WATCHDOG_MIN, WATCHDOG_MAX);
        return -1;
    }
    *(int64_t *)field = v;
    return 0;
}

static void print_duration(FILE *f, const void *field, const pt_list_t *prov)
{
    char buf[64];
    pt_value_format_duration(*(const int64_t *)field, buf, sizeof(buf));
    fputs(buf, f);
}

/* ---- log level ---- */

static int set_level(pt_conf_ctx_t *cc, const pt_node_t *n, void *field)
{
    int lv = n->type == PT_NODE_SCALAR ? pt_log_level_parse(n->s) : -1;
    if (lv < 0) {
        pt_conf_error(cc, n, "expected a log level (crit, error, warn, notice, info, debug)");
        return -1;
    }
    *(int *)field = lv;
    return 0;
}

static void print_level(FILE *f, const void *field, const pt_list_t *prov)
{
    fputs(pt_log_level_names[*(const int *)field], f);
}

/* ---- error_log, access_log ---- */

static const pt_directive_t error_log_keys[] = {
    {"path", PT_T_STR, F(pt_log_conf_t, path), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, "path",
     "Where the error log goes: a file, or stderr. When unset: stderr with -f, "
     "/var/log/portico/error.log otherwise. Reopened on SIGUSR1: the master creates the new file and, started "
     "as root with user set, gives it to that user, so that the workers can reopen it too; -t checks that its "
     "directory exists and that the workers can reach it."},
    {"level", PT_T_CUSTOM, F(pt_log_conf_t, level), "notice", 0, 0, NULL, NULL, NULL, set_level, print_level, 0,
     "level", "The least severe level written: crit, error, warn, notice, info or debug. -l overrides it."},
    END,
};
static const pt_section_t error_log_section = {"error_log", sizeof(pt_log_conf_t), error_log_keys, NULL, "path", NULL};


static const pt_directive_t access_log_keys[] = {
    {"path", PT_T_STR, F(pt_accesslog_conf_t, path), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, "path",
     "The access log file. Unset: no access log. Reopened on SIGUSR1. Entries the file does not take (a full "
     "disk) are dropped, never retried: each worker counts them (access_log_lost in the admin API's /status) "
     "and reports them in the error log at most once a minute, and when it exits."},
    {"format", PT_T_STR, F(pt_accesslog_conf_t, format), "combined", 0, 0, NULL, NULL, NULL, NULL, NULL, 0,
     "format",
     "combined, common, json, or a template in which $name stands for a field: "
     "$time, $time_iso8601, $remote_addr, $method, $target, $protocol, $status, $bytes_in, "
     "$bytes_out, $request_time, $route, $request_id, $host, $user_agent, $referer, "
     "$upstream_addr, $upstream_status, $upstream_time, $tls_protocol, $tls_cipher, $completion, "
     "$consumer (the consumer an auth filter found, - when none), "
     "$cache_status (the cache filter's verdict: hit, miss, stale, revalidated or bypass; - without one), "
     "$trace_id (the request's trace id, - when not traced), "
     "$upstream_connect_time and $upstream_header_time (seconds with milliseconds, as nginx: from the start of "
     "the last attempt until its connection was ready, 0.000 for a kept-alive one, and until its response "
     "head was read; - without an upstream, or when that attempt got no further), "
     "$param_NAME for a route parameter, and header fields by name as nginx spells them (lower case, "
     "dashes as underscores, matched whatever the field's case): $http_NAME (the request's), "
     "$sent_http_NAME (the response head Portico sent the client, after the filters' edits) and "
     "$upstream_http_NAME (the last attempt's response head as the upstream sent it). Several fields of a "
     "name are joined with \", \" (a Cookie's with \"; \"); a value keeps at most 1024 bytes, and at most "
     "2048 of the line once escaped; - when absent. Authorization and Proxy-Authorization show their scheme "
     "only (Bearer ***), Cookie and Set-Cookie their cookies' names (sid=***), and a field whose name holds "
     "key, token, secret, passw or session shows ***. gRPC calls have no header fields or upstream times "
     "in the log. The template's own text may hold no control byte but the tab: a request is one line. "
     "$bytes_out counts what was handed to the client's socket; "
     "$completion says how the request ended: ok (the whole response), client_gone (the client closed or "
     "reset first: status 499 when nothing was answered), upstream_cut (the upstream reset, closed early or "
     "sent a broken body after the head went out), timeout (a deadline passed after the head went out) or "
     "error. A request cut short is logged once, with the status the client got. Strings are escaped: "
     "\\xHH in the text formats (quotes, backslashes, control and non-ASCII bytes), \\u00HH in JSON. "
     "A request that could not be parsed (400, 414, 431, 505) logs the method and target when its request "
     "line got that far."},
    {"fields", PT_T_LIST, F(pt_accesslog_conf_t, fields), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem, NULL,
     NULL, 0, "list of strings",
     "With format: json, the fields of each line, in order, each the name of a variable above without its $ "
     "(time is $time_iso8601, under the key time): [time, status, http_x_request_id, sent_http_content_type]. "
     "An unknown name is an error. Unset or empty (as -T prints it): time, remote_addr, method, target, "
     "protocol, status, bytes_in, bytes_out, request_time, route, request_id, host, user_agent, referer, upstream_addr, upstream_status, "
     "upstream_time, tls_protocol, tls_cipher, completion and consumer. Numbers are JSON numbers (null when "
     "absent), other fields strings (\"\" when absent)."},
    {"sample", PT_T_CUSTOM, F(pt_accesslog_conf_t, policy.sample), "1", 0, 0, NULL, NULL, NULL,
     pt_accesslog_set_ratio, pt_accesslog_print_ratio, 0, "ratio",
     "The share of requests logged, from 0 to 1 (0.1: one in ten, drawn at random by each worker). "
     "A route's access_log overrides it. Errors are kept whatever the draw, unless sample_errors says "
     "sampled."},
    {"sample_errors", PT_T_ENUM, F(pt_accesslog_conf_t, policy.sample_errors), "always", 0, 0,
     pt_alog_errors_names, NULL, NULL, NULL, NULL, 0, NULL,
     "always: a request answered 4xx or 5xx (499 when the client left), or whose response was cut short, "
     "is logged whatever sample says; sampled: errors are sampled as the rest. With always and sample "
     "below 1, the log holds every error and a share of the rest, so ratios read from it overstate errors."},
    {"buffer", PT_T_SIZE, F(pt_accesslog_conf_t, buffer), "64k", 0, 16 << 20, NULL, NULL, NULL, NULL, NULL, 0,
     NULL, "Lines are buffered per worker up to this size; 0 writes every line at once."},
    {"flush", PT_T_DURATION, F(pt_accesslog_conf_t, flush), "1s", 1, 60000, NULL, NULL, NULL, NULL, NULL, 0,
     NULL, "Buffered lines are written at least this often."},
    END,
};
static const pt_section_t access_log_section = {"access_log", sizeof(pt_accesslog_conf_t), access_log_keys,
                                                pt_accesslog_compile, "path", NULL};

/* ---- listeners ---- */

static const pt_directive_t timeout_keys[] = {
    {"header", PT_T_DURATION, F(pt_listener_conf_t, timeouts.header) - F(pt_listener_conf_t, timeouts), "10s",
     1, 3600000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Deadline for a request's whole head, from its first byte; then 408 and close."},
    {"body", PT_T_DURATION, F(pt_listener_conf_t, timeouts.body) - F(pt_listener_conf_t, timeouts), "30s", 1,
     3600000, NULL, NULL, NULL, NULL, NULL, 0, NULL, "Longest gap between two reads of a request body."},
    {"idle", PT_T_DURATION, F(pt_listener_conf_t, timeouts.idle) - F(pt_listener_conf_t, timeouts), "60s", 1,
     86400000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "How long a keep-alive connection may wait for its next request."},
    {"send", PT_T_DURATION, F(pt_listener_conf_t, timeouts.send) - F(pt_listener_conf_t, timeouts), "30s", 1,
     3600000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Longest time without progress while writing to the client. On HTTP/2 it also bounds the wait on the "
     "client's flow-control window: a stream whose answer is still coming from upstream is reset (RST_STREAM); "
     "a connection whose streams all wait on the window, their upstream exchanges over, is closed. Response "
     "bytes sent restart it; PING and SETTINGS frames do not."},
    {"filters", PT_T_DURATION, F(pt_listener_conf_t, timeouts.filters) - F(pt_listener_conf_t, timeouts), "30s",
     1, 3600000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Longest time a request may wait on its filters (a fault-injection delay; forward auth, key sets and "
     "Redis to come); then 504 and close."},
    END,
};
static const pt_section_t timeout_section = {"timeouts", sizeof(((pt_listener_conf_t *)0)->timeouts),
                                             timeout_keys, NULL, NULL, NULL};

static const pt_directive_t tls_cert_keys[] = {
    {"cert", PT_T_STR, F(pt_tls_cert_conf_t, cert), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, PT_F_REQUIRED, "path",
     "PEM file with the certificate, then its chain."},
    {"key", PT_T_STR, F(pt_tls_cert_conf_t, key), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, PT_F_REQUIRED, "path",
     "PEM file with its private key (RSA or ECDSA); read by the master before it drops privileges."},
    END,
};
static const pt_section_t tls_cert_section = {"certificate", sizeof(pt_tls_cert_conf_t), tls_cert_keys, NULL, NULL,
                                              NULL};
static const char *const verify_names[] = {"required", "optional", NULL};
static const char *const slashes_names[] = {"reject", "decode", "keep", NULL};
/* Mozilla's "intermediate" TLS 1.2 list without the DHE suites (we set
 * no DH parameters): forward secrecy and AEAD only. */
#define PT_TLS12_CIPHERS                                                                                      \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"                \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TL(f) (F(pt_listener_conf_t, tls.f) - F(pt_listener_conf_t, tls))
static const pt_directive_t tls_keys[] = {
    {"certificates", PT_T_LIST, TL(certificates), NULL, 0, 0, NULL, &tls_cert_section, NULL, NULL, NULL,
     PT_F_REQUIRED, NULL,
     "Certificate and key pairs. A client's SNI name picks the certificate whose DNS names (or CN) match it "
     "exactly, then one whose *.example.com wildcard does, else the first. An RSA and an ECDSA certificate for "
     "the same names are both served, by what the client supports."},
    {"protocols", PT_T_LIST, TL(protocols), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem, NULL, NULL, 0,
     "list of strings", "TLS versions accepted: TLSv1.2, TLSv1.3. Empty: both."},
    {"ciphers", PT_T_STR, TL(ciphers), PT_TLS12_CIPHERS, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "OpenSSL cipher list for TLS 1.2. The default is Mozilla's intermediate profile without DHE: ECDHE key "
     "exchange with AEAD ciphers only (no CBC, no static RSA)."},
    {"ciphersuites", PT_T_STR, TL(ciphersuites), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "OpenSSL cipher suites for TLS 1.3. Unset: OpenSSL's default."},
    {"session_tickets", PT_T_BOOL, TL(session_tickets), "true", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Session resumption by ticket. The ticket keys are derived from a secret the master keeps in shared "
     "memory, so every worker accepts every worker's tickets, and kept across reloads."},
    {"ticket_key_rotation", PT_T_DURATION, TL(ticket_key_rotation), "1h", 1000, 604800000, NULL, NULL, NULL, NULL,
     NULL, 0, NULL,
     "A new ticket key is used each period; tickets of the period before are still accepted (and renewed)."},
    {"client_ca", PT_T_STR, TL(client_ca), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, "path",
     "PEM file of the CAs that client certificates must chain to. Set: clients are asked for a certificate."},
    {"verify", PT_T_ENUM, TL(verify), "required", 0, 0, verify_names, NULL, NULL, NULL, NULL, 0, NULL,
     "With client_ca: required refuses a handshake without a valid client certificate; optional accepts one "
     "without a certificate, and refuses one with an invalid certificate."},
    {"handshake_timeout", PT_T_DURATION, TL(handshake_timeout), "10s", 1, 600000, NULL, NULL, NULL, NULL, NULL,
     0, NULL, "How long a TLS handshake may take."},
    END,
};
/* Described here; the contexts are built by the master (pt_tls_build). */
static int check_tls(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    const pt_tls_conf_t *t = obj;
    if (!t->certificates.n) {
        pt_conf_error_key(cc, n, "certificates", "a TLS listener needs at least one certificate");
        return -1;
    }
    return 0;
}
static const pt_section_t tls_section = {"tls", sizeof(pt_tls_conf_t), tls_keys, check_tls, NULL, NULL};

#define H2(f) (F(pt_listener_conf_t, http2_settings.f) - F(pt_listener_conf_t, http2_settings))
static const pt_directive_t h2_keys[] = {
    {"max_concurrent_streams", PT_T_INT, H2(max_concurrent_streams), "128", 1, 10000, NULL, NULL, NULL, NULL, NULL,
     0, NULL, "Streams a client may have open at once; more are refused (RST_STREAM REFUSED_STREAM)."},
    {"connection_buffer", PT_T_SIZE, H2(connection_buffer), "2m", 256 << 10, 1 << 30, NULL, NULL, NULL, NULL,
     NULL, 0, NULL,
     "Response memory one HTTP/2 connection may hold, whatever max_concurrent_streams says: each stream under "
     "way counts 64 KiB (what its upstream connection may buffer), the rest holds body bytes waiting for the "
     "client's flow-control window; each stream may also always hold 16 KiB. So a client that never opens its "
     "windows pins at most connection_buffer + 16 KiB x connection_buffer / 64 KiB (2.5 MiB by default), and "
     "at most connection_buffer / 64 KiB streams of one connection (32 by default) are under way at once: "
     "others wait, unstarted, for one to end. Raise it for clients with many long-lived streams (gRPC "
     "streaming calls, long polls) on one connection."},
    {"initial_window_size", PT_T_SIZE, H2(initial_window_size), "64k", 1024, 16 << 20, NULL, NULL, NULL, NULL, NULL,
     0, NULL, "How much of a request body a client may send ahead of what the upstream has taken."},
    {"reset_burst", PT_T_INT, H2(reset_burst), "1000", 1, 1000000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Streams a client may reset in a burst (the rapid-reset attack): past it and reset_rate, the connection "
     "ends with GOAWAY ENHANCE_YOUR_CALM."},
    {"reset_rate", PT_T_INT, H2(reset_rate), "33", 1, 1000000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Stream resets per second allowed after the burst."},
    END,
};
static const pt_section_t h2_section = {"http2_settings", sizeof(((pt_listener_conf_t *)0)->http2_settings),
                                        h2_keys, NULL, NULL, NULL};

static int check_listener(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    pt_listener_conf_t *l = obj;
    if (!l->name)
        l->name = l->address.text;
    if (strcmp(l->name, "admin") == 0) {
        pt_conf_error_key(cc, n, "name", "\"admin\" is the admin listener's name (in the metrics): choose another");
        return -1;
    }
    if (l->max_header_size < l->max_request_line) {
        pt_conf_error_key(cc, n, "max_header_size", "%lld is smaller than max_request_line (%lld)",
                          (long long)l->max_header_size, (long long)l->max_request_line);
        return -1;
    }
    return 0;
}

static const pt_directive_t listener_keys[] = {
    {"name", PT_T_STR, F(pt_listener_conf_t, name), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "A unique name for logs and metrics, not empty and not admin (the admin listener's). Default: the address."},
    {"address", PT_T_ADDR, F(pt_listener_conf_t, address), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL,
     PT_F_REQUIRED | PT_F_PORT0, NULL,
     "IP address and port to listen on: 0.0.0.0:8080, [::]:8080, 127.0.0.1:80, or :8080 for all IPv4 "
     "addresses. Port 0 picks a free port (for tests)."},
    {"timeouts", PT_T_SECTION, F(pt_listener_conf_t, timeouts), NULL, 0, 0, NULL, &timeout_section, NULL, NULL,
     NULL, 0, NULL, "Client-side timeouts."},
    {"backlog", PT_T_INT, F(pt_listener_conf_t, backlog), "4096", 1, 65535, NULL, NULL, NULL, NULL, NULL,
     PT_F_RESTART, NULL, "Length of the kernel's accept queue of each socket."},
    {"max_connections", PT_T_INT, F(pt_listener_conf_t, max_connections), "10000", 1, 1000000, NULL, NULL, NULL,
     NULL, NULL, 0, NULL,
     "Client connections one worker serves at once on this listener; past it, accepting pauses. Each takes a "
     "file descriptor, and one more for its upstream connection when there are upstreams: portico -t warns "
     "when the listeners together may need more than the hard RLIMIT_NOFILE allows (see portico(8))."},
    {"max_request_line", PT_T_SIZE, F(pt_listener_conf_t, max_request_line), "8k", 64, 1 << 20, NULL, NULL, NULL,
     NULL, NULL, 0, NULL, "Longest request line; longer gets 414."},
    {"max_header_size", PT_T_SIZE, F(pt_listener_conf_t, max_header_size), "32k", 256, 1 << 20, NULL, NULL,
     NULL, NULL, NULL, 0, NULL, "Largest request head (request line and headers); larger gets 431. On HTTP/2 it is the header list size "
     "announced in SETTINGS_MAX_HEADER_LIST_SIZE, and a header block may take as many CONTINUATION frames as it "
     "needs (one per 16 KiB, at least 8); more end the connection. Over HTTP/2 a single field may not pass 64 "
     "KiB once encoded (nghttp2's limit): a larger one ends the connection (COMPRESSION_ERROR). A request's "
     "working memory is bounded by twice this size plus 16 KiB (at least 64 KiB); a head that filters grow "
     "past it (copying a long path into fields) gets 500, and a line in the error log."},
    {"max_headers", PT_T_INT, F(pt_listener_conf_t, max_headers), "100", 1, 1000, NULL, NULL, NULL, NULL, NULL,
     0, NULL, "Most header fields in a request; more gets 431."},
    {"min_body_rate", PT_T_SIZE, F(pt_listener_conf_t, min_body_rate), "1k", 0, 1 << 30, NULL, NULL, NULL, NULL,
     NULL, 0, "size per second",
     "Slowest average upload speed, in bytes per second: the body deadline starts at timeouts.body and grows "
     "by one second for each min_body_rate bytes received, so a client trickling bytes is cut with 408 while "
     "a large upload at normal speed is not. 0 turns it off."},
    {"escaped_slashes", PT_T_ENUM, F(pt_listener_conf_t, escaped_slashes), "reject", 0, 0, slashes_names, NULL,
     NULL, NULL, NULL, 0, NULL,
     "What an encoded slash or backslash (%2F, %5C, or a raw backslash) in a request path does: reject "
     "answers 400; decode "
     "makes it a / before the path is normalised, routed and forwarded; keep leaves it encoded, so it "
     "separates nothing here but may at the upstream (unsafe: /api/..%2Fadmin is routed under /api/). "
     "The path sent upstream is always the normalised one that was routed on."},
    {"tls", PT_T_SECTION, F(pt_listener_conf_t, tls), NULL, 0, 0, NULL, &tls_section, NULL, NULL, NULL,
     PT_F_OPTIONAL, NULL, "TLS termination. Without it the listener speaks plain HTTP."},
    {"http2", PT_T_BOOL, F(pt_listener_conf_t, http2), "false", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "HTTP/2 as well as HTTP/1.1: offered by ALPN (h2) on a TLS listener, and spoken to clients that open with "
     "the HTTP/2 preface (prior knowledge) on a plain one. Its requests go through the same routes, filters "
     "and upstream pools. Responses are sent in the order they come: the server announces "
     "SETTINGS_NO_RFC7540_PRIORITIES (RFC 9218) and skips PRIORITY frames, whose size is still checked."},
    {"http2_settings", PT_T_SECTION, F(pt_listener_conf_t, http2_settings), NULL, 0, 0, NULL, &h2_section, NULL,
     NULL, NULL, 0, NULL, "Limits of HTTP/2 connections."},
    END,
};
const pt_section_t pt_schema_listener = {"listener", sizeof(pt_listener_conf_t), listener_keys,
                                              check_listener, NULL, NULL};

/* ---- admin ---- */

static int check_admin(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    pt_admin_conf_t *a = obj;
    if (!pt_addr_is_loopback(&a->address) && !a->allow_remote) {
        pt_conf_error_key(cc, n, "address",
                          "%s is not a loopback address; set allow_remote: true to expose the admin API",
                          a->address.text);
        return -1;
    }
    if (a->token && strlen(a->token) < 16) {
        pt_conf_error_key(cc, n, "token", "an admin token has at least 16 bytes (openssl rand -hex 32 makes one)");
        return -1;
    }
    for (const char *p = a->token ? a->token : ""; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            pt_conf_error_key(cc, n, "token", "an admin token has no spaces or control characters");
            return -1;
        }
    return 0;
}

static const char *const runtime_changes_names[] = {"revert", "keep", NULL};

static const pt_directive_t admin_keys[] = {
    {"address", PT_T_ADDR, F(pt_admin_conf_t, address), "127.0.0.1:9180", 0, 0, NULL, NULL, NULL, NULL, NULL,
     PT_F_PORT0, NULL, "Address of the admin API (GET /status, /healthz, /ready, /config; DELETE /cache/NAME; "
     "PATCH, POST and DELETE on /upstreams/NAME/targets)."},
    {"allow_remote", PT_T_BOOL, F(pt_admin_conf_t, allow_remote), "false", 0, 0, NULL, NULL, NULL, NULL, NULL, 0,
     NULL, "Must be true for an address outside 127.0.0.0/8 and ::1."},
    {"token", PT_T_STR, F(pt_admin_conf_t, token), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, PT_F_SECRET, NULL,
     "A bearer token (at least 16 bytes) that every request changing state (a purge, a target change) must "
     "send as Authorization: Bearer TOKEN; compared in constant time. Give it from the environment "
     "(token: ${PORTICO_ADMIN_TOKEN}). Without one, such requests are refused unless the admin address is a "
     "loopback one. Reading (GET /status, /metrics, /config, /healthz, /ready) needs none."},
    {"runtime_changes", PT_T_ENUM, F(pt_admin_conf_t, runtime_changes), "revert", 0, 0, runtime_changes_names, NULL,
     NULL, NULL, NULL, 0, NULL,
     "What a reload does with the target changes made through the admin API (PATCH, POST and DELETE on "
     "/upstreams/NAME/targets): revert drops them all, the file wins (the reload's log line lists them); keep "
     "keeps those that still apply: a weight, a state or a removal of a target the new file still lists, and "
     "the targets added to an upstream the new file still has (a weight set through the API wins over the "
     "file's). What no longer applies is dropped and listed."},
    {"access_log", PT_T_CUSTOM, F(pt_admin_conf_t, access_log), "false", 0, 0, NULL, NULL, NULL,
     pt_accesslog_set_admin, pt_accesslog_print_admin, 0, "path or false",
     "The admin API's own access log, in access_log's format (and buffer, flush), never sampled; false: "
     "none. Requests to the admin listener never go to the traffic's access log. Reopened on SIGUSR1."},
    END,
};
static const pt_section_t admin_section = {"admin", sizeof(pt_admin_conf_t), admin_keys, check_admin, NULL,
                                           "Without an admin key there is no admin listener."};

/* ---- upstreams ---- */

static int check_target(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    pt_target_conf_t *t = obj;
    const char *colon = strrchr(t->address, ':');
    if (!colon || colon[1] == '\0' || colon == t->address) {
        pt_conf_error_key(cc, n, "address", "expected host:port, not \"%s\"", t->address);
        return -1;
    }
    int64_t port;
    if (pt_value_int(colon + 1, &port) || port < 1 || port > 65535) {
        pt_conf_error_key(cc, n, "address", "port out of range 1-65535 in \"%s\"", t->address);
        return -1;
    }
    if (pt_value_addr(t->address, &t->addr, 0) == NULL)
        t->addr.text = t->address;
    else
        memset(&t->addr, 0, sizeof(t->addr)); /* a hostname, resolved at run time */
    return 0;
}

static const pt_directive_t target_keys[] = {
    {"address", PT_T_STR, F(pt_target_conf_t, address), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, PT_F_REQUIRED,
     "host:port", "The target's address and port."},
    {"weight", PT_T_INT, F(pt_target_conf_t, weight), "100", 1, 10000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Relative share of requests."},
    END,
};
static const pt_section_t target_section = {"target", sizeof(pt_target_conf_t), target_keys, check_target,
                                            "address", NULL};

#define UF(field) (F(pt_upstream_conf_t, field))
static const pt_directive_t hash_keys[] = {
    {"on", PT_T_ENUM, F(pt_upstream_conf_t, hash.on) - UF(hash), "ip", 0, 0, hash_on_names, NULL, NULL, NULL,
     NULL, 0, NULL, "What the hash key is taken from."},
    {"name", PT_T_STR, F(pt_upstream_conf_t, hash.name) - UF(hash), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0,
     NULL, "The header, cookie or query argument name, for on: header, cookie or query."},
    {"fallback", PT_T_ENUM, F(pt_upstream_conf_t, hash.fallback) - UF(hash), "ip", 0, 0, hash_on_names, NULL,
     NULL, NULL, NULL, 0, NULL, "Where the key comes from when the first source is absent."},
    END,
};
static const pt_section_t hash_section = {"hash", sizeof(((pt_upstream_conf_t *)0)->hash), hash_keys, NULL,
                                          NULL, NULL};

static const pt_directive_t keepalive_keys[] = {
    {"size", PT_T_INT, F(pt_upstream_conf_t, keepalive.size) - UF(keepalive), "256", 0, 100000, NULL, NULL,
     NULL, NULL, NULL, 0, NULL, "Idle connections kept per target in each worker; 0 disables keep-alive."},
    {"idle_timeout", PT_T_DURATION, F(pt_upstream_conf_t, keepalive.idle_timeout) - UF(keepalive), "60s", 1,
     86400000, NULL, NULL, NULL, NULL, NULL, 0, NULL, "An idle pooled connection is closed after this."},
    {"requests", PT_T_INT, F(pt_upstream_conf_t, keepalive.requests) - UF(keepalive), "1000", 1, 100000000,
     NULL, NULL, NULL, NULL, NULL, 0, NULL, "Requests sent on one upstream connection before it is closed."},
    END,
};
static const pt_section_t keepalive_section = {"keepalive", sizeof(((pt_upstream_conf_t *)0)->keepalive),
                                               keepalive_keys, NULL, NULL, NULL};

static const pt_directive_t utimeout_keys[] = {
    {"connect", PT_T_DURATION, F(pt_upstream_conf_t, timeouts.connect) - UF(timeouts), "2s", 1, 3600000, NULL,
     NULL, NULL, NULL, NULL, 0, NULL, "Time to establish a connection to a target; then 502, or a retry."},
    {"send", PT_T_DURATION, F(pt_upstream_conf_t, timeouts.send) - UF(timeouts), "10s", 1, 3600000, NULL, NULL,
     NULL, NULL, NULL, 0, NULL, "Longest time without progress while writing to a target."},
    {"read", PT_T_DURATION, F(pt_upstream_conf_t, timeouts.read) - UF(timeouts), "30s", 1, 3600000, NULL, NULL,
     NULL, NULL, NULL, 0, NULL, "Longest wait for the response or the next part of it; then 504."},
    END,
};
static const pt_section_t utimeout_section = {"timeouts", sizeof(((pt_upstream_conf_t *)0)->timeouts),
                                              utimeout_keys, NULL, NULL, NULL};

/* healthchecks.passive: failures seen in real traffic */
#define PU(f) (F(pt_upstream_conf_t, healthchecks.passive.unhealthy.f) - F(pt_upstream_conf_t, healthchecks.passive.unhealthy))
const pt_directive_t pt_schema_status_elem = {"", PT_T_INT, 0, NULL, 100, 599, NULL, NULL, NULL, NULL, NULL, 0,
                                             NULL, NULL};
static const pt_directive_t unhealthy_keys[] = {
    {"http_statuses", PT_T_LIST, PU(http_statuses), NULL, 0, 0, NULL, NULL, &pt_schema_status_elem, NULL, NULL, 0,
     "list of integers", "Response statuses that count as failures. Empty: 502, 503 and 504."},
    {"http_failures", PT_T_INT, PU(http_failures), "0", 0, 1000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Failing responses in a row that mark a target down; 0 (as in Kong and APISIX): never."},
    {"tcp_failures", PT_T_INT, PU(tcp_failures), "0", 0, 1000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Failed connections in a row that mark a target down; 0: never."},
    {"timeouts", PT_T_INT, PU(timeouts), "0", 0, 1000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Timeouts in a row that mark a target down; 0: never."},
    END,
};
static const pt_section_t unhealthy_section = {"unhealthy",
                                               sizeof(((pt_upstream_conf_t *)0)->healthchecks.passive.unhealthy),
                                               unhealthy_keys, NULL, NULL, NULL};
#define PP(f) (F(pt_upstream_conf_t, healthchecks.passive.f) - F(pt_upstream_conf_t, healthchecks.passive))
static const pt_directive_t passive_keys[] = {
    {"unhealthy", PT_T_SECTION, PP(unhealthy), NULL, 0, 0, NULL, &unhealthy_section, NULL, NULL, NULL, 0, NULL,
     "What marks a target down."},
    {"cooldown", PT_T_DURATION, PP(cooldown), "10s", 1, 86400000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Without active checks: how long a target marked down is left alone before it is tried again."},
    {"slow_start", PT_T_DURATION, PP(slow_start), "0s", 0, 3600000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "After coming back, a target's weight ramps up from a tenth to all of it over this long; 0: at once."},
    END,
};
static const pt_section_t passive_section = {"passive", sizeof(((pt_upstream_conf_t *)0)->healthchecks.passive),
                                             passive_keys, NULL, NULL, NULL};
/* healthchecks.active: probes, with the defaults APISIX uses (Kong's are
 * all zero, which turns them off) */
#define AH(f) (F(pt_active_conf_t, healthy.f) - F(pt_active_conf_t, healthy))
#define AU(f) (F(pt_active_conf_t, unhealthy.f) - F(pt_active_conf_t, unhealthy))
static const pt_directive_t active_healthy_keys[] = {
    {"interval", PT_T_DURATION, AH(interval), "1s", 0, 86400000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "How often a healthy target is probed; 0: not at all."},
    {"successes", PT_T_INT, AH(successes), "2", 0, 1000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Successful probes in a row that bring a target marked down back; 0: never."},
    {"http_statuses", PT_T_LIST, AH(http_statuses), NULL, 0, 0, NULL, NULL, &pt_schema_status_elem, NULL, NULL, 0,
     "list of integers", "Probe statuses that count as successes. Empty: 200 and 302."},
    END,
};
static const pt_section_t active_healthy_section = {"healthy", sizeof(((pt_active_conf_t *)0)->healthy),
                                                    active_healthy_keys, NULL, NULL, NULL};
static const pt_directive_t active_unhealthy_keys[] = {
    {"interval", PT_T_DURATION, AU(interval), "1s", 0, 86400000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "How often a target marked down is probed; 0: not at all."},
    {"http_failures", PT_T_INT, AU(http_failures), "5", 0, 1000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Probes answered with an unhealthy status, in a row, that mark a target down; 0: never."},
    {"tcp_failures", PT_T_INT, AU(tcp_failures), "2", 0, 1000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Probes whose connection failed, in a row, that mark a target down; 0: never."},
    {"timeouts", PT_T_INT, AU(timeouts), "3", 0, 1000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Probes that timed out, in a row, that mark a target down; 0: never."},
    {"http_statuses", PT_T_LIST, AU(http_statuses), NULL, 0, 0, NULL, NULL, &pt_schema_status_elem, NULL, NULL, 0,
     "list of integers",
     "Probe statuses that count as failures. Empty: 404, 429 and 500 to 505. A status in neither list counts "
     "for nothing."},
    END,
};
static const pt_section_t active_unhealthy_section = {"unhealthy", sizeof(((pt_active_conf_t *)0)->unhealthy),
                                                      active_unhealthy_keys, NULL, NULL, NULL};
static const char *const probe_type_names[] = {"http", "tcp", NULL};
static const pt_directive_t active_keys[] = {
    {"type", PT_T_ENUM, F(pt_active_conf_t, type), "http", 0, 0, probe_type_names, NULL, NULL, NULL, NULL, 0, NULL,
     "http sends a GET and looks at the status; tcp only connects."},
    {"http_path", PT_T_STR, F(pt_active_conf_t, http_path), "/", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The path probed."},
    {"host", PT_T_STR, F(pt_active_conf_t, host), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The Host header of a probe. Unset: the target's address."},
    {"timeout", PT_T_DURATION, F(pt_active_conf_t, timeout), "1s", 1, 3600000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "How long a probe may take, from connect to the status line."},
    {"healthy", PT_T_SECTION, F(pt_active_conf_t, healthy), NULL, 0, 0, NULL, &active_healthy_section, NULL, NULL,
     NULL, 0, NULL, "What brings a target back."},
    {"unhealthy", PT_T_SECTION, F(pt_active_conf_t, unhealthy), NULL, 0, 0, NULL, &active_unhealthy_section, NULL,
     NULL, NULL, 0, NULL, "What marks a target down."},
    END,
};
static const pt_section_t active_section = {"active", sizeof(pt_active_conf_t), active_keys, NULL, NULL,
                                            NULL};
static const pt_directive_t healthcheck_keys[] = {
    {"active", PT_T_SECTION, F(pt_upstream_conf_t, healthchecks.active) - F(pt_upstream_conf_t, healthchecks), NULL,
     0, 0, NULL, &active_section, NULL, NULL, NULL, PT_F_OPTIONAL, NULL,
     "Probes sent to every target by one process (the first worker), their results shared by every worker "
     "and kept across reloads. With active checks, a target marked down (by probes or by passive checks) "
     "comes back only when probes succeed, not after a cool-down."},
    {"passive", PT_T_SECTION, F(pt_upstream_conf_t, healthchecks.passive) - F(pt_upstream_conf_t, healthchecks), NULL,
     0, 0, NULL, &passive_section, NULL, NULL, NULL, 0, NULL,
     "Health learnt from real traffic, shared by every worker and kept across reloads."},
    END,
};
static const pt_section_t healthcheck_section = {"healthchecks", sizeof(((pt_upstream_conf_t *)0)->healthchecks),
                                                 healthcheck_keys, NULL, NULL, NULL};
static const char *const all_down_names[] = {"fail", "try", NULL};
#define RB(f) (F(pt_upstream_conf_t, retry_budget.f) - F(pt_upstream_conf_t, retry_budget))
static const pt_directive_t budget_keys[] = {
    {"percent", PT_T_INT, RB(percent), "20", 0, 100, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Retries allowed, as a percentage of the requests to the upstream."},
    {"min_per_second", PT_T_INT, RB(min_per_second), "10", 0, 100000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Retries allowed per second whatever the traffic, so that a quiet upstream can still retry."},
    END,
};
static const pt_section_t budget_section = {"retry_budget", sizeof(((pt_upstream_conf_t *)0)->retry_budget),
                                            budget_keys, NULL, NULL, NULL};

static const char *const scheme_names[] = {"http", "https", "grpc", "grpcs", NULL};
#define UT(f) (F(pt_upstream_conf_t, tls.f) - F(pt_upstream_conf_t, tls))
static const pt_directive_t upstream_tls_keys[] = {
    {"verify", PT_T_BOOL, UT(verify), "true", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Verify the target's certificate: its chain against ca, its name against sni (or the target's host name, "
     "or its IP address)."},
    {"ca", PT_T_STR, UT(ca), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, "path",
     "PEM file of the CAs to trust. Unset: the system's (/etc/ssl/certs)."},
    {"sni", PT_T_STR, UT(sni), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The name sent as SNI and verified. Unset: the target's host name; none for a target given by IP "
     "address (its certificate must then name that address)."},
    {"cert", PT_T_STR, UT(cert), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, "path",
     "A client certificate (PEM, with its chain) for targets that ask for one."},
    {"key", PT_T_STR, UT(key), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, "path", "Its private key."},
    END,
};
static const pt_section_t upstream_tls_section = {"tls", sizeof(pt_upstream_tls_t), upstream_tls_keys, NULL, NULL,
                                                  NULL};

static int check_upstream(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    pt_upstream_conf_t *u = obj;
    if (u->targets.n == 0) {
        pt_conf_error_key(cc, n, "targets", "an upstream needs at least one target");
        return -1;
    }
    bool tls = u->scheme == PT_SCHEME_HTTPS || u->scheme == PT_SCHEME_GRPCS;
    if (!tls && pt_node_get(n, "tls"))
        pt_conf_warn(cc, pt_node_get(n, "tls"), "tls is used only with scheme: https or grpcs");
    if (pt_node_get(n, "hash") && u->balancer != PT_BAL_HASH)
        pt_conf_warn(cc, pt_node_get(n, "hash"), "hash is used only with balancer: consistent-hashing");
    if (u->balancer == PT_BAL_HASH && (u->hash.on == PT_HASH_HEADER || u->hash.on == PT_HASH_COOKIE ||
                                       u->hash.on == PT_HASH_QUERY) && !u->hash.name) {
        pt_conf_error_key(cc, n, "hash", "on: %s needs a name", hash_on_names[u->hash.on]);
        return -1;
    }
    return 0;
}

static const pt_directive_t upstream_keys[] = {
    {"name", PT_T_STR, F(pt_upstream_conf_t, name), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, PT_F_REQUIRED,
     NULL, "A unique name, used by routes."},
    {"scheme", PT_T_ENUM, F(pt_upstream_conf_t, scheme), "http", 0, 0, scheme_names, NULL, NULL, NULL, NULL, 0,
     NULL,
     "How targets are spoken to: http; https (TLS, pooled and reused like plain connections); grpc (HTTP/2 with "
     "prior knowledge) or grpcs (HTTP/2 over TLS): many calls share one connection per target and worker, "
     "trailers (grpc-status) reach the client, and Portico's own errors are gRPC statuses. Routes to a grpc "
     "upstream serve HTTP/2 clients only; what such a route says applies to its calls as to any request: "
     "strip_prefix and path-rewrite (on the method path), upstream_host (as :authority), request-headers, "
     "X-Forwarded-* and X-Request-Id, response-headers and CORS on the response head, and passive health "
     "checks by the response's :status."},
    {"tls", PT_T_SECTION, F(pt_upstream_conf_t, tls), NULL, 0, 0, NULL, &upstream_tls_section, NULL, NULL, NULL, 0,
     NULL, "TLS towards the targets, with scheme: https."},
    {"balancer", PT_T_ENUM, F(pt_upstream_conf_t, balancer), "round-robin", 0, 0, balancer_names, NULL, NULL,
     NULL, NULL, 0, NULL,
     "How a target is chosen: round-robin (smooth, weighted); least-connections (fewest attempts under way "
     "per unit of weight, counted in each worker); consistent-hashing (a ring of 640 points per 100 weight, 65,536 at most, scaled alike past that, "
     "keyed as hash says, so a target that leaves moves only its own keys); random-two (two drawn by weight, "
     "the one with fewer attempts under way); latency (two drawn by weight, the lower peak-EWMA of response "
     "times times attempts under way). A retry skips targets already tried."},
    {"hash", PT_T_SECTION, F(pt_upstream_conf_t, hash), NULL, 0, 0, NULL, &hash_section, NULL, NULL, NULL, 0,
     NULL, "The key of consistent-hashing."},
    {"targets", PT_T_LIST, F(pt_upstream_conf_t, targets), NULL, 0, 0, NULL, &target_section, NULL, NULL, NULL,
     PT_F_REQUIRED, NULL,
     "The servers behind this upstream. Every worker finds a target's health and attempts under way in shared "
     "memory, by address: a zone of slots (about 2.2 KiB each) sized from the configuration, twice one per "
     "numeric target and three per host name, at least 64. A slot that no worker uses and the configuration "
     "does not name is freed, such as the old address of a host name that resolves elsewhere. A zone full all "
     "the same is logged, at most once a minute, and a target left without a slot counts its health and "
     "attempts in each worker alone; /status shows the zone's slots, those used, and the claims it evicted "
     "(a slot nothing used) or refused. The zone is kept across reloads; a reload that changes its size "
     "carries the health of every address still in use into the new one."},
    {"keepalive", PT_T_SECTION, F(pt_upstream_conf_t, keepalive), NULL, 0, 0, NULL, &keepalive_section, NULL,
     NULL, NULL, 0, NULL, "Connection reuse to the targets."},
    {"timeouts", PT_T_SECTION, F(pt_upstream_conf_t, timeouts), NULL, 0, 0, NULL, &utimeout_section, NULL, NULL,
     NULL, 0, NULL, "Upstream-side timeouts (units are required)."},
    {"healthchecks", PT_T_SECTION, F(pt_upstream_conf_t, healthchecks), NULL, 0, 0, NULL, &healthcheck_section,
     NULL, NULL, NULL, 0, NULL, "Health checking of the targets."},
    {"when_all_down", PT_T_ENUM, F(pt_upstream_conf_t, when_all_down), "fail", 0, 0, all_down_names, NULL, NULL,
     NULL, NULL, 0, NULL,
     "When every target is marked down: fail answers 503 at once; try ignores health and tries them."},
    {"retries", PT_T_INT, F(pt_upstream_conf_t, retries), "1", 0, 100, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "How many times a failed attempt is tried again on another target. A failed connect is retried for any "
     "request; a timeout, a reset or a status in retry_statuses only for an idempotent request (GET, HEAD, PUT, "
     "DELETE, OPTIONS, TRACE) whose body is still whole in the buffer. A retry never goes to the target just "
     "tried while another is up. Apart from these, a kept-alive connection that turns out closed by the upstream "
     "before any response byte came is tried again once, on a new connection, for any request whose body is "
     "still whole, and is not logged."},
    {"retry_timeout", PT_T_DURATION, F(pt_upstream_conf_t, retry_timeout), "0s", 0, 3600000, NULL, NULL, NULL, NULL,
     NULL, 0, NULL, "No retry starts this long after the first attempt did; 0: no limit."},
    {"retry_same_target", PT_T_BOOL, F(pt_upstream_conf_t, retry_same_target), "false", 0, 0, NULL, NULL, NULL,
     NULL, NULL, 0, NULL,
     "Whether a read timeout may be retried on the target that just timed out, when no other target is up "
     "(the only target, or the others down). Off: such a request gets its 504 after one timeout, not after "
     "two."},
    {"retry_statuses", PT_T_LIST, F(pt_upstream_conf_t, retry_statuses), NULL, 0, 0, NULL, NULL,
     &pt_schema_status_elem, NULL, NULL, 0, "list of integers",
     "Response statuses that are retried, as a failure would be (for example [502, 503, 504]). The last "
     "attempt's response is passed on as it is. Empty: none."},
    {"retry_budget", PT_T_SECTION, F(pt_upstream_conf_t, retry_budget), NULL, 0, 0, NULL, &budget_section, NULL,
     NULL, NULL, 0, NULL,
     "Caps retries to a share of the requests, so that a failing upstream does not get a storm of them. "
     "Counted by each worker over the last 10 seconds."},
    END,
};
const pt_section_t pt_schema_upstream = {"upstream", sizeof(pt_upstream_conf_t), upstream_keys,
                                              check_upstream, NULL, NULL};

/* ---- routes ---- */

const pt_directive_t pt_schema_str_elem = {"", PT_T_STR, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL};

#define MF(field) (F(pt_route_conf_t, match.field) - F(pt_route_conf_t, match))
static const pt_directive_t match_keys[] = {
    {"hosts", PT_T_LIST, MF(hosts), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem, NULL, NULL, 0, "list of strings",
     "Host names (case-insensitive, port ignored) or *.example.com wildcards. Empty: any host."},
    {"paths", PT_T_LIST, MF(paths), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem, NULL, NULL, 0, "list of strings",
     "Paths: /a exact, /a/* prefix, /a/:id one segment, /a/*rest the rest, ~^/re$ a regex (PCRE2, tried last; "
     "named groups become parameters). Empty: any path. A path is matched as the normalised request path is "
     "(no \".\" or \"..\" segment, no escape of a letter, digit or -._~, other escapes in upper case): one "
     "written otherwise, or with %2F or %5C where no listener has escaped_slashes: keep, is a load error."},
    {"methods", PT_T_LIST, MF(methods), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem, NULL, NULL, 0, "list of strings",
     "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, CONNECT, TRACE. Empty: any method."},
    {"headers", PT_T_KVMAP, MF(headers), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Request headers that must be present with these values (case-insensitive names); a value written ~re "
     "is a regex (PCRE2) the value must match."},
    {"query", PT_T_KVMAP, MF(query), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Query arguments that must be present with these values (or ~regex)."},
    {"cookies", PT_T_KVMAP, MF(cookies), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Cookies that must be present with these values (or ~regex)."},
    END,
};
static const pt_section_t match_section = {"match", sizeof(((pt_route_conf_t *)0)->match), match_keys, NULL,
                                           NULL, NULL};

#define RF(field) (F(pt_route_conf_t, respond.field) - F(pt_route_conf_t, respond))
static const pt_directive_t respond_keys[] = {
    {"status", PT_T_INT, RF(status), "200", 200, 599, NULL, NULL, NULL, NULL, NULL, 0, NULL, "Status code."},
    {"headers", PT_T_KVMAP, RF(headers), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Response header fields. Content-Type defaults to text/plain."},
    {"body", PT_T_STR, RF(body), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, "The response body."},
    END,
};
static const pt_section_t respond_section = {"respond", sizeof(((pt_route_conf_t *)0)->respond), respond_keys,
                                             NULL, NULL, NULL};


static const pt_directive_t route_keys[] = {
    {"name", PT_T_STR, F(pt_route_conf_t, name), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "A unique name for logs and metrics, not empty. Default: routes[N]."},
    {"match", PT_T_SECTION, F(pt_route_conf_t, match), NULL, 0, 0, NULL, &match_section, NULL, NULL, NULL, 0,
     NULL, "What requests the route takes. Without it, every request."},
    {"priority", PT_T_INT, F(pt_route_conf_t, priority), "0", -1000000, 1000000, NULL, NULL, NULL, NULL, NULL, 0,
     NULL, "Among routes that match, the higher priority wins; then the more specific path; then file order."},
    {"upstream", PT_T_STR, F(pt_route_conf_t, upstream), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The upstream that serves the route. Exactly one of upstream and respond is required."},
    {"strip_prefix", PT_T_STR, F(pt_route_conf_t, strip_prefix), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0,
     NULL, "Removed from the start of the path before it is sent upstream, at a segment boundary (/api takes "
     "/api/x to /x and /api to /, not /apiary to ry), unless a path-rewrite filter rewrote the path. A prefix "
     "that none of the route's paths can begin with is an error, and so is one out of the normal form request "
     "paths are compared in (a \"//\", \".\" or \"..\" segment, %2F or %2E)."},
    {"rewrite_location", PT_T_BOOL, F(pt_route_conf_t, rewrite_location), "true", 0, 0, NULL, NULL, NULL, NULL,
     NULL, 0, NULL,
     "With strip_prefix: the prefix is put back into the Location and Content-Location headers of the "
     "upstream's responses, as nginx's proxy_redirect default does, when they are an absolute path (/orders/7 "
     "becomes /api/orders/7), or an absolute URL whose host and port are the upstream's own: the Host the "
     "request was sent with, or a target's address (http://10.0.1.10:8080/orders/7 becomes /api/orders/7, "
     "so no internal address reaches the client; credentials before the host are dropped, and "
     "http://10.0.1.10:8080?q=1 becomes /api?q=1). Relative references and other hosts are left alone, and so "
     "are requests whose path the prefix was not cut from (a path-rewrite filter rewrote it, or the route's "
     "path lies outside the prefix). false passes them as they are, for an upstream that writes the prefix "
     "itself."},
    {"upstream_host", PT_T_STR, F(pt_route_conf_t, upstream_host), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0,
     NULL, "The Host header sent upstream. Unset: the client's Host is passed through."},
    {"max_body_size", PT_T_SIZE, F(pt_route_conf_t, max_body_size), "0", 0, 0, NULL, NULL, NULL, NULL, NULL, 0,
     NULL, "Largest request body; larger gets 413 before anything reaches the upstream. 0: no limit."},
    {"metrics", PT_T_BOOL, F(pt_route_conf_t, metrics), "true", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The route's series in the admin API's /metrics (requests, their duration, bytes, and its auth and limit "
     "filters' counts). false leaves them out, to bound what a scrape of very many routes carries; the "
     "upstreams' series stay."},
    {"tracing", PT_T_BOOL, F(pt_route_conf_t, tracing), "true", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "With a tracing block: false records no span for the route's requests, and their traceparent, tracestate "
     "and B3 fields go upstream as the client sent them, as if Portico were not tracing."},
    {"respond", PT_T_SECTION, F(pt_route_conf_t, respond), NULL, 0, 0, NULL, &respond_section, NULL, NULL, NULL,
     PT_F_OPTIONAL, NULL, "Portico answers the request itself."},
    {"filters", PT_T_CUSTOM, F(pt_route_conf_t, filters), NULL, 0, 0, NULL, NULL, NULL, pt_filters_set,
     pt_filters_print, 0, "map of filters",
     "Filters of this route, by name, each with its settings (see FILTERS); a filter named here replaces the "
     "one in global_filters, and false turns that one off."},
    {"access_log", PT_T_CUSTOM, F(pt_route_conf_t, access_log), NULL, 0, 0, NULL, NULL, NULL,
     pt_accesslog_set_route, pt_accesslog_print_route, 0, "false or map",
     "false: this route's requests are not logged, errors included. A map overrides the global sampling for "
     "the route: { sample: 0.01, sample_errors: always } (either key alone keeps the global other). "
     "Unset or true: access_log.sample and sample_errors."},
    END,
};
const pt_section_t pt_schema_route = {"route", sizeof(pt_route_conf_t), route_keys, pt_route_compile,
                                           NULL, NULL};

/* ---- consumers ---- */

/* The name and the groups go upstream in X-Consumer-Username and
 * X-Consumer-Groups ("a, b"). */
static int check_consumer(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    const pt_consumer_conf_t *co = obj;
    const char *why = co->name ? pt_value_field_text(co->name, false) : NULL;
    int rc = 0;
    if (why) {
        pt_conf_error_key(cc, n, "name", "%s", why);
        rc = -1;
    }
    for (size_t i = 0; i < co->groups.n; i++) {
        const char *g = co->groups.v[i] ? co->groups.v[i] : "";
        why = pt_value_field_text(g, false);
        if (why || !g[0] || strchr(g, ',')) {
            pt_conf_error_key(cc, n, "groups", "groups[%zu]: %s", i, why ? why : !g[0] ? "an empty group" : "no ','");
            rc = -1;
        }
    }
    return rc;
}

static const pt_directive_t consumer_keys[] = {
    {"name", PT_T_STR, F(pt_consumer_conf_t, name), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, PT_F_REQUIRED, NULL,
     "A unique name: X-Consumer-Username upstream, $consumer in the access log, ${consumer} in templates."},
    {"groups", PT_T_LIST, F(pt_consumer_conf_t, groups), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem, NULL, NULL, 0,
     "list of strings", "The groups acl allows or denies; X-Consumer-Groups upstream."},
    {"credentials", PT_T_LIST, F(pt_consumer_conf_t, credentials), NULL, 0, 0, NULL, &pt_schema_credential, NULL,
     NULL, NULL, 0, "list of credentials",
     "How the auth filters recognise this consumer: each entry has a type and that type's keys, below. No two "
     "consumers may share a key, username, key claim, key id, san or subject."},
    {"filters", PT_T_CUSTOM, F(pt_consumer_conf_t, filters), NULL, 0, 0, NULL, NULL, NULL, pt_filters_set,
     pt_filters_print, 0, "map of filters", "Filter settings for this consumer, over the route's and the global ones."},
    END,
};
static const pt_section_t consumer_section = {"consumer", sizeof(pt_consumer_conf_t), consumer_keys, check_consumer,
                                              NULL, NULL};

/* ---- resolver ---- */

static int check_resolver(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    const pt_node_t *ns = pt_node_get(n, "nameservers");
    if (!ns || ns->type != PT_NODE_SEQ)
        return 0;
    int rc = 0;
    for (size_t i = 0; i < ns->nitems; i++) {
        const pt_node_t *it = ns->items[i];
        struct sockaddr_storage ss;
        int len = sizeof(ss);
        if (it->type == PT_NODE_SCALAR && evutil_parse_sockaddr_port(it->s, (struct sockaddr *)&ss, &len) < 0) {
            pt_conf_error(cc, it, "nameservers[%zu]: a name server is an IP address with an optional port, not \"%s\"",
                          i, it->s);
            rc = -1;
        }
    }
    return rc;
}

#define RS(f) (F(pt_config_t, resolver.f) - F(pt_config_t, resolver))
static const pt_directive_t resolver_keys[] = {
    {"nameservers", PT_T_LIST, RS(nameservers), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem, NULL, NULL, 0,
     "list of addresses",
     "DNS servers (10.0.0.2, 10.0.0.2:53, [fd00::2]:53) that resolve targets given by host name. Empty: /etc/hosts, "
     "then the servers of /etc/resolv.conf; the master also resolves each name once at start and on reload, as "
     "nginx does, so that a name it cannot resolve is a configuration error: in a child process, never blocking "
     "the master, and within timeout, past which the start or the reload fails. Given: only these servers are "
     "asked, by the workers alone, and a target is left out until its name resolves."},
    {"valid", PT_T_DURATION, RS(valid), "0s", 0, 86400000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "How long an answer is used before the name is resolved again; 0: the TTL of the answer (at least 1s)."},
    {"timeout", PT_T_DURATION, RS(timeout), "5s", 1, 60000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "How long a DNS query may take. A name that does not resolve keeps its last address and is tried again "
     "every 5s. Also how long the master's resolution at start and on reload may take, for all names together "
     "(resolved up to 8 at a time)."},
    END,
};
static const pt_section_t resolver_section = {"resolver", sizeof(((pt_config_t *)0)->resolver), resolver_keys,
                                              check_resolver, NULL, NULL};

/* ---- redis, limits ---- */

static const char *const redis_mode_names[] = {"single", "sentinel", "cluster", NULL};

/* "host:port", with [v6]:port: the port is required (no default guess
 * between a server's 6379 and a sentinel's 26379). */
static bool redis_address_ok(const char *a)
{
    const char *colon = strrchr(a, ':');
    if (!colon || colon == a || !colon[1])
        return false;
    for (const char *p = colon + 1; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    long port = strtol(colon + 1, NULL, 10);
    if (port < 1 || port > 65535)
        return false;
    if (a[0] == '[')
        return colon[-1] == ']';
    return memchr(a, ':', (size_t)(colon - a)) == NULL;
}

static int check_redis(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    pt_redis_conf_t *r = obj;
    int rc = 0;
    const pt_node_t *an = pt_node_get(n, "addresses");
    if (!r->addresses.n) {
        pt_conf_error(cc, an ? an : n, "addresses: at least one \"host:port\" is needed");
        rc = -1;
    }
    for (size_t i = 0; i < r->addresses.n; i++)
        if (!redis_address_ok(r->addresses.v[i])) {
            const pt_node_t *it = an && an->type == PT_NODE_SEQ && i < an->nitems ? an->items[i] : n;
            pt_conf_error(cc, it, "addresses[%zu]: expected \"host:port\" (or \"[v6]:port\"), not \"%s\"", i,
                          r->addresses.v[i]);
            rc = -1;
        }
    if (r->mode == PT_REDIS_SENTINEL && !r->master_name) {
        pt_conf_error(cc, n, "mode sentinel needs master_name (the name the sentinels monitor)");
        rc = -1;
    }
    if (r->mode != PT_REDIS_SENTINEL && (r->master_name || r->sentinel_password)) {
        const pt_node_t *k = pt_node_get(n, r->master_name ? "master_name" : "sentinel_password");
        pt_conf_error(cc, k ? k : n, "%s is for mode sentinel only",
                      r->master_name ? "master_name" : "sentinel_password");
        rc = -1;
    }
    if (r->mode == PT_REDIS_CLUSTER && r->database) {
        const pt_node_t *k = pt_node_get(n, "database");
        pt_conf_error(cc, k ? k : n, "a Redis Cluster has only database 0");
        rc = -1;
    }
    return rc;
}

#define RD(f) F(pt_redis_conf_t, f)
static const pt_directive_t redis_keys[] = {
    {"mode", PT_T_ENUM, RD(mode), "single", 0, 0, redis_mode_names, NULL, NULL, NULL, NULL, 0, NULL,
     "single: one server. sentinel: addresses are Redis Sentinels, asked for the address of the master named "
     "master_name (SENTINEL get-master-addr-by-name), and again after a failover. cluster: addresses are seed "
     "nodes of a Redis Cluster; the slot map comes from CLUSTER SLOTS and follows MOVED and ASK."},
    {"addresses", PT_T_LIST, RD(addresses), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem, NULL, NULL, 0,
     "list of host:port", "The server, the sentinels (asked in this order), or the cluster's seed nodes. A host "
     "name is resolved without blocking each time a worker connects, from /etc/hosts and the name servers of "
     "/etc/resolv.conf (not resolver:), to an IPv4 address; give an IPv6 server by its address, as \"[::1]:6379\"."},
    {"master_name", PT_T_STR, RD(master_name), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Sentinel only: the name of the monitored master."},
    {"username", PT_T_STR, RD(username), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The ACL user to AUTH as (Redis 6 and later); with password."},
    {"password", PT_T_STR, RD(password), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, PT_F_SECRET, NULL,
     "The password sent with AUTH on each new connection; never logged, -T prints it redacted. Write it as "
     "${REDIS_PASSWORD}."},
    {"sentinel_password", PT_T_STR, RD(sentinel_password), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, PT_F_SECRET,
     NULL, "Sentinel only: the password of the sentinels themselves, when they require one."},
    {"database", PT_T_INT, RD(database), "0", 0, 15, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The database to SELECT (single and sentinel)."},
    {"timeout", PT_T_DURATION, RD(timeout), "50ms", 1, 10000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "How long one command may take, connecting included. Past it the request is counted locally at once (the "
     "fallback), and the worker stops asking Redis until a probe gets an answer in time. A refused or closed "
     "connection, or an error answer, falls back the same way without waiting. Each such episode is logged once "
     "when it starts (warn) and once when it ends (notice)."},
    {"probe_interval", PT_T_DURATION, RD(probe_interval), "1s", 10, 60000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "During a fallback, how often each worker asks Redis whether it is back, on a new connection and within "
     "timeout: PING (single); the sentinels, then PING to the master they name, a new address counting as a "
     "failover (sentinel); CLUSTER SLOTS from the seed nodes, then the nodes known (cluster). A failover is seen "
     "as a failure (a closed connection, or READONLY from the old master), so it costs one fallback episode."},
    END,
};
static const pt_section_t redis_section = {"redis", sizeof(pt_redis_conf_t), redis_keys, check_redis, NULL, NULL};

static const pt_directive_t limits_keys[] = {
    {"memory", PT_T_SIZE, F(pt_limits_conf_t, memory), "32MiB", 65536, (int64_t)1 << 36, NULL, NULL, NULL, NULL,
     NULL, 0, NULL,
     "The shared-memory table of the local counters of limit-req, limit-count and limit-conn, shared by every "
     "worker and kept across a reload while its size is unchanged. It never grows: when it is full, the key "
     "used least recently is evicted (counted in /status)."},
    END,
};
/* A table larger than the machine's memory could be mapped (pages are
 * taken as it fills), and then fail under load: refused at load. */
static int check_limits(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    const pt_limits_conf_t *l = obj;
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    if (pages > 0 && psize > 0 && l->memory > (int64_t)pages * psize) {
        pt_conf_error_key(cc, n, "memory", "%lld bytes is more than this machine's memory (%lld bytes)",
                          (long long)l->memory, (long long)pages * psize);
        return -1;
    }
    return 0;
}
static const pt_section_t limits_section = {"limits", sizeof(pt_limits_conf_t), limits_keys, check_limits, NULL,
                                            NULL};

/* ---- caches ---- */

static int check_cache(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    pt_cache_conf_t *ca = obj;
    if (ca->name && !ca->name[0]) {
        pt_conf_error_key(cc, n, "name", "a cache needs a name");
        return -1;
    }
    if (ca->name && strlen(ca->name) > 57) { /* the shared zone's name is "cache:NAME" in 64 bytes */
        pt_conf_error_key(cc, n, "name", "a cache's name has at most 57 bytes");
        return -1;
    }
    for (const char *p = ca->name ? ca->name : ""; *p; p++) /* it is a path segment of the admin API's /cache/NAME */
        if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') && !(*p >= '0' && *p <= '9') && !strchr("._-", *p)) {
            pt_conf_error_key(cc, n, "name", "a cache's name has only letters, digits, '.', '_' and '-'");
            return -1;
        }
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    if (pages > 0 && psize > 0 && ca->memory > (int64_t)pages * psize) {
        pt_conf_error_key(cc, n, "memory", "%lld bytes is more than this machine's memory (%lld bytes)",
                          (long long)ca->memory, (long long)pages * psize);
        return -1;
    }
    if (!ca->max_object_size) /* not given: 8MiB, or a quarter of memory when that is less */
        ca->max_object_size = ca->memory / 4 < (8 << 20) ? ca->memory / 4 : 8 << 20;
    if (ca->max_object_size > ca->memory / 4) {
        pt_conf_error_key(cc, n, "max_object_size", "max_object_size (%lld bytes) must be at most a quarter of memory",
                          (long long)ca->max_object_size);
        return -1;
    }
    if (ca->disk.node && ca->disk.path && (ca->disk.path[0] != '/' || strlen(ca->disk.path) > 1024)) {
        pt_conf_error_key(cc, ca->disk.node, "path", "the disk tier's path must be absolute, of at most 1024 bytes");
        return -1;
    }
    if (ca->disk.node && ca->disk.size < ca->max_object_size) {
        pt_conf_error_key(cc, ca->disk.node, "size", "size (%lld bytes) must be at least max_object_size (%lld bytes)",
                          (long long)ca->disk.size, (long long)ca->max_object_size);
        return -1;
    }
    return 0;
}

#define CA(f) F(pt_cache_conf_t, f)
#define CD(f) (offsetof(pt_cache_conf_t, disk.f) - offsetof(pt_cache_conf_t, disk))
static const pt_directive_t cache_disk_keys[] = {
    {"path", PT_T_STR, CD(path), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, PT_F_REQUIRED, "path",
     "The directory of the cache's files, an absolute path. It is made if missing; the files go in its data/ "
     "subdirectory, which is given to the workers' user. Two caches must not share one."},
    {"size", PT_T_SIZE, CD(size), NULL, 1 << 20, (int64_t)1 << 50, NULL, NULL, NULL, NULL, NULL, PT_F_REQUIRED,
     NULL, "The most the files may take (their headers and keys included). Beyond it, the files used least "
     "recently are removed."},
    END,
};
static const pt_section_t cache_disk_section = {"disk", sizeof(((pt_cache_conf_t *)0)->disk), cache_disk_keys, NULL,
                                                NULL, NULL};
static const pt_directive_t cache_keys[] = {
    {"name", PT_T_STR, CA(name), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, PT_F_REQUIRED, NULL,
     "A unique name, which cache filters give as cache; the admin API's /cache/NAME."},
    {"memory", PT_T_SIZE, CA(memory), "256MiB", 1 << 20, (int64_t)1 << 40, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Shared memory for the cache's index and objects (heads and bodies), shared by every worker and kept, "
     "objects and all, across a reload while the name and this size are unchanged. When it is full, the objects "
     "used least recently are evicted. Pages are taken as it fills."},
    {"disk", PT_T_SECTION, CA(disk), NULL, 0, 0, NULL, &cache_disk_section, NULL, NULL, NULL, PT_F_OPTIONAL, NULL,
     "A second tier on disk, which survives a restart. Objects are written to files by a process of their own "
     "(the cache disk process), never by a worker, after they are stored in memory; a miss in memory for a key "
     "on disk waits (at most a second) for that process to put it back in memory. At start the files are "
     "indexed in the background."},
    {"max_object_size", PT_T_SIZE, CA(max_object_size), NULL, 1, (int64_t)1 << 36, NULL, NULL, NULL, NULL, NULL,
     0, NULL,
     "A response whose stored head and body together are larger is passed on to its client and not stored; as "
     "its size is often not known in advance, its storing is abandoned once it passes this. At most a quarter "
     "of memory; by default 8MiB, or a quarter of memory when that is less."},
    END,
};
static const pt_section_t cache_section = {"caches", sizeof(pt_cache_conf_t), cache_keys, check_cache, NULL, NULL};

/* ---- root ---- */

static const pt_directive_t root_keys[] = {
    {"version", PT_T_INT, F(pt_config_t, version), "1", 1, 1, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Version of the file format; 1."},
    {"workers", PT_T_CUSTOM, F(pt_config_t, workers), "auto", 0, 0, NULL, NULL, NULL, set_workers,
     print_workers, 0, "auto | integer",
     "Worker processes: auto (one per CPU) or 1 to 256. -w overrides it. During a reload the old generation "
     "drains beside the new one; at most 512 workers run at once, each with a column of its own in the shared "
     "counters of the targets, and a new worker past that starts once an old one exits."},
    {"user", PT_T_STR, F(pt_config_t, user), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "When started as root, workers run as this user (and its group) once the sockets are bound. -t checks "
     "that it exists."},
    {"pid_file", PT_T_STR, F(pt_config_t, pid_file), "/run/portico/portico.pid", 0, 0, NULL, NULL, NULL, NULL, NULL,
     PT_F_RESTART, "path", "Where the master writes its pid; -p overrides it. A missing parent directory is created."},
    {"shutdown_timeout", PT_T_DURATION, F(pt_config_t, shutdown_timeout), "30s", 0, 86400000, NULL, NULL, NULL,
     NULL, NULL, 0, NULL,
     "On reload or graceful stop, how long old workers may take to finish in-flight requests. Then a worker "
     "closes the connections still open, WebSocket and other tunnels and HTTP/2 and gRPC streams included, and "
     "exits; one still running 5s later is killed (SIGKILL) by the master. Workers keep the value of their own "
     "generation: a reload that changes it does not change it for the workers it drains."},
    {"worker_watchdog", PT_T_CUSTOM, F(pt_config_t, worker_watchdog), "10s", 0, 0, NULL, NULL, NULL, set_watchdog,
     print_duration, 0, "duration",
     "How long a worker's event loop may stop turning (the process stopped, stuck in a loop, or blocked in a "
     "system call) before the master kills it with SIGKILL. Each worker writes a heartbeat to shared memory every "
     "third of this, at most a second apart; /status shows its age. A worker that was serving is replaced on its "
     "slot at once, and the new one serves the connections waiting in that slot's accept queue; one that hangs "
     "before it is ready is replaced after the same back-off as a worker that crashes at start. Draining workers "
     "of an old generation and new workers that never become ready are killed the same way, so a reload does "
     "not wait on them. 0s turns it off; otherwise from 1s to 1h."},
    {"reload_timeout", PT_T_DURATION, F(pt_config_t, reload_timeout), "60s", 1000, 3600000, NULL, NULL, NULL, NULL,
     NULL, 0, NULL,
     "How long the new workers of a reload have to start and say they are ready, counted once the new file's "
     "host names are resolved (that is bounded by resolver.timeout). The old generation serves until every new "
     "worker is ready, and only then drains. When a new worker exits first (or the watchdog kills it) or this "
     "time passes, the reload fails: the old generation serves on, the new workers that were ready drain what "
     "they accepted, the others are killed, listeners that only the new file had are closed, and "
     "reload_failures in /status counts it."},
    {"max_old_generations", PT_T_INT, F(pt_config_t, max_old_generations), "3", 0, 100, NULL, NULL, NULL, NULL, NULL,
     0, NULL,
     "How many generations of old workers may be draining at once, each for up to its shutdown_timeout, as "
     "long-lived connections (WebSocket, gRPC streams) keep them. When a reload leaves more, the oldest are told "
     "to stop at once (SIGTERM: their connections are closed), and killed 5s later if still running, as HAProxy's "
     "mworker-max-reloads does. 0: an old generation is stopped at once, without draining."},
    {"error_log", PT_T_SECTION, F(pt_config_t, error_log), NULL, 0, 0, NULL, &error_log_section, NULL, NULL, NULL,
     0, NULL, "The error log."},
    {"access_log", PT_T_SECTION, F(pt_config_t, access_log), NULL, 0, 0, NULL, &access_log_section, NULL, NULL,
     NULL, 0, NULL, "The access log."},
    {"listeners", PT_T_LIST, F(pt_config_t, listeners), NULL, 0, 0, NULL, &pt_schema_listener, NULL, NULL, NULL,
     PT_F_REQUIRED, NULL, "Addresses Portico serves HTTP on."},
    {"admin", PT_T_SECTION, F(pt_config_t, admin), NULL, 0, 0, NULL, &admin_section, NULL, NULL, NULL,
     PT_F_OPTIONAL, NULL, "The admin API listener."},
    {"metrics", PT_T_SECTION, F(pt_config_t, metrics), NULL, 0, 0, NULL, &pt_schema_metrics, NULL, NULL, NULL, 0,
     NULL, "The Prometheus metrics of the admin API (GET /metrics)."},
    {"upstreams", PT_T_LIST, F(pt_config_t, upstreams), NULL, 0, 0, NULL, &pt_schema_upstream, NULL, NULL, NULL, 0,
     NULL, "Groups of servers that routes send requests to."},
    {"resolver", PT_T_SECTION, F(pt_config_t, resolver), NULL, 0, 0, NULL, &resolver_section, NULL, NULL, NULL, 0,
     NULL,
     "How targets given by host name are resolved: asynchronously in each worker (evdns), again when the "
     "answer's TTL runs out, never blocking a worker."},
    {"routes", PT_T_LIST, F(pt_config_t, routes), NULL, 0, 0, NULL, &pt_schema_route, NULL, NULL, NULL, 0, NULL,
     "Which requests go where, tried as described under ROUTING."},
    {"global_filters", PT_T_CUSTOM, F(pt_config_t, global_filters), NULL, 0, 0, NULL, NULL, NULL, pt_filters_set,
     pt_filters_print, 0, "map of filters", "Filters applied to every route that does not override them."},
    {"consumers", PT_T_LIST, F(pt_config_t, consumers), NULL, 0, 0, NULL, &consumer_section, NULL, NULL, NULL, 0,
     NULL, "Known API clients; authentication (a later filter) tells which one sent a request."},
    {"redis", PT_T_SECTION, F(pt_config_t, redis), NULL, 0, 0, NULL, &redis_section, NULL, NULL, NULL,
     PT_F_OPTIONAL, NULL, "The Redis that keeps the counters of the limits with policy: redis."},
    {"limits", PT_T_SECTION, F(pt_config_t, limits), NULL, 0, 0, NULL, &limits_section, NULL, NULL, NULL, 0, NULL,
     "The local counters of the rate limits."},
    {"caches", PT_T_LIST, F(pt_config_t, caches), NULL, 0, 0, NULL, &cache_section, NULL, NULL, NULL, 0, NULL,
     "Response caches, each used by the cache filters that name it."},
    {"tracing", PT_T_SECTION, F(pt_config_t, tracing), NULL, 0, 0, NULL, &pt_schema_tracing, NULL, NULL, NULL,
     PT_F_OPTIONAL, NULL,
     "Distributed tracing: W3C Trace Context (and B3) propagated upstream, a server span per request and a "
     "client span per upstream attempt, exported in batches as OTLP/HTTP JSON or Zipkin v2 JSON. Absent: no "
     "tracing, and the trace fields go upstream as the client sent them."},
    {"trusted_proxies", PT_T_LIST, F(pt_config_t, trusted_proxies), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem, NULL, NULL,
     0, "list of addresses",
     "Addresses and ranges (10.0.0.0/8, ::1) of proxies in front of Portico whose X-Forwarded-For, "
     "X-Forwarded-Proto, X-Forwarded-Host and X-Real-IP are believed and extended. From any other client those "
     "headers are replaced. Behind them, ${client_ip} (the limits' default key, templates) is the right-most "
     "address of X-Forwarded-For that is not a trusted proxy itself, as nginx's real_ip_recursive."},
    END,
};

const pt_section_t pt_schema_root = {"portico.yaml", sizeof(pt_config_t), root_keys, NULL, NULL, NULL};
