/* The open-files limit (RLIMIT_NOFILE) against what the configuration may
 * need: raised by the master, checked by -t. */
#ifndef PORTICO_RLIMIT_H
#define PORTICO_RLIMIT_H

#include <stdint.h>

#include "portico/config-t.h"
#include "portico/diag.h"

/* Descriptors one worker may need with configuration c: each client
 * connection its listeners' max_connections allow, an upstream connection
 * for each when c has upstreams, the idle keep-alive connections of every
 * target, and PT_RLIMIT_SLACK for the rest. */
#define PT_RLIMIT_SLACK 64
uint64_t pt_rlimit_needed(const pt_config_t *c);
/* Adds a warning to d, at the listener that asks the most, when
 * pt_rlimit_needed(c) is past the hard limit (the most a worker can get). */
void pt_rlimit_check(const pt_config_t *c, pt_diag_t *d);
/* Raises the soft limit to the hard one, as nginx's worker_rlimit_nofile
 * does, so that workers forked afterwards inherit it; logs what it did at
 * info.  0, or -errno (logged as a warning; the old limit stays). */
int pt_rlimit_raise(void);

#endif
