/* The standard actors' messages in their one encoding: exact bytes (what
 * a node of any architecture sends), round trips, and refusal of every
 * truncation and of each rule broken. The fuzz target fuzz_msgs goes on
 * from the committed seeds this suite also reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <weft/cache.h>
#include <weft/renderer.h>
#include <weft/transformer.h>

static void expect_bytes(wf_msg *m, const char *want, size_t n)
{
    cr_assert_not_null(m);
    cr_assert_eq(wf_msg_len(m), n, "%zu bytes, want %zu", wf_msg_len(m), n);
    const unsigned char *b = wf_msg_body(m);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(b[i], (unsigned char)want[i], "byte %zu: %02x, want %02x", i, b[i],
                     (unsigned char)want[i]);
}

Test(messages, each_message_has_its_exact_bytes_whatever_the_host)
{
    wf_msg *m = wf_cache_reply_new(&(wf_cache_reply){WF_CACHE_STALE, 0x01020304}, "ab", 2);
    expect_bytes(m, "\0\0\0\4\1\2\3\4ab", 10);
    wf_msg_free(m);

    wf_render_poem rp = {.session = "s1", .cache = "HIT", .age_s = 258, .fault = 0};
    m = wf_render_poem_msg_new(&rp, "P", 1);
    expect_bytes(m, "\2s1\3HIT\0\0\1\2\0\0\0\0P", 16);
    wf_msg_free(m);

    m = wf_render_page_msg_new(&(wf_render_page){.session = "ab", .views = 7}, "<p>", 3);
    expect_bytes(m, "\2ab\0\0\0\7<p>", 10);
    wf_msg_free(m);

    wf_render_error re = {.status = 502, .id = "x", .message = "down", .debug = 1};
    m = wf_render_error_msg_new(&re, "T", 1);
    expect_bytes(m, "\1\366\1x\0\4down\1T", 12);
    wf_msg_free(m);

    m = wf_transform_msg_new("up", "p", 1, 0x10203);
    expect_bytes(m, "\2up\0\1\2\3p", 8);
    wf_msg_free(m);

    wf_cache_stats cs = {.hits = 1, .fetches_cancelled = 0x0102};
    m = wf_cache_stats_msg_new(&cs);
    cr_assert_eq(wf_msg_len(m), 2 + 15 * 8);
    const unsigned char *b = wf_msg_body(m);
    cr_assert(b[0] == 0 && b[1] == 15 && b[9] == 1 && b[2 + 14 * 8 + 6] == 1 &&
              b[2 + 14 * 8 + 7] == 2);
    wf_msg_free(m);
}

Test(messages, what_is_encoded_is_decoded)
{
    wf_render_error re = {.status = 504, .id = "0123456789abcdef", .debug = 1};
    memset(re.message, 'm', 255); /* the longest message, whole */
    wf_msg *m = wf_render_error_msg_new(&re, "trace", 5);
    wf_render_error out;
    const void *t;
    size_t len;
    cr_assert_eq(wf_render_error_parse(m, &out, &t, &len), 0);
    cr_assert_eq(out.status, 504);
    cr_assert_str_eq(out.id, "0123456789abcdef");
    cr_assert_eq(strlen(out.message), 255);
    cr_assert_eq(out.debug, 1);
    cr_assert(len == 5 && memcmp(t, "trace", 5) == 0);
    wf_msg_free(m);

    wf_transform_head th;
    m = wf_transform_msg_new("abcdefghijklmnopqrstuvwxyz012345", "x", 1, 9); /* 32 long */
    cr_assert_eq(wf_transform_parse(m, &th, &t, &len), 0);
    cr_assert(memcmp(th.name, "abcdefghijklmnopqrstuvwxyz012345", 32) == 0);
    cr_assert_eq(th.wait_ms, 9);
    wf_msg_free(m);

    wf_transformer_stats xs = {.requests = 1, .expired = 11}, xo;
    m = wf_transformer_stats_msg_new(&xs);
    cr_assert_eq(wf_transformer_stats_parse(m, &xo), 0);
    cr_assert(memcmp(&xs, &xo, sizeof xs) == 0);
    wf_msg_free(m);
}

Test(messages, counters_a_peer_lacks_read_as_0_and_extra_ones_are_skipped)
{
    unsigned char body[2 + 20 * 8] = {0, 3};
    for (int i = 0; i < 20; i++)
        body[2 + i * 8 + 7] = (unsigned char)(i + 1);
    wf_msg *m = wf_msg_new(WF_CACHE_STATS, body, 2 + 3 * 8);
    wf_cache_stats s;
    memset(&s, 0xff, sizeof s);
    cr_assert_eq(wf_cache_stats_parse(m, &s), 0);
    cr_assert(s.hits == 1 && s.misses == 2 && s.coalesced == 3 && s.expired == 0 &&
              s.fetches_cancelled == 0);
    wf_msg_free(m);
    body[1] = 20;
    m = wf_msg_new(WF_CACHE_STATS, body, sizeof body);
    cr_assert_eq(wf_cache_stats_parse(m, &s), 0);
    cr_assert_eq(s.fetches_cancelled, 15);
    wf_msg_free(m);
    /* The count must match the body. */
    m = wf_msg_new(WF_CACHE_STATS, body, sizeof body - 1);
    cr_assert_eq(wf_cache_stats_parse(m, &s), WF_EINVAL);
    wf_msg_free(m);
    body[1] = 0;
    m = wf_msg_new(WF_CACHE_STATS, body, 2);
    cr_assert_eq(wf_cache_stats_parse(m, &s), WF_EINVAL);
    wf_msg_free(m);
}

/* Every proper prefix of a message with an empty tail is refused. */
static void every_truncation_is_refused(wf_msg *m, int (*parse)(wf_msg *))
{
    cr_assert_not_null(m);
    cr_assert_eq(parse(m), 0);
    for (size_t n = 0; n < wf_msg_len(m); n++) {
        wf_msg *t = wf_msg_new(wf_msg_type(m), wf_msg_body(m), n);
        cr_assert_eq(parse(t), WF_EINVAL, "a prefix of %zu of %zu bytes was read", n,
                     wf_msg_len(m));
        wf_msg_free(t);
    }
    wf_msg_free(m);
}

static int parse_poem(wf_msg *m)
{
    wf_render_poem h;
    const void *t;
    size_t n;
    int rv = wf_render_poem_parse(m, &h, &t, &n);
    return rv == 0 && n != 0 ? WF_EINVAL : rv; /* a prefix must not pass as head + tail */
}

static int parse_page(wf_msg *m)
{
    wf_render_page h;
    const void *t;
    size_t n;
    int rv = wf_render_page_parse(m, &h, &t, &n);
    return rv == 0 && n != 0 ? WF_EINVAL : rv;
}

static int parse_error(wf_msg *m)
{
    wf_render_error h;
    const void *t;
    size_t n;
    int rv = wf_render_error_parse(m, &h, &t, &n);
    return rv == 0 && n != 0 ? WF_EINVAL : rv;
}

static int parse_transform(wf_msg *m)
{
    wf_transform_head h;
    const void *t;
    size_t n;
    int rv = wf_transform_parse(m, &h, &t, &n);
    return rv == 0 && n != 0 ? WF_EINVAL : rv;
}

static int parse_reply(wf_msg *m)
{
    wf_cache_reply h;
    const void *t;
    size_t n;
    int rv = wf_cache_reply_parse(m, &h, &t, &n);
    return rv == 0 && n != 0 ? WF_EINVAL : rv;
}

static int parse_cstats(wf_msg *m)
{
    wf_cache_stats s;
    return wf_cache_stats_parse(m, &s);
}

Test(messages, every_truncation_is_refused)
{
    every_truncation_is_refused(wf_cache_reply_new(&(wf_cache_reply){WF_CACHE_HIT, 1}, NULL, 0),
                                parse_reply);
    every_truncation_is_refused(
        wf_render_poem_msg_new(&(wf_render_poem){.session = "abc", .cache = "MISS"}, NULL, 0),
        parse_poem);
    every_truncation_is_refused(
        wf_render_page_msg_new(&(wf_render_page){.session = "abc", .views = 1}, NULL, 0),
        parse_page);
    every_truncation_is_refused(
        wf_render_error_msg_new(&(wf_render_error){.status = 404, .id = "i", .message = "m"}, NULL,
                                0),
        parse_error);
    every_truncation_is_refused(wf_transform_msg_new("upper", NULL, 0, 1), parse_transform);
    every_truncation_is_refused(wf_cache_stats_msg_new(&(wf_cache_stats){0}), parse_cstats);
}

static int poem_of(const void *b, size_t n)
{
    wf_msg *m = wf_msg_new(WF_RENDER_POEM, b, n);
    wf_render_poem h;
    const void *t;
    size_t len;
    int rv = wf_render_poem_parse(m, &h, &t, &len);
    wf_msg_free(m);
    return rv;
}

Test(messages, each_rule_broken_is_refused)
{
    /* A render request: a session over 32, a NUL in a string, a fault out
     * of range. */
    unsigned char big[64] = {33};
    cr_assert_eq(poem_of(big, sizeof big), WF_EINVAL);
    cr_assert_eq(poem_of("\2a\0\0\0\0\0\0\0\0\0\0", 12), WF_EINVAL);
    cr_assert_eq(poem_of("\0\0\0\0\0\0\0\0\0\3", 10), WF_EINVAL);
    cr_assert_eq(poem_of("\0\0\0\0\0\0\0\0\0\2", 10), 0);

    wf_cache_reply h;
    const void *t;
    size_t len;
    wf_msg *m = wf_msg_new(WF_CACHE_GET, "\0\0\0\5\0\0\0\0", 8); /* status 5 */
    cr_assert_eq(wf_cache_reply_parse(m, &h, &t, &len), WF_EINVAL);
    wf_msg_free(m);
    m = wf_msg_new(WF_CACHE_STATS, "\0\0\0\1\0\0\0\0", 8); /* another type */
    cr_assert_eq(wf_cache_reply_parse(m, &h, &t, &len), WF_EINVAL);
    wf_msg_free(m);

    wf_render_error e;
    m = wf_msg_new(WF_RENDER_ERROR, "\2\130\0\0\0\0", 6); /* status 600 */
    cr_assert_eq(wf_render_error_parse(m, &e, &t, &len), WF_EINVAL);
    wf_msg_free(m);
    m = wf_msg_new(WF_RENDER_ERROR, "\1\366\0\0\0\2", 6); /* debug 2 */
    cr_assert_eq(wf_render_error_parse(m, &e, &t, &len), WF_EINVAL);
    wf_msg_free(m);
    m = wf_msg_new(WF_RENDER_ERROR, "\1\366\0\1\0\0", 6); /* message of 256 */
    cr_assert_eq(wf_render_error_parse(m, &e, &t, &len), WF_EINVAL);
    wf_msg_free(m);

    wf_transform_head th;
    m = wf_msg_new(WF_TRANSFORM, "\3a-b\0\0\0\0", 8); /* not a name */
    cr_assert_eq(wf_transform_parse(m, &th, &t, &len), WF_EINVAL);
    wf_msg_free(m);
    m = wf_msg_new(WF_TRANSFORM, "\0\0\0\0\0", 5); /* no name */
    cr_assert_eq(wf_transform_parse(m, &th, &t, &len), WF_EINVAL);
    wf_msg_free(m);

    /* Out-of-range fields are not encoded either. */
    cr_assert_null(wf_cache_reply_new(&(wf_cache_reply){0, 0}, NULL, 0));
    cr_assert_null(wf_render_poem_msg_new(&(wf_render_poem){.fault = 3}, NULL, 0));
    cr_assert_null(wf_render_error_msg_new(&(wf_render_error){.status = 99}, NULL, 0));
    cr_assert_null(wf_transform_msg_new("a b", NULL, 0, 0));
}

/* The fuzzer's seeds are messages its decoders accept (the first byte
 * picks the decoder): they start it where the code is. */
Test(messages, every_committed_fuzz_seed_is_a_message_its_decoder_accepts)
{
    static const char *seeds[] = {"cache_reply", "cache_stats",      "cache_stats_more",
                                  "render_poem", "render_page",      "render_error",
                                  "transform",   "transformer_stats"};
    static const uint32_t types[] = {WF_CACHE_GET,      WF_CACHE_STATS,  WF_RENDER_POEM,
                                     WF_RENDER_POEM,    WF_RENDER_ERROR, WF_TRANSFORM,
                                     WF_TRANSFORM_STATS};
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", MSGS_SEEDS, seeds[i]);
        FILE *f = fopen(path, "rb");
        cr_assert_not_null(f, "%s", path);
        unsigned char buf[4096];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        cr_assert_gt(n, 1);
        int which = buf[0] % 7;
        wf_msg *m = wf_msg_new(types[which], buf + 1, n - 1);
        const void *t;
        size_t len;
        int rv;
        switch (which) {
        case 0:
            rv = wf_cache_reply_parse(m, &(wf_cache_reply){0}, &t, &len);
            break;
        case 1:
            rv = wf_cache_stats_parse(m, &(wf_cache_stats){0});
            break;
        case 2:
            rv = wf_render_poem_parse(m, &(wf_render_poem){0}, &t, &len);
            break;
        case 3:
            rv = wf_render_page_parse(m, &(wf_render_page){0}, &t, &len);
            break;
        case 4:
            rv = wf_render_error_parse(m, &(wf_render_error){0}, &t, &len);
            break;
        case 5:
            rv = wf_transform_parse(m, &(wf_transform_head){0}, &t, &len);
            break;
        default:
            rv = wf_transformer_stats_parse(m, &(wf_transformer_stats){0});
            break;
        }
        cr_assert_eq(rv, 0, "seed %s is not accepted", seeds[i]);
        wf_msg_free(m);
    }
}
