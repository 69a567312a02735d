/* Compiling access_log.format: a named format or a $variable template
 * becomes an array of segments, so formatting a line is a loop without
 * any parsing. */
#include "config.h"

#include <string.h>

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
    [PT_AV_PARAM] = "param_",
};

static const char *const named_formats[] = {
    [PT_ALOG_COMBINED] = "$remote_addr - - [$time] \"$method $target $protocol\" $status $bytes_out "
                         "\"$referer\" \"$user_agent\"",
    [PT_ALOG_COMMON] = "$remote_addr - - [$time] \"$method $target $protocol\" $status $bytes_out",
    [PT_ALOG_JSON] = NULL,
};

static int is_var_char(char c)
{
    return (c >= 'a' && c <= 'z') || c == '_' || (c >= '0' && c <= '9');
}

int pt_accesslog_compile(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    pt_accesslog_conf_t *a = obj;
    const pt_node_t *fn = pt_node_get(n, "format") ? pt_node_get(n, "format") : n;
    const char *tpl;
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
    if (a->kind == PT_ALOG_JSON)
        return 0;
    tpl = a->kind == PT_ALOG_CUSTOM ? a->format : named_formats[a->kind];
    size_t nseg = 1;
    for (const char *p = tpl; *p; p++)
        nseg += *p == '$' ? 2 : 0;
    pt_alog_seg_t *segs = pt_arena_zalloc(cc->arena, (nseg + 1) * sizeof(*segs));
    if (!segs)
        return -1;
    size_t k = 0;
    const char *p = tpl;
    while (*p) {
        const char *lit = p;
        while (*p && *p != '$')
            p++;
        if (p > lit)
            segs[k++] = (pt_alog_seg_t){.var = -1, .lit = lit, .len = (size_t)(p - lit)};
        if (!*p)
            break;
        const char *name = ++p;
        while (is_var_char(*p))
            p++;
        int var = -1;
        for (int v = 0; v < PT_AV__COUNT; v++)
            if (strlen(pt_alog_var_names[v]) == (size_t)(p - name) &&
                memcmp(pt_alog_var_names[v], name, (size_t)(p - name)) == 0)
                var = v;
        if (var < 0 && p - name > 6 && memcmp(name, "param_", 6) == 0) {
            segs[k++] = (pt_alog_seg_t){.var = PT_AV_PARAM, .lit = name + 6, .len = (size_t)(p - name - 6)};
            continue; /* a route parameter */
        }
        if (var < 0 || var == PT_AV_PARAM) {
            pt_conf_error(cc, fn, "unknown variable $%.*s in the access log format", (int)(p - name), name);
            return -1;
        }
        segs[k++] = (pt_alog_seg_t){.var = var};
    }
    segs[k] = (pt_alog_seg_t){.var = -2};
    a->compiled = segs;
    return 0;
}
