/* bench_actors: what weft's actors cost, measured the way peer_erlang.erl
 * and peer_caf.cpp measure Erlang/OTP's and CAF's, so run.py can put them
 * side by side.
 *
 *   ask_rps        sequential ask/reply round trips per second between two
 *                  actors on one node: a client actor asks a server actor,
 *                  and sends the next ask from the reply's callback with
 *                  wf_ask_as (as examples/ping_pong.c does); one ask
 *                  outstanding at a time. The node runs on the main thread
 *                  (wf_node_run) and a sample ends with wf_node_shutdown;
 *                  each sample is a fresh node, timed from the client's
 *                  first ask to its last reply.
 *   ask_csw_per_ask  voluntary + involuntary context switches of the process
 *                  (getrusage(RUSAGE_SELF)) during the timed ask loops,
 *                  divided by the asks. With the process's thread count
 *                  (/proc/self/task) it tells whether an ask hops threads:
 *                  thread_hops_per_ask is 0 when the loop ran with one
 *                  thread and under 0.001 switches per ask, else the
 *                  measured switches per ask (an upper bound, not a proof).
 *   spawn_per_s    anonymous idle actors (state_size 0, one handler) spawned
 *                  per second with wf_spawn on a node that is not running
 *                  yet; only the spawn loop is timed; they are stopped with
 *                  wf_stop afterwards (untimed). Fresh node per sample.
 *   bytes_per_idle_actor  RSS growth (/proc/self/statm) over N idle actors,
 *                  divided by N, measured first while the heap is fresh
 *                  (as peer_caf.cpp does); bytes_per_idle_actor_heap is the
 *                  growth of live heap bytes (malloc_usable_size) seen by a
 *                  counting allocator installed with wf_replace_allocator;
 *                  bytes_one_idle_actor is that growth for one actor alone.
 *   nng_inproc_rps round trips per second of a raw nng inproc exchange of
 *                  the same 8-byte payload between two pair1 sockets in this
 *                  process, with nng_send / nng_recv: what delivering
 *                  locally through nng inproc would cost instead of weft's
 *                  direct mailbox path. Single thread when nng allows it
 *                  (probed with send/receive timeouts); otherwise a second
 *                  thread echoes, and nng_mode says so.
 *
 * Rates are the median of SAMPLES samples, each calibrated to ~TARGET_S.
 * Output: one JSON object on stdout. Errors go to stderr, exit status 1.
 * --quick: tiny N, 3 samples; a smoke test, not a measurement.
 */
#include <dirent.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/supplemental/util/platform.h>

#include <weft/weft.h>

#include "harness.h"

#define SAMPLES       7
#define QUICK_SAMPLES 3
#define TARGET_S      0.15 /* per sample */
#define CALIBRATE_S   0.05 /* a calibration run shorter than this is too noisy */
#define ACTORS_N      100000
#define QUICK_N       2000
#define QUICK_RT      2000  /* round trips per sample in --quick */
#define ASK_TIMEOUT   60000 /* ms: far beyond a sample, so no timer fires */
#define MSG_BYTES     8     /* payload of every ask, reply and nng message */
#define NNG_PROBE_MS  2000  /* an nng call blocked this long is a deadlock */

enum { PING = 1, START };

static void check_wf(int rv, const char *what)
{
    if (rv != 0)
        bench_die("%s: %s (%s)", what, wf_errname(rv), wf_strerror(rv));
}

static void check_nng(int rv, const char *what)
{
    if (rv != 0)
        bench_die("%s: %s", what, nng_strerror(rv));
}

/* ---- the counting allocator ----
 *
 * Live heap bytes as malloc sees them (usable size, not the size asked
 * for). Only the main thread calls weft here (nng and libuv have their own
 * allocators), so plain variables do. Installed before any weft call, as
 * alloc.h requires. It counts only during the memory measurement, which
 * runs first and frees everything it made (checked: live_bytes is back to
 * 0); then counting is switched off, so the timed loops pay for a plain
 * malloc behind one indirect call and a branch, not for
 * malloc_usable_size. */
static int64_t live_bytes;
static bool counting = true;

static void *count_malloc(size_t size)
{
    void *p = malloc(size);
    if (counting && p != NULL)
        live_bytes += (int64_t)malloc_usable_size(p);
    return p;
}

static void *count_realloc(void *ptr, size_t size)
{
    if (!counting)
        return realloc(ptr, size);
    int64_t old = ptr != NULL ? (int64_t)malloc_usable_size(ptr) : 0;
    void *p = realloc(ptr, size);
    if (p != NULL)
        live_bytes += (int64_t)malloc_usable_size(p) - old;
    else if (size == 0)
        live_bytes -= old; /* glibc's realloc(ptr, 0) frees ptr */
    return p;
}

static void count_free(void *ptr)
{
    if (counting && ptr != NULL)
        live_bytes -= (int64_t)malloc_usable_size(ptr);
    free(ptr);
}

/* ---- helpers ---- */

static long rss_bytes(void)
{
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        bench_die("cannot open /proc/self/statm");
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        bench_die("cannot read /proc/self/statm");
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

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

static uint64_t csw(const struct rusage *r)
{
    return (uint64_t)r->ru_nvcsw + (uint64_t)r->ru_nivcsw;
}

/* ---- actors ---- */

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

/* The idle actor: no state, one handler, never sent anything. */
static wf_result idle_ping(wf_ctx *ctx, wf_msg *m)
{
    return wf_result_none();
}

static const wf_handler idle_handlers[] = {{PING, "ping", idle_ping, 0}};
static const wf_behaviour idle = {.name = "idle", .handlers = idle_handlers, .nhandlers = 1};

/* ---- ask ---- */

/* The ask loop's series, and the context switches and threads of its
 * samples (not of its calibration runs). */
struct ask_measure {
    struct bench_series rate;
    uint64_t asks, csw, vcsw, ivcsw;
    int max_threads;
};

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

/* The series of a timed loop: calibrated to TARGET_S a sample, or QUICK_RT
 * round trips in quick runs. */
static void measure_rate(bool quick, int samples, struct bench_series *out,
                         double (*run)(uint64_t n, void *arg), void *arg)
{
    bench_series_init(out, &(struct bench_series_config){.unit = BENCH_PER_SECOND,
                                                         .samples = samples,
                                                         .n = quick ? QUICK_RT : 1000,
                                                         .quick = quick,
                                                         .calibrate_s = CALIBRATE_S,
                                                         .target_s = TARGET_S,
                                                         .min_n = 1000});
    bench_series_run(out, run, arg);
}

/* ---- spawn and memory ---- */

static void spawn_all(wf_node *node, wf_pid *pids, int n)
{
    for (int i = 0; i < n; i++) {
        int rv = wf_spawn(node, NULL, &idle, NULL, &pids[i]);
        if (rv != 0)
            bench_die("wf_spawn of idle actor %d: %s", i, wf_errname(rv));
    }
}

static void stop_all(wf_node *node, const wf_pid *pids, int n)
{
    for (int i = 0; i < n; i++)
        check_wf(wf_stop(node, pids[i]), "wf_stop");
}

struct spawn_measure {
    struct bench_series rate;
    wf_pid *pids;
};

/* Spawns n idle actors on a fresh node; returns the spawn loop's seconds. */
static double spawn_once(uint64_t n, void *arg)
{
    struct spawn_measure *m = arg;
    wf_node *node = wf_node_new(&(wf_node_config){.name = "spawn"});
    if (node == NULL)
        bench_die("wf_node_new failed");
    double t0 = bench_now_s();
    spawn_all(node, m->pids, (int)n);
    double t = bench_now_s() - t0;
    stop_all(node, m->pids, (int)n);
    wf_node_free(node);
    return t;
}

struct memory {
    double rss_per, heap_per;
    int64_t one;
};

static void measure_memory(int n, wf_pid *pids, struct memory *out)
{
    memset(pids, 0, (size_t)n * sizeof *pids); /* touched now, so not counted */
    wf_node *node = wf_node_new(&(wf_node_config){.name = "memory"});
    if (node == NULL)
        bench_die("wf_node_new failed");
    /* One actor alone, once the registry has its first slots. */
    wf_pid first, second;
    check_wf(wf_spawn(node, NULL, &idle, NULL, &first), "wf_spawn");
    int64_t h0 = live_bytes;
    check_wf(wf_spawn(node, NULL, &idle, NULL, &second), "wf_spawn");
    out->one = live_bytes - h0;
    check_wf(wf_stop(node, first), "wf_stop");
    check_wf(wf_stop(node, second), "wf_stop");

    long rss0 = rss_bytes();
    int64_t heap0 = live_bytes;
    spawn_all(node, pids, n);
    long rss1 = rss_bytes();
    int64_t heap1 = live_bytes;
    out->rss_per = (double)(rss1 - rss0) / n;
    out->heap_per = (double)(heap1 - heap0) / n;
    stop_all(node, pids, n);
    wf_node_free(node);
}

/* ---- nng inproc ---- */

struct ipair {
    nng_socket a, b;
    nng_thread *echo; /* NULL: a and b are both driven by the main thread */
    int echo_err;
};

static void echo_main(void *arg)
{
    struct ipair *p = arg;
    for (;;) {
        unsigned char buf[64];
        size_t len = sizeof buf;
        int rv = nng_recv(p->b, buf, &len, 0);
        if (rv == NNG_ECLOSED)
            return;
        if (rv == 0)
            rv = nng_send(p->b, buf, len, 0);
        if (rv == NNG_ECLOSED)
            return;
        if (rv != 0) {
            p->echo_err = rv;
            return;
        }
    }
}

static void ipair_open(struct ipair *p, const char *url, int timeout_ms)
{
    check_nng(nng_pair1_open(&p->a), "nng_pair1_open");
    check_nng(nng_pair1_open(&p->b), "nng_pair1_open");
    nng_socket both[2] = {p->a, p->b};
    for (int i = 0; i < 2; i++) {
        check_nng(nng_socket_set_ms(both[i], NNG_OPT_SENDTIMEO, timeout_ms), "NNG_OPT_SENDTIMEO");
        check_nng(nng_socket_set_ms(both[i], NNG_OPT_RECVTIMEO, timeout_ms), "NNG_OPT_RECVTIMEO");
    }
    check_nng(nng_listen(p->a, url, NULL, 0), "nng_listen");
    check_nng(nng_dial(p->b, url, NULL, 0), "nng_dial");
    p->echo = NULL;
    p->echo_err = 0;
}

static void ipair_close(struct ipair *p)
{
    check_nng(nng_close(p->a), "nng_close");
    check_nng(nng_close(p->b), "nng_close"); /* ends the echo thread's recv */
    if (p->echo != NULL) {
        nng_thread_destroy(p->echo); /* joins */
        p->echo = NULL;
        if (p->echo_err != 0)
            bench_die("nng echo thread: %s", nng_strerror(p->echo_err));
    }
}

/* One round trip: a sends, b receives and sends back (here, or on the echo
 * thread), a receives. Returns 0 or the first nng error. */
static int nng_round_trip(struct ipair *p, uint64_t v)
{
    unsigned char buf[64];
    size_t len = sizeof buf;
    int rv;
    if ((rv = nng_send(p->a, &v, sizeof v, 0)) != 0)
        return rv;
    if (p->echo == NULL) {
        if ((rv = nng_recv(p->b, buf, &len, 0)) != 0)
            return rv;
        if ((rv = nng_send(p->b, buf, len, 0)) != 0)
            return rv;
        len = sizeof buf;
    }
    if ((rv = nng_recv(p->a, buf, &len, 0)) != 0)
        return rv;
    uint64_t back;
    if (len != sizeof back)
        return NNG_EPROTO;
    memcpy(&back, buf, sizeof back);
    return back == v ? 0 : NNG_EPROTO;
}

struct nng_measure {
    struct bench_series rate;
    struct ipair *p;
    uint64_t rts, csw; /* of the samples */
    double csw_per_rt;
    bool one_thread;
};

static double nng_run_fn(uint64_t n, void *arg)
{
    struct nng_measure *m = arg;
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = bench_now_s();
    for (uint64_t i = 0; i < n; i++)
        check_nng(nng_round_trip(m->p, i), "nng round trip");
    double t = bench_now_s() - t0;
    getrusage(RUSAGE_SELF, &r1);
    if (m->rate.sampling) {
        m->rts += n;
        m->csw += csw(&r1) - csw(&r0);
    }
    return t;
}

static void measure_nng(bool quick, int samples, struct nng_measure *out)
{
    struct ipair p;
    /* Probe: can one thread drive both ends? A deadlock shows as a timeout. */
    ipair_open(&p, "inproc://weft-bench-actors-probe", NNG_PROBE_MS);
    int rv = 0;
    for (uint64_t i = 0; i < 1000 && rv == 0; i++)
        rv = nng_round_trip(&p, i);
    out->one_thread = rv == 0;
    if (rv != 0 && rv != NNG_ETIMEDOUT)
        bench_die("nng inproc probe: %s", nng_strerror(rv));
    ipair_close(&p);

    ipair_open(&p, "inproc://weft-bench-actors", -1);
    if (!out->one_thread)
        check_nng(nng_thread_create(&p.echo, echo_main, &p), "nng_thread_create");
    out->p = &p;
    measure_rate(quick, samples, &out->rate, nng_run_fn, out);
    out->csw_per_rt = (double)out->csw / (double)out->rts;
    ipair_close(&p);
}

int main(int argc, char **argv)
{
    bool quick = bench_quick_arg(argc, argv);
    bench_name_set("bench_actors");
    /* Before anything else in weft, so that every allocation is counted. */
    check_wf(wf_replace_allocator(count_malloc, count_realloc, count_free), "wf_replace_allocator");

    int samples = quick ? QUICK_SAMPLES : SAMPLES;
    int n = quick ? QUICK_N : ACTORS_N;
    wf_pid *pids = bench_xmalloc((size_t)n * sizeof *pids);

    /* Memory first, while the heap is fresh; nng last, since it starts
     * threads that would stay for the rest of the run. */
    struct memory mem;
    measure_memory(n, pids, &mem);
    if (live_bytes != 0)
        bench_die("%lld heap bytes still live after the memory measurement", (long long)live_bytes);
    counting = false;
    /* Not calibrated: every sample spawns the n actors measured above. */
    struct spawn_measure spawn = {.pids = pids};
    bench_series_init(&spawn.rate, &(struct bench_series_config){.unit = BENCH_PER_SECOND,
                                                                 .samples = samples,
                                                                 .n = (uint64_t)n,
                                                                 .quick = true});
    bench_series_run(&spawn.rate, spawn_once, &spawn);
    free(pids);

    struct ask_measure ask = {0};
    measure_rate(quick, samples, &ask.rate, ask_once, &ask);
    double csw_per_ask = (double)ask.csw / (double)ask.asks;
    bool no_hops = ask.max_threads == 1 && csw_per_ask < 0.001;

    struct nng_measure nr = {0};
    measure_nng(quick, samples, &nr);
    char nng_ver[64];
    snprintf(nng_ver, sizeof nng_ver, "%s", nng_version());
    nng_fini();

    bench_json_begin("bench_actors", quick, samples);
    bench_json_u64("msg_bytes", MSG_BYTES);

    bench_json_series("ask_rps", 0, &ask.rate);
    bench_json_u64("ask_asks_measured", ask.asks);
    bench_json_num("ask_csw_per_ask", 6, csw_per_ask);
    bench_json_u64("ask_csw_voluntary", ask.vcsw);
    bench_json_u64("ask_csw_involuntary", ask.ivcsw);
    bench_json_u64("ask_threads", (uint64_t)ask.max_threads);
    bench_json_num("thread_hops_per_ask", 6, no_hops ? 0.0 : csw_per_ask);
    bench_json_str("thread_hops_basis",
                   no_hops ? "0: the ask loops ran with one thread in the process and under "
                             "0.001 context switches per ask"
                           : "measured context switches per ask (an upper bound): the "
                             "loop ran with other threads or switched too often to say 0");

    bench_json_series("spawn_per_s", 0, &spawn.rate);
    bench_json_num("bytes_per_idle_actor", 1, mem.rss_per);
    bench_json_num("bytes_per_idle_actor_heap", 1, mem.heap_per);
    bench_json_num("bytes_one_idle_actor", 0, (double)mem.one);
    bench_json_u64("idle_actors_n", (uint64_t)n);

    bench_json_series("nng_inproc_rps", 0, &nr.rate);
    bench_json_num("nng_csw_per_rt", 4, nr.csw_per_rt);
    bench_json_str("nng_version", nng_ver);
    bench_json_str("nng_mode", nr.one_thread ? "one thread" : "echo thread");
    bench_json_str(
        "nng_note",
        nr.one_thread
            ? "one thread drives both pair1 sockets: send on a with no receiver waiting "
              "does not deadlock on inproc (probed with send/recv timeouts)"
            : "a single thread deadlocked (send/recv timed out), so a second thread echoes "
              "on socket b; the round trip includes that thread hop");
    return bench_json_end();
}
