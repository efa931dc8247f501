/* wf_gather: Twisted's DeferredList, with owned results. */
#include <string.h>

#include <weft/alloc.h>
#include <weft/gather.h>

#include "failure_index.h"

struct gather;

struct slot {
    struct gather *g;
    size_t i;
    wf_deferred *in; /* our reference; NULL once its outcome arrived */
};

struct gather {
    wf_deferred *out; /* our reference, until the gather is freed */
    int flags;
    size_t n;
    bool fired;            /* out has been given (or refused) an outcome */
    size_t pending;        /* inputs without an outcome yet */
    unsigned holds;        /* pending + a canceller at work: free at 0 */
    wf_gather_result *res; /* ALL and FIRST_FAILURE: outcomes so far */
    wf_failure *last;      /* FIRST_SUCCESS: the latest failure */
    struct slot slots[];
};

static void gather_result_free(void *p)
{
    wf_gather_result *res = p;
    if (res == NULL)
        return;
    for (size_t i = 0; i < res->n; i++)
        wf_result_free(res->items[i]);
    wf_free(res);
}

static wf_gather_result *gather_result_new(size_t n)
{
    wf_gather_result *res = wf_malloc(sizeof *res + n * sizeof res->items[0]);
    if (res == NULL)
        return NULL;
    res->n = n;
    res->index = SIZE_MAX;
    for (size_t i = 0; i < n; i++)
        res->items[i] = wf_result_none();
    return res;
}

/* Gives out its outcome, unless something (a cancel) already did. */
static void gather_fire(struct gather *g, wf_result r)
{
    g->fired = true;
    if (wf_deferred_called(g->out))
        wf_result_free(r);
    else
        wf_deferred_callback(g->out, r);
}

static void gather_unhold(struct gather *g)
{
    if (--g->holds > 0)
        return;
    gather_result_free(g->res);
    wf_failure_release(g->last);
    wf_deferred_release(g->out);
    wf_free(g);
}

/* Twisted's FirstError: the index and the sub-failure (the cause) are
 * data, read back with wf_gather_first_error. */
static wf_failure *first_error(wf_failure *cause, size_t i)
{
    wf_failure *f = wf_failure_new(WF_EFIRSTERROR, "gathered deferred #%zu failed", i);
    wf__failure_set_index(f, i);
    wf_failure_set_cause(f, cause);
    return f;
}

bool wf_gather_first_error(const wf_failure *f, size_t *index, wf_failure **sub)
{
    size_t i;
    if (f == NULL || wf_failure_code(f) != WF_EFIRSTERROR || wf_failure_cause(f) == NULL ||
        !wf__failure_index(f, &i))
        return false;
    if (index != NULL)
        *index = i;
    if (sub != NULL)
        *sub = wf_failure_cause(f);
    return true;
}

/* After input s gave its outcome: fire out if that was the last one, and
 * drop what the gather holds for s. */
static void slot_done(struct slot *s)
{
    struct gather *g = s->g;
    if (--g->pending == 0 && !g->fired) {
        if (g->flags & WF_GATHER_FIRST_SUCCESS) {
            wf_failure *last = g->last;
            g->last = NULL;
            gather_fire(g, wf_result_failure(first_error(last, s->i)));
        } else {
            wf_gather_result *res = g->res;
            g->res = NULL;
            gather_fire(g, wf_result_value(res, gather_result_free));
        }
    }
    wf_deferred *in = s->in;
    s->in = NULL;
    gather_unhold(g);
    wf_deferred_release(in); /* a running input is still held by its run */
}

static wf_result gather_step(wf_result r, void *arg)
{
    struct slot *s = arg;
    struct gather *g = s->g;
    bool failed = wf_result_is_failure(r);
    bool consume = failed && (g->flags & WF_GATHER_CONSUME_ERRORS);

    if (g->fired) {
        /* Too late for the gather: the input keeps its outcome (Twisted). */
        if (consume) {
            wf_result_free(r);
            r = wf_result_none();
        }
        slot_done(s);
        return r;
    }

    wf_result keep = wf_result_none();
    if (failed && !consume)
        keep = wf_result_failure(wf_failure_ref(r.u.failure));

    if (failed && (g->flags & WF_GATHER_FIRST_FAILURE)) {
        gather_result_free(g->res);
        g->res = NULL;
        gather_fire(g, wf_result_failure(first_error(r.u.failure, s->i)));
    } else if (g->flags & WF_GATHER_FIRST_SUCCESS) {
        if (failed) {
            wf_failure_release(g->last);
            g->last = r.u.failure;
        } else {
            wf_gather_result *res = gather_result_new(1);
            if (res == NULL) {
                wf_result_free(r);
                gather_fire(g, WF_FAIL(WF_ENOMEM, "no memory for a gathered result"));
            } else {
                res->index = s->i;
                res->items[0] = r;
                gather_fire(g, wf_result_value(res, gather_result_free));
            }
        }
    } else {
        g->res->items[s->i] = r;
    }
    slot_done(s);
    return keep;
}

static void gather_cancel(wf_deferred *out, void *arg)
{
    struct gather *g = arg;
    (void)out;
    /* Inputs fire as they are cancelled and may finish the gather: the hold
     * keeps g alive until the loop is done. */
    g->holds++;
    for (size_t i = 0; i < g->n; i++) {
        if (g->slots[i].in != NULL)
            wf_deferred_cancel(g->slots[i].in);
    }
    gather_unhold(g);
}

wf_deferred *wf_gather(wf_deferred *const *ds, size_t n, int flags)
{
    struct gather *g = wf_malloc(sizeof *g + n * sizeof g->slots[0]);
    if (g == NULL)
        goto fail;
    *g = (struct gather){.flags = flags, .n = n, .pending = n, .holds = 1};
    if (!(flags & WF_GATHER_FIRST_SUCCESS) && (g->res = gather_result_new(n)) == NULL)
        goto fail;
    if ((g->out = wf_deferred_new_cancellable(gather_cancel, g)) == NULL)
        goto fail;
    for (size_t i = 0; i < n; i++)
        g->slots[i] = (struct slot){g, i, ds[i]};

    if (n == 0) {
        wf_deferred *out = wf_deferred_ref(g->out);
        wf_result r = WF_FAIL(WF_EFIRSTERROR, "gathered no deferred");
        if (!(flags & WF_GATHER_FIRST_SUCCESS)) {
            wf_result_free(r);
            r = wf_result_value(g->res, gather_result_free);
            g->res = NULL;
        }
        gather_fire(g, r);
        gather_unhold(g);
        return out;
    }

    /* Hand out our own reference to out first: gathering inputs that have
     * already fired may finish (and free) the gather before this returns. */
    wf_deferred *out = wf_deferred_ref(g->out);
    g->holds = (unsigned)n;
    for (size_t i = 0; i < n; i++) {
        /* Adding fails only for want of memory, and only past an input's
         * inline steps: then that input counts as failed. */
        if (wf_deferred_add_callbacks(ds[i], gather_step, gather_step, &g->slots[i]) != 0)
            wf_result_free(
                gather_step(WF_FAIL(WF_ENOMEM, "no memory to gather a deferred"), &g->slots[i]));
    }
    return out;

fail:
    for (size_t i = 0; i < n; i++)
        wf_deferred_release(ds[i]);
    if (g != NULL) {
        gather_result_free(g->res);
        wf_free(g);
    }
    return NULL;
}
