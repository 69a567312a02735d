/* HTTP-dates (RFC 9110 §5.6.7), without libc's time functions: strptime
 * and timegm depend on the locale and the time zone, and gmtime_r takes a
 * lock on some systems.  The calendar is Howard Hinnant's days/civil
 * conversion (proleptic Gregorian, exact for every year we accept).
 *
 * The parser is strict: a field value that is not exactly one of the
 * three forms is not a date.  It is also strict about the day name, which
 * a lenient parser would skip: a date whose day name is wrong was not
 * made by a clock, and refusing it keeps every date we accept equal to
 * the IMF-fixdate we would write for it. */
#include "config.h"

#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "portico/httpdate.h"

static const char wkdays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const wkdays_long[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                           "Thursday", "Friday", "Saturday"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Days since 1970-01-01 of y-m-d (m 1..12, d 1..31). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The date of day z since 1970-01-01. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int m)
{
    static const int n[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : n[m - 1];
}

/* n digits at p, or -1. */
static int digits(const char *p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* The month of a three-letter name (1..12), or 0. */
static int month_of(const char *p)
{
    for (int i = 0; i < 12; i++)
        if (memcmp(p, months[i], 3) == 0)
            return i + 1;
    return 0;
}

/* "08:49:37" as seconds into the day, or -1. */
static int time_of_day(const char *p)
{
    int h = digits(p, 2), mi = digits(p + 3, 2), s = digits(p + 6, 2);
    if (p[2] != ':' || p[5] != ':' || h < 0 || mi < 0 || s < 0 || h > 23 || mi > 59 || s > 59)
        return -1;
    return h * 3600 + mi * 60 + s;
}

/* The seconds of a date whose parts were read, or -1 when the day is not
 * in the month, the year is before 1970, or the weekday (0 Sunday) is not
 * that date's. */
static int64_t assemble(int64_t y, int m, int d, int secs, int wday)
{
    if (y < 1970 || y > 9999 || m < 1 || d < 1 || d > days_in_month(y, m) || secs < 0)
        return -1;
    int64_t days = days_from_civil(y, m, d);
    if ((days + 4) % 7 != wday)
        return -1;
    return days * 86400 + secs;
}

static int wday_of(const char *p)
{
    for (int i = 0; i < 7; i++)
        if (memcmp(p, wkdays[i], 3) == 0)
            return i;
    return -1;
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" */
static int64_t parse_imf(const char *p)
{
    if (p[3] != ',' || p[4] != ' ' || p[7] != ' ' || p[11] != ' ' || p[16] != ' ' || p[25] != ' ' ||
        memcmp(p + 26, "GMT", 3) != 0)
        return -1;
    int wday = wday_of(p), d = digits(p + 5, 2), m = month_of(p + 8), y = digits(p + 12, 4);
    if (wday < 0 || d < 0 || y < 0)
        return -1;
    return assemble(y, m, d, time_of_day(p + 17), wday);
}

/* "Sun Nov  6 08:49:37 1994" (the day may also be "06") */
static int64_t parse_asctime(const char *p)
{
    if (p[3] != ' ' || p[7] != ' ' || p[10] != ' ' || p[19] != ' ')
        return -1;
    int wday = wday_of(p), m = month_of(p + 4), y = digits(p + 20, 4);
    int d = p[8] == ' ' ? digits(p + 9, 1) : digits(p + 8, 2);
    if (wday < 0 || d < 0 || y < 0)
        return -1;
    return assemble(y, m, d, time_of_day(p + 11), wday);
}

/* Seconds of y-m-d plus secs, with a day the month lacks (29 Feb) taken
 * as the month's last: for comparing dates only. */
static int64_t approx_seconds(int64_t y, int m, int d, int64_t secs)
{
    int last = days_in_month(y, m);
    return days_from_civil(y, m, d > last ? last : d) * 86400 + secs;
}

/* The year of a two-digit RFC 850 year: this century's, unless that is
 * more than 50 years after now (to the second), then the century before. */
static int64_t rfc850_year(int yy, int m, int d, int secs, int64_t now_s)
{
    int64_t ny;
    int nm, nd;
    civil_from_days(now_s / 86400, &ny, &nm, &nd);
    int64_t y = ny - ny % 100 + yy;
    int64_t limit = approx_seconds(ny + 50, nm, nd, now_s % 86400);
    return approx_seconds(y, m, d, secs) > limit ? y - 100 : y;
}

/* "Sunday, 06-Nov-94 08:49:37 GMT" */
static int64_t parse_rfc850(const char *p, size_t n, bool have_now, int64_t now_s)
{
    int wday = -1;
    size_t l = 0;
    for (int i = 0; i < 7 && wday < 0; i++) {
        l = strlen(wkdays_long[i]);
        if (n == l + 24 && memcmp(p, wkdays_long[i], l) == 0)
            wday = i;
    }
    if (wday < 0)
        return -1;
    p += l;
    if (p[0] != ',' || p[1] != ' ' || p[4] != '-' || p[8] != '-' || p[11] != ' ' || p[20] != ' ' ||
        memcmp(p + 21, "GMT", 3) != 0)
        return -1;
    int d = digits(p + 2, 2), m = month_of(p + 5), yy = digits(p + 9, 2), secs = time_of_day(p + 12);
    if (d < 1 || m == 0 || yy < 0 || secs < 0 || d > 31)
        return -1;
    if (!have_now)
        now_s = (int64_t)time(NULL);
    return assemble(rfc850_year(yy, m, d, secs, now_s < 0 ? 0 : now_s), m, d, secs, wday);
}

static int64_t parse(pt_str_t v, bool have_now, int64_t now_s)
{
    if (v.n == 29 && v.p[3] == ',')
        return parse_imf(v.p);
    if (v.n == 24 && v.p[3] == ' ')
        return parse_asctime(v.p);
    if (v.n >= 30 && v.n <= 33)
        return parse_rfc850(v.p, v.n, have_now, now_s);
    return -1;
}

int64_t pt_http_date_parse(pt_str_t v)
{
    return parse(v, false, 0);
}

int64_t pt_http_date_parse_at(pt_str_t v, int64_t now_s)
{
    return parse(v, true, now_s);
}

static void put2(char *p, int v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

void pt_http_date_format(int64_t t, char out[29])
{
    t = t < 0 ? 0 : t > PT_HTTP_DATE_MAX ? PT_HTTP_DATE_MAX : t;
    int64_t days = t / 86400, y;
    int secs = (int)(t % 86400), m, d;
    civil_from_days(days, &y, &m, &d);
    memcpy(out, wkdays[(days + 4) % 7], 3);
    memcpy(out + 3, ", ", 2);
    put2(out + 5, d);
    out[7] = ' ';
    memcpy(out + 8, months[m - 1], 3);
    out[11] = ' ';
    put2(out + 12, (int)(y / 100));
    put2(out + 14, (int)(y % 100));
    out[16] = ' ';
    put2(out + 17, secs / 3600);
    out[19] = ':';
    put2(out + 20, secs / 60 % 60);
    out[22] = ':';
    put2(out + 23, secs % 60);
    memcpy(out + 25, " GMT", 4);
}
