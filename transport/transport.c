/* The nng transport (see weft/transport.h): one pair1 polyamorous socket per
 * node, so one socket serves every peer and a frame is addressed to a peer
 * by its pipe. */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <uv.h>

#include <mbedtls/md.h>
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/supplemental/tls/tls.h>

#include <weft/alloc.h>
#include <weft/link.h>
#include <weft/log.h>
#include <weft/transport.h>
#include <weft/wire.h>

#define NONCE        32
#define PROOF        32
#define NAME_MAX_LEN 255

enum item_kind { I_MSG, I_PIPE_ADD, I_PIPE_REM };

/* Handed from nng's threads to the loop. */
struct item {
    struct item *next;
    int kind;
    nng_msg *msg;
    nng_pipe pipe;
};

/* A connection, from its add event until its remove event. */
struct conn {
    struct conn *next;
    nng_pipe pipe;
    uint8_t nonce[NONCE];  /* ours, fresh for this connection */
    uint8_t theirs[NONCE]; /* from their HELLO */
    char name[NAME_MAX_LEN + 1];
    bool hello; /* theirs arrived */
    bool authed;
    uint16_t peer; /* once authed */
};

struct peer {
    char *name;
    nng_pipe pipe; /* the connection frames go out on; id 0 when down */
};

struct wf_transport {
    wf_node *node;
    nng_socket sock;
    nng_aio *recv;
    uv_async_t async;
    uv_mutex_t lock; /* guards items and closed: any thread */
    struct item *head, *tail;
    bool closed;
    char *secret;
    size_t max_payload;
    nng_tls_config *tls_listen, *tls_dial;
    struct conn *conns;
    struct peer *peers; /* peer number i + 1 is peers[i]; never reused */
    uint16_t npeers;
    wf_transport_stats stats;
};

static int transport_send(void *ctx, const wf_link_out *o);

/* ---- nng's threads: queue and wake the loop, nothing else ---- */

static void push(wf_transport *t, int kind, nng_msg *msg, nng_pipe pipe)
{
    struct item *it = wf_malloc(sizeof *it);
    uv_mutex_lock(&t->lock);
    if (t->closed || it == NULL) {
        uv_mutex_unlock(&t->lock);
        wf_free(it);
        if (msg != NULL)
            nng_msg_free(msg);
        return;
    }
    *it = (struct item){NULL, kind, msg, pipe};
    *(t->tail ? &t->tail->next : &t->head) = it;
    t->tail = it;
    uv_mutex_unlock(&t->lock);
    uv_async_send(&t->async);
}

static void on_recv(void *arg)
{
    wf_transport *t = arg;
    if (nng_aio_result(t->recv) != 0)
        return; /* closed */
    nng_msg *m = nng_aio_get_msg(t->recv);
    push(t, I_MSG, m, nng_msg_get_pipe(m));
    nng_recv_aio(t->sock, t->recv);
}

static void on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    push(arg, ev == NNG_PIPE_EV_ADD_POST ? I_PIPE_ADD : I_PIPE_REM, NULL, p);
}

/* ---- the loop thread ---- */

static struct conn *conn_of(wf_transport *t, nng_pipe p, struct conn ***link)
{
    for (struct conn **pp = &t->conns; *pp != NULL; pp = &(*pp)->next) {
        if (nng_pipe_id((*pp)->pipe) == nng_pipe_id(p)) {
            if (link)
                *link = pp;
            return *pp;
        }
    }
    return NULL;
}

/* Sends a frame on pipe p: header, name, payload. */
static int send_frame(wf_transport *t, nng_pipe p, wf_wire_frame *f, const void *payload,
                      void (*fill)(const void *src, unsigned char *dst))
{
    nng_msg *m;
    if (nng_msg_alloc(&m, WF_WIRE_HEADER + f->name_len + f->payload_len) != 0)
        return WF_ENOMEM;
    unsigned char *b = nng_msg_body(m);
    wf_wire_put_header(f, b);
    memcpy(b + WF_WIRE_HEADER, f->name, f->name_len);
    if (fill != NULL)
        fill(payload, b + WF_WIRE_HEADER + f->name_len);
    else if (f->payload_len > 0)
        memcpy(b + WF_WIRE_HEADER + f->name_len, payload, f->payload_len);
    nng_msg_set_pipe(m, p);
    if (nng_sendmsg(t->sock, m, NNG_FLAG_NONBLOCK) != 0) {
        nng_msg_free(m);
        t->stats.send_failures++;
        return WF_ENODEDOWN;
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
    send_frame(t, c->pipe, &f, payload, NULL);
}

static void reject_conn(wf_transport *t, struct conn *c, const char *why)
{
    t->stats.auth_failures++;
    wf_log(WF_LOG_WARN, "node %s: connection %u refused: %s", wf_node_name(t->node),
           (unsigned)nng_pipe_id(c->pipe), why);
    nng_pipe_close(c->pipe); /* its remove event frees c */
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
        if (t->npeers == UINT16_MAX) {
            reject_conn(t, c, "too many peers");
            return;
        }
        struct peer *np = wf_realloc(t->peers, (t->npeers + 1) * sizeof *np);
        char *name = wf_strdup(c->name);
        if (np == NULL || name == NULL) {
            if (np != NULL)
                t->peers = np;
            wf_free(name);
            reject_conn(t, c, "out of memory");
            return;
        }
        t->peers = np;
        np[t->npeers] = (struct peer){name, NNG_PIPE_INITIALIZER};
        p = ++t->npeers;
    }
    c->authed = true;
    c->peer = p;
    struct peer *pe = &t->peers[p - 1];
    if (nng_pipe_id(pe->pipe) <= 0) {
        /* Frames to a peer go out on one connection, so they keep their
         * order; a second connection (both sides dialled) stands by. */
        pe->pipe = c->pipe;
        t->stats.peers_up++;
        wf_log(WF_LOG_INFO, "node %s: peer %s up", wf_node_name(t->node), pe->name);
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
        send_frame(t, c->pipe, &a, out, NULL);
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
                    f->kind == WF_WIRE_HELLO || f->kind == WF_WIRE_AUTH
                        ? "handshake out of order"
                        : "frame before the handshake");
    }
}

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
        wf_link_deliver(n, c->peer, f->kind == WF_WIRE_ASK ? WF_LINK_ASK : WF_LINK_TELL, f->corr,
                        f->from, f->to, f->name_len ? f->name : NULL, f->name_len, m);
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

static void on_frame(wf_transport *t, nng_msg *m)
{
    struct conn *c = conn_of(t, nng_msg_get_pipe(m), NULL);
    wf_wire_frame f;
    const char *why = NULL;
    t->stats.frames_in++;
    if (c == NULL) {
        nng_msg_free(m); /* its connection is already gone */
        return;
    }
    if (wf_wire_decode(nng_msg_body(m), nng_msg_len(m), t->max_payload, &f, &why) != 0) {
        t->stats.rejected++;
        wf_log(WF_LOG_WARN, "node %s: frame rejected from %s: %s", wf_node_name(t->node),
               c->authed ? c->name : "an unauthenticated connection", why);
        if (!c->authed)
            reject_conn(t, c, why);
    } else if (!c->authed) {
        handshake(t, c, &f);
    } else {
        deliver(t, c, &f);
    }
    nng_msg_free(m);
}

static void on_pipe_add(wf_transport *t, nng_pipe p)
{
    struct conn *c = wf_malloc(sizeof *c);
    if (c == NULL || getrandom(c->nonce, NONCE, 0) != NONCE) {
        wf_free(c);
        nng_pipe_close(p);
        return;
    }
    memset(c->theirs, 0, sizeof c->theirs);
    c->pipe = p;
    c->name[0] = '\0';
    c->hello = c->authed = false;
    c->peer = 0;
    c->next = t->conns;
    t->conns = c;
    send_hello(t, c);
}

static void on_pipe_rem(wf_transport *t, nng_pipe p)
{
    struct conn **link;
    struct conn *c = conn_of(t, p, &link);
    if (c == NULL)
        return;
    *link = c->next;
    if (c->authed) {
        struct peer *pe = &t->peers[c->peer - 1];
        if (nng_pipe_id(pe->pipe) == nng_pipe_id(p)) {
            /* Another connection of the same peer takes over, if any. */
            pe->pipe = (nng_pipe)NNG_PIPE_INITIALIZER;
            for (struct conn *o = t->conns; o != NULL; o = o->next) {
                if (o->authed && o->peer == c->peer) {
                    pe->pipe = o->pipe;
                    break;
                }
            }
            if (nng_pipe_id(pe->pipe) <= 0) {
                t->stats.peers_down++;
                wf_log(WF_LOG_INFO, "node %s: peer %s down", wf_node_name(t->node), pe->name);
                wf_link_peer_down(t->node, c->peer, "connection closed");
            }
        }
    }
    wf_free(c);
}

static void on_async(uv_async_t *h)
{
    wf_transport *t = h->data;
    uv_mutex_lock(&t->lock);
    struct item *it = t->head;
    t->head = t->tail = NULL;
    uv_mutex_unlock(&t->lock);
    while (it != NULL) {
        struct item *next = it->next;
        if (it->kind == I_MSG)
            on_frame(t, it->msg);
        else if (it->kind == I_PIPE_ADD)
            on_pipe_add(t, it->pipe);
        else
            on_pipe_rem(t, it->pipe);
        wf_free(it);
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
    if (o->peer == 0 || o->peer > t->npeers || nng_pipe_id(t->peers[o->peer - 1].pipe) <= 0)
        return WF_ENODEDOWN;
    wf_wire_frame f = {.kind = (uint8_t)o->kind, .corr = o->corr, .from = o->from, .to = o->to};
    if (o->name != NULL) {
        f.name = o->name;
        f.name_len = strlen(o->name);
    }
    if (o->kind == WF_LINK_FAIL) {
        f.payload_len = wf_wire_failure_size(o->failure);
        return send_frame(t, t->peers[o->peer - 1].pipe, &f, o->failure, fill_failure);
    }
    f.type = wf_msg_type(o->msg);
    f.payload_len = wf_msg_len(o->msg);
    if (f.payload_len > t->max_payload)
        return WF_EINVAL;
    return send_frame(t, t->peers[o->peer - 1].pipe, &f, o->msg, fill_msg);
}

static uint16_t link_peer_of(void *ctx, const char *node_name)
{
    return peer_by_name(ctx, node_name);
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

static void link_close(void *ctx)
{
    wf_transport *t = ctx;
    /* Stop nng's threads from queueing, then close: no callback of ours
     * runs after nng_close and nng_aio_stop return. */
    uv_mutex_lock(&t->lock);
    t->closed = true;
    uv_mutex_unlock(&t->lock);
    nng_close(t->sock);
    nng_aio_stop(t->recv);
    nng_aio_free(t->recv);
    if (t->tls_listen)
        nng_tls_config_free(t->tls_listen);
    if (t->tls_dial)
        nng_tls_config_free(t->tls_dial);
    while (t->head != NULL) {
        struct item *it = t->head;
        t->head = it->next;
        if (it->msg)
            nng_msg_free(it->msg);
        wf_free(it);
    }
    while (t->conns != NULL) {
        struct conn *c = t->conns;
        t->conns = c->next;
        wf_free(c);
    }
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
    if ((t->secret = wf_strdup(cfg->secret)) == NULL) {
        wf_free(t);
        return WF_ENOMEM;
    }
    int rv;
    if ((rv = nng_pair1_open_poly(&t->sock)) != 0) {
        wf_free(t->secret);
        wf_free(t);
        return nng_fail("cannot open the node's socket", NULL, rv);
    }
    /* nng drops (and disconnects) beyond its limit; ours is checked with a
     * logged reason below it, so the frames in between are refused cleanly. */
    nng_socket_set_size(t->sock, NNG_OPT_RECVMAXSZ,
                        t->max_payload + WF_WIRE_HEADER + WF_WIRE_NAME_MAX + (64u << 10));
    nng_socket_set_int(t->sock, NNG_OPT_SENDBUF, 1024);
    nng_socket_set_ms(t->sock, NNG_OPT_RECONNMINT,
                      cfg->reconnect_min_ms ? (nng_duration)cfg->reconnect_min_ms : 100);
    nng_socket_set_ms(t->sock, NNG_OPT_RECONNMAXT,
                      cfg->reconnect_max_ms ? (nng_duration)cfg->reconnect_max_ms : 2000);
    uv_mutex_init(&t->lock);
    uv_async_init(wf_node_loop(n), &t->async, on_async);
    t->async.data = t;
    if (cfg->tls_cert_key || cfg->tls_ca) {
        if ((rv = nng_tls_config_alloc(&t->tls_listen, NNG_TLS_MODE_SERVER)) != 0 ||
            (rv = nng_tls_config_alloc(&t->tls_dial, NNG_TLS_MODE_CLIENT)) != 0)
            goto nng_error;
        if (cfg->tls_cert_key &&
            ((rv = nng_tls_config_cert_key_file(t->tls_listen, cfg->tls_cert_key, NULL)) != 0 ||
             (rv = nng_tls_config_cert_key_file(t->tls_dial, cfg->tls_cert_key, NULL)) != 0))
            goto nng_error;
        if (cfg->tls_ca) {
            if ((rv = nng_tls_config_ca_file(t->tls_dial, cfg->tls_ca)) != 0 ||
                (rv = nng_tls_config_auth_mode(t->tls_dial, NNG_TLS_AUTH_MODE_REQUIRED)) != 0)
                goto nng_error;
        }
        if (cfg->tls_server_name &&
            (rv = nng_tls_config_server_name(t->tls_dial, cfg->tls_server_name)) != 0)
            goto nng_error;
    }
    if ((rv = nng_pipe_notify(t->sock, NNG_PIPE_EV_ADD_POST, on_pipe, t)) != 0 ||
        (rv = nng_pipe_notify(t->sock, NNG_PIPE_EV_REM_POST, on_pipe, t)) != 0 ||
        (rv = nng_aio_alloc(&t->recv, on_recv, t)) != 0)
        goto nng_error;
    if (wf_node_set_link(n, &link_ops, t) != 0) {
        rv = NNG_EBUSY;
        goto nng_error;
    }
    nng_recv_aio(t->sock, t->recv);
    *out = t;
    return 0;

nng_error:
    if (t->recv == NULL)
        nng_aio_alloc(&t->recv, NULL, NULL);
    link_close(t);
    return nng_fail("cannot set up the transport", NULL, rv);
}

int wf_transport_listen(wf_transport *t, const char *url)
{
    nng_listener l;
    int rv = nng_listener_create(&l, t->sock, url);
    if (rv == 0 && strncmp(url, "tls+", 4) == 0)
        rv =
            t->tls_listen ? nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, t->tls_listen) : NNG_EINVAL;
    if (rv == 0)
        rv = nng_listener_start(l, 0);
    return rv == 0 ? 0 : nng_fail("cannot listen on", url, rv);
}

int wf_transport_dial(wf_transport *t, const char *url)
{
    nng_dialer d;
    int rv = nng_dialer_create(&d, t->sock, url);
    if (rv == 0 && strncmp(url, "tls+", 4) == 0)
        rv = t->tls_dial ? nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, t->tls_dial) : NNG_EINVAL;
    if (rv == 0)
        rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK);
    return rv == 0 ? 0 : nng_fail("cannot dial", url, rv);
}

void wf_transport_stats_get(const wf_transport *t, wf_transport_stats *out)
{
    *out = t->stats;
}

size_t wf_transport_peers(const wf_transport *t, const char **names, size_t max)
{
    size_t n = 0;
    for (uint16_t i = 0; i < t->npeers; i++) {
        if (nng_pipe_id(t->peers[i].pipe) > 0) {
            if (n < max)
                names[n] = t->peers[i].name;
            n++;
        }
    }
    return n;
}
