/* The handshake: before any other frame, each side of a new connection
 * proves it knows the cluster's secret (see weft/transport.h, Security).
 * Each side sends HELLO (its name and a fresh nonce) and answers the
 * other's with AUTH: HMAC-SHA256(secret, "weft-auth-2" | role | their nonce |
 * own nonce | own name), role being 'D' from the side that dialled and 'L'
 * from the side that accepted. Loop thread.
 *
 * The role is what stops a proof from being relayed. Without it ("weft-
 * auth-1"), someone without the secret could dial two nodes, hand the
 * first one's nonce to the second as its own HELLO, and pass the second's
 * answer to the first as a proof that it is the second node. Both nodes it
 * dialled answer as 'L', and a node that accepted wants 'D'. */
#include <string.h>

#include <mbedtls/md.h>

#include <weft/log.h>

#include "transport_private.h"

#define LABEL     "weft-auth-2"
#define LABEL_LEN (sizeof LABEL - 1)

/* The proof that a node named sender_name, in role ('D' dialled, 'L'
 * accepted), answers to the receiver's nonce on a connection where it sent
 * sender_nonce. */
static void proof(wf_transport *t, char role, const uint8_t *receiver_nonce,
                  const uint8_t *sender_nonce, const char *sender_name, uint8_t out[PROOF])
{
    unsigned char in[LABEL_LEN + 1 + 2 * NONCE + NAME_MAX_LEN];
    size_t n = strlen(sender_name), k = 0;
    memcpy(in, LABEL, LABEL_LEN);
    k += LABEL_LEN;
    in[k++] = (unsigned char)role;
    memcpy(in + k, receiver_nonce, NONCE);
    k += NONCE;
    memcpy(in + k, sender_nonce, NONCE);
    k += NONCE;
    memcpy(in + k, sender_name, n); /* last, so its length needs no prefix */
    k += n;
    mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), (const unsigned char *)t->secret,
                    strlen(t->secret), in, k, out);
}

/* This side's role on c, and the peer's. */
static char own_role(const struct conn *c)
{
    return c->dialer != NULL ? 'D' : 'L';
}

static char peer_role(const struct conn *c)
{
    return c->dialer != NULL ? 'L' : 'D';
}

/* Sends c's HELLO. Returns 0, or WF_ENOMEM when it could not be queued. */
int wf__handshake_start(struct conn *c)
{
    const char *name = wf_node_name(c->t->node);
    unsigned char payload[1 + NAME_MAX_LEN + NONCE];
    size_t n = strlen(name);
    payload[0] = (unsigned char)n;
    memcpy(payload + 1, name, n);
    memcpy(payload + 1 + n, c->nonce, NONCE);
    wf_wire_frame f = {.kind = WF_WIRE_HELLO, .payload_len = 1 + n + NONCE};
    return wf__conn_send(c, &f, payload);
}

/* Closes c for failing the handshake, and says so. */
void wf__handshake_reject(struct conn *c, const char *why)
{
    wf_transport *t = c->t;
    t->stats.auth_failures++;
    c->refused = true;
    char note[WF__RATELOG_NOTE_MAX];
    if (wf__conn_log_pass(c, "refused", why, note))
        wf_log(WF_LOG_WARN, "node %s: connection %s %s%s%s refused: %s%s", wf_node_name(t->node),
               c->dialer != NULL ? "to" : "from", c->addr,
               c->name[0] ? ", claiming to be node " : "", c->name, why, note);
    wf__conn_close(c, why);
}

/* A frame on c before c is authenticated. */
void wf__handshake_frame(struct conn *c, const wf_wire_frame *f)
{
    wf_transport *t = c->t;
    const unsigned char *p = f->payload;
    if (f->kind == WF_WIRE_HELLO && !c->hello) {
        size_t n = f->payload_len > 0 ? p[0] : 0;
        if (f->payload_len != 1 + n + NONCE || n == 0 || memchr(p + 1, '\0', n) != NULL) {
            wf__handshake_reject(c, "malformed HELLO");
            return;
        }
        memcpy(c->name, p + 1, n);
        c->name[n] = '\0';
        if (strcmp(c->name, wf_node_name(t->node)) == 0) {
            wf__handshake_reject(c, "peer uses this node's own name");
            return;
        }
        if (c->dialer != NULL && c->dialer->expect != 0 &&
            strcmp(c->name, t->peers[c->dialer->expect - 1].name) != 0) {
            wf__handshake_reject(c, "the node dialled is not the one named for its URL");
            return;
        }
        memcpy(c->theirs, p + 1 + n, NONCE);
        c->hello = true;
        uint8_t out[PROOF];
        proof(t, own_role(c), c->theirs, c->nonce, wf_node_name(t->node), out);
        wf_wire_frame a = {.kind = WF_WIRE_AUTH, .payload_len = PROOF};
        if (wf__conn_send(c, &a, out) != 0)
            wf__conn_close(c, "out of memory"); /* the peer would wait for our AUTH */
    } else if (f->kind == WF_WIRE_AUTH && c->hello && f->payload_len == PROOF) {
        uint8_t want[PROOF];
        proof(t, peer_role(c), c->nonce, c->theirs, c->name, want);
        /* Constant time: a timing difference would leak the proof. */
        unsigned char diff = 0;
        for (int i = 0; i < PROOF; i++)
            diff |= (unsigned char)(want[i] ^ p[i]);
        if (diff != 0)
            wf__handshake_reject(c, "wrong proof of the cluster secret");
        else
            wf__peer_up(c);
    } else {
        t->stats.rejected++;
        wf__handshake_reject(c, f->kind == WF_WIRE_HELLO || f->kind == WF_WIRE_AUTH
                                    ? "handshake out of order"
                                    : "frame before the handshake");
    }
}
