/* Two nodes in one process, each on its own thread, joined by real
 * transports over ipc: order across the wire, an actor's own remote asks,
 * remote monitors and node down. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <weft/transport.h>

#include "proc.h"
#include "testutil.h"

TestSuite(remote, .init = tu_capture_log, .timeout = 60);

enum { NUM = 1, COUNT, RUN, READY, WATCH, DOWNS, ASK_REMOTE };
#define N 5000

struct sink {
    long next, count;
    int out_of_order;
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

static const wf_handler sink_h[] = {{NUM, "num", sink_num, 0}, {COUNT, "count", sink_count, 0}};
static const wf_behaviour sink = {
    .name = "sink", .state_size = sizeof(struct sink), .handlers = sink_h, .nhandlers = 2};

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

static const wf_handler drv_h[] = {
    {READY, "ready", drv_ready, 0}, {RUN, "run", drv_run, 0},
    {WATCH, "watch", drv_watch, 0}, {WF_MSG_DOWN, "down", drv_down, 0},
    {DOWNS, "downs", drv_downs, 0}, {ASK_REMOTE, "ask_remote", drv_ask_remote, 0}};
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
