/* limit-count with policy redis and sync_interval > 0: a worker notes the
 * keys it counted (the first count since their last sync), and a timer of
 * its loop adds what each has pending to Redis once its interval is up.
 * Redis answers with the cluster's totals, which the next decisions use.
 * A sync Redis does not answer puts the amount back to pending: it is sent
 * again at the next one, and the node decides on its own counts meanwhile. */
#include "config.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "portico/conn.h"
#include "portico/limit_filter.h"
#include "portico/worker.h"

typedef struct dirty {
    pt_lkey_t key;
    char *rkey;
    size_t rkeylen;
    int64_t window_ms, interval_ms, due_ms;
    bool sliding;
} dirty_t;

static struct {
    dirty_t *v;
    size_t n, cap;
    struct event timer;
    bool made, armed;
    struct event_base *base;
} S;

static pt_redis_script_t sync_script = {
    "limit-count sync",
    "local k = KEYS[1] .. ':' .. ARGV[1]\n"
    "local n = redis.call('INCRBY', k, ARGV[3])\n"
    "redis.call('PEXPIRE', k, ARGV[2] * 2)\n"
    "local p = tonumber(redis.call('GET', KEYS[1] .. ':' .. (ARGV[1] - 1)) or '0')\n"
    "return {n, p}\n",
    ""};

typedef struct sent {
    dirty_t d; /* owns d.rkey: noted again when Redis did not answer */
    int64_t window, amount;
} sent_t;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void arm(void);
static bool push(const dirty_t *d);

static void synced(void *arg, int status, const long long *v, size_t n)
{
    sent_t *s = arg;
    if (status == PT_REDIS_OK && n >= 2) {
        pt_limits_sync_done(&s->d.key, s->window, s->amount, v[0], v[1]);
        free(s->d.rkey);
    } else {
        pt_limits_sync_done(&s->d.key, s->window, s->amount, -1, 0);
        s->d.due_ms = mono_ms() + s->d.interval_ms;
        if (push(&s->d))
            arm();
        else
            free(s->d.rkey);
    }
    free(s);
}

/* Sends one key's pending count: 1 sent (d->rkey now belongs to the
 * call), 0 nothing to send, -1 not sent (Redis not asked): kept for the
 * next round. */
static int flush(const dirty_t *d)
{
    int64_t window = 0;
    int64_t amount = pt_limits_sync_take(&d->key, &window);
    if (amount <= 0)
        return 0;
    sent_t *s = malloc(sizeof(*s));
    pt_redis_t *r = pt_limit_redis();
    long long args[3] = {window, d->window_ms, amount};
    if (s) {
        *s = (sent_t){*d, window, amount};
        if (r && pt_redis_eval(r, &sync_script, d->rkey, d->rkeylen, args, 3, synced, s))
            return 1;
        free(s);
    }
    pt_limits_sync_done(&d->key, window, amount, -1, 0);
    return -1;
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    S.armed = false;
    int64_t now = mono_ms();
    size_t keep = 0;
    for (size_t i = 0; i < S.n; i++) {
        dirty_t *d = &S.v[i];
        int rc = d->due_ms <= now ? flush(d) : -2;
        if (rc == 0)
            free(d->rkey);
        if (rc >= 0)
            continue;
        if (rc == -1)
            d->due_ms = now + d->interval_ms;
        S.v[keep++] = *d;
    }
    S.n = keep;
    arm();
}

static void arm(void)
{
    if (S.armed || !S.n)
        return;
    int64_t due = S.v[0].due_ms;
    for (size_t i = 1; i < S.n; i++)
        if (S.v[i].due_ms < due)
            due = S.v[i].due_ms;
    int64_t wait = due - mono_ms();
    if (wait < 1)
        wait = 1;
    struct timeval tv = {wait / 1000, (wait % 1000) * 1000};
    evtimer_add(&S.timer, &tv);
    S.armed = true;
}

static bool push(const dirty_t *d)
{
    if (S.n == S.cap) {
        size_t cap = S.cap ? S.cap * 2 : 64;
        dirty_t *v = realloc(S.v, cap * sizeof(*v));
        if (!v)
            return false;
        S.v = v;
        S.cap = cap;
    }
    S.v[S.n++] = *d;
    return true;
}

void pt_limit_sync_note(pt_conn_t *c, const pt_limit_common_t *lc, const pt_limit_state_t *st, int64_t count)
{
    if (!S.made) {
        evtimer_assign(&S.timer, c->w->base, tick, NULL);
        S.made = true;
    }
    char *rk = malloc(st->rkey.n);
    if (!rk)
        return; /* its count stays pending: sent once the key is noted again */
    memcpy(rk, st->rkey.p, st->rkey.n);
    dirty_t d = {st->key, rk, st->rkey.n, lc->window_ms, lc->sync_interval, mono_ms() + lc->sync_interval,
                 lc->kind == 'S'};
    if (!push(&d))
        free(rk);
    arm();
}
