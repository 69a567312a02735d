/* The filter pipeline: a fixed, ordered array of built-in filters.  Each
 * filter has a schema section (its YAML config compiled at load into an
 * immutable struct, with file:line:col errors) and optional hooks:
 * on_request runs in array order after routing (and may answer, or
 * suspend for I/O and resume), on_body for each piece of request body,
 * on_done in reverse order when the request is over.  Response headers are
 * edits collected in pt_fx_t and applied by whoever writes the head.  A route's `filters:` override
 * `global_filters:` by name, and `false` turns one off. */
#ifndef PORTICO_FILTER_H
#define PORTICO_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "portico/config-t.h"
#include "portico/h1_parser.h"
#include "portico/schema-t.h"

typedef struct pt_conn pt_conn_t;

/* NEXT: run the next filter.  RESPOND: the filter queued the answer (403,
 * a redirect, a preflight); the request goes no further.  SUSPEND: the
 * filter waits for I/O and calls pt_filters_resume (no filter here needs it
 * yet).  FAIL: answer 500. */
typedef enum { PT_NEXT, PT_RESPOND, PT_SUSPEND, PT_FAIL } pt_verdict_t;

/* The order of the pipeline: this enum and the array in filter.c. */
enum pt_filter_id {
    PT_FILTER_IP_RESTRICTION,
    PT_FILTER_CIRCUIT_BREAKER,
    PT_FILTER_FAULT_INJECTION,
    PT_FILTER_REQUEST_SIZE,
    PT_FILTER_CORS, /* before auth: a preflight carries no credentials */
    PT_FILTER_TLS_AUTH, /* the auth filters: PT_FILTER_AUTH_FIRST..LAST (auth.h) */
    PT_FILTER_KEY_AUTH,
    PT_FILTER_BASIC_AUTH,
    PT_FILTER_JWT_AUTH,
    PT_FILTER_HMAC_AUTH,
    PT_FILTER_FORWARD_AUTH, /* the last auth filter: it always finds something to ask about */
    PT_FILTER_ACL,
    PT_FILTER_LIMIT_CONN, /* the limits, after auth (a key may be the consumer), as APISIX orders them */
    PT_FILTER_LIMIT_COUNT,
    PT_FILTER_LIMIT_REQ,
    PT_FILTER_REDIRECT,
    PT_FILTER_PATH_REWRITE,
    PT_FILTER_REQUEST_HEADERS,
    PT_FILTER_RESPONSE_HEADERS,
    PT_FILTER_GRPC_TRANSCODE, /* after the header edits, as grpc-web */
    PT_FILTER_GRPC_WEB, /* after the header edits: the upstream's Content-Type is its own */
    PT_FILTER_CACHE, /* last: a hit is answered once every other filter has let the request through */
    PT_FILTER__COUNT
};
#define PT_FILTER_AUTH_FIRST PT_FILTER_TLS_AUTH
#define PT_FILTER_AUTH_LAST PT_FILTER_FORWARD_AUTH

/* A header to write: the response side collects these from filters. */
typedef struct pt_hdr_edit {
    int op; /* PT_HDR_SET, PT_HDR_ADD, PT_HDR_REMOVE */
    pt_str_t name, value;
} pt_hdr_edit_t;
enum { PT_HDR_SET, PT_HDR_ADD, PT_HDR_REMOVE };

#define PT_FX_MAX_EDITS 32

/* What the auth filters decided for a request (auth.h). */
typedef struct pt_auth {
    bool decided;                               /* an auth filter found its kind of credential */
    const struct pt_consumer_conf *consumer;    /* NULL: none (anonymous, or not decided) */
    const struct pt_credential_conf *cred;
} pt_auth_t;

/* A filter that sees the upstream's response as the proxy reads it (the
 * cache), set in pt_fx_t by its request hook.  head: the response head,
 * once, before the response hooks; true when the tap answered the client
 * itself (a revalidated or stale stored response): the proxy then drops
 * the upstream's response.  body: each piece of the body as the client
 * gets it (decoded from chunks).  end: the whole body was read.  failed:
 * the proxy is about to answer `status` for an upstream that failed (502,
 * 503, 504); true when the tap answered instead (stale-if-error). */
typedef struct pt_resp_tap {
    bool (*head)(pt_conn_t *c, struct pt_resp_tap *t, const pt_h1_resp_t *r, const char *base);
    void (*body)(struct pt_resp_tap *t, const char *p, size_t n);
    void (*end)(pt_conn_t *c, struct pt_resp_tap *t);
    bool (*failed)(pt_conn_t *c, struct pt_resp_tap *t, int status);
    bool storing; /* body and end are wanted */
} pt_resp_tap_t;

/* What the filters decided for one request, read by the proxy and the
 * response writer. */
typedef struct pt_fx {
    const void *const *confs; /* the route's effective filter confs */
    size_t nreq, nresp;
    pt_str_t path; /* a rewritten path for the upstream, or NULL.p */
    void *state[PT_FILTER__COUNT]; /* per filter, zeroed, from the request arena */
    int next;         /* the next filter to run: where a suspended pipeline resumes */
    bool done;        /* on_done hooks have run */
    bool responded;   /* on_response hooks have run */
    bool resp_started, can_wait; /* on_response hooks under way; a hook may return PT_SUSPEND now */
    int next_resp, next_body;    /* where a suspended response or body resumes */
    pt_str_t host, req_path; /* copies, for templates expanded after the head is gone */
    int reject;       /* the status an on_body hook asks for with PT_RESPOND */
    pt_str_t piece;   /* during on_body: the n bytes of body the hook is called for (decoded) */
    pt_str_t query;   /* the query sent upstream when query_set (hide_credentials); empty: none */
    bool query_set;
    pt_auth_t auth;   /* what the auth filters decided (auth.h) */
    pt_resp_tap_t *tap; /* the cache's view of the upstream's response, or NULL */
    bool detached;      /* the client has its answer (a stale response): the proxy fetches for the tap alone */
    char limit_refused; /* the kind of the limit filter that refused the request ('r': limit-req), or 0 */
    /* in the request arena, grown by pt_fx_add (at most PT_FX_MAX_EDITS
     * each): a filtered request starts small enough for one arena chunk */
    pt_hdr_edit_t *req, *resp;
    size_t capreq, capresp;
} pt_fx_t;

/* A filter; every hook is optional.  st is its per-request state
 * (state_size bytes, zeroed, freed with the request). */
typedef struct pt_filter {
    const char *name;
    const pt_section_t *schema;
    size_t state_size;
    /* after routing, in pipeline order; SUSPEND means "I will call
     * pt_conn_filters_resume(c)", and then this hook runs again (its state
     * tells it that it already waited) before the pipeline goes on */
    pt_verdict_t (*on_request)(pt_conn_t *c, const pt_h1_req_t *req, const void *conf, pt_fx_t *fx, void *st);
    /* the response status is known and its head about to be written:
     * add to fx->resp (reverse pipeline order).  PT_SUSPEND only when
     * fx->can_wait (an upstream's response: the proxy holds its head until
     * pt_req_resume, and then this hook runs again); else PT_NEXT */
    pt_verdict_t (*on_response)(pt_conn_t *c, const void *conf, pt_fx_t *fx, void *st, int status);
    /* each piece of request body before it goes upstream (the n bytes
     * are fx->piece, decoded from chunks; last when it is the end; a
     * chunked body ends with a call of n = 0); PT_RESPOND with fx->reject set stops the request;
     * PT_SUSPEND holds the body until pt_req_resume, and then this hook runs
     * again on the same bytes (maybe more) */
    pt_verdict_t (*on_body)(pt_conn_t *c, const void *conf, pt_fx_t *fx, void *st, size_t n, bool last);
    /* when the request is over, however it ended: release what st holds */
    void (*on_done)(pt_conn_t *c, const void *conf, pt_fx_t *fx, void *st);
    /* auth filters: the WWW-Authenticate value of a 401 into buf (0: none);
     * invalid: a credential of this kind was presented and failed */
    size_t (*challenge)(const void *conf, bool invalid, char *buf, size_t size);
    /* after the whole file is loaded: what a conf refers to elsewhere in
     * it (an upstream); scope says where the conf is written ("global",
     * "route:NAME", "consumer:NAME", in the configuration's arena); 0, or
     * -1 after an error */
    int (*link)(pt_conf_ctx_t *cc, const pt_config_t *c, void *conf, const char *scope);
} pt_filter_t;

/* A link hook's check that the route (scope "route:NAME") goes to a gRPC
 * upstream: 0, or -1 after an error naming filter. */
int pt_filter_link_grpc(pt_conf_ctx_t *cc, const pt_config_t *c, const pt_node_t *node, const char *scope,
                        const char *filter);

/* The circuit of a route with a circuit-breaker: 0 closed, 1 open, 2
 * half-open; -1 when it has none (for the metrics). */
int pt_circuit_breaker_state(const char *route);
extern const pt_filter_t *const pt_filters[PT_FILTER__COUNT];

/* The `filters:` setter for the schema (routes, global_filters, consumers):
 * a map of filter name to its config, or false. */
int pt_filters_set(pt_conf_ctx_t *cc, const pt_node_t *n, void *field);
void pt_filters_print(FILE *f, const void *field, const pt_list_t *prov);
/* After load: each route's effective confs (route over global). */
int pt_filters_resolve(pt_conf_ctx_t *cc, pt_config_t *c);

/* The conf of filter `id` for a request from `consumer` (may be NULL) on
 * route r: the consumer's setting, else the route's, else the global one;
 * NULL when off. */
const void *pt_filters_conf_for(const pt_config_t *c, const pt_route_conf_t *r, const pt_consumer_conf_t *consumer,
                                int id);
/* Runs the request hooks of the route's filters.  On PT_RESPOND the answer
 * is queued on c. */
pt_verdict_t pt_filters_request(pt_conn_t *c, const pt_h1_req_t *req, pt_fx_t *fx);
/* Runs the response hooks (reverse order) for a response of `status`,
 * once per request.  can_wait: a hook may suspend (the proxy, for an
 * upstream's head); then PT_SUSPEND, and the call is made again after
 * pt_req_resume to go on from that hook.  Else PT_NEXT. */
pt_verdict_t pt_filters_response(pt_conn_t *c, pt_fx_t *fx, int status, bool can_wait);
/* Runs the body hooks over n more bytes of request body, before they go
 * upstream; PT_SUSPEND holds them (called again after pt_req_resume). */
pt_verdict_t pt_filters_body(pt_conn_t *c, pt_fx_t *fx, const char *p, size_t n, bool last);
/* Runs the done hooks, once, in reverse order. */
void pt_filters_done(pt_conn_t *c, pt_fx_t *fx);

/* Appends an edit to the request side (resp false) or the response side.
 * false when PT_FX_MAX_EDITS are there already or the arena is spent. */
bool pt_fx_add(pt_conn_t *c, pt_fx_t *fx, bool resp, int op, pt_str_t name, pt_str_t value);
/* Does an edit list remove or replace the field `name`? */
bool pt_fx_overrides(const pt_hdr_edit_t *v, size_t n, pt_str_t name);
/* At most how many bytes the request edits and a rewritten path add to
 * the head sent upstream (0 for NULL): its buffer is sized with it. */
size_t pt_fx_request_bytes(const pt_fx_t *fx);

/* In the master, before forking: the shared state of the filters that keep
 * some (the circuit breakers, by route name).  0, or -1 with errno. */
int pt_filters_prepare(const pt_config_t *c);

/* ---- templates: ${route} ${param.NAME} ${header.NAME} ${query.NAME} ${client_ip} ${request_id} ${host}
 * ${path} ${consumer} ${tls_*} ---- */

typedef struct pt_tpl pt_tpl_t;
/* Where an expansion goes, which decides the bytes its values may have: a
 * header field value (no control character but HTAB), or a path in the
 * request line (visible ASCII only, no '#'). */
typedef enum { PT_TPL_FIELD, PT_TPL_PATH } pt_tpl_use_t;
/* Compiles a template at load; NULL after an error at node n (also for a
 * literal part with a byte that `use` does not allow). */
pt_tpl_t *pt_tpl_compile(pt_conf_ctx_t *cc, const pt_node_t *n, const char *text, pt_tpl_use_t use);
/* Expands into the connection's request arena (*out, NUL-terminated); req
 * may be NULL once the head is gone (host and path then come from the
 * copies in c->fx).  Returns 0; PT_ENOMEM when the arena is spent; or
 * PT_EINVAL when a variable's value has a byte its use does not allow (a
 * CR or LF from a client certificate, say): nothing is expanded then, and
 * the first such refusal of each worker is logged. */
int pt_tpl_expand(const pt_tpl_t *t, pt_conn_t *c, const pt_h1_req_t *req, pt_str_t *out);
/* The same; *missing tells whether a variable expanded to nothing. */
int pt_tpl_expand_all(const pt_tpl_t *t, pt_conn_t *c, const pt_h1_req_t *req, pt_str_t *out, bool *missing);
/* Has the template any variable (or is it literal text)? */
bool pt_tpl_has_vars(const pt_tpl_t *t);
/* ${client_ip}: from a peer in trusted_proxies, the right-most address of
 * X-Forwarded-For that is not a trusted proxy itself; else the peer's.
 * req NULL (the head gone): the peer's. */
pt_str_t pt_client_ip(pt_conn_t *c, const pt_h1_req_t *req);
/* What a request hook answers when an expansion failed with rc: 400 for
 * PT_EINVAL (the value came from the client), else PT_FAIL. */
pt_verdict_t pt_tpl_refuse(pt_conn_t *c, const pt_h1_req_t *req, int rc);

#endif
