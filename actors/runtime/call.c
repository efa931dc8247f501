/* Other threads: the one door into a node's loop is its uv_async handle
 * (rung here; answered by on_async in node.c). A tell from another thread
 * is queued under inject_lock, and wf_node_call queues a call and sleeps
 * until the loop has made the ask and seen its outcome. */
#include <stdatomic.h>

#include <weft/alloc.h>

#include "runtime.h"

struct call {
    struct call *next;
    wf_pid to;
    wf_msg *m;
    uint64_t timeout;
    uv_mutex_t lock;
    uv_cond_t cond;
    bool done;
    wf_result out;
};

void wf__inject(wf_node *n, wf_msg *m)
{
    uv_mutex_lock(&n->inject_lock);
    m->next = NULL;
    if (n->inject_tail)
        n->inject_tail->next = m;
    else
        n->inject_head = m;
    n->inject_tail = m;
    uv_mutex_unlock(&n->inject_lock);
    uv_async_send(&n->async);
}

static wf_result call_done(wf_result r, void *arg)
{
    struct call *c = arg;
    uv_mutex_lock(&c->lock);
    c->out = r;
    c->done = true;
    uv_cond_signal(&c->cond);
    uv_mutex_unlock(&c->lock);
    return wf_result_none();
}

static void start_call(wf_node *n, struct call *c)
{
    wf_deferred *d = wf__ask(n, NULL, c->to, c->m, c->timeout, false);
    if (d == NULL) {
        call_done(WF_FAIL(WF_ENOMEM, "no memory for a call"), c);
        return;
    }
    wf_deferred_add_both(d, call_done, c);
    wf_deferred_release(d);
}

wf_result wf_node_call(wf_node *n, wf_pid to, wf_msg *m, uint64_t timeout_ms)
{
    if (wf__on_loop(n) && atomic_load(&n->phase) != PHASE_NEW) {
        wf_msg_free(m);
        return WF_FAIL(WF_ESTATE, "wf_node_call on the loop thread would deadlock");
    }
    struct call c = {.to = to, .m = m, .timeout = timeout_ms};
    uv_mutex_init(&c.lock);
    uv_cond_init(&c.cond);
    uv_mutex_lock(&n->inject_lock);
    bool refused = atomic_load(&n->shutdown_requested);
    if (!refused) {
        c.next = n->calls;
        n->calls = &c;
    }
    uv_mutex_unlock(&n->inject_lock);
    if (refused) {
        wf_msg_free(m);
        c.out = WF_FAIL(WF_ESHUTDOWN, "node %s is shutting down", n->name);
    } else {
        uv_async_send(&n->async);
        uv_mutex_lock(&c.lock);
        while (!c.done)
            uv_cond_wait(&c.cond, &c.lock);
        uv_mutex_unlock(&c.lock);
    }
    uv_cond_destroy(&c.cond);
    uv_mutex_destroy(&c.lock);
    return c.out;
}

static void take_injected(wf_node *n, wf_msg **msgs, struct call **calls)
{
    uv_mutex_lock(&n->inject_lock);
    *msgs = n->inject_head;
    *calls = n->calls;
    n->inject_head = n->inject_tail = NULL;
    n->calls = NULL;
    uv_mutex_unlock(&n->inject_lock);
}

void wf__inject_drain(wf_node *n)
{
    wf_msg *m;
    struct call *c;
    take_injected(n, &m, &c);
    while (m != NULL) {
        wf_msg *next = m->next;
        if (!m->tc.flags)
            wf__trace_stamp(n, m); /* from outside any turn: a root */
        else if ((m->tc.flags & WF_TRACE_SAMPLED) && m->tc.span_id == 0)
            m->tc.span_id = wf__trace_new_span(n);
        wf__tell_local(n, m->to, m);
        m = next;
    }
    /* Calls were pushed newest first; start them oldest first. */
    struct call *rev = NULL;
    while (c != NULL) {
        struct call *next = c->next;
        c->next = rev;
        rev = c;
        c = next;
    }
    while (rev != NULL) {
        struct call *next = rev->next;
        start_call(n, rev);
        rev = next;
    }
}

void wf__inject_refuse(wf_node *n)
{
    wf_msg *m;
    struct call *c;
    take_injected(n, &m, &c);
    while (m != NULL) {
        wf_msg *next = m->next;
        wf_msg_free(m);
        m = next;
    }
    while (c != NULL) {
        struct call *next = c->next;
        wf_msg_free(c->m);
        call_done(WF_FAIL(WF_ESHUTDOWN, "node %s shut down", n->name), c);
        c = next;
    }
}
