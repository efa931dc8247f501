/* The interface between a node's runtime and a transport.
 *
 * Applications do not use this header: a transport (transport/) plugs in
 * here, so that the runtime knows no socket and the transport no actor
 * internals. Everything here runs on the node's loop thread, except
 * wf_link_check_thread.
 *
 * Addresses: a pid whose top 16 bits are zero is local. A remote pid has the
 * peer number (1..65535, the transport's numbering) in its top 16 bits and,
 * below, either the actor's id on that node or, with bit 47 set, the index
 * of an actor name the runtime interned for that peer (wf_resolve).
 */
#ifndef WEFT_LINK_H
#define WEFT_LINK_H

#include <weft/api.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <weft/msg.h>
#include <weft/node.h>
#include <weft/trace.h>

#ifdef __cplusplus
extern "C" {
#endif

enum wf_link_kind {
    WF_LINK_TELL = 3,
    WF_LINK_ASK = 4,
    WF_LINK_REPLY = 5,
    WF_LINK_FAIL = 6,
    WF_LINK_CANCEL = 7, /* ask corr (to the actor to/name) is not awaited any more */
    /* corr is a monitor's reference, chosen by the watcher's node: */
    WF_LINK_MONITOR = 9,    /* actor from watches the actor to/name */
    WF_LINK_DEMONITOR = 10, /* the watch corr (of the actor to/name) is over */
    WF_LINK_DOWN = 11,      /* the actor watched under corr stopped (failure: why; NULL: normal) */
};

/* One outgoing message, as the runtime hands it to the transport. */
typedef struct wf_link_out {
    int kind; /* enum wf_link_kind */
    uint16_t peer;
    uint64_t corr;      /* ASK, CANCEL: the asker's pending id; REPLY/FAIL: the one answered */
    uint32_t budget_ms; /* ASK: ms left of its deadline (at least 1); 0: none */
    uint64_t from;      /* sending actor (local id) or 0 */
    uint64_t to;        /* target actor id on the peer, or 0 with name */
    const char *name;   /* target actor name on the peer, or NULL */
    wf_msg *msg;        /* TELL, ASK, REPLY: the message (borrowed) */
    const wf_failure *failure; /* FAIL, DOWN (borrowed; DOWN: NULL for a normal stop) */
    const wf_trace_ctx *tc;    /* the message's span (REPLY/FAIL: the ask's), or NULL */
} wf_link_out;

typedef struct wf_link_ops {
    /* Sends o. Returns 0 (sent, or queued until a peer named up front
     * connects), or WF_ENODEDOWN if the peer is not connected (or another
     * error); never blocks. */
    int (*send)(void *ctx, const wf_link_out *o);
    /* The number of the peer called node_name, or 0 if unknown. */
    uint16_t (*peer_of)(void *ctx, const char *node_name);
    /* The name of peer number peer (borrowed), or NULL. */
    const char *(*peer_name)(void *ctx, uint16_t peer);
    /* Called once when the node shuts down: close everything. */
    void (*close)(void *ctx);
} wf_link_ops;

/* wf_node_set_link plugs a transport into n (ops and ctx borrowed: they
 * must outlive n; ops->close is the transport's cue to let go). Returns
 * WF_EINVAL if one is plugged already. Before the node runs, or on its
 * loop thread. */
WF_API int wf_node_set_link(wf_node *n, const wf_link_ops *ops, void *ctx);

/* wf_link_check_thread lets a transport check its own public functions'
 * thread rules as the runtime checks its own: in a libweft built without
 * NDEBUG (debug and sanitizer builds), a call on a thread that is not n's
 * loop thread stops the process with a message naming fn (borrowed) and
 * both threads; with before_ok, any thread may call before n runs. A
 * release libweft does nothing here. Any thread. */
WF_API void wf_link_check_thread(const wf_node *n, const char *fn, bool before_ok);

/* From the transport: a TELL or ASK frame from peer, for the local actor
 * with id to (or, if name is not NULL, the one registered as
 * name[0..name_len), borrowed for the call), in span tc (borrowed; flags 0
 * when untraced), an ASK with budget_ms left of its deadline (0: none).
 * m is consumed. An ASK that cannot be delivered is answered at once. */
WF_API void wf_link_deliver(wf_node *n, uint16_t peer, int kind, uint64_t corr, uint64_t from,
                            uint64_t to, const char *name, size_t name_len, const wf_trace_ctx *tc,
                            uint32_t budget_ms, wf_msg *m);

/* From the transport: peer no longer waits for the answer to its ask corr,
 * sent to the local actor to (or name[0..name_len), borrowed). That
 * request is cancelled (wf_ask explains); nothing if it is gone. */
WF_API void wf_link_cancel(wf_node *n, uint16_t peer, uint64_t corr, uint64_t to, const char *name,
                           size_t name_len);

/* From the transport: the answer r (a message, or a failure) to the local
 * pending ask corr, from peer. r is consumed. */
WF_API void wf_link_answer(wf_node *n, uint16_t peer, uint64_t corr, wf_result r);

/* From the transport: an actor on peer watches the local actor to (or
 * name[0..name_len), borrowed) under reference ref (peer's: it knows which
 * of its actors that is). When that actor stops, or at once if there is
 * none, a DOWN with ref goes back to peer. */
WF_API void wf_link_monitor(wf_node *n, uint16_t peer, uint64_t ref, uint64_t to, const char *name,
                            size_t name_len);

/* From the transport: peer's watch ref of the local actor to (or
 * name[0..name_len)) is over (its watcher stopped). Nothing if unknown. */
WF_API void wf_link_demonitor(wf_node *n, uint16_t peer, uint64_t ref, uint64_t to,
                              const char *name, size_t name_len);

/* From the transport: the remote actor a local actor watches under ref
 * (wf_monitor) stopped, for reason (consumed; NULL for a normal stop). Its
 * watcher gets WF_MSG_DOWN. Nothing if ref is unknown (the watch is over). */
WF_API void wf_link_down(wf_node *n, uint16_t peer, uint64_t ref, wf_failure *reason);

/* From the transport: peer is connected and authenticated (for tracing:
 * the runtime has nothing else to do). */
WF_API void wf_link_peer_up(wf_node *n, uint16_t peer);

/* From the transport: peer is gone, for the reason why (borrowed for the
 * call). Every pending ask to it fails now with WF_ENODEDOWN, local
 * monitors of its actors get Down, and its watches of local actors end. */
WF_API void wf_link_peer_down(wf_node *n, uint16_t peer, const char *why);

/* The peer number of a remote pid (0 for a local one). */
static inline uint16_t wf_pid_peer(wf_pid p)
{
    return (uint16_t)(p.id >> 48);
}

#ifdef __cplusplus
}
#endif
#endif
