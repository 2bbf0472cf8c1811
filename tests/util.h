/* util.h — the tiny test framework every kiln test uses: CHECK records a failure with file,
 * line and message and goes on; a test binary exits non-zero if any check failed (77 means
 * skipped, which CTest reports as skipped). */
#ifndef KN_TEST_UTIL_H
#define KN_TEST_UTIL_H

#include <stdio.h>
#include <string.h>

#include "kiln/kiln.h"

extern int kt_failures;
extern int kt_checks;

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        kt_checks++;                                                              \
        if (!(cond)) {                                                            \
            kt_failures++;                                                        \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                         \
            fprintf(stderr, "\n");                                                \
        }                                                                         \
    } while (0)

#define CHECK_OK(expr)                                                            \
    do {                                                                          \
        kn_status kt_st_ = (expr);                                                \
        CHECK(kt_st_ == KN_OK, "%s returned %s", #expr, kn_status_name(kt_st_));  \
    } while (0)

/* Prints a summary and returns the process exit code. */
int kt_finish(const char *name);

/* |a-b| <= atol + rtol·|b| */
int kt_close(double a, double b, double rtol, double atol);

/* Allocation hooks that fail the n-th allocation (0 = never) and count live blocks. */
void kt_oom_install(long fail_at);
void kt_oom_remove(void);
long kt_oom_live(void);   /* allocations not yet freed */
long kt_oom_count(void);  /* allocations attempted since install */

/* Runs fn(arg) with the n-th allocation failing, for n = 1, 2, ... until it returns something
 * other than KN_ERR_OOM (at most max tries). Checks every failure returns KN_ERR_OOM and leaks
 * nothing, and that the last call succeeded; returns the number of allocation sites failed. */
long kt_oom_loop(const char *what, kn_status (*fn)(void *arg), void *arg, long max);

/* Runs a printf-formatted shell command with stderr merged into stdout; kt_out holds what it
 * printed. Returns its exit status, or 128 + the signal that killed it. */
extern char kt_out[65536];
int kt_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A small image data set for training tests: n u8 images 1×side×side in three classes (a bright
 * row, column or diagonal, plus noise) from the seed. Free with kt_free_dataset (NULL is fine). */
kn_dataset *kt_lines_dataset(int64_t n, uint64_t seed, int side);
void kt_free_dataset(kn_dataset *ds);

#endif
