/* One HTTP connection of the listener: reading and parsing requests,
 * pipelining (a request is a slot in its connection's queue; slots are
 * answered in arrival order, each with a response built whole before any
 * byte is written, so a failure anywhere becomes a complete error response
 * for that slot alone), timeouts, and writing.
 *
 * What one client may hold is bounded: the parser is fed only as many
 * bytes as can complete the requests there is room for (max_pipeline
 * slots, max_output bytes of answers); the rest of a read waits in
 * conn.pend and reading stops until the answers are written. One timer per
 * connection stands for the earliest of its deadlines (conn_arm): the
 * request's head, its body, the request whole, the writes, the idle
 * keep-alive. A client that half-closes still gets its answers. */
#include <stdio.h>
#include <string.h>

#include <weft/alloc.h>
#include <weft/log.h>

#include "listener_private.h"
#include "response.h"
#include "status.h"
#include "strbuf.h"

/* ---- responses ---- */

/* Counts r's answer (n bytes of heap) in what its listener and its
 * connection hold, in place of what it held before. */
static void held_set(struct req *r, size_t n)
{
    if (r->l != NULL)
        r->l->out_held = r->l->out_held - r->held + n;
    if (r->c != NULL)
        r->c->out_bytes = r->c->out_bytes - r->held + n;
    r->held = n;
}

void wf__lst_respond(struct req *r, int status, const char *type, const char *body, size_t len,
                     const char *extra)
{
    char head[WF__HTTP_HEAD_MAX];
    int hn = wf__http_response_head(head, sizeof head, status, type, len);
    wf_strbuf b = {0};
    wf_strbuf_reserve(&b, 512 + (extra ? strlen(extra) : 0) + len);
    if (hn < 0)
        b.oom = true; /* cannot happen with the listener's own types */
    else
        wf_strbuf_append(&b, head, (size_t)hn);
    wf_strbuf_puts(&b, "Via: 1.1 weft\r\n");
    if ((r->span.flags & WF_TRACE_VALID) && r->span.span_id != 0) {
        /* The client can find its request in the trace. */
        char tp[WF_TRACEPARENT_LEN + 1];
        wf_traceparent_format(&r->span, tp);
        wf_strbuf_printf(&b, "traceparent: %s\r\n", tp);
    }
    wf_strbuf_puts(&b, r->keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n");
    if (extra != NULL)
        wf_strbuf_puts(&b, extra);
    wf_strbuf_puts(&b, "\r\n");
    if (!r->head_only)
        wf_strbuf_append(&b, body, len);
    size_t n = b.len;
    if (r->l != NULL && !r->traced_reply) {
        char label[16];
        snprintf(label, sizeof label, "%d", status);
        wf_trace_note(r->l->node, status >= 500 ? "fail" : "reply", r->l->self, &r->span, label,
                      len);
        r->traced_reply = true;
        /* A failure that reaches a client: the flight recorder, if the node
         * keeps one, keeps the window that holds this request's path. */
        if (status >= 500)
            wf_node_trace_dump(r->l->node, &r->span, "5xx", false, NULL, 0);
    }
    if (!r->resp_static)
        wf_free(r->resp);
    r->resp_static = false;
    r->resp = wf_strbuf_finish(&b);
    r->resp_len = r->resp ? n : 0;
    r->status = status;
    r->ready = true;
    if (r->resp == NULL) {
        /* Out of memory: a fixed answer that needs none. */
        static const char oom[] = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
                                  "Connection: close\r\n\r\n";
        r->resp = (char *)oom;
        r->resp_len = sizeof oom - 1;
        r->resp_static = true;
        r->keep_alive = false;
    }
    held_set(r, r->resp_static ? 0 : r->resp_len);
}

void wf__lst_respond_plain_error(struct req *r, int status, const char *message, const char *id,
                                 const char *trace_html)
{
    wf_strbuf b = {0};
    wf_strbuf_printf(&b, "<!doctype html><title>%d %s</title><h1>%d %s</h1><p>", status,
                     wf__http_reason(status), status, wf__http_reason(status));
    wf_strbuf_puts_html(&b, message);
    wf_strbuf_puts(&b, "</p>");
    if (id != NULL)
        wf_strbuf_printf(&b, "<p>Failure id: <code>%s</code></p>", id);
    if (trace_html != NULL)
        wf_strbuf_printf(&b, "<pre>%s</pre>", trace_html);
    wf_strbuf_puts(&b, "\n");
    size_t n = b.len;
    char *html = wf_strbuf_finish(&b);
    wf__lst_respond(r, status, "text/html; charset=utf-8", html ? html : "", html ? n : 0, NULL);
    wf_free(html);
}

/* ---- request records ---- */

static void req_unlink(struct req *r)
{
    if (r->l == NULL)
        return;
    *(r->gprev ? &r->gprev->gnext : &r->l->reqs) = r->gnext;
    if (r->gnext)
        r->gnext->gprev = r->gprev;
    r->l = NULL;
}

void wf__lst_req_free(struct req *r)
{
    held_set(r, 0);
    req_unlink(r);
    wf_deferred_release(r->chain);
    if (!r->resp_static)
        wf_free(r->resp);
    wf_free(r);
}

static struct req *req_new(struct conn *c)
{
    struct req *r = wf_malloc(sizeof *r);
    if (r == NULL)
        return NULL;
    memset(r, 0, sizeof *r);
    r->c = c;
    r->l = c->l;
    r->t0 = uv_hrtime();
    r->keep_alive = true;
    r->gnext = c->l->reqs;
    if (c->l->reqs)
        c->l->reqs->gprev = r;
    c->l->reqs = r;
    *(c->tail ? &c->tail->next : &c->head) = r;
    c->tail = r;
    c->inflight++;
    return r;
}

/* ---- writing ---- */

uint64_t wf__lst_now(const struct lst *l)
{
    return uv_now(wf_node_loop(l->node));
}

/* The "after" fault: a failure raised once r's answer is out must touch
 * nothing else: it is reported, and the connection goes on. */
static void fault_after(struct req *r)
{
    if (r->l != NULL && strcmp(r->fault, "after") == 0) {
        r->l->faults_after++;
        wf_log(WF_LOG_WARN, "failure after the response was finished (injected fault): ignored "
                            "for this request, which had its answer");
    }
}

/* r, the head of c's queue, is answered whole: it leaves the queue and is
 * freed. Returns false when that closed c (r's answer was its last). */
static bool answered(struct conn *c, struct req *r)
{
    c->head = r->next;
    if (c->head == NULL)
        c->tail = NULL;
    c->inflight--;
    if (c->l != NULL) {
        c->last_write = c->last_active = wf__lst_now(c->l);
        c->wq_seen = c->tcp.write_queue_size;
    }
    bool last = !r->keep_alive;
    wf__lst_req_free(r);
    if (last)
        wf__lst_conn_close(c);
    return !last;
}

static void after_write(uv_write_t *w, int status)
{
    struct req *r = w->data;
    struct conn *c = r->c;
    fault_after(r);
    if (c != NULL) {
        c->writing--;
        if (status < 0) {
            c->head = r->next;
            if (c->head == NULL)
                c->tail = NULL;
            c->inflight--;
            if (c->l != NULL)
                c->l->lost[0]++;
            wf__lst_req_free(r);
            wf__lst_conn_close(c);
            return;
        }
        if (answered(c, r))
            wf__lst_flush(c);
        return;
    }
    wf__lst_req_free(r);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void resume_reading(struct conn *c);

/* Writes every ready answer at the head of the queue, in order. */
void wf__lst_flush(struct conn *c)
{
    if (c->closing)
        return;
    struct req *r = c->head;
    while (r != NULL && r->ready && !r->written) {
        r->written = true;
        if (c->l != NULL)
            wf__lst_metrics_count(c->l, r->status, r->t0);
        uv_buf_t b = uv_buf_init(r->resp, (unsigned)r->resp_len);
        /* Nothing queued before it: try the write at once. An answer the
         * socket takes whole needs no write request and no callback, and
         * spares the loop re-arming the socket's poll after it (uv_write's
         * drain: an epoll_ctl per answer). What is left goes to uv_write;
         * so does any error, reported by its callback. */
        if (c->writing == 0 && c->tcp.write_queue_size == 0) {
            int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
            if (n == (int)b.len) {
                struct req *next = r->next;
                fault_after(r);
                if (!answered(c, r))
                    return;
                r = next;
                continue;
            }
            if (n > 0) {
                b.base += n;
                b.len -= (size_t)n;
            }
        }
        r->wreq.data = r;
        size_t before = c->tcp.write_queue_size;
        if (uv_write(&r->wreq, (uv_stream_t *)&c->tcp, &b, 1, after_write) != 0) {
            /* No callback will come for it: the close frees it. */
            r->written = false;
            wf__lst_conn_close(c);
            return;
        }
        if (c->writing++ == 0 && c->l != NULL)
            c->last_write = wf__lst_now(c->l); /* the write timeout runs from here */
        c->wq_seen += c->tcp.write_queue_size - before;
        if (!r->keep_alive)
            break; /* nothing after a closing answer */
        r = r->next;
    }
    if (c->eof && c->head == NULL) {
        wf__lst_conn_close(c); /* half-closed, and every answer written */
        return;
    }
    resume_reading(c);
    if (!c->closing)
        wf__lst_conn_arm(c);
}

/* ---- reading ---- */

void wf__lst_bad_request(struct conn *c, int status, const char *why)
{
    struct req *r = req_new(c);
    c->close_after = true;
    if (r == NULL) {
        wf__lst_conn_close(c);
        return;
    }
    r->keep_alive = false;
    wf__lst_respond_plain_error(r, status, why, NULL, NULL);
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    wf__lst_flush(c);
}

/* The reader's callback: one whole request, in arrival order. */
static int on_request(void *arg, wf__http_request *hr)
{
    struct conn *c = arg;
    struct lst *l = c->l;
    c->nrequests++;
    if (c->close_after)
        return 0; /* nothing after a closing request is acted upon */
    struct req *r = req_new(c);
    if (r == NULL)
        return -1;
    /* The request is a span: a child of the caller's when it sent a valid
     * traceparent, else a new trace. What the listener asks on its behalf
     * continues it. */
    const wf__http_field *tpf = &c->fields[CONN_TRACEPARENT];
    wf_trace_ctx parent, *pp = NULL;
    if (tpf->len > 0 && !tpf->cut && wf_traceparent_parse(tpf->buf, tpf->len, &parent) == 0)
        pp = &parent;
    wf_trace_ctx prev = wf_trace_begin(l->node, pp, &r->span);
    if (r->span.flags & WF_TRACE_SAMPLED) {
        char label[WF__HTTP_TARGET_MAX + 16];
        snprintf(label, sizeof label, "%s %s", hr->method_name, hr->target);
        wf_trace_note(l->node, "recv", l->self, &r->span, label, hr->body_len);
    }
    wf__lst_route(c, r, hr);
    wf_trace_end(l->node, &prev);
    return 0;
}

/* The shortest complete request ("GET /\r\n\r\n", HTTP/0.9): a feed of
 * MIN_REQUEST * (k - 1) + 1 bytes completes at most k requests (the first
 * may need one byte, each other at least MIN_REQUEST). */
#define MIN_REQUEST 9

static bool has_room(const struct conn *c)
{
    return c->inflight < c->l->max_pipe && c->out_bytes <= c->l->max_output;
}

static void pause_reading(struct conn *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    if (!c->paused) {
        c->paused = true;
        if (c->inflight >= c->l->max_pipe)
            c->l->paused_pipeline++;
        else
            c->l->paused_output++;
    }
}

static void pend_free(struct conn *c)
{
    if (c->pend != NULL && c->l != NULL)
        c->l->in_held -= c->pend_len;
    wf_free(c->pend);
    c->pend = NULL;
    c->pend_len = c->pend_off = 0;
}

/* Parses data[0..n) (from c->pend if pend) as far as there is room for
 * its requests; keeps the rest in c->pend and stops reading. */
static void feed(struct conn *c, const char *data, size_t n, bool pend)
{
    struct lst *l = c->l;
    size_t off = 0;
    c->feeding = true;
    while (off < n && !c->closing && !c->close_after && has_room(c)) {
        size_t k = (size_t)MIN_REQUEST * (l->max_pipe - c->inflight - 1) + 1;
        if (k > n - off)
            k = n - off;
        bool was_busy = wf__http_reader_busy(&c->reader);
        unsigned before = c->nrequests;
        int bad = wf__http_reader_feed(&c->reader, data + off, k);
        off += k;
        if (c->closing)
            break;
        if (bad != 0) {
            if (!c->close_after)
                wf__lst_bad_request(c, bad, wf__http_reader_error(&c->reader));
            break;
        }
        if (wf__http_reader_busy(&c->reader) && (!was_busy || c->nrequests != before))
            c->req_start = wf__lst_now(l); /* a request began */
    }
    c->feeding = false;
    if (c->closing)
        return;
    if (c->close_after) {
        /* What follows a closing request is not read. */
        pend_free(c);
        if (c->reading) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = false;
        }
        return;
    }
    if (pend) {
        c->pend_off += off;
        if (c->pend_off == c->pend_len)
            pend_free(c);
    } else if (off < n) {
        c->pend = wf_malloc(n - off);
        if (c->pend == NULL) {
            wf__lst_conn_close(c);
            return;
        }
        memcpy(c->pend, data + off, n - off);
        c->pend_len = n - off;
        c->pend_off = 0;
        l->in_held += c->pend_len;
    }
    if (c->pend != NULL || !has_room(c))
        pause_reading(c);
}

/* Reads again once the answers that stopped it were written: what was
 * kept first, then the socket. Not from inside a feed. */
static void resume_reading(struct conn *c)
{
    if (!c->paused || c->feeding || c->closing || c->close_after || c->l == NULL || !has_room(c))
        return;
    c->paused = false;
    /* The client waited on us: its request's clocks start again. */
    c->last_read = c->last_active = c->req_start = wf__lst_now(c->l);
    if (c->pend != NULL) {
        feed(c, c->pend + c->pend_off, c->pend_len - c->pend_off, true);
        if (c->closing || c->paused || c->close_after)
            return;
    }
    c->reading = true;
    uv_read_start((uv_stream_t *)&c->tcp, wf__lst_on_alloc, on_read);
}

/* ---- connections ---- */

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles == 0)
        wf_free(c);
}

void wf__lst_conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->l != NULL) {
        *(c->prev ? &c->prev->next : &c->l->conns) = c->next;
        if (c->next)
            c->next->prev = c->prev;
        c->l->nconns--;
        /* Every answer not yet written whole is lost to its client. */
        uint64_t lost = 0;
        for (struct req *r = c->head; r != NULL; r = r->next)
            lost++;
        if (c->poetry && (c->poetry_ask != NULL || c->writing > 0))
            lost++;
        c->l->lost[c->poetry] += lost;
    }
    pend_free(c);
    /* Answers still being made have nobody to go to: orphan them. Those
     * already handed to uv_write are freed by their write callbacks. */
    for (struct req *r = c->head, *next; r != NULL; r = next) {
        next = r->next;
        r->c = NULL;
        if (!r->written) {
            if (r->chain != NULL && !wf_deferred_called(r->chain)) {
                /* The cancel travels to whatever works on it (the cache,
                 * the fetch behind it, on this node or another). */
                if (c->l != NULL)
                    c->l->abandoned++;
                wf_deferred_cancel(r->chain); /* its last step frees it */
            } else if (r->ready)
                wf__lst_req_free(r);
        }
    }
    c->head = c->tail = NULL;
    if (c->poetry_ask != NULL) {
        wf_deferred *d = c->poetry_ask;
        c->poetry_ask = NULL;
        if (c->l != NULL)
            c->l->abandoned++;
        wf_deferred_cancel(d); /* its step sees c closing, while c still exists */
        wf_deferred_release(d);
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (!c->reset_on_close || uv_tcp_close_reset(&c->tcp, on_conn_closed) != 0)
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

/* Reading a request whose bytes are the client's to send. */
static bool reading_request(const struct conn *c)
{
    return c->reading && wf__http_reader_busy(&c->reader);
}

/* An HTTP keep-alive connection with nothing to do. */
static bool idle(const struct conn *c)
{
    return !c->poetry && c->reading && !wf__http_reader_busy(&c->reader) && c->head == NULL;
}

static void on_timeout(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->closing || c->l == NULL)
        return;
    struct lst *l = c->l;
    uint64_t now = wf__lst_now(l);
    if (c->writing > 0 && now >= c->last_write + l->write_to) {
        size_t q = c->tcp.write_queue_size;
        if (q >= c->wq_seen) {
            /* The client takes nothing: its answers are lost, the memory
             * they hold is given back. */
            l->timeouts[TO_WRITE]++;
            wf__lst_conn_close(c);
            return;
        }
        c->wq_seen = q; /* slow, but moving */
        c->last_write = c->last_active = now;
    }
    if (reading_request(c)) {
        int phase = -1;
        const char *why = NULL;
        if (!wf__http_reader_has_head(&c->reader) && now >= c->req_start + l->header_to) {
            phase = TO_HEADER;
            why = "the request's headers took too long to arrive";
        } else if (wf__http_reader_has_head(&c->reader) && now >= c->last_read + l->body_to) {
            phase = TO_BODY;
            why = "the request's body stopped arriving";
        } else if (now >= c->req_start + l->request_to) {
            phase = TO_REQUEST;
            why = "the request took too long to arrive";
        }
        if (phase >= 0) {
            /* A client that cannot send its request in time does not keep
             * the connection. */
            l->timeouts[phase]++;
            wf__lst_bad_request(c, 408, why);
            return;
        }
    } else if (idle(c) && now >= c->last_active + l->idle_to) {
        l->timeouts[TO_IDLE]++;
        wf__lst_conn_close(c);
        return;
    }
    wf__lst_conn_arm(c);
}

void wf__lst_conn_arm(struct conn *c)
{
    if (c->closing || c->l == NULL)
        return;
    struct lst *l = c->l;
    uint64_t at = UINT64_MAX;
    if (c->writing > 0)
        at = c->last_write + l->write_to;
    if (reading_request(c)) {
        uint64_t a = wf__http_reader_has_head(&c->reader) ? c->last_read + l->body_to
                                                          : c->req_start + l->header_to;
        at = a < at ? a : at;
        a = c->req_start + l->request_to;
        at = a < at ? a : at;
    } else if (idle(c)) {
        uint64_t a = c->last_active + l->idle_to;
        at = a < at ? a : at;
    }
    /* Otherwise the request's work has its own deadline. */
    if (at == UINT64_MAX) {
        uv_timer_stop(&c->timer);
        return;
    }
    /* Never 0: libuv 1.44 runs a timer restarted with 0 from its own
     * callback again at once, in the same turn of the loop. */
    uint64_t now = wf__lst_now(l);
    uv_timer_start(&c->timer, on_timeout, at > now ? at - now : 1, 0);
}

/* Since when a connection has kept its slot without giving the listener
 * anything to do; NEVER if it may not be evicted. Only progress counts: a
 * client dribbling its headers a byte at a time is as stale as its
 * request is old, or slowloris would look busy forever. */
#define NEVER          UINT64_MAX
#define EVICT_GRACE_MS 10

static uint64_t stale_since(const struct conn *c)
{
    if (c->closing)
        return NEVER;
    if (c->writing > 0)
        return c->last_write; /* not taking its answers */
    if (c->poetry || c->head != NULL || c->poetry_ask != NULL)
        return NEVER; /* its answer is being made */
    if (c->transform) /* sending its request (as old as it is), or idle */
        return c->pend_len > 0 ? c->req_start : c->last_active;
    if (reading_request(c))
        return c->req_start;
    return c->last_active; /* idle, or has said nothing yet */
}

struct conn *wf__lst_conn_evictable(struct lst *l)
{
    /* The stalest goes, if it has had EVICT_GRACE_MS: a client's request
     * follows its handshake at once, however far away it is. No minimum
     * longer than that: a crowd that connects (or reconnects as fast as
     * it is evicted) stays young, and would otherwise hold the limit. */
    uint64_t now = wf__lst_now(l);
    struct conn *best = NULL;
    uint64_t best_since = 0;
    for (struct conn *c = l->conns; c != NULL; c = c->next) {
        uint64_t since = stale_since(c);
        if (since == NEVER || now < since + EVICT_GRACE_MS)
            continue;
        if (best == NULL || since < best_since) {
            best = c;
            best_since = since;
        }
    }
    return best;
}

void wf__lst_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    /* A connection reads only while its listener lives. */
    struct conn *c = h->data;
    buf->base = c->l->scratch;
    buf->len = sizeof c->l->scratch;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (c->closing || c->l == NULL)
        return;
    if (n == UV_EOF) {
        /* A half-close: the client sends no more, but still reads. Its
         * answers are written, then the connection closes. */
        uv_read_stop(s);
        c->reading = false;
        c->eof = true;
        if (c->head == NULL || c->l->cfg->fin_abandons) {
            wf__lst_conn_close(c); /* cancels what is still being made */
            return;
        }
        c->l->half_closes[0]++;
        wf__lst_conn_arm(c);
        return;
    }
    if (n < 0) {
        wf__lst_conn_close(c);
        return;
    }
    if (n == 0 || c->close_after)
        return;
    c->last_read = c->last_active = wf__lst_now(c->l);
    feed(c, buf->base, (size_t)n, false);
    wf__lst_conn_arm(c);
}

void wf__lst_conn_start(struct conn *c)
{
    struct lst *l = c->l;
    c->fields[CONN_COOKIE] = (wf__http_field){"cookie", c->cookie, sizeof c->cookie, 0, false};
    c->fields[CONN_TRACEPARENT] =
        (wf__http_field){"traceparent", c->traceparent, sizeof c->traceparent, 0, false};
    wf__http_reader_init(&c->reader, l->max_header, l->max_body, c->fields, 2, on_request, c);
    if (l->nconns > l->max_conn) {
        wf__lst_bad_request(c, 503, "too many connections; try again shortly");
        return;
    }
    c->reading = true;
    uv_read_start((uv_stream_t *)&c->tcp, wf__lst_on_alloc, on_read);
    wf__lst_conn_arm(c);
}
