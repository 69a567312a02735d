/* The status board's entries (status-t.h), as the master keeps them. */
#ifndef PORTICO_BOARD_H
#define PORTICO_BOARD_H

#include "portico/status-t.h"

/* A free entry for a new worker, or -1. */
int pt_board_slot(const pt_status_t *st);
/* The worker of entry i exited: what it counted goes to the board's
 * *_exited sums (its counts outlive it: /status adds them to the live
 * workers'), and the entry is free again. */
void pt_board_retire(pt_status_t *st, int i);

#endif
