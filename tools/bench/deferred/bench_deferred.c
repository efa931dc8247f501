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
 * Each operation is calibrated so that one sample takes about TARGET_NS;
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
#include <string.h>
#include <time.h>

#include <weft/weft.h>

#include "../bench.h"

#define SAMPLES        7
#define TARGET_NS      200000000.0 /* per sample: 100-300 ms, long enough to swamp timer noise */
#define CALIBRATE_NS   40000000    /* a calibration run shorter than this is too noisy to scale */
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

static void die(const char *what)
{
    fprintf(stderr, "bench_deferred: %s\n", what);
    exit(1);
}

/* Checks stay in the timed loops: real callers check too, and a failed call
 * would otherwise make a fast, meaningless number. */
static inline void check(bool ok, const char *what)
{
    if (__builtin_expect(!ok, 0))
        die(what);
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
    /* results */
    uint64_t iters;
    double samples[SAMPLES]; /* ns/op, in the order taken */
    double median, min;
    double allocs; /* malloc + realloc calls per op */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Runs n ops and returns the elapsed ns. */
static uint64_t run(const struct bench *b, uint64_t n)
{
    int64_t sink = 0;
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++)
        b->op(&sink);
    uint64_t t = now_ns() - t0;
    if (sink != (int64_t)n * b->sink_per_op) {
        fprintf(stderr, "bench_deferred: %s: callbacks produced %lld, expected %lld\n", b->name,
                (long long)sink, (long long)n * b->sink_per_op);
        exit(1);
    }
    if (live != 0) {
        fprintf(stderr, "bench_deferred: %s: %lld allocations not freed\n", b->name,
                (long long)live);
        exit(1);
    }
    return t;
}

/* Doubles n until a run is long enough to time, then scales it to
 * TARGET_NS. The faster of two runs at that n is the estimate, so that one
 * run slowed by a neighbour does not make every sample short. The
 * calibration runs double as the warm-up. */
static uint64_t calibrate(const struct bench *b)
{
    uint64_t n = 256, t;
    while ((t = run(b, n)) < CALIBRATE_NS)
        n *= 2;
    uint64_t t2 = run(b, n);
    if (t2 < t)
        t = t2;
    return (uint64_t)(n * (TARGET_NS / (double)t)) + 1;
}

static void measure(struct bench *b, bool quick)
{
    uint64_t ops = quick ? QUICK_ALLOC_OP : ALLOC_OPS;
    n_malloc = n_realloc = 0;
    run(b, ops);
    b->allocs = (double)(n_malloc + n_realloc) / (double)ops;

    b->iters = quick ? QUICK_ITERS : calibrate(b);
    for (int i = 0; i < SAMPLES; i++)
        b->samples[i] = (double)run(b, b->iters) / (double)b->iters;
    double sorted[SAMPLES];
    memcpy(sorted, b->samples, sizeof sorted);
    qsort(sorted, SAMPLES, sizeof sorted[0], cmp_double);
    b->median = sorted[SAMPLES / 2];
    b->min = sorted[0];
}

int main(int argc, char **argv)
{
    bool quick = bench_quick_arg(argc, argv);

    /* Before anything else in weft, so that every allocation is counted. */
    if (wf_replace_allocator(count_malloc, count_realloc, count_free) != 0)
        die("wf_replace_allocator failed");

    struct bench benches[] = {
        {.name = "create_3cb_fire", .op = op_create_3cb_fire, .sink_per_op = 3},
        {.name = "chained", .op = op_chained, .sink_per_op = 42},
        {.name = "maybe", .op = op_maybe, .sink_per_op = 42},
    };
    size_t nb = sizeof benches / sizeof benches[0];
    for (size_t i = 0; i < nb; i++)
        measure(&benches[i], quick);

    printf("{\n  \"compiler\": ");
    print_json_string(COMPILER);
    printf(",\n  \"optimized\": %s,\n  \"quick\": %s,\n  \"samples\": %d", OPTIMIZED,
           quick ? "true" : "false", SAMPLES);
    for (size_t i = 0; i < nb; i++) {
        const struct bench *b = &benches[i];
        printf(",\n  \"%s_ns\": %.3f", b->name, b->median);
        printf(",\n  \"%s_min_ns\": %.3f", b->name, b->min);
        printf(",\n  \"%s_samples_ns\": [", b->name);
        for (int j = 0; j < SAMPLES; j++)
            printf("%s%.3f", j ? ", " : "", b->samples[j]);
        printf("]");
        printf(",\n  \"%s_iterations\": %llu", b->name, (unsigned long long)b->iters);
        printf(",\n  \"%s_allocs\": %g", b->name, b->allocs);
    }
    printf("\n}\n");
    return fflush(stdout) == 0 ? 0 : 1;
}
