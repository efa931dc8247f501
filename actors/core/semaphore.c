/* Twisted's DeferredSemaphore. */
#include <weft/alloc.h>
#include <weft/semaphore.h>

struct waiter {
    struct waiter *next, *prev;
    wf_semaphore *s;
    wf_deferred *d; /* our reference */
};

struct wf_semaphore {
    unsigned tokens, limit, nwait;
    unsigned jobs; /* wf_semaphore_run jobs holding a token */
    bool freed;    /* wf_semaphore_free ran; the last job frees s */
    struct waiter *head, *tail;
};

wf_semaphore *wf_semaphore_new(unsigned tokens)
{
    if (tokens == 0)
        return NULL;
    wf_semaphore *s = wf_malloc(sizeof *s);
    if (s != NULL)
        *s = (wf_semaphore){.tokens = tokens, .limit = tokens};
    return s;
}

static void unlink_waiter(wf_semaphore *s, struct waiter *w)
{
    *(w->prev ? &w->prev->next : &s->head) = w->next;
    *(w->next ? &w->next->prev : &s->tail) = w->prev;
    s->nwait--;
}

/* Removes w and returns its deferred (the reference w held). */
static wf_deferred *pop_waiter(wf_semaphore *s, struct waiter *w)
{
    wf_deferred *d = w->d;
    unlink_waiter(s, w);
    wf_free(w);
    return d;
}

static void waiter_cancel(wf_deferred *d, void *arg)
{
    struct waiter *w = arg;
    (void)d;
    /* wf_deferred_cancel holds its own reference while we drop ours. */
    wf_deferred_release(pop_waiter(w->s, w));
}

void wf_semaphore_free(wf_semaphore *s)
{
    if (s == NULL)
        return;
    /* An errback may acquire again; keep going until nobody waits. */
    while (s->head != NULL) {
        wf_deferred *d = pop_waiter(s, s->head);
        wf_deferred_errback(d, wf_failure_new(WF_ECANCELED, "semaphore freed"));
        wf_deferred_release(d);
    }
    if (s->jobs > 0)
        s->freed = true; /* a running job still holds a token and s */
    else
        wf_free(s);
}

wf_deferred *wf_semaphore_acquire(wf_semaphore *s)
{
    if (s->tokens > 0) {
        wf_deferred *d = wf_succeed(wf_result_none());
        if (d != NULL)
            s->tokens--;
        return d;
    }
    struct waiter *w = wf_malloc(sizeof *w);
    if (w == NULL)
        return NULL;
    wf_deferred *d = wf_deferred_new_cancellable(waiter_cancel, w);
    if (d == NULL) {
        wf_free(w);
        return NULL;
    }
    *w = (struct waiter){.prev = s->tail, .s = s, .d = wf_deferred_ref(d)};
    *(s->tail ? &s->tail->next : &s->head) = w;
    s->tail = w;
    s->nwait++;
    return d;
}

int wf_semaphore_release(wf_semaphore *s)
{
    if (s->tokens >= s->limit)
        return WF_ESTATE;
    if (s->head == NULL) {
        s->tokens++;
        return 0;
    }
    /* The token passes straight to the oldest waiter. */
    wf_deferred *d = pop_waiter(s, s->head);
    wf_deferred_callback(d, wf_result_none());
    wf_deferred_release(d);
    return 0;
}

struct run {
    wf_semaphore *s;
    wf_result (*fn)(void *arg);
    void *arg;
};

/* A job is over: its token goes back (or, after wf_semaphore_free, the
 * last job out frees s). */
static void job_done(wf_semaphore *s)
{
    s->jobs--;
    if (!s->freed)
        wf_semaphore_release(s);
    else if (s->jobs == 0)
        wf_free(s);
}

static wf_result run_release(wf_result r, void *arg)
{
    job_done(arg);
    return r;
}

static wf_result run_acquired(wf_result r, void *arg)
{
    struct run *x = arg;
    wf_result_free(r);
    x->s->jobs++;
    wf_deferred *d = wf_maybe(x->fn, x->arg);
    if (d == NULL) {
        job_done(x->s);
        return WF_FAIL(WF_ENOMEM, "no memory to run under a semaphore");
    }
    if (wf_deferred_add_both(d, run_release, x->s) != 0) {
        /* The token must not leak: give it back now and fail. */
        job_done(x->s);
        wf_deferred_release(d);
        return WF_FAIL(WF_ENOMEM, "no memory to run under a semaphore");
    }
    return wf_result_deferred(d);
}

wf_deferred *wf_semaphore_run(wf_semaphore *s, wf_result (*fn)(void *arg), void *arg)
{
    struct run *x = wf_malloc(sizeof *x);
    if (x == NULL)
        return NULL;
    *x = (struct run){s, fn, arg};
    wf_deferred *d = wf_semaphore_acquire(s);
    if (d == NULL) {
        wf_free(x);
        return NULL;
    }
    if (wf_deferred_add_callbacks_full(d, run_acquired, NULL, x, wf_free) != 0) {
        wf_deferred_cancel(d);
        wf_deferred_release(d);
        return NULL;
    }
    return d;
}

unsigned wf_semaphore_tokens(const wf_semaphore *s)
{
    return s->tokens;
}

unsigned wf_semaphore_waiting(const wf_semaphore *s)
{
    return s->nwait;
}
