/* weft-view --live: a publisher here (nng pub0 on an ipc:// path, as a
 * tracing node's PUB sink) sends the fixture's lines, some batched several
 * to a message as older nodes did; weft-view subscribes, collects for a
 * second and counts them, or with --follow prints rows as they come. Then
 * a real node's stream: binary chunks from its trace writer. */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <weft/transport.h>
#include <weft/weft.h>

#include "proc.h"
#include "testutil.h"

typedef struct publisher {
    nng_socket sock;
    char dir[64];
    char url[128];
    atomic_int pipes;
} publisher;

TestSuite(live, .timeout = 60);

static void on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    publisher *pub = arg;
    (void)p;
    (void)ev;
    atomic_fetch_add(&pub->pipes, 1);
}

static void publisher_start(publisher *pub)
{
    memset(pub, 0, sizeof *pub);
    strcpy(pub->dir, "/tmp/weft-view-live.XXXXXX");
    cr_assert_not_null(mkdtemp(pub->dir));
    snprintf(pub->url, sizeof pub->url, "ipc://%s/trace.ipc", pub->dir);
    cr_assert_eq(nng_pub0_open(&pub->sock), 0);
    /* pub0 drops a subscriber's oldest messages past its queue (16 by
     * default); the tests send in bursts. */
    cr_assert_eq(nng_socket_set_int(pub->sock, NNG_OPT_SENDBUF, 1024), 0);
    cr_assert_eq(nng_pipe_notify(pub->sock, NNG_PIPE_EV_ADD_POST, on_pipe, pub), 0);
    cr_assert_eq(nng_listen(pub->sock, pub->url, NULL, 0), 0);
}

/* Waits until a subscriber is connected: PUB drops what it sends before. */
static void publisher_wait(publisher *pub)
{
    for (int i = 0; i < 1000 && atomic_load(&pub->pipes) == 0; i++)
        tu_sleep_ms(10);
    cr_assert_gt(atomic_load(&pub->pipes), 0, "weft-view did not connect");
    tu_sleep_ms(50);
}

static void publisher_send(publisher *pub, const char *text)
{
    cr_assert_eq(nng_send(pub->sock, (void *)text, strlen(text), 0), 0);
}

static void publisher_stop(publisher *pub)
{
    char path[160];
    nng_close(pub->sock);
    snprintf(path, sizeof path, "%s/trace.ipc", pub->dir);
    unlink(path);
    rmdir(pub->dir);
}

/* The lines of a fixture file, concatenated with their newlines. */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    int c;
    while ((c = fgetc(f)) != EOF)
        fputc(c, out);
    fclose(out);
    fclose(f);
    return text;
}

/* Sends every line of text: in batches of up to batch lines a message. */
static size_t send_lines(publisher *pub, const char *text, int batch)
{
    size_t lines = 0;
    const char *p = text;
    while (*p) {
        const char *end = p;
        for (int k = 0; k < batch && *end; k++) {
            end = strchr(end, '\n');
            end = end ? end + 1 : p + strlen(p);
            lines++;
        }
        char *msg = strndup(p, (size_t)(end - p));
        publisher_send(pub, msg);
        free(msg);
        p = end;
    }
    return lines;
}

Test(live, collects_for_the_time_given_then_renders)
{
    publisher pub;
    publisher_start(&pub);
    tu_proc p;
    char *argv[] = {WEFT_VIEW, "--live", pub.url, "--seconds", "1.5", "--summary", NULL};
    tu_proc_start(&p, argv);
    publisher_wait(&pub);
    char *front = read_file(FIXTURES "/proxy/front.jsonl");
    char *back = read_file(FIXTURES "/proxy/back.jsonl");
    size_t n = send_lines(&pub, front, 5);
    n += send_lines(&pub, back, 1);
    cr_assert_eq(n, 45);
    publisher_send(&pub, "{\"ev\":\"send\",\"node\":\"front\",\"seq\":\"broken\"}\n");
    cr_assert_not_null(tu_proc_expect(&p, "skipped: \"seq\" has the wrong type", 5000),
                       "the bad line is reported: %s", p.log);
    cr_assert(strstr(p.log, "ipc://"), "named by its URL: %s", p.log);
    cr_assert_not_null(tu_proc_expect(&p, "  events: 45", 10000), "%s", p.log);
    cr_assert_not_null(tu_proc_expect(&p, "  traces: 2 (1 failed)", 1000), "%s", p.log);
    cr_assert_not_null(tu_proc_expect(&p, "  skipped lines: 1", 1000), "%s", p.log);
    cr_assert_not_null(tu_proc_expect(&p, "clock correction of back: +40.000 ms", 1000), "%s",
                       p.log);
    int status = tu_proc_stop(&p);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d: %s", status, p.log);
    free(front);
    free(back);
    publisher_stop(&pub);
}

Test(live, follow_prints_rows_as_they_arrive)
{
    publisher pub;
    publisher_start(&pub);
    tu_proc p;
    char *argv[] = {WEFT_VIEW,   "--live",     pub.url,   "--follow", "--seconds", "20",
                    "--summary", "--no-color", "--width", "140",      NULL};
    tu_proc_start(&p, argv);
    publisher_wait(&pub);
    char *front = read_file(FIXTURES "/proxy/front.jsonl");
    char *back = read_file(FIXTURES "/proxy/back.jsonl");
    /* front first: its rows come before back has said anything. */
    send_lines(&pub, front, 3);
    cr_assert_not_null(tu_proc_expect(&p, "fired ask cache.get ⟲ 32.830 ms", 10000), "%s", p.log);
    cr_assert_null(strstr(p.log, "recv from cache@front"), "back has said nothing: %s", p.log);
    send_lines(&pub, back, 2);
    /* back's rows come later, as they arrive. */
    cr_assert_not_null(tu_proc_expect(&p, "recv from cache@front", 10000), "%s", p.log);
    cr_assert_not_null(tu_proc_expect(&p, "✗ WF_EUPSTREAM", 10000), "%s", p.log);
    /* SIGINT ends it cleanly, with the summary of everything it saw. */
    kill(p.pid, SIGINT);
    cr_assert_not_null(tu_proc_expect(&p, "  events: 45", 10000), "%s", p.log);
    int status = tu_proc_stop(&p);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d: %s", status, p.log);
    free(front);
    free(back);
    publisher_stop(&pub);
}

Test(live, a_url_nng_cannot_dial_is_an_error)
{
    tu_proc p;
    char *argv[] = {WEFT_VIEW, "--live", "nosuch://x", "--seconds", "0.2", NULL};
    tu_proc_start(&p, argv);
    cr_assert_not_null(tu_proc_expect(&p, "cannot subscribe to nosuch://x", 5000), "%s", p.log);
    int status = tu_proc_stop(&p);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %d: %s", status, p.log);
}

Test(live, no_node_yet_is_no_events)
{
    tu_proc p;
    char *argv[] = {WEFT_VIEW,   "--live", "ipc:///tmp/weft-view-nobody-listens.ipc",
                    "--seconds", "0.3",    "--summary",
                    NULL};
    tu_proc_start(&p, argv);
    cr_assert_not_null(tu_proc_expect(&p, "  events: 0", 5000), "%s", p.log);
    int status = tu_proc_stop(&p);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d: %s", status, p.log);
}

static wf_result live_echo(wf_ctx *ctx, wf_msg *m)
{
    return wf_result_msg(wf_msg_new(2, "live!", 5));
}

Test(live, a_nodes_binary_chunks_are_decoded_as_they_come)
{
    char dir[] = "/tmp/weft-view-node.XXXXXX", url[128];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(url, sizeof url, "ipc://%s/trace.ipc", dir);
    static const wf_handler h[] = {{1, "echo", live_echo, 0}};
    static const wf_behaviour echo = {.name = "echo", .handlers = h, .nhandlers = 1};
    wf_node *n = wf_node_new(&(wf_node_config){.name = "livenode"});
    wf_pid e;
    cr_assert_eq(wf_spawn(n, "echo", &echo, NULL, &e), 0);
    cr_assert_eq(wf_transport_trace_start(n, &(wf_trace_config){.pub_url = url, .sample = 1}), 0);
    cr_assert_eq(wf_node_start(n), 0);
    tu_proc p;
    char *argv[] = {WEFT_VIEW, "--live", url, "--seconds", "3", "--summary", NULL};
    tu_proc_start(&p, argv);
    /* PUB drops what is sent before the viewer joins: ask on for a while. */
    for (int i = 0; i < 40; i++) {
        wf_result r = wf_node_call(n, e, wf_msg_new(1, "ping", 4), 2000);
        cr_assert(wf_result_is_msg(r));
        wf_result_free(r);
        tu_sleep_ms(50);
    }
    cr_assert_not_null(tu_proc_expect(&p, "  echo ", 10000), "the node's actor: %s", p.log);
    cr_assert(strstr(p.log, "livenode") != NULL, "%s", p.log);
    cr_assert_null(strstr(p.log, "skipped"), "every chunk decodes: %s", p.log);
    int status = tu_proc_stop(&p);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d: %s", status, p.log);
    wf_node_shutdown(n);
    wf_node_wait(n);
    wf_node_free(n);
    char path[160];
    snprintf(path, sizeof path, "%s/trace.ipc", dir);
    unlink(path);
    rmdir(dir);
}
