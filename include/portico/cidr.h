/* IPv4 and IPv6 address ranges ("10.0.0.0/8", "::1/128", "192.0.2.7"). */
#ifndef PORTICO_CIDR_H
#define PORTICO_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct pt_cidr {
    int family;
    uint8_t addr[16];
    int bits;
} pt_cidr_t;

/* NULL, or a phrase saying what is wrong. */
const char *pt_cidr_parse(const char *s, pt_cidr_t *c);
/* Is sa (AF_INET or AF_INET6; IPv4-mapped IPv6 counts as IPv4) in any? */
bool pt_cidr_match(const pt_cidr_t *v, size_t n, const struct sockaddr *sa);

#endif
