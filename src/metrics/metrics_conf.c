/* `metrics:` in the configuration file: the latency histograms' buckets. */
#include "config.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/conf.h"
#include "portico/config-t.h"
#include "portico/schema.h"
#include "portico/value.h"

#define F(type, field) offsetof(type, field)

/* Prometheus's client libraries' default buckets, in seconds. */
static const double default_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

/* One bound: seconds as a number (0.25), or a duration ("250ms"). */
static int bound_of(pt_conf_ctx_t *cc, const pt_node_t *n, double *v)
{
    if (n->type != PT_NODE_SCALAR || !n->len) {
        pt_conf_error(cc, n, "expected a number of seconds or a duration, not %s", pt_node_type_name(n));
        return -1;
    }
    char *end;
    double d = strtod(n->s, &end);
    int64_t ms;
    if (end == n->s || *end) {
        if (pt_value_duration(n->s, &ms)) {
            pt_conf_error(cc, n, "expected a number of seconds (0.25) or a duration (250ms), not \"%s\"", n->s);
            return -1;
        }
        d = (double)ms / 1000;
    }
    if (!isfinite(d) || d <= 0 || d > 86400) {
        pt_conf_error(cc, n, "a bucket is more than 0 and at most 86400 seconds, not \"%s\"", n->s);
        return -1;
    }
    *v = d;
    return 0;
}

static int set_buckets(pt_conf_ctx_t *cc, const pt_node_t *n, void *field)
{
    pt_metrics_conf_t *mc = (pt_metrics_conf_t *)((char *)field - offsetof(pt_metrics_conf_t, buckets));
    if (n->type != PT_NODE_SEQ || n->nitems == 0 || n->nitems > 32) {
        pt_conf_error(cc, n, "expected a list of 1 to 32 upper bounds in seconds, ascending");
        return -1;
    }
    for (size_t i = 0; i < n->nitems; i++) {
        if (bound_of(cc, n->items[i], &mc->buckets[i]) < 0)
            return -1;
        if (i && mc->buckets[i] <= mc->buckets[i - 1]) {
            pt_conf_error(cc, n->items[i], "the buckets must ascend: %s is not above the one before",
                          n->items[i]->s);
            return -1;
        }
    }
    mc->nbuckets = (int64_t)n->nitems;
    return 0;
}

static void print_buckets(FILE *f, const void *field, const pt_list_t *prov)
{
    (void)prov;
    const pt_metrics_conf_t *mc = (const pt_metrics_conf_t *)((const char *)field - offsetof(pt_metrics_conf_t, buckets));
    fputc('[', f);
    for (int64_t i = 0; i < mc->nbuckets; i++)
        fprintf(f, "%s%g", i ? ", " : "", mc->buckets[i]);
    fputc(']', f);
}

static int check_metrics(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    (void)cc;
    (void)n;
    pt_metrics_conf_t *mc = obj;
    if (!mc->nbuckets) {
        memcpy(mc->buckets, default_buckets, sizeof(default_buckets));
        mc->nbuckets = sizeof(default_buckets) / sizeof(default_buckets[0]);
    }
    return 0;
}

static const pt_directive_t metrics_keys[] = {
    {"latency_buckets", PT_T_CUSTOM, F(pt_metrics_conf_t, buckets), NULL, 0, 0, NULL, NULL, NULL, set_buckets,
     print_buckets, 0, "list of seconds",
     "Upper bounds of the buckets of the request and upstream duration histograms, in seconds (0.25) or as "
     "durations (250ms), ascending, at most 32; +Inf is always added. Default: 0.005, 0.01, 0.025, 0.05, 0.1, "
     "0.25, 0.5, 1, 2.5, 5, 10. A reload that changes them starts the histograms again from zero; the "
     "counters keep their values."},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL},
};

const pt_section_t pt_schema_metrics = {"metrics", sizeof(pt_metrics_conf_t), metrics_keys, check_metrics, NULL,
                                        NULL};
