/* Blocking work on libuv's thread pool: blocking handlers (deferToThread as
 * a declaration) and wf_defer_to_thread. The pool thread runs only the
 * handler (or fn); everything it produced is applied on the loop thread in
 * the after-work callback. */
#include <weft/alloc.h>

#include "runtime.h"

/* One message of a pool job. */
struct item {
    const wf_handler *h;
    wf_msg *m;
    bool has_req, ran;
    bool expired; /* not run: its deadline had passed (counted on the loop) */
    bool traced;  /* record its run: times taken on the pool */
    uint64_t t0, t1;
    struct request req;
    wf_ctx ctx;
    wf_result r;
};

/* Handlers of one blocking actor run on the pool one after another, in
 * mailbox order: a job takes every consecutive message it can (up to
 * POOL_BATCH), so a busy actor pays the trip to the pool and back once per
 * batch, not per message. Still one message at a time. */
#define POOL_BATCH 32

struct job {
    uv_work_t work;
    struct actor *a;
    unsigned n;
    struct item items[];
};

static void job_work(uv_work_t *w)
{
    struct job *j = w->data;
    for (unsigned i = 0; i < j->n; i++) {
        struct item *it = &j->items[i];
        if (it->traced)
            it->t0 = uv_hrtime();
        uint64_t dl = it->has_req ? it->req.deadline : 0;
        if (dl != 0 && uv_hrtime() / 1000000 >= dl) {
            /* Its asker stopped waiting while it queued for the pool. */
            it->r = WF_FAIL(WF_ETIMEDOUT, "deadline passed before a blocking handler could start");
            it->expired = true;
        } else {
            it->r = it->h->fn(&it->ctx, it->m);
        }
        if (it->traced)
            it->t1 = uv_hrtime();
        it->ran = true;
        /* A stop, or a tell that failed (a crash), ends the batch: what
         * follows must not run before the loop has seen it. */
        if (it->ctx.stop_requested || (!it->has_req && it->r.kind == WF_RESULT_FAILURE))
            break;
    }
}

static void job_after(uv_work_t *w, int status)
{
    struct job *j = w->data;
    struct actor *a = j->a;
    a->busy = false;
    /* Messages the batch did not get to go back to the front, in order. */
    for (unsigned i = j->n; i-- > 0;) {
        struct item *it = &j->items[i];
        if (it->ran && status == 0)
            continue;
        it->m->next = a->mb_head;
        a->mb_head = it->m;
        if (a->mb_tail == NULL)
            a->mb_tail = it->m;
        a->mb_count++;
    }
    for (unsigned i = 0; i < j->n && j->items[i].ran && status == 0; i++) {
        struct item *it = &j->items[i];
        struct request *req = it->has_req ? &it->req : NULL;
        wf__stats(a->node)->expired += it->expired;
        if (req != NULL) {
            req->on_pool = false;
            if (req->has_postponed) {
                req->has_postponed = false;
                wf__answer(req->node, req->self, req->peer, req->corr, it->h->type, &req->tc,
                           req->postponed);
            }
        }
        if (it->traced && wf__traced(a->node, &it->m->tc)) {
            wf__trace_run(a->node, TR_OFFLOAD_START, a, it->m, it->h, OUT_NONE, it->t0);
            wf__trace_run(a->node, TR_OFFLOAD_END, a, it->m, it->h, wf__run_outcome(&it->r, req),
                          it->t1);
        }
        /* Sends from the callbacks of what it returned continue its span. */
        struct node_trace *nt = wf__nt(a->node);
        wf_trace_ctx saved = nt->cur;
        nt->cur = it->m->tc;
        a->in_turn = true;
        wf__actor_finish(a, it->h, it->m, req, it->r);
        a->in_turn = false;
        nt->cur = saved;
        if (it->ctx.stop_requested)
            wf__actor_stop(a, it->ctx.stop_reason);
    }
    if (a->stop_pending)
        wf__actor_stop(a, a->stop_reason);
    wf__schedule(a);
    wf__actor_unref(a);
    wf_free(j);
}

static void item_init(struct item *it, struct actor *a, const wf_handler *h, wf_msg *m,
                      const struct request *req)
{
    *it = (struct item){
        .h = h, .m = m, .has_req = req != NULL, .traced = wf__traced(a->node, &m->tc)};
    if (req != NULL) {
        it->req = *req;
        it->req.on_pool = true;
    }
    it->ctx = (wf_ctx){.a = a, .msg = m, .req = req ? &it->req : NULL, .on_pool = true};
}

void wf__offload(struct actor *a, const wf_handler *h, wf_msg *m, struct request *req)
{
    /* Count the queued messages that can ride along: requests and tells
     * for blocking handlers (replies to the actor's own asks run on the
     * loop, so they end the batch). */
    unsigned n = 1;
    for (wf_msg *q = a->mb_head; q != NULL && n < POOL_BATCH; q = q->next, n++) {
        const wf_handler *qh = q->kind == K_REPLY ? NULL : wf__find_handler(a->b, q->type);
        if (qh == NULL || !((qh->flags & WF_HANDLER_BLOCKING) || (a->b->flags & WF_ACTOR_BLOCKING)))
            break;
    }
    struct job *j = wf_malloc(sizeof *j + n * sizeof j->items[0]);
    if (j == NULL) {
        wf__actor_finish(a, h, m, req, WF_FAIL(WF_ENOMEM, "no memory to offload a handler"));
        return;
    }
    j->a = a;
    j->n = n;
    item_init(&j->items[0], a, h, m, req);
    unsigned filled = 1;
    for (unsigned i = 1; i < n; i++) {
        wf_msg *q = wf__mailbox_pop(a);
        if (q->kind == K_ASK && wf__request_stale(a, q))
            continue; /* cancelled or too late: settled here */
        const wf_handler *qh = wf__find_handler(a->b, q->type);
        struct request qr, *qrq = NULL;
        if (q->kind == K_ASK) {
            wf__request_init(&qr, a, q, qh);
            qrq = &qr;
        }
        item_init(&j->items[filled++], a, qh, q, qrq);
    }
    j->n = filled;
    j->work.data = j;
    a->busy = true;
    a->refs++;
    wf__stats(a->node)->offloaded += n;
    uv_queue_work(wf_node_loop(a->node), &j->work, job_work, job_after);
}

struct thread_call {
    uv_work_t work;
    wf_node *node;
    wf_deferred *d; /* our reference */
    wf_result (*fn)(void *arg);
    void *arg;
    wf_result r;
    bool traced; /* its run is recorded: the span and actor that asked */
    wf_trace_ctx tc;
    wf_pid actor;
    uint64_t t0, t1;
};

static void call_work(uv_work_t *w)
{
    struct thread_call *c = w->data;
    if (c->traced)
        c->t0 = uv_hrtime();
    c->r = c->fn(c->arg);
    if (c->traced)
        c->t1 = uv_hrtime();
}

static void call_after(uv_work_t *w, int status)
{
    struct thread_call *c = w->data;
    if (c->traced && status == 0 && wf__traced(c->node, &c->tc))
        wf__trace_deferred_work(c->node, c->actor, &c->tc, c->t0, c->t1,
                                c->r.kind != WF_RESULT_FAILURE);
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
    WF__ON_LOOP(n, "wf_defer_to_thread");
    struct thread_call *c = wf_malloc(sizeof *c);
    if (c == NULL)
        return NULL;
    wf_deferred *d = wf_deferred_new_cancellable(call_cancel, c);
    if (d == NULL) {
        wf_free(c);
        return NULL;
    }
    struct node_trace *nt = wf__nt(n);
    *c = (struct thread_call){.node = n, .d = wf_deferred_ref(d), .fn = fn, .arg = arg};
    if (wf__traced(n, &nt->cur)) {
        c->traced = true;
        c->tc = nt->cur;
        c->actor = nt->cur_actor;
    }
    c->work.data = c;
    wf__stats(n)->offloaded++;
    uv_queue_work(wf_node_loop(n), &c->work, call_work, call_after);
    return d;
}
