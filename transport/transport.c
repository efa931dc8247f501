/* The nng transport (see weft/transport.h), on nng's byte streams: each
 * connection is an nng_stream (tcp, ipc or tls), framed by the wire format's
 * header. (nng's pair1 polyamorous sockets were tried first; they discard a
 * message when a peer's two-slot queue is full, which a burst of tells
 * does, so they cannot carry "never drop silently".)
 *
 * Threads: every connection's state belongs to the loop thread. nng's
 * threads only report completions (accept, dial, read, write) through a
 * locked queue and uv_async_send; the loop then parses what was read (many
 * frames per read), starts the next read, and writes what is queued (many
 * frames per write). */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <uv.h>

#include <mbedtls/md.h>
#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include <weft/alloc.h>
#include <weft/link.h>
#include <weft/log.h>
#include <weft/transport.h>
#include <weft/wire.h>

#define NONCE        32
#define PROOF        32
#define NAME_MAX_LEN 255
#define READ_CHUNK   (64u << 10)
#define WRITE_IOV    8
#define QUEUE_LIMIT  (64u << 20) /* bytes waiting to be written to one peer */

enum item_kind { I_ACCEPT, I_DIALED, I_READ, I_WRITTEN };

struct conn;
struct dialer;

/* A completion, handed from nng's threads to the loop. Each is embedded in
 * the object whose operation it reports, and that object has at most one
 * such operation under way (a conn's `reading`, its `writing` kept set until
 * the loop hears of it, a dialer's `busy`, a listener's one accept): so an
 * item is never queued twice, and reporting allocates nothing. Only rv,
 * count and stream change; nng's thread writes them before queueing. */
struct item {
    struct item *next;
    int kind;
    int rv;
    size_t count;
    struct conn *conn;
    struct dialer *dialer;
    struct listener *listener;
    nng_stream *stream;
};

struct out {
    struct out *next;
    size_t len, off;
    unsigned char data[];
};

/* A connection: the loop thread's, except where said. */
struct conn {
    struct conn *next;
    wf_transport *t;
    nng_stream *s;
    nng_aio *rx, *tx;
    bool reading, closing;
    struct dialer *dialer;        /* outgoing: the dialer that made it */
    struct item rx_done, tx_done; /* filled in by nng's threads (struct item) */
    /* reading */
    unsigned char *buf;
    size_t cap, filled;
    size_t skip; /* bytes of an oversized frame still to throw away */
    /* writing: guarded by wlock, because nng's write callback pumps the
     * queue itself (the loop is not woken for every frame written) */
    uv_mutex_t wlock;
    struct out *oq, *oq_tail;
    size_t queued;
    bool writing, wclosing;
    /* handshake */
    uint8_t nonce[NONCE], theirs[NONCE];
    char name[NAME_MAX_LEN + 1];
    bool hello, authed;
    uint16_t peer;
};

struct dialer {
    struct dialer *next;
    wf_transport *t;
    char *url;
    nng_stream_dialer *d;
    nng_aio *aio;
    uv_timer_t timer;
    struct item done;
    uint32_t backoff_ms;
    bool busy; /* a dial is under way */
};

struct listener {
    struct listener *next;
    wf_transport *t;
    nng_stream_listener *l;
    nng_aio *aio;
    struct item done;
};

struct peer {
    char *name;
    struct conn *conn; /* frames go out on this one; NULL when down */
};

struct wf_transport {
    wf_node *node;
    uv_async_t async;
    uv_mutex_t lock; /* guards items and closed: any thread */
    struct item *head, *tail;
    bool closed;
    char *secret;
    size_t max_payload;
    uint32_t backoff_min, backoff_max;
    nng_tls_config *tls_listen, *tls_dial;
    struct conn *conns;
    struct dialer *dialers;
    struct listener *listeners;
    struct peer *peers; /* peer number i + 1 is peers[i]; never reused */
    uint16_t npeers;
    wf_transport_stats stats;
};

/* ---- nng's threads: report, nothing else ---- */

static void push(wf_transport *t, struct item *it)
{
    uv_mutex_lock(&t->lock);
    if (t->closed) {
        uv_mutex_unlock(&t->lock);
        if (it->stream != NULL)
            nng_stream_free(it->stream);
        return;
    }
    it->next = NULL;
    *(t->tail ? &t->tail->next : &t->head) = it;
    t->tail = it;
    uv_mutex_unlock(&t->lock);
    uv_async_send(&t->async);
}

static void on_rx(void *arg)
{
    struct conn *c = arg;
    c->rx_done.rv = nng_aio_result(c->rx);
    c->rx_done.count = nng_aio_count(c->rx);
    push(c->t, &c->rx_done);
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
        push(c->t, &c->tx_done);
    }
}

/* An accept or a dial completed: hand the new stream, if any, to the loop. */
static void push_stream(wf_transport *t, struct item *it, nng_aio *aio)
{
    it->rv = nng_aio_result(aio);
    it->stream = it->rv == 0 ? nng_aio_get_output(aio, 0) : NULL;
    push(t, it);
}

static void on_accept(void *arg)
{
    struct listener *l = arg;
    push_stream(l->t, &l->done, l->aio);
}

static void on_dial(void *arg)
{
    struct dialer *d = arg;
    push_stream(d->t, &d->done, d->aio);
}

/* ---- connections (loop thread) ---- */

static void start_read(struct conn *c)
{
    if (c->closing || c->reading)
        return;
    if (c->cap - c->filled < READ_CHUNK / 4) {
        size_t cap = c->cap ? c->cap * 2 : READ_CHUNK;
        unsigned char *b = wf_realloc(c->buf, cap);
        if (b == NULL)
            return; /* retried when the next frame is consumed */
        c->buf = b;
        c->cap = cap;
    }
    nng_iov iov = {c->buf + c->filled, c->cap - c->filled};
    nng_aio_set_iov(c->rx, 1, &iov);
    c->reading = true;
    nng_stream_recv(c->s, c->rx);
}

/* Starts writing what is queued; c->wlock held. */
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

static void conn_close(struct conn *c, const char *why);

/* Queues a frame on c: header for f, then its name and payload. Never
 * drops: returns WF_EOVERLOADED when the peer is this far behind. */
static int send_frame(wf_transport *t, struct conn *c, wf_wire_frame *f, const void *payload,
                      void (*fill)(const void *src, unsigned char *dst))
{
    size_t len = WF_WIRE_HEADER + f->name_len + f->payload_len;
    if (c == NULL || c->closing)
        return WF_ENODEDOWN;
    struct out *o = wf_malloc(sizeof *o + len);
    if (o == NULL)
        return WF_ENOMEM;
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
    /* One critical section per frame: the bound and the append together. */
    uv_mutex_lock(&c->wlock);
    bool full = c->queued + len > QUEUE_LIMIT;
    if (!full) {
        *(c->oq_tail ? &c->oq_tail->next : &c->oq) = o;
        c->oq_tail = o;
        c->queued += len;
        write_next(c);
    }
    uv_mutex_unlock(&c->wlock);
    if (full) {
        wf_free(o);
        t->stats.send_failures++;
        return WF_EOVERLOADED;
    }
    t->stats.frames_out++;
    return 0;
}

static void proof(wf_transport *t, const uint8_t *receiver_nonce, const uint8_t *sender_nonce,
                  const char *sender_name, uint8_t out[PROOF])
{
    unsigned char in[11 + 2 * NONCE + NAME_MAX_LEN];
    size_t n = strlen(sender_name);
    memcpy(in, "weft-auth-1", 11);
    memcpy(in + 11, receiver_nonce, NONCE);
    memcpy(in + 11 + NONCE, sender_nonce, NONCE);
    memcpy(in + 11 + 2 * NONCE, sender_name, n);
    mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), (const unsigned char *)t->secret,
                    strlen(t->secret), in, 11 + 2 * NONCE + n, out);
}

static void send_hello(wf_transport *t, struct conn *c)
{
    const char *name = wf_node_name(t->node);
    unsigned char payload[1 + NAME_MAX_LEN + NONCE];
    size_t n = strlen(name);
    payload[0] = (unsigned char)n;
    memcpy(payload + 1, name, n);
    memcpy(payload + 1 + n, c->nonce, NONCE);
    wf_wire_frame f = {.kind = WF_WIRE_HELLO, .payload_len = 1 + n + NONCE};
    send_frame(t, c, &f, payload, NULL);
}

static void reject_conn(wf_transport *t, struct conn *c, const char *why)
{
    t->stats.auth_failures++;
    wf_log(WF_LOG_WARN, "node %s: connection refused: %s", wf_node_name(t->node), why);
    conn_close(c, why);
}

static uint16_t peer_by_name(const wf_transport *t, const char *name)
{
    for (uint16_t i = 0; i < t->npeers; i++) {
        if (strcmp(t->peers[i].name, name) == 0)
            return i + 1;
    }
    return 0;
}

static void peer_up(wf_transport *t, struct conn *c)
{
    uint16_t p = peer_by_name(t, c->name);
    if (p == 0) {
        struct peer *np =
            t->npeers < UINT16_MAX ? wf_realloc(t->peers, (t->npeers + 1) * sizeof *np) : NULL;
        char *name = wf_strdup(c->name);
        if (np != NULL)
            t->peers = np;
        if (np == NULL || name == NULL) {
            wf_free(name);
            reject_conn(t, c, "no room for another peer");
            return;
        }
        np[t->npeers] = (struct peer){name, NULL};
        p = ++t->npeers;
    }
    c->authed = true;
    c->peer = p;
    if (c->dialer != NULL)
        c->dialer->backoff_ms = t->backoff_min;
    struct peer *pe = &t->peers[p - 1];
    if (pe->conn == NULL) {
        /* Frames to a peer go out on one connection, so they keep their
         * order; a second one (both sides dialled) stands by. */
        pe->conn = c;
        t->stats.peers_up++;
        wf_log(WF_LOG_INFO, "node %s: peer %s up", wf_node_name(t->node), pe->name);
        wf_link_peer_up(t->node, p);
    }
}

static void handshake(wf_transport *t, struct conn *c, const wf_wire_frame *f)
{
    const unsigned char *p = f->payload;
    if (f->kind == WF_WIRE_HELLO && !c->hello) {
        size_t n = f->payload_len > 0 ? p[0] : 0;
        if (f->payload_len != 1 + n + NONCE || n == 0 || memchr(p + 1, '\0', n) != NULL) {
            reject_conn(t, c, "malformed HELLO");
            return;
        }
        memcpy(c->name, p + 1, n);
        c->name[n] = '\0';
        if (strcmp(c->name, wf_node_name(t->node)) == 0) {
            reject_conn(t, c, "peer uses this node's own name");
            return;
        }
        memcpy(c->theirs, p + 1 + n, NONCE);
        c->hello = true;
        uint8_t out[PROOF];
        proof(t, c->theirs, c->nonce, wf_node_name(t->node), out);
        wf_wire_frame a = {.kind = WF_WIRE_AUTH, .payload_len = PROOF};
        send_frame(t, c, &a, out, NULL);
    } else if (f->kind == WF_WIRE_AUTH && c->hello && f->payload_len == PROOF) {
        uint8_t want[PROOF];
        proof(t, c->nonce, c->theirs, c->name, want);
        /* Constant time: a timing difference would leak the proof. */
        unsigned char diff = 0;
        for (int i = 0; i < PROOF; i++)
            diff |= (unsigned char)(want[i] ^ p[i]);
        if (diff != 0)
            reject_conn(t, c, "wrong proof of the cluster secret");
        else
            peer_up(t, c);
    } else {
        t->stats.rejected++;
        reject_conn(t, c,
                    f->kind == WF_WIRE_HELLO || f->kind == WF_WIRE_AUTH ? "handshake out of order"
                                                                        : "frame before the "
                                                                          "handshake");
    }
}

static int transport_send(void *ctx, const wf_link_out *o);

static void deliver(wf_transport *t, struct conn *c, const wf_wire_frame *f)
{
    wf_node *n = t->node;
    switch (f->kind) {
    case WF_WIRE_TELL:
    case WF_WIRE_ASK: {
        wf_msg *m = wf_msg_new(f->type, f->payload, f->payload_len);
        if (m == NULL) {
            if (f->kind == WF_WIRE_ASK) {
                wf_failure *fl = wf_failure_new(WF_ENOMEM, "no memory for a request");
                wf_link_out o = {
                    .kind = WF_LINK_FAIL, .peer = c->peer, .corr = f->corr, .failure = fl};
                transport_send(t, &o);
                wf_failure_release(fl);
            }
            return;
        }
        /* A sampled trace comes with its ids; an unsampled one only says
         * so, and stays unsampled here. */
        wf_trace_ctx tc = {.flags = 0};
        if ((f->trace_flags & WF_TRACE_SAMPLED) && f->span_id != 0) {
            memcpy(tc.trace_id, f->trace_id, 16);
            tc.span_id = f->span_id;
            tc.parent_id = f->parent_span_id;
            tc.flags = WF_TRACE_VALID | WF_TRACE_SAMPLED;
        } else if (f->trace_flags & WF_TRACE_VALID) {
            tc.flags = WF_TRACE_VALID;
        }
        wf_link_deliver(n, c->peer, f->kind == WF_WIRE_ASK ? WF_LINK_ASK : WF_LINK_TELL, f->corr,
                        f->from, f->to, f->name_len ? f->name : NULL, f->name_len, &tc, m);
        break;
    }
    case WF_WIRE_REPLY: {
        wf_msg *m = wf_msg_new(f->type, f->payload, f->payload_len);
        wf_link_answer(n, c->peer, f->corr,
                       m ? wf_result_msg(m) : WF_FAIL(WF_ENOMEM, "no memory for a reply"));
        break;
    }
    case WF_WIRE_FAIL: {
        const char *why = NULL;
        wf_failure *fl = wf_wire_get_failure(f->payload, f->payload_len, &why);
        if (fl == NULL) {
            t->stats.rejected++;
            wf_log(WF_LOG_WARN, "node %s: bad failure from %s: %s", wf_node_name(n), c->name, why);
            /* The ask still gets its one outcome. */
            fl = wf_failure_new(WF_EPROTO, "peer %s sent a malformed failure (%s)", c->name, why);
        }
        wf_link_answer(n, c->peer, f->corr, wf_result_failure(fl));
        break;
    }
    default:
        t->stats.rejected++;
        wf_log(WF_LOG_WARN, "node %s: unexpected handshake frame from %s", wf_node_name(n),
               c->name);
    }
}

static void bad_frame(wf_transport *t, struct conn *c, const char *why)
{
    t->stats.rejected++;
    wf_log(WF_LOG_WARN, "node %s: frame rejected from %s: %s", wf_node_name(t->node),
           c->authed ? c->name : "an unauthenticated connection", why);
}

/* Takes every complete frame out of c's buffer. */
static void parse(wf_transport *t, struct conn *c)
{
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
            bad_frame(t, c, h[0] != 'W' || h[1] != 'F' ? "bad magic" : "unsupported wire version");
            if (c->authed)
                conn_close(c, "framing lost");
            else
                reject_conn(t, c, "not speaking weft");
            break;
        }
        size_t payload_len;
        size_t total = wf_wire_frame_len(h, &payload_len);
        if (payload_len > t->max_payload || (!c->authed && total > 4096)) {
            bad_frame(t, c, "payload over the size limit");
            if (!c->authed) {
                reject_conn(t, c, "oversized frame before the handshake");
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
                    conn_close(c, "out of memory");
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
            bad_frame(t, c, why);
            if (!c->authed)
                reject_conn(t, c, why);
        } else if (!c->authed) {
            handshake(t, c, &f);
        } else {
            deliver(t, c, &f);
        }
        at += total;
    }
    if (!c->closing && at > 0) {
        memmove(c->buf, c->buf + at, c->filled - at);
        c->filled -= at;
    }
}

static struct conn *conn_new(wf_transport *t, nng_stream *s, struct dialer *d)
{
    struct conn *c = wf_malloc(sizeof *c);
    if (c == NULL)
        goto fail;
    memset(c, 0, sizeof *c);
    c->t = t;
    c->s = s;
    c->dialer = d;
    c->rx_done = (struct item){.kind = I_READ, .conn = c};
    c->tx_done = (struct item){.kind = I_WRITTEN, .conn = c};
    uv_mutex_init(&c->wlock);
    if (getrandom(c->nonce, NONCE, 0) != NONCE || nng_aio_alloc(&c->rx, on_rx, c) != 0)
        goto fail;
    if (nng_aio_alloc(&c->tx, on_tx, c) != 0)
        goto fail;
    nng_stream_set_bool(s, NNG_OPT_TCP_NODELAY, true); /* not every stream has it */
    c->next = t->conns;
    t->conns = c;
    send_hello(t, c);
    start_read(c);
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

static void redial(struct dialer *d);

/* Frees c once nng has no operation of it left. */
static void conn_reap(struct conn *c)
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
    while (c->oq != NULL) {
        struct out *o = c->oq;
        c->oq = o->next;
        wf_free(o);
    }
    wf_free(c->buf);
    uv_mutex_destroy(&c->wlock);
    wf_free(c);
}

static void conn_close(struct conn *c, const char *why)
{
    if (c->closing)
        return;
    wf_transport *t = c->t;
    c->closing = true;
    uv_mutex_lock(&c->wlock);
    c->wclosing = true;
    uv_mutex_unlock(&c->wlock);
    nng_stream_close(c->s); /* in-flight reads and writes complete with an error */
    if (!c->authed && !t->closed && strcmp(why, "connection closed") == 0)
        wf_log(WF_LOG_INFO, "node %s: a connection closed before the handshake",
               wf_node_name(t->node));
    if (c->authed) {
        struct peer *pe = &t->peers[c->peer - 1];
        if (pe->conn == c) {
            /* Another connection of the same peer takes over, if any. */
            pe->conn = NULL;
            for (struct conn *o = t->conns; o != NULL; o = o->next) {
                if (o != c && !o->closing && o->authed && o->peer == c->peer) {
                    pe->conn = o;
                    break;
                }
            }
            if (pe->conn == NULL) {
                t->stats.peers_down++;
                wf_log(WF_LOG_INFO, "node %s: peer %s down (%s)", wf_node_name(t->node), pe->name,
                       why);
                if (!t->closed)
                    wf_link_peer_down(t->node, c->peer, why);
            }
        }
    }
    if (c->dialer != NULL && !t->closed)
        redial(c->dialer);
    c->dialer = NULL;
    /* Freed by the completion that finds it closing (conn_reap), never
     * here: the caller may still be using it. */
}

/* ---- listening and dialling ---- */

static void dial_now(uv_timer_t *h)
{
    struct dialer *d = h->data;
    d->busy = true;
    nng_stream_dialer_dial(d->d, d->aio);
}

static void redial(struct dialer *d)
{
    uint32_t wait = d->backoff_ms;
    uint32_t next = d->backoff_ms * 2;
    d->backoff_ms = next < d->t->backoff_max ? next : d->t->backoff_max;
    uv_timer_start(&d->timer, dial_now, wait, 0);
}

static void on_item(wf_transport *t, struct item *it)
{
    switch (it->kind) {
    case I_ACCEPT:
        if (it->rv == 0) {
            conn_new(t, it->stream, NULL);
            nng_stream_listener_accept(it->listener->l, it->listener->aio);
        } else if (it->rv != NNG_ECLOSED) {
            wf_log(WF_LOG_WARN, "node %s: accept failed: %s", wf_node_name(t->node),
                   nng_strerror(it->rv));
            nng_stream_listener_accept(it->listener->l, it->listener->aio);
        }
        break;
    case I_DIALED:
        it->dialer->busy = false;
        /* A connection that could not be set up is dialled again, like
         * one that failed to connect: a dialer never gives up. */
        if (it->rv == 0 ? conn_new(t, it->stream, it->dialer) == NULL : it->rv != NNG_ECLOSED)
            redial(it->dialer);
        break;
    case I_READ: {
        struct conn *c = it->conn;
        c->reading = false;
        if (it->rv != 0) {
            conn_close(c, it->rv == NNG_ECLOSED || it->rv == NNG_ECONNSHUT ? "connection closed"
                                                                           : nng_strerror(it->rv));
        } else if (!c->closing) {
            c->filled += it->count;
            parse(t, c);
            start_read(c);
        }
        conn_reap(c);
        break;
    }
    case I_WRITTEN: {
        /* A write failed, or a closing connection stopped writing. */
        struct conn *c = it->conn;
        uv_mutex_lock(&c->wlock);
        c->writing = false;
        uv_mutex_unlock(&c->wlock);
        conn_close(c, it->rv == NNG_ECLOSED ? "connection closed" : nng_strerror(it->rv));
        conn_reap(c);
        break;
    }
    }
}

static void on_async(uv_async_t *h)
{
    wf_transport *t = h->data;
    uv_mutex_lock(&t->lock);
    struct item *it = t->head;
    t->head = t->tail = NULL;
    uv_mutex_unlock(&t->lock);
    while (it != NULL) {
        /* Read next first: handling an item may start its operation again,
         * and nng's thread may then queue it anew. */
        struct item *next = it->next;
        on_item(t, it);
        it = next;
    }
}

/* ---- the link (weft/link.h) ---- */

static void fill_msg(const void *src, unsigned char *dst)
{
    wf_msg *m = (wf_msg *)src;
    memcpy(dst, wf_msg_body(m), wf_msg_len(m));
}

static void fill_failure(const void *src, unsigned char *dst)
{
    wf_wire_put_failure(src, dst);
}

static int transport_send(void *ctx, const wf_link_out *o)
{
    wf_transport *t = ctx;
    if (o->peer == 0 || o->peer > t->npeers || t->peers[o->peer - 1].conn == NULL)
        return WF_ENODEDOWN;
    struct conn *c = t->peers[o->peer - 1].conn;
    wf_wire_frame f = {.kind = (uint8_t)o->kind, .corr = o->corr, .from = o->from, .to = o->to};
    if (o->tc != NULL && (o->tc->flags & WF_TRACE_SAMPLED)) {
        memcpy(f.trace_id, o->tc->trace_id, 16);
        f.span_id = o->tc->span_id;
        f.parent_span_id = o->tc->parent_id;
    }
    if (o->tc != NULL)
        f.trace_flags = o->tc->flags & (WF_TRACE_SAMPLED | WF_TRACE_VALID);
    if (o->name != NULL) {
        f.name = o->name;
        f.name_len = strlen(o->name);
    }
    if (o->kind == WF_LINK_FAIL) {
        f.payload_len = wf_wire_failure_size(o->failure);
        return send_frame(t, c, &f, o->failure, fill_failure);
    }
    f.type = wf_msg_type(o->msg);
    f.payload_len = wf_msg_len(o->msg);
    if (f.payload_len > t->max_payload)
        return WF_EINVAL;
    return send_frame(t, c, &f, o->msg, fill_msg);
}

static uint16_t link_peer_of(void *ctx, const char *node_name)
{
    wf_transport *t = ctx;
    uint16_t p = peer_by_name(t, node_name);
    return p != 0 && t->peers[p - 1].conn != NULL ? p : 0;
}

static const char *link_peer_name(void *ctx, uint16_t peer)
{
    wf_transport *t = ctx;
    return peer >= 1 && peer <= t->npeers ? t->peers[peer - 1].name : NULL;
}

static void free_transport(uv_handle_t *h)
{
    wf_transport *t = h->data;
    uv_mutex_destroy(&t->lock);
    for (uint16_t i = 0; i < t->npeers; i++)
        wf_free(t->peers[i].name);
    wf_free(t->peers);
    wf_free(t->secret);
    wf_free(t);
}

static void dialer_closed(uv_handle_t *h)
{
    struct dialer *d = h->data;
    wf_free(d->url);
    wf_free(d);
}

static void link_close(void *ctx)
{
    wf_transport *t = ctx;
    /* Stop nng's threads from reporting, then stop every operation: once
     * the aios are stopped no callback of ours runs any more, and what was
     * queued is dropped here. */
    uv_mutex_lock(&t->lock);
    t->closed = true;
    uv_mutex_unlock(&t->lock);
    for (struct listener *l = t->listeners; l != NULL; l = l->next) {
        nng_stream_listener_close(l->l);
        nng_aio_stop(l->aio);
    }
    for (struct dialer *d = t->dialers; d != NULL; d = d->next) {
        nng_stream_dialer_close(d->d);
        nng_aio_stop(d->aio);
    }
    for (struct conn *c = t->conns; c != NULL; c = c->next) {
        c->closing = true;
        nng_stream_close(c->s);
        nng_aio_stop(c->rx);
        nng_aio_stop(c->tx);
        c->reading = c->writing = false; /* no callback runs any more */
    }
    for (struct item *it = t->head; it != NULL; it = it->next) {
        if (it->stream)
            nng_stream_free(it->stream);
    }
    t->head = t->tail = NULL;
    while (t->conns != NULL)
        conn_reap(t->conns);
    while (t->listeners != NULL) {
        struct listener *l = t->listeners;
        t->listeners = l->next;
        nng_aio_free(l->aio);
        nng_stream_listener_free(l->l);
        wf_free(l);
    }
    while (t->dialers != NULL) {
        struct dialer *d = t->dialers;
        t->dialers = d->next;
        nng_aio_free(d->aio);
        nng_stream_dialer_free(d->d);
        uv_close((uv_handle_t *)&d->timer, dialer_closed);
    }
    if (t->tls_listen)
        nng_tls_config_free(t->tls_listen);
    if (t->tls_dial)
        nng_tls_config_free(t->tls_dial);
    uv_close((uv_handle_t *)&t->async, free_transport);
}

static const wf_link_ops link_ops = {transport_send, link_peer_of, link_peer_name, link_close};

/* ---- public ---- */

static int nng_fail(const char *what, const char *url, int rv)
{
    wf_log(WF_LOG_ERROR, "%s %s: %s", what, url ? url : "", nng_strerror(rv));
    return WF_EPROTO;
}

int wf_transport_new(wf_node *n, const wf_transport_config *cfg, wf_transport **out)
{
    if (cfg == NULL || cfg->secret == NULL || cfg->secret[0] == '\0')
        return WF_EINVAL;
    wf_transport *t = wf_malloc(sizeof *t);
    if (t == NULL)
        return WF_ENOMEM;
    memset(t, 0, sizeof *t);
    t->node = n;
    t->max_payload = cfg->max_payload ? cfg->max_payload : 1u << 20;
    t->backoff_min = cfg->reconnect_min_ms ? cfg->reconnect_min_ms : 100;
    t->backoff_max = cfg->reconnect_max_ms ? cfg->reconnect_max_ms : 2000;
    if ((t->secret = wf_strdup(cfg->secret)) == NULL) {
        wf_free(t);
        return WF_ENOMEM;
    }
    uv_mutex_init(&t->lock);
    uv_async_init(wf_node_loop(n), &t->async, on_async);
    t->async.data = t;
    int rv = 0;
    if (cfg->tls_cert_key || cfg->tls_ca) {
        if ((rv = nng_tls_config_alloc(&t->tls_listen, NNG_TLS_MODE_SERVER)) != 0 ||
            (rv = nng_tls_config_alloc(&t->tls_dial, NNG_TLS_MODE_CLIENT)) != 0)
            goto nng_error;
        if (cfg->tls_cert_key &&
            ((rv = nng_tls_config_cert_key_file(t->tls_listen, cfg->tls_cert_key, NULL)) != 0 ||
             (rv = nng_tls_config_cert_key_file(t->tls_dial, cfg->tls_cert_key, NULL)) != 0))
            goto nng_error;
        if (cfg->tls_ca &&
            ((rv = nng_tls_config_ca_file(t->tls_dial, cfg->tls_ca)) != 0 ||
             (rv = nng_tls_config_auth_mode(t->tls_dial, NNG_TLS_AUTH_MODE_REQUIRED)) != 0))
            goto nng_error;
        if (cfg->tls_server_name &&
            (rv = nng_tls_config_server_name(t->tls_dial, cfg->tls_server_name)) != 0)
            goto nng_error;
    }
    if (wf_node_set_link(n, &link_ops, t) != 0) {
        rv = NNG_EBUSY;
        goto nng_error;
    }
    *out = t;
    return 0;

nng_error:
    link_close(t);
    return nng_fail("cannot set up the transport", NULL, rv);
}

static int set_tls(wf_transport *t, const char *url, nng_tls_config *cfg, void *obj, bool listener)
{
    if (strncmp(url, "tls+", 4) != 0)
        return 0;
    if (cfg == NULL)
        return NNG_EINVAL;
    return listener ? nng_stream_listener_set_ptr(obj, NNG_OPT_TLS_CONFIG, cfg)
                    : nng_stream_dialer_set_ptr(obj, NNG_OPT_TLS_CONFIG, cfg);
}

int wf_transport_listen(wf_transport *t, const char *url)
{
    struct listener *l = wf_malloc(sizeof *l);
    if (l == NULL)
        return WF_ENOMEM;
    memset(l, 0, sizeof *l);
    l->t = t;
    l->done = (struct item){.kind = I_ACCEPT, .listener = l};
    int rv = nng_stream_listener_alloc(&l->l, url);
    if (rv == 0)
        rv = set_tls(t, url, t->tls_listen, l->l, true);
    if (rv == 0)
        rv = nng_stream_listener_listen(l->l);
    if (rv == 0)
        rv = nng_aio_alloc(&l->aio, on_accept, l);
    if (rv != 0) {
        nng_stream_listener_free(l->l);
        wf_free(l);
        return nng_fail("cannot listen on", url, rv);
    }
    l->next = t->listeners;
    t->listeners = l;
    nng_stream_listener_accept(l->l, l->aio);
    return 0;
}

int wf_transport_dial(wf_transport *t, const char *url)
{
    struct dialer *d = wf_malloc(sizeof *d);
    if (d == NULL)
        return WF_ENOMEM;
    memset(d, 0, sizeof *d);
    d->t = t;
    d->done = (struct item){.kind = I_DIALED, .dialer = d};
    d->backoff_ms = t->backoff_min;
    int rv = (d->url = wf_strdup(url)) ? 0 : NNG_ENOMEM;
    if (rv == 0)
        rv = nng_stream_dialer_alloc(&d->d, url);
    if (rv == 0)
        rv = set_tls(t, url, t->tls_dial, d->d, false);
    if (rv == 0)
        rv = nng_aio_alloc(&d->aio, on_dial, d);
    if (rv != 0) {
        if (d->d)
            nng_stream_dialer_free(d->d);
        wf_free(d->url);
        wf_free(d);
        return nng_fail("cannot dial", url, rv);
    }
    uv_timer_init(wf_node_loop(t->node), &d->timer);
    d->timer.data = d;
    d->next = t->dialers;
    t->dialers = d;
    dial_now(&d->timer);
    return 0;
}

void wf_transport_stats_get(const wf_transport *t, wf_transport_stats *out)
{
    *out = t->stats;
}

size_t wf_transport_peers(const wf_transport *t, const char **names, size_t max)
{
    size_t n = 0;
    for (uint16_t i = 0; i < t->npeers; i++) {
        if (t->peers[i].conn != NULL) {
            if (n < max)
                names[n] = t->peers[i].name;
            n++;
        }
    }
    return n;
}
