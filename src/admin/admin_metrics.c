/* GET /metrics on the admin listener.  The body is made in slices of at
 * most SLICE_US each, one per turn of the worker's loop, while the
 * request waits as a filter's would (the connection is not read
 * meanwhile); then it is sent from the buffer it was made in, without a
 * copy. */
#include "config.h"

#include <event2/event.h>
#include <stdlib.h>

#include "portico/admin.h"
#include "portico/conn.h"
#include "portico/http.h"
#include "portico/log.h"
#include "portico/request.h"
#include "portico/scrape.h"

#define SLICE_US 250

struct pt_scrape_job {
    pt_conn_t *c;
    pt_scrape_t *s;
    struct event ev;
    int rc; /* of the last step: 1 done, -1 out of memory */
};

/* Frees the body once the queue has sent it (or dropped it). */
typedef struct held_body {
    pt_outq_hold_t hold;
    char *body;
} held_body_t;

static void release_body(pt_outq_hold_t *h, bool sent)
{
    (void)sent;
    held_body_t *hb = (held_body_t *)h;
    free(hb->body);
    free(hb);
}

static void on_slice(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pt_scrape_job *j = arg;
    j->rc = pt_scrape_step(j->s, SLICE_US);
    if (j->rc == 0) {
        static const struct timeval now = {0, 0};
        evtimer_add(&j->ev, &now); /* after the loop has looked at the sockets again */
        return;
    }
    pt_req_resume(j->c);
}

void pt_admin_scrape_end(pt_req_t *r)
{
    struct pt_scrape_job *j = r->scrape;
    if (!j)
        return;
    event_del(&j->ev);
    pt_scrape_free(j->s);
    free(j);
    r->scrape = NULL;
}

static void respond(pt_conn_t *c, pt_scrape_t *s, bool head)
{
    size_t len;
    char *body = pt_scrape_body(s, &len);
    held_body_t *hb = body ? malloc(sizeof(*hb)) : NULL;
    if (!hb) {
        free(body);
        pt_req_respond(c, 500, "text/plain", "500 Internal Server Error (out of memory)\n", 42, NULL, head);
        return;
    }
    *hb = (held_body_t){.hold.release = release_body, .body = body};
    unsigned slices;
    int64_t longest;
    pt_scrape_slices(s, &slices, &longest);
    char extra[96]; /* what the scrape cost the worker's loop, for the benchmark and the curious */
    snprintf(extra, sizeof(extra), "Cache-Control: no-store\r\nX-Scrape-Slices: %u, longest %lld us\r\n", slices,
             (long long)longest);
    pt_req_respond_held(c, 200, "text/plain; version=0.0.4; charset=utf-8", body, len, extra, head, &hb->hold);
}

bool pt_admin_metrics(pt_conn_t *c, const pt_h1_req_t *req)
{
    if (!pt_str_eq(req->path, PT_STR("/metrics")))
        return false;
    bool head = req->method_bit == PT_M_HEAD;
    pt_req_t *r = c->req;
    if (req->method_bit != PT_M_GET && !head) {
        pt_req_respond(c, 405, "text/plain", "405 Method Not Allowed\n", 23, "Allow: GET, HEAD\r\n", false);
        return true;
    }
    if (r->scrape) { /* resumed: the body is made */
        struct pt_scrape_job *j = r->scrape;
        if (j->rc < 0)
            pt_req_respond(c, 500, "text/plain", "500 Internal Server Error (out of memory)\n", 42, NULL, head);
        else
            respond(c, j->s, head);
        pt_admin_scrape_end(r);
        return true;
    }
    pt_scrape_t *s = pt_scrape_new(c->w);
    int rc = s ? pt_scrape_step(s, SLICE_US) : -1;
    if (rc != 0) {
        if (rc > 0)
            respond(c, s, head);
        else
            pt_req_respond(c, 500, "text/plain", "500 Internal Server Error (out of memory)\n", 42, NULL, head);
        pt_scrape_free(s);
        return true;
    }
    struct pt_scrape_job *j = malloc(sizeof(*j));
    if (!j) {
        pt_scrape_free(s);
        pt_req_respond(c, 500, "text/plain", "500 Internal Server Error (out of memory)\n", 42, NULL, head);
        return true;
    }
    *j = (struct pt_scrape_job){.c = c, .s = s};
    evtimer_assign(&j->ev, c->w->base, on_slice, j);
    static const struct timeval now = {0, 0};
    evtimer_add(&j->ev, &now);
    r->scrape = j;
    c->state = PT_CS_FILTER; /* waits as a filter would: pt_req_resume brings it back here */
    return true;
}
