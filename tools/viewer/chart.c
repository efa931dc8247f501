#include <stdlib.h>
#include <string.h>

#include "chart.h"
#include "text.h"

enum color { C_PLAIN, C_DIM, C_BOLD, C_ASK, C_TELL, C_REPLY, C_FAIL, C_OUT, C_POOL, C_WARN };

static const char *const sgr[] = {
    [C_PLAIN] = "\033[0m", [C_DIM] = "\033[2m",    [C_BOLD] = "\033[1m",    [C_ASK] = "\033[36m",
    [C_TELL] = "\033[32m", [C_REPLY] = "\033[34m", [C_FAIL] = "\033[1;31m", [C_OUT] = "\033[35m",
    [C_POOL] = "\033[33m", [C_WARN] = "\033[33m",
};

typedef struct cell {
    char g[5]; /* one UTF-8 character */
    unsigned char color;
} cell;

/* Where things go on a line: the time column, then the visible lanes
 * lane_w columns each, then the note. */
typedef struct layout {
    int time_w, lane_w, note_x, width;
    int *lane_x; /* per model lane: its centre column, -1 if not drawn */
    int *vis;    /* visible lanes, left to right */
    size_t nvis;
    long *runs_by_lane; /* per lane, its runs sorted by start (for lifelines) */
    size_t *runs_from;  /* lane l's runs are runs_by_lane[runs_from[l]..runs_from[l+1]) */
} layout;

typedef struct ctx {
    FILE *out;
    const wv_model *m;
    const wv_chart_opts *o;
    layout L;
    cell *row;
    wv_buf note;
    long block_trace; /* lifelines show runs of this trace; -2: of any */
} ctx;

static void put_glyph(ctx *c, int x, const char *g, int color)
{
    if (x < 0 || x >= c->L.width)
        return;
    size_t n = wv_utf8_len((unsigned char)g[0]);
    if (n > 4 || strlen(g) < n)
        n = 1;
    memcpy(c->row[x].g, g, n);
    c->row[x].g[n] = '\0';
    c->row[x].color = (unsigned char)color;
}

/* Writes text (made safe for a terminal) from column x, at most cols
 * columns, cutting with '…'. Returns the columns used. */
static int put_text(ctx *c, int x, const char *text, int cols, int color)
{
    wv_buf safe = {0};
    wv_buf_put_safe(&safe, text);
    const char *s = wv_buf_str(&safe);
    int w = (int)wv_utf8_width(s), used = 0;
    bool cut = w > cols;
    int keep = cut ? cols - 1 : w;
    for (int k = 0; k < keep && *s; k++) {
        size_t n = wv_utf8_len((unsigned char)*s);
        char g[5] = {0};
        for (size_t i = 0; i < n && s[i]; i++)
            g[i] = s[i];
        put_glyph(c, x + used++, g, color);
        s += strlen(g) ? strlen(g) : 1;
    }
    if (cut && cols > 0)
        put_glyph(c, x + used++, "…", color);
    wv_buf_free(&safe);
    return used;
}

static bool run_kept(const ctx *c, const wv_run *r)
{
    const wv_event *e = r->start ? r->start : r->end;
    bool keep = (r->start && r->start->keep) || (r->end && r->end->keep);
    return keep && (c->block_trace == -2 || e->trace_idx == c->block_trace);
}

/* What lane l's lifeline looks like at time t: 2 in a pool run, 1 in a
 * loop handler run, 0 idle. */
static int lane_state(const ctx *c, int l, int64_t t)
{
    const layout *L = &c->L;
    int state = 0;
    size_t lo = L->runs_from[l], hi = L->runs_from[l + 1];
    /* The last run starting at or before t, and a few before it: runs on
     * one lane overlap only on the pool. */
    size_t a = lo, b = hi;
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        const wv_run *r = &c->m->runs[L->runs_by_lane[mid]];
        int64_t s = r->start ? r->start->at_ns : r->end->at_ns;
        if (s <= t)
            a = mid + 1;
        else
            b = mid;
    }
    for (size_t k = a, seen = 0; k > lo && seen < 8; k--, seen++) {
        const wv_run *r = &c->m->runs[L->runs_by_lane[k - 1]];
        if (!run_kept(c, r) || r->start == NULL)
            continue;
        if (r->end == NULL || r->end->at_ns > t || (r->end->at_ns == t && r->start->at_ns == t))
            state = state > (r->pool ? 2 : 1) ? state : (r->pool ? 2 : 1);
    }
    return state;
}

static void row_clear(ctx *c, int64_t t)
{
    for (int x = 0; x < c->L.width; x++) {
        strcpy(c->row[x].g, " ");
        c->row[x].color = C_PLAIN;
    }
    if (t >= 0) {
        char ts[32];
        snprintf(ts, sizeof ts, "%*.3f", c->L.time_w - 2, (double)t / 1e6);
        put_text(c, 0, ts, c->L.time_w - 1, C_DIM);
    }
    for (size_t p = 0; p < c->L.nvis; p++) {
        int l = c->L.vis[p];
        int state = t >= 0 ? lane_state(c, l, t) : 0;
        put_glyph(c, c->L.lane_x[l],
                  state == 2   ? "║"
                  : state == 1 ? "┃"
                               : "│",
                  state == 2   ? C_POOL
                  : state == 1 ? C_BOLD
                               : C_DIM);
    }
    c->note.len = 0;
    if (c->note.p)
        c->note.p[0] = '\0';
}

static void row_print(ctx *c)
{
    int last = c->L.width;
    while (last > 0 && strcmp(c->row[last - 1].g, " ") == 0)
        last--;
    int color = C_PLAIN;
    for (int x = 0; x < last; x++) {
        if (c->o->color && c->row[x].color != color) {
            fputs(sgr[C_PLAIN], c->out);
            if (c->row[x].color != C_PLAIN)
                fputs(sgr[c->row[x].color], c->out);
            color = c->row[x].color;
        }
        fputs(c->row[x].g, c->out);
    }
    if (c->o->color && color != C_PLAIN)
        fputs(sgr[C_PLAIN], c->out);
    fputc('\n', c->out);
}

/* An arrow from column xa to xb: a tail glyph, a body (dashed for answers)
 * with label in the middle when it fits, and a head. */
static void draw_arrow(ctx *c, int xa, int xb, const char *label, int color, bool dashed,
                       const char *tail)
{
    if (xa < 0 || xb < 0)
        return;
    if (xa == xb) {
        put_glyph(c, xa, "↺", color);
        return;
    }
    int dir = xb > xa ? 1 : -1;
    const char *body = dashed ? "╌" : "─";
    put_glyph(c, xa, tail, color);
    for (int x = xa + dir; x != xb; x += dir)
        put_glyph(c, x, body, color);
    put_glyph(c, xb, dir > 0 ? "▶" : "◀", color);
    int inner = abs(xb - xa) - 1, lo = xa < xb ? xa : xb;
    if (label == NULL || inner < 5)
        return;
    wv_buf text = {0};
    wv_buf_put_safe(&text, label);
    int w = (int)wv_utf8_width(wv_buf_str(&text)) + 2;
    int room = inner - 2;
    if (w > room)
        w = room;
    int x = lo + 1 + (inner - w) / 2;
    put_glyph(c, x, " ", color);
    int used = put_text(c, x + 1, wv_buf_str(&text), w - 2, color);
    put_glyph(c, x + 1 + used, " ", color);
    wv_buf_free(&text);
}

static int lane_x(const ctx *c, int lane)
{
    return lane >= 0 && (size_t)lane < c->m->nlanes ? c->L.lane_x[lane] : -1;
}

static const char *lane_addr(const wv_model *m, int lane, char *buf, size_t size)
{
    if (lane < 0)
        return "?";
    const wv_lane *l = &m->lanes[lane];
    if (l->node == NULL)
        return "outside";
    snprintf(buf, size, "%s@%s", l->actor[0] ? l->actor : "(code)", l->node);
    return buf;
}

static void note_ms(wv_buf *b, const char *before, int64_t ns)
{
    char t[48];
    wv_fmt_ms(t, sizeof t, ns);
    wv_buf_printf(b, "%s%s", before, t);
}

static void note_preview(wv_buf *b, const wv_event *e)
{
    if (e->preview && e->preview[0]) {
        wv_buf_puts(b, " \"");
        size_t cut = wv_utf8_prefix(e->preview, 40);
        wv_buf_append(b, e->preview, cut);
        wv_buf_puts(b, e->preview[cut] ? "…\"" : "\"");
    }
    if (e->size != WV_NONE)
        wv_buf_printf(b, " %lld B", (long long)e->size);
}

/* Prints the failure text of e under its row, one line per row. */
static void failure_lines(ctx *c, const wv_event *e)
{
    const char *s = e->failure;
    if (s == NULL)
        return;
    int shown = 0;
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);
        /* The text gets the whole width after the time column: it is read
         * whole, and the lanes resume on the next row. */
        int x = c->L.time_w + 1;
        row_clear(c, -1);
        for (int k = x; k < c->L.width; k++)
            put_glyph(c, k, " ", C_PLAIN);
        if (++shown > 40) {
            put_text(c, x, "┆ … (more in the failure text)", c->L.width - x, C_FAIL);
            row_print(c);
            return;
        }
        char *line = malloc(n + 5);
        if (line == NULL)
            return;
        memcpy(line, "┆ ", 4);
        memcpy(line + 4, s, n);
        line[n + 4] = '\0';
        put_text(c, x, line, c->L.width - x, C_FAIL);
        free(line);
        row_print(c);
        s += n + (nl ? 1 : 0);
    }
}

static void event_row(ctx *c, const wv_event *e)
{
    const wv_model *m = c->m;
    const wv_message *g = wv_model_msg(m, e);
    wv_buf *n = &c->note;
    char title[160], addr[256];
    int x = lane_x(c, e->lane);
    if (g != NULL)
        wv_msg_title(g, title, sizeof title);
    else
        snprintf(title, sizeof title, "message");
    row_clear(c, e->at_ns);
    switch (e->kind) {
    case WV_SEND: {
        bool ask = e->msg && strcmp(e->msg, "ask") == 0;
        int to = g ? g->to_lane : -1;
        draw_arrow(c, x, lane_x(c, to), title, ask ? C_ASK : C_TELL, false, "●");
        if (lane_x(c, to) < 0)
            put_glyph(c, x, "●", ask ? C_ASK : C_TELL);
        wv_buf_printf(n, "%s → %s", title, e->to ? e->to : "?");
        note_preview(n, e);
        break;
    }
    case WV_RECV:
        if (g && g->outside) {
            draw_arrow(c, lane_x(c, WV_OUTSIDE_LANE), x, e->label ? e->label : "request", C_OUT,
                       false, "●");
            wv_buf_printf(n, "%s from outside", e->label ? e->label : "request");
            break;
        }
        put_glyph(c, x, "◆", C_ASK);
        /* The receiving node may know the sender by its id only ("#1f@a",
         * or "" for code outside actors); the send has its name. */
        wv_buf_printf(n, "recv from %s",
                      g && g->send ? lane_addr(m, g->from_lane, addr, sizeof addr)
                      : e->from    ? e->from
                                   : "?");
        if (g && g->send)
            note_ms(n, ", in flight ", e->at_ns - g->send->at_ns);
        if (e->depth != WV_NONE)
            wv_buf_printf(n, ", depth %lld", (long long)e->depth);
        break;
    case WV_START:
    case WV_OFFLOAD_START: {
        bool pool = e->kind == WV_OFFLOAD_START;
        put_glyph(c, x, pool ? "╦" : "┳", pool ? C_POOL : C_BOLD);
        const char *what = wv_run_name(e);
        wv_buf_printf(n, "%s%s", pool ? "pool: " : "start ", what);
        const wv_event *arrived = g ? (g->recv ? g->recv : g->send) : NULL;
        if (arrived && arrived->at_ns <= e->at_ns && (!pool || !g->start))
            note_ms(n, ", queued ", e->at_ns - arrived->at_ns);
        break;
    }
    case WV_END:
    case WV_OFFLOAD_END: {
        bool pool = e->kind == WV_OFFLOAD_END;
        bool failed = wv_run_failed(e);
        put_glyph(c, x, failed ? "✗" : pool ? "╩" : "┻", failed ? C_FAIL : pool ? C_POOL : C_BOLD);
        const char *what = wv_run_name(e);
        wv_buf_printf(n, "%s%s%s", failed ? "✗ " : "", pool ? "pool done: " : "end ", what);
        const wv_run *r = e->run_idx >= 0 ? &m->runs[e->run_idx] : NULL;
        if (r && r->start)
            note_ms(n, " ", e->at_ns - r->start->at_ns);
        if (e->outcome)
            wv_buf_printf(n, " → %s", e->outcome);
        break;
    }
    case WV_REPLY:
    case WV_FAIL: {
        bool fail = e->kind == WV_FAIL;
        bool outside = g && g->outside;
        int to = outside ? WV_OUTSIDE_LANE : g ? g->from_lane : -1;
        char label[160];
        if (outside)
            snprintf(label, sizeof label, "%s%s", fail ? "✗ " : "", e->label ? e->label : "answer");
        else if (fail)
            snprintf(label, sizeof label, "✗ %s", e->code ? e->code : "fail");
        else if (e->size != WV_NONE)
            snprintf(label, sizeof label, "reply %lld B", (long long)e->size);
        else
            snprintf(label, sizeof label, "reply");
        draw_arrow(c, x, lane_x(c, to), label,
                   fail      ? C_FAIL
                   : outside ? C_OUT
                             : C_REPLY,
                   true, fail ? "✗" : "○");
        if (lane_x(c, to) < 0)
            put_glyph(c, x, fail ? "✗" : "○", fail ? C_FAIL : C_REPLY);
        if (fail && (e->code || e->message || !outside))
            wv_buf_printf(n, "✗ %s: %s", e->code ? e->code : "failure",
                          e->message ? e->message : "");
        else
            wv_buf_printf(n, "%s", label);
        if (outside) {
            if (g->recv)
                note_ms(n, ", request took ", e->at_ns - g->recv->at_ns);
        } else {
            wv_buf_printf(n, " → %s", lane_addr(m, to, addr, sizeof addr));
        }
        break;
    }
    case WV_FIRED: {
        bool failed = e->ok == 0;
        put_glyph(c, x, failed ? "✗" : "◉", failed ? C_FAIL : C_REPLY);
        wv_buf_printf(n, "%sfired %s", failed ? "✗ " : "", title);
        if (g && g->send)
            note_ms(n, " ⟲ ", e->at_ns - g->send->at_ns);
        if (failed)
            wv_buf_puts(n, " (failed)");
        break;
    }
    case WV_TIMEOUT:
        put_glyph(c, x, "◷", C_FAIL);
        wv_buf_printf(n, "✗ timeout %s", title);
        if (g && g->send)
            note_ms(n, " after ", e->at_ns - g->send->at_ns);
        break;
    case WV_ACTOR:
        put_glyph(c, x, "+", C_BOLD);
        wv_buf_printf(n, "spawn %s", e->actor ? e->actor : "?");
        if (e->behaviour)
            wv_buf_printf(n, " (%s)", e->behaviour);
        break;
    case WV_STOP:
        put_glyph(c, x, e->ok == 0 ? "✗" : "■", e->ok == 0 ? C_FAIL : C_BOLD);
        if (e->ok == 0 && (e->code || e->message))
            wv_buf_printf(n, "✗ crashed %s%s%s", e->code ? e->code : "", e->message ? ": " : "",
                          e->message ? e->message : "");
        else
            wv_buf_puts(n, e->ok == 0 ? "✗ stopped, not ok" : "stop");
        break;
    case WV_NODE_UP:
    case WV_NODE_DOWN:
        wv_buf_printf(n, "%s: peer %s %s", e->node, e->peer ? e->peer : "?",
                      e->kind == WV_NODE_UP ? "up" : "down");
        if (e->why)
            wv_buf_printf(n, " (%s)", e->why);
        break;
    case WV_LOST:
        wv_buf_printf(n, "! %s lost %lld events", e->node,
                      (long long)(e->count == WV_NONE ? 0 : e->count));
        break;
    case WV_CONFIG:
        wv_buf_printf(n, "%s: tracing", e->node);
        if (e->sample == e->sample)
            wv_buf_printf(n, " sample=%g", e->sample);
        if (e->cfg_actors && e->cfg_actors[0])
            wv_buf_printf(n, " actors=%s", e->cfg_actors);
        if (e->cfg_types && e->cfg_types[0])
            wv_buf_printf(n, " types=%s", e->cfg_types);
        break;
    case WV_KIND_COUNT:
        break;
    }
    int note_color = C_PLAIN;
    if ((e->kind == WV_FAIL || e->kind == WV_TIMEOUT ||
         ((e->kind == WV_FIRED || e->kind == WV_STOP) && e->ok == 0)))
        note_color = C_FAIL;
    else if (e->kind == WV_LOST)
        note_color = C_WARN;
    else if (e->kind == WV_END || e->kind == WV_OFFLOAD_END)
        note_color = wv_run_failed(e) ? C_FAIL : C_PLAIN;
    put_text(c, c->L.note_x, wv_buf_str(n), c->L.width - c->L.note_x, note_color);
    c->note.len = 0;
    row_print(c);
    if (e->kind == WV_FAIL || e->kind == WV_STOP)
        failure_lines(c, e);
}

static int64_t run_start(const wv_model *m, long r)
{
    const wv_run *run = &m->runs[r];
    return run->start ? run->start->at_ns : run->end->at_ns;
}

static int layout_make(const wv_model *m, const wv_chart_opts *o, layout *L)
{
    *L = (layout){0};
    L->lane_x = malloc((m->nlanes + 1) * sizeof *L->lane_x);
    L->vis = malloc((m->nlanes + 1) * sizeof *L->vis);
    L->runs_by_lane = malloc((m->nruns + 1) * sizeof *L->runs_by_lane);
    L->runs_from = calloc(m->nlanes + 2, sizeof *L->runs_from);
    if (!L->lane_x || !L->vis || !L->runs_by_lane || !L->runs_from)
        return -1;
    int64_t last = 0;
    for (size_t i = 0; i < m->n; i++)
        if (m->ev[i]->keep && m->ev[i]->at_ns > last)
            last = m->ev[i]->at_ns;
    char ts[32];
    L->time_w = snprintf(ts, sizeof ts, "%.3f", (double)last / 1e6) + 2;
    if (L->time_w < 9)
        L->time_w = 9;
    for (size_t l = 0; l < m->nlanes; l++) {
        L->lane_x[l] = -1;
        if (m->lanes[l].visible)
            L->vis[L->nvis++] = (int)l;
    }
    int width = o->width > 0 ? o->width : 120;
    /* The notes say what each row is; lanes get what is left, within
     * bounds that keep names and arrow labels legible. */
    int note_min = width >= 120 ? 46 : 36;
    int lane_w = L->nvis ? (width - L->time_w - note_min) / (int)L->nvis : 10;
    if (lane_w > 18)
        lane_w = 18;
    if (lane_w < 7)
        lane_w = 7;
    L->lane_w = lane_w;
    for (size_t p = 0; p < L->nvis; p++)
        L->lane_x[L->vis[p]] = L->time_w + (int)p * lane_w + lane_w / 2;
    L->note_x = L->time_w + (int)L->nvis * lane_w + 1;
    L->width = width > L->note_x + 20 ? width : L->note_x + 20;
    /* Runs per lane, by start time (runs are made in merged order). */
    for (size_t r = 0; r < m->nruns; r++)
        L->runs_from[m->runs[r].lane + 1]++;
    for (size_t l = 0; l < m->nlanes; l++)
        L->runs_from[l + 1] += L->runs_from[l];
    size_t *fill = calloc(m->nlanes + 1, sizeof *fill);
    if (fill == NULL)
        return -1;
    for (size_t r = 0; r < m->nruns; r++) {
        int l = m->runs[r].lane;
        L->runs_by_lane[L->runs_from[l] + fill[l]++] = (long)r;
    }
    free(fill);
    /* Runs are in the order of their first event; sort each lane's by start. */
    for (size_t l = 0; l < m->nlanes; l++)
        for (size_t i = L->runs_from[l] + 1; i < L->runs_from[l + 1]; i++)
            for (size_t j = i; j > L->runs_from[l] && run_start(m, L->runs_by_lane[j - 1]) >
                                                          run_start(m, L->runs_by_lane[j]);
                 j--) {
                long t = L->runs_by_lane[j];
                L->runs_by_lane[j] = L->runs_by_lane[j - 1];
                L->runs_by_lane[j - 1] = t;
            }
    return 0;
}

static void layout_free(layout *L)
{
    free(L->lane_x);
    free(L->vis);
    free(L->runs_by_lane);
    free(L->runs_from);
    *L = (layout){0};
}

static void header(ctx *c)
{
    const wv_model *m = c->m;
    const layout *L = &c->L;
    /* Node names over their lanes. */
    row_clear(c, -1);
    for (size_t p = 0; p < L->nvis; p++)
        put_glyph(c, L->lane_x[L->vis[p]], " ", C_PLAIN);
    for (size_t p = 0; p < L->nvis;) {
        const wv_lane *first = &m->lanes[L->vis[p]];
        size_t q = p;
        while (q < L->nvis && m->lanes[L->vis[q]].node_idx == first->node_idx)
            q++;
        if (first->node != NULL) {
            int x0 = L->time_w + (int)p * L->lane_w + 1;
            int x1 = L->time_w + (int)q * L->lane_w - 1;
            for (int x = x0; x < x1; x++)
                put_glyph(c, x, "─", C_DIM);
            int w = (int)wv_utf8_width(first->node) + 2;
            if (w > x1 - x0)
                w = x1 - x0;
            int x = x0 + (x1 - x0 - w) / 2;
            if (w >= 3) {
                put_glyph(c, x, " ", C_BOLD);
                int used = put_text(c, x + 1, first->node, w - 2, C_BOLD);
                put_glyph(c, x + 1 + used, " ", C_BOLD);
            }
        }
        p = q;
    }
    row_print(c);
    /* Lane names. */
    row_clear(c, -1);
    put_text(c, 0, "ms", L->time_w, C_DIM);
    for (size_t p = 0; p < L->nvis; p++) {
        const wv_lane *l = &m->lanes[L->vis[p]];
        const char *name = l->actor[0] ? l->actor : "(code)";
        int w = (int)wv_utf8_width(name);
        if (w > L->lane_w - 1)
            w = L->lane_w - 1;
        int x = L->lane_x[L->vis[p]] - w / 2;
        put_glyph(c, L->lane_x[L->vis[p]], " ", C_PLAIN);
        put_text(c, x, name, w, l->node ? C_BOLD : C_OUT);
    }
    row_print(c);
}

static void block_heading(ctx *c, const wv_trace *t)
{
    char line[512], lat[48];
    row_clear(c, -1);
    for (size_t p = 0; p < c->L.nvis; p++)
        put_glyph(c, c->L.lane_x[c->L.vis[p]], " ", C_PLAIN);
    if (t == NULL) {
        snprintf(line, sizeof line, "━━ node events ");
    } else {
        wv_fmt_ms(lat, sizeof lat, t->latency_ns);
        snprintf(line, sizeof line, "━━ trace %.8s · %s · %s%s ", t->id,
                 t->label ? t->label : "(no outside request)", lat, t->failed ? " · ✗ failed" : "");
    }
    int color = t && t->failed ? C_FAIL : C_BOLD;
    int used = put_text(c, 0, line, c->L.width, color);
    for (int x = used; x < c->L.width; x++)
        put_glyph(c, x, "━", color);
    row_print(c);
}

static int ctx_init(ctx *c, FILE *out, const wv_model *m, const wv_chart_opts *o)
{
    *c = (ctx){.out = out, .m = m, .o = o, .block_trace = -2};
    if (layout_make(m, o, &c->L) < 0)
        return -1;
    c->row = malloc((size_t)c->L.width * sizeof *c->row);
    return c->row ? 0 : -1;
}

static void ctx_free(ctx *c)
{
    layout_free(&c->L);
    free(c->row);
    wv_buf_free(&c->note);
}

void wv_chart_render(FILE *out, const wv_model *m, const wv_chart_opts *o)
{
    ctx c;
    if (ctx_init(&c, out, m, o) < 0) {
        fprintf(stderr, "weft-view: out of memory drawing the chart\n");
        ctx_free(&c);
        return;
    }
    header(&c);
    bool untraced = false, any_trace = false;
    for (size_t i = 0; i < m->n; i++) {
        untraced |= m->ev[i]->keep && m->ev[i]->trace_idx < 0;
        any_trace |= m->ev[i]->keep && m->ev[i]->trace_idx >= 0;
    }
    if (untraced) {
        c.block_trace = -1;
        if (any_trace)
            block_heading(&c, NULL);
        for (size_t i = 0; i < m->n; i++)
            if (m->ev[i]->keep && m->ev[i]->trace_idx < 0)
                event_row(&c, m->ev[i]);
    }
    /* The kept events of each trace, in merged order: a counting sort by
     * trace, so that many traces cost no more than one. */
    size_t *from = calloc(m->ntraces + 2, sizeof *from);
    const wv_event **by_trace = malloc((m->n + 1) * sizeof *by_trace);
    if (from == NULL || by_trace == NULL) {
        fprintf(stderr, "weft-view: out of memory drawing the chart\n");
        goto done;
    }
    for (size_t i = 0; i < m->n; i++)
        if (m->ev[i]->keep && m->ev[i]->trace_idx >= 0)
            from[m->ev[i]->trace_idx + 1]++;
    for (size_t t = 0; t < m->ntraces; t++)
        from[t + 1] += from[t];
    for (size_t i = 0; i < m->n; i++)
        if (m->ev[i]->keep && m->ev[i]->trace_idx >= 0)
            by_trace[from[m->ev[i]->trace_idx]++] = m->ev[i];
    for (size_t t = 0, at = 0; t < m->ntraces; t++) {
        if (at == from[t])
            continue; /* nothing of it is shown */
        c.block_trace = (long)t;
        block_heading(&c, &m->traces[t]);
        for (; at < from[t]; at++)
            event_row(&c, by_trace[at]);
    }
done:
    free(from);
    free(by_trace);
    ctx_free(&c);
}

/* The visible lanes as one string, to tell when the header must change. */
static char *lanes_key(const wv_model *m, int lane_w)
{
    wv_buf b = {0};
    wv_buf_printf(&b, "%d|", lane_w);
    for (size_t l = 0; l < m->nlanes; l++)
        if (m->lanes[l].visible)
            wv_buf_printf(&b, "%s@%s|", m->lanes[l].actor,
                          m->lanes[l].node ? m->lanes[l].node : "");
    if (b.oom) {
        wv_buf_free(&b);
        return NULL;
    }
    return b.p ? b.p : calloc(1, 1);
}

void wv_chart_follow_rows(FILE *out, const wv_model *m, const wv_chart_opts *o, wv_chart_follow *f)
{
    ctx c;
    if (ctx_init(&c, out, m, o) < 0) {
        ctx_free(&c);
        return;
    }
    char *key = lanes_key(m, c.L.lane_w);
    bool any = false;
    for (size_t i = 0; i < m->n && !any; i++)
        any = m->ev[i]->keep && !m->ev[i]->shown;
    if (any && key && (f->lanes_key == NULL || strcmp(key, f->lanes_key) != 0)) {
        header(&c);
        free(f->lanes_key);
        f->lanes_key = key;
        key = NULL;
    }
    free(key);
    for (size_t i = 0; i < m->n; i++) {
        wv_event *e = m->ev[i];
        if (!e->keep || e->shown)
            continue;
        e->shown = true;
        event_row(&c, e);
    }
    fflush(out);
    ctx_free(&c);
}

void wv_chart_follow_free(wv_chart_follow *f)
{
    free(f->lanes_key);
    f->lanes_key = NULL;
}
