/* Actors: private state, one message at a time.
 *
 * An actor is spawned from a behaviour: a table of handlers (one per message
 * type) plus optional init and terminate. Its state is private: only its
 * own handlers touch it, one message at a time, on the node's loop thread,
 * or on the thread pool for handlers declared blocking (still one at a
 * time for that actor, and never while one of its deferred callbacks runs).
 *
 * A handler answers a request in one of three ways:
 *   - reply now: return wf_result_msg(reply), or call wf_reply;
 *   - fail now: return a failure (WF_FAIL), or call wf_reply_failure;
 *   - later: return a deferred; its outcome (a message or a failure) becomes
 *     the reply when it fires (maybeDeferred: the asker cannot tell); a
 *     NULL deferred (what a call short of memory returns) fails the
 *     request with WF_ENOMEM.
 * Whatever happens, the asker gets exactly one outcome: a handler that
 * returns nothing and replied nothing gives WF_ENOREPLY naming the actor and
 * message type; a second reply is rejected (WF_EALREADY, logged with both
 * call sites) and never reaches another request. A handler's failure gets
 * the handler's frame (actor@node, message type) added to its trace.
 *
 * For a tell (no one waits for an answer) a failure, at once or from the
 * returned deferred, stops the actor with that failure as its reason: let
 * it crash, and let its supervisor restart it.
 */
#ifndef WEFT_ACTOR_H
#define WEFT_ACTOR_H

#include <weft/api.h>

#include <stddef.h>
#include <stdint.h>

#include <weft/deferred.h>
#include <weft/msg.h>
#include <weft/node.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What a handler sees of its actor and the message being handled. Borrowed
 * for the duration of the handler (or of init/terminate). */
typedef struct wf_ctx wf_ctx;

/* A handler. msg is borrowed: it is freed after the handler returns (keep
 * its bytes by copying them). The result follows the rules above. */
typedef wf_result (*wf_handler_fn)(wf_ctx *ctx, wf_msg *msg);

enum wf_handler_flags {
    WF_HANDLER_BLOCKING = 1 /* run on the thread pool (deferToThread) */
};

typedef struct wf_handler {
    uint32_t type;    /* the message type it handles */
    const char *name; /* for traces and failures, e.g. "fetch" */
    wf_handler_fn fn;
    unsigned flags; /* enum wf_handler_flags */
} wf_handler;

enum wf_behaviour_flags {
    WF_ACTOR_BLOCKING = 1 /* every handler runs on the thread pool */
};

typedef struct wf_behaviour {
    const char *name;  /* kind of actor, for traces */
    size_t state_size; /* bytes of private state, zeroed at spawn */
    /* Sets up the state from arg (borrowed). Nonzero: spawn fails with it. */
    int (*init)(wf_ctx *ctx, void *arg);
    /* Cleans up the state. reason is NULL for a normal stop (borrowed). */
    void (*terminate)(wf_ctx *ctx, const wf_failure *reason);
    const wf_handler *handlers; /* nhandlers entries */
    size_t nhandlers;
    unsigned flags;         /* enum wf_behaviour_flags */
    unsigned mailbox_limit; /* 0: the node's default */
} wf_behaviour;

/* wf_spawn starts an actor of behaviour b (borrowed; must outlive the
 * actor) under name (copied; NULL for an anonymous actor), calling
 * b->init(ctx, arg) first (arg is borrowed for that call). *pid gets its address. Returns 0;
 * WF_EINVAL if the name is taken; init's error; WF_ENOMEM; WF_ESHUTDOWN. When init fails, the asks
 * it made fail with WF_EACTORSTOPPED and the mail it sent itself is dropped. Loop thread, or any
 * thread before the node runs. */
WF_API int wf_spawn(wf_node *n, const char *name, const wf_behaviour *b, void *arg, wf_pid *pid);

/* wf_stop stops actor pid normally: its queued asks and requests it has not
 * answered fail with WF_EACTORSTOPPED, terminate runs, its monitors get
 * Down. An actor busy on the thread pool stops when that handler returns.
 * Returns 0 or WF_ENOSUCHACTOR. Loop thread. */
WF_API int wf_stop(wf_node *n, wf_pid pid);

/* wf_lookup returns the pid registered under name, or a none pid. Loop
 * thread. */
WF_API wf_pid wf_lookup(wf_node *n, const char *name);

/* wf_mailbox_depth returns how many messages wait in actor pid's mailbox
 * (0 if there is no such local actor). Loop thread. */
WF_API size_t wf_mailbox_depth(wf_node *n, wf_pid pid);

/* --- inside a handler (all: the handler's thread, during the call) --- */

WF_API void *wf_ctx_state(wf_ctx *ctx);
WF_API wf_node *wf_ctx_node(wf_ctx *ctx);
WF_API wf_pid wf_ctx_self(wf_ctx *ctx);
/* The actor's name (borrowed), or "" when anonymous. */
WF_API const char *wf_ctx_name(wf_ctx *ctx);
/* The sending actor, or a none pid when sent from outside any actor. */
WF_API wf_pid wf_ctx_sender(wf_ctx *ctx);

/* wf_reply_at answers the request being handled with m (consumed).
 * Returns 0; WF_EALREADY if it was answered already (reported with both
 * call sites); WF_ESTATE if the message is a tell. wf_reply_failure_at
 * answers with failure f (consumed). Use the macros. */
WF_API int wf_reply_at(wf_ctx *ctx, wf_result r, const char *file, int line, const char *func);
#define wf_reply(ctx, m) wf_reply_at((ctx), wf_result_msg(m), __FILE__, __LINE__, __func__)
#define wf_reply_failure(ctx, f) \
    wf_reply_at((ctx), wf_result_failure(f), __FILE__, __LINE__, __func__)

/* wf_ctx_ask asks from inside an actor: like wf_ask, but the deferred's
 * callbacks run as a turn of this actor (serialised with its handlers).
 * The caller owns the returned deferred. Loop thread (not from a blocking
 * handler: there it returns a deferred failed with WF_ESTATE). */
WF_API wf_deferred *wf_ctx_ask(wf_ctx *ctx, wf_pid to, wf_msg *m, uint64_t timeout_ms);

/* wf_ctx_ask_detached is wf_ctx_ask for work shared by several requests (a
 * fetch that coalesces many askers): its deadline is timeout_ms, not cut
 * to what is left of the request being handled. Whoever shares it should
 * cancel it once nobody waits for it. Same thread and ownership. */
WF_API wf_deferred *wf_ctx_ask_detached(wf_ctx *ctx, wf_pid to, wf_msg *m, uint64_t timeout_ms);

/* wf_ctx_time_left: the milliseconds left before the deadline of the
 * request being handled (0 once it has passed; UINT64_MAX for a tell, or
 * an ask with no deadline). Work that could outlast it should not start,
 * or be bounded by it. Any thread that runs the handler. */
WF_API uint64_t wf_ctx_time_left(wf_ctx *ctx);

/* wf_ask_as is wf_ctx_ask for code that runs in actor self's turn but has
 * no ctx at hand: a callback on one of its deferreds. The reply comes back
 * to self's mailbox, as with wf_ctx_ask (if self is gone, it behaves as
 * wf_ask). Loop thread. */
WF_API wf_deferred *wf_ask_as(wf_node *n, wf_pid self, wf_pid to, wf_msg *m, uint64_t timeout_ms);

/* wf_ctx_tell is wf_tell with this actor as the sender; m is consumed.
 * Any thread that runs the handler (the loop, or the pool for a blocking
 * one). */
WF_API int wf_ctx_tell(wf_ctx *ctx, wf_pid to, wf_msg *m);

/* wf_ctx_stop stops this actor once the current handler returns; reason
 * (consumed, may be NULL for normal) is what its monitors see. */
WF_API void wf_ctx_stop(wf_ctx *ctx, wf_failure *reason);

/* wf_monitor makes this actor receive a WF_MSG_DOWN message when actor
 * target stops (at once if it is not alive). A target on another node
 * gives one Down too: its stop's reason, with the hop in the trace, or
 * WF_ENODEDOWN when the link to its node goes first (or cannot be made).
 * Each call is one watch and one Down. Returns 0 or WF_ENOMEM. Loop
 * thread. */
WF_API int wf_monitor(wf_ctx *ctx, wf_pid target);

/* The contents of a WF_MSG_DOWN message. */
typedef struct wf_down {
    wf_pid pid;         /* who stopped */
    int code;           /* 0 for a normal stop, else the reason's code */
    const char *reason; /* the reason's formatted trace ("" if normal); borrowed from msg */
} wf_down;

/* wf_down_parse reads a WF_MSG_DOWN message (borrowed; out->reason points
 * into it). Returns 0 or WF_EINVAL. Any thread. */
WF_API int wf_down_parse(wf_msg *msg, wf_down *out);

#ifdef __cplusplus
}
#endif
#endif
