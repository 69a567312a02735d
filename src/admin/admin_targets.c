/* The admin API's run-time target changes (runtime.c keeps them):
 *
 *   PATCH  /upstreams/NAME/targets/ADDRESS   {"weight": N} and/or {"state": "up"|"drain"|"down"}
 *   POST   /upstreams/NAME/targets           {"address": "IP:PORT", "weight": N}
 *          (weight: 100 if absent, or the file's for a file target deleted earlier)
 *   DELETE /upstreams/NAME/targets/ADDRESS
 *
 * NAME and ADDRESS may be %-encoded ("%5B::1%5D:8080").  ADDRESS is a
 * target's address as the file writes it (a numeric one in any spelling
 * that means the same) or as it was added.  A target added here has a
 * numeric address: a host name would need DNS, which the admin request
 * must not wait for.  Answers are JSON: the target as it now is, or
 * {"error": "..."}.  Every change is logged at notice level with who
 * made it and what it was before. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "portico/admin.h"
#include "portico/arena.h"
#include "portico/conn.h"
#include "portico/http.h"
#include "portico/json.h"
#include "portico/log.h"
#include "portico/request.h"
#include "portico/runtime.h"
#include "portico/secret.h"
#include "portico/worker.h"

#define MAX_BODY 4096 /* {"address": "[ffff:...]:65535", "weight": 10000} needs ~80 */

static void answer(pt_conn_t *c, int status, const char *json, const char *extra)
{
    pt_req_respond(c, status, "application/json", json, strlen(json), extra, false);
}

static void fail(pt_conn_t *c, int status, const char *why)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", why);
    answer(c, status, body, NULL);
}

bool pt_admin_body_ready(const pt_conn_t *c, const pt_h1_req_t *req, size_t head_len)
{
    if (req->chunked || req->content_length <= 0 || req->content_length > MAX_BODY)
        return true; /* none, or answered without it (411, 413) */
    return (int64_t)(c->ilen - c->ipos - head_len) >= req->content_length;
}

/* %-decodes a path segment into buf: false when it does not fit, has a
 * bad escape, or decodes to a control character. */
static bool decode(pt_str_t s, char *buf, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; i < s.n; i++) {
        unsigned ch = (unsigned char)s.p[i];
        if (ch == '%') {
            int hi = i + 2 < s.n ? pt_hexval(s.p[i + 1]) : -1, lo = i + 2 < s.n ? pt_hexval(s.p[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return false;
            ch = (unsigned)(hi << 4 | lo);
            i += 2;
        }
        if (ch < 0x20 || ch == 0x7f || n + 1 >= size)
            return false;
        buf[n++] = (char)ch;
    }
    buf[n] = '\0';
    return n > 0;
}

/* Who asked, for the log: the client and how it was let in. */
static const char *who(pt_conn_t *c, char *buf, size_t size)
{
    char peer[80];
    snprintf(buf, size, "%s (%s)", pt_conn_peer_name(c, peer, sizeof(peer)),
             c->w->conf->admin.token ? "with the admin token" : "loopback, no admin token set");
    return buf;
}

/* A configured name in JSON: ${NAME} values masked, quotes and
 * backslashes escaped, control characters as '?'. */
static void json_name(char *out, size_t size, const char *s)
{
    char buf[PT_RT_NAME_MAX + 64];
    s = pt_secret_masked(s, buf, sizeof(buf));
    size_t n = 0;
    for (; *s && n + 3 < size; s++) {
        if (*s == '"' || *s == '\\')
            out[n++] = '\\';
        out[n++] = (unsigned char)*s < 0x20 ? '?' : *s;
    }
    out[n] = '\0';
}

static void view_json(char *buf, size_t size, const char *upstream, const char *key, const pt_rt_view_t *v)
{
    char name[2 * PT_RT_NAME_MAX];
    json_name(name, sizeof(name), upstream);
    snprintf(buf, size, "{\"upstream\":\"%s\",\"address\":\"%s\",\"weight\":%lld,\"state\":\"%s\",\"added\":%s}\n",
             name, key, (long long)v->weight, pt_rt_state_names[v->state], v->added ? "true" : "false");
}

/* The body as a JSON object: NULL when answered 400/411/413. */
static const pt_json_t *body_object(pt_conn_t *c, const pt_h1_req_t *req, pt_arena_t *a)
{
    if (req->chunked) {
        c->closing = true;
        fail(c, 411, "send the body with a Content-Length");
        return NULL;
    }
    if (req->content_length > MAX_BODY) {
        c->closing = true; /* not read */
        fail(c, 413, "the body is larger than 4096 bytes");
        return NULL;
    }
    const char *p = c->ibuf + c->ipos + req->head_len, *jerr = "an empty body";
    const pt_json_t *j = req->content_length > 0 ? pt_json_parse(a, p, (size_t)req->content_length, &jerr) : NULL;
    if (!j || j->type != PT_JSON_OBJ) {
        char why[200];
        snprintf(why, sizeof(why), "the body is not a JSON object (%s)", j ? "another JSON value" : jerr);
        fail(c, 400, why);
        return NULL;
    }
    return j;
}

/* Only these keys: a misspelt one must not pass for a no-op. */
static bool keys_among(const pt_json_t *j, const char *const *allowed)
{
    for (size_t i = 0; i < j->n; i++) {
        bool ok = false;
        for (const char *const *k = allowed; *k && !ok; k++)
            ok = strcmp(j->keys[i].p, *k) == 0 && strlen(*k) == j->keys[i].n;
        if (!ok)
            return false;
    }
    return true;
}

/* "weight": 1 to 10000 (as in the file); *w 0 when absent.  False when
 * answered 400. */
static bool weight_of(pt_conn_t *c, const pt_json_t *j, int64_t *w)
{
    const pt_json_t *v = pt_json_get(j, "weight");
    *w = 0;
    if (!v)
        return true;
    if (v->type != PT_JSON_NUM || !v->is_int || v->i < 1 || v->i > 10000) {
        fail(c, 400, "weight is an integer from 1 to 10000");
        return false;
    }
    *w = v->i;
    return true;
}

static int state_of(const pt_json_t *v)
{
    if (!v)
        return -1;
    for (int s = PT_RT_UP; v->type == PT_JSON_STR && s <= PT_RT_DOWN; s++)
        if (strcmp(v->s.p, pt_rt_state_names[s]) == 0 && v->s.n == strlen(pt_rt_state_names[s]))
            return s;
    return -2;
}

static void result(pt_conn_t *c, int rc, const pt_upstream_conf_t *uc, const char *key, int op,
                   const pt_rt_view_t *before, const pt_rt_view_t *after)
{
    static const char *const errors[] = {
        "",
        "no such target in this upstream",
        "this upstream has this target already",
        "at most 32 targets may be added to an upstream at run time",
        "the table of run-time changes is full",
        "run-time changes are not available",
        "an upstream whose name has 128 bytes or more cannot be changed at run time",
    };
    static const int statuses[] = {200, 404, 409, 409, 503, 503, 400};
    if (rc) {
        fail(c, statuses[rc], errors[rc]);
        return;
    }
    char w[160], body[512];
    who(c, w, sizeof(w));
    if (op == PT_RT_ADD)
        pt_log_notice("admin: %s added target %s to upstream \"%s\" (weight %lld)", w, key, uc->name,
                      (long long)after->weight);
    else if (op == PT_RT_DELETE)
        pt_log_notice("admin: %s removed target %s from upstream \"%s\" (was weight %lld, %s%s)", w, key, uc->name,
                      (long long)before->weight, pt_rt_state_names[before->state], before->added ? ", added" : "");
    else
        pt_log_notice("admin: %s changed target %s of upstream \"%s\": weight %lld -> %lld, state %s -> %s", w, key,
                      uc->name, (long long)before->weight, (long long)after->weight,
                      pt_rt_state_names[before->state], pt_rt_state_names[after->state]);
    view_json(body, sizeof(body), uc->name, key, after);
    answer(c, op == PT_RT_ADD ? 201 : 200, body, "Cache-Control: no-store\r\n");
}

/* PATCH, POST or DELETE once the upstream and the target's key are known
 * (key empty for POST). */
static void change(pt_conn_t *c, const pt_h1_req_t *req, const pt_upstream_conf_t *uc, char *key, size_t keysize)
{
    int op = req->method_bit == PT_M_POST ? PT_RT_ADD : req->method_bit == PT_M_DELETE ? PT_RT_DELETE : PT_RT_PATCH;
    int64_t weight = 0;
    int state = -1;
    pt_arena_t a;
    pt_arena_init(&a, 4096, 256 * 1024);
    if (op != PT_RT_DELETE) {
        static const char *const patch_keys[] = {"weight", "state", NULL}, *const post_keys[] = {"address", "weight",
                                                                                                NULL};
        const pt_json_t *j = body_object(c, req, &a);
        if (!j)
            goto out;
        if (!keys_among(j, op == PT_RT_ADD ? post_keys : patch_keys)) {
            fail(c, 400, op == PT_RT_ADD ? "a new target has keys address and weight only"
                                         : "a change has keys weight and state only");
            goto out;
        }
        if (!weight_of(c, j, &weight))
            goto out;
        state = state_of(pt_json_get(j, "state"));
        if (state == -2) {
            fail(c, 400, "state is \\\"up\\\", \\\"drain\\\" or \\\"down\\\"");
            goto out;
        }
        if (op == PT_RT_PATCH && !weight && state < 0) {
            fail(c, 400, "give a weight or a state");
            goto out;
        }
        if (op == PT_RT_ADD) {
            const pt_json_t *ad = pt_json_get(j, "address");
            bool numeric;
            if (!ad || ad->type != PT_JSON_STR || strlen(ad->s.p) != ad->s.n ||
                pt_runtime_key(ad->s.p, key, keysize, &numeric) < 0 || !numeric) {
                fail(c, 400, "address is a numeric IP address and port (10.0.0.1:8080, [2001:db8::1]:80): "
                             "host names would need DNS");
                goto out;
            }
        }
    }
    pt_rt_view_t before, after;
    result(c, pt_runtime_change(uc, key, op, weight, state, &before, &after), uc, key, op, &before, &after);
out:
    pt_arena_free(&a);
}

bool pt_admin_targets(pt_conn_t *c, const pt_h1_req_t *req)
{
    static const pt_str_t prefix = PT_STR("/upstreams/");
    if (!pt_str_has_prefix(req->path, prefix))
        return false;
    pt_str_t rest = {req->path.p + prefix.n, req->path.n - prefix.n};
    const char *slash = memchr(rest.p, '/', rest.n);
    static const pt_str_t targets = PT_STR("/targets");
    pt_str_t name = {rest.p, slash ? (size_t)(slash - rest.p) : rest.n};
    pt_str_t tail = {name.p + name.n, rest.n - name.n};
    pt_str_t addr = PT_STR_NULL;
    if (tail.n > targets.n && pt_str_has_prefix(tail, targets) && tail.p[targets.n] == '/')
        addr = (pt_str_t){tail.p + targets.n + 1, tail.n - targets.n - 1};
    else if (!pt_str_eq(tail, targets)) {
        fail(c, 404, "not found: /upstreams/NAME/targets[/ADDRESS]");
        return true;
    }
    char uname[1024], raw[PT_RT_ADDR_MAX], key[PT_RT_ADDR_MAX] = "";
    const pt_upstream_conf_t *uc = NULL;
    for (size_t i = 0; decode(name, uname, sizeof(uname)) && i < c->w->conf->upstreams.n && !uc; i++)
        if (strcmp(PT_LIST_AT(c->w->conf->upstreams, pt_upstream_conf_t, i)->name, uname) == 0)
            uc = PT_LIST_AT(c->w->conf->upstreams, pt_upstream_conf_t, i);
    if (!uc) {
        fail(c, 404, "no such upstream");
        return true;
    }
    bool numeric;
    if (addr.p && (!decode(addr, raw, sizeof(raw)) || pt_runtime_key(raw, key, sizeof(key), &numeric) < 0)) {
        fail(c, 400, "bad target address in the path");
        return true;
    }
    unsigned allowed = addr.p ? PT_M_PATCH | PT_M_DELETE : PT_M_POST;
    if (!(req->method_bit & allowed)) {
        answer(c, 405, "{\"error\":\"method not allowed\"}\n",
               addr.p ? "Allow: PATCH, DELETE\r\n" : "Allow: POST\r\n");
        return true;
    }
    change(c, req, uc, key, sizeof(key));
    return true;
}
