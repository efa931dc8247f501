/* The fetcher against a real upstream process: each way a fetch can end. */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <poll.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <weft/fetcher.h>

#include "http.h"
#include "proc.h"
#include "testutil.h"

TestSuite(fetcher, .init = tu_capture_log, .timeout = 60);

static tu_proc up;
static char url[80];
static wf_node *node;
static wf_pid fpid;
static wf_fetcher_config cfg;

static int start_upstream(const char *const *extra)
{
    const char *argv[16] = {POETRY_SERVER, "--port", "0"};
    int n = 3;
    for (; extra && *extra; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    tu_proc_start(&up, (char *const *)argv);
    const char *l = tu_proc_expect(&up, "listening on 127.0.0.1:", 20000);
    cr_assert_not_null(l, "%s", up.log);
    return atoi(strrchr(l, ':') + 1);
}

static void start(void)
{
    node = wf_node_new(&(wf_node_config){.name = "f"});
    cr_assert_eq(wf_fetcher_spawn(node, "fetcher", &cfg, &fpid), 0);
    wf_node_start(node);
}

static void stop(void)
{
    wf_node_shutdown(node);
    wf_node_wait(node);
    wf_node_free(node);
    tu_proc_kill(&up);
}

static wf_result fetch(const char *name)
{
    return wf_node_call(node, fpid, wf_msg_new(WF_FETCH_GET, name, strlen(name)), 20000);
}

static void poetry(const char *const *extra)
{
    snprintf(url, sizeof url, "poetry://127.0.0.1:%d", start_upstream(extra));
    cfg = (wf_fetcher_config){.upstream = url, .send_name = 1};
}

Test(fetcher, a_poem_over_the_poetry_protocol, .fini = stop)
{
    poetry(NULL);
    start();
    wf_result r = fetch("the_tyger");
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    cr_assert(memmem(wf_msg_body(r.u.ptr), wf_msg_len(r.u.ptr), "Tyger", 5) != NULL);
    wf_result_free(r);
    r = fetch("no_such_poem");
    cr_assert_eq(wf_failure_code(r.u.failure), WF_ENOTFOUND, "the upstream's answer: %s",
                 tu_text(r));
    cr_assert(strstr(tu_text(r), "empty poem"), "%s", tu_text(r));
    wf_result_free(r);
    r = fetch("../../etc/passwd");
    cr_assert_eq(wf_failure_code(r.u.failure), WF_EINVAL, "names are checked before any I/O");
    wf_result_free(r);
}

Test(fetcher, a_poem_over_http_and_a_404, .fini = stop)
{
    const char *http[] = {"--http", NULL};
    snprintf(url, sizeof url, "http://127.0.0.1:%d/poems/", start_upstream(http));
    cfg = (wf_fetcher_config){.upstream = url};
    start();
    wf_result r = fetch("sonnet_18");
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    cr_assert(memmem(wf_msg_body(r.u.ptr), wf_msg_len(r.u.ptr), "summer", 6) != NULL);
    wf_result_free(r);
    r = fetch("missing");
    cr_assert_eq(wf_failure_code(r.u.failure), WF_ENOTFOUND, "%s", tu_text(r));
    cr_assert(strstr(tu_text(r), "HTTP 404"), "%s", tu_text(r));
    wf_result_free(r);
}

Test(fetcher, refused_and_reset_say_so, .fini = stop)
{
    const char *reset[] = {"--fail-every", "1", NULL};
    poetry(reset);
    start();
    wf_result r = fetch("ozymandias");
    cr_assert_eq(wf_failure_code(r.u.failure), WF_EUPSTREAM);
    cr_assert(strstr(tu_text(r), "connection reset"), "%s", tu_text(r));
    wf_result_free(r);
    tu_proc_kill(&up);
    r = fetch("ozymandias");
    cr_assert(strstr(tu_text(r), "connection refused"), "%s", tu_text(r));
    wf_result_free(r);
}

/* A poem whose last bytes arrive with a reset (SO_LINGER 0 right after
 * them) is cut, however it is reported: libuv may call it end-of-stream. */
Test(fetcher, a_poem_cut_by_a_reset_is_never_a_poem, .fini = stop)
{
    const char *cut[] = {"--never-read", "--reset-after", "300", NULL};
    poetry(cut);
    cfg.send_name = 0;
    start();
    for (int i = 0; i < 300; i++) {
        wf_result r = fetch("ozymandias");
        cr_assert(wf_result_is_failure(r), "fetch %d: a cut poem of %zu bytes taken as whole", i,
                  wf_result_is_msg(r) ? wf_msg_len(r.u.ptr) : 0);
        cr_assert_eq(wf_failure_code(r.u.failure), WF_EUPSTREAM, "%s", tu_text(r));
        cr_assert(strstr(tu_text(r), "reset"), "%s", tu_text(r));
        wf_result_free(r);
    }
}

/* The tutorial's servers never read: a fetcher that names its poem gets a
 * reset now and then (the server closes with the name unread); one that
 * does not, as the protocol is, gets every poem, fast or slow. */
Test(fetcher, a_server_that_never_reads_serves_every_fetch, .fini = stop)
{
    const char *never[] = {"--never-read", "--slow", "--chunk", "200", "--delay-ms", "1", NULL};
    poetry(never);
    cfg.send_name = 0;
    start();
    for (int i = 0; i < 50; i++) {
        wf_result r = fetch("any_name");
        cr_assert(wf_result_is_msg(r), "fetch %d: %s", i, tu_text(r));
        cr_assert(memmem(wf_msg_body(r.u.ptr), wf_msg_len(r.u.ptr), "daffodils", 9) != NULL);
        wf_result_free(r);
    }
}

Test(fetcher, a_full_upstream_is_a_failure_not_a_missing_poem, .fini = stop)
{
    const char *full[] = {"--max-conns", "1", "--slow", "--delay-ms", "1000", NULL};
    poetry(full);
    /* One connection fills the server; its first chunk says it was let in. */
    int fd = tu_http_connect(atoi(strrchr(url, ':') + 1));
    char first[4];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 5000), 1, "the first connection was not served");
    cr_assert_gt(read(fd, first, sizeof first), 0);
    /* A client that sends no name (the tutorial's): the server's close
     * meets no unread input, so only a deliberate reset is one. */
    cfg.send_name = 0;
    start();
    wf_result r = fetch("ozymandias");
    cr_assert_eq(wf_failure_code(r.u.failure), WF_EUPSTREAM,
                 "a full server must not look like one without the poem: %s", tu_text(r));
    cr_assert(strstr(tu_text(r), "connection reset"), "%s", tu_text(r));
    wf_result_free(r);
    close(fd);
}

Test(fetcher, a_silent_upstream_times_out_and_a_big_poem_is_refused, .fini = stop)
{
    const char *slow[] = {"--slow", "--delay-ms", "500", "--chunk", "10", NULL};
    poetry(slow);
    cfg.idle_timeout_ms = 200;
    start();
    wf_result r = fetch("ozymandias");
    cr_assert_eq(wf_failure_code(r.u.failure), WF_ETIMEDOUT);
    cr_assert(strstr(tu_text(r), "upstream silent for 200 ms"), "%s", tu_text(r));
    wf_result_free(r);
    stop();
    poetry(NULL);
    cfg.max_body = 1000;
    start();
    r = fetch("the_raven");
    cr_assert(strstr(tu_text(r), "larger than 1000 bytes"), "%s", tu_text(r));
    wf_result_free(r);
}

struct many {
    int left;
    wf_deferred *done;
};

static wf_result one_done(wf_result r, void *arg)
{
    struct many *m = arg;
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    if (--m->left == 0)
        wf_node_shutdown(node);
    return r;
}

Test(fetcher, at_most_max_connections_at_once, .fini = stop)
{
    const char *slow[] = {"--slow", "--delay-ms", "100", "--chunk", "400", NULL};
    poetry(slow);
    cfg.max_connections = 1;
    node = wf_node_new(&(wf_node_config){.name = "f"});
    cr_assert_eq(wf_fetcher_spawn(node, "fetcher", &cfg, &fpid), 0);
    struct many m = {3, NULL};
    wf_deferred *ds[3];
    for (int i = 0; i < 3; i++) {
        ds[i] = wf_ask(node, fpid, wf_msg_new(WF_FETCH_GET, "ozymandias", 10), 20000);
        wf_deferred_add_callback(ds[i], one_done, &m);
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    wf_node_run(node);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    /* ozymandias is 673 bytes: two 400-byte chunks, so at least 100 ms each;
     * one at a time makes at least 300 ms. */
    cr_assert_geq(s, 0.3, "the fetches overlapped (%.3f s)", s);
    for (int i = 0; i < 3; i++)
        wf_deferred_release(ds[i]);
    wf_node_free(node);
    node = wf_node_new(NULL); /* for stop() */
}
