/* bench_actors: what weft's actors cost, measured the way peer_erlang.erl
 * and peer_caf.cpp measure Erlang/OTP's and CAF's, so run.py can put them
 * side by side. Each measurement is a file of its own:
 *
 *   ask.c         ask_rps (sequential ask/reply round trips per second),
 *                 ask_csw_per_ask and thread_hops_per_ask: 0 when the loops
 *                 ran with one thread and under 0.001 context switches per
 *                 ask, else the measured switches (an upper bound)
 *   idle.c        bytes_per_idle_actor (RSS), bytes_per_idle_actor_heap and
 *                 bytes_one_idle_actor (counting allocator), spawn_per_s
 *   nng_inproc.c  nng_inproc_rps, nng_mode: the same round trip through
 *                 nng inproc
 *
 * Rates are the median of SAMPLES samples, each calibrated to ~TARGET_S
 * (spawn_per_s: each of the N idle actors). Output: one JSON object on
 * stdout. Errors go to stderr, exit status 1. --quick: tiny N, 3 samples;
 * a smoke test, not a measurement.
 */
#include <stdio.h>
#include <stdlib.h>

#include <nng/nng.h>
#include <weft/weft.h>

#include "actors.h"

#define SAMPLES       7
#define QUICK_SAMPLES 3
#define TARGET_S      0.15 /* per sample */
#define CALIBRATE_S   0.05 /* a calibration run shorter than this is too noisy */
#define ACTORS_N      100000
#define QUICK_N       2000
#define QUICK_RT      2000 /* round trips per sample in --quick */

void check_wf(int rv, const char *what)
{
    if (rv != 0)
        bench_die("%s: %s (%s)", what, wf_errname(rv), wf_strerror(rv));
}

uint64_t csw(const struct rusage *r)
{
    return (uint64_t)r->ru_nvcsw + (uint64_t)r->ru_nivcsw;
}

void actors_series_init(struct bench_series *s, bool quick, int samples)
{
    bench_series_init(s, &(struct bench_series_config){.unit = BENCH_PER_SECOND,
                                                       .samples = samples,
                                                       .n = quick ? QUICK_RT : 1000,
                                                       .quick = quick,
                                                       .calibrate_s = CALIBRATE_S,
                                                       .target_s = TARGET_S,
                                                       .min_n = 1000});
}

int main(int argc, char **argv)
{
    bool quick = bench_quick_arg(argc, argv);
    bench_name_set("bench_actors");
    /* Before anything else in weft, so that every allocation is counted. */
    idle_allocator_install();

    int samples = quick ? QUICK_SAMPLES : SAMPLES;
    int n = quick ? QUICK_N : ACTORS_N;
    /* Idle actors first, while the heap is fresh; nng last, since it
     * starts threads that would stay for the rest of the run. */
    struct idle_measure idle;
    measure_idle(n, samples, &idle);

    struct ask_measure ask = {0};
    measure_ask(quick, samples, &ask);
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

    bench_json_series("spawn_per_s", 0, &idle.spawn);
    bench_json_num("bytes_per_idle_actor", 1, idle.rss_per);
    bench_json_num("bytes_per_idle_actor_heap", 1, idle.heap_per);
    bench_json_num("bytes_one_idle_actor", 0, (double)idle.one);
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
