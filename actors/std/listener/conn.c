/* One HTTP connection of the listener: reading and parsing requests,
 * pipelining (a request is a slot in its connection's queue; slots are
 * answered in arrival order, each with a response built whole before any
 * byte is written, so a failure anywhere becomes a complete error response
 * for that slot alone), timeouts, and writing. */
#include <stdio.h>
#include <string.h>

#include <weft/alloc.h>
#include <weft/log.h>

#include "listener_private.h"
#include "response.h"
#include "status.h"
#include "strbuf.h"

/* ---- responses ---- */

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
    }
    wf_free(r->resp);
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

static void after_write(uv_write_t *w, int status)
{
    struct req *r = w->data;
    struct conn *c = r->c;
    if (r->l != NULL && strcmp(r->fault, "after") == 0) {
        /* A failure raised after the response went out must touch nothing
         * else: it is reported, and the connection goes on. */
        r->l->faults_after++;
        wf_log(WF_LOG_WARN, "failure after the response was finished (injected fault): ignored "
                            "for this request, which had its answer");
    }
    if (c != NULL) {
        c->head = r->next;
        if (c->head == NULL)
            c->tail = NULL;
        c->inflight--;
        if (status < 0 || !r->keep_alive) {
            wf__lst_req_free(r);
            wf__lst_conn_close(c);
            return;
        }
        wf__lst_req_free(r);
        wf__lst_flush(c);
        return;
    }
    wf__lst_req_free(r);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void arm_idle(struct conn *c);

/* Writes every ready answer at the head of the queue, in order. */
void wf__lst_flush(struct conn *c)
{
    if (c->closing)
        return;
    for (struct req *r = c->head; r != NULL && r->ready && !r->written; r = r->next) {
        r->written = true;
        if (c->l != NULL)
            wf__lst_metrics_count(c->l, r->status, r->t0);
        uv_buf_t b = uv_buf_init(r->resp, (unsigned)r->resp_len);
        r->wreq.data = r;
        if (uv_write(&r->wreq, (uv_stream_t *)&c->tcp, &b, 1, after_write) != 0) {
            wf__lst_conn_close(c);
            return;
        }
        if (!r->keep_alive)
            break; /* nothing after a closing answer */
    }
    if (c->head == NULL && !wf__http_reader_busy(&c->reader))
        arm_idle(c);
    if (c->paused && c->l && c->inflight < c->l->max_pipe && !c->close_after) {
        c->paused = false;
        uv_read_start((uv_stream_t *)&c->tcp, wf__lst_on_alloc, on_read);
    }
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
    }
    /* Answers still being made have nobody to go to: orphan them. Those
     * already handed to uv_write are freed by their write callbacks. */
    for (struct req *r = c->head, *next; r != NULL; r = next) {
        next = r->next;
        r->c = NULL;
        if (!r->written) {
            if (r->chain != NULL && !wf_deferred_called(r->chain))
                wf_deferred_cancel(r->chain); /* its last step frees it */
            else if (r->ready)
                wf__lst_req_free(r);
        }
    }
    c->head = c->tail = NULL;
    if (c->poetry_ask != NULL) {
        wf_deferred *d = c->poetry_ask;
        c->poetry_ask = NULL;
        wf_deferred_cancel(d); /* its step sees c closing, while c still exists */
        wf_deferred_release(d);
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_timeout(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (wf__http_reader_busy(&c->reader)) {
        /* A client that cannot finish its headers in time does not keep
         * the connection. */
        wf__lst_bad_request(c, 408, "the request took too long to arrive");
    } else if (c->head == NULL) {
        wf__lst_conn_close(c); /* idle keep-alive connection */
    }
}

static void arm_idle(struct conn *c)
{
    if (c->l != NULL && !c->closing)
        uv_timer_start(&c->timer, on_timeout, c->l->idle_to, 0);
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
    if (n < 0) {
        wf__lst_conn_close(c);
        return;
    }
    if (n == 0 || c->closing || c->close_after || c->l == NULL)
        return;
    if (!wf__http_reader_busy(&c->reader))
        uv_timer_start(&c->timer, on_timeout, c->l->header_to, 0);
    int bad = wf__http_reader_feed(&c->reader, buf->base, (size_t)n);
    if (c->closing)
        return;
    if (bad == 431) {
        wf__lst_bad_request(c, 431, "request line and headers too large");
    } else if (bad == 413) {
        wf__lst_bad_request(c, 413, "request body too large");
    } else if (bad != 0) {
        if (!c->close_after)
            wf__lst_bad_request(c, bad, wf__http_reader_error(&c->reader));
    } else if (wf__http_reader_has_head(&c->reader)) {
        uv_timer_stop(&c->timer); /* headers arrived: the deadline takes over */
    }
    if (!c->closing && c->inflight >= c->l->max_pipe && c->reading) {
        uv_read_stop(s); /* back-pressure: answer what we have first */
        c->paused = true;
    }
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
    arm_idle(c);
    c->reading = true;
    uv_read_start((uv_stream_t *)&c->tcp, wf__lst_on_alloc, on_read);
}
