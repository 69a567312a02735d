#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "../unit/tap.h"
#include "portico/upstream.h"

static pt_upstream_t make(const int *weights, size_t n)
{
    pt_upstream_t u = {.ntargets = n, .cap = n, .targets = calloc(n, sizeof(pt_target_t))};
    for (size_t i = 0; i < n; i++)
        u.targets[i].weight = u.targets[i].full_weight = weights[i];
    return u;
}

int main(void)
{
    int w1[] = {5, 1, 1};
    pt_upstream_t u = make(w1, 3);
    char seq[8] = "";
    for (int i = 0; i < 7; i++)
        seq[i] = (char)('a' + pt_balancer_pick(&u, NULL, NULL));
    is_str(seq, "aabacaa", "smooth weighted round robin spreads 5,1,1 as nginx does");

    int w2[] = {100, 50, 25, 1};
    pt_upstream_t v = make(w2, 4);
    int count[4] = {0};
    for (int i = 0; i < 176 * 100; i++)
        count[pt_balancer_pick(&v, NULL, NULL)]++;
    ok(count[0] == 10000 && count[1] == 5000 && count[2] == 2500 && count[3] == 100,
       "exact shares over whole cycles (%d %d %d %d)", count[0], count[1], count[2], count[3]);

    bool tried[4] = {true, false, true, false};
    int seen[4] = {0};
    for (int i = 0; i < 100; i++)
        seen[pt_balancer_pick(&v, tried, NULL)]++;
    ok(seen[0] == 0 && seen[2] == 0 && seen[1] > 0 && seen[3] > 0, "targets already tried are skipped");
    bool all[4] = {true, true, true, true};
    size_t pick = pt_balancer_pick(&v, all, NULL);
    ok(pick < 4, "when every target was tried, one is still chosen");

    int w3[] = {1};
    pt_upstream_t one = make(w3, 1);
    bool t1[1] = {true};
    is_int(pt_balancer_pick(&one, t1, NULL), 0, "a single target is chosen even when tried");
    free(u.targets);
    free(v.targets);
    free(one.targets);

    /* consistent hashing: balance, stability when a target leaves, retries */
    int w10[10];
    for (int i = 0; i < 10; i++)
        w10[i] = 100;
    pt_upstream_t h = make(w10, 10), h9 = make(w10, 9);
    for (int i = 0; i < 10; i++) {
        snprintf(h.targets[i].name, sizeof(h.targets[i].name), "10.0.0.%d:80", i + 1);
        if (i < 9)
            snprintf(h9.targets[i].name, sizeof(h9.targets[i].name), "10.0.0.%d:80", i + 1);
    }
    pt_upstream_conf_t hc = {.balancer = PT_BAL_HASH};
    h.conf = h9.conf = &hc;
    ok(pt_balancer_init(&h) == 0 && pt_balancer_init(&h9) == 0 && h.nring == 10 * 641 && h9.nring == 9 * 641,
       "rings of 641 points per target of weight 100");
    int per[10] = {0}, moved = 0, was_on_removed = 0;
    for (int k = 0; k < 20000; k++) {
        char key[32];
        snprintf(key, sizeof(key), "user-%d", k);
        pt_pick_ctx_t ctx = {pt_str_from(key), 0};
        size_t a = pt_balancer_pick(&h, NULL, &ctx), b = pt_balancer_pick(&h9, NULL, &ctx);
        per[a]++;
        was_on_removed += a == 9;
        moved += a != b;
        if (pt_balancer_pick(&h, NULL, &ctx) != a) {
            ok(0, "the same key goes to the same target");
            break;
        }
    }
    int lo = 20000, hi = 0;
    for (int i = 0; i < 10; i++)
        lo = per[i] < lo ? per[i] : lo, hi = per[i] > hi ? per[i] : hi;
    ok(lo > 1500 && hi < 2500, "keys spread over 10 targets (fewest %d, most %d of 20,000)", lo, hi);
    ok(moved == was_on_removed, "removing a target moves only its own keys (%d moved, %d were on it)", moved,
       was_on_removed);
    ok(moved > 1200 && moved < 2800, "about 1/10 of the keys moved (%d)", moved);
    bool tried10[10] = {false};
    pt_pick_ctx_t kctx = {PT_STR("some-key"), 0};
    size_t first = pt_balancer_pick(&h, NULL, &kctx);
    tried10[first] = true;
    ok(pt_balancer_pick(&h, tried10, &kctx) != first, "a retry goes to the next target on the ring");
    free(h.ring);
    free(h9.ring);
    free(h.targets);
    free(h9.targets);

    /* random-two and least-connections respect weights when idle */
    int w31[] = {300, 100};
    pt_upstream_conf_t rc2 = {.balancer = PT_BAL_RANDOM2}, lc = {.balancer = PT_BAL_LEASTCONN};
    for (int kind = 0; kind < 2; kind++) {
        pt_upstream_t r = make(w31, 2);
        r.conf = kind ? &lc : &rc2;
        pt_balancer_init(&r);
        int cnt[2] = {0};
        for (int k = 0; k < 10000; k++)
            cnt[pt_balancer_pick(&r, NULL, NULL)]++;
        ok(cnt[0] > 7125 && cnt[0] < 7875, "%s: weights 3:1 give %d of 10,000 (75%% within 5%%)",
           kind ? "least-connections" : "random-two", cnt[0]);
        /* under load, the busy one is avoided */
        for (int k = 0; k < 10; k++)
            pt_balancer_start(&r, 0);
        int busy = 0;
        for (int k = 0; k < 1000; k++)
            busy += pt_balancer_pick(&r, NULL, NULL) == 0;
        ok(busy < 100, "%s: a target with 10 attempts under way is avoided (%d of 1,000)",
           kind ? "least-connections" : "random-two", busy);
        free(r.targets);
    }

    /* latency: traffic moves away from the slow target */
    int w11[] = {100, 100, 100};
    pt_upstream_conf_t latc = {.balancer = PT_BAL_LATENCY};
    pt_upstream_t l = make(w11, 3);
    l.conf = &latc;
    pt_balancer_init(&l);
    int64_t now = 1000000;
    for (int k = 0; k < 30; k++, now += 1000) {
        pt_balancer_done(&l, 0, 200000, now); /* 200 ms */
        pt_balancer_done(&l, 1, 5000, now);   /* 5 ms */
        pt_balancer_done(&l, 2, 6000, now);   /* 6 ms */
    }
    int slow = 0;
    for (int k = 0; k < 3000; k++) {
        pt_pick_ctx_t lctx = {PT_STR_NULL, now};
        slow += pt_balancer_pick(&l, NULL, &lctx) == 0;
    }
    ok(slow < 300, "latency: the slow target gets little traffic (%d of 3,000)", slow);
    free(l.targets);

    /* run-time states: a drained, downed or removed target is never picked,
     * not even when every other one was tried; none left: PT_PICK_NONE */
    static const char *const kinds[] = {"round-robin", "least-connections", "consistent-hashing", "latency",
                                        "random-two"};
    int w4[] = {100, 100, 100, 100};
    for (int kind = 0; kind < 5; kind++) {
        pt_upstream_conf_t kc = {.balancer = kind};
        pt_upstream_t x = make(w4, 4);
        x.conf = &kc;
        for (int i = 0; i < 4; i++)
            snprintf(x.targets[i].name, sizeof(x.targets[i].name), "10.0.1.%d:80", i + 1);
        x.targets[1].rt_state = PT_RT_DRAIN;
        x.targets[2].rt_state = PT_RT_DOWN;
        x.targets[3].rt_state = PT_RT_REMOVED;
        x.rt_excluded = 3;
        pt_balancer_init(&x);
        bool tried4[4] = {true, false, false, false};
        int bad = 0;
        for (int k = 0; k < 1000; k++) {
            char key[16];
            pt_pick_ctx_t rctx = {{key, (size_t)snprintf(key, sizeof(key), "k%d", k)}, 1000000};
            bad += pt_balancer_pick(&x, k % 2 ? tried4 : NULL, &rctx) != 0;
        }
        ok(bad == 0, "%s: only the target in service is picked (%d others of 1,000)", kinds[kind], bad);
        x.targets[0].rt_state = PT_RT_DRAIN;
        x.rt_excluded = 4;
        ok(pt_balancer_pick(&x, NULL, NULL) == PT_PICK_NONE, "%s: none in service: no pick", kinds[kind]);
        free(x.ring);
        free(x.targets);
    }
    return done_testing();
}
