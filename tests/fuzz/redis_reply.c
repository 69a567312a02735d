/* libFuzzer target: what the Redis client reads in replies (redis_reply.h).
 * The bytes go through hiredis' own reader, as a server's would, and each
 * reply it makes goes through every parser; the bytes themselves are also
 * read as an error text (MOVED/ASK) and as a configured address.
 * Invariants checked: no crash; what a parser accepts is within bounds
 * (a slot below 16384, a port in 1..65535, a host NUL-terminated, shorter
 * than its buffer, without spaces or brackets; ranges in order); a slot map
 * is either whole or refused; a script's integers are the reply's. */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "portico/assert.h"
#include "portico/redis_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_host(const char *h, size_t size)
{
    size_t n = strnlen(h, size);
    PT_ASSERT(n < size);
    for (size_t i = 0; i < n; i++)
        PT_ASSERT((unsigned char)h[i] > ' ' && h[i] != '[' && h[i] != ']');
}

static int on_range(void *arg, unsigned from, unsigned to, const char *host, int port)
{
    unsigned *count = arg;
    PT_ASSERT(from <= to && to < PT_REDIS_SLOTS);
    PT_ASSERT(port >= 1 && port <= 65535);
    check_host(host, PT_REDIS_HOST_MAX);
    ++*count;
    return 0;
}

static void check_redirect(const char *s, size_t n)
{
    char host[PT_REDIS_HOST_MAX];
    unsigned slot = 99999;
    int port = 0;
    if (pt_redis_parse_redirect(s, n, &slot, host, sizeof(host), &port) == 0) {
        PT_ASSERT(slot < PT_REDIS_SLOTS && port >= 1 && port <= 65535);
        check_host(host, sizeof(host));
    }
    if (pt_redis_split_addr(s, n, host, sizeof(host), &port) == 0) {
        PT_ASSERT(port >= 1 && port <= 65535 && host[0]);
        check_host(host, sizeof(host));
    }
}

static void check_reply(const redisReply *rep)
{
    char host[PT_REDIS_HOST_MAX];
    int port = 0;
    if (rep->type == REDIS_REPLY_ERROR) {
        int kind = pt_redis_error_kind(rep->str, rep->len);
        PT_ASSERT(kind >= PT_REDIS_ERR_OTHER && kind <= PT_REDIS_ERR_READONLY);
        check_redirect(rep->str, rep->len);
    }
    unsigned count = 0;
    int n = pt_redis_parse_slots(rep, on_range, &count);
    PT_ASSERT(n == -1 || (unsigned)n == count);
    PT_ASSERT(n == -1 || pt_redis_parse_slots(rep, NULL, NULL) == n);
    int rc = pt_redis_parse_master_addr(rep, host, sizeof(host), &port);
    PT_ASSERT(rc >= -1 && rc <= 1);
    if (rc == 0) {
        PT_ASSERT(port >= 1 && port <= 65535 && host[0]);
        check_host(host, sizeof(host));
    }
    long long vals[16];
    size_t nv = 99;
    if (pt_redis_parse_ints(rep, vals, 16, &nv) == 0) {
        PT_ASSERT(nv <= 16);
        if (rep->type == REDIS_REPLY_INTEGER)
            PT_ASSERT(nv == 1 && vals[0] == rep->integer);
        else
            for (size_t i = 0; i < nv; i++)
                PT_ASSERT(vals[i] == rep->element[i]->integer);
    }
}

/* hiredis 0.14 allocates an array's element pointers as soon as it reads
 * its count: a count of a billion is a large allocation in hiredis, not in
 * the code under test, so such inputs are left out. */
static bool huge_count(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        if (data[i] != '*')
            continue;
        size_t d = 0;
        while (i + 1 + d < size && data[i + 1 + d] >= '0' && data[i + 1 + d] <= '9')
            d++;
        if (d > 6)
            return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_redirect((const char *)data, size);
    if (huge_count(data, size))
        return 0;
    redisReader *rd = redisReaderCreate();
    PT_ASSERT(rd);
    if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK) {
        void *rep = NULL;
        for (int i = 0; i < 64 && redisReaderGetReply(rd, &rep) == REDIS_OK && rep; i++, rep = NULL) {
            check_reply(rep);
            freeReplyObject(rep);
        }
    }
    redisReaderFree(rd);
    return 0;
}
