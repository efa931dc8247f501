/* libFuzzer target: the standard actors' message decoders
 * (actors/std/common/messages.c), as bytes from another node reach them.
 * The first input byte picks the decoder, the rest is the body. Asserted:
 * no crash or read past the body (ASan), and every body a decoder accepts
 * is the one its encoder makes of what was decoded, byte for byte: one
 * encoding per message, so nothing decoded can mean two things.
 *
 * Seeds: msgs/seeds/ (one per decoder, written from the layouts in
 * messages.c), dictionary msgs/msgs.dict. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <weft/cache.h>
#include <weft/renderer.h>
#include <weft/transformer.h>

/* m and the encoder's remake of it hold the same bytes; both are freed. */
static void same(wf_msg *m, wf_msg *again)
{
    if (again == NULL || wf_msg_type(again) != wf_msg_type(m) ||
        wf_msg_len(again) != wf_msg_len(m) ||
        memcmp(wf_msg_body(again), wf_msg_body(m), wf_msg_len(m)) != 0)
        __builtin_trap();
    wf_msg_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const uint32_t types[] = {WF_CACHE_GET,      WF_CACHE_STATS,  WF_RENDER_POEM,
                                     WF_RENDER_POEM,    WF_RENDER_ERROR, WF_TRANSFORM,
                                     WF_TRANSFORM_STATS};
    int which = data[0] % 7;
    wf_msg *m = wf_msg_new(types[which], data + 1, size - 1);
    if (m == NULL)
        return 0;
    const void *tail;
    size_t len;
    switch (which) {
    case 0: {
        wf_cache_reply h;
        if (wf_cache_reply_parse(m, &h, &tail, &len) == 0)
            same(m, wf_cache_reply_new(&h, tail, len));
        break;
    }
    case 1: {
        wf_cache_stats st;
        /* Counters the reader does not know are skipped: only a body of
         * exactly its own counters comes back the same. */
        if (wf_cache_stats_parse(m, &st) == 0 && wf_msg_len(m) == 2 + sizeof st &&
            (data[1] << 8 | data[2]) * 8 == sizeof st)
            same(m, wf_cache_stats_msg_new(&st));
        break;
    }
    case 2: {
        wf_render_poem h;
        if (wf_render_poem_parse(m, &h, &tail, &len) == 0)
            same(m, wf_render_poem_msg_new(&h, tail, len));
        break;
    }
    case 3: {
        wf_render_page h;
        if (wf_render_page_parse(m, &h, &tail, &len) == 0)
            same(m, wf_render_page_msg_new(&h, tail, len));
        break;
    }
    case 4: {
        wf_render_error h;
        if (wf_render_error_parse(m, &h, &tail, &len) == 0)
            same(m, wf_render_error_msg_new(&h, tail, len));
        break;
    }
    case 5: {
        wf_transform_head h;
        if (wf_transform_parse(m, &h, &tail, &len) == 0) {
            char name[WF_TRANSFORM_NAME_MAX + 1] = {0};
            memcpy(name, h.name, sizeof h.name);
            same(m, wf_transform_msg_new(name, tail, len, h.wait_ms));
        }
        break;
    }
    default: {
        wf_transformer_stats st;
        if (wf_transformer_stats_parse(m, &st) == 0 && wf_msg_len(m) == 2 + sizeof st &&
            (data[1] << 8 | data[2]) * 8 == sizeof st)
            same(m, wf_transformer_stats_msg_new(&st));
        break;
    }
    }
    wf_msg_free(m);
    return 0;
}
