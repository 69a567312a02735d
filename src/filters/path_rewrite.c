/* path-rewrite: the path sent upstream, from a template (${param.id} ...)
 * or a regex and its replacement ($1, ${name}); the query is kept. */
#include "config.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <string.h>

#include "portico/conf.h"
#include "portico/config.h"
#include "portico/conn.h"
#include "portico/filter.h"
#include "portico/schema.h"

typedef struct conf {
    const pt_node_t *node;
    char *template_text;
    char *regex;
    char *replacement;
    pt_tpl_t *tpl;
    void *re;
} conf_t;

static int check(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    conf_t *c = obj;
    if (!c->template_text == !c->regex || (c->regex && !c->replacement)) {
        pt_conf_error(cc, n, "path-rewrite needs either template, or regex with replacement");
        return -1;
    }
    if (c->template_text) {
        if (c->template_text[0] != '/') {
            pt_conf_error_key(cc, n, "template", "a path template starts with /");
            return -1;
        }
        c->tpl = pt_tpl_compile(cc, pt_node_get(n, "template"), c->template_text, PT_TPL_PATH);
        return c->tpl ? 0 : -1;
    }
    c->re = pt_config_regex(cc, pt_node_get(n, "regex"), c->regex);
    return c->re ? 0 : -1;
}

static const pt_directive_t keys[] = {
    {"template", PT_T_STR, offsetof(conf_t, template_text), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, "template",
     "The new path, with ${param.NAME}, ${route}, ${path} and the other variables."},
    {"regex", PT_T_STR, offsetof(conf_t, regex), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "A PCRE2 regex applied to the path; the first match is replaced."},
    {"replacement", PT_T_STR, offsetof(conf_t, replacement), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "What replaces the match: $1 or $name for groups (write $$ for a dollar)."},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL},
};
static const pt_section_t schema = {"path-rewrite", sizeof(conf_t), keys, check, NULL,
                                    "Rewrites the path sent upstream."};

static pt_verdict_t on_request(pt_conn_t *c, const pt_h1_req_t *req, const void *vconf, pt_fx_t *fx, void *st)
{
    const conf_t *conf = vconf;
    if (conf->tpl) {
        int rc = pt_tpl_expand(conf->tpl, c, req, &fx->path);
        return rc < 0 ? pt_tpl_refuse(c, req, rc) : PT_NEXT;
    }
    pt_str_t path = fx->req_path; /* the normal form, as routed */
    PCRE2_SIZE outlen = path.n * 2 + strlen(conf->replacement) + 64;
    char *out = pt_arena_alloc(&c->arena, outlen);
    if (!out)
        return PT_FAIL;
    int rc = pcre2_substitute(conf->re, (PCRE2_SPTR)path.p, path.n, 0, 0, NULL, NULL,
                              (PCRE2_SPTR)conf->replacement, PCRE2_ZERO_TERMINATED, (PCRE2_UCHAR *)out, &outlen);
    if (rc < 0)
        return PT_FAIL;
    if (rc > 0) /* no match: the path is left as it is */
        fx->path = (pt_str_t){out, outlen};
    return PT_NEXT;
}

const pt_filter_t pt_filter_path_rewrite = {.name = "path-rewrite", .schema = &schema, .on_request = on_request};
