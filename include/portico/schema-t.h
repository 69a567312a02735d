/* The configuration schema: tables of directives that say, for each key,
 * its type, where it goes in the compiled struct, its default, range and
 * documentation.  The loader, the -T printer and portico.yaml(5) are all
 * driven by these tables, so a key is defined in exactly one place. */
#ifndef PORTICO_SCHEMA_T_H
#define PORTICO_SCHEMA_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct pt_node pt_node_t;
typedef struct pt_conf_ctx pt_conf_ctx_t;
typedef struct pt_section pt_section_t;
typedef struct pt_directive pt_directive_t;
typedef struct pt_list pt_list_t;

typedef enum {
    PT_T_STR,      /* char *                                                 */
    PT_T_INT,      /* int64_t, within [min, max]                             */
    PT_T_BOOL,     /* bool                                                   */
    PT_T_DURATION, /* int64_t milliseconds, within [min, max]                */
    PT_T_SIZE,     /* int64_t bytes, within [min, max]                       */
    PT_T_ENUM,     /* int: index into enums[]                                */
    PT_T_ADDR,     /* pt_addr_t                                              */
    PT_T_SECTION,  /* an embedded struct described by sub                    */
    PT_T_LIST,     /* pt_list_t of sub structs, or of elem scalars           */
    PT_T_KVMAP,    /* pt_kvlist_t: a map of string to string, in file order  */
    PT_T_CUSTOM,   /* set() parses, print() prints                           */
} pt_type_t;

enum {
    PT_F_REQUIRED = 1u << 0,
    PT_F_RESTART = 1u << 1,  /* a change takes effect only after a restart   */
    PT_F_SECRET = 1u << 2,   /* -T prints it redacted                        */
    PT_F_OPTIONAL = 1u << 3, /* SECTION: left zeroed (node NULL) when absent */
    PT_F_PORT0 = 1u << 4,    /* ADDR: port 0 (any free port) is allowed      */
};

/* Parse node n into field; 0, or -1 after adding a diagnostic. */
typedef int (*pt_setter_fn)(pt_conf_ctx_t *cc, const pt_node_t *n, void *field);
/* Prints field; prov (pt_prov_t) says which values came from ${NAME}, for
 * a printer of a map to pass on to pt_schema_dump_flow. */
typedef void (*pt_printer_fn)(FILE *f, const void *field, const pt_list_t *prov);
/* Cross-field checks of a section after its keys are loaded: 0 or -1. */
typedef int (*pt_check_fn)(pt_conf_ctx_t *cc, const pt_node_t *n, void *obj);

struct pt_directive {
    const char *key;
    pt_type_t type;
    size_t offset;
    const char *def; /* default, as YAML text; NULL: none */
    int64_t min, max;
    const char *const *enums;
    const pt_section_t *sub;    /* SECTION, LIST of maps */
    const pt_directive_t *elem; /* LIST of scalars: offset 0, element size below */
    pt_setter_fn set;
    pt_printer_fn print;
    unsigned flags;
    const char *type_doc; /* for the manual: "duration", "list of strings" */
    const char *doc;
};

/* Every struct a section describes starts with the node it came from. */
struct pt_section {
    const char *name;
    size_t size;
    const pt_directive_t *keys; /* ends with a {NULL} entry */
    pt_check_fn check;
    const char *shorthand; /* a scalar given where the map is expected sets this key */
    const char *doc;
};

struct pt_list {
    void *v;
    size_t n;
};

/* Is v in a list of integers (statuses, for one)? */
static inline bool pt_list_has_int(const pt_list_t *l, int64_t v)
{
    for (size_t i = 0; i < l->n; i++)
        if (((const int64_t *)l->v)[i] == v)
            return true;
    return false;
}

typedef struct pt_kv {
    char *key, *value;
} pt_kv_t;

typedef struct pt_kvlist {
    pt_kv_t *v;
    size_t n;
} pt_kvlist_t;

typedef struct pt_strlist {
    char **v;
    size_t n;
} pt_strlist_t;

#endif
