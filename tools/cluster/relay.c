/* weft-relay: a TCP relay that plays a slow and lossy link, for the fault
 * tour of tools/cluster/demo-hosts (this machine's kernel has no tc netem).
 *
 *   weft-relay --listen HOST:PORT --to HOST:PORT [--to-netns NS]
 *              [--delay-ms D] [--jitter-ms J] [--stall-prob P] [--stall-ms S]
 *              [--buffer BYTES] [--for-ms MS] [--seed N] [--control]
 *
 * Each connection accepted on --listen is connected to --to, and what
 * either side sends reaches the other D ms later (each direction: one-way
 * delay), give or take up to J ms (uniform; J <= D), in order: a byte is
 * never passed by one sent after it, as on a real TCP connection.
 *
 * Loss as TCP lives it: a stream loses no bytes, a lost segment is sent
 * again after a retransmission timeout and everything behind it waits. So
 * each 1448-byte segment of what is read is lost with probability P, and a
 * read with a lost segment is held S ms more (default 200, Linux's least
 * retransmission timeout), with everything after it in that direction.
 *
 * Backpressure: a direction holds at most --buffer bytes (default 256 KiB,
 * plus one read of at most 64 KiB); past that the relay stops reading from
 * the sender until the receiver has taken half of it, so a receiver that
 * falls behind slows its sender instead of growing the relay.
 *
 * Close: when one side closes (end of stream), what it sent before is
 * delivered with its delay, then both sides are closed; an error (a reset)
 * on either side closes both at once. A target that cannot be reached
 * closes the accepted connection.
 *
 * --to-netns NS: the connections to --to are made from network namespace
 * NS (a name under /run/netns, or a path), while --listen stays in the
 * namespace the relay started in: the relay then joins two namespaces that
 * do not reach each other. Needs CAP_SYS_ADMIN.
 *
 * --control: commands on standard input (a pipe or a terminal), one a
 * line, answered on standard output ("ok ..." or "error: ..."):
 *   delay-ms=D jitter-ms=J stall-prob=P stall-ms=S   (any of them) change
 *                            the link from now on, for open connections too
 *   stall MS                 hold every byte of every connection, both
 *                            ways, for MS ms from now (a run of losses
 *                            whose retransmissions back off)
 *   stats                    the counters
 *   quit                     stop
 *
 * The relay stops after --for-ms (if given), on SIGINT or SIGTERM, or on
 * quit: it closes every connection, prints its counters on standard output
 * and exits 0. It prints "listening on HOST:PORT" on standard output once
 * ready (port 0 picks one), and a line per connection on standard error.
 */
#define _GNU_SOURCE /* setns */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "listen.h"

#define MAX_MS       600000 /* any time option: ten minutes at most */
#define SEGMENT      1448   /* a TCP segment's payload on Ethernet */
#define READ_MAX     65536
#define MAX_BUFFER   (64u << 20)
#define MIN_BUFFER   1024
#define WRITE_BATCH  16 /* chunks handed to one write */
#define CONTROL_LINE 256

/* What the link does; changed at run time by --control. */
struct link {
    uint64_t delay_ms, jitter_ms, stall_ms;
    double stall_prob;
};

struct opts {
    const char *listen, *to, *to_netns;
    struct link link;
    uint64_t buffer, for_ms, seed;
    bool has_seed, control;
};

/* A read from one side, waiting to be written to the other. */
struct chunk {
    struct chunk *next;
    uint64_t due; /* the loop's time (ms) at which it may be written */
    size_t len;   /* 0: the sender closed; nothing after this */
    char data[];
};

struct conn;

/* One direction of a connection. Every field: the loop thread (the relay
 * has no other). */
struct dir {
    struct conn *c;
    uv_tcp_t *from, *to;
    struct chunk *head, *tail; /* in order; the first nwriting are being written */
    size_t held;               /* bytes in the queue, written or not */
    uint64_t last_due;         /* no chunk may be due before the one ahead of it */
    uint64_t bytes;            /* delivered */
    uv_timer_t timer;          /* the head's due time */
    uv_write_t wreq;
    int nwriting;        /* chunks in wreq; -1: the end is being passed on (sreq) */
    bool reading, ended; /* ended: the end of the stream is queued */
};

struct conn {
    struct relay *r;
    struct conn *prev, *next;
    uint64_t id;
    uv_tcp_t side[2]; /* 0: the accepted connection, 1: the one to --to */
    uv_connect_t creq;
    uv_shutdown_t sreq;
    struct dir dir[2]; /* 0: side 0 to side 1; 1: back */
    int handles;       /* open; the connection is freed when the last closes */
    bool shutting;     /* sreq is under way: one end is being passed on */
    bool closing;
};

struct relay {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_signal_t sigint, sigterm;
    uv_timer_t bound; /* --for-ms */
    union {           /* --control: standard input */
        uv_stream_t stream;
        uv_pipe_t pipe;
        uv_tty_t tty;
    } in;
    char line[CONTROL_LINE + 1];
    size_t len;
    bool line_too_long;
    struct opts o;
    struct sockaddr_storage target;
    struct conn *conns;
    uint64_t hold_until; /* the `stall MS` command: nothing is written before */
    uint64_t rng;
    bool stopping;
    struct {
        uint64_t accepted, open, failed_connects, bytes[2], stalls, paused;
        size_t max_held;
    } n;
    char scratch[READ_MAX]; /* every read lands here, then is copied to a chunk */
};

static void usage(void)
{
    fprintf(stderr,
            "usage: weft-relay --listen HOST:PORT --to HOST:PORT [--to-netns NS]\n"
            "                  [--delay-ms D] [--jitter-ms J] [--stall-prob P] [--stall-ms S]\n"
            "                  [--buffer BYTES] [--for-ms MS] [--seed N] [--control]\n");
}

/* ---- options, shared by the command line and --control ---- */

/* A probability: a decimal in [0, 1], nothing after it. */
static bool parse_prob(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < 0 || v > 1)
        return false;
    *out = v;
    return true;
}

/* Sets the link option name (without its dashes) to value in l. Returns
 * NULL, or what is wrong. */
static const char *set_link(struct link *l, const char *name, const char *value)
{
    uint64_t *ms = strcmp(name, "delay-ms") == 0    ? &l->delay_ms
                   : strcmp(name, "jitter-ms") == 0 ? &l->jitter_ms
                   : strcmp(name, "stall-ms") == 0  ? &l->stall_ms
                                                    : NULL;
    if (ms != NULL)
        return tp_parse_u64(value, 0, MAX_MS, ms) ? NULL : "wants whole milliseconds, 0 to 600000";
    if (strcmp(name, "stall-prob") == 0)
        return parse_prob(value, &l->stall_prob) ? NULL : "wants a probability, 0 to 1";
    return "is not a link option (delay-ms, jitter-ms, stall-prob, stall-ms)";
}

/* What the link options cannot be together, or NULL. */
static const char *check_link(const struct link *l)
{
    /* Symmetric jitter around the delay: a negative delay is no delay. */
    return l->jitter_ms > l->delay_ms ? "jitter-ms must not exceed delay-ms" : NULL;
}

/* "HOST:PORT" (HOST numeric, [v6] in brackets; port 0 only if any_port)
 * into host[0..INET6_ADDRSTRLEN) (without brackets), *port and, if ss is
 * not NULL, *ss. */
static bool parse_addr(const char *s, bool any_port, char *host, int *port,
                       struct sockaddr_storage *ss)
{
    const char *colon = strrchr(s, ':');
    size_t hl = colon ? (size_t)(colon - s) : 0;
    bool v6 = hl > 2 && s[0] == '[' && s[hl - 1] == ']';
    if (v6) {
        s++;
        hl -= 2;
    }
    uint64_t p;
    if (colon == NULL || hl == 0 || hl >= INET6_ADDRSTRLEN ||
        !tp_parse_u64(colon + 1, any_port ? 0 : 1, 65535, &p))
        return false;
    memcpy(host, s, hl);
    host[hl] = '\0';
    *port = (int)p;
    struct sockaddr_storage tmp;
    if (ss == NULL)
        ss = &tmp;
    return v6 ? uv_ip6_addr(host, *port, (struct sockaddr_in6 *)ss) == 0
              : uv_ip4_addr(host, *port, (struct sockaddr_in *)ss) == 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {{"listen", 1, 0, 'l'},
                                          {"to", 1, 0, 't'},
                                          {"to-netns", 1, 0, 'n'},
                                          {"delay-ms", 1, 0, 'L'},
                                          {"jitter-ms", 1, 0, 'L'},
                                          {"stall-prob", 1, 0, 'L'},
                                          {"stall-ms", 1, 0, 'L'},
                                          {"buffer", 1, 0, 'b'},
                                          {"for-ms", 1, 0, 'f'},
                                          {"seed", 1, 0, 's'},
                                          {"control", 0, 0, 'c'},
                                          {"help", 0, 0, 'h'},
                                          {0, 0, 0, 0}};
    char host[INET6_ADDRSTRLEN];
    const char *bad;
    int ch, idx, port;
    /* ":": a missing value is ':' and an unknown option '?', both told
     * here rather than by getopt, so that every message names the option. */
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":", longs, &idx)) != -1) {
        switch (ch) {
        case 'l':
            o->listen = optarg;
            if (!parse_addr(optarg, true, host, &port, NULL))
                goto bad_addr;
            break;
        case 't':
            o->to = optarg;
            if (!parse_addr(optarg, false, host, &port, NULL))
                goto bad_addr;
            break;
        case 'n':
            if (optarg[0] == '\0') {
                fprintf(stderr, "weft-relay: --to-netns wants a namespace name or path\n");
                return -1;
            }
            o->to_netns = optarg;
            break;
        case 'L':
            if ((bad = set_link(&o->link, longs[idx].name, optarg)) != NULL) {
                fprintf(stderr, "weft-relay: --%s %s: %s\n", longs[idx].name, optarg, bad);
                return -1;
            }
            break;
        case 'b':
            if (!tp_parse_u64(optarg, MIN_BUFFER, MAX_BUFFER, &o->buffer)) {
                fprintf(stderr, "weft-relay: --buffer %s: wants bytes, %u to %u\n", optarg,
                        MIN_BUFFER, MAX_BUFFER);
                return -1;
            }
            break;
        case 'f':
            if (!tp_parse_u64(optarg, 1, UINT32_MAX, &o->for_ms)) {
                fprintf(stderr, "weft-relay: --for-ms %s: wants milliseconds, 1 or more\n", optarg);
                return -1;
            }
            break;
        case 's':
            if (!tp_parse_u64(optarg, 0, UINT64_MAX, &o->seed)) {
                fprintf(stderr, "weft-relay: --seed %s: wants a whole number\n", optarg);
                return -1;
            }
            o->has_seed = true;
            break;
        case 'c':
            o->control = true;
            break;
        case 'h':
            usage();
            exit(0);
        case ':':
            fprintf(stderr, "weft-relay: %s wants a value\n", argv[optind - 1]);
            return -1;
        default:
            fprintf(stderr, "weft-relay: unknown option %s\n", argv[optind - 1]);
            return -1;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "weft-relay: unexpected argument %s\n", argv[optind]);
        return -1;
    }
    if (o->listen == NULL || o->to == NULL) {
        fprintf(stderr, "weft-relay: --listen and --to are both needed\n");
        return -1;
    }
    if ((bad = check_link(&o->link)) != NULL) {
        fprintf(stderr, "weft-relay: %s\n", bad);
        return -1;
    }
    return 0;
bad_addr:
    fprintf(stderr, "weft-relay: --%s %s: wants a numeric HOST:PORT (IPv6 as [ADDR]:PORT)\n",
            ch == 'l' ? "listen" : "to", optarg);
    return -1;
}

/* ---- the link ---- */

/* splitmix64: small, seedable, good enough to decide delays and losses. */
static uint64_t rnd(struct relay *r)
{
    uint64_t z = (r->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rnd_unit(struct relay *r)
{
    return (double)(rnd(r) >> 11) / (double)(1ull << 53);
}

/* When a read of len bytes made now may be written: the delay, its jitter,
 * and a retransmission timeout if one of its segments is lost. */
static uint64_t due_time(struct relay *r, size_t len)
{
    const struct link *l = &r->o.link;
    uint64_t due = uv_now(&r->loop) + l->delay_ms;
    if (l->jitter_ms > 0)
        due = due - l->jitter_ms + rnd(r) % (2 * l->jitter_ms + 1);
    if (len > 0 && l->stall_prob > 0) {
        bool lost = false;
        for (size_t s = 0; s < len && !lost; s += SEGMENT)
            lost = rnd_unit(r) < l->stall_prob;
        if (lost) {
            due += l->stall_ms;
            r->n.stalls++;
        }
    }
    return due;
}

/* ---- connections ---- */

/* Drops one of c's open handles; the last frees c. */
static void conn_unref(struct conn *c)
{
    if (--c->handles > 0)
        return;
    /* Every request has called back by now (libuv calls a cancelled
     * write's callback before the close callback), so the chunks can go. */
    for (int i = 0; i < 2; i++) {
        for (struct chunk *k = c->dir[i].head, *next; k != NULL; k = next) {
            next = k->next;
            free(k);
        }
    }
    free(c);
}

static void on_side_closed(uv_handle_t *h)
{
    conn_unref(h->data); /* a side's data is its connection */
}

static void on_timer_closed(uv_handle_t *h)
{
    struct dir *d = h->data; /* a timer's data is its direction */
    conn_unref(d->c);
}

/* Closes both sides of c at once, dropping what is queued. */
static void conn_close(struct conn *c, const char *why)
{
    if (c->closing)
        return;
    c->closing = true;
    struct relay *r = c->r;
    if (c->prev)
        c->prev->next = c->next;
    else
        r->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    r->n.open--;
    fprintf(stderr, "#%llu closed (%s): %llu bytes delivered to the target, %llu back\n",
            (unsigned long long)c->id, why, (unsigned long long)c->dir[0].bytes,
            (unsigned long long)c->dir[1].bytes);
    uv_close((uv_handle_t *)&c->side[0], on_side_closed);
    uv_close((uv_handle_t *)&c->side[1], on_side_closed);
    uv_close((uv_handle_t *)&c->dir[0].timer, on_timer_closed);
    uv_close((uv_handle_t *)&c->dir[1].timer, on_timer_closed);
}

static void pump(struct dir *d);
static void start_reading(struct dir *d);

static void on_due(uv_timer_t *t)
{
    pump(t->data);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;
    /* The side that closed first is the one whose end was delivered. */
    conn_close(c, c->dir[0].ended ? "the client closed" : "the target closed");
}

static void on_written(uv_write_t *req, int status)
{
    struct dir *d = req->data;
    struct conn *c = d->c;
    if (status < 0) { /* cancelled by conn_close, or the receiver is gone */
        conn_close(c, uv_strerror(status));
        return;
    }
    for (int i = 0; i < d->nwriting; i++) {
        struct chunk *k = d->head;
        d->head = k->next;
        d->held -= k->len;
        d->bytes += k->len;
        c->r->n.bytes[d - c->dir] += k->len;
        free(k);
    }
    if (d->head == NULL)
        d->tail = NULL;
    d->nwriting = 0;
    /* The receiver took half of what was held: the sender may go on. */
    if (!d->reading && !d->ended && d->held <= c->r->o.buffer / 2)
        start_reading(d);
    pump(d);
}

/* Writes what of d is due, or sets d's timer for when its head will be. */
static void pump(struct dir *d)
{
    struct conn *c = d->c;
    struct relay *r = c->r;
    if (c->closing || d->nwriting != 0 || d->head == NULL)
        return;
    uint64_t now = uv_now(&r->loop);
    uint64_t at = d->head->due > r->hold_until ? d->head->due : r->hold_until;
    if (at > now) {
        uv_timer_start(&d->timer, on_due, at - now, 0);
        return;
    }
    if (d->head->len == 0) {
        /* The sender closed and everything it sent is written: a FIN after
         * it, then both sides close (on_shutdown), whatever the other
         * direction still holds. If both ends came, the first one does. */
        if (c->shutting)
            return;
        c->shutting = true;
        c->sreq.data = c;
        int rv = uv_shutdown(&c->sreq, (uv_stream_t *)d->to, on_shutdown);
        if (rv != 0)
            conn_close(c, uv_strerror(rv));
        else
            d->nwriting = -1; /* nothing more goes this way */
        return;
    }
    uv_buf_t bufs[WRITE_BATCH];
    int n = 0;
    for (struct chunk *k = d->head; k != NULL && k->len > 0 && n < WRITE_BATCH; k = k->next) {
        if (k->due > now)
            break;
        bufs[n++] = uv_buf_init(k->data, (unsigned)k->len);
    }
    d->nwriting = n;
    d->wreq.data = d;
    int rv = uv_write(&d->wreq, (uv_stream_t *)d->to, bufs, (unsigned)n, on_written);
    if (rv != 0) {
        d->nwriting = 0;
        conn_close(c, uv_strerror(rv));
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    *buf = uv_buf_init(c->r->scratch, sizeof c->r->scratch);
}

/* Queues what arrived on d's sender (len 0: its end), due after the link's
 * delay, never before what is ahead of it. */
static void enqueue(struct dir *d, const char *data, size_t len)
{
    struct relay *r = d->c->r;
    struct chunk *k = malloc(sizeof *k + len);
    if (k == NULL) {
        conn_close(d->c, "out of memory");
        return;
    }
    k->next = NULL;
    k->len = len;
    if (len > 0) /* the end of the stream has no data, and memcpy wants a pointer */
        memcpy(k->data, data, len);
    k->due = due_time(r, len);
    if (k->due < d->last_due)
        k->due = d->last_due;
    d->last_due = k->due;
    if (d->tail)
        d->tail->next = k;
    else
        d->head = k;
    d->tail = k;
    d->held += len;
    if (d->held > r->n.max_held)
        r->n.max_held = d->held;
    pump(d);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    struct dir *d = s == (uv_stream_t *)&c->side[0] ? &c->dir[0] : &c->dir[1];
    if (c->closing)
        return;
    if (n > 0) {
        enqueue(d, buf->base, (size_t)n);
        if (!c->closing && d->held >= c->r->o.buffer) {
            /* The receiver is too far behind: stop taking from the sender
             * (on_written starts again). */
            uv_read_stop(s);
            d->reading = false;
            c->r->n.paused++;
        }
    } else if (n == UV_EOF) {
        uv_read_stop(s);
        d->reading = false;
        d->ended = true;
        enqueue(d, NULL, 0);
    } else if (n < 0) {
        /* A reset: nothing more will be delivered either way. */
        conn_close(c, d == &c->dir[0] ? "the client failed" : "the target failed");
    }
}

static void start_reading(struct dir *d)
{
    int rv = uv_read_start((uv_stream_t *)d->from, on_alloc, on_read);
    if (rv != 0)
        conn_close(d->c, uv_strerror(rv));
    else
        d->reading = true;
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    if (c->closing)
        return;
    if (status < 0) {
        c->r->n.failed_connects++;
        fprintf(stderr, "#%llu: connect to %s: %s\n", (unsigned long long)c->id, c->r->o.to,
                uv_strerror(status));
        conn_close(c, "the target could not be reached");
        return;
    }
    /* Small frames (heartbeats, replies) go at once: the delay is ours. */
    uv_tcp_nodelay(&c->side[0], 1);
    uv_tcp_nodelay(&c->side[1], 1);
    start_reading(&c->dir[0]);
    if (!c->closing)
        start_reading(&c->dir[1]);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct relay *r = listener->data;
    if (status < 0) {
        fprintf(stderr, "weft-relay: accept: %s\n", uv_strerror(status));
        return;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        fprintf(stderr, "weft-relay: out of memory, not accepting\n");
        return;
    }
    c->r = r;
    c->id = ++r->n.accepted;
    c->next = r->conns;
    if (c->next)
        c->next->prev = c;
    r->conns = c;
    r->n.open++;
    for (int i = 0; i < 2; i++) {
        uv_tcp_init(&r->loop, &c->side[i]);
        c->side[i].data = c;
        uv_timer_init(&r->loop, &c->dir[i].timer);
        c->dir[i].timer.data = &c->dir[i];
        c->dir[i].c = c;
        c->dir[i].from = &c->side[i];
        c->dir[i].to = &c->side[1 - i];
    }
    c->handles = 4;
    int rv = uv_accept(listener, (uv_stream_t *)&c->side[0]);
    if (rv == 0) {
        c->creq.data = c;
        rv = uv_tcp_connect(&c->creq, &c->side[1], (const struct sockaddr *)&r->target, on_connect);
    }
    if (rv != 0) {
        fprintf(stderr, "#%llu: %s\n", (unsigned long long)c->id, uv_strerror(rv));
        conn_close(c, "accept or connect failed");
        return;
    }
    char peer[64] = "?";
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&c->side[0], (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, peer, sizeof peer);
        else
            uv_ip4_name((struct sockaddr_in *)&ss, peer, sizeof peer);
    }
    fprintf(stderr, "#%llu from %s, to %s\n", (unsigned long long)c->id, peer, r->o.to);
}

/* ---- control, and stopping ---- */

static void print_stats(struct relay *r, const char *prefix)
{
    size_t held = 0;
    for (struct conn *c = r->conns; c != NULL; c = c->next)
        held += c->dir[0].held + c->dir[1].held;
    printf("%sconnections=%llu open=%llu failed-connects=%llu bytes-to=%llu bytes-back=%llu "
           "stalls=%llu held=%zu max-held=%zu paused=%llu\n",
           prefix, (unsigned long long)r->n.accepted, (unsigned long long)r->n.open,
           (unsigned long long)r->n.failed_connects, (unsigned long long)r->n.bytes[0],
           (unsigned long long)r->n.bytes[1], (unsigned long long)r->n.stalls, held, r->n.max_held,
           (unsigned long long)r->n.paused);
    fflush(stdout);
}

static void print_link(struct relay *r, const char *prefix)
{
    const struct link *l = &r->o.link;
    printf("%sdelay-ms=%llu jitter-ms=%llu stall-prob=%g stall-ms=%llu\n", prefix,
           (unsigned long long)l->delay_ms, (unsigned long long)l->jitter_ms, l->stall_prob,
           (unsigned long long)l->stall_ms);
    fflush(stdout);
}

static void stop(struct relay *r, const char *why)
{
    if (r->stopping)
        return;
    r->stopping = true;
    fprintf(stderr, "weft-relay: %s, closing %llu connection(s)\n", why,
            (unsigned long long)r->n.open);
    uv_close((uv_handle_t *)&r->listener, NULL);
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_close((uv_handle_t *)&r->sigterm, NULL);
    uv_close((uv_handle_t *)&r->bound, NULL);
    if (r->o.control)
        uv_close((uv_handle_t *)&r->in, NULL);
    while (r->conns != NULL) /* conn_close unlinks it */
        conn_close(r->conns, "the relay stopped");
}

static void on_signal(uv_signal_t *s, int signum)
{
    stop(s->data, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static void on_bound(uv_timer_t *t)
{
    stop(t->data, "--for-ms is over");
}

/* One line of --control (see the head of this file). */
static void command(struct relay *r, char *line)
{
    char *save, *word = strtok_r(line, " \t\r", &save);
    if (word == NULL)
        return;
    if (strcmp(word, "stats") == 0) {
        print_stats(r, "stats ");
    } else if (strcmp(word, "quit") == 0) {
        printf("ok quitting\n");
        fflush(stdout);
        stop(r, "told to quit");
    } else if (strcmp(word, "stall") == 0) {
        char *arg = strtok_r(NULL, " \t\r", &save);
        uint64_t ms;
        if (arg == NULL || strtok_r(NULL, " \t\r", &save) != NULL ||
            !tp_parse_u64(arg, 1, MAX_MS, &ms)) {
            printf("error: stall wants one duration in ms, 1 to 600000\n");
        } else {
            r->hold_until = uv_now(&r->loop) + ms;
            printf("ok holding every byte for %llu ms\n", (unsigned long long)ms);
        }
        fflush(stdout);
    } else {
        /* name=value ...: all or nothing. */
        struct link l = r->o.link;
        for (; word != NULL; word = strtok_r(NULL, " \t\r", &save)) {
            char *eq = strchr(word, '=');
            const char *bad = eq == NULL ? "wants NAME=VALUE (or stall MS, stats, quit)" : NULL;
            if (eq != NULL) {
                *eq = '\0';
                bad = set_link(&l, word, eq + 1);
            }
            if (bad == NULL)
                continue;
            printf("error: %s: %s\n", word, bad);
            fflush(stdout);
            return;
        }
        const char *bad = check_link(&l);
        if (bad != NULL) {
            printf("error: %s\n", bad);
            fflush(stdout);
            return;
        }
        r->o.link = l;
        print_link(r, "ok ");
    }
}

static void on_control_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct relay *r = h->data;
    *buf = uv_buf_init(r->scratch, sizeof r->scratch);
}

static void on_control(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct relay *r = s->data;
    for (ssize_t i = 0; i < n && !r->stopping; i++) {
        char ch = buf->base[i];
        if (ch != '\n') {
            if (r->len < CONTROL_LINE)
                r->line[r->len++] = ch;
            else
                r->line_too_long = true;
            continue;
        }
        r->line[r->len] = '\0';
        if (r->line_too_long) {
            printf("error: a line longer than %d bytes\n", CONTROL_LINE);
            fflush(stdout);
        } else {
            command(r, r->line);
        }
        r->len = 0;
        r->line_too_long = false;
    }
    /* The end of the commands is not the end of the relay: --for-ms or a
     * signal is. */
    if (n < 0 && !r->stopping)
        uv_read_stop(s);
}

static int start_control(struct relay *r)
{
    uv_handle_type t = uv_guess_handle(0);
    if (t == UV_TTY) {
        uv_tty_init(&r->loop, &r->in.tty, 0, 1);
    } else if (t == UV_NAMED_PIPE) {
        uv_pipe_init(&r->loop, &r->in.pipe, 0);
        uv_pipe_open(&r->in.pipe, 0);
    } else {
        fprintf(stderr, "weft-relay: --control wants standard input a pipe or a terminal\n");
        return -1;
    }
    r->in.stream.data = r;
    uv_read_start(&r->in.stream, on_control_alloc, on_control);
    return 0;
}

/* The network namespace ns (a name under /run/netns, or a path), opened
 * before anything starts so that a wrong name stops the relay at once;
 * -1 if it cannot be. */
static int open_netns(const char *ns)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, strchr(ns, '/') ? "%s" : "/run/netns/%s", ns);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fprintf(stderr, "weft-relay: --to-netns %s: %s: %s\n", ns, path, strerror(errno));
    return fd;
}

/* Makes the connections to --to from the namespace fd from now on: the
 * relay has one thread, so the whole process moves; the listening socket,
 * made before, stays where it was made. Closes fd. */
static int enter_netns(int fd, const char *ns)
{
    int rv = setns(fd, CLONE_NEWNET);
    if (rv != 0)
        fprintf(stderr, "weft-relay: --to-netns %s: %s\n", ns, strerror(errno));
    close(fd);
    return rv;
}

int main(int argc, char **argv)
{
    /* Static: the read buffer is big for a stack. */
    static struct relay r = {.o = {.link = {.stall_ms = 200}, .buffer = 256 * 1024}};
    if (parse_opts(argc, argv, &r.o) != 0) {
        usage();
        return 2;
    }
    char host[INET6_ADDRSTRLEN];
    int port;
    parse_addr(r.o.to, false, host, &port, &r.target);
    parse_addr(r.o.listen, true, host, &port, NULL);
    signal(SIGPIPE, SIG_IGN); /* a receiver gone is a write error, not a death */
    r.rng = r.o.has_seed ? r.o.seed : uv_hrtime() ^ (uint64_t)getpid() << 32;
    uint64_t seed = r.rng;
    setvbuf(stdout, NULL, _IOLBF, 0);
    int netns = r.o.to_netns ? open_netns(r.o.to_netns) : -1;
    if ((r.o.to_netns && netns < 0) || uv_loop_init(&r.loop) != 0)
        return 1;

    int rv = 1;
    /* The signals first: "listening on" tells a script it may send them. */
    uv_signal_init(&r.loop, &r.sigint);
    uv_signal_init(&r.loop, &r.sigterm);
    uv_signal_start(&r.sigint, on_signal, SIGINT);
    uv_signal_start(&r.sigterm, on_signal, SIGTERM);
    uv_timer_init(&r.loop, &r.bound);
    r.sigint.data = r.sigterm.data = r.bound.data = &r;
    r.listener.data = &r;
    bool listening = tp_listen(&r.loop, &r.listener, host, port, on_connection, "weft-relay") == 0;
    if (!listening || (netns >= 0 && enter_netns(netns, r.o.to_netns) != 0) ||
        (r.o.control && start_control(&r) != 0)) {
        uv_close((uv_handle_t *)&r.listener, NULL);
        uv_close((uv_handle_t *)&r.sigint, NULL);
        uv_close((uv_handle_t *)&r.sigterm, NULL);
        uv_close((uv_handle_t *)&r.bound, NULL);
        goto out;
    }
    if (r.o.for_ms > 0)
        uv_timer_start(&r.bound, on_bound, r.o.for_ms, 0);
    const struct link *l = &r.o.link;
    fprintf(stderr,
            "weft-relay: to %s%s%s; delay-ms=%llu jitter-ms=%llu stall-prob=%g stall-ms=%llu "
            "buffer=%llu seed=%llu\n",
            r.o.to, r.o.to_netns ? " from netns " : "", r.o.to_netns ? r.o.to_netns : "",
            (unsigned long long)l->delay_ms, (unsigned long long)l->jitter_ms, l->stall_prob,
            (unsigned long long)l->stall_ms, (unsigned long long)r.o.buffer,
            (unsigned long long)seed);
    rv = 0;
out:
    uv_run(&r.loop, UV_RUN_DEFAULT);
    if (rv == 0)
        print_stats(&r, "relay: ");
    if (uv_loop_close(&r.loop) != 0)
        fprintf(stderr, "weft-relay: a handle was left open\n");
    return rv;
}
