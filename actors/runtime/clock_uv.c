/* A clock on a libuv loop: one uv_timer_t per timer. */
#include <uv.h>

#include <weft/alloc.h>
#include <weft/clock.h>

typedef struct uv_clock uv_clock;

struct wf_timer {
    uv_timer_t handle;     /* freed in the close callback, as libuv requires */
    wf_timer *next, *prev; /* the clock's pending timers */
    uv_clock *clock;
    void (*fn)(void *arg);
    void *arg;
};

struct uv_clock {
    wf_clock c; /* first: a wf_clock * is a uv_clock * */
    uv_loop_t *loop;
    wf_timer *timers;
};

static void on_close(uv_handle_t *h)
{
    wf_free(h->data);
}

static void unlink_close(wf_timer *t)
{
    *(t->prev ? &t->prev->next : &t->clock->timers) = t->next;
    if (t->next)
        t->next->prev = t->prev;
    uv_timer_stop(&t->handle);
    uv_close((uv_handle_t *)&t->handle, on_close);
}

static void on_timer(uv_timer_t *h)
{
    wf_timer *t = h->data;
    void (*fn)(void *) = t->fn;
    void *arg = t->arg;
    unlink_close(t);
    fn(arg);
}

/* libuv counts a timer's delay from uv_now, the loop's time cached at the
 * start of its turn (in whole milliseconds, rounded down): stale before the
 * loop first runs and after a long callback, so a timer started then would
 * fire early by the staleness. Adding the time since that cache, rounded up,
 * makes ms count from the call, for this timer only. uv_update_time would do
 * it too, but moves the loop's time under every other timer started in the
 * same turn. The cost is one clock read per timer; asks use the runtime's
 * own timer wheel, not this clock. */
static uint64_t delay_from_now(uv_loop_t *loop, uint64_t ms)
{
    uint64_t now = (uv_hrtime() + 999999) / 1000000; /* rounded up */
    uint64_t cached = uv_now(loop);
    uint64_t stale = now > cached ? now - cached : 0;
    return ms > UINT64_MAX - stale ? UINT64_MAX : ms + stale;
}

static wf_timer *uvc_call_later(wf_clock *c, uint64_t ms, void (*fn)(void *), void *arg)
{
    uv_clock *u = (uv_clock *)c;
    wf_timer *t = wf_malloc(sizeof *t);
    if (t == NULL)
        return NULL;
    *t = (wf_timer){.clock = u, .fn = fn, .arg = arg, .next = u->timers};
    uv_timer_init(u->loop, &t->handle);
    t->handle.data = t;
    uv_timer_start(&t->handle, on_timer, delay_from_now(u->loop, ms), 0);
    if (u->timers)
        u->timers->prev = t;
    u->timers = t;
    return t;
}

static void uvc_cancel(wf_clock *c, wf_timer *t)
{
    (void)c;
    unlink_close(t);
}

static uint64_t uvc_now(wf_clock *c)
{
    return uv_now(((uv_clock *)c)->loop);
}

static void uvc_destroy(wf_clock *c)
{
    uv_clock *u = (uv_clock *)c;
    while (u->timers != NULL)
        unlink_close(u->timers);
    wf_free(u);
}

wf_clock *wf_clock_uv_new(void *loop)
{
    uv_clock *u = wf_malloc(sizeof *u);
    if (u == NULL)
        return NULL;
    *u = (uv_clock){.c = {uvc_call_later, uvc_cancel, uvc_now, uvc_destroy}, .loop = loop};
    return &u->c;
}
