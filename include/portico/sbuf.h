/* A growing output buffer (doubling: linear in what is written), for
 * bodies made in memory: the metrics scrape, the span encoders. */
#ifndef PORTICO_SBUF_H
#define PORTICO_SBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pt_sbuf {
    char *p;
    size_t n, cap;
    bool failed; /* out of memory: p holds what was written before */
} pt_sbuf_t;

void pt_sbuf_put(pt_sbuf_t *b, const char *s, size_t n);
void pt_sbuf_puts(pt_sbuf_t *b, const char *s);
/* v in decimal. */
void pt_sbuf_u64(pt_sbuf_t *b, uint64_t v);
/* A JSON string (quoted): control characters and bytes past 0x7f escaped,
 * so that any input gives valid JSON. */
void pt_sbuf_json_str(pt_sbuf_t *b, const char *s);

#endif
