/* HTTP-dates (RFC 9110 §5.6.7): the three forms a recipient must accept,
 * parsed into seconds since the epoch, and the one form a sender makes
 * (IMF-fixdate).  Pure: no allocation, no locale, no time zone; only the
 * obsolete RFC 850 form, whose year has two digits, needs to know the
 * year it is now. */
#ifndef PORTICO_HTTPDATE_H
#define PORTICO_HTTPDATE_H

#include <stdint.h>

#include "portico/str.h"

/* The latest date an HTTP-date can say (9999-12-31 23:59:59). */
#define PT_HTTP_DATE_MAX 253402300799LL

/* An HTTP-date (IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", RFC 850
 * "Sunday, 06-Nov-94 08:49:37 GMT" or asctime "Sun Nov  6 08:49:37 1994")
 * as seconds since the epoch, or -1 when it is not one: another form,
 * anything before or after it, a day name that is not the date's, a day
 * the month does not have, a second of 60, or a date before 1970.  An RFC
 * 850 year that would be more than 50 years in the future is taken in the
 * century before (§5.6.7); pt_http_date_parse reads the wall clock for
 * that, and only for that form. */
int64_t pt_http_date_parse(pt_str_t v);
/* The same, with "now" given (seconds since the epoch): for tests. */
int64_t pt_http_date_parse_at(pt_str_t v, int64_t now_s);
/* Formats t as an IMF-fixdate (29 bytes, no NUL) into out[29]; t is
 * clamped to 0 .. PT_HTTP_DATE_MAX. */
void pt_http_date_format(int64_t t, char out[29]);

#endif
