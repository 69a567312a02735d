/* circuit-breaker (in the spirit of APISIX's api-breaker): after `failures`
 * failing responses in a row the route's circuit opens and requests get
 * `status` at once, without reaching the upstream; after `break_duration`
 * it half-opens and lets requests through; `successes` in a row close it,
 * a failure opens it again.  The state lives in a shared zone keyed by the
 * route's name: every worker agrees, and a reload keeps it. */
#include "config.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "portico/conn.h"
#include "portico/filter.h"
#include "portico/http.h"
#include "portico/log.h"
#include "portico/request.h"
#include "portico/schema.h"
#include "portico/zone.h"

enum { CLOSED, OPEN, HALF_OPEN };

typedef struct breaker {
    char route[96]; /* "" = a free slot */
    _Atomic int state;
    _Atomic int32_t failures, successes;
    _Atomic int64_t open_until_ms;
} breaker_t;
_Static_assert(offsetof(breaker_t, route) == 0, "pt_zone_slot keys come first");

typedef struct conf {
    const pt_node_t *node;
    int64_t failures, successes, break_duration, status;
    pt_list_t statuses; /* int64_t */
    char *message;
} conf_t;

typedef struct state {
    bool refused; /* this request was answered by the breaker itself */
} state_t;

static pt_zone_t *zone; /* made by the master, inherited by the workers */

static breaker_t *slot(const char *route, bool claim)
{
    return pt_zone_slot(zone, sizeof(breaker_t), sizeof(((breaker_t *)0)->route), route, claim);
}

int pt_filters_prepare(const pt_config_t *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->routes.n; i++) {
        const pt_route_conf_t *r = PT_LIST_AT(c->routes, pt_route_conf_t, i);
        n += r->fconf && r->fconf[PT_FILTER_CIRCUIT_BREAKER];
    }
    size_t slots = 16;
    while (slots < n * 2)
        slots *= 2;
    pt_zone_t *z = pt_zone_get("circuit-breakers", slots * sizeof(breaker_t));
    if (!z)
        return -1;
    zone = z;
    pt_zone_lock(z);
    for (size_t i = 0; i < c->routes.n; i++) {
        const pt_route_conf_t *r = PT_LIST_AT(c->routes, pt_route_conf_t, i);
        if (r->fconf && r->fconf[PT_FILTER_CIRCUIT_BREAKER])
            slot(r->name, true);
    }
    pt_zone_unlock(z);
    return 0;
}

static const pt_directive_t keys[] = {
    {"failures", PT_T_INT, offsetof(conf_t, failures), "3", 1, 100000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Failing responses in a row that open the circuit."},
    {"break_duration", PT_T_DURATION, offsetof(conf_t, break_duration), "10s", 1, 86400000, NULL, NULL, NULL, NULL,
     NULL, 0, NULL, "How long the circuit stays open before it half-opens."},
    {"successes", PT_T_INT, offsetof(conf_t, successes), "3", 1, 100000, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "Good responses in a row, half-open, that close it."},
    {"statuses", PT_T_LIST, offsetof(conf_t, statuses), NULL, 0, 0, NULL, NULL, &pt_schema_status_elem, NULL, NULL,
     0, "list of integers", "Statuses that count as failures. Empty: 500, 502, 503 and 504."},
    {"status", PT_T_INT, offsetof(conf_t, status), "503", 200, 599, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The answer while the circuit is open."},
    {"message", PT_T_STR, offsetof(conf_t, message), "503 Service Unavailable (circuit open)", 0, 0, NULL, NULL, NULL,
     NULL, NULL, 0, NULL, "Its body."},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL},
};
static const pt_section_t schema = {"circuit-breaker", sizeof(conf_t), keys, NULL, NULL,
                                    "Stops sending a failing route's requests upstream for a while."};

static int64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static pt_verdict_t on_request(pt_conn_t *c, const pt_h1_req_t *req, const void *vconf, pt_fx_t *fx, void *vst)
{
    const conf_t *conf = vconf;
    state_t *st = vst;
    breaker_t *b = c->req->match.route ? slot(c->req->match.route->name, false) : NULL;
    if (!b || atomic_load(&b->state) != OPEN)
        return PT_NEXT;
    if (now_ms() < atomic_load(&b->open_until_ms)) {
        st->refused = true;
        pt_req_respond(c, (int)conf->status, "text/plain", conf->message, strlen(conf->message), NULL,
                        req->method_bit == PT_M_HEAD);
        return PT_RESPOND;
    }
    int open = OPEN;
    if (atomic_compare_exchange_strong(&b->state, &open, HALF_OPEN)) {
        atomic_store(&b->successes, 0);
        pt_log_warn("route \"%s\": circuit half-open, letting requests through", b->route);
    }
    return PT_NEXT;
}

static bool failing(const conf_t *conf, int status)
{
    if (!conf->statuses.n)
        return status == 500 || status == 502 || status == 503 || status == 504;
    return pt_list_has_int(&conf->statuses, status);
}

static void open_circuit(breaker_t *b, const conf_t *conf, int from, const char *why)
{
    atomic_store(&b->open_until_ms, now_ms() + conf->break_duration);
    if (atomic_compare_exchange_strong(&b->state, &from, OPEN))
        pt_log_warn("route \"%s\": circuit open for %lld ms (%s)", b->route, (long long)conf->break_duration, why);
    atomic_store(&b->failures, 0);
}

/* The final status of the request, whoever made it (502 and 504 from
 * Portico itself count), moves the breaker. */
static void on_done(pt_conn_t *c, const void *vconf, pt_fx_t *fx, void *vst)
{
    const conf_t *conf = vconf;
    state_t *st = vst;
    breaker_t *b = c->req->match.route ? slot(c->req->match.route->name, false) : NULL;
    if (!b || (st && st->refused) || !c->req->ent.status)
        return;
    int state = atomic_load(&b->state);
    bool bad = failing(conf, c->req->ent.status);
    if (state == HALF_OPEN) {
        if (bad) {
            open_circuit(b, conf, HALF_OPEN, "a failure while half-open");
        } else if (atomic_fetch_add(&b->successes, 1) + 1 >= conf->successes) {
            int half = HALF_OPEN;
            if (atomic_compare_exchange_strong(&b->state, &half, CLOSED))
                pt_log_warn("route \"%s\": circuit closed", b->route);
        }
    } else if (state == CLOSED) {
        if (!bad)
            atomic_store(&b->failures, 0);
        else if (atomic_fetch_add(&b->failures, 1) + 1 >= conf->failures)
            open_circuit(b, conf, CLOSED, "failures in a row");
    }
}

const pt_filter_t pt_filter_circuit_breaker = {.name = "circuit-breaker", .schema = &schema,
                                               .state_size = sizeof(state_t), .on_request = on_request,
                                               .on_done = on_done};

int pt_circuit_breaker_state(const char *route)
{
    breaker_t *b = zone ? slot(route, false) : NULL;
    return b ? atomic_load(&b->state) : -1;
}
