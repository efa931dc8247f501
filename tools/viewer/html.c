#include <stdlib.h>
#include <string.h>

#include "html.h"
#include "text.h"

#define MARKER "@WEFT_DATA@"

/* Writes the data as JSON: lanes are the visible ones only, renumbered;
 * times are milliseconds on the merged timeline. */
typedef struct writer {
    FILE *f;
    const wv_model *m;
    int *hl; /* model lane -> index in the page's lanes, -1 if not shown */
    bool first;
} writer;

static void sep(writer *w)
{
    if (!w->first)
        fputc(',', w->f);
    w->first = false;
}

static void put_str(writer *w, const char *key, const char *v)
{
    fprintf(w->f, ",\"%s\":", key);
    if (v == NULL)
        fputs("null", w->f);
    else
        wv_json_put(w->f, v, true);
}

static void put_ms(writer *w, const char *key, int64_t ns)
{
    fprintf(w->f, ",\"%s\":%.6f", key, (double)ns / 1e6);
}

static int lane_of(const writer *w, int lane)
{
    return lane >= 0 && (size_t)lane < w->m->nlanes ? w->hl[lane] : -1;
}

static void arrow(writer *w, const char *kind, int from, int to, const wv_event *a,
                  const wv_event *b, const char *label, const wv_event *info, int64_t rtt,
                  bool has_rtt)
{
    if (lane_of(w, from) < 0 || lane_of(w, to) < 0)
        return;
    int64_t t1 = b && b->keep ? b->at_ns : a->at_ns;
    char span[24];
    snprintf(span, sizeof span, "%016llx", (unsigned long long)a->span);
    sep(w);
    fprintf(w->f, "\n{\"kind\":\"%s\",\"from\":%d,\"to\":%d", kind, lane_of(w, from),
            lane_of(w, to));
    put_ms(w, "t0", a->at_ns);
    put_ms(w, "t1", t1);
    put_ms(w, "hop", t1 - a->at_ns);
    if (has_rtt)
        put_ms(w, "rtt", rtt);
    else
        fputs(",\"rtt\":null", w->f);
    fprintf(w->f, ",\"trace\":%ld", a->trace_idx);
    put_str(w, "label", label);
    put_str(w, "preview", info ? info->preview : NULL);
    if (info && info->size != WV_NONE)
        fprintf(w->f, ",\"size\":%lld", (long long)info->size);
    else
        fputs(",\"size\":null", w->f);
    put_str(w, "span", a->span ? span : NULL);
    fputc('}', w->f);
}

static void arrows_write(writer *w)
{
    const wv_model *m = w->m;
    w->first = true;
    fputs(",\"arrows\":[", w->f);
    for (size_t i = 0; i < m->nmsgs; i++) {
        const wv_message *g = &m->msgs[i];
        char title[160], label[200];
        wv_msg_title(g, title, sizeof title);
        const wv_event *ans = wv_msg_answer(g);
        if (g->outside) {
            if (g->recv && g->recv->keep)
                arrow(w, "in", WV_OUTSIDE_LANE, g->recv->lane, g->recv, NULL, title, g->recv, 0,
                      false);
            if (ans && ans->keep) {
                snprintf(label, sizeof label, "%s%s", g->fail ? "\u2717 " : "",
                         ans->label ? ans->label : "answer");
                arrow(w, g->fail ? "fail" : "out", ans->lane, WV_OUTSIDE_LANE, ans, NULL, label,
                      ans, g->recv ? ans->at_ns - g->recv->at_ns : 0, g->recv != NULL);
            }
            continue;
        }
        if (g->send && g->send->keep) {
            const wv_event *arrive = wv_msg_arrival(g);
            bool ask = g->send->msg && strcmp(g->send->msg, "ask") == 0;
            arrow(w, ask ? "ask" : "tell", g->send->lane, g->to_lane, g->send, arrive, title,
                  g->send, 0, false);
        }
        if (ans && ans->keep) {
            if (g->fail)
                snprintf(label, sizeof label, "\u2717 %s", ans->code ? ans->code : "fail");
            else
                snprintf(label, sizeof label, "reply %s", title);
            bool rtt = g->send && g->fired && g->fired->keep;
            arrow(w, g->fail ? "fail" : "reply", ans->lane, g->from_lane, ans, g->fired, label, ans,
                  rtt ? g->fired->at_ns - g->send->at_ns : 0, rtt);
        }
    }
    fputs("]", w->f);
}

static void runs_write(writer *w)
{
    const wv_model *m = w->m;
    w->first = true;
    fputs(",\"runs\":[", w->f);
    for (size_t r = 0; r < m->nruns; r++) {
        const wv_run *run = &m->runs[r];
        const wv_event *s = run->start, *e = run->end;
        if (!((s && s->keep) || (e && e->keep)) || lane_of(w, run->lane) < 0)
            continue;
        const wv_event *any = s ? s : e;
        sep(w);
        fprintf(w->f, "\n{\"lane\":%d,\"pool\":%s", lane_of(w, run->lane),
                run->pool ? "true" : "false");
        put_ms(w, "t0", any->at_ns);
        put_ms(w, "t1", e ? e->at_ns : any->at_ns);
        fprintf(w->f, ",\"trace\":%ld", any->trace_idx);
        put_str(w, "label", wv_run_name(any));
        put_str(w, "outcome", e ? e->outcome : NULL);
        fprintf(w->f, ",\"ok\":%s", e && e->ok == 0 ? "false" : "true");
        fputc('}', w->f);
    }
    fputs("]", w->f);
}

/* A mark: kind, where, a one-line text; failures also carry their text. */
static void mark(writer *w, const wv_event *e, const char *kind, const char *what, bool failure)
{
    sep(w);
    fprintf(w->f, "\n{\"kind\":\"%s\",\"lane\":%d", kind, lane_of(w, e->lane));
    put_ms(w, "t", e->at_ns);
    fprintf(w->f, ",\"trace\":%ld", e->trace_idx);
    put_str(w, "node", e->node);
    put_str(w, "text", what);
    if (e->ok >= 0)
        fprintf(w->f, ",\"ok\":%s", e->ok ? "true" : "false");
    if (failure) {
        put_str(w, "code", e->code);
        put_str(w, "message", e->message);
        put_str(w, "failure", e->failure ? e->failure : "");
    }
    fputc('}', w->f);
}

static void marks_write(writer *w)
{
    const wv_model *m = w->m;
    w->first = true;
    fputs(",\"marks\":[", w->f);
    for (size_t i = 0; i < m->n; i++) {
        const wv_event *e = m->ev[i];
        const wv_message *g = wv_model_msg(m, e);
        wv_buf text = {0};
        char title[160] = "message";
        if (!e->keep)
            continue;
        if (g)
            wv_msg_title(g, title, sizeof title);
        switch (e->kind) {
        case WV_FAIL:
            wv_buf_printf(&text, "\u2717 %s: %s", e->code ? e->code : "failure",
                          e->message ? e->message : "");
            mark(w, e, "fail", wv_buf_str(&text), true);
            break;
        case WV_TIMEOUT:
            wv_buf_printf(&text, "\u2717 timeout: %s", title);
            mark(w, e, "timeout", wv_buf_str(&text), true);
            break;
        case WV_END:
        case WV_OFFLOAD_END:
            if (wv_run_failed(e)) {
                wv_buf_printf(&text, "\u2717 handler %s failed", e->handler ? e->handler : "");
                mark(w, e, "handler-failed", wv_buf_str(&text), true);
            }
            break;
        case WV_STOP:
            wv_buf_printf(&text, "%s %s", e->ok == 0 ? "\u2717 crashed" : "stopped",
                          e->actor ? e->actor : "");
            mark(w, e, e->ok == 0 ? "crash" : "stop", wv_buf_str(&text), e->ok == 0);
            break;
        case WV_FIRED:
            wv_buf_printf(&text, "fired %s%s", title, e->ok == 0 ? " (failed)" : "");
            mark(w, e, "fired", wv_buf_str(&text), false);
            break;
        case WV_RECV:
            if (g == NULL || !g->outside) {
                wv_buf_printf(&text, "recv from %s", e->from ? e->from : "?");
                if (e->depth != WV_NONE)
                    wv_buf_printf(&text, ", depth %lld", (long long)e->depth);
                mark(w, e, "recv", wv_buf_str(&text), false);
            }
            break;
        case WV_ACTOR:
            wv_buf_printf(&text, "spawn %s%s%s%s", e->actor ? e->actor : "",
                          e->behaviour ? " (" : "", e->behaviour ? e->behaviour : "",
                          e->behaviour ? ")" : "");
            mark(w, e, "spawn", wv_buf_str(&text), false);
            break;
        case WV_NODE_UP:
        case WV_NODE_DOWN:
            wv_buf_printf(&text, "%s: peer %s %s%s%s", e->node, e->peer ? e->peer : "?",
                          e->kind == WV_NODE_UP ? "up" : "down", e->why ? ": " : "",
                          e->why ? e->why : "");
            mark(w, e, "node", wv_buf_str(&text), false);
            break;
        case WV_LOST:
            wv_buf_printf(&text, "%s lost %lld events", e->node,
                          (long long)(e->count == WV_NONE ? 0 : e->count));
            mark(w, e, "lost", wv_buf_str(&text), false);
            break;
        default:
            break;
        }
        wv_buf_free(&text);
    }
    fputs("]", w->f);
}

static void data_write(writer *w, const char *title, size_t skipped)
{
    const wv_model *m = w->m;
    FILE *f = w->f;
    size_t nevents = 0;
    for (size_t i = 0; i < m->n; i++)
        nevents += m->ev[i]->keep;
    fputs("{\"title\":", f);
    wv_json_put(f, title, true);
    fprintf(f, ",\"events\":%zu,\"skipped\":%zu,\"lost\":%lld,\"origin_wall_us\":%lld", nevents,
            skipped, (long long)m->lost, (long long)m->origin_wall_us);
    fputs(",\"nodes\":[", f);
    w->first = true;
    for (size_t k = 0; k < m->nnodes; k++) {
        if (m->nodes[k].nevents == 0)
            continue;
        sep(w);
        fputs("{\"name\":", f);
        wv_json_put(f, m->nodes[k].name, true);
        fprintf(f, ",\"offset_ms\":%.6f,\"ref\":%s}", (double)m->nodes[k].offset_ns / 1e6,
                (int)k == m->ref_node ? "true" : "false");
    }
    fputs("],\"lanes\":[", f);
    w->first = true;
    for (size_t l = 0; l < m->nlanes; l++) {
        const wv_lane *ln = &m->lanes[l];
        if (w->hl[l] < 0)
            continue;
        sep(w);
        fputs("\n{\"node\":", f);
        if (ln->node)
            wv_json_put(f, ln->node, true);
        else
            fputs("null", f);
        put_str(w, "actor", ln->actor);
        put_str(w, "behaviour", ln->behaviour);
        fputc('}', f);
    }
    fputs("],\"traces\":[", f);
    w->first = true;
    for (size_t t = 0; t < m->ntraces; t++) {
        const wv_trace *tr = &m->traces[t];
        sep(w);
        fputs("\n{\"id\":", f);
        wv_json_put(f, tr->id, true);
        put_str(w, "label", tr->label);
        put_ms(w, "start", tr->first_ns);
        put_ms(w, "end", tr->last_ns);
        put_ms(w, "latency", tr->latency_ns);
        fprintf(f, ",\"failed\":%s,\"events\":%zu,\"kept\":%s}", tr->failed ? "true" : "false",
                tr->nevents, tr->keep ? "true" : "false");
    }
    fputs("]", f);
    arrows_write(w);
    runs_write(w);
    marks_write(w);
    fputs("}", f);
}

int wv_html_render(FILE *out, const wv_model *m, const char *title, size_t skipped)
{
    const char *tpl = wv_view_html;
    const char *at = strstr(tpl, MARKER);
    if (at == NULL)
        return -1;
    writer w = {.f = out, .m = m};
    w.hl = malloc((m->nlanes + 1) * sizeof *w.hl);
    if (w.hl == NULL)
        return -1;
    int k = 0;
    for (size_t l = 0; l < m->nlanes; l++)
        w.hl[l] = m->lanes[l].visible ? k++ : -1;
    fwrite(tpl, 1, (size_t)(at - tpl), out);
    data_write(&w, title, skipped);
    fputs(at + strlen(MARKER), out);
    free(w.hl);
    return 0;
}
