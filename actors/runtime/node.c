/* A node's life cycle: made, run on this thread or a new one, shut down
 * (from any thread, carried out on the loop), freed.
 *
 * The node's other parts have their own files: the actor registry
 * (registry.c), the run queue that the mailbox dispatcher drains
 * (dispatch.c), tell (tell.c), pending asks and replies (ask.c), what other
 * threads hand to the loop (call.c) and the transport's side (link.c). The
 * struct they share is in runtime.h.
 */
#include <stdatomic.h>
#include <string.h>

#include <weft/alloc.h>
#include <weft/log.h>

#include "runtime.h"

static void on_async(uv_async_t *h);
static void do_shutdown(wf_node *n);

static void on_trace_prepare(uv_prepare_t *h)
{
    wf__trace_publish(h->data);
}

void wf__node_trace_publishing(wf_node *n, bool on)
{
    if (!n->handles_open)
        return;
    if (on)
        uv_prepare_start(&n->trace_prepare, on_trace_prepare);
    else
        uv_prepare_stop(&n->trace_prepare);
}

/* The calling thread becomes n's loop thread. */
static void take_loop(wf_node *n)
{
    n->loop_tid = uv_thread_self();
    n->loop_os_tid = wf__thread_os_id();
}

wf_node *wf_node_new(const wf_node_config *cfg)
{
    wf_node *n = wf_malloc(sizeof *n);
    if (n == NULL)
        return NULL;
    memset(n, 0, sizeof *n);
    wf__trace_init(n);
    n->name = wf_strdup(cfg && cfg->name ? cfg->name : "node");
    n->mailbox_limit = cfg && cfg->mailbox_limit ? cfg->mailbox_limit : 65536;
    n->ask_timeout_ms = cfg && cfg->ask_timeout_ms ? cfg->ask_timeout_ms : 5000;
    n->armed = UINT64_MAX;
    /* Monitor references start at random: a peer that restarted must not
     * take a DOWN meant for its former self's watch with the same number. */
    if (uv_random(NULL, NULL, &n->last_mref, sizeof n->last_mref, 0, NULL) != 0)
        n->last_mref = uv_hrtime() ^ (uint64_t)(uintptr_t)n;
    n->last_mref &= (1ull << 62) - 1;
    atomic_init(&n->phase, PHASE_NEW);
    atomic_init(&n->shutdown_requested, false);
    if (n->name == NULL || uv_loop_init(&n->loop) != 0)
        goto fail;
    if (uv_mutex_init(&n->inject_lock) != 0) {
        uv_loop_close(&n->loop);
        goto fail;
    }
    uv_idle_init(&n->loop, &n->idle);
    uv_async_init(&n->loop, &n->async, on_async);
    uv_timer_init(&n->loop, &n->ask_timer);
    uv_prepare_init(&n->loop, &n->trace_prepare);
    uv_unref((uv_handle_t *)&n->trace_prepare); /* it never keeps a node running */
    n->idle.data = n->async.data = n->ask_timer.data = n->trace_prepare.data = n;
    n->handles_open = true;
    take_loop(n);
    if ((n->clock = wf_clock_uv_new(&n->loop)) == NULL) {
        wf_node_free(n);
        return NULL;
    }
    return n;

fail:
    wf_free(n->name);
    wf_free(n);
    return NULL;
}

const char *wf_node_name(const wf_node *n)
{
    return n->name;
}

void *wf_node_loop(wf_node *n)
{
    return &n->loop;
}

wf_clock *wf_node_clock(wf_node *n)
{
    return n->clock;
}

bool wf_node_on_loop(const wf_node *n)
{
    return wf__on_loop(n);
}

void wf_node_stats_get(const wf_node *n, wf_node_stats *out)
{
    WF__ON_LOOP_OR_AFTER(n, "wf_node_stats_get");
    *out = n->stats;
}

static void run_loop(wf_node *n)
{
    if (atomic_load(&n->shutdown_requested))
        uv_async_send(&n->async);
    if (n->runq_head != NULL && !n->idle_on)
        wf__dispatch_wake(n);
    while (uv_run(&n->loop, UV_RUN_DEFAULT) != 0 && n->handles_open)
        ;
    atomic_store(&n->phase, PHASE_ENDED);
}

int wf_node_run(wf_node *n)
{
    take_loop(n);
    atomic_store(&n->phase, PHASE_RUNNING);
    run_loop(n);
    return 0;
}

struct start {
    wf_node *n;
    uv_sem_t ready;
};

static void thread_main(void *arg)
{
    struct start *st = arg;
    wf_node *n = st->n;
    take_loop(n);
    /* Other threads read loop_tid (wf_node_on_loop) only after this. */
    uv_sem_post(&st->ready);
    run_loop(n);
}

int wf_node_start(wf_node *n)
{
    struct start st = {.n = n};
    if (uv_sem_init(&st.ready, 0) != 0)
        return WF_ENOMEM;
    atomic_store(&n->phase, PHASE_RUNNING);
    if (uv_thread_create(&n->thread, thread_main, &st) != 0) {
        atomic_store(&n->phase, PHASE_NEW);
        uv_sem_destroy(&st.ready);
        return WF_ENOMEM;
    }
    uv_sem_wait(&st.ready);
    uv_sem_destroy(&st.ready);
    n->started_thread = true;
    return 0;
}

void wf_node_wait(wf_node *n)
{
    WF__OFF_LOOP(n, "wf_node_wait");
    if (n->started_thread) {
        uv_thread_join(&n->thread);
        n->started_thread = false;
    }
}

void wf_node_shutdown(wf_node *n)
{
    atomic_store(&n->shutdown_requested, true);
    uv_async_send(&n->async);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void wf_node_free(wf_node *n)
{
    if (n == NULL)
        return;
    WF__OFF_LOOP(n, "wf_node_free");
    if (n->handles_open) {
        /* The loop never ran (or was never shut down): shut down here, on
         * what is now the loop's only thread. */
        take_loop(n);
        do_shutdown(n);
    }
    wf_node_trace_stop(n); /* what the shutdown recorded, too */
    /* Handles a user left on the loop are closed so that it can close. */
    uv_walk(&n->loop, close_walk, NULL);
    /* The first run only clears a uv_stop left by the shutdown; the second
     * runs the close callbacks, so the loop can close. */
    uv_run(&n->loop, UV_RUN_NOWAIT);
    uv_run(&n->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&n->loop) != 0)
        wf_log(WF_LOG_ERROR, "node %s: its loop could not be closed", n->name);
    uv_mutex_destroy(&n->inject_lock);
    wf__link_fini(n);
    wf_free(n->buckets);
    wf__pending_fini(n);
    wf_free(n->slots); /* every actor has left the registry by now */
    wf_free(n->names);
    wf_free(n->name);
    wf_free(n);
}

/* ---- shutdown ---- */

/* Other threads ring the async handle for injected messages and calls
 * (call.c) and for a shutdown. */
static void on_async(uv_async_t *h)
{
    wf_node *n = h->data;
    if (!n->shutting_down)
        wf__inject_drain(n);
    if (atomic_load(&n->shutdown_requested) && n->handles_open)
        do_shutdown(n);
}

static void stop_for_shutdown(struct actor *a, void *arg)
{
    wf_node *n = arg;
    wf__actor_stop(a, wf_failure_new(WF_ESHUTDOWN, "node %s shut down", n->name));
}

static void do_shutdown(wf_node *n)
{
    n->shutting_down = true;
    /* Pending asks first, while every actor (and its state) is alive. */
    wf__fail_asks_to(n, 0, NULL, NULL);
    wf__each_actor(n, stop_for_shutdown, n);
    /* A blocking handler still on the pool finishes its stop in its after
     * callback, which the loop still runs. */
    wf__inject_refuse(n);
    wf__dispatch(n); /* actors stopped by now hold no mail; frees the queue */
    if (n->link != NULL) {
        n->link->close(n->link_ctx);
        /* The transport is being freed: an actor whose blocking handler
         * finishes its stop later (answers, Downs) has nobody to send to. */
        n->link = NULL;
    }
    wf_clock_free(n->clock);
    n->clock = NULL;
    uv_close((uv_handle_t *)&n->idle, NULL);
    uv_close((uv_handle_t *)&n->async, NULL);
    uv_close((uv_handle_t *)&n->ask_timer, NULL);
    uv_close((uv_handle_t *)&n->trace_prepare, NULL);
    n->handles_open = false;
    /* Handles the program still has on the loop (signal watchers, say) must
     * not keep wf_node_run from returning; wf_node_free closes them. */
    uv_stop(&n->loop);
}
