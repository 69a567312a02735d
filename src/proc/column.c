/* The master's free list of counter columns.  A column is an index into
 * every shared target slot, so the count of them is fixed at build time
 * (PT_SHARED_COLUMNS, docs/decisions.md): enough for two generations of
 * the largest worker count, the most a reload keeps alive at once. */
#include "config.h"

#include "portico/assert.h"
#include "portico/column.h"
#include "portico/status-t.h"
#include "portico/upstream.h"

/* every worker with a column also gets an entry on the status board */
_Static_assert(PT_STATUS_MAX_WORKERS >= PT_SHARED_COLUMNS, "a board entry for every column");

static struct {
    bool ready;
    int head; /* the first free column, or -1 */
    int held;
    int next[PT_SHARED_COLUMNS]; /* the free one after it; -2 while held */
} fl;

static void init(void)
{
    for (int c = 0; c < PT_SHARED_COLUMNS; c++)
        fl.next[c] = c + 1 < PT_SHARED_COLUMNS ? c + 1 : -1;
    fl.head = 0;
    fl.ready = true;
}

int pt_column_take(void)
{
    if (!fl.ready)
        init();
    int c = fl.head;
    if (c < 0)
        return -1;
    fl.head = fl.next[c];
    fl.next[c] = -2;
    fl.held++;
    return c;
}

void pt_column_give(int c)
{
    PT_ASSERT(fl.ready && c >= 0 && c < PT_SHARED_COLUMNS && fl.next[c] == -2);
    fl.next[c] = fl.head;
    fl.head = c;
    fl.held--;
}

int pt_column_held(void)
{
    return fl.held;
}
