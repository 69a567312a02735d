/* The compiled configuration of one generation: immutable after load,
 * allocated from one arena and freed in one go. */
#ifndef PORTICO_CONFIG_T_H
#define PORTICO_CONFIG_T_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "portico/arena.h"
#include "portico/schema-t.h"
#include "portico/trace-t.h"
#include "portico/value.h"

typedef struct pt_route pt_route_t;
struct pt_cidr;
struct pt_location;

enum pt_accesslog_format { PT_ALOG_COMBINED, PT_ALOG_COMMON, PT_ALOG_JSON, PT_ALOG_CUSTOM };
enum pt_balancer_kind { PT_BAL_RR, PT_BAL_LEASTCONN, PT_BAL_HASH, PT_BAL_LATENCY, PT_BAL_RANDOM2 };
enum pt_hash_on { PT_HASH_NONE, PT_HASH_HEADER, PT_HASH_COOKIE, PT_HASH_QUERY, PT_HASH_IP, PT_HASH_URI };

typedef struct pt_log_conf {
    const pt_node_t *node;
    char *path; /* NULL: stderr in the foreground, the default file otherwise */
    int level;
} pt_log_conf_t;

/* Which requests the access log keeps: access_log.sample and
 * sample_errors, or a route's access_log (false, or its own sampling). */
enum { PT_ALOG_ERRORS_ALWAYS, PT_ALOG_ERRORS_SAMPLED };
typedef struct pt_alog_policy {
    const pt_node_t *node; /* a route's: NULL when it has no access_log key (the global policy) */
    bool off;              /* a route's access_log: false */
    double sample;         /* 0..1; < 0 in a route's: the global one */
    int sample_errors;     /* PT_ALOG_ERRORS_*; < 0 in a route's: the global one */
    uint64_t cut;          /* compiled from sample: a request is kept when a draw is below it */
} pt_alog_policy_t;

typedef struct pt_accesslog_conf {
    const pt_node_t *node;
    char *path; /* NULL: off */
    char *format;
    int64_t buffer;
    int64_t flush;
    pt_alog_policy_t policy; /* sample, sample_errors */
    pt_strlist_t fields;     /* format: json: the fields, in order (none: the default set) */
    /* compiled */
    int kind;
    void *compiled;               /* pt_alog_seg_t[]: the template, or the JSON fields */
    struct pt_alog_hdr *hdrs;     /* the header fields the format names ($http_NAME, ...) */
    size_t nhdrs;
    size_t line_max;              /* the longest line the format can make */
} pt_accesslog_conf_t;

typedef struct pt_tls_cert_conf {
    const pt_node_t *node;
    char *cert, *key;
} pt_tls_cert_conf_t;

enum pt_tls_verify { PT_VERIFY_REQUIRED, PT_VERIFY_OPTIONAL };
/* escaped_slashes: what %2F and %5C in a request path do (Envoy's
 * path_with_escaped_slashes_action). */
typedef enum { PT_SLASHES_REJECT, PT_SLASHES_DECODE, PT_SLASHES_KEEP } pt_slashes_t;

/* A listener's `tls:`, compiled at load into `server` (tls.h). */
typedef struct pt_tls_conf {
    const pt_node_t *node; /* NULL: plain HTTP */
    pt_list_t certificates; /* pt_tls_cert_conf_t */
    pt_list_t protocols;    /* char *: TLSv1.2, TLSv1.3 */
    char *ciphers, *ciphersuites;
    bool session_tickets;
    int64_t ticket_key_rotation;
    char *client_ca;
    int verify;
    int64_t handshake_timeout;
    struct pt_tls_server *server;
} pt_tls_conf_t;

typedef struct pt_listener_conf {
    const pt_node_t *node;
    char *name;
    pt_addr_t address;
    struct {
        const pt_node_t *node;
        int64_t header, body, idle, send, filters;
    } timeouts;
    int64_t backlog;
    int64_t max_connections;
    int64_t max_request_line;
    int64_t max_header_size;
    int64_t max_headers;
    int64_t min_body_rate; /* bytes per second */
    int escaped_slashes;   /* pt_slashes_t */
    pt_tls_conf_t tls;
    bool http2;
    struct {
        const pt_node_t *node;
        int64_t max_concurrent_streams, initial_window_size, reset_burst, reset_rate;
        int64_t connection_buffer; /* response memory budget of one connection */
    } http2_settings;
} pt_listener_conf_t;

typedef struct pt_admin_conf {
    const pt_node_t *node; /* NULL: no admin listener */
    pt_addr_t address;
    bool allow_remote;
    char *token; /* state-changing requests need "Authorization: Bearer <token>"; NULL: none */
    int runtime_changes; /* enum pt_rtc: what a reload does with the targets changed through the API */
    char *access_log; /* the admin API's own access log file; NULL: none */
} pt_admin_conf_t;
enum pt_rtc { PT_RTC_REVERT, PT_RTC_KEEP };

/* `metrics:` (metrics.h). */
typedef struct pt_metrics_conf {
    const pt_node_t *node;
    double buckets[32]; /* upper bounds in seconds, ascending; the rest 0 */
    int64_t nbuckets;
} pt_metrics_conf_t;

typedef struct pt_target_conf {
    const pt_node_t *node;
    char *address;
    int64_t weight;
    pt_addr_t addr; /* compiled when address is numeric */
} pt_target_conf_t;

enum pt_probe_type { PT_PROBE_HTTP, PT_PROBE_TCP };

/* healthchecks.active: probes sent to every target by one process. */
typedef struct pt_active_conf {
    const pt_node_t *node;
    int type;
    char *http_path, *host;
    int64_t timeout;
    struct {
        const pt_node_t *node;
        int64_t interval, successes;
        pt_list_t http_statuses; /* int64_t; empty: 200, 302 */
    } healthy;
    struct {
        const pt_node_t *node;
        int64_t interval, http_failures, tcp_failures, timeouts;
        pt_list_t http_statuses; /* int64_t; empty: 404, 429, 500-505 */
    } unhealthy;
} pt_active_conf_t;

enum pt_scheme { PT_SCHEME_HTTP, PT_SCHEME_HTTPS, PT_SCHEME_GRPC, PT_SCHEME_GRPCS };

/* An upstream's `tls:` (with scheme: https), compiled into `client`. */
typedef struct pt_upstream_tls {
    const pt_node_t *node;
    bool verify;
    char *ca, *sni, *cert, *key;
    struct pt_tls_client *client;
} pt_upstream_tls_t;

typedef struct pt_upstream_conf {
    const pt_node_t *node;
    char *name;
    int scheme;
    pt_upstream_tls_t tls;
    int balancer;
    struct {
        const pt_node_t *node;
        int on;
        char *name;
        int fallback;
    } hash;
    pt_list_t targets; /* pt_target_conf_t */
    struct {
        const pt_node_t *node;
        int64_t size, idle_timeout, requests;
    } keepalive;
    struct {
        const pt_node_t *node;
        int64_t connect, send, read;
    } timeouts;
    int64_t retries;
    int64_t retry_timeout;      /* ms; 0: no limit */
    bool retry_same_target;     /* a timeout may be retried on the target that timed out */
    pt_list_t retry_statuses;   /* int64_t */
    struct {
        const pt_node_t *node;
        int64_t percent, min_per_second;
    } retry_budget;
    int when_all_down; /* 0: fail (503 at once), 1: try them anyway */
    struct {
        const pt_node_t *node;
        struct {
            const pt_node_t *node;
            struct {
                const pt_node_t *node;
                pt_list_t http_statuses; /* int64_t */
                int64_t http_failures, tcp_failures, timeouts;
            } unhealthy;
            int64_t cooldown, slow_start;
        } passive;
        pt_active_conf_t active; /* node NULL: no active checks */
    } healthchecks;
} pt_upstream_conf_t;

enum pt_pred_kind { PT_PRED_HEADER, PT_PRED_QUERY, PT_PRED_COOKIE };

/* One match predicate: a header, query argument or cookie equal to a
 * value, or matching a regex (a value written "~re"). */
typedef struct pt_predicate {
    int kind;
    char *name;
    char *value;
    void *re; /* pcre2_code *, or NULL for an exact value */
} pt_predicate_t;

#define PT_FILTER_SLOTS 32 /* >= PT_FILTER__COUNT (filter.h) */

/* `filters:` of a route, of global_filters or of a consumer: one conf per
 * filter of the pipeline, NULL when not mentioned, PT_FILTER_OFF for false. */
typedef struct pt_filterset {
    const pt_node_t *node;
    const void *conf[PT_FILTER_SLOTS];
} pt_filterset_t;
extern const char pt_filter_off_marker;
#define PT_FILTER_OFF ((const void *)&pt_filter_off_marker)

/* A consumer's credential: `type` says which of the keys apply (the
 * others are refused at load). */
enum { PT_CRED_KEY, PT_CRED_BASIC, PT_CRED_JWT, PT_CRED_HMAC, PT_CRED_TLS, PT_CRED__COUNT };
typedef struct pt_credential_conf {
    const pt_node_t *node;
    int type;
    char *id;                          /* X-Credential-Identifier; default: see pt_cred_identifier */
    char *key, *key_sha256;            /* key-auth; jwt-auth: key is the key_claim value */
    char *username, *password;         /* basic-auth: password is a crypt(3) hash */
    char *algorithm, *secret, *public_key; /* jwt-auth; hmac-auth: secret */
    bool secret_base64;                /* secret is base64 (or base64url) of the bytes */
    unsigned char *secret_raw;         /* compiled: the secret's bytes */
    size_t secret_len;
    char *key_id;                      /* hmac-auth */
    char *san, *subject;               /* tls-client */
    /* compiled */
    unsigned char digest[32];          /* key-auth: SHA-256 of the key */
    void *jwk;                         /* jwt-auth: pt_jwk_t *, owned by the configuration */
    size_t index;                      /* in its consumer's list */
    const char *ident;                 /* X-Credential-Identifier (pt_cred_identifier) */
    const struct pt_consumer_conf *consumer;
} pt_credential_conf_t;

typedef struct pt_consumer_conf {
    const pt_node_t *node;
    char *name;
    pt_strlist_t groups;
    pt_list_t credentials; /* pt_credential_conf_t */
    pt_filterset_t filters;
    char *groups_text;     /* compiled: "a, b" for X-Consumer-Groups, or NULL */
    const char *log_name;  /* the name with secrets masked, for the access log */
} pt_consumer_conf_t;

typedef struct pt_route_conf {
    const pt_node_t *node;
    char *name;
    struct {
        const pt_node_t *node;
        pt_strlist_t hosts, paths, methods;
        pt_kvlist_t headers, query, cookies;
    } match;
    int64_t priority;
    char *upstream;
    char *strip_prefix;
    bool rewrite_location; /* strip_prefix goes back into Location and Content-Location */
    char *upstream_host;
    int64_t max_body_size; /* 0: no limit */
    bool metrics;          /* the route's series in /metrics */
    bool tracing;          /* false: no spans, the client's trace fields go upstream untouched */
    pt_filterset_t filters;
    const void *const *fconf; /* effective: route over global; NULL when no filter is on */
    pt_alog_policy_t access_log; /* node NULL: the global access_log's sampling */
    struct {
        const pt_node_t *node; /* NULL: no respond action */
        int64_t status;
        pt_kvlist_t headers;
        char *body;
    } respond;
    /* compiled */
    unsigned methods_mask; /* 0: any */
    pt_predicate_t *preds;
    size_t npreds;
    void **path_re; /* per path: pcre2_code * for "~re" paths, else NULL */
    const pt_upstream_conf_t *up;
    const struct pt_location *location; /* NULL: Location passes as it is (location.h) */
    char *resp_head; /* status line and fixed headers of a respond route */
    size_t resp_head_len;
    size_t index;
    const char *log_name; /* name with ${NAME} values masked, for the access log */
} pt_route_conf_t;

/* `redis:`: the server that keeps the counters of the limits with
 * `policy: redis` (redis.h). */
enum { PT_REDIS_SINGLE, PT_REDIS_SENTINEL, PT_REDIS_CLUSTER };
typedef struct pt_redis_conf {
    const pt_node_t *node; /* NULL: no redis section */
    int mode;              /* PT_REDIS_SINGLE, _SENTINEL, _CLUSTER */
    pt_strlist_t addresses; /* "host:port": the server, the sentinels, or the cluster's seed nodes */
    char *master_name;     /* sentinel */
    char *username, *password; /* AUTH; password is a secret */
    char *sentinel_password;   /* AUTH to the sentinels, when they ask for one */
    int64_t database;      /* SELECT; single and sentinel only */
    int64_t timeout;       /* ms: per command; past it the limit counts locally */
    int64_t probe_interval; /* ms: while in fallback, how often Redis is asked whether it is back */
} pt_redis_conf_t;

/* `limits:`: the shared-memory table of the local counters. */
typedef struct pt_limits_conf {
    const pt_node_t *node;
    int64_t memory; /* bytes */
} pt_limits_conf_t;

/* `caches:`: a response cache's storage (cache_store.h), used by the
 * cache filters that name it. */
typedef struct pt_cache_conf {
    const pt_node_t *node;
    char *name;
    int64_t memory;          /* bytes of shared memory: the index and the objects */
    struct {
        const pt_node_t *node; /* NULL: memory only */
        char *path;
        int64_t size;
    } disk;
    int64_t max_object_size; /* bytes: a larger response is passed on, not stored */
} pt_cache_conf_t;

typedef struct pt_prov {
    const void *field;
    const char *orig;
} pt_prov_t;

typedef struct pt_config {
    const pt_node_t *node;
    int64_t version;
    int64_t workers; /* 0: one per CPU */
    char *user;
    char *pid_file;
    int64_t shutdown_timeout;
    int64_t worker_watchdog; /* ms; 0: off */
    int64_t reload_timeout;      /* ms a reload's new generation has to be ready */
    int64_t max_old_generations; /* generations left draining; the oldest past it are stopped */
    pt_log_conf_t error_log;
    pt_accesslog_conf_t access_log;
    pt_list_t listeners; /* pt_listener_conf_t */
    pt_admin_conf_t admin;
    pt_metrics_conf_t metrics;
    pt_list_t upstreams; /* pt_upstream_conf_t */
    struct {
        const pt_node_t *node;
        pt_list_t nameservers; /* char *: "ip" or "ip:port" */
        int64_t valid, timeout;
    } resolver;
    pt_list_t routes;    /* pt_route_conf_t */
    pt_filterset_t global_filters;
    pt_list_t consumers; /* pt_consumer_conf_t */
    struct pt_cred_index *creds; /* compiled: the consumers' credentials by type and key */
    const char *secret_args[8];   /* query arguments that carry credentials: *** in every log line */
    size_t nsecret_args;
    pt_strlist_t trusted_proxies;
    pt_redis_conf_t redis;
    pt_limits_conf_t limits;
    pt_list_t caches;        /* pt_cache_conf_t */
    pt_trace_conf_t tracing;
    struct pt_cidr *trusted; /* compiled trusted_proxies */
    size_t ntrusted;

    /* not from the file */
    char *file;
    unsigned char sha256[32];
    char sha256_hex[65];
    time_t loaded_at;
    pt_list_t prov; /* pt_prov_t: fields whose value came from ${VAR} */
    void **regexes; /* every pcre2_code compiled for this generation */
    size_t nregexes, capregexes;
    struct pt_owned *owned; /* other things made at load, freed with it */
    pt_arena_t arena;
} pt_config_t;

#define PT_LIST_AT(list, type, i) (&((type *)(list).v)[i])

#endif
