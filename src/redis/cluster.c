/* Cluster mode, the minimal client hiredis 0.14 lacks: the slot of a key
 * (CRC16-XMODEM of the key, or of its first non-empty {hash tag}, mod
 * 16384, the Redis Cluster specification's rule), a slot map loaded from
 * CLUSTER SLOTS (by the probe, from the seed nodes then every node known,
 * in order; and again after each -MOVED, one refresh at a time), and the
 * redirections: -MOVED updates the map at once and retries on the new
 * node; -ASK sends ASKING then the command to the node named, without
 * touching the map.  A call follows at most RD_MAX_REDIRECTS of them, all
 * within its one redis.timeout.  A connection to a node is made when a
 * call first goes there. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "portico/assert.h"
#include "portico/log.h"
#include "redis-int.h"

static uint16_t crc16(const char *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)((unsigned char)p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

unsigned pt_redis_slot(const char *key, size_t n)
{
    size_t s, e;
    for (s = 0; s < n && key[s] != '{'; s++)
        ;
    if (s < n) {
        for (e = s + 1; e < n && key[e] != '}'; e++)
            ;
        if (e < n && e > s + 1)
            return crc16(key + s + 1, e - s - 1) & (PT_REDIS_SLOTS - 1);
    }
    return crc16(key, n) & (PT_REDIS_SLOTS - 1);
}

typedef struct map_ctx {
    pt_redis_t *r;
    const rd_node_t *asked;
    unsigned slots;
} map_ctx_t;

static int map_range(void *arg, unsigned from, unsigned to, const char *host, int port)
{
    map_ctx_t *m = arg;
    if (strcmp(host, "?") == 0)
        return 0; /* an endpoint the node does not know: MOVED will tell */
    rd_node_t *n = rd_node_get(m->r, host[0] ? host : m->asked->host, port, false);
    if (!n)
        return -1;
    for (unsigned s = from; s <= to; s++)
        m->r->slots[s] = (uint16_t)(n->idx + 1);
    m->slots += to - from + 1;
    return 0;
}

/* The number of slots mapped, or -1 (the map is unchanged then). */
static int load_map(pt_redis_t *r, const rd_node_t *asked, const redisReply *rep)
{
    if (pt_redis_parse_slots(rep, NULL, NULL) < 0)
        return -1;
    memset(r->slots, 0, PT_REDIS_SLOTS * sizeof(*r->slots));
    map_ctx_t m = {.r = r, .asked = asked};
    return pt_redis_parse_slots(rep, map_range, &m) < 0 ? -1 : (int)m.slots;
}

static void on_probe_slots(redisAsyncContext *ac, void *reply, void *privdata)
{
    rd_node_t *n = privdata;
    redisReply *rep = reply;
    PT_CHECK_MAGIC(n, RD_NODE_MAGIC);
    pt_redis_t *r = n->r;
    if (!rd_probe_answer(ac, n, rep))
        return;
    if (rep->type == REDIS_REPLY_ERROR) {
        rd_probe_failed(r, "%s answered CLUSTER SLOTS with %s", n->name, rep->str);
    } else if (load_map(r, n, rep) <= 0) {
        rd_probe_failed(r, "%s: CLUSTER SLOTS gave no usable slot", n->name);
    } else {
        rd_probe_ok(r);
    }
}

void rd_cluster_probe(pt_redis_t *r)
{
    rd_node_t *n = r->nodes[r->probe.idx];
    const char *argv[2] = {"CLUSTER", "SLOTS"};
    r->probe.node = n;
    if (rd_node_send(n, 2, argv, NULL, on_probe_slots, n))
        rd_probe_failed(r, "%s: %s", n->name, n->err);
}

static void on_refresh(redisAsyncContext *ac, void *reply, void *privdata)
{
    rd_node_t *n = privdata;
    redisReply *rep = reply;
    PT_CHECK_MAGIC(n, RD_NODE_MAGIC);
    pt_redis_t *r = n->r;
    if (r->closing)
        return;
    r->refreshing = false;
    if (!rd_is_current(ac, n))
        return;
    if (!rep)
        rd_node_lost(n, ac); /* the calls behind it report the loss */
    else if (rep->type == REDIS_REPLY_ERROR || load_map(r, n, rep) <= 0)
        pt_log_debug("redis: %s: CLUSTER SLOTS gave no usable map; MOVED will tell", n->name);
}

static void refresh(pt_redis_t *r, rd_node_t *n)
{
    const char *argv[2] = {"CLUSTER", "SLOTS"};
    if (!r->refreshing && rd_node_send(n, 2, argv, NULL, on_refresh, n) == 0)
        r->refreshing = true;
}

rd_node_t *rd_cluster_node(pt_redis_t *r, const char *key, size_t keylen)
{
    uint16_t i = r->slots[pt_redis_slot(key, keylen)];
    if (i)
        return r->nodes[i - 1];
    for (size_t k = 0; k < r->nnodes; k++) /* a slot nobody serves: any node, which will say MOVED */
        if (r->nodes[k]->ac)
            return r->nodes[k];
    return r->nodes[0];
}

int rd_cluster_redirect(pt_redis_call_t *c, int kind, const char *err, size_t len)
{
    pt_redis_t *r = c->r;
    rd_node_t *from = c->node;
    char host[PT_REDIS_HOST_MAX], msg[256];
    unsigned slot;
    int port;
    snprintf(msg, sizeof(msg), "%.*s", (int)len, err);
    if (r->conf->mode != PT_REDIS_CLUSTER) {
        rd_trouble(r, "%s answered %s, and redis.mode is not cluster", from->name, msg);
        return -1;
    }
    if (pt_redis_parse_redirect(err, len, &slot, host, sizeof(host), &port)) {
        rd_trouble(r, "%s answered a redirection that cannot be read: %s", from->name, msg);
        return -1;
    }
    if (++c->redirects > RD_MAX_REDIRECTS) {
        rd_trouble(r, "more than %d redirections for slot %u (the last: %s)", RD_MAX_REDIRECTS, slot, msg);
        return -1;
    }
    rd_node_t *to = rd_node_get(r, host[0] ? host : from->host, port, false);
    if (!to) {
        rd_trouble(r, "%s: cannot keep one more address (%s)", from->name, msg);
        return -1;
    }
    if (kind == PT_REDIS_ERR_MOVED) {
        r->st.moved++;
        r->slots[slot] = (uint16_t)(to->idx + 1);
        c->asking = false;
        refresh(r, to);
    } else {
        r->st.asked++;
        c->asking = true;
    }
    if (rd_call_send(c, to)) {
        rd_trouble(r, "%s: %s", to->name, to->err);
        return -1;
    }
    return 0;
}
