/* google.api.http rules (HttpRule): which HTTP method and path template
 * reach a gRPC method, where its request message comes from (the body,
 * the path's variables, the query), and which part of the response is the
 * body.  Parsed at load from the method's option in the descriptor set, or
 * from a route's explicit `method:`; matched against each request.
 *
 * Templates: "/" segments [":" verb], a segment being a literal, "*" (one
 * segment), "**" (the rest of the path: last), or a variable
 * "{field.path}" (one segment) or "{field.path=segments}". */
#ifndef PORTICO_HTTP_RULE_H
#define PORTICO_HTTP_RULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/arena.h"
#include "portico/pb_desc.h"
#include "portico/str.h"

enum { PT_SEG_LIT, PT_SEG_STAR, PT_SEG_DSTAR };

typedef struct pt_tmpl_seg {
    uint8_t kind;
    const char *lit; /* PT_SEG_LIT, NUL-terminated */
} pt_tmpl_seg_t;

typedef struct pt_tmpl_var {
    const char *field; /* "book.name": proto names, dotted */
    uint16_t first, last; /* its segments: [first, last) */
    const pt_pb_fdesc_t **fs; /* the fields along it, resolved at load */
    size_t nfs;
} pt_tmpl_var_t;

typedef struct pt_http_binding {
    const char *http_method; /* "GET", or a custom one */
    const char *pattern;     /* the template as written */
    pt_tmpl_seg_t *segs;
    size_t nsegs;
    pt_tmpl_var_t *vars;
    size_t nvars;
    const char *verb;          /* or NULL */
    const char *body;          /* NULL: none; "*": the whole message; else a field */
    const char *response_body; /* NULL: the whole response; else a field */
    const pt_pb_fdesc_t *body_f, *response_f; /* those fields, resolved at load (NULL for none or "*") */
    const pt_pb_method_t *m;
    unsigned literals;         /* literal segments: the more, the more specific */
    bool any_query;            /* the query may fill any field, even with body "*" (a route's method:) */
} pt_http_binding_t;

/* The bindings of a method's HttpRule (itself and its additional_bindings,
 * at most max) into out: how many, or -1 with a message in err. */
int pt_http_rule_parse(pt_arena_t *a, const pt_pb_method_t *m, const uint8_t *rule, size_t n,
                       pt_http_binding_t *out, size_t max, char *err, size_t errlen);
/* One binding from a method, a template and a body ("*", a field or
 * NULL): 0, or -1 with a message in err.  Checks the variables and the
 * body against the method's messages. */
int pt_http_binding_make(pt_arena_t *a, const pt_pb_method_t *m, const char *http_method, const char *tmpl,
                         const char *body, const char *response_body, pt_http_binding_t *b, char *err,
                         size_t errlen);

/* Does path (the request target without its query) fit b's template?
 * Then the variables' values (percent-decoded: "%2F" is kept as it is in
 * a variable of more than one segment) are in vals[0..b->nvars), in a. */
bool pt_http_binding_match(const pt_http_binding_t *b, pt_str_t path, pt_arena_t *a, pt_str_t *vals);

/* A field path of proto names ("a.b.c") in m: the fields along it into
 * out (at most max), how many; 0 when a name is not there or a field
 * before the last is not a message (nor repeated). */
size_t pt_http_field_path(const pt_pb_msg_t *m, const char *path, size_t len, const pt_pb_fdesc_t **out, size_t max);

#endif
