/* soak_load: an HTTP/1.1 load generator for `tools/weft bench soak`, on
 * loopback only. One thread, epoll, keep-alive connections each with one
 * request at a time.
 *
 *   soak_load --port P --paths /a,/b [--conns C] [--seconds S] [--timeout-ms T]
 *             (--peak | --rate R [--interval I])
 *
 * --peak: closed loop, as wrk does: every connection sends its next request
 * as soon as the last one is answered; prints one JSON object (rps,
 * latencies, errors) after S seconds.
 *
 * --rate R: open loop at a fixed rate: request k is due at k / R seconds,
 * whether or not the server kept up, and goes out on the first idle
 * connection; its latency counts from when it was due, so queueing behind a
 * slow answer is measured, not hidden (no coordinated omission). Prints a
 * JSON line every I seconds (default 60) and a last one with "final": true.
 *
 * Errors, by kind: connect (a connection could not be made), closed (the
 * server closed a connection with a request on it), timeout (no complete
 * answer within T ms, default 5000), status_5xx, status_other (neither 2xx
 * nor 5xx), malformed (not an HTTP response we can frame), unanswered (in
 * flight when the run ended and still unanswered T ms later), not_sent
 * (due, but no connection was free before the run ended). Every request
 * due is either answered or in one of these. */
#define _GNU_SOURCE /* memmem, epoll_pwait2 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
#define RBUF      (256u << 10)
#define MAX_PATHS 64
/* Latencies in a log histogram: bucket i holds [1.01^i, 1.01^(i+1)) us,
 * 1% precision, up to about 10 minutes. */
#define BUCKETS 2700

enum err {
    E_CONNECT,
    E_CLOSED,
    E_TIMEOUT,
    E_5XX,
    E_OTHER,
    E_MALFORMED,
    E_UNANSWERED,
    E_NOTSENT,
    NERR
};
static const char *const err_names[NERR] = {"connect",      "closed",    "timeout",    "status_5xx",
                                            "status_other", "malformed", "unanswered", "not_sent"};

struct hist {
    uint64_t n[BUCKETS];
    uint64_t count;
    double max_us;
};

struct stats {
    struct hist h;
    uint64_t due, sent, ok, errors[NERR];
};

enum cstate { C_DOWN, C_CONNECTING, C_IDLE, C_BUSY };

struct conn {
    int fd;
    enum cstate st;
    uint64_t due_ns, sent_ns, retry_ns;
    size_t woff, wlen;
    const char *wbuf;
    char *rbuf;
    size_t rlen;
};

static struct conn conns[MAX_CONNS];
static int nconns = 32, port, epfd;
static char *reqs[MAX_PATHS];
static size_t reqlen[MAX_PATHS];
static int npaths, next_path;
static uint64_t timeout_ns = 5000000000ULL;
static struct stats win, all; /* this interval's, and the whole run's */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void hist_add(struct hist *h, double us)
{
    int i = us < 1 ? 0 : (int)(log(us) / log(1.01));
    if (i >= BUCKETS)
        i = BUCKETS - 1;
    h->n[i]++;
    h->count++;
    if (us > h->max_us)
        h->max_us = us;
}

/* The q-quantile in ms (the bucket's upper bound), or 0 when empty. */
static double hist_q(const struct hist *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t want = (uint64_t)ceil(q * (double)h->count), seen = 0;
    for (int i = 0; i < BUCKETS; i++) {
        seen += h->n[i];
        if (seen >= want && seen > 0)
            return fmin(pow(1.01, i + 1), h->max_us) / 1000.0;
    }
    return h->max_us / 1000.0;
}

static void count_err(enum err e)
{
    win.errors[e]++;
    all.errors[e]++;
}

static void print_stats(const struct stats *s, double t_s, double seconds, const char *extra)
{
    uint64_t errs = 0;
    for (int e = 0; e < NERR; e++)
        errs += s->errors[e];
    printf(
        "{\"t_s\": %.3f, \"seconds\": %.3f, \"due\": %llu, \"sent\": %llu, \"answered\": %llu, "
        "\"ok\": %llu, \"errors_total\": %llu, \"rps\": %.1f, \"p50_ms\": %.4f, \"p90_ms\": %.4f, "
        "\"p99_ms\": %.4f, \"p999_ms\": %.4f, \"max_ms\": %.4f, \"errors\": {",
        t_s, seconds, (unsigned long long)s->due, (unsigned long long)s->sent,
        (unsigned long long)s->h.count, (unsigned long long)s->ok, (unsigned long long)errs,
        seconds > 0 ? (double)s->h.count / seconds : 0.0, hist_q(&s->h, 0.5), hist_q(&s->h, 0.9),
        hist_q(&s->h, 0.99), hist_q(&s->h, 0.999), s->h.max_us / 1000.0);
    for (int e = 0; e < NERR; e++)
        printf("%s\"%s\": %llu", e ? ", " : "", err_names[e], (unsigned long long)s->errors[e]);
    printf("}%s}\n", extra);
    fflush(stdout);
}

/* ---- connections ---- */

static void conn_close(struct conn *c, uint64_t retry_at)
{
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->st = C_DOWN;
    c->rlen = 0;
    c->retry_ns = retry_at;
}

static void conn_open(struct conn *c, uint64_t now)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (fd < 0 || (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS)) {
        if (fd >= 0)
            close(fd);
        count_err(E_CONNECT);
        c->retry_ns = now + 100000000ULL;
        return;
    }
    c->fd = fd;
    c->st = C_CONNECTING;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* Writes what is left of c's request; false if the connection failed. */
static bool conn_write(struct conn *c)
{
    while (c->woff < c->wlen) {
        ssize_t w = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (w <= 0)
            return false;
        c->woff += (size_t)w;
    }
    return true;
}

static void conn_send(struct conn *c, uint64_t due, uint64_t now)
{
    int p = next_path++ % npaths;
    c->wbuf = reqs[p];
    c->wlen = reqlen[p];
    c->woff = 0;
    c->due_ns = due;
    c->sent_ns = now;
    c->st = C_BUSY;
    c->rlen = 0;
    win.sent++;
    all.sent++;
    if (!conn_write(c)) {
        count_err(E_CLOSED);
        conn_close(c, now);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | (c->woff < c->wlen ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* A complete answer in c->rbuf? 1 yes (then *status, *keep), 0 not yet,
 * -1 malformed. */
static int parse(struct conn *c, int *status, bool *keep)
{
    char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
    if (end == NULL)
        return c->rlen >= RBUF ? -1 : 0;
    size_t head = (size_t)(end - c->rbuf) + 4;
    if (c->rlen < 12 || strncmp(c->rbuf, "HTTP/1.", 7) != 0)
        return -1;
    *status = atoi(c->rbuf + 9);
    long cl = -1;
    *keep = true;
    for (char *l = memmem(c->rbuf, head, "\r\n", 2); l != NULL && l < end;
         l = memmem(l + 2, (size_t)(end - l), "\r\n", 2)) {
        if (strncasecmp(l + 2, "content-length:", 15) == 0)
            cl = strtol(l + 17, NULL, 10);
        else if (strncasecmp(l + 2, "connection: close", 17) == 0)
            *keep = false;
    }
    if (cl < 0 || head + (size_t)cl > RBUF)
        return -1;
    if (c->rlen < head + (size_t)cl)
        return 0;
    if (c->rlen > head + (size_t)cl)
        return -1; /* more than one answer to one request */
    return 1;
}

static void conn_readable(struct conn *c, uint64_t now)
{
    for (;;) {
        ssize_t r = read(c->fd, c->rbuf + c->rlen, RBUF - c->rlen);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (r <= 0) {
            if (c->st == C_BUSY)
                count_err(E_CLOSED);
            conn_close(c, now);
            return;
        }
        c->rlen += (size_t)r;
        if (c->rlen == RBUF)
            break;
    }
    if (c->st != C_BUSY) {
        if (c->rlen > 0) { /* nobody asked */
            count_err(E_MALFORMED);
            conn_close(c, now);
        }
        return;
    }
    int status;
    bool keep;
    int rv = parse(c, &status, &keep);
    if (rv == 0)
        return;
    if (rv < 0) {
        count_err(E_MALFORMED);
        conn_close(c, now);
        return;
    }
    double us = (double)(now - c->due_ns) / 1000.0;
    hist_add(&win.h, us);
    hist_add(&all.h, us);
    if (status >= 200 && status < 300) {
        win.ok++;
        all.ok++;
    } else {
        count_err(status >= 500 && status < 600 ? E_5XX : E_OTHER);
    }
    c->rlen = 0;
    c->st = C_IDLE;
    if (!keep)
        conn_close(c, now);
}

static void conn_event(struct conn *c, uint32_t events, uint64_t now)
{
    if (c->st == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            count_err(E_CONNECT);
            conn_close(c, now + 100000000ULL);
            return;
        }
        c->st = C_IDLE;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
        return;
    }
    if ((events & EPOLLOUT) && c->st == C_BUSY) {
        if (!conn_write(c)) {
            count_err(E_CLOSED);
            conn_close(c, now);
            return;
        }
        if (c->woff == c->wlen) {
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
            epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
        }
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        conn_readable(c, now);
}

/* ---- the run ---- */

static void usage(void)
{
    fprintf(stderr, "usage: soak_load --port P --paths /a,/b [--conns C] [--seconds S] "
                    "[--timeout-ms T] (--peak | --rate R [--interval I])\n");
    exit(2);
}

int main(int argc, char **argv)
{
    double seconds = 10, rate = 0, interval = 60;
    bool peak = false;
    const char *paths = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--peak") == 0) {
            peak = true;
            continue;
        }
        if (v == NULL)
            usage();
        i++;
        if (strcmp(a, "--port") == 0)
            port = atoi(v);
        else if (strcmp(a, "--paths") == 0)
            paths = v;
        else if (strcmp(a, "--conns") == 0)
            nconns = atoi(v);
        else if (strcmp(a, "--seconds") == 0)
            seconds = atof(v);
        else if (strcmp(a, "--rate") == 0)
            rate = atof(v);
        else if (strcmp(a, "--interval") == 0)
            interval = atof(v);
        else if (strcmp(a, "--timeout-ms") == 0)
            timeout_ns = (uint64_t)atoll(v) * 1000000ULL;
        else
            usage();
    }
    if (port <= 0 || paths == NULL || nconns < 1 || nconns > MAX_CONNS || seconds <= 0 ||
        (!peak && rate <= 0) || interval <= 0)
        usage();
    char *list = strdup(paths);
    for (char *save, *p = strtok_r(list, ",", &save); p && npaths < MAX_PATHS;
         p = strtok_r(NULL, ",", &save)) {
        char buf[1024];
        int n = snprintf(buf, sizeof buf, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", p, port);
        reqs[npaths] = strdup(buf);
        reqlen[npaths++] = (size_t)n;
    }
    if (npaths == 0)
        usage();
    epfd = epoll_create1(0);
    uint64_t t0 = now_ns();
    for (int i = 0; i < nconns; i++) {
        conns[i].fd = -1;
        conns[i].rbuf = malloc(RBUF);
        conn_open(&conns[i], t0);
    }
    const uint64_t period = peak ? 0 : (uint64_t)(1e9 / rate);
    const uint64_t end = t0 + (uint64_t)(seconds * 1e9);
    const uint64_t iv = (uint64_t)(interval * 1e9);
    uint64_t k = 0, pending = 0, win_start = t0, drain_end = 0;
    struct epoll_event evs[256];
    for (;;) {
        uint64_t now = now_ns();
        if (drain_end == 0 && now >= end)
            drain_end = now + timeout_ns;
        /* What is due now, in the open loop. */
        if (!peak && drain_end == 0) {
            while (t0 + k * period <= now) {
                k++;
                pending++;
                win.due++;
                all.due++;
            }
        }
        for (int i = 0; i < nconns; i++) {
            struct conn *c = &conns[i];
            if (c->st == C_DOWN && now >= c->retry_ns && drain_end == 0)
                conn_open(c, now);
            else if (c->st == C_BUSY && now - c->sent_ns > timeout_ns) {
                count_err(E_TIMEOUT);
                conn_close(c, now);
            } else if (c->st == C_IDLE && drain_end == 0) {
                if (peak) {
                    win.due++;
                    all.due++;
                    conn_send(c, now, now);
                } else if (pending > 0) {
                    conn_send(c, t0 + (k - pending) * period, now);
                    pending--;
                }
            }
        }
        if (!peak && now - win_start >= iv && drain_end == 0) {
            print_stats(&win, (double)(now - t0) / 1e9, (double)(now - win_start) / 1e9, "");
            memset(&win, 0, sizeof win);
            win_start = now;
        }
        if (drain_end != 0) {
            bool busy = false;
            for (int i = 0; i < nconns; i++)
                busy |= conns[i].st == C_BUSY;
            if (!busy || now >= drain_end) {
                for (int i = 0; i < nconns; i++)
                    if (conns[i].st == C_BUSY)
                        count_err(E_UNANSWERED);
                for (uint64_t i = 0; i < pending; i++)
                    count_err(E_NOTSENT);
                break;
            }
        }
        /* Until the next request is due (to the microsecond: a late wake-up
         * would count as the server's latency), 1 ms at most. */
        uint64_t wait = 1000000;
        if (!peak && drain_end == 0 && t0 + k * period > now && t0 + k * period - now < wait)
            wait = t0 + k * period - now;
        struct timespec ts = {0, (long)wait};
        int n = epoll_pwait2(epfd, evs, 256, &ts, NULL);
        now = now_ns();
        for (int i = 0; i < n; i++)
            conn_event(evs[i].data.ptr, evs[i].events, now);
    }
    uint64_t now = now_ns();
    double run_s = (double)((now < end ? now : end) - t0) / 1e9;
    if (!peak && win.due + win.h.count > 0)
        print_stats(&win, (double)(now - t0) / 1e9, (double)(now - win_start) / 1e9, "");
    char extra[128];
    snprintf(extra, sizeof extra, ", \"final\": true, \"conns\": %d, \"rate\": %.1f", nconns, rate);
    print_stats(&all, (double)(now - t0) / 1e9, run_s, extra);
    for (int i = 0; i < nconns; i++) {
        conn_close(&conns[i], 0);
        free(conns[i].rbuf);
    }
    return 0;
}
