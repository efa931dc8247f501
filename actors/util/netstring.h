/* Netstrings (D. J. Bernstein's "LEN:DATA,"), the framing of the Twisted
 * tutorial's transform protocol: a parser that reads a buffer the caller
 * fills as bytes arrive, and the head of one to write. No allocation, libc
 * only; shared by libweft_std, the transform server and the fuzz target.
 * Private to weft.
 *
 * The length is decimal digits, no sign, no space, no leading zero ("0"
 * alone is the empty netstring), as Twisted's NetstringReceiver reads it;
 * a length over the caller's maximum is refused as soon as its digits say
 * so, before any of the data arrives. */
#ifndef WF_UTIL_NETSTRING_H
#define WF_UTIL_NETSTRING_H

#include <stddef.h>

enum wf__ns_status {
    WF__NS_MORE,      /* a prefix of a netstring: read more */
    WF__NS_OK,        /* one whole netstring */
    WF__NS_MALFORMED, /* not a netstring: bad length, or no ',' after the data */
    WF__NS_TOO_LARGE, /* its length is over max */
};

/* wf__netstring_parse looks at buf[0..n), which starts a netstring, and
 * reports what it holds. On WF__NS_OK, the data is buf[*start .. *start +
 * *len) and the netstring took *used bytes (what follows is the next one's);
 * the outputs are left alone otherwise. Any thread; buf is only read. */
int wf__netstring_parse(const char *buf, size_t n, size_t max, size_t *start, size_t *len,
                        size_t *used);

/* The longest head wf__netstring_head writes ("18446744073709551615:"). */
#define WF__NS_HEAD_MAX 24

/* wf__netstring_head writes "LEN:" for len bytes of data into out (at least
 * WF__NS_HEAD_MAX bytes, no NUL) and returns its length. The data and a
 * ',' follow it. Any thread. */
size_t wf__netstring_head(char *out, size_t len);

/* wf__netstring_what names a status, for error messages. */
const char *wf__netstring_what(int status);

#endif
