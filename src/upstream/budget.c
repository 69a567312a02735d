/* The retry budget, per worker and upstream: over the last 10 seconds,
 * retries may not pass `percent` of the requests plus `min_per_second`
 * for each second, as Linkerd's and Envoy's budgets do.  When an upstream
 * fails, this is what keeps every request from becoming 1 + retries. */
#include "config.h"

#include <string.h>

#include "portico/log.h"
#include "portico/metrics.h"
#include "portico/upstream.h"

#define WINDOW 10

static void advance(struct pt_budget *b, int64_t sec)
{
    if (sec - b->sec >= WINDOW) {
        memset(b->requests, 0, sizeof(b->requests));
        memset(b->retries, 0, sizeof(b->retries));
    } else {
        for (int64_t s = b->sec + 1; s <= sec; s++) {
            b->requests[s % WINDOW] = 0;
            b->retries[s % WINDOW] = 0;
        }
    }
    if (sec > b->sec)
        b->sec = sec;
}

void pt_budget_request(pt_upstream_t *u, int64_t now_ms)
{
    advance(&u->budget, now_ms / 1000);
    u->budget.requests[u->budget.sec % WINDOW]++;
}

bool pt_budget_retry(pt_upstream_t *u, int64_t now_ms)
{
    struct pt_budget *b = &u->budget;
    advance(b, now_ms / 1000);
    uint64_t requests = 0, retries = 0;
    for (int i = 0; i < WINDOW; i++) {
        requests += b->requests[i];
        retries += b->retries[i];
    }
    uint64_t allowed = (uint64_t)u->conf->retry_budget.min_per_second * WINDOW +
                       requests * (uint64_t)u->conf->retry_budget.percent / 100;
    if (retries >= allowed) {
        pt_mx_add(pt_mx_upstream(u->conf), PT_MXW_UP_REFUSED, 1);
        if (b->refused++ % 1000 == 0) /* the first, and one in a thousand */
            pt_log_warn("upstream \"%s\": retry budget spent (%llu retries for %llu requests in %d s); "
                        "failures are passed on",
                        u->conf->name, (unsigned long long)retries, (unsigned long long)requests, WINDOW);
        return false;
    }
    b->retries[b->sec % WINDOW]++;
    b->retried++;
    return true;
}
