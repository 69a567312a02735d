/* Error log: one line per message with an ISO 8601 timestamp, the level
 * and the pid.  Written with one write(2) on an O_APPEND descriptor, so
 * lines from several processes never interleave.  A crit line, which ends
 * the process, is also written to stderr when the log is a file. */
#ifndef PORTICO_LOG_H
#define PORTICO_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <sys/types.h>

enum pt_log_level {
    PT_LOG_CRIT,
    PT_LOG_ERROR,
    PT_LOG_WARN,
    PT_LOG_NOTICE,
    PT_LOG_INFO,
    PT_LOG_DEBUG,
};

extern int pt_log_level;
extern const char *const pt_log_level_names[];

/* Opens `path` ("stderr" or a file, created 0644 and appended to) and makes
 * it the error log.  On failure returns -errno and keeps the old target. */
int pt_log_open(const char *path);
/* Reopens the current file (after logrotate renamed it). 0 or -errno. */
int pt_log_reopen(void);
/* When running as root, gives the error log file to uid:gid (the workers'
 * user), now and each time this process opens it again, so that workers
 * that dropped privileges can reopen it too.  uid -1: keep root's.  0, or
 * -errno when the current file could not be given. */
int pt_log_set_owner(uid_t uid, gid_t gid);
/* File descriptor of the error log (to hand to children). */
int pt_log_fd(void);
/* Prefix every line with this process role, e.g. "master" or "worker 2". */
void pt_log_set_role(const char *role);
/* Returns the level index for a name ("notice"), or -1. */
int pt_log_level_parse(const char *name);

void pt_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pt_log_vwrite(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#define pt_log(level, ...) \
    do { \
        if ((level) <= pt_log_level) \
            pt_log_write((level), __VA_ARGS__); \
    } while (0)
#define pt_log_crit(...) pt_log(PT_LOG_CRIT, __VA_ARGS__)
#define pt_log_error(...) pt_log(PT_LOG_ERROR, __VA_ARGS__)
#define pt_log_warn(...) pt_log(PT_LOG_WARN, __VA_ARGS__)
#define pt_log_notice(...) pt_log(PT_LOG_NOTICE, __VA_ARGS__)
#define pt_log_info(...) pt_log(PT_LOG_INFO, __VA_ARGS__)
#define pt_log_debug(...) pt_log(PT_LOG_DEBUG, __VA_ARGS__)

#endif
