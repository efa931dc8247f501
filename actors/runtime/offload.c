/* Blocking work on libuv's thread pool: blocking handlers (deferToThread as
 * a declaration) and wf_defer_to_thread. The pool thread runs only the
 * handler (or fn); everything it produced is applied on the loop thread in
 * the after-work callback. */
#include <weft/alloc.h>

#include "runtime.h"

struct job {
    uv_work_t work;
    struct actor *a;
    const wf_handler *h;
    wf_msg *m;
    bool has_req;
    struct request req;
    wf_ctx ctx;
    wf_result r;
};

static void job_work(uv_work_t *w)
{
    struct job *j = w->data;
    j->r = j->h->fn(&j->ctx, j->m);
}

static void job_after(uv_work_t *w, int status)
{
    struct job *j = w->data;
    struct actor *a = j->a;
    struct request *req = j->has_req ? &j->req : NULL;
    if (status != 0) /* only UV_ECANCELED, which weft never asks for */
        j->r = WF_FAIL(WF_EINTERNAL, "blocking handler not run: %s", uv_strerror(status));
    a->busy = false;
    if (req != NULL) {
        req->on_pool = false;
        if (req->has_postponed) {
            req->has_postponed = false;
            wf__answer(req->node, req->peer, req->corr, req->postponed);
        }
    }
    a->in_turn = true;
    wf__actor_finish(a, j->h, j->m, req, j->r);
    a->in_turn = false;
    if (j->ctx.stop_requested)
        wf__actor_stop(a, j->ctx.stop_reason);
    if (a->stop_pending)
        wf__actor_stop(a, a->stop_reason);
    wf__schedule(a);
    wf__actor_unref(a);
    wf_free(j);
}

void wf__offload(struct actor *a, const wf_handler *h, wf_msg *m, struct request *req)
{
    struct job *j = wf_malloc(sizeof *j);
    if (j == NULL) {
        wf__actor_finish(a, h, m, req, WF_FAIL(WF_ENOMEM, "no memory to offload a handler"));
        return;
    }
    *j = (struct job){.a = a, .h = h, .m = m, .has_req = req != NULL};
    if (req != NULL) {
        j->req = *req;
        j->req.on_pool = true;
    }
    j->ctx = (wf_ctx){.a = a, .msg = m, .req = req ? &j->req : NULL, .on_pool = true};
    j->work.data = j;
    /* One at a time: the actor takes no more mail until job_after. */
    a->busy = true;
    a->refs++;
    wf__stats(a->node)->offloaded++;
    uv_queue_work(wf_node_loop(a->node), &j->work, job_work, job_after);
}

struct thread_call {
    uv_work_t work;
    wf_deferred *d; /* our reference */
    wf_result (*fn)(void *arg);
    void *arg;
    wf_result r;
};

static void call_work(uv_work_t *w)
{
    struct thread_call *c = w->data;
    c->r = c->fn(c->arg);
}

static void call_after(uv_work_t *w, int status)
{
    struct thread_call *c = w->data;
    if (status != 0)
        c->r = WF_FAIL(WF_ECANCELED, "cancelled before it ran on the thread pool");
    if (wf_deferred_called(c->d)) /* cancelled while running: nobody waits */
        wf_result_free(c->r);
    else if (c->r.kind == WF_RESULT_DEFERRED)
        (wf_result_free(c->r),
         wf_deferred_errback(c->d, wf_failure_new(WF_EINVAL, "a thread function returned a "
                                                             "deferred")));
    else
        wf_deferred_callback(c->d, c->r);
    wf_deferred_release(c->d);
    wf_free(c);
}

static void call_cancel(wf_deferred *d, void *arg)
{
    struct thread_call *c = arg;
    /* Succeeds only if fn has not started; either way d then errbacks with
     * WF_ECANCELED and call_after drops what fn returns. */
    uv_cancel((uv_req_t *)&c->work);
}

wf_deferred *wf_defer_to_thread(wf_node *n, wf_result (*fn)(void *arg), void *arg)
{
    struct thread_call *c = wf_malloc(sizeof *c);
    if (c == NULL)
        return NULL;
    wf_deferred *d = wf_deferred_new_cancellable(call_cancel, c);
    if (d == NULL) {
        wf_free(c);
        return NULL;
    }
    *c = (struct thread_call){.d = wf_deferred_ref(d), .fn = fn, .arg = arg};
    c->work.data = c;
    wf__stats(n)->offloaded++;
    uv_queue_work(wf_node_loop(n), &c->work, call_work, call_after);
    return d;
}
