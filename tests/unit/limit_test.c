/* The limits' shared table (limit.h): fixed and sliding windows, the
 * leaky bucket (GCRA), holds given back by column, counts shared by forked
 * processes, a table kept across a "reload", and LRU eviction under a
 * million distinct keys in a table that never grows. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../unit/tap.h"
#include "portico/config-t.h"
#include "portico/limit.h"
#include "portico/zone.h"

static pt_lkey_t key(char kind, int64_t w, const char *k)
{
    pt_lkey_t lk;
    pt_lkey_make(&lk, kind, w, "route:api", pt_str_from(k));
    return lk;
}

static int passes(const pt_lkey_t *k, int64_t now, int64_t w, bool sliding, int64_t count, int n)
{
    int p = 0;
    for (int i = 0; i < n; i++) {
        pt_lresult_t r;
        pt_limits_count(k, now, w, sliding, count, &r);
        p += r.allowed;
    }
    return p;
}

static void fixed_and_sliding(void)
{
    int64_t w = 60000, t0 = 1800000000000LL / w * w; /* the start of a window */
    pt_lkey_t a = key('c', w, "a"), b = key('c', w, "b");
    is_int(passes(&a, t0 + 10, w, false, 10, 15), 10, "fixed: 10 of 15 pass");
    is_int(passes(&b, t0 + 10, w, false, 10, 3), 3, "fixed: another key counts apart");
    pt_lresult_t r;
    pt_limits_count(&a, t0 + 20000, w, false, 10, &r);
    ok(!r.allowed && r.remaining == 0 && r.retry_ms == 40000 && r.reset_ms == 40000,
       "fixed: refused, retry at the window's end (%lld)", (long long)r.retry_ms);
    is_int(passes(&a, t0 + w, w, false, 10, 15), 10, "fixed: the next window starts again");

    pt_lkey_t s = key('s', w, "s");
    is_int(passes(&s, t0 + 1000, w, true, 10, 12), 10, "sliding: 10 pass in the first window");
    /* a quarter into the next: the previous counts for 3/4: 7.5 + cur + 1 <= 10 → cur up to 1 (8.5+1=9.5), 2 → 10.5 */
    is_int(passes(&s, t0 + w + w / 4, w, true, 10, 5), 2, "sliding: previous x 3/4 leaves room for 2");
    /* three quarters in: 10 x 1/4 = 2.5, + 2 counted: 4.5 + cur + 1 <= 10 → 5 more */
    is_int(passes(&s, t0 + w + 3 * w / 4, w, true, 10, 9), 5, "sliding: previous x 1/4 leaves room for 5 more");
    is_int(passes(&s, t0 + 3 * w, w, true, 10, 12), 10, "sliding: after an idle window, a full one");
    pt_limits_count(&s, t0 + 3 * w + 100, w, true, 10, &r);
    ok(!r.allowed && r.retry_ms > w - 100 && r.retry_ms <= w - 100 + w / 10 + 1,
       "sliding: a full window's refusal waits into the next (%lld ms)", (long long)r.retry_ms);
}

static void bucket(void)
{
    pt_lkey_t k = key('r', 0, "gcra");
    int64_t t = 5000000000LL, us = 1000000;
    int p = 0, delayed = 0;
    for (int i = 0; i < 20; i++) { /* rate 10, burst 5: 6 at once */
        pt_lresult_t r;
        pt_limits_req(&k, t, 10, 5, true, 0, &r);
        p += r.allowed;
    }
    is_int(p, 6, "a burst of 5 above rate 10: 6 pass at once");
    p = 0;
    for (int ms = 0; ms < 10000; ms += 10) { /* 10 s, a request every 10 ms */
        pt_lresult_t r;
        pt_limits_req(&k, t + (int64_t)ms * 1000 + us / 1000, 10, 5, true, 0, &r);
        p += r.allowed;
    }
    ok(p >= 99 && p <= 101, "then 10 a second for 10 s (%d)", p);
    pt_lkey_t d = key('r', 0, "delay");
    int64_t want[] = {0, 100, 200, 300, 400, 500};
    for (int i = 0; i < 6; i++) {
        pt_lresult_t r;
        pt_limits_req(&d, t, 10, 5, false, 0, &r);
        delayed += r.allowed && r.delay_ms == want[i];
    }
    is_int(delayed, 6, "without nodelay, the burst is spaced 100 ms apart");
    pt_lresult_t r;
    pt_limits_req(&d, t, 10, 5, false, 0, &r);
    ok(!r.allowed && r.retry_ms == 100, "past the burst: refused, retry in 100 ms (%lld)", (long long)r.retry_ms);
    pt_lkey_t m = key('r', 0, "max-delay");
    int passed = 0;
    for (int i = 0; i < 6; i++) {
        pt_limits_req(&m, t, 10, 5, false, 250, &r);
        passed += r.allowed;
    }
    is_int(passed, 3, "a wait allowed of 250 ms: the ones held 0, 100 and 200 ms pass, the others are refused");
    pt_limits_req(&m, t + 100000, 10, 5, false, 250, &r);
    ok(r.allowed && r.delay_ms == 200, "and were not counted: 100 ms later the next waits 200 ms (%lld)",
       (long long)r.delay_ms);
}

static void holds(void)
{
    pt_lkey_t k = key('n', 0, "conn");
    int64_t h[6];
    pt_lresult_t r;
    int p = 0;
    for (int i = 0; i < 6; i++) {
        pt_limits_conn(&k, i < 3 ? 7 : 8, 5, &h[i], &r);
        p += r.allowed;
    }
    ok(p == 5 && h[5] == -1 && pt_limits_conn_count(&k) == 5, "conn 5: the sixth is refused");
    pt_limits_conn_release(h[0]);
    is_int(pt_limits_conn_count(&k), 4, "a release gives one back");
    pt_limits_forget_column(8); /* the worker of column 8 died holding two */
    is_int(pt_limits_conn_count(&k), 2, "a dead worker's holds are given back, the others' kept");
    pt_limits_conn_release(h[1]);
    pt_limits_conn_release(h[2]);
    pt_limits_conn_release(h[2]); /* twice: nothing */
    is_int(pt_limits_conn_count(&k), 0, "back to 0");
    pt_limits_stats_t st;
    pt_limits_stats(&st);
    is_int(st.holds_used, 0, "no hold left in use");
}

static void forked(void)
{
    pt_lkey_t k = key('c', 60000, "forked");
    int64_t now = 1800000000000LL;
    int fds[2];
    if (pipe(fds) < 0)
        return;
    for (int i = 0; i < 4; i++)
        if (fork() == 0) {
            int p = passes(&k, now, 60000, false, 1000, 500);
            (void)!write(fds[1], &p, sizeof(p));
            _exit(0);
        }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        int p = 0;
        (void)!read(fds[0], &p, sizeof(p));
        total += p;
    }
    while (wait(NULL) > 0)
        ;
    is_int(total, 1000, "4 processes x 500 requests against count 1000: exactly 1000 pass");
}

static void eviction(pt_config_t *c)
{
    pt_limits_stats_t before, after;
    pt_limits_stats(&before);
    char k[32];
    int64_t now = 1800000000000LL;
    pt_lkey_t spent = key('c', 60000, "spent-quota");
    is_int(passes(&spent, now, 60000, false, 1, 3), 1, "a key at its limit");
    for (int i = 0; i < 1000000; i++) {
        snprintf(k, sizeof(k), "client-%d", i);
        pt_lkey_t lk = key('c', 60000, k);
        pt_lresult_t r;
        pt_limits_count(&lk, now, 60000, false, 2, &r); /* one of two: not at the limit, evictable */
        if (!r.allowed || r.failed_open)
            break;
    }
    pt_limits_stats(&after);
    ok(after.used == after.entries && after.evicted - before.evicted >= 1000000 - after.entries,
       "1,000,000 keys in %zu entries: full, %llu evicted", after.entries,
       (unsigned long long)(after.evicted - before.evicted));
    pt_lkey_t last = key('c', 60000, "client-999999"), first = key('c', 60000, "client-0");
    is_int(passes(&last, now, 60000, false, 2, 2), 1, "the newest key is still counted");
    is_int(passes(&first, now, 60000, false, 2, 1), 1, "the oldest was evicted: it starts again");
    is_int(passes(&spent, now, 60000, false, 1, 1), 0, "the key at its limit was never evicted by the flood");
    ok(after.kept > before.kept, "evictions stepped over it (%llu)", (unsigned long long)(after.kept - before.kept));
    /* a reload with the same size keeps the counters */
    pt_zone_sweep();
    ok(pt_limits_prepare(c, true) == 0 && passes(&last, now, 60000, false, 2, 1) == 0, "a reload keeps the table");
}

static void holds_run_out(void)
{
    pt_limits_stats_t st;
    pt_limits_stats(&st);
    size_t n = st.holds - st.holds_used;
    int64_t *h = calloc(n + 1, sizeof(*h));
    pt_lkey_t k = key('n', 0, "many");
    pt_lresult_t r = {0};
    size_t taken = 0;
    for (size_t i = 0; i <= n; i++) {
        pt_limits_conn(&k, 3, 1 << 30, &h[i], &r);
        taken += r.allowed;
    }
    ok(taken == n && !r.allowed && r.exhausted, "every hold in use: the next request is refused (%zu)", taken);
    for (size_t i = 0; i < n; i++)
        pt_limits_conn_release(h[i]);
    pt_limits_conn(&k, 3, 1 << 30, &h[0], &r);
    ok(r.allowed && pt_limits_conn_count(&k) == 1, "given back, they are taken again");
    pt_limits_conn_release(h[0]);
    free(h);
}

static void long_keys(void)
{
    char big[4096];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    pt_lkey_t a = key('c', 1000, big);
    big[4000] = 'y';
    pt_lkey_t b = key('c', 1000, big);
    ok(a.n == (0x80 | 32) && memcmp(a.b, b.b, 32) != 0, "long keys go by their SHA-256, and differ");
    pt_lkey_t s1, s2;
    pt_lkey_make(&s1, 'c', 1000, "route:a", PT_STR("b:c"));
    pt_lkey_make(&s2, 'c', 1000, "route:a:b", PT_STR("c"));
    ok(s1.n != s2.n || memcmp(s1.b, s2.b, s1.n) != 0, "scope and key cannot be confused");
}

int main(void)
{
    pt_config_t c = {0};
    c.limits.memory = 1 << 20;
    ok(pt_limits_prepare(&c, true) == 0, "a 1 MiB table");
    fixed_and_sliding();
    bucket();
    holds();
    forked();
    long_keys();
    holds_run_out();
    eviction(&c);
    printf("1..%d\n", tap_n);
    return tap_failed != 0;
}
