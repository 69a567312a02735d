/* What the auth filters share: how a request is accepted (its consumer,
 * the headers the upstream gets, the consumer's own filter settings) or
 * refused (401 with the challenges of the route's auth filters, 403 by
 * acl), hiding a credential from the upstream, and the failure counters.
 *
 * A route may have several auth filters.  They run in pipeline order;
 * the first that finds its kind of credential in the request decides
 * (accepts, or refuses with 401), and the others then let the request
 * pass without looking.  When none found its kind, the last one answers
 * 401 with every configured filter's challenge. */
#ifndef PORTICO_AUTH_H
#define PORTICO_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "portico/config-t.h"
#include "portico/filter.h"
#include "portico/h1_parser.h"

typedef struct pt_conn pt_conn_t;

/* Why a request was refused: counted per worker on the status board
 * (/status "auth_failures"), by reason. */
enum pt_auth_reason {
    PT_AUTH_MISSING,       /* no credential of any configured kind */
    PT_AUTH_INVALID,       /* malformed, or a key/password that matches nothing */
    PT_AUTH_EXPIRED,       /* a token past exp (or before nbf), a signature outside clock_skew */
    PT_AUTH_BAD_SIGNATURE, /* a token or request signature that does not verify */
    PT_AUTH_UNKNOWN_KEY,   /* a token's key (claim, kid) or a signature's key id that nothing has */
    PT_AUTH_DENIED,        /* acl, or the forward-auth service said no */
    PT_AUTH_UNAVAILABLE,   /* forward-auth could not ask (503); jwt-auth has no key set yet */
    PT_AUTH__REASONS
};
extern const char *const pt_auth_reason_names[PT_AUTH__REASONS];

/* Is filter id one of the auth filters (not acl)? */
bool pt_auth_is_auth_filter(int id);
/* An auth filter decided already: the others let the request pass. */
static inline bool pt_auth_decided(const pt_fx_t *fx)
{
    return fx->auth.decided;
}
/* Accepts the request as consumer co (may be NULL) with credential cr
 * (may be NULL), whose identifier is `ident` (NULL: pt_cred_identifier of
 * cr): the upstream gets X-Consumer-Username, X-Consumer-Groups and
 * X-Credential-Identifier, the log $consumer, and the filters after this
 * one the consumer's own settings.  PT_NEXT, or PT_FAIL (out of memory). */
pt_verdict_t pt_auth_accept(pt_conn_t *c, pt_fx_t *fx, const pt_consumer_conf_t *co, const pt_credential_conf_t *cr,
                            const char *ident);
/* Refuses with 401 and filter id's challenge (`invalid`: a credential was
 * presented and failed, which Bearer says with error="invalid_token");
 * `message` goes in the JSON body.  Counts `reason`.  PT_RESPOND. */
pt_verdict_t pt_auth_reject(pt_conn_t *c, const pt_h1_req_t *req, pt_fx_t *fx, int id, int reason,
                            const char *message);
/* Filter id found no credential of its kind: PT_NEXT when another auth
 * filter of the route follows, else 401 with every challenge (counted as
 * PT_AUTH_MISSING). */
pt_verdict_t pt_auth_absent(pt_conn_t *c, const pt_h1_req_t *req, pt_fx_t *fx, int id);
/* An answer of another status (403 by acl, 503), JSON {"message": ...},
 * counted as reason. */
pt_verdict_t pt_auth_refuse(pt_conn_t *c, const pt_h1_req_t *req, int status, int reason, const char *message,
                            const char *extra);
void pt_auth_count(pt_conn_t *c, int reason);
/* The same, for filter (PT_FILTER_*) where no filter's on_request runs. */
void pt_auth_count_in(pt_conn_t *c, int filter, int reason);

/* The field a credential is read from: the first called name (in any
 * case, '-' and '_' alike), and whether there are several.  Several are
 * refused (pt_auth_several: 400), whichever the upstream would read. */
const pt_h1_header_t *pt_auth_header(const pt_h1_req_t *req, pt_str_t name, bool *several);
pt_verdict_t pt_auth_several(pt_conn_t *c, const pt_h1_req_t *req, pt_str_t name);
/* hide_credentials: the credential does not go upstream.  A header field
 * (every field of that name), a query argument (every one of that name),
 * or a cookie (in every Cookie field).  PT_NEXT or PT_FAIL. */
pt_verdict_t pt_auth_hide_header(pt_conn_t *c, pt_fx_t *fx, pt_str_t name);
pt_verdict_t pt_auth_hide_query(pt_conn_t *c, const pt_h1_req_t *req, pt_fx_t *fx, const char *name);
pt_verdict_t pt_auth_hide_cookie(pt_conn_t *c, const pt_h1_req_t *req, pt_fx_t *fx, const char *name);

/* The value of the first query argument called `name` (its name %-decoded,
 * as the upstream would read it), percent-decoded (into the request arena
 * when it has an escape); PT_STR_NULL when absent; *several when there are
 * more.  Cookies: pt_h1_cookie. */
pt_str_t pt_auth_query_arg(pt_conn_t *c, const pt_h1_req_t *req, const char *name, bool *several);

/* Is this a field the upstream gets from auth only, never from the client
 * (X-Consumer-Username, X-Consumer-Groups, X-Credential-Identifier)? */
bool pt_auth_reserved_field(pt_str_t name);

#endif
