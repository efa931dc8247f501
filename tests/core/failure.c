/* Failures: codes and messages from one list, frames, causes, formatting. */
#include <string.h>

#include <criterion/criterion.h>

#include "testutil.h"

TestSuite(failure, .timeout = 30);

Test(failure, every_error_has_a_name_and_a_message)
{
#define CHECK_(name, num, msg)                 \
    cr_assert_str_eq(wf_errname(name), #name); \
    cr_assert_str_eq(wf_strerror(name), msg);
    WF_ERRORS(CHECK_)
#undef CHECK_
    cr_assert_str_eq(wf_strerror(WF_EUSER + 5), "application error");
    cr_assert_str_eq(wf_errname(WF_EUSER + 5), "WF_EUSER");
    cr_assert_str_eq(wf_strerror(999), "unknown error");
    cr_assert_eq(WF_OK, 0);
}

Test(failure, records_where_it_was_raised_and_passed)
{
    wf_failure *f = wf_failure_new(WF_ETIMEDOUT, "fetch %s after %d ms", "poem", 250);
    cr_assert_eq(wf_failure_code(f), WF_ETIMEDOUT);
    cr_assert_str_eq(wf_failure_message(f), "fetch poem after 250 ms");
    cr_assert_eq(wf_failure_frame_count(f), 1);
    const wf_frame *fr = wf_failure_frame(f, 0);
    cr_assert(strstr(fr->file, "failure.c") != NULL);
    cr_assert_str_eq(fr->func, "failure_records_where_it_was_raised_and_passed_impl");
    wf_failure_pass(f);
    wf_failure_add_frame(
        f,
        &(wf_frame){.file = "cache.c", .line = 9, .func = "get", .actor = "cache", .node = "n2"});
    cr_assert_eq(wf_failure_frame_count(f), 3);
    cr_assert_str_eq(wf_failure_frame(f, 2)->actor, "cache");
    cr_assert_null(wf_failure_frame(f, 3));
    wf_failure_release(f);
}

Test(failure, formats_as_text_with_frames_and_causes)
{
    wf_failure *root = wf_failure_new(WF_EUPSTREAM, "connection refused");
    wf_failure *f = wf_failure_new(WF_EUSER + 12, "render failed");
    wf_failure_add_frame(f, &(wf_frame){.file = "renderer.c",
                                        .line = 40,
                                        .func = "render",
                                        .actor = "renderer",
                                        .node = "web1"});
    wf_failure_set_cause(f, root);
    char *text = wf_failure_format(f, WF_FORMAT_TEXT);
    cr_assert(strstr(text, "E1012: render failed\n") == text, "%s", text);
    cr_assert(strstr(text, "passed   renderer.c:40 in render [renderer@web1]") != NULL, "%s", text);
    cr_assert(strstr(text, "caused by: WF_EUPSTREAM: connection refused") != NULL, "%s", text);
    wf_free(text);
    cr_assert_eq(wf_failure_cause(f), root);
    wf_failure_release(f); /* frees the cause with it */
}

Test(failure, html_format_escapes_everything_from_outside)
{
    wf_failure *f = wf_failure_new(WF_EPROTO, "bad header <script>alert('x')</script> & \"q\"");
    wf_failure_add_frame(
        f, &(wf_frame){.file = "<f>", .line = 1, .func = "a&b", .actor = "<act>", .node = "n\"1"});
    char *html = wf_failure_format(f, WF_FORMAT_HTML);
    cr_assert(strstr(html, "<script>") == NULL, "%s", html);
    cr_assert(strstr(html, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"),
              "%s", html);
    cr_assert(strstr(html, "&lt;f&gt;:1 in a&amp;b [&lt;act&gt;@n&quot;1]") != NULL, "%s", html);
    wf_free(html);
    wf_failure_release(f);
}

Test(failure, references_are_counted)
{
    wf_failure *f = wf_failure_new(WF_EUSER, "shared");
    cr_assert_eq(wf_failure_ref(f), f);
    wf_failure_release(f);
    cr_assert_str_eq(wf_failure_message(f), "shared", "still alive with one reference left");
    wf_failure_release(f);
    wf_failure_release(NULL);
}

Test(failure, a_long_cause_chain_is_released_without_recursion)
{
    wf_failure *f = wf_failure_new(WF_EUSER, "root");
    for (int i = 0; i < 200000; i++) {
        wf_failure *g = wf_failure_new(WF_EUSER, "wrap %d", i);
        wf_failure_set_cause(g, f);
        f = g;
    }
    wf_failure_release(f);
}

Test(failure, out_of_memory_gives_a_usable_stand_in)
{
    tu_count_allocs();
    tu_fail_alloc_after(0);
    wf_failure *f = wf_failure_new(WF_EUSER, "cannot be allocated");
    tu_fail_alloc_after(-1);
    cr_assert_eq(wf_failure_code(f), WF_ENOMEM);
    wf_failure_pass(f); /* ignored on the stand-in */
    wf_failure_set_cause(f, wf_failure_new(WF_EUSER, "dropped, not leaked"));
    wf_failure_ref(f);
    wf_failure_release(f);
    wf_failure_release(f);
    char *text = wf_failure_format(f, WF_FORMAT_TEXT);
    cr_assert(strstr(text, "WF_ENOMEM: out of memory") != NULL);
    wf_free(text);
}
