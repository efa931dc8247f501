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

static wf_timer *uvc_call_later(wf_clock *c, uint64_t ms, void (*fn)(void *), void *arg)
{
    uv_clock *u = (uv_clock *)c;
    wf_timer *t = wf_malloc(sizeof *t);
    if (t == NULL)
        return NULL;
    *t = (wf_timer){.clock = u, .fn = fn, .arg = arg, .next = u->timers};
    uv_timer_init(u->loop, &t->handle);
    t->handle.data = t;
    uv_timer_start(&t->handle, on_timer, ms, 0);
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
