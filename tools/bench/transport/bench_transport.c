/* bench_transport: remote ask/reply over weft's transport against raw nng
 * REQ/REP, both between two processes on one host, so run.py can compare.
 *
 * For each transport (tcp://127.0.0.1:PORT and ipc:///tmp/...), each number
 * of requests in flight K (1 and 64) and each side, a server child and a
 * client child exchange a 64-byte request and its echo:
 *
 *   weft_T_K_*  weft_echo.c: an actor "echo" on a server node, asked by a
 *               driver actor on a client node that keeps K asks in flight
 *   nng_T_K_*   nng_echo.c, the ceiling: rep0 and req0 sockets, K contexts
 *               each, driven by aio callbacks
 *
 * Keys per configuration (prefix IMPL_T_K, e.g. weft_tcp_64):
 *   _rps        round trips per second: median of SAMPLES samples of N
 *               round trips each, N calibrated to ~TARGET_S per sample
 *   _rps_samples, _n
 *   _p50_us, _p99_us  per round trip latency (uv_hrtime at the send to the
 *               reply's callback), over every round trip of the samples
 *   _connect_ms time from the client's start to its first answered request
 *   _client_cpu_us_per_rt, ... the children's CPU and context switches
 *               over their whole lives, per round trip
 *
 * The parent never touches nng, libuv or weft, so each child starts clean;
 * the harness bounds, kills and reaps the children. The server lives until
 * the parent closes its socket. A TCP port taken meanwhile is retried.
 *
 * Output: one JSON object on stdout; errors on stderr and exit status 1.
 * --quick: small N, 3 samples, a smoke test. --only weft|nng runs one side.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <nng/nng.h>

#include "transport.h"

#define SAMPLES        7
#define QUICK_SAMPLES  3
#define TARGET_S       0.15 /* per sample */
#define CALIBRATE_S    0.05 /* a calibration run shorter than this is too noisy */
#define QUICK_N        500  /* round trips per sample in --quick */
#define MIN_N          200
#define READY_S        10.0 /* the server must be listening by then */
#define CONFIG_S       120  /* one configuration, client and server, at most */
#define QUICK_CONFIG_S 40
#define GRACE_S        5.0 /* for a child to exit once told, before SIGKILL */

void tr_series_init(struct bench_series *s, bool quick)
{
    bench_series_init(s, &(struct bench_series_config){.unit = BENCH_PER_SECOND,
                                                       .samples = quick ? QUICK_SAMPLES : SAMPLES,
                                                       .n = quick ? QUICK_N : 1000,
                                                       .quick = quick,
                                                       .calibrate_s = CALIBRATE_S,
                                                       .target_s = TARGET_S,
                                                       .min_n = MIN_N});
}

void tr_fail(struct tr_result *res, const char *fmt, ...)
{
    if (res->err[0] != '\0')
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->err, sizeof res->err, fmt, ap);
    va_end(ap);
}

struct side {
    const char *name;
    int (*server)(const struct tr_config *cfg, int fd);
    int (*client)(const struct tr_config *cfg, struct tr_result *res);
};

static const struct side sides[] = {{"weft", weft_server, weft_client},
                                    {"nng", nng_server, nng_client}};

/* What a child gets: the configuration and its side. */
struct job {
    struct tr_config cfg;
    const struct side *side;
};

static int server_main(void *arg, int fd)
{
    const struct job *j = arg;
    return j->side->server(&j->cfg, fd);
}

static int client_main(void *arg, int fd)
{
    const struct job *j = arg;
    static struct tr_result res;
    int rv = j->side->client(&j->cfg, &res);
    if (rv != 0)
        tr_fail(&res, "client failed");
    return bench_write_all(fd, &res, sizeof res) ? rv : 1;
}

/* One configuration: a server child, then a client child. Returns 0 with
 * *out filled, 1 on failure (described on stderr), EXIT_ADDRINUSE when the
 * server could not listen on its TCP port (the caller tries another). */
static int run_config(const struct job *j, const char *what, struct tr_result *out,
                      struct bench_child *client, struct bench_child *server)
{
    int limit = j->cfg.quick ? QUICK_CONFIG_S : CONFIG_S, rc = 1;
    char how[96], byte;
    *client = (struct bench_child){.pid = -1, .fd = -1};
    memset(out, 0, sizeof *out);

    if (bench_child_start(server, "server", server_main, (void *)j, limit + 10) != 0)
        return 1;
    ssize_t r = bench_child_read(server, &byte, 1, READY_S);
    if (r != 1) {
        bench_child_wait(server, r == 0 ? GRACE_S : 0);
        if (!server->killed && WIFEXITED(server->status) &&
            WEXITSTATUS(server->status) == EXIT_ADDRINUSE && strncmp(j->cfg.url, "tcp:", 4) == 0)
            return EXIT_ADDRINUSE;
        bench_child_describe(server, how, sizeof how);
        fprintf(stderr, "bench_transport: %s: the server did not start listening on %s (%s)\n",
                what, j->cfg.url, how);
        return 1;
    }

    if (bench_child_start(client, "client", client_main, (void *)j, limit + 5) != 0)
        goto done;
    r = bench_child_read(client, out, sizeof *out, limit);
    bool clean = bench_child_wait(client, r == (ssize_t)sizeof *out ? GRACE_S : 0);
    bench_child_describe(client, how, sizeof how);
    if (r != (ssize_t)sizeof *out) {
        fprintf(stderr, "bench_transport: %s: the client %s\n", what,
                r < 0 ? "did not finish in time (killed)" : how);
        goto done;
    }
    if (!out->ok) {
        fprintf(stderr, "bench_transport: %s: %s\n", what, out->err);
        goto done;
    }
    if (!clean) {
        fprintf(stderr, "bench_transport: %s: the client %s after its results\n", what, how);
        goto done;
    }
    /* Tell the server to go, and check that it does. */
    if (!bench_child_wait(server, GRACE_S)) {
        bench_child_describe(server, how, sizeof how);
        fprintf(stderr, "bench_transport: %s: the server %s when told to stop\n", what, how);
        goto done;
    }
    rc = 0;
done:
    bench_child_wait(client, 0);
    bench_child_wait(server, 0);
    return rc;
}

static void print_result(const char *key, const char *url, const struct tr_result *r,
                         const struct bench_child *client, const struct bench_child *server)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%.40s_", key);
    bench_json_prefix(prefix);
    bench_json_num("rps", 0, bench_series_median(&r->rate));
    bench_json_list("rps_samples", 0, r->rate.samples, r->rate.nsamples);
    bench_json_u64("n", r->rate.n);
    bench_json_num("p50_us", 2, r->p50_us);
    bench_json_num("p99_us", 2, r->p99_us);
    bench_json_u64("latencies", r->nlat);
    bench_json_num("connect_ms", 1, r->connect_ms);
    bench_json_str("url", url);
    /* Per round trip over the processes' whole lives (set-up included). */
    double rt = r->total_rt ? (double)r->total_rt : 1;
    bench_json_u64("round_trips_total", r->total_rt);
    bench_json_num("client_cpu_us_per_rt", 2, client->cpu_s * 1e6 / rt);
    bench_json_num("server_cpu_us_per_rt", 2, server->cpu_s * 1e6 / rt);
    bench_json_num("client_csw_per_rt", 2, (double)client->csw / rt);
    bench_json_num("server_csw_per_rt", 2, (double)server->csw / rt);
    if (r->frames_out != 0) {
        bench_json_u64("frames_out", r->frames_out);
        bench_json_u64("frames_in", r->frames_in);
    }
    bench_json_prefix(NULL);
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
            only = strcmp(argv[++i], "weft") == 0 ? 0 : 1;
        } else {
            fprintf(stderr, "usage: %s [--quick] [--only weft|nng]\n", argv[0]);
            return 2;
        }
    }
    bench_name_set("bench_transport");
    bench_signals_install();

    static const char *const transports[] = {"tcp", "ipc"};
    static const int outstanding[] = {1, MAX_OUT};
    static struct {
        char key[32], url[160];
        struct tr_result r;
        struct bench_child client, server;
    } res[2 * 2 * 2];
    int nres = 0;
    for (int ti = 0; ti < 2; ti++) {
        for (int ki = 0; ki < 2; ki++) {
            for (int si = 0; si < 2; si++) {
                if (only >= 0 && si != only)
                    continue;
                const char *tr = transports[ti];
                struct job j = {.cfg = {.url = res[nres].url, .k = outstanding[ki], .quick = quick},
                                .side = &sides[si]};
                snprintf(res[nres].key, sizeof res[nres].key, "%s_%s_%d", sides[si].name, tr,
                         j.cfg.k);
                int rc = EXIT_ADDRINUSE;
                for (int attempt = 0; attempt < 3 && rc == EXIT_ADDRINUSE; attempt++) {
                    if (strcmp(tr, "tcp") == 0) {
                        int port = bench_free_port();
                        if (port == 0)
                            bench_die("no free TCP port");
                        snprintf(res[nres].url, sizeof res[nres].url, "tcp://127.0.0.1:%d", port);
                    } else {
                        bench_ipc_url("transport", res[nres].url, sizeof res[nres].url);
                    }
                    rc = run_config(&j, res[nres].key, &res[nres].r, &res[nres].client,
                                    &res[nres].server);
                    bench_ipc_release();
                }
                if (rc != 0)
                    bench_die("FAILED: %s %s x%d", sides[si].name, tr, j.cfg.k);
                fprintf(stderr, "bench_transport: %-14s %9.0f round trips/s, p50 %8.1f us\n",
                        res[nres].key, bench_series_median(&res[nres].r.rate), res[nres].r.p50_us);
                nres++;
            }
        }
    }

    bench_json_begin("bench_transport", quick, quick ? QUICK_SAMPLES : SAMPLES);
    bench_json_u64("msg_bytes", MSG_BYTES);
    bench_json_list("outstanding", 0, (const double[]){1, MAX_OUT}, 2);
    bench_json_str("nng_version", nng_version());
    for (int i = 0; i < nres; i++)
        print_result(res[i].key, res[i].url, &res[i].r, &res[i].client, &res[i].server);
    return bench_json_end();
}
