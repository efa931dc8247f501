/* libFuzzer target: the netstring parser (actors/util/netstring.c) that
 * the transform server, the transformer and the listener's transform port
 * read hostile bytes with.
 *
 * Input: one byte that picks the limit (small, so that "too large" is
 * reached, or 1 MiB), then a stream of netstrings. Checked: the stream
 * read whole gives the same netstrings and the same end as read one byte
 * more at a time (as TCP may split it; every prefix of a netstring is
 * "more" or already what the whole says); every netstring found is in
 * bounds and within the limit; writing it again with wf__netstring_head
 * reads back the same data. Seeds: seeds/, dictionary netstring.dict. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "netstring.h"

static void check(int ok)
{
    if (!ok)
        abort();
}

/* Writes the netstring of data[0..len) into a new buffer and reads it
 * back. */
static void round_trip(const char *data, size_t len, size_t max)
{
    char *b = malloc(WF__NS_HEAD_MAX + len + 1);
    check(b != NULL);
    size_t hl = wf__netstring_head(b, len);
    memcpy(b + hl, data, len);
    b[hl + len] = ',';
    size_t start, n, used;
    check(wf__netstring_parse(b, hl + len + 1, max, &start, &n, &used) == WF__NS_OK);
    check(start == hl && n == len && used == hl + len + 1 && memcmp(b + start, data, len) == 0);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    if (size < 1)
        return 0;
    size_t max = (in[0] & 1) ? (size_t)1 << 20 : (size_t)(in[0] >> 1);
    const char *s = (const char *)in + 1;
    size_t n = size - 1, off = 0;
    for (int k = 0; k < 1000 && off <= n; k++) {
        size_t start = 0, len = 0, used = 0;
        int st = wf__netstring_parse(s + off, n - off, max, &start, &len, &used);
        /* Every prefix: either "more", or already the whole's verdict. */
        for (size_t cut = 0; cut < n - off && cut < 64; cut++) {
            size_t s2, l2, u2;
            int p = wf__netstring_parse(s + off, cut, max, &s2, &l2, &u2);
            check(p == WF__NS_MORE || p == st);
            if (p == WF__NS_OK)
                check(s2 == start && l2 == len && u2 == used);
        }
        if (st != WF__NS_OK)
            break;
        check(len <= max && start + len < used && used <= n - off && s[off + used - 1] == ',');
        round_trip(s + off + start, len, max);
        off += used;
    }
    check(strlen(wf__netstring_what(WF__NS_MALFORMED)) > 0);
    return 0;
}
