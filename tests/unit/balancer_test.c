#include "config.h"

#include <stdlib.h>

#include "../unit/tap.h"
#include "portico/upstream.h"

static pt_upstream_t make(const int *weights, size_t n)
{
    pt_upstream_t u = {.ntargets = n, .targets = calloc(n, sizeof(pt_target_t))};
    for (size_t i = 0; i < n; i++)
        u.targets[i].weight = weights[i];
    return u;
}

int main(void)
{
    int w1[] = {5, 1, 1};
    pt_upstream_t u = make(w1, 3);
    char seq[8] = "";
    for (int i = 0; i < 7; i++)
        seq[i] = (char)('a' + pt_balancer_pick(&u, NULL));
    is_str(seq, "aabacaa", "smooth weighted round robin spreads 5,1,1 as nginx does");

    int w2[] = {100, 50, 25, 1};
    pt_upstream_t v = make(w2, 4);
    int count[4] = {0};
    for (int i = 0; i < 176 * 100; i++)
        count[pt_balancer_pick(&v, NULL)]++;
    ok(count[0] == 10000 && count[1] == 5000 && count[2] == 2500 && count[3] == 100,
       "exact shares over whole cycles (%d %d %d %d)", count[0], count[1], count[2], count[3]);

    bool tried[4] = {true, false, true, false};
    int seen[4] = {0};
    for (int i = 0; i < 100; i++)
        seen[pt_balancer_pick(&v, tried)]++;
    ok(seen[0] == 0 && seen[2] == 0 && seen[1] > 0 && seen[3] > 0, "targets already tried are skipped");
    bool all[4] = {true, true, true, true};
    size_t pick = pt_balancer_pick(&v, all);
    ok(pick < 4, "when every target was tried, one is still chosen");

    int w3[] = {1};
    pt_upstream_t one = make(w3, 1);
    bool t1[1] = {true};
    is_int(pt_balancer_pick(&one, t1), 0, "a single target is chosen even when tried");
    free(u.targets);
    free(v.targets);
    free(one.targets);
    return done_testing();
}
