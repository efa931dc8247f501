/* Behaviours of Twisted 22.4's Deferred checked against its own source and
 * test_defer.py (named where ported), and regressions found in review. */
#include "testutil.h"
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

TestSuite(twisted, .init = tu_capture_log, .timeout = 30);

/* 1. chainDeferred into a paused target: Twisted's chainDeferred is
 * addCallbacks(b.callback, b.errback), so a's later callbacks still run. */
Test(twisted, chain_into_paused_target_still_runs_source_chain)
{
    tu_rec rec = {0};
    wf_deferred *a = wf_deferred_new(), *b = wf_deferred_new();
    wf_deferred_pause(b);
    wf_deferred_chain(a, b);
    wf_deferred_add_callback(a, tu_cb_record, &rec);
    wf_deferred_callback(a, wf_result_int(1));
    cr_expect_str_eq(rec.log, "v0 ", "a's callback after the chain step must run (Twisted)");
    wf_deferred_unpause(b);
    wf_deferred_release(a);
    wf_deferred_release(b);
}

/* 2. Re-entrant run_callbacks on a deferred that sits in the middle of the
 * run stack overwrites its `next` link. */
static tu_rec rec2;
static wf_deferred *A2;
static wf_result cb_add_to_a(wf_result r, void *unused)
{
    (void)unused;
    wf_deferred_add_callback(A2, tu_cb_record, &rec2);
    return r;
}
static wf_result cb_w(wf_result r, void *unused)
{
    (void)unused;
    tu_rec_add(&rec2, "W ");
    return r;
}
Test(twisted, adding_to_a_deferred_lower_on_the_run_stack_keeps_the_stack)
{
    wf_deferred *w = wf_deferred_new(), *a = wf_deferred_new(), *t = wf_deferred_new();
    A2 = a;
    wf_deferred_chain(w, a); /* w: [CHAIN(a), cb_w] */
    wf_deferred_add_callback(w, cb_w, NULL);
    wf_deferred_chain(a, t);                        /* a: [CHAIN(t)] */
    wf_deferred_add_callback(t, cb_add_to_a, NULL); /* t: [cb_add_to_a] */
    wf_deferred_callback(w, wf_result_int(5));
    cr_expect(strstr(rec2.log, "W ") != NULL, "w's second callback never ran: log='%s'", rec2.log);
    cr_expect(wf_deferred_has_result(w), "w stuck");
    wf_deferred_release(w);
    wf_deferred_release(a);
    wf_deferred_release(t);
}

/* 3. Semaphore freed while a wf_semaphore_run job holds a token. */
static wf_deferred *job3;
static wf_result job(void *arg)
{
    (void)arg;
    job3 = wf_deferred_new();
    return wf_result_deferred(wf_deferred_ref(job3));
}
Test(twisted, semaphore_freed_while_a_run_job_holds_a_token)
{
    wf_semaphore *s = wf_semaphore_new(1);
    wf_deferred *r = wf_semaphore_run(s, job, NULL);
    wf_semaphore_free(s);
    wf_deferred_callback(job3, wf_result_int(1)); /* run_release -> freed s */
    cr_assert_eq(tu_int_of(r), 1, "the run still ends with the job's outcome");
    wf_deferred_release(r);
    wf_deferred_release(job3);
}

/* 4. gather with FIRST_SUCCESS|FIRST_FAILURE: Twisted errbacks on the first failure. */
Test(twisted, gather_first_success_and_first_failure_together)
{
    wf_deferred *a = wf_deferred_new(), *b = wf_deferred_new();
    wf_deferred *ins[2] = {wf_deferred_ref(a), wf_deferred_ref(b)};
    wf_deferred *g = wf_gather(
        ins, 2, WF_GATHER_FIRST_SUCCESS | WF_GATHER_FIRST_FAILURE | WF_GATHER_CONSUME_ERRORS);
    wf_deferred_errback(a, wf_failure_new(WF_EUSER, "x"));
    cr_expect(wf_deferred_called(g), "Twisted fires the DeferredList errback on the first failure");
    wf_deferred_callback(b, wf_result_int(1));
    wf_deferred_release(g);
    wf_deferred_release(a);
    wf_deferred_release(b);
}

/* 5. timeout on a deferred that has fired but waits on an inner one. */
static wf_result ret_inner(wf_result r, void *inner)
{
    wf_result_free(r);
    return wf_result_deferred(wf_deferred_ref(inner));
}
Test(twisted, timeout_on_fired_waiting_deferred)
{
    wf_clock *clock = wf_clock_manual_new();
    wf_deferred *d = wf_deferred_new(), *inner = wf_deferred_new();
    wf_deferred_add_callback(d, ret_inner, inner);
    wf_deferred_callback(d, wf_result_none());
    cr_assert_eq(wf_deferred_timeout(d, clock, 10), 0);
    wf_clock_manual_advance(clock, 20);
    cr_expect(wf_deferred_called(inner), "Twisted's addTimeout would cancel the inner deferred");
    if (!wf_deferred_called(inner))
        wf_deferred_cancel(inner);
    wf_deferred_release(inner);
    wf_deferred_release(d);
    wf_clock_free(clock);
}

/* Twisted test_callbackOrderPreserved, with wf_gather for gatherResults. */
static tu_rec rec6;
static wf_deferred *a6;
static wf_result first6(wf_result r, void *u)
{
    (void)u;
    wf_result_free(r);
    tu_rec_add(&rec6, "first ");
    wf_deferred *in[1] = {wf_deferred_ref(a6)};
    return wf_result_deferred(wf_gather(in, 1, WF_GATHER_ALL));
}
static wf_result second6(wf_result r, void *u)
{
    (void)u;
    wf_gather_result *g = r.u.ptr;
    tu_rec_add(&rec6, "second:%lld ", (long long)g->items[0].u.i);
    wf_result_free(r);
    return wf_result_none();
}
static wf_result cb6(wf_result r, void *u)
{
    (void)u;
    wf_result_free(r);
    tu_rec_add(&rec6, "cb ");
    wf_deferred *d = wf_deferred_new();
    wf_deferred_add_callback(d, first6, NULL);
    wf_deferred_add_callback(d, second6, NULL);
    wf_deferred_callback(d, wf_result_none());
    return wf_result_deferred(d);
}
static wf_result final6(wf_result r, void *u)
{
    (void)u;
    tu_rec_add(&rec6, "final ");
    return r;
}
Test(twisted, twisted_callbackOrderPreserved)
{
    a6 = wf_deferred_new();
    wf_deferred *outer = wf_deferred_new();
    wf_deferred_add_callback(outer, cb6, NULL);
    wf_deferred_add_callback(outer, final6, NULL);
    wf_deferred_callback(outer, wf_result_int(0));
    cr_expect_str_eq(rec6.log, "cb first ");
    wf_deferred_callback(a6, wf_result_int(7));
    cr_expect_str_eq(rec6.log, "cb first second:7 final ");
    wf_deferred_release(outer);
    wf_deferred_release(a6);
}

/* Twisted test_innerCallbacksPreserved */
static tu_rec rec7;
static wf_deferred *inner7;
static wf_result first7(wf_result r, void *u)
{
    (void)u;
    wf_result_free(r);
    tu_rec_add(&rec7, "first ");
    return wf_result_deferred(wf_deferred_ref(inner7));
}
static wf_result second7(wf_result r, void *u)
{
    (void)u;
    tu_rec_add(&rec7, "second:%lld ", (long long)r.u.i);
    return wf_result_int(r.u.i * 2);
}
static wf_result cb7(wf_result r, void *u)
{
    (void)u;
    wf_result_free(r);
    wf_deferred *d = wf_succeed(wf_result_int(1));
    wf_deferred_add_callback(d, first7, NULL);
    wf_deferred_add_callback(d, second7, NULL);
    return wf_result_deferred(d);
}
Test(twisted, twisted_innerCallbacksPreserved)
{
    inner7 = wf_deferred_new();
    wf_deferred *outer = wf_succeed(wf_result_int(0));
    wf_deferred_add_callback(outer, cb7, NULL);
    wf_deferred_callback(inner7, wf_result_int(21));
    wf_deferred_add_callback(outer, tu_cb_record, &rec7);
    cr_expect_str_eq(rec7.log, "first second:21 v42 ");
    wf_deferred_release(outer);
    wf_deferred_release(inner7);
}

/* Late input of a FIRST_SUCCESS gather: Twisted leaves the value in the input. */
static wf_result see(wf_result r, void *out)
{
    *(long long *)out = r.u.i;
    return r;
}
Test(twisted, late_input_value_after_first_success)
{
    wf_deferred *a = wf_deferred_new(), *b = wf_deferred_new();
    wf_deferred *in[2] = {wf_deferred_ref(a), wf_deferred_ref(b)};
    wf_deferred *g = wf_gather(in, 2, WF_GATHER_FIRST_SUCCESS);
    wf_deferred_callback(a, wf_result_int(1));
    wf_deferred_callback(b, wf_result_int(2));
    long long seen = -1;
    wf_deferred_add_callback(b, see, &seen);
    cr_expect_eq(seen, 2, "late input's value was dropped: saw %lld", seen);
    wf_deferred_release(g);
    wf_deferred_release(a);
    wf_deferred_release(b);
}

static wf_result ret_d(wf_result r, void *x)
{
    wf_result_free(r);
    return wf_result_deferred(wf_deferred_ref(x));
}
Test(twisted, twisted_resultOfDeferredResultOfDeferredOfFiredDeferredCalled)
{
    wf_deferred *first = wf_deferred_new(), *second = wf_deferred_new(), *third = wf_deferred_new();
    wf_deferred_add_callback(first, ret_d, second);
    wf_deferred_add_callback(second, ret_d, third);
    wf_deferred_callback(second, wf_result_none());
    wf_deferred_callback(first, wf_result_none());
    wf_deferred_callback(third, wf_result_int(3));
    long long seen = -1;
    wf_deferred_add_callback(second, see, &seen);
    cr_expect_eq(seen, 0);
    cr_expect_eq(tu_int_of(first), 3);
    wf_deferred_release(first);
    wf_deferred_release(second);
    wf_deferred_release(third);
}
static void canc_success(wf_deferred *d, void *a)
{
    (void)a;
    wf_deferred_callback(d, wf_result_int(8));
}
Test(twisted, twisted_timedOutProvidedCancelSuccess)
{
    wf_clock *clock = wf_clock_manual_new();
    wf_deferred *d = wf_deferred_new_cancellable(canc_success, NULL);
    wf_deferred_timeout(d, clock, 10);
    wf_clock_manual_advance(clock, 10);
    cr_expect_eq(tu_int_of(d), 8);
    wf_deferred_release(d);
    wf_clock_free(clock);
}
Test(twisted, twisted_errbackAddedBeforeTimeoutSuppressesCancellation)
{
    tu_rec rec = {0};
    wf_clock *clock = wf_clock_manual_new();
    wf_deferred *d = wf_deferred_new();
    wf_deferred_add_errback(d, tu_eb_recover, &rec);
    wf_deferred_timeout(d, clock, 10);
    wf_clock_manual_advance(clock, 10);
    cr_expect_eq(tu_int_of(d), 99);
    wf_deferred_release(d);
    wf_clock_free(clock);
}

Test(twisted, cancelSemaphoreAfterAcquired)
{
    wf_semaphore *s = wf_semaphore_new(1);
    wf_deferred *d = wf_semaphore_acquire(s);
    wf_deferred_cancel(d); /* fired already: nothing happens */
    cr_assert_eq(wf_semaphore_tokens(s), 0, "the token stays held");
    cr_assert_eq(tu_int_of(d), 0);
    wf_semaphore_release(s);
    wf_deferred_release(d);
    wf_semaphore_free(s);
}
