/* The metrics zone's bookkeeping in one process, playing master and
 * workers in turn: blocks taken and folded, rows kept and freed across
 * "reloads", a zone replaced and folded in, a failed reload going back,
 * and the (method, status) pairs past what a row holds. */
#include "config.h"

#include <stdlib.h>

#include "../unit/tap.h"
#include "portico/config.h"
#include "portico/http.h"
#include "portico/metrics.h"
#include "portico/zone.h"

static pt_config_t *load(const char *text)
{
    pt_diag_t d;
    pt_diag_init(&d);
    pt_config_t *c = pt_config_load_text("p.yaml", text, strlen(text), &d);
    pt_diag_free(&d);
    return c;
}

/* routes r0..r(n-1) */
static pt_config_t *routes(int n, const char *first)
{
    char *text = malloc(64 + (size_t)n * 96);
    int k = sprintf(text, "listeners: [{ address: \"127.0.0.1:8080\" }]\nroutes:\n");
    for (int i = 0; i < n; i++)
        k += sprintf(text + k, "  - { name: %s%d, match: { paths: [\"/%d\"] }, respond: { status: 200 } }\n",
                     i ? "r" : first, i, i);
    pt_config_t *c = load(text);
    free(text);
    return c;
}

static uint64_t requests(const char *route)
{
    pt_mx_zone_t *z = pt_metrics_zone();
    char l1[256], l2[256];
    for (uint32_t r = 0; r < pt_metrics_rows(z); r++)
        if (pt_metrics_row(z, r, l1, sizeof(l1), l2, sizeof(l2)) == PT_MXK_ROUTE && !strcmp(l1, route)) {
            uint64_t keys[64], counts[64], n = 0;
            int k = pt_metrics_codes(z, r, keys, counts, 64);
            for (int i = 0; i < k; i++)
                n += counts[i];
            return n;
        }
    return UINT64_MAX; /* no such row */
}

/* A "worker" of the configuration prepared last counts n requests on route i. */
static void serve(int block, size_t route, int n, int status)
{
    pt_metrics_attach(block);
    for (int i = 0; i < n; i++)
        pt_metrics_request(pt_mx_route(route), PT_M_GET, status, 1000, 10, 20, PT_MX_NONE, -1);
    pt_mx.block = NULL;
}

int main(void)
{
    pt_config_t *c1 = routes(3, "a");
    ok(c1 && pt_metrics_prepare(c1, 2) == 0, "a zone for the first configuration");
    void *z1, *zb;
    int b1 = pt_metrics_take_block(&z1), b2 = pt_metrics_take_block(&zb);
    ok(b1 >= 2 && b2 >= 2 && b1 != b2 && z1 == zb, "two workers, a block each (%d, %d)", b1, b2);
    serve(b1, 0, 5, 200);
    serve(b2, 0, 7, 200);
    serve(b2, 1, 2, 404);
    is_int(requests("a0"), 12, "a scrape sums both blocks");
    pt_metrics_fold(z1, b1);
    is_int(requests("a0"), 12, "a worker that exited: its counts folded into the retired block");
    void *z3;
    int b3 = pt_metrics_take_block(&z3);
    is_int(b3, b1, "its block is free again");
    serve(b3, 0, 1, 200);
    is_int(requests("a0"), 13, "and counts from zero for the next worker");

    /* a reload that keeps a0 and r1, drops r2 and adds r3 */
    pt_config_t *c2 = load("listeners: [{ address: \"127.0.0.1:8080\" }]\nroutes:\n"
                           "  - { name: a0, match: { paths: [/0] }, respond: { status: 200 } }\n"
                           "  - { name: r1, match: { paths: [/1] }, respond: { status: 200 } }\n"
                           "  - { name: r3, match: { paths: [/3] }, respond: { status: 200 } }\n");
    ok(pt_metrics_prepare(c2, 2) == 0 && pt_metrics_zone() && z3 == (void *)pt_metrics_zone(), "the zone is kept");
    void *z4;
    int b4 = pt_metrics_take_block(&z4);
    serve(b4, 2, 4, 200);
    is_int(requests("a0"), 13, "a kept route keeps its count");
    is_int(requests("r3"), 4, "a new route counts");
    is_int(requests("r2"), 0, "a dropped route is there while old workers may count into it");
    pt_metrics_fold(zb, b2);
    pt_metrics_fold(z3, b3);
    pt_metrics_tidy();
    is_int(requests("r2"), UINT64_MAX, "and gone once they exited");
    is_int(requests("a0"), 13, "still 13");
    is_int(requests("r1"), 2, "404s of r1 kept");

    /* a reload past the zone's rows: another zone, the old one added in */
    pt_metrics_attach(b4);
    uint64_t *old_block = pt_mx.block; /* the old worker's, forked before the reload */
    pt_config_t *c3 = routes(300, "a");
    ok(pt_metrics_prepare(c3, 2) == 0 && (void *)pt_metrics_zone() != z4, "300 routes: a bigger zone");
    is_int(pt_metrics_rows(pt_metrics_zone()) >= 600, 1, "room for twice the rows");
    pt_mx.block = old_block; /* the old worker counts on in its own zone (r3 is route 3 in both files) */
    pt_metrics_request(pt_mx_route(3), PT_M_GET, 200, 1000, 10, 20, PT_MX_NONE, -1);
    pt_mx.block = NULL;
    is_int(requests("a0"), 13, "the old zone's retired block is added in");
    is_int(requests("r3"), 5, "and the old worker's block, while it lives");
    void *z5;
    int b5 = pt_metrics_take_block(&z5);
    ok(z5 == (void *)pt_metrics_zone() && z5 != z4, "a new worker counts in the new zone");
    serve(b5, 299, 3, 200);
    pt_metrics_fold(z4, b4);
    is_int(requests("r3"), 5, "a fold in the old zone changes no sum");
    pt_metrics_tidy();
    is_int(requests("r3"), 5, "the old zone folded in whole");
    is_int(requests("r299"), 3, "r299");

    /* a reload that grows and fails: back to the serving zone */
    void *serving = pt_metrics_zone();
    pt_config_t *c4 = routes(1500, "a");
    unsigned long mark = pt_zone_mark();
    ok(pt_metrics_prepare(c4, 2) == 0 && (void *)pt_metrics_zone() != serving, "1500 routes: a bigger zone again");
    void *z6;
    int b6 = pt_metrics_take_block(&z6);
    serve(b6, 1400, 2, 200);
    pt_zone_abandon(mark);
    pt_metrics_abandon();
    ok(pt_metrics_prepare(c3, 2) == 0 && (void *)pt_metrics_zone() == serving, "a failed reload: the serving zone");
    is_int(requests("r3"), 5, "its counts intact");
    pt_metrics_fold(z6, b6); /* the failed generation's worker exits */
    pt_metrics_tidy();
    pt_zone_sweep();
    is_int(requests("r1400"), UINT64_MAX, "the failed file's routes are gone");
    is_int(requests("r299"), 3, "the serving ones stay");

    /* (method, status) pairs past what a row holds */
    void *z7;
    int b7 = pt_metrics_take_block(&z7);
    pt_metrics_attach(b7);
    for (int s = 100; s < 200; s++)
        pt_metrics_request(pt_mx_route(5), PT_M_POST, s, 10, 0, 0, PT_MX_NONE, -1);
    pt_mx.block = NULL;
    {
        uint64_t keys[64], counts[64], n = 0;
        pt_mx_zone_t *z = pt_metrics_zone();
        char l1[256], l2[256];
        int k = 0;
        for (uint32_t r = 0; r < pt_metrics_rows(z); r++)
            if (pt_metrics_row(z, r, l1, sizeof(l1), l2, sizeof(l2)) == PT_MXK_ROUTE && !strcmp(l1, "r5"))
                k = pt_metrics_codes(z, r, keys, counts, 64);
        for (int i = 0; i < k; i++)
            n += counts[i];
        is_int(k, PT_MX_CODES, "100 statuses: as many pairs as a row holds");
        is_int(keys[k - 1], UINT32_MAX, "the last one is \"other\"");
        is_int(n, 100, "and nothing is lost");
    }
    pt_config_free(c1);
    pt_config_free(c2);
    pt_config_free(c4);
    printf("1..%d\n", tap_n);
    return tap_failed != 0;
}
