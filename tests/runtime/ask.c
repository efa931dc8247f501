/* Nodes, actors, tell and ask: the basic paths and their failures. */
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include <criterion/criterion.h>

#include "testutil.h"

TestSuite(ask, .init = tu_capture_log, .timeout = 30);

enum { PING = 1, ADD, GET, SLOW, NONE_SUCH = 99 };

static wf_result on_ping(wf_ctx *ctx, wf_msg *m)
{
    char buf[64];
    snprintf(buf, sizeof buf, "pong:%s", (char *)wf_msg_body(m));
    return wf_result_msg(tu_msg(PING, buf));
}

struct counter {
    long total;
};

static wf_result on_add(wf_ctx *ctx, wf_msg *m)
{
    struct counter *c = wf_ctx_state(ctx);
    c->total += *(long *)wf_msg_body(m);
    return wf_result_none(); /* a tell: nothing to answer */
}

static wf_result on_get(wf_ctx *ctx, wf_msg *m)
{
    struct counter *c = wf_ctx_state(ctx);
    return wf_result_msg(wf_msg_new(GET, &c->total, sizeof c->total));
}

static wf_result on_slow(wf_ctx *ctx, wf_msg *m)
{
    return wf_result_deferred(wf_deferred_new()); /* never answered by itself */
}

static const wf_handler handlers[] = {
    {PING, "ping", on_ping, 0},
    {ADD, "add", on_add, 0},
    {GET, "get", on_get, 0},
    {SLOW, "slow", on_slow, 0},
};
static const wf_behaviour server = {
    .name = "server", .state_size = sizeof(struct counter), .handlers = handlers, .nhandlers = 4};

Test(ask, ask_gets_the_reply_message)
{
    wf_node *n = wf_node_new(&(wf_node_config){.name = "n1"});
    wf_pid p;
    cr_assert_eq(wf_spawn(n, "srv", &server, NULL, &p), 0);
    cr_assert_eq(wf_lookup(n, "srv").id, p.id);
    wf_result r;
    tu_run_until(n, wf_ask(n, p, tu_msg(PING, "hi"), 1000), &r);
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    cr_assert_str_eq(tu_text(r), "pong:hi");
    wf_result_free(r);
    wf_node_free(n);
}

Test(ask, tells_arrive_in_order_before_a_later_ask)
{
    wf_node *n = wf_node_new(NULL);
    wf_pid p;
    wf_spawn(n, "counter", &server, NULL, &p);
    for (long i = 1; i <= 100; i++)
        cr_assert_eq(wf_tell(n, p, wf_msg_new(ADD, &i, sizeof i)), 0);
    wf_result r;
    tu_run_until(n, wf_ask(n, p, wf_msg_new(GET, NULL, 0), 1000), &r);
    cr_assert(wf_result_is_msg(r));
    cr_assert_eq(*(long *)wf_msg_body(r.u.ptr), 5050);
    wf_result_free(r);
    wf_node_free(n);
}

Test(ask, names_are_unique_and_freed_on_stop)
{
    wf_node *n = wf_node_new(NULL);
    wf_pid a, b;
    cr_assert_eq(wf_spawn(n, "x", &server, NULL, &a), 0);
    cr_assert_eq(wf_spawn(n, "x", &server, NULL, &b), WF_EINVAL);
    cr_assert_eq(wf_stop(n, a), 0);
    cr_assert(wf_pid_is_none(wf_lookup(n, "x")));
    cr_assert_eq(wf_stop(n, a), WF_ENOSUCHACTOR);
    cr_assert_eq(wf_spawn(n, "x", &server, NULL, &b), 0);
    cr_assert_neq(a.id, b.id, "a reused slot gets a new generation");
    cr_assert_eq(wf_tell(n, a, tu_msg(PING, "stale")), WF_ENOSUCHACTOR);
    wf_node_free(n);
}

Test(ask, unknown_actor_fails_at_once)
{
    wf_node *n = wf_node_new(NULL);
    wf_deferred *d = wf_ask(n, (wf_pid){12345}, tu_msg(PING, "x"), 1000);
    cr_assert(wf_deferred_called(d), "no waiting for a timeout");
    cr_assert_eq(tu_code_of(d), WF_ENOSUCHACTOR);
    wf_deferred_release(d);
    wf_node_free(n);
}

Test(ask, unknown_message_type_fails_the_ask_and_the_actor_lives)
{
    wf_node *n = wf_node_new(NULL);
    wf_pid p;
    wf_spawn(n, "srv", &server, NULL, &p);
    wf_result r;
    tu_run_until(n, wf_ask(n, p, tu_msg(NONE_SUCH, "?"), 1000), &r);
    cr_assert_eq(wf_failure_code(r.u.failure), WF_EINVAL);
    cr_assert(strstr(tu_text(r), "no handler for message type 99"), "%s", tu_text(r));
    wf_result_free(r);
    wf_node_free(n);
}

Test(ask, timeout_fails_the_ask_and_cancels_the_request)
{
    wf_node *n = wf_node_new(NULL);
    wf_pid p;
    wf_spawn(n, "srv", &server, NULL, &p);
    uint64_t t0 = uv_hrtime();
    wf_result r;
    tu_run_until(n, wf_ask(n, p, tu_msg(SLOW, "x"), 50), &r);
    double ms = (double)(uv_hrtime() - t0) / 1e6;
    cr_assert_eq(r.kind, WF_RESULT_FAILURE);
    cr_assert_eq(wf_failure_code(r.u.failure), WF_ETIMEDOUT);
    cr_assert(strstr(tu_text(r), "srv@node") != NULL, "%s", tu_text(r));
    cr_assert_geq(ms, 49.0);
    cr_assert_lt(ms, 2000.0);
    wf_result_free(r);
    wf_node_stats st;
    wf_node_stats_get(n, &st);
    cr_assert_eq(st.timeouts, 1);
    /* The timeout reached the handler: its request was cancelled (its
     * deferred with it), so no answer went out late. */
    cr_assert_eq(st.cancelled, 1);
    cr_assert_eq(st.late_replies, 0);
    wf_node_free(n);
}

Test(ask, shutdown_fails_every_pending_ask)
{
    wf_node *n = wf_node_new(NULL);
    wf_pid p;
    wf_spawn(n, "srv", &server, NULL, &p);
    wf_deferred *ds[10];
    for (int i = 0; i < 10; i++)
        ds[i] = wf_ask(n, p, tu_msg(i % 2 ? SLOW : PING, "x"), 60000);
    wf_deferred *last = wf_ask(n, p, tu_msg(SLOW, "x"), 60000);
    wf_node_shutdown(n);
    wf_result r;
    tu_run_until(n, last, &r);
    cr_assert_eq(wf_failure_code(r.u.failure), WF_ESHUTDOWN);
    wf_result_free(r);
    for (int i = 0; i < 10; i++) {
        cr_assert(wf_deferred_called(ds[i]), "ask %d still pending", i);
        if (i % 2) {
            cr_assert_eq(tu_code_of(ds[i]), WF_ESHUTDOWN);
        } else {
            /* Pings queued before the shutdown: answered, or failed by it. */
            wf_result r2;
            cr_assert_eq(wf_deferred_take(ds[i], &r2), 0);
            wf_result_free(r2);
        }
        wf_deferred_release(ds[i]);
    }
    wf_node_free(n);
}

Test(ask, full_mailbox_refuses_asks_and_tells_at_once)
{
    static const wf_behaviour small = {
        .name = "small", .handlers = handlers, .nhandlers = 4, .mailbox_limit = 3};
    wf_node *n = wf_node_new(NULL);
    wf_pid p;
    wf_spawn(n, "small", &small, NULL, &p);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(wf_tell(n, p, tu_msg(PING, "x")), 0);
    cr_assert_eq(wf_tell(n, p, tu_msg(PING, "x")), WF_EOVERLOADED);
    wf_deferred *d = wf_ask(n, p, tu_msg(PING, "x"), 1000);
    cr_assert_eq(tu_code_of(d), WF_EOVERLOADED);
    wf_deferred_release(d);
    wf_node_stats st;
    wf_node_stats_get(n, &st);
    cr_assert_eq(st.overloaded, 2, "counted, never dropped silently");
    wf_node_free(n);
}

Test(ask, stopping_an_actor_fails_its_queued_and_unanswered_asks)
{
    wf_node *n = wf_node_new(NULL);
    wf_pid p;
    wf_spawn(n, "srv", &server, NULL, &p);
    wf_deferred *queued = wf_ask(n, p, tu_msg(PING, "x"), 60000);
    cr_assert_eq(wf_stop(n, p), 0);
    cr_assert(wf_deferred_called(queued), "at once, not at the timeout");
    cr_assert_eq(tu_code_of(queued), WF_EACTORSTOPPED);
    wf_deferred_release(queued);
    wf_node_free(n);
}

/* An ask's timeout counts from the call, however stale the loop's cached
 * time (uv_now: taken at the start of its turn) is then. */
struct late {
    wf_node *n;
    wf_pid p;
    uint64_t asked_ns, ended_ns;
    int code;
};

static wf_result ask_ended(wf_result r, void *arg)
{
    struct late *l = arg;
    l->ended_ns = uv_hrtime();
    l->code = r.kind == WF_RESULT_FAILURE ? wf_failure_code(r.u.failure) : 0;
    wf_result_free(r);
    wf_node_shutdown(l->n);
    return wf_result_none();
}

static void ask_slow(struct late *l, uint64_t timeout_ms)
{
    l->asked_ns = uv_hrtime();
    wf_deferred *d = wf_ask(l->n, l->p, tu_msg(SLOW, "x"), timeout_ms);
    wf_deferred_add_both(d, ask_ended, l);
    wf_deferred_release(d);
}

static void expect_timeout_from_the_call(const struct late *l, double timeout_ms)
{
    double ms = (double)(l->ended_ns - l->asked_ns) / 1e6;
    cr_assert_eq(l->code, WF_ETIMEDOUT);
    cr_assert_geq(ms, timeout_ms - 1, "timed out %.1f ms after the call, not %.0f", ms, timeout_ms);
    cr_assert_lt(ms, timeout_ms + 2000);
}

Test(ask, a_timeout_counts_from_the_call_made_before_the_loop_first_runs)
{
    struct late l = {.n = wf_node_new(NULL)};
    wf_spawn(l.n, "srv", &server, NULL, &l.p);
    uv_sleep(300); /* the loop's time, cached when the node was made, is 300 ms old */
    ask_slow(&l, 200);
    wf_node_run(l.n);
    expect_timeout_from_the_call(&l, 200);
    wf_node_free(l.n);
}

static void woken(uv_timer_t *t) {}

static wf_result work_then_ask(wf_result r, void *arg)
{
    struct late *l = arg;
    wf_result_free(r);
    /* Something else wakes the loop 50 ms into this turn (any timer or I/O
     * would): a deadline counted from the stale time has passed by then. */
    static uv_timer_t other;
    uv_timer_init(wf_node_loop(l->n), &other);
    uv_timer_start(&other, woken, 50, 0);
    uv_sleep(300); /* a long turn: the loop's cached time is 300 ms old after it */
    ask_slow(l, 200);
    return wf_result_none();
}

Test(ask, a_timeout_counts_from_the_call_made_late_in_a_long_turn)
{
    struct late l = {.n = wf_node_new(NULL)};
    wf_spawn(l.n, "srv", &server, NULL, &l.p);
    wf_deferred *d = wf_ask(l.n, l.p, tu_msg(PING, "x"), 1000);
    wf_deferred_add_both(d, work_then_ask, &l);
    wf_deferred_release(d);
    wf_node_run(l.n);
    expect_timeout_from_the_call(&l, 200);
    wf_node_free(l.n);
}
