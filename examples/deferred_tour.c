/* The Deferred tour: three slow fetches on a libuv loop, at most two at a
 * time, each with a deadline, gathered into one report.
 *
 * The "fetch" is a timer standing in for a slow server: it fires its
 * deferred with a poem after a delay. Everything else is weft's core:
 * a semaphore limits concurrency, a timeout cancels what is too slow,
 * callbacks transform results, and gather waits for all of them. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include <weft/weft.h>

struct fetch {
    const char *title;
    unsigned delay_ms;
    wf_clock *clock;
    uint64_t start;
    uv_timer_t timer;
    wf_deferred *d;
};

static void fetch_done(uv_timer_t *t)
{
    struct fetch *f = t->data;
    char *poem = wf_strdup(f->title);
    wf_deferred_callback(f->d, wf_result_value(poem, wf_free));
    wf_deferred_release(f->d);
}

/* A cancelled fetch stops its timer; the deferred then fails with Cancelled
 * (or Timeout, when the deadline cancelled it). */
static void fetch_cancel(wf_deferred *d, void *arg)
{
    struct fetch *f = arg;
    uv_timer_stop(&f->timer);
    wf_deferred_release(f->d);
}

/* Runs under the semaphore: start the slow work, return its deferred. */
static wf_result fetch_start(void *arg)
{
    struct fetch *f = arg;
    f->d = wf_deferred_new_cancellable(fetch_cancel, f);
    wf_deferred_timeout(f->d, f->clock, 300);
    uv_timer_start(&f->timer, fetch_done, f->delay_ms, 0);
    printf("%4llu ms  start %s\n", (unsigned long long)(wf_clock_now(f->clock) - f->start),
           f->title);
    return wf_result_deferred(wf_deferred_ref(f->d));
}

static wf_result shout(wf_result r, void *arg)
{
    for (char *p = r.u.ptr; *p; p++)
        *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    return r;
}

static wf_result report(wf_result r, void *arg)
{
    struct fetch *f = arg;
    wf_gather_result *all = r.u.ptr;
    printf("%4llu ms  all done\n", (unsigned long long)(wf_clock_now(f->clock) - f->start));
    for (size_t i = 0; i < all->n; i++) {
        wf_result *item = &all->items[i];
        if (wf_result_is_failure(*item)) {
            char *trace = wf_failure_format(item->u.failure, WF_FORMAT_TEXT);
            printf("  #%zu failed: %s", i, trace);
            wf_free(trace);
        } else {
            printf("  #%zu got: %s\n", i, (char *)item->u.ptr);
        }
    }
    wf_result_free(r);
    return wf_result_none();
}

int main(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    wf_clock *clock = wf_clock_uv_new(&loop);
    wf_semaphore *two_at_a_time = wf_semaphore_new(2);
    struct fetch fetches[] = {
        {.title = "the tyger", .delay_ms = 100},
        {.title = "ozymandias", .delay_ms = 900}, /* slower than the deadline */
        {.title = "the raven", .delay_ms = 150},
    };
    wf_deferred *ds[3];
    for (int i = 0; i < 3; i++) {
        fetches[i].clock = clock;
        fetches[i].start = wf_clock_now(clock);
        uv_timer_init(&loop, &fetches[i].timer);
        fetches[i].timer.data = &fetches[i];
        ds[i] = wf_semaphore_run(two_at_a_time, fetch_start, &fetches[i]);
        wf_deferred_add_callback(ds[i], shout, NULL);
    }
    wf_deferred *all = wf_gather(ds, 3, WF_GATHER_ALL | WF_GATHER_CONSUME_ERRORS);
    wf_deferred_add_callback(all, report, &fetches[0]);

    uv_run(&loop, UV_RUN_DEFAULT);

    wf_deferred_release(all);
    wf_semaphore_free(two_at_a_time);
    wf_clock_free(clock);
    for (int i = 0; i < 3; i++)
        uv_close((uv_handle_t *)&fetches[i].timer, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    return uv_loop_close(&loop) == 0 ? 0 : 1;
}
