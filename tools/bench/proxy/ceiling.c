/* bench_ceiling: the ceiling of the proxy benchmark. A minimal libuv HTTP
 * server that answers every request with the same fixed body, so that wrk on
 * this machine measures what a single-threaded event loop can do at all when
 * it parses nothing and computes nothing.
 *
 *   bench_ceiling [--port P] [--host 127.0.0.1] [--body-bytes N]
 *
 * It parses just enough to answer keep-alive and pipelined requests: every
 * "\r\n\r\n" ends a request (bodies are not supported: the benchmark only
 * sends GETs), and each one gets a copy of the same prepared response. All
 * the answers to one read go out in one uv_write. It does not use weft_http's
 * request reader, as the listener does: under callgrind the reader took
 * about 2,500 instructions per wrk request in on_read against 700 for this
 * scan, a cost the ceiling is meant not to have. The response head is
 * weft_http's. A client that stops
 * reading stops being read (backpressure) until its writes drain.
 *
 * Prints "listening on HOST:PORT" on stdout once ready (--port 0, the
 * default, picks a free port) and exits on SIGINT/SIGTERM. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "response.h"

#define MAX_BODY      (1u << 20)
#define READ_BUF      (64 * 1024)
#define WRITE_HIGH    (1u << 20) /* stop reading a client with this much unsent */
#define BUFS_ON_STACK 64

static uv_loop_t *loop;
static uv_tcp_t listener;
static uv_signal_t sigint_h, sigterm_h;
static char *response; /* head + body, the same for every request */
static size_t response_len;
static char scratch[READ_BUF]; /* every read lands here: the loop has one thread */
static unsigned nconns;
static int stopping;

struct conn {
    struct conn *prev, *next;
    uv_tcp_t tcp;
    int matched; /* how much of "\r\n\r\n" the last bytes read match */
    int reading;
};

static struct conn *conns;

struct wreq {
    uv_write_t req;
    struct conn *c;
};

static void on_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    nconns--;
    free(c);
}

static void conn_close(struct conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(scratch, sizeof scratch);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void on_written(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct conn *c = w->c;
    free(w);
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (!c->reading && !uv_is_closing((uv_handle_t *)&c->tcp) &&
        c->tcp.write_queue_size < WRITE_HIGH / 2) {
        c->reading = 1;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
}

/* How many requests end in data[0..n), carrying the partial match of
 * "\r\n\r\n" from one read to the next. */
static size_t count_requests(struct conn *c, const char *data, size_t n)
{
    static const char end[4] = {'\r', '\n', '\r', '\n'};
    size_t count = 0;
    int m = c->matched;
    for (size_t i = 0; i < n; i++) {
        char ch = data[i];
        if (ch == end[m]) {
            if (++m == 4) {
                count++;
                m = 0;
            }
        } else {
            m = ch == '\r' ? 1 : 0;
        }
    }
    c->matched = m;
    return count;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (n < 0) {
        conn_close(c); /* EOF or error alike: nothing is half-answered */
        return;
    }
    size_t k = count_requests(c, buf->base, (size_t)n);
    while (k > 0) {
        uv_buf_t bufs[BUFS_ON_STACK];
        unsigned nb = k < BUFS_ON_STACK ? (unsigned)k : BUFS_ON_STACK;
        for (unsigned i = 0; i < nb; i++)
            bufs[i] = uv_buf_init(response, (unsigned)response_len);
        k -= nb;
        /* The common case: the socket takes it all at once, no request. */
        if (c->tcp.write_queue_size == 0) {
            int rv = uv_try_write(s, bufs, nb);
            if (rv == (int)(nb * response_len))
                continue;
            if (rv < 0 && rv != UV_EAGAIN) {
                conn_close(c);
                return;
            }
            if (rv > 0) { /* skip what went out; libuv copies the buffer list */
                size_t done = (size_t)rv;
                unsigned first = (unsigned)(done / response_len);
                bufs[first].base += done % response_len;
                bufs[first].len -= done % response_len;
                memmove(bufs, bufs + first, (nb - first) * sizeof bufs[0]);
                nb -= first;
            }
        }
        struct wreq *w = malloc(sizeof *w);
        if (w == NULL) {
            conn_close(c);
            return;
        }
        w->c = c;
        if (uv_write(&w->req, s, bufs, nb, on_written) != 0) {
            free(w);
            conn_close(c);
            return;
        }
    }
    if (c->tcp.write_queue_size >= WRITE_HIGH && c->reading) {
        c->reading = 0;
        uv_read_stop(s);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0) {
        fprintf(stderr, "bench_ceiling: accept: %s\n", uv_strerror(status));
        return;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->next = conns;
    if (conns)
        conns->prev = c;
    conns = c;
    nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->reading = 1;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    if (stopping)
        return;
    stopping = 1;
    uv_close((uv_handle_t *)&listener, NULL);
    uv_close((uv_handle_t *)&sigint_h, NULL);
    uv_close((uv_handle_t *)&sigterm_h, NULL);
    for (struct conn *c = conns; c; c = c->next)
        conn_close(c);
}

static int build_response(size_t body_bytes)
{
    static const char line[] = "The ceiling: every request gets these same bytes.\n";
    char head[WF__HTTP_HEAD_MAX + 32];
    int hl = wf__http_response_head(head, sizeof head, 200, "text/html; charset=utf-8", body_bytes);
    if (hl < 0)
        return -1;
    hl += snprintf(head + hl, sizeof head - (size_t)hl, "Connection: keep-alive\r\n\r\n");
    response_len = (size_t)hl + body_bytes;
    response = malloc(response_len);
    if (response == NULL)
        return -1;
    memcpy(response, head, (size_t)hl);
    for (size_t i = 0; i < body_bytes; i++)
        response[hl + i] = line[i % (sizeof line - 1)];
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_ceiling [--port P] [--host 127.0.0.1] [--body-bytes N]\n");
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {{"port", 1, 0, 'p'},
                                          {"host", 1, 0, 'H'},
                                          {"body-bytes", 1, 0, 'b'},
                                          {"help", 0, 0, 'h'},
                                          {0, 0, 0, 0}};
    const char *host = "127.0.0.1";
    long port = 0, body = 1200;
    char *end;
    int ch;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case 'p':
            errno = 0;
            port = strtol(optarg, &end, 10);
            if (errno || *end || port < 0 || port > 65535) {
                usage();
                return 2;
            }
            break;
        case 'H':
            host = optarg;
            break;
        case 'b':
            errno = 0;
            body = strtol(optarg, &end, 10);
            if (errno || *end || body < 0 || body > (long)MAX_BODY) {
                usage();
                return 2;
            }
            break;
        default:
            usage();
            return 2;
        }
    }
    if (optind != argc || build_response((size_t)body) != 0) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    loop = uv_default_loop();
    uv_signal_init(loop, &sigint_h);
    uv_signal_init(loop, &sigterm_h);
    uv_signal_start(&sigint_h, on_signal, SIGINT);
    uv_signal_start(&sigterm_h, on_signal, SIGTERM);

    struct sockaddr_in addr;
    int rv = uv_ip4_addr(host, (int)port, &addr);
    uv_tcp_init(loop, &listener);
    if (rv == 0)
        rv = uv_tcp_bind(&listener, (const struct sockaddr *)&addr, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&listener, 511, on_connection);
    int len = sizeof addr;
    if (rv == 0)
        rv = uv_tcp_getsockname(&listener, (struct sockaddr *)&addr, &len);
    if (rv != 0) {
        fprintf(stderr, "bench_ceiling: listen on %s:%ld: %s\n", host, port, uv_strerror(rv));
        return 1;
    }
    char ip[64];
    uv_ip4_name(&addr, ip, sizeof ip);
    printf("listening on %s:%d\n", ip, ntohs(addr.sin_port));
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    int left = uv_loop_close(loop) != 0;
    free(response);
    if (left)
        fprintf(stderr, "bench_ceiling: handles left open at exit\n");
    return left;
}
