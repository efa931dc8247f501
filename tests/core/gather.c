/* Gather (DeferredList): every mode, consumeErrors, cancel, empty lists. */
#include <string.h>

#include <criterion/criterion.h>

#include "testutil.h"

TestSuite(gather, .init = tu_capture_log, .timeout = 30);

static const wf_gather_result *gathered(wf_deferred *g)
{
    const wf_result *r = wf_deferred_peek(g);
    cr_assert_not_null(r, "gather has not fired");
    cr_assert_eq(r->kind, WF_RESULT_VALUE, "gather failed");
    return r->u.ptr;
}

Test(gather, all_waits_for_every_input_and_keeps_their_order)
{
    wf_deferred *in[3] = {wf_deferred_new(), wf_deferred_new(), wf_succeed(wf_result_int(0))};
    wf_deferred *a = wf_deferred_ref(in[0]), *b = wf_deferred_ref(in[1]);
    wf_deferred *g = wf_gather(in, 3, WF_GATHER_ALL);
    cr_assert_not(wf_deferred_called(g));
    wf_deferred_callback(b, wf_result_int(2));
    cr_assert_not(wf_deferred_called(g));
    wf_deferred_errback(a, wf_failure_new(WF_EUSER + 1, "first failed"));
    const wf_gather_result *res = gathered(g);
    cr_assert_eq(res->n, 3);
    cr_assert_eq(res->items[0].kind, WF_RESULT_FAILURE);
    cr_assert_eq(wf_failure_code(res->items[0].u.failure), WF_EUSER + 1);
    cr_assert_eq(res->items[1].u.i, 2);
    cr_assert_eq(res->items[2].u.i, 0);
    wf_deferred_release(g);
    cr_assert_eq(tu_log_count(), 0);
    /* Without CONSUME_ERRORS the failure is still in the input, unhandled. */
    wf_deferred_release(a);
    cr_assert_eq(tu_log_count(), 1, "%s", tu_log_text());
    cr_assert(strstr(tu_log_text(), "first failed") != NULL);
    wf_deferred_release(b);
}

Test(gather, consume_errors_leaves_none_in_the_inputs)
{
    wf_deferred *bad = wf_fail(wf_failure_new(WF_EUSER, "oh noes"));
    wf_deferred *in[2] = {wf_succeed(wf_result_int(1)), wf_deferred_ref(bad)};
    wf_deferred *g = wf_gather(in, 2, WF_GATHER_ALL | WF_GATHER_CONSUME_ERRORS);
    cr_assert_eq(gathered(g)->items[1].kind, WF_RESULT_FAILURE);
    const wf_result *left = wf_deferred_peek(bad);
    cr_assert(left->kind == WF_RESULT_VALUE && left->u.ptr == NULL);
    wf_deferred_release(bad);
    wf_deferred_release(g);
    cr_assert_eq(tu_log_count(), 0, "%s", tu_log_text());
}

Test(gather, first_success_fires_with_the_value_and_its_index)
{
    wf_deferred *in[3] = {wf_deferred_new(), wf_deferred_new(), wf_deferred_new()};
    wf_deferred *keep[3];
    for (int i = 0; i < 3; i++)
        keep[i] = wf_deferred_ref(in[i]);
    wf_deferred *g = wf_gather(in, 3, WF_GATHER_FIRST_SUCCESS | WF_GATHER_CONSUME_ERRORS);
    wf_deferred_errback(keep[0], wf_failure_new(WF_EUSER, "no"));
    cr_assert_not(wf_deferred_called(g));
    wf_deferred_callback(keep[2], wf_result_int(22));
    const wf_gather_result *res = gathered(g);
    cr_assert_eq(res->n, 1);
    cr_assert_eq(res->index, 2);
    cr_assert_eq(res->items[0].u.i, 22);
    wf_deferred_callback(keep[1], wf_result_int(11)); /* after the gather fired: dropped */
    for (int i = 0; i < 3; i++)
        wf_deferred_release(keep[i]);
    wf_deferred_release(g);
}

Test(gather, first_success_with_no_success_fails_with_the_last_failure)
{
    wf_deferred *in[2] = {wf_fail(wf_failure_new(WF_EUSER + 1, "a")),
                          wf_fail(wf_failure_new(WF_EUSER + 2, "b"))};
    wf_deferred *g = wf_gather(in, 2, WF_GATHER_FIRST_SUCCESS | WF_GATHER_CONSUME_ERRORS);
    wf_result r;
    cr_assert_eq(wf_deferred_take(g, &r), 0);
    cr_assert_eq(wf_failure_code(r.u.failure), WF_EFIRSTERROR);
    cr_assert_eq(wf_failure_code(wf_failure_cause(r.u.failure)), WF_EUSER + 2);
    size_t index = 99;
    wf_failure *sub = NULL;
    cr_assert(wf_gather_first_error(r.u.failure, &index, &sub));
    cr_assert_eq(index, 1, "the last input to fail");
    cr_assert_eq(wf_failure_code(sub), WF_EUSER + 2);
    wf_result_free(r);
    wf_deferred_release(g);
}

Test(gather, first_failure_errbacks_with_first_error_and_its_cause)
{
    wf_deferred *in[3] = {wf_deferred_new(), wf_deferred_new(), wf_deferred_new()};
    wf_deferred *keep[3];
    for (int i = 0; i < 3; i++)
        keep[i] = wf_deferred_ref(in[i]);
    wf_deferred *g = wf_gather(in, 3, WF_GATHER_FIRST_FAILURE | WF_GATHER_CONSUME_ERRORS);
    wf_deferred_callback(keep[0], wf_result_int(1));
    wf_failure *broke = wf_failure_new(WF_EUSER + 9, "middle broke");
    wf_deferred_errback(keep[1], wf_failure_ref(broke));
    wf_result r;
    cr_assert_eq(wf_deferred_take(g, &r), 0);
    cr_assert_eq(wf_failure_code(r.u.failure), WF_EFIRSTERROR);
    cr_assert(strstr(wf_failure_message(r.u.failure), "#1") != NULL);
    cr_assert_eq(wf_failure_code(wf_failure_cause(r.u.failure)), WF_EUSER + 9);
    /* FirstError.index and .subFailure, as data. */
    size_t index = 99;
    wf_failure *sub = NULL;
    cr_assert(wf_gather_first_error(r.u.failure, &index, &sub));
    cr_assert_eq(index, 1);
    cr_assert_eq(sub, broke, "the input's own failure, not a copy");
    cr_assert(wf_gather_first_error(r.u.failure, NULL, NULL), "either out may be NULL");
    sub = wf_failure_ref(sub); /* kept past the gather's failure */
    wf_result_free(r);
    cr_assert_eq(wf_failure_code(sub), WF_EUSER + 9);
    wf_failure_release(sub);
    wf_failure_release(broke);
    wf_deferred_errback(keep[2], wf_failure_new(WF_EUSER, "late"));
    for (int i = 0; i < 3; i++)
        wf_deferred_release(keep[i]);
    wf_deferred_release(g);
    cr_assert_eq(tu_log_count(), 0, "%s", tu_log_text());
}

Test(gather, only_a_gathers_first_error_has_an_index)
{
    size_t index = 7;
    wf_failure *sub = NULL;
    wf_failure *by_hand = wf_failure_new(WF_EFIRSTERROR, "gathered deferred #3 failed");
    wf_failure_set_cause(by_hand, wf_failure_new(WF_EUSER, "x"));
    cr_assert_not(wf_gather_first_error(by_hand, &index, &sub), "made by hand: no index");
    wf_failure *other = wf_failure_new(WF_EUSER, "y");
    cr_assert_not(wf_gather_first_error(other, &index, &sub));
    cr_assert_not(wf_gather_first_error(NULL, &index, &sub));
    cr_assert_eq(index, 7, "left alone");
    cr_assert_null(sub, "left alone");
    wf_failure_release(by_hand);
    wf_failure_release(other);

    wf_deferred *g = wf_gather(NULL, 0, WF_GATHER_FIRST_SUCCESS);
    wf_result r;
    cr_assert_eq(wf_deferred_take(g, &r), 0);
    cr_assert_eq(wf_failure_code(r.u.failure), WF_EFIRSTERROR);
    cr_assert_not(wf_gather_first_error(r.u.failure, &index, &sub), "no input failed");
    wf_result_free(r);
    wf_deferred_release(g);
}

Test(gather, first_failure_index_is_the_inputs_position_not_its_order)
{
    wf_deferred *in[4] = {wf_deferred_new(), wf_deferred_new(), wf_deferred_new(),
                          wf_deferred_new()};
    wf_deferred *keep[4];
    for (int i = 0; i < 4; i++)
        keep[i] = wf_deferred_ref(in[i]);
    wf_deferred *g = wf_gather(in, 4, WF_GATHER_FIRST_FAILURE | WF_GATHER_CONSUME_ERRORS);
    wf_deferred_callback(keep[1], wf_result_int(1));
    wf_deferred_errback(keep[3], wf_failure_new(WF_EUSER + 3, "last one"));
    wf_deferred_errback(keep[0], wf_failure_new(WF_EUSER, "too late"));
    const wf_result *r = wf_deferred_peek(g);
    size_t index = 99;
    wf_failure *sub = NULL;
    cr_assert(wf_gather_first_error(r->u.failure, &index, &sub));
    cr_assert_eq(index, 3);
    cr_assert_eq(wf_failure_code(sub), WF_EUSER + 3);
    wf_deferred_cancel(keep[2]);
    wf_result taken;
    cr_assert_eq(wf_deferred_take(g, &taken), 0);
    wf_result_free(taken);
    for (int i = 0; i < 4; i++)
        wf_deferred_release(keep[i]);
    wf_deferred_release(g);
    cr_assert_eq(tu_log_count(), 0, "%s", tu_log_text());
}

Test(gather, first_failure_with_all_successes_gives_every_value)
{
    wf_deferred *in[2] = {wf_succeed(wf_result_int(1)), wf_succeed(wf_result_int(2))};
    wf_deferred *g = wf_gather(in, 2, WF_GATHER_FIRST_FAILURE);
    const wf_gather_result *res = gathered(g);
    cr_assert_eq(res->items[0].u.i + res->items[1].u.i, 3);
    wf_deferred_release(g);
}

Test(gather, empty_lists_fire_at_once)
{
    wf_deferred *g = wf_gather(NULL, 0, WF_GATHER_ALL);
    cr_assert_eq(gathered(g)->n, 0);
    wf_deferred_release(g);
    g = wf_gather(NULL, 0, WF_GATHER_FIRST_SUCCESS);
    cr_assert_eq(tu_code_of(g), WF_EFIRSTERROR);
    wf_deferred_release(g);
}

static int cancels;
static void canceller(wf_deferred *d, void *arg)
{
    cancels++;
}

Test(gather, cancelling_the_gather_cancels_unfired_inputs)
{
    cancels = 0;
    wf_deferred *in[3] = {wf_deferred_new_cancellable(canceller, NULL),
                          wf_succeed(wf_result_int(1)),
                          wf_deferred_new_cancellable(canceller, NULL)};
    wf_deferred *g = wf_gather(in, 3, WF_GATHER_ALL | WF_GATHER_CONSUME_ERRORS);
    wf_deferred_cancel(g);
    cr_assert_eq(cancels, 2);
    const wf_gather_result *res = gathered(g);
    cr_assert_eq(wf_failure_code(res->items[0].u.failure), WF_ECANCELED);
    cr_assert_eq(res->items[1].u.i, 1);
    cr_assert_eq(wf_failure_code(res->items[2].u.failure), WF_ECANCELED);
    wf_deferred_release(g);
}

static wf_result take_first(wf_result r, void *arg)
{
    wf_gather_result *res = r.u.ptr;
    wf_result v = res->items[0];
    res->items[0] = wf_result_none();
    wf_result_free(r);
    return v;
}

Test(gather, items_can_be_moved_out_of_the_result)
{
    wf_deferred *in[1] = {wf_succeed(wf_result_value(strdup("poem"), free))};
    wf_deferred *g = wf_gather(in, 1, WF_GATHER_ALL);
    wf_deferred_add_callback(g, take_first, NULL);
    cr_assert_str_eq(wf_deferred_peek(g)->u.ptr, "poem");
    wf_deferred_release(g);
}
