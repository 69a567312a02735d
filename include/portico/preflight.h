/* Checks of a configuration against the machine it is to run on, as
 * `nginx -t` makes them: does `user:` exist, can the master create the log
 * files, and can the workers reach the error log to reopen it after a
 * rotation.  Run by -t, -T, -s reload, at start and on reload. */
#ifndef PORTICO_PREFLIGHT_H
#define PORTICO_PREFLIGHT_H

#include "portico/config-t.h"
#include "portico/diag.h"

/* Adds an error to d, at the key's location, for each problem found.
 * Creates nothing.  Returns the number of errors added. */
size_t pt_preflight_check(const pt_config_t *c, pt_diag_t *d);

#endif
