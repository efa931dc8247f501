/* See netstring.h. */
#include "netstring.h"

#include <stdint.h>

int wf__netstring_parse(const char *buf, size_t n, size_t max, size_t *start, size_t *len,
                        size_t *used)
{
    size_t v = 0, i = 0;
    for (; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) {
        if (i == 1 && buf[0] == '0')
            return WF__NS_MALFORMED; /* a leading zero */
        v = v * 10 + (size_t)(buf[i] - '0');
        /* Checked at each digit, so v never overflows. */
        if (v > max || v > SIZE_MAX / 16)
            return WF__NS_TOO_LARGE;
    }
    if (i == n)
        return WF__NS_MORE;
    if (i == 0 || buf[i] != ':')
        return WF__NS_MALFORMED;
    size_t data = i + 1;
    if (n - data <= v)
        return WF__NS_MORE; /* the data, or its ',', still to come */
    if (buf[data + v] != ',')
        return WF__NS_MALFORMED;
    *start = data;
    *len = v;
    *used = data + v + 1;
    return WF__NS_OK;
}

size_t wf__netstring_head(char *out, size_t len)
{
    char digits[WF__NS_HEAD_MAX];
    size_t k = 0;
    do {
        digits[k++] = (char)('0' + len % 10);
        len /= 10;
    } while (len > 0);
    for (size_t i = 0; i < k; i++)
        out[i] = digits[k - 1 - i];
    out[k] = ':';
    return k + 1;
}

const char *wf__netstring_what(int status)
{
    switch (status) {
    case WF__NS_MORE:
        return "cut short";
    case WF__NS_OK:
        return "whole";
    case WF__NS_MALFORMED:
        return "malformed netstring";
    default:
        return "netstring too large";
    }
}
