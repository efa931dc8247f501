/* What bench_transport's two sides share: the exchange (a MSG_BYTES body
 * that the server echoes), the configuration a client and a server child
 * get, and the result a client sends back to the parent. */
#ifndef WF_BENCH_TRANSPORT_H
#define WF_BENCH_TRANSPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "harness.h"

#define MSG_BYTES      64
#define MAX_OUT        64
#define ASK_TIMEOUT_MS 10000 /* far beyond a round trip: a lost reply fails the run */
#define CONNECT_S      10.0  /* the client must get its first answer by then */
#define SECRET         "weft-bench-transport"
#define EXIT_ADDRINUSE 3 /* the server could not listen: try another port */

/* One configuration, as both children see it. */
struct tr_config {
    const char *url;
    int k; /* requests in flight */
    bool quick;
};

/* What a client child sends back to the parent through its socket. */
struct tr_result {
    int ok;
    struct bench_series rate; /* round trips per second */
    double p50_us, p99_us;
    uint64_t nlat;
    double connect_ms;
    uint64_t total_rt; /* every round trip of the run: probe and calibration too */
    /* weft's client transport at the end (wf_transport_stats) */
    uint64_t frames_in, frames_out, send_failures, rejected;
    char err[256];
};

/* The servers: listen on cfg->url, write one byte to fd once listening,
 * echo until fd reads EOF; exit status 0, 1, or EXIT_ADDRINUSE. */
int weft_server(const struct tr_config *cfg, int fd);
int nng_server(const struct tr_config *cfg, int fd);
/* The clients: dial cfg->url, measure, fill res (res->err on failure);
 * return 0 or 1. */
int weft_client(const struct tr_config *cfg, struct tr_result *res);
int nng_client(const struct tr_config *cfg, struct tr_result *res);

/* A client's series: SAMPLES samples of ~150 ms each (3 of QUICK_N round
 * trips in quick runs). */
void tr_series_init(struct bench_series *s, bool quick);
/* Sets res->err unless an error is there already (the first counts). */
void tr_fail(struct tr_result *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The body of request seq: seq, then a pattern that depends on it. */
static inline void tr_fill_body(unsigned char *b, uint64_t seq)
{
    memcpy(b, &seq, sizeof seq);
    for (size_t i = sizeof seq; i < MSG_BYTES; i++)
        b[i] = (unsigned char)(seq * 31 + i);
}

static inline bool tr_body_ok(const void *body, size_t len, uint64_t seq)
{
    unsigned char want[MSG_BYTES];
    tr_fill_body(want, seq);
    return len == MSG_BYTES && memcmp(body, want, MSG_BYTES) == 0;
}

#endif
