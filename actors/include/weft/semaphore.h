/* A deferred semaphore: limit how much asynchronous work runs at once.
 *
 * Threads: like deferreds, a semaphore is used from one thread (a node's
 * loop thread); its deferreds fire on that thread. */
#ifndef WEFT_SEMAPHORE_H
#define WEFT_SEMAPHORE_H

#include <weft/api.h>

#include <weft/deferred.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wf_semaphore wf_semaphore;

/* wf_semaphore_new makes a semaphore with tokens tokens (1 makes a lock).
 * NULL if tokens is 0 or memory is short. The caller owns it. */
WF_API wf_semaphore *wf_semaphore_new(unsigned tokens);

/* wf_semaphore_free errbacks every waiting acquire with WF_ECANCELED, then
 * frees s. A wf_semaphore_run job still running keeps s until it ends;
 * tokens taken with wf_semaphore_acquire must not be released afterwards. */
WF_API void wf_semaphore_free(wf_semaphore *s);

/* wf_semaphore_acquire returns a deferred (caller's reference) that fires
 * with an empty value once the caller holds a token, at once if one is
 * free. Waiters are served first come, first served. Cancelling a waiting
 * acquire removes it from the queue. NULL when memory is short. */
WF_API wf_deferred *wf_semaphore_acquire(wf_semaphore *s);

/* wf_semaphore_release gives a token back, handing it to the oldest waiter
 * if there is one. Returns WF_ESTATE if no token is held. */
WF_API int wf_semaphore_release(wf_semaphore *s);

/* wf_semaphore_run acquires a token, runs fn(arg) as wf_maybe does, and
 * releases the token when fn's outcome is final; the returned deferred (the
 * caller's reference) fires with that outcome. arg is borrowed until fn has
 * run, which may be long after this returns. NULL when memory is short. */
WF_API wf_deferred *wf_semaphore_run(wf_semaphore *s, wf_result (*fn)(void *arg), void *arg);

/* Free tokens, and acquires waiting. */
WF_API unsigned wf_semaphore_tokens(const wf_semaphore *s);
WF_API unsigned wf_semaphore_waiting(const wf_semaphore *s);

#ifdef __cplusplus
}
#endif
#endif
