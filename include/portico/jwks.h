/* JSON Web Key Sets fetched over HTTP(S) by each worker for jwt-auth: one
 * per jwks.uri of the configuration, refreshed every `refresh` and again
 * (at most once per 10 s) when a token names a key the set lacks.  A fetch
 * that fails keeps the last good set.  Requests that need a set that is
 * being fetched wait for it (pt_jwks_wait), bounded by the fetch's
 * timeout. */
#ifndef PORTICO_JWKS_H
#define PORTICO_JWKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/config-t.h"
#include "portico/jose.h"
#include "portico/str.h"
#include "portico/value.h"

typedef struct pt_conn pt_conn_t;
typedef struct pt_jwks pt_jwks_t;

/* What a jwt-auth conf says of its key set. */
typedef struct pt_jwks_conf {
    const pt_node_t *node;
    char *uri;
    int64_t refresh, timeout;
    pt_uri_t parsed;
    const pt_upstream_conf_t *up; /* linked after load */
} pt_jwks_conf_t;

/* The worker's set for this conf (made on first use, and its first fetch
 * started).  NULL when out of memory. */
pt_jwks_t *pt_jwks_for(pt_conn_t *c, const pt_jwks_conf_t *conf);
/* The key named kid, or NULL.  Starts a refresh when the set lacks it and
 * the last fetch is 10 s old or more. */
const pt_jwk_t *pt_jwks_find(pt_jwks_t *s, pt_str_t kid);
/* Has the set ever been fetched?  Is a fetch under way? */
bool pt_jwks_loaded(const pt_jwks_t *s);
bool pt_jwks_fetching(const pt_jwks_t *s);
/* Which fetch the keys are from (cached tokens of an older set are
 * verified again). */
uint64_t pt_jwks_generation(const pt_jwks_t *s);
/* The request on c waits for the fetch under way: pt_req_resume(c) when it
 * ends.  pt_jwks_unwait when the request ends first.  false when no fetch
 * is under way (nothing to wait for) or out of memory. */
bool pt_jwks_wait(pt_jwks_t *s, pt_conn_t *c);
void pt_jwks_unwait(pt_jwks_t *s, pt_conn_t *c);

#endif
