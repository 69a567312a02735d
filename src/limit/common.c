/* What the three limit filters share (limit_filter.h): their common keys,
 * the counter's identity, the response fields, the refusal, delays and
 * questions to Redis. */
#include "config.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "portico/conf.h"
#include "portico/conn.h"
#include "portico/digest.h"
#include "portico/err-t.h"
#include "portico/http.h"
#include "portico/limit_filter.h"
#include "portico/log.h"
#include "portico/metrics.h"
#include "portico/request.h"
#include "portico/schema.h"
#include "portico/worker.h"

/* A field value built without printf: these go on every limited response. */
typedef struct fbuf {
    char b[96];
    size_t n;
} fbuf_t;

const char *const pt_limit_header_names[] = {"ietf", "legacy", "false", "true", NULL};

static void put(struct fbuf *f, const char *s);
static void put_i64(struct fbuf *f, int64_t v);

int pt_limit_check(pt_conf_ctx_t *cc, const pt_node_t *n, pt_limit_common_t *lc, const char *fname, char kind,
                   int64_t q, int64_t w)
{
    lc->fname = fname;
    /* the policy's field is the same on every response: made once */
    struct fbuf f = {.n = 0};
    if (lc->headers == PT_LH_LEGACY) {
        put_i64(&f, q);
    } else {
        put(&f, "\"");
        put(&f, fname);
        put(&f, "\";q=");
        put_i64(&f, q);
        put(&f, ";w=");
        put_i64(&f, w);
    }
    char *pf = pt_arena_alloc(cc->arena, f.n);
    if (!pf)
        return -1;
    memcpy(pf, f.b, f.n);
    lc->policy_field = (pt_str_t){pf, f.n};
    lc->kind = kind;
    if (lc->headers == PT_LH_TRUE)
        lc->headers = PT_LH_IETF;
    const pt_node_t *kn = pt_node_get(n, "key");
    lc->tpl = pt_tpl_compile(cc, kn ? kn : n, lc->key, PT_TPL_FIELD);
    if (!lc->tpl)
        return -1;
    if (!pt_tpl_has_vars(lc->tpl)) {
        /* Kong's limit_by: consumer, nginx's $binary_remote_addr: a name
         * where a template was meant would make one counter for all */
        static const char *const names[] = {"consumer", "client_ip", "remote_addr", "binary_remote_addr", "ip",
                                            "route", "host", "path", "credential", "service", NULL};
        const char *k = lc->key + (lc->key[0] == '$');
        for (size_t i = 0; names[i]; i++)
            if (strcmp(k, names[i]) == 0 || lc->key[0] == '$') {
                pt_conf_error(cc, kn ? kn : n, "key \"%s\" is text, the same for every request (one counter for "
                              "all); a variable is written ${%s}", lc->key,
                              strcmp(k, "remote_addr") == 0 || strcmp(k, "binary_remote_addr") == 0 ||
                                      strcmp(k, "ip") == 0 ? "client_ip" : names[i] && lc->key[0] != '$' ? names[i] : k);
                return -1;
            }
        pt_conf_warn(cc, kn ? kn : n, "key \"%s\" has no variable: every request shares one counter", lc->key);
    }
    return 0;
}

int pt_limit_link(pt_conf_ctx_t *cc, const pt_config_t *c, pt_limit_common_t *lc, const char *scope)
{
    lc->scope = scope;
    if (strncmp(scope, "consumer:", 9) == 0 && !pt_node_get(lc->node, "key")) {
        /* a consumer's own limit counts the consumer, as Kong's does */
        lc->key = "${consumer}";
        if (!(lc->tpl = pt_tpl_compile(cc, lc->node, lc->key, PT_TPL_FIELD)))
            return -1;
    }
    if (lc->policy == PT_LP_REDIS && !c->redis.node) {
        const pt_node_t *pn = pt_node_get(lc->node, "policy");
        pt_conf_error(cc, pn ? pn : lc->node, "policy redis needs a redis: section (the server that keeps the "
                      "counters)");
        return -1;
    }
    return 0;
}

bool pt_limit_used(const pt_config_t *c)
{
    static const int ids[] = {PT_FILTER_LIMIT_CONN, PT_FILTER_LIMIT_COUNT, PT_FILTER_LIMIT_REQ};
    for (size_t k = 0; k < 3; k++) {
        const void *g = c->global_filters.conf[ids[k]];
        if (g && g != PT_FILTER_OFF)
            return true;
        for (size_t i = 0; i < c->routes.n; i++) {
            const void *v = PT_LIST_AT(c->routes, pt_route_conf_t, i)->filters.conf[ids[k]];
            if (v && v != PT_FILTER_OFF)
                return true;
        }
        for (size_t i = 0; i < c->consumers.n; i++) {
            const void *v = PT_LIST_AT(c->consumers, pt_consumer_conf_t, i)->filters.conf[ids[k]];
            if (v && v != PT_FILTER_OFF)
                return true;
        }
    }
    return false;
}

int64_t pt_limit_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t pt_limit_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- the counter's identity ---- */

/* "portico:{c:60000:route:api:KEY}": one hash tag around all of it, so
 * every Redis key of one counter (the windows of a sliding one) is in one
 * cluster slot.  A key longer than 200 bytes goes by its SHA-256. */
static int redis_key(pt_conn_t *c, const pt_limit_common_t *lc, pt_str_t key, pt_str_t *out)
{
    char hex[65];
    if (key.n > 200) {
        unsigned char d[32];
        pt_sha256(key.p, key.n, d);
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", d[i]);
        key = (pt_str_t){hex, 64};
    }
    size_t n = 40 + strlen(lc->scope) + key.n;
    char *b = pt_arena_alloc(&c->arena, n);
    if (!b)
        return PT_ENOMEM;
    /* synced counts ('C', 'S') and counts asked each time share Redis's counters */
    char kind = lc->kind == 'C' ? 'c' : lc->kind == 'S' ? 's' : lc->kind;
    /* the scope's length first: route "a:b" with key "c" is not route "a" with key "b:c" */
    int len = snprintf(b, n, "portico:{%c:%" PRId64 ":%zu:%s:%.*s}", kind, lc->window_ms, strlen(lc->scope),
                       lc->scope, (int)key.n, key.p);
    *out = (pt_str_t){b, (size_t)len};
    return 0;
}

int pt_limit_key(pt_conn_t *c, const pt_h1_req_t *req, const pt_limit_common_t *lc, pt_limit_state_t *st,
                 pt_verdict_t *v)
{
    pt_str_t key;
    bool missing;
    int rc = pt_tpl_expand_all(lc->tpl, c, req, &key, &missing);
    if (rc < 0) {
        *v = pt_tpl_refuse(c, req, rc);
        return -1;
    }
    if (missing || !key.n) {
        /* "${consumer}:${route}" without a consumer is not one counter for
         * every anonymous client: the client's address stands for the
         * whole key, behind a byte no expanded value can have (a client
         * cannot send "x-user: 127.0.0.3" to spend that address's quota) */
        if (!lc->empty_logged) {
            ((pt_limit_common_t *)lc)->empty_logged = true;
            pt_log_notice("route \"%s\": a variable of the key of %s (%s) expanded to nothing; such requests count "
                          "per client address instead (logged once per route and worker), req=%s",
                          c->req->match.route ? c->req->match.route->name : "", lc->fname, lc->key, c->req->reqid);
        }
        pt_str_t ip = pt_client_ip(c, req);
        char *b = pt_arena_alloc(&c->arena, ip.n + 1);
        if (!b) {
            *v = PT_FAIL;
            return -1;
        }
        b[0] = '\x01';
        memcpy(b + 1, ip.p, ip.n);
        key = (pt_str_t){b, ip.n + 1};
    }
    pt_lkey_make(&st->key, lc->kind, lc->window_ms, lc->scope, key);
    st->c = c;
    if (lc->policy == PT_LP_REDIS && redis_key(c, lc, key, &st->rkey) < 0) {
        *v = PT_FAIL;
        return -1;
    }
    return 0;
}

/* ---- the response ---- */



static void put(fbuf_t *f, const char *s)
{
    size_t n = strlen(s);
    if (n > sizeof(f->b) - f->n)
        n = sizeof(f->b) - f->n;
    memcpy(f->b + f->n, s, n);
    f->n += n;
}

static void put_i64(fbuf_t *f, int64_t v)
{
    char tmp[20];
    size_t n = 0;
    uint64_t u = v < 0 ? 0 : (uint64_t)v;
    do { /* by a constant 10: a multiply, not a division */
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (f->n + n > sizeof(f->b))
        return;
    while (n)
        f->b[f->n++] = tmp[--n];
}

static bool add(pt_conn_t *c, const char *name, const fbuf_t *f)
{
    char *v = pt_arena_alloc(&c->arena, f->n);
    if (!v)
        return false;
    memcpy(v, f->b, f->n);
    return pt_fx_add(c, c->req->fx, true, PT_HDR_ADD, pt_str_from(name), (pt_str_t){v, f->n});
}

static void add_num(pt_conn_t *c, const char *name, int64_t v)
{
    fbuf_t f = {.n = 0};
    put_i64(&f, v);
    add(c, name, &f);
}

static int64_t seconds_up(int64_t ms)
{
    return ms <= 0 ? 0 : (ms + 999) / 1000;
}

pt_verdict_t pt_limit_finish(pt_conn_t *c, const pt_h1_req_t *req, const pt_limit_common_t *lc,
                             pt_limit_state_t *st)
{
    const pt_lresult_t *r = &st->res;
    st->phase = PT_LS_DONE;
    if (lc->headers == PT_LH_IETF) {
        pt_fx_add(c, c->req->fx, true, PT_HDR_ADD, PT_STR("RateLimit-Policy"), lc->policy_field);
        fbuf_t f = {.n = 0};
        put(&f, "\"");
        put(&f, lc->fname);
        put(&f, "\";r=");
        put_i64(&f, r->remaining);
        put(&f, ";t=");
        put_i64(&f, seconds_up(r->reset_ms));
        add(c, "RateLimit", &f);
    } else if (lc->headers == PT_LH_LEGACY) {
        pt_fx_add(c, c->req->fx, true, PT_HDR_ADD, PT_STR("X-RateLimit-Limit"), lc->policy_field);
        add_num(c, "X-RateLimit-Remaining", r->remaining);
        add_num(c, "X-RateLimit-Reset", seconds_up(r->reset_ms));
    }
    if (r->allowed)
        return PT_NEXT;
    int64_t retry = seconds_up(r->retry_ms);
    char b[48];
    snprintf(b, sizeof(b), "Retry-After: %" PRId64 "\r\n", retry ? retry : 1);
    int code = (int)lc->rejected_code;
    char body[96];
    const char *msg = lc->rejected_message;
    size_t len;
    if (msg) {
        len = strlen(msg);
    } else {
        len = (size_t)snprintf(body, sizeof(body), "%d %s\n", code, pt_http_reason(code));
        msg = body;
    }
    if (c->w->board >= 0)
        __atomic_add_fetch(&c->w->status->workers[c->w->board].limit_rejected, 1, __ATOMIC_RELAXED);
    c->req->fx->limit_refused = lc->kind;
    if (c->req->route)
        pt_mx_add(pt_mx_filter(c->req->route->index, c->req->fx->next), PT_MXW_F_REJECTED, 1);
    pt_req_respond(c, code, "text/plain", msg, len, b, req->method_bit == PT_M_HEAD);
    return PT_RESPOND;
}

/* ---- delays ---- */

static void delayed(evutil_socket_t fd, short what, void *arg)
{
    pt_limit_state_t *st = arg;
    st->timer_armed = false;
    st->phase = PT_LS_DONE;
    pt_req_resume(st->c);
}

pt_verdict_t pt_limit_delay(pt_conn_t *c, pt_limit_state_t *st, int64_t ms)
{
    /* made only for a request that waits: the state of every other one
     * stays small */
    if (!st->timer && !(st->timer = pt_arena_alloc(&c->arena, sizeof(*st->timer))))
        return PT_FAIL;
    evtimer_assign(st->timer, c->w->base, delayed, st);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(st->timer, &tv);
    st->timer_armed = true;
    st->phase = PT_LS_DELAYING;
    return PT_SUSPEND;
}

/* ---- Redis ---- */

static pt_redis_t *redis;

pt_redis_t *pt_limit_redis(void)
{
    return redis;
}

void pt_limit_redis_set(pt_redis_t *r)
{
    redis = r;
}

typedef struct ask {
    pt_limit_state_t *st;
    pt_limit_decode_fn decode;
    const void *arg;
} ask_t;

/* /status shows the worker in fallback from its first local decision (the
 * heartbeat also copies the client's state, and clears it once a probe
 * brought Redis back), and back from the first answer. */
static void fallback_flag(pt_conn_t *c, uint8_t on)
{
    if (c->w->board >= 0)
        __atomic_store_n(&c->w->status->workers[c->w->board].redis_fallback, on, __ATOMIC_RELAXED);
}

void pt_limit_fell_back(pt_conn_t *c)
{
    if (c->req && c->req->route && c->req->fx && c->req->fx->next < PT_FILTER__COUNT)
        pt_mx_add(pt_mx_filter(c->req->route->index, c->req->fx->next), PT_MXW_F_FALLBACKS, 1);
    if (c->w->board >= 0)
        __atomic_add_fetch(&c->w->status->workers[c->w->board].limit_fallbacks, 1, __ATOMIC_RELAXED);
    fallback_flag(c, 1);
}

static void answered(void *arg, int status, const long long *vals, size_t n)
{
    ask_t *a = arg;
    pt_limit_state_t *st = a->st;
    st->call = NULL;
    st->phase = PT_LS_ANSWERED;
    if (status == PT_REDIS_OK) {
        fallback_flag(st->c, 0);
        a->decode(st, vals, n, a->arg);
    } else {
        pt_limit_fell_back(st->c);
        a->decode(st, NULL, 0, a->arg); /* counts locally */
    }
    pt_req_resume(st->c);
}

pt_verdict_t pt_limit_ask(pt_conn_t *c, pt_limit_state_t *st, pt_redis_script_t *s, const long long *args,
                          size_t nargs, pt_limit_decode_fn decode, const void *arg)
{
    ask_t *a = redis ? pt_arena_alloc(&c->arena, sizeof(*a)) : NULL;
    if (a) {
        *a = (ask_t){st, decode, arg};
        st->call = pt_redis_eval(redis, s, st->rkey.p, st->rkey.n, args, nargs, answered, a);
    }
    if (!st->call) {
        pt_limit_fell_back(c);
        return PT_NEXT;
    }
    st->phase = PT_LS_ASKING;
    return PT_SUSPEND;
}

void pt_limit_done(pt_limit_state_t *st)
{
    if (!st)
        return;
    if (st->call) {
        pt_redis_cancel(st->call);
        st->call = NULL;
    }
    if (st->timer_armed) {
        evtimer_del(st->timer);
        st->timer_armed = false;
    }
    if (st->hold1) {
        pt_limits_conn_release(st->hold1 - 1);
        st->hold1 = 0;
    }
}
