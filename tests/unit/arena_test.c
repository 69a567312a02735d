#include "config.h"

#include <stdint.h>

#include "../unit/tap.h"
#include "portico/arena.h"
#include "portico/bufpool.h"

#if defined(__SANITIZE_ADDRESS__)
#define ARENA_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_TEST_ASAN 1
#endif
#endif
#ifdef ARENA_TEST_ASAN
#include <sanitizer/asan_interface.h>
#endif

/* Under ASan: what the arena has not handed out is poisoned. */
static void poisoning(void)
{
#ifdef ARENA_TEST_ASAN
    pt_arena_t a;
    pt_arena_init(&a, 1024, 0);
    char *p = pt_arena_alloc(&a, 10);
    ok(p && !__asan_region_is_poisoned(p, 10), "an allocation is not poisoned");
    ok(__asan_address_is_poisoned(p + 10), "the byte after an allocation is poisoned");
    char *q = pt_arena_alloc(&a, 32);
    ok(q && !__asan_region_is_poisoned(q, 32), "an allocation of a multiple of the alignment is not poisoned");
    ok(__asan_address_is_poisoned(q + 32), "the byte after it is poisoned: a redzone before the next");
    char *r = pt_arena_alloc(&a, 16);
    ok(r > q + 32 && __asan_address_is_poisoned(r - 1), "the next allocation starts after a poisoned redzone");
    ok(__asan_address_is_poisoned(r + 16) && __asan_address_is_poisoned(r + 200),
       "the chunk's slack is poisoned");
    char *big = pt_arena_alloc(&a, 5000);
    ok(big && !__asan_region_is_poisoned(big, 5000) && __asan_address_is_poisoned(big + 5000),
       "a big allocation in its own chunk: exact, then poisoned");
    char *z = pt_arena_zalloc(&a, 3);
    ok(z && !__asan_region_is_poisoned(z, 3) && __asan_address_is_poisoned(z + 3), "zalloc: exact size");
    char *s = pt_arena_strndup(&a, "hello", 5);
    ok(s && !__asan_region_is_poisoned(s, 6) && __asan_address_is_poisoned(s + 6), "strndup: the string and its NUL");
    pt_arena_reset(&a);
    ok(__asan_address_is_poisoned(p) && __asan_region_is_poisoned(p, 1024) == p,
       "after a reset the whole kept chunk is poisoned");
    char *p2 = pt_arena_alloc(&a, 8);
    ok(p2 == p && !__asan_region_is_poisoned(p2, 8) && __asan_address_is_poisoned(q),
       "after a reset a new allocation is unpoisoned and an old pointer past it is not");
    pt_arena_free(&a);

    pt_arena_t b;
    pt_arena_init(&b, 256, 256);
    ok(pt_arena_alloc(&b, 128) && pt_arena_alloc(&b, 128) && !b.overflow,
       "the redzones take no budget: the budget is usable whole");
    pt_arena_free(&b);
#else
    skip(12, "not an AddressSanitizer build");
#endif
}

/* A connection's arena (chunk size PT_ARENA_BLOCK_CHUNK) takes its chunk
 * from the buffer pool and gives it back when freed; its big allocations
 * are malloc's as before. */
static void pool_chunks(void)
{
    pt_buf_stats_t st0, st;
    pt_buf_stats(&st0);
    pt_arena_t a;
    pt_arena_init(&a, PT_ARENA_BLOCK_CHUNK, 64 * 1024);
    pt_buf_stats(&st);
    ok(st.small_out == st0.small_out, "an arena takes nothing before its first allocation");
    char *p = pt_arena_alloc(&a, 100);
    pt_buf_stats(&st);
    ok(p && st.small_out == st0.small_out + 1, "its chunk is one pool block");
    ok(pt_arena_alloc(&a, 3000) && pt_arena_alloc(&a, 2000), "a big allocation beside it");
    pt_buf_stats(&st);
    ok(st.small_out == st0.small_out + 1, "the big one is not a pool block");
    pt_arena_reset(&a);
    pt_buf_stats(&st);
    ok(st.small_out == st0.small_out + 1, "reset keeps the block");
    pt_arena_free(&a);
    pt_buf_stats(&st);
    ok(st.small_out == st0.small_out, "freed: the block is back in the pool");
    ok(pt_arena_alloc(&a, 10) != NULL, "a freed arena is used again");
    pt_arena_free(&a);
}

int main(void)
{
    pool_chunks();
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
    ok(pt_arena_alloc(&a, 10) == p, "reset keeps the chunk of the usual size, not the big allocation's");
    pt_arena_free(&a);

    pt_arena_t b;
    pt_arena_init(&b, 1024, 1024);
    ok(pt_arena_alloc(&b, 1000) != NULL, "within the budget");
    ok(pt_arena_alloc(&b, 100) == NULL && b.overflow, "past the budget: NULL and overflow set");
    pt_arena_reset(&b);
    ok(!b.overflow && pt_arena_alloc(&b, 500) != NULL, "reset clears overflow");
    pt_arena_free(&b);

    poisoning();
    return done_testing();
}
