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
 *  - the fields that cross, written out as a client head with the framing
 *    the proxy adds, make a head that parses again with the same status,
 *    framing and number of fields (an exact-size buffer: a write past the
 *    computed size is an ASan report). */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "portico/assert.h"
#include "portico/err-t.h"
#include "portico/h1_parser.h"
#include "portico/http.h"
#include "portico/proxy.h"
#include "portico/upstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HEADERS 100 /* a listener's default max_headers, as proxy.c uses it */

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

typedef struct head {
    char *p;
    size_t n;
} head_t;

static void put(head_t *h, const char *s, size_t n)
{
    memcpy(h->p + h->n, s, n);
    h->n += n;
}

#define PUT_LIT(h, lit) put((h), (lit), sizeof(lit) - 1)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pt_h1_header_t headers[MAX_HEADERS], again[MAX_HEADERS + 4];
    static bool keep[MAX_HEADERS];
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
    /* the status line keeps the upstream's reason phrase */
    const char *eol = memchr(base, '\r', (size_t)rc);
    PT_ASSERT(eol && eol - base >= 12);
    size_t need = 9 + (size_t)(eol - base - 9) + 2, kept = 0;
    for (size_t i = 0; i < r.nheaders; i++) {
        pt_str_t n = r.headers[i].name, v = r.headers[i].value;
        keep[i] = !pt_proxy_drop_response_header(n, tokens, tunnel);
        /* a 101 keeps Connection and Upgrade: they say what the tunnel carries */
        bool tunnel_field = tunnel && (PT_STR_IEQ(n, "connection") || PT_STR_IEQ(n, "upgrade"));
        if (PT_STR_IEQ(n, "content-length") || (tokens.n && pt_str_list_has_token(tokens, n) && !tunnel_field))
            PT_ASSERT(!keep[i]);
        if (pt_proxy_hop_by_hop(n))
            PT_ASSERT(keep[i] == tunnel_field);
        if (keep[i]) {
            need += n.n + 2 + v.n + 2;
            kept++;
        }
    }

    /* TODO(head writer): proxy.c's queue_response_head writes this head into
     * a buffer of head_len + 160 bytes, which the fields' growth ("a:" to
     * "a: "), Date, Transfer-Encoding and Connection can pass.  When its
     * bounded replacement is public, call it here instead of the model
     * below, for both client versions and with response-headers edits, at
     * the capacity proxy.c gives it, and keep the same checks on what it
     * writes. */
    bool no_body = tunnel || r.status == 204 || r.status == 304;
    static const char date[] = "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n";
    char cl[48];
    size_t cl_n = 0;
    if (!tunnel && r.content_length >= 0)
        cl_n = (size_t)snprintf(cl, sizeof(cl), "Content-Length: %lld\r\n", (long long)r.content_length);
    bool chunked = !tunnel && !no_body && r.content_length < 0; /* chunked or until the close */
    need += sizeof(date) - 1 + cl_n + (chunked ? 28 : 0) + (tunnel ? 0 : 19) + 2;
    head_t h = {malloc(need), 0};
    PT_ASSERT(h.p);
    PUT_LIT(&h, "HTTP/1.1 ");
    put(&h, base + 9, (size_t)(eol - base - 9));
    PUT_LIT(&h, "\r\n");
    bool has_date = false;
    for (size_t i = 0; i < r.nheaders; i++) {
        if (!keep[i])
            continue;
        pt_str_t n = r.headers[i].name, v = r.headers[i].value;
        has_date |= PT_STR_IEQ(n, "date");
        put(&h, n.p, n.n);
        PUT_LIT(&h, ": ");
        put(&h, v.p, v.n);
        PUT_LIT(&h, "\r\n");
    }
    size_t added = !has_date + (cl_n > 0) + chunked + !tunnel;
    if (!has_date)
        put(&h, date, sizeof(date) - 1);
    else
        need -= sizeof(date) - 1;
    put(&h, cl, cl_n);
    if (chunked)
        PUT_LIT(&h, "Transfer-Encoding: chunked\r\n");
    if (!tunnel)
        PUT_LIT(&h, "Connection: close\r\n");
    PUT_LIT(&h, "\r\n");
    PT_ASSERT(h.n == need);

    pt_h1_resp_t r2 = {.headers = again};
    pt_h1_limits_t lim2 = {need, need + 1, MAX_HEADERS + 4};
    int rc2 = pt_h1_parse_response(h.p, h.n, &lim2, &r2);
    PT_ASSERT(rc2 > 0 && (size_t)rc2 == h.n);
    PT_ASSERT(r2.status == r.status && r2.nheaders == kept + added);
    PT_ASSERT(r2.chunked == chunked);
    PT_ASSERT(r2.content_length == (cl_n ? r.content_length : -1));
    free(h.p);
    return 0;
}
