/* Monitors: Down messages with the reason; crashes of tell handlers. */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "testutil.h"

TestSuite(monitor, .init = tu_capture_log, .timeout = 30);

enum { WATCH = 1, CRASH, STOP };

struct watcher {
    wf_down down;
    char reason[2048];
    int downs;
};

/* The watcher's state goes with its node; terminate keeps a copy here. */
static struct watcher seen;

static wf_result on_watch(wf_ctx *ctx, wf_msg *m)
{
    cr_assert_eq(wf_monitor(ctx, *(wf_pid *)wf_msg_body(m)), 0);
    return wf_result_msg(wf_msg_new(WATCH, NULL, 0));
}

static wf_result on_down(wf_ctx *ctx, wf_msg *m)
{
    struct watcher *w = wf_ctx_state(ctx);
    cr_assert_eq(wf_down_parse(m, &w->down), 0);
    snprintf(w->reason, sizeof w->reason, "%s", w->down.reason);
    w->downs++;
    wf_node_shutdown(wf_ctx_node(ctx));
    return wf_result_none();
}

static void watcher_terminate(wf_ctx *ctx, const wf_failure *reason)
{
    seen = *(struct watcher *)wf_ctx_state(ctx);
    seen.down.reason = seen.reason;
}

static wf_result on_crash(wf_ctx *ctx, wf_msg *m)
{
    return WF_FAIL(WF_EUSER + 3, "worker crashed");
}

static wf_result on_stop(wf_ctx *ctx, wf_msg *m)
{
    wf_ctx_stop(ctx, NULL);
    return wf_result_none();
}

static const wf_handler watcher_h[] = {{WATCH, "watch", on_watch, 0},
                                       {WF_MSG_DOWN, "down", on_down, 0}};
static const wf_behaviour watcher = {.name = "watcher",
                                     .state_size = sizeof(struct watcher),
                                     .terminate = watcher_terminate,
                                     .handlers = watcher_h,
                                     .nhandlers = 2};
static const wf_handler worker_h[] = {{CRASH, "crash", on_crash, 0}, {STOP, "stop", on_stop, 0}};
static const wf_behaviour worker = {.name = "worker", .handlers = worker_h, .nhandlers = 2};

/* The watcher monitors target (or the worker if target is none), then the
 * worker is sent `what`; runs until the watcher's Down. */
static wf_pid run_watch(uint32_t what, wf_pid target)
{
    memset(&seen, 0, sizeof seen);
    wf_node *n = wf_node_new(&(wf_node_config){.name = "m1"});
    wf_pid w, k;
    wf_spawn(n, "watcher", &watcher, NULL, &w);
    wf_spawn(n, "worker", &worker, NULL, &k);
    if (wf_pid_is_none(target))
        target = k;
    wf_deferred *d = wf_ask(n, w, wf_msg_new(WATCH, &target, sizeof target), 1000);
    wf_tell(n, k, wf_msg_new(what, NULL, 0));
    wf_node_run(n);
    wf_deferred_release(d);
    wf_node_free(n);
    return target;
}

Test(monitor, a_crashing_tell_handler_stops_the_actor_and_watchers_get_the_reason)
{
    wf_pid k = run_watch(CRASH, (wf_pid){0});
    cr_assert_eq(seen.downs, 1);
    cr_assert_eq(seen.down.pid.id, k.id);
    cr_assert_eq(seen.down.code, WF_EUSER + 3);
    cr_assert(strstr(seen.reason, "worker crashed"), "%s", seen.reason);
    cr_assert(strstr(seen.reason, "handler crash [worker@m1]"), "%s", seen.reason);
}

Test(monitor, a_normal_stop_gives_down_with_code_zero)
{
    run_watch(STOP, (wf_pid){0});
    cr_assert_eq(seen.downs, 1);
    cr_assert_eq(seen.down.code, 0);
    cr_assert_str_empty(seen.reason);
}

Test(monitor, watching_an_actor_that_is_not_there_gives_down_at_once)
{
    run_watch(0, (wf_pid){0xdead00000001ull});
    cr_assert_eq(seen.downs, 1);
    cr_assert_eq(seen.down.code, WF_ENOSUCHACTOR);
}
