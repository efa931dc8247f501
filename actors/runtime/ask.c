/* Ask: a request and its pending reply.
 *
 * Pending asks live in a generational slot table (slots.c); an ask's
 * correlation id is its slot and the slot's generation, so a late or
 * second reply finds a different generation and is dropped (and counted)
 * instead of reaching the next ask that uses the slot. Deadlines: asks with
 * the same timeout expire in the order they were made, so each distinct
 * timeout has a FIFO list, and one uv timer is armed for the earliest head:
 * O(1) to add and to remove. Loop thread.
 */
#include <stdio.h>
#include <string.h>

#include <weft/alloc.h>

#include "runtime.h"

struct pending {
    struct genslot h;
    wf_deferred *d;        /* our reference; NULL when the slot is free */
    uint32_t prev, next;   /* deadline list */
    uint32_t aprev, anext; /* the asking actor's list */
    uint32_t bucket;
    uint64_t deadline, timeout;
    wf_pid asker, target;
    uint32_t type;
    wf_trace_ctx tc; /* the ask's span */
};

struct bucket {
    uint64_t timeout;
    uint32_t head, tail;
};

static void on_ask_timer(uv_timer_t *h);

/* "actor@node" for a failure message, local or remote. */
static void target_label(wf_node *n, wf_pid p, char *out, size_t size)
{
    if (wf_pid_peer(p) != 0) {
        const char *name = wf__remote_name(n, p, NULL);
        const char *node = wf__peer_name(n, wf_pid_peer(p));
        snprintf(out, size, "%s@%s", name ? name : "(actor id)", node ? node : "?");
        return;
    }
    struct actor *t = wf__node_actor(n, p);
    snprintf(out, size, "%s@%s", t ? wf__actor_label(t) : "(stopped actor)", n->name);
}

static struct pending *pend_at(wf_node *n, uint32_t i)
{
    return &n->pend[i - 1];
}

static void arm(wf_node *n)
{
    uint64_t first = UINT64_MAX;
    for (uint32_t b = 0; b < n->nbuckets; b++) {
        uint32_t h = n->buckets[b].head;
        if (h != NIL && pend_at(n, h)->deadline < first)
            first = pend_at(n, h)->deadline;
    }
    if (first == n->armed)
        return;
    n->armed = first;
    if (first == UINT64_MAX) {
        uv_timer_stop(&n->ask_timer);
        return;
    }
    uint64_t now = uv_now(&n->loop);
    uv_timer_start(&n->ask_timer, on_ask_timer, first > now ? first - now : 0, 0);
}

/* The loop's time now, for a deadline. uv_now is the time cached at the
 * start of the loop's turn: stale before the loop first runs and after a
 * long callback, so a deadline counted from it would pass early by the
 * staleness (as soon as anything wakes the loop). The clock read, rounded
 * up, makes a timeout count from the call; the timer is still armed
 * against uv_now, which it is measured on (clock_uv.c does the same for
 * its timers). */
static uint64_t now_ms(wf_node *n)
{
    uint64_t now = (uv_hrtime() + 999999) / 1000000;
    uint64_t cached = uv_now(&n->loop);
    return now > cached ? now : cached;
}

static int bucket_for(wf_node *n, uint64_t timeout, uint32_t *out)
{
    for (uint32_t b = 0; b < n->nbuckets; b++) {
        if (n->buckets[b].timeout == timeout) {
            *out = b;
            return 0;
        }
    }
    struct bucket *nb = wf_realloc(n->buckets, (n->nbuckets + 1) * sizeof *nb);
    if (nb == NULL)
        return WF_ENOMEM;
    n->buckets = nb;
    nb[n->nbuckets] = (struct bucket){timeout, NIL, NIL};
    *out = n->nbuckets++;
    return 0;
}

static void unlink_pending(wf_node *n, uint32_t i)
{
    struct pending *p = pend_at(n, i);
    struct bucket *b = &n->buckets[p->bucket];
    *(p->prev ? &pend_at(n, p->prev)->next : &b->head) = p->next;
    *(p->next ? &pend_at(n, p->next)->prev : &b->tail) = p->prev;
    if (!wf_pid_is_none(p->asker)) {
        struct actor *a = wf__node_actor(n, p->asker);
        if (a != NULL) {
            if (p->aprev)
                pend_at(n, p->aprev)->anext = p->anext;
            else
                a->asks = p->anext;
            if (p->anext)
                pend_at(n, p->anext)->aprev = p->aprev;
        }
    }
}

static uint64_t corr_of(wf_node *n, uint32_t i)
{
    return ((uint64_t)pend_at(n, i)->h.gen << 32) | i;
}

static uint32_t pending_index(wf_node *n, uint64_t corr)
{
    uint32_t i = (uint32_t)corr;
    if (i == 0 || i > n->npend)
        return NIL;
    struct pending *p = pend_at(n, i);
    return p->d != NULL && p->h.gen == (uint32_t)(corr >> 32) ? i : NIL;
}

/* The live ask corr names, or NIL: it was answered already, so r is a late
 * reply (counted, and freed here). */
static uint32_t pending_live(wf_node *n, uint64_t corr, wf_result r)
{
    uint32_t i = pending_index(n, corr);
    if (i == NIL) {
        n->stats.late_replies++;
        wf_result_free(r);
    }
    return i;
}

/* Fires live ask i with r (consumed) and frees its slot. */
static void complete_at(wf_node *n, uint32_t i, wf_result r)
{
    uint64_t corr = corr_of(n, i);
    struct pending *p = pend_at(n, i);
    unlink_pending(n, i);
    wf_deferred *d = p->d;
    p->d = NULL;
    p->h.gen = p->h.gen + 1 ? p->h.gen + 1 : 1;
    p->h.next_free = n->free_pend;
    n->free_pend = i;
    if (!p->tc.flags) {
        /* The slot is free before the callbacks run: they may ask again. */
        wf_deferred_callback(d, r);
        wf_deferred_release(d);
        return;
    }
    struct node_trace *nt = wf__nt(n);
    if (!(p->tc.flags & WF_TRACE_SAMPLED)) {
        /* Unsampled: only the decision goes on to what the callbacks send. */
        uint8_t saved_flags = nt->cur.flags;
        nt->cur.flags = p->tc.flags;
        wf_deferred_callback(d, r);
        wf_deferred_release(d);
        nt->cur.flags = saved_flags;
        return;
    }
    if (wf__traced(n, &p->tc))
        wf__trace_fired(n, TR_FIRED, p->asker, &p->tc, corr, p->type, r.kind != WF_RESULT_FAILURE);
    /* The callbacks continue the asker's work: what they send is part of
     * the span that asked (or of the ask's, for an ask from outside). */
    wf_trace_ctx saved = nt->cur;
    nt->cur = p->tc;
    nt->cur_actor = p->asker;
    nt->cur.span_id = p->tc.parent_id ? p->tc.parent_id : p->tc.span_id;
    nt->cur.parent_id = 0;
    wf_deferred_callback(d, r);
    wf_deferred_release(d);
    nt->cur = saved;
}

void wf__pending_complete(wf_node *n, uint64_t corr, wf_result r)
{
    uint32_t i = pending_live(n, corr, r);
    if (i != NIL)
        complete_at(n, i, r);
}

void wf__reply(wf_node *n, uint64_t corr, wf_result r)
{
    uint32_t i = pending_live(n, corr, r);
    if (i == NIL)
        return;
    n->stats.replies++;
    struct pending *p = pend_at(n, i);
    struct actor *asker = wf_pid_is_none(p->asker) ? NULL : wf__node_actor(n, p->asker);
    if (asker == NULL || asker->dead) {
        complete_at(n, i, r);
        return;
    }
    /* The asker's callbacks run as its own turn, after what it is doing. */
    wf_msg *item;
    if (wf_result_is_msg(r)) {
        item = wf_result_take_ptr(&r);
    } else {
        item = wf_msg_alloc(0, 0);
        if (item == NULL) {
            complete_at(n, i, r);
            return;
        }
        item->failure = r.kind == WF_RESULT_FAILURE
                            ? r.u.failure
                            : wf_failure_new(WF_EINTERNAL, "reply is not a message");
        if (r.kind != WF_RESULT_FAILURE)
            wf_result_free(r);
    }
    item->kind = K_REPLY;
    item->corr = corr;
    wf__enqueue(asker, item, false); /* replies are never refused for space */
}

static void on_ask_timer(uv_timer_t *h)
{
    wf_node *n = h->data;
    uint64_t now = uv_now(&n->loop);
    n->armed = UINT64_MAX;
    for (uint32_t b = 0; b < n->nbuckets; b++) {
        uint32_t i;
        while ((i = n->buckets[b].head) != NIL && pend_at(n, i)->deadline <= now) {
            struct pending *p = pend_at(n, i);
            char who[2 * WF_NAME_MAX + 2];
            target_label(n, p->target, who, sizeof who);
            wf_failure *f =
                wf_failure_new(WF_ETIMEDOUT, "ask of message type %u to %s timed out after %llu ms",
                               p->type, who, (unsigned long long)p->timeout);
            n->stats.timeouts++;
            if (wf__traced(n, &p->tc))
                wf__trace_fired(n, TR_TIMEOUT, p->asker, &p->tc, corr_of(n, i), p->type, false);
            complete_at(n, i, wf_result_failure(f));
        }
    }
    arm(n);
}

wf_deferred *wf__ask(wf_node *n, struct actor *asker, wf_pid to, wf_msg *m, uint64_t timeout_ms)
{
    if (m == NULL)
        return wf_fail(wf_failure_new(WF_EINVAL, "ask without a message"));
    if (n->shutting_down) {
        wf_msg_free(m);
        return wf_fail(wf_failure_new(WF_ESHUTDOWN, "node %s is shutting down", n->name));
    }
    bool remote = wf_pid_peer(to) != 0;
    struct actor *target = remote ? NULL : wf__node_actor(n, to);
    if (!remote && (target == NULL || target->dead)) {
        uint32_t type = m->type;
        wf_msg_free(m);
        n->stats.dropped++;
        return wf_fail(wf_failure_new(WF_ENOSUCHACTOR,
                                      "no actor %llx on node %s for message type %u",
                                      (unsigned long long)to.id, n->name, type));
    }
    if (!remote && target->mb_count >= target->mb_limit) {
        uint32_t type = m->type;
        wf_msg_free(m);
        n->stats.overloaded++;
        return wf_fail(wf_failure_new(WF_EOVERLOADED, "mailbox of %s@%s is full (%u) for type %u",
                                      wf__actor_label(target), n->name, target->mb_limit, type));
    }
    if (timeout_ms == 0)
        timeout_ms = n->ask_timeout_ms;
    wf__trace_stamp(n, m);

    wf_deferred *d = wf_deferred_new();
    uint32_t b;
    if (d == NULL || bucket_for(n, timeout_ms, &b) != 0)
        goto nomem;
    if (n->free_pend == NIL && wf__slots_grow(&n->pend, &n->npend, &n->free_pend, sizeof *n->pend))
        goto nomem;
    uint32_t i = n->free_pend;
    struct pending *p = pend_at(n, i);
    n->free_pend = p->h.next_free;
    p->d = wf_deferred_ref(d);
    p->bucket = b;
    p->timeout = timeout_ms;
    p->deadline = now_ms(n) + timeout_ms;
    p->asker = asker ? asker->pid : (wf_pid){0};
    p->target = to;
    p->type = m->type;
    wf__trace_ctx_copy(&p->tc, &m->tc);
    /* Deadline list: same timeout, so the newest expires last. */
    struct bucket *bk = &n->buckets[b];
    p->next = NIL;
    p->prev = bk->tail;
    *(bk->tail ? &pend_at(n, bk->tail)->next : &bk->head) = i;
    bk->tail = i;
    if (p->deadline < n->armed)
        arm(n);
    p->aprev = NIL;
    p->anext = NIL;
    if (asker != NULL) {
        p->anext = asker->asks;
        if (asker->asks)
            pend_at(n, asker->asks)->aprev = i;
        asker->asks = i;
    }

    m->kind = K_ASK;
    m->corr = corr_of(n, i);
    m->from = p->asker;
    n->stats.asks++;
    if (remote) {
        uint64_t corr = m->corr;
        int rv = wf__send_remote(n, WF_LINK_ASK, to, corr, m);
        wf_msg_free(m);
        if (rv != 0)
            wf__pending_complete(
                n, corr, WF_FAIL(rv, "ask to a remote actor not sent: %s", wf_strerror(rv)));
        return d;
    }
    wf__enqueue(target, m, false); /* room was checked above */
    if (wf__traced(n, &m->tc))
        wf__trace_msg(n, TR_SEND, m->from, to, m, target->mb_count + 1);
    return d;

nomem:
    wf_msg_free(m);
    wf_deferred_release(d);
    return wf_fail(wf_failure_new(WF_ENOMEM, "no memory for an ask"));
}

wf_deferred *wf_ask(wf_node *n, wf_pid to, wf_msg *m, uint64_t timeout_ms)
{
    WF__ON_LOOP(n, "wf_ask");
    return wf__ask(n, NULL, to, m, timeout_ms);
}

wf_deferred *wf_ctx_ask(wf_ctx *ctx, wf_pid to, wf_msg *m, uint64_t timeout_ms)
{
    if (ctx->on_pool) {
        wf_msg_free(m);
        return wf_fail(wf_failure_new(WF_ESTATE, "wf_ctx_ask from a blocking handler"));
    }
    WF__ON_LOOP(ctx->a->node, "wf_ctx_ask");
    return wf__ask(ctx->a->node, ctx->a, to, m, timeout_ms);
}

wf_deferred *wf_ask_as(wf_node *n, wf_pid self, wf_pid to, wf_msg *m, uint64_t timeout_ms)
{
    WF__ON_LOOP(n, "wf_ask_as");
    struct actor *a = wf__node_actor(n, self);
    return wf__ask(n, a != NULL && !a->dead ? a : NULL, to, m, timeout_ms);
}

void wf__fail_asks_of(wf_node *n, struct actor *a)
{
    while (a->asks != NIL) {
        uint32_t i = a->asks;
        struct pending *p = pend_at(n, i);
        /* The asker is stopping: its callbacks run now, state still alive. */
        p->asker = (wf_pid){0};
        a->asks = p->anext;
        if (a->asks)
            pend_at(n, a->asks)->aprev = NIL;
        complete_at(
            n, i,
            WF_FAIL(WF_EACTORSTOPPED, "asking actor %s@%s stopped", wf__actor_label(a), n->name));
    }
}

void wf__fail_asks_to(wf_node *n, uint16_t peer, const char *name, const char *why)
{
    for (uint32_t i = 1; i <= n->npend; i++) {
        struct pending *p = pend_at(n, i);
        if (p->d == NULL)
            continue;
        if (peer == 0) {
            complete_at(n, i, WF_FAIL(WF_ESHUTDOWN, "node %s shut down", n->name));
        } else if (wf_pid_peer(p->target) == peer) {
            n->stats.node_down++;
            complete_at(n, i,
                        WF_FAIL(WF_ENODEDOWN, "node %s went down (%s) before answering",
                                name ? name : "?", why));
        }
    }
}

void wf__answer(wf_node *n, wf_pid self, uint16_t peer, uint64_t corr, uint32_t type,
                const wf_trace_ctx *tc, wf_result r)
{
    if (wf__traced(n, tc))
        wf__trace_answer(n, self, tc, corr, type, &r);
    if (peer == 0)
        wf__reply(n, corr, r);
    else
        wf__send_answer(n, peer, corr, tc, r);
}
