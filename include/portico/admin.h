/* The admin API, served by every worker on the admin listener. */
#ifndef PORTICO_ADMIN_H
#define PORTICO_ADMIN_H

#include <stdbool.h>
#include <stdio.h>

#include "portico/h1_parser.h"
#include "portico/worker.h"

typedef struct pt_conn pt_conn_t;

/* Answers one request on the admin listener (GET /status). */
void pt_admin_handle(pt_conn_t *c, const pt_h1_req_t *req);
/* GET /healthz, /ready and /config (admin_info.c): true when it answered. */
bool pt_admin_info(pt_conn_t *c, const pt_h1_req_t *req);
/* May this request change state (admin.token)?  False when it was
 * answered 401 or 403. */
bool pt_admin_may_change(pt_conn_t *c, const pt_h1_req_t *req);
/* DELETE /cache/NAME?key=|prefix= (admin_cache.c): false when the path is
 * not under /cache/. */
bool pt_admin_cache(pt_conn_t *c, const pt_h1_req_t *req);
/* PATCH, POST and DELETE on /upstreams/NAME/targets[/ADDRESS]
 * (admin_targets.c): false when the path is not under /upstreams/. */
bool pt_admin_targets(pt_conn_t *c, const pt_h1_req_t *req);
/* Is the body of an admin request (head_len bytes of head) in the input
 * buffer, or one it is answered without (none, chunked, too large)?  The
 * admin API answers once it is: h1_server.c waits for it. */
bool pt_admin_body_ready(const pt_conn_t *c, const pt_h1_req_t *req, size_t head_len);
/* GET /metrics (admin_metrics.c): true when it answered or suspended the
 * request while the body is made. */
bool pt_admin_metrics(pt_conn_t *c, const pt_h1_req_t *req);
/* The request ends: a scrape under way for it is dropped. */
struct pt_req;
void pt_admin_scrape_end(struct pt_req *r);
/* ,"caches":[...] for /status. */
void pt_admin_caches_json(FILE *f, pt_worker_t *w);

#endif
