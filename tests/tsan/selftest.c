/* The runner's own test: one test for each outcome it must tell apart,
 * checked by selftest.sh against what the runner prints. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <criterion/criterion.h>

static int order;
static void suite_init(void)
{
    order = order * 10 + 1;
}
static void test_init(void)
{
    order = order * 10 + 2;
}
static void test_fini(void)
{
    fprintf(stderr, "fini ran, order %d\n", order);
}

TestSuite(self, .init = suite_init, .timeout = 30);

Test(self, passes, .init = test_init, .fini = test_fini)
{
    cr_assert_eq(order, 12, "the suite's init first, then the test's");
    cr_assert_str_eq("a", "a");
    cr_assert_float_eq(1.0, 1.05, 0.1);
    cr_expect(1);
}

Test(self, a_failed_assert_ends_the_test_and_fini_runs, .fini = test_fini)
{
    cr_assert_eq(1, 2, "one is not %d", 2);
    fprintf(stderr, "not reached\n");
}

Test(self, a_failed_expect_goes_on)
{
    cr_expect(0, "an expectation");
    fprintf(stderr, "after the expectation\n");
}

static void *assert_on_thread(void *arg)
{
    cr_assert(arg == NULL, "on another thread");
    return NULL;
}

Test(self, a_failed_assert_on_another_thread_fails)
{
    pthread_t t;
    pthread_create(&t, NULL, assert_on_thread, &order);
    pthread_join(t, NULL);
}

Test(self, a_signal_is_a_crash)
{
    raise(SIGKILL);
}

Test(self, the_time_limit_is_a_crash, .timeout = 0.3)
{
    sleep(10);
}

static int shared;
static void *race(void *arg)
{
    shared++;
    return arg;
}

Test(self, a_tsan_report_fails)
{
    pthread_t t;
    pthread_create(&t, NULL, race, NULL);
    shared++;
    pthread_join(t, NULL);
}

Test(self, skipped)
{
    cr_skip_test("skipped on purpose");
}

Test(self, disabled, .disabled = true)
{
    cr_assert(0);
}
