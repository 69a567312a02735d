/* The checks -t makes beyond the file itself.  An unknown user stopped the
 * start anyway, but -t said "ok"; a log directory the workers' user cannot
 * enter did not even stop the start: the workers inherit the open error
 * log, and the problem showed at the first rotation, days later, when they
 * could not reopen it.  What the master needs is checked as the process
 * that runs -t; what the workers need, in a child that becomes their user,
 * so that the kernel answers (groups, ACLs and all) rather than a copy of
 * its rules. */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "portico/conf.h"
#include "portico/preflight.h"

static void error_at(pt_diag_t *d, const pt_config_t *c, const pt_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void error_at(pt_diag_t *d, const pt_config_t *c, const pt_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pt_diag_vadd(d, PT_DIAG_ERROR, c->file, n ? n->line : 0, n ? n->col : 0, fmt, ap);
    va_end(ap);
}

/* The node of section.key, or of the section, for the location. */
static const pt_node_t *where(const pt_node_t *section, const char *key)
{
    const pt_node_t *n = section ? pt_node_get(section, key) : NULL;
    return n ? n : section;
}

/* The master opens (creates) the file with O_APPEND|O_CREAT: the file, if
 * there, must be writable; if not, its directory must exist and be
 * writable. */
static void check_creatable(pt_diag_t *d, const pt_config_t *c, const pt_node_t *at, const char *key,
                            const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            error_at(d, c, at, "%s: %s is a directory", key, path);
        else if (access(path, W_OK) < 0)
            error_at(d, c, at, "%s: cannot write %s: %s", key, path, strerror(errno));
        return;
    }
    if (errno != ENOENT) {
        error_at(d, c, at, "%s: %s: %s", key, path, strerror(errno));
        return;
    }
    char dir[4096];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash == path ? 1 : slash - path) : 1, slash ? path : ".");
    if (stat(dir, &st) < 0)
        error_at(d, c, at, "%s: cannot create %s: the directory %s: %s", key, path, dir, strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        error_at(d, c, at, "%s: cannot create %s: %s is not a directory", key, path, dir);
    else if (access(dir, W_OK | X_OK) < 0)
        error_at(d, c, at, "%s: cannot create %s in %s: %s", key, path, dir, strerror(errno));
}

/* In a child that became pw: the first directory on the way to path that
 * it may not search (written to fd as "errno prefix-length"), or nothing. */
_Noreturn static void search_as(const struct passwd *pw, const char *path, int fd)
{
    char msg[64] = "";
    if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
        snprintf(msg, sizeof(msg), "%d 0", errno);
    } else {
        char dir[4096];
        snprintf(dir, sizeof(dir), "%s", path);
        for (char *p = dir + (dir[0] == '/'); *p && !msg[0]; p++) {
            if (*p != '/')
                continue;
            *p = '\0';
            if (access(dir[0] ? dir : "/", X_OK) < 0)
                snprintf(msg, sizeof(msg), "%d %zu", errno, strlen(dir));
            *p = '/';
        }
    }
    if (msg[0] && write(fd, msg, strlen(msg)) < 0)
        _exit(1);
    _exit(0);
}

/* Workers that dropped privileges reopen the error log by its path; the
 * master gives them the file, not the directories above it. */
static void check_reachable(pt_diag_t *d, const pt_config_t *c, const struct passwd *pw, const pt_node_t *at,
                            const char *key, const char *path)
{
    int pfd[2];
    if (pipe(pfd) < 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        search_as(pw, path, pfd[1]);
    }
    close(pfd[1]);
    char msg[64] = "";
    ssize_t n = pid > 0 ? read(pfd[0], msg, sizeof(msg) - 1) : -1;
    close(pfd[0]);
    if (pid > 0)
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
    int err;
    size_t len;
    if (n <= 0 || sscanf(msg, "%d %zu", &err, &len) != 2)
        return;
    if (len == 0)
        error_at(d, c, at, "%s: cannot check what user \"%s\" may open: %s", key, pw->pw_name, strerror(err));
    else
        error_at(d, c, at,
                 "%s: the workers, as user \"%s\", cannot reach %s (%.*s: %s), so they could not reopen it "
                 "after a rotation",
                 key, pw->pw_name, path, (int)len, path, strerror(err));
}

size_t pt_preflight_check(const pt_config_t *c, pt_diag_t *d)
{
    size_t before = d->errors;
    const struct passwd *pw = NULL;
    struct passwd pwbuf;
    char strings[4096];
    if (c->user) {
        struct passwd *found = NULL;
        int err = getpwnam_r(c->user, &pwbuf, strings, sizeof(strings), &found);
        if (found)
            pw = found;
        else
            error_at(d, c, where(c->node, "user"), "user: unknown user \"%s\"%s%s", c->user, err ? ": " : "",
                     err ? strerror(err) : "");
    }
    const char *elog = c->error_log.path;
    if (elog && strcmp(elog, "stderr") != 0) {
        const pt_node_t *at = where(c->error_log.node, "path");
        check_creatable(d, c, at, "error_log.path", elog);
        /* as the workers will be: only root changes users */
        if (pw && pw->pw_uid != 0 && geteuid() == 0)
            check_reachable(d, c, pw, at, "error_log.path", elog);
    }
    if (c->access_log.path)
        check_creatable(d, c, where(c->access_log.node, "path"), "access_log.path", c->access_log.path);
    return d->errors - before;
}
