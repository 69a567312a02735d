/* Sentinel mode: where the master is.  Each probe (the first connection,
 * and every probe of a fallback episode) asks the sentinels in the order
 * of redis.addresses `SENTINEL get-master-addr-by-name <master_name>`,
 * with AUTH sentinel_password when one is set, each within redis.timeout;
 * the first that names an address wins, and the probe goes on with a PING
 * to that master.  A failover is noticed as a failure (a refused or closed
 * connection, or -READONLY from a master turned replica), which starts an
 * episode whose probes ask the sentinels again; a new address is counted
 * in failovers and logged.  Sentinel connections are closed once answered:
 * nothing is kept open to them between probes, and +switch-master is not
 * subscribed to (a failover costs an episode of about probe_interval). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "portico/assert.h"
#include "portico/log.h"
#include "redis-int.h"

static void on_master_addr(redisAsyncContext *ac, void *reply, void *privdata)
{
    rd_node_t *s = privdata;
    redisReply *rep = reply;
    PT_CHECK_MAGIC(s, RD_NODE_MAGIC);
    pt_redis_t *r = s->r;
    if (!rd_probe_answer(ac, s, rep))
        return;
    char host[PT_REDIS_HOST_MAX];
    int port;
    int rc = pt_redis_parse_master_addr(rep, host, sizeof(host), &port);
    if (rc > 0) {
        rd_probe_failed(r, "sentinel %s knows no master named \"%s\"", s->name, r->conf->master_name);
        return;
    }
    if (rc < 0) {
        rd_probe_failed(r, "sentinel %s answered %s", s->name,
                        rep->type == REDIS_REPLY_ERROR ? rep->str : "something that is not an address");
        return;
    }
    rd_node_t *m = rd_node_get(r, host, port, false);
    if (!m) {
        rd_probe_failed(r, "sentinel %s: cannot keep one more address", s->name);
        return;
    }
    if (r->master && r->master != m) {
        r->st.failovers++;
        pt_log_notice("redis: sentinel %s: master %s is at %s now (was %s)", s->name, r->conf->master_name, m->name,
                      r->master->name);
    } else if (!r->master) {
        pt_log_info("redis: sentinel %s: master %s is at %s", s->name, r->conf->master_name, m->name);
    }
    r->master = m;
    rd_node_drop(s); /* asked again on the next probe */
    r->probe.stage = RD_PROBE_PING;
    rd_probe_step(r);
}

void rd_sentinel_probe(pt_redis_t *r)
{
    rd_node_t *s = r->nodes[r->probe.idx];
    const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", r->conf->master_name};
    PT_ASSERT(s->sentinel && r->conf->master_name);
    r->probe.node = s;
    if (rd_node_send(s, 3, argv, NULL, on_master_addr, s))
        rd_probe_failed(r, "sentinel %s: %s", s->name, s->err);
}
