/* Nodes: one libuv loop (the reactor) with its mailbox dispatcher.
 *
 * A node owns its actors, their mailboxes, the table of pending asks and the
 * loop that runs them all. Every actor's handlers, every deferred the node
 * hands out and every callback on those deferreds run on the node's loop
 * thread (blocking handlers excepted: they run on libuv's thread pool, one
 * at a time per actor). Several nodes may live in one process, each on its
 * own thread.
 *
 * Life cycle: wf_node_new, then wf_node_run (this thread) or wf_node_start
 * (a new thread), then wf_node_shutdown from any thread, then wf_node_wait
 * (after start) and wf_node_free.
 *
 * Threads: each function below says on which thread it may run. Builds
 * without NDEBUG (debug and sanitizer builds) check it: a call on a thread
 * its comment does not allow stops the process (abort) with a message
 * naming the function, the calling thread and the loop's thread. Before the
 * node runs, the thread that made it counts as its loop thread.
 */
#ifndef WEFT_NODE_H
#define WEFT_NODE_H

#include <weft/api.h>

#include <stdbool.h>
#include <stdint.h>

#include <weft/deferred.h>
#include <weft/msg.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wf_node wf_node;

/* An actor's address. Local pids carry a slot and a generation, so a pid
 * of a stopped actor never reaches the actor that reuses its slot. */
typedef struct wf_pid {
    uint64_t id; /* 0: no actor */
} wf_pid;

static inline bool wf_pid_is_none(wf_pid p)
{
    return p.id == 0;
}

typedef struct wf_node_config {
    const char *name;        /* shown in failure traces; default "node" */
    unsigned mailbox_limit;  /* default per-actor bound; 0: 65536 */
    uint64_t ask_timeout_ms; /* used when an ask passes 0; 0: 5000 */
} wf_node_config;

/* wf_node_new creates a node (config may be NULL for defaults); the caller
 * owns it. NULL when memory is short. Any thread. */
WF_API wf_node *wf_node_new(const wf_node_config *config);

/* wf_node_run runs the loop on the calling thread, which becomes the
 * node's loop thread, until wf_node_shutdown has finished. Returns 0. Call
 * it (or wf_node_start) once per node. */
WF_API int wf_node_run(wf_node *n);

/* wf_node_start runs the loop on a new thread, and returns once that
 * thread is the node's loop thread. Returns 0 or WF_ENOMEM. Any thread but
 * a loop thread; once per node. */
WF_API int wf_node_start(wf_node *n);

/* wf_node_shutdown asks the node to stop, from any thread: every actor is
 * stopped (terminate runs), every pending ask errbacks with WF_ESHUTDOWN,
 * every queued message is dropped (asks fail), and the loop ends. Once it
 * has begun, sends fail with WF_ESHUTDOWN. Idempotent. */
WF_API void wf_node_shutdown(wf_node *n);

/* wf_node_wait joins the thread of wf_node_start. Not from the loop thread. */
WF_API void wf_node_wait(wf_node *n);

/* wf_node_free frees a node whose loop has ended (or never ran: then its
 * actors are stopped first). Not from the loop thread. */
WF_API void wf_node_free(wf_node *n);

/* The node's name (borrowed, fixed for n's life; any thread), loop (a
 * uv_loop_t *, borrowed; use it on the loop thread) and a clock on that
 * loop (borrowed, freed with n; loop thread). */
WF_API const char *wf_node_name(const wf_node *n);
WF_API void *wf_node_loop(wf_node *n);
WF_API struct wf_clock *wf_node_clock(wf_node *n);

/* wf_node_on_loop: is the caller on n's loop thread? Any thread. */
WF_API bool wf_node_on_loop(const wf_node *n);

/* wf_resolve turns an address into a pid: "name" for an actor on this node
 * (a none pid if there is none), "name@node" for one on another node,
 * through the node's transport (a none pid if that node is unknown). A
 * remote pid is resolved by name on the far node at each delivery, so it
 * stays valid across restarts of that actor. Loop thread. */
WF_API wf_pid wf_resolve(wf_node *n, const char *address);

/* wf_tell delivers m to actor to without waiting for anything; m is
 * consumed. Returns 0; WF_ENOSUCHACTOR; WF_EOVERLOADED if the mailbox is
 * full; WF_ESHUTDOWN. Any thread: from off the loop thread delivery is
 * queued to the loop and errors other than WF_ESHUTDOWN are only counted. */
WF_API int wf_tell(wf_node *n, wf_pid to, wf_msg *m);

/* wf_ask sends m to actor to as a request and returns a deferred (the
 * caller's reference) that fires, on the loop thread, with exactly one
 * outcome: the reply message (wf_result_msg), or a failure: WF_ETIMEDOUT
 * timeout_ms after the call, however stale the loop's cached time (0: the
 * node's default), WF_ENOSUCHACTOR or
 * WF_EOVERLOADED at once, WF_EACTORSTOPPED, WF_ESHUTDOWN, WF_ENOREPLY, or
 * the handler's own. m is consumed. Loop thread only; outside an actor (in
 * an actor use wf_ctx_ask). NULL only when memory is short.
 *
 * Deadlines and cancellation travel with the request. The message carries
 * its deadline (to another node, as the time left), so the callee knows
 * its budget (wf_ctx_time_left) and a request whose deadline has passed
 * before its turn is answered WF_ETIMEDOUT without running the handler. An
 * ask made while a request is handled, or from the callbacks of an ask
 * made then, fires no later than that request's deadline. Cancelling the
 * deferred (wf_deferred_cancel) fails it with WF_ECANCELED at once and
 * tells the callee, whose request's deferred is cancelled in turn (a
 * request still queued is dropped); so does a timeout. */
WF_API wf_deferred *wf_ask(wf_node *n, wf_pid to, wf_msg *m, uint64_t timeout_ms);

/* wf_node_call is wf_ask for a thread that is not the loop's: it blocks
 * until the outcome and returns it (the caller owns it). m is consumed.
 * Any thread but n's loop thread: there it would wait for itself, so it
 * fails at once with WF_ESTATE; once shutdown has begun, WF_ESHUTDOWN. */
WF_API wf_result wf_node_call(wf_node *n, wf_pid to, wf_msg *m, uint64_t timeout_ms);

/* wf_defer_to_thread runs fn(arg) on libuv's thread pool and returns a
 * deferred (the caller's reference) that fires on the loop thread with
 * fn's result (a value or a failure; fn must not return a deferred).
 * Cancelling it before fn has started stops fn from running; cancelling it
 * while fn runs fires it at once with WF_ECANCELED, and fn's result is
 * freed on the loop thread when fn returns. arg stays the caller's and must
 * stay valid until fn has returned or the deferred fired unstarted. Loop
 * thread. NULL when memory is short (fn will not run). */
WF_API wf_deferred *wf_defer_to_thread(wf_node *n, wf_result (*fn)(void *arg), void *arg);

/* Counters, read on the loop thread (or after the loop ended). */
typedef struct wf_node_stats {
    uint64_t asks, tells, replies;
    uint64_t late_replies;   /* replies that came after their ask ended */
    uint64_t cancels;        /* asks cancelled by their asker */
    uint64_t cancelled;      /* requests here whose asker gave up: not answered */
    uint64_t expired;        /* requests not started (or asks not made): deadline passed */
    uint64_t node_down;      /* asks failed because their node went down */
    uint64_t double_replies; /* second replies to one request, rejected */
    uint64_t timeouts, overloaded, dropped;
    uint64_t spawned, stopped, restarts;
    uint64_t offloaded; /* handler runs on the thread pool */
} wf_node_stats;
/* wf_node_stats_get copies the counters into the caller's out. */
WF_API void wf_node_stats_get(const wf_node *n, wf_node_stats *out);

#ifdef __cplusplus
}
#endif
#endif
