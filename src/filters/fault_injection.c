/* fault-injection (as APISIX has it): delays a share of requests, and
 * aborts a share with a status, to test how clients cope.  The delay
 * suspends the pipeline on a timer and resumes it; a client that goes away
 * meanwhile ends the request, and on_done drops the timer.  Where the
 * delay falls (delay.on, as Chaos Mesh's HTTPChaos targets a request or a
 * response): before the request goes on (its head), before the end of its
 * body goes upstream, or before the upstream's response head reaches the
 * client. */
#include "config.h"

#include <event2/event.h>
#include <openssl/rand.h>
#include <stddef.h>
#include <string.h>

#include "portico/conn.h"
#include "portico/filter.h"
#include "portico/http.h"
#include "portico/request.h"
#include "portico/schema.h"

typedef struct conf {
    const pt_node_t *node;
    struct {
        const pt_node_t *node;
        int64_t status;
        char *body;
        int64_t percentage;
    } abort;
    struct {
        const pt_node_t *node;
        int64_t duration;
        int64_t percentage;
        int on;
    } delay;
} conf_t;

enum { ON_REQUEST, ON_BODY, ON_RESPONSE };
static const char *const on_names[] = {"request", "body", "response", NULL};

typedef struct state {
    struct event timer;
    bool armed;
    bool rolled, hit; /* the delay's percentage, rolled once per request */
    bool waited;      /* the delay is over */
    pt_conn_t *c;
} state_t;

static int check(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj)
{
    conf_t *c = obj;
    if (!c->abort.node && !c->delay.node) {
        pt_conf_error(cc, n, "fault-injection needs abort or delay");
        return -1;
    }
    return 0;
}

#define AF(f) (offsetof(conf_t, abort.f) - offsetof(conf_t, abort))
#define DF(f) (offsetof(conf_t, delay.f) - offsetof(conf_t, delay))
static const pt_directive_t abort_keys[] = {
    {"status", PT_T_INT, AF(status), NULL, 200, 599, NULL, NULL, NULL, NULL, NULL, PT_F_REQUIRED, NULL,
     "The status answered instead of going on."},
    {"body", PT_T_STR, AF(body), "", 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, "The body of that answer."},
    {"percentage", PT_T_INT, AF(percentage), "100", 0, 100, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The share of requests aborted."},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL},
};
static const pt_directive_t delay_keys[] = {
    {"duration", PT_T_DURATION, DF(duration), NULL, 1, 3600000, NULL, NULL, NULL, NULL, NULL, PT_F_REQUIRED, NULL,
     "How long a request waits before it goes on."},
    {"percentage", PT_T_INT, DF(percentage), "100", 0, 100, NULL, NULL, NULL, NULL, NULL, 0, NULL,
     "The share of requests delayed."},
    {"on", PT_T_ENUM, DF(on), "request", 0, 0, on_names, NULL, NULL, NULL, NULL, 0, NULL,
     "Where the delay falls: request (before the request goes on), body (before the end of a request body "
     "goes upstream; a request without a body is not delayed), response (before the upstream's response "
     "head reaches the client; not Portico's own answers, a 101 or a gRPC call). Each counts against "
     "the listener's timeouts.filters."},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL},
};
static const pt_section_t abort_section = {"abort", sizeof(((conf_t *)0)->abort), abort_keys, NULL, NULL, NULL};
static const pt_section_t delay_section = {"delay", sizeof(((conf_t *)0)->delay), delay_keys, NULL, NULL, NULL};

static const pt_directive_t keys[] = {
    {"abort", PT_T_SECTION, offsetof(conf_t, abort), NULL, 0, 0, NULL, &abort_section, NULL, NULL, NULL,
     PT_F_OPTIONAL, NULL, "Answer a share of requests with a status."},
    {"delay", PT_T_SECTION, offsetof(conf_t, delay), NULL, 0, 0, NULL, &delay_section, NULL, NULL, NULL,
     PT_F_OPTIONAL, NULL, "Hold a share of requests for a while (before any abort)."},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL},
};
static const pt_section_t schema = {"fault-injection", sizeof(conf_t), keys, check, NULL,
                                    "Delays or aborts a share of requests (chaos testing)."};

static bool roll(int64_t percentage)
{
    unsigned char b[2];
    if (percentage >= 100)
        return true;
    if (percentage <= 0 || RAND_bytes(b, 2) != 1)
        return false;
    return ((b[0] << 8 | b[1]) % 100) < percentage;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    state_t *st = arg;
    st->armed = false;
    st->waited = true;
    pt_req_resume(st->c);
}

/* The delay, once, where the configuration says: true when it starts now
 * (the hook then suspends). */
static bool delay_now(pt_conn_t *c, const conf_t *conf, state_t *st, int where)
{
    if (!conf->delay.node || conf->delay.on != where || st->waited || st->armed)
        return false;
    if (!st->rolled) {
        st->rolled = true;
        st->hit = roll(conf->delay.percentage);
    }
    if (!st->hit)
        return false;
    st->c = c;
    evtimer_assign(&st->timer, c->w->base, on_timer, st);
    struct timeval tv = {conf->delay.duration / 1000, (conf->delay.duration % 1000) * 1000};
    evtimer_add(&st->timer, &tv);
    st->armed = true;
    return true;
}

static pt_verdict_t on_request(pt_conn_t *c, const pt_h1_req_t *req, const void *vconf, pt_fx_t *fx, void *vst)
{
    const conf_t *conf = vconf;
    state_t *st = vst;
    if (delay_now(c, conf, st, ON_REQUEST))
        return PT_SUSPEND; /* this hook runs again after the delay, for the abort part */
    st->c = c;
    if (conf->abort.node && roll(conf->abort.percentage)) {
        pt_req_respond(c, (int)conf->abort.status, "text/plain", conf->abort.body, strlen(conf->abort.body), NULL,
                       req->method_bit == PT_M_HEAD);
        return PT_RESPOND;
    }
    return PT_NEXT;
}

static pt_verdict_t on_body(pt_conn_t *c, const void *vconf, pt_fx_t *fx, void *vst, size_t n, bool last)
{
    return last && delay_now(c, vconf, vst, ON_BODY) ? PT_SUSPEND : PT_NEXT;
}

static pt_verdict_t on_response(pt_conn_t *c, const void *vconf, pt_fx_t *fx, void *vst, int status)
{
    return fx->can_wait && delay_now(c, vconf, vst, ON_RESPONSE) ? PT_SUSPEND : PT_NEXT;
}

static void on_done(pt_conn_t *c, const void *conf, pt_fx_t *fx, void *vst)
{
    state_t *st = vst;
    if (st && st->armed) { /* the client left while the request waited */
        evtimer_del(&st->timer);
        st->armed = false;
    }
}

const pt_filter_t pt_filter_fault_injection = {.name = "fault-injection", .schema = &schema,
                                               .state_size = sizeof(state_t), .on_request = on_request,
                                               .on_body = on_body, .on_response = on_response, .on_done = on_done};
