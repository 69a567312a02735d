#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "../unit/tap.h"
#include "portico/cidr.h"

static struct sockaddr_storage addr(const char *s)
{
    struct sockaddr_storage ss = {0};
    if (strchr(s, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        inet_pton(AF_INET6, s, &a->sin6_addr);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        inet_pton(AF_INET, s, &a->sin_addr);
    }
    return ss;
}

static bool in(const pt_cidr_t *v, size_t n, const char *s)
{
    struct sockaddr_storage ss = addr(s);
    return pt_cidr_match(v, n, (struct sockaddr *)&ss);
}

int main(void)
{
    pt_cidr_t v[4];
    ok(!pt_cidr_parse("10.0.0.0/8", &v[0]), "parse 10.0.0.0/8");
    ok(!pt_cidr_parse("192.0.2.7", &v[1]), "parse a single IPv4 address");
    ok(!pt_cidr_parse("2001:db8::/32", &v[2]), "parse an IPv6 range");
    ok(!pt_cidr_parse("172.16.0.0/12", &v[3]), "parse 172.16.0.0/12");
    ok(in(v, 4, "10.200.3.4") && in(v, 4, "192.0.2.7") && in(v, 4, "2001:db8:1::5") && in(v, 4, "172.31.255.1"),
       "addresses inside match");
    ok(!in(v, 4, "11.0.0.1") && !in(v, 4, "192.0.2.8") && !in(v, 4, "2001:db9::1") && !in(v, 4, "172.32.0.1"),
       "addresses outside do not");
    ok(in(v, 4, "::ffff:10.1.1.1"), "an IPv4-mapped IPv6 address counts as IPv4");
    pt_cidr_t any;
    pt_cidr_parse("0.0.0.0/0", &any);
    ok(in(&any, 1, "8.8.8.8") && !in(&any, 1, "::1"), "/0 takes every IPv4 address and no IPv6 one");
    pt_cidr_t c;
    is_str(pt_cidr_parse("10.1.2.3/8", &c), "the address has bits set past the prefix length", "a typo'd range");
    is_str(pt_cidr_parse("10.0.0.0/33", &c), "the prefix length is out of range", "prefix too long");
    is_str(pt_cidr_parse("10.0.0.0/", &c), "the prefix length is out of range", "empty prefix");
    is_str(pt_cidr_parse("example.com", &c), "expected an address or a range such as 10.0.0.0/8", "a name");
    return done_testing();
}
