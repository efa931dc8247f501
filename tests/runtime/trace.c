/* Tracing: contexts follow a request through actors, every event kind is
 * recorded as valid JSON, sampling and filters (at start and at run time),
 * a full ring drops and counts instead of stalling, the PUB stream, and
 * W3C traceparent. */
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#include <weft/transport.h>

#include <criterion/criterion.h>

#include "proc.h"
#include "testutil.h"

TestSuite(trace, .init = tu_capture_log, .timeout = 60);

enum { PING = 1, PONG, BOOM, HANG, SLOW, FLOOD, NUM, COUNT, RETRACE, DEFER, CLOCK };

/* front: answers PING by asking back for a PONG (a deferred reply). */
static wf_result front_ping(wf_ctx *ctx, wf_msg *m)
{
    wf_pid back = wf_lookup(wf_ctx_node(ctx), "back");
    return wf_result_deferred(wf_ctx_ask(ctx, back, tu_msg(PONG, "pong?"), 5000));
}

static wf_result front_boom(wf_ctx *ctx, wf_msg *m)
{
    return WF_FAIL(WF_EUPSTREAM, "the upstream said no");
}

static wf_result front_hang(wf_ctx *ctx, wf_msg *m)
{
    /* Never answered: the asker's timeout is what ends it. */
    return wf_result_deferred(wf_deferred_new());
}

static wf_result front_flood(wf_ctx *ctx, wf_msg *m)
{
    long n = *(long *)wf_msg_body(m);
    wf_pid back = wf_lookup(wf_ctx_node(ctx), "back");
    for (long i = 0; i < n; i++)
        wf_ctx_tell(ctx, back, wf_msg_new(NUM, &i, sizeof i));
    return wf_result_deferred(wf_ctx_ask(ctx, back, wf_msg_new(COUNT, NULL, 0), 20000));
}

static wf_result front_retrace(wf_ctx *ctx, wf_msg *m)
{
    int rv = wf_node_trace_filter(wf_ctx_node(ctx), 1.0, (const char *)wf_msg_body(m), "");
    return wf_result_msg(wf_msg_new(RETRACE, &rv, sizeof rv));
}

/* Records a note between two monotonic readings, and answers them. */
static wf_result front_clock(wf_ctx *ctx, wf_msg *m)
{
    wf_node *n = wf_ctx_node(ctx);
    wf_trace_ctx span = wf_trace_current(n);
    uint64_t t[2];
    t[0] = uv_hrtime();
    wf_trace_note(n, "recv", wf_ctx_self(ctx), &span, (const char *)wf_msg_body(m), 0);
    t[1] = uv_hrtime();
    return wf_result_msg(wf_msg_new(CLOCK, t, sizeof t));
}

static const wf_handler front_h[] = {
    {PING, "ping", front_ping, 0},    {CLOCK, "clock", front_clock, 0},
    {BOOM, "boom", front_boom, 0},    {HANG, "hang", front_hang, 0},
    {FLOOD, "flood", front_flood, 0}, {RETRACE, "retrace", front_retrace, 0}};
static const wf_behaviour front = {
    .name = "front", .handlers = front_h, .nhandlers = sizeof front_h / sizeof front_h[0]};

static wf_result back_pong(wf_ctx *ctx, wf_msg *m)
{
    return wf_result_msg(tu_msg(PONG, "pong!"));
}

static wf_result back_slow(wf_ctx *ctx, wf_msg *m)
{
    tu_sleep_ms(2);
    return wf_result_msg(tu_msg(SLOW, "slept"));
}

static wf_result in_thread(void *arg)
{
    tu_sleep_ms(1);
    return wf_result_msg(tu_msg(DEFER, "done"));
}

static wf_result back_defer(wf_ctx *ctx, wf_msg *m)
{
    return wf_result_deferred(wf_defer_to_thread(wf_ctx_node(ctx), in_thread, NULL));
}

static wf_result back_num(wf_ctx *ctx, wf_msg *m)
{
    ++*(long *)wf_ctx_state(ctx);
    return wf_result_none();
}

static wf_result back_count(wf_ctx *ctx, wf_msg *m)
{
    return wf_result_msg(wf_msg_new(COUNT, wf_ctx_state(ctx), sizeof(long)));
}

static const wf_handler back_h[] = {{PONG, "pong", back_pong, 0},
                                    {SLOW, "slow", back_slow, WF_HANDLER_BLOCKING},
                                    {NUM, "num", back_num, 0},
                                    {COUNT, "count", back_count, 0},
                                    {DEFER, "defer", back_defer, 0}};
static const wf_behaviour back = {.name = "back",
                                  .state_size = sizeof(long),
                                  .handlers = back_h,
                                  .nhandlers = sizeof back_h / sizeof back_h[0]};

static char dir[128], path[256];
static wf_node *node;
static wf_pid fr, bk;

/* Starts node "n" tracing with spec (file= is added), on its own thread. */
static void start_traced(const char *spec)
{
    snprintf(dir, sizeof dir, "/tmp/weft-trace.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/n.jsonl", dir);
    char buf[512], err[128];
    snprintf(buf, sizeof buf, "file=%s%s%s", path, *spec ? ";" : "", spec);
    wf_trace_config cfg;
    cr_assert_eq(wf_trace_config_parse(buf, &cfg, err, sizeof err), 0, "%s", err);
    node = wf_node_new(&(wf_node_config){.name = "n"});
    cr_assert_eq(wf_spawn(node, "front", &front, NULL, &fr), 0);
    cr_assert_eq(wf_spawn(node, "back", &back, NULL, &bk), 0);
    cr_assert_eq(wf_node_trace_start(node, &cfg), 0);
    cr_assert_eq(wf_node_trace_start(node, &cfg), WF_EALREADY);
    cr_assert_eq(wf_node_start(node), 0);
}

/* Ends the node (which flushes the trace) and reads its file. */
static void finish(tu_lines *l)
{
    wf_node_shutdown(node);
    wf_node_wait(node);
    wf_node_free(node);
    cr_assert_eq(tu_json_lines_check(path), 0, "every line is a JSON object");
    tu_lines_read(l, path);
}

static void cleanup(void)
{
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

static wf_result call(wf_pid to, wf_msg *m, uint64_t timeout)
{
    return wf_node_call(node, to, m, timeout);
}

static void field(const char *line, const char *key, char *out, size_t size)
{
    cr_assert_not_null(line, "missing line for %s", key);
    cr_assert(tu_json_get(line, key, out, size), "no %s in %s", key, line);
}

Test(trace, a_request_is_one_trace_from_the_outside_ask_to_the_last_reply, .fini = cleanup)
{
    start_traced("");
    wf_result r = call(fr, tu_msg(PING, "ping?"), 5000);
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    wf_result_free(r);
    tu_lines l;
    finish(&l);

    size_t at = 0;
    cr_assert_not_null(tu_lines_find(&l, &at, "\"ev\":\"config\"", "\"sample\":1", NULL));
    cr_assert_not_null(tu_lines_find(&l, NULL, "\"ev\":\"actor\"", "\"actor\":\"front\"",
                                     "\"behaviour\":\"front\"", NULL));
    const char *s1 = tu_lines_find(&l, &at, "\"ev\":\"send\"", "\"type\":1,", NULL);
    const char *st1 = tu_lines_find(&l, &at, "\"ev\":\"start\"", "\"handler\":\"ping\"", NULL);
    const char *s2 = tu_lines_find(&l, &at, "\"ev\":\"send\"", "\"type\":2,", NULL);
    const char *e1 = tu_lines_find(&l, &at, "\"ev\":\"end\"", "\"outcome\":\"deferred\"", NULL);
    const char *st2 = tu_lines_find(&l, &at, "\"ev\":\"start\"", "\"handler\":\"pong\"", NULL);
    const char *e2 = tu_lines_find(&l, &at, "\"ev\":\"end\"", "\"outcome\":\"reply\"", NULL);
    const char *r2 = tu_lines_find(&l, &at, "\"ev\":\"reply\"", "\"actor\":\"back\"", NULL);
    const char *f2 = tu_lines_find(&l, &at, "\"ev\":\"fired\"", "\"type\":2,", NULL);
    const char *r1 = tu_lines_find(&l, &at, "\"ev\":\"reply\"", "\"actor\":\"front\"", NULL);
    const char *f1 = tu_lines_find(&l, &at, "\"ev\":\"fired\"", "\"type\":1,", NULL);
    char t[64], v[64], w[64];
    field(s1, "trace", t, sizeof t);
    cr_assert_eq(strlen(t), 32);
    /* One trace id on every event of the request. */
    const char *all[] = {s1, st1, s2, e1, st2, e2, r2, f2, r1, f1};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        field(all[i], "trace", v, sizeof v);
        cr_assert_str_eq(v, t, "%s", all[i]);
    }
    cr_assert(!tu_json_get(s1, "parent", v, sizeof v), "the outside ask is the root: %s", s1);
    cr_assert(strstr(s1, "\"actor\":\"\"") && strstr(s1, "\"to\":\"front@n\""), "%s", s1);
    cr_assert(strstr(s1, "\"msg\":\"ask\"") && strstr(s1, "\"preview\":\"ping?.\""), "%s", s1);
    /* The handler runs in its message's span; what it sends is a child. */
    field(s1, "span", v, sizeof v);
    field(st1, "span", w, sizeof w);
    cr_assert_str_eq(v, w);
    field(s2, "parent", w, sizeof w);
    cr_assert_str_eq(v, w, "the ask to back is a child of the ping");
    cr_assert(strstr(s2, "\"actor\":\"front\"") && strstr(s2, "\"to\":\"back@n\""), "%s", s2);
    field(s2, "span", v, sizeof v);
    field(st2, "span", w, sizeof w);
    cr_assert_str_eq(v, w);
    field(f2, "span", w, sizeof w);
    cr_assert_str_eq(v, w, "fired closes the ask's span");
    cr_assert(strstr(f2, "\"ok\":true") && strstr(r2, "\"preview\":\"pong!.\""), "%s", r2);
    /* Times go forward within a node. */
    char ta[32], tb[32];
    field(s1, "t_ns", ta, sizeof ta);
    field(f1, "t_ns", tb, sizeof tb);
    cr_assert(strtoull(ta, NULL, 10) <= strtoull(tb, NULL, 10));
    field(s1, "wall_us", ta, sizeof ta);
    cr_assert(strtoull(ta, NULL, 10) > 1600000000000000ull, "wall clock in µs: %s", ta);
    tu_lines_free(&l);
}

Test(trace, failures_timeouts_and_the_thread_pool_are_recorded, .fini = cleanup)
{
    start_traced("");
    wf_result r = call(fr, wf_msg_new(BOOM, NULL, 0), 5000);
    cr_assert_eq(r.kind, WF_RESULT_FAILURE);
    wf_result_free(r);
    r = call(fr, wf_msg_new(HANG, NULL, 0), 50);
    cr_assert_eq(wf_failure_code(r.u.failure), WF_ETIMEDOUT);
    wf_result_free(r);
    r = call(bk, wf_msg_new(SLOW, NULL, 0), 5000);
    cr_assert(wf_result_is_msg(r));
    wf_result_free(r);
    r = call(bk, wf_msg_new(DEFER, NULL, 0), 5000);
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    wf_result_free(r);
    /* A tell that fails crashes its actor: a stop with the failure. */
    cr_assert_eq(wf_tell(node, fr, wf_msg_new(BOOM, NULL, 0)), 0);
    for (int i = 0; i < 200; i++) {
        r = call(fr, wf_msg_new(BOOM, NULL, 0), 1000);
        int code = r.kind == WF_RESULT_FAILURE ? wf_failure_code(r.u.failure) : 0;
        wf_result_free(r);
        if (code == WF_ENOSUCHACTOR)
            break;
        tu_sleep_ms(5);
    }
    tu_lines l;
    finish(&l);
    size_t dat = 0;
    const char *ds = tu_lines_find(&l, &dat, "\"ev\":\"start\"", "\"handler\":\"defer\"", NULL);
    const char *dw = tu_lines_find(&l, &dat, "\"ev\":\"offload_end\"",
                                   "\"label\":\"defer_to_thread\"", "\"actor\":\"back\"", NULL);
    cr_assert_not_null(ds);
    cr_assert_not_null(dw, "wf_defer_to_thread's run is recorded for the actor that asked");
    char ss[40], ws[40];
    field(ds, "span", ss, sizeof ss);
    field(dw, "span", ws, sizeof ws);
    cr_assert_str_eq(ss, ws, "in the span of the message being handled");
    const char *crash =
        tu_lines_find(&l, NULL, "\"ev\":\"stop\"", "\"actor\":\"front\"", "\"ok\":false", NULL);
    cr_assert_not_null(crash);
    cr_assert(strstr(crash, "\"code\":\"WF_EUPSTREAM\"") && strstr(crash, "handler boom"), "%s",
              crash);

    const char *f = tu_lines_find(&l, NULL, "\"ev\":\"fail\"", "\"code\":\"WF_EUPSTREAM\"", NULL);
    cr_assert_not_null(f);
    cr_assert(strstr(f, "the upstream said no") && strstr(f, "handler boom"), "%s", f);
    cr_assert_not_null(tu_lines_find(&l, NULL, "\"ev\":\"end\"", "\"outcome\":\"fail\"", NULL));
    cr_assert_not_null(tu_lines_find(&l, NULL, "\"ev\":\"fired\"", "\"ok\":false", NULL));
    cr_assert_not_null(tu_lines_find(&l, NULL, "\"ev\":\"timeout\"", "\"type\":4,", NULL));
    size_t at = 0;
    const char *os = tu_lines_find(&l, &at, "\"ev\":\"offload_start\"", "\"pool\":true", NULL);
    const char *oe =
        tu_lines_find(&l, &at, "\"ev\":\"offload_end\"", "\"outcome\":\"reply\"", NULL);
    cr_assert_not_null(os);
    cr_assert_not_null(oe);
    char a[32], b[32];
    field(os, "t_ns", a, sizeof a);
    field(oe, "t_ns", b, sizeof b);
    cr_assert(strtoull(b, NULL, 10) - strtoull(a, NULL, 10) >= 2000000, "the pool run took 2 ms");
    /* The stop at shutdown is recorded, and is not a crash. */
    cr_assert_not_null(
        tu_lines_find(&l, NULL, "\"ev\":\"stop\"", "\"actor\":\"back\"", "\"ok\":true", NULL));
    tu_lines_free(&l);
}

Test(trace, sampling_zero_records_no_request_but_run_time_changes_apply, .fini = cleanup)
{
    start_traced("sample=0");
    wf_result r = call(fr, tu_msg(PING, "a"), 5000);
    wf_result_free(r);
    /* At run time: everything, only the back actor's events. */
    r = call(fr, tu_msg(RETRACE, "back"), 5000);
    cr_assert(wf_result_is_msg(r));
    cr_assert_eq(*(int *)wf_msg_body(r.u.ptr), 0);
    wf_result_free(r);
    r = call(fr, tu_msg(PING, "b"), 5000);
    wf_result_free(r);
    tu_lines l;
    finish(&l);
    cr_assert_eq(tu_lines_count(&l, "\"preview\":\"a.\""), 0, "the first request is not sampled");
    cr_assert_eq(tu_lines_count(&l, "\"ev\":\"config\""), 2);
    cr_assert_not_null(tu_lines_find(&l, NULL, "\"ev\":\"config\"", "\"actors\":\"back\"", NULL));
    /* After the change: back's events, and sends to back, but not front's
     * own handler runs. */
    cr_assert_not_null(tu_lines_find(&l, NULL, "\"ev\":\"start\"", "\"actor\":\"back\"", NULL));
    cr_assert_not_null(tu_lines_find(&l, NULL, "\"ev\":\"send\"", "\"to\":\"back@n\"", NULL));
    cr_assert_null(tu_lines_find(&l, NULL, "\"ev\":\"start\"", "\"actor\":\"front\"", NULL));
    tu_lines_free(&l);
}

Test(trace, a_type_filter_keeps_only_those_types, .fini = cleanup)
{
    start_traced("types=2");
    wf_result r = call(fr, tu_msg(PING, "x"), 5000);
    wf_result_free(r);
    tu_lines l;
    finish(&l);
    cr_assert_gt(tu_lines_count(&l, "\"type\":2,"), 0);
    cr_assert_eq(tu_lines_count(&l, "\"type\":1,"), 0);
    tu_lines_free(&l);
}

Test(trace, a_full_ring_drops_and_counts_events_and_loses_no_message, .fini = cleanup)
{
    start_traced("capacity=16");
    long n = getenv("WEFT_UNDER_VALGRIND") ? 5000 : 50000;
    wf_result r = call(fr, wf_msg_new(FLOOD, &n, sizeof n), 60000);
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    cr_assert_eq(*(long *)wf_msg_body(r.u.ptr), n, "every tell arrived");
    wf_result_free(r);
    tu_lines l;
    finish(&l);
    const char *lost = tu_lines_find(&l, NULL, "\"ev\":\"lost\"", NULL);
    cr_assert_not_null(lost, "a burst into 16 slots loses events");
    char c[32];
    field(lost, "count", c, sizeof c);
    cr_assert_gt(strtoll(c, NULL, 10), 0);
    tu_lines_free(&l);
}

Test(trace, the_pub_stream_carries_whole_chunks, .fini = cleanup)
{
    snprintf(dir, sizeof dir, "/tmp/weft-trace.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char url[200], err[128];
    snprintf(url, sizeof url, "ipc://%s/pub", dir);
    char spec[256];
    snprintf(spec, sizeof spec, "pub=%s", url);
    wf_trace_config cfg;
    cr_assert_eq(wf_trace_config_parse(spec, &cfg, err, sizeof err), 0, "%s", err);
    node = wf_node_new(&(wf_node_config){.name = "n"});
    wf_spawn(node, "front", &front, NULL, &fr);
    wf_spawn(node, "back", &back, NULL, &bk);
    /* libweft opens no sockets: the stream is the transport's. */
    cr_assert_eq(wf_node_trace_start(node, &cfg), WF_EINVAL);
    cr_assert_eq(wf_transport_trace_start(node, &cfg), 0);
    wf_node_start(node);

    nng_socket sub;
    cr_assert_eq(nng_sub0_open(&sub), 0);
    cr_assert_eq(nng_socket_set(sub, NNG_OPT_SUB_SUBSCRIBE, "", 0), 0);
    cr_assert_eq(nng_socket_set_ms(sub, NNG_OPT_RECVTIMEO, 100), 0);
    cr_assert_eq(nng_dial(sub, url, NULL, 0), 0);
    /* A subscriber sees what is published after it joined: ask until a
     * ping's lines arrive. */
    bool seen = false;
    for (int i = 0; i < 50 && !seen; i++) {
        wf_result r = call(fr, tu_msg(PING, "live"), 5000);
        wf_result_free(r);
        char *buf;
        size_t len;
        while (!seen && nng_recv(sub, &buf, &len, NNG_FLAG_ALLOC) == 0) {
            tu_lines l;
            cr_assert(tu_chunks_lines(&l, buf, len), "a message is a whole chunk");
            seen = tu_lines_find(&l, NULL, "\"preview\":\"live.\"", NULL) != NULL;
            tu_lines_free(&l);
            nng_free(buf, len);
        }
    }
    nng_close(sub);
    wf_node_shutdown(node);
    wf_node_wait(node);
    wf_node_free(node);
    cr_assert(seen, "a subscriber received the request's events");
}

Test(trace, bad_settings_are_refused_with_a_reason)
{
    wf_trace_config cfg;
    char err[128];
    char a[] = "sample=2", b[] = "colour=blue", c[] = "file", d[] = "capacity=3";
    cr_assert_eq(wf_trace_config_parse(a, &cfg, err, sizeof err), WF_EINVAL);
    cr_assert(strstr(err, "sample"), "%s", err);
    cr_assert_eq(wf_trace_config_parse(b, &cfg, err, sizeof err), WF_EINVAL);
    cr_assert(strstr(err, "colour"), "%s", err);
    cr_assert_eq(wf_trace_config_parse(c, &cfg, err, sizeof err), WF_EINVAL);
    cr_assert_eq(wf_trace_config_parse(d, &cfg, err, sizeof err), WF_EINVAL);
    wf_node *n = wf_node_new(NULL);
    cr_assert_eq(wf_node_trace_start(n, &(wf_trace_config){.sample = 1, .types = "x"}), WF_EINVAL);
    cr_assert_eq(wf_node_trace_start(n, &(wf_trace_config){.sample = 1, .file = "/nonexistent/x"}),
                 WF_EIO);
    cr_assert_eq(
        wf_transport_trace_start(n, &(wf_trace_config){.sample = 1, .pub_url = "bogus://x"}),
        WF_EIO);
    cr_assert_eq(wf_node_trace_filter(n, 1, NULL, NULL), WF_ESTATE);
    char desc[64];
    wf_node_trace_describe(n, desc, sizeof desc);
    cr_assert_str_eq(desc, "off");
    wf_node_free(n);
}

Test(trace, a_change_keeps_what_it_does_not_give)
{
    wf_node *n = wf_node_new(NULL);
    cr_assert_eq(wf_node_trace_start(n, &(wf_trace_config){.sample = 0.5, .actors = "a,b"}), 0);
    char d[128];
    cr_assert_eq(wf_node_trace_filter(n, WF_TRACE_KEEP, NULL, "7"), 0);
    wf_node_trace_describe(n, d, sizeof d);
    cr_assert(strncmp(d, "sample=0.5;actors=a,b;types=7;", 30) == 0, "%s", d);
    cr_assert_eq(wf_node_trace_filter(n, 1, "", NULL), 0);
    wf_node_trace_describe(n, d, sizeof d);
    cr_assert(strncmp(d, "sample=1;actors=;types=7;", 25) == 0, "%s", d);
    cr_assert_eq(wf_node_trace_filter(n, 2, NULL, NULL), WF_EINVAL);
    cr_assert_eq(wf_node_trace_filter(n, WF_TRACE_KEEP, NULL, "x"), WF_EINVAL);
    wf_node_trace_describe(n, d, sizeof d);
    cr_assert(strncmp(d, "sample=1;actors=;types=7;", 25) == 0, "a refusal changes nothing: %s", d);
    wf_node_free(n);
}

Test(trace, traceparent_follows_the_w3c_rules)
{
    wf_trace_ctx c;
    const char *ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    cr_assert_eq(wf_traceparent_parse(ok, strlen(ok), &c), 0);
    cr_assert_eq(c.parent_id, 0x00f067aa0ba902b7ull);
    cr_assert_eq(c.trace_id[0], 0x4b);
    cr_assert_eq(c.trace_id[15], 0x36);
    cr_assert_eq(c.flags, WF_TRACE_VALID | WF_TRACE_SAMPLED);
    c.span_id = 0x1122334455667788ull;
    char out[WF_TRACEPARENT_LEN + 1];
    wf_traceparent_format(&c, out);
    cr_assert_str_eq(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-1122334455667788-01");
    /* A later version may add fields; version 00 may not. */
    const char *future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra";
    cr_assert_eq(wf_traceparent_parse(future, strlen(future), &c), 0);
    cr_assert_eq(c.flags, WF_TRACE_VALID);
    const char *bad[] = {
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(wf_traceparent_parse(bad[i], strlen(bad[i]), &c), WF_EINVAL, "%s", bad[i]);
}

Test(trace, notes_keep_their_labels_short_or_long, .fini = cleanup)
{
    snprintf(dir, sizeof dir, "/tmp/weft-trace.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/n.jsonl", dir);
    wf_trace_config cfg = {.file = path, .sample = 1};
    node = wf_node_new(&(wf_node_config){.name = "n"});
    cr_assert_eq(wf_node_trace_start(node, &cfg), 0);
    wf_trace_ctx span, prev = wf_trace_begin(node, NULL, &span);
    cr_assert(span.flags & WF_TRACE_SAMPLED);
    /* Short labels travel inline in the record, long ones beside it: both
     * come out whole and escaped. */
    const char *shorter = "GET /a\"b";
    const char *exact = "GET /poems/ozymandias_xx"; /* 24 bytes: the inline room */
    const char *longer = "GET /poems/a-title-far-longer-than-the-room \"quoted\" caf\xc3\xa9";
    wf_trace_note(node, "recv", (wf_pid){0}, &span, shorter, 0);
    wf_trace_note(node, "reply", (wf_pid){0}, &span, exact, 10);
    wf_trace_note(node, "fail", (wf_pid){0}, &span, longer, 0);
    wf_trace_note(node, "sideways", (wf_pid){0}, &span, "ignored", 0);
    wf_trace_end(node, &prev);
    wf_node_free(node);
    cr_assert_eq(tu_json_lines_check(path), 0, "every line is a JSON object");
    tu_lines l;
    tu_lines_read(&l, path);
    size_t at = 0;
    cr_assert_not_null(
        tu_lines_find(&l, &at, "\"ev\":\"recv\"", "\"label\":\"GET /a\\\"b\"", NULL));
    cr_assert_not_null(tu_lines_find(&l, &at, "\"ev\":\"reply\"", "\"size\":10",
                                     "\"label\":\"GET /poems/ozymandias_xx\"", NULL));
    cr_assert_not_null(tu_lines_find(
        &l, &at, "\"ev\":\"fail\"", "\"ok\":false",
        "\"label\":\"GET /poems/a-title-far-longer-than-the-room \\\"quoted\\\" caf\xc3\xa9\"",
        NULL));
    cr_assert_null(tu_lines_find(&l, NULL, "ignored", NULL));
    tu_lines_free(&l);
}

/* Events are timed by the time-stamp counter (where invariant) or the
 * monotonic clock; either way an event's t_ns must lie between monotonic
 * readings taken around it, at once and after the writer's rate has been
 * extrapolated for a while. */
static void clock_agrees(const char *clock)
{
    char spec[64];
    snprintf(spec, sizeof spec, "clock=%s;sample=1", clock);
    start_traced(spec);
    uint64_t around[3][2];
    for (int i = 0; i < 3; i++) {
        char label[8];
        snprintf(label, sizeof label, "clk%d", i);
        wf_result r = call(fr, wf_msg_new(CLOCK, label, strlen(label) + 1), 5000);
        cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
        memcpy(around[i], wf_msg_body(r.u.ptr), sizeof around[i]);
        wf_result_free(r);
        tu_sleep_ms(i == 0 ? 50 : 400);
    }
    tu_lines l;
    finish(&l);
    for (int i = 0; i < 3; i++) {
        char want[32], t[32];
        snprintf(want, sizeof want, "\"label\":\"clk%d", i);
        const char *line = tu_lines_find(&l, NULL, "\"ev\":\"recv\"", want, NULL);
        field(line, "t_ns", t, sizeof t);
        long long got = strtoll(t, NULL, 10);
        /* 20 us of slack: the rate's error over half a second, and more. */
        long long lo = (long long)around[i][0] - 20000, hi = (long long)around[i][1] + 20000;
        cr_assert(got >= lo && got <= hi,
                  "clock %s: event %d at %lld ns, read between %llu and %llu (%+lld ns)", clock, i,
                  got, (unsigned long long)around[i][0], (unsigned long long)around[i][1],
                  got < lo ? got - (long long)around[i][0] : got - (long long)around[i][1]);
    }
    tu_lines_free(&l);
}

Test(trace, events_are_timed_as_the_monotonic_clock_with_the_tsc, .fini = cleanup)
{
    clock_agrees("tsc");
}

Test(trace, events_are_timed_as_the_monotonic_clock_with_it, .fini = cleanup)
{
    clock_agrees("monotonic");
}
