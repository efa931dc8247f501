/* DeferredSemaphore: limits, order, cancel, run. */
#include <criterion/criterion.h>

#include "testutil.h"

TestSuite(semaphore, .init = tu_capture_log, .timeout = 30);

Test(semaphore, acquires_beyond_the_limit_wait_in_order)
{
    tu_rec rec = {0};
    wf_semaphore *s = wf_semaphore_new(2);
    cr_assert_null(wf_semaphore_new(0));
    wf_deferred *a = wf_semaphore_acquire(s), *b = wf_semaphore_acquire(s);
    cr_assert(wf_deferred_called(a) && wf_deferred_called(b));
    cr_assert_eq(wf_semaphore_tokens(s), 0);
    wf_deferred *c = wf_semaphore_acquire(s), *d = wf_semaphore_acquire(s);
    wf_deferred_add_callback(c, tu_cb_record, &rec);
    wf_deferred_add_callback(d, tu_cb_record, &rec);
    cr_assert_eq(wf_semaphore_waiting(s), 2);
    cr_assert_not(wf_deferred_called(c));
    wf_semaphore_release(s);
    cr_assert(wf_deferred_called(c) && !wf_deferred_called(d), "first come, first served");
    wf_semaphore_release(s);
    cr_assert(wf_deferred_called(d));
    cr_assert_eq(wf_semaphore_tokens(s), 0);
    wf_semaphore_release(s);
    wf_semaphore_release(s);
    cr_assert_eq(wf_semaphore_tokens(s), 2);
    cr_assert_eq(wf_semaphore_release(s), WF_ESTATE, "no token is held");
    wf_deferred *all[] = {a, b, c, d};
    for (int i = 0; i < 4; i++)
        wf_deferred_release(all[i]);
    wf_semaphore_free(s);
}

Test(semaphore, cancelling_a_waiting_acquire_leaves_the_queue)
{
    wf_semaphore *s = wf_semaphore_new(1);
    wf_deferred *a = wf_semaphore_acquire(s), *b = wf_semaphore_acquire(s);
    wf_deferred *c = wf_semaphore_acquire(s);
    wf_deferred_cancel(b);
    cr_assert_eq(tu_code_of(b), WF_ECANCELED);
    cr_assert_eq(wf_semaphore_waiting(s), 1);
    wf_semaphore_release(s);
    cr_assert(wf_deferred_called(c), "the token skipped the cancelled waiter");
    wf_deferred_release(a);
    wf_deferred_release(b);
    wf_deferred_release(c);
    wf_semaphore_free(s);
}

Test(semaphore, free_fails_the_waiters)
{
    tu_rec rec = {0};
    wf_semaphore *s = wf_semaphore_new(1);
    wf_deferred *a = wf_semaphore_acquire(s), *b = wf_semaphore_acquire(s);
    wf_deferred_add_errback(b, tu_eb_recover, &rec);
    wf_semaphore_free(s);
    cr_assert_str_eq(rec.log, "r4 ");
    wf_deferred_release(a);
    wf_deferred_release(b);
}

static wf_deferred *pending[4];
static int started;

static wf_result job(void *arg)
{
    int i = (int)(intptr_t)arg;
    started++;
    pending[i] = wf_deferred_new();
    return wf_result_deferred(wf_deferred_ref(pending[i]));
}

Test(semaphore, run_limits_concurrency_and_releases_on_success_and_failure)
{
    wf_semaphore *s = wf_semaphore_new(2);
    wf_deferred *r[4];
    for (int i = 0; i < 4; i++)
        r[i] = wf_semaphore_run(s, job, (void *)(intptr_t)i);
    cr_assert_eq(started, 2, "only two run at once");
    wf_deferred_errback(pending[0], wf_failure_new(WF_EUSER, "job 0 failed"));
    cr_assert_eq(started, 3, "a failure gives the token back too");
    wf_deferred_callback(pending[1], wf_result_int(1));
    cr_assert_eq(started, 4);
    wf_deferred_callback(pending[2], wf_result_int(2));
    wf_deferred_callback(pending[3], wf_result_int(3));
    cr_assert_eq(wf_semaphore_tokens(s), 2);
    cr_assert_eq(tu_code_of(r[0]), WF_EUSER);
    cr_assert_eq(tu_int_of(r[3]), 3);
    for (int i = 0; i < 4; i++) {
        wf_deferred_release(r[i]);
        wf_deferred_release(pending[i]);
    }
    wf_semaphore_free(s);
}
