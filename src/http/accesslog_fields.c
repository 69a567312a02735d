/* The header fields the access log names ($http_NAME, $sent_http_NAME,
 * $upstream_http_NAME), taken when their head is at hand and copied into
 * the request arena: the heads live in buffers that are reused (the
 * client's input buffer between pipelined requests, the upstream's
 * between responses, the output queue once written), and the line is
 * formatted when the request ends.
 *
 * No credential reaches the log through them: Authorization and
 * Proxy-Authorization keep their scheme only ("Bearer ***"), Cookie and
 * Set-Cookie their cookies' names ("sid=***"), and a field whose name says
 * it holds a secret (key, token, secret, password, session) is "***". */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "portico/accesslog.h"
#include "portico/accesslog_conf.h"
#include "portico/arena.h"
#include "portico/h1_parser.h"

bool pt_accesslog_wants(const pt_accesslog_conf_t *conf, int kind)
{
    for (size_t i = 0; i < conf->nhdrs; i++)
        if (conf->hdrs[i].kind == kind)
            return true;
    return false;
}

/* Is field name `f` the variable's NAME: lower case, '-' as '_'? */
static bool name_is(pt_str_t f, const pt_alog_hdr_t *h)
{
    if (f.n != h->n)
        return false;
    for (size_t i = 0; i < f.n; i++) {
        char c = f.p[i];
        c = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c == '-' ? '_' : c;
        if (c != h->name[i])
            return false;
    }
    return true;
}

static bool contains(const pt_alog_hdr_t *h, const char *word)
{
    size_t wl = strlen(word);
    for (size_t i = 0; i + wl <= h->n; i++)
        if (memcmp(h->name + i, word, wl) == 0)
            return true;
    return false;
}

enum { MASK_NONE, MASK_SCHEME, MASK_COOKIES, MASK_ALL };

static int mask_of(const pt_alog_hdr_t *h)
{
    static const char *const secret_words[] = {"key", "token", "secret", "passw", "session"};
    if ((h->n == 13 && !memcmp(h->name, "authorization", 13)) ||
        (h->n == 19 && !memcmp(h->name, "proxy_authorization", 19)))
        return MASK_SCHEME;
    if ((h->n == 6 && !memcmp(h->name, "cookie", 6)) || (h->n == 10 && !memcmp(h->name, "set_cookie", 10)))
        return MASK_COOKIES;
    for (size_t i = 0; i < sizeof(secret_words) / sizeof(secret_words[0]); i++)
        if (contains(h, secret_words[i]))
            return MASK_ALL;
    return MASK_NONE;
}

/* Does a cookie piece with no "=" start at v.p[i] (its first byte that
 * is no blank)? */
static bool nameless_piece(pt_str_t v, size_t i)
{
    if (v.p[i] == ' ' || v.p[i] == '\t')
        return false;
    size_t s = i;
    while (s > 0 && (v.p[s - 1] == ' ' || v.p[s - 1] == '\t'))
        s--;
    if (s > 0 && v.p[s - 1] != ';')
        return false; /* not the piece's first byte */
    for (size_t k = i; k < v.n && v.p[k] != ';'; k++)
        if (v.p[k] == '=')
            return false;
    return true;
}

/* Appends v (masked as `mask` says) to out[*n..max), cut at max. */
static void append(char *out, size_t *n, size_t max, pt_str_t v, int mask)
{
    size_t k = *n;
#define PUT(ch)                                                                                                    \
    do {                                                                                                           \
        if (k < max)                                                                                               \
            out[k++] = (ch);                                                                                       \
    } while (0)
    if (mask == MASK_ALL) {
        v = PT_STR("***");
    } else if (mask == MASK_SCHEME) {
        size_t s = 0;
        while (s < v.n && v.p[s] != ' ')
            s++;
        v.n = s < v.n ? s : 0; /* the scheme, then ***; a bare credential: *** alone */
    }
    if (mask != MASK_COOKIES) {
        for (size_t i = 0; i < v.n; i++)
            PUT(v.p[i]);
        if (mask == MASK_SCHEME)
            for (const char *m = v.n ? " ***" : "***"; *m; m++)
                PUT(*m);
        *n = k;
        return;
    }
    /* name=value pairs ("a=1; b=2", or a Set-Cookie's "a=1; Path=/"):
     * every value is masked, the first of a Set-Cookie (its cookie) and
     * its attributes alike; a piece with no "=" is a cookie with no name
     * (RFC 6265bis: "Set-Cookie: VALUE"), or a flag (HttpOnly): *** */
    bool in_value = false;
    for (size_t i = 0; i < v.n; i++) {
        char c = v.p[i];
        if (c == ';') {
            in_value = false;
            PUT(c);
        } else if (in_value) {
            continue;
        } else if (nameless_piece(v, i)) {
            in_value = true;
            PUT('*');
            PUT('*');
            PUT('*');
            continue;
        } else if (c == '=') {
            in_value = true;
            PUT('=');
            PUT('*');
            PUT('*');
            PUT('*');
        } else {
            PUT(c);
        }
    }
#undef PUT
    *n = k;
}

/* The joined value of one header variable into the arena, or PT_STR_NULL
 * when no field has that name (or the arena is full). */
static pt_str_t join(pt_arena_t *a, const pt_alog_hdr_t *h, const pt_h1_header_t *f, size_t nf)
{
    char buf[PT_ALOG_HDR_MAX];
    size_t n = 0;
    int mask = mask_of(h), found = 0;
    const char *sep = mask == MASK_COOKIES && h->n == 6 ? "; " : ", ";
    for (size_t i = 0; i < nf && n < sizeof(buf); i++) {
        if (!name_is(f[i].name, h))
            continue;
        if (found++)
            for (const char *s = sep; *s && n < sizeof(buf); s++)
                buf[n++] = *s;
        append(buf, &n, sizeof(buf), f[i].value, mask);
    }
    if (!found)
        return PT_STR_NULL;
    char *copy = pt_arena_strndup(a, buf, n);
    return copy ? (pt_str_t){copy, n} : PT_STR_NULL;
}

static bool ready(const pt_accesslog_conf_t *conf, pt_alog_entry_t *e)
{
    if (e->hdr)
        return true;
    if (!e->arena)
        return false;
    e->hdr = pt_arena_zalloc(e->arena, conf->nhdrs * sizeof(*e->hdr));
    return e->hdr != NULL;
}

void pt_accesslog_take_fields(const pt_accesslog_conf_t *conf, pt_alog_entry_t *e, int kind,
                              const pt_h1_header_t *f, size_t n)
{
    if (!pt_accesslog_wants(conf, kind) || !ready(conf, e))
        return;
    for (size_t i = 0; i < conf->nhdrs; i++)
        if (conf->hdrs[i].kind == kind)
            e->hdr[i] = join(e->arena, &conf->hdrs[i], f, n);
}

/* The fields of a head we wrote ourselves: CRLF lines "Name: value". */
#define HEAD_FIELDS_MAX 128

/* A field an HTTP/2 stream does not send (h2.c drops it from the head). */
static bool is_hop_by_hop(pt_str_t n)
{
    static const char *const hop[] = {"connection", "keep-alive", "proxy-connection", "te",
                                      "trailer",    "upgrade",    "transfer-encoding"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        if (n.n == strlen(hop[i]) && strncasecmp(n.p, hop[i], n.n) == 0)
            return true;
    return false;
}

void pt_accesslog_take_head(const pt_accesslog_conf_t *conf, pt_alog_entry_t *e, int kind, const char *head,
                            size_t len)
{
    bool h2 = e->protocol.n == 8 && memcmp(e->protocol.p, "HTTP/2.0", 8) == 0;
    if (!pt_accesslog_wants(conf, kind))
        return;
    pt_h1_header_t f[HEAD_FIELDS_MAX];
    size_t nf = 0;
    const char *p = memchr(head, '\n', len), *end = head + len;
    while (p && ++p < end && nf < HEAD_FIELDS_MAX) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            break;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon) {
            const char *v = colon + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            pt_h1_header_t h = {{p, (size_t)(colon - p)}, {v, (size_t)(ve - v)}};
            if (!h2 || !is_hop_by_hop(h.name))
                f[nf++] = h;
        }
        p = eol;
    }
    pt_accesslog_take_fields(conf, e, kind, f, nf);
}
