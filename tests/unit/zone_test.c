/* Shared zones: seen by a forked child, kept across a "reload" when the
 * name and size match, and a robust lock a killed holder cannot wedge. */
#include "config.h"

#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../unit/tap.h"
#include "portico/zone.h"

int main(void)
{
    pt_zone_t *z = pt_zone_get("counters", 4096);
    ok(z && !pt_zone_reused(z) && pt_zone_size(z) == 4096, "a new zone");
    atomic_long *n = pt_zone_data(z);
    atomic_store(n, 0);
    for (int i = 0; i < 4; i++) {
        if (fork() == 0) {
            for (int k = 0; k < 10000; k++)
                atomic_fetch_add(n, 1);
            _exit(0);
        }
    }
    while (wait(NULL) > 0)
        ;
    is_int(atomic_load(n), 40000, "four forked processes counted into the same memory");

    /* a reload: same name and size kept with its data, others replaced */
    pt_zone_sweep();
    pt_zone_t *z2 = pt_zone_get("counters", 4096), *other = pt_zone_get("health", 1024);
    ok(z2 == z && pt_zone_reused(z2) && atomic_load((atomic_long *)pt_zone_data(z2)) == 40000,
       "the same name and size: the same zone, data kept");
    ok(other && !pt_zone_reused(other), "a new name: a new zone");
    pt_zone_sweep();
    pt_zone_t *z3 = pt_zone_get("counters", 8192);
    ok(z3 && z3 != z && !pt_zone_reused(z3), "the same name at another size: a new zone");
    pt_zone_sweep(); /* the old "counters" and "health" go */

    /* robust lock: a child dies holding it */
    is_int(pt_zone_lock(z3), 0, "locked");
    pt_zone_unlock(z3);
    int pfd[2];
    if (pipe(pfd) != 0)
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        pt_zone_lock(z3);
        char c = 'L';
        if (write(pfd[1], &c, 1) != 1)
            _exit(1);
        pause(); /* killed while holding the lock */
        _exit(0);
    }
    char c;
    ok(read(pfd[0], &c, 1) == 1 && c == 'L', "the child holds the lock");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    time_t t0 = time(NULL);
    int rc = pt_zone_lock(z3);
    is_int(rc, 1, "the lock is taken over from the dead holder, and the caller is told");
    ok(time(NULL) - t0 < 2, "without waiting");
    pt_zone_unlock(z3);
    is_int(pt_zone_lock(z3), 0, "and it works normally after");
    pt_zone_unlock(z3);
    pt_zone_free_all();
    /* keyed slots: 4 slots of 32 bytes, keys of up to 15 bytes */
    pt_zone_t *t = pt_zone_get("slots", 4 * 32);
    char *s1 = pt_zone_slot(t, 32, 16, "10.0.0.1:80", true), *s2 = pt_zone_slot(t, 32, 16, "10.0.0.2:80", true);
    ok(s1 && s2 && s1 != s2 && strcmp(s1, "10.0.0.1:80") == 0, "claiming gives each key its own slot");
    ok(pt_zone_slot(t, 32, 16, "10.0.0.1:80", false) == s1 && !pt_zone_slot(t, 32, 16, "10.0.0.3:80", false),
       "a lookup finds a claimed key and not an unclaimed one");
    ok(pt_zone_slot(t, 32, 16, "10.0.0.1", false) == NULL, "a prefix of a key is another key");
    pt_zone_slot(t, 32, 16, "c", true);
    pt_zone_slot(t, 32, 16, "d", true);
    ok(!pt_zone_slot(t, 32, 16, "e", true) && pt_zone_slot(t, 32, 16, "d", false), "a full table claims no more");
    return done_testing();
}
