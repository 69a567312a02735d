#include "config.h"

#include <netinet/in.h>

#include "../unit/tap.h"
#include "portico/value.h"

static void duration(const char *s, int64_t want)
{
    int64_t v = -1;
    const char *err = pt_value_duration(s, &v);
    ok(!err && v == want, "duration \"%s\" = %lld ms (got %lld%s%s)", s, (long long)want, (long long)v,
       err ? ", " : "", err ? err : "");
}

static void bad_duration(const char *s, const char *want)
{
    int64_t v;
    const char *err = pt_value_duration(s, &v);
    is_str(err, want, "duration \"%s\" is refused", s);
}

static void size(const char *s, int64_t want)
{
    int64_t v = -1;
    const char *err = pt_value_size(s, &v);
    ok(!err && v == want, "size \"%s\" = %lld (got %lld)", s, (long long)want, (long long)v);
}

int main(void)
{
    duration("250ms", 250);
    duration("10s", 10000);
    duration("5m", 300000);
    duration("2h", 7200000);
    duration("1d", 86400000);
    duration("1m30s", 90000);
    duration("0s", 0);
    bad_duration("10", "a duration needs a unit: ms, s, m, h or d (10s, not 10)");
    bad_duration("10x", "unknown duration unit (use ms, s, m, h or d)");
    bad_duration("", "expected a duration such as 250ms, 10s, 5m, 1h");
    bad_duration("-5s", "expected a duration such as 250ms, 10s, 5m, 1h");
    bad_duration("1.5s", "a duration is a whole number of a unit: 1500ms, not 1.5s");
    bad_duration("99999999999999999999d", "duration out of range");

    size("512", 512);
    size("16k", 16384);
    size("4KiB", 4096);
    size("1m", 1 << 20);
    size("2g", 2LL << 30);
    size("7b", 7);
    int64_t v;
    is_str(pt_value_size("12q", &v), "unknown size unit (use k, m or g)", "size with a bad unit");
    is_str(pt_value_size("k", &v), "expected a size such as 512, 16k, 1m", "size without digits");

    pt_addr_t a;
    ok(!pt_value_addr("127.0.0.1:8080", &a, 0) && a.ss.ss_family == AF_INET &&
           ntohs(((struct sockaddr_in *)&a.ss)->sin_port) == 8080,
       "IPv4 address and port");
    ok(!pt_value_addr("[::1]:443", &a, 0) && a.ss.ss_family == AF_INET6 && pt_addr_is_loopback(&a),
       "IPv6 loopback address");
    ok(!pt_value_addr(":8080", &a, 0) && a.ss.ss_family == AF_INET && !pt_addr_is_loopback(&a),
       ":8080 is every IPv4 address");
    ok(!pt_value_addr("8080", &a, 0), "a bare port");
    ok(!pt_value_addr("*:80", &a, 0), "*:port");
    is_str(pt_value_addr("127.0.0.1:0", &a, 0), "port out of range 1-65535", "port 0 refused by default");
    ok(!pt_value_addr("127.0.0.1:0", &a, 1), "port 0 allowed when asked");
    is_str(pt_value_addr("127.0.0.1:65536", &a, 0), "port out of range 1-65535", "port above 65535");
    is_str(pt_value_addr("localhost:80", &a, 0), "expected a numeric IP address and port, such as 127.0.0.1:8080",
           "host names are refused");
    is_str(pt_value_addr("::1:80", &a, 0), "an IPv6 address goes in brackets: [::1]:8080", "IPv6 without brackets");
    is_str(pt_value_addr("1.2.3.4:", &a, 0), "missing port", "missing port");
    is_str(pt_value_addr("1.2.3.4:8o", &a, 0), "the port must be a number", "port with a letter");

    char buf[64];
    pt_value_format_duration(90000, buf, sizeof(buf));
    is_str(buf, "1m30s", "formats 90000 ms");
    pt_value_format_duration(1500, buf, sizeof(buf));
    is_str(buf, "1s500ms", "formats 1500 ms");
    pt_value_format_size(32768, buf, sizeof(buf));
    is_str(buf, "32k", "formats 32768 bytes");
    pt_value_format_size(1000, buf, sizeof(buf));
    is_str(buf, "1000", "formats 1000 bytes");
    return done_testing();
}
