/* forward-auth: asks an auth service whether a request may pass (Traefik's
 * and APISIX's forward-auth, nginx's auth_request).  The service gets a
 * GET of its URL with the chosen request headers and X-Forwarded-Method,
 * -Uri, -Host, -Proto and -For; a 2xx lets the request through with the
 * chosen upstream_headers of the answer, any other status goes back to
 * the client with its body and the chosen client_headers.  A service that
 * cannot be asked (no connection, a timeout, an answer too large) is a
 * 503, logged: the request never passes unchecked.  The sub-request runs
 * on the worker's loop through the internal client (client.h) while the
 * request waits (PT_SUSPEND); a request that ends meanwhile cancels it. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "portico/auth.h"
#include "portico/client.h"
#include "portico/conf.h"
#include "portico/config.h"
#include "portico/conn.h"
#include "portico/filter.h"
#include "portico/http.h"
#include "portico/log.h"
#include "portico/request.h"
#include "portico/schema.h"
#include "portico/upstream.h"
#include "portico/value.h"
#include "portico/worker.h"

#define MAX_BODY (64 * 1024) /* a denial's body; larger is a failure */
#define MAX_COPIED 16        /* header fields copied from one answer */

typedef struct conf {
    const pt_node_t *node;
    char *uri;
    pt_strlist_t request_headers, upstream_headers, client_headers;
    int64_t timeout;
    pt_uri_t parsed;
    const pt_upstream_conf_t *up;
} conf_t;

static int check(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    conf_t *c = obj;
    static char *dflt[] = {"authorization", "cookie"};
    if (!pt_node_get(n, "request_headers"))
        c->request_headers = (pt_strlist_t){dflt, 2};
    const char *err = pt_value_uri(c->uri, &c->parsed);
    if (err) {
        pt_conf_error_key(cc, n, "uri", "%s, not \"%s\"", err, c->uri);
        return -1;
    }
    return 0;
}

static int link_conf(pt_conf_ctx_t *cc, const pt_config_t *c, void *vconf, const char *scope)
{
    conf_t *conf = vconf;
    conf->up = pt_conf_uri_upstream(c, &conf->parsed);
    if (!conf->up) { /* never: synth.c made one */
        pt_conf_error_key(cc, conf->node, "uri", "no upstream for \"%s\"", conf->uri);
        return -1;
    }
    return 0;
}

static const pt_directive_t keys[] = {
    {"uri", PT_T_STR, offsetof(conf_t, uri), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, PT_F_REQUIRED, "URL",
     "The auth service: http:// or https:// (verified against the system's CAs). A host that is the name of "
     "an upstream goes to that upstream (its targets, pool and tls settings); any other host gets an "
     "upstream of its own, named by scheme, host and port."},
    {"request_headers", PT_T_LIST, offsetof(conf_t, request_headers), NULL, 0, 0, NULL, NULL,
     &pt_schema_str_elem, NULL, NULL, 0, "list of strings",
     "The client's header fields the auth service gets, besides X-Forwarded-Method, X-Forwarded-Uri, "
     "X-Forwarded-Host, X-Forwarded-Proto and X-Forwarded-For. Unset: authorization and cookie; [] sends "
     "none."},
    {"upstream_headers", PT_T_LIST, offsetof(conf_t, upstream_headers), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem,
     NULL, NULL, 0, "list of strings",
     "Header fields of a 2xx answer that the upstream gets (set, replacing the client's)."},
    {"client_headers", PT_T_LIST, offsetof(conf_t, client_headers), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem,
     NULL, NULL, 0, "list of strings",
     "Header fields of any other answer that the client gets with it (Content-Type always)."},
    {"timeout", PT_T_DURATION, offsetof(conf_t, timeout), "3s", 1, 600000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "How long the auth service may take, from connecting to the end of its answer; past it, 503."},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL},
};
static const pt_section_t schema = {
    "forward-auth", sizeof(conf_t), keys, check, NULL,
    "Asks an auth service about each request. Example: forward-auth: { uri: http://127.0.0.1:9001/check, "
    "request_headers: [authorization, cookie], upstream_headers: [x-user-id], client_headers: "
    "[www-authenticate, location], timeout: 2s }."};

/* ---- per request ---- */

typedef struct field {
    pt_str_t name, value;
} field_t;

typedef struct state {
    pt_conn_t *c;
    pt_client_t *cl;
    int phase; /* 0: not asked, 1: asking, 2: answered */
    int status; /* the service's, or PT_CLIENT_FAILED / PT_CLIENT_TIMEOUT */
    char error[160];
    field_t fields[MAX_COPIED];
    size_t nfields;
    pt_str_t body, ctype;
} state_t;

static pt_str_t copy(pt_conn_t *c, pt_str_t s)
{
    char *p = pt_arena_strndup(&c->arena, s.p ? s.p : "", s.n);
    return p ? (pt_str_t){p, s.n} : PT_STR_NULL;
}

/* The answer's fields named in `names`, copied: it is gone after the call. */
static void keep_fields(state_t *st, const pt_h1_resp_t *h, const pt_strlist_t *names)
{
    for (size_t i = 0; i < h->nheaders; i++)
        for (size_t k = 0; k < names->n && st->nfields < MAX_COPIED; k++)
            if (pt_str_caseeq(h->headers[i].name, pt_str_from(names->v[k])))
                st->fields[st->nfields++] = (field_t){copy(st->c, h->headers[i].name), copy(st->c, h->headers[i].value)};
}

static void on_answer(void *arg, const pt_client_resp_t *r)
{
    state_t *st = arg;
    const conf_t *conf = st->c->req->fx->confs[PT_FILTER_FORWARD_AUTH];
    st->cl = NULL;
    st->phase = 2;
    st->status = r->status;
    if (r->error)
        snprintf(st->error, sizeof(st->error), "%s", r->error);
    if (r->head) {
        bool ok = r->status >= 200 && r->status < 300;
        keep_fields(st, r->head, ok ? &conf->upstream_headers : &conf->client_headers);
        const pt_h1_header_t *ct = pt_h1_resp_find(r->head, PT_STR("content-type"));
        if (!ok) {
            st->body = copy(st->c, r->body);
            st->ctype = ct ? copy(st->c, ct->value) : PT_STR_NULL;
        }
    }
    pt_req_resume(st->c);
}

/* The auth request's header lines: the chosen client fields, then the
 * X-Forwarded ones.  NULL when the arena is spent. */
static char *auth_headers(pt_conn_t *c, const pt_h1_req_t *req, const conf_t *conf, size_t *len)
{
    size_t cap = 512 + req->target.n + req->host.n + req->method.n;
    for (size_t i = 0; i < req->nheaders; i++)
        cap += req->headers[i].name.n + req->headers[i].value.n + 4;
    char *b = pt_arena_alloc(&c->arena, cap);
    if (!b)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < req->nheaders; i++)
        for (size_t k = 0; k < conf->request_headers.n; k++)
            if (pt_str_caseeq(req->headers[i].name, pt_str_from(conf->request_headers.v[k])))
                n += (size_t)snprintf(b + n, cap - n, "%.*s: %.*s\r\n", PT_STR_FMT(req->headers[i].name),
                                      PT_STR_FMT(req->headers[i].value));
    pt_str_t ip = pt_conn_peer_ip(c);
    n += (size_t)snprintf(b + n, cap - n,
                          "X-Forwarded-Method: %.*s\r\nX-Forwarded-Uri: %.*s\r\nX-Forwarded-Host: %.*s\r\n"
                          "X-Forwarded-Proto: %s\r\nX-Forwarded-For: %.*s\r\n",
                          PT_STR_FMT(req->method), PT_STR_FMT(req->target), PT_STR_FMT(req->host),
                          c->ssl ? "https" : "http", PT_STR_FMT(ip));
    *len = n;
    return b;
}

static pt_verdict_t ask(pt_conn_t *c, const pt_h1_req_t *req, const conf_t *conf, state_t *st)
{
    pt_upstream_t *u = pt_worker_upstream(c->w, conf->up);
    pt_pick_ctx_t ctx = {PT_STR_NULL, pt_worker_now_us(c->w)};
    size_t idx = pt_balancer_pick(u, NULL, &ctx);
    size_t hlen = 0;
    char *headers = auth_headers(c, req, conf, &hlen);
    const char *pq = conf->parsed.path_query;
    char *target = pt_arena_printf(&c->arena, "%s%s", pq[0] == '?' ? "/" : "", pq);
    if (!headers || !target)
        return PT_FAIL;
    char host[300];
    bool dflt = conf->parsed.port == (conf->parsed.https ? 443 : 80);
    snprintf(host, sizeof(host), dflt ? "%s" : "%s:%d", conf->parsed.host, conf->parsed.port);
    pt_client_req_t rq = {.method = "GET",
                          .target = pt_str_from(target),
                          .host = pt_str_from(host),
                          .headers = {headers, hlen},
                          .timeout_ms = conf->timeout,
                          .max_body = MAX_BODY};
    st->c = c;
    st->phase = 1;
    st->cl = idx == PT_PICK_NONE ? NULL : pt_client_start(c->w, u, idx, &rq, on_answer, st);
    if (!st->cl) {
        st->phase = 2;
        st->status = PT_CLIENT_FAILED;
        snprintf(st->error, sizeof(st->error), "%s", idx == PT_PICK_NONE ? "no target is up" : "cannot connect");
        return PT_NEXT;
    }
    return PT_SUSPEND;
}

static pt_verdict_t deny(pt_conn_t *c, const pt_h1_req_t *req, state_t *st)
{
    char extra[4096];
    size_t off = 0;
    for (size_t i = 0; i < st->nfields && off < sizeof(extra); i++)
        if (!pt_str_caseeq(st->fields[i].name, PT_STR("content-type")) &&
            !pt_str_caseeq(st->fields[i].name, PT_STR("content-length")))
            off += (size_t)snprintf(extra + off, sizeof(extra) - off, "%.*s: %.*s\r\n",
                                    PT_STR_FMT(st->fields[i].name), PT_STR_FMT(st->fields[i].value));
    if (off >= sizeof(extra))
        off = 0; /* none rather than a cut one */
    extra[off] = '\0';
    pt_auth_count(c, PT_AUTH_DENIED);
    const char *ctype = st->ctype.p ? st->ctype.p : "text/plain";
    pt_req_respond(c, st->status, ctype, st->body.p ? st->body.p : "", st->body.n, off ? extra : NULL,
                   req->method_bit == PT_M_HEAD);
    return PT_RESPOND;
}

static pt_verdict_t on_request(pt_conn_t *c, const pt_h1_req_t *req, const void *vconf, pt_fx_t *fx, void *vst)
{
    const conf_t *conf = vconf;
    state_t *st = vst;
    if (pt_auth_decided(fx))
        return PT_NEXT;
    if (st->phase == 0) {
        pt_verdict_t v = ask(c, req, conf, st);
        if (v != PT_NEXT)
            return v;
    }
    if (st->phase == 1)
        return PT_SUSPEND; /* resumed before the answer: never */
    if (st->status < 200 || st->status > 599) {
        pt_log_error("route \"%s\": forward-auth %s: %s (%s); answering 503, req=%s", c->req->route->name,
                     conf->uri, st->status == PT_CLIENT_TIMEOUT ? "timed out" : "failed",
                     st->error[0] ? st->error : "no answer", c->req->reqid);
        return pt_auth_refuse(c, req, 503, PT_AUTH_UNAVAILABLE, "The auth service is unavailable", NULL);
    }
    if (st->status >= 300)
        return deny(c, req, st);
    pt_verdict_t v = pt_auth_accept(c, fx, NULL, NULL, NULL);
    /* only the service says these: the client's copies go, whether or not
     * the answer has them */
    for (size_t i = 0; v == PT_NEXT && i < conf->upstream_headers.n; i++)
        if (!pt_fx_add(c, fx, false, PT_HDR_REMOVE, pt_str_from(conf->upstream_headers.v[i]), PT_STR_NULL))
            return PT_FAIL;
    for (size_t i = 0; v == PT_NEXT && i < st->nfields; i++) {
        if (!pt_fx_add(c, fx, false, PT_HDR_SET, st->fields[i].name, st->fields[i].value))
            return PT_FAIL;
    }
    return v;
}

static void on_done(pt_conn_t *c, const void *conf, pt_fx_t *fx, void *vst)
{
    state_t *st = vst;
    if (st && st->cl) {
        pt_client_cancel(st->cl); /* the request is over: the answer has no one to go to */
        st->cl = NULL;
    }
}

const pt_filter_t pt_filter_forward_auth = {.name = "forward-auth",
                                            .schema = &schema,
                                            .state_size = sizeof(state_t),
                                            .on_request = on_request,
                                            .on_done = on_done,
                                            .link = link_conf};
