/* What the renderers draw from the proxy fixture: the chart's lanes,
 * arrows, latencies and failures, within the width asked for; the
 * summary's figures; the HTML page's data, escaped. (The Chrome export and
 * the page in a browser are checked by chrome.sh and chromium.sh.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "chart.h"
#include "chrome.h"
#include "event.h"
#include "filter.h"
#include "html.h"
#include "model.h"
#include "summary.h"
#include "text.h"

static wv_store store;
static wv_model model;

static void load_proxy(void)
{
    wv_store_init(&store, stderr);
    cr_assert_eq(wv_store_load(&store, FIXTURES "/proxy"), 0);
    cr_assert_eq(wv_model_build(&model, &store), 0);
}

static void unload(void)
{
    wv_model_free(&model);
    wv_store_free(&store);
}

TestSuite(chart, .init = load_proxy, .fini = unload);
TestSuite(summary, .init = load_proxy, .fini = unload);
TestSuite(html, .init = load_proxy, .fini = unload);
TestSuite(chrome, .init = load_proxy, .fini = unload);

static char *chart_text(int width, bool color)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    wv_chart_render(f, &model, &(wv_chart_opts){.width = width, .color = color});
    fclose(f);
    return out;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* The line of text holding needle (a copy), or NULL. */
static char *line_with(const char *text, const char *needle)
{
    const char *at = strstr(text, needle);
    if (at == NULL)
        return NULL;
    const char *start = at;
    while (start > text && start[-1] != '\n')
        start--;
    const char *end = strchr(at, '\n');
    return strndup(start, end ? (size_t)(end - start) : strlen(start));
}

Test(chart, a_lane_for_every_actor_under_its_node)
{
    char *out = chart_text(140, false);
    char *nodes = line_with(out, "front");
    char *lanes = line_with(out, "listener");
    cr_assert_not_null(nodes);
    cr_assert_not_null(lanes);
    cr_assert(strstr(nodes, "back"), "%s", nodes);
    const char *actors[] = {"(outside)", "listener", "cache", "renderer", "fetcher"};
    const char *prev = lanes;
    for (size_t i = 0; i < 5; i++) {
        const char *at = strstr(lanes, actors[i]);
        cr_assert_not_null(at, "no lane %s in: %s", actors[i], lanes);
        cr_assert_geq(at, prev, "%s out of order: %s", actors[i], lanes);
        prev = at;
    }
    /* "back" stands over fetcher, "front" over the three others. */
    size_t back_col = wv_utf8_width(nodes) - wv_utf8_width(strstr(nodes, "back"));
    size_t fetcher_col = (size_t)(strstr(lanes, "fetcher") - lanes);
    size_t renderer_col = (size_t)(strstr(lanes, "renderer") - lanes);
    cr_assert_gt(back_col, renderer_col + 4, "%s\n%s", nodes, lanes);
    cr_assert_lt(back_col, fetcher_col + 8, "%s\n%s", nodes, lanes);
    free(nodes);
    free(lanes);
    free(out);
}

Test(chart, request_reply_latencies_and_totals)
{
    char *out = chart_text(160, false);
    /* fetch.get: sent at 1.050, fired at 31.700 on front's own clock. */
    cr_assert(strstr(out, "fired ask fetch.get ⟲ 30.650 ms"), "%s", out);
    cr_assert(strstr(out, "fired ask cache.get ⟲ 32.830 ms"), "%s", out);
    cr_assert(strstr(out, "fired ask render.poem ⟲ 2.080 ms"), "%s", out);
    cr_assert(strstr(out, "200, request took 32.900 ms"), "%s", out);
    cr_assert(strstr(out, "━━ trace 4bf92f35 · GET /poem/ode · 32.900 ms ━"), "%s", out);
    cr_assert(strstr(out, "━━ trace 0af76519 · GET /poem/missing · 6.360 ms · ✗ failed ━"), "%s",
              out);
    /* The remote hop, once the clocks agree. */
    cr_assert(strstr(out, "recv from cache@front, in flight 0.300 ms, depth 1"), "%s", out);
    cr_assert(strstr(out, "pool done: on_render 2.000 ms → reply"), "%s", out);
    free(out);
}

Test(chart, one_arrow_per_message_and_answer)
{
    char *out = chart_text(140, false);
    /* 6 sends, 6 answers (4 replies, 2 failures), 2 requests in, 2 out. */
    size_t heads = 0;
    for (char *line = out; line && *line;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        char *copy = strndup(line, n);
        size_t right = count(copy, "▶"), left = count(copy, "◀");
        cr_assert_leq(right + left, 1, "%s", copy);
        heads += right + left;
        free(copy);
        line = nl ? nl + 1 : NULL;
    }
    cr_assert_eq(heads, 16, "%s", out);
    cr_assert_eq(count(out, "── ask fetch.get ──"), 2, "%s", out);
    cr_assert_eq(count(out, "╌ reply 2000 B ╌"), 1, "%s", out);
    free(out);
}

Test(chart, failures_are_marked_and_their_text_shown)
{
    char *out = chart_text(140, false);
    cr_assert(strstr(out, "✗ WF_EUPSTREAM ╌"), "the failure's arrow: %s", out);
    cr_assert(strstr(out, "✗ WF_EUPSTREAM: upstream answered 404"), "%s", out);
    cr_assert(
        strstr(out, "┆   raised at actors/fetcher/fetcher.c:214 in on_response [fetcher@back]"),
        "%s", out);
    cr_assert(strstr(out, "┆   passed   hop back -> front [cache@front]"), "%s", out);
    cr_assert(strstr(out, "✗ fired ask fetch.get ⟲ 5.668 ms (failed)"), "%s", out);
    cr_assert_null(strchr(out, '\033'), "no color asked for");
    free(out);
    out = chart_text(140, true);
    char *fail = line_with(out, "WF_EUPSTREAM: upstream");
    cr_assert(strstr(fail, "\033[1;31m"), "failures are red: %s", fail);
    free(fail);
    free(out);
}

Test(chart, merged_order_puts_the_remote_recv_after_its_send)
{
    char *out = chart_text(140, false);
    const char *send = strstr(out, "ask fetch.get → fetcher@back");
    const char *recv = strstr(out, "recv from cache@front");
    const char *reply = strstr(out, "reply 2000 B → cache@front");
    const char *fired = strstr(out, "fired ask fetch.get");
    cr_assert(send && recv && reply && fired);
    cr_assert(send < recv && recv < reply && reply < fired, "%s", out);
    free(out);
}

Test(chart, lanes_fit_the_width)
{
    int widths[] = {100, 120, 160};
    size_t lane_gap[3];
    for (int k = 0; k < 3; k++) {
        char *out = chart_text(widths[k], false);
        for (char *line = out; line && *line;) {
            char *nl = strchr(line, '\n');
            *nl = '\0';
            cr_assert_leq(wv_utf8_width(line), (size_t)widths[k], "width %d: %s", widths[k], line);
            line = nl + 1;
        }
        free(out);
        out = chart_text(widths[k], false);
        char *lanes = line_with(out, "listener");
        lane_gap[k] = (size_t)(strstr(lanes, "cache") - strstr(lanes, "listener"));
        free(lanes);
        free(out);
    }
    cr_assert_lt(lane_gap[0], lane_gap[2], "lanes widen with the width");
}

Test(chart, filters_leave_one_block)
{
    char err[256];
    wv_filter f = {.trace = "last", .from_ns = WV_NONE, .to_ns = WV_NONE};
    cr_assert_eq(wv_filter_apply(&model, &f, err, sizeof err), 0);
    char *out = chart_text(140, false);
    cr_assert_eq(count(out, "━━ trace "), 1, "%s", out);
    cr_assert(strstr(out, "GET /poem/missing"));
    cr_assert_null(strstr(out, "GET /poem/ode"));
    cr_assert_null(strstr(out, "node events"));
    free(out);
}

static char *summary_text(void)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    wv_summary_render(f, &model, 4);
    fclose(f);
    return out;
}

Test(summary, figures)
{
    char *out = summary_text();
    cr_assert(strstr(out, "  events: 45\n"), "%s", out);
    cr_assert(strstr(out, "  traces: 2 (1 failed)\n"), "%s", out);
    cr_assert(strstr(out, "  messages: 6\n"), "%s", out);
    cr_assert(strstr(out, "  failures: 2\n"), "%s", out);
    cr_assert(strstr(out, "  lost events: 3\n"), "%s", out);
    cr_assert(strstr(out, "  skipped lines: 4\n"), "%s", out);
    cr_assert(strstr(out, "  clock correction of back: +40.000 ms\n"), "%s", out);
    char *fetch = line_with(out, "fetch.get");
    /* Two asks: 30.650 and 5.668 ms; one failed. */
    cr_assert(strstr(fetch, " ask ") && strstr(fetch, "        2 "), "%s", fetch);
    cr_assert(strstr(fetch, "18.159 ms") && strstr(fetch, "30.650 ms"), "%s", fetch);
    char *renderer = line_with(out, "renderer             front");
    /* Two pool runs: 2.000 and 0.500 ms; mailbox peak 1. */
    cr_assert(strstr(renderer, "1.250 ms") && strstr(renderer, "2.000 ms"), "%s", renderer);
    char *req = line_with(out, "(outside request)");
    cr_assert(strstr(req, "32.900 ms"), "%s", req);
    free(fetch);
    free(renderer);
    free(req);
    free(out);
}

static char *html_text(void)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    cr_assert_eq(wv_html_render(f, &model, "proxy </script><b>x</b>", 0), 0);
    fclose(f);
    return out;
}

Test(html, data_is_embedded_escaped)
{
    char *out = html_text();
    cr_assert_null(strstr(out, "@WEFT_DATA@"));
    /* The only </script> tags are the page's own two. */
    cr_assert_eq(count(out, "</script>"), 2, "recorded text broke out of the data");
    cr_assert(strstr(out, "\\u003c/script\\u003e\\u003ch1\\u003eNot Found"));
    cr_assert(strstr(out, "\"title\":\"proxy \\u003c/script\\u003e\\u003cb\\u003ex"));
    cr_assert(strstr(out, "raised at actors/fetcher/fetcher.c:214 in on_response "
                          "[fetcher@back]\\n"));
    cr_assert(strstr(out, "Grecian Urn \xe2\x80\x94 Thou"));
    free(out);
}

Test(html, arrows_lanes_and_failures_in_the_data)
{
    char *out = html_text();
    cr_assert_eq(count(out, "{\"kind\":\"ask\""), 6);
    cr_assert_eq(count(out, "{\"kind\":\"reply\""), 4);
    cr_assert_eq(count(out, "{\"kind\":\"fail\",\"from\""), 2);
    cr_assert_eq(count(out, "{\"kind\":\"in\""), 2);
    cr_assert_eq(count(out, "{\"kind\":\"out\""), 2);
    cr_assert_eq(count(out, "\"actor\":\"listener\",\"behaviour\""), 1);
    cr_assert_eq(count(out, "\"actor\":\"fetcher\",\"behaviour\""), 1);
    cr_assert_eq(count(out, "{\"kind\":\"fail\",\"lane\""), 2, "failure marks");
    cr_assert(strstr(out, "\"label\":\"GET /poem/ode\""));
    cr_assert(strstr(out, "\"latency\":32.900000"));
    free(out);
}

Test(chrome, the_export_is_complete)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    cr_assert_eq(wv_chrome_render(f, &model), 0);
    fclose(f);
    cr_assert_eq(strncmp(out, "{\"traceEvents\":[", 16), 0);
    cr_assert(strstr(out, "\"displayTimeUnit\":\"ms\""));
    cr_assert_eq(count(out, "\"name\":\"process_name\""), 2);
    cr_assert_eq(count(out, "\"name\":\"thread_name\""), 5, "4 actors and the renderer's pool");
    cr_assert_eq(count(out, "\"ph\":\"s\""), 12, "6 messages and 6 answers");
    cr_assert_eq(count(out, "\"ph\":\"f\""), 12);
    cr_assert_eq(count(out, "\"bp\":\"e\""), 12);
    cr_assert(strstr(out, "{\"ph\":\"X\",\"cat\":\"pool\",\"name\":\"on_render\""));
    free(out);
}

Test(timeouts, are_failures_everywhere)
{
    static const char *const lines[] = {
        "{\"ev\":\"send\",\"node\":\"a\",\"seq\":1,\"t_ns\":1000000,\"wall_us\":1000,"
        "\"trace\":\"01\",\"span\":\"5\",\"actor\":\"x\",\"to\":\"y@b\",\"msg\":\"ask\",\"type\":"
        "9}",
        "{\"ev\":\"node_down\",\"node\":\"a\",\"seq\":2,\"t_ns\":2000000,\"wall_us\":2000,"
        "\"peer\":\"b\",\"why\":\"connection closed\"}",
        "{\"ev\":\"timeout\",\"node\":\"a\",\"seq\":3,\"t_ns\":11000000,\"wall_us\":11000,"
        "\"trace\":\"01\",\"span\":\"5\",\"actor\":\"x\",\"ok\":false}",
    };
    wv_store s;
    wv_model m;
    wv_store_init(&s, stderr);
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(wv_store_add_line(&s, "t", i + 1, lines[i], strlen(lines[i])), 1);
    cr_assert_eq(wv_model_build(&m, &s), 0);
    cr_assert(m.traces[0].failed);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    wv_chart_render(f, &m, &(wv_chart_opts){.width = 120});
    wv_summary_render(f, &m, 0);
    cr_assert_eq(wv_chrome_render(f, &m), 0);
    cr_assert_eq(wv_html_render(f, &m, "t", 0), 0);
    fclose(f);
    cr_assert(strstr(out, "✗ timeout ask 0x00000009 after 10.000 ms"), "%s", out);
    cr_assert(strstr(out, "a: peer b down (connection closed)"), "%s", out);
    cr_assert(strstr(out, "  timeouts: 1\n"), "%s", out);
    cr_assert(strstr(out, "\"name\":\"✗ timeout\""), "a Chrome instant: %s", out);
    cr_assert(strstr(out, "{\"kind\":\"timeout\",\"lane\""), "an HTML failure mark");
    free(out);
    wv_model_free(&m);
    wv_store_free(&s);
}

Test(deferred_work, is_part_of_its_handler)
{
    /* A handler defers work to a thread, as the runtime records it: the
     * pool run has the handler's span, no handler name, and a label. */
    static const char *const lines[] = {
        "{\"ev\":\"send\",\"node\":\"a\",\"seq\":1,\"t_ns\":1000,\"wall_us\":1,\"trace\":\"01\","
        "\"span\":\"5\",\"actor\":\"\",\"to\":\"back@a\",\"msg\":\"ask\",\"type\":3,\"depth\":1}",
        "{\"ev\":\"start\",\"node\":\"a\",\"seq\":2,\"t_ns\":2000,\"wall_us\":2,\"trace\":\"01\","
        "\"span\":\"5\",\"actor\":\"back\",\"from\":\"\",\"msg\":\"ask\",\"handler\":\"defer\"}",
        "{\"ev\":\"end\",\"node\":\"a\",\"seq\":3,\"t_ns\":3000,\"wall_us\":3,\"trace\":\"01\","
        "\"span\":\"5\",\"actor\":\"back\",\"handler\":\"defer\",\"ok\":true,"
        "\"outcome\":\"deferred\"}",
        "{\"ev\":\"offload_start\",\"node\":\"a\",\"seq\":4,\"t_ns\":3500,\"wall_us\":3,"
        "\"trace\":\"01\",\"span\":\"5\",\"actor\":\"back\",\"from\":\"\",\"msg\":\"tell\","
        "\"handler\":\"\",\"pool\":true,\"label\":\"defer_to_thread\"}",
        "{\"ev\":\"offload_end\",\"node\":\"a\",\"seq\":5,\"t_ns\":903500,\"wall_us\":903,"
        "\"trace\":\"01\",\"span\":\"5\",\"actor\":\"back\",\"from\":\"\",\"msg\":\"tell\","
        "\"handler\":\"\",\"pool\":true,\"ok\":true,\"outcome\":\"ok\","
        "\"label\":\"defer_to_thread\"}",
        "{\"ev\":\"reply\",\"node\":\"a\",\"seq\":6,\"t_ns\":904000,\"wall_us\":904,"
        "\"trace\":\"01\",\"span\":\"5\",\"actor\":\"back\",\"size\":2}",
        "{\"ev\":\"fired\",\"node\":\"a\",\"seq\":7,\"t_ns\":905000,\"wall_us\":905,"
        "\"trace\":\"01\",\"span\":\"5\",\"actor\":\"\",\"ok\":true}",
    };
    wv_store s;
    wv_model m;
    wv_store_init(&s, stderr);
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        cr_assert_eq(wv_store_add_line(&s, "t", i + 1, lines[i], strlen(lines[i])), 1);
    cr_assert_eq(wv_model_build(&m, &s), 0);
    cr_assert_eq(m.nmsgs, 1);
    cr_assert_eq(m.nruns, 2);
    const wv_run *r = &m.runs[m.msgs[0].run];
    cr_assert_not(r->pool, "the message's run is its handler on the loop");
    cr_assert_str_eq(r->start->handler, "defer");
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    wv_chart_render(f, &m, &(wv_chart_opts){.width = 120});
    wv_summary_render(f, &m, 0);
    cr_assert_eq(wv_chrome_render(f, &m), 0);
    cr_assert_eq(wv_html_render(f, &m, "t", 0), 0);
    fclose(f);
    cr_assert(strstr(out, "pool done: defer_to_thread 0.900 ms → ok"), "%s", out);
    cr_assert(strstr(out, "{\"ph\":\"X\",\"cat\":\"pool\",\"name\":\"defer_to_thread\""), "%s",
              out);
    cr_assert(strstr(out, "\"label\":\"defer_to_thread\""), "an HTML run: %s", out);
    /* One message handled, in 0.001 ms; the pool run is not another. */
    cr_assert(strstr(out, "  back                 a                 1     0.001 ms"), "%s", out);
    free(out);
    wv_model_free(&m);
    wv_store_free(&s);
}
