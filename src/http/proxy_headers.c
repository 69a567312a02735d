/* What changes in the headers on the way through: hop-by-hop fields go
 * (RFC 9110 7.6.1: Connection and every field it names, Keep-Alive, TE,
 * Trailer, Transfer-Encoding, Upgrade, Proxy-Connection), framing is set
 * by us, and the X-Forwarded-* family says who the client was.  Incoming
 * X-Forwarded-* are believed only from trusted_proxies; from anyone else
 * they are replaced, so a client cannot claim another address. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "portico/auth.h"
#include "portico/filter.h"
#include "portico/head.h"
#include "portico/http.h"
#include "portico/location.h"
#include "portico/proxy.h"
#include "portico/response.h"
#include "portico/trace.h"

/* Connection, Keep-Alive, Proxy-Connection, TE, Trailer,
 * Transfer-Encoding, Upgrade: switched on the length first, as this runs
 * for every header of every request and response. */
bool pt_proxy_hop_by_hop(pt_str_t n)
{
    switch (n.n) {
    case 2:
        return PT_STR_IEQ(n, "te");
    case 7:
        return PT_STR_IEQ(n, "trailer") || PT_STR_IEQ(n, "upgrade");
    case 10:
        return PT_STR_IEQ(n, "connection") || PT_STR_IEQ(n, "keep-alive");
    case 16:
        return PT_STR_IEQ(n, "proxy-connection");
    case 17:
        return PT_STR_IEQ(n, "transfer-encoding");
    default:
        return false;
    }
}

/* Does a Connection value name fields of its own (anything but close,
 * keep-alive and upgrade)?  Almost never: then no field needs the check. */
static bool names_fields(pt_str_t tokens)
{
    const char *p = tokens.p;
    pt_str_t t;
    while (pt_str_next_token(&p, tokens.p + tokens.n, &t))
        if (!PT_STR_IEQ(t, "close") && !PT_STR_IEQ(t, "keep-alive") && !PT_STR_IEQ(t, "upgrade"))
            return true;
    return false;
}

/* Named by a Connection header (other than the usual tokens)? */
static bool named_by_connection(pt_str_t name, pt_str_t tokens)
{
    return tokens.n && pt_str_list_has_token(tokens, name);
}

bool pt_proxy_drop_response_header(pt_str_t name, pt_str_t tokens, bool upgrade)
{
    if (upgrade && (PT_STR_IEQ(name, "upgrade") || PT_STR_IEQ(name, "connection")))
        return false; /* a 101 keeps them: they say what the tunnel carries */
    return pt_proxy_hop_by_hop(name) || PT_STR_IEQ(name, "content-length") || named_by_connection(name, tokens);
}

pt_str_t pt_proxy_connection_names(pt_str_t connection)
{
    return names_fields(connection) ? connection : PT_STR_NULL;
}

pt_str_t pt_proxy_request_id(const pt_h1_req_t *req, pt_str_t generated)
{
    const pt_h1_header_t *h = pt_h1_find(req, PT_STR("x-request-id"));
    if (!h || h->value.n == 0 || h->value.n > 128)
        return generated;
    for (size_t i = 0; i < h->value.n; i++) {
        char ch = h->value.p[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '-' ||
              ch == '_' || ch == '.' || ch == ':'))
            return generated;
    }
    return h->value;
}

/* "Name: value\r\n" with a C-string name. */
static void put_header(pt_head_t *o, const char *name, pt_str_t value)
{
    pt_head_field(o, pt_str_from(name), value);
}

static void put_request_line(pt_head_t *o, const pt_fwd_ctx_t *f)
{
    const pt_h1_req_t *req = f->req;
    const pt_route_conf_t *r = f->route;
    pt_head_str(o, req->method);
    pt_head_put(o, " ", 1);
    pt_str_t path = req->form == PT_H1_ASTERISK ? PT_STR("*") : req->path;
    bool in_place = false; /* path is already where it goes, in o */
    if (!(f->fx && f->fx->path.p) && req->form != PT_H1_ASTERISK && !f->path_plain) {
        /* The normal form, as routed on (conn.c), is written in place:
         * never longer than the path, and only for the rare path with an
         * escape or a dot-segment.  The routing succeeded on the same
         * input, so it cannot fail here. */
        long n = (size_t)(o->end - o->p) > path.n ? pt_path_normalize(path, o->p, f->slashes) : -1;
        if (n < 0) {
            o->overflow = true;
            return;
        }
        path = (pt_str_t){o->p, (size_t)n};
        in_place = true;
    }
    if (f->fx && f->fx->path.p) {
        path = f->fx->path; /* path-rewrite: the whole path, strip_prefix does not apply */
    } else if (r->strip_prefix) {
        pt_str_t sp = pt_str_from(r->strip_prefix);
        if (pt_str_has_prefix(path, sp) && (path.n == sp.n || path.p[sp.n] == '/' || sp.p[sp.n - 1] == '/')) {
            if (f->stripped)
                *f->stripped = true;
            path.p += sp.n;
            path.n -= sp.n;
            if (sp.p[sp.n - 1] == '/') { /* keep the slash that starts what is left */
                path.p--;
                path.n++;
            }
        }
        if (path.n == 0)
            path = PT_STR("/");
    }
    if (in_place && path.p != o->p) { /* strip_prefix cut its head, or left "/" */
        memmove(o->p, path.p, path.n);
        path.p = o->p;
    }
    if (in_place)
        o->p += path.n;
    else
        pt_head_str(o, path);
    pt_str_t query = f->fx && f->fx->query_set ? f->fx->query : req->query; /* hide_credentials may cut it */
    if (query.p && (query.n || !(f->fx && f->fx->query_set))) {
        pt_head_put(o, "?", 1);
        pt_head_str(o, query);
    }
    pt_head_cs(o, " HTTP/1.1\r\n");
    /* Host: passed through unless the route says otherwise; an HTTP/1.0
     * request may have none: then the upstream's name, as nginx sends */
    put_header(o, "Host", r->upstream_host ? pt_str_from(r->upstream_host)
                          : req->host.n    ? req->host
                                           : pt_str_from(r->up ? r->up->name : "localhost"));
}

/* What the client said of forwarding, kept aside to be believed or not. */
typedef struct forwarded {
    pt_str_t xff, proto, host, real_ip;
} forwarded_t;

/* Copies the client's fields that go on as they are. */
static void copy_fields(pt_head_t *o, const pt_fwd_ctx_t *f, forwarded_t *fw)
{
    const pt_h1_req_t *req = f->req;
    pt_str_t connection = PT_STR_NULL;
    const pt_h1_header_t *h = pt_h1_find(req, PT_STR("connection"));
    if (h)
        connection = pt_proxy_connection_names(h->value);
    for (size_t i = 0; i < req->nheaders; i++) {
        pt_str_t n = req->headers[i].name, v = req->headers[i].value;
        if (pt_proxy_hop_by_hop(n) || named_by_connection(n, connection))
            continue;
        if (f->trace && pt_trace_is_field(n))
            continue; /* replaced by the trace's own (pt_trace_put_fields) */
        if (f->fx && pt_fx_overrides(f->fx->req, f->fx->nreq, n))
            continue; /* request-headers sets or removes it */
        switch (n.n) {
        case 17: /* x-consumer-groups: only an auth filter says who the client is */
        case 19: /* x-consumer-username */
        case 23: /* x-credential-identifier */
            if (pt_auth_reserved_field(n))
                continue;
            break;
        }
        switch (n.n) {
        case 4:
            if (PT_STR_IEQ(n, "host"))
                continue;
            break;
        case 6:
            if (PT_STR_IEQ(n, "expect"))
                continue; /* we answered 100-continue ourselves */
            break;
        case 9:
            if (PT_STR_IEQ(n, "x-real-ip")) {
                fw->real_ip = v;
                continue;
            }
            break;
        case 12:
            if (PT_STR_IEQ(n, "x-request-id"))
                continue;
            break;
        case 14:
            if (PT_STR_IEQ(n, "content-length"))
                continue;
            break;
        case 15:
            if (PT_STR_IEQ(n, "x-forwarded-for")) {
                if (!fw->xff.p) /* several are joined by the sender: keep the first */
                    fw->xff = v;
                continue;
            }
            break;
        case 16:
            if (PT_STR_IEQ(n, "x-forwarded-host")) {
                fw->host = v;
                continue;
            }
            break;
        case 17:
            if (PT_STR_IEQ(n, "x-forwarded-proto")) {
                fw->proto = v;
                continue;
            }
            break;
        }
        pt_head_field(o, n, v);
    }
}

/* X-Forwarded-*, X-Real-IP and X-Request-Id: extended from a trusted
 * proxy, replaced for anyone else. */
static void put_forwarding(pt_head_t *o, const pt_fwd_ctx_t *f, const forwarded_t *fw)
{
    bool trust = f->peer_trusted;
    pt_head_cs(o, "X-Forwarded-For: ");
    if (trust && fw->xff.n) {
        pt_head_str(o, fw->xff);
        pt_head_put(o, ", ", 2);
    }
    pt_head_str(o, f->peer_ip);
    pt_head_put(o, "\r\n", 2);
    put_header(o, "X-Forwarded-Proto", trust && fw->proto.n ? fw->proto : f->tls ? PT_STR("https") : PT_STR("http"));
    if ((trust && fw->host.n) || f->req->host.n) /* none for a request without a Host */
        put_header(o, "X-Forwarded-Host", trust && fw->host.n ? fw->host : f->req->host);
    put_header(o, "X-Real-IP", trust && fw->real_ip.n ? fw->real_ip : f->peer_ip);
    put_header(o, "X-Request-Id", f->request_id);
}

/* Does a request-headers edit (set, add or remove) name this field? */
static bool edited(const pt_fwd_ctx_t *f, pt_str_t name)
{
    for (size_t i = 0; f->fx && i < f->fx->nreq; i++)
        if (pt_str_field_eq(f->fx->req[i].name, name))
            return true;
    return false;
}

size_t pt_proxy_request_head(const pt_fwd_ctx_t *f, char *buf, size_t size)
{
    const pt_h1_req_t *req = f->req;
    pt_head_t o;
    pt_head_init(&o, buf, size);
    forwarded_t fw = {PT_STR_NULL, PT_STR_NULL, PT_STR_NULL, PT_STR_NULL};
    put_request_line(&o, f);
    copy_fields(&o, f, &fw);
    put_forwarding(&o, f, &fw);
    /* the trace's own fields, unless request-headers edits them: the
     * operator's traceparent (or none) goes instead, never two */
    if (f->trace && !edited(f, PT_STR("traceparent"))) {
        size_t tslen = f->trace->tslen;
        if (edited(f, PT_STR("tracestate")))
            f->trace->tslen = 0;
        size_t k = o.overflow ? 0 : pt_trace_put_fields(f->trace, o.p, (size_t)(o.end - o.p));
        f->trace->tslen = tslen;
        if (k)
            o.p += k;
        else
            o.overflow = true;
    }
    for (size_t i = 0; f->fx && i < f->fx->nreq; i++) {
        const pt_hdr_edit_t *e = &f->fx->req[i];
        if (e->op == PT_HDR_REMOVE)
            continue;
        pt_head_field(&o, e->name, e->value);
    }
    if (f->upgrade) {
        const pt_h1_header_t *up = pt_h1_find(req, PT_STR("upgrade"));
        put_header(&o, "Connection", PT_STR("upgrade"));
        put_header(&o, "Upgrade", up ? up->value : PT_STR("websocket"));
    } else if (f->body_chunked) {
        pt_head_cs(&o, "Transfer-Encoding: chunked\r\n");
    } else if (f->body_length > 0 || (f->body_length == 0 && (req->method_bit & (PT_M_POST | PT_M_PUT | PT_M_PATCH)))) {
        PT_HEAD_LIT(&o, "Content-Length: ");
        pt_head_u64(&o, (unsigned long long)f->body_length);
        PT_HEAD_LIT(&o, "\r\n");
    }
    pt_head_put(&o, "\r\n", 2);
    return pt_head_len(&o);
}

/* ---- the response head towards the client ---- */

typedef struct skip_ctx {
    pt_str_t tokens;
    bool tunnel;
} skip_ctx_t;

/* What of the upstream's head does not go on: hop-by-hop fields, those
 * its Connection names, and the framing we set ourselves. */
static bool skip_upstream_field(const pt_h1_header_t *f, const void *arg)
{
    const skip_ctx_t *k = arg;
    return pt_proxy_drop_response_header(f->name, k->tokens, k->tunnel);
}

size_t pt_proxy_response_head(pt_outq_t *q, const pt_h1_resp_t *r, const char *base, const pt_proxy_framing_t *fr,
                              const pt_fx_t *fx, const pt_location_ctx_t *loc, const char *date)
{
    pt_resp_rewrite_t rw;
    if (loc) /* a route with strip_prefix, which cut this request's path */
        rw = (pt_resp_rewrite_t){pt_location_field, loc, loc->loc->prefix};
    skip_ctx_t k = {PT_STR_NULL, fr->tunnel};
    const pt_h1_header_t *ch = pt_h1_resp_find(r, PT_STR("connection"));
    if (ch)
        k.tokens = pt_proxy_connection_names(ch->value);
    /* the status line keeps the upstream's reason phrase ("HTTP/1.1 200 OK") */
    const char *eol = base;
    while (eol < base + r->head_len && *eol != '\r' && *eol != '\n') /* CRLF, or a bare LF */
        eol++;
    pt_str_t reason = eol && eol - base > 13 ? (pt_str_t){base + 13, (size_t)(eol - base - 13)} : PT_STR_NULL;
    pt_resp_head_t h = {
        .status = r->status,
        .reason = reason,
        .fields = r->headers,
        .nfields = r->nheaders,
        .skip = skip_upstream_field,
        .skip_arg = &k,
        .date = true,
        .content_length = !fr->tunnel && fr->length ? r->content_length : -1,
        .chunked = !fr->tunnel && fr->chunked,
        .close = !fr->tunnel && fr->close,
        .keep_alive_1_0 = !fr->tunnel && !fr->close && fr->http10,
        .fields_size = r->head_len,
        .rewrite = loc ? &rw : NULL,
        .log = fr->log,
    };
    return pt_resp_write_head(q, &h, fx, date);
}
