/* limit-conn: at most `conn` requests of a key in flight at once on the
 * node (APISIX's limit-conn, nginx's limit_conn), `burst` more held for
 * `delay` first; past conn + burst, refused.  A request holds its place
 * from here to its end, however it ends (response done, client gone,
 * upstream error, timeout: on_done); the places a worker held when it died
 * are given back by the master (holds name the worker's column). */
#include "config.h"

#include <stddef.h>

#include "portico/conf.h"
#include "portico/conn.h"
#include "portico/limit_filter.h"
#include "portico/log.h"
#include "portico/request.h"
#include "portico/schema.h"
#include "portico/worker.h"

typedef struct conf {
    pt_limit_common_t lc; /* first */
    int64_t conn, burst, delay;
} conf_t;

static const char *const policy_names[] = {"local", NULL};

static int check(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    conf_t *c = obj;
    return pt_limit_check(cc, n, &c->lc, "limit-conn", 'n', c->conn, 1);
}

static int link_conf(pt_conf_ctx_t *cc, const pt_config_t *c, void *vconf, const char *scope)
{
    return pt_limit_link(cc, c, vconf, scope);
}

#define K(f) offsetof(conf_t, f)
#define LC(f) (offsetof(conf_t, lc) + offsetof(pt_limit_common_t, f))
static const pt_directive_t keys[] = {
    {"conn", PT_T_INT, K(conn), NULL, 1, 1000000, NULL, NULL, NULL, NULL, NULL, PT_F_REQUIRED, NULL,
     "Requests of a key in flight at once."},
    {"burst", PT_T_INT, K(burst), "0", 0, 1000000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Requests above conn let through after delay; past conn + burst, refused."},
    {"delay", PT_T_DURATION, K(delay), "100ms", 0, 60000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "How long a request of the burst is held before it goes on (APISIX's default_conn_delay)."},
    {"policy", PT_T_ENUM, LC(policy), "local", 0, 0, policy_names, NULL, NULL, NULL, NULL, 0, NULL,
     "local only: requests in flight are counted on the node that serves them."},
    PT_LIMIT_COMMON_KEY_ENTRIES,
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL},
};
static const pt_section_t schema = {
    "limit-conn", sizeof(conf_t), keys, check, NULL,
    "At most conn requests of a key in flight; the fields say q=conn (w=1) and r the places left."};

static pt_verdict_t on_request(pt_conn_t *c, const pt_h1_req_t *req, const void *vconf, pt_fx_t *fx, void *vst)
{
    const conf_t *conf = vconf;
    pt_limit_state_t *st = vst;
    if (st->phase == PT_LS_DELAYING)
        return PT_SUSPEND; /* resumed before the timer: never */
    if (st->phase == PT_LS_DONE)
        return PT_NEXT; /* after the delay */
    pt_verdict_t v;
    if (pt_limit_key(c, req, &conf->lc, st, &v) < 0)
        return v;
    int64_t hold;
    pt_limits_conn(&st->key, c->w->column, conf->conn + conf->burst, &hold, &st->res);
    st->hold1 = hold + 1;
    pt_lresult_t *r = &st->res;
    if (r->exhausted) {
        static int64_t told; /* per worker, at most once a minute */
        int64_t now = pt_limit_mono_us() / 1000000;
        if (!told || now - told >= 60) {
            told = now;
            pt_log_warn("limit-conn: every place of the shared table is in use (limits.memory / 256 requests in "
                        "flight, or a table full of keys at their limit); refusing until some are given back "
                        "(logged at most once a minute), req=%s", c->req->reqid);
        }
    }
    bool excess = r->allowed && !r->failed_open && r->remaining < conf->burst;
    r->limit = conf->conn;
    r->remaining = r->remaining > conf->burst ? r->remaining - conf->burst : 0;
    r->retry_ms = r->allowed ? 0 : 1000;
    v = pt_limit_finish(c, req, &conf->lc, st);
    if (v == PT_NEXT && excess && conf->delay)
        return pt_limit_delay(c, st, conf->delay);
    return v;
}

static void on_done(pt_conn_t *c, const void *conf, pt_fx_t *fx, void *st)
{
    pt_limit_done(st);
}

const pt_filter_t pt_filter_limit_conn = {.name = "limit-conn", .schema = &schema,
                                          .state_size = sizeof(pt_limit_state_t), .on_request = on_request,
                                          .on_done = on_done, .link = link_conf};
