/* Loading, checking and printing the configuration file. */
#ifndef PORTICO_CONFIG_H
#define PORTICO_CONFIG_H

#include <stdio.h>

#include "portico/config-t.h"
#include "portico/diag.h"

/* Reads, parses and validates `path`.  Returns the configuration, or NULL
 * with every problem found in `d` (which may also hold warnings on
 * success).  No side effects: nothing is bound, opened or created. */
pt_config_t *pt_config_load(const char *path, pt_diag_t *d);
/* The same from a string in memory, for tests and the fuzzer. */
pt_config_t *pt_config_load_text(const char *name, const char *text, size_t len, pt_diag_t *d);
void pt_config_free(pt_config_t *c);
/* Adds to d the notes -t and -T print about a valid configuration that
 * may not do what was meant (hints.c): exact paths where Kong and nginx
 * users expect a prefix.  Start-up and reload do not call it. */
void pt_config_hints(const pt_config_t *c, pt_diag_t *d);
/* Prints the effective configuration (-T), secrets redacted. */
void pt_config_dump(FILE *f, const pt_config_t *c);
/* Writes a one-line summary of what changed from old to new, such as
 * "+2 routes, ~1 upstream, -1 listener", or "no changes". */
void pt_config_diff(const pt_config_t *old, const pt_config_t *new, char *buf, size_t size);
/* Compiles a regex (PCRE2, JIT) owned by the configuration being loaded;
 * NULL after reporting PCRE2's message at node n. */
struct pt_conf_ctx;
struct pt_node;
void *pt_config_regex(struct pt_conf_ctx *cc, const struct pt_node *n, const char *pattern);
/* Something made while loading (a TLS context) that the configuration owns:
 * fn(p) when it is freed.  0, or -1 (then p is freed already). */
struct pt_owned {
    void *p;
    void (*free)(void *);
    struct pt_owned *next;
};
int pt_config_own(struct pt_conf_ctx *cc, void *p, void (*fn)(void *));
/* The URLs of filters (forward-auth's uri, jwt-auth's jwks.uri) get
 * upstreams, added to root's before it is loaded (synth.c). */
struct pt_uri;
void pt_conf_synth_upstreams(struct pt_conf_ctx *cc, struct pt_node *root);
/* After load: the upstream a filter's URL goes to, or NULL. */
const pt_upstream_conf_t *pt_conf_uri_upstream(const pt_config_t *c, const struct pt_uri *u);
void pt_uri_upstream_name(const struct pt_uri *u, char *buf, size_t size);
/* Effective worker count. */
int pt_config_workers(const pt_config_t *c);

#endif
