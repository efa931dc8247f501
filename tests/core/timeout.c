/* Timeouts, on a manual clock and on a real libuv loop. */
#include <uv.h>

#include <criterion/criterion.h>

#include "testutil.h"

TestSuite(timeout, .init = tu_capture_log, .timeout = 30);

static int cancels;
static void canceller(wf_deferred *d, void *arg)
{
    cancels++;
}

Test(timeout, expiry_cancels_the_work_and_fails_with_timeout)
{
    cancels = 0;
    wf_clock *clock = wf_clock_manual_new();
    wf_deferred *d = wf_deferred_new_cancellable(canceller, NULL);
    cr_assert_eq(wf_deferred_timeout(d, clock, 100), 0);
    wf_clock_manual_advance(clock, 99);
    cr_assert_not(wf_deferred_called(d));
    wf_clock_manual_advance(clock, 1);
    cr_assert_eq(cancels, 1, "the work was cancelled");
    wf_result r;
    cr_assert_eq(wf_deferred_take(d, &r), 0);
    cr_assert_eq(wf_failure_code(r.u.failure), WF_ETIMEDOUT);
    cr_assert_eq(wf_failure_code(wf_failure_cause(r.u.failure)), WF_ECANCELED);
    wf_result_free(r);
    cr_assert_eq(wf_clock_manual_pending(clock), 0);
    wf_deferred_release(d);
    wf_clock_free(clock);
}

Test(timeout, firing_in_time_stops_the_timer)
{
    wf_clock *clock = wf_clock_manual_new();
    wf_deferred *d = wf_deferred_new();
    wf_deferred_timeout(d, clock, 100);
    cr_assert_eq(wf_clock_manual_pending(clock), 1);
    wf_deferred_callback(d, wf_result_int(5));
    cr_assert_eq(wf_clock_manual_pending(clock), 0, "no timer outlives the deferred's result");
    wf_clock_manual_advance(clock, 1000);
    cr_assert_eq(tu_int_of(d), 5);
    wf_deferred_release(d);
    wf_clock_free(clock);
}

Test(timeout, an_explicit_cancel_stays_a_cancel)
{
    wf_clock *clock = wf_clock_manual_new();
    wf_deferred *d = wf_deferred_new();
    wf_deferred_timeout(d, clock, 100);
    wf_deferred_cancel(d);
    cr_assert_eq(tu_code_of(d), WF_ECANCELED);
    wf_deferred_release(d);
    wf_clock_free(clock);
}

Test(timeout, releasing_an_unfired_deferred_stops_its_timer)
{
    wf_clock *clock = wf_clock_manual_new();
    wf_deferred *d = wf_deferred_new();
    wf_deferred_timeout(d, clock, 100);
    wf_deferred_release(d);
    cr_assert_eq(wf_clock_manual_pending(clock), 0);
    wf_clock_manual_advance(clock, 200);
    wf_clock_free(clock);
}

static wf_result record_time(wf_result r, void *arg)
{
    uint64_t *when = arg;
    *when = uv_hrtime();
    return r;
}

Test(timeout, on_a_libuv_loop)
{
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    wf_clock *clock = wf_clock_uv_new(&loop);
    wf_deferred *slow = wf_deferred_new(), *fast = wf_deferred_new();
    uint64_t fired = 0, start = uv_hrtime();
    wf_deferred_timeout(slow, clock, 30);
    wf_deferred_add_errback(slow, record_time, &fired);
    wf_deferred_timeout(fast, clock, 5000);
    wf_deferred_callback(fast, wf_result_int(1));
    uv_run(&loop, UV_RUN_DEFAULT); /* returns once no timer is left: bounded */
    double ms = (double)(fired - start) / 1e6;
    cr_assert_geq(ms, 30.0, "fired too early: %.1f ms", ms);
    /* The bound that matters: had the fast deferred's 5 s timeout not been
     * cancelled by its callback, uv_run would have waited for it. Well below
     * that, a loaded machine under valgrind still passes. */
    cr_assert_lt(ms, 4000.0, "fired far too late (the 5 s timer kept the loop?): %.1f ms", ms);
    cr_assert_eq(tu_code_of(slow), WF_ETIMEDOUT);
    cr_assert_eq(tu_int_of(fast), 1);
    wf_deferred_release(slow);
    wf_deferred_release(fast);
    wf_clock_free(clock);
    uv_run(&loop, UV_RUN_DEFAULT); /* let close callbacks free the timers */
    cr_assert_eq(uv_loop_close(&loop), 0, "no handle left open");
}

/* Keeps the loop thread busy for ms of real time, as a long callback does:
 * the loop's cached time (uv_now) does not move meanwhile. */
static void block_ms(uint64_t ms)
{
    uint64_t end = uv_hrtime() + ms * 1000000;
    while (uv_hrtime() < end)
        ;
}

struct late {
    wf_clock *clock;
    wf_deferred *d;
    uint64_t set, fired;
};

/* Sets d's 30 ms timeout after blocking the loop thread for 50 ms. */
static void set_late(struct late *l)
{
    block_ms(50);
    l->set = uv_hrtime();
    cr_assert_eq(wf_deferred_timeout(l->d, l->clock, 30), 0);
    wf_deferred_add_errback(l->d, record_time, &l->fired);
}

static void on_turn(uv_timer_t *h)
{
    set_late(h->data);
    uv_close((uv_handle_t *)h, NULL);
}

static void check_late(struct late *l)
{
    double ms = (double)(l->fired - l->set) / 1e6;
    cr_assert_geq(ms, 30.0, "fired %.1f ms after it was set, for 30 ms", ms);
    cr_assert_lt(ms, 4000.0, "fired far too late: %.1f ms", ms);
    cr_assert_eq(tu_code_of(l->d), WF_ETIMEDOUT);
}

Test(timeout, set_late_in_a_long_turn_counts_from_when_it_was_set)
{
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    struct late l = {.clock = wf_clock_uv_new(&loop), .d = wf_deferred_new()};
    uv_timer_t turn;
    uv_timer_init(&loop, &turn);
    turn.data = &l;
    uv_timer_start(&turn, on_turn, 0, 0);
    uv_run(&loop, UV_RUN_DEFAULT); /* returns once no timer is left: bounded */
    check_late(&l);
    wf_deferred_release(l.d);
    wf_clock_free(l.clock);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0, "no handle left open");
}

Test(timeout, set_before_the_loop_runs_counts_from_when_it_was_set)
{
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    struct late l = {.clock = wf_clock_uv_new(&loop), .d = wf_deferred_new()};
    set_late(&l); /* the loop's time is from uv_loop_init, 50 ms ago */
    uv_run(&loop, UV_RUN_DEFAULT);
    check_late(&l);
    wf_deferred_release(l.d);
    wf_clock_free(l.clock);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0, "no handle left open");
}

Test(timeout, freeing_a_libuv_clock_closes_its_timers)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    wf_clock *clock = wf_clock_uv_new(&loop);
    wf_deferred *d = wf_deferred_new();
    wf_deferred_timeout(d, clock, 60000);
    wf_deferred_callback(d, wf_result_int(2)); /* stops its timer */
    wf_timer *t = wf_clock_call_later(clock, 60000, NULL, NULL);
    cr_assert_not_null(t);
    wf_clock_free(clock);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    wf_deferred_release(d);
}
