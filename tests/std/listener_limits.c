/* The listener against clients that would hold it: stalled and trickled
 * bodies, connections that fill the limit and sit, clients that never read
 * their answers, clients that half-close, clients that close with answers
 * on the way. A real upstream poetry server and the four actors on a node
 * thread; raw sockets over loopback; every wait bounded. What the listener
 * did is read back from its /metrics. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>

#include <criterion/criterion.h>

#include <weft/cache.h>
#include <weft/fetcher.h>
#include <weft/listener.h>
#include <weft/renderer.h>

#include "http.h"
#include "proc.h"
#include "proxy.h"
#include "testutil.h"

TestSuite(listener_limits, .timeout = 120);

static tu_proc upstream;
static int http_port, poetry_port;
static wf_node *node;
static tu_proxy px;
static wf_fetcher_config fcfg;
static wf_cache_config ccfg;
static wf_renderer_config rcfg;
static wf_listener_config lcfg;
static char upstream_url[64];
static char poems[64];

/* Under valgrind everything is some ten times slower. */
static int slow(int ms)
{
    return getenv("WEFT_UNDER_VALGRIND") ? ms * 4 : ms;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void write_file(const char *name, const char *text, int times)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", poems, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < times; i++)
        fputs(text, f);
    fclose(f);
}

/* No SIGPIPE disposition is set here: the listener's own is under test. */
static void setup(void)
{
    tu_capture_log();
    snprintf(poems, sizeof poems, "/tmp/weft-limits.XXXXXX");
    cr_assert_not_null(mkdtemp(poems));
    write_file("ozymandias.txt", "Ozymandias\nI met a traveller from an antique land\n", 1);
    /* A long poem: its page is some 7 KB. Ozymandias is the first by
     * name: what the upstream sends a fetcher too slow to name its poem
     * (100 ms, under valgrind on a busy machine). */
    write_file("sonnet.txt", "Who said: two vast and trunkless legs of stone stand in the desert\n",
               100);
    const char *argv[] = {"--poems", poems, NULL};
    tu_poetry_start(&upstream, POETRY_SERVER, argv, upstream_url, sizeof upstream_url);
    fcfg = (wf_fetcher_config){.upstream = upstream_url, .send_name = 1};
    ccfg = (wf_cache_config){.source = "fetcher", .fetch_type = WF_FETCH_GET};
    rcfg = (wf_renderer_config){0};
    lcfg = (wf_listener_config){.http_addr = "127.0.0.1:0",
                                .poetry_addr = "127.0.0.1:0",
                                .poetry_default = "ozymandias",
                                .cache = "cache",
                                .renderer = "renderer"};
}

static void start(void)
{
    tu_proxy_start(&px, "lim", NULL, &fcfg, &ccfg, &rcfg, &lcfg);
    node = px.node;
    http_port = px.http_port;
    poetry_port = px.poetry_port;
}

static void stop(void)
{
    tu_proxy_stop(&px);
    node = NULL;
    tu_proc_kill(&upstream);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", poems);
    cr_assert_eq(system(cmd), 0);
}

/* The value of one series of /metrics ("name" or "name{labels}"); -1 if
 * the listener does not show it. */
static double metric(const char *series)
{
    tu_http r;
    cr_assert_eq(tu_http_get(http_port, "/metrics", &r), 0, "no /metrics");
    cr_assert_eq(r.status, 200, "/metrics: %d %s", r.status, r.body);
    double v = -1;
    size_t n = strlen(series);
    for (const char *p = r.body; p != NULL && *p;
         p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') {
            v = strtod(p + n + 1, NULL);
            break;
        }
    }
    tu_http_free(&r);
    return v;
}

/* Waits (up to ms) until series reaches at least want; returns its last value. */
static double wait_metric(const char *series, double want, int ms)
{
    long long end = now_ms() + ms;
    double v;
    while ((v = metric(series)) < want && now_ms() < end)
        tu_sleep_ms(50);
    return v;
}

/* Waits (up to ms) until series is want; returns its last value. */
static double wait_metric_eq(const char *series, double want, int ms)
{
    long long end = now_ms() + ms;
    double v;
    while ((v = metric(series)) != want && now_ms() < end)
        tu_sleep_ms(50);
    return v;
}

/* Wants one answer with status, then the end of the connection. */
static void expect_answer_then_close(int fd, int status, int ms, const char *what)
{
    tu_http r;
    cr_assert_eq(tu_http_read(fd, &r, ms), 0, "%s: no answer within %d ms", what, ms);
    cr_assert_eq(r.status, status, "%s: %d %s", what, r.status, r.body);
    tu_http_free(&r);
    char rest[64];
    cr_assert_eq(tu_read_all(fd, rest, sizeof rest, slow(3000)), 0, "%s: not closed", what);
}

static void expect_ok(const char *path)
{
    tu_http r;
    cr_assert_eq(tu_http_get(http_port, path, &r), 0, "no answer for %s", path);
    cr_assert_eq(r.status, 200, "%s: %d %s", path, r.status, r.body);
    tu_http_free(&r);
}

static const char stalled_head[] = "POST /poems/ozymandias HTTP/1.1\r\nHost: t\r\n"
                                   "Content-Length: 1\r\n\r\n";

Test(listener_limits, stalled_and_trickled_bodies_get_408, .init = setup, .fini = stop)
{
    lcfg.body_timeout_ms = (uint64_t)slow(800);
    lcfg.request_timeout_ms = (uint64_t)slow(2000);
    start();
    /* Complete headers, and the promised body never comes. */
    long long t0 = now_ms();
    int stalled = tu_http_connect(http_port);
    tu_http_send(stalled, stalled_head, sizeof stalled_head - 1);
    expect_answer_then_close(stalled, 408, slow(5000), "stalled body");
    cr_assert_lt(now_ms() - t0, slow(3000));
    close(stalled);
    /* A body that keeps coming, a byte at a time, never pausing long
     * enough for the body timeout: the whole-request deadline ends it. */
    int trickle = tu_http_connect(http_port);
    static const char head[] = "POST /poems/ozymandias HTTP/1.1\r\nHost: t\r\n"
                               "Content-Length: 1000\r\n\r\n";
    tu_http_send(trickle, head, sizeof head - 1);
    t0 = now_ms();
    struct pollfd p = {trickle, POLLIN, 0};
    for (int i = 0; i < 1000 && poll(&p, 1, 0) == 0 && now_ms() - t0 < slow(10000); i++) {
        tu_http_send(trickle, "x", 1);
        tu_sleep_ms(slow(100));
    }
    expect_answer_then_close(trickle, 408, slow(5000), "trickled body");
    cr_assert_lt(now_ms() - t0, slow(5000), "the request deadline did not hold");
    close(trickle);
    cr_assert_eq(metric("weft_http_timeouts_total{phase=\"body\"}"), 1);
    cr_assert_eq(metric("weft_http_timeouts_total{phase=\"request\"}"), 1);
    cr_assert_eq(metric("weft_http_requests_total{status=\"408\"}"), 2);
    cr_assert_eq(wait_metric_eq("weft_connections", 1, 2000), 1); /* the metrics request */
}

Test(listener_limits, a_full_house_of_stalled_clients_makes_room, .init = setup, .fini = stop)
{
    lcfg.max_connections = 4;
    start();
    /* Two stalled in their bodies, one in its headers, one that said
     * nothing: the limit is full. */
    int fd[4];
    for (int i = 0; i < 4; i++) {
        fd[i] = tu_http_connect(http_port);
        if (i < 2)
            tu_http_send(fd[i], stalled_head, sizeof stalled_head - 1);
        else if (i == 2)
            tu_http_send(fd[i], "GET /poems/ozy", 14);
        tu_sleep_ms(20);
    }
    tu_sleep_ms(1300); /* quiet for over a second */
    /* Well-behaved clients are served, and keep their connections: each
     * new one makes the stalest stalled connection give way. */
    int good[3];
    for (int i = 0; i < 3; i++) {
        good[i] = tu_http_connect(http_port);
        static const char get[] = "GET /poems/ozymandias HTTP/1.1\r\nHost: t\r\n\r\n";
        tu_http_send(good[i], get, sizeof get - 1);
        tu_http r;
        cr_assert_eq(tu_http_read(good[i], &r, 5000), 0, "client %d: no answer", i);
        cr_assert_eq(r.status, 200, "client %d: %d %s", i, r.status, r.body);
        tu_http_free(&r);
    }
    /* (The test's own /metrics requests need room too.) */
    for (int i = 0; i < 3; i++)
        close(good[i]);
    tu_sleep_ms(100);
    cr_assert_geq(metric("weft_connections_evicted_total"), 3);
    cr_assert_eq(metric("weft_http_requests_total{status=\"503\"}"), 0);
    /* The first one opened was the stalest: it is gone. */
    char buf[64];
    cr_assert_eq(tu_read_all(fd[0], buf, sizeof buf, 2000), 0);
    for (int i = 0; i < 4; i++)
        close(fd[i]);
}

Test(listener_limits, dribbling_clients_do_not_hold_the_limit, .init = setup, .fini = stop)
{
    lcfg.max_connections = 4;
    start();
    /* Slowloris: four clients fill the limit and keep sending a byte of
     * their headers every 50 ms, never quiet, never done. */
    static const char slow_head[] = "GET /poems/ozymandias HTTP/1.1\r\nX-Slow: ";
    int fd[4];
    for (int i = 0; i < 4; i++) {
        fd[i] = tu_http_connect(http_port);
        tu_http_send(fd[i], slow_head, sizeof slow_head - 1);
    }
    uint64_t t0 = now_ms();
    while (now_ms() - t0 < 600) {
        for (int i = 0; i < 4; i++)
            tu_http_send(fd[i], "X", 1);
        tu_sleep_ms(50);
    }
    /* A well-behaved client is served all the same: the dribblers'
     * requests are old, whatever their last byte. */
    int goods[2];
    for (int k = 0; k < 2; k++) {
        int good = goods[k] = tu_http_connect(http_port);
        static const char get[] = "GET /poems/ozymandias HTTP/1.1\r\nHost: t\r\n\r\n";
        tu_http_send(good, get, sizeof get - 1);
        for (int i = 0; i < 4; i++)
            send(fd[i], "X", 1, MSG_NOSIGNAL);
        tu_http r;
        cr_assert_eq(tu_http_read(good, &r, 5000), 0, "client %d: no answer", k);
        cr_assert_eq(r.status, 200, "client %d: %d %s", k, r.status, r.body);
        tu_http_free(&r);
    }
    double ev = metric("weft_connections_evicted_total");
    cr_assert_geq(ev, 2, "evicted %g, 400s %g, 408s %g", ev,
                  metric("weft_http_requests_total{status=\"400\"}"),
                  metric("weft_http_requests_total{status=\"408\"}"));
    cr_assert_eq(metric("weft_http_requests_total{status=\"503\"}"), 0);
    for (int i = 0; i < 4; i++)
        close(fd[i]);
    for (int k = 0; k < 2; k++)
        close(goods[k]);
}

/* Connects with a small receive buffer, so that answers back up at once. */
static int connect_small(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

/* Writes what the peer takes of data within ms; returns the bytes written. */
static size_t send_some(int fd, const char *data, size_t n, int ms)
{
    long long end = now_ms() + ms;
    size_t off = 0;
    while (off < n && now_ms() < end) {
        struct pollfd p = {fd, POLLOUT, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t w = send(fd, data + off, n - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0)
            break;
        off += (size_t)w;
    }
    return off;
}

Test(listener_limits, clients_that_never_read_hold_bounded_memory, .init = setup, .fini = stop)
{
    enum { NCONN = 4 };
    lcfg.max_output = 16384;
    lcfg.max_pipeline = 8;
    lcfg.write_timeout_ms = (uint64_t)slow(1500);
    start();
    expect_ok("/poems/sonnet"); /* in the cache: the answers come at once */
    /* 64 KB of pipelined requests on each, and not a byte read. */
    static const char one[] = "GET /poems/sonnet HTTP/1.1\r\nHost: t\r\n\r\n";
    size_t per = 65536 / (sizeof one - 1);
    char *reqs = malloc(per * (sizeof one - 1));
    cr_assert_not_null(reqs);
    for (size_t i = 0; i < per; i++)
        memcpy(reqs + i * (sizeof one - 1), one, sizeof one - 1);
    int fd[NCONN];
    size_t sent = 0;
    for (int i = 0; i < NCONN; i++) {
        fd[i] = connect_small(http_port);
        sent += send_some(fd[i], reqs, per * (sizeof one - 1), slow(1000));
    }
    free(reqs);
    cr_assert_gt(sent, NCONN * 16384, "the requests did not go out (%zu bytes)", sent);
    /* Reading stopped on each connection, with what they hold bounded: a
     * connection holds max_output plus at most max_pipeline answers (7 KB
     * each) and one read of requests. Without the bound, one read of 64 KB
     * is 1,700 answers, 12 MB. */
    cr_assert_geq(wait_metric("weft_http_reads_paused_total{cause=\"pipeline\"}", 1, slow(3000)) +
                      metric("weft_http_reads_paused_total{cause=\"output\"}"),
                  1);
    double peak_out = 0, peak_in = 0;
    for (int i = 0; i < 10; i++) {
        double o = metric("weft_output_held_bytes"), in = metric("weft_input_held_bytes");
        cr_assert_geq(o, 0, "no weft_output_held_bytes");
        peak_out = o > peak_out ? o : peak_out;
        peak_in = in > peak_in ? in : peak_in;
        tu_sleep_ms(50);
    }
    cr_log_info("never-reading clients: %zu bytes of requests sent, peak %g bytes of answers and "
                "%g of requests held",
                sent, peak_out, peak_in);
    cr_assert_leq(peak_out, NCONN * (16384 + 8 * 8192), "%g bytes of answers held", peak_out);
    cr_assert_leq(peak_in, NCONN * 65536, "%g bytes of requests held", peak_in);
    /* Meanwhile a client that reads is served at once. */
    expect_ok("/poems/ozymandias");
    /* Their writes make no progress: the write timeout closes them, and
     * every byte they held is given back. */
    cr_assert_geq(wait_metric("weft_http_timeouts_total{phase=\"write\"}", NCONN, slow(10000)),
                  NCONN);
    cr_assert_eq(metric("weft_output_held_bytes"), 0);
    cr_assert_eq(metric("weft_input_held_bytes"), 0);
    cr_assert_eq(metric("weft_connections"), 1);
    cr_assert_geq(metric("weft_answers_lost_total{port=\"http\"}"), NCONN);
    for (int i = 0; i < NCONN; i++)
        close(fd[i]);
}

/* Reads until the peer closes (up to ms). */
static size_t read_to_end(int fd, char *buf, size_t size, int ms)
{
    size_t n = tu_read_all(fd, buf, size - 1, ms);
    buf[n] = '\0';
    return n;
}

static int count(const char *s, const char *needle)
{
    int n = 0;
    for (; (s = strstr(s, needle)) != NULL; s++)
        n++;
    return n;
}

Test(listener_limits, half_closed_clients_get_their_answers, .init = setup, .fini = stop)
{
    start();
    static char buf[65536];
    /* Two pipelined requests, then shutdown of the write side (nc -N). */
    int fd = tu_http_connect(http_port);
    static const char two[] = "GET /poems/ozymandias HTTP/1.1\r\nHost: t\r\n\r\n"
                              "GET /poems/ozymandias HTTP/1.1\r\nHost: t\r\n\r\n";
    tu_http_send(fd, two, sizeof two - 1);
    shutdown(fd, SHUT_WR);
    read_to_end(fd, buf, sizeof buf, slow(5000));
    close(fd);
    cr_assert_eq(count(buf, "HTTP/1.1 200 OK"), 2, "%s", buf);
    cr_assert_eq(count(buf, "I met a traveller"), 2);
    /* An HTTP/1.0 client does the same. */
    fd = tu_http_connect(http_port);
    static const char old[] = "GET /poems/ozymandias HTTP/1.0\r\n\r\n";
    tu_http_send(fd, old, sizeof old - 1);
    shutdown(fd, SHUT_WR);
    read_to_end(fd, buf, sizeof buf, slow(5000));
    close(fd);
    cr_assert(strstr(buf, " 200 OK") && strstr(buf, "I met a traveller"), "%s", buf);
    /* The Twisted tutorial's client on the poetry port: nothing to say. */
    fd = tu_http_connect(poetry_port);
    shutdown(fd, SHUT_WR);
    read_to_end(fd, buf, sizeof buf, slow(5000));
    close(fd);
    cr_assert(strstr(buf, "I met a traveller"), "the poetry port sent: '%s'", buf);
    cr_assert_geq(metric("weft_half_closes_total{port=\"http\"}"), 1);
    cr_assert_eq(metric("weft_answers_lost_total{port=\"http\"}"), 0);
    cr_assert_eq(metric("weft_answers_lost_total{port=\"poetry\"}"), 0);
    cr_assert_eq(metric("weft_poetry_failed_total"), 0);
}

static void on_sigpipe(int sig)
{
    (void)sig;
}

Test(listener_limits, clients_gone_before_their_answers_do_not_kill_the_process, .init = setup,
     .fini = stop)
{
    /* A program that left SIGPIPE alone (Criterion's worker ignores it). */
    signal(SIGPIPE, SIG_DFL);
    start();
    struct sigaction sa;
    cr_assert_eq(sigaction(SIGPIPE, NULL, &sa), 0);
    cr_assert_eq(sa.sa_handler, SIG_IGN, "the listener did not ignore SIGPIPE");
    /* Pipelined requests, then gone: the answers meet a closed socket
     * (first ECONNRESET, then EPIPE, which raises SIGPIPE). */
    static char many[32 * 40];
    size_t n = 0;
    for (int i = 0; i < 32; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, "GET /poems/sonnet HTTP/1.1\r\n\r\n");
    for (int round = 0; round < 30; round++) {
        int fd = tu_http_connect(http_port);
        tu_http_send(fd, many, n);
        close(fd);
    }
    tu_sleep_ms(slow(500));
    expect_ok("/healthz");
    cr_assert_geq(wait_metric("weft_answers_lost_total{port=\"http\"}", 1, 2000), 1);
    cr_assert_eq(wait_metric_eq("weft_connections", 1, slow(3000)), 1);
    cr_assert_eq(wait_metric_eq("weft_output_held_bytes", 0, slow(3000)), 0);
}

Test(listener_limits, a_programs_own_sigpipe_handler_is_kept, .init = setup, .fini = stop)
{
    struct sigaction mine = {0}, now;
    mine.sa_handler = on_sigpipe;
    sigemptyset(&mine.sa_mask);
    cr_assert_eq(sigaction(SIGPIPE, &mine, NULL), 0);
    start();
    cr_assert_eq(sigaction(SIGPIPE, NULL, &now), 0);
    cr_assert_eq(now.sa_handler, on_sigpipe);
}

Test(listener_limits, refusals_414_and_501_are_counted, .init = setup, .fini = stop)
{
    start();
    static char longtarget[4096];
    int n = snprintf(longtarget, sizeof longtarget, "GET /poems/");
    memset(longtarget + n, 'a', 3000);
    n += 3000;
    n += snprintf(longtarget + n, sizeof longtarget - (size_t)n, " HTTP/1.1\r\nHost: t\r\n\r\n");
    int fd = tu_http_connect(http_port);
    tu_http_send(fd, longtarget, (size_t)n);
    expect_answer_then_close(fd, 414, 5000, "long target");
    close(fd);
    static const char gz[] =
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
    fd = tu_http_connect(http_port);
    tu_http_send(fd, gz, sizeof gz - 1);
    expect_answer_then_close(fd, 501, 5000, "gzip");
    close(fd);
    cr_assert_eq(metric("weft_http_requests_total{status=\"414\"}"), 1);
    cr_assert_eq(metric("weft_http_requests_total{status=\"501\"}"), 1);
    cr_assert_eq(metric("weft_poetry_failed_total"), 0);
}
