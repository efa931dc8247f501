/* bench_actors' idle actors: anonymous actors (state_size 0, one handler)
 * that are never sent anything.
 *
 * Memory: RSS growth (/proc/self/statm) over N of them, divided by N,
 * measured first while the heap is fresh (as peer_caf.cpp does), and the
 * growth of live heap bytes seen by a counting allocator; also that growth
 * for one actor alone.
 *
 * Spawn: actors spawned per second with wf_spawn on a node that is not
 * running yet; only the spawn loop is timed; they are stopped with wf_stop
 * afterwards (untimed). Fresh node per sample. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <weft/weft.h>

#include "actors.h"

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

void idle_allocator_install(void)
{
    check_wf(wf_replace_allocator(count_malloc, count_realloc, count_free), "wf_replace_allocator");
}

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

/* The idle actor: no state, one handler, never sent anything. */
static wf_result idle_ping(wf_ctx *ctx, wf_msg *m)
{
    return wf_result_none();
}

static const wf_handler idle_handlers[] = {{PING, "ping", idle_ping, 0}};
static const wf_behaviour idle = {.name = "idle", .handlers = idle_handlers, .nhandlers = 1};

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

static void measure_memory(int n, wf_pid *pids, struct idle_measure *out)
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

void measure_idle(int n, int samples, struct idle_measure *out)
{
    wf_pid *pids = bench_xmalloc((size_t)n * sizeof *pids);
    measure_memory(n, pids, out);
    if (live_bytes != 0)
        bench_die("%lld heap bytes still live after the memory measurement", (long long)live_bytes);
    counting = false;
    /* Not calibrated: every sample spawns the n actors measured above. */
    struct spawn_measure m = {.pids = pids};
    bench_series_init(&out->spawn, &(struct bench_series_config){.unit = BENCH_PER_SECOND,
                                                                 .samples = samples,
                                                                 .n = (uint64_t)n,
                                                                 .quick = true});
    bench_series_run(&out->spawn, spawn_once, &m);
    free(pids);
}
