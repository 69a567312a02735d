/* HTTP vocabulary shared by the parser, the router and responses. */
#ifndef PORTICO_HTTP_H
#define PORTICO_HTTP_H

#include "portico/str.h"

enum pt_method {
    PT_M_OTHER = 0,
    PT_M_GET = 1u << 0,
    PT_M_HEAD = 1u << 1,
    PT_M_POST = 1u << 2,
    PT_M_PUT = 1u << 3,
    PT_M_DELETE = 1u << 4,
    PT_M_PATCH = 1u << 5,
    PT_M_OPTIONS = 1u << 6,
    PT_M_CONNECT = 1u << 7,
    PT_M_TRACE = 1u << 8,
};

/* The bit of a method name (exact, upper case), or PT_M_OTHER. */
unsigned pt_http_method(pt_str_t name);
/* "GET, HEAD" for a mask, into buf. */
void pt_http_methods_format(unsigned mask, char *buf, size_t size);
/* The reason phrase of a status ("Not Found"), or "Unknown". */
const char *pt_http_reason(int status);
/* Is c a tchar (RFC 9110 token character)? */
static inline int pt_http_is_tchar(unsigned char c)
{
    extern const unsigned char pt_http_tchar[256];
    return pt_http_tchar[c];
}

#endif
