/* bench_actors' nng inproc: round trips of a raw nng inproc exchange of the
 * same payload between two pair1 sockets in this process, with nng_send /
 * nng_recv: what delivering locally through nng inproc would cost instead
 * of weft's direct mailbox path. Single thread when nng allows it (probed
 * with send/receive timeouts); otherwise a second thread echoes. */
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/supplemental/util/platform.h>

#include "actors.h"

#define NNG_PROBE_MS 2000 /* an nng call blocked this long is a deadlock */

static void check_nng(int rv, const char *what)
{
    if (rv != 0)
        bench_die("%s: %s", what, nng_strerror(rv));
}

struct ipair {
    nng_socket a, b;
    nng_thread *echo; /* NULL: a and b are both driven by the main thread */
    int echo_err;
};

static void echo_main(void *arg)
{
    struct ipair *p = arg;
    for (;;) {
        unsigned char buf[64];
        size_t len = sizeof buf;
        int rv = nng_recv(p->b, buf, &len, 0);
        if (rv == NNG_ECLOSED)
            return;
        if (rv == 0)
            rv = nng_send(p->b, buf, len, 0);
        if (rv == NNG_ECLOSED)
            return;
        if (rv != 0) {
            p->echo_err = rv;
            return;
        }
    }
}

static void ipair_open(struct ipair *p, const char *url, int timeout_ms)
{
    check_nng(nng_pair1_open(&p->a), "nng_pair1_open");
    check_nng(nng_pair1_open(&p->b), "nng_pair1_open");
    nng_socket both[2] = {p->a, p->b};
    for (int i = 0; i < 2; i++) {
        check_nng(nng_socket_set_ms(both[i], NNG_OPT_SENDTIMEO, timeout_ms), "NNG_OPT_SENDTIMEO");
        check_nng(nng_socket_set_ms(both[i], NNG_OPT_RECVTIMEO, timeout_ms), "NNG_OPT_RECVTIMEO");
    }
    check_nng(nng_listen(p->a, url, NULL, 0), "nng_listen");
    check_nng(nng_dial(p->b, url, NULL, 0), "nng_dial");
    p->echo = NULL;
    p->echo_err = 0;
}

static void ipair_close(struct ipair *p)
{
    check_nng(nng_close(p->a), "nng_close");
    check_nng(nng_close(p->b), "nng_close"); /* ends the echo thread's recv */
    if (p->echo != NULL) {
        nng_thread_destroy(p->echo); /* joins */
        p->echo = NULL;
        if (p->echo_err != 0)
            bench_die("nng echo thread: %s", nng_strerror(p->echo_err));
    }
}

/* One round trip: a sends, b receives and sends back (here, or on the echo
 * thread), a receives. Returns 0 or the first nng error. */
static int nng_round_trip(struct ipair *p, uint64_t v)
{
    unsigned char buf[64];
    size_t len = sizeof buf;
    int rv;
    if ((rv = nng_send(p->a, &v, sizeof v, 0)) != 0)
        return rv;
    if (p->echo == NULL) {
        if ((rv = nng_recv(p->b, buf, &len, 0)) != 0)
            return rv;
        if ((rv = nng_send(p->b, buf, len, 0)) != 0)
            return rv;
        len = sizeof buf;
    }
    if ((rv = nng_recv(p->a, buf, &len, 0)) != 0)
        return rv;
    uint64_t back;
    if (len != sizeof back)
        return NNG_EPROTO;
    memcpy(&back, buf, sizeof back);
    return back == v ? 0 : NNG_EPROTO;
}

static double nng_run_fn(uint64_t n, void *arg)
{
    struct nng_measure *m = arg;
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = bench_now_s();
    for (uint64_t i = 0; i < n; i++)
        check_nng(nng_round_trip(m->p, i), "nng round trip");
    double t = bench_now_s() - t0;
    getrusage(RUSAGE_SELF, &r1);
    if (m->rate.sampling) {
        m->rts += n;
        m->csw += csw(&r1) - csw(&r0);
    }
    return t;
}

void measure_nng(bool quick, int samples, struct nng_measure *out)
{
    struct ipair p;
    /* Probe: can one thread drive both ends? A deadlock shows as a timeout. */
    ipair_open(&p, "inproc://weft-bench-actors-probe", NNG_PROBE_MS);
    int rv = 0;
    for (uint64_t i = 0; i < 1000 && rv == 0; i++)
        rv = nng_round_trip(&p, i);
    out->one_thread = rv == 0;
    if (rv != 0 && rv != NNG_ETIMEDOUT)
        bench_die("nng inproc probe: %s", nng_strerror(rv));
    ipair_close(&p);

    ipair_open(&p, "inproc://weft-bench-actors", -1);
    if (!out->one_thread)
        check_nng(nng_thread_create(&p.echo, echo_main, &p), "nng_thread_create");
    out->p = &p;
    actors_series_init(&out->rate, quick, samples);
    bench_series_run(&out->rate, nng_run_fn, out);
    out->csw_per_rt = (double)out->csw / (double)out->rts;
    ipair_close(&p);
}
