/* The renderer: escaping, the session counter, error pages, faults. */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
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

static wf_result render(const char *session, const char *poem, uint32_t fault)
{
    wf_msg *m = wf_msg_alloc(WF_RENDER_POEM, sizeof(wf_render_poem) + strlen(poem));
    wf_render_poem h = {.fault = fault};
    snprintf(h.session, sizeof h.session, "%s", session);
    snprintf(h.cache, sizeof h.cache, "HIT");
    memcpy(wf_msg_body(m), &h, sizeof h);
    memcpy((char *)wf_msg_body(m) + sizeof h, poem, strlen(poem));
    return wf_node_call(node, rpid, m, 5000);
}

Test(renderer, a_poem_is_escaped_and_counted_per_session, .init = start, .fini = stop)
{
    wf_result r = render("", "Title <b>&</b>\n<script>alert('x')</script>", 0);
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    wf_render_page page;
    memcpy(&page, wf_msg_body(r.u.ptr), sizeof page);
    cr_assert_eq(page.views, 1);
    cr_assert_eq(strlen(page.session), 32);
    const char *html = (char *)wf_msg_body(r.u.ptr) + sizeof page;
    size_t n = wf_msg_len(r.u.ptr) - sizeof page;
    cr_assert_null(memmem(html, n, "<script>", 8), "unescaped");
    cr_assert_not_null(memmem(html, n, "&lt;script&gt;alert(&#39;x&#39;)", 32));
    cr_assert_not_null(memmem(html, n, "<title>Title &lt;b&gt;&amp;&lt;/b&gt;</title>", 44));
    char session[33];
    memcpy(session, page.session, sizeof session);
    wf_result_free(r);
    r = render(session, "again", 0);
    memcpy(&page, wf_msg_body(r.u.ptr), sizeof page);
    cr_assert_eq(page.views, 2);
    cr_assert_str_eq(page.session, session);
    wf_result_free(r);
    r = render("not-a-session-id", "other", 0);
    memcpy(&page, wf_msg_body(r.u.ptr), sizeof page);
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
        wf_msg *m = wf_msg_alloc(WF_RENDER_ERROR, sizeof(wf_render_error) + strlen(trace));
        wf_render_error h = {.status = 502, .debug = (uint32_t)debug};
        snprintf(h.id, sizeof h.id, "0123456789abcdef");
        snprintf(h.message, sizeof h.message, "upstream <down> & \"out\" 'now'");
        memcpy(wf_msg_body(m), &h, sizeof h);
        memcpy((char *)wf_msg_body(m) + sizeof h, trace, strlen(trace));
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
    wf_msg *m = wf_msg_alloc(WF_RENDER_ERROR, sizeof(wf_render_error) + strlen(trace));
    wf_render_error h = {.status = 502, .debug = 1};
    snprintf(h.id, sizeof h.id, "<b>'\"&</b>");
    snprintf(h.message, sizeof h.message, "<script>");
    memcpy(wf_msg_body(m), &h, sizeof h);
    memcpy((char *)wf_msg_body(m) + sizeof h, trace, strlen(trace));
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
