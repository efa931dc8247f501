/* The transformer actor (see weft/transformer.h). One table holds every
 * (transform, poem) the actor knows, keyed by the bytes it sends upstream,
 * "XFORM.POEM" (a name has no '.', so the key names the pair): an entry is
 * either in flight (an upstream request and the requests waiting for it)
 * or an answer at rest (on the LRU list). Each upstream request is one
 * libuv TCP connection on the node's loop, at most max_connections at once
 * (the rest wait in order). All of it is the actor's own state: handlers,
 * libuv callbacks and cancellers all run on the loop thread, one at a
 * time. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <weft/alloc.h>
#include <weft/clock.h>
#include <weft/transformer.h>

#include "bytes.h"
#include "netstring.h"
#include "tcp.h"

struct flight;

/* One request waiting for a flight. Its deferred is the one the handler
 * returned; the waiter goes when the deferred fires, is cancelled or is
 * freed unfired (the deferred's arg_free), whichever comes first. */
struct waiter {
    struct waiter *next, *prev;
    struct flight *fl; /* NULL once answered or gone */
    wf_deferred *d;    /* borrowed: whoever waits holds it */
};

struct entry {
    struct entry *hnext;         /* hash chain */
    struct entry *lprev, *lnext; /* the LRU list, when at rest */
    struct flight *fl;           /* in flight; NULL: an answer at rest */
    uint64_t hash, expires;
    char *value;
    size_t vlen, namelen, keylen;
    char key[]; /* "XFORM.POEM" */
};

enum { P_QUEUED, P_CONNECT, P_READ, P_DONE };

struct flight {
    struct flight *next, *prev; /* the running list, or the queue (next only) */
    struct xf *x;               /* NULL once the actor stopped */
    struct entry *e;            /* what it answers; NULL once nobody waits */
    struct waiter *waiters;
    int phase;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    uv_timer_t timer;
    int open_handles;
    uint64_t started;
    char head[WF__NS_HEAD_MAX];
    char *in; /* the answer so far */
    size_t inlen, incap;
    char name[WF_TRANSFORM_NAME_MAX + 1]; /* for messages */
};

struct xf {
    const wf_transformer_config *cfg;
    wf_node *node;
    struct sockaddr_storage addr;
    uint64_t connect_to, idle_to, total_to, ttl;
    size_t max_body, max_entries, max_bytes;
    unsigned max_conn, live;
    struct flight *running, *queue_head, *queue_tail;
    struct entry **buckets;
    size_t nbuckets;
    struct entry *lru_head, *lru_tail; /* most recently used first */
    wf_transformer_stats st;
    char scratch[65536]; /* reads are consumed at once */
};

static void flight_start(struct xf *x, struct flight *fl);

/* ---- the table ---- */

static struct entry **slot(struct xf *x, uint64_t h, const char *k, size_t n)
{
    struct entry **pp = &x->buckets[h & (x->nbuckets - 1)];
    while (*pp != NULL && ((*pp)->hash != h || (*pp)->keylen != n || memcmp((*pp)->key, k, n)))
        pp = &(*pp)->hnext;
    return pp;
}

static void table_grow(struct xf *x)
{
    size_t nb = x->nbuckets * 2;
    struct entry **b = wf_malloc(nb * sizeof *b);
    if (b == NULL)
        return; /* longer chains, still correct */
    memset(b, 0, nb * sizeof *b);
    for (size_t i = 0; i < x->nbuckets; i++) {
        for (struct entry *e = x->buckets[i], *next; e != NULL; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    }
    wf_free(x->buckets);
    x->buckets = b;
    x->nbuckets = nb;
}

static void lru_unlink(struct xf *x, struct entry *e)
{
    *(e->lprev ? &e->lprev->lnext : &x->lru_head) = e->lnext;
    *(e->lnext ? &e->lnext->lprev : &x->lru_tail) = e->lprev;
    e->lprev = e->lnext = NULL;
}

static void lru_push(struct xf *x, struct entry *e)
{
    e->lprev = NULL;
    e->lnext = x->lru_head;
    *(x->lru_head ? &x->lru_head->lprev : &x->lru_tail) = e;
    x->lru_head = e;
}

static size_t entry_cost(const struct entry *e)
{
    return sizeof *e + e->keylen + e->vlen;
}

/* Takes e out of the table and frees it; a flight it had is left to end
 * on its own, answering nobody. */
static void entry_remove(struct xf *x, struct entry *e)
{
    *slot(x, e->hash, e->key, e->keylen) = e->hnext;
    if (e->fl == NULL)
        lru_unlink(x, e);
    else
        e->fl->e = NULL;
    x->st.entries--;
    x->st.bytes -= entry_cost(e);
    wf_free(e->value);
    wf_free(e);
}

/* Answers at rest go, least recently used first, until both bounds hold. */
static void evict(struct xf *x)
{
    while ((x->st.entries > x->max_entries || x->st.bytes > x->max_bytes) && x->lru_tail) {
        x->st.evicted++;
        entry_remove(x, x->lru_tail);
    }
}

/* ---- waiters ---- */

/* Takes w off its flight. A flight nobody waits for any more is not
 * wanted: its connection closes (or it leaves the queue) at once. */
static void flight_abandon(struct flight *fl);

static void waiter_leave(struct waiter *w)
{
    struct flight *fl = w->fl;
    if (fl == NULL)
        return;
    *(w->prev ? &w->prev->next : &fl->waiters) = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->fl = NULL;
    if (fl->x != NULL)
        fl->x->st.cancelled++;
    if (fl->waiters == NULL)
        flight_abandon(fl);
}

static void waiter_cancel(wf_deferred *d, void *arg)
{
    waiter_leave(arg); /* d then fails with WF_ECANCELED */
}

static void waiter_free(void *arg)
{
    waiter_leave(arg); /* freed unfired: nobody waits through it any more */
    wf_free(arg);
}

/* A private copy of f for one waiter (a failure's trace grows as it
 * passes through handlers, so one failure is never shared). */
static wf_failure *failure_for(const wf_failure *f)
{
    return wf_failure_new_bare(wf_failure_code(f), wf_failure_message(f));
}

/* Answers every waiter of the list ws (taken off its flight): with
 * value[0..len), or failure f (borrowed). */
static void answer_waiters(struct waiter *ws, const char *value, size_t len, const wf_failure *f)
{
    while (ws != NULL) {
        struct waiter *w = ws;
        ws = w->next;
        w->fl = NULL; /* firing frees w (its arg_free) */
        wf_deferred *d = w->d;
        wf_msg *m = f ? NULL : wf_msg_new(WF_TRANSFORM, value, len);
        if (f != NULL)
            wf_deferred_errback(d, failure_for(f));
        else if (m == NULL)
            wf_deferred_errback(d, wf_failure_new(WF_ENOMEM, "no memory for a transformed poem"));
        else
            wf_deferred_callback(d, wf_result_msg(m));
    }
}

/* ---- ending a flight ---- */

static void flight_free(struct flight *fl)
{
    wf_free(fl->in);
    wf_free(fl);
}

static void on_closed(uv_handle_t *h)
{
    struct flight *fl = h->data;
    if (--fl->open_handles == 0)
        flight_free(fl);
}

static void unlink_running(struct xf *x, struct flight *fl)
{
    *(fl->prev ? &fl->prev->next : &x->running) = fl->next;
    if (fl->next)
        fl->next->prev = fl->prev;
    x->live--;
}

static void unlink_queued(struct xf *x, struct flight *fl)
{
    struct flight **pp = &x->queue_head, *before = NULL;
    while (*pp != NULL && *pp != fl) {
        before = *pp;
        pp = &before->next;
    }
    if (*pp == fl) {
        *pp = fl->next;
        if (x->queue_tail == fl)
            x->queue_tail = before;
    }
}

/* Ends fl: its handles close, the next queued flight may start. Nothing
 * is answered here. */
static void flight_end(struct flight *fl)
{
    if (fl->phase == P_DONE)
        return;
    bool had_io = fl->phase != P_QUEUED;
    struct xf *x = fl->x;
    if (x != NULL && had_io)
        unlink_running(x, fl);
    else if (x != NULL)
        unlink_queued(x, fl);
    fl->phase = P_DONE;
    if (fl->e != NULL) {
        fl->e->fl = NULL;
        if (x != NULL)
            entry_remove(x, fl->e); /* an answer puts its own entry back at rest first */
        fl->e = NULL;
    }
    if (had_io) {
        uv_read_stop((uv_stream_t *)&fl->tcp);
        uv_close((uv_handle_t *)&fl->tcp, on_closed);
        uv_close((uv_handle_t *)&fl->timer, on_closed);
    } else {
        flight_free(fl);
    }
    if (x != NULL && x->queue_head != NULL && x->live < x->max_conn) {
        struct flight *next = x->queue_head;
        x->queue_head = next->next;
        if (x->queue_head == NULL)
            x->queue_tail = NULL;
        flight_start(x, next);
    }
}

static void flight_abandon(struct flight *fl)
{
    if (fl->x != NULL)
        fl->x->st.abandoned++;
    flight_end(fl);
}

static void fail(struct flight *fl, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct flight *fl, int code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (fl->x != NULL)
        fl->x->st.failures++;
    wf_failure *f = wf_failure_new(code, "transform %s via %s: %s", fl->name,
                                   fl->x ? fl->x->cfg->upstream : "?", msg);
    struct waiter *ws = fl->waiters;
    fl->waiters = NULL;
    flight_end(fl);
    answer_waiters(ws, NULL, 0, f);
    wf_failure_release(f);
}

static void fail_uv(struct flight *fl, const char *phase, int err)
{
    if (err == UV_ECONNREFUSED)
        fail(fl, WF_EUPSTREAM, "connection refused");
    else if (err == UV_ECONNRESET)
        fail(fl, WF_EUPSTREAM, "connection reset while %s", phase);
    else
        fail(fl, WF_EUPSTREAM, "%s: %s", phase, uv_strerror(err));
}

/* The whole answer, fl->in[start..start+len): kept, then given to every
 * waiter. */
static void succeed(struct flight *fl, size_t start, size_t len)
{
    struct xf *x = fl->x;
    struct entry *e = fl->e;
    struct waiter *ws = fl->waiters;
    fl->waiters = NULL;
    char *v = wf_malloc(len ? len : 1);
    if (e != NULL && v != NULL) {
        /* At rest before the flight ends, so that it stays. */
        memcpy(v, fl->in + start, len);
        e->value = v;
        e->vlen = len;
        e->fl = NULL;
        e->expires = uv_now(wf_node_loop(x->node)) + x->ttl;
        fl->e = NULL;
        x->st.bytes += len;
        lru_push(x, e);
    } else {
        wf_free(v);
    }
    answer_waiters(ws, fl->in + start, len, NULL);
    flight_end(fl);
    evict(x);
}

/* ---- the upstream connection ---- */

static void on_timer(uv_timer_t *t)
{
    struct flight *fl = t->data;
    struct xf *x = fl->x;
    if (x == NULL)
        return;
    uint64_t now = uv_now(wf_node_loop(x->node));
    if (fl->phase == P_CONNECT)
        fail(fl, WF_ETIMEDOUT, "connect timed out after %llu ms",
             (unsigned long long)x->connect_to);
    else if (now - fl->started >= x->total_to)
        fail(fl, WF_ETIMEDOUT, "no answer within %llu ms", (unsigned long long)x->total_to);
    else
        fail(fl, WF_ETIMEDOUT, "upstream silent for %llu ms while answering",
             (unsigned long long)x->idle_to);
}

/* Arms the timer for whichever deadline comes first. */
static void arm(struct flight *fl, uint64_t phase_ms)
{
    struct xf *x = fl->x;
    uint64_t now = uv_now(wf_node_loop(x->node));
    uint64_t left = fl->started + x->total_to > now ? fl->started + x->total_to - now : 0;
    uv_timer_start(&fl->timer, on_timer, phase_ms < left ? phase_ms : left, 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    /* Reading stops before a flight loses its actor. */
    struct flight *fl = h->data;
    buf->base = fl->x->scratch;
    buf->len = sizeof fl->x->scratch;
}

static int append(struct flight *fl, const char *data, size_t n)
{
    /* The longest answer, its head and its comma: more is never needed. */
    size_t limit = fl->x->max_body + WF__NS_HEAD_MAX + 1;
    if (n > limit - fl->inlen)
        n = limit - fl->inlen;
    if (fl->inlen + n > fl->incap) {
        size_t cap = fl->incap ? fl->incap * 2 : 4096;
        while (cap < fl->inlen + n)
            cap *= 2;
        char *b = wf_realloc(fl->in, cap);
        if (b == NULL)
            return -1;
        fl->in = b;
        fl->incap = cap;
    }
    memcpy(fl->in + fl->inlen, data, n);
    fl->inlen += n;
    return 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct flight *fl = s->data;
    if (fl->phase != P_READ || fl->x == NULL || n == 0)
        return;
    struct xf *x = fl->x;
    if (n > 0) {
        if (append(fl, buf->base, (size_t)n) != 0) {
            fail(fl, WF_ENOMEM, "no memory for the answer");
            return;
        }
        size_t start, len, used;
        int st = wf__netstring_parse(fl->in, fl->inlen, x->max_body, &start, &len, &used);
        if (st == WF__NS_OK)
            succeed(fl, start, len);
        else if (st == WF__NS_TOO_LARGE)
            fail(fl, WF_EUPSTREAM, "answer larger than %zu bytes", x->max_body);
        else if (st == WF__NS_MALFORMED)
            fail(fl, WF_EUPSTREAM, "malformed netstring in the answer");
        else
            arm(fl, x->idle_to);
        return;
    }
    if (n != UV_EOF)
        fail_uv(fl, "reading the answer", (int)n);
    else if (wf__tcp_was_reset(&fl->tcp))
        fail(fl, WF_EUPSTREAM, "connection reset after %zu bytes of the answer", fl->inlen);
    else if (fl->inlen == 0)
        fail(fl, WF_EUPSTREAM, "closed without an answer (transform failed or unknown)");
    else
        fail(fl, WF_EUPSTREAM, "closed after %zu bytes, the answer cut short", fl->inlen);
}

static void on_written(uv_write_t *w, int status)
{
    struct flight *fl = w->data;
    /* A failed write is told by the read that follows it, unless the
     * service read nothing at all. */
    if (status < 0 && status != UV_ECANCELED && fl->phase == P_READ)
        fail_uv(fl, "sending the request", status);
}

static void on_connect(uv_connect_t *c, int status)
{
    struct flight *fl = c->data;
    if (fl->phase != P_CONNECT || fl->x == NULL)
        return;
    if (status < 0) {
        fail_uv(fl, "connecting", status);
        return;
    }
    struct entry *e = fl->e;
    fl->phase = P_READ;
    arm(fl, fl->x->idle_to);
    size_t hl = wf__netstring_head(fl->head, e->keylen);
    /* The key is the request's data ("XFORM.POEM"); the entry outlives the
     * write unless the flight is abandoned, which closes the handle and
     * cancels the write first. */
    uv_buf_t b[3] = {uv_buf_init(fl->head, (unsigned)hl), uv_buf_init(e->key, (unsigned)e->keylen),
                     uv_buf_init(",", 1)};
    fl->wreq.data = fl;
    int rv = uv_write(&fl->wreq, (uv_stream_t *)&fl->tcp, b, 3, on_written);
    if (rv == 0)
        rv = uv_read_start((uv_stream_t *)&fl->tcp, on_alloc, on_read);
    if (rv != 0)
        fail_uv(fl, "sending the request", rv);
}

static void flight_start(struct xf *x, struct flight *fl)
{
    uv_loop_t *loop = wf_node_loop(x->node);
    fl->phase = P_CONNECT;
    fl->started = uv_now(loop);
    fl->next = x->running;
    fl->prev = NULL;
    if (x->running)
        x->running->prev = fl;
    x->running = fl;
    x->live++;
    x->st.upstream++;
    uv_tcp_init(loop, &fl->tcp);
    uv_timer_init(loop, &fl->timer);
    fl->tcp.data = fl->timer.data = fl->creq.data = fl;
    fl->open_handles = 2;
    arm(fl, x->connect_to);
    int rv = uv_tcp_connect(&fl->creq, &fl->tcp, (struct sockaddr *)&x->addr, on_connect);
    if (rv < 0)
        fail_uv(fl, "connecting", rv);
}

/* ---- the actor ---- */

bool wf_transform_name_valid(const char *s, size_t n)
{
    if (n == 0 || n > WF_TRANSFORM_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

/* A new waiter on e's flight; its deferred is the handler's answer. It
 * waits no longer than wait_ms (0: no limit of its own) nor than its
 * request's deadline: the asker's cancel would end it then, but a cancel
 * can be lost with a link, and the deadline cannot. */
static wf_result wait_for(wf_ctx *ctx, struct xf *x, struct entry *e, uint32_t wait_ms)
{
    uint64_t left = wf_ctx_time_left(ctx);
    if (left == 0)
        return WF_FAIL(WF_ETIMEDOUT, "the request's deadline passed before its transform");
    uint64_t wait = wait_ms > 0 && wait_ms < left ? wait_ms : left;
    struct waiter *w = wf_malloc(sizeof *w);
    if (w == NULL)
        return WF_FAIL(WF_ENOMEM, "no memory to wait for a transform");
    memset(w, 0, sizeof *w);
    wf_deferred *d = wf_deferred_new_cancellable_full(waiter_cancel, w, waiter_free);
    if (d == NULL)
        return WF_FAIL(WF_ENOMEM, "no memory to wait for a transform");
    w->d = d;
    /* The timeout first: undoing it needs no flight. */
    if (wait != UINT64_MAX && wf_deferred_timeout(d, wf_node_clock(x->node), wait) != 0) {
        wf_deferred_cancel(d);
        wf_deferred_release(d); /* frees w */
        return WF_FAIL(WF_ENOMEM, "no memory for a transform's wait");
    }
    struct flight *fl = e->fl;
    w->fl = fl;
    w->next = fl->waiters;
    if (fl->waiters)
        fl->waiters->prev = w;
    fl->waiters = w;
    return wf_result_deferred(d);
}

/* A new entry for key, in flight. NULL when memory is short. */
static struct entry *entry_new(struct xf *x, struct entry **pp, uint64_t h, const char *key,
                               size_t n, size_t namelen)
{
    struct entry *e = wf_malloc(sizeof *e + n);
    struct flight *fl = wf_malloc(sizeof *fl);
    if (e == NULL || fl == NULL) {
        wf_free(e);
        wf_free(fl);
        return NULL;
    }
    memset(e, 0, sizeof *e);
    memset(fl, 0, sizeof *fl);
    e->hash = h;
    e->keylen = n;
    e->namelen = namelen;
    memcpy(e->key, key, n);
    e->fl = fl;
    e->hnext = *pp;
    *pp = e;
    x->st.entries++;
    x->st.bytes += entry_cost(e);
    if (x->st.entries > x->nbuckets)
        table_grow(x);
    fl->x = x;
    fl->e = e;
    fl->phase = P_QUEUED;
    memcpy(fl->name, key, namelen);
    return e;
}

static wf_result on_transform(wf_ctx *ctx, wf_msg *m)
{
    struct xf *x = wf_ctx_state(ctx);
    wf_transform_head h;
    const void *poem;
    size_t plen;
    x->st.requests++;
    if (wf_transform_parse(m, &h, &poem, &plen) != 0)
        return WF_FAIL(WF_EINVAL,
                       "not a transform name (1 to %d letters, digits or _), or a malformed "
                       "request",
                       WF_TRANSFORM_NAME_MAX);
    size_t nl = strnlen(h.name, sizeof h.name);
    if (plen > x->max_body)
        return WF_FAIL(WF_EINVAL, "poem of %zu bytes, over the limit of %zu", plen, x->max_body);
    /* The key is what goes upstream: "XFORM.POEM". It is made in place in
     * the message's body, over the head (read already): the encoded head
     * (length, name, wait) is longer than the name and the dot. */
    char *key = (char *)poem - nl - 1;
    memcpy(key, h.name, nl);
    key[nl] = '.';
    size_t kn = nl + 1 + plen;
    uint64_t hash = wf__fnv1a(key, kn);
    struct entry **pp = slot(x, hash, key, kn);
    struct entry *e = *pp;
    if (e != NULL && e->fl == NULL) {
        if (uv_now(wf_node_loop(x->node)) < e->expires) {
            x->st.hits++;
            lru_unlink(x, e);
            lru_push(x, e);
            wf_msg *r = wf_msg_new(WF_TRANSFORM, e->value, e->vlen);
            return r ? wf_result_msg(r) : WF_FAIL(WF_ENOMEM, "no memory for a transformed poem");
        }
        x->st.expired++;
        entry_remove(x, e);
        pp = slot(x, hash, key, kn);
        e = NULL;
    }
    if (e != NULL) {
        x->st.coalesced++;
        return wait_for(ctx, x, e, h.wait_ms);
    }
    e = entry_new(x, pp, hash, key, kn, nl);
    if (e == NULL)
        return WF_FAIL(WF_ENOMEM, "no memory for a transform");
    struct flight *fl = e->fl;
    wf_result r = wait_for(ctx, x, e, h.wait_ms);
    if (r.kind != WF_RESULT_DEFERRED) {
        flight_end(fl); /* nobody waits: removes e */
        return r;
    }
    if (x->live < x->max_conn) {
        flight_start(x, fl);
    } else {
        *(x->queue_tail ? &x->queue_tail->next : &x->queue_head) = fl;
        x->queue_tail = fl;
    }
    evict(x);
    return r;
}

static wf_result on_stats(wf_ctx *ctx, wf_msg *m)
{
    struct xf *x = wf_ctx_state(ctx);
    wf_msg *r = wf_transformer_stats_msg_new(&x->st);
    return r ? wf_result_msg(r) : WF_FAIL(WF_ENOMEM, "no memory for stats");
}

static int transformer_init(wf_ctx *ctx, void *arg)
{
    struct xf *x = wf_ctx_state(ctx);
    const wf_transformer_config *cfg = arg;
    if (cfg == NULL || cfg->upstream == NULL || wf__tcp_addr_parse(cfg->upstream, &x->addr) != 0)
        return WF_EINVAL;
    x->cfg = cfg;
    x->node = wf_ctx_node(ctx);
    x->connect_to = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 2000;
    x->idle_to = cfg->idle_timeout_ms ? cfg->idle_timeout_ms : 5000;
    x->total_to = cfg->total_timeout_ms ? cfg->total_timeout_ms : 30000;
    x->max_body = cfg->max_body ? cfg->max_body : (size_t)1 << 20;
    x->max_conn = cfg->max_connections ? cfg->max_connections : 16;
    x->max_entries = cfg->max_entries ? cfg->max_entries : 1024;
    x->max_bytes = cfg->max_bytes ? cfg->max_bytes : (size_t)16 << 20;
    x->ttl = cfg->ttl_ms ? cfg->ttl_ms : 3600 * 1000;
    x->nbuckets = 64;
    x->buckets = wf_malloc(x->nbuckets * sizeof *x->buckets);
    if (x->buckets == NULL)
        return WF_ENOMEM;
    memset(x->buckets, 0, x->nbuckets * sizeof *x->buckets);
    return 0;
}

static void transformer_terminate(wf_ctx *ctx, const wf_failure *reason)
{
    struct xf *x = wf_ctx_state(ctx);
    x->max_conn = 0; /* nothing queued starts now */
    /* The runtime has cancelled every request's deferred, which abandoned
     * their flights; whatever is left (none, normally) ends here. */
    while (x->queue_head != NULL || x->running != NULL) {
        struct flight *fl = x->queue_head ? x->queue_head : x->running;
        struct waiter *ws = fl->waiters;
        fl->waiters = NULL;
        flight_end(fl); /* unlinks it; its handles' callbacks need no actor */
        wf_failure *f = wf_failure_new(WF_EACTORSTOPPED, "transformer stopped");
        answer_waiters(ws, NULL, 0, f);
        wf_failure_release(f);
    }
    for (size_t i = 0; i < x->nbuckets; i++)
        while (x->buckets[i] != NULL)
            entry_remove(x, x->buckets[i]);
    wf_free(x->buckets);
}

static const wf_handler transformer_handlers[] = {
    {WF_TRANSFORM, "transform", on_transform, 0},
    {WF_TRANSFORM_STATS, "stats", on_stats, 0},
};

const wf_behaviour wf_transformer_behaviour = {
    .name = "transformer",
    .state_size = sizeof(struct xf),
    .init = transformer_init,
    .terminate = transformer_terminate,
    .handlers = transformer_handlers,
    .nhandlers = sizeof transformer_handlers / sizeof transformer_handlers[0],
};
