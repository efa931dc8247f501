/* Tracing: what a node's actors do, as events, to a file, a flight
 * recorder on disk and a live stream.
 *
 * Every message carries a trace context (W3C trace-context ids: a 16-byte
 * trace id, the message's own 8-byte span id and the span it was sent
 * from). A message sent from a handler continues the trace of the message
 * being handled; a reply continues the ask; a message sent from outside any
 * turn starts a new trace, which is recorded or not by sampling. Contexts
 * travel in the wire header (weft/wire.h), so one trace spans nodes.
 *
 * A node that traces records events on its loop thread into a ring of
 * fixed binary records, with no lock, no syscall and, for message events,
 * no allocation (failures, names and labels are copied). A writer thread
 * copies them into self-describing binary chunks (the format is
 * actors/trace/tracefile.h) for the sinks: a file, a flight recorder (a
 * bounded ring of files on disk, kept always on, from which a failure, a
 * crash or a request keeps the recent window as a dump), and an nng PUB
 * socket that viewers subscribe to (tools/weft view). The writer runs at a
 * lower priority than the node's threads (nice 10 on Linux), so that when
 * the CPUs are all busy the service comes first: when the writer falls
 * behind, events are dropped and counted (a "lost" event says how many),
 * never the loop slowed down. A node that does not trace pays one
 * predictable branch per message.
 *
 * Clock: each event takes one reading of the time-stamp counter where it
 * is invariant (the same rate whatever the CPU's power state, the same on
 * every core: CPUID says so), else of the monotonic clock (uv_hrtime).
 * Why: on the VMs measured a counter reading cost 10-15 ns against 26-30
 * ns for the monotonic clock through the vDSO, and every event pays it.
 * The writer maps ticks to the monotonic clock's ns with a line through
 * two readings of both, the first 2 ms apart when tracing starts, the
 * latest each round; tests check that an event's time lies between
 * monotonic readings taken around it. Events timed off the loop (pool
 * threads, a remote send stamped before its frame goes) carry ns and are
 * not mapped. Sharing one reading between events would make a handler's
 * run or a message's hop take no time, which is what a viewer shows;
 * the trace setting clock=monotonic chooses the monotonic clock anyway.
 * tools/weft bench trace measures both readings and both clocks.
 *
 * The events, as weft-view prints them with --jsonl (JSON lines, one
 * object per line; the binary records hold the same fields).
 * Every event has
 *   "ev"      kind (below)          "node"  the recording node's name
 *   "seq"     per-node sequence     "t_ns"  monotonic ns (this host)
 *   "wall_us" wall clock, µs since the epoch (this host's clock)
 * and, where they apply,
 *   "trace" (32 hex), "span" (16 hex), "parent" (16 hex, absent at a root)
 *   "actor"   where it happens: the actor's name, or "kind#n" if anonymous
 *             ("#id" for an actor the writer has no name for),
 *             "" for code outside any actor (its "pid", hex, on actor events)
 *   "to", "from"  the other side as "actor@node"
 *   "msg"     "tell" | "ask"        "type"  message type (number)
 *   "handler" the handler's name    "corr"  the ask's correlation id (hex)
 *   "size"    payload bytes         "depth" mailbox depth after enqueue
 *   "preview" the payload's first bytes, unprintable ones as '.'
 *   "ok"      true | false          "outcome" (end) "reply" | "deferred" |
 *                                             "none" | "fail"
 *   "code", "message", "failure"    a failure's error name, message and
 *                                   whole formatted trace (text)
 *   "peer", "why", "label", "pool"  as said below
 * Kinds:
 *   config     tracing started or changed: "sample", "actors", "types"
 *   actor      an actor was spawned ("actor", "pid", "behaviour")
 *   stop       an actor stopped ("ok"; when it crashed, the failure)
 *   send       a message left "actor" for "to" ("msg", "type", "size",
 *              "preview"; "depth" when the target is on this node, whose
 *              mailbox it entered at once; "corr" for an ask)
 *   recv       a message from another node entered "actor"'s mailbox
 *              ("from", "depth"); local messages have no recv
 *   start, end a handler ran on the loop ("handler"; end: "ok", "outcome")
 *   offload_start, offload_end  the same on the thread pool ("pool": true;
 *              "t_ns" is the pool thread's reading); for wf_defer_to_thread
 *              "label" is "defer_to_thread"
 *   reply      a request's answer left the answering actor ("size")
 *   fail       a request was answered with a failure (the failure)
 *   fired      the asker's deferred fired ("ok", "corr"; at the asker's
 *              node: span is the ask's, so send -> fired is the round trip)
 *   timeout    an ask timed out at the asker
 *   node_up, node_down  a peer node ("peer") connected or was lost ("why")
 *   lost       "count" events were dropped before this one
 * The outside world (an HTTP client, say) appears as recv and reply events
 * whose "from"/"to" name no actor and whose "label" says what it was.
 */
#ifndef WEFT_TRACE_H
#define WEFT_TRACE_H

#include <weft/api.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <weft/node.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WF_TRACE_SAMPLED 0x01 /* W3C trace-flags: recorded */
#define WF_TRACE_VALID   0x80 /* weft's own bit: the context is set */

/* A trace context. A zero flags field means "no trace"; without
 * WF_TRACE_SAMPLED the ids may be unset (nothing records the trace, and
 * only the decision travels with its messages). */
typedef struct wf_trace_ctx {
    uint8_t trace_id[16];
    uint64_t span_id;   /* this span */
    uint64_t parent_id; /* the span it comes from; 0 at a root */
    uint8_t flags;      /* WF_TRACE_SAMPLED | WF_TRACE_VALID */
} wf_trace_ctx;

/* "00-" 32 hex "-" 16 hex "-" 2 hex */
#define WF_TRACEPARENT_LEN 55

/* wf_traceparent_parse reads a W3C traceparent header value s[0..len):
 * out gets its trace id and flags, and its parent-id as out->parent_id
 * (span_id 0: the caller's span is yet to be made). Returns 0 or WF_EINVAL
 * (malformed, version ff, or all-zero ids). Any thread. */
WF_API int wf_traceparent_parse(const char *s, size_t len, wf_trace_ctx *out);

/* wf_traceparent_format writes c as a traceparent value naming c's own span
 * as the parent, NUL-terminated, into the caller's out. Any thread. */
WF_API void wf_traceparent_format(const wf_trace_ctx *c, char out[WF_TRACEPARENT_LEN + 1]);

/* A sink for trace chunks that a program plugs in, beside the file: the
 * transport's live PUB stream is one (wf_transport_trace_start). write gets
 * one whole binary chunk, chunk[0..len) borrowed for the call, on the
 * node's trace writer thread, and must not block; close is called once, on
 * that thread or the one stopping the trace, when the writer lets go of
 * it. */
typedef struct wf_trace_sink {
    void (*write)(void *arg, const char *chunk, size_t len);
    void (*close)(void *arg);
    void *arg;
} wf_trace_sink;

#define WF_TRACE_RING_BYTES (256ull << 20) /* a flight recorder's default size */
#define WF_TRACE_RING_DUMPS 32             /* dumps it keeps by default */

/* The clock events are timed with (above: why). AUTO: the time-stamp
 * counter where it is invariant, else the monotonic clock. */
enum { WF_TRACE_CLOCK_AUTO, WF_TRACE_CLOCK_TSC, WF_TRACE_CLOCK_MONOTONIC };

typedef struct wf_trace_config {
    const char *file;          /* binary chunks, appended; NULL: no file */
    const char *ring;          /* the flight recorder's directory; NULL: none */
    uint64_t ring_bytes;       /* its bound in bytes; 0: WF_TRACE_RING_BYTES */
    unsigned ring_seconds;     /* and in age; 0: none */
    unsigned ring_dumps;       /* dumps kept; 0: WF_TRACE_RING_DUMPS */
    const char *pub_url;       /* nng PUB listen URL for live viewers (needs the
                                * transport: wf_transport_trace_start); NULL: none */
    double sample;             /* share of new traces recorded, 0..1 (0: none; parse: 1) */
    const char *actors;        /* "cache,fetcher": only their events; NULL/"": all */
    const char *types;         /* "1,0x52450002": only these types; NULL/"": all */
    unsigned capacity;         /* events buffered for the writer; 0: 65536 */
    int clock;                 /* WF_TRACE_CLOCK_*: how events are timed */
    const wf_trace_sink *sink; /* copied; owned by the trace once started
                                * (closed when it stops), the caller's if
                                * the start fails; NULL: none */
} wf_trace_config;

/* wf_trace_config_parse fills out from spec, "key=value" pairs separated by
 * ';' (keys file, ring, ring-size (bytes, or with k, M or G), ring-seconds,
 * dumps, pub, sample, actors, types, capacity, clock (tsc, monotonic or
 * auto)), e.g.
 * "ring=/var/lib/weft/trace;sample=1;actors=cache,fetcher". out's strings point
 * into spec (borrowed: keep spec alive, it is modified in place). Returns
 * 0 or WF_EINVAL with a reason in err[0..errlen). Any thread. */
WF_API int wf_trace_config_parse(char *spec, wf_trace_config *out, char *err, size_t errlen);

/* wf_node_trace_start makes n record events to cfg's sinks (cfg and its
 * strings are copied; cfg->sink as said there). Returns 0; WF_EALREADY if
 * n traces already; WF_EINVAL for a bad filter, or for a pub_url (libweft
 * knows no sockets: wf_transport_trace_start opens it); WF_EIO if the file
 * cannot be opened (logged); WF_ENOMEM. Loop thread, or before the node
 * runs. */
WF_API int wf_node_trace_start(wf_node *n, const wf_trace_config *cfg);

/* wf_node_trace_filter changes sampling and filters of a tracing node at
 * run time: what is given is copied, "" selects all, and a NULL string or a
 * negative sample (WF_TRACE_KEEP) keeps the current setting. Returns 0,
 * WF_ESTATE if n does not trace, WF_EINVAL (nothing changed). Loop thread. */
#define WF_TRACE_KEEP (-1.0)
WF_API int wf_node_trace_filter(wf_node *n, double sample, const char *actors, const char *types);

/* wf_node_trace_describe writes the current settings ("sample=..;actors=..
 * ;types=..;events=N;lost=N", or "off") into out. Loop thread. */
WF_API void wf_node_trace_describe(wf_node *n, char *out, size_t size);

/* wf_node_trace_dump keeps the flight recorder's recent window (the ring
 * "ring" names, up to the events recorded before this call) as a dump,
 * DIR/dumps/TIME-WHAT-NODE: WHAT is span's trace id when span is sampled,
 * else why ("request", "5xx"). The writer thread makes it shortly after;
 * path[0..size) gets its path. A dump for a failure (urgent false) comes
 * at most once a second: one asked for sooner is made a second after the
 * last, holding everything up to then (path names that one). Returns 0;
 * WF_ESTATE when n records no ring. Loop thread. */
WF_API int wf_node_trace_dump(wf_node *n, const wf_trace_ctx *span, const char *why, bool urgent,
                              char *path, size_t size);

/* wf_node_trace_stop records what is buffered, closes the sinks and stops
 * the writer. Idempotent; wf_node_free calls it. Loop thread, or after the
 * loop ended. */
WF_API void wf_node_trace_stop(wf_node *n);

/* --- for code that runs outside any actor's turn (I/O callbacks) --- */

/* wf_trace_begin starts a span for work that arrives from outside (an HTTP
 * request): a child of parent if parent is not NULL (from a traceparent
 * header), else a new trace subject to sampling (when it is not sampled,
 * span gets no ids: span_id 0). It becomes the current
 * context, so messages sent until wf_trace_end continue it; the previous
 * one is returned for wf_trace_end. Loop thread. */
WF_API wf_trace_ctx wf_trace_begin(wf_node *n, const wf_trace_ctx *parent, wf_trace_ctx *span);

/* wf_trace_end restores the context wf_trace_begin returned. Loop thread. */
WF_API void wf_trace_end(wf_node *n, const wf_trace_ctx *prev);

/* wf_trace_current returns the context of the turn being run (flags 0 when
 * none). Loop thread. */
WF_API wf_trace_ctx wf_trace_current(wf_node *n);

/* wf_trace_note records an event of kind "recv", "reply" or "fail" for the
 * outside world's side of span (as said above): actor is who handles it,
 * label what it was ("GET /poem/x", "200"), size its bytes. Nothing is
 * recorded unless n traces and span is sampled. Loop thread. */
WF_API void wf_trace_note(wf_node *n, const char *kind, wf_pid actor, const wf_trace_ctx *span,
                          const char *label, size_t size);

#ifdef __cplusplus
}
#endif
#endif
