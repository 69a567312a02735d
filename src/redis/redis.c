/* A worker's Redis client (redis.h): the calls, their deadlines, the
 * fallback episodes and the probe that ends them.
 *
 * A call is sent with EVALSHA (EVAL once after -NOSCRIPT, which loads the
 * script) and carries one libevent timer: at redis.timeout after
 * pt_redis_eval, connecting included, it answers PT_REDIS_FALLBACK if
 * nothing else did.  An outcome is always delivered from the loop (the
 * same event, made active), never from inside pt_redis_eval or a hiredis
 * callback.  A late reply to a call that timed out or was cancelled finds
 * it marked dead (redis-int.h says why it is still allocated) and frees it.
 *
 * Trouble (a timeout, a refused or closed connection, an error reply that
 * is not MOVED, ASK or NOSCRIPT, AUTH or SELECT refused) starts an episode:
 * one warn line, every pending call answers FALLBACK at once, every
 * connection is closed (so a server that accepts and never answers, as a
 * SIGSTOPped one does, holds nothing), pt_redis_ready is false, and a
 * probe runs every redis.probe_interval: PING on a new connection (single);
 * the sentinels asked in order, then PING to the master they name
 * (sentinel); CLUSTER SLOTS from the known nodes in order (cluster).  Each
 * step of a probe has redis.timeout; the first probe that gets its answer
 * ends the episode (one notice line).  The first connection, at
 * pt_redis_new, is such a probe: the client is not ready before it. */
#include "config.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "portico/assert.h"
#include "portico/log.h"
#include "portico/redis.h"
#include "redis-int.h"

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void mask(char *s, const char *secret)
{
    size_t k = secret ? strlen(secret) : 0;
    char *p;
    if (!k)
        return;
    while ((p = strstr(s, secret))) {
        if (k < 3) {
            memset(p, '*', k);
        } else {
            memcpy(p, "***", 3);
            memmove(p + 3, p + k, strlen(p + k) + 1);
        }
        s = p + (k < 3 ? k : 3); /* on after it: a secret of stars is masked once */
    }
}

void rd_redact(const pt_redis_t *r, char *s)
{
    mask(s, r->conf->password);
    mask(s, r->conf->sentinel_password);
}

static int script_sha(pt_redis_script_t *s)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (!EVP_Digest(s->lua, strlen(s->lua), md, &len, EVP_sha1(), NULL) || len != 20)
        return -1;
    for (unsigned i = 0; i < len; i++)
        snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* ---- calls ---- */

static void call_link(pt_redis_t *r, pt_redis_call_t *c)
{
    c->next = r->calls;
    if (r->calls)
        r->calls->prev = c;
    r->calls = c;
}

static void call_unlink(pt_redis_call_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        c->r->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void call_free(pt_redis_call_t *c)
{
    c->magic = 0;
    free(c);
}

/* The outcome is known: delivered from the loop. */
static void call_finish(pt_redis_call_t *c, int status)
{
    c->done = true;
    c->status = status;
    if (status == PT_REDIS_OK)
        c->r->st.answers++;
    else
        c->r->st.fallbacks++;
    event_del(&c->ev);
    event_active(&c->ev, EV_TIMEOUT, 1);
}

static void deliver(pt_redis_call_t *c)
{
    call_unlink(c);
    c->dead = true;
    c->delivering = true;
    c->cb(c->arg, c->status, c->vals, c->nvals); /* may free the client */
    c->delivering = false;
    if (!c->inflight)
        call_free(c);
}

/* The deadline, or the delivery of an outcome. */
static void on_call_event(evutil_socket_t fd, short what, void *arg)
{
    pt_redis_call_t *c = arg;
    PT_CHECK_MAGIC(c, RD_CALL_MAGIC);
    if (!c->done) {
        pt_redis_t *r = c->r;
        c->done = true;
        c->status = PT_REDIS_FALLBACK;
        rd_trouble(r, "%s: no answer within %lld ms", c->node->name, (long long)r->conf->timeout);
        r->st.fallbacks++; /* after: one of the episode's */
    }
    deliver(c);
}

static void call_error(pt_redis_call_t *c, const redisReply *rep)
{
    pt_redis_t *r = c->r;
    rd_node_t *n = c->node;
    int kind = pt_redis_error_kind(rep->str, rep->len);
    if (kind == PT_REDIS_ERR_NOSCRIPT && !c->evaled) {
        c->evaled = true; /* EVAL loads it for the calls after this one */
        r->st.loads++;
        if (rd_call_send(c, n))
            rd_trouble(r, "%s: %s", n->name, n->err);
        return;
    }
    if (kind == PT_REDIS_ERR_MOVED || kind == PT_REDIS_ERR_ASK) {
        rd_cluster_redirect(c, kind, rep->str, rep->len);
        return;
    }
    char msg[256];
    snprintf(msg, sizeof(msg), "%s", rep->str);
    if (kind == PT_REDIS_ERR_READONLY)
        rd_trouble(r, "%s is a replica now (%s)%s", n->name, msg,
                   r->conf->mode == PT_REDIS_SENTINEL ? ": asking the sentinels again" : "");
    else
        rd_trouble(r, "%s answered script %s with an error: %s", n->name, c->script->name, msg);
}

static const char *reply_type(int t)
{
    switch (t) {
    case REDIS_REPLY_STRING:
        return "a string";
    case REDIS_REPLY_ARRAY:
        return "an array of other things";
    case REDIS_REPLY_NIL:
        return "nil";
    case REDIS_REPLY_STATUS:
        return "a status";
    default:
        return "something else";
    }
}

static void on_call_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    pt_redis_call_t *c = privdata;
    redisReply *rep = reply;
    PT_CHECK_MAGIC(c, RD_CALL_MAGIC);
    c->inflight = false;
    if (c->dead) {
        if (!c->delivering)
            call_free(c);
        return;
    }
    if (c->done)
        return; /* answered FALLBACK already; delivery pending */
    pt_redis_t *r = c->r;
    rd_node_t *n = c->node;
    if (!rep) {
        const char *why = rd_node_lost(n, ac);
        rd_trouble(r, "%s: %s", n->name, why);
    } else if (rep->type == REDIS_REPLY_ERROR) {
        call_error(c, rep);
    } else if (pt_redis_parse_ints(rep, c->vals, RD_MAX_VALS, &c->nvals)) {
        rd_trouble(r, "%s: script %s answered %s, not integers", n->name, c->script->name, reply_type(rep->type));
    } else {
        call_finish(c, PT_REDIS_OK);
    }
}

int rd_call_send(pt_redis_call_t *c, rd_node_t *n)
{
    const char *argv[4 + PT_REDIS_MAX_ARGS];
    size_t lens[4 + PT_REDIS_MAX_ARGS];
    char nums[PT_REDIS_MAX_ARGS][24];
    argv[0] = c->evaled ? "EVAL" : "EVALSHA";
    argv[1] = c->evaled ? c->script->lua : c->script->sha;
    argv[2] = "1";
    argv[3] = c->key;
    lens[0] = strlen(argv[0]);
    lens[1] = strlen(argv[1]);
    lens[2] = 1;
    lens[3] = c->keylen;
    for (size_t i = 0; i < c->nargs; i++) {
        lens[4 + i] = (size_t)snprintf(nums[i], sizeof(nums[i]), "%lld", c->args[i]);
        argv[4 + i] = nums[i];
    }
    c->node = n;
    if (c->asking) {
        const char *asking[1] = {"ASKING"};
        if (rd_node_send(n, 1, asking, NULL, NULL, NULL))
            return -1;
    }
    if (rd_node_send(n, (int)(4 + c->nargs), argv, lens, on_call_reply, c))
        return -1;
    c->inflight = true;
    return 0;
}

/* ---- episodes and probes ---- */

#define FORMAT(buf, fmt) \
    do { \
        va_list ap_; \
        va_start(ap_, fmt); \
        vsnprintf(buf, sizeof(buf), fmt, ap_); \
        va_end(ap_); \
    } while (0)

void rd_trouble(pt_redis_t *r, const char *fmt, ...)
{
    if (r->closing)
        return;
    char why[512];
    FORMAT(why, fmt);
    rd_redact(r, why);
    r->up = false;
    r->probe.active = false;
    r->probe.node = NULL;
    if (!r->fallback) {
        r->fallback = true;
        r->st.episodes++;
        r->episode_us = now_us();
        r->episode_fallbacks = r->st.fallbacks;
        pt_log_warn("redis: %s; limits count locally until it answers", why);
    } else {
        pt_log_debug("redis: still no answer: %s", why);
    }
    for (pt_redis_call_t *c = r->calls; c; c = c->next)
        if (!c->done)
            call_finish(c, PT_REDIS_FALLBACK);
    for (size_t i = 0; i < r->nnodes; i++)
        rd_node_drop(r->nodes[i]);
    evtimer_del(&r->probe.ev);
    evtimer_add(&r->probe.ev, &r->probe_interval);
}

void rd_probe_ok(pt_redis_t *r)
{
    const char *name = r->probe.node ? r->probe.node->name : "redis";
    r->probe.active = false;
    evtimer_del(&r->probe.ev);
    r->up = true;
    if (r->fallback) {
        r->fallback = false;
        pt_log_notice("redis: %s answers again after %.1f s (%llu calls counted locally); limits use it again",
                      name, (double)(now_us() - r->episode_us) / 1e6,
                      (unsigned long long)(r->st.fallbacks - r->episode_fallbacks));
    } else {
        pt_log_info("redis: %s answers", name);
    }
}

void rd_probe_failed(pt_redis_t *r, const char *fmt, ...)
{
    if (r->closing || !r->probe.active)
        return;
    char why[512];
    FORMAT(why, fmt);
    if (r->probe.node)
        rd_node_drop(r->probe.node);
    size_t count = r->conf->mode == PT_REDIS_CLUSTER ? r->nnodes : r->nseeds;
    if (r->probe.stage == RD_PROBE_LIST && ++r->probe.idx < count) {
        rd_redact(r, why);
        pt_log_debug("redis: %s; trying the next one", why);
        rd_probe_step(r);
        return;
    }
    rd_trouble(r, "%s", why);
}

void rd_node_failed(rd_node_t *n, const char *fmt, ...)
{
    pt_redis_t *r = n->r;
    if (r->closing)
        return;
    char why[512];
    FORMAT(why, fmt);
    if (r->probe.active && r->probe.node == n)
        rd_probe_failed(r, "%s", why);
    else if (n->sentinel || r->probe.active)
        pt_log_debug("redis: %s", why); /* nothing waits on it */
    else
        rd_trouble(r, "%s", why);
}

bool rd_probe_answer(const redisAsyncContext *ac, rd_node_t *n, const redisReply *rep)
{
    pt_redis_t *r = n->r;
    if (r->closing || !rd_is_current(ac, n) || !r->probe.active || r->probe.node != n)
        return false;
    if (!rep) {
        const char *why = rd_node_lost(n, ac);
        rd_probe_failed(r, "%s%s: %s", n->sentinel ? "sentinel " : "", n->name, why);
        return false;
    }
    return true;
}

static void on_pong(redisAsyncContext *ac, void *reply, void *privdata)
{
    rd_node_t *n = privdata;
    redisReply *rep = reply;
    PT_CHECK_MAGIC(n, RD_NODE_MAGIC);
    if (!rd_probe_answer(ac, n, rep))
        return;
    if (rep->type == REDIS_REPLY_STATUS && strcasecmp(rep->str, "PONG") == 0)
        rd_probe_ok(n->r);
    else
        rd_probe_failed(n->r, "%s answered PING with %s", n->name,
                        rep->type == REDIS_REPLY_ERROR ? rep->str : reply_type(rep->type));
}

void rd_probe_step(pt_redis_t *r)
{
    evtimer_del(&r->probe.ev);
    evtimer_add(&r->probe.ev, &r->timeout);
    r->probe.node = NULL;
    if (r->probe.stage == RD_PROBE_LIST) {
        if (r->conf->mode == PT_REDIS_SENTINEL)
            rd_sentinel_probe(r);
        else
            rd_cluster_probe(r);
        return;
    }
    rd_node_t *n = r->master;
    const char *ping[1] = {"PING"};
    r->probe.node = n;
    if (rd_node_send(n, 1, ping, NULL, on_pong, n))
        rd_probe_failed(r, "%s: %s", n->name, n->err);
}

static void probe_start(pt_redis_t *r)
{
    r->probe.active = true;
    r->probe.idx = 0;
    r->probe.stage = r->conf->mode == PT_REDIS_SINGLE ? RD_PROBE_PING : RD_PROBE_LIST;
    rd_probe_step(r);
}

static void on_probe_event(evutil_socket_t fd, short what, void *arg)
{
    pt_redis_t *r = arg;
    PT_CHECK_MAGIC(r, RD_MAGIC);
    if (!r->probe.active) {
        probe_start(r);
        return;
    }
    const rd_node_t *n = r->probe.node;
    rd_probe_failed(r, "%s: no answer within %lld ms", n ? n->name : "redis", (long long)r->conf->timeout);
}

/* ---- the interface ---- */

static struct timeval ms_tv(int64_t ms)
{
    return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

pt_redis_t *pt_redis_new(struct event_base *base, const pt_redis_conf_t *conf)
{
    pt_redis_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    *r = (pt_redis_t){.magic = RD_MAGIC, .base = base, .conf = conf};
    r->timeout = ms_tv(conf->timeout > 0 ? conf->timeout : 50);
    r->probe_interval = ms_tv(conf->probe_interval > 0 ? conf->probe_interval : 1000);
    evtimer_assign(&r->probe.ev, base, on_probe_event, r);
    for (size_t i = 0; i < conf->addresses.n; i++) {
        const char *a = conf->addresses.v[i];
        char host[PT_REDIS_HOST_MAX];
        int port;
        if (pt_redis_split_addr(a, strlen(a), host, sizeof(host), &port)) {
            pt_log_error("redis: addresses[%zu]: expected \"host:port\", not \"%s\"", i, a);
            pt_redis_free(r);
            return NULL;
        }
        if (!rd_node_get(r, host, port, conf->mode == PT_REDIS_SENTINEL)) {
            pt_redis_free(r);
            return NULL;
        }
    }
    r->nseeds = r->nnodes;
    if ((conf->mode == PT_REDIS_CLUSTER && !(r->slots = calloc(PT_REDIS_SLOTS, sizeof(*r->slots)))) ||
        r->nseeds == 0) {
        pt_redis_free(r);
        return NULL;
    }
    if (conf->mode == PT_REDIS_SINGLE)
        r->master = r->nodes[0];
    probe_start(r);
    return r;
}

void pt_redis_free(pt_redis_t *r)
{
    if (!r)
        return;
    PT_CHECK_MAGIC(r, RD_MAGIC);
    r->closing = true;
    while (r->calls) {
        pt_redis_call_t *c = r->calls;
        call_unlink(c);
        event_del(&c->ev);
        c->dead = true;
        if (!c->inflight)
            call_free(c);
    }
    evtimer_del(&r->probe.ev);
    for (size_t i = 0; i < r->nnodes; i++)
        rd_node_drop(r->nodes[i]); /* the last callbacks free the calls in flight */
    for (size_t i = 0; i < r->nnodes; i++)
        rd_node_free(r->nodes[i]);
    rd_dns_free(r);
    free(r->nodes);
    free(r->slots);
    r->magic = 0;
    free(r);
}

bool pt_redis_ready(const pt_redis_t *r)
{
    return r && r->up;
}

pt_redis_call_t *pt_redis_eval(pt_redis_t *r, pt_redis_script_t *s, const char *key, size_t keylen,
                               const long long *args, size_t nargs, pt_redis_cb cb, void *arg)
{
    PT_CHECK_MAGIC(r, RD_MAGIC);
    if (!r->up || nargs > PT_REDIS_MAX_ARGS || (!s->sha[0] && script_sha(s))) {
        r->st.fallbacks++;
        return NULL;
    }
    rd_node_t *n = r->conf->mode == PT_REDIS_CLUSTER ? rd_cluster_node(r, key, keylen) : r->master;
    pt_redis_call_t *c = n ? malloc(sizeof(*c) + keylen + 1) : NULL;
    if (!c) {
        r->st.fallbacks++;
        return NULL;
    }
    *c = (pt_redis_call_t){.magic = RD_CALL_MAGIC, .r = r, .node = n, .script = s, .cb = cb, .arg = arg,
                           .nargs = nargs, .keylen = keylen};
    memcpy(c->key, key, keylen);
    c->key[keylen] = 0;
    if (nargs)
        memcpy(c->args, args, nargs * sizeof(*args));
    evtimer_assign(&c->ev, r->base, on_call_event, c);
    evtimer_add(&c->ev, &r->timeout);
    call_link(r, c);
    r->st.calls++;
    if (rd_call_send(c, n))
        rd_trouble(r, "%s: %s", n->name, n->err); /* answers c FALLBACK, from the loop */
    return c;
}

void pt_redis_cancel(pt_redis_call_t *c)
{
    if (!c)
        return;
    PT_CHECK_MAGIC(c, RD_CALL_MAGIC);
    PT_ASSERT(!c->dead);
    call_unlink(c);
    event_del(&c->ev);
    c->dead = true;
    if (!c->inflight)
        call_free(c);
}

void pt_redis_stats(const pt_redis_t *r, pt_redis_stats_t *st)
{
    *st = r->st;
    st->fallback = r->fallback;
}
