/* tools/poetry/transform-server over a raw socket: the Twisted tutorial's
 * transform protocol byte for byte, several requests per connection, and
 * each way a request gets no answer (the connection closes). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "http.h"
#include "proc.h"

TestSuite(transform_server, .timeout = 60);

static tu_proc srv;
static int port;

static void start(const char *const *extra)
{
    const char *argv[16] = {TRANSFORM_SERVER, "--port", "0"};
    int n = 3;
    for (; extra && *extra; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    signal(SIGPIPE, SIG_IGN);
    tu_proc_start(&srv, (char *const *)argv);
    const char *l = tu_proc_expect(&srv, "listening on 127.0.0.1:", 20000);
    cr_assert_not_null(l, "%s", srv.log);
    port = atoi(strrchr(l, ':') + 1);
}

static void stop(void)
{
    tu_proc_kill(&srv);
}

/* Sends req on a new connection and expects exactly want back. */
static int ask(const char *req, const char *want)
{
    int fd = tu_http_connect(port);
    char got[256];
    tu_http_send(fd, req, strlen(req));
    size_t n = tu_read_n(fd, got, strlen(want), 5000);
    cr_assert_eq(n, strlen(want), "got %zu bytes \"%s\" for %s: %s", n, got, req, srv.log);
    cr_assert_str_eq(got, want);
    return fd;
}

Test(transform_server, the_tutorials_example_byte_for_byte, .fini = stop)
{
    start(NULL);
    /* twisted-server-1/transform-test sends exactly this. */
    int fd = ask("27:cummingsify.HERE IS MY POEM,", "15:here is my poem,");
    close(fd);
}

Test(transform_server, several_requests_per_connection_in_order, .fini = stop)
{
    start(NULL);
    int fd = tu_http_connect(port);
    /* Two at once and one split across writes, the empty poem included. */
    const char *two = "27:cummingsify.HERE IS MY POEM,8:upper.ab,";
    tu_http_send(fd, two, strlen(two));
    tu_http_send(fd, "12:cummin", 9);
    tu_sleep_ms(50);
    tu_http_send(fd, "gsify.,", 7);
    char got[128];
    const char *want = "15:here is my poem,2:AB,0:,";
    cr_assert_eq(tu_read_n(fd, got, strlen(want), 5000), strlen(want), "%s", got);
    cr_assert_str_eq(got, want);
    close(fd);
}

Test(transform_server, an_unknown_transform_or_no_dot_closes_without_a_reply, .fini = stop)
{
    start(NULL);
    int fd = tu_http_connect(port);
    tu_http_send(fd, "11:reverse.abc,", 15);
    cr_assert_eq(tu_wait_closed(fd, 5000), TU_CLOSED, "no reply, a close: %s", srv.log);
    close(fd);
    fd = tu_http_connect(port);
    tu_http_send(fd, "3:abc,", 6);
    cr_assert_eq(tu_wait_closed(fd, 5000), TU_CLOSED);
    close(fd);
    cr_assert_not_null(tu_proc_expect(&srv, "no such transform", 5000), "%s", srv.log);
}

Test(transform_server, a_malformed_or_oversized_length_closes, .fini = stop)
{
    const char *small[] = {"--max-bytes", "100", NULL};
    start(small);
    const char *bad[] = {"x:abc,", "01:a,", "-1:a,", " 3:abc,", "3:abcd", "101:"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int fd = tu_http_connect(port);
        tu_http_send(fd, bad[i], strlen(bad[i]));
        char got[64];
        cr_assert_eq(tu_read_all(fd, got, sizeof got, 5000), 0, "an answer to \"%s\": %s", bad[i],
                     got);
        close(fd);
    }
    /* The limit itself is still served. */
    char req[160], want[160];
    snprintf(req, sizeof req, "100:upper.%094d,", 0);
    snprintf(want, sizeof want, "94:%094d,", 0);
    close(ask(req, want));
    cr_assert_not_null(tu_proc_expect(&srv, "netstring too large", 5000), "%s", srv.log);
}

Test(transform_server, fail_every_k_closes_the_kth_request, .fini = stop)
{
    const char *fail3[] = {"--fail-every", "3", NULL};
    start(fail3);
    close(ask("8:upper.ab,", "2:AB,"));
    close(ask("8:upper.cd,", "2:CD,"));
    int fd = tu_http_connect(port);
    tu_http_send(fd, "8:upper.ef,", 11);
    cr_assert_eq(tu_wait_closed(fd, 5000), TU_CLOSED, "the 3rd request answered: %s", srv.log);
    close(fd);
    close(ask("8:upper.gh,", "2:GH,"));
}

Test(transform_server, a_silent_client_is_closed_and_slow_answers_wait, .fini = stop)
{
    const char *slow[] = {"--slow", "--delay-ms", "300", "--read-timeout-ms", "300", NULL};
    start(slow);
    int fd = tu_http_connect(port);
    tu_http_send(fd, "5:up", 4); /* never finished */
    cr_assert_eq(tu_wait_closed(fd, 5000), TU_CLOSED);
    close(fd);
    fd = tu_http_connect(port);
    tu_http_send(fd, "8:upper.ab,", 11);
    char got[16];
    cr_assert_eq(tu_read_n(fd, got, 5, 200), 0, "answered before --delay-ms");
    cr_assert_eq(tu_read_n(fd, got, 5, 5000), 5);
    cr_assert_str_eq(got, "2:AB,");
    close(fd);
}
