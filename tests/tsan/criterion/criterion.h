/* The part of Criterion's API that weft's suites use, for the
 * ThreadSanitizer build only (WEFT_TSAN): Criterion's workers cannot start
 * under TSan (Snaipe/Criterion#274: its arena is mapped where TSan keeps its
 * shadow memory), and its --no-fork mode runs every test in one process, so
 * one test's threads and globals would meet the next test's. tests/tsan/
 * runner.c runs each test in a forked child instead, as Criterion does.
 *
 * What is kept from Criterion: Test() and TestSuite() with .init, .fini,
 * .timeout (seconds; the test's, else the suite's) and .disabled; the suite's
 * init runs before the test's, the test's fini before the suite's; a failed
 * cr_assert* ends the test (its fini still runs), a failed cr_expect* marks
 * it failed and goes on. An assertion that fails on a thread other than the
 * test's ends the child at once, as a crash in Criterion would. */
#ifndef WF_TSAN_CRITERION_H
#define WF_TSAN_CRITERION_H

/* What Criterion's header brings in, which the suites rely on. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

/* The message arguments are optional, as in Criterion: an empty format
 * stands for none. */
#pragma GCC diagnostic ignored "-Wformat-zero-length"

struct cr_tsan_data {
    int sentinel_;
    void (*init)(void);
    void (*fini)(void);
    double timeout;
    bool disabled;
    const char *description;
};

void cr_tsan_add_test(const char *suite, const char *name, void (*fn)(void),
                      const struct cr_tsan_data *data, const char *file, int line);
void cr_tsan_add_suite(const char *suite, const struct cr_tsan_data *data);
/* A failed check: fatal ends the test. */
void cr_tsan_fail(bool fatal, const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void cr_tsan_fail_str(bool fatal, const char *file, int line, const char *expr, const char *a,
                      const char *b, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
void cr_tsan_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void cr_tsan_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define CR_TSAN_ID_(Suite, Name, Part) cr_tsan_##Suite##_##Name##_##Part

#define Test(Suite, Name, ...)                                                         \
    static void CR_TSAN_ID_(Suite, Name, fn)(void);                                    \
    static const struct cr_tsan_data CR_TSAN_ID_(Suite, Name, data) = {.sentinel_ = 0, \
                                                                       __VA_ARGS__};   \
    __attribute__((constructor)) static void CR_TSAN_ID_(Suite, Name, add)(void)       \
    {                                                                                  \
        cr_tsan_add_test(#Suite, #Name, CR_TSAN_ID_(Suite, Name, fn),                  \
                         &CR_TSAN_ID_(Suite, Name, data), __FILE__, __LINE__);         \
    }                                                                                  \
    static void CR_TSAN_ID_(Suite, Name, fn)(void)

#define TestSuite(Suite, ...)                                                                     \
    static const struct cr_tsan_data CR_TSAN_ID_(Suite, , suite) = {.sentinel_ = 0, __VA_ARGS__}; \
    __attribute__((constructor)) static void CR_TSAN_ID_(Suite, , add_suite)(void)                \
    {                                                                                             \
        cr_tsan_add_suite(#Suite, &CR_TSAN_ID_(Suite, , suite));                                  \
    }                                                                                             \
    struct cr_tsan_##Suite##_unused

#define CR_TSAN_CHECK_(Fatal, Cond, Expr, ...)                             \
    do {                                                                   \
        if (!(Cond))                                                       \
            cr_tsan_fail(Fatal, __FILE__, __LINE__, Expr, "" __VA_ARGS__); \
    } while (0)

#define CR_TSAN_STR_(Fatal, A, Op, B, Expr, ...)                                             \
    do {                                                                                     \
        const char *cr_a_ = (A), *cr_b_ = (B);                                               \
        if (!(strcmp(cr_a_, cr_b_) Op 0))                                                    \
            cr_tsan_fail_str(Fatal, __FILE__, __LINE__, Expr, cr_a_, cr_b_, "" __VA_ARGS__); \
    } while (0)

#define cr_assert(Cond, ...)     CR_TSAN_CHECK_(true, Cond, #Cond, __VA_ARGS__)
#define cr_expect(Cond, ...)     CR_TSAN_CHECK_(false, Cond, #Cond, __VA_ARGS__)
#define cr_assert_not(Cond, ...) CR_TSAN_CHECK_(true, !(Cond), "!(" #Cond ")", __VA_ARGS__)
#define cr_expect_not(Cond, ...) CR_TSAN_CHECK_(false, !(Cond), "!(" #Cond ")", __VA_ARGS__)
#define cr_assert_fail(...)      CR_TSAN_CHECK_(true, 0, "cr_assert_fail", __VA_ARGS__)
#define cr_expect_fail(...)      CR_TSAN_CHECK_(false, 0, "cr_expect_fail", __VA_ARGS__)

#define CR_TSAN_CMP_(Fatal, A, Op, B, ...) \
    CR_TSAN_CHECK_(Fatal, (A)Op(B), #A " " #Op " " #B, __VA_ARGS__)
#define cr_assert_eq(A, B, ...)  CR_TSAN_CMP_(true, A, ==, B, __VA_ARGS__)
#define cr_assert_neq(A, B, ...) CR_TSAN_CMP_(true, A, !=, B, __VA_ARGS__)
#define cr_assert_lt(A, B, ...)  CR_TSAN_CMP_(true, A, <, B, __VA_ARGS__)
#define cr_assert_leq(A, B, ...) CR_TSAN_CMP_(true, A, <=, B, __VA_ARGS__)
#define cr_assert_gt(A, B, ...)  CR_TSAN_CMP_(true, A, >, B, __VA_ARGS__)
#define cr_assert_geq(A, B, ...) CR_TSAN_CMP_(true, A, >=, B, __VA_ARGS__)
#define cr_expect_eq(A, B, ...)  CR_TSAN_CMP_(false, A, ==, B, __VA_ARGS__)
#define cr_expect_neq(A, B, ...) CR_TSAN_CMP_(false, A, !=, B, __VA_ARGS__)
#define cr_expect_lt(A, B, ...)  CR_TSAN_CMP_(false, A, <, B, __VA_ARGS__)
#define cr_expect_leq(A, B, ...) CR_TSAN_CMP_(false, A, <=, B, __VA_ARGS__)
#define cr_expect_gt(A, B, ...)  CR_TSAN_CMP_(false, A, >, B, __VA_ARGS__)
#define cr_expect_geq(A, B, ...) CR_TSAN_CMP_(false, A, >=, B, __VA_ARGS__)

#define cr_assert_null(P, ...)     CR_TSAN_CHECK_(true, (P) == NULL, #P " == NULL", __VA_ARGS__)
#define cr_assert_not_null(P, ...) CR_TSAN_CHECK_(true, (P) != NULL, #P " != NULL", __VA_ARGS__)
#define cr_expect_null(P, ...)     CR_TSAN_CHECK_(false, (P) == NULL, #P " == NULL", __VA_ARGS__)
#define cr_expect_not_null(P, ...) CR_TSAN_CHECK_(false, (P) != NULL, #P " != NULL", __VA_ARGS__)

#define cr_assert_float_eq(A, B, Eps, ...)                                                       \
    CR_TSAN_CHECK_(true, (A) - (B) <= (Eps) && (B) - (A) <= (Eps), #A " == " #B " within " #Eps, \
                   __VA_ARGS__)

#define cr_assert_str_eq(A, B, ...)  CR_TSAN_STR_(true, A, ==, B, #A " == " #B, __VA_ARGS__)
#define cr_assert_str_neq(A, B, ...) CR_TSAN_STR_(true, A, !=, B, #A " != " #B, __VA_ARGS__)
#define cr_expect_str_eq(A, B, ...)  CR_TSAN_STR_(false, A, ==, B, #A " == " #B, __VA_ARGS__)
#define cr_expect_str_neq(A, B, ...) CR_TSAN_STR_(false, A, !=, B, #A " != " #B, __VA_ARGS__)
#define cr_assert_str_empty(S, ...)  CR_TSAN_STR_(true, S, ==, "", #S " is empty", __VA_ARGS__)
#define cr_assert_str_not_empty(S, ...) \
    CR_TSAN_STR_(true, S, !=, "", #S " is not empty", __VA_ARGS__)

#define cr_skip_test(...) cr_tsan_skip("" __VA_ARGS__)
#define cr_log_info(...)  cr_tsan_log(__VA_ARGS__)

#endif
