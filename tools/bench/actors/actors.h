/* What bench_actors' measurements share (ask.c, idle.c, nng_inproc.c;
 * bench_actors.c runs them and prints the results). */
#ifndef WF_BENCH_ACTORS_H
#define WF_BENCH_ACTORS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>

#include "harness.h"

#define MSG_BYTES 8 /* payload of every ask, reply and nng message */

enum { PING = 1, START };

/* Dies with what and weft's error name unless rv is 0. */
void check_wf(int rv, const char *what);
/* Voluntary plus involuntary context switches. */
uint64_t csw(const struct rusage *r);
/* A rate's series: calibrated to ~150 ms a sample, or a fixed small n in
 * quick runs. */
void actors_series_init(struct bench_series *s, bool quick, int samples);

/* ask.c: sequential ask/reply round trips between two actors. */
struct ask_measure {
    struct bench_series rate;
    uint64_t asks, csw, vcsw, ivcsw; /* of the samples, not the calibration */
    int max_threads;
};
void measure_ask(bool quick, int samples, struct ask_measure *out);

/* idle.c: idle actors, their memory and their spawn rate. */
struct idle_measure {
    double rss_per, heap_per; /* bytes per idle actor */
    int64_t one;              /* heap bytes of one actor alone */
    struct bench_series spawn;
};
/* Installs the counting allocator: before any other weft call. */
void idle_allocator_install(void);
/* Memory first (while the heap is fresh), then spawn rates, n actors. */
void measure_idle(int n, int samples, struct idle_measure *out);

/* nng_inproc.c: the same round trip through nng inproc pair1 sockets. */
struct nng_measure {
    struct bench_series rate;
    struct ipair *p;
    uint64_t rts, csw; /* of the samples */
    double csw_per_rt;
    bool one_thread;
};
void measure_nng(bool quick, int samples, struct nng_measure *out);

#endif
