/* Supervisors: one-for-one restarts, the restart budget, escalation. */
#include <string.h>
#include <uv.h>

#include <criterion/criterion.h>

#include "testutil.h"

TestSuite(supervisor, .init = tu_capture_log, .timeout = 30);

enum { ADD = 1, GET, CRASH, WATCH };

static int inits;

static int counter_init(wf_ctx *ctx, void *arg)
{
    inits++;
    if (arg != NULL) /* a child that fails as soon as it starts */
        wf_ctx_tell(ctx, wf_ctx_self(ctx), wf_msg_new(CRASH, NULL, 0));
    return 0;
}

static wf_result on_add(wf_ctx *ctx, wf_msg *m)
{
    *(long *)wf_ctx_state(ctx) += *(long *)wf_msg_body(m);
    return wf_result_none();
}

static wf_result on_get(wf_ctx *ctx, wf_msg *m)
{
    return wf_result_msg(wf_msg_new(GET, wf_ctx_state(ctx), sizeof(long)));
}

static wf_result on_crash(wf_ctx *ctx, wf_msg *m)
{
    return WF_FAIL(WF_EUSER + 8, "counter corrupted");
}

static const wf_handler counter_h[] = {
    {ADD, "add", on_add, 0}, {GET, "get", on_get, 0}, {CRASH, "crash", on_crash, 0}};
static const wf_behaviour counter = {.name = "counter",
                                     .state_size = sizeof(long),
                                     .init = counter_init,
                                     .handlers = counter_h,
                                     .nhandlers = 3};

static wf_result shutdown_cb(wf_result r, void *n)
{
    wf_node_shutdown(n);
    return r;
}

/* Polls until the child named "worker" is a different actor than before. */
struct poll {
    wf_node *n;
    wf_pid old;
    wf_deferred *get;
    uv_timer_t timer;
};

static void poll_restart(uv_timer_t *t)
{
    struct poll *p = t->data;
    wf_pid now = wf_lookup(p->n, "worker");
    if (wf_pid_is_none(now) || now.id == p->old.id)
        return;
    uv_close((uv_handle_t *)t, NULL);
    p->get = wf_ask(p->n, now, wf_msg_new(GET, NULL, 0), 1000);
    wf_deferred_add_both(p->get, shutdown_cb, p->n);
}

Test(supervisor, a_crashed_child_is_restarted_fresh_under_its_name)
{
    inits = 0;
    wf_node *n = wf_node_new(NULL);
    wf_child_spec kids[] = {{"worker", &counter, NULL}};
    wf_supervisor_spec spec = {kids, 1, 3, 5000};
    wf_pid sup;
    cr_assert_eq(wf_supervisor_spawn(n, "sup", &spec, &sup), 0);
    wf_pid w = wf_lookup(n, "worker");
    cr_assert_not(wf_pid_is_none(w));
    wf_tell(n, w, wf_msg_new(ADD, &(long){5}, sizeof(long)));
    wf_tell(n, w, wf_msg_new(CRASH, NULL, 0));

    struct poll p = {.n = n, .old = w};
    uv_timer_init(wf_node_loop(n), &p.timer);
    p.timer.data = &p;
    uv_timer_start(&p.timer, poll_restart, 1, 1);
    wf_node_run(n); /* until the restarted child answered */
    cr_assert_not_null(p.get);
    cr_assert_eq(inits, 2);
    wf_result r;
    cr_assert_eq(wf_deferred_take(p.get, &r), 0);
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    cr_assert_eq(*(long *)wf_msg_body(r.u.ptr), 0, "the restarted child starts fresh");
    wf_result_free(r);
    wf_deferred_release(p.get);
    wf_node_stats st;
    wf_node_stats_get(n, &st);
    cr_assert_eq(st.restarts, 1);
    wf_node_free(n);
}

struct watcher {
    int code;
    char reason[2048];
};
static struct watcher seen;

static wf_result on_watch(wf_ctx *ctx, wf_msg *m)
{
    wf_monitor(ctx, *(wf_pid *)wf_msg_body(m));
    return wf_result_none();
}

static wf_result on_down(wf_ctx *ctx, wf_msg *m)
{
    wf_down d;
    wf_down_parse(m, &d);
    seen.code = d.code;
    snprintf(seen.reason, sizeof seen.reason, "%s", d.reason);
    wf_node_shutdown(wf_ctx_node(ctx));
    return wf_result_none();
}

static const wf_handler watcher_h[] = {{WATCH, "watch", on_watch, 0},
                                       {WF_MSG_DOWN, "down", on_down, 0}};
static const wf_behaviour watcher = {.name = "watcher", .handlers = watcher_h, .nhandlers = 2};

Test(supervisor, too_many_restarts_stop_the_supervisor_and_escalate)
{
    inits = 0;
    memset(&seen, 0, sizeof seen);
    wf_node *n = wf_node_new(&(wf_node_config){.name = "s1"});
    wf_child_spec kids[] = {{"steady", &counter, NULL}, {"worker", &counter, (void *)1}};
    wf_supervisor_spec spec = {kids, 2, 2, 60000};
    wf_pid sup, w;
    wf_spawn(n, "watcher", &watcher, NULL, &w);
    cr_assert_eq(wf_supervisor_spawn(n, "sup", &spec, &sup), 0);
    wf_tell(n, w, wf_msg_new(WATCH, &sup, sizeof sup));
    wf_node_run(n);
    cr_assert_eq(seen.code, WF_ERESTARTS, "%d: %s", seen.code, seen.reason);
    cr_assert(strstr(seen.reason, "child worker failed 3 times"), "%s", seen.reason);
    cr_assert(strstr(seen.reason, "counter corrupted"), "%s", seen.reason);
    cr_assert_eq(inits, 1 + 3, "steady once, worker started and restarted twice");
    cr_assert(wf_pid_is_none(wf_lookup(n, "steady")), "the other children were stopped");
    wf_node_free(n);
}
