/* bench_transport: remote ask/reply over weft's transport against raw nng
 * REQ/REP, both between two processes on one host, so run.py can compare.
 *
 * For each transport (tcp://127.0.0.1:PORT and ipc:///tmp/...) and each
 * number of requests in flight (1 and 64):
 *
 *   weft_T_K_*  a server process runs a node "server" with an actor "echo"
 *               (it answers every request with a copy of its 64-byte body)
 *               and a transport listening on the URL. A client process runs
 *               a node "client" whose transport dials it; once
 *               wf_resolve("echo@server") gives a pid and a probe ask has
 *               been answered, a driver actor keeps K asks in flight: each
 *               reply's callback sends the next ask with wf_ask_as (as
 *               examples/ping_pong.c does), until a sample's N asks are
 *               answered. Both nodes run on their process's main thread.
 *   nng_T_K_*   the ceiling: the same 64-byte request and reply as raw nng
 *               REQ/REP, used the fast way: the server opens K contexts on a
 *               rep0 socket, each echoing with an aio (nng_ctx_recv then
 *               nng_ctx_send of the same message); the client keeps K
 *               requests in flight on K contexts of a req0 socket, each
 *               aio's callback sending the next request (nng_ctx_send, then
 *               nng_ctx_recv).
 *
 * Keys per configuration (prefix IMPL_T_K, e.g. weft_tcp_64):
 *   _rps        round trips per second: median of SAMPLES samples of N
 *               round trips each, N calibrated to ~TARGET_S per sample
 *   _rps_samples, _n
 *   _p50_us, _p99_us  per round trip latency (uv_hrtime at the send to the
 *               reply's callback), over every round trip of the samples
 *   _connect_ms time from the client's start to its first answered request
 *
 * Processes: the bench forks a server and a client per configuration (the
 * parent itself never touches nng, libuv or weft, so each child starts
 * clean). Every child dies with the parent (PR_SET_PDEATHSIG), has an alarm
 * as a last bound on its time, and is reaped, on failure too (killed after
 * a grace period). The server lives until the parent closes its control
 * pipe. Ports come from binding port 0 and reading it back.
 *
 * Output: one JSON object on stdout; errors on stderr and exit status 1.
 * --quick: small N, 3 samples, a smoke test. --only weft|nng runs one side.
 */
#define _DEFAULT_SOURCE /* wait4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include <weft/transport.h>
#include <weft/weft.h>

#include "../bench.h"

#define SAMPLES        7
#define QUICK_SAMPLES  3
#define TARGET_S       0.15 /* per sample */
#define CALIBRATE_S    0.05 /* a calibration run shorter than this is too noisy */
#define QUICK_N        500  /* round trips per sample in --quick */
#define MIN_N          200
#define MSG_BYTES      64
#define MAX_OUT        64
#define ASK_TIMEOUT_MS 10000 /* far beyond a round trip: a lost reply fails the run */
#define CONNECT_S      10.0  /* the client must get its first answer by then */
#define READY_S        10.0  /* the server must be listening by then */
#define CONFIG_S       120   /* one configuration, client and server, at most */
#define QUICK_CONFIG_S 40
#define GRACE_S        5.0 /* for a child to exit once told, before SIGKILL */
#define SECRET         "weft-bench-transport"
#define EXIT_ADDRINUSE 3 /* the server could not listen: try another port */

enum { PING = 1, START };
enum impl { WEFT, NNG };
static const char *const impl_names[] = {"weft", "nng"};

/* What a client child sends back to the parent through a pipe. */
struct result {
    int ok;
    int nsamples;
    uint64_t n; /* round trips per sample */
    double rps, samples[SAMPLES];
    double p50_us, p99_us;
    uint64_t nlat;
    double connect_ms;
    uint64_t total_rt; /* every round trip of the run: probe and calibration too */
    /* weft's client transport at the end (wf_transport_stats) */
    uint64_t frames_in, frames_out, send_failures, rejected;
    /* filled by the parent from wait4: the whole life of each process */
    double client_cpu_s, server_cpu_s;
    uint64_t client_csw, server_csw;
    char err[256];
};

/* ---- helpers ---- */

static void *xmalloc(size_t size)
{
    void *p = malloc(size);
    if (p == NULL) {
        fprintf(stderr, "bench_transport: out of memory (%zu bytes)\n", size);
        _exit(1);
    }
    return p;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Latencies in ns, sorted in place; fills p50 and p99 in microseconds. */
static void percentiles(double *lat, size_t n, struct result *r)
{
    r->nlat = n;
    if (n == 0)
        return;
    qsort(lat, n, sizeof *lat, cmp_double);
    r->p50_us = (n % 2 ? lat[n / 2] : (lat[n / 2 - 1] + lat[n / 2]) / 2) / 1e3;
    r->p99_us = lat[(size_t)((double)(n - 1) * 0.99)] / 1e3;
}

static void set_err(struct result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(struct result *r, const char *fmt, ...)
{
    if (r->err[0] != '\0')
        return; /* the first error is the one that counts */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
}

/* The body of request seq: seq, then a pattern that depends on it. */
static void fill_body(unsigned char *b, uint64_t seq)
{
    memcpy(b, &seq, sizeof seq);
    for (size_t i = sizeof seq; i < MSG_BYTES; i++)
        b[i] = (unsigned char)(seq * 31 + i);
}

static bool body_ok(const void *body, size_t len, uint64_t seq)
{
    unsigned char want[MSG_BYTES];
    fill_body(want, seq);
    return len == MSG_BYTES && memcmp(body, want, MSG_BYTES) == 0;
}

/* n for the next sample from a calibration run of n round trips taking t. */
static uint64_t scale_n(uint64_t n, double t)
{
    double scaled = (double)n * TARGET_S / t;
    return scaled < MIN_N ? MIN_N : (uint64_t)scaled;
}

static bool write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        len -= (size_t)w;
    }
    return true;
}

/* weft's INFO lines (peer up/down) would only clutter stderr. */
static void log_hook(void *arg, int level, const char *text)
{
    if (level >= WF_LOG_WARN)
        fprintf(stderr, "bench_transport [%d]: weft: %s\n", (int)getpid(), text);
}

/* ---- weft: the server ---- */

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
    uv_pipe_t ctl;
    char buf[64];
};

static void ctl_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct wserver *s = h->data;
    buf->base = s->buf;
    buf->len = sizeof s->buf;
}

/* The parent closed the control pipe (or wrote to it): time to go. */
static void ctl_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct wserver *s = st->data;
    if (n == 0)
        return;
    uv_read_stop(st);
    uv_close((uv_handle_t *)st, NULL);
    wf_node_shutdown(s->node);
}

static int weft_server(const char *url, int k, int ready_fd, int ctl_fd)
{
    static struct wserver s;
    wf_transport *t;
    int rv;
    s.node = wf_node_new(&(wf_node_config){.name = "server"});
    if (s.node == NULL) {
        fprintf(stderr, "bench_transport: weft server: wf_node_new failed\n");
        return 1;
    }
    if ((rv = wf_transport_new(s.node, &(wf_transport_config){.secret = SECRET}, &t)) != 0) {
        fprintf(stderr, "bench_transport: weft server: wf_transport_new: %s\n", wf_errname(rv));
        return 1;
    }
    if ((rv = wf_transport_listen(t, url)) != 0) {
        fprintf(stderr, "bench_transport: weft server: cannot listen on %s: %s\n", url,
                wf_errname(rv));
        return EXIT_ADDRINUSE;
    }
    if ((rv = wf_spawn(s.node, "echo", &echo, NULL, NULL)) != 0) {
        fprintf(stderr, "bench_transport: weft server: wf_spawn: %s\n", wf_errname(rv));
        return 1;
    }
    s.ctl.data = &s;
    if ((rv = uv_pipe_init(wf_node_loop(s.node), &s.ctl, 0)) != 0 ||
        (rv = uv_pipe_open(&s.ctl, ctl_fd)) != 0 ||
        (rv = uv_read_start((uv_stream_t *)&s.ctl, ctl_alloc, ctl_read)) != 0) {
        fprintf(stderr, "bench_transport: weft server: control pipe: %s\n", uv_strerror(rv));
        return 1;
    }
    if (!write_all(ready_fd, "R", 1)) {
        fprintf(stderr, "bench_transport: weft server: cannot report ready: %s\n", strerror(errno));
        return 1;
    }
    close(ready_fd);
    wf_node_run(s.node);
    wf_node_free(s.node);
    return 0;
}

/* ---- weft: the client ---- */

struct wrun;

struct slot {
    struct wrun *run;
    uint64_t seq, t_send;
};

struct wrun {
    wf_node *node;
    wf_pid self, echo;
    int k, nsamples;
    bool quick;
    bool sampling; /* false while calibrating */
    int sample;
    uint64_t n, issued, done, t0;
    double *lat;
    size_t nlat, cap;
    struct slot slots[MAX_OUT];
    uint64_t total; /* round trips answered, probe and calibration included */
    wf_transport *transport;
    uv_timer_t timer; /* polls for the connection */
    bool timer_open, probing;
    double started;
    struct result *res;
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
    fill_body(wf_msg_body(m), s->seq);
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

static void start_phase(struct wrun *run)
{
    run->issued = run->done = 0;
    run->t0 = uv_hrtime();
    uint64_t first = run->n < (uint64_t)run->k ? run->n : (uint64_t)run->k;
    for (uint64_t i = 0; i < first && run->res->err[0] == '\0'; i++)
        send_ask(run, &run->slots[i]);
}

static void end_phase(struct wrun *run, uint64_t now)
{
    double t = (double)(now - run->t0) / 1e9;
    if (!run->sampling) {
        if (!run->quick && t < CALIBRATE_S && run->n < (UINT64_C(1) << 26)) {
            run->n *= 2;
            start_phase(run);
            return;
        }
        if (!run->quick)
            run->n = scale_n(run->n, t);
        run->sampling = true;
        run->cap = run->n * (size_t)run->nsamples;
        run->lat = malloc(run->cap * sizeof *run->lat);
        if (run->lat == NULL) {
            wrun_fail(run, "no memory for %zu latencies", run->cap);
            return;
        }
        start_phase(run);
        return;
    }
    run->res->samples[run->sample++] = (double)run->n / t;
    if (run->sample < run->nsamples) {
        start_phase(run);
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
              body_ok(wf_msg_body(r.u.ptr), wf_msg_len(r.u.ptr), s->seq);
    wf_result_free(r);
    if (run->res->err[0] != '\0')
        return wf_result_none();
    if (!ok) {
        wrun_fail(run, "weft: wrong reply to request %llu", (unsigned long long)s->seq);
        return wf_result_none();
    }
    if (run->sampling && run->nlat < run->cap)
        run->lat[run->nlat++] = (double)(now - s->t_send);
    run->done++;
    run->total++;
    if (run->issued < run->n)
        send_ask(run, s);
    else if (run->done == run->n)
        end_phase(run, now);
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
    struct wrun *run = *(struct wrun **)wf_ctx_state(ctx);
    start_phase(run);
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
    bool ok = wf_result_is_msg(r) && body_ok(wf_msg_body(r.u.ptr), wf_msg_len(r.u.ptr), 0);
    wf_result_free(r);
    run->probing = false;
    if (!ok) {
        wrun_fail(run, "weft: wrong reply to the probe");
        return wf_result_none();
    }
    run->total++;
    run->res->connect_ms = (now_s() - run->started) * 1e3;
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
    if (now_s() - run->started > CONNECT_S) {
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
    fill_body(wf_msg_body(m), 0);
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

static int weft_client(const char *url, int k, bool quick, struct result *res)
{
    static struct wrun run;
    wf_transport *t;
    int rv;
    run = (struct wrun){.k = k, .quick = quick, .res = res, .started = now_s()};
    run.nsamples = res->nsamples = quick ? QUICK_SAMPLES : SAMPLES;
    run.n = quick ? QUICK_N : 1000;
    for (int i = 0; i < MAX_OUT; i++)
        run.slots[i].run = &run;
    run.node = wf_node_new(&(wf_node_config){.name = "client"});
    if (run.node == NULL) {
        set_err(res, "weft client: wf_node_new failed");
        return 1;
    }
    if ((rv = wf_transport_new(run.node, &(wf_transport_config){.secret = SECRET}, &t)) != 0) {
        set_err(res, "weft client: wf_transport_new: %s", wf_errname(rv));
        return 1;
    }
    run.transport = t;
    if ((rv = wf_transport_dial(t, url)) != 0) {
        set_err(res, "weft client: wf_transport_dial(%s): %s", url, wf_errname(rv));
        return 1;
    }
    wf_pid self;
    if ((rv = wf_spawn(run.node, "driver", &driver, &run, &self)) != 0) {
        set_err(res, "weft client: wf_spawn: %s", wf_errname(rv));
        return 1;
    }
    if ((rv = uv_timer_init(wf_node_loop(run.node), &run.timer)) != 0) {
        set_err(res, "weft client: uv_timer_init: %s", uv_strerror(rv));
        return 1;
    }
    run.timer.data = &run;
    run.timer_open = true;
    if ((rv = uv_timer_start(&run.timer, connect_tick, 0, 5)) != 0) {
        set_err(res, "weft client: uv_timer: %s", uv_strerror(rv));
        return 1;
    }
    wf_node_run(run.node);
    wf_node_stats st;
    wf_node_stats_get(run.node, &st);
    wf_node_free(run.node);
    if (res->err[0] == '\0' && run.sample != run.nsamples)
        set_err(res, "weft client: the node stopped after %d of %d samples", run.sample,
                run.nsamples);
    if (res->err[0] == '\0' && (st.timeouts != 0 || st.late_replies != 0 || st.node_down != 0))
        set_err(res, "weft client: node stats: %llu timeouts, %llu late replies, %llu node down",
                (unsigned long long)st.timeouts, (unsigned long long)st.late_replies,
                (unsigned long long)st.node_down);
    if (res->err[0] == '\0' && (res->send_failures != 0 || res->rejected != 0))
        set_err(res, "weft client: transport: %llu send failures, %llu frames rejected",
                (unsigned long long)res->send_failures, (unsigned long long)res->rejected);
    if (res->err[0] != '\0') {
        free(run.lat);
        return 1;
    }
    res->total_rt = run.total;
    res->n = run.n;
    res->rps = median(res->samples, run.nsamples);
    percentiles(run.lat, run.nlat, res);
    free(run.lat);
    res->ok = 1;
    return 0;
}

/* ---- nng: the REP server ---- */

struct nsrv;

struct nsrv_ctx {
    struct nsrv *srv;
    nng_ctx ctx;
    nng_aio *aio;
    bool sending;
};

struct nsrv {
    nng_socket sock;
    struct nsrv_ctx c[MAX_OUT];
    int k;
    atomic_int err; /* first nng error other than closing */
};

static void nsrv_cb(void *arg)
{
    struct nsrv_ctx *c = arg;
    int rv = nng_aio_result(c->aio);
    if (rv != 0) {
        if (c->sending)
            nng_msg_free(nng_aio_get_msg(c->aio)); /* a failed send leaves it to us */
        if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
            return;
        int zero = 0;
        atomic_compare_exchange_strong(&c->srv->err, &zero, rv);
        c->sending = false;
        nng_ctx_recv(c->ctx, c->aio);
        return;
    }
    if (c->sending) {
        c->sending = false;
        nng_ctx_recv(c->ctx, c->aio);
    } else {
        /* Echo: the request's body goes back as it is. */
        c->sending = true;
        nng_aio_set_msg(c->aio, nng_aio_get_msg(c->aio));
        nng_ctx_send(c->ctx, c->aio);
    }
}

static int nng_server(const char *url, int k, int ready_fd, int ctl_fd)
{
    static struct nsrv s;
    int rv;
    s.k = k;
    if ((rv = nng_rep0_open(&s.sock)) != 0) {
        fprintf(stderr, "bench_transport: nng server: nng_rep0_open: %s\n", nng_strerror(rv));
        return 1;
    }
    for (int i = 0; i < k; i++) {
        s.c[i].srv = &s;
        if ((rv = nng_ctx_open(&s.c[i].ctx, s.sock)) != 0 ||
            (rv = nng_aio_alloc(&s.c[i].aio, nsrv_cb, &s.c[i])) != 0) {
            fprintf(stderr, "bench_transport: nng server: context: %s\n", nng_strerror(rv));
            return 1;
        }
    }
    if ((rv = nng_listen(s.sock, url, NULL, 0)) != 0) {
        fprintf(stderr, "bench_transport: nng server: cannot listen on %s: %s\n", url,
                nng_strerror(rv));
        return EXIT_ADDRINUSE;
    }
    for (int i = 0; i < k; i++)
        nng_ctx_recv(s.c[i].ctx, s.c[i].aio);
    if (!write_all(ready_fd, "R", 1)) {
        fprintf(stderr, "bench_transport: nng server: cannot report ready: %s\n", strerror(errno));
        return 1;
    }
    close(ready_fd);
    /* Until the parent closes the control pipe. */
    char buf[64];
    ssize_t n;
    while ((n = read(ctl_fd, buf, sizeof buf)) < 0 && errno == EINTR)
        ;
    if ((rv = nng_close(s.sock)) != 0)
        fprintf(stderr, "bench_transport: nng server: nng_close: %s\n", nng_strerror(rv));
    for (int i = 0; i < k; i++)
        nng_aio_free(s.c[i].aio);
    int err = atomic_load(&s.err);
    if (err != 0) {
        fprintf(stderr, "bench_transport: nng server: %s\n", nng_strerror(err));
        return 1;
    }
    return 0;
}

/* ---- nng: the REQ client ---- */

struct ncli;

struct ncli_ctx {
    struct ncli *cli;
    nng_ctx ctx;
    nng_aio *aio;
    bool sending;
    uint64_t seq, t_send;
};

struct ncli {
    nng_socket sock;
    struct ncli_ctx c[MAX_OUT];
    int k;
    uint64_t n;
    atomic_uint_fast64_t issued, done, total;
    double *lat; /* NULL while calibrating */
    size_t cap;
    atomic_size_t nlat;
    nng_mtx *mtx;
    nng_cv *cv;
    bool phase_done; /* under mtx */
    atomic_int err;
    char errmsg[200];
};

static void ncli_fail(struct ncli *cl, int rv, const char *what, uint64_t seq)
{
    int zero = 0;
    if (atomic_compare_exchange_strong(&cl->err, &zero, rv ? rv : NNG_EINTERNAL))
        snprintf(cl->errmsg, sizeof cl->errmsg, "nng: %s (request %llu): %s", what,
                 (unsigned long long)seq, rv ? nng_strerror(rv) : "wrong reply");
    nng_mtx_lock(cl->mtx);
    cl->phase_done = true;
    nng_cv_wake(cl->cv);
    nng_mtx_unlock(cl->mtx);
}

static void ncli_send(struct ncli_ctx *c, uint64_t seq)
{
    nng_msg *m;
    int rv = nng_msg_alloc(&m, MSG_BYTES);
    if (rv != 0) {
        ncli_fail(c->cli, rv, "nng_msg_alloc", seq);
        return;
    }
    fill_body(nng_msg_body(m), seq);
    c->seq = seq;
    c->sending = true;
    nng_aio_set_msg(c->aio, m);
    c->t_send = uv_hrtime();
    nng_ctx_send(c->ctx, c->aio);
}

static void ncli_cb(void *arg)
{
    struct ncli_ctx *c = arg;
    struct ncli *cl = c->cli;
    int rv = nng_aio_result(c->aio);
    if (rv != 0) {
        if (c->sending)
            nng_msg_free(nng_aio_get_msg(c->aio));
        if (rv != NNG_ECLOSED && rv != NNG_ECANCELED)
            ncli_fail(cl, rv, c->sending ? "send" : "recv", c->seq);
        return;
    }
    if (c->sending) {
        c->sending = false;
        nng_ctx_recv(c->ctx, c->aio);
        return;
    }
    uint64_t now = uv_hrtime();
    nng_msg *m = nng_aio_get_msg(c->aio);
    bool ok = body_ok(nng_msg_body(m), nng_msg_len(m), c->seq);
    nng_msg_free(m);
    if (!ok) {
        ncli_fail(cl, 0, "reply", c->seq);
        return;
    }
    if (atomic_load(&cl->err) != 0)
        return;
    if (cl->lat != NULL) {
        size_t i = atomic_fetch_add(&cl->nlat, 1);
        if (i < cl->cap)
            cl->lat[i] = (double)(now - c->t_send);
    }
    atomic_fetch_add(&cl->total, 1);
    uint64_t done = atomic_fetch_add(&cl->done, 1) + 1;
    uint64_t seq = atomic_fetch_add(&cl->issued, 1);
    if (seq < cl->n) {
        ncli_send(c, seq);
    } else if (done == cl->n) {
        nng_mtx_lock(cl->mtx);
        cl->phase_done = true;
        nng_cv_wake(cl->cv);
        nng_mtx_unlock(cl->mtx);
    }
}

/* n round trips with k in flight; returns their seconds, or -1 on error. */
static double ncli_phase(struct ncli *cl, uint64_t n)
{
    uint64_t first = n < (uint64_t)cl->k ? n : (uint64_t)cl->k;
    cl->n = n;
    atomic_store(&cl->done, 0);
    atomic_store(&cl->issued, first);
    nng_mtx_lock(cl->mtx);
    cl->phase_done = false;
    nng_mtx_unlock(cl->mtx);
    double t0 = now_s();
    for (uint64_t i = 0; i < first; i++)
        ncli_send(&cl->c[i], i);
    nng_time limit = nng_clock() + (nng_time)ASK_TIMEOUT_MS * 3;
    nng_mtx_lock(cl->mtx);
    int rv = 0;
    while (!cl->phase_done && rv == 0)
        rv = nng_cv_until(cl->cv, limit);
    nng_mtx_unlock(cl->mtx);
    double t = now_s() - t0;
    if (atomic_load(&cl->err) != 0)
        return -1;
    if (rv != 0) {
        ncli_fail(cl, rv, "waiting for the sample", atomic_load(&cl->done));
        return -1;
    }
    return t;
}

static int nng_client(const char *url, int k, bool quick, struct result *res)
{
    static struct ncli cl;
    int rv;
    double started = now_s();
    cl.k = k;
    res->nsamples = quick ? QUICK_SAMPLES : SAMPLES;
    if ((rv = nng_mtx_alloc(&cl.mtx)) != 0 || (rv = nng_cv_alloc(&cl.cv, cl.mtx)) != 0 ||
        (rv = nng_req0_open(&cl.sock)) != 0) {
        set_err(res, "nng client: setup: %s", nng_strerror(rv));
        return 1;
    }
    for (int i = 0; i < k; i++) {
        cl.c[i].cli = &cl;
        if ((rv = nng_ctx_open(&cl.c[i].ctx, cl.sock)) != 0 ||
            (rv = nng_aio_alloc(&cl.c[i].aio, ncli_cb, &cl.c[i])) != 0) {
            set_err(res, "nng client: context: %s", nng_strerror(rv));
            return 1;
        }
        nng_aio_set_timeout(cl.c[i].aio, ASK_TIMEOUT_MS);
    }
    while ((rv = nng_dial(cl.sock, url, NULL, 0)) != 0) {
        if (rv != NNG_ECONNREFUSED || now_s() - started > CONNECT_S) {
            set_err(res, "nng client: cannot dial %s: %s", url, nng_strerror(rv));
            return 1;
        }
        sleep_ms(5);
    }
    double t = ncli_phase(&cl, 1); /* the probe */
    res->connect_ms = (now_s() - started) * 1e3;
    uint64_t n = quick ? QUICK_N : 1000;
    while (t >= 0 && !quick && (t = ncli_phase(&cl, n)) >= 0 && t < CALIBRATE_S &&
           n < (UINT64_C(1) << 26))
        n *= 2;
    if (t >= 0 && !quick)
        n = scale_n(n, t);
    if (t >= 0) {
        cl.cap = n * (size_t)res->nsamples;
        cl.lat = xmalloc(cl.cap * sizeof *cl.lat);
        atomic_store(&cl.nlat, 0);
    }
    for (int i = 0; i < res->nsamples && t >= 0; i++)
        if ((t = ncli_phase(&cl, n)) >= 0)
            res->samples[i] = (double)n / t;
    if (t < 0) {
        set_err(res, "nng client: %s", cl.errmsg);
        return 1; /* the process exits; nng's threads with it */
    }
    if ((rv = nng_close(cl.sock)) != 0) {
        set_err(res, "nng client: nng_close: %s", nng_strerror(rv));
        return 1;
    }
    for (int i = 0; i < k; i++)
        nng_aio_free(cl.c[i].aio);
    res->total_rt = atomic_load(&cl.total);
    res->n = n;
    res->rps = median(res->samples, res->nsamples);
    size_t nlat = atomic_load(&cl.nlat);
    percentiles(cl.lat, nlat < cl.cap ? nlat : cl.cap, res);
    free(cl.lat);
    res->ok = 1;
    return 0;
}

/* ---- the parent: processes, ports, time limits ---- */

static pid_t parent_pid;
static char ipc_path[128]; /* removed on the way out, signals included */

static void on_signal(int sig)
{
    if (ipc_path[0] != '\0')
        unlink(ipc_path);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* In a new child: die with the parent, bounded in time, default signals. */
static void child_setup(int limit_s)
{
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent_pid)
        _exit(1);
    alarm((unsigned)limit_s);
}

/* A free TCP port on 127.0.0.1 (bound to port 0 and read back), or 0. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Waits up to timeout_s for pid; then kills it and waits. Returns its wait
 * status; *killed says whether it had to be killed; *cpu_s and *csw (may be
 * NULL) get its CPU time and context switches. */
static int reap(pid_t pid, double timeout_s, bool *killed, double *cpu_s, uint64_t *csw)
{
    int status = 0;
    struct rusage ru;
    double limit = now_s() + timeout_s;
    *killed = false;
    for (;;) {
        memset(&ru, 0, sizeof ru);
        pid_t r = wait4(pid, &status, WNOHANG, &ru);
        if (r == pid && cpu_s != NULL) {
            *cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
            *csw = (uint64_t)ru.ru_nvcsw + (uint64_t)ru.ru_nivcsw;
        }
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            return -1;
        if (now_s() > limit)
            break;
        sleep_ms(5);
    }
    *killed = true;
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

static void describe_status(int status, char *out, size_t size)
{
    if (WIFEXITED(status))
        snprintf(out, size, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, size, "killed by signal %d (%s)", WTERMSIG(status),
                 WTERMSIG(status) == SIGALRM ? "its time limit" : strsignal(WTERMSIG(status)));
    else
        snprintf(out, size, "status %d", status);
}

/* Reads exactly len bytes from fd by the deadline. Returns len, the bytes
 * read before EOF, or -1 on error or time-out. */
static ssize_t read_by(int fd, void *buf, size_t len, double deadline)
{
    size_t got = 0;
    while (got < len) {
        double left = deadline - now_s();
        if (left <= 0)
            return -1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int rv = poll(&p, 1, (int)(left * 1000) + 1);
        if (rv < 0 && errno == EINTR)
            continue;
        if (rv < 0)
            return -1;
        if (rv == 0)
            continue;
        ssize_t r = read(fd, (char *)buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return (ssize_t)got;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static int make_pipe(int fds[2])
{
    if (pipe(fds) != 0) {
        fprintf(stderr, "bench_transport: pipe: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* One configuration: a server child, then a client child. Returns 0 with
 * *out filled, 1 on failure (described on stderr), EXIT_ADDRINUSE when the
 * server could not listen (the caller tries another port). */
static int run_config(enum impl impl, const char *tr, int k, bool quick, const char *url,
                      struct result *out)
{
    int limit = quick ? QUICK_CONFIG_S : CONFIG_S;
    double deadline = now_s() + limit;
    int ready[2] = {-1, -1}, ctl[2] = {-1, -1}, res[2] = {-1, -1};
    pid_t server = -1, client = -1;
    int rc = 1;
    bool killed;
    char what[64], how[96];
    snprintf(what, sizeof what, "%s %s x%d", impl_names[impl], tr, k);
    memset(out, 0, sizeof *out);

    if (make_pipe(ready) || make_pipe(ctl) || make_pipe(res))
        goto done;
    fflush(NULL); /* a child must not write the parent's buffers again */
    if ((server = fork()) < 0) {
        fprintf(stderr, "bench_transport: fork: %s\n", strerror(errno));
        goto done;
    }
    if (server == 0) {
        close(ready[0]);
        close(ctl[1]);
        close(res[0]);
        close(res[1]);
        child_setup(limit + 10);
        wf_log_set_hook(log_hook, NULL);
        int r = impl == WEFT ? weft_server(url, k, ready[1], ctl[0])
                             : nng_server(url, k, ready[1], ctl[0]);
        fflush(NULL);
        _exit(r);
    }
    close_fd(&ready[1]);
    close_fd(&ctl[0]);
    char byte;
    ssize_t r = read_by(ready[0], &byte, 1, now_s() + READY_S);
    if (r != 1) {
        int st = reap(server, r == 0 ? GRACE_S : 0, &killed, NULL, NULL);
        server = -1;
        if (!killed && WIFEXITED(st) && WEXITSTATUS(st) == EXIT_ADDRINUSE &&
            strcmp(tr, "tcp") == 0) {
            rc = EXIT_ADDRINUSE;
            goto done;
        }
        describe_status(st, how, sizeof how);
        fprintf(stderr, "bench_transport: %s: the server did not start listening on %s (%s)\n",
                what, url, killed ? "hung" : how);
        goto done;
    }

    fflush(NULL);
    if ((client = fork()) < 0) {
        fprintf(stderr, "bench_transport: fork: %s\n", strerror(errno));
        goto done;
    }
    if (client == 0) {
        close(ready[0]);
        close(ctl[1]);
        close(res[0]);
        child_setup(limit + 5);
        wf_log_set_hook(log_hook, NULL);
        static struct result cr;
        int c = impl == WEFT ? weft_client(url, k, quick, &cr) : nng_client(url, k, quick, &cr);
        if (c != 0 && cr.err[0] == '\0')
            set_err(&cr, "client failed");
        bool w = write_all(res[1], &cr, sizeof cr);
        fflush(NULL);
        _exit(c != 0 || !w ? 1 : 0);
    }
    close_fd(&res[1]);
    r = read_by(res[0], out, sizeof *out, deadline);
    double cpu = 0;
    uint64_t csw = 0;
    int st = reap(client, r == (ssize_t)sizeof *out ? GRACE_S : 0, &killed, &cpu, &csw);
    client = -1;
    if (r != (ssize_t)sizeof *out) {
        describe_status(st, how, sizeof how);
        fprintf(stderr, "bench_transport: %s: the client %s\n", what,
                r < 0 ? "did not finish in time (killed)" : how);
        goto done;
    }
    if (!out->ok) {
        fprintf(stderr, "bench_transport: %s: %s\n", what, out->err);
        goto done;
    }
    if (killed || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        describe_status(st, how, sizeof how);
        fprintf(stderr, "bench_transport: %s: the client %s after its results\n", what,
                killed ? "hung (killed)" : how);
        goto done;
    }
    /* Tell the server to go, and check that it does. */
    close_fd(&ctl[1]);
    out->client_cpu_s = cpu;
    out->client_csw = csw;
    st = reap(server, GRACE_S, &killed, &out->server_cpu_s, &out->server_csw);
    server = -1;
    if (killed || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        describe_status(st, how, sizeof how);
        fprintf(stderr, "bench_transport: %s: the server %s when told to stop\n", what,
                killed ? "hung (killed)" : how);
        goto done;
    }
    rc = 0;

done:
    if (client > 0)
        reap(client, 0, &killed, NULL, NULL);
    if (server > 0) {
        close_fd(&ctl[1]);
        reap(server, 0, &killed, NULL, NULL);
    }
    int *fds[] = {&ready[0], &ready[1], &ctl[0], &ctl[1], &res[0], &res[1]};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        close_fd(fds[i]);
    return rc;
}

/* ---- output ---- */

static void print_result(const char *key, const char *url, const struct result *r)
{
    printf(",\n  \"%s_rps\": %.0f,\n  \"%s_rps_samples\": [", key, r->rps, key);
    for (int i = 0; i < r->nsamples; i++)
        printf("%s%.0f", i ? ", " : "", r->samples[i]);
    printf("],\n  \"%s_n\": %llu", key, (unsigned long long)r->n);
    printf(",\n  \"%s_p50_us\": %.2f,\n  \"%s_p99_us\": %.2f", key, r->p50_us, key, r->p99_us);
    printf(",\n  \"%s_latencies\": %llu", key, (unsigned long long)r->nlat);
    printf(",\n  \"%s_connect_ms\": %.1f,\n  \"%s_url\": ", key, r->connect_ms, key);
    print_json_string(url);
    /* Per round trip over the processes' whole lives (set-up included). */
    double rt = r->total_rt ? (double)r->total_rt : 1;
    printf(",\n  \"%s_round_trips_total\": %llu", key, (unsigned long long)r->total_rt);
    printf(",\n  \"%s_client_cpu_us_per_rt\": %.2f,\n  \"%s_server_cpu_us_per_rt\": %.2f", key,
           r->client_cpu_s * 1e6 / rt, key, r->server_cpu_s * 1e6 / rt);
    printf(",\n  \"%s_client_csw_per_rt\": %.2f,\n  \"%s_server_csw_per_rt\": %.2f", key,
           (double)r->client_csw / rt, key, (double)r->server_csw / rt);
    if (r->frames_out != 0)
        printf(",\n  \"%s_frames_out\": %llu,\n  \"%s_frames_in\": %llu", key,
               (unsigned long long)r->frames_out, key, (unsigned long long)r->frames_in);
}

int main(int argc, char **argv)
{
    bool quick = false;
    int only = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc &&
                   (strcmp(argv[i + 1], "weft") == 0 || strcmp(argv[i + 1], "nng") == 0)) {
            only = strcmp(argv[++i], "weft") == 0 ? WEFT : NNG;
        } else {
            fprintf(stderr, "usage: %s [--quick] [--only weft|nng]\n", argv[0]);
            return 2;
        }
    }
    parent_pid = getpid();
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);

    static const char *const transports[] = {"tcp", "ipc"};
    static const int outstanding[] = {1, MAX_OUT};
    struct {
        char key[32], url[160];
        struct result r;
    } results[2 * 2 * 2];
    int nres = 0, ipc_seq = 0;
    for (int ti = 0; ti < 2; ti++) {
        for (int ki = 0; ki < 2; ki++) {
            for (int impl = WEFT; impl <= NNG; impl++) {
                if (only >= 0 && impl != only)
                    continue;
                const char *tr = transports[ti];
                int k = outstanding[ki];
                char url[160];
                int rc = EXIT_ADDRINUSE;
                for (int attempt = 0; attempt < 3 && rc == EXIT_ADDRINUSE; attempt++) {
                    if (strcmp(tr, "tcp") == 0) {
                        int port = free_port();
                        if (port == 0) {
                            fprintf(stderr, "bench_transport: no free TCP port: %s\n",
                                    strerror(errno));
                            return 1;
                        }
                        snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
                    } else {
                        snprintf(ipc_path, sizeof ipc_path, "/tmp/weft-bench-transport-%d-%d.ipc",
                                 (int)parent_pid, ipc_seq++);
                        unlink(ipc_path);
                        snprintf(url, sizeof url, "ipc://%s", ipc_path);
                    }
                    rc = run_config((enum impl)impl, tr, k, quick, url, &results[nres].r);
                    if (ipc_path[0] != '\0') {
                        unlink(ipc_path);
                        ipc_path[0] = '\0';
                    }
                }
                if (rc != 0) {
                    fprintf(stderr, "bench_transport: FAILED: %s %s x%d\n", impl_names[impl], tr,
                            k);
                    return 1;
                }
                snprintf(results[nres].key, sizeof results[nres].key, "%s_%s_%d", impl_names[impl],
                         tr, k);
                snprintf(results[nres].url, sizeof results[nres].url, "%s", url);
                fprintf(stderr, "bench_transport: %-14s %9.0f round trips/s, p50 %8.1f us\n",
                        results[nres].key, results[nres].r.rps, results[nres].r.p50_us);
                nres++;
            }
        }
    }

    printf("{\n  \"compiler\": ");
    print_json_string(COMPILER);
    printf(",\n  \"optimized\": %s,\n  \"quick\": %s,\n  \"samples\": %d", OPTIMIZED,
           quick ? "true" : "false", quick ? QUICK_SAMPLES : SAMPLES);
    printf(",\n  \"msg_bytes\": %d,\n  \"outstanding\": [1, %d]", MSG_BYTES, MAX_OUT);
    printf(",\n  \"nng_version\": ");
    print_json_string(nng_version());
    for (int i = 0; i < nres; i++)
        print_result(results[i].key, results[i].url, &results[i].r);
    printf("\n}\n");
    return fflush(stdout) == 0 ? 0 : 1;
}
