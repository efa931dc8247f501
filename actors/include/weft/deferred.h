/* Deferreds: Twisted's Deferred, in C.
 *
 * A deferred is a result that is not there yet plus the chain of callbacks
 * and errbacks that will process it. Each step receives the previous result
 * and returns the next: a callback that returns a failure switches the chain
 * to errbacks, an errback that returns a value switches it back. A step that
 * returns another deferred pauses this chain until that one fires, then the
 * chain goes on with its result. Chains of any depth run iteratively.
 *
 * Threads: a deferred is not thread-safe. All calls on one deferred (and on
 * deferreds chained to it) must come from one thread at a time; in a weft
 * node that is the node's loop thread.
 *
 * References: wf_deferred_new returns one reference. Every holder (the code
 * that will fire it, the code that waits for it, a runtime table) owns one,
 * taken with wf_deferred_ref and dropped with wf_deferred_release; the last
 * release frees it, exactly once. A deferred waiting for an inner deferred
 * is also held by that inner one until it fires, so its chain still runs
 * when nobody else holds it. Callbacks run with a temporary reference held,
 * so a callback may drop the last outside one.
 *
 * The rule that follows (Twisted's garbage collector hides it; C cannot): a
 * deferred that nobody will ever fire must be fired or cancelled, not just
 * released, or it and the deferreds waiting on it stay allocated. The actor
 * runtime fires every deferred it hands out exactly once.
 *
 * Results follow result.h: a result given to a deferred is consumed, even
 * when the call fails.
 *
 * Unhandled failures: if a deferred is freed while its result is a failure
 * no errback consumed, the failure is reported, as Twisted does at garbage
 * collection: to the unhandled hook if the program set one (an event with
 * the failure itself, as Twisted's log.failure), else with its trace
 * through the log hook (log.h); either way wf_unhandled_count goes up.
 */
#ifndef WEFT_DEFERRED_H
#define WEFT_DEFERRED_H

#include <weft/api.h>

#include <stdbool.h>
#include <stdint.h>

#include <weft/failure.h>
#include <weft/result.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A step of the chain. It owns r and returns the next result. */
typedef wf_result (*wf_callback_fn)(wf_result r, void *arg);

/* Called by wf_deferred_cancel on a deferred that has not fired. It should
 * stop the work and may fire d (usually with its own failure); if it does
 * not, d errbacks with WF_ECANCELED. d is borrowed. */
typedef void (*wf_canceller_fn)(wf_deferred *d, void *arg);

/* wf_deferred_new creates an unfired deferred; the caller owns the one
 * reference. NULL when memory is short. Any thread (then stays on one). */
WF_API wf_deferred *wf_deferred_new(void);

/* wf_deferred_new_cancellable is wf_deferred_new with a canceller; arg is
 * borrowed and must stay valid until d fires or is freed. */
WF_API wf_deferred *wf_deferred_new_cancellable(wf_canceller_fn canceller, void *arg);

/* wf_deferred_new_cancellable_full also hands arg over to d: arg_free (if
 * not NULL) is called with arg exactly once, as soon as the canceller can
 * no longer be called: when d fires (inside the call that fired it, before
 * d's steps run; so code that fires d must not use arg afterwards unless it
 * holds arg some other way), when wf_deferred_cancel has run the canceller
 * (after it returns, even if it fired d), when d is freed unfired, or at
 * once, before returning NULL, when memory is short. arg_free runs on d's
 * thread. */
WF_API wf_deferred *wf_deferred_new_cancellable_full(wf_canceller_fn canceller, void *arg,
                                                     wf_dtor_fn arg_free);

/* wf_deferred_ref adds a reference and returns d. */
WF_API wf_deferred *wf_deferred_ref(wf_deferred *d);

/* wf_deferred_release drops a reference; NULL is ignored. On the last one,
 * callbacks that never ran get their arg_free, an unhandled failure is
 * reported, the result is freed and so is d. */
WF_API void wf_deferred_release(wf_deferred *d);

/* wf_deferred_add_callbacks appends one step: cb runs if the result so far
 * is a value, eb if it is a failure; a NULL function passes the result on
 * unchanged. If d has already fired (and is not paused or waiting), the step
 * runs before this returns, unless the call comes from inside d's own chain
 * (a step of d, or of a deferred chained to it): then it runs as soon as the
 * steps before it have. arg is passed to whichever runs.
 * wf_deferred_add_callbacks_full also takes arg_free, called with arg
 * exactly once: after the step ran, or when d is freed without running it,
 * or at once if adding fails. Returns 0, or WF_ENOMEM. */
WF_API int wf_deferred_add_callbacks_full(wf_deferred *d, wf_callback_fn cb, wf_callback_fn eb,
                                          void *arg, wf_dtor_fn arg_free);

static inline int wf_deferred_add_callbacks(wf_deferred *d, wf_callback_fn cb, wf_callback_fn eb,
                                            void *arg)
{
    return wf_deferred_add_callbacks_full(d, cb, eb, arg, 0);
}

static inline int wf_deferred_add_callback(wf_deferred *d, wf_callback_fn cb, void *arg)
{
    return wf_deferred_add_callbacks_full(d, cb, 0, arg, 0);
}

static inline int wf_deferred_add_errback(wf_deferred *d, wf_callback_fn eb, void *arg)
{
    return wf_deferred_add_callbacks_full(d, 0, eb, arg, 0);
}

/* wf_deferred_add_both runs fn on values and failures alike (addBoth). */
static inline int wf_deferred_add_both(wf_deferred *d, wf_callback_fn fn, void *arg)
{
    return wf_deferred_add_callbacks_full(d, fn, fn, arg, 0);
}

/* wf_deferred_fire_at gives d its result r (a value or a failure, never a
 * deferred) and runs the chain. r is consumed in every case.
 * Returns 0; WF_EINVAL if r is a deferred; WF_EALREADY if d had already
 * fired, in which case d is unchanged and an AlreadyCalled failure naming
 * both call sites goes to *already if that is not NULL (the caller owns it)
 * or else to the log hook. A deferred cancelled without a canceller accepts
 * (and drops) one late firing silently, as Twisted's does. Use the macros,
 * which record the call site. */
WF_API int wf_deferred_fire_at(wf_deferred *d, wf_result r, const char *file, int line,
                               const char *func, wf_failure **already);

#define wf_deferred_callback(d, r) wf_deferred_fire_at((d), (r), __FILE__, __LINE__, __func__, 0)
#define wf_deferred_errback(d, f) \
    wf_deferred_fire_at((d), wf_result_failure(f), __FILE__, __LINE__, __func__, 0)

/* wf_deferred_chain makes other fire with d's result when d reaches this
 * point of its chain (chainDeferred); d continues with an empty value. It
 * takes a reference of its own to other. Returns 0 or WF_ENOMEM. */
WF_API int wf_deferred_chain(wf_deferred *d, wf_deferred *other);

/* wf_deferred_pause stops d from running callbacks until a matching
 * wf_deferred_unpause; pauses nest. */
WF_API void wf_deferred_pause(wf_deferred *d);
WF_API void wf_deferred_unpause(wf_deferred *d);

/* wf_deferred_cancel: if d has not fired, runs its canceller and, if d is
 * still unfired, errbacks it with WF_ECANCELED. If d is waiting on an inner
 * deferred, the innermost unfired one is cancelled instead. If d has fired,
 * nothing happens. */
WF_API void wf_deferred_cancel(wf_deferred *d);

/* wf_deferred_timeout cancels d if it has not fired within ms milliseconds
 * of clock's time counted from this call (never sooner; see clock.h), and
 * turns the resulting WF_ECANCELED into WF_ETIMEDOUT (addTimeout). The
 * steps added before this call run before the conversion. On a deferred
 * that has fired but waits on an inner one, the cancel reaches the inner
 * one. clock (borrowed) must outlive d, or at least d's passing this step.
 * Returns 0 or WF_ENOMEM. */
struct wf_clock;
WF_API int wf_deferred_timeout(wf_deferred *d, struct wf_clock *clock, uint64_t ms);

/* wf_deferred_called: has d been fired? */
WF_API bool wf_deferred_called(const wf_deferred *d);

/* wf_deferred_has_result: has d fired, run its chain to the end, and holds
 * a value or failure (not paused, not waiting on another deferred)? */
WF_API bool wf_deferred_has_result(const wf_deferred *d);

/* wf_deferred_peek returns d's current result, borrowed (valid until the
 * next call on d), or NULL unless wf_deferred_has_result. */
WF_API const wf_result *wf_deferred_peek(const wf_deferred *d);

/* wf_deferred_take moves d's result to *out and leaves an empty value in
 * d, so a failure taken this way counts as handled. Returns 0, or
 * WF_ESTATE (and *out untouched) unless wf_deferred_has_result. */
WF_API int wf_deferred_take(wf_deferred *d, wf_result *out);

/* An unhandled failure, as reported when its deferred is freed. All
 * pointers are borrowed for the hook's call: wf_failure_ref the failure to
 * keep it. fired_file and fired_func (static strings) say where the
 * deferred was fired; NULL where unknown. */
typedef struct wf_unhandled {
    wf_failure *failure;
    const char *fired_file;
    int fired_line;
    const char *fired_func;
} wf_unhandled;

typedef void (*wf_unhandled_fn)(void *arg, const wf_unhandled *u);

/* wf_unhandled_set_hook installs fn (with arg) as the process's unhandled
 * hook: each failure released unhandled with its deferred goes to fn
 * instead of the log hook; NULL restores the default, a log line at
 * WF_LOG_ERROR. fn runs on the thread that drops the deferred's last
 * reference, inside that call (wf_deferred_release, or a step, cancel or
 * fire that dropped it): in a node, its loop thread; with several nodes or
 * threads using deferreds, on any of them at once, so it must be
 * thread-safe. It may call into weft, but must not block the loop.
 * Process-wide configuration, as wf_log_set_hook: set it at start-up,
 * before other threads call into weft. */
WF_API void wf_unhandled_set_hook(wf_unhandled_fn fn, void *arg);

/* wf_unhandled_count returns how many failures have been released
 * unhandled in this process so far, hooked or logged (an atomic counter,
 * never reset). Any thread. */
WF_API uint64_t wf_unhandled_count(void);

/* wf_succeed returns a deferred already fired with r (fail if r is a
 * failure; if r is a deferred it is returned as it is). wf_fail returns one
 * fired with failure f (taken). Both consume their argument; NULL only when
 * memory is short. */
WF_API wf_deferred *wf_succeed(wf_result r);
WF_API wf_deferred *wf_fail(wf_failure *f);

/* wf_maybe calls fn(arg) now and returns its outcome as a deferred
 * (maybeDeferred): a returned deferred as it is, a value or a failure as an
 * already-fired deferred. NULL only when memory is short. */
WF_API wf_deferred *wf_maybe(wf_result (*fn)(void *arg), void *arg);

#ifdef __cplusplus
}
#endif
#endif
