/* grpc-transcode: REST/JSON clients reach the methods of a gRPC service.
 * At load, the descriptor set is read, each named service's methods are
 * bound by their google.api.http rules (or one method is named with
 * `method:`), and every rule is checked against the messages.  For each
 * request, the binding whose template fits the path and whose HTTP method
 * is the request's is chosen (the one with the most literal segments when
 * several fit); the gRPC bridge (grpc.c, with transcode.c) does the rest.
 * gRPC and gRPC-Web clients on the route pass as they are. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/conf.h"
#include "portico/config.h"
#include "portico/conn.h"
#include "portico/filter.h"
#include "portico/request.h"
#include "portico/schema.h"
#include "portico/transcode.h"

#define MAX_DESCRIPTOR (64 << 20)
#define MAX_BINDINGS 16 /* per method */

typedef struct conf {
    const pt_node_t *node;
    char *descriptor;
    pt_strlist_t services;
    char *method;
    bool enums_as_ints, emit_defaults, proto_names;
    /* made at load */
    pt_http_binding_t *b;
    size_t nb;
    pt_pbjson_opts_t opts;
} conf_t;

static void free_pool(void *p)
{
    pt_pb_pool_free(p);
}

static pt_pb_pool_t *load_pool(pt_conf_ctx_t *cc, const pt_node_t *n, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        pt_conf_error_key(cc, n, "descriptor", "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(MAX_DESCRIPTOR);
    size_t len = buf ? fread(buf, 1, MAX_DESCRIPTOR, f) : 0;
    bool more = buf && fgetc(f) != EOF, bad = ferror(f) != 0;
    fclose(f);
    if (!buf || more || bad) {
        pt_conf_error_key(cc, n, "descriptor", "%s: %s", path,
                          !buf ? "out of memory" : more ? "larger than 64 MiB" : "cannot be read");
        free(buf);
        return NULL;
    }
    char err[512];
    pt_pb_pool_t *pool = pt_pb_pool_load(buf, len, err, sizeof(err));
    free(buf);
    if (!pool) {
        pt_conf_error_key(cc, n, "descriptor", "%s: %s", path, err);
        return NULL;
    }
    if (pt_config_own(cc, pool, free_pool) < 0)
        return NULL;
    return pool;
}

static bool grow(pt_conf_ctx_t *cc, conf_t *c, size_t *cap, size_t more)
{
    if (c->nb + more <= *cap)
        return true;
    size_t nc = *cap ? *cap * 2 : 16;
    while (nc < c->nb + more)
        nc *= 2;
    pt_http_binding_t *b = pt_arena_alloc(cc->arena, nc * sizeof(*b));
    if (!b)
        return false;
    if (c->nb)
        memcpy(b, c->b, c->nb * sizeof(*b));
    c->b = b;
    *cap = nc;
    return true;
}

static int bind_service(pt_conf_ctx_t *cc, const pt_node_t *n, conf_t *c, const pt_pb_service_t *s, size_t *cap)
{
    for (size_t i = 0; i < s->n; i++) {
        const pt_pb_method_t *m = &s->m[i];
        if (!m->http) {
            if (c->method)
                continue; /* the route names the method it calls */
            pt_conf_error_key(cc, n, "services", "method %s has no google.api.http rule: add one, or name the "
                              "method with method:", m->path + 1);
            return -1;
        }
        if (m->client_streaming) {
            pt_conf_error_key(cc, n, "services", "method %s is %s streaming and has an HTTP rule: transcoding "
                              "takes unary and server-streaming methods only", m->path + 1,
                              m->server_streaming ? "bidirectional" : "client");
            return -1;
        }
        char err[512];
        if (!grow(cc, c, cap, MAX_BINDINGS))
            return -1;
        int k = pt_http_rule_parse(cc->arena, m, m->http, m->http_len, c->b + c->nb, MAX_BINDINGS, err, sizeof(err));
        if (k < 0) {
            pt_conf_error_key(cc, n, "services", "%s", err);
            return -1;
        }
        c->nb += (size_t)k;
    }
    return 0;
}

static int check(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    conf_t *c = obj;
    c->opts = (pt_pbjson_opts_t){NULL, c->enums_as_ints, c->emit_defaults, c->proto_names};
    if (!c->services.n && !c->method) {
        pt_conf_error(cc, n, "grpc-transcode needs services (methods with google.api.http rules) or a method");
        return -1;
    }
    pt_pb_pool_t *pool = load_pool(cc, n, c->descriptor);
    if (!pool)
        return -1;
    c->opts.pool = pool;
    size_t cap = 0;
    for (size_t i = 0; i < c->services.n; i++) {
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->services.v[j], c->services.v[i]) == 0) { /* its rules would be bound twice */
                pt_conf_error_key(cc, n, "services", "service %s is listed twice", c->services.v[i]);
                return -1;
            }
        const pt_pb_service_t *s = pt_pb_pool_service(pool, c->services.v[i]);
        if (!s) {
            pt_conf_error_key(cc, n, "services", "service %s is not in %s (full names: package.Service)",
                              c->services.v[i], c->descriptor);
            return -1;
        }
        if (bind_service(cc, n, c, s, &cap) < 0)
            return -1;
    }
    if (c->method) {
        const char *slash = strchr(c->method, '/');
        char svc[256];
        const pt_pb_service_t *s = NULL;
        if (slash && (size_t)(slash - c->method) < sizeof(svc)) {
            memcpy(svc, c->method, (size_t)(slash - c->method));
            svc[slash - c->method] = '\0';
            s = pt_pb_pool_service(pool, svc);
        }
        const pt_pb_method_t *m = NULL;
        for (size_t i = 0; s && i < s->n; i++)
            if (strcmp(s->m[i].name, slash + 1) == 0)
                m = &s->m[i];
        if (!m) {
            pt_conf_error_key(cc, n, "method", "%s is not a method in %s (package.Service/Method)", c->method,
                              c->descriptor);
            return -1;
        }
        if (m->client_streaming) {
            pt_conf_error_key(cc, n, "method", "%s is %s streaming: transcoding takes unary and server-streaming "
                              "methods only", c->method, m->server_streaming ? "bidirectional" : "client");
            return -1;
        }
        char err[512];
        if (!grow(cc, c, &cap, 1) ||
            pt_http_binding_make(cc->arena, m, NULL, "/**", "*", NULL, &c->b[c->nb], err, sizeof(err)) < 0) {
            pt_conf_error_key(cc, n, "method", "%s", err);
            return -1;
        }
        c->b[c->nb++].any_query = true;
    }
    return 0;
}

static const pt_directive_t keys[] = {
    {"descriptor", PT_T_STR, offsetof(conf_t, descriptor), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, PT_F_REQUIRED,
     "path",
     "A binary FileDescriptorSet: protoc --include_imports --descriptor_set_out=FILE. Read at load and at each "
     "reload; a file that cannot be read or is not a descriptor set, or whose types are not all in it, is an "
     "error."},
    {"services", PT_T_LIST, offsetof(conf_t, services), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem, NULL, NULL, 0,
     "list of strings",
     "Full service names (library.v1.Library). Each method is reached by its google.api.http rule; a method "
     "without one is an error unless method is given, and a client-streaming or bidirectional method with one is "
     "an error."},
    {"method", PT_T_STR, offsetof(conf_t, method), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, "string",
     "One method (library.v1.Library/GetBook) for the requests no rule matches, whatever their HTTP method and "
     "path: its request message is the JSON body (none: an empty message) and the query. For services without "
     "annotations."},
    {"print_enums_as_ints", PT_T_BOOL, offsetof(conf_t, enums_as_ints), "false", 0, 0, NULL, NULL, NULL, NULL, NULL,
     0, NULL, "Write enums in responses as numbers, not names (names and numbers are read either way)."},
    {"emit_defaults", PT_T_BOOL, offsetof(conf_t, emit_defaults), "false", 0, 0, NULL, NULL, NULL, NULL, NULL, 0,
     NULL,
     "Write fields at their default values (0, \"\", false, [], {}) in responses; false leaves them out, as the "
     "proto3 JSON mapping does. Fields that track presence (messages, oneofs, optional) are written when set."},
    {"use_proto_names", PT_T_BOOL, offsetof(conf_t, proto_names), "false", 0, 0, NULL, NULL, NULL, NULL, NULL, 0,
     NULL, "Name fields in responses as the .proto does (page_size), not in lowerCamelCase (pageSize). Requests "
     "may use either."},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL},
};
static const pt_section_t schema = {
    "grpc-transcode", sizeof(conf_t), keys, check, NULL,
    "REST/JSON clients call the methods of the route's gRPC upstream (scheme grpc or grpcs; anything else is an "
    "error at load). A request is matched to a method by its google.api.http rule: the HTTP method, and the path "
    "template (literals, * for one segment, ** for the rest, {field} and {field=a/*/b} variables, a :verb). Where "
    "several rules fit, the one with the most literal segments wins. The request message is built from the body "
    "(body: \"*\" for the whole message, a field's name for that field, none for no body: a body then is refused), "
    "the path's variables, and the query (a=1&b.c=x&tags=a&tags=b: any field not bound by the path or the body, "
    "by its JSON or proto name; a parameter that names no field is refused). JSON follows the proto3 mapping: "
    "64-bit integers as strings (numbers accepted up to 2^63-1), enums by name (numbers accepted), bytes in "
    "base64, Timestamp, Duration, FieldMask, Struct, Value, ListValue, the wrappers, Empty and Any (its type in "
    "the set). Invalid JSON, a field that is not in the message, a value of the wrong type, or a body larger than "
    "the route's max_body_size (1 MiB when it is 0) gets 400 with {\"code\": 3, \"message\": \"...\"} naming the "
    "field, and nothing reaches the upstream. A path that no rule fits gets 404; one that fits another HTTP method "
    "405. The answer: a unary method's message as a JSON object, with the upstream's metadata and trailers as "
    "headers, and grpc-status the code of the answer (13 when the upstream's message could not be read, whatever "
    "the upstream's trailer said; grpc-message and grpc-status-details-bin only with the upstream's own code); a "
    "server-streaming method's messages as a JSON array, each element flushed as it comes; a gRPC "
    "status other than OK maps to an HTTP status (OK 200, CANCELLED 499, UNKNOWN 500, INVALID_ARGUMENT 400, "
    "DEADLINE_EXCEEDED 504, NOT_FOUND 404, ALREADY_EXISTS 409, PERMISSION_DENIED 403, RESOURCE_EXHAUSTED 429, "
    "FAILED_PRECONDITION 400, ABORTED 409, OUT_OF_RANGE 400, UNIMPLEMENTED 501, INTERNAL 500, UNAVAILABLE 503, "
    "DATA_LOSS 500, UNAUTHENTICATED 401, others 500) with {\"code\", \"message\", \"details\"}, details decoded "
    "from grpc-status-details-bin (types not in the set as {\"@type\", \"value\": base64}). A stream that fails "
    "after its first message is left unclosed (no ]), with grpc-status and grpc-message as trailers. Clients of "
    "HTTP/1.1 and HTTP/2 may call any method; HTTP/1.0 clients those whose answer is not streamed (the connection "
    "closes after the answer), and get 505 for the others. gRPC and "
    "gRPC-Web clients (Content-Type application/grpc...) pass as they are, and so does every request of a route "
    "that is not to a gRPC upstream when the filter is set in global_filters. A field may be named once, by its "
    "JSON name or its proto name, not both; messages nest at most 64 deep (Value, Struct and ListValue count as "
    "theirs do on the wire)."};

typedef struct state {
    pt_tc_t tc;
    bool matched;
} state_t;

static pt_verdict_t respond(pt_conn_t *c, int status, int code, const char *what, const pt_h1_req_t *req,
                            const char *extra)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "no method of this route %s %.*s %.*s", what, PT_STR_FMT(req->method),
             PT_STR_FMT(req->path));
    pt_sbuf_t b = {0};
    char num[16];
    snprintf(num, sizeof(num), "%d", code);
    pt_sbuf_puts(&b, "{\"code\":");
    pt_sbuf_puts(&b, num);
    pt_sbuf_puts(&b, ",\"message\":");
    pt_json_put_str(&b, msg, strlen(msg));
    pt_sbuf_puts(&b, ",\"details\":[]}");
    if (b.failed) {
        free(b.p);
        return PT_FAIL;
    }
    char fields[224]; /* grpc-status as every transcoded answer has it, and Allow */
    snprintf(fields, sizeof(fields), "grpc-status: %d\r\n%s", code, extra ? extra : "");
    pt_req_respond(c, status, "application/json", b.p, b.n, fields, false);
    free(b.p);
    return PT_RESPOND;
}

static pt_verdict_t on_request(pt_conn_t *c, const pt_h1_req_t *req, const void *vconf, pt_fx_t *fx, void *vst)
{
    const conf_t *conf = vconf;
    state_t *st = vst;
    const pt_route_conf_t *route = c->req ? c->req->route : NULL;
    if (!route || !route->up || (route->up->scheme != PT_SCHEME_GRPC && route->up->scheme != PT_SCHEME_GRPCS))
        return PT_NEXT; /* a global setting, on a route that is not gRPC's */
    const pt_h1_header_t *ct = pt_h1_find(req, PT_STR("content-type"));
    if (ct && ct->value.n >= 16 && strncasecmp(ct->value.p, "application/grpc", 16) == 0)
        return PT_NEXT; /* a gRPC or gRPC-Web client */
    const pt_http_binding_t *best = NULL;
    pt_str_t vals[16], best_vals[16];
    char allow[128] = "";
    size_t an = 0;
    for (size_t i = 0; i < conf->nb; i++) {
        const pt_http_binding_t *b = &conf->b[i];
        if (best && b->literals <= best->literals)
            continue;
        if (!pt_http_binding_match(b, req->path, &c->arena, vals))
            continue;
        if (b->http_method && !(strlen(b->http_method) == req->method.n &&
                                memcmp(b->http_method, req->method.p, req->method.n) == 0)) {
            size_t ml = strlen(b->http_method);
            if (!strstr(allow, b->http_method) && an + ml + 3 < sizeof(allow))
                an += (size_t)snprintf(allow + an, sizeof(allow) - an, "%s%s", an ? ", " : "", b->http_method);
            continue;
        }
        best = b;
        memcpy(best_vals, vals, b->nvars * sizeof(*vals));
    }
    if (!best && an) {
        char extra[160];
        snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
        return respond(c, 405, 12, "takes", req, extra);
    }
    if (!best)
        return respond(c, 404, 5, "matches", req, NULL);
    st->tc.b = best;
    st->tc.opts = &conf->opts;
    st->tc.vals = best->nvars ? pt_arena_alloc(&c->arena, best->nvars * sizeof(pt_str_t)) : NULL;
    if (best->nvars && !st->tc.vals)
        return PT_FAIL;
    if (best->nvars)
        memcpy(st->tc.vals, best_vals, best->nvars * sizeof(pt_str_t));
    if (req->query.n) {
        char *q = pt_arena_strndup(&c->arena, req->query.p, req->query.n);
        if (!q)
            return PT_FAIL;
        st->tc.query = (pt_str_t){q, req->query.n};
    }
    st->matched = true;
    return PT_NEXT;
}

static int link_conf(pt_conf_ctx_t *cc, const pt_config_t *c, void *vconf, const char *scope)
{
    return pt_filter_link_grpc(cc, c, ((conf_t *)vconf)->node, scope, "grpc-transcode");
}

const pt_tc_t *pt_transcode_of(const pt_fx_t *fx)
{
    const state_t *st = fx ? fx->state[PT_FILTER_GRPC_TRANSCODE] : NULL;
    return st && st->matched ? &st->tc : NULL;
}

const pt_filter_t pt_filter_grpc_transcode = {.name = "grpc-transcode", .schema = &schema,
                                              .state_size = sizeof(state_t), .on_request = on_request,
                                              .link = link_conf};
