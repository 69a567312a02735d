/* JSON Web Key Sets for jwt-auth, per worker (jwks.h).  Each set is
 * fetched with the internal client (client.h) through the upstream its URL
 * was given (synth.c), parsed by jose.c, and kept until a later fetch
 * succeeds.  The first fetch starts with the first request that needs the
 * set; a timer refreshes it every `refresh`, and a token naming a key the
 * set lacks asks for a refresh at most once per 10 s.  The first time a
 * fetch fails, and when one succeeds again, is logged. */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "portico/client.h"
#include "portico/conn.h"
#include "portico/jwks.h"
#include "portico/log.h"
#include "portico/request.h"
#include "portico/upstream.h"
#include "portico/worker.h"

#define MAX_BODY (1 << 20)     /* a key set larger than 1 MiB is refused */
#define UNKNOWN_KID_MS 10000   /* at most one refresh for unknown keys per 10 s */
#define RETRY_MS 30000         /* after a failure, sooner than refresh */

struct pt_jwks {
    const pt_jwks_conf_t *conf;
    pt_worker_t *w;
    pt_jwk_t *keys;
    size_t nkeys;
    uint64_t generation; /* 0: never fetched */
    int64_t kid_ms;      /* when a token's unknown kid last asked for one */
    pt_client_t *cl;
    struct event *timer;
    bool failing;        /* the last fetch failed (logged once) */
    pt_conn_t **waiting;
    size_t nwaiting, capwaiting;
    pt_jwks_t *next;
};

static pt_jwks_t *sets; /* this worker's */

static int64_t now_ms(pt_worker_t *w)
{
    return pt_worker_now_us(w) / 1000;
}

static void wake(pt_jwks_t *s)
{
    for (size_t i = 0; i < s->nwaiting; i++)
        pt_req_resume(s->waiting[i]);
    s->nwaiting = 0;
}

static void arm(pt_jwks_t *s, int64_t ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (s->timer)
        evtimer_add(s->timer, &tv);
}

static void on_fetched(void *arg, const pt_client_resp_t *r)
{
    pt_jwks_t *s = arg;
    s->cl = NULL;
    char err[256] = "";
    pt_jwk_t *keys = NULL;
    size_t skipped = 0;
    long n = -1;
    if (r->status == 200)
        n = pt_jwks_parse(r->body.p, r->body.n, &keys, &skipped, err, sizeof(err));
    else if (r->status > 0)
        snprintf(err, sizeof(err), "status %d", r->status);
    else
        snprintf(err, sizeof(err), "%s", r->error ? r->error : "no answer");
    if (n > 0) {
        pt_jwks_free(s->keys, s->nkeys);
        s->keys = keys;
        s->nkeys = (size_t)n;
        s->generation++;
        if (s->failing || s->generation == 1)
            pt_log_notice("jwt-auth: key set %s: %ld key%s%s", s->conf->uri, n, n == 1 ? "" : "s",
                          s->failing ? " (fetched again)" : "");
        if (skipped)
            pt_log_info("jwt-auth: key set %s: %zu key%s not usable for signatures, skipped", s->conf->uri,
                        skipped, skipped == 1 ? "" : "s");
        s->failing = false;
        arm(s, s->conf->refresh);
    } else {
        if (n == 0)
            pt_jwks_free(keys, 0), snprintf(err, sizeof(err), "no usable key");
        if (!s->failing)
            pt_log_error("jwt-auth: cannot fetch the key set %s: %s; %s", s->conf->uri, err,
                         s->generation ? "keeping the last one" : "tokens are refused until it can be fetched");
        s->failing = true;
        arm(s, s->conf->refresh < RETRY_MS ? s->conf->refresh : RETRY_MS);
    }
    wake(s);
}

static void fetch(pt_jwks_t *s)
{
    if (s->cl)
        return;
    const pt_uri_t *u = &s->conf->parsed;
    pt_upstream_t *up = pt_worker_upstream(s->w, s->conf->up);
    pt_pick_ctx_t ctx = {PT_STR_NULL, pt_worker_now_us(s->w)};
    size_t idx = pt_balancer_pick(up, NULL, &ctx);
    char host[300];
    bool dflt = u->port == (u->https ? 443 : 80);
    snprintf(host, sizeof(host), dflt ? "%s" : "%s:%d", u->host, u->port);
    char target[2048];
    snprintf(target, sizeof(target), "%s%s", u->path_query[0] == '?' ? "/" : "", u->path_query);
    pt_client_req_t rq = {.method = "GET",
                          .target = pt_str_from(target),
                          .host = pt_str_from(host),
                          .headers = PT_STR("Accept: application/json, application/jwk-set+json\r\n"),
                          .timeout_ms = s->conf->timeout,
                          .max_body = MAX_BODY};
    s->cl = idx == PT_PICK_NONE ? NULL : pt_client_start(s->w, up, idx, &rq, on_fetched, s);
    if (!s->cl) {
        pt_client_resp_t fail = {.status = PT_CLIENT_FAILED,
                                 .error = idx == PT_PICK_NONE ? "no target is up" : strerror(errno)};
        on_fetched(s, &fail);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    fetch(arg);
}

pt_jwks_t *pt_jwks_for(pt_conn_t *c, const pt_jwks_conf_t *conf)
{
    for (pt_jwks_t *s = sets; s; s = s->next)
        if (s->conf == conf)
            return s;
    pt_jwks_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->conf = conf;
    s->w = c->w;
    s->timer = evtimer_new(c->w->base, on_timer, s);
    s->next = sets;
    sets = s;
    fetch(s);
    return s;
}

const pt_jwk_t *pt_jwks_find(pt_jwks_t *s, pt_str_t kid)
{
    for (size_t i = 0; i < s->nkeys; i++) {
        const char *k = s->keys[i].kid;
        if (kid.n ? k && strlen(k) == kid.n && memcmp(k, kid.p, kid.n) == 0 : s->nkeys == 1)
            return &s->keys[i];
    }
    int64_t now = now_ms(s->w);
    if (!s->cl && s->generation && (!s->kid_ms || now - s->kid_ms >= UNKNOWN_KID_MS)) {
        s->kid_ms = now;
        fetch(s); /* a key that came after the last fetch, perhaps */
    }
    return NULL;
}

bool pt_jwks_loaded(const pt_jwks_t *s)
{
    return s->generation > 0;
}

bool pt_jwks_fetching(const pt_jwks_t *s)
{
    return s->cl != NULL;
}

uint64_t pt_jwks_generation(const pt_jwks_t *s)
{
    return s->generation;
}

bool pt_jwks_wait(pt_jwks_t *s, pt_conn_t *c)
{
    if (!s->cl)
        return false;
    if (s->nwaiting == s->capwaiting) {
        size_t cap = s->capwaiting ? s->capwaiting * 2 : 16;
        pt_conn_t **v = realloc(s->waiting, cap * sizeof(*v));
        if (!v)
            return false;
        s->waiting = v;
        s->capwaiting = cap;
    }
    s->waiting[s->nwaiting++] = c;
    return true;
}

void pt_jwks_unwait(pt_jwks_t *s, pt_conn_t *c)
{
    for (size_t i = 0; i < s->nwaiting; i++)
        if (s->waiting[i] == c) {
            s->waiting[i] = s->waiting[--s->nwaiting];
            return;
        }
}
