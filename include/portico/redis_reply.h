/* What the Redis client reads in the servers' replies, as pure functions
 * over hiredis' redisReply trees and error strings: no socket, no loop,
 * no allocation.  Fuzzed through hiredis' own reader by
 * tests/fuzz/redis_reply.c.  Every function rejects what it does not
 * understand (-1) rather than guess: the caller then counts locally. */
#ifndef PORTICO_REDIS_REPLY_H
#define PORTICO_REDIS_REPLY_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#define PT_REDIS_SLOTS 16384
#define PT_REDIS_HOST_MAX 256 /* host names and addresses, NUL included */

/* The kind of an error reply, from its first word. */
enum {
    PT_REDIS_ERR_OTHER,
    PT_REDIS_ERR_MOVED,    /* -MOVED slot host:port: the slot lives there now */
    PT_REDIS_ERR_ASK,      /* -ASK slot host:port: this once, ask there (after ASKING) */
    PT_REDIS_ERR_NOSCRIPT, /* EVALSHA of a script the server does not have */
    PT_REDIS_ERR_READONLY, /* a write to a replica: the master moved (failover) */
};
int pt_redis_error_kind(const char *s, size_t n);

/* "MOVED 3999 127.0.0.1:6381" or "ASK ...": the slot, the host (copied,
 * NUL-terminated; empty when the server sent ":port", meaning the host of
 * the node that answered) and the port.  0, or -1 when malformed. */
int pt_redis_parse_redirect(const char *s, size_t n, unsigned *slot, char *host, size_t hostsize, int *port);

/* "host:port" or "[v6]:port" (a configured address): host without the
 * brackets.  0, or -1 when malformed. */
int pt_redis_split_addr(const char *s, size_t n, char *host, size_t hostsize, int *port);

/* A CLUSTER SLOTS reply: calls fn once per range with the master's
 * endpoint (host is NUL-terminated; "" means the node that was asked),
 * when fn is not NULL.  The whole reply is checked before the first call
 * to fn, so a malformed reply changes nothing.  The number of ranges, or
 * -1 when malformed; fn returning non-zero stops and returns -1. */
typedef int (*pt_redis_range_fn)(void *arg, unsigned from, unsigned to, const char *host, int port);
int pt_redis_parse_slots(const redisReply *rep, pt_redis_range_fn fn, void *arg);

/* A sentinel's answer to SENTINEL get-master-addr-by-name: 0 with host and
 * port, 1 when the sentinel does not know the name (nil), -1 when
 * malformed or an error. */
int pt_redis_parse_master_addr(const redisReply *rep, char *host, size_t hostsize, int *port);

/* A script's reply: one integer, or an array of at most max integers.
 * 0 with *n values in vals, or -1. */
int pt_redis_parse_ints(const redisReply *rep, long long *vals, size_t max, size_t *n);

#endif
