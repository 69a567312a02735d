/* Compiling one route at load time: validate its match, and prebuild the
 * head of a respond route's answer so that serving it costs one writev. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "portico/conf.h"
#include "portico/config.h"
#include "portico/config-t.h"
#include "portico/h1_parser.h"
#include "portico/http.h"
#include "portico/path.h"
#include "portico/route_conf.h"
#include "portico/schema.h"

static const pt_node_t *item_node(const pt_node_t *match, const char *key, size_t i)
{
    const pt_node_t *l = pt_node_get(match, key);
    return l && l->type == PT_NODE_SEQ && i < l->nitems ? l->items[i] : match;
}

static int check_host(pt_conf_ctx_t *cc, const pt_node_t *n, char *h)
{
    char *p = h;
    if (p[0] == '*' && p[1] == '.')
        p += 2;
    if (!*p) {
        pt_conf_error(cc, n, "empty host name");
        return -1;
    }
    for (; *p; p++) {
        *p = pt_lower(*p);
        if (*p == ':') {
            pt_conf_error(cc, n, "host \"%s\" has a port; hosts match without the port", h);
            return -1;
        }
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_')) {
            pt_conf_error(cc, n, "invalid character '%c' in host \"%s\" (only *.name wildcards are allowed)",
                          *p, h);
            return -1;
        }
    }
    return 0;
}

static int check_path(pt_conf_ctx_t *cc, const pt_node_t *n, const char *p, void **re)
{
    if (p[0] == '~') {
        *re = pt_config_regex(cc, n, p + 1);
        return *re ? 0 : -1;
    }
    if (p[0] != '/') {
        pt_conf_error(cc, n, "a path starts with /, not \"%s\"", p);
        return -1;
    }
    for (const char *s = p; *s; s++) {
        if ((unsigned char)*s <= 0x20 || *s == '?' || *s == '#' || (unsigned char)*s >= 0x7f) {
            pt_conf_error(cc, n, "invalid character in path \"%s\"", p);
            return -1;
        }
        if (s[0] == '/' && (s[1] == ':' || s[1] == '*')) {
            const char *name = s + 2, *e = name;
            while (*e && *e != '/')
                e++;
            if (s[1] == ':' && e == name) {
                pt_conf_error(cc, n, "a :parameter needs a name in \"%s\"", p);
                return -1;
            }
            if (s[1] == '*' && *e) {
                pt_conf_error(cc, n, "* must be the last segment of \"%s\"", p);
                return -1;
            }
            s = e - 1;
        } else if (*s == '*' || (*s == ':' && s[-1] == '/')) {
            pt_conf_error(cc, n, "* and : start a whole segment in \"%s\"", p);
            return -1;
        }
    }
    /* request paths are matched in their normal form (path.h), with an
     * escaped slash kept at most: a path written otherwise never matches */
    size_t len = strlen(p);
    char norm[len + 1];
    long nl = pt_path_normalize((pt_str_t){p, len}, norm, PT_SLASHES_KEEP);
    if (nl < 0) {
        pt_conf_error(cc, n, "\"%s\" is no request path (a bad %%-escape, %%00, or \"..\" above the root)", p);
        return -1;
    }
    if ((size_t)nl != len || memcmp(norm, p, len) != 0) {
        pt_conf_error(cc, n, "\"%s\" never matches: request paths are matched in normal form, so write \"%.*s\"", p,
                      (int)nl, norm);
        return -1;
    }
    return 0;
}

/* Can a path that pattern pat matches begin with strip_prefix sp, as the
 * proxy strips it (proxy_headers.c: at a segment boundary, or anywhere
 * when sp ends with /)?  Segment by segment: a literal must be sp's, a
 * :param takes any segment, a * or *rest anything from there on. */
static bool may_strip(const char *pat, const char *sp)
{
    size_t n = strlen(sp);
    bool slash = n > 1 && sp[n - 1] == '/'; /* "/api/": more must follow "/api" */
    if (slash)
        n--;
    if (pat[0] == '~' || n <= 1)
        return true; /* a regex: no telling; "/": every path */
    const char *p = pat, *q = sp, *qe = sp + n;
    while (q < qe) { /* p and q are at a '/' */
        if (*p != '/')
            return false; /* the pattern ends before sp does */
        const char *ps = p + 1, *pe = strchrnul(ps, '/'), *qs = q + 1, *qn = memchr(qs, '/', (size_t)(qe - qs));
        if (!qn)
            qn = qe;
        if (*ps == '*')
            return true;
        if (*ps == ':' ? qn == qs : (pe - ps != qn - qs || memcmp(ps, qs, (size_t)(pe - ps)) != 0))
            return false;
        p = pe;
        q = qn;
    }
    return !slash || *p == '/';
}

/* Is a prefix written as request paths are compared: no empty, "." or
 * ".." segment, no %-escape? */
static bool normal_prefix(const char *sp)
{
    if (strcasestr(sp, "%2f") || strcasestr(sp, "%2e"))
        return false; /* an escaped slash or dot never stays escaped, or never passes */
    for (const char *s = sp; *s == '/';) {
        const char *e = strchr(s + 1, '/');
        size_t len = e ? (size_t)(e - s - 1) : strlen(s + 1);
        if ((len == 0 && e) || (len == 1 && s[1] == '.') || (len == 2 && s[1] == '.' && s[2] == '.'))
            return false;
        if (!e)
            break;
        s = e;
    }
    return true;
}

/* strip_prefix that none of the route's paths can begin with is a
 * mistake (a prefix spelt otherwise than the paths), never a choice. */
static int check_strip(pt_conf_ctx_t *cc, const pt_node_t *n, const pt_route_conf_t *r)
{
    char shown[256] = "";
    size_t off = 0;
    for (size_t i = 0; i < r->match.paths.n; i++) {
        if (may_strip(r->match.paths.v[i], r->strip_prefix))
            return 0;
        if (off < sizeof(shown))
            off += (size_t)snprintf(shown + off, sizeof(shown) - off, "%s%s", i ? ", " : "", r->match.paths.v[i]);
    }
    if (!r->match.paths.n)
        return 0; /* any path */
    pt_conf_error_key(cc, n, "strip_prefix", "\"%s\" can never be stripped: no path of the route (%s) begins with it",
                      r->strip_prefix, shown);
    return -1;
}

/* match.headers, query and cookies: exact values, or "~re". */
static int compile_predicates(pt_conf_ctx_t *cc, pt_route_conf_t *r)
{
    const pt_kvlist_t *lists[] = {&r->match.headers, &r->match.query, &r->match.cookies};
    static const char *const keys[] = {"headers", "query", "cookies"};
    size_t n = r->match.headers.n + r->match.query.n + r->match.cookies.n;
    if (!n)
        return 0;
    r->preds = pt_arena_zalloc(cc->arena, n * sizeof(pt_predicate_t));
    if (!r->preds)
        return -1;
    int rc = 0;
    for (int k = 0; k < 3; k++) {
        const pt_node_t *map = pt_node_get(r->match.node, keys[k]);
        for (size_t i = 0; i < lists[k]->n; i++) {
            const pt_kv_t *kv = &lists[k]->v[i];
            pt_predicate_t *p = &r->preds[r->npreds++];
            p->kind = k;
            p->name = kv->key;
            p->value = kv->value;
            if (k == PT_PRED_HEADER)
                for (char *c = p->name; *c; c++)
                    *c = pt_lower(*c);
            if (kv->value[0] == '~') {
                const pt_node_t *at = map && map->type == PT_NODE_MAP && i < map->npairs ? map->pairs[i].value : map;
                p->re = pt_config_regex(cc, at, kv->value + 1);
                if (!p->re)
                    rc = -1;
            }
        }
    }
    return rc;
}

static int check_header(pt_conf_ctx_t *cc, const pt_node_t *hn, const pt_kv_t *kv)
{
    static const char *const reserved[] = {"content-length", "transfer-encoding", "connection", "date",
                                           "keep-alive", "upgrade", NULL};
    const pt_node_t *at = hn;
    for (size_t i = 0; hn && i < hn->npairs; i++)
        if (strcmp(hn->pairs[i].key->s, kv->key) == 0)
            at = hn->pairs[i].key;
    if (!*kv->key) {
        pt_conf_error(cc, at, "empty header name");
        return -1;
    }
    for (const char *p = kv->key; *p; p++)
        if (!pt_http_is_tchar((unsigned char)*p)) {
            pt_conf_error(cc, at, "invalid character in header name \"%s\"", kv->key);
            return -1;
        }
    for (int i = 0; reserved[i]; i++)
        if (strcasecmp(kv->key, reserved[i]) == 0) {
            pt_conf_error(cc, at, "header \"%s\" is set by Portico and cannot be configured", kv->key);
            return -1;
        }
    for (const char *p = kv->value; *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\t') {
            pt_conf_error(cc, at, "header \"%s\": control characters are not allowed in a value", kv->key);
            return -1;
        }
    return 0;
}

static int build_response(pt_conf_ctx_t *cc, pt_route_conf_t *r)
{
    const pt_node_t *hn = pt_node_get(r->respond.node, "headers");
    bool has_ctype = false;
    size_t len = 64 + 32;
    for (size_t i = 0; i < r->respond.headers.n; i++) {
        const pt_kv_t *kv = &r->respond.headers.v[i];
        if (check_header(cc, hn, kv))
            return -1;
        has_ctype |= strcasecmp(kv->key, "content-type") == 0;
        len += strlen(kv->key) + strlen(kv->value) + 4;
    }
    if (!r->respond.body)
        r->respond.body = "";
    char *head = pt_arena_alloc(cc->arena, len + 64);
    if (!head)
        return -1;
    int st = (int)r->respond.status;
    size_t off = (size_t)snprintf(head, len + 64, "HTTP/1.1 %d %s\r\nServer: portico\r\n", st,
                                  pt_http_reason(st));
    if (!has_ctype)
        off += (size_t)snprintf(head + off, len + 64 - off, "Content-Type: text/plain\r\n");
    for (size_t i = 0; i < r->respond.headers.n; i++)
        off += (size_t)snprintf(head + off, len + 64 - off, "%s: %s\r\n", r->respond.headers.v[i].key,
                                r->respond.headers.v[i].value);
    off += (size_t)snprintf(head + off, len + 64 - off, "Content-Length: %zu\r\n", strlen(r->respond.body));
    r->resp_head = head;
    r->resp_head_len = off;
    return 0;
}

/* Visible ASCII only (what a Host field or a path may hold here). */
static bool visible(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

int pt_route_compile(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    pt_route_conf_t *r = obj;
    int rc = 0;
    if (!r->name)
        r->name = pt_arena_strndup(cc->arena, cc->path, cc->path_len);
    if (r->upstream && r->respond.node) {
        pt_conf_error_key(cc, n, "respond", "a route has either upstream or respond, not both");
        rc = -1;
    } else if (!r->upstream && !r->respond.node) {
        pt_conf_error(cc, n, "a route needs upstream or respond");
        rc = -1;
    }
    const pt_node_t *m = r->match.node;
    for (size_t i = 0; i < r->match.methods.n; i++) {
        const char *name = r->match.methods.v[i];
        unsigned bit = pt_http_method(pt_str_from(name));
        if (!bit) {
            char up[32];
            size_t k = 0;
            for (; name[k] && k < sizeof(up) - 1; k++)
                up[k] = (char)((name[k] >= 'a' && name[k] <= 'z') ? name[k] - 32 : name[k]);
            up[k] = '\0';
            if (pt_http_method(pt_str_from(up)))
                pt_conf_error(cc, item_node(m, "methods", i), "unknown method \"%s\"; did you mean \"%s\"?", name,
                              up);
            else
                pt_conf_error(cc, item_node(m, "methods", i), "unknown method \"%s\"", name);
            rc = -1;
        }
        r->methods_mask |= bit;
    }
    for (size_t i = 0; i < r->match.hosts.n; i++)
        rc |= check_host(cc, item_node(m, "hosts", i), r->match.hosts.v[i]);
    r->path_re = pt_arena_zalloc(cc->arena, (r->match.paths.n + 1) * sizeof(void *));
    for (size_t i = 0; i < r->match.paths.n && r->path_re; i++)
        rc |= check_path(cc, item_node(m, "paths", i), r->match.paths.v[i], &r->path_re[i]);
    rc |= compile_predicates(cc, r);
    if (r->strip_prefix && r->strip_prefix[0] != '/') {
        pt_conf_error_key(cc, n, "strip_prefix", "must start with /");
        rc = -1;
    }
    if (r->strip_prefix && !visible(r->strip_prefix)) {
        pt_conf_error_key(cc, n, "strip_prefix", "only visible characters: no space or control character");
        rc = -1;
    }
    if (rc == 0 && r->strip_prefix && !normal_prefix(r->strip_prefix)) {
        /* request paths are compared in their normal form: this one would
         * never be found in them */
        pt_conf_error_key(cc, n, "strip_prefix", "\"%s\" is not in normal form (no \"//\", \".\" or \"..\" "
                                                 "segment, no %%2F or %%2E): no request path begins with it",
                          r->strip_prefix);
        rc = -1;
    }
    if (rc == 0 && r->strip_prefix && strcmp(r->strip_prefix, "/") == 0)
        pt_conf_warn(cc, pt_node_get(n, "strip_prefix"), "strip_prefix \"/\" strips nothing");
    if (rc == 0 && r->strip_prefix)
        rc = check_strip(cc, n, r);
    if (pt_node_get(n, "rewrite_location") && !r->strip_prefix)
        pt_conf_warn(cc, pt_node_get(n, "rewrite_location"), "rewrite_location is used only with strip_prefix");
    if (r->upstream_host && !pt_h1_valid_host(pt_str_from(r->upstream_host))) {
        /* it becomes the Host field of every request: held to what a
         * client's Host must be (a CR or LF would start a field of its own) */
        pt_conf_error_key(cc, n, "upstream_host", "\"%s\" is not a host name, IPv4 or [IPv6] address with an "
                                                  "optional :port", r->upstream_host);
        rc = -1;
    }
    if (rc == 0 && r->respond.node)
        rc = build_response(cc, r);
    return rc;
}
