/* Out of memory: fail the k-th allocation of an operation for every k and
 * check nothing crashes and (under valgrind) nothing leaks. */
#include <stdint.h>

#include <criterion/criterion.h>

#include "testutil.h"
/* Private to libweft, exported for its tests. */
#include "strbuf.h"

TestSuite(oom, .init = tu_capture_log, .timeout = 120);

static wf_result cb_return(wf_result r, void *inner)
{
    wf_result_free(r);
    return wf_result_deferred(wf_deferred_ref(inner));
}

static void count_free(void *p)
{
    (*(int *)p)++;
}

static void quiet(wf_deferred *d, void *arg) {}

/* A canceller's owned arg is freed exactly once whatever fails: when
 * creating the deferred fails, when it is cancelled (the failure made for
 * the cancel may be the out-of-memory stand-in), when it is freed unfired. */
static bool owned_canceller_arg(void)
{
    bool ok = true;
    int freed = 0;
    wf_deferred *d = wf_deferred_new_cancellable_full(quiet, &freed, count_free);
    if (d != NULL) {
        ok &= wf_deferred_add_callback(d, tu_cb_add_one, NULL) == 0;
        wf_deferred_cancel(d);
        wf_result r;
        if (wf_deferred_take(d, &r) == 0)
            wf_result_free(r);
        wf_deferred_release(d);
    } else {
        ok = false;
    }
    cr_assert_eq(freed, 1, "cancelled: arg_free called %d times", freed);
    freed = 0;
    d = wf_deferred_new_cancellable_full(quiet, &freed, count_free);
    ok &= d != NULL;
    wf_deferred_release(d);
    cr_assert_eq(freed, 1, "freed unfired: arg_free called %d times", freed);
    return ok;
}

/* One run of a workload touching every allocating path of the core; it
 * must cope with any allocation failing. Returns true if it all worked. */
static bool workload(void)
{
    bool ok = true;
    wf_deferred *d = wf_deferred_new();
    if (d == NULL)
        return false;
    for (int i = 0; i < 10; i++) /* past the inline steps */
        ok &= wf_deferred_add_callback(d, tu_cb_add_one, NULL) == 0;
    wf_deferred *inner = wf_deferred_new();
    if (inner != NULL) {
        ok &= wf_deferred_add_callback(d, cb_return, inner) == 0;
    } else {
        ok = false;
    }
    wf_deferred_callback(d, wf_result_int(0));
    if (inner != NULL) {
        wf_deferred_callback(inner, wf_result_int(1));
        wf_deferred_release(inner);
    }
    wf_result r;
    if (wf_deferred_take(d, &r) == 0) {
        ok &= r.kind == WF_RESULT_VALUE;
        wf_result_free(r);
    } else {
        ok = false;
    }
    wf_deferred_release(d);

    wf_deferred *in[2] = {wf_succeed(wf_result_int(1)), wf_fail(wf_failure_new(WF_EUSER, "x"))};
    if (in[0] == NULL || in[1] == NULL) {
        wf_deferred_release(in[0]);
        wf_deferred_release(in[1]);
        return false;
    }
    wf_deferred *g = wf_gather(in, 2, WF_GATHER_ALL | WF_GATHER_CONSUME_ERRORS);
    ok &= g != NULL;
    wf_deferred_release(g);

    wf_semaphore *s = wf_semaphore_new(1);
    if (s == NULL)
        return false;
    wf_deferred *a = wf_semaphore_acquire(s), *b = wf_semaphore_acquire(s);
    ok &= a != NULL && b != NULL;
    if (a != NULL)
        wf_semaphore_release(s);
    wf_deferred_release(a);
    if (b != NULL)
        wf_deferred_take(b, &r) == 0 ? wf_result_free(r) : (void)0;
    wf_deferred_release(b);
    wf_semaphore_free(s);

    wf_clock *clock = wf_clock_manual_new();
    if (clock == NULL)
        return false;
    wf_deferred *t = wf_deferred_new();
    if (t != NULL) {
        ok &= wf_deferred_timeout(t, clock, 10) == 0;
        wf_clock_manual_advance(clock, 10);
        if (wf_deferred_take(t, &r) == 0)
            wf_result_free(r);
        wf_deferred_release(t);
    } else {
        ok = false;
    }
    wf_clock_free(clock);
    ok &= owned_canceller_arg();
    return ok;
}

Test(oom, every_allocation_failure_is_survived)
{
    tu_count_allocs();
    cr_assert(workload(), "the workload works with memory");
    size_t total = tu_allocs();
    cr_assert_gt(total, 10);
    for (long k = 0; k < (long)total; k++) {
        tu_fail_alloc_after(k);
        (void)workload(); /* may fail; must not crash or leak */
        tu_fail_alloc_after(-1);
    }
    cr_assert(workload(), "and works again once memory is back");
}

Test(oom, adding_past_the_inline_steps_reports_enomem_and_frees_the_arg)
{
    static int freed;
    tu_count_allocs();
    wf_deferred *d = wf_deferred_new();
    for (int i = 0; i < 4; i++)
        cr_assert_eq(wf_deferred_add_callback(d, tu_cb_add_one, NULL), 0);
    tu_fail_alloc_after(0);
    void count(void *p);
    cr_assert_eq(wf_deferred_add_callbacks_full(d, tu_cb_add_one, NULL, &freed, count), WF_ENOMEM);
    tu_fail_alloc_after(-1);
    cr_assert_eq(freed, 1, "the arg handed over is released");
    wf_deferred_callback(d, wf_result_int(0));
    cr_assert_eq(tu_int_of(d), 4);
    wf_deferred_release(d);
}

void count(void *p)
{
    (*(int *)p)++;
}

Test(oom, a_string_too_large_to_grow_is_out_of_memory_not_a_wrap)
{
    wf_strbuf b = {0};
    wf_strbuf_puts(&b, "head");
    wf_strbuf_reserve(&b, SIZE_MAX - 2);
    cr_assert(b.oom, "a size the doubling would overflow is refused");
    wf_strbuf_puts(&b, "more");
    cr_assert_null(wf_strbuf_finish(&b));
}
