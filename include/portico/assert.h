/* Assertions stay on in production builds: a broken invariant is a bug and
 * a core dump is the cheapest way to find it.  Never assert on input from
 * the network or from a configuration file: those are errors. */
#ifndef PORTICO_ASSERT_H
#define PORTICO_ASSERT_H

_Noreturn void pt_assert_fail(const char *file, int line, const char *cond);

#define PT_ASSERT(c) \
    do { \
        if (__builtin_expect(!(c), 0)) \
            pt_assert_fail(__FILE__, __LINE__, #c); \
    } while (0)

#ifdef PT_DEBUG
#define PT_DASSERT(c) PT_ASSERT(c)
#else
#define PT_DASSERT(c) ((void)0)
#endif

/* Objects handed through libevent's void *arg carry a magic number. */
#define PT_CHECK_MAGIC(o, m) PT_ASSERT((o) != NULL && (o)->magic == (m))

#endif
