/* The actor runtime's private structures. Every field here is touched only
 * on the node's loop thread unless its comment says otherwise. */
#ifndef WF_RUNTIME_H
#define WF_RUNTIME_H

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
    uint16_t peer;       /* K_ASK from another node: its peer number */
    uint64_t corr;       /* K_ASK, K_REPLY: pending id on the asker's node */
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
    bool on_pool;        /* answering is postponed to the loop */
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
struct actor *wf__node_actor(wf_node *n, wf_pid pid);

/* node.c */
void wf__schedule(struct actor *a);
int wf__enqueue(struct actor *a, wf_msg *m, bool bounded);
void wf__reply(wf_node *n, uint64_t corr, wf_result r);
/* Answers request corr from peer (0: local) with r (consumed), as actor
 * self (none if no actor); tc is the request's span. */
void wf__answer(wf_node *n, wf_pid self, uint16_t peer, uint64_t corr, uint32_t type,
                const wf_trace_ctx *tc, wf_result r);
void wf__send_down(wf_node *n, wf_pid to, wf_pid who, const wf_failure *reason);
int wf__monitor_remote(wf_node *n, wf_pid watcher, wf_pid target);
wf_deferred *wf__ask(wf_node *n, struct actor *asker, wf_pid to, wf_msg *m, uint64_t timeout_ms);
void wf__pending_complete(wf_node *n, uint64_t corr, wf_result r);
void wf__fail_asks_of(wf_node *n, struct actor *a);
void wf__registry_remove(wf_node *n, struct actor *a);
const char *wf__actor_label(struct actor *a);
wf_node_stats *wf__stats(wf_node *n);
bool wf__shutting_down(wf_node *n);
unsigned wf__default_mailbox_limit(wf_node *n);
int wf__registry_add(wf_node *n, struct actor *a, const char *name);
void wf__each_actor(wf_node *n, void (*fn)(struct actor *a, void *arg), void *arg);
const char *wf__remote_name(wf_node *n, wf_pid p, uint32_t *index);
const char *wf__peer_name(wf_node *n, uint16_t peer);
uint32_t wf__remote_names(wf_node *n);

const wf_handler *wf__find_handler(const wf_behaviour *b, uint32_t type);

/* offload.c */
void wf__offload(struct actor *a, const wf_handler *h, wf_msg *m, struct request *req);

#endif
