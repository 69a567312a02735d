/* Names from Kong, APISIX and nginx, and what Portico calls them (see
 * habits.h).  A table, not aliases: the file stays strict (one name per
 * key, so -T prints what was meant and two spellings never fight), and
 * the error says what to write instead.  Only names whose concept Portico
 * has are here; the rest get the usual "did you mean". */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "portico/conf.h"
#include "portico/habits.h"

typedef const char *(*value_hint_fn)(const pt_node_t *value, char *buf, size_t size);

typedef struct habit {
    const char *section; /* the schema section's name */
    const char *key;
    const char *who;     /* whose name it is ("Kong's"), or NULL */
    const char *portico; /* what Portico calls it, or NULL: `extra` explains */
    const char *extra;   /* more, or NULL */
    value_hint_fn fn;    /* a hint drawn from the value, or NULL */
} habit_t;

/* APISIX's upstream `type` values, by Portico's balancer names. */
static const char *balancer_hint(const pt_node_t *v, char *buf, size_t size)
{
    static const char *const names[][2] = {
        {"roundrobin", "round-robin"}, {"chash", "consistent-hashing"}, {"ewma", "latency"},
        {"least_conn", "least-connections"},
    };
    if (!v || v->type != PT_NODE_SCALAR)
        return NULL;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(v->s, names[i][0]) == 0) {
            snprintf(buf, size, "write balancer: %s", names[i][1]);
            return buf;
        }
    return NULL;
}

/* APISIX's nodes, a map { "host:port": weight } or a list of { host,
 * port, weight }: the first one as a Portico target. */
static const char *nodes_hint(const pt_node_t *v, char *buf, size_t size)
{
    const char *addr = NULL, *port = NULL, *weight = NULL;
    if (v && v->type == PT_NODE_MAP && v->npairs) {
        addr = v->pairs[0].key->s;
        if (v->pairs[0].value->type == PT_NODE_SCALAR)
            weight = v->pairs[0].value->s;
    } else if (v && v->type == PT_NODE_SEQ && v->nitems && v->items[0]->type == PT_NODE_MAP) {
        const pt_node_t *h = pt_node_get(v->items[0], "host"), *p = pt_node_get(v->items[0], "port"),
                        *w = pt_node_get(v->items[0], "weight");
        addr = h && h->type == PT_NODE_SCALAR ? h->s : NULL;
        port = p && p->type == PT_NODE_SCALAR ? p->s : NULL;
        weight = w && w->type == PT_NODE_SCALAR ? w->s : NULL;
    }
    if (!addr)
        return NULL;
    size_t more = v->type == PT_NODE_MAP ? v->npairs : v->nitems;
    snprintf(buf, size, "write targets: [{ address: \"%s%s%s\"%s%s }%s]", addr, port ? ":" : "", port ? port : "",
             weight ? ", weight: " : "", weight ? weight : "", more > 1 ? ", ..." : "");
    return buf;
}

#define TIMEOUTS_NOTE "with a unit, such as 2s: Kong's is in milliseconds"
#define HOST_NOTE "Portico passes the client's Host on, unless the route's upstream_host sets another"
#define ADDR_NOTE "Portico matches no client address in a route; the ip-restriction filter allows or denies by it"
#define SERVICE_NOTE "the name of an upstream"

static const habit_t habits[] = {
    /* the top of the file */
    {"portico.yaml", "_format_version", "Kong's", "version", NULL, NULL},
    {"portico.yaml", "services", "Kong's", NULL,
     "Portico has no services: a route names its upstream (upstream: NAME), and the service's host and port "
     "become that upstream's targets", NULL},
    {"portico.yaml", "plugins", "Kong's and APISIX's", "global_filters", NULL, NULL},
    {"portico.yaml", "global_rules", "APISIX's", "global_filters", NULL, NULL},
    {"portico.yaml", "worker_processes", "nginx's", "workers", NULL, NULL},
    {"portico.yaml", "pid", "nginx's", "pid_file", NULL, NULL},
    {"portico.yaml", "worker_shutdown_timeout", "nginx's", "shutdown_timeout", NULL, NULL},
    {"portico.yaml", "listen", "nginx's", "listeners", "a list of { name, address }", NULL},
    {"portico.yaml", "set_real_ip_from", "nginx's", "trusted_proxies", NULL, NULL},
    {"portico.yaml", "proxy_cache_path", "nginx's", "caches", "a list of { name, memory, max_object_size, disk: { path, size } }", NULL},
    {"portico.yaml", "cache", NULL, "caches", "a list of { name, memory }; a route's cache filter uses one", NULL},
    {"portico.yaml", "server", "nginx's", NULL,
     "a server block becomes listeners (its listen) and routes (its locations)", NULL},
    /* listeners */
    {"listener", "listen", "nginx's", "address", NULL, NULL},
    {"listener", "port", "nginx's", "address", "one key for both: address: 0.0.0.0:8080", NULL},
    {"listener", "server_name", "nginx's", NULL, "a listener takes every host; a route's match.hosts chooses", NULL},
    {"listener", "ssl", "nginx's", "tls", NULL, NULL},
    {"listener", "keepalive_timeout", "nginx's", "timeouts.idle", NULL, NULL},
    {"listener", "client_header_timeout", "nginx's", "timeouts.header", NULL, NULL},
    {"listener", "client_body_timeout", "nginx's", "timeouts.body", NULL, NULL},
    {"listener", "send_timeout", "nginx's", "timeouts.send", NULL, NULL},
    {"listener", "large_client_header_buffers", "nginx's", "max_header_size", NULL, NULL},
    {"listener", "client_max_body_size", "nginx's", NULL, "a route's max_body_size limits request bodies", NULL},
    {"certificate", "cert_file", NULL, "cert", NULL, NULL},
    {"certificate", "ssl_certificate", "nginx's", "cert", NULL, NULL},
    {"certificate", "key_file", NULL, "key", NULL, NULL},
    {"certificate", "ssl_certificate_key", "nginx's", "key", NULL, NULL},
    {"certificate", "snis", "Kong's", NULL,
     "a certificate's own DNS names (or CN) choose it for a client's SNI: no list is needed", NULL},
    /* routes */
    {"route", "plugins", "Kong's and APISIX's", "filters", NULL, NULL},
    {"route", "uri", "APISIX's", "match.paths", "a list under match: match: { paths: [...] }", NULL},
    {"route", "uris", "APISIX's", "match.paths", "a list under match: match: { paths: [...] }", NULL},
    {"route", "paths", "Kong's", "match.paths",
     "under match; and /a is exact in Portico: write /a/* for /a and everything under it", NULL},
    {"route", "hosts", "Kong's", "match.hosts", "under match: match: { hosts: [...] }", NULL},
    {"route", "host", "APISIX's", "match.hosts", "a list under match: match: { hosts: [...] }", NULL},
    {"route", "methods", "Kong's and APISIX's", "match.methods", "under match: match: { methods: [...] }", NULL},
    {"route", "headers", "Kong's", "match.headers", "under match: match: { headers: {...} }", NULL},
    {"route", "vars", "APISIX's", NULL, "Portico matches headers, query arguments and cookies with match.headers, "
     "match.query and match.cookies", NULL},
    {"route", "remote_addrs", "APISIX's", NULL, ADDR_NOTE, NULL},
    {"route", "sources", "Kong's", NULL, ADDR_NOTE, NULL},
    {"route", "strip_path", "Kong's", "strip_prefix",
     "it takes the prefix to remove, such as strip_prefix: /api, not true or false", NULL},
    {"route", "strip_uri", "Kong's (before 1.0)", "strip_prefix",
     "it takes the prefix to remove, such as strip_prefix: /api, not true or false", NULL},
    {"route", "service", "Kong's", "upstream", SERVICE_NOTE, NULL},
    {"route", "service_id", "APISIX's", "upstream", SERVICE_NOTE, NULL},
    {"route", "upstream_id", "APISIX's", "upstream", SERVICE_NOTE, NULL},
    {"route", "proxy_pass", "nginx's", "upstream", SERVICE_NOTE, NULL},
    {"route", "preserve_host", "Kong's", NULL, HOST_NOTE, NULL},
    {"route", "regex_priority", "Kong's", "priority", NULL, NULL},
    {"route", "id", "Kong's and APISIX's", "name", NULL, NULL},
    {"route", "timeout", "APISIX's", NULL, "timeouts are the upstream's: upstreams[].timeouts { connect, send, read }",
     NULL},
    /* a Kong service's settings, brought along with its route */
    {"route", "retries", "Kong's service", NULL, "retries are the upstream's: upstreams[].retries", NULL},
    {"route", "connect_timeout", "Kong's service", NULL, "the upstream's timeouts.connect, " TIMEOUTS_NOTE, NULL},
    {"route", "write_timeout", "Kong's service", NULL, "the upstream's timeouts.send, " TIMEOUTS_NOTE, NULL},
    {"route", "read_timeout", "Kong's service", NULL, "the upstream's timeouts.read, " TIMEOUTS_NOTE, NULL},
    {"route", "enable_websocket", "APISIX's", NULL, "Portico always passes WebSocket upgrades on", NULL},
    {"route", "client_max_body_size", "nginx's", "max_body_size", NULL, NULL},
    {"route", "proxy_redirect", "nginx's", "rewrite_location", NULL, NULL},
    {"match", "uri", "APISIX's", "paths", "a list", NULL},
    {"match", "uris", "APISIX's", "paths", NULL, NULL},
    {"match", "vars", "APISIX's", NULL, "Portico matches headers, query arguments and cookies with headers, query "
     "and cookies", NULL},
    {"match", "remote_addrs", "APISIX's", NULL, ADDR_NOTE, NULL},
    {"match", "sources", "Kong's", NULL, ADDR_NOTE, NULL},
    /* upstreams and their targets */
    {"upstream", "nodes", "APISIX's", "targets", NULL, nodes_hint},
    {"upstream", "type", "APISIX's", "balancer", NULL, balancer_hint},
    {"upstream", "servers", "Traefik's", "targets", "a list of { address, weight }", NULL},
    {"upstream", "server", "nginx's", "targets", "a list of { address, weight }", NULL},
    {"upstream", "algorithm", "Kong's", "balancer", NULL, NULL},
    {"upstream", "hash_on", "Kong's and APISIX's", "hash.on", NULL, NULL},
    {"upstream", "hash_fallback", "Kong's", "hash.fallback", NULL, NULL},
    {"upstream", "hash_on_header", "Kong's", "hash.name", "with hash.on: header", NULL},
    {"upstream", "hash_on_cookie", "Kong's", "hash.name", "with hash.on: cookie", NULL},
    {"upstream", "hash_on_query_arg", "Kong's", "hash.name", "with hash.on: query", NULL},
    {"upstream", "key", "APISIX's", "hash.name", NULL, NULL},
    {"upstream", "checks", "APISIX's", "healthchecks", NULL, NULL},
    {"upstream", "keepalive_pool", "APISIX's", "keepalive", NULL, NULL},
    {"upstream", "timeout", "APISIX's", "timeouts", NULL, NULL},
    {"upstream", "connect_timeout", "Kong's", "timeouts.connect", TIMEOUTS_NOTE, NULL},
    {"upstream", "write_timeout", "Kong's", "timeouts.send", TIMEOUTS_NOTE, NULL},
    {"upstream", "read_timeout", "Kong's", "timeouts.read", TIMEOUTS_NOTE, NULL},
    {"upstream", "pass_host", "APISIX's", NULL, HOST_NOTE, NULL},
    {"upstream", "upstream_host", "APISIX's", NULL, "upstream_host is a route's key in Portico", NULL},
    {"upstream", "host_header", "Kong's", NULL, HOST_NOTE, NULL},
    {"upstream", "id", "Kong's and APISIX's", "name", NULL, NULL},
    {"target", "target", "Kong's", "address", NULL, NULL},
    {"target", "host", "APISIX's", "address", "host and port in one: address: 10.0.0.1:8080", NULL},
    {"target", "port", "APISIX's", "address", "host and port in one: address: 10.0.0.1:8080", NULL},
    /* filters' settings */
    {"cors", "allow_origins", "APISIX's", "origins", NULL, NULL},
    {"cors", "allow_methods", "APISIX's", "methods", NULL, NULL},
    {"cors", "allow_headers", "APISIX's", "headers", NULL, NULL},
    {"cors", "allow_credential", "APISIX's", "credentials", NULL, NULL},
    {"cors", "exposed_headers", "Kong's", "expose_headers", NULL, NULL},
    {"ip-restriction", "whitelist", "APISIX's", "allow", NULL, NULL},
    {"ip-restriction", "allowlist", "APISIX's", "allow", NULL, NULL},
    {"ip-restriction", "blacklist", "APISIX's", "deny", NULL, NULL},
    {"ip-restriction", "denylist", "APISIX's", "deny", NULL, NULL},
    {"request-size", "allowed_payload_size", "Kong's", "max", "a size with its unit, such as 10m", NULL},
    {"circuit-breaker", "break_response_code", "APISIX's", "status", NULL, NULL},
    {"circuit-breaker", "break_response_body", "APISIX's", "message", NULL, NULL},
    {"circuit-breaker", "max_breaker_sec", "APISIX's", "break_duration", NULL, NULL},
    {"circuit-breaker", "unhealthy", "APISIX's", NULL, "Portico's keys are failures and statuses", NULL},
    {"circuit-breaker", "healthy", "APISIX's", NULL, "Portico's key is successes", NULL},
    {"abort", "http_status", "APISIX's", "status", NULL, NULL},
    {"redirect", "uri", "APISIX's", "location", NULL, NULL},
    {"redirect", "http_to_https", "APISIX's", "https", NULL, NULL},
    {"redirect", "ret_code", "APISIX's", "status", NULL, NULL},
    {"path-rewrite", "uri", "APISIX's", "template", NULL, NULL},
    {"path-rewrite", "regex_uri", "APISIX's", NULL, "write regex: RE and replacement: TEXT", NULL},
    {"limit-count", "time_window", "APISIX's", "window", "a duration with its unit, such as 60s", NULL},
    {"limit-count", "limit_by", "Kong's", "key", "a template, such as \"${consumer}\"", NULL},
    {"limit-count", "minute", "Kong's", NULL, "write count: N and window: 60s", NULL},
    {"limit-count", "second", "Kong's", NULL, "write count: N and window: 1s", NULL},
    {"limit-count", "hour", "Kong's", NULL, "write count: N and window: 3600s", NULL},
    {"limit-count", "redis_host", "Kong's and APISIX's", NULL, "the top-level redis: section", NULL},
    {"limit-count", "redis_port", "Kong's and APISIX's", NULL, "the top-level redis: section", NULL},
    {"limit-count", "sync_rate", "Kong's", "sync_interval", "a duration, such as 200ms", NULL},
    {"limit-count", "limit", "Kong's", "count", NULL, NULL},
    {"limit-req", "limit_by", "Kong's", "key", "a template, such as \"${consumer}\"", NULL},
    {"limit-conn", "default_conn_delay", "APISIX's", "delay", "a duration with its unit, such as 100ms", NULL},
    {"limit-conn", "limit_by", "Kong's", "key", "a template, such as \"${consumer}\"", NULL},
    {"cache", "cache_ttl", "Kong's", "default_ttl", "used only where the response allows a heuristic", NULL},
    {"cache", "cache_key", "APISIX's", "key", "a template, such as \"${host}${path}\"", NULL},
    {"cache", "cache_method", "APISIX's", "methods", NULL, NULL},
    {"cache", "request_method", "Kong's", "methods", NULL, NULL},
    {"cache", "cache_control", "Kong's", NULL, "Portico always follows the response's Cache-Control (RFC 9111)",
     NULL},
    {"cache", "cache_zone", "APISIX's", "cache", "the name of one of caches:", NULL},
    {"cache", "proxy_cache_key", "nginx's", "key", "a template, such as \"${scheme}://${host}${path}?${query}\"",
     NULL},
    {"cache", "proxy_cache_lock_timeout", "nginx's", "lock_timeout", NULL, NULL},
    {"cache", "proxy_cache_methods", "nginx's", "methods", NULL, NULL},
};

/* Kong's and APISIX's plugins whose job a Portico filter (or key) does. */
static const habit_t filter_habits[] = {
    {NULL, "request-size-limiting", "Kong's", "request-size", NULL, NULL},
    {NULL, "api-breaker", "APISIX's", "circuit-breaker", NULL, NULL},
    {NULL, "proxy-rewrite", "APISIX's", "path-rewrite",
     "with request-headers for its headers, and the route's upstream_host for its host", NULL},
    {NULL, "request-transformer", "Kong's", "request-headers", "with path-rewrite for a new path", NULL},
    {NULL, "response-transformer", "Kong's", "response-headers", NULL, NULL},
    {NULL, "response-rewrite", "APISIX's", "response-headers", NULL, NULL},
    {NULL, "client-control", "APISIX's", NULL, "a route's max_body_size, or the request-size filter", NULL},
    {NULL, "request-termination", "Kong's", NULL, "a route answers by itself with respond: { status, body }", NULL},
    {NULL, "real-ip", "APISIX's", NULL, "the top-level trusted_proxies", NULL},
    {NULL, "rate-limiting", "Kong's", "limit-count", NULL, NULL},
    {NULL, "proxy-cache", "Kong's and APISIX's", "cache", "with a cache under the top-level caches:", NULL},
    {NULL, "rate-limiting-advanced", "Kong Enterprise's", "limit-count", "with policy: redis across nodes", NULL},
    {NULL, "correlation-id", "Kong's", NULL,
     "every request has an X-Request-Id (the client's when sane), sent upstream and logged", NULL},
    {NULL, "request-id", "APISIX's", NULL,
     "every request has an X-Request-Id (the client's when sane), sent upstream and logged", NULL},
};

static const char *format(const habit_t *h, const pt_node_t *value, char *buf, size_t size)
{
    char more[256];
    const char *extra = h->fn ? h->fn(value, more, sizeof(more)) : NULL;
    if (!extra)
        extra = h->extra;
    if (h->portico && h->who)
        snprintf(buf, size, ": %s name for what Portico calls \"%s\"%s%s%s", h->who, h->portico,
                 extra ? " (" : "", extra ? extra : "", extra ? ")" : "");
    else if (h->portico)
        snprintf(buf, size, ": Portico calls it \"%s\"%s%s%s", h->portico, extra ? " (" : "", extra ? extra : "",
                 extra ? ")" : "");
    else
        snprintf(buf, size, " (%s): %s", h->who, extra);
    return buf;
}

const char *pt_habits_key(const char *section, const char *key, const pt_node_t *value, char *buf, size_t size)
{
    for (size_t i = 0; i < sizeof(habits) / sizeof(habits[0]); i++)
        if (strcmp(habits[i].key, key) == 0 && strcmp(habits[i].section, section) == 0)
            return format(&habits[i], value, buf, size);
    return NULL;
}

const char *pt_habits_filter(const char *name, char *buf, size_t size)
{
    for (size_t i = 0; i < sizeof(filter_habits) / sizeof(filter_habits[0]); i++)
        if (strcmp(filter_habits[i].key, name) == 0)
            return format(&filter_habits[i], NULL, buf, size);
    return NULL;
}
