/* redirect: answers with a redirect instead of going on: to `location`
 * (a template: ${param.id} and friends), or to the same URL over https. */
#include "config.h"

#include <stddef.h>
#include <string.h>

#include "portico/conf.h"
#include "portico/conn.h"
#include "portico/filter.h"
#include "portico/http.h"
#include "portico/request.h"
#include "portico/schema.h"

typedef struct conf {
    const pt_node_t *node;
    int64_t status;
    char *location;
    bool https;
    int64_t https_port;
    pt_tpl_t *tpl;
} conf_t;

static int check(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    conf_t *c = obj;
    if (!c->location == !c->https) {
        pt_conf_error(cc, n, "redirect needs either location or https: true");
        return -1;
    }
    if (c->status != 301 && c->status != 302 && c->status != 303 && c->status != 307 && c->status != 308) {
        pt_conf_error_key(cc, n, "status", "a redirect status is 301, 302, 303, 307 or 308, not %lld",
                          (long long)c->status);
        return -1;
    }
    if (c->location && !(c->tpl = pt_tpl_compile(cc, pt_node_get(n, "location"), c->location, PT_TPL_FIELD)))
        return -1;
    return 0;
}

static const pt_directive_t keys[] = {
    {"status", PT_T_INT, offsetof(conf_t, status), "302", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "301, 302, 303, 307 or 308."},
    {"location", PT_T_STR, offsetof(conf_t, location), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, "template",
     "Where to: a URL or a path, with ${route}, ${param.NAME}, ${host}, ${path}, ${client_ip}, ${request_id}."},
    {"https", PT_T_BOOL, offsetof(conf_t, https), "false", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Redirect to the same host and target over https."},
    {"https_port", PT_T_INT, offsetof(conf_t, https_port), "443", 1, 65535, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The port of the https redirect (omitted when 443)."},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL},
};
static const pt_section_t schema = {"redirect", sizeof(conf_t), keys, check, NULL,
                                    "Answers with a redirect."};

static pt_verdict_t on_request(pt_conn_t *c, const pt_h1_req_t *req, const void *vconf, pt_fx_t *fx, void *st)
{
    const conf_t *conf = vconf;
    pt_str_t loc;
    if (conf->tpl) {
        int rc = pt_tpl_expand(conf->tpl, c, req, &loc);
        if (rc < 0)
            return pt_tpl_refuse(c, req, rc);
    } else {
        pt_str_t host = req->host;
        const char *colon = host.n && host.p[0] != '[' ? memchr(host.p, ':', host.n) : NULL;
        if (colon)
            host.n = (size_t)(colon - host.p);
        char port[16] = "";
        if (conf->https_port != 443)
            snprintf(port, sizeof(port), ":%lld", (long long)conf->https_port);
        char *s = pt_arena_printf(&c->arena, "https://%.*s%s%.*s", PT_STR_FMT(host), port,
                                  req->form == PT_H1_ABSOLUTE ? (int)req->path.n : (int)req->target.n,
                                  req->form == PT_H1_ABSOLUTE ? req->path.p : req->target.p);
        loc = pt_str_from(s);
    }
    char *extra = pt_arena_printf(&c->arena, "Location: %.*s\r\n", PT_STR_FMT(loc));
    if (!loc.p || !extra || memchr(loc.p, '\r', loc.n) || memchr(loc.p, '\n', loc.n))
        return PT_FAIL;
    pt_req_respond(c, (int)conf->status, "text/plain", "", 0, extra, req->method_bit == PT_M_HEAD);
    return PT_RESPOND;
}

const pt_filter_t pt_filter_redirect = {.name = "redirect", .schema = &schema, .on_request = on_request};
