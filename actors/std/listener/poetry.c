/* The raw poetry port of the Twisted tutorial: a client connects and gets
 * the default poem from the cache, then the connection closes. The
 * protocol has no error message: a poem that does not exist is an empty
 * one (a clean close), and any other failure resets the connection, so
 * that a client cannot take it for an answer. Each failure is counted and
 * logged (rate-limited like the HTTP port's). A client may shut its side
 * down at once (it has nothing to say): it still gets the poem. The write
 * is bounded by the write timeout (conn.c). */
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include <weft/alloc.h>
#include <weft/log.h>

#include "listener_private.h"

struct poetry_write {
    uv_write_t w;
    struct conn *c;
    wf_msg *m;
    size_t held; /* counted in lst.out_held */
};

static void poetry_written(uv_write_t *w, int status)
{
    struct poetry_write *pw = w->data;
    struct conn *c = pw->c;
    if (c->l != NULL)
        c->l->out_held -= pw->held;
    if (!c->closing) {
        c->writing = 0;
        if (status < 0 && c->l != NULL)
            c->l->lost[1]++;
    }
    wf_msg_free(pw->m);
    wf__lst_conn_close(c);
    wf_free(pw);
}

/* A client of the poetry port gets no poem: counted, logged, and told by
 * a reset unless the poem does not exist (fl NULL: no memory, or a reply
 * that is not a cache reply). */
static void poetry_failed(struct conn *c, const wf_failure *fl)
{
    struct lst *l = c->l;
    int code = fl != NULL ? wf_failure_code(fl) : WF_ENOMEM;
    char key[WF__RATELOG_KEY_MAX], note[WF__RATELOG_NOTE_MAX];
    l->poetry_failed++;
    c->reset_on_close = code != WF_ENOTFOUND;
    wf__lst_log_flush(l);
    snprintf(key, sizeof key, "poetry %s", wf_errname(code));
    if (wf__ratelog_pass(&l->failure_log, key, uv_hrtime() / 1000000, note, sizeof note))
        wf_log(code == WF_ENOTFOUND ? WF_LOG_INFO : WF_LOG_WARN,
               "poetry-port client got no poem (%s): %s: %s%s",
               code == WF_ENOTFOUND ? "closed empty" : "reset", wf_errname(code),
               fl != NULL ? wf_failure_message(fl) : "no memory or a malformed cache reply", note);
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
        if (!c->closing && c->l != NULL)
            poetry_failed(c, wf_result_is_failure(res) ? res.u.failure : NULL);
        if (!c->closing)
            wf__lst_conn_close(c);
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
        if (c->l != NULL)
            poetry_failed(c, NULL);
        wf__lst_conn_close(c);
        return wf_result_none();
    }
    pw->c = c;
    pw->m = wf_result_take_ptr(&res);
    pw->w.data = pw;
    uv_buf_t b = uv_buf_init((char *)v, (unsigned)len);
    if (uv_write(&pw->w, (uv_stream_t *)&c->tcp, &b, 1, poetry_written) != 0) {
        wf_msg_free(pw->m);
        wf_free(pw);
        if (c->l != NULL)
            c->l->lost[1]++;
        wf__lst_conn_close(c);
        return wf_result_none();
    }
    pw->held = len;
    c->writing = 1;
    if (c->l != NULL) {
        c->l->poetry_served++;
        c->l->out_held += len;
        c->last_write = c->last_active = wf__lst_now(c->l);
        c->wq_seen = c->tcp.write_queue_size;
        wf__lst_conn_arm(c);
    }
    return wf_result_none();
}

static void on_poetry_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (n == UV_EOF) {
        /* A half-close: the client has nothing to say, and still reads. */
        uv_read_stop(s);
        if (c->closing || c->l == NULL)
            return;
        if (c->poetry_ask != NULL && c->l->cfg->fin_abandons)
            wf__lst_conn_close(c); /* a hang-up: the ask is cancelled */
        else if (c->poetry_ask != NULL || c->writing > 0)
            c->l->half_closes[1]++;
    } else if (n < 0) {
        wf__lst_conn_close(c); /* the client left before its poem */
    }
}

void wf__lst_poetry_start(struct conn *c)
{
    struct lst *l = c->l;
    uv_read_start((uv_stream_t *)&c->tcp, wf__lst_on_alloc, on_poetry_read);
    const char *name = l->cfg->poetry_default ? l->cfg->poetry_default : "ozymandias";
    wf_trace_ctx prev = wf_trace_begin(l->node, NULL, &c->pspan);
    wf_trace_note(l->node, "recv", l->self, &c->pspan, "poetry connection", 0);
    wf_deferred *d = wf__lst_ask_part(l, "cache", l->cfg->cache,
                                      wf_msg_new(WF_CACHE_GET, name, strlen(name)), l->deadline);
    wf_trace_end(l->node, &prev);
    c->poetry_ask = d;
    wf_deferred_add_both(d, poetry_got, c);
}
