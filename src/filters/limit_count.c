/* limit-count: at most `count` requests per `window` and key (Kong's
 * rate-limiting, APISIX's limit-count).  A fixed window starts at a
 * multiple of its length since the epoch; a sliding one weighs the
 * previous window by the share of it still inside the last `window`:
 *
 *     estimate = previous * (window - elapsed) / window + current
 *
 * and a request passes when estimate + 1 <= count (as APISIX and
 * Cloudflare count).  policy local: the node's shared table, exact across
 * its workers.  policy redis: with sync_interval 0, every request asks
 * Redis (one script, exact across nodes); with sync_interval > 0, the node
 * counts locally and adds its counts to Redis every interval, which bounds
 * the cluster's overshoot by nodes x rate x interval. */
#include "config.h"

#include <stddef.h>

#include "portico/conf.h"
#include "portico/conn.h"
#include "portico/limit_filter.h"
#include "portico/schema.h"
#include "portico/worker.h"

typedef struct conf {
    pt_limit_common_t lc; /* first */
    int64_t count, window;
    int window_type;
} conf_t;
enum { FIXED, SLIDING };

static const char *const policy_names[] = {"local", "redis", NULL};
static const char *const window_names[] = {"fixed", "sliding", NULL};

static int check(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    conf_t *c = obj;
    c->lc.window_ms = c->window;
    if (c->lc.sync_interval && c->lc.policy != PT_LP_REDIS) {
        pt_conf_error_key(cc, n, "sync_interval", "sync_interval is for policy redis (a local count is exact)");
        return -1;
    }
    if (c->lc.sync_interval >= c->window) {
        pt_conf_error_key(cc, n, "sync_interval", "sync_interval must be shorter than the window");
        return -1;
    }
    /* synced counters keep other figures: a kind of their own */
    char kind = c->window_type == SLIDING ? 's' : 'c';
    return pt_limit_check(cc, n, &c->lc, "limit-count", c->lc.sync_interval ? (char)(kind - 32) : kind, c->count,
                          c->window / 1000);
}

static int link_conf(pt_conf_ctx_t *cc, const pt_config_t *c, void *vconf, const char *scope)
{
    return pt_limit_link(cc, c, vconf, scope);
}

#define K(f) offsetof(conf_t, f)
#define LC(f) (offsetof(conf_t, lc) + offsetof(pt_limit_common_t, f))
static const pt_directive_t keys[] = {
    {"count", PT_T_INT, K(count), NULL, 1, 1000000000, NULL, NULL, NULL, NULL, NULL, PT_F_REQUIRED, NULL,
     "Requests allowed per window and key."},
    {"window", PT_T_DURATION, K(window), NULL, 1000, 31 * 86400000LL, NULL, NULL, NULL, NULL, NULL, PT_F_REQUIRED,
     NULL, "The window's length, from 1s to 31 days."},
    {"window_type", PT_T_ENUM, K(window_type), "fixed", 0, 0, window_names, NULL, NULL, NULL, NULL, 0, NULL,
     "fixed: windows start at multiples of their length since the epoch (so every node agrees), and the count "
     "starts again at each. sliding: the previous window counts for the share of it still inside the last "
     "window: estimate = previous x (window - elapsed) / window + current, and a request passes while "
     "estimate + 1 <= count."},
    {"policy", PT_T_ENUM, LC(policy), "local", 0, 0, policy_names, NULL, NULL, NULL, NULL, 0, NULL,
     "local: a table in shared memory, exact across the node's workers. redis: the counters are kept in Redis "
     "(redis:), for a limit that holds across nodes; when Redis is slow (past redis.timeout), down or refusing, "
     "the node counts locally at once, logs it once, and goes back to Redis when a probe is answered."},
    {"sync_interval", PT_T_DURATION, LC(sync_interval), "0s", 0, 3600000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "policy redis: 0s asks Redis on every request (exact across nodes, at the cost of a round trip). Longer: "
     "the node counts locally and adds its count to Redis every interval (Kong's sync_rate), deciding on "
     "Redis's last total plus what it counted since; the cluster-wide overshoot is then at most nodes x rate x "
     "sync_interval, rate being the rate at which one node admits requests of the key."},
    PT_LIMIT_COMMON_KEY_ENTRIES,
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL},
};
static const pt_section_t schema = {"limit-count", sizeof(conf_t), keys, check, NULL,
                                    "At most count requests per window and key."};

static pt_redis_script_t fixed_script = {
    "limit-count fixed",
    "local k = KEYS[1] .. ':' .. ARGV[1]\n"
    "local n = tonumber(redis.call('GET', k) or '0')\n"
    "if n >= tonumber(ARGV[3]) then return {0, n} end\n"
    "n = redis.call('INCR', k)\n"
    "if n == 1 then redis.call('PEXPIRE', k, ARGV[2] * 2) end\n"
    "return {1, n}\n",
    ""};
static pt_redis_script_t sliding_script = {
    "limit-count sliding",
    "local cur = KEYS[1] .. ':' .. ARGV[1]\n"
    "local c = tonumber(redis.call('GET', cur) or '0')\n"
    "local p = tonumber(redis.call('GET', KEYS[1] .. ':' .. (ARGV[1] - 1)) or '0')\n"
    "local w, el = tonumber(ARGV[2]), tonumber(ARGV[4])\n"
    "if p * (w - el) + (c + 1) * w > tonumber(ARGV[3]) * w then return {0, c, p} end\n"
    "c = redis.call('INCR', cur)\n"
    "if c == 1 then redis.call('PEXPIRE', cur, w * 2) end\n"
    "return {1, c, p}\n",
    ""};

static int64_t now_ms(pt_conn_t *c)
{
    return pt_limit_wall_us() / 1000;
}

/* Redis's answer, or NULL: count locally. */
static void decode(pt_limit_state_t *st, const long long *v, size_t n, const void *arg)
{
    const conf_t *conf = arg;
    int64_t now = now_ms(st->c), w = conf->window, el = now % w, cnt = conf->count;
    if (!v || n < 2) {
        pt_lkey_t local = st->key; /* the same counter as policy local */
        pt_limits_count(&local, now, w, conf->window_type == SLIDING, cnt, &st->res);
        return;
    }
    pt_lresult_t *r = &st->res;
    *r = (pt_lresult_t){.allowed = v[0] == 1, .limit = cnt, .reset_ms = w - el};
    if (conf->window_type == FIXED || n < 3) {
        r->remaining = cnt - v[1];
        r->retry_ms = r->allowed ? 0 : w - el;
    } else {
        int64_t cur = v[1], prev = v[2];
        r->remaining = (cnt * w - (prev * (w - el) + cur * w)) / w;
        r->retry_ms = r->allowed ? 0 : w - el;
        if (!r->allowed && prev > 0 && cur + 1 <= cnt) /* when the previous window's share has shrunk enough */
            r->retry_ms = (w - el) - (cnt - cur - 1) * w / prev;
        else if (!r->allowed && cur >= cnt && cur > 0) /* once this window is the previous one */
            r->retry_ms = (w - el) + w * (cur - cnt + 1) / cur;
        if (r->retry_ms < 0)
            r->retry_ms = 1;
    }
    if (r->reset_ms < r->retry_ms)
        r->reset_ms = r->retry_ms;
    if (r->remaining < 0)
        r->remaining = 0;
}

static pt_verdict_t on_request(pt_conn_t *c, const pt_h1_req_t *req, const void *vconf, pt_fx_t *fx, void *vst)
{
    const conf_t *conf = vconf;
    pt_limit_state_t *st = vst;
    if (st->phase == PT_LS_ASKING)
        return PT_SUSPEND; /* resumed before the answer: never */
    if (st->phase == PT_LS_ANSWERED)
        return pt_limit_finish(c, req, &conf->lc, st);
    pt_verdict_t v;
    if (pt_limit_key(c, req, &conf->lc, st, &v) < 0)
        return v;
    int64_t now = now_ms(c);
    if (conf->lc.policy == PT_LP_REDIS && !conf->lc.sync_interval) {
        long long args[4] = {now / conf->window, conf->window, conf->count, now % conf->window};
        v = pt_limit_ask(c, st, conf->window_type == SLIDING ? &sliding_script : &fixed_script, args,
                         conf->window_type == SLIDING ? 4 : 3, decode, conf);
        if (v == PT_SUSPEND)
            return v;
        decode(st, NULL, 0, conf); /* Redis not asked: locally */
    } else if (conf->lc.policy == PT_LP_REDIS) {
        if (pt_limits_count_synced(&st->key, now, conf->window, conf->window_type == SLIDING, conf->count,
                                   &st->res))
            pt_limit_sync_note(c, &conf->lc, st, conf->count);
        st->counted = st->res.allowed && !st->res.failed_open ? now / conf->window + 1 : 0;
    } else {
        pt_limits_count(&st->key, now, conf->window, conf->window_type == SLIDING, conf->count, &st->res);
        st->counted = st->res.allowed && !st->res.failed_open ? now / conf->window + 1 : 0;
    }
    return pt_limit_finish(c, req, &conf->lc, st);
}

static void on_done(pt_conn_t *c, const void *conf, pt_fx_t *fx, void *vst)
{
    pt_limit_state_t *st = vst;
    /* limit-req (after it) refused the request: a request is counted only
     * once every limit let it through, as nginx does (local counts; one
     * Redis asked on every request keeps it) */
    if (st && st->counted && fx->limit_refused == 'r')
        pt_limits_count_refund(&st->key, st->counted - 1);
    pt_limit_done(st);
}

const pt_filter_t pt_filter_limit_count = {.name = "limit-count", .schema = &schema,
                                           .state_size = sizeof(pt_limit_state_t), .on_request = on_request,
                                           .on_done = on_done, .link = link_conf};
