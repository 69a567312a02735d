#include "config.h"

#include <stdio.h>

#include "portico/http.h"

#define T(c) [c] = 1
/* tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_"
 *       / "`" / "|" / "~" / DIGIT / ALPHA */
const unsigned char pt_http_tchar[256] = {
    T('!'), T('#'), T('$'), T('%'), T('&'), T('\''), T('*'), T('+'), T('-'), T('.'), T('^'),
    T('_'), T('`'), T('|'), T('~'), T('0'), T('1'), T('2'), T('3'), T('4'), T('5'), T('6'),
    T('7'), T('8'), T('9'), T('A'), T('B'), T('C'), T('D'), T('E'), T('F'), T('G'), T('H'),
    T('I'), T('J'), T('K'), T('L'), T('M'), T('N'), T('O'), T('P'), T('Q'), T('R'), T('S'),
    T('T'), T('U'), T('V'), T('W'), T('X'), T('Y'), T('Z'), T('a'), T('b'), T('c'), T('d'),
    T('e'), T('f'), T('g'), T('h'), T('i'), T('j'), T('k'), T('l'), T('m'), T('n'), T('o'),
    T('p'), T('q'), T('r'), T('s'), T('t'), T('u'), T('v'), T('w'), T('x'), T('y'), T('z'),
};
#undef T

static const struct {
    const char *name;
    unsigned bit;
} methods[] = {
    {"GET", PT_M_GET},         {"HEAD", PT_M_HEAD},       {"POST", PT_M_POST},
    {"PUT", PT_M_PUT},         {"DELETE", PT_M_DELETE},   {"PATCH", PT_M_PATCH},
    {"OPTIONS", PT_M_OPTIONS}, {"CONNECT", PT_M_CONNECT}, {"TRACE", PT_M_TRACE},
};

unsigned pt_http_method(pt_str_t name)
{
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (pt_str_eq(name, pt_str_from(methods[i].name)))
            return methods[i].bit;
    return PT_M_OTHER;
}

void pt_http_methods_format(unsigned mask, char *buf, size_t size)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]) && off < size; i++)
        if (mask & methods[i].bit)
            off += (size_t)snprintf(buf + off, size - off, "%s%s", off ? ", " : "", methods[i].name);
}

const char *pt_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}
