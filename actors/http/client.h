/* Client-side HTTP/1.1 response parsing on Debian's libhttp-parser: the
 * status line, the end of the head, and the body's framing
 * (Content-Length, chunked, or up to the end of the connection; none after
 * 1xx, 204 and 304; a response to HEAD is not told apart). The body
 * goes to the caller piece by piece; headers are the caller's to keep if it
 * wants them. Internal to weft (weft_http). A reader belongs to one
 * connection and is used on that connection's thread only. */
#ifndef WF_HTTP_CLIENT_H
#define WF_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <http_parser.h>

/* Takes the next n bytes of the body (data is only valid during the call).
 * Returns 0, or nonzero to refuse them, which stops the reader. */
typedef int (*wf__http_on_body)(void *arg, const char *data, size_t n);

/* The reader: fields are private (here so that a fetch can hold one
 * without an allocation), read them through the functions below. */
typedef struct wf__http_client {
    http_parser parser;
    wf__http_on_body on_body;
    void *arg;
    bool head_done, complete;
} wf__http_client;

/* Readies c for one response. on_body may be NULL (the body is dropped). */
void wf__http_client_init(wf__http_client *c, wf__http_on_body on_body, void *arg);

/* Parses data[0..n) of the response; n == 0 says the connection ended
 * (which ends a body framed by the connection). Returns 0 if all of it
 * was good, -1 if the response is malformed or on_body refused a piece
 * (wf__http_client_error says which). */
int wf__http_client_feed(wf__http_client *c, const char *data, size_t n);

/* Why the last feed returned -1: libhttp-parser's description; static. */
const char *wf__http_client_error(const wf__http_client *c);

/* Whether the whole response, body included, has arrived. */
static inline bool wf__http_client_complete(const wf__http_client *c)
{
    return c->complete;
}

/* Whether the status line and headers have all arrived. */
static inline bool wf__http_client_has_head(const wf__http_client *c)
{
    return c->head_done;
}

/* The status code, once the status line has arrived. */
static inline int wf__http_client_status(const wf__http_client *c)
{
    return (int)c->parser.status_code;
}

/* Once the head is in: how many body bytes are still to come when the
 * body has a known length, else 0 (chunked, up to the end, or done). */
size_t wf__http_client_body_left(const wf__http_client *c);

#endif
