/* The master's pid file. */
#ifndef PORTICO_PIDFILE_H
#define PORTICO_PIDFILE_H

#include <sys/types.h>

/* Writes pid to path atomically (a temporary file renamed). 0 or -errno. */
int pt_pidfile_write(const char *path, pid_t pid);
/* Reads the pid; 0 when the file is missing or holds no pid, -errno on
 * other errors. */
pid_t pt_pidfile_read(const char *path);
/* Removes the file if it still holds pid. */
void pt_pidfile_remove(const char *path, pid_t pid);

#endif
