/* Columns of the shared per-target counters (pt_target_shared_t's
 * column[] and users bits): the master gives each live worker one of its
 * own, from a free list, and takes it back once the worker exited and its
 * counts were cleared.  Two workers never share one, whatever their
 * generations, so clearing a dead worker's column never touches a live
 * one's counts. */
#ifndef PORTICO_COLUMN_H
#define PORTICO_COLUMN_H

/* A free column, 0 to PT_SHARED_COLUMNS - 1, now held; -1 when every one
 * is held (PT_SHARED_COLUMNS workers alive). */
int pt_column_take(void);
/* Gives back a held column: only once the worker that held it exited and
 * pt_upstreams_forget_column cleared what it counted. */
void pt_column_give(int column);
/* How many are held. */
int pt_column_held(void);

#endif
