/* THE pipeline: the order is this array and nothing else.  Request hooks
 * run in array order, response hooks in reverse. */
#include "config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/auth.h"
#include "portico/cidr.h"
#include "portico/conf.h"
#include "portico/conn.h"
#include "portico/err-t.h"
#include "portico/filter.h"
#include "portico/habits.h"
#include "portico/http.h"
#include "portico/log.h"
#include "portico/path.h"
#include "portico/request.h"
#include "portico/schema.h"
#include "portico/tls.h"

extern const pt_filter_t pt_filter_ip_restriction, pt_filter_circuit_breaker, pt_filter_fault_injection,
    pt_filter_request_size, pt_filter_cors, pt_filter_tls_auth, pt_filter_key_auth, pt_filter_basic_auth, pt_filter_jwt_auth, pt_filter_hmac_auth, pt_filter_forward_auth,
    pt_filter_acl, pt_filter_limit_conn, pt_filter_limit_count, pt_filter_limit_req,
    pt_filter_redirect, pt_filter_path_rewrite, pt_filter_request_headers, pt_filter_response_headers, pt_filter_grpc_transcode, pt_filter_grpc_web, pt_filter_cache;

const pt_filter_t *const pt_filters[PT_FILTER__COUNT] = {
    [PT_FILTER_IP_RESTRICTION] = &pt_filter_ip_restriction,
    [PT_FILTER_CIRCUIT_BREAKER] = &pt_filter_circuit_breaker,
    [PT_FILTER_FAULT_INJECTION] = &pt_filter_fault_injection,
    [PT_FILTER_REQUEST_SIZE] = &pt_filter_request_size,
    [PT_FILTER_CORS] = &pt_filter_cors,
    [PT_FILTER_TLS_AUTH] = &pt_filter_tls_auth,
    [PT_FILTER_KEY_AUTH] = &pt_filter_key_auth,
    [PT_FILTER_BASIC_AUTH] = &pt_filter_basic_auth,
    [PT_FILTER_JWT_AUTH] = &pt_filter_jwt_auth,
    [PT_FILTER_HMAC_AUTH] = &pt_filter_hmac_auth,
    [PT_FILTER_FORWARD_AUTH] = &pt_filter_forward_auth,
    [PT_FILTER_ACL] = &pt_filter_acl,
    [PT_FILTER_LIMIT_CONN] = &pt_filter_limit_conn,
    [PT_FILTER_LIMIT_COUNT] = &pt_filter_limit_count,
    [PT_FILTER_LIMIT_REQ] = &pt_filter_limit_req,
    [PT_FILTER_REDIRECT] = &pt_filter_redirect,
    [PT_FILTER_PATH_REWRITE] = &pt_filter_path_rewrite,
    [PT_FILTER_REQUEST_HEADERS] = &pt_filter_request_headers,
    [PT_FILTER_RESPONSE_HEADERS] = &pt_filter_response_headers,
    [PT_FILTER_GRPC_TRANSCODE] = &pt_filter_grpc_transcode,
    [PT_FILTER_GRPC_WEB] = &pt_filter_grpc_web,
    [PT_FILTER_CACHE] = &pt_filter_cache,
};

const char pt_filter_off_marker = 0;

_Static_assert(PT_FILTER__COUNT <= PT_FILTER_SLOTS, "PT_FILTER_SLOTS is too small");

/* An unknown filter: Kong's or APISIX's name for one of ours, or a near
 * miss, and always the list of those that exist, since a user coming
 * from a plugin ecosystem cannot guess which ones Portico has. */
static void unknown_filter(pt_conf_ctx_t *cc, const pt_node_t *k, const char *best)
{
    char known[512], hint[512], mean[128] = "";
    size_t off = 0;
    for (int f = 0; f < PT_FILTER__COUNT && off < sizeof(known); f++)
        off += (size_t)snprintf(known + off, sizeof(known) - off, "%s%s", f ? ", " : "", pt_filters[f]->name);
    if (!pt_habits_filter(k->s, hint, sizeof(hint))) {
        hint[0] = '\0';
        if (best)
            snprintf(mean, sizeof(mean), "; did you mean \"%s\"?", best);
    }
    pt_conf_error(cc, k, "unknown filter \"%s\"%s%s (the filters are: %s)", k->s, hint, mean, known);
}

int pt_filters_set(pt_conf_ctx_t *cc, const pt_node_t *n, void *field)
{
    pt_filterset_t *fs = field;
    fs->node = n;
    if (n->type == PT_NODE_NULL)
        return 0;
    if (n->type != PT_NODE_MAP) {
        pt_conf_error(cc, n, "expected a map of filter names, not %s", pt_node_type_name(n));
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < n->npairs; i++) {
        const pt_node_t *k = n->pairs[i].key, *v = n->pairs[i].value;
        int id = -1;
        const char *best = NULL;
        size_t best_d = 3;
        for (int f = 0; f < PT_FILTER__COUNT; f++) {
            if (strcmp(pt_filters[f]->name, k->s) == 0)
                id = f;
            size_t d = pt_str_distance(k->s, pt_filters[f]->name, 2);
            if (d < best_d) {
                best_d = d;
                best = pt_filters[f]->name;
            }
        }
        if (id < 0) {
            unknown_filter(cc, k, best);
            rc = -1;
            continue;
        }
        size_t old = pt_conf_path_push(cc, ".%s", k->s);
        if (v->type == PT_NODE_SCALAR && v->plain && strcmp(v->s, "false") == 0) {
            fs->conf[id] = PT_FILTER_OFF;
        } else {
            void *conf = pt_arena_zalloc(cc->arena, pt_filters[id]->schema->size);
            pt_node_t *empty = NULL;
            if (v->type == PT_NODE_NULL) { /* "cors:" alone: the defaults */
                empty = pt_arena_zalloc(cc->arena, sizeof(*empty));
                if (empty)
                    *empty = (pt_node_t){.type = PT_NODE_MAP, .line = v->line, .col = v->col, .file = v->file};
            }
            if (!conf || pt_schema_load(cc, pt_filters[id]->schema, empty ? empty : v, conf) < 0)
                rc = -1;
            else
                fs->conf[id] = conf;
        }
        pt_conf_path_pop(cc, old);
    }
    return rc;
}

void pt_filters_print(FILE *f, const void *field, const pt_list_t *prov)
{
    const pt_filterset_t *fs = field;
    fputc('{', f);
    int first = 1;
    for (int i = 0; i < PT_FILTER__COUNT; i++) {
        if (!fs->conf[i])
            continue;
        pt_schema_put_key(f, pt_filters[i]->name, first);
        if (fs->conf[i] == PT_FILTER_OFF)
            fputs("false", f);
        else
            pt_schema_dump_flow(f, pt_filters[i]->schema, fs->conf[i], prov);
        first = 0;
    }
    fputs(first ? "}" : " }", f);
}

static int link_set(pt_conf_ctx_t *cc, const pt_config_t *c, const pt_filterset_t *fs, const char *kind,
                    const char *name)
{
    int rc = 0;
    char *scope = NULL;
    for (int f = 0; f < PT_FILTER__COUNT; f++) {
        if (!fs->conf[f] || fs->conf[f] == PT_FILTER_OFF || !pt_filters[f]->link)
            continue;
        if (!scope) {
            size_t n = strlen(kind) + (name ? strlen(name) + 1 : 0) + 1;
            if (!(scope = pt_arena_alloc(cc->arena, n)))
                return -1;
            snprintf(scope, n, "%s%s%s", kind, name ? ":" : "", name ? name : "");
        }
        rc |= pt_filters[f]->link(cc, c, (void *)fs->conf[f], scope);
    }
    return rc;
}

int pt_filters_resolve(pt_conf_ctx_t *cc, pt_config_t *c)
{
    int rc = link_set(cc, c, &c->global_filters, "global", NULL);
    for (size_t i = 0; i < c->routes.n; i++) {
        const pt_route_conf_t *r = PT_LIST_AT(c->routes, pt_route_conf_t, i);
        rc |= link_set(cc, c, &r->filters, "route", r->name ? r->name : "");
    }
    for (size_t i = 0; i < c->consumers.n; i++) {
        const pt_consumer_conf_t *co = PT_LIST_AT(c->consumers, pt_consumer_conf_t, i);
        const pt_filterset_t *fs = &co->filters;
        rc |= link_set(cc, c, fs, "consumer", co->name ? co->name : "");
        for (int f = 0; f <= PT_FILTER_AUTH_LAST; f++) {
            if (!fs->conf[f])
                continue;
            const pt_filter_t *flt = pt_filters[f];
            /* the consumer is known once an auth filter found it: what runs
             * on the request before that cannot use its settings */
            if (pt_auth_is_auth_filter(f))
                pt_conf_warn(cc, pt_node_get(fs->node, flt->name), "%s for a consumer has no effect: the consumer is "
                             "found by the auth filters themselves", flt->name);
            else if (!flt->on_body && !flt->on_response)
                pt_conf_warn(cc, pt_node_get(fs->node, flt->name), "%s for a consumer has no effect: it runs before "
                             "the auth filters find the consumer", flt->name);
            else
                pt_conf_warn(cc, pt_node_get(fs->node, flt->name), "%s for a consumer applies to the request body and "
                             "the response only: its request part runs before the auth filters find the consumer",
                             flt->name);
        }
    }
    if (rc)
        return -1;
    for (size_t i = 0; i < c->routes.n; i++) {
        pt_route_conf_t *r = PT_LIST_AT(c->routes, pt_route_conf_t, i);
        const void **eff = NULL;
        for (int f = 0; f < PT_FILTER__COUNT; f++) {
            const void *conf = r->filters.conf[f] ? r->filters.conf[f] : c->global_filters.conf[f];
            if (!conf || conf == PT_FILTER_OFF)
                continue;
            if (!eff && !(eff = pt_arena_zalloc(cc->arena, sizeof(void *) * PT_FILTER__COUNT)))
                return -1;
            eff[f] = conf;
        }
        r->fconf = (const void *const *)eff;
        bool auth = false;
        for (int f = PT_FILTER_AUTH_FIRST; eff && f <= PT_FILTER_AUTH_LAST; f++)
            auth |= eff[f] != NULL;
        if (eff && eff[PT_FILTER_ACL] && !auth)
            pt_conf_warn(cc, r->node, "route \"%s\" has acl but no auth filter: no consumer is ever found, every "
                         "request is 401", r->name ? r->name : "");
    }
    return 0;
}

const void *pt_filters_conf_for(const pt_config_t *c, const pt_route_conf_t *r, const pt_consumer_conf_t *consumer,
                                int id)
{
    const void *v = consumer ? consumer->filters.conf[id] : NULL;
    if (!v && r)
        v = r->filters.conf[id];
    if (!v)
        v = c->global_filters.conf[id];
    return v == PT_FILTER_OFF ? NULL : v;
}

static void *state_of(pt_conn_t *c, pt_fx_t *fx, int f)
{
    if (!pt_filters[f]->state_size)
        return NULL;
    if (!fx->state[f])
        fx->state[f] = pt_arena_zalloc(&c->arena, pt_filters[f]->state_size);
    return fx->state[f];
}

pt_verdict_t pt_filters_request(pt_conn_t *c, const pt_h1_req_t *req, pt_fx_t *fx)
{
    if (!fx->host.p) {
        /* Response hooks may expand ${host} and ${path} after the head is
         * gone: these point into it until pt_req_detach copies them.
         * ${path} and path-rewrite see the path routed on: its normal form
         * (as nginx's $uri), which cannot fail where routing did not. */
        fx->host = req->host.p ? req->host : PT_STR("");
        fx->req_path = req->path.p ? req->path : PT_STR("");
        if (req->path.n && (req->form == PT_H1_ORIGIN || req->form == PT_H1_ABSOLUTE) &&
            !pt_path_is_plain(req->path)) {
            char *p = pt_arena_alloc(&c->arena, req->path.n + 2);
            long n = p ? pt_path_normalize(req->path, p, pt_path_slashes(c->acc->ls->conf)) : -1;
            if (n >= 0) {
                p[n] = '\0';
                fx->req_path = (pt_str_t){p, (size_t)n};
            }
        }
    }
    for (int f = fx->next; f < PT_FILTER__COUNT; f++) {
        const void *conf = fx->confs[f];
        if (!conf || !pt_filters[f]->on_request)
            continue;
        void *st = state_of(c, fx, f);
        if (pt_filters[f]->state_size && !st)
            return PT_FAIL;
        fx->next = f; /* the filter running: its counts in the metrics are its own */
        pt_verdict_t v = pt_filters[f]->on_request(c, req, conf, fx, st);
        if (v == PT_SUSPEND) {
            fx->next = f; /* on resume it runs again: its state says where it is */
            return v;
        }
        if (v != PT_NEXT)
            return v;
    }
    fx->next = PT_FILTER__COUNT;
    return PT_NEXT;
}

pt_verdict_t pt_filters_response(pt_conn_t *c, pt_fx_t *fx, int status, bool can_wait)
{
    if (fx->responded) /* one answer, one run: a failure after it adds nothing */
        return PT_NEXT;
    if (!fx->resp_started) {
        fx->resp_started = true;
        fx->next_resp = PT_FILTER__COUNT - 1;
    }
    fx->can_wait = can_wait;
    for (int f = fx->next_resp; f >= 0; f--) {
        const void *conf = fx->confs[f];
        if (!conf || !pt_filters[f]->on_response)
            continue;
        pt_verdict_t v = pt_filters[f]->on_response(c, conf, fx, state_of(c, fx, f), status);
        if (v == PT_SUSPEND && can_wait) {
            fx->next_resp = f; /* on resume it runs again: its state says where it is */
            fx->can_wait = false;
            return PT_SUSPEND;
        }
    }
    fx->can_wait = false;
    fx->responded = true;
    return PT_NEXT;
}

pt_verdict_t pt_filters_body(pt_conn_t *c, pt_fx_t *fx, const char *p, size_t n, bool last)
{
    pt_verdict_t v = PT_NEXT;
    fx->can_wait = true;
    fx->piece = (pt_str_t){p, n}; /* in the input buffer: for the hooks' call only */
    int f = fx->next_body;
    for (; f < PT_FILTER__COUNT && v == PT_NEXT; f++) {
        const void *conf = fx->confs[f];
        if (conf && pt_filters[f]->on_body)
            v = pt_filters[f]->on_body(c, conf, fx, state_of(c, fx, f), n, last);
    }
    /* a hook that waits runs again on the same bytes (maybe more) */
    fx->next_body = v == PT_SUSPEND ? f - 1 : 0;
    fx->can_wait = false;
    fx->piece = PT_STR_NULL;
    return v;
}

void pt_filters_done(pt_conn_t *c, pt_fx_t *fx)
{
    if (fx->done)
        return;
    fx->done = true;
    for (int f = PT_FILTER__COUNT - 1; f >= 0; f--) {
        const void *conf = fx->confs[f];
        if (conf && pt_filters[f]->on_done)
            pt_filters[f]->on_done(c, conf, fx, fx->state[f]);
    }
}

/* ---- templates ---- */

enum { TV_LIT, TV_ROUTE, TV_PARAM, TV_CLIENT_IP, TV_REQUEST_ID, TV_HOST, TV_PATH, TV_CONSUMER, TV_TLS_PROTOCOL,
       TV_TLS_SUBJECT, TV_TLS_SAN, TV_TLS_VERIFY, TV_HEADER, TV_QUERY, TV_SCHEME, TV_ARGS, TV_TRACE_ID };

typedef struct tseg {
    int kind;
    pt_str_t text; /* the literal, or the variable's name (for a parameter without "param.") */
    pt_str_t var;  /* the variable as written, for the log */
} tseg_t;

struct pt_tpl {
    pt_tpl_use_t use;
    size_t n;
    tseg_t seg[];
};

/* The first byte of v that may not go where `use` puts it, or -1.  A
 * header field value may hold HTAB, SP, VCHAR and obs-text (RFC 9110
 * 5.5), never CR, LF, NUL or another control character: those would end
 * the field and start another one (header injection).  A path goes into
 * the request line, where a space ends the target too. */
static long bad_byte(pt_str_t v, pt_tpl_use_t use)
{
    for (size_t i = 0; i < v.n; i++) {
        unsigned char b = (unsigned char)v.p[i];
        if (b == 0x7f || (b < 0x20 && b != '\t'))
            return (long)i;
        if (use == PT_TPL_PATH && (b <= ' ' || b >= 0x80 || b == '#'))
            return (long)i;
    }
    return -1;
}

pt_tpl_t *pt_tpl_compile(pt_conf_ctx_t *cc, const pt_node_t *n, const char *text, pt_tpl_use_t use)
{
    size_t max = 1;
    for (const char *p = text; *p; p++)
        max += *p == '$' ? 2 : 0;
    pt_tpl_t *t = pt_arena_zalloc(cc->arena, sizeof(*t) + max * sizeof(tseg_t));
    if (!t)
        return NULL;
    t->use = use;
    const char *p = text;
    while (*p) {
        const char *lit = p;
        while (*p && !(p[0] == '$' && p[1] == '{'))
            p++;
        if (p > lit) {
            pt_str_t l = {lit, (size_t)(p - lit)};
            if (bad_byte(l, use) >= 0) {
                pt_conf_error(cc, n, "a template for a %s cannot have the byte 0x%02x",
                              use == PT_TPL_PATH ? "path" : "header field", (unsigned char)l.p[bad_byte(l, use)]);
                return NULL;
            }
            t->seg[t->n++] = (tseg_t){TV_LIT, l, PT_STR_NULL};
        }
        if (!*p)
            break;
        const char *end = strchr(p, '}');
        pt_str_t name = {p + 2, (size_t)(end - p - 2)}, var = name;
        static const struct {
            const char *name;
            int kind;
        } vars[] = {{"route", TV_ROUTE},
                    {"client_ip", TV_CLIENT_IP},
                    {"request_id", TV_REQUEST_ID},
                    {"trace_id", TV_TRACE_ID},
                    {"host", TV_HOST},
                    {"path", TV_PATH},
                    {"scheme", TV_SCHEME},
                    {"query", TV_ARGS},
                    {"consumer", TV_CONSUMER},
                    {"tls_protocol", TV_TLS_PROTOCOL},
                    {"tls_client_subject", TV_TLS_SUBJECT},
                    {"tls_client_san", TV_TLS_SAN},
                    {"tls_client_verify", TV_TLS_VERIFY}};
        int kind = -1;
        for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
            if (pt_str_eq(name, pt_str_from(vars[i].name)))
                kind = vars[i].kind;
        if (kind < 0 && name.n > 6 && memcmp(name.p, "param.", 6) == 0) {
            kind = TV_PARAM;
            name.p += 6;
            name.n -= 6;
        }
        /* ${header.NAME} and ${query.NAME}: the request's first field or
         * argument of that name (raw, not decoded); there while the head is */
        if (kind < 0 && ((name.n > 7 && memcmp(name.p, "header.", 7) == 0) ||
                         (name.n > 6 && memcmp(name.p, "query.", 6) == 0))) {
            size_t skip = name.p[0] == 'h' ? 7 : 6;
            kind = skip == 7 ? TV_HEADER : TV_QUERY;
            char *z = pt_arena_alloc(cc->arena, name.n - skip + 1);
            if (!z)
                return NULL;
            memcpy(z, name.p + skip, name.n - skip);
            z[name.n - skip] = '\0';
            name = (pt_str_t){z, name.n - skip};
        }
        if (kind < 0) {
            pt_conf_error(cc, n,
                          "unknown variable ${%.*s} (use route, param.NAME, header.NAME, query.NAME, client_ip, "
                          "request_id, trace_id, host, path, scheme, query, consumer, tls_protocol, tls_client_subject, tls_client_san, "
                          "tls_client_verify)",
                          (int)name.n, name.p);
            return NULL;
        }
        t->seg[t->n++] = (tseg_t){kind, name, var};
        p = end + 1;
    }
    return t;
}

/* The TLS variables: empty on plain HTTP; tls_client_verify is SUCCESS
 * or NONE (a certificate that fails verification fails the handshake). */
#define TLS_VAR_MAX 16384 /* a certificate's subject or SAN list longer than this is refused */

/* The TLS variables: empty on plain HTTP; tls_client_verify is SUCCESS
 * or NONE (a certificate that fails verification fails the handshake).
 * The subject and SANs are taken whole or not at all: a cut copy could
 * name what the certificate does not.  PT_EINVAL when too long. */
static int tls_var(pt_conn_t *c, int kind, pt_str_t *v)
{
    *v = PT_STR_NULL;
    if (!c->ssl) {
        if (kind == TV_TLS_VERIFY)
            *v = PT_STR("NONE");
        return 0;
    }
    if (kind == TV_TLS_PROTOCOL) {
        *v = pt_str_from(pt_tls_protocol(c->ssl));
        return 0;
    }
    if (kind == TV_TLS_VERIFY) {
        *v = pt_tls_client_verified(c->ssl) ? PT_STR("SUCCESS") : PT_STR("NONE");
        return 0;
    }
    size_t (*get)(SSL *, char *, size_t) = kind == TV_TLS_SUBJECT ? pt_tls_client_subject : pt_tls_client_san;
    size_t n = get(c->ssl, NULL, 0);
    if (n > TLS_VAR_MAX)
        return PT_EINVAL;
    char *b = n ? pt_arena_alloc(&c->arena, n) : NULL;
    if (n && !b)
        return PT_ENOMEM;
    if (n && get(c->ssl, b, n) != n)
        return PT_EINVAL; /* it changed under us: never */
    *v = (pt_str_t){b, n};
    return 0;
}

/* The client's address: from a peer in trusted_proxies, the right-most
 * address of X-Forwarded-For that is not itself a trusted proxy (nginx's
 * real_ip_recursive), since those proxies' word is believed; else the
 * peer.  Only while the head is there (req). */
pt_str_t pt_client_ip(pt_conn_t *c, const pt_h1_req_t *req)
{
    pt_str_t peer = pt_conn_peer_ip(c);
    const pt_config_t *conf = c->w->conf;
    if (!req || !conf->ntrusted || !pt_cidr_match(conf->trusted, conf->ntrusted, (const struct sockaddr *)&c->peer))
        return peer;
    const pt_h1_header_t *h = pt_h1_find(req, PT_STR("x-forwarded-for"));
    if (!h)
        return peer;
    const char *b = h->value.p, *e = b + h->value.n;
    pt_str_t last = peer;
    while (e > b) {
        const char *comma = e;
        while (comma > b && comma[-1] != ',')
            comma--;
        const char *s = comma, *t = e;
        while (s < t && (*s == ' ' || *s == '\t'))
            s++;
        while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        char ip[INET6_ADDRSTRLEN + 1];
        struct sockaddr_storage ss = {0};
        size_t n = (size_t)(t - s);
        if (!n || n >= sizeof(ip))
            return last;
        memcpy(ip, s, n);
        ip[n] = '\0';
        if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
            ss.ss_family = AF_INET;
        else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
            ss.ss_family = AF_INET6;
        else
            return last; /* not an address: believe no further */
        last = (pt_str_t){s, n};
        if (!pt_cidr_match(conf->trusted, conf->ntrusted, (const struct sockaddr *)&ss))
            return last;
        e = comma > b ? comma - 1 : b;
    }
    return last;
}

/* A query argument's value %-decoded ('+' a space), in the arena: what the
 * upstream reads (a key of ?user=%62ob is bob's). */
static pt_str_t query_value(pt_conn_t *c, pt_str_t v)
{
    if (!memchr(v.p, '%', v.n) && !memchr(v.p, '+', v.n))
        return v;
    char *o = pt_arena_alloc(&c->arena, v.n);
    if (!o)
        return v;
    size_t n = 0;
    for (size_t i = 0; i < v.n; i++) {
        int hi, lo;
        if (v.p[i] == '+') {
            o[n++] = ' ';
        } else if (v.p[i] == '%' && i + 2 < v.n && (hi = pt_hexval(v.p[i + 1])) >= 0 &&
                   (lo = pt_hexval(v.p[i + 2])) >= 0) {
            o[n++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            o[n++] = v.p[i];
        }
    }
    return (pt_str_t){o, n};
}

static pt_str_t var_value(const tseg_t *s, pt_conn_t *c, const pt_h1_req_t *req)
{
    switch (s->kind) {
    case TV_LIT:
        return s->text;
    case TV_ROUTE:
        return c->req->match.route ? pt_str_from(c->req->match.route->name) : PT_STR_NULL;
    case TV_CLIENT_IP:
        return pt_client_ip(c, req);
    case TV_REQUEST_ID:
        return (pt_str_t){c->req->reqid, c->req->reqid_len};
    case TV_TRACE_ID: /* empty without tracing */
        return c->req->ent.trace_id ? (pt_str_t){c->req->ent.trace_id, 32} : PT_STR_NULL;
    case TV_HOST:
        return req ? req->host : c->req->fx ? c->req->fx->host : PT_STR_NULL;
    case TV_PATH:
        return c->req->fx ? c->req->fx->req_path : req ? req->path : PT_STR_NULL;
    case TV_SCHEME:
        return c->ssl ? PT_STR("https") : PT_STR("http");
    case TV_ARGS: /* the raw query, without its '?'; there while the head is */
        return req && req->query.n ? req->query : PT_STR_NULL;
    case TV_CONSUMER:
        return c->req->fx && c->req->fx->auth.consumer ? pt_str_from(c->req->fx->auth.consumer->name) : PT_STR_NULL;
    case TV_HEADER: {
        const pt_h1_header_t *h = req ? pt_h1_find(req, s->text) : NULL;
        return h ? h->value : PT_STR_NULL;
    }
    case TV_QUERY: {
        pt_str_t v = req ? pt_h1_query_arg(req->query, s->text.p) : PT_STR_NULL;
        return v.p ? query_value(c, v) : PT_STR_NULL;
    }
    case TV_PARAM:
        for (size_t k = 0; k < c->req->match.nparams; k++)
            if (pt_str_eq(c->req->match.params[k].name, s->text))
                return c->req->match.params[k].value;
        break;
    }
    return PT_STR_NULL;
}

bool pt_tpl_has_vars(const pt_tpl_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->seg[i].kind != TV_LIT)
            return true;
    return false;
}

static int expand(const pt_tpl_t *t, pt_conn_t *c, const pt_h1_req_t *req, pt_str_t *out, bool *missing);

int pt_tpl_expand(const pt_tpl_t *t, pt_conn_t *c, const pt_h1_req_t *req, pt_str_t *out)
{
    bool missing;
    return expand(t, c, req, out, &missing);
}

int pt_tpl_expand_all(const pt_tpl_t *t, pt_conn_t *c, const pt_h1_req_t *req, pt_str_t *out, bool *missing)
{
    return expand(t, c, req, out, missing);
}

static int expand(const pt_tpl_t *t, pt_conn_t *c, const pt_h1_req_t *req, pt_str_t *out, bool *missing)
{
    *missing = false;
    /* Every value is checked here, the one place all of them pass, so no
     * filter can forget to (literals were checked at load). */
    pt_str_t stack[16], *parts = t->n <= 16 ? stack : pt_arena_alloc(&c->arena, t->n * sizeof(pt_str_t));
    *out = PT_STR_NULL;
    if (!parts)
        return PT_ENOMEM;
    size_t total = 0;
    for (size_t i = 0; i < t->n; i++) {
        const tseg_t *s = &t->seg[i];
        pt_str_t v;
        if (s->kind >= TV_TLS_PROTOCOL && s->kind <= TV_TLS_VERIFY) {
            int rc = tls_var(c, s->kind, &v);
            if (rc == PT_EINVAL)
                pt_log_info("${%.*s} is too long to use whole, req=%s", PT_STR_FMT(s->var), c->req->reqid);
            if (rc < 0)
                return rc;
        } else {
            v = var_value(s, c, req);
        }
        long bad = s->kind == TV_LIT ? -1 : bad_byte(v, t->use);
        if (bad >= 0) {
            static bool logged; /* once per worker: the client chooses how often */
            if (!logged) {
                logged = true;
                pt_log_warn("route \"%s\": ${%.*s} has the byte 0x%02x, not allowed in a %s; the value is not "
                            "used (logged once per worker), req=%s",
                            c->req->match.route ? c->req->match.route->name : "", PT_STR_FMT(s->var),
                            (unsigned char)v.p[bad], t->use == PT_TPL_PATH ? "path" : "header field", c->req->reqid);
            }
            return PT_EINVAL;
        }
        parts[i] = v;
        total += v.n;
        *missing |= s->kind != TV_LIT && !v.n;
    }
    char *o = pt_arena_alloc(&c->arena, total + 1);
    if (!o)
        return PT_ENOMEM;
    size_t off = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (parts[i].n)
            memcpy(o + off, parts[i].p, parts[i].n);
        off += parts[i].n;
    }
    o[off] = '\0';
    *out = (pt_str_t){o, off};
    return 0;
}

pt_verdict_t pt_tpl_refuse(pt_conn_t *c, const pt_h1_req_t *req, int rc)
{
    if (rc != PT_EINVAL)
        return PT_FAIL;
    pt_req_respond(c, 400, "text/plain", "400 Bad Request\n", 16, NULL, req->method_bit == PT_M_HEAD);
    return PT_RESPOND;
}
