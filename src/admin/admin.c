#include "config.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "portico/admin.h"
#include "portico/auth.h"
#include "portico/conn.h"
#include "portico/http.h"
#include "portico/limit.h"
#include "portico/metrics.h"
#include "portico/request.h"
#include "portico/runtime.h"
#include "portico/secret.h"
#include "portico/upstream.h"
#include "portico/zone.h"

static const char *const state_names[] = {"empty", "starting", "running", "draining"};
static const char *const balancer_names[] = {"round-robin", "least-connections", "consistent-hashing", "latency",
                                             "random-two"};

static void iso_time(int64_t ms, char *buf, size_t size)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A JSON string of a configured name or path: ${NAME} values masked, as
 * in the logs, and quotes, backslashes and control characters escaped. */
static void put_json_str(FILE *f, const char *s)
{
    char buf[1024];
    s = pt_secret_masked(s, buf, sizeof(buf));
    fputc('"', f);
    for (const char *p = s; *p; p++)
        fprintf(f, (*p == '"' || *p == '\\') ? "\\%c" : ((unsigned char)*p < 0x20 ? "?" : "%c"), *p);
    fputc('"', f);
}

/* ,"health":"up"|"down"|"unknown", and the counters behind it. */
static void target_health(FILE *f, const pt_target_t *t, int64_t now_ms)
{
    const pt_target_shared_t *s = t->shared;
    if (!s) {
        fputs(",\"health\":\"unknown\"", f);
        return;
    }
    int64_t until = atomic_load(&s->down_until_ms);
    bool down = pt_health_down(s, now_ms);
    int last = atomic_load(&s->last_probe_status);
    uint64_t ok = atomic_load(&s->probes_ok), failed = atomic_load(&s->probes_failed);
    fprintf(f, ",\"health\":\"%s\",\"marked_down\":%llu,\"active\":{\"probes_ok\":%llu,\"probes_failed\":%llu,",
            down ? "down" : "up", (unsigned long long)atomic_load(&s->marked_down), (unsigned long long)ok,
            (unsigned long long)failed);
    if (!ok && !failed)
        fputs("\"last\":null}", f);
    else if (last == PT_PROBE_FAILED || last == PT_PROBE_TIMEOUT)
        fprintf(f, "\"last\":\"%s\"}", last == PT_PROBE_FAILED ? "connection failed" : "timeout");
    else
        fprintf(f, "\"last\":%d}", last);
    fprintf(f,
            ",\"passive\":{\"failures\":%llu,\"http_failures\":%d,\"tcp_failures\":%d,\"timeouts\":%d,"
            "\"down_for_ms\":%lld}",
            (unsigned long long)atomic_load(&s->passive_failures), (int)atomic_load(&s->http_failures),
            (int)atomic_load(&s->tcp_failures), (int)atomic_load(&s->timeouts),
            (long long)(until && now_ms < until ? until - now_ms : 0));
}

/* ,"zones":[...]: how full the shared target zone of this worker's
 * generation is, and what it had to evict or refuse. */
static void zones_json(FILE *f, pt_worker_t *w)
{
    fputs(",\"zones\":[", f);
    pt_zone_t *z = w->conf->upstreams.n ? w->upstreams[0].zone : NULL;
    if (z) {
        pt_zone_stats_t st;
        pt_zone_stats(z, sizeof(pt_target_shared_t), &st);
        fprintf(f, "{\"name\":\"%s\",\"slots\":%zu,\"used\":%zu,\"evicted\":%llu,\"refused\":%llu}",
                pt_zone_name(z), st.slots, st.used, st.evicted, st.refused);
    }
    if (pt_runtime_version) /* the admin API's target changes */
        fprintf(f, "%s{\"name\":\"upstream-runtime\",\"slots\":%d,\"used\":%zu}", z ? "," : "", PT_RT_ENTRIES,
                pt_runtime_used());
    fputc(']', f);
}

/* ,"limits":{...}: the local counters' table, refusals, and the Redis
 * fallbacks of every worker (those that exited included). */
static uint64_t sum_workers(const pt_status_t *st, size_t off, uint64_t exited)
{
    uint64_t n = exited;
    for (int i = 0; i < PT_STATUS_MAX_WORKERS; i++)
        if (st->workers[i].state != PT_W_EMPTY)
            n += __atomic_load_n((const uint64_t *)((const char *)&st->workers[i] + off), __ATOMIC_RELAXED);
    return n;
}

static void limits_json(FILE *f, pt_worker_t *w)
{
    const pt_status_t *st = w->status;
    pt_limits_stats_t ls;
    pt_limits_stats(&ls);
    fprintf(f,
            ",\"limits\":{\"entries\":%zu,\"used\":%zu,\"evicted\":%llu,\"evicted_at_limit\":%llu,\"kept\":%llu,\"refused\":%llu,\"resets\":%llu,"
            "\"in_flight\":%zu,\"holds\":%zu,\"rejected\":%llu",
            ls.entries, ls.used, (unsigned long long)ls.evicted, (unsigned long long)ls.evicted_at_limit,
            (unsigned long long)ls.kept, (unsigned long long)ls.refused,
            (unsigned long long)ls.resets, ls.holds_used, ls.holds,
            (unsigned long long)sum_workers(st, offsetof(pt_status_worker_t, limit_rejected),
                                            st->limit_rejected_exited));
    if (w->conf->redis.node) {
        static const char *const modes[] = {"single", "sentinel", "cluster"};
        int down = 0;
        for (int i = 0; i < PT_STATUS_MAX_WORKERS; i++)
            if (st->workers[i].state != PT_W_EMPTY)
                down += __atomic_load_n(&st->workers[i].redis_fallback, __ATOMIC_RELAXED) != 0;
        fprintf(f, ",\"redis\":{\"mode\":\"%s\",\"state\":\"%s\",\"workers_in_fallback\":%d,\"fallbacks\":%llu}",
                modes[w->conf->redis.mode], down ? "fallback" : "ok", down,
                (unsigned long long)sum_workers(st, offsetof(pt_status_worker_t, limit_fallbacks),
                                                st->limit_fallbacks_exited));
    }
    fputc('}', f);
}

/* ,"tracing":{...}: spans exported and dropped, and failed exports, by
 * every worker (those that exited included), when tracing is on. */
static void tracing_json(FILE *f, const pt_worker_t *w)
{
    const pt_status_t *st = w->status;
    if (!w->conf->tracing.node)
        return;
    fprintf(f, ",\"tracing\":{\"exported\":%llu,\"dropped\":%llu,\"failed_exports\":%llu}",
            (unsigned long long)sum_workers(st, offsetof(pt_status_worker_t, trace_exported), st->trace_exported_exited),
            (unsigned long long)sum_workers(st, offsetof(pt_status_worker_t, trace_dropped), st->trace_dropped_exited),
            (unsigned long long)sum_workers(st, offsetof(pt_status_worker_t, trace_failed_exports),
                                            st->trace_failed_exports_exited));
}

static char *status_json(pt_worker_t *w, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f)
        return NULL;
    const pt_status_t *st = w->status;
    char started[32], loaded[32];
    iso_time(st->started_ms, started, sizeof(started));
    iso_time(st->config_loaded_ms, loaded, sizeof(loaded));
    fprintf(f,
            "{\"version\":\"%s\",\"build\":\"%s\",\"master_pid\":%d,\"started\":\"%s\",\"generation\":%u,"
            "\"reloads\":%u,\"reload_failures\":%u,\"config\":{\"file\":",
            PACKAGE_VERSION, PT_BUILD_OPTIONS, (int)st->master_pid, started, st->generation, st->reloads,
            st->reload_failures);
    put_json_str(f, st->config_file);
    fprintf(f, ",\"sha256\":\"%s\",\"loaded\":\"%s\"},\"served_by\":%d,\"workers\":[", st->config_sha256, loaded,
            (int)getpid());
    int first = 1;
    uint64_t lost = __atomic_load_n(&st->access_log_lost_exited, __ATOMIC_RELAXED);
    struct timespec mono;
    clock_gettime(CLOCK_MONOTONIC, &mono); /* the clock heartbeats are written in */
    int64_t mono_ms = (int64_t)mono.tv_sec * 1000 + mono.tv_nsec / 1000000;
    for (int i = 0; i < PT_STATUS_MAX_WORKERS; i++) {
        const pt_status_worker_t *sw = &st->workers[i];
        if (sw->state == PT_W_EMPTY)
            continue;
        char ws[32];
        iso_time(sw->started_ms, ws, sizeof(ws));
        int64_t age = mono_ms - __atomic_load_n(&sw->heartbeat_ms, __ATOMIC_RELAXED);
        fprintf(f,
                "%s{\"pid\":%d,\"slot\":%d,\"generation\":%u,\"state\":\"%s\",\"started\":\"%s\","
                "\"heartbeat_age_ms\":%lld,\"access_log_lost\":%llu,\"buffers\":{\"small\":%u,\"large\":%u,"
                "\"small_free\":%u,\"large_free\":%u},\"h2_idle_pages_returned\":%u}",
                first ? "" : ",", (int)sw->pid, sw->slot, sw->generation, state_names[sw->state], ws,
                (long long)(age > 0 ? age : 0),
                (unsigned long long)__atomic_load_n(&sw->access_log_lost, __ATOMIC_RELAXED),
                __atomic_load_n(&sw->bufs_small, __ATOMIC_RELAXED), __atomic_load_n(&sw->bufs_large, __ATOMIC_RELAXED),
                __atomic_load_n(&sw->bufs_small_free, __ATOMIC_RELAXED),
                __atomic_load_n(&sw->bufs_large_free, __ATOMIC_RELAXED),
                __atomic_load_n(&sw->h2_idle_pages, __ATOMIC_RELAXED));
        lost += __atomic_load_n(&sw->access_log_lost, __ATOMIC_RELAXED);
        first = 0;
    }
    /* every worker's since the master started, the exited ones' included */
    fprintf(f, "],\"access_log_lost\":%llu,\"auth_failures\":{", (unsigned long long)lost);
    for (int r = 0; r < PT_AUTH__REASONS; r++) {
        uint64_t n = __atomic_load_n(&st->auth_failures_exited[r], __ATOMIC_RELAXED);
        for (int i = 0; i < PT_STATUS_MAX_WORKERS; i++)
            if (st->workers[i].state != PT_W_EMPTY)
                n += __atomic_load_n(&st->workers[i].auth_failures[r], __ATOMIC_RELAXED);
        fprintf(f, "%s\"%s\":%llu", r ? "," : "", pt_auth_reason_names[r], (unsigned long long)n);
    }
    fputc('}', f);
    pt_mx_zone_t *mz = pt_metrics_zone();
    if (mz) {
        pt_mx_totals_t tot;
        pt_metrics_totals(mz, &tot);
        fprintf(f, ",\"requests\":%llu,\"connections\":{\"accepted\":%llu,\"active\":%llu}",
                (unsigned long long)tot.requests, (unsigned long long)tot.accepted, (unsigned long long)tot.active);
    }
    fputs(",\"upstreams\":[", f);
    int64_t now_ms = pt_worker_now_us(w) / 1000;
    for (size_t i = 0; i < w->conf->upstreams.n; i++) {
        pt_upstream_t *u = &w->upstreams[i];
        pt_runtime_sync(u); /* the admin API's last changes, even with no request since */
        fprintf(f, "%s{\"name\":", i ? "," : "");
        put_json_str(f, u->conf->name);
        uint64_t refused = 0, retries = 0, v[PT_MXW_T_REUSES + 1];
        pt_mx_zone_t *z = pt_metrics_zone();
        if (z)
            pt_metrics_sum(z, pt_mx_upstream(u->conf), PT_MXW_UP_REFUSED, 1, &refused);
        for (size_t k = 0; z && k < u->ntargets; k++) {
            const pt_target_t *t = &u->targets[k];
            pt_metrics_sum(z, pt_mx_target(u->conf, t->conf), PT_MXW_T_RETRIES, 1, v);
            retries += t->rt_added && t->shared ? atomic_load(&t->shared->mx[PT_MXW_T_RETRIES]) : v[0];
        }
        fprintf(f,
                ",\"balancer\":\"%s\",\"retries\":%llu,\"retries_refused\":%llu,\"worker_retries\":%llu,"
                "\"worker_retries_refused\":%llu,\"targets\":[",
                balancer_names[u->kind], (unsigned long long)retries, (unsigned long long)refused,
                (unsigned long long)u->budget.retried, (unsigned long long)u->budget.refused);
        for (size_t k = 0, first_t = 1; k < u->ntargets; k++) {
            const pt_target_t *t = &u->targets[k];
            if (t->rt_state == PT_RT_FREE || (t->rt_state == PT_RT_REMOVED && !t->inflight))
                continue; /* removed through the admin API: shown while attempts on it finish */
            fprintf(f, "%s{\"address\":", first_t ? "" : ",");
            first_t = 0;
            put_json_str(f, t->name);
            fprintf(f, ",\"state\":\"%s\",\"added\":%s,\"full_weight\":%lld", pt_rt_state_names[t->rt_state],
                    t->rt_added ? "true" : "false", (long long)t->full_weight);
            memset(v, 0, sizeof(v));
            if (z) /* every worker's, the exited ones' included */
                pt_metrics_sum(z, pt_mx_target(u->conf, t->conf), 0, PT_MXW_T_REUSES + 1, v);
            if (t->rt_added && t->shared) /* added through the admin API: no row, the shared slot's */
                for (int k2 = 0; k2 <= PT_MXW_T_REUSES; k2++)
                    v[k2] = atomic_load_explicit(&t->shared->mx[k2], memory_order_relaxed);
            fprintf(f,
                    ",\"weight\":%lld,\"inflight\":%lld,\"worker_inflight\":%lld,"
                    "\"ewma_ms\":%.3f,\"attempts\":%llu,\"connect_failures\":%llu,\"timeouts\":%llu,"
                    "\"connects\":%llu,\"reuses\":%llu,\"worker_connects\":%llu,\"worker_reuses\":%llu,"
                    "\"idle\":%zu",
                    (long long)t->weight,
                    (long long)(t->shared ? atomic_load(&t->shared->inflight) : t->inflight), (long long)t->inflight,
                    t->ewma_us / 1000, /* this worker's: each one learns its own */
                    (unsigned long long)v[PT_MXW_T_ATTEMPTS], (unsigned long long)v[PT_MXW_T_CONNECT_FAILURES],
                    (unsigned long long)v[PT_MXW_T_TIMEOUTS], (unsigned long long)v[PT_MXW_T_CONNECTS],
                    (unsigned long long)v[PT_MXW_T_REUSES], (unsigned long long)t->connects,
                    (unsigned long long)t->reuses, t->nidle);
            target_health(f, t, now_ms);
            fputc('}', f);
        }
        fprintf(f, "]}");
    }
    fputc(']', f);
    zones_json(f, w);
    limits_json(f, w);
    tracing_json(f, w);
    pt_admin_caches_json(f, w);
    fprintf(f, "}\n");
    fclose(f);
    return buf;
}

void pt_admin_handle(pt_conn_t *c, const pt_h1_req_t *req)
{
    bool head = req->method_bit == PT_M_HEAD;
    if (!pt_admin_may_change(c, req) || pt_admin_info(c, req) || pt_admin_metrics(c, req) || pt_admin_cache(c, req) ||
        pt_admin_targets(c, req))
        return;
    if (!pt_str_eq(req->path, PT_STR("/status"))) {
        pt_req_respond(c, 404, "application/json", "{\"error\":\"not found\"}\n", 22, NULL, head);
        return;
    }
    if (req->method_bit != PT_M_GET && !head) {
        pt_req_respond(c, 405, "application/json", "{\"error\":\"method not allowed\"}\n", 31,
                        "Allow: GET, HEAD\r\n", false);
        return;
    }
    size_t len = 0;
    char *body = status_json(c->w, &len);
    if (!body) {
        pt_req_respond(c, 500, "application/json", "{\"error\":\"out of memory\"}\n", 26, NULL, head);
        return;
    }
    pt_req_respond(c, 200, "application/json", body, len, "Cache-Control: no-store\r\n", head);
    free(body);
}
