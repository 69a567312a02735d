/* What limit-req, limit-count and limit-conn share: the keys every one of
 * them takes (key, rejected_code, rejected_message, headers, policy), the
 * counter's identity from the expanded key, the rate-limit fields of the
 * response, the refusal, and the worker's Redis client. */
#ifndef PORTICO_LIMIT_FILTER_H
#define PORTICO_LIMIT_FILTER_H

#include <event2/event_struct.h>
#include <stdbool.h>
#include <stdint.h>

#include "portico/filter.h"
#include "portico/limit.h"
#include "portico/redis.h"

enum { PT_LH_IETF, PT_LH_LEGACY, PT_LH_OFF, PT_LH_TRUE }; /* headers: (true is ietf) */
enum { PT_LP_LOCAL, PT_LP_REDIS };                        /* policy: */

/* The first member of each limit filter's conf. */
typedef struct pt_limit_common {
    const pt_node_t *node;
    char *key;
    int64_t rejected_code;
    char *rejected_message;
    int headers;
    int policy;
    int64_t sync_interval; /* limit-count only; ms */
    /* compiled */
    pt_tpl_t *tpl;
    const char *scope;   /* where it is written (link) */
    const char *fname;   /* the filter's name, for the fields and the log */
    char kind;           /* 'c' fixed, 's' sliding, 'r' req, 'n' conn */
    int64_t window_ms;   /* limit-count; 0 for the others */
    bool empty_logged;   /* per worker: the key expanded to nothing once */
    pt_str_t policy_field; /* made at load: RateLimit-Policy's value (ietf), X-RateLimit-Limit's (legacy) */
} pt_limit_common_t;

/* The keys every limit filter takes, in its table (the conf starts with
 * its pt_limit_common_t, so the offsets hold). */
extern const char *const pt_limit_header_names[];
#define PT_LIMIT_COMMON_KEY_ENTRIES                                                                                   \
    {"key", PT_T_STR, offsetof(pt_limit_common_t, key), "${client_ip}", 0, 0, NULL, NULL, NULL, NULL, NULL, 0,       \
     "template",                                                                                                     \
     "What is counted: a template over ${client_ip}, ${consumer}, ${route}, ${header.NAME}, ${query.NAME}, "        \
     "${param.NAME}, ${host}, ${path}, and combinations such as \"${consumer}:${route}\". A key that expands to "   \
     "nothing (no consumer, no such header) counts per client address instead, logged once per route and "         \
     "worker. Each key has its own counter; so has each place the filter is written (a route, global_filters, a " \
     "consumer): a limit in global_filters is one counter per key for all the routes that use it."},              \
    {"rejected_code", PT_T_INT, offsetof(pt_limit_common_t, rejected_code), "429", 200, 599, NULL, NULL, NULL, NULL, \
     NULL, 0, NULL, "The status of a refused request, sent with Retry-After (seconds)."},                           \
    {"rejected_message", PT_T_STR, offsetof(pt_limit_common_t, rejected_message), NULL, 0, 0, NULL, NULL, NULL,      \
     NULL, NULL, 0, NULL, "The body of a refused request (text/plain); default: the status and its reason."},       \
    {"headers", PT_T_ENUM, offsetof(pt_limit_common_t, headers), "ietf", 0, 0, pt_limit_header_names, NULL, NULL,    \
     NULL, NULL, 0, "ietf | legacy | false",                                                                         \
     "The rate-limit fields of each response the limit applies to, refusals included. ietf: RateLimit-Policy and " \
     "RateLimit of the IETF httpapi draft (09): \"NAME\";q=QUOTA;w=WINDOW and \"NAME\";r=REMAINING;t=SECONDS, "    \
     "NAME the filter's. legacy: X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset, as Kong and "      \
     "APISIX send. false: neither."}

/* The section check's common part: compiles the key template. */
int pt_limit_check(pt_conf_ctx_t *cc, const pt_node_t *n, pt_limit_common_t *lc, const char *fname, char kind,
                   int64_t q, int64_t w);
/* The link hook's common part: the scope; and, with policy redis, that the
 * file has a redis: section. */
int pt_limit_link(pt_conf_ctx_t *cc, const pt_config_t *c, pt_limit_common_t *lc, const char *scope);

/* The per-request state every limit filter starts with. */
typedef struct pt_limit_state {
    pt_conn_t *c;
    int phase;              /* PT_LS_* */
    pt_lkey_t key;
    pt_str_t rkey;          /* the Redis key (policy redis), in the request arena */
    pt_lresult_t res;
    pt_redis_call_t *call;
    struct event *timer;    /* made when the request is held */
    bool timer_armed;
    int64_t hold1;          /* limit-conn: its hold + 1; 0: none */
    int64_t counted;        /* limit-count: the window index + 1 it counted this request in locally; 0: none */
} pt_limit_state_t;
enum { PT_LS_NEW, PT_LS_ASKING, PT_LS_ANSWERED, PT_LS_DELAYING, PT_LS_DONE };

/* Expands the key (the client's address when it expands to nothing, logged
 * once per route and worker) into st->key, and st->rkey when redis.  0, or
 * a verdict to return (a refusal of a bad value, a failure). */
int pt_limit_key(pt_conn_t *c, const pt_h1_req_t *req, const pt_limit_common_t *lc, pt_limit_state_t *st,
                 pt_verdict_t *v);
/* The result is in st->res: adds the rate-limit fields, and refuses the
 * request when it is not allowed (PT_RESPOND), else PT_NEXT. */
pt_verdict_t pt_limit_finish(pt_conn_t *c, const pt_h1_req_t *req, const pt_limit_common_t *lc,
                             pt_limit_state_t *st);
/* Holds the request for ms (a delayed limit-req or limit-conn burst):
 * PT_SUSPEND, the hook runs again with phase PT_LS_DONE. */
pt_verdict_t pt_limit_delay(pt_conn_t *c, pt_limit_state_t *st, int64_t ms);
/* Asks Redis: PT_SUSPEND while it answers (the hook runs again with phase
 * PT_LS_ANSWERED and the reply in vals handed to decode), or PT_NEXT when
 * Redis is not asked (fallback: the caller counts locally). */
typedef void (*pt_limit_decode_fn)(pt_limit_state_t *st, const long long *vals, size_t n, const void *arg);
pt_verdict_t pt_limit_ask(pt_conn_t *c, pt_limit_state_t *st, pt_redis_script_t *s, const long long *args,
                          size_t nargs, pt_limit_decode_fn decode, const void *arg);
/* A fallback happened: counted for /status. */
void pt_limit_fell_back(pt_conn_t *c);
/* Drops what the request still waits for (on_done). */
void pt_limit_done(pt_limit_state_t *st);

/* limit-count with sync_interval: remembers that a key has counts to add
 * to Redis at its next sync (the worker's timer). */
void pt_limit_sync_note(pt_conn_t *c, const pt_limit_common_t *lc, const pt_limit_state_t *st, int64_t count);

/* Does the file use a limit filter anywhere (global, routes, consumers)? */
bool pt_limit_used(const pt_config_t *c);
/* Microseconds on CLOCK_MONOTONIC: what the local leaky buckets run on, so
 * that a step of the wall clock does not move them. */
int64_t pt_limit_mono_us(void);
/* Microseconds on the wall clock, read now (not the loop's cached time,
 * which lags by a loop turn and differs between workers): windows and the
 * buckets kept in Redis, which every node must see alike. */
int64_t pt_limit_wall_us(void);

/* The worker's Redis client, or NULL (no redis: section): made by the
 * worker once its loop exists. */
pt_redis_t *pt_limit_redis(void);
void pt_limit_redis_set(pt_redis_t *r);

#endif
