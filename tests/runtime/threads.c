/* Nodes on their own threads: calls and tells from other threads, several
 * nodes in one process. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include <criterion/criterion.h>

#include "testutil.h"

TestSuite(threads, .init = tu_capture_log, .timeout = 30);

enum { ADD = 1, GET };

static wf_result on_add(wf_ctx *ctx, wf_msg *m)
{
    *(long *)wf_ctx_state(ctx) += *(long *)wf_msg_body(m);
    return wf_result_none();
}

static wf_result on_get(wf_ctx *ctx, wf_msg *m)
{
    return wf_result_msg(wf_msg_new(GET, wf_ctx_state(ctx), sizeof(long)));
}

static const wf_handler h[] = {{ADD, "add", on_add, 0}, {GET, "get", on_get, 0}};
static const wf_behaviour counter = {
    .name = "counter", .state_size = sizeof(long), .handlers = h, .nhandlers = 2};

static long call_get(wf_node *n, wf_pid p)
{
    wf_result r = wf_node_call(n, p, wf_msg_new(GET, NULL, 0), 2000);
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    long v = *(long *)wf_msg_body(r.u.ptr);
    wf_result_free(r);
    return v;
}

Test(threads, tell_and_call_from_another_thread)
{
    wf_node *n = wf_node_new(NULL);
    wf_pid p;
    wf_spawn(n, "counter", &counter, NULL, &p);
    cr_assert_eq(wf_node_start(n), 0);
    for (long i = 1; i <= 1000; i++)
        cr_assert_eq(wf_tell(n, p, wf_msg_new(ADD, &i, sizeof i)), 0);
    cr_assert_eq(call_get(n, p), 500500, "tells from one thread arrive in order, before the call");
    wf_node_shutdown(n);
    wf_node_wait(n);
    cr_assert_eq(wf_tell(n, p, wf_msg_new(ADD, &(long){1}, sizeof(long))), WF_ESHUTDOWN);
    wf_result r = wf_node_call(n, p, wf_msg_new(GET, NULL, 0), 100);
    cr_assert_eq(wf_failure_code(r.u.failure), WF_ESHUTDOWN);
    wf_result_free(r);
    wf_node_free(n);
}

struct feeder {
    wf_node *n;
    wf_pid p;
};

static void feed(void *arg)
{
    struct feeder *f = arg;
    for (long i = 0; i < 10000; i++)
        wf_tell(f->n, f->p, wf_msg_new(ADD, &(long){1}, sizeof(long)));
}

Test(threads, several_nodes_in_one_process_and_many_sending_threads)
{
    wf_node *a = wf_node_new(&(wf_node_config){.name = "a"});
    wf_node *b = wf_node_new(&(wf_node_config){.name = "b"});
    wf_pid pa, pb;
    wf_spawn(a, "counter", &counter, NULL, &pa);
    wf_spawn(b, "counter", &counter, NULL, &pb);
    wf_node_start(a);
    wf_node_start(b);
    uv_thread_t t[4];
    struct feeder f[4] = {{a, pa}, {a, pa}, {b, pb}, {b, pb}};
    for (int i = 0; i < 4; i++)
        uv_thread_create(&t[i], feed, &f[i]);
    for (int i = 0; i < 4; i++)
        uv_thread_join(&t[i]);
    cr_assert_eq(call_get(a, pa), 20000);
    cr_assert_eq(call_get(b, pb), 20000);
    wf_node_shutdown(a);
    wf_node_shutdown(b);
    wf_node_wait(a);
    wf_node_wait(b);
    wf_node_free(a);
    wf_node_free(b);
}

static void never_called(uv_signal_t *handle, int signum) {}

Test(threads, shutdown_ends_the_loop_even_with_the_programs_own_handles_on_it)
{
    wf_node *n = wf_node_new(NULL);
    uv_signal_t sig; /* a program's own handle, still active at shutdown */
    uv_signal_init(wf_node_loop(n), &sig);
    uv_signal_start(&sig, never_called, SIGUSR1);
    wf_node_start(n);
    wf_node_shutdown(n);
    wf_node_wait(n); /* would hang if the signal handle kept the loop running */
    wf_node_free(n); /* closes the signal handle */
}

/* weft logs from every thread it runs code on; log.h asks the hook to be
 * thread-safe, and the tests' own hook (testutil.c) must be too. */
static void log_lines(void *arg)
{
    for (int i = 0; i < 500; i++)
        wf_log(WF_LOG_INFO, "thread %d line %d", *(int *)arg, i);
}

Test(threads, reports_logged_from_several_threads_at_once_are_all_captured)
{
    uv_thread_t t[4];
    int id[4] = {0, 1, 2, 3};
    for (int i = 0; i < 4; i++)
        uv_thread_create(&t[i], log_lines, &id[i]);
    /* Reading while they write: the text is a copy, whole lines only. */
    for (int i = 0; i < 100; i++) {
        const char *text = tu_log_text();
        size_t len = strlen(text);
        cr_assert(len == 0 || text[len - 1] == '\n', "a line cut short at %zu bytes", len);
    }
    for (int i = 0; i < 4; i++)
        uv_thread_join(&t[i]);
    cr_assert_eq(tu_log_count(), 2000);
    const char *text = tu_log_text();
    for (int i = 0; i < 4; i++) {
        char last[32];
        snprintf(last, sizeof last, "thread %d line 499\n", i);
        cr_assert(strstr(text, last) != NULL, "%s missing", last);
    }
}
