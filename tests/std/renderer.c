/* The renderer: escaping, the session counter, error pages, faults. */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <weft/renderer.h>

#include "testutil.h"

TestSuite(renderer, .init = tu_capture_log, .timeout = 30);

static wf_node *node;
static wf_pid rpid;
static wf_renderer_config cfg;

static void start(void)
{
    tu_capture_log();
    node = wf_node_new(NULL);
    cr_assert_eq(wf_renderer_spawn(node, "renderer", &cfg, &rpid), 0);
    wf_node_start(node);
}

static void stop(void)
{
    wf_node_shutdown(node);
    wf_node_wait(node);
    wf_node_free(node);
}

static wf_result render_as(const char *session, const char *poem, const char *cache, uint32_t age,
                           uint32_t fault)
{
    wf_render_poem h = {.fault = fault, .age_s = age};
    snprintf(h.session, sizeof h.session, "%s", session);
    snprintf(h.cache, sizeof h.cache, "%s", cache);
    wf_msg *m = wf_render_poem_msg_new(&h, poem, strlen(poem));
    cr_assert_not_null(m);
    return wf_node_call(node, rpid, m, 5000);
}

static wf_result render(const char *session, const char *poem, uint32_t fault)
{
    return render_as(session, poem, "HIT", 0, fault);
}

/* ---- the page as the renderer always made it, written out plainly ---- */

static void put_html(char **o, const char *s)
{
    for (; *s; s++) {
        const char *e = *s == '&'    ? "&amp;"
                        : *s == '<'  ? "&lt;"
                        : *s == '>'  ? "&gt;"
                        : *s == '"'  ? "&quot;"
                        : *s == '\'' ? "&#39;"
                                     : NULL;
        if (e == NULL) {
            *(*o)++ = *s;
        } else {
            strcpy(*o, e);
            *o += strlen(e);
        }
    }
}

/* poem.html with title (the poem's first line, at most 100 bytes), poem,
 * views, cache and age put in, escaped: what a page must be, byte for
 * byte. The caller frees it. */
static char *expected_page(const char *poem, unsigned views, const char *cache, unsigned age)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/poem.html", wf_renderer_default_templates());
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    static char tmpl[65536];
    size_t tn = fread(tmpl, 1, sizeof tmpl - 1, f);
    tmpl[tn] = '\0';
    fclose(f);
    char title[101], num[16], agen[16];
    snprintf(title, sizeof title, "%.*s", (int)strcspn(poem, "\n"), poem);
    snprintf(num, sizeof num, "%u", views);
    snprintf(agen, sizeof agen, "%u", age);
    const char *names[] = {"title", "poem", "views", "cache", "age"};
    const char *vals[] = {title, poem, num, cache, agen};
    char *out = malloc(tn + 6 * (strlen(poem) + 256) + 1), *o = out;
    for (const char *p = tmpl; *p;) {
        const char *open = strstr(p, "{{"), *close = open ? strstr(open, "}}") : NULL;
        if (close == NULL) {
            strcpy(o, p);
            o += strlen(p);
            break;
        }
        memcpy(o, p, (size_t)(open - p));
        o += open - p;
        for (int i = 0; i < 5; i++) {
            if (strlen(names[i]) == (size_t)(close - open - 2) &&
                memcmp(names[i], open + 2, strlen(names[i])) == 0)
                put_html(&o, vals[i]);
        }
        p = close + 2;
    }
    *o = '\0';
    return out;
}

/* The page of r (a render's reply) NUL-terminated, and its head. */
static char *page_of(wf_result r, wf_render_page *head)
{
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    const void *html;
    size_t n;
    cr_assert_eq(wf_render_page_parse(r.u.ptr, head, &html, &n), 0);
    char *s = malloc(n + 1);
    memcpy(s, html, n);
    s[n] = '\0';
    wf_result_free(r);
    return s;
}

Test(renderer, a_page_from_prepared_parts_is_the_fresh_page_byte_for_byte, .init = start,
     .fini = stop)
{
    /* Everything that needs escaping, placeholder look-alikes in the poem,
     * a title longer than a title may be. */
    const char *poem = "<Title> & \"quotes\" 'too' {{views}} {{age}} "
                       "0123456789012345678901234567890123456789012345678901234567890123456789\n"
                       "a {{poem}} line with <b>tags</b> & {{cache}}\n}}{{\n";
    wf_render_page h1, h2, h3;
    char *fresh = page_of(render_as("", poem, "MISS", 0, 0), &h1);
    char *want = expected_page(poem, 1, "MISS", 0);
    cr_assert_str_eq(fresh, want, "the first (prepared on the pool) page");
    free(want);
    /* A new session and the same values: the same page, now from parts. */
    char *fast = page_of(render_as("", poem, "MISS", 0, 0), &h2);
    cr_assert_str_eq(fast, fresh, "a page from prepared parts differs from the fresh one");
    cr_assert_str_neq(h1.session, h2.session);
    /* Every per-request value changes, and is escaped. */
    char *again = page_of(render_as(h1.session, poem, "<&\"'>", 4294967295u, 0), &h3);
    want = expected_page(poem, 2, "<&\"'>", 4294967295u);
    cr_assert_str_eq(again, want);
    cr_assert_eq(h3.views, 2);
    free(want);
    free(fresh);
    free(fast);
    free(again);
}

Test(renderer, a_changed_text_is_never_shown_with_its_old_page, .init = start, .fini = stop)
{
    /* Same length, same first and last lines: only the middle changed. */
    const char *a = "Ozymandias\nI met a traveller from an antique land\nthe end\n";
    const char *b = "Ozymandias\nI met a traveller from an ANTIQUE land\nthe end\n";
    const char *texts[] = {a, a, b, b, a, b};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        wf_render_page h;
        char *page = page_of(render("", texts[i], 0), &h);
        char *want = expected_page(texts[i], 1, "HIT", 0);
        cr_assert_str_eq(page, want, "render %zu", i);
        free(want);
        free(page);
    }
}

static void start_small(void)
{
    cfg.max_prepared_bytes = 8192;
    start();
}

Test(renderer, prepared_pages_stay_within_their_bound, .init = start_small, .fini = stop)
{
    /* A bound a few pages fill, so most renders forget one; a poem larger
     * than the bound is rendered, not kept. */
    static char big[20000];
    memset(big, 'x', sizeof big - 1);
    big[0] = '<';
    char poem[64];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 40; i++) {
            snprintf(poem, sizeof poem, "Poem %d\n<line> & %d\n", i, i * 7);
            wf_render_page h;
            char *page = page_of(render("", poem, 0), &h);
            char *want = expected_page(poem, 1, "HIT", 0);
            cr_assert_str_eq(page, want, "poem %d, round %d", i, round);
            free(want);
            free(page);
        }
        wf_render_page h;
        char *page = page_of(render("", big, 0), &h);
        char *want = expected_page(big, 1, "HIT", 0);
        cr_assert_str_eq(page, want);
        free(want);
        free(page);
    }
}

Test(renderer, a_poem_is_escaped_and_counted_per_session, .init = start, .fini = stop)
{
    wf_result r = render("", "Title <b>&</b>\n<script>alert('x')</script>", 0);
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    wf_render_page page;
    const void *hp;
    size_t n;
    cr_assert_eq(wf_render_page_parse(r.u.ptr, &page, &hp, &n), 0);
    cr_assert_eq(page.views, 1);
    cr_assert_eq(strlen(page.session), 32);
    const char *html = hp;
    cr_assert_null(memmem(html, n, "<script>", 8), "unescaped");
    cr_assert_not_null(memmem(html, n, "&lt;script&gt;alert(&#39;x&#39;)", 32));
    cr_assert_not_null(memmem(html, n, "<title>Title &lt;b&gt;&amp;&lt;/b&gt;</title>", 44));
    char session[33];
    memcpy(session, page.session, sizeof session);
    wf_result_free(r);
    r = render(session, "again", 0);
    cr_assert_eq(wf_render_page_parse(r.u.ptr, &page, &hp, &n), 0);
    cr_assert_eq(page.views, 2);
    cr_assert_str_eq(page.session, session);
    wf_result_free(r);
    r = render("not-a-session-id", "other", 0);
    cr_assert_eq(wf_render_page_parse(r.u.ptr, &page, &hp, &n), 0);
    cr_assert_eq(page.views, 1, "an unknown id starts a new session");
    wf_result_free(r);
}

Test(renderer, faults_fail_the_render, .init = start, .fini = stop)
{
    wf_result r = render("", "x", WF_RENDER_FAULT_BEFORE);
    cr_assert_eq(wf_failure_code(r.u.failure), WF_EUSER + 500);
    wf_result_free(r);
    r = render("", "x", WF_RENDER_FAULT_ENCODING);
    cr_assert_eq(wf_failure_code(r.u.failure), WF_EUSER + 501);
    wf_result_free(r);
}

Test(renderer, an_error_page_shows_the_trace_only_in_debug, .init = start, .fini = stop)
{
    for (int debug = 0; debug <= 1; debug++) {
        const char *trace = "E1: <bad> & worse";
        wf_render_error h = {.status = 502, .debug = (uint32_t)debug};
        snprintf(h.id, sizeof h.id, "0123456789abcdef");
        snprintf(h.message, sizeof h.message, "upstream <down> & \"out\" 'now'");
        wf_msg *m = wf_render_error_msg_new(&h, trace, strlen(trace));
        wf_result r = wf_node_call(node, rpid, m, 5000);
        cr_assert(wf_result_is_msg(r));
        const char *html = wf_msg_body(r.u.ptr);
        size_t n = wf_msg_len(r.u.ptr);
        cr_assert_not_null(memmem(html, n, "502 Bad Gateway", 15));
        cr_assert_not_null(
            memmem(html, n, "upstream &lt;down&gt; &amp; &quot;out&quot; &#39;now&#39;", 57));
        cr_assert_not_null(memmem(html, n, "0123456789abcdef", 16));
        cr_assert_eq(memmem(html, n, "&lt;bad&gt; &amp; worse", 23) != NULL, debug,
                     "the trace shows in debug mode only");
        wf_result_free(r);
    }
}

Test(renderer, every_value_of_an_error_page_is_escaped, .init = start, .fini = stop)
{
    /* The page's values come from the listener, but none is trusted: not
     * even the id or the status. */
    const char *trace = "</pre><script>x('1' & \"2\")</script>";
    wf_render_error h = {.status = 502, .debug = 1};
    snprintf(h.id, sizeof h.id, "<b>'\"&</b>");
    snprintf(h.message, sizeof h.message, "<script>");
    wf_msg *m = wf_render_error_msg_new(&h, trace, strlen(trace));
    wf_result r = wf_node_call(node, rpid, m, 5000);
    cr_assert(wf_result_is_msg(r));
    const char *html = wf_msg_body(r.u.ptr);
    size_t n = wf_msg_len(r.u.ptr);
    cr_assert_null(memmem(html, n, "<script>", 8));
    cr_assert_null(memmem(html, n, "<b>", 3));
    cr_assert_null(memmem(html, n, "</pre><", 7));
    cr_assert_not_null(memmem(html, n, "&lt;b&gt;&#39;&quot;&amp;&lt;/b&gt;", 35));
    cr_assert_not_null(memmem(html, n, "x(&#39;1&#39; &amp; &quot;2&quot;)", 34));
    wf_result_free(r);
}

Test(renderer, a_missing_template_fails_the_spawn)
{
    wf_node *n = wf_node_new(NULL);
    wf_renderer_config bad = {.template_dir = "/nonexistent"};
    cr_assert_eq(wf_renderer_spawn(n, "r", &bad, NULL), WF_EINVAL);
    wf_node_free(n);
}
