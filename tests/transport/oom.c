/* Out of memory in the transport: fail the k-th allocation of a transport
 * workload (a node connects to another, passes the handshake, asks across
 * and goes) for every k, and check nothing crashes, nothing leaks (under
 * valgrind: transport_oom_valgrind) and the far node stays usable.
 *
 * Only weft's allocations fail (wf_replace_allocator): nng's own are not
 * routed through weft's allocator, nor are libuv's. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <weft/alloc.h>
#include <weft/transport.h>

#include "testutil.h"

TestSuite(transport_oom, .timeout = 600);

/* The nodes run on their own threads, so the count is atomic. fail_at >= 0
 * fails that many allocations from now exactly once. */
static atomic_long fail_at = -1;
static atomic_size_t allocs;

static bool should_fail(void)
{
    long v = atomic_load(&fail_at);
    while (v >= 0) {
        if (atomic_compare_exchange_weak(&fail_at, &v, v - 1))
            return v == 0;
    }
    return false;
}

static void *oom_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    atomic_fetch_add(&allocs, 1);
    return malloc(n);
}

static void *oom_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    atomic_fetch_add(&allocs, 1);
    return realloc(p, n);
}

enum { TEXT = 1, GO };

static wf_result echo(wf_ctx *ctx, wf_msg *m)
{
    return wf_result_msg(wf_msg_new(TEXT, wf_msg_body(m), wf_msg_len(m)));
}

/* On a: asks echo@b, which a knows by name before it is connected. */
static wf_result go(wf_ctx *ctx, wf_msg *m)
{
    wf_pid to = wf_resolve(wf_ctx_node(ctx), "echo@b");
    if (wf_pid_is_none(to))
        return WF_FAIL(WF_ENOSUCHACTOR, "echo@b not resolved");
    return wf_result_deferred(wf_ctx_ask(ctx, to, wf_msg_new(TEXT, "hi", 2), 2000));
}

static const wf_handler echo_h[] = {{TEXT, "echo", echo, 0}};
static const wf_behaviour echo_b = {.name = "echo", .handlers = echo_h, .nhandlers = 1};
static const wf_handler go_h[] = {{GO, "go", go, 0}};
static const wf_behaviour go_b = {.name = "driver", .handlers = go_h, .nhandlers = 1};

static char dir[256], url_b[300];
static int hangs; /* asks that waited in vain for a connection or a reply */
static wf_node *nb;

static void start_b(void)
{
    tu_capture_log();
    cr_assert_eq(wf_replace_allocator(oom_malloc, oom_realloc, free), 0);
    snprintf(dir, sizeof dir, "/tmp/weft-oom.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(url_b, sizeof url_b, "ipc://%s/b", dir);
    wf_transport *tb;
    nb = wf_node_new(&(wf_node_config){.name = "b"});
    cr_assert_not_null(nb);
    cr_assert_eq(wf_transport_new(nb, &(wf_transport_config){.secret = "s"}, &tb), 0);
    cr_assert_eq(wf_transport_listen(tb, url_b), 0);
    cr_assert_eq(wf_spawn(nb, "echo", &echo_b, NULL, NULL), 0);
    cr_assert_eq(wf_node_start(nb), 0);
}

static void stop_b(void)
{
    wf_node_shutdown(nb);
    wf_node_wait(nb);
    wf_node_free(nb);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* One run: node a comes, connects to b (which it knows by name), asks
 * echo@b across and goes. Returns true if the ask came back. Any
 * allocation may fail on the way: the run must then end cleanly. */
static bool workload(void)
{
    bool ok = false;
    wf_node *na = wf_node_new(&(wf_node_config){.name = "a"});
    if (na == NULL)
        return false;
    wf_transport *ta;
    wf_transport_config cfg = {
        .secret = "s", .reconnect_min_ms = 5, .reconnect_max_ms = 20, .connect_wait_ms = 1000};
    wf_pid drv;
    if (wf_transport_new(na, &cfg, &ta) != 0 || wf_transport_peer(ta, "b", url_b) != 0 ||
        wf_spawn(na, "driver", &go_b, NULL, &drv) != 0 || wf_node_start(na) != 0)
        goto out;
    wf_msg *m = wf_msg_new(GO, NULL, 0);
    if (m == NULL) {
        wf_node_shutdown(na);
        wf_node_wait(na);
        goto out;
    }
    wf_result r = wf_node_call(na, drv, m, 3000);
    /* Whatever failed, the ask ends at once: a connection that lost an
     * allocation must not hang until the timeout. */
    if (r.kind == WF_RESULT_FAILURE) {
        int code = wf_failure_code(r.u.failure);
        if (code == WF_ETIMEDOUT ||
            (code == WF_ENODEDOWN && strstr(wf_failure_message(r.u.failure), "not connected"))) {
            hangs++;
            fprintf(stderr, "HANG at k=%ld: %s\n", (long)atomic_load(&fail_at),
                    wf_failure_message(r.u.failure));
        }
    }
    ok = wf_result_is_msg(r) && wf_msg_len(r.u.ptr) == 2 &&
         memcmp(wf_msg_body(r.u.ptr), "hi", 2) == 0;
    wf_result_free(r);
    wf_node_shutdown(na);
    wf_node_wait(na);
out:
    wf_node_free(na);
    return ok;
}

Test(transport_oom, every_allocation_failure_in_connect_handshake_and_frames_is_survived,
     .init = start_b, .fini = stop_b)
{
    atomic_store(&allocs, 0);
    cr_assert(workload(), "the workload works with memory: %s", tu_log_text());
    size_t total = atomic_load(&allocs);
    cr_assert_gt(total, 20);
    int failed = 0;
    for (long k = 0; k < (long)total; k++) {
        atomic_store(&fail_at, k);
        failed += !workload(); /* may fail; must not crash, hang or leak */
        atomic_store(&fail_at, -1);
    }
    cr_log_info("%zu allocations per run; %d runs of %zu failed", total, failed, total);
    cr_expect_eq(hangs, 0, "%d asks waited for their timeout or a peer that never came", hangs);
    /* b went through every failure on its side too: it still answers. */
    cr_assert(workload(), "a fresh ask after the sweep: %s", tu_log_text());
}
