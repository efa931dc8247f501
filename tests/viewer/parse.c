/* The viewer's reader: the trace format read exactly, and anything else
 * (truncated, mistyped, nested, binary, huge) skipped with SOURCE:LINE on
 * the error stream and counted, never a crash. After a fuzz-ish run every
 * renderer must still cope with whatever was read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <weft/cache.h>
#include <weft/fetcher.h>
#include <weft/listener.h>
#include <weft/msg.h>
#include <weft/renderer.h>

#include "chart.h"
#include "chrome.h"
#include "event.h"
#include "filter.h"
#include "html.h"
#include "model.h"
#include "summary.h"

/* A store whose reports go to a string. */
typedef struct reader {
    wv_store s;
    FILE *err;
    char *text;
    size_t len;
} reader;

static void reader_open(reader *r)
{
    memset(r, 0, sizeof *r);
    r->err = open_memstream(&r->text, &r->len);
    cr_assert_not_null(r->err);
    wv_store_init(&r->s, r->err);
    r->s.max_reports = 1000;
}

static const char *reader_errors(reader *r)
{
    fflush(r->err);
    return r->text ? r->text : "";
}

static void reader_close(reader *r)
{
    wv_store_free(&r->s);
    fclose(r->err);
    free(r->text);
}

static int add(reader *r, const char *line)
{
    return wv_store_add_line(&r->s, "t", 1, line, strlen(line));
}

#define HEAD "\"node\":\"n\",\"seq\":1,\"t_ns\":5,\"wall_us\":7"

Test(parse, the_proxy_fixture_reads_whole)
{
    reader r;
    reader_open(&r);
    cr_assert_eq(wv_store_load(&r.s, FIXTURES "/proxy"), 0);
    cr_assert_eq(r.s.files, 2);
    cr_assert_eq(r.s.skipped, 0, "%s", reader_errors(&r));
    cr_assert_eq(r.s.n, 45);
    cr_assert_eq(r.s.nnodes, 2);
    size_t fails = 0, sends = 0;
    for (size_t i = 0; i < r.s.n; i++) {
        const wv_event *e = r.s.events[i];
        if (e->kind == WV_FAIL) {
            fails++;
            cr_assert_str_eq(e->code, "WF_EUPSTREAM");
            cr_assert(strstr(e->failure, "\n  raised at actors/fetcher/fetcher.c:214 in "
                                         "on_response [fetcher@back]\n"));
            cr_assert(strstr(e->message, "\"</script><h1>Not Found</h1>\""));
        }
        if (e->kind == WV_SEND) {
            sends++;
            cr_assert_neq(e->span, 0);
            cr_assert_not_null(e->trace);
            cr_assert_eq(strlen(e->trace), 32);
        }
        if (e->kind == WV_SEND && e->type == WF_RENDER_POEM)
            cr_assert(strstr(e->preview, "Grecian Urn \xe2\x80\x94 Thou"), "\\u2014 decoded: %s",
                      e->preview);
    }
    cr_assert_eq(fails, 2);
    cr_assert_eq(sends, 6);
    reader_close(&r);
}

Test(parse, every_field_of_the_format)
{
    reader r;
    reader_open(&r);
    cr_assert_eq(add(&r, "{\"ev\":\"send\"," HEAD ",\"trace\":\"4BF92F3577B34DA6A3CE929D0E0E4736\","
                         "\"span\":\"00f067aa0ba902b7\",\"parent\":\"b7ad6b7169203331\","
                         "\"actor\":\"cache\",\"to\":\"fetcher@back\",\"msg\":\"ask\","
                         "\"type\":1178927105,\"size\":3,\"depth\":2,\"preview\":\"ode\","
                         "\"corr\":\"1f\"}"),
                 1);
    const wv_event *e = r.s.events[0];
    cr_assert_eq(e->kind, WV_SEND);
    cr_assert_str_eq(e->node, "n");
    cr_assert_eq(e->seq, 1);
    cr_assert_eq(e->t_ns, 5);
    cr_assert_eq(e->wall_us, 7);
    cr_assert_str_eq(e->trace, "4bf92f3577b34da6a3ce929d0e0e4736", "trace ids are lower-cased");
    cr_assert_eq(e->span, 0x00f067aa0ba902b7ull);
    cr_assert_eq(e->parent, 0xb7ad6b7169203331ull);
    cr_assert_str_eq(e->to, "fetcher@back");
    cr_assert_eq(e->type, WF_FETCH_GET);
    cr_assert_eq(e->depth, 2);
    cr_assert_str_eq(e->corr, "1f");
    cr_assert_eq(e->ok, -1, "absent");
    cr_assert_eq(add(&r, "{\"ev\":\"end\"," HEAD ",\"ok\":false,\"outcome\":\"fail\","
                         "\"pool\":true,\"handler\":\"h\",\"parent\":\"\",\"pid\":42}"),
                 1);
    e = r.s.events[1];
    cr_assert_eq(e->ok, 0);
    cr_assert(e->pool);
    cr_assert_eq(e->parent, 0, "\"\" is no parent");
    cr_assert_str_eq(e->pid, "42", "a numeric pid is kept as text");
    cr_assert_eq(add(&r, "{\"ev\":\"config\"," HEAD ",\"sample\":0.25,\"actors\":\"a,b\","
                         "\"label\":null}"),
                 1);
    e = r.s.events[2];
    cr_assert_float_eq(e->sample, 0.25, 1e-9);
    cr_assert_str_eq(e->cfg_actors, "a,b");
    cr_assert_null(e->label, "null is absent");
    cr_assert_eq(r.s.skipped, 0, "%s", reader_errors(&r));
    reader_close(&r);
}

Test(parse, the_node_name_is_interned)
{
    reader r;
    reader_open(&r);
    cr_assert_eq(add(&r, "{\"ev\":\"lost\"," HEAD ",\"count\":1}"), 1);
    cr_assert_eq(add(&r, "{\"ev\":\"lost\"," HEAD ",\"count\":2}"), 1);
    cr_assert_eq(r.s.events[0]->node, r.s.events[1]->node);
    cr_assert_eq(r.s.nnodes, 1);
    reader_close(&r);
}

/* Line numbers in fixtures/bad.jsonl (gen_fixtures.py says what each is). */
static const int bad_lines[] = {2, 3, 5, 6, 8, 9, 11, 12, 13, 15, 16, 17, 18};

Test(parse, malformed_lines_are_skipped_named_and_counted)
{
    reader r;
    reader_open(&r);
    cr_assert_eq(wv_store_load(&r.s, FIXTURES "/bad.jsonl"), 0);
    const char *errs = reader_errors(&r);
    size_t nbad = sizeof bad_lines / sizeof bad_lines[0];
    cr_assert_eq(r.s.skipped, nbad, "%s", errs);
    cr_assert_eq(r.s.n, 6);
    cr_assert_eq(r.s.lines, 19, "the blank line is not counted");
    for (size_t i = 0; i < nbad; i++) {
        char want[256];
        snprintf(want, sizeof want, FIXTURES "/bad.jsonl:%d: skipped: ", bad_lines[i]);
        cr_assert(strstr(errs, want), "no report for line %d in:\n%s", bad_lines[i], errs);
    }
    cr_assert(strstr(errs, ":2: skipped: truncated object"), "%s", errs);
    cr_assert(strstr(errs, ":3: skipped: \"seq\" has the wrong type"), "%s", errs);
    cr_assert(strstr(errs, ":5: skipped: nested value"), "%s", errs);
    cr_assert(strstr(errs, ":6: skipped: unknown event kind \"frobnicate\""), "%s", errs);
    cr_assert(strstr(errs, ":11: skipped: no \"node\""), "%s", errs);
    cr_assert(strstr(errs, ":12: skipped: \"span\" is not up to 16 hex digits"), "%s", errs);
    cr_assert(strstr(errs, ":13: skipped: text after the object"), "%s", errs);
    cr_assert(strstr(errs, ":15: skipped: invalid escape"), "%s", errs);
    cr_assert(strstr(errs, ":16: skipped: control character"), "%s", errs);
    cr_assert(strstr(errs, ":17: skipped: real number overflow"), "%s", errs);
    cr_assert(strstr(errs, ":18: skipped: \"ok\" has the wrong type"), "%s", errs);
    /* The good lines, escapes decoded and bad UTF-8 made safe. */
    const wv_event *send = NULL, *recv = NULL;
    for (size_t i = 0; i < r.s.n; i++) {
        if (r.s.events[i]->kind == WV_SEND)
            send = r.s.events[i];
        if (r.s.events[i]->kind == WV_RECV)
            recv = r.s.events[i];
    }
    cr_assert_not_null(send);
    cr_assert_str_eq(send->preview, "a\"b\\c\nd\xc3\xa9\xf0\x9f\x98\x80");
    cr_assert_not_null(recv);
    cr_assert_str_eq(recv->label, "caf?", "invalid UTF-8 becomes '?'");
    reader_close(&r);
}

Test(parse, a_nul_escape_becomes_the_replacement_character)
{
    reader r;
    reader_open(&r);
    static const char line[] = "{\"ev\":\"send\",\"node\":\"n\",\"seq\":1,\"t_ns\":1,"
                               "\"wall_us\":1,\"preview\":\"a\\u0000b\"}";
    cr_assert_eq(wv_store_add_line(&r.s, "src", 1, line, sizeof line - 1), 1);
    /* A NUL would end the string early for every renderer: U+FFFD instead. */
    cr_assert_str_eq(r.s.events[0]->preview, "a\xef\xbf\xbd"
                                             "b");
    reader_close(&r);
}

Test(parse, reports_stop_after_a_limit_but_counting_goes_on)
{
    reader r;
    reader_open(&r);
    r.s.max_reports = 3;
    for (int i = 0; i < 10; i++)
        cr_assert_eq(wv_store_add_line(&r.s, "src", (unsigned long)i + 1, "nope", 4), 0);
    cr_assert_eq(r.s.skipped, 10);
    const char *errs = reader_errors(&r);
    cr_assert(strstr(errs, "src:3: skipped"));
    cr_assert_null(strstr(errs, "src:4: skipped"));
    cr_assert(strstr(errs, "more malformed lines"));
    reader_close(&r);
}

Test(parse, a_file_that_cannot_be_read_is_an_error)
{
    reader r;
    reader_open(&r);
    cr_assert_eq(wv_store_load(&r.s, FIXTURES "/no-such-file.jsonl"), -1);
    cr_assert(strstr(reader_errors(&r), "cannot read"));
    cr_assert_eq(r.s.files, 0);
    reader_close(&r);
}

Test(parse, wrong_types_and_values)
{
    static const char *const lines[] = {
        "{\"ev\":1," HEAD "}",
        "{\"ev\":\"send\",\"node\":1,\"seq\":1,\"t_ns\":5,\"wall_us\":7}",
        "{\"ev\":\"send\",\"node\":\"\",\"seq\":1,\"t_ns\":5,\"wall_us\":7}",
        "{\"ev\":\"send\"," HEAD ",\"seq\":1.5}",
        "{\"ev\":\"send\"," HEAD ",\"trace\":\"not hex\"}",
        "{\"ev\":\"send\"," HEAD ",\"trace\":\"0123456789abcdef0123456789abcdef0\"}",
        "{\"ev\":\"send\"," HEAD ",\"span\":\"0123456789abcdef0\"}",
        "{\"ev\":\"send\"," HEAD ",\"span\":12}",
        "{\"ev\":\"send\"," HEAD ",\"type\":\"0x43410001\"}",
        "{\"ev\":\"send\"," HEAD ",\"pool\":1}",
        "{\"ev\":\"send\"," HEAD ",\"corr\":1.5}",
        "{\"ev\":\"send\"," HEAD ",\"preview\":[1]}",
        "{\"ev\":\"send\"," HEAD ",\"size\":-}",
        "{\"ev\":\"send\"," HEAD ",\"size\":01}",
        "{\"ev\":\"send\"," HEAD ",\"size\":1.}",
        "{\"ev\":\"send\"," HEAD ",\"size\":tru}",
        "{\"ev\":\"send\"," HEAD ",\"size\":99999999999999999999999}",
        "{\"ev\":\"send\"," HEAD ",\"label\":\"\\u12\"}",
        "{\"ev\":\"send\"," HEAD ",}",
        "{\"ev\":\"send\"," HEAD " \"x\":1}",
        "{\"ev\":\"send\"," HEAD ",\"x\"}",
        "{\"ev\" \"send\"}",
        "{\"ev\":\"send\"," HEAD "}}",
        "{'ev':'send'}",
        "\"just a string\"",
        "{",
        "}",
        "null",
        "{\"ev\":\"send\",\"seq\":1,\"t_ns\":5,\"wall_us\":7}",
        "{\"ev\":\"send\",\"node\":\"n\",\"t_ns\":5,\"wall_us\":7}",
        "{\"ev\":\"send\",\"node\":\"n\",\"seq\":1,\"wall_us\":7}",
        "{\"ev\":\"send\",\"node\":\"n\",\"seq\":1,\"t_ns\":5}",
        "{\"node\":\"n\",\"seq\":1,\"t_ns\":5,\"wall_us\":7}",
    };
    reader r;
    reader_open(&r);
    size_t n = sizeof lines / sizeof lines[0];
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(add(&r, lines[i]), 0, "accepted: %s", lines[i]);
    cr_assert_eq(r.s.skipped, n);
    cr_assert_eq(r.s.n, 0);
    /* 1e3 is an integer all the same; unknown fields and kinds' extras pass. */
    cr_assert_eq(add(&r, "{\"ev\":\"send\",\"node\":\"n\",\"seq\":1e3,\"t_ns\":5,\"wall_us\":7,"
                         "\"new\":\"field\",\"n2\":-0.5e-3}"),
                 1);
    cr_assert_eq(r.s.events[0]->seq, 1000);
    reader_close(&r);
}

Test(parse, every_prefix_of_a_line_is_handled)
{
    const char *full =
        "{\"ev\":\"fail\"," HEAD ",\"trace\":\"4bf92f3577b34da6a3ce929d0e0e4736\","
        "\"span\":\"b7ad6b7169203331\",\"actor\":\"fetcher\",\"code\":\"WF_EUPSTREAM\","
        "\"message\":\"m \\u00e9 \\ud83d\\ude00\",\"failure\":\"a\\nb\\\"c\"}";
    reader r;
    reader_open(&r);
    size_t n = strlen(full);
    for (size_t len = 0; len < n; len++) {
        /* A copy of just the prefix, so valgrind sees any read past it. */
        char *p = malloc(len ? len : 1);
        memcpy(p, full, len);
        cr_assert_eq(wv_store_add_line(&r.s, "t", len, p, len), 0, "prefix %zu accepted", len);
        free(p);
    }
    cr_assert_eq(wv_store_add_line(&r.s, "t", n, full, n), 1);
    cr_assert_str_eq(r.s.events[0]->message, "m \xc3\xa9 \xf0\x9f\x98\x80");
    cr_assert_str_eq(r.s.events[0]->failure, "a\nb\"c");
    reader_close(&r);
}

Test(parse, huge_strings_are_cut)
{
    size_t big = 1 << 20;
    char *line = malloc(big + 256);
    int head = snprintf(line, 256, "{\"ev\":\"send\"," HEAD ",\"preview\":\"");
    memset(line + head, 'x', big);
    /* A 2-byte character right where the cut falls: it must not split. */
    line[head + WV_MAX_STRING - 1] = (char)0xc3;
    line[head + WV_MAX_STRING] = (char)0xa9;
    strcpy(line + head + big, "\"}");
    reader r;
    reader_open(&r);
    cr_assert_eq(add(&r, line), 1);
    const char *p = r.s.events[0]->preview;
    cr_assert_lt(strlen(p), WV_MAX_STRING + 16);
    cr_assert(strstr(p, "[cut]"));
    cr_assert_eq(p[WV_MAX_STRING - 2], 'x');
    cr_assert_str_eq(p + WV_MAX_STRING - 1, "…[cut]", "cut before the 2-byte character");
    free(line);
    /* A huge key, a huge number: skipped, not crashed. */
    char *key = malloc(big + 64);
    memset(key, 'k', big + 64);
    key[0] = '{';
    key[1] = '"';
    strcpy(key + big, "\":1}");
    cr_assert_eq(add(&r, key), 0);
    memset(key, '9', big + 64);
    memcpy(key,
           "{\"ev\":\"send\"," HEAD ",\"size\":", strlen("{\"ev\":\"send\"," HEAD ",\"size\":"));
    strcpy(key + big, "}");
    cr_assert_eq(add(&r, key), 0);
    free(key);
    reader_close(&r);
}

/* Renders everything m holds to nowhere; the point is that it does not
 * crash or leak on whatever the reader accepted. */
static void render_all(wv_model *m, wv_store *s)
{
    FILE *null = fopen("/dev/null", "w");
    cr_assert_not_null(null);
    wv_chart_opts o = {.width = 100, .color = true};
    wv_chart_render(null, m, &o);
    wv_summary_render(null, m, s->skipped);
    cr_assert_eq(wv_chrome_render(null, m), 0);
    cr_assert_eq(wv_html_render(null, m, "fuzz </script>", s->skipped), 0);
    fclose(null);
}

/* A small deterministic generator: the same "random" input on every run. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

Test(parse, garbage_and_mutations_never_crash)
{
    /* Valid lines of the fixture as material. */
    FILE *f = fopen(FIXTURES "/proxy/front.jsonl", "r");
    cr_assert_not_null(f);
    char *lines[64];
    size_t nl = 0, cap = 0;
    char *buf = NULL;
    ssize_t n;
    while (nl < 64 && (n = getline(&buf, &cap, f)) > 0) {
        buf[n - 1] = '\0';
        lines[nl++] = strdup(buf);
    }
    free(buf);
    fclose(f);
    reader r;
    reader_open(&r);
    r.s.err = NULL; /* thousands of reports: only the counts matter here */
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    size_t accepted = 0, total = 0;
    for (int round = 0; round < 3000; round++) {
        char line[2048];
        size_t len;
        uint64_t pick = rng_next(&seed);
        if (round % 5 == 0) {
            /* Pure binary garbage, NULs included. */
            len = pick % sizeof line;
            for (size_t i = 0; i < len; i++)
                line[i] = (char)rng_next(&seed);
        } else {
            /* A valid line with a few bytes flipped, deleted or duplicated. */
            const char *src = lines[pick % nl];
            len = strlen(src);
            memcpy(line, src, len);
            int edits = 1 + (int)(rng_next(&seed) % 4);
            for (int k = 0; k < edits && len > 1; k++) {
                size_t at = rng_next(&seed) % len;
                switch (rng_next(&seed) % 3) {
                case 0:
                    line[at] = (char)rng_next(&seed);
                    break;
                case 1:
                    memmove(line + at, line + at + 1, len - at - 1);
                    len--;
                    break;
                default:
                    if (len + 1 < sizeof line) {
                        memmove(line + at + 1, line + at, len - at);
                        len++;
                    }
                }
            }
        }
        /* An exact-size heap copy, so valgrind sees any overread. */
        char *copy = malloc(len ? len : 1);
        memcpy(copy, line, len);
        int rc = wv_store_add_line(&r.s, "fuzz", (unsigned long)round, copy, len);
        free(copy);
        cr_assert_geq(rc, 0);
        accepted += (size_t)rc;
        total++;
    }
    cr_assert_eq(accepted + r.s.skipped + (total - r.s.lines), total);
    cr_assert_gt(r.s.skipped, 1000, "most mutations break a line");
    wv_model m;
    cr_assert_eq(wv_model_build(&m, &r.s), 0);
    render_all(&m, &r.s);
    wv_model_free(&m);
    for (size_t i = 0; i < nl; i++)
        free(lines[i]);
    reader_close(&r);
}

Test(parse, hostile_values_are_drawn_safely)
{
    /* Extreme clocks, escape sequences, a node that is everyone's peer. */
    static const char *const lines[] = {
        "{\"ev\":\"send\",\"node\":\"a\",\"seq\":1,\"t_ns\":9223372036854775807,"
        "\"wall_us\":9223372036854775807,\"span\":\"ffffffffffffffff\",\"actor\":\"\\u001b["
        "2J\\u202e\","
        "\"to\":\"x@b\",\"msg\":\"ask\",\"preview\":\"\\u001b]0;pwned\\u0007\"}",
        "{\"ev\":\"recv\",\"node\":\"b\",\"seq\":1,\"t_ns\":-9223372036854775807,"
        "\"wall_us\":-9223372036854775807,\"span\":\"ffffffffffffffff\",\"actor\":\"x\","
        "\"from\":\"\\u001b[2J@a\"}",
        "{\"ev\":\"reply\",\"node\":\"b\",\"seq\":2,\"t_ns\":0,\"wall_us\":0,"
        "\"span\":\"ffffffffffffffff\",\"actor\":\"x\"}",
        "{\"ev\":\"fired\",\"node\":\"a\",\"seq\":2,\"t_ns\":0,\"wall_us\":0,"
        "\"span\":\"ffffffffffffffff\",\"actor\":\"\\u001b[2J\",\"ok\":false}",
        "{\"ev\":\"end\",\"node\":\"c\",\"seq\":1,\"t_ns\":1,\"wall_us\":1,\"actor\":\"y\"}",
        "{\"ev\":\"offload_end\",\"node\":\"c\",\"seq\":2,\"t_ns\":1,\"wall_us\":1,\"actor\":"
        "\"y\"}",
        "{\"ev\":\"fail\",\"node\":\"c\",\"seq\":3,\"t_ns\":1,\"wall_us\":1,\"actor\":\"y\","
        "\"failure\":\"\\n\\n\\n\",\"to\":\"\",\"label\":\"\"}",
        "{\"ev\":\"lost\",\"node\":\"c\",\"seq\":4,\"t_ns\":1,\"wall_us\":1,"
        "\"count\":9223372036854775807}",
        "{\"ev\":\"lost\",\"node\":\"c\",\"seq\":5,\"t_ns\":1,\"wall_us\":1,"
        "\"count\":9223372036854775807}",
    };
    reader r;
    reader_open(&r);
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        cr_assert_eq(add(&r, lines[i]), 1, "%s", reader_errors(&r));
    wv_model m;
    cr_assert_eq(wv_model_build(&m, &r.s), 0);
    render_all(&m, &r.s);
    /* The chart never passes an escape character on. */
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    wv_chart_render(f, &m, &(wv_chart_opts){.width = 120, .color = false});
    fclose(f);
    cr_assert_null(memchr(out, 0x1b, len), "%s", out);
    cr_assert_null(memchr(out, 0x07, len));
    cr_assert_null(strstr(out, "\xe2\x80\xae"), "no right-to-left override");
    free(out);
    wv_model_free(&m);
    reader_close(&r);
}

Test(parse, type_names_match_the_runtime_headers)
{
    char buf[32];
    cr_assert_str_eq(wv_type_name(WF_CACHE_GET, buf, sizeof buf), "cache.get");
    cr_assert_str_eq(wv_type_name(WF_CACHE_STATS, buf, sizeof buf), "cache.stats");
    cr_assert_str_eq(wv_type_name(WF_FETCH_GET, buf, sizeof buf), "fetch.get");
    cr_assert_str_eq(wv_type_name(WF_RENDER_POEM, buf, sizeof buf), "render.poem");
    cr_assert_str_eq(wv_type_name(WF_RENDER_ERROR, buf, sizeof buf), "render.error");
    cr_assert_str_eq(wv_type_name(WF_LISTENER_PORTS, buf, sizeof buf), "listener.ports");
    cr_assert_str_eq(wv_type_name(WF_MSG_DOWN, buf, sizeof buf), "down");
    cr_assert_str_eq(wv_type_name(7, buf, sizeof buf), "0x00000007");
}
