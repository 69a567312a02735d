/* google.api.http rules (http_rule.h). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "portico/http_rule.h"
#include "portico/pb.h"

#define MAX_SEGS 64
#define MAX_VARS 16
#define MAX_DEPTH 16

size_t pt_http_field_path(const pt_pb_msg_t *m, const char *path, size_t len, const pt_pb_fdesc_t **out, size_t max)
{
    size_t k = 0, i = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && path[j] != '.')
            j++;
        if (!m || k == max || j == i)
            return 0;
        const pt_pb_fdesc_t *f = pt_pb_msg_field_named(m, path + i, j - i);
        if (!f)
            return 0;
        out[k++] = f;
        if (j == len)
            return k;
        if (f->type != PT_PB_MESSAGE || f->repeated)
            return 0;
        m = f->msg;
        i = j + 1;
    }
    return 0;
}

static bool is_ident(const char *p, size_t n)
{
    if (!n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || (i && ch >= '0' && ch <= '9') ||
              (i && ch == '.' && p[i - 1] != '.' && i + 1 < n)))
            return false;
    }
    return true;
}

/* A literal: the characters a path segment may hold, no template syntax. */
static bool is_literal(const char *p, size_t n)
{
    if (!n)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f || strchr("/{}*=?#:%", p[i]))
            return false;
    return true;
}

typedef struct tparse {
    pt_arena_t *a;
    const char *s;
    size_t i, n;
    pt_tmpl_seg_t segs[MAX_SEGS];
    size_t nsegs;
    pt_tmpl_var_t vars[MAX_VARS];
    size_t nvars;
    const char *err;
} tparse_t;

/* One segment (not a variable) at t->i, up to '/', '}' or the end. */
static bool seg(tparse_t *t)
{
    size_t j = t->i;
    while (j < t->n && t->s[j] != '/' && t->s[j] != '}' && t->s[j] != ':')
        j++;
    if (t->nsegs == MAX_SEGS) {
        t->err = "more than 64 segments";
        return false;
    }
    pt_tmpl_seg_t *sg = &t->segs[t->nsegs];
    if (j - t->i == 1 && t->s[t->i] == '*') {
        sg->kind = PT_SEG_STAR;
    } else if (j - t->i == 2 && t->s[t->i] == '*' && t->s[t->i + 1] == '*') {
        sg->kind = PT_SEG_DSTAR;
    } else if (is_literal(t->s + t->i, j - t->i)) {
        sg->kind = PT_SEG_LIT;
        if (!(sg->lit = pt_arena_strndup(t->a, t->s + t->i, j - t->i))) {
            t->err = "out of memory";
            return false;
        }
    } else {
        t->err = "a segment is not a literal, '*', '**' or a variable";
        return false;
    }
    t->nsegs++;
    t->i = j;
    return true;
}

static bool var(tparse_t *t)
{
    size_t j = ++t->i; /* past '{' */
    while (j < t->n && t->s[j] != '=' && t->s[j] != '}')
        j++;
    if (j == t->n || !is_ident(t->s + t->i, j - t->i)) {
        t->err = "a variable's field path is not a dotted name";
        return false;
    }
    if (t->nvars == MAX_VARS) {
        t->err = "more than 16 variables";
        return false;
    }
    pt_tmpl_var_t *v = &t->vars[t->nvars++];
    if (!(v->field = pt_arena_strndup(t->a, t->s + t->i, j - t->i))) {
        t->err = "out of memory";
        return false;
    }
    v->first = (uint16_t)t->nsegs;
    t->i = j;
    if (t->s[j] == '}') { /* {x} is {x=*} */
        if (t->nsegs == MAX_SEGS) {
            t->err = "more than 64 segments";
            return false;
        }
        t->segs[t->nsegs++].kind = PT_SEG_STAR;
    } else {
        t->i++;
        for (;;) {
            if (t->i < t->n && t->s[t->i] == '{') {
                t->err = "a variable inside a variable";
                return false;
            }
            if (!seg(t))
                return false;
            if (t->i < t->n && t->s[t->i] == '/') {
                t->i++;
                continue;
            }
            break;
        }
        if (t->i == t->n || t->s[t->i] != '}') {
            t->err = "a variable is not closed with '}'";
            return false;
        }
    }
    t->i++; /* past '}' */
    v->last = (uint16_t)t->nsegs;
    return true;
}

static bool parse_tmpl(tparse_t *t, pt_http_binding_t *b)
{
    if (!t->n || t->s[0] != '/') {
        t->err = "a template starts with '/'";
        return false;
    }
    t->i = 1;
    for (;;) {
        if (t->i < t->n && t->s[t->i] == '{') {
            if (!var(t))
                return false;
        } else if (!seg(t)) {
            return false;
        }
        if (t->i < t->n && t->s[t->i] == '/') {
            t->i++;
            continue;
        }
        break;
    }
    if (t->i < t->n && t->s[t->i] == ':') {
        if (!is_literal(t->s + t->i + 1, t->n - t->i - 1)) {
            t->err = "the verb after ':' is not a literal";
            return false;
        }
        b->verb = pt_arena_strndup(t->a, t->s + t->i + 1, t->n - t->i - 1);
        t->i = t->n;
    }
    if (t->i != t->n) {
        t->err = "unexpected character";
        return false;
    }
    for (size_t i = 0; i + 1 < t->nsegs; i++)
        if (t->segs[i].kind == PT_SEG_DSTAR) {
            t->err = "'**' must be the last segment";
            return false;
        }
    b->segs = pt_arena_alloc(t->a, t->nsegs * sizeof(*b->segs));
    b->vars = pt_arena_alloc(t->a, (t->nvars ? t->nvars : 1) * sizeof(*b->vars));
    if (!b->segs || !b->vars) {
        t->err = "out of memory";
        return false;
    }
    memcpy(b->segs, t->segs, t->nsegs * sizeof(*b->segs));
    memcpy(b->vars, t->vars, t->nvars * sizeof(*b->vars));
    b->nsegs = t->nsegs;
    b->nvars = t->nvars;
    for (size_t i = 0; i < t->nsegs; i++)
        b->literals += t->segs[i].kind == PT_SEG_LIT;
    return true;
}

static bool scalar(const pt_pb_fdesc_t *f)
{
    return f->type != PT_PB_MESSAGE || (f->msg->wkt >= PT_WKT_DOUBLE && f->msg->wkt <= PT_WKT_BYTES) ||
           f->msg->wkt == PT_WKT_TIMESTAMP || f->msg->wkt == PT_WKT_DURATION || f->msg->wkt == PT_WKT_FIELDMASK;
}

int pt_http_binding_make(pt_arena_t *a, const pt_pb_method_t *m, const char *http_method, const char *tmpl,
                         const char *body, const char *response_body, pt_http_binding_t *b, char *err,
                         size_t errlen)
{
    memset(b, 0, sizeof(*b));
    tparse_t t = {.a = a, .s = tmpl, .n = strlen(tmpl)};
    if (!parse_tmpl(&t, b)) {
        snprintf(err, errlen, "%s: template \"%s\": %s at %zu", m->path + 1, tmpl, t.err, t.i);
        return -1;
    }
    b->m = m;
    b->http_method = http_method;
    b->pattern = tmpl;
    const pt_pb_fdesc_t *fs[MAX_DEPTH];
    for (size_t i = 0; i < b->nvars; i++) {
        const char *fp = b->vars[i].field;
        size_t k = pt_http_field_path(m->in, fp, strlen(fp), fs, MAX_DEPTH);
        if (!k || fs[k - 1]->repeated || !scalar(fs[k - 1])) {
            snprintf(err, errlen, "%s: template \"%s\": variable %s is not a field of %s that holds one value",
                     m->path + 1, tmpl, fp, m->in->name);
            return -1;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(b->vars[j].field, fp) == 0) {
                snprintf(err, errlen, "%s: template \"%s\": variable %s is there twice", m->path + 1, tmpl, fp);
                return -1;
            }
        if (!(b->vars[i].fs = pt_arena_alloc(a, k * sizeof(*fs)))) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        memcpy(b->vars[i].fs, fs, k * sizeof(*fs));
        b->vars[i].nfs = k;
    }
    if (body && *body && strcmp(body, "*") != 0) {
        if (pt_http_field_path(m->in, body, strlen(body), fs, MAX_DEPTH) != 1) {
            snprintf(err, errlen, "%s: body \"%s\" is not a field of %s", m->path + 1, body, m->in->name);
            return -1;
        }
        b->body_f = fs[0];
    }
    b->body = body && *body ? body : NULL;
    if (response_body && *response_body) {
        if (pt_http_field_path(m->out, response_body, strlen(response_body), fs, MAX_DEPTH) != 1) {
            snprintf(err, errlen, "%s: response_body \"%s\" is not a field of %s", m->path + 1, response_body,
                     m->out->name);
            return -1;
        }
        b->response_body = response_body;
        b->response_f = fs[0];
    }
    return 0;
}

/* ---- the HttpRule message ---- */

static const char *const rule_methods[] = {NULL, NULL, "GET", "PUT", "POST", "DELETE", "PATCH"};

static int rule_one(pt_arena_t *a, const pt_pb_method_t *m, const uint8_t *rule, size_t n, pt_http_binding_t *out,
                    size_t max, bool top, char *err, size_t errlen)
{
    pt_pb_reader_t r = pt_pb_reader(rule, n);
    pt_pb_field_t f;
    int k;
    const char *method = NULL, *tmpl = NULL, *body = NULL, *rbody = NULL;
    while ((k = pt_pb_next(&r, &f)) > 0) {
        if (f.wt != PT_PB_LEN)
            continue;
        char *s = NULL;
        if (f.num != 11 && f.num != 8 && !(s = pt_arena_strndup(a, (const char *)f.p, f.n)))
            goto oom;
        if (s && strlen(s) != f.n) {
            snprintf(err, errlen, "%s: its http rule holds a NUL byte", m->path + 1);
            return -1;
        }
        if (f.num >= 2 && f.num <= 6) {
            method = rule_methods[f.num];
            tmpl = s;
        } else if (f.num == 7) {
            body = s;
        } else if (f.num == 12) {
            rbody = s;
        } else if (f.num == 8) { /* CustomHttpPattern: kind (1), path (2) */
            pt_pb_reader_t cr = pt_pb_reader(f.p, f.n);
            pt_pb_field_t cf;
            while (pt_pb_next(&cr, &cf) > 0) {
                if (cf.wt != PT_PB_LEN)
                    continue;
                char *cs = pt_arena_strndup(a, (const char *)cf.p, cf.n);
                if (!cs)
                    goto oom;
                if (cf.num == 1)
                    method = cs;
                else if (cf.num == 2)
                    tmpl = cs;
            }
            if (method && (!*method || strlen(method) > 32 || strspn(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(method))) {
                snprintf(err, errlen, "%s: custom method \"%s\" is not an HTTP method in capitals", m->path + 1, method);
                return -1;
            }
        }
    }
    if (k < 0) {
        snprintf(err, errlen, "%s: its google.api.http option is not an HttpRule", m->path + 1);
        return -1;
    }
    if (!method || !tmpl) {
        snprintf(err, errlen, "%s: its http rule has no get, put, post, delete, patch or custom", m->path + 1);
        return -1;
    }
    if (!max) {
        snprintf(err, errlen, "%s: more than 16 bindings", m->path + 1);
        return -1;
    }
    if (pt_http_binding_make(a, m, method, tmpl, body, rbody, out, err, errlen) < 0)
        return -1;
    int count = 1;
    if (!top)
        return count;
    r = pt_pb_reader(rule, n);
    while (pt_pb_next(&r, &f) > 0)
        if (f.wt == PT_PB_LEN && f.num == 11) { /* additional_bindings: one level only */
            int c = rule_one(a, m, f.p, f.n, out + count, max - (size_t)count, false, err, errlen);
            if (c < 0)
                return -1;
            count += c;
        }
    return count;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

int pt_http_rule_parse(pt_arena_t *a, const pt_pb_method_t *m, const uint8_t *rule, size_t n,
                       pt_http_binding_t *out, size_t max, char *err, size_t errlen)
{
    return rule_one(a, m, rule, n, out, max, true, err, errlen);
}

/* ---- matching ---- */

/* Percent-decodes n bytes of p into out (room for n); keep_slash: "%2F"
 * stays as it is.  -1 for a bad escape. */
static long pct_decode(const char *p, size_t n, char *out, bool keep_slash)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '%') {
            out[o++] = p[i];
            continue;
        }
        int h, l;
        if (i + 2 >= n || (h = pt_hexval(p[i + 1])) < 0 || (l = pt_hexval(p[i + 2])) < 0)
            return -1;
        if (keep_slash && h == 2 && (l == 15)) {
            memcpy(out + o, p + i, 3);
            o += 3;
        } else {
            out[o++] = (char)(h * 16 + l);
        }
        i += 2;
    }
    return (long)o;
}

bool pt_http_binding_match(const pt_http_binding_t *b, pt_str_t path, pt_arena_t *a, pt_str_t *vals)
{
    if (!path.n || path.p[0] != '/')
        return false;
    pt_str_t rest = {path.p + 1, path.n - 1};
    if (b->verb) {
        size_t vn = strlen(b->verb);
        if (rest.n < vn + 1 || rest.p[rest.n - vn - 1] != ':' || memcmp(rest.p + rest.n - vn, b->verb, vn) != 0)
            return false;
        rest.n -= vn + 1;
    }
    pt_str_t ps[MAX_SEGS + 1];
    size_t np = 0;
    for (size_t i = 0;;) {
        size_t j = i;
        while (j < rest.n && rest.p[j] != '/')
            j++;
        if (np == MAX_SEGS + 1)
            return false;
        ps[np++] = (pt_str_t){rest.p + i, j - i};
        if (j == rest.n)
            break;
        i = j + 1;
    }
    bool dstar = b->nsegs && b->segs[b->nsegs - 1].kind == PT_SEG_DSTAR;
    size_t fixed = dstar ? b->nsegs - 1 : b->nsegs;
    if (dstar ? np < fixed : np != fixed)
        return false;
    char buf[4096];
    for (size_t i = 0; i < fixed; i++) {
        const pt_tmpl_seg_t *sg = &b->segs[i];
        if (sg->kind == PT_SEG_STAR) {
            if (!ps[i].n)
                return false;
            continue;
        }
        if (ps[i].n > sizeof(buf))
            return false;
        long d = pct_decode(ps[i].p, ps[i].n, buf, false);
        if (d < 0 || (size_t)d != strlen(sg->lit) || memcmp(buf, sg->lit, (size_t)d) != 0)
            return false;
    }
    for (size_t v = 0; v < b->nvars; v++) {
        size_t first = b->vars[v].first, last = b->vars[v].last;
        if (dstar && last == b->nsegs)
            last = np; /* the variable holds "**": the rest of the path */
        const char *start = first < last ? ps[first].p : "";
        size_t len = first < last ? (size_t)(ps[last - 1].p + ps[last - 1].n - start) : 0;
        char *o = pt_arena_alloc(a, len + 1);
        if (!o)
            return false;
        long d = pct_decode(start, len, o, last - first > 1 || (dstar && b->vars[v].last == b->nsegs));
        if (d < 0)
            return false;
        o[d] = '\0';
        vals[v] = (pt_str_t){o, (size_t)d};
    }
    return true;
}
