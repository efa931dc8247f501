/* Tell: fire and forget. On the loop thread a tell goes straight into the
 * target's mailbox; from another thread it is handed to the loop (call.c). */
#include <stdatomic.h>

#include <weft/alloc.h>

#include "runtime.h"

int wf__tell_local(wf_node *n, wf_pid to, wf_msg *m)
{
    if (n->shutting_down) {
        wf_msg_free(m);
        return WF_ESHUTDOWN;
    }
    if (wf_pid_peer(to) != 0) {
        int rv = wf__send_remote(n, WF_LINK_TELL, to, 0, m);
        wf_msg_free(m);
        if (rv == 0)
            n->stats.tells++;
        else
            n->stats.dropped++;
        return rv;
    }
    struct actor *a = wf__node_actor(n, to);
    if (a == NULL || a->dead) {
        n->stats.dropped++;
        wf_msg_free(m);
        return WF_ENOSUCHACTOR;
    }
    m->kind = K_TELL;
    int rv = wf__enqueue(a, m, true);
    if (rv != 0) {
        wf_msg_free(m);
        return rv;
    }
    n->stats.tells++;
    if (wf__traced(n, &m->tc))
        wf__trace_msg(n, TR_SEND, m->from, to, m, a->mb_count + 1);
    return 0;
}

/* cause: the message being handled when the sender is a blocking handler
 * (its span is the parent), else NULL. */
static int tell_from(wf_node *n, wf_pid from, const wf_msg *cause, wf_pid to, wf_msg *m)
{
    if (m == NULL)
        return WF_EINVAL;
    m->from = from;
    if (wf__on_loop(n)) {
        wf__trace_stamp(n, m);
        return wf__tell_local(n, to, m);
    }
    if (atomic_load(&n->shutdown_requested)) {
        wf_msg_free(m);
        return WF_ESHUTDOWN;
    }
    /* Ids are made on the loop (the node's generator is the loop's): here
     * the span is only marked as a child, or left for a root. */
    m->tc.flags = 0;
    if (cause != NULL && (cause->tc.flags & WF_TRACE_SAMPLED)) {
        m->tc = cause->tc;
        m->tc.parent_id = cause->tc.span_id;
        m->tc.span_id = 0;
    } else if (cause != NULL) {
        m->tc.flags = cause->tc.flags;
    }
    m->to = to;
    wf__inject(n, m);
    return 0;
}

int wf_tell(wf_node *n, wf_pid to, wf_msg *m)
{
    return tell_from(n, (wf_pid){0}, NULL, to, m);
}

int wf_ctx_tell(wf_ctx *ctx, wf_pid to, wf_msg *m)
{
    return tell_from(ctx->a->node, ctx->a->pid, ctx->on_pool ? ctx->msg : NULL, to, m);
}
