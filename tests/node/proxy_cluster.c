/* The caching poetry proxy spread over three weft-node processes by one
 * cluster file (front: listener and renderer; store: cache; fetch:
 * fetcher), in front of a real poetry-server: serving, coalescing across
 * nodes, a killed cache node answered for at once and recovered from
 * without a restart elsewhere, and a bad file refused before anything
 * starts. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "http.h"
#include "proc.h"
#include "proxy.h"

TestSuite(proxy_cluster, .timeout = 120);

static char dir[256], conf[300], upstream_url[64];
static tu_proc upstream, front, store, fetch;
static int http_port;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void write_conf(const char *extra)
{
    FILE *f = fopen(conf, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "# the proxy over three hosts\n"
            "secret = poems\n"
            "node front = ipc://%s/front\n"
            "node store = ipc://%s/store\n"
            "node fetch = ipc://%s/fetch\n"
            "actors front = listener renderer\n"
            "actors store = cache\n"
            "actors fetch = fetcher\n"
            "listener.http = 127.0.0.1:%d\n"
            "listener.deadline-ms = 5000\n"
            "listener.debug = yes\n"
            "fetcher.upstream = %s\n"
            "fetcher.send-name = yes\n"
            "heartbeat = 200\n"
            "peer-timeout = 1500\n"
            "%s",
            dir, dir, dir, http_port, upstream_url, extra ? extra : "");
    fclose(f);
}

static void start_node(tu_proc *p, const char *name)
{
    const char *argv[] = {WEFT_NODE, "--config", conf, "--name", name, NULL};
    tu_proc_start(p, (char *const *)argv);
    cr_assert_not_null(tu_proc_expect(p, "ready", 10000), "%s did not start:\n%s", name, p->log);
}

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    snprintf(dir, sizeof dir, "/tmp/weft-pxc.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(conf, sizeof conf, "%s/cluster.conf", dir);
    tu_poetry_start(&upstream, POETRY_SERVER, NULL, upstream_url, sizeof upstream_url);
    http_port = tu_free_port();
}

static void start_all(void)
{
    write_conf(NULL);
    start_node(&store, "store");
    start_node(&fetch, "fetch");
    start_node(&front, "front");
    cr_assert_not_null(tu_proc_expect(&front, "peer store up", 10000), "%s", front.log);
    cr_assert_not_null(tu_proc_expect(&store, "peer fetch up", 10000), "%s", store.log);
}

static void teardown(void)
{
    tu_proc_kill(&front);
    tu_proc_kill(&store);
    tu_proc_kill(&fetch);
    tu_proc_kill(&upstream);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

static int get(const char *path, tu_http *r)
{
    cr_assert_eq(tu_http_get(http_port, path, r), 0, "no whole answer for %s", path);
    return r->status;
}

/* GET path fails at once (under 1.5 s) with a 502 or 503 whose page
 * (debug) names node, the one that is gone. */
static void expect_fast_failure(const char *path, const char *node)
{
    tu_http r;
    long long t0 = now_ms();
    int st = get(path, &r);
    long long took = now_ms() - t0;
    cr_assert(st == 502 || st == 503, "%d %s", st, r.body);
    cr_assert(strstr(r.body, node), "the page (debug) names the node: %s", r.body);
    cr_assert_lt(took, 1500, "answered after %lld ms", took);
    tu_http_free(&r);
}

Test(proxy_cluster, three_nodes_serve_and_coalesce, .init = setup, .fini = teardown)
{
    start_all();
    tu_http r;
    cr_assert_eq(get("/poems/ozymandias", &r), 200, "%s\n%s", r.body, front.log);
    cr_assert_str_eq(tu_http_header(&r, "X-Cache"), "MISS");
    cr_assert(strstr(r.body, "King of Kings"), "%s", r.body);
    tu_http_free(&r);
    cr_assert_eq(get("/poems/ozymandias", &r), 200);
    cr_assert_str_eq(tu_http_header(&r, "X-Cache"), "HIT");
    tu_http_free(&r);
    /* Twenty at once for a poem nobody asked yet: one fetch, from the
     * fetch node, for all of them. */
    int fd[20];
    for (int i = 0; i < 20; i++) {
        fd[i] = tu_http_connect(http_port);
        static const char req[] = "GET /poems/the_tyger HTTP/1.1\r\nHost: t\r\n\r\n";
        tu_http_send(fd[i], req, sizeof req - 1);
    }
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(tu_http_read(fd[i], &r, 10000), 0, "request %d: no answer", i);
        cr_assert_eq(r.status, 200, "%d: %s", i, r.body);
        tu_http_free(&r);
        close(fd[i]);
    }
    cr_assert_eq(tu_poetry_served(&upstream, "the_tyger"), 1, "%s", upstream.log);
    cr_assert_eq(tu_poetry_served(&upstream, "ozymandias"), 1, "%s", upstream.log);
}

/* kill -9 of the cache's node: requests get a complete 5xx at once (far
 * within their 5 s deadline), naming the node; the front never stops
 * answering; the cache node started again is used again, the front never
 * restarted. */
Test(proxy_cluster, a_killed_cache_node_is_answered_for_and_recovered_from, .init = setup,
     .fini = teardown)
{
    start_all();
    tu_http r;
    cr_assert_eq(get("/poems/ozymandias", &r), 200, "%s", r.body);
    tu_http_free(&r);
    tu_proc_kill(&store);
    cr_assert_not_null(tu_proc_expect(&front, "peer store down", 5000), "%s", front.log);
    for (int i = 0; i < 5; i++)
        expect_fast_failure("/poems/the_tyger", "store");
    cr_assert_eq(get("/healthz", &r), 200);
    tu_http_free(&r);
    start_node(&store, "store");
    cr_assert_not_null(tu_proc_expect(&front, "peer store up", 10000), "%s", front.log);
    int st = 0;
    for (int i = 0; i < 100 && st != 200; i++) {
        st = get("/poems/the_tyger", &r);
        tu_http_free(&r);
        if (st != 200)
            tu_sleep_ms(50);
    }
    cr_assert_eq(st, 200, "%s", front.log);
}

/* A mistake in the file: weft-node names the file, the line and the
 * problem, and starts nothing. */
Test(proxy_cluster, a_bad_cluster_file_is_refused_with_its_line, .init = setup, .fini = teardown)
{
    static const struct {
        const char *extra, *want;
    } bad[] = {
        {"cache.ttl = 5\n", ":16: cache has no option ttl (it has: source ttl-ms"},
        {"cache.ttl-ms = soon\n", ":16: a whole number"},
        {"actors fetch = fetcher cache\n", ":16: a standard actor runs on one node only"},
        {"actors front = lisener\n", ":16: unknown actor"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_conf(bad[i].extra);
        const char *argv[] = {WEFT_NODE, "--config", conf, "--name", "front", NULL};
        tu_proc_start(&front, (char *const *)argv);
        cr_assert_not_null(tu_proc_expect(&front, bad[i].want, 5000), "%s: %s", bad[i].extra,
                           front.log);
        int status = tu_proc_stop(&front);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2, "%s: status %d", bad[i].extra,
                  status);
        cr_assert_null(strstr(front.log, "ready"), "%s", front.log);
    }
    /* A node the file does not name. */
    write_conf(NULL);
    const char *argv[] = {WEFT_NODE, "--config", conf, "--name", "nobody", NULL};
    tu_proc_start(&front, (char *const *)argv);
    cr_assert_not_null(tu_proc_expect(&front, "this node is not in the cluster", 5000), "%s",
                       front.log);
    tu_proc_stop(&front);
}

/* The fetch node dials the others (its name sorts first): killed, the
 * cache node cannot dial it back, and fails at once what it would send it;
 * cached poems are still served. */
Test(proxy_cluster, a_killed_fetch_node_leaves_the_cached_poems_and_fails_misses_at_once,
     .init = setup, .fini = teardown)
{
    start_all();
    tu_http r;
    cr_assert_eq(get("/poems/ozymandias", &r), 200, "%s", r.body);
    tu_http_free(&r);
    tu_proc_kill(&fetch);
    cr_assert_not_null(tu_proc_expect(&store, "peer fetch down", 5000), "%s", store.log);
    cr_assert_eq(get("/poems/ozymandias", &r), 200, "%s", r.body);
    cr_assert_str_eq(tu_http_header(&r, "X-Cache"), "HIT");
    tu_http_free(&r);
    expect_fast_failure("/poems/the_tyger", "fetch");
}
