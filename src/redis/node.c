/* One Redis node of a worker's client: its address, its one connection
 * (hiredis' async API on the worker's loop), made when a command is sent
 * and none is open, with AUTH (username and password, or password; the
 * sentinels get sentinel_password) and SELECT pipelined before it.
 *
 * Host names are resolved without blocking: evdns_getaddrinfo on an
 * evdns_base of the loop made on first use from /etc/resolv.conf and
 * /etc/hosts (not resolver.nameservers, which belong to the upstreams),
 * IPv4 only (an IPv6 server is given by its address).  Commands sent
 * meanwhile wait in the node's queue; the answer is handled from the loop,
 * never from inside the resolver's callback, which may run inside
 * evdns_getaddrinfo itself.  A query still pending when the client is
 * freed is cancelled; the evdns_base then lives until the cancelled
 * query's callback has run (libevent calls it later, from the loop). */
#include "config.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <hiredis/adapters/libevent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "portico/assert.h"
#include "portico/log.h"
#include "redis-int.h"

/* A command formatted while its node's name is resolved. */
struct rd_send {
    rd_send_t *next;
    char *cmd;
    int len;
    redisCallbackFn *fn;
    void *privdata;
};

/* The evdns_base, and how many queries still point at it. */
struct rd_dns {
    struct evdns_base *base;
    struct event_base *loop;
    unsigned refs;
    bool orphan; /* the client is gone: free once refs is 0 */
};

struct rd_dnsq {
    rd_dns_t *dns;
    rd_node_t *node; /* NULL once the client is gone */
    struct evdns_getaddrinfo_request *req;
};

/* Handed to the callbacks of commands that never reached a connection
 * when their node is dropped: never any node's context, so stale. */
static redisAsyncContext stale_ctx;

static void on_resolved(evutil_socket_t fd, short what, void *arg);

bool rd_is_current(const redisAsyncContext *c, const rd_node_t *n)
{
    return c == NULL || (c != &stale_ctx && (c == n->ac || c == n->dying));
}

const char *rd_node_lost(rd_node_t *n, const redisAsyncContext *c)
{
    if (c && c == n->ac) {
        n->dying = c; /* hiredis is freeing it: never free it again */
        n->ac = NULL;
    }
    if (!c)
        return n->err;
    return c->errstr && c->errstr[0] ? c->errstr : "connection lost";
}

rd_node_t *rd_node_get(pt_redis_t *r, const char *host, int port, bool sentinel)
{
    for (size_t i = 0; i < r->nnodes; i++) {
        rd_node_t *n = r->nodes[i];
        if (n->port == port && n->sentinel == sentinel && strcmp(n->host, host) == 0)
            return n;
    }
    if (r->nnodes == RD_MAX_NODES || strlen(host) >= sizeof(((rd_node_t *)0)->host))
        return NULL;
    if (r->nnodes == r->capnodes) {
        size_t cap = r->capnodes ? r->capnodes * 2 : 8;
        rd_node_t **v = realloc(r->nodes, cap * sizeof(*v));
        if (!v)
            return NULL;
        r->nodes = v;
        r->capnodes = cap;
    }
    rd_node_t *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    *n = (rd_node_t){.magic = RD_NODE_MAGIC, .r = r, .idx = r->nnodes, .port = port, .sentinel = sentinel};
    n->qtail = &n->queue;
    snprintf(n->host, sizeof(n->host), "%s", host);
    bool v6 = strchr(host, ':') != NULL;
    snprintf(n->name, sizeof(n->name), v6 ? "[%s]:%d" : "%s:%d", host, port);
    unsigned char buf[sizeof(struct in6_addr)];
    n->literal = inet_pton(v6 ? AF_INET6 : AF_INET, host, buf) == 1;
    event_assign(&n->ev, r->base, -1, 0, on_resolved, n);
    r->nodes[r->nnodes++] = n;
    return n;
}

static void on_connect(const redisAsyncContext *c, int status)
{
    rd_node_t *n = c->data;
    PT_CHECK_MAGIC(n, RD_NODE_MAGIC);
    if (status != REDIS_OK && c == n->ac) {
        /* hiredis frees it after this; the pending callbacks say why */
        n->dying = c;
        n->ac = NULL;
    }
}

static void on_disconnect(const redisAsyncContext *c, int status)
{
    rd_node_t *n = c->data;
    PT_CHECK_MAGIC(n, RD_NODE_MAGIC);
    if (c == n->dying)
        n->dying = NULL;
    if (c != n->ac)
        return; /* dropped on purpose, or already reported */
    n->ac = NULL;
    if (status != REDIS_OK && !n->r->closing)
        rd_node_failed(n, "%s: %s", n->name, c->errstr[0] ? c->errstr : "connection closed");
}

/* The answers to AUTH and SELECT. */
static void on_hello(redisAsyncContext *c, redisReply *rep, rd_node_t *n, bool auth)
{
    PT_CHECK_MAGIC(n, RD_NODE_MAGIC);
    if (n->r->closing || !rd_is_current(c, n))
        return;
    if (!rep) {
        rd_node_lost(n, c); /* the command behind it reports the loss */
        return;
    }
    if (rep->type != REDIS_REPLY_ERROR)
        return;
    char msg[256];
    snprintf(msg, sizeof(msg), "%s", rep->str);
    rd_redact(n->r, msg);
    const char *user = n->sentinel ? NULL : n->r->conf->username;
    if (auth)
        rd_node_failed(n, "%s: AUTH%s%s failed: %s", n->name, user ? " as " : "", user ? user : "", msg);
    else
        rd_node_failed(n, "%s: SELECT %lld failed: %s", n->name, (long long)n->r->conf->database, msg);
}

static void on_auth(redisAsyncContext *c, void *reply, void *privdata)
{
    on_hello(c, reply, privdata, true);
}

static void on_select(redisAsyncContext *c, void *reply, void *privdata)
{
    on_hello(c, reply, privdata, false);
}

static int send_hello(rd_node_t *n)
{
    const pt_redis_conf_t *conf = n->r->conf;
    const char *argv[3] = {"AUTH"};
    int argc = 1;
    if (n->sentinel) {
        if (conf->sentinel_password)
            argv[argc++] = conf->sentinel_password;
    } else if (conf->password) {
        if (conf->username)
            argv[argc++] = conf->username;
        argv[argc++] = conf->password;
    }
    if (argc > 1 && redisAsyncCommandArgv(n->ac, on_auth, n, argc, argv, NULL) != REDIS_OK)
        return -1;
    if (!n->sentinel && conf->mode != PT_REDIS_CLUSTER && conf->database) {
        char db[24];
        snprintf(db, sizeof(db), "%lld", (long long)conf->database);
        const char *sel[2] = {"SELECT", db};
        if (redisAsyncCommandArgv(n->ac, on_select, n, 2, sel, NULL) != REDIS_OK)
            return -1;
    }
    return 0;
}

/* A new connection to ip (the host, or what it resolved to).  0 or -1. */
static int node_connect(rd_node_t *n, const char *ip)
{
    redisAsyncContext *ac = redisAsyncConnect(ip, n->port);
    if (!ac || ac->err) {
        snprintf(n->err, sizeof(n->err), "%s", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        return -1;
    }
    ac->data = n;
    if (redisLibeventAttach(ac, n->r->base) != REDIS_OK) {
        snprintf(n->err, sizeof(n->err), "cannot watch the connection");
        redisAsyncFree(ac);
        return -1;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    n->ac = ac;
    n->dying = NULL;
    n->r->st.connects++;
    if (send_hello(n)) {
        snprintf(n->err, sizeof(n->err), "cannot send AUTH or SELECT");
        n->ac = NULL; /* its callbacks, run now, are stale; the queue stays for the caller */
        redisAsyncFree(ac);
        return -1;
    }
    return 0;
}

/* Sends what waits for the connection (send), or ends it with no reply:
 * failed is NULL (this node failed) or the stale context (dropped on
 * purpose). */
static void drain_queue(rd_node_t *n, bool send, redisAsyncContext *failed)
{
    rd_send_t *s = n->queue;
    n->queue = NULL;
    n->qtail = &n->queue;
    while (s) {
        rd_send_t *next = s->next;
        if (!send || !n->ac ||
            redisAsyncFormattedCommand(n->ac, s->fn, s->privdata, s->cmd, (size_t)s->len) != REDIS_OK) {
            if (send)
                snprintf(n->err, sizeof(n->err), "connection lost");
            if (s->fn)
                s->fn(failed, NULL, s->privdata);
        }
        redisFreeCommand(s->cmd);
        free(s);
        s = next;
    }
}

/* The name resolved (or not): connect and send what waits. */
static void on_resolved(evutil_socket_t fd, short what, void *arg)
{
    rd_node_t *n = arg;
    PT_CHECK_MAGIC(n, RD_NODE_MAGIC);
    if (!n->queue)
        return; /* dropped meanwhile */
    bool up = n->resolved && node_connect(n, n->ip) == 0;
    drain_queue(n, up, NULL);
}

static void free_orphan(evutil_socket_t fd, short what, void *arg)
{
    rd_dns_t *dns = arg;
    evdns_base_free(dns->base, 0);
    free(dns);
}

static void on_dns(int result, struct evutil_addrinfo *ai, void *arg)
{
    struct rd_dnsq *q = arg;
    rd_dns_t *dns = q->dns;
    rd_node_t *n = q->node;
    dns->refs--;
    if (n) {
        n->dnsq = NULL;
        n->resolved = false;
        if (result == 0 && ai && ai->ai_family == AF_INET) {
            const struct sockaddr_in *sin = (const struct sockaddr_in *)ai->ai_addr;
            n->resolved = inet_ntop(AF_INET, &sin->sin_addr, n->ip, sizeof(n->ip)) != NULL;
        }
        if (!n->resolved)
            snprintf(n->err, sizeof(n->err), "the name does not resolve: %s",
                     result ? evutil_gai_strerror(result) : "no IPv4 address");
        event_active(&n->ev, EV_TIMEOUT, 1);
    }
    if (ai)
        evutil_freeaddrinfo(ai);
    free(q);
    /* not from inside evdns' own callback: from the loop, later */
    if (dns->orphan && dns->refs == 0 && event_base_once(dns->loop, -1, EV_TIMEOUT, free_orphan, dns, NULL))
        pt_log_debug("redis: an evdns_base is left behind");
}

/* Starts resolving n's name.  0, or -1 (n->err says why). */
static int resolve(rd_node_t *n)
{
    pt_redis_t *r = n->r;
    if (!r->dns) {
        rd_dns_t *dns = calloc(1, sizeof(*dns));
        if (dns)
            dns->base = evdns_base_new(r->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
        if (!dns || !dns->base) {
            free(dns);
            snprintf(n->err, sizeof(n->err), "cannot start a resolver");
            return -1;
        }
        dns->loop = r->base;
        r->dns = dns;
    }
    struct rd_dnsq *q = calloc(1, sizeof(*q));
    if (!q) {
        snprintf(n->err, sizeof(n->err), "out of memory");
        return -1;
    }
    *q = (struct rd_dnsq){.dns = r->dns, .node = n};
    struct evutil_addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
    r->dns->refs++;
    n->dnsq = q;
    struct evdns_getaddrinfo_request *req = evdns_getaddrinfo(r->dns->base, n->host, NULL, &hints, on_dns, q);
    if (n->dnsq) /* still q: not answered at once (from /etc/hosts) */
        q->req = req;
    return 0;
}

int rd_node_send(rd_node_t *n, int argc, const char **argv, const size_t *lens, redisCallbackFn *fn,
                 void *privdata)
{
    if (!n->ac && !n->queue && n->literal && node_connect(n, n->host))
        return -1;
    if (n->ac) {
        if (redisAsyncCommandArgv(n->ac, fn, privdata, argc, argv, lens) == REDIS_OK)
            return 0;
        snprintf(n->err, sizeof(n->err), "cannot send on this connection");
        return -1;
    }
    /* the name is being resolved, or will be now */
    rd_send_t *s = calloc(1, sizeof(*s));
    if (!s || (s->len = redisFormatCommandArgv(&s->cmd, argc, argv, lens)) < 0) {
        free(s);
        snprintf(n->err, sizeof(n->err), "out of memory");
        return -1;
    }
    if (!n->queue && !n->dnsq && resolve(n)) {
        redisFreeCommand(s->cmd);
        free(s);
        return -1;
    }
    s->fn = fn;
    s->privdata = privdata;
    *n->qtail = s;
    n->qtail = &s->next;
    return 0;
}

void rd_node_drop(rd_node_t *n)
{
    drain_queue(n, false, &stale_ctx);
    if (n->ac) {
        redisAsyncContext *ac = n->ac;
        n->ac = NULL; /* first: its callbacks, run now, are stale */
        redisAsyncFree(ac);
    }
}

void rd_node_free(rd_node_t *n)
{
    rd_node_drop(n);
    event_del(&n->ev);
    if (n->dnsq) {
        n->dnsq->node = NULL;
        if (n->dnsq->req)
            evdns_getaddrinfo_cancel(n->dnsq->req);
    }
    n->magic = 0;
    free(n);
}

void rd_dns_free(pt_redis_t *r)
{
    if (!r->dns)
        return;
    if (r->dns->refs) {
        r->dns->orphan = true; /* on_dns frees it after the last cancelled query */
    } else {
        evdns_base_free(r->dns->base, 0);
        free(r->dns);
    }
    r->dns = NULL;
}
