/* One-for-one supervision with a restart budget, on top of monitors. */
#include <string.h>

#include <weft/alloc.h>
#include <weft/clock.h>
#include <weft/supervisor.h>

#include "runtime.h"

struct sup {
    const wf_supervisor_spec *spec;
    wf_pid *pids;       /* per child; none once stopped for good */
    uint64_t *restarts; /* ring of recent restart times, max_restarts long */
    unsigned nrestarts, next;
};

static unsigned max_restarts(const struct sup *s)
{
    return s->spec->max_restarts ? s->spec->max_restarts : 3;
}

static int start_child(wf_ctx *ctx, struct sup *s, size_t i)
{
    const wf_child_spec *c = &s->spec->children[i];
    int rv = wf_spawn(wf_ctx_node(ctx), c->name, c->b, c->arg, &s->pids[i]);
    if (rv == 0)
        rv = wf_monitor(ctx, s->pids[i]);
    return rv;
}

static void stop_children(wf_ctx *ctx, struct sup *s)
{
    for (size_t i = 0; s->pids && i < s->spec->nchildren; i++) {
        if (!wf_pid_is_none(s->pids[i]))
            wf_stop(wf_ctx_node(ctx), s->pids[i]);
        s->pids[i] = (wf_pid){0};
    }
}

static int sup_init(wf_ctx *ctx, void *arg)
{
    struct sup *s = wf_ctx_state(ctx);
    s->spec = arg;
    s->pids = wf_malloc((s->spec->nchildren + 1) * sizeof *s->pids);
    s->restarts = wf_malloc(max_restarts(s) * sizeof *s->restarts);
    if (s->pids == NULL || s->restarts == NULL)
        goto fail;
    memset(s->pids, 0, (s->spec->nchildren + 1) * sizeof *s->pids);
    for (size_t i = 0; i < s->spec->nchildren; i++) {
        int rv = start_child(ctx, s, i);
        if (rv != 0) {
            stop_children(ctx, s);
            wf_free(s->pids);
            wf_free(s->restarts);
            return rv;
        }
    }
    return 0;

fail:
    wf_free(s->pids);
    wf_free(s->restarts);
    return WF_ENOMEM;
}

static void sup_terminate(wf_ctx *ctx, const wf_failure *reason)
{
    struct sup *s = wf_ctx_state(ctx);
    stop_children(ctx, s);
    wf_free(s->pids);
    wf_free(s->restarts);
}

static wf_result sup_down(wf_ctx *ctx, wf_msg *m)
{
    struct sup *s = wf_ctx_state(ctx);
    wf_down down;
    if (wf_down_parse(m, &down) != 0)
        return wf_result_none();
    size_t i = 0;
    while (i < s->spec->nchildren && s->pids[i].id != down.pid.id)
        i++;
    if (i == s->spec->nchildren)
        return wf_result_none(); /* not (or no longer) ours */
    s->pids[i] = (wf_pid){0};
    if (down.code == 0 || down.code == WF_ESHUTDOWN)
        return wf_result_none(); /* a normal stop is final */

    wf_node *n = wf_ctx_node(ctx);
    uint64_t now = wf_clock_now(wf_node_clock(n));
    uint64_t window = s->spec->window_ms ? s->spec->window_ms : 5000;
    unsigned max = max_restarts(s);
    /* The ring holds the last max restarts: if the oldest is inside the
     * window, this one would be one too many. */
    if (s->nrestarts == max && now - s->restarts[s->next] < window) {
        wf_failure *f = wf_failure_new(WF_ERESTARTS,
                                       "supervisor %s: child %s failed %u times within %llu ms; "
                                       "last failure:\n%s",
                                       wf_ctx_name(ctx), s->spec->children[i].name, max + 1,
                                       (unsigned long long)window, down.reason);
        wf_ctx_stop(ctx, f);
        return wf_result_none();
    }
    s->restarts[s->next] = now;
    s->next = (s->next + 1) % max;
    if (s->nrestarts < max)
        s->nrestarts++;
    wf__stats(n)->restarts++;
    int rv = start_child(ctx, s, i);
    if (rv != 0)
        wf_ctx_stop(ctx,
                    wf_failure_new(rv, "supervisor %s could not restart child %s: %s",
                                   wf_ctx_name(ctx), s->spec->children[i].name, wf_strerror(rv)));
    return wf_result_none();
}

static const wf_handler sup_handlers[] = {{WF_MSG_DOWN, "down", sup_down, 0}};

const wf_behaviour wf_supervisor_behaviour = {
    .name = "supervisor",
    .state_size = sizeof(struct sup),
    .init = sup_init,
    .terminate = sup_terminate,
    .handlers = sup_handlers,
    .nhandlers = sizeof sup_handlers / sizeof sup_handlers[0],
};

int wf_supervisor_spawn(wf_node *n, const char *name, const wf_supervisor_spec *spec, wf_pid *pid)
{
    WF__ON_LOOP_OR_BEFORE(n, "wf_supervisor_spawn");
    return wf_spawn(n, name, &wf_supervisor_behaviour, (void *)spec, pid);
}
