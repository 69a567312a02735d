/* Giving up root (privileges.h). */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "portico/log.h"
#include "portico/privileges.h"

int pt_drop_privileges(bool drop, const char *user, uid_t uid, gid_t gid)
{
    if (!drop)
        return 0;
    if (setgroups(0, NULL) < 0 && errno != EPERM)
        return -1;
    if (initgroups(user, gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
        pt_log_crit("cannot change to user \"%s\": %s", user, strerror(errno));
        return -1;
    }
    prctl(PR_SET_DUMPABLE, 1); /* keep core dumps possible after setuid */
    return 0;
}
