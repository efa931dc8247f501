/* Peers: the nodes this transport knows by name, numbered from 1 in the
 * order it learnt them (the numbers are in remote pids, so they are never
 * reused), and their up and down. Loop thread. */
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

/* c has passed the handshake: its peer is up, if it was not. */
void wf__peer_up(struct conn *c)
{
    wf_transport *t = c->t;
    uint16_t p = wf__peer_by_name(t, c->name);
    if (p == 0 && wf__peer_add(t, c->name, &p) != 0) {
        wf__handshake_reject(c, "no room for another peer");
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
        t->stats.peers_up++;
        wf_log(WF_LOG_INFO, "node %s: peer %s up", wf_node_name(t->node), pe->name);
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
