/* limit-req: a leaky bucket per key, as nginx's limit_req: `rate`
 * requests per second, with `burst` more allowed above it.  Kept as GCRA
 * (the bucket's "theoretical arrival time"): a request passes when it
 * would leave the bucket at most burst / rate seconds from now.  With
 * nodelay, a request within the burst passes at once; without it, it is
 * held until its turn (so the upstream sees the rate), on a timer, the
 * pipeline suspended.  policy redis runs the same bucket in Redis, with
 * the nodes' clocks (keep them in sync, as with NTP). */
#include "config.h"

#include <stddef.h>

#include "portico/conf.h"
#include "portico/conn.h"
#include "portico/limit_filter.h"
#include "portico/schema.h"
#include "portico/worker.h"

typedef struct conf {
    pt_limit_common_t lc; /* first */
    int64_t rate, burst;
    bool nodelay;
} conf_t;

static const char *const policy_names[] = {"local", "redis", NULL};

static int check(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    conf_t *c = obj;
    int64_t q = c->burst + 1;
    return pt_limit_check(cc, n, &c->lc, "limit-req", 'r', q, (q + c->rate - 1) / c->rate);
}

static int link_conf(pt_conf_ctx_t *cc, const pt_config_t *c, void *vconf, const char *scope)
{
    const conf_t *conf = vconf;
    int64_t longest = conf->nodelay ? 0 : conf->burst * 1000 / conf->rate;
    for (size_t i = 0; i < c->listeners.n; i++) {
        const pt_listener_conf_t *l = PT_LIST_AT(c->listeners, pt_listener_conf_t, i);
        if (longest > l->timeouts.filters * 3 / 4) {
            pt_conf_warn(cc, conf->lc.node, "limit-req may hold a request %lld ms (burst / rate) and listener \"%s\" "
                         "lets filters take %lld ms (timeouts.filters): requests that would wait past 3/4 of it "
                         "are refused at once", (long long)longest, l->name ? l->name : "",
                         (long long)l->timeouts.filters);
            break;
        }
    }
    return pt_limit_link(cc, c, vconf, scope);
}

#define K(f) offsetof(conf_t, f)
#define LC(f) (offsetof(conf_t, lc) + offsetof(pt_limit_common_t, f))
static const pt_directive_t keys[] = {
    {"rate", PT_T_INT, K(rate), NULL, 1, 1000000, NULL, NULL, NULL, NULL, NULL, PT_F_REQUIRED, NULL,
     "Requests per second that leave the bucket."},
    {"burst", PT_T_INT, K(burst), "0", 0, 1000000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Requests allowed above the rate, at once (nodelay) or held until their turn; past it, refused."},
    {"nodelay", PT_T_BOOL, K(nodelay), "false", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "false: a request within the burst is held until the bucket lets it through (1/rate after the one "
     "before), as nginx's limit_req does; the wait counts in the listener's timeouts.filters. true: it passes "
     "at once."},
    {"policy", PT_T_ENUM, LC(policy), "local", 0, 0, policy_names, NULL, NULL, NULL, NULL, 0, NULL,
     "local: the node's shared table, exact across its workers. redis: the bucket is kept in Redis (one "
     "script per request), for a limit across nodes; when Redis cannot answer within redis.timeout the node "
     "counts locally."},
    PT_LIMIT_COMMON_KEY_ENTRIES,
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL},
};
static const pt_section_t schema = {
    "limit-req", sizeof(conf_t), keys, check, NULL,
    "A leaky bucket per key: rate requests per second, burst more. The fields report the bucket: "
    "q is burst + 1 (what can pass at once), w the seconds it takes to empty, r what can pass now, t the "
    "seconds until it is empty."};

static pt_redis_script_t gcra_script = {
    "limit-req",
    "local now, t, room = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local tat = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "if tat > now + room then tat = now + room end\n"
    "if tat < now then tat = now end\n"
    "local nxt = tat + t\n"
    "if nxt - now > room then return {0, tat - now, nxt - now - room} end\n"
    "local maxd = tonumber(ARGV[4])\n"
    "if maxd > 0 and tat - now > maxd then return {0, tat - now, tat - now - maxd} end\n"
    "redis.call('SET', KEYS[1], string.format('%d', nxt), 'PX', math.ceil((nxt - now) / 1000) + 1000)\n"
    "return {1, tat - now, nxt - now}\n",
    ""};

static int64_t interval_us(const conf_t *conf)
{
    int64_t t = 1000000 / conf->rate;
    return t < 1 ? 1 : t;
}

/* How long a request may be held: 3/4 of the listener's filters time
 * (the rest for the filters after it); 0: no bound known. */
static int64_t max_wait_ms(pt_conn_t *c)
{
    const pt_listener_conf_t *l = c->acc && c->acc->ls ? c->acc->ls->conf : NULL;
    return l ? l->timeouts.filters * 3 / 4 : 0;
}

static void decode(pt_limit_state_t *st, const long long *v, size_t n, const void *arg)
{
    const conf_t *conf = arg;
    if (!v || n < 3) {
        pt_limits_req(&st->key, pt_limit_mono_us(), (double)conf->rate, conf->burst, conf->nodelay,
                      max_wait_ms(st->c), &st->res);
        return;
    }
    int64_t t = interval_us(conf), room = (conf->burst + 1) * t;
    pt_lresult_t *r = &st->res;
    *r = (pt_lresult_t){.allowed = v[0] == 1, .limit = conf->burst + 1};
    if (r->allowed) {
        r->delay_ms = conf->nodelay ? 0 : (v[1] + 999) / 1000;
        r->remaining = (room - v[2]) / t;
        r->reset_ms = (v[2] + 999) / 1000;
    } else {
        r->retry_ms = (v[2] + 999) / 1000;
        r->reset_ms = (v[1] + 999) / 1000;
        if (r->reset_ms < r->retry_ms)
            r->reset_ms = r->retry_ms;
    }
}

static pt_verdict_t on_request(pt_conn_t *c, const pt_h1_req_t *req, const void *vconf, pt_fx_t *fx, void *vst)
{
    const conf_t *conf = vconf;
    pt_limit_state_t *st = vst;
    switch (st->phase) {
    case PT_LS_ASKING:
    case PT_LS_DELAYING:
        return PT_SUSPEND; /* resumed before the answer or the timer: never */
    case PT_LS_DONE: /* after the delay */
        return PT_NEXT;
    case PT_LS_ANSWERED:
        break;
    default: {
        pt_verdict_t v;
        if (pt_limit_key(c, req, &conf->lc, st, &v) < 0)
            return v;
        if (conf->lc.policy == PT_LP_REDIS) {
            int64_t t = interval_us(conf);
            long long args[4] = {pt_limit_wall_us(), t, (conf->burst + 1) * t,
                                 conf->nodelay ? 0 : max_wait_ms(c) * 1000};
            if (pt_limit_ask(c, st, &gcra_script, args, 4, decode, conf) == PT_SUSPEND)
                return PT_SUSPEND;
        }
        decode(st, NULL, 0, conf);
    }
    }
    pt_verdict_t v = pt_limit_finish(c, req, &conf->lc, st);
    if (v == PT_NEXT && st->res.delay_ms > 0)
        return pt_limit_delay(c, st, st->res.delay_ms);
    return v;
}

static void on_done(pt_conn_t *c, const void *conf, pt_fx_t *fx, void *st)
{
    pt_limit_done(st);
}

const pt_filter_t pt_filter_limit_req = {.name = "limit-req", .schema = &schema,
                                         .state_size = sizeof(pt_limit_state_t), .on_request = on_request,
                                         .on_done = on_done, .link = link_conf};
