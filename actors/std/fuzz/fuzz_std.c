/* libFuzzer target: the standard actors' message decoding, as another node
 * could exercise it. A real node (on its own thread) runs the cache, the
 * fetcher, the renderer and the transformer; each input is a sequence of messages of their
 * types (or any type) with fuzzed bodies, each asked of its actor as a
 * remote asker would. Asserted: no crash, no leak (LeakSanitizer), and
 * every request answered exactly once, in time, with a reply of the right
 * shape or a failure.
 *
 * Input: records of [actor (1 byte)] [type (1 byte)] [length (1 byte)]
 * [body]; the type byte picks one of the actor's types, or (high bit) a
 * type the actor does not handle.
 *
 * The cache's source is a stub on the node (keys starting "bad" fail, the
 * rest answer with the key), the fetcher's and the transformer's upstream
 * a closed loopback port (every fetch fails fast).
 * WEFT_FUZZ_NEGATIVE_TTL_MS turns on the cache's negative caching (off by
 * default). Seeds: seeds/, dictionary std.dict. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft/cache.h>
#include <weft/fetcher.h>
#include <weft/renderer.h>
#include <weft/transformer.h>
#include <weft/weft.h>

#define SRC_FETCH  0x53520001u
#define TIMEOUT_MS 5000

static wf_result src_fetch(wf_ctx *ctx, wf_msg *m)
{
    size_t n = wf_msg_len(m);
    const char *k = wf_msg_body(m);
    if (n >= 3 && memcmp(k, "bad", 3) == 0)
        return WF_FAIL(WF_EUSER + 1, "no such poem: %.*s", (int)(n < 32 ? n : 32), k);
    return wf_result_msg(wf_msg_new(SRC_FETCH, k, n));
}

static const wf_handler src_h[] = {{SRC_FETCH, "fetch", src_fetch, 0}};
static const wf_behaviour src = {.name = "source", .handlers = src_h, .nhandlers = 1};

static wf_node *node;
#define NACTORS 4
static wf_pid pids[NACTORS]; /* cache, fetcher, renderer, transformer */
static wf_cache_config cache_cfg = {.source = "source",
                                    .fetch_type = SRC_FETCH,
                                    .fetch_timeout_ms = 1000,
                                    .ttl_ms = 50,
                                    .stale_while_revalidate_ms = 20,
                                    .stale_if_error_ms = 20,
                                    .max_bytes = 1 << 16};
static wf_fetcher_config fetcher_cfg = {.upstream = "poetry://127.0.0.1:1",
                                        .connect_timeout_ms = 200,
                                        .idle_timeout_ms = 200,
                                        .total_timeout_ms = 500,
                                        .max_body = 4096,
                                        .max_connections = 4};
static wf_renderer_config renderer_cfg = {.max_sessions = 64};
static wf_transformer_config transformer_cfg = {.upstream = "127.0.0.1:1",
                                                .connect_timeout_ms = 200,
                                                .idle_timeout_ms = 200,
                                                .total_timeout_ms = 500,
                                                .max_body = 4096,
                                                .max_connections = 4,
                                                .max_bytes = 1 << 16};

static void setup(void)
{
    const char *neg = getenv("WEFT_FUZZ_NEGATIVE_TTL_MS");
    if (neg != NULL)
        cache_cfg.negative_ttl_ms = strtoull(neg, NULL, 10);
    renderer_cfg.template_dir = wf_renderer_default_templates();
    node = wf_node_new(&(wf_node_config){.name = "fuzz"});
    if (node == NULL || wf_spawn(node, "source", &src, NULL, NULL) != 0 ||
        wf_cache_spawn(node, "cache", &cache_cfg, &pids[0]) != 0 ||
        wf_fetcher_spawn(node, "fetcher", &fetcher_cfg, &pids[1]) != 0 ||
        wf_renderer_spawn(node, "renderer", &renderer_cfg, &pids[2]) != 0 ||
        wf_transformer_spawn(node, "transformer", &transformer_cfg, &pids[3]) != 0 ||
        wf_node_start(node) != 0) {
        fprintf(stderr, "fuzz_std: cannot start the node\n");
        abort();
    }
}

/* The types each actor handles. */
static const uint32_t types[NACTORS][2] = {{WF_CACHE_GET, WF_CACHE_STATS},
                                           {WF_FETCH_GET, WF_FETCH_GET},
                                           {WF_RENDER_POEM, WF_RENDER_ERROR},
                                           {WF_TRANSFORM, WF_TRANSFORM_STATS}};

/* A reply must have the shape its request promises. */
static void check_reply(int actor, uint32_t type, wf_msg *m)
{
    if (actor == 0 && type == WF_CACHE_GET) {
        wf_cache_reply head;
        const void *v;
        size_t len;
        if (wf_cache_reply_parse(m, &head, &v, &len) != 0 || head.status < WF_CACHE_HIT ||
            head.status > WF_CACHE_STALE)
            __builtin_trap();
    } else if (actor == 0 && type == WF_CACHE_STATS) {
        wf_cache_stats st;
        if (wf_cache_stats_parse(m, &st) != 0)
            __builtin_trap();
    } else if (actor == 2 && type == WF_RENDER_POEM) {
        wf_render_page page;
        const void *html;
        size_t len;
        if (wf_render_page_parse(m, &page, &html, &len) != 0 || page.session[0] == '\0')
            __builtin_trap();
    } else if (actor == 3 && type == WF_TRANSFORM_STATS) {
        wf_transformer_stats st;
        if (wf_transformer_stats_parse(m, &st) != 0)
            __builtin_trap();
    } else if (actor == 3 && type == WF_TRANSFORM) {
        __builtin_trap(); /* its upstream is a closed port: no transform can succeed */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (node == NULL)
        setup();
    for (size_t off = 0; off + 3 <= size;) {
        int actor = data[off] % NACTORS;
        uint8_t tsel = data[off + 1];
        size_t len = data[off + 2];
        off += 3;
        if (len > size - off)
            len = size - off;
        uint32_t type = tsel & 0x80 ? 0x43410000u + (tsel & 0x7f) : types[actor][tsel & 1];
        wf_msg *m = wf_msg_new(type, data + off, len);
        off += len;
        if (m == NULL)
            continue;
        /* One outcome, in time: wf_node_call returns exactly once; a
         * timeout means the actor never answered. */
        wf_result r = wf_node_call(node, pids[actor], m, TIMEOUT_MS);
        if (wf_result_is_failure(r)) {
            /* A failure's trace is where it was raised and passed: a few
             * frames, however many asked before (a failure kept and
             * answered again must not grow with each answer). */
            size_t frames = 0;
            for (wf_failure *f = r.u.failure; f != NULL; f = wf_failure_cause(f))
                frames += wf_failure_frame_count(f);
            if (frames > 64) {
                fprintf(stderr, "fuzz_std: a failure from actor %d to type %#x has %zu frames\n",
                        actor, type, frames);
                __builtin_trap();
            }
            if (wf_failure_code(r.u.failure) == WF_ETIMEDOUT) {
                fprintf(stderr, "fuzz_std: no answer from actor %d to type %#x in %d ms\n", actor,
                        type, TIMEOUT_MS);
                __builtin_trap();
            }
        } else if (wf_result_is_msg(r)) {
            check_reply(actor, type, r.u.ptr);
        } else {
            __builtin_trap(); /* an ask answers with a message or a failure */
        }
        wf_result_free(r);
    }
    return 0;
}
