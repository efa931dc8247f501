/* The wire codec: round trips, and every rule that rejects a frame. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <weft/wire.h>

#include "testutil.h"

TestSuite(wire, .timeout = 60);

/* Builds a frame: header for f, then name and payload. Caller frees. */
static unsigned char *build(wf_wire_frame *f, const char *name, const void *payload, size_t plen,
                            size_t *len)
{
    f->name_len = name ? strlen(name) : 0;
    f->payload_len = plen;
    *len = WF_WIRE_HEADER + f->name_len + plen;
    unsigned char *b = malloc(*len);
    wf_wire_put_header(f, b);
    if (f->name_len)
        memcpy(b + WF_WIRE_HEADER, name, f->name_len);
    if (plen)
        memcpy(b + WF_WIRE_HEADER + f->name_len, payload, plen);
    return b;
}

static wf_wire_frame sample(void)
{
    wf_wire_frame f = {.kind = WF_WIRE_ASK,
                       .type = 0xA1B2C3D4,
                       .corr = 0x0102030405060708ull,
                       .from = 42,
                       .to = 0,
                       .span_id = 7,
                       .parent_span_id = 9,
                       .budget_ms = 1234};
    memset(f.trace_id, 0xAB, 16);
    return f;
}

Test(wire, a_frame_round_trips)
{
    wf_wire_frame f = sample(), g;
    size_t len;
    unsigned char *b = build(&f, "cache", "poem", 4, &len);
    const char *why = NULL;
    size_t plen;
    cr_assert_eq(wf_wire_frame_len(b, &plen), len, "the header gives the frame's length");
    cr_assert_eq(plen, 4);
    cr_assert_eq(wf_wire_decode(b, len, 1024, &g, &why), 0, "%s", why);
    cr_assert_eq(g.kind, WF_WIRE_ASK);
    cr_assert_eq(g.type, 0xA1B2C3D4);
    cr_assert_eq(g.corr, 0x0102030405060708ull);
    cr_assert_eq(g.from, 42);
    cr_assert_eq(g.span_id, 7);
    cr_assert_eq(g.parent_span_id, 9);
    cr_assert_eq(g.budget_ms, 1234, "an ask's deadline travels as its budget");
    cr_assert_eq(memcmp(g.trace_id, f.trace_id, 16), 0);
    cr_assert_eq(g.name_len, 5);
    cr_assert_eq(memcmp(g.name, "cache", 5), 0);
    cr_assert_eq(g.payload_len, 4);
    cr_assert_eq(memcmp(g.payload, "poem", 4), 0);
    free(b);
}

static void expect_reject(unsigned char *b, size_t len, size_t max, const char *reason)
{
    wf_wire_frame g;
    const char *why = NULL;
    cr_assert_eq(wf_wire_decode(b, len, max, &g, &why), WF_EPROTO, "accepted: %s", reason);
    cr_assert_str_eq(why, reason);
}

Test(wire, every_malformed_frame_is_rejected_with_its_reason)
{
    wf_wire_frame f = sample();
    size_t len;
    unsigned char *b = build(&f, "cache", "poem", 4, &len);
    expect_reject(b, WF_WIRE_HEADER - 1, 1024, "frame shorter than the header");
    expect_reject(b, len - 1, 1024, "frame truncated");
    expect_reject(b, len, 3, "payload over the size limit");
    unsigned char *c = malloc(len + 1);
    memcpy(c, b, len);
    c[len] = 0;
    expect_reject(c, len + 1, 1024, "bytes after the frame");
    /* One byte changed in a good frame, and the reason it is refused. */
    static const struct {
        size_t at;
        unsigned char value;
        const char *why;
    } bad[] = {
        {0, 'X', "bad magic"},
        {2, WF_WIRE_VERSION - 1, "unsupported wire version"},
        {2, WF_WIRE_VERSION + 1, "unsupported wire version"},
        {3, 0, "unknown frame kind"},
        {3, 77, "unknown frame kind"},
        {67, 1, "reserved header bits set"},
        {79, 1, "reserved header bits set"},
        {3, WF_WIRE_TELL, "a deadline on a frame that is not an ask"},
        {WF_WIRE_HEADER + 2, '\0', "NUL in target name"},
        {64, 1, "target name too long"}, /* name length 256+5 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memcpy(c, b, len);
        c[bad[i].at] = bad[i].value;
        expect_reject(c, len, 1024, bad[i].why);
    }
    free(c);
    free(b);
    /* A cancel is only a header and a target. */
    wf_wire_frame k = {.kind = WF_WIRE_CANCEL, .corr = 5, .to = 9};
    b = build(&k, NULL, "x", 1, &len);
    expect_reject(b, len, 1024, "a cancel with a type or a payload");
    free(b);
    k.payload_len = 0;
    b = build(&k, NULL, NULL, 0, &len);
    wf_wire_frame g;
    const char *why = NULL;
    cr_assert_eq(wf_wire_decode(b, len, 1024, &g, &why), 0, "%s", why);
    cr_assert_eq(g.kind, WF_WIRE_CANCEL);
    cr_assert_eq(g.corr, 5);
    free(b);
    /* A tick is a bare header: anything in it is refused. */
    wf_wire_frame tk = {.kind = WF_WIRE_TICK};
    b = build(&tk, NULL, NULL, 0, &len);
    cr_assert_eq(wf_wire_decode(b, len, 1024, &g, &why), 0, "%s", why);
    cr_assert_eq(g.kind, WF_WIRE_TICK);
    free(b);
    wf_wire_frame bad_ticks[] = {{.kind = WF_WIRE_TICK, .corr = 1},
                                 {.kind = WF_WIRE_TICK, .type = 2},
                                 {.kind = WF_WIRE_TICK, .to = 3},
                                 {.kind = WF_WIRE_TICK, .span_id = 4},
                                 {.kind = WF_WIRE_TICK, .trace_id = {5}}};
    for (size_t i = 0; i < sizeof bad_ticks / sizeof bad_ticks[0]; i++) {
        b = build(&bad_ticks[i], NULL, NULL, 0, &len);
        expect_reject(b, len, 1024, "a tick with something in it");
        free(b);
    }
    b = build(&tk, NULL, "x", 1, &len);
    expect_reject(b, len, 1024, "a tick with something in it");
    free(b);
    /* A monitor and a demonitor: a reference and a target, nothing else. */
    for (uint8_t kind = WF_WIRE_MONITOR; kind <= WF_WIRE_DEMONITOR; kind++) {
        wf_wire_frame mo = {.kind = kind, .corr = 7, .from = 3};
        b = build(&mo, "cache", NULL, 0, &len);
        cr_assert_eq(wf_wire_decode(b, len, 1024, &g, &why), 0, "%s", why);
        cr_assert_eq(g.kind, kind);
        cr_assert_eq(g.corr, 7);
        cr_assert_eq(g.name_len, 5);
        free(b);
        b = build(&mo, "cache", "x", 1, &len);
        expect_reject(b, len, 1024, "a monitor with a type, a payload or no reference");
        free(b);
        mo.corr = 0;
        b = build(&mo, "cache", NULL, 0, &len);
        expect_reject(b, len, 1024, "a monitor with a type, a payload or no reference");
        free(b);
        mo.corr = 7;
        b = build(&mo, NULL, NULL, 0, &len);
        expect_reject(b, len, 1024, "a monitor with no target");
        free(b);
    }
    /* A down: a reference and a reason (or none), and no target. */
    wf_wire_frame dn = {.kind = WF_WIRE_DOWN, .corr = 7};
    b = build(&dn, NULL, "reason", 6, &len);
    cr_assert_eq(wf_wire_decode(b, len, 1024, &g, &why), 0, "%s", why);
    cr_assert_eq(g.kind, WF_WIRE_DOWN);
    cr_assert_eq(g.payload_len, 6);
    free(b);
    wf_wire_frame bad_downs[] = {{.kind = WF_WIRE_DOWN},
                                 {.kind = WF_WIRE_DOWN, .corr = 1, .from = 3},
                                 {.kind = WF_WIRE_DOWN, .corr = 1, .to = 3},
                                 {.kind = WF_WIRE_DOWN, .corr = 1, .type = 2}};
    for (size_t i = 0; i < sizeof bad_downs / sizeof bad_downs[0]; i++) {
        b = build(&bad_downs[i], NULL, NULL, 0, &len);
        expect_reject(b, len, 1024, "a down with a type, a sender, a target or no reference");
        free(b);
    }
    b = build(&dn, "cache", NULL, 0, &len);
    expect_reject(b, len, 1024, "a down with a type, a sender, a target or no reference");
    free(b);
}

static wf_failure *sample_failure(void)
{
    wf_failure *root = wf_failure_new(WF_EUPSTREAM, "connection refused by 127.0.0.1:8000");
    wf_failure_add_frame(
        root,
        &(wf_frame){
            .file = "fetcher.c", .line = 88, .func = "fetch", .actor = "fetcher", .node = "n2"});
    wf_failure *f = wf_failure_new(WF_EUSER + 5, "render failed: <b>oops</b>");
    wf_failure_add_frame(f,
                         &(wf_frame){.func = "handler render", .actor = "renderer", .node = "n1"});
    wf_failure_set_cause(f, root);
    return f;
}

Test(wire, a_failure_round_trips_with_every_frame_and_cause)
{
    wf_failure *f = sample_failure();
    size_t n = wf_wire_failure_size(f);
    unsigned char *b = malloc(n);
    wf_wire_put_failure(f, b);
    const char *why = NULL;
    wf_failure *g = wf_wire_get_failure(b, n, &why);
    cr_assert_not_null(g, "%s", why);
    char *a = wf_failure_format(f, WF_FORMAT_TEXT), *c = wf_failure_format(g, WF_FORMAT_TEXT);
    cr_assert_str_eq(c, a, "the trace crosses the wire unchanged");
    wf_free(a);
    wf_free(c);
    cr_assert_eq(wf_failure_frame(g, 1)->file, NULL, "an absent field stays absent");
    wf_failure_release(f);
    wf_failure_release(g);
    free(b);
}

Test(wire, every_truncation_of_a_failure_is_rejected)
{
    wf_failure *f = sample_failure();
    size_t n = wf_wire_failure_size(f);
    unsigned char *b = malloc(n + 1);
    wf_wire_put_failure(f, b);
    for (size_t len = 0; len < n; len++) {
        const char *why = NULL;
        /* A fresh copy of exactly len bytes, so reading past it is caught by
         * valgrind and ASan. */
        unsigned char *cut = malloc(len ? len : 1);
        memcpy(cut, b, len);
        cr_assert_null(wf_wire_get_failure(cut, len, &why), "accepted %zu of %zu bytes", len, n);
        cr_assert_not_null(why);
        free(cut);
    }
    b[n] = 0;
    const char *why;
    cr_assert_null(wf_wire_get_failure(b, n + 1, &why));
    cr_assert_str_eq(why, "bytes after the failure");
    wf_failure_release(f);
    free(b);
}

Test(wire, a_failure_deeper_than_the_limit_is_cut_when_encoding_and_refused_when_decoding)
{
    wf_failure *f = wf_failure_new(WF_EUSER, "root");
    for (int i = 0; i < 40; i++) {
        wf_failure *g = wf_failure_new(WF_EUSER, "wrap %d", i);
        wf_failure_set_cause(g, f);
        f = g;
    }
    size_t n = wf_wire_failure_size(f);
    unsigned char *b = malloc(n);
    wf_wire_put_failure(f, b);
    cr_assert_eq(b[0], WF_WIRE_FAILURE_DEPTH);
    const char *why;
    wf_failure *g = wf_wire_get_failure(b, n, &why);
    cr_assert_not_null(g, "%s", why);
    wf_failure_release(g);
    b[0] = WF_WIRE_FAILURE_DEPTH + 1;
    cr_assert_null(wf_wire_get_failure(b, n, &why));
    cr_assert_str_eq(why, "failure depth out of range");
    wf_failure_release(f);
    free(b);
}

Test(wire, random_bytes_never_crash_the_decoders)
{
    /* A bounded, seeded stand-in for the fuzzer in every test run. */
    srand(12345);
    for (int i = 0; i < 20000; i++) {
        size_t len = (size_t)(rand() % 200);
        unsigned char *b = malloc(len ? len : 1);
        for (size_t k = 0; k < len; k++)
            b[k] = (unsigned char)rand();
        if (len >= 4 && i % 2) {
            b[0] = 'W';
            b[1] = 'F';
            b[2] = 1;
            b[3] = (unsigned char)(1 + i % 6);
        }
        wf_wire_frame f;
        const char *why;
        if (wf_wire_decode(b, len, 1 << 20, &f, &why) == 0 && f.kind == WF_WIRE_FAIL)
            wf_failure_release(wf_wire_get_failure(f.payload, f.payload_len, &why));
        wf_failure_release(wf_wire_get_failure(b, len, &why));
        free(b);
    }
}

/* The fuzz target starts from transport/fuzz/seeds: a seed the decoder
 * refuses at its first check (as every seed did once the header grew)
 * teaches the fuzzer nothing. Each must decode, and together they must
 * cover every kind of frame. */
Test(wire, every_committed_fuzz_seed_decodes_and_every_kind_is_seeded)
{
    DIR *d = opendir(WIRE_SEEDS);
    cr_assert_not_null(d, "%s", WIRE_SEEDS);
    int kinds[WF_WIRE_DOWN + 1] = {0};
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", WIRE_SEEDS, e->d_name);
        FILE *f = fopen(path, "rb");
        cr_assert_not_null(f, "%s", path);
        static unsigned char b[1 << 16];
        size_t len = fread(b, 1, sizeof b, f);
        fclose(f);
        wf_wire_frame g;
        const char *why = NULL;
        cr_assert_eq(wf_wire_decode(b, len, 1 << 20, &g, &why), 0, "seed %s: %s", e->d_name, why);
        kinds[g.kind]++;
        n++;
    }
    closedir(d);
    cr_assert_gt(n, 0);
    for (int k = WF_WIRE_HELLO; k <= WF_WIRE_DOWN; k++)
        cr_expect_gt(kinds[k], 0, "no seed of kind %d", k);
}
