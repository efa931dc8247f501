/* Thread contracts: in builds without NDEBUG, a public function called on a
 * thread its header does not allow stops the process with a message naming
 * the function and both threads; the documented exceptions pass. Each case
 * runs in a child process, which the test watches. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <criterion/criterion.h>

#include <weft/transport.h>

#include "testutil.h"

TestSuite(contracts, .timeout = 30);

#ifndef NDEBUG

struct outcome {
    int status;     /* waitpid's */
    char err[2048]; /* what the child wrote on stderr */
};

/* Runs fn in a child on a thread named "caller"; fn returns normally only
 * if no check stopped it. */
static void in_child(void (*fn)(void), struct outcome *out)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        prctl(PR_SET_NAME, "caller", 0, 0, 0);
        fn();
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t got;
    while ((got = read(fds[0], out->err + len, sizeof out->err - 1 - len)) > 0)
        len += (size_t)got;
    out->err[len] = '\0';
    close(fds[0]);
    cr_assert_eq(waitpid(pid, &out->status, 0), pid);
}

static void expect_stop(void (*fn)(void), const char *func, const char *node)
{
    struct outcome o;
    in_child(fn, &o);
    cr_assert(WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGABRT,
              "%s on the wrong thread stops the process (status %#x; stderr: %s)", func, o.status,
              o.err);
    /* The tids vary: compare around them. */
    char head[96], tail[64];
    snprintf(head, sizeof head, "weft: %s called on thread 'caller'/tid ", func);
    snprintf(tail, sizeof tail, ", but node '%s' runs its loop on tid ", node);
    cr_assert(strstr(o.err, head) != NULL && strstr(o.err, tail) != NULL,
              "the message names the function, the thread and the node: %s", o.err);
}

static wf_result on_echo(wf_ctx *ctx, wf_msg *m)
{
    return wf_result_msg(wf_msg_new(wf_msg_type(m), NULL, 0));
}
static const wf_handler echo_h[] = {{1, "echo", on_echo, 0}};
static const wf_behaviour echo = {.name = "echo", .handlers = echo_h, .nhandlers = 1};

/* A node named a running on its own thread. */
static wf_node *started(void)
{
    wf_node *n = wf_node_new(&(wf_node_config){.name = "a"});
    if (n == NULL || wf_node_start(n) != 0)
        _exit(3);
    return n;
}

static void ask_off_loop(void)
{
    wf_node *n = started();
    wf_deferred_release(wf_ask(n, (wf_pid){1}, wf_msg_new(1, NULL, 0), 0));
}

static void spawn_while_running(void)
{
    wf_node *n = started();
    wf_spawn(n, "late", &echo, NULL, NULL);
}

static void trace_filter_off_loop(void)
{
    wf_node *n = started();
    wf_node_trace_filter(n, 1, NULL, NULL);
}

static void stop_off_loop(void)
{
    wf_node *n = started();
    wf_stop(n, (wf_pid){1});
}

Test(contracts, wf_ask_off_the_loop_thread_stops_the_process)
{
    expect_stop(ask_off_loop, "wf_ask", "a");
}

Test(contracts, wf_spawn_from_another_thread_while_the_node_runs_stops_the_process)
{
    expect_stop(spawn_while_running, "wf_spawn", "a");
}

Test(contracts, wf_node_trace_filter_off_the_loop_stops_the_process)
{
    expect_stop(trace_filter_off_loop, "wf_node_trace_filter", "a");
}

Test(contracts, wf_stop_off_the_loop_stops_the_process)
{
    expect_stop(stop_off_loop, "wf_stop", "a");
}

/* The transport checks its functions through wf_link_check_thread. */
static void dial_while_running(void)
{
    wf_node *n = wf_node_new(&(wf_node_config){.name = "a"});
    wf_transport *t;
    if (n == NULL || wf_transport_new(n, &(wf_transport_config){.secret = "s"}, &t) != 0 ||
        wf_node_start(n) != 0)
        _exit(3);
    wf_transport_dial(t, "tcp://127.0.0.1:1");
}

Test(contracts, wf_transport_dial_from_another_thread_while_the_node_runs_stops_the_process)
{
    expect_stop(dial_while_running, "wf_transport_dial", "a");
}

static void spawn_on(void *arg)
{
    wf_pid p;
    if (wf_spawn(arg, "early", &echo, NULL, &p) != 0)
        _exit(4);
}

/* What the headers allow: wf_spawn from any thread before the node runs,
 * wf_tell and wf_node_call from any thread, the counters once the loop
 * ended, and wf_node_free from any thread but the loop's. */
static void allowed(void)
{
    wf_node *n = wf_node_new(&(wf_node_config){.name = "a"});
    uv_thread_t t;
    if (n == NULL || uv_thread_create(&t, spawn_on, n) != 0)
        _exit(3);
    uv_thread_join(&t);
    if (wf_node_start(n) != 0)
        _exit(3);
    wf_pid p = {0};
    wf_result r = wf_node_call(n, p, wf_msg_new(1, NULL, 0), 1000);
    wf_result_free(r);
    wf_tell(n, p, wf_msg_new(1, NULL, 0));
    wf_node_shutdown(n);
    wf_node_wait(n);
    wf_node_stats s;
    wf_node_stats_get(n, &s);
    wf_node_free(n);
}

Test(contracts, the_documented_exceptions_pass)
{
    struct outcome o;
    in_child(allowed, &o);
    cr_assert(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0, "status %#x; stderr: %s", o.status,
              o.err);
    cr_assert_null(strstr(o.err, "weft: "), "%s", o.err);
}

#else

Test(contracts, checks_are_compiled_out_with_NDEBUG)
{
    cr_skip_test("thread checks exist only in builds without NDEBUG");
}

#endif
