/* bench_transport's ceiling: the same request and reply as raw nng REQ/REP,
 * used the fast way.
 *
 * Server: K contexts on a rep0 socket, each echoing with an aio
 * (nng_ctx_recv, then nng_ctx_send of the same message).
 *
 * Client: K requests in flight on K contexts of a req0 socket, each aio's
 * callback sending the next request (nng_ctx_send, then nng_ctx_recv). The
 * callbacks run on nng's threads; the main thread waits for each run's end
 * on a condition variable. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "transport.h"

/* ---- the server ---- */

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

int nng_server(const struct tr_config *cfg, int fd)
{
    static struct nsrv s;
    int rv, k = cfg->k;
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
    if ((rv = nng_listen(s.sock, cfg->url, NULL, 0)) != 0) {
        fprintf(stderr, "bench_transport: nng server: cannot listen on %s: %s\n", cfg->url,
                nng_strerror(rv));
        return EXIT_ADDRINUSE;
    }
    for (int i = 0; i < k; i++)
        nng_ctx_recv(s.c[i].ctx, s.c[i].aio);
    if (!bench_write_all(fd, "R", 1)) {
        fprintf(stderr, "bench_transport: nng server: cannot report ready\n");
        return 1;
    }
    bench_wait_eof(fd);
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

/* ---- the client ---- */

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
    struct bench_lat lat;
    atomic_bool sampling; /* latencies are kept */
    nng_mtx *mtx;
    nng_cv *cv;
    bool run_done; /* under mtx */
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
    cl->run_done = true;
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
    tr_fill_body(nng_msg_body(m), seq);
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
    bool ok = tr_body_ok(nng_msg_body(m), nng_msg_len(m), c->seq);
    nng_msg_free(m);
    if (!ok) {
        ncli_fail(cl, 0, "reply", c->seq);
        return;
    }
    if (atomic_load(&cl->err) != 0)
        return;
    if (atomic_load(&cl->sampling))
        bench_lat_add(&cl->lat, (double)(now - c->t_send));
    atomic_fetch_add(&cl->total, 1);
    uint64_t done = atomic_fetch_add(&cl->done, 1) + 1;
    uint64_t seq = atomic_fetch_add(&cl->issued, 1);
    if (seq < cl->n) {
        ncli_send(c, seq);
    } else if (done == cl->n) {
        nng_mtx_lock(cl->mtx);
        cl->run_done = true;
        nng_cv_wake(cl->cv);
        nng_mtx_unlock(cl->mtx);
    }
}

/* n round trips with k in flight; returns their seconds, or -1 on error. */
static double ncli_run(struct ncli *cl, uint64_t n)
{
    uint64_t first = n < (uint64_t)cl->k ? n : (uint64_t)cl->k;
    cl->n = n;
    atomic_store(&cl->done, 0);
    atomic_store(&cl->issued, first);
    nng_mtx_lock(cl->mtx);
    cl->run_done = false;
    nng_mtx_unlock(cl->mtx);
    double t0 = bench_now_s();
    for (uint64_t i = 0; i < first; i++)
        ncli_send(&cl->c[i], i);
    nng_time limit = nng_clock() + (nng_time)ASK_TIMEOUT_MS * 3;
    nng_mtx_lock(cl->mtx);
    int rv = 0;
    while (!cl->run_done && rv == 0)
        rv = nng_cv_until(cl->cv, limit);
    nng_mtx_unlock(cl->mtx);
    double t = bench_now_s() - t0;
    if (atomic_load(&cl->err) != 0)
        return -1;
    if (rv != 0) {
        ncli_fail(cl, rv, "waiting for the run", atomic_load(&cl->done));
        return -1;
    }
    return t;
}

int nng_client(const struct tr_config *cfg, struct tr_result *res)
{
    static struct ncli cl;
    struct bench_series *s = &res->rate;
    int rv, k = cfg->k;
    double started = bench_now_s();
    cl.k = k;
    tr_series_init(s, cfg->quick);
    if ((rv = nng_mtx_alloc(&cl.mtx)) != 0 || (rv = nng_cv_alloc(&cl.cv, cl.mtx)) != 0 ||
        (rv = nng_req0_open(&cl.sock)) != 0) {
        tr_fail(res, "nng client: setup: %s", nng_strerror(rv));
        return 1;
    }
    for (int i = 0; i < k; i++) {
        cl.c[i].cli = &cl;
        if ((rv = nng_ctx_open(&cl.c[i].ctx, cl.sock)) != 0 ||
            (rv = nng_aio_alloc(&cl.c[i].aio, ncli_cb, &cl.c[i])) != 0) {
            tr_fail(res, "nng client: context: %s", nng_strerror(rv));
            return 1;
        }
        nng_aio_set_timeout(cl.c[i].aio, ASK_TIMEOUT_MS);
    }
    while ((rv = nng_dial(cl.sock, cfg->url, NULL, 0)) != 0) {
        if (rv != NNG_ECONNREFUSED || bench_now_s() - started > CONNECT_S) {
            tr_fail(res, "nng client: cannot dial %s: %s", cfg->url, nng_strerror(rv));
            return 1;
        }
        nng_msleep(5);
    }
    double t = ncli_run(&cl, 1); /* the probe */
    res->connect_ms = (bench_now_s() - started) * 1e3;
    while (t >= 0) {
        if (s->sampling && cl.lat.v == NULL)
            bench_lat_init(&cl.lat, s->n * (size_t)s->cfg.samples);
        atomic_store(&cl.sampling, s->sampling);
        if ((t = ncli_run(&cl, s->n)) >= 0 && !bench_series_add(s, t))
            break;
    }
    if (t < 0) {
        tr_fail(res, "nng client: %s", cl.errmsg);
        return 1; /* the process exits; nng's threads with it */
    }
    if ((rv = nng_close(cl.sock)) != 0) {
        tr_fail(res, "nng client: nng_close: %s", nng_strerror(rv));
        return 1;
    }
    for (int i = 0; i < k; i++)
        nng_aio_free(cl.c[i].aio);
    res->total_rt = atomic_load(&cl.total);
    res->nlat = bench_lat_summary(&cl.lat, &res->p50_us, &res->p99_us);
    bench_lat_free(&cl.lat);
    res->ok = 1;
    return 0;
}
