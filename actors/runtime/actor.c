/* Actors: spawning, delivering one message at a time, the exactly-one-reply
 * rule, stopping, monitors. Loop thread throughout, except where a blocking
 * handler's ctx is used on the pool (see offload.c). */
#include <stdio.h>
#include <string.h>

#include <weft/alloc.h>
#include <weft/log.h>

#include "runtime.h"

const char *wf__actor_label(struct actor *a)
{
    return a->name ? a->name : a->b->name ? a->b->name : "anonymous";
}

const wf_handler *wf__find_handler(const wf_behaviour *b, uint32_t type)
{
    for (size_t i = 0; i < b->nhandlers; i++) {
        if (b->handlers[i].type == type)
            return &b->handlers[i];
    }
    return NULL;
}

static void drop_mail(struct actor *a);

int wf_spawn(wf_node *n, const char *name, const wf_behaviour *b, void *arg, wf_pid *pid)
{
    WF__ON_LOOP_OR_BEFORE(n, "wf_spawn");
    if (wf__shutting_down(n))
        return WF_ESHUTDOWN;
    int rv = WF_ENOMEM;
    bool registered = false;
    struct actor *a = wf_malloc(sizeof *a + b->state_size);
    if (a == NULL)
        goto fail;
    memset(a, 0, sizeof *a + b->state_size);
    a->node = n;
    a->b = b;
    a->refs = 1; /* the registry's */
    a->mb_limit = b->mailbox_limit;
    if (a->mb_limit == 0)
        a->mb_limit = wf__default_mailbox_limit(n);
    if (name != NULL && (a->name = wf_strdup(name)) == NULL)
        goto fail;
    if ((rv = wf__registry_add(n, a, name)) != 0)
        goto fail;
    registered = true;
    if (b->init != NULL) {
        wf_ctx ctx = {.a = a};
        a->in_turn = true;
        rv = b->init(&ctx, arg);
        a->in_turn = false;
        if (rv != 0)
            goto fail;
    }
    wf__stats(n)->spawned++;
    wf__trace_actor(n, a, TR_ACTOR, NULL);
    if (pid != NULL)
        *pid = a->pid;
    wf__schedule(a); /* init may have sent itself mail */
    return 0;

fail:
    if (a != NULL) {
        a->dead = true;
        if (registered) {
            /* What init started: its asks fail (their callbacks see the
             * state still), the mail it sent itself is dropped. */
            a->in_turn = true;
            wf__fail_asks_of(n, a);
            drop_mail(a);
            a->in_turn = false;
            wf__registry_remove(n, a);
        }
        wf__actor_unref(a); /* the run queue may hold it a little longer */
    }
    return rv;
}

int wf_stop(wf_node *n, wf_pid pid)
{
    WF__ON_LOOP(n, "wf_stop");
    struct actor *a = wf__node_actor(n, pid);
    if (a == NULL || a->dead)
        return WF_ENOSUCHACTOR;
    wf__actor_stop(a, NULL);
    return 0;
}

size_t wf_mailbox_depth(wf_node *n, wf_pid pid)
{
    WF__ON_LOOP(n, "wf_mailbox_depth");
    struct actor *a = wf__node_actor(n, pid);
    return a != NULL && !a->dead ? a->mb_count : 0;
}

void wf__actor_unref(struct actor *a)
{
    if (--a->refs > 0)
        return;
    wf_free(a->watchers);
    wf_free(a->rwatchers);
    wf_free(a->name);
    wf_free(a);
}

/* ---- ctx ---- */

void *wf_ctx_state(wf_ctx *ctx)
{
    return ctx->a->state;
}

wf_node *wf_ctx_node(wf_ctx *ctx)
{
    return ctx->a->node;
}

wf_pid wf_ctx_self(wf_ctx *ctx)
{
    return ctx->a->pid;
}

const char *wf_ctx_name(wf_ctx *ctx)
{
    return ctx->a->name ? ctx->a->name : "";
}

wf_pid wf_ctx_sender(wf_ctx *ctx)
{
    return ctx->msg ? ctx->msg->from : (wf_pid){0};
}

void wf_ctx_stop(wf_ctx *ctx, wf_failure *reason)
{
    /* Applied when the handler is done (on the loop, for a pool handler). */
    if (ctx->stop_requested) {
        wf_failure_release(reason);
        return;
    }
    ctx->stop_requested = true;
    ctx->stop_reason = reason;
}

/* ---- replies ---- */

static const char *handler_name(const wf_handler *h)
{
    return h && h->name ? h->name : "?";
}

/* Adds the handler's frame (actor@node, message) to a failure's trace. */
static wf_failure *add_handler_frame(struct actor *a, const wf_handler *h, wf_failure *f)
{
    char func[96];
    snprintf(func, sizeof func, "handler %s", handler_name(h));
    return wf_failure_add_frame(
        f, &(wf_frame){.func = func, .actor = wf__actor_label(a), .node = wf_node_name(a->node)});
}

static void answer(struct request *req, wf_result r, const char *file, int line, const char *func)
{
    req->answered = true;
    req->file = file;
    req->line = line;
    req->func = func;
    if (req->on_pool) {
        /* Sent from the loop once the pool handler returns. */
        req->postponed = r;
        req->has_postponed = true;
        return;
    }
    wf__answer(req->node, req->self, req->peer, req->corr, req->h ? req->h->type : 0, &req->tc, r);
}

/* Answers req with r unless it was answered already: then r is dropped and
 * the double reply reported with both call sites. */
static int reply_once(struct request *req, wf_result r, const char *file, int line,
                      const char *func)
{
    if (!req->answered) {
        answer(req, r, file, line, func);
        return 0;
    }
    wf_result_free(r);
    wf__stats(req->node)->double_replies++;
    wf_log(WF_LOG_ERROR,
           "second reply to message '%s' rejected (it reaches no other request): first answered "
           "at %s:%d (%s), again at %s:%d (%s)",
           handler_name(req->h), req->file ? req->file : "?", req->line,
           req->func ? req->func : "?", file ? file : "?", line, func ? func : "?");
    return WF_EALREADY;
}

int wf_reply_at(wf_ctx *ctx, wf_result r, const char *file, int line, const char *func)
{
    if (ctx->req == NULL) {
        wf_result_free(r);
        return WF_ESTATE;
    }
    if (r.kind == WF_RESULT_FAILURE)
        add_handler_frame(ctx->a, ctx->req->h, r.u.failure);
    return reply_once(ctx->req, r, file, line, func);
}

/* Turns what a handler (or its deferred) gave into req's answer. */
static void settle(struct actor *a, struct request *req, wf_result r)
{
    const char *site = "(handler's result)";
    if (r.kind == WF_RESULT_FAILURE) {
        add_handler_frame(a, req->h, r.u.failure);
        reply_once(req, r, site, 0, handler_name(req->h));
    } else if (wf_result_is_msg(r)) {
        reply_once(req, r, site, 0, handler_name(req->h));
    } else {
        bool none = r.u.ptr == NULL && r.dtor == NULL;
        wf_result_free(r);
        if (!none) {
            reply_once(req,
                       wf_result_failure(add_handler_frame(
                           a, req->h,
                           wf_failure_new(WF_EINVAL,
                                          "handler '%s' of %s@%s returned a value that "
                                          "is not a message",
                                          handler_name(req->h), wf__actor_label(a),
                                          wf_node_name(a->node)))),
                       site, 0, handler_name(req->h));
        } else if (!req->answered) {
            answer(req,
                   WF_FAIL(WF_ENOREPLY, "actor %s@%s returned no reply to message '%s'",
                           wf__actor_label(a), wf_node_name(a->node), handler_name(req->h)),
                   site, 0, handler_name(req->h));
        }
    }
}

/* The step on a handler's deferred that answers its request. */
static wf_result request_settle(wf_result r, void *arg)
{
    struct request *hr = arg;
    wf_deferred *d = hr->d;
    hr->d = NULL;
    if (hr->actor == NULL) {
        /* The actor stopped and the asker was told so. */
        wf__stats(hr->node)->late_replies++;
        wf_result_free(r);
    } else {
        struct actor *a = hr->actor;
        *(hr->prev ? &hr->prev->next : &a->requests) = hr->next;
        if (hr->next)
            hr->next->prev = hr->prev;
        hr->actor = NULL;
        if (hr->cancelled)
            wf_result_free(r); /* its asker has gone: nobody to answer */
        else
            settle(a, hr, r);
    }
    wf_deferred_release(d); /* its run holds it still */
    return wf_result_none();
}

struct tell_watch {
    wf_node *node;
    wf_pid pid;
    const wf_handler *h;
};

/* A tell's deferred that fails crashes its actor. */
static wf_result tell_failed(wf_result r, void *arg)
{
    struct tell_watch *w = arg;
    struct actor *a = wf__node_actor(w->node, w->pid);
    if (a == NULL || a->dead) {
        wf_result_free(r);
    } else {
        wf__actor_stop(a, add_handler_frame(a, w->h, r.u.failure));
    }
    return wf_result_none();
}

void wf__actor_finish(struct actor *a, const wf_handler *h, wf_msg *m, struct request *req,
                      wf_result r)
{
    wf_node *n = a->node;
    if (r.kind == WF_RESULT_DEFERRED && r.u.deferred == NULL) {
        /* A handler returned the deferred of a call that had no memory to
         * make one (wf_ctx_ask, say): that is its failure. */
        r = WF_FAIL(WF_ENOMEM, "handler '%s' returned no deferred (memory short)", handler_name(h));
    }
    if (r.kind == WF_RESULT_DEFERRED) {
        wf_deferred *d = r.u.deferred;
        if (req != NULL) {
            struct request *hr = wf_malloc(sizeof *hr);
            if (hr == NULL) {
                wf_deferred_cancel(d);
                wf_deferred_release(d);
                reply_once(req, WF_FAIL(WF_ENOMEM, "no memory to wait for a handler's deferred"),
                           "(runtime)", 0, handler_name(h));
            } else {
                *hr = *req;
                hr->d = d; /* the result's reference */
                hr->prev = NULL;
                hr->next = a->requests;
                if (a->requests)
                    a->requests->prev = hr;
                a->requests = hr;
                /* Cannot fail: a fresh step on d fits... unless d has many;
                 * then the request is settled with the failure at once. */
                if (wf_deferred_add_callbacks_full(d, request_settle, request_settle, hr,
                                                   wf_free) != 0) {
                    a->requests = hr->next;
                    if (hr->next)
                        hr->next->prev = NULL;
                    reply_once(req, WF_FAIL(WF_ENOMEM, "no memory to wait for a deferred"),
                               "(runtime)", 0, handler_name(h));
                    wf_deferred_cancel(d);
                    wf_deferred_release(d);
                }
            }
        } else {
            struct tell_watch *w = wf_malloc(sizeof *w);
            if (w != NULL) {
                *w = (struct tell_watch){n, a->pid, h};
                wf_deferred_add_callbacks_full(d, NULL, tell_failed, w, wf_free);
            }
            wf_deferred_release(d);
        }
    } else if (req != NULL) {
        settle(a, req, r);
    } else if (r.kind == WF_RESULT_FAILURE) {
        wf__actor_stop(a, add_handler_frame(a, h, r.u.failure)); /* let it crash */
    } else {
        wf_result_free(r);
    }
    wf_msg_free(m);
}

/* ---- delivery ---- */

/* How old the loop's cached time may be before a deadline check reads the
 * clock instead. */
#define STALE_SLACK_MS 50

bool wf__request_stale(struct actor *a, wf_msg *m)
{
    wf_node *n = a->node;
    if (m->cancelled) {
        n->stats.cancelled++;
        wf_msg_free(m);
        return true;
    }
    /* The loop's cached time is cheap but as old as the turn: a handler
     * that held the loop makes it late. Far from the deadline that cannot
     * matter; near it, read the clock. */
    if (m->deadline == 0 || m->deadline > uv_now(&n->loop) + STALE_SLACK_MS)
        return false;
    uint64_t now = wf__now_ms(n);
    if (now < m->deadline)
        return false;
    n->stats.expired++;
    wf__answer(n, a->pid, m->peer, m->corr, m->type, &m->tc,
               WF_FAIL(WF_ETIMEDOUT,
                       "deadline passed %llu ms before %s@%s could start on message type %u",
                       (unsigned long long)(now - m->deadline), wf__actor_label(a), wf_node_name(n),
                       m->type));
    wf_msg_free(m);
    return true;
}

void wf__request_cancel(wf_node *n, struct actor *a, uint16_t peer, uint64_t corr)
{
    for (struct request *hr = a->requests; hr != NULL; hr = hr->next) {
        if (hr->peer != peer || hr->corr != corr || hr->cancelled)
            continue;
        hr->cancelled = true;
        n->stats.cancelled++;
        /* The work the answer stood for is no longer wanted. hr may be
         * freed by the cancel (its deferred settles): not touched after. */
        wf_deferred *d = hr->d ? wf_deferred_ref(hr->d) : NULL;
        if (d != NULL) {
            wf_deferred_cancel(d);
            wf_deferred_release(d);
        }
        return;
    }
    for (wf_msg *m = a->mb_head; m != NULL; m = m->next) {
        if (m->kind == K_ASK && m->peer == peer && m->corr == corr) {
            m->cancelled = true; /* dropped when its turn comes */
            return;
        }
    }
}

void wf__request_init(struct request *req, struct actor *a, const wf_msg *m, const wf_handler *h)
{
    *req = (struct request){.node = a->node,
                            .corr = m->corr,
                            .peer = m->peer,
                            .actor = a,
                            .self = a->pid,
                            .h = h,
                            .deadline = m->deadline};
    wf__trace_ctx_copy(&req->tc, &m->tc);
}

int wf__run_outcome(const wf_result *r, const struct request *req)
{
    return r->kind == WF_RESULT_DEFERRED                            ? OUT_DEFERRED
           : r->kind == WF_RESULT_FAILURE                           ? OUT_FAIL
           : wf_result_is_msg(*r) || (req != NULL && req->answered) ? OUT_REPLY
           : req == NULL                                            ? OUT_OK
                                                                    : OUT_NONE;
}

static void apply_ctx_stop(struct actor *a, wf_ctx *ctx)
{
    if (ctx->stop_requested)
        wf__actor_stop(a, ctx->stop_reason);
}

void wf__actor_deliver(struct actor *a, wf_msg *m)
{
    wf_node *n = a->node;
    if (m->kind == K_REPLY) {
        /* One of this actor's asks was answered: its callbacks run now, as
         * this actor's turn. */
        uint64_t corr = m->corr;
        wf_result r;
        if (m->failure != NULL) {
            r = wf_result_failure(m->failure);
            m->failure = NULL;
            wf_msg_free(m);
        } else {
            m->kind = K_TELL;
            r = wf_result_msg(m);
        }
        a->in_turn = true;
        wf__pending_complete(n, corr, r);
        a->in_turn = false;
        if (a->stop_pending && !a->busy)
            wf__actor_stop(a, a->stop_reason);
        return;
    }

    if (m->kind == K_ASK && wf__request_stale(a, m))
        return;
    const wf_handler *h = wf__find_handler(a->b, m->type);
    struct request req, *rq = NULL;
    if (m->kind == K_ASK) {
        wf__request_init(&req, a, m, h);
        rq = &req;
    }
    if (h == NULL) {
        wf_failure *f = wf_failure_new(WF_EINVAL, "actor %s@%s has no handler for message type %u",
                                       wf__actor_label(a), wf_node_name(n), m->type);
        if (rq != NULL) {
            answer(rq, wf_result_failure(f), "(runtime)", 0, "dispatch");
        } else {
            wf__stats(n)->dropped++;
            char *text = wf_failure_format(f, WF_FORMAT_TEXT);
            wf_log(WF_LOG_WARN, "tell dropped: %s", text ? text : wf_failure_message(f));
            wf_free(text);
            wf_failure_release(f);
        }
        wf_msg_free(m);
        return;
    }
    if ((h->flags & WF_HANDLER_BLOCKING) || (a->b->flags & WF_ACTOR_BLOCKING)) {
        wf__offload(a, h, m, rq);
        return;
    }
    wf_ctx ctx = {.a = a, .msg = m, .req = rq};
    /* The turn runs in the message's span: what it sends continues it. */
    struct node_trace *nt = wf__nt(n);
    /* Unsampled traces carry only their flags: then so does the turn. */
    uint8_t saved_flags = nt->cur.flags;
    bool tracing = (m->tc.flags | saved_flags) != 0;
    bool full = ((m->tc.flags | saved_flags) & WF_TRACE_SAMPLED) != 0;
    wf_trace_ctx saved;
    if (full) {
        saved = nt->cur;
        nt->cur = m->tc;
        nt->cur_actor = a->pid;
        if (wf__traced(n, &m->tc))
            wf__trace_run(n, TR_START, a, m, h, OUT_NONE, 0);
    } else {
        nt->cur.flags = m->tc.flags;
    }
    a->in_turn = true;
    /* What it asks meanwhile is bounded by the request's deadline. */
    uint64_t saved_deadline = n->cur_deadline;
    n->cur_deadline = m->kind == K_ASK ? m->deadline : 0;
    wf_result r = h->fn(&ctx, m);
    n->cur_deadline = saved_deadline;
    if (tracing && wf__traced(n, &m->tc))
        wf__trace_run(n, TR_END, a, m, h, wf__run_outcome(&r, rq), 0);
    wf__actor_finish(a, h, m, rq, r);
    if (full)
        nt->cur = saved;
    else
        nt->cur.flags = saved_flags;
    a->in_turn = false;
    apply_ctx_stop(a, &ctx);
    if (a->stop_pending && !a->busy)
        wf__actor_stop(a, a->stop_reason);
}

/* ---- stopping ---- */

void wf__send_down(wf_node *n, wf_pid to, wf_pid who, const wf_failure *reason)
{
    char *text = reason ? wf_failure_format(reason, WF_FORMAT_TEXT) : NULL;
    const char *t = text ? text : reason ? wf_failure_message(reason) : "";
    size_t tl = strlen(t) + 1;
    wf_msg *m = wf_msg_alloc(WF_MSG_DOWN, 12 + tl);
    if (m != NULL) {
        int32_t code = reason ? wf_failure_code(reason) : 0;
        memcpy(m->body, &who.id, 8);
        memcpy(m->body + 8, &code, 4);
        memcpy(m->body + 12, t, tl);
        m->from = who;
        struct actor *w = wf__node_actor(n, to);
        if (w == NULL || w->dead || wf__enqueue(w, m, false) != 0)
            wf_msg_free(m);
    }
    wf_free(text);
}

int wf_down_parse(wf_msg *m, wf_down *out)
{
    if (m->type != WF_MSG_DOWN || m->len < 13 || m->body[m->len - 1] != '\0')
        return WF_EINVAL;
    int32_t code;
    memcpy(&out->pid.id, m->body, 8);
    memcpy(&code, m->body + 8, 4);
    out->code = code;
    out->reason = (const char *)m->body + 12;
    return 0;
}

int wf_monitor(wf_ctx *ctx, wf_pid target)
{
    struct actor *self = ctx->a;
    wf_node *n = self->node;
    WF__ON_LOOP(n, "wf_monitor");
    if (wf_pid_peer(target) != 0)
        return wf__monitor_remote(n, self->pid, target);
    struct actor *t = wf__node_actor(n, target);
    if (t == NULL || t->dead) {
        wf_failure *f = wf_failure_new(WF_ENOSUCHACTOR, "monitored actor does not exist");
        wf__send_down(n, self->pid, target, f);
        wf_failure_release(f);
        return 0;
    }
    if (t->nwatchers == t->capwatchers) {
        uint32_t cap = t->capwatchers ? t->capwatchers * 2 : 2;
        wf_pid *w = wf_realloc(t->watchers, cap * sizeof *w);
        if (w == NULL)
            return WF_ENOMEM;
        t->watchers = w;
        t->capwatchers = cap;
    }
    t->watchers[t->nwatchers++] = self->pid;
    return 0;
}

/* Empties dead actor a's mailbox: queued asks fail with WF_EACTORSTOPPED,
 * the rest is dropped (and counted). */
static void drop_mail(struct actor *a)
{
    wf_node *n = a->node;
    while (a->mb_head != NULL) {
        wf_msg *m = wf__mailbox_pop(a);
        if (m->kind == K_ASK && m->cancelled) {
            wf__stats(n)->cancelled++; /* nobody waits for an answer */
        } else if (m->kind == K_ASK) {
            wf__answer(n, a->pid, m->peer, m->corr, m->type, &m->tc,
                       WF_FAIL(WF_EACTORSTOPPED, "actor %s@%s stopped before handling type %u",
                               wf__actor_label(a), wf_node_name(n), m->type));
        } else if (m->kind == K_REPLY) {
            /* Its asks were failed before (wf__fail_asks_of): late. */
            wf__stats(n)->late_replies++;
        } else {
            wf__stats(n)->dropped++;
        }
        wf_msg_free(m);
    }
}

void wf__actor_stop(struct actor *a, wf_failure *reason)
{
    wf_node *n = a->node;
    if (a->dead) {
        wf_failure_release(reason);
        return;
    }
    if (a->busy || a->in_turn) {
        /* Not while its handler runs: when that is done. */
        if (a->stop_pending) {
            wf_failure_release(reason);
        } else {
            a->stop_pending = true;
            a->stop_reason = reason;
        }
        return;
    }
    a->stop_pending = false;
    a->stop_reason = NULL;
    a->dead = true;
    wf__stats(n)->stopped++;

    /* What it asked: fail now, its callbacks still see its state. */
    a->in_turn = true;
    wf__fail_asks_of(n, a);

    /* What it was asked: queued requests and requests it would answer
     * later get WF_EACTORSTOPPED at once; queued tells are dropped. */
    drop_mail(a);
    while (a->requests != NULL) {
        struct request *hr = a->requests;
        a->requests = hr->next;
        hr->actor = NULL;
        if (!hr->answered)
            answer(hr,
                   WF_FAIL(WF_EACTORSTOPPED, "actor %s@%s stopped before answering '%s'",
                           wf__actor_label(a), wf_node_name(n), handler_name(hr->h)),
                   "(runtime)", 0, "stop");
        /* The work the answer stood for is no longer wanted. */
        wf_deferred *d = hr->d ? wf_deferred_ref(hr->d) : NULL;
        if (d != NULL) {
            wf_deferred_cancel(d);
            wf_deferred_release(d);
        }
    }

    if (a->b->terminate != NULL) {
        wf_ctx ctx = {.a = a};
        a->b->terminate(&ctx, reason);
    }
    a->in_turn = false;
    wf__trace_actor(n, a, TR_STOP, reason);
    wf__registry_remove(n, a);
    for (uint32_t i = 0; i < a->nwatchers; i++)
        wf__send_down(n, a->watchers[i], a->pid, reason);
    wf__link_actor_stopped(n, a, reason);
    wf_failure_release(reason);
    wf__actor_unref(a);
}
