/* The master's resolution of targets given by host name, off its loop: a
 * child process asks getaddrinfo(3) and sends the answers back on a pipe,
 * within a bound of time (resolver.timeout), so that a slow or silent DNS
 * server never stops the master from handling its signals. */
#ifndef PORTICO_RESOLVE_ASYNC_H
#define PORTICO_RESOLVE_ASYNC_H

#include <stddef.h>
#include <stdint.h>

#include "portico/config-t.h"

typedef struct pt_resolve_async pt_resolve_async_t;

/* Starts resolving the targets of c given by host name (none when
 * resolver.nameservers is set: the workers resolve them then).  Returns 0
 * with *job NULL when there is nothing to resolve, 0 with a job whose
 * answers will be written into c, or -1 with a message in err (no child
 * could be started).  c must outlive the job. */
int pt_resolve_async_start(pt_config_t *c, pt_resolve_async_t **job, char *err, size_t errlen);
/* The descriptor to poll for POLLIN: answers arrived, or the child ended. */
int pt_resolve_async_fd(const pt_resolve_async_t *j);
/* When the job must be done, in CLOCK_MONOTONIC milliseconds. */
int64_t pt_resolve_async_deadline(const pt_resolve_async_t *j);
/* Takes what arrived, without blocking.  0: every name resolved, their
 * addresses are in the configuration; PT_EAGAIN: more to come; -1: a name
 * does not resolve or the child failed, err says which. */
int pt_resolve_async_read(pt_resolve_async_t *j, char *err, size_t errlen);
/* The deadline passed: writes into err which names were still unanswered. */
void pt_resolve_async_expired(const pt_resolve_async_t *j, char *err, size_t errlen);
/* Stops the child if it still runs (SIGKILL; the master's waitpid reaps
 * it) and frees the job.  NULL is fine. */
void pt_resolve_async_free(pt_resolve_async_t *j);
/* At start-up, before the master's loop: start, then wait for the answers
 * or the deadline.  0, or -1 with a message in err. */
int pt_resolve_async_run(pt_config_t *c, char *err, size_t errlen);

#endif
