/* What the auth filters share (auth.h): accepting a request as a consumer,
 * refusing it with the route's challenges, hiding a credential from the
 * upstream, and counting failures by reason. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "portico/arena.h"
#include "portico/auth.h"
#include "portico/conn.h"
#include "portico/credentials.h"
#include "portico/filter.h"
#include "portico/metrics.h"
#include "portico/http.h"
#include "portico/request.h"
#include "portico/status-t.h"
#include "portico/worker.h"

const char *const pt_auth_reason_names[PT_AUTH__REASONS] = {
    [PT_AUTH_MISSING] = "missing",
    [PT_AUTH_INVALID] = "invalid",
    [PT_AUTH_EXPIRED] = "expired",
    [PT_AUTH_BAD_SIGNATURE] = "bad_signature",
    [PT_AUTH_UNKNOWN_KEY] = "unknown_key",
    [PT_AUTH_DENIED] = "denied",
    [PT_AUTH_UNAVAILABLE] = "unavailable",
};

_Static_assert(PT_AUTH__REASONS <= sizeof(((pt_status_worker_t *)0)->auth_failures) / sizeof(uint64_t),
               "the status board counts too few auth failure reasons");

bool pt_auth_is_auth_filter(int id)
{
    return id >= PT_FILTER_AUTH_FIRST && id <= PT_FILTER_AUTH_LAST;
}

bool pt_auth_reserved_field(pt_str_t n)
{
    return pt_str_field_eq(n, PT_STR("x-consumer-username")) || pt_str_field_eq(n, PT_STR("x-consumer-groups")) ||
           pt_str_field_eq(n, PT_STR("x-credential-identifier"));
}

void pt_auth_count_in(pt_conn_t *c, int filter, int reason)
{
    pt_worker_t *w = c->w;
    if (w->status && w->board >= 0)
        __atomic_add_fetch(&w->status->workers[w->board].auth_failures[reason], 1, __ATOMIC_RELAXED);
    if (c->req && c->req->route && filter >= 0 && filter < PT_FILTER__COUNT)
        pt_mx_add(pt_mx_filter(c->req->route->index, filter), PT_MXW_F_AUTH + (unsigned)reason, 1);
}

void pt_auth_count(pt_conn_t *c, int reason)
{
    pt_auth_count_in(c, c->req && c->req->fx ? c->req->fx->next : -1, reason);
}

static bool add_edit(pt_conn_t *c, pt_fx_t *fx, int op, pt_str_t name, pt_str_t value)
{
    return pt_fx_add(c, fx, false, op, name, value);
}

/* The filters after the auth ones take the consumer's settings first. */
static bool consumer_confs(pt_conn_t *c, pt_fx_t *fx, const pt_consumer_conf_t *co)
{
    bool any = false;
    for (int f = 0; f < PT_FILTER__COUNT && !any; f++)
        any = co->filters.conf[f] != NULL;
    if (!any)
        return true;
    const void **v = pt_arena_alloc(&c->arena, sizeof(void *) * PT_FILTER__COUNT);
    if (!v)
        return false;
    for (int f = 0; f < PT_FILTER__COUNT; f++) {
        const void *own = co->filters.conf[f];
        v[f] = own == PT_FILTER_OFF ? NULL : own ? own : fx->confs[f];
    }
    fx->confs = (const void *const *)v;
    return true;
}

pt_verdict_t pt_auth_accept(pt_conn_t *c, pt_fx_t *fx, const pt_consumer_conf_t *co, const pt_credential_conf_t *cr,
                            const char *ident)
{
    fx->auth = (pt_auth_t){.decided = true, .consumer = co, .cred = cr};
    if (!ident && cr)
        ident = cr->ident; /* the configuration's: it outlives the request */
    else if (ident && !(ident = pt_arena_strdup(&c->arena, ident)))
        return PT_FAIL;
    if (ident && !add_edit(c, fx, PT_HDR_SET, PT_STR("X-Credential-Identifier"), pt_str_from(ident)))
        return PT_FAIL;
    if (co) {
        if (!add_edit(c, fx, PT_HDR_SET, PT_STR("X-Consumer-Username"), pt_str_from(co->name)))
            return PT_FAIL;
        if (co->groups_text && !add_edit(c, fx, PT_HDR_SET, PT_STR("X-Consumer-Groups"), pt_str_from(co->groups_text)))
            return PT_FAIL;
        c->req->ent.consumer = co->log_name ? co->log_name : co->name;
        if (!consumer_confs(c, fx, co))
            return PT_FAIL;
    }
    return PT_NEXT;
}

/* {"message":"..."}: the messages are ours, with no quote or backslash */
static size_t json_message(char *buf, size_t size, const char *message)
{
    int n = snprintf(buf, size, "{\"message\":\"%s\"}\n", message);
    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

static size_t put_challenge(char *extra, size_t off, size_t size, const pt_fx_t *fx, int id, bool invalid)
{
    char ch[512];
    size_t n = pt_filters[id]->challenge ? pt_filters[id]->challenge(fx->confs[id], invalid, ch, sizeof(ch)) : 0;
    if (n && off + n + 22 < size)
        off += (size_t)snprintf(extra + off, size - off, "WWW-Authenticate: %.*s\r\n", (int)n, ch);
    return off;
}

pt_verdict_t pt_auth_reject(pt_conn_t *c, const pt_h1_req_t *req, pt_fx_t *fx, int id, int reason,
                            const char *message)
{
    char extra[1024], body[256];
    size_t off = put_challenge(extra, 0, sizeof(extra), fx, id, reason != PT_AUTH_MISSING);
    extra[off] = '\0';
    pt_auth_count(c, reason);
    size_t n = json_message(body, sizeof(body), message);
    pt_req_respond(c, 401, "application/json", body, n, off ? extra : NULL, req->method_bit == PT_M_HEAD);
    return PT_RESPOND;
}

pt_verdict_t pt_auth_absent(pt_conn_t *c, const pt_h1_req_t *req, pt_fx_t *fx, int id)
{
    for (int f = id + 1; f <= PT_FILTER_AUTH_LAST; f++)
        if (fx->confs[f])
            return PT_NEXT; /* another kind may be there */
    char extra[2048], body[256];
    size_t off = 0;
    for (int f = PT_FILTER_AUTH_FIRST; f <= PT_FILTER_AUTH_LAST; f++)
        if (fx->confs[f])
            off = put_challenge(extra, off, sizeof(extra), fx, f, false);
    extra[off] = '\0';
    pt_auth_count(c, PT_AUTH_MISSING);
    size_t n = json_message(body, sizeof(body), "No credentials found in request");
    pt_req_respond(c, 401, "application/json", body, n, off ? extra : NULL, req->method_bit == PT_M_HEAD);
    return PT_RESPOND;
}

pt_verdict_t pt_auth_refuse(pt_conn_t *c, const pt_h1_req_t *req, int status, int reason, const char *message,
                            const char *extra)
{
    char body[256];
    pt_auth_count(c, reason);
    size_t n = json_message(body, sizeof(body), message);
    pt_req_respond(c, status, "application/json", body, n, extra, req->method_bit == PT_M_HEAD);
    return PT_RESPOND;
}

/* ---- reading and hiding credentials ---- */

const pt_h1_header_t *pt_auth_header(const pt_h1_req_t *req, pt_str_t name, bool *several)
{
    const pt_h1_header_t *first = NULL;
    *several = false;
    for (size_t i = 0; i < req->nheaders; i++)
        if (pt_str_field_eq(req->headers[i].name, name)) {
            *several |= first != NULL;
            first = first ? first : &req->headers[i];
        }
    return first;
}

pt_verdict_t pt_auth_several(pt_conn_t *c, const pt_h1_req_t *req, pt_str_t name)
{
    char msg[128];
    snprintf(msg, sizeof(msg), "Several %.*s fields: a credential is sent once", (int)(name.n < 64 ? name.n : 64),
             name.p);
    for (char *p = msg; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            *p = '?';
    return pt_auth_refuse(c, req, 400, PT_AUTH_INVALID, msg, NULL);
}


pt_str_t pt_auth_query_arg(pt_conn_t *c, const pt_h1_req_t *req, const char *name, bool *several)
{
    pt_str_t q = req->query, raw = PT_STR_NULL;
    *several = false;
    for (const char *p = q.p, *end = q.p + q.n; p && p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p)), *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p)), *ke = eq ? eq : e;
        if (pt_h1_query_name_is((pt_str_t){p, (size_t)(ke - p)}, name)) {
            *several |= raw.p != NULL;
            if (!raw.p)
                raw = eq ? (pt_str_t){eq + 1, (size_t)(e - eq - 1)} : (pt_str_t){e, 0};
        }
        p = amp ? amp + 1 : NULL;
    }
    if (!raw.p || !memchr(raw.p, '%', raw.n))
        return raw;
    char *out = pt_arena_alloc(&c->arena, raw.n + 1);
    if (!out)
        return PT_STR_NULL;
    size_t n = 0;
    for (size_t i = 0; i < raw.n; i++) {
        if (raw.p[i] == '%' && i + 2 < raw.n && pt_hexval(raw.p[i + 1]) >= 0 && pt_hexval(raw.p[i + 2]) >= 0) {
            out[n++] = (char)(pt_hexval(raw.p[i + 1]) << 4 | pt_hexval(raw.p[i + 2]));
            i += 2;
        } else {
            out[n++] = raw.p[i];
        }
    }
    out[n] = '\0';
    return (pt_str_t){out, n};
}

pt_verdict_t pt_auth_hide_header(pt_conn_t *c, pt_fx_t *fx, pt_str_t name)
{
    (void)c;
    return add_edit(c, fx, PT_HDR_REMOVE, name, PT_STR_NULL) ? PT_NEXT : PT_FAIL;
}

/* The query without every argument called name. */
pt_verdict_t pt_auth_hide_query(pt_conn_t *c, const pt_h1_req_t *req, pt_fx_t *fx, const char *name)
{
    pt_str_t q = fx->query_set ? fx->query : req->query;
    if (!q.p)
        return PT_NEXT;
    char *out = pt_arena_alloc(&c->arena, q.n + 1);
    if (!out)
        return PT_FAIL;
    size_t n = 0;
    const char *p = q.p, *end = q.p + q.n;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p)), *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p)), *ke = eq ? eq : e;
        if (!pt_h1_query_name_is((pt_str_t){p, (size_t)(ke - p)}, name)) {
            if (n)
                out[n++] = '&';
            memcpy(out + n, p, (size_t)(e - p));
            n += (size_t)(e - p);
        }
        p = amp ? amp + 1 : end;
    }
    out[n] = '\0';
    if (n == q.n)
        return PT_NEXT; /* nothing of that name */
    fx->query = (pt_str_t){out, n};
    fx->query_set = true;
    return PT_NEXT;
}

/* Every Cookie field joined without the cookies called name; removed when
 * none is left. */
pt_verdict_t pt_auth_hide_cookie(pt_conn_t *c, const pt_h1_req_t *req, pt_fx_t *fx, const char *name)
{
    if (!pt_h1_cookie(req, name).p)
        return PT_NEXT;
    size_t total = 0, nl = strlen(name);
    for (size_t i = 0; i < req->nheaders; i++)
        if (PT_STR_IEQ(req->headers[i].name, "cookie"))
            total += req->headers[i].value.n + 2;
    char *out = pt_arena_alloc(&c->arena, total + 1);
    if (!out)
        return PT_FAIL;
    size_t n = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        if (!PT_STR_IEQ(req->headers[i].name, "cookie"))
            continue;
        pt_str_t pair, value;
        for (size_t at = 0; pt_h1_cookie_next(req->headers[i].value, &at, &pair, &value);) {
            if (pt_h1_cookie_named(pair, name, nl))
                continue;
            if (n) {
                memcpy(out + n, "; ", 2);
                n += 2;
            }
            memcpy(out + n, pair.p, pair.n);
            n += pair.n;
        }
    }
    out[n] = '\0';
    if (!n)
        return pt_auth_hide_header(c, fx, PT_STR("Cookie"));
    return add_edit(c, fx, PT_HDR_SET, PT_STR("Cookie"), (pt_str_t){out, n}) ? PT_NEXT : PT_FAIL;
}
