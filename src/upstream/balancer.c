/* Smooth weighted round robin, as nginx does it: every pick adds each
 * target's weight to its current value, takes the largest, and subtracts
 * the total from it.  Weights 5,1,1 give a a b a c a a, spread out rather
 * than in bursts. */
#include "config.h"

#include "portico/upstream.h"

size_t pt_balancer_pick(pt_upstream_t *u, const bool *tried)
{
    size_t best = 0;
    int64_t total = 0;
    bool found = false;
    for (int pass = 0; pass < 2 && !found; pass++) {
        total = 0;
        for (size_t i = 0; i < u->ntargets; i++) {
            pt_target_t *t = &u->targets[i];
            if (pass == 0 && tried && tried[i])
                continue; /* first look only at targets not tried yet */
            t->current += t->weight;
            total += t->weight;
            if (!found || t->current > u->targets[best].current) {
                best = i;
                found = true;
            }
        }
    }
    u->targets[best].current -= total;
    return best;
}
