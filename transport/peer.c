/* Peers: the nodes this transport knows by name, numbered from 1 in the
 * order it learnt them (the numbers are in remote pids, so they are never
 * reused), and their up and down. A peer named up front (wf_transport_peer)
 * is "expected": frames to it wait, parked here, while it is not connected,
 * and go out first when it is; one timer for the whole transport drops a
 * peer's parked frames if it does not come in time. Loop thread. */
#include <stdio.h>
#include <string.h>

#include <weft/alloc.h>
#include <weft/link.h>
#include <weft/log.h>

#include "transport_private.h"

uint16_t wf__peer_by_name(const wf_transport *t, const char *name)
{
    for (uint16_t i = 0; i < t->npeers; i++) {
        if (strcmp(t->peers[i].name, name) == 0)
            return i + 1;
    }
    return 0;
}

/* Adds a peer called name (copied), down; its number in *out. */
int wf__peer_add(wf_transport *t, const char *name, uint16_t *out)
{
    struct peer *np =
        t->npeers < UINT16_MAX ? wf_realloc(t->peers, (t->npeers + 1) * sizeof *np) : NULL;
    if (np == NULL)
        return WF_ENOMEM;
    t->peers = np;
    char *copy = wf_strdup(name);
    if (copy == NULL)
        return WF_ENOMEM;
    np[t->npeers] = (struct peer){.name = copy};
    *out = ++t->npeers;
    return 0;
}

/* Arms t's park timer for the earliest deadline of any parked frames, or
 * stops it if none wait. */
static void park_arm(wf_transport *t)
{
    uint64_t first = UINT64_MAX;
    for (uint16_t i = 0; i < t->npeers; i++) {
        if (t->peers[i].parked != NULL && t->peers[i].park_deadline < first)
            first = t->peers[i].park_deadline;
    }
    if (first == UINT64_MAX) {
        uv_timer_stop(&t->park_timer);
        return;
    }
    uint64_t now = uv_now(wf_node_loop(t->node));
    uv_timer_start(&t->park_timer, wf__peer_park_expired, first > now ? first - now : 0, 0);
}

/* Frame o (taken) waits for expected peer p to connect. */
int wf__peer_park(wf_transport *t, uint16_t p, struct out *o)
{
    struct peer *pe = &t->peers[p - 1];
    if (pe->parked_bytes + o->len > QUEUE_LIMIT) {
        wf_free(o);
        t->stats.send_failures++;
        return WF_EOVERLOADED;
    }
    bool first = pe->parked == NULL;
    *(first ? &pe->parked : &pe->parked_tail->next) = o;
    pe->parked_tail = o;
    pe->parked_bytes += o->len;
    if (first) {
        pe->park_deadline = uv_now(wf_node_loop(t->node)) + t->connect_wait;
        park_arm(t);
    }
    /* Counted in frames_out when it leaves for the peer (wf__peer_up), or
     * in send_failures if it never does: not both. */
    return 0;
}

/* Drops the frames waiting for pe, counted as send failures; returns how
 * many. */
static size_t drop_parked(wf_transport *t, struct peer *pe)
{
    size_t n = 0;
    for (struct out *o = pe->parked; o != NULL; o = o->next)
        n++;
    wf__out_free_all(pe->parked);
    pe->parked = pe->parked_tail = NULL;
    pe->parked_bytes = 0;
    t->stats.send_failures += n;
    return n;
}

/* t's park timer: peers whose frames waited in vain are down. */
void wf__peer_park_expired(uv_timer_t *h)
{
    wf_transport *t = h->data;
    uint64_t now = uv_now(wf_node_loop(t->node));
    for (uint16_t i = 0; i < t->npeers; i++) {
        struct peer *pe = &t->peers[i];
        if (pe->parked == NULL || pe->park_deadline > now)
            continue;
        size_t n = drop_parked(t, pe);
        char why[64];
        snprintf(why, sizeof why, "not connected within %u ms", (unsigned)t->connect_wait);
        wf_log(WF_LOG_WARN, "node %s: peer %s %s: %zu frame(s) dropped", wf_node_name(t->node),
               pe->name, why, n);
        /* Its asks fail now, each once. What that runs may send to it
         * again: those frames wait anew, with a new deadline. */
        wf_link_peer_down(t->node, i + 1, why);
    }
    park_arm(t);
}

/* A dial to expected peer p failed. A peer that was up and went down is
 * unreachable from here until it is back: what waits for it, and what is
 * sent to it meanwhile, fails now rather than at connect_wait (a dead host
 * should not hold requests for their whole deadline). A peer never seen
 * yet is still waited for: at start-up nodes come up in any order. */
void wf__peer_dial_failed(wf_transport *t, uint16_t p, const char *why)
{
    struct peer *pe = &t->peers[p - 1];
    if (pe->conn != NULL || !pe->was_up || pe->unreachable)
        return;
    pe->unreachable = true;
    size_t n = drop_parked(t, pe);
    park_arm(t);
    char text[160];
    snprintf(text, sizeof text, "cannot connect: %s", why);
    wf_log(WF_LOG_WARN, "node %s: peer %s %s: %zu frame(s) dropped, more fail until it is back",
           wf_node_name(t->node), pe->name, text, n);
    if (n > 0) /* their asks fail now; it is down already for the rest */
        wf_link_peer_down(t->node, p, text);
}

/* c has passed the handshake: its peer is up, if it was not. */
void wf__peer_up(struct conn *c)
{
    wf_transport *t = c->t;
    uint16_t p = wf__peer_by_name(t, c->name);
    if (p == 0 && wf__peer_add(t, c->name, &p) != 0) {
        wf__handshake_reject(c, "no room for another peer");
        return;
    }
    /* A peer named up front has one connection (one side dials, the file
     * says which): a second one while it is up is another process using
     * its name, which would take its traffic when the first one goes. (A
     * restarted node whose old connection is not yet known dead is turned
     * away until the heartbeat takes that one down.) Peers met by dialling
     * both ways keep a second connection standing by. */
    if (t->peers[p - 1].conn != NULL && t->peers[p - 1].expected) {
        char why[700];
        snprintf(why, sizeof why, "node %s is connected already (%s)", c->name,
                 t->peers[p - 1].conn->addr);
        wf__handshake_reject(c, why);
        return;
    }
    c->authed = true;
    c->peer = p;
    if (c->dialer != NULL)
        wf__dialer_connected(c->dialer);
    struct peer *pe = &t->peers[p - 1];
    if (pe->conn == NULL) {
        /* Frames to a peer go out on one connection, so they keep their
         * order; a second one (both sides dialled) stands by. */
        pe->conn = c;
        pe->was_up = true;
        pe->unreachable = false;
        t->stats.peers_up++;
        wf_log(WF_LOG_INFO, "node %s: peer %s up", wf_node_name(t->node), pe->name);
        if (pe->parked != NULL) {
            /* What waited for it goes first, in the order sent. */
            for (struct out *o = pe->parked; o != NULL; o = o->next)
                t->stats.frames_out++;
            wf__conn_queue_list(c, pe->parked, pe->parked_tail, pe->parked_bytes);
            pe->parked = pe->parked_tail = NULL;
            pe->parked_bytes = 0;
            park_arm(t);
        }
        wf_link_peer_up(t->node, p);
    }
}

/* c, authenticated, is closing: its peer goes down unless another of its
 * connections takes over. */
void wf__peer_conn_closed(struct conn *c, const char *why)
{
    wf_transport *t = c->t;
    struct peer *pe = &t->peers[c->peer - 1];
    if (pe->conn != c)
        return;
    pe->conn = NULL;
    for (struct conn *o = t->conns; o != NULL; o = o->next) {
        if (o != c && !o->closing && o->authed && o->peer == c->peer) {
            pe->conn = o;
            return;
        }
    }
    t->stats.peers_down++;
    wf_log(WF_LOG_INFO, "node %s: peer %s down (%s)", wf_node_name(t->node), pe->name, why);
    /* A peer this node does not dial comes back when it dials again; until
     * then, what is sent to it fails at once (a peer this node dials is
     * judged by its next dial: wf__peer_dial_failed). */
    bool dialled = false;
    for (struct dialer *d = t->dialers; d != NULL && !dialled; d = d->next)
        dialled = d->expect == c->peer;
    if (!dialled)
        pe->unreachable = true;
    if (!t->closed)
        wf_link_peer_down(t->node, c->peer, why);
}

void wf__peer_free_all(wf_transport *t)
{
    for (uint16_t i = 0; i < t->npeers; i++) {
        wf_free(t->peers[i].name);
        wf__out_free_all(t->peers[i].parked);
    }
    wf_free(t->peers);
    t->peers = NULL;
    t->npeers = 0;
}
