/* One connection: an nng_stream (tcp, ipc or tls) framed by the wire
 * format's header. (nng's pair1 polyamorous sockets were tried first; they
 * discard a message when a peer's two-slot queue is full, which a burst of
 * tells does, so they cannot carry "never drop silently".)
 *
 * Threads: a connection belongs to the loop thread, except its write queue.
 * nng's threads report a completed read (and a failed write) to the loop
 * (handover.c); the loop parses every frame a read brought and starts the
 * next read. A successful write is finished on nng's thread, in on_tx: under
 * c->wlock it frees the frames written and starts the next write with what
 * is queued (up to WRITE_IOV frames per write). This saves a wake-up of the
 * loop per write: with 64 asks in flight, `tools/weft bench transport` made
 * half the round trips per second or fewer when every write's end went to
 * the loop instead (measured 2026-12, tcp and ipc). It is safe because all
 * on_tx touches (oq, oq_tail, queued, writing, wclosing, the frames in oq,
 * c->tx and c->s) is either guarded by wlock or, like c->s and c->tx, freed
 * by the loop only once `writing` is false under wlock (wf__conn_reap), and
 * on_tx keeps `writing` set whenever it hands the write's end to the loop. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <weft/alloc.h>
#include <weft/log.h>

#include "bytes.h"
#include "transport_private.h"

/* ---- nng's threads ---- */

static void on_rx(void *arg)
{
    struct conn *c = arg;
    c->rx_done.rv = nng_aio_result(c->rx);
    c->rx_done.count = nng_aio_count(c->rx);
    wf__handover_push(c->t, &c->rx_done);
}

static void write_next(struct conn *c);

/* On nng's thread: drop what was written and start the next write. Only an
 * error, or the end of writing on a closing connection, goes to the loop. */
static void on_tx(void *arg)
{
    struct conn *c = arg;
    int rv = nng_aio_result(c->tx);
    uv_mutex_lock(&c->wlock);
    if (rv == 0) {
        size_t n = nng_aio_count(c->tx);
        while (n > 0 && c->oq != NULL) {
            struct out *o = c->oq;
            size_t left = o->len - o->off;
            size_t k = n < left ? n : left;
            o->off += k;
            n -= k;
            c->queued -= k;
            if (o->off == o->len) {
                c->oq = o->next;
                if (c->oq == NULL)
                    c->oq_tail = NULL;
                wf_free(o);
            }
        }
    }
    /* When the loop must hear of it (an error, or a closing connection),
     * `writing` stays set until the loop has: otherwise the loop could free
     * c while this notice is on its way. */
    bool tell_loop = rv != 0 || c->wclosing;
    if (!tell_loop) {
        c->writing = false;
        write_next(c);
    }
    uv_mutex_unlock(&c->wlock);
    if (tell_loop) {
        c->tx_done.rv = rv ? rv : NNG_ECLOSED;
        wf__handover_push(c->t, &c->tx_done);
    }
}

/* Starts writing what is queued; c->wlock held. Loop or nng's thread. */
static void write_next(struct conn *c)
{
    if (c->wclosing || c->writing || c->oq == NULL)
        return;
    nng_iov iov[WRITE_IOV];
    unsigned n = 0;
    for (struct out *o = c->oq; o != NULL && n < WRITE_IOV; o = o->next, n++)
        iov[n] = (nng_iov){o->data + o->off, o->len - o->off};
    nng_aio_set_iov(c->tx, n, iov);
    c->writing = true;
    nng_stream_send(c->s, c->tx);
}

/* ---- writing (loop thread) ---- */

struct out *wf__out_new(const wf_wire_frame *f, const void *payload,
                        void (*fill)(const void *src, unsigned char *dst))
{
    size_t len = WF_WIRE_HEADER + f->name_len + f->payload_len;
    struct out *o = wf_malloc(sizeof *o + len);
    if (o == NULL)
        return NULL;
    o->next = NULL;
    o->len = len;
    o->off = 0;
    wf_wire_put_header(f, o->data);
    if (f->name_len > 0)
        memcpy(o->data + WF_WIRE_HEADER, f->name, f->name_len);
    if (fill != NULL)
        fill(payload, o->data + WF_WIRE_HEADER + f->name_len);
    else if (f->payload_len > 0)
        memcpy(o->data + WF_WIRE_HEADER + f->name_len, payload, f->payload_len);
    return o;
}

void wf__out_free_all(struct out *o)
{
    while (o != NULL) {
        struct out *next = o->next;
        wf_free(o);
        o = next;
    }
}

/* Queues frame o on c (o is c's from here, sent or freed). Never drops
 * silently: returns WF_ENODEDOWN when c is closing, WF_EOVERLOADED when the
 * peer is this far behind. */
int wf__conn_queue(struct conn *c, struct out *o)
{
    wf_transport *t = c->t;
    if (c->closing) {
        wf_free(o);
        return WF_ENODEDOWN;
    }
    /* One critical section per frame: the bound and the append together. */
    uv_mutex_lock(&c->wlock);
    bool full = c->queued + o->len > QUEUE_LIMIT;
    if (!full) {
        *(c->oq_tail ? &c->oq_tail->next : &c->oq) = o;
        c->oq_tail = o;
        c->queued += o->len;
        write_next(c);
    }
    uv_mutex_unlock(&c->wlock);
    if (full) {
        wf_free(o);
        t->stats.send_failures++;
        return WF_EOVERLOADED;
    }
    t->stats.frames_out++;
    c->last_tx = uv_now(wf_node_loop(t->node));
    return 0;
}

/* Queues the list head..tail (bytes long, counted in frames_out by the caller) on
 * c, which takes it; c is not closing. */
void wf__conn_queue_list(struct conn *c, struct out *head, struct out *tail, size_t bytes)
{
    uv_mutex_lock(&c->wlock);
    *(c->oq_tail ? &c->oq_tail->next : &c->oq) = head;
    c->oq_tail = tail;
    c->queued += bytes;
    write_next(c);
    uv_mutex_unlock(&c->wlock);
    c->last_tx = uv_now(wf_node_loop(c->t->node));
}

/* Encodes f (payload copied) and queues it on c. */
int wf__conn_send(struct conn *c, const wf_wire_frame *f, const void *payload)
{
    if (c->closing)
        return WF_ENODEDOWN;
    struct out *o = wf__out_new(f, payload, NULL);
    return o != NULL ? wf__conn_queue(c, o) : WF_ENOMEM;
}

/* ---- reading (loop thread) ---- */

static void start_read(struct conn *c)
{
    if (c->closing || c->reading)
        return;
    if (c->cap - c->filled < READ_CHUNK / 4) {
        size_t cap = c->cap ? c->cap * 2 : READ_CHUNK;
        unsigned char *b = wf_realloc(c->buf, cap);
        if (b == NULL) {
            /* No read would be under way to retry it: the connection
             * would hang. Close it (a dialer dials again). */
            wf__conn_close(c, "out of memory");
            return;
        }
        c->buf = b;
        c->cap = cap;
    }
    nng_iov iov = {c->buf + c->filled, c->cap - c->filled};
    nng_aio_set_iov(c->rx, 1, &iov);
    c->reading = true;
    nng_stream_recv(c->s, c->rx);
}

static void bad_frame(struct conn *c, const char *why)
{
    wf_transport *t = c->t;
    t->stats.rejected++;
    wf_log(WF_LOG_WARN, "node %s: frame rejected from %s: %s", wf_node_name(t->node),
           c->authed ? c->name : "an unauthenticated connection", why);
}

/* Takes every complete frame out of c's buffer. */
static void parse(struct conn *c)
{
    wf_transport *t = c->t;
    size_t at = 0;
    while (!c->closing) {
        if (c->skip > 0) {
            size_t n = c->filled - at < c->skip ? c->filled - at : c->skip;
            at += n;
            c->skip -= n;
            if (c->skip > 0)
                break;
        }
        const unsigned char *h = c->buf + at;
        size_t avail = c->filled - at;
        /* Judge the magic on its first bytes: a stranger need not send a
         * whole header to be turned away. */
        bool bad = (avail > 0 && h[0] != 'W') || (avail > 1 && h[1] != 'F') ||
                   (avail > 2 && h[2] != WF_WIRE_VERSION);
        if (!bad && avail < WF_WIRE_HEADER)
            break;
        if (bad) {
            /* The stream is not weft's, or out of step: nothing after this
             * can be trusted to start a frame. */
            bad_frame(c, h[0] != 'W' || h[1] != 'F' ? "bad magic" : "unsupported wire version");
            if (c->authed)
                wf__conn_close(c, "framing lost");
            else
                wf__handshake_reject(c, "not speaking weft");
            break;
        }
        size_t payload_len;
        size_t total = wf_wire_frame_len(h, &payload_len);
        if (payload_len > t->max_payload || (!c->authed && total > 4096)) {
            bad_frame(c, "payload over the size limit");
            if (!c->authed) {
                wf__handshake_reject(c, "oversized frame before the handshake");
                break;
            }
            /* Skip it without buffering it: the connection and every
             * other frame on it carry on. */
            c->skip = total;
            continue;
        }
        if (c->filled - at < total) {
            if (total > c->cap) { /* make room for the whole frame */
                unsigned char *b = wf_realloc(c->buf, total + READ_CHUNK);
                if (b == NULL) {
                    wf__conn_close(c, "out of memory");
                    break;
                }
                c->buf = b;
                c->cap = total + READ_CHUNK;
            }
            break;
        }
        wf_wire_frame f;
        const char *why = NULL;
        t->stats.frames_in++;
        if (wf_wire_decode(c->buf + at, total, t->max_payload, &f, &why) != 0) {
            bad_frame(c, why);
            if (!c->authed)
                wf__handshake_reject(c, why);
        } else if (!c->authed) {
            wf__handshake_frame(c, &f);
        } else {
            wf__link_frame_in(c, &f);
        }
        at += total;
    }
    if (!c->closing && at > 0) {
        memmove(c->buf, c->buf + at, c->filled - at);
        c->filled -= at;
    }
}

/* The first nng error that ended a read or a write: what the close says. */
static void note_io_err(struct conn *c, int rv)
{
    if (c->io_err == 0)
        c->io_err = rv;
}

void wf__conn_on_read(struct conn *c, int rv, size_t count)
{
    c->reading = false;
    if (rv != 0) {
        note_io_err(c, rv);
        wf__conn_close(c, rv == NNG_ECLOSED || rv == NNG_ECONNSHUT ? "connection closed"
                                                                   : nng_strerror(rv));
    } else if (!c->closing) {
        c->last_rx = uv_now(wf_node_loop(c->t->node));
        c->filled += count;
        parse(c);
        start_read(c);
    }
    wf__conn_reap(c);
}

/* A write failed, or a closing connection stopped writing. */
void wf__conn_on_write_failed(struct conn *c, int rv)
{
    uv_mutex_lock(&c->wlock);
    c->writing = false;
    uv_mutex_unlock(&c->wlock);
    note_io_err(c, rv);
    wf__conn_close(c, rv == NNG_ECLOSED ? "connection closed" : nng_strerror(rv));
    wf__conn_reap(c);
}

/* ---- life cycle (loop thread) ---- */

/* Where c leads, for the log: the URL dialled, or the address it came
 * from. */
static void describe(struct conn *c)
{
    if (c->dialer != NULL) {
        snprintf(c->addr, sizeof c->addr, "%.319s", c->dialer->url);
        return;
    }
    nng_sockaddr sa;
    char ip[INET6_ADDRSTRLEN] = "?";
    snprintf(c->addr, sizeof c->addr, "an unknown address");
    if (nng_stream_get_addr(c->s, NNG_OPT_REMADDR, &sa) != 0)
        return;
    if (sa.s_family == NNG_AF_INET) {
        inet_ntop(AF_INET, &sa.s_in.sa_addr, ip, sizeof ip);
        snprintf(c->addr, sizeof c->addr, "%s:%u", ip, ntohs(sa.s_in.sa_port));
    } else if (sa.s_family == NNG_AF_INET6) {
        inet_ntop(AF_INET6, sa.s_in6.sa_addr, ip, sizeof ip);
        snprintf(c->addr, sizeof c->addr, "[%s]:%u", ip, ntohs(sa.s_in6.sa_port));
    } else if (sa.s_family == NNG_AF_IPC) {
        snprintf(c->addr, sizeof c->addr, "ipc://%.300s", sa.s_ipc.sa_path);
    }
}

/* Takes s (freed on failure). Returns NULL when c could not be set up; c
 * may be closing already (and freed) when its first frame or read could not
 * start: a dialer hears of it through wf__conn_close. */
struct conn *wf__conn_new(wf_transport *t, nng_stream *s, struct dialer *d)
{
    struct conn *c = wf_malloc(sizeof *c);
    if (c == NULL)
        goto fail;
    memset(c, 0, sizeof *c);
    c->t = t;
    c->s = s;
    c->dialer = d;
    c->born = c->last_rx = c->last_tx = uv_now(wf_node_loop(t->node));
    c->rx_done = (struct item){.kind = I_READ, .conn = c};
    c->tx_done = (struct item){.kind = I_WRITTEN, .conn = c};
    uv_mutex_init(&c->wlock);
    if (getrandom(c->nonce, NONCE, 0) != NONCE || nng_aio_alloc(&c->rx, on_rx, c) != 0)
        goto fail;
    if (nng_aio_alloc(&c->tx, on_tx, c) != 0)
        goto fail;
    nng_stream_set_bool(s, NNG_OPT_TCP_NODELAY, true); /* not every stream has it */
    describe(c);
    c->next = t->conns;
    t->conns = c;
    if (wf__handshake_start(c) != 0)
        wf__conn_close(c, "out of memory"); /* the peer would wait for our HELLO */
    start_read(c);
    /* Closed already (no memory for the HELLO or the first read): nothing
     * of nng's may be under way, then it goes now. */
    wf__conn_reap(c);
    return c;

fail:
    if (c != NULL) {
        nng_aio_free(c->rx);
        uv_mutex_destroy(&c->wlock);
        wf_free(c);
    }
    nng_stream_free(s);
    return NULL;
}

/* Frees c once nng has no operation of it left. */
void wf__conn_reap(struct conn *c)
{
    uv_mutex_lock(&c->wlock);
    bool writing = c->writing;
    uv_mutex_unlock(&c->wlock);
    if (!c->closing || c->reading || writing)
        return;
    wf_transport *t = c->t;
    for (struct conn **pp = &t->conns; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    nng_aio_free(c->rx);
    nng_aio_free(c->tx);
    nng_stream_free(c->s);
    wf__out_free_all(c->oq);
    wf_free(c->buf);
    uv_mutex_destroy(&c->wlock);
    wf_free(c);
}

/* c closes before its handshake ended, and not because the handshake
 * refused it (that said why): TLS refusals are where an operator looks
 * first, so they say what to check. */
bool wf__conn_log_pass(struct conn *c, const char *kind, const char *why,
                       char note[WF__RATELOG_NOTE_MAX])
{
    /* One source (the URL dialled, or the address it came from without
     * its port: each new connection has another) and one reason: the same
     * refusal again is news only once per interval; another one is news. */
    char key[WF__RATELOG_KEY_MAX];
    size_t n = strlen(c->addr);
    const char *colon = c->dialer == NULL ? strrchr(c->addr, ':') : NULL;
    if (colon != NULL && strncmp(c->addr, "ipc:", 4) != 0)
        n = (size_t)(colon - c->addr);
    const char *src = n > 28 ? c->addr + n - 28 : c->addr; /* the end tells paths apart */
    snprintf(key, sizeof key, "%s %.*s #%06x", kind, (int)(c->addr + n - src), src,
             (unsigned)(wf__fnv1a(why, strlen(why)) & 0xffffff));
    return wf__ratelog_pass(&c->t->refusals, key, uv_now(wf_node_loop(c->t->node)), note,
                            WF__RATELOG_NOTE_MAX);
}

static void log_early_close(struct conn *c, const char *why)
{
    wf_transport *t = c->t;
    const char *node = wf_node_name(t->node);
    char note[WF__RATELOG_NOTE_MAX];
    if (c->io_err == NNG_EPEERAUTH || c->io_err == NNG_ECRYPTO) {
        t->stats.auth_failures++;
        if (!wf__conn_log_pass(c, "tls", why, note))
            return;
        if (c->dialer != NULL) {
            wf_log(WF_LOG_WARN,
                   "node %s: TLS with %s failed (%s): is its certificate signed by our CA "
                   "and made out to %s, and does it accept ours?%s",
                   node, c->addr, why, c->dialer->server_name, note);
        } else {
            wf_log(WF_LOG_WARN,
                   "node %s: TLS with the connection from %s failed (%s): it sent no "
                   "certificate, or one our CA did not sign, or it refused ours%s",
                   node, c->addr, why, note);
        }
    } else if (c->dialer != NULL && !c->hello && strncmp(c->dialer->url, "tls+", 4) == 0 &&
               (c->io_err == NNG_ECONNSHUT || c->io_err == NNG_ECLOSED ||
                c->io_err == NNG_ECONNRESET)) {
        /* mbedtls on the other side hangs up without a word when it
         * refuses our certificate, or the lack of one. */
        if (wf__conn_log_pass(c, "tls", why, note))
            wf_log(WF_LOG_WARN,
                   "node %s: %s closed the connection during TLS (%s): does it want a "
                   "certificate (tls-cert-key) signed by its CA?%s",
                   node, c->addr, why, note);
    } else if (c->io_err != 0 || strcmp(why, "connection closed") == 0) {
        if (wf__conn_log_pass(c, "closed", why, note))
            wf_log(WF_LOG_INFO, "node %s: the connection %s %s closed before the handshake (%s)%s",
                   node, c->dialer != NULL ? "to" : "from", c->addr, why, note);
    }
}

void wf__conn_close(struct conn *c, const char *why)
{
    if (c->closing)
        return;
    wf_transport *t = c->t;
    c->closing = true;
    uv_mutex_lock(&c->wlock);
    c->wclosing = true;
    uv_mutex_unlock(&c->wlock);
    nng_stream_close(c->s); /* in-flight reads and writes complete with an error */
    if (!c->authed && !c->refused && !t->closed)
        log_early_close(c, why);
    if (c->authed)
        wf__peer_conn_closed(c, why);
    if (c->dialer != NULL && !t->closed)
        wf__dialer_redial(c->dialer);
    c->dialer = NULL;
    /* Freed by the completion that finds it closing (wf__conn_reap), never
     * here: the caller may still be using it. */
}
