/* cors: answers preflight requests itself (they never reach the upstream)
 * and adds the Access-Control-* headers to the responses of allowed
 * origins.  An origin not allowed gets no CORS headers: the browser then
 * refuses the response. */
#include "config.h"

#include <stddef.h>
#include <string.h>

#include "portico/conn.h"
#include "portico/filter.h"
#include "portico/http.h"
#include "portico/request.h"
#include "portico/schema.h"

typedef struct conf {
    const pt_node_t *node;
    pt_strlist_t origins, methods, headers, expose_headers;
    bool credentials;
    int64_t max_age;
    bool any_origin;
    char *methods_text, *headers_text, *expose_text;
} conf_t;

static char *join(pt_conf_ctx_t *cc, const pt_strlist_t *l)
{
    size_t len = 1;
    for (size_t i = 0; i < l->n; i++)
        len += (l->v[i] ? strlen(l->v[i]) : 0) + 2;
    char *s = pt_arena_alloc(cc->arena, len), *p = s;
    if (!s)
        return NULL;
    *p = '\0';
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i])
            p += sprintf(p, "%s%s", i ? ", " : "", l->v[i]);
    return s;
}

static int check(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    conf_t *c = obj;
    for (size_t i = 0; i < c->origins.n; i++)
        c->any_origin |= c->origins.v[i] && strcmp(c->origins.v[i], "*") == 0;
    if (!c->origins.n)
        c->any_origin = true;
    c->methods_text = c->methods.n ? join(cc, &c->methods) : "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
    c->headers_text = join(cc, &c->headers);
    c->expose_text = join(cc, &c->expose_headers);
    return c->methods_text && c->headers_text && c->expose_text ? 0 : -1;
}

static const pt_directive_t keys[] = {
    {"origins", PT_T_LIST, offsetof(conf_t, origins), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem, NULL, NULL, 0,
     "list of strings", "Allowed origins (https://app.example.com), or * for any. Empty: any."},
    {"methods", PT_T_LIST, offsetof(conf_t, methods), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem, NULL, NULL, 0,
     "list of strings", "Methods a preflight allows. Empty: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS."},
    {"headers", PT_T_LIST, offsetof(conf_t, headers), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem, NULL, NULL, 0,
     "list of strings", "Request headers a preflight allows. Empty: those the preflight asks for."},
    {"expose_headers", PT_T_LIST, offsetof(conf_t, expose_headers), NULL, 0, 0, NULL, NULL, &pt_schema_str_elem, NULL, NULL,
     0, "list of strings", "Response headers scripts may read."},
    {"credentials", PT_T_BOOL, offsetof(conf_t, credentials), "false", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Allow credentials (the origin is then echoed, never *)."},
    {"max_age", PT_T_DURATION, offsetof(conf_t, max_age), "0s", 0, 86400000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "How long a browser may cache a preflight; 0 sends no Access-Control-Max-Age."},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL},
};
static const pt_section_t schema = {"cors", sizeof(conf_t), keys, check, NULL,
                                    "Cross-origin resource sharing."};

static bool allowed(const conf_t *conf, pt_str_t origin)
{
    if (conf->any_origin)
        return true;
    for (size_t i = 0; i < conf->origins.n; i++)
        if (conf->origins.v[i] && pt_str_eq(origin, pt_str_from(conf->origins.v[i])))
            return true;
    return false;
}

static void edit(pt_conn_t *c, pt_fx_t *fx, const char *name, pt_str_t value)
{
    pt_fx_add(c, fx, true, PT_HDR_SET, pt_str_from(name), value);
}

static pt_verdict_t on_request(pt_conn_t *c, const pt_h1_req_t *req, const void *vconf, pt_fx_t *fx, void *st)
{
    const conf_t *conf = vconf;
    const pt_h1_header_t *oh = pt_h1_find(req, PT_STR("origin"));
    if (!oh || !allowed(conf, oh->value))
        return PT_NEXT;
    bool echo = conf->credentials || !conf->any_origin;
    pt_str_t acao = echo ? oh->value : PT_STR("*");
    const pt_h1_header_t *rm = pt_h1_find(req, PT_STR("access-control-request-method"));
    if (req->method_bit == PT_M_OPTIONS && rm) {
        /* a preflight: answered here, never sent upstream */
        const pt_h1_header_t *rh = pt_h1_find(req, PT_STR("access-control-request-headers"));
        pt_str_t hdrs = *conf->headers_text ? pt_str_from(conf->headers_text) : rh ? rh->value : PT_STR_NULL;
        char age[48] = "";
        if (conf->max_age)
            snprintf(age, sizeof(age), "Access-Control-Max-Age: %lld\r\n", (long long)(conf->max_age / 1000));
        char *extra = pt_arena_printf(&c->arena,
                                      "Access-Control-Allow-Origin: %.*s\r\nAccess-Control-Allow-Methods: %s\r\n"
                                      "%s%.*s%s%s%sVary: Origin\r\n",
                                      PT_STR_FMT(acao), conf->methods_text, hdrs.n ? "Access-Control-Allow-Headers: " : "",
                                      (int)hdrs.n, hdrs.p ? hdrs.p : "", hdrs.n ? "\r\n" : "",
                                      conf->credentials ? "Access-Control-Allow-Credentials: true\r\n" : "", age);
        if (!extra)
            return PT_FAIL;
        pt_req_respond(c, 204, "text/plain", "", 0, extra, true);
        return PT_RESPOND;
    }
    edit(c, fx, "Access-Control-Allow-Origin", acao);
    if (conf->credentials)
        edit(c, fx, "Access-Control-Allow-Credentials", PT_STR("true"));
    if (*conf->expose_text)
        edit(c, fx, "Access-Control-Expose-Headers", pt_str_from(conf->expose_text));
    if (echo)
        edit(c, fx, "Vary", PT_STR("Origin"));
    return PT_NEXT;
}

const pt_filter_t pt_filter_cors = {.name = "cors", .schema = &schema, .on_request = on_request};
