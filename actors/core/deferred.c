/* The Deferred: a port of Twisted's twisted.internet.defer.Deferred.
 *
 * Callbacks live in an array inside the deferred (heap only past
 * INLINE_STEPS), so create + a few callbacks + fire is one allocation.
 *
 * _runCallbacks is iterative, as Twisted's is since 13.0: when a deferred
 * that another is waiting on fires, the waiter is pushed on an explicit stack
 * (an intrusive list through `next`) instead of being run by recursion.
 * wf_deferred_chain (chainDeferred) uses the same stack, so chaining a
 * million deferreds needs no C stack either.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <weft/alloc.h>
#include <weft/clock.h>
#include <weft/deferred.h>
#include <weft/log.h>

#define INLINE_STEPS 4

enum {
    F_CALLED = 1,   /* fired */
    F_RUNNING = 2,  /* a step of this deferred is on the C stack */
    F_SUPPRESS = 4, /* cancelled without a canceller: swallow one late fire */
    F_ONSTACK = 8,  /* on a run stack: that run will get to its new steps */
};

struct step {
    wf_callback_fn cb, eb;
    void *arg;
    wf_dtor_fn arg_free;
};

struct wf_deferred {
    wf_result result;
    uint32_t refs;
    uint16_t paused;
    uint16_t flags;
    uint32_t head, count, cap; /* steps[head..count) still to run */
    int fired_line;            /* here, in what would be padding */
    struct step *steps;        /* inline_steps, or the heap past INLINE_STEPS */
    wf_canceller_fn canceller;
    void *canceller_arg;
    wf_dtor_fn canceller_arg_free; /* NULL once called (or if none) */
    wf_deferred *next;             /* the run stack (see the top of this file) */
    const char *fired_file, *fired_func;
    struct step inline_steps[INLINE_STEPS];
};

/* Markers, never called: a step whose cb is one of these moves the result
 * into the deferred in arg (the step holds a reference to it). CONTINUE
 * resumes a deferred waiting on this one; CHAIN fires another one. */
static wf_result step_continue(wf_result r, void *arg)
{
    (void)arg;
    return r;
}

static wf_result step_chain(wf_result r, void *arg)
{
    /* A different body from step_continue, so that no optimiser folds the
     * two into one address. */
    (void)arg;
    wf_result_free(r);
    return wf_result_none();
}

static bool is_marker(wf_callback_fn cb)
{
    return cb == step_continue || cb == step_chain;
}

wf_deferred *wf_deferred_new_cancellable_full(wf_canceller_fn canceller, void *arg,
                                              wf_dtor_fn arg_free)
{
    wf_deferred *d = wf_malloc(sizeof *d);
    if (d == NULL) {
        if (arg_free != NULL)
            arg_free(arg);
        return NULL;
    }
    d->result = wf_result_none();
    d->refs = 1;
    d->paused = 0;
    d->flags = 0;
    d->head = d->count = 0;
    d->cap = INLINE_STEPS;
    d->steps = d->inline_steps;
    d->canceller = canceller;
    d->canceller_arg = arg;
    d->canceller_arg_free = arg_free;
    d->next = NULL;
    d->fired_file = d->fired_func = NULL;
    d->fired_line = 0;
    return d;
}

wf_deferred *wf_deferred_new_cancellable(wf_canceller_fn canceller, void *arg)
{
    return wf_deferred_new_cancellable_full(canceller, arg, NULL);
}

wf_deferred *wf_deferred_new(void)
{
    return wf_deferred_new_cancellable_full(NULL, NULL, NULL);
}

/* d has fired, or its canceller has run: nothing will call the canceller
 * with its arg again, so the arg goes now. */
static void canceller_done(wf_deferred *d)
{
    wf_dtor_fn arg_free = d->canceller_arg_free;
    if (arg_free != NULL) {
        d->canceller_arg_free = NULL;
        arg_free(d->canceller_arg);
    }
}

wf_deferred *wf_deferred_ref(wf_deferred *d)
{
    d->refs++;
    return d;
}

/* Process-wide configuration, set at start-up (see deferred.h). */
static struct {
    wf_unhandled_fn fn;
    void *arg;
} unhandled_hook;

/* Relaxed: a statistic, ordered with nothing else. */
static atomic_uint_fast64_t unhandled_count;

void wf_unhandled_set_hook(wf_unhandled_fn fn, void *arg)
{
    unhandled_hook.fn = fn;
    unhandled_hook.arg = fn != NULL ? arg : NULL;
}

uint64_t wf_unhandled_count(void)
{
    return atomic_load_explicit(&unhandled_count, memory_order_relaxed);
}

static void report_unhandled(wf_deferred *d)
{
    atomic_fetch_add_explicit(&unhandled_count, 1, memory_order_relaxed);
    if (unhandled_hook.fn != NULL) {
        wf_unhandled u = {d->result.u.failure, d->fired_file, d->fired_line, d->fired_func};
        unhandled_hook.fn(unhandled_hook.arg, &u);
        return;
    }
    char *text = wf_failure_format(d->result.u.failure, WF_FORMAT_TEXT);
    wf_log(WF_LOG_ERROR, "unhandled failure in a deferred fired at %s:%d (%s):\n%s",
           d->fired_file ? d->fired_file : "?", d->fired_line, d->fired_func ? d->fired_func : "?",
           text ? text : "(out of memory formatting it)");
    wf_free(text);
}

/* Drops one reference; a deferred that reaches zero goes on the work list. */
static void drop(wf_deferred **todo, wf_deferred *d)
{
    if (--d->refs == 0) {
        d->next = *todo;
        *todo = d;
    }
}

void wf_deferred_release(wf_deferred *d)
{
    /* Freeing may drop the last reference to other deferreds (a waited-on
     * inner one, the targets of unrun CONTINUE/CHAIN steps). They are freed
     * through a work list, not recursion, for the same reason the runner is
     * iterative. */
    wf_deferred *todo = NULL;
    if (d != NULL)
        drop(&todo, d);
    while (todo != NULL) {
        wf_deferred *x = todo;
        todo = x->next;
        canceller_done(x); /* freed unfired */
        for (uint32_t i = x->head; i < x->count; i++) {
            struct step *s = &x->steps[i];
            if (is_marker(s->cb))
                drop(&todo, s->arg);
            else if (s->arg_free != NULL)
                s->arg_free(s->arg);
        }
        if (x->result.kind == WF_RESULT_FAILURE)
            report_unhandled(x);
        if (x->result.kind == WF_RESULT_DEFERRED)
            drop(&todo, x->result.u.deferred);
        else
            wf_result_free(x->result);
        if (x->steps != x->inline_steps)
            wf_free(x->steps);
        wf_free(x);
    }
}

/* Appends a step; the caller has checked nothing. Returns 0 or WF_ENOMEM. */
static int push_step(wf_deferred *d, wf_callback_fn cb, wf_callback_fn eb, void *arg,
                     wf_dtor_fn arg_free)
{
    if (d->count == d->cap) {
        if (d->head > 0) {
            /* Steps already run leave room at the front: reuse it. */
            memmove(d->steps, d->steps + d->head, (d->count - d->head) * sizeof *d->steps);
            d->count -= d->head;
            d->head = 0;
        } else {
            uint32_t cap = d->cap * 2;
            struct step *p;
            if (d->steps == d->inline_steps) {
                p = wf_malloc(cap * sizeof *p);
                if (p != NULL)
                    memcpy(p, d->steps, d->count * sizeof *p);
            } else {
                p = wf_realloc(d->steps, cap * sizeof *p);
            }
            if (p == NULL)
                return WF_ENOMEM;
            d->steps = p;
            d->cap = cap;
        }
    }
    d->steps[d->count++] = (struct step){cb, eb, arg, arg_free};
    return 0;
}

static bool waiting(const wf_deferred *d)
{
    return d->result.kind == WF_RESULT_DEFERRED;
}

static void push(wf_deferred **stack, wf_deferred *d)
{
    d->flags |= F_ONSTACK;
    d->next = *stack;
    *stack = d;
}

static wf_deferred *pop(wf_deferred **stack)
{
    wf_deferred *d = *stack;
    *stack = d->next;
    d->flags &= ~F_ONSTACK;
    return d;
}

static void run_callbacks(wf_deferred *start)
{
    /* A step of it is on the C stack, or a run further out has it on its
     * stack: that run will see what was added (Twisted's
     * _runningCallbacks check, where chained deferreds recurse). */
    if (start->flags & (F_RUNNING | F_ONSTACK))
        return;

    /* Every deferred on the stack holds a reference taken here. */
    wf_deferred *stack = NULL;
    push(&stack, wf_deferred_ref(start));
    while (stack != NULL) {
        wf_deferred *cur = stack;
        if (cur->paused) {
            /* It will produce nothing now; those below it wait with it. */
            while (stack != NULL)
                wf_deferred_release(pop(&stack));
            return;
        }

        bool finished = true;
        while (cur->head < cur->count) {
            struct step s = cur->steps[cur->head++];
            if (cur->head == cur->count)
                cur->head = cur->count = 0;

            if (is_marker(s.cb)) {
                wf_deferred *t = s.arg; /* the step's reference moves to the stack */
                if (s.cb == step_continue) {
                    /* t's result is the reference it holds to cur: drop it; the
                     * stack still holds cur. */
                    wf_deferred_release(t->result.u.deferred);
                    t->result = cur->result;
                    cur->result = wf_result_none();
                    t->paused--;
                } else if (t->flags & F_CALLED) {
                    /* chainDeferred into a fired deferred: Twisted raises
                     * AlreadyCalledError inside this chain. */
                    wf_failure *f = NULL;
                    wf_deferred_fire_at(t, wf_result_none(), __FILE__, __LINE__, __func__, &f);
                    wf_result_free(cur->result);
                    cur->result = f != NULL ? wf_result_failure(f) : wf_result_none();
                    wf_deferred_release(t);
                    continue;
                } else {
                    t->result = cur->result;
                    cur->result = wf_result_none();
                    t->flags |= F_CALLED;
                    t->fired_file = cur->fired_file;
                    t->fired_line = cur->fired_line;
                    t->fired_func = cur->fired_func;
                    canceller_done(t); /* the stack holds t */
                    if (t->paused) {
                        /* A paused target keeps its result; our chain goes
                         * on (chainDeferred is plain callbacks in Twisted). */
                        wf_deferred_release(t);
                        continue;
                    }
                }
                push(&stack, t);
                finished = false;
                break;
            }

            wf_callback_fn fn = cur->result.kind == WF_RESULT_FAILURE ? s.eb : s.cb;
            if (fn != NULL) {
                wf_result in = cur->result;
                cur->result = wf_result_none();
                cur->flags |= F_RUNNING;
                cur->result = fn(in, s.arg);
                cur->flags &= ~F_RUNNING;
            }
            if (s.arg_free != NULL)
                s.arg_free(s.arg);

            if (cur->result.kind == WF_RESULT_DEFERRED) {
                wf_deferred *inner = cur->result.u.deferred;
                if (inner == cur) {
                    /* Waiting on itself would never end (Twisted warns). */
                    wf_deferred_release(inner);
                    cur->result = WF_FAIL(WF_EINVAL, "a callback returned its own deferred");
                } else if (!wf_deferred_has_result(inner)) {
                    /* Not ready: wait for it, holding its reference in our
                     * result; it holds one on us in its CONTINUE step. */
                    if (push_step(inner, step_continue, step_continue, cur, NULL) != 0) {
                        wf_deferred_release(inner);
                        cur->result = WF_FAIL(WF_ENOMEM, "no memory to wait on a deferred");
                        continue;
                    }
                    wf_deferred_ref(cur);
                    cur->paused++;
                    break;
                } else {
                    /* Ready: take its result. */
                    cur->result = inner->result;
                    inner->result = wf_result_none();
                    wf_deferred_release(inner);
                }
            }
        }
        if (finished)
            wf_deferred_release(pop(&stack));
    }
}

int wf_deferred_add_callbacks_full(wf_deferred *d, wf_callback_fn cb, wf_callback_fn eb, void *arg,
                                   wf_dtor_fn arg_free)
{
    if (push_step(d, cb, eb, arg, arg_free) != 0) {
        if (arg_free != NULL)
            arg_free(arg);
        return WF_ENOMEM;
    }
    if (d->flags & F_CALLED)
        run_callbacks(d);
    return 0;
}

int wf_deferred_fire_at(wf_deferred *d, wf_result r, const char *file, int line, const char *func,
                        wf_failure **already)
{
    if (r.kind == WF_RESULT_DEFERRED) {
        wf_result_free(r);
        return WF_EINVAL;
    }
    if (d->flags & F_CALLED) {
        wf_result_free(r);
        if (d->flags & F_SUPPRESS) {
            d->flags &= ~F_SUPPRESS;
            return 0;
        }
        wf_failure *f = wf_failure_new_at(WF_EALREADY, file, line, func,
                                          "deferred already called: first fired at %s:%d (%s)",
                                          d->fired_file ? d->fired_file : "?", d->fired_line,
                                          d->fired_func ? d->fired_func : "?");
        if (already != NULL) {
            *already = f;
        } else {
            char *text = wf_failure_format(f, WF_FORMAT_TEXT);
            wf_log(WF_LOG_ERROR, "%s", text ? text : wf_failure_message(f));
            wf_free(text);
            wf_failure_release(f);
        }
        return WF_EALREADY;
    }
    d->flags |= F_CALLED;
    d->fired_file = file;
    d->fired_line = line;
    d->fired_func = func;
    d->result = r;
    if (d->canceller_arg_free != NULL) {
        /* The arg may hold the reference to d its caller fires it through:
         * ours keeps d alive to the end of this call. */
        wf_deferred_ref(d);
        canceller_done(d);
        run_callbacks(d);
        wf_deferred_release(d);
        return 0;
    }
    run_callbacks(d);
    return 0;
}

int wf_deferred_chain(wf_deferred *d, wf_deferred *other)
{
    int rv = push_step(d, step_chain, step_chain, other, NULL);
    if (rv != 0)
        return rv;
    wf_deferred_ref(other);
    if (d->flags & F_CALLED)
        run_callbacks(d);
    return 0;
}

void wf_deferred_pause(wf_deferred *d)
{
    d->paused++;
}

void wf_deferred_unpause(wf_deferred *d)
{
    if (d->paused == 0)
        return;
    if (--d->paused == 0 && (d->flags & F_CALLED))
        run_callbacks(d);
}

void wf_deferred_cancel(wf_deferred *d)
{
    /* A fired deferred waiting on an inner one passes the cancel inwards;
     * walk to the innermost instead of recursing. */
    while ((d->flags & F_CALLED) && waiting(d))
        d = d->result.u.deferred;
    if (d->flags & F_CALLED)
        return;
    wf_deferred_ref(d); /* the canceller may drop the last outside reference */
    if (d->canceller != NULL) {
        /* The canceller may fire d: its arg must outlive that, so it goes
         * once the canceller has returned. */
        wf_dtor_fn arg_free = d->canceller_arg_free;
        d->canceller_arg_free = NULL;
        d->canceller(d, d->canceller_arg);
        if (arg_free != NULL)
            arg_free(d->canceller_arg);
    } else {
        d->flags |= F_SUPPRESS;
    }
    if (!(d->flags & F_CALLED))
        wf_deferred_errback(d, wf_failure_new(WF_ECANCELED, "deferred cancelled"));
    wf_deferred_release(d);
}

bool wf_deferred_called(const wf_deferred *d)
{
    return (d->flags & F_CALLED) != 0;
}

bool wf_deferred_has_result(const wf_deferred *d)
{
    return (d->flags & (F_CALLED | F_RUNNING)) == F_CALLED && !waiting(d) && d->paused == 0 &&
           d->head == d->count;
}

const wf_result *wf_deferred_peek(const wf_deferred *d)
{
    return wf_deferred_has_result(d) ? &d->result : NULL;
}

int wf_deferred_take(wf_deferred *d, wf_result *out)
{
    if (!wf_deferred_has_result(d))
        return WF_ESTATE;
    *out = d->result;
    d->result = wf_result_none();
    return 0;
}

wf_deferred *wf_succeed(wf_result r)
{
    if (r.kind == WF_RESULT_DEFERRED)
        return r.u.deferred;
    wf_deferred *d = wf_deferred_new();
    if (d == NULL) {
        wf_result_free(r);
        return NULL;
    }
    d->flags = F_CALLED;
    d->result = r;
    d->fired_file = __FILE__;
    d->fired_line = __LINE__;
    d->fired_func = r.kind == WF_RESULT_FAILURE ? "wf_fail" : "wf_succeed";
    return d;
}

wf_deferred *wf_fail(wf_failure *f)
{
    return wf_succeed(wf_result_failure(f));
}

wf_deferred *wf_maybe(wf_result (*fn)(void *arg), void *arg)
{
    return wf_succeed(fn(arg));
}

/* addTimeout: a timer that cancels d, and a step that turns the cancel it
 * caused into WF_ETIMEDOUT. The step's arg_free stops the timer, so the
 * timer never outlives d. */
struct timeout {
    wf_deferred *d; /* borrowed: alive while the step is pending */
    wf_clock *clock;
    wf_timer *timer;
    uint64_t ms;
    bool timed_out;
};

static void timeout_expired(void *arg)
{
    struct timeout *t = arg;
    t->timer = NULL;
    t->timed_out = true;
    wf_deferred_cancel(t->d); /* may free t, through the step's arg_free */
}

static wf_result timeout_convert(wf_result r, void *arg)
{
    struct timeout *t = arg;
    if (t->timed_out && wf_failure_code(r.u.failure) == WF_ECANCELED) {
        wf_failure *f = wf_failure_new(WF_ETIMEDOUT, "deferred timed out after %llu ms",
                                       (unsigned long long)t->ms);
        wf_failure_set_cause(f, r.u.failure);
        return wf_result_failure(f);
    }
    return r;
}

static void timeout_free(void *arg)
{
    struct timeout *t = arg;
    if (t->timer != NULL)
        wf_clock_cancel(t->clock, t->timer);
    wf_free(t);
}

int wf_deferred_timeout(wf_deferred *d, wf_clock *clock, uint64_t ms)
{
    /* As Twisted's addTimeout, even on a fired deferred: one waiting on an
     * inner deferred is still cancelled through it; one with its result
     * runs the step (and stops the timer) at once. */
    struct timeout *t = wf_malloc(sizeof *t);
    if (t == NULL)
        return WF_ENOMEM;
    *t = (struct timeout){.d = d, .clock = clock, .ms = ms};
    t->timer = wf_clock_call_later(clock, ms, timeout_expired, t);
    if (t->timer == NULL) {
        wf_free(t);
        return WF_ENOMEM;
    }
    return wf_deferred_add_callbacks_full(d, NULL, timeout_convert, t, timeout_free);
}
