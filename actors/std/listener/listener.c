/* The listener actor (see weft/listener.h).
 *
 * Connections are libuv TCP handles on the node's loop, owned by the
 * listener's state; the asks they make use wf_ask_as, so every answer comes
 * back as one of the listener's turns. A request is a slot in its
 * connection's queue; slots are answered in arrival order, each with a
 * response built whole before any byte is written, so a failure anywhere
 * becomes a complete error response for that slot alone. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <uv.h>

#include <http_parser.h>

#include <weft/alloc.h>
#include <weft/cache.h>
#include <weft/listener.h>
#include <weft/log.h>
#include <weft/renderer.h>
#include <weft/trace.h>

#include "bytes.h"
#include "status.h"
#include "strbuf.h"

#define URL_MAX      2048
#define NAME_MAX_LEN 200
#define LAT_BUCKETS  12

static const double lat_bounds[LAT_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                               0.1,   0.25,   0.5,   1,    2.5,   5};
static const int status_codes[] = {200, 302, 400, 404, 405, 408, 409, 413, 431, 500, 502, 503, 504};
#define NSTATUS (sizeof status_codes / sizeof status_codes[0])

struct conn;
struct req;

struct lst {
    const wf_listener_config *cfg;
    wf_node *node;
    wf_pid self;
    uv_tcp_t *http, *poetry; /* on the heap: freed by their close callbacks */
    uint16_t http_port, poetry_port;
    struct conn *conns;
    unsigned nconns;
    struct req *reqs; /* every request still in flight, for terminate */
    uint64_t deadline, header_to, idle_to;
    size_t max_header, max_body;
    unsigned max_conn, max_pipe;
    /* metrics */
    uint64_t by_status[NSTATUS];
    uint64_t xcache[4];
    uint64_t lat[LAT_BUCKETS + 1];
    double lat_sum;
    uint64_t lat_count, poetry_served, poetry_failed, faults_after;
    char scratch[65536]; /* reads are parsed at once: one buffer will do */
};

struct conn {
    struct conn *next, *prev;
    struct lst *l; /* NULL once the listener stopped */
    uv_tcp_t tcp;
    uv_timer_t timer;
    int handles;
    bool poetry, closing, close_after, reading, paused;
    wf_deferred *poetry_ask; /* the poetry port's one ask, cancelled on close */
    wf_trace_ctx pspan;      /* the poetry port's request */
    http_parser parser;
    /* the request being parsed */
    bool in_request, headers_done, too_big_header, too_big_body;
    bool after_value; /* a header value came: the next field callback starts a new field */
    char url[URL_MAX];
    size_t url_len, header_bytes, body_bytes;
    char field[32];
    size_t field_len;
    char cookie[256];
    size_t cookie_len;
    char traceparent[WF_TRACEPARENT_LEN + 8]; /* the header, if it fits */
    size_t traceparent_len;
    bool traceparent_over;
    /* answers, in order */
    struct req *head, *tail;
    unsigned inflight;
};

struct req {
    struct req *next;          /* the connection's queue */
    struct req *gprev, *gnext; /* the listener's list */
    struct conn *c;            /* NULL once the connection is gone */
    struct lst *l;             /* NULL once the listener stopped */
    wf_deferred *chain;        /* the work answering it */
    bool ready, keep_alive, head_only, written, resp_static;
    int status;
    char *resp;
    size_t resp_len;
    uint64_t t0;
    char name[NAME_MAX_LEN + 1];
    char session[33];
    char fault[24];
    char xcache[16];
    wf_trace_ctx span; /* the request's span: traced or not, it is answered */
    bool traced_reply;
    uint32_t age;
    uint64_t deadline_at;
    uv_write_t wreq;
};

static void conn_close(struct conn *c);
static void flush(struct conn *c);

/* ---- responses ---- */

/* Builds the whole response for r: status line, headers, body. */
static void respond(struct req *r, int status, const char *type, const char *body, size_t len,
                    const char *extra)
{
    wf_strbuf b = {0};
    wf_strbuf_reserve(&b, 512 + (extra ? strlen(extra) : 0) + len);
    wf_strbuf_printf(&b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n", status,
                     wf__http_reason(status), type, len);
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

/* A plain page for errors the listener itself decides (and the fallback
 * when the renderer cannot make one). */
static void respond_plain_error(struct req *r, int status, const char *message, const char *id,
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
    respond(r, status, "text/html; charset=utf-8", html ? html : "", html ? n : 0, NULL);
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

static void req_free(struct req *r)
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

static void count_status(struct lst *l, int status, uint64_t t0)
{
    for (size_t i = 0; i < NSTATUS; i++) {
        if (status_codes[i] == status)
            l->by_status[i]++;
    }
    double s = (double)(uv_hrtime() - t0) / 1e9;
    int b = 0;
    while (b < LAT_BUCKETS && s > lat_bounds[b])
        b++;
    l->lat[b]++;
    l->lat_sum += s;
    l->lat_count++;
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
            req_free(r);
            conn_close(c);
            return;
        }
        req_free(r);
        flush(c);
        return;
    }
    req_free(r);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void arm_idle(struct conn *c);

/* Writes every ready answer at the head of the queue, in order. */
static void flush(struct conn *c)
{
    if (c->closing)
        return;
    for (struct req *r = c->head; r != NULL && r->ready && !r->written; r = r->next) {
        r->written = true;
        if (c->l != NULL)
            count_status(c->l, r->status, r->t0);
        uv_buf_t b = uv_buf_init(r->resp, (unsigned)r->resp_len);
        r->wreq.data = r;
        if (uv_write(&r->wreq, (uv_stream_t *)&c->tcp, &b, 1, after_write) != 0) {
            conn_close(c);
            return;
        }
        if (!r->keep_alive)
            break; /* nothing after a closing answer */
    }
    if (c->head == NULL && !c->in_request)
        arm_idle(c);
    if (c->paused && c->l && c->inflight < c->l->max_pipe && !c->close_after) {
        c->paused = false;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
}

/* ---- the work behind a poem request ---- */

static void random_id(char out[17])
{
    unsigned char raw[8] = {0};
    if (getrandom(raw, sizeof raw, 0) != sizeof raw)
        memset(raw, 0x5a, sizeof raw);
    *wf__hex(out, raw, 8) = '\0';
}

static int status_of(int code)
{
    switch (code) {
    case WF_ETIMEDOUT:
        return 504;
    case WF_EUPSTREAM:
    case WF_ENODEDOWN:
        return 502;
    case WF_EOVERLOADED:
        return 503;
    default:
        return 500;
    }
}

static uint64_t remaining(struct req *r)
{
    uint64_t now = uv_hrtime() / 1000000;
    return r->deadline_at > now + 1 ? r->deadline_at - now : 1;
}

static wf_result got_poem(wf_result res, void *arg)
{
    struct req *r = arg;
    if (r->l == NULL) {
        wf_result_free(res);
        return WF_FAIL(WF_EACTORSTOPPED, "listener stopped");
    }
    wf_cache_reply head;
    const void *v;
    size_t len;
    if (wf_cache_reply_parse(res.u.ptr, &head, &v, &len) != 0) {
        wf_result_free(res);
        return WF_FAIL(WF_EPROTO, "the cache's answer is not a cache reply");
    }
    static const char *names[] = {"HIT", "MISS", "COALESCED", "STALE"};
    snprintf(r->xcache, sizeof r->xcache, "%s",
             head.status >= 1 && head.status <= 4 ? names[head.status - 1] : "?");
    if (head.status >= 1 && head.status <= 4)
        r->l->xcache[head.status - 1]++;
    r->age = head.age_s;
    wf_msg *m = wf_msg_alloc(WF_RENDER_POEM, sizeof(wf_render_poem) + len);
    if (m == NULL) {
        wf_result_free(res);
        return WF_FAIL(WF_ENOMEM, "no memory to ask for a page");
    }
    wf_render_poem rp = {.age_s = head.age_s};
    memcpy(rp.session, r->session, sizeof rp.session);
    snprintf(rp.cache, sizeof rp.cache, "%s", r->xcache);
    if (strcmp(r->fault, "render_before") == 0)
        rp.fault = WF_RENDER_FAULT_BEFORE;
    else if (strcmp(r->fault, "render_encoding") == 0)
        rp.fault = WF_RENDER_FAULT_ENCODING;
    memcpy(wf_msg_body(m), &rp, sizeof rp);
    memcpy((char *)wf_msg_body(m) + sizeof rp, v, len);
    wf_result_free(res);
    wf_pid to = wf_resolve(r->l->node, r->l->cfg->renderer);
    return wf_result_deferred(wf_ask_as(r->l->node, r->l->self, to, m, remaining(r)));
}

static wf_result got_page(wf_result res, void *arg)
{
    struct req *r = arg;
    wf_msg *m = res.u.ptr;
    wf_render_page page;
    if (wf_msg_len(m) < sizeof page) {
        wf_result_free(res);
        return WF_FAIL(WF_EPROTO, "the renderer's answer is too short");
    }
    if (strcmp(r->fault, "writing") == 0) {
        wf_result_free(res);
        return WF_FAIL(WF_EUSER + 502, "listener failed while writing the response (injected "
                                       "fault)");
    }
    memcpy(&page, wf_msg_body(m), sizeof page);
    page.session[32] = '\0';
    char extra[256];
    snprintf(extra, sizeof extra,
             "X-Cache: %s\r\nAge: %u\r\nSet-Cookie: weft_session=%s; Path=/; HttpOnly; "
             "SameSite=Lax\r\nCache-Control: no-store\r\n",
             r->xcache, r->age, page.session);
    respond(r, 200, "text/html; charset=utf-8", (char *)wf_msg_body(m) + sizeof page,
            wf_msg_len(m) - sizeof page, extra);
    wf_result_free(res);
    return wf_result_none();
}

struct failed {
    struct req *r;
    int status;
    char id[17];
    char message[256];
    char *trace_html;
};

static wf_result error_page_done(wf_result res, void *arg)
{
    struct failed *f = arg;
    struct req *r = f->r;
    if (wf_result_is_msg(res))
        respond(r, f->status, "text/html; charset=utf-8", wf_msg_body(res.u.ptr),
                wf_msg_len(res.u.ptr), NULL);
    else
        respond_plain_error(r, f->status, f->message, f->id, f->trace_html);
    wf_result_free(res);
    return wf_result_none();
}

static void failed_free(void *arg)
{
    struct failed *f = arg;
    wf_free(f->trace_html);
    wf_free(f);
}

/* The one errback of a request: its failure becomes its error page. */
static wf_result request_failed(wf_result res, void *arg)
{
    struct req *r = arg;
    wf_failure *fl = res.u.failure;
    struct failed *f = wf_malloc(sizeof *f);
    if (f == NULL || r->l == NULL) {
        wf_free(f);
        respond_plain_error(r, status_of(wf_failure_code(fl)), wf_failure_message(fl), NULL, NULL);
        wf_result_free(res);
        return wf_result_none();
    }
    memset(f, 0, sizeof *f);
    f->r = r;
    f->status = status_of(wf_failure_code(fl));
    random_id(f->id);
    snprintf(f->message, sizeof f->message, "%s", wf_failure_message(fl));
    char *text = wf_failure_format(fl, WF_FORMAT_TEXT);
    wf_log(WF_LOG_WARN, "request %s for /poems/%s failed with %d:\n%s", f->id, r->name, f->status,
           text ? text : f->message);
    if (r->l->cfg->debug)
        f->trace_html = wf_failure_format(fl, WF_FORMAT_HTML);
    size_t tl = r->l->cfg->debug && text ? strlen(text) : 0;
    wf_msg *m = wf_msg_alloc(WF_RENDER_ERROR, sizeof(wf_render_error) + tl);
    wf_deferred *d;
    if (m == NULL) {
        d = wf_fail(wf_failure_new(WF_ENOMEM, "no memory for an error page"));
    } else {
        wf_render_error re = {.status = (uint32_t)f->status, .debug = (uint32_t)r->l->cfg->debug};
        memcpy(re.id, f->id, sizeof re.id);
        snprintf(re.message, sizeof re.message, "%s", f->message);
        memcpy(wf_msg_body(m), &re, sizeof re);
        if (tl)
            memcpy((char *)wf_msg_body(m) + sizeof re, text, tl);
        wf_pid to = wf_resolve(r->l->node, r->l->cfg->renderer);
        /* The error page must come quickly; if the renderer is what broke,
         * the fallback page is ready at once. */
        uint64_t t = remaining(r) < 1000 ? remaining(r) : 1000;
        d = wf_ask_as(r->l->node, r->l->self, to, m, t);
    }
    wf_free(text);
    wf_result_free(res);
    wf_deferred_add_callbacks_full(d, error_page_done, error_page_done, f, failed_free);
    return wf_result_deferred(d);
}

/* The last step: the answer is ready; write what can be written. */
static wf_result request_done(wf_result res, void *arg)
{
    struct req *r = arg;
    wf_result_free(res);
    if (!r->ready)
        respond_plain_error(r, 500, "no answer was made", NULL, NULL);
    if (r->c != NULL)
        flush(r->c);
    else
        req_free(r); /* the client went away: nobody to write to */
    return wf_result_none();
}

static void dispatch_poem(struct lst *l, struct req *r)
{
    r->deadline_at = uv_hrtime() / 1000000 + l->deadline;
    wf_deferred *d;
    if (strcmp(r->fault, "dispatch") == 0) {
        d = wf_fail(wf_failure_new(WF_EUSER + 503, "listener failed while dispatching (injected "
                                                   "fault)"));
    } else {
        wf_pid cache = wf_resolve(l->node, l->cfg->cache);
        d = wf_ask_as(l->node, l->self, cache, wf_msg_new(WF_CACHE_GET, r->name, strlen(r->name)),
                      l->deadline);
    }
    if (d == NULL) {
        respond_plain_error(r, 500, "out of memory", NULL, NULL);
        flush(r->c);
        return;
    }
    r->chain = wf_deferred_ref(d);
    wf_deferred_add_callback(d, got_poem, r);
    wf_deferred_add_callback(d, got_page, r);
    wf_deferred_add_errback(d, request_failed, r);
    wf_deferred_add_both(d, request_done, r);
    wf_deferred_release(d);
}

/* ---- metrics ---- */

static void metrics(struct lst *l, struct req *r, const wf_cache_stats *cs)
{
    wf_strbuf b = {0};
    wf_strbuf_puts(&b, "# HELP weft_http_requests_total HTTP requests answered, by status.\n"
                       "# TYPE weft_http_requests_total counter\n");
    for (size_t i = 0; i < NSTATUS; i++)
        wf_strbuf_printf(&b, "weft_http_requests_total{status=\"%d\"} %llu\n", status_codes[i],
                         (unsigned long long)l->by_status[i]);
    static const char *xc[] = {"hit", "miss", "coalesced", "stale"};
    wf_strbuf_puts(&b, "# HELP weft_cache_answers_total Poem answers by cache outcome.\n"
                       "# TYPE weft_cache_answers_total counter\n");
    for (int i = 0; i < 4; i++)
        wf_strbuf_printf(&b, "weft_cache_answers_total{outcome=\"%s\"} %llu\n", xc[i],
                         (unsigned long long)l->xcache[i]);
    if (cs != NULL) {
        wf_strbuf_printf(&b,
                         "# TYPE weft_upstream_fetches_total counter\n"
                         "weft_upstream_fetches_total %llu\n"
                         "# TYPE weft_upstream_failures_total counter\n"
                         "weft_upstream_failures_total %llu\n"
                         "# TYPE weft_cache_entries gauge\nweft_cache_entries %llu\n"
                         "# TYPE weft_cache_bytes gauge\nweft_cache_bytes %llu\n"
                         "# TYPE weft_cache_evicted_total counter\nweft_cache_evicted_total %llu\n",
                         (unsigned long long)cs->fetches, (unsigned long long)cs->fetch_failures,
                         (unsigned long long)cs->entries, (unsigned long long)cs->bytes,
                         (unsigned long long)cs->evicted);
    }
    wf_strbuf_puts(&b, "# HELP weft_http_request_seconds Time from request to answer.\n"
                       "# TYPE weft_http_request_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < LAT_BUCKETS; i++) {
        cum += l->lat[i];
        wf_strbuf_printf(&b, "weft_http_request_seconds_bucket{le=\"%g\"} %llu\n", lat_bounds[i],
                         (unsigned long long)cum);
    }
    cum += l->lat[LAT_BUCKETS];
    wf_strbuf_printf(&b,
                     "weft_http_request_seconds_bucket{le=\"+Inf\"} %llu\n"
                     "weft_http_request_seconds_sum %g\nweft_http_request_seconds_count %llu\n",
                     (unsigned long long)cum, l->lat_sum, (unsigned long long)l->lat_count);
    wf_strbuf_puts(&b, "# HELP weft_mailbox_depth Messages waiting, per actor.\n"
                       "# TYPE weft_mailbox_depth gauge\n");
    const char *actors[] = {l->cfg->cache, l->cfg->renderer};
    wf_strbuf_printf(&b, "weft_mailbox_depth{actor=\"listener\"} %zu\n",
                     wf_mailbox_depth(l->node, l->self));
    for (int i = 0; i < 2; i++) {
        if (strchr(actors[i], '@') == NULL)
            wf_strbuf_printf(&b, "weft_mailbox_depth{actor=\"%s\"} %zu\n", actors[i],
                             wf_mailbox_depth(l->node, wf_lookup(l->node, actors[i])));
    }
    wf_strbuf_printf(&b,
                     "# TYPE weft_connections gauge\nweft_connections %u\n"
                     "# TYPE weft_poetry_served_total counter\nweft_poetry_served_total %llu\n",
                     l->nconns, (unsigned long long)l->poetry_served);
    size_t n = b.len;
    char *text = wf_strbuf_finish(&b);
    respond(r, 200, "text/plain; version=0.0.4", text ? text : "", text ? n : 0, NULL);
    wf_free(text);
}

static wf_result got_stats(wf_result res, void *arg)
{
    struct req *r = arg;
    if (r->l != NULL) {
        wf_cache_stats cs;
        bool ok = wf_result_is_msg(res) && wf_msg_len(res.u.ptr) == sizeof cs;
        if (ok)
            memcpy(&cs, wf_msg_body(res.u.ptr), sizeof cs);
        metrics(r->l, r, ok ? &cs : NULL);
    }
    wf_result_free(res);
    return wf_result_none();
}

/* ---- parsing ---- */

static void bad_request(struct conn *c, int status, const char *why)
{
    struct req *r = req_new(c);
    c->close_after = true;
    if (r == NULL) {
        conn_close(c);
        return;
    }
    r->keep_alive = false;
    respond_plain_error(r, status, why, NULL, NULL);
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    flush(c);
}

static int on_message_begin(http_parser *p)
{
    struct conn *c = p->data;
    c->in_request = true;
    c->headers_done = false;
    c->url_len = c->header_bytes = c->body_bytes = c->cookie_len = c->field_len = 0;
    c->traceparent_len = 0;
    c->after_value = c->too_big_header = c->too_big_body = c->traceparent_over = false;
    return 0;
}

static int header_bytes(struct conn *c, size_t n)
{
    c->header_bytes += n;
    if (c->header_bytes > c->l->max_header) {
        c->too_big_header = true;
        return -1;
    }
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    if (header_bytes(c, n) != 0 || c->url_len + n >= URL_MAX) {
        c->too_big_header = true;
        return -1;
    }
    memcpy(c->url + c->url_len, at, n);
    c->url_len += n;
    c->url[c->url_len] = '\0';
    return 0;
}

/* Appends at[0..n) to the string buf (of *len bytes, size bytes of room),
 * cutting what does not fit: a header may arrive in pieces. */
static void append_cut(char *buf, size_t size, size_t *len, const char *at, size_t n)
{
    size_t k = n < size - 1 - *len ? n : size - 1 - *len;
    memcpy(buf + *len, at, k);
    *len += k;
    buf[*len] = '\0';
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    if (header_bytes(c, n) != 0)
        return -1;
    if (c->after_value)
        c->field_len = 0; /* a new field starts */
    c->after_value = false;
    append_cut(c->field, sizeof c->field, &c->field_len, at, n);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    if (header_bytes(c, n) != 0)
        return -1;
    if (strcasecmp(c->field, "cookie") == 0) {
        append_cut(c->cookie, sizeof c->cookie, &c->cookie_len, at, n);
    } else if (strcasecmp(c->field, "traceparent") == 0) {
        /* A value longer than a traceparent is not one: ignored. */
        if (c->traceparent_len + n >= sizeof c->traceparent) {
            c->traceparent_over = true;
        } else {
            memcpy(c->traceparent + c->traceparent_len, at, n);
            c->traceparent_len += n;
        }
    }
    c->after_value = true; /* the next field callback starts a new field */
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct conn *c = p->data;
    c->headers_done = true;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    c->body_bytes += n;
    if (c->body_bytes > c->l->max_body) {
        c->too_big_body = true;
        return -1;
    }
    return 0;
}

static void session_from_cookie(const char *cookie, char out[33])
{
    const char *s = strstr(cookie, "weft_session=");
    out[0] = '\0';
    if (s != NULL) {
        s += 13;
        size_t n = strspn(s, "0123456789abcdef");
        if (n == 32) {
            memcpy(out, s, 32);
            out[32] = '\0';
        }
    }
}

static void handle_request(struct conn *c, struct req *r, http_parser *p);

static int on_message_complete(http_parser *p)
{
    struct conn *c = p->data;
    struct lst *l = c->l;
    c->in_request = false;
    struct req *r = req_new(c);
    if (r == NULL)
        return -1;
    /* The request is a span: a child of the caller's when it sent a valid
     * traceparent, else a new trace. What the listener asks on its behalf
     * continues it. */
    wf_trace_ctx parent, *pp = NULL;
    if (c->traceparent_len > 0 && !c->traceparent_over &&
        wf_traceparent_parse(c->traceparent, c->traceparent_len, &parent) == 0)
        pp = &parent;
    wf_trace_ctx prev = wf_trace_begin(l->node, pp, &r->span);
    if (r->span.flags & WF_TRACE_SAMPLED) {
        char label[URL_MAX + 16];
        snprintf(label, sizeof label, "%s %s", http_method_str(p->method), c->url);
        wf_trace_note(l->node, "recv", l->self, &r->span, label, c->body_bytes);
    }
    handle_request(c, r, p);
    wf_trace_end(l->node, &prev);
    return 0;
}

/* The value of key in a query string, %XX-decoded, into out; false if
 * absent. */
static bool query_get(const char *q, const char *key, char *out, size_t size)
{
    size_t kl = strlen(key);
    for (const char *p = q; p != NULL && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        if (strncmp(p, key, kl) != 0 || p[kl] != '=')
            continue;
        size_t n = 0;
        for (p += kl + 1; *p && *p != '&' && n + 1 < size; p++) {
            unsigned hi, lo;
            if (*p == '%' && sscanf(p + 1, "%1x%1x", &hi, &lo) == 2) {
                out[n++] = (char)(hi << 4 | lo);
                p += 2;
            } else {
                out[n++] = *p == '+' ? ' ' : *p;
            }
        }
        out[n] = '\0';
        return true;
    }
    return false;
}

/* GET /trace shows the node's tracing; with ?sample=&actors=&types= it
 * changes them (what is not given keeps its value). */
static void trace_control(struct lst *l, struct req *r, const char *q)
{
    char now[512], sample[32], actors[256], types[256];
    wf_node_trace_describe(l->node, now, sizeof now);
    bool has_s = q != NULL && query_get(q, "sample", sample, sizeof sample);
    bool has_a = q != NULL && query_get(q, "actors", actors, sizeof actors);
    bool has_t = q != NULL && query_get(q, "types", types, sizeof types);
    if (has_s || has_a || has_t) {
        char *end = NULL;
        double s = has_s ? strtod(sample, &end) : WF_TRACE_KEEP;
        int rv =
            has_s && (*end != '\0' || end == sample || s < 0)
                ? WF_EINVAL
                : wf_node_trace_filter(l->node, s, has_a ? actors : NULL, has_t ? types : NULL);
        if (rv != 0) {
            char msg[128];
            snprintf(msg, sizeof msg, "tracing not changed: %s\n",
                     rv == WF_ESTATE ? "this node does not trace" : "bad sample, actors or types");
            respond(r, rv == WF_ESTATE ? 409 : 400, "text/plain", msg, strlen(msg), NULL);
            return;
        }
        wf_node_trace_describe(l->node, now, sizeof now);
    }
    size_t n = strlen(now);
    now[n] = '\n';
    respond(r, 200, "text/plain", now, n + 1, NULL);
}

static void handle_request(struct conn *c, struct req *r, http_parser *p)
{
    struct lst *l = c->l;
    r->keep_alive = http_should_keep_alive(p);
    r->head_only = p->method == HTTP_HEAD;
    if (!r->keep_alive)
        c->close_after = true;
    session_from_cookie(c->cookie, r->session);
    /* The path and, for tests, ?fault=STAGE. */
    char *q = strchr(c->url, '?');
    if (q != NULL) {
        *q++ = '\0';
        const char *f = strstr(q, "fault=");
        if (f != NULL && l->cfg->allow_faults)
            snprintf(r->fault, sizeof r->fault, "%.*s", (int)strcspn(f + 6, "&"), f + 6);
    }
    if (p->method != HTTP_GET && p->method != HTTP_HEAD) {
        respond_plain_error(r, 405, "only GET and HEAD are served here", NULL, NULL);
    } else if (strcmp(c->url, "/trace") == 0 && l->cfg->trace_control) {
        trace_control(l, r, q);
    } else if (strcmp(c->url, "/healthz") == 0) {
        respond(r, 200, "text/plain", "ok\n", 3, NULL);
    } else if (strcmp(c->url, "/metrics") == 0) {
        wf_pid cache = wf_resolve(l->node, l->cfg->cache);
        wf_deferred *d =
            wf_ask_as(l->node, l->self, cache, wf_msg_new(WF_CACHE_STATS, NULL, 0), 1000);
        r->chain = wf_deferred_ref(d);
        wf_deferred_add_both(d, got_stats, r);
        wf_deferred_add_both(d, request_done, r);
        wf_deferred_release(d);
        return;
    } else if (strcmp(c->url, "/") == 0) {
        char loc[300];
        snprintf(loc, sizeof loc, "Location: /poems/%s\r\n",
                 l->cfg->poetry_default ? l->cfg->poetry_default : "ozymandias");
        respond(r, 302, "text/plain", "", 0, loc);
    } else if (strncmp(c->url, "/poems/", 7) == 0 && strlen(c->url + 7) > 0 &&
               strlen(c->url + 7) <= NAME_MAX_LEN) {
        snprintf(r->name, sizeof r->name, "%s", c->url + 7);
        dispatch_poem(l, r);
        return;
    } else {
        respond_plain_error(r, 404, "no such page; poems are at /poems/NAME", NULL, NULL);
    }
    flush(c);
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- connections ---- */

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles == 0)
        wf_free(c);
}

static void conn_close(struct conn *c)
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
                req_free(r);
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
    if (c->in_request) {
        /* A client that cannot finish its headers in time does not keep
         * the connection. */
        bad_request(c, 408, "the request took too long to arrive");
    } else if (c->head == NULL) {
        conn_close(c); /* idle keep-alive connection */
    }
}

static void arm_idle(struct conn *c)
{
    if (c->l != NULL && !c->closing)
        uv_timer_start(&c->timer, on_timeout, c->l->idle_to, 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
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
        conn_close(c);
        return;
    }
    if (n == 0 || c->closing || c->close_after || c->l == NULL)
        return;
    if (!c->in_request)
        uv_timer_start(&c->timer, on_timeout, c->l->header_to, 0);
    size_t used = http_parser_execute(&c->parser, &settings, buf->base, (size_t)n);
    if (c->closing)
        return;
    if (c->too_big_header) {
        bad_request(c, 431, "request line and headers too large");
    } else if (c->too_big_body) {
        bad_request(c, 413, "request body too large");
    } else if (used != (size_t)n || HTTP_PARSER_ERRNO(&c->parser) != HPE_OK) {
        if (!c->close_after)
            bad_request(c, 400, http_errno_description(HTTP_PARSER_ERRNO(&c->parser)));
    } else if (c->in_request && c->headers_done) {
        uv_timer_stop(&c->timer); /* headers arrived: the deadline takes over */
    }
    if (!c->closing && c->inflight >= c->l->max_pipe && c->reading) {
        uv_read_stop(s); /* back-pressure: answer what we have first */
        c->paused = true;
    }
}

/* ---- the poetry port ---- */

struct poetry_write {
    uv_write_t w;
    struct conn *c;
    wf_msg *m;
};

static void poetry_written(uv_write_t *w, int status)
{
    struct poetry_write *pw = w->data;
    wf_msg_free(pw->m);
    conn_close(pw->c);
    wf_free(pw);
}

static wf_result poetry_got(wf_result res, void *arg)
{
    struct conn *c = arg;
    if (c->poetry_ask != NULL) {
        wf_deferred_release(c->poetry_ask); /* its run still holds it */
        c->poetry_ask = NULL;
    }
    if (c->l != NULL)
        wf_trace_note(c->l->node, wf_result_is_msg(res) ? "reply" : "fail", c->l->self, &c->pspan,
                      "poem", wf_result_is_msg(res) ? wf_msg_len(res.u.ptr) : 0);
    if (c->closing || !wf_result_is_msg(res)) {
        if (c->l != NULL && !wf_result_is_msg(res))
            c->l->poetry_failed++;
        if (!c->closing)
            conn_close(c); /* the protocol has no error: an empty poem */
        wf_result_free(res);
        return wf_result_none();
    }
    wf_cache_reply head;
    const void *v;
    size_t len;
    struct poetry_write *pw = wf_malloc(sizeof *pw);
    if (pw == NULL || wf_cache_reply_parse(res.u.ptr, &head, &v, &len) != 0) {
        wf_free(pw);
        wf_result_free(res);
        conn_close(c);
        return wf_result_none();
    }
    pw->c = c;
    pw->m = wf_result_take_ptr(&res);
    pw->w.data = pw;
    uv_buf_t b = uv_buf_init((char *)v, (unsigned)len);
    if (c->l != NULL)
        c->l->poetry_served++;
    if (uv_write(&pw->w, (uv_stream_t *)&c->tcp, &b, 1, poetry_written) != 0) {
        wf_msg_free(pw->m);
        wf_free(pw);
        conn_close(c);
    }
    return wf_result_none();
}

static void on_poetry_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n < 0)
        conn_close(s->data); /* the client left before its poem */
}

/* ---- accepting ---- */

static void on_connection(uv_stream_t *server, int status)
{
    struct lst *l = server->data;
    if (status < 0 || l == NULL)
        return;
    struct conn *c = wf_malloc(sizeof *c);
    if (c == NULL)
        return;
    memset(c, 0, sizeof *c);
    c->l = l;
    c->poetry = server == (uv_stream_t *)l->poetry;
    uv_tcp_init(wf_node_loop(l->node), &c->tcp);
    uv_timer_init(wf_node_loop(l->node), &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    l->nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (c->poetry) {
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_poetry_read);
        wf_pid cache = wf_resolve(l->node, l->cfg->cache);
        const char *name = l->cfg->poetry_default ? l->cfg->poetry_default : "ozymandias";
        wf_trace_ctx prev = wf_trace_begin(l->node, NULL, &c->pspan);
        wf_trace_note(l->node, "recv", l->self, &c->pspan, "poetry connection", 0);
        wf_deferred *d = wf_ask_as(l->node, l->self, cache,
                                   wf_msg_new(WF_CACHE_GET, name, strlen(name)), l->deadline);
        wf_trace_end(l->node, &prev);
        c->poetry_ask = d;
        wf_deferred_add_both(d, poetry_got, c);
        return;
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    if (l->nconns > l->max_conn) {
        bad_request(c, 503, "too many connections; try again shortly");
        return;
    }
    arm_idle(c);
    c->reading = true;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void free_handle(uv_handle_t *h)
{
    wf_free(h);
}

static int listen_on(struct lst *l, const char *addr, uv_tcp_t **out, uint16_t *port)
{
    char host[64];
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || (size_t)(colon - addr) >= sizeof host)
        return WF_EINVAL;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    struct sockaddr_in sa;
    if (uv_ip4_addr(host, atoi(colon + 1), &sa) != 0)
        return WF_EINVAL;
    uv_tcp_t *t = wf_malloc(sizeof *t);
    if (t == NULL)
        return WF_ENOMEM;
    uv_tcp_init(wf_node_loop(l->node), t);
    t->data = l;
    int rv = uv_tcp_bind(t, (struct sockaddr *)&sa, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)t, 511, on_connection);
    if (rv != 0) {
        wf_log(WF_LOG_ERROR, "listener: cannot listen on %s: %s", addr, uv_strerror(rv));
        uv_close((uv_handle_t *)t, free_handle);
        return WF_EINVAL;
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(t, (struct sockaddr *)&bound, &len);
    *port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    *out = t;
    return 0;
}

static wf_result on_ports(wf_ctx *ctx, wf_msg *m)
{
    struct lst *l = wf_ctx_state(ctx);
    uint16_t ports[2] = {l->http_port, l->poetry_port};
    return wf_result_msg(wf_msg_new(WF_LISTENER_PORTS, ports, sizeof ports));
}

static void close_server(uv_tcp_t *t)
{
    if (t != NULL) {
        t->data = NULL;
        uv_close((uv_handle_t *)t, free_handle);
    }
}

static int listener_init(wf_ctx *ctx, void *arg)
{
    struct lst *l = wf_ctx_state(ctx);
    const wf_listener_config *cfg = arg;
    if (cfg == NULL || cfg->cache == NULL || cfg->renderer == NULL)
        return WF_EINVAL;
    l->cfg = cfg;
    l->node = wf_ctx_node(ctx);
    l->self = wf_ctx_self(ctx);
    l->deadline = cfg->deadline_ms ? cfg->deadline_ms : 10000;
    l->header_to = cfg->header_timeout_ms ? cfg->header_timeout_ms : 10000;
    l->idle_to = cfg->idle_timeout_ms ? cfg->idle_timeout_ms : 30000;
    l->max_header = cfg->max_header ? cfg->max_header : 8192;
    l->max_body = cfg->max_body ? cfg->max_body : (size_t)1 << 20;
    l->max_conn = cfg->max_connections ? cfg->max_connections : 1024;
    l->max_pipe = cfg->max_pipeline ? cfg->max_pipeline : 32;
    int rv = 0;
    if (cfg->http_addr != NULL)
        rv = listen_on(l, cfg->http_addr, &l->http, &l->http_port);
    if (rv == 0 && cfg->poetry_addr != NULL)
        rv = listen_on(l, cfg->poetry_addr, &l->poetry, &l->poetry_port);
    if (rv != 0) {
        close_server(l->http);
        return rv;
    }
    return 0;
}

static void listener_terminate(wf_ctx *ctx, const wf_failure *reason)
{
    struct lst *l = wf_ctx_state(ctx);
    close_server(l->http);
    close_server(l->poetry);
    while (l->conns != NULL) {
        struct conn *c = l->conns;
        conn_close(c); /* unlinks it */
        c->l = NULL;
    }
    /* Requests still in flight outlive the state: cut them loose. */
    for (struct req *r = l->reqs; r != NULL; r = r->gnext)
        r->l = NULL;
    l->reqs = NULL;
}

static const wf_handler listener_handlers[] = {{WF_LISTENER_PORTS, "ports", on_ports, 0}};

const wf_behaviour wf_listener_behaviour = {
    .name = "listener",
    .state_size = sizeof(struct lst),
    .init = listener_init,
    .terminate = listener_terminate,
    .handlers = listener_handlers,
    .nhandlers = sizeof listener_handlers / sizeof listener_handlers[0],
};
