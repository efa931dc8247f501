#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <weft/alloc.h>
#include <weft/failure.h>

#include "failure_index.h"
#include "strbuf.h"

struct frame_slot {
    wf_frame f;
    char *mem; /* owns the frame's strings, in one block */
};

struct wf_failure {
    atomic_uint refs;
    int code;
    bool immutable; /* the shared out-of-memory stand-in */
    bool has_index; /* a gather's first error: index is the input's */
    size_t index;
    char *message;
    wf_failure *cause;
    size_t nframes, cap;
    struct frame_slot *frames;
};

/* Returned when a failure cannot be allocated; never freed or changed. */
static wf_failure oom_failure = {.code = WF_ENOMEM, .immutable = true, .message = "out of memory"};

wf_failure *wf_failure_new_at(int code, const char *file, int line, const char *func,
                              const char *fmt, ...)
{
    wf_failure *f = wf_malloc(sizeof *f);
    if (f == NULL)
        return &oom_failure;
    *f = (wf_failure){.code = code};
    atomic_init(&f->refs, 1);

    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || (f->message = wf_malloc((size_t)n + 1)) == NULL)
        goto fail;
    va_start(ap, fmt);
    vsnprintf(f->message, (size_t)n + 1, fmt, ap);
    va_end(ap);

    wf_failure_add_frame(f, &(wf_frame){.file = file, .line = line, .func = func});
    if (f->nframes == 0)
        goto fail;
    return f;

fail:
    wf_free(f->frames);
    wf_free(f->message);
    wf_free(f);
    return &oom_failure;
}

wf_failure *wf_failure_new_bare(int code, const char *message)
{
    wf_failure *f = wf_malloc(sizeof *f);
    if (f == NULL)
        return &oom_failure;
    *f = (wf_failure){.code = code};
    atomic_init(&f->refs, 1);
    if ((f->message = wf_strdup(message)) == NULL) {
        wf_free(f);
        return &oom_failure;
    }
    return f;
}

wf_failure *wf_failure_ref(wf_failure *f)
{
    if (!f->immutable)
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

void wf_failure_release(wf_failure *f)
{
    /* Causes are released in a loop, not by recursion: a long cause chain
     * cannot exhaust the stack. */
    while (f != NULL && !f->immutable) {
        if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
            return;
        wf_failure *cause = f->cause;
        for (size_t i = 0; i < f->nframes; i++)
            wf_free(f->frames[i].mem);
        wf_free(f->frames);
        wf_free(f->message);
        wf_free(f);
        f = cause;
    }
}

static size_t slen(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

static const char *scopy(char **dst, const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    const char *p = memcpy(*dst, s, n);
    *dst += n;
    return p;
}

wf_failure *wf_failure_add_frame(wf_failure *f, const wf_frame *fr)
{
    if (f->immutable)
        return f;
    if (f->nframes == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 4;
        struct frame_slot *p = wf_realloc(f->frames, cap * sizeof *p);
        if (p == NULL)
            return f; /* the trace loses a frame; the failure itself survives */
        f->frames = p;
        f->cap = cap;
    }
    char *mem = wf_malloc(slen(fr->file) + slen(fr->func) + slen(fr->actor) + slen(fr->node) + 1);
    if (mem == NULL)
        return f;
    struct frame_slot *s = &f->frames[f->nframes++];
    s->mem = mem;
    s->f.line = fr->line;
    s->f.file = scopy(&mem, fr->file);
    s->f.func = scopy(&mem, fr->func);
    s->f.actor = scopy(&mem, fr->actor);
    s->f.node = scopy(&mem, fr->node);
    return f;
}

void wf_failure_set_cause(wf_failure *f, wf_failure *cause)
{
    if (f->immutable) {
        wf_failure_release(cause);
        return;
    }
    wf_failure_release(f->cause);
    f->cause = cause;
}

void wf__failure_set_index(wf_failure *f, size_t index)
{
    if (f->immutable)
        return;
    f->has_index = true;
    f->index = index;
}

bool wf__failure_index(const wf_failure *f, size_t *index)
{
    if (f->has_index)
        *index = f->index;
    return f->has_index;
}

int wf_failure_code(const wf_failure *f)
{
    return f->code;
}

const char *wf_failure_message(const wf_failure *f)
{
    return f->message;
}

wf_failure *wf_failure_cause(const wf_failure *f)
{
    return f->cause;
}

size_t wf_failure_frame_count(const wf_failure *f)
{
    return f->nframes;
}

const wf_frame *wf_failure_frame(const wf_failure *f, size_t i)
{
    return i < f->nframes ? &f->frames[i].f : NULL;
}

static void put(wf_strbuf *b, const char *s, int format)
{
    if (format == WF_FORMAT_HTML)
        wf_strbuf_puts_html(b, s);
    else
        wf_strbuf_puts(b, s);
}

char *wf_failure_format(const wf_failure *f, int format)
{
    wf_strbuf b = {0};
    char num[64];
    for (int depth = 0; f != NULL; f = f->cause, depth++) {
        if (depth > 0)
            wf_strbuf_puts(&b, "caused by: ");
        if (f->code >= WF_EUSER)
            snprintf(num, sizeof num, "E%d", f->code);
        else
            snprintf(num, sizeof num, "%s", wf_errname(f->code));
        wf_strbuf_printf(&b, "%s: ", num);
        put(&b, f->message, format);
        wf_strbuf_puts(&b, "\n");
        for (size_t i = 0; i < f->nframes; i++) {
            const wf_frame *fr = &f->frames[i].f;
            wf_strbuf_puts(&b, i == 0 ? "  raised at " : "  passed   ");
            if (fr->file != NULL) {
                /* A source position; frames added by the runtime (a handler,
                 * a hop between nodes) have none. */
                put(&b, fr->file, format);
                wf_strbuf_printf(&b, ":%d in ", fr->line);
            }
            put(&b, fr->func ? fr->func : "?", format);
            if (fr->actor && fr->node) {
                wf_strbuf_puts(&b, " [");
                put(&b, fr->actor, format);
                wf_strbuf_puts(&b, "@");
                put(&b, fr->node, format);
                wf_strbuf_puts(&b, "]");
            } else if (fr->actor || fr->node) {
                wf_strbuf_puts(&b, fr->actor ? " [" : " [node ");
                put(&b, fr->actor ? fr->actor : fr->node, format);
                wf_strbuf_puts(&b, "]");
            }
            wf_strbuf_puts(&b, "\n");
        }
    }
    return wf_strbuf_finish(&b);
}
