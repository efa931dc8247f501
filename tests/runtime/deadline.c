#define _DEFAULT_SOURCE /* usleep */
/* Deadlines and cancellation travel with a request: the callee knows its
 * budget, asks made for a request never outlive it, a request whose
 * deadline passed in the mailbox is not started, and a cancel (or a
 * timeout) reaches the work that was started for it. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include <criterion/criterion.h>

#include "testutil.h"

TestSuite(deadline, .init = tu_capture_log, .timeout = 30);

enum { LEFT = 1, HANG, RELAY, RELAY_LATER, BUSY, COUNT };

/* What the callee saw, for the test to read after the node ran. */
static uint64_t seen_left;
static int hang_cancelled, counted;

static wf_result on_left(wf_ctx *ctx, wf_msg *m)
{
    seen_left = wf_ctx_time_left(ctx);
    return wf_result_msg(wf_msg_new(LEFT, &seen_left, sizeof seen_left));
}

static void hang_cancel(wf_deferred *d, void *arg)
{
    hang_cancelled++;
}

/* Never answers by itself; a cancel is recorded. */
static wf_result on_hang(wf_ctx *ctx, wf_msg *m)
{
    return wf_result_deferred(wf_deferred_new_cancellable(hang_cancel, NULL));
}

/* Holds the loop: what queues behind it waits. */
static wf_result on_busy(wf_ctx *ctx, wf_msg *m)
{
    usleep(100 * 1000);
    return wf_result_msg(wf_msg_new(BUSY, NULL, 0));
}

static wf_result on_count(wf_ctx *ctx, wf_msg *m)
{
    counted++;
    return wf_result_msg(wf_msg_new(COUNT, NULL, 0));
}

static const wf_handler callee_h[] = {{LEFT, "left", on_left, 0},
                                      {HANG, "hang", on_hang, 0},
                                      {BUSY, "busy", on_busy, 0},
                                      {COUNT, "count", on_count, 0}};
static const wf_behaviour callee = {.name = "callee", .handlers = callee_h, .nhandlers = 4};

/* The relay asks the callee for the message type in its body, with a
 * generous timeout of its own: the request's deadline must win. */
static wf_result on_relay(wf_ctx *ctx, wf_msg *m)
{
    uint32_t type = *(uint32_t *)wf_msg_body(m);
    return wf_result_deferred(
        wf_ctx_ask(ctx, wf_lookup(wf_ctx_node(ctx), "callee"), wf_msg_new(type, NULL, 0), 10000));
}

/* The same, from the callback of a first ask: the continuation of a
 * request is still that request. */
static wf_result ask_again(wf_result r, void *arg)
{
    wf_node *n = arg;
    wf_result_free(r);
    return wf_result_deferred(wf_ask_as(n, wf_lookup(n, "relay"), wf_lookup(n, "callee"),
                                        wf_msg_new(LEFT, NULL, 0), 10000));
}

static wf_result on_relay_later(wf_ctx *ctx, wf_msg *m)
{
    wf_node *n = wf_ctx_node(ctx);
    wf_deferred *d = wf_ctx_ask(ctx, wf_lookup(n, "callee"), wf_msg_new(COUNT, NULL, 0), 10000);
    wf_deferred_add_callback(d, ask_again, n);
    return wf_result_deferred(d);
}

static const wf_handler relay_h[] = {{RELAY, "relay", on_relay, 0},
                                     {RELAY_LATER, "relay later", on_relay_later, 0}};
static const wf_behaviour relay = {.name = "relay", .handlers = relay_h, .nhandlers = 2};

static wf_node *n;
static wf_pid callee_pid, relay_pid;

static void start(void)
{
    seen_left = 0;
    hang_cancelled = counted = 0;
    n = wf_node_new(&(wf_node_config){.name = "dl"});
    cr_assert_eq(wf_spawn(n, "callee", &callee, NULL, &callee_pid), 0);
    cr_assert_eq(wf_spawn(n, "relay", &relay, NULL, &relay_pid), 0);
}

static wf_msg *relay_msg(uint32_t type)
{
    return wf_msg_new(RELAY, &type, sizeof type);
}

static wf_node_stats stats(void)
{
    wf_node_stats st;
    wf_node_stats_get(n, &st);
    return st;
}

Test(deadline, the_callee_knows_its_budget_and_a_nested_ask_inherits_it)
{
    start();
    wf_result r;
    tu_run_until(n, wf_ask(n, relay_pid, relay_msg(LEFT), 300), &r);
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    cr_assert_gt(seen_left, 0);
    cr_assert_leq(seen_left, 300, "the relay's 10 s ask kept only the 300 ms of its request");
    wf_result_free(r);
    wf_node_free(n);
}

Test(deadline, a_nested_ask_fails_at_the_request_deadline_and_its_work_is_cancelled)
{
    start();
    uint64_t t0 = uv_hrtime();
    wf_result r;
    tu_run_until(n, wf_ask(n, relay_pid, relay_msg(HANG), 200), &r);
    double ms = (double)(uv_hrtime() - t0) / 1e6;
    cr_assert(wf_result_is_failure(r));
    cr_assert_eq(wf_failure_code(r.u.failure), WF_ETIMEDOUT, "%s", tu_text(r));
    cr_assert_lt(ms, 2000.0, "at the request's deadline, not the nested ask's 10 s");
    wf_result_free(r);
    cr_assert_eq(hang_cancelled, 1, "the timed-out work was cancelled");
    wf_node_stats st = stats();
    cr_assert_geq(st.cancelled, 1);
    cr_assert_eq(st.late_replies, 0);
    wf_node_free(n);
}

Test(deadline, the_continuation_of_a_request_inherits_its_deadline)
{
    start();
    wf_result r;
    tu_run_until(n, wf_ask(n, relay_pid, wf_msg_new(RELAY_LATER, NULL, 0), 300), &r);
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    cr_assert_eq(counted, 1);
    cr_assert_gt(seen_left, 0);
    cr_assert_leq(seen_left, 300, "an ask from a callback serves the same request");
    wf_result_free(r);
    wf_node_free(n);
}

/* The driver: busy the callee, queue a COUNT behind it with a deadline
 * shorter than the wait, and report once both have settled. */
static wf_result both_done(wf_result r, void *arg)
{
    wf_deferred *short_one = arg;
    wf_result_free(r);
    return wf_result_deferred(short_one); /* the COUNT's outcome */
}

Test(deadline, a_request_whose_deadline_passed_in_the_mailbox_is_not_started)
{
    start();
    /* COUNT queues behind BUSY, which holds the loop longer than COUNT's
     * deadline: it must be refused, not run. */
    wf_deferred *b = wf_ask(n, callee_pid, wf_msg_new(BUSY, NULL, 0), 5000);
    wf_deferred *c = wf_ask(n, callee_pid, wf_msg_new(COUNT, NULL, 0), 30);
    wf_deferred_add_callback(b, both_done, c); /* takes our reference */
    wf_result r;
    tu_run_until(n, b, &r);
    cr_assert(wf_result_is_failure(r), "the late COUNT: %s", tu_text(r));
    cr_assert_eq(wf_failure_code(r.u.failure), WF_ETIMEDOUT, "%s", tu_text(r));
    wf_result_free(r);
    cr_assert_eq(counted, 0, "a request nobody waits for is not started");
    wf_node_stats st = stats();
    cr_assert_eq(st.cancelled + st.expired, 1, "dropped (timed out while queued) or refused late");
    wf_node_free(n);
}

/* Runs once the relay's HANG is under way at the callee: cancels it. */
static wf_result cancel_then_wait(wf_result r, void *arg)
{
    wf_deferred *d = arg;
    wf_result_free(r);
    wf_deferred_cancel(d);
    return wf_result_deferred(d); /* its outcome, and our reference */
}

Test(deadline, cancelling_an_ask_cancels_the_callees_work)
{
    start();
    wf_deferred *d = wf_ask(n, relay_pid, relay_msg(HANG), 5000);
    /* Through the relay too, so it reaches the callee after the HANG. */
    wf_deferred *probe = wf_ask(n, relay_pid, relay_msg(COUNT), 5000);
    wf_deferred_add_callback(probe, cancel_then_wait, d);
    wf_result r;
    tu_run_until(n, probe, &r);
    cr_assert(wf_result_is_failure(r));
    cr_assert_eq(wf_failure_code(r.u.failure), WF_ECANCELED, "%s", tu_text(r));
    wf_result_free(r);
    cr_assert_eq(counted, 1);
    cr_assert_eq(hang_cancelled, 1, "the cancel went from the relay's request to the callee's");
    wf_node_stats st = stats();
    cr_assert_eq(st.cancels, 2, "the test's ask and the relay's");
    cr_assert_eq(st.cancelled, 2, "the relay's request and the callee's");
    cr_assert_eq(st.late_replies, 0);
    wf_node_free(n);
}
