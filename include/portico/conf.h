/* The YAML document as a tree of nodes, each with the file, line and column
 * it came from (1-based), so that every later pass can point at the source.
 * `${NAME}` in scalar values is replaced from the environment ($${ is a
 * literal ${); the original text is kept so that -T can show it instead of
 * the secret.  YAML anchors, aliases and << merge keys are resolved. */
#ifndef PORTICO_CONF_H
#define PORTICO_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/arena.h"
#include "portico/diag.h"

#define PT_CONF_MAX_FILE (16u << 20) /* bytes */
#define PT_CONF_MAX_NODES 4000000    /* after alias expansion: 100,000 routes need ~1M */
#define PT_CONF_MAX_DEPTH 64

typedef enum { PT_NODE_NULL, PT_NODE_SCALAR, PT_NODE_MAP, PT_NODE_SEQ } pt_node_type_t;

typedef struct pt_node pt_node_t;
typedef struct pt_node_pair {
    pt_node_t *key, *value;
} pt_node_pair_t;

struct pt_node {
    pt_node_type_t type;
    uint32_t line, col;
    const char *file;
    /* scalar */
    char *s;
    size_t len;
    bool plain;       /* unquoted in the source */
    const char *orig; /* the text before ${} substitution, or NULL */
    /* map */
    pt_node_pair_t *pairs;
    size_t npairs;
    /* sequence */
    pt_node_t **items;
    size_t nitems;
};

/* Parses `text` (len bytes) named `file`.  Nodes live in `a`.  Returns the
 * root, or NULL with at least one error in `d`. */
pt_node_t *pt_conf_parse(const char *file, const char *text, size_t len, pt_arena_t *a,
                         pt_diag_t *d);
/* Reads and parses a file; a missing or unreadable file is one error. If
 * sha256 is not NULL it receives the digest of the file's bytes. */
pt_node_t *pt_conf_parse_file(const char *path, pt_arena_t *a, pt_diag_t *d,
                              unsigned char sha256[32]);

/* A scalar's text for messages: as written when it came from ${NAME}, so
 * that no message shows what the environment holds. */
static inline const char *pt_node_text(const pt_node_t *n)
{
    return n->orig ? n->orig : n->s;
}

/* The value of `key` in map `n`, or NULL. */
pt_node_t *pt_node_get(const pt_node_t *n, const char *key);
const char *pt_node_type_name(const pt_node_t *n);

#endif
