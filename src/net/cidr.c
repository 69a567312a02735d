#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "portico/cidr.h"

const char *pt_cidr_parse(const char *s, pt_cidr_t *c)
{
    char host[64];
    const char *slash = strchr(s, '/');
    size_t hl = slash ? (size_t)(slash - s) : strlen(s);
    if (hl >= sizeof(host))
        return "expected an address or a range such as 10.0.0.0/8";
    memcpy(host, s, hl);
    host[hl] = '\0';
    memset(c, 0, sizeof(*c));
    int max;
    if (inet_pton(AF_INET, host, c->addr) == 1) {
        c->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, host, c->addr) == 1) {
        c->family = AF_INET6;
        max = 128;
    } else {
        return "expected an address or a range such as 10.0.0.0/8";
    }
    c->bits = max;
    if (slash) {
        char *end;
        long b = strtol(slash + 1, &end, 10);
        if (!slash[1] || *end || b < 0 || b > max)
            return "the prefix length is out of range";
        c->bits = (int)b;
    }
    /* the address must not have bits past the prefix: 10.1.2.3/8 is a typo */
    for (int i = c->bits; i < max; i++)
        if (c->addr[i / 8] & (0x80 >> (i % 8)))
            return "the address has bits set past the prefix length";
    return NULL;
}

static bool match_one(const pt_cidr_t *c, const uint8_t *a)
{
    int full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->addr, a, (size_t)full) != 0)
        return false;
    return rest == 0 || ((c->addr[full] ^ a[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

bool pt_cidr_match(const pt_cidr_t *v, size_t n, const struct sockaddr *sa)
{
    const uint8_t *a;
    int family = sa->sa_family;
    if (family == AF_INET) {
        a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    } else if (family == AF_INET6) {
        a = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a)) {
            family = AF_INET;
            a += 12;
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if (v[i].family == family && match_one(&v[i], a))
            return true;
    return false;
}
