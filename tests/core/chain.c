/* Chaining: callbacks that return deferreds, chainDeferred, and chains a
 * million deep that must not touch the C stack. */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "testutil.h"

TestSuite(chain, .init = tu_capture_log, .timeout = 120);

static wf_result cb_return_deferred(wf_result r, void *inner)
{
    wf_result_free(r);
    return wf_result_deferred(wf_deferred_ref(inner));
}

Test(chain, outer_waits_for_inner_that_fires_later)
{
    tu_rec rec = {0};
    wf_deferred *outer = wf_deferred_new(), *inner = wf_deferred_new();
    wf_deferred_add_callback(outer, cb_return_deferred, inner);
    wf_deferred_add_callback(outer, tu_cb_add_one, NULL);
    wf_deferred_add_callback(outer, tu_cb_record, &rec);
    wf_deferred_callback(outer, wf_result_int(0));
    cr_assert_str_empty(rec.log, "outer waits");
    cr_assert_null(wf_deferred_peek(outer));
    wf_deferred_callback(inner, wf_result_int(10));
    cr_assert_str_eq(rec.log, "v11 ");
    cr_assert_eq(tu_int_of(outer), 11);
    /* Twisted: the inner deferred gives its result away and keeps None. */
    const wf_result *ir = wf_deferred_peek(inner);
    cr_assert(ir != NULL && ir->kind == WF_RESULT_VALUE && ir->u.ptr == NULL);
    wf_deferred_release(inner);
    wf_deferred_release(outer);
}

Test(chain, inner_that_already_fired_is_used_at_once)
{
    tu_rec rec = {0};
    wf_deferred *inner = wf_succeed(wf_result_int(5));
    wf_deferred *outer = wf_deferred_new();
    wf_deferred_add_callback(outer, cb_return_deferred, inner);
    wf_deferred_add_callback(outer, tu_cb_record, &rec);
    wf_deferred_callback(outer, wf_result_none());
    cr_assert_str_eq(rec.log, "v5 ");
    wf_deferred_release(inner);
    wf_deferred_release(outer);
}

Test(chain, inner_failure_switches_outer_to_errbacks)
{
    tu_rec rec = {0};
    wf_deferred *outer = wf_deferred_new(), *inner = wf_deferred_new();
    wf_deferred_add_callback(outer, cb_return_deferred, inner);
    wf_deferred_add_callback(outer, tu_cb_record, &rec);
    wf_deferred_add_errback(outer, tu_eb_recover, &rec);
    wf_deferred_callback(outer, wf_result_none());
    wf_deferred_errback(inner, wf_failure_new(WF_EUSER + 5, "inner failed"));
    cr_assert_str_eq(rec.log, "r1005 ");
    cr_assert_eq(tu_log_count(), 0, "the failure moved to outer and was handled there");
    wf_deferred_release(inner);
    wf_deferred_release(outer);
}

Test(chain, paused_inner_holds_the_outer_until_unpaused)
{
    /* Twisted's testReturnDeferred. */
    tu_rec rec = {0};
    wf_deferred *d1 = wf_deferred_new(), *d2 = wf_deferred_new();
    wf_deferred_pause(d2);
    wf_deferred_add_callback(d1, cb_return_deferred, d2);
    wf_deferred_add_callback(d1, tu_cb_record, &rec);
    wf_deferred_callback(d1, wf_result_int(1));
    cr_assert_str_empty(rec.log);
    wf_deferred_callback(d2, wf_result_int(2));
    cr_assert_str_empty(rec.log);
    wf_deferred_unpause(d2);
    cr_assert_str_eq(rec.log, "v2 ");
    wf_deferred_release(d1);
    wf_deferred_release(d2);
}

Test(chain, paused_inner_with_a_result_is_waited_for)
{
    /* Twisted's test_chainedPausedDeferredWithResult. */
    tu_rec rec = {0};
    wf_deferred *paused = wf_deferred_new(), *chained = wf_deferred_new();
    wf_deferred_callback(paused, wf_result_int(77));
    wf_deferred_pause(paused);
    wf_deferred_add_callback(chained, cb_return_deferred, paused);
    wf_deferred_callback(chained, wf_result_none());
    wf_deferred_add_callback(chained, tu_cb_record, &rec);
    cr_assert_str_empty(rec.log);
    wf_deferred_unpause(paused);
    cr_assert_str_eq(rec.log, "v77 ");
    wf_deferred_release(paused);
    wf_deferred_release(chained);
}

Test(chain, paused_outer_does_not_stop_the_inner)
{
    /* Twisted's test_pausedDeferredChained. */
    tu_rec rec = {0};
    wf_deferred *first = wf_deferred_new(), *second = wf_deferred_new();
    wf_deferred_add_callback(first, cb_return_deferred, second);
    wf_deferred_callback(first, wf_result_none());
    wf_deferred_pause(first);
    wf_deferred_callback(second, wf_result_int(3));
    wf_deferred_add_callback(second, tu_cb_record, &rec);
    cr_assert_str_eq(rec.log, "v0 ", "second's later callbacks see None after the handover");
    wf_deferred_unpause(first);
    cr_assert_eq(tu_int_of(first), 3);
    wf_deferred_release(first);
    wf_deferred_release(second);
}

Test(chain, callback_returning_its_own_deferred_fails_cleanly)
{
    wf_deferred *d = wf_deferred_new();
    wf_deferred_add_callback(d, cb_return_deferred, d);
    wf_deferred_callback(d, wf_result_none());
    cr_assert_eq(tu_code_of(d), WF_EINVAL);
    wf_deferred_release(d);
}

Test(chain, outer_released_while_waiting_still_runs_its_chain)
{
    tu_rec rec = {0};
    wf_deferred *outer = wf_deferred_new(), *inner = wf_deferred_new();
    wf_deferred_add_callback(outer, cb_return_deferred, inner);
    wf_deferred_add_callback(outer, tu_cb_record, &rec);
    wf_deferred_callback(outer, wf_result_none());
    wf_deferred_release(outer); /* the inner keeps it alive */
    wf_deferred_callback(inner, wf_result_int(6));
    cr_assert_str_eq(rec.log, "v6 ");
    wf_deferred_release(inner);
}

Test(chain, chain_deferred_passes_the_result_on)
{
    tu_rec rec = {0};
    wf_deferred *a = wf_deferred_new(), *b = wf_deferred_new();
    wf_deferred_add_callback(b, tu_cb_record, &rec);
    cr_assert_eq(wf_deferred_chain(a, b), 0);
    wf_deferred_add_callback(a, tu_cb_record, &rec);
    wf_deferred_callback(a, wf_result_int(9));
    cr_assert_str_eq(rec.log, "v9 v0 ", "b got 9; a goes on with None");
    cr_assert(wf_deferred_called(b));
    wf_deferred_release(a);
    wf_deferred_release(b);
}

Test(chain, chain_into_a_fired_deferred_is_already_called_in_the_chain)
{
    tu_rec rec = {0};
    wf_deferred *a = wf_deferred_new(), *b = wf_succeed(wf_result_int(1));
    wf_deferred_chain(a, b);
    wf_deferred_add_errback(a, tu_eb_recover, &rec);
    wf_deferred_callback(a, wf_result_int(2));
    cr_assert_str_eq(rec.log, "r3 ");
    cr_assert_eq(tu_int_of(b), 1);
    wf_deferred_release(a);
    wf_deferred_release(b);
}

#define DEEP 1000000

static wf_result cb_next(wf_result r, void *next)
{
    wf_result_free(r);
    return wf_result_deferred(wf_deferred_ref(next));
}

static wf_deferred **make_nested(void)
{
    /* d[i]'s callback returns d[i+1]: firing d[0..DEEP-1] in order leaves
     * each one waiting on the next, DEEP levels deep. */
    wf_deferred **d = malloc((DEEP + 1) * sizeof *d);
    for (int i = 0; i <= DEEP; i++)
        d[i] = wf_deferred_new();
    for (int i = 0; i < DEEP; i++)
        wf_deferred_add_callback(d[i], cb_next, d[i + 1]);
    for (int i = 0; i < DEEP; i++)
        wf_deferred_callback(d[i], wf_result_none());
    return d;
}

Test(chain, a_million_nested_deferreds_resolve_without_recursion)
{
    wf_deferred **d = make_nested();
    cr_assert_not(wf_deferred_has_result(d[0]));
    wf_deferred_callback(d[DEEP], wf_result_int(12345));
    cr_assert_eq(tu_int_of(d[0]), 12345);
    for (int i = 0; i <= DEEP; i++)
        wf_deferred_release(d[i]);
    free(d);
}

Test(chain, a_million_nested_deferreds_cancel_without_recursion)
{
    wf_deferred **d = make_nested();
    wf_deferred_cancel(d[0]); /* reaches the innermost, d[DEEP] */
    cr_assert(wf_deferred_called(d[DEEP]));
    cr_assert_eq(tu_code_of(d[0]), WF_ECANCELED);
    for (int i = 0; i <= DEEP; i++)
        wf_deferred_release(d[i]);
    free(d);
}

static wf_result cb_record_into(wf_result r, void *out)
{
    *(long long *)out = r.u.i;
    return r;
}

Test(chain, a_million_nested_deferreds_nobody_holds_finish_and_free_themselves)
{
    /* Each waiting deferred is held by the one it waits on, so a chain whose
     * outside references are all dropped still runs to the end (as with
     * Twisted's garbage collector) and frees itself when the innermost
     * fires. valgrind and LeakSanitizer check that nothing is left. */
    long long seen = 0;
    wf_deferred **d = make_nested();
    wf_deferred_add_callback(d[0], cb_record_into, &seen);
    for (int i = 0; i < DEEP; i++)
        wf_deferred_release(d[i]);
    wf_deferred_callback(d[DEEP], wf_result_int(5));
    cr_assert_eq(seen, 5);
    wf_deferred_release(d[DEEP]);
    free(d);
}

Test(chain, a_million_unfired_chain_deferred_links_free_without_recursion)
{
    wf_deferred **d = malloc((DEEP + 1) * sizeof *d);
    for (int i = 0; i <= DEEP; i++)
        d[i] = wf_deferred_new();
    for (int i = 0; i < DEEP; i++)
        wf_deferred_chain(d[i], d[i + 1]);
    /* From the far end first: each link is then freed by the release of
     * the one before it, a million deep. */
    for (int i = DEEP; i >= 0; i--)
        wf_deferred_release(d[i]);
    free(d);
}

Test(chain, a_million_chain_deferred_links_run_without_recursion)
{
    wf_deferred **d = malloc((DEEP + 1) * sizeof *d);
    for (int i = 0; i <= DEEP; i++)
        d[i] = wf_deferred_new();
    for (int i = 0; i < DEEP; i++)
        wf_deferred_chain(d[i], d[i + 1]);
    wf_deferred_callback(d[0], wf_result_int(7));
    cr_assert_eq(tu_int_of(d[DEEP]), 7);
    for (int i = 0; i <= DEEP; i++)
        wf_deferred_release(d[i]);
    free(d);
}
