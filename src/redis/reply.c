/* The Redis client's reading of replies (redis_reply.h): pure functions,
 * fuzzed.  The formats are those of Redis 7: -MOVED and -ASK with an
 * "ip:port" whose ip may be empty (the endpoint of the node that answered)
 * or an IPv6 address without brackets (the port follows the last colon);
 * CLUSTER SLOTS entries [from, to, [ip, port, id, ...], replicas...] in
 * which only the master (the first endpoint) is read. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "portico/redis_reply.h"

static bool word_is(const char *s, size_t n, const char *w)
{
    size_t k = strlen(w);
    return n >= k && memcmp(s, w, k) == 0 && (n == k || s[k] == ' ');
}

int pt_redis_error_kind(const char *s, size_t n)
{
    if (!s)
        return PT_REDIS_ERR_OTHER;
    if (word_is(s, n, "MOVED"))
        return PT_REDIS_ERR_MOVED;
    if (word_is(s, n, "ASK"))
        return PT_REDIS_ERR_ASK;
    if (word_is(s, n, "NOSCRIPT"))
        return PT_REDIS_ERR_NOSCRIPT;
    if (word_is(s, n, "READONLY"))
        return PT_REDIS_ERR_READONLY;
    return PT_REDIS_ERR_OTHER;
}

/* A decimal number in [lo, hi], the whole of s[0..n). */
static int parse_num(const char *s, size_t n, long lo, long hi, long *out)
{
    long v = 0;
    if (n == 0 || n > 9)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int copy_host(const char *s, size_t n, char *host, size_t hostsize)
{
    if (n >= hostsize || n >= PT_REDIS_HOST_MAX || memchr(s, 0, n))
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == '[' || s[i] == ']' || s[i] == '/')
            return -1;
    memcpy(host, s, n);
    host[n] = 0;
    return 0;
}

int pt_redis_parse_redirect(const char *s, size_t n, unsigned *slot, char *host, size_t hostsize, int *port)
{
    const char *end = s + n, *p = memchr(s, ' ', n);
    if (!p)
        return -1;
    const char *num = ++p, *sp = memchr(p, ' ', (size_t)(end - p));
    if (!sp)
        return -1;
    long v;
    if (parse_num(num, (size_t)(sp - num), 0, PT_REDIS_SLOTS - 1, &v))
        return -1;
    *slot = (unsigned)v;
    const char *ep = sp + 1, *colon = NULL;
    for (const char *q = ep; q < end; q++)
        if (*q == ':')
            colon = q;
    if (!colon || parse_num(colon + 1, (size_t)(end - colon - 1), 1, 65535, &v))
        return -1;
    *port = (int)v;
    return copy_host(ep, (size_t)(colon - ep), host, hostsize);
}

int pt_redis_split_addr(const char *s, size_t n, char *host, size_t hostsize, int *port)
{
    const char *end = s + n, *colon = NULL;
    for (const char *q = s; q < end; q++)
        if (*q == ':')
            colon = q;
    long v;
    if (!colon || colon == s || parse_num(colon + 1, (size_t)(end - colon - 1), 1, 65535, &v))
        return -1;
    *port = (int)v;
    if (s[0] == '[') {
        if (colon[-1] != ']' || colon - s < 3)
            return -1;
        return copy_host(s + 1, (size_t)(colon - s - 2), host, hostsize);
    }
    if (memchr(s, ':', (size_t)(colon - s)))
        return -1; /* an IPv6 address needs its brackets here */
    return copy_host(s, (size_t)(colon - s), host, hostsize);
}

/* One [from, to, [host, port, ...], ...] entry: 0 and its fields, or -1. */
static int slot_entry(const redisReply *e, unsigned *from, unsigned *to, char *host, size_t hostsize, int *port)
{
    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 3)
        return -1;
    const redisReply *a = e->element[0], *b = e->element[1], *m = e->element[2];
    if (!a || !b || !m || a->type != REDIS_REPLY_INTEGER || b->type != REDIS_REPLY_INTEGER)
        return -1;
    if (a->integer < 0 || b->integer < a->integer || b->integer >= PT_REDIS_SLOTS)
        return -1;
    if (m->type != REDIS_REPLY_ARRAY || m->elements < 2 || !m->element[0] || !m->element[1])
        return -1;
    const redisReply *h = m->element[0], *p = m->element[1];
    if (h->type != REDIS_REPLY_STRING || p->type != REDIS_REPLY_INTEGER || p->integer < 1 || p->integer > 65535)
        return -1;
    *from = (unsigned)a->integer;
    *to = (unsigned)b->integer;
    *port = (int)p->integer;
    return copy_host(h->str, h->len, host, hostsize);
}

int pt_redis_parse_slots(const redisReply *rep, pt_redis_range_fn fn, void *arg)
{
    char host[PT_REDIS_HOST_MAX];
    unsigned from = 0, to = 0;
    int port = 0;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements > PT_REDIS_SLOTS)
        return -1;
    for (size_t i = 0; i < rep->elements; i++)
        if (slot_entry(rep->element[i], &from, &to, host, sizeof(host), &port))
            return -1;
    for (size_t i = 0; fn && i < rep->elements; i++) {
        slot_entry(rep->element[i], &from, &to, host, sizeof(host), &port);
        if (fn(arg, from, to, host, port))
            return -1;
    }
    return (int)rep->elements;
}

int pt_redis_parse_master_addr(const redisReply *rep, char *host, size_t hostsize, int *port)
{
    if (!rep)
        return -1;
    if (rep->type == REDIS_REPLY_NIL)
        return 1;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 || !rep->element[0] || !rep->element[1])
        return -1;
    const redisReply *h = rep->element[0], *p = rep->element[1];
    if (h->type != REDIS_REPLY_STRING || p->type != REDIS_REPLY_STRING || h->len == 0)
        return -1;
    long v;
    if (parse_num(p->str, p->len, 1, 65535, &v))
        return -1;
    *port = (int)v;
    return copy_host(h->str, h->len, host, hostsize);
}

int pt_redis_parse_ints(const redisReply *rep, long long *vals, size_t max, size_t *n)
{
    if (!rep || max == 0)
        return -1;
    if (rep->type == REDIS_REPLY_INTEGER) {
        vals[0] = rep->integer;
        *n = 1;
        return 0;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements > max)
        return -1;
    for (size_t i = 0; i < rep->elements; i++) {
        if (!rep->element[i] || rep->element[i]->type != REDIS_REPLY_INTEGER)
            return -1;
        vals[i] = rep->element[i]->integer;
    }
    *n = rep->elements;
    return 0;
}
