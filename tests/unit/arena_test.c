#include "config.h"

#include <stdint.h>

#include "../unit/tap.h"
#include "portico/arena.h"

int main(void)
{
    pt_arena_t a;
    pt_arena_init(&a, 256, 0);
    char *p = pt_arena_alloc(&a, 10), *q = pt_arena_alloc(&a, 10);
    ok(p && q && q != p, "two allocations differ");
    ok(((uintptr_t)q % _Alignof(max_align_t)) == 0, "allocations are aligned");
    char *big = pt_arena_alloc(&a, 10000);
    ok(big != NULL, "an allocation larger than a chunk works");
    memset(big, 1, 10000);
    char *after = pt_arena_alloc(&a, 16);
    ok(after && after >= p && after < p + 256, "a big allocation does not waste the current chunk");
    is_str(pt_arena_printf(&a, "%s-%d", "x", 42), "x-42", "printf");
    is_str(pt_arena_strndup(&a, "hello", 3), "hel", "strndup");
    pt_arena_reset(&a);
    ok(a.used == 0 && !a.overflow, "reset rewinds");
    pt_arena_free(&a);

    pt_arena_t b;
    pt_arena_init(&b, 1024, 1024);
    ok(pt_arena_alloc(&b, 1000) != NULL, "within the budget");
    ok(pt_arena_alloc(&b, 100) == NULL && b.overflow, "past the budget: NULL and overflow set");
    pt_arena_reset(&b);
    ok(!b.overflow && pt_arena_alloc(&b, 500) != NULL, "reset clears overflow");
    pt_arena_free(&b);
    return done_testing();
}
