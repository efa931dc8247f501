/* transform-server: the poetry transform service of Dave Peticolas' Twisted
 * tutorial (twisted-server-1/transformedpoetry.py), to play the upstream of
 * the proxy's transformer: a client sends a netstring "XFORM.POEM" and gets
 * the transformed poem back as a netstring ("27:cummingsify.HERE IS MY
 * POEM," is answered "15:here is my poem,").
 *
 *   transform-server --port P [--host 127.0.0.1] [--slow] [--delay-ms D]
 *                    [--fail-every K] [--max-bytes N] [--read-timeout-ms T]
 *                    [--max-conns N]
 *
 * Transforms: cummingsify (ASCII lower case, the tutorial's one) and upper
 * (ASCII upper case). Bytes past ASCII are left as they are.
 *
 * Each netstring received is answered in order on the same connection,
 * which stays open until the client closes it (the tutorial's server
 * closes after one answer; its clients close after one too, so both work).
 * The protocol has no error message: a request without '.', an unknown
 * transform and a failed one close the connection without a reply, as the
 * tutorial's server does. Bounded input: a netstring longer than
 * --max-bytes (default 1 MiB) or a malformed length closes the connection
 * as soon as its prefix says so; a connection that sends no whole request
 * within --read-timeout-ms (default 10000) of its last one is closed.
 *
 * --slow: wait --delay-ms (default 1000) before each answer, to play an
 * overloaded service. --fail-every K: every K-th request (counted over the
 * whole server) fails: the connection closes without a reply.
 * --max-conns N (default 1024): with N connections open, a new one is reset.
 *
 * Prints "listening on HOST:PORT" on stdout once ready (--port 0 picks a
 * free port), logs each request on stderr, and exits on SIGINT/SIGTERM.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "listen.h"
#include "netstring.h"

#define MAX_CONNS       1024 /* the default --max-conns */
#define MAX_BYTES       (1u << 20)
#define MAX_BYTES_LIMIT (64u << 20)
#define READ_TIMEOUT_MS 10000
#define DELAY_MS        1000
#define MAX_DELAY_MS    600000
/* A client that stops reading must not hold a connection forever. */
#define WRITE_STALL_MS 30000
#define XFORM_NAME_MAX 32

struct opts {
    const char *host;
    int port;
    bool slow;
    uint64_t delay_ms, fail_every, read_timeout_ms;
    size_t max_bytes;
    int max_conns;
};

struct conn;

struct server {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_signal_t sigint, sigterm;
    struct opts o;
    struct conn *conns; /* open connections, to close them on a signal */
    int nconns;
    uint64_t accepted, requests;
    bool stopping;
    char scratch[64 * 1024]; /* every read lands here; the loop has one thread */
};

enum conn_state {
    WAITING, /* for a whole request */
    PAUSED,  /* --slow: before an answer */
    WRITING, /* an answer is being written */
    CLOSING,
};

struct conn {
    struct server *srv;
    struct conn *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer; /* the read timeout, the --slow delay, the write stall */
    uv_write_t wreq;
    int open_handles;
    enum conn_state state;
    bool eof;        /* the client shut its side: answer what it sent, then close */
    bool paused;     /* reading stopped: a whole request waits behind the answer */
    uint64_t id, n;  /* connection number, requests answered on it */
    uint64_t req_at; /* when the request being answered arrived (ms) */
    char *in;        /* bytes read and not yet taken as requests */
    size_t inlen, incap;
    char head[WF__NS_HEAD_MAX];
    size_t headlen;
    char *out; /* the answer being written */
    size_t outlen;
    char xform[XFORM_NAME_MAX + 1];
};

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: transform-server --port P [--host 127.0.0.1] [--slow] [--delay-ms D]\n"
            "                        [--fail-every K] [--max-bytes N] [--read-timeout-ms T]\n"
            "                        [--max-conns N]\n"
            "  transforms: cummingsify (lower case), upper (upper case)\n"
            "  --slow            wait --delay-ms (default %d) before each answer\n"
            "  --fail-every K    every K-th request closes the connection without a reply\n"
            "  --max-bytes N     longest request netstring (default %u)\n"
            "  --read-timeout-ms T  close a connection silent for T ms (default %d)\n"
            "  --max-conns N     reset new connections while N are open (default %d)\n",
            DELAY_MS, MAX_BYTES, READ_TIMEOUT_MS, MAX_CONNS);
}

/* ---- the transforms ---- */

static void cummingsify(char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            s[i] = (char)(s[i] - 'A' + 'a');
}

static void upper(char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 'a' && s[i] <= 'z')
            s[i] = (char)(s[i] - 'a' + 'A');
}

static const struct {
    const char *name;
    void (*fn)(char *s, size_t n);
} transforms[] = {{"cummingsify", cummingsify}, {"upper", upper}};

/* ---- connections ---- */

static void on_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->open_handles == 0) {
        free(c->in);
        free(c->out);
        free(c);
    }
}

static void conn_close(struct conn *c, const char *why)
{
    if (c->state == CLOSING)
        return;
    c->state = CLOSING;
    struct server *srv = c->srv;
    fprintf(stderr, "#%llu: closing after %llu answer(s): %s\n", (unsigned long long)c->id,
            (unsigned long long)c->n, why);
    *(c->prev ? &c->prev->next : &srv->conns) = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    srv->nconns--;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_timer(uv_timer_t *t);
static void next_request(struct conn *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void on_written(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    if (status == UV_ECANCELED || c->state == CLOSING)
        return;
    free(c->out);
    c->out = NULL;
    if (status < 0) {
        fprintf(stderr, "#%llu: client gone before its answer: %s\n", (unsigned long long)c->id,
                uv_strerror(status));
        conn_close(c, "write failed");
        return;
    }
    c->n++;
    fprintf(stderr, "#%llu: answered %s (%zu bytes) in %llu ms\n", (unsigned long long)c->id,
            c->xform, c->outlen, (unsigned long long)(now_ms() - c->req_at));
    c->state = WAITING;
    next_request(c);
}

static void send_answer(struct conn *c)
{
    uv_buf_t b[3] = {uv_buf_init(c->head, (unsigned)c->headlen),
                     uv_buf_init(c->out, (unsigned)c->outlen), uv_buf_init(",", 1)};
    c->state = WRITING;
    c->wreq.data = c;
    int rv = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, b, 3, on_written);
    if (rv != 0) {
        fprintf(stderr, "#%llu: write: %s\n", (unsigned long long)c->id, uv_strerror(rv));
        conn_close(c, "write failed");
        return;
    }
    uv_timer_start(&c->timer, on_timer, WRITE_STALL_MS, 0);
}

/* One request, data[0..n): "XFORM.POEM". Returns false when the
 * connection closed instead of answering. */
static bool handle(struct conn *c, const char *data, size_t n)
{
    struct server *srv = c->srv;
    uint64_t rid = ++srv->requests;
    const char *dot = memchr(data, '.', n);
    size_t nl = dot ? (size_t)(dot - data) : 0;
    if (dot == NULL) {
        fprintf(stderr, "#%llu: request %llu has no '.' (not XFORM.POEM)\n",
                (unsigned long long)c->id, (unsigned long long)rid);
        conn_close(c, "bad request");
        return false;
    }
    int k = -1;
    for (size_t i = 0; i < sizeof transforms / sizeof transforms[0]; i++)
        if (strlen(transforms[i].name) == nl && memcmp(transforms[i].name, data, nl) == 0)
            k = (int)i;
    if (k < 0) {
        /* Printed with its length bounded and its bytes as they are is
         * not safe for a terminal: say only how long it was. */
        fprintf(stderr, "#%llu: request %llu: no such transform (%zu-byte name)\n",
                (unsigned long long)c->id, (unsigned long long)rid, nl);
        conn_close(c, "unknown transform");
        return false;
    }
    snprintf(c->xform, sizeof c->xform, "%s", transforms[k].name);
    size_t plen = n - nl - 1;
    fprintf(stderr, "#%llu: request %llu: %s of %zu bytes\n", (unsigned long long)c->id,
            (unsigned long long)rid, c->xform, plen);
    if (srv->o.fail_every > 0 && rid % srv->o.fail_every == 0) {
        fprintf(stderr, "#%llu: request %llu: transform failed (--fail-every %llu)\n",
                (unsigned long long)c->id, (unsigned long long)rid,
                (unsigned long long)srv->o.fail_every);
        conn_close(c, "transform failed");
        return false;
    }
    c->out = malloc(plen ? plen : 1);
    if (c->out == NULL) {
        conn_close(c, "out of memory");
        return false;
    }
    memcpy(c->out, dot + 1, plen);
    transforms[k].fn(c->out, plen);
    c->outlen = plen;
    c->headlen = wf__netstring_head(c->head, plen);
    c->req_at = now_ms();
    if (srv->o.slow) {
        c->state = PAUSED;
        uv_timer_start(&c->timer, on_timer, srv->o.delay_ms, 0);
    } else {
        send_answer(c);
    }
    return true;
}

/* Takes the next whole request from c->in, if there is one; otherwise
 * waits for more (or closes, when no more can come). */
static void next_request(struct conn *c)
{
    size_t start, len, used;
    int st = wf__netstring_parse(c->in, c->inlen, c->srv->o.max_bytes, &start, &len, &used);
    if (st == WF__NS_MALFORMED || st == WF__NS_TOO_LARGE) {
        fprintf(stderr, "#%llu: %s (limit %zu bytes)\n", (unsigned long long)c->id,
                wf__netstring_what(st), c->srv->o.max_bytes);
        conn_close(c, wf__netstring_what(st));
        return;
    }
    if (st == WF__NS_MORE) {
        if (c->paused && !c->eof) {
            c->paused = false;
            uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        }
        if (c->eof)
            conn_close(c, c->inlen ? "client closed mid-request" : "client closed");
        else
            uv_timer_start(&c->timer, on_timer, c->srv->o.read_timeout_ms, 0);
        return;
    }
    bool answering = handle(c, c->in + start, len);
    if (!answering)
        return;
    memmove(c->in, c->in + used, c->inlen - used);
    c->inlen -= used;
}

static int append(struct conn *c, const char *data, size_t n)
{
    /* The longest request, its head and its comma: more is never needed. */
    size_t limit = c->srv->o.max_bytes + WF__NS_HEAD_MAX + 1;
    if (c->inlen + n > c->incap) {
        size_t cap = c->incap ? c->incap : 4096;
        while (cap < c->inlen + n)
            cap *= 2;
        if (cap > limit)
            cap = limit > c->inlen + n ? limit : c->inlen + n;
        char *b = realloc(c->in, cap);
        if (b == NULL)
            return -1;
        c->in = b;
        c->incap = cap;
    }
    memcpy(c->in + c->inlen, data, n);
    c->inlen += n;
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    *buf = uv_buf_init(c->srv->scratch, sizeof c->srv->scratch);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (n == 0 || c->state == CLOSING)
        return;
    if (n == UV_EOF) {
        uv_read_stop(s);
        c->eof = true;
        if (c->state != WAITING) {
            /* A half-close still gets its answers; a client that went away
             * (the proxy giving up) makes the write fail or go nowhere. */
            fprintf(stderr, "#%llu: client closed its side with an answer pending\n",
                    (unsigned long long)c->id);
            return;
        }
        next_request(c);
        return;
    }
    if (n < 0) {
        conn_close(c, uv_strerror((int)n));
        return;
    }
    /* Bounded: a request over the limit is refused by its length prefix
     * long before its bytes could pile up; pipelined requests beyond one
     * whole one wait in the socket (reading stops) while one is answered. */
    if (append(c, buf->base, (size_t)n) != 0) {
        conn_close(c, "out of memory");
        return;
    }
    if (c->inlen > c->srv->o.max_bytes + WF__NS_HEAD_MAX + 1 && c->state != WAITING) {
        uv_read_stop(s);
        c->paused = true;
    }
    if (c->state == WAITING)
        next_request(c);
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    switch (c->state) {
    case WAITING:
        fprintf(stderr, "#%llu: no whole request in %llu ms\n", (unsigned long long)c->id,
                (unsigned long long)c->srv->o.read_timeout_ms);
        conn_close(c, "read timeout");
        return;
    case PAUSED:
        send_answer(c);
        return;
    case WRITING:
        fprintf(stderr, "#%llu: client stopped reading for %d ms\n", (unsigned long long)c->id,
                WRITE_STALL_MS);
        conn_close(c, "write stalled");
        return;
    case CLOSING:
        return;
    }
}

static void on_connection(uv_stream_t *l, int status)
{
    struct server *srv = l->data;
    if (status < 0) {
        fprintf(stderr, "transform-server: accept: %s\n", uv_strerror(status));
        return;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        fprintf(stderr, "transform-server: out of memory, not accepting\n");
        return;
    }
    c->srv = srv;
    c->id = ++srv->accepted;
    c->tcp.data = c->timer.data = c;
    uv_tcp_init(&srv->loop, &c->tcp);
    c->open_handles = 1;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
        return;
    }
    if (srv->nconns >= srv->o.max_conns) {
        fprintf(stderr, "#%llu: %d connections open already, resetting\n",
                (unsigned long long)c->id, srv->o.max_conns);
        if (uv_tcp_close_reset(&c->tcp, on_handle_closed) != 0)
            uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
        return;
    }
    uv_timer_init(&srv->loop, &c->timer);
    c->open_handles = 2;
    c->state = WAITING;
    c->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    uv_tcp_nodelay(&c->tcp, 1);
    int rv = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rv != 0) {
        conn_close(c, uv_strerror(rv));
        return;
    }
    uv_timer_start(&c->timer, on_timer, srv->o.read_timeout_ms, 0);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct server *srv = s->data;
    if (srv->stopping)
        return;
    srv->stopping = true;
    fprintf(stderr, "transform-server: %s, closing %d connection(s)\n",
            signum == SIGINT ? "SIGINT" : "SIGTERM", srv->nconns);
    uv_close((uv_handle_t *)&srv->listener, NULL);
    uv_close((uv_handle_t *)&srv->sigint, NULL);
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
    while (srv->conns != NULL)
        conn_close(srv->conns, "shutting down"); /* unlinks it */
}

/* ---- start-up ---- */

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {{"port", 1, 0, 'p'},
                                          {"host", 1, 0, 'H'},
                                          {"slow", 0, 0, 's'},
                                          {"delay-ms", 1, 0, 'D'},
                                          {"fail-every", 1, 0, 'f'},
                                          {"max-bytes", 1, 0, 'b'},
                                          {"read-timeout-ms", 1, 0, 'r'},
                                          {"max-conns", 1, 0, 'm'},
                                          {"help", 0, 0, 'h'},
                                          {0, 0, 0, 0}};
    uint64_t v;
    int ch;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case 'p':
            if (!tp_parse_u64(optarg, 0, 65535, &v))
                goto bad;
            o->port = (int)v;
            break;
        case 'H':
            o->host = optarg;
            break;
        case 's':
            o->slow = true;
            break;
        case 'D':
            if (!tp_parse_u64(optarg, 0, MAX_DELAY_MS, &o->delay_ms))
                goto bad;
            break;
        case 'f':
            if (!tp_parse_u64(optarg, 1, UINT32_MAX, &o->fail_every))
                goto bad;
            break;
        case 'b':
            if (!tp_parse_u64(optarg, 1, MAX_BYTES_LIMIT, &v))
                goto bad;
            o->max_bytes = (size_t)v;
            break;
        case 'r':
            if (!tp_parse_u64(optarg, 1, MAX_DELAY_MS, &o->read_timeout_ms))
                goto bad;
            break;
        case 'm':
            if (!tp_parse_u64(optarg, 1, 1000000, &v))
                goto bad;
            o->max_conns = (int)v;
            break;
        default:
            goto bad;
        }
    }
    if (o->port < 0 || optind != argc)
        goto bad;
    return 0;
bad:
    usage();
    return -1;
}

static int start_listening(struct server *srv)
{
    /* Initialised first: main closes the handle whatever happens here. */
    srv->listener.data = srv;
    return tp_listen(&srv->loop, &srv->listener, srv->o.host, srv->o.port, on_connection,
                     "transform-server");
}

int main(int argc, char **argv)
{
    /* Static: the read buffer is too big for the stack. */
    static struct server srv = {.o = {.host = "127.0.0.1",
                                      .port = -1,
                                      .delay_ms = DELAY_MS,
                                      .read_timeout_ms = READ_TIMEOUT_MS,
                                      .max_bytes = MAX_BYTES,
                                      .max_conns = MAX_CONNS}};
    int rv = 1;
    if (parse_opts(argc, argv, &srv.o) != 0)
        return 2;
    if (uv_loop_init(&srv.loop) != 0)
        return 1;
    /* A client that vanishes mid-write must give EPIPE, not kill the server. */
    signal(SIGPIPE, SIG_IGN);
    srv.sigint.data = srv.sigterm.data = &srv;
    uv_signal_init(&srv.loop, &srv.sigint);
    uv_signal_init(&srv.loop, &srv.sigterm);
    uv_signal_start(&srv.sigint, on_signal, SIGINT);
    uv_signal_start(&srv.sigterm, on_signal, SIGTERM);
    if (start_listening(&srv) != 0) {
        uv_close((uv_handle_t *)&srv.listener, NULL);
        uv_close((uv_handle_t *)&srv.sigint, NULL);
        uv_close((uv_handle_t *)&srv.sigterm, NULL);
        uv_run(&srv.loop, UV_RUN_DEFAULT);
        goto out;
    }
    fprintf(stderr, "transform-server: cummingsify, upper; requests up to %zu bytes",
            srv.o.max_bytes);
    if (srv.o.slow)
        fprintf(stderr, ", slow (%llu ms per answer)", (unsigned long long)srv.o.delay_ms);
    if (srv.o.fail_every)
        fprintf(stderr, ", failing one request in %llu", (unsigned long long)srv.o.fail_every);
    fprintf(stderr, "\n");
    uv_run(&srv.loop, UV_RUN_DEFAULT);
    rv = 0;
out:
    if (uv_loop_close(&srv.loop) != 0) {
        fprintf(stderr, "transform-server: handles left open at exit\n");
        rv = 1;
    }
    return rv;
}
