/* The schema engine: loads a node tree into structs as the tables say,
 * applies defaults, prints the effective configuration and the manual. */
#ifndef PORTICO_SCHEMA_H
#define PORTICO_SCHEMA_H

#include <stdbool.h>
#include <stdio.h>

#include "portico/arena.h"
#include "portico/diag.h"
#include "portico/schema-t.h"

struct pt_conf_ctx {
    pt_arena_t *arena;
    pt_diag_t *diag;
    const char *file;
    char path[512]; /* key path of the value being loaded: routes[2].match */
    size_t path_len;
    pt_list_t *prov; /* pt_prov_t: fields whose value came from ${VAR} */
    struct pt_config *config; /* the configuration being loaded */
};

/* The top-level section (schema.c). */
extern const pt_section_t pt_schema_root;
extern const pt_section_t pt_schema_listener, pt_schema_upstream, pt_schema_route;
extern const pt_section_t pt_schema_metrics; /* metrics_conf.c */
/* The element of a list of strings, and of a list of HTTP statuses
 * (PT_T_LIST with .elem). */
extern const pt_directive_t pt_schema_str_elem, pt_schema_status_elem;

/* Loads map node n (or a shorthand scalar) into obj as section s says.
 * Returns 0, or -1 when errors were added to cc->diag. */
int pt_schema_load(pt_conf_ctx_t *cc, const pt_section_t *s, const pt_node_t *n, void *obj);

/* Adds an error at node n, prefixed with the current key path. */
void pt_conf_error(pt_conf_ctx_t *cc, const pt_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void pt_conf_warn(pt_conf_ctx_t *cc, const pt_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void pt_conf_note(pt_conf_ctx_t *cc, const pt_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* An error about `key` of section node n: at the key's value when given,
 * else at n, with the key in the path. */
void pt_conf_error_key(pt_conf_ctx_t *cc, const pt_node_t *n, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Pushes ".key" or "[i]" onto the path; pop restores the previous length. */
size_t pt_conf_path_push(pt_conf_ctx_t *cc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void pt_conf_path_pop(pt_conf_ctx_t *cc, size_t len);

/* Prints obj as YAML, the way section s describes it, with secrets
 * redacted and ${VAR} values shown as written. */
void pt_schema_dump(FILE *f, const pt_section_t *s, const void *obj, const pt_list_t *prov);
/* Prints obj as one YAML flow map ({ a: 1, b: [x] }), ${VAR} values as
 * written (prov may be NULL). */
void pt_schema_dump_flow(FILE *f, const pt_section_t *s, const void *obj, const pt_list_t *prov);
/* Prints obj as one JSON object, as pt_schema_dump_flow would as YAML:
 * secrets redacted, ${VAR} values as written, every word (durations,
 * sizes, addresses) a string. */
void pt_schema_dump_json(FILE *f, const pt_section_t *s, const void *obj, const pt_list_t *prov);
/* Prints a flow's key: ", key: " (or "key: " for the first), quoted in
 * JSON; for printers of PT_T_CUSTOM fields. */
void pt_schema_put_key(FILE *f, const char *key, bool first);
/* Prints the mdoc key reference of portico.yaml(5). */
/* Writes prose for mdoc: one sentence per line, no line that starts with a
 * control character. */
void pt_schema_man_prose(FILE *f, const char *s);
void pt_schema_man(FILE *f, const pt_section_t *s);

#endif
