/* libFuzzer target: the binary trace format (tracefile.h) as weft-view and
 * the tests read it: chunks from a file, a flight recorder's segments or
 * a live stream, decoded into JSON lines. Whatever the bytes: no crash, no
 * read out of bounds, no leak; every line made is one JSON object with no
 * raw control character in it.
 *
 * Input: the bytes of a trace file. Seeds: tracefile/seeds/ (chunks
 * nodes wrote: bench_trace's and the demo proxy's, whole, two together,
 * and one cut short); dictionary tracefile/tracefile.dict. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tracefile.h"

static void check_line(void *arg, const char *text, size_t len)
{
    (void)arg;
    if (len < 2 || text[0] != '{' || text[len - 1] != '}')
        abort();
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)text[i] < 0x20)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wf_tf_decoder d = {.line = check_line};
    size_t off = 0;
    while (off < size) {
        wf_tf_chunk c;
        size_t need;
        char err[160];
        long n = wf__tf_chunk_parse(data + off, size - off, &c, &need, err, sizeof err);
        if (n <= 0)
            break;
        if (wf__tf_decode_chunk(&d, &c) < 0)
            abort(); /* out of memory: not with these sizes */
        off += (size_t)n;
    }
    wf__tf_decoder_free(&d);
    return 0;
}
