/* The renderer actor (see weft/renderer.h). Its handlers and the callbacks
 * of its own asks run one at a time (the runtime holds its mailbox while a
 * pool handler runs), so its state needs no lock.
 *
 * A poem page is the template with five values: title and poem, which
 * depend on the poem's text only, and views, cache and age, which change
 * with every request. The first page for a text is "prepared" on the
 * thread pool (the template walked, title and poem escaped, the three
 * per-request places left as holes) and kept, keyed by the exact text;
 * every later page for that text is assembled on the loop from the
 * prepared parts and the escaped per-request values: one allocation and
 * a few copies, no trip to the pool. A text that changes (a refetch with
 * new words) is a different key, so an old rendering is never served for
 * it; the least recently used prepared pages go first when their bytes
 * pass max_prepared_bytes. */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <weft/alloc.h>
#include <weft/renderer.h>

#include "bytes.h"
#include "messages.h"
#include "status.h"
#include "strbuf.h"

/* Internal: the renderer asks itself for a prepared page (body: the poem
 * text; reply: a struct parts_head, its holes, then the page's bytes). The
 * one blocking handler of the hot path, kept off the loop. */
#define WF_RENDER_PREPARE 0x52450003u

/* How long a render may wait for its page to be prepared on the pool; the
 * asker's own deadline is usually shorter. */
#define PREPARE_TIMEOUT_MS 30000

struct session {
    struct session *next;  /* hash chain */
    struct session *newer; /* the FIFO of sessions, to forget the oldest */
    uint32_t views;
    char id[33];
};

/* The values of a poem page, in the order of fill()'s lookup. */
enum { V_TITLE, V_POEM, V_VIEWS, V_CACHE, V_AGE, NVARS, V_UNKNOWN = NVARS };
static const char *const var_names[NVARS] = {"title", "poem", "views", "cache", "age"};

/* One piece of the poem template: literal text, then a value (or none). */
struct seg {
    size_t off, len; /* literal bytes in poem_tmpl */
    int var;         /* V_*, V_UNKNOWN (renders as nothing) or -1 (the end) */
};

/* Where a per-request value goes in a prepared page. */
struct hole {
    uint32_t at;  /* offset in the page */
    uint32_t var; /* V_VIEWS, V_CACHE or V_AGE */
};

/* The head of a WF_RENDER_PREPARE reply; nholes holes and page_len bytes
 * of page follow. */
struct parts_head {
    uint32_t nholes, page_len;
};

/* A page prepared for one poem text. One allocation: the struct, its
 * holes, the text (the key) and the page. */
struct prepared {
    struct prepared *hnext;         /* hash chain */
    struct prepared *lprev, *lnext; /* LRU: most recently used at the head */
    uint64_t hash;
    size_t text_len, page_len, nholes, bytes;
    const char *text, *page;
    struct hole holes[];
};

#define PREP_BUCKETS 256 /* a power of two */

struct renderer {
    /* Read-only after init: also read by the pool handlers. */
    char *poem_tmpl, *error_tmpl;
    struct seg *segs; /* poem_tmpl cut at its placeholders, ending with var -1 */
    size_t nholes;    /* per-request placeholders in poem_tmpl */
    /* The rest: handler turns only. */
    size_t max_sessions, nsessions;
    struct session **buckets;
    size_t nbuckets;
    struct session *newest, *oldest;
    unsigned char rnd[4096]; /* kernel randomness, drawn 16 bytes per session */
    size_t rnd_left;
    struct prepared *prep[PREP_BUCKETS];
    struct prepared *lru_head, *lru_tail;
    size_t prep_bytes, max_prep_bytes;
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

/* The template walk both renderings share: calls piece() for the literal
 * text before each {{name}} placeholder with the name (a NULL name at the
 * end). A "{{" without its "}}" is literal text. */
typedef void (*piece_fn)(void *arg, const char *lit, size_t len, const char *name, size_t nlen);

static void walk(const char *tmpl, piece_fn piece, void *arg)
{
    const char *p = tmpl;
    for (;;) {
        const char *open = strstr(p, "{{");
        const char *close = open ? strstr(open, "}}") : NULL;
        if (close == NULL) {
            piece(arg, p, strlen(p), NULL, 0);
            return;
        }
        piece(arg, p, (size_t)(open - p), open + 2, (size_t)(close - open - 2));
        p = close + 2;
    }
}

struct var {
    const char *name;
    const char *value; /* escaped when put in the page */
};

struct fill_arg {
    wf_strbuf *out;
    const struct var *vars;
    size_t nvars;
};

static void fill_piece(void *arg, const char *lit, size_t len, const char *name, size_t n)
{
    struct fill_arg *a = arg;
    wf_strbuf_append(a->out, lit, len);
    for (size_t i = 0; name != NULL && i < a->nvars; i++) {
        if (strlen(a->vars[i].name) == n && memcmp(a->vars[i].name, name, n) == 0) {
            wf_strbuf_puts_html(a->out, a->vars[i].value);
            break;
        }
    }
}

/* Fills tmpl's {{name}} placeholders from vars; unknown names stay empty. */
static void fill(wf_strbuf *out, const char *tmpl, const struct var *vars, size_t nvars)
{
    walk(tmpl, fill_piece, &(struct fill_arg){out, vars, nvars});
}

struct cut_arg {
    const char *tmpl;
    struct seg *segs; /* NULL: only count */
    size_t n, nholes;
};

static void cut_piece(void *arg, const char *lit, size_t len, const char *name, size_t n)
{
    struct cut_arg *a = arg;
    int var = -1;
    if (name != NULL) {
        var = V_UNKNOWN;
        for (int i = 0; i < NVARS; i++) {
            if (strlen(var_names[i]) == n && memcmp(var_names[i], name, n) == 0) {
                var = i;
                break;
            }
        }
    }
    if (var >= V_VIEWS && var < NVARS)
        a->nholes++;
    if (a->segs != NULL)
        a->segs[a->n] = (struct seg){(size_t)(lit - a->tmpl), len, var};
    a->n++;
}

/* Cuts the poem template into segments, once: what every prepare walks. */
static int cut_template(struct renderer *r)
{
    struct cut_arg a = {r->poem_tmpl, NULL, 0, 0};
    walk(r->poem_tmpl, cut_piece, &a);
    r->segs = wf_malloc(a.n * sizeof *r->segs);
    if (r->segs == NULL)
        return WF_ENOMEM;
    a.segs = r->segs;
    a.n = a.nholes = 0;
    walk(r->poem_tmpl, cut_piece, &a);
    r->nholes = a.nholes;
    return 0;
}

/* ---- escaping the per-request values ---- */

/* s HTML-escaped into out (room for 6 bytes per byte of s, and a NUL);
 * returns the length. The same entities as wf_strbuf_puts_html. */
static size_t escape_into(char *out, const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        const char *ent;
        switch (*s) {
        case '&':
            ent = "&amp;";
            break;
        case '<':
            ent = "&lt;";
            break;
        case '>':
            ent = "&gt;";
            break;
        case '"':
            ent = "&quot;";
            break;
        case '\'':
            ent = "&#39;";
            break;
        default:
            out[n++] = *s;
            continue;
        }
        size_t el = strlen(ent);
        memcpy(out + n, ent, el);
        n += el;
    }
    out[n] = '\0';
    return n;
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

/* ---- prepared pages (loop: handler turns) ---- */

/* The text's hash, eight bytes a step: every hit hashes its whole poem, and
 * wf__fnv1a's byte a step cost a few percent of a hit. Equal hashes are
 * still compared byte for byte. */
static uint64_t text_hash(const char *s, size_t n)
{
    const uint64_t k = 0x9e3779b97f4a7c15ull;
    uint64_t h = n * k, w;
    for (; n >= 8; s += 8, n -= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * k;
        h ^= h >> 29;
    }
    w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * k;
    return h ^ (h >> 32);
}

static void lru_unlink(struct renderer *r, struct prepared *p)
{
    *(p->lprev ? &p->lprev->lnext : &r->lru_head) = p->lnext;
    *(p->lnext ? &p->lnext->lprev : &r->lru_tail) = p->lprev;
    p->lprev = p->lnext = NULL;
}

static void lru_push(struct renderer *r, struct prepared *p)
{
    p->lprev = NULL;
    p->lnext = r->lru_head;
    *(r->lru_head ? &r->lru_head->lprev : &r->lru_tail) = p;
    r->lru_head = p;
}

static void prep_forget(struct renderer *r, struct prepared *p)
{
    struct prepared **pp = &r->prep[p->hash & (PREP_BUCKETS - 1)];
    while (*pp != p)
        pp = &(*pp)->hnext;
    *pp = p->hnext;
    lru_unlink(r, p);
    r->prep_bytes -= p->bytes;
    wf_free(p);
}

static struct prepared *prep_find(struct renderer *r, uint64_t hash, const char *text, size_t len)
{
    for (struct prepared *p = r->prep[hash & (PREP_BUCKETS - 1)]; p != NULL; p = p->hnext) {
        if (p->hash == hash && p->text_len == len && memcmp(p->text, text, len) == 0)
            return p;
    }
    return NULL;
}

/* A prepared page for text from a WF_RENDER_PREPARE reply m (borrowed),
 * or NULL (m malformed, or no memory). The caller keeps it with prep_keep
 * or frees it. */
static struct prepared *prep_new(struct renderer *r, uint64_t hash, const char *text, size_t len,
                                 wf_msg *m)
{
    struct parts_head h;
    if (wf_msg_len(m) < sizeof h)
        return NULL;
    memcpy(&h, wf_msg_body(m), sizeof h);
    if (h.nholes != r->nholes ||
        wf_msg_len(m) != sizeof h + (size_t)h.nholes * sizeof(struct hole) + h.page_len)
        return NULL;
    size_t holes = (size_t)h.nholes * sizeof(struct hole);
    size_t bytes = sizeof(struct prepared) + holes + len + h.page_len;
    struct prepared *p = wf_malloc(bytes);
    if (p == NULL)
        return NULL;
    *p = (struct prepared){
        .hash = hash, .text_len = len, .page_len = h.page_len, .nholes = h.nholes, .bytes = bytes};
    const char *body = (const char *)wf_msg_body(m) + sizeof h;
    memcpy(p->holes, body, holes);
    char *t = (char *)p->holes + holes;
    memcpy(t, text, len);
    memcpy(t + len, body + holes, h.page_len);
    p->text = t;
    p->page = t + len;
    for (size_t i = 0; i < p->nholes; i++) {
        if (p->holes[i].at > p->page_len || (i > 0 && p->holes[i].at < p->holes[i - 1].at) ||
            p->holes[i].var < V_VIEWS || p->holes[i].var >= NVARS) {
            wf_free(p);
            return NULL;
        }
    }
    return p;
}

/* Keeps p (taken) as the most recently used, forgetting the least
 * recently used beyond the bound; false if p alone is beyond it (then
 * the caller still owns p). */
static bool prep_keep(struct renderer *r, struct prepared *p)
{
    if (p->bytes > r->max_prep_bytes)
        return false;
    while (r->prep_bytes + p->bytes > r->max_prep_bytes)
        prep_forget(r, r->lru_tail);
    struct prepared **b = &r->prep[p->hash & (PREP_BUCKETS - 1)];
    p->hnext = *b;
    *b = p;
    lru_push(r, p);
    r->prep_bytes += p->bytes;
    return true;
}

/* ---- a page from prepared parts ---- */

/* The page for one request: the session's view counted, the per-request
 * values escaped into p's holes. The reply, or a failure. */
static wf_result assemble(struct renderer *r, const struct prepared *p, const wf_render_poem *head)
{
    struct session *s = session_for(r, head->session);
    if (s == NULL)
        return WF_FAIL(WF_ENOMEM, "no memory for a session");
    s->views++;
    /* A page half made is never sent: the view still counts, as it did
     * when the fault cut the page in the middle. */
    if (head->fault == WF_RENDER_FAULT_ENCODING)
        return WF_FAIL(WF_EUSER + 501, "renderer failed while encoding (injected fault)");
    char num[16], views[16 * 6], age[16 * 6], cache[sizeof head->cache * 6];
    snprintf(num, sizeof num, "%u", s->views);
    size_t vl[NVARS] = {0};
    const char *val[NVARS] = {NULL};
    vl[V_VIEWS] = escape_into(views, num);
    snprintf(num, sizeof num, "%u", head->age_s);
    vl[V_AGE] = escape_into(age, num);
    vl[V_CACHE] = escape_into(cache, head->cache);
    val[V_VIEWS] = views;
    val[V_AGE] = age;
    val[V_CACHE] = cache;
    wf_render_page page = {.views = s->views};
    memcpy(page.session, s->id, sizeof page.session);
    size_t head_len = wf__render_page_head_size(&page);
    size_t total = head_len + p->page_len;
    for (size_t i = 0; i < p->nholes; i++)
        total += vl[p->holes[i].var];
    wf_msg *m = wf_msg_alloc(WF_RENDER_POEM, total);
    if (m == NULL)
        return WF_FAIL(WF_ENOMEM, "no memory for a page");
    char *o = wf_msg_body(m);
    wf__render_page_head_put(&page, (unsigned char *)o);
    o += head_len;
    size_t from = 0;
    for (size_t i = 0; i < p->nholes; i++) {
        const struct hole *h = &p->holes[i];
        memcpy(o, p->page + from, h->at - from);
        o += h->at - from;
        memcpy(o, val[h->var], vl[h->var]);
        o += vl[h->var];
        from = h->at;
    }
    memcpy(o, p->page + from, p->page_len - from);
    return wf_result_msg(m);
}

/* ---- handlers ---- */

/* A render waiting for its page to be prepared: its head and text. */
struct pending {
    struct renderer *r;
    wf_render_poem head;
    uint64_t hash;
    size_t len;
    char text[];
};

/* The page came back from the pool (in this actor's turn): keep it, then
 * answer the render from it. */
static wf_result prepared_cb(wf_result res, void *arg)
{
    struct pending *pd = arg;
    struct renderer *r = pd->r;
    struct prepared *p = prep_find(r, pd->hash, pd->text, pd->len);
    bool kept = true;
    if (p == NULL) {
        p = prep_new(r, pd->hash, pd->text, pd->len, res.u.ptr);
        if (p == NULL) {
            wf_result_free(res);
            return WF_FAIL(WF_ENOMEM, "no memory for a page (or a malformed prepared page)");
        }
        kept = prep_keep(r, p);
    } /* else a render of the same text was prepared meanwhile: the same page */
    wf_result_free(res);
    wf_result out = assemble(r, p, &pd->head);
    if (!kept)
        wf_free(p);
    return out;
}

/* On the loop: a page from prepared parts at once, or, for a text not seen
 * lately, a trip to the pool to prepare it first. */
static wf_result on_poem(wf_ctx *ctx, wf_msg *m)
{
    struct renderer *r = wf_ctx_state(ctx);
    wf_render_poem head;
    const void *tp;
    size_t len;
    if (wf_render_poem_parse(m, &head, &tp, &len) != 0)
        return WF_FAIL(WF_EINVAL, "cannot read a render request: %s", wf_strerror(WF_EINVAL));
    if (head.fault == WF_RENDER_FAULT_BEFORE)
        return WF_FAIL(WF_EUSER + 500, "renderer failed before rendering (injected fault)");
    const char *text = tp;
    uint64_t hash = text_hash(text, len);
    struct prepared *p = prep_find(r, hash, text, len);
    if (p != NULL) {
        lru_unlink(r, p);
        lru_push(r, p);
        return assemble(r, p, &head);
    }
    struct pending *pd = wf_malloc(sizeof *pd + len);
    wf_msg *ask = wf_msg_new(WF_RENDER_PREPARE, text, len);
    if (pd == NULL || ask == NULL) {
        wf_free(pd);
        wf_msg_free(ask);
        return WF_FAIL(WF_ENOMEM, "no memory to prepare a page");
    }
    *pd = (struct pending){.r = r, .head = head, .hash = hash, .len = len};
    memcpy(pd->text, text, len);
    wf_deferred *d = wf_ctx_ask(ctx, wf_ctx_self(ctx), ask, PREPARE_TIMEOUT_MS);
    if (d == NULL) {
        wf_free(pd);
        return WF_FAIL(WF_ENOMEM, "no memory to prepare a page");
    }
    if (wf_deferred_add_callbacks_full(d, prepared_cb, NULL, pd, wf_free) != 0) {
        wf_deferred_release(d); /* pd is freed already */
        return WF_FAIL(WF_ENOMEM, "no memory to prepare a page");
    }
    return wf_result_deferred(d);
}

struct prep_arg {
    wf_strbuf *out;
    const char *title, *poem;
    struct hole *holes;
    size_t nholes;
};

/* On the pool: the poem page for a text, but for its per-request values
 * (a struct parts_head, the holes, the page). Reads only the template. */
static wf_result on_prepare(wf_ctx *ctx, wf_msg *m)
{
    struct renderer *r = wf_ctx_state(ctx);
    size_t len = wf_msg_len(m);
    char *poem = wf_malloc(len + 1);
    struct hole *holes = wf_malloc((r->nholes ? r->nholes : 1) * sizeof *holes);
    wf_strbuf out = {0};
    wf_msg *reply = NULL;
    if (poem == NULL || holes == NULL)
        goto done;
    memcpy(poem, wf_msg_body(m), len);
    poem[len] = '\0';
    char title[128];
    size_t tl = strcspn(poem, "\n");
    snprintf(title, sizeof title, "%.*s", (int)(tl < 100 ? tl : 100), poem);
    /* Escaping may grow the poem; most of a page is the template and it. */
    wf_strbuf_reserve(&out, strlen(r->poem_tmpl) + len + len / 8 + 256);
    size_t nh = 0;
    for (const struct seg *s = r->segs;; s++) {
        wf_strbuf_append(&out, r->poem_tmpl + s->off, s->len);
        if (s->var < 0)
            break;
        if (s->var == V_TITLE)
            wf_strbuf_puts_html(&out, title);
        else if (s->var == V_POEM)
            wf_strbuf_puts_html(&out, poem);
        else if (s->var != V_UNKNOWN)
            holes[nh++] = (struct hole){(uint32_t)out.len, (uint32_t)s->var};
    }
    if (out.oom || out.len > UINT32_MAX)
        goto done;
    struct parts_head h = {(uint32_t)nh, (uint32_t)out.len};
    reply = wf_msg_alloc(WF_RENDER_PREPARE, sizeof h + nh * sizeof *holes + out.len);
    if (reply != NULL) {
        char *o = wf_msg_body(reply);
        memcpy(o, &h, sizeof h);
        memcpy(o + sizeof h, holes, nh * sizeof *holes);
        memcpy(o + sizeof h + nh * sizeof *holes, out.p, out.len);
    }
done:
    wf_free(poem);
    wf_free(holes);
    wf_free(wf_strbuf_finish(&out));
    return reply ? wf_result_msg(reply) : WF_FAIL(WF_ENOMEM, "no memory for a page");
}

/* On the pool: error pages are rare and made whole. */
static wf_result on_error(wf_ctx *ctx, wf_msg *m)
{
    struct renderer *r = wf_ctx_state(ctx);
    wf_render_error head;
    const void *tp;
    size_t len;
    if (wf_render_error_parse(m, &head, &tp, &len) != 0)
        return WF_FAIL(WF_EINVAL, "cannot read an error page request: %s", wf_strerror(WF_EINVAL));
    /* The trace is text for the page: up to its first NUL. */
    char *trace = wf_malloc(len + 1);
    if (trace == NULL)
        return WF_FAIL(WF_ENOMEM, "no memory for an error page");
    memcpy(trace, tp, len);
    trace[len] = '\0';
    char status[8];
    snprintf(status, sizeof status, "%u", head.status);
    struct var vars[] = {{"status", status},
                         {"reason", wf__http_reason((int)head.status)},
                         {"message", head.message},
                         {"id", head.id},
                         {"trace", head.debug ? trace : ""}};
    wf_strbuf out = {0};
    fill(&out, r->error_tmpl, vars, sizeof vars / sizeof vars[0]);
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
    int rv = WF_ENOMEM;
    r->max_sessions = cfg && cfg->max_sessions ? cfg->max_sessions : 100000;
    r->max_prep_bytes = cfg && cfg->max_prepared_bytes ? cfg->max_prepared_bytes : (size_t)4 << 20;
    r->nbuckets = 1024;
    while (r->nbuckets < r->max_sessions && r->nbuckets < (1u << 20))
        r->nbuckets *= 2;
    r->buckets = wf_malloc(r->nbuckets * sizeof *r->buckets);
    if (r->buckets == NULL)
        goto fail;
    memset(r->buckets, 0, r->nbuckets * sizeof *r->buckets);
    r->poem_tmpl = read_file(dir, "poem.html");
    r->error_tmpl = read_file(dir, "error.html");
    if (r->poem_tmpl == NULL || r->error_tmpl == NULL) {
        rv = WF_EINVAL;
        goto fail;
    }
    if ((rv = cut_template(r)) != 0)
        goto fail;
    return 0;
fail:
    wf_free(r->buckets);
    wf_free(r->poem_tmpl);
    wf_free(r->error_tmpl);
    return rv;
}

static void renderer_terminate(wf_ctx *ctx, const wf_failure *reason)
{
    struct renderer *r = wf_ctx_state(ctx);
    while (r->oldest != NULL)
        forget_oldest(r);
    while (r->lru_tail != NULL)
        prep_forget(r, r->lru_tail);
    wf_free(r->buckets);
    wf_free(r->segs);
    wf_free(r->poem_tmpl);
    wf_free(r->error_tmpl);
}

static const wf_handler renderer_handlers[] = {
    {WF_RENDER_POEM, "render", on_poem, 0},
    {WF_RENDER_PREPARE, "prepare", on_prepare, WF_HANDLER_BLOCKING},
    {WF_RENDER_ERROR, "render_error", on_error, WF_HANDLER_BLOCKING},
};

const wf_behaviour wf_renderer_behaviour = {
    .name = "renderer",
    .state_size = sizeof(struct renderer),
    .init = renderer_init,
    .terminate = renderer_terminate,
    .handlers = renderer_handlers,
    .nhandlers = sizeof renderer_handlers / sizeof renderer_handlers[0],
};

const char *wf_renderer_default_templates(void)
{
    return WEFT_TEMPLATE_DIR;
}
