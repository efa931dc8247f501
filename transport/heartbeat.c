/* Heartbeats: a silent peer told from a quiet one (weft/transport.h,
 * "Failure detection"). One timer per transport runs every heartbeat ms
 * and walks the connections: one that has sent nothing for heartbeat ms
 * sends a TICK; one from which nothing has arrived for peer_timeout ms is
 * closed, which takes its peer down (peer.c) and has its dialer dial again;
 * one still in its handshake after peer_timeout ms is refused.
 *
 * Why the stall check: libuv runs expired timers before it polls, so after
 * this loop was stuck (a long handler, a machine under load), the frames
 * that arrived meanwhile are still waiting in the hand-over queue when this
 * timer runs, and every peer would look silent. A run that comes later
 * than half of peer_timeout judges nobody and starts the count again.
 * Loop thread. */
#include <weft/log.h>

#include "transport_private.h"

/* Refusals held back by the rate limit, once their interval is over. */
static void emit_held(void *arg, const char *key, uint64_t n, uint64_t span_ms)
{
    wf_transport *t = arg;
    wf_log(WF_LOG_WARN, "node %s: %llu more like the last (%s) in the last %llu s",
           wf_node_name(t->node), (unsigned long long)n, key, (unsigned long long)(span_ms / 1000));
}

static void on_tick(uv_timer_t *h)
{
    wf_transport *t = h->data;
    uint64_t now = uv_now(wf_node_loop(t->node));
    wf__ratelog_flush(&t->refusals, now, emit_held, t);
    bool stalled = now - t->last_tick > t->peer_timeout / 2;
    t->last_tick = now;
    for (struct conn *c = t->conns; c != NULL; c = c->next) {
        if (c->closing)
            continue;
        if (c->doomed != NULL) {
            wf_log(WF_LOG_WARN, "node %s: connection %s %s closed: %s", wf_node_name(t->node),
                   c->dialer != NULL ? "to" : "from", c->addr, c->doomed);
            wf__conn_close(c, c->doomed);
            continue;
        }
        if (stalled) {
            c->born = c->last_rx = now;
            continue;
        }
        if (!c->authed) {
            if (now - c->born >= t->peer_timeout)
                wf__handshake_reject(c, "no handshake within peer_timeout_ms");
            continue;
        }
        if (now - c->last_rx >= t->peer_timeout) {
            t->stats.peers_silent++;
            wf_log(WF_LOG_WARN, "node %s: peer %s sent nothing for %llu ms: taken down",
                   wf_node_name(t->node), c->name, (unsigned long long)(now - c->last_rx));
            wf__conn_close(c, "silent for peer_timeout_ms");
            continue;
        }
        if (now - c->last_tx >= t->heartbeat)
            wf__conn_send(c, &(wf_wire_frame){.kind = WF_WIRE_TICK}, NULL);
    }
}

void wf__heartbeat_start(wf_transport *t)
{
    t->last_tick = uv_now(wf_node_loop(t->node));
    uv_timer_start(&t->tick_timer, on_tick, t->heartbeat, t->heartbeat);
    uv_unref((uv_handle_t *)&t->tick_timer); /* never keeps a loop alive by itself */
}
