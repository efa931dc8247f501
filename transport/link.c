/* The runtime's side of the transport (weft/link.h): the runtime's
 * messages out as frames, and frames in as deliveries and answers. Loop
 * thread. */
#include <string.h>

#include <weft/link.h>
#include <weft/log.h>

#include "transport_private.h"

/* ---- frames in ---- */

/* A frame on c, authenticated, past the handshake. */
void wf__link_frame_in(struct conn *c, const wf_wire_frame *f)
{
    wf_transport *t = c->t;
    wf_node *n = t->node;
    switch (f->kind) {
    case WF_WIRE_TELL:
    case WF_WIRE_ASK: {
        wf_msg *m = wf_msg_new(f->type, f->payload, f->payload_len);
        if (m == NULL) {
            if (f->kind == WF_WIRE_ASK) {
                wf_failure *fl = wf_failure_new(WF_ENOMEM, "no memory for a request");
                wf_link_out o = {
                    .kind = WF_LINK_FAIL, .peer = c->peer, .corr = f->corr, .failure = fl};
                wf__link_send(t, &o);
                wf_failure_release(fl);
            }
            return;
        }
        /* A sampled trace comes with its ids; an unsampled one only says
         * so, and stays unsampled here. */
        wf_trace_ctx tc = {.flags = 0};
        if ((f->trace_flags & WF_TRACE_SAMPLED) && f->span_id != 0) {
            memcpy(tc.trace_id, f->trace_id, 16);
            tc.span_id = f->span_id;
            tc.parent_id = f->parent_span_id;
            tc.flags = WF_TRACE_VALID | WF_TRACE_SAMPLED;
        } else if (f->trace_flags & WF_TRACE_VALID) {
            tc.flags = WF_TRACE_VALID;
        }
        wf_link_deliver(n, c->peer, f->kind == WF_WIRE_ASK ? WF_LINK_ASK : WF_LINK_TELL, f->corr,
                        f->from, f->to, f->name_len ? f->name : NULL, f->name_len, &tc,
                        f->budget_ms, m);
        break;
    }
    case WF_WIRE_TICK:
        break; /* its arrival was the news (heartbeat.c) */
    case WF_WIRE_CANCEL:
        wf_link_cancel(n, c->peer, f->corr, f->to, f->name_len ? f->name : NULL, f->name_len);
        break;
    case WF_WIRE_MONITOR:
        wf_link_monitor(n, c->peer, f->corr, f->to, f->name_len ? f->name : NULL, f->name_len);
        break;
    case WF_WIRE_DEMONITOR:
        wf_link_demonitor(n, c->peer, f->corr, f->to, f->name_len ? f->name : NULL, f->name_len);
        break;
    case WF_WIRE_DOWN: {
        wf_failure *fl = NULL;
        if (f->payload_len != 0) {
            const char *why = NULL;
            fl = wf_wire_get_failure(f->payload, f->payload_len, &why);
            if (fl == NULL) {
                t->stats.rejected++;
                wf_log(WF_LOG_WARN, "node %s: bad down reason from %s: %s", wf_node_name(n),
                       c->name, why);
                fl = wf_failure_new(WF_EPROTO, "peer %s sent a malformed down reason (%s)", c->name,
                                    why);
            }
        }
        wf_link_down(n, c->peer, f->corr, fl);
        break;
    }
    case WF_WIRE_REPLY: {
        wf_msg *m = wf_msg_new(f->type, f->payload, f->payload_len);
        wf_link_answer(n, c->peer, f->corr,
                       m ? wf_result_msg(m) : WF_FAIL(WF_ENOMEM, "no memory for a reply"));
        break;
    }
    case WF_WIRE_FAIL: {
        const char *why = NULL;
        wf_failure *fl = wf_wire_get_failure(f->payload, f->payload_len, &why);
        if (fl == NULL) {
            t->stats.rejected++;
            wf_log(WF_LOG_WARN, "node %s: bad failure from %s: %s", wf_node_name(n), c->name, why);
            /* The ask still gets its one outcome. */
            fl = wf_failure_new(WF_EPROTO, "peer %s sent a malformed failure (%s)", c->name, why);
        }
        wf_link_answer(n, c->peer, f->corr, wf_result_failure(fl));
        break;
    }
    default:
        t->stats.rejected++;
        wf_log(WF_LOG_WARN, "node %s: unexpected handshake frame from %s", wf_node_name(n),
               c->name);
    }
}

/* ---- frames out ---- */

static void fill_msg(const void *src, unsigned char *dst)
{
    wf_msg *m = (wf_msg *)src;
    memcpy(dst, wf_msg_body(m), wf_msg_len(m));
}

static void fill_failure(const void *src, unsigned char *dst)
{
    wf_wire_put_failure(src, dst);
}

int wf__link_send(void *ctx, const wf_link_out *o)
{
    wf_transport *t = ctx;
    if (o->peer == 0 || o->peer > t->npeers)
        return WF_ENODEDOWN;
    struct peer *pe = &t->peers[o->peer - 1];
    if (pe->conn == NULL && (!pe->expected || pe->unreachable))
        return WF_ENODEDOWN;
    wf_wire_frame f = {.kind = (uint8_t)o->kind,
                       .corr = o->corr,
                       .from = o->from,
                       .to = o->to,
                       .budget_ms = o->kind == WF_LINK_ASK ? o->budget_ms : 0};
    if (o->tc != NULL && (o->tc->flags & WF_TRACE_SAMPLED)) {
        memcpy(f.trace_id, o->tc->trace_id, 16);
        f.span_id = o->tc->span_id;
        f.parent_span_id = o->tc->parent_id;
    }
    if (o->tc != NULL)
        f.trace_flags = o->tc->flags & (WF_TRACE_SAMPLED | WF_TRACE_VALID);
    if (o->name != NULL) {
        f.name = o->name;
        f.name_len = strlen(o->name);
    }
    struct out *out;
    if (o->kind == WF_LINK_CANCEL || o->kind == WF_LINK_MONITOR || o->kind == WF_LINK_DEMONITOR ||
        (o->kind == WF_LINK_DOWN && o->failure == NULL)) {
        out = wf__out_new(&f, NULL, NULL);
    } else if (o->kind == WF_LINK_FAIL || o->kind == WF_LINK_DOWN) {
        f.payload_len = wf_wire_failure_size(o->failure);
        out = wf__out_new(&f, o->failure, fill_failure);
    } else {
        f.type = wf_msg_type(o->msg);
        f.payload_len = wf_msg_len(o->msg);
        if (f.payload_len > t->max_payload)
            return WF_EINVAL;
        out = wf__out_new(&f, o->msg, fill_msg);
    }
    if (out == NULL && o->kind == WF_LINK_REPLY) {
        /* The runtime does not retry a reply: without this the asker would
         * wait for its timeout. A failure is smaller; try that instead. */
        wf_failure *fl = wf_failure_new(WF_ENOMEM, "node %s had no memory to send the reply",
                                        wf_node_name(t->node));
        if (fl != NULL) {
            wf_link_out fo = *o;
            fo.kind = WF_LINK_FAIL;
            fo.msg = NULL;
            fo.failure = fl;
            wf__link_send(t, &fo);
            wf_failure_release(fl);
        }
    }
    int rv = out == NULL        ? WF_ENOMEM
             : pe->conn != NULL ? wf__conn_queue(pe->conn, out)
                                : wf__peer_park(t, o->peer, out);
    bool watch =
        o->kind == WF_LINK_MONITOR || o->kind == WF_LINK_DEMONITOR || o->kind == WF_LINK_DOWN;
    /* A watch's frame lost on a link that stays up would leave a watcher
     * waiting for a Down that never comes: the link goes down instead (at
     * the next tick, not inside the runtime's call), which ends every
     * watch across it on both sides, with node down. */
    if (rv != 0 && watch && pe->conn != NULL && pe->conn->doomed == NULL)
        pe->conn->doomed = "a monitor's frame could not be queued";
    return rv;
}

static uint16_t link_peer_of(void *ctx, const char *node_name)
{
    wf_transport *t = ctx;
    uint16_t p = wf__peer_by_name(t, node_name);
    /* An expected peer has its number before it connects: what is sent to
     * it waits for it (peer.c). */
    return p != 0 && (t->peers[p - 1].conn != NULL || t->peers[p - 1].expected) ? p : 0;
}

static const char *link_peer_name(void *ctx, uint16_t peer)
{
    wf_transport *t = ctx;
    return peer >= 1 && peer <= t->npeers ? t->peers[peer - 1].name : NULL;
}

const wf_link_ops wf__link_ops = {wf__link_send, link_peer_of, link_peer_name, wf__transport_close};
