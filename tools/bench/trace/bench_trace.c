/* The trace benchmark's driver: sequential local ask/reply round trips
 * between two actors (the reply's callback sends the next ask), on one
 * node running on this thread, with or without tracing.
 *
 *   bench_trace N SAMPLES [TRACE_SPEC]
 *
 * Prints the harness's JSON: the rate of each sample (round trips per second), their
 * median, and, when tracing, the events recorded and lost. Built twice:
 * bench_trace against libweft, bench_trace_base against libweft built with
 * tracing compiled out (the baseline for "off costs nothing").
 *
 * The loop's thread is pinned to the last CPU once the trace writer has
 * started, and unpinned before the next sample starts its writer (a thread
 * inherits its creator's CPUs, and a writer sharing the loop's CPU measures
 * the scheduler, not tracing): on these 2-core virtual machines one CPU
 * takes the host's interrupts and is up to a third slower, and a loop that
 * wanders between them makes every comparison a coin toss. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include <weft/weft.h>

#include "harness.h"

enum { PING = 1, START };

struct run {
    wf_node *node;
    wf_pid self, server;
    uint64_t left;
    int err;
    uint64_t t0, t1;
};

static wf_result server_ping(wf_ctx *ctx, wf_msg *m)
{
    return wf_result_msg(wf_msg_new(PING, "pong", 4));
}

static const wf_handler server_h[] = {{PING, "ping", server_ping, 0}};
static const wf_behaviour server = {.name = "server", .handlers = server_h, .nhandlers = 1};

static void send_ask(struct run *r);

static wf_result on_reply(wf_result res, void *arg)
{
    struct run *r = arg;
    if (!wf_result_is_msg(res)) {
        r->err = res.kind == WF_RESULT_FAILURE ? wf_failure_code(res.u.failure) : WF_EINTERNAL;
        wf_result_free(res);
        wf_node_shutdown(r->node);
        return wf_result_none();
    }
    wf_result_free(res);
    if (--r->left == 0) {
        r->t1 = uv_hrtime();
        wf_node_shutdown(r->node);
    } else {
        send_ask(r);
    }
    return wf_result_none();
}

/* Each ask is a request of its own, a new trace (as each HTTP request is
 * at the listener), so sampling applies per ask. */
static void send_ask(struct run *r)
{
    wf_trace_ctx span, prev = wf_trace_begin(r->node, NULL, &span);
    wf_deferred *d = wf_ask_as(r->node, r->self, r->server, wf_msg_new(PING, "ping", 4), 0);
    wf_trace_end(r->node, &prev);
    wf_deferred_add_both(d, on_reply, r);
    wf_deferred_release(d);
}

static wf_result client_start(wf_ctx *ctx, wf_msg *m)
{
    struct run *r = *(struct run **)wf_ctx_state(ctx);
    r->self = wf_ctx_self(ctx);
    r->t0 = uv_hrtime();
    send_ask(r);
    return wf_result_none();
}

static int client_init(wf_ctx *ctx, void *arg)
{
    *(struct run **)wf_ctx_state(ctx) = arg;
    return 0;
}

static const wf_handler client_h[] = {{START, "start", client_start, 0}};
static const wf_behaviour client = {.name = "client",
                                    .state_size = sizeof(struct run *),
                                    .init = client_init,
                                    .handlers = client_h,
                                    .nhandlers = 1};

/* One sample: n round trips on a fresh node; returns their rate. */
static double sample(uint64_t n, const char *spec, unsigned long long *events,
                     unsigned long long *lost)
{
    struct run r = {.left = n};
    cpu_set_t all;
    CPU_ZERO(&all);
    for (long c = 0; c < sysconf(_SC_NPROCESSORS_ONLN); c++)
        CPU_SET(c, &all);
    pthread_setaffinity_np(pthread_self(), sizeof all, &all);
    r.node = wf_node_new(&(wf_node_config){.name = "bench"});
    if (spec != NULL) {
        char buf[1024], err[200];
        wf_trace_config cfg;
        snprintf(buf, sizeof buf, "%s", spec);
        if (wf_trace_config_parse(buf, &cfg, err, sizeof err) != 0) {
            fprintf(stderr, "bench_trace: %s\n", err);
            exit(2);
        }
        if (cfg.file != NULL)
            remove(cfg.file); /* each sample writes its own */
        int rv = wf_node_trace_start(r.node, &cfg);
        if (rv != 0)
            bench_die("cannot trace: %s", wf_strerror(rv));
    }
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sysconf(_SC_NPROCESSORS_ONLN) - 1, &one);
    pthread_setaffinity_np(pthread_self(), sizeof one, &one);
    wf_pid cl;
    wf_spawn(r.node, "server", &server, NULL, &r.server);
    wf_spawn(r.node, "client", &client, &r, &cl);
    wf_tell(r.node, cl, wf_msg_new(START, NULL, 0));
    wf_node_run(r.node);
    char desc[256] = "";
    wf_node_trace_describe(r.node, desc, sizeof desc);
    const char *e = strstr(desc, "events="), *l = strstr(desc, "lost=");
    *events += e ? strtoull(e + 7, NULL, 10) : 0;
    *lost += l ? strtoull(l + 5, NULL, 10) : 0;
    wf_node_free(r.node);
    if (r.err != 0 || r.left != 0)
        bench_die("the ask loop failed: %s", wf_errname(r.err));
    return (double)n / ((double)(r.t1 - r.t0) / 1e9);
}

int main(int argc, char **argv)
{
    bench_name_set("bench_trace");
    if (argc < 3) {
        fprintf(stderr, "usage: bench_trace N SAMPLES [TRACE_SPEC]\n");
        return 2;
    }
    uint64_t n = strtoull(argv[1], NULL, 10);
    int k = atoi(argv[2]);
    const char *spec = argc > 3 && argv[3][0] != '\0' ? argv[3] : NULL;
    if (n == 0 || k < 1 || k > BENCH_MAX_SAMPLES) {
        fprintf(stderr, "bench_trace: N > 0 and 1 <= SAMPLES <= %d\n", BENCH_MAX_SAMPLES);
        return 2;
    }
    double v[BENCH_MAX_SAMPLES];
    unsigned long long events = 0, lost = 0;
    /* When tracing: what one reading of each trace clock costs (the
     * monotonic clock's and the time-stamp counter's), since every recorded
     * event takes one (untraced runs skip it, so that callgrind's count of
     * them is the round trips' alone). */
    enum { READS = 1000000 };
    double clock_ns = 0, tsc_ns = 0;
    if (spec != NULL) {
        uint64_t c0 = uv_hrtime();
        for (int i = 0; i < READS; i++)
            (void)uv_hrtime(); /* a library call: not optimised away */
        clock_ns = (double)(uv_hrtime() - c0) / READS;
#if defined(__x86_64__) || defined(__i386__)
        volatile uint64_t sink = 0;
        c0 = uv_hrtime();
        for (int i = 0; i < READS; i++)
            sink += __rdtsc();
        tsc_ns = (double)(uv_hrtime() - c0) / READS;
#endif
    }
    sample(n / 10 + 1, spec, &events, &lost); /* warm up */
    events = lost = 0;
    for (int i = 0; i < k; i++)
        v[i] = sample(n, spec, &events, &lost);
    /* run.py chooses N and SAMPLES, quick or not; the binary cannot tell. */
    bench_json_begin("bench_trace", false, k);
    bench_json_u64("n", n);
    bench_json_list("rps_samples", 0, v, k);
    bench_json_num("rps", 0, bench_median(v, k));
    bench_json_u64("events", events);
    bench_json_u64("lost", lost);
    bench_json_num("clock_ns", 1, clock_ns);
    bench_json_num("tsc_ns", 1, tsc_ns);
    return bench_json_end();
}
