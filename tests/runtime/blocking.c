/* Blocking work on the thread pool: the loop stays responsive, a blocking
 * actor still takes one message at a time, replies keep their rules. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <criterion/criterion.h>

#include "testutil.h"

TestSuite(blocking, .init = tu_capture_log, .timeout = 30);

enum { SLEEP = 1, QUICK, REPLY_ON_POOL, FAIL_ON_POOL, SILENT_ON_POOL };

static atomic_int inside, most_inside;

static wf_result on_sleep(wf_ctx *ctx, wf_msg *m)
{
    int now = atomic_fetch_add(&inside, 1) + 1;
    int seen = atomic_load(&most_inside);
    while (now > seen && !atomic_compare_exchange_weak(&most_inside, &seen, now))
        ;
    uv_sleep(*(unsigned *)wf_msg_body(m)); /* really blocks this thread */
    atomic_fetch_sub(&inside, 1);
    return wf_result_msg(tu_msg(SLEEP, "slept"));
}

static wf_result on_quick(wf_ctx *ctx, wf_msg *m)
{
    return wf_result_msg(tu_msg(QUICK, "quick"));
}

static wf_result on_reply_on_pool(wf_ctx *ctx, wf_msg *m)
{
    wf_reply(ctx, tu_msg(REPLY_ON_POOL, "from the pool"));
    return wf_result_none();
}

static wf_result on_fail_on_pool(wf_ctx *ctx, wf_msg *m)
{
    return WF_FAIL(WF_EUSER + 4, "render failed");
}

static wf_result on_silent(wf_ctx *ctx, wf_msg *m)
{
    return wf_result_none();
}

static const wf_handler slow_handlers[] = {
    {SLEEP, "sleep", on_sleep, WF_HANDLER_BLOCKING},
    {QUICK, "quick", on_quick, 0},
    {REPLY_ON_POOL, "reply_on_pool", on_reply_on_pool, WF_HANDLER_BLOCKING},
    {FAIL_ON_POOL, "render", on_fail_on_pool, WF_HANDLER_BLOCKING},
    {SILENT_ON_POOL, "silent", on_silent, WF_HANDLER_BLOCKING},
};
static const wf_behaviour slow = {.name = "slow", .handlers = slow_handlers, .nhandlers = 5};
static const wf_handler quick_handlers[] = {{QUICK, "quick", on_quick, 0}};
static const wf_behaviour quick = {.name = "quick", .handlers = quick_handlers, .nhandlers = 1};
static const wf_behaviour all_blocking = {
    .name = "blocking", .handlers = slow_handlers, .nhandlers = 2, .flags = WF_ACTOR_BLOCKING};

static wf_node *node;
static wf_pid quick_pid;
static uint64_t t0, quick_done_ns;
static int quick_left;

static wf_result next_quick(wf_result r, void *arg);

static void ask_quick(void)
{
    wf_deferred *d = wf_ask(node, quick_pid, tu_msg(QUICK, "?"), 5000);
    wf_deferred_add_callback(d, next_quick, NULL);
    wf_deferred_release(d);
}

static wf_result next_quick(wf_result r, void *arg)
{
    cr_assert_str_eq(tu_text(r), "quick");
    if (--quick_left > 0)
        ask_quick();
    else
        quick_done_ns = uv_hrtime() - t0;
    return r;
}

Test(blocking, a_200ms_blocking_handler_does_not_delay_other_actors)
{
    node = wf_node_new(NULL);
    wf_pid slow_pid;
    wf_spawn(node, "slow", &slow, NULL, &slow_pid);
    wf_spawn(node, "quick", &quick, NULL, &quick_pid);
    unsigned ms = 200;
    t0 = uv_hrtime();
    wf_deferred *d = wf_ask(node, slow_pid, wf_msg_new(SLEEP, &ms, sizeof ms), 5000);
    quick_left = 20; /* 20 asks in a row to the other actor meanwhile */
    ask_quick();
    wf_result r;
    tu_run_until(node, d, &r);
    double slow_ms = (double)(uv_hrtime() - t0) / 1e6;
    cr_assert_str_eq(tu_text(r), "slept");
    wf_result_free(r);
    cr_assert_eq(quick_left, 0);
    cr_assert_geq(slow_ms, 199.0);
    /* Had the loop been blocked, no quick reply could come before the slow
     * one: this holds at any speed, valgrind included. */
    cr_assert_lt((double)quick_done_ns / 1e6, slow_ms,
                 "the other actor's replies waited for the blocking handler");
    /* The figure only where code runs at its own speed. */
    if (getenv("WEFT_UNDER_VALGRIND") == NULL && getenv("WEFT_UNDER_TSAN") == NULL)
        cr_assert_lt((double)quick_done_ns / 1e6, 100.0,
                     "the other actor's 20 replies took %.1f ms while the blocking handler ran",
                     (double)quick_done_ns / 1e6);
    wf_node_free(node);
}

Test(blocking, a_blocking_actor_takes_one_message_at_a_time)
{
    atomic_store(&most_inside, 0);
    node = wf_node_new(NULL);
    wf_pid p;
    wf_spawn(node, "b", &all_blocking, NULL, &p);
    unsigned ms = 30;
    wf_deferred *ds[4];
    for (int i = 0; i < 4; i++)
        ds[i] = wf_ask(node, p, wf_msg_new(SLEEP, &ms, sizeof ms), 5000);
    uint64_t start = uv_hrtime();
    wf_result r;
    tu_run_until(node, wf_deferred_ref(ds[3]), &r);
    wf_result_free(r);
    cr_assert_eq(atomic_load(&most_inside), 1, "never two handlers of one actor at once");
    cr_assert_geq((double)(uv_hrtime() - start) / 1e6, 119.0);
    for (int i = 0; i < 4; i++) {
        cr_assert(wf_deferred_called(ds[i]));
        wf_deferred_release(ds[i]);
    }
    wf_node_stats st;
    wf_node_stats_get(node, &st);
    cr_assert_eq(st.offloaded, 4);
    wf_node_free(node);
}

static wf_result ask_one(wf_pid p, uint32_t type)
{
    wf_result r;
    tu_run_until(node, wf_ask(node, p, tu_msg(type, "?"), 5000), &r);
    return r;
}

Test(blocking, replies_from_the_pool_keep_the_rules)
{
    node = wf_node_new(&(wf_node_config){.name = "r1"});
    wf_pid p;
    wf_spawn(node, "renderer", &slow, NULL, &p);
    wf_result r = ask_one(p, REPLY_ON_POOL);
    cr_assert_str_eq(tu_text(r), "from the pool");
    wf_result_free(r);
    wf_node_free(node);

    node = wf_node_new(&(wf_node_config){.name = "r1"});
    wf_spawn(node, "renderer", &slow, NULL, &p);
    r = ask_one(p, FAIL_ON_POOL);
    cr_assert_eq(wf_failure_code(r.u.failure), WF_EUSER + 4);
    char *trace = wf_failure_format(r.u.failure, WF_FORMAT_TEXT);
    cr_assert(strstr(trace, "handler render [renderer@r1]"), "%s", trace);
    wf_free(trace);
    wf_result_free(r);
    wf_node_free(node);

    node = wf_node_new(&(wf_node_config){.name = "r1"});
    wf_spawn(node, "renderer", &slow, NULL, &p);
    r = ask_one(p, SILENT_ON_POOL);
    cr_assert_eq(wf_failure_code(r.u.failure), WF_ENOREPLY);
    wf_result_free(r);
    wf_node_free(node);
}

static wf_result square(void *arg)
{
    long v = (long)(intptr_t)arg;
    uv_sleep(5);
    return wf_result_int(v * v);
}

static wf_result fail_in_thread(void *arg)
{
    return WF_FAIL(WF_EUSER, "thread failed");
}

static wf_result stop_after(wf_result r, void *arg)
{
    wf_node_shutdown(arg);
    return r;
}

Test(blocking, defer_to_thread_fires_on_the_loop_with_the_result)
{
    node = wf_node_new(NULL);
    wf_deferred *a = wf_defer_to_thread(node, square, (void *)(intptr_t)12);
    wf_deferred *b = wf_defer_to_thread(node, fail_in_thread, NULL);
    wf_deferred *in[2] = {wf_deferred_ref(a), wf_deferred_ref(b)};
    wf_deferred *g = wf_gather(in, 2, WF_GATHER_ALL | WF_GATHER_CONSUME_ERRORS);
    wf_deferred_add_both(g, stop_after, node);
    wf_node_run(node);
    /* gather moved each outcome into its result. */
    const wf_gather_result *res = wf_deferred_peek(g)->u.ptr;
    cr_assert_eq(res->items[0].u.i, 144);
    cr_assert_eq(wf_failure_code(res->items[1].u.failure), WF_EUSER);
    wf_deferred_release(a);
    wf_deferred_release(b);
    wf_deferred_release(g);
    wf_node_free(node);
}

static wf_result sleep_long(void *arg)
{
    uv_sleep(100);
    return wf_result_int(1);
}

Test(blocking, cancelling_a_queued_thread_call_stops_it_from_running)
{
    node = wf_node_new(NULL);
    /* Fill libuv's pool (4 threads by default), then queue one more. */
    wf_deferred *busy[4];
    for (int i = 0; i < 4; i++)
        busy[i] = wf_defer_to_thread(node, sleep_long, NULL);
    wf_deferred *queued = wf_defer_to_thread(node, square, (void *)(intptr_t)3);
    wf_deferred_cancel(queued);
    cr_assert_eq(tu_code_of(queued), WF_ECANCELED);
    wf_deferred_add_both(busy[3], stop_after, node);
    wf_node_run(node);
    for (int i = 0; i < 4; i++)
        wf_deferred_release(busy[i]);
    wf_deferred_release(queued);
    wf_node_free(node);
}

static atomic_int pings_run;

static wf_result on_crash_tell(wf_ctx *ctx, wf_msg *m)
{
    return WF_FAIL(WF_EUSER + 9, "crashed on the pool");
}

static wf_result on_ping_counted(wf_ctx *ctx, wf_msg *m)
{
    atomic_fetch_add(&pings_run, 1);
    return wf_result_msg(tu_msg(QUICK, "pong"));
}

static const wf_handler crashy_h[] = {{SLEEP, "crash", on_crash_tell, 0},
                                      {QUICK, "ping", on_ping_counted, 0}};
static const wf_behaviour crashy = {
    .name = "crashy", .handlers = crashy_h, .nhandlers = 2, .flags = WF_ACTOR_BLOCKING};

Test(blocking, a_crash_in_a_batch_stops_what_follows_it)
{
    atomic_store(&pings_run, 0);
    node = wf_node_new(NULL);
    wf_pid p;
    wf_spawn(node, "crashy", &crashy, NULL, &p);
    wf_deferred *before = wf_ask(node, p, tu_msg(QUICK, "?"), 5000);
    wf_tell(node, p, tu_msg(SLEEP, "boom"));
    wf_deferred *after = wf_ask(node, p, tu_msg(QUICK, "?"), 5000);
    wf_result r;
    tu_run_until(node, wf_deferred_ref(after), &r);
    cr_assert_eq(r.kind, WF_RESULT_FAILURE);
    cr_assert_eq(wf_failure_code(r.u.failure), WF_EACTORSTOPPED, "%s", tu_text(r));
    wf_result_free(r);
    cr_assert_eq(atomic_load(&pings_run), 1, "only the ping before the crash ran");
    cr_assert_str_eq(tu_text(*wf_deferred_peek(before)), "pong");
    wf_deferred_release(before);
    wf_deferred_release(after);
    wf_node_free(node);
}
