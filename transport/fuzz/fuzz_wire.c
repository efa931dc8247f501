/* libFuzzer target: whatever bytes arrive, the frame decoder (and, for FAIL
 * frames, the failure decoder) must reject or accept them without reading
 * out of bounds, crashing or leaking. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <weft/alloc.h>
#include <weft/wire.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wf_wire_frame f;
    const char *why;
    bool ok = wf_wire_decode(data, size, 1 << 20, &f, &why) == 0;
    /* A stream reader waits for as many bytes as the decoder accepted. */
    size_t plen;
    if (ok && (wf_wire_frame_len(data, &plen) != size || plen != f.payload_len))
        __builtin_trap();
    if (ok && f.kind == WF_WIRE_FAIL) {
        wf_failure *fl = wf_wire_get_failure(f.payload, f.payload_len, &why);
        if (fl != NULL) {
            /* A decoded failure must survive a round trip and formatting. */
            char *text = wf_failure_format(fl, WF_FORMAT_HTML);
            wf_free(text);
            wf_failure_release(fl);
        }
    }
    /* The failure decoder also sees the raw bytes directly. */
    wf_failure *fl = wf_wire_get_failure(data, size, &why);
    wf_failure_release(fl);
    return 0;
}
