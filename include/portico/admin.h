/* The admin API, served by every worker on the admin listener. */
#ifndef PORTICO_ADMIN_H
#define PORTICO_ADMIN_H

#include "portico/h1_parser.h"

typedef struct pt_conn pt_conn_t;

/* Answers one request on the admin listener (GET /status). */
void pt_admin_handle(pt_conn_t *c, const pt_h1_req_t *req);

#endif
