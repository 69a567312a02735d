#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/value.h"

const char *pt_value_int(const char *s, int64_t *v)
{
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    if (!*p)
        return "expected an integer";
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q))
            return "expected an integer";
    errno = 0;
    long long x = strtoll(s, NULL, 10);
    if (errno == ERANGE)
        return "integer out of range";
    *v = x;
    return NULL;
}

const char *pt_value_duration(const char *s, int64_t *ms)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    const char *p = s;
    int64_t total = 0;
    if (!*p)
        return "expected a duration such as 250ms, 10s, 5m, 1h";
    while (*p) {
        if (!isdigit((unsigned char)*p))
            return "expected a duration such as 250ms, 10s, 5m, 1h";
        int64_t n = 0;
        while (isdigit((unsigned char)*p)) {
            if (n > INT64_MAX / 10 - 10)
                return "duration out of range";
            n = n * 10 + (*p++ - '0');
        }
        if (*p == '.')
            return "a duration is a whole number of a unit: 1500ms, not 1.5s";
        const char *u = p;
        while (isalpha((unsigned char)*p))
            p++;
        size_t ul = (size_t)(p - u);
        if (ul == 0)
            return "a duration needs a unit: ms, s, m, h or d (10s, not 10)";
        int64_t mult = 0;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
            if (strlen(units[i].unit) == ul && memcmp(units[i].unit, u, ul) == 0)
                mult = units[i].ms;
        if (!mult)
            return "unknown duration unit (use ms, s, m, h or d)";
        if (n > (INT64_MAX - total) / mult)
            return "duration out of range";
        total += n * mult;
    }
    *ms = total;
    return NULL;
}

const char *pt_value_size(const char *s, int64_t *bytes)
{
    const char *p = s;
    int64_t n = 0;
    if (!isdigit((unsigned char)*p))
        return "expected a size such as 512, 16k, 1m";
    while (isdigit((unsigned char)*p)) {
        if (n > INT64_MAX / 10 - 10)
            return "size out of range";
        n = n * 10 + (*p++ - '0');
    }
    int shift = 0;
    char u = (char)tolower((unsigned char)*p);
    if (u == 'k')
        shift = 10;
    else if (u == 'm')
        shift = 20;
    else if (u == 'g')
        shift = 30;
    else if (u == 'b' && p[1] == '\0')
        p++;
    else if (u != '\0')
        return "unknown size unit (use k, m or g)";
    if (shift) {
        p++;
        if (strcasecmp(p, "") && strcasecmp(p, "b") && strcasecmp(p, "ib"))
            return "unknown size unit (use k, m or g)";
    }
    if (n > (INT64_MAX >> shift))
        return "size out of range";
    *bytes = n << shift;
    return NULL;
}

const char *pt_value_addr(const char *s, pt_addr_t *a, int allow_port0)
{
    char host[128];
    const char *port;
    memset(&a->ss, 0, sizeof(a->ss));
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(host))
            return "expected [IPv6]:port";
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        port = end + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon) {
            for (const char *q = s; *q; q++)
                if (!isdigit((unsigned char)*q))
                    return "expected a numeric IP address and port, such as 127.0.0.1:8080";
            strcpy(host, "*");
            port = s;
        } else {
            if ((size_t)(colon - s) >= sizeof(host))
                return "host part too long";
            memcpy(host, s, (size_t)(colon - s));
            host[colon - s] = '\0';
            port = colon + 1;
            if (strchr(host, ':'))
                return "an IPv6 address goes in brackets: [::1]:8080";
        }
    }
    if (!*port)
        return "missing port";
    for (const char *q = port; *q; q++)
        if (!isdigit((unsigned char)*q))
            return "the port must be a number";
    long pn = strtol(port, NULL, 10);
    if (pn > 65535 || strlen(port) > 5 || (pn == 0 && !allow_port0))
        return "port out of range 1-65535";
    if (host[0] == '\0' || strcmp(host, "*") == 0)
        strcpy(host, "0.0.0.0");
    struct sockaddr_in *in = (struct sockaddr_in *)&a->ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->ss;
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)pn);
        a->len = sizeof(*in);
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)pn);
        a->len = sizeof(*in6);
    } else {
        return "expected a numeric IP address and port, such as 127.0.0.1:8080";
    }
    return NULL;
}

int pt_addr_is_loopback(const pt_addr_t *a)
{
    if (a->ss.ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr) >> 24) == 127;
    if (a->ss.ss_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
    return 0;
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                     : ((const struct sockaddr_in *)ss)->sin_port;
}

static bool wildcard(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)ss)->sin6_addr, &in6addr_any, sizeof(in6addr_any)) == 0;
    return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
}

bool pt_addr_overlaps(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family || port_of(a) != port_of(b) || port_of(a) == 0)
        return false;
    if (wildcard(a) || wildcard(b))
        return true;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &((const struct sockaddr_in6 *)b)->sin6_addr,
                      sizeof(struct in6_addr)) == 0;
    return ((const struct sockaddr_in *)a)->sin_addr.s_addr == ((const struct sockaddr_in *)b)->sin_addr.s_addr;
}

void pt_addr_format(const struct sockaddr *sa, char *buf, size_t size)
{
    char h[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, h, sizeof(h));
        snprintf(buf, size, "%s:%u", h, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, h, sizeof(h));
        snprintf(buf, size, "[%s]:%u", h, ntohs(in6->sin6_port));
    } else {
        snprintf(buf, size, "unix");
    }
}

void pt_addr_format_ip(const struct sockaddr *sa, char *buf, size_t size)
{
    const void *a = sa->sa_family == AF_INET ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                    : sa->sa_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                                                : NULL;
    if (!a || !inet_ntop(sa->sa_family, a, buf, (socklen_t)size))
        snprintf(buf, size, "%s", a ? "?" : "unix");
}

int pt_value_host_port(const char *hostport, char *host, size_t size)
{
    const char *colon = strrchr(hostport, ':');
    if (!colon) {
        snprintf(host, size, "%s", hostport);
        return 0;
    }
    snprintf(host, size, "%.*s", (int)(colon - hostport), hostport);
    return atoi(colon + 1);
}

void pt_value_format_duration(int64_t ms, char *buf, size_t size)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    size_t off = 0;
    if (ms == 0) {
        snprintf(buf, size, "0s");
        return;
    }
    for (size_t i = 0; i < 5 && off < size; i++) {
        if (ms >= units[i].ms) {
            off += (size_t)snprintf(buf + off, size - off, "%lld%s", (long long)(ms / units[i].ms),
                                    units[i].unit);
            ms %= units[i].ms;
        }
    }
}

void pt_value_format_size(int64_t b, char *buf, size_t size)
{
    if (b && b % (1 << 30) == 0)
        snprintf(buf, size, "%lldg", (long long)(b >> 30));
    else if (b && b % (1 << 20) == 0)
        snprintf(buf, size, "%lldm", (long long)(b >> 20));
    else if (b && b % (1 << 10) == 0)
        snprintf(buf, size, "%lldk", (long long)(b >> 10));
    else
        snprintf(buf, size, "%lld", (long long)b);
}

const char *pt_value_uri(const char *s, pt_uri_t *u)
{
    memset(u, 0, sizeof(*u));
    if (strncmp(s, "http://", 7) == 0) {
        s += 7;
    } else if (strncmp(s, "https://", 8) == 0) {
        s += 8;
        u->https = true;
    } else {
        return "a URL starting with http:// or https://";
    }
    const char *end = s + strcspn(s, "/?#"), *colon = NULL;
    if (*end == '#' || strchr(end, '#'))
        return "a URL without a #fragment";
    if (*s == '[') {
        const char *rb = memchr(s, ']', (size_t)(end - s));
        if (!rb)
            return "an IPv6 address in brackets: [::1]";
        colon = rb[1] == ':' ? rb + 1 : NULL;
        if (!colon && rb + 1 != end)
            return "a port after the IPv6 address: [::1]:8080";
    } else {
        colon = memchr(s, ':', (size_t)(end - s));
    }
    size_t hl = (size_t)((colon ? colon : end) - s);
    if (!hl || hl >= sizeof(u->host) || memchr(s, '@', (size_t)(end - s)))
        return hl ? "a host without user information, of at most 255 bytes" : "a host";
    for (size_t i = 0; i < hl; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return "a host of visible characters";
    memcpy(u->host, s, hl);
    u->port = u->https ? 443 : 80;
    if (colon) {
        long port = 0;
        const char *p = colon + 1;
        for (; p < end && *p >= '0' && *p <= '9' && port <= 65535; p++)
            port = port * 10 + (*p - '0');
        if (p != end || p == colon + 1 || port < 1 || port > 65535)
            return "a port from 1 to 65535";
        u->port = (int)port;
        u->port_given = true;
    }
    for (const char *p = end; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
            return "a path of visible characters (escape others with %XX)";
    u->path_query = *end ? end : "/";
    return NULL;
}

const char *pt_value_field_text(const char *s, bool quoted)
{
    for (; s && *s; s++) {
        unsigned char b = (unsigned char)*s;
        if (b < 0x20 || b == 0x7f)
            return "no control character (CR, LF, NUL, TAB...): it goes into a header field";
        if (quoted && (b == '"' || b == '\\'))
            return "no '\"' or '\\': it goes into a quoted string of a header field";
    }
    return NULL;
}
