/* A scrape of /metrics, made in slices (metrics/scrape.c). */
#ifndef PORTICO_SCRAPE_H
#define PORTICO_SCRAPE_H

#include <stddef.h>
#include <stdint.h>

typedef struct pt_worker pt_worker_t;
typedef struct pt_scrape pt_scrape_t;

/* A scrape of what worker w sees; NULL when out of memory. */
pt_scrape_t *pt_scrape_new(pt_worker_t *w);
/* Renders more of the body, for about budget_us: 1 when the body is
 * complete, 0 when there is more, -1 out of memory. */
int pt_scrape_step(pt_scrape_t *s, int64_t budget_us);
/* How many slices it took, and the longest, in microseconds of CPU. */
void pt_scrape_slices(const pt_scrape_t *s, unsigned *slices, int64_t *longest_us);
/* Takes the body made so far: the caller frees it. */
char *pt_scrape_body(pt_scrape_t *s, size_t *len);
void pt_scrape_free(pt_scrape_t *s);

#endif
