/* Writing HTTP/1.1 responses: the status line (its reason phrase from
 * status.h) and the headers that frame the body. The caller adds its own
 * headers, the blank line and the body after it. Internal to weft
 * (weft_http); any thread. */
#ifndef WF_HTTP_RESPONSE_H
#define WF_HTTP_RESPONSE_H

#include <stddef.h>

/* Enough room for any head wf__http_response_head writes with a type of
 * up to 100 bytes. */
#define WF__HTTP_HEAD_MAX 200

/* Writes "HTTP/1.1 STATUS REASON", "Content-Type: type" and
 * "Content-Length: body_len", each ending in CRLF, into buf (size bytes,
 * the caller's), NUL-terminated. Returns the length written, or -1 if it
 * did not fit (buf then holds nothing usable). */
int wf__http_response_head(char *buf, size_t size, int status, const char *type, size_t body_len);

#endif
