#include <stdlib.h>
#include <string.h>

#include "chrome.h"
#include "text.h"

/* A slice on a track: a handler run, or a tiny slice made so that a send,
 * reply or fired outside any handler still sits on one (a flow must start
 * and end inside a slice). */
typedef struct slice {
    int64_t t0, t1; /* ns on the merged timeline */
    const wv_run *run;
    const wv_event *ev; /* the tiny slice's event */
} slice;

typedef struct track {
    int lane, tid, pid;
    bool pool;
    slice *s;
    size_t n, cap;
    const wv_event **points; /* events that need a slice */
    size_t np, pcap;
} track;

typedef struct exporter {
    FILE *out;
    const wv_model *m;
    track *t;
    size_t nt, tcap;
    long *loop_track; /* per lane, -1: none yet */
    int next_tid;
    bool first; /* no event written yet */
} exporter;

static int pid_of(const exporter *x, int lane)
{
    const wv_lane *l = &x->m->lanes[lane];
    return l->node_idx >= 0 ? x->m->nodes[l->node_idx].order + 1 : 0;
}

static long track_new(exporter *x, int lane, bool pool)
{
    if (wv_grow((void **)&x->t, &x->tcap, x->nt, sizeof *x->t) < 0)
        return -1;
    x->t[x->nt] = (track){.lane = lane, .pool = pool, .pid = pid_of(x, lane)};
    x->t[x->nt].tid = pool ? x->next_tid++ : lane + 1;
    return (long)x->nt++;
}

static long loop_track(exporter *x, int lane)
{
    if (x->loop_track[lane] < 0)
        x->loop_track[lane] = track_new(x, lane, false);
    return x->loop_track[lane];
}

static int slice_add(track *t, slice s)
{
    if (wv_grow((void **)&t->s, &t->cap, t->n, sizeof *t->s) < 0)
        return -1;
    t->s[t->n++] = s;
    return 0;
}

static int cmp_slice(const void *a, const void *b)
{
    const slice *x = a, *y = b;
    if (x->t0 != y->t0)
        return x->t0 < y->t0 ? -1 : 1;
    return (x->t1 < y->t1) - (x->t1 > y->t1);
}

/* Sorts a track and cuts any slice that runs into the next: a recording
 * with a lost end must not make slices overlap. */
static void track_tidy(track *t)
{
    if (t->n > 1)
        qsort(t->s, t->n, sizeof *t->s, cmp_slice);
    for (size_t i = 1; i < t->n; i++)
        if (t->s[i - 1].t1 > t->s[i].t0)
            t->s[i - 1].t1 = t->s[i].t0;
}

/* The slice of t holding time at, or -1. */
static long track_find(const track *t, int64_t at)
{
    size_t a = 0, b = t->n;
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        if (t->s[mid].t0 <= at)
            a = mid + 1;
        else
            b = mid;
    }
    /* The last slice starting at or before at; the one before it may end at
     * at exactly when the two touch. */
    for (size_t k = a; k > 0 && k + 2 > a; k--)
        if (t->s[k - 1].t0 <= at && at <= t->s[k - 1].t1)
            return (long)(k - 1);
    return -1;
}

/* The track and slice of lane holding time at: the loop track, then the
 * lane's pool tracks. */
static bool lane_find(const exporter *x, int lane, int64_t at, long *tr, long *sl)
{
    if (x->loop_track[lane] >= 0) {
        long k = track_find(&x->t[x->loop_track[lane]], at);
        if (k >= 0) {
            *tr = x->loop_track[lane];
            *sl = k;
            return true;
        }
    }
    for (size_t i = 0; i < x->nt; i++) {
        if (!x->t[i].pool || x->t[i].lane != lane)
            continue;
        long k = track_find(&x->t[i], at);
        if (k >= 0) {
            *tr = (long)i;
            *sl = k;
            return true;
        }
    }
    return false;
}

static bool run_kept(const wv_run *r)
{
    return (r->start && r->start->keep) || (r->end && r->end->keep);
}

static int64_t run_t0(const wv_run *r)
{
    return r->start ? r->start->at_ns : r->end->at_ns;
}

static int cmp_run_ptr(const void *a, const void *b)
{
    int64_t x = run_t0(*(const wv_run *const *)a), y = run_t0(*(const wv_run *const *)b);
    return x < y ? -1 : x > y;
}

/* Handler runs: loop runs on the actor's track; pool runs spread over as
 * many pool tracks as are busy at once, so none overlaps another. */
static int runs_place(exporter *x)
{
    const wv_model *m = x->m;
    const wv_run **pool = malloc((m->nruns + 1) * sizeof *pool);
    size_t np = 0;
    if (pool == NULL)
        return -1;
    for (size_t r = 0; r < m->nruns; r++) {
        const wv_run *run = &m->runs[r];
        if (!run_kept(run) || run->lane <= WV_OUTSIDE_LANE)
            continue;
        if (run->pool) {
            pool[np++] = run;
            continue;
        }
        long t = loop_track(x, run->lane);
        int64_t t0 = run_t0(run);
        if (t < 0 ||
            slice_add(&x->t[t], (slice){t0, run->end ? run->end->at_ns : t0, run, NULL}) < 0)
            goto fail;
    }
    qsort(pool, np, sizeof *pool, cmp_run_ptr);
    for (size_t i = 0; i < np; i++) {
        const wv_run *run = pool[i];
        int64_t t0 = run_t0(run), t1 = run->end ? run->end->at_ns : t0;
        long t = -1;
        for (size_t k = 0; k < x->nt && t < 0; k++)
            if (x->t[k].pool && x->t[k].lane == run->lane && x->t[k].s[x->t[k].n - 1].t1 <= t0)
                t = (long)k;
        if (t < 0 && (t = track_new(x, run->lane, true)) < 0)
            goto fail;
        if (slice_add(&x->t[t], (slice){t0, t1, run, NULL}) < 0)
            goto fail;
    }
    free(pool);
    for (size_t k = 0; k < x->nt; k++)
        track_tidy(&x->t[k]);
    return 0;
fail:
    free(pool);
    return -1;
}

/* Events that take part in a flow (or stand for the outside world) need a
 * slice; those outside any handler run get a tiny one. */
static bool needs_slice(const wv_model *m, const wv_event *e)
{
    const wv_message *g = wv_model_msg(m, e);
    switch (e->kind) {
    case WV_SEND:
    case WV_REPLY:
    case WV_FAIL:
    case WV_FIRED:
        return true;
    case WV_RECV:
        return g != NULL && (g->run < 0 || !run_kept(&m->runs[g->run]));
    default:
        return false;
    }
}

static int cmp_event_time(const void *a, const void *b)
{
    int64_t x = (*(const wv_event *const *)a)->at_ns, y = (*(const wv_event *const *)b)->at_ns;
    return x < y ? -1 : x > y;
}

#define TINY_NS 1000

static int points_place(exporter *x)
{
    const wv_model *m = x->m;
    for (size_t i = 0; i < m->n; i++) {
        const wv_event *e = m->ev[i];
        long tr, sl;
        if (!e->keep || e->lane <= WV_OUTSIDE_LANE || !needs_slice(m, e))
            continue;
        if (lane_find(x, e->lane, e->at_ns, &tr, &sl))
            continue;
        long t = loop_track(x, e->lane);
        if (t < 0 || wv_grow((void **)&x->t[t].points, &x->t[t].pcap, x->t[t].np,
                             sizeof *x->t[t].points) < 0)
            return -1;
        x->t[t].points[x->t[t].np++] = e;
    }
    for (size_t k = 0; k < x->nt; k++) {
        track *t = &x->t[k];
        if (t->np == 0)
            continue;
        qsort(t->points, t->np, sizeof *t->points, cmp_event_time);
        size_t nruns = t->n, r = 0;
        int64_t covered = INT64_MIN; /* the end of the last tiny slice made */
        for (size_t p = 0; p < t->np; p++) {
            int64_t at = t->points[p]->at_ns;
            if (at <= covered)
                continue;
            while (r < nruns && t->s[r].t0 <= at)
                r++;
            int64_t end = at > INT64_MAX - TINY_NS ? INT64_MAX : at + TINY_NS;
            if (r < nruns && end >= t->s[r].t0)
                end = t->s[r].t0 - 1 > at ? t->s[r].t0 - 1 : at;
            if (slice_add(t, (slice){at, end, NULL, t->points[p]}) < 0)
                return -1;
            covered = end;
        }
        track_tidy(t);
    }
    return 0;
}

static void put_us(FILE *f, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    fprintf(f, "%lld.%03lld", (long long)(ns / 1000), (long long)(ns % 1000));
}

static void ev_begin(exporter *x)
{
    fputs(x->first ? "\n" : ",\n", x->out);
    x->first = false;
}

static void meta(exporter *x, const char *what, int pid, int tid, const char *name, int sort)
{
    ev_begin(x);
    fprintf(x->out,
            "{\"ph\":\"M\",\"name\":\"%s_name\",\"pid\":%d,\"tid\":%d,\"args\":{\"name\":", what,
            pid, tid);
    wv_json_put(x->out, name, false);
    fprintf(x->out,
            "}},\n{\"ph\":\"M\",\"name\":\"%s_sort_index\",\"pid\":%d,\"tid\":%d,"
            "\"args\":{\"sort_index\":%d}}",
            what, pid, tid, sort);
}

static void put_arg_str(FILE *f, const char *key, const char *v, bool *first)
{
    if (v == NULL)
        return;
    fprintf(f, "%s\"%s\":", *first ? "" : ",", key);
    wv_json_put(f, v, false);
    *first = false;
}

static void put_event_args(FILE *f, const wv_event *e)
{
    bool first = true;
    char span[24];
    fputs(",\"args\":{", f);
    put_arg_str(f, "trace", e->trace, &first);
    if (e->span) {
        snprintf(span, sizeof span, "%016llx", (unsigned long long)e->span);
        put_arg_str(f, "span", span, &first);
    }
    put_arg_str(f, "handler", e->handler, &first);
    put_arg_str(f, "label", e->label, &first);
    put_arg_str(f, "to", e->to, &first);
    put_arg_str(f, "from", e->from, &first);
    put_arg_str(f, "preview", e->preview, &first);
    put_arg_str(f, "code", e->code, &first);
    put_arg_str(f, "message", e->message, &first);
    put_arg_str(f, "failure", e->failure, &first);
    put_arg_str(f, "peer", e->peer, &first);
    put_arg_str(f, "why", e->why, &first);
    if (e->size != WV_NONE)
        fprintf(f, "%s\"size\":%lld", first ? "" : ",", (long long)e->size), first = false;
    if (e->depth != WV_NONE)
        fprintf(f, "%s\"depth\":%lld", first ? "" : ",", (long long)e->depth), first = false;
    if (e->count != WV_NONE)
        fprintf(f, "%s\"count\":%lld", first ? "" : ",", (long long)e->count), first = false;
    fputc('}', f);
}

static void slices_write(exporter *x)
{
    const wv_model *m = x->m;
    for (size_t k = 0; k < x->nt; k++) {
        track *t = &x->t[k];
        for (size_t i = 0; i < t->n; i++) {
            slice *s = &t->s[i];
            char name[200];
            const wv_event *e = s->run ? (s->run->start ? s->run->start : s->run->end) : s->ev;
            if (s->run) {
                snprintf(name, sizeof name, "%s", wv_run_name(e));
            } else {
                /* A tiny slice: named after what happened there. */
                const wv_message *g = wv_model_msg(m, e);
                char title[160] = "message";
                if (g)
                    wv_msg_title(g, title, sizeof title);
                snprintf(name, sizeof name, "%s %s", wv_kind_name(e->kind), title);
            }
            ev_begin(x);
            fputs("{\"ph\":\"X\",\"cat\":", x->out);
            fputs(s->run ? (s->run->pool ? "\"pool\"" : "\"handler\"") : "\"point\"", x->out);
            fputs(",\"name\":", x->out);
            wv_json_put(x->out, name, false);
            fprintf(x->out, ",\"pid\":%d,\"tid\":%d,\"ts\":", t->pid, t->tid);
            put_us(x->out, s->t0);
            fputs(",\"dur\":", x->out);
            put_us(x->out, s->t1 - s->t0);
            if (s->run && s->run->end && s->run->end->outcome) {
                fputs(",\"args\":{\"outcome\":", x->out);
                wv_json_put(x->out, s->run->end->outcome, false);
                fputs(",\"trace\":", x->out);
                wv_json_put(x->out, e->trace ? e->trace : "", false);
                fputc('}', x->out);
            } else {
                put_event_args(x->out, e);
            }
            fputc('}', x->out);
        }
    }
}

static void flow_point(exporter *x, const char *ph, long id, const char *cat, const char *name,
                       long tr, int64_t at)
{
    ev_begin(x);
    fprintf(x->out, "{\"ph\":\"%s\",\"id\":%ld,\"cat\":\"%s\",\"name\":", ph, id, cat);
    wv_json_put(x->out, name, false);
    fprintf(x->out, ",\"pid\":%d,\"tid\":%d,\"ts\":", x->t[tr].pid, x->t[tr].tid);
    put_us(x->out, at);
    fputs(ph[0] == 'f' ? ",\"bp\":\"e\"}" : "}", x->out);
}

static void flows_write(exporter *x)
{
    const wv_model *m = x->m;
    for (size_t i = 0; i < m->nmsgs; i++) {
        const wv_message *g = &m->msgs[i];
        char title[160];
        long str, ssl, dtr, dsl;
        wv_msg_title(g, title, sizeof title);
        /* The send to the handler run it caused (or its arrival). */
        if (g->send && g->send->keep && g->send->lane > WV_OUTSIDE_LANE &&
            lane_find(x, g->send->lane, g->send->at_ns, &str, &ssl)) {
            int64_t at = -1;
            int lane = -1;
            if (g->run >= 0 && run_kept(&m->runs[g->run])) {
                at = run_t0(&m->runs[g->run]);
                lane = m->runs[g->run].lane;
            } else if (g->recv && g->recv->keep) {
                at = g->recv->at_ns;
                lane = g->recv->lane;
            }
            if (lane > WV_OUTSIDE_LANE && lane_find(x, lane, at, &dtr, &dsl)) {
                flow_point(x, "s", (long)i * 2 + 1, "message", title, str, g->send->at_ns);
                flow_point(x, "f", (long)i * 2 + 1, "message", title, dtr, x->t[dtr].s[dsl].t0);
            }
        }
        /* The answer to the asker's fired. */
        const wv_event *a = wv_msg_answer(g);
        if (a && a->keep && g->fired && g->fired->keep && a->lane > WV_OUTSIDE_LANE &&
            g->fired->lane > WV_OUTSIDE_LANE && lane_find(x, a->lane, a->at_ns, &str, &ssl) &&
            lane_find(x, g->fired->lane, g->fired->at_ns, &dtr, &dsl)) {
            char name[200];
            snprintf(name, sizeof name, "%s %s", g->fail ? "fail" : "reply", title);
            flow_point(x, "s", (long)i * 2 + 2, "reply", name, str, a->at_ns);
            flow_point(x, "f", (long)i * 2 + 2, "reply", name, dtr, g->fired->at_ns);
        }
    }
}

static void instant(exporter *x, const wv_event *e, const char *name, bool process)
{
    int pid = x->m->nodes[e->node_idx].order + 1;
    int tid = 0;
    if (!process && e->lane > WV_OUTSIDE_LANE) {
        long t = loop_track(x, e->lane);
        if (t >= 0)
            tid = x->t[t].tid;
    }
    ev_begin(x);
    fputs("{\"ph\":\"i\",\"name\":", x->out);
    wv_json_put(x->out, name, false);
    fprintf(x->out,
            ",\"cat\":\"%s\",\"s\":\"%s\",\"pid\":%d,\"tid\":%d,\"ts\":", wv_kind_name(e->kind),
            process ? "p" : "t", pid, tid);
    put_us(x->out, e->at_ns);
    put_event_args(x->out, e);
    fputc('}', x->out);
}

static void instants_write(exporter *x)
{
    const wv_model *m = x->m;
    for (size_t i = 0; i < m->n; i++) {
        const wv_event *e = m->ev[i];
        const wv_message *g = wv_model_msg(m, e);
        char name[200];
        if (!e->keep)
            continue;
        switch (e->kind) {
        case WV_FAIL:
            snprintf(name, sizeof name, "✗ %s", e->code ? e->code : "failure");
            instant(x, e, name, false);
            break;
        case WV_TIMEOUT:
            instant(x, e, "✗ timeout", false);
            break;
        case WV_STOP:
            instant(x, e, e->ok == 0 ? "✗ crashed" : "stop", false);
            break;
        case WV_ACTOR:
            instant(x, e, "spawn", false);
            break;
        case WV_RECV:
            if (g && g->outside)
                instant(x, e, e->label ? e->label : "request", false);
            break;
        case WV_REPLY:
            if (g && g->outside) {
                snprintf(name, sizeof name, "answer %s", e->label ? e->label : "");
                instant(x, e, name, false);
            }
            break;
        case WV_NODE_UP:
        case WV_NODE_DOWN:
            snprintf(name, sizeof name, "peer %s %s", e->peer ? e->peer : "?",
                     e->kind == WV_NODE_UP ? "up" : "down");
            instant(x, e, name, true);
            break;
        case WV_LOST:
            snprintf(name, sizeof name, "lost %lld events",
                     (long long)(e->count == WV_NONE ? 0 : e->count));
            instant(x, e, name, true);
            break;
        default:
            break;
        }
    }
}

static void metadata_write(exporter *x)
{
    const wv_model *m = x->m;
    for (size_t k = 0; k < m->nnodes; k++)
        if (m->nodes[k].nevents > 0)
            meta(x, "process", m->nodes[k].order + 1, 0, m->nodes[k].name, m->nodes[k].order);
    for (size_t k = 0; k < x->nt; k++) {
        const track *t = &x->t[k];
        const char *actor = m->lanes[t->lane].actor[0] ? m->lanes[t->lane].actor : "(code)";
        char name[256];
        snprintf(name, sizeof name, "%s%s", actor, t->pool ? " (pool)" : "");
        meta(x, "thread", t->pid, t->tid, name, t->tid);
    }
}

int wv_chrome_render(FILE *out, const wv_model *m)
{
    exporter x = {.out = out, .m = m, .first = true, .next_tid = (int)m->nlanes + 1};
    int rc = -1;
    x.loop_track = malloc((m->nlanes + 1) * sizeof *x.loop_track);
    if (x.loop_track == NULL)
        goto fail;
    for (size_t l = 0; l < m->nlanes; l++)
        x.loop_track[l] = -1;
    /* Every lane with a kept event of its own gets a track. */
    for (size_t i = 0; i < m->n; i++)
        if (m->ev[i]->keep && m->ev[i]->lane > WV_OUTSIDE_LANE &&
            loop_track(&x, m->ev[i]->lane) < 0)
            goto fail;
    if (runs_place(&x) < 0 || points_place(&x) < 0)
        goto fail;
    fputs("{\"traceEvents\":[", out);
    metadata_write(&x);
    slices_write(&x);
    flows_write(&x);
    instants_write(&x);
    fputs("\n],\"displayTimeUnit\":\"ms\",\"otherData\":{\"origin_wall_us\":", out);
    fprintf(out, "%lld}}\n", (long long)m->origin_wall_us);
    rc = 0;
fail:
    for (size_t k = 0; k < x.nt; k++) {
        free(x.t[k].s);
        free(x.t[k].points);
    }
    free(x.t);
    free(x.loop_track);
    return rc;
}
