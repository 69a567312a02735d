/* The master process: binds, forks and watches workers, reloads. */
#ifndef PORTICO_MASTER_H
#define PORTICO_MASTER_H

#include <stdbool.h>

#include "portico/config-t.h"

typedef struct pt_opts {
    const char *conf_path;
    const char *pid_file; /* NULL: from the configuration */
    bool foreground;
    int workers;   /* 0: from the configuration */
    int log_level; /* -1: from the configuration */
} pt_opts_t;

/* Runs the gateway with configuration c (taken over).  Returns the exit
 * status: 0 after a stop, 1 when it could not start. */
int pt_master_run(const pt_opts_t *o, pt_config_t *c);

#endif
