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

Test(ask, timeout_fails_the_ask_and_the_late_reply_is_dropped_and_counted)
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
    /* The handler's deferred was cancelled at shutdown (its actor stopped);
     * its answer went nowhere, and was counted. */
    cr_assert_geq(st.late_replies, 1);
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
