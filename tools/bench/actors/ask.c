/* bench_actors' ask: sequential ask/reply round trips between two actors
 * on one node. A client actor asks a server actor and sends the next ask
 * from the reply's callback with wf_ask_as (as examples/ping_pong.c does),
 * one ask outstanding at a time. The node runs on the main thread
 * (wf_node_run) and a run ends with wf_node_shutdown; each run is a fresh
 * node, timed from the client's first ask to its last reply. The samples'
 * context switches (getrusage) and threads (/proc/self/task) tell whether an
 * ask hops threads. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include <weft/weft.h>

#include "actors.h"

#define ASK_TIMEOUT 60000 /* ms: far beyond a sample, so no timer fires */

/* The threads of this process, from /proc/self/task. */
static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        bench_die("cannot open /proc/self/task");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n;
}

/* The server answers every ping with a copy of its payload. */
static wf_result server_ping(wf_ctx *ctx, wf_msg *m)
{
    wf_msg *reply = wf_msg_new(PING, wf_msg_body(m), wf_msg_len(m));
    if (reply == NULL)
        return WF_FAIL(WF_ENOMEM, "no memory for a reply");
    return wf_result_msg(reply);
}

static const wf_handler server_handlers[] = {{PING, "ping", server_ping, 0}};
static const wf_behaviour server = {.name = "server", .handlers = server_handlers, .nhandlers = 1};

/* One sample of the ask loop; the client actor's state points at it. */
struct ask_run {
    wf_node *node;
    wf_pid self, server;
    uint64_t n, left;
    double t0, t1;
    struct rusage ru0, ru1;
    int threads0, threads1;
    int err;
};

static wf_result on_reply(wf_result r, void *arg);
static wf_result on_fail(wf_result r, void *arg);

static void ask_abort(struct ask_run *run, int err)
{
    if (run->err == 0)
        run->err = err;
    wf_node_shutdown(run->node);
}

static void send_ask(struct ask_run *run)
{
    uint64_t v = run->left;
    wf_msg *m = wf_msg_new(PING, &v, sizeof v);
    if (m == NULL) {
        ask_abort(run, WF_ENOMEM);
        return;
    }
    wf_deferred *d = wf_ask_as(run->node, run->self, run->server, m, ASK_TIMEOUT);
    if (d == NULL) {
        ask_abort(run, WF_ENOMEM);
        return;
    }
    int rv = wf_deferred_add_callbacks(d, on_reply, on_fail, run);
    wf_deferred_release(d);
    if (rv != 0)
        ask_abort(run, rv);
}

static wf_result on_reply(wf_result r, void *arg)
{
    struct ask_run *run = arg;
    uint64_t v = 0;
    bool ok = wf_result_is_msg(r) && wf_msg_len(r.u.ptr) == sizeof v;
    if (ok) {
        memcpy(&v, wf_msg_body(r.u.ptr), sizeof v);
        ok = v == run->left;
    }
    wf_result_free(r);
    if (!ok) {
        fprintf(stderr, "bench_actors: unexpected reply\n");
        ask_abort(run, WF_EPROTO);
    } else if (--run->left > 0) {
        send_ask(run);
    } else {
        run->t1 = bench_now_s();
        getrusage(RUSAGE_SELF, &run->ru1);
        run->threads1 = count_threads();
        wf_node_shutdown(run->node);
    }
    return wf_result_none();
}

static wf_result on_fail(wf_result r, void *arg)
{
    struct ask_run *run = arg;
    char *text = wf_failure_format(r.u.failure, WF_FORMAT_TEXT);
    fprintf(stderr, "bench_actors: ask failed: %s\n",
            text ? text : wf_failure_message(r.u.failure));
    wf_free(text);
    int code = wf_failure_code(r.u.failure);
    wf_result_free(r);
    ask_abort(run, code ? code : WF_EINTERNAL);
    return wf_result_none();
}

static int client_init(wf_ctx *ctx, void *arg)
{
    struct ask_run *run = arg;
    *(struct ask_run **)wf_ctx_state(ctx) = run;
    run->self = wf_ctx_self(ctx);
    return 0;
}

static wf_result client_start(wf_ctx *ctx, wf_msg *m)
{
    struct ask_run *run = *(struct ask_run **)wf_ctx_state(ctx);
    run->threads0 = count_threads();
    getrusage(RUSAGE_SELF, &run->ru0);
    run->t0 = bench_now_s();
    send_ask(run);
    return wf_result_none();
}

static const wf_handler client_handlers[] = {{START, "start", client_start, 0}};
static const wf_behaviour client = {.name = "client",
                                    .state_size = sizeof(struct ask_run *),
                                    .init = client_init,
                                    .handlers = client_handlers,
                                    .nhandlers = 1};

/* Runs n sequential asks on a fresh node; returns their seconds. */
static double ask_once(uint64_t n, void *arg)
{
    struct ask_measure *tot = arg;
    wf_node *node = wf_node_new(&(wf_node_config){.name = "bench"});
    if (node == NULL)
        bench_die("wf_node_new failed");
    struct ask_run run = {.node = node, .n = n, .left = n};
    wf_pid cl;
    check_wf(wf_spawn(node, NULL, &server, NULL, &run.server), "wf_spawn(server)");
    check_wf(wf_spawn(node, NULL, &client, &run, &cl), "wf_spawn(client)");
    wf_msg *start = wf_msg_new(START, NULL, 0);
    if (start == NULL)
        bench_die("wf_msg_new failed");
    check_wf(wf_tell(node, cl, start), "wf_tell(start)");
    check_wf(wf_node_run(node), "wf_node_run");
    wf_node_stats st;
    wf_node_stats_get(node, &st);
    wf_node_free(node);
    if (run.err != 0)
        bench_die("ask loop failed: %s", wf_errname(run.err));
    if (run.left != 0)
        bench_die("ask loop ended early: %llu asks left", (unsigned long long)run.left);
    if (st.asks != n || st.replies != n || st.timeouts != 0 || st.late_replies != 0)
        bench_die("node stats disagree: asks %llu, replies %llu, timeouts %llu, late %llu for %llu",
                  (unsigned long long)st.asks, (unsigned long long)st.replies,
                  (unsigned long long)st.timeouts, (unsigned long long)st.late_replies,
                  (unsigned long long)n);
    if (tot->rate.sampling) {
        tot->asks += n;
        tot->vcsw += (uint64_t)(run.ru1.ru_nvcsw - run.ru0.ru_nvcsw);
        tot->ivcsw += (uint64_t)(run.ru1.ru_nivcsw - run.ru0.ru_nivcsw);
        tot->csw += csw(&run.ru1) - csw(&run.ru0);
        int t = run.threads0 > run.threads1 ? run.threads0 : run.threads1;
        if (t > tot->max_threads)
            tot->max_threads = t;
    }
    return run.t1 - run.t0;
}

void measure_ask(bool quick, int samples, struct ask_measure *out)
{
    actors_series_init(&out->rate, quick, samples);
    bench_series_run(&out->rate, ask_once, out);
}
