/* libFuzzer target: whatever bytes arrive, the frame decoder (and, for FAIL
 * frames, the failure decoder) must reject or accept them without reading
 * out of bounds, crashing or leaking; and what it accepts must survive a
 * round trip: decode, encode with the real encoder, decode again, equal.
 * Seeds: transport/fuzz/seeds (written by wire_seeds.c), dictionary
 * wire.dict. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <weft/alloc.h>
#include <weft/wire.h>

#define MAX_PAYLOAD (1u << 20)

static bool frame_equal(const wf_wire_frame *a, const wf_wire_frame *b)
{
    return a->kind == b->kind && a->type == b->type && a->corr == b->corr && a->from == b->from &&
           a->to == b->to && memcmp(a->trace_id, b->trace_id, 16) == 0 &&
           a->span_id == b->span_id && a->parent_span_id == b->parent_span_id &&
           a->trace_flags == b->trace_flags && a->name_len == b->name_len &&
           memcmp(a->name, b->name, a->name_len) == 0 && a->payload_len == b->payload_len &&
           (a->payload_len == 0 || memcmp(a->payload, b->payload, a->payload_len) == 0);
}

/* A frame accepted once is encoded again and must decode to the same. */
static void frame_round_trip(const uint8_t *data, size_t size, const wf_wire_frame *f)
{
    unsigned char *buf = malloc(size);
    if (buf == NULL)
        return;
    wf_wire_put_header(f, buf);
    if (f->name_len > 0)
        memcpy(buf + WF_WIRE_HEADER, f->name, f->name_len);
    if (f->payload_len > 0)
        memcpy(buf + WF_WIRE_HEADER + f->name_len, f->payload, f->payload_len);
    wf_wire_frame g;
    const char *why;
    if (wf_wire_decode(buf, size, MAX_PAYLOAD, &g, &why) != 0 || !frame_equal(f, &g))
        __builtin_trap();
    /* Every field is kept, so the bytes are the same bytes. */
    if (memcmp(buf, data, size) != 0)
        __builtin_trap();
    free(buf);
}

/* A failure decoded once is encoded again: the same bytes, and it decodes. */
static void failure_round_trip(const void *payload, size_t len, const wf_failure *fl)
{
    size_t n = wf_wire_failure_size(fl);
    if (n != len)
        __builtin_trap();
    unsigned char *buf = malloc(n);
    if (buf == NULL)
        return;
    wf_wire_put_failure(fl, buf);
    if (memcmp(buf, payload, n) != 0)
        __builtin_trap();
    const char *why;
    wf_failure *again = wf_wire_get_failure(buf, n, &why);
    if (again == NULL)
        __builtin_trap();
    wf_failure_release(again);
    free(buf);
}

static void try_failure(const void *payload, size_t len)
{
    const char *why;
    wf_failure *fl = wf_wire_get_failure(payload, len, &why);
    if (fl == NULL)
        return;
    failure_round_trip(payload, len, fl);
    char *text = wf_failure_format(fl, WF_FORMAT_HTML);
    wf_free(text);
    text = wf_failure_format(fl, WF_FORMAT_TEXT);
    wf_free(text);
    wf_failure_release(fl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wf_wire_frame f;
    const char *why;
    bool ok = wf_wire_decode(data, size, MAX_PAYLOAD, &f, &why) == 0;
    if (!ok && why == NULL)
        __builtin_trap(); /* a refusal always says why */
    /* A stream reader waits for as many bytes as the decoder accepted. */
    size_t plen;
    if (ok && (wf_wire_frame_len(data, &plen) != size || plen != f.payload_len))
        __builtin_trap();
    if (ok) {
        frame_round_trip(data, size, &f);
        if (f.kind == WF_WIRE_FAIL)
            try_failure(f.payload, f.payload_len);
    }
    /* The failure decoder also sees the raw bytes directly. */
    try_failure(data, size);
    return 0;
}
