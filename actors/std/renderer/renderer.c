/* The renderer actor (see weft/renderer.h). Declared blocking: its handlers
 * run on the thread pool, one at a time, so its state (templates, sessions)
 * needs no lock. */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <weft/alloc.h>
#include <weft/renderer.h>

#include "bytes.h"
#include "status.h"
#include "strbuf.h"

struct session {
    struct session *next;  /* hash chain */
    struct session *newer; /* the FIFO of sessions, to forget the oldest */
    uint32_t views;
    char id[33];
};

struct renderer {
    char *poem_tmpl, *error_tmpl;
    size_t max_sessions, nsessions;
    struct session **buckets;
    size_t nbuckets;
    struct session *newest, *oldest;
    unsigned char rnd[4096]; /* kernel randomness, drawn 16 bytes per session */
    size_t rnd_left;
};

/* ---- templates ---- */

static char *read_file(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    wf_strbuf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        wf_strbuf_append(&b, chunk, n);
    fclose(f);
    return wf_strbuf_finish(&b);
}

struct var {
    const char *name;
    const char *value; /* escaped when put in the page */
};

/* Fills tmpl's {{name}} placeholders from vars; unknown names stay empty.
 * Stops half way if cut_half is set (a fault for tests). */
static void fill(wf_strbuf *out, const char *tmpl, const struct var *vars, size_t nvars,
                 bool cut_half)
{
    size_t total = strlen(tmpl);
    const char *p = tmpl;
    while (*p) {
        if (cut_half && (size_t)(p - tmpl) > total / 2)
            return;
        const char *open = strstr(p, "{{");
        if (open == NULL) {
            wf_strbuf_puts(out, p);
            return;
        }
        const char *close = strstr(open, "}}");
        if (close == NULL) {
            wf_strbuf_puts(out, p);
            return;
        }
        wf_strbuf_append(out, p, (size_t)(open - p));
        size_t n = (size_t)(close - open - 2);
        for (size_t i = 0; i < nvars; i++) {
            if (strlen(vars[i].name) == n && memcmp(vars[i].name, open + 2, n) == 0) {
                wf_strbuf_puts_html(out, vars[i].value);
                break;
            }
        }
        p = close + 2;
    }
}

/* ---- sessions ---- */

static bool valid_id(const char *id)
{
    size_t n = strnlen(id, 33);
    if (n != 32)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return false;
    }
    return true;
}

static void forget_oldest(struct renderer *r)
{
    struct session *s = r->oldest;
    struct session **pp = &r->buckets[wf__fnv1a(s->id, strlen(s->id)) & (r->nbuckets - 1)];
    while (*pp != s)
        pp = &(*pp)->next;
    *pp = s->next;
    /* The FIFO runs from the oldest to the newest. */
    r->oldest = s->newer;
    if (r->oldest == NULL)
        r->newest = NULL;
    r->nsessions--;
    wf_free(s);
}

/* The session with this id (a fresh one for an unknown or missing id). */
static struct session *session_for(struct renderer *r, const char *id)
{
    if (valid_id(id)) {
        for (struct session *s = r->buckets[wf__fnv1a(id, strlen(id)) & (r->nbuckets - 1)]; s;
             s = s->next) {
            if (strcmp(s->id, id) == 0)
                return s;
        }
    }
    struct session *s = wf_malloc(sizeof *s);
    if (s == NULL)
        return NULL;
    /* One getrandom call per 256 sessions, not one per session. */
    if (r->rnd_left < 16) {
        if (getrandom(r->rnd, sizeof r->rnd, 0) != (ssize_t)sizeof r->rnd) {
            wf_free(s);
            return NULL;
        }
        r->rnd_left = sizeof r->rnd;
    }
    const unsigned char *raw = r->rnd + sizeof r->rnd - r->rnd_left;
    r->rnd_left -= 16;
    *wf__hex(s->id, raw, 16) = '\0';
    s->views = 0;
    s->newer = NULL;
    size_t b = wf__fnv1a(s->id, strlen(s->id)) & (r->nbuckets - 1);
    s->next = r->buckets[b];
    r->buckets[b] = s;
    if (r->newest)
        r->newest->newer = s;
    else
        r->oldest = s;
    r->newest = s;
    if (++r->nsessions > r->max_sessions)
        forget_oldest(r);
    return s;
}

/* ---- handlers (on the thread pool) ---- */

/* Both requests are a fixed head, then text: copies the head to *head and
 * returns the text NUL-terminated (the caller frees it), or NULL with *err
 * set (WF_EINVAL: too short; WF_ENOMEM). */
static char *split(wf_msg *m, void *head, size_t head_size, size_t *len, int *err)
{
    if (wf_msg_len(m) < head_size) {
        *err = WF_EINVAL;
        return NULL;
    }
    memcpy(head, wf_msg_body(m), head_size);
    *len = wf_msg_len(m) - head_size;
    char *text = wf_malloc(*len + 1);
    if (text == NULL) {
        *err = WF_ENOMEM;
        return NULL;
    }
    memcpy(text, (char *)wf_msg_body(m) + head_size, *len);
    text[*len] = '\0';
    return text;
}

static wf_result on_poem(wf_ctx *ctx, wf_msg *m)
{
    struct renderer *r = wf_ctx_state(ctx);
    wf_render_poem head;
    size_t len;
    int err;
    char *poem = split(m, &head, sizeof head, &len, &err);
    if (poem == NULL)
        return WF_FAIL(err, "cannot read a render request: %s", wf_strerror(err));
    head.session[32] = head.cache[15] = '\0';
    if (head.fault == WF_RENDER_FAULT_BEFORE) {
        wf_free(poem);
        return WF_FAIL(WF_EUSER + 500, "renderer failed before rendering (injected fault)");
    }
    char title[128];
    size_t tl = strcspn(poem, "\n");
    snprintf(title, sizeof title, "%.*s", (int)(tl < 100 ? tl : 100), poem);

    struct session *s = session_for(r, head.session);
    if (s == NULL) {
        wf_free(poem);
        return WF_FAIL(WF_ENOMEM, "no memory for a session");
    }
    s->views++;
    char views[16], age[16];
    snprintf(views, sizeof views, "%u", s->views);
    snprintf(age, sizeof age, "%u", head.age_s);
    struct var vars[] = {
        {"title", title}, {"poem", poem}, {"views", views}, {"cache", head.cache}, {"age", age}};
    wf_render_page page = {.views = s->views};
    memcpy(page.session, s->id, sizeof page.session);
    wf_strbuf out = {0};
    /* Escaping may grow the poem; most of a page is the template and it. */
    wf_strbuf_reserve(&out, sizeof page + strlen(r->poem_tmpl) + len + len / 8 + 256);
    wf_strbuf_append(&out, (const char *)&page, sizeof page);
    fill(&out, r->poem_tmpl, vars, sizeof vars / sizeof vars[0],
         head.fault == WF_RENDER_FAULT_ENCODING);
    wf_free(poem);
    if (head.fault == WF_RENDER_FAULT_ENCODING) {
        wf_free(wf_strbuf_finish(&out)); /* half a page is never sent */
        return WF_FAIL(WF_EUSER + 501, "renderer failed while encoding (injected fault)");
    }
    size_t n = out.len;
    char *html = wf_strbuf_finish(&out);
    if (html == NULL)
        return WF_FAIL(WF_ENOMEM, "no memory for a page");
    wf_msg *reply = wf_msg_new(WF_RENDER_POEM, html, n);
    wf_free(html);
    return reply ? wf_result_msg(reply) : WF_FAIL(WF_ENOMEM, "no memory for a page");
}

static wf_result on_error(wf_ctx *ctx, wf_msg *m)
{
    struct renderer *r = wf_ctx_state(ctx);
    wf_render_error head;
    size_t len;
    int err;
    char *trace = split(m, &head, sizeof head, &len, &err);
    if (trace == NULL)
        return WF_FAIL(err, "cannot read an error page request: %s", wf_strerror(err));
    head.id[16] = head.message[255] = '\0';
    char status[8];
    snprintf(status, sizeof status, "%u", head.status);
    struct var vars[] = {{"status", status},
                         {"reason", wf__http_reason((int)head.status)},
                         {"message", head.message},
                         {"id", head.id},
                         {"trace", head.debug ? trace : ""}};
    wf_strbuf out = {0};
    fill(&out, r->error_tmpl, vars, sizeof vars / sizeof vars[0], false);
    wf_free(trace);
    size_t n = out.len;
    char *html = wf_strbuf_finish(&out);
    wf_msg *reply = html ? wf_msg_new(WF_RENDER_ERROR, html, n) : NULL;
    wf_free(html);
    return reply ? wf_result_msg(reply) : WF_FAIL(WF_ENOMEM, "no memory for an error page");
}

static int renderer_init(wf_ctx *ctx, void *arg)
{
    struct renderer *r = wf_ctx_state(ctx);
    const wf_renderer_config *cfg = arg;
    const char *dir =
        cfg && cfg->template_dir ? cfg->template_dir : wf_renderer_default_templates();
    r->max_sessions = cfg && cfg->max_sessions ? cfg->max_sessions : 100000;
    r->nbuckets = 1024;
    while (r->nbuckets < r->max_sessions && r->nbuckets < (1u << 20))
        r->nbuckets *= 2;
    r->buckets = wf_malloc(r->nbuckets * sizeof *r->buckets);
    r->poem_tmpl = read_file(dir, "poem.html");
    r->error_tmpl = read_file(dir, "error.html");
    if (r->buckets == NULL || r->poem_tmpl == NULL || r->error_tmpl == NULL) {
        wf_free(r->buckets);
        wf_free(r->poem_tmpl);
        wf_free(r->error_tmpl);
        return r->buckets == NULL ? WF_ENOMEM : WF_EINVAL;
    }
    memset(r->buckets, 0, r->nbuckets * sizeof *r->buckets);
    return 0;
}

static void renderer_terminate(wf_ctx *ctx, const wf_failure *reason)
{
    struct renderer *r = wf_ctx_state(ctx);
    while (r->oldest != NULL)
        forget_oldest(r);
    wf_free(r->buckets);
    wf_free(r->poem_tmpl);
    wf_free(r->error_tmpl);
}

static const wf_handler renderer_handlers[] = {
    {WF_RENDER_POEM, "render", on_poem, 0},
    {WF_RENDER_ERROR, "render_error", on_error, 0},
};

const wf_behaviour wf_renderer_behaviour = {
    .name = "renderer",
    .state_size = sizeof(struct renderer),
    .init = renderer_init,
    .terminate = renderer_terminate,
    .handlers = renderer_handlers,
    .nhandlers = sizeof renderer_handlers / sizeof renderer_handlers[0],
    .flags = WF_ACTOR_BLOCKING,
};

const char *wf_renderer_default_templates(void)
{
    return WEFT_TEMPLATE_DIR;
}
