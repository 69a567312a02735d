#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "portico/log.h"
#include "portico/secret.h"

int pt_log_level = PT_LOG_NOTICE;
const char *const pt_log_level_names[] = {"crit", "error", "warn", "notice", "info", "debug", NULL};

static int log_fd = STDERR_FILENO;
static char log_path[4096] = "stderr";
static char log_role[32] = "master";
static uid_t log_uid = (uid_t)-1; /* whom the file is given to; -1: nobody */
static gid_t log_gid = (gid_t)-1;

int pt_log_level_parse(const char *name)
{
    for (int i = 0; pt_log_level_names[i]; i++)
        if (strcmp(pt_log_level_names[i], name) == 0)
            return i;
    return -1;
}

void pt_log_set_role(const char *role)
{
    snprintf(log_role, sizeof(log_role), "%s", role);
}

int pt_log_fd(void)
{
    return log_fd;
}

static int open_target(const char *path)
{
    if (strcmp(path, "stderr") == 0)
        return STDERR_FILENO;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    return fd < 0 ? -errno : fd;
}

/* Root gives the file to the workers' user, as the master does with the
 * access log: after logrotate renamed it, the master creates the new one,
 * and the workers, no longer root, could not open a file of root's. */
static int give(int fd)
{
    struct stat st;
    if (fd == STDERR_FILENO || log_uid == (uid_t)-1 || geteuid() != 0)
        return 0;
    /* one already theirs keeps its group (logrotate's create 0640 portico adm) */
    if (fstat(fd, &st) == 0 && st.st_uid == log_uid)
        return 0;
    return fchown(fd, log_uid, log_gid) < 0 ? -errno : 0;
}

int pt_log_open(const char *path)
{
    int fd = open_target(path);
    if (fd < 0)
        return fd;
    if (log_fd != STDERR_FILENO && log_fd != fd)
        close(log_fd);
    log_fd = fd;
    snprintf(log_path, sizeof(log_path), "%s", path);
    int rc = give(fd);
    if (rc < 0)
        pt_log_write(PT_LOG_WARN, "cannot give the error log %s to uid %d: %s", path, (int)log_uid, strerror(-rc));
    return 0;
}

int pt_log_set_owner(uid_t uid, gid_t gid)
{
    log_uid = uid;
    log_gid = gid;
    return give(log_fd);
}

int pt_log_reopen(void)
{
    char path[sizeof(log_path)];
    memcpy(path, log_path, sizeof(path));
    return pt_log_open(path);
}

void pt_log_vwrite(int level, const char *fmt, va_list ap)
{
    char buf[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ [%s] %s[%d]: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (int)(tv.tv_usec / 1000), pt_log_level_names[level], log_role,
                     (int)getpid());
    int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
    if (m < 0)
        m = 0;
    if (m > 0 && pt_secret_count()) { /* no line shows what ${NAME} stands for */
        char masked[sizeof(buf)];
        size_t have = (size_t)m < sizeof(buf) - (size_t)n - 1 ? (size_t)m : sizeof(buf) - (size_t)n - 2;
        m = (int)pt_secret_mask(buf + n, have, masked, sizeof(buf) - (size_t)n - 1);
        memcpy(buf + n, masked, (size_t)m + 1);
    }
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(buf) - 2)
        len = sizeof(buf) - 2;
    /* One record per line: a message never smuggles a newline into the log. */
    for (size_t i = (size_t)n; i < len; i++)
        if (buf[i] == '\n' || buf[i] == '\r')
            buf[i] = ' ';
    buf[len++] = '\n';
    ssize_t w;
    do
        w = write(log_fd, buf, len);
    while (w < 0 && errno == EINTR);
    /* What stops the process also goes to stderr when the log is a file:
     * systemd's journal (portico -f) or the terminal that started it must
     * say more than "status=1".  Once daemonized, stderr is /dev/null. */
    if (level == PT_LOG_CRIT && log_fd != STDERR_FILENO) {
        char line[sizeof(buf) + 64];
        bool master = strcmp(log_role, "master") == 0;
        int k = snprintf(line, sizeof(line), "portico: %s%s%.*s\n", master ? "" : log_role, master ? "" : ": ",
                         (int)(len - 1 - (size_t)n), buf + n);
        if (k > 0)
            w = write(STDERR_FILENO, line, (size_t)k < sizeof(line) ? (size_t)k : sizeof(line) - 1);
    }
}

void pt_log_write(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pt_log_vwrite(level, fmt, ap);
    va_end(ap);
}
