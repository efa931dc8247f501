/* The transport: the same actors across processes and hosts over nng.
 *
 * A node with a transport listens on nng URLs (ipc://, tcp://, tls+tcp://)
 * and dials its peers; wf_tell, wf_ask and wf_monitor then work unchanged on
 * remote pids (wf_resolve "name@node"). A remote handler's failure comes
 * back with its whole trace, one frame per hop.
 *
 * Threads: nng's own threads only move bytes. Each completed accept, dial
 * and read, and each failed write, is queued under a lock to the node's
 * loop, and the loop is woken with uv_async_send (which coalesces wake-ups);
 * everything else, the handshake and every actor included, runs on the loop
 * thread. One thing nng's thread finishes itself: a successful write. Under
 * that connection's write lock it frees the frames written and starts the
 * next write with the frames queued meanwhile, so that a busy connection
 * does not wake the loop once per write; it touches nothing else (no actor,
 * no peer, no counter).
 *
 * Security: every new connection must prove, in both directions, that it
 * knows the cluster's shared secret before any other frame is accepted: each
 * side sends a fresh 32-byte nonce with its name (HELLO) and answers the
 * other's with HMAC-SHA256(secret, "weft-auth-2" | role | their nonce | own
 * nonce | own name) (AUTH), role being 'D' from the side that dialled and
 * 'L' from the side that accepted. The secret never crosses the wire, a
 * recorded answer is worthless against a fresh nonce, and the role keeps a
 * node's answer from being relayed to another node as someone else's proof
 * (both nodes an outsider dials answer as 'L'; a node that accepted wants
 * 'D'). A connection that sends anything else first, or a wrong proof, is
 * logged, counted and closed. Over tls+tcp:// the whole exchange is also
 * encrypted (nng's TLS, mbedtls), and with tls_ca both ends must show a
 * certificate that CA signed: the dialler checks the listener's against
 * the server name it expects, the listener asks the dialler for one and
 * refuses a node without (nng 1.5 tells whether the dialler's certificate
 * was verified, not the name in it, so the shared secret still says which
 * node it is). A TLS failure is logged on both sides with the address and
 * what to check. Over plain tcp:// and ipc:// the
 * handshake authenticates the peer when it connects but does not protect
 * the frames after it from someone on the path who can alter the stream.
 *
 * Incompatible with older nodes: nodes from before "weft-auth-2" proved
 * "weft-auth-1" | their nonce | own nonce | own name, without the role.
 * Each side refuses the other's proof ("wrong proof of the cluster
 * secret"), so a cluster must be upgraded as a whole.
 *
 * Failure detection: TCP alone does not notice a peer that went silent (a
 * cut cable, a partition, a host that froze): its connection looks open for
 * as long as nothing is written, and for minutes when something is. So a
 * connection that has sent nothing for heartbeat_ms sends a TICK, and a
 * peer from which nothing at all has arrived for peer_timeout_ms is taken
 * down: its connection is closed, every ask waiting on it fails with
 * WF_ENODEDOWN, monitors hear of it, and its dialer dials again at once.
 * The same bound applies to a connection that has not finished its
 * handshake, and to a dial that has not connected. Erlang's net_ticktime
 * is the same idea with a default of 60 s; weft's default is 3 s, because
 * a request's whole deadline is usually shorter than that. The check is
 * suspended while this node's own loop has been stalled (a tick late by
 * more than half of peer_timeout_ms), so a busy node does not take down
 * the peers whose frames it has not read yet.
 *
 * Life cycle: wf_transport_new plugs the transport into a node; it is closed
 * and freed when the node shuts down.
 */
#ifndef WEFT_TRANSPORT_H
#define WEFT_TRANSPORT_H

#include <weft/api.h>

#include <stddef.h>
#include <stdint.h>

#include <weft/node.h>
#include <weft/trace.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wf_transport wf_transport;

typedef struct wf_transport_config {
    const char *secret;          /* the cluster's shared secret; required, copied */
    size_t max_payload;          /* largest message body accepted; 0: 1 MiB */
    uint32_t reconnect_min_ms;   /* dial back-off, first wait; 0: 100 */
    uint32_t reconnect_max_ms;   /* dial back-off, longest wait; 0: 2000 */
    const char *tls_cert_key;    /* PEM file with this node's certificate and key */
    const char *tls_ca;          /* PEM file of the CA that signs nodes' certificates */
    const char *tls_server_name; /* name a dialled listener's certificate must carry
                                    (NULL: the URL's host); wf_transport_peer_tls
                                    sets one per peer. Dialling tls+tcp needs tls_ca */
    uint32_t connect_wait_ms;    /* how long frames to a named peer wait for it; 0: 5000 */
    uint32_t heartbeat_ms;       /* a TICK on a connection quiet this long; 0: 500 */
    uint32_t peer_timeout_ms;    /* silence that takes a peer down (see below); 0: 3000 */
} wf_transport_config;

/* wf_transport_new creates the transport of node n (which must not have one)
 * and opens its nng socket. cfg is borrowed for the call (the secret and
 * the TLS paths are copied; the files are read now, to refuse a bad one,
 * and again by each tls+tcp dial as it starts). *out is owned by the node from here
 * (freed when it shuts down). Returns 0, WF_EINVAL (no secret), WF_ENOMEM,
 * or WF_EPROTO when nng refuses. Loop thread, or before the node runs. */
WF_API int wf_transport_new(wf_node *n, const wf_transport_config *cfg, wf_transport **out);

/* wf_transport_listen accepts peers on url (borrowed for the call). Returns
 * 0, WF_ENOMEM or WF_EPROTO (the reason is logged). Loop thread, or before
 * the node runs. */
WF_API int wf_transport_listen(wf_transport *t, const char *url);

/* wf_transport_dial connects to a peer at url (copied), and reconnects with
 * back-off whenever the connection drops, until the node shuts down. Returns
 * 0 at once (not waiting for the peer), WF_ENOMEM, or WF_EPROTO for a bad
 * url (logged). Loop thread, or before the node runs. */
WF_API int wf_transport_dial(wf_transport *t, const char *url);

/* wf_transport_peer names a peer before it connects: with a cluster file
 * every node's name and URL are known up front. From here wf_resolve finds
 * actors on node name even while it is not connected, and what is sent to
 * them waits (in order, at most 64 MiB) for the peer to connect; if it has
 * not within cfg->connect_wait_ms of the first waiting frame, the waiting
 * frames are dropped and the runtime hears the peer is down, so every ask to
 * it fails with WF_ENODEDOWN naming it. The same holds whenever the peer's
 * connection drops, until it is back. url (may be NULL: the peer dials this
 * node) is dialled as wf_transport_dial does, and a connection there that
 * turns out to be another node is refused. name and url are copied. Returns
 * 0, WF_EINVAL (no name, this node's own name, or a name over 255 bytes),
 * WF_ENOMEM, or WF_EPROTO for a bad url (logged). Loop thread, or before the
 * node runs. */
WF_API int wf_transport_peer(wf_transport *t, const char *name, const char *url);

/* wf_transport_peer_tls is wf_transport_peer for a tls+tcp:// url whose
 * listener's certificate must carry server_name (copied; NULL: the
 * config's tls_server_name, else the URL's host; ignored for other URLs),
 * so that each peer can have a certificate of its own. Same returns.
 * Loop thread, or before the node runs. */
WF_API int wf_transport_peer_tls(wf_transport *t, const char *name, const char *url,
                                 const char *server_name);

typedef struct wf_transport_stats {
    uint64_t frames_in, frames_out;
    uint64_t rejected;      /* frames refused: malformed, oversized, unexpected */
    uint64_t auth_failures; /* connections closed for failing the handshake */
    uint64_t peers_up, peers_down;
    uint64_t send_failures; /* frames not sent: peer gone, queue full, waited in vain */
    uint64_t peers_silent;  /* connections closed for peer_timeout_ms of silence */
} wf_transport_stats;

/* wf_transport_stats_get copies t's counters into the caller's out. Loop
 * thread. */
WF_API void wf_transport_stats_get(const wf_transport *t, wf_transport_stats *out);

/* wf_transport_peers lists the peers connected now, for diagnostics: writes
 * up to max names into the caller's names and returns how many there are.
 * The names are borrowed from t and stay valid until the node shuts down
 * (a peer's name is kept after it goes). Loop thread. */
WF_API size_t wf_transport_peers(const wf_transport *t, const char **names, size_t max);

/* wf_transport_trace_start is wf_node_trace_start (weft/trace.h) that also
 * opens cfg->pub_url: an nng PUB socket listening there streams the node's
 * trace lines to live viewers (weft-view --live URL). Needs no transport
 * on the node. Returns what wf_node_trace_start returns, or WF_EIO when the
 * URL cannot be listened on (logged). cfg is borrowed for the call (its
 * strings are copied; cfg->sink must be NULL or as wf_node_trace_start
 * says). Loop thread, or before the node runs. */
WF_API int wf_transport_trace_start(wf_node *n, const wf_trace_config *cfg);

#ifdef __cplusplus
}
#endif
#endif
