/* The status board's entries (board.h). */
#include "config.h"

#include "portico/board.h"

int pt_board_slot(const pt_status_t *st)
{
    for (int i = 0; i < PT_STATUS_MAX_WORKERS; i++)
        if (st->workers[i].state == PT_W_EMPTY)
            return i;
    return -1;
}

#define TAKE(field) __atomic_load_n(&w->field, __ATOMIC_RELAXED)

void pt_board_retire(pt_status_t *st, int i)
{
    pt_status_worker_t *w = &st->workers[i];
    st->access_log_lost_exited += TAKE(access_log_lost);
    for (int r = 0; r < 8; r++)
        st->auth_failures_exited[r] += TAKE(auth_failures[r]);
    st->limit_rejected_exited += TAKE(limit_rejected);
    st->limit_fallbacks_exited += TAKE(limit_fallbacks);
    st->trace_exported_exited += TAKE(trace_exported);
    st->trace_dropped_exited += TAKE(trace_dropped);
    st->trace_failed_exports_exited += TAKE(trace_failed_exports);
    *w = (pt_status_worker_t){0};
}
