/* The transport's insides, shared by its files (see weft/transport.h for
 * what it does, and each file's head for its part):
 *
 *   transport.c  the transport's life cycle and public API, listeners
 *   handover.c   the hand-over from nng's threads to the loop
 *   conn.c       one connection: reading, framing, the write queue
 *   handshake.c  proving the cluster secret, both ways
 *   peer.c       peers by name, their up and down, frames waiting for one
 *   dialer.c     dialling a peer, again and again with back-off
 *   heartbeat.c  ticks on quiet connections, silent peers taken down
 *   link.c       the runtime's side (weft/link.h): frames out and in
 *
 * Threads: everything here belongs to the loop thread, except what a
 * comment says nng's threads may touch (and under which lock). */
#ifndef WEFT_TRANSPORT_PRIVATE_H
#define WEFT_TRANSPORT_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include <weft/link.h>
#include <weft/transport.h>
#include <weft/wire.h>

#include "ratelog.h"

#define NONCE        32
#define PROOF        32
#define NAME_MAX_LEN 255
#define READ_CHUNK   (64u << 10)
#define WRITE_IOV    8
#define QUEUE_LIMIT  (64u << 20) /* bytes waiting to be written to one peer */

enum item_kind { I_ACCEPT, I_DIALED, I_READ, I_WRITTEN };

struct conn;
struct dialer;
struct listener;

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

/* One encoded frame (or what is left of it) waiting to be written. */
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
    /* writing: guarded by wlock, because nng's write callback (on_tx, on
     * nng's thread) frees what was written and starts the next write
     * itself, so that the loop is not woken for every write. Under wlock
     * nng's thread touches only oq, oq_tail, queued, writing and wclosing,
     * the frames in oq, and starts c->tx on c->s. */
    uv_mutex_t wlock;
    struct out *oq, *oq_tail;
    size_t queued;
    bool writing, wclosing;
    /* handshake */
    uint8_t nonce[NONCE], theirs[NONCE];
    char name[NAME_MAX_LEN + 1];
    char addr[320]; /* the peer's address (accepted) or the URL dialled, for logs */
    bool hello, authed;
    bool refused;       /* the handshake refused it (and said so) */
    const char *doomed; /* closed at the next tick, for this reason (static) */
    int io_err;         /* nng's error that ended a read or a write, 0 if none */
    uint16_t peer;
    /* liveness (loop time, ms): when it was made, when a frame last came in
     * and last went out (queued) */
    uint64_t born, last_rx, last_tx;
};

struct dialer {
    struct dialer *next;
    wf_transport *t;
    char *url;
    uint16_t expect;     /* the peer it must reach (wf_transport_peer), or 0 */
    char *server_name;   /* the name its listener's certificate must carry, or NULL */
    nng_tls_config *tls; /* its own TLS settings (a server name of its own), or NULL */
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
    bool expected;     /* named up front: frames wait for it to connect */
    bool was_up;       /* it has been connected */
    bool unreachable;  /* was up and went down: this node dials it and a dial has
                          failed since, or it dials this node and has not yet */
    /* frames sent to an expected peer while it is not connected, in order;
     * dropped at park_deadline (loop time, ms) if it has not come */
    struct out *parked, *parked_tail;
    size_t parked_bytes;
    uint64_t park_deadline;
};

struct wf_transport {
    wf_node *node;
    /* Refusals and failed handshakes, logged once per source and interval:
     * a node misconfigured elsewhere redials every few seconds, forever. */
    wf__ratelog refusals;
    uv_async_t async;
    uv_mutex_t lock; /* guards head, tail and closed: any thread */
    struct item *head, *tail;
    bool closed;
    char *secret;
    size_t max_payload;
    uint32_t backoff_min, backoff_max;
    uint32_t connect_wait;            /* ms a frame waits for an expected peer */
    uint32_t heartbeat, peer_timeout; /* ms (weft/transport.h) */
    uv_timer_t tick_timer;            /* every heartbeat ms: ticks and silences */
    uint64_t last_tick;               /* when it last ran (loop time, ms) */
    nng_tls_config *tls_listen;
    char *tls_cert_key, *tls_ca; /* copies: each tls+tcp dialer makes its settings of them */
    char *tls_server_name;       /* the config's: the dialers' default name */
    uv_timer_t park_timer;       /* the earliest park_deadline of any peer */
    int open_handles;            /* async, park_timer, tick_timer: t is freed when all closed */
    struct conn *conns;
    struct dialer *dialers;
    struct listener *listeners;
    struct peer *peers; /* peer number i + 1 is peers[i]; never reused */
    uint16_t npeers;
    wf_transport_stats stats;
};

/* heartbeat.c */
void wf__heartbeat_start(wf_transport *t);

/* handover.c */
void wf__handover_push(wf_transport *t, struct item *it); /* any thread */
void wf__handover_run(uv_async_t *h);                     /* t->async's callback */

/* conn.c */
struct conn *wf__conn_new(wf_transport *t, nng_stream *s, struct dialer *d);
void wf__conn_close(struct conn *c, const char *why);
/* Whether a line of kind (a short word) about c's failed handshake, for
 * reason why, is logged now; note gets " (N more like this ...)" or "".
 * Loop thread. */
bool wf__conn_log_pass(struct conn *c, const char *kind, const char *why,
                       char note[WF__RATELOG_NOTE_MAX]);
void wf__conn_reap(struct conn *c);
void wf__conn_on_read(struct conn *c, int rv, size_t count);
void wf__conn_on_write_failed(struct conn *c, int rv);
struct out *wf__out_new(const wf_wire_frame *f, const void *payload,
                        void (*fill)(const void *src, unsigned char *dst));
void wf__out_free_all(struct out *o);
int wf__conn_queue(struct conn *c, struct out *o);
void wf__conn_queue_list(struct conn *c, struct out *head, struct out *tail, size_t bytes);
int wf__conn_send(struct conn *c, const wf_wire_frame *f, const void *payload);

/* handshake.c */
int wf__handshake_start(struct conn *c);
void wf__handshake_frame(struct conn *c, const wf_wire_frame *f);
void wf__handshake_reject(struct conn *c, const char *why);

/* peer.c */
uint16_t wf__peer_by_name(const wf_transport *t, const char *name);
int wf__peer_add(wf_transport *t, const char *name, uint16_t *out);
void wf__peer_up(struct conn *c);
void wf__peer_conn_closed(struct conn *c, const char *why);
int wf__peer_park(wf_transport *t, uint16_t p, struct out *o);
void wf__peer_park_expired(uv_timer_t *h);
void wf__peer_dial_failed(wf_transport *t, uint16_t p, const char *why);
void wf__peer_free_all(wf_transport *t);

/* dialer.c */
/* Starts dialling url (copied); expect is the peer it must reach, or 0;
 * server_name (copied, may be NULL) the name a tls+tcp listener's
 * certificate must carry, instead of the transport's. */
int wf__dialer_new(wf_transport *t, const char *url, uint16_t expect, const char *server_name);
void wf__dialer_on_dialed(struct dialer *d, int rv, nng_stream *s);
void wf__dialer_redial(struct dialer *d);
void wf__dialer_connected(struct dialer *d);
void wf__dialer_stop_all(wf_transport *t);
void wf__dialer_free_all(wf_transport *t);

/* link.c */
extern const wf_link_ops wf__link_ops;
void wf__link_frame_in(struct conn *c, const wf_wire_frame *f);
int wf__link_send(void *ctx, const wf_link_out *o);

/* transport.c */
void wf__transport_close(void *ctx);
int wf__nng_fail(const char *what, const char *url, int rv);
int wf__set_tls(const char *url, nng_tls_config *cfg, void *obj, bool listener);

#endif
