/* A strict HTTP/1.1 request head parser.
 *
 * It answers 400 to everything that makes the framing or the target of a
 * request ambiguous, because a proxy that reads a request differently from
 * the server behind it can be used to smuggle a second request past it:
 * Content-Length together with Transfer-Encoding, differing or non-numeric
 * Content-Length, any Transfer-Encoding but a single "chunked", obs-fold,
 * whitespace before a colon, non-token characters in names, bare CR or LF,
 * NUL and other control bytes, HTTP versions other than 1.0 and 1.1, and a
 * missing or repeated Host in HTTP/1.1.
 *
 * The head is parsed in one pass once its end (CRLF CRLF) is in the buffer,
 * as picohttpparser and h2o do; before that we only look for the end and
 * check the limits, so a slow client costs a memchr per read. */
#include "config.h"

#include <string.h>

#include "portico/err-t.h"
#include "portico/h1_parser.h"
#include "portico/http.h"

#define FAIL(code) \
    do { \
        *status = (code); \
        return PT_EINVAL; \
    } while (0)

const pt_h1_header_t *pt_h1_find(const pt_h1_req_t *req, pt_str_t name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (pt_str_caseeq(req->headers[i].name, name))
            return &req->headers[i];
    return NULL;
}

/* The value of query argument `name` (raw, not decoded), or NULL.p. */
bool pt_h1_query_name_is(pt_str_t raw, const char *name)
{
    size_t k = 0;
    for (size_t i = 0; i < raw.n; i++, k++) {
        char ch = raw.p[i];
        if (ch == '%' && i + 2 < raw.n && pt_hexval(raw.p[i + 1]) >= 0 && pt_hexval(raw.p[i + 2]) >= 0) {
            ch = (char)(pt_hexval(raw.p[i + 1]) << 4 | pt_hexval(raw.p[i + 2]));
            i += 2;
        } else if (ch == '+') {
            ch = ' ';
        }
        if (!name[k] || name[k] != ch)
            return false;
    }
    return !name[k];
}

pt_str_t pt_h1_query_arg(pt_str_t q, const char *name)
{
    size_t nl = strlen(name);
    const char *p = q.p, *end = q.p + q.n;
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p)), *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        const char *ke = eq ? eq : e;
        if ((size_t)(ke - p) == nl && memcmp(p, name, nl) == 0)
            return eq ? (pt_str_t){eq + 1, (size_t)(e - eq - 1)} : (pt_str_t){e, 0};
        p = amp ? amp + 1 : NULL;
    }
    return PT_STR_NULL;
}

bool pt_h1_cookie_next(pt_str_t v, size_t *at, pt_str_t *pair, pt_str_t *value)
{
    const char *p = v.p + *at, *end = v.p + v.n;
    while (p < end && (*p == ' ' || *p == ';'))
        p++;
    if (p >= end) {
        *at = v.n;
        return false;
    }
    const char *semi = memchr(p, ';', (size_t)(end - p)), *e = semi ? semi : end;
    const char *eq = memchr(p, '=', (size_t)(e - p));
    *pair = (pt_str_t){p, (size_t)(e - p)};
    *value = eq ? (pt_str_t){eq + 1, (size_t)(e - eq - 1)} : PT_STR_NULL;
    *at = (size_t)(e - v.p);
    return true;
}

bool pt_h1_cookie_named(pt_str_t pair, const char *name, size_t nl)
{
    return pair.n > nl && pair.p[nl] == '=' && memcmp(pair.p, name, nl) == 0;
}

pt_str_t pt_h1_cookie(const pt_h1_req_t *req, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < req->nheaders; i++) {
        if (!PT_STR_IEQ(req->headers[i].name, "cookie"))
            continue;
        pt_str_t pair, value;
        for (size_t at = 0; pt_h1_cookie_next(req->headers[i].value, &at, &pair, &value);)
            if (pt_h1_cookie_named(pair, name, nl))
                return value;
    }
    return PT_STR_NULL;
}

/* Where the head ends (index just past CRLF CRLF), or 0.  Also reports the
 * length of the request line. */
static size_t find_head_end(const char *buf, size_t len, size_t start, size_t *line_len)
{
    const char *p = buf + start, *end = buf + len;
    *line_len = 0;
    while (p < end) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        if (!lf)
            return 0;
        if (!*line_len)
            *line_len = (size_t)(lf - (buf + start));
        /* An empty line: "\r\n" right after the previous line's "\n". */
        if (lf + 2 < end && lf[1] == '\r' && lf[2] == '\n')
            return (size_t)(lf + 3 - buf);
        if (lf + 1 < end && lf[1] == '\n')
            return (size_t)(lf + 2 - buf); /* bare LF: the full parse rejects it */
        p = lf + 1;
    }
    return 0;
}

static bool is_vchar_or_obs(unsigned char c)
{
    return (c > 0x20 && c != 0x7f);
}

static int parse_digits(pt_str_t v, int64_t *out)
{
    if (v.n == 0 || v.n > 18)
        return -1;
    int64_t n = 0;
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return -1;
        n = n * 10 + (v.p[i] - '0');
    }
    *out = n;
    return 0;
}

/* Content-Length: digits, or a list of identical digit strings
 * ("5, 5", which RFC 9110 lets a recipient collapse). */
static int parse_content_length(pt_str_t v, int64_t *out)
{
    int64_t first = -1;
    const char *p = v.p, *end = v.p + v.n;
    while (p <= end) {
        const char *s = p;
        while (p < end && *p != ',')
            p++;
        const char *e = p;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        int64_t n;
        if (parse_digits((pt_str_t){s, (size_t)(e - s)}, &n) < 0)
            return -1;
        if (first >= 0 && n != first)
            return -1;
        first = n;
        p++;
    }
    *out = first;
    return 0;
}

static int parse_request_line(const char *p, const char *eol, pt_h1_req_t *req, int *status)
{
    const char *s = p;
    while (p < eol && pt_http_is_tchar((unsigned char)*p))
        p++;
    if (p == s || p == eol || *p != ' ')
        FAIL(400);
    req->method = (pt_str_t){s, (size_t)(p - s)};
    req->method_bit = pt_http_method(req->method);
    s = ++p;
    while (p < eol && is_vchar_or_obs((unsigned char)*p) && (unsigned char)*p < 0x80)
        p++;
    if (p == s || p == eol || *p != ' ')
        FAIL(400);
    req->target = (pt_str_t){s, (size_t)(p - s)};
    p++;
    if ((size_t)(eol - p) != 8 || memcmp(p, "HTTP/1.", 7) != 0) {
        /* HTTP/2.0 or HTTP/3 on this port: say we do not speak it. */
        if ((size_t)(eol - p) == 8 && memcmp(p, "HTTP/", 5) == 0 && p[5] >= '0' && p[5] <= '9' &&
            p[6] == '.' && p[7] >= '0' && p[7] <= '9')
            FAIL(505);
        FAIL(400);
    }
    if (p[7] == '1')
        req->minor = 1;
    else if (p[7] == '0')
        req->minor = 0;
    else if (p[7] >= '2' && p[7] <= '9')
        FAIL(505);
    else
        FAIL(400);
    return 0;
}

static int split_target(pt_h1_req_t *req, int *status)
{
    pt_str_t t = req->target;
    if (t.p[0] == '/') {
        req->form = PT_H1_ORIGIN;
    } else if (t.n == 1 && t.p[0] == '*') {
        if (req->method_bit != PT_M_OPTIONS)
            FAIL(400);
        req->form = PT_H1_ASTERISK;
        req->path = t;
        return 0;
    } else if (req->method_bit == PT_M_CONNECT) {
        req->form = PT_H1_AUTHORITY;
        req->abs_authority = t;
        req->path = PT_STR_NULL;
        return 0;
    } else if ((t.n > 7 && strncasecmp(t.p, "http://", 7) == 0) ||
               (t.n > 8 && strncasecmp(t.p, "https://", 8) == 0)) {
        size_t skip = t.p[4] == ':' ? 7 : 8;
        const char *a = t.p + skip, *end = t.p + t.n, *q = a;
        while (q < end && *q != '/' && *q != '?' && *q != '#')
            q++;
        if (q == a || memchr(a, '@', (size_t)(q - a)))
            FAIL(400); /* no host, or userinfo (deprecated and a spoofing aid) */
        req->form = PT_H1_ABSOLUTE;
        req->abs_authority = (pt_str_t){a, (size_t)(q - a)};
        t = (pt_str_t){q, (size_t)(end - q)};
        if (t.n == 0)
            t = PT_STR("/");
        else if (t.p[0] != '/')
            FAIL(400);
    } else {
        FAIL(400);
    }
    if (memchr(t.p, '#', t.n))
        FAIL(400); /* a fragment is never sent */
    const char *qm = memchr(t.p, '?', t.n);
    req->path = (pt_str_t){t.p, qm ? (size_t)(qm - t.p) : t.n};
    req->query = qm ? (pt_str_t){qm + 1, (size_t)(t.p + t.n - qm - 1)} : PT_STR_NULL;
    return 0;
}

bool pt_h1_valid_host(pt_str_t h)
{
    if (h.n == 0 || h.n > 255)
        return false;
    for (size_t i = 0; i < h.n; i++) {
        unsigned char c = (unsigned char)h.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '-' || c == '_' || c == ':' || c == '[' || c == ']' || c == '~' || c == '%'))
            return false;
    }
    return true;
}

/* The usual tokens of a Connection value, in one pass. */
static void connection_tokens(pt_str_t v, bool *close, bool *keep, bool *upgrade)
{
    const char *p = v.p;
    pt_str_t t;
    while (pt_str_next_token(&p, v.p + v.n, &t)) {
        *close |= PT_STR_IEQ(t, "close");
        *keep |= PT_STR_IEQ(t, "keep-alive");
        *upgrade |= PT_STR_IEQ(t, "upgrade");
    }
}

/* Header semantics that decide framing and connection handling. */
static int interpret(pt_h1_req_t *req, int *status)
{
    int host_count = 0, te_count = 0;
    bool conn_close = false, conn_keep = false, conn_upgrade = false, has_upgrade = false;
    pt_str_t te = PT_STR_NULL;
    req->content_length = -1;
    for (size_t i = 0; i < req->nheaders; i++) {
        pt_str_t n = req->headers[i].name, v = req->headers[i].value;
        switch (n.n) {
        case 4:
            if (PT_STR_IEQ(n, "host")) {
                host_count++;
                req->host = v;
            }
            break;
        case 6:
            if (PT_STR_IEQ(n, "expect")) {
                if (!PT_STR_IEQ(v, "100-continue"))
                    FAIL(417);
                req->expect_continue = req->minor == 1;
            }
            break;
        case 7:
            if (PT_STR_IEQ(n, "upgrade"))
                has_upgrade = true;
            break;
        case 10:
            if (PT_STR_IEQ(n, "connection"))
                connection_tokens(v, &conn_close, &conn_keep, &conn_upgrade);
            break;
        case 14:
            if (PT_STR_IEQ(n, "content-length")) {
                int64_t cl;
                if (parse_content_length(v, &cl) < 0)
                    FAIL(400);
                if (req->content_length >= 0 && cl != req->content_length)
                    FAIL(400);
                req->content_length = cl;
            }
            break;
        case 17:
            if (PT_STR_IEQ(n, "transfer-encoding")) {
                te_count++;
                te = v;
            }
            break;
        }
    }
    if (te_count) {
        /* Only one coding, and it is chunked: anything else is either
         * unsupported or a way to confuse a parser down the line. */
        if (te_count > 1 || !PT_STR_IEQ(te, "chunked") || req->content_length >= 0 || req->minor == 0)
            FAIL(400);
        req->chunked = true;
    }
    if (host_count > 1 || (req->minor == 1 && host_count == 0))
        FAIL(400);
    if (host_count && !pt_h1_valid_host(req->host))
        FAIL(400);
    if (req->form == PT_H1_ABSOLUTE) {
        if (!pt_h1_valid_host(req->abs_authority))
            FAIL(400);
        req->host = req->abs_authority; /* RFC 9112 3.2.2: the target wins */
    }
    req->keep_alive = req->minor == 1 ? !conn_close : (conn_keep && !conn_close);
    req->upgrade = conn_upgrade && has_upgrade;
    return 0;
}

/* The header field lines from p up to and including the empty line that
 * ends at stop.  Names are tokens with the colon right after them; values
 * lose surrounding whitespace and may not hold control bytes. */
static int parse_fields(const char *p, const char *stop, pt_h1_header_t *headers, size_t max, size_t *n,
                        int *status)
{
    *n = 0;
    for (;;) {
        const char *eol = memchr(p, '\n', (size_t)(stop - p));
        if (eol == p || eol[-1] != '\r')
            FAIL(400); /* bare LF */
        if (eol == p + 1)
            return 0; /* the empty line */
        if (*p == ' ' || *p == '\t')
            FAIL(400); /* obs-fold */
        const char *s = p;
        while (pt_http_is_tchar((unsigned char)*p))
            p++;
        if (p == s || *p != ':')
            FAIL(400); /* empty name, bad character, or space before the colon */
        pt_str_t name = {s, (size_t)(p - s)};
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        s = p;
        const char *ve = eol - 1;
        for (const char *q = s; q < ve; q++) {
            unsigned char c = (unsigned char)*q;
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                FAIL(400); /* NUL, bare CR and other controls */
        }
        while (ve > s && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        if (*n == max)
            FAIL(431);
        headers[(*n)++] = (pt_h1_header_t){name, {s, (size_t)(ve - s)}};
        p = eol + 1;
    }
}

/* The request line of `line_len` bytes (up to, not including, its LF) on its
 * own, before the rest of the head has come: 0, or PT_EINVAL with *status. */
static int check_request_line(const char *p, size_t line_len, pt_h1_req_t *req, int *status)
{
    if (line_len == 0 || p[line_len - 1] != '\r')
        FAIL(400); /* bare LF */
    if (parse_request_line(p, p + line_len - 1, req, status) < 0)
        return PT_EINVAL;
    return split_target(req, status);
}

void pt_h1_peek_request_line(const char *buf, size_t len, pt_str_t *method, pt_str_t *target, pt_str_t *protocol)
{
    *method = *target = *protocol = PT_STR_NULL;
    const char *p = buf, *end = buf + len;
    for (int i = 0; i < 4 && end - p >= 2 && p[0] == '\r' && p[1] == '\n'; i++)
        p += 2; /* the empty lines the parser skips */
    const char *s = p;
    while (p < end && pt_http_is_tchar((unsigned char)*p))
        p++;
    if (p == s || p == end || *p != ' ')
        return;
    *method = (pt_str_t){s, (size_t)(p - s)};
    s = ++p;
    while (p < end && *p != ' ' && *p != '\r' && *p != '\n')
        p++;
    if (p == s)
        return;
    *target = (pt_str_t){s, (size_t)(p - s)};
    if (end - p >= 10 && p[0] == ' ' && memcmp(p + 1, "HTTP/1.", 7) == 0 && (p[8] == '0' || p[8] == '1') &&
        (p[9] == '\r' || p[9] == '\n'))
        *protocol = (pt_str_t){p + 1, 8};
}

int pt_h1_parse_request(const char *buf, size_t len, const pt_h1_limits_t *lim, pt_h1_req_t *req, int *status)
{
    pt_h1_header_t *headers = req->headers;
    memset(req, 0, sizeof(*req));
    req->headers = headers;
    /* RFC 9112 2.2: ignore empty lines before the request line. */
    size_t start = 0;
    while (start + 1 < len && buf[start] == '\r' && buf[start + 1] == '\n' && start < 8)
        start += 2;
    if (start < len && (buf[start] == '\r' || buf[start] == '\n') && start + 1 < len)
        FAIL(400);
    req->leading_crlf = start;
    size_t line_len;
    size_t end = find_head_end(buf, len, start, &line_len);
    if (!end) {
        if ((line_len ? line_len : len - start) > lim->max_request_line)
            FAIL(414);
        if (len - start >= lim->max_head)
            FAIL(431);
        /* The request line is complete: judge it now.  A bad one ("GET /x"
         * with no version, "HTTP/2.0", a double space) gets its 400 or 505
         * at once instead of waiting for an empty line that an HTTP/0.9
         * client never sends. */
        if (line_len && check_request_line(buf + start, line_len, req, status) < 0)
            return PT_EINVAL;
        return PT_EAGAIN;
    }
    if (line_len > lim->max_request_line + 1)
        FAIL(414);
    if (end - start > lim->max_head)
        FAIL(431);

    const char *p = buf + start, *stop = buf + end;
    const char *eol = memchr(p, '\n', (size_t)(stop - p));
    if (eol == p || eol[-1] != '\r')
        FAIL(400);
    if (parse_request_line(p, eol - 1, req, status) < 0)
        return PT_EINVAL;
    if (split_target(req, status) < 0)
        return PT_EINVAL;
    if (parse_fields(eol + 1, stop, req->headers, lim->max_headers, &req->nheaders, status) < 0)
        return PT_EINVAL;
    if (interpret(req, status) < 0)
        return PT_EINVAL;
    req->head_len = end;
    return (int)end;
}

/* ---- responses ---- */

const pt_h1_header_t *pt_h1_resp_find(const pt_h1_resp_t *r, pt_str_t name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (pt_str_caseeq(r->headers[i].name, name))
            return &r->headers[i];
    return NULL;
}

int pt_h1_parse_response(const char *buf, size_t len, const pt_h1_limits_t *lim, pt_h1_resp_t *r)
{
    pt_h1_header_t *headers = r->headers;
    int st = 0, *status = &st;
    memset(r, 0, sizeof(*r));
    r->headers = headers;
    size_t line_len;
    size_t end = find_head_end(buf, len, 0, &line_len);
    if (!end)
        return len >= lim->max_head ? PT_ETOOBIG : PT_EAGAIN;
    const char *p = buf, *eol = memchr(buf, '\n', end);
    /* HTTP/1.x SP 3DIGIT SP reason CRLF */
    if (eol - p < 13 || eol[-1] != '\r' || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') ||
        p[8] != ' ' || p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9' ||
        (p[12] != ' ' && p + 12 != eol - 1))
        return PT_EINVAL;
    r->minor = p[7] - '0';
    r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    for (const char *q = p + 13; q < eol - 1; q++)
        if ((unsigned char)*q < 0x20 && *q != '\t')
            return PT_EINVAL;
    if (parse_fields(eol + 1, buf + end, r->headers, lim->max_headers, &r->nheaders, status) < 0)
        return PT_EINVAL;
    bool conn_close = false, conn_keep = false;
    int te_count = 0;
    pt_str_t te = PT_STR_NULL;
    r->content_length = -1;
    bool conn_upgrade = false;
    for (size_t i = 0; i < r->nheaders; i++) {
        pt_str_t n = r->headers[i].name, v = r->headers[i].value;
        if (n.n == 14 && PT_STR_IEQ(n, "content-length")) {
            int64_t cl;
            if (parse_content_length(v, &cl) < 0 || (r->content_length >= 0 && cl != r->content_length))
                return PT_EINVAL;
            r->content_length = cl;
        } else if (n.n == 17 && PT_STR_IEQ(n, "transfer-encoding")) {
            te_count++;
            te = v;
        } else if (n.n == 10 && PT_STR_IEQ(n, "connection")) {
            connection_tokens(v, &conn_close, &conn_keep, &conn_upgrade);
        }
    }
    if (te_count) {
        if (te_count > 1 || !PT_STR_IEQ(te, "chunked") || r->minor == 0)
            return PT_EINVAL;
        r->chunked = true;
        r->content_length = -1; /* RFC 9112 6.3: Transfer-Encoding wins; the length is not passed on */
    }
    r->keep_alive = r->minor == 1 ? !conn_close : (conn_keep && !conn_close);
    r->head_len = end;
    return (int)end;
}

/* ---- chunked ---- */

enum { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_TRAILER, CH_TRAILER_LF, CH_DONE };

long pt_h1_chunked_decode(pt_h1_chunked_t *c, const char *buf, size_t len, const char **data, size_t *dlen)
{
    size_t i = 0;
    *dlen = 0;
    *data = NULL;
    while (i < len && !c->done) {
        char ch = buf[i];
        switch (c->state) {
        case CH_SIZE: {
            int v = pt_hexval(ch);
            if (v >= 0) {
                if (++c->digits > 15)
                    return PT_EINVAL; /* would overflow, or absurd */
                c->remaining = c->remaining * 16 + (uint64_t)v;
                i++;
            } else if (c->digits == 0) {
                return PT_EINVAL;
            } else if (ch == ';' || ch == ' ' || ch == '\t') {
                c->state = CH_EXT;
            } else if (ch == '\r') {
                c->state = CH_SIZE_LF;
                i++;
            } else {
                return PT_EINVAL;
            }
            break;
        }
        case CH_EXT:
            /* chunk extensions are skipped, but only printable ones */
            if (ch == '\r') {
                c->state = CH_SIZE_LF;
            } else if (((unsigned char)ch < 0x20 && ch != '\t') || ch == 0x7f) {
                return PT_EINVAL;
            } else if (++c->line > PT_H1_MAX_CHUNK_LINE) {
                return PT_EINVAL;
            }
            i++;
            break;
        case CH_SIZE_LF:
            if (ch != '\n')
                return PT_EINVAL;
            i++;
            c->line = 0;
            c->digits = 0;
            c->state = c->remaining ? CH_DATA : CH_TRAILER;
            break;
        case CH_DATA: {
            size_t n = len - i;
            if (n > c->remaining)
                n = (size_t)c->remaining;
            if (*dlen) /* one payload span per call keeps the API simple */
                return (long)i;
            *data = buf + i;
            *dlen = n;
            c->remaining -= n;
            i += n;
            if (!c->remaining)
                c->state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
            if (ch != '\r')
                return PT_EINVAL;
            c->state = CH_DATA_LF;
            i++;
            break;
        case CH_DATA_LF:
            if (ch != '\n')
                return PT_EINVAL;
            c->state = CH_SIZE;
            i++;
            break;
        case CH_TRAILER:
            /* Trailer fields end with an empty line; c->line counts the
             * bytes of the current field line. */
            if (ch == '\r') {
                c->state = CH_TRAILER_LF;
            } else if (((unsigned char)ch < 0x20 && ch != '\t') || ch == 0x7f) {
                return PT_EINVAL;
            } else {
                c->line++;
                if (c->remaining++ > PT_H1_MAX_TRAILERS)
                    return PT_EINVAL;
            }
            i++;
            break;
        case CH_TRAILER_LF:
            if (ch != '\n')
                return PT_EINVAL;
            i++;
            if (c->line == 0) {
                c->done = true;
                c->state = CH_DONE;
            } else {
                c->line = 0;
                c->state = CH_TRAILER;
            }
            break;
        }
    }
    return (long)i;
}
