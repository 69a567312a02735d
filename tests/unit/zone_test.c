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

/* In use: byte 20 set. */
static bool idle(const void *slot)
{
    return !((const char *)slot)[20];
}

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
    pt_zone_stats_t st;
    pt_zone_stats(t, 32, &st);
    ok(st.slots == 4 && st.used == 4 && st.refused == 1 && st.evicted == 0, "the table's figures: 4 of 4, 1 refused");

    /* freeing: every other key stays reachable, and a new key takes the freed slot */
    char *keys[4];
    const char *names[] = {"10.0.0.1:80", "10.0.0.2:80", "c", "d"};
    for (int i = 0; i < 4; i++)
        keys[i] = pt_zone_slot(t, 32, 16, names[i], false);
    for (int i = 0; i < 4; i++) {
        pt_zone_release(t, keys[i], 32);
        bool others = true;
        for (int k = 0; k < 4; k++)
            if (k != i)
                others &= pt_zone_slot(t, 32, 16, names[k], false) == keys[k];
        ok(others && !pt_zone_slot(t, 32, 16, names[i], false), "%s freed: the others are still found", names[i]);
        char *e = pt_zone_slot(t, 32, 16, "e", true);
        ok(e == keys[i] && strcmp(e, "e") == 0 && !e[31], "\"e\" takes the freed slot, zeroed but for its key");
        pt_zone_release(t, e, 32);
        keys[i] = pt_zone_slot(t, 32, 16, names[i], true);
    }
    pt_zone_stats(t, 32, &st);
    is_int(st.used, 4, "used counts claims and frees");

    /* full: a slot that nothing uses any more is taken over */
    keys[2][20] = 1; /* in use: marked for idle() below */
    keys[3][20] = 1;
    keys[1][20] = 1;
    char *f = pt_zone_claim(t, 32, 16, "f", idle);
    ok(f == keys[0] && pt_zone_slot(t, 32, 16, "f", false) == f && !pt_zone_slot(t, 32, 16, names[0], false),
       "a full table: the unused slot is taken over");
    f[20] = 1;
    ok(!pt_zone_claim(t, 32, 16, "g", idle), "none unused: refused");
    pt_zone_stats(t, 32, &st);
    ok(st.used == 4 && st.evicted == 1 && st.refused == 2, "1 evicted, 2 refused");

    /* another size replaces a zone; the old one is still there to carry from */
    pt_zone_t *bigger = pt_zone_get("slots", 8 * 32);
    ok(bigger != t && !pt_zone_reused(bigger) && pt_zone_replaced(bigger) == t, "the zone a bigger one replaces");
    ok(pt_zone_get("slots", 4 * 32) != t, "an older size is not reused once a newer zone took over");

    /* a reload that failed: the zone it made at another size steps aside */
    pt_zone_t *served = pt_zone_get("abandon", 4096);
    *(int *)pt_zone_data(served) = 42;
    pt_zone_sweep();
    unsigned long mark = pt_zone_mark();
    pt_zone_t *failed = pt_zone_get("abandon", 8192);
    pt_zone_abandon(mark);
    pt_zone_t *back = pt_zone_get("abandon", 4096);
    ok(failed != served && back == served && *(int *)pt_zone_data(back) == 42,
       "after a failed reload, the serving generation's zone is found again, state and all");
    return done_testing();
}
