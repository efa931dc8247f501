/* The mailbox dispatcher: the node's run queue.
 *
 * An actor with mail is put on the run queue once (the enqueue that finds
 * it off the queue schedules it: wf__schedule in runtime.h); an idle handle
 * keeps the loop from sleeping while the queue is not empty, and its
 * callback runs actors in turn, at most BATCH messages each, so one busy
 * actor cannot starve the others or the loop's I/O. A local ask and its
 * reply never leave the loop thread: no thread hop. Loop thread. */
#include "runtime.h"

#define BATCH        64   /* messages per actor per turn on the run queue */
#define DISPATCH_MAX 4096 /* messages per idle callback, then let I/O in */

void wf__dispatch(wf_node *n)
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
    wf__dispatch(n);
    if (n->runq_head == NULL && n->idle_on) {
        uv_idle_stop(&n->idle);
        n->idle_on = false;
    }
}

void wf__dispatch_wake(wf_node *n)
{
    uv_idle_start(&n->idle, on_idle);
    n->idle_on = true;
}
