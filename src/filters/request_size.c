/* request-size: 413 for a request body larger than `max`.  A declared
 * Content-Length is refused before anything is read; a chunked body is cut
 * by the proxy once it passes the limit. */
#include "config.h"

#include <stddef.h>

#include "portico/conn.h"
#include "portico/filter.h"
#include "portico/http.h"
#include "portico/request.h"
#include "portico/schema.h"

typedef struct conf {
    const pt_node_t *node;
    int64_t max;
} conf_t;

static const pt_directive_t keys[] = {
    {"max", PT_T_SIZE, offsetof(conf_t, max), NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, PT_F_REQUIRED, NULL,
     "The largest request body accepted."},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL},
};
static const pt_section_t schema = {"request-size", sizeof(conf_t), keys, NULL, NULL,
                                    "Refuses request bodies over a size with 413."};

typedef struct state {
    int64_t seen;
} state_t;

static pt_verdict_t on_request(pt_conn_t *c, const pt_h1_req_t *req, const void *vconf, pt_fx_t *fx, void *st)
{
    const conf_t *conf = vconf;
    if (req->content_length > conf->max) {
        c->closing = true; /* the body is not read: nothing can follow it */
        pt_req_respond(c, 413, "text/plain", "413 Content Too Large\n", 22, NULL, false);
        return PT_RESPOND;
    }
    return PT_NEXT;
}

/* A chunked body has no length up front: it is counted as it streams. */
static pt_verdict_t on_body(pt_conn_t *c, const void *vconf, pt_fx_t *fx, void *vst, size_t n, bool last)
{
    const conf_t *conf = vconf;
    state_t *st = vst;
    st->seen += (int64_t)n;
    if (st->seen > conf->max) {
        fx->reject = 413;
        return PT_RESPOND;
    }
    return PT_NEXT;
}

const pt_filter_t pt_filter_request_size = {.name = "request-size", .schema = &schema, .state_size = sizeof(state_t),
                                            .on_request = on_request, .on_body = on_body};
