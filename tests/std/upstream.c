/* Upstream trouble through the whole proxy (a real poetry server, the four
 * actors on a node thread, HTTP over loopback) must not be amplified: an
 * unknown name is asked upstream once and answered 404, an outage is
 * tried a few times, not once per request, and a run of failures logs a
 * line, not a line (or five) per request. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <weft/cache.h>
#include <weft/fetcher.h>
#include <weft/listener.h>
#include <weft/renderer.h>

#include "http.h"
#include "proc.h"
#include "proxy.h"
#include "testutil.h"

TestSuite(upstream, .timeout = 120);

static tu_proc up;
static int http_port;
static wf_node *node;
static tu_proxy px;
static wf_fetcher_config fcfg;
static wf_cache_config ccfg;
static wf_renderer_config rcfg;
static wf_listener_config lcfg;
static char upstream_url[64];

static void setup(void)
{
    tu_capture_log();
    signal(SIGPIPE, SIG_IGN);
    tu_poetry_start(&up, POETRY_SERVER, NULL, upstream_url, sizeof upstream_url);
    fcfg = (wf_fetcher_config){.upstream = upstream_url, .send_name = 1};
    ccfg = (wf_cache_config){.source = "fetcher", .fetch_type = WF_FETCH_GET};
    rcfg = (wf_renderer_config){0};
    lcfg = (wf_listener_config){
        .http_addr = "127.0.0.1:0", .cache = "cache", .renderer = "renderer", .debug = 0};
}

static void start(void)
{
    tu_proxy_start(&px, "up", NULL, &fcfg, &ccfg, &rcfg, &lcfg);
    node = px.node;
    http_port = px.http_port;
}

static void stop(void)
{
    tu_proxy_stop(&px);
    node = NULL;
    tu_proc_kill(&up);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Up to n GETs of path on one keep-alive connection, pause_ms apart, for
 * at most budget_ms (0: no limit); every answer must have status `want`.
 * Returns how many were made. */
static int get_many(const char *path, int n, int pause_ms, long long budget_ms, int want)
{
    char req[256];
    int len = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    int fd = tu_http_connect(http_port);
    long long t0 = now_ms();
    int i = 0;
    for (; i < n && (budget_ms == 0 || now_ms() - t0 < budget_ms); i++) {
        tu_http r;
        tu_http_send(fd, req, (size_t)len);
        cr_assert_eq(tu_http_read(fd, &r, 5000), 0, "request %d: no answer", i);
        cr_assert_eq(r.status, want, "request %d: %d", i, r.status);
        tu_http_free(&r);
        if (pause_ms > 0)
            tu_sleep_ms(pause_ms);
    }
    close(fd);
    return i;
}

/* The value of counter name in the proxy's /metrics. */
static long long metric(const char *name)
{
    tu_http r;
    cr_assert_eq(tu_http_get(http_port, "/metrics", &r), 0);
    char needle[128];
    snprintf(needle, sizeof needle, "\n%s ", name);
    const char *p = strstr(r.body, needle);
    cr_assert_not_null(p, "no %s in:\n%s", name, r.body);
    long long v = atoll(p + strlen(needle));
    tu_http_free(&r);
    return v;
}

/* Every report in the log is one line. */
static void expect_one_line_reports(void)
{
    const char *log = tu_log_text();
    int lines = 0;
    for (const char *p = log; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    cr_assert_eq(lines, tu_log_count(), "%d lines for %d reports:\n%s", lines, tu_log_count(), log);
}

Test(upstream, an_unknown_name_is_404_and_asked_upstream_once, .init = setup, .fini = stop)
{
    start();
    get_many("/poems/no_such_poem", 200, 0, 0, 404);
    cr_assert_eq(metric("weft_upstream_fetches_total"), 1, "the not-found answer is remembered");
    cr_assert_eq(metric("weft_cache_negative_hits_total"), 199);
    cr_assert_eq(metric("weft_upstream_failures_total"), 1);
    /* The upstream saw one request for it. */
    tu_proc_expect(&up, "\x01never\x01", 200);
    int asked = 0;
    for (const char *p = up.log; (p = strstr(p, "unknown poem no_such_poem")) != NULL; p++)
        asked++;
    cr_assert_eq(asked, 1, "%s", up.log);
    cr_assert_eq(tu_log_count(), 1, "one line for 200 failures:\n%s", tu_log_text());
    cr_assert(strstr(tu_log_text(), "failed with 404: WF_ENOTFOUND"), "%s", tu_log_text());
    expect_one_line_reports();
    get_many("/poems/ozymandias", 1, 0, 0, 200); /* the rest still works */
}

Test(upstream, an_outage_is_tried_a_few_times_not_once_per_request, .init = setup, .fini = stop)
{
    tu_proc_kill(&up); /* nothing listens there any more */
    start();
    /* Requests for 1.5 s (fewer under valgrind). The waits after failures
     * are at least 750, 1500, 3000 ms: within 1.5 s of wall time (and what
     * the metrics request adds) two attempts, three if slow. */
    long long t0 = now_ms();
    int n = get_many("/poems/ozymandias", 300, 5, 1500, 502);
    long long fetches = metric("weft_upstream_fetches_total"), took = now_ms() - t0;
    long long allowed = 1;
    for (long long wait = 750, sum = 750; sum <= took; wait *= 2, sum += wait)
        allowed++;
    cr_assert_geq(n, 20, "only %d requests in %lld ms", n, took);
    cr_assert_leq(fetches, allowed, "%lld upstream attempts for %d requests in %lld ms", fetches, n,
                  took);
    cr_assert_eq(metric("weft_upstream_backoff_suppressed_total"), n - fetches);
    cr_assert_leq(tu_log_count(), 2, "a line per kind of failure, not per request:\n%s",
                  tu_log_text());
    cr_assert(strstr(tu_log_text(), "failed with 502: WF_EUPSTREAM") &&
                  strstr(tu_log_text(), "connection refused"),
              "%s", tu_log_text());
    expect_one_line_reports();
}
