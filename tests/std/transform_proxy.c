/* The proxy's transforms end to end: poetry-server and transform-server
 * upstream, fetcher, cache, renderer, transformer and listener in a node:
 * GET /poems/NAME?transform=X and the raw transform port, answers and
 * failures (a failed transform is never a 200). */
#define _GNU_SOURCE /* memmem */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "http.h"
#include "proc.h"
#include "proxy.h"
#include "testutil.h"

TestSuite(transform_proxy, .init = tu_capture_log, .timeout = 90);

static tu_proc poetry, xsrv;
static tu_proxy px;
static char purl[64], xaddr[64];
static wf_fetcher_config fcfg;
static wf_cache_config ccfg = {.source = "fetcher", .fetch_type = WF_FETCH_GET};
static wf_renderer_config rcfg;
static wf_transformer_config xcfg;
static wf_listener_config lcfg;
static uint64_t deadline_ms = 5000;
static unsigned max_connections;    /* 0: the listener's default */
static uint64_t request_timeout_ms; /* 0: the listener's default */

/* Starts both upstreams (transform-server with extra) and the proxy;
 * with_transformer 0 leaves the transformer out. */
static void start(const char *const *extra, int with_transformer)
{
    signal(SIGPIPE, SIG_IGN);
    tu_poetry_start(&poetry, POETRY_SERVER, NULL, purl, sizeof purl);
    const char *argv[16] = {TRANSFORM_SERVER, "--port", "0"};
    int n = 3;
    for (; extra && *extra; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    tu_proc_start(&xsrv, (char *const *)argv);
    const char *l = tu_proc_expect(&xsrv, "listening on 127.0.0.1:", 20000);
    cr_assert_not_null(l, "%s", xsrv.log);
    snprintf(xaddr, sizeof xaddr, "127.0.0.1:%d", atoi(strrchr(l, ':') + 1));
    fcfg = (wf_fetcher_config){.upstream = purl, .send_name = 1};
    xcfg = (wf_transformer_config){.upstream = xaddr};
    lcfg = (wf_listener_config){.http_addr = "127.0.0.1:0",
                                .cache = "cache",
                                .renderer = "renderer",
                                .deadline_ms = deadline_ms,
                                .max_connections = max_connections,
                                .request_timeout_ms = request_timeout_ms};
    if (with_transformer) {
        lcfg.transformer = "transformer";
        lcfg.transform_addr = "127.0.0.1:0";
    }
    tu_proxy_start_transform(&px, "tp", &fcfg, &ccfg, &rcfg, with_transformer ? &xcfg : NULL,
                             &lcfg);
}

static void stop(void)
{
    tu_proxy_stop(&px);
    tu_proc_kill(&xsrv);
    tu_proc_kill(&poetry);
}

static int get(const char *path, tu_http *r)
{
    cr_assert_eq(tu_http_get(px.http_port, path, r), 0, "no whole answer for %s", path);
    return r->status;
}

static bool has(const tu_http *r, const char *s)
{
    return memmem(r->body, r->body_len, s, strlen(s)) != NULL;
}

/* The value of one series of /metrics; -1 if it is not there. */
static double metric(const char *series)
{
    tu_http r;
    cr_assert_eq(get("/metrics", &r), 200);
    double v = -1;
    size_t n = strlen(series);
    for (const char *p = r.body; p != NULL && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            v = strtod(p + n + 1, NULL);
    tu_http_free(&r);
    return v;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

Test(transform_proxy, a_cummingsified_poem_in_the_page, .fini = stop)
{
    start(NULL, 1);
    tu_http r;
    cr_assert_eq(get("/poems/ozymandias?transform=cummingsify", &r), 200, "%s", r.body);
    cr_assert(has(&r, "my name is ozymandias, king of kings"), "%s", r.body);
    cr_assert(!has(&r, "King of Kings"), "the page shows the poem untransformed");
    cr_assert_str_eq(tu_http_header(&r, "X-Cache"), "MISS", "the poem cache's outcome");
    tu_http_free(&r);
    cr_assert_eq(get("/poems/ozymandias?transform=cummingsify", &r), 200);
    cr_assert(has(&r, "my name is ozymandias"), "%s", r.body);
    cr_assert_str_eq(tu_http_header(&r, "X-Cache"), "HIT");
    tu_http_free(&r);
    /* Without the query: the poem as it is. */
    cr_assert_eq(get("/poems/ozymandias", &r), 200);
    cr_assert(has(&r, "King of Kings"), "%s", r.body);
    tu_http_free(&r);
    /* The transformer kept its answer: the service was asked once. */
    tu_proc_expect(&xsrv, "(never printed)", 300);
    cr_assert_eq(strstr(strstr(xsrv.log, ": request ") + 1, ": request "), NULL, "%s", xsrv.log);
}

Test(transform_proxy, a_failed_transform_is_a_502_naming_it_never_a_200, .fini = stop)
{
    const char *fail[] = {"--fail-every", "1", NULL};
    start(fail, 1);
    tu_http r;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(get("/poems/ozymandias?transform=cummingsify", &r), 502, "%d: %s", i, r.body);
        cr_assert(has(&r, "cummingsify"), "the page names the transform: %s", r.body);
        tu_http_free(&r);
    }
    /* Unknown to the service: it closes just the same. */
    cr_assert_eq(get("/poems/ozymandias?transform=nosuch", &r), 502);
    cr_assert(has(&r, "nosuch"), "%s", r.body);
    tu_http_free(&r);
    /* A name no transform can have: refused here. */
    cr_assert_eq(get("/poems/ozymandias?transform=no-such", &r), 400);
    cr_assert(has(&r, "bad transform name"), "%s", r.body);
    tu_http_free(&r);
    cr_assert_eq(get("/poems/ozymandias?transform=a123456789012345678901234567890123", &r), 400);
    tu_http_free(&r);
}

Test(transform_proxy, no_transformer_no_transforms, .fini = stop)
{
    start(NULL, 0);
    tu_http r;
    cr_assert_eq(get("/poems/ozymandias?transform=cummingsify", &r), 404);
    cr_assert(has(&r, "no transform service"), "%s", r.body);
    tu_http_free(&r);
    cr_assert_eq(px.transform_port, 0);
}

/* The raw port: the tutorial's example, pipelined requests, then the ways
 * a client is reset, all counted in /metrics. */
Test(transform_proxy, the_raw_transform_port, .fini = stop)
{
    start(NULL, 1);
    cr_assert_gt(px.transform_port, 0);
    int fd = tu_http_connect(px.transform_port);
    const char *two = "27:cummingsify.HERE IS MY POEM,8:upper.ab,";
    tu_http_send(fd, two, strlen(two));
    char got[64];
    const char *want = "15:here is my poem,2:AB,";
    cr_assert_eq(tu_read_n(fd, got, strlen(want), 5000), strlen(want), "%s", got);
    cr_assert_str_eq(got, want);
    /* Every request answered: the proxy closes, as the tutorial's server
     * does (its transform-test, netcat -q -1, waits for that). */
    cr_assert_eq(tu_wait_closed(fd, 2000), TU_CLOSED);
    close(fd);
    const char *bad[] = {"6:nope.x,", "5:nodot,", "01:a,", "99999999999:", "7:bad-x.y,"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fd = tu_http_connect(px.transform_port);
        tu_http_send(fd, bad[i], strlen(bad[i]));
        cr_assert_eq(tu_wait_closed(fd, 5000), TU_RESET, "%s: not reset", bad[i]);
        close(fd);
    }
    tu_http r;
    cr_assert_eq(get("/metrics", &r), 200);
    cr_assert(has(&r, "weft_transform_served_total 2\n"), "%s", r.body);
    cr_assert(has(&r, "weft_transform_failed_total 5\n"), "%s", r.body);
    tu_http_free(&r);
}

Test(transform_proxy, a_slow_transform_is_a_504_and_its_upstream_is_closed, .fini = stop)
{
    /* An answer far later than anything the test waits for, so that a
     * loaded machine (a loop stalled for seconds under ASan) cannot make
     * the answer come first. */
    const char *slow[] = {"--slow", "--delay-ms", "60000", NULL};
    deadline_ms = 1000;
    start(slow, 1);
    tu_http r;
    cr_assert_eq(get("/poems/ozymandias?transform=cummingsify", &r), 504, "%s", r.body);
    cr_assert(has(&r, "cummingsify"), "%s", r.body);
    tu_http_free(&r);
    /* The transformer gave up with the request: the service sees it. */
    const char *seen =
        tu_proc_expect(&xsrv, "client closed its side with an answer pending", 20000);
    wf_transformer_stats st = {0};
    wf_result res =
        wf_node_call(px.node, px.transformer, wf_msg_new(WF_TRANSFORM_STATS, NULL, 0), 2000);
    if (wf_result_is_msg(res))
        wf_transformer_stats_parse(res.u.ptr, &st);
    wf_result_free(res);
    cr_assert_not_null(seen, "%s(requests %llu upstream %llu cancelled %llu abandoned %llu)",
                       xsrv.log, (unsigned long long)st.requests, (unsigned long long)st.upstream,
                       (unsigned long long)st.cancelled, (unsigned long long)st.abandoned);
}

/* Hostile clients on the transform port hold nothing for long: a full
 * house dribbling requests that never end (a byte every 2 ms, so that none
 * is ever quiet) makes room for newcomers, as slowloris on HTTP does; a
 * half-closed client gets its answer; junk and a request that stops
 * arriving are reset. */
Test(transform_proxy, hostile_transform_clients_hold_nothing, .fini = stop)
{
    max_connections = 4;
    request_timeout_ms = 1500;
    start(NULL, 1);
    static const char slow[] = "100000:cummingsify.";
    int fd[4];
    for (int i = 0; i < 4; i++) {
        fd[i] = tu_http_connect(px.transform_port);
        tu_http_send(fd[i], slow, sizeof slow - 1);
    }
    long long t0 = now_ms();
    while (now_ms() - t0 < 300) {
        for (int i = 0; i < 4; i++)
            send(fd[i], "x", 1, MSG_NOSIGNAL);
        tu_sleep_ms(2);
    }
    /* A newcomer on HTTP, then one on the transform port that half-closes
     * at once (nc -N, the tutorial's clients): both answered, while the
     * dribbling goes on. */
    int good = tu_http_connect(px.http_port);
    static const char get_req[] = "GET /poems/ozymandias HTTP/1.1\r\nHost: t\r\n\r\n";
    tu_http_send(good, get_req, sizeof get_req - 1);
    for (int k = 0; k < 50; k++) {
        for (int i = 0; i < 4; i++)
            send(fd[i], "x", 1, MSG_NOSIGNAL);
        tu_sleep_ms(2);
    }
    tu_http r;
    cr_assert_eq(tu_http_read(good, &r, 5000), 0, "the HTTP newcomer got no answer");
    cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
    tu_http_free(&r);
    int half = tu_http_connect(px.transform_port); /* the good one stays: a full house again */
    static const char req[] = "27:cummingsify.HERE IS MY POEM,";
    tu_http_send(half, req, sizeof req - 1);
    shutdown(half, SHUT_WR);
    for (int k = 0; k < 50; k++) {
        for (int i = 0; i < 4; i++)
            send(fd[i], "x", 1, MSG_NOSIGNAL);
        tu_sleep_ms(2);
    }
    char got[32] = {0};
    static const char want[] = "15:here is my poem,";
    cr_assert_eq(tu_read_n(half, got, sizeof want - 1, 5000), sizeof want - 1, "got '%s'", got);
    cr_assert_str_eq(got, want);
    cr_assert_eq(tu_wait_closed(half, 2000), TU_CLOSED);
    close(half);
    close(good);
    cr_assert_geq(metric("weft_connections_evicted_total"), 2);
    cr_assert_eq(metric("weft_http_requests_total{status=\"503\"}"), 0, "nobody got a 503");
    /* Junk: reset at once. */
    int junk = tu_http_connect(px.transform_port);
    tu_http_send(junk, "GET / HTTP/1.1\r\n\r\n", 18);
    cr_assert_eq(tu_wait_closed(junk, 2000), TU_RESET);
    close(junk);
    /* The dribblers still standing stop: reset once their request is
     * request_timeout_ms old. */
    for (int i = 0; i < 4; i++) {
        int st = tu_wait_closed(fd[i], 5000);
        cr_assert(st == TU_RESET || st == TU_CLOSED, "dribbler %d still open", i);
        close(fd[i]);
    }
    cr_assert_geq(metric("weft_transform_failed_total"), 1);
}
