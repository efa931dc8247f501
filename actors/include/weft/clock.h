/* Clocks: the only thing the deferred core knows of time.
 *
 * A clock schedules one-shot calls. weft ships a clock on a libuv loop and a
 * manual clock for tests (advance it by hand, as Twisted's task.Clock); a
 * program may bring its own by filling in the operations.
 */
#ifndef WEFT_CLOCK_H
#define WEFT_CLOCK_H

#include <weft/api.h>

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wf_timer wf_timer;
typedef struct wf_clock wf_clock;

/* The operations of a clock. call_later returns a timer that calls fn(arg)
 * once, no sooner than ms milliseconds after the call to call_later (on a
 * libuv clock, real milliseconds, even when the loop's cached time is stale
 * because the loop has not run yet or a callback ran long; on a manual
 * clock, its own time), or NULL when memory is short. cancel stops a timer
 * that has not run yet, and must not be given one that has (the timer is
 * gone once it ran or was cancelled). now is the clock's time in
 * milliseconds from an arbitrary origin (on a libuv clock, the loop's time
 * cached at the start of its turn, so it may lag real time by the turn so
 * far). destroy frees the clock. All run on the clock's thread. */
struct wf_clock {
    wf_timer *(*call_later)(wf_clock *c, uint64_t ms, void (*fn)(void *arg), void *arg);
    void (*cancel)(wf_clock *c, wf_timer *t);
    uint64_t (*now)(wf_clock *c);
    void (*destroy)(wf_clock *c);
};

static inline wf_timer *wf_clock_call_later(wf_clock *c, uint64_t ms, void (*fn)(void *), void *a)
{
    return c->call_later(c, ms, fn, a);
}
static inline void wf_clock_cancel(wf_clock *c, wf_timer *t)
{
    c->cancel(c, t);
}
static inline uint64_t wf_clock_now(wf_clock *c)
{
    return c->now(c);
}

/* wf_clock_free cancels the clock's pending timers and frees it. Nothing
 * may still hold one of its timers (a deferred with a pending timeout
 * does). A libuv clock's timers are freed once the loop has run its close
 * callbacks. */
static inline void wf_clock_free(wf_clock *c)
{
    if (c)
        c->destroy(c);
}

/* wf_clock_manual_new returns a clock whose time moves only by
 * wf_clock_manual_advance, which runs every timer that comes due, in order
 * of due time. Single-threaded. NULL when memory is short. */
WF_API wf_clock *wf_clock_manual_new(void);
WF_API void wf_clock_manual_advance(wf_clock *c, uint64_t ms);
/* Timers still pending on a manual clock. */
WF_API unsigned wf_clock_manual_pending(wf_clock *c);

/* wf_clock_uv_new returns a clock driven by loop's timers (uv_loop_t *,
 * declared void here so this header needs no uv.h); a timer's milliseconds
 * count from the call that set it, in real time (each call_later reads the
 * clock once), while now is uv_now. Loop thread only. Its
 * memory is freed through uv_close, so run the loop once after
 * wf_clock_free before closing the loop. NULL when memory is short. */
WF_API wf_clock *wf_clock_uv_new(void *loop);

#ifdef __cplusplus
}
#endif
#endif
