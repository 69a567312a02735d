/* Consumers' credentials: the `credentials:` entries of `consumers:`, their
 * checks at load, and the index the auth filters look them up in (by
 * type, then by key: a SHA-256 of an API key, a username, a JWT key
 * claim, an HMAC key id, a certificate's SAN or subject). */
#ifndef PORTICO_CREDENTIALS_H
#define PORTICO_CREDENTIALS_H

#include <stddef.h>

#include "portico/config-t.h"
#include "portico/schema-t.h"
#include "portico/str.h"

extern const pt_section_t pt_schema_credential;
extern const char *const pt_cred_type_names[]; /* "key-auth", ..., NULL */

/* After the consumers are loaded: checks that no two credentials of a
 * kind share a key (each is reported at its node) and builds c->creds.
 * 0, or -1 after an error. */
int pt_creds_index(pt_conf_ctx_t *cc, pt_config_t *c);

/* The credential of `type` whose key is `key` (for PT_CRED_KEY: the 32
 * bytes of the SHA-256 of the presented key), or NULL. */
const pt_credential_conf_t *pt_creds_find(const pt_config_t *c, int type, pt_str_t key);

/* A query argument an auth filter reads credentials from (key-auth's and
 * jwt-auth's query): its value is *** in the access log of every request,
 * whichever route it reached and whether or not a filter read it. */
void pt_creds_secret_arg(pt_conf_ctx_t *cc, const pt_node_t *n, const char *name);

/* How many credentials of a type there are (a filter with none to check
 * against says so at load). */
size_t pt_creds_count(const pt_config_t *c, int type);

/* The credential's identifier for X-Credential-Identifier: what names it
 * without revealing it (a username, a key claim, a key id, a SAN; for an
 * API key "consumer#index"). */
const char *pt_cred_identifier(const pt_credential_conf_t *cr, char *buf, size_t size);

#endif
