#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "filter.h"

bool wv_filter_names_lane(const wv_model *m, const char *name, int lane)
{
    if (lane < 0 || (size_t)lane >= m->nlanes)
        return false;
    const wv_lane *l = &m->lanes[lane];
    size_t alen;
    const char *node = wv_addr_split(name, &alen);
    if (node != NULL && (l->node == NULL || strcmp(node, l->node) != 0))
        return false;
    return strlen(l->actor) == alen && memcmp(l->actor, name, alen) == 0;
}

static bool names_any(const wv_model *m, const wv_filter *f, int lane)
{
    for (size_t i = 0; i < f->nactors; i++)
        if (wv_filter_names_lane(m, f->actors[i], lane))
            return true;
    return false;
}

/* Chooses the traces a --trace or --failed asks for. */
static int traces_select(wv_model *m, const wv_filter *f, char *err, size_t errlen)
{
    long pick = -1;
    bool want_last = f->trace && strcmp(f->trace, "last") == 0;
    bool want_slowest = f->trace && strcmp(f->trace, "slowest") == 0;
    size_t kept = 0;
    for (size_t i = 0; i < m->ntraces; i++) {
        wv_trace *t = &m->traces[i];
        t->keep = !f->failed || t->failed;
        if (t->keep && f->trace && !want_last && !want_slowest)
            t->keep = strncasecmp(t->id, f->trace, strlen(f->trace)) == 0;
        if (!t->keep || !(want_last || want_slowest))
            continue;
        if (pick < 0 || (want_last ? t->first_ns >= m->traces[pick].first_ns
                                   : t->latency_ns > m->traces[pick].latency_ns))
            pick = (long)i;
    }
    for (size_t i = 0; i < m->ntraces; i++) {
        if (pick >= 0)
            m->traces[i].keep = (long)i == pick;
        kept += m->traces[i].keep;
    }
    if ((f->trace || f->failed) && kept == 0) {
        snprintf(err, errlen, "no trace matches%s%s%s (%zu traces read)",
                 f->trace ? " --trace " : "", f->trace ? f->trace : "",
                 f->failed ? " --failed" : "", m->ntraces);
        return -1;
    }
    return 0;
}

/* An event outside any trace is kept under a trace filter when it tells
 * something about the time the chosen traces ran (first..last): a loss, a
 * peer coming or going, an actor stopping. Spawns and config only make
 * noise there. */
static bool untraced_keep(const wv_event *e, bool trace_filter, int64_t first, int64_t last)
{
    if (!trace_filter)
        return true;
    if (e->kind != WV_LOST && e->kind != WV_NODE_UP && e->kind != WV_NODE_DOWN &&
        e->kind != WV_STOP)
        return false;
    return e->at_ns >= first && e->at_ns <= last;
}

int wv_filter_apply(wv_model *m, const wv_filter *f, char *err, size_t errlen)
{
    if (traces_select(m, f, err, errlen) < 0)
        return -1;
    bool trace_filter = f->trace != NULL || f->failed;
    int64_t first = INT64_MAX, last = INT64_MIN; /* the chosen traces' time */
    for (size_t i = 0; i < m->ntraces; i++) {
        const wv_trace *t = &m->traces[i];
        if (t->keep && t->first_ns < first)
            first = t->first_ns;
        if (t->keep && t->last_ns > last)
            last = t->last_ns;
    }
    for (size_t l = 0; l < m->nlanes; l++)
        m->lanes[l].visible = false;
    for (size_t i = 0; i < m->n; i++) {
        wv_event *e = m->ev[i];
        bool keep = e->trace_idx >= 0 ? m->traces[e->trace_idx].keep
                                      : untraced_keep(e, trace_filter, first, last);
        if (keep && f->from_ns != WV_NONE && e->at_ns < f->from_ns)
            keep = false;
        if (keep && f->to_ns != WV_NONE && e->at_ns > f->to_ns)
            keep = false;
        if (keep && f->nactors > 0) {
            /* Its own actor's events, and messages to or from it. */
            const wv_message *g = wv_model_msg(m, e);
            keep = names_any(m, f, e->lane) ||
                   (g != NULL && (names_any(m, f, g->from_lane) || names_any(m, f, g->to_lane)));
        }
        e->keep = keep;
    }
    for (size_t i = 0; i < m->n; i++) {
        const wv_event *e = m->ev[i];
        if (!e->keep)
            continue;
        if (e->lane >= 0)
            m->lanes[e->lane].visible = true;
        const wv_message *g = wv_model_msg(m, e);
        if (g != NULL && e->kind == WV_SEND && g->to_lane >= 0)
            m->lanes[g->to_lane].visible = true;
        if (g != NULL && g->outside)
            m->lanes[WV_OUTSIDE_LANE].visible = true;
    }
    return 0;
}
