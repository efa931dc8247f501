#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "summary.h"
#include "text.h"

/* A growable list of durations. */
typedef struct samples {
    int64_t *v;
    size_t n, cap;
} samples;

static void samples_add(samples *s, int64_t x)
{
    if (wv_grow((void **)&s->v, &s->cap, s->n, sizeof *s->v) < 0)
        return; /* the statistics leave it out; nothing else depends on it */
    s->v[s->n++] = x;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int64_t wv_percentile(int64_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_i64);
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    return v[rank > 0 ? rank - 1 : 0];
}

static int64_t mean(const samples *s)
{
    if (s->n == 0)
        return 0;
    double sum = 0;
    for (size_t i = 0; i < s->n; i++)
        sum += (double)s->v[i];
    return (int64_t)(sum / (double)s->n);
}

/* "mean  p99" columns, or dashes with no samples. */
static void put_stats(FILE *out, samples *s)
{
    char a[48], b[48];
    if (s->n == 0) {
        fprintf(out, " %12s %12s", "-", "-");
        return;
    }
    wv_fmt_ms(a, sizeof a, mean(s));
    wv_fmt_ms(b, sizeof b, wv_percentile(s->v, s->n, 99));
    fprintf(out, " %12s %12s", a, b);
}

struct actor_stats {
    size_t handled, failures;
    int64_t peak;
    samples run;
};

struct type_stats {
    int64_t type;
    bool ask;
    size_t count, answered, failed;
    samples lat;
};

static struct type_stats *type_get(struct type_stats **ts, size_t *n, size_t *cap, int64_t type,
                                   bool ask)
{
    for (size_t i = 0; i < *n; i++)
        if ((*ts)[i].type == type && (*ts)[i].ask == ask)
            return &(*ts)[i];
    if (wv_grow((void **)ts, cap, *n, sizeof **ts) < 0)
        return NULL;
    (*ts)[*n] = (struct type_stats){.type = type, .ask = ask};
    return &(*ts)[(*n)++];
}

static void print_safe(FILE *out, const char *s, int width)
{
    wv_buf b = {0};
    wv_buf_put_safe(&b, s);
    const char *t = wv_buf_str(&b);
    size_t cut = wv_utf8_prefix(t, (size_t)width);
    int w = (int)wv_utf8_width(t);
    fprintf(out, "%.*s%*s", (int)cut, t, w < width ? width - w : 0, "");
    wv_buf_free(&b);
}

void wv_summary_render(FILE *out, const wv_model *m, size_t skipped)
{
    struct actor_stats *as = calloc(m->nlanes + 1, sizeof *as);
    struct type_stats *ts = NULL;
    size_t nts = 0, tscap = 0;
    samples outside = {0};
    size_t nevents = 0, fails = 0, timeouts = 0, nmsgs = 0, requests = 0;
    int64_t lost = 0;
    if (as == NULL)
        goto fail;
    for (size_t l = 0; l < m->nlanes; l++)
        as[l].peak = -1;
    for (size_t i = 0; i < m->n; i++) {
        const wv_event *e = m->ev[i];
        if (!e->keep)
            continue;
        nevents++;
        const wv_message *g = wv_model_msg(m, e);
        int target = e->kind == WV_RECV ? e->lane : e->kind == WV_SEND && g ? g->to_lane : -1;
        if (target >= 0 && e->depth != WV_NONE && e->depth > as[target].peak)
            as[target].peak = e->depth;
        switch (e->kind) {
        case WV_FAIL:
            fails++;
            if (e->lane >= 0)
                as[e->lane].failures++;
            break;
        case WV_TIMEOUT:
            timeouts++;
            break;
        case WV_LOST:
            if (e->count > 0)
                lost = lost <= INT64_MAX - e->count ? lost + e->count : INT64_MAX;
            break;
        case WV_START:
        case WV_OFFLOAD_START: {
            /* A handler run; a pool run that a loop handler deferred is part
             * of that handler, not a message handled. */
            const wv_run *r = e->run_idx >= 0 ? &m->runs[e->run_idx] : NULL;
            bool deferred = e->kind == WV_OFFLOAD_START && g && g->start;
            if (e->lane < 0 || deferred)
                break;
            as[e->lane].handled++;
            if (r && r->end && r->end->keep)
                samples_add(&as[e->lane].run, r->end->at_ns - e->at_ns);
            break;
        }
        case WV_END:
        case WV_OFFLOAD_END:
            if (e->lane >= 0 && wv_run_failed(e))
                as[e->lane].failures++;
            break;
        case WV_SEND: {
            nmsgs++;
            bool ask = e->msg && strcmp(e->msg, "ask") == 0;
            struct type_stats *t = type_get(&ts, &nts, &tscap, e->type, ask);
            if (t == NULL)
                goto fail;
            t->count++;
            const wv_event *done = NULL;
            if (ask && g)
                done = g->fired;
            else if (g)
                done = g->start ? g->start : g->ostart;
            if (done && done->keep) {
                t->answered++;
                samples_add(&t->lat, done->at_ns - e->at_ns);
                if (ask && done->ok == 0)
                    t->failed++;
            }
            break;
        }
        case WV_RECV:
            if (g && g->outside) {
                requests++;
                const wv_event *r = wv_msg_answer(g);
                if (r && r->keep)
                    samples_add(&outside, r->at_ns - e->at_ns);
            }
            break;
        default:
            break;
        }
    }

    fprintf(out, "actors\n  %-20s %-10s %8s %12s %12s %8s %8s\n", "actor", "node", "handled",
            "mean", "p99", "mailbox", "failed");
    for (size_t l = 1; l < m->nlanes; l++) {
        const wv_lane *ln = &m->lanes[l];
        if (!ln->visible)
            continue;
        fputs("  ", out);
        print_safe(out, ln->actor[0] ? ln->actor : "(code)", 20);
        fputc(' ', out);
        print_safe(out, ln->node, 10);
        fprintf(out, " %8zu", as[l].handled);
        put_stats(out, &as[l].run);
        if (as[l].peak >= 0)
            fprintf(out, " %8lld", (long long)as[l].peak);
        else
            fprintf(out, " %8s", "-");
        fprintf(out, " %8zu\n", as[l].failures);
    }

    fprintf(out, "\nmessages (latency: ask send to fired, tell send to handler start)\n");
    fprintf(out, "  %-20s %-5s %8s %12s %12s %8s\n", "type", "kind", "count", "mean", "p99",
            "failed");
    for (size_t i = 0; i < nts; i++) {
        char buf[32];
        fputs("  ", out);
        print_safe(out, wv_type_name(ts[i].type, buf, sizeof buf), 20);
        fprintf(out, " %-5s %8zu", ts[i].ask ? "ask" : "tell", ts[i].count);
        put_stats(out, &ts[i].lat);
        fprintf(out, " %8zu\n", ts[i].failed);
    }
    if (requests > 0) {
        fprintf(out, "  %-20s %-5s %8zu", "(outside request)", "", requests);
        put_stats(out, &outside);
        fprintf(out, "\n");
    }

    size_t ntraces = 0, nfailed = 0;
    bool *shown = calloc(m->ntraces + 1, sizeof *shown);
    if (shown == NULL)
        goto fail;
    for (size_t i = 0; i < m->n; i++)
        if (m->ev[i]->keep && m->ev[i]->trace_idx >= 0)
            shown[m->ev[i]->trace_idx] = true;
    for (size_t t = 0; t < m->ntraces; t++) {
        ntraces += shown[t];
        nfailed += shown[t] && m->traces[t].failed;
    }
    free(shown);
    fprintf(out, "\ntotals\n");
    fprintf(out, "  events: %zu\n", nevents);
    fprintf(out, "  nodes: %zu\n", m->nnodes);
    fprintf(out, "  traces: %zu (%zu failed)\n", ntraces, nfailed);
    fprintf(out, "  messages: %zu\n", nmsgs);
    fprintf(out, "  requests from outside: %zu\n", requests);
    fprintf(out, "  failures: %zu\n", fails);
    fprintf(out, "  timeouts: %zu\n", timeouts);
    fprintf(out, "  lost events: %lld\n", (long long)lost);
    fprintf(out, "  skipped lines: %zu\n", skipped);
    if (m->duplicates)
        fprintf(out, "  duplicate events dropped: %zu\n", m->duplicates);
    for (size_t k = 0; k < m->nnodes; k++) {
        if (m->nodes[k].nevents == 0)
            continue;
        fprintf(out, "  clock correction of %s: %+.3f ms%s\n", m->nodes[k].name,
                (double)m->nodes[k].offset_ns / 1e6, (int)k == m->ref_node ? " (reference)" : "");
    }
fail:
    if (as != NULL)
        for (size_t l = 0; l < m->nlanes; l++)
            free(as[l].run.v);
    for (size_t i = 0; i < nts; i++)
        free(ts[i].lat.v);
    free(ts);
    free(as);
    free(outside.v);
}
