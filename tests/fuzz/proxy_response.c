/* libFuzzer target: an upstream's response head on its way to the client.
 *
 * The input is what an upstream sends.  It goes through what proxy.c's
 * take_response_head does with it: pt_h1_parse_response, interim 1xx heads
 * (all but 101) swallowed, then pt_proxy_connection_names and
 * pt_proxy_drop_response_header decide which fields cross.  A 101 is taken
 * as the answer to an upgrade the client asked for (a tunnel).
 * Invariants checked:
 *  - every head parsed lies inside the input, its fields are tokens and
 *    values with no CR, LF or NUL and no surrounding whitespace, and it
 *    never claims both a length and chunked framing;
 *  - the Connection names are the whole Connection value or nothing;
 *  - no hop-by-hop field (outside a tunnel's Connection and Upgrade), no
 *    Content-Length and no field the Connection header names crosses;
 *  - the head the proxy queues for it (pt_proxy_response_head, the one
 *    bounded writer), for every framing it can choose and with filter
 *    edits, parses again with the same status, the fields that cross, the
 *    edits, and exactly the framing chosen;
 *  - with a route's strip_prefix put back into Location and
 *    Content-Location (a long prefix, so that every such field grows past
 *    what the upstream sent), each field that crosses is the upstream's,
 *    in order, with the prefix before what pt_location_rewrite keeps of a
 *    rewritten one, and what it keeps is a part of the value (or "/"). */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "portico/assert.h"
#include "portico/err-t.h"
#include "portico/filter.h"
#include "portico/h1_parser.h"
#include "portico/http.h"
#include "portico/location.h"
#include "portico/proxy.h"
#include "portico/upstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HEADERS 100 /* a listener's default max_headers, as proxy.c uses it */

static bool keep[MAX_HEADERS]; /* which of the upstream's fields cross */

static bool has_ctl(pt_str_t s)
{
    for (size_t i = 0; i < s.n; i++)
        if (s.p[i] == '\r' || s.p[i] == '\n' || s.p[i] == '\0')
            return true;
    return false;
}

static void check_head(const char *base, size_t left, int rc, const pt_h1_resp_t *r)
{
    PT_ASSERT((size_t)rc <= left && r->head_len == (size_t)rc);
    PT_ASSERT(r->status >= 100 && r->status <= 599);
    PT_ASSERT(!(r->chunked && r->content_length >= 0));
    PT_ASSERT(r->nheaders <= MAX_HEADERS);
    for (size_t i = 0; i < r->nheaders; i++) {
        pt_str_t n = r->headers[i].name, v = r->headers[i].value;
        PT_ASSERT(n.n > 0 && n.p >= base && n.p + n.n <= base + rc);
        PT_ASSERT(v.p >= base && v.p + v.n <= base + rc);
        for (size_t k = 0; k < n.n; k++)
            PT_ASSERT(pt_http_is_tchar((unsigned char)n.p[k]));
        PT_ASSERT(!has_ctl(v));
        PT_ASSERT(!v.n || (v.p[0] != ' ' && v.p[0] != '\t' && v.p[v.n - 1] != ' ' && v.p[v.n - 1] != '\t'));
    }
}

/* The fields that crossed come first in r2, in the upstream's order, each
 * as it was or (a Location) with the prefix put back. */
static void check_fields(const pt_h1_resp_t *r, const pt_h1_resp_t *r2, const pt_fx_t *fx, const pt_location_ctx_t *lc)
{
    size_t j = 0;
    for (size_t i = 0; i < r->nheaders; i++) {
        const pt_h1_header_t *f = &r->headers[i];
        if (!keep[i] || (fx && pt_fx_overrides(fx->resp, fx->nresp, f->name)))
            continue;
        PT_ASSERT(j < r2->nheaders && pt_str_eq(r2->headers[j].name, f->name));
        pt_str_t kept, got = r2->headers[j++].value;
        if (lc && pt_location_field(f, lc, &kept)) {
            PT_ASSERT(kept.n <= f->value.n);
            PT_ASSERT((kept.p >= f->value.p && kept.p + kept.n <= f->value.p + f->value.n) ||
                      (kept.n == 1 && kept.p[0] == '/'));
            PT_ASSERT(got.n == lc->loc->prefix.n + kept.n && memcmp(got.p, lc->loc->prefix.p, lc->loc->prefix.n) == 0 &&
                      memcmp(got.p + lc->loc->prefix.n, kept.p, kept.n) == 0);
        } else {
            PT_ASSERT(pt_str_eq(got, f->value));
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pt_h1_header_t headers[MAX_HEADERS], again[MAX_HEADERS + 4];
    pt_h1_limits_t lim = {8192, PT_UPCONN_IBUF, MAX_HEADERS};
    pt_h1_resp_t r = {.headers = headers};
    const char *base = (const char *)data;
    size_t left = size;
    int rc;
    for (;;) {
        rc = pt_h1_parse_response(base, left, &lim, &r);
        if (rc <= 0) {
            PT_ASSERT(rc == PT_EAGAIN || rc == PT_EINVAL || rc == PT_ETOOBIG);
            return 0;
        }
        check_head(base, left, rc, &r);
        if (r.status >= 200 || r.status == 101)
            break;
        base += rc; /* 100 Continue and friends: the proxy swallows them */
        left -= (size_t)rc;
    }

    bool tunnel = r.status == 101;
    pt_str_t tokens = PT_STR_NULL;
    const pt_h1_header_t *ch = pt_h1_resp_find(&r, PT_STR("connection"));
    if (ch) {
        tokens = pt_proxy_connection_names(ch->value);
        PT_ASSERT(!tokens.n || (tokens.p == ch->value.p && tokens.n == ch->value.n));
    }
    size_t kept = 0;
    for (size_t i = 0; i < r.nheaders; i++) {
        pt_str_t n = r.headers[i].name;
        keep[i] = !pt_proxy_drop_response_header(n, tokens, tunnel);
        /* a 101 keeps Connection and Upgrade: they say what the tunnel carries */
        bool tunnel_field = tunnel && (PT_STR_IEQ(n, "connection") || PT_STR_IEQ(n, "upgrade"));
        if (PT_STR_IEQ(n, "content-length") || (tokens.n && pt_str_list_has_token(tokens, n) && !tunnel_field))
            PT_ASSERT(!keep[i]);
        if (pt_proxy_hop_by_hop(n))
            PT_ASSERT(keep[i] == tunnel_field);
        if (keep[i])
            kept++;
    }

    /* The head the proxy queues (pt_proxy_response_head, through the one
     * bounded writer), for each framing it can choose, with filter edits:
     * it must parse again with the same status, the kept fields, the
     * edits and exactly the framing asked for. */
    bool no_body = tunnel || r.status == 204 || r.status == 304;
    static const char date[] = "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n";
    pt_fx_t *fx = calloc(1, sizeof(*fx));
    pt_hdr_edit_t edits[2];
    PT_ASSERT(fx);
    fx->resp = edits; /* as pt_fx_add leaves them */
    fx->capresp = 2;
    fx->resp[fx->nresp++] = (pt_hdr_edit_t){PT_HDR_SET, PT_STR("x-edit"), PT_STR("set by a filter")};
    fx->resp[fx->nresp++] = (pt_hdr_edit_t){PT_HDR_REMOVE, PT_STR("server"), PT_STR_NULL};
    size_t removed = 0, dated = 0;
    for (size_t i = 0; i < r.nheaders; i++) {
        if (keep[i] && (PT_STR_IEQ(r.headers[i].name, "server") || PT_STR_IEQ(r.headers[i].name, "x-edit")))
            removed++;
        dated |= keep[i] && PT_STR_IEQ(r.headers[i].name, "date");
    }
    /* strip_prefix: 300 bytes, so a rewritten field outgrows its source */
    static char prefix[301];
    static pt_str_t own[] = {PT_STR("127.0.0.1:8080"), PT_STR("backend.internal")};
    static pt_location_t loc;
    if (!prefix[0]) {
        memset(prefix, 'p', sizeof(prefix) - 1);
        prefix[0] = '/';
        loc = (pt_location_t){{prefix, sizeof(prefix) - 1}, own, 2};
    }
    pt_location_ctx_t lc = {&loc, PT_STR("api.example:80")};
    for (int v = 0; v < 4; v++) {
        pt_proxy_framing_t fr = {
            .tunnel = tunnel,
            .length = r.content_length >= 0,
            .chunked = !no_body && r.content_length < 0 && !(v & 1),
            .close = (v & 2) != 0 || (!no_body && r.content_length < 0 && (v & 1)),
            .http10 = (v & 1) != 0,
        };
        pt_outq_t q = {0};
        size_t n = pt_proxy_response_head(&q, &r, base, &fr, v & 2 ? fx : NULL, v & 1 ? &lc : NULL, date);
        PT_ASSERT(n > 0 && q.pending == n && q.nseg == 1);
        const char *out = q.buf;
        pt_h1_resp_t r2 = {.headers = again};
        pt_h1_limits_t lim2 = {n, n + 1, MAX_HEADERS + 4};
        int rc2 = pt_h1_parse_response(out, n, &lim2, &r2);
        PT_ASSERT(rc2 > 0 && (size_t)rc2 == n);
        PT_ASSERT(r2.status == r.status);
        PT_ASSERT(memcmp(out + 9, base + 9, 3) == 0); /* the status code, and the reason phrase after it */
        size_t added = !dated;
        if (!tunnel) {
            bool cl = fr.length && r.status != 204;
            PT_ASSERT(r2.content_length == (cl ? r.content_length : -1));
            PT_ASSERT(r2.chunked == fr.chunked);
            added += cl + fr.chunked + (fr.close || fr.http10);
        }
        if (v & 2) /* x-edit set (replacing any), server removed */
            PT_ASSERT(r2.nheaders == kept - removed + added + 1);
        else
            PT_ASSERT(r2.nheaders == kept + added);
        check_fields(&r, &r2, v & 2 ? fx : NULL, v & 1 ? &lc : NULL);
        for (size_t i = 0; i < r2.nheaders; i++) {
            pt_str_t nm = r2.headers[i].name;
            PT_ASSERT(!pt_proxy_hop_by_hop(nm) || tunnel || PT_STR_IEQ(nm, "connection") ||
                      PT_STR_IEQ(nm, "transfer-encoding"));
        }
        pt_outq_free(&q);
    }
    free(fx);
    return 0;
}
