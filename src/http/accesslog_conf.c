/* Compiling access_log: a named format or a $variable template becomes an
 * array of segments, and so does the JSON format's field list, so
 * formatting a line is a loop without any parsing.  Also the sampling
 * settings (access_log.sample, a route's access_log) and admin.access_log. */
#include "config.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "portico/accesslog.h"
#include "portico/accesslog_conf.h"
#include "portico/conf.h"
#include "portico/config-t.h"
#include "portico/schema.h"

const char *const pt_alog_var_names[PT_AV__COUNT] = {
    [PT_AV_TIME] = "time",
    [PT_AV_TIME_ISO] = "time_iso8601",
    [PT_AV_REMOTE_ADDR] = "remote_addr",
    [PT_AV_METHOD] = "method",
    [PT_AV_TARGET] = "target",
    [PT_AV_PROTOCOL] = "protocol",
    [PT_AV_STATUS] = "status",
    [PT_AV_BYTES_IN] = "bytes_in",
    [PT_AV_BYTES_OUT] = "bytes_out",
    [PT_AV_REQUEST_TIME] = "request_time",
    [PT_AV_ROUTE] = "route",
    [PT_AV_REQUEST_ID] = "request_id",
    [PT_AV_HOST] = "host",
    [PT_AV_USER_AGENT] = "user_agent",
    [PT_AV_REFERER] = "referer",
    [PT_AV_UPSTREAM_ADDR] = "upstream_addr",
    [PT_AV_UPSTREAM_STATUS] = "upstream_status",
    [PT_AV_UPSTREAM_TIME] = "upstream_time",
    [PT_AV_TLS_PROTOCOL] = "tls_protocol",
    [PT_AV_TLS_CIPHER] = "tls_cipher",
    [PT_AV_COMPLETION] = "completion",
    [PT_AV_CONSUMER] = "consumer",
    [PT_AV_CACHE_STATUS] = "cache_status",
    [PT_AV_TRACE_ID] = "trace_id",
    [PT_AV_UPSTREAM_CONNECT_TIME] = "upstream_connect_time",
    [PT_AV_UPSTREAM_HEADER_TIME] = "upstream_header_time",
    [PT_AV_PARAM] = "param_",
    [PT_AV_HTTP] = "http_",
    [PT_AV_SENT_HTTP] = "sent_http_",
    [PT_AV_UPSTREAM_HTTP] = "upstream_http_",
};

const char *const pt_alog_errors_names[] = {"always", "sampled", NULL};

static const char *const named_formats[] = {
    [PT_ALOG_COMBINED] = "$remote_addr - - [$time] \"$method $target $protocol\" $status $bytes_out "
                         "\"$referer\" \"$user_agent\"",
    [PT_ALOG_COMMON] = "$remote_addr - - [$time] \"$method $target $protocol\" $status $bytes_out",
    [PT_ALOG_JSON] = NULL,
};

/* format: json without fields: these, as before fields existed */
static const char *const json_default[] = {"time",          "remote_addr",     "method",        "target",
                                           "protocol",      "status",          "bytes_in",      "bytes_out",
                                           "request_time",  "route",           "request_id",    "host",
                                           "user_agent",    "referer",         "upstream_addr", "upstream_status",
                                           "upstream_time", "tls_protocol",    "tls_cipher",    "completion",
                                           "consumer"};

#define ESC_SLACK 8   /* an escape past a string's max, and its quotes */
#define NUM_MAX 40    /* a number, a time */

static int is_var_char(char c)
{
    return (c >= 'a' && c <= 'z') || c == '_' || (c >= '0' && c <= '9');
}

/* The most a variable writes (pt_accesslog_format's limits). */
static size_t var_max(int var)
{
    switch (var) {
    case PT_AV_TARGET:
        return PT_ALOG_TARGET_MAX + ESC_SLACK;
    case PT_AV_HTTP:
    case PT_AV_SENT_HTTP:
    case PT_AV_UPSTREAM_HTTP:
        return PT_ALOG_HDR_OUT_MAX + ESC_SLACK;
    case PT_AV_TIME:
    case PT_AV_TIME_ISO:
    case PT_AV_REMOTE_ADDR:
    case PT_AV_STATUS:
    case PT_AV_BYTES_IN:
    case PT_AV_BYTES_OUT:
    case PT_AV_REQUEST_TIME:
    case PT_AV_UPSTREAM_STATUS:
    case PT_AV_UPSTREAM_TIME:
    case PT_AV_UPSTREAM_CONNECT_TIME:
    case PT_AV_UPSTREAM_HEADER_TIME:
        return NUM_MAX + 32; /* a v6 address with its zone */
    default:
        return PT_ALOG_FIELD_MAX + ESC_SLACK;
    }
}

/* The header a header variable names, once per kind and name. */
static long hdr_slot(pt_conf_ctx_t *cc, pt_accesslog_conf_t *a, int kind, const char *name, size_t n)
{
    pt_alog_hdr_t *h = a->hdrs;
    for (size_t i = 0; i < a->nhdrs; i++)
        if (h[i].kind == kind && h[i].n == n && memcmp(h[i].name, name, n) == 0)
            return (long)i;
    pt_alog_hdr_t *more = pt_arena_alloc(cc->arena, (a->nhdrs + 1) * sizeof(*more));
    if (!more)
        return -1;
    if (a->nhdrs)
        memcpy(more, h, a->nhdrs * sizeof(*more));
    more[a->nhdrs] = (pt_alog_hdr_t){name, n, kind};
    a->hdrs = more;
    return (long)a->nhdrs++;
}

/* name[0..n) (without its $) as a segment: 0, or -1 when it is not a
 * variable (nothing said: the caller says where). */
static int parse_var(pt_conf_ctx_t *cc, pt_accesslog_conf_t *a, const char *name, size_t n, pt_alog_seg_t *seg)
{
    static const struct {
        const char *prefix;
        int var, kind;
    } prefixed[] = {{"param_", PT_AV_PARAM, -1},
                    {"http_", PT_AV_HTTP, PT_ALOG_HDR_REQ},
                    {"sent_http_", PT_AV_SENT_HTTP, PT_ALOG_HDR_SENT},
                    {"upstream_http_", PT_AV_UPSTREAM_HTTP, PT_ALOG_HDR_UPSTREAM}};
    for (int v = 0; v < PT_AV_PARAM; v++)
        if (strlen(pt_alog_var_names[v]) == n && memcmp(pt_alog_var_names[v], name, n) == 0) {
            *seg = (pt_alog_seg_t){.var = v};
            return 0;
        }
    for (size_t i = 0; i < sizeof(prefixed) / sizeof(prefixed[0]); i++) {
        size_t pl = strlen(prefixed[i].prefix);
        if (n <= pl || memcmp(name, prefixed[i].prefix, pl) != 0)
            continue;
        *seg = (pt_alog_seg_t){.var = prefixed[i].var, .name = name + pl, .nlen = n - pl};
        if (prefixed[i].kind >= 0) {
            long slot = hdr_slot(cc, a, prefixed[i].kind, name + pl, n - pl);
            if (slot < 0)
                return -1;
            seg->slot = (size_t)slot;
        }
        return 0;
    }
    return -1;
}

/* Glue (see pt_alog_seg_t): the n bytes at text, with PT_ALOG_PAD readable. */
static const char *glue_of(pt_conf_ctx_t *cc, const char *text, size_t n)
{
    char *g = pt_arena_zalloc(cc->arena, n > PT_ALOG_PAD ? n : PT_ALOG_PAD);
    if (g && n)
        memcpy(g, text, n);
    return g;
}

/* The end segment, whose glue (tail, n bytes, and a '\n') ends the line;
 * max is what the line's segments may take. */
static int finish(pt_conf_ctx_t *cc, pt_accesslog_conf_t *a, pt_alog_seg_t *segs, size_t k, const char *tail,
                  size_t n, size_t max)
{
    char *g = pt_arena_alloc(cc->arena, n + 1);
    if (!g)
        return -1;
    memcpy(g, tail, n);
    g[n] = '\n';
    segs[k] = (pt_alog_seg_t){.var = -2, .glue = glue_of(cc, g, n + 1), .glen = n + 1};
    a->compiled = segs;
    a->line_max = max + n + 1 + PT_ALOG_PAD;
    return segs[k].glue ? 0 : -1;
}

static int compile_template(pt_conf_ctx_t *cc, pt_accesslog_conf_t *a, const pt_node_t *fn, const char *tpl)
{
    size_t nseg = 1;
    for (const char *p = tpl; *p; p++)
        nseg += *p == '$';
    pt_alog_seg_t *segs = pt_arena_zalloc(cc->arena, (nseg + 1) * sizeof(*segs));
    if (!segs)
        return -1;
    for (const char *q = tpl; *q; q++)
        if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f) {
            pt_conf_error(cc, fn, "the access log format has a control byte (0x%02x) at offset %zu: each request "
                                  "is one line, and a log line carries no control bytes but tabs",
                          (unsigned char)*q, (size_t)(q - tpl));
            return -1;
        }
    size_t k = 0, max = 0;
    const char *p = tpl;
    for (;;) {
        const char *lit = p;
        while (*p && *p != '$')
            p++;
        if (!*p)
            return finish(cc, a, segs, k, lit, (size_t)(p - lit), max);
        const char *name = p + 1;
        const char *glue = glue_of(cc, lit, (size_t)(p - lit));
        p = name;
        while (is_var_char(*p))
            p++;
        if (parse_var(cc, a, name, (size_t)(p - name), &segs[k]) < 0) {
            const char *e = p;
            while ((*e >= 'A' && *e <= 'Z') || (*e >= 'a' && *e <= 'z') || (*e >= '0' && *e <= '9') || *e == '_')
                e++; /* the name as written, for the message */
            pt_conf_error(cc, fn, "unknown variable $%.*s in the access log format%s", (int)(e - name), name,
                          e > p ? " (variables are lower case)" : "");
            return -1;
        }
        if (!glue)
            return -1;
        segs[k].glue = glue;
        segs[k].glen = (size_t)(name - 1 - lit);
        max += segs[k].glen + var_max(segs[k].var);
        k++;
    }
}

/* format: json: fields (or the default set), each a variable's name
 * without its $; the key is the name ("time" is $time_iso8601's). */
static int compile_json(pt_conf_ctx_t *cc, pt_accesslog_conf_t *a, const pt_node_t *n)
{
    const pt_node_t *fl = pt_node_get(n, "fields");
    size_t nf = a->fields.n ? a->fields.n : sizeof(json_default) / sizeof(json_default[0]);
    pt_alog_seg_t *segs = pt_arena_zalloc(cc->arena, (nf + 1) * sizeof(*segs));
    const char **names = pt_arena_zalloc(cc->arena, nf * sizeof(*names));
    if (!segs || !names)
        return -1;
    size_t max = 0;
    int rc = 0;
    bool quoted = false; /* the field before is a string: its closing quote opens this glue */
    for (size_t i = 0; i < nf; i++) {
        const char *name = a->fields.n ? a->fields.v[i] : json_default[i];
        const pt_node_t *at = fl && fl->type == PT_NODE_SEQ && i < fl->nitems ? fl->items[i] : n;
        size_t len = strlen(name);
        if (len && name[0] == '$') /* "$status" is taken as "status" */
            name++, len--;
        int bad = !len;
        for (size_t j = 0; j < len && !bad; j++)
            bad = !is_var_char(name[j]);
        if (!bad && strcmp(name, "time") == 0)
            segs[i] = (pt_alog_seg_t){.var = PT_AV_TIME_ISO};
        else if (bad || parse_var(cc, a, name, len, &segs[i]) < 0) {
            pt_conf_error(cc, at, "unknown access log field \"%s\" (a variable of the format without its $: "
                                  "status, http_user_agent, sent_http_content_type, ...)",
                          name);
            rc = -1;
            continue;
        }
        names[i] = name;
        for (size_t j = 0; j < i && !rc; j++)
            if (names[j] && strcmp(names[j], name) == 0) {
                pt_conf_error(cc, at, "access log field \"%s\" is listed twice", name);
                rc = -1;
            }
        bool str = pt_alog_var_is_string(segs[i].var);
        char *key = pt_arena_alloc(cc->arena, len + 8);
        if (!key)
            return -1;
        int kl = sprintf(key, "%s%c\"%.*s\":%s", quoted ? "\"" : "", i ? ',' : '{', (int)len, name, str ? "\"" : "");
        segs[i].glue = glue_of(cc, key, (size_t)kl);
        segs[i].glen = (size_t)kl;
        if (!segs[i].glue)
            return -1;
        quoted = str;
        max += (size_t)kl + var_max(segs[i].var);
    }
    if (rc < 0)
        return rc;
    return finish(cc, a, segs, nf, quoted ? "\"}" : "}", quoted ? 2 : 1, max);
}

int pt_accesslog_compile(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    pt_accesslog_conf_t *a = obj;
    const pt_node_t *fn = pt_node_get(n, "format") ? pt_node_get(n, "format") : n;
    a->policy.cut = pt_accesslog_cut(a->policy.sample);
    if (strcmp(a->format, "combined") == 0)
        a->kind = PT_ALOG_COMBINED;
    else if (strcmp(a->format, "common") == 0)
        a->kind = PT_ALOG_COMMON;
    else if (strcmp(a->format, "json") == 0)
        a->kind = PT_ALOG_JSON;
    else if (strchr(a->format, '$'))
        a->kind = PT_ALOG_CUSTOM;
    else {
        pt_conf_error(cc, fn, "format \"%s\": expected combined, common, json, or a template with $variables",
                      a->format);
        return -1;
    }
    if (a->fields.n && a->kind != PT_ALOG_JSON) {
        pt_conf_error_key(cc, n, "fields", "fields go with format: json (a template names its own)");
        return -1;
    }
    if (a->kind == PT_ALOG_JSON)
        return compile_json(cc, a, n);
    return compile_template(cc, a, fn, a->kind == PT_ALOG_CUSTOM ? a->format : named_formats[a->kind]);
}

/* ---- sampling ---- */

uint64_t pt_accesslog_cut(double r)
{
    if (!(r > 0))
        return 0;
    if (r >= 1)
        return UINT64_MAX;
    return (uint64_t)ldexp(r, 64); /* below 2^64: r < 1 */
}

int pt_accesslog_set_ratio(pt_conf_ctx_t *cc, const pt_node_t *n, void *field)
{
    char *end = NULL;
    double v = n->type == PT_NODE_SCALAR && n->s[0] ? strtod(n->s, &end) : -1;
    if (!end || *end || !(v >= 0 && v <= 1)) {
        pt_conf_error(cc, n, "expected a ratio from 0 to 1 (0.1 keeps one request in ten), not %s%s%s",
                      n->type == PT_NODE_SCALAR ? "\"" : "", n->type == PT_NODE_SCALAR ? pt_node_text(n)
                                                                                    : pt_node_type_name(n),
                      n->type == PT_NODE_SCALAR ? "\"" : "");
        return -1;
    }
    *(double *)field = v;
    return 0;
}

void pt_accesslog_print_ratio(FILE *f, const void *field, const pt_list_t *prov)
{
    fprintf(f, "%.17g", *(const double *)field);
}

static const pt_directive_t route_keys[] = {
    {"sample", PT_T_CUSTOM, offsetof(pt_alog_policy_t, sample), NULL, 0, 0, NULL, NULL, NULL,
     pt_accesslog_set_ratio, pt_accesslog_print_ratio, 0, "ratio", "This route's access_log.sample."},
    {"sample_errors", PT_T_ENUM, offsetof(pt_alog_policy_t, sample_errors), NULL, 0, 0, pt_alog_errors_names,
     NULL, NULL, NULL, NULL, 0, NULL, "This route's access_log.sample_errors."},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL},
};
static const pt_section_t route_section = {"access_log", sizeof(pt_alog_policy_t), route_keys, NULL, NULL, NULL};

static bool is_word(const pt_node_t *n, const char *w)
{
    return n->type == PT_NODE_SCALAR && (n->plain || n->orig) && strcmp(n->s, w) == 0;
}

int pt_accesslog_set_route(pt_conf_ctx_t *cc, const pt_node_t *n, void *field)
{
    pt_alog_policy_t *p = field;
    *p = (pt_alog_policy_t){.node = n, .sample = -1, .sample_errors = -1};
    if (is_word(n, "true") || is_word(n, "false")) {
        p->off = is_word(n, "false");
        p->node = p->off ? n : NULL; /* true: as if unset */
        return 0;
    }
    if (n->type != PT_NODE_MAP) {
        pt_conf_error(cc, n, "expected false, true or a map (sample, sample_errors), not %s",
                      n->type == PT_NODE_SCALAR ? "a string" : pt_node_type_name(n));
        return -1;
    }
    if (pt_schema_load(cc, &route_section, n, p) < 0)
        return -1;
    p->cut = pt_accesslog_cut(p->sample);
    return 0;
}

void pt_accesslog_print_route(FILE *f, const void *field, const pt_list_t *prov)
{
    const pt_alog_policy_t *p = field;
    if (!p->node || p->off) {
        fputs(p->off ? "false" : "true", f);
        return;
    }
    fputc('{', f);
    bool first = true;
    if (p->sample >= 0) {
        pt_schema_put_key(f, "sample", first);
        pt_accesslog_print_ratio(f, &p->sample, prov);
        first = false;
    }
    if (p->sample_errors >= 0) {
        pt_schema_put_key(f, "sample_errors", first);
        fprintf(f, "\"%s\"", pt_alog_errors_names[p->sample_errors]);
        first = false;
    }
    fputs(first ? "}" : " }", f);
}

int pt_accesslog_set_admin(pt_conf_ctx_t *cc, const pt_node_t *n, void *field)
{
    if (is_word(n, "false")) {
        *(char **)field = NULL;
        return 0;
    }
    if (n->type != PT_NODE_SCALAR || !n->s[0] || is_word(n, "true")) {
        pt_conf_error(cc, n, "expected the path of the admin API's access log, or false");
        return -1;
    }
    *(char **)field = n->s;
    return 0;
}

void pt_accesslog_print_admin(FILE *f, const void *field, const pt_list_t *prov)
{
    const char *path = *(char *const *)field;
    fputs(path ? path : "false", f);
}
