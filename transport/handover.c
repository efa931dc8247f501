/* The hand-over from nng's threads to the loop: nng's threads queue a
 * completion (struct item) under t->lock and wake the loop with
 * uv_async_send, which coalesces wake-ups; the loop then takes the whole
 * queue at once and handles each completion on its own thread.
 *
 * Every completion comes through here except a successful write, which
 * nng's thread finishes itself (conn.c, on_tx). */
#include <weft/log.h>

#include "transport_private.h"

/* Any thread (nng's, usually). After t is closed nothing is queued any
 * more; a stream that came with the completion is freed here. */
void wf__handover_push(wf_transport *t, struct item *it)
{
    uv_mutex_lock(&t->lock);
    if (t->closed) {
        uv_mutex_unlock(&t->lock);
        if (it->stream != NULL)
            nng_stream_free(it->stream);
        return;
    }
    it->next = NULL;
    *(t->tail ? &t->tail->next : &t->head) = it;
    t->tail = it;
    uv_mutex_unlock(&t->lock);
    uv_async_send(&t->async);
}

static void on_accept(wf_transport *t, struct listener *l, int rv, nng_stream *s)
{
    if (rv == 0) {
        wf__conn_new(t, s, NULL);
        nng_stream_listener_accept(l->l, l->aio);
    } else if (rv != NNG_ECLOSED) {
        wf_log(WF_LOG_WARN, "node %s: accept failed: %s", wf_node_name(t->node), nng_strerror(rv));
        nng_stream_listener_accept(l->l, l->aio);
    }
}

static void on_item(wf_transport *t, struct item *it)
{
    switch (it->kind) {
    case I_ACCEPT:
        on_accept(t, it->listener, it->rv, it->stream);
        break;
    case I_DIALED:
        wf__dialer_on_dialed(it->dialer, it->rv, it->stream);
        break;
    case I_READ:
        wf__conn_on_read(it->conn, it->rv, it->count);
        break;
    case I_WRITTEN:
        wf__conn_on_write_failed(it->conn, it->rv);
        break;
    }
}

/* Loop thread. */
void wf__handover_run(uv_async_t *h)
{
    wf_transport *t = h->data;
    uv_mutex_lock(&t->lock);
    struct item *it = t->head;
    t->head = t->tail = NULL;
    uv_mutex_unlock(&t->lock);
    while (it != NULL) {
        /* Read next first: handling an item may start its operation again,
         * and nng's thread may then queue it anew. */
        struct item *next = it->next;
        on_item(t, it);
        it = next;
    }
}
