/* A small TAP producer for unit tests, run by Automake's tap-driver.
 * Tests #include the .c file they test when they need its statics. */
#ifndef PORTICO_TAP_H
#define PORTICO_TAP_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

static void tap_ok(int cond, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), unused));
static void tap_ok(int cond, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    printf("%sok %d - ", cond ? "" : "not ", ++tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!cond) {
        tap_failed++;
        printf("#   failed at %s:%d\n", file, line);
    }
    fflush(stdout);
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

#define is_int(got, want, ...) \
    do { \
        long long g_ = (long long)(got), w_ = (long long)(want); \
        tap_ok(g_ == w_, __FILE__, __LINE__, __VA_ARGS__); \
        if (g_ != w_) \
            printf("#   got %lld, want %lld\n", g_, w_); \
    } while (0)

#define is_str(got, want, ...) \
    do { \
        const char *g_ = (got), *w_ = (want); \
        int same_ = (g_ && w_) ? strcmp(g_, w_) == 0 : g_ == w_; \
        tap_ok(same_, __FILE__, __LINE__, __VA_ARGS__); \
        if (!same_) \
            printf("#   got  \"%s\"\n#   want \"%s\"\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
    } while (0)

/* `n` tests that cannot run in this build, counted as passed. */
static void __attribute__((unused)) skip(int n, const char *why)
{
    while (n-- > 0)
        printf("ok %d # SKIP %s\n", ++tap_n, why);
    fflush(stdout);
}

static int __attribute__((unused)) done_testing(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

#endif
