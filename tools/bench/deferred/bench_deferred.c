/* bench_deferred: what weft's Deferred costs, measured the way
 * twisted_deferred.py measures Twisted's, so run.py can put them side by side.
 *
 * Three operations, each timed as a tight loop of complete life cycles
 * (create, use, free), since that is what a server pays per request:
 *   create_3cb_fire  new + 3 callbacks + fire + release;
 *   chained          an outer deferred whose callback returns an unfired
 *                    inner one, the outer fired, then the inner fired, and the
 *                    outer's next callback sees the inner's value; one op is
 *                    one outer+inner pair, both released;
 *   maybe            wf_maybe on a plain function returning an int, one
 *                    callback added, released.
 *
 * Each operation is calibrated so that one sample takes about TARGET_S;
 * SAMPLES samples are taken and the median and minimum ns/op reported. Heap
 * allocations per op are counted in a separate, untimed pass through a
 * counting allocator, installed before any other weft call as alloc.h
 * requires.
 *
 * Output: one JSON object on stdout. Errors go to stderr with exit status 1.
 * --quick runs few iterations: a smoke test for the pieces, not a measurement.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <weft/weft.h>

#include "harness.h"

#define SAMPLES        7
#define TARGET_S       0.2  /* per sample: long enough to swamp timer noise */
#define CALIBRATE_S    0.04 /* a calibration run shorter than this is too noisy to scale */
#define QUICK_ITERS    1000
#define ALLOC_OPS      10000
#define QUICK_ALLOC_OP 100

/* The counting allocator. Single-threaded bench, so plain counters do. `live`
 * catches a leak, which would make the allocation count a lie. */
static uint64_t n_malloc, n_realloc;
static int64_t live;

static void *count_malloc(size_t size)
{
    n_malloc++;
    void *p = malloc(size);
    if (p != NULL)
        live++;
    return p;
}

static void *count_realloc(void *ptr, size_t size)
{
    n_realloc++;
    void *p = realloc(ptr, size);
    if (ptr == NULL && p != NULL)
        live++;
    return p;
}

static void count_free(void *ptr)
{
    if (ptr != NULL)
        live--;
    free(ptr);
}

/* Checks stay in the timed loops: real callers check too, and a failed call
 * would otherwise make a fast, meaningless number. */
static inline void check(bool ok, const char *what)
{
    if (__builtin_expect(!ok, 0))
        bench_die("%s", what);
}

static wf_result add_one(wf_result r, void *arg)
{
    r.u.i++;
    return r;
}

/* The last callback of every operation adds its value to a sink, so that the
 * loop can prove every op ran to the end with the right value. */
static wf_result add_one_sink(wf_result r, void *arg)
{
    r.u.i++;
    *(int64_t *)arg += r.u.i;
    return r;
}

static wf_result return_inner(wf_result r, void *arg)
{
    wf_result_free(r);
    return wf_result_deferred(wf_deferred_ref(arg));
}

static wf_result forty_one(void *arg)
{
    return wf_result_int(41);
}

static void op_create_3cb_fire(int64_t *sink)
{
    wf_deferred *d = wf_deferred_new();
    check(d != NULL, "wf_deferred_new failed");
    check(wf_deferred_add_callback(d, add_one, NULL) == 0, "add_callback failed");
    check(wf_deferred_add_callback(d, add_one, NULL) == 0, "add_callback failed");
    check(wf_deferred_add_callback(d, add_one_sink, sink) == 0, "add_callback failed");
    check(wf_deferred_callback(d, wf_result_int(0)) == 0, "callback failed");
    wf_deferred_release(d);
}

static void op_chained(int64_t *sink)
{
    wf_deferred *outer = wf_deferred_new();
    wf_deferred *inner = wf_deferred_new();
    check(outer != NULL && inner != NULL, "wf_deferred_new failed");
    check(wf_deferred_add_callback(outer, return_inner, inner) == 0, "add_callback failed");
    check(wf_deferred_add_callback(outer, add_one_sink, sink) == 0, "add_callback failed");
    check(wf_deferred_callback(outer, wf_result_int(0)) == 0, "callback (outer) failed");
    check(wf_deferred_callback(inner, wf_result_int(41)) == 0, "callback (inner) failed");
    wf_deferred_release(outer);
    wf_deferred_release(inner);
}

static void op_maybe(int64_t *sink)
{
    wf_deferred *d = wf_maybe(forty_one, NULL);
    check(d != NULL, "wf_maybe failed");
    check(wf_deferred_add_callback(d, add_one_sink, sink) == 0, "add_callback failed");
    wf_deferred_release(d);
}

struct bench {
    const char *name;
    void (*op)(int64_t *sink);
    int64_t sink_per_op;
    struct bench_series ns; /* ns/op */
    double allocs;          /* malloc + realloc calls per op */
};

/* Runs n ops and returns their seconds. */
static double run(uint64_t n, void *arg)
{
    const struct bench *b = arg;
    int64_t sink = 0;
    double t0 = bench_now_s();
    for (uint64_t i = 0; i < n; i++)
        b->op(&sink);
    double t = bench_now_s() - t0;
    if (sink != (int64_t)n * b->sink_per_op)
        bench_die("%s: callbacks produced %lld, expected %lld", b->name, (long long)sink,
                  (long long)n * b->sink_per_op);
    if (live != 0)
        bench_die("%s: %lld allocations not freed", b->name, (long long)live);
    return t;
}

/* The allocations first, in an untimed pass; then the series, whose
 * calibration runs double as the warm-up. */
static void measure(struct bench *b, bool quick)
{
    uint64_t ops = quick ? QUICK_ALLOC_OP : ALLOC_OPS;
    n_malloc = n_realloc = 0;
    run(ops, b);
    b->allocs = (double)(n_malloc + n_realloc) / (double)ops;
    bench_series_init(&b->ns, &(struct bench_series_config){.unit = BENCH_NS_PER_OP,
                                                            .samples = SAMPLES,
                                                            .n = quick ? QUICK_ITERS : 256,
                                                            .quick = quick,
                                                            .calibrate_s = CALIBRATE_S,
                                                            .target_s = TARGET_S,
                                                            .min_n = 1,
                                                            .confirm = true});
    bench_series_run(&b->ns, run, b);
}

int main(int argc, char **argv)
{
    bool quick = bench_quick_arg(argc, argv);
    bench_name_set("bench_deferred");

    /* Before anything else in weft, so that every allocation is counted. */
    if (wf_replace_allocator(count_malloc, count_realloc, count_free) != 0)
        bench_die("wf_replace_allocator failed");

    struct bench benches[] = {
        {.name = "create_3cb_fire", .op = op_create_3cb_fire, .sink_per_op = 3},
        {.name = "chained", .op = op_chained, .sink_per_op = 42},
        {.name = "maybe", .op = op_maybe, .sink_per_op = 42},
    };
    size_t nb = sizeof benches / sizeof benches[0];
    for (size_t i = 0; i < nb; i++)
        measure(&benches[i], quick);

    bench_json_begin("bench_deferred", quick, SAMPLES);
    for (size_t i = 0; i < nb; i++) {
        const struct bench *b = &benches[i];
        bench_json_prefix(b->name);
        bench_json_num("_ns", 3, bench_series_median(&b->ns));
        bench_json_num("_min_ns", 3, bench_series_min(&b->ns));
        bench_json_list("_samples_ns", 3, b->ns.samples, b->ns.nsamples);
        bench_json_u64("_iterations", b->ns.n);
        bench_json_num("_allocs", -1, b->allocs);
    }
    return bench_json_end();
}
