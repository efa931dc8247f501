/* The fetcher actor (see weft/fetcher.h): one libuv TCP connection per
 * fetch, on the node's loop, at most max_connections at once (the rest wait
 * in order). Each fetch's deferred fires exactly once; cancelling it closes
 * the connection. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <weft/alloc.h>
#include <weft/fetcher.h>

#include "client.h"
#include "tcp.h"

#define NAME_MAX_LEN 200

struct job;

struct fetcher {
    const wf_fetcher_config *cfg;
    wf_node *node;
    bool http;
    struct sockaddr_storage addr;
    char hostport[128];
    char path[256];
    uint64_t connect_to, idle_to, total_to;
    size_t max_body;
    unsigned max_conn, live;
    struct job *running, *queue_head, *queue_tail;
    char scratch[65536];
};

enum { P_QUEUED, P_CONNECT, P_READ, P_DONE };

struct job {
    struct job *next, *prev; /* running list, or queue (next only) */
    struct fetcher *f;       /* NULL once the actor stopped */
    wf_deferred *d;          /* our reference */
    int phase;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    uv_timer_t timer;
    int open_handles;
    uint64_t started;
    uint64_t total_to;    /* the fetcher's total timeout, or less: what its asker has left */
    uint64_t deadline_at; /* its request's deadline on the loop clock; 0: none */
    char req[NAME_MAX_LEN + 512];
    char *body;
    size_t len, cap;
    wf__http_client http; /* the response, in HTTP mode */
    char name[NAME_MAX_LEN + 1];
};

static void start(struct fetcher *f, struct job *j);

/* ---- ending a job ---- */

static void job_free(struct job *j)
{
    wf_deferred_release(j->d);
    wf_free(j->body);
    wf_free(j);
}

static void on_closed(uv_handle_t *h)
{
    struct job *j = h->data;
    if (--j->open_handles == 0)
        job_free(j);
}

static void unlink_running(struct fetcher *f, struct job *j)
{
    *(j->prev ? &j->prev->next : &f->running) = j->next;
    if (j->next)
        j->next->prev = j->prev;
    f->live--;
}

/* Fires j's deferred with r (unless something already did) and lets the
 * next queued fetch start. */
static void finish(struct job *j, wf_result r)
{
    if (j->phase == P_DONE) {
        wf_result_free(r);
        return;
    }
    bool had_io = j->phase != P_QUEUED;
    j->phase = P_DONE;
    struct fetcher *f = j->f;
    if (f != NULL && had_io)
        unlink_running(f, j);
    if (wf_deferred_called(j->d))
        wf_result_free(r); /* cancelled meanwhile */
    else
        wf_deferred_callback(j->d, r);
    if (had_io) {
        uv_read_stop((uv_stream_t *)&j->tcp);
        uv_close((uv_handle_t *)&j->tcp, on_closed);
        uv_close((uv_handle_t *)&j->timer, on_closed);
    } else {
        job_free(j); /* it never opened a handle */
    }
    if (f != NULL && f->queue_head != NULL && f->live < f->max_conn) {
        struct job *next = f->queue_head;
        f->queue_head = next->next;
        if (f->queue_head == NULL)
            f->queue_tail = NULL;
        start(f, next);
    }
}

static void fail(struct job *j, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct job *j, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    finish(j, wf_result_failure(wf_failure_new(code, "fetch %s from %s: %s", j->name,
                                               j->f ? j->f->hostport : "?", msg)));
}

static void fail_uv(struct job *j, int err)
{
    if (err == UV_ECONNREFUSED)
        fail(j, WF_EUPSTREAM, "connection refused");
    else if (err == UV_ECONNRESET)
        fail(j, WF_EUPSTREAM, "connection reset");
    else
        fail(j, WF_EUPSTREAM, "%s", uv_strerror(err));
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *t)
{
    struct job *j = t->data;
    struct fetcher *f = j->f;
    if (f == NULL)
        return;
    uint64_t now = uv_now(wf_node_loop(f->node));
    if (j->phase == P_CONNECT)
        fail(j, WF_ETIMEDOUT, "connect timed out after %llu ms", (unsigned long long)f->connect_to);
    else if (now - j->started >= j->total_to)
        fail(j, WF_ETIMEDOUT, "no complete answer within %llu ms%s",
             (unsigned long long)j->total_to,
             j->total_to < f->total_to ? " (its request's deadline)" : "");
    else
        fail(j, WF_ETIMEDOUT, "upstream silent for %llu ms", (unsigned long long)f->idle_to);
}

/* Arms the timer for whichever deadline comes first. */
static void arm(struct job *j, uint64_t phase_ms)
{
    uint64_t now = uv_now(wf_node_loop(j->f->node));
    uint64_t left = j->started + j->total_to > now ? j->started + j->total_to - now : 0;
    uv_timer_start(&j->timer, on_timer, phase_ms < left ? phase_ms : left, 0);
}

/* ---- reading ---- */

static int append(struct job *j, const char *data, size_t n)
{
    if (j->len + n > j->f->max_body)
        return -1;
    if (j->len + n > j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 4096;
        while (cap < j->len + n)
            cap *= 2;
        char *b = wf_realloc(j->body, cap);
        if (b == NULL)
            return -1;
        j->body = b;
        j->cap = cap;
    }
    memcpy(j->body + j->len, data, n);
    j->len += n;
    return 0;
}

static int on_body(void *arg, const char *at, size_t n)
{
    return append(arg, at, n);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    /* Reads are consumed at once, so one buffer per fetcher does. Reading
     * stops before a job loses its fetcher. */
    struct job *j = h->data;
    buf->base = j->f->scratch;
    buf->len = sizeof j->f->scratch;
}

static void succeed(struct job *j)
{
    wf_msg *m = wf_msg_new(WF_FETCH_GET, j->body, j->len);
    finish(j, m ? wf_result_msg(m) : WF_FAIL(WF_ENOMEM, "no memory for a fetched body"));
}

/* A complete HTTP response: only a 200 is the document; 404 and 410 are
 * the upstream saying there is no such document (an answer, not a fault). */
static void http_done(struct job *j)
{
    int status = wf__http_client_status(&j->http);
    if (status == 404 || status == 410)
        fail(j, WF_ENOTFOUND, "HTTP %d", status);
    else if (status != 200)
        fail(j, WF_EUPSTREAM, "HTTP %d", status);
    else
        succeed(j);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct job *j = s->data;
    if (j->phase != P_READ || j->f == NULL)
        return;
    if (n > 0) {
        arm(j, j->f->idle_to);
        if (j->f->http) {
            int bad = wf__http_client_feed(&j->http, buf->base, (size_t)n);
            if (bad && j->len >= j->f->max_body) {
                fail(j, WF_EUPSTREAM, "body larger than %zu bytes", j->f->max_body);
            } else if (bad) {
                fail(j, WF_EUPSTREAM, "bad HTTP response: %s", wf__http_client_error(&j->http));
            } else if (wf__http_client_complete(&j->http)) {
                http_done(j);
            }
        } else if (append(j, buf->base, (size_t)n) != 0) {
            fail(j, WF_EUPSTREAM, "poem larger than %zu bytes", j->f->max_body);
        }
        return;
    }
    if (n == 0)
        return;
    if (n != UV_EOF) {
        fail_uv(j, (int)n);
    } else if (wf__tcp_was_reset(&j->tcp)) {
        /* Never a whole answer, whatever came before. */
        fail(j, WF_EUPSTREAM, "connection reset after %zu bytes", j->len);
    } else if (j->f->http) {
        wf__http_client_feed(&j->http, NULL, 0); /* EOF may end the body */
        if (!wf__http_client_complete(&j->http))
            fail(j, WF_EUPSTREAM, "response cut short");
        else
            http_done(j);
    } else if (j->len == 0) {
        /* The poetry protocol's "no such poem": a clean close with no
         * data (a server that is full or failing resets instead). */
        fail(j, WF_ENOTFOUND, "empty poem (no such poem)");
    } else {
        succeed(j);
    }
}

/* ---- connecting ---- */

static void on_written(uv_write_t *w, int status)
{
    struct job *j = w->data;
    if (status < 0 && status != UV_ECANCELED && j->phase == P_READ)
        fail_uv(j, status);
}

static void on_connect(uv_connect_t *c, int status)
{
    struct job *j = c->data;
    if (j->phase != P_CONNECT || j->f == NULL)
        return;
    if (status < 0) {
        fail_uv(j, status);
        return;
    }
    struct fetcher *f = j->f;
    j->phase = P_READ;
    arm(j, f->idle_to);
    size_t n = 0;
    if (f->http)
        n = (size_t)snprintf(j->req, sizeof j->req,
                             "GET %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: weft-fetcher\r\n"
                             "Connection: close\r\n\r\n",
                             f->path, j->name, f->hostport);
    else if (f->cfg->send_name)
        n = (size_t)snprintf(j->req, sizeof j->req, "%s\n", j->name);
    if (n > 0) {
        uv_buf_t b = uv_buf_init(j->req, (unsigned)n);
        j->wreq.data = j;
        uv_write(&j->wreq, (uv_stream_t *)&j->tcp, &b, 1, on_written);
    }
    uv_read_start((uv_stream_t *)&j->tcp, on_alloc, on_read);
}

static void start(struct fetcher *f, struct job *j)
{
    uv_loop_t *loop = wf_node_loop(f->node);
    j->phase = P_CONNECT;
    j->started = uv_now(loop);
    j->total_to = f->total_to;
    if (j->deadline_at != 0) {
        uint64_t left = j->deadline_at > j->started ? j->deadline_at - j->started : 0;
        if (left < j->total_to)
            j->total_to = left;
    }
    j->next = f->running;
    j->prev = NULL;
    if (f->running)
        f->running->prev = j;
    f->running = j;
    f->live++;
    uv_tcp_init(loop, &j->tcp);
    uv_timer_init(loop, &j->timer);
    j->tcp.data = j->timer.data = j->creq.data = j;
    j->open_handles = 2;
    if (f->http)
        wf__http_client_init(&j->http, on_body, j);
    arm(j, f->connect_to);
    int rv = uv_tcp_connect(&j->creq, &j->tcp, (struct sockaddr *)&f->addr, on_connect);
    if (rv < 0)
        fail_uv(j, rv);
}

static void job_cancel(wf_deferred *d, void *arg)
{
    struct job *j = arg;
    struct fetcher *f = j->f;
    if (j->phase == P_QUEUED && f != NULL) {
        /* Take it out of the queue. */
        struct job **pp = &f->queue_head, *before = NULL;
        while (*pp != NULL && *pp != j) {
            before = *pp;
            pp = &before->next;
        }
        if (*pp == j) {
            *pp = j->next;
            if (f->queue_tail == j)
                f->queue_tail = before;
        }
    }
    fail(j, WF_ECANCELED, "cancelled");
}

/* ---- the actor ---- */

static bool valid_name(const char *s, size_t n)
{
    if (n == 0 || n > NAME_MAX_LEN || (n >= 2 && memcmp(s, "..", 2) == 0))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c >= 127 || c == '/' || c == '\\' || c == '%' || c == '?' || c == '#')
            return false;
    }
    return true;
}

static wf_result on_get(wf_ctx *ctx, wf_msg *m)
{
    struct fetcher *f = wf_ctx_state(ctx);
    const char *name = wf_msg_body(m);
    size_t n = wf_msg_len(m);
    if (!valid_name(name, n))
        return WF_FAIL(WF_EINVAL, "not a poem name: %.*s", (int)(n < 64 ? n : 64), name);
    struct job *j = wf_malloc(sizeof *j);
    if (j == NULL)
        return WF_FAIL(WF_ENOMEM, "no memory for a fetch");
    memset(j, 0, sizeof *j);
    memcpy(j->name, name, n);
    j->f = f;
    /* No fetch outlives the request it is for; one queued behind others
     * has less left when it starts (start). */
    uint64_t left = wf_ctx_time_left(ctx);
    if (left != UINT64_MAX)
        j->deadline_at = uv_now(wf_node_loop(f->node)) + left;
    j->phase = P_QUEUED;
    j->d = wf_deferred_new_cancellable(job_cancel, j);
    if (j->d == NULL) {
        wf_free(j);
        return WF_FAIL(WF_ENOMEM, "no memory for a fetch");
    }
    wf_deferred *out = wf_deferred_ref(j->d);
    if (f->live < f->max_conn) {
        start(f, j);
    } else {
        *(f->queue_tail ? &f->queue_tail->next : &f->queue_head) = j;
        f->queue_tail = j;
    }
    return wf_result_deferred(out);
}

static int parse_upstream(struct fetcher *f, const char *url)
{
    const char *rest;
    if (strncmp(url, "poetry://", 9) == 0) {
        rest = url + 9;
    } else if (strncmp(url, "http://", 7) == 0) {
        f->http = true;
        rest = url + 7;
    } else {
        return WF_EINVAL;
    }
    const char *slash = strchr(rest, '/');
    size_t hl = slash ? (size_t)(slash - rest) : strlen(rest);
    if (hl == 0 || hl >= sizeof f->hostport)
        return WF_EINVAL;
    memcpy(f->hostport, rest, hl);
    f->hostport[hl] = '\0';
    snprintf(f->path, sizeof f->path, "%s", slash ? slash : "/");
    return wf__tcp_addr_parse(f->hostport, &f->addr);
}

static int fetcher_init(wf_ctx *ctx, void *arg)
{
    struct fetcher *f = wf_ctx_state(ctx);
    const wf_fetcher_config *cfg = arg;
    if (cfg == NULL || cfg->upstream == NULL || parse_upstream(f, cfg->upstream) != 0)
        return WF_EINVAL;
    f->cfg = cfg;
    f->node = wf_ctx_node(ctx);
    f->connect_to = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 2000;
    f->idle_to = cfg->idle_timeout_ms ? cfg->idle_timeout_ms : 5000;
    f->total_to = cfg->total_timeout_ms ? cfg->total_timeout_ms : 30000;
    f->max_body = cfg->max_body ? cfg->max_body : (size_t)1 << 20;
    f->max_conn = cfg->max_connections ? cfg->max_connections : 16;
    return 0;
}

static void fetcher_terminate(wf_ctx *ctx, const wf_failure *reason)
{
    struct fetcher *f = wf_ctx_state(ctx);
    /* The state goes now: every fetch still under way or waiting ends here
     * (its asker was already told the actor stopped). */
    while (f->queue_head != NULL) {
        struct job *j = f->queue_head;
        f->queue_head = j->next;
        j->f = NULL;
        finish(j, WF_FAIL(WF_EACTORSTOPPED, "fetcher stopped"));
    }
    while (f->running != NULL) {
        struct job *j = f->running;
        unlink_running(f, j);
        j->f = NULL;
        finish(j, WF_FAIL(WF_EACTORSTOPPED, "fetcher stopped"));
    }
}

static const wf_handler fetcher_handlers[] = {{WF_FETCH_GET, "fetch", on_get, 0}};

const wf_behaviour wf_fetcher_behaviour = {
    .name = "fetcher",
    .state_size = sizeof(struct fetcher),
    .init = fetcher_init,
    .terminate = fetcher_terminate,
    .handlers = fetcher_handlers,
    .nhandlers = sizeof fetcher_handlers / sizeof fetcher_handlers[0],
};
