/* router_bench: nanoseconds per route lookup at 10, 1,000, 10,000 and
 * 100,000 routes, and the time to load each configuration (YAML parse,
 * validation and router build).  Built by `make`, not run by `make check`:
 *   build/tests/bench/router_bench [lookups]
 *
 * Two figures per size: "same 10" requests the same number of distinct
 * routes (10) whatever the table size, which isolates the cost of the
 * algorithm; "spread" requests 4,096 distinct routes (fewer when the table
 * is smaller), where a large table also costs cache misses. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "portico/config.h"
#include "portico/http.h"
#include "portico/router.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A mix a gateway sees: exact paths, parameters, prefixes, some hosts. */
static void route_path(int i, char *buf, size_t size)
{
    switch (i % 4) {
    case 0:
        snprintf(buf, size, "/api/v%d/svc%d/items", i % 7, i);
        break;
    case 1:
        snprintf(buf, size, "/api/v%d/svc%d/items/:id", i % 7, i);
        break;
    case 2:
        snprintf(buf, size, "/static/app%d/*", i);
        break;
    default:
        snprintf(buf, size, "/users/:uid/app%d/orders/:oid", i);
    }
}

static void request_path(int i, char *buf, size_t size)
{
    switch (i % 4) {
    case 0:
        snprintf(buf, size, "/api/v%d/svc%d/items", i % 7, i);
        break;
    case 1:
        snprintf(buf, size, "/api/v%d/svc%d/items/12345", i % 7, i);
        break;
    case 2:
        snprintf(buf, size, "/static/app%d/js/main.js", i);
        break;
    default:
        snprintf(buf, size, "/users/42/app%d/orders/777", i);
    }
}

int main(int argc, char **argv)
{
    static const int sizes[] = {10, 1000, 10000, 100000};
    int lookups = argc > 1 ? atoi(argv[1]) : 2000000;
    printf("%-8s %10s %10s %9s %10s %9s %7s\n", "routes", "load ms", "same 10", "vs 10", "spread", "vs 10",
           "found");
    double base = 0, base_spread = 0;
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        int n = sizes[s];
        size_t cap = (size_t)n * 160 + 256, len = 0;
        char *y = malloc(cap);
        len += (size_t)snprintf(y, cap, "listeners: [{ address: 127.0.0.1:1 }]\nroutes:\n");
        for (int i = 0; i < n; i++) {
            char p[96];
            route_path(i, p, sizeof(p));
            const char *host = i % 10 == 9 ? "hosts: [api.example.com], " : "";
            len += (size_t)snprintf(y + len, cap - len, "  - { name: r%d, match: { %spaths: [\"%s\"] }, respond: {} }\n",
                                    i, host, p);
        }
        pt_diag_t d;
        pt_diag_init(&d);
        double t0 = now();
        pt_config_t *c = pt_config_load_text("bench.yaml", y, len, &d);
        pt_router_t *r = c ? pt_router_build(c) : NULL;
        double load = now() - t0;
        if (!r) {
            pt_diag_print(&d, stderr);
            return 1;
        }
        /* the requests, made before timing */
        double per[2];
        long found = 0;
        char **paths = malloc(sizeof(char *) * 4096);
        for (int pass = 0; pass < 2; pass++) {
            unsigned distinct = pass == 0 ? 10 : 4096;
            for (int k = 0; k < 4096; k++) {
                if (pass == 0)
                    paths[k] = malloc(96);
                unsigned which = ((unsigned)k % distinct) * 2654435761u % (unsigned)n;
                request_path((int)which, paths[k], 96);
            }
            pt_str_t host = PT_STR("api.example.com");
            found = 0;
            double t1 = now();
            for (int k = 0; k < lookups; k++) {
                pt_route_match_t m;
                found += pt_router_lookup(r, host, pt_str_from(paths[k & 4095]), PT_M_GET, NULL, &m);
            }
            per[pass] = (now() - t1) * 1e9 / lookups;
        }
        if (!base)
            base = per[0];
        if (!base_spread)
            base_spread = per[1];
        printf("%-8d %10.1f %10.1f %8.2fx %10.1f %8.2fx %6.0f%%\n", n, load * 1000, per[0], per[0] / base, per[1],
               per[1] / base_spread, 100.0 * (double)found / lookups);
        for (int k = 0; k < 4096; k++)
            free(paths[k]);
        free(paths);
        pt_router_free(r);
        pt_config_free(c);
        pt_diag_free(&d);
        free(y);
    }
    return 0;
}
