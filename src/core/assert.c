#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "portico/assert.h"
#include "portico/log.h"

void pt_assert_fail(const char *file, int line, const char *cond)
{
    pt_log_write(PT_LOG_CRIT, "assertion failed at %s:%d: %s (pid %d)", file, line, cond,
                 (int)getpid());
    abort();
}
