/* The listener's parts (see weft/listener.h): listener.c (the actor:
 * ports, accepting, start and stop), conn.c (one HTTP connection: reading,
 * pipelining, timeouts, writing), routes.c (what a request asks for: poems,
 * /metrics, /healthz, /trace), metrics.c (counters and Prometheus text),
 * poetry.c (the raw poetry port) and transform.c (the raw transform port). Everything here runs on
 * the node's loop thread. Private to libweft_std. */
#ifndef WF_LISTENER_PRIVATE_H
#define WF_LISTENER_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include <weft/cache.h>
#include <weft/listener.h>
#include <weft/trace.h>

#include "ratelog.h"
#include "request.h"

#define NAME_MAX_LEN 200
#define LAT_BUCKETS  12
#define NSTATUS      15 /* the statuses counted apart, see metrics.c */

/* What timed out (lst.timeouts, the phase label of /metrics). */
enum { TO_HEADER, TO_BODY, TO_REQUEST, TO_WRITE, TO_IDLE, NTIMEOUTS };

struct conn;
struct req;

/* The actor's state. */
struct lst {
    const wf_listener_config *cfg;
    wf_node *node;
    wf_pid self;
    uv_tcp_t *http, *poetry, *xform; /* on the heap: freed by their close callbacks */
    uint16_t http_port, poetry_port, xform_port;
    struct conn *conns;
    unsigned nconns;
    struct req *reqs; /* every request still in flight, for terminate */
    uint64_t deadline, header_to, body_to, request_to, write_to, idle_to;
    size_t max_header, max_body, max_output;
    unsigned max_conn, max_pipe;
    /* metrics */
    uint64_t by_status[NSTATUS];
    uint64_t xcache[4];
    uint64_t lat[LAT_BUCKETS + 1];
    double lat_sum;
    uint64_t lat_count, poetry_served, poetry_failed, faults_after;
    uint64_t xform_served, xform_failed; /* the transform port's answers, and resets */
    uint64_t evictions, timeouts[NTIMEOUTS];
    uint64_t abandoned; /* requests whose client left first: their asks cancelled */
    uint64_t paused_pipeline, paused_output; /* reads stopped, by cause */
    uint64_t lost[2], half_closes[2];        /* [0] HTTP, [1] poetry */
    size_t out_held, in_held; /* bytes of answers not yet written, of requests not yet read */
    /* routes.c: one log line per failed request, rate-limited */
    wf__ratelog failure_log;
    char scratch[65536]; /* what a read leaves unparsed goes to conn.pend: one will do */
};

/* One accepted connection, HTTP or poetry. */
struct conn {
    struct conn *next, *prev;
    struct lst *l; /* NULL once the listener stopped */
    uv_tcp_t tcp;
    uv_timer_t timer;
    int handles;
    bool poetry, closing, close_after, reading, paused, feeding, eof;
    bool transform;      /* accepted on the transform port */
    bool reset_on_close; /* a poetry- or transform-port failure: RST, not an answer */
    /* times (ms, the loop's clock) for the timeouts and eviction: the
     * request's first byte, the last bytes read, the last write progress,
     * and the later of the two */
    uint64_t req_start, last_read, last_write, last_active;
    unsigned nrequests; /* requests read: tells when a new one began (transform port:
                         * requests answered) */
    unsigned writing;   /* answers handed to uv_write, not yet done */
    size_t wq_seen;     /* the write queue's size at the last look */
    size_t out_bytes;   /* bytes of answers held for this connection */
    char *pend;         /* bytes read but not yet parsed (pipeline or output full; the
                         * transform port: its requests) */
    size_t pend_len, pend_off;
    wf_deferred *poetry_ask; /* the poetry or transform port's ask, cancelled on close */
    wf_trace_ctx pspan;      /* the poetry port's request */
    /* the request being read, and the two headers the listener wants */
    wf__http_reader reader;
    wf__http_field fields[2];
    char cookie[256];
    char traceparent[WF_TRACEPARENT_LEN + 8]; /* the header, if it fits */
    /* answers, in order */
    struct req *head, *tail;
    unsigned inflight;
};

#define CONN_COOKIE      0 /* index in conn.fields */
#define CONN_TRACEPARENT 1

/* One request of a connection, from its arrival to its answer's write. */
struct req {
    struct req *next;          /* the connection's queue */
    struct req *gprev, *gnext; /* the listener's list */
    struct conn *c;            /* NULL once the connection is gone */
    struct lst *l;             /* NULL once the listener stopped */
    wf_deferred *chain;        /* the work answering it */
    bool ready, keep_alive, head_only, written, resp_static;
    int status;
    char *resp;
    size_t resp_len, held; /* held: counted in lst.out_held and conn.out_bytes */
    uint64_t t0;
    char name[NAME_MAX_LEN + 1];
    char session[33];
    char fault[24];
    char xform[34];    /* ?transform=NAME (one byte past the longest, to tell), or "" */
    bool xform_failed; /* the transformer failed it */
    char xcache[16];
    wf_trace_ctx span; /* the request's span: traced or not, it is answered */
    bool traced_reply;
    uint32_t age;
    uint64_t deadline_at;
    uv_write_t wreq;
};

/* conn.c */
void wf__lst_conn_start(struct conn *c);
/* Closes c (once; later calls do nothing); answers not yet written count
 * as lost. */
void wf__lst_conn_close(struct conn *c);
/* (Re)starts c's timer for the earliest of its deadlines (see conn.c). */
void wf__lst_conn_arm(struct conn *c);
/* The stalest connection that may be evicted to make room, or NULL. */
struct conn *wf__lst_conn_evictable(struct lst *l);
uint64_t wf__lst_now(const struct lst *l);
void wf__lst_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
void wf__lst_flush(struct conn *c);
void wf__lst_bad_request(struct conn *c, int status, const char *why);
void wf__lst_req_free(struct req *r);
/* Builds r's whole response (status line, headers, body); extra is more
 * header lines, each ending in CRLF, or NULL. */
void wf__lst_respond(struct req *r, int status, const char *type, const char *body, size_t len,
                     const char *extra);
/* A plain page for errors the listener itself decides (and the fallback
 * when the renderer cannot make one). */
void wf__lst_respond_plain_error(struct req *r, int status, const char *message, const char *id,
                                 const char *trace_html);

/* routes.c: answers r, the request hr of c, or starts the work that will. */
void wf__lst_route(struct conn *c, struct req *r, wf__http_request *hr);
/* Asks the part at addr (role: "cache", "renderer", "transformer") for m
 * (consumed); fails at once, naming it, when addr resolves to nothing. */
wf_deferred *wf__lst_ask_part(struct lst *l, const char *role, const char *addr, wf_msg *m,
                              uint64_t timeout_ms);

/* metrics.c */
void wf__lst_metrics_count(struct lst *l, int status, uint64_t t0);
/* Answers r with the Prometheus text of l's counters and, if not NULL,
 * the cache's. */
void wf__lst_metrics_respond(struct lst *l, struct req *r, const wf_cache_stats *cs);

/* poetry.c: serves one poem on c, accepted on the poetry port. */
void wf__lst_poetry_start(struct conn *c);
/* transform.c: serves netstring transform requests on c, accepted on the
 * transform port. */
void wf__lst_transform_start(struct conn *c);
/* Logs the counts of failure lines the rate limit held back, once their
 * interval is over (listener.c calls it as connections come and go). */
void wf__lst_log_flush(struct lst *l);

#endif
