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

enum msg_kind {
    K_TELL,  /* fire and forget */
    K_ASK,   /* a request; corr names the asker's pending entry */
    K_REPLY, /* an answer queued to the asking actor; failure set if failed */
};

struct wf_msg {
    wf_msg *next; /* mailbox or inject-queue link */
    uint32_t type;
    uint8_t kind;        /* enum msg_kind */
    uint64_t corr;       /* K_ASK, K_REPLY: pending id on the asker's node */
    wf_pid from;         /* sending actor; none if from outside */
    wf_pid to;           /* inject queue only */
    uint16_t peer;       /* K_ASK from another node: its peer number */
    wf_failure *failure; /* K_REPLY with a failure */
    size_t len;
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
    bool in_turn;             /* one of its handlers or callbacks is running */
    bool stop_pending;        /* stop once the current handler is done */
    wf_failure *stop_reason;  /* with stop_pending */
    uint32_t asks;            /* pending asks this actor made: list head (index+1) */
    struct request *requests; /* requests it answers later (deferreds) */
    wf_pid *watchers;
    uint32_t nwatchers, capwatchers;
    _Alignas(16) unsigned char state[];
};

/* A request being answered: on the stack for a synchronous handler, on the
 * heap once the handler returned a deferred. */
struct request {
    wf_node *node;
    uint64_t corr;
    uint16_t peer;       /* the asker's node, 0 if local */
    struct actor *actor; /* NULL once the actor stopped */
    const wf_handler *h;
    struct request *prev, *next; /* the actor's list, when on the heap */
    wf_deferred *d;              /* the handler's deferred, when on the heap */
    bool answered;
    bool on_pool;        /* answering is postponed to the loop */
    wf_result postponed; /* the pool handler's wf_reply */
    bool has_postponed;
    const char *file, *func; /* where it was answered */
    int line;
};

struct wf_ctx {
    struct actor *a;
    wf_msg *msg;
    struct request *req; /* NULL for a tell, init and terminate */
    bool on_pool;        /* a blocking handler: this ctx is on a pool thread */
    bool stop_requested; /* wf_ctx_stop: applied on the loop afterwards */
    wf_failure *stop_reason;
};

/* actor.c */
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
void wf__answer(wf_node *n, uint16_t peer, uint64_t corr, wf_result r);
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

const wf_handler *wf__find_handler(const wf_behaviour *b, uint32_t type);

/* offload.c */
void wf__offload(struct actor *a, const wf_handler *h, wf_msg *m, struct request *req);

#endif
