/* Hostile input to the caching poetry proxy's HTTP side, end to end: a
 * real upstream poetry server (serving a poem written to hurt), the four
 * actors on a node thread, raw requests over loopback. Each must get the
 * right status and a page that leaks nothing and escapes everything. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

TestSuite(hostile, .timeout = 60);

static tu_proc upstream;
static int http_port;
static wf_node *node;
static tu_proxy px;
static wf_fetcher_config fcfg;
static wf_cache_config ccfg;
static wf_renderer_config rcfg;
static wf_listener_config lcfg;
static char upstream_url[64];
static char poems[64];

/* Its first line is the page's title; every line is the page's poem. */
static const char hostile_poem[] = "<script>alert(\"t\" & 't')</script>\n"
                                   "Hide & \"seek\" <b>'here'</b>\n"
                                   "Ozymandias was here\n";

static void start_upstream(const char *const *extra)
{
    const char *argv[16] = {"--poems", poems};
    int n = 2;
    for (; extra && *extra && n < 15; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    tu_poetry_start(&upstream, POETRY_SERVER, argv, upstream_url, sizeof upstream_url);
}

/* A poems directory: the shipped ozymandias and the hostile poem. */
static void base(void)
{
    tu_capture_log();
    signal(SIGPIPE, SIG_IGN);
    snprintf(poems, sizeof poems, "/tmp/weft-hostile.XXXXXX");
    cr_assert_not_null(mkdtemp(poems));
    char path[128];
    snprintf(path, sizeof path, "%s/hostile.txt", poems);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(hostile_poem, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/ozymandias.txt", poems);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("Ozymandias\nI met a traveller from an antique land\n", f);
    fclose(f);
    fcfg = (wf_fetcher_config){.upstream = upstream_url, .send_name = 1};
    ccfg = (wf_cache_config){.source = "fetcher", .fetch_type = WF_FETCH_GET};
    rcfg = (wf_renderer_config){0};
    lcfg = (wf_listener_config){
        .http_addr = "127.0.0.1:0", .cache = "cache", .renderer = "renderer", .debug = 0};
}

static void setup(void)
{
    base();
    start_upstream(NULL);
}

static void start(void)
{
    tu_proxy_start(&px, "hx", NULL, &fcfg, &ccfg, &rcfg, &lcfg);
    node = px.node;
    http_port = px.http_port;
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

/* Sends request (len bytes) on a new connection; wants one answer with
 * status, then the connection closed with nothing more on it. */
static void expect_refused(const char *what, const char *request, size_t len, int status)
{
    int fd = tu_http_connect(http_port);
    tu_http_send(fd, request, len);
    tu_http r;
    cr_assert_eq(tu_http_read(fd, &r, 5000), 0, "%s: no complete answer", what);
    cr_assert_eq(r.status, status, "%s: %s%s", what, r.headers, r.body);
    cr_assert_str_eq(tu_http_header(&r, "Connection"), "close", "%s", what);
    tu_http_free(&r);
    char rest[256];
    size_t n = tu_read_all(fd, rest, sizeof rest - 1, 3000);
    rest[n] = '\0';
    cr_assert_eq(n, 0, "%s: the connection was closed after its answer, not: %s", what, rest);
    close(fd);
}

#define REFUSED(what, req, status) expect_refused(what, req, sizeof req - 1, status)

Test(hostile, framing_the_parser_would_tolerate_is_refused, .init = setup, .fini = stop)
{
    start();
    /* Each of these would let a front proxy and this server see different
     * requests in the same bytes (RFC 9112 5.1, 5.2, 2.2, 6.1, 6.3). */
    REFUSED("space before colon",
            "GET /poems/ozymandias HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n"
            "0\r\n\r\n",
            400);
    REFUSED("obs-fold", "GET /poems/ozymandias HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n", 400);
    REFUSED("bare LF", "GET /poems/ozymandias HTTP/1.1\nHost: t\n\n", 400);
    REFUSED("control character", "GET /poems/ozymandias HTTP/1.1\r\nHost: t\x01\r\n\r\n", 400);
    REFUSED("length and chunked",
            "POST /poems/x HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            "0\r\n\r\n",
            400);
    REFUSED("two lengths",
            "POST /poems/x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400);
    REFUSED("gzip then chunked",
            "POST /poems/x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501);
    REFUSED("gzip alone", "POST /poems/x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nab", 400);
    char longer[4096] = "GET /poems/";
    memset(longer + 11, 'a', 3000);
    strcpy(longer + 3011, " HTTP/1.1\r\nHost: t\r\n\r\n");
    expect_refused("long target", longer, strlen(longer), 414);
    /* A chunked request is the last on its connection: what follows its
     * body is never read as a request. Its chunk lines are read strictly:
     * libhttp-parser would take any two bytes after a chunk's data for its
     * CRLF, and junk after a chunk size. */
    REFUSED("smuggled after chunks",
            "POST /poems/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            "3\r\nabc\r\n0\r\n\r\nGET /poems/ozymandias HTTP/1.1\r\nHost: t\r\n\r\n",
            405);
    REFUSED("chunk data longer than its size",
            "POST /poems/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            "3\r\nabcXY0\r\n\r\nGET /poems/ozymandias HTTP/1.1\r\nHost: t\r\n\r\n",
            400);
    REFUSED("junk after a chunk size",
            "POST /poems/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            "5 x\r\nhello\r\n0\r\n\r\n",
            400);
    /* The server is fine afterwards. */
    tu_http r;
    cr_assert_eq(tu_http_get(http_port, "/poems/ozymandias", &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    tu_http_free(&r);
}

Test(hostile, bad_poem_names_are_the_clients_error, .init = setup, .fini = stop)
{
    start();
    static const struct {
        const char *path;
        int status;
    } cases[] = {
        /* Malformed: 400. */
        {"/poems/%00", 400},
        {"/poems/ozymandias%00.txt", 400},
        {"/poems/%0a", 400},
        {"/poems/%7f", 400},
        {"/poems/%zz", 400},
        {"/poems/abc%4", 400},
        {"/poems/%ff", 400},
        {"/poems/%c3%28", 400},
        {"/poems/%c0%af", 400},       /* an overlong '/' */
        {"/poems/%ed%a0%80", 400},    /* a surrogate */
        {"/poems/%f4%90%80%80", 400}, /* past U+10FFFF */
        {"/poems/%e2%82", 400},       /* cut short */
        {"/poems/\xc3\x28", 400},
        /* Well-formed, but no poem can be called that: 404. */
        {"/poems/..", 404},
        {"/poems/.", 404},
        {"/poems/%2e%2e", 404},
        {"/poems/%2E%2E%2Fetc%2Fpasswd", 404},
        {"/poems/../../etc/passwd", 404},
        {"/poems/a/b", 404},
        {"/poems/a%2fb", 404},
        {"/poems/a%5cb", 404},
        {"/poems/a\\b", 404},
        {"/poems/.hidden", 404},
        {"/poems/caf%c3%a9", 404},
        {"/poems/a%20b", 404},
        {"/poems/", 404},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tu_http r;
        cr_assert_eq(tu_http_get(http_port, cases[i].path, &r), 0, "%s", cases[i].path);
        cr_assert_eq(r.status, cases[i].status, "%s: %d %s", cases[i].path, r.status, r.body);
        tu_http_free(&r);
    }
    /* A name is percent-decoded once. */
    tu_http r;
    cr_assert_eq(tu_http_get(http_port, "/poems/ozym%61ndias", &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    tu_http_free(&r);
    cr_assert_eq(tu_http_get(http_port, "/poems/ozym%2561ndias", &r), 0);
    cr_assert_eq(r.status, 404, "decoded once only: %s", r.body);
    tu_http_free(&r);
}

/* Fails the test if body shows anything of the failure beyond its id. */
static void expect_no_internals(const char *what, const tu_http *r)
{
    static const char *leaks[] = {"127.0.0.1", "@hx", "fetcher", "cache",   "raised at",
                                  "handler",   ".c:", "WF_E",    "refused", "timed out"};
    for (size_t i = 0; i < sizeof leaks / sizeof leaks[0]; i++)
        cr_assert_null(strstr(r->body, leaks[i]), "%s: the page shows \"%s\":\n%s", what, leaks[i],
                       r->body);
    cr_assert(strstr(r->body, "Failure id"), "%s: the id is kept:\n%s", what, r->body);
}

Test(hostile, error_pages_show_the_trace_only_in_debug_mode, .init = setup, .fini = stop)
{
    tu_proc_kill(&upstream); /* nothing listens there any more */
    start();
    tu_http r;
    cr_assert_eq(tu_http_get(http_port, "/poems/ozymandias", &r), 0);
    cr_assert_eq(r.status, 502, "%s", r.body);
    expect_no_internals("502", &r);
    /* The id on the page finds the failure in the log. */
    const char *id = strstr(r.body, "<code>");
    cr_assert_not_null(id, "%s", r.body);
    char want[64];
    snprintf(want, sizeof want, "request %.16s for /poems/ozymandias", id + 6);
    cr_assert(strstr(tu_log_text(), want), "%s not in the log:\n%s", want, tu_log_text());
    tu_http_free(&r);
    stop();

    base();
    start_upstream(NULL);
    tu_proc_kill(&upstream);
    lcfg.debug = 1;
    start();
    cr_assert_eq(tu_http_get(http_port, "/poems/ozymandias", &r), 0);
    cr_assert_eq(r.status, 502, "%s", r.body);
    cr_assert(strstr(r.body, "connection refused") && strstr(r.body, "handler fetch [fetcher@hx]"),
              "debug mode shows the trace:\n%s", r.body);
    tu_http_free(&r);
}

Test(hostile, a_deadline_page_shows_no_trace_without_debug, .fini = stop)
{
    base();
    const char *slow[] = {"--slow", "--delay-ms", "200", "--chunk", "10", NULL};
    start_upstream(slow);
    lcfg.deadline_ms = 300;
    start();
    tu_http r;
    cr_assert_eq(tu_http_get(http_port, "/poems/ozymandias", &r), 0);
    cr_assert_eq(r.status, 504, "%s", r.body);
    expect_no_internals("504", &r);
    tu_http_free(&r);
}

/* Fails the test if body holds any of the hostile characters unescaped
 * (the page's own markup aside: looks for the hostile words). */
static void expect_escaped(const char *what, const char *body)
{
    static const char *raw[] = {"<script>", "alert(\"", "'t'", "& '", "\"seek\"", "<b>", "& \""};
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++)
        cr_assert_null(strstr(body, raw[i]), "%s: \"%s\" unescaped:\n%s", what, raw[i], body);
}

Test(hostile, every_value_on_every_page_is_escaped, .init = setup, .fini = stop)
{
    start();
    tu_http r;
    cr_assert_eq(tu_http_get(http_port, "/poems/hostile", &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    expect_escaped("poem", r.body);
    cr_assert(strstr(r.body, "<title>&lt;script&gt;alert(&quot;t&quot; &amp; &#39;t&#39;)"),
              "the title escaped:\n%s", r.body);
    cr_assert(strstr(r.body, "Hide &amp; &quot;seek&quot; &lt;b&gt;&#39;here&#39;&lt;/b&gt;"),
              "the poem escaped:\n%s", r.body);
    tu_http_free(&r);
    /* Names: raw and percent-encoded, whatever page answers them. */
    const char *names[] = {"/poems/<script>alert(\"t\"&'t')</script>",
                           "/poems/%3Cscript%3Ealert(%22t%22%26%27t%27)%3C%2Fscript%3E",
                           "/<script>alert(\"t\"&'t')</script>", "/poems/<b>%ff"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        cr_assert_eq(tu_http_get(http_port, names[i], &r), 0, "%s", names[i]);
        cr_assert(r.status == 400 || r.status == 404, "%s: %d", names[i], r.status);
        expect_escaped(names[i], r.body);
        tu_http_free(&r);
    }
    /* In debug mode the failure's message and trace are shown: escaped. */
    stop();
    base();
    start_upstream(NULL);
    lcfg.debug = 1;
    lcfg.allow_faults = 1;
    start();
    cr_assert_eq(tu_http_get(http_port, "/poems/hostile?fault=render_before", &r), 0);
    cr_assert_eq(r.status, 500, "%s", r.body);
    cr_assert(strstr(r.body, "renderer failed before rendering"), "%s", r.body);
    expect_escaped("debug page", r.body);
    tu_http_free(&r);
}
