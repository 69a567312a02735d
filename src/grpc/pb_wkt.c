/* The text forms the well-known types share both ways (pb_json.h):
 * Timestamp (RFC 3339, UTC), Duration ("-1.5s"), FieldMask names,
 * base64 as proto3 JSON accepts it, and JSON strings of UTF-8. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "portico/pb_json.h"
#include "portico/str.h"

#define TS_MIN (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define TS_MAX 253402300799LL   /* 9999-12-31T23:59:59Z */
#define DUR_MAX 315576000000LL  /* 10,000 years */

/* Days since 1970-01-01 and back (H. Hinnant's civil calendar algorithms). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* ".123", ".123456" or ".123456789": as few groups of three as hold it. */
static size_t frac(int32_t nanos, char *out)
{
    if (!nanos)
        return 0;
    if (nanos % 1000000 == 0)
        return (size_t)sprintf(out, ".%03d", nanos / 1000000);
    if (nanos % 1000 == 0)
        return (size_t)sprintf(out, ".%06d", nanos / 1000);
    return (size_t)sprintf(out, ".%09d", nanos);
}

size_t pt_wkt_timestamp_fmt(int64_t secs, int32_t nanos, char *out)
{
    if (secs < TS_MIN || secs > TS_MAX || nanos < 0 || nanos > 999999999)
        return 0;
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t sod = secs - days * 86400, y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    size_t n = (size_t)sprintf(out, "%04d-%02u-%02uT%02d:%02d:%02d", (int)y, m, d, (int)(sod / 3600),
                               (int)(sod / 60 % 60), (int)(sod % 60));
    n += frac(nanos, out + n);
    out[n++] = 'Z';
    out[n] = '\0';
    return n;
}

size_t pt_wkt_duration_fmt(int64_t secs, int32_t nanos, char *out)
{
    if (secs < -DUR_MAX || secs > DUR_MAX || nanos < -999999999 || nanos > 999999999 || (secs > 0 && nanos < 0) ||
        (secs < 0 && nanos > 0))
        return 0;
    size_t n = 0;
    if (secs < 0 || nanos < 0)
        out[n++] = '-';
    n += (size_t)sprintf(out + n, "%lld", (long long)(secs < 0 ? -secs : secs));
    n += frac(nanos < 0 ? -nanos : nanos, out + n);
    out[n++] = 's';
    out[n] = '\0';
    return n;
}

/* k digits at *p as a number; false when they are not digits. */
static bool digits(const char **p, const char *end, size_t k, int64_t *v)
{
    if ((size_t)(end - *p) < k)
        return false;
    *v = 0;
    for (size_t i = 0; i < k; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return false;
        *v = *v * 10 + ((*p)[i] - '0');
    }
    *p += k;
    return true;
}

static bool lit(const char **p, const char *end, char c)
{
    if (*p == end || **p != c)
        return false;
    (*p)++;
    return true;
}

/* "." and 1 to 9 digits, as nanoseconds; none is 0. */
static bool parse_frac(const char **p, const char *end, int32_t *nanos)
{
    *nanos = 0;
    if (*p == end || **p != '.')
        return true;
    (*p)++;
    int k = 0;
    int32_t v = 0;
    while (*p < end && **p >= '0' && **p <= '9' && k < 9) {
        v = v * 10 + (**p - '0');
        (*p)++;
        k++;
    }
    if (!k || (*p < end && **p >= '0' && **p <= '9'))
        return false;
    for (; k < 9; k++)
        v *= 10;
    *nanos = v;
    return true;
}

bool pt_wkt_timestamp_parse(const char *s, size_t n, int64_t *secs, int32_t *nanos)
{
    const char *p = s, *end = s + n;
    int64_t y, mo, d, h, mi, se;
    if (!digits(&p, end, 4, &y) || !lit(&p, end, '-') || !digits(&p, end, 2, &mo) || !lit(&p, end, '-') ||
        !digits(&p, end, 2, &d) || !(lit(&p, end, 'T') || lit(&p, end, 't')) || !digits(&p, end, 2, &h) ||
        !lit(&p, end, ':') || !digits(&p, end, 2, &mi) || !lit(&p, end, ':') || !digits(&p, end, 2, &se) ||
        !parse_frac(&p, end, nanos))
        return false;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 || mi > 59 || se > 59)
        return false;
    int64_t off = 0;
    if (lit(&p, end, 'Z') || lit(&p, end, 'z')) {
        off = 0;
    } else if (p < end && (*p == '+' || *p == '-')) {
        int sign = *p++ == '-' ? -1 : 1;
        int64_t oh, om;
        if (!digits(&p, end, 2, &oh) || !lit(&p, end, ':') || !digits(&p, end, 2, &om) || oh > 23 || om > 59)
            return false;
        off = sign * (oh * 3600 + om * 60);
    } else {
        return false;
    }
    if (p != end)
        return false;
    *secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se - off;
    return *secs >= TS_MIN && *secs <= TS_MAX;
}

bool pt_wkt_duration_parse(const char *s, size_t n, int64_t *secs, int32_t *nanos)
{
    const char *p = s, *end = s + n;
    bool neg = lit(&p, end, '-');
    int64_t v = 0;
    size_t k = 0;
    while (p < end && *p >= '0' && *p <= '9' && k < 13) {
        v = v * 10 + (*p++ - '0');
        k++;
    }
    if (!k || (p < end && *p >= '0' && *p <= '9') || !parse_frac(&p, end, nanos) || !lit(&p, end, 's') || p != end ||
        v > DUR_MAX)
        return false;
    *secs = neg ? -v : v;
    if (neg)
        *nanos = -*nanos;
    return true;
}

bool pt_wkt_mask_to_json(const char *p, size_t n, char *out)
{
    size_t o = 0;
    if (!n)
        return false; /* an empty path: "a,,b" would not read back */
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if ((c >= 'A' && c <= 'Z') || c == ',' || c == '\0' || (c == '.' && (i == 0 || i + 1 == n || p[i + 1] == '.')))
            return false;
        if (c == '_') {
            if (i + 1 == n || p[i + 1] < 'a' || p[i + 1] > 'z')
                return false;
            out[o++] = (char)(p[++i] - 32);
            continue;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return true;
}

bool pt_wkt_mask_from_json(const char *p, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '_' || c == '\0' || (c == '.' && (i == 0 || i + 1 == n || p[i + 1] == '.')))
            return false; /* no empty name between dots */
        if (c >= 'A' && c <= 'Z') {
            out[o++] = '_';
            out[o++] = (char)(c + 32);
            continue;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return true;
}

long pt_wkt_b64_decode(const char *s, size_t n, uint8_t *out)
{
    bool url = memchr(s, '-', n) || memchr(s, '_', n); /* one alphabet or the other, not both */
    long k = pt_base64_decode((pt_str_t){s, n}, out, n / 4 * 3 + 3, url);
    size_t body = n;
    while (body && s[body - 1] == '=')
        body--;
    if (k < 0 || !body || body % 4 == 0)
        return k;
    /* the bits of the last digit past the last byte are zero, as an encoder writes them */
    int last = pt_base64_value((unsigned char)s[body - 1], url), spare = body % 4 == 2 ? 0x0f : 0x03;
    return last & spare ? -1 : k;
}

/* The length of the UTF-8 sequence at p (at most n bytes), 0 if it is not
 * one (overlong, a surrogate, past U+10FFFF, cut). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t k;
    unsigned min, cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        k = 2, min = 0x80, cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        k = 3, min = 0x800, cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        k = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < k)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return k;
}

void pt_json_put_str(pt_sbuf_t *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    pt_sbuf_put(b, "\"", 1);
    size_t run = 0, i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        size_t k = c >= 0x80 ? utf8_len(p + i, n - i) : 0;
        if (k) {
            i += k;
            continue;
        }
        pt_sbuf_put(b, s + run, i - run);
        char esc[8];
        switch (c) {
        case '"': pt_sbuf_put(b, "\\\"", 2); break;
        case '\\': pt_sbuf_put(b, "\\\\", 2); break;
        case '\n': pt_sbuf_put(b, "\\n", 2); break;
        case '\r': pt_sbuf_put(b, "\\r", 2); break;
        case '\t': pt_sbuf_put(b, "\\t", 2); break;
        default:
            if (c < 0x20) {
                snprintf(esc, sizeof(esc), "\\u%04x", c);
                pt_sbuf_put(b, esc, 6);
            } else {
                pt_sbuf_put(b, "\xef\xbf\xbd", 3); /* not UTF-8: U+FFFD */
            }
        }
        run = ++i;
    }
    pt_sbuf_put(b, s + run, n - run);
    pt_sbuf_put(b, "\"", 1);
}
