/* Ask: a request and its pending reply.
 *
 * Pending asks live in a generational slot table; an ask's correlation id
 * is its slot and the slot's generation, so a late or second reply finds a
 * different generation and is dropped (and counted) instead of reaching
 * the next ask that uses the slot. The table grows by pages that never
 * move, so a pending entry's address can be its deferred's canceller
 * argument (no allocation per ask).
 *
 * Deadlines: asks with the same timeout expire in the order they were
 * made, so each distinct timeout has a FIFO list, and one uv timer is
 * armed for the earliest head: O(1) to add and to remove. An ask made while
 * a request is handled inherits what is left of that request's deadline
 * (n->cur_deadline) when that is sooner; such deadlines are all different,
 * so those asks go to a min-heap instead (O(log n)). The message carries
 * the deadline, so the callee knows its budget and does not start work
 * nobody waits for.
 *
 * Cancelling an ask's deferred fails it with WF_ECANCELED and tells the
 * callee (the same node, or through the link), whose request is cancelled
 * in turn: the cancel travels as far as the work went. Loop thread.
 */
#include <stdio.h>
#include <string.h>

#include <weft/alloc.h>

#include "runtime.h"

struct pending {
    struct genslot h;
    wf_deferred *d;        /* our reference; NULL when the slot is free */
    wf_node *node;         /* for the canceller */
    uint32_t index;        /* its slot */
    uint32_t prev, next;   /* deadline list */
    uint32_t aprev, anext; /* the asking actor's list */
    uint32_t bucket;
    uint32_t hpos; /* position in n->dheap + 1; 0: in a bucket's list */
    uint64_t deadline, timeout;
    uint64_t inherited; /* n->cur_deadline when it was made, again for its callbacks */
    wf_pid asker, target;
    uint32_t type;
    wf_trace_ctx tc; /* the ask's span */
};

#define PAGE_BITS 8
#define PAGE_SIZE (1u << PAGE_BITS)

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
    return &n->pend_pages[(i - 1) >> PAGE_BITS][(i - 1) & (PAGE_SIZE - 1)];
}

/* One more page of free entries. 0 or WF_ENOMEM (nothing changed). */
static int pend_grow(wf_node *n)
{
    uint32_t npages = n->npend / PAGE_SIZE;
    if (n->npend > UINT32_MAX - 2 * PAGE_SIZE)
        return WF_ENOMEM;
    struct pending **pages = wf_realloc(n->pend_pages, (npages + 1) * sizeof *pages);
    if (pages == NULL)
        return WF_ENOMEM;
    n->pend_pages = pages;
    struct pending *page = wf_malloc(PAGE_SIZE * sizeof *page);
    if (page == NULL)
        return WF_ENOMEM;
    memset(page, 0, PAGE_SIZE * sizeof *page);
    for (uint32_t k = 0; k < PAGE_SIZE; k++) {
        uint32_t i = n->npend + k + 1;
        page[k].h = (struct genslot){1, k + 1 < PAGE_SIZE ? i + 1 : NIL};
        page[k].node = n;
        page[k].index = i;
    }
    pages[npages] = page;
    n->free_pend = n->npend + 1;
    n->npend += PAGE_SIZE;
    return 0;
}

void wf__pending_fini(wf_node *n)
{
    for (uint32_t k = 0; k < n->npend / PAGE_SIZE; k++)
        wf_free(n->pend_pages[k]);
    wf_free(n->pend_pages);
    wf_free(n->dheap);
}

/* ---- the heap of inherited deadlines ---- */

static void heap_set(wf_node *n, uint32_t pos, uint32_t i)
{
    n->dheap[pos] = i;
    pend_at(n, i)->hpos = pos + 1;
}

static uint64_t heap_key(wf_node *n, uint32_t pos)
{
    return pend_at(n, n->dheap[pos])->deadline;
}

static void heap_up(wf_node *n, uint32_t pos)
{
    uint32_t i = n->dheap[pos];
    uint64_t k = pend_at(n, i)->deadline;
    while (pos > 0 && heap_key(n, (pos - 1) / 2) > k) {
        heap_set(n, pos, n->dheap[(pos - 1) / 2]);
        pos = (pos - 1) / 2;
    }
    heap_set(n, pos, i);
}

static void heap_down(wf_node *n, uint32_t pos)
{
    uint32_t i = n->dheap[pos];
    uint64_t k = pend_at(n, i)->deadline;
    for (;;) {
        uint32_t c = 2 * pos + 1;
        if (c >= n->ndheap)
            break;
        if (c + 1 < n->ndheap && heap_key(n, c + 1) < heap_key(n, c))
            c++;
        if (heap_key(n, c) >= k)
            break;
        heap_set(n, pos, n->dheap[c]);
        pos = c;
    }
    heap_set(n, pos, i);
}

static int heap_push(wf_node *n, uint32_t i)
{
    if (n->ndheap == n->capdheap) {
        uint32_t cap = n->capdheap ? n->capdheap * 2 : 64;
        uint32_t *h = wf_realloc(n->dheap, cap * sizeof *h);
        if (h == NULL)
            return WF_ENOMEM;
        n->dheap = h;
        n->capdheap = cap;
    }
    n->dheap[n->ndheap++] = i;
    heap_up(n, n->ndheap - 1);
    return 0;
}

static void heap_remove(wf_node *n, uint32_t i)
{
    uint32_t pos = pend_at(n, i)->hpos - 1;
    pend_at(n, i)->hpos = 0;
    uint32_t last = n->dheap[--n->ndheap];
    if (pos == n->ndheap)
        return;
    heap_set(n, pos, last);
    heap_up(n, pos);
    heap_down(n, pend_at(n, last)->hpos - 1);
}

/* ---- the timer ---- */

static void arm(wf_node *n)
{
    uint64_t first = n->ndheap ? heap_key(n, 0) : UINT64_MAX;
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
uint64_t wf__now_ms(wf_node *n)
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
    if (p->hpos != 0) {
        heap_remove(n, i);
    } else {
        struct bucket *b = &n->buckets[p->bucket];
        *(p->prev ? &pend_at(n, p->prev)->next : &b->head) = p->next;
        *(p->next ? &pend_at(n, p->next)->prev : &b->tail) = p->prev;
    }
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
    /* The callbacks go on with the request the ask was made for: their
     * asks inherit its deadline. */
    uint64_t saved_deadline = n->cur_deadline;
    n->cur_deadline = p->inherited;
    if (!p->tc.flags) {
        /* The slot is free before the callbacks run: they may ask again. */
        wf_deferred_callback(d, r);
        wf_deferred_release(d);
        n->cur_deadline = saved_deadline;
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
        n->cur_deadline = saved_deadline;
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
    n->cur_deadline = saved_deadline;
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

/* Tells the callee of ask corr that nobody waits for its answer. */
static void tell_callee(wf_node *n, wf_pid target, uint64_t corr)
{
    if (wf_pid_peer(target) != 0) {
        wf__send_cancel(n, target, corr);
        return;
    }
    struct actor *t = wf__node_actor(n, target);
    if (t != NULL && !t->dead)
        wf__request_cancel(n, t, 0, corr);
}

/* Ask i's time is up. Its callee is told, as for a cancel: nobody waits
 * for the answer any more. */
static void time_out(wf_node *n, uint32_t i)
{
    struct pending *p = pend_at(n, i);
    char who[2 * WF_NAME_MAX + 2];
    target_label(n, p->target, who, sizeof who);
    wf_failure *f =
        wf_failure_new(WF_ETIMEDOUT, "ask of message type %u to %s timed out after %llu ms%s",
                       p->type, who, (unsigned long long)p->timeout,
                       p->hpos ? " (what was left of its request's deadline)" : "");
    n->stats.timeouts++;
    if (wf__traced(n, &p->tc))
        wf__trace_fired(n, TR_TIMEOUT, p->asker, &p->tc, corr_of(n, i), p->type, false);
    wf_pid target = p->target;
    uint64_t corr = corr_of(n, i);
    complete_at(n, i, wf_result_failure(f));
    tell_callee(n, target, corr);
}

static void on_ask_timer(uv_timer_t *h)
{
    wf_node *n = h->data;
    uint64_t now = uv_now(&n->loop);
    n->armed = UINT64_MAX;
    for (uint32_t b = 0; b < n->nbuckets; b++) {
        uint32_t i;
        while ((i = n->buckets[b].head) != NIL && pend_at(n, i)->deadline <= now)
            time_out(n, i);
    }
    while (n->ndheap > 0 && heap_key(n, 0) <= now)
        time_out(n, n->dheap[0]);
    arm(n);
}

/* The canceller of an ask's deferred (arg: its pending entry). */
static void ask_cancel(wf_deferred *d, void *arg)
{
    struct pending *p = arg;
    wf_node *n = p->node;
    uint32_t i = p->index;
    if (p->d != d)
        return; /* not pending any more: nothing to stop */
    char who[2 * WF_NAME_MAX + 2];
    target_label(n, p->target, who, sizeof who);
    wf_pid target = p->target;
    uint64_t corr = corr_of(n, i);
    uint32_t type = p->type;
    n->stats.cancels++;
    complete_at(n, i, WF_FAIL(WF_ECANCELED, "ask of message type %u to %s cancelled", type, who));
    tell_callee(n, target, corr);
}

wf_deferred *wf__ask(wf_node *n, struct actor *asker, wf_pid to, wf_msg *m, uint64_t timeout_ms,
                     bool detached)
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
    uint64_t now = wf__now_ms(n), deadline = now + timeout_ms;
    uint64_t inherited = detached ? 0 : n->cur_deadline;
    bool cut = inherited != 0 && inherited < deadline;
    if (cut && inherited <= now) {
        /* The request this ask serves has no time left: its asker has
         * given up or is about to. Nothing to start. */
        uint32_t type = m->type;
        wf_msg_free(m);
        n->stats.expired++;
        return wf_fail(wf_failure_new(
            WF_ETIMEDOUT, "no time left of the request's deadline to ask (type %u)", type));
    }
    if (cut)
        deadline = inherited;
    wf__trace_stamp(n, m);

    wf_deferred *d = NULL;
    if (n->free_pend == NIL && pend_grow(n) != 0)
        goto nomem;
    uint32_t i = n->free_pend;
    struct pending *p = pend_at(n, i);
    d = wf_deferred_new_cancellable(ask_cancel, p);
    uint32_t b = 0;
    p->hpos = 0;
    if (d == NULL || (!cut && bucket_for(n, timeout_ms, &b) != 0))
        goto nomem;
    p->deadline = deadline; /* the heap orders by it */
    if (cut && heap_push(n, i) != 0)
        goto nomem;
    n->free_pend = p->h.next_free;
    p->d = wf_deferred_ref(d);
    p->bucket = b;
    p->timeout = deadline - now;
    p->inherited = inherited;
    p->asker = asker ? asker->pid : (wf_pid){0};
    p->target = to;
    p->type = m->type;
    wf__trace_ctx_copy(&p->tc, &m->tc);
    if (!cut) {
        /* Deadline list: same timeout, so the newest expires last. */
        struct bucket *bk = &n->buckets[b];
        p->next = NIL;
        p->prev = bk->tail;
        *(bk->tail ? &pend_at(n, bk->tail)->next : &bk->head) = i;
        bk->tail = i;
    }
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
    m->deadline = deadline;
    n->stats.asks++;
    if (remote) {
        uint64_t corr = m->corr;
        int rv = wf__send_remote(n, WF_LINK_ASK, to, corr, m);
        wf_msg_free(m);
        if (rv != 0) {
            const char *peer = n->link ? n->link->peer_name(n->link_ctx, wf_pid_peer(to)) : NULL;
            wf__pending_complete(n, corr,
                                 WF_FAIL(rv, "ask to an actor on node %s not sent: %s",
                                         peer ? peer : "?", wf_strerror(rv)));
        }
        return d;
    }
    wf__enqueue(target, m, false); /* room was checked above */
    if (wf__traced(n, &m->tc))
        wf__trace_msg(n, TR_SEND, m->from, to, m, target->mb_count + 1);
    return d;

nomem:
    wf_msg_free(m);
    if (d != NULL)
        wf_deferred_release(d);
    return wf_fail(wf_failure_new(WF_ENOMEM, "no memory for an ask"));
}

wf_deferred *wf_ask(wf_node *n, wf_pid to, wf_msg *m, uint64_t timeout_ms)
{
    WF__ON_LOOP(n, "wf_ask");
    return wf__ask(n, NULL, to, m, timeout_ms, false);
}

/* An ask from inside an actor's turn; fn names the caller for messages. */
static wf_deferred *ctx_ask(wf_ctx *ctx, wf_pid to, wf_msg *m, uint64_t timeout_ms, bool detached,
                            const char *fn)
{
    if (ctx->on_pool) {
        wf_msg_free(m);
        return wf_fail(wf_failure_new(WF_ESTATE, "%s from a blocking handler", fn));
    }
    WF__ON_LOOP(ctx->a->node, fn);
    return wf__ask(ctx->a->node, ctx->a, to, m, timeout_ms, detached);
}

wf_deferred *wf_ctx_ask(wf_ctx *ctx, wf_pid to, wf_msg *m, uint64_t timeout_ms)
{
    return ctx_ask(ctx, to, m, timeout_ms, false, "wf_ctx_ask");
}

wf_deferred *wf_ctx_ask_detached(wf_ctx *ctx, wf_pid to, wf_msg *m, uint64_t timeout_ms)
{
    return ctx_ask(ctx, to, m, timeout_ms, true, "wf_ctx_ask_detached");
}

uint64_t wf_ctx_time_left(wf_ctx *ctx)
{
    uint64_t dl = ctx->req != NULL ? ctx->req->deadline : 0;
    if (dl == 0)
        return UINT64_MAX;
    /* Any thread: a blocking handler asks too. uv_hrtime is the loop
     * clock's source (see wf__now_ms). */
    uint64_t now = (uv_hrtime() + 999999) / 1000000; /* rounded as deadlines are */
    return dl > now ? dl - now : 0;
}

wf_deferred *wf_ask_as(wf_node *n, wf_pid self, wf_pid to, wf_msg *m, uint64_t timeout_ms)
{
    WF__ON_LOOP(n, "wf_ask_as");
    struct actor *a = wf__node_actor(n, self);
    return wf__ask(n, a != NULL && !a->dead ? a : NULL, to, m, timeout_ms, false);
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
