/* Out of memory in the runtime: fail the k-th allocation of a runtime
 * workload (spawn, ask, reply now and later, tell, monitor, stop,
 * shutdown), alone or with every one after it, for every k, and check
 * nothing crashes, hangs or (under valgrind) leaks. */
#include <stdlib.h>

#include <criterion/criterion.h>

#include <weft/alloc.h>

#include "testutil.h"

/* The allocator: counts, and fails allocation number fail_at (from 0),
 * and with sticky every one after it. The loop runs on this thread and no
 * handler here runs on the pool, so plain counters do. */
static long count, fail_at = -1;
static bool sticky;

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

enum { ECHO = 1, LATER, NOTE };

struct run {
    wf_node *n;
    wf_pid echo;
    int pending; /* asks whose outcome has not come */
    int replies; /* of them, answered with a message */
};

static wf_result on_echo(wf_ctx *ctx, wf_msg *m)
{
    return wf_result_msg(wf_msg_new(ECHO, wf_msg_body(m), wf_msg_len(m)));
}

static wf_result on_later(wf_ctx *ctx, wf_msg *m)
{
    /* Answered through a deferred: the request waits on the heap. */
    wf_msg *reply = wf_msg_new(LATER, NULL, 0);
    wf_deferred *d = wf_succeed(reply ? wf_result_msg(reply) : wf_result_none());
    return d ? wf_result_deferred(d) : WF_FAIL(WF_ENOMEM, "no deferred");
}

static wf_result on_note(wf_ctx *ctx, wf_msg *m)
{
    return wf_result_none();
}

static const wf_handler echo_h[] = {
    {ECHO, "echo", on_echo, 0}, {LATER, "later", on_later, 0}, {NOTE, "note", on_note, 0}};
static const wf_behaviour echo_b = {.name = "echo", .handlers = echo_h, .nhandlers = 3};

static wf_result done(wf_result r, void *arg)
{
    struct run *run = arg;
    if (wf_result_is_msg(r))
        run->replies++;
    wf_result_free(r);
    if (--run->pending == 0) {
        wf_stop(run->n, run->echo); /* its monitor hears of it */
        wf_node_shutdown(run->n);
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
    expect(run, wf_ctx_ask(ctx, run->echo, wf_msg_new(ECHO, "x", 1), 0));
    expect(run, wf_ctx_ask(ctx, run->echo, wf_msg_new(LATER, NULL, 0), 0));
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

/* One run of the workload; true if every ask was answered. */
static bool workload(void)
{
    wf_node *n = wf_node_new(&(wf_node_config){.name = "oom", .ask_timeout_ms = 1000});
    if (n == NULL)
        return false;
    struct run run = {.n = n};
    bool ok = wf_spawn(n, "echo", &echo_b, NULL, &run.echo) == 0;
    if (ok) {
        ok &= wf_spawn(n, "client", &client_b, &run, NULL) == 0;
        expect(&run, wf_ask(n, run.echo, wf_msg_new(ECHO, "y", 1), 0));
        expect(&run, wf_ask(n, run.echo, wf_msg_new(LATER, NULL, 0), 0));
        expect(&run, wf_ask(n, wf_lookup(n, "nobody"), wf_msg_new(ECHO, NULL, 0), 0));
        ok &= wf_tell(n, run.echo, wf_msg_new(NOTE, NULL, 0)) == 0;
    }
    if (run.pending == 0)
        wf_node_shutdown(n);
    wf_node_run(n);
    cr_assert_eq(run.pending, 0, "every ask ended");
    wf_node_free(n);
    return ok && run.replies == 4;
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
