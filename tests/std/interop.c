/* examples/poetry_proxy as shipped, against servers that behave as the
 * Twisted tutorial's do (they never read: connect, receive the poem,
 * closed), fast and slow, and against one that cuts its poem with a reset:
 * every poem served whole, no cut poem ever a 200 or a cached page, and a
 * poetry-port client that gets no poem is told by a reset and logged. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <poll.h>

#include <criterion/criterion.h>

#include "http.h"
#include "proc.h"
#include "proxy.h"
#include "testutil.h"

TestSuite(interop, .timeout = 90);

static tu_proc up, proxy;
static int http_port, poetry_port;

/* poetry-server with extra, then the proxy with its defaults in front. */
static void start(const char *const *extra)
{
    char url[64], http[32], poetry[32];
    signal(SIGPIPE, SIG_IGN);
    tu_poetry_start(&up, POETRY_SERVER, extra, url, sizeof url);
    http_port = tu_free_port();
    poetry_port = tu_free_port();
    snprintf(http, sizeof http, "127.0.0.1:%d", http_port);
    snprintf(poetry, sizeof poetry, "127.0.0.1:%d", poetry_port);
    const char *argv[] = {POETRY_PROXY, "--upstream", url,    "--http",
                          http,         "--poetry",   poetry, NULL};
    tu_proc_start(&proxy, (char *const *)argv);
    cr_assert_not_null(tu_proc_expect(&proxy, "poetry proxy:", 20000), "%s", proxy.log);
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
