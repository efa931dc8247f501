/* Cancellation: with and without a canceller, before and after firing, and
 * through chained deferreds. */
#include <criterion/criterion.h>

#include "testutil.h"

TestSuite(cancel, .init = tu_capture_log, .timeout = 30);

Test(cancel, unfired_without_canceller_errbacks_cancelled_and_swallows_one_late_fire)
{
    tu_rec rec = {0};
    wf_deferred *d = wf_deferred_new();
    wf_deferred_add_errback(d, tu_eb_recover, &rec);
    wf_deferred_cancel(d);
    cr_assert_str_eq(rec.log, "r4 ");
    /* The work it stood for may still finish: its one late fire is dropped
     * quietly (Twisted's _suppressAlreadyCalled). */
    cr_assert_eq(wf_deferred_callback(d, wf_result_int(1)), 0);
    cr_assert_eq(tu_log_count(), 0);
    cr_assert_eq(tu_int_of(d), 99);
    /* A second one is a bug again. */
    cr_assert_eq(wf_deferred_callback(d, wf_result_int(2)), WF_EALREADY);
    wf_deferred_release(d);
}

static int cancels;

static void canceller_quiet(wf_deferred *d, void *arg)
{
    cancels++;
}

static void canceller_fires(wf_deferred *d, void *arg)
{
    cancels++;
    wf_deferred_callback(d, wf_result_int(-1));
}

Test(cancel, canceller_runs_and_may_fire_its_own_result)
{
    cancels = 0;
    wf_deferred *d = wf_deferred_new_cancellable(canceller_fires, NULL);
    wf_deferred_cancel(d);
    cr_assert_eq(cancels, 1);
    cr_assert_eq(tu_int_of(d), -1, "no Cancelled failure when the canceller fired");
    wf_deferred_release(d);
}

Test(cancel, quiet_canceller_then_cancelled_and_late_fire_is_an_error)
{
    cancels = 0;
    wf_deferred *d = wf_deferred_new_cancellable(canceller_quiet, NULL);
    wf_deferred_cancel(d);
    cr_assert_eq(cancels, 1);
    cr_assert_eq(wf_deferred_callback(d, wf_result_int(1)), WF_EALREADY,
                 "with a canceller, a late fire is not suppressed (as in Twisted)");
    cr_assert_eq(tu_code_of(d), WF_ECANCELED);
    wf_deferred_release(d);
}

Test(cancel, cancelling_a_fired_deferred_does_nothing)
{
    cancels = 0;
    wf_deferred *d = wf_deferred_new_cancellable(canceller_quiet, NULL);
    wf_deferred_callback(d, wf_result_int(5));
    wf_deferred_cancel(d);
    wf_deferred_cancel(d);
    cr_assert_eq(cancels, 0);
    cr_assert_eq(tu_int_of(d), 5);
    wf_deferred_release(d);
}

Test(cancel, cancel_twice_runs_the_canceller_once)
{
    cancels = 0;
    wf_deferred *d = wf_deferred_new_cancellable(canceller_quiet, NULL);
    wf_deferred_cancel(d);
    wf_deferred_cancel(d);
    cr_assert_eq(cancels, 1);
    cr_assert_eq(tu_code_of(d), WF_ECANCELED);
    wf_deferred_release(d);
}

static wf_result cb_return(wf_result r, void *inner)
{
    wf_result_free(r);
    return wf_result_deferred(wf_deferred_ref(inner));
}

Test(cancel, cancelling_an_outer_deferred_cancels_the_inner_it_waits_on)
{
    cancels = 0;
    tu_rec rec = {0};
    wf_deferred *inner = wf_deferred_new_cancellable(canceller_quiet, NULL);
    wf_deferred *outer = wf_deferred_new();
    wf_deferred_add_callback(outer, cb_return, inner);
    wf_deferred_add_errback(outer, tu_eb_record, &rec);
    wf_deferred_callback(outer, wf_result_none());
    wf_deferred_cancel(outer);
    cr_assert_eq(cancels, 1, "the inner's canceller ran");
    cr_assert_str_eq(rec.log, "f4 ", "the Cancelled failure came back out");
    cr_assert_eq(tu_code_of(outer), WF_ECANCELED);
    wf_deferred_release(inner);
    wf_deferred_release(outer);
}

Test(cancel, cancelling_a_chained_target_before_its_source_fires)
{
    wf_deferred *a = wf_deferred_new(), *b = wf_deferred_new();
    wf_deferred_chain(a, b);
    wf_deferred_cancel(b);
    cr_assert_eq(tu_code_of(b), WF_ECANCELED);
    /* b swallows its one late fire, which comes from a through the chain. */
    wf_deferred_callback(a, wf_result_int(1));
    cr_assert_eq(tu_log_count(), 0, "%s", tu_log_text());
    wf_deferred_release(a);
    wf_deferred_release(b);
}

static void canceller_releases(wf_deferred *d, void *arg)
{
    wf_deferred_release(d); /* the caller's only reference */
}

Test(cancel, canceller_may_drop_the_last_outside_reference)
{
    tu_rec rec = {0};
    wf_deferred *d = wf_deferred_new_cancellable(canceller_releases, NULL);
    wf_deferred_add_errback(d, tu_eb_record, &rec);
    wf_deferred_add_errback(d, tu_eb_recover, &rec);
    wf_deferred_cancel(d); /* cancel holds d until the errbacks have run */
    cr_assert_str_eq(rec.log, "f4 r4 ");
}

/* A canceller's arg handed over with wf_deferred_new_cancellable_full. */
struct owned {
    int frees;         /* arg_free calls */
    int cancels;       /* canceller calls */
    int frees_seen;    /* frees as the canceller or a step saw them */
    bool fire;         /* the canceller fires d itself */
    wf_deferred *hold; /* a reference arg_free drops, or NULL */
};

static void owned_free(void *arg)
{
    struct owned *o = arg;
    o->frees++;
    wf_deferred *hold = o->hold;
    o->hold = NULL;
    wf_deferred_release(hold);
}

static void owned_cancel(wf_deferred *d, void *arg)
{
    struct owned *o = arg;
    o->cancels++;
    if (o->fire)
        wf_deferred_callback(d, wf_result_int(-1));
    o->frees_seen = o->frees; /* arg still valid after firing d */
}

static wf_result see_frees(wf_result r, void *arg)
{
    struct owned *o = arg;
    o->frees_seen = o->frees;
    return r;
}

Test(cancel, owned_arg_is_freed_once_when_d_fires_before_its_steps)
{
    struct owned o = {0};
    wf_deferred *d = wf_deferred_new_cancellable_full(owned_cancel, &o, owned_free);
    wf_deferred_add_callback(d, see_frees, &o);
    cr_assert_eq(o.frees, 0);
    wf_deferred_callback(d, wf_result_int(3));
    cr_assert_eq(o.frees, 1);
    cr_assert_eq(o.frees_seen, 1, "freed before the steps ran");
    wf_deferred_cancel(d); /* fired: the canceller is gone */
    cr_assert_eq(o.cancels, 0);
    wf_deferred_release(d);
    cr_assert_eq(o.frees, 1, "not again when d is freed");
}

Test(cancel, owned_arg_is_freed_once_after_a_quiet_canceller)
{
    struct owned o = {0};
    wf_deferred *d = wf_deferred_new_cancellable_full(owned_cancel, &o, owned_free);
    wf_deferred_cancel(d);
    cr_assert_eq(o.cancels, 1);
    cr_assert_eq(o.frees_seen, 0, "valid while the canceller ran");
    cr_assert_eq(o.frees, 1);
    cr_assert_eq(tu_code_of(d), WF_ECANCELED);
    wf_deferred_release(d);
    cr_assert_eq(o.frees, 1);
}

Test(cancel, owned_arg_outlives_a_canceller_that_fires_d)
{
    struct owned o = {.fire = true};
    wf_deferred *d = wf_deferred_new_cancellable_full(owned_cancel, &o, owned_free);
    wf_deferred_cancel(d);
    cr_assert_eq(o.frees_seen, 0, "not freed by the fire inside the canceller");
    cr_assert_eq(o.frees, 1);
    cr_assert_eq(tu_int_of(d), -1);
    wf_deferred_release(d);
    cr_assert_eq(o.frees, 1);
}

Test(cancel, owned_arg_is_freed_with_an_unfired_deferred)
{
    struct owned o = {0};
    wf_deferred *d = wf_deferred_new_cancellable_full(owned_cancel, &o, owned_free);
    wf_deferred_release(d);
    cr_assert_eq(o.frees, 1);
    cr_assert_eq(o.cancels, 0);
}

Test(cancel, owned_arg_is_freed_when_a_chain_fires_d)
{
    struct owned o = {0};
    wf_deferred *src = wf_deferred_new();
    wf_deferred *d = wf_deferred_new_cancellable_full(owned_cancel, &o, owned_free);
    wf_deferred_chain(src, d);
    wf_deferred_callback(src, wf_result_int(5));
    cr_assert_eq(o.frees, 1);
    cr_assert_eq(tu_int_of(d), 5);
    wf_deferred_release(src);
    wf_deferred_release(d);
    cr_assert_eq(o.frees, 1);
}

Test(cancel, owned_arg_may_hold_the_reference_d_is_fired_through)
{
    tu_rec rec = {0};
    struct owned o = {0};
    wf_deferred *d = wf_deferred_new_cancellable_full(owned_cancel, &o, owned_free);
    o.hold = d; /* the arg owns the only reference */
    wf_deferred_add_callback(d, tu_cb_record, &rec);
    wf_deferred_callback(o.hold, wf_result_int(8)); /* frees d at the end */
    cr_assert_eq(o.frees, 1);
    cr_assert_str_eq(rec.log, "v8 ");
}
