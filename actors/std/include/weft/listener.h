/* The listener actor: HTTP/1.1 and the raw poetry protocol in front of a
 * cache and a renderer.
 *
 * HTTP (parsed by Debian's http-parser): keep-alive, pipelined requests
 * answered in order, Content-Length and chunked bodies, limits on header
 * size (431), body size (413) and connections (503), timeouts, 400 for
 * malformed requests. GET /poems/NAME asks the cache for
 * NAME, then the renderer for the page, within a deadline; whatever fails,
 * wherever, that request alone gets a complete error page at once: 502 for
 * an upstream failure, 504 when the deadline passed, 500 otherwise. The
 * page says what kind of failure and gives a short id that finds it in
 * the log; only in debug mode does it show the failure's message and trace
 * (upstream addresses, actors, source positions).
 *
 * NAME is percent-decoded once. 400 if it is malformed: a % without two
 * hex digits, a NUL or control character, invalid UTF-8 (overlong forms,
 * surrogates, past U+10FFFF, cut short). 404 if it is well-formed but no
 * poem can have it: empty, longer than 200 bytes, starting with '.' (so
 * "." and ".."), or holding anything but ASCII letters, digits, '_', '-'
 * and '.' (so no '/', '\', space or non-ASCII, encoded or not).
 *
 * Framing is read strictly (RFC 9112), so that a proxy in front cannot see
 * other requests in the same bytes: 400 for whitespace before a header's
 * colon, obsolete line folding, bare LF or CR line ends, control characters
 * in header values, two lengths or a length with Transfer-Encoding; 501
 * for a transfer coding other than chunked; 414 for a target over 2 KiB. A
 * chunked, CONNECT or Upgrade request is the last read on its connection.
 *
 * Responses carry X-Cache, Age and Via; GET /metrics is Prometheus text,
 * GET /healthz says ok.
 *
 * Tracing (weft/trace.h): each request is a span, a child of the client's
 * when it sends a W3C traceparent header, else a new trace; the response's
 * traceparent header names it, so a client can find its request in the
 * trace.
 *
 * No client can hold the listener (each limit below is an option):
 * - A request must arrive in time: its headers within header_timeout_ms
 *   of its first byte, no pause in its body longer than body_timeout_ms,
 *   all of it within request_timeout_ms; else 408 and the connection
 *   closes. A keep-alive connection with nothing to do closes after
 *   idle_timeout_ms.
 * - The connection limit is not a wall: when max_connections are open, a
 *   new client makes room by evicting the stalest connection that is idle
 *   (staleness: since its last activity), in its request (since the
 *   request began, however it dribbles) or not taking its answers (since
 *   its last write progress), if that is over 10 ms; one waiting for its
 *   answer to be made is never evicted (nginx reuses idle connections
 *   alike). Only when none is, the new client gets 503 (the poetry port:
 *   closed at once, counted as failed).
 * - A connection holds at most max_pipeline requests and about max_output
 *   bytes of answers (plus one read, 64 KiB): the parser is fed only what
 *   there is room for, and reading stops until answers are written. A
 *   write that makes no progress for write_timeout_ms closes the
 *   connection (both ports); everything it held is freed.
 * - A client that shuts its write side (half-close: nc -N, HTTP/1.0
 *   clients, the Twisted tutorial's on the poetry port) still gets its
 *   answers, then the connection closes; answers that could not be written
 *   are counted as lost.
 *
 * SIGPIPE: the listener's init sets SIGPIPE to be ignored (process-wide),
 * so that a write to a socket the client closed fails with EPIPE instead
 * of ending the process; unless the program set its own disposition
 * (a handler, or SIG_IGN) before, which is left alone.
 *
 * GET /metrics shows, besides answers by status (200 302 400 404 405 408
 * 409 413 414 431 500 501 502 503 504), cache outcomes, the latency
 * histogram and mailbox depths:
 *   weft_connections (gauge), weft_connections_evicted_total,
 *   weft_http_timeouts_total{phase="header|body|request|write|idle"},
 *   weft_http_reads_paused_total{cause="pipeline|output"} (reading stopped
 *     until answers were written),
 *   weft_output_held_bytes (gauge: answers made and not yet written, both
 *     ports), weft_input_held_bytes (gauge: bytes read, not yet parsed),
 *   weft_answers_lost_total{port="http|poetry"} (answers that could not be
 *     written: the client reset, or a timeout or eviction closed it),
 *   weft_half_closes_total{port="http|poetry"} (clients that shut their
 *     side before their answers were written),
 *   weft_poetry_served_total, weft_poetry_failed_total (poetry clients
 *     that got no poem).
 *
 * The poetry port: a client connects, receives the poem, and the listener
 * closes (the protocol of the Twisted poetry tutorial).
 *
 * Transforms (weft/transformer.h), when a transformer is configured:
 * GET /poems/NAME?transform=XFORM gets the poem from the cache, then asks
 * the transformer for XFORM of it, and renders the result (X-Cache is the
 * poem cache's). XFORM is 1 to 32 ASCII letters, digits or '_', else 400;
 * without a transformer, 404 ("no transform service"); a transform that
 * fails (or that the service does not know: the protocol cannot tell)
 * gives a 502 page naming it, one that does not answer in time a 504.
 * The transform port (transform_addr) speaks the tutorial's transform
 * protocol: the client sends netstrings "XFORM.POEM" and gets each
 * transformed poem back as a netstring, in order; once every request it
 * sent is answered, the connection closes (as the tutorial's server does
 * after its answer). A malformed or oversized
 * netstring (over max_body), a bad name or a failed transform resets the
 * connection. A request must arrive within request_timeout_ms of its first
 * byte; a connection with nothing under way closes after idle_timeout_ms.
 * /metrics counts weft_transform_served_total and
 * weft_transform_failed_total (transform-port clients reset).
 */
#ifndef WEFT_LISTENER_H
#define WEFT_LISTENER_H

#include <weft/api.h>

#include <stddef.h>
#include <stdint.h>

#include <weft/actor.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wf_listener_config {
    const char *http_addr;       /* "127.0.0.1:8080" (port 0: any); NULL: no HTTP */
    const char *poetry_addr;     /* the raw poetry port; NULL: none */
    const char *poetry_default;  /* the poem the poetry port serves */
    const char *cache;           /* address of the cache ("cache", "cache@n2") */
    const char *renderer;        /* address of the renderer */
    const char *transformer;     /* address of the transformer; NULL: no transforms */
    const char *transform_addr;  /* the raw transform port; NULL: none (needs transformer) */
    uint64_t deadline_ms;        /* per request; 0: 10000 */
    uint64_t header_timeout_ms;  /* a request's headers must arrive within; 0: 10000 */
    uint64_t idle_timeout_ms;    /* keep-alive idle; 0: 30000 */
    size_t max_header;           /* bytes of request line + headers; 0: 8192 */
    size_t max_body;             /* 0: 1 MiB */
    unsigned max_connections;    /* both ports together; 0: 1024 */
    unsigned max_pipeline;       /* requests in flight per connection; 0: 32 */
    uint64_t body_timeout_ms;    /* longest pause within a request's body; 0: 10000 */
    uint64_t request_timeout_ms; /* a request whole, first byte to last; 0: 30000 */
    uint64_t write_timeout_ms;   /* longest a write may make no progress; 0: 30000 */
    size_t max_output;           /* answers held per connection before reading stops; 0: 1 MiB */
    int debug;                   /* error pages show the failure's trace */
    int allow_faults;            /* honour ?fault=STAGE (tests only) */
    int trace_control;           /* GET /trace[?sample=&actors=&types=] shows or sets tracing;
                                  * GET /trace/dump keeps the flight recorder's window */
    /* What a client's FIN means while its answers are still being made. TCP
     * cannot tell a client that closed from one that only shut its sending
     * side: 0 (default) takes it for a half-close and still answers, within
     * the request's deadline; 1 takes it for a hang-up (as nginx does for
     * proxied requests) and cancels the requests, which cancels the work
     * done for them. A reset is a hang-up either way. */
    int fin_abandons;
} wf_listener_config;

/* Message: the listener's bound ports (reply body: three uint16_t, HTTP,
 * poetry, then transform, 0 where not listening). */
#define WF_LISTENER_PORTS 0x4C490001u

/* Its init binds and listens (failing the spawn with WF_EINVAL when it
 * cannot) and takes a const wf_listener_config * (borrowed: it must outlive
 * the actor). wf_listener_spawn: loop thread, or any thread before the node runs. */
WF_API extern const wf_behaviour wf_listener_behaviour;

static inline int wf_listener_spawn(wf_node *n, const char *name, const wf_listener_config *cfg,
                                    wf_pid *pid)
{
    return wf_spawn(n, name, &wf_listener_behaviour, (void *)cfg, pid);
}

#ifdef __cplusplus
}
#endif
#endif
