/* A node: the loop, the registry of actors, the run queue that the mailbox
 * dispatcher drains, and the table of pending asks.
 *
 * Dispatch: an actor with mail is put on the run queue once (the enqueue
 * that finds it off the queue schedules it); an idle handle keeps the loop
 * from sleeping while the queue is not empty, and its callback runs actors
 * in turn, at most BATCH messages each, so one busy actor cannot starve the
 * others or the loop's I/O. A local ask and its reply never leave the loop
 * thread: no thread hop.
 *
 * Pending asks live in a slot table; an ask's correlation id is its slot
 * and the slot's generation, so a late or second reply finds a different
 * generation and is dropped (and counted) instead of reaching the next ask
 * that uses the slot. Deadlines: asks with the same timeout expire in the
 * order they were made, so each distinct timeout has a FIFO list, and one
 * uv timer is armed for the earliest head: O(1) to add and to remove.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <weft/alloc.h>
#include <weft/log.h>

#include "bytes.h"
#include "runtime.h"

#define BATCH        64   /* messages per actor per turn on the run queue */
#define DISPATCH_MAX 4096 /* messages per idle callback, then let I/O in */
#define NIL          0u   /* list links are index + 1 */
#define WF_NAME_MAX  255  /* longest actor name an address may carry */

/* The actor registry and the pending-ask table are both generational slot
 * tables: an id is (generation << 32 | index + 1), and freeing a slot bumps
 * its generation, so a stale id never matches the slot's next tenant.
 * Their entries start with this header. */
struct name_entry;

struct genslot {
    uint32_t gen;
    uint32_t next_free; /* index + 1 */
};

struct slot {
    struct genslot h;
    struct actor *a;
};

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

struct wf_node {
    struct node_trace trace; /* first: see wf__nt in runtime.h */
    char *name;
    uv_loop_t loop;
    uv_idle_t idle;
    uv_async_t async;
    uv_timer_t ask_timer;
    uv_prepare_t trace_prepare; /* publishes trace records before the loop waits */
    wf_clock *clock;
    uv_thread_t thread;   /* wf_node_start's */
    uv_thread_t loop_tid; /* set when the loop starts */
    atomic_bool running;
    bool started_thread;
    bool handles_open;
    unsigned mailbox_limit;
    uint64_t ask_timeout_ms;

    struct slot *slots;
    uint32_t nslots, free_slot;
    struct name_entry **names; /* names -> registry slots, chained buckets */
    uint32_t nbuckets_names, nnames;

    struct actor *runq_head, *runq_tail;
    bool idle_on;

    struct pending *pend;
    uint32_t npend, free_pend;
    struct bucket *buckets;
    uint32_t nbuckets;
    uint64_t armed; /* deadline the timer is armed for; UINT64_MAX: none */

    uv_mutex_t inject_lock; /* guards the inject lists: any thread */
    wf_msg *inject_head, *inject_tail;
    struct call *calls;
    atomic_bool shutdown_requested;
    bool shutting_down;

    const wf_link_ops *link; /* the transport, if one is plugged in */
    void *link_ctx;
    char **rnames; /* actor names interned for remote pids */
    uint32_t nrnames;
    struct rwatch { /* local actors monitoring remote ones */
        wf_pid watcher, target;
    } * rwatch;
    uint32_t nrwatch;

    wf_node_stats stats;
};

static void on_idle(uv_idle_t *h);
static void on_async(uv_async_t *h);

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
static const char *remote_name(wf_node *n, wf_pid p);

/* "actor@node" for a failure message, local or remote. */
static void target_label(wf_node *n, wf_pid p, char *out, size_t size)
{
    if (wf_pid_peer(p) != 0) {
        const char *name = remote_name(n, p);
        const char *node = n->link ? n->link->peer_name(n->link_ctx, wf_pid_peer(p)) : NULL;
        snprintf(out, size, "%s@%s", name ? name : "(actor id)", node ? node : "?");
        return;
    }
    struct actor *t = wf__node_actor(n, p);
    snprintf(out, size, "%s@%s", t ? wf__actor_label(t) : "(stopped actor)", n->name);
}

static void on_ask_timer(uv_timer_t *h);

/* ---- life cycle ---- */

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
    atomic_init(&n->running, false);
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
    if ((n->clock = wf_clock_uv_new(&n->loop)) == NULL) {
        wf_node_free(n);
        return NULL;
    }
    n->loop_tid = uv_thread_self();
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
    uv_thread_t self = uv_thread_self();
    return uv_thread_equal(&self, &n->loop_tid);
}

wf_node_stats *wf__stats(wf_node *n)
{
    return &n->stats;
}

void wf_node_stats_get(const wf_node *n, wf_node_stats *out)
{
    *out = n->stats;
}

unsigned wf__default_mailbox_limit(wf_node *n)
{
    return n->mailbox_limit;
}

bool wf__shutting_down(wf_node *n)
{
    return n->shutting_down;
}

static void run_loop(wf_node *n)
{
    atomic_store(&n->running, true);
    if (atomic_load(&n->shutdown_requested))
        uv_async_send(&n->async);
    if (n->runq_head != NULL && !n->idle_on) {
        uv_idle_start(&n->idle, on_idle);
        n->idle_on = true;
    }
    while (uv_run(&n->loop, UV_RUN_DEFAULT) != 0 && n->handles_open)
        ;
}

int wf_node_run(wf_node *n)
{
    n->loop_tid = uv_thread_self();
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
    n->loop_tid = uv_thread_self();
    /* Other threads read loop_tid (wf_node_on_loop) only after this. */
    uv_sem_post(&st->ready);
    run_loop(n);
}

int wf_node_start(wf_node *n)
{
    struct start st = {.n = n};
    if (uv_sem_init(&st.ready, 0) != 0)
        return WF_ENOMEM;
    if (uv_thread_create(&n->thread, thread_main, &st) != 0) {
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

static void do_shutdown(wf_node *n);

void wf_node_free(wf_node *n)
{
    if (n == NULL)
        return;
    if (n->handles_open) {
        /* The loop never ran (or was never shut down): shut down here, on
         * what is now the loop's only thread. */
        n->loop_tid = uv_thread_self();
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
    for (uint32_t i = 0; i < n->nrnames; i++)
        wf_free(n->rnames[i]);
    wf_free(n->rnames);
    wf_free(n->rwatch);
    wf_free(n->buckets);
    wf_free(n->pend);
    wf_free(n->slots);
    wf_free(n->names);
    wf_free(n->name);
    wf_free(n);
}

/* ---- slot tables ---- */

/* Doubles a table of entries of size bytes, each starting with a genslot,
 * and puts the new entries on the free list. */
static int slots_grow(void *arr, uint32_t *n, uint32_t *free_head, size_t size)
{
    uint32_t cap = *n ? *n * 2 : 64;
    char *p = wf_realloc(*(void **)arr, cap * size);
    if (p == NULL)
        return WF_ENOMEM;
    memset(p + (size_t)*n * size, 0, (size_t)(cap - *n) * size);
    for (uint32_t i = *n; i < cap; i++)
        *(struct genslot *)(p + i * size) = (struct genslot){1, i + 2 <= cap ? i + 2 : NIL};
    *(void **)arr = p;
    *free_head = *n + 1;
    *n = cap;
    return 0;
}

/* ---- registry ---- */

struct actor *wf__node_actor(wf_node *n, wf_pid pid)
{
    if (wf_pid_peer(pid) != 0)
        return NULL;
    uint32_t idx = (uint32_t)pid.id;
    uint32_t gen = (uint32_t)(pid.id >> 32);
    if (idx == 0 || idx > n->nslots)
        return NULL;
    struct slot *s = &n->slots[idx - 1];
    return s->h.gen == gen ? s->a : NULL;
}

static uint32_t hash_name(const char *s)
{
    return (uint32_t)wf__fnv1a(s, strlen(s));
}

/* Names are rare next to messages: a plain chained table of slot indices. */
struct name_entry {
    struct name_entry *next;
    uint32_t slot; /* index + 1 */
    char name[];
};

static struct name_entry *name_find(wf_node *n, const char *name, struct name_entry ***link)
{
    if (n->nbuckets_names == 0)
        return NULL;
    struct name_entry **pp = &n->names[hash_name(name) & (n->nbuckets_names - 1)];
    for (; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, name) == 0) {
            if (link)
                *link = pp;
            return *pp;
        }
    }
    return NULL;
}

static int name_add(wf_node *n, const char *name, uint32_t slot)
{
    if (n->nnames + 1 > n->nbuckets_names) {
        uint32_t nb = n->nbuckets_names ? n->nbuckets_names * 2 : 16;
        struct name_entry **b = wf_malloc(nb * sizeof *b);
        if (b == NULL)
            return WF_ENOMEM;
        memset(b, 0, nb * sizeof *b);
        for (uint32_t i = 0; i < n->nbuckets_names; i++) {
            struct name_entry *e = n->names[i];
            while (e != NULL) {
                struct name_entry *next = e->next;
                uint32_t h = hash_name(e->name) & (nb - 1);
                e->next = b[h];
                b[h] = e;
                e = next;
            }
        }
        wf_free(n->names);
        n->names = b;
        n->nbuckets_names = nb;
    }
    size_t len = strlen(name) + 1;
    struct name_entry *e = wf_malloc(sizeof *e + len);
    if (e == NULL)
        return WF_ENOMEM;
    memcpy(e->name, name, len);
    e->slot = slot;
    uint32_t h = hash_name(name) & (n->nbuckets_names - 1);
    e->next = n->names[h];
    n->names[h] = e;
    n->nnames++;
    return 0;
}

wf_pid wf_lookup(wf_node *n, const char *name)
{
    struct name_entry *e = name_find(n, name, NULL);
    if (e == NULL)
        return (wf_pid){0};
    struct slot *s = &n->slots[e->slot - 1];
    return s->a->pid;
}

/* Registers a; names it if name is not NULL. */
int wf__registry_add(wf_node *n, struct actor *a, const char *name)
{
    if (name != NULL && name_find(n, name, NULL) != NULL)
        return WF_EINVAL;
    if (n->free_slot == NIL && slots_grow(&n->slots, &n->nslots, &n->free_slot, sizeof *n->slots))
        return WF_ENOMEM;
    uint32_t idx = n->free_slot;
    struct slot *s = &n->slots[idx - 1];
    if (name != NULL && name_add(n, name, idx) != 0)
        return WF_ENOMEM;
    n->free_slot = s->h.next_free;
    s->a = a;
    a->pid.id = ((uint64_t)s->h.gen << 32) | idx;
    return 0;
}

void wf__each_actor(wf_node *n, void (*fn)(struct actor *a, void *arg), void *arg)
{
    for (uint32_t i = 0; i < n->nslots; i++) {
        if (n->slots[i].a != NULL && !n->slots[i].a->dead)
            fn(n->slots[i].a, arg);
    }
}

void wf__registry_remove(wf_node *n, struct actor *a)
{
    uint32_t idx = (uint32_t)a->pid.id;
    struct slot *s = &n->slots[idx - 1];
    if (a->name != NULL) {
        struct name_entry **link;
        struct name_entry *e = name_find(n, a->name, &link);
        if (e != NULL) {
            *link = e->next;
            wf_free(e);
            n->nnames--;
        }
    }
    s->a = NULL;
    /* 15 bits: above them a pid names a peer (weft/link.h); never 0, which
     * would read as no actor. */
    s->h.gen = s->h.gen < 0x7FFF ? s->h.gen + 1 : 1;
    s->h.next_free = n->free_slot;
    n->free_slot = idx;
}

const char *wf__actor_label(struct actor *a)
{
    return a->name ? a->name : a->b->name ? a->b->name : "anonymous";
}

/* ---- run queue and dispatch ---- */

void wf__schedule(struct actor *a)
{
    wf_node *n = a->node;
    if (a->queued || a->busy || a->dead || a->mb_head == NULL)
        return;
    a->queued = true;
    a->refs++;
    a->run_next = NULL;
    if (n->runq_tail)
        n->runq_tail->run_next = a;
    else
        n->runq_head = a;
    n->runq_tail = a;
    if (!n->idle_on && atomic_load(&n->running)) {
        uv_idle_start(&n->idle, on_idle);
        n->idle_on = true;
    }
}

int wf__enqueue(struct actor *a, wf_msg *m, bool bounded)
{
    if (bounded && a->mb_count >= a->mb_limit) {
        a->node->stats.overloaded++;
        return WF_EOVERLOADED;
    }
    m->next = NULL;
    if (a->mb_tail)
        a->mb_tail->next = m;
    else
        a->mb_head = m;
    a->mb_tail = m;
    a->mb_count++;
    wf__schedule(a);
    return 0;
}

static void dispatch(wf_node *n)
{
    unsigned budget = DISPATCH_MAX;
    while (n->runq_head != NULL && budget > 0) {
        struct actor *a = n->runq_head;
        n->runq_head = a->run_next;
        if (n->runq_head == NULL)
            n->runq_tail = NULL;
        a->queued = false;
        for (unsigned i = 0; i < BATCH && a->mb_head && !a->busy && !a->dead; i++) {
            budget--;
            wf__actor_deliver(a, wf__mailbox_pop(a));
        }
        wf__schedule(a); /* more mail: back to the end of the queue */
        wf__actor_unref(a);
    }
}

static void on_idle(uv_idle_t *h)
{
    wf_node *n = h->data;
    dispatch(n);
    if (n->runq_head == NULL && n->idle_on) {
        uv_idle_stop(&n->idle);
        n->idle_on = false;
    }
}

/* ---- tell ---- */

static void inject(wf_node *n, wf_msg *m)
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

static int send_remote(wf_node *n, int kind, wf_pid to, uint64_t corr, wf_msg *m);

static int tell_local(wf_node *n, wf_pid to, wf_msg *m)
{
    if (n->shutting_down) {
        wf_msg_free(m);
        return WF_ESHUTDOWN;
    }
    if (wf_pid_peer(to) != 0) {
        int rv = send_remote(n, WF_LINK_TELL, to, 0, m);
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
    if (wf_node_on_loop(n)) {
        wf__trace_stamp(n, m);
        return tell_local(n, to, m);
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
    inject(n, m);
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

/* ---- pending asks ---- */

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
    if (n->free_pend == NIL && slots_grow(&n->pend, &n->npend, &n->free_pend, sizeof *n->pend))
        goto nomem;
    uint32_t i = n->free_pend;
    struct pending *p = pend_at(n, i);
    n->free_pend = p->h.next_free;
    p->d = wf_deferred_ref(d);
    p->bucket = b;
    p->timeout = timeout_ms;
    p->deadline = uv_now(&n->loop) + timeout_ms;
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
        int rv = send_remote(n, WF_LINK_ASK, to, corr, m);
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
    return wf__ask(n, NULL, to, m, timeout_ms);
}

wf_deferred *wf_ctx_ask(wf_ctx *ctx, wf_pid to, wf_msg *m, uint64_t timeout_ms)
{
    if (ctx->on_pool) {
        wf_msg_free(m);
        return wf_fail(wf_failure_new(WF_ESTATE, "wf_ctx_ask from a blocking handler"));
    }
    return wf__ask(ctx->a->node, ctx->a, to, m, timeout_ms);
}

wf_deferred *wf_ask_as(wf_node *n, wf_pid self, wf_pid to, wf_msg *m, uint64_t timeout_ms)
{
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

/* ---- other threads ---- */

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
    wf_deferred *d = wf__ask(n, NULL, c->to, c->m, c->timeout);
    if (d == NULL) {
        call_done(WF_FAIL(WF_ENOMEM, "no memory for a call"), c);
        return;
    }
    wf_deferred_add_both(d, call_done, c);
    wf_deferred_release(d);
}

wf_result wf_node_call(wf_node *n, wf_pid to, wf_msg *m, uint64_t timeout_ms)
{
    if (wf_node_on_loop(n) && atomic_load(&n->running)) {
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

static void drain_injected(wf_node *n)
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
        tell_local(n, m->to, m);
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

static void on_async(uv_async_t *h)
{
    wf_node *n = h->data;
    if (!n->shutting_down)
        drain_injected(n);
    if (atomic_load(&n->shutdown_requested) && n->handles_open)
        do_shutdown(n);
}

/* ---- shutdown ---- */

static void do_shutdown(wf_node *n)
{
    n->shutting_down = true;
    /* Pending asks first, while every actor (and its state) is alive. */
    for (uint32_t i = 1; i <= n->npend; i++) {
        if (pend_at(n, i)->d != NULL)
            complete_at(n, i, WF_FAIL(WF_ESHUTDOWN, "node %s shut down", n->name));
    }
    for (uint32_t i = 0; i < n->nslots; i++) {
        struct actor *a = n->slots[i].a;
        if (a != NULL && !a->dead)
            wf__actor_stop(a, wf_failure_new(WF_ESHUTDOWN, "node %s shut down", n->name));
    }
    /* A blocking handler still on the pool finishes its stop in its after
     * callback, which the loop still runs. */
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
    dispatch(n); /* actors stopped by now hold no mail; frees the queue */
    if (n->link != NULL)
        n->link->close(n->link_ctx);
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

/* ---- the transport (weft/link.h) ---- */

int wf_node_set_link(wf_node *n, const wf_link_ops *ops, void *ctx)
{
    if (n->link != NULL)
        return WF_EINVAL;
    n->link = ops;
    n->link_ctx = ctx;
    return 0;
}

#define NAME_BIT (1ull << 47)

static const char *remote_name(wf_node *n, wf_pid p)
{
    if (!(p.id & NAME_BIT))
        return NULL;
    uint32_t i = (uint32_t)p.id;
    return i >= 1 && i <= n->nrnames ? n->rnames[i - 1] : NULL;
}

const char *wf__remote_name(wf_node *n, wf_pid p, uint32_t *index)
{
    if (index != NULL)
        *index = (uint32_t)p.id;
    return remote_name(n, p);
}

const char *wf__peer_name(wf_node *n, uint16_t peer)
{
    return n->link ? n->link->peer_name(n->link_ctx, peer) : NULL;
}

static int send_remote(wf_node *n, int kind, wf_pid to, uint64_t corr, wf_msg *m)
{
    if (n->link == NULL)
        return WF_ENOSUCHACTOR;
    wf_link_out o = {.kind = kind,
                     .peer = wf_pid_peer(to),
                     .corr = corr,
                     .from = m->from.id,
                     .to = (to.id & NAME_BIT) ? 0 : to.id & ((1ull << 48) - 1),
                     .name = remote_name(n, to),
                     .msg = m,
                     .tc = &m->tc};
    int rv = n->link->send(n->link_ctx, &o);
    if (rv == 0 && wf__traced(n, &m->tc))
        wf__trace_msg(n, TR_SEND, m->from, to, m, 0);
    return rv;
}

void wf__answer(wf_node *n, wf_pid self, uint16_t peer, uint64_t corr, uint32_t type,
                const wf_trace_ctx *tc, wf_result r)
{
    if (wf__traced(n, tc))
        wf__trace_answer(n, self, tc, corr, type, &r);
    if (peer == 0) {
        wf__reply(n, corr, r);
        return;
    }
    if (n->link != NULL) {
        wf_link_out o = {.peer = peer, .corr = corr, .tc = tc};
        if (wf_result_is_msg(r)) {
            o.kind = WF_LINK_REPLY;
            o.msg = r.u.ptr;
        } else if (r.kind == WF_RESULT_FAILURE) {
            o.kind = WF_LINK_FAIL;
            o.failure = r.u.failure;
        } else {
            o.kind = WF_LINK_FAIL;
            o.failure = wf_failure_new(WF_EINTERNAL, "reply is not a message");
        }
        if (n->link->send(n->link_ctx, &o) == 0)
            n->stats.replies++;
        if (r.kind != WF_RESULT_FAILURE && !wf_result_is_msg(r))
            wf_failure_release((wf_failure *)o.failure);
    }
    wf_result_free(r);
}

wf_pid wf_resolve(wf_node *n, const char *address)
{
    const char *at = strchr(address, '@');
    if (at == NULL || strcmp(at + 1, n->name) == 0) {
        if (at == NULL)
            return wf_lookup(n, address);
        char local[WF_NAME_MAX + 1];
        size_t len = (size_t)(at - address);
        if (len > WF_NAME_MAX)
            return (wf_pid){0};
        memcpy(local, address, len);
        local[len] = '\0';
        return wf_lookup(n, local);
    }
    uint16_t peer = n->link ? n->link->peer_of(n->link_ctx, at + 1) : 0;
    size_t len = (size_t)(at - address);
    if (peer == 0 || len == 0 || len > WF_NAME_MAX)
        return (wf_pid){0};
    uint32_t i = 0;
    while (i < n->nrnames && (strlen(n->rnames[i]) != len || memcmp(n->rnames[i], address, len)))
        i++;
    if (i == n->nrnames) {
        char **r = wf_realloc(n->rnames, (n->nrnames + 1) * sizeof *r);
        if (r == NULL)
            return (wf_pid){0};
        n->rnames = r;
        if ((r[i] = wf_malloc(len + 1)) == NULL)
            return (wf_pid){0};
        memcpy(r[i], address, len);
        r[i][len] = '\0';
        n->nrnames++;
    }
    return (wf_pid){((uint64_t)peer << 48) | NAME_BIT | (i + 1)};
}

void wf_link_deliver(wf_node *n, uint16_t peer, int kind, uint64_t corr, uint64_t from, uint64_t to,
                     const char *name, size_t name_len, const wf_trace_ctx *tc, wf_msg *m)
{
    m->tc = *tc;
    struct actor *a = NULL;
    char buf[WF_NAME_MAX + 1];
    if (name != NULL && name_len <= WF_NAME_MAX) {
        memcpy(buf, name, name_len);
        buf[name_len] = '\0';
        a = wf__node_actor(n, wf_lookup(n, buf));
    } else if (name == NULL) {
        a = wf__node_actor(n, (wf_pid){to});
    }
    m->from = (wf_pid){from ? ((uint64_t)peer << 48) | (from & ((1ull << 47) - 1)) : 0};
    int rv = n->shutting_down             ? WF_ESHUTDOWN
             : a == NULL || a->dead       ? WF_ENOSUCHACTOR
             : a->mb_count >= a->mb_limit ? WF_EOVERLOADED
                                          : 0;
    if (rv != 0) {
        n->stats.dropped++;
        if (kind == WF_LINK_ASK)
            wf__answer(n, (wf_pid){0}, peer, corr, m->type, &m->tc,
                       WF_FAIL(rv, "%s: %s@%s (message type %u)", wf_strerror(rv),
                               name ? buf : "(actor id)", n->name, m->type));
        wf_msg_free(m);
        return;
    }
    m->kind = kind == WF_LINK_ASK ? K_ASK : K_TELL;
    m->corr = corr;
    m->peer = kind == WF_LINK_ASK ? peer : 0;
    if (kind == WF_LINK_ASK)
        n->stats.asks++;
    else
        n->stats.tells++;
    wf__enqueue(a, m, false);
    if (wf__traced(n, &m->tc))
        wf__trace_msg(n, TR_RECV, a->pid, m->from, m, a->mb_count + 1);
}

void wf_link_answer(wf_node *n, uint16_t peer, uint64_t corr, wf_result r)
{
    if (r.kind == WF_RESULT_FAILURE) {
        /* The hop back across the wire is part of the trace. */
        const char *from = n->link ? n->link->peer_name(n->link_ctx, peer) : NULL;
        char func[96];
        snprintf(func, sizeof func, "reply from node %s", from ? from : "?");
        wf_failure_add_frame(r.u.failure, &(wf_frame){.func = func, .node = n->name});
    }
    wf__reply(n, corr, r);
}

int wf__monitor_remote(wf_node *n, wf_pid watcher, wf_pid target)
{
    struct rwatch *w = wf_realloc(n->rwatch, (n->nrwatch + 1) * sizeof *w);
    if (w == NULL)
        return WF_ENOMEM;
    n->rwatch = w;
    w[n->nrwatch++] = (struct rwatch){watcher, target};
    return 0;
}

void wf_link_peer_up(wf_node *n, uint16_t peer)
{
    wf__trace_node(n, peer, true, NULL);
}

void wf_link_peer_down(wf_node *n, uint16_t peer, const char *why)
{
    const char *name = n->link ? n->link->peer_name(n->link_ctx, peer) : NULL;
    wf__trace_node(n, peer, false, why);
    for (uint32_t i = 1; i <= n->npend; i++) {
        struct pending *p = pend_at(n, i);
        if (p->d != NULL && wf_pid_peer(p->target) == peer) {
            n->stats.node_down++;
            complete_at(n, i,
                        WF_FAIL(WF_ENODEDOWN, "node %s went down (%s) before answering",
                                name ? name : "?", why));
        }
    }
    wf_failure *f = wf_failure_new(WF_ENODEDOWN, "node %s went down (%s)", name ? name : "?", why);
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n->nrwatch; i++) {
        if (wf_pid_peer(n->rwatch[i].target) == peer)
            wf__send_down(n, n->rwatch[i].watcher, n->rwatch[i].target, f);
        else
            n->rwatch[kept++] = n->rwatch[i];
    }
    n->nrwatch = kept;
    wf_failure_release(f);
}
