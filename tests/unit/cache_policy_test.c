/* The response cache's HTTP rules (cache_policy.h, httpdate.h): one table
 * per function, one row per rule, each row named after what it checks and
 * the section of RFC 9111 (unless another RFC is named) that says so.
 * Header fields are written "Name: value" one a line, as the parser would
 * hand them over (values trimmed of OWS).
 *
 * Times: D is 1000000000 ("Sun, 09 Sep 2001 01:46:40 GMT"); RT, the
 * response time, is D in milliseconds unless a row says otherwise. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "../unit/tap.h"
#include "portico/cache_policy.h"

#define D 1000000000LL
#define RT (D * 1000)
#define DATE_D "Sun, 09 Sep 2001 01:46:40 GMT"
#define DATE_D_PLUS_1 "Sun, 09 Sep 2001 01:46:41 GMT"
#define DATE_D_MINUS_1 "Sun, 09 Sep 2001 01:46:39 GMT"
#define DATE_D_PLUS_100 "Sun, 09 Sep 2001 01:48:20 GMT"
#define DATE_D_PLUS_3600 "Sun, 09 Sep 2001 02:46:40 GMT"
#define DATE_D_MINUS_1000 "Sun, 09 Sep 2001 01:30:00 GMT"
#define DATE_D_MINUS_30D "Fri, 10 Aug 2001 01:46:40 GMT"
#define NOW_2026 1796169600LL /* 2026-12-02 00:00:00 */
#define ABS PT_CC_ABSENT
#define BIG PT_CC_DELTA_MAX
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ---- */

/* Splits "Name: value\nName: value" into h (pointing into spec). */
static size_t hdrs(const char *spec, pt_h1_header_t *h, size_t max)
{
    size_t n = 0;
    const char *p = spec;
    while (spec && *p && n < max) {
        const char *e = strchr(p, '\n');
        e = e ? e : p + strlen(p);
        const char *c = memchr(p, ':', (size_t)(e - p));
        if (c) {
            const char *v = c + 1, *ve = e;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            h[n++] = (pt_h1_header_t){{p, (size_t)(c - p)}, {v, (size_t)(ve - v)}};
        }
        p = *e ? e + 1 : e;
    }
    return n;
}

/* A pt_cc_t as words: its flags, then its values, then "invalid-age";
 * "absent" when no line had the name. */
static const char *cc_words(const pt_cc_t *cc, char *buf, size_t cap)
{
    static const char *const names[] = {"no-store", "no-cache", "private", "public", "must-revalidate",
                                        "proxy-revalidate", "only-if-cached", "no-transform", "must-understand",
                                        "immutable"};
    size_t n = 0;
    buf[0] = '\0';
    if (!cc->present)
        return "absent";
    for (size_t i = 0; i < N(names); i++)
        if (cc->flags & (1u << i))
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? " " : "", names[i]);
    const struct {
        const char *name;
        int64_t v;
    } vals[] = {{"max-age", cc->max_age},     {"s-maxage", cc->s_maxage},
                {"max-stale", cc->max_stale}, {"min-fresh", cc->min_fresh},
                {"swr", cc->stale_while_revalidate}, {"sie", cc->stale_if_error}};
    for (size_t i = 0; i < N(vals); i++)
        if (vals[i].v != ABS)
            n += (size_t)snprintf(buf + n, cap - n, "%s%s=%lld", n ? " " : "", vals[i].name, (long long)vals[i].v);
    if (cc->invalid_age)
        snprintf(buf + n, cap - n, "%sinvalid-age", n ? " " : "");
    return buf;
}

static pt_cache_req_info_t req_of(const char *spec)
{
    pt_h1_header_t h[16];
    pt_cache_req_info_t qi;
    pt_cache_req_info(&qi, h, hdrs(spec, h, N(h)));
    return qi;
}

static pt_cache_resp_info_t resp_of(int status, const char *spec)
{
    pt_h1_header_t h[16];
    pt_cache_resp_info_t ri;
    pt_cache_resp_info(&ri, status, h, hdrs(spec, h, N(h)));
    return ri;
}

/* ---- Cache-Control (§5.2) ---- */

static void test_cc(void)
{
    static const struct {
        const char *what, *field, *headers, *want;
    } rows[] = {
        {"§5.2 no Cache-Control field", "cache-control", "Date: " DATE_D, "absent"},
        {"§5.2 an empty field is present with nothing", "cache-control", "Cache-Control: ", ""},
        {"§5.2.2 every flag directive", "cache-control",
         "Cache-Control: no-store, no-cache, private, public, must-revalidate, proxy-revalidate, only-if-cached, "
         "no-transform, must-understand, immutable",
         "no-store no-cache private public must-revalidate proxy-revalidate only-if-cached no-transform "
         "must-understand immutable"},
        {"§5.2 directive names are case-insensitive", "cache-control", "Cache-Control: NO-STORE, Max-Age=10",
         "no-store max-age=10"},
        {"§5.2.2 every flag directive in upper case", "cache-control",
         "Cache-Control: NO-STORE, NO-CACHE, PRIVATE, PUBLIC, MUST-REVALIDATE, PROXY-REVALIDATE, ONLY-IF-CACHED, "
         "NO-TRANSFORM, MUST-UNDERSTAND, IMMUTABLE",
         "no-store no-cache private public must-revalidate proxy-revalidate only-if-cached no-transform "
         "must-understand immutable"},
        {"§5.2.2 flags given twice count once", "cache-control", "Cache-Control: no-store, no-store\nCache-Control: public",
         "no-store public"},
        {"§5.2 the field name is case-insensitive", "cache-control", "CACHE-CONTROL: no-store", "no-store"},
        {"§5.2.2.1 max-age", "cache-control", "Cache-Control: max-age=60", "max-age=60"},
        {"§1.2.2 max-age with leading zeros", "cache-control", "Cache-Control: max-age=0060", "max-age=60"},
        {"§5.2 max-age as a quoted-string", "cache-control", "Cache-Control: max-age=\"10\"", "max-age=10"},
        {"§4.2.1 max-age=abc is invalid: stale", "cache-control", "Cache-Control: max-age=abc", "invalid-age"},
        {"§4.2.1 max-age=-1 is invalid", "cache-control", "Cache-Control: max-age=-1", "invalid-age"},
        {"§4.2.1 max-age= (empty) is invalid", "cache-control", "Cache-Control: max-age=", "invalid-age"},
        {"§4.2.1 max-age without a value is invalid", "cache-control", "Cache-Control: max-age", "invalid-age"},
        {"§4.2.1 max-age=1.5 is invalid", "cache-control", "Cache-Control: max-age=1.5", "invalid-age"},
        {"§4.2.1 max-age=10 20 is invalid", "cache-control", "Cache-Control: max-age=10 20", "invalid-age"},
        {"§4.2.1 max-age with a control byte is invalid", "cache-control", "Cache-Control: max-age=5\x01",
         "invalid-age"},
        {"§4.2.1 max-age quoted with an escape is invalid", "cache-control", "Cache-Control: max-age=\"1\\0\"",
         "invalid-age"},
        {"§4.2.1 max-age with an unterminated quote is invalid", "cache-control", "Cache-Control: max-age=\"10",
         "invalid-age"},
        {"§1.2.2 a huge max-age saturates at 2^31", "cache-control",
         "Cache-Control: max-age=99999999999999999999999999", "max-age=2147483648"},
        {"§1.2.2 max-age=2147483647 is kept", "cache-control", "Cache-Control: max-age=2147483647",
         "max-age=2147483647"},
        {"§4.2.1 duplicated max-age: the smaller", "cache-control", "Cache-Control: max-age=60, max-age=10",
         "max-age=10"},
        {"§4.2.1 max-age duplicated across lines: the smaller", "cache-control",
         "Cache-Control: max-age=10\nCache-Control: max-age=60", "max-age=10"},
        {"§4.2.1 a good and a bad max-age: invalid", "cache-control", "Cache-Control: max-age=10, max-age=x",
         "max-age=10 invalid-age"},
        {"§5.2 OWS around '=' is tolerated", "cache-control", "Cache-Control: max-age = 10", "max-age=10"},
        {"§5.2.2.10 s-maxage", "cache-control", "Cache-Control: s-maxage=30", "s-maxage=30"},
        {"§5.2.2.10 a bad s-maxage is invalid", "cache-control", "Cache-Control: s-maxage=soon", "invalid-age"},
        {"§5.2.2.10 a quoted huge s-maxage saturates", "cache-control", "Cache-Control: s-maxage=\"9999999999999\"",
         "s-maxage=2147483648"},
        {"§5.2.1.2 max-stale without a value: any staleness", "cache-control", "Cache-Control: max-stale",
         "max-stale=2147483648"},
        {"§5.2.1.2 max-stale=30", "cache-control", "Cache-Control: max-stale=30", "max-stale=30"},
        {"§5.2.1.2 a bad max-stale is absent", "cache-control", "Cache-Control: max-stale=abc", ""},
        {"§5.2.1.2 max-stale twice: the smaller", "cache-control", "Cache-Control: max-stale, MAX-STALE=5",
         "max-stale=5"},
        {"§5.2.1.3 min-fresh", "cache-control", "Cache-Control: min-fresh=20", "min-fresh=20"},
        {"§5.2.1.3 a bad min-fresh is absent", "cache-control", "Cache-Control: min-fresh=-3", ""},
        {"RFC 5861 stale-while-revalidate and stale-if-error", "cache-control",
         "Cache-Control: stale-while-revalidate=30, stale-if-error=\"60\"", "swr=30 sie=60"},
        {"RFC 5861 bad stale-while-revalidate is absent", "cache-control",
         "Cache-Control: stale-while-revalidate=x, stale-if-error", ""},
        {"§5.2.2.4 qualified no-cache, commas in its quotes", "cache-control",
         "Cache-Control: no-cache=\"set-cookie, max-age=99\", max-age=5", "no-cache max-age=5"},
        {"§5.2.2.7 qualified private is private", "cache-control", "Cache-Control: private=\"x-user\"", "private"},
        {"§5.2 an unterminated quote hides the rest of its line", "cache-control",
         "Cache-Control: no-cache=\"a, max-age=99", "no-cache"},
        {"§5.2 ... but not the next line", "cache-control", "Cache-Control: no-cache=\"a\nCache-Control: max-age=7",
         "no-cache max-age=7"},
        {"§5.2.2.9 public with an argument does not count", "cache-control", "Cache-Control: public=yes", ""},
        {"§5.2.2.3 must-understand with an argument does not count", "cache-control",
         "Cache-Control: must-understand=1, no-store", "no-store"},
        {"§5.2.2.5 no-store with an argument still counts", "cache-control", "Cache-Control: no-store=1", "no-store"},
        {"§5.2.3 unknown directives are ignored", "cache-control", "Cache-Control: foo, bar=baz, x=\"a,b\", max-age=5",
         "max-age=5"},
        {"§5.2 empty list members are skipped", "cache-control", "Cache-Control: ,,, ,max-age=5,,", "max-age=5"},
        {"§5.2 junk before a directive is skipped to the comma", "cache-control",
         "Cache-Control: \"quoted, thing\" junk, no-store", "no-store"},
        {"RFC 9213 CDN-Cache-Control is read by its own name", "cdn-cache-control",
         "Cache-Control: no-store\nCDN-Cache-Control: max-age=5", "max-age=5"},
        {"RFC 9213 Cache-Control ignores CDN-Cache-Control", "cache-control",
         "Cache-Control: no-store\nCDN-Cache-Control: max-age=5", "no-store"},
    };
    for (size_t i = 0; i < N(rows); i++) {
        pt_h1_header_t h[16];
        pt_cc_t cc;
        char buf[512];
        pt_cc_parse(&cc, h, hdrs(rows[i].headers, h, N(h)), pt_str_from(rows[i].field));
        is_str(cc_words(&cc, buf, sizeof(buf)), rows[i].want, "cc: %s", rows[i].what);
    }
}

/* Every delta-seconds directive with a good, bad, quoted, duplicated,
 * upper-case and huge value: the directive, its word in cc_words, its
 * section, and what a bad value leaves ("invalid-age" for max-age and
 * s-maxage in a response, §4.2.1; nothing for the others). */
static void test_cc_values(void)
{
    static const struct {
        const char *name, *upper, *word, *section, *bad;
    } rows[] = {
        {"max-age", "MAX-AGE", "max-age", "§5.2.2.1", "invalid-age"},
        {"s-maxage", "S-MAXAGE", "s-maxage", "§5.2.2.10", "invalid-age"},
        {"max-stale", "MAX-STALE", "max-stale", "§5.2.1.2", ""},
        {"min-fresh", "MIN-FRESH", "min-fresh", "§5.2.1.3", ""},
        {"stale-while-revalidate", "STALE-WHILE-REVALIDATE", "swr", "RFC 5861 §3", ""},
        {"stale-if-error", "STALE-IF-ERROR", "sie", "RFC 5861 §4", ""},
    };
    static const struct {
        const char *what, *fmt; /* fmt: @ stands for the name, ^ for it in upper case */
        int want;               /* the value; -1: the bad word; -2: 2^31 */
    } forms[] = {
        {"good", "Cache-Control: @=30", 30},
        {"bad", "Cache-Control: @=3x", -1},
        {"quoted", "Cache-Control: @=\"30\"", 30},
        {"duplicated: the smaller", "Cache-Control: @=30, @=20", 20},
        {"duplicated on two lines: the smaller", "Cache-Control: @=20\nCache-Control: @=30", 20},
        {"upper case", "Cache-Control: ^=30", 30},
        {"huge: saturates", "Cache-Control: @=123456789012345678901234567890", -2},
    };
    for (size_t i = 0; i < N(rows); i++)
        for (size_t j = 0; j < N(forms); j++) {
            char spec[256], want[128], buf[256];
            pt_h1_header_t h[4];
            pt_cc_t cc;
            size_t n = 0;
            for (const char *f = forms[j].fmt; *f && n + 32 < sizeof(spec); f++)
                n += (size_t)snprintf(spec + n, sizeof(spec) - n, "%s",
                                      *f == '@' ? rows[i].name : *f == '^' ? rows[i].upper : (char[2]){*f, 0});
            if (forms[j].want == -1)
                snprintf(want, sizeof(want), "%s", rows[i].bad);
            else
                snprintf(want, sizeof(want), "%s=%lld", rows[i].word,
                         forms[j].want == -2 ? (long long)BIG : (long long)forms[j].want);
            pt_cc_parse(&cc, h, hdrs(spec, h, N(h)), PT_STR("cache-control"));
            is_str(cc_words(&cc, buf, sizeof(buf)), want, "cc: %s %s: %s", rows[i].section, rows[i].name,
                   forms[j].what);
        }
}

/* ---- HTTP-dates (RFC 9110 §5.6.7) ---- */

static void test_dates(void)
{
    static const struct {
        const char *what, *in;
        int64_t now, want;
    } rows[] = {
        {"RFC 9110 §5.6.7 IMF-fixdate", "Sun, 06 Nov 1994 08:49:37 GMT", NOW_2026, 784111777},
        {"RFC 9110 §5.6.7 RFC 850 form", "Sunday, 06-Nov-94 08:49:37 GMT", NOW_2026, 784111777},
        {"RFC 9110 §5.6.7 asctime form", "Sun Nov  6 08:49:37 1994", NOW_2026, 784111777},
        {"RFC 9110 §5.6.7 asctime with a two-digit day", "Sun Nov 06 08:49:37 1994", NOW_2026, 784111777},
        {"RFC 9110 §5.6.7 the epoch", "Thu, 01 Jan 1970 00:00:00 GMT", NOW_2026, 0},
        {"RFC 9110 §5.6.7 the last date", "Fri, 31 Dec 9999 23:59:59 GMT", NOW_2026, 253402300799LL},
        {"RFC 9110 §5.6.7 a leap day", "Thu, 29 Feb 2024 12:00:00 GMT", NOW_2026, 1709208000},
        {"RFC 9110 §5.6.7 29 Feb of a common year", "Wed, 29 Feb 2023 12:00:00 GMT", NOW_2026, -1},
        {"RFC 9110 §5.6.7 31 Nov", "Thu, 31 Nov 2001 00:00:00 GMT", NOW_2026, -1},
        {"RFC 9110 §5.6.7 a wrong day name", "Mon, 06 Nov 1994 08:49:37 GMT", NOW_2026, -1},
        {"RFC 9110 §5.6.7 names are case-sensitive", "sun, 06 nov 1994 08:49:37 GMT", NOW_2026, -1},
        {"RFC 9110 §5.6.7 GMT only", "Sun, 06 Nov 1994 08:49:37 UTC", NOW_2026, -1},
        {"RFC 9110 §5.6.7 second 60", "Sun, 06 Nov 1994 08:49:60 GMT", NOW_2026, -1},
        {"RFC 9110 §5.6.7 hour 24", "Sun, 06 Nov 1994 24:00:00 GMT", NOW_2026, -1},
        {"RFC 9110 §5.6.7 trailing space", "Sun, 06 Nov 1994 08:49:37 GMT ", NOW_2026, -1},
        {"RFC 9110 §5.6.7 one-digit day in IMF", "Sun, 6 Nov 1994 08:49:37 GMT", NOW_2026, -1},
        {"RFC 9110 §5.6.7 before 1970 is refused", "Wed, 31 Dec 1969 23:59:59 GMT", NOW_2026, -1},
        {"RFC 9111 §5.3 Expires: 0 is not a date", "0", NOW_2026, -1},
        {"RFC 9110 §5.6.7 empty", "", NOW_2026, -1},
        {"RFC 9110 §5.6.7 digits for a month", "Sun, 06 011 1994 08:49:37 GMT", NOW_2026, -1},
        {"RFC 9110 §5.6.7 RFC 850 with a short day name", "Sun, 06-Nov-94 08:49:37 GMT", NOW_2026, -1},
        {"RFC 9110 §5.6.7 RFC 850 '70 is 2070, not 50 years ahead (now 2026)", "Wednesday, 01-Jan-70 00:00:00 GMT",
         NOW_2026, 3155760000LL},
        {"RFC 9110 §5.6.7 ... so 1970's day name is refused", "Thursday, 01-Jan-70 00:00:00 GMT", NOW_2026, -1},
        {"RFC 9110 §5.6.7 RFC 850 '77 is 1977 (2077 is 51 years ahead)", "Saturday, 01-Jan-77 00:00:00 GMT",
         NOW_2026, 220924800},
        {"RFC 9110 §5.6.7 RFC 850 '76 in November is 2076 (< 50 years ahead)", "Friday, 06-Nov-76 00:00:00 GMT",
         NOW_2026, 3371846400LL},
        {"RFC 9110 §5.6.7 RFC 850 '94 seen in 2100 is 2094", "Saturday, 06-Nov-94 08:49:37 GMT", 4115491200LL,
         3939871777LL},
    };
    for (size_t i = 0; i < N(rows); i++) {
        pt_str_t in = pt_str_from(rows[i].in);
        int64_t t = pt_http_date_parse_at(in, rows[i].now);
        is_int(t, rows[i].want, "date: %s", rows[i].what);
        if (t < 0)
            continue;
        char out[30] = {0};
        pt_http_date_format(t, out);
        is_int(pt_http_date_parse_at((pt_str_t){out, 29}, rows[i].now), t, "date: %s: format/parse round trip",
               rows[i].what);
        if (in.n == 29)
            is_str(out, rows[i].in, "date: %s: formats back to the same text", rows[i].what);
    }
    char out[30] = {0};
    pt_http_date_format(-5, out);
    is_str(out, "Thu, 01 Jan 1970 00:00:00 GMT", "date: RFC 9110 §5.6.7 formatting clamps before the epoch");
    pt_http_date_format(PT_HTTP_DATE_MAX + 100, out);
    is_str(out, "Fri, 31 Dec 9999 23:59:59 GMT", "date: RFC 9110 §5.6.7 formatting clamps after 9999");
    is_int(pt_http_date_parse(PT_STR("Sunday, 09-Sep-01 01:46:40 GMT")), D,
           "date: RFC 9110 §5.6.7 RFC 850 on the wall clock");
}

/* ---- Age (§5.1) ---- */

static void test_age(void)
{
    static const struct {
        const char *what, *headers;
        int64_t want;
    } rows[] = {
        {"§5.1 Age: 60", "Age: 60", 60},
        {"§5.1 no Age", "Date: " DATE_D, -1},
        {"§5.1 Age: abc is ignored", "Age: abc", -1},
        {"§5.1 Age: -5 is ignored", "Age: -5", -1},
        {"§5.1 Age: 1.5 is ignored", "Age: 1.5", -1},
        {"§5.1 an empty Age is ignored", "Age: ", -1},
        {"§5.1 a quoted Age is ignored", "Age: \"10\"", -1},
        {"§1.2.2 an Age that overflows saturates", "Age: 99999999999999999999999", BIG},
        {"§5.1 a list: the first valid member", "Age: abc, 30", 30},
        {"§5.1 a list of two: the first", "Age: 10, 20", 10},
        {"§5.1 two lines, the first bad", "Age: x\nAge: 20", 20},
        {"§5.1 the field name is case-insensitive", "AGE: 7", 7},
    };
    for (size_t i = 0; i < N(rows); i++) {
        pt_h1_header_t h[16];
        is_int(pt_cache_age_parse(h, hdrs(rows[i].headers, h, N(h))), rows[i].want, "age: %s", rows[i].what);
    }
}

/* ---- what a response and a request say (§4.2, §4.1, RFC 9213) ---- */

static void test_resp_info(void)
{
    static const struct {
        const char *what, *headers;
        int64_t date, expires, lm, age;
        const char *bools; /* e, l, c (set-cookie), *, v (vary), d (cdn), p (pragma) */
    } rows[] = {
        {"§4.2.1 nothing", "", -1, -1, -1, 0, ""},
        {"§4.2.1 Date, Expires, Last-Modified, Age",
         "Date: " DATE_D "\nExpires: " DATE_D_PLUS_100 "\nLast-Modified: " DATE_D_MINUS_1000 "\nAge: 5", D, D + 100,
         D - 1000, 5, "l"},
        {"§5.6.7 a bad Date is absent", "Date: yesterday", -1, -1, -1, 0, ""},
        {"§5.3 Expires: 0 is invalid (-2)", "Expires: 0", -1, -2, -1, 0, ""},
        {"§4.2.1 two different Expires lines: invalid", "Expires: " DATE_D "\nExpires: " DATE_D_PLUS_100, -1, -2, -1,
         0, ""},
        {"§4.2.1 the same Expires twice is that date", "Expires: " DATE_D "\nExpires: " DATE_D, -1, D, -1, 0, ""},
        {"§5.1 a bad Age is 0", "Age: old", -1, -1, -1, 0, ""},
        {"§8.8.3 an ETag", "ETag: \"x\"", -1, -1, -1, 0, "e"},
        {"§8.8.3 an empty ETag is none", "ETag: ", -1, -1, -1, 0, ""},
        {"§8.8.2 a bad Last-Modified is none", "Last-Modified: recently", -1, -1, -1, 0, ""},
        {"§3.1 Set-Cookie", "Set-Cookie: a=b", -1, -1, -1, 0, "c"},
        {"§4.1 Vary", "Vary: accept-encoding", -1, -1, -1, 0, "v"},
        {"§4.1 an empty Vary is none", "Vary: , ", -1, -1, -1, 0, ""},
        {"§4.1 Vary: * alone", "Vary: *", -1, -1, -1, 0, "*v"},
        {"§4.1 Vary: * in a list", "Vary: accept, *", -1, -1, -1, 0, "*v"},
        {"§4.1 Vary: * on a second line", "Vary: accept\nVary: *", -1, -1, -1, 0, "*v"},
        {"§4.1 Vary: \"*\" is not *", "Vary: \"*\"", -1, -1, -1, 0, "v"},
        {"RFC 9213 §2.1 CDN-Cache-Control present", "CDN-Cache-Control: max-age=5\nCache-Control: no-store", -1, -1,
         -1, 0, "d"},
        {"RFC 9213 §2.1 an empty CDN-Cache-Control is ignored", "CDN-Cache-Control: ,\nCache-Control: no-store", -1,
         -1, -1, 0, ""},
        {"§5.4 Pragma: no-cache in a response is reported", "Pragma: x, No-Cache", -1, -1, -1, 0, "p"},
    };
    for (size_t i = 0; i < N(rows); i++) {
        pt_cache_resp_info_t ri = resp_of(200, rows[i].headers);
        char b[16];
        snprintf(b, sizeof(b), "%s%s%s%s%s%s%s", ri.has_etag ? "e" : "", ri.has_last_modified ? "l" : "",
                 ri.set_cookie ? "c" : "", ri.vary_star ? "*" : "", ri.has_vary ? "v" : "", ri.cdn ? "d" : "",
                 ri.pragma_no_cache ? "p" : "");
        ok(ri.date_s == rows[i].date && ri.expires_s == rows[i].expires && ri.last_modified_s == rows[i].lm &&
               ri.age_s == rows[i].age && strcmp(b, rows[i].bools) == 0,
           "resp info: %s (got date %lld expires %lld lm %lld age %lld %s)", rows[i].what, (long long)ri.date_s,
           (long long)ri.expires_s, (long long)ri.last_modified_s, (long long)ri.age_s, b);
    }
    pt_cache_resp_info_t ri = resp_of(200, "CDN-Cache-Control: max-age=5\nCache-Control: no-store, max-age=60");
    char b1[256], b2[256];
    ok(ri.cdn && strcmp(cc_words(&ri.cc, b1, sizeof(b1)), "max-age=5") == 0 &&
           strcmp(cc_words(&ri.cc_plain, b2, sizeof(b2)), "no-store max-age=60") == 0,
       "resp info: RFC 9213 §2.1 CDN-Cache-Control is cc, Cache-Control stays in cc_plain");
}

static void test_req_info(void)
{
    static const struct {
        const char *what, *headers;
        bool no_cache, authorization, conditional, range;
    } rows[] = {
        {"§5.2.1 nothing", "Accept: */*", false, false, false, false},
        {"§5.2.1.4 no-cache", "Cache-Control: no-cache", true, false, false, false},
        {"§5.4 Pragma: no-cache without Cache-Control", "Pragma: no-cache", true, false, false, false},
        {"§5.4 Pragma: no-cache with Cache-Control is ignored", "Pragma: no-cache\nCache-Control: max-stale", false,
         false, false, false},
        {"§3.5 Authorization", "Authorization: Bearer x", false, true, false, false},
        {"RFC 9110 §13.1.2 If-None-Match is conditional", "If-None-Match: \"a\"", false, false, true, false},
        {"RFC 9110 §13.1.3 If-Modified-Since is conditional", "If-Modified-Since: " DATE_D, false, false, true,
         false},
        {"RFC 9110 §14.2 Range", "Range: bytes=0-1", false, false, false, true},
    };
    for (size_t i = 0; i < N(rows); i++) {
        pt_cache_req_info_t qi = req_of(rows[i].headers);
        ok(qi.no_cache == rows[i].no_cache && qi.authorization == rows[i].authorization &&
               qi.conditional == rows[i].conditional && qi.range == rows[i].range,
           "req info: %s", rows[i].what);
    }
    pt_cache_req_info_t qi = req_of("Cache-Control: max-age=abc");
    ok(qi.cc.max_age == ABS && !qi.cc.invalid_age, "req info: §5.2.1.1 a request's bad max-age is absent");
}

/* ---- freshness (§4.2.1, §4.2.2) ---- */

static void test_lifetime(void)
{
    static const struct {
        const char *what;
        int status;
        const char *headers;
        int64_t default_ttl_ms, response_time_ms, want_ms;
        bool heuristic;
    } rows[] = {
        {"§4.2.1 s-maxage wins over max-age", 200, "Cache-Control: max-age=60, s-maxage=10", 0, RT, 10000, false},
        {"§4.2.1 max-age wins over Expires", 200,
         "Cache-Control: max-age=60\nDate: " DATE_D "\nExpires: " DATE_D_PLUS_3600, 0, RT, 60000, false},
        {"§4.2.1 Expires minus Date", 200, "Date: " DATE_D "\nExpires: " DATE_D_PLUS_100, 0, RT + 5000, 100000,
         false},
        {"§4.2.1 Expires minus the response time without Date", 200, "Expires: " DATE_D_PLUS_100, 0, RT + 40000,
         60000, false},
        {"§4.2.1 Expires before Date: 0", 200, "Date: " DATE_D "\nExpires: " DATE_D_MINUS_1, 0, RT, 0, false},
        {"§5.3 an invalid Expires: 0 (already stale)", 200, "Date: " DATE_D "\nExpires: 0", 0, RT, 0, false},
        {"§5.3 an invalid Expires does not let a heuristic in", 200,
         "Date: " DATE_D "\nExpires: -1\nLast-Modified: " DATE_D_MINUS_1000, 0, RT, 0, false},
        {"§4.2.1 a bad max-age: 0, whatever s-maxage says", 200, "Cache-Control: s-maxage=10, max-age=x", 0, RT, 0,
         false},
        {"§4.2.1 a bad max-age beats a good Expires", 200,
         "Cache-Control: max-age=soon\nDate: " DATE_D "\nExpires: " DATE_D_PLUS_3600, 0, RT, 0, false},
        {"§1.2.2 a saturated max-age in ms", 200, "Cache-Control: max-age=99999999999", 0, RT, BIG * 1000, false},
        {"§4.2.2 heuristic: 10% of Date - Last-Modified", 200,
         "Date: " DATE_D "\nLast-Modified: " DATE_D_MINUS_1000, 0, RT, 100000, true},
        {"§4.2.2 heuristic without Date: from the response time", 200, "Last-Modified: " DATE_D_MINUS_1000, 0,
         RT + 1000000, 200000, true},
        {"§4.2.2 heuristic capped at 24 hours", 200, "Date: " DATE_D "\nLast-Modified: " DATE_D_MINUS_30D, 0, RT,
         86400000, true},
        {"§4.2.2 heuristic: default_ttl when > 0", 200, "Date: " DATE_D "\nLast-Modified: " DATE_D_MINUS_1000, 5000,
         RT, 5000, true},
        {"§4.2.2 heuristic: default_ttl with only an ETag", 200, "ETag: \"v1\"", 5000, RT, 5000, true},
        {"§4.2.2 heuristic: ETag only and no default_ttl: 0", 200, "ETag: \"v1\"", 0, RT, 0, true},
        {"§4.2.2 heuristic: Last-Modified after Date: 0", 200, "Date: " DATE_D "\nLast-Modified: " DATE_D_PLUS_100,
         0, RT, 0, true},
        {"§4.2.2 no heuristic without a validator, even with default_ttl", 200, "Date: " DATE_D, 5000, RT, 0, false},
        {"§4.2.2 no heuristic for 500", 500, "Date: " DATE_D "\nLast-Modified: " DATE_D_MINUS_1000, 5000, RT, 0,
         false},
        {"§4.2.2 a heuristic for a public 500", 500,
         "Cache-Control: public\nDate: " DATE_D "\nLast-Modified: " DATE_D_MINUS_1000, 0, RT, 100000, true},
        {"§4.2.2 heuristically cacheable 404", 404, "Date: " DATE_D "\nLast-Modified: " DATE_D_MINUS_1000, 0, RT,
         100000, true},
        {"RFC 9213 §2.1 CDN-Cache-Control max-age wins", 200,
         "CDN-Cache-Control: max-age=5\nCache-Control: max-age=60, s-maxage=60", 0, RT, 5000, false},
        {"RFC 9213 §2.1 CDN-Cache-Control makes Expires ignored", 200,
         "CDN-Cache-Control: public\nDate: " DATE_D "\nExpires: " DATE_D_PLUS_3600
         "\nLast-Modified: " DATE_D_MINUS_1000,
         0, RT, 100000, true},
    };
    for (size_t i = 0; i < N(rows); i++) {
        pt_cache_resp_info_t ri = resp_of(rows[i].status, rows[i].headers);
        pt_cache_rules_t rules = {.default_ttl_ms = rows[i].default_ttl_ms};
        bool heuristic = !rows[i].heuristic;
        int64_t got = pt_cache_lifetime_ms(&ri, &rules, rows[i].response_time_ms, &heuristic);
        ok(got == rows[i].want_ms && heuristic == rows[i].heuristic, "lifetime: %s (got %lld ms, heuristic %d)",
           rows[i].what, (long long)got, heuristic);
    }
}

/* §4.2.3, worked by hand.  Request at 1000 s, response at 1002 s, now
 * 1010 s: response_delay 2 s, resident_time 8 s. */
static void test_current_age(void)
{
    static const struct {
        const char *what;
        int64_t age_s, date_s, req_ms, resp_ms, now_ms, want;
    } rows[] = {
        /* apparent 1 s, corrected 0 + 2 s, initial 2 s, + 8 s */
        {"§4.2.3 Date 1 s before the response, Age 0", 0, 1001, 1000000, 1002000, 1010000, 10000},
        /* corrected 30 + 2 = 32 s beats apparent 1 s; + 8 s */
        {"§4.2.3 Age 30 adds the response delay", 30, 1001, 1000000, 1002000, 1010000, 40000},
        /* apparent 102 s beats corrected 2 s; + 8 s */
        {"§4.2.3 an old Date: the apparent age wins", 0, 900, 1000000, 1002000, 1010000, 110000},
        /* apparent max(0, -3 s) = 0; corrected 2 s; + 8 s */
        {"§4.2.3 a Date in the future adds nothing", 0, 1005, 1000000, 1002000, 1010000, 10000},
        {"§4.2.3 no Date adds nothing", 0, -1, 1000000, 1002000, 1010000, 10000},
        /* now before the response time: resident time 0 */
        {"§4.2.3 a clock that went back: no negative resident time", 0, 1001, 1000000, 1002000, 1001000, 2000},
        /* request after the response (clock step): no negative delay */
        {"§4.2.3 a negative response delay counts 0", 5, 1002, 1003000, 1002000, 1002000, 5000},
        {"§1.2.2 a saturated Age", BIG, 1001, 1000000, 1002000, 1010000, BIG * 1000 + 2000 + 8000},
    };
    for (size_t i = 0; i < N(rows); i++)
        is_int(pt_cache_current_age_ms(rows[i].age_s, rows[i].date_s, rows[i].req_ms, rows[i].resp_ms,
                                       rows[i].now_ms),
               rows[i].want, "current age: %s", rows[i].what);
}

/* ---- storing (§3, §3.5) ---- */

enum { R_COOKIE = 1, R_AUTH = 2, R_SIE = 4 };

static void test_storable(void)
{
    static const struct {
        const char *what, *req;
        int status;
        const char *resp;
        unsigned rules;
        int want;
    } rows[] = {
        {"§3 a 200 with max-age", "", 200, "Cache-Control: max-age=60", 0, PT_NS_NONE},
        {"§3 100 is not final", "", 100, "Cache-Control: max-age=60", 0, PT_NS_STATUS},
        {"§3 103 is not final", "", 103, "Cache-Control: max-age=60", 0, PT_NS_STATUS},
        {"§3.4 206 is never stored here", "", 206, "Cache-Control: max-age=60", 0, PT_NS_STATUS},
        {"§4.3.4 a 304 updates, it is not stored", "", 304, "Cache-Control: max-age=60", 0, PT_NS_STATUS},
        {"§3 status 999 is not understood", "", 999, "Cache-Control: max-age=60", 0, PT_NS_STATUS},
        {"§5.2.2.5 response no-store", "", 200, "Cache-Control: max-age=60, no-store", 0, PT_NS_NO_STORE},
        {"§5.2.1.5 request no-store", "Cache-Control: no-store", 200, "Cache-Control: max-age=60", 0,
         PT_NS_NO_STORE},
        {"§5.2.2.3 must-understand lifts no-store for an understood status", "", 200,
         "Cache-Control: no-store, must-understand, max-age=60", 0, PT_NS_NONE},
        {"§5.2.2.3 must-understand with a status not understood", "", 299,
         "Cache-Control: no-store, must-understand, max-age=60", 0, PT_NS_STATUS},
        {"§5.2.2.3 must-understand alone, status not understood", "", 599,
         "Cache-Control: must-understand, max-age=60", 0, PT_NS_STATUS},
        {"§5.2.2.3 must-understand does not lift a request's no-store", "Cache-Control: no-store", 200,
         "Cache-Control: no-store, must-understand, max-age=60", 0, PT_NS_NO_STORE},
        {"§5.2.2.7 private", "", 200, "Cache-Control: private, max-age=60", 0, PT_NS_PRIVATE},
        {"§5.2.2.7 qualified private", "", 200, "Cache-Control: private=\"x\", max-age=60", 0, PT_NS_PRIVATE},
        {"§3.5 Authorization without public, s-maxage or must-revalidate", "Authorization: Basic eDp5", 200,
         "Cache-Control: max-age=60", 0, PT_NS_AUTHORIZATION},
        {"§3.5 Authorization with public", "Authorization: Basic eDp5", 200, "Cache-Control: public, max-age=60", 0,
         PT_NS_NONE},
        {"§3.5 Authorization with s-maxage", "Authorization: Basic eDp5", 200, "Cache-Control: s-maxage=60", 0,
         PT_NS_NONE},
        {"§3.5 Authorization with must-revalidate", "Authorization: Basic eDp5", 200,
         "Cache-Control: must-revalidate, max-age=60", 0, PT_NS_NONE},
        {"§3.5 Authorization: proxy-revalidate is not enough", "Authorization: Basic eDp5", 200,
         "Cache-Control: proxy-revalidate, max-age=60", 0, PT_NS_AUTHORIZATION},
        {"§3.5 Authorization with rules.cache_authorized", "Authorization: Basic eDp5", 200,
         "Cache-Control: max-age=60", R_AUTH, PT_NS_NONE},
        {"RFC 9213 §2.1 Authorization with CDN-Cache-Control: public", "Authorization: Basic eDp5", 200,
         "CDN-Cache-Control: public, max-age=60\nCache-Control: max-age=60", 0, PT_NS_NONE},
        {"§3.1 Set-Cookie is not stored by default", "", 200, "Cache-Control: max-age=60\nSet-Cookie: s=1", 0,
         PT_NS_SET_COOKIE},
        {"§3.1 Set-Cookie stored with rules.store_set_cookie", "", 200, "Cache-Control: max-age=60\nSet-Cookie: s=1",
         R_COOKIE, PT_NS_NONE},
        {"§4.1 Vary: *", "", 200, "Cache-Control: max-age=60\nVary: *", 0, PT_NS_VARY_STAR},
        {"§4.1 Vary: accept, *", "", 200, "Cache-Control: max-age=60\nVary: accept, *", 0, PT_NS_VARY_STAR},
        {"§4.1 Vary: * on a second line", "", 200, "Cache-Control: max-age=60\nVary: accept\nVary: *", 0,
         PT_NS_VARY_STAR},
        {"§3 no freshness, no validator: nothing to gain", "", 200, "Date: " DATE_D, 0, PT_NS_NOT_CACHEABLE},
        {"§4.2.2 no freshness, Last-Modified: heuristic", "", 200, "Last-Modified: " DATE_D_MINUS_1000, 0,
         PT_NS_NONE},
        {"§4.3 a validator and zero lifetime is storable", "", 200, "Cache-Control: max-age=0\nETag: \"a\"", 0,
         PT_NS_NONE},
        {"§5.2.2.4 no-cache with a validator is storable", "", 200, "Cache-Control: no-cache\nETag: \"a\"", 0,
         PT_NS_NONE},
        {"§3 max-age=0 without a validator: nothing to gain", "", 200, "Cache-Control: max-age=0", 0,
         PT_NS_NOT_CACHEABLE},
        {"§3 Expires: 0 without a validator: nothing to gain", "", 200, "Expires: 0", 0, PT_NS_NOT_CACHEABLE},
        {"§3 Expires before Date without a validator: nothing to gain", "", 200,
         "Date: " DATE_D "\nExpires: " DATE_D_MINUS_1, 0, PT_NS_NOT_CACHEABLE},
        {"RFC 5861 max-age=0 with stale-if-error is worth keeping", "", 200,
         "Cache-Control: max-age=0, stale-if-error=60", 0, PT_NS_NONE},
        {"RFC 5861 max-age=0 with the rules' stale-if-error", "", 200, "Cache-Control: max-age=0", R_SIE, PT_NS_NONE},
        {"§3 500 without explicit freshness", "", 500, "Last-Modified: " DATE_D_MINUS_1000, 0, PT_NS_NOT_CACHEABLE},
        {"§3 500 with max-age", "", 500, "Cache-Control: max-age=5", 0, PT_NS_NONE},
        {"§3 500 with Expires", "", 500, "Date: " DATE_D "\nExpires: " DATE_D_PLUS_100, 0, PT_NS_NONE},
        {"§3 500 with public and a validator", "", 500, "Cache-Control: public\nETag: \"e\"", 0, PT_NS_NONE},
        {"§3 500 with public, no validator", "", 500, "Cache-Control: public", 0, PT_NS_NOT_CACHEABLE},
        {"§3 302 with max-age", "", 302, "Cache-Control: max-age=60", 0, PT_NS_NONE},
        {"§3 302 with Last-Modified only", "", 302, "Last-Modified: " DATE_D_MINUS_1000, 0, PT_NS_NOT_CACHEABLE},
        {"§3 404 is heuristically cacheable", "", 404, "Last-Modified: " DATE_D_MINUS_1000, 0,
         PT_NS_NONE},
        {"RFC 9213 §2.1 CDN-Cache-Control: no-store beats Cache-Control", "", 200,
         "CDN-Cache-Control: no-store\nCache-Control: public, max-age=60", 0, PT_NS_NO_STORE},
        {"RFC 9213 §2.1 Cache-Control: no-store is for others with CDN-Cache-Control", "", 200,
         "CDN-Cache-Control: max-age=60\nCache-Control: no-store, private", 0, PT_NS_NONE},
        {"§5.4 a request's Pragma: no-cache does not stop storing", "Pragma: no-cache", 200,
         "Cache-Control: max-age=60", 0, PT_NS_NONE},
    };
    for (size_t i = 0; i < N(rows); i++) {
        pt_cache_req_info_t qi = req_of(rows[i].req);
        pt_cache_resp_info_t ri = resp_of(rows[i].status, rows[i].resp);
        pt_cache_rules_t rules = {.store_set_cookie = rows[i].rules & R_COOKIE,
                                  .cache_authorized = rows[i].rules & R_AUTH,
                                  .sie_ms = rows[i].rules & R_SIE ? 60000 : 0};
        int got = pt_cache_storable(&qi, &ri, &rules);
        is_str(pt_cache_nostore_name(got), pt_cache_nostore_name(rows[i].want), "storable: %s", rows[i].what);
    }
    static const char *const names[] = {"none", "method", "status", "no-store", "private", "authorization",
                                        "set-cookie", "vary-star", "not-cacheable"};
    for (int i = 0; i < (int)N(names); i++)
        is_str(pt_cache_nostore_name(i), names[i], "nostore name %d", i);
    is_str(pt_cache_nostore_name(99), "unknown", "nostore name out of range");
}

/* ---- reusing (§4.2, §4.2.4, §5.2.1, RFC 5861) ---- */

#define V PT_CM_HAS_ETAG
#define MR PT_CM_MUST_REVALIDATE
#define NC PT_CM_NO_CACHE

static void test_use(void)
{
    static const struct {
        const char *what, *req;
        int64_t age_ms, lifetime_ms;
        unsigned flags;
        int64_t swr_ms;
        int want;
    } rows[] = {
        {"§4.2 fresh", "", 10000, 60000, V, 0, PT_USE_FRESH},
        {"§4.2 age equal to the lifetime is stale", "", 60000, 60000, V, 0, PT_USE_REVALIDATE},
        {"§4.3.1 stale without a validator: miss", "", 70000, 60000, 0, 0, PT_USE_MISS},
        {"§4.3.1 stale with Last-Modified: revalidate", "", 70000, 60000, PT_CM_HAS_LAST_MODIFIED, 0,
         PT_USE_REVALIDATE},
        {"§5.2.2.4 response no-cache revalidates even fresh", "", 0, 60000, V | NC, 0, PT_USE_REVALIDATE},
        {"§5.2.2.4 response no-cache without a validator: miss", "", 0, 60000, NC, 0, PT_USE_MISS},
        {"§5.2.1.4 request no-cache revalidates", "Cache-Control: no-cache", 0, 60000, V, 0, PT_USE_REVALIDATE},
        {"§5.4 Pragma: no-cache without Cache-Control revalidates", "Pragma: no-cache", 0, 60000, V, 0,
         PT_USE_REVALIDATE},
        {"§5.4 Pragma: no-cache with Cache-Control is ignored", "Pragma: no-cache\nCache-Control: max-stale=1", 0,
         60000, V, 0, PT_USE_FRESH},
        {"§5.2.1.1 request max-age below the age", "Cache-Control: max-age=5", 10000, 60000, V, 0,
         PT_USE_REVALIDATE},
        {"§5.2.1.1 request max-age=0", "Cache-Control: max-age=0", 1, 60000, V, 0, PT_USE_REVALIDATE},
        {"§5.2.1.1 request max-age above the age", "Cache-Control: max-age=30", 10000, 60000, V, 0, PT_USE_FRESH},
        {"§5.2.1.3 min-fresh not met", "Cache-Control: min-fresh=60", 10000, 60000, V, 0, PT_USE_REVALIDATE},
        {"§5.2.1.3 min-fresh just met", "Cache-Control: min-fresh=50", 10000, 60000, V, 0, PT_USE_FRESH},
        {"§5.2.1.2 max-stale without a value serves any staleness", "Cache-Control: max-stale", 999999999, 60000, 0,
         0, PT_USE_STALE},
        {"§5.2.1.2 max-stale=30, 20 s stale", "Cache-Control: max-stale=30", 80000, 60000, V, 0, PT_USE_STALE},
        {"§5.2.1.2 max-stale=10, 20 s stale", "Cache-Control: max-stale=10", 80000, 60000, V, 0, PT_USE_REVALIDATE},
        {"§5.2.2.2 must-revalidate beats max-stale", "Cache-Control: max-stale", 80000, 60000, V | MR, 0,
         PT_USE_REVALIDATE},
        {"§5.2.2.2 must-revalidate, stale, no validator: miss", "", 80000, 60000, MR, 0, PT_USE_MISS},
        {"§5.2.2.2 must-revalidate while fresh", "", 10000, 60000, V | MR, 0, PT_USE_FRESH},
        {"RFC 5861 §3 within stale-while-revalidate", "", 65000, 60000, V, 10000, PT_USE_SWR},
        {"RFC 5861 §3 stale-while-revalidate needs no validator", "", 65000, 60000, 0, 10000, PT_USE_SWR},
        {"RFC 5861 §3 past stale-while-revalidate", "", 75000, 60000, V, 10000, PT_USE_REVALIDATE},
        {"RFC 5861 §3 stale-while-revalidate, not with must-revalidate", "", 65000, 60000, V | MR, 10000,
         PT_USE_REVALIDATE},
        {"RFC 5861 §3 stale-while-revalidate, not with no-cache", "", 65000, 60000, V | NC, 10000,
         PT_USE_REVALIDATE},
        {"§5.2.1.1 stale-while-revalidate, not to a request with max-age", "Cache-Control: max-age=3600", 65000,
         60000, V, 10000, PT_USE_REVALIDATE},
        {"§5.2.1.3 stale-while-revalidate, not to a request with min-fresh", "Cache-Control: min-fresh=0", 65000,
         60000, V, 10000, PT_USE_REVALIDATE},
        {"§5.2.1.2 a short max-stale leaves stale-while-revalidate", "Cache-Control: max-stale=1", 65000, 60000, V,
         10000, PT_USE_SWR},
        {"§5.2.1.7 only-if-cached changes nothing here", "Cache-Control: only-if-cached", 10000, 60000, 0, 0,
         PT_USE_FRESH},
    };
    for (size_t i = 0; i < N(rows); i++) {
        pt_cache_req_info_t qi = req_of(rows[i].req);
        is_int(pt_cache_use(&qi, rows[i].age_ms, rows[i].lifetime_ms, rows[i].flags, rows[i].swr_ms), rows[i].want,
               "use: %s", rows[i].what);
    }
}

static void test_resp_flags(void)
{
    static const struct {
        const char *what, *headers;
        int64_t rule_swr, rule_sie;
        bool heuristic;
        unsigned want;
        int64_t swr, sie;
    } rows[] = {
        {"§5.2.2.2 must-revalidate", "Cache-Control: must-revalidate", 0, 0, false, MR, 0, 0},
        {"§5.2.2.8 proxy-revalidate", "Cache-Control: proxy-revalidate", 0, 0, false, MR, 0, 0},
        {"§5.2.2.10 s-maxage implies proxy-revalidate", "Cache-Control: s-maxage=5", 0, 0, false, MR, 0, 0},
        {"§5.2.2.4 no-cache", "Cache-Control: no-cache", 0, 0, false, NC, 0, 0},
        {"§4.3.1 validators", "ETag: \"a\"\nLast-Modified: " DATE_D, 0, 0, false,
         PT_CM_HAS_ETAG | PT_CM_HAS_LAST_MODIFIED, 0, 0},
        {"§4.2.2 heuristic as told", "", 0, 0, true, PT_CM_HEURISTIC, 0, 0},
        {"RFC 9213 CDN-Cache-Control", "CDN-Cache-Control: max-age=5", 0, 0, false, PT_CM_CDN, 0, 0},
        {"RFC 5861 the response's grants", "Cache-Control: stale-while-revalidate=30, stale-if-error=60", 0, 0, false,
         0, 30000, 60000},
        {"RFC 5861 the rules' grants when larger", "Cache-Control: stale-while-revalidate=30, stale-if-error=60",
         50000, 90000, false, 0, 50000, 90000},
        {"RFC 5861 the rules' grants without the response's", "", 5000, 7000, false, 0, 5000, 7000},
        {"§4.2.4 no stale with must-revalidate", "Cache-Control: must-revalidate, stale-if-error=60", 5000, 7000,
         false, MR, 0, 0},
        {"§4.2.4 no stale with s-maxage", "Cache-Control: s-maxage=1, stale-while-revalidate=60", 0, 0, false, MR, 0,
         0},
        {"§4.2.4 no stale with no-cache", "Cache-Control: no-cache, stale-while-revalidate=60", 0, 0, false, NC, 0,
         0},
        {"RFC 9213 CDN-Cache-Control's must-revalidate, not Cache-Control's",
         "CDN-Cache-Control: max-age=5, stale-if-error=9\nCache-Control: must-revalidate", 0, 0, false, PT_CM_CDN, 0,
         9000},
    };
    for (size_t i = 0; i < N(rows); i++) {
        pt_cache_resp_info_t ri = resp_of(200, rows[i].headers);
        pt_cache_rules_t rules = {.swr_ms = rows[i].rule_swr, .sie_ms = rows[i].rule_sie};
        int64_t swr = -7, sie = -7;
        unsigned got = pt_cache_resp_flags(&ri, &rules, rows[i].heuristic, &swr, &sie);
        ok(got == rows[i].want && swr == rows[i].swr && sie == rows[i].sie,
           "resp flags: %s (got %#x swr %lld sie %lld)", rows[i].what, got, (long long)swr, (long long)sie);
    }
}

static void test_stale_if_error(void)
{
    static const struct {
        const char *what, *req;
        int64_t stale_ms;
        unsigned flags;
        int64_t sie_ms;
        bool want;
    } rows[] = {
        {"RFC 5861 §4 within stale-if-error", "", 30000, V, 60000, true},
        {"RFC 5861 §4 past stale-if-error", "", 90000, V, 60000, false},
        {"RFC 5861 §4 none granted", "", 1000, V, 0, false},
        {"§4.2.4 never with must-revalidate", "", 1000, V | MR, 60000, false},
        {"§4.2.4 never with no-cache", "", 1000, V | NC, 60000, false},
        {"RFC 5861 §4 the request's stale-if-error limits", "Cache-Control: stale-if-error=10", 30000, V, 60000,
         false},
        {"RFC 5861 §4 the request's stale-if-error grants", "Cache-Control: stale-if-error=100", 30000, V, 0, true},
        {"§4.2.4 the request's stale-if-error, not past must-revalidate", "Cache-Control: stale-if-error=100", 30000,
         V | MR, 0, false},
        {"§5.2.1.2 the request's max-stale accepts", "Cache-Control: max-stale=60", 30000, V, 0, true},
        {"§5.2.1.4 a request with no-cache does not want stale", "Cache-Control: no-cache", 30000, V, 60000, false},
        {"§5.2.1.1 a request with max-age does not want stale", "Cache-Control: max-age=5", 30000, V, 60000, false},
        {"§5.2.1.3 a request with min-fresh does not want stale", "Cache-Control: min-fresh=5", 30000, V, 60000,
         false},
    };
    for (size_t i = 0; i < N(rows); i++) {
        pt_cache_req_info_t qi = req_of(rows[i].req);
        is_int(pt_cache_stale_if_error_ok(&qi, rows[i].stale_ms, rows[i].flags, rows[i].sie_ms), rows[i].want,
               "stale-if-error: %s", rows[i].what);
    }
}

/* ---- Vary (§4.1) ---- */

static void test_vary_names(void)
{
    static const struct {
        const char *what, *headers;
        size_t cap;
        const char *want; /* NULL: -1 */
    } rows[] = {
        {"§4.1 one name, lower-cased", "Vary: Accept-Encoding", 64, "accept-encoding"},
        {"§4.1 case, order and duplicates", "Vary: Accept-Language, accept-encoding, ACCEPT-ENCODING", 64,
         "accept-encoding,accept-language"},
        {"§4.1 a prefix sorts first", "Vary: accept-encoding, accept", 64, "accept,accept-encoding"},
        {"§4.1 several lines", "Vary: x-b\nVary: x-a\nVary: x-b", 64, "x-a,x-b"},
        {"§4.1 spaces and empty members", "Vary:  x-b ,  , x-a ,", 64, "x-a,x-b"},
        {"§4.1 no Vary", "Accept: */*", 64, ""},
        {"§4.1 an empty Vary", "Vary: ", 64, ""},
        {"§4.1 Vary: *", "Vary: *", 64, NULL},
        {"§4.1 Vary: accept, *", "Vary: accept, *", 64, NULL},
        {"§4.1 Vary:  * (spaces)", "Vary:  *  ", 64, NULL},
        {"§4.1 Vary: *, then another line", "Vary: accept\nVary: x, *, y", 64, NULL},
        {"§4.1 Vary: * even when the names do not fit", "Vary: accept-encoding, *", 4, NULL},
        {"§4.1 names that do not fit", "Vary: accept-encoding, accept-language", 20, NULL},
        {"§4.1 names that just fit", "Vary: accept-encoding, accept-language", 31, "accept-encoding,accept-language"},
        {"§4.1 a member that is not a field name: -1", "Vary: accept, accept-encoding;", 64, NULL},
        {"§4.1 a quoted member: -1", "Vary: \"accept\"", 64, NULL},
        {"§4.1 a member with a space inside: -1", "Vary: accept encoding", 64, NULL},
    };
    for (size_t i = 0; i < N(rows); i++) {
        pt_h1_header_t h[16];
        char out[128];
        memset(out, '#', sizeof(out));
        long n = pt_cache_vary_names(h, hdrs(rows[i].headers, h, N(h)), out, rows[i].cap);
        if (!rows[i].want) {
            is_int(n, -1, "vary names: %s", rows[i].what);
            continue;
        }
        ok(n >= 0 && (size_t)n <= rows[i].cap && out[rows[i].cap] == '#', "vary names: %s: within cap", rows[i].what);
        out[n >= 0 ? n : 0] = '\0';
        is_str(out, rows[i].want, "vary names: %s", rows[i].what);
    }
}

static void test_vary_values(void)
{
    static const struct {
        const char *what, *names, *headers;
        size_t cap;
        const char *want; /* NULL: -1 */
    } rows[] = {
        {"§4.1 absent differs from empty", "x-a,x-b", "X-B: ", 64, "x-a\nx-b:\n"},
        {"§4.1 field names match without case", "accept-encoding", "ACCEPT-ENCODING: gzip", 64,
         "accept-encoding:gzip\n"},
        {"§4.1 Accept-Encoding case folded", "accept-encoding", "Accept-Encoding: GZIP, Br", 64,
         "accept-encoding:gzip,br\n"},
        {"§4.1 Accept-Language case folded", "accept-language", "Accept-Language: EN-us", 64,
         "accept-language:en-us\n"},
        {"§4.1 other fields keep their case", "x-custom", "X-Custom: A  B ,C", 64, "x-custom:A B,C\n"},
        {"§4.1 several lines combined", "accept-language", "Accept-Language: en\nAccept-Language: fr;q=0.5", 64,
         "accept-language:en,fr;q=0.5\n"},
        {"§4.1 OWS around members trimmed, runs made one space", "x-a", "X-A: \t a \t\t b  ,   c", 64, "x-a:a b,c\n"},
        {"§4.1 empty members dropped", "accept-encoding", "Accept-Encoding: gzip,, ,br,", 64,
         "accept-encoding:gzip,br\n"},
        {"§4.1 a quoted string is kept whole, case and all", "accept", "Accept: Text/HTML;q=1;x=\"A,  B\"", 64,
         "accept:text/html;q=1;x=\"A,  B\"\n"},
        {"§4.1 in the order of names", "x-b,x-a", "X-A: 1\nX-B: 2", 64, "x-b:2\nx-a:1\n"},
        {"§4.1 a field of only commas is empty, not absent", "x-a", "X-A: , ,", 64, "x-a:\n"},
        {"§4.1 values that do not fit", "x-a", "X-A: 0123456789", 8, NULL},
        {"§4.1 values that just fit", "x-a", "X-A: 0123456789", 15, "x-a:0123456789\n"},
        {"§4.1 no names, nothing", "", "X-A: 1", 64, ""},
    };
    for (size_t i = 0; i < N(rows); i++) {
        pt_h1_header_t h[16];
        char out[128];
        memset(out, '#', sizeof(out));
        long n = pt_cache_vary_values(pt_str_from(rows[i].names), h, hdrs(rows[i].headers, h, N(h)), out,
                                      rows[i].cap);
        if (!rows[i].want) {
            is_int(n, -1, "vary values: %s", rows[i].what);
            continue;
        }
        ok(n >= 0 && (size_t)n <= rows[i].cap && out[rows[i].cap] == '#', "vary values: %s: within cap",
           rows[i].what);
        out[n >= 0 ? n : 0] = '\0';
        is_str(out, rows[i].want, "vary values: %s", rows[i].what);
    }
}

/* ---- updating from a 304 (§3.2, §4.3.4) ---- */

static void test_update(void)
{
    static const struct {
        const char *what, *field;
        bool skip;
    } skips[] = {
        {"§3.2 Content-Length is never updated", "Content-Length", true},
        {"§3.2 ... whatever its case", "CONTENT-LENGTH", true},
        {"§3.2 Transfer-Encoding", "Transfer-Encoding", true},
        {"§3.2 Content-Range", "Content-Range", true},
        {"§3.1 Connection", "Connection", true},
        {"§3.1 Keep-Alive", "Keep-Alive", true},
        {"§3.1 Proxy-Connection", "Proxy-Connection", true},
        {"§3.1 TE", "TE", true},
        {"§3.1 Trailer", "Trailer", true},
        {"§3.1 Upgrade", "Upgrade", true},
        {"§3.2 Content-Encoding is kept: our bytes are in the stored coding", "Content-Encoding", true},
        {"§3.2 Set-Cookie is not handed to later clients", "Set-Cookie", true},
        {"§3.2 Content-Type is updated", "Content-Type", false},
        {"§3.2 Cache-Control is updated", "Cache-Control", false},
        {"§3.2 ETag is updated", "ETag", false},
        {"§3.2 Expires is updated", "Expires", false},
        {"§3.2 Date is updated", "Date", false},
        {"§3.2 a field named like a hop-by-hop one is not one", "TE-X", false},
    };
    for (size_t i = 0; i < N(skips); i++)
        is_int(pt_cache_update_skips(pt_str_from(skips[i].field)), skips[i].skip, "304 update: %s", skips[i].what);

    static const struct {
        const char *what, *etag304, *lm304, *etag, *lm;
        bool want;
    } sel[] = {
        {"§4.3.4 strong ETag matches", "\"a\"", "", "\"a\"", "", true},
        {"§4.3.4 strong ETag differs", "\"b\"", "", "\"a\"", "", false},
        {"§4.3.4 strong ETag vs a weak stored one", "\"a\"", "", "W/\"a\"", "", false},
        {"§4.3.4 strong ETag, stored has none but the same Last-Modified", "\"a\"", DATE_D, "", DATE_D, false},
        {"§4.3.4 weak ETag matches a strong stored one weakly", "W/\"a\"", "", "\"a\"", "", true},
        {"§4.3.4 weak ETag matches a weak one", "W/\"a\"", "", "W/\"a\"", "", true},
        {"§4.3.4 weak ETag differs", "W/\"b\"", "", "W/\"a\"", "", false},
        {"§4.3.4 no ETag: Last-Modified equal", "", DATE_D, "\"a\"", DATE_D, true},
        {"§4.3.4 no ETag: Last-Modified equal as dates (RFC 850)", "", "Sunday, 09-Sep-01 01:46:40 GMT", "", DATE_D,
         true},
        {"§4.3.4 no ETag: Last-Modified differs", "", DATE_D_PLUS_1, "", DATE_D, false},
        {"§4.3.4 no ETag: stored has no Last-Modified", "", DATE_D, "\"a\"", "", false},
        {"§4.3.4 no validators: selects one without validators", "", "", "", "", true},
        {"§4.3.4 no validators: not one with validators", "", "", "\"a\"", "", false},
    };
    for (size_t i = 0; i < N(sel); i++)
        is_int(pt_cache_304_selects(pt_str_from(sel[i].etag304), pt_str_from(sel[i].lm304), pt_str_from(sel[i].etag),
                                    pt_str_from(sel[i].lm)),
               sel[i].want, "304 selects: %s", sel[i].what);
}

/* ---- conditionals (RFC 9110 §13.1) and invalidation (§4.4) ---- */

static void test_not_modified(void)
{
    static const struct {
        const char *what, *req, *etag, *lm;
        bool want;
    } rows[] = {
        {"RFC 9110 §13.1.2 If-None-Match equal", "If-None-Match: \"a\"", "\"a\"", "", true},
        {"RFC 9110 §13.1.2 weak comparison: W/ in the request", "If-None-Match: W/\"a\"", "\"a\"", "", true},
        {"RFC 9110 §13.1.2 weak comparison: W/ stored", "If-None-Match: \"a\"", "W/\"a\"", "", true},
        {"RFC 9110 §13.1.2 a list", "If-None-Match: \"x\", W/\"y\",\"a\"", "\"a\"", "", true},
        {"RFC 9110 §13.1.2 a comma inside a tag", "If-None-Match: \"a,b\"", "\"a,b\"", "", true},
        {"RFC 9110 §13.1.2 ... is not two tags", "If-None-Match: \"a,b\"", "\"a\"", "", false},
        {"RFC 9110 §13.1.2 on a second line", "If-None-Match: \"x\"\nIf-None-Match: \"a\"", "\"a\"", "", true},
        {"RFC 9110 §13.1.2 * matches", "If-None-Match: *", "", "", true},
        {"RFC 9110 §13.1.2 no match", "If-None-Match: \"b\"", "\"a\"", "", false},
        {"RFC 9110 §13.1.2 opaque-tags are case-sensitive", "If-None-Match: \"A\"", "\"a\"", "", false},
        {"RFC 9110 §13.1.2 stored without ETag", "If-None-Match: \"a\"", "", DATE_D, false},
        {"RFC 9110 §13.1.2 an unquoted tag stops the list", "If-None-Match: a, \"a\"", "\"a\"", "", false},
        {"RFC 9110 §13.1.2 junk after a tag stops the list", "If-None-Match: \"x\" junk, \"a\"", "\"a\"", "", false},
        {"RFC 9110 §13.1.2 an unterminated tag", "If-None-Match: \"a", "\"a\"", "", false},
        {"RFC 9110 §13.1.3 If-None-Match present: If-Modified-Since ignored",
         "If-None-Match: \"b\"\nIf-Modified-Since: " DATE_D, "\"a\"", DATE_D, false},
        {"RFC 9110 §13.1.3 If-Modified-Since equal to Last-Modified", "If-Modified-Since: " DATE_D, "", DATE_D, true},
        {"RFC 9110 §13.1.3 If-Modified-Since after Last-Modified", "If-Modified-Since: " DATE_D_PLUS_1, "", DATE_D,
         true},
        {"RFC 9110 §13.1.3 If-Modified-Since before Last-Modified", "If-Modified-Since: " DATE_D_MINUS_1, "", DATE_D,
         false},
        {"RFC 9110 §13.1.3 If-Modified-Since in RFC 850 form", "If-Modified-Since: Sunday, 09-Sep-01 01:46:40 GMT",
         "", DATE_D, true},
        {"RFC 9110 §13.1.3 an invalid If-Modified-Since is ignored", "If-Modified-Since: yesterday", "", DATE_D,
         false},
        {"RFC 9110 §13.1.3 two If-Modified-Since lines are ignored",
         "If-Modified-Since: " DATE_D "\nIf-Modified-Since: " DATE_D, "", DATE_D, false},
        {"RFC 9110 §13.1.3 no stored Last-Modified", "If-Modified-Since: " DATE_D, "\"a\"", "", false},
        {"RFC 9110 §13.1 no conditional", "Accept: */*", "\"a\"", DATE_D, false},
    };
    for (size_t i = 0; i < N(rows); i++) {
        pt_h1_header_t h[16];
        is_int(pt_cache_not_modified(h, hdrs(rows[i].req, h, N(h)), pt_str_from(rows[i].etag), pt_str_from(rows[i].lm)),
               rows[i].want, "not modified: %s", rows[i].what);
    }
}

static void test_methods(void)
{
    static const struct {
        const char *method;
        bool invalidates;
    } rows[] = {
        {"GET", false}, {"HEAD", false}, {"OPTIONS", false}, {"TRACE", false}, {"POST", true},  {"PUT", true},
        {"DELETE", true}, {"PATCH", true}, {"get", true},     {"Head", true},  {"PURGE", true}, {"", true},
    };
    for (size_t i = 0; i < N(rows); i++)
        is_int(pt_cache_method_invalidates(pt_str_from(rows[i].method)), rows[i].invalidates,
               "§4.4 method \"%s\" %s", rows[i].method, rows[i].invalidates ? "invalidates" : "is safe");
}

int main(void)
{
    test_cc();
    test_cc_values();
    test_dates();
    test_age();
    test_resp_info();
    test_req_info();
    test_lifetime();
    test_current_age();
    test_storable();
    test_use();
    test_resp_flags();
    test_stale_if_error();
    test_vary_names();
    test_vary_values();
    test_update();
    test_not_modified();
    test_methods();
    return done_testing();
}
