/* Two nodes in one process, each on its own thread, joined by real
 * transports over ipc: order across the wire, an actor's own remote asks,
 * remote monitors and node down, and a request's deadline and cancel
 * reaching the callee on the other node. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <weft/transport.h>

#include "proc.h"
#include "testutil.h"

TestSuite(remote, .init = tu_capture_log, .timeout = 60);

enum {
    NUM = 1,
    COUNT,
    RUN,
    READY,
    WATCH,
    DOWNS,
    ASK_REMOTE,
    LEFT,
    HANG,
    CANCELS,
    ASK_LEFT,
    ASK_HANG,
    ASK_HANG_CANCEL
};
#define N 5000

struct sink {
    long next, count;
    int out_of_order;
    int hangs_cancelled; /* HANG requests whose work was cancelled */
};

static wf_result sink_num(wf_ctx *ctx, wf_msg *m)
{
    struct sink *s = wf_ctx_state(ctx);
    long v = *(long *)wf_msg_body(m);
    if (v != s->next)
        s->out_of_order++;
    s->next = v + 1;
    s->count++;
    return wf_result_none();
}

static wf_result sink_count(wf_ctx *ctx, wf_msg *m)
{
    struct sink *s = wf_ctx_state(ctx);
    long out[2] = {s->count, s->out_of_order};
    return wf_result_msg(wf_msg_new(COUNT, out, sizeof out));
}

/* The budget this request arrived with, as the callee's handler sees it. */
static wf_result sink_left(wf_ctx *ctx, wf_msg *m)
{
    uint64_t left = wf_ctx_time_left(ctx);
    return wf_result_msg(wf_msg_new(LEFT, &left, sizeof left));
}

static void hang_cancel(wf_deferred *d, void *arg)
{
    ((struct sink *)arg)->hangs_cancelled++;
}

/* Work that never ends by itself: only a cancel ends it. */
static wf_result sink_hang(wf_ctx *ctx, wf_msg *m)
{
    return wf_result_deferred(wf_deferred_new_cancellable(hang_cancel, wf_ctx_state(ctx)));
}

static wf_result sink_cancels(wf_ctx *ctx, wf_msg *m)
{
    struct sink *s = wf_ctx_state(ctx);
    return wf_result_msg(wf_msg_new(CANCELS, &s->hangs_cancelled, sizeof s->hangs_cancelled));
}

static const wf_handler sink_h[] = {{NUM, "num", sink_num, 0},
                                    {COUNT, "count", sink_count, 0},
                                    {LEFT, "left", sink_left, 0},
                                    {HANG, "hang", sink_hang, 0},
                                    {CANCELS, "cancels", sink_cancels, 0}};
static const wf_behaviour sink = {.name = "sink",
                                  .state_size = sizeof(struct sink),
                                  .handlers = sink_h,
                                  .nhandlers = sizeof sink_h / sizeof sink_h[0]};

struct driver {
    int downs, down_code;
};

static wf_result drv_ready(wf_ctx *ctx, wf_msg *m)
{
    int ok = !wf_pid_is_none(wf_resolve(wf_ctx_node(ctx), "sink@b"));
    return wf_result_msg(wf_msg_new(READY, &ok, sizeof ok));
}

static wf_result drv_run(wf_ctx *ctx, wf_msg *m)
{
    wf_pid to = wf_resolve(wf_ctx_node(ctx), "sink@b");
    for (long i = 0; i < N; i++)
        cr_assert_eq(wf_ctx_tell(ctx, to, wf_msg_new(NUM, &i, sizeof i)), 0);
    /* The count is asked after the tells, by the same actor: it must see
     * them all, in order. */
    return wf_result_deferred(wf_ctx_ask(ctx, to, wf_msg_new(COUNT, NULL, 0), 10000));
}

static wf_result drv_watch(wf_ctx *ctx, wf_msg *m)
{
    cr_assert_eq(wf_monitor(ctx, wf_resolve(wf_ctx_node(ctx), "sink@b")), 0);
    return wf_result_msg(wf_msg_new(WATCH, NULL, 0));
}

static wf_result drv_down(wf_ctx *ctx, wf_msg *m)
{
    struct driver *d = wf_ctx_state(ctx);
    wf_down down;
    cr_assert_eq(wf_down_parse(m, &down), 0);
    d->downs++;
    d->down_code = down.code;
    return wf_result_none();
}

static wf_result drv_downs(wf_ctx *ctx, wf_msg *m)
{
    struct driver *d = wf_ctx_state(ctx);
    int out[2] = {d->downs, d->down_code};
    return wf_result_msg(wf_msg_new(DOWNS, out, sizeof out));
}

static wf_result drv_ask_remote(wf_ctx *ctx, wf_msg *m)
{
    wf_pid to = wf_resolve(wf_ctx_node(ctx), "sink@b");
    return wf_result_deferred(wf_ctx_ask(ctx, to, wf_msg_new(COUNT, NULL, 0), 10000));
}

/* Asks the sink for the type in the body, with a generous timeout of its
 * own: the deadline of the request being handled must win. */
static wf_result drv_relay(wf_ctx *ctx, wf_msg *m)
{
    uint32_t type = wf_msg_type(m) == ASK_LEFT ? LEFT : wf_msg_type(m) == ASK_HANG ? HANG : CANCELS;
    return wf_result_deferred(
        wf_ctx_ask(ctx, wf_resolve(wf_ctx_node(ctx), "sink@b"), wf_msg_new(type, NULL, 0), 10000));
}

/* The answer to an ask made after the HANG, on the same link, comes after
 * the HANG reached the sink: then the HANG is withdrawn. */
static wf_result cancel_then_wait(wf_result r, void *arg)
{
    wf_deferred *hang = arg;
    wf_result_free(r);
    wf_deferred_cancel(hang);
    return wf_result_deferred(hang);
}

static wf_result drv_hang_cancel(wf_ctx *ctx, wf_msg *m)
{
    wf_pid to = wf_resolve(wf_ctx_node(ctx), "sink@b");
    wf_deferred *hang = wf_ctx_ask(ctx, to, wf_msg_new(HANG, NULL, 0), 10000);
    wf_deferred *probe = wf_ctx_ask(ctx, to, wf_msg_new(COUNT, NULL, 0), 10000);
    wf_deferred_add_callback(probe, cancel_then_wait, hang);
    return wf_result_deferred(probe);
}

static const wf_handler drv_h[] = {
    {READY, "ready", drv_ready, 0},       {RUN, "run", drv_run, 0},
    {WATCH, "watch", drv_watch, 0},       {WF_MSG_DOWN, "down", drv_down, 0},
    {DOWNS, "downs", drv_downs, 0},       {ASK_REMOTE, "ask_remote", drv_ask_remote, 0},
    {ASK_LEFT, "ask_left", drv_relay, 0}, {ASK_HANG, "ask_hang", drv_relay, 0},
    {CANCELS, "cancels", drv_relay, 0},   {ASK_HANG_CANCEL, "ask_hang_cancel", drv_hang_cancel, 0}};
static const wf_behaviour driver = {.name = "driver",
                                    .state_size = sizeof(struct driver),
                                    .handlers = drv_h,
                                    .nhandlers = sizeof drv_h / sizeof drv_h[0]};

static char dir[256];
static wf_node *na, *nb;
static wf_pid drv;

static void start(void)
{
    tu_capture_log();
    snprintf(dir, sizeof dir, "/tmp/weft-remote.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char ua[300], ub[300];
    snprintf(ua, sizeof ua, "ipc://%s/a", dir);
    snprintf(ub, sizeof ub, "ipc://%s/b", dir);
    wf_transport_config cfg = {.secret = "s"};
    wf_transport *ta, *tb;
    na = wf_node_new(&(wf_node_config){.name = "a"});
    nb = wf_node_new(&(wf_node_config){.name = "b"});
    cr_assert_eq(wf_transport_new(na, &cfg, &ta), 0);
    cr_assert_eq(wf_transport_new(nb, &cfg, &tb), 0);
    cr_assert_eq(wf_transport_listen(tb, ub), 0);
    cr_assert_eq(wf_transport_listen(ta, ua), 0);
    cr_assert_eq(wf_transport_dial(ta, ub), 0);
    wf_spawn(nb, "sink", &sink, NULL, NULL);
    wf_spawn(na, "driver", &driver, NULL, &drv);
    wf_node_start(na);
    wf_node_start(nb);
    for (int i = 0; i < 500; i++) {
        wf_result r = wf_node_call(na, drv, wf_msg_new(READY, NULL, 0), 1000);
        int ok = wf_result_is_msg(r) && *(int *)wf_msg_body(r.u.ptr);
        wf_result_free(r);
        if (ok)
            return;
        tu_sleep_ms(10);
    }
    cr_assert_fail("the nodes never connected: %s", tu_log_text());
}

static void stop(void)
{
    wf_node_shutdown(na);
    wf_node_shutdown(nb);
    wf_node_wait(na);
    wf_node_wait(nb);
    wf_node_free(na);
    wf_node_free(nb);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(remote, messages_from_one_actor_to_another_arrive_in_order, .init = start, .fini = stop)
{
    wf_result r = wf_node_call(na, drv, wf_msg_new(RUN, NULL, 0), 20000);
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    long *out = wf_msg_body(r.u.ptr);
    cr_assert_eq(out[0], N, "all %d tells arrived before the ask", N);
    cr_assert_eq(out[1], 0, "%ld out of order", out[1]);
    wf_result_free(r);
}

Test(remote, an_actors_remote_ask_comes_back_through_its_mailbox, .init = start, .fini = stop)
{
    wf_result r = wf_node_call(na, drv, wf_msg_new(ASK_REMOTE, NULL, 0), 10000);
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    cr_assert_eq(wf_msg_len(r.u.ptr), 2 * sizeof(long));
    wf_result_free(r);
}

Test(remote, monitors_of_a_remote_actor_get_down_when_its_node_goes, .init = start, .fini = stop)
{
    wf_result r = wf_node_call(na, drv, wf_msg_new(WATCH, NULL, 0), 5000);
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    wf_result_free(r);
    wf_node_shutdown(nb);
    wf_node_wait(nb);
    int downs = 0, code = 0;
    for (int i = 0; i < 500 && downs == 0; i++) {
        tu_sleep_ms(10);
        r = wf_node_call(na, drv, wf_msg_new(DOWNS, NULL, 0), 1000);
        cr_assert(wf_result_is_msg(r));
        downs = ((int *)wf_msg_body(r.u.ptr))[0];
        code = ((int *)wf_msg_body(r.u.ptr))[1];
        wf_result_free(r);
    }
    cr_assert_eq(downs, 1);
    cr_assert_eq(code, WF_ENODEDOWN);
}

/* How many HANGs the sink saw cancelled, once it is n (a CANCEL frame
 * travels on its own: give it time). */
static int sink_cancels_reach(int n)
{
    int got = -1;
    for (int i = 0; i < 300 && got != n; i++) {
        wf_result r = wf_node_call(na, drv, wf_msg_new(CANCELS, NULL, 0), 1000);
        cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
        got = *(int *)wf_msg_body(r.u.ptr);
        wf_result_free(r);
        if (got != n)
            tu_sleep_ms(10);
    }
    return got;
}

Test(remote, a_callee_on_another_node_knows_the_budget_its_asker_inherited, .init = start,
     .fini = stop)
{
    /* The driver's request has 400 ms; its 10 s ask to node b keeps only
     * what is left of them, and b's handler sees that. */
    wf_result r = wf_node_call(na, drv, wf_msg_new(ASK_LEFT, NULL, 0), 400);
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    uint64_t left = *(uint64_t *)wf_msg_body(r.u.ptr);
    wf_result_free(r);
    cr_assert_gt(left, 0);
    cr_assert_leq(left, 400, "the callee saw %llu ms", (unsigned long long)left);
}

Test(remote, a_remote_ask_timed_out_by_its_requests_deadline_cancels_the_callees_work,
     .init = start, .fini = stop)
{
    wf_result r = wf_node_call(na, drv, wf_msg_new(ASK_HANG, NULL, 0), 300);
    cr_assert(wf_result_is_failure(r));
    cr_assert_eq(wf_failure_code(r.u.failure), WF_ETIMEDOUT, "%s", tu_text(r));
    wf_result_free(r);
    cr_assert_eq(sink_cancels_reach(1), 1, "the cancel crossed to node b");
}

Test(remote, cancelling_a_remote_ask_cancels_the_callees_work, .init = start, .fini = stop)
{
    wf_result r = wf_node_call(na, drv, wf_msg_new(ASK_HANG_CANCEL, NULL, 0), 5000);
    cr_assert(wf_result_is_failure(r));
    cr_assert_eq(wf_failure_code(r.u.failure), WF_ECANCELED, "%s", tu_text(r));
    wf_result_free(r);
    cr_assert_eq(sink_cancels_reach(1), 1, "the cancel crossed to node b");
}
