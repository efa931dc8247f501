/* The transformer actor against a real transform-server: answers, the
 * cache, single flight, each way a transform can fail, and requests that
 * give up (an upstream request nobody waits for any more is closed). */
#define _GNU_SOURCE /* memmem */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <criterion/criterion.h>

#include <weft/transformer.h>

#include "proc.h"
#include "testutil.h"

TestSuite(transformer, .init = tu_capture_log, .timeout = 60);

static tu_proc up;
static char addr[64];
static wf_node *node;
static wf_pid xpid;
static wf_transformer_config cfg;

static void upstream(const char *server, const char *const *extra)
{
    const char *argv[16] = {server, "--port", "0"};
    int n = 3;
    for (; extra && *extra; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    signal(SIGPIPE, SIG_IGN);
    tu_proc_start(&up, (char *const *)argv);
    const char *l = tu_proc_expect(&up, "listening on 127.0.0.1:", 20000);
    cr_assert_not_null(l, "%s", up.log);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", atoi(strrchr(l, ':') + 1));
    cfg = (wf_transformer_config){.upstream = addr};
}

static void start(void)
{
    node = wf_node_new(&(wf_node_config){.name = "x"});
    cr_assert_eq(wf_transformer_spawn(node, "transformer", &cfg, &xpid), 0);
    wf_node_start(node);
}

static void stop(void)
{
    if (node != NULL) {
        wf_node_shutdown(node);
        wf_node_wait(node);
        wf_node_free(node);
        node = NULL;
    }
    tu_proc_kill(&up);
}

static wf_result transform(const char *name, const char *poem, uint32_t wait_ms)
{
    return wf_node_call(node, xpid, wf_transform_msg_new(name, poem, strlen(poem), wait_ms), 20000);
}

static wf_transformer_stats stats(void)
{
    wf_transformer_stats st;
    wf_result r = wf_node_call(node, xpid, wf_msg_new(WF_TRANSFORM_STATS, NULL, 0), 5000);
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    cr_assert_eq(wf_transformer_stats_parse(r.u.ptr, &st), 0);
    wf_result_free(r);
    return st;
}

/* How many requests the server logged; it is given time to log them. */
static int upstream_requests(void)
{
    tu_proc_expect(&up, "(never printed)", 300);
    int n = 0;
    for (const char *p = up.log; (p = strstr(p, ": request ")) != NULL; p++)
        n++;
    return n;
}

static void expect_text(wf_result r, const char *want)
{
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    cr_assert_eq(wf_msg_len(r.u.ptr), strlen(want), "%.*s", (int)wf_msg_len(r.u.ptr),
                 (char *)wf_msg_body(r.u.ptr));
    cr_assert(memcmp(wf_msg_body(r.u.ptr), want, strlen(want)) == 0);
    wf_result_free(r);
}

static void expect_failure(wf_result r, int code, const char *text)
{
    cr_assert(wf_result_is_failure(r), "a failure was expected, got %s", tu_text(r));
    cr_assert_eq(wf_failure_code(r.u.failure), code, "%s", tu_text(r));
    cr_assert(strstr(tu_text(r), text) != NULL, "\"%s\" not in: %s", text, tu_text(r));
    wf_result_free(r);
}

Test(transformer, a_poem_transformed_then_served_from_the_cache, .fini = stop)
{
    upstream(TRANSFORM_SERVER, NULL);
    start();
    expect_text(transform("cummingsify", "HERE IS MY POEM", 0), "here is my poem");
    expect_text(transform("cummingsify", "HERE IS MY POEM", 0), "here is my poem");
    expect_text(transform("upper", "HERE IS MY POEM", 0), "HERE IS MY POEM");
    expect_text(transform("cummingsify", "", 0), "");
    wf_transformer_stats st = stats();
    cr_assert_eq(st.hits, 1);
    cr_assert_eq(st.upstream, 3, "the same poem, another transform, is another key");
    cr_assert_eq(upstream_requests(), 3, "%s", up.log);
    /* A name no transform can have is refused before any I/O. */
    wf_msg *m = wf_transform_msg_new("cummingsify", "x", 1, 0);
    memcpy(wf_msg_body(m), "bad.name", 8);
    expect_failure(wf_node_call(node, xpid, m, 5000), WF_EINVAL, "not a transform name");
    cr_assert_null(wf_transform_msg_new("no-dash", "x", 1, 0));
}

/* Requests asked before the node runs, so that they overlap; when the
 * last has its outcome, the actor's stats are asked for, then the node
 * stops. */
struct many {
    int left;
    int ok; /* answers "A POEM!" -> "a poem!" */
    wf_transformer_stats st;
};

static wf_result got_stats(wf_result r, void *arg)
{
    struct many *m = arg;
    if (wf_result_is_msg(r))
        wf_transformer_stats_parse(r.u.ptr, &m->st);
    wf_node_shutdown(node);
    return r;
}

static wf_result one_done(wf_result r, void *arg)
{
    struct many *m = arg;
    if (wf_result_is_msg(r) && wf_msg_len(r.u.ptr) == 7 &&
        memcmp(wf_msg_body(r.u.ptr), "a poem!", 7) == 0)
        m->ok++;
    if (--m->left == 0) {
        wf_deferred *d = wf_ask(node, xpid, wf_msg_new(WF_TRANSFORM_STATS, NULL, 0), 5000);
        wf_deferred_add_both(d, got_stats, m);
        wf_deferred_release(d);
    }
    return r;
}

/* Asks n requests for "A POEM!", waiting wait[i] ms each, and runs the
 * node until all are done; ds[i] keep their outcomes. */
static void run_many(struct many *m, wf_deferred **ds, int n, const uint32_t *wait)
{
    node = wf_node_new(&(wf_node_config){.name = "x"});
    cr_assert_eq(wf_transformer_spawn(node, "transformer", &cfg, &xpid), 0);
    *m = (struct many){.left = n};
    for (int i = 0; i < n; i++) {
        ds[i] =
            wf_ask(node, xpid, wf_transform_msg_new("cummingsify", "A POEM!", 7, wait[i]), 20000);
        wf_deferred_add_both(ds[i], one_done, m);
    }
    wf_node_run(node);
}

static int code_of(wf_deferred *d)
{
    cr_assert(wf_deferred_has_result(d));
    const wf_result *r = wf_deferred_peek(d);
    return wf_result_is_failure(*r) ? wf_failure_code(r->u.failure) : 0;
}

static void free_many(wf_deferred **ds, int n)
{
    for (int i = 0; i < n; i++)
        wf_deferred_release(ds[i]);
    wf_node_free(node);
    node = NULL;
}

Test(transformer, concurrent_identical_requests_make_one_upstream_request, .fini = stop)
{
    const char *slow[] = {"--slow", "--delay-ms", "200", NULL};
    upstream(TRANSFORM_SERVER, slow);
    enum { N = 20 };
    struct many m;
    wf_deferred *ds[N];
    uint32_t wait[N] = {0};
    run_many(&m, ds, N, wait);
    free_many(ds, N);
    cr_assert_eq(m.ok, N, "every waiter gets the one answer");
    cr_assert_eq(m.st.upstream, 1);
    cr_assert_eq(m.st.coalesced, N - 1);
    cr_assert_eq(upstream_requests(), 1, "the server saw more than one request: %s", up.log);
}

Test(transformer, failures_say_what_went_wrong, .fini = stop)
{
    const char *fail[] = {"--fail-every", "2", NULL};
    upstream(TRANSFORM_SERVER, fail);
    start();
    expect_text(transform("upper", "one", 0), "ONE");
    expect_failure(transform("upper", "two", 0), WF_EUPSTREAM,
                   "closed without an answer (transform failed or unknown)");
    /* Failures are not kept: the same request asks again, and succeeds. */
    expect_text(transform("upper", "two", 0), "TWO");
    expect_failure(transform("nosuch", "x", 0), WF_EUPSTREAM, "transform failed or unknown");
    tu_proc_kill(&up);
    expect_failure(transform("upper", "three", 0), WF_EUPSTREAM, "connection refused");
    wf_transformer_stats st = stats();
    cr_assert_eq(st.failures, 3);
}

Test(transformer, a_server_that_is_not_a_transform_service_is_malformed, .fini = stop)
{
    /* The poetry server sends a poem, not a netstring. */
    const char *never[] = {"--never-read", NULL};
    upstream(POETRY_SERVER, never);
    start();
    expect_failure(transform("upper", "x", 0), WF_EUPSTREAM, "malformed netstring");
}

Test(transformer, too_large_and_slow_answers_fail, .fini = stop)
{
    const char *slow[] = {"--slow", "--delay-ms", "1000", NULL};
    upstream(TRANSFORM_SERVER, slow);
    cfg.idle_timeout_ms = 200;
    start();
    expect_failure(transform("upper", "x", 0), WF_ETIMEDOUT, "upstream silent for 200 ms");
    stop();
    upstream(TRANSFORM_SERVER, NULL);
    cfg.max_body = 10;
    start();
    expect_failure(transform("upper", "0123456789abc", 0), WF_EINVAL, "over the limit of 10");
    expect_text(transform("upper", "0123456789", 0), "0123456789");
}

Test(transformer, the_cache_is_bounded_and_expires, .fini = stop)
{
    upstream(TRANSFORM_SERVER, NULL);
    cfg.max_entries = 2;
    cfg.ttl_ms = 300;
    start();
    expect_text(transform("upper", "a", 0), "A");
    expect_text(transform("upper", "b", 0), "B");
    expect_text(transform("upper", "a", 0), "A"); /* a hit: b is now the least recent */
    expect_text(transform("upper", "c", 0), "C"); /* evicts b */
    expect_text(transform("upper", "a", 0), "A");
    wf_transformer_stats st = stats();
    cr_assert_eq(st.hits, 2, "a stays, b goes");
    cr_assert_eq(st.evicted, 1);
    cr_assert_eq(st.entries, 2);
    expect_text(transform("upper", "b", 0), "B");
    cr_assert_eq(stats().upstream, 4);
    tu_sleep_ms(400);
    expect_text(transform("upper", "b", 0), "B");
    st = stats();
    cr_assert_eq(st.expired, 1);
    cr_assert_eq(st.upstream, 5);
}

Test(transformer, when_every_waiter_gives_up_the_upstream_connection_closes, .fini = stop)
{
    const char *slow[] = {"--slow", "--delay-ms", "3000", NULL};
    upstream(TRANSFORM_SERVER, slow);
    struct many m;
    wf_deferred *ds[2];
    uint32_t wait[2] = {200, 300};
    run_many(&m, ds, 2, wait);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(code_of(ds[i]), WF_ETIMEDOUT);
    free_many(ds, 2);
    cr_assert_eq(m.st.cancelled, 2);
    cr_assert_eq(m.st.abandoned, 1);
    /* Long before the server's 3 s: it sees its client go. */
    cr_assert_not_null(tu_proc_expect(&up, "client closed its side with an answer pending", 1500),
                       "%s", up.log);
}

Test(transformer, a_waiter_that_gives_up_leaves_the_others_their_answer, .fini = stop)
{
    const char *slow[] = {"--slow", "--delay-ms", "500", NULL};
    upstream(TRANSFORM_SERVER, slow);
    struct many m;
    wf_deferred *ds[3];
    uint32_t wait[3] = {100, 0, 10000};
    run_many(&m, ds, 3, wait);
    cr_assert_eq(code_of(ds[0]), WF_ETIMEDOUT);
    free_many(ds, 3);
    cr_assert_eq(m.ok, 2);
    cr_assert_eq(m.st.upstream, 1);
    cr_assert_eq(m.st.cancelled, 1);
    cr_assert_eq(m.st.abandoned, 0, "others still waited");
    cr_assert_null(tu_proc_expect(&up, "with an answer pending", 300), "%s", up.log);
}

Test(transformer, a_requests_deadline_ends_its_wait_and_closes_the_upstream_connection,
     .fini = stop)
{
    const char *slow[] = {"--slow", "--delay-ms", "3000", NULL};
    upstream(TRANSFORM_SERVER, slow);
    start();
    /* No wait_ms of its own: the 300 ms the asker gives the request rule. */
    uint64_t t0 = uv_hrtime();
    wf_result r =
        wf_node_call(node, xpid, wf_transform_msg_new("cummingsify", "A POEM", 6, 0), 300);
    double ms = (double)(uv_hrtime() - t0) / 1e6;
    expect_failure(r, WF_ETIMEDOUT, "");
    cr_assert_lt(ms, 1500.0, "%.0f ms", ms);
    wf_transformer_stats st = stats();
    cr_assert_eq(st.cancelled, 1);
    cr_assert_eq(st.abandoned, 1);
    cr_assert_not_null(tu_proc_expect(&up, "client closed its side with an answer pending", 1500),
                       "%s", up.log);
}
