/* Deferred basics: callback order, result passing, errbacks, already-fired
 * deferreds, double fire, pause, references and unhandled failures. */
#include <string.h>

#include <criterion/criterion.h>

#include "testutil.h"

TestSuite(deferred, .init = tu_capture_log, .timeout = 30);

Test(deferred, callbacks_run_in_order_passing_results)
{
    tu_rec rec = {0};
    wf_deferred *d = wf_deferred_new();
    cr_assert_not_null(d);
    wf_deferred_add_callback(d, tu_cb_record, &rec);
    wf_deferred_add_callback(d, tu_cb_add_one, NULL);
    wf_deferred_add_callback(d, tu_cb_record, &rec);
    wf_deferred_add_callback(d, tu_cb_add_one, NULL);
    wf_deferred_add_callback(d, tu_cb_record, &rec);
    cr_assert_str_empty(rec.log, "nothing runs before the deferred fires");
    cr_assert_not(wf_deferred_called(d));
    cr_assert_eq(wf_deferred_callback(d, wf_result_int(1)), 0);
    cr_assert_str_eq(rec.log, "v1 v2 v3 ");
    cr_assert_eq(tu_int_of(d), 3);
    wf_deferred_release(d);
}

Test(deferred, errback_recovers_and_chain_returns_to_callbacks)
{
    tu_rec rec = {0};
    wf_deferred *d = wf_deferred_new();
    wf_deferred_add_callback(d, tu_cb_record, &rec); /* skipped: a failure arrives */
    wf_deferred_add_errback(d, tu_eb_record, &rec);
    wf_deferred_add_errback(d, tu_eb_recover, &rec);
    wf_deferred_add_errback(d, tu_eb_record, &rec); /* skipped: recovered */
    wf_deferred_add_callback(d, tu_cb_record, &rec);
    wf_deferred_errback(d, wf_failure_new(WF_EUSER + 1, "boom"));
    cr_assert_str_eq(rec.log, "f1001 r1001 v99 ");
    cr_assert_eq(tu_int_of(d), 99);
    cr_assert_eq(tu_log_count(), 0);
    wf_deferred_release(d);
}

static wf_result cb_fail(wf_result r, void *arg)
{
    wf_result_free(r);
    return WF_FAIL(WF_EUSER + 7, "callback failed");
}

Test(deferred, failing_callback_switches_to_errbacks)
{
    tu_rec rec = {0};
    wf_deferred *d = wf_deferred_new();
    wf_deferred_add_callback(d, cb_fail, NULL);
    wf_deferred_add_callback(d, tu_cb_record, &rec);
    wf_deferred_add_errback(d, tu_eb_record, &rec);
    wf_deferred_callback(d, wf_result_int(5));
    cr_assert_str_eq(rec.log, "f1007 ");
    cr_assert_eq(tu_code_of(d), WF_EUSER + 7);
    wf_deferred_release(d);
}

Test(deferred, add_callbacks_picks_one_of_the_pair)
{
    tu_rec rec = {0};
    wf_deferred *d = wf_deferred_new();
    wf_deferred_add_callbacks(d, tu_cb_record, tu_eb_recover, &rec);
    wf_deferred_add_callbacks(d, tu_cb_record, tu_eb_recover, &rec);
    wf_deferred_errback(d, wf_failure_new(WF_EUSER, "x"));
    /* The first pair's errback recovers; the second pair's callback runs. */
    cr_assert_str_eq(rec.log, "r1000 v99 ");
    wf_deferred_release(d);
}

static wf_result both_record(wf_result r, void *rec)
{
    tu_rec_add(rec, "%s ", wf_result_is_failure(r) ? "F" : "V");
    return r;
}

Test(deferred, add_both_sees_values_and_failures)
{
    tu_rec rec = {0};
    wf_deferred *a = wf_deferred_new(), *b = wf_deferred_new();
    wf_deferred_add_both(a, both_record, &rec);
    wf_deferred_add_both(b, both_record, &rec);
    wf_deferred_callback(a, wf_result_int(1));
    wf_deferred_errback(b, wf_failure_new(WF_EUSER, "x"));
    cr_assert_str_eq(rec.log, "V F ");
    cr_assert_eq(tu_code_of(b), WF_EUSER);
    wf_deferred_release(a);
    wf_deferred_release(b);
}

Test(deferred, callback_added_to_fired_deferred_runs_at_once)
{
    tu_rec rec = {0};
    wf_deferred *d = wf_succeed(wf_result_int(41));
    cr_assert(wf_deferred_called(d));
    wf_deferred_add_callback(d, tu_cb_add_one, NULL);
    wf_deferred_add_callback(d, tu_cb_record, &rec);
    cr_assert_str_eq(rec.log, "v42 ");
    wf_deferred_release(d);
}

Test(deferred, fail_makes_a_fired_failed_deferred)
{
    tu_rec rec = {0};
    wf_deferred *d = wf_fail(wf_failure_new(WF_EUSER + 3, "no"));
    wf_deferred_add_errback(d, tu_eb_recover, &rec);
    cr_assert_str_eq(rec.log, "r1003 ");
    cr_assert_eq(tu_int_of(d), 99);
    wf_deferred_release(d);
}

static wf_result fn_value(void *arg)
{
    return wf_result_int(7);
}

static wf_result fn_failure(void *arg)
{
    return WF_FAIL(WF_EUSER + 2, "synchronous failure");
}

static wf_result fn_deferred(void *arg)
{
    return wf_result_deferred(wf_deferred_ref(arg));
}

Test(deferred, maybe_wraps_value_failure_and_deferred)
{
    wf_deferred *a = wf_maybe(fn_value, NULL);
    cr_assert_eq(tu_int_of(a), 7);
    wf_deferred *b = wf_maybe(fn_failure, NULL);
    cr_assert_eq(tu_code_of(b), WF_EUSER + 2);
    wf_deferred *inner = wf_deferred_new();
    wf_deferred *c = wf_maybe(fn_deferred, inner);
    cr_assert_eq(c, inner, "maybe returns a returned deferred as it is");
    cr_assert_not(wf_deferred_called(c));
    wf_deferred_callback(inner, wf_result_int(3));
    cr_assert_eq(tu_int_of(c), 3);
    wf_deferred_release(a);
    wf_deferred_release(b);
    wf_deferred_release(c);
    wf_deferred_release(inner);
}

Test(deferred, firing_twice_is_an_already_called_failure_and_changes_nothing)
{
    wf_deferred *d = wf_deferred_new();
    cr_assert_eq(wf_deferred_callback(d, wf_result_int(1)), 0);
    wf_failure *f = NULL;
    int rv =
        wf_deferred_fire_at(d, wf_result_value(strdup("leak?"), free), "second.c", 7, "again", &f);
    cr_assert_eq(rv, WF_EALREADY);
    cr_assert_not_null(f);
    cr_assert_eq(wf_failure_code(f), WF_EALREADY);
    char *text = wf_failure_format(f, WF_FORMAT_TEXT);
    cr_assert(strstr(text, "second.c:7") != NULL, "names the second call site: %s", text);
    cr_assert(strstr(text, "tests/core/deferred.c") != NULL, "names the first: %s", text);
    wf_free(text);
    wf_failure_release(f);
    cr_assert_eq(tu_int_of(d), 1, "the first result stays");

    /* Without a place to put it, the failure goes to the log. */
    cr_assert_eq(wf_deferred_errback(d, wf_failure_new(WF_EUSER, "late")), WF_EALREADY);
    cr_assert_eq(tu_log_count(), 1);
    cr_assert(strstr(tu_log_text(), "already called") != NULL);
    cr_assert_eq(tu_int_of(d), 1);
    wf_deferred_release(d);
}

Test(deferred, firing_with_a_deferred_is_refused)
{
    wf_deferred *d = wf_deferred_new();
    wf_deferred *other = wf_deferred_new();
    cr_assert_eq(wf_deferred_callback(d, wf_result_deferred(wf_deferred_ref(other))), WF_EINVAL);
    cr_assert_not(wf_deferred_called(d));
    wf_deferred_release(d);
    wf_deferred_release(other);
}

Test(deferred, pause_holds_callbacks_and_pauses_nest)
{
    tu_rec rec = {0};
    wf_deferred *d = wf_deferred_new();
    wf_deferred_add_callback(d, tu_cb_record, &rec);
    wf_deferred_pause(d);
    wf_deferred_pause(d);
    wf_deferred_callback(d, wf_result_int(1));
    cr_assert_str_empty(rec.log);
    cr_assert_null(wf_deferred_peek(d), "a paused deferred shows no final result");
    wf_deferred_unpause(d);
    cr_assert_str_empty(rec.log, "one unpause of two does not resume");
    wf_deferred_add_callback(d, tu_cb_record, &rec);
    cr_assert_str_empty(rec.log, "callbacks added while paused wait too");
    wf_deferred_unpause(d);
    cr_assert_str_eq(rec.log, "v1 v1 ");
    wf_deferred_unpause(d); /* an unmatched unpause is ignored */
    wf_deferred_add_callback(d, tu_cb_record, &rec);
    cr_assert_str_eq(rec.log, "v1 v1 v1 ");
    wf_deferred_release(d);
}

static wf_result cb_pause_self(wf_result r, void *d)
{
    wf_deferred_pause(d);
    return r;
}

Test(deferred, pause_from_inside_a_callback_applies_from_the_next_pass)
{
    /* As in Twisted, the pause count is checked when a pass over the chain
     * starts: steps already queued finish this pass; later ones wait. */
    tu_rec rec = {0};
    wf_deferred *d = wf_deferred_new();
    wf_deferred_add_callback(d, cb_pause_self, d);
    wf_deferred_add_callback(d, tu_cb_record, &rec);
    wf_deferred_callback(d, wf_result_int(4));
    cr_assert_str_eq(rec.log, "v4 ");
    wf_deferred_add_callback(d, tu_cb_record, &rec);
    cr_assert_str_eq(rec.log, "v4 ");
    wf_deferred_unpause(d);
    cr_assert_str_eq(rec.log, "v4 v4 ");
    wf_deferred_release(d);
}

static wf_result cb_add_more(wf_result r, void *rec)
{
    /* Twisted: a callback may add callbacks to its own deferred; they run
     * after it, in the same pass. */
    wf_deferred *d = ((void **)rec)[1];
    wf_deferred_add_callback(d, tu_cb_record, ((void **)rec)[0]);
    return r;
}

Test(deferred, callback_adding_callbacks_to_its_own_deferred)
{
    tu_rec rec = {0};
    wf_deferred *d = wf_deferred_new();
    void *args[2] = {&rec, d};
    wf_deferred_add_callback(d, cb_add_more, args);
    wf_deferred_add_callback(d, tu_cb_add_one, NULL);
    wf_deferred_callback(d, wf_result_int(1));
    cr_assert_str_eq(rec.log, "v2 ", "the added callback ran after the one already queued");
    wf_deferred_release(d);
}

static wf_result cb_release(wf_result r, void *d)
{
    wf_deferred_release(d);
    return r;
}

Test(deferred, callback_may_drop_the_last_outside_reference)
{
    tu_rec rec = {0};
    wf_deferred *d = wf_deferred_new();
    wf_deferred_add_callback(d, cb_release, d);
    wf_deferred_add_callback(d, tu_cb_record, &rec);
    wf_deferred_ref(d);
    wf_deferred_callback(d, wf_result_int(8));
    cr_assert_str_eq(rec.log, "v8 ");
    wf_deferred_release(d); /* the reference taken above; valgrind checks the rest */
}

static int frees;
static void count_free(void *p)
{
    frees++;
}

Test(deferred, arg_free_runs_exactly_once)
{
    frees = 0;
    wf_deferred *d = wf_deferred_new();
    wf_deferred_add_callbacks_full(d, tu_cb_add_one, NULL, NULL, count_free);
    wf_deferred_add_callbacks_full(d, NULL, tu_eb_recover, NULL, count_free);
    cr_assert_eq(frees, 0);
    wf_deferred_callback(d, wf_result_int(1));
    cr_assert_eq(frees, 2, "after its step ran, whichever side it was");
    wf_deferred_release(d);

    wf_deferred *e = wf_deferred_new();
    for (int i = 0; i < 10; i++)
        wf_deferred_add_callbacks_full(e, tu_cb_add_one, NULL, NULL, count_free);
    wf_deferred_release(e);
    cr_assert_eq(frees, 12, "when a deferred is freed without running them");
}

Test(deferred, many_callbacks_beyond_the_inline_ones)
{
    wf_deferred *d = wf_deferred_new();
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(wf_deferred_add_callback(d, tu_cb_add_one, NULL), 0);
    wf_deferred_callback(d, wf_result_int(0));
    cr_assert_eq(tu_int_of(d), 1000);
    for (int i = 0; i < 1000; i++)
        wf_deferred_add_callback(d, tu_cb_add_one, NULL);
    cr_assert_eq(tu_int_of(d), 2000);
    wf_deferred_release(d);
}

Test(deferred, values_are_freed_by_their_destructor)
{
    frees = 0;
    wf_deferred *d = wf_deferred_new();
    wf_deferred_callback(d, wf_result_value(&frees, count_free));
    cr_assert_eq(frees, 0);
    wf_deferred_release(d);
    cr_assert_eq(frees, 1, "the last release frees the result");
}

Test(deferred, unhandled_failure_is_reported_with_its_trace_on_release)
{
    wf_deferred *d = wf_deferred_new();
    wf_deferred_add_callback(d, tu_cb_add_one, NULL);
    wf_failure *f = wf_failure_new(WF_EUSER + 42, "the upstream <went> away");
    wf_deferred_errback(d, f);
    cr_assert_eq(tu_log_count(), 0, "nothing is reported while someone holds it");
    wf_deferred_release(d);
    cr_assert_eq(tu_log_count(), 1);
    const char *log = tu_log_text();
    cr_assert(strstr(log, "unhandled failure") != NULL, "%s", log);
    cr_assert(strstr(log, "the upstream <went> away") != NULL, "%s", log);
    cr_assert(strstr(log, "raised at") != NULL && strstr(log, "deferred.c") != NULL, "%s", log);
}

struct seen {
    int calls;
    void *arg;
    wf_failure *kept;
    int line;
    const char *file, *func;
};

static void on_unhandled(void *arg, const wf_unhandled *u)
{
    struct seen *s = arg;
    s->calls++;
    s->arg = arg;
    s->kept = wf_failure_ref(u->failure); /* borrowed: keep it past the call */
    s->file = u->fired_file;
    s->line = u->fired_line;
    s->func = u->fired_func;
}

Test(deferred, unhandled_failure_goes_to_the_hook_as_an_event_and_is_counted)
{
    struct seen seen = {0};
    uint64_t before = wf_unhandled_count();
    wf_unhandled_set_hook(on_unhandled, &seen);
    wf_deferred *d = wf_deferred_new();
    wf_failure *f = wf_failure_new(WF_EUSER + 7, "nobody caught me");
    int line = __LINE__ + 1;
    wf_deferred_errback(d, wf_failure_ref(f));
    cr_assert_eq(seen.calls, 0, "nothing is reported while someone holds it");
    wf_deferred_release(d);
    cr_assert_eq(seen.calls, 1);
    cr_assert_eq(seen.arg, &seen);
    cr_assert_eq(seen.kept, f, "the failure itself, not a copy or its text");
    cr_assert_eq(wf_failure_code(seen.kept), WF_EUSER + 7);
    cr_assert(strstr(seen.file, "deferred.c") != NULL, "%s", seen.file);
    cr_assert_eq(seen.line, line);
    cr_assert_str_eq(seen.func, __func__);
    cr_assert_eq(wf_unhandled_count(), before + 1);
    cr_assert_eq(tu_log_count(), 0, "the hook replaces the log line: %s", tu_log_text());
    wf_failure_release(seen.kept);
    wf_failure_release(f);

    /* Handled and taken failures are neither hooked nor counted. */
    tu_rec rec = {0};
    wf_deferred *a = wf_fail(wf_failure_new(WF_EUSER, "handled"));
    wf_deferred_add_errback(a, tu_eb_recover, &rec);
    wf_deferred_release(a);
    wf_deferred *b = wf_fail(wf_failure_new(WF_EUSER, "taken"));
    cr_assert_eq(tu_code_of(b), WF_EUSER);
    wf_deferred_release(b);
    cr_assert_eq(seen.calls, 1);
    cr_assert_eq(wf_unhandled_count(), before + 1);

    /* NULL restores the log line, still counted. */
    wf_unhandled_set_hook(NULL, &seen);
    wf_deferred_release(wf_fail(wf_failure_new(WF_EUSER, "logged again")));
    cr_assert_eq(seen.calls, 1);
    cr_assert_eq(tu_log_count(), 1);
    cr_assert(strstr(tu_log_text(), "logged again") != NULL, "%s", tu_log_text());
    cr_assert_eq(wf_unhandled_count(), before + 2);
}

Test(deferred, unhandled_failures_are_counted_without_a_hook)
{
    uint64_t before = wf_unhandled_count();
    wf_deferred *in = wf_deferred_new(), *out = wf_deferred_new();
    wf_deferred_chain(in, out);
    wf_deferred_errback(in, wf_failure_new(WF_EUSER, "passed on"));
    wf_deferred_release(in);
    cr_assert_eq(wf_unhandled_count(), before, "in passed its failure on to out");
    wf_deferred_release(out);
    cr_assert_eq(wf_unhandled_count(), before + 1);
    cr_assert_eq(tu_log_count(), 1);
}

Test(deferred, handled_or_taken_failures_are_not_reported)
{
    tu_rec rec = {0};
    wf_deferred *a = wf_fail(wf_failure_new(WF_EUSER, "handled"));
    wf_deferred_add_errback(a, tu_eb_recover, &rec);
    wf_deferred_release(a);
    wf_deferred *b = wf_fail(wf_failure_new(WF_EUSER, "taken"));
    cr_assert_eq(tu_code_of(b), WF_EUSER);
    wf_deferred_release(b);
    cr_assert_eq(tu_log_count(), 0, "%s", tu_log_text());
}

Test(deferred, take_needs_a_final_result)
{
    wf_result r;
    wf_deferred *d = wf_deferred_new();
    cr_assert_eq(wf_deferred_take(d, &r), WF_ESTATE);
    wf_deferred_pause(d);
    wf_deferred_callback(d, wf_result_int(1));
    cr_assert_eq(wf_deferred_take(d, &r), WF_ESTATE);
    wf_deferred_unpause(d);
    cr_assert_eq(wf_deferred_take(d, &r), 0);
    cr_assert_eq(r.u.i, 1);
    wf_deferred_release(d);
}
