/* Parsers for the scalar value kinds of the configuration.  Each returns
 * NULL on success or a short phrase saying what is wrong; the caller adds
 * the key and the location. */
#ifndef PORTICO_VALUE_H
#define PORTICO_VALUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct pt_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char *text;
} pt_addr_t;

/* "250ms", "10s", "5m", "2h", "1d", "1m30s": milliseconds.  Units required. */
const char *pt_value_duration(const char *s, int64_t *ms);
/* "512", "16k", "4KiB", "1m", "2g": bytes, binary multiples. */
const char *pt_value_size(const char *s, int64_t *bytes);
/* "10", "-3": a decimal integer. */
const char *pt_value_int(const char *s, int64_t *v);
/* "127.0.0.1:8080", "[::1]:80", "*:8080", ":8080", "8080": a numeric address
 * and port (1-65535; 0 only when allow_port0). */
const char *pt_value_addr(const char *s, pt_addr_t *a, int allow_port0);
/* Writes the canonical form ("1m30s", "16k"). */
void pt_value_format_duration(int64_t ms, char *buf, size_t size);
void pt_value_format_size(int64_t bytes, char *buf, size_t size);
/* Is this address in 127.0.0.0/8 or ::1? */
int pt_addr_is_loopback(const pt_addr_t *a);
/* Would sockets bound to a and b take the same port: same family and port
 * (not 0), and the same address or either one the wildcard?  (IPv6
 * sockets are IPV6_V6ONLY: [::] and 0.0.0.0 do not overlap.) */
bool pt_addr_overlaps(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
/* "1.2.3.4:80" or "[::1]:80" */
void pt_addr_format(const struct sockaddr *sa, char *buf, size_t size);
/* The address alone, without port or brackets: "10.0.0.1", "::1". */
void pt_addr_format_ip(const struct sockaddr *sa, char *buf, size_t size);
/* An http:// or https:// URL: its parts.  host is as written (an IPv6
 * address with its brackets), port the default of the scheme when absent,
 * path_query the rest ("/" when empty). */
typedef struct pt_uri {
    bool https;
    char host[256];
    int port;
    bool port_given;
    const char *path_query;
} pt_uri_t;
const char *pt_value_uri(const char *s, pt_uri_t *u);
/* A string that goes into a header field (a consumer's name, a realm):
 * NULL, or why not (a control character; with quoted, '"' or '\\'). */
const char *pt_value_field_text(const char *s, bool quoted);
/* "host:port" (checked at load): the host into buf, the port returned. */
int pt_value_host_port(const char *hostport, char *host, size_t size);

#endif
