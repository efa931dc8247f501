/* A clock that moves only when told to (Twisted's task.Clock). */
#include <weft/alloc.h>
#include <weft/clock.h>

struct wf_timer {
    wf_timer *next; /* sorted by due, then by order of scheduling */
    uint64_t due;
    void (*fn)(void *arg);
    void *arg;
};

typedef struct manual_clock {
    wf_clock c; /* first: a wf_clock * is a manual_clock * */
    uint64_t now;
    unsigned pending;
    wf_timer *timers;
} manual_clock;

static wf_timer *manual_call_later(wf_clock *c, uint64_t ms, void (*fn)(void *), void *arg)
{
    manual_clock *m = (manual_clock *)c;
    wf_timer *t = wf_malloc(sizeof *t);
    if (t == NULL)
        return NULL;
    *t = (wf_timer){.due = m->now + ms, .fn = fn, .arg = arg};
    wf_timer **pp = &m->timers;
    while (*pp != NULL && (*pp)->due <= t->due)
        pp = &(*pp)->next;
    t->next = *pp;
    *pp = t;
    m->pending++;
    return t;
}

static void manual_cancel(wf_clock *c, wf_timer *t)
{
    manual_clock *m = (manual_clock *)c;
    for (wf_timer **pp = &m->timers; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            m->pending--;
            wf_free(t);
            return;
        }
    }
}

static uint64_t manual_now(wf_clock *c)
{
    return ((manual_clock *)c)->now;
}

static void manual_destroy(wf_clock *c)
{
    manual_clock *m = (manual_clock *)c;
    while (m->timers != NULL) {
        wf_timer *t = m->timers;
        m->timers = t->next;
        wf_free(t);
    }
    wf_free(m);
}

wf_clock *wf_clock_manual_new(void)
{
    manual_clock *m = wf_malloc(sizeof *m);
    if (m == NULL)
        return NULL;
    *m = (manual_clock){.c = {manual_call_later, manual_cancel, manual_now, manual_destroy}};
    return &m->c;
}

void wf_clock_manual_advance(wf_clock *c, uint64_t ms)
{
    manual_clock *m = (manual_clock *)c;
    m->now += ms;
    /* A timer's function may schedule or cancel others: take one at a time. */
    while (m->timers != NULL && m->timers->due <= m->now) {
        wf_timer *t = m->timers;
        m->timers = t->next;
        m->pending--;
        void (*fn)(void *) = t->fn;
        void *arg = t->arg;
        wf_free(t);
        fn(arg);
    }
}

unsigned wf_clock_manual_pending(wf_clock *c)
{
    return ((manual_clock *)c)->pending;
}
