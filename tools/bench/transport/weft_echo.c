/* bench_transport's weft side.
 *
 * Server: a node "server" with an actor "echo" (it answers every request
 * with a copy of its body) and a transport listening on the URL; it stops
 * when the parent closes its socket.
 *
 * Client: a node "client" whose transport dials the server; once
 * wf_resolve("echo@server") gives a pid and a probe ask has been answered,
 * a driver actor keeps K asks in flight: each reply's callback sends the
 * next ask with wf_ask_as (as examples/ping_pong.c does), until a run's N
 * asks are answered. Both nodes run on their process's main thread. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

#include <weft/transport.h>
#include <weft/weft.h>

#include "transport.h"

enum { PING = 1, START };

/* weft's INFO lines (peer up/down) would only clutter stderr. */
static void log_hook(void *arg, int level, const char *text)
{
    if (level >= WF_LOG_WARN)
        fprintf(stderr, "bench_transport [%d]: weft: %s\n", (int)getpid(), text);
}

/* ---- the server ---- */

static wf_result echo_ping(wf_ctx *ctx, wf_msg *m)
{
    wf_msg *reply = wf_msg_new(PING, wf_msg_body(m), wf_msg_len(m));
    if (reply == NULL)
        return WF_FAIL(WF_ENOMEM, "no memory for a reply");
    return wf_result_msg(reply);
}

static const wf_handler echo_handlers[] = {{PING, "ping", echo_ping, 0}};
static const wf_behaviour echo = {.name = "echo", .handlers = echo_handlers, .nhandlers = 1};

struct wserver {
    wf_node *node;
    uv_pipe_t ctl; /* the socket to the parent */
    char buf[64];
};

static void ctl_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct wserver *s = h->data;
    buf->base = s->buf;
    buf->len = sizeof s->buf;
}

/* The parent closed the socket (or wrote to it): time to go. */
static void ctl_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct wserver *s = st->data;
    if (n == 0)
        return;
    uv_read_stop(st);
    uv_close((uv_handle_t *)st, NULL);
    wf_node_shutdown(s->node);
}

int weft_server(const struct tr_config *cfg, int fd)
{
    static struct wserver s;
    wf_transport *t;
    int rv;
    wf_log_set_hook(log_hook, NULL);
    s.node = wf_node_new(&(wf_node_config){.name = "server"});
    if (s.node == NULL) {
        fprintf(stderr, "bench_transport: weft server: wf_node_new failed\n");
        return 1;
    }
    if ((rv = wf_transport_new(s.node, &(wf_transport_config){.secret = SECRET}, &t)) != 0) {
        fprintf(stderr, "bench_transport: weft server: wf_transport_new: %s\n", wf_errname(rv));
        return 1;
    }
    if ((rv = wf_transport_listen(t, cfg->url)) != 0) {
        fprintf(stderr, "bench_transport: weft server: cannot listen on %s: %s\n", cfg->url,
                wf_errname(rv));
        return EXIT_ADDRINUSE;
    }
    if ((rv = wf_spawn(s.node, "echo", &echo, NULL, NULL)) != 0) {
        fprintf(stderr, "bench_transport: weft server: wf_spawn: %s\n", wf_errname(rv));
        return 1;
    }
    s.ctl.data = &s;
    if (!bench_write_all(fd, "R", 1)) {
        fprintf(stderr, "bench_transport: weft server: cannot report ready\n");
        return 1;
    }
    if ((rv = uv_pipe_init(wf_node_loop(s.node), &s.ctl, 0)) != 0 ||
        (rv = uv_pipe_open(&s.ctl, fd)) != 0 ||
        (rv = uv_read_start((uv_stream_t *)&s.ctl, ctl_alloc, ctl_read)) != 0) {
        fprintf(stderr, "bench_transport: weft server: control socket: %s\n", uv_strerror(rv));
        return 1;
    }
    wf_node_run(s.node);
    wf_node_free(s.node);
    return 0;
}

/* ---- the client ---- */

struct wrun;

struct slot {
    struct wrun *run;
    uint64_t seq, t_send;
};

struct wrun {
    wf_node *node;
    wf_pid self, echo;
    int k;
    uint64_t issued, done, t0;
    struct bench_lat lat;
    struct slot slots[MAX_OUT];
    uint64_t total; /* round trips answered, probe and calibration included */
    wf_transport *transport;
    uv_timer_t timer; /* polls for the connection */
    bool timer_open, probing;
    double started;
    struct tr_result *res;
};

static void wrun_fail(struct wrun *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void wrun_fail(struct wrun *run, const char *fmt, ...)
{
    if (run->res->err[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(run->res->err, sizeof run->res->err, fmt, ap);
        va_end(ap);
    }
    if (run->timer_open) {
        uv_close((uv_handle_t *)&run->timer, NULL);
        run->timer_open = false;
    }
    wf_node_shutdown(run->node);
}

static wf_result on_reply(wf_result r, void *arg);
static wf_result on_fail(wf_result r, void *arg);

static void send_ask(struct wrun *run, struct slot *s)
{
    wf_msg *m = wf_msg_alloc(PING, MSG_BYTES);
    if (m == NULL) {
        wrun_fail(run, "wf_msg_alloc failed");
        return;
    }
    s->seq = run->issued++;
    tr_fill_body(wf_msg_body(m), s->seq);
    s->t_send = uv_hrtime();
    wf_deferred *d = wf_ask_as(run->node, run->self, run->echo, m, ASK_TIMEOUT_MS);
    if (d == NULL) {
        wrun_fail(run, "wf_ask_as returned NULL");
        return;
    }
    int rv = wf_deferred_add_callbacks(d, on_reply, on_fail, s);
    wf_deferred_release(d);
    if (rv != 0)
        wrun_fail(run, "wf_deferred_add_callbacks: %s", wf_errname(rv));
}

/* A run of the series: its n asks, K at a time. */
static void start_run(struct wrun *run)
{
    struct bench_series *s = &run->res->rate;
    if (s->sampling && run->lat.v == NULL)
        bench_lat_init(&run->lat, s->n * (size_t)s->cfg.samples);
    run->issued = run->done = 0;
    run->t0 = uv_hrtime();
    uint64_t first = s->n < (uint64_t)run->k ? s->n : (uint64_t)run->k;
    for (uint64_t i = 0; i < first && run->res->err[0] == '\0'; i++)
        send_ask(run, &run->slots[i]);
}

static void end_run(struct wrun *run, uint64_t now)
{
    if (bench_series_add(&run->res->rate, (double)(now - run->t0) / 1e9)) {
        start_run(run);
        return;
    }
    /* Done: the transport's counters, before shutdown frees it. */
    wf_transport_stats ts;
    wf_transport_stats_get(run->transport, &ts);
    run->res->frames_in = ts.frames_in;
    run->res->frames_out = ts.frames_out;
    run->res->send_failures = ts.send_failures;
    run->res->rejected = ts.rejected;
    wf_node_shutdown(run->node);
}

static wf_result on_reply(wf_result r, void *arg)
{
    struct slot *s = arg;
    struct wrun *run = s->run;
    uint64_t now = uv_hrtime();
    bool ok = wf_result_is_msg(r) && wf_msg_type(r.u.ptr) == PING &&
              tr_body_ok(wf_msg_body(r.u.ptr), wf_msg_len(r.u.ptr), s->seq);
    wf_result_free(r);
    if (run->res->err[0] != '\0')
        return wf_result_none();
    if (!ok) {
        wrun_fail(run, "weft: wrong reply to request %llu", (unsigned long long)s->seq);
        return wf_result_none();
    }
    if (run->res->rate.sampling)
        bench_lat_add(&run->lat, (double)(now - s->t_send));
    run->done++;
    run->total++;
    if (run->issued < run->res->rate.n)
        send_ask(run, s);
    else if (run->done == run->res->rate.n)
        end_run(run, now);
    return wf_result_none();
}

static wf_result on_fail(wf_result r, void *arg)
{
    struct slot *s = arg;
    struct wrun *run = s->run;
    if (r.kind == WF_RESULT_FAILURE) {
        char *text = wf_failure_format(r.u.failure, WF_FORMAT_TEXT);
        wrun_fail(run, "weft: ask %llu failed: %s: %s", (unsigned long long)s->seq,
                  wf_errname(wf_failure_code(r.u.failure)),
                  text ? text : wf_failure_message(r.u.failure));
        wf_free(text);
    } else {
        wrun_fail(run, "weft: ask failed");
    }
    wf_result_free(r);
    return wf_result_none();
}

static int driver_init(wf_ctx *ctx, void *arg)
{
    struct wrun *run = arg;
    *(struct wrun **)wf_ctx_state(ctx) = run;
    run->self = wf_ctx_self(ctx);
    return 0;
}

static wf_result driver_start(wf_ctx *ctx, wf_msg *m)
{
    start_run(*(struct wrun **)wf_ctx_state(ctx));
    return wf_result_none();
}

static const wf_handler driver_handlers[] = {{START, "start", driver_start, 0}};
static const wf_behaviour driver = {.name = "driver",
                                    .state_size = sizeof(struct wrun *),
                                    .init = driver_init,
                                    .handlers = driver_handlers,
                                    .nhandlers = 1};

/* The probe ask was answered: connected; hand over to the driver. */
static wf_result probe_ok(wf_result r, void *arg)
{
    struct wrun *run = arg;
    bool ok = wf_result_is_msg(r) && tr_body_ok(wf_msg_body(r.u.ptr), wf_msg_len(r.u.ptr), 0);
    wf_result_free(r);
    run->probing = false;
    if (!ok) {
        wrun_fail(run, "weft: wrong reply to the probe");
        return wf_result_none();
    }
    run->total++;
    run->res->connect_ms = (bench_now_s() - run->started) * 1e3;
    if (run->timer_open) {
        uv_close((uv_handle_t *)&run->timer, NULL);
        run->timer_open = false;
    }
    wf_msg *start = wf_msg_new(START, NULL, 0);
    int rv = start ? wf_tell(run->node, run->self, start) : WF_ENOMEM;
    if (rv != 0)
        wrun_fail(run, "wf_tell(start): %s", wf_errname(rv));
    return wf_result_none();
}

/* Not yet: the connection may still be in its handshake. Try again. */
static wf_result probe_failed(wf_result r, void *arg)
{
    struct wrun *run = arg;
    wf_result_free(r);
    run->probing = false;
    return wf_result_none();
}

static void connect_tick(uv_timer_t *t)
{
    struct wrun *run = t->data;
    if (run->probing)
        return;
    if (bench_now_s() - run->started > CONNECT_S) {
        wrun_fail(run, "weft: no answer from echo@server within %.0f s", CONNECT_S);
        return;
    }
    run->echo = wf_resolve(run->node, "echo@server");
    if (wf_pid_is_none(run->echo))
        return;
    wf_msg *m = wf_msg_alloc(PING, MSG_BYTES);
    if (m == NULL) {
        wrun_fail(run, "wf_msg_alloc failed");
        return;
    }
    tr_fill_body(wf_msg_body(m), 0);
    wf_deferred *d = wf_ask(run->node, run->echo, m, 1000);
    if (d == NULL) {
        wrun_fail(run, "wf_ask returned NULL");
        return;
    }
    run->probing = true;
    int rv = wf_deferred_add_callbacks(d, probe_ok, probe_failed, run);
    wf_deferred_release(d);
    if (rv != 0)
        wrun_fail(run, "wf_deferred_add_callbacks: %s", wf_errname(rv));
}

int weft_client(const struct tr_config *cfg, struct tr_result *res)
{
    static struct wrun run;
    int rv;
    wf_log_set_hook(log_hook, NULL);
    run = (struct wrun){.k = cfg->k, .res = res, .started = bench_now_s()};
    tr_series_init(&res->rate, cfg->quick);
    for (int i = 0; i < MAX_OUT; i++)
        run.slots[i].run = &run;
    run.node = wf_node_new(&(wf_node_config){.name = "client"});
    if (run.node == NULL) {
        tr_fail(res, "weft client: wf_node_new failed");
        return 1;
    }
    if ((rv = wf_transport_new(run.node, &(wf_transport_config){.secret = SECRET},
                               &run.transport)) != 0) {
        tr_fail(res, "weft client: wf_transport_new: %s", wf_errname(rv));
        return 1;
    }
    if ((rv = wf_transport_dial(run.transport, cfg->url)) != 0) {
        tr_fail(res, "weft client: wf_transport_dial(%s): %s", cfg->url, wf_errname(rv));
        return 1;
    }
    if ((rv = wf_spawn(run.node, "driver", &driver, &run, NULL)) != 0) {
        tr_fail(res, "weft client: wf_spawn: %s", wf_errname(rv));
        return 1;
    }
    run.timer.data = &run;
    if ((rv = uv_timer_init(wf_node_loop(run.node), &run.timer)) != 0 ||
        (run.timer_open = true, rv = uv_timer_start(&run.timer, connect_tick, 0, 5)) != 0) {
        tr_fail(res, "weft client: uv_timer: %s", uv_strerror(rv));
        return 1;
    }
    wf_node_run(run.node);
    wf_node_stats st;
    wf_node_stats_get(run.node, &st);
    wf_node_free(run.node);
    if (res->rate.nsamples != res->rate.cfg.samples)
        tr_fail(res, "weft client: the node stopped after %d of %d samples", res->rate.nsamples,
                res->rate.cfg.samples);
    if (st.timeouts != 0 || st.late_replies != 0 || st.node_down != 0)
        tr_fail(res, "weft client: node stats: %llu timeouts, %llu late replies, %llu node down",
                (unsigned long long)st.timeouts, (unsigned long long)st.late_replies,
                (unsigned long long)st.node_down);
    if (res->send_failures != 0 || res->rejected != 0)
        tr_fail(res, "weft client: transport: %llu send failures, %llu frames rejected",
                (unsigned long long)res->send_failures, (unsigned long long)res->rejected);
    if (res->err[0] == '\0') {
        res->total_rt = run.total;
        res->nlat = bench_lat_summary(&run.lat, &res->p50_us, &res->p99_us);
        res->ok = 1;
    }
    bench_lat_free(&run.lat);
    return res->ok ? 0 : 1;
}
