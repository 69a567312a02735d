/* What the files of src/redis/ share, and nothing outside them sees: the
 * client (redis.c: calls, episodes, probes), its nodes (node.c: one
 * connection each, name resolution, AUTH and SELECT), the sentinel lookup
 * (sentinel.c) and the cluster's slot map and redirections (cluster.c).
 *
 * Lifetimes, the part hiredis makes hard: hiredis calls every command's
 * callback exactly once, with the reply or with NULL when the connection
 * goes, and may do so while a context is being freed (redisAsyncFree runs
 * the pending callbacks at once).  So
 *   - a command's privdata is either a node (freed only in pt_redis_free,
 *     after every context) or a call that knows it is in flight (a call
 *     timed out or cancelled while in flight stays allocated, marked dead,
 *     until hiredis lets go of it);
 *   - a callback first asks whether its context is still the node's
 *     (rd_is_current): a context dropped on purpose is stale, and what it
 *     answers is ignored;
 *   - nothing here frees a context from its own connect or disconnect
 *     callback, where hiredis frees it itself. */
#ifndef PORTICO_REDIS_INT_H
#define PORTICO_REDIS_INT_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <hiredis/async.h>
#include <stdbool.h>
#include <stdint.h>

#include "portico/redis.h"
#include "portico/redis_reply.h"

#define RD_MAGIC 0x52454449u
#define RD_NODE_MAGIC 0x524e4f44u
#define RD_CALL_MAGIC 0x5243414cu
#define RD_MAX_NODES 1024     /* distinct addresses one client will know */
#define RD_MAX_REDIRECTS 5    /* MOVED and ASK followed by one call */
#define RD_MAX_VALS 16        /* integers in a script's reply */

typedef struct rd_send rd_send_t;
typedef struct rd_dns rd_dns_t;
struct rd_dnsq;

typedef struct rd_node {
    unsigned magic;
    pt_redis_t *r;
    size_t idx; /* in r->nodes */
    char host[PT_REDIS_HOST_MAX];
    int port;
    char name[PT_REDIS_HOST_MAX + 8]; /* host:port, for the log */
    bool sentinel;
    bool literal;                /* host is an IP address: no resolution */
    redisAsyncContext *ac;       /* the connection, or NULL */
    const redisAsyncContext *dying; /* the one hiredis is freeing after an error */
    char err[160];               /* why the last connection attempt failed */
    /* a host name being resolved: commands wait in the queue */
    struct rd_dnsq *dnsq;
    bool resolved;
    char ip[64];
    rd_send_t *queue, **qtail;
    struct event ev; /* the answer, handled from the loop */
} rd_node_t;

struct pt_redis_call {
    unsigned magic;
    pt_redis_t *r;
    pt_redis_call_t *prev, *next; /* r->calls: neither delivered nor cancelled */
    rd_node_t *node;
    pt_redis_script_t *script;
    pt_redis_cb cb;
    void *arg;
    struct event ev; /* the deadline, then the delivery */
    int status;
    size_t nvals, nargs;
    long long vals[RD_MAX_VALS];
    long long args[PT_REDIS_MAX_ARGS];
    int redirects;
    bool done;       /* the outcome is known; delivery pending */
    bool dead;       /* delivered or cancelled: only hiredis still points here */
    bool inflight;   /* hiredis holds a callback with this call */
    bool delivering; /* cb is running */
    bool evaled;     /* NOSCRIPT was answered: sent again with EVAL */
    bool asking;     /* ASK: ASKING precedes the command */
    size_t keylen;
    char key[];
};

enum { RD_PROBE_PING, RD_PROBE_LIST }; /* PING the master, or go down a list (sentinels, cluster nodes) */

struct pt_redis {
    unsigned magic;
    struct event_base *base;
    const pt_redis_conf_t *conf;
    struct timeval timeout, probe_interval;
    rd_dns_t *dns; /* made on first use */
    rd_node_t **nodes;
    size_t nnodes, capnodes;
    size_t nseeds;      /* nodes[0..nseeds): the configured addresses */
    rd_node_t *master;  /* single, sentinel: where scripts go */
    uint16_t *slots;    /* cluster: node idx + 1 by slot, 0 unknown */
    pt_redis_call_t *calls;
    bool up;            /* pt_redis_ready */
    bool fallback;      /* an episode is under way */
    bool closing;
    bool refreshing;    /* cluster: a CLUSTER SLOTS after MOVED is under way */
    struct {
        bool active;
        int stage;
        size_t idx;     /* RD_PROBE_LIST: which node of the list */
        rd_node_t *node;
        struct event ev; /* next probe, or the deadline of this step */
    } probe;
    int64_t episode_us;
    uint64_t episode_fallbacks;
    pt_redis_stats_t st;
};

/* node.c */
rd_node_t *rd_node_get(pt_redis_t *r, const char *host, int port, bool sentinel);
/* Sends a command (argv as hiredis takes it), connecting first when the
 * node has no connection.  0: fn(privdata) will be called exactly once,
 * never from inside this function.  -1: it will not; n->err says why. */
int rd_node_send(rd_node_t *n, int argc, const char **argv, const size_t *lens, redisCallbackFn *fn,
                 void *privdata);
/* Closes the node's connection now: the callbacks still pending run at
 * once, as stale (rd_is_current false). */
void rd_node_drop(rd_node_t *n);
void rd_node_free(rd_node_t *n);
/* Is c the node's connection (not one dropped on purpose)?  NULL means a
 * failure made up by node.c (a host name that does not resolve). */
bool rd_is_current(const redisAsyncContext *c, const rd_node_t *n);
/* A callback got a NULL reply from a current context: the connection is
 * gone.  Returns why, for the log. */
const char *rd_node_lost(rd_node_t *n, const redisAsyncContext *c);
void rd_dns_free(pt_redis_t *r);

/* redis.c */
/* Something went wrong: a fallback episode starts (logged once), or goes
 * on (the probe failed); every pending call answers PT_REDIS_FALLBACK,
 * every connection is closed, and the next probe is armed. */
void rd_trouble(pt_redis_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A node-level failure (AUTH, SELECT, a lost connection): the probe's
 * step fails when it was the probe's node, else rd_trouble. */
void rd_node_failed(rd_node_t *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rd_probe_ok(pt_redis_t *r);
/* Is rep the answer the running probe waits for from n?  false for a
 * stale one, and for none (the connection went: the step failed). */
bool rd_probe_answer(const redisAsyncContext *ac, rd_node_t *n, const redisReply *rep);
void rd_probe_failed(pt_redis_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Starts the probe's current step again, with a new deadline. */
void rd_probe_step(pt_redis_t *r);
int rd_call_send(pt_redis_call_t *call, rd_node_t *n);
/* Copies s, with any secret of the configuration in it masked. */
void rd_redact(const pt_redis_t *r, char *s);

/* sentinel.c */
void rd_sentinel_probe(pt_redis_t *r);

/* cluster.c */
void rd_cluster_probe(pt_redis_t *r);
rd_node_t *rd_cluster_node(pt_redis_t *r, const char *key, size_t keylen);
/* A -MOVED or -ASK answered to call: follows it.  0, or -1 (rd_trouble
 * was called). */
int rd_cluster_redirect(pt_redis_call_t *call, int kind, const char *err, size_t len);

#endif
