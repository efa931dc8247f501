/* Server-side HTTP/1.1 request framing on Debian's libhttp-parser: the
 * method, the target, a few chosen headers, the body's length (bodies are
 * counted, not kept), keep-alive, and the limits on the head and the body.
 * Pipelined requests in one read are handed over one by one, in order.
 * Internal to weft (weft_http). A reader belongs to one connection and is
 * used on that connection's thread only. */
#ifndef WF_HTTP_REQUEST_H
#define WF_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include <http_parser.h>

/* The longest target kept; a longer one is refused with 414. */
#define WF__HTTP_TARGET_MAX 2048

/* A header the caller wants: its value goes into buf (size bytes of room,
 * the caller's), NUL-terminated and cut to fit; cut says something did not
 * fit. A header sent twice has its values appended to each other. Each
 * request starts with len 0, cut false and buf "", so a request without
 * the header reads an empty string, never the previous request's value. */
typedef struct wf__http_field {
    const char *name; /* compared without case */
    char *buf;
    size_t size;
    size_t len;
    bool cut;
} wf__http_field;

/* One complete request, valid during the on_request call only. */
typedef struct wf__http_request {
    int method;              /* http_parser's enum http_method */
    const char *method_name; /* "GET" */
    char *target;            /* NUL-terminated; the callee may write in it */
    size_t target_len;
    size_t body_len;
    bool keep_alive; /* HTTP/1.1 without "Connection: close", or 1.0 with keep-alive */
} wf__http_request;

typedef struct wf__http_reader wf__http_reader;

/* Called for each complete request, in order, from inside
 * wf__http_reader_feed. Returns 0, or nonzero to stop reading this
 * connection (the feed then reports 400). */
typedef int (*wf__http_on_request)(void *arg, wf__http_request *req);

/* The reader: fields are private (here so that a connection can hold one
 * without an allocation), read them through the functions below. */
struct wf__http_reader {
    http_parser parser;
    size_t max_header, max_body;
    wf__http_field *fields;
    size_t nfields;
    wf__http_on_request on_request;
    void *arg;
    bool in_request, headers_done, too_big_header, too_big_body;
    bool after_value; /* a value came: the next name callback starts a new header */
    char target[WF__HTTP_TARGET_MAX];
    size_t target_len, header_bytes, body_bytes;
    char name[32]; /* the header being read, cut to fit */
    size_t name_len;
    /* What the parser tolerates and the reader does not (see request.c):
     * the head's bytes go through a small lexer, the Transfer-Encoding
     * value is kept to be judged whole. */
    unsigned char lex; /* where the lexer is in the head */
    bool lex_cr;       /* the byte before was CR */
    bool te_seen, te_cut, stopped;
    unsigned char chunk; /* where the chunk lexer is in a chunked body */
    uint64_t chunk_left; /* bytes of the current chunk's data (or of its size) */
    /* A chunked request is handed over once its bytes passed the chunk
     * lexer, after the parser's run: until then it waits here. */
    bool has_pending;
    wf__http_request pending;
    char te[48]; /* the Transfer-Encoding values, joined by commas */
    size_t te_len;
    int fail_status; /* nonzero: the status a check decided */
    const char *why; /* and why, static */
};

/* Readies r for a new connection. max_header bounds the request line and
 * headers together, max_body the body; fields (nfields of them, may be
 * NULL) stay the caller's and must outlive r. */
void wf__http_reader_init(wf__http_reader *r, size_t max_header, size_t max_body,
                          wf__http_field *fields, size_t nfields, wf__http_on_request on_request,
                          void *arg);

/* Parses data[0..n), calling on_request for every request it completes.
 * Returns 0 if all of it was good, or the status a server answers with:
 * 414 (target too long), 431 (head too large), 413 (body too large), 501
 * (a transfer coding other than chunked) or 400 (anything else; see
 * wf__http_reader_error). After a nonzero return r must not be fed again.
 *
 * Stricter than libhttp-parser (RFC 9112), so that a front proxy and this
 * reader cannot disagree on where a request ends: 400 for whitespace
 * between a field name and its colon, obsolete line folding, a bare LF or
 * CR as a line end in the head, control characters in field values, and
 * Content-Length with Transfer-Encoding, or two Content-Lengths. A request
 * with Transfer-Encoding (which must be exactly "chunked") is handed over
 * with keep_alive false and the reader reads nothing after it: its answer
 * closes the connection. So is a CONNECT or an Upgrade request. */
int wf__http_reader_feed(wf__http_reader *r, const char *data, size_t n);

/* Why the last feed returned nonzero: the reader's reason or
 * libhttp-parser's description; static. */
const char *wf__http_reader_error(const wf__http_reader *r);

/* Whether a request has begun and not yet completed. */
static inline bool wf__http_reader_busy(const wf__http_reader *r)
{
    return r->in_request;
}

/* Whether the request under way has all its headers (its body may follow). */
static inline bool wf__http_reader_has_head(const wf__http_reader *r)
{
    return r->in_request && r->headers_done;
}

#endif
