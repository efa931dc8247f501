/* The raw transform port, the Twisted tutorial's transform protocol: a
 * client sends netstrings "XFORM.POEM" and gets each transformed poem back
 * as a netstring, in order, through the transformer actor (and its cache).
 * Once every request received is answered, the connection closes, as the
 * tutorial's server (transformedpoetry.py) closes after its answer: its
 * transform-test (netcat -q -1) waits for that close.
 * The protocol has no error message: a malformed or oversized netstring,
 * a bad transform name or a failed transform resets the connection, so
 * that a client cannot take it for an answer; each is counted and logged
 * (rate-limited like the other ports'). One request is answered at a
 * time; while it is, at most one more request's bytes are read. Timeouts:
 * a connection with nothing under way closes after idle_timeout_ms, a
 * request must arrive whole within request_timeout_ms of its first byte,
 * an answer's write must progress within write_timeout_ms. */
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include <weft/alloc.h>
#include <weft/log.h>
#include <weft/transformer.h>

#include "listener_private.h"
#include "netstring.h"

struct xform_write {
    uv_write_t w;
    struct conn *c;
    wf_msg *m;
    char head[WF__NS_HEAD_MAX];
    size_t held; /* counted in lst.out_held */
};

static void xform_next(struct conn *c);
static void xform_arm(struct conn *c);
static void on_xform_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/* The most a transform connection buffers: one whole request. */
static size_t in_limit(const struct lst *l)
{
    return l->max_body + WF__NS_HEAD_MAX + 1;
}

/* A client gets no answer: counted, logged, and told by a reset. */
static void xform_failed(struct conn *c, int code, const char *what)
{
    struct lst *l = c->l;
    char key[WF__RATELOG_KEY_MAX], note[WF__RATELOG_NOTE_MAX];
    l->xform_failed++;
    c->reset_on_close = true;
    wf__lst_log_flush(l);
    snprintf(key, sizeof key, "transform %s", wf_errname(code));
    if (wf__ratelog_pass(&l->failure_log, key, uv_hrtime() / 1000000, note, sizeof note))
        wf_log(WF_LOG_WARN, "transform-port client reset: %s: %s%s", wf_errname(code), what, note);
    wf__lst_conn_close(c);
}

static void xform_written(uv_write_t *w, int status)
{
    struct xform_write *xw = w->data;
    struct conn *c = xw->c;
    if (c->l != NULL)
        c->l->out_held -= xw->held;
    wf_msg_free(xw->m);
    wf_free(xw);
    c->writing = 0;
    if (c->closing)
        return;
    if (status < 0) {
        wf__lst_conn_close(c);
        return;
    }
    c->last_write = c->last_active = wf__lst_now(c->l);
    c->nrequests++; /* answered */
    xform_next(c);
}

static wf_result xform_got(wf_result res, void *arg)
{
    struct conn *c = arg;
    if (c->poetry_ask != NULL) {
        wf_deferred_release(c->poetry_ask); /* its run still holds it */
        c->poetry_ask = NULL;
    }
    if (c->closing || c->l == NULL) {
        wf_result_free(res);
        return wf_result_none();
    }
    if (!wf_result_is_msg(res)) {
        const wf_failure *fl = wf_result_is_failure(res) ? res.u.failure : NULL;
        xform_failed(c, fl ? wf_failure_code(fl) : WF_EPROTO,
                     fl ? wf_failure_message(fl) : "the transformer answered with no message");
        wf_result_free(res);
        return wf_result_none();
    }
    struct xform_write *xw = wf_malloc(sizeof *xw);
    if (xw == NULL) {
        wf_result_free(res);
        xform_failed(c, WF_ENOMEM, "no memory to write an answer");
        return wf_result_none();
    }
    xw->c = c;
    xw->m = wf_result_take_ptr(&res);
    xw->w.data = xw;
    size_t len = wf_msg_len(xw->m);
    size_t hl = wf__netstring_head(xw->head, len);
    uv_buf_t b[3] = {uv_buf_init(xw->head, (unsigned)hl),
                     uv_buf_init(wf_msg_body(xw->m), (unsigned)len), uv_buf_init(",", 1)};
    if (uv_write(&xw->w, (uv_stream_t *)&c->tcp, b, 3, xform_written) != 0) {
        wf_msg_free(xw->m);
        wf_free(xw);
        xform_failed(c, WF_EIO, "the answer could not be written");
        return wf_result_none();
    }
    xw->held = len;
    c->writing = 1;
    c->l->xform_served++;
    c->l->out_held += len;
    c->last_write = c->last_active = wf__lst_now(c->l);
    c->wq_seen = c->tcp.write_queue_size;
    xform_arm(c);
    return wf_result_none();
}

/* Asks the transformer for the request data[0..n), "XFORM.POEM". */
static void xform_ask(struct conn *c, const char *data, size_t n)
{
    struct lst *l = c->l;
    const char *dot = memchr(data, '.', n);
    size_t nl = dot ? (size_t)(dot - data) : 0;
    if (dot == NULL || !wf_transform_name_valid(data, nl)) {
        xform_failed(c, WF_EINVAL,
                     dot ? "not a transform name (letters, digits, _; at most 32)"
                         : "a request without '.' (not XFORM.POEM)");
        return;
    }
    char name[WF_TRANSFORM_NAME_MAX + 1];
    memcpy(name, data, nl);
    name[nl] = '\0';
    wf_msg *m = wf_transform_msg_new(name, dot + 1, n - nl - 1, (uint32_t)l->deadline);
    if (m == NULL) {
        xform_failed(c, WF_ENOMEM, "no memory for a transform request");
        return;
    }
    wf_deferred *d = wf__lst_ask_part(l, "transformer", l->cfg->transformer, m, l->deadline);
    if (d == NULL) {
        xform_failed(c, WF_ENOMEM, "no memory to ask the transformer");
        return;
    }
    c->poetry_ask = d;
    wf_deferred_add_both(d, xform_got, c);
}

/* Takes the next whole request from what was read, if nothing is under
 * way; else waits (or closes, when nothing more can come). */
static void xform_next(struct conn *c)
{
    struct lst *l = c->l;
    if (c->closing || c->poetry_ask != NULL || c->writing > 0)
        return;
    size_t start, len, used;
    int st = wf__netstring_parse(c->pend, c->pend_len, l->max_body, &start, &len, &used);
    if (st == WF__NS_MALFORMED || st == WF__NS_TOO_LARGE) {
        char what[96];
        snprintf(what, sizeof what, "%s (limit %zu bytes)", wf__netstring_what(st), l->max_body);
        xform_failed(c, WF_EINVAL, what);
        return;
    }
    if (st == WF__NS_MORE) {
        if (c->pend_len == 0 && c->nrequests > 0) {
            wf__lst_conn_close(c); /* every request answered */
            return;
        }
        if (c->eof) {
            if (c->pend_len > 0)
                xform_failed(c, WF_EINVAL, "the client closed in the middle of a request");
            else
                wf__lst_conn_close(c); /* said all it had to say, and got every answer */
            return;
        }
        if (!c->reading) {
            c->reading = true;
            uv_read_start((uv_stream_t *)&c->tcp, wf__lst_on_alloc, on_xform_read);
        }
        xform_arm(c);
        return;
    }
    xform_ask(c, c->pend + start, len);
    if (c->closing)
        return;
    /* What follows the request is the next one's. */
    memmove(c->pend, c->pend + used, c->pend_len - used);
    c->pend_len -= used;
    l->in_held -= used;
    c->req_start = wf__lst_now(l);
    xform_arm(c);
}

static void on_xform_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (c->closing || c->l == NULL || n == 0)
        return;
    struct lst *l = c->l;
    if (n == UV_EOF) {
        /* A half-close: answers still go out, then the connection closes. */
        uv_read_stop(s);
        c->reading = false;
        c->eof = true;
        if (c->poetry_ask != NULL && l->cfg->fin_abandons) {
            wf__lst_conn_close(c); /* a hang-up: the ask is cancelled */
            return;
        }
        if (c->poetry_ask != NULL || c->writing > 0)
            l->half_closes[1]++;
        xform_next(c);
        return;
    }
    if (n < 0) {
        wf__lst_conn_close(c); /* the client left */
        return;
    }
    /* One whole request is the most worth holding: anything longer is
     * refused by its length prefix, which arrives first. */
    size_t take = (size_t)n;
    if (take > in_limit(l) - c->pend_len)
        take = in_limit(l) - c->pend_len;
    char *p = wf_realloc(c->pend, c->pend_len + take + 1);
    if (p == NULL) {
        xform_failed(c, WF_ENOMEM, "no memory for a request");
        return;
    }
    if (c->pend_len == 0)
        c->req_start = wf__lst_now(l);
    memcpy(p + c->pend_len, buf->base, take);
    c->pend = p;
    c->pend_len += take;
    l->in_held += take;
    c->last_read = c->last_active = wf__lst_now(l);
    if (c->pend_len >= in_limit(l)) {
        uv_read_stop(s); /* the rest waits in the socket until this is answered */
        c->reading = false;
    }
    xform_next(c);
    if (!c->closing)
        xform_arm(c);
}

static void on_xform_timeout(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->closing || c->l == NULL)
        return;
    struct lst *l = c->l;
    uint64_t now = wf__lst_now(l);
    if (c->writing > 0) {
        if (now < c->last_write + l->write_to) {
            xform_arm(c);
            return;
        }
        size_t q = c->tcp.write_queue_size;
        if (q < c->wq_seen) {
            c->wq_seen = q; /* slow, but moving */
            c->last_write = c->last_active = now;
            xform_arm(c);
            return;
        }
        l->timeouts[TO_WRITE]++;
        wf__lst_conn_close(c);
    } else if (c->poetry_ask != NULL) {
        xform_arm(c); /* the ask has its own deadline */
    } else if (c->pend_len > 0 && now >= c->req_start + l->request_to) {
        l->timeouts[TO_REQUEST]++;
        xform_failed(c, WF_ETIMEDOUT, "the request took too long to arrive");
    } else if (c->pend_len == 0 && now >= c->last_active + l->idle_to) {
        l->timeouts[TO_IDLE]++;
        wf__lst_conn_close(c);
    } else {
        xform_arm(c);
    }
}

/* The timer for the one deadline that applies now (see on_xform_timeout). */
static void xform_arm(struct conn *c)
{
    struct lst *l = c->l;
    if (c->closing || l == NULL)
        return;
    uint64_t at;
    if (c->writing > 0)
        at = c->last_write + l->write_to;
    else if (c->poetry_ask != NULL) {
        uv_timer_stop(&c->timer);
        return;
    } else if (c->pend_len > 0)
        at = c->req_start + l->request_to;
    else
        at = c->last_active + l->idle_to;
    uint64_t now = wf__lst_now(l);
    /* Never 0: see wf__lst_conn_arm. */
    uv_timer_start(&c->timer, on_xform_timeout, at > now ? at - now : 1, 0);
}

void wf__lst_transform_start(struct conn *c)
{
    c->reading = true;
    uv_read_start((uv_stream_t *)&c->tcp, wf__lst_on_alloc, on_xform_read);
    xform_arm(c);
}
