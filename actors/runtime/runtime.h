/* The actor runtime's private structures. Every field here is touched only
 * on the node's loop thread unless its comment says otherwise. */
#ifndef WF_RUNTIME_H
#define WF_RUNTIME_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <weft/actor.h>
#include <weft/clock.h>
#include <weft/link.h>
#include <weft/node.h>
#include <weft/trace.h>

enum msg_kind {
    K_TELL,  /* fire and forget */
    K_ASK,   /* a request; corr names the asker's pending entry */
    K_REPLY, /* an answer queued to the asking actor; failure set if failed */
};

struct wf_msg {
    wf_msg *next; /* mailbox or inject-queue link */
    uint32_t type;
    uint8_t kind;        /* enum msg_kind */
    bool cancelled;      /* K_ASK: its asker gave up while it was queued */
    uint16_t peer;       /* K_ASK from another node: its peer number */
    uint64_t corr;       /* K_ASK, K_REPLY: pending id on the asker's node */
    uint64_t deadline;   /* K_ASK: when its asker stops waiting (node ms); 0: never */
    wf_pid from;         /* sending actor; none if from outside */
    wf_pid to;           /* inject queue only */
    wf_failure *failure; /* K_REPLY with a failure */
    size_t len;
    wf_trace_ctx tc; /* its span (flags 0: none); span_id 0: stamped on the loop */
    _Alignas(8) unsigned char body[];
};

struct request;

struct actor {
    wf_node *node;
    const wf_behaviour *b;
    wf_pid pid;
    char *name;    /* NULL when anonymous */
    unsigned refs; /* registry + run queue + a pool job */
    wf_msg *mb_head, *mb_tail;
    unsigned mb_count, mb_limit;
    struct actor *run_next;
    bool queued; /* on the run queue */
    bool busy;   /* a blocking handler is on the pool */
    bool dead;
    bool trace_sel;           /* its events pass the node's actor filter */
    bool in_turn;             /* one of its handlers or callbacks is running */
    bool stop_pending;        /* stop once the current handler is done */
    wf_failure *stop_reason;  /* with stop_pending */
    uint32_t asks;            /* pending asks this actor made: list head (index+1) */
    struct request *requests; /* requests it answers later (deferreds) */
    wf_pid *watchers;
    uint32_t nwatchers, capwatchers;
    struct rwatcher *rwatchers; /* actors on other nodes watching it (link.c) */
    uint32_t nrwatchers;
    _Alignas(16) unsigned char state[];
};

/* Takes the first message of a's mailbox, which holds one. */
static inline wf_msg *wf__mailbox_pop(struct actor *a)
{
    wf_msg *m = a->mb_head;
    a->mb_head = m->next;
    if (a->mb_head == NULL)
        a->mb_tail = NULL;
    a->mb_count--;
    return m;
}

/* A request being answered: on the stack for a synchronous handler, on the
 * heap once the handler returned a deferred. */
struct request {
    wf_node *node;
    uint64_t corr;
    uint16_t peer;       /* the asker's node, 0 if local */
    struct actor *actor; /* NULL once the actor stopped */
    wf_pid self;         /* the answering actor */
    const wf_handler *h;
    struct request *prev, *next; /* the actor's list, when on the heap */
    wf_deferred *d;              /* the handler's deferred, when on the heap */
    bool answered;
    bool cancelled;      /* its asker gave up: no answer is sent */
    bool on_pool;        /* answering is postponed to the loop */
    uint64_t deadline;   /* the ask's (node ms), 0: none */
    wf_result postponed; /* the pool handler's wf_reply */
    bool has_postponed;
    const char *file, *func; /* where it was answered */
    int line;
    wf_trace_ctx tc; /* the request's span */
};

struct wf_ctx {
    struct actor *a;
    wf_msg *msg;
    struct request *req; /* NULL for a tell, init and terminate */
    bool on_pool;        /* a blocking handler: this ctx is on a pool thread */
    bool stop_requested; /* wf_ctx_stop: applied on the loop afterwards */
    wf_failure *stop_reason;
};

/* Tracing (trace.c). The node's struct starts with this, so that the hot
 * paths test "does this node trace?" inline: one load and a branch. */
struct tracer;
struct node_trace {
    struct tracer *on; /* NULL: the node does not trace */
    wf_trace_ctx cur;  /* the context of the turn being run */
    wf_pid cur_actor;  /* whose turn, while cur is set */
    uint64_t rng;      /* ids; loop thread */
};

static inline struct node_trace *wf__nt(wf_node *n)
{
    return (struct node_trace *)(void *)n;
}

void wf__trace_init(wf_node *n);
void wf__trace_stamp_slow(wf_node *n, wf_msg *m);

#ifdef WEFT_NO_TRACE
/* Tracing compiled out: only for the trace benchmark's baseline, which
 * measures what the hooks cost when a node does not trace. */
static inline bool wf__traced(wf_node *n, const wf_trace_ctx *tc)
{
    return false;
}

static inline void wf__trace_stamp(wf_node *n, wf_msg *m)
{
    m->tc.flags = 0;
}
#else
/* Is an event of span tc recorded? */
static inline bool wf__traced(wf_node *n, const wf_trace_ctx *tc)
{
    return wf__nt(n)->on != NULL && (tc->flags & WF_TRACE_SAMPLED);
}

/* Gives m its span: a child of the current turn's, or a new root (sampled)
 * when the node traces, or none. */
static inline void wf__trace_stamp(wf_node *n, wf_msg *m)
{
    struct node_trace *nt = wf__nt(n);
    if (nt->cur.flags || nt->on != NULL)
        wf__trace_stamp_slow(n, m);
    else
        m->tc.flags = 0;
}
#endif
/* Copies span src into dst. An unsampled span is only its flags: its ids
 * are unset, so they are not copied. */
static inline void wf__trace_ctx_copy(wf_trace_ctx *dst, const wf_trace_ctx *src)
{
    if (src->flags & WF_TRACE_SAMPLED)
        *dst = *src;
    else
        dst->flags = src->flags;
}

/* Gives m a child span of parent (when parent is set). */
void wf__trace_child(wf_node *n, const wf_trace_ctx *parent, wf_msg *m);
uint64_t wf__trace_new_span(wf_node *n);

enum trace_kind {
    TR_CONFIG,
    TR_ACTOR,
    TR_STOP,
    TR_SEND,
    TR_RECV,
    TR_START,
    TR_END,
    TR_OFFLOAD_START,
    TR_OFFLOAD_END,
    TR_REPLY,
    TR_FAIL,
    TR_FIRED,
    TR_TIMEOUT,
    TR_NODE_UP,
    TR_NODE_DOWN,
    TR_PEER,  /* internal: a peer's name, for the writer's labels */
    TR_RNAME, /* internal: a remote actor name's index */
    TR_NOTE_RECV,
    TR_NOTE_REPLY,
    TR_NOTE_FAIL,
};
enum trace_outcome { OUT_NONE, OUT_REPLY, OUT_DEFERRED, OUT_FAIL, OUT_OK };

/* Recording: call these only when wf__traced(n, tc) holds (they apply
 * the filters). Loop thread. */
void wf__trace_msg(wf_node *n, int kind, wf_pid actor, wf_pid other, const wf_msg *m,
                   unsigned depth);
/* wf__trace_msg with the event's time t (uv_hrtime; 0: now): a remote send
 * is stamped before the frame goes, as its receiver may record its
 * arrival before the sender's thread runs again. */
void wf__trace_msg_at(wf_node *n, int kind, wf_pid actor, wf_pid other, const wf_msg *m,
                      unsigned depth, uint64_t t);
void wf__trace_run(wf_node *n, int kind, struct actor *a, const wf_msg *m, const wf_handler *h,
                   int outcome, uint64_t t);
void wf__trace_answer(wf_node *n, wf_pid self, const wf_trace_ctx *tc, uint64_t corr, uint32_t type,
                      const wf_result *r);
void wf__trace_fired(wf_node *n, int kind, wf_pid asker, const wf_trace_ctx *tc, uint64_t corr,
                     uint32_t type, bool ok);
/* Untraced-context events: checked inside (cheap: rare). */
void wf__trace_actor(wf_node *n, struct actor *a, int kind, const wf_failure *reason);
/* A wf_defer_to_thread job that ran on the pool from t0 to t1 (pool
 * readings), for actor in span tc. */
void wf__trace_deferred_work(wf_node *n, wf_pid actor, const wf_trace_ctx *tc, uint64_t t0,
                             uint64_t t1, bool ok);
void wf__trace_node(wf_node *n, uint16_t peer, bool up, const char *why);
/* Makes recorded events visible to the writer; the node calls it before
 * its loop waits, while wf__node_trace_publishing(n, true) holds. */
void wf__trace_publish(wf_node *n);
void wf__node_trace_publishing(wf_node *n, bool on);
void wf__trace_shutdown(wf_node *n);

/* ---- the node ---- */

#define NIL         0u  /* slot-table links are index + 1 */
#define WF_NAME_MAX 255 /* longest actor name an address may carry */

/* Generational slot tables (slots.c): the actor registry and the pending
 * asks. An id is (generation << 32 | index + 1), and freeing a slot bumps
 * its generation, so a stale id never matches the slot's next tenant.
 * Their entries start with this header. */
struct genslot {
    uint32_t gen;
    uint32_t next_free; /* index + 1 */
};

/* Doubles a table of entries of size bytes, each starting with a genslot,
 * and puts the new entries on the free list. 0 or WF_ENOMEM (nothing
 * changed). */
int wf__slots_grow(void *arr, uint32_t *n, uint32_t *free_head, size_t size);

struct slot { /* a registry entry */
    struct genslot h;
    struct actor *a;
};

struct name_entry; /* registry.c */
struct pending;    /* ask.c */
struct bucket;     /* ask.c */
struct call;       /* call.c */
struct rwatch;     /* link.c */

enum node_phase {
    PHASE_NEW,     /* neither wf_node_run nor wf_node_start yet */
    PHASE_RUNNING, /* the loop runs (or is about to, on its thread) */
    PHASE_ENDED,   /* the loop has returned */
};

/* Loop thread unless a field says otherwise. Grouped by the file that owns
 * the fields. */
struct wf_node {
    struct node_trace trace; /* first: see wf__nt */

    /* node.c: life cycle and shutdown */
    char *name;
    uv_loop_t loop;
    uv_async_t async;           /* the door in from other threads (call.c) */
    uv_prepare_t trace_prepare; /* publishes trace records before the loop waits */
    wf_clock *clock;
    uv_thread_t thread;   /* wf_node_start's */
    uv_thread_t loop_tid; /* the loop's thread; before the loop: the creator's */
    long loop_os_tid;     /* the same, as the OS numbers it (for messages) */
    atomic_int phase;     /* enum node_phase; any thread */
    bool started_thread;
    bool handles_open;
    atomic_bool shutdown_requested; /* any thread */
    bool shutting_down;
    unsigned mailbox_limit;
    uint64_t ask_timeout_ms;
    wf_node_stats stats;

    /* registry.c */
    struct slot *slots;
    uint32_t nslots, free_slot;
    struct name_entry **names; /* names -> registry slots, chained buckets */
    uint32_t nbuckets_names, nnames;

    /* dispatch.c: the run queue */
    uv_idle_t idle;
    struct actor *runq_head, *runq_tail;
    bool idle_on;

    /* ask.c: pending asks and their deadlines */
    uv_timer_t ask_timer;
    struct pending **pend_pages; /* pages never move: a pending's address is its canceller's */
    uint32_t npend, free_pend;
    struct bucket *buckets;
    uint32_t nbuckets;
    uint32_t *dheap; /* asks whose deadline an outer request cut short: a min-heap */
    uint32_t ndheap, capdheap;
    uint64_t armed; /* deadline the timer is armed for; UINT64_MAX: none */
    /* The deadline of the request whose handler, or whose asks' callbacks,
     * run now (node ms; 0: none): asks made meanwhile inherit it. */
    uint64_t cur_deadline;

    /* call.c: what other threads hand to the loop */
    uv_mutex_t inject_lock; /* guards the inject lists: any thread */
    wf_msg *inject_head, *inject_tail;
    struct call *calls;

    /* link.c: the transport, if one is plugged in */
    const wf_link_ops *link;
    void *link_ctx;
    char **rnames; /* actor names interned for remote pids */
    uint32_t nrnames;
    struct rwatch *rwatch; /* local actors monitoring remote ones */
    uint32_t nrwatch;
    uint64_t last_mref; /* the last reference given to a remote monitor */
};

static inline bool wf__on_loop(const wf_node *n)
{
    uv_thread_t self = uv_thread_self();
    return uv_thread_equal(&self, &n->loop_tid);
}

static inline wf_node_stats *wf__stats(wf_node *n)
{
    return &n->stats;
}

static inline bool wf__shutting_down(wf_node *n)
{
    return n->shutting_down;
}

static inline unsigned wf__default_mailbox_limit(wf_node *n)
{
    return n->mailbox_limit;
}

/* A remote pid (weft/link.h): the peer in the top 16 bits; below, an actor
 * id, or with this bit set the index of a name interned for that peer. */
#define WF__PID_NAME_BIT ((uint64_t)1 << 47)

/* ---- thread contracts (thread_check.c) ----
 * Each public entry point checks the thread its header names. Debug and
 * sanitizer builds (no NDEBUG) stop the process with a message naming the
 * function, the calling thread and the loop's thread; release builds
 * compile the checks away. */
#ifdef NDEBUG
#define WF__ON_LOOP(n, fn)           ((void)0)
#define WF__ON_LOOP_OR_BEFORE(n, fn) ((void)0)
#define WF__ON_LOOP_OR_AFTER(n, fn)  ((void)0)
#define WF__OFF_LOOP(n, fn)          ((void)0)
#else
/* Loop thread only (before the loop, that is the thread that made n). */
#define WF__ON_LOOP(n, fn) \
    (wf__on_loop(n) ? (void)0 : wf__wrong_thread((n), (fn), "loop thread only"))
/* Loop thread, or any thread before the node runs. */
#define WF__ON_LOOP_OR_BEFORE(n, fn)                         \
    (wf__on_loop(n) || atomic_load(&(n)->phase) == PHASE_NEW \
         ? (void)0                                           \
         : wf__wrong_thread((n), (fn), "loop thread, or before the node runs"))
/* Loop thread, or any thread once the loop has ended. */
#define WF__ON_LOOP_OR_AFTER(n, fn)                            \
    (wf__on_loop(n) || atomic_load(&(n)->phase) == PHASE_ENDED \
         ? (void)0                                             \
         : wf__wrong_thread((n), (fn), "loop thread, or after the loop ended"))
/* Not the loop thread of a running node (it would wait for itself). */
#define WF__OFF_LOOP(n, fn)                                       \
    (!wf__on_loop(n) || atomic_load(&(n)->phase) != PHASE_RUNNING \
         ? (void)0                                                \
         : wf__wrong_thread((n), (fn), "not from the loop thread"))
#endif
/* Reports that fn was called on the wrong thread for rule, and aborts. */
_Noreturn void wf__wrong_thread(const wf_node *n, const char *fn, const char *rule);
/* The calling thread's number as the OS shows it (gettid on Linux). */
long wf__thread_os_id(void);

/* actor.c */
/* The request that ask m makes of actor a, to be answered by handler h
 * (NULL: there is none). */
void wf__request_init(struct request *req, struct actor *a, const wf_msg *m, const wf_handler *h);
/* How a handler's run ended (enum trace_outcome), for its end event: r is
 * what it returned, req its request (NULL for a tell). */
int wf__run_outcome(const wf_result *r, const struct request *req);
void wf__actor_deliver(struct actor *a, wf_msg *m);
void wf__actor_stop(struct actor *a, wf_failure *reason);
void wf__actor_unref(struct actor *a);
void wf__actor_finish(struct actor *a, const wf_handler *h, wf_msg *m, struct request *req,
                      wf_result r);
const wf_handler *wf__find_handler(const wf_behaviour *b, uint32_t type);
void wf__send_down(wf_node *n, wf_pid to, wf_pid who, const wf_failure *reason);
const char *wf__actor_label(struct actor *a);

/* registry.c */
/* The local actor pid names (a stopping one too: callers check dead), or
 * NULL. On every send. */
static inline struct actor *wf__node_actor(wf_node *n, wf_pid pid)
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
/* Registers a (giving it its pid); names it if name is not NULL. 0,
 * WF_EINVAL (the name is taken) or WF_ENOMEM, with nothing registered. */
int wf__registry_add(wf_node *n, struct actor *a, const char *name);
void wf__registry_remove(wf_node *n, struct actor *a);
/* Calls fn for each live actor (fn may stop it). */
void wf__each_actor(wf_node *n, void (*fn)(struct actor *a, void *arg), void *arg);

/* dispatch.c: the run queue */
/* Starts the idle handle that drains the run queue. */
void wf__dispatch_wake(wf_node *n);
/* Runs queued actors (a bounded number of messages). */
void wf__dispatch(wf_node *n);

/* Puts a on the run queue if it has mail and can run now. On every send. */
static inline void wf__schedule(struct actor *a)
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
    if (!n->idle_on && atomic_load(&n->phase) != PHASE_NEW)
        wf__dispatch_wake(n);
}

/* Appends m to a's mailbox (the caller still owns m on WF_EOVERLOADED,
 * which only a bounded enqueue returns) and schedules a. */
static inline int wf__enqueue(struct actor *a, wf_msg *m, bool bounded)
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

/* tell.c */
/* Delivers m (consumed) to to from the loop thread: see wf_tell. */
int wf__tell_local(wf_node *n, wf_pid to, wf_msg *m);

/* ask.c */
/* An ask from asker (NULL: none) of to; with detached, its deadline is its
 * own timeout, not cut to what is left of n->cur_deadline. */
wf_deferred *wf__ask(wf_node *n, struct actor *asker, wf_pid to, wf_msg *m, uint64_t timeout_ms,
                     bool detached);
/* Frees the pending-ask table (the node is going). */
void wf__pending_fini(wf_node *n);
/* The loop's time now in ms, for deadlines: see ask.c. */
uint64_t wf__now_ms(wf_node *n);
/* Answers request corr from peer (0: local) with r (consumed), as actor
 * self (none if no actor); tc is the request's span. */
void wf__answer(wf_node *n, wf_pid self, uint16_t peer, uint64_t corr, uint32_t type,
                const wf_trace_ctx *tc, wf_result r);
/* A reply r (consumed) to local ask corr: queued to the asking actor, or
 * fired at once when no actor asked. A late reply is counted and freed. */
void wf__reply(wf_node *n, uint64_t corr, wf_result r);
/* Fires ask corr with r (consumed) now; a late r is counted and freed. */
void wf__pending_complete(wf_node *n, uint64_t corr, wf_result r);
/* Fails every pending ask actor a made (it is stopping). */
void wf__fail_asks_of(wf_node *n, struct actor *a);
/* Peer 0: fails every pending ask with WF_ESHUTDOWN (n shuts down); else
 * those to actors on peer with WF_ENODEDOWN (it went down: name, why). */
void wf__fail_asks_to(wf_node *n, uint16_t peer, const char *name, const char *why);

/* call.c: other threads */
/* Queues m (consumed; m->to set) for the loop, from another thread. */
void wf__inject(wf_node *n, wf_msg *m);
/* On the loop: delivers injected messages and starts queued calls. */
void wf__inject_drain(wf_node *n);
/* At shutdown: drops injected messages, fails queued calls. */
void wf__inject_refuse(wf_node *n);

/* link.c: the transport */
/* Sends m (borrowed) to remote actor to through the link: 0 or an error. */
int wf__send_remote(wf_node *n, int kind, wf_pid to, uint64_t corr, wf_msg *m);
/* Tells remote actor to that ask corr is no longer awaited. */
void wf__send_cancel(wf_node *n, wf_pid to, uint64_t corr);
/* Sends answer r (consumed) to ask corr of peer. */
void wf__send_answer(wf_node *n, uint16_t peer, uint64_t corr, const wf_trace_ctx *tc, wf_result r);
/* Local actor watcher monitors remote actor target: 0 or WF_ENOMEM (a
 * peer that cannot be reached gives Down at once). */
int wf__monitor_remote(wf_node *n, wf_pid watcher, wf_pid target);
/* Actor a is stopping for reason (borrowed, NULL: normal): its remote
 * watchers get DOWN, its own remote watches end. */
void wf__link_actor_stopped(wf_node *n, struct actor *a, const wf_failure *reason);
const char *wf__remote_name(wf_node *n, wf_pid p, uint32_t *index);
const char *wf__peer_name(wf_node *n, uint16_t peer);
/* Frees what the link side holds (interned names, remote monitors). */
void wf__link_fini(wf_node *n);

/* actor.c: whether request m for a should not run: cancelled while queued
 * (dropped), or past its deadline (answered WF_ETIMEDOUT); then m is
 * consumed. */
bool wf__request_stale(struct actor *a, wf_msg *m);
/* actor.c: a request whose asker (peer, 0 if local; corr) gave up: its
 * deferred is cancelled and its answer never sent; one still queued in
 * a's mailbox is dropped when its turn comes. Nothing if it is gone. */
void wf__request_cancel(wf_node *n, struct actor *a, uint16_t peer, uint64_t corr);

/* offload.c */
void wf__offload(struct actor *a, const wf_handler *h, wf_msg *m, struct request *req);

#endif
