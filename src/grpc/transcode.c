/* REST/JSON to gRPC on a call of the bridge (transcode.h). */
#include "config.h"

#include <jansson.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/conn.h"
#include "portico/filter.h"
#include "portico/grpc.h"
#include "portico/grpc_web.h"
#include "portico/h2.h"
#include "portico/http.h"
#include "portico/log.h"
#include "portico/pb.h"
#include "portico/request.h"
#include "portico/transcode.h"

#define MAX_MSG (64u << 20) /* a response message's limit: what a 4-byte length may claim, within reason */

struct pt_tc_call {
    pt_conn_t *c;
    const pt_tc_t *t;
    int64_t max_body;
    pt_sbuf_t body; /* the JSON request body */
    /* the response */
    pt_sbuf_t meta;     /* header lines from the upstream's head (and trailers when not streamed) */
    int grpc_status;    /* -1: none yet */
    pt_sbuf_t message;  /* grpc-message, decoded */
    pt_sbuf_t message_raw; /* as it came (percent-encoded): for trailers */
    pt_sbuf_t details;  /* grpc-status-details-bin, as it came (base64) */
    uint8_t prefix[5];
    size_t nprefix;
    pt_sbuf_t msg;      /* the message being read */
    uint32_t want;
    pt_sbuf_t json;     /* a unary call's response, as JSON */
    size_t nmsgs;
    bool started, broken;
};

int pt_tc_http_status(int code)
{
    static const int map[17] = {200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401};
    return code >= 0 && code <= 16 ? map[code] : 500;
}

pt_tc_call_t *pt_tc_call_new(pt_conn_t *c, const pt_tc_t *t, int64_t max_body)
{
    pt_tc_call_t *k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    k->c = c;
    k->t = t;
    k->max_body = max_body;
    k->grpc_status = -1;
    return k;
}

void pt_tc_call_free(pt_tc_call_t *k)
{
    if (!k)
        return;
    free(k->body.p);
    free(k->meta.p);
    free(k->message.p);
    free(k->message_raw.p);
    free(k->details.p);
    free(k->msg.p);
    free(k->json.p);
    free(k);
}

bool pt_tc_call_started(const pt_tc_call_t *k)
{
    return k->started;
}

bool pt_tc_call_body(pt_tc_call_t *k, const char *p, size_t n, char *err, size_t errlen)
{
    if ((int64_t)(k->body.n + n) > k->max_body) {
        snprintf(err, errlen, "the request body is larger than %lld bytes", (long long)k->max_body);
        return false;
    }
    pt_sbuf_put(&k->body, p, n);
    if (k->body.failed) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    return true;
}

/* ---- the request ---- */

/* A query part, percent-decoded and '+' as a space, into out (room for n
 * and a NUL): its length, -1 for a bad escape. */
static long form_decode(const char *p, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '+') {
            out[o++] = ' ';
        } else if (p[i] == '%') {
            int h, l;
            if (i + 2 >= n || (h = pt_hexval(p[i + 1])) < 0 || (l = pt_hexval(p[i + 2])) < 0)
                return -1;
            out[o++] = (char)(h * 16 + l);
            i += 2;
        } else {
            out[o++] = p[i];
        }
    }
    out[o] = '\0';
    return (long)o;
}

/* Do the fields fs[0..nf) (a query parameter's, resolved: it may name
 * them by their JSON names) meet a variable's: the same field, one inside
 * it, or one that holds it? */
static bool bound(const pt_http_binding_t *b, const pt_pb_fdesc_t *const *fs, size_t nf)
{
    for (size_t i = 0; i < b->nvars; i++) {
        const pt_pb_fdesc_t *const *vs = b->vars[i].fs;
        size_t nv = b->vars[i].nfs, k = 0;
        while (k < nv && k < nf && vs[k] == fs[k])
            k++;
        if (nv && (k == nv || k == nf))
            return true;
    }
    return false;
}

static bool encode_query(pt_tc_call_t *k, pt_sbuf_t *out, char *err, size_t errlen)
{
    const pt_http_binding_t *b = k->t->b;
    pt_str_t q = k->t->query;
    const pt_pb_fdesc_t *fs[16];
    for (size_t i = 0; i < q.n;) {
        size_t j = i;
        while (j < q.n && q.p[j] != '&')
            j++;
        const char *eq = memchr(q.p + i, '=', j - i);
        size_t kn = eq ? (size_t)(eq - (q.p + i)) : j - i;
        if (j > i) {
            char *key = malloc(kn + 1), *val = malloc(j - i + 1);
            long kl = key ? form_decode(q.p + i, kn, key) : -1;
            long vl = val ? (eq ? form_decode(eq + 1, (size_t)(q.p + j - eq - 1), val) : 0) : -1;
            bool ok = kl > 0 && vl >= 0 && strlen(key) == (size_t)kl;
            if (!ok)
                snprintf(err, errlen, "the query has a bad parameter name or escape");
            if (ok && val && !eq)
                val[0] = '\0';
            size_t nf = ok ? pt_http_field_path(b->m->in, key, (size_t)kl, fs, 16) : 0;
            if (ok && !nf) {
                snprintf(err, errlen, "query parameter %.64s: no such field in %s", key, b->m->in->name);
                ok = false;
            } else if (ok && b->body && !b->any_query && (!b->body_f || b->body_f == fs[0])) {
                snprintf(err, errlen, "query parameter %.64s: the field comes from the body", key);
                ok = false;
            } else if (ok && bound(b, fs, nf)) {
                snprintf(err, errlen, "query parameter %.64s: the field comes from the path", key);
                ok = false;
            }
            if (ok) {
                char ferr[256];
                ok = pt_text_field_to_pb(fs, nf, val, (size_t)vl, out, ferr, sizeof(ferr));
                if (!ok)
                    snprintf(err, errlen, "query parameter %.64s: %s", key, ferr);
            }
            free(key);
            free(val);
            if (!ok)
                return false;
        }
        i = j + 1;
    }
    return true;
}

bool pt_tc_call_encode(pt_tc_call_t *k, char **out, size_t *outn, char *err, size_t errlen)
{
    const pt_http_binding_t *b = k->t->b;
    const pt_pbjson_opts_t *o = k->t->opts;
    pt_sbuf_t m = {0};
    pt_sbuf_put(&m, "\0\0\0\0\0", 5); /* the prefix, filled in below */
    bool ok = true;
    size_t ws = 0;
    while (ws < k->body.n && strchr(" \t\r\n", k->body.p[ws]))
        ws++;
    if (ws < k->body.n) {
        if (!b->body) {
            snprintf(err, errlen, "%s takes no request body", b->m->path + 1);
            ok = false;
        } else {
            json_error_t je;
            json_t *j = json_loadb(k->body.p, k->body.n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
            if (!j) {
                snprintf(err, errlen, "the body is not JSON: %s at line %d column %d", je.text, je.line, je.column);
                ok = false;
            } else if (!b->body_f) { /* "*" */
                ok = pt_json_to_pb(o, b->m->in, j, &m, err, errlen);
            } else {
                ok = pt_json_field_to_pb(o, &b->body_f, 1, j, &m, err, errlen);
            }
            json_decref(j);
        }
    }
    for (size_t i = 0; ok && i < b->nvars; i++) {
        char ferr[256];
        if (!pt_text_field_to_pb(b->vars[i].fs, b->vars[i].nfs, k->t->vals[i].p, k->t->vals[i].n, &m, ferr,
                                 sizeof(ferr))) {
            snprintf(err, errlen, "path variable %s: %s", b->vars[i].field, ferr);
            ok = false;
        }
    }
    ok = ok && encode_query(k, &m, err, errlen);
    if (ok && (m.failed || m.n - 5 > UINT32_MAX)) {
        snprintf(err, errlen, "out of memory");
        ok = false;
    }
    if (!ok) {
        free(m.p);
        return false;
    }
    size_t len = m.n - 5;
    m.p[1] = (char)(len >> 24);
    m.p[2] = (char)(len >> 16);
    m.p[3] = (char)(len >> 8);
    m.p[4] = (char)len;
    *out = m.p;
    *outn = m.n;
    free(k->body.p);
    k->body = (pt_sbuf_t){0};
    return true;
}

/* ---- the response ---- */

static void out(pt_tc_call_t *k, const void *p, size_t n)
{
    if (!pt_outq_copy(&k->c->out, p, n))
        k->c->closing = true;
}

static void chunk(pt_tc_call_t *k, const char *p, size_t n)
{
    char size[24];
    int sn = snprintf(size, sizeof(size), "%zx\r\n", n);
    out(k, size, (size_t)sn);
    out(k, p, n);
    out(k, "\r\n", 2);
}

/* The upstream's fields that reach the client as they are; the status
 * fields do not: write_head writes them with the call's final code. */
static bool passes(pt_str_t name)
{
    return !PT_STR_IEQ(name, "content-type") && !PT_STR_IEQ(name, "content-length") &&
           !PT_STR_IEQ(name, "transfer-encoding") && !PT_STR_IEQ(name, "connection") &&
           !PT_STR_IEQ(name, "grpc-encoding") && !PT_STR_IEQ(name, "grpc-accept-encoding") &&
           !PT_STR_IEQ(name, "grpc-status") && !PT_STR_IEQ(name, "grpc-message") &&
           !PT_STR_IEQ(name, "grpc-status-details-bin");
}

static void pct_decode_into(pt_sbuf_t *b, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int h, l;
        if (p[i] == '%' && i + 2 < n && (h = pt_hexval((char)p[i + 1])) >= 0 && (l = pt_hexval((char)p[i + 2])) >= 0) {
            char ch = (char)(h * 16 + l);
            pt_sbuf_put(b, &ch, 1);
            i += 2;
        } else {
            pt_sbuf_put(b, (const char *)p + i, 1);
        }
    }
}

void pt_tc_call_header(pt_tc_call_t *k, const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen,
                       bool trailer)
{
    pt_str_t n = {(const char *)name, nlen};
    if (PT_STR_IEQ(n, "grpc-status")) {
        int code = 0;
        for (size_t i = 0; i < vlen && code >= 0; i++)
            code = value[i] >= '0' && value[i] <= '9' && i < 2 ? code * 10 + (value[i] - '0') : -1;
        k->grpc_status = vlen && code >= 0 && code <= 16 ? code : 2; /* anything else is UNKNOWN */
    } else if (PT_STR_IEQ(n, "grpc-message")) {
        k->message.n = k->message_raw.n = 0;
        pct_decode_into(&k->message, value, vlen);
        pt_sbuf_put(&k->message_raw, (const char *)value, vlen);
    } else if (PT_STR_IEQ(n, "grpc-status-details-bin")) {
        k->details.n = 0;
        pt_sbuf_put(&k->details, (const char *)value, vlen);
    }
    if (!passes(n) || (trailer && k->started))
        return;
    const pt_fx_t *fx = k->c->req ? k->c->req->fx : NULL;
    if (fx && pt_fx_overrides(fx->resp, fx->nresp, n))
        return;
    pt_sbuf_put(&k->meta, (const char *)name, nlen);
    pt_sbuf_put(&k->meta, ": ", 2);
    pt_sbuf_put(&k->meta, (const char *)value, vlen);
    pt_sbuf_put(&k->meta, "\r\n", 2);
}

/* name: value, unless a filter sets or removes the field. */
static void put_field(pt_tc_call_t *k, pt_sbuf_t *h, const char *name, const char *value, size_t vlen)
{
    const pt_fx_t *fx = k->c->req ? k->c->req->fx : NULL;
    if (fx && pt_fx_overrides(fx->resp, fx->nresp, pt_str_from(name)))
        return;
    pt_sbuf_puts(h, name);
    pt_sbuf_put(h, ": ", 2);
    pt_sbuf_put(h, value, vlen);
    pt_sbuf_put(h, "\r\n", 2);
}

/* The status fields of an answer that is not streamed: its final code
 * (which is not the upstream's when the answer could not be read), with
 * the upstream's grpc-message and details only when the code is its own. */
static void put_status_fields(pt_tc_call_t *k, pt_sbuf_t *h, int code)
{
    char num[16];
    put_field(k, h, "grpc-status", num, (size_t)snprintf(num, sizeof(num), "%d", code));
    if (code != k->grpc_status)
        return;
    if (k->message_raw.n)
        put_field(k, h, "grpc-message", k->message_raw.p, k->message_raw.n);
    if (k->details.n)
        put_field(k, h, "grpc-status-details-bin", k->details.p, k->details.n);
}

/* The head: status, application/json, metadata, the status fields (code
 * >= 0: not a stream), the filters' edits. */
static void write_head(pt_tc_call_t *k, int status, int64_t length, int code)
{
    pt_sbuf_t h = {0};
    char line[96];
    snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n", status, pt_http_reason(status));
    pt_sbuf_puts(&h, line);
    pt_sbuf_put(&h, k->meta.p ? k->meta.p : "", k->meta.n);
    if (code >= 0)
        put_status_fields(k, &h, code);
    const pt_fx_t *fx = k->c->req ? k->c->req->fx : NULL;
    for (size_t i = 0; fx && i < fx->nresp; i++) {
        const pt_hdr_edit_t *e = &fx->resp[i];
        if (e->op == PT_HDR_REMOVE)
            continue;
        pt_sbuf_put(&h, e->name.p, e->name.n);
        pt_sbuf_put(&h, ": ", 2);
        pt_sbuf_put(&h, e->value.p, e->value.n);
        pt_sbuf_put(&h, "\r\n", 2);
    }
    if (length >= 0) {
        snprintf(line, sizeof(line), "content-length: %lld\r\n\r\n", (long long)length);
        pt_sbuf_puts(&h, line);
    } else {
        pt_sbuf_puts(&h, "transfer-encoding: chunked\r\n\r\n");
    }
    if (h.failed)
        k->c->closing = true;
    else
        out(k, h.p, h.n);
    free(h.p);
    k->started = true;
    if (k->c->req)
        k->c->req->ent.status = status;
}

static bool any_has_type(const uint8_t *p, size_t n)
{
    pt_pb_reader_t r = pt_pb_reader(p, n);
    pt_pb_field_t f;
    int rc;
    bool url = false;
    while ((rc = pt_pb_next(&r, &f)) > 0)
        url |= f.num == 1 && f.wt == PT_PB_LEN && f.n > 0;
    return rc == 0 && url;
}

/* {"code", "message", "details"}: details from grpc-status-details-bin
 * (a google.rpc.Status), each Any as JSON when its type is in the set. */
static void error_body(pt_sbuf_t *b, const pt_pbjson_opts_t *o, int code, const char *msg, size_t mlen,
                       const pt_sbuf_t *details)
{
    char num[24];
    snprintf(num, sizeof(num), "%d", code);
    pt_sbuf_puts(b, "{\"code\":");
    pt_sbuf_puts(b, num);
    pt_sbuf_puts(b, ",\"message\":");
    pt_json_put_str(b, msg, mlen);
    pt_sbuf_puts(b, ",\"details\":[");
    uint8_t *bin = details && details->n ? malloc(details->n / 4 * 3 + 3) : NULL;
    long bn = bin ? pt_wkt_b64_decode(details->p, details->n, bin) : -1;
    pt_pb_reader_t r = pt_pb_reader(bin, bn > 0 ? (size_t)bn : 0);
    pt_pb_field_t f;
    bool first = true;
    while (bn > 0 && pt_pb_next(&r, &f) > 0) {
        if (f.num != 3 || f.wt != PT_PB_LEN || !any_has_type(f.p, f.n))
            continue;
        if (!first)
            pt_sbuf_put(b, ",", 1);
        first = false;
        size_t mark = b->n;
        char err[128];
        if (o && pt_pb_any_to_json(o, f.p, f.n, b, err, sizeof(err)))
            continue;
        b->n = mark; /* a type not in the set: its name and its bytes */
        pt_pb_reader_t ar = pt_pb_reader(f.p, f.n);
        pt_pb_field_t af, url = {0}, val = {0};
        while (pt_pb_next(&ar, &af) > 0)
            if (af.wt == PT_PB_LEN && af.num == 1)
                url = af;
            else if (af.wt == PT_PB_LEN && af.num == 2)
                val = af;
        pt_sbuf_puts(b, "{\"@type\":");
        pt_json_put_str(b, (const char *)url.p, url.n);
        pt_sbuf_puts(b, ",\"value\":\"");
        char *text = malloc(4 * (val.n / 3 + 1) + 1);
        if (text)
            pt_sbuf_put(b, text, pt_b64_encode(val.p, val.n, text));
        free(text);
        pt_sbuf_puts(b, "\"}");
    }
    free(bin);
    pt_sbuf_puts(b, "]}");
}

static void respond_error(pt_tc_call_t *k, int code, const char *msg, size_t mlen, const pt_sbuf_t *details)
{
    pt_sbuf_t body = {0};
    error_body(&body, k->t->opts, code, msg, mlen, details);
    write_head(k, pt_tc_http_status(code), (int64_t)body.n, code);
    out(k, body.p, body.n);
    free(body.p);
}

void pt_tc_error(pt_conn_t *c, int code, const char *message)
{
    pt_tc_error_status(c, pt_tc_http_status(code), code, message);
}

void pt_tc_error_status(pt_conn_t *c, int status, int code, const char *message)
{
    const pt_tc_t *t = c->req ? pt_transcode_of(c->req->fx) : NULL;
    pt_tc_call_t k = {.c = c, .t = t, .grpc_status = code};
    pt_sbuf_t body = {0};
    error_body(&body, t ? t->opts : NULL, code, message, strlen(message), NULL);
    write_head(&k, status, (int64_t)body.n, code);
    out(&k, body.p, body.n);
    free(body.p);
    free(k.meta.p);
}

/* One whole message from the upstream. */
static bool on_message(pt_tc_call_t *k, const uint8_t *p, size_t n)
{
    const pt_http_binding_t *b = k->t->b;
    pt_sbuf_t j = {0};
    char err[256];
    bool ok;
    if (b->response_f) {
        ok = pt_pb_field_to_json(k->t->opts, b->m->out, b->response_f, p, n, &j, err, sizeof(err));
    } else {
        ok = pt_pb_to_json(k->t->opts, b->m->out, p, n, &j, err, sizeof(err));
    }
    if (!ok) {
        pt_log_error("gRPC transcoding: the upstream's %s cannot be read: %s, route=%s req=%s", b->m->out->name, err,
                     k->c->req && k->c->req->route ? k->c->req->route->name : "-", k->c->req ? k->c->req->reqid : "-");
        free(j.p);
        return false;
    }
    k->nmsgs++;
    if (!b->m->server_streaming) {
        if (k->nmsgs > 1) {
            pt_log_error("gRPC transcoding: the upstream sent more than one message for unary %s, req=%s", b->m->path,
                         k->c->req ? k->c->req->reqid : "-");
            free(j.p);
            return false;
        }
        k->json = j;
        return true;
    }
    if (!k->started) {
        write_head(k, 200, -1, -1);
        chunk(k, "[", 1);
    } else {
        chunk(k, ",", 1);
    }
    chunk(k, j.p ? j.p : "", j.n);
    free(j.p);
    return true;
}

bool pt_tc_call_data(pt_tc_call_t *k, const uint8_t *p, size_t n)
{
    if (k->broken)
        return false;
    if (k->c->req && k->c->req->ent.upstream_status != 200)
        return true; /* not a gRPC answer (an error page): its status speaks, not its body */
    while (n) {
        if (k->nprefix < 5) {
            size_t take = 5 - k->nprefix < n ? 5 - k->nprefix : n;
            memcpy(k->prefix + k->nprefix, p, take);
            k->nprefix += take;
            p += take;
            n -= take;
            if (k->nprefix < 5)
                break;
            k->want = (uint32_t)k->prefix[1] << 24 | (uint32_t)k->prefix[2] << 16 | (uint32_t)k->prefix[3] << 8 |
                      k->prefix[4];
            if (k->prefix[0] != 0 || k->want > MAX_MSG) {
                pt_log_error("gRPC transcoding: the upstream sent a %s message, req=%s",
                             k->prefix[0] ? "compressed (or flagged)" : "too large",
                             k->c->req ? k->c->req->reqid : "-");
                k->broken = true;
                return false;
            }
            k->msg.n = 0;
        }
        size_t take = k->want - k->msg.n < n ? k->want - k->msg.n : n;
        pt_sbuf_put(&k->msg, (const char *)p, take);
        p += take;
        n -= take;
        if (k->msg.failed) {
            k->broken = true;
            return false;
        }
        if (k->msg.n == k->want) {
            k->nprefix = 0;
            if (!on_message(k, (const uint8_t *)(k->msg.p ? k->msg.p : ""), k->msg.n)) {
                k->broken = true;
                return false;
            }
        }
    }
    return true;
}

void pt_tc_call_end(pt_tc_call_t *k)
{
    int code = k->grpc_status;
    if (code < 0) { /* not a gRPC answer: its HTTP status says what it can (gRPC's own mapping) */
        int up = k->c->req ? k->c->req->ent.upstream_status : 0;
        code = up && up != 200 ? pt_grpc_status_of(up) : 2;
        k->message.n = 0;
        pt_sbuf_puts(&k->message, "the upstream's answer has no grpc-status");
    }
    if (k->broken || (k->nprefix && code == 0)) {
        code = 13;
        k->message.n = 0;
        pt_sbuf_puts(&k->message, k->broken ? "the upstream's response cannot be read" : "the upstream's response ends inside a message");
    }
    if (k->started) { /* a stream: closed if it ended well, else left open with the status in trailers */
        if (code == 0) {
            chunk(k, "]", 1);
            out(k, "0\r\n\r\n", 5);
            return;
        }
        char num[16];
        snprintf(num, sizeof(num), "%d", code);
        /* grpc-message as the upstream wrote it (percent-encoded), or ours, encoded the same way */
        pt_sbuf_t m = {0};
        if (k->message_raw.n) {
            pt_sbuf_put(&m, k->message_raw.p, k->message_raw.n);
        } else if (k->message.n && (m.p = malloc(3 * k->message.n + 1))) {
            m.cap = 3 * k->message.n + 1;
            m.n = pt_grpc_message_encode(k->message.p, k->message.n, m.p, m.cap);
        }
        for (size_t i = 0; i < m.n; i++) /* a field value: no control characters, whatever came */
            if ((unsigned char)m.p[i] < 0x20 || m.p[i] == 0x7f)
                m.p[i] = ' ';
        if (pt_conn_is_stream(k->c)) {
            nghttp2_nv nv[2] = {{(uint8_t *)"grpc-status", (uint8_t *)num, 11, strlen(num), 0},
                                {(uint8_t *)"grpc-message", (uint8_t *)(m.p ? m.p : ""), 12, m.n, 0}};
            pt_h2_stream_trailers(k->c, nv, 2);
            out(k, "0\r\n\r\n", 5);
        } else {
            pt_sbuf_t t = {0};
            pt_sbuf_puts(&t, "0\r\ngrpc-status: ");
            pt_sbuf_puts(&t, num);
            pt_sbuf_puts(&t, "\r\ngrpc-message: ");
            pt_sbuf_put(&t, m.p, m.n);
            pt_sbuf_puts(&t, "\r\n\r\n");
            out(k, t.p, t.n);
            free(t.p);
        }
        free(m.p);
        return;
    }
    if (code == 0 && !k->json.p && !k->t->b->m->server_streaming) {
        code = 13;
        k->message.n = 0;
        pt_sbuf_puts(&k->message, "the upstream answered OK without a message");
    }
    if (code != 0) { /* the upstream's details only with its own code */
        respond_error(k, code, k->message.p ? k->message.p : "", k->message.n,
                      code == k->grpc_status ? &k->details : NULL);
        return;
    }
    if (k->t->b->m->server_streaming) { /* no message at all */
        write_head(k, 200, 2, 0);
        out(k, "[]", 2);
        return;
    }
    write_head(k, 200, (int64_t)k->json.n, 0);
    out(k, k->json.p, k->json.n);
}
