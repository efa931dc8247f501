/* The transport's side of a node (weft/link.h): remote addresses, sending
 * through the link, and what the link delivers: messages, answers to our
 * asks, peers coming and going. Loop thread. */
#include <stdio.h>
#include <string.h>

#include <weft/alloc.h>

#include "runtime.h"

/* A local actor monitoring a remote one, under a reference of this node's
 * that the target's node sends back in its DOWN. */
struct rwatch {
    wf_pid watcher, target;
    uint64_t ref;
};

/* An actor on another node watching a local one. */
struct rwatcher {
    uint16_t peer;
    uint64_t ref;
};

int wf_node_set_link(wf_node *n, const wf_link_ops *ops, void *ctx)
{
    WF__ON_LOOP_OR_BEFORE(n, "wf_node_set_link");
    if (n->link != NULL)
        return WF_EINVAL;
    n->link = ops;
    n->link_ctx = ctx;
    return 0;
}

static const char *remote_name(wf_node *n, wf_pid p)
{
    if (!(p.id & WF__PID_NAME_BIT))
        return NULL;
    uint32_t i = (uint32_t)p.id;
    return i >= 1 && i <= n->nrnames ? n->rnames[i - 1] : NULL;
}

const char *wf__remote_name(wf_node *n, wf_pid p, uint32_t *index)
{
    if (index != NULL)
        *index = (uint32_t)p.id;
    return remote_name(n, p);
}

const char *wf__peer_name(wf_node *n, uint16_t peer)
{
    return n->link ? n->link->peer_name(n->link_ctx, peer) : NULL;
}

/* The id or name a frame to remote pid p carries. */
static void remote_target(wf_node *n, wf_pid p, wf_link_out *o)
{
    o->peer = wf_pid_peer(p);
    o->to = (p.id & WF__PID_NAME_BIT) ? 0 : p.id & ((1ull << 48) - 1);
    o->name = remote_name(n, p);
}

int wf__send_remote(wf_node *n, int kind, wf_pid to, uint64_t corr, wf_msg *m)
{
    if (n->link == NULL)
        return WF_ENOSUCHACTOR;
    /* Clocks differ between hosts: the deadline goes as the time left. */
    uint32_t budget = 0;
    if (kind == WF_LINK_ASK && m->deadline != 0) {
        uint64_t now = wf__now_ms(n);
        uint64_t left = m->deadline > now ? m->deadline - now : 1;
        budget = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
    }
    wf_link_out o = {.kind = kind,
                     .budget_ms = budget,
                     .corr = corr,
                     .from = m->from.id,
                     .msg = m,
                     .tc = &m->tc};
    remote_target(n, to, &o);
    /* Stamped before it goes: the receiver may record its arrival before
     * this thread runs again, and a send must not show after its receipt. */
    bool traced = wf__traced(n, &m->tc);
    uint64_t t = traced ? uv_hrtime() : 0;
    int rv = n->link->send(n->link_ctx, &o);
    if (rv == 0 && traced)
        wf__trace_msg_at(n, TR_SEND, m->from, to, m, 0, t);
    return rv;
}

void wf__send_cancel(wf_node *n, wf_pid to, uint64_t corr)
{
    if (n->link == NULL)
        return;
    wf_link_out o = {.kind = WF_LINK_CANCEL, .corr = corr};
    remote_target(n, to, &o);
    n->link->send(n->link_ctx, &o); /* a peer that is gone has nothing to stop */
}

/* The local actor a frame names: by name, or by id. */
static struct actor *addressed(wf_node *n, uint64_t to, const char *name, size_t name_len,
                               char buf[WF_NAME_MAX + 1])
{
    if (name != NULL && name_len <= WF_NAME_MAX) {
        memcpy(buf, name, name_len);
        buf[name_len] = '\0';
        return wf__node_actor(n, wf_lookup(n, buf));
    }
    return name == NULL ? wf__node_actor(n, (wf_pid){to}) : NULL;
}

void wf_link_cancel(wf_node *n, uint16_t peer, uint64_t corr, uint64_t to, const char *name,
                    size_t name_len)
{
    WF__ON_LOOP(n, "wf_link_cancel");
    char buf[WF_NAME_MAX + 1];
    struct actor *a = addressed(n, to, name, name_len, buf);
    if (a != NULL && !a->dead && peer != 0)
        wf__request_cancel(n, a, peer, corr);
}

void wf__send_answer(wf_node *n, uint16_t peer, uint64_t corr, const wf_trace_ctx *tc, wf_result r)
{
    if (n->link != NULL) {
        wf_link_out o = {.peer = peer, .corr = corr, .tc = tc};
        if (wf_result_is_msg(r)) {
            o.kind = WF_LINK_REPLY;
            o.msg = r.u.ptr;
        } else if (r.kind == WF_RESULT_FAILURE) {
            o.kind = WF_LINK_FAIL;
            o.failure = r.u.failure;
        } else {
            o.kind = WF_LINK_FAIL;
            o.failure = wf_failure_new(WF_EINTERNAL, "reply is not a message");
        }
        if (n->link->send(n->link_ctx, &o) == 0)
            n->stats.replies++;
        if (r.kind != WF_RESULT_FAILURE && !wf_result_is_msg(r))
            wf_failure_release((wf_failure *)o.failure);
    }
    wf_result_free(r);
}

wf_pid wf_resolve(wf_node *n, const char *address)
{
    WF__ON_LOOP(n, "wf_resolve");
    const char *at = strchr(address, '@');
    if (at == NULL || strcmp(at + 1, n->name) == 0) {
        if (at == NULL)
            return wf_lookup(n, address);
        char local[WF_NAME_MAX + 1];
        size_t len = (size_t)(at - address);
        if (len > WF_NAME_MAX)
            return (wf_pid){0};
        memcpy(local, address, len);
        local[len] = '\0';
        return wf_lookup(n, local);
    }
    uint16_t peer = n->link ? n->link->peer_of(n->link_ctx, at + 1) : 0;
    size_t len = (size_t)(at - address);
    if (peer == 0 || len == 0 || len > WF_NAME_MAX)
        return (wf_pid){0};
    uint32_t i = 0;
    while (i < n->nrnames && (strlen(n->rnames[i]) != len || memcmp(n->rnames[i], address, len)))
        i++;
    if (i == n->nrnames) {
        char **r = wf_realloc(n->rnames, (n->nrnames + 1) * sizeof *r);
        if (r == NULL)
            return (wf_pid){0};
        n->rnames = r;
        if ((r[i] = wf_malloc(len + 1)) == NULL)
            return (wf_pid){0};
        memcpy(r[i], address, len);
        r[i][len] = '\0';
        n->nrnames++;
    }
    return (wf_pid){((uint64_t)peer << 48) | WF__PID_NAME_BIT | (i + 1)};
}

void wf_link_deliver(wf_node *n, uint16_t peer, int kind, uint64_t corr, uint64_t from, uint64_t to,
                     const char *name, size_t name_len, const wf_trace_ctx *tc, uint32_t budget_ms,
                     wf_msg *m)
{
    WF__ON_LOOP(n, "wf_link_deliver");
    m->tc = *tc;
    char buf[WF_NAME_MAX + 1];
    struct actor *a = addressed(n, to, name, name_len, buf);
    m->from = (wf_pid){from ? ((uint64_t)peer << 48) | (from & (WF__PID_NAME_BIT - 1)) : 0};
    int rv = n->shutting_down             ? WF_ESHUTDOWN
             : a == NULL || a->dead       ? WF_ENOSUCHACTOR
             : a->mb_count >= a->mb_limit ? WF_EOVERLOADED
                                          : 0;
    if (rv != 0) {
        n->stats.dropped++;
        if (kind == WF_LINK_ASK)
            wf__answer(n, (wf_pid){0}, peer, corr, m->type, &m->tc,
                       WF_FAIL(rv, "%s: %s@%s (message type %u)", wf_strerror(rv),
                               name ? buf : "(actor id)", n->name, m->type));
        wf_msg_free(m);
        return;
    }
    m->kind = kind == WF_LINK_ASK ? K_ASK : K_TELL;
    m->corr = corr;
    m->peer = kind == WF_LINK_ASK ? peer : 0;
    m->deadline = kind == WF_LINK_ASK && budget_ms != 0 ? wf__now_ms(n) + budget_ms : 0;
    if (kind == WF_LINK_ASK)
        n->stats.asks++;
    else
        n->stats.tells++;
    wf__enqueue(a, m, false);
    if (wf__traced(n, &m->tc))
        wf__trace_msg(n, TR_RECV, a->pid, m->from, m, a->mb_count + 1);
}

void wf_link_answer(wf_node *n, uint16_t peer, uint64_t corr, wf_result r)
{
    WF__ON_LOOP(n, "wf_link_answer");
    if (r.kind == WF_RESULT_FAILURE) {
        /* The hop back across the wire is part of the trace. */
        const char *from = n->link ? n->link->peer_name(n->link_ctx, peer) : NULL;
        char func[96];
        snprintf(func, sizeof func, "reply from node %s", from ? from : "?");
        wf_failure_add_frame(r.u.failure, &(wf_frame){.func = func, .node = n->name});
    }
    wf__reply(n, corr, r);
}

int wf__monitor_remote(wf_node *n, wf_pid watcher, wf_pid target)
{
    /* Room first: a watch sent must be one the DOWN can find. */
    struct rwatch *w = wf_realloc(n->rwatch, (n->nrwatch + 1) * sizeof *w);
    if (w == NULL)
        return WF_ENOMEM;
    n->rwatch = w;
    uint64_t ref = ++n->last_mref;
    wf_link_out o = {.kind = WF_LINK_MONITOR, .corr = ref, .from = watcher.id};
    remote_target(n, target, &o);
    int rv = n->link != NULL ? n->link->send(n->link_ctx, &o) : WF_ENODEDOWN;
    if (rv == WF_ENOMEM)
        return rv;
    if (rv != 0) {
        /* As for a local actor that does not exist: Down at once. (A watch
         * that could not be queued takes its link down: node down either
         * way.) */
        const char *peer = wf__peer_name(n, o.peer);
        wf_failure *f = wf_failure_new(WF_ENODEDOWN, "the watch could not be sent to node %s (%s)",
                                       peer ? peer : "?", wf_strerror(rv));
        wf__send_down(n, watcher, target, f);
        wf_failure_release(f);
        return 0;
    }
    w[n->nrwatch++] = (struct rwatch){watcher, target, ref};
    return 0;
}

static void send_remote_down(wf_node *n, uint16_t peer, uint64_t ref, const wf_failure *reason)
{
    wf_link_out o = {.kind = WF_LINK_DOWN, .peer = peer, .corr = ref, .failure = reason};
    n->link->send(n->link_ctx, &o); /* a watcher's node that is gone has ended its watch */
}

void wf__link_actor_stopped(wf_node *n, struct actor *a, const wf_failure *reason)
{
    for (uint32_t i = 0; i < a->nrwatchers && n->link != NULL; i++)
        send_remote_down(n, a->rwatchers[i].peer, a->rwatchers[i].ref, reason);
    wf_free(a->rwatchers);
    a->rwatchers = NULL;
    a->nrwatchers = 0;
    /* Its own watches of remote actors: their nodes can forget them. */
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n->nrwatch; i++) {
        struct rwatch *rw = &n->rwatch[i];
        if (rw->watcher.id != a->pid.id) {
            n->rwatch[kept++] = *rw;
            continue;
        }
        if (n->link != NULL) {
            wf_link_out o = {.kind = WF_LINK_DEMONITOR, .corr = rw->ref};
            remote_target(n, rw->target, &o);
            n->link->send(n->link_ctx, &o);
        }
    }
    n->nrwatch = kept;
}

void wf_link_monitor(wf_node *n, uint16_t peer, uint64_t ref, uint64_t to, const char *name,
                     size_t name_len)
{
    WF__ON_LOOP(n, "wf_link_monitor");
    char buf[WF_NAME_MAX + 1];
    struct actor *a = addressed(n, to, name, name_len, buf);
    int rv = n->shutting_down ? WF_ESHUTDOWN : a == NULL || a->dead ? WF_ENOSUCHACTOR : 0;
    if (rv == 0) {
        struct rwatcher *w = wf_realloc(a->rwatchers, (a->nrwatchers + 1) * sizeof *w);
        if (w != NULL) {
            a->rwatchers = w;
            w[a->nrwatchers++] = (struct rwatcher){peer, ref};
            return;
        }
        rv = WF_ENOMEM;
    }
    wf_failure *f;
    if (rv == WF_ENOMEM)
        f = wf_failure_new(rv, "node %s had no memory to watch %s", n->name,
                           name ? buf : "an actor");
    else if (rv == WF_ESHUTDOWN)
        f = wf_failure_new(rv, "node %s is shutting down", n->name);
    else
        f = wf_failure_new(rv, "monitored actor %s@%s does not exist", name ? buf : "(actor id)",
                           n->name);
    send_remote_down(n, peer, ref, f);
    wf_failure_release(f);
}

void wf_link_demonitor(wf_node *n, uint16_t peer, uint64_t ref, uint64_t to, const char *name,
                       size_t name_len)
{
    WF__ON_LOOP(n, "wf_link_demonitor");
    char buf[WF_NAME_MAX + 1];
    struct actor *a = addressed(n, to, name, name_len, buf);
    if (a == NULL)
        return;
    for (uint32_t i = 0; i < a->nrwatchers; i++) {
        if (a->rwatchers[i].peer == peer && a->rwatchers[i].ref == ref) {
            a->rwatchers[i] = a->rwatchers[--a->nrwatchers];
            return;
        }
    }
}

void wf_link_down(wf_node *n, uint16_t peer, uint64_t ref, wf_failure *reason)
{
    WF__ON_LOOP(n, "wf_link_down");
    for (uint32_t i = 0; i < n->nrwatch; i++) {
        struct rwatch rw = n->rwatch[i];
        if (rw.ref != ref || wf_pid_peer(rw.target) != peer)
            continue;
        memmove(&n->rwatch[i], &n->rwatch[i + 1], (n->nrwatch - i - 1) * sizeof rw);
        n->nrwatch--;
        if (reason != NULL) {
            /* The hop back across the wire is part of the trace. */
            const char *from = wf__peer_name(n, peer);
            char func[96];
            snprintf(func, sizeof func, "down from node %s", from ? from : "?");
            wf_failure_add_frame(reason, &(wf_frame){.func = func, .node = n->name});
        }
        wf__send_down(n, rw.watcher, rw.target, reason);
        break;
    }
    wf_failure_release(reason);
}

/* The watches peer held of a's: over with the link. */
static void forget_watchers(struct actor *a, void *arg)
{
    uint16_t peer = *(uint16_t *)arg;
    uint32_t kept = 0;
    for (uint32_t i = 0; i < a->nrwatchers; i++)
        if (a->rwatchers[i].peer != peer)
            a->rwatchers[kept++] = a->rwatchers[i];
    a->nrwatchers = kept;
}

void wf_link_peer_up(wf_node *n, uint16_t peer)
{
    WF__ON_LOOP(n, "wf_link_peer_up");
    wf__trace_node(n, peer, true, NULL);
}

void wf_link_peer_down(wf_node *n, uint16_t peer, const char *why)
{
    WF__ON_LOOP(n, "wf_link_peer_down");
    const char *name = n->link ? n->link->peer_name(n->link_ctx, peer) : NULL;
    wf__trace_node(n, peer, false, why);
    /* The watches first: a callback of a failed ask below may watch an
     * actor there again, and that new watch must outlive this. */
    wf_failure *f = wf_failure_new(WF_ENODEDOWN, "node %s went down (%s)", name ? name : "?", why);
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n->nrwatch; i++) {
        if (wf_pid_peer(n->rwatch[i].target) == peer)
            wf__send_down(n, n->rwatch[i].watcher, n->rwatch[i].target, f);
        else
            n->rwatch[kept++] = n->rwatch[i];
    }
    n->nrwatch = kept;
    wf_failure_release(f);
    wf__each_actor(n, forget_watchers, &peer);
    wf__fail_asks_to(n, peer, name, why);
}

void wf__link_fini(wf_node *n)
{
    for (uint32_t i = 0; i < n->nrnames; i++)
        wf_free(n->rnames[i]);
    wf_free(n->rnames);
    wf_free(n->rwatch);
}
