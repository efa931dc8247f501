/* examples/poetry_proxy as shipped, against servers that behave as the
 * Twisted tutorial's do (they never read: connect, receive the poem,
 * closed), fast and slow, and against one that cuts its poem with a reset:
 * every poem served whole, no cut poem ever a 200 or a cached page, and a
 * poetry-port client that gets no poem is told by a reset and logged.
 * Against one that trickles its poem forever: --deadline-ms answers 504 at
 * the budget, and clients that hang up cancel the fetch made for them,
 * whose upstream connection closes. */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <poll.h>

#include <criterion/criterion.h>

#include "http.h"
#include "proc.h"
#include "proxy.h"
#include "testutil.h"

TestSuite(interop, .timeout = 90);

static tu_proc up, proxy;
static int up_port, http_port, poetry_port;

/* poetry-server with extra, then the proxy in front, with its defaults and
 * proxy_extra. */
static void start_with(const char *const *extra, const char *const *proxy_extra)
{
    char url[64], http[32], poetry[32];
    signal(SIGPIPE, SIG_IGN);
    tu_poetry_start(&up, POETRY_SERVER, extra, url, sizeof url);
    up_port = atoi(strrchr(url, ':') + 1);
    http_port = tu_free_port();
    poetry_port = tu_free_port();
    snprintf(http, sizeof http, "127.0.0.1:%d", http_port);
    snprintf(poetry, sizeof poetry, "127.0.0.1:%d", poetry_port);
    const char *argv[16] = {POETRY_PROXY, "--upstream", url,    "--http",
                            http,         "--poetry",   poetry, NULL};
    for (size_t k = 7; proxy_extra != NULL && *proxy_extra != NULL && k < 15; proxy_extra++)
        argv[k++] = *proxy_extra;
    tu_proc_start(&proxy, (char *const *)argv);
    cr_assert_not_null(tu_proc_expect(&proxy, "poetry proxy:", 20000), "%s", proxy.log);
}

static void start(const char *const *extra)
{
    start_with(extra, NULL);
}

static void stop(void)
{
    tu_proc_kill(&proxy);
    tu_proc_kill(&up);
}

/* GET /poems/NAME: its status, and whether the cache said HIT. */
static int get(const char *name, bool *hit, char *body, size_t size)
{
    char path[128];
    tu_http r;
    snprintf(path, sizeof path, "/poems/%s", name);
    cr_assert_eq(tu_http_get(http_port, path, &r), 0, "no whole answer for %s: %s", path,
                 proxy.log);
    *hit = strcmp(tu_http_header(&r, "X-Cache"), "HIT") == 0;
    if (body != NULL)
        snprintf(body, size, "%s", r.body);
    int status = r.status;
    tu_http_free(&r);
    return status;
}

/* Each name a miss, so each a fetch from the server. */
static void every_poem_whole(int n)
{
    char name[32], body[16384];
    bool hit;
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "poem_%d", i);
        cr_assert_eq(get(name, &hit, body, sizeof body), 200, "request %d: %s\n%s", i, body,
                     up.log);
        cr_assert(strstr(body, "Continuous as the stars that shine") != NULL,
                  "request %d: not the whole poem", i);
        cr_assert(strstr(body, "And dances with the daffodils.") != NULL,
                  "request %d: not the whole poem", i);
    }
}

Test(interop, a_fast_server_that_never_reads, .fini = stop)
{
    const char *never[] = {"--never-read", NULL};
    start(never);
    every_poem_whole(40);
}

Test(interop, a_slow_server_that_never_reads, .fini = stop)
{
    /* slowpoetry.py's way: a few bytes, a pause, until the poem is out. */
    const char *never[] = {"--never-read", "--slow", "--chunk", "64", "--delay-ms", "2", NULL};
    start(never);
    every_poem_whole(15);
}

Test(interop, a_poem_cut_by_a_reset_is_never_a_200_nor_cached, .fini = stop)
{
    const char *cut[] = {"--never-read", "--reset-after", "300", NULL};
    start(cut);
    char name[32], body[4096];
    bool hit;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 30; i++) {
            snprintf(name, sizeof name, "poem_%d", i);
            int status = get(name, &hit, body, sizeof body);
            cr_assert_neq(status, 200, "round %d, request %d: a cut poem served: %s", round, i,
                          body);
            cr_assert_not(hit, "round %d, request %d: a failure came from the cache", round, i);
            cr_assert_eq(status, 502, "round %d, request %d: %s", round, i, body);
        }
    }

    /* The poetry port: no poem, so a reset, a log line and a count. */
    int fd = tu_http_connect(poetry_port);
    char b[1024];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 10000), 1, "the poetry port never answered");
    ssize_t got = read(fd, b, sizeof b);
    cr_assert(got < 0 && errno == ECONNRESET, "a failure read as %zd bytes of poem", got);
    close(fd);
    cr_assert_not_null(tu_proc_expect(&proxy, "poetry-port client got no poem (reset)", 5000), "%s",
                       proxy.log);
    tu_http r;
    cr_assert_eq(tu_http_get(http_port, "/metrics", &r), 0);
    cr_assert(strstr(r.body, "weft_poetry_failed_total 1\n") != NULL, "%s", r.body);
    tu_http_free(&r);
}

/* An upstream that sends a byte every 200 ms: a poem that takes minutes,
 * and a connection never idle long enough for the fetcher's idle timeout. */
static const char *const trickle[] = {"--never-read", "--slow", "--chunk", "1",
                                      "--delay-ms",   "200",    NULL};

/* Connections to the upstream's port in state ESTABLISHED on its side:
 * the proxy's upstream connections still open (/proc/net/tcp, loopback). */
static int upstream_conns(void)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    cr_assert_not_null(f);
    char line[512];
    int n = 0;
    unsigned port, state;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, " %*d: %*8x:%4x %*8x:%*4x %2x", &port, &state) == 2 &&
            port == (unsigned)up_port && state == 0x01)
            n++;
    fclose(f);
    return n;
}

static bool upstream_conns_reach(int want, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        if (upstream_conns() == want)
            return true;
        tu_sleep_ms(20);
    }
    return upstream_conns() == want;
}

/* The value of a /metrics line (without labels), or -1. */
static long metric(const char *name)
{
    tu_http r;
    cr_assert_eq(tu_http_get(http_port, "/metrics", &r), 0);
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = strstr(r.body, key);
    long v = p != NULL ? atol(p + strlen(key)) : -1;
    tu_http_free(&r);
    return v;
}

static bool metric_reaches(const char *name, long want, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        if (metric(name) == want)
            return true;
        tu_sleep_ms(20);
    }
    return metric(name) == want;
}

static double now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec * 1e3 + tv.tv_usec / 1e3;
}

Test(interop, the_deadline_option_answers_504_at_the_budget_and_frees_the_upstream, .fini = stop)
{
    const char *deadline[] = {"--deadline-ms", "800", NULL};
    start_with(trickle, deadline);
    double t0 = now_ms();
    tu_http r;
    cr_assert_eq(tu_http_get(http_port, "/poems/trickled", &r), 0, "%s", proxy.log);
    double ms = now_ms() - t0;
    cr_assert_eq(r.status, 504, "%d: %s", r.status, r.body);
    tu_http_free(&r);
    cr_assert_geq(ms, 700.0, "504 after %.0f ms, before the budget", ms);
    cr_assert_lt(ms, 3000.0, "504 after %.0f ms: not the 800 ms budget", ms);
    cr_assert(upstream_conns_reach(0, 3000), "the fetch outlived its budget: %d open",
              upstream_conns());
}

/* Five clients ask for one poem (one coalesced fetch), over HTTP or on the
 * poetry port, then hang up: hang is how each leaves. */
static void clients_hang_up(bool poetry, void (*hang)(int fd))
{
    enum { CLIENTS = 5 };
    int fds[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        fds[i] = tu_http_connect(poetry ? poetry_port : http_port);
        const char req[] = "GET /poems/trickled HTTP/1.1\r\nHost: x\r\n\r\n";
        if (!poetry)
            tu_http_send(fds[i], req, sizeof req - 1);
    }
    cr_assert(upstream_conns_reach(1, 5000), "no single upstream fetch: %d", upstream_conns());
    cr_assert(metric_reaches("weft_cache_waiters_cancelled_total", 0, 100));
    for (int i = 0; i < CLIENTS; i++)
        hang(fds[i]);
    cr_assert(metric_reaches("weft_requests_abandoned_total", CLIENTS, 5000), "abandoned: %ld",
              metric("weft_requests_abandoned_total"));
    cr_assert(metric_reaches("weft_cache_waiters_cancelled_total", CLIENTS, 5000),
              "waiters cancelled: %ld", metric("weft_cache_waiters_cancelled_total"));
    cr_assert(metric_reaches("weft_upstream_fetches_cancelled_total", 1, 5000),
              "fetches cancelled: %ld", metric("weft_upstream_fetches_cancelled_total"));
    cr_assert(upstream_conns_reach(0, 5000), "the upstream connection stayed open: %d",
              upstream_conns());
}

static void reset_close(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

static void plain_close(int fd)
{
    close(fd);
}

Test(interop, clients_that_reset_mid_request_cancel_the_fetch_made_for_them, .fini = stop)
{
    start_with(trickle, NULL);
    clients_hang_up(false, reset_close);
}

Test(interop, poetry_port_clients_that_reset_cancel_the_fetch_made_for_them, .fini = stop)
{
    start_with(trickle, NULL);
    clients_hang_up(true, reset_close);
}

Test(interop, with_fin_abandons_clients_that_close_mid_request_cancel_the_fetch, .fini = stop)
{
    const char *fin[] = {"--fin-abandons", NULL};
    start_with(trickle, fin);
    clients_hang_up(false, plain_close);
}

Test(interop, with_fin_abandons_poetry_port_clients_that_close_cancel_the_fetch, .fini = stop)
{
    const char *fin[] = {"--fin-abandons", NULL};
    start_with(trickle, fin);
    clients_hang_up(true, plain_close);
}

Test(interop, without_fin_abandons_a_half_closed_client_keeps_its_fetch, .fini = stop)
{
    start_with(trickle, NULL);
    int fd = tu_http_connect(http_port);
    const char req[] = "GET /poems/trickled HTTP/1.1\r\nHost: x\r\n\r\n";
    tu_http_send(fd, req, sizeof req - 1);
    cr_assert(upstream_conns_reach(1, 5000));
    shutdown(fd, SHUT_WR);
    tu_sleep_ms(500);
    cr_assert_eq(upstream_conns(), 1, "a half-close is not a hang-up");
    cr_assert_eq(metric("weft_requests_abandoned_total"), 0);
    close(fd);
}
