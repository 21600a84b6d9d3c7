/* A minimal test harness: each tests/test_*.c defines TEST functions and
 * lists them in main with RUN. A failed CHECK prints file:line and the
 * values, marks the test failed and goes on; the program exits non-zero when
 * any test failed. tests/run.sh counts the PASS/FAIL lines. */
#ifndef SEGDA_TEST_CHECK_H
#define SEGDA_TEST_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failed_, check_total_failed_;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, \
                    #cond);                                                    \
            check_failed_ = 1;                                                 \
        }                                                                      \
    } while (0)

#define CHECK_MSG(cond, ...)                                                   \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, \
                    #cond);                                                    \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            check_failed_ = 1;                                                 \
        }                                                                      \
    } while (0)

/* |a-b| <= tol * max(1, |b|) */
#define CHECK_NEAR(a, b, tol)                                                  \
    do {                                                                       \
        double a_ = (a), b_ = (b);                                             \
        double s_ = fabs(b_) > 1 ? fabs(b_) : 1;                               \
        if (!(fabs(a_ - b_) <= (tol) * s_)) {                                  \
            fprintf(stderr, "  %s:%d: %s = %.9g, expected %s = %.9g\n",        \
                    __FILE__, __LINE__, #a, a_, #b, b_);                       \
            check_failed_ = 1;                                                 \
        }                                                                      \
    } while (0)

/* A status-returning call that must succeed; prints sd_errmsg otherwise. */
#define CHECK_OK(call)                                                         \
    do {                                                                       \
        int st_ = (int)(call);                                                 \
        if (st_ != 0) {                                                        \
            fprintf(stderr, "  %s:%d: %s failed (%d): %s\n", __FILE__,         \
                    __LINE__, #call, st_, sd_errmsg());                        \
            check_failed_ = 1;                                                 \
        }                                                                      \
    } while (0)

/* The message of the last error must contain `needle`. */
#define CHECK_ERR_HAS(needle)                                                  \
    CHECK_MSG(strstr(sd_errmsg(), (needle)) != NULL,                           \
              "message \"%s\" lacks \"%s\"", sd_errmsg(), (needle))

#define RUN(fn)                                                                \
    do {                                                                       \
        check_failed_ = 0;                                                     \
        fn();                                                                  \
        printf("%s %s\n", check_failed_ ? "FAIL" : "PASS", #fn);               \
        fflush(stdout);                                                        \
        check_total_failed_ |= check_failed_;                                  \
    } while (0)

#define TESTS_DONE() return check_total_failed_ ? 1 : 0

/* A CPU tensor's f32 data or gradient, for indexing in tests. */
#define F32(p) ((float *)(p))

#endif
