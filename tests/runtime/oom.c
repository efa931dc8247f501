/* Out of memory in the runtime: fail the k-th allocation of a runtime
 * workload (spawn, ask, reply now and later, tell, monitor, stop,
 * shutdown), alone or with every one after it, for every k, and check
 * nothing crashes, hangs or (under valgrind) leaks. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <criterion/criterion.h>
#include <uv.h>

#include <weft/alloc.h>

#include "testutil.h"

/* The allocator: counts, and fails allocation number fail_at (from 0),
 * and with sticky every one after it. The loop runs on this thread , blocking
 * handlers on the pool: the counters are atomic. */
static _Atomic long count, fail_at = -1;
static _Atomic bool sticky;

static bool fails(void)
{
    long i = count++;
    return fail_at >= 0 && (i == fail_at || (sticky && i > fail_at));
}

static void *t_malloc(size_t n)
{
    return fails() ? NULL : malloc(n);
}

static void *t_realloc(void *p, size_t n)
{
    return fails() ? NULL : realloc(p, n);
}

TestSuite(runtime_oom, .init = tu_capture_log, .timeout = 300);

enum { M_ECHO = 1, M_LATER, M_NOTE, M_FWD, M_CRASH };

struct run {
    wf_node *n;
    wf_pid echo;
    int pending; /* asks whose outcome has not come */
    int replies; /* of them, answered with a message */
    atomic_bool asks_done, call_done;
};

/* The run ends once its asks have ended and the other thread's call has
 * returned, whichever comes last: each side sets its flag, then looks at
 * both (so at least one of them sees both set). */
static void end_part(struct run *run, atomic_bool *mine)
{
    atomic_store(mine, true);
    if (atomic_load(&run->asks_done) && atomic_load(&run->call_done))
        wf_node_shutdown(run->n);
}

static wf_result on_echo(wf_ctx *ctx, wf_msg *m)
{
    return wf_result_msg(wf_msg_new(M_ECHO, wf_msg_body(m), wf_msg_len(m)));
}

static wf_result on_later(wf_ctx *ctx, wf_msg *m)
{
    /* Answered through a deferred: the request waits on the heap. */
    wf_msg *reply = wf_msg_new(M_LATER, NULL, 0);
    wf_deferred *d = wf_succeed(reply ? wf_result_msg(reply) : wf_result_none());
    return d ? wf_result_deferred(d) : WF_FAIL(WF_ENOMEM, "no deferred");
}

static wf_result on_note(wf_ctx *ctx, wf_msg *m)
{
    return wf_result_none();
}

static wf_result on_crash(wf_ctx *ctx, wf_msg *m)
{
    return WF_FAIL(WF_EUSER, "crash"); /* a failed tell: its supervisor restarts it */
}

static const wf_handler echo_h[] = {{M_ECHO, "echo", on_echo, 0},
                                    {M_LATER, "later", on_later, 0},
                                    {M_NOTE, "note", on_note, 0},
                                    {M_CRASH, "crash", on_crash, 0}};
static const wf_behaviour echo_b = {.name = "echo", .handlers = echo_h, .nhandlers = 4};
/* The same on the thread pool. */
static const wf_behaviour blocking_b = {
    .name = "blocking", .handlers = echo_h, .nhandlers = 4, .flags = WF_ACTOR_BLOCKING};

/* A proxy: answers M_FWD with echo's answer, through the deferred of its own
 * ask (a request that waits on the heap until echo replies). */
static wf_result on_fwd(wf_ctx *ctx, wf_msg *m)
{
    wf_pid echo = wf_lookup(wf_ctx_node(ctx), "echo");
    return wf_result_deferred(wf_ctx_ask(ctx, echo, wf_msg_new(M_ECHO, "z", 1), 0));
}
static const wf_handler proxy_h[] = {{M_FWD, "fwd", on_fwd, 0}};
static const wf_behaviour proxy_b = {.name = "proxy", .handlers = proxy_h, .nhandlers = 1};

static const wf_child_spec children[] = {{"worker", &echo_b, NULL}};
static const wf_supervisor_spec sup_spec = {.children = children, .nchildren = 1};

static wf_result done(wf_result r, void *arg)
{
    struct run *run = arg;
    if (wf_result_is_msg(r))
        run->replies++;
    wf_result_free(r);
    if (--run->pending == 0) {
        wf_stop(run->n, run->echo); /* its monitor hears of it */
        end_part(run, &run->asks_done);
    }
    return wf_result_none();
}

/* Waits for d's outcome (d consumed; NULL: the ask was not made). */
static void expect(struct run *run, wf_deferred *d)
{
    if (d == NULL)
        return;
    run->pending++;
    if (wf_deferred_add_both(d, done, run) != 0)
        run->pending--;
    wf_deferred_release(d);
}

/* A client actor: asks echo from its init, monitors it. */
static int client_init(wf_ctx *ctx, void *arg)
{
    struct run *run = arg;
    *(struct run **)wf_ctx_state(ctx) = run;
    int rv = wf_monitor(ctx, run->echo);
    if (rv != 0)
        return rv;
    expect(run, wf_ctx_ask(ctx, run->echo, wf_msg_new(M_ECHO, "x", 1), 0));
    expect(run, wf_ctx_ask(ctx, run->echo, wf_msg_new(M_LATER, NULL, 0), 0));
    return 0;
}

static wf_result client_down(wf_ctx *ctx, wf_msg *m)
{
    wf_down down;
    cr_assert_eq(wf_down_parse(m, &down), 0);
    return wf_result_none();
}

static const wf_handler client_h[] = {{WF_MSG_DOWN, "down", client_down, 0}};
static const wf_behaviour client_b = {.name = "client",
                                      .state_size = sizeof(struct run *),
                                      .init = client_init,
                                      .handlers = client_h,
                                      .nhandlers = 1};

/* Another thread: a tell and a call, handed to the loop (call.c). */
struct caller {
    struct run *run;
    wf_pid to;
    bool replied;
};

static void caller_main(void *arg)
{
    struct caller *c = arg;
    wf_node *n = c->run->n;
    wf_tell(n, c->to, wf_msg_new(M_NOTE, NULL, 0));
    wf_result r = wf_node_call(n, c->to, wf_msg_new(M_ECHO, "c", 1), 0);
    c->replied = wf_result_is_msg(r);
    wf_result_free(r);
    end_part(c->run, &c->run->call_done);
}

/* One run of the workload; true if every ask was answered. */
static bool workload(void)
{
    wf_node *n = wf_node_new(&(wf_node_config){.name = "oom", .ask_timeout_ms = 5000});
    if (n == NULL)
        return false;
    struct run run = {.n = n};
    atomic_init(&run.asks_done, false);
    atomic_init(&run.call_done, false);
    wf_pid callee = {0};
    bool ok = wf_spawn(n, "echo", &echo_b, NULL, &run.echo) == 0;
    if (ok) {
        wf_pid proxy = {0}, blocking = {0}, sup = {0};
        ok &= wf_spawn(n, "client", &client_b, &run, NULL) == 0;
        ok &= wf_spawn(n, "proxy", &proxy_b, NULL, &proxy) == 0;
        ok &= wf_spawn(n, "blocking", &blocking_b, NULL, &blocking) == 0;
        ok &= wf_spawn(n, "callee", &echo_b, NULL, &callee) == 0;
        ok &= wf_supervisor_spawn(n, "sup", &sup_spec, &sup) == 0;
        /* Past the first slots of the registry and its name table. */
        for (int i = 0; i < 70; i++) {
            char name[16];
            snprintf(name, sizeof name, "n%d", i);
            ok &= wf_spawn(n, i % 2 ? name : NULL, &echo_b, NULL, NULL) == 0;
        }
        expect(&run, wf_ask(n, run.echo, wf_msg_new(M_ECHO, "y", 1), 0));
        expect(&run, wf_ask(n, run.echo, wf_msg_new(M_LATER, NULL, 0), 0));
        expect(&run, wf_ask(n, proxy, wf_msg_new(M_FWD, NULL, 0), 3000)); /* another timeout */
        expect(&run, wf_ask(n, blocking, wf_msg_new(M_ECHO, "b", 1), 0));
        expect(&run, wf_ask(n, wf_lookup(n, "nobody"), wf_msg_new(M_ECHO, NULL, 0), 0));
        ok &= wf_tell(n, run.echo, wf_msg_new(M_NOTE, NULL, 0)) == 0;
        ok &= wf_tell(n, blocking, wf_msg_new(M_NOTE, NULL, 0)) == 0;
        ok &= wf_tell(n, wf_lookup(n, "worker"), wf_msg_new(M_CRASH, NULL, 0)) == 0;
    }
    struct caller c = {.run = &run, .to = callee};
    uv_thread_t t;
    bool threaded = ok && uv_thread_create(&t, caller_main, &c) == 0;
    if (!threaded)
        atomic_store(&run.call_done, true);
    if (run.pending == 0)
        end_part(&run, &run.asks_done);
    wf_node_run(n);
    if (threaded)
        uv_thread_join(&t);
    cr_assert_eq(run.pending, 0, "every ask ended");
    wf_node_free(n);
    return ok && run.replies == 6 && threaded && c.replied;
}

/* Runs the workload once per allocation it makes, failing that one (and,
 * when sticky, the rest). */
static void sweep(bool all_after)
{
    cr_assert_eq(wf_replace_allocator(t_malloc, t_realloc, free), 0);
    cr_assert(workload(), "the workload works with memory");
    long total = count;
    cr_assert_gt(total, 10);
    sticky = all_after;
    for (long k = 0; k < total; k++) {
        count = 0;
        fail_at = k;
        (void)workload(); /* may fail; must not crash, hang or leak */
        fail_at = -1;
    }
    cr_assert(workload(), "and works again once memory is back");
}

Test(runtime_oom, each_allocation_failing_alone_is_survived)
{
    sweep(false);
}

Test(runtime_oom, each_allocation_failing_with_all_after_it_is_survived)
{
    sweep(true);
}
