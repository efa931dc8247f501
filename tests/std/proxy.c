/* The caching poetry proxy, as a client sees it: a real upstream poetry
 * server process, the four actors on a node thread, real HTTP over loopback.
 * Each failure stage must give its request a complete answer at once and
 * leave the next hundred requests untouched. */
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
#include <weft/transport.h>

#include "http.h"
#include "proc.h"
#include "proxy.h"
#include "testutil.h"

TestSuite(proxy, .timeout = 60);

static tu_proc upstream;
static int up_port, http_port, poetry_port;
static wf_node *node;
static tu_proxy px;
static wf_pid lpid;
static wf_fetcher_config fcfg;
static wf_cache_config ccfg;
static wf_renderer_config rcfg;
static wf_listener_config lcfg;
static char upstream_url[64];
static const wf_trace_config *tcfg; /* start() traces with it when set */

static void start_upstream(const char *const *extra)
{
    /* The fetcher names its poem; under valgrind on a loaded machine it can
     * take longer than the server's default 100 ms to, and would get the
     * first poem instead of its own. */
    const char *argv[16] = {"--name-wait-ms", "5000"};
    int n = 2;
    for (; extra && *extra && n < 15; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    tu_poetry_start(&upstream, POETRY_SERVER, argv, upstream_url, sizeof upstream_url);
    up_port = atoi(strrchr(upstream_url, ':') + 1);
}

/* Defaults every test starts from; a test changes them before start(). */
static void base(void)
{
    tu_capture_log();
    signal(SIGPIPE, SIG_IGN);
    fcfg = (wf_fetcher_config){.upstream = upstream_url, .send_name = 1};
    ccfg = (wf_cache_config){.source = "fetcher", .fetch_type = WF_FETCH_GET};
    rcfg = (wf_renderer_config){0};
    tcfg = NULL;
    lcfg = (wf_listener_config){.http_addr = "127.0.0.1:0",
                                .poetry_addr = "127.0.0.1:0",
                                .poetry_default = "ozymandias",
                                .cache = "cache",
                                .renderer = "renderer",
                                .debug = 1,
                                .allow_faults = 1};
}

static void start(void)
{
    tu_proxy_start(&px, "px", tcfg, &fcfg, &ccfg, &rcfg, &lcfg);
    node = px.node;
    lpid = px.listener;
    http_port = px.http_port;
    poetry_port = px.poetry_port;
}

static void stop(void)
{
    tu_proxy_stop(&px);
    node = NULL;
    tu_proc_kill(&upstream);
}

static void setup(void)
{
    base();
    start_upstream(NULL);
}

Test(proxy, a_miss_then_a_hit_with_the_headers_and_a_session_counter, .init = setup, .fini = stop)
{
    start();
    tu_http r;
    cr_assert_eq(tu_http_get(http_port, "/poems/ozymandias", &r), 0);
    cr_assert_eq(r.status, 200, "%s%s", r.headers, r.body);
    cr_assert_str_eq(tu_http_header(&r, "X-Cache"), "MISS");
    cr_assert_str_eq(tu_http_header(&r, "Via"), "1.1 weft");
    cr_assert(strstr(r.body, "Ozymandias") && strstr(r.body, "Page view #1"), "%s", r.body);
    char cookie[128];
    snprintf(cookie, sizeof cookie, "%s", tu_http_header(&r, "Set-Cookie"));
    cr_assert(strncmp(cookie, "weft_session=", 13) == 0, "%s", cookie);
    tu_http_free(&r);

    int fd = tu_http_connect(http_port);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET /poems/ozymandias HTTP/1.1\r\nHost: t\r\nCookie: %.*s\r\n\r\n",
                     (int)strcspn(cookie, ";"), cookie);
    tu_http_send(fd, req, (size_t)n);
    cr_assert_eq(tu_http_read(fd, &r, 5000), 0);
    cr_assert_str_eq(tu_http_header(&r, "X-Cache"), "HIT");
    cr_assert_str_neq(tu_http_header(&r, "Age"), "");
    cr_assert(strstr(r.body, "Page view #2 in this session"), "%s", r.body);
    tu_http_free(&r);

    /* The next request on this connection sends no cookie: it is a new
     * session, not the previous request's (a front proxy shares
     * connections between clients). */
    const char *bare = "GET /poems/ozymandias HTTP/1.1\r\nHost: t\r\n\r\n";
    tu_http_send(fd, bare, strlen(bare));
    cr_assert_eq(tu_http_read(fd, &r, 5000), 0);
    cr_assert(strstr(r.body, "Page view #1"), "%s", r.body);
    const char *fresh = tu_http_header(&r, "Set-Cookie");
    cr_assert(strncmp(fresh, "weft_session=", 13) == 0, "a new session: %s", fresh);
    cr_assert_str_neq(fresh, cookie);
    tu_http_free(&r);
    close(fd);
    cr_assert_eq(tu_poetry_served(&upstream, "ozymandias"), 1);
}

Test(proxy, a_hundred_concurrent_requests_make_one_upstream_fetch, .init = base, .fini = stop)
{
    /* A slow upstream: all hundred arrive while the one fetch is under way. */
    const char *slow[] = {"--slow", "--delay-ms", "50", "--chunk", "500", NULL};
    start_upstream(slow);
    start();
    int fds[100];
    for (int i = 0; i < 100; i++) {
        fds[i] = tu_http_connect(http_port);
        tu_http_send(fds[i], "GET /poems/the_raven HTTP/1.1\r\nHost: t\r\n\r\n", 42);
    }
    int miss = 0, coalesced = 0;
    for (int i = 0; i < 100; i++) {
        tu_http r;
        cr_assert_eq(tu_http_read(fds[i], &r, 10000), 0);
        cr_assert_eq(r.status, 200);
        miss += strcmp(tu_http_header(&r, "X-Cache"), "MISS") == 0;
        coalesced += strcmp(tu_http_header(&r, "X-Cache"), "COALESCED") == 0;
        tu_http_free(&r);
        close(fds[i]);
    }
    cr_assert_eq(miss, 1);
    cr_assert_eq(coalesced, 99);
    cr_assert_eq(tu_poetry_served(&upstream, "the_raven"), 1);
}

Test(proxy, pipelined_requests_are_answered_in_order_on_one_connection, .init = setup, .fini = stop)
{
    start();
    int fd = tu_http_connect(http_port);
    const char *three = "GET /poems/the_tyger HTTP/1.1\r\nHost: t\r\n\r\n"
                        "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
                        "HEAD /poems/sonnet_18 HTTP/1.1\r\nHost: t\r\n\r\n"
                        "GET /poems/ozymandias HTTP/1.1\r\nHost: t\r\n\r\n";
    tu_http_send(fd, three, strlen(three));
    tu_http r;
    cr_assert_eq(tu_http_read(fd, &r, 5000), 0);
    cr_assert(strstr(r.body, "Tyger"), "the first answer is the first request's");
    tu_http_free(&r);
    cr_assert_eq(tu_http_read(fd, &r, 5000), 0);
    cr_assert_str_eq(r.body, "ok\n");
    tu_http_free(&r);
    /* HEAD: the headers of the page, no body (the reader must not wait for
     * one): read the headers only. */
    char head[2048];
    size_t n = 0;
    while (n < sizeof head - 1 && (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0)) {
        if (read(fd, head + n, 1) != 1)
            break;
        n++;
    }
    head[n] = '\0';
    cr_assert(strstr(head, "HTTP/1.1 200") && strstr(head, "Content-Length:"), "%s", head);
    cr_assert_eq(tu_http_read(fd, &r, 5000), 0);
    cr_assert(strstr(r.body, "Ozymandias"), "the fourth answer is the fourth request's");
    tu_http_free(&r);
    close(fd);
}

static void expect_refused(const char *request, size_t len, int status)
{
    int fd = tu_http_connect(http_port);
    tu_http_send(fd, request, len);
    tu_http r;
    cr_assert_eq(tu_http_read(fd, &r, 5000), 0, "no complete answer");
    cr_assert_eq(r.status, status, "%s", r.headers);
    cr_assert_str_eq(tu_http_header(&r, "Connection"), "close");
    tu_http_free(&r);
    char rest[64];
    cr_assert_eq(tu_read_all(fd, rest, sizeof rest, 2000), 0, "the connection was closed");
    close(fd);
}

Test(proxy, bad_requests_get_their_status_and_a_closed_connection, .init = setup, .fini = stop)
{
    lcfg.max_header = 1024;
    lcfg.max_body = 1000;
    start();
    expect_refused("THIS IS NOT HTTP\r\n\r\n", 20, 400);
    char big[4096] = "GET /poems/x HTTP/1.1\r\nX-Filler: ";
    size_t n = strlen(big);
    memset(big + n, 'a', 2000);
    memcpy(big + n + 2000, "\r\n\r\n", 4);
    expect_refused(big, n + 2004, 431);
    char post[256];
    int k = snprintf(post, sizeof post, "POST /poems/x HTTP/1.1\r\nContent-Length: 5000\r\n\r\n");
    char body[5000];
    memset(body, 'b', sizeof body);
    memcpy(big, post, (size_t)k);
    int fd = tu_http_connect(http_port);
    tu_http_send(fd, post, (size_t)k);
    tu_http_send(fd, body, sizeof body);
    tu_http r;
    cr_assert_eq(tu_http_read(fd, &r, 5000), 0);
    cr_assert_eq(r.status, 413);
    tu_http_free(&r);
    close(fd);
    /* Chunked bodies are read by the parser: a small one is fine (405). */
    const char *chunked = "POST /poems/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "5\r\nhello\r\n0\r\n\r\n";
    fd = tu_http_connect(http_port);
    tu_http_send(fd, chunked, strlen(chunked));
    cr_assert_eq(tu_http_read(fd, &r, 5000), 0);
    cr_assert_eq(r.status, 405);
    tu_http_free(&r);
    close(fd);
    cr_assert_eq(tu_http_get(http_port, "/nowhere", &r), 0);
    cr_assert_eq(r.status, 404);
    tu_http_free(&r);
}

Test(proxy, too_many_connections_get_503, .init = base, .fini = stop)
{
    /* Two connections waiting for answers still being made (a slow
     * upstream) are not stale: neither is evicted, the newcomer gets 503.
     * (Idle or stalled ones would make room: tests/std/listener_limits.c.) */
    const char *slow[] = {"--slow", "--delay-ms", "500", "--chunk", "10", NULL};
    start_upstream(slow);
    lcfg.max_connections = 2;
    start();
    int a = tu_http_connect(http_port), b = tu_http_connect(http_port);
    static const char get[] = "GET /poems/the_raven HTTP/1.1\r\nHost: t\r\n\r\n";
    tu_http_send(a, get, sizeof get - 1);
    tu_http_send(b, get, sizeof get - 1);
    tu_sleep_ms(300);
    expect_refused("", 0, 503);
    close(a);
    close(b);
}

Test(proxy, slow_clients_do_not_keep_connections, .init = setup, .fini = stop)
{
    lcfg.header_timeout_ms = 200;
    lcfg.idle_timeout_ms = 300;
    start();
    int fd = tu_http_connect(http_port);
    tu_http_send(fd, "GET /poems/ozy", 14); /* and then nothing */
    tu_http r;
    cr_assert_eq(tu_http_read(fd, &r, 3000), 0);
    cr_assert_eq(r.status, 408);
    tu_http_free(&r);
    close(fd);
    fd = tu_http_connect(http_port); /* idle: closed without a word */
    char buf[16];
    cr_assert_eq(tu_read_all(fd, buf, sizeof buf, 3000), 0);
    close(fd);
}

Test(proxy, an_upstream_that_is_down_gives_502_with_the_trace, .init = setup, .fini = stop)
{
    tu_proc_kill(&upstream); /* nothing listens there any more */
    start();
    tu_http r;
    cr_assert_eq(tu_http_get(http_port, "/poems/ozymandias", &r), 0);
    cr_assert_eq(r.status, 502, "%s", r.body);
    cr_assert(strstr(r.body, "connection refused"), "%s", r.body);
    cr_assert(strstr(r.body, "handler fetch [fetcher@px]"), "the trace crosses actors: %s", r.body);
    cr_assert(strstr(r.body, "handler get [cache@px]"), "%s", r.body);
    tu_http_free(&r);
}

Test(proxy, the_deadline_gives_504, .fini = stop)
{
    base();
    const char *slow[] = {"--slow", "--delay-ms", "200", "--chunk", "10", NULL};
    start_upstream(slow);
    lcfg.deadline_ms = 300;
    start();
    tu_http r;
    long long t0 = (long long)time(NULL);
    cr_assert_eq(tu_http_get(http_port, "/poems/ozymandias", &r), 0);
    cr_assert_eq(r.status, 504, "%s", r.body);
    cr_assert_leq((long long)time(NULL) - t0, 2, "at the deadline, not later");
    tu_http_free(&r);
}

static void fault_then_a_hundred(const char *stage, int status)
{
    int fd = tu_http_connect(http_port);
    char req[256];
    int n = snprintf(req, sizeof req, "GET /poems/ozymandias?fault=%s HTTP/1.1\r\nHost: t\r\n\r\n",
                     stage);
    tu_http_send(fd, req, (size_t)n);
    tu_http r;
    cr_assert_eq(tu_http_read(fd, &r, 2000), 0, "%s: no complete answer at once", stage);
    cr_assert_eq(r.status, status, "%s: %s", stage, r.headers);
    cr_assert_eq(strlen(r.body), r.body_len, "%s: a complete body", stage);
    tu_http_free(&r);
    /* The next hundred, on the same connection, each get their own page. */
    const char *names[] = {"the_tyger", "ozymandias", "sonnet_18"};
    const char *titles[] = {"Tyger", "Ozymandias", "Sonnet 18"};
    for (int i = 0; i < 100; i++) {
        n = snprintf(req, sizeof req, "GET /poems/%s HTTP/1.1\r\nHost: t\r\n\r\n", names[i % 3]);
        tu_http_send(fd, req, (size_t)n);
        cr_assert_eq(tu_http_read(fd, &r, 5000), 0, "%s: request %d after the fault", stage, i);
        cr_assert_eq(r.status, 200, "%s: request %d: %s", stage, i, r.body);
        cr_assert(strstr(r.body, titles[i % 3]), "%s: request %d got another's page", stage, i);
        tu_http_free(&r);
    }
    close(fd);
}

Test(proxy, every_failure_stage_answers_its_request_alone, .init = setup, .fini = stop)
{
    start();
    tu_http r;
    tu_http_get(http_port, "/poems/ozymandias", &r); /* warm */
    tu_http_free(&r);
    fault_then_a_hundred("dispatch", 500);
    fault_then_a_hundred("render_before", 500);
    fault_then_a_hundred("render_encoding", 500);
    fault_then_a_hundred("writing", 500);
    fault_then_a_hundred("after", 200);
}

/* Only the query's own "fault" field injects: a field whose name ends in
 * it, or the word in a value, is not one. */
Test(proxy, only_a_fault_field_injects_a_fault, .init = setup, .fini = stop)
{
    start();
    const char *paths[] = {"/poems/ozymandias?default=dispatch",
                           "/poems/ozymandias?x=fault=dispatch",
                           "/poems/ozymandias?a=1&nofault=writing", "/poems/ozymandias?fault"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        tu_http r;
        cr_assert_eq(tu_http_get(http_port, paths[i], &r), 0);
        cr_assert_eq(r.status, 200, "%s: %s", paths[i], r.body);
        tu_http_free(&r);
    }
    tu_http r;
    cr_assert_eq(tu_http_get(http_port, "/poems/ozymandias?a=1&fault=dispatch", &r), 0);
    cr_assert_eq(r.status, 500, "the fault field after another");
    tu_http_free(&r);
}

Test(proxy, the_poetry_port_serves_the_poem_and_closes, .init = setup, .fini = stop)
{
    start();
    int fd = tu_http_connect(poetry_port);
    char poem[8192];
    size_t n = tu_read_all(fd, poem, sizeof poem, 5000);
    close(fd);
    cr_assert_gt(n, 100);
    cr_assert(strstr(poem, "Ozymandias"), "%s", poem);
    /* The Twisted tutorial's kind of client. */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s 127.0.0.1:%d >/dev/null 2>&1", TWISTED_CLIENT,
             poetry_port);
    cr_assert_eq(system(cmd), 0, "the Twisted poetry client failed");
}

Test(proxy, metrics_and_healthz, .init = setup, .fini = stop)
{
    start();
    tu_http r;
    tu_http_get(http_port, "/poems/ozymandias", &r);
    tu_http_free(&r);
    cr_assert_eq(tu_http_get(http_port, "/healthz", &r), 0);
    cr_assert_str_eq(r.body, "ok\n");
    tu_http_free(&r);
    cr_assert_eq(tu_http_get(http_port, "/metrics", &r), 0);
    const char *want[] = {"weft_http_requests_total{status=\"200\"} 2",
                          "weft_cache_answers_total{outcome=\"miss\"} 1",
                          "weft_upstream_fetches_total 1", "weft_http_request_seconds_bucket",
                          "weft_mailbox_depth{actor=\"cache\"}"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(r.body, want[i]), "missing %s in:\n%s", want[i], r.body);
    tu_http_free(&r);
}

/* The flagship spread over two nodes joined by real transports: listener
 * and renderer on node a, cache and fetcher on node b. */
/* Node b runs cache and fetcher, node a (the test's node) listener and
 * renderer, joined over ipc in dir; both trace into dir when trace is set. */
static wf_node *two_nodes(const char *dir, bool trace)
{
    char ua[128], ub[128];
    snprintf(ua, sizeof ua, "ipc://%s/a", dir);
    snprintf(ub, sizeof ub, "ipc://%s/b", dir);
    wf_transport_config tc = {.secret = "poems"};
    wf_transport *ta, *tb;
    wf_node *nb = wf_node_new(&(wf_node_config){.name = "b"});
    cr_assert_eq(wf_transport_new(nb, &tc, &tb), 0);
    cr_assert_eq(wf_transport_listen(tb, ub), 0);
    cr_assert_eq(wf_fetcher_spawn(nb, "fetcher", &fcfg, NULL), 0);
    cr_assert_eq(wf_cache_spawn(nb, "cache", &ccfg, NULL), 0);

    lcfg.cache = "cache@b";
    node = wf_node_new(&(wf_node_config){.name = "a"});
    cr_assert_eq(wf_transport_new(node, &tc, &ta), 0);
    cr_assert_eq(wf_transport_listen(ta, ua), 0);
    cr_assert_eq(wf_transport_dial(ta, ub), 0);
    cr_assert_eq(wf_renderer_spawn(node, "renderer", &rcfg, NULL), 0);
    cr_assert_eq(wf_listener_spawn(node, "listener", &lcfg, &lpid), 0);
    if (trace) {
        char fa[128], fb[128];
        snprintf(fa, sizeof fa, "%s/a.jsonl", dir);
        snprintf(fb, sizeof fb, "%s/b.jsonl", dir);
        cr_assert_eq(wf_node_trace_start(node, &(wf_trace_config){.file = fa, .sample = 1}), 0);
        cr_assert_eq(wf_node_trace_start(nb, &(wf_trace_config){.file = fb, .sample = 1}), 0);
    }
    wf_node_start(nb);
    wf_node_start(node);
    wf_result pr = wf_node_call(node, lpid, wf_msg_new(WF_LISTENER_PORTS, NULL, 0), 2000);
    http_port = ((uint16_t *)wf_msg_body(pr.u.ptr))[0];
    wf_result_free(pr);

    /* Until the nodes have connected, the cache is out of reach (502). */
    tu_http r = {0};
    for (int i = 0; i < 200; i++) {
        cr_assert_eq(tu_http_get(http_port, "/poems/ozymandias", &r), 0);
        if (r.status == 200)
            break;
        tu_http_free(&r);
        tu_sleep_ms(25);
    }
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(tu_http_header(&r, "X-Cache"), "MISS");
    tu_http_free(&r);
    return nb;
}

static void end_node(wf_node *n)
{
    wf_node_shutdown(n);
    wf_node_wait(n);
    wf_node_free(n);
}

static void remove_dir(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(proxy, the_proxy_spread_over_two_nodes, .init = setup, .fini = stop)
{
    char dir[64] = "/tmp/weft-px2.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    wf_node *nb = two_nodes(dir, false);
    tu_http r;
    cr_assert_eq(tu_http_get(http_port, "/poems/ozymandias", &r), 0);
    cr_assert_str_eq(tu_http_header(&r, "X-Cache"), "HIT");
    tu_http_free(&r);

    /* A failure on node b shows every hop, across the nodes. */
    tu_proc_kill(&upstream);
    cr_assert_eq(tu_http_get(http_port, "/poems/the_tyger", &r), 0);
    cr_assert_eq(r.status, 502, "%s", r.body);
    const char *hops[] = {"handler fetch [fetcher@b]", "handler get [cache@b]",
                          "reply from node b [node a]"};
    for (int i = 0; i < 3; i++)
        cr_assert(strstr(r.body, hops[i]), "missing %s in:\n%s", hops[i], r.body);
    tu_http_free(&r);
    end_node(nb);
    remove_dir(dir);
}

Test(proxy, a_traced_request_is_one_trace_across_both_nodes, .init = setup, .fini = stop)
{
    char dir[64] = "/tmp/weft-px3.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    wf_node *nb = two_nodes(dir, true);
    /* The client's traceparent is continued, and the answer names the
     * request's own span in the same trace. */
    int fd = tu_http_connect(http_port);
    const char *req =
        "GET /poems/the_raven HTTP/1.1\r\nHost: t\r\n"
        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n";
    tu_http_send(fd, req, strlen(req));
    tu_http r;
    cr_assert_eq(tu_http_read(fd, &r, 10000), 0);
    close(fd);
    cr_assert_eq(r.status, 200, "%s", r.body);
    char tp[64];
    snprintf(tp, sizeof tp, "%s", tu_http_header(&r, "traceparent"));
    tu_http_free(&r);
    cr_assert_eq(strncmp(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36), 0, "%s", tp);
    cr_assert_str_neq(tp + 36, "00f067aa0ba902b7-01");
    char span[17];
    snprintf(span, sizeof span, "%.16s", tp + 36);
    end_node(node);
    node = NULL;
    end_node(nb);

    char fa[128], fb[128];
    snprintf(fa, sizeof fa, "%s/a.jsonl", dir);
    snprintf(fb, sizeof fb, "%s/b.jsonl", dir);
    cr_assert_eq(tu_json_lines_check(fa), 0);
    cr_assert_eq(tu_json_lines_check(fb), 0);
    tu_lines a, b;
    tu_lines_read(&a, fa);
    tu_lines_read(&b, fb);
    const char *T = "\"trace\":\"4bf92f3577b34da6a3ce929d0e0e4736\"";
    char want[64];
    snprintf(want, sizeof want, "\"span\":\"%s\"", span);
    size_t at = 0;
    cr_assert_not_null(tu_lines_find(&a, &at, "\"ev\":\"recv\"", T, want,
                                     "\"parent\":\"00f067aa0ba902b7\"",
                                     "\"label\":\"GET /poems/the_raven\"", NULL));
    const char *send = tu_lines_find(&a, &at, "\"ev\":\"send\"", T, "\"to\":\"cache@b\"", NULL);
    cr_assert_not_null(send);
    char sspan[40], key[64];
    cr_assert(tu_json_get(send, "span", sspan, sizeof sspan));
    snprintf(key, sizeof key, "\"span\":\"%s\"", sspan);
    /* On node b: the same span arrives, from node a (b knows the sender by
     * its id only; its name is in a's send). */
    size_t bt = 0;
    const char *recv =
        tu_lines_find(&b, &bt, "\"ev\":\"recv\"", T, key, "\"actor\":\"cache\"", NULL);
    cr_assert_not_null(recv);
    cr_assert(strstr(recv, "\"from\":\"#") && strstr(recv, "@a\""), "%s", recv);
    cr_assert_not_null(tu_lines_find(&b, &bt, "\"ev\":\"send\"", T, "\"to\":\"fetcher@b\"", NULL));
    cr_assert_not_null(tu_lines_find(&b, &bt, "\"ev\":\"reply\"", T, key, NULL));
    /* Back on a: the ask fired, the renderer ran on the pool, 200 went out. */
    cr_assert_not_null(tu_lines_find(&a, &at, "\"ev\":\"fired\"", T, key, "\"ok\":true", NULL));
    cr_assert_not_null(
        tu_lines_find(&a, &at, "\"ev\":\"offload_end\"", T, "\"actor\":\"renderer\"", NULL));
    cr_assert_not_null(
        tu_lines_find(&a, &at, "\"ev\":\"reply\"", T, want, "\"label\":\"200\"", NULL));
    cr_assert_not_null(tu_lines_find(&a, NULL, "\"ev\":\"node_up\"", "\"peer\":\"b\"", NULL));
    tu_lines_free(&a);
    tu_lines_free(&b);
    remove_dir(dir);
}

/* The body of GET path (a 200 expected unless status says otherwise). */
static void trace_get(const char *path, int status, char *out, size_t size)
{
    tu_http r;
    cr_assert_eq(tu_http_get(http_port, path, &r), 0);
    cr_assert_eq(r.status, status, "%s: %d %s", path, r.status, r.body);
    snprintf(out, size, "%s", r.body);
    tu_http_free(&r);
}

Test(proxy, trace_control_changes_only_what_it_is_given, .init = setup, .fini = stop)
{
    char dir[64] = "/tmp/weft-px4.XXXXXX", file[96], now[512];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(file, sizeof file, "%s/t.jsonl", dir);
    tcfg = &(wf_trace_config){.file = file, .sample = 1};
    lcfg.trace_control = 1;
    start();
    trace_get("/trace", 200, now, sizeof now);
    cr_assert(strncmp(now, "sample=1;actors=;types=;", 24) == 0, "%s", now);
    trace_get("/trace?actors=cache", 200, now, sizeof now);
    cr_assert(strncmp(now, "sample=1;actors=cache;types=;", 29) == 0, "%s", now);
    trace_get("/trace?sample=0.5&types=1%2C2", 200, now, sizeof now);
    cr_assert(strncmp(now, "sample=0.5;actors=cache;types=1,2;", 34) == 0, "%s", now);
    trace_get("/trace?sample=half", 400, now, sizeof now);
    trace_get("/trace", 200, now, sizeof now);
    cr_assert(strncmp(now, "sample=0.5;actors=cache;types=1,2;", 34) == 0,
              "a refused change changes nothing: %s", now);
    stop();
    remove_dir(dir);
}

Test(proxy, trace_control_on_a_node_that_does_not_trace_is_a_conflict, .init = setup, .fini = stop)
{
    lcfg.trace_control = 1;
    start();
    tu_http r;
    cr_assert_eq(tu_http_get(http_port, "/trace", &r), 0);
    cr_assert_str_eq(r.body, "off\n");
    tu_http_free(&r);
    cr_assert_eq(tu_http_get(http_port, "/trace?sample=1", &r), 0);
    cr_assert_eq(r.status, 409, "%d %s", r.status, r.body);
    cr_assert(strstr(r.headers, "409 Conflict"), "%s", r.headers);
    tu_http_free(&r);
    cr_assert_eq(tu_http_get(http_port, "/metrics", &r), 0);
    cr_assert(strstr(r.body, "weft_http_requests_total{status=\"409\"} 1"), "%s", r.body);
    tu_http_free(&r);
}

/* A source whose poem changes with every fetch: "edition N" of it. */
#define EDITION_GET 0x54450001u

static wf_result edition_get(wf_ctx *ctx, wf_msg *m)
{
    unsigned *n = wf_ctx_state(ctx);
    char text[128];
    /* Every edition the same length: only the words tell them apart. */
    int len =
        snprintf(text, sizeof text, "Ozymandias\nedition %04u of <the> poem\nthe end\n", ++*n);
    return wf_result_msg(wf_msg_new(EDITION_GET, text, (size_t)len));
}

static const wf_handler edition_handlers[] = {{EDITION_GET, "get", edition_get, 0}};
static const wf_behaviour edition_behaviour = {.name = "editions",
                                               .state_size = sizeof(unsigned),
                                               .handlers = edition_handlers,
                                               .nhandlers = 1};

/* The edition a page shows (0 if none), checking it shows only one. */
static unsigned edition_of(const tu_http *r)
{
    const char *p = strstr(r->body, "edition ");
    cr_assert_not_null(p, "%s", r->body);
    cr_assert_null(strstr(p + 1, "edition "), "two editions on one page: %s", r->body);
    cr_assert(strstr(r->body, "of &lt;the&gt; poem"), "%s", r->body);
    return (unsigned)atoi(p + 8);
}

Test(proxy, a_refetched_poem_with_new_text_is_never_served_with_its_old_page, .fini = stop)
{
    base();
    /* Long enough for a miss and two hits under valgrind on a loaded
     * machine (300 ms was not), short enough for the refetch below. */
    ccfg = (wf_cache_config){.source = "editions", .fetch_type = EDITION_GET, .ttl_ms = 1000};
    memset(&px, 0, sizeof px);
    px.node = wf_node_new(&(wf_node_config){.name = "px"});
    cr_assert_eq(wf_spawn(px.node, "editions", &edition_behaviour, NULL, NULL), 0);
    cr_assert_eq(wf_cache_spawn(px.node, "cache", &ccfg, NULL), 0);
    cr_assert_eq(wf_renderer_spawn(px.node, "renderer", &rcfg, NULL), 0);
    cr_assert_eq(wf_listener_spawn(px.node, "listener", &lcfg, &px.listener), 0);
    wf_node_start(px.node);
    wf_result res =
        wf_node_call(px.node, px.listener, wf_msg_new(WF_LISTENER_PORTS, NULL, 0), 2000);
    cr_assert(wf_result_is_msg(res));
    http_port = ((const uint16_t *)wf_msg_body(res.u.ptr))[0];
    wf_result_free(res);

    /* The first edition: a miss, then hits made from its prepared page. */
    tu_http r;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tu_http_get(http_port, "/poems/ozymandias", &r), 0);
        cr_assert_eq(r.status, 200, "%s", r.body);
        cr_assert_str_eq(tu_http_header(&r, "X-Cache"), i == 0 ? "MISS" : "HIT");
        cr_assert_eq(edition_of(&r), 1);
        tu_http_free(&r);
    }
    /* Past the TTL the cache refetches: from the answer that brings the
     * second edition on, every page (hits included) shows it. */
    unsigned seen = 1;
    int after = 0;
    for (int i = 0; i < 200 && after < 5; i++) {
        cr_assert_eq(tu_http_get(http_port, "/poems/ozymandias", &r), 0);
        cr_assert_eq(r.status, 200, "%s", r.body);
        unsigned e = edition_of(&r);
        /* A MISS past the TTL is a refetch: a new edition. */
        if (strcmp(tu_http_header(&r, "X-Cache"), "MISS") == 0)
            cr_assert_gt(e, seen, "a refetch shows edition %u after edition %u", e, seen);
        cr_assert_geq(e, seen, "edition %u served after edition %u", e, seen);
        if (e > 1 && e == seen && strcmp(tu_http_header(&r, "X-Cache"), "HIT") == 0)
            after++;
        seen = e;
        tu_http_free(&r);
        if (seen == 1) {
            struct timespec ts = {0, 20 * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    cr_assert_geq(seen, 2, "the poem was never refetched");
    cr_assert_eq(after, 5, "no hits for the new edition");
}

/* A part of the service that is not there is the service's outage (503),
 * never an internal error (500), and the page and the log say which part. */
Test(proxy, a_part_that_cannot_be_reached_is_a_503_naming_it, .init = setup, .fini = stop)
{
    lcfg.cache = "cache@nowhere";
    lcfg.debug = 0;
    start();
    tu_http r;
    cr_assert_eq(tu_http_get(http_port, "/poems/ozymandias", &r), 0);
    cr_assert_eq(r.status, 503, "%s", r.body);
    cr_assert(strstr(r.body, "a part of this service is unavailable"), "%s", r.body);
    cr_assert_null(strstr(r.body, "nowhere"), "the page names no host outside --debug");
    tu_http_free(&r);
    cr_assert(strstr(tu_log_text(), "the cache (cache@nowhere) cannot be reached"), "%s",
              tu_log_text());
    /* /metrics still answers, without the cache's figures. */
    cr_assert_eq(tu_http_get(http_port, "/metrics", &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    tu_http_free(&r);
}

Test(proxy, a_cache_node_that_goes_away_is_a_5xx_naming_it, .init = setup, .fini = stop)
{
    char dir[64] = "/tmp/weft-px2.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    wf_node *nb = two_nodes(dir, false);
    end_node(nb);
    tu_http r;
    cr_assert_eq(tu_http_get(http_port, "/poems/ozymandias", &r), 0);
    cr_assert(r.status == 502 || r.status == 503, "%d %s", r.status, r.body);
    cr_assert(strstr(r.body, "node b went down") || strstr(r.body, "cache@b"), "%s", r.body);
    tu_http_free(&r);
    remove_dir(dir);
}
