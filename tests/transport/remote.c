/* Two nodes in one process, each on its own thread, joined by real
 * transports over ipc: order across the wire, an actor's own remote asks,
 * remote monitors and node down, and a request's deadline and cancel
 * reaching the callee on the other node. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    ASK_HANG_CANCEL,
    FREEZE,
    QUIT
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

/* A host that stops answering without closing anything: the loop of node
 * b is stuck for the milliseconds in the body. */
static wf_result sink_freeze(wf_ctx *ctx, wf_msg *m)
{
    tu_sleep_ms(*(int *)wf_msg_body(m));
    return wf_result_none();
}

/* Stops the sink: normally for code 0, else with a failure of that code. */
static wf_result sink_quit(wf_ctx *ctx, wf_msg *m)
{
    int code = *(int *)wf_msg_body(m);
    wf_ctx_stop(ctx, code ? wf_failure_new(code, "the sink gave up") : NULL);
    return wf_result_msg(wf_msg_new(QUIT, NULL, 0));
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
                                    {CANCELS, "cancels", sink_cancels, 0},
                                    {FREEZE, "freeze", sink_freeze, 0},
                                    {QUIT, "quit", sink_quit, 0}};
static const wf_behaviour sink = {.name = "sink",
                                  .state_size = sizeof(struct sink),
                                  .handlers = sink_h,
                                  .nhandlers = sizeof sink_h / sizeof sink_h[0]};

struct driver {
    int downs, down_code;
    wf_pid down_pid;
    char reason[1024];
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

/* Watches the actor whose address is the body ("sink@b" if none). */
static wf_result drv_watch(wf_ctx *ctx, wf_msg *m)
{
    const char *to = wf_msg_len(m) ? (const char *)wf_msg_body(m) : "sink@b";
    cr_assert_eq(wf_monitor(ctx, wf_resolve(wf_ctx_node(ctx), to)), 0);
    return wf_result_msg(wf_msg_new(WATCH, NULL, 0));
}

static wf_result drv_down(wf_ctx *ctx, wf_msg *m)
{
    struct driver *d = wf_ctx_state(ctx);
    wf_down down;
    cr_assert_eq(wf_down_parse(m, &down), 0);
    d->downs++;
    d->down_code = down.code;
    d->down_pid = down.pid;
    snprintf(d->reason, sizeof d->reason, "%s", down.reason);
    return wf_result_none();
}

static wf_result drv_downs(wf_ctx *ctx, wf_msg *m)
{
    struct driver *d = wf_ctx_state(ctx);
    int out[2] = {d->downs, d->down_code};
    return wf_result_msg(wf_msg_new(DOWNS, out, sizeof out));
}

/* The last Down's reason text. */
static wf_result drv_reason(wf_ctx *ctx, wf_msg *m)
{
    struct driver *d = wf_ctx_state(ctx);
    return wf_result_msg(wf_msg_new(QUIT, d->reason, strlen(d->reason) + 1));
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
    {CANCELS, "cancels", drv_relay, 0},   {ASK_HANG_CANCEL, "ask_hang_cancel", drv_hang_cancel, 0},
    {QUIT, "reason", drv_reason, 0}};
static const wf_behaviour driver = {.name = "driver",
                                    .state_size = sizeof(struct driver),
                                    .handlers = drv_h,
                                    .nhandlers = sizeof drv_h / sizeof drv_h[0]};

static char dir[256];
static wf_node *na, *nb;
static wf_pid drv, sinkb;
static uint32_t heartbeat_ms, peer_timeout_ms; /* 0: the transport's defaults */

static void start(void)
{
    tu_capture_log();
    snprintf(dir, sizeof dir, "/tmp/weft-remote.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char ua[300], ub[300];
    snprintf(ua, sizeof ua, "ipc://%s/a", dir);
    snprintf(ub, sizeof ub, "ipc://%s/b", dir);
    wf_transport_config cfg = {
        .secret = "s", .heartbeat_ms = heartbeat_ms, .peer_timeout_ms = peer_timeout_ms};
    wf_transport *ta, *tb;
    na = wf_node_new(&(wf_node_config){.name = "a"});
    nb = wf_node_new(&(wf_node_config){.name = "b"});
    cr_assert_eq(wf_transport_new(na, &cfg, &ta), 0);
    cr_assert_eq(wf_transport_new(nb, &cfg, &tb), 0);
    cr_assert_eq(wf_transport_listen(tb, ub), 0);
    cr_assert_eq(wf_transport_listen(ta, ua), 0);
    cr_assert_eq(wf_transport_dial(ta, ub), 0);
    wf_spawn(nb, "sink", &sink, NULL, &sinkb);
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

static void watch(const char *address)
{
    wf_result r =
        wf_node_call(na, drv, wf_msg_new(WATCH, address, address ? strlen(address) + 1 : 0), 5000);
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    wf_result_free(r);
    if (address != NULL)
        return;
    /* An ask on the same link, answered: the watch reached node b first. */
    r = wf_node_call(na, drv, wf_msg_new(ASK_REMOTE, NULL, 0), 5000);
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    wf_result_free(r);
}

/* The driver's Downs so far, once there are want (or after 3 s); its code
 * and reason text in *code and reason. */
static int downs_reach(int want, int *code, char *reason, size_t size)
{
    int downs = 0;
    for (int i = 0; i < 300; i++) {
        wf_result r = wf_node_call(na, drv, wf_msg_new(DOWNS, NULL, 0), 1000);
        cr_assert(wf_result_is_msg(r));
        downs = ((int *)wf_msg_body(r.u.ptr))[0];
        *code = ((int *)wf_msg_body(r.u.ptr))[1];
        wf_result_free(r);
        if (downs >= want)
            break;
        tu_sleep_ms(10);
    }
    wf_result r = wf_node_call(na, drv, wf_msg_new(QUIT, NULL, 0), 1000);
    cr_assert(wf_result_is_msg(r));
    snprintf(reason, size, "%s", (char *)wf_msg_body(r.u.ptr));
    wf_result_free(r);
    return downs;
}

Test(remote, monitors_of_a_remote_actor_get_down_when_its_node_goes, .init = start, .fini = stop)
{
    watch(NULL);
    wf_node_shutdown(nb);
    wf_node_wait(nb);
    int code = 0;
    char reason[1024];
    cr_assert_eq(downs_reach(1, &code, reason, sizeof reason), 1, "%s", tu_log_text());
    /* The sink's own Down ("node b shut down") if it left before the
     * link closed, else node down: one of them, once. */
    cr_assert(code == WF_ENODEDOWN || code == WF_ESHUTDOWN, "code %d: %s", code, reason);
    cr_assert_eq(downs_reach(2, &code, reason, sizeof reason), 1, "one Down, not two");
}

static void quit_sink(int code)
{
    wf_result r = wf_node_call(nb, sinkb, wf_msg_new(QUIT, &code, sizeof code), 5000);
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    wf_result_free(r);
}

Test(remote, a_remote_actor_that_stops_sends_down_with_its_reason, .init = start, .fini = stop)
{
    watch(NULL);
    watch(NULL); /* two watches, two Downs, as for a local actor */
    quit_sink(WF_EUPSTREAM);
    int code = 0;
    char reason[1024];
    int downs = downs_reach(2, &code, reason, sizeof reason);
    cr_assert_eq(downs, 2, "%d Downs (log: %s)", downs, tu_log_text());
    cr_assert_eq(code, WF_EUPSTREAM, "code %d: %s", code, reason);
    cr_assert(strstr(reason, "the sink gave up") != NULL, "%s", reason);
    cr_assert(strstr(reason, "down from node b") != NULL, "%s", reason);
    /* Node b is still up: the actor is gone, not the node. */
    wf_result r = wf_node_call(na, drv, wf_msg_new(ASK_REMOTE, NULL, 0), 5000);
    cr_assert_eq(r.kind, WF_RESULT_FAILURE);
    cr_assert_eq(wf_failure_code(r.u.failure), WF_ENOSUCHACTOR, "%s", tu_text(r));
    wf_result_free(r);
    tu_sleep_ms(100);
    cr_assert_eq(downs_reach(3, &code, reason, sizeof reason), 2, "no Down twice");
}

Test(remote, a_remote_actor_that_stops_normally_sends_down_with_code_0, .init = start, .fini = stop)
{
    watch(NULL);
    quit_sink(0);
    int code = -1;
    char reason[1024];
    cr_assert_eq(downs_reach(1, &code, reason, sizeof reason), 1, "%s", tu_log_text());
    cr_assert_eq(code, 0);
    cr_assert_str_eq(reason, "");
}

Test(remote, watching_a_remote_actor_that_does_not_exist_gives_down_at_once, .init = start,
     .fini = stop)
{
    watch("nobody@b");
    int code = 0;
    char reason[1024];
    cr_assert_eq(downs_reach(1, &code, reason, sizeof reason), 1, "%s", tu_log_text());
    cr_assert_eq(code, WF_ENOSUCHACTOR);
    cr_assert(strstr(reason, "nobody@b does not exist") != NULL, "%s", reason);
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

/* Heartbeats of 200 ms, silence of 1.2 s takes a peer down. */
static void start_heartbeat(void)
{
    heartbeat_ms = 200;
    peer_timeout_ms = 1200;
    start();
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How many Downs the driver has had. */
static int driver_downs(void)
{
    wf_result r = wf_node_call(na, drv, wf_msg_new(DOWNS, NULL, 0), 5000);
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    int downs = ((int *)wf_msg_body(r.u.ptr))[0];
    wf_result_free(r);
    return downs;
}

Test(remote, a_quiet_peer_stays_up, .init = start_heartbeat, .fini = stop)
{
    wf_result r = wf_node_call(na, drv, wf_msg_new(WATCH, NULL, 0), 5000);
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    wf_result_free(r);
    /* Nothing to say for three times the peer timeout: the ticks keep the
     * link up. */
    tu_sleep_ms(3600);
    cr_assert_eq(driver_downs(), 0, "%s", tu_log_text());
    cr_assert_null(strstr(tu_log_text(), "sent nothing for"), "%s", tu_log_text());
    r = wf_node_call(na, drv, wf_msg_new(ASK_REMOTE, NULL, 0), 5000);
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    wf_result_free(r);
}

/* Node b stops answering and closes nothing (a frozen host, a cut cable):
 * within the peer timeout node a takes it down, the ask waiting on it
 * fails with WF_ENODEDOWN long before its own 10 s or the 3 s freeze, and
 * monitors hear of it; once b is back, the link is too. */
Test(remote, a_silent_peer_is_taken_down_and_comes_back, .init = start_heartbeat, .fini = stop)
{
    wf_result r = wf_node_call(na, drv, wf_msg_new(WATCH, NULL, 0), 5000);
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    wf_result_free(r);
    int freeze_ms = 3000;
    cr_assert_eq(wf_tell(nb, sinkb, wf_msg_new(FREEZE, &freeze_ms, sizeof freeze_ms)), 0);
    long long t0 = now_ms();
    r = wf_node_call(na, drv, wf_msg_new(ASK_REMOTE, NULL, 0), 15000);
    long long took = now_ms() - t0;
    cr_assert(wf_result_is_failure(r), "answered after %lld ms: %s", took, tu_text(r));
    cr_assert_eq(wf_failure_code(r.u.failure), WF_ENODEDOWN, "%s", tu_text(r));
    wf_result_free(r);
    cr_assert_lt(took, 2500, "node down after %lld ms", took);
    cr_assert_eq(driver_downs(), 1);
    cr_assert_not_null(strstr(tu_log_text(), "peer b sent nothing for"), "%s", tu_log_text());
    /* Back: the dialer dials again, and an ask goes through. */
    for (int i = 0;; i++) {
        r = wf_node_call(na, drv, wf_msg_new(ASK_REMOTE, NULL, 0), 2000);
        bool ok = wf_result_is_msg(r);
        wf_result_free(r);
        if (ok)
            break;
        cr_assert_lt(now_ms() - t0, freeze_ms + 10000, "never back: %s", tu_log_text());
        tu_sleep_ms(50);
    }
}
