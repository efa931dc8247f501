/* Replayed and relayed handshakes: weft-node processes over tcp on
 * loopback, and the test in the middle. It records a real connection
 * between two nodes (through a relay of its own) and replays what it saw,
 * whole or in part, on new connections, to the same node, to the other one
 * and to a node of another cluster; and it relays one node's fresh proof
 * to another node, as the attacker on the wire who knows no secret would.
 * Each must be refused, logged and counted, no frame of it may reach an
 * actor (an ASK never gets its REPLY), and the real peers go on. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <weft/wire.h>

#include "proc.h"

TestSuite(replay, .timeout = 90);

#define NONCE 32
#define TEXT  1 /* weft-node's message type for echo */

static tu_proc a, b, c;

static void teardown(void)
{
    tu_proc_kill(&a);
    tu_proc_kill(&b);
    tu_proc_kill(&c);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* ---- sockets ---- */

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(fd, 8), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static int free_port(void)
{
    int port, fd = listen_any(&port);
    close(fd);
    return port;
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "cannot connect to %d", port);
    return fd;
}

static void send_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return; /* closed by the node: what it read is what counts */
        p += w;
        n -= (size_t)w;
    }
}

/* Reads exactly n bytes within the deadline: 1, 0 at the end of the
 * connection, -1 at the deadline. */
static int read_exact(int fd, unsigned char *buf, size_t n, long long end)
{
    size_t got = 0;
    while (got < n) {
        long long left = end - now_ms();
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return -1;
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            return 0;
        got += (size_t)r;
    }
    return 1;
}

/* One frame from fd into buf (cap bytes): its length, 0 at the end of the
 * connection, -1 at the timeout. */
static ssize_t read_frame(int fd, unsigned char *buf, size_t cap, int timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    int rv = read_exact(fd, buf, WF_WIRE_HEADER, end);
    if (rv <= 0)
        return rv;
    size_t payload, len = wf_wire_frame_len(buf, &payload);
    cr_assert(len >= WF_WIRE_HEADER && len <= cap, "a frame of %zu bytes", len);
    rv = read_exact(fd, buf + WF_WIRE_HEADER, len - WF_WIRE_HEADER, end);
    return rv <= 0 ? rv : (ssize_t)len;
}

/* ---- frames ---- */

static size_t put_frame(unsigned char *out, wf_wire_frame f, const char *name, const void *payload,
                        size_t plen)
{
    f.name_len = name ? strlen(name) : 0;
    f.payload_len = plen;
    wf_wire_put_header(&f, out);
    if (f.name_len) /* memcpy's pointers must be valid even for no bytes */
        memcpy(out + WF_WIRE_HEADER, name, f.name_len);
    if (plen)
        memcpy(out + WF_WIRE_HEADER + f.name_len, payload, plen);
    return WF_WIRE_HEADER + f.name_len + plen;
}

static size_t hello(unsigned char *out, const char *name, const unsigned char nonce[NONCE])
{
    unsigned char p[1 + 255 + NONCE];
    size_t n = strlen(name);
    p[0] = (unsigned char)n;
    memcpy(p + 1, name, n);
    memcpy(p + 1 + n, nonce, NONCE);
    return put_frame(out, (wf_wire_frame){.kind = WF_WIRE_HELLO}, NULL, p, 1 + n + NONCE);
}

static size_t ask_echo(unsigned char *out, const char *text)
{
    return put_frame(out, (wf_wire_frame){.kind = WF_WIRE_ASK, .type = TEXT, .corr = 7}, "echo",
                     text, strlen(text));
}

/* A node's HELLO, read from fd: its nonce into nonce. */
static void read_hello(int fd, const char *who, unsigned char nonce[NONCE])
{
    unsigned char f[512];
    ssize_t n = read_frame(fd, f, sizeof f, 5000);
    cr_assert_gt(n, 0, "no HELLO from %s", who);
    cr_assert_eq(f[3], WF_WIRE_HELLO, "%s sent kind %d first", who, f[3]);
    memcpy(nonce, f + n - NONCE, NONCE);
}

/* After an attempt on fd: true when the node closed it within 5 s without
 * one frame past the handshake (no REPLY: the ASK reached nobody). */
static bool refused(int fd, char *why, size_t size)
{
    unsigned char f[65536];
    for (;;) {
        ssize_t n = read_frame(fd, f, sizeof f, 5000);
        if (n == 0)
            return true;
        if (n < 0) {
            snprintf(why, size, "the connection stayed open");
            return false;
        }
        if (f[3] != WF_WIRE_HELLO && f[3] != WF_WIRE_AUTH) {
            snprintf(why, size, "it answered a frame of kind %d: accepted", f[3]);
            return false;
        }
    }
}

/* ---- nodes ---- */

static char urls[4][64];

static const char *tcp(int port)
{
    static int i;
    i = (i + 1) % 4;
    snprintf(urls[i], sizeof urls[i], "tcp://127.0.0.1:%d", port);
    return urls[i];
}

static void start_node(tu_proc *p, const char *name, int port, int peer_port, const char *secret)
{
    const char *argv[16] = {WEFT_NODE, "--name", name, "--listen", tcp(port), "--secret", secret};
    int n = 7;
    if (peer_port > 0) {
        argv[n++] = "--peer";
        argv[n++] = tcp(peer_port);
    }
    argv[n] = NULL;
    tu_proc_start(p, (char *const *)argv);
    cr_assert_not_null(tu_proc_expect(p, "ready", 5000), "%s did not start:\n%s", name, p->log);
}

static void expect_stat(tu_proc *p, const char *want)
{
    tu_proc_send(p, "stats");
    const char *l = tu_proc_expect(p, "stats ", 5000);
    cr_assert(l && strstr(l, want), "want %s: %s", want, l ? l : p->log);
}

/* ---- a recording relay ---- */

struct relay {
    int lfd, to_port;
    atomic_int stop;
    pthread_t th;
    unsigned char up[1 << 16], down[1 << 16]; /* dialler -> listener, and back */
    size_t nup, ndown;
    pthread_mutex_t lock;
};

static void pump(struct relay *r, int from, int to, unsigned char *rec, size_t *n)
{
    unsigned char buf[4096];
    ssize_t got = read(from, buf, sizeof buf);
    if (got <= 0) {
        atomic_store(&r->stop, 1);
        return;
    }
    send_all(to, buf, (size_t)got);
    pthread_mutex_lock(&r->lock);
    size_t k = (size_t)got < (1u << 16) - *n ? (size_t)got : (1u << 16) - *n;
    memcpy(rec + *n, buf, k);
    *n += k;
    pthread_mutex_unlock(&r->lock);
}

/* Accepts one connection, dials to_port, and passes bytes both ways,
 * recording them, until either side closes or it is stopped (polls at
 * most every 50 ms; the test stops it within its time limit). */
static void *relay_main(void *arg)
{
    struct relay *r = arg;
    struct pollfd lp = {r->lfd, POLLIN, 0};
    while (!atomic_load(&r->stop) && poll(&lp, 1, 50) == 0)
        ;
    if (atomic_load(&r->stop))
        return NULL;
    int x = accept(r->lfd, NULL, NULL), y = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)r->to_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (x < 0 || connect(y, (struct sockaddr *)&sa, sizeof sa) != 0) {
        atomic_store(&r->stop, 1);
    }
    while (!atomic_load(&r->stop)) {
        struct pollfd p[2] = {{x, POLLIN, 0}, {y, POLLIN, 0}};
        if (poll(p, 2, 50) <= 0)
            continue;
        if (p[0].revents)
            pump(r, x, y, r->up, &r->nup);
        if (p[1].revents && !atomic_load(&r->stop))
            pump(r, y, x, r->down, &r->ndown);
    }
    close(x);
    close(y);
    return NULL;
}

static struct relay relay;
static int a_port, b_port;

/* Nodes a and b of cluster "s3cret", a dialling b through the relay; a
 * asks echo@b and tells it, and the relay records every byte. On return
 * the connection is still up. */
static void record_pair(void)
{
    int bport = b_port = free_port(), aport = a_port = free_port(), rport;
    memset(&relay, 0, sizeof relay);
    pthread_mutex_init(&relay.lock, NULL);
    relay.lfd = listen_any(&rport);
    relay.to_port = bport;
    start_node(&b, "b", bport, 0, "s3cret");
    cr_assert_eq(pthread_create(&relay.th, NULL, relay_main, &relay), 0);
    start_node(&a, "a", aport, rport, "s3cret");
    cr_assert_not_null(tu_proc_expect(&a, "peer b up", 5000), "%s", a.log);
    tu_proc_send(&a, "ask echo@b recorded");
    cr_assert_not_null(tu_proc_expect(&a, "ok echo from b: recorded", 5000), "%s", a.log);
    tu_proc_send(&a, "tell echo@b recorded too");
    cr_assert_not_null(tu_proc_expect(&a, "sent", 5000), "%s", a.log);
    tu_sleep_ms(200); /* the tell's frame through the relay */
}

static void relay_stop(void)
{
    atomic_store(&relay.stop, 1);
    pthread_join(relay.th, NULL);
    close(relay.lfd);
}

/* The frames of a recorded stream: offsets and kinds, checked whole. */
static int split(const unsigned char *s, size_t n, size_t *off, int *kind, int max)
{
    int k = 0;
    size_t at = 0;
    while (at + WF_WIRE_HEADER <= n && k < max) {
        size_t payload, len = wf_wire_frame_len(s + at, &payload);
        cr_assert(len >= WF_WIRE_HEADER && at + len <= n, "a cut frame in the recording");
        off[k] = at;
        kind[k++] = s[at + 3];
        at += len;
    }
    cr_assert_eq(at, n, "the recording is not whole frames");
    return k;
}

/* Sends bytes to a new connection to port and says whether it was refused. */
static void replay_refused(int port, const unsigned char *bytes, size_t n, const char *what)
{
    int fd = dial(port);
    send_all(fd, bytes, n);
    char why[128] = "";
    cr_assert(refused(fd, why, sizeof why), "%s: %s", what, why);
    close(fd);
}

Test(replay, frames_recorded_on_one_connection_are_refused_on_another, .fini = teardown)
{
    record_pair();
    pthread_mutex_lock(&relay.lock);
    static unsigned char up[1 << 16], down[1 << 16];
    size_t nup = relay.nup, ndown = relay.ndown;
    memcpy(up, relay.up, nup);
    memcpy(down, relay.down, ndown);
    pthread_mutex_unlock(&relay.lock);

    size_t off[64];
    int kind[64];
    int k = split(up, nup, off, kind, 64);
    cr_assert_geq(k, 4, "a's side: %d frames", k);
    cr_assert_eq(kind[0], WF_WIRE_HELLO);
    cr_assert_eq(kind[1], WF_WIRE_AUTH);
    int ask = -1;
    for (int i = 2; i < k; i++)
        if (kind[i] == WF_WIRE_ASK)
            ask = i;
    cr_assert_geq(ask, 0, "no ASK recorded");
    int bport = b_port;

    /* a's whole side again, to b: HELLO, AUTH, ASK, TELL. b's nonce is new,
     * so the recorded AUTH proves nothing. */
    replay_refused(bport, up, nup, "a's recorded connection replayed to b");
    cr_assert_not_null(tu_proc_expect(&b, "wrong proof of the cluster secret", 5000), "%s", b.log);
    /* Its frames past the handshake alone. */
    replay_refused(bport, up + off[2], nup - off[2], "a's recorded frames without the handshake");
    cr_assert_not_null(tu_proc_expect(&b, "frame before the handshake", 5000), "%s", b.log);
    /* The recorded HELLO and AUTH, sent after b's fresh HELLO was read. */
    int fd = dial(bport);
    unsigned char nonce[NONCE];
    read_hello(fd, "b", nonce);
    send_all(fd, up, nup);
    char why[128] = "";
    cr_assert(refused(fd, why, sizeof why), "replayed after b's HELLO: %s", why);
    close(fd);
    /* The same refusal from the same address as the first: counted (b's
     * auth_failures below), not logged again within the interval. */

    /* b's side (HELLO, AUTH, the REPLY), to a. */
    int bk = split(down, ndown, off, kind, 64);
    cr_assert_geq(bk, 3, "b's side: %d frames", bk);
    replay_refused(a_port, down, ndown, "b's recorded connection replayed to a");
    cr_assert_not_null(tu_proc_expect(&a, "wrong proof of the cluster secret", 5000), "%s", a.log);
    expect_stat(&a, "auth_failures=1");

    /* Nothing got through: b counts 3 refusals and knows only a, and a
     * and b still talk. */
    expect_stat(&b, "auth_failures=3");
    tu_proc_send(&b, "peers");
    const char *l = tu_proc_expect(&b, "peers", 5000);
    cr_assert(l && strcmp(l, "peers a") == 0, "%s", l ? l : b.log);
    tu_proc_send(&a, "ask echo@b after the replays");
    cr_assert_not_null(tu_proc_expect(&a, "ok echo from b: after the replays", 5000), "%s", a.log);
    relay_stop();
}

Test(replay, frames_recorded_in_one_cluster_are_refused_by_another, .fini = teardown)
{
    record_pair();
    pthread_mutex_lock(&relay.lock);
    static unsigned char up[1 << 16];
    size_t nup = relay.nup;
    memcpy(up, relay.up, nup);
    pthread_mutex_unlock(&relay.lock);
    relay_stop();
    /* Another cluster, with a node of the same name as the one recorded. */
    int cport = free_port();
    start_node(&c, "b", cport, 0, "another-secret");
    replay_refused(cport, up, nup, "cluster s3cret's recording replayed to cluster another-secret");
    cr_assert_not_null(tu_proc_expect(&c, "wrong proof of the cluster secret", 5000), "%s", c.log);
    expect_stat(&c, "auth_failures=1");
    tu_proc_send(&c, "peers");
    const char *l = tu_proc_expect(&c, "peers", 5000);
    cr_assert(l && strcmp(l, "peers") == 0, "%s", l ? l : c.log);
}

/* The attacker knows no secret but can dial two nodes of a cluster: it
 * takes b's nonce, offers it to a as its own, and passes a's answer back
 * to b as the proof that it is a. With the role in the proof ("weft-auth-2")
 * a answers as the side that accepted, and b, which accepted too, wants
 * the proof of a side that dialled. */
Test(replay, a_proof_relayed_from_one_node_to_another_is_refused, .fini = teardown)
{
    int aport = free_port(), bport = free_port();
    start_node(&a, "a", aport, 0, "s3cret");
    start_node(&b, "b", bport, 0, "s3cret");
    unsigned char nb[NONCE], na[NONCE], f[512], msg[512];

    int to_b = dial(bport), to_a = dial(aport);
    read_hello(to_b, "b", nb);
    read_hello(to_a, "a", na);
    send_all(to_a, msg, hello(msg, "x", nb));
    ssize_t n = read_frame(to_a, f, sizeof f, 5000);
    cr_assert_gt(n, 0, "a did not answer the HELLO");
    cr_assert_eq(f[3], WF_WIRE_AUTH);
    size_t k = hello(msg, "a", na);
    memcpy(msg + k, f, (size_t)n); /* a's own proof, as ours */
    k += (size_t)n;
    k += ask_echo(msg + k, "let me in");
    send_all(to_b, msg, k);
    char why[128] = "";
    cr_assert(refused(to_b, why, sizeof why), "a's proof relayed to b: %s", why);
    cr_assert_not_null(tu_proc_expect(&b, "wrong proof of the cluster secret", 5000), "%s", b.log);
    close(to_a);
    close(to_b);

    /* Reflected to the node that made it: refused for the name already. */
    int one = dial(bport), two = dial(bport);
    read_hello(one, "b", nb);
    read_hello(two, "b", na);
    send_all(two, msg, hello(msg, "x", nb));
    n = read_frame(two, f, sizeof f, 5000);
    cr_assert_gt(n, 0);
    k = hello(msg, "b", na);
    memcpy(msg + k, f, (size_t)n);
    k += (size_t)n;
    send_all(one, msg, k);
    cr_assert(refused(one, why, sizeof why), "b's proof reflected to b: %s", why);
    close(one);
    close(two);

    tu_proc_send(&b, "peers");
    const char *l = tu_proc_expect(&b, "peers", 5000);
    cr_assert(l && strcmp(l, "peers") == 0, "b let someone in: %s", l ? l : b.log);
}
