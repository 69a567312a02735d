/* request-size: 413 for a request body larger than `max`.  A declared
 * Content-Length is refused before anything is read; a chunked body is cut
 * by the proxy once it passes the limit. */
#include "config.h"

#include <stddef.h>

#include "portico/conn.h"
#include "portico/filter.h"
#include "portico/http.h"
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

static pt_verdict_t on_request(pt_conn_t *c, const pt_h1_req_t *req, const void *vconf, pt_fx_t *fx)
{
    const conf_t *conf = vconf;
    if (req->content_length > conf->max) {
        c->closing = true; /* the body is not read: nothing can follow it */
        pt_conn_respond(c, 413, "text/plain", "413 Content Too Large\n", 22, NULL, false);
        return PT_RESPOND;
    }
    fx->max_body = conf->max;
    return PT_NEXT;
}

const pt_filter_t pt_filter_request_size = {"request-size", &schema, on_request, NULL};
